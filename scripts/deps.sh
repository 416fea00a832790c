#!/usr/bin/env bash
# Install what leakscope needs to build, test and demo on Debian 12.
# Idempotent: checks each package first and calls apt only for what is missing.
set -euo pipefail

PKGS=(
  build-essential cmake pkg-config git
  libunwind-dev libdw-dev libelf-dev
  libcriterion-dev
  libcurl4-openssl-dev libhiredis-dev libmicrohttpd-dev libsqlite3-dev libxml2-dev libgumbo-dev
  libbpf-dev bpftool clang llvm
  redis-server nginx-light prometheus
  python3 python3-yaml python3-redis curl jq procps iproute2 sqlite3 strace valgrind heaptrack hyperfine
  nodejs util-linux bpftrace bpfcc-tools chromium tmux
)

missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi

echo "deps: installing ${missing[*]}" >&2
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
# Debian's nginx/redis/prometheus packages try to start services; we start our own.
if [ ! -e /usr/sbin/policy-rc.d ]; then
  printf '#!/bin/sh\nexit 101\n' | $SUDO tee /usr/sbin/policy-rc.d >/dev/null
  $SUDO chmod 755 /usr/sbin/policy-rc.d
  trap '$SUDO rm -f /usr/sbin/policy-rc.d' EXIT
fi
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
