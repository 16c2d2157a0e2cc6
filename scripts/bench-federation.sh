#!/usr/bin/env bash
# Benchmark: the Waldur federation plugin (plugins/waldur). Two Waldur simulators, source and
# target; the target completes each order its consumer places after --approve-ms, as the
# target's own site would. Measures, per variant, the time from a source Create order to the
# source order done and the requests each Waldur served per order:
#   polling  `run -m order_process`, cycles every --period minutes (a pending target order is
#            looked at again at the next cycle; the reference's default period is 5 minutes)
#   events   `run -m event_process` with target_stomp_enabled on the real RabbitMQ of
#            scripts/rabbitmq-setup.sh: the target order's event completes the source order
# and prints both with their ratio. Prints figures; not a test. The driver is
# scripts/lib/bench_federation.py (its docstring says how each figure is taken).
#
# Usage: scripts/bench-federation.sh [--orders 5] [--approve-ms 1000] [--period 0.25] [--no-events]
#        [--breakdown]  (also the requests per order by route)
# Env: KEEP_WORK=1 keeps target/bench-federation/run.XXXXXX; RABBITMQ_ADMIN_USER /
# RABBITMQ_ADMIN_PASSWORD as for scripts/rabbitmq-setup.sh. Everything listens on 127.0.0.1.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
OUT="$ROOT/target/bench-federation"
mkdir -p "$OUT"
WORK="$(mktemp -d "$OUT/run.XXXXXX")"
cleanup() {
    if [[ "${KEEP_WORK:-0}" != 1 ]]; then rm -rf "$WORK"; else echo "kept $WORK"; fi
}
trap cleanup EXIT

for arg in "$@"; do
    if [[ "$arg" == -h || "$arg" == --help ]]; then
        sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'
        exit 0
    fi
done

echo "== building (release): waldur-agent, the federation and basic-username plugins, waldur-sim" >&2
cargo build --release --quiet --manifest-path "$ROOT/Cargo.toml" \
    -p waldur-agent -p waldur-plugin-waldur -p waldur-plugin-basic-username -p waldur-sim
REL="$ROOT/target/release"
mkdir -p "$WORK/plugins"
# basic-username provides the default username entry 'base', as in the package.
for plugin in waldur basic_username; do
    cp "$REL/libwaldur_plugin_$plugin.so" "$WORK/plugins/$plugin.so"
done
chmod 755 "$WORK/plugins" "$WORK/plugins/"*.so

python3 "$ROOT/scripts/lib/bench_federation.py" --sim "$REL/waldur-sim" --agent "$REL/waldur-agent" \
    --plugins "$WORK/plugins" --work "$WORK" "$@"
