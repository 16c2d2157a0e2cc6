#!/usr/bin/env bash
# Real RabbitMQ 3.10 (Debian 12 package) with STOMP, Web-STOMP and the management API, without
# systemd, for the event-processing tests: the agent's STOMP client connects over Web-STOMP, and
# the tests and the Waldur simulator (tests/waldur-sim/src/broker.rs) create vhosts, users and
# queues and publish messages through the management API. Loopback only; must run as root
# (CI runs as root).
#
#   scripts/rabbitmq-setup.sh [start]   install the Debian package if missing, start, check it
#   scripts/rabbitmq-setup.sh status    exit 0 when STOMP over WebSocket and the management API answer
#   scripts/rabbitmq-setup.sh stop      stop the node and its epmd by their PID files
#   scripts/rabbitmq-setup.sh wipe      stop, then delete all state (the next start is from scratch)
#
# Listeners, all on 127.0.0.1: AMQP 5672, STOMP 61613, Web-STOMP 15674 (path /ws), management
# HTTP 15672, Erlang distribution 25672, epmd 4369.
#
# Administrator (management API, every permission on vhost /): user `waldur-admin`, password
# `waldur-admin-test` (overrides: RABBITMQ_ADMIN_USER, RABBITMQ_ADMIN_PASSWORD). It is the
# node's default user, created by the node itself when its database is new, so no rabbitmqctl
# call is needed (each costs ~2 s of Erlang start-up). A test password on a loopback-only broker.
#
# All mutable state lives under $RABBITMQ_STATE (default /tmp/waldur-agent-rabbitmq): config,
# the plugin list (written directly: the offline `rabbitmq-plugins enable` would cost another
# Erlang start), the database, logs, and the PID files `stop` uses (node.pid: the beam process,
# epmd.pid: the epmd this script started, if it started one).
# The management API's queue counters are refreshed every 500 ms (the default is 5 s), so tests
# that read them wait less.
set -euo pipefail

STATE=${RABBITMQ_STATE:-/tmp/waldur-agent-rabbitmq}
ADMIN_USER=${RABBITMQ_ADMIN_USER:-waldur-admin}
ADMIN_PASSWORD=${RABBITMQ_ADMIN_PASSWORD:-waldur-admin-test}
RUN=$STATE/run
LOG=$STATE/log
WS_PORT=15674
MGMT_PORT=15672

export HOME=$STATE # .erlang.cookie: the node and any CLI call must share it
export RABBITMQ_NODENAME=rabbit@localhost
export RABBITMQ_NODE_IP_ADDRESS=127.0.0.1
export RABBITMQ_NODE_PORT=5672
export RABBITMQ_DIST_PORT=25672
export RABBITMQ_MNESIA_BASE=$STATE/mnesia
export RABBITMQ_LOG_BASE=$LOG
export RABBITMQ_ENABLED_PLUGINS_FILE=$STATE/enabled_plugins
export RABBITMQ_CONFIG_FILE=$STATE/rabbitmq # -> $STATE/rabbitmq.conf
export RABBITMQ_CONF_ENV_FILE=$STATE/rabbitmq-env.conf # not /etc/rabbitmq/rabbitmq-env.conf
export RABBITMQ_ADVANCED_CONFIG_FILE=$STATE/advanced.config
export RABBITMQ_PID_FILE=$RUN/node.pid
export ERL_EPMD_ADDRESS=127.0.0.1 # epmd would listen on 0.0.0.0 otherwise
export ERL_EPMD_PORT=4369
export RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS="-kernel inet_dist_use_interface {127,0,0,1}"
export PATH=/usr/lib/rabbitmq/bin:$PATH # Debian's /usr/sbin wrappers su to rabbitmq and use /var/lib

SETUP_NAME=rabbitmq-setup
. "$(dirname "${BASH_SOURCE[0]}")/setup-common.sh"

# The node shuts down cleanly on TERM (no rabbitmqctl needed); that takes a few seconds.
stop_all() {
  stop_by_pidfile "$RUN/node.pid" 20
  stop_by_pidfile "$RUN/wrapper.pid" # rabbitmq-server's shell, gone with the node normally
  stop_by_pidfile "$RUN/epmd.pid"
}

# The first line of the HTTP answer to a request on 127.0.0.1:$1 (bash's /dev/tcp: no curl needed).
http_status_line() (
  exec 3<>"/dev/tcp/127.0.0.1/$1" || exit 1
  printf '%b' "$2" >&3
  IFS= read -r -t 3 line <&3 || exit 1
  printf '%s\n' "${line%$'\r'}"
)

# Web-STOMP answers a WebSocket upgrade on /ws with 101.
ws_up() {
  http_status_line $WS_PORT "GET /ws HTTP/1.1\r\nHost: 127.0.0.1:$WS_PORT\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: d2FsZHVyLWFnZW50LXRlc3Q=\r\nSec-WebSocket-Version: 13\r\n\r\n" \
    | grep -q '^HTTP/1.1 101'
}

