//! The router stage on heap packets: every decision, golden where the
//! output is a packet.

use std::cell::Cell;
use std::net::IpAddr;
use std::sync::Arc;

use super::fib::{Fib, Iface, RouteTarget, Routes, StaticRoute};
use super::neighbor::{NeighborKey, NeighborTable};
use super::*;
use crate::packet::{HeapPacket, HeapPool};
use crate::pipeline::{Meta, Stage, Verdict, NO_PORT, TO_CONTROL};
use crate::rcu::Publisher;
use crate::wire::{arp, checksum, icmpv4, icmpv6, ip_proto, ipv4, ipv6, udp, vlan, EtherType, EthernetAddress, Ipv4Address, Ipv6Address};

const LAN_MAC: EthernetAddress = EthernetAddress([2, 0, 0, 0, 0, 1]);
const WAN_MAC: EthernetAddress = EthernetAddress([2, 0, 0, 0, 0, 2]);
const HOST_A: EthernetAddress = EthernetAddress([2, 0xaa, 0, 0, 0, 1]);
const GW_MAC: EthernetAddress = EthernetAddress([2, 0xbb, 0, 0, 0, 1]);

fn v4(s: &str) -> Ipv4Address {
    s.parse::<std::net::Ipv4Addr>().unwrap().into()
}
fn v6(s: &str) -> Ipv6Address {
    s.parse::<std::net::Ipv6Addr>().unwrap().into()
}

/// A clock the test sets.
#[derive(Clone, Default)]
struct TestClock(std::rc::Rc<Cell<u64>>);
// The router only needs Send for workers; tests stay on one thread.
unsafe impl Send for TestClock {}
impl Clock for TestClock {
    fn now(&self) -> u64 {
        self.0.get()
    }
}

fn iface(name: &str, port: u16, mac: EthernetAddress, vlans: vlan::Stack, a4: &str, a6: &str, mtu: u16) -> Iface {
    let (a4, l4) = a4.split_once('/').unwrap();
    let (a6, l6) = a6.split_once('/').unwrap();
    Iface {
        name: name.into(),
        port,
        vlans,
        mac,
        mtu,
        v4: vec![(v4(a4), l4.parse().unwrap())],
        v6: vec![(Ipv6Address::link_local_from_mac(mac), 64), (v6(a6), l6.parse().unwrap())],
    }
}

/// lan0 (port 0) 10.1.0.1/24, fd01::1/64; lan0.100 (port 0, VLAN 100)
/// 10.100.0.1/24; wan0 (port 1, MTU 1400) 192.0.2.1/30, fd02::1/64;
/// default routes via 192.0.2.2 / fd02::2; 10.66/16 blackholed.
struct Rig {
    router: Router<TestClock>,
    publisher: Publisher<Fib>,
    routes: Arc<Routes>,
    clock: TestClock,
    pool: HeapPool,
}

impl Rig {
    fn new() -> Rig {
        let ifaces = vec![
            iface("lan0", 0, LAN_MAC, vlan::Stack::default(), "10.1.0.1/24", "fd01::1/64", 1500),
            iface("lan0.100", 0, LAN_MAC, vlan::Stack { outer: Some(100), inner: None }, "10.100.0.1/24", "fd64::1/64", 1500),
            iface("wan0", 1, WAN_MAC, vlan::Stack::default(), "192.0.2.1/30", "fd02::1/64", 1400),
        ];
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        let statics = [
            StaticRoute { prefix: ip("0.0.0.0"), len: 0, target: RouteTarget::Via(ip("192.0.2.2")) },
            StaticRoute { prefix: ip("::"), len: 0, target: RouteTarget::Via(ip("fd02::2")) },
            StaticRoute { prefix: ip("10.66.0.0"), len: 16, target: RouteTarget::Blackhole },
        ];
        let conf = RouterConf { icmp_rate: 10, icmp_burst: 2 };
        let routes = Arc::new(Routes::build(ifaces, &statics).unwrap().with_conf(conf));
        let neighbors = NeighborTable::build([
            (NeighborKey::v4(2, v4("192.0.2.2")), GW_MAC),
            (NeighborKey::v6(2, v6("fd02::2")), GW_MAC),
            (NeighborKey::v4(0, v4("10.1.0.2")), HOST_A),
        ]);
        let publisher = Publisher::new(Fib::new(routes.clone(), neighbors));
        let clock = TestClock::default();
        let router = Router::new(publisher.reader(), clock.clone(), 1000);
        Rig { router, publisher, routes, clock, pool: HeapPool::new() }
    }

