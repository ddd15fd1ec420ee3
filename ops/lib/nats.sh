# nats-server: Debian package if it supports JetStream (>= 2.2), else a pinned `go install`.
# Sourced by ops/infra.sh after common.sh.

NATS_GO_VERSION=v2.15.2        # used only when the apt build is too old (or LANTERN_NATS_SOURCE=go)
NATS_MIN_VERSION=2.2.0         # first release with JetStream
NATS_DIR=$INFRA_DIR/nats
NATS_PID=$NATS_DIR/nats.pid
NATS_LOG=$NATS_DIR/nats.log
NATS_GO_BIN=$INFRA_CACHE/bin/nats-server

# version_ge A B: true when dotted version A >= B.
version_ge() { [[ $(printf '%s\n%s\n' "$2" "$1" | sort -V | head -1) == "$2" ]]; }

nats_version_of() { "$1" --version 2>/dev/null | grep -oE '[0-9]+\.[0-9]+\.[0-9]+' | head -1; }

# nats_bin: prints the nats-server to use, or fails.
nats_bin() {
  if [[ -x $NATS_GO_BIN ]]; then printf '%s' "$NATS_GO_BIN"; return; fi
  if [[ ${LANTERN_NATS_SOURCE:-apt} != go ]] && command -v nats-server >/dev/null 2>&1; then
    local bin v
    bin=$(command -v nats-server); v=$(nats_version_of "$bin")
    if [[ -n $v ]] && version_ge "$v" "$NATS_MIN_VERSION"; then printf '%s' "$bin"; return; fi
  fi
  return 1
}

nats_install() {
  local t0 bin v
  if bin=$(nats_bin); then
    log "nats: present ($bin, v$(nats_version_of "$bin"))"; return
  fi
  t0=$(now)
  if [[ ${LANTERN_NATS_SOURCE:-apt} != go ]]; then
    command -v nats-server >/dev/null 2>&1 || apt_install nats-server
    v=$(nats_version_of "$(command -v nats-server)")
    if [[ -n $v ]] && version_ge "$v" "$NATS_MIN_VERSION"; then
      log "nats: installed nats-server v$v from apt in $(elapsed "$t0")s"; return
    fi
    log "nats: apt nats-server v${v:-unknown} predates JetStream ($NATS_MIN_VERSION); building $NATS_GO_VERSION with go"
  fi
  command -v go >/dev/null 2>&1 || die "nats: go is needed to build nats-server $NATS_GO_VERSION but is not on PATH"
  mkdir -p "$INFRA_CACHE/bin"
  GOBIN=$INFRA_CACHE/bin GOFLAGS= go install "github.com/nats-io/nats-server/v2@$NATS_GO_VERSION" \
    || die "nats: go install github.com/nats-io/nats-server/v2@$NATS_GO_VERSION failed"
  log "nats: built $("$NATS_GO_BIN" --version) into $NATS_GO_BIN in $(elapsed "$t0")s"
}

nats_ready() { [[ $(http_get "$NATS_MONITOR_PORT" /healthz) == *'"ok"'* ]]; }

nats_running() { pid_running "$NATS_PID" nats-server && nats_ready; }

nats_start() {
  local bin t0
  if pid_running "$NATS_PID" nats-server; then
    wait_until nats "$READY_TIMEOUT" "$NATS_PID" nats-server "$NATS_LOG" nats_ready
    log "nats: already running (pid $(<"$NATS_PID"), nats://$INFRA_HOST:$NATS_PORT)"; return
  fi
  bin=$(nats_bin) || die "nats: nats-server (>= $NATS_MIN_VERSION) not installed; run: ops/infra.sh install nats"
  require_port_free "$NATS_PORT" "nats (client port)" LANTERN_NATS_PORT
  require_port_free "$NATS_MONITOR_PORT" "nats (monitoring port)" LANTERN_NATS_MONITOR_PORT
  mkdir -p "$NATS_DIR"
  rm -f "$NATS_PID"
  t0=$(now)
  # nats-server has no daemon mode on Linux: detach it ourselves. It writes its own pid file.
  # -sd names the parent: JetStream keeps its files in $NATS_DIR/jetstream.
  setsid nohup "$bin" -a "$INFRA_HOST" -p "$NATS_PORT" -m "$NATS_MONITOR_PORT" \
    -js -sd "$NATS_DIR" -n lantern-dev -P "$NATS_PID" -l "$NATS_LOG" \
    </dev/null >>"$NATS_DIR/stdout.log" 2>&1 &
  # setsid does not fork here (we are not a group leader), so $! is nats-server itself;
  # recording it now lets wait_until notice a crash before nats writes its own pid file.
  echo $! >"$NATS_PID"
  wait_until nats "$READY_TIMEOUT" "$NATS_PID" nats-server "$NATS_LOG" nats_ready
  log "nats: ready in $(elapsed "$t0")s (pid $(<"$NATS_PID"), nats://$INFRA_HOST:$NATS_PORT, monitor :$NATS_MONITOR_PORT, JetStream in $NATS_DIR/jetstream, RSS $(rss_mb "$NATS_PID") MiB)"
}

nats_stop() { stop_pid nats "$NATS_PID" nats-server; }

nats_status() {
  if nats_running; then
    printf 'nats       running  pid %-8s nats://%s:%s  RSS %s MiB\n' "$(<"$NATS_PID")" "$INFRA_HOST" "$NATS_PORT" "$(rss_mb "$NATS_PID")"
  elif pid_running "$NATS_PID" nats-server; then
    printf 'nats       STARTING/UNHEALTHY pid %s (healthz on :%s not ok)\n' "$(<"$NATS_PID")" "$NATS_MONITOR_PORT"; return 1
  else
    printf 'nats       stopped\n'; return 1
  fi
}
