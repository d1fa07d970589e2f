//! The control thread's side of the tunnels: answers the handshake
//! messages workers punt, runs every peer's timers (handshake retries,
//! rekeying, keepalives), sends from the control thread's TX queues, and
//! publishes a new [`Tunnels`] snapshot whenever sessions change.

use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant, SystemTime};

use dataplane::egress::ControlIo;
use dataplane::packet::Packet;
use dataplane::rcu::{Publisher, Reader};
use dataplane::router::punt;
use dataplane::tunnel::device::{Device, InitiationOutcome, PeerConfig, ResponseOutcome, TimerAction};
use dataplane::tunnel::stage::{emit_ip_udp, Tunnels};
use dataplane::wire::wireguard::{self as wg, kind};
use dataplane::wire::{ipv4, ipv6, udp};
use serde_json::{json, Value};

use crate::config::keys::encode_base64_32;
use crate::config::tunnel::{PeerSpec, TunnelOpts};
use crate::slowpath::SlowPath;

/// Bytes from the kernel's CSPRNG.
pub fn os_random(b: &mut [u8]) {
    let mut done = 0;
    while done < b.len() {
        // SAFETY: a valid buffer of the given length.
        let n = unsafe { libc::getrandom(b[done..].as_mut_ptr().cast(), b.len() - done, 0) };
        if n > 0 {
            done += n as usize;
        }
    }
}

/// Events the control thread counts (exported as metrics).
#[derive(Clone, Debug, Default)]
pub struct TunnelEvents {
    pub keepalives_sent: u64,
    pub attempts_abandoned: u64,
    pub keys_erased: u64,
    pub send_failures: u64,
}

/// What the worker side last reported for a peer (to notice changes).
#[derive(Clone, Copy, Default)]
struct Seen {
    rx: u64,
    tx: u64,
}

pub struct TunnelControl {
    device: Device,
    names: Vec<String>,
    allowed: Vec<(IpAddr, u8, usize)>,
    listen_port: u16,
    mtu: u16,
    publisher: Publisher<Tunnels>,
    started: Instant,
    tsc0: u64,
    hz: u64,
    seen: Vec<Seen>,
    pub events: TunnelEvents,
    enabled: bool,
}

impl TunnelControl {
    /// Tunnels as `[tunnel]` configures them (off when it sets no key).
    /// `key`: the site's key file (`[site] private_key_file`, resolved).
    pub fn new(opts: &TunnelOpts, dir: &Path, key: Option<&Path>, hz: u64, tsc_now: u64) -> Result<TunnelControl, String> {
        let started = Instant::now();
        if !opts.enabled() {
            return Ok(TunnelControl {
                device: Device::new([0; 32], Vec::new(), Box::new(os_random)),
                names: Vec::new(),
                allowed: Vec::new(),
                listen_port: 0,
                mtu: opts.mtu,
                publisher: Publisher::new(Tunnels::off()),
                started,
                tsc0: tsc_now,
                hz,
                seen: Vec::new(),
                events: TunnelEvents::default(),
                enabled: false,
            });
        }
        let (private, peers) = opts.load(dir, key)?;
        let mut names = Vec::new();
        let mut allowed = Vec::new();
        let mut configs = Vec::new();
        for (i, PeerSpec { name, public, psk, endpoint, allowed: a, persistent_keepalive }) in peers.into_iter().enumerate() {
            names.push(name);
            allowed.extend(a.into_iter().map(|(p, l)| (p, l, i)));
            configs.push(PeerConfig {
                public,
                psk: psk.map(|k| *k.bytes()),
                endpoint,
                persistent_keepalive: (persistent_keepalive > 0).then(|| Duration::from_secs(persistent_keepalive as u64)),
            });
        }
        let mut device = Device::new(*private.bytes(), configs, Box::new(os_random));
        device.load_limit = opts.handshake_load_limit;
        let n = names.len();
        let mut t = TunnelControl {
            device,
            names,
            allowed,
            listen_port: opts.listen_port,
            mtu: opts.mtu,
            publisher: Publisher::new(Tunnels::off()),
            started,
            tsc0: tsc_now,
            hz,
            seen: vec![Seen::default(); n],
            events: TunnelEvents::default(),
            enabled: true,
        };
        t.publish();
        Ok(t)
    }

