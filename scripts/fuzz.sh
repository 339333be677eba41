#!/usr/bin/env bash
# Build the libFuzzer targets (fuzz/, in a sanitized tree of scripts/build-san.sh: clang,
# ASan + UBSan, -O1: build-fuzz/, not scripts/test.sh's -O0 build-san/) and run each for a while from its seeds (fuzz/corpus/<target>/) and dictionary
# (fuzz/dict/<target>.dict, when there is one).
#
#   scripts/fuzz.sh [--target NAME] [SECONDS]   fuzz NAME (default: every target in turn) for
#                                               SECONDS each (default 30); exit 1 on a finding
#   scripts/fuzz.sh --build-only                just build the targets
#   scripts/fuzz.sh --no-build …                run what is built (ctest's fuzz_*_brief do)
#
# Targets: expression migration config response sigv4 export streams.
# Environment: FUZZ_BUILD (default build-fuzz/) is the tree; under it fuzz-runs/<target>/ keeps the
# growing corpus and findings/ the crashing inputs. FUZZ_JOBS runs that many fuzzing processes.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
OUT="${FUZZ_BUILD:-$ROOT/build-fuzz}"
ALL_TARGETS=(expression migration config response sigv4 export streams)
TARGETS=()
SECONDS_TO_RUN=30
BUILD=1
BUILD_ONLY=0
usage() { echo "usage: $0 [--target NAME] [--no-build | --build-only] [SECONDS]" >&2; exit 2; }
while (($#)); do
  case "$1" in
    --target) [[ $# -ge 2 ]] || usage; TARGETS+=("$2"); shift ;;
    --no-build) BUILD=0 ;;
    --build-only) BUILD_ONLY=1 ;;
    *[!0-9]* | "") usage ;;
    *) SECONDS_TO_RUN="$1" ;;
  esac
  shift
done
((${#TARGETS[@]})) || TARGETS=("${ALL_TARGETS[@]}")
for t in "${TARGETS[@]}"; do
  [[ " ${ALL_TARGETS[*]} " == *" $t "* ]] || { echo "fuzz.sh: no target '$t' (${ALL_TARGETS[*]})" >&2; exit 2; }
done

if ((BUILD)); then
  SAN_BUILD="$OUT" "$ROOT/scripts/build-san.sh" "${TARGETS[@]/%/_fuzz}"
fi
((BUILD_ONLY)) && exit 0

found=0
for t in "${TARGETS[@]}"; do
  BIN="$OUT/fuzz/${t}_fuzz"
  [[ -x "$BIN" ]] || { echo "fuzz.sh: $BIN is not built (scripts/build-san.sh fuzz_targets)" >&2; exit 2; }
  RUN="$OUT/fuzz-runs/$t"
  mkdir -p "$RUN/corpus" "$RUN/findings"
  ARGS=(-max_total_time="$SECONDS_TO_RUN" -max_len=8192 -timeout=10 -rss_limit_mb=2048
        -artifact_prefix="$RUN/findings/" -print_final_stats=1)
  [[ -f "$ROOT/fuzz/dict/$t.dict" ]] && ARGS+=(-dict="$ROOT/fuzz/dict/$t.dict")
  [[ -n "${FUZZ_JOBS:-}" ]] && ARGS+=(-jobs="$FUZZ_JOBS" -workers="$FUZZ_JOBS")
  echo "fuzz.sh: $t for ${SECONDS_TO_RUN}s (corpus $RUN/corpus, findings in $RUN/findings)"
  rc=0
  (cd "$RUN" && "$BIN" "${ARGS[@]}" "$RUN/corpus" "$ROOT/fuzz/corpus/$t") >"$RUN/last.log" 2>&1 || rc=$?
  runs="$(sed -n 's/^stat::number_of_executed_units: *//p' "$RUN/last.log" | tail -1)"
  rate="$(sed -n 's/^stat::average_exec_per_sec: *//p' "$RUN/last.log" | tail -1)"
  if ((rc == 0)); then
    echo "fuzz.sh: $t: ${runs:-?} runs, ${rate:-?} exec/s, no finding"
  else
    found=1
    tail -60 "$RUN/last.log" >&2
    echo "fuzz.sh: $t: FINDING (exit $rc) — reproduce with: $BIN $RUN/findings/<file>" >&2
  fi
done
exit "$found"
