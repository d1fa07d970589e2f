//! The tunnel on the workers: [`Decap`] opens transport messages to our
//! listen port in place and hands the inner packet on as if it had arrived
//! on the port; [`Encap`] seals packets whose destination is in a peer's
//! allowed IPs (cryptokey routing) in place, using the mbuf's headroom for
//! the outer headers and its tailroom for padding and the tag, and routes
//! the outer packet. Handshake messages go to the control thread.
//!
//! Both read one immutable [`Tunnels`] snapshot the control thread
//! publishes on every handshake, so new keys arrive without locks.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use super::device::{INDEX_MASK, INDEX_SLOTS};
use super::session::Session;
use super::PeerLive;
use crate::path::Steering;
use crate::router::lpm::Lpm;
use crate::wire::{checksum, ip_proto, ipv4, ipv6, udp, Ipv6Address};

mod decap;
mod encap;

pub use decap::*;
pub use encap::*;

/// A session as the workers use it, with deadlines on their clock.
#[derive(Clone)]
pub struct SessionRef {
    pub session: Arc<Session>,
    /// Not used to send from then on (REJECT_AFTER_TIME).
    pub send_until: u64,
    /// Not accepted from then on (REJECT_AFTER_TIME).
    pub recv_until: u64,
    /// Sending or receiving from then on asks for a new handshake.
    pub rekey_at: u64,
}

/// A peer as the workers see it.
pub struct PeerPath {
    pub endpoint: Option<SocketAddr>,
    /// Sessions to send with, newest first (a responder's newest only once confirmed).
    pub send: [Option<SessionRef>; 2],
    pub live: Arc<PeerLive>,
}

/// The snapshot the tunnel stages read.
pub struct Tunnels {
    /// UDP port for WireGuard (0: tunnels off).
    pub listen_port: u16,
    /// Largest inner packet sent into a tunnel.
    pub mtu: u16,
    pub peers: Vec<PeerPath>,
    allowed4: Lpm<u32>,
    allowed6: Lpm<u128>,
    /// Sessions by the low bits of their local index.
    index: Box<[Option<SessionRef>]>,
}

impl Tunnels {
    /// No tunnels: both stages pass every packet on untouched.
    pub fn off() -> Self {
        Tunnels {
            listen_port: 0,
            mtu: 1420,
            peers: Vec::new(),
            allowed4: Lpm::build(&[]),
            allowed6: Lpm::build(&[]),
            index: (0..INDEX_SLOTS).map(|_| None).collect(),
        }
    }

    /// A snapshot: `allowed` lists (prefix, length, peer index); `sessions`
    /// every live session (sending ones are also in `peers`).
    pub fn new(listen_port: u16, mtu: u16, peers: Vec<PeerPath>, allowed: &[(IpAddr, u8, usize)], sessions: Vec<SessionRef>) -> Self {
        let mut v4 = Vec::new();
        let mut v6 = Vec::new();
        for &(p, len, peer) in allowed {
            match p {
                IpAddr::V4(a) => v4.push((u32::from(a), len, peer as u32)),
                IpAddr::V6(a) => v6.push((u128::from(a), len, peer as u32)),
            }
        }
        let mut index: Box<[Option<SessionRef>]> = (0..INDEX_SLOTS).map(|_| None).collect();
        for s in sessions {
            let slot = (s.session.local_index & INDEX_MASK) as usize;
            index[slot] = Some(s);
        }
        Tunnels { listen_port, mtu, peers, allowed4: Lpm::build(&v4), allowed6: Lpm::build(&v6), index }
    }

    /// The session a receiver index names, if live.
    #[inline(always)]
    pub fn session(&self, index: u32) -> Option<&SessionRef> {
        self.index[(index & INDEX_MASK) as usize].as_ref().filter(|s| s.session.local_index == index)
    }

    /// The peer whose allowed IPs hold `dst` (longest prefix).
    #[inline(always)]
    pub fn peer_v4(&self, dst: u32) -> Option<usize> {
        self.allowed4.lookup(dst).map(|p| p as usize)
    }

    #[inline(always)]
    pub fn peer_v6(&self, dst: u128) -> Option<usize> {
        self.allowed6.lookup(dst).map(|p| p as usize)
    }
}

