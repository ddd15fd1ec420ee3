# Shared helpers for ops/infra.sh: settings, logging, ports, pid files, apt.
# Sourced, never run. Every helper fails loudly: callers run under `set -euo pipefail`.

OPS_DIR=${OPS_DIR:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}
INFRA_DIR=${LANTERN_INFRA_DIR:-$OPS_DIR/.data}
INFRA_CACHE=${LANTERN_INFRA_CACHE:-$OPS_DIR/.cache}
INFRA_HOST=127.0.0.1

NATS_PORT=${LANTERN_NATS_PORT:-4222}
NATS_MONITOR_PORT=${LANTERN_NATS_MONITOR_PORT:-8222}
REDIS_PORT=${LANTERN_REDIS_PORT:-6379}
CQL_PORT=${LANTERN_CQL_PORT:-9042}
CASSANDRA_STORAGE_PORT=${LANTERN_CASSANDRA_STORAGE_PORT:-7000}
CASSANDRA_HEAP=${LANTERN_CASSANDRA_HEAP:-1g}
# Seconds to wait for a server to become ready (Cassandra gets its own, it is slow).
READY_TIMEOUT=${LANTERN_INFRA_READY_TIMEOUT:-20}
CASSANDRA_READY_TIMEOUT=${LANTERN_CASSANDRA_READY_TIMEOUT:-240}
STOP_TIMEOUT=${LANTERN_INFRA_STOP_TIMEOUT:-60}

log() { printf '[infra] %s\n' "$*" >&2; }
die() { printf '[infra] ERROR: %s\n' "$*" >&2; exit 1; }

now() { printf '%s' "${EPOCHREALTIME/,/.}"; }
# elapsed START -> seconds with one decimal, e.g. 12.3
elapsed() { awk -v s="$1" -v e="$(now)" 'BEGIN { printf "%.1f", e - s }'; }

# port_open PORT: true when something accepts TCP connections on 127.0.0.1:PORT.
# Uses bash's /dev/tcp so fresh machines need neither nc nor curl.
port_open() { (exec 3<>"/dev/tcp/$INFRA_HOST/$1") 2>/dev/null; }

# port_owner PORT: best-effort "name pid" of the listener, for error messages.
port_owner() {
  if command -v ss >/dev/null 2>&1; then
    ss -ltnpH "sport = :$1" 2>/dev/null | grep -o 'users:(.*)' | head -1 || true
  fi
}

# require_port_free PORT WHAT VAR: refuse to start on a port someone else holds; VAR names
# the setting that moves it.
require_port_free() {
  if port_open "$1"; then
    local owner; owner=$(port_owner "$1")
    die "$2: port $1 on $INFRA_HOST is already in use${owner:+ by $owner}. Stop that process or choose another port with $3 (see ops/INFRA.md)."
  fi
}

# http_get PORT PATH: prints the response body of a plain HTTP/1.0 GET on 127.0.0.1.
http_get() {
  local port=$1 path=$2 response
  if command -v curl >/dev/null 2>&1; then
    curl -fsS --max-time 2 "http://$INFRA_HOST:$port$path"
    return
  fi
  exec 3<>"/dev/tcp/$INFRA_HOST/$port" || return 1
  printf 'GET %s HTTP/1.0\r\nHost: %s\r\n\r\n' "$path" "$INFRA_HOST" >&3
  response=$(timeout 2 cat <&3) || { exec 3<&-; return 1; }
  exec 3<&-
  [[ $response == "HTTP/1."?" 200"* ]] || return 1
  printf '%s' "${response#*$'\r\n\r\n'}"
}

# pid_running PIDFILE PATTERN: true when the pid in PIDFILE is alive AND its command line
# contains PATTERN (a stale pid file whose pid was reused by another program is not ours).
pid_running() {
  local pidfile=$1 pattern=$2 pid
  [[ -s $pidfile ]] || return 1
  pid=$(<"$pidfile")
  [[ $pid =~ ^[0-9]+$ ]] || return 1
  local cmdline
  cmdline=$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null) || return 1
  [[ $cmdline == *"$pattern"* ]]
}

