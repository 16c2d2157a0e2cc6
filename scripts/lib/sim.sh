# Sourced by the scripts that run agents against the Waldur simulator (bench-agent.sh,
# bench-events.sh, bench-slurm.sh, conformance-python.sh): starting and stopping it, the config
# both agents share with the JSON-file backends, and attaching it to the RabbitMQ of
# scripts/rabbitmq-setup.sh (and removing what it created there).
#
# RABBITMQ_ADMIN_USER / RABBITMQ_ADMIN_PASSWORD as for scripts/rabbitmq-setup.sh.

# The API token and offering of the generated scenarios (waldur-sim-scenario --token,
# --offering-uuid) and of the configs below.
TOKEN="0123456789abcdef0123456789abcdef01234567"
OFFERING="d629d5e45567425da9cdbdc1af67b32c"

# sim_start BINARY SCENARIO DIR: starts the simulator (output in DIR/sim.out, DIR/sim.err);
# sets SIM_PID, URL (the API root it prints first) and ORIGIN.
sim_start() {
    "$1" --scenario "$2" >"$3/sim.out" 2>"$3/sim.err" &
    SIM_PID=$!
    for _ in $(seq 600); do [[ -s "$3/sim.out" ]] && break; sleep 0.1; done
    URL="$(head -n1 "$3/sim.out")"
    [[ "$URL" == http://127.0.0.1:*/api/ ]] || { echo "simulator did not start"; cat "$3/sim.err"; exit 1; }
    ORIGIN="${URL%/api/}"
}

sim_stop() {
    if [[ -n "${SIM_PID:-}" ]]; then kill "$SIM_PID" 2>/dev/null || true; wait "$SIM_PID" 2>/dev/null || true; fi
    SIM_PID=""
}

# sim_demo_config FILE BACKEND USERNAME_BACKEND STATE_DIR [OFFERING_LINES]: an agent config for
# the offering $OFFERING at $URL with token $TOKEN, every mode on BACKEND (Rust `demo`, Python
# `sim-demo`: the same JSON state format in STATE_DIR, prefixes c_/p_/a_). OFFERING_LINES (YAML,
# indented as offering keys) replace `stomp_enabled: false`.
sim_demo_config() {
    local offering_lines="${5:-    stomp_enabled: false}"
    cat >"$1" <<CONFIG
sentry_dsn: ""
timezone: "UTC"
offerings:
  - name: "Bench Offering"
    waldur_api_url: "$URL"
    waldur_api_token: "$TOKEN"
    waldur_offering_uuid: "$OFFERING"
    username_management_backend: "$3"
    order_processing_backend: "$2"
    membership_sync_backend: "$2"
    reporting_backend: "$2"
    resource_import_enabled: false
$offering_lines
    backend_type: "$2"
    backend_settings:
      state_dir: "$4"
      customer_prefix: "c_"
      project_prefix: "p_"
      allocation_prefix: "a_"
    backend_components:
      cpu: {limit: 10, measured_unit: "k-Hours", unit_factor: 1, accounting_type: "usage", label: "CPU"}
      mem: {limit: 10, measured_unit: "gb-Hours", unit_factor: 1, accounting_type: "usage", label: "RAM"}
CONFIG
}

# The offering keys that subscribe over Web-STOMP to that broker (for either agent).
STOMP_OFFERING_LINES='    stomp_enabled: true
    stomp_ws_host: "127.0.0.1"
    stomp_ws_port: 15674
    stomp_ws_path: "/ws"
    websocket_use_tls: false'

MGMT_URL="http://127.0.0.1:15672"
MGMT_USER="${RABBITMQ_ADMIN_USER:-waldur-admin}"
MGMT_PASSWORD="${RABBITMQ_ADMIN_PASSWORD:-waldur-admin-test}"
BROKER_VHOST=""
BROKER_USERS=()

mgmt() { # METHOD PATH: the management API as administrator
    curl -sf -u "$MGMT_USER:$MGMT_PASSWORD" -X "$1" "$MGMT_URL/api/$2" >/dev/null
}

broker_available() { mgmt GET overview; }

# broker_attach ORIGIN: the simulator at ORIGIN creates vhosts, users and queues on the broker
# and publishes there. Remembers what it will create for broker_cleanup: the vhost is the agent
# user's id; the 1.0.7 flow (register_queue) logs in as the agent's username.
broker_attach() {
    local origin="$1"
    curl -sf -X POST -H 'Content-Type: application/json' \
        -d "{\"management_url\":\"$MGMT_URL\",\"admin_user\":\"$MGMT_USER\",\"admin_password\":\"$MGMT_PASSWORD\"}" \
        "$origin/__sim/broker" >/dev/null
    local who
    who="$(curl -sf "$origin/__sim/state" | python3 -c \
        'import json,sys; u=json.load(sys.stdin)["agent_user"]; print(u["uuid"], u["username"])')"
    BROKER_VHOST="${who% *}"
    BROKER_USERS=("${who#* }")
}

# broker_cleanup: removes the attached simulator's vhost (with its queues) and users.
broker_cleanup() {
    if [[ -n "$BROKER_VHOST" ]]; then mgmt DELETE "vhosts/$BROKER_VHOST" || true; fi
    local user
    for user in "${BROKER_USERS[@]}"; do mgmt DELETE "users/$user" || true; done
    BROKER_VHOST=""
    BROKER_USERS=()
}
