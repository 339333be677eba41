#!/usr/bin/env bash
# Install everything dynamorph needs on a Debian 12 machine. Idempotent; fast when all is there.
#
#   scripts/setup.sh               what building, testing and benchmarking need (developers, CI)
#   scripts/setup.sh --build-only  only what building the dynamorph binary needs: the packages
#                                  below less TEST_ONLY, and no DynamoDB Local, s3rver or npm
#                                  tools (the Dockerfile's build stage runs this)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BUILD_ONLY=0
case "${1:-}" in
  "") ;;
  --build-only) BUILD_ONLY=1 ;;
  *) echo "usage: scripts/setup.sh [--build-only]" >&2; exit 2 ;;
esac

PKGS=(build-essential cmake ninja-build pkg-config git curl zip unzip
      libcurl4-openssl-dev libssl-dev libsimdjson-dev libtbb-dev libfmt-dev libyaml-cpp-dev
      libcli11-dev libspdlog-dev libhowardhinnant-date-dev uuid-dev zlib1g-dev liblua5.4-dev
      libgtest-dev libgmock-dev libbenchmark-dev libmimalloc-dev clang libclang-rt-14-dev
      libcpp-httplib-dev help2man default-jre-headless nodejs npm python3-boto3 python3-botocore
      python3-prometheus-client python3-yaml chromium)
# What only the tests, benchmarks and fuzzing need; --build-only leaves these out.
TEST_ONLY=(curl zip unzip libgtest-dev libgmock-dev libbenchmark-dev clang libclang-rt-14-dev
           default-jre-headless nodejs npm python3-boto3 python3-botocore chromium python3-yaml
           python3-prometheus-client)
if ((BUILD_ONLY)); then
  tmp=()
  for p in "${PKGS[@]}"; do [[ " ${TEST_ONLY[*]} " == *" $p "* ]] || tmp+=("$p"); done
  PKGS=("${tmp[@]}")
fi

missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
# nodejs/npm may come from elsewhere than Debian: accept working commands.
if command -v node >/dev/null && command -v npm >/dev/null; then
  tmp=(); for p in "${missing[@]}"; do [[ "$p" == nodejs || "$p" == npm ]] || tmp+=("$p"); done
  missing=("${tmp[@]+"${tmp[@]}"}")
fi
if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]}" >&2
  SUDO=""; [[ $(id -u) -ne 0 ]] && SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi
((BUILD_ONLY)) && exit 0
"$ROOT/scripts/dynamodb-local.sh" install
"$ROOT/scripts/s3-server.sh" install
"$ROOT/scripts/dockerfile-lint.sh" install
