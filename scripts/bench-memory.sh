#!/usr/bin/env bash
# Benchmark: the agent's memory over a long run, against the Waldur simulator (release build).
# Prints figures; not a test.
#
#   cycles   `run -m order_process` with a 6 ms period for CYCLES cycles (default 10,000) on
#            a generated scenario (100 resources; their Create orders are done by the first
#            cycle, every later cycle lists, finds nothing pending and reports): resident set
#            size (VmRSS) after 10, 100, 1,000, ... cycles, and the last against the one after
#            100 cycles (the baseline, once the allocator and caches have warmed up).
#   idle     `run -m all` with three plugins loaded (demo for offering 1, basic-username as its
#            username backend, slurm for offering 2 against the real SLURM of
#            scripts/slurm-setup.sh when it runs, else the demo again) and every polling mode
#            on a 1-minute period, for MINUTES minutes (default 60): VmRSS sampled every minute,
#            the last sample against the first one taken after the first cycles (baseline), and
#            the peak (VmHWM).
#
# Usage: scripts/bench-memory.sh [--cycles N] [--minutes M] [--only cycles|idle]
# Env: KEEP_WORK=1 keeps the work directory (target/bench-memory/run.XXXXXX).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
OUT="$ROOT/target/bench-memory"
TOKEN="0123456789abcdef0123456789abcdef01234567"
OFFERING="d629d5e45567425da9cdbdc1af67b32c"
SLURM_OFFERING="d629d5e45567425da9cdbdc1af67b32d"
CYCLES=10000
MINUTES=60
ONLY=""
while [[ $# -gt 0 ]]; do
    case "$1" in
        --cycles) CYCLES="$2"; shift 2 ;;
        --minutes) MINUTES="$2"; shift 2 ;;
        --only) ONLY="$2"; shift 2 ;;
        -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "unknown argument: $1" >&2; exit 2 ;;
    esac
done

mkdir -p "$OUT"
WORK="$(mktemp -d "$OUT/run.XXXXXX")"
SIM_PID=""
AGENT_PID=""
cleanup() {
    # Only the processes this script started, by PID.
    if [[ -n "$AGENT_PID" ]]; then kill "$AGENT_PID" 2>/dev/null || true; wait "$AGENT_PID" 2>/dev/null || true; fi
    if [[ -n "$SIM_PID" ]]; then kill "$SIM_PID" 2>/dev/null || true; wait "$SIM_PID" 2>/dev/null || true; fi
    if [[ "${KEEP_WORK:-0}" != 1 ]]; then rm -rf "$WORK"; else echo "kept $WORK"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM
log() { echo "== $*" >&2; }

log "building (release): waldur-agent, the demo, basic-username and slurm plugins, waldur-sim"
cargo build --release --quiet --manifest-path "$ROOT/Cargo.toml" -p waldur-agent \
    -p waldur-plugin-demo -p waldur-plugin-basic-username -p waldur-plugin-slurm -p waldur-sim
REL="$ROOT/target/release"
mkdir -p "$WORK/plugins"
cp "$REL/libwaldur_plugin_demo.so" "$WORK/plugins/demo.so"
cp "$REL/libwaldur_plugin_basic_username.so" "$WORK/plugins/usernames.so"
cp "$REL/libwaldur_plugin_slurm.so" "$WORK/plugins/slurm.so"
chmod 755 "$WORK/plugins" && chmod 644 "$WORK/plugins"/*.so

rss_kb() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status" 2>/dev/null || echo 0; }
hwm_kb() { awk '/^VmHWM:/ {print $2}' "/proc/$1/status" 2>/dev/null || echo 0; }
ratio() { python3 -c 'import sys; a,b=float(sys.argv[1]),float(sys.argv[2]); print(f"{a/b:.3f}" if b else "-")' "$1" "$2"; }
cycles_done() { grep -c 'cycle finished' "$1" 2>/dev/null || true; }

# generate MODE DIR: a scenario of 100 resources (10 projects, 10 users each) and its backend.
generate() {
    mkdir -p "$2"
    "$REL/waldur-sim-scenario" --mode "$1" --resources 100 --users 10 \
        --offering-uuid "$OFFERING" --token "$TOKEN" \
        --scenario "$2/scenario.yaml" --state-dir "$2/state"
}

start_sim() { # scenario file -> SIM_PID, URL
    "$REL/waldur-sim" --scenario "$1" >"$WORK/sim.out" 2>"$WORK/sim.err" &
    SIM_PID=$!
    for _ in $(seq 600); do [[ -s "$WORK/sim.out" ]] && break; sleep 0.1; done
    URL="$(head -n1 "$WORK/sim.out")"
    [[ "$URL" == http://127.0.0.1:*/api/ ]] || { echo "simulator did not start"; cat "$WORK/sim.err"; exit 1; }
}
stop_sim() { kill "$SIM_PID" 2>/dev/null || true; wait "$SIM_PID" 2>/dev/null || true; SIM_PID=""; }
stop_agent() { kill "$AGENT_PID" 2>/dev/null || true; wait "$AGENT_PID" 2>/dev/null || true; AGENT_PID=""; }

