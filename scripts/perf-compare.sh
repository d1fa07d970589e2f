#!/usr/bin/env bash
# Runs dpdk-testpmd and patronus-perf in the same run, on the same virtual
# devices, alternating rounds, and prints each tool's median Mpps and the
# ratio patronus/testpmd.
#
#   scripts/perf-compare.sh [--duration SECS] [--warmup SECS] [--rounds N]
#                           [--cores N] [--setups "null pcap"] [--modes "io mac route"]
#                           [--hugepages auto|yes|no] [--min-ratio R]
#                           [--perf-args "ARGS"]
#
# Setups: null = two net_null ports; pcap = net_pcap (infinite_rx=1, a
# capture of 64-byte UDP frames to mixed destinations) feeding net_null.
# Modes io and mac compare with testpmd's mode of the same name; route
# (parse, LPM, neighbour rewrite, TTL and checksum; pcap setup only)
# compares with testpmd mac.
# Hugepages: with 4 KiB pages both tools spend much of their time in TLB
# misses and their figures swing with memory layout, so by default (auto)
# both run on 2 MiB hugepages, reserving 1 GiB of them first when run as
# root and none are free; "no" runs both with --no-huge.
# With --min-ratio the exit status is 1 if any ratio falls below it.
# --perf-args passes more options to patronus-perf, e.g. "--latency-sample 0"
# to measure without the latency sampling the appliance does by default.
set -euo pipefail

duration=8 warmup=2 rounds=3 cores=1 setups="null pcap" modes="io mac route" min_ratio="" huge=auto perf_args=""
while [ $# -gt 0 ]; do
  case "$1" in
    --duration) duration=$2; shift 2 ;;
    --warmup) warmup=$2; shift 2 ;;
    --rounds) rounds=$2; shift 2 ;;
    --cores) cores=$2; shift 2 ;;
    --setups) setups=$2; shift 2 ;;
    --modes) modes=$2; shift 2 ;;
    --min-ratio) min_ratio=$2; shift 2 ;;
    --hugepages) huge=$2; shift 2 ;;
    --perf-args) perf_args=$2; shift 2 ;;
    -h|--help) sed -n '2,22p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "perf-compare: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
done

root=$(cd "$(dirname "$0")/.." && pwd)
command -v dpdk-testpmd >/dev/null || { echo "perf-compare: dpdk-testpmd not found; run scripts/setup.sh" >&2; exit 1; }
cargo build --release -q -p patronus-perf --manifest-path "$root/Cargo.toml"
perf="$root/target/release/patronus-perf"
work=$(mktemp -d /tmp/perf-compare.XXXXXX)
trap 'rm -rf "$work"' EXIT
"$perf" gen-pcap --out "$work/mixed64.pcap" --count 1024 --size 60

lcores="0-$cores"

# 2 MiB hugepages: free ones are used; as root, 1 GiB is reserved if needed.
hp_free() { awk '/HugePages_Free/ { print $2 }' /proc/meminfo; }
if [ "$huge" = auto ] || [ "$huge" = yes ]; then
  if [ "$(hp_free)" -lt 512 ] && [ "$(id -u)" = 0 ]; then
    echo $(( $(awk '/HugePages_Total/ { print $2 }' /proc/meminfo) + 512 )) > /sys/kernel/mm/hugepages/hugepages-2048kB/nr_hugepages || true
    mount | grep -q hugetlbfs || { mkdir -p /dev/hugepages && mount -t hugetlbfs nodev /dev/hugepages; } || true
  fi
  if [ "$(hp_free)" -ge 512 ]; then huge=yes
  elif [ "$huge" = yes ]; then echo "perf-compare: need 512 free 2 MiB hugepages (run as root to reserve them)" >&2; exit 1
  else huge=no; fi
fi
if [ "$huge" = yes ]; then eal_mem=(-m 1024); perf_mem=(--hugepages); else eal_mem=(--no-huge -m 1024); perf_mem=(); fi
vdevs_for() {
  case "$1" in
    null) echo "net_null0 net_null1" ;;
    pcap) echo "net_pcap0,rx_pcap=$work/mixed64.pcap,infinite_rx=1 net_null0" ;;
    *) echo "perf-compare: unknown setup $1" >&2; exit 2 ;;
  esac
}

