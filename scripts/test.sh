#!/usr/bin/env bash
# The one test command (README, CI): install what is missing, configure a Release build with
# Ninja into build/, build with every core, run the whole ctest suite. ctest starts and stops
# DynamoDB Local itself as a fixture. Meanwhile the sanitized tree build-san/ (clang, ASan +
# UBSan, -O0: scripts/build-san.sh) builds in the background at idle priority, while the
# integration tests wait on DynamoDB Local; then every C++ unit test (ctest -L unit) and an 8 s
# run of every fuzz target (ctest -L fuzz) run there. Exits non-zero when anything fails.
#
#   scripts/test.sh [--no-sanitize] [--tsan] [extra ctest arguments, e.g. -R codec or -L dynamo]
#     --no-sanitize  no sanitized tree (a quicker local run)
#     --tsan         also build the pipeline tests with ThreadSanitizer (build-tsan/) and run them
#                    (ctest -L pipeline) after the rest; not in CI (see docs/architecture.md)
#   Extra arguments go to the main tree's ctest only; a filter that matches no test fails
#   (ctest --no-tests=error).
#
# BUILD_DIR overrides build/, SAN_BUILD build-san/, TSAN_BUILD build-tsan/; JOBS the core count.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BUILD="${BUILD_DIR:-$ROOT/build}"
SAN="${SAN_BUILD:-$ROOT/build-san}"
TSAN="${TSAN_BUILD:-$ROOT/build-tsan}"
JOBS="${JOBS:-$(nproc)}"
SANITIZE=1
THREADS=0
CTEST_ARGS=()
for arg in "$@"; do
  case "$arg" in
    --sanitize) SANITIZE=1 ;;  # the default; kept for old command lines
    --no-sanitize) SANITIZE=0 ;;
    --tsan) THREADS=1 ;;
    *) CTEST_ARGS+=("$arg") ;;
  esac
done

step() { printf '\n== %s (%s)\n' "$1" "$(date -u +%H:%M:%S)"; }
start=$SECONDS

step "setup"
"$ROOT/scripts/setup.sh"

step "configure: Release, Ninja, $BUILD"
cmake -S "$ROOT" -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release

step "build: $JOBS jobs"
cmake --build "$BUILD" -j "$JOBS"

san_pid=""
if ((SANITIZE)); then
  step "sanitizer build in the background (idle priority, log $SAN/build.log)"
  mkdir -p "$SAN"
  # -O0: a third less to compile than -O1 on 2 cores; the unit tests run slower but briefly.
  SAN_BUILD="$SAN" SAN_OPT=-O0 JOBS="$JOBS" nice -n 19 "$ROOT/scripts/build-san.sh" \
    >"$SAN/build.log" 2>&1 &
  san_pid=$!
fi

step "test"
# Tests share one DynamoDB Local; a few at a time keeps the 2-core box responsive.
rc=0
(cd "$BUILD" && ctest --no-tests=error --output-on-failure -j "$JOBS" --timeout 900 \
  "${CTEST_ARGS[@]+"${CTEST_ARGS[@]}"}") || rc=$?

if [[ -n "$san_pid" ]]; then
  step "sanitizer build: waiting for it"
  if wait "$san_pid"; then
    step "sanitized unit tests and brief fuzz runs ($SAN)"
    # The Python unit tests drive the CLI, which build-san/ does not build.
    (cd "$SAN" && ctest --no-tests=error --output-on-failure -j "$JOBS" --timeout 900 \
      -L 'unit|fuzz' -E '^py_') || rc=1
  else
    tail -40 "$SAN/build.log" >&2
    echo "scripts/test.sh: the sanitizer build failed (log $SAN/build.log)" >&2
    rc=1
  fi
fi

if ((THREADS)); then
  step "ThreadSanitizer: pipeline tests ($TSAN)"
  if SAN_BUILD="$TSAN" SANITIZER=thread JOBS="$JOBS" "$ROOT/scripts/build-san.sh" pipeline_tests; then
    (cd "$TSAN" && TSAN_OPTIONS="suppressions=$ROOT/tests/tsan.supp halt_on_error=1 second_deadlock_stack=1" \
      ctest --no-tests=error --output-on-failure -j 1 --timeout 1800 -L pipeline) || rc=1
  else
    rc=1
  fi
fi

elapsed=$((SECONDS - start))
if ((rc == 0)); then
  printf '\nscripts/test.sh: all tests passed in %dm%02ds\n' $((elapsed / 60)) $((elapsed % 60))
else
  printf '\nscripts/test.sh: FAILED (exit %d) after %dm%02ds\n' "$rc" $((elapsed / 60)) $((elapsed % 60)) >&2
fi
exit "$rc"
