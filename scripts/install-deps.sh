#!/usr/bin/env bash
# Installs every Debian package the build and the tests need. Idempotent: when
# everything is present it checks with dpkg-query and returns without touching apt.
set -euo pipefail

PKGS=(
  g++ cmake ninja-build pkg-config curl python3 make
  clang libclang-rt-14-dev
  libuv1-dev libprotobuf-dev protobuf-compiler
  libzookeeper-mt-dev zookeeper default-jre-headless
  librocksdb-dev prometheus-cpp-dev libcurl4-openssl-dev
  libgtest-dev libgmock-dev libbenchmark-dev
  liblz4-dev libzstd-dev libcli11-dev
  nats-server libnats-dev
)

missing=()
for p in "${PKGS[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi

echo "install-deps: installing ${missing[*]}"
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO=sudo; fi
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
