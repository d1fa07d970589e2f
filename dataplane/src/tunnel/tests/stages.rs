//! The worker stages end to end on heap packets: a LAN frame at site A is
//! sealed by A's Encap and routed out of A's WAN port; B's Decap opens it
//! and B's router delivers it to B's LAN host. Then every hostile case is
//! a counted drop, handshakes are punted, and missing sessions ask for one.

use std::net::IpAddr;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

use super::*;
use crate::packet::{HeapPacket, HeapPool, Packet};
use crate::pipeline::{Meta, Stage, Verdict, TO_CONTROL};
use crate::rcu::Publisher;
use crate::router::fib::{Fib, Iface, RouteTarget, Routes, StaticRoute};
use crate::router::neighbor::{NeighborKey, NeighborTable};
use crate::router::Router;
use crate::tunnel::stage::{Decap, Encap, Tunnels};
use crate::wire::{vlan, EthernetAddress, Ipv4Address};
use crate::worker::Clock;

const A_LAN: EthernetAddress = EthernetAddress([2, 0xa, 0, 0, 0, 1]);
const A_WAN: EthernetAddress = EthernetAddress([2, 0xa, 0, 0, 0, 2]);
const B_LAN: EthernetAddress = EthernetAddress([2, 0xb, 0, 0, 0, 1]);
const B_WAN: EthernetAddress = EthernetAddress([2, 0xb, 0, 0, 0, 2]);
const HOST_A: EthernetAddress = EthernetAddress([2, 0xaa, 0, 0, 0, 5]);
const HOST_B: EthernetAddress = EthernetAddress([2, 0xbb, 0, 0, 0, 5]);

#[derive(Clone, Copy)]
struct FixedClock(u64);
impl Clock for FixedClock {
    fn now(&self) -> u64 {
        self.0
    }
}

fn v4(s: &str) -> Ipv4Address {
    s.parse::<std::net::Ipv4Addr>().unwrap().into()
}

fn iface(name: &str, port: u16, mac: EthernetAddress, a: &str, len: u8) -> Iface {
    Iface { name: name.into(), port, vlans: vlan::Stack::default(), mac, mtu: 1500, v4: vec![(v4(a), len)], v6: vec![] }
}

/// One site: LAN port 0, WAN port 1 on 192.0.2.0/24; its LAN host and the
/// other site's WAN address are resolved neighbours.
struct Site {
    stages: (Decap<FixedClock>, (Encap<FixedClock>, Router<FixedClock>)),
    tunnels: Publisher<Tunnels>,
    steering: Publisher<crate::path::Steering>,
    _fib: Publisher<Fib>,
}

fn site(
    lan: (&str, EthernetAddress),
    host: (&str, EthernetAddress),
    wan: (&str, EthernetAddress),
    far_wan: (&str, EthernetAddress),
    now: u64,
) -> Site {
    let routes = Arc::new(
        Routes::build(
            vec![iface("lan0", 0, lan.1, lan.0, 24), iface("wan0", 1, wan.1, wan.0, 24)],
            &[StaticRoute { prefix: "0.0.0.0".parse().unwrap(), len: 0, target: RouteTarget::Via(far_wan.0.parse().unwrap()) }],
        )
        .unwrap(),
    );
    let neighbors = NeighborTable::build([(NeighborKey::v4(0, v4(host.0)), host.1), (NeighborKey::v4(1, v4(far_wan.0)), far_wan.1)]);
    let fib = Publisher::new(Fib::new(routes, neighbors));
    let tunnels = Publisher::new(Tunnels::off());
    let steering = Publisher::new(crate::path::Steering::default());
    let c = FixedClock(now);
    let stages = (
        Decap::new(tunnels.reader(), fib.reader(), steering.reader(), c, false),
        (Encap::new(tunnels.reader(), fib.reader(), steering.reader(), c, 1_000_000_000), Router::new(fib.reader(), c, 1_000_000_000)),
    );
    Site { stages, tunnels, steering, _fib: fib }
}

