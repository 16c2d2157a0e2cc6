#!/usr/bin/env bash
# Conformance of the Waldur API simulator (tests/waldur-sim) against the reference Python agent:
# runs PyPI waldur-site-agent==1.0.7, unchanged, in order_process, membership_sync and report
# modes (one cycle each) against the simulator seeded with
# tests/waldur-sim/scenarios/conformance.yaml, using the JSON-file backend plugin `sim-demo`
# (scripts/python/), then checks the simulator's state through /__sim/ and prints PASS/FAIL per check.
# Then event_process: the simulator attached to the real RabbitMQ (scripts/rabbitmq-setup.sh),
# an order and a role grant published as events, and the agent's reactions checked the same way.
#
# Usage: scripts/conformance-python.sh        (exit 0 when every check passes)
# Env:   REFERENCE_AGENT_VENV  virtualenv to (re)use (default target/reference-agent/venv)
#        KEEP_TMP=1        keep the temp dir with configs and agent logs
# Needs python3 with venv, access to PyPI and the broker running. Not run in CI.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=lib/reference-agent.sh
source "$ROOT/scripts/lib/reference-agent.sh"
# shellcheck source=lib/sim.sh
source "$ROOT/scripts/lib/sim.sh"
SCENARIO="$ROOT/tests/waldur-sim/scenarios/conformance.yaml"
# The offering of lib/sim.sh (its TOKEN too), dashed on purpose: the agent sends it as written.
OFFERING="d629d5e4-5567-425d-a9cd-bdc1af67b32c"
TMP="$(mktemp -d "${TMPDIR:-/tmp}/waldur-conformance.XXXXXX")"
SIM_PID=""
AGENT_PID=""

cleanup() {
    # Only the processes this script started, by PID.
    [[ -n "$AGENT_PID" ]] && kill "$AGENT_PID" 2>/dev/null && wait "$AGENT_PID" 2>/dev/null || true
    broker_cleanup
    sim_stop
    if [[ "${KEEP_TMP:-0}" == 1 ]]; then echo "kept $TMP"; else rm -rf "$TMP"; fi
}
trap cleanup EXIT

log() { echo "== $*"; }

# ---------------------------------------------------------------- simulator
log "building waldur-sim"
cargo build --quiet -p waldur-sim --manifest-path "$ROOT/Cargo.toml"
sim_start "$ROOT/target/debug/waldur-sim" "$SCENARIO" "$TMP"
log "simulator at $URL"

# ---------------------------------------------------------------- Python agent + plugin
# The `sim-demo` backend (scripts/python/waldur_sim_demo.py): its "cluster" is a JSON state dir in
# the Rust demo plugin's format, so state survives between the three agent processes.
reference_agent_install "$TMP"

# The backend "cluster" already has the two resources the scenario says exist, and usage for
# them (and for the allocation the Create order makes) this month.
STATE="$TMP/backend"
MONTH="$(date -u +%Y-%m)"
mkdir -p "$STATE/usage/$MONTH"
cat >"$STATE/state.json" <<'EOF'
{"version": 1, "homedirs": {}, "accounts": {
 "sim_cust-slug": {"name": "sim_cust-slug", "description": "Feas Customer", "organization": "sim_cust-slug",
                   "parent": "root", "limits": {}, "user_limits": {}, "users": {}, "qos": "normal"},
 "sim_proj-slug": {"name": "sim_proj-slug", "description": "Feas Project", "organization": "sim_proj-slug",
                   "parent": "sim_cust-slug", "limits": {}, "user_limits": {}, "users": {}, "qos": "normal"},
 "sim_running-alloc": {"name": "sim_running-alloc", "description": "running-alloc", "organization": "sim_proj-slug",
                       "parent": "sim_proj-slug", "limits": {"cpu": 5, "mem": 5},
                       "users": {"alice1": {"default_account": "root"}}, "user_limits": {}, "qos": "normal"},
 "sim_old-alloc": {"name": "sim_old-alloc", "description": "old-alloc", "organization": "sim_proj-slug",
                   "parent": "sim_proj-slug", "limits": {"cpu": 1, "mem": 1}, "users": {}, "user_limits": {},
                   "qos": "normal"}}}
EOF
for acc in sim_running-alloc sim_new-alloc; do
    echo '{"alice1": {"cpu": 12.345, "mem": 1.0}}' >"$STATE/usage/$MONTH/$acc.json"
done

