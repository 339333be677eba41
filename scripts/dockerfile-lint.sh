#!/usr/bin/env bash
# Parse and validate a Dockerfile without Docker: dockerfile-utils@0.16.3 (the validator of the
# Dockerfile language server, on dockerfile-ast) under Node.js. No registry, daemon or build.
#
#   scripts/dockerfile-lint.sh install       fetch the npm package into .cache/ (setup.sh does)
#   scripts/dockerfile-lint.sh parse FILE    print one JSON object: the validator's diagnostics
#                                            and every instruction (keyword, arguments, flags,
#                                            line); exit 0 even when there are diagnostics
#
# tests/cli/k8s_manifest_test.py judges the output (unknown instructions, bad flags, COPY
# sources missing from the repository or hidden by .dockerignore, undefined stages).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CACHE="${DYNAMORPH_CACHE:-$ROOT/.cache}"
VERSION=0.16.3
HOME_DIR="$CACHE/dockerfile-utils-$VERSION"

install() {
  [[ -f "$HOME_DIR/.installed" ]] && return 0
  mkdir -p "$CACHE"
  local tmp; tmp="$(mktemp -d "$CACHE/dockerfile-utils.XXXXXX")"
  (cd "$tmp" && npm install --silent --no-audit --no-fund --no-save --prefix "$tmp" \
      "dockerfile-utils@$VERSION" >/dev/null)
  rm -rf "$HOME_DIR"; mv "$tmp" "$HOME_DIR"
  touch "$HOME_DIR/.installed"
}

case "${1:-}" in
  install) install ;;
  parse)
    [[ $# -eq 2 ]] || { echo "usage: scripts/dockerfile-lint.sh parse FILE" >&2; exit 2; }
    install
    NODE_PATH="$HOME_DIR/node_modules" exec node "$ROOT/scripts/dockerfile-lint.cjs" "$2"
    ;;
  *) echo "usage: scripts/dockerfile-lint.sh install | parse FILE" >&2; exit 2 ;;
esac
