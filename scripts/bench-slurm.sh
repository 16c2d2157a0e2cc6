#!/usr/bin/env bash
# Benchmark on REAL SLURM: the Rust waldur-agent with its SLURM plugin (plugins/slurm, entry
# `slurm`) against the reference Python waldur-site-agent 1.0.7 with waldur-site-agent-slurm 1.0.7
# (PyPI), one cycle of `report` and of `membership_sync`, both agents against the Waldur simulator
# (tests/waldur-sim) and the SAME SLURM 22.05 accounting (scripts/slurm-setup.sh) in the same run.
#
# Per size (SLURM allocations; 10 team members each unless --users, 10 allocations per project):
#   report           every allocation has all 10 members; ~10 short sbatch jobs (as root) ran in
#                    10 of the allocations this month, so sacct returns usage for those
#   membership_sync  every allocation misses 2 members and has 1 stale user (one stale user per
#                    project, in each of its allocations): the agent adds 2 and removes 1 each
# Before every run SLURM is put back into the same starting state: accounts
# <tag>c_cust -> <tag>p_proj-P -> <tag>a_res-I (customer/project/allocation prefixes of the config,
# backend ids of the scenario rewritten to match), the users and associations of the mode, and
# GrpTRESMins equal to the Waldur limits. Accounts and associations are created in bulk (comma lists,
# one sacctmgr per group). <tag> is bench_XXXX_, new per invocation; everything under it (accounts,
# users, their root associations, jobs still queued) is removed on exit, Ctrl-C included.
# Both agents call the SLURM CLIs through a logging shim (backend_settings.slurm_bin_path, plus an
# `id` wrapper first in PATH), so the script counts every SLURM command each agent ran.
#
# For each agent, with and without injected latency per Waldur request, it measures:
#   wall   ours: process wall time (`run -m MODE --once`); reference: process start -> its last
#          activity (Waldur request or SLURM command) of the first cycle (it loops forever; the
#          cycle ends when neither the simulator's counters nor the shim log moved for QUIET s and
#          no SLURM command is running; then it is stopped), import time included
#   RSS    peak resident set size (/usr/bin/time -f %M; the largest of the agent and its commands)
#   req    Waldur API requests (simulator counters; the simulator is fresh per run)
#   cmd    SLURM commands (sacctmgr, sacct, scancel, sinfo) through the shim; `id` counted apart
#   done   resources with set_usage (report) / with refresh_last_sync (membership_sync)
#   as     user associations in the allocations afterwards (expected: size x users)
#   same   whether both agents left the same results: report -> the same component usages and
#          user usages in Waldur; membership_sync -> the same associations in SLURM and the same
#          refresh_last_sync count; both -> the same resource fields and SLURM state otherwise.
#          Differences are listed in the results file.
# and prints a table per size with the ratios ours/reference. Prints figures; not a test.
#
# Usage: scripts/bench-slurm.sh [--sizes 100,1000] [--modes report,membership_sync]
#                               [--latencies 0,5] [--ref-max-size N] [--no-ref] [--no-ours]
#                               [--quiet S] [--ref-timeout S] [--serialize-writes] [--purge]
#                               [--users N]
#   --users N          team members per project (default 10). slurmdbd 22.05 keeps associations
#                      as a nested set: every added association rewrites the position of about
#                      every other one, so with 10 users the 1,000-allocation starting states take
#                      hours on a 2-core machine; fewer users keep the same per-allocation work
#   --ref-max-size N   run the reference only for sizes <= N
#   --no-ref           never run the reference (only ours); --no-ours: only the reference
#   --serialize-writes the shim runs the agents' writing sacctmgr commands (add, remove, modify,
#                      delete, create) one at a time (flock), whatever the agent's own
#                      concurrency; concurrent writes can deadlock slurmdbd 22.05 (it then exits)
#   --purge            only remove every SLURM account and user named bench_* (left by a killed
#                      run) and exit
# Env: BENCH_VENV (default target/bench-slurm/venv), KEEP_WORK=1 keeps target/bench-slurm/run.XXXXXX.
# Needs root, real SLURM (started with scripts/slurm-setup.sh when it is down), cargo, python3 with
# venv, PyPI access for the first run; installs Debian `time` if /usr/bin/time is missing.
# If our agent or plugin does not build, the reference is still measured (noted in the output).
# SLURM here is shared: when slurmdbd exits during a run (22.05 gives up on a MariaDB deadlock
# between concurrent writers), the run's row says so and SLURM is restarted (scripts/slurm-setup.sh);
# a starting state a collision broke is redone.
# Everything listens on 127.0.0.1 only.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
OUT="$ROOT/target/bench-slurm"
VENV="${BENCH_VENV:-$OUT/venv}"
# shellcheck source=lib/sim.sh
source "$ROOT/scripts/lib/sim.sh"
SIZES="100,1000"
MODES="report,membership_sync"
LATENCIES="0,5"
REF_MAX=""
NO_REF=0
NO_OURS=0
QUIET=6
REF_TIMEOUT=7200
PURGE=0
SERIALIZE=0
USERS=10
# Waldur limits of every resource = GrpTRESMins of every allocation (unit factor 1: cpu-minutes,
# MB-minutes), high enough that the bench jobs never hit them.
LIMIT_CPU=100000
LIMIT_MEM=102400

while [[ $# -gt 0 ]]; do
    case "$1" in
        --sizes) SIZES="$2"; shift 2 ;;
        --modes) MODES="$2"; shift 2 ;;
        --latencies) LATENCIES="$2"; shift 2 ;;
        --ref-max-size) REF_MAX="$2"; shift 2 ;;
        --no-ref) NO_REF=1; shift ;;
        --no-ours) NO_OURS=1; shift ;;
        --quiet) QUIET="$2"; shift 2 ;;
        --ref-timeout) REF_TIMEOUT="$2"; shift 2 ;;
        --purge) PURGE=1; shift ;;
        --serialize-writes) SERIALIZE=1; shift ;;
        --users) USERS="$2"; shift 2 ;;
        -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "unknown argument: $1" >&2; exit 2 ;;
    esac
done

log() { echo "== $*" >&2; }
[[ "$(id -u)" == 0 ]] || { echo "bench-slurm.sh must run as root (sacctmgr, sbatch)" >&2; exit 1; }