    /// Applies a reloaded `[tunnel]` (same key and port): peers added,
    /// changed (sessions kept unless the preshared key changed) or removed,
    /// allowed IPs, MTU and the load limit. Nothing changes on an error.
    pub fn reconfigure(&mut self, opts: &TunnelOpts, dir: &Path, key: Option<&Path>) -> Result<(), String> {
        if !self.enabled {
            return Ok(()); // turning tunnels on needs a restart
        }
        let (_, specs) = opts.load(dir, key)?;
        let mut keep = vec![false; self.device.peers.len()];
        let mut allowed = Vec::new();
        for spec in specs {
            let i = self.device.add_peer(PeerConfig {
                public: spec.public,
                psk: spec.psk.map(|k| *k.bytes()),
                endpoint: spec.endpoint,
                persistent_keepalive: (spec.persistent_keepalive > 0).then(|| Duration::from_secs(spec.persistent_keepalive as u64)),
            });
            if i >= self.names.len() {
                self.names.resize(i + 1, String::new());
                self.seen.resize(i + 1, Seen::default());
                keep.resize(i + 1, false);
            }
            self.names[i] = spec.name;
            keep[i] = true;
            allowed.extend(spec.allowed.into_iter().map(|(p, l)| (p, l, i)));
        }
        for (i, k) in keep.into_iter().enumerate() {
            if !k && !self.device.peers[i].removed {
                self.device.remove_peer(i);
            }
        }
        self.allowed = allowed;
        self.mtu = opts.mtu;
        self.device.load_limit = opts.handshake_load_limit;
        self.publish();
        Ok(())
    }

    pub fn enabled(&self) -> bool {
        self.enabled
    }

    /// Our public key, in WireGuard's base64 form.
    pub fn public_key(&self) -> String {
        encode_base64_32(&self.device.identity.public)
    }

    pub fn listen_port(&self) -> u16 {
        self.listen_port
    }

    /// A reader of the snapshot, for one worker's tunnel stages.
    pub fn reader(&self) -> Reader<Tunnels> {
        self.publisher.reader()
    }

    fn now(&self, at: Instant) -> Duration {
        at.duration_since(self.started)
    }

    /// A TSC reading as a point on the core clock (`None` for 0: never).
    fn worker_time(&self, t: u64) -> Option<Duration> {
        (t != 0).then(|| Duration::from_secs_f64(t.saturating_sub(self.tsc0) as f64 / self.hz.max(1) as f64))
    }

    fn publish(&mut self) {
        let (tsc0, hz) = (self.tsc0, self.hz);
        let ticks = move |d: Duration| tsc0.saturating_add((d.as_secs_f64() * hz as f64) as u64);
        let snap = self.device.snapshot(self.listen_port, self.mtu, &self.allowed, ticks);
        self.publisher.publish(snap);
    }

    /// Handles punted handshakes and runs the timers. Returns whether
    /// there was work.
    pub fn poll<P: Packet>(&mut self, io: &mut impl ControlIo<Pkt = P>, slow: &mut SlowPath<P>, at: Instant) -> bool {
        let mut work = false;
        let now = self.now(at);
        for (h, pkt) in std::mem::take(&mut slow.tunnel_rx) {
            work = true;
            self.on_message(io, slow, &h, pkt, at);
        }
        if !self.enabled {
            return work;
        }
        for i in 0..self.device.peers.len() {
            self.merge_live(i);
            let live = self.device.peers[i].live.clone();
            if live.want_handshake.swap(false, Relaxed) && self.device.may_initiate(i, now) {
                work = true;
                self.initiate(io, slow, i, at);
            }
            match self.device.timers(i, now) {
                None => {}
                Some(TimerAction::Initiate) => {
                    work = true;
                    self.initiate(io, slow, i, at);
                }
                Some(TimerAction::Keepalive) => {
                    work = true;
                    self.keepalive(io, slow, i, at);
                }
                Some(TimerAction::GaveUp) => self.events.attempts_abandoned += 1,
                Some(TimerAction::KeysErased) => self.events.keys_erased += 1,
            }
        }
        if self.device.take_changed() {
            self.publish();
        }
        self.publisher.reclaim();
        work
    }