impl Site {
    fn run(&mut self, port: u16, pkt: &mut HeapPacket) -> (Verdict, Meta) {
        Stage::<HeapPacket>::tick(&mut self.stages);
        let mut m = Meta::NEW;
        let v = self.stages.process(port, pkt, &mut m);
        (v, m)
    }
}

/// Nanoseconds as the workers' clock in these tests (1 GHz).
fn ticks(d: Duration) -> u64 {
    d.as_nanos() as u64
}

fn udp_ip(src: &str, dst: &str, ttl: u8, payload: &[u8]) -> Vec<u8> {
    let total = 28 + payload.len();
    let mut p = vec![0x45, 0, (total >> 8) as u8, total as u8, 0, 1, 0, 0, ttl, 17, 0, 0];
    p.extend(v4(src).0);
    p.extend(v4(dst).0);
    let c = crate::wire::checksum::finish(crate::wire::checksum::sum(&p));
    p[10..12].copy_from_slice(&c.to_be_bytes());
    p.extend_from_slice(&[0x13, 0x88, 0x13, 0x89, ((8 + payload.len()) >> 8) as u8, (8 + payload.len()) as u8, 0, 0]);
    p.extend_from_slice(payload);
    p
}

fn eth(dst: EthernetAddress, src: EthernetAddress, l3: &[u8]) -> Vec<u8> {
    [&dst.0[..], &src.0[..], &[0x08, 0x00], l3].concat()
}

struct World {
    a: Site,
    b: Site,
    da: Device,
    db: Device,
    pool: HeapPool,
    now: Duration,
}

const A_ALLOWED: &str = "10.1.0.0";
const B_ALLOWED: &str = "10.2.0.0";

impl World {
    fn new() -> World {
        let now = Duration::from_secs(100);
        let a = site(("10.1.0.1", A_LAN), ("10.1.0.5", HOST_A), ("192.0.2.1", A_WAN), ("192.0.2.2", B_WAN), ticks(now));
        let b = site(("10.2.0.1", B_LAN), ("10.2.0.5", HOST_B), ("192.0.2.2", B_WAN), ("192.0.2.1", A_WAN), ticks(now));
        let (a_sec, a_pub) = keypair(21);
        let (b_sec, b_pub) = keypair(22);
        let peer = |public, ep: &str| PeerConfig { public, psk: None, endpoint: Some(ep.parse().unwrap()), persistent_keepalive: None };
        let da = Device::new(a_sec, vec![peer(b_pub, "192.0.2.2:51820")], test_rng(21));
        let db = Device::new(b_sec, vec![peer(a_pub, "192.0.2.1:51820")], test_rng(22));
        let mut w = World { a, b, da, db, pool: HeapPool::new(), now };
        w.publish();
        w
    }

    fn publish(&mut self) {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        self.a.tunnels.publish(self.da.snapshot(51820, 1420, &[(ip(B_ALLOWED), 24, 0)], ticks));
        self.b.tunnels.publish(self.db.snapshot(51820, 1420, &[(ip(A_ALLOWED), 24, 0)], ticks));
    }

    fn handshake(&mut self) {
        let init = self.da.initiate(0, self.now, Duration::from_secs(1_700_000_000)).unwrap();
        let InitiationOutcome::Response { msg, .. } = self.db.handle_initiation(&init, addr("192.0.2.1:51820"), self.now).unwrap() else {
            panic!()
        };
        assert!(self.da.handle_response(&msg, addr("192.0.2.2:51820"), self.now).is_ok());
        self.publish();
    }

    /// A LAN frame from A's host to B's host, through A.
    fn send_from_host_a(&mut self, payload: &[u8]) -> (Verdict, Meta, HeapPacket) {
        let mut p = self.pool.packet(&eth(A_LAN, HOST_A, &udp_ip("10.1.0.5", "10.2.0.5", 64, payload)));
        let (v, m) = self.a.run(0, &mut p);
        (v, m, p)
    }
}

