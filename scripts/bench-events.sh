#!/usr/bin/env bash
# Benchmark: event processing (`event_process` over STOMP) of the Rust waldur-agent against the
# reference Python waldur-site-agent 1.0.7 (PyPI), in the same run on the same machine. Both
# run against the Waldur simulator (tests/waldur-sim) attached to the real RabbitMQ of
# scripts/rabbitmq-setup.sh (Web-STOMP 127.0.0.1:15674/ws, the 1.0.7 single-queue flow), with
# equivalent JSON-file backends (Rust: plugins/demo; Python: scripts/python/waldur_sim_demo.py).
#
# Scenario (waldur-sim-scenario --mode events): one resource with its backend account per
# project, --users team members each, and per project one more user with an offering user who
# is not in the team yet. Per agent, on a fresh simulator and backend:
#   1. the agent starts and subscribes; its start-up pass runs (nothing to do but reads)
#   2. latency fault on: --latency ms per Waldur request (POST /__sim/faults)
#   3. orders burst: --orders Create orders created `executing` (`order_created` changes in
#      one POST /__sim/changes; one `order` event each); wait until every order is done
#   4. roles burst: --roles role grants (`role_granted` changes; one `user_role` event each);
#      wait until every newcomer is in their project's allocations
# and prints per burst: median and p99 latency from publish to done (see
# scripts/lib/bench_events.py for how "done" is read), wall time from the first publish to the
# last done, Waldur requests per event (simulator counters), RSS before and during the burst
# and the process's peak (VmHWM), with ratios ours/reference. Prints figures; not a test.
#
# Usage: scripts/bench-events.sh [--orders 1000] [--roles 1000] [--users 3] [--latency 5]
#                                [--timeout S] [--no-ref]
#   --timeout S   give up on a burst after S s (default 3600)
#   --no-ref      only this agent
# Env: REFERENCE_AGENT_VENV (see scripts/lib/reference-agent.sh), KEEP_WORK=1 keeps the work dir
# target/bench-events/run.XXXXXX, RABBITMQ_ADMIN_USER / RABBITMQ_ADMIN_PASSWORD as for
# scripts/rabbitmq-setup.sh. Needs cargo, python3 with venv, PyPI access for the first run and
# the broker running (scripts/rabbitmq-setup.sh). Everything listens on 127.0.0.1 only.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
OUT="$ROOT/target/bench-events"
# shellcheck source=lib/reference-agent.sh
source "$ROOT/scripts/lib/reference-agent.sh"
# shellcheck source=lib/sim.sh
source "$ROOT/scripts/lib/sim.sh"
MEASURE="$ROOT/scripts/lib/bench_events.py"
ORDERS=1000
ROLES=1000
USERS=3
LATENCY=5
TIMEOUT=3600
NO_REF=0

while [[ $# -gt 0 ]]; do
    case "$1" in
        --orders) ORDERS="$2"; shift 2 ;;
        --roles) ROLES="$2"; shift 2 ;;
        --users) USERS="$2"; shift 2 ;;
        --latency) LATENCY="$2"; shift 2 ;;
        --timeout) TIMEOUT="$2"; shift 2 ;;
        --no-ref) NO_REF=1; shift ;;
        -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "unknown argument: $1" >&2; exit 2 ;;
    esac
done