# demo_settings STATE_DIR: the demo plugin's backend_settings lines.
demo_settings() {
    printf '      state_dir: "%s"\n      customer_prefix: "c_"\n      project_prefix: "p_"\n      allocation_prefix: "a_"\n' "$1"
}

# offering NAME UUID BACKEND USERNAMES SETTINGS: one offering of the config.
offering() {
    cat <<EOF
  - name: "$1"
    waldur_api_url: "$URL"
    waldur_api_token: "$TOKEN"
    waldur_offering_uuid: "$2"
    backend_type: "$3"
    order_processing_backend: "$3"
    membership_sync_backend: "$3"
    reporting_backend: "$3"
    username_management_backend: "$4"
    backend_settings:
$5
    backend_components:
      cpu: {limit: 10, measured_unit: "k-Hours", unit_factor: 1, accounting_type: "usage", label: "CPU"}
      mem: {limit: 10, measured_unit: "gb-Hours", unit_factor: 1, accounting_type: "usage", label: "RAM"}
EOF
}

run_agent() { # MODE CONFIG LOG [env...]
    local mode="$1" config="$2" logfile="$3"; shift 3
    env "$@" WALDUR_AGENT_PLUGIN_PATH= "$REL/waldur-agent" run -m "$mode" -c "$config" \
        --plugin-dir "$WORK/plugins" >"$logfile" 2>&1 &
    AGENT_PID=$!
}

bench_cycles() {
    local dir="$WORK/cycles"
    generate order_process "$dir"
    start_sim "$dir/scenario.yaml"
    { echo "runtime_dir: \"$dir/run\""; echo "offerings:"; offering "Bench" "$OFFERING" demo base "$(demo_settings "$dir/state")"; } >"$dir/config.yaml"
    mkdir -p "$dir/run"
    # 0.0001 min = 6 ms between cycles; RUST_LOG keeps one line per cycle.
    run_agent order_process "$dir/config.yaml" "$dir/agent.log" \
        WALDUR_SITE_AGENT_ORDER_PROCESS_PERIOD_MINUTES=0.0001 RUST_LOG=warn,waldur_agent::modes::cycle=info
    local marks=() m=10
    while (( m <= CYCLES )); do marks+=("$m"); m=$(( m * 10 )); done
    (( ${marks[-1]} == CYCLES )) || marks+=("$CYCLES")
    local start=$SECONDS base=""
    printf '%-10s %10s %10s %8s\n' cycles "VmRSS KiB" "vs 100" "s"
    for mark in "${marks[@]}"; do
        while (( $(cycles_done "$dir/agent.log") < mark )); do
            kill -0 "$AGENT_PID" 2>/dev/null || { echo "the agent exited:"; tail -n 20 "$dir/agent.log"; exit 1; }
            sleep 0.2
        done
        local rss; rss=$(rss_kb "$AGENT_PID")
        [[ "$mark" == 100 ]] && base=$rss
        printf '%-10s %10s %10s %8s\n' "$mark" "$rss" "$( [[ -n "$base" ]] && ratio "$rss" "$base" || echo -)" "$(( SECONDS - start ))"
    done
    echo "peak (VmHWM): $(hwm_kb "$AGENT_PID") KiB; Waldur requests: $(curl -sf "${URL%/api/}/__sim/counters" | python3 -c 'import json,sys; print(sum(json.load(sys.stdin).values()))')"
    stop_agent
    stop_sim
}

