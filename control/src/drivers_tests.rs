//! The control thread's drivers (slow path, tunnel handshakes, probes and
//! BFD) on heap packets, without DPDK: two sites whose control threads talk
//! through an in-memory wire. Every frame one site sends meets the other
//! site's own worker stages (tunnel decap, router), which punt, answer or
//! drop it as in the appliance; the time is passed in.

use std::cell::RefCell;
use std::net::Ipv4Addr;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_queue::ArrayQueue;
use dataplane::counters::DropReason;
use dataplane::egress::ControlIo;
use dataplane::egress::PuntRing;
use dataplane::packet::{Burst, HeapPacket, HeapPool, Packet};
use dataplane::pipeline::{Meta, Stage, Verdict, NO_PORT, TO_CONTROL};
use dataplane::router::Router;
use dataplane::tunnel::stage::Decap;
use dataplane::wire::{arp, ethernet, ip_proto, ipv4, udp, EtherType, EthernetAddress};
use dataplane::worker::Clock;
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

/// The workers' clock: the site's TSC, set by its control loop's turns.
#[derive(Clone)]
struct TestClock(Arc<AtomicU64>);

impl Clock for TestClock {
    fn now(&self) -> u64 {
        self.0.load(Relaxed)
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
    /// The site's worker stages that meet a frame from the WAN: tunnel
    /// decap (handshakes and BFD punted, probes answered or punted), then
    /// the router (ARP and ND punted).
    worker: (Decap<TestClock>, Router<TestClock>),
    clock: TestClock,
    /// What the worker stages dropped, by reason.
    dropped: Vec<DropReason>,
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
    /// Site `me` (1 or 2) on 192.168.1.0/30 (with `v6`, fd00::/64), the
    /// other end its peer; with `bfd` a session to it, with `path` one
    /// [[path]] over wan0 probed every 20 ms (gated by the BFD session).
    fn on(me: u8, key: &keys::PrivateKey, peer_public: &str, bfd: bool, path: bool, v6: bool) -> Site {
        let far = 3 - me;
        let (addr, far_ip, far_ep) = match v6 {
            false => (format!("192.168.1.{me}/30"), format!("192.168.1.{far}"), format!("192.168.1.{far}:51820")),
            true => (format!("fd00::{me}/64"), format!("fd00::{far}"), format!("[fd00::{far}]:51820")),
        };
        let dir = std::env::temp_dir().join(format!("patronus-drivers-{}-{me}-{:?}", std::process::id(), std::thread::current().id()));
        std::fs::create_dir_all(&dir).unwrap();
        write_key(&dir, "site.key", key);
        let gate = if bfd { "bfd = \"link\"\n" } else { "" };
        let path = if path {
            format!("[[path]]\nname = \"wan\"\npeer = \"far\"\nport = \"wan0\"\nendpoint = \"{far_ep}\"\nprobe_interval_ms = 20\n{gate}")
        } else {
            String::new()
        };
        let bfd =
            if bfd { format!("[[bfd]]\nname = \"link\"\npeer = \"{far_ip}\"\nmin_tx_ms = 100\nmin_rx_ms = 100\n") } else { String::new() };
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
addresses = ["{addr}"]

[tunnel]
listen_port = 51820

[[tunnel.peer]]
name = "far"
public_key = "{peer_public}"
endpoint = "{far_ep}"
allowed_ips = ["10.{far}.0.0/24"]
{bfd}{path}"#
        );
        let path = dir.join("site.toml");
        let cfg = Config::parse(&path, &text).unwrap_or_else(|e| panic!("{e}"));
        let mac = EthernetAddress([2, 0, 0, 0, 0, me]);
        let routes = crate::snapshots::routes(&cfg, &[mac]).unwrap();
        let ring: PuntRing<HeapPacket> = Arc::new(ArrayQueue::new(256));
        let slow = SlowPath::new(routes, cfg.neighbor_conf(), vec![ring.clone()], 1);
        let tunnel = TunnelControl::new(&cfg.tunnel, &dir, cfg.private_key_path(&path).as_deref(), HZ, 0).unwrap();
        let paths = PathControl::new(&cfg, &tunnel, HZ);
        let io = TestIo { pool: HeapPool::new(), sent: Vec::new(), drops: RefCell::new(Vec::new()), tsc: 0 };
        let clock = TestClock(Arc::default());
        let decap = Decap::new(tunnel.reader(), slow.reader(), paths.reader(), clock.clone(), paths.bfd_enabled());
        let worker = (decap, Router::new(slow.reader(), clock.clone(), HZ));
        Site { io, ring, slow, tunnel, paths, mac, worker, clock, dropped: Vec::new(), _dir: TempDir(dir) }
    }