    fn run(&mut self, port: u16, frame: &[u8]) -> (Verdict, Meta, HeapPacket) {
        let mut p = self.pool.packet(frame);
        let mut m = Meta::NEW;
        Stage::<HeapPacket>::tick(&mut self.router);
        let v = self.router.process(port, &mut p, &mut m);
        (v, m, p)
    }

    fn drop_reason(&mut self, port: u16, frame: &[u8]) -> Option<DropReason> {
        match self.run(port, frame).0 {
            Verdict::Drop(r) => Some(r),
            Verdict::Continue => None,
        }
    }
}

/// An Ethernet frame around an IP packet.
fn frame(dst: EthernetAddress, src: EthernetAddress, tags: &[u16], et: EtherType, l3: &[u8]) -> Vec<u8> {
    let mut f = Vec::new();
    f.extend(dst.0);
    f.extend(src.0);
    for t in tags {
        f.extend([0x81, 0x00]);
        f.extend(t.to_be_bytes());
    }
    f.extend(et.0.to_be_bytes());
    f.extend(l3);
    f
}

/// An IPv4 packet carrying `proto` and `payload`.
fn ipv4_packet(src: &str, dst: &str, ttl: u8, proto: u8, payload: &[u8], df: bool) -> Vec<u8> {
    let r = ipv4::Repr {
        src: v4(src),
        dst: v4(dst),
        protocol: proto,
        ttl,
        dscp: 0,
        ecn: 0,
        ident: 7,
        dont_frag: df,
        more_frags: false,
        frag_offset: 0,
        options: ipv4::Options::NONE,
        payload_len: payload.len(),
    };
    let mut b = vec![0u8; r.buffer_len()];
    b[20..].copy_from_slice(payload);
    r.emit(&mut ipv4::Packet::new_unchecked(&mut b[..]));
    b
}

fn udp_payload(n: usize) -> Vec<u8> {
    let r = udp::Repr { src_port: 5000, dst_port: 6000, payload_len: n };
    let mut b = vec![0x5a; r.buffer_len()];
    r.emit(&mut udp::Packet::new_unchecked(&mut b[..]), None);
    b
}

fn echo_v4(ident: u16) -> Vec<u8> {
    let r = icmpv4::Repr::EchoRequest { ident, seq_no: 1, data: b"patronus" };
    let mut b = vec![0u8; r.buffer_len()];
    r.emit(&mut icmpv4::Packet::new_unchecked(&mut b[..]));
    b
}

fn ipv6_packet(src: &str, dst: &str, hop: u8, nh: u8, payload: &[u8]) -> Vec<u8> {
    let r = ipv6::Repr {
        src: v6(src),
        dst: v6(dst),
        next_header: nh,
        hop_limit: hop,
        traffic_class: 0,
        flow_label: 0,
        payload_len: payload.len(),
    };
    let mut b = vec![0u8; r.buffer_len()];
    b[40..].copy_from_slice(payload);
    r.emit(&mut ipv6::Packet::new_unchecked(&mut b[..]));
    b
}

fn icmpv6_bytes(src: &str, dst: &str, r: icmpv6::Repr) -> Vec<u8> {
    let mut b = vec![0u8; r.buffer_len()];
    r.emit(v6(src), v6(dst), &mut icmpv6::Packet::new_unchecked(&mut b[..]));
    b
}

#[test]
fn forwards_ipv4_to_a_resolved_gateway() {
    let mut rig = Rig::new();
    let ip = ipv4_packet("10.1.0.2", "8.8.8.8", 64, ip_proto::UDP, &udp_payload(10), false);
    let (v, m, p) = rig.run(0, &frame(LAN_MAC, HOST_A, &[], EtherType::IPV4, &ip));
    assert_eq!(v, Verdict::Continue);
    assert_eq!(m.out_port(), 1);
    let mut want_ip = ip.clone();
    want_ip[8] = 63;
    ipv4::Packet::new_unchecked(&mut want_ip[..]).fill_checksum();
    assert_eq!(p.data(), &frame(GW_MAC, WAN_MAC, &[], EtherType::IPV4, &want_ip)[..], "TTL 63, checksum fixed, MACs rewritten");
}

