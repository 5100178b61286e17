#!/usr/bin/env bash
# Every test: `cargo test` (unit, command, reliability, property and end-to-end tests, the
# end-to-end ones on the pinned Claude Code), then the end-to-end suites again on the oldest
# Claude Code clawsess supports (src/claude/versions.rs). Each Claude Code version is installed
# from npm into target/claude-code-VERSION/ on first use, the Agent SDK from PyPI into
# target/agent-sdk-VERSION/. Arguments go to the first `cargo test`.
#
# Every suite runs even when one fails, and the last line is the count over both phases:
#   N passed, N failed, N skipped
# (skipped: tests marked #[ignore]). Exit 1 when anything failed, a test binary that did not
# build or did not finish included.
set -uo pipefail
cd "$(dirname "$0")"

passed=0 failed=0 skipped=0
out=$(mktemp)
trap 'rm -f "$out"' EXIT

# What the test support cannot install itself (it installs the Claude Code CLIs from npm and
# the Agent SDK from PyPI): said now, not 20 minutes in. Without cargo nothing runs; without
# another tool the tests that need it fail, and every other test still runs.
if ! command -v cargo >/dev/null 2>&1; then
  echo "test.sh: cargo is not on PATH; get Rust from https://rustup.rs" >&2
  echo "0 passed, 1 failed, 0 skipped"
  exit 1
fi
need=("node:the Claude Code CLIs" "npm:installing the Claude Code CLIs" "tmux:the interactive-terminal tests")
[ -n "${CLAWSESS_TEST_PYTHON:-}" ] || need+=("python3:the Agent SDK tests (Python 3.10+ with venv)")
for item in "${need[@]}"; do
  command -v "${item%%:*}" >/dev/null 2>&1 ||
    echo "test.sh: ${item%%:*} is not on PATH: ${item#*:} will fail" >&2
done

# Runs one phase (`cargo test ...`), shows its output and adds its counts.
phase() {
  local name=$1
  shift
  echo "== $name"
  "$@" 2>&1 | tee "$out"
  local rc=${PIPESTATUS[0]}
  local counts
  # One "test result:" line per test binary; a binary that started ("Running", "Doc-tests")
  # and printed none crashed or was killed: one failure each.
  counts=$(sed 's/\x1b\[[0-9;]*[mK]//g' "$out" | awk '
    /^test result: / {
      for (i = 1; i <= NF; i++) {
        n = $(i - 1) + 0
        if ($i ~ /^passed/) p += n
        if ($i ~ /^failed/) f += n
        if ($i ~ /^ignored/) s += n
      }
      results++
    }
    /^ +Running .*\(.*\)$/ || /^ +Doc-tests [A-Za-z0-9_-]+$/ { started++ }
    END { print p + 0, f + 0, s + 0, started - results }')
  local p f s unfinished
  read -r p f s unfinished <<<"$counts"
  [ "$unfinished" -gt 0 ] || unfinished=0
  if [ "$unfinished" -gt 0 ]; then
    echo "test.sh: $name: $unfinished test binary(ies) ended without a result (crashed or killed)" >&2
    f=$((f + unfinished))
  fi
  if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then
    echo "test.sh: $name: cargo test failed (exit $rc) with no failing test: see the build errors above" >&2
    f=1
  fi
  passed=$((passed + p)) failed=$((failed + f)) skipped=$((skipped + s))
  echo "== $name: $p passed, $f failed, $s skipped"
}

phase "every test, on the pinned Claude Code" cargo test --locked --no-fail-fast "$@"

oldest=$(sed -n 's/^pub const OLDEST_SUPPORTED: Version = Version(\([0-9]*\), \([0-9]*\), \([0-9]*\));.*/\1.\2.\3/p' src/claude/versions.rs)
if [ -z "$oldest" ]; then
  echo "test.sh: no OLDEST_SUPPORTED in src/claude/versions.rs: the oldest-version phase did not run" >&2
  failed=$((failed + 1))
else
  # The suites whose subject is what clawsess does on each Claude Code version. Not here: the
  # Agent SDK suite (the pinned SDK release passes flags that old CLIs lack; it runs its own
  # CLI), the interactive-terminal suite (it reads the pinned version's screen) and the topic
  # suite (older transcripts record a denied tool call as a failed one: see docs/CLAUDE_CODE.md).
  # e2e_warm: a kept claude is started with other flags than a cold one (`claude::hookless`).
  suites=(--test e2e --test e2e_bot --test e2e_live --test e2e_support_smoke --test e2e_warm)
  # CLAWSESS_TEST_CLAUDE would put another binary in its place.
  phase "the end-to-end suites on the oldest supported Claude Code, $oldest" \
    env -u CLAWSESS_TEST_CLAUDE CLAWSESS_TEST_CLAUDE_VERSION="$oldest" \
    cargo test --locked --no-fail-fast "${suites[@]}"
fi

echo "$passed passed, $failed failed, $skipped skipped"
[ "$failed" -eq 0 ]
