#!/usr/bin/env bash
# The one Cassandra instance a test run shares (Cassandra takes seconds to start, so tests do
# not each start their own): its own data dir and ports, so it never collides with a developer's
# `ops/infra.sh start`. Tests call `ops/test-cassandra.sh start` (idempotent, serialized with
# flock -o, so the Cassandra JVM does not inherit and hold the lock); `npm test` stops it afterwards (posttest).
#   ops/test-cassandra.sh start|stop|env
set -euo pipefail
OPS_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
export LANTERN_INFRA_DIR=${LANTERN_TEST_INFRA_DIR:-$OPS_DIR/.data/test}
export LANTERN_CQL_PORT=${LANTERN_TEST_CQL_PORT:-19042}
export LANTERN_CASSANDRA_STORAGE_PORT=${LANTERN_TEST_CASSANDRA_STORAGE_PORT:-17000}
export LANTERN_CASSANDRA_HEAP=${LANTERN_TEST_CASSANDRA_HEAP:-768m}
mkdir -p "$LANTERN_INFRA_DIR"
case ${1:-} in
  start) exec flock -o "$LANTERN_INFRA_DIR/cassandra.lock" "$OPS_DIR/infra.sh" start cassandra ;;
  stop) exec flock -o "$LANTERN_INFRA_DIR/cassandra.lock" "$OPS_DIR/infra.sh" stop cassandra ;;
  env) "$OPS_DIR/infra.sh" env | grep -E 'CQL|CASSANDRA' ;;
  *) echo "usage: ops/test-cassandra.sh start|stop|env" >&2; exit 2 ;;
esac
