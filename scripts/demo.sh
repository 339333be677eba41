#!/usr/bin/env bash
# The demo, dynamorph's main job in one command: build it, start a private DynamoDB Local, and
# in a fresh project folder
#   1. `dynamorph up --to V1` creates the table (a schema step),
#   2. seeds a single-table design (profiles and photos of users, ~300-byte items),
#   3. `dynamorph up` runs the reshape (a pipeline step) with its progress bar, and is
#      interrupted part-way with SIGINT (it drains, saves its checkpoints, exits 130),
#   4. `dynamorph status` shows the version as running, `dynamorph up` resumes it from the
#      checkpoints and finishes, `dynamorph status` shows it applied,
#   5. every attribute of every item is compared with the expected result.
#
#   scripts/demo.sh      DEMO_ITEMS (default 200000) items; BUILD_DIR overrides build/; JOBS the
#                        build's parallelism; DEMO_SEGMENTS (default 8)
#
# Stops only the server it started (trap on exit).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BUILD="${BUILD_DIR:-$ROOT/build}"
JOBS="${JOBS:-$(nproc)}"
ITEMS="${DEMO_ITEMS:-200000}"
SEGMENTS="${DEMO_SEGMENTS:-8}"
STATE="$ROOT/.cache/demo-ddb"
PROJECT="$ROOT/.cache/demo-project"
PY=/usr/bin/python3
DATASET="$ROOT/bench/dataset.py"
say() { printf '\033[1mdemo:\033[0m %s\n' "$*"; }

"$ROOT/scripts/setup.sh"
cmake -S "$ROOT" -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
say "building dynamorph (Release, Ninja, $BUILD, $JOBS jobs) ..."
cmake --build "$BUILD" -j "$JOBS" --target dynamorph >"$BUILD/demo-build.log" 2>&1 \
  || { tail -n 40 "$BUILD/demo-build.log" >&2; echo "demo: build failed, log: $BUILD/demo-build.log" >&2; exit 1; }
DYNAMORPH="$BUILD/cli/dynamorph"

run_pid=""
cleanup() {
  if [[ -n "$run_pid" ]] && kill -0 "$run_pid" 2>/dev/null; then kill "$run_pid" 2>/dev/null || true; fi
  "$ROOT/scripts/dynamodb-local.sh" stop "$STATE" >/dev/null 2>&1 || true
}
trap cleanup EXIT

heap=2g; (( ITEMS > 60000 )) && heap=6g
endpoint="$(DDB_JAVA_OPTS="${DDB_JAVA_OPTS:--Xmx$heap}" "$ROOT/scripts/dynamodb-local.sh" start "$STATE" | tail -n 1)"
say "DynamoDB Local (in memory) at $endpoint"

# A project as a user would have it: dynamorph.yaml and a migrations folder.
rm -rf "$PROJECT"
mkdir -p "$PROJECT/migrations"
cat >"$PROJECT/dynamorph.yaml" <<YAML
region: us-east-1
endpoint: $endpoint
namespace: demo-
lock_ttl: 1m
defaults: { segments: $SEGMENTS }
YAML
cat >"$PROJECT/migrations/20261122100000_create_app.yaml" <<'YAML'
version: 20261122100000
name: create_app
up:
  - create_table: { table: app, partition_key: PK:string, sort_key: SK:string, billing: on_demand }
down:
  - delete_table: { table: app }
YAML
cat >"$PROJECT/migrations/20261122101500_normalize_usernames.yaml" <<'YAML'
version: 20261122101500
name: normalize_usernames
up:
  - pipeline:
      values: { ":profile": PROFILE, ":m": "2025-01-01T00:00:00.000Z" }
      source: { table: app, page_size: 250 }
      where: "SK = :profile AND username <> lower(username)"
      transform:
        - update: "SET username = lower(username), migratedAt = :m"
      write: { mode: batch }
YAML
cd "$PROJECT"
export AWS_ACCESS_KEY_ID="${AWS_ACCESS_KEY_ID:-demo}" AWS_SECRET_ACCESS_KEY="${AWS_SECRET_ACCESS_KEY:-demo}"

say "\$ dynamorph up --to 20261122100000      (schema step: create the table)"
"$DYNAMORPH" up --to 20261122100000

say "seeding $ITEMS items into demo-app (users: PROFILE + PHOTO#<uuid>, ~300 B each) ..."
"$PY" "$DATASET" seed --endpoint "$endpoint" --table demo-app --n "$ITEMS" --seed 7

# Interrupt at ~40 % of the expected run time (~5k items/s on DynamoDB Local; at least 1 s).
stop_after=$(awk -v n="$ITEMS" 'BEGIN { t = n / 5000 * 0.4; if (t < 1) t = 1; printf "%.1f", t }')
say "\$ dynamorph up      (the reshape; SIGINT after ${stop_after}s)"
set +e
"$DYNAMORPH" up &
run_pid=$!
sleep "$stop_after"
kill -INT "$run_pid" 2>/dev/null
wait "$run_pid"; rc1=$?
run_pid=""
set -e
say "first run exit status $rc1 (130 = interrupted, checkpoints saved; 0 = finished before the signal)"
if [[ $rc1 -ne 130 && $rc1 -ne 0 ]]; then echo "demo: the first run failed" >&2; exit 1; fi

partial="$("$PY" "$DATASET" verify --endpoint "$endpoint" --table demo-app --n "$ITEMS" --seed 7 || true)"
say "table after the interrupt: $("$PY" -c '
import json, sys
r = json.loads(sys.argv[1].strip().splitlines()[-1])
print("%s of %s profiles reshaped, %d missing, %d extra, %d duplicate"
      % (format(r["targets"] - r["wrong"], ","), format(r["targets"], ","), r["missing"], r["extra"], r["duplicate"]))
' "$partial")"

say "\$ dynamorph status"
"$DYNAMORPH" status || true
say "\$ dynamorph up      (resumes from the checkpoints)"
"$DYNAMORPH" up
say "\$ dynamorph status"
"$DYNAMORPH" status

say "verifying every attribute of every item against the regenerated expectation ..."
if "$PY" "$DATASET" verify --endpoint "$endpoint" --table demo-app --n "$ITEMS" --seed 7; then
  say "VERDICT: OK -- all $ITEMS items as expected (every profile reshaped once, photos untouched)"
else
  say "VERDICT: FAIL"
  exit 1
fi
