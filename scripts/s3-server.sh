#!/usr/bin/env bash
# Start or stop an S3-compatible server (the npm package s3rver@3.7.1, on Node.js) for tests,
# listening on 127.0.0.1 only.
#
#   scripts/s3-server.sh start [STATE_DIR]   install if needed, start on a free loopback port, wait
#                                            until it answers; writes STATE_DIR/port, STATE_DIR/pid
#                                            and STATE_DIR/endpoint, prints the endpoint URL
#   scripts/s3-server.sh stop  [STATE_DIR]   stop the pid recorded there (only that pid)
#   scripts/s3-server.sh install             just fetch the package
#
# STATE_DIR defaults to .cache/s3-server. Objects live in STATE_DIR/data, emptied at each start;
# the bucket dynamorph-test exists from the start. S3_PORT picks the port. The server knows one
# access key, S3RVER (secret S3RVER): it refuses other key ids, requests without
# x-amz-content-sha256 and requests more than 15 minutes off its clock, but it does not recompute
# SigV4 signatures (the signer is tested against AWS's and botocore's vectors instead).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CACHE="${DYNAMORPH_CACHE:-$ROOT/.cache}"
VERSION=3.7.1
HOME_DIR="$CACHE/s3rver-$VERSION"
MAIN="$HOME_DIR/node_modules/s3rver/bin/s3rver.js"
BUCKET=dynamorph-test

install() {
  [[ -f "$MAIN" && -f "$HOME_DIR/.installed" ]] && return 0
  mkdir -p "$CACHE"
  local tmp; tmp="$(mktemp -d "$CACHE/s3rver.XXXXXX")"
  (cd "$tmp" && npm install --silent --no-audit --no-fund --no-save --prefix "$tmp" \
      "s3rver@$VERSION" >/dev/null)
  rm -rf "$HOME_DIR"; mv "$tmp" "$HOME_DIR"
  touch "$HOME_DIR/.installed"
}

free_port() {
  /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

answers() {  # ListBuckets over loopback, anonymous
  curl -s -m 2 -o /dev/null -w '%{http_code}' "http://127.0.0.1:$1/" 2>/dev/null || true
}

ours() {  # is this pid the s3rver we started on that port?
  [[ -r "/proc/$1/cmdline" ]] || return 1
  local cl; cl="$(tr '\0' ' ' <"/proc/$1/cmdline")"
  [[ "$cl" == *"$MAIN"* && "$cl" == *"--port $2 "* ]]
}

cmd="${1:-}"
state="${2:-$CACHE/s3-server}"
case "$cmd" in
  install) install ;;
  start)
    install
    mkdir -p "$state"
    if [[ -f "$state/pid" ]] && kill -0 "$(cat "$state/pid")" 2>/dev/null \
        && ours "$(cat "$state/pid")" "$(cat "$state/port")"; then
      cat "$state/endpoint"; exit 0
    fi
    port="${S3_PORT:-$(free_port)}"
    rm -rf "$state/data"; mkdir -p "$state/data"
    # s3rver makes ListObjectsV2 continuation tokens with DES, which OpenSSL 3 keeps in its
    # legacy provider.
    node --openssl-legacy-provider "$MAIN" --directory "$state/data" --address 127.0.0.1 --port "$port" --silent \
        --no-vhost-buckets --configure-bucket "$BUCKET" >"$state/server.log" 2>&1 </dev/null &
    pid=$!
    echo "$pid" >"$state/pid"; echo "$port" >"$state/port"
    echo "http://127.0.0.1:$port" >"$state/endpoint"
    for _ in $(seq 1 300); do
      if [[ "$(answers "$port")" == 200 ]]; then cat "$state/endpoint"; exit 0; fi
      if ! kill -0 "$pid" 2>/dev/null; then
        echo "s3-server: server exited during start; log: $state/server.log" >&2
        tail -n 20 "$state/server.log" >&2; rm -f "$state/pid"; exit 1
      fi
      sleep 0.1
    done
    echo "s3-server: no answer on 127.0.0.1:$port after 30 s" >&2
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
