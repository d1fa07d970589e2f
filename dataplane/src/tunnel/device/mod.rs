//! The control thread's side of the tunnels: our identity, the peers, their
//! handshakes, cookies, sessions and timers. Sans-IO: messages come in and
//! go out as bytes, the time is passed in, randomness comes from the
//! caller's generator. Workers see the result as a published snapshot
//! ([`super::stage::Tunnels`]); [`Device::take_changed`] says when to
//! publish one.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use x25519_dalek::StaticSecret;

use super::cookie::{CookieChecker, CookieStamp};
use super::noise::{HandshakeError, Identity, Initiated};
use super::session::Session;
use super::*;
use crate::counters::DropReason;
use crate::wire::wireguard::{self as wg, kind};

mod handshake;
mod timers;

#[allow(unused_imports)]
pub use handshake::*;
#[allow(unused_imports)]
pub use timers::*;

/// Slots in the receiver-index table: a local index is a random number
/// whose low bits name its slot, so workers find a session with one load.
pub const INDEX_SLOTS: usize = 4096;
pub const INDEX_MASK: u32 = INDEX_SLOTS as u32 - 1;

/// Randomness: fills the buffer (a CSPRNG in production).
pub type Rng = Box<dyn FnMut(&mut [u8]) + Send>;

/// A deterministic generator (xorshift) for tests, benchmarks and fuzzing,
/// where runs must reproduce. Never for a running appliance's keys.
pub fn seeded_rng(seed: u64) -> Rng {
    let mut x = seed | 1;
    Box::new(move |b: &mut [u8]| {
        for v in b.iter_mut() {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            *v = x as u8;
        }
    })
}

/// A configured peer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerConfig {
    pub public: [u8; 32],
    pub psk: Option<[u8; 32]>,
    pub endpoint: Option<SocketAddr>,
    pub persistent_keepalive: Option<Duration>,
}

struct Pending {
    init: Initiated,
    started: Duration,
    sent: Duration,
    jitter: Duration,
}

/// One peer's state.
pub struct Peer {
    pub config: PeerConfig,
    /// Where packets to the peer go: configured, then learnt from
    /// authenticated handshakes.
    pub endpoint: Option<SocketAddr>,
    stamp: CookieStamp,
    pending: Option<Pending>,
    last_timestamp: Option<[u8; 12]>,
    last_initiation_rx: Option<Duration>,
    /// Sessions: the one being confirmed (responder), the one in use, the
    /// one before it (still accepted while packets in flight drain).
    pub next: Option<Arc<Session>>,
    pub current: Option<Arc<Session>>,
    pub previous: Option<Arc<Session>>,
    /// When the last handshake completed.
    pub last_handshake: Option<Duration>,
    /// Wall-clock time of the last completed handshake (for `show peers`).
    pub last_handshake_wall: Option<Duration>,
    /// First data sent since anything was last received (arms a new handshake).
    data_unanswered: Option<Duration>,
    /// Data received and nothing sent since (arms a keepalive).
    keepalive_due: Option<Duration>,
    last_any_tx: Option<Duration>,
    last_data_tx: Option<Duration>,
    last_data_rx: Option<Duration>,
    pub live: Arc<PeerLive>,
    pub handshakes: u64,
    /// Taken out of the configuration by a reload: no sessions, no timers,
    /// its handshakes are refused. Its index stays so others keep theirs.
    pub removed: bool,
}

/// What a peer's timers ask for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TimerAction {
    /// Send (or resend) a handshake initiation: call [`Device::initiate`].
    Initiate,
    /// Send an empty transport message: call [`Device::keepalive`].
    Keepalive,
    /// REKEY_ATTEMPT_TIME passed without a response: the attempt ended.
    GaveUp,
    /// No new handshake for 3 × REJECT_AFTER_TIME: the keys were erased.
    KeysErased,
}

/// The result of handling an initiation.
pub enum InitiationOutcome {
    /// A valid initiation from peer `peer`: send `msg` back.
    Response { peer: usize, msg: [u8; wg::RESPONSE_LEN] },
    /// Under load and without a valid mac2: send this cookie reply instead.
    Cookie([u8; wg::COOKIE_REPLY_LEN]),
}

