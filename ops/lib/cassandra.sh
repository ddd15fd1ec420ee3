# Apache Cassandra 5.0 from Maven Central jars (no package, no Docker), one local node.
# Sourced by ops/infra.sh after common.sh.

CASSANDRA_POM=$OPS_DIR/cassandra/pom.xml
CASSANDRA_VERSION=$(sed -n 's:.*<cassandra.version>\(.*\)</cassandra.version>.*:\1:p' "$CASSANDRA_POM")
CASSANDRA_LIB=$INFRA_CACHE/cassandra/lib
CASSANDRA_LIB_MARKER=$CASSANDRA_LIB/.complete-$CASSANDRA_VERSION
CASSANDRA_M2=$INFRA_CACHE/m2
CASSANDRA_DIR=$INFRA_DIR/cassandra
CASSANDRA_CONF=$CASSANDRA_DIR/conf/cassandra.yaml
CASSANDRA_PID=$CASSANDRA_DIR/cassandra.pid
CASSANDRA_LOGDIR=$CASSANDRA_DIR/logs
CASSANDRA_LOG=$CASSANDRA_LOGDIR/system.log
CASSANDRA_MAIN=org.apache.cassandra.service.CassandraDaemon
CASSANDRA_LOCAL_DC=datacenter1          # what SimpleSnitch reports

java_major() { "$1" -version 2>&1 | sed -n 's/.*version "\([0-9]*\).*/\1/p' | head -1; }

# cassandra_java: prints a java 17 (or 11, also supported by Cassandra 5.0), or fails.
cassandra_java() {
  local candidate
  for candidate in ${LANTERN_JAVA:-} ${JAVA_HOME:+$JAVA_HOME/bin/java} /usr/lib/jvm/java-17-openjdk-*/bin/java "$(command -v java || true)"; do
    [[ -n $candidate && -x $candidate ]] || continue
    case $(java_major "$candidate") in 17|11) printf '%s' "$candidate"; return ;; esac
  done
  return 1
}

cassandra_fetch_jars() {
  rm -rf "$CASSANDRA_LIB"
  mvn -B -q -f "$CASSANDRA_POM" -Dmaven.repo.local="$CASSANDRA_M2" \
    -Dmaven.wagon.http.retryHandler.count=3 \
    dependency:copy-dependencies -DincludeScope=runtime -DoutputDirectory="$CASSANDRA_LIB" \
    | sed -e 's/\x1b\[[0-9;]*m//g' -e '/^$/d' >&2   # Maven 3.8 prints colour resets even with -B -q
}

cassandra_install() {
  [[ -n $CASSANDRA_VERSION ]] || die "cassandra: no <cassandra.version> in $CASSANDRA_POM"
  if ! cassandra_java >/dev/null; then
    log "cassandra: no Java 17 found; installing openjdk-17-jdk-headless"
    apt_install openjdk-17-jdk-headless
    cassandra_java >/dev/null || die "cassandra: Java 17 still not found after installing openjdk-17-jdk-headless"
  fi
  command -v mvn >/dev/null 2>&1 || apt_install maven
  if [[ -f $CASSANDRA_LIB_MARKER ]]; then
    log "cassandra: present ($CASSANDRA_VERSION, $(find "$CASSANDRA_LIB" -name '*.jar' | wc -l) jars in $CASSANDRA_LIB)"; return
  fi
  local t0; t0=$(now)
  log "cassandra: fetching cassandra-all $CASSANDRA_VERSION and runtime dependencies from Maven Central"
  if ! cassandra_fetch_jars; then
    log "cassandra: Maven download failed after $(elapsed "$t0")s; retrying once"
    cassandra_fetch_jars || die "cassandra: mvn dependency:copy-dependencies failed twice (is Maven Central reachable? see output above)"
  fi
  [[ -f $CASSANDRA_LIB/cassandra-all-$CASSANDRA_VERSION.jar ]] || die "cassandra: cassandra-all-$CASSANDRA_VERSION.jar missing from $CASSANDRA_LIB after download"
  touch "$CASSANDRA_LIB_MARKER"
  log "cassandra: downloaded $(find "$CASSANDRA_LIB" -name '*.jar' | wc -l) jars ($(du -sm "$CASSANDRA_LIB" | cut -f1) MiB) in $(elapsed "$t0")s"
}

# cassandra_cql_ready: a real CQL round trip when node is available, else the log line
# Cassandra prints once the native transport accepts clients.
cassandra_cql_ready() {
  port_open "$CQL_PORT" || return 1
  if command -v node >/dev/null 2>&1; then
    node "$OPS_DIR/cql-ping.mjs" "$INFRA_HOST" "$CQL_PORT" >/dev/null
  else
    grep -q 'Starting listening for CQL clients' "$CASSANDRA_LOG"
  fi
}

cassandra_running() { pid_running "$CASSANDRA_PID" "$CASSANDRA_MAIN" && cassandra_cql_ready; }

