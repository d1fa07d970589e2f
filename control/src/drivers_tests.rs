//! The control thread's drivers (slow path, tunnel handshakes, BFD) on heap
//! packets, without DPDK: two sites whose control threads talk through an
//! in-memory wire. What one site sends is punted to the other as its
//! workers would punt it (ARP, handshakes and BFD), so the drivers run as
//! in the appliance, with the time passed in.

use std::cell::RefCell;
use std::net::Ipv4Addr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_queue::ArrayQueue;
use dataplane::counters::DropReason;
use dataplane::egress::ControlIo;
use dataplane::egress::PuntRing;
use dataplane::packet::{Burst, HeapPacket, HeapPool, Packet};
use dataplane::router::punt;
use dataplane::wire::{arp, ethernet, ip_proto, ipv4, udp, EtherType, EthernetAddress};
use dataplane::PortIdx;

use crate::config::keys;
use crate::config::Config;
use crate::paths::PathControl;
use crate::slowpath::SlowPath;
use crate::tunnel::TunnelControl;

/// The TSC of the test: 1 GHz.
const HZ: u64 = 1_000_000_000;

/// The machine as the drivers see it: heap buffers, a record of what was
/// sent, the drops counted.
struct TestIo {
    pool: HeapPool,
    sent: Vec<(PortIdx, HeapPacket)>,
    drops: RefCell<Vec<(PortIdx, DropReason, u64)>>,
    tsc: u64,
}

impl ControlIo for TestIo {
    type Pkt = HeapPacket;

    fn alloc(&mut self, _port: PortIdx) -> Option<HeapPacket> {
        Some(self.pool.packet(&[]))
    }

    fn send(&mut self, port: PortIdx, pkts: &mut Burst<HeapPacket>) {
        self.sent.extend(pkts.drain().map(|p| (port, p)));
    }

    fn count_drop(&self, port: PortIdx, reason: DropReason, n: u64) {
        self.drops.borrow_mut().push((port, reason, n));
    }

    fn tsc(&self) -> u64 {
        self.tsc
    }
}

/// What a frame on the wire is, as the far end's workers would punt it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Wire {
    Arp(arp::Operation),
    Handshake(u8),
    Bfd,
    Other,
}

fn what(frame: &[u8]) -> Wire {
    let Ok(eth) = ethernet::Frame::new_checked(frame) else { return Wire::Other };
    match eth.ethertype() {
        EtherType::ARP => match arp::Packet::new_checked(eth.payload()).ok().and_then(|p| arp::Repr::parse(&p).ok()) {
            Some(a) => Wire::Arp(a.operation),
            None => Wire::Other,
        },
        EtherType::IPV4 => {
            let Ok(ip) = ipv4::Packet::new_checked(eth.payload()) else { return Wire::Other };
            let Ok(u) = udp::Packet::new_checked(ip.payload()) else { return Wire::Other };
            match (ip.protocol(), u.dst_port()) {
                (ip_proto::UDP, 51820) => Wire::Handshake(u.payload().first().copied().unwrap_or(0)),
                (ip_proto::UDP, 3784 | 4784) => Wire::Bfd,
                _ => Wire::Other,
            }
        }
        _ => Wire::Other,
    }
}

/// One site's control thread, on port 0 (`wan0`) with one interface.
struct Site {
    io: TestIo,
    ring: PuntRing<HeapPacket>,
    slow: SlowPath<HeapPacket>,
    tunnel: TunnelControl,
    paths: PathControl,
    mac: EthernetAddress,
    _dir: TempDir,
}

