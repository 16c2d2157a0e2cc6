# Shell helpers of scripts/slurm-setup.sh and scripts/rabbitmq-setup.sh (sourced, not run).
# The sourcing script sets SETUP_NAME (the prefix of its error messages) first.

T0=$(date +%s.%N)
# Prints a line with the seconds since the script started.
step() { awk -v now="$(date +%s.%N)" -v t0="$T0" -v msg="$*" 'BEGIN { printf "[%6.2fs] %s\n", now - t0, msg }'; }
die() { echo "$SETUP_NAME: $*" >&2; exit 1; }

# Stops the process named in a PID file (TERM, then KILL after $2 seconds, default 10) and
# removes the file.
stop_by_pidfile() {
  local file=$1 tenths=$((${2:-10} * 10)) pid
  [ -f "$file" ] || return 0
  pid=$(cat "$file" 2>/dev/null || true)
  if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 1 "$tenths"); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$pid" 2>/dev/null; then kill -9 "$pid" 2>/dev/null || true; fi
  fi
  rm -f "$file"
}

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# The subcommands every setup script has. Call after defining status() and stop_all() and
# the STATE directory: "$1" is the script's argument, "$2" the component's name, "$3" what
# `status` prints when it is up. Returns for `start` (the script goes on to start it).
setup_command() {
  local command=$1 name=$2 up_text=$3
  case "$command" in
    start) ;;
    status) if status; then echo "$name up ($up_text)"; exit 0; else echo "$name down"; exit 1; fi ;;
    stop) stop_all; echo "$name stopped"; exit 0 ;;
    wipe) stop_all; rm -rf "$STATE"; echo "$name state wiped"; exit 0 ;;
    *) echo "usage: $0 [start|status|stop|wipe]" >&2; exit 2 ;;
  esac
}
