#!/usr/bin/env bash
# Benchmark: the Rust waldur-agent against the reference Python waldur-site-agent 1.0.7 (PyPI),
# one cycle of each polling mode on generated scenarios, both agents against the Waldur
# simulator (tests/waldur-sim) with equivalent JSON-file backends (Rust: plugins/demo; Python:
# scripts/python/waldur_sim_demo.py, same state and usage files).
#
# Per size (resources; 10 team members per resource, 10 resources per project) and mode:
#   order_process    every resource has a pending-provider Create order (backend empty)
#   report           usage files for every resource and every member (current month)
#   membership_sync  every allocation misses 2 members and has 1 stale user
# and for each agent, with and without injected latency per Waldur request, it measures:
#   wall   ours: process wall time (`run -m MODE --once`); reference: process start -> its last
#          Waldur request of the first cycle (it loops forever; the end of the cycle is when the
#          simulator's counters stay still for QUIET s, then it is stopped), import time included
#   RSS    peak resident set size (/usr/bin/time -f %M)
#   req    Waldur API requests (simulator counters; simulator and backend are fresh per run)
#   done   orders set done / resources with set_usage / resources with refresh_last_sync
# and prints a table per size with the ratios ours/reference. Prints figures; not a test.
#
# Usage: scripts/bench-agent.sh [--sizes 100,1000,10000] [--modes order_process,report,membership_sync]
#                               [--latencies 0,5] [--ref-max-size N] [--no-ref] [--quiet S]
#                               [--ref-timeout S]
#   --ref-max-size N   run the reference only for sizes <= N (e.g. 1000 skips it at 10,000)
#   --no-ref           never run the reference (only ours)
# Env: REFERENCE_AGENT_VENV (default target/reference-agent/venv), KEEP_WORK=1 keeps the work dir target/bench-agent/run.XXXXXX.
# Needs cargo, python3 with venv, PyPI access for the first run; installs Debian `time` if
# /usr/bin/time is missing. Everything listens on 127.0.0.1 only.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
OUT="$ROOT/target/bench-agent"
# shellcheck source=lib/reference-agent.sh
source "$ROOT/scripts/lib/reference-agent.sh"
# shellcheck source=lib/sim.sh
source "$ROOT/scripts/lib/sim.sh"
SIZES="100,1000,10000"
MODES="order_process,report,membership_sync"
LATENCIES="0,5"
REF_MAX=""
NO_REF=0
QUIET=6
REF_TIMEOUT=7200

while [[ $# -gt 0 ]]; do
    case "$1" in
        --sizes) SIZES="$2"; shift 2 ;;
        --modes) MODES="$2"; shift 2 ;;
        --latencies) LATENCIES="$2"; shift 2 ;;
        --ref-max-size) REF_MAX="$2"; shift 2 ;;
        --no-ref) NO_REF=1; shift ;;
        --quiet) QUIET="$2"; shift 2 ;;
        --ref-timeout) REF_TIMEOUT="$2"; shift 2 ;;
        -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "unknown argument: $1" >&2; exit 2 ;;
    esac
done