/// The result of handling a response.
pub enum ResponseOutcome {
    /// The handshake with `peer` completed; it has a new current session.
    Done {
        peer: usize,
    },
    Cookie([u8; wg::COOKIE_REPLY_LEN]),
}

/// Handshake counters (the control thread exports them).
#[derive(Clone, Debug, Default)]
pub struct HandshakeStats {
    pub initiations_sent: u64,
    pub initiations_received: u64,
    pub responses_sent: u64,
    pub responses_received: u64,
    pub cookies_sent: u64,
    pub cookies_received: u64,
    pub completed: u64,
    /// Refused handshake messages, by reason.
    pub refused: HashMap<&'static str, u64>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Slot {
    Free,
    Pending(usize),
    Session(usize),
}

/// Our side of every tunnel.
pub struct Device {
    pub identity: Identity,
    checker: CookieChecker,
    pub peers: Vec<Peer>,
    by_key: HashMap<[u8; 32], usize>,
    slots: Vec<Slot>,
    cursor: usize,
    rng: Rng,
    /// Handshake messages per second above which mac2 is demanded.
    pub load_limit: u32,
    /// Forces the under-load behaviour (tests; an operator's switch).
    pub force_under_load: bool,
    window: (Duration, u32),
    changed: bool,
    pub stats: HandshakeStats,
}

fn src_bytes(src: SocketAddr, out: &mut [u8; 18]) -> usize {
    match src {
        SocketAddr::V4(a) => {
            out[..4].copy_from_slice(&a.ip().octets());
            out[4..6].copy_from_slice(&a.port().to_be_bytes());
            6
        }
        SocketAddr::V6(a) => {
            out[..16].copy_from_slice(&a.ip().octets());
            out[16..18].copy_from_slice(&a.port().to_be_bytes());
            18
        }
    }
}

fn refuse(stats: &mut HandshakeStats, e: HandshakeError) -> HandshakeError {
    *stats.refused.entry(handshake_error_name(e)).or_default() += 1;
    e
}

/// Stable snake_case name of a handshake refusal (metric label).
pub fn handshake_error_name(e: HandshakeError) -> &'static str {
    match e {
        HandshakeError::Malformed => "malformed",
        HandshakeError::Decrypt => "decrypt",
        HandshakeError::LowOrderKey => "low_order_key",
        HandshakeError::UnknownPeer => "unknown_peer",
        HandshakeError::Replay => "replayed_timestamp",
        HandshakeError::Flood => "flood",
        HandshakeError::UnexpectedResponse => "unexpected_response",
        HandshakeError::BadMac1 => "bad_mac1",
    }
}

impl Device {
    pub fn new(private: [u8; 32], peers: Vec<PeerConfig>, rng: Rng) -> Self {
        let identity = Identity::new(private);
        let checker = CookieChecker::new(&identity.public);
        let mut d = Device {
            identity,
            checker,
            peers: Vec::new(),
            by_key: HashMap::new(),
            slots: vec![Slot::Free; INDEX_SLOTS],
            cursor: 0,
            rng,
            load_limit: 1000,
            force_under_load: false,
            window: (Duration::ZERO, 0),
            changed: true,
            stats: HandshakeStats::default(),
        };
        for p in peers {
            d.add_peer(p);
        }
        d
    }

    /// Adds a peer; returns its index (a peer with the same key is replaced
    /// in place, keeping its sessions if nothing but options changed).
    pub fn add_peer(&mut self, config: PeerConfig) -> usize {
        if let Some(&i) = self.by_key.get(&config.public) {
            let p = &mut self.peers[i];
            if p.config.psk != config.psk {
                self.clear_sessions(i);
            }
            let p = &mut self.peers[i];
            if config.endpoint.is_some() && config.endpoint != p.config.endpoint {
                p.endpoint = config.endpoint;
            }
            p.config = config;
            self.changed = true;
            return i;
        }
        let i = self.peers.len();
        self.by_key.insert(config.public, i);
        self.peers.push(Peer {
            stamp: CookieStamp::new(&config.public),
            endpoint: config.endpoint,
            config,
            pending: None,
            last_timestamp: None,
            last_initiation_rx: None,
            next: None,
            current: None,
            previous: None,
            last_handshake: None,
            last_handshake_wall: None,
            data_unanswered: None,
            keepalive_due: None,
            last_any_tx: None,
            last_data_tx: None,
            last_data_rx: None,
            live: Arc::default(),
            handshakes: 0,
            removed: false,
        });
        self.changed = true;
        i
    }

