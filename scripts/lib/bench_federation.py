"""Figures of the Waldur federation plugin (run by scripts/bench-federation.sh; not a test).

Two simulators, source and target; the agent serves the source offering with the federation
plugin; the target completes every order its consumer places after --approve-ms (what the
target's own site would do). For each variant, --orders Create orders are created on the source
one after another (each an `order_created` change, which also publishes its event) and the time
from creating it to the source order being done is measured, with the requests each Waldur
served per order (simulator counters, everything the agent sent in that window):

- polling: `run -m order_process`, order cycles every --period minutes (the reference default is
  5; a pending target order is looked at again at the next cycle);
- events:  `run -m event_process` with target_stomp_enabled on the real RabbitMQ: the source
  order's event starts it, the target order's event completes it.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
import urllib.request
import uuid

TOKEN = "bench-source-token"
TARGET_TOKEN = "bench-target-token"
OFFERING = "d629d5e45567425da9cdbdc1af67b32c"
TARGET_OFFERING = "0e0e0e0e0e0e0e0e0e0e0e0e0e0e0e01"
TARGET_CUSTOMER = "b5b5b5b5b5b5b5b5b5b5b5b5b5b5b5b5"
MGMT = os.environ.get("MGMT_URL", "http://127.0.0.1:15672")
MGMT_USER = os.environ.get("RABBITMQ_ADMIN_USER", "waldur-admin")
MGMT_PASSWORD = os.environ.get("RABBITMQ_ADMIN_PASSWORD", "waldur-admin-test")


def call(url, method="GET", body=None):
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method,
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        text = response.read()
    return json.loads(text) if text else None


def mgmt_delete(path):
    request = urllib.request.Request(f"{MGMT}/api/{path}", method="DELETE")
    auth = f"{MGMT_USER}:{MGMT_PASSWORD}".encode()
    import base64
    request.add_header("Authorization", "Basic " + base64.b64encode(auth).decode())
    try:
        urllib.request.urlopen(request, timeout=30)
    except Exception:
        pass


def source_scenario(tag):
    return {
        "tokens": [TOKEN],
        "agent_user": {"uuid": uuid.uuid4().hex, "username": f"bench-fed-source-{tag}"},
        "customers": [{"uuid": "55555555555555555555555555555555", "name": "Customer", "slug": "cust",
                       "service_provider_uuid": "66666666666666666666666666666666"}],
        "projects": [{"uuid": "99999999999999999999999999999999", "name": "Project", "slug": "proj",
                      "customer": "cust"}],
        "offerings": [{"uuid": OFFERING, "name": "Fed", "customer": "cust",
                       "components": [{"type": "cpu", "name": "CPU", "measured_unit": "Hours",
                                       "billing_type": "limit", "unit_factor": 1}]}],
    }


def target_scenario(tag, approve_ms):
    return {
        "tokens": [TARGET_TOKEN],
        "agent_user": {"uuid": uuid.uuid4().hex, "username": f"bench-fed-target-{tag}"},
        "customers": [{"uuid": TARGET_CUSTOMER, "name": "Site B", "slug": "site-b"}],
        "offerings": [{"uuid": TARGET_OFFERING, "name": "HPC", "customer": "site-b",
                       "components": [{"type": "node_hours", "name": "Node hours",
                                       "measured_unit": "Hours", "billing_type": "limit",
                                       "unit_factor": 1}]}],
        "plans": [{"name": "Default", "offering": "HPC"}],
        "consumer_orders": {"complete_after_ms": approve_ms, "final_state": "done"},
    }


def start_sim(binary, scenario, work, name):
    path = os.path.join(work, f"{name}.json")
    with open(path, "w") as f:
        json.dump(scenario, f)
    out = open(os.path.join(work, f"{name}.out"), "w+")
    process = subprocess.Popen([binary, "--scenario", path], stdout=out,
                               stderr=open(os.path.join(work, f"{name}.err"), "w"))
    for _ in range(600):
        out.seek(0)
        line = out.readline().strip()
        if line.startswith("http://127.0.0.1:") and line.endswith("/api/"):
            return process, line, line[: -len("/api/")]
        time.sleep(0.1)
    raise SystemExit(f"the {name} simulator did not start")


def config(source_url, target_url, events):
    stomp = ""
    target_stomp = ""
    if events:
        stomp = ("    stomp_enabled: true\n    stomp_ws_host: 127.0.0.1\n    stomp_ws_port: 15674\n"
                 "    stomp_ws_path: /ws\n    websocket_use_tls: false\n"
                 "    stomp_subscription_flow: per_object_type\n")
        target_stomp = "      target_stomp_enabled: true\n"
    return f"""timezone: UTC
offerings:
  - name: Fed
    waldur_api_url: {source_url}
    waldur_api_token: {TOKEN}
    waldur_offering_uuid: {OFFERING}
    backend_type: waldur
    order_processing_backend: waldur
    resource_import_enabled: false
{stomp}    backend_settings:
      target_api_url: {target_url}
      target_api_token: {TARGET_TOKEN}
      target_offering_uuid: {TARGET_OFFERING}
      target_customer_uuid: {TARGET_CUSTOMER}
      user_resolve_method: user_field
      user_match_field: email
{target_stomp}    backend_components:
      cpu:
        measured_unit: Hours
        accounting_type: limit
        label: CPU
        target_components: {{node_hours: {{factor: 2}}}}
"""


def requests(origin):
    """The simulator's request counters (route -> count); /__sim/ calls are not counted."""
    return call(origin + "/__sim/counters")


def delta(after, before):
    return {k: v - before.get(k, 0) for k, v in after.items() if v != before.get(k, 0)}


def add_into(total, part):
    for key, value in part.items():
        total[key] = total.get(key, 0) + value