    /// Folds the workers' activity into the peer's timers.
    fn merge_live(&mut self, i: usize) {
        let live = &self.device.peers[i].live;
        let (rx, tx) = (live.last_rx.load(Relaxed), live.last_tx.load(Relaxed));
        let seen = self.seen[i];
        if rx != seen.rx {
            if let Some(t) = self.worker_time(rx) {
                self.device.received(i, t, true);
            }
        }
        if tx != seen.tx {
            if let Some(t) = self.worker_time(tx) {
                self.device.sent(i, t, true);
            }
        }
        self.seen[i] = Seen { rx, tx };
    }

    /// Starts (or retries) a handshake with peer `i`.
    fn initiate<P: Packet>(&mut self, io: &mut impl ControlIo<Pkt = P>, slow: &mut SlowPath<P>, i: usize, at: Instant) {
        let Some(endpoint) = self.device.peers[i].endpoint else { return };
        let wall = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default();
        if let Some(msg) = self.device.initiate(i, self.now(at), wall) {
            self.send(io, slow, endpoint, &msg, at);
        }
    }

    fn keepalive<P: Packet>(&mut self, io: &mut impl ControlIo<Pkt = P>, slow: &mut SlowPath<P>, i: usize, at: Instant) {
        let Some(endpoint) = self.device.peers[i].endpoint else { return };
        if let Some(msg) = self.device.keepalive(i, self.now(at)) {
            self.events.keepalives_sent += 1;
            self.send(io, slow, endpoint, &msg, at);
        }
    }

    /// Starts a handshake with the named peer (all peers: `None`) now.
    pub fn rekey<P: Packet>(
        &mut self,
        io: &mut impl ControlIo<Pkt = P>,
        slow: &mut SlowPath<P>,
        peer: Option<&str>,
    ) -> Result<usize, String> {
        let at = Instant::now();
        let which: Vec<usize> = match peer {
            None => (0..self.names.len()).filter(|&i| !self.device.peers[i].removed).collect(),
            Some(n) => vec![(0..self.names.len())
                .find(|&i| self.names[i] == n && !self.device.peers[i].removed)
                .ok_or_else(|| format!("no tunnel peer named {n:?}"))?],
        };
        for &i in &which {
            self.initiate(io, slow, i, at);
        }
        Ok(which.len())
    }

    /// The index of the peer named `name`.
    pub fn peer_index(&self, name: &str) -> Option<usize> {
        (0..self.names.len()).find(|&i| self.names[i] == name && !self.device.peers[i].removed)
    }

    pub fn peer_count(&self) -> usize {
        self.device.peers.len()
    }

    /// A transport message to peer `i` carrying `payload` (a multiple of
    /// 16 bytes), sealed with its current sending session.
    /// Without one, asks for a handshake.
    pub fn seal(&self, i: usize, payload: &[u8], at: Instant) -> Option<Vec<u8>> {
        let Some(s) = self.device.sending_session(i, self.now(at)) else {
            self.device.peers.get(i)?.live.ask_handshake();
            return None;
        };
        let counter = s.reserve(1)?;
        let mut msg = vec![0u8; wg::TRANSPORT_HEADER_LEN + payload.len() + wg::TAG_LEN];
        msg[wg::TRANSPORT_HEADER_LEN..wg::TRANSPORT_HEADER_LEN + payload.len()].copy_from_slice(payload);
        s.seal(counter, &mut msg);
        Some(msg)
    }