#[test]
fn a_packet_crosses_the_tunnel_through_both_pipelines() {
    let mut w = World::new();
    w.handshake();
    // B's session is confirmed by A's first packet, so start from A.
    for (i, size) in [1usize, 20, 100, 1000, 1392].into_iter().enumerate() {
        let payload: Vec<u8> = (0..size).map(|x| (x + i) as u8).collect();
        let inner = udp_ip("10.1.0.5", "10.2.0.5", 64, &payload);
        let (v, m, mut p) = w.send_from_host_a(&payload);
        assert_eq!(v, Verdict::Continue);
        assert_eq!(m.out_port(), 1, "out of A's WAN port");
        let d = p.data().to_vec();
        assert_eq!(&d[..12], &[B_WAN.0, A_WAN.0].concat()[..], "to B's WAN MAC");
        let padded = wg::padded_len(inner.len(), 1420);
        assert_eq!(d.len(), 14 + 20 + 8 + 16 + padded + 16, "outer headers, padding, tag");
        let ip = crate::wire::ipv4::Packet::new_checked(&d[14..]).unwrap();
        assert!(ip.verify_checksum());
        assert_eq!((ip.src_addr(), ip.dst_addr(), ip.protocol()), (v4("192.0.2.1"), v4("192.0.2.2"), 17));
        assert_eq!(&d[34..38], &[0xca, 0x6c, 0xca, 0x6c], "UDP 51820 -> 51820");
        assert_eq!(d[42], 4, "a transport message");
        assert_eq!(u64::from_le_bytes(d[50..58].try_into().unwrap()), i as u64, "counters in order");

        let (v, m) = w.b.run(1, &mut p);
        assert_eq!(v, Verdict::Continue, "{:?}", m.dropped());
        assert_eq!(m.out_port(), 0, "to B's LAN");
        let d = p.data();
        assert_eq!(&d[..12], &[HOST_B.0, B_LAN.0].concat()[..]);
        let mut expect = inner.clone();
        expect[8] -= 2; // A's and B's hop
        let c = crate::wire::checksum::finish(crate::wire::checksum::sum(&{
            let mut h = expect[..20].to_vec();
            h[10..12].fill(0);
            h
        }));
        expect[10..12].copy_from_slice(&c.to_be_bytes());
        assert_eq!(&d[14..], &expect[..], "the inner packet, unpadded, TTL down by two");
    }
    let live = &w.da.peers[0].live;
    assert_eq!(live.tx_packets.load(Relaxed), 5);
    assert_eq!(w.db.peers[0].live.rx_packets.load(Relaxed), 5);
    // And back from B now that its session is confirmed.
    let mut p = w.pool.packet(&eth(B_LAN, HOST_B, &udp_ip("10.2.0.5", "10.1.0.5", 64, b"reply")));
    let (v, m) = w.b.run(0, &mut p);
    assert_eq!((v, m.out_port()), (Verdict::Continue, 1));
    let (v, m) = w.a.run(1, &mut p);
    assert_eq!((v, m.out_port()), (Verdict::Continue, 0));
    assert_eq!(&p.data()[..6], &HOST_A.0);
}

/// `frame`'s Ethernet/IPv4/UDP headers around another WireGuard message,
/// lengths and checksum fixed.
fn reframe(frame: &[u8], msg: &[u8]) -> Vec<u8> {
    let mut f = frame[..42].to_vec();
    f.extend_from_slice(msg);
    f[16..18].copy_from_slice(&((20 + 8 + msg.len()) as u16).to_be_bytes());
    f[38..40].copy_from_slice(&((8 + msg.len()) as u16).to_be_bytes());
    f[24..26].fill(0);
    let c = crate::wire::checksum::finish(crate::wire::checksum::sum(&f[14..34]));
    f[24..26].copy_from_slice(&c.to_be_bytes());
    f
}

