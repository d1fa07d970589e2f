#!/usr/bin/env bash
# Two Patronus sites on one machine, joined by two WAN links, in network
# namespaces (needs root; no NIC, no hugepages):
#
#   host A ─ appliance A ═╤═ link "mpls" (10.101/24 ⇄ 10.201/24) ═╤═ appliance B ─ host B
#   10.1.0.10   10.1.0.1  ╘═ link "inet" (10.102/24 ⇄ 10.202/24) ═╛  10.2.0.1   10.2.0.10
#                               (both through namespace ${LAB}-mid)
#
# Each appliance runs in its own namespace on net_af_packet ports, with
# one worker (LAB_WORKERS), adaptive polling and --no-huge, so both fit
# on 2 cores.
# Appliance A steers VoIP to "mpls" (lower latency, dearer) and bulk
# (iperf3, port 5201) to "inet" (cheaper, wider); see docs/PATHS.md.
#
#   scripts/lab.sh up          build if needed, create the lab, start both sites
#   scripts/lab.sh status      namespaces, appliances, paths as each site sees them
#   scripts/lab.sh down        stop the appliances, remove the namespaces
#   scripts/lab.sh cut LINK    cut a WAN link (mpls|inet) at site A's side
#   scripts/lab.sh restore LINK
#   scripts/lab.sh slow LINK RATE   shape LINK in the middle (tbf, e.g. 2mbit); RATE "off" removes it
#   scripts/lab.sh exec SITE CMD... run CMD in a namespace (ha, a, mid, b, hb)
#   scripts/lab.sh show SITE WHAT [--json]   `patronus show WHAT` on site a or b
#   scripts/lab.sh frr -c "show bfd peers"    vtysh on the lab's FRR (LAB_FRR=1)
#
# Environment: LAB (name prefix, default "pl"), LAB_DIR (configs, keys,
# logs; default /tmp/patronus-lab-$LAB), PATRONUS (the binary; default
# target/release/patronus, built when missing), PROBE_MS (SLA probe
# interval, default 100), HOLD_DOWN_S (failback hold-down, default 3),
# LAB_BFD=1 (a multihop BFD session per path between the appliances,
# gating the path), LAB_FRR=1 (FRR's bfdd runs in the middle namespace as
# the "mpls" next hop of both sites; each appliance runs a single-hop BFD
# session "mpls-gw" with it that gates its "mpls" path; needs `frr`),
# LAB_WORKERS=N (workers per appliance, default 1; beyond the CPUs they
# share them).
set -euo pipefail

LAB=${LAB:-pl}
LAB_DIR=${LAB_DIR:-/tmp/patronus-lab-$LAB}
PROBE_MS=${PROBE_MS:-100}
HOLD_DOWN_S=${HOLD_DOWN_S:-3}
LAB_BFD=${LAB_BFD:-0}
LAB_FRR=${LAB_FRR:-0}
LAB_WORKERS=${LAB_WORKERS:-1}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
PATRONUS=${PATRONUS:-$ROOT/target/release/patronus}

ns() { echo "$LAB-$1"; }
in_ns() { local n; n=$(ns "$1"); shift; ip netns exec "$n" "$@"; }

need_root() {
    if [ "$(id -u)" != 0 ]; then
        echo "lab.sh: needs root (network namespaces); run with sudo" >&2
        exit 1
    fi
}

