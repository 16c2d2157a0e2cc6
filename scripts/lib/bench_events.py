"""Measurements of scripts/bench-events.sh (standard library only).

    bench_events.py ready ORIGIN MGMT VHOST PID QUIET LIMIT
        waits until a queue in VHOST has a consumer and then until the simulator's counters
        have been still for QUIET s (the agent's start-up pass is over); exit 1 on LIMIT s or
        when PID is gone.
    bench_events.py burst ORIGIN KIND COUNT STATE_DIR PID LIMIT OUT
        KIND orders: COUNT Create orders, created `executing` (`order_created` changes, one
        `order` event each); KIND roles: COUNT role grants (`role_granted`, one `user_role`
        event each); all in one POST /__sim/changes. Waits until every event's work is done, samples the agent's RSS meanwhile, then
        writes the figures to OUT (JSON).
    bench_events.py table OURS REF
        prints the comparison of two `burst` results (REF may be "-").

Latency of one event: from the moment the simulator handed the message to the broker
(`published_ms` of /__sim/events) to the moment its work was done in Waldur:
- order: the order's `modified` once it is `done` (set by set_state_done);
- user_role: the last Waldur request that names the event's project, user or one of the
  project's resources (`at_ms` in /__sim/log). Neither agent writes to Waldur for a grant (the
  backend call is local), so this is its last request before the backend call (the
  reference's) or after it (ours: it records the sync), which favours the reference slightly.
"""

import json
import statistics
import sys
import time
import urllib.error
import urllib.request
from datetime import datetime


def call(url, method="GET", body=None, auth=None):
    request = urllib.request.Request(url, method=method)
    if body is not None:
        request.data = json.dumps(body).encode()
        request.add_header("Content-Type", "application/json")
    if auth is not None:
        import base64

        token = base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()
        request.add_header("Authorization", "Basic " + token)
    with urllib.request.urlopen(request, timeout=120) as answer:
        text = answer.read()
    return json.loads(text) if text else None


def counters(origin):
    return call(origin + "/__sim/counters")


