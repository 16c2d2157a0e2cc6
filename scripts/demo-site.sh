# Sourced by package-test.sh and package-figures.sh: a demo site for an installed or packaged
# agent. The Waldur simulator serves the scenario of `waldur-agent demo`
# (host/src/demo/scenario.yaml); the agent config serves its offering with the demo plugin.
# Expects WORK (a scratch directory the caller removes) and SIM_PID="" (the caller's exit
# trap stops the simulator by that PID).

# start_demo_sim SIM_BINARY: starts it; sets SIM_PID, SIM_URL (http://127.0.0.1:PORT/api/)
# and SIM_ORIGIN (http://127.0.0.1:PORT, for /__sim/).
start_demo_sim() {
    "$1" --scenario host/src/demo/scenario.yaml >"$WORK/sim.url" 2>"$WORK/sim.log" &
    SIM_PID=$!
    for _ in $(seq 100); do [[ -s "$WORK/sim.url" ]] && break; sleep 0.1; done
    SIM_URL="$(head -n 1 "$WORK/sim.url")"
    [[ -n "$SIM_URL" ]] || { echo "the simulator did not start: $(cat "$WORK/sim.log")" >&2; return 1; }
    SIM_ORIGIN="${SIM_URL%/api/}"
}

# write_demo_config FILE [TOP-LEVEL LINES]: the config (mode 0600, as the agent's own warning
# asks), its runtime directory and demo state under WORK.
write_demo_config() {
    mkdir -p "$WORK/state"
    cat >"$1" <<CONFIG
timezone: UTC
runtime_dir: $WORK/run
${2:-}
offerings:
  - name: Demo HPC
    waldur_api_url: $SIM_URL
    waldur_api_token: demo-token
    waldur_offering_uuid: 5a5a5a5a5a5a5a5a5a5a5a5a5a5a5e01
    backend_type: demo
    reporting_backend: demo
    backend_settings:
      state_dir: $WORK/state
    backend_components:
      cpu: {measured_unit: core-hours, accounting_type: limit, label: CPU}
      mem: {measured_unit: GB-hours, accounting_type: usage, label: Memory}
CONFIG
    chmod 600 "$1"
}