cat >"$TMP/config.yaml" <<EOF
sentry_dsn: ""
timezone: "UTC"
offerings:
  - name: "Simulated Offering"
    waldur_api_url: "$URL"
    waldur_api_token: "$TOKEN"
    waldur_offering_uuid: "$OFFERING"
    username_management_backend: "sim-demo"
    order_processing_backend: "sim-demo"
    membership_sync_backend: "sim-demo"
    reporting_backend: "sim-demo"
    resource_import_enabled: false
    stomp_enabled: false
    backend_type: "sim-demo"
    backend_settings:
      state_dir: "$STATE"
      allocation_prefix: "sim_"
      project_prefix: "sim_"
      customer_prefix: "sim_"
    backend_components:
      cpu: {limit: 10, measured_unit: "k-Hours", unit_factor: 1, accounting_type: "usage", label: "CPU"}
      mem: {limit: 10, measured_unit: "gb-Hours", unit_factor: 1, accounting_type: "usage", label: "RAM"}
EOF

# ---------------------------------------------------------------- helper (stdlib only)
cat >"$TMP/simctl.py" <<'EOF'
import json, sys, time, urllib.request

ORIGIN = sys.argv[1]

def get(path):
    with urllib.request.urlopen(ORIGIN + path, timeout=10) as r:
        return json.load(r)

def total():
    return sum(get("/__sim/counters").values())

def wait_quiet(baseline, quiet, limit):
    """Waits for the agent's first request, then until it has been silent for `quiet` s (the
    agent sleeps 60 s between cycles, so silence means the cycle is over)."""
    start = time.time()
    last, last_change = total(), time.time()
    while time.time() - start < limit:
        time.sleep(0.5)
        now = total()
        if now != last:
            last, last_change = now, time.time()
        elif now > baseline and time.time() - last_change >= quiet:
            return 0
    return 1

if sys.argv[2] == "total":
    print(total())
elif sys.argv[2] == "wait-quiet":
    sys.exit(wait_quiet(int(sys.argv[3]), float(sys.argv[4]), float(sys.argv[5])))
elif sys.argv[2] == "count":
    print(get("/__sim/counters").get(sys.argv[3], 0))
EOF
PY="$REFERENCE_VENV/bin/python"
simctl() { "$PY" "$TMP/simctl.py" "$ORIGIN" "$@"; }

# ---------------------------------------------------------------- model check
# Every object shape the agent parses goes through waldur-api-client's own from_dict; this
# mutates the state, so the scenario is reloaded and the log reset afterwards.
cat >"$TMP/modelcheck.py" <<'EOF'
import json, sys, urllib.request
from waldur_api_client import models as M
base, tok = sys.argv[1], sys.argv[2]
def req(p, method="GET", body=None):
    r = urllib.request.Request(base + p, method=method, data=None if body is None else json.dumps(body).encode(),
                               headers={"Authorization": "Token " + tok, "Content-Type": "application/json"})
    return json.load(urllib.request.urlopen(r))
