#!/usr/bin/env bash
# Every test: `cargo test` (unit, command, reliability, property and end-to-end tests, the
# end-to-end ones on the pinned Claude Code), then the end-to-end suites again on the oldest
# Claude Code clawsess supports (src/versions.rs). Each Claude Code version is installed
# from npm into target/claude-code-VERSION/ on first use. Arguments go to the first
# `cargo test`.
set -euo pipefail
cd "$(dirname "$0")"
cargo test --locked "$@"

oldest=$(sed -n 's/^pub const OLDEST_SUPPORTED: Version = Version(\([0-9]*\), \([0-9]*\), \([0-9]*\));.*/\1.\2.\3/p' src/versions.rs)
[ -n "$oldest" ] || { echo "test.sh: no OLDEST_SUPPORTED in src/versions.rs" >&2; exit 1; }
# The suites whose subject is what clawsess does on each Claude Code version. Not here: the
# Agent SDK suite (the pinned SDK release passes flags that old CLIs lack; it runs its own
# CLI), the interactive-terminal suite (it reads the pinned version's screen) and the topic
# suite (older transcripts record a denied tool call as a failed one: see the README).
suites=(--test e2e --test e2e_bot --test e2e_live --test e2e_support_smoke)
echo "== the end-to-end suites on the oldest supported Claude Code, $oldest"
# CLAWSESS_TEST_CLAUDE would put another binary in its place.
env -u CLAWSESS_TEST_CLAUDE CLAWSESS_TEST_CLAUDE_VERSION="$oldest" cargo test --locked "${suites[@]}"
