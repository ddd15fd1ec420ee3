#!/usr/bin/env bash
# A local distributed Lantern: infrastructure (ops/infra.sh), schema (lantern migrate), then
# N gateway shards (ports BASE..BASE+N-1) and M engine workers as separate processes.
#
#   ops/cluster.sh [--gateways N] [--workers M] [--base-port PORT] [--external]
#   (npm run cluster -- --gateways 2 --workers 2)
#
# --external: do not start infrastructure; use LANTERN_NATS_URL, LANTERN_REDIS_URL,
#   LANTERN_CQL_CONTACT_POINTS (and LANTERN_CQL_LOCAL_DC) from the environment.
# Tokens: gateways share LANTERN_JWT_SECRET (generated into the cluster dir if unset; printed).
# Ctrl-C / SIGTERM stops the gateways and workers (infrastructure keeps running: ops/infra.sh stop).
set -euo pipefail
OPS_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$OPS_DIR/.." && pwd)
GATEWAYS=2 WORKERS=2 BASE_PORT=${LANTERN_PORT:-8080} EXTERNAL=0
while (( $# )); do
  case $1 in
    --gateways) GATEWAYS=$2; shift 2 ;;
    --workers) WORKERS=$2; shift 2 ;;
    --base-port) BASE_PORT=$2; shift 2 ;;
    --external) EXTERNAL=1; shift ;;
    -h|--help) sed -n '2,12p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "cluster: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
done
[[ $GATEWAYS =~ ^[1-9][0-9]*$ && $WORKERS =~ ^[1-9][0-9]*$ ]] || { echo "cluster: --gateways and --workers must be positive integers" >&2; exit 2; }

log() { printf '[cluster] %s\n' "$*" >&2; }
if (( ! EXTERNAL )); then
  "$OPS_DIR/infra.sh" start all
  eval "$("$OPS_DIR/infra.sh" env)"
fi
: "${LANTERN_NATS_URL:?set LANTERN_NATS_URL (or drop --external)}"
: "${LANTERN_REDIS_URL:?set LANTERN_REDIS_URL (or drop --external)}"
: "${LANTERN_CQL_CONTACT_POINTS:?set LANTERN_CQL_CONTACT_POINTS (or drop --external)}"
export LANTERN_NATS_URL LANTERN_REDIS_URL LANTERN_CQL_CONTACT_POINTS
export LANTERN_CQL_LOCAL_DC=${LANTERN_CQL_LOCAL_DC:-datacenter1}

CLUSTER_DIR=${LANTERN_CLUSTER_DIR:-${LANTERN_INFRA_DIR:-$OPS_DIR/.data}/cluster}
mkdir -p "$CLUSTER_DIR"
if [[ -z ${LANTERN_JWT_SECRET:-} ]]; then
  [[ -s $CLUSTER_DIR/jwt-secret ]] || (umask 077; node -e "process.stdout.write(require('crypto').randomBytes(32).toString('base64url'))" > "$CLUSTER_DIR/jwt-secret")
  LANTERN_JWT_SECRET=$(<"$CLUSTER_DIR/jwt-secret")
fi
export LANTERN_JWT_SECRET

node "$ROOT/bin/lantern.mjs" migrate >&2

pids=()
stop() {
  log "stopping ${#pids[@]} processes"
  kill -TERM "${pids[@]}" 2>/dev/null || true
  wait "${pids[@]}" 2>/dev/null || true
  exit 0
}
trap stop INT TERM

for ((i = 0; i < WORKERS; i++)); do
  node "$ROOT/bin/lantern.mjs" worker >"$CLUSTER_DIR/worker-$i.log" 2>&1 &
  pids+=($!)
done
urls=()
for ((i = 0; i < GATEWAYS; i++)); do
  port=$((BASE_PORT + i))
  LANTERN_MODE=gateway LANTERN_PORT=$port node "$ROOT/bin/lantern.mjs" start >"$CLUSTER_DIR/gateway-$i.log" 2>&1 &
  pids+=($!)
  urls+=("ws://127.0.0.1:$port/ws")
done
for ((i = 0; i < GATEWAYS; i++)); do
  port=$((BASE_PORT + i))
  for ((tries = 0; ; tries++)); do
    [[ $(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/readyz" || true) == 200 ]] && break
    if ((tries > 600)); then log "gateway $i not ready after 60 s; see $CLUSTER_DIR/gateway-$i.log"; stop; fi
    sleep 0.1
  done
done
log "ready: ${urls[*]} ($WORKERS workers; logs in $CLUSTER_DIR)"
log "tokens: LANTERN_JWT_SECRET=\$(cat $CLUSTER_DIR/jwt-secret) npx lantern token --user alice"
printf '%s\n' "${urls[@]}"
wait