#[test]
fn forwards_between_vlan_and_untagged_interfaces() {
    let mut rig = Rig::new();
    // From VLAN 100 (18-byte L2) to untagged wan0 (14-byte L2): the header shrinks.
    let ip = ipv4_packet("10.100.0.9", "1.1.1.1", 9, ip_proto::UDP, &udp_payload(4), false);
    let (v, m, p) = rig.run(0, &frame(LAN_MAC, HOST_A, &[100], EtherType::IPV4, &ip));
    assert_eq!((v, m.out_port()), (Verdict::Continue, 1));
    assert_eq!(&p.data()[..14], &frame(GW_MAC, WAN_MAC, &[], EtherType::IPV4, &[])[..]);
    assert_eq!(p.data()[14 + 8], 8, "TTL decremented");
    // Back the other way to a host on VLAN 100 whose address is unknown: it
    // grows a tag and is punted for resolution, ready but for the MAC.
    let ip = ipv4_packet("1.1.1.1", "10.100.0.9", 9, ip_proto::UDP, &udp_payload(4), false);
    let (v, m, mut p) = rig.run(1, &frame(WAN_MAC, GW_MAC, &[], EtherType::IPV4, &ip));
    assert_eq!((v, m.out_port()), (Verdict::Continue, TO_CONTROL));
    let h = punt::pop(&mut p).unwrap();
    assert_eq!(
        h,
        punt::Header { kind: punt::Kind::Resolve, in_port: 1, iface: 1, l2_len: 18, neighbor: NeighborKey::v4(1, v4("10.100.0.9")).ip }
    );
    assert_eq!(&p.data()[..18], &frame(EthernetAddress::default(), LAN_MAC, &[100], EtherType::IPV4, &[])[..]);
    assert_eq!(p.data()[18 + 8], 8);
}

#[test]
fn adopts_new_neighbours_at_the_next_tick() {
    let mut rig = Rig::new();
    let ip = ipv4_packet("8.8.8.8", "10.1.0.3", 64, ip_proto::UDP, &udp_payload(1), false);
    let f = frame(WAN_MAC, GW_MAC, &[], EtherType::IPV4, &ip);
    assert_eq!(rig.run(1, &f).1.out_port(), TO_CONTROL);
    let host3 = EthernetAddress([2, 0xaa, 0, 0, 0, 3]);
    let table = NeighborTable::build([(NeighborKey::v4(0, v4("10.1.0.3")), host3)]);
    rig.publisher.publish(Fib::new(rig.routes.clone(), table));
    let (v, m, p) = rig.run(1, &f);
    assert_eq!((v, m.out_port()), (Verdict::Continue, 0));
    assert_eq!(&p.data()[..6], &host3.0);
}

#[test]
fn answers_ping_on_its_own_addresses() {
    let mut rig = Rig::new();
    let ip = ipv4_packet("10.1.0.2", "10.1.0.1", 64, ip_proto::ICMP, &echo_v4(0x4242), false);
    let (v, m, p) = rig.run(0, &frame(LAN_MAC, HOST_A, &[], EtherType::IPV4, &ip));
    assert_eq!((v, m.out_port()), (Verdict::Continue, 0));
    let want_icmp = {
        let r = icmpv4::Repr::EchoReply { ident: 0x4242, seq_no: 1, data: b"patronus" };
        let mut b = vec![0u8; r.buffer_len()];
        r.emit(&mut icmpv4::Packet::new_unchecked(&mut b[..]));
        b
    };
    let want = frame(HOST_A, LAN_MAC, &[], EtherType::IPV4, &ipv4_packet("10.1.0.1", "10.1.0.2", 64, ip_proto::ICMP, &want_icmp, false));
    assert_eq!(p.data(), &want[..]);

    // IPv6, to the global and to the link-local address.
    for (src, dst) in [("fd01::2", "fd01::1"), ("fe80::2", &Ipv6Address::link_local_from_mac(LAN_MAC).to_string()[..])] {
        let req = icmpv6_bytes(src, dst, icmpv6::Repr::EchoRequest { ident: 9, seq_no: 3, data: b"hi" });
        let (v, m, p) = rig.run(0, &frame(LAN_MAC, HOST_A, &[], EtherType::IPV6, &ipv6_packet(src, dst, 64, ip_proto::ICMPV6, &req)));
        assert_eq!((v, m.out_port()), (Verdict::Continue, 0), "{dst}");
        let rep = icmpv6_bytes(dst, src, icmpv6::Repr::EchoReply { ident: 9, seq_no: 3, data: b"hi" });
        assert_eq!(p.data(), &frame(HOST_A, LAN_MAC, &[], EtherType::IPV6, &ipv6_packet(dst, src, 64, ip_proto::ICMPV6, &rep))[..]);
    }
}

