#!/usr/bin/env bash
# Builds the pinned Centrifugo (the peer baseline of bench/peers/centrifugo.ts) with
# `go install` into a cache dir, once: a cached binary built from the pinned module version is reused.
# Prints the binary's path on stdout and nothing else on success; go's output only on failure.
#   bash bench/peers/install-centrifugo.sh
# Env: LANTERN_BENCH_CACHE (default bench/.cache; the binary goes to its bin/).
set -euo pipefail

CENTRIFUGO_VERSION=v6.9.1
MODULE=github.com/centrifugal/centrifugo/v6

PEERS_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
CACHE=${LANTERN_BENCH_CACHE:-$PEERS_DIR/../.cache}
BIN_DIR=$(mkdir -p "$CACHE/bin" && cd "$CACHE/bin" && pwd)
BIN=$BIN_DIR/centrifugo

# The module version go embedded in the binary: `centrifugo version` says v0.0.0 in a
# `go install` build (releases set it with -ldflags), so it cannot tell.
installed_version() { go version -m "$BIN" 2>/dev/null | awk -v m="$MODULE" '$1 == "mod" && $2 == m { print $3 }'; }

command -v go >/dev/null 2>&1 || { echo "install-centrifugo: go is not on PATH" >&2; exit 1; }
if [[ -x $BIN && $(installed_version || true) == "$CENTRIFUGO_VERSION" ]]; then
  echo "$BIN"; exit 0
fi

log=$(mktemp)
trap 'rm -f "$log"' EXIT
# GOFLAGS is cleared: a machine-wide -mod or -buildvcs setting must not change this build.
if ! GOBIN=$BIN_DIR GOFLAGS= go install "$MODULE@$CENTRIFUGO_VERSION" >"$log" 2>&1; then
  cat "$log" >&2
  echo "install-centrifugo: go install $MODULE@$CENTRIFUGO_VERSION failed" >&2
  exit 1
fi
got=$(installed_version || true)
if [[ $got != "$CENTRIFUGO_VERSION" ]]; then
  echo "install-centrifugo: built $BIN but it reports version '${got:-none}', expected $CENTRIFUGO_VERSION" >&2
  exit 1
fi
echo "$BIN"
