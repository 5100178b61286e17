#!/usr/bin/env bash
# Runs `clawsess doctor --probe` and the end-to-end suites (tests/e2e*.rs) on each Claude Code
# version and prints a pass/fail matrix, with the names of the checks and tests that failed.
#
#   tests/versions.sh                 # 2.0.77 2.1.100 2.1.212, the pinned one, the newest published
#   tests/versions.sh 2.0.28 2.1.330  # these
#   SUITES="e2e e2e_live" tests/versions.sh 2.1.332   # the probe and these suites only
#
# Each version is installed from npm into target/claude-code-VERSION/ on first use (see
# tests/support/real_claude.rs; the e2e_probe suite runs first and installs it); logs go to
# target/versions/. A version passes when the probe and every suite pass: then it can be the
# newest tested (`NEWEST_TESTED` in src/claude/versions.rs). Exit 1 when anything failed.
set -uo pipefail
cd "$(dirname "$0")/.."

pinned=$(sed -n 's/^pub const CLAUDE_CODE_VERSION: &str = "\(.*\)";/\1/p' tests/support/real_claude.rs)
if [ $# -gt 0 ]; then
  versions=("$@")
else
  newest=$(npm view @anthropic-ai/claude-code version 2>/dev/null) || newest=
  versions=(2.0.77 2.1.100 2.1.212 "$pinned")
  [ -n "$newest" ] && [ "$newest" != "$pinned" ] && versions+=("$newest")
fi
# e2e_probe first: it installs the version, and the probe column needs the install.
suites=(e2e_probe)
if [ -n "${SUITES:-}" ]; then
  for s in $SUITES; do [ "$s" != e2e_probe ] && suites+=("$s"); done
else
  for f in tests/e2e*.rs; do s=$(basename "$f" .rs); [ "$s" != e2e_probe ] && suites+=("$s"); done
fi

# The binary under test is the version's own: an explicit one would override it.
unset CLAWSESS_TEST_CLAUDE
logs=target/versions
mkdir -p "$logs"
build_args=()
for s in "${suites[@]}"; do build_args+=(--test "$s"); done
cargo test --no-run "${build_args[@]}" >"$logs/build.log" 2>&1 || { cat "$logs/build.log"; exit 1; }
cargo build --bin clawsess >>"$logs/build.log" 2>&1 || { cat "$logs/build.log"; exit 1; }
clawsess=$(pwd)/target/debug/clawsess

# The claude of an install: the native bin/claude.exe, or cli.js before 2.1.113.
claude_of() {
  local pkg=target/claude-code-$1/node_modules/@anthropic-ai/claude-code
  if [ -x "$pkg/bin/claude.exe" ] && "$pkg/bin/claude.exe" --version >/dev/null 2>&1; then
    echo "$(pwd)/$pkg/bin/claude.exe"
  elif [ -f "$pkg/cli.js" ]; then
    echo "$(pwd)/$pkg/cli.js"
  fi
}

# `clawsess doctor --probe` on version $1, in a throw-away HOME: the matrix cell.
probe_cell() {
  local v=$1 log="$logs/$1-probe.log" exe home started secs
  exe=$(claude_of "$v")
  if [ -z "$exe" ]; then
    echo "FAIL (not installed; see $logs/$v-e2e_probe.log)"
    return 1
  fi
  home=$(mktemp -d)
  started=$SECONDS
  env -i PATH="$PATH" HOME="$home" CLAWSESS_CLAUDE="$exe" "$clawsess" doctor --probe >"$log" 2>&1
  local code=$?
  secs=$((SECONDS - started))
  rm -rf "$home"
  local total
  total=$(sed -n 's/.*: \([0-9]*\) of \([0-9]*\) checks passed.*/\2/p' "$log")
  if [ "$code" -eq 0 ]; then
    echo "pass ${total:-?} (${secs}s)"
  else
    local names
    names=$(sed -n 's/^FAIL \([^:]*\):.*/\1/p' "$log" | grep -v '^probe$' | paste -sd, -)
    echo "FAIL ${names:-see $log} (${secs}s)"
    return 1
  fi
}

declare -A cell
failures=()
failed=0
for v in "${versions[@]}"; do
  for s in "${suites[@]}"; do
    if [ "$s" != e2e_probe ] && [ -z "${cell[$v,probe]:-}" ]; then
      cell[$v,probe]=$(probe_cell "$v") || { failed=1; failures+=("$v probe: ${cell[$v,probe]} (see $logs/$v-probe.log)"); }
      echo "$v probe: ${cell[$v,probe]}" >&2
    fi
    log="$logs/$v-$s.log"
    started=$SECONDS
    CLAWSESS_TEST_CLAUDE_VERSION=$v cargo test --test "$s" >"$log" 2>&1
    code=$?
    secs=$((SECONDS - started))
    summary=$(grep -E '^test result:' "$log" | tail -1)
    passed=$(sed -n 's/.* \([0-9]*\) passed.*/\1/p' <<<"$summary")
    nfailed=$(sed -n 's/.* \([0-9]*\) failed.*/\1/p' <<<"$summary")
    if [ "$code" -eq 0 ]; then
      cell[$v,$s]="pass ${passed:-?} (${secs}s)"
    else
      failed=1
      cell[$v,$s]="FAIL ${nfailed:-?}/$(( ${passed:-0} + ${nfailed:-0} )) (${secs}s)"
      names=$(grep -E '^test .* \.\.\. FAILED$' "$log" | sed 's/^test \(.*\) \.\.\. FAILED$/\1/' | tr '\n' ' ')
      failures+=("$v $s: ${names:-(no test result; see $log)}")
    fi
    echo "$v $s: ${cell[$v,$s]}" >&2
  done
  if [ -z "${cell[$v,probe]:-}" ]; then
    cell[$v,probe]=$(probe_cell "$v") || { failed=1; failures+=("$v probe: ${cell[$v,probe]} (see $logs/$v-probe.log)"); }
    echo "$v probe: ${cell[$v,probe]}" >&2
  fi
done

header="| Claude Code | probe |"
rule="|---|---|"
for s in "${suites[@]}"; do header+=" $s |"; rule+="---|"; done
echo
echo "$header"
echo "$rule"
for v in "${versions[@]}"; do
  row="| $v"
  [ "$v" = "$pinned" ] && row+=" (pinned)"
  row+=" | ${cell[$v,probe]} |"
  for s in "${suites[@]}"; do row+=" ${cell[$v,$s]} |"; done
  echo "$row"
done
if [ ${#failures[@]} -gt 0 ]; then
  echo
  echo "Failed:"
  for f in "${failures[@]}"; do echo "- $f"; done
fi
exit $failed