    /// One turn of the control loop at `at`, and the slow path's part of
    /// the next (which sends what the drivers queued in this one).
    fn poll(&mut self, at: Instant, t0: Instant) {
        self.io.tsc = at.duration_since(t0).as_nanos() as u64;
        self.clock.0.store(self.io.tsc, Relaxed);
        Stage::<HeapPacket>::tick(&mut self.worker);
        self.slow.poll(&mut self.io, at);
        self.tunnel.poll(&mut self.io, &mut self.slow, at);
        self.paths.poll(&mut self.io, &mut self.slow, &mut self.tunnel, at);
        self.slow.poll(&mut self.io, at);
    }

    fn up(&self) -> bool {
        self.tunnel.show()["peers"][0]["up"].as_bool().unwrap_or(false)
    }
}

/// Hands what `from` sent to `to`'s worker stages, as its NIC would: what
/// they punt goes to `to`'s control thread, what they send back (an
/// answered probe) is `to`'s to send, what they drop is counted in
/// `to.dropped`. Frames `keep` refuses are lost on the wire. Returns what
/// crossed it.
fn deliver(from: &mut Site, to: &mut Site, keep: impl Fn(Wire) -> bool) -> Vec<Wire> {
    // A worker adopts the newest snapshots at every turn of its loop.
    Stage::<HeapPacket>::tick(&mut to.worker);
    let mut crossed = Vec::new();
    for (_, mut pkt) in from.io.sent.drain(..) {
        let w = what(pkt.data());
        if !keep(w) {
            continue;
        }
        crossed.push(w);
        let mut meta = Meta::NEW;
        match to.worker.process(0, &mut pkt, &mut meta) {
            Verdict::Drop(r) => to.dropped.push(r),
            Verdict::Continue if meta.out_port() == TO_CONTROL => assert!(to.ring.push(pkt).is_ok()),
            Verdict::Continue if meta.out_port() == 0 => to.io.sent.push((0, pkt)),
            Verdict::Continue => assert_eq!(meta.out_port(), NO_PORT, "one port only"),
        }
    }
    crossed
}

/// Nothing the workers dropped but keepalives, which they consume and
/// count under their own reason.
fn only_keepalives_dropped(s: &Site) -> bool {
    s.dropped.iter().all(|r| *r == DropReason::TunnelKeepalive)
}

/// Two sites, with a BFD session, a probed path, over IPv6 as asked.
fn pair(bfd: bool, path: bool, v6: bool) -> (Site, Site) {
    let (ka, kb) = (keys::generate().unwrap(), keys::generate().unwrap());
    (Site::on(1, &ka, &kb.public_base64(), bfd, path, v6), Site::on(2, &kb, &ka.public_base64(), bfd, path, v6))
}

/// `steps` turns of both control loops, `dt` apart from `t`, every frame
/// delivered (and what b's workers answer handed back to a); returns the
/// time reached.
fn run(a: &mut Site, b: &mut Site, t0: Instant, mut t: Instant, steps: u32, dt: Duration) -> Instant {
    for _ in 0..steps {
        t += dt;
        a.poll(t, t0);
        deliver(a, b, |_| true);
        b.poll(t, t0);
        deliver(b, a, |_| true);
    }
    t
}