# proc_alive PID: the process exists and is not a zombie.
proc_alive() {
  local stat
  [[ $1 =~ ^[0-9]+$ ]] && stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
  stat=${stat##*) }
  [[ ${stat:0:1} != Z ]]
}

# wait_until WHAT TIMEOUT PIDFILE PATTERN LOGFILE CMD...: polls CMD every 0.2 s until it
# succeeds; fails early (showing the log tail) if the process dies, or after TIMEOUT s.
wait_until() {
  local what=$1 timeout=$2 pidfile=$3 pattern=$4 logfile=$5; shift 5
  local deadline
  deadline=$(awk -v n="$(now)" -v t="$timeout" 'BEGIN { printf "%d", n + t }')
  while ! "$@" >/dev/null 2>&1; do
    # Liveness by pid only: a just-launched pid may not have exec'd the server yet, so its
    # command line need not match PATTERN (callers checked PATTERN for older pid files).
    if ! proc_alive "$(cat "$pidfile" 2>/dev/null)"; then
      log "$what: process exited while starting; last lines of $logfile and $(dirname "$logfile")/stdout.log:"
      tail -n 40 "$logfile" >&2 2>/dev/null || true
      tail -n 20 "$(dirname "$logfile")/stdout.log" >&2 2>/dev/null || true
      die "$what failed to start (logs in $(dirname "$logfile"))"
    fi
    if (( ${EPOCHSECONDS} >= deadline )); then
      log "$what: not ready after ${timeout}s; last lines of $logfile:"
      tail -n 40 "$logfile" >&2 2>/dev/null || true
      die "$what did not become ready within ${timeout}s (still running as pid $(<"$pidfile"); see $logfile)"
    fi
    sleep 0.2
  done
}

# stop_pid WHAT PIDFILE PATTERN: SIGTERM, wait for a clean exit, SIGKILL after STOP_TIMEOUT.
stop_pid() {
  local what=$1 pidfile=$2 pattern=$3 pid t0 waited=0
  if ! pid_running "$pidfile" "$pattern"; then
    log "$what: not running"
    rm -f "$pidfile"
    return 0
  fi
  pid=$(<"$pidfile"); t0=$(now)
  kill -TERM "$pid" 2>/dev/null || true
  while proc_alive "$pid" && (( waited < STOP_TIMEOUT * 5 )); do
    sleep 0.2; waited=$((waited + 1))
  done
  if proc_alive "$pid"; then
    log "$what: pid $pid ignored SIGTERM for ${STOP_TIMEOUT}s; sending SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
    while proc_alive "$pid"; do sleep 0.1; done
  fi
  rm -f "$pidfile"
  log "$what: stopped (pid $pid, $(elapsed "$t0")s)"
}

# rss_mb PIDFILE: resident memory of the process in MiB, or "?".
rss_mb() {
  local pid
  pid=$(<"$1") 2>/dev/null || { printf '?'; return; }
  awk '/^VmRSS:/ { printf "%d", $2 / 1024 }' "/proc/$pid/status" 2>/dev/null || printf '?'
}

as_root() {
  if (( EUID == 0 )); then "$@"
  elif command -v sudo >/dev/null 2>&1; then sudo "$@"
  else die "need root (or sudo) to run: $*"
  fi
}

# apt_install PKG...: installs with apt-get; refreshes the package lists first only when
# they are missing, or once after a failed install (stale lists give 404s).
apt_install() {
  command -v apt-get >/dev/null 2>&1 || die "apt-get not found: install $* by hand (this script targets Debian bookworm)"
  export DEBIAN_FRONTEND=noninteractive
  if ! compgen -G '/var/lib/apt/lists/*_Packages*' >/dev/null; then
    log "apt: package lists missing; running apt-get update"
    as_root apt-get update -qq || die "apt-get update failed"
  fi
  # Debian packages start their system service on install (redis on 6379 would then hold
  # our default port). policy-rc.d exit 101 tells invoke-rc.d/deb-systemd-invoke not to.
  local policy=/usr/sbin/policy-rc.d own_policy=0
  if [[ ! -e $policy ]]; then
    as_root sh -c "printf '#!/bin/sh\nexit 101\n' > $policy && chmod 755 $policy" && own_policy=1
  fi
  local rc=0
  as_root apt-get install -y -qq --no-install-recommends "$@" >&2 || rc=$?
  if (( rc != 0 )); then
    log "apt: install of $* failed; running apt-get update and retrying once"
    rc=0
    as_root apt-get update -qq && as_root apt-get install -y -qq --no-install-recommends "$@" >&2 || rc=$?
  fi
  (( own_policy )) && as_root rm -f "$policy"
  (( rc == 0 )) || die "apt-get install $* failed"
}
