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
use crate::counters::DropReason;
use crate::packet::Packet;
use crate::path::{probe, Steering};
use crate::pipeline::{each_packet, Meta, Metas, Stage, Verdict, NO_PORT};
use crate::rcu::Reader;
use crate::router::fib::Fib;
use crate::router::lpm::Lpm;
use crate::router::{self, punt};
use crate::wire::wireguard::{self as wg, kind};
use crate::wire::{bfd, checksum, ethernet, ip_proto, ipv4, ipv6, udp, vlan, EtherType, Ipv6Address};
use crate::worker::Clock;
use crate::PortIdx;

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

/// Where a UDP datagram to us sits in a frame.
struct Outer {
    /// Offset of the UDP payload (the WireGuard message).
    msg: usize,
    /// Its length (from the UDP header).
    len: usize,
    /// The sender: which path a message came by, and where a probe reply goes.
    src: SocketAddr,
    /// Our address it was sent to.
    dst: IpAddr,
    dst_port: u16,
    /// An IP header without options (a probe is answered in place only then).
    plain_ip: bool,
}

/// Whether a UDP destination port is one the stage takes: the listen
/// port, or BFD's when BFD runs.
#[inline(always)]
fn wanted(port: u16, listen: u16, bfd: bool) -> bool {
    port == listen || (bfd && (port == bfd::SINGLE_HOP_PORT || port == bfd::MULTIHOP_PORT))
}