mkdir -p "$OUT"
WORK="$(mktemp -d "$OUT/run.XXXXXX")"   # per invocation, so concurrent runs do not collide
SIM_PID=""
AGENT_PID=""
stop_agent() {
    [[ -n "$AGENT_PID" ]] || return 0
    kill -TERM "$AGENT_PID" 2>/dev/null || true
    for _ in $(seq 100); do kill -0 "$AGENT_PID" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$AGENT_PID" 2>/dev/null || true
    wait "$AGENT_PID" 2>/dev/null || true
    AGENT_PID=""
}
cleanup() {
    # Only the processes this script started, by PID, and only the broker objects of this run.
    stop_agent
    broker_cleanup
    sim_stop
    if [[ "${KEEP_WORK:-0}" != 1 ]]; then rm -rf "$WORK"; else echo "kept $WORK"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

log() { echo "== $*" >&2; }

# ---------------------------------------------------------------- prerequisites
if ! broker_available; then
    echo "RabbitMQ's management API does not answer at $MGMT_URL: start scripts/rabbitmq-setup.sh" >&2
    exit 1
fi
log "building (release): waldur-agent, demo + basic-username plugins, waldur-sim"
cargo build --release --quiet --manifest-path "$ROOT/Cargo.toml" \
    -p waldur-agent -p waldur-plugin-demo -p waldur-plugin-basic-username -p waldur-sim
REL="$ROOT/target/release"
mkdir -p "$WORK/plugins"
chmod 755 "$WORK/plugins"
cp "$REL/libwaldur_plugin_demo.so" "$WORK/plugins/demo.so"
cp "$REL/libwaldur_plugin_basic_username.so" "$WORK/plugins/usernames.so"
chmod 755 "$WORK/plugins"/*.so
if [[ "$NO_REF" == 0 ]]; then reference_agent_install "$WORK"; fi

PROJECTS=$(( ORDERS > ROLES ? ORDERS : ROLES ))
AGENT_USERNAME="bench-events-$$-$(date +%s)"
log "generating $PROJECTS projects, $USERS team members each"
"$REL/waldur-sim-scenario" --mode events --resources "$PROJECTS" --resources-per-project 1 \
    --users "$USERS" --offering-uuid "$OFFERING" --token "$TOKEN" --agent-username "$AGENT_USERNAME" \
    --scenario "$WORK/scenario.yaml" --state-dir "$WORK/state"

# run_one ours|ref: one agent through both bursts on a fresh simulator and backend; the
# figures go to $WORK/<who>-orders.json and $WORK/<who>-roles.json.
run_one() {
    local who="$1" run="$WORK/$1"
    mkdir -p "$run"
    cp -r "$WORK/state" "$run/state"
    sim_start "$REL/waldur-sim" "$WORK/scenario.yaml" "$run"
    broker_attach "$ORIGIN"

    # Reconciliation (every 60 min by default) must not run during the bursts.
    if [[ "$who" == ours ]]; then
        sim_demo_config "$run/config.yaml" demo base "$run/state" \
            "$STOMP_OFFERING_LINES"$'\n'"    stomp_subscription_flow: single_queue"
        WALDUR_SITE_AGENT_RECONCILIATION_PERIOD_MINUTES=100000 WALDUR_AGENT_PLUGIN_PATH= \
        WALDUR_AGENT_RUNTIME_DIR="$run/runtime" \
            ${BENCH_AGENT_PREFIX:-} "$REL/waldur-agent" run -m event_process -c "$run/config.yaml" \
            --plugin-dir "$WORK/plugins" >"$run/agent.log" 2>&1 &
    else
        sim_demo_config "$run/config.yaml" sim-demo sim-demo "$run/state" "$STOMP_OFFERING_LINES"
        WALDUR_SITE_AGENT_RECONCILIATION_PERIOD_MINUTES=100000 \
            "$REFERENCE_AGENT" -m event_process -c "$run/config.yaml" >"$run/agent.log" 2>&1 &
    fi
    AGENT_PID=$!
    log "$who: waiting for the subscription and the start-up pass (pid $AGENT_PID)"
    python3 "$MEASURE" ready "$ORIGIN" "$MGMT_USER|$MGMT_PASSWORD|$MGMT_URL" "$BROKER_VHOST" \
        "$AGENT_PID" 3 600 || { tail -n 30 "$run/agent.log"; exit 1; }
    if [[ "$LATENCY" != 0 ]]; then
        curl -sf -X POST -H 'Content-Type: application/json' \
            -d "{\"kind\":\"latency\",\"ms\":$LATENCY}" "$ORIGIN/__sim/faults" >/dev/null
    fi
    local kind count
    for kind in orders roles; do
        count=$ORDERS
        [[ "$kind" == roles ]] && count=$ROLES
        [[ "$count" -gt 0 ]] || continue
        log "$who: $count $kind events"
        python3 "$MEASURE" burst "$ORIGIN" "$kind" "$count" "$run/state" "$AGENT_PID" "$TIMEOUT" \
            "$WORK/$who-$kind.json" || { tail -n 30 "$run/agent.log"; exit 1; }
    done
    stop_agent
    broker_cleanup
    sim_stop
}

run_one ours
if [[ "$NO_REF" == 0 ]]; then run_one ref; fi

REPORT="$OUT/results-$(date +%Y%m%d-%H%M%S).txt"
{
    for kind in orders roles; do
        [[ -f "$WORK/ours-$kind.json" ]] || continue
        echo
        echo "== $kind events, ${LATENCY} ms per Waldur request ($PROJECTS projects, $USERS team members each)"
        ref="-"
        [[ -f "$WORK/ref-$kind.json" ]] && ref="$WORK/ref-$kind.json"
        python3 "$MEASURE" table "$WORK/ours-$kind.json" "$ref"
    done
    echo
    echo "latency = publish (the simulator hands the message to RabbitMQ) -> done in Waldur;"
    echo "requests = every Waldur request of the burst / events; ours/ref < 1: ours is lower."
} | tee "$REPORT"
log "results saved to $REPORT"