# testpmd: mean over the per-second blocks after the warm-up of the summed
# Rx-pps. It is stopped (SIGINT) once it has printed enough blocks, so its
# start-up time does not count, as it does not for patronus-perf.
run_testpmd() { # setup mode round
  local args=() v
  for v in $(vdevs_for "$1"); do args+=(--vdev "$v"); done
  local nports; nports=$(vdevs_for "$1" | wc -w)
  local need=$(( (warmup + duration + 1) * nports ))
  dpdk-testpmd "${eal_mem[@]}" -l "$lcores" --main-lcore 0 --no-pci \
    --file-prefix "pc$$-t$3" --log-level=warning --no-telemetry "${args[@]}" -- \
    --forward-mode="$2" --stats-period 1 --record-core-cycles --nb-cores="$cores" --rxq="$cores" --txq="$cores" \
    > "$work/tp.log" 2>&1 < /dev/null &
  local pid=$! waited=0
  while [ "$(grep -c 'Rx-pps' "$work/tp.log" || true)" -lt "$need" ] && kill -0 "$pid" 2>/dev/null; do
    sleep 0.2; waited=$((waited + 1))
    [ "$waited" -lt $(( (warmup + duration + 60) * 5 )) ] || break
  done
  kill -INT "$pid" 2>/dev/null || true
  wait "$pid" || true
  awk -v np="$nports" -v skip="$((warmup + 1))" '
    /Rx-pps:/ { v[n++] = $2 }
    /CPU cycles\/packet=/ { split($0, a, "="); split(a[2], b, " "); cpp = b[1] }
    END {
      blocks = int(n / np); s = 0; k = 0
      for (i = skip; i < blocks; i++) { t = 0; for (j = 0; j < np; j++) t += v[i*np + j]; s += t; k++ }
      if (k == 0) { print "nan nan"; exit }
      printf "%.3f %s\n", s / k / 1e6, (cpp == "" ? "nan" : cpp)
    }' "$work/tp.log"
}

run_patronus() { # setup mode round
  local args=() v
  for v in $(vdevs_for "$1"); do args+=(--vdev "$v"); done
  "$perf" "${args[@]}" "${perf_mem[@]}" --forward-mode "$2" --cores "$cores" --duration "$((warmup + duration))" --warmup "$warmup" \
    --stats-period 0 --file-prefix "pc$$-p$3" $perf_args > "$work/pp.log" 2>&1 || { cat "$work/pp.log" >&2; echo "nan nan"; return; }
  sed -n 's/^RESULT .*mpps=\([0-9.]*\) cycles_per_packet=\([0-9.]*\).*/\1 \2/p' "$work/pp.log"
}

median() { sort -g | awk '{ a[n++] = $1 } END { if (n == 0) print "nan"; else if (n % 2) print a[int(n/2)]; else printf "%.3f\n", (a[n/2-1] + a[n/2]) / 2 }'; }

echo "perf-compare: $rounds round(s) x ${duration}s (after ${warmup}s warm-up), $cores worker core(s), $(nproc) CPUs, hugepages $huge, $(date -u +%FT%TZ)"
echo "  testpmd:  dpdk-testpmd ${eal_mem[*]} -l $lcores --no-pci --vdev ... -- --forward-mode=MODE --stats-period 1 --record-core-cycles"
echo "  patronus: patronus-perf --vdev ... ${perf_mem[*]} --forward-mode MODE --cores $cores --duration $((warmup + duration)) --warmup $warmup $perf_args"
printf '%-6s %-8s %14s %14s %8s %12s %12s\n' setup mode testpmd_Mpps patronus_Mpps ratio testpmd_cpp patronus_cpp
echo "       (route is compared with testpmd mac)"
fail=0
for setup in $setups; do
  for mode in $modes; do
    ref=$mode
    if [ "$mode" = route ]; then
      [ "$setup" = pcap ] || continue # routing needs real frames
      ref=mac
    fi
    : > "$work/t.txt"; : > "$work/p.txt"
    for r in $(seq "$rounds"); do
      run_testpmd "$setup" "$ref" "$r" >> "$work/t.txt"
      run_patronus "$setup" "$mode" "$r" >> "$work/p.txt"
    done
    t=$(cut -d' ' -f1 "$work/t.txt" | median); p=$(cut -d' ' -f1 "$work/p.txt" | median)
    tc=$(cut -d' ' -f2 "$work/t.txt" | median); pc=$(cut -d' ' -f2 "$work/p.txt" | median)
    ratio=$(awk -v p="$p" -v t="$t" 'BEGIN { if (t > 0) printf "%.3f", p / t; else print "nan" }')
    printf '%-6s %-8s %14s %14s %8s %12s %12s\n' "$setup" "$mode" "$t" "$p" "$ratio" "$tc" "$pc"
    echo "         rounds: testpmd $(cut -d' ' -f1 "$work/t.txt" | tr '\n' ' ')| patronus $(cut -d' ' -f1 "$work/p.txt" | tr '\n' ' ')"
    if [ -n "$min_ratio" ] && awk -v r="$ratio" -v m="$min_ratio" 'BEGIN { exit !(r == "nan" || r < m) }'; then fail=1; fi
  done
done
[ "$fail" = 0 ] || { echo "perf-compare: a ratio is below $min_ratio"; exit 1; }
