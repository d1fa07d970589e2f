#![no_main]
//! The workers' tunnel stages on arbitrary input: frames to the listen
//! port carrying arbitrary messages; transport messages sealed with the
//! live session around arbitrary inner bytes (a fuzzer cannot forge a tag,
//! so this is how it reaches the post-decryption checks); and arbitrary
//! LAN frames through Encap, steered by a policy rule over two paths (or
//! dropped by one). Inner bytes starting 0x10/0x11 reach the SLA probe
//! reflection and the reply punt, ICMP echoes with identifier 0x5054 the
//! wrapped probes' (`probe::unwrap`); frames to UDP 3784/4784 the BFD punt.
//! Nothing may panic; what is forwarded is well-formed.
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use dataplane::packet::{HeapPool, Packet};
use dataplane::pipeline::{Meta, Stage, Verdict};
use dataplane::rcu::Publisher;
use dataplane::router::fib::{Fib, Iface, RouteTarget, Routes, StaticRoute};
use dataplane::router::neighbor::{NeighborKey, NeighborTable};
use dataplane::router::Router;
use dataplane::tunnel::device::{Device, InitiationOutcome, PeerConfig};
use dataplane::tunnel::stage::{emit_ip_udp, Decap, Encap, Tunnels};
use dataplane::wire::{vlan, EthernetAddress, Ipv4Address};
use dataplane::worker::Clock;
use libfuzzer_sys::fuzz_target;

#[derive(Clone, Copy)]
struct Fixed;
impl Clock for Fixed {
    fn now(&self) -> u64 {
        1_000
    }
}

type Stages = (Decap<Fixed>, (Encap<Fixed>, Router<Fixed>));

struct World {
    stages: Stages,
    peer: Device,
    _p: (Publisher<Fib>, Publisher<Tunnels>, Device, Publisher<dataplane::path::Steering>),
}

fn world() -> World {
    let mac = |b| EthernetAddress([2, 0, 0, 0, 0, b]);
    let iface = |name: &str, port, m, v4: [u8; 4]| Iface { name: name.into(), port, vlans: vlan::Stack::default(), mac: mac(m), mtu: 1500, v4: vec![(Ipv4Address(v4), 24)], v6: vec![] };
    let routes = Arc::new(
        Routes::build(vec![iface("lan0", 0, 1, [10, 1, 0, 1]), iface("wan0", 1, 2, [192, 0, 2, 1])], &[StaticRoute {
            prefix: "0.0.0.0".parse().unwrap(),
            len: 0,
            target: RouteTarget::Via("192.0.2.2".parse().unwrap()),
        }])
        .unwrap(),
    );
    let macs = NeighborTable::build([(NeighborKey::v4(1, Ipv4Address([192, 0, 2, 2])), mac(9)), (NeighborKey::v4(0, Ipv4Address([10, 1, 0, 5])), mac(10))]);
    let fib = Publisher::new(Fib::new(routes, macs));
    let key = |s: u8| dataplane::tunnel::crypto::public_key(&x25519_dalek::StaticSecret::from([s; 32]));
    let cfg = |public, ep: &str| PeerConfig { public, psk: None, endpoint: Some(ep.parse().unwrap()), persistent_keepalive: None };
    let mut us = Device::new([5; 32], vec![cfg(key(6), "192.0.2.2:51820")], dataplane::tunnel::device::seeded_rng(1));
    let mut peer = Device::new([6; 32], vec![cfg(key(5), "192.0.2.1:51820")], dataplane::tunnel::device::seeded_rng(2));
    let now = Duration::from_secs(1);
    let init = peer.initiate(0, now, Duration::from_secs(1_700_000_000)).unwrap();
    let Ok(InitiationOutcome::Response { msg, .. }) = us.handle_initiation(&init, "192.0.2.2:51820".parse().unwrap(), now) else { panic!() };
    peer.handle_response(&msg, "192.0.2.1:51820".parse().unwrap(), now).unwrap();
    let ip = |s: &str| s.parse::<IpAddr>().unwrap();
    let tunnels = Publisher::new(us.snapshot(51820, 1420, &[(ip("10.2.0.0"), 16, 0)], |_| u64::MAX / 2));
    use dataplane::path::{PathLive, PathOut, PeerPaths, Steering, DROP};
    let path = |ep: &str| PathOut { endpoint: ep.parse().unwrap(), live: Arc::new(PathLive::default()) };
    let steering = Publisher::new(Steering {
        peers: vec![PeerPaths { paths: vec![path("192.0.2.2:51820"), path("198.51.100.7:51820")], choice: vec![1, 0, DROP], source_ports: 8 }],
    });
    let stages = (
        Decap::new(tunnels.reader(), fib.reader(), steering.reader(), Fixed, true),
        (Encap::new(tunnels.reader(), fib.reader(), steering.reader(), Fixed, 1_000_000), Router::new(fib.reader(), Fixed, 1_000_000)),
    );
    World { stages, peer, _p: (fib, tunnels, us, steering) }
}

thread_local! {
    static WORLD: std::cell::RefCell<World> = std::cell::RefCell::new(world());
}

/// A frame from the peer's endpoint to our listen port carrying `msg`.
fn to_listen_port(msg: &[u8]) -> Vec<u8> {
    let mut f = vec![0u8; 14 + 20 + 8];
    f[..6].copy_from_slice(&[2, 0, 0, 0, 0, 2]);
    f[6..12].copy_from_slice(&[2, 0, 0, 0, 0, 9]);
    f[12..14].copy_from_slice(&[0x08, 0x00]);
    f.extend_from_slice(msg);
    emit_ip_udp("192.0.2.2".parse().unwrap(), 51820, "192.0.2.1:51820".parse().unwrap(), &mut f[14..]);
    f
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, body)) = data.split_first() else { return };
    WORLD.with(|w| {
        let w = &mut *w.borrow_mut();
        let pool = HeapPool::new();
        let (port, frame) = match mode % 4 {
            0 => (1, to_listen_port(body)),
            1 => match w.peer.encapsulate(0, body, Duration::from_secs(1)) {
                Ok(m) => (1, to_listen_port(&m)),
                Err(_) => return,
            },
            2 => (0, body.to_vec()),
            _ => (1, body.to_vec()),
        };
        let mut p = pool.packet(&frame);
        Stage::<dataplane::packet::HeapPacket>::tick(&mut w.stages);
        let mut m = Meta::NEW;
        m.set_rule((mode >> 2) % 4);
        if w.stages.process(port, &mut p, &mut m) == Verdict::Continue && m.out_port() < 2 {
            assert!(p.data().len() >= 14, "a forwarded frame has an Ethernet header");
        }
    });
});