#[test]
fn ttl_expiry_becomes_an_icmp_time_exceeded() {
    let mut rig = Rig::new();
    let ip = ipv4_packet("10.1.0.2", "8.8.8.8", 1, ip_proto::UDP, &udp_payload(22), false);
    let (v, m, p) = rig.run(0, &frame(LAN_MAC, HOST_A, &[], EtherType::IPV4, &ip));
    assert_eq!((v, m.out_port(), m.noted()), (Verdict::Continue, 0, Some(DropReason::TtlExpired)));
    let quote = &ip[..28]; // IP header + 8 bytes
    let icmp = {
        let r = icmpv4::Repr::TimeExceeded { code: 0, original: quote };
        let mut b = vec![0u8; r.buffer_len()];
        r.emit(&mut icmpv4::Packet::new_unchecked(&mut b[..]));
        b
    };
    let mut want_ip = ipv4_packet("10.1.0.1", "10.1.0.2", 64, ip_proto::ICMP, &icmp, false);
    want_ip[1] = 0xc0; // DSCP CS6
    ipv4::Packet::new_unchecked(&mut want_ip[..]).set_ident(0);
    ipv4::Packet::new_unchecked(&mut want_ip[..]).fill_checksum();
    assert_eq!(p.data(), &frame(HOST_A, LAN_MAC, &[], EtherType::IPV4, &want_ip)[..]);

    // IPv6 hop limit 1: time exceeded quoting the whole (small) packet.
    let ip6 = ipv6_packet("fd01::2", "2001:db8::1", 1, ip_proto::UDP, &udp_payload(3));
    let (v, m, p) = rig.run(0, &frame(LAN_MAC, HOST_A, &[], EtherType::IPV6, &ip6));
    assert_eq!((v, m.noted()), (Verdict::Continue, Some(DropReason::TtlExpired)));
    let got = ipv6::Packet::new_checked(&p.data()[14..]).unwrap();
    assert_eq!((got.src_addr(), got.dst_addr(), got.next_header()), (v6("fd01::1"), v6("fd01::2"), ip_proto::ICMPV6));
    let msg = icmpv6::Packet::new_checked(got.payload()).unwrap();
    assert_eq!(icmpv6::Repr::parse(got.src_addr(), got.dst_addr(), &msg).unwrap(), icmpv6::Repr::TimeExceeded { code: 0, original: &ip6 });
}

#[test]
fn icmp_errors_are_rate_limited_and_never_about_errors() {
    let mut rig = Rig::new();
    let ttl1 = frame(LAN_MAC, HOST_A, &[], EtherType::IPV4, &ipv4_packet("10.1.0.2", "8.8.8.8", 1, ip_proto::UDP, &udp_payload(1), false));
    let noted = |r: &mut Rig| r.run(0, &ttl1).1.noted().is_some();
    assert!(noted(&mut rig) && noted(&mut rig), "burst of 2");
    assert_eq!(rig.drop_reason(0, &ttl1), Some(DropReason::TtlExpired), "over the limit: plain drop");
    rig.clock.0.set(100); // 10 per second at 1000 Hz: one token per 100 ticks
    assert!(noted(&mut rig));
    assert!(!noted(&mut rig));
    // An ICMP error with TTL 1 gets no error back.
    rig.clock.0.set(10_000);
    let err = {
        let r = icmpv4::Repr::DstUnreachable { code: 1, next_hop_mtu: 0, original: &[0u8; 28] };
        let mut b = vec![0u8; r.buffer_len()];
        r.emit(&mut icmpv4::Packet::new_unchecked(&mut b[..]));
        b
    };
    let f = frame(LAN_MAC, HOST_A, &[], EtherType::IPV4, &ipv4_packet("10.1.0.2", "8.8.8.8", 1, ip_proto::ICMP, &err, false));
    assert_eq!(rig.drop_reason(0, &f), Some(DropReason::TtlExpired));
}

