#!/usr/bin/env bash
# Configure and build the sanitized tree (default build-san/): clang++, ASan + UBSan (no
# recovery), libFuzzer coverage, -O1 without debug info, no benchmarks, no mimalloc. It holds the
# unit tests (ctest -L unit) and the fuzz targets (ctest -L fuzz, scripts/fuzz.sh).
# SANITIZER=thread makes a ThreadSanitizer tree instead (scripts/test.sh --tsan: build-tsan/).
#
#   scripts/build-san.sh [NINJA TARGETS…]    default: unit_tests fuzz_targets
#
# SAN_BUILD overrides build-san/; JOBS the parallel jobs (default: every core); SAN_OPT the
# optimization flags of a new tree (default -O1; scripts/test.sh uses -O0, which compiles
# faster, for its own tree). Exits 2 when
# clang++ is missing.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
OUT="${SAN_BUILD:-$ROOT/build-san}"
JOBS="${JOBS:-$(nproc)}"
if ! command -v clang++ >/dev/null; then
  echo "build-san.sh: clang++ not found (scripts/setup.sh installs it)" >&2
  exit 2
fi
(($#)) || set -- unit_tests fuzz_targets
case "${SANITIZER:-address}" in
  address) KIND=(-DDYNAMORPH_SANITIZE=ON -DDYNAMORPH_FUZZ=ON) ;;
  thread) KIND=(-DDYNAMORPH_TSAN=ON) ;;
  *) echo "build-san.sh: SANITIZER is address or thread" >&2; exit 2 ;;
esac
if [[ ! -f "$OUT/build.ninja" ]]; then
  # -O1 and no -g: the cheapest build whose reports still name functions (the sanitizers
  # symbolize from the symbol table).
  CXX=clang++ cmake -S "$ROOT" -B "$OUT" -G Ninja -DCMAKE_BUILD_TYPE=Release \
    -DCMAKE_CXX_FLAGS_RELEASE="${SAN_OPT:--O1}" "${KIND[@]}" -DDYNAMORPH_BUILD_BENCH=OFF \
    -DDYNAMORPH_MIMALLOC=OFF >/dev/null
fi
cmake --build "$OUT" -j "$JOBS" --target "$@"
