"""`sim-demo`: a JSON-file backend for the reference Python waldur-site-agent.

It keeps its state in the same files, and does the same kind of work, as the Rust demo plugin
(plugins/demo, README.md), so the two agents can be compared on equal terms:

- `<state_dir>/state.json`: `{"version": 1, "accounts": {name: {name, description, organization,
  parent, limits, user_limits, users: {username: {default_account}}, qos}}, "homedirs": {}}`,
  limits in backend units. Reads take a shared `flock` on `<state_dir>/state.lock`, changes an
  exclusive one around read-modify-write; the file is replaced atomically (temporary file,
  fsync, rename) and only when something changed.
- `<state_dir>/usage/<YYYY-MM>/<account>.json`: `{username: {component: amount}}` in backend
  units; reported per user as `amount / unit_factor` rounded to 2 decimals, the total being the
  sum of the rounded values; no file means zero usage this month and no data for past months.

Settings (`backend_settings`): `state_dir` (required), `customer_prefix`, `project_prefix`,
`allocation_prefix`, `default_account` ("root").
"""

import datetime
import fcntl
import json
import os
import tempfile
from contextlib import contextmanager

from waldur_site_agent.backend.backends import AbstractUsernameManagementBackend, BaseBackend
from waldur_site_agent.backend.clients import BaseClient
from waldur_site_agent.backend.structures import Association, ClientResource

ROOT = "root"