off = "d629d5e45567425da9cdbdc1af67b32c"
ident = req("marketplace-site-agent-identities/", "POST", {"offering": off, "name": "agent-x", "version": "1", "dependencies": []})
svc = req(f"marketplace-site-agent-identities/{ident['uuid']}/register_service/", "POST", {"name": "order_process", "mode": "order_process"})
proc = req(f"marketplace-site-agent-services/{svc['uuid']}/register_processor/", "POST", {"name": "P", "backend_type": "x", "backend_version": "1"})
req("marketplace-component-usages/set_usage/", "POST", {"usages": [{"type": "cpu", "amount": "1.00"}], "resource": "88888888888888888888888888888802", "date": "2026-11-01T00:00:00+00:00"})
cu = req("marketplace-component-usages/?resource_uuid=88888888888888888888888888888802")[0]
req(f"marketplace-component-usages/{cu['uuid']}/set_user_usages/", "POST", {"usages": [{"username": "alice1", "usage": "1.00"}]})
req("marketplace-provider-resources/88888888888888888888888888888802/refresh_last_sync/", "POST", {})
checks = [
  ("AgentIdentity", [ident, req(f"marketplace-site-agent-identities/{ident['uuid']}/")]),
  ("AgentService", [svc]), ("AgentProcessor", [proc]),
  ("UserMe" if hasattr(M, "UserMe") else "User", [req("users/me/")]),
  ("Version", [req("version/")]),
  ("ProviderOfferingDetails", [req(f"marketplace-provider-offerings/{off}/")]),
  ("ServiceProvider", req("marketplace-service-providers/")),
  ("OfferingUserAttributeConfig", [req(f"marketplace-provider-offerings/{off}/user-attribute-config/")]),
  ("SshKey", req("marketplace-service-providers/66666666666666666666666666666666/keys/")),
  ("OrderDetails", req("marketplace-orders/")),
  ("Resource", req("marketplace-provider-resources/")),
  ("ProjectUser", req("marketplace-provider-resources/88888888888888888888888888888801/team/")),
  ("OfferingUser", req("marketplace-offering-users/")),
  ("ComponentUsage", req("marketplace-component-usages/")),
  ("ComponentUserUsage", req("marketplace-component-user-usages/")),
  ("ProviderPlanDetails", [req("marketplace-plans/12121212-1212-1212-1212-121212121201/")]),
  ("ComponentUserUsageLimit", req("component-user-usage-limits/?resource_uuid=88888888888888888888888888888802")),
]
bad = 0
for name, objs in checks:
    cls = getattr(M, name)
    for o in objs:
        try:
            m = cls.from_dict(o)
            # touch every attribute to force lazy parsing
            m.to_dict()
        except Exception as e:
            bad += 1; print(f"FAIL  model {name} parses: {type(e).__name__}: {e}")
    print(f"PASS  model {name} parses ({len(objs)} objects)")
sys.exit(1 if bad else 0)
EOF
log "model check (waldur-api-client from_dict on every response shape)"
MODEL_OK=0
"$PY" "$TMP/modelcheck.py" "$URL" "$TOKEN" || MODEL_OK=1
curl -sf -X POST --data-binary @"$SCENARIO" "$ORIGIN/__sim/scenario" >/dev/null
curl -sf -X POST "$ORIGIN/__sim/reset" >/dev/null

run_mode() {
    local mode="$1" base
    base="$(simctl total)"
    log "agent: $mode (one cycle)"
    WALDUR_SITE_AGENT_ORDER_PROCESS_PERIOD_MINUTES=60 \
    WALDUR_SITE_AGENT_REPORT_PERIOD_MINUTES=60 \
    WALDUR_SITE_AGENT_MEMBERSHIP_SYNC_PERIOD_MINUTES=60 \
        timeout 120 "$REFERENCE_AGENT" -m "$mode" -c "$TMP/config.yaml" >"$TMP/agent-$mode.log" 2>&1 &
    AGENT_PID=$!
    if ! simctl wait-quiet "$base" 8 110; then echo "   (agent $mode did not go quiet in time)"; fi
    kill "$AGENT_PID" 2>/dev/null || true
    wait "$AGENT_PID" 2>/dev/null || true
    AGENT_PID=""
    echo "   $(( $(simctl total) - base )) API requests"
}

run_mode order_process
run_mode membership_sync
run_mode report
SET_USAGE_AFTER_FIRST="$(simctl count 'POST /api/marketplace-component-usages/set_usage/')"
run_mode report   # second report: same numbers, so no new set_usage (idempotency)

# ---------------------------------------------------------------- checks
log "checks"
set +e
PYTHONPATH="$ROOT/scripts/lib" "$PY" - "$ORIGIN" "$STATE/state.json" "$SET_USAGE_AFTER_FIRST" <<'EOF'
import json, sys, urllib.request
from checks import report
origin, backend_file, set_usage_first = sys.argv[1], sys.argv[2], int(sys.argv[3])
get = lambda p: json.load(urllib.request.urlopen(origin + p, timeout=10))
st, log, counters = get("/__sim/state"), get("/__sim/log"), get("/__sim/counters")
backend = json.load(open(backend_file))["accounts"]
O = lambda n: st["orders"]["7777777777777777777777777777770" + n]
R = lambda n: st["resources"]["8888888888888888888888888888880" + n]
period = None
for u in st["component_usages"].values():
    period = u["billing_period"]
