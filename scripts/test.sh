#!/usr/bin/env bash
# The one test command (README, CI): install what is missing, configure a Release build with
# Ninja into build/, build with every core, run the whole ctest suite. ctest starts and stops
# DynamoDB Local itself as a fixture. Exits non-zero when anything fails.
#
#   scripts/test.sh [extra ctest arguments, e.g. -R codec or -L dynamo]; a filter that matches
#                   no test fails (ctest --no-tests=error)
#
# BUILD_DIR overrides build/; JOBS overrides the core count.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BUILD="${BUILD_DIR:-$ROOT/build}"
JOBS="${JOBS:-$(nproc)}"

step() { printf '\n== %s (%s)\n' "$1" "$(date -u +%H:%M:%S)"; }
start=$SECONDS

step "setup"
"$ROOT/scripts/setup.sh"

step "configure: Release, Ninja, $BUILD"
cmake -S "$ROOT" -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release

step "build: $JOBS jobs"
cmake --build "$BUILD" -j "$JOBS"

step "test"
# Tests share one DynamoDB Local; a few at a time keeps the 2-core box responsive.
rc=0
(cd "$BUILD" && ctest --no-tests=error --output-on-failure -j "$JOBS" --timeout 900 "$@") || rc=$?

elapsed=$((SECONDS - start))
if ((rc == 0)); then
  printf '\nscripts/test.sh: all tests passed in %dm%02ds\n' $((elapsed / 60)) $((elapsed % 60))
else
  printf '\nscripts/test.sh: FAILED (ctest exit %d) after %dm%02ds\n' "$rc" $((elapsed / 60)) $((elapsed % 60)) >&2
fi
exit "$rc"