#[test]
fn mtu_is_enforced_without_fragmenting() {
    let mut rig = Rig::new();
    let big = udp_payload(1400); // 1428-byte IP packet > wan0 MTU 1400
    let df = frame(LAN_MAC, HOST_A, &[], EtherType::IPV4, &ipv4_packet("10.1.0.2", "8.8.8.8", 64, ip_proto::UDP, &big, true));
    let (v, m, p) = rig.run(0, &df);
    assert_eq!((v, m.noted()), (Verdict::Continue, Some(DropReason::MtuExceeded)));
    let icmp = icmpv4::Packet::new_checked(&p.data()[34..]).unwrap();
    assert_eq!((icmp.msg_type(), icmp.msg_code(), icmp.next_hop_mtu()), (3, 4, 1400));
    let no_df = frame(LAN_MAC, HOST_A, &[], EtherType::IPV4, &ipv4_packet("10.1.0.2", "8.8.8.8", 64, ip_proto::UDP, &big, false));
    assert_eq!(rig.drop_reason(0, &no_df), Some(DropReason::MtuExceeded));
    let v6big = frame(LAN_MAC, HOST_A, &[], EtherType::IPV6, &ipv6_packet("fd01::2", "2001:db8::1", 64, ip_proto::UDP, &big));
    let (_, m, p) = rig.run(0, &v6big);
    assert_eq!(m.noted(), Some(DropReason::MtuExceeded));
    let got = ipv6::Packet::new_checked(&p.data()[14..]).unwrap();
    assert!(got.payload_len() as usize + 40 <= 1280, "ICMPv6 errors fit the minimum MTU");
    assert_eq!(&got.payload()[..8], &{
        let mut b = [2u8, 0, 0, 0, 0, 0, 0x05, 0x78];
        b[2..4].copy_from_slice(&got.payload()[2..4]); // checksum
        b
    });
}

#[test]
fn arp_and_nd_go_to_the_control_thread() {
    let mut rig = Rig::new();
    let mut a = [0u8; 28];
    arp::Repr {
        operation: arp::Operation::Request,
        source_hardware_addr: HOST_A,
        source_protocol_addr: v4("10.1.0.2"),
        target_hardware_addr: EthernetAddress::default(),
        target_protocol_addr: v4("10.1.0.1"),
    }
    .emit(&mut arp::Packet::new_unchecked(&mut a[..]));
    let (v, m, mut p) = rig.run(0, &frame(EthernetAddress::BROADCAST, HOST_A, &[100], EtherType::ARP, &a));
    assert_eq!((v, m.out_port()), (Verdict::Continue, TO_CONTROL));
    let h = punt::pop(&mut p).unwrap();
    assert_eq!((h.kind, h.in_port, h.iface, h.l2_len), (punt::Kind::Arp, 0, 1, 18));
    assert_eq!(&p.data()[18..], &a);

    let ns =
        icmpv6_bytes("fe80::2", "ff02::1:ff00:1", icmpv6::Repr::NeighborSolicit { target: v6("fd01::1"), source_lladdr: Some(HOST_A) });
    let f = |hop| {
        frame(
            EthernetAddress::ipv6_multicast(&v6("ff02::1:ff00:1").0),
            HOST_A,
            &[],
            EtherType::IPV6,
            &ipv6_packet("fe80::2", "ff02::1:ff00:1", hop, ip_proto::ICMPV6, &ns),
        )
    };
    let (v, m, mut p) = rig.run(0, &f(255));
    assert_eq!((v, m.out_port()), (Verdict::Continue, TO_CONTROL));
    assert_eq!(punt::pop(&mut p).unwrap().kind, punt::Kind::Nd);
    assert_eq!(rig.drop_reason(0, &f(64)), Some(DropReason::MalformedNd), "ND must arrive with hop limit 255");
}

