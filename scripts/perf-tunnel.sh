#!/usr/bin/env bash
# Tunnel throughput on one worker core against the reference, in the same
# run (rounds alternate):
#
#   scripts/perf-tunnel.sh [--rounds N] [--duration SECS] [--no-wggo]
#
#   crypto-perf  dpdk-test-crypto-perf, ChaCha20-Poly1305 encrypt on the
#                ipsec_mb PMD (--vdev crypto_chacha20_poly1305), throughput
#                test: the AEAD alone on buffers of the same payload size
#   encrypt      patronus-perf encrypt: inner frames from a net_pcap replay
#                are padded, sealed in place and routed out with outer
#                Ethernet/IPv4/UDP/WireGuard headers (net_null TX)
#   decrypt      patronus-perf decrypt: transport messages are opened in
#                place, checked against the allowed IPs, stripped, routed
#                (replays of the capture are decrypted and authenticated,
#                then refused by the replay window: the same crypto work)
# Sizes: inner IP packets of 1420 bytes (the tunnel MTU), 50 bytes (64-byte
# frames) and simple IMIX (7:4:1 of 50/562/1420). Gbit/s count inner IP
# bytes (payload bytes for crypto-perf). Then, unless --no-wggo, iperf3
# through two wireguard-go peers (TUN) in network namespaces on this
# machine, for comparison (needs root).
set -euo pipefail
rounds=3 duration=5 warmup=1 wggo=1
while [ $# -gt 0 ]; do
  case "$1" in
    --rounds) rounds=$2; shift 2 ;;
    --duration) duration=$2; shift 2 ;;
    --no-wggo) wggo=0; shift ;;
    -h|--help) sed -n '2,22p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "perf-tunnel: unknown option $1" >&2; exit 2 ;;
  esac
done
root=$(cd "$(dirname "$0")/.." && pwd)
cargo build --release -q -p patronus-perf --manifest-path "$root/Cargo.toml"
perf="$root/target/release/patronus-perf"
work=$(mktemp -d /tmp/perf-tunnel.XXXXXX)
cleanup() {
  ip netns del ptwg1 2>/dev/null || true
  ip netns del ptwg2 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

# name frame-size(or imix) crypto-perf-buffer(s) imix-weights
sizes=("1420 1434 1420 -" "50 64 64 -" "imix imix 64,576,1420 7,4,1")
for s in "${sizes[@]}"; do
  read -r name frame _ _ <<< "$s"
  if [ "$frame" = imix ]; then
    "$perf" gen-pcap --out "$work/p-$name.pcap" --count 1200 --imix
    "$perf" gen-pcap --out "$work/w-$name.pcap" --count 1200 --imix --wireguard
  else
    "$perf" gen-pcap --out "$work/p-$name.pcap" --count 1024 --size "$frame"
    "$perf" gen-pcap --out "$work/w-$name.pcap" --count 1024 --size "$frame" --wireguard
  fi
done
# Mean inner IP bytes per packet of each set (frames minus Ethernet).
mean_ip() { case "$1" in 1420) echo 1420 ;; 50) echo 50 ;; imix) echo "$(( (7 * 50 + 4 * 562 + 1420) / 12 ))" ;; esac; }

ours() { # mode name
  local log="$work/$1-$2.log" cap
  if [ "$1" = encrypt ]; then cap="$work/p-$2.pcap"; else cap="$work/w-$2.pcap"; fi
  "$perf" --forward-mode "$1" --vdev "net_pcap0,rx_pcap=$cap,infinite_rx=1" --vdev net_null0,no-rx=1 \
    --duration $((warmup + duration)) --warmup "$warmup" --stats-period 0 --file-prefix "pt$$" > "$log" 2>&1 ||
    { cat "$log" >&2; echo nan; return; }
  sed -n 's/^RESULT .* mpps=\([0-9.]*\) .*/\1/p' "$log"
}
reference() { # buffer-sizes imix-weights -> Mops (weighted mean over sizes for IMIX)
  local args=(--buffer-sz "$1")
  [ "$2" != - ] && args+=(--imix "$2")
  dpdk-test-crypto-perf -l 0,1 --no-huge -m 1024 --file-prefix "ptc$$" --vdev crypto_chacha20_poly1305 --log-level=warning -- \
    --ptest throughput --devtype crypto_chacha20_poly1305 --optype aead --aead-algo chacha20-poly1305 --aead-op encrypt \
    --aead-key-sz 32 --aead-iv-sz 12 --aead-aad-sz 0 --digest-sz 16 --total-ops 3000000 --burst-sz 32 "${args[@]}" --silent \
    > "$work/ref.log" 2>&1 || { cat "$work/ref.log" >&2; echo nan; return; }
  awk '$1 == 1 && NF >= 10 { mops = $8 } END { print mops }' "$work/ref.log"
}
median() { sort -g | awk '{ a[n++] = $1 } END { if (n == 0) print "nan"; else if (n % 2) print a[int(n/2)]; else printf "%.3f\n", (a[n/2-1] + a[n/2]) / 2 }'; }

