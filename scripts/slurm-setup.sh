#!/usr/bin/env bash
# Real SLURM 22.05 accounting on this machine, without systemd, for the SLURM plugin's tests and
# benchmarks: munged, a private mariadbd, slurmdbd, slurmctld and slurmd (so `sbatch` jobs land in
# `sacct`). Loopback only; must run as root (CI runs as root).
#
#   scripts/slurm-setup.sh [start]   install the Debian packages if missing, start everything, check it
#   scripts/slurm-setup.sh status    exit 0 when every daemon answers
#   scripts/slurm-setup.sh stop      stop every daemon by its PID file
#   scripts/slurm-setup.sh wipe      stop, then delete all state (the next start is from scratch)
#
# All mutable state lives under $SLURM_STATE (default /tmp/waldur-agent-slurm); each daemon writes a
# PID file to $SLURM_STATE/run, which is how `stop` finds it. Also created: the Linux users the
# integration tests submit jobs as ($SLURM_TEST_USERS), since `sbatch` runs jobs as real users.
# Overrides: SLURM_STATE, SLURM_CLUSTER (default waldurtest), SLURM_DBPASS, MYSQL_PORT (default 3306).
#
# Loopback ACKs: slurmdbd 22.05 sends each answer in two writes (length, then body). With Linux's
# delayed ACKs on loopback the body waits ~40 ms for the client's ACK (Nagle), several times per
# sacctmgr command: 0.2-0.6 s for a command that does no work. `start` turns on `quickack` on the
# 127.0.0.1 route (sacctmgr then takes 10-30 ms) and `stop` turns it off again; SLURM_QUICKACK=0
# leaves the route alone. The same stall exists between hosts at a real site, so benchmark figures
# say which setting they were measured with (scripts/bench-slurm.sh prints it).
set -euo pipefail

STATE=${SLURM_STATE:-/tmp/waldur-agent-slurm}
CLUSTER=${SLURM_CLUSTER:-waldurtest}
DBPASS=${SLURM_DBPASS:-slurmdbpass}
MYSQL_PORT=${MYSQL_PORT:-3306}
TEST_USERS=${SLURM_TEST_USERS:-wa-alice wa-bob wa-carol}
NODE=$(hostname -s)
RUN=$STATE/run
LOG=$STATE/log
MYSQL_SOCK=$RUN/mysqld.sock
PKGS="munge mariadb-server slurmdbd slurmctld slurmd slurm-client"
QUICKACK=${SLURM_QUICKACK:-1}
LOOPBACK_ROUTE="local 127.0.0.1 dev lo proto kernel scope host src 127.0.0.1"

SETUP_NAME=slurm-setup
. "$(dirname "${BASH_SOURCE[0]}")/setup-common.sh"

stop_all() {
  local daemon
  for daemon in slurmd slurmctld slurmdbd mysqld munged; do stop_by_pidfile "$RUN/$daemon.pid"; done
  # Only what `start` changed itself (the marker), so a route set by someone else stays.
  if [ -f "$STATE/quickack-set" ]; then
    ip route change table local $LOOPBACK_ROUTE 2>/dev/null || true
    rm -f "$STATE/quickack-set"
  fi
}

# quickack on the 127.0.0.1 route (see the top of this file); a failure only costs speed.
loopback_quickack() {
  [ "$QUICKACK" = 1 ] || { step "loopback quickack: left alone (SLURM_QUICKACK=0)"; return 0; }
  if ip route show table local 2>/dev/null | grep -q "^local 127.0.0.1 .*quickack 1"; then
    step "loopback quickack: already on"
  elif ip route change table local $LOOPBACK_ROUTE quickack 1 2>/dev/null; then
    touch "$STATE/quickack-set"
    step "loopback quickack: on (stop turns it off)"
  else
    step "loopback quickack: could not be set (ip route); sacctmgr commands stay slow"
  fi
}

# Waits up to $2 tenths of a second for the command in "${@:3}" to succeed.
wait_for() {
  local what=$1 tenths=$2; shift 2
  for _ in $(seq 1 "$tenths"); do "$@" >/dev/null 2>&1 && return 0; sleep 0.1; done
  "$@" >/dev/null 2>&1 || die "$what did not come up (logs in $LOG)"
}