/// ARP resolution with the packet queued meanwhile, then a full Noise
/// handshake: A's initiation waits for B's MAC, B answers ARP, learns A
/// from the request, responds, and both sides have a session.
#[test]
fn arp_resolves_the_queued_handshake_and_both_sites_come_up() {
    let (mut a, mut b) = pair(false, false, false);
    let t0 = Instant::now();
    assert_eq!(a.tunnel.rekey(&mut a.io, &mut a.slow, None), Ok(1));
    a.poll(t0, t0);
    // The initiation waits in the neighbour queue; an ARP request goes out.
    assert_eq!(deliver(&mut a, &mut b, |_| true), [Wire::Arp(arp::Operation::Request)]);
    b.poll(t0, t0);
    assert_eq!(deliver(&mut b, &mut a, |_| true), [Wire::Arp(arp::Operation::Reply)]);
    a.poll(t0, t0);
    // Resolved: the queued initiation leaves, addressed to B's MAC.
    assert_eq!(deliver(&mut a, &mut b, |_| true), [Wire::Handshake(1)]);
    b.poll(t0, t0);
    // B learnt A's MAC from A's request: its response needs no ARP.
    assert_eq!(deliver(&mut b, &mut a, |_| true), [Wire::Handshake(2)]);
    a.poll(t0, t0);
    assert!(a.up(), "the initiator has a session after the response");
    assert_eq!(a.tunnel.show()["handshake"]["completed"], 1);
    assert_eq!(b.tunnel.show()["handshake"]["responses_sent"], 1);
    let neighbors = a.slow.neighbors();
    assert_eq!(neighbors.len(), 1);
    assert_eq!(neighbors[0].1, Some(b.mac));
    assert_eq!(neighbors[0].0.ip(), std::net::IpAddr::V4(Ipv4Addr::new(192, 168, 1, 2)));
    assert!(a.io.drops.borrow().is_empty() && b.io.drops.borrow().is_empty(), "the control threads dropped nothing");
    assert!(a.dropped.is_empty() && b.dropped.is_empty(), "the workers dropped nothing: {:?} {:?}", a.dropped, b.dropped);
}

/// A lost initiation is retried after REKEY_TIMEOUT (plus jitter), not
/// before, and the retry completes the handshake.
#[test]
fn a_lost_initiation_is_retried_after_the_rekey_timeout() {
    let (mut a, mut b) = pair(false, false, false);
    let t0 = Instant::now();
    a.tunnel.rekey(&mut a.io, &mut a.slow, None).unwrap();
    a.poll(t0, t0);
    deliver(&mut a, &mut b, |_| true);
    b.poll(t0, t0);
    deliver(&mut b, &mut a, |_| true);
    a.poll(t0, t0);
    // The first initiation is lost.
    assert_eq!(deliver(&mut a, &mut b, |w| !matches!(w, Wire::Handshake(_))), []);
    let before = dataplane::tunnel::REKEY_TIMEOUT - Duration::from_millis(1);
    a.poll(t0 + before, t0);
    assert!(a.io.sent.is_empty(), "no retry before REKEY_TIMEOUT");
    let after = dataplane::tunnel::REKEY_TIMEOUT + dataplane::tunnel::REKEY_TIMEOUT_JITTER_MAX + Duration::from_millis(1);
    a.poll(t0 + after, t0);
    assert_eq!(deliver(&mut a, &mut b, |_| true), [Wire::Handshake(1)], "the retry");
    b.poll(t0 + after, t0);
    deliver(&mut b, &mut a, |_| true);
    a.poll(t0 + after, t0);
    assert!(a.up());
    assert_eq!(a.tunnel.show()["handshake"]["initiations_sent"], 2);
}

/// BFD between the two control threads: both sessions go Down -> Init ->
/// Up, and a session whose packets stop arriving goes Down after the
/// detection time.
#[test]
fn bfd_sessions_come_up_and_detect_a_cut() {
    let (mut a, mut b) = pair(true, false, false);
    let t0 = Instant::now();
    let state = |s: &Site| s.paths.show_bfd()["sessions"][0]["state"].as_str().map(str::to_owned);
    let mut t = t0;
    // Slow start paces at one packet per second until Up.
    for _ in 0..40 {
        t += Duration::from_millis(250);
        a.poll(t, t0);
        deliver(&mut a, &mut b, |_| true);
        b.poll(t, t0);
        deliver(&mut b, &mut a, |_| true);
    }
    assert_eq!(state(&a).as_deref(), Some("up"), "{}", a.paths.show_bfd());
    assert_eq!(state(&b).as_deref(), Some("up"), "{}", b.paths.show_bfd());
    // The link is cut one way: B hears nothing more from A.
    for _ in 0..8 {
        t += Duration::from_millis(100);
        a.poll(t, t0);
        deliver(&mut a, &mut b, |w| w != Wire::Bfd);
        b.poll(t, t0);
        deliver(&mut b, &mut a, |_| true);
    }
    assert_eq!(state(&b).as_deref(), Some("down"), "detection: 3 x 100 ms");
}