#[test]
fn every_bad_packet_is_dropped_with_its_reason() {
    let mut rig = Rig::new();
    let good = ipv4_packet("10.1.0.2", "8.8.8.8", 64, ip_proto::UDP, &udp_payload(8), false);
    let eth = |l3: &[u8]| frame(LAN_MAC, HOST_A, &[], EtherType::IPV4, l3);
    let mut bad_csum = good.clone();
    bad_csum[10] ^= 0xff;
    let mut lying_len = good.clone();
    lying_len[2..4].copy_from_slice(&9000u16.to_be_bytes());
    ipv4::Packet::new_unchecked(&mut lying_len[..]).fill_checksum();
    let mut v5 = good.clone();
    v5[0] = 0x55;
    let mut short_ihl = good.clone();
    short_ihl[0] = 0x43;
    let ping_bad = {
        let mut p = ipv4_packet("10.1.0.2", "10.1.0.1", 64, ip_proto::ICMP, &echo_v4(1), false);
        p[30] ^= 1;
        p
    };
    let ip6 =
        |src: &str, dst: &str| frame(LAN_MAC, HOST_A, &[], EtherType::IPV6, &ipv6_packet(src, dst, 64, ip_proto::UDP, &udp_payload(2)));
    let mut lying6 = ipv6_packet("fd01::2", "2001:db8::1", 64, ip_proto::UDP, &udp_payload(2));
    lying6[4..6].copy_from_slice(&500u16.to_be_bytes());
    let ext_lie = ipv6_packet("fd01::2", "2001:db8::1", 64, ip_proto::IPV6_DEST_OPTS, &[ip_proto::UDP, 9, 0, 0, 0, 0, 0, 0]);

    let cases: Vec<(&str, u16, Vec<u8>, DropReason)> = vec![
        ("runt frame", 0, vec![0u8; 10], DropReason::MalformedL2),
        ("cut VLAN tag", 0, frame(LAN_MAC, HOST_A, &[], EtherType::VLAN, &[0, 100]), DropReason::MalformedL2),
        ("VLAN 200 not configured", 0, frame(LAN_MAC, HOST_A, &[200], EtherType::IPV4, &good), DropReason::UnknownVlan),
        ("tagged frame on wan0", 1, frame(WAN_MAC, HOST_A, &[100], EtherType::IPV4, &good), DropReason::UnknownVlan),
        ("another host's MAC", 0, frame(GW_MAC, HOST_A, &[], EtherType::IPV4, &good), DropReason::NotOurMac),
        ("LLDP", 0, frame(LAN_MAC, HOST_A, &[], EtherType(0x88cc), &[0; 40]), DropReason::UnsupportedEthertype),
        ("truncated IPv4", 0, eth(&good[..15]), DropReason::MalformedIpv4),
        ("IPv4 total length lies", 0, eth(&lying_len), DropReason::MalformedIpv4),
        ("IPv4 header length 12", 0, eth(&short_ihl), DropReason::MalformedIpv4),
        ("version 5 in an IPv4 frame", 0, eth(&v5), DropReason::MalformedIpv4),
        ("bad IPv4 checksum", 0, eth(&bad_csum), DropReason::BadIpv4Checksum),
        ("loopback source", 0, eth(&ipv4_packet("127.0.0.1", "8.8.8.8", 64, 17, &[], false)), DropReason::Martian),
        ("multicast source", 0, eth(&ipv4_packet("224.0.0.1", "8.8.8.8", 64, 17, &[], false)), DropReason::Martian),
        ("broadcast destination", 0, eth(&ipv4_packet("10.1.0.2", "255.255.255.255", 64, 17, &[], false)), DropReason::NotRouted),
        ("blackholed", 0, eth(&ipv4_packet("10.1.0.2", "10.66.3.4", 64, 17, &[], false)), DropReason::Blackhole),
        (
            "TCP to the appliance",
            0,
            eth(&ipv4_packet("10.1.0.2", "10.1.0.1", 64, ip_proto::TCP, &[0; 20], false)),
            DropReason::LocalUnsupported,
        ),
        ("ping with a bad checksum", 0, eth(&ping_bad), DropReason::BadIcmpChecksum),
        ("truncated IPv6", 0, frame(LAN_MAC, HOST_A, &[], EtherType::IPV6, &[0x60; 30]), DropReason::MalformedIpv6),
        ("IPv6 payload length lies", 0, frame(LAN_MAC, HOST_A, &[], EtherType::IPV6, &lying6), DropReason::MalformedIpv6),
        ("IPv6 extension header lies", 0, frame(LAN_MAC, HOST_A, &[], EtherType::IPV6, &ext_lie), DropReason::MalformedIpv6),
        ("IPv6 multicast source", 0, ip6("ff02::1", "2001:db8::1"), DropReason::Martian),
        ("IPv6 link-local not ours", 0, ip6("fe80::2", "fe80::99"), DropReason::LinkLocalScope),
        ("link-local source leaving its link", 0, ip6("fe80::2", "2001:db8::1"), DropReason::LinkLocalScope),
        ("IPv6 multicast destination", 0, ip6("fd01::2", "ff05::1"), DropReason::NotRouted),
    ];
    for (name, port, f, want) in cases {
        assert_eq!(rig.drop_reason(port, &f), Some(want), "{name}");
    }
    assert_eq!(rig.pool.in_use(), 0);
}

