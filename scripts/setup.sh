#!/usr/bin/env bash
# Install everything dynamorph needs on a Debian 12 machine. Idempotent; fast when all is there.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

PKGS=(build-essential cmake ninja-build pkg-config git curl zip unzip
      libcurl4-openssl-dev libssl-dev libsimdjson-dev libtbb-dev libfmt-dev libyaml-cpp-dev
      libcli11-dev libspdlog-dev libhowardhinnant-date-dev uuid-dev zlib1g-dev liblua5.4-dev
      libgtest-dev libgmock-dev libbenchmark-dev libmimalloc-dev clang libclang-rt-14-dev
      libcpp-httplib-dev default-jre-headless nodejs npm python3-boto3 python3-botocore
      python3-prometheus-client python3-yaml chromium)

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
"$ROOT/scripts/dynamodb-local.sh" install
"$ROOT/scripts/s3-server.sh" install