# veth NAME_IN_NS1 NS1 NAME_IN_NS2 NS2
veth() {
    ip link add "$1" type veth peer name "$3"
    ip link set "$1" netns "$(ns "$2")"
    ip link set "$3" netns "$(ns "$4")"
    for end in "$1:$2" "$3:$4"; do
        local dev=${end%%:*} where=${end##*:}
        # Checksums and segmentation in software: frames cross the appliances as on the wire.
        in_ns "$where" ethtool -K "$dev" tx off rx off tso off gso off gro off >/dev/null 2>&1 || true
        in_ns "$where" ip link set "$dev" up
    done
}

# The sites' configs come from the one source the demo uses too.
site_config() { # SITE(a|b) PEER_PUBKEY
    local opts=()
    [ "$LAB_BFD" = 1 ] && opts+=(--bfd)
    [ "$LAB_FRR" = 1 ] && opts+=(--frr)
    python3 "$ROOT/scripts/twosite.py" lab --site "$1" --peer-key "$2" --lab "$LAB" --dir "$LAB_DIR" \
        --probe-ms "$PROBE_MS" --hold-down-s "$HOLD_DOWN_S" --workers "$LAB_WORKERS" "${opts[@]}"
}

# FRR's bfdd in the middle namespace, peering with both sites' mpls ports.
start_frr() {
    local d=$LAB_DIR/frr
    rm -rf "$d"
    mkdir -p "$d"
    chmod 777 "$d"
    cat > "$d/bfdd.conf" <<EOF
log file $d/bfdd.log debugging
log timestamp precision 6
debug bfd peer
bfd
 peer 10.101.0.1 local-address 10.101.0.254
  receive-interval 100
  transmit-interval 100
  detect-multiplier 3
 !
 peer 10.201.0.1 local-address 10.201.0.254
  receive-interval 100
  transmit-interval 100
  detect-multiplier 3
 !
!
EOF
    chmod 644 "$d/bfdd.conf"
    in_ns mid setsid /usr/lib/frr/bfdd -f "$d/bfdd.conf" -i "$d/bfdd.pid" --vty_socket "$d" --bfdctl "$d/bfdd.sock" \
        -u frr -g frr --log-level debug < /dev/null > "$d/stdout" 2>&1 &
    echo $! > "$LAB_DIR/frr.pid"
}

up() {
    need_root
    if [ ! -x "$PATRONUS" ]; then
        echo "lab.sh: building $PATRONUS" >&2
        (cd "$ROOT" && cargo build --release -p patronus >&2)
    fi
    down quiet
    mkdir -p "$LAB_DIR"
    for n in ha a mid b hb; do
        ip netns add "$(ns $n)"
        in_ns $n ip link set lo up
    done
    veth ha0 ha a-lan a
    veth a-w1 a m-a1 mid
    veth a-w2 a m-a2 mid
    veth b-w1 b m-b1 mid
    veth b-w2 b m-b2 mid
    veth b-lan b hb0 hb
    # The appliances' kernel side of their ports stays out of the way.
    for n in a b; do in_ns $n sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1; done
    in_ns ha ip addr add 10.1.0.10/24 dev ha0
    in_ns ha ip route add default via 10.1.0.1
    in_ns hb ip addr add 10.2.0.10/24 dev hb0
    in_ns hb ip route add default via 10.2.0.1
    in_ns mid sysctl -qw net.ipv4.ip_forward=1
    in_ns mid ip addr add 10.101.0.254/24 dev m-a1
    in_ns mid ip addr add 10.102.0.254/24 dev m-a2
    in_ns mid ip addr add 10.201.0.254/24 dev m-b1
    in_ns mid ip addr add 10.202.0.254/24 dev m-b2

    if [ "$LAB_FRR" = 1 ]; then
        [ -x /usr/lib/frr/bfdd ] || { echo "lab.sh: LAB_FRR=1 needs FRR (apt-get install frr)" >&2; exit 1; }
        start_frr
    fi
    (cd "$LAB_DIR" && umask 077 && "$PATRONUS" genkey > a.key && "$PATRONUS" genkey > b.key)
    # The dashboards' admin token (both sites take the same file).
    (cd "$LAB_DIR" && umask 077 && rm -f api-tokens && "$PATRONUS" api-token --name lab --role admin --file api-tokens > api-token 2>/dev/null)
    local pa pb
    pa=$("$PATRONUS" pubkey < "$LAB_DIR/a.key")
    pb=$("$PATRONUS" pubkey < "$LAB_DIR/b.key")
    site_config a "$pb" > "$LAB_DIR/a.toml"
    site_config b "$pa" > "$LAB_DIR/b.toml"
    for s in a b; do
        # In the site's namespace: its interfaces are checked too.
        if ! out=$(in_ns $s "$PATRONUS" check --config "$LAB_DIR/$s.toml" 2>&1); then
            echo "lab.sh: patronus check refused site $s's config:" >&2
            echo "$out" >&2
            exit 1
        fi
        in_ns $s setsid "$PATRONUS" run --config "$LAB_DIR/$s.toml" > "$LAB_DIR/$s.log" 2>&1 < /dev/null &
        echo $! > "$LAB_DIR/$s.pid"
    done
    # Up when host A reaches host B through the tunnel.
    for _ in $(seq 1 60); do
        if in_ns ha ping -c 1 -W 1 10.2.0.10 >/dev/null 2>&1; then
            echo "lab $LAB is up: host A 10.1.0.10 ($(ns ha)) reaches host B 10.2.0.10 ($(ns hb)) through the tunnel"
            echo "  configs, keys and logs: $LAB_DIR"
            echo "  dashboards: http://127.0.0.1:9100/ inside $(ns a) and $(ns b) (ip netns exec ... chromium); admin token in $LAB_DIR/api-token"
            echo "  scripts/lab.sh status | show a paths | cut mpls | restore mpls | down"
            return 0
        fi
        for s in a b; do
            if ! kill -0 "$(cat "$LAB_DIR/$s.pid")" 2>/dev/null; then
                echo "lab.sh: appliance $s exited:" >&2
                cat "$LAB_DIR/$s.log" >&2
                exit 1
            fi
        done
        sleep 0.5
    done
    echo "lab.sh: host A cannot reach host B after 30 s; logs in $LAB_DIR" >&2
    exit 1
}

down() {
    need_root
    for s in a b; do
        if [ -f "$LAB_DIR/$s.pid" ]; then
            kill -INT "$(cat "$LAB_DIR/$s.pid")" 2>/dev/null || true
        fi
    done
    for s in a b; do
        if [ -f "$LAB_DIR/$s.pid" ]; then
            local pid; pid=$(cat "$LAB_DIR/$s.pid")
            for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
            kill -9 "$pid" 2>/dev/null || true
            rm -f "$LAB_DIR/$s.pid"
        fi
    done
    if [ -f "$LAB_DIR/frr.pid" ]; then
        kill "$(cat "$LAB_DIR/frr.pid")" 2>/dev/null || true
        rm -f "$LAB_DIR/frr.pid"
    fi
    for n in ha a mid b hb; do
        local name; name=$(ns $n)
        if ip netns list | grep -qw "$name"; then
            for pid in $(ip netns pids "$name" 2>/dev/null); do kill -9 "$pid" 2>/dev/null || true; done
            ip netns del "$name"
        fi
    done
    [ "${1:-}" = quiet ] || echo "lab $LAB is down"
}

status() {
    for n in ha a mid b hb; do
        if ip netns list | grep -qw "$(ns $n)"; then echo "namespace $(ns $n): present"; else echo "namespace $(ns $n): absent"; fi
    done
    for s in a b; do
        if [ -f "$LAB_DIR/$s.pid" ] && kill -0 "$(cat "$LAB_DIR/$s.pid")" 2>/dev/null; then
            echo "appliance $s: running (pid $(cat "$LAB_DIR/$s.pid"))"
            "$PATRONUS" show paths --socket "$LAB_DIR/$s.sock" || true
        else
            echo "appliance $s: not running"
        fi
    done
    if [ -f "$LAB_DIR/frr.pid" ] && kill -0 "$(cat "$LAB_DIR/frr.pid")" 2>/dev/null; then
        echo "FRR bfdd in $(ns mid):"
        in_ns mid vtysh --vty_socket "$LAB_DIR/frr" -c "show bfd peers brief" || true
    fi
}

link_dev() {
    case "$1" in
        mpls) echo m-a1 ;;
        inet) echo m-a2 ;;
        *) echo "lab.sh: unknown link $1 (expected mpls or inet)" >&2; exit 2 ;;
    esac
}