mkdir -p "$OUT"
WORK="$(mktemp -d "$OUT/run.XXXXXX")"   # per invocation, so concurrent runs do not collide
TAG="bench_$(printf '%04x' $((RANDOM ^ ($$ & 0x7fff))))_"
SIM_PID=""
AGENT_PID=""
SLURM_TOUCHED=0
cleanup() {
    # Only the processes this script started, by PID.
    if [[ -n "$AGENT_PID" ]]; then
        pkill -TERM -P "$AGENT_PID" 2>/dev/null || true
        kill "$AGENT_PID" 2>/dev/null || true
        wait "$AGENT_PID" 2>/dev/null || true
    fi
    sim_stop
    if [[ "$SLURM_TOUCHED" == 1 ]]; then
        log "removing everything under $TAG from SLURM"
        "$ROOT/scripts/slurm-setup.sh" status >/dev/null 2>&1 || "$ROOT/scripts/slurm-setup.sh" >&2 || true
        python3 "$WORK/benchlib.py" cleanup "$TAG" "$WORK/jobs.txt" >&2 || log "SLURM cleanup FAILED: check 'sacctmgr -n -P list account | grep $TAG'"
    fi
    if [[ "${KEEP_WORK:-0}" != 1 ]]; then rm -rf "$WORK"; else echo "kept $WORK" >&2; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---------------------------------------------------------------- helpers (python)
cat >"$WORK/benchlib.py" <<'EOF'
"""Helpers of bench-slurm.sh: SLURM starting states (bulk sacctmgr), jobs, snapshots, cleanup,
watching the simulator and the shim, digests of the simulator state and their comparison."""
import fcntl, json, os, re, subprocess, sys, tempfile, time, urllib.request
from collections import Counter, defaultdict

SACCTMGR = "/usr/bin/sacctmgr"   # never through the shim
COMMANDS = 0

def sacctmgr(args):
    global COMMANDS
    COMMANDS += 1
    # The lock the SLURM plugin and the test helpers take around sacctmgr writes: concurrent
    # association writes can deadlock slurmdbd 22.05 (it then exits).
    with open(os.path.join(tempfile.gettempdir(), "waldur-agent-sacctmgr.lock"), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        p = subprocess.run([SACCTMGR, "-i"] + args, capture_output=True, text=True)
    out = (p.stdout + p.stderr).strip()
    if p.returncode != 0 and not re.search(r"Nothing (new added|deleted|modified)", out):
        raise SystemExit(f"sacctmgr {' '.join(args)[:300]} failed ({p.returncode}): {out[-800:]}")

def query(args):
    p = subprocess.run([SACCTMGR, "-n", "-P"] + args, capture_output=True, text=True, check=True)
    return [l for l in p.stdout.splitlines() if l.strip()]

def chunks(items, n):
    items = list(items)
    for i in range(0, len(items), n):
        yield items[i:i + n]

MEM = {"K": 1 / 1024, "M": 1, "G": 1024, "T": 1024 ** 2, "P": 1024 ** 3}
def limits(text):
    """'cpu=100000,mem=100G' -> {'cpu': 100000, 'mem': 102400} (mem in MB)."""
    out = {}
    for part in filter(None, (text or "").split(",")):
        k, _, v = part.partition("=")
        m = re.fullmatch(r"(\d+)([KMGTP]?)", v)
        if not m:
            out[k] = v
        elif k == "mem":
            out[k] = int(int(m.group(1)) * MEM[m.group(2) or "M"])
        else:
            out[k] = int(m.group(1))
    return out

def current(prefix):
    accounts, members, user_accounts = {}, set(), defaultdict(set)
    for line in query(["show", "assoc", "format=account,user,parentname,qos,grptresmins"]):
        acct, user, parent, qos, grp = (line.split("|") + [""] * 5)[:5]
        if acct.startswith(prefix):
            if user:
                members.add((acct, user))
            else:
                accounts[acct] = {"parent": parent, "qos": qos, "limits": limits(grp)}
        if user.startswith(prefix):
            user_accounts[user].add(acct)
    for acct in query(["list", "account", "format=account"]):
        if acct.startswith(prefix) and acct not in accounts:
            accounts[acct] = {"parent": "", "qos": "", "limits": {}}
    users = {u for u in query(["list", "user", "format=user"]) if u.startswith(prefix)}
    return accounts, members, users | set(user_accounts)

def depth_order(names, parent_of):
    def depth(n, seen=()):
        p = parent_of.get(n)
        return 0 if p not in parent_of or n in seen else 1 + depth(p, seen + (n,))
    return sorted(names, key=lambda n: (depth(n), n))

def add_cross(pairs, verb_args):
    """pairs: {(account, user)} -> as few `add user U,.. account=A,..` as the groups allow."""
    by_account = defaultdict(set)
    for a, u in pairs:
        by_account[a].add(u)
    by_users = defaultdict(list)
    for a, us in by_account.items():
        by_users[frozenset(us)].append(a)
    for us, accts in sorted(by_users.items(), key=lambda kv: sorted(kv[1])[0]):
        for uc in chunks(sorted(us), 50):
            for ac in chunks(sorted(accts), 200):
                sacctmgr(verb_args(uc, ac))

def ensure_up():
    """Restarts SLURM (scripts/slurm-setup.sh) when a daemon is down, e.g. after slurmdbd exited."""
    setup = os.environ["BENCH_SLURM_SETUP"]
    if subprocess.run([setup, "status"], capture_output=True).returncode != 0:
        print("SLURM is down: restarting it", file=sys.stderr)
        subprocess.run([setup], stdout=sys.stderr, check=False)

def apply(desired_file, prefix):
    """Reconciles everything under prefix to the desired state, in bulk; passes until a pass
    finds nothing to do (a write lost to a slurmdbd deadlock with another client is redone)."""
    t0 = time.time()
    want = json.load(open(desired_file))["accounts"]
    for attempt in range(12):   # the SLURM here is shared: other clients' writes can collide
        before = COMMANDS
        try:
            apply_pass(want, prefix)
        except (SystemExit, subprocess.CalledProcessError) as e:
            print(f"reset pass failed, again: {str(e)[-300:]}", file=sys.stderr)
            ensure_up()
            time.sleep(5)
            continue
        if COMMANDS == before:
            print(f"{COMMANDS} {time.time() - t0:.1f}")
            return
    raise SystemExit("SLURM did not reach the starting state")

def apply_pass(want, prefix):
    want_users = {u for a in want.values() for u in a["users"]}
    accounts, members, users = current(prefix)
    gone_users = sorted(users - want_users)
    for ch in chunks(gone_users, 200):
        sacctmgr(["remove", "user", "where", "name=" + ",".join(ch)])
    parent_of = {a: v["parent"] for a, v in accounts.items()}
    gone_accounts = [a for a in depth_order(accounts, parent_of) if a not in want][::-1]
    for ch in chunks(gone_accounts, 200):
        sacctmgr(["remove", "account", "where", "name=" + ",".join(ch)])
    extra = {(a, u) for a, u in members
             if a in want and u not in gone_users and u not in want[a]["users"]}
    # removal groups: by user -> accounts
    by_user = defaultdict(set)
    for a, u in extra:
        by_user[u].add(a)
    groups = defaultdict(list)
    for u, accts in by_user.items():
        groups[frozenset(accts)].append(u)
    for accts, us in groups.items():
        for uc in chunks(sorted(us), 50):
            for ac in chunks(sorted(accts), 200):
                sacctmgr(["remove", "user", "where", "name=" + ",".join(uc), "and", "account=" + ",".join(ac)])
    # missing accounts, parents first, grouped by (parent, organization)
    want_parent = {a: v["parent"] for a, v in want.items()}
    missing = [a for a in depth_order(want, want_parent) if a not in accounts]
    level = defaultdict(list)
    for a in missing:
        level[(want[a]["parent"], want[a]["organization"])].append(a)
    done = set()
    for a in missing:
        key = (want[a]["parent"], want[a]["organization"])
        if key in done:
            continue
        done.add(key)
        for ch in chunks(level[key], 200):
            sacctmgr(["add", "account", ",".join(ch), "parent=" + key[0],
                      "organization=" + key[1], "description=bench"])
    wrong_parent = defaultdict(list)
    for a, v in accounts.items():
        if a in want and v["parent"] and v["parent"] != want[a]["parent"]:
            wrong_parent[want[a]["parent"]].append(a)
    for p, accts in wrong_parent.items():
        for ch in chunks(accts, 200):
            sacctmgr(["modify", "account", "where", "name=" + ",".join(ch), "set", "parent=" + p])
    have = members - extra
    add_cross({(a, u) for a, v in want.items() for u in v["users"] if (a, u) not in have},
              lambda uc, ac: ["add", "user", ",".join(uc), "account=" + ",".join(ac),
                              "DefaultAccount=root", "Fairshare=parent"])
    by_limits = defaultdict(list)
    for a, v in want.items():
        cur = accounts.get(a, {}).get("limits", {})
        if v.get("limits") is not None and cur != v["limits"]:
            by_limits[",".join(f"{k}={n}" for k, n in sorted(v["limits"].items()))].append(a)
    for text, accts in by_limits.items():
        for ch in chunks(accts, 200):
            sacctmgr(["modify", "account", "where", "name=" + ",".join(ch), "set", "GrpTRESMins=" + text])
    qos = [a for a, v in accounts.items() if a in want and v["qos"] not in ("", "normal")]
    for ch in chunks(qos, 200):
        sacctmgr(["modify", "account", "where", "name=" + ",".join(ch), "set", "qos=normal"])

def snapshot(prefix, out):
    rows = []
    for line in query(["show", "assoc", "format=account,user,parentname,qos,grptresmins,fairshare,maxtresmins,partition"]):
        acct, user = line.split("|")[:2]
        if acct.startswith(prefix) or user.startswith(prefix):
            rows.append("assoc " + line)
    for line in query(["list", "user", "format=user,defaultaccount,adminlevel"]):
        if line.startswith(prefix):
            rows.append("user " + line)
    for line in query(["list", "account", "format=account,organization"]):
        if line.startswith(prefix):
            rows.append("account " + line)
    rows.sort()
    with open(out, "w") as f:
        f.write("\n".join(rows) + "\n")
    alloc = prefix + "a_"
    print(sum(1 for r in rows if r.startswith("assoc " + alloc) and r.split("|")[1]))

def cleanup(prefix, jobs_file):
    if os.path.exists(jobs_file):
        ids = open(jobs_file).read().split()
        if ids:
            subprocess.run(["/usr/bin/scancel"] + ids, capture_output=True)
            time.sleep(1)
    accounts, members, users = current(prefix)
    for ch in chunks(sorted(users), 200):
        sacctmgr(["remove", "user", "where", "name=" + ",".join(ch)])
    parent_of = {a: v["parent"] for a, v in accounts.items()}
    for attempt in range(5):   # an account with a job still completing cannot be removed yet
        try:
            for ch in chunks(depth_order(accounts, parent_of)[::-1], 200):
                sacctmgr(["remove", "account", "where", "name=" + ",".join(ch)])
            break
        except SystemExit:
            if attempt == 4:
                raise
            time.sleep(3)
    left = [a for a in query(["list", "account", "format=account"]) if a.startswith(prefix)]
    left += [u for u in query(["list", "user", "format=user"]) if u.startswith(prefix)]
    if left:
        raise SystemExit(f"left in SLURM: {' '.join(left[:20])}")
    print(f"removed {len(users)} users and {len(accounts)} accounts under {prefix}", file=sys.stderr)

def jobs(accounts_csv, jobs_file, timeout=600):
    """Short sbatch jobs as root (with a root association there) so sacct has usage."""
    accts = accounts_csv.split(",")
    sacctmgr(["add", "user", "root", "account=" + accounts_csv])
    ids = []
    for k, a in enumerate(accts):
        for attempt in range(10):   # slurmctld learns new associations from slurmdbd a bit later
            p = subprocess.run(["/usr/bin/sbatch", "--parsable", "-A", a, "-n", "1", f"--mem={100 * (k + 1)}",
                                "-t", "5", "-J", "bench-slurm", "-o", "/dev/null", "-D", "/tmp",
                                "--wrap", f"sleep {2 + k % 4}"], capture_output=True, text=True)
            if p.returncode == 0:
                break
            time.sleep(2)
        else:
            raise SystemExit(f"sbatch -A {a} failed: {p.stderr.strip()}")
        ids.append(p.stdout.strip().split(";")[0])
        with open(jobs_file, "a") as f:
            f.write(ids[-1] + "\n")
    t0 = time.time()
    while time.time() - t0 < timeout:
        p = subprocess.run(["/usr/bin/sacct", "-n", "-X", "-P", "-j", ",".join(ids), "-o", "JobID,State"],
                           capture_output=True, text=True)
        states = dict(l.split("|")[:2] for l in p.stdout.splitlines() if "|" in l)
        if len(states) == len(ids) and all(s == "COMPLETED" for s in states.values()):
            print(f"{len(ids)} jobs COMPLETED in {time.time() - t0:.0f}s", file=sys.stderr)
            return
        bad = {j: s for j, s in states.items() if s not in ("PENDING", "RUNNING", "COMPLETING", "COMPLETED")}
        if bad:
            raise SystemExit(f"bench jobs ended badly: {bad}")
        time.sleep(1)
    raise SystemExit("bench jobs did not complete in time")

# ------------------------------------------------------------------ simulator and shim
def counters(origin):
    with urllib.request.urlopen(origin + "/__sim/counters", timeout=30) as r:
        return json.load(r)

def lines(path):
    try:
        with open(path, "rb") as f:
            return f.read().count(b"\n")
    except FileNotFoundError:
        return 0

def wait_quiet(origin, shim, start, quiet, limit):
    """First Waldur request and last activity (request or SLURM command), s after start."""
    calls, done = os.path.join(shim, "calls.log"), os.path.join(shim, "done.log")
    last, first_t, last_t = None, None, None
    while time.time() - start < limit:
        req = sum(counters(origin).values())
        c, d = lines(calls), lines(done)
        now = (req, c, d)
        t = time.time()
        if now != last:
            if first_t is None and req > 0:
                first_t = t
            if last is not None or req > 0 or c > 0:
                last_t = t
            last = now
        elif first_t is not None and c == d and t - last_t >= quiet:
            print(f"{first_t - start:.2f} {last_t - start:.2f}")
            return 0
        time.sleep(0.1)
    return 1

DONE_KEY = {
    "report": "POST /api/marketplace-component-usages/set_usage/",
    "membership_sync": "POST /api/marketplace-provider-resources/{uuid}/refresh_last_sync/",
}

def stats(origin, mode):
    c = counters(origin)
    print(sum(c.values()), c.get(DONE_KEY[mode], 0))

def commands(shim, out):
    """SLURM commands the agent ran: '<slurm total> <id total>'; breakdown to out."""
    kinds = Counter()
    try:
        text = open(os.path.join(shim, "calls.log")).read().splitlines()
    except FileNotFoundError:
        text = []
    for line in text:
        words = line.split(" ")
        cmd, rest = words[0], [w for w in words[1:] if not w.startswith("-")]
        if cmd == "sacctmgr":
            verb = " ".join(w for w in rest[:2] if "=" not in w)
            kinds[f"sacctmgr {verb}".strip()] += 1
        else:
            kinds[cmd] += 1
    spans, failed = [], Counter()
    try:
        for line in open(os.path.join(shim, "done.log")):
            rc, start, end, cmd = line.split()
            spans.append((float(start), float(end)))
            if rc != "0":
                failed[f"{cmd} rc={rc}"] += 1
    except (FileNotFoundError, ValueError):
        pass
    events = sorted([(s, 1) for s, _ in spans] + [(e, -1) for _, e in spans])
    peak = cur = 0
    for _, d in events:
        cur += d
        peak = max(peak, cur)
    busy = sum(e - s for s, e in spans)
    with open(out, "w") as f:
        f.write(f"(at most {peak} at once; {busy:.1f} s in commands"
                + (", failed: " + ", ".join(f"{n}x {k}" for k, n in sorted(failed.items())) if failed else "")
                + ")\n")
        for k, n in sorted(kinds.items(), key=lambda kv: (-kv[1], kv[0])):
            f.write(f"{n} {k}\n")
    print(sum(n for k, n in kinds.items() if k.split()[0] in ("sacctmgr", "sacct", "scancel", "sinfo")),
          kinds.get("id", 0))

def digest(origin, out):
    """What the agent left in Waldur, without ids and timestamps."""
    with urllib.request.urlopen(origin + "/__sim/state", timeout=120) as r:
        st = json.load(r)
    res = st["resources"]
    name = {u: r["name"] for u, r in res.items()}
    cu = st["component_usages"]
    d = {
        "component_usages": sorted(
            f"{name.get(c['resource_uuid'], '?')} {c['type']} {c['billing_period']} {float(c['usage']):.4f}"
            for c in cu.values()),
        "user_usages": sorted(
            f"{name.get(cu.get(u['component_usage_uuid'], {}).get('resource_uuid'), '?')} "
            f"{cu.get(u['component_usage_uuid'], {}).get('type', '?')} {u['username']} "
            f"{float(u['usage']):.4f} user={'yes' if u.get('user') else 'no'}"
            for u in st["user_usages"].values()),
        "resources": sorted(
            f"{r['name']} state={r['state']} backend_id={r['backend_id']} "
            f"limits={json.dumps(r['limits'], sort_keys=True)} "
            f"metadata={json.dumps(r['backend_metadata'], sort_keys=True)} paused={r['paused']} "
            f"downscaled={r['downscaled']} synced={'yes' if r.get('last_sync') else 'no'} "
            f"sync_statuses={json.dumps(r.get('membership_sync_statuses', []), sort_keys=True)}"
            for r in res.values()),
        "offering_users": sorted(
            f"{o.get('username')} state={o.get('state')}" for o in st["offering_users"].values()),
    }
    with open(out, "w") as f:
        json.dump(d, f, indent=1)

def compare(ours_dir, ref_dir, mode, out):
    """'same' or 'DIFF <what>'; the details to out."""
    a = json.load(open(os.path.join(ours_dir, "waldur.json")))
    b = json.load(open(os.path.join(ref_dir, "waldur.json")))
    a["slurm"] = open(os.path.join(ours_dir, "slurm-after.txt")).read().splitlines()
    b["slurm"] = open(os.path.join(ref_dir, "slurm-after.txt")).read().splitlines()
    ca = json.load(open(os.path.join(ours_dir, "counters.json")))
    cb = json.load(open(os.path.join(ref_dir, "counters.json")))
    key = DONE_KEY[mode]
    a["done"], b["done"] = [f"{key}: {ca.get(key, 0)}"], [f"{key}: {cb.get(key, 0)}"]
    primary = {"report": ["component_usages", "user_usages"],
               "membership_sync": ["slurm", "done"]}[mode]
    differ = [k for k in sorted(a) if a[k] != b[k]]
    with open(out, "w") as f:
        for k in differ:
            sa, sb = set(a[k]), set(b[k])
            f.write(f"-- {k}: ours {len(a[k])} entries, reference {len(b[k])}; "
                    f"only ours {len(sa - sb)}, only reference {len(sb - sa)}\n")
            for x in sorted(sa - sb)[:8]:
                f.write(f"   only ours:      {x}\n")
            for x in sorted(sb - sa)[:8]:
                f.write(f"   only reference: {x}\n")
        # writes to Waldur per endpoint, for the record
        writes = sorted(k for k in set(ca) | set(cb) if not k.startswith("GET ") and ca.get(k, 0) != cb.get(k, 0))
        for k in writes:
            f.write(f"   writes {k}: ours {ca.get(k, 0)}, reference {cb.get(k, 0)}\n")
    main = [k for k in differ if k in primary]
    other = [k for k in differ if k not in primary]
    if not differ:
        print("same")
    elif main:
        print("DIFF:" + ",".join(main) + ("(+" + ",".join(other) + ")" if other else ""))
    else:
        print("same*:" + ",".join(other))

def prepare(gen, prefix, mode, size_tag):
    """Rewrites the generated scenario for SLURM names and writes the desired SLURM state."""
    state = json.load(open(os.path.join(gen, "state", "state.json")))["accounts"]
    def acct(n):
        return prefix + n if n[:2] in ("a_", "p_", "c_") else n
    want = {}
    for n, a in state.items():
        parent = acct(a["parent"])
        users = []
        for u in a["users"]:
            if u.startswith("stale_"):   # one stale user per project, in each of its allocations
                u = "stale_" + a["parent"].rsplit("-", 1)[-1]
            users.append(prefix + u)
        want[acct(n)] = {"parent": parent, "organization": acct(a["organization"]),
                         "users": sorted(set(users)),
                         "limits": {"cpu": int(os.environ["LIMIT_CPU"]), "mem": int(os.environ["LIMIT_MEM"])}
                         if n.startswith("a_") else None}
    json.dump({"accounts": want}, open(os.path.join(gen, "desired.json"), "w"), indent=1)
    y = open(os.path.join(gen, "scenario.yaml")).read()
    y = re.sub(r"(?m)^(\s+backend_id: )a_", r"\g<1>" + prefix + "a_", y)
    y = re.sub(r"(?m)^(\s+username: )(u\d+_\d+)$", r"\g<1>" + prefix + r"\g<2>", y)
    y = re.sub(r"(?m)^    cpu: 10$", "    cpu: " + os.environ["LIMIT_CPU"], y)
    y = re.sub(r"(?m)^    mem: 10$", "    mem: " + os.environ["LIMIT_MEM"], y)
    open(os.path.join(gen, "scenario.yaml"), "w").write(y)

def purge(prefix):
    cleanup(prefix, "/nonexistent")

if __name__ == "__main__":
    cmd, args = sys.argv[1], sys.argv[2:]
    if cmd == "apply": apply(*args)
    elif cmd == "snapshot": snapshot(*args)
    elif cmd == "cleanup": cleanup(*args)
    elif cmd == "purge": purge(*args)
    elif cmd == "jobs": jobs(*args)
    elif cmd == "wait-quiet": sys.exit(wait_quiet(args[0], args[1], float(args[2]), float(args[3]), float(args[4])))
    elif cmd == "stats": stats(*args)
    elif cmd == "commands": commands(*args)
    elif cmd == "digest": digest(*args)
    elif cmd == "compare": compare(*args)
    elif cmd == "prepare": prepare(*args)
    else: raise SystemExit(f"unknown helper command {cmd}")
EOF
BENCH_SLURM_SETUP="$ROOT/scripts/slurm-setup.sh"
export LIMIT_CPU LIMIT_MEM BENCH_SLURM_SETUP

if [[ "$PURGE" == 1 ]]; then
    python3 "$WORK/benchlib.py" purge bench_
    exit 0
fi

# ---------------------------------------------------------------- prerequisites
if [[ ! -x /usr/bin/time ]]; then
    log "installing Debian package 'time'"
    apt-get install -y -qq time >/dev/null || { apt-get update -qq && apt-get install -y -qq time >/dev/null; }
fi
if ! "$ROOT/scripts/slurm-setup.sh" status >/dev/null 2>&1; then
    log "SLURM is down: starting it (scripts/slurm-setup.sh)"
    "$ROOT/scripts/slurm-setup.sh" >&2
fi
CLUSTER="$(sacctmgr -n -P list cluster format=cluster | head -n1)"
log "SLURM up (cluster $CLUSTER); bench prefix $TAG"
leftovers="$(sacctmgr -n -P list account format=account | grep -c '^bench_' || true)"
[[ "$leftovers" == 0 ]] || log "note: $leftovers bench_* accounts of other runs are in SLURM (scripts/bench-slurm.sh --purge removes them)"

log "building (release): waldur-sim"
cargo build --release --quiet --manifest-path "$ROOT/Cargo.toml" -p waldur-sim
REL="$ROOT/target/release"
AGENT="$REL/waldur-agent"
OURS_NOTE=""
if [[ "$NO_OURS" == 0 ]]; then
    log "building (release): waldur-agent, slurm + basic-username plugins"
    if cargo build --release --quiet --manifest-path "$ROOT/Cargo.toml" \
        -p waldur-agent -p waldur-plugin-slurm -p waldur-plugin-basic-username 2>"$WORK/build.err"; then
        mkdir -p "$WORK/plugins"
        chmod 755 "$WORK/plugins"
        cp "$REL/libwaldur_plugin_slurm.so" "$WORK/plugins/slurm.so"
        cp "$REL/libwaldur_plugin_basic_username.so" "$WORK/plugins/usernames.so"
        chmod 755 "$WORK/plugins"/*.so
    else
        tail -n 30 "$WORK/build.err" >&2
        OURS_NOTE="our agent/plugin did not build (cargo build failed); only the reference was measured"
        log "$OURS_NOTE"
        NO_OURS=1
    fi
fi

if [[ "$NO_REF" == 0 ]]; then
    want_pkgs=(waldur-site-agent==1.0.7 waldur-site-agent-slurm==1.0.7 waldur-site-agent-basic-username-management==1.0.7)
    if [[ ! -x "$VENV/bin/waldur_site_agent" ]] \
        || ! "$VENV/bin/pip" show waldur-site-agent waldur-site-agent-slurm waldur-site-agent-basic-username-management 2>/dev/null \
            | grep -c '^Version: 1.0.7$' | grep -q '^3$'; then
        log "creating virtualenv $VENV (pip install ${want_pkgs[*]})"
        python3 -m venv "$VENV"
        "$VENV/bin/pip" install --quiet --disable-pip-version-check "${want_pkgs[@]}"
    fi
fi

# ---------------------------------------------------------------- per-run pieces
make_shim() { # dir: one logging wrapper per SLURM command (and id, found through PATH)
    local dir="$1" cmd real
    mkdir -p "$dir"
    : >"$dir/calls.log"; : >"$dir/done.log"
    for cmd in sacctmgr sacct scancel sinfo id; do
        real="/usr/bin/$cmd"
        local lock=""
        if [[ "$SERIALIZE" == 1 && "$cmd" == sacctmgr ]]; then
            lock='case " $* " in *" add "*|*" remove "*|*" modify "*|*" delete "*|*" create "*) exec 9>>"'"$dir/write.lock"'"; flock 9 ;; esac'
        fi
        cat >"$dir/$cmd" <<EOF
#!/bin/bash
printf -v line ' %q' "\$@"
printf '%s\n' "$cmd\$line" >>"$dir/calls.log"
$lock
start=\$EPOCHREALTIME
"$real" "\$@"
rc=\$?
printf '%s %s %s %s\n' "\$rc" "\$start" "\$EPOCHREALTIME" "$cmd" >>"$dir/done.log"
exit \$rc
EOF
        chmod 755 "$dir/$cmd"
    done
}

DBD_LOG="${SLURM_STATE:-/tmp/waldur-agent-slurm}/log/slurmdbd.log"
dbd_log_size() { stat -c %s "$DBD_LOG" 2>/dev/null || echo 0; }
ensure_slurm() {
    if ! "$ROOT/scripts/slurm-setup.sh" status >/dev/null 2>&1; then
        log "SLURM is down: restarting it (scripts/slurm-setup.sh)"
        "$ROOT/scripts/slurm-setup.sh" >&2
    fi
}
# check_slurm LOG_OFFSET: what slurmdbd logged during the run; restarts SLURM if it died. Sets SLURM_NOTE.
check_slurm() {
    local new dl fatal
    SLURM_NOTE=""
    new="$(tail -c +$(( $1 + 1 )) "$DBD_LOG" 2>/dev/null || true)"
    dl="$(grep -c 'deadlock detected' <<<"$new" || true)"
    [[ "$dl" == 0 ]] || SLURM_NOTE="slurmdbd logged $dl deadlock retries"
    if ! "$ROOT/scripts/slurm-setup.sh" status >/dev/null 2>&1; then
        fatal="$(grep -m1 -o 'fatal: .*' <<<"$new" | cut -c1-90 || true)"
        SLURM_NOTE="${SLURM_NOTE:+$SLURM_NOTE, }SLURM DIED during the run (slurmdbd ${fatal:-down}), restarted"
        log "SLURM died during the run: restarting it"
        "$ROOT/scripts/slurm-setup.sh" >&2
    fi
}

write_config() { # file shim_dir
    cat >"$1" <<EOF
sentry_dsn: ""
timezone: "UTC"
offerings:
  - name: "Bench SLURM Offering"
    waldur_api_url: "$URL"
    waldur_api_token: "$TOKEN"
    waldur_offering_uuid: "$OFFERING"
    username_management_backend: "base"
    order_processing_backend: "slurm"
    membership_sync_backend: "slurm"
    reporting_backend: "slurm"
    resource_import_enabled: false
    stomp_enabled: false
    backend_type: "slurm"
    backend_settings:
      default_account: "root"
      customer_prefix: "${TAG}c_"
      project_prefix: "${TAG}p_"
      allocation_prefix: "${TAG}a_"
      qos_downscaled: "limited"
      qos_paused: "paused"
      qos_default: "normal"
      enable_user_homedir_account_creation: false
      slurm_bin_path: "$2"
    backend_components:
      cpu: {limit: $LIMIT_CPU, measured_unit: "cpu-minutes", unit_factor: 1, accounting_type: "usage", label: "CPU"}
      mem: {limit: $LIMIT_MEM, measured_unit: "MB-minutes", unit_factor: 1, accounting_type: "usage", label: "RAM"}
EOF
}

# reset_slurm SIZE MODE: SLURM back to the starting state of the mode; sets RESET_S
reset_slurm() {
    local r
    SLURM_TOUCHED=1
    ensure_slurm
    r="$(python3 "$WORK/benchlib.py" apply "$WORK/gen-$1-$2/desired.json" "$TAG")"
    RESET_S="${r#* }"
    log "SLURM reset to the $2 state of $1 allocations: ${r% *} sacctmgr commands, ${RESET_S}s"
}

# run_one AGENT(ours|ref) MODE SIZE LATENCY -> writes "wall rss_mb requests cmds ids done assoc
# note" to $RUN/result (not run in a subshell, so the EXIT trap knows SIM_PID and AGENT_PID)
run_one() {
    local who="$1" mode="$2" size="$3" lat="$4" t_begin
    t_begin="$(date +%s.%N)"
    RUN="$WORK/$size-$mode-$who-${lat}ms"
    mkdir -p "$RUN"
    reset_slurm "$size" "$mode"
    make_shim "$RUN/shim"
    sim_start "$REL/waldur-sim" "$WORK/gen-$size-$mode/scenario.yaml" "$RUN"
    if [[ "$lat" != 0 ]]; then
        curl -sf -X POST -H 'Content-Type: application/json' \
            -d "{\"kind\":\"latency\",\"ms\":$lat}" "$ORIGIN/__sim/faults" >/dev/null
    fi
    write_config "$RUN/config.yaml" "$RUN/shim"
    local wall rc=0 note="" load dbd_offset
    load="$(cut -d' ' -f1 /proc/loadavg)"
    dbd_offset="$(dbd_log_size)"
    if [[ "$who" == ours ]]; then
        /usr/bin/time -f "%e %M" -o "$RUN/time.txt" \
            env WALDUR_AGENT_PLUGIN_PATH= PATH="$RUN/shim:$PATH" \
            "$AGENT" run -m "$mode" --once -c "$RUN/config.yaml" \
            --plugin-dir "$WORK/plugins" >"$RUN/agent.log" 2>&1 || rc=$?
        [[ "$rc" == 0 ]] || note="exit $rc"
        wall="$(tail -n1 "$RUN/time.txt" | cut -d' ' -f1)"
        local errors
        errors="$(grep -c 'ERROR\|panicked' "$RUN/agent.log" || true)"
        [[ "$errors" == 0 ]] || note="${note:+$note, }$errors ERROR lines in log"
        local failed
        failed="$(sed 's/\x1b\[[0-9;]*m//g' "$RUN/agent.log" | grep -o '\(membership\|usage\): .*, [0-9]* failed' \
            | tail -n1 | grep -o '[0-9]* failed$' || true)"
        [[ -z "$failed" || "$failed" == "0 failed" ]] || note="${note:+$note, }${failed% failed} resources failed"
    else
        local start
        start="$(date +%s.%N)"
        WALDUR_SITE_AGENT_ORDER_PROCESS_PERIOD_MINUTES=600 \
        WALDUR_SITE_AGENT_REPORT_PERIOD_MINUTES=600 \
        WALDUR_SITE_AGENT_MEMBERSHIP_SYNC_PERIOD_MINUTES=600 \
        PATH="$RUN/shim:$PATH" \
            /usr/bin/time -f "%e %M" -o "$RUN/time.txt" \
            "$VENV/bin/waldur_site_agent" -m "$mode" -c "$RUN/config.yaml" >"$RUN/agent.log" 2>&1 &
        AGENT_PID=$!
        local span
        if span="$(python3 "$WORK/benchlib.py" wait-quiet "$ORIGIN" "$RUN/shim" "$start" "$QUIET" "$REF_TIMEOUT")"; then
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
    check_slurm "$dbd_offset"
    [[ -z "$SLURM_NOTE" ]] || note="${note:+$note, }$SLURM_NOTE"
    local rss stats cmds assoc
    rss="$(tail -n1 "$RUN/time.txt" | awk '{printf "%.1f", $2/1024}')"
    stats="$(python3 "$WORK/benchlib.py" stats "$ORIGIN" "$mode")"
    curl -sf "$ORIGIN/__sim/counters" >"$RUN/counters.json" || echo '{}' >"$RUN/counters.json"
    python3 "$WORK/benchlib.py" digest "$ORIGIN" "$RUN/waldur.json"
    sim_stop
    cmds="$(python3 "$WORK/benchlib.py" commands "$RUN/shim" "$RUN/commands.txt")"
    assoc="$(python3 "$WORK/benchlib.py" snapshot "$TAG" "$RUN/slurm-after.txt")"
    local total
    total="$(awk -v a="$(date +%s.%N)" -v b="$t_begin" 'BEGIN{printf "%.0f", a-b}')"
    echo "$who $size $mode ${lat}ms: load $load, SLURM reset ${RESET_S}s, run+checks ${total}s in all" >>"$WORK/timings.txt"
    echo "$wall $rss ${stats% *} $cmds ${stats#* } $assoc ${note:-ok}" >"$RUN/result"
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
[[ -z "$OURS_NOTE" ]] || SKIPPED+=("$OURS_NOTE")
[[ "$NO_OURS" == 0 || -n "$OURS_NOTE" ]] || SKIPPED+=("our agent (--no-ours)")
REPORT="$OUT/results-$(date +%Y%m%d-%H%M%S).txt"
: >"$WORK/timings.txt"; : >"$WORK/details.txt"
JOBS_DONE=0
min_size="$(printf '%s\n' "${SIZE_LIST[@]}" | sort -n | head -n1)"
T_ALL="$(date +%s)"
{
    echo "bench-slurm $(date -u +%FT%TZ): cluster $CLUSTER ($(sacctmgr --version)), prefix $TAG"
    echo "ours: $([[ "$NO_OURS" == 0 ]] && echo "waldur-agent $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null)$(git -C "$ROOT" diff --quiet 2>/dev/null || echo '+dirty') + plugins/slurm" || echo "not run")"
    echo "reference: $([[ "$NO_REF" == 0 ]] && echo "waldur-site-agent $("$VENV/bin/pip" show waldur-site-agent 2>/dev/null | sed -n 's/^Version: //p') + waldur-site-agent-slurm $("$VENV/bin/pip" show waldur-site-agent-slurm 2>/dev/null | sed -n 's/^Version: //p')" || echo "not run")"
    [[ "$SERIALIZE" == 0 ]] || echo "--serialize-writes: the shim runs writing sacctmgr commands one at a time"
    if ip route show table local 2>/dev/null | grep -q "^local 127.0.0.1 .*quickack 1"; then
        echo "loopback quickack on: no delayed-ACK stalls between sacctmgr and slurmdbd (scripts/slurm-setup.sh)"
    else
        echo "loopback quickack off: every sacctmgr round trip to slurmdbd stalls ~40 ms (scripts/slurm-setup.sh)"
    fi
    echo "load at start: $(uptime)"
} | tee -a "$REPORT"
for size in "${SIZE_LIST[@]}"; do
    ref=1
    if [[ "$NO_REF" == 1 ]] || { [[ -n "$REF_MAX" ]] && (( size > REF_MAX )); }; then
        ref=0; [[ "$NO_REF" == 1 ]] || SKIPPED+=("reference agent at $size allocations")
    fi
    rows=()
    load_before="$(uptime)"
    for mode in "${MODE_LIST[@]}"; do
        log "generating $size allocations for $mode"
        gen="$WORK/gen-$size-$mode"
        mkdir -p "$gen"
        "$REL/waldur-sim-scenario" --mode "$mode" --resources "$size" --users "$USERS" \
            --offering-uuid "$OFFERING" --token "$TOKEN" \
            --scenario "$gen/scenario.yaml" --state-dir "$gen/state"
        python3 "$WORK/benchlib.py" prepare "$gen" "$TAG" "$mode" "$size"
        if [[ "$JOBS_DONE" == 0 ]]; then
            # Once per invocation (sacct keeps them for every later size): 10 jobs in allocations
            # that exist at every size.
            reset_slurm "$size" "$mode"
            step=$(( min_size >= 10 ? min_size / 10 : 1 ))
            accts="$(for k in $(seq 0 9); do i=$(( k * step )); if (( i < min_size )); then echo "${TAG}a_res-$i"; fi; done | sort -u | paste -sd,)"
            log "submitting bench jobs (as root) in $accts"
            python3 "$WORK/benchlib.py" jobs "$accts" "$WORK/jobs.txt"
            JOBS_DONE=1
        fi
        for lat in "${LAT_LIST[@]}"; do
            if [[ "$NO_OURS" == 0 ]]; then
                log "$size $mode ${lat}ms: ours"
                run_one ours "$mode" "$size" "$lat"
                ours_run="$RUN"
                read -r o_wall o_rss o_req o_cmd o_id o_done o_assoc o_note <"$RUN/result"
            else
                ours_run=""; o_wall=-; o_rss=-; o_req=-; o_cmd=-; o_id=-; o_done=-; o_assoc=-; o_note="not run"
            fi
            if [[ "$ref" == 1 ]]; then
                log "$size $mode ${lat}ms: reference"
                run_one ref "$mode" "$size" "$lat"
                ref_run="$RUN"
                read -r r_wall r_rss r_req r_cmd r_id r_done r_assoc r_note <"$RUN/result"
            else
                ref_run=""; r_wall=-; r_rss=-; r_req=-; r_cmd=-; r_id=-; r_done=-; r_assoc=-; r_note="skipped"
            fi
            same="-"
            if [[ -n "$ours_run" && -n "$ref_run" ]]; then
                same="$(python3 "$WORK/benchlib.py" compare "$ours_run" "$ref_run" "$mode" "$WORK/diff.txt")"
                if [[ -s "$WORK/diff.txt" ]]; then
                    { echo "== $size $mode ${lat}ms: $same"; cat "$WORK/diff.txt"; } >>"$WORK/details.txt"
                fi
            fi
            for r in "$ours_run" "$ref_run"; do
                [[ -n "$r" ]] || continue
                { echo "== $(basename "$r"): $(cut -d' ' -f4 "$r/result") SLURM commands, $(cut -d' ' -f5 "$r/result") id"
                  sed 's/^/   /' "$r/commands.txt"; } >>"$WORK/commands.txt"
            done
            rows+=("$(printf '%-15s %4s | %8s %8s | %6s %6s | %6s %6s | %6s %6s | %5s %5s | %6s %6s | %6s %6s %6s %6s | %-5s | ours: %s; ref: %s' \
                "$mode" "${lat}ms" "$o_wall" "$r_wall" "$o_rss" "$r_rss" "$o_req" "$r_req" \
                "$o_cmd" "$r_cmd" "$o_done" "$r_done" "$o_assoc" "$r_assoc" \
                "$(ratio "$o_wall" "$r_wall")" "$(ratio "$o_rss" "$r_rss")" "$(ratio "$o_req" "$r_req")" \
                "$(ratio "$o_cmd" "$r_cmd")" "$same" "$o_note" "$r_note")")
        done
    done
    {
        echo
        echo "== $size allocations, $USERS users each ($(( (size + 9) / 10 )) projects), latency per Waldur request as given"
        echo "   load before: $load_before"
        echo "   load after:  $(uptime)"
        printf '%-15s %4s | %8s %8s | %6s %6s | %6s %6s | %6s %6s | %5s %5s | %6s %6s | %6s %6s %6s %6s | %-5s | notes\n' \
            mode lat "ours s" "ref s" "ours MB" "ref MB" "ours rq" "ref rq" "ourcmd" "refcmd" "ours✓" "ref✓" \
            "ours as" "ref as" "t o/r" "M o/r" "rq o/r" "cmd o/r" same
        printf '%s\n' "${rows[@]}"
    } | tee -a "$REPORT"
    for mode in "${MODE_LIST[@]}"; do rm -rf "$WORK/gen-$size-$mode/state"; done
done
{
    echo
    echo "s = wall seconds (ref: start -> last Waldur request or SLURM command of its first cycle; 'start' ="
    echo "until its first request); MB = peak RSS; rq = Waldur requests; cmd = SLURM commands (sacctmgr,"
    echo "sacct, scancel, sinfo; 'id' apart, below); ✓ = set_usage / refresh_last_sync; as = user"
    echo "associations in the allocations afterwards (expected size x $USERS); o/r = ours / reference;"
    echo "same = both agents left the same results (report: component + user usages in Waldur;"
    echo "membership_sync: SLURM associations + refresh_last_sync count); 'same*' = those match but"
    echo "something else differs; details below."
    echo
    echo "SLURM commands per run (kind: count):"
    cat "$WORK/commands.txt"
    echo
    echo "Differences between the agents:"
    if [[ -s "$WORK/details.txt" ]]; then cat "$WORK/details.txt"; else echo "   none"; fi
    echo
    echo "Timings (each run includes putting SLURM back into its starting state):"
    sed 's/^/   /' "$WORK/timings.txt"
    echo "   whole benchmark: $(( $(date +%s) - T_ALL ))s; load at end: $(uptime)"
    if [[ ${#SKIPPED[@]} -gt 0 ]]; then printf 'skipped: %s\n' "${SKIPPED[@]}"; fi
} | tee -a "$REPORT"
log "results saved to $REPORT"
