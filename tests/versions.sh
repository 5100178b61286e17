#!/usr/bin/env bash
# Runs the end-to-end suites (tests/e2e*.rs) on each Claude Code version and prints a
# pass/fail matrix, with the names of the tests that failed.
#
#   tests/versions.sh                 # 2.0.77 2.1.100 2.1.212, the pinned one, the newest published
#   tests/versions.sh 2.0.28 2.1.330  # these
#
# Each version is installed from npm into target/claude-code-VERSION/ on first use (see
# tests/support/real_claude.rs); logs go to target/versions/. Exit 1 when any suite failed.
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
suites=()
for f in tests/e2e*.rs; do suites+=("$(basename "$f" .rs)"); done

# The binary under test is the version's own: an explicit one would override it.
unset CLAWSESS_TEST_CLAUDE
logs=target/versions
mkdir -p "$logs"
build_args=()
for s in "${suites[@]}"; do build_args+=(--test "$s"); done
cargo test --no-run "${build_args[@]}" >"$logs/build.log" 2>&1 || { cat "$logs/build.log"; exit 1; }

declare -A cell
failures=()
failed=0
for v in "${versions[@]}"; do
  for s in "${suites[@]}"; do
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
done

header="| Claude Code |"
rule="|---|"
for s in "${suites[@]}"; do header+=" $s |"; rule+="---|"; done
echo
echo "$header"
echo "$rule"
for v in "${versions[@]}"; do
  row="| $v"
  [ "$v" = "$pinned" ] && row+=" (pinned)"
  row+=" |"
  for s in "${suites[@]}"; do row+=" ${cell[$v,$s]} |"; done
  echo "$row"
done
if [ ${#failures[@]} -gt 0 ]; then
  echo
  echo "Failed:"
  for f in "${failures[@]}"; do echo "- $f"; done
fi
exit $failed
