#!/usr/bin/env bash
# Fuzzes every parser (and the whole router stage) with cargo-fuzz.
#
#   scripts/fuzz.sh [SECONDS-PER-TARGET] [TARGET...]
#
# Default: 3 s per target (the short pass scripts/test.sh runs). For a real
# campaign: scripts/fuzz.sh 600   (corpora grow in dataplane/fuzz/corpus/).
# A crash stops the run with the failing input in dataplane/fuzz/artifacts/.
# cargo-fuzz is installed if missing; it needs unstable rustc flags, which
# RUSTC_BOOTSTRAP=1 enables on the stable toolchain.
set -euo pipefail
cd "$(dirname "$0")/../dataplane"
[ -d "$HOME/.cargo/bin" ] && export PATH="$HOME/.cargo/bin:$PATH"
secs=${1:-3}
shift || true
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked -q
export RUSTC_BOOTSTRAP=1
targets=("$@")
[ ${#targets[@]} -gt 0 ] || mapfile -t targets < <(cargo fuzz list)
cargo fuzz build -O 2>&1 | grep -E "^(error|warning)" || true
for t in "${targets[@]}"; do
  out=$(cargo fuzz run -O "$t" -- -max_total_time="$secs" 2>&1) || { echo "$out" | tail -40; echo "fuzz: $t FAILED" >&2; exit 1; }
  echo "fuzz: $t ok ($(echo "$out" | grep -o 'Done [0-9]* runs' | tail -1))"
done
