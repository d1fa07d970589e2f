#!/usr/bin/env bash
# The data path with flow lookup and DPI against the route mode alone, on
# the same net_pcap infinite_rx replay of a mixed capture, in the same run
# (rounds alternate), and ndpiReader against `patronus classify` offline.
#
#   scripts/perf-dpi.sh [--rounds N] [--duration SECS] [--copies N] [--loops N] [CAPTURE...]
#
# The mixed capture: the IPv4 packets of the captures given (default: every
# capture in ../shared/corpora/ndpi-dev if present, and the project's own
# tests/captures/lab-traffic.pcap), re-framed for the route table and
# repeated --copies times (default 8) with different addresses
# (`patronus-perf gen-pcap --from`). Three data-path figures, routed Mpps
# (port 0 -> port 1):
#   route        the route mode
#   dpi          flow table + DPI + route, table large enough for every flow
#                (each flow is inspected on its first packets, then only
#                looked up: an appliance's steady state)
#   dpi-churn    the same with a 1024-flow table: every replay evicts and
#                re-creates every flow, so DPI runs on every flow's first
#                packets again (far more new flows per second than any site)
# Offline: `ndpiReader -i FILE` and `patronus classify FILE` on each capture,
# single core, packets/s from their own summaries.
set -euo pipefail
rounds=3 duration=6 warmup=2 copies=8 loops=50
while [ $# -gt 0 ]; do
  case "$1" in
    --rounds) rounds=$2; shift 2 ;;
    --duration) duration=$2; shift 2 ;;
    --copies) copies=$2; shift 2 ;;
    --loops) loops=$2; shift 2 ;;
    -h|--help) sed -n '2,22p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    -*) echo "perf-dpi: unknown option $1" >&2; exit 2 ;;
    *) break ;;
  esac
done
root=$(cd "$(dirname "$0")/.." && pwd)
inputs=("$@")
if [ ${#inputs[@]} -eq 0 ]; then
  corpus="$root/../shared/corpora/ndpi-dev"
  if [ -d "$corpus" ]; then
    for f in "$corpus"/*.pcap "$corpus"/*.pcapng; do inputs+=("$f"); done
  fi
  inputs+=("$root/tests/captures/lab-traffic.pcap")
fi
cargo build --release -q -p patronus-perf -p patronus --manifest-path "$root/Cargo.toml"
perf="$root/target/release/patronus-perf" pat="$root/target/release/patronus"
work=$(mktemp -d /tmp/perf-dpi.XXXXXX)
trap 'rm -rf "$work"' EXIT
"$perf" gen-pcap --out "$work/mix.pcap" --from "${inputs[@]}" --copies "$copies"
npk=$(python3 -c "import os,struct; d=open('$work/mix.pcap','rb').read(); o=24; n=0
while o < len(d): cl=struct.unpack('<I', d[o+8:o+12])[0]; o += 16 + cl; n += 1
print(n)")
mbufs=$(( npk + 16384 ))
run() { # name mode extra...
  local name=$1 mode=$2; shift 2
  "$perf" --forward-mode "$mode" --vdev "net_pcap0,rx_pcap=$work/mix.pcap,infinite_rx=1" --vdev net_null0 \
    --duration $((warmup + duration)) --warmup "$warmup" --stats-period 0 --mbufs "$mbufs" --file-prefix "pd$$" "$@" > "$work/$name.log" 2>&1 ||
    { cat "$work/$name.log" >&2; echo nan; return; }
  sed -n 's/^RESULT .*routed_mpps=\([0-9.]*\).*/\1/p' "$work/$name.log"
}
median() { sort -g | awk '{ a[n++] = $1 } END { if (n == 0) print "nan"; else if (n % 2) print a[int(n/2)]; else printf "%.3f\n", (a[n/2-1] + a[n/2]) / 2 }'; }
echo "perf-dpi: $rounds round(s) x ${duration}s, mixed capture of ${#inputs[@]} file(s) x $copies copies = $npk packets, $(date -u +%FT%TZ)"
: > "$work/route.txt"; : > "$work/dpi.txt"; : > "$work/churn.txt"
for r in $(seq "$rounds"); do
  run route route >> "$work/route.txt"
  run dpi dpi >> "$work/dpi.txt"
  run churn dpi --flows 1024 >> "$work/churn.txt"
done
grep '^  flows:' "$work/dpi.log" | sed 's/^/  dpi:       /'
grep '^  flows:' "$work/churn.log" | sed 's/^/  dpi-churn: /'
r=$(median < "$work/route.txt"); d=$(median < "$work/dpi.txt"); c=$(median < "$work/churn.txt")
printf '%-10s %12s %8s   rounds\n' mode routed_Mpps vs_route
printf '%-10s %12s %8s   %s\n' route "$r" 1.000 "$(tr '\n' ' ' < "$work/route.txt")"
printf '%-10s %12s %8s   %s\n' dpi "$d" "$(awk -v a="$d" -v b="$r" 'BEGIN { printf "%.3f", a / b }')" "$(tr '\n' ' ' < "$work/dpi.txt")"
printf '%-10s %12s %8s   %s\n' dpi-churn "$c" "$(awk -v a="$c" -v b="$r" 'BEGIN { printf "%.3f", a / b }')" "$(tr '\n' ' ' < "$work/churn.txt")"

# Offline: ndpiReader against patronus classify, capture by capture, both
# replaying the capture from memory $loops times (ndpiReader -l, classify
# --loops) on one core; ndpiReader's figure is the mean of its per-loop
# "nDPI throughput", ours packets x loops over processing time.
if command -v ndpiReader >/dev/null; then
  echo
  printf '%-28s %8s %14s %14s %8s\n' capture packets ndpi_pps patronus_pps ratio
  : > "$work/off.txt"
  for f in "${inputs[@]}"; do
    nd=$(taskset -c 1 ndpiReader -i "$f" -l "$loops" 2>/dev/null | awk '/nDPI throughput:/ { v = $3; if ($4 == "K") v *= 1e3; else if ($4 == "M") v *= 1e6; s += v; n++ } END { if (n) printf "%.0f", s / n; else print "nan" }')
    line=$(taskset -c 1 "$pat" classify --loops "$loops" "$f" | tail -1)
    pp=$(echo "$line" | sed -n 's/.*, \([0-9]*\) packets\/s$/\1/p')
    np=$(echo "$line" | sed -n 's/^summary: [0-9]* capture(s), \([0-9]*\) packets.*/\1/p')
    ratio=$(awk -v a="$pp" -v b="$nd" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "nan" }')
    echo "$ratio" >> "$work/off.txt"
    printf '%-28s %8s %14s %14s %8s\n' "$(basename "$f")" "$((np / loops))" "$nd" "$pp" "$ratio"
  done
  echo "offline ratio (patronus/ndpiReader): median $(median < "$work/off.txt"), min $(sort -g "$work/off.txt" | head -1)"
fi