/// Finds an untagged IPv4/IPv6 UDP datagram to one of our addresses on a
/// port [`wanted`]; `None` for anything else (left for later stages).
#[inline(always)]
fn outer_to_us(d: &[u8], listen: u16, bfd: bool, fib: &Fib) -> Option<Outer> {
    const ETH: usize = ethernet::HEADER_LEN;
    let et = u16::from_be_bytes([*d.get(12)?, *d.get(13)?]);
    let (l4, src, dst): (usize, IpAddr, IpAddr) = match EtherType(et) {
        EtherType::IPV4 => {
            let ip = ipv4::Packet::new_checked(d.get(ETH..)?).ok()?;
            if ip.version() != 4 || ip.protocol() != ip_proto::UDP || ip.is_fragment() {
                return None;
            }
            (ETH + ip.header_len(), IpAddr::V4(ip.src_addr().into()), IpAddr::V4(ip.dst_addr().into()))
        }
        EtherType::IPV6 => {
            let ip = ipv6::Packet::new_checked(d.get(ETH..)?).ok()?;
            if ip.version() != 6 || ip.next_header() != ip_proto::UDP {
                return None;
            }
            (ETH + ipv6::HEADER_LEN, IpAddr::V6(ip.src_addr().into()), IpAddr::V6(ip.dst_addr().into()))
        }
        _ => return None,
    };
    let u = udp::Packet::new_checked(d.get(l4..)?).ok()?;
    if !wanted(u.dst_port(), listen, bfd) {
        return None;
    }
    let local = match dst {
        IpAddr::V4(a) => fib.routes.route_v4(a.into()),
        IpAddr::V6(a) => fib.routes.route_v6(a.into()),
    };
    if !matches!(local, Some((_, router::fib::NextHop::Local { .. }))) {
        return None;
    }
    let msg = l4 + udp::HEADER_LEN;
    let plain_ip = l4 == ETH + if src.is_ipv4() { ipv4::HEADER_LEN } else { ipv6::HEADER_LEN };
    Some(Outer {
        msg,
        len: u.len() as usize - udp::HEADER_LEN,
        src: SocketAddr::new(src, u.src_port()),
        dst,
        dst_port: u.dst_port(),
        plain_ip,
    })
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

/// Opens transport messages to the listen port; punts handshakes and BFD
/// packets; answers SLA probes in place and hands probe replies to the
/// control thread.
pub struct Decap<C: Clock> {
    tunnels: Reader<Tunnels>,
    fib: Reader<Fib>,
    steering: Reader<Steering>,
    clock: C,
    /// Punt BFD packets (UDP 3784/4784 to us) to the control thread.
    bfd: bool,
}

impl<C: Clock> Decap<C> {
    pub fn new(tunnels: Reader<Tunnels>, fib: Reader<Fib>, steering: Reader<Steering>, clock: C, bfd: bool) -> Self {
        Decap { tunnels, fib, steering, clock, bfd }
    }
}

impl<P: Packet, C: Clock> Stage<P> for Decap<C> {
    #[inline(always)]
    fn tick(&mut self) {
        self.tunnels.refresh();
        self.fib.refresh();
        self.steering.refresh();
    }

    fn process(&mut self, in_port: PortIdx, pkt: &mut P, meta: &mut Meta) -> Verdict {
        let (now, mut tally) = (self.clock.now(), Tally::NONE);
        let v = self.open_one(in_port, pkt, meta, now, &mut tally);
        tally.flush((self.tunnels.get(), self.steering.get()), true, now);
        v
    }

    /// The clock is read once per burst, and each peer's counters written once.
    #[inline]
    fn process_burst(&mut self, in_port: PortIdx, pkts: &mut [P], metas: &mut Metas) {
        if self.tunnels.get().listen_port == 0 {
            return;
        }
        let (now, mut tally) = (self.clock.now(), Tally::NONE);
        let this = &*self;
        each_packet(pkts, metas, |pkt: &mut P, meta: &mut Meta| this.open_one(in_port, pkt, meta, now, &mut tally));
        tally.flush((self.tunnels.get(), self.steering.get()), true, now);
    }
}

impl<C: Clock> Decap<C> {
    #[inline(always)]
    fn open_one<P: Packet>(&self, in_port: PortIdx, pkt: &mut P, meta: &mut Meta, now: u64, tally: &mut Tally) -> Verdict {
        let t = self.tunnels.get();
        if t.listen_port == 0 || meta.out_port() != NO_PORT {
            return Verdict::Continue;
        }
        let fib = self.fib.get();
        // Endpoints are learnt from handshakes (docs/TUNNELS.md), so the
        // datagram's source is not needed here.
        let Some(outer) = outer_to_us(pkt.data(), t.listen_port, self.bfd, fib) else { return Verdict::Continue };
        let msg = &pkt.data()[outer.msg..outer.msg + outer.len];
        // BFD and handshakes go to the control thread; transport is opened here.
        let punt_as = if outer.dst_port != t.listen_port {
            Some(punt::Kind::Bfd)
        } else {
            match wg::message_type(msg) {
                Ok(kind::TRANSPORT) => None,
                Ok(_) => Some(punt::Kind::Tunnel),
                Err(_) => return Verdict::Drop(DropReason::TunnelMalformed),
            }
        };
        if let Some(kind) = punt_as {
            let Some(iface) = fib.routes.iface_of(in_port, vlan::Stack::default()) else {
                return Verdict::Drop(DropReason::UnknownVlan);
            };
            // Trim Ethernet padding so the control thread sees the datagram's length.
            pkt.truncate(outer.msg + outer.len);
            return match router::punt_frame(pkt, meta, kind, in_port, iface, ethernet::HEADER_LEN) {
                Ok(()) => Verdict::Continue,
                Err(r) => Verdict::Drop(r),
            };
        }
        let (index, _) = wg::transport_header(msg);
        let Some(s) = t.session(index) else { return Verdict::Drop(DropReason::TunnelUnknownIndex) };
        if now >= s.recv_until {
            return Verdict::Drop(DropReason::TunnelExpired);
        }
        let n = match s.session.open(&mut pkt.data_mut()[outer.msg..outer.msg + outer.len]) {
            Ok(n) => n,
            Err(r) => return Verdict::Drop(r),
        };
        let peer = s.session.peer;
        // Passive measurement: what arrives on each path.
        let steering = self.steering.get();
        let path = steering.peer(peer).and_then(|pp| pp.by_source(outer.src.ip()));
        tally.add((t, steering), peer, path, outer.len, true, now);
        if now >= s.rekey_at {
            t.peers[peer].live.ask_handshake();
        }
        if n == 0 {
            return Verdict::Drop(DropReason::TunnelKeepalive);
        }
        let inner_at = outer.msg + wg::TRANSPORT_HEADER_LEN;
        let inner = &pkt.data()[inner_at..inner_at + n];
        if inner[0] >> 4 == probe::REQUEST >> 4 {
            return self.probe(t, peer, in_port, pkt, meta, &outer, inner_at, n, now);
        }
        let (len, et, allowed) = match inner[0] >> 4 {
            4 if n >= ipv4::HEADER_LEN => {
                let len = u16::from_be_bytes([inner[2], inner[3]]) as usize;
                let src = u32::from_be_bytes([inner[12], inner[13], inner[14], inner[15]]);
                (len, EtherType::IPV4, t.peer_v4(src))
            }
            6 if n >= ipv6::HEADER_LEN => {
                let len = ipv6::HEADER_LEN + u16::from_be_bytes([inner[4], inner[5]]) as usize;
                let src = u128::from_be_bytes(inner[8..24].try_into().expect("16 bytes"));
                (len, EtherType::IPV6, t.peer_v6(src))
            }
            _ => return Verdict::Drop(DropReason::TunnelAllowedIps),
        };
        if allowed != Some(peer) {
            return Verdict::Drop(DropReason::TunnelAllowedIps);
        }
        if len > n || len < ipv4::HEADER_LEN {
            return Verdict::Drop(DropReason::TunnelMalformed);
        }
        // The inner packet, behind an Ethernet header to our own port, goes
        // on as if it had arrived there.
        let mac = fib.routes.port_mac(in_port).unwrap_or_default();
        let at = inner_at - ethernet::HEADER_LEN;
        if !pkt.adj(at) || !pkt.truncate(ethernet::HEADER_LEN + len) {
            return Verdict::Drop(DropReason::TunnelMalformed);
        }
        let d = pkt.data_mut();
        d[..6].copy_from_slice(&mac.0);
        d[6..12].fill(0);
        d[12..14].copy_from_slice(&et.0.to_be_bytes());
        Verdict::Continue
    }
}

impl<C: Clock> Decap<C> {
    /// An SLA probe from `peer`, opened in place at `inner_at` (`n` bytes
    /// of plaintext). A request is answered at once from here, by the way
    /// it came: the reply is sealed with our sending session in the same
    /// buffer, addresses and MACs swapped. A reply to one of ours gets
    /// its arrival time and goes to the control thread.
    #[allow(clippy::too_many_arguments)]
    #[cold]
    fn probe<P: Packet>(
        &self,
        t: &Tunnels,
        peer: usize,
        in_port: PortIdx,
        pkt: &mut P,
        meta: &mut Meta,
        outer: &Outer,
        inner_at: usize,
        n: usize,
        now: u64,
    ) -> Verdict {
        const ETH: usize = ethernet::HEADER_LEN;
        use probe::field;
        if n < probe::LEN {
            return Verdict::Drop(DropReason::TunnelMalformed);
        }
        match pkt.data()[inner_at] {
            probe::REQUEST => {
                let Some(s) = t.peers[peer].send.iter().flatten().find(|s| s.session.confirmed() && now < s.send_until) else {
                    return Verdict::Drop(DropReason::TunnelNoSession);
                };
                if !outer.plain_ip {
                    return Verdict::Drop(DropReason::TunnelMalformed);
                }
                let Some(counter) = s.session.reserve(1) else { return Verdict::Drop(DropReason::TunnelExpired) };
                let end = outer.msg + outer.len;
                if !pkt.truncate(end) {
                    return Verdict::Drop(DropReason::TunnelMalformed);
                }
                let d = pkt.data_mut();
                d[inner_at + field::TYPE] = probe::REPLY;
                s.session.seal(counter, &mut d[outer.msg..end]);
                if !emit_ip_udp(outer.dst, t.listen_port, outer.src, &mut d[ETH..end]) {
                    return Verdict::Drop(DropReason::TunnelMalformed);
                }
                let (dst, src) = d.split_at_mut(6);
                dst.swap_with_slice(&mut src[..6]);
                meta.set_out_port(in_port);
                Verdict::Continue
            }
            probe::REPLY => {
                let d = pkt.data_mut();
                d[inner_at + field::PEER..inner_at + field::PEER + 2].copy_from_slice(&(peer as u16).to_le_bytes());
                d[inner_at + field::RECEIVED..inner_at + field::RECEIVED + 8].copy_from_slice(&now.to_le_bytes());
                let fib = self.fib.get();
                let Some(iface) = fib.routes.iface_of(in_port, vlan::Stack::default()) else {
                    return Verdict::Drop(DropReason::UnknownVlan);
                };
                if !pkt.adj(inner_at - ETH) || !pkt.truncate(ETH + probe::LEN) {
                    return Verdict::Drop(DropReason::TunnelMalformed);
                }
                match router::punt_frame(pkt, meta, punt::Kind::Probe, in_port, iface, ETH) {
                    Ok(()) => Verdict::Continue,
                    Err(r) => Verdict::Drop(r),
                }
            }
            _ => Verdict::Drop(DropReason::TunnelMalformed),
        }
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

/// Seals packets routed into a tunnel by their destination.
pub struct Encap<C: Clock> {
    tunnels: Reader<Tunnels>,
    fib: Reader<Fib>,
    steering: Reader<Steering>,
    clock: C,
    /// Limits the ICMP "too big" errors sent for packets over the tunnel MTU.
    icmp: router::TokenBucket,
}

impl<C: Clock> Encap<C> {
    /// `hz`: ticks per second of `clock`.
    pub fn new(tunnels: Reader<Tunnels>, fib: Reader<Fib>, steering: Reader<Steering>, clock: C, hz: u64) -> Self {
        let conf = fib.get().routes.conf;
        Encap { tunnels, fib, steering, clock, icmp: router::TokenBucket::new(conf.icmp_rate, conf.icmp_burst, hz) }
    }

    /// Answers a packet over the tunnel MTU with ICMP "fragmentation
    /// needed" (IPv4 with DF) or "packet too big" (IPv6), so that path MTU
    /// discovery works through the tunnel; the packet counts as a
    /// `tunnel_mtu` drop either way.
    #[cold]
    fn too_big<P: Packet>(&mut self, in_port: PortIdx, pkt: &mut P, meta: &mut Meta, mtu: u16) -> Verdict {
        const ETH: usize = ethernet::HEADER_LEN;
        let fib = self.fib.get();
        let Some(iface) = fib.routes.iface_of(in_port, vlan::Stack::default()).map(|i| &fib.routes.ifaces[i as usize]) else {
            return Verdict::Drop(DropReason::TunnelMtu);
        };
        let sent = if pkt.data()[12] == 0x08 {
            let ip = ipv4::Packet::new_unchecked(&pkt.data()[ETH..]);
            let (df, allowed) = (ip.dont_frag(), router::icmp::v4_error_allowed(&ip));
            df && allowed
                && iface.v4_source().is_some_and(|from| {
                    self.icmp.allow(self.clock.now())
                        && router::icmp::v4_error(
                            pkt,
                            ETH,
                            iface,
                            from,
                            crate::wire::icmpv4::msg::DST_UNREACHABLE,
                            crate::wire::icmpv4::unreachable::FRAG_NEEDED,
                            mtu,
                        )
                })
        } else {
            let ip = ipv6::Packet::new_unchecked(&pkt.data()[ETH..]);
            router::icmp::v6_error_allowed(ip.src_addr(), ip.dst_addr(), None)
                && self.icmp.allow(self.clock.now())
                && router::icmp::v6_error(pkt, ETH, iface, crate::wire::icmpv6::msg::PACKET_TOO_BIG, 0, mtu as u32)
        };
        if !sent {
            return Verdict::Drop(DropReason::TunnelMtu);
        }
        meta.set_out_port(in_port);
        meta.set_noted(DropReason::TunnelMtu);
        Verdict::Continue
    }
}

/// Outer IPv4 header, UDP header and WireGuard header in front of the payload.
const V4_OVERHEAD: usize = ipv4::HEADER_LEN + udp::HEADER_LEN + wg::TRANSPORT_HEADER_LEN;
const V6_OVERHEAD: usize = ipv6::HEADER_LEN + udp::HEADER_LEN + wg::TRANSPORT_HEADER_LEN;

impl<P: Packet, C: Clock> Stage<P> for Encap<C> {
    #[inline(always)]
    fn tick(&mut self) {
        self.tunnels.refresh();
        self.fib.refresh();
        self.steering.refresh();
    }

    fn process(&mut self, in_port: PortIdx, pkt: &mut P, meta: &mut Meta) -> Verdict {
        let (now, mut tally) = (self.clock.now(), Tally::NONE);
        let v = self.seal_one(in_port, pkt, meta, now, &mut tally);
        tally.flush((self.tunnels.get(), self.steering.get()), false, now);
        v
    }

    /// The clock is read once per burst, and each peer's counters written once.
    #[inline]
    fn process_burst(&mut self, in_port: PortIdx, pkts: &mut [P], metas: &mut Metas) {
        if self.tunnels.get().peers.is_empty() {
            return;
        }
        let (now, mut tally) = (self.clock.now(), Tally::NONE);
        each_packet(pkts, metas, |pkt: &mut P, meta: &mut Meta| self.seal_one(in_port, pkt, meta, now, &mut tally));
        tally.flush((self.tunnels.get(), self.steering.get()), false, now);
    }
}

impl<C: Clock> Encap<C> {
    #[inline(always)]
    fn seal_one<P: Packet>(&mut self, in_port: PortIdx, pkt: &mut P, meta: &mut Meta, now: u64, tally: &mut Tally) -> Verdict {
        const ETH: usize = ethernet::HEADER_LEN;
        let t = self.tunnels.get();
        if t.peers.is_empty() || meta.out_port() != NO_PORT {
            return Verdict::Continue;
        }
        let fib = self.fib.get();
        let d = pkt.data();
        if d.len() < ETH + ipv4::HEADER_LEN || fib.routes.port_mac(in_port).is_none_or(|m| d[..6] != m.0) {
            return Verdict::Continue;
        }
        // Destination, total length and TTL of the inner packet.
        let (peer, len, ttl_at) = match (d[12], d[13], d[ETH] >> 4) {
            (0x08, 0x00, 4) => {
                let dst = u32::from_be_bytes([d[30], d[31], d[32], d[33]]);
                let Some(peer) = t.peer_v4(dst) else { return Verdict::Continue };
                (peer, u16::from_be_bytes([d[16], d[17]]) as usize, ETH + 8)
            }
            (0x86, 0xdd, 6) if d.len() >= ETH + ipv6::HEADER_LEN => {
                let dst = u128::from_be_bytes(d[ETH + 24..ETH + 40].try_into().expect("16 bytes"));
                let Some(peer) = t.peer_v6(dst) else { return Verdict::Continue };
                (peer, ipv6::HEADER_LEN + u16::from_be_bytes([d[18], d[19]]) as usize, ETH + 7)
            }
            _ => return Verdict::Continue,
        };
        if len < ipv4::HEADER_LEN || ETH + len > d.len() {
            return Verdict::Drop(DropReason::Malformed);
        }
        if d[ttl_at] <= 1 {
            return Verdict::Drop(DropReason::TtlExpired);
        }
        if len > t.mtu as usize {
            let mtu = t.mtu;
            return self.too_big(in_port, pkt, meta, mtu);
        }
        let path = &t.peers[peer];
        let Some(s) = path.send.iter().flatten().find(|s| s.session.confirmed() && now < s.send_until) else {
            path.live.ask_handshake();
            return Verdict::Drop(DropReason::TunnelNoSession);
        };
        // The WAN path the flow's policy rule uses now, else the peer's endpoint.
        let (endpoint, via) = match self.steering.get().peer(peer).map(|pp| pp.pick(meta.rule())) {
            Some(Ok(Some((i, p)))) => (p.endpoint, Some(i)),
            Some(Err(())) => return Verdict::Drop(DropReason::PathPolicyDrop),
            None | Some(Ok(None)) => match path.endpoint {
                Some(e) => (e, None),
                None => return Verdict::Drop(DropReason::TunnelNoSession),
            },
        };
        let Some(egress) = router::egress_for(fib, endpoint.ip()) else { return Verdict::Drop(DropReason::NoRoute) };
        if now >= s.rekey_at {
            path.live.ask_handshake();
        }
        let Some(counter) = s.session.reserve(1) else {
            path.live.ask_handshake();
            return Verdict::Drop(DropReason::TunnelExpired);
        };

        // Forwarding hop: TTL / hop limit down by one.
        let d = pkt.data_mut();
        if d[12] == 0x08 {
            let old = u16::from_be_bytes([d[ETH + 8], d[ETH + 9]]);
            d[ETH + 8] -= 1;
            let c = checksum::update16(u16::from_be_bytes([d[ETH + 10], d[ETH + 11]]), old, old - 0x100);
            d[ETH + 10..ETH + 12].copy_from_slice(&c.to_be_bytes());
        } else {
            d[ETH + 7] -= 1;
        }
        let padded = wg::padded_len(len, t.mtu as usize);
        let overhead = if endpoint.is_ipv4() { V4_OVERHEAD } else { V6_OVERHEAD };
        if !pkt.adj(ETH) || !pkt.truncate(len) || !pkt.extend(padded - len + wg::TAG_LEN) || !pkt.prepend(ETH + overhead) {
            return Verdict::Drop(DropReason::TunnelMtu); // no room in the buffer
        }
        let d = pkt.data_mut();
        let msg_at = ETH + overhead - wg::TRANSPORT_HEADER_LEN;
        let msg_len = wg::TRANSPORT_HEADER_LEN + padded + wg::TAG_LEN;
        d[msg_at + wg::TRANSPORT_HEADER_LEN + len..msg_at + wg::TRANSPORT_HEADER_LEN + padded].fill(0);
        s.session.seal(counter, &mut d[msg_at..msg_at + msg_len]);
        if !emit_ip_udp(egress.src, t.listen_port, endpoint, &mut d[ETH..msg_at + msg_len]) {
            return Verdict::Drop(DropReason::NoRoute);
        }
        tally.add((t, self.steering.get()), peer, via, msg_len, false, now);
        match router::output(fib, pkt, meta, in_port, &egress) {
            Ok(()) => Verdict::Continue,
            Err(r) => Verdict::Drop(r),
        }
    }
}
