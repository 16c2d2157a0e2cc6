#!/usr/bin/env bash
# The whole test suite, as CI runs it: formatting, lints, every crate and fixture, every test.
# Usage: scripts/test.sh
set -euo pipefail
cd "$(dirname "$0")/.."

need() { command -v "$1" >/dev/null 2>&1 || { echo "missing: $1 ($2)" >&2; exit 1; }; }
need cargo "a Rust toolchain >= 1.89, e.g. from rustup"

echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy"
cargo clippy --workspace --all-targets -- -D warnings
echo "== cargo build (workspace, all plugins and fixtures)"
# Built up front so the tests' own build calls are up-to-date checks.
cargo build --workspace
echo "== cargo test"
cargo test --workspace