#[test]
fn hostile_packets_at_the_listen_port_are_counted_drops() {
    let mut w = World::new();
    // No session yet: dropped, and the workers ask for a handshake.
    let (v, _, _) = w.send_from_host_a(b"early");
    assert_eq!(v, Verdict::Drop(DropReason::TunnelNoSession));
    assert!(w.da.peers[0].live.want_handshake.load(Relaxed));
    w.handshake();
    let (_, _, sealed) = w.send_from_host_a(b"payload");
    let good = sealed.data().to_vec();
    let msg_at = 42;
    let b_run = |w: &mut World, frame: &[u8]| {
        let mut p = w.pool.packet(frame);
        w.b.run(1, &mut p).0
    };
    // Tampered ciphertext, tag, counter.
    for at in [msg_at + 20, good.len() - 1, msg_at + 8] {
        let mut f = good.clone();
        f[at] ^= 1;
        assert_eq!(b_run(&mut w, &f), Verdict::Drop(DropReason::TunnelBadMac), "byte {at}");
    }
    // Unknown index.
    let mut f = good.clone();
    f[msg_at + 5] ^= 0x80;
    assert_eq!(b_run(&mut w, &f), Verdict::Drop(DropReason::TunnelUnknownIndex));
    // The good one, then its replay.
    assert_eq!(b_run(&mut w, &good), Verdict::Continue);
    assert_eq!(b_run(&mut w, &good), Verdict::Drop(DropReason::TunnelReplay));
    // Too short for a transport message, unknown type.
    assert_eq!(b_run(&mut w, &reframe(&good, &good[msg_at..msg_at + 20])), Verdict::Drop(DropReason::TunnelMalformed));
    let mut f = good.clone();
    f[msg_at] = 9;
    assert_eq!(b_run(&mut w, &f), Verdict::Drop(DropReason::TunnelMalformed));
    // A handshake message goes to the control thread.
    let init = w.db.initiate(0, w.now, Duration::from_secs(1_700_000_100)).unwrap();
    let mut p = w.pool.packet(&reframe(&good, &init));
    let (v, m) = w.b.run(1, &mut p);
    assert_eq!((v, m.out_port()), (Verdict::Continue, TO_CONTROL));
    // A keepalive is consumed.
    let ka = w.da.keepalive(0, w.now).unwrap();
    assert_eq!(b_run(&mut w, &reframe(&good, &ka)), Verdict::Drop(DropReason::TunnelKeepalive));
    // Cryptokey routing: a packet from outside A's allowed IPs, properly sealed.
    let spoof = udp_ip("10.9.9.9", "10.2.0.5", 64, b"spoofed");
    let m = w.da.encapsulate(0, &spoof, w.now).unwrap();
    assert_eq!(b_run(&mut w, &reframe(&good, &m)), Verdict::Drop(DropReason::TunnelAllowedIps));
    // Too big for the tunnel MTU: without DF a drop; with DF an ICMP
    // "fragmentation needed" naming the tunnel MTU, back to the sender.
    let (v, _, _) = w.send_from_host_a(&vec![0u8; 1420]);
    assert_eq!(v, Verdict::Drop(DropReason::TunnelMtu));
    let mut big = udp_ip("10.1.0.5", "10.2.0.5", 64, &vec![0u8; 1420]);
    big[6] = 0x40;
    big[10..12].fill(0);
    let c = crate::wire::checksum::finish(crate::wire::checksum::sum(&big[..20]));
    big[10..12].copy_from_slice(&c.to_be_bytes());
    let mut p = w.pool.packet(&eth(A_LAN, HOST_A, &big));
    let (v, m) = w.a.run(0, &mut p);
    assert_eq!((v, m.out_port(), m.noted()), (Verdict::Continue, 0, Some(DropReason::TunnelMtu)));
    let d = p.data();
    assert_eq!(&d[..6], &HOST_A.0);
    assert_eq!((d[14 + 20], d[14 + 21]), (3, 4), "ICMP destination unreachable, fragmentation needed");
    assert_eq!(u16::from_be_bytes([d[14 + 26], d[14 + 27]]), 1420, "next-hop MTU: the tunnel's");
    // Traffic to other ports and addresses passes untouched to the router.
    let mut p = w.pool.packet(&eth(B_WAN, A_WAN, &udp_ip("192.0.2.1", "10.2.0.5", 64, b"not wireguard")));
    let (v, m) = w.b.run(1, &mut p);
    assert_eq!((v, m.out_port()), (Verdict::Continue, 0), "routed in clear");
}