echo "perf-tunnel: $rounds round(s) x ${duration}s, 1 worker core, $(date -u +%FT%TZ), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
for s in "${sizes[@]}"; do
  read -r name _ buf imix <<< "$s"
  : > "$work/ref-$name.txt"; : > "$work/enc-$name.txt"; : > "$work/dec-$name.txt"
  for _ in $(seq "$rounds"); do
    reference "$buf" "$imix" >> "$work/ref-$name.txt"
    ours encrypt "$name" >> "$work/enc-$name.txt"
    ours decrypt "$name" >> "$work/dec-$name.txt"
  done
done
printf '%-6s %-12s %8s %9s %8s   %s\n' size what Mpps Gbit/s vs_ref rounds_Mpps
for s in "${sizes[@]}"; do
  read -r name _ _ _ <<< "$s"
  bytes=$(mean_ip "$name")
  ref=$(median < "$work/ref-$name.txt")
  for what in ref enc dec; do
    m=$(median < "$work/$what-$name.txt")
    label=$(case $what in ref) echo crypto-perf ;; enc) echo encrypt ;; dec) echo decrypt ;; esac)
    printf '%-6s %-12s %8.3f %9.2f %8.3f   %s\n' "$name" "$label" "$m" "$(awk -v m="$m" -v b="$bytes" 'BEGIN { print m * b * 8 / 1000 }')" \
      "$(awk -v a="$m" -v b="$ref" 'BEGIN { print a / b }')" "$(tr '\n' ' ' < "$work/$what-$name.txt")"
  done
done
grep -h 'CPU cycles/packet' "$work/encrypt-1420.log" | sed 's/^ */encrypt 1420: /'
grep -h 'CPU cycles/packet' "$work/decrypt-1420.log" | sed 's/^ */decrypt 1420: /'

if [ "$wggo" = 1 ]; then
  if [ "$(id -u)" != 0 ] || ! command -v wireguard-go >/dev/null || ! command -v iperf3 >/dev/null; then
    echo "wireguard-go: SKIPPED (needs root, wireguard-go and iperf3)"
    exit 0
  fi
  for n in 1 2; do ip netns add ptwg$n; ip -n ptwg$n link set lo up; done
  ip link add ptwgv1 netns ptwg1 type veth peer name ptwgv2 netns ptwg2
  ip -n ptwg1 addr add 192.168.77.1/24 dev ptwgv1; ip -n ptwg1 link set ptwgv1 up
  ip -n ptwg2 addr add 192.168.77.2/24 dev ptwgv2; ip -n ptwg2 link set ptwgv2 up
  k1=$(wg genkey) k2=$(wg genkey)
  # Interface names are global to wireguard-go's control sockets: one each.
  for n in 1 2; do
    ip netns exec ptwg$n wireguard-go ptwg$n >/dev/null 2>&1
  done
  echo "$k1" > "$work/k1"; echo "$k2" > "$work/k2"; chmod 600 "$work/k1" "$work/k2"
  ip netns exec ptwg1 wg set ptwg1 private-key "$work/k1" listen-port 51820 peer "$(echo "$k2" | wg pubkey)" endpoint 192.168.77.2:51820 allowed-ips 10.77.0.2/32
  ip netns exec ptwg2 wg set ptwg2 private-key "$work/k2" listen-port 51820 peer "$(echo "$k1" | wg pubkey)" endpoint 192.168.77.1:51820 allowed-ips 10.77.0.1/32
  ip -n ptwg1 addr add 10.77.0.1/24 dev ptwg1; ip -n ptwg1 link set ptwg1 up
  ip -n ptwg2 addr add 10.77.0.2/24 dev ptwg2; ip -n ptwg2 link set ptwg2 up
  ip netns exec ptwg2 iperf3 -s -D -B 10.77.0.2
  sleep 0.5
  ip netns exec ptwg1 ping -c 3 -i 0.2 -q 10.77.0.2 >/dev/null
  g=$(ip netns exec ptwg1 iperf3 -c 10.77.0.2 -t "$duration" -J | python3 -c "import json,sys; print('%.2f' % (json.load(sys.stdin)['end']['sum_received']['bits_per_second'] / 1e9))")
  echo "wireguard-go (TUN, two peers in namespaces, iperf3 TCP, $duration s): $g Gbit/s of TCP payload, both peers' work on this machine's 2 cores"
  ip netns pids ptwg1 | xargs -r kill; ip netns pids ptwg2 | xargs -r kill
fi
