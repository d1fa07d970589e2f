#!/usr/bin/env bash
# Real clients against real servers, between two network namespaces, while
# tcpdump records the server side: the captures DPI is tested on.
#
#   scripts/lab-traffic.sh --client NS --server NS --server-ip A.B.C.D \
#                          --alias-ip A.B.C.E --dev DEV --out FILE.pcap
#
# The server namespace must already reach the client namespace (directly or
# through an appliance). --alias-ip is added to DEV in the server namespace
# and is what the lab's DNS server answers for www.youtube.com, so a later
# connection to it carries no name of its own.
#
# Traffic, each from the Debian package named:
#   curl   HTTPS (openssl s_server) with SNI www.youtube.com, HTTP (python3
#          http.server) with Host www.netflix.com, and HTTPS by address only
#   dig    a query to dnsmasq for www.youtube.com
#   ssh    a connection to sshd (the banner exchange; login is refused)
#   psql   a query to PostgreSQL (trust auth)
#   redis-cli  PING to redis-server
#   mariadb    a query to mariadbd
#   gtlsclient QUIC v1 to gtlsserver (ngtcp2) with SNI www.youtube.com
#   sipp   a SIP call (uac -> uas) with SDP, and its RTP
# Each step that cannot run (package missing) is reported and skipped.
# Run as root. Exit status 0 when the capture was written.
set -uo pipefail

client="" server="" sip="" alias="" dev="" out=""
while [ $# -gt 0 ]; do
  case "$1" in
    --client) client=$2; shift 2 ;;
    --server) server=$2; shift 2 ;;
    --server-ip) sip=$2; shift 2 ;;
    --alias-ip) alias=$2; shift 2 ;;
    --dev) dev=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    -h|--help) sed -n '2,24p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "lab-traffic: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
done
[ -n "$client" ] && [ -n "$server" ] && [ -n "$sip" ] && [ -n "$alias" ] && [ -n "$dev" ] && [ -n "$out" ] ||
  { echo "lab-traffic: --client, --server, --server-ip, --alias-ip, --dev and --out are required" >&2; exit 2; }
[ "$(id -u)" = 0 ] || { echo "lab-traffic: needs root (network namespaces)" >&2; exit 77; }

work=$(mktemp -d /tmp/lab-traffic.XXXXXX)
chmod 755 "$work"
pids=()
C() { ip netns exec "$client" "$@"; }
S() { ip netns exec "$server" "$@"; }
bg_server() { ip netns exec "$server" "$@" >>"$work/servers.log" 2>&1 & pids+=($!); }
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
  sleep 0.3
  for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null; done
  S ip addr del "$alias/32" dev "$dev" 2>/dev/null
  rm -rf "$work" "/etc/netns/$client"
}
trap cleanup EXIT
have() { command -v "$1" >/dev/null 2>&1 || [ -x "$1" ]; }
t0=$(date +%s.%N)
step() { echo "lab-traffic: [$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')s] $*"; }
skip() { echo "lab-traffic: SKIPPED $*"; }

S ip addr add "$alias/32" dev "$dev"
# The client namespace's own /etc/hosts (ip netns exec binds it over
# /etc/hosts), for clients that take only a host name.
mkdir -p "/etc/netns/$client" && echo "$sip www.youtube.com" > "/etc/netns/$client/hosts"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout "$work/key.pem" -out "$work/cert.pem" \
  -days 2 -subj /CN=lab 2>/dev/null

# Servers.
bg_server openssl s_server -quiet -www -accept 443 -cert "$work/cert.pem" -key "$work/key.pem"
mkdir -p "$work/www" && echo hello > "$work/www/index.html"
bg_server python3 -m http.server 80 --bind 0.0.0.0 --directory "$work/www"
have dnsmasq && bg_server dnsmasq -k -p 53 --no-resolv --no-hosts --listen-address="$sip" --bind-interfaces \
  --address=/www.youtube.com/"$alias" --pid-file="$work/dnsmasq.pid"
if have /usr/sbin/sshd; then
  ssh-keygen -q -t ed25519 -N '' -f "$work/hostkey"
  mkdir -p /run/sshd
  bg_server /usr/sbin/sshd -D -e -p 22 -h "$work/hostkey" -o ListenAddress="$sip" -o PidFile="$work/sshd.pid"
