#!/usr/bin/env bash
# Build the expression engine's libFuzzer target with clang++ (ASan + UBSan + libFuzzer) and run
# it for a while, seeded with the differential corpus.
#
#   scripts/fuzz.sh [SECONDS]        build, then fuzz for SECONDS (default 30); exit 1 on a finding
#   scripts/fuzz.sh --build-only     just build
#
# Environment: FUZZ_DIR (default build-fuzz/) holds the binary, the growing corpus and crash files;
# CXX_FUZZ picks the compiler (default clang++); FUZZ_JOBS runs that many fuzzing processes.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
OUT="${FUZZ_DIR:-$ROOT/build-fuzz}"
CXX_FUZZ="${CXX_FUZZ:-clang++}"
SECONDS_TO_RUN=30
BUILD_ONLY=0
case "${1:-}" in
  --build-only) BUILD_ONLY=1 ;;
  "") ;;
  *[!0-9]*) echo "usage: $0 [SECONDS | --build-only]" >&2; exit 2 ;;
  *) SECONDS_TO_RUN="$1" ;;
esac

if ! command -v "$CXX_FUZZ" >/dev/null; then
  echo "fuzz.sh: $CXX_FUZZ not found; libFuzzer needs clang" >&2
  exit 2
fi

mkdir -p "$OUT/seeds" "$OUT/corpus" "$OUT/findings"
BIN="$OUT/expression_fuzz"
# The expr and dynamo sources the target needs, compiled here with the sanitizers (the main build uses g++).
SOURCES=(
  "$ROOT/fuzz/expression_fuzz.cpp"
  "$ROOT/expr/expression.cpp" "$ROOT/expr/expr_lexer.cpp" "$ROOT/expr/expr_parser.cpp"
  "$ROOT/expr/expr_eval.cpp" "$ROOT/expr/expr_functions.cpp" "$ROOT/expr/expr_reserved.cpp"
  "$ROOT/dynamo/attribute_value.cpp" "$ROOT/dynamo/decimal.cpp" "$ROOT/dynamo/json.cpp"
  "$ROOT/dynamo/suggest.cpp"
)
newest_source="$(ls -t "${SOURCES[@]}" "$ROOT"/dynamo/*.h "$ROOT"/expr/*.h | head -1)"
if [[ ! -x "$BIN" || "$newest_source" -nt "$BIN" ]]; then
  echo "fuzz.sh: building $BIN"
  "$CXX_FUZZ" -std=c++20 -O1 -g -fno-omit-frame-pointer \
    -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
    -I"$ROOT" "${SOURCES[@]}" -lsimdjson -lfmt -luuid -o "$BIN.tmp"
  mv "$BIN.tmp" "$BIN"
fi
[[ "$BUILD_ONLY" == 1 ]] && exit 0

# Seeds: every corpus expression, in both dialects (mode byte: '@' condition/Server, 'A'
# condition/Client, 'B' update/Server, 'C' update/Client).
/usr/bin/python3 - "$ROOT/tests/expr/data/expr_corpus.txt" "$OUT/seeds" <<'PY'
import hashlib, os, sys
corpus, seeds = sys.argv[1], sys.argv[2]
extra = [
    "A" + "SK = :s_a AND name <> lower(name)",
    "A" + "begins_with(lower(s), 'al') AND size(trim(s)) > 2 AND coalesce(zz, s) = 'alpha'",
    "A" + "epoch_ms(createdAt) BETWEEN 1 AND epoch_ms(now()) OR split_part(s, 'l', -1) IN ('pha', 'x')",
    "C" + "SET SK = concat('PHOTO#', to_string(epoch_ms(createdAt)), '#', strip_prefix(pk, 'a'))",
    "C" + "SET a = substr(s, 2, 3), b = replace(s, 'a', 'b''c'), c = to_number('42') + -1.5, d = uuid(), e = ulid()",
    "C" + "SET status = upper(status) REMOVE data ADD n 1 DELETE ss :ss_a",
]
lines = [l.rstrip("\n") for l in open(corpus, encoding="utf-8")]
for line in lines:
    if line.startswith("C "):
        extra += ["@" + line[2:], "A" + line[2:]]
    elif line.startswith("U "):
        extra += ["B" + line[2:], "C" + line[2:]]
for seed in extra:
    data = seed.encode()
    with open(os.path.join(seeds, hashlib.sha1(data).hexdigest()), "wb") as f:
        f.write(data)
PY

DICT="$OUT/expression.dict"
{
  for w in AND OR NOT BETWEEN IN SET REMOVE ADD DELETE attribute_exists attribute_not_exists \
           attribute_type begins_with contains size if_not_exists list_append lower upper trim concat \
           substr replace strip_prefix split_part to_string to_number now epoch_ms uuid ulid coalesce \
           '#nm' '#dash' ':s_a' ':n1' ':nbig' ':l_x' ':ss_a' ':ty_S' '<>' '<=' '>=' "''" '[0]' 'm.x' \
           data status; do
    printf '"%s"\n' "${w//\"/\\\"}"
  done
} >"$DICT"

echo "fuzz.sh: fuzzing for ${SECONDS_TO_RUN}s (corpus $OUT/corpus, findings in $OUT/findings)"
cd "$OUT"
ARGS=(-max_total_time="$SECONDS_TO_RUN" -max_len=4200 -timeout=10 -rss_limit_mb=2048
      -dict="$DICT" -artifact_prefix="$OUT/findings/" -print_final_stats=1)
if [[ -n "${FUZZ_JOBS:-}" ]]; then ARGS+=(-jobs="$FUZZ_JOBS" -workers="$FUZZ_JOBS"); fi
if "$BIN" "${ARGS[@]}" "$OUT/corpus" "$OUT/seeds"; then
  echo "fuzz.sh: no finding"
else
  echo "fuzz.sh: FINDING — reproduce with: $BIN $OUT/findings/<file>" >&2
  exit 1
fi
