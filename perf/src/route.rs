//! The `route` forwarding mode: the router stage with a fixed table, so
//! every packet from the capture is parsed, looked up (LPM over 256 /16
//! routes), sent to one of 16 resolved gateways with its MACs rewritten,
//! TTL decremented and checksum updated.

use std::net::IpAddr;
use std::sync::Arc;

use dataplane::dpdk::Tsc;
use dataplane::rcu::Publisher;
use dataplane::router::fib::{Fib, Iface, RouteTarget, Routes, StaticRoute};
use dataplane::router::neighbor::{NeighborKey, NeighborTable};
use dataplane::router::Router;
use dataplane::wire::{vlan, EthernetAddress, Ipv4Address};

use crate::pcap;

/// Gateways on the egress interface.
const GATEWAYS: u8 = 16;

/// The forwarding table: port 0 receives the capture (its frames' MAC and
/// source subnet), port 1 leads to the gateways.
pub fn fib(egress_mac: [u8; 6]) -> Publisher<Fib> {
    let iface = |name: &str, port, mac, addr: [u8; 4]| Iface {
        name: name.into(),
        port,
        vlans: vlan::Stack::default(),
        mac: EthernetAddress(mac),
        mtu: 1500,
        v4: vec![(Ipv4Address(addr), 24)],
        v6: vec![],
    };
    let src = pcap::SRC;
    let ifaces = vec![iface("in", 0, pcap::DST_MAC, [src[0], src[1], src[2], 1]), iface("out", 1, egress_mac, [192, 0, 2, 1])];
    let gw = |k: u8| IpAddr::from([192, 0, 2, 10 + k]);
    let statics: Vec<StaticRoute> = (0..=255u8)
        .map(|x| StaticRoute { prefix: IpAddr::from([10, x, 0, 0]), len: 16, target: RouteTarget::Via(gw(x % GATEWAYS)) })
        .collect();
    let routes = Arc::new(Routes::build(ifaces, &statics).expect("perf routes"));
    let neighbors = NeighborTable::build(
        (0..GATEWAYS).map(|k| (NeighborKey::v4(1, Ipv4Address([192, 0, 2, 10 + k])), EthernetAddress([2, 0, 0, 0, 1, k]))),
    );
    Publisher::new(Fib::new(routes, neighbors))
}

/// One worker's router stage.
pub fn stage(p: &Publisher<Fib>, hz: u64) -> Router<Tsc> {
    Router::new(p.reader(), Tsc, hz)
}

/// A router stage on the TSC read without DPDK (for `stage-bench`).
pub fn stage_with_clock(p: &Publisher<Fib>) -> Router<Tsc> {
    Router::new(p.reader(), Tsc, 1_000_000_000)
}
