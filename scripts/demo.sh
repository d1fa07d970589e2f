#!/usr/bin/env bash
# The two-site demo: installs what Patronus needs, builds it, and runs two
# appliances joined by two WAN links (net_memif), with LAN traffic replayed
# from a mixed capture through DPI, policy, the WireGuard tunnel and QoS.
# A live table per application and per path, each site's dashboard, API
# and metrics on http://127.0.0.1:9181/ (site A) and :9182 (site B; the
# admin token is in the demo's directory), and a summary at the end. No NIC, no
# hugepages, no root (installing the Debian packages the first time needs
# sudo).
#
#   scripts/demo.sh [--duration SECS] [--pps N] [--loops N] [--dir DIR] [--summary-json FILE] [--no-live]
#
# `scripts/demo.py --help` explains every option.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -d "$HOME/.cargo/bin" ] && export PATH="$HOME/.cargo/bin:$PATH"
scripts/setup.sh --run
cargo build --release --locked -q -p patronus
exec python3 scripts/demo.py "$@"