cassandra_write_conf() {
  mkdir -p "$(dirname "$CASSANDRA_CONF")"
  sed -e "s/@CQL_PORT@/$CQL_PORT/g" -e "s/@STORAGE_PORT@/$CASSANDRA_STORAGE_PORT/g" \
    "$OPS_DIR/cassandra/cassandra.yaml.in" >"$CASSANDRA_CONF"
}

cassandra_start() {
  local java t0
  if pid_running "$CASSANDRA_PID" "$CASSANDRA_MAIN"; then
    wait_until cassandra "$CASSANDRA_READY_TIMEOUT" "$CASSANDRA_PID" "$CASSANDRA_MAIN" "$CASSANDRA_LOG" cassandra_cql_ready
    log "cassandra: already running (pid $(<"$CASSANDRA_PID"), CQL $INFRA_HOST:$CQL_PORT)"; return
  fi
  [[ -f $CASSANDRA_LIB_MARKER ]] || die "cassandra: jars for $CASSANDRA_VERSION not in $CASSANDRA_LIB; run: ops/infra.sh install cassandra"
  java=$(cassandra_java) || die "cassandra: Java 17 not found (set LANTERN_JAVA or run: ops/infra.sh install cassandra)"
  require_port_free "$CQL_PORT" "cassandra (CQL port)" LANTERN_CQL_PORT
  require_port_free "$CASSANDRA_STORAGE_PORT" "cassandra (storage/gossip port)" LANTERN_CASSANDRA_STORAGE_PORT
  mkdir -p "$CASSANDRA_LOGDIR" "$CASSANDRA_DIR/triggers"
  rm -f "$CASSANDRA_PID"
  cassandra_write_conf

  local -a jvm_opts
  mapfile -t jvm_opts < <(grep -vE '^[[:space:]]*(#|$)' "$OPS_DIR/cassandra/jvm17.options")
  jvm_opts+=(
    "-Xms$CASSANDRA_HEAP" "-Xmx$CASSANDRA_HEAP"
    -XX:+ExitOnOutOfMemoryError       # a half-dead node corrupts data; die and be restarted
    "-javaagent:$(echo "$CASSANDRA_LIB"/jamm-*.jar)"      # accurate memtable sizing
    "-Dcassandra.config=file://$CASSANDRA_CONF"
    "-Dcassandra.storagedir=$CASSANDRA_DIR"
    "-Dcassandra.logdir=$CASSANDRA_LOGDIR"
    "-Dcassandra.triggers_dir=$CASSANDRA_DIR/triggers"
    "-Dlogback.configurationFile=file://$OPS_DIR/cassandra/logback.xml"
    -Dcassandra-foreground=yes
    "-Dcassandra-pidfile=$CASSANDRA_PID"
    # One node: no peers to wait for (saves ~8 s per start).
    -Dcassandra.skip_wait_for_gossip_to_settle=0
  )
  # Extra flags for debugging, e.g. LANTERN_CASSANDRA_JVM_OPTS='-XX:+HeapDumpOnOutOfMemoryError'
  local -a extra_opts
  read -r -a extra_opts <<<"${LANTERN_CASSANDRA_JVM_OPTS:-}"
  jvm_opts+=("${extra_opts[@]}")

  t0=$(now)
  # cwd = data dir so stray files (hs_err, heap dumps) land there. setsid does not fork
  # here (we are not a group leader), so $! is the JVM.
  (cd "$CASSANDRA_DIR" && exec setsid nohup "$java" "${jvm_opts[@]}" -cp "$CASSANDRA_LIB/*" "$CASSANDRA_MAIN" \
    </dev/null >>"$CASSANDRA_LOGDIR/stdout.log" 2>&1) &
  echo $! >"$CASSANDRA_PID"
  wait_until cassandra "$CASSANDRA_READY_TIMEOUT" "$CASSANDRA_PID" "$CASSANDRA_MAIN" "$CASSANDRA_LOG" cassandra_cql_ready
  log "cassandra: ready in $(elapsed "$t0")s (pid $(<"$CASSANDRA_PID"), CQL $INFRA_HOST:$CQL_PORT, dc $CASSANDRA_LOCAL_DC, data in $CASSANDRA_DIR, RSS $(rss_mb "$CASSANDRA_PID") MiB)"
}

cassandra_stop() { stop_pid cassandra "$CASSANDRA_PID" "$CASSANDRA_MAIN"; }

cassandra_status() {
  if cassandra_running; then
    printf 'cassandra  running  pid %-8s %s:%s (CQL)  RSS %s MiB\n' "$(<"$CASSANDRA_PID")" "$INFRA_HOST" "$CQL_PORT" "$(rss_mb "$CASSANDRA_PID")"
  elif pid_running "$CASSANDRA_PID" "$CASSANDRA_MAIN"; then
    printf 'cassandra  STARTING/UNHEALTHY pid %s (CQL on :%s not answering; see %s)\n' "$(<"$CASSANDRA_PID")" "$CQL_PORT" "$CASSANDRA_LOG"; return 1
  else
    printf 'cassandra  stopped\n'; return 1
  fi
}
