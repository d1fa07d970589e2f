#!/usr/bin/env bash
# Installs what Patronus needs to build, run and test on Debian 12:
# DPDK 22.11 (libraries, headers, testpmd), pkg-config and libclang for
# bindgen, and the tools the tests drive (Prometheus, ping, iperf3). Idempotent, and quick when everything is already there.
#
#   scripts/setup.sh            # build, run and test (scripts/test.sh)
#   scripts/setup.sh --run      # build and run only (demo.sh, run.sh, install.sh)
set -euo pipefail

# What building and running needs; the rest is for the tests.
run_packages=(
  libdpdk-dev dpdk             # DPDK 22.11 libraries and headers, dpdk-devbind.py
  pkg-config clang libclang-dev build-essential  # bindgen and the C shim
  libhyperscan-dev libipsec-mb-dev               # DPI patterns, the tunnel AEAD
  python3                      # scripts/demo.py
)

packages=(
  libdpdk-dev dpdk dpdk-dev   # DPDK 22.11: libraries and headers, dpdk-testpmd
  pkg-config clang libclang-dev # bindgen over the DPDK headers
  build-essential             # cc for the C shim
  iproute2 ethtool iputils-ping iperf3 curl busybox  # end-to-end tests in network namespaces
  nftables                    # loss injected with `numgen random` (no netem here)
  prometheus                  # promtool and a real server for the monitoring tests
  # DPI tests: real clients and servers in namespaces (scripts/lab-traffic.sh),
  # and nDPI's ndpiReader for the speed comparison. The server packages may
  # start their system services; the tests run their own instances.
  tcpdump openssl python3 dnsmasq bind9-dnsutils openssh-server openssh-client
  postgresql redis-server redis-tools mariadb-server mariadb-client
  ngtcp2-client ngtcp2-server sip-tester libndpi-bin
  libhyperscan-dev            # DPI payload patterns (Hyperscan)
  libipsec-mb-dev             # the tunnel AEAD (intel-ipsec-mb ChaCha20-Poly1305)
  wireguard-tools wireguard-go # wg and a userspace WireGuard peer for the interop tests
  frr                         # bfdd and vtysh: the BFD interop test (tests/paths.rs)
  systemd                     # systemd-analyze verify on the unit install.sh writes (tests/install.rs)
  chromium                    # the dashboard tests drive headless Chromium (tests/demo.rs, tests/paths.rs)
)

if [ "${1:-}" = --run ]; then
  packages=("${run_packages[@]}")
fi

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  sudo=""
  if [ "$(id -u)" != 0 ]; then
    command -v sudo >/dev/null || { echo "setup: need root (or sudo) to install: ${missing[*]}" >&2; exit 1; }
    sudo=sudo
  fi
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get install -y --no-install-recommends "${missing[@]}" ||
    { $sudo apt-get update && $sudo apt-get install -y --no-install-recommends "${missing[@]}"; }
fi

if ! command -v cargo >/dev/null; then
  [ -x "$HOME/.cargo/bin/cargo" ] || { echo "setup: no Rust toolchain: install rustup (https://rustup.rs) and rerun" >&2; exit 1; }
fi
pkg-config --atleast-version=22.11 libdpdk || { echo "setup: DPDK >= 22.11 not found by pkg-config" >&2; exit 1; }