#[test]
fn no_route_answers_unreachable() {
    // Without a default route: no route to 8.8.8.8.
    let ifaces = vec![iface("lan0", 0, LAN_MAC, vlan::Stack::default(), "10.1.0.1/24", "fd01::1/64", 1500)];
    let routes = Arc::new(Routes::build(ifaces, &[]).unwrap());
    let publisher = Publisher::new(Fib::new(routes, NeighborTable::empty()));
    let mut r = Router::new(publisher.reader(), TestClock::default(), 1000);
    let pool = HeapPool::new();
    let mut p =
        pool.packet(&frame(LAN_MAC, HOST_A, &[], EtherType::IPV4, &ipv4_packet("10.1.0.2", "8.8.8.8", 64, 17, &udp_payload(0), false)));
    let mut m = Meta::NEW;
    assert_eq!(r.process(0, &mut p, &mut m), Verdict::Continue);
    assert_eq!(m.noted(), Some(DropReason::NoRoute));
    let icmp = icmpv4::Packet::new_checked(&p.data()[34..]).unwrap();
    assert_eq!((icmp.msg_type(), icmp.msg_code()), (3, 0));
    assert!(icmp.verify_checksum());
    let ip = ipv4::Packet::new_checked(&p.data()[14..]).unwrap();
    assert!(ip.verify_checksum());
    assert_eq!(checksum::sum(&p.data()[14..34]), 0xffff);
}

#[test]
fn ports_without_interfaces_are_left_to_other_stages() {
    let mut rig = Rig::new();
    let mut metas = crate::pipeline::Metas::new(1);
    let mut pkts = vec![rig.pool.packet(&[0u8; 60])];
    rig.router.process_burst(5, &mut pkts, &mut metas);
    assert_eq!(metas.get(0), Meta::NEW);
    // A packet another stage already sent somewhere is not touched.
    let mut m = Meta::NEW;
    m.set_out_port(1);
    let mut p = rig.pool.packet(&[0u8; 10]);
    assert_eq!(rig.router.process(0, &mut p, &mut m), Verdict::Continue);
    assert_eq!(m.out_port(), 1);
    assert_ne!(m.out_port(), NO_PORT);
}

/// An IPv4 fragment: `offset` in bytes, MF flag.
fn fragment(src: &str, dst: &str, ttl: u8, offset: u16, more: bool) -> Vec<u8> {
    let mut b = ipv4_packet(src, dst, ttl, ip_proto::UDP, &udp_payload(8), false);
    ipv4::Packet::new_unchecked(&mut b[..]).set_flags_offset(false, more, offset);
    ipv4::Packet::new_unchecked(&mut b[..]).fill_checksum();
    b
}