    /// Removes peer `i` (a reload dropped it): its sessions end at once.
    pub fn remove_peer(&mut self, i: usize) {
        self.clear_sessions(i);
        let p = &mut self.peers[i];
        if let Some(pending) = p.pending.take() {
            let index = pending.init.local_index;
            self.free(index);
        }
        let p = &mut self.peers[i];
        p.removed = true;
        p.endpoint = None;
        self.by_key.remove(&p.config.public);
        self.changed = true;
    }

    /// Whether sessions or endpoints changed since the last call (publish
    /// a new snapshot then).
    pub fn take_changed(&mut self) -> bool {
        std::mem::take(&mut self.changed)
    }

    fn random_u32(&mut self) -> u32 {
        let mut b = [0u8; 4];
        (self.rng)(&mut b);
        u32::from_le_bytes(b)
    }

    fn secret(&mut self) -> StaticSecret {
        let mut b = [0u8; 32];
        (self.rng)(&mut b);
        StaticSecret::from(b)
    }

    /// A fresh local index in a free slot.
    fn allocate(&mut self, use_: Slot) -> Option<u32> {
        for k in 0..INDEX_SLOTS {
            let s = (self.cursor + k) % INDEX_SLOTS;
            if self.slots[s] == Slot::Free {
                self.slots[s] = use_;
                self.cursor = s + 1;
                return Some(self.random_u32() & !INDEX_MASK | s as u32);
            }
        }
        None
    }

    fn free(&mut self, index: u32) {
        self.slots[(index & INDEX_MASK) as usize] = Slot::Free;
    }

    fn drop_session(&mut self, s: Option<Arc<Session>>) {
        if let Some(s) = s {
            self.free(s.local_index);
            self.changed = true;
        }
    }

    fn clear_sessions(&mut self, i: usize) {
        let p = &mut self.peers[i];
        let (a, b, c) = (p.next.take(), p.current.take(), p.previous.take());
        for s in [a, b, c] {
            self.drop_session(s);
        }
    }

    /// The session of a local index, if live.
    pub fn session_by_index(&self, index: u32) -> Option<&Arc<Session>> {
        let Slot::Session(i) = self.slots[(index & INDEX_MASK) as usize] else { return None };
        let p = &self.peers[i];
        [&p.next, &p.current, &p.previous].into_iter().flatten().find(|s| s.local_index == index)
    }

    /// Under load: more handshake messages this second than `load_limit`.
    fn under_load(&mut self, now: Duration) -> bool {
        if now.saturating_sub(self.window.0) >= Duration::from_secs(1) {
            self.window = (now, 0);
        }
        self.window.1 += 1;
        self.force_under_load || self.window.1 > self.load_limit
    }

    /// Whether a handshake with `i` is in flight.
    pub fn handshake_pending(&self, i: usize) -> bool {
        self.peers[i].pending.is_some()
    }

    /// A handshake on demand (data waiting, or an operator's rekey): true
    /// unless one was sent less than REKEY_TIMEOUT ago.
    pub fn may_initiate(&self, i: usize, now: Duration) -> bool {
        self.peers[i].pending.as_ref().is_none_or(|p| now.saturating_sub(p.sent) >= REKEY_TIMEOUT)
    }

    /// Records that we sent to peer `i` (`data`: a data packet, not a
    /// keepalive or handshake).
    pub fn sent(&mut self, i: usize, now: Duration, data: bool) {
        let p = &mut self.peers[i];
        p.last_any_tx = Some(p.last_any_tx.map_or(now, |t| t.max(now)));
        p.keepalive_due = None;
        if data {
            p.last_data_tx = Some(now);
            p.data_unanswered.get_or_insert(now);
        }
    }