def order_state(origin, order):
    return call(origin + "/__sim/state")["orders"].get(order, {}).get("state")


def run_variant(args, events):
    tag = uuid.uuid4().hex[:8]
    work = os.path.join(args.work, "events" if events else "polling")
    os.makedirs(work, exist_ok=True)
    source, source_url, source_origin = start_sim(args.sim, source_scenario(tag), work, "source")
    target, target_url, target_origin = start_sim(args.sim, target_scenario(tag, args.approve_ms),
                                                  work, "target")
    vhosts = []
    agent = None
    try:
        if events:
            for origin in (source_origin, target_origin):
                call(origin + "/__sim/broker", "POST", {"management_url": MGMT, "admin_user": MGMT_USER,
                                                        "admin_password": MGMT_PASSWORD})
                user = call(origin + "/__sim/state")["agent_user"]
                vhosts.append(user["uuid"])
        path = os.path.join(work, "agent.yaml")
        with open(path, "w") as f:
            f.write(config(source_url, target_url, events))
        env = dict(os.environ, RUST_LOG="info", WALDUR_AGENT_PLUGIN_PATH="",
                   WALDUR_AGENT_RUNTIME_DIR=os.path.join(work, "run"),
                   WALDUR_SITE_AGENT_ORDER_PROCESS_PERIOD_MINUTES=str(args.period),
                   WALDUR_SITE_AGENT_RECONCILIATION_PERIOD_MINUTES="60")
        mode = "event_process" if events else "order_process"
        log = open(os.path.join(work, "agent.log"), "w+")
        agent = subprocess.Popen([args.agent, "run", "-m", mode, "-c", path, "--plugin-dir", args.plugins],
                                 stdout=log, stderr=subprocess.STDOUT, env=env)
        deadline = time.time() + 120
        while True:
            log.seek(0)
            text = log.read()
            ready = ("target subscription" in text and text.count(": subscribed to /amq/queue/") >= 4) \
                if events else ("order_process" in text)
            if ready:
                break
            if agent.poll() is not None or time.time() > deadline:
                raise SystemExit(f"the agent did not start ({mode}):\n{text[-3000:]}")
            time.sleep(0.2)
        time.sleep(1)
        times, source_requests, target_requests = [], [], []
        source_routes, target_routes = {}, {}
        for i in range(args.orders):
            before = (requests(source_origin), requests(target_origin))
            started = time.time()
            call(source_origin + "/__sim/changes", "POST", [{"kind": "order_created", "order": {
                "type": "Create", "state": "executing", "offering": OFFERING, "project": "proj",
                "resource_name": f"alloc-{i}", "limits": {"cpu": 10}}}])
            order = next(o for o, x in call(source_origin + "/__sim/state")["orders"].items()
                         if x.get("resource_name") == f"alloc-{i}")
            while order_state(source_origin, order) != "done":
                if time.time() - started > args.timeout:
                    raise SystemExit(f"order {i} not done after {args.timeout} s ({mode})")
                time.sleep(0.02)
            times.append(time.time() - started)
            # The state reads above are /__sim/ calls, which the counters leave out.
            source_delta = delta(requests(source_origin), before[0])
            target_delta = delta(requests(target_origin), before[1])
            source_requests.append(sum(source_delta.values()))
            target_requests.append(sum(target_delta.values()))
            add_into(source_routes, source_delta)
            add_into(target_routes, target_delta)
        log.seek(0)
        errors = [line for line in log.read().splitlines() if " ERROR " in line]
        if errors:
            raise SystemExit(f"the agent logged errors ({mode}):\n" + "\n".join(errors[:10]))
        if args.breakdown:
            for side, routes in (("source", source_routes), ("target", target_routes)):
                print(f"{mode} {side} requests per order:")
                for route, count in sorted(routes.items(), key=lambda kv: -kv[1]):
                    print(f"  {count / args.orders:6.1f}  {route}")
        return times, source_requests, target_requests
    finally:
        if agent is not None:
            agent.terminate()
            try:
                agent.wait(timeout=30)
            except subprocess.TimeoutExpired:
                agent.kill()
        for process in (source, target):
            process.terminate()
            process.wait()
        for vhost in vhosts:
            mgmt_delete(f"vhosts/{vhost}")
        if events:
            mgmt_delete(f"users/bench-fed-source-{tag}")
            mgmt_delete(f"users/bench-fed-target-{tag}")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--sim", required=True)
    parser.add_argument("--agent", required=True)
    parser.add_argument("--plugins", required=True)
    parser.add_argument("--work", required=True)
    parser.add_argument("--orders", type=int, default=5)
    parser.add_argument("--approve-ms", type=int, default=1000)
    parser.add_argument("--period", type=float, default=0.25)
    parser.add_argument("--timeout", type=float, default=600)
    parser.add_argument("--no-events", action="store_true")
    parser.add_argument("--breakdown", action="store_true",
                        help="also print the requests per order by route")
    args = parser.parse_args()
    rows = [("polling", run_variant(args, events=False))]
    if not args.no_events:
        rows.append(("events", run_variant(args, events=True)))
    print(f"\n{args.orders} Create orders, one at a time; the target completes each order "
          f"{args.approve_ms} ms after it is placed; order cycles every {args.period} min\n")
    print(f"{'variant':<10} {'median s':>9} {'max s':>7} {'source req/order':>17} {'target req/order':>17}")
    medians = {}
    for name, (times, source, target) in rows:
        medians[name] = statistics.median(times)
        print(f"{name:<10} {statistics.median(times):>9.2f} {max(times):>7.2f} "
              f"{statistics.mean(source):>17.1f} {statistics.mean(target):>17.1f}")
    if "events" in medians:
        print(f"\npolling / events (median time to done): {medians['polling'] / medians['events']:.1f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