#[test]
fn fragments_are_forwarded_as_they_are_and_never_answered_to() {
    let mut rig = Rig::new();
    // First and later fragments through the appliance: forwarded untouched but for TTL.
    for (off, more) in [(0, true), (1480, true), (2960, false)] {
        let ip = fragment("10.1.0.2", "8.8.8.8", 64, off, more);
        let (v, m, p) = rig.run(0, &frame(LAN_MAC, HOST_A, &[], EtherType::IPV4, &ip));
        assert_eq!((v, m.out_port()), (Verdict::Continue, 1), "offset {off}");
        let got = ipv4::Packet::new_checked(&p.data()[14..]).unwrap();
        assert_eq!((got.frag_offset(), got.more_frags(), got.ttl()), (off, more, 63));
        assert!(got.verify_checksum());
    }
    // Fragments to the appliance: it serves no reassembly.
    for (off, more) in [(0, true), (8, false)] {
        let f = frame(LAN_MAC, HOST_A, &[], EtherType::IPV4, &fragment("10.1.0.2", "10.1.0.1", 64, off, more));
        assert_eq!(rig.drop_reason(0, &f), Some(DropReason::LocalUnsupported));
    }
    // A later fragment whose TTL runs out: dropped, no ICMP error (RFC 1812).
    let f = frame(LAN_MAC, HOST_A, &[], EtherType::IPV4, &fragment("10.1.0.2", "8.8.8.8", 1, 1480, true));
    let (v, m, _) = rig.run(0, &f);
    assert_eq!((v, m.noted()), (Verdict::Drop(DropReason::TtlExpired), None));
    // The first fragment may be answered.
    let f = frame(LAN_MAC, HOST_A, &[], EtherType::IPV4, &fragment("10.1.0.2", "8.8.8.8", 1, 0, true));
    assert_eq!(rig.run(0, &f).1.noted(), Some(DropReason::TtlExpired));

    // IPv6: a Fragment header is walked; a later fragment is forwarded.
    let frag_hdr = |off: u16, more: bool| {
        let mut h = vec![ip_proto::UDP, 0];
        h.extend((off | more as u16).to_be_bytes());
        h.extend([0, 0, 0, 9]);
        h.extend(udp_payload(4));
        h
    };
    for (off, more) in [(0u16, true), (1448, false)] {
        let ip6 = ipv6_packet("fd01::2", "2001:db8::1", 64, ip_proto::IPV6_FRAGMENT, &frag_hdr(off, more));
        let (v, m, _) = rig.run(0, &frame(LAN_MAC, HOST_A, &[], EtherType::IPV6, &ip6));
        assert_eq!((v, m.out_port()), (Verdict::Continue, 1), "IPv6 fragment offset {off}");
    }
}

/// The IPv4 fast path must decide exactly as the general path does:
/// random mutations of valid frames through both, compared byte for byte.
#[test]
fn the_fast_path_agrees_with_the_general_path() {
    let rig = Rig::new();
    let bases: Vec<Vec<u8>> = [
        ("10.1.0.2", "8.8.8.8", 64),
        ("10.1.0.2", "10.1.0.1", 64),
        ("8.8.8.8", "10.1.0.2", 2),
        ("10.1.0.2", "10.66.1.1", 9),
        ("10.1.0.2", "10.1.0.77", 5),
    ]
    .iter()
    .map(|(s, d, ttl)| frame(LAN_MAC, HOST_A, &[], EtherType::IPV4, &ipv4_packet(s, d, *ttl, ip_proto::UDP, &udp_payload(20), false)))
    .collect();
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    let mut rnd = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let mut fast_taken = 0;
    for n in 0..40_000 {
        let mut f = bases[n % bases.len()].clone();
        for _ in 0..(rnd() % 3) {
            let at = (rnd() % 40) as usize;
            f[at] = rnd() as u8;
        }
        if rnd() % 4 == 0 && (f[14] & 0x0f) as usize * 4 <= f.len() - 14 {
            // Keep the header checksum valid so mutations get past it.
            ipv4::Packet::new_unchecked(&mut f[14..]).fill_checksum();
        }
        if rnd() % 8 == 0 {
            f.truncate((rnd() % f.len() as u64) as usize);
        }
        let port = (rnd() % 2) as u16;
        let fib = rig.router.fib.get();
        let (mut a, mut b) = (rig.pool.packet(&f), rig.pool.packet(&f));
        let (mut ma, mut mb) = (Meta::NEW, Meta::NEW);
        let mut icmp_a = TokenBucket::new(0, 1, 1000);
        let mut icmp_b = TokenBucket::new(0, 1, 1000);
        let mut cx = Cx::new(&fib.routes, fib, &mut icmp_a, &rig.clock, port);
        let fast = cx.fast_v4(&mut a, &mut ma);
        let mut cx = Cx::new(&fib.routes, fib, &mut icmp_b, &rig.clock, port);
        match fast {
            Fast::Slow => continue,
            Fast::NotOurs => {
                assert_eq!(cx.route(port, &mut b, &mut mb), Err(DropReason::NotOurMac), "case {n}: {f:02x?}");
                continue;
            }
            Fast::Forwarded => fast_taken += 1,
        }
        let slow = cx.route(port, &mut b, &mut mb);
        assert_eq!(slow, Ok(()), "case {n}: fast path forwarded what the general path drops: {f:02x?}");
        assert_eq!(ma, mb, "case {n}");
        assert_eq!(a.data(), b.data(), "case {n}");
    }
    assert!(fast_taken > 2000, "the fast path was exercised ({fast_taken} times)");
}