def alive(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            return "State:\tZ" not in f.read()
    except OSError:
        return False


def memory_kb(pid, key):
    """VmRSS / VmHWM of a process in kB (None once it is gone)."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def wait_quiet(origin, quiet, limit, pid=None):
    """Until the counters have been still for `quiet` s; the time of their last change."""
    start = time.time()
    last, changed = sum(counters(origin).values()), time.time()
    while time.time() - start < limit:
        if pid is not None and not alive(pid):
            raise SystemExit(f"the agent (pid {pid}) exited")
        time.sleep(0.25)
        now = sum(counters(origin).values())
        if now != last:
            last, changed = now, time.time()
        elif time.time() - changed >= quiet:
            return changed
    raise SystemExit(f"the simulator did not go quiet within {limit} s")


def ready(origin, mgmt, vhost, pid, quiet, limit):
    user, password, base = mgmt.split("|")
    start = time.time()
    while True:
        if not alive(pid):
            raise SystemExit(f"the agent (pid {pid}) exited before subscribing")
        if time.time() - start > limit:
            raise SystemExit("the agent did not subscribe in time")
        try:
            queues = call(f"{base}/api/queues/{vhost}", auth=(user, password))
        except urllib.error.HTTPError:
            queues = []  # the vhost does not exist until the agent asked for its queue
        if any(q.get("consumers", 0) > 0 for q in queues):
            break
        time.sleep(0.25)
    wait_quiet(origin, quiet, limit - (time.time() - start), pid)


def allocation_users(state_dir):
    try:
        with open(f"{state_dir}/state.json") as f:
            accounts = json.load(f)["accounts"]
    except (OSError, ValueError, KeyError):
        return {}  # being rewritten: try again
    return {name: set(a.get("users", {})) for name, a in accounts.items()}


def epoch_ms(iso):
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp() * 1000.0


def percentile(values, q):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def burst(origin, kind, count, state_dir, pid, limit, out):
    before = call(origin + "/__sim/state")
    if kind == "orders":
        offering = next(iter(before["offerings"]))
        changes = [
            {"kind": "order_created", "order": {
                "type": "Create", "state": "executing", "offering": offering,
                "project": f"proj-{p}", "resource_name": f"new-{p}",
                "limits": {"cpu": 10, "mem": 10}}}
            for p in range(count)
        ]
    else:
        projects = {x["name"]: uuid for uuid, x in before["projects"].items()}
        users = {x["username"]: uuid for uuid, x in before["users"].items()}
        changes = [{"kind": "role_granted", "project_uuid": projects[f"proj-{p}"],
                    "user_uuid": users[f"user{p}-new@idp"], "role": "PROJECT.MEMBER"}
                   for p in range(count)]
    seq0 = len(before["published"])
    call(origin + "/__sim/reset", "POST")
    rss_before = memory_kb(pid, "VmRSS")
    done_key = "POST /api/marketplace-orders/{uuid}/set_state_done/"
    erred_key = "POST /api/marketplace-orders/{uuid}/set_state_erred/"
    call(origin + "/__sim/changes", "POST", changes)

    def finished():
        if kind == "orders":
            c = counters(origin)
            return c.get(done_key, 0) + c.get(erred_key, 0) >= count
        users = allocation_users(state_dir)
        return all(f"u{p}_new" in users.get(f"a_res-{p}", set()) for p in range(count))

    start, rss_peak = time.time(), rss_before or 0
    while not finished():
        if not alive(pid):
            raise SystemExit(f"the agent (pid {pid}) exited during the burst")
        if time.time() - start > limit:
            raise SystemExit(f"{kind}: not finished within {limit} s")
        rss_peak = max(rss_peak, memory_kb(pid, "VmRSS") or 0)
        time.sleep(0.5)
    wait_quiet(origin, 3, 600, pid)
    requests = sum(counters(origin).values())

    published = [e for e in call(origin + "/__sim/events")[seq0:]]
    state = call(origin + "/__sim/state")
    latencies, missing = [], 0
    sent_ms = [e["published_ms"] for e in published if e.get("published_ms")]
    if kind == "orders":
        for e in published:
            order = state["orders"].get(e["body"].get("order_uuid"), {})
            if order.get("state") == "done" and e.get("published_ms"):
                latencies.append(epoch_ms(order["modified"]) - e["published_ms"])
            else:
                missing += 1
    else:
        log = call(origin + "/__sim/log")
        resources_of = {}
        for r in state["resources"].values():
            resources_of.setdefault(r["project_uuid"], []).append(r["uuid"])
        # Which events a request names: any of the hex ids of the event's objects.
        owner = {}
        for i, e in enumerate(published):
            body = e["body"]
            for key in [body["project_uuid"], body["user_uuid"], *resources_of.get(body["project_uuid"], [])]:
                owner.setdefault(key, set()).add(i)
        last = {}
        for entry in log:
            text = (entry["path"] + "?" + entry["query"]).replace("-", "").lower()
            for part in text.replace("?", "/").replace("&", "/").replace("=", "/").split("/"):
                for i in owner.get(part, ()):
                    last[i] = max(last.get(i, 0), entry["at_ms"])
        users = allocation_users(state_dir)
        for i, e in enumerate(published):
            p = state["projects"][e["body"]["project_uuid"]]["name"].split("-", 1)[1]
            granted = f"u{p}_new" in users.get(f"a_res-{p}", set())
            if granted and i in last and e.get("published_ms"):
                latencies.append(last[i] - e["published_ms"])
            else:
                missing += 1
    ends = [e["published_ms"] + l for e, l in zip(published, latencies)] if latencies else []
    result = {
        "kind": kind,
        "events": len(published),
        "done": len(latencies),
        "missing": missing,
        "erred": counters(origin).get(erred_key, 0),
        "median_ms": statistics.median(latencies) if latencies else None,
        "p99_ms": percentile(latencies, 0.99) if latencies else None,
        "wall_s": (max(ends) - min(sent_ms)) / 1000.0 if ends and sent_ms else None,
        "publish_s": (max(sent_ms) - min(sent_ms)) / 1000.0 if sent_ms else None,
        "requests": requests,
        "requests_per_event": requests / max(1, len(published)),
        "rss_before_mb": (rss_before or 0) / 1024.0,
        "rss_peak_mb": rss_peak / 1024.0,
        "hwm_mb": (memory_kb(pid, "VmHWM") or 0) / 1024.0,
    }
    with open(out, "w") as f:
        json.dump(result, f)


def table(ours_file, ref_file):
    ours = json.load(open(ours_file))
    ref = json.load(open(ref_file)) if ref_file != "-" else {}

    def fmt(v, unit=""):
        return "-" if v is None else f"{float(v):,.1f}{unit}"

    def ratio(key):
        a, b = ours.get(key), ref.get(key)
        return f"{a / b:.3f}" if a is not None and b else "-"

    rows = [
        ("events done / published", f"{ours['done']:,}/{ours['events']:,}",
         f"{ref['done']:,}/{ref['events']:,}" if ref else "-", None),
        ("median latency, ms", fmt(ours["median_ms"]), fmt(ref.get("median_ms")), "median_ms"),
        ("p99 latency, ms", fmt(ours["p99_ms"]), fmt(ref.get("p99_ms")), "p99_ms"),
        ("wall: first publish -> last done, s", fmt(ours["wall_s"]), fmt(ref.get("wall_s")), "wall_s"),
        ("Waldur requests per event", f"{ours['requests_per_event']:.2f}",
         f"{ref['requests_per_event']:.2f}" if ref else "-", "requests_per_event"),
        ("RSS before the burst, MB", fmt(ours["rss_before_mb"]), fmt(ref.get("rss_before_mb")), "rss_before_mb"),
        ("RSS peak during the burst, MB", fmt(ours["rss_peak_mb"]), fmt(ref.get("rss_peak_mb")), "rss_peak_mb"),
        ("peak RSS of the process (VmHWM), MB", fmt(ours["hwm_mb"]), fmt(ref.get("hwm_mb")), "hwm_mb"),
    ]
    print(f"{'':38} {'ours':>14} {'reference':>14} {'ours/ref':>9}")
    for name, a, b, key in rows:
        print(f"{name:38} {a:>14} {b:>14} {ratio(key) if key else '':>9}")
    notes = []
    for who, r in (("ours", ours), ("reference", ref)):
        if r and (r["missing"] or r["erred"]):
            notes.append(f"{who}: {r['missing']} not done, {r['erred']} erred")
        if r and r.get("publish_s") is not None:
            notes.append(f"{who}: the simulator published the burst in {r['publish_s']:.1f} s")
    for n in notes:
        print("  " + n)


if __name__ == "__main__":
    cmd, args = sys.argv[1], sys.argv[2:]
    if cmd == "ready":
        ready(args[0], args[1], args[2], int(args[3]), float(args[4]), float(args[5]))
    elif cmd == "burst":
        burst(args[0], args[1], int(args[2]), args[3], int(args[4]), float(args[5]), args[6])
    elif cmd == "table":
        table(args[0], args[1])
    else:
        raise SystemExit(f"unknown command {cmd}")