case "${1:-}" in
    up) up ;;
    down) down ;;
    status) status ;;
    cut) need_root; in_ns mid ip link set "$(link_dev "${2:?LINK}")" down ;;
    restore) need_root; in_ns mid ip link set "$(link_dev "${2:?LINK}")" up ;;
    slow)
        need_root
        dev=$(link_dev "${2:?LINK}"); dev_b=${dev/m-a/m-b}
        for d in "$dev" "$dev_b"; do
            if [ "${3:?RATE}" = off ]; then
                in_ns mid tc qdisc del dev "$d" root 2>/dev/null || true
            else
                in_ns mid tc qdisc replace dev "$d" root tbf rate "$3" burst 4k latency 1s
            fi
        done
        ;;
    exec) need_root; site=${2:?SITE}; shift 2; in_ns "$site" "$@" ;;
    frr) need_root; shift; in_ns mid vtysh --vty_socket "$LAB_DIR/frr" "$@" ;;
    show) "$PATRONUS" show "${3:?WHAT}" "${@:4}" --socket "$LAB_DIR/${2:?SITE}.sock" ;;
    *)
        sed -n '2,32p' "$0" | sed 's/^# \{0,1\}//'
        [ "${1:-}" = -h ] || [ "${1:-}" = --help ] || exit 2
        ;;
esac
