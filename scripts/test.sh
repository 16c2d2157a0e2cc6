#!/usr/bin/env bash
# The whole test suite, as CI runs it: formatting, lints, the supply-chain policy (deny.toml),
# every crate and fixture, every test, and the Debian package installed and exercised for real
# (scripts/package-test.sh; root only, required under CI=true).
# Real components the tests use are started here and stopped at exit: SLURM accounting
# (scripts/slurm-setup.sh) and RabbitMQ with Web-STOMP (scripts/rabbitmq-setup.sh); both
# need root, and CI runs as root. A test whose real component is
# missing skips, except under CI=true, where it fails.
# Usage: scripts/test.sh
set -euo pipefail
cd "$(dirname "$0")/.."

need() { command -v "$1" >/dev/null 2>&1 || { echo "missing: $1 ($2)" >&2; exit 1; }; }
need cargo "a Rust toolchain >= 1.89, e.g. from rustup"

# Real components start (and install, the first time) in the background while the code builds,
# unless they are running already; only root can start them. What started here stops at exit.
COMPONENTS=(slurm rabbitmq)
declare -A SETUP=([slurm]=scripts/slurm-setup.sh [rabbitmq]=scripts/rabbitmq-setup.sh)
declare -A NAME=([slurm]="real SLURM" [rabbitmq]="real RabbitMQ")
declare -A START_PID=() START_LOG=() STARTED_HERE=()
stop_components() {
    local c
    for c in "${COMPONENTS[@]}"; do
        if [[ -n "${START_PID[$c]:-}" ]]; then wait "${START_PID[$c]}" 2>/dev/null || true; fi
        if [[ "${STARTED_HERE[$c]:-0}" = 1 ]]; then "${SETUP[$c]}" stop >/dev/null 2>&1 || true; fi
        rm -f "${START_LOG[$c]:-}"
    done
}
trap stop_components EXIT
for c in "${COMPONENTS[@]}"; do
    if "${SETUP[$c]}" status >/dev/null 2>&1; then
        echo "== ${NAME[$c]}: already running"
    elif [[ "$(id -u)" = 0 ]]; then
        echo "== ${NAME[$c]}: starting in the background (${SETUP[$c]})"
        STARTED_HERE[$c]=1
        START_LOG[$c]=$(mktemp)
        "${SETUP[$c]}" >"${START_LOG[$c]}" 2>&1 &
        START_PID[$c]=$!
    else
        echo "== ${NAME[$c]}: not root, not started; its tests skip (and fail under CI=true)"
    fi
done

echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy"
cargo clippy --workspace --all-targets -- -D warnings
# The production binary (the Debian package's) is built without the demo feature, with the
# simulator that `test-order` embeds; and the agent must build without either.
cargo clippy -p waldur-agent --no-default-features --lib --bins -- -D warnings
cargo clippy -p waldur-agent --no-default-features --features simulator --lib --bins -- -D warnings
cargo clippy --manifest-path examples/plugin-template/Cargo.toml --all-targets -- -D warnings
echo "== cargo deny (licenses, bans, sources: deny.toml)"
if ! cargo deny --version >/dev/null 2>&1; then
    echo "== installing cargo-deny (cargo install --locked cargo-deny)"
    cargo install --locked cargo-deny
fi
# The check reads every crate's manifest from cargo's cache, for every platform.
cargo fetch --locked --quiet
cargo deny --offline check licenses bans sources
echo "== cargo publish --dry-run (the plugin SDK and its macros, as vendors would get them)"
# --allow-dirty: what is checked is that the crates package and build on their own, also in a
# working tree with uncommitted changes.
cargo publish --dry-run --allow-dirty --quiet -p waldur-plugin-abi-macros -p waldur-plugin-abi
echo "== cargo build (workspace, all plugins and fixtures)"
# Built up front so the tests' own build calls are up-to-date checks.
cargo build --workspace
for c in "${COMPONENTS[@]}"; do
    [[ -n "${START_PID[$c]:-}" ]] || continue
    status=0
    wait "${START_PID[$c]}" || status=$?
    START_PID[$c]=""
    cat "${START_LOG[$c]}"
    if [[ $status != 0 ]]; then
        echo "== ${NAME[$c]} failed to start (exit $status); its tests will fail under CI=true" >&2
    fi
done
echo "== cargo test"
cargo test --workspace
echo "== cargo test (examples/plugin-template: a vendor's crate, with the plugin test harness)"
cargo test --manifest-path examples/plugin-template/Cargo.toml
echo "== Debian package (scripts/package-test.sh)"
scripts/package-test.sh
