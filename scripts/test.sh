#!/usr/bin/env bash
# The whole test suite, as CI runs it: formatting, lints, every crate and fixture, every test.
# Real components the tests use are started here and stopped at exit: SLURM accounting
# (scripts/slurm-setup.sh, needs root; CI runs as root). A test whose real component is
# missing skips, except under CI=true, where it fails.
# Usage: scripts/test.sh
set -euo pipefail
cd "$(dirname "$0")/.."

need() { command -v "$1" >/dev/null 2>&1 || { echo "missing: $1 ($2)" >&2; exit 1; }; }
need cargo "a Rust toolchain >= 1.89, e.g. from rustup"

# SLURM starts (and installs, the first time) in the background while the code builds.
SLURM_LOG=$(mktemp)
SLURM_PID=""
SLURM_STARTED_HERE=0
stop_slurm() {
    if [[ -n "$SLURM_PID" ]]; then wait "$SLURM_PID" 2>/dev/null || true; fi
    if [[ "$SLURM_STARTED_HERE" = 1 ]]; then scripts/slurm-setup.sh stop >/dev/null 2>&1 || true; fi
    rm -f "$SLURM_LOG"
}
trap stop_slurm EXIT
if scripts/slurm-setup.sh status >/dev/null 2>&1; then
    echo "== real SLURM: already running"
elif [[ "$(id -u)" = 0 ]]; then
    echo "== real SLURM: starting in the background (scripts/slurm-setup.sh)"
    SLURM_STARTED_HERE=1
    scripts/slurm-setup.sh >"$SLURM_LOG" 2>&1 &
    SLURM_PID=$!
else
    echo "== real SLURM: not root, not started; its tests skip (and fail under CI=true)"
fi

echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy"
cargo clippy --workspace --all-targets -- -D warnings
echo "== cargo build (workspace, all plugins and fixtures)"
# Built up front so the tests' own build calls are up-to-date checks.
cargo build --workspace
if [[ -n "$SLURM_PID" ]]; then
    status=0
    wait "$SLURM_PID" || status=$?
    SLURM_PID=""
    cat "$SLURM_LOG"
    if [[ $status != 0 ]]; then
        echo "== real SLURM failed to start (exit $status); its tests will fail under CI=true" >&2
    fi
fi
echo "== cargo test"
cargo test --workspace
