#!/usr/bin/env bash
# Smoke test for ops/infra.sh: installs and starts nats, redis and Cassandra on free
# non-default ports in a temporary data dir, checks that each really answers, restarts
# Cassandra, stops everything and checks the processes and ports are gone.
#   ops/smoke-infra.sh            (keeps the temp dir only on failure; KEEP=1 keeps it always)
set -euo pipefail

OPS_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
INFRA=$OPS_DIR/infra.sh

export LANTERN_INFRA_DIR=${LANTERN_INFRA_DIR:-$(mktemp -d /tmp/lantern-infra-smoke.XXXXXX)}
source "$OPS_DIR/lib/common.sh"   # port_open, http_get, now, elapsed, proc_alive

# free_port VAR: exports VAR as a random unused port in 20000-59999 (checked by connecting,
# and distinct from the ports already chosen).
CHOSEN=" "
free_port() {
  local p
  for _ in $(seq 100); do
    p=$((20000 + RANDOM % 40000))
    if [[ $CHOSEN != *" $p "* ]] && ! port_open "$p"; then
      CHOSEN+="$p "; export "$1=$p"; return
    fi
  done
  die "smoke: no free port found"
}
for var in LANTERN_NATS_PORT LANTERN_NATS_MONITOR_PORT LANTERN_REDIS_PORT LANTERN_CQL_PORT LANTERN_CASSANDRA_STORAGE_PORT; do
  free_port "$var"
done
source "$OPS_DIR/lib/common.sh"   # again, to pick up the chosen ports

FAILED=0
RESULTS=()
pass() { RESULTS+=("ok    $*"); printf '[smoke] ok    %s\n' "$*"; }
fail() { RESULTS+=("FAIL  $*"); printf '[smoke] FAIL  %s\n' "$*" >&2; FAILED=1; }
check() { local what=$1; shift; if "$@"; then pass "$what"; else fail "$what"; fi; }

PIDS=()
cleanup() {
  local rc=$?
  "$INFRA" stop all >/dev/null 2>&1 || true
  if (( rc == 0 && FAILED == 0 )) && [[ -z ${KEEP:-} ]]; then
    rm -rf "$LANTERN_INFRA_DIR"
  else
    printf '[smoke] data and logs kept in %s\n' "$LANTERN_INFRA_DIR" >&2
  fi
}
trap cleanup EXIT

timed() { # timed LABEL CMD...: runs CMD, records its duration in TIMES
  local label=$1 t0; shift; t0=$(now)
  "$@"
  TIMES+=("$label: $(elapsed "$t0")s")
}
TIMES=()

echo "[smoke] data dir $LANTERN_INFRA_DIR; ports nats $NATS_PORT (monitor $NATS_MONITOR_PORT), redis $REDIS_PORT, cql $CQL_PORT (storage $CASSANDRA_STORAGE_PORT)"

timed "install all" "$INFRA" install all
timed "start nats (fresh)" "$INFRA" start nats
timed "start redis (fresh)" "$INFRA" start redis
timed "start cassandra (fresh data dir)" "$INFRA" start cassandra

pid_of() { cat "$LANTERN_INFRA_DIR/$1"; }
# exited PID: the process no longer runs. It may linger a moment as a zombie until init
# reaps it (the servers are detached), which holds no memory and no ports.
exited() { ! proc_alive "$1"; }
NATS_PIDV=$(pid_of nats/nats.pid); REDIS_PIDV=$(pid_of redis/redis.pid); CASS_PIDV=$(pid_of cassandra/cassandra.pid)