fi
pgbin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | tail -1)
if [ -n "$pgbin" ]; then
  install -d -o postgres "$work/pg"
  su postgres -s /bin/sh -c "$pgbin/initdb -A trust -U postgres -D $work/pg/data" >/dev/null 2>&1
  ip netns exec "$server" su postgres -s /bin/sh -c "exec $pgbin/postgres -D $work/pg/data -k $work/pg -c listen_addresses=$sip -p 5432" \
    >>"$work/servers.log" 2>&1 & pids+=($!)
fi
have redis-server && bg_server redis-server --bind "$sip" --port 6379 --protected-mode no --save '' --appendonly no
if have mariadbd; then
  mariadb-install-db --no-defaults --datadir="$work/mdb" --user=root --auth-root-authentication-method=normal >/dev/null 2>&1
  bg_server mariadbd --no-defaults --datadir="$work/mdb" --socket="$work/mdb.sock" --bind-address="$sip" --port=3306 --user=root \
    --skip-grant-tables --pid-file="$work/mdb.pid"
fi
have gtlsserver && bg_server gtlsserver -q "$sip" 4433 "$work/key.pem" "$work/cert.pem"
have sipp && bg_server sipp -sn uas -i "$sip" -p 5060 -mi "$sip" -rtp_echo -nostdin -trace_err -error_file "$work/sipp-uas.err"
# Until every server listens (at most 10 s).
for _ in $(seq 50); do
  S ss -ltn | grep -q ":5432 " && S ss -ltn | grep -q ":3306 " && break
  sleep 0.2
done

ip netns exec "$server" tcpdump -Z root -U -n -s 0 -i "$dev" -w "$out" "not arp and not icmp6" 2>"$work/tcpdump.log" & tcpd=$!
pids+=($tcpd)
sleep 1

# Clients.
step "curl https://www.youtube.com/ (SNI) and http://www.netflix.com/ (Host)"
C curl -sk --max-time 5 --resolve "www.youtube.com:443:$sip" https://www.youtube.com/ -o /dev/null
C curl -s --max-time 5 --resolve "www.netflix.com:80:$sip" http://www.netflix.com/ -o /dev/null
if have dig && have dnsmasq; then
  step "dig www.youtube.com, then curl https://$alias/ (no name on the wire)"
  C dig +short +tries=1 +time=2 @"$sip" www.youtube.com A
  C curl -sk --max-time 5 "https://$alias/" -o /dev/null
else skip "dig/dnsmasq (bind9-dnsutils, dnsmasq)"; fi
if have ssh && have /usr/sbin/sshd; then
  step "ssh $sip"
  C ssh -o BatchMode=yes -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o ConnectTimeout=3 "nobody@$sip" true 2>/dev/null
else skip "ssh (openssh-server, openssh-client)"; fi
if have psql && [ -n "$pgbin" ]; then
  step "psql select 1"
  C psql -h "$sip" -U postgres -c 'select 1' >/dev/null 2>&1
else skip "psql (postgresql)"; fi
if have redis-cli && have redis-server; then
  step "redis-cli ping"
  C redis-cli -h "$sip" ping
else skip "redis-cli (redis-server, redis-tools)"; fi
if have mariadb && have mariadbd; then
  step "mariadb select 1"
  C mariadb --connect-timeout=3 -h "$sip" -u root -e 'select 1' >/dev/null 2>&1
else skip "mariadb (mariadb-server, mariadb-client)"; fi
if have gtlsclient && have gtlsserver; then
  step "QUIC v1 to www.youtube.com"
  C timeout 4 gtlsclient -q --exit-on-all-streams-close -v 0x00000001 www.youtube.com 4433 https://www.youtube.com/ >/dev/null 2>&1
else skip "QUIC (ngtcp2-client, ngtcp2-server)"; fi
if have sipp; then
  step "SIP call with RTP"
  # uac_pcap plays pcap/g711a.pcap and DTMF (shipped by sip-tester) as the
  # call's RTP.
  mkdir -p "$work/sipp" && ln -sfn /usr/share/sip-tester "$work/sipp/pcap"
  cip=$(C ip -4 -o addr show scope global | awk '{print $4}' | cut -d/ -f1 | head -1)
  (cd "$work/sipp" && C timeout 12 sipp -sn uac_pcap "$sip:5060" -i "$cip" -mi "$cip" -m 1 -nostdin >/dev/null 2>&1)
else skip "SIP (sip-tester)"; fi
sleep 1
kill -TERM "$tcpd" 2>/dev/null; wait "$tcpd" 2>/dev/null
[ -s "$out" ] || { echo "lab-traffic: no capture written: $(cat "$work/tcpdump.log")" >&2; exit 1; }
step "capture: $out ($(stat -c %s "$out") bytes)"
