#!/usr/bin/env bash
# The demo: build dynamorph, start a private DynamoDB Local, seed a single-table design
# (users' profiles and photos, ~300-byte items), run a bulk reshape with a progress bar,
# interrupt it part-way with SIGINT (it drains and stops with status "stopped", checkpoints
# in a file), resume it from the checkpoint, then verify every attribute of every item.
#
#   scripts/demo.sh                 DEMO_ITEMS (default 200000) items; BUILD_DIR overrides build/;
#                                   JOBS the build's parallelism; DEMO_SEGMENTS (default 8)
#
# The reshape: for every PK=USER#… SK=PROFILE item, SET username = lower(username),
# migratedAt = "2025-01-01T00:00:00.000Z" (photos untouched). It is driven by
# bench/migrate_bench (run_pipeline with a file checkpoint store). Stops only the server it
# started (trap on exit).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BUILD="${BUILD_DIR:-$ROOT/build}"
JOBS="${JOBS:-$(nproc)}"
ITEMS="${DEMO_ITEMS:-200000}"
SEGMENTS="${DEMO_SEGMENTS:-8}"
STATE="$ROOT/.cache/demo-ddb"
CKPT="$ROOT/.cache/demo-reshape.ckpt"
PY=/usr/bin/python3
DATASET="$ROOT/bench/dataset.py"
say() { printf '\033[1mdemo:\033[0m %s\n' "$*"; }

"$ROOT/scripts/setup.sh"
cmake -S "$ROOT" -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
say "building (Release, Ninja, $BUILD, $JOBS jobs) ..."
mkdir -p "$BUILD"
cmake --build "$BUILD" -j "$JOBS" --target migrate_bench >"$BUILD/demo-build.log" 2>&1 \
  || { tail -n 40 "$BUILD/demo-build.log" >&2; echo "demo: build failed, log: $BUILD/demo-build.log" >&2; exit 1; }
BIN="$BUILD/bench/migrate_bench"

driver_pid=""
cleanup() {
  if [[ -n "$driver_pid" ]] && kill -0 "$driver_pid" 2>/dev/null; then kill "$driver_pid" 2>/dev/null || true; fi
  "$ROOT/scripts/dynamodb-local.sh" stop "$STATE" >/dev/null 2>&1 || true
}
trap cleanup EXIT

heap=2g; (( ITEMS > 60000 )) && heap=6g
endpoint="$(DDB_JAVA_OPTS="${DDB_JAVA_OPTS:--Xmx$heap}" "$ROOT/scripts/dynamodb-local.sh" start "$STATE" | tail -n 1)"
say "DynamoDB Local (in memory) at $endpoint"

say "seeding $ITEMS items (users: PROFILE + PHOTO#<uuid>, ~300 B each) ..."
"$PY" "$DATASET" seed --endpoint "$endpoint" --table demo --n "$ITEMS" --seed 7

rm -f "$CKPT"
# Small pages (Limit 250) so that the checkpoint advances often and the interrupt lands mid-run.
DRIVER=("$BIN" --endpoint "$endpoint" --table demo --segments "$SEGMENTS" --max-writes 16 --mode batch
        --page-size 250 --checkpoint "$CKPT" --progress --json)

# Interrupt at ~40 % of the expected run time (~5k items/s on DynamoDB Local; at least 1 s).
stop_after=$(awk -v n="$ITEMS" 'BEGIN { t = n / 5000 * 0.4; if (t < 1) t = 1; printf "%.1f", t }')
say "reshape: SET username = lower(username), migratedAt = :m on every profile; SIGINT after ${stop_after}s"
set +e
"${DRIVER[@]}" >"$ROOT/.cache/demo-run1.json" &  # the driver itself, so $! is its pid
driver_pid=$!
sleep "$stop_after"
kill -INT "$driver_pid" 2>/dev/null
wait "$driver_pid"; rc1=$?
driver_pid=""
set -e
echo
say "first run exit status $rc1 (3 = stopped on the signal, 0 = finished before it): $(tail -n 1 "$ROOT/.cache/demo-run1.json")"
if [[ $rc1 -ne 3 && $rc1 -ne 0 ]]; then echo "demo: first run failed" >&2; exit 1; fi

partial="$("$PY" "$DATASET" verify --endpoint "$endpoint" --table demo --n "$ITEMS" --seed 7 || true)"
say "table after the interrupt: $("$PY" -c '
import json, sys
r = json.loads(sys.argv[1].strip().splitlines()[-1])
print("%s of %s profiles reshaped, %d missing, %d extra, %d duplicate"
      % (format(r["targets"] - r["wrong"], ","), format(r["targets"], ","), r["missing"], r["extra"], r["duplicate"]))
' "$partial")"

if [[ $rc1 -eq 3 ]]; then
  say "resuming from the checkpoint ($CKPT) ..."
  "${DRIVER[@]}" >"$ROOT/.cache/demo-run2.json"
  echo
  say "resumed run: $(tail -n 1 "$ROOT/.cache/demo-run2.json")"
fi

say "verifying every attribute of every item against the regenerated expectation ..."
if "$PY" "$DATASET" verify --endpoint "$endpoint" --table demo --n "$ITEMS" --seed 7; then
  say "VERDICT: OK -- all $ITEMS items as expected (every profile reshaped once, photos untouched)"
else
  say "VERDICT: FAIL"
  exit 1
fi
