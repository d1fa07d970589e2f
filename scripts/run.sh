#!/usr/bin/env bash
# Installs what Patronus needs, builds it, and runs the appliance.
#
#   scripts/run.sh [--config FILE] [--duration SECS]
#
# Without --config it runs conf/patronus.toml: a LAN and a WAN port on DPDK
# virtual devices (net_null), cross-connected, no NIC and no hugepages needed.
# Ctrl-C stops it cleanly and prints the final report.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -d "$HOME/.cargo/bin" ] && export PATH="$HOME/.cargo/bin:$PATH"
scripts/setup.sh --run
cargo build --release --locked -q -p patronus
config=conf/patronus.toml
args=()
while [ $# -gt 0 ]; do
  case "$1" in
    --config|-c) config=$2; shift 2 ;;
    *) args+=("$1"); shift ;;
  esac
done
exec target/release/patronus run --config "$config" "${args[@]}"