node_idle() { sinfo -h -o '%T' 2>/dev/null | grep -qE '^(idle|mixed|allocated)'; }

status() {
  [ -f /etc/slurm/slurm.conf ] || return 1
  port_open 6819 && sacctmgr --parsable2 --noheader list cluster format=cluster 2>/dev/null | grep -qx "$CLUSTER" \
    && node_idle
}

setup_command "${1:-start}" slurm "cluster $CLUSTER"

[ "$(id -u)" = 0 ] || die "must run as root (it starts munged, mariadbd and the SLURM daemons)"

# ---------------------------------------------------------------- packages
if ! dpkg -s $PKGS >/dev/null 2>&1; then
  step "apt-get install $PKGS"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  # Without systemd the postinst scripts cannot start services ("policy-rc.d denied"): expected.
  apt-get install -y -qq --no-install-recommends $PKGS >/dev/null
fi
step "packages: slurm $(dpkg-query -W -f='${Version}' slurmdbd)"

for user in $TEST_USERS; do
  id -u "$user" >/dev/null 2>&1 || useradd --create-home --shell /bin/bash "$user"
done

# ---------------------------------------------------------------- state directories
mkdir -p "$STATE" "$RUN" "$LOG" "$STATE/spool/ctld" "$STATE/spool/d" "$STATE/munge"
chmod 755 "$STATE" "$LOG"
chmod 1777 "$RUN" # mysql, slurm and root daemons all write their PID files here
chown slurm:slurm "$STATE/spool/ctld" "$STATE/spool/d" "$LOG"
chown munge:munge "$STATE/munge"
touch "$LOG/slurmdbd.log" "$LOG/slurmctld.log" "$LOG/slurmd.log" "$LOG/mariadb.err"
chown slurm:slurm "$LOG"/slurm*.log
chown mysql:mysql "$LOG/mariadb.err" # the log directory belongs to slurm

loopback_quickack

# ---------------------------------------------------------------- munge
if [ ! -s /etc/munge/munge.key ]; then
  mungekey --create --keyfile=/etc/munge/munge.key
  chown munge:munge /etc/munge/munge.key
  chmod 600 /etc/munge/munge.key
fi
install -d -o munge -g munge -m 0755 /run/munge # clients connect to /run/munge/munge.socket.2
stop_by_pidfile "$RUN/munged.pid"
runuser -u munge -- /usr/sbin/munged --pid-file="$STATE/munge/munged.pid" \
  --log-file="$STATE/munge/munged.log" --seed-file="$STATE/munge/munged.seed"
ln -sf "$STATE/munge/munged.pid" "$RUN/munged.pid"
munge -n | unmunge >/dev/null || die "munge round trip failed (log: $STATE/munge/munged.log)"
step "munged up"

# ---------------------------------------------------------------- mariadb, private datadir
DATADIR=$STATE/mysql
if [ ! -d "$DATADIR/mysql" ]; then
  mkdir -p "$DATADIR"
  chown mysql:mysql "$DATADIR"
  mariadb-install-db --user=mysql --datadir="$DATADIR" --auth-root-authentication-method=socket \
    --skip-test-db >"$LOG/mariadb-install.log" 2>&1 || die "mariadb-install-db failed ($LOG/mariadb-install.log)"
fi
stop_by_pidfile "$RUN/mysqld.pid"
# --no-defaults ignores /etc/mysql; loopback only. A throwaway database: commits need not wait
# for the disk, and the pool holds the whole accounting database of the 1,000-allocation benchmark.
/usr/sbin/mariadbd --no-defaults --user=mysql --datadir="$DATADIR" --socket="$MYSQL_SOCK" \
  --pid-file="$RUN/mysqld.pid" --bind-address=127.0.0.1 --port="$MYSQL_PORT" \
  --log-error="$LOG/mariadb.err" --innodb-buffer-pool-size=256M \
  --innodb-flush-log-at-trx-commit=2 \
  --innodb-lock-wait-timeout=900 --skip-name-resolve >/dev/null 2>&1 &