class JsonStateClient(BaseClient):
    def __init__(self, state_dir):
        self.dir = state_dir
        os.makedirs(state_dir, exist_ok=True)
        self.path = os.path.join(state_dir, "state.json")
        self.lock_path = os.path.join(state_dir, "state.lock")

    @contextmanager
    def _lock(self, kind):
        with open(self.lock_path, "a") as lock:
            fcntl.flock(lock, kind)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def _load(self):
        if not os.path.exists(self.path):
            return {"version": 1, "accounts": {}, "homedirs": {}}
        with open(self.path) as f:
            return json.load(f)

    def _save(self, data):
        fd, tmp = tempfile.mkstemp(dir=self.dir, prefix=".state.", suffix=".tmp")
        with os.fdopen(fd, "w") as f:
            json.dump(data, f, indent=2)
            f.write("\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.path)
        dfd = os.open(self.dir, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)

    def read(self, fn):
        with self._lock(fcntl.LOCK_SH):
            return fn(self._load())

    def edit(self, fn):
        with self._lock(fcntl.LOCK_EX):
            data = self._load()
            before = json.dumps(data, sort_keys=True)
            out = fn(data)
            if json.dumps(data, sort_keys=True) != before:
                self._save(data)
            return out

    def account(self, name):
        return self.read(lambda d: d["accounts"].get(name))

    # ------------------------------------------------------------------ BaseClient
    def list_resources(self):
        return [ClientResource(name=k, description=v["description"], organization=v["organization"])
                for k, v in self.read(lambda d: d["accounts"]).items()]

    def get_resource(self, resource_id):
        v = self.account(resource_id)
        return None if v is None else ClientResource(
            name=resource_id, description=v["description"], organization=v["organization"])

    def create_resource(self, name, description, organization, parent_name=None):
        def add(d):
            if parent_name and parent_name != ROOT and parent_name not in d["accounts"]:
                raise ValueError(f"sim-demo: parent account {parent_name} does not exist")
            d["accounts"].setdefault(name, {
                "name": name, "description": description, "organization": organization,
                "parent": parent_name, "limits": {}, "user_limits": {}, "users": {}, "qos": "normal"})
        self.edit(add)
        return name

    def delete_resource(self, name):
        self.edit(lambda d: d["accounts"].pop(name, None))
        return name

    def set_resource_limits(self, resource_id, limits_dict):
        self.edit(lambda d: d["accounts"][resource_id]["limits"].update(
            {k: int(v) for k, v in limits_dict.items()}))
        return None

    def get_resource_limits(self, resource_id):
        return dict((self.account(resource_id) or {}).get("limits", {}))

    def get_resource_user_limits(self, resource_id):
        return dict((self.account(resource_id) or {}).get("user_limits", {}))

    def set_resource_user_limits(self, resource_id, username, limits):
        def put(d):
            acc = d["accounts"][resource_id]
            if username in acc["users"]:
                acc["user_limits"][username] = dict(limits)
        self.edit(put)
        return ""

    def get_association(self, user, resource_id):
        acc = self.account(resource_id) or {}
        return Association(account=resource_id, user=user) if user in acc.get("users", {}) else None

    def create_association(self, username, resource_id, default_account=None):
        self.edit(lambda d: d["accounts"][resource_id]["users"].setdefault(
            username, {"default_account": default_account or ROOT}))
        return ""

    def delete_association(self, username, resource_id):
        def remove(d):
            acc = d["accounts"][resource_id]
            acc["users"].pop(username, None)
            acc["user_limits"].pop(username, None)
        self.edit(remove)
        return ""

    def get_usage_report(self, resource_ids, timezone=None):
        return []

    def list_resource_users(self, resource_id):
        return list((self.account(resource_id) or {}).get("users", {}))

    def create_linux_user_homedir(self, username, umask=""):
        self.edit(lambda d: d.setdefault("homedirs", {}).setdefault(username, {"umask": umask}))
        return ""


class SimDemoBackend(BaseBackend):
    def __init__(self, backend_settings, backend_components):
        super().__init__(backend_settings, backend_components)
        self.backend_type = "sim-demo"
        self.client = JsonStateClient(backend_settings["state_dir"])

    def ping(self, raise_exception=False):
        return True

    def diagnostics(self):
        return True

    def list_components(self):
        return list(self.backend_components)

    def _month(self):
        tz = datetime.timezone.utc
        try:
            from zoneinfo import ZoneInfo
            if getattr(self, "timezone", None):
                tz = ZoneInfo(self.timezone)
        except Exception:
            pass
        return datetime.datetime.now(tz).strftime("%Y-%m")

    def _read_usage(self, account, month):
        path = os.path.join(self.client.dir, "usage", month, f"{account}.json")
        zero = {c: 0.0 for c in self.backend_components}
        if not os.path.exists(path):
            return {"TOTAL_ACCOUNT_USAGE": zero}
        with open(path) as f:
            raw = json.load(f)
        report, total = {}, dict(zero)
        for user, usage in raw.items():
            if user == "TOTAL_ACCOUNT_USAGE":
                continue
            per_user = {}
            for comp, spec in self.backend_components.items():
                factor = float(spec.get("unit_factor", 1) or 1)
                per_user[comp] = round(float(usage.get(comp, 0)) / factor, 2)
                total[comp] += per_user[comp]
            report[user] = per_user
        report["TOTAL_ACCOUNT_USAGE"] = {c: round(v, 10) for c, v in total.items()}
        return report

    def _get_usage_report(self, resource_backend_ids):
        month = self._month()
        return {rid: self._read_usage(rid, month) for rid in resource_backend_ids}

    def get_usage_report_for_period(self, resource_backend_ids, year, month, **kwargs):
        # As the Rust demo: a past month without a usage file had no data (nothing reported).
        period = f"{year:04d}-{month:02d}"
        return {rid: self._read_usage(rid, period) for rid in resource_backend_ids
                if os.path.exists(os.path.join(self.client.dir, "usage", period, f"{rid}.json"))}

    def _set_qos(self, resource_backend_id, qos):
        def put(d):
            acc = d["accounts"][resource_backend_id]
            changed = acc.get("qos") != qos
            acc["qos"] = qos
            return changed
        return self.client.edit(put)

    def downscale_resource(self, resource_backend_id):
        return self._set_qos(resource_backend_id, "downscaled")

    def pause_resource(self, resource_backend_id):
        return self._set_qos(resource_backend_id, "paused")

    def restore_resource(self, resource_backend_id):
        return self._set_qos(resource_backend_id, "normal")

    def get_resource_metadata(self, resource_backend_id):
        acc = self.client.account(resource_backend_id) or {}
        return {"qos": acc.get("qos", "normal"), "users": len(acc.get("users", {}))}

    def _collect_resource_limits(self, waldur_resource):
        limits = waldur_resource.limits.to_dict() if waldur_resource.limits else {}
        waldur = {k: int(v) for k, v in limits.items() if k in self.backend_components}
        backend = {k: v * int(self.backend_components[k].get("unit_factor", 1)) for k, v in waldur.items()}
        return backend, waldur

    def _pre_create_resource(self, waldur_resource, user_context=None):
        # The hierarchy root -> customer -> project, as the Rust demo plugin and SLURM build it.
        customer = self._get_customer_backend_id(waldur_resource.customer_slug)
        project = self._get_project_backend_id(waldur_resource.project_slug)
        if self.client.get_resource(customer) is None:
            self.client.create_resource(customer, customer, customer, ROOT)
        if self.client.get_resource(project) is None:
            self.client.create_resource(project, project, project, customer)


class SimDemoUsernames(AbstractUsernameManagementBackend):
    def generate_username(self, offering_user):
        return "sim_" + str(offering_user.user_username).split("@")[0]

    def get_username(self, offering_user):
        return None
