#!/usr/bin/env bash
# The Debian package for real, as a site would use it: builds it (scripts/package.sh),
# installs it with dpkg -i, checks the files (modes, owners, conffile, links, test-order but no
# demo command in the binary), runs the installed `waldur-agent plugins list` and `waldur_site_healthz`,
# checks every unit with systemd-analyze verify, runs the installed agent against the Waldur
# simulator and checks that `waldur_site_healthz --liveness-only --max-age N` keeps passing
# for longer than N while it waits for its next cycle, runs one order with the installed
# waldur_site_test_order, then purges the package and checks
# that nothing of it is left.
# Needs root and dpkg (it installs a package); without them it skips, except under CI=true,
# where it fails. Refuses to run when waldur-agent is installed already (it would replace it).
# The simulator is the workspace's debug build (target/debug/waldur-sim), built when missing.
# Usage: scripts/package-test.sh
set -euo pipefail
# A check reads its input to the end (`grep ... >/dev/null`, never `grep -q`): grep -q stops at
# the first match, and under pipefail the writer's SIGPIPE would fail a check that passed.
cd "$(dirname "$0")/.."
# shellcheck source=scripts/demo-site.sh
source scripts/demo-site.sh

skip() {
    if [[ "${CI:-}" = true ]]; then echo "package test: $1 (required under CI=true)" >&2; exit 1; fi
    echo "== package test skipped: $1"
    exit 0
}
[[ "$(id -u)" = 0 ]] || skip "not root"
command -v dpkg >/dev/null 2>&1 || skip "no dpkg"
# dpkg's state of the package: empty or not-installed when it is absent.
package_state() { dpkg-query -W -f '${db:Status-Status}' waldur-agent 2>/dev/null || true; }
if [[ ! "$(package_state)" =~ ^(not-installed)?$ ]]; then
    echo "package test: waldur-agent is installed on this machine; remove it first (dpkg --purge waldur-agent)" >&2
    exit 1
fi
if ! command -v systemd-analyze >/dev/null 2>&1; then
    echo "== installing systemd (for systemd-analyze verify)"
    apt-get install -y -qq systemd >/dev/null || { apt-get update -qq && apt-get install -y -qq systemd >/dev/null; }
fi

START=$SECONDS
WORK="$(mktemp -d)"
SIM_PID=""
AGENT_PID=""
INSTALLED=0
cleanup() {
    if [[ -n "$AGENT_PID" ]]; then kill "$AGENT_PID" 2>/dev/null || true; wait "$AGENT_PID" 2>/dev/null || true; fi
    if [[ -n "$SIM_PID" ]]; then kill "$SIM_PID" 2>/dev/null || true; wait "$SIM_PID" 2>/dev/null || true; fi
    if [[ $INSTALLED = 1 ]]; then dpkg --purge waldur-agent >/dev/null 2>&1 || true; fi
    rm -rf "$WORK"
}
trap cleanup EXIT
fail() { echo "package test FAILED: $*" >&2; exit 1; }
check() { local what="$1"; shift; "$@" >"$WORK/out" 2>&1 || { cat "$WORK/out" >&2; fail "$what"; }; echo "ok: $what"; }

scripts/package.sh
DEB="$(ls -t target/debian/waldur-agent_*.deb | head -n 1)"

echo "== dpkg -i $DEB"
dpkg -i "$DEB"
INSTALLED=1
mapfile -t FILES < <(dpkg -L waldur-agent)