/// The same crossing with IPv6 outer headers (endpoints on fd02::/64),
/// the UDP checksum IPv6 requires included.
#[test]
fn a_packet_crosses_over_ipv6_outer_headers() {
    use crate::wire::Ipv6Address;
    let v6 = |s: &str| -> Ipv6Address { s.parse::<std::net::Ipv6Addr>().unwrap().into() };
    let now = Duration::from_secs(100);
    let mk = |lan: (&str, EthernetAddress), host: (&str, EthernetAddress), wan: (&str, EthernetAddress), far: (&str, EthernetAddress)| {
        let mut l = iface("lan0", 0, lan.1, lan.0, 24);
        l.v6.clear();
        let w = Iface {
            name: "wan0".into(),
            port: 1,
            vlans: vlan::Stack::default(),
            mac: wan.1,
            mtu: 1500,
            v4: vec![],
            v6: vec![(v6(wan.0), 64)],
        };
        let routes = Arc::new(Routes::build(vec![l, w], &[]).unwrap());
        let neighbors = NeighborTable::build([(NeighborKey::v4(0, v4(host.0)), host.1), (NeighborKey::v6(1, v6(far.0)), far.1)]);
        let fib = Publisher::new(Fib::new(routes, neighbors));
        let tunnels = Publisher::new(Tunnels::off());
        let steering = Publisher::new(crate::path::Steering::default());
        let c = FixedClock(ticks(now));
        let stages = (
            Decap::new(tunnels.reader(), fib.reader(), steering.reader(), c, false),
            (Encap::new(tunnels.reader(), fib.reader(), steering.reader(), c, 1_000_000_000), Router::new(fib.reader(), c, 1_000_000_000)),
        );
        Site { stages, tunnels, steering, _fib: fib }
    };
    let mut a = mk(("10.1.0.1", A_LAN), ("10.1.0.5", HOST_A), ("fd02::1", A_WAN), ("fd02::2", B_WAN));
    let mut b = mk(("10.2.0.1", B_LAN), ("10.2.0.5", HOST_B), ("fd02::2", B_WAN), ("fd02::1", A_WAN));
    let (a_sec, a_pub) = keypair(31);
    let (b_sec, b_pub) = keypair(32);
    let peer = |public, ep: &str| PeerConfig { public, psk: None, endpoint: Some(ep.parse().unwrap()), persistent_keepalive: None };
    let mut da = Device::new(a_sec, vec![peer(b_pub, "[fd02::2]:51820")], test_rng(31));
    let mut db = Device::new(b_sec, vec![peer(a_pub, "[fd02::1]:51820")], test_rng(32));
    let init = da.initiate(0, now, Duration::from_secs(1_700_000_000)).unwrap();
    let InitiationOutcome::Response { msg, .. } = db.handle_initiation(&init, addr("[fd02::1]:51820"), now).unwrap() else { panic!() };
    da.handle_response(&msg, addr("[fd02::2]:51820"), now).unwrap();
    let ip = |s: &str| s.parse::<IpAddr>().unwrap();
    a.tunnels.publish(da.snapshot(51820, 1420, &[(ip(B_ALLOWED), 24, 0)], ticks));
    b.tunnels.publish(db.snapshot(51820, 1420, &[(ip(A_ALLOWED), 24, 0)], ticks));

    let pool = HeapPool::new();
    let inner = udp_ip("10.1.0.5", "10.2.0.5", 64, b"over six");
    let mut p = pool.packet(&eth(A_LAN, HOST_A, &inner));
    let (v, m) = a.run(0, &mut p);
    assert_eq!((v, m.out_port()), (Verdict::Continue, 1), "{:?}", m.dropped());
    let d = p.data().to_vec();
    assert_eq!(&d[12..14], &[0x86, 0xdd]);
    let ip6 = crate::wire::ipv6::Packet::new_checked(&d[14..]).unwrap();
    assert_eq!((ip6.src_addr(), ip6.dst_addr(), ip6.next_header()), (v6("fd02::1"), v6("fd02::2"), 17));
    let u = crate::wire::udp::Packet::new_checked(ip6.payload()).unwrap();
    let pseudo = crate::wire::checksum::pseudo_v6(v6("fd02::1"), v6("fd02::2"), 17, u.len() as u32);
    assert!(u.checksum() != 0 && u.verify_checksum(pseudo), "UDP over IPv6 carries a valid checksum");
    let (v, m) = b.run(1, &mut p);
    assert_eq!((v, m.out_port()), (Verdict::Continue, 0), "{:?}", m.dropped());
    assert_eq!(&p.data()[..6], &HOST_B.0);
    assert_eq!(&p.data()[14 + 28..], b"over six");
}