usages = {(u["resource_uuid"][-2:], u["type"]): u for u in st["component_usages"].values()}
services = sorted(s["name"] for s in st["services"].values())
bob = st["offering_users"]["33333333333333333333333333333302"]
errors = [f'{e["method"]} {e["path"]}?{e["query"]} -> {e["status"]}' for e in log if e["status"] >= 400 or e["status"] == 0]
checks = [
    ("agent registered identity, 3 services, 3 processors",
     len(st["identities"]) == 1 and services == ["membership_sync", "order_process", "report"]
     and len(st["processors"]) == 3, (len(st["identities"]), services, len(st["processors"]))),
    ("Create order done", O("1")["state"] == "done", O("1")["state"]),
    ("created resource OK with backend_id and limits",
     R("1")["state"] == "OK" and R("1")["backend_id"] == "sim_new-alloc" and R("1")["limits"] == {"cpu": 10, "mem": 10},
     (R("1")["state"], R("1")["backend_id"], R("1")["limits"])),
    ("Update order done, resource limits := order limits",
     O("2")["state"] == "done" and R("2")["limits"] == {"cpu": 20, "mem": 20} and R("2")["state"] == "OK",
     (O("2")["state"], R("2")["limits"])),
    ("Terminate order done, resource Terminated",
     O("3")["state"] == "done" and R("3")["state"] == "Terminated", (O("3")["state"], R("3")["state"])),
    ("backend: allocation created with limits, old one deleted",
     "sim_new-alloc" in backend and backend["sim_new-alloc"]["limits"] == {"cpu": 10, "mem": 10}
     and "sim_old-alloc" not in backend and backend["sim_running-alloc"]["limits"] == {"cpu": 20, "mem": 20},
     sorted(backend)),
    ("offering user created by the agent (begin_creating + PATCH -> OK)",
     bob["state"] == "OK" and bob["username"] == "sim_bob", (bob["state"], bob["username"])),
    ("membership: team added to backend",
     {"alice1", "sim_bob"} <= set(backend.get("sim_new-alloc", {}).get("users", {})),
     sorted(backend.get("sim_new-alloc", {}).get("users", {}))),
    ("membership: last_sync refreshed and metadata pushed",
     all(R(n)["last_sync"] and (R(n)["backend_metadata"] or {}).get("qos") == "normal" for n in "12"),
     [(R(n)["last_sync"], R(n)["backend_metadata"]) for n in "12"]),
    ("report: usage stored per resource and component (12.35 cpu)",
     all(usages.get((n, "cpu"), {}).get("usage") == "12.35" and (n, "mem") in usages for n in ("01", "02")),
     {k: v["usage"] for k, v in usages.items()}),
    ("report: per-user usage stored",
     any(uu["username"] in ("alice1", "sim_bob") for uu in st["user_usages"].values()),
     [(u["username"], u["usage"]) for u in st["user_usages"].values()]),
    ("report: second cycle made no new set_usage (idempotent)",
     set_usage_first >= 1 and counters.get("POST /api/marketplace-component-usages/set_usage/") == set_usage_first,
     (set_usage_first, counters.get("POST /api/marketplace-component-usages/set_usage/"))),
    ("no 4xx/5xx answers", not errors, errors[:10]),
]
report(checks)
EOF
CHECKS_OK=$?
set -e

# ---------------------------------------------------------------- event_process over RabbitMQ
# The same agent in event_process, subscribed through the simulator's register_queue to the
# real broker of scripts/rabbitmq-setup.sh: a user orders (a Create announced `executing`) and
# carol is granted a role in the project; the agent's reactions are checked like the cycles'.
EVENTS_OK=0
if broker_available; then
    broker_attach "$ORIGIN"
    config="$(cat "$TMP/config.yaml")"
    echo "${config/    stomp_enabled: false/$STOMP_OFFERING_LINES}" >"$TMP/config-events.yaml"
    curl -sf -X POST "$ORIGIN/__sim/reset" >/dev/null
    log "agent: event_process (Web-STOMP, single queue)"
    WALDUR_SITE_AGENT_RECONCILIATION_PERIOD_MINUTES=600 \
        timeout 300 "$REFERENCE_AGENT" -m event_process -c "$TMP/config-events.yaml" \
        >"$TMP/agent-event_process.log" 2>&1 &
    AGENT_PID=$!
    if python3 "$ROOT/scripts/lib/bench_events.py" ready "$ORIGIN" "$MGMT_USER|$MGMT_PASSWORD|$MGMT_URL" \
            "$BROKER_VHOST" "$AGENT_PID" 5 120; then
        curl -sf -X POST -H 'Content-Type: application/json' "$ORIGIN/__sim/changes" -d '[
            {"kind": "order_created", "order": {"type": "Create", "state": "executing",
             "offering": "Feasibility Offering", "project": "proj-slug",
             "resource_name": "event-alloc", "limits": {"cpu": 3, "mem": 3}}},
            {"kind": "role_granted", "project_uuid": "99999999999999999999999999999999",
             "user_uuid": "44444444444444444444444444444403", "role": "PROJECT.MEMBER"}]' >/dev/null
        set +e
        PYTHONPATH="$ROOT/scripts/lib" "$PY" - "$ORIGIN" "$STATE/state.json" "$MGMT_USER" "$MGMT_PASSWORD" \
            "$MGMT_URL" <<'PYEOF'
