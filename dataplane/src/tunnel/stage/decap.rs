//! The workers' tunnel decap stage: transport messages to our listen port opened in place; handshakes and BFD punted; SLA probes answered.

use super::*;
use crate::counters::DropReason;
use crate::packet::Packet;
use crate::path::{probe, Steering};
use crate::pipeline::{each_packet, Meta, Metas, Stage, Verdict, NO_PORT};
use crate::rcu::Reader;
use crate::router::fib::Fib;
use crate::router::{self, punt};
use crate::wire::wireguard::{self as wg, kind};
use crate::wire::{bfd, ethernet, ip_proto, ipv4, ipv6, udp, vlan, EtherType};
use crate::worker::Clock;
use crate::PortIdx;
use std::net::{IpAddr, SocketAddr};

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
        if t.listen_port == 0 || meta.out_port() != NO_PORT || meta.inner() {
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
        // A probe wrapped in an ICMP echo (a peer not yet known to be
        // Patronus, or its echo reply) is made plain, then handled as one.
        let n = if probe::unwrap_in_place(&mut pkt.data_mut()[inner_at..inner_at + n]) { probe::LEN } else { n };
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
        meta.set_inner();
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
                // The reply's plaintext is the probe alone (a wrapped request's was longer).
                let end = outer.msg + wg::TRANSPORT_HEADER_LEN + probe::LEN + wg::TAG_LEN;
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