bench_idle() {
    local dir="$WORK/idle" second_settings second_backend=demo
    generate membership_sync "$dir"
    # The second offering: no resources, its own plugin.
    python3 - "$dir/scenario.yaml" "$SLURM_OFFERING" <<'EOF'
import sys, yaml
path, uuid = sys.argv[1], sys.argv[2]
scenario = yaml.safe_load(open(path))
second = dict(scenario["offerings"][0], uuid=uuid, name="Second Offering")
scenario["offerings"].append(second)
yaml.safe_dump(scenario, open(path, "w"), sort_keys=False)
EOF
    second_settings="$(demo_settings "$dir/state2")"
    if "$ROOT/scripts/slurm-setup.sh" status >/dev/null 2>&1; then
        second_backend=slurm
        second_settings="$(printf '      default_account: root\n      cluster_name: waldurtest\n      customer_prefix: "c_"\n      project_prefix: "p_"\n      allocation_prefix: "a_"')"
    else
        log "real SLURM is not running (scripts/slurm-setup.sh start): offering 2 uses the demo plugin"
    fi
    mkdir -p "$dir/state2" "$dir/run"
    start_sim "$dir/scenario.yaml"
    {
        echo "runtime_dir: \"$dir/run\""
        echo "offerings:"
        offering "Bench" "$OFFERING" demo base "$(demo_settings "$dir/state")"
        offering "Second" "$SLURM_OFFERING" "$second_backend" base "$second_settings"
    } >"$dir/config.yaml"
    run_agent all "$dir/config.yaml" "$dir/agent.log" \
        WALDUR_SITE_AGENT_ORDER_PROCESS_PERIOD_MINUTES=1 WALDUR_SITE_AGENT_REPORT_PERIOD_MINUTES=1 \
        WALDUR_SITE_AGENT_MEMBERSHIP_SYNC_PERIOD_MINUTES=1 RUST_LOG=warn,waldur_agent::modes::cycle=info
    echo "offering 2: $second_backend plugin; plugins loaded: $(ls "$WORK/plugins" | tr '\n' ' ')"
    printf '%-8s %10s %10s %8s\n' minute "VmRSS KiB" "vs min 1" cycles
    local base="" minute rss
    for (( minute = 1; minute <= MINUTES; minute++ )); do
        sleep 60
        kill -0 "$AGENT_PID" 2>/dev/null || { echo "the agent exited:"; tail -n 20 "$dir/agent.log"; exit 1; }
        rss=$(rss_kb "$AGENT_PID")
        [[ -n "$base" ]] || base=$rss
        printf '%-8s %10s %10s %8s\n' "$minute" "$rss" "$(ratio "$rss" "$base")" "$(cycles_done "$dir/agent.log")"
    done
    echo "peak (VmHWM): $(hwm_kb "$AGENT_PID") KiB; errors in the log: $(grep -c ' ERROR ' "$dir/agent.log" || true)"
    stop_agent
    stop_sim
}

[[ -z "$ONLY" || "$ONLY" == cycles ]] && { log "$CYCLES order_process cycles"; bench_cycles; }
[[ -z "$ONLY" || "$ONLY" == idle ]] && { log "run -m all for $MINUTES minute(s) of 1-minute cycles"; bench_idle; }
exit 0