# The management API accepts the administrator.
management_up() {
  local auth
  auth=$(printf '%s:%s' "$ADMIN_USER" "$ADMIN_PASSWORD" | base64 -w0)
  http_status_line $MGMT_PORT "GET /api/overview HTTP/1.1\r\nHost: 127.0.0.1:$MGMT_PORT\r\nAuthorization: Basic $auth\r\nConnection: close\r\n\r\n" \
    | grep -q '^HTTP/1.1 200'
}

status() { ws_up 2>/dev/null && management_up 2>/dev/null; }

setup_command "${1:-start}" rabbitmq "web-stomp ws://127.0.0.1:$WS_PORT/ws, management http://127.0.0.1:$MGMT_PORT"

[ "$(id -u)" = 0 ] || die "must run as root (it installs rabbitmq-server on first use)"

if status; then step "rabbitmq already up"; exit 0; fi

# ---------------------------------------------------------------- package
# scripts/test.sh runs this beside scripts/slurm-setup.sh, which may be installing too: wait
# for apt's locks instead of failing on them.
apt_get() {
  local try
  for try in $(seq 1 30); do
    apt-get -o DPkg::Lock::Timeout=300 "$@" && return 0
    sleep 2
  done
  return 1
}
if ! dpkg -s rabbitmq-server >/dev/null 2>&1; then
  step "apt-get install rabbitmq-server"
  export DEBIAN_FRONTEND=noninteractive
  # Without systemd the postinst cannot start the service ("policy-rc.d denied"): expected.
  # The package lists are refreshed only when the install needs it.
  apt-get -o DPkg::Lock::Timeout=300 install -y -qq --no-install-recommends rabbitmq-server >/dev/null 2>&1 \
    || { apt_get update -qq && apt_get install -y -qq --no-install-recommends rabbitmq-server >/dev/null; } \
    || die "apt-get install rabbitmq-server failed"
fi
step "package: rabbitmq-server $(dpkg-query -W -f='${Version}' rabbitmq-server)"

# ---------------------------------------------------------------- state and configuration
mkdir -p "$STATE" "$RUN" "$LOG" "$STATE/mnesia"
chmod 700 "$STATE"
: >"$STATE/rabbitmq-env.conf"
echo "[]." >"$STATE/advanced.config"
if [ ! -s "$STATE/.erlang.cookie" ]; then
  head -c 20 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$STATE/.erlang.cookie"
  chmod 400 "$STATE/.erlang.cookie"
fi
cat >"$STATE/rabbitmq.conf" <<EOF
listeners.tcp.1 = 127.0.0.1:5672
stomp.listeners.tcp.1 = 127.0.0.1:61613
web_stomp.tcp.ip = 127.0.0.1
web_stomp.tcp.port = $WS_PORT
management.tcp.ip = 127.0.0.1
management.tcp.port = $MGMT_PORT
management.rates_mode = none
collect_statistics_interval = 500
management.sample_retention_policies.global.minute = 1
management.sample_retention_policies.basic.minute = 1
management.sample_retention_policies.detailed.10 = 1
loopback_users = none
default_user = $ADMIN_USER
default_pass = $ADMIN_PASSWORD
default_user_tags.administrator = true
default_permissions.configure = .*
default_permissions.read = .*
default_permissions.write = .*
log.console = false
log.file.level = info
EOF
# What `rabbitmq-plugins enable --offline` writes; the node adds the plugins' dependencies.
echo "[rabbitmq_management,rabbitmq_stomp,rabbitmq_web_stomp]." >"$STATE/enabled_plugins"

# ---------------------------------------------------------------- epmd, then the node
stop_all # a node that is half up (e.g. a failed start) is restarted
if port_open "$ERL_EPMD_PORT"; then
  step "epmd: already listening on $ERL_EPMD_PORT (not ours; left running at stop)"
else
  setsid epmd -address 127.0.0.1 -port "$ERL_EPMD_PORT" </dev/null >"$LOG/epmd.log" 2>&1 &
  echo $! >"$RUN/epmd.pid"
  step "epmd started (pid $(cat "$RUN/epmd.pid"))"
fi
# Its own session and no inherited descriptors: the caller (scripts/test.sh, a test's
# Command::output) must not wait for the node's end.
setsid rabbitmq-server </dev/null >"$LOG/startup.log" 2>&1 &
echo $! >"$RUN/wrapper.pid"

for _ in $(seq 1 600); do
  status && break
  kill -0 "$(cat "$RUN/wrapper.pid")" 2>/dev/null || die "the node exited while starting (logs in $LOG)"
  sleep 0.1
done
status || die "the node did not answer within 60 s (logs in $LOG)"
step "rabbitmq up: beam pid $(cat "$RUN/node.pid" 2>/dev/null), web-stomp ws://127.0.0.1:$WS_PORT/ws, management http://127.0.0.1:$MGMT_PORT ($ADMIN_USER)"
