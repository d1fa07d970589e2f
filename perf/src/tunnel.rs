//! The `encrypt` and `decrypt` forwarding modes: the workers' tunnel stages
//! with a real session (an in-memory Noise_IKpsk2 handshake between two
//! devices with fixed keys, so `gen-pcap --wireguard` and `decrypt` derive
//! the same keys).
//!
//! - encrypt: port 0 receives inner frames (to 10.0.0.0/8, the peer's
//!   allowed IPs); each is sealed in place (padding, tag, outer
//!   Ethernet/IPv4/UDP/WireGuard headers) and routed out of port 1 to the
//!   peer's endpoint 192.0.2.10:51820.
//! - decrypt: port 0 receives transport messages to 192.0.2.1:51820; each
//!   is opened in place, checked against the peer's allowed IPs, stripped
//!   and routed out of port 1. A replayed capture repeats its counters:
//!   after the first pass every message is still decrypted and
//!   authenticated, then refused by the replay window (`tunnel_replay`),
//!   so the figure counts the same cryptographic work per packet.

use std::io::Write;
use std::net::IpAddr;
use std::path::Path;
use std::time::Duration;

use dataplane::dpdk::Tsc;
use dataplane::rcu::Publisher;
use dataplane::router::fib::Fib;
use dataplane::tunnel::device::{seeded_rng, Device, InitiationOutcome, PeerConfig};
use dataplane::tunnel::stage::{Decap, Encap, Tunnels};

use crate::pcap;

const PORT: u16 = 51820;
const PEER: &str = "192.0.2.10:51820";
const US: &str = "192.0.2.1:51820";

/// Our device and the peer's, after one handshake we initiated.
fn devices() -> (Device, Device) {
    let key = |seed: u8| {
        let s = [seed; 32];
        (s, dataplane::tunnel::crypto::public_key(&x25519_dalek::StaticSecret::from(s)))
    };
    let (us_sec, us_pub) = key(0x51);
    let (peer_sec, peer_pub) = key(0x52);
    let cfg = |public, ep: &str| PeerConfig { public, psk: Some([7; 32]), endpoint: Some(ep.parse().unwrap()), persistent_keepalive: None };
    let mut us = Device::new(us_sec, vec![cfg(peer_pub, PEER)], seeded_rng(1));
    let mut peer = Device::new(peer_sec, vec![cfg(us_pub, US)], seeded_rng(2));
    let (now, wall) = (Duration::from_secs(1), Duration::from_secs(1_700_000_000));
    let init = us.initiate(0, now, wall).expect("initiation");
    let Ok(InitiationOutcome::Response { msg, .. }) = peer.handle_initiation(&init, US.parse().unwrap(), now) else {
        panic!("no response")
    };
    us.handle_response(&msg, PEER.parse().unwrap(), now).expect("handshake");
    (us, peer)
}

/// The snapshot a mode's workers read (sessions never expire in a run).
pub fn tunnels(decrypt: bool) -> Publisher<Tunnels> {
    let (us, peer) = devices();
    let ip = |s: &str| s.parse::<IpAddr>().unwrap();
    let far = |_: Duration| u64::MAX / 2;
    let snap = if decrypt {
        // We are the responder: the peer (our initiator above) sends to us.
        peer.snapshot(PORT, 1420, &[(ip("0.0.0.0"), 0, 0)], far)
    } else {
        us.snapshot(PORT, 1420, &[(ip("10.0.0.0"), 8, 0)], far)
    };
    // Keep the sessions' owners alive as long as the snapshot (it holds Arcs).
    std::mem::forget((us, peer));
    Publisher::new(snap)
}

/// No multi-path steering: every peer by its own endpoint.
fn no_paths() -> dataplane::rcu::Reader<dataplane::path::Steering> {
    Box::leak(Box::new(Publisher::new(dataplane::path::Steering::default()))).reader()
}

/// One worker's stages for the mode.
pub fn encrypt_stage(t: &Publisher<Tunnels>, fib: &Publisher<Fib>, hz: u64) -> (Encap<Tsc>, dataplane::router::Router<Tsc>) {
    (Encap::new(t.reader(), fib.reader(), no_paths(), Tsc, hz), crate::route::stage(fib, hz))
}