struct TempDir(std::path::PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn write_key(dir: &Path, name: &str, key: &keys::PrivateKey) {
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(dir.join(name)).unwrap();
    std::io::Write::write_all(&mut f, format!("{}\n", key.to_base64()).as_bytes()).unwrap();
}

impl Site {
    /// Site `me` (1 or 2) on 192.168.1.0/30, the other end its peer.
    fn new(me: u8, key: &keys::PrivateKey, peer_public: &str, bfd: bool) -> Site {
        let far = 3 - me;
        let dir = std::env::temp_dir().join(format!("patronus-drivers-{}-{me}-{:?}", std::process::id(), std::thread::current().id()));
        std::fs::create_dir_all(&dir).unwrap();
        write_key(&dir, "site.key", key);
        let bfd = if bfd {
            format!("[[bfd]]\nname = \"link\"\npeer = \"192.168.1.{far}\"\nmin_tx_ms = 100\nmin_rx_ms = 100\n")
        } else {
            String::new()
        };
        let text = format!(
            r#"
[eal]
main_lcore = 0
worker_lcores = [1]

[site]
private_key_file = "site.key"

[[port]]
name = "wan0"
device = "net_null0"
role = "wan"
addresses = ["192.168.1.{me}/30"]

[tunnel]
listen_port = 51820

[[tunnel.peer]]
name = "far"
public_key = "{peer_public}"
endpoint = "192.168.1.{far}:51820"
allowed_ips = ["10.{far}.0.0/24"]
{bfd}"#
        );
        let path = dir.join("site.toml");
        let cfg = Config::parse(&path, &text).unwrap_or_else(|e| panic!("{e}"));
        let mac = EthernetAddress([2, 0, 0, 0, 0, me]);
        let routes = crate::snapshots::routes(&cfg, &[mac]).unwrap();
        let ring: PuntRing<HeapPacket> = Arc::new(ArrayQueue::new(256));
        let slow = SlowPath::new(routes, cfg.neighbor_conf(), vec![ring.clone()], 1);
        let tunnel = TunnelControl::new(&cfg.tunnel, &dir, cfg.private_key_path(&path).as_deref(), HZ, 0).unwrap();
        let paths = PathControl::new(&cfg.paths, &cfg.path, &cfg.bfd, &cfg.policy, &tunnel, HZ);
        let io = TestIo { pool: HeapPool::new(), sent: Vec::new(), drops: RefCell::new(Vec::new()), tsc: 0 };
        Site { io, ring, slow, tunnel, paths, mac, _dir: TempDir(dir) }
    }

    /// One turn of the control loop at `at`, and the slow path's part of
    /// the next (which sends what the drivers queued in this one).
    fn poll(&mut self, at: Instant, t0: Instant) {
        self.io.tsc = at.duration_since(t0).as_nanos() as u64;
        self.slow.poll(&mut self.io, at);
        self.tunnel.poll(&mut self.io, &mut self.slow, at);
        self.paths.poll(&mut self.io, &mut self.slow, &mut self.tunnel, at);
        self.slow.poll(&mut self.io, at);
    }

    fn up(&self) -> bool {
        self.tunnel.show()["peers"][0]["up"].as_bool().unwrap_or(false)
    }
}

/// Hands what `from` sent to `to` as its workers would punt it; frames
/// `keep` refuses are lost on the wire. Returns what crossed.
fn deliver(from: &mut Site, to: &Site, keep: impl Fn(Wire) -> bool) -> Vec<Wire> {
    let mut crossed = Vec::new();
    for (_, mut pkt) in from.io.sent.drain(..) {
        let w = what(pkt.data());
        let dst = EthernetAddress::from_bytes(&pkt.data()[..6]);
        assert!(dst == to.mac || dst.is_broadcast(), "{w:?} sent to {dst}, not to the far end");
        if !keep(w) {
            continue;
        }
        let kind = match w {
            Wire::Arp(_) => punt::Kind::Arp,
            Wire::Handshake(_) => punt::Kind::Tunnel,
            Wire::Bfd => punt::Kind::Bfd,
            Wire::Other => continue,
        };
        assert!(punt::push(&mut pkt, &punt::Header { kind, in_port: 0, iface: 0, l2_len: 14, neighbor: 0 }));
        assert!(to.ring.push(pkt).is_ok());
        crossed.push(w);
    }
    crossed
}

fn pair(bfd: bool) -> (Site, Site) {
    let (ka, kb) = (keys::generate().unwrap(), keys::generate().unwrap());
    (Site::new(1, &ka, &kb.public_base64(), bfd), Site::new(2, &kb, &ka.public_base64(), bfd))
}

/// ARP resolution with the packet queued meanwhile, then a full Noise
/// handshake: A's initiation waits for B's MAC, B answers ARP, learns A
/// from the request, responds, and both sides have a session.
#[test]
fn arp_resolves_the_queued_handshake_and_both_sites_come_up() {
    let (mut a, mut b) = pair(false);
    let t0 = Instant::now();
    assert_eq!(a.tunnel.rekey(&mut a.io, &mut a.slow, None), Ok(1));
    a.poll(t0, t0);
    // The initiation waits in the neighbour queue; an ARP request goes out.
    assert_eq!(deliver(&mut a, &b, |_| true), [Wire::Arp(arp::Operation::Request)]);
    b.poll(t0, t0);
    assert_eq!(deliver(&mut b, &a, |_| true), [Wire::Arp(arp::Operation::Reply)]);
    a.poll(t0, t0);
    // Resolved: the queued initiation leaves, addressed to B's MAC.
    assert_eq!(deliver(&mut a, &b, |_| true), [Wire::Handshake(1)]);
    b.poll(t0, t0);
    // B learnt A's MAC from A's request: its response needs no ARP.
    assert_eq!(deliver(&mut b, &a, |_| true), [Wire::Handshake(2)]);
    a.poll(t0, t0);
    assert!(a.up(), "the initiator has a session after the response");
    assert_eq!(a.tunnel.show()["handshake"]["completed"], 1);
    assert_eq!(b.tunnel.show()["handshake"]["responses_sent"], 1);
    let neighbors = a.slow.neighbors();
    assert_eq!(neighbors.len(), 1);
    assert_eq!(neighbors[0].1, Some(b.mac));
    assert_eq!(neighbors[0].0.ip(), std::net::IpAddr::V4(Ipv4Addr::new(192, 168, 1, 2)));
    assert!(a.io.drops.borrow().is_empty() && b.io.drops.borrow().is_empty(), "nothing dropped");
}

/// A lost initiation is retried after REKEY_TIMEOUT (plus jitter), not
/// before, and the retry completes the handshake.
#[test]
fn a_lost_initiation_is_retried_after_the_rekey_timeout() {
    let (mut a, mut b) = pair(false);
    let t0 = Instant::now();
    a.tunnel.rekey(&mut a.io, &mut a.slow, None).unwrap();
    a.poll(t0, t0);
    deliver(&mut a, &b, |_| true);
    b.poll(t0, t0);
    deliver(&mut b, &a, |_| true);
    a.poll(t0, t0);
    // The first initiation is lost.
    assert_eq!(deliver(&mut a, &b, |w| !matches!(w, Wire::Handshake(_))), []);
    let before = dataplane::tunnel::REKEY_TIMEOUT - Duration::from_millis(1);
    a.poll(t0 + before, t0);
    assert!(a.io.sent.is_empty(), "no retry before REKEY_TIMEOUT");
    let after = dataplane::tunnel::REKEY_TIMEOUT + dataplane::tunnel::REKEY_TIMEOUT_JITTER_MAX + Duration::from_millis(1);
    a.poll(t0 + after, t0);
    assert_eq!(deliver(&mut a, &b, |_| true), [Wire::Handshake(1)], "the retry");
    b.poll(t0 + after, t0);
    deliver(&mut b, &a, |_| true);
    a.poll(t0 + after, t0);
    assert!(a.up());
    assert_eq!(a.tunnel.show()["handshake"]["initiations_sent"], 2);
}

/// BFD between the two control threads: both sessions go Down -> Init ->
/// Up, and a session whose packets stop arriving goes Down after the
/// detection time.
#[test]
fn bfd_sessions_come_up_and_detect_a_cut() {
    let (mut a, mut b) = pair(true);
    let t0 = Instant::now();
    let state = |s: &Site| s.paths.show_bfd()["sessions"][0]["state"].as_str().map(str::to_owned);
    let mut t = t0;
    // Slow start paces at one packet per second until Up.
    for _ in 0..40 {
        t += Duration::from_millis(250);
        a.poll(t, t0);
        deliver(&mut a, &b, |_| true);
        b.poll(t, t0);
        deliver(&mut b, &a, |_| true);
    }
    assert_eq!(state(&a).as_deref(), Some("up"), "{}", a.paths.show_bfd());
    assert_eq!(state(&b).as_deref(), Some("up"), "{}", b.paths.show_bfd());
    // The link is cut one way: B hears nothing more from A.
    for _ in 0..8 {
        t += Duration::from_millis(100);
        a.poll(t, t0);
        deliver(&mut a, &b, |w| w != Wire::Bfd);
        b.poll(t, t0);
        deliver(&mut b, &a, |_| true);
    }
    assert_eq!(state(&b).as_deref(), Some("down"), "detection: 3 x 100 ms");
}