# ---------------------------------------------------------------- files
mode_of() { stat -c '%U:%G %a' "$1"; }
for plugin in /usr/lib/waldur-agent/plugins/*.so; do
    [[ "$(mode_of "$plugin")" = "root:root 644" ]] || fail "$plugin: $(mode_of "$plugin"), want root:root 644"
done
CONFIG=/etc/waldur/waldur-site-agent-config.yaml
[[ "$(mode_of "$CONFIG")" = "root:root 600" ]] || fail "$CONFIG: $(mode_of "$CONFIG"), want root:root 600"
dpkg-query -W -f '${Conffiles}' waldur-agent | grep " $CONFIG " >/dev/null || fail "$CONFIG is not a conffile"
echo "ok: plugins root 0644, $CONFIG a conffile with mode 0600"
LINKS=(waldur_site_agent waldur_site_diagnostics waldur_site_load_components waldur_sync_offering_users
       waldur_sync_resource_limits waldur_site_create_homedirs waldur_site_healthz waldur_site_test_order
       waldur_site_diagnose_slurm_account waldur_site_load_historical_usage)
for name in "${LINKS[@]}"; do
    [[ "$(readlink "/usr/bin/$name")" = waldur-agent ]] || fail "/usr/bin/$name is not a link to waldur-agent"
    /usr/bin/"$name" --help | grep "Usage: $name " >/dev/null || fail "$name --help does not name $name"
done
echo "ok: ${#LINKS[@]} reference command names link to waldur-agent and answer --help under their name"
for file in /usr/share/man/man1/waldur-agent.1.gz /usr/share/bash-completion/completions/waldur-agent \
            /usr/share/zsh/vendor-completions/_waldur-agent /usr/share/fish/vendor_completions.d/waldur-agent.fish \
            /usr/share/doc/waldur-agent/copyright; do
    [[ -s "$file" ]] || fail "$file missing"
done
grep -q "MIT" /usr/share/doc/waldur-agent/copyright || fail "copyright does not carry the license"
echo "ok: man page, bash/zsh/fish completions, copyright"
if /usr/bin/waldur-agent demo >/dev/null 2>&1; then fail "the installed binary has the demo command"; fi
# The simulator is in (test-order embeds it), under both names.
/usr/bin/waldur-agent test-order --list-templates | grep -x "create/basic" >/dev/null \
    || fail "the installed binary has no test-order"
/usr/bin/waldur_site_test_order --list-templates | grep -x "terminate/basic" >/dev/null \
    || fail "waldur_site_test_order is not installed"
echo "ok: test-order and no demo command in /usr/bin/waldur-agent"

# ---------------------------------------------------------------- installed commands
waldur-agent plugins list >"$WORK/plugins" 2>&1 || { cat "$WORK/plugins" >&2; fail "waldur-agent plugins list"; }
for lib in libwaldur_plugin_demo.so libwaldur_plugin_basic_username.so libwaldur_plugin_slurm.so \
    libwaldur_plugin_waldur.so; do
    grep -Eq " ok +/usr/lib/waldur-agent/plugins/$lib " "$WORK/plugins" \
        || { cat "$WORK/plugins" >&2; fail "$lib is not ok in waldur-agent plugins list"; }
done
echo "ok: the installed waldur-agent plugins list shows the 4 bundled plugins ok"
waldur-agent plugins inspect waldur >"$WORK/inspect" 2>&1 || { cat "$WORK/inspect" >&2; fail "waldur-agent plugins inspect waldur"; }
for expected in "Entry 'waldur' (backend)" "Entry 'waldur-identity-bridge' (username-management)" "target_offering_uuid"; do
    grep -F "$expected" "$WORK/inspect" >/dev/null || { cat "$WORK/inspect" >&2; fail "plugins inspect waldur lacks: $expected"; }
done
echo "ok: plugins inspect waldur lists the federation entries and settings"
# It also opens each unit's Documentation= man page, with man(1) when it is installed.
man_check=yes
command -v man >/dev/null 2>&1 || man_check=no
check "systemd-analyze verify on every unit (man pages: $man_check)" \
    systemd-analyze verify --man="$man_check" /usr/lib/systemd/system/waldur-agent*.service
[[ $(ls /usr/lib/systemd/system/waldur-agent*.service | wc -l) = 5 ]] || fail "want 5 units"

# ---------------------------------------------------------------- liveness between cycles
[[ -x target/debug/waldur-sim ]] || cargo build -p waldur-sim
start_demo_sim target/debug/waldur-sim || fail "simulator"
write_demo_config "$WORK/config.yaml" "heartbeat_interval_seconds: 1"
MAX_AGE=3
# The next report cycle is an hour away; the heartbeat must stay fresh meanwhile.
WALDUR_SITE_AGENT_REPORT_PERIOD_MINUTES=60 RUST_LOG=warn \
    waldur_site_agent -m report -c "$WORK/config.yaml" >"$WORK/agent.log" 2>&1 &
AGENT_PID=$!
probe() { waldur_site_healthz --liveness-only --max-age "$MAX_AGE" --config-file "$WORK/config.yaml"; }
for _ in $(seq 100); do probe >/dev/null 2>&1 && break; sleep 0.1; done
for second in $(seq $((MAX_AGE * 3))); do
    sleep 1
    kill -0 "$AGENT_PID" 2>/dev/null || fail "the agent exited: $(cat "$WORK/agent.log")"
    probe >"$WORK/out" || fail "liveness failed after ${second}s: $(cat "$WORK/out")"
done
# Its report cycle really ran: it read the offering's resources from the simulator.
curl -fsS "$SIM_ORIGIN/__sim/counters" | grep '"GET /api/marketplace-provider-resources/' >/dev/null \
    || fail "the agent's report cycle made no request: $(cat "$WORK/agent.log")"
echo "ok: waldur_site_healthz --liveness-only --max-age $MAX_AGE passed for $((MAX_AGE * 3)) s between two report cycles"
kill "$AGENT_PID"; wait "$AGENT_PID" 2>/dev/null || true; AGENT_PID=""
sleep $((MAX_AGE + 1))
if probe >/dev/null; then fail "liveness still passes with the agent stopped"; fi
echo "ok: the same probe fails once the agent is gone"
kill "$SIM_PID"; wait "$SIM_PID" 2>/dev/null || true; SIM_PID=""

# ---------------------------------------------------------------- test-order
# One Create order through the installed binary's processor and the installed demo plugin, on
# the simulator the binary embeds (the standalone one is stopped by now).
sed 's/^    reporting_backend: demo$/&\n    order_processing_backend: demo/' "$WORK/config.yaml" >"$WORK/order.yaml"
waldur_site_test_order -c "$WORK/order.yaml" --template create/basic --var resource_name=pkg-order \
    >"$WORK/out" 2>&1 || fail "waldur_site_test_order: $(cat "$WORK/out")"
grep -qx "Result: done" "$WORK/out" || fail "test-order did not finish the order: $(cat "$WORK/out")"
grep -q "plugin  demo.client_create_resource(" "$WORK/out" || fail "test-order printed no plugin call"
echo "ok: waldur_site_test_order ran a Create order through the installed demo plugin"

# ---------------------------------------------------------------- purge
dpkg --purge waldur-agent >/dev/null
INSTALLED=0
left=()
for file in "${FILES[@]}"; do
    [[ -d "$file" && ! -L "$file" ]] && continue
    [[ -e "$file" || -L "$file" ]] && left+=("$file")
done
for dir in /usr/lib/waldur-agent /etc/waldur /usr/share/doc/waldur-agent; do
    [[ -e "$dir" ]] && left+=("$dir")
done
[[ "$(package_state)" =~ ^(not-installed)?$ ]] || left+=("dpkg state $(package_state)")
[[ ${#left[@]} = 0 ]] || fail "left after dpkg --purge: ${left[*]}"
echo "ok: dpkg --purge left nothing"
echo "== package test passed in $((SECONDS - START)) s"