/// Encrypt with multi-path steering: two paths to the peer, the default
/// rule on the second; the path choice and per-path counters are the
/// difference from `encrypt_stage`.
pub fn steer_stage(t: &Publisher<Tunnels>, fib: &Publisher<Fib>, hz: u64) -> (Encap<Tsc>, dataplane::router::Router<Tsc>) {
    use dataplane::path::{PathLive, PathOut, PeerPaths, Steering};
    let path = |ep: &str| PathOut { endpoint: ep.parse().unwrap(), live: std::sync::Arc::new(PathLive::default()) };
    let steering = Box::leak(Box::new(Publisher::new(Steering {
        peers: vec![PeerPaths { paths: vec![path(PEER), path("192.0.2.10:51821")], choice: vec![1, 0], source_ports: 1 }],
    })));
    (Encap::new(t.reader(), fib.reader(), steering.reader(), Tsc, hz), crate::route::stage(fib, hz))
}

pub fn decrypt_stage(t: &Publisher<Tunnels>, fib: &Publisher<Fib>, hz: u64) -> (Decap<Tsc>, dataplane::router::Router<Tsc>) {
    (Decap::new(t.reader(), fib.reader(), no_paths(), Tsc, false), crate::route::stage(fib, hz))
}

/// Frame sizes of one pass: `size` each, or simple IMIX (7:4:1 of 64-,
/// 576- and 1434-byte frames: inner IP packets of 50, 562 and 1420 bytes).
pub fn sizes(count: u32, size: u16, imix: bool) -> Vec<usize> {
    const IMIX: [usize; 12] = [64, 64, 64, 64, 64, 64, 64, 576, 576, 576, 576, 1434];
    (0..count as usize).map(|i| if imix { IMIX[i % IMIX.len()] } else { size as usize }).collect()
}

/// Writes `count` transport messages (the inner frames `gen-pcap` makes,
/// sealed by the initiator of [`devices`]) as frames to 192.0.2.1:51820.
pub fn write_sealed(path: &Path, sizes: &[usize]) -> Result<(), String> {
    if sizes.len() as u64 > dataplane::tunnel::replay::WINDOW {
        return Err(format!("at most {} messages (the replay window) so every replay is decrypted", dataplane::tunnel::replay::WINDOW));
    }
    let (mut us, _) = devices();
    let now = Duration::from_secs(1);
    let mut out = std::io::BufWriter::new(std::fs::File::create(path).map_err(|e| e.to_string())?);
    out.write_all(&pcap::PCAP_HEADER).map_err(|e| e.to_string())?;
    for (i, &size) in sizes.iter().enumerate() {
        let inner = pcap::frame(i as u32, size);
        let msg = us.encapsulate(0, &inner[14..], now).map_err(|e| format!("{e:?}"))?;
        let mut f = vec![0u8; 14 + 20 + 8];
        f[..6].copy_from_slice(&pcap::DST_MAC);
        f[6..12].copy_from_slice(&[2, 0, 0, 0, 1, 0]);
        f[12..14].copy_from_slice(&[0x08, 0x00]);
        f.extend_from_slice(&msg);
        let src: std::net::SocketAddr = PEER.parse().unwrap();
        if !dataplane::tunnel::stage::emit_ip_udp(src.ip(), src.port(), US.parse().unwrap(), &mut f[14..]) {
            return Err("address families".into());
        }
        let len = f.len() as u32;
        for w in [0u32, i as u32, len, len] {
            out.write_all(&w.to_le_bytes()).map_err(|e| e.to_string())?;
        }
        out.write_all(&f).map_err(|e| e.to_string())?;
    }
    out.flush().map_err(|e| e.to_string())
}

/// Writes inner frames of the given sizes (to 10.0.0.0/8) for `encrypt`.
pub fn write_plain(path: &Path, sizes: &[usize]) -> Result<(), String> {
    let mut out = std::io::BufWriter::new(std::fs::File::create(path).map_err(|e| e.to_string())?);
    out.write_all(&pcap::PCAP_HEADER).map_err(|e| e.to_string())?;
    for (i, &size) in sizes.iter().enumerate() {
        let f = pcap::frame(i as u32, size);
        let len = f.len() as u32;
        for w in [0u32, i as u32, len, len] {
            out.write_all(&w.to_le_bytes()).map_err(|e| e.to_string())?;
        }
        out.write_all(&f).map_err(|e| e.to_string())?;
    }
    out.flush().map_err(|e| e.to_string())
}