mkdir -p "$OUT"
WORK="$(mktemp -d "$OUT/run.XXXXXX")"   # per invocation, so concurrent runs do not collide
SIM_PID=""
AGENT_PID=""
cleanup() {
    # Only the processes this script started, by PID.
    if [[ -n "$AGENT_PID" ]]; then
        pkill -TERM -P "$AGENT_PID" 2>/dev/null || true
        kill "$AGENT_PID" 2>/dev/null || true
        wait "$AGENT_PID" 2>/dev/null || true
    fi
    sim_stop
    if [[ "${KEEP_WORK:-0}" != 1 ]]; then rm -rf "$WORK"; else echo "kept $WORK"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

log() { echo "== $*" >&2; }

# ---------------------------------------------------------------- prerequisites
if [[ ! -x /usr/bin/time ]]; then
    log "installing Debian package 'time'"
    apt-get install -y -qq time >/dev/null || { apt-get update -qq && apt-get install -y -qq time >/dev/null; }
fi
log "building (release): waldur-agent, demo + basic-username plugins, waldur-sim"
cargo build --release --quiet --manifest-path "$ROOT/Cargo.toml" \
    -p waldur-agent -p waldur-plugin-demo -p waldur-plugin-basic-username -p waldur-sim
REL="$ROOT/target/release"
AGENT="$REL/waldur-agent"
mkdir -p "$WORK/plugins"
chmod 755 "$WORK/plugins"
cp "$REL/libwaldur_plugin_demo.so" "$WORK/plugins/demo.so"
cp "$REL/libwaldur_plugin_basic_username.so" "$WORK/plugins/usernames.so"
chmod 755 "$WORK/plugins"/*.so

if [[ "$NO_REF" == 0 ]]; then
    reference_agent_install "$WORK"
fi

# ---------------------------------------------------------------- helpers
# simwatch.py ORIGIN wait-quiet START QUIET LIMIT: waits for the first API request, then until
# the counters have been still for QUIET s; prints "<first-request s> <last-request s>" after
# START (epoch). Exit 1 on LIMIT. simwatch.py ORIGIN stats MODE: "<requests> <done>".
cat >"$WORK/simwatch.py" <<'EOF'
import json, sys, time, urllib.request
origin = sys.argv[1]
def counters():
    with urllib.request.urlopen(origin + "/__sim/counters", timeout=30) as r:
        return json.load(r)
if sys.argv[2] == "wait-quiet":
    start, quiet, limit = float(sys.argv[3]), float(sys.argv[4]), float(sys.argv[5])
    last, first_t, last_t = 0, None, None
    while time.time() - start < limit:
        now = sum(counters().values())
        t = time.time()
        if now != last:
            if first_t is None:
                first_t = t
            last, last_t = now, t
        elif last_t is not None and t - last_t >= quiet:
            print(f"{first_t - start:.2f} {last_t - start:.2f}")
            sys.exit(0)
        time.sleep(0.1)
    sys.exit(1)
elif sys.argv[2] == "stats":
    c = counters()
    done_key = {
        "order_process": "POST /api/marketplace-orders/{uuid}/set_state_done/",
        "report": "POST /api/marketplace-component-usages/set_usage/",
        "membership_sync": "POST /api/marketplace-provider-resources/{uuid}/refresh_last_sync/",
    }[sys.argv[3]]
    print(sum(c.values()), c.get(done_key, 0))
EOF
# backend association count: the work the backend saw (users in allocations).
assoc_count() {
    python3 -c 'import json,sys; d=json.load(open(sys.argv[1]))["accounts"]; print(sum(len(a["users"]) for n,a in d.items() if n.startswith("a_")))' "$1/state.json" 2>/dev/null || echo "?"
}

# run_one AGENT(ours|ref) MODE SIZE LATENCY -> writes "wall rss_mb requests done assoc note" to
# $RUN/result (not run in a subshell, so the EXIT trap knows SIM_PID and AGENT_PID)
run_one() {
    local who="$1" mode="$2" size="$3" lat="$4"
    RUN="$WORK/$size-$mode-$who-${lat}ms"
    mkdir -p "$RUN"
    cp -r "$WORK/gen-$size-$mode/state" "$RUN/state"
    sim_start "$REL/waldur-sim" "$WORK/gen-$size-$mode/scenario.yaml" "$RUN"
    if [[ "$lat" != 0 ]]; then
        curl -sf -X POST -H 'Content-Type: application/json' \
            -d "{\"kind\":\"latency\",\"ms\":$lat}" "$ORIGIN/__sim/faults" >/dev/null
    fi
    local wall rc=0 note=""
    if [[ "$who" == ours ]]; then
        sim_demo_config "$RUN/config.yaml" demo base "$RUN/state"
        /usr/bin/time -f "%e %M" -o "$RUN/time.txt" \
            env WALDUR_AGENT_PLUGIN_PATH= "$AGENT" run -m "$mode" --once -c "$RUN/config.yaml" \
            --plugin-dir "$WORK/plugins" >"$RUN/agent.log" 2>&1 || rc=$?
        [[ "$rc" == 0 ]] || note="exit $rc"
        wall="$(tail -n1 "$RUN/time.txt" | cut -d' ' -f1)"
    else
        sim_demo_config "$RUN/config.yaml" sim-demo sim-demo "$RUN/state"
        local start
        start="$(date +%s.%N)"
        WALDUR_SITE_AGENT_ORDER_PROCESS_PERIOD_MINUTES=600 \
        WALDUR_SITE_AGENT_REPORT_PERIOD_MINUTES=600 \
        WALDUR_SITE_AGENT_MEMBERSHIP_SYNC_PERIOD_MINUTES=600 \
            /usr/bin/time -f "%e %M" -o "$RUN/time.txt" \
            "$REFERENCE_AGENT" -m "$mode" -c "$RUN/config.yaml" >"$RUN/agent.log" 2>&1 &
        AGENT_PID=$!
        local span
        if span="$(python3 "$WORK/simwatch.py" "$ORIGIN" wait-quiet "$start" "$QUIET" "$REF_TIMEOUT")"; then
            wall="${span#* }"
            note="start $(printf '%.1f' "${span% *}")s"
        else
            wall="-"; note="timeout"
        fi
        # /usr/bin/time is the parent; stop the agent (its child) so time reports the peak RSS.
        pkill -TERM -P "$AGENT_PID" 2>/dev/null || true
        wait "$AGENT_PID" 2>/dev/null || true
        AGENT_PID=""
        grep -q "crashed\|Traceback" "$RUN/agent.log" && note="$note, errors in log"
    fi
    local rss stats
    rss="$(tail -n1 "$RUN/time.txt" | awk '{printf "%.1f", $2/1024}')"
    stats="$(python3 "$WORK/simwatch.py" "$ORIGIN" stats "$mode")"
    curl -sf "$ORIGIN/__sim/counters" >"$RUN/counters.json" || true
    sim_stop
    echo "$wall $rss $stats $(assoc_count "$RUN/state") ${note:-ok}" >"$RUN/result"
}

ratio() { python3 -c 'import sys
a,b=sys.argv[1],sys.argv[2]
try: print(f"{float(a)/float(b):.3f}")
except Exception: print("-")' "$1" "$2"; }

# ---------------------------------------------------------------- matrix
IFS=, read -r -a SIZE_LIST <<<"$SIZES"
IFS=, read -r -a MODE_LIST <<<"$MODES"
IFS=, read -r -a LAT_LIST <<<"$LATENCIES"
SKIPPED=()
REPORT="$OUT/results-$(date +%Y%m%d-%H%M%S).txt"
for size in "${SIZE_LIST[@]}"; do
    ref=1
    if [[ "$NO_REF" == 1 ]] || { [[ -n "$REF_MAX" ]] && (( size > REF_MAX )); }; then
        ref=0; SKIPPED+=("reference agent at $size resources")
    fi
    rows=()
    for mode in "${MODE_LIST[@]}"; do
        log "generating $size resources for $mode"
        mkdir -p "$WORK/gen-$size-$mode"
        "$REL/waldur-sim-scenario" --mode "$mode" --resources "$size" --users 10 \
            --offering-uuid "$OFFERING" --token "$TOKEN" \
            --scenario "$WORK/gen-$size-$mode/scenario.yaml" --state-dir "$WORK/gen-$size-$mode/state"
        for lat in "${LAT_LIST[@]}"; do
            log "$size $mode ${lat}ms: ours"
            run_one ours "$mode" "$size" "$lat"
            read -r o_wall o_rss o_req o_done o_assoc o_note <"$RUN/result"
            if [[ "$ref" == 1 ]]; then
                log "$size $mode ${lat}ms: reference"
                run_one ref "$mode" "$size" "$lat"
                read -r r_wall r_rss r_req r_done r_assoc r_note <"$RUN/result"
            else
                r_wall=-; r_rss=-; r_req=-; r_done=-; r_assoc=-; r_note="skipped"
            fi
            rows+=("$(printf '%-16s %4s | %8s %8s | %7s %7s | %7s %7s | %6s %6s | %7s %7s | %6s %6s %6s | ours: %s; ref: %s' \
                "$mode" "${lat}ms" "$o_wall" "$r_wall" "$o_rss" "$r_rss" "$o_req" "$r_req" \
                "$o_done" "$r_done" "$o_assoc" "$r_assoc" \
                "$(ratio "$o_wall" "$r_wall")" "$(ratio "$o_rss" "$r_rss")" "$(ratio "$o_req" "$r_req")" \
                "$o_note" "$r_note")")
        done
        rm -rf "$WORK/gen-$size-$mode"
    done
    {
        echo
        echo "== $size resources, 10 users each ($(( (size + 9) / 10 )) projects), latency per Waldur request as given"
        printf '%-16s %4s | %8s %8s | %7s %7s | %7s %7s | %6s %6s | %7s %7s | %6s %6s %6s | notes\n' \
            mode lat "ours s" "ref s" "ours MB" "ref MB" "ours rq" "ref rq" "ours✓" "ref✓" "ours as" "ref as" \
            "t o/r" "M o/r" "rq o/r"
        printf '%s\n' "${rows[@]}"
    } | tee -a "$REPORT"
done
{
    echo
    echo "s = wall seconds (ref: start -> last request of its first cycle; 'start' = until its first request);"
    echo "MB = peak RSS; rq = Waldur requests; ✓ = orders done / set_usage / refresh_last_sync;"
    echo "as = user associations in allocations afterwards; o/r = ours / reference."
    if [[ ${#SKIPPED[@]} -gt 0 ]]; then printf 'skipped: %s\n' "${SKIPPED[@]}"; fi
} | tee -a "$REPORT"
log "results saved to $REPORT"