wait_for "mariadbd" 150 mariadb-admin --socket="$MYSQL_SOCK" ping
mariadb --socket="$MYSQL_SOCK" -e "
  CREATE DATABASE IF NOT EXISTS slurm_acct_db;
  CREATE USER IF NOT EXISTS 'slurm'@'127.0.0.1' IDENTIFIED BY '$DBPASS';
  CREATE USER IF NOT EXISTS 'slurm'@'localhost' IDENTIFIED BY '$DBPASS';
  GRANT ALL ON slurm_acct_db.* TO 'slurm'@'127.0.0.1';
  GRANT ALL ON slurm_acct_db.* TO 'slurm'@'localhost';
  FLUSH PRIVILEGES;"
step "mariadbd up (127.0.0.1:$MYSQL_PORT)"

# ---------------------------------------------------------------- SLURM configuration
mkdir -p /etc/slurm
cat >/etc/slurm/slurmdbd.conf <<EOF
AuthType=auth/munge
DbdHost=localhost
DbdAddr=127.0.0.1
DbdPort=6819
CommunicationParameters=NoInAddrAny
SlurmUser=slurm
DebugLevel=info
LogFile=$LOG/slurmdbd.log
PidFile=$RUN/slurmdbd.pid
StorageType=accounting_storage/mysql
StorageHost=127.0.0.1
StoragePort=$MYSQL_PORT
StorageUser=slurm
StoragePass=$DBPASS
StorageLoc=slurm_acct_db
EOF
# slurmdbd refuses to start unless its config belongs to SlurmUser with mode 600.
chown slurm:slurm /etc/slurm/slurmdbd.conf
chmod 600 /etc/slurm/slurmdbd.conf

cat >/etc/slurm/slurm.conf <<EOF
ClusterName=$CLUSTER
SlurmctldHost=$NODE(127.0.0.1)
SlurmUser=slurm
SlurmdUser=root
AuthType=auth/munge
StateSaveLocation=$STATE/spool/ctld
SlurmdSpoolDir=$STATE/spool/d
SlurmctldPidFile=$RUN/slurmctld.pid
SlurmdPidFile=$RUN/slurmd.pid
SlurmctldLogFile=$LOG/slurmctld.log
SlurmdLogFile=$LOG/slurmd.log
SlurmctldPort=6817
SlurmdPort=6818
CommunicationParameters=NoInAddrAny
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/linux
JobAcctGatherFrequency=30
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=127.0.0.1
AccountingStoragePort=6819
AccountingStorageEnforce=associations,limits,qos
AccountingStorageTRES=cpu,mem,node,billing,gres/gpu
GresTypes=gpu
JobCompType=jobcomp/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
MpiDefault=none
ReturnToService=2
SlurmctldTimeout=30
SlurmdTimeout=30
NodeName=$NODE NodeAddr=127.0.0.1 CPUs=$(nproc) RealMemory=2000 State=UNKNOWN
PartitionName=debug Nodes=$NODE Default=YES MaxTime=INFINITE State=UP
EOF
chmod 644 /etc/slurm/slurm.conf

# ---------------------------------------------------------------- daemons
stop_by_pidfile "$RUN/slurmdbd.pid"
/usr/sbin/slurmdbd
wait_for "slurmdbd on 127.0.0.1:6819" 300 port_open 6819
step "slurmdbd up"
# Registered before slurmctld starts; "Nothing new added" (exit 1) on a restart is fine.
sacctmgr -i add cluster "$CLUSTER" >/dev/null 2>&1 || true
# QoS the plugin's pause/downscale tests swap between ("normal" exists already).
for qos in paused limited; do sacctmgr -i add qos "$qos" >/dev/null 2>&1 || true; done

stop_by_pidfile "$RUN/slurmctld.pid"
/usr/sbin/slurmctld
stop_by_pidfile "$RUN/slurmd.pid"
/usr/sbin/slurmd
wait_for "slurmctld and slurmd (node idle)" 300 node_idle
status || die "started, but the status check fails (logs in $LOG)"
step "slurm up: cluster $CLUSTER, $(sinfo -h -o '%P %T %c CPUs' | tr '\n' ' ')"