# --- each server answers ---------------------------------------------------------------
check "nats /healthz is ok" grep -q '"ok"' <<<"$(http_get "$NATS_MONITOR_PORT" /healthz)"
check "nats JetStream enabled, store in data dir" grep -q "\"store_dir\": \"$LANTERN_INFRA_DIR/nats/jetstream" <<<"$(http_get "$NATS_MONITOR_PORT" /jsz)"
check "nats client port accepts connections" port_open "$NATS_PORT"
check "redis PING -> PONG" test "$(redis-cli -p "$REDIS_PORT" ping)" = PONG
check "redis SET/GET round trip" test "$(redis-cli -p "$REDIS_PORT" set smoke:key v1 >/dev/null && redis-cli -p "$REDIS_PORT" get smoke:key)" = v1
check "redis appendonly yes" grep -qx yes <<<"$(redis-cli -p "$REDIS_PORT" config get appendonly)"
check "redis dir is the data dir" grep -qx "$LANTERN_INFRA_DIR/redis" <<<"$(redis-cli -p "$REDIS_PORT" config get dir)"
check "cassandra CQL port open" port_open "$CQL_PORT"
check "cassandra log says listening for CQL" grep -q "Starting listening for CQL clients on /127.0.0.1:$CQL_PORT" "$LANTERN_INFRA_DIR/cassandra/logs/system.log"
if command -v node >/dev/null 2>&1; then
  check "cassandra CQL query ($(node "$OPS_DIR/cql-ping.mjs" 127.0.0.1 "$CQL_PORT" 2>&1))" node "$OPS_DIR/cql-ping.mjs" 127.0.0.1 "$CQL_PORT"
  check "cassandra CQL query, built-in protocol client" env LANTERN_CQL_PING_RAW=1 node "$OPS_DIR/cql-ping.mjs" 127.0.0.1 "$CQL_PORT"
fi
if command -v ss >/dev/null 2>&1; then
  for port in "$NATS_PORT" "$NATS_MONITOR_PORT" "$REDIS_PORT" "$CQL_PORT" "$CASSANDRA_STORAGE_PORT"; do
    listeners=$(ss -ltnH "sport = :$port" | awk '{print $4}' | sort -u | tr '\n' ' ')
    check "port $port bound to 127.0.0.1 only ($listeners)" test "$listeners" = "127.0.0.1:$port "
  done
fi
check "status exits 0 with all running" "$INFRA" status
check "env prints the chosen ports" grep -q "LANTERN_CQL_CONTACT_POINTS=127.0.0.1:$CQL_PORT" <<<"$("$INFRA" env)"

RSS_LINE="RSS MiB: nats $(rss_mb "$LANTERN_INFRA_DIR/nats/nats.pid"), redis $(rss_mb "$LANTERN_INFRA_DIR/redis/redis.pid"), cassandra $(rss_mb "$LANTERN_INFRA_DIR/cassandra/cassandra.pid")"

# --- idempotent start ------------------------------------------------------------------
timed "start all (already running)" "$INFRA" start all
check "second start kept the same processes" test "$(pid_of nats/nats.pid) $(pid_of redis/redis.pid) $(pid_of cassandra/cassandra.pid)" = "$NATS_PIDV $REDIS_PIDV $CASS_PIDV"

# --- Cassandra restart on existing data ------------------------------------------------
timed "stop cassandra" "$INFRA" stop cassandra
check "cassandra process exited after stop" exited "$CASS_PIDV"
timed "restart cassandra (existing data)" "$INFRA" start cassandra
CASS_PIDV=$(pid_of cassandra/cassandra.pid)
if command -v node >/dev/null 2>&1; then
  check "cassandra CQL query after restart" node "$OPS_DIR/cql-ping.mjs" 127.0.0.1 "$CQL_PORT"
fi

# --- stop everything -------------------------------------------------------------------
timed "stop all" "$INFRA" stop all
for entry in "nats:$NATS_PIDV" "redis:$REDIS_PIDV" "cassandra:$CASS_PIDV"; do
  check "${entry%%:*} pid ${entry#*:} exited" exited "${entry#*:}"
done
for port in "$NATS_PORT" "$NATS_MONITOR_PORT" "$REDIS_PORT" "$CQL_PORT" "$CASSANDRA_STORAGE_PORT"; do
  check "port $port closed" bash -c "! (exec 3<>/dev/tcp/127.0.0.1/$port) 2>/dev/null"
done
check "status exits 1 with all stopped" bash -c "! '$INFRA' status >/dev/null"

echo
echo "[smoke] ---- summary ----"
printf '[smoke] %s\n' "${RESULTS[@]}"
printf '[smoke] time  %s\n' "${TIMES[@]}"
echo "[smoke] $RSS_LINE"
if (( FAILED )); then echo "[smoke] FAILED"; exit 1; fi
echo "[smoke] all checks passed"
