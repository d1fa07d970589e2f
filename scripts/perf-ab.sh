#!/usr/bin/env bash
# Compares two builds of patronus-perf (the build before a change, A, and
# after it, B) mode by mode, alternating A and B round by round (and which
# goes first) on the same inputs, and prints each mode's cycles per packet: every round, the
# median, and B's median against A's.
#
#   scripts/perf-ab.sh A_PERF B_PERF [--rounds N] [--duration S] [--modes "io mac ..."]
#
#   git worktree add /tmp/before <rev> && (cd /tmp/before && cargo build --release -p patronus-perf)
#   scripts/perf-ab.sh /tmp/before/target/release/patronus-perf target/release/patronus-perf
#
# Inputs (generated once, by B, so both builds replay the same bytes):
#   io, mac        2 x net_null (testpmd's io/mac setup)
#   route, qos     net_pcap of 1024 60-byte UDP frames to mixed /16s -> net_null
#   dpi            net_pcap of the IPv4 packets of tests/captures/lab-traffic.pcap
#                  and ../shared/corpora/ndpi-dev (when present) -> net_null
#   encrypt        1434-byte frames (1420-byte inner IP packets) sealed for a peer
#   decrypt        the same, as WireGuard transport messages to open
#   appliance      B only when A lacks the mode: the dpi capture through the whole chain
# The figure is the worker's busy cycles per packet (lower is better); one
# worker core, 2 MiB hugepages when 512 are free (as root: reserved), else --no-huge.
set -euo pipefail

[ $# -ge 2 ] || { sed -n '2,22p' "$0" | sed 's/^# \{0,1\}//'; exit 2; }
a=$1 b=$2
shift 2
rounds=5 duration=5 modes="io mac route dpi encrypt decrypt qos"
while [ $# -gt 0 ]; do
  case "$1" in
    --rounds) rounds=$2; shift 2 ;;
    --duration) duration=$2; shift 2 ;;
    --modes) modes=$2; shift 2 ;;
    -h|--help) sed -n '2,22p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "perf-ab: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
done
for bin in "$a" "$b"; do
  [ -x "$bin" ] || { echo "perf-ab: $bin is not an executable patronus-perf" >&2; exit 2; }
done
root=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d /tmp/perf-ab.XXXXXX)
trap 'rm -rf "$work"' EXIT

hp_free() { awk '/HugePages_Free/ { print $2 }' /proc/meminfo; }
if [ "$(hp_free)" -lt 512 ] && [ "$(id -u)" = 0 ]; then
  echo $(( $(awk '/HugePages_Total/ { print $2 }' /proc/meminfo) + 512 )) > /sys/kernel/mm/hugepages/hugepages-2048kB/nr_hugepages || true
  mount | grep -q hugetlbfs || { mkdir -p /dev/hugepages && mount -t hugetlbfs nodev /dev/hugepages; } || true
fi
mem=(); [ "$(hp_free)" -ge 512 ] && mem=(--hugepages)

"$b" gen-pcap --out "$work/mixed64.pcap" --count 1024 --size 60 > /dev/null
"$b" gen-pcap --out "$work/plain.pcap" --count 1024 --size 1434 > /dev/null
"$b" gen-pcap --out "$work/sealed.pcap" --count 1024 --size 1434 --wireguard > /dev/null
corpus=("$root/tests/captures/lab-traffic.pcap")
for f in "$root"/../shared/corpora/ndpi-dev/*.pcap; do [ -f "$f" ] && corpus+=("$f"); done
"$b" gen-pcap --out "$work/mix.pcap" --from "${corpus[@]}" --copies 1 > /dev/null

args_for() { # mode
  local sink=net_null0,no-rx=1
  case "$1" in
    io|mac) echo "--vdev net_null0 --vdev net_null1" ;;
    route|qos) echo "--vdev net_pcap0,rx_pcap=$work/mixed64.pcap,infinite_rx=1 --vdev $sink" ;;
    dpi|appliance) echo "--vdev net_pcap0,rx_pcap=$work/mix.pcap,infinite_rx=1 --vdev $sink --mbufs 30000" ;;
    encrypt) echo "--vdev net_pcap0,rx_pcap=$work/plain.pcap,infinite_rx=1 --vdev $sink" ;;
    decrypt) echo "--vdev net_pcap0,rx_pcap=$work/sealed.pcap,infinite_rx=1 --vdev $sink" ;;
  esac
}
one() { # bin mode -> cycles per packet
  local log="$work/run.log"
  # shellcheck disable=SC2046
  if ! "$1" --forward-mode "$2" $(args_for "$2") "${mem[@]}" --duration $((duration + 1)) --warmup 1 \
      --stats-period 0 --file-prefix "pab$$" > "$log" 2>&1; then
    echo nan
    return
  fi
  sed -n 's/^RESULT .* cycles_per_packet=\([0-9.]*\).*/\1/p' "$log"
}
median() { sort -g | awk '{ v[n++] = $1 } END { if (n == 0) print "nan"; else if (n % 2) print v[int(n/2)]; else printf "%.2f\n", (v[n/2-1] + v[n/2]) / 2 }'; }

echo "perf-ab: $rounds rounds x ${duration} s per build and mode, alternating, $(date -u +%FT%TZ)"
echo "  A = $a"
echo "  B = $b"
echo "  $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), ${mem[*]:---no-huge}"
printf '%-10s %9s %9s %8s   %s\n' mode A_cpp B_cpp B/A "rounds (A | B)"
for m in $modes; do
  : > "$work/a"; : > "$work/b"
  for r in $(seq "$rounds"); do
    # Which build goes first alternates too, so neither always runs second.
    if [ $((r % 2)) = 1 ]; then
      one "$a" "$m" >> "$work/a"; one "$b" "$m" >> "$work/b"
    else
      one "$b" "$m" >> "$work/b"; one "$a" "$m" >> "$work/a"
    fi
  done
  ma=$(median < "$work/a"); mb=$(median < "$work/b")
  printf '%-10s %9s %9s %8s   %s| %s\n' "$m" "$ma" "$mb" "$(awk -v a="$ma" -v b="$mb" 'BEGIN { if (a > 0) printf "%.3f", b / a; else print "-" }')" \
    "$(tr '\n' ' ' < "$work/a")" "$(tr '\n' ' ' < "$work/b")"
done