/// SLA probes through both sites' worker stages, with a BFD session on
/// the link: BFD comes up, the tunnel's handshake goes through the decap
/// stages, and the probes go out every 20 ms; the far end's decap answers
/// each in place (sealed back by the way it came), ours punts the reply
/// with its arrival time, and the path controller counts every one.
#[test]
fn probes_are_answered_by_the_far_worker_and_counted_with_bfd_up() {
    let (mut a, mut b) = pair(true, true, false);
    // Before any answer: unmeasured (not down), probing wrapped in ICMP.
    let p = a.paths.show()["paths"][0].clone();
    assert_eq!(p["state"], "unmeasured", "{p}");
    assert!(
        p["probes"].as_str().unwrap().starts_with("icmp echo to ") && p["probes"].as_str().unwrap().ends_with("(no answer yet)"),
        "{p}"
    );
    let t0 = Instant::now();
    let t = run(&mut a, &mut b, t0, t0, 200, Duration::from_millis(10));
    // The controllers read their figures at the wall clock: let it catch up
    // with the 2 s the loop ran in a moment.
    std::thread::sleep(t.saturating_duration_since(Instant::now()));
    let bfd = |s: &Site| s.paths.show_bfd()["sessions"][0]["state"].as_str().map(str::to_owned);
    assert_eq!(bfd(&a).as_deref(), Some("up"), "{}", a.paths.show_bfd());
    assert_eq!(bfd(&b).as_deref(), Some("up"), "{}", b.paths.show_bfd());
    assert!(a.up() && b.up(), "the handshake went through the decap stages");
    let p = a.paths.show()["paths"][0].clone();
    let (sent, replies) = (p["probes_sent"].as_u64().unwrap(), p["replies"].as_u64().unwrap());
    assert!(replies >= 30, "about one probe per 20 ms once the session is up: {p}");
    assert!(sent - replies <= 2, "every probe answered but those in flight: {p}");
    // B answered the first (wrapped) probe as Patronus: A now probes plainly.
    assert_eq!((p["state"].as_str(), p["probes"].as_str()), (Some("up"), Some("patronus")), "{p}");
    assert!(only_keepalives_dropped(&a) && only_keepalives_dropped(&b), "{:?} {:?}", a.dropped, b.dropped);
}

/// Neighbor Discovery instead of ARP: over IPv6 the initiation waits for a
/// Neighbor Solicitation to be answered (through both sites' worker
/// stages, which punt NS and NA to the control threads), then the
/// handshake completes.
#[test]
fn nd_resolves_over_ipv6_and_the_handshake_completes() {
    let (mut a, mut b) = pair(false, false, true);
    let t0 = Instant::now();
    assert_eq!(a.tunnel.rekey(&mut a.io, &mut a.slow, None), Ok(1));
    let t = run(&mut a, &mut b, t0, t0, 5, Duration::from_millis(1));
    a.poll(t, t0);
    assert!(a.up(), "{}", a.tunnel.show());
    let far = std::net::IpAddr::V6("fd00::2".parse().unwrap());
    let resolved: Vec<_> = a.slow.neighbors().into_iter().filter(|n| n.0.ip() == far).collect();
    assert_eq!(resolved.len(), 1, "{:?}", a.slow.neighbors());
    assert_eq!(resolved[0].1, Some(b.mac), "b's MAC learnt by ND");
    assert!(only_keepalives_dropped(&a) && only_keepalives_dropped(&b), "{:?} {:?}", a.dropped, b.dropped);
}