/// A UDP datagram from `src` to `dst` (both "addr:port") in a frame.
fn udp_frame(dst_mac: EthernetAddress, src_mac: EthernetAddress, src: &str, dst: &str, payload: &[u8]) -> Vec<u8> {
    let (src, dst): (std::net::SocketAddr, std::net::SocketAddr) = (src.parse().unwrap(), dst.parse().unwrap());
    let mut b = vec![0u8; 28 + payload.len()];
    b[28..].copy_from_slice(payload);
    assert!(crate::tunnel::stage::emit_ip_udp(src.ip(), src.port(), dst, &mut b));
    eth(dst_mac, src_mac, &b)
}

#[test]
fn rules_steer_packets_to_paths_and_probes_are_answered_in_place() {
    use crate::path::{probe, PathLive, PathOut, PeerPaths, Steering, DROP};
    let mut w = World::new();
    w.handshake();
    let (v, ..) = w.send_from_host_a(b"confirm");
    assert_eq!(v, Verdict::Continue);
    // A's paths to B: the endpoint it has, and one across the default route.
    let live = [Arc::new(PathLive::default()), Arc::new(PathLive::default())];
    let path = |ep: &str, l: &Arc<PathLive>| PathOut { endpoint: ep.parse().unwrap(), live: l.clone() };
    w.a.steering.publish(Steering {
        peers: vec![PeerPaths {
            paths: vec![path("192.0.2.2:51820", &live[0]), path("198.51.100.7:51820", &live[1])],
            choice: vec![1, 0, DROP],
            source_ports: 1,
        }],
    });
    let send = |w: &mut World, rule: u8| {
        let mut p = w.pool.packet(&eth(A_LAN, HOST_A, &udp_ip("10.1.0.5", "10.2.0.5", 64, b"steered")));
        Stage::<HeapPacket>::tick(&mut w.a.stages);
        let mut m = Meta::NEW;
        m.set_rule(rule);
        let v = w.a.stages.process(0, &mut p, &mut m);
        (v, m, p)
    };
    // The default rule takes path 1, rule 1 path 0, rule 2 is dropped.
    let (v, m, p) = send(&mut w, 0);
    assert_eq!((v, m.out_port()), (Verdict::Continue, 1));
    assert_eq!(&p.data()[30..34], &[198, 51, 100, 7], "outer destination: path 1's endpoint");
    let (v, _, p) = send(&mut w, 1);
    assert_eq!(v, Verdict::Continue);
    assert_eq!(&p.data()[30..34], &[192, 0, 2, 2]);
    assert_eq!(send(&mut w, 2).0, Verdict::Drop(DropReason::PathPolicyDrop));
    assert_eq!((live[0].tx_packets.load(Relaxed), live[1].tx_packets.load(Relaxed)), (1, 1));
    let bytes = p.data().len() as u64 - 42;
    assert_eq!(live[0].tx_bytes.load(Relaxed), bytes, "the WireGuard message's bytes");
    assert_eq!(&p.data()[34..36], &51820u16.to_be_bytes(), "one source port until the peer is known to be Patronus");

    // Known to be Patronus: each inner flow leaves from the source port that
    // lands it on its owner among the far end's workers: 8 ports among the
    // 32 that share all but the listen port's low 5 bits; B opens them all.
    w.a.steering.publish(Steering {
        peers: vec![PeerPaths {
            paths: vec![path("192.0.2.2:51820", &live[0]), path("198.51.100.7:51820", &live[1])],
            choice: vec![0],
            source_ports: 8,
        }],
    });
    let mut ports = std::collections::HashSet::new();
    for host in 1..=40u8 {
        let inner = udp_ip(&format!("10.1.0.{host}"), "10.2.0.5", 64, b"spread");
        let mut p = w.pool.packet(&eth(A_LAN, HOST_A, &inner));
        Stage::<HeapPacket>::tick(&mut w.a.stages);
        let mut m = Meta::NEW;
        assert_eq!(w.a.stages.process(0, &mut p, &mut m), Verdict::Continue);
        let d = p.data().to_vec();
        let sport = u16::from_be_bytes([d[34], d[35]]);
        assert!(sport ^ 51820 < 32, "{sport}");
        ports.insert(sport);
        let on_wire = crate::rss::frame_hash(&d).unwrap();
        let flow = crate::rss::frame_hash(&eth(A_LAN, HOST_A, &inner)).unwrap();
        assert_eq!(on_wire % 8, flow % 8, "the outer packet hashes with its inner flow");
        let mut p = w.pool.packet(&[&B_WAN.0[..], &A_WAN.0[..], &d[12..]].concat());
        let (v, m) = w.b.run(1, &mut p);
        assert!(v == Verdict::Continue && m.inner(), "B opens the packet from port {sport}: {v:?}");
    }
    assert!(ports.len() >= 6, "one peer spreads over the ports: {ports:?}");

    // B reflects A's probe: same path back, reply sealed with B's keys.
    w.b.steering.publish(Steering {
        peers: vec![PeerPaths {
            paths: vec![PathOut { endpoint: "192.0.2.1:51820".parse().unwrap(), live: live[0].clone() }],
            choice: vec![0],
            source_ports: 1,
        }],
    });
    let msg = w.da.encapsulate(0, &probe::request(1, 7, 1234), w.now).unwrap();
    let mut p = w.pool.packet(&udp_frame(B_WAN, A_WAN, "192.0.2.1:51820", "192.0.2.2:51820", &msg));
    let (v, m) = w.b.run(1, &mut p);
    assert_eq!((v, m.out_port()), (Verdict::Continue, 1), "{:?}", m.dropped());
    let d = p.data().to_vec();
    assert_eq!(&d[..12], &[A_WAN.0, B_WAN.0].concat()[..], "MACs swapped");
    assert_eq!(&d[26..34], &[192, 0, 2, 2, 192, 0, 2, 1], "addresses swapped");
    assert!(crate::wire::ipv4::Packet::new_checked(&d[14..]).unwrap().verify_checksum());
    assert_eq!(live[0].rx_packets.load(Relaxed), 1, "B counted the probe on the path it came by");
    let mut reply = d[42..].to_vec();
    let (_, n) = w.da.decapsulate(&mut reply, w.now).expect("A opens B's reply");
    assert_eq!(n, probe::LEN);
    let plain = &reply[16..16 + n];
    assert_eq!(plain[0], probe::REPLY);
    assert_eq!(&plain[4..16], &probe::request(1, 7, 1234)[4..16], "sequence and timestamp echoed");

    // The reply reaches A's worker: stamped and handed to the control thread.
    let msg = w.db.encapsulate(0, plain, w.now).unwrap();
    let mut p = w.pool.packet(&udp_frame(A_WAN, B_WAN, "192.0.2.2:51820", "192.0.2.1:51820", &msg));
    let (v, m) = w.a.run(1, &mut p);
    assert_eq!((v, m.out_port()), (Verdict::Continue, TO_CONTROL));
    let h = crate::router::punt::pop(&mut p).unwrap();
    assert_eq!(h.kind, crate::router::punt::Kind::Probe);
    let r = probe::parse_reply(&p.data()[h.l2_len as usize..]).unwrap();
    assert_eq!((r.path, r.peer, r.seq, r.sent, r.received), (1, 0, 7, 1234, ticks(w.now)));

    // A probe too short to be one is a counted drop, not a panic.
    let msg = w.da.encapsulate(0, &[probe::REQUEST; 16], w.now).unwrap();
    let mut p = w.pool.packet(&udp_frame(B_WAN, A_WAN, "192.0.2.1:51820", "192.0.2.2:51820", &msg));
    assert_eq!(w.b.run(1, &mut p).0, Verdict::Drop(DropReason::TunnelMalformed));

    // Wrapped in an ICMP echo request (A does not know B is Patronus yet):
    // B answers with a plain reply, 32 bytes of plaintext.
    use crate::wire::Ipv4Address;
    let req = probe::request(1, 8, 5678);
    let wrapped = probe::wrap(&req, Ipv4Address::new(10, 1, 0, 1), Ipv4Address::new(10, 2, 0, 1));
    let msg = w.da.encapsulate(0, &wrapped, w.now).unwrap();
    let mut p = w.pool.packet(&udp_frame(B_WAN, A_WAN, "192.0.2.1:51820", "192.0.2.2:51820", &msg));
    let (v, m) = w.b.run(1, &mut p);
    assert_eq!((v, m.out_port()), (Verdict::Continue, 1), "{:?}", m.dropped());
    let mut reply = p.data()[42..].to_vec();
    assert_eq!(reply.len(), wg::TRANSPORT_HEADER_LEN + probe::LEN + wg::TAG_LEN, "UDP payload: the plain reply only");
    let (_, n) = w.da.decapsulate(&mut reply, w.now).expect("A opens B's reply");
    let plain = reply[16..16 + n].to_vec();
    assert_eq!((n, plain[0], plain[probe::field::VIA_ICMP]), (probe::LEN, probe::REPLY, 0));
    assert_eq!(&plain[4..16], &req[4..16]);

    // A plain WireGuard host answers with an echo reply carrying the probe
    // back: A's worker unwraps it, marks it, stamps it and punts it.
    let mut echoed = wrapped;
    echoed[12..16].copy_from_slice(&[10, 2, 0, 1]);
    echoed[16..20].copy_from_slice(&[10, 1, 0, 1]);
    echoed[20] = crate::wire::icmpv4::msg::ECHO_REPLY;
    let msg = w.db.encapsulate(0, &echoed, w.now).unwrap();
    let mut p = w.pool.packet(&udp_frame(A_WAN, B_WAN, "192.0.2.2:51820", "192.0.2.1:51820", &msg));
    let (v, m) = w.a.run(1, &mut p);
    assert_eq!((v, m.out_port()), (Verdict::Continue, TO_CONTROL), "{:?}", m.dropped());
    let h = crate::router::punt::pop(&mut p).unwrap();
    assert_eq!(h.kind, crate::router::punt::Kind::Probe);
    let r = probe::parse_reply(&p.data()[h.l2_len as usize..]).unwrap();
    assert_eq!((r.path, r.peer, r.seq, r.sent, r.received, r.via_icmp), (1, 0, 8, 5678, ticks(w.now), true));
}
