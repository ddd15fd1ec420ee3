#!/usr/bin/env bash
# Local infrastructure for Lantern's distributed mode: nats-server (JetStream), redis-server
# and Apache Cassandra 5.0, installed and run as private, loopback-only processes.
#
#   ops/infra.sh install [nats|redis|cassandra|all]   (default: all; skips what is present)
#   ops/infra.sh start   [nats|redis|cassandra|all]   (installs first if needed; skips what runs)
#   ops/infra.sh stop    [nats|redis|cassandra|all]
#   ops/infra.sh status                                (exit 1 unless all three are ready)
#   ops/infra.sh env                                   (export lines for the app and tests)
#
# Settings (environment): LANTERN_INFRA_DIR (data + logs, default ops/.data),
# LANTERN_INFRA_CACHE (downloads, default ops/.cache), LANTERN_NATS_PORT (4222),
# LANTERN_NATS_MONITOR_PORT (8222), LANTERN_REDIS_PORT (6379), LANTERN_CQL_PORT (9042),
# LANTERN_CASSANDRA_STORAGE_PORT (7000), LANTERN_CASSANDRA_HEAP (1g). See ops/INFRA.md.
set -euo pipefail

OPS_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
source "$OPS_DIR/lib/common.sh"
source "$OPS_DIR/lib/nats.sh"
source "$OPS_DIR/lib/redis.sh"
source "$OPS_DIR/lib/cassandra.sh"

ALL=(nats redis cassandra)

usage() {
  sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | grep '^#' | sed 's/^# \{0,1\}//' >&2
  exit 2
}

# targets ARG...: expands "all" (or nothing) to every service and rejects unknown names.
targets() {
  local name out=()
  (( $# == 0 )) && set -- all
  for name in "$@"; do
    case $name in
      all) out+=("${ALL[@]}") ;;
      nats|redis|cassandra) out+=("$name") ;;
      *) die "unknown service '$name' (expected nats, redis, cassandra or all)" ;;
    esac
  done
  printf '%s\n' "${out[@]}"
}

print_env() {
  cat <<ENV
export LANTERN_NATS_URL=nats://$INFRA_HOST:$NATS_PORT
export LANTERN_NATS_PORT=$NATS_PORT
export LANTERN_NATS_MONITOR_PORT=$NATS_MONITOR_PORT
export LANTERN_REDIS_URL=redis://$INFRA_HOST:$REDIS_PORT
export LANTERN_REDIS_PORT=$REDIS_PORT
export LANTERN_CQL_CONTACT_POINTS=$INFRA_HOST:$CQL_PORT
export LANTERN_CQL_PORT=$CQL_PORT
export LANTERN_CQL_LOCAL_DC=$CASSANDRA_LOCAL_DC
export LANTERN_CASSANDRA_STORAGE_PORT=$CASSANDRA_STORAGE_PORT
export LANTERN_INFRA_DIR=$INFRA_DIR
ENV
}

main() {
  local command=${1:-}; shift || true
  local service list
  case $command in
    install|start|stop)
      list=$(targets "$@")
      mkdir -p "$INFRA_DIR"
      # Stop in reverse order so dependents (none yet) go first; install/start in order.
      [[ $command == stop ]] && list=$(tac <<<"$list")
      for service in $list; do
        if [[ $command == start ]]; then "${service}_install"; fi
        "${service}_${command}"
      done
      ;;
    status)
      (( $# == 0 )) || die "status takes no arguments"
      local rc=0
      for service in "${ALL[@]}"; do "${service}_status" || rc=1; done
      return "$rc"
      ;;
    env) print_env ;;
    -h|--help|help|'') usage ;;
    *) die "unknown command '$command' (expected install, start, stop, status or env)" ;;
  esac
}

main "$@"