import base64, json, sys, time, urllib.request
from checks import report
origin, backend_file, user, password, mgmt = sys.argv[1:6]
get = lambda p: json.load(urllib.request.urlopen(origin + p, timeout=10))
ALLOCATIONS = ("sim_running-alloc", "sim_new-alloc", "sim_event-alloc")
def backend():
    try:
        return json.load(open(backend_file))["accounts"]
    except (OSError, ValueError):
        return {}
def order():
    return next((o for o in get("/__sim/state")["orders"].values() if o["resource_name"] == "event-alloc"), {})
def settled():
    b = backend()
    return order().get("state") in ("done", "erred") and all("carol1" in b.get(a, {}).get("users", {}) for a in ALLOCATIONS)
deadline = time.time() + 120
while time.time() < deadline and not settled():
    time.sleep(0.5)
def queue_messages():
    q = next(iter(get("/__sim/state")["consumer_queues"].values()))
    request = urllib.request.Request(f"{mgmt}/api/queues/{q['vhost']}/{q['queue_name']}")
    request.add_header("Authorization", "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode())
    return json.load(urllib.request.urlopen(request, timeout=10)).get("messages")
for _ in range(20):  # the management API's counters lag by up to 500 ms
    if queue_messages() == 0:
        break
    time.sleep(0.5)
st, log, b = get("/__sim/state"), get("/__sim/log"), backend()
o = order()
res = st["resources"].get(o.get("resource_uuid"), {})
published = get("/__sim/events")[-2:]
services = sorted(s["name"] for s in st["services"].values() if s["mode"] == "event_process")
errors = [f'{e["method"]} {e["path"]}?{e["query"]} -> {e["status"]}' for e in log if e["status"] >= 400 or e["status"] == 0]
checks = [
    ("event: both events routed to the consumer queue",
     [p["object_type"] for p in published] == ["order", "user_role"] and all(p["routed"] for p in published),
     [(p["object_type"], p["routed"], p["error"]) for p in published]),
    ("event: services initial-offering-process, event_process-order, event_process-user_role",
     {"initial-offering-process", "event_process-order", "event_process-user_role"} <= set(services), services),
    ("event: Create order done by its event", o.get("state") == "done", o.get("state")),
    ("event: its resource OK with backend_id and limits",
     res.get("state") == "OK" and res.get("backend_id") == "sim_event-alloc" and res.get("limits") == {"cpu": 3, "mem": 3},
     (res.get("state"), res.get("backend_id"), res.get("limits"))),
    ("event: backend allocation created with the order's limits",
     b.get("sim_event-alloc", {}).get("limits") == {"cpu": 3, "mem": 3}, b.get("sim_event-alloc")),
    ("event: the granted user added to every allocation of the project",
     all("carol1" in b.get(a, {}).get("users", {}) for a in ALLOCATIONS),
     {a: sorted(b.get(a, {}).get("users", {})) for a in ALLOCATIONS}),
    ("event: the queue drained (ack:auto)", queue_messages() == 0, queue_messages()),
    ("event: no 4xx/5xx answers", not errors, errors[:10]),
]
report(checks)
PYEOF
        EVENTS_OK=$?
        set -e
    else
        echo "FAIL  event: the agent did not subscribe (log: $TMP/agent-event_process.log)"
        tail -n 20 "$TMP/agent-event_process.log"
        EVENTS_OK=1
    fi
    kill "$AGENT_PID" 2>/dev/null || true
    wait "$AGENT_PID" 2>/dev/null || true
    AGENT_PID=""
    broker_cleanup
else
    echo "FAIL  event: RabbitMQ's management API does not answer at $MGMT_URL (start scripts/rabbitmq-setup.sh)"
    EVENTS_OK=1
fi
exit $(( MODEL_OK || CHECKS_OK || EVENTS_OK ))