    /// Where handshakes and keepalives to peer `i` go (a live path's
    /// endpoint when the configured one's path is down).
    pub fn set_endpoint(&mut self, i: usize, to: SocketAddr) {
        if let Some(p) = self.device.peers.get_mut(i) {
            p.endpoint = Some(to);
        }
    }

    pub fn endpoint(&self, i: usize) -> Option<SocketAddr> {
        self.device.peers.get(i).and_then(|p| p.endpoint)
    }

    /// Sends a WireGuard message to `to` from our listen port.
    pub fn send<P: Packet>(&mut self, io: &mut impl ControlIo<Pkt = P>, slow: &mut SlowPath<P>, to: SocketAddr, msg: &[u8], at: Instant) {
        let ip = if to.is_ipv4() { ipv4::HEADER_LEN } else { ipv6::HEADER_LEN };
        let len = ip + udp::HEADER_LEN + msg.len();
        let port = self.listen_port;
        let r = slow.originate(io, to.ip(), len, at, |src, b| {
            b[ip + udp::HEADER_LEN..].copy_from_slice(msg);
            emit_ip_udp(src, port, to, b)
        });
        if r.is_err() {
            self.events.send_failures += 1;
        }
    }

    /// One punted handshake message.
    fn on_message<P: Packet>(&mut self, io: &mut impl ControlIo<Pkt = P>, slow: &mut SlowPath<P>, h: &punt::Header, pkt: P, at: Instant) {
        let Some((src, _, _, msg)) = crate::slowpath::udp_datagram(pkt.data(), h.l2_len as usize) else { return };
        let msg = msg.to_vec();
        drop(pkt);
        if !self.enabled {
            return;
        }
        let before: Vec<u64> = self.device.peers.iter().map(|p| p.handshakes).collect();
        self.on_handshake_message(io, slow, src, &msg, at);
        for (i, p) in self.device.peers.iter().enumerate() {
            if before.get(i).is_some_and(|&b| b != p.handshakes) {
                let name = self.names.get(i).cloned().unwrap_or_default();
                let m = format!("handshake with peer {name} completed (session {})", p.handshakes);
                crate::events::emit("handshake", m, json!({ "peer": name, "handshakes": p.handshakes, "endpoint": src.to_string() }));
            }
        }
    }

    fn on_handshake_message<P: Packet>(
        &mut self,
        io: &mut impl ControlIo<Pkt = P>,
        slow: &mut SlowPath<P>,
        src: SocketAddr,
        msg: &[u8],
        at: Instant,
    ) {
        let now = self.now(at);
        match wg::message_type(msg) {
            Ok(kind::INITIATION) => match self.device.handle_initiation(msg, src, now) {
                Ok(InitiationOutcome::Response { msg: out, .. }) => self.send(io, slow, src, &out, at),
                Ok(InitiationOutcome::Cookie(out)) => self.send(io, slow, src, &out, at),
                Err(_) => {}
            },
            Ok(kind::RESPONSE) => match self.device.handle_response(msg, src, now) {
                Ok(ResponseOutcome::Done { peer }) => {
                    // Confirms the session to the responder at once.
                    self.publish();
                    self.keepalive(io, slow, peer, at);
                }
                Ok(ResponseOutcome::Cookie(out)) => self.send(io, slow, src, &out, at),
                Err(_) => {}
            },
            Ok(kind::COOKIE_REPLY) => {
                let _ = self.device.handle_cookie_reply(msg, now);
            }
            _ => {}
        }
    }