/// One burst's traffic for the peer (and the WAN path, when paths are
/// configured) its packets belong to, written to the shared counters once
/// (when the peer or path changes, and at the end) rather than per packet.
struct Tally {
    peer: usize,
    /// Index among the peer's paths; `usize::MAX`: none.
    path: usize,
    packets: u64,
    bytes: u64,
}

impl Tally {
    const NONE: Tally = Tally { peer: usize::MAX, path: usize::MAX, packets: 0, bytes: 0 };

    #[inline(always)]
    fn add(&mut self, c: (&Tunnels, &Steering), peer: usize, path: Option<usize>, bytes: usize, rx: bool, now: u64) {
        let path = path.unwrap_or(usize::MAX);
        if (peer, path) != (self.peer, self.path) {
            self.flush(c, rx, now);
            (self.peer, self.path) = (peer, path);
        }
        self.packets += 1;
        self.bytes += bytes as u64;
    }

    #[inline]
    fn flush(&mut self, (t, steering): (&Tunnels, &Steering), rx: bool, now: u64) {
        use std::sync::atomic::Ordering::Relaxed;
        if self.packets > 0 {
            if let Some(p) = t.peers.get(self.peer) {
                let l = &p.live;
                let (packets, bytes, last) =
                    if rx { (&l.rx_packets, &l.rx_bytes, &l.last_rx) } else { (&l.tx_packets, &l.tx_bytes, &l.last_tx) };
                packets.fetch_add(self.packets, Relaxed);
                bytes.fetch_add(self.bytes, Relaxed);
                last.store(now, Relaxed);
            }
            if let Some(p) = steering.peers.get(self.peer).and_then(|pp| pp.paths.get(self.path)) {
                p.live.add(rx, self.packets, self.bytes, now);
            }
        }
        self.packets = 0;
        self.bytes = 0;
    }
}

/// Writes the IP and UDP headers in front of a datagram's payload: `b`
/// holds the IP header, the UDP header and the payload (already in place).
/// IPv6 gets the checksum UDP needs there; IPv4 sends none (RFC 768), as
/// WireGuard does. False if the families of `src` and `dst` differ.
pub fn emit_ip_udp(src: IpAddr, src_port: u16, dst: SocketAddr, b: &mut [u8]) -> bool {
    emit_ip_udp_ttl(src, src_port, dst, 64, b)
}

/// [`emit_ip_udp`] with a TTL / hop limit of `ttl` (BFD sends 255).
pub fn emit_ip_udp_ttl(src: IpAddr, src_port: u16, dst: SocketAddr, ttl: u8, b: &mut [u8]) -> bool {
    let ip_len = if dst.is_ipv4() { ipv4::HEADER_LEN } else { ipv6::HEADER_LEN };
    let udp_len = b.len() - ip_len;
    let (ip, rest) = b.split_at_mut(ip_len);
    let mut u = udp::Packet::new_unchecked(rest);
    let repr = udp::Repr { src_port, dst_port: dst.port(), payload_len: udp_len - udp::HEADER_LEN };
    match (src, dst.ip()) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            ipv4::Repr {
                src: s.into(),
                dst: d.into(),
                protocol: ip_proto::UDP,
                ttl,
                dscp: 0,
                ecn: 0,
                ident: 0,
                dont_frag: false,
                more_frags: false,
                frag_offset: 0,
                options: crate::wire::OptionBytes::NONE,
                payload_len: udp_len,
            }
            .emit(&mut ipv4::Packet::new_unchecked(ip));
            repr.emit(&mut u, None);
        }
        (IpAddr::V6(s), IpAddr::V6(d)) => {
            let (s, d): (Ipv6Address, Ipv6Address) = (s.into(), d.into());
            ipv6::Repr {
                src: s,
                dst: d,
                next_header: ip_proto::UDP,
                hop_limit: ttl,
                traffic_class: 0,
                flow_label: 0,
                payload_len: udp_len,
            }
            .emit(&mut ipv6::Packet::new_unchecked(ip));
            repr.emit(&mut u, Some(checksum::pseudo_v6(s, d, ip_proto::UDP, udp_len as u32)));
        }
        _ => return false,
    }
    true
}
