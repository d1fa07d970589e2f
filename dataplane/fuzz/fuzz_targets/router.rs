#![no_main]
//! The whole router stage on arbitrary frames, from either port, through a
//! table with VLANs, connected, gateway and blackhole routes: it never
//! panics, and what it sends is a well-formed frame for a real port.
use std::net::IpAddr;
use std::sync::Arc;

use dataplane::packet::{HeapPool, Packet};
use dataplane::pipeline::{Meta, Stage, Verdict, NO_PORT, TO_CONTROL};
use dataplane::rcu::Publisher;
use dataplane::router::fib::{Fib, Iface, RouteTarget, Routes, StaticRoute};
use dataplane::router::neighbor::{NeighborKey, NeighborTable};
use dataplane::router::Router;
use dataplane::wire::{vlan, EthernetAddress, Ipv4Address, Ipv6Address};
use dataplane::worker::Clock;
use libfuzzer_sys::fuzz_target;

struct Zero;
impl Clock for Zero {
    fn now(&self) -> u64 {
        0
    }
}

fn router() -> (Publisher<Fib>, Router<Zero>) {
    let mac = |b| EthernetAddress([2, 0, 0, 0, 0, b]);
    let iface = |name: &str, port, m, vlans, v4: [u8; 4], v6: u8| Iface {
        name: name.into(),
        port,
        vlans,
        mac: mac(m),
        mtu: 1400,
        v4: vec![(Ipv4Address(v4), 24)],
        v6: vec![
            (Ipv6Address::link_local_from_mac(mac(m)), 64),
            (Ipv6Address([0xfd, 0, 0, 0, 0, 0, 0, v6, 0, 0, 0, 0, 0, 0, 0, 1]), 64),
        ],
    };
    let ifaces = vec![
        iface("lan0", 0, 1, vlan::Stack::default(), [10, 1, 0, 1], 1),
        iface("lan0.7", 0, 1, vlan::Stack { outer: Some(7), inner: None }, [10, 7, 0, 1], 7),
        iface("wan0", 1, 2, vlan::Stack::default(), [192, 0, 2, 1], 2),
    ];
    let ip = |s: &str| s.parse::<IpAddr>().unwrap();
    let statics = [
        StaticRoute { prefix: ip("0.0.0.0"), len: 0, target: RouteTarget::Via(ip("192.0.2.2")) },
        StaticRoute { prefix: ip("::"), len: 0, target: RouteTarget::Via(ip("fd00:0:0:2::2")) },
        StaticRoute { prefix: ip("10.66.0.0"), len: 16, target: RouteTarget::Blackhole },
    ];
    let routes = Arc::new(Routes::build(ifaces, &statics).unwrap());
    let macs = NeighborTable::build([(NeighborKey::v4(2, Ipv4Address([192, 0, 2, 2])), mac(9)), (NeighborKey::v4(0, Ipv4Address([10, 1, 0, 2])), mac(10))]);
    let p = Publisher::new(Fib::new(routes, macs));
    let r = Router::new(p.reader(), Zero, 1000);
    (p, r)
}

thread_local! {
    static ROUTER: std::cell::RefCell<(Publisher<Fib>, Router<Zero>)> = std::cell::RefCell::new(router());
}

fuzz_target!(|data: &[u8]| {
    let Some((&port, frame)) = data.split_first() else { return };
    ROUTER.with(|cell| run(&mut cell.borrow_mut().1, port, frame));
});

fn run(r: &mut Router<Zero>, port: u8, frame: &[u8]) {
    let pool = HeapPool::new();
    let mut pkt = pool.packet(frame);
    let mut meta = Meta::NEW;
    Stage::<dataplane::packet::HeapPacket>::tick(r);
    match r.process((port % 3) as u16, &mut pkt, &mut meta) {
        Verdict::Drop(_) => {}
        Verdict::Continue => {
            let out = meta.out_port();
            assert!(out == NO_PORT || out == TO_CONTROL || out < 2, "egress {out}");
            if out < 2 {
                assert!(pkt.data().len() >= 14, "a frame leaves with an Ethernet header");
            }
        }
    }
}
