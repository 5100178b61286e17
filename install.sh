#!/usr/bin/env bash
# Builds and installs the clawsess binary, then hooks it into Claude Code
# (settings.json hooks and the /attach, /detach, /sessions commands), installs the man pages,
# then runs `doctor`. Extra arguments go to `clawsess install` (e.g. --claude-dir DIR); `doctor`
# checks the same Claude Code config dir (--claude-dir, else $CLAUDE_CONFIG_DIR, else ~/.claude).
set -euo pipefail
cd "$(dirname "$0")"
if ! command -v cargo >/dev/null 2>&1; then
  echo "install.sh: cargo is not installed; get Rust from https://rustup.rs and run me again" >&2
  exit 1
fi
doctor_args=()
previous=
for arg in "$@"; do
  case "$arg" in
    --claude-dir=*) doctor_args=("$arg") ;;
    *) [ "$previous" = --claude-dir ] && doctor_args=(--claude-dir "$arg") ;;
  esac
  previous=$arg
done
cargo install --path . --locked --force
bin_dir="${CARGO_INSTALL_ROOT:-${CARGO_HOME:-$HOME/.cargo}}/bin"
"$bin_dir/clawsess" install "$@"
# The man pages (clawsess(1), clawsess-attach(1), ...) next to the binary: man finds
# BIN/../share/man for every BIN on PATH.
man_dir="$(dirname "$bin_dir")/share/man/man1"
"$bin_dir/clawsess" man --dir "$man_dir" || echo "note: could not write the man pages to $man_dir"
case ":$PATH:" in
  *":$bin_dir:"*) ;;
  *) echo "note: add $bin_dir to your PATH so bots and scripts find clawsess" ;;
esac
"$bin_dir/clawsess" doctor ${doctor_args[@]+"${doctor_args[@]}"} || echo "note: doctor found something to fix (above)"
