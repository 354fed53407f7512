#!/usr/bin/env bash
# Prepare this machine for building and running Rampart (Debian 12, as root):
#   1. install the missing apt packages (skips apt entirely when everything is there),
#   2. install a Rust toolchain with rustup when cargo is missing,
#   3. reserve 2 MB hugepages and mount hugetlbfs when the kernel lets us.
# Idempotent: safe to run before every `make` target. Never fails because of hugepages: the
# scripts fall back to --no-huge (see scripts/eal-mem.sh).
set -euo pipefail

PACKAGES=(
  build-essential pkg-config clang libclang-dev   # cc + bindgen
  libdpdk-dev dpdk-dev                           # DPDK 22.11 headers, libs, PMDs, dpdk-testpmd
  libpcap-dev                                    # net_pcap
  iproute2 ethtool iputils-ping procps kmod       # netns/veth tests and demo
  socat iperf3 tcpdump                           # traffic in tests and demo
  curl ca-certificates gawk coreutils
)

log() { echo "setup: $*"; }

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then SUDO="sudo"; else
    log "warning: not root and no sudo: cannot install packages or reserve hugepages"; fi
fi

# 1. apt packages
missing=()
for p in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done
if [ "${#missing[@]}" -gt 0 ]; then
  log "installing: ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
else
  log "apt packages: all present"
fi

# 2. Rust (Debian 12's rustc is too old for the dependencies; use rustup's stable)
if ! command -v cargo >/dev/null 2>&1; then
  if [ -x "$HOME/.cargo/bin/cargo" ]; then
    log "cargo found in ~/.cargo/bin (add it to PATH: . \"\$HOME/.cargo/env\")"
  else
    log "installing Rust (rustup, stable, minimal profile)"
    curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs | sh -s -- -y --profile minimal --component rustfmt,clippy
  fi
fi

# 3. hugepages: 512 x 2 MB when fewer are reserved, and hugetlbfs on /dev/hugepages
HP=/sys/kernel/mm/hugepages/hugepages-2048kB/nr_hugepages
WANT=${RAMPART_HUGEPAGES:-512}
if [ -w "$HP" ] || [ -n "$SUDO" ]; then
  have=$(cat "$HP" 2>/dev/null || echo 0)
  if [ "$have" -lt "$WANT" ]; then
    echo "$WANT" | $SUDO tee "$HP" >/dev/null 2>&1 || true
  fi
fi
if ! grep -q "^[^ ]* /dev/hugepages hugetlbfs" /proc/mounts; then
  $SUDO mkdir -p /dev/hugepages 2>/dev/null || true
  $SUDO mount -t hugetlbfs nodev /dev/hugepages 2>/dev/null || true
fi
free=$(awk '/^HugePages_Free:/ {print $2}' /proc/meminfo)
if [ "${free:-0}" -gt 0 ] && grep -q " hugetlbfs " /proc/mounts; then
  log "hugepages: ${free} x 2 MB free"
else
  log "hugepages: none available; DPDK will run with --no-huge (slower, fine for tests and demo)"
fi