    /// `patronus show peers`.
    pub fn show(&self) -> Value {
        let now = self.now(Instant::now());
        let wall = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default();
        let peers: Vec<Value> = self
            .device
            .peers
            .iter()
            .enumerate()
            .filter(|(_, p)| !p.removed)
            .map(|(i, p)| {
                let live = &p.live;
                let age = p.last_handshake.map(|t| now.saturating_sub(t).as_secs_f64());
                json!({
                    "peer": self.names[i],
                    "public_key": encode_base64_32(&p.config.public),
                    "preshared_key": p.config.psk.is_some(),
                    "endpoint": p.endpoint.map(|e| e.to_string()),
                    "allowed_ips": self.allowed.iter().filter(|a| a.2 == i).map(|a| format!("{}/{}", a.0, a.1)).collect::<Vec<_>>(),
                    "latest_handshake_seconds_ago": age,
                    "latest_handshake_unix": age.map(|a| wall.as_secs_f64() - a),
                    "handshakes": p.handshakes,
                    "up": self.up(i, now),
                    "rx_bytes": live.rx_bytes.load(Relaxed),
                    "tx_bytes": live.tx_bytes.load(Relaxed),
                    "rx_packets": live.rx_packets.load(Relaxed),
                    "tx_packets": live.tx_packets.load(Relaxed),
                    "persistent_keepalive_seconds": p.config.persistent_keepalive.map(|d| d.as_secs()),
                    "handshake_in_flight": self.device.handshake_pending(i),
                })
            })
            .collect();
        let s = &self.device.stats;
        json!({
            "enabled": self.enabled,
            "public_key": self.enabled.then(|| self.public_key()),
            "listen_port": self.listen_port,
            "mtu": self.mtu,
            "peers": peers,
            "handshake": {
                "initiations_sent": s.initiations_sent, "initiations_received": s.initiations_received,
                "responses_sent": s.responses_sent, "responses_received": s.responses_received,
                "cookies_sent": s.cookies_sent, "cookies_received": s.cookies_received,
                "completed": s.completed, "refused": s.refused,
            },
            "keepalives_sent": self.events.keepalives_sent,
            "attempts_abandoned": self.events.attempts_abandoned,
            "keys_erased": self.events.keys_erased,
            "send_failures": self.events.send_failures,
        })
    }

    /// Whether peer `i` has a session usable to send.
    fn up(&self, i: usize, now: Duration) -> bool {
        self.device.sending_session(i, now).is_some()
    }

    /// Exports the tunnel series.
    pub fn export(&self) {
        let now = self.now(Instant::now());
        for (i, p) in self.device.peers.iter().enumerate().filter(|(_, p)| !p.removed) {
            let peer = self.names[i].clone();
            // An OpenMetrics state set: one series per status, 1 for the current one.
            let up = self.up(i, now);
            for (status, on) in [("up", up), ("down", !up)] {
                metrics::gauge!("patronus_tunnel_status", "peer" => peer.clone(), "status" => status).set(if on { 1.0 } else { 0.0 });
            }
            metrics::counter!("patronus_tunnel_rx_bytes_total", "peer" => peer.clone()).absolute(p.live.rx_bytes.load(Relaxed));
            metrics::counter!("patronus_tunnel_tx_bytes_total", "peer" => peer.clone()).absolute(p.live.tx_bytes.load(Relaxed));
            metrics::counter!("patronus_tunnel_handshakes_total", "peer" => peer.clone()).absolute(p.handshakes);
            if let Some(t) = p.last_handshake {
                metrics::gauge!("patronus_tunnel_last_handshake_seconds", "peer" => peer).set(now.saturating_sub(t).as_secs_f64());
            }
        }
        let s = &self.device.stats;
        for (k, dir, v) in [
            ("initiation", "sent", s.initiations_sent),
            ("initiation", "received", s.initiations_received),
            ("response", "sent", s.responses_sent),
            ("response", "received", s.responses_received),
            ("cookie_reply", "sent", s.cookies_sent),
            ("cookie_reply", "received", s.cookies_received),
        ] {
            metrics::counter!("patronus_tunnel_handshake_messages_total", "kind" => k, "direction" => dir).absolute(v);
        }
        for (reason, n) in &s.refused {
            metrics::counter!("patronus_tunnel_handshake_refused_total", "reason" => *reason).absolute(*n);
        }
    }
}