    /// Records an authenticated packet from peer `i` (`data`: not a keepalive).
    pub fn received(&mut self, i: usize, now: Duration, data: bool) {
        let p = &mut self.peers[i];
        p.data_unanswered = None;
        if data {
            p.last_data_rx = Some(now);
            p.keepalive_due.get_or_insert(now);
        }
    }

    /// The session to send to peer `i` with: a confirmed next one, else
    /// the current one, if not past REJECT_AFTER_TIME.
    pub fn sending_session(&self, i: usize, now: Duration) -> Option<&Arc<Session>> {
        let p = &self.peers[i];
        [&p.next, &p.current].into_iter().flatten().find(|s| s.confirmed()).filter(|s| now.saturating_sub(s.born) < REJECT_AFTER_TIME)
    }

    /// The snapshot the workers run: peers, allowed IPs (prefix, length,
    /// peer) and every live session, with deadlines converted to the
    /// workers' clock by `ticks`.
    pub fn snapshot(
        &self,
        listen_port: u16,
        mtu: u16,
        allowed: &[(std::net::IpAddr, u8, usize)],
        ticks: impl Fn(Duration) -> u64,
    ) -> super::stage::Tunnels {
        use super::stage::{PeerPath, SessionRef, Tunnels};
        let sref = |s: &Arc<Session>| {
            let until = ticks(s.born + REJECT_AFTER_TIME);
            let rekey_at = if s.initiator { ticks(s.born + REKEY_AFTER_TIME) } else { u64::MAX };
            SessionRef { session: s.clone(), send_until: until, recv_until: until, rekey_at }
        };
        let mut peers = Vec::new();
        let mut sessions = Vec::new();
        for p in &self.peers {
            peers.push(PeerPath {
                endpoint: p.endpoint,
                send: [p.next.as_ref().map(sref), p.current.as_ref().map(sref)],
                live: p.live.clone(),
            });
            sessions.extend([&p.next, &p.current, &p.previous].into_iter().flatten().map(sref));
        }
        Tunnels::new(listen_port, mtu, peers, allowed, sessions)
    }

    /// Encrypts `payload` for peer `i` into a transport message (the
    /// control thread's keepalives; tests). The payload is padded to 16.
    pub fn encapsulate(&mut self, i: usize, payload: &[u8], now: Duration) -> Result<Vec<u8>, DropReason> {
        let s = self.sending_session(i, now).ok_or(DropReason::TunnelNoSession)?.clone();
        let padded = payload.len().next_multiple_of(wg::PADDING);
        let mut msg = vec![0u8; wg::TRANSPORT_HEADER_LEN + padded + wg::TAG_LEN];
        msg[wg::TRANSPORT_HEADER_LEN..][..payload.len()].copy_from_slice(payload);
        let counter = s.reserve(1).ok_or(DropReason::TunnelExpired)?;
        s.seal(counter, &mut msg);
        self.sent(i, now, !payload.is_empty());
        Ok(msg)
    }

    /// A keepalive for peer `i`.
    pub fn keepalive(&mut self, i: usize, now: Duration) -> Option<Vec<u8>> {
        self.encapsulate(i, &[], now).ok()
    }

    /// Opens a transport message in place; returns the peer and the
    /// plaintext's length at `msg[16..]` (padding included).
    pub fn decapsulate(&mut self, msg: &mut [u8], now: Duration) -> Result<(usize, usize), DropReason> {
        if wg::message_type(msg) != Ok(kind::TRANSPORT) {
            return Err(DropReason::TunnelMalformed);
        }
        let (index, _) = wg::transport_header(msg);
        let s = self.session_by_index(index).ok_or(DropReason::TunnelUnknownIndex)?.clone();
        if now.saturating_sub(s.born) >= REJECT_AFTER_TIME {
            return Err(DropReason::TunnelExpired);
        }
        let n = s.open(msg)?;
        self.received(s.peer, now, n > 0);
        Ok((s.peer, n))
    }
}
