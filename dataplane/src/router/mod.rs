//! The router stage: terminates L2 on the appliance's interfaces, hands
//! ARP and ND to the control thread, answers ping, and forwards IPv4 and
//! IPv6 by longest prefix toward neighbours the control thread resolved.
//!
//! Workers read one immutable [`fib::Fib`] snapshot (routes and
//! neighbours) through an RCU reader, adopted once per poll iteration.
//! A packet whose neighbour is unknown is prepared for egress (TTL, L2
//! header) and punted; the control thread resolves it and sends it.

pub mod fib;
pub mod icmp;
pub mod lpm;
pub mod neighbor;
pub mod punt;

use crate::counters::DropReason;
use crate::packet::Packet;
use crate::pipeline::{each_packet, Meta, Metas, PacketFn, Stage, Verdict, NO_PORT, TO_CONTROL};
use crate::rcu::Reader;
use crate::wire::{ethernet, icmpv4, icmpv6, ip_proto, ipv4, ipv6, vlan, EtherType, EthernetAddress, Ipv4Address};
use crate::worker::Clock;
use crate::PortIdx;

use fib::{Fib, Iface, IfaceIdx, NextHop, Routes};
use neighbor::NeighborKey;

/// A token bucket on the clock's cycles: at most `burst` at once, refilled
/// at `rate` per second. Rate 0 never allows.
pub struct TokenBucket {
    tokens: u64,
    burst: u64,
    cycles_per_token: u64,
    last: u64,
}

impl TokenBucket {
    pub fn new(rate: u32, burst: u32, hz: u64) -> Self {
        let cycles_per_token = if rate == 0 { u64::MAX } else { (hz / rate as u64).max(1) };
        TokenBucket { tokens: burst as u64, burst: burst as u64, cycles_per_token, last: 0 }
    }

    pub fn allow(&mut self, now: u64) -> bool {
        let earned = now.saturating_sub(self.last) / self.cycles_per_token;
        if earned > 0 {
            self.tokens = (self.tokens + earned).min(self.burst);
            self.last = if self.tokens == self.burst { now } else { self.last + earned * self.cycles_per_token };
        }
        if self.tokens > 0 {
            self.tokens -= 1;
            true
        } else {
            false
        }
    }
}

/// Router options that are not routes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RouterConf {
    /// ICMP errors each worker may send per second, and at once.
    pub icmp_rate: u32,
    pub icmp_burst: u32,
}

impl Default for RouterConf {
    fn default() -> Self {
        RouterConf { icmp_rate: 100, icmp_burst: 50 }
    }
}

/// The forwarding stage of one worker: cross-connects and routing, both
/// from the published policy snapshot, so a reload changes either live.
pub struct Router<C: Clock> {
    fib: Reader<Fib>,
    icmp: TokenBucket,
    /// The limits `icmp` was built from (the snapshot's may change).
    icmp_conf: RouterConf,
    hz: u64,
    clock: C,
}

impl<C: Clock> Router<C> {
    /// `hz`: ticks per second of `clock`. ICMP limits come from the
    /// snapshot's `Routes::conf`.
    pub fn new(fib: Reader<Fib>, clock: C, hz: u64) -> Self {
        let conf = fib.get().routes.conf;
        Router { icmp: TokenBucket::new(conf.icmp_rate, conf.icmp_burst, hz), icmp_conf: conf, hz, fib, clock }
    }
}

impl<P: Packet, C: Clock> Stage<P> for Router<C> {
    #[inline(always)]
    fn tick(&mut self) {
        let conf = self.fib.refresh().routes.conf;
        if conf != self.icmp_conf {
            self.icmp = TokenBucket::new(conf.icmp_rate, conf.icmp_burst, self.hz);
            self.icmp_conf = conf;
        }
    }

    /// Cross-connects a burst as a whole; otherwise resolves the snapshot
    /// and the ingress port's interface once per burst, then routes packet
    /// by packet.
    #[inline(always)]
    fn process_burst(&mut self, in_port: PortIdx, pkts: &mut [P], metas: &mut Metas) {
        let fib = self.fib.get();
        let routes = &*fib.routes;
        let peer = routes.xconnect_of(in_port);
        if peer != NO_PORT {
            metas.map(|mut m| {
                if !m.is_dropped() && m.out_port() == NO_PORT {
                    m.set_out_port(peer);
                }
                m
            });
            return;
        }
        if !routes.routed(in_port) {
            return;
        }
        let cx = Cx::new(routes, fib, &mut self.icmp, &self.clock, in_port);
        each_packet(pkts, metas, cx);
    }

    fn process(&mut self, in_port: PortIdx, pkt: &mut P, meta: &mut Meta) -> Verdict {
        let fib = self.fib.get();
        let peer = fib.routes.xconnect_of(in_port);
        if peer != NO_PORT {
            if meta.out_port() == NO_PORT {
                meta.set_out_port(peer);
            }
            return Verdict::Continue;
        }
        if !fib.routes.routed(in_port) {
            return Verdict::Continue;
        }
        Cx::new(&fib.routes, fib, &mut self.icmp, &self.clock, in_port).process(pkt, meta)
    }
}

/// What routing a burst needs, borrowed from the stage and resolved once.
struct Cx<'a, C> {
    routes: &'a Routes,
    fib: &'a Fib,
    icmp: &'a mut TokenBucket,
    now: &'a C,
    in_port: PortIdx,
    /// The ingress port's MAC (every interface of a port has it).
    port_mac: EthernetAddress,
    /// The port's untagged interface.
    untagged: Option<IfaceIdx>,
}

type Res = Result<(), DropReason>;

/// What the fast path did.
#[derive(Debug, PartialEq, Eq)]
enum Fast {
    Forwarded,
    /// Unicast to another MAC: drop (as the general path would).
    NotOurs,
    /// Not the common case: the general path decides.
    Slow,
}

/// What L2 parsing found.
struct L2 {
    len: usize,
    iface: IfaceIdx,
    multicast: bool,
}

impl<P: Packet, C: Clock> PacketFn<P> for Cx<'_, C> {
    #[inline(always)]
    fn call(&mut self, pkt: &mut P, meta: &mut Meta) -> Verdict {
        self.process(pkt, meta)
    }
}

impl<'a, C: Clock> Cx<'a, C> {
    #[inline(always)]
    fn new(routes: &'a Routes, fib: &'a Fib, icmp: &'a mut TokenBucket, now: &'a C, in_port: PortIdx) -> Self {
        let untagged = routes.iface_of(in_port, vlan::Stack::default());
        let port_mac = routes.port_mac(in_port).unwrap_or_default();
        Cx { routes, fib, icmp, now, in_port, port_mac, untagged }
    }

    #[inline(always)]
    fn process<P: Packet>(&mut self, pkt: &mut P, meta: &mut Meta) -> Verdict {
        if meta.out_port() != NO_PORT {
            return Verdict::Continue; // decided by an earlier stage
        }
        match self.fast_v4(pkt, meta) {
            Fast::Forwarded => return Verdict::Continue,
            Fast::NotOurs => return Verdict::Drop(DropReason::NotOurMac),
            Fast::Slow => {}
        }
        match self.route(self.in_port, pkt, meta) {
            Ok(()) => Verdict::Continue,
            Err(reason) => Verdict::Drop(reason),
        }
    }

    /// The common case, done on raw bytes: an untagged IPv4 packet without
    /// options, valid, not for the appliance, with TTL to spare, toward a
    /// resolved neighbour on an untagged interface within its MTU; and the
    /// frames for another MAC, dropped at once. Anything else is
    /// [`Fast::Slow`], untouched, for [`Cx::route`], which handles every
    /// case (the fast path must agree with it; see the tests).
    #[inline(always)]
    fn fast_v4<P: Packet>(&mut self, pkt: &mut P, meta: &mut Meta) -> Fast {
        const ETH: usize = ethernet::HEADER_LEN;
        let d = pkt.data();
        let Some(h) = d.get(..ETH + ipv4::HEADER_LEN) else { return Fast::Slow };
        let h: &[u8; ETH + ipv4::HEADER_LEN] = h.try_into().expect("34 bytes");
        if h[..6] != self.port_mac.0 {
            return if h[0] & 1 == 0 { Fast::NotOurs } else { Fast::Slow };
        }
        if h[12..15] != [0x08, 0x00, 0x45] || self.untagged.is_none() {
            return Fast::Slow;
        }
        let total = u16::from_be_bytes([h[16], h[17]]) as usize;
        if total < ipv4::HEADER_LEN || ETH + total > d.len() || h[22] <= 1 {
            return Fast::Slow;
        }
        // Written out rather than in a closure: LLVM may decline to inline
        // a closure here once the worker loop around it grows (it did, at
        // a cost of 6 cycles per packet; see docs/PERFORMANCE.md).
        let valid = match pkt.ipv4_checksum_ok() {
            Some(ok) => ok,
            None => {
                let w = |i: usize| u32::from_be_bytes([h[i], h[i + 1], h[i + 2], h[i + 3]]) as u64;
                let sum = w(14) + w(18) + w(22) + w(26) + w(30);
                let sum = (sum & 0xffff) + (sum >> 16 & 0xffff) + (sum >> 32);
                let sum = (sum & 0xffff) + (sum >> 16);
                (sum & 0xffff) + (sum >> 16) == 0xffff
            }
        };
        if !valid {
            return Fast::Slow;
        }
        let src = u32::from_be_bytes([h[26], h[27], h[28], h[29]]);
        let dst = u32::from_be_bytes([h[30], h[31], h[32], h[33]]);
        // 0/8, 127/8 and 224/3 (multicast, class E, broadcast) take the slow path.
        let odd = |a: u32| matches!(a >> 24, 0 | 127 | 224..);
        if odd(src) || odd(dst) {
            return Fast::Slow;
        }
        let Some(id) = self.routes.v4.lookup(dst) else { return Fast::Slow };
        let adj = match self.routes.nexthops[id as usize] {
            NextHop::Gateway { .. } => self.fib.gateway(id),
            NextHop::Connected { iface } => self.fib.neighbors.get(NeighborKey::v4(iface, Ipv4Address::from_u32(dst))),
            _ => None,
        };
        let Some(adj) = adj else { return Fast::Slow };
        if adj.l2_len() != ETH || total > adj.mtu as usize {
            return Fast::Slow;
        }
        let d = pkt.data_mut();
        d[..12].copy_from_slice(&adj.eth_addrs());
        let old = u16::from_be_bytes([d[22], d[23]]);
        d[22] -= 1;
        let c = crate::wire::checksum::update16(u16::from_be_bytes([d[24], d[25]]), old, old - 0x100);
        d[24..26].copy_from_slice(&c.to_be_bytes());
        meta.set_out_port(adj.port);
        Fast::Forwarded
    }

    #[inline(always)]
    fn route<P: Packet>(&mut self, in_port: PortIdx, pkt: &mut P, meta: &mut Meta) -> Res {
        let data = pkt.data();
        let eth = ethernet::Frame::new_checked(data).map_err(|_| DropReason::MalformedL2)?;
        let dst = eth.dst_addr();
        if dst.is_unicast() && dst != self.port_mac {
            return Err(DropReason::NotOurMac);
        }
        let (iface, ethertype, tags) = match eth.ethertype() {
            et if !et.is_vlan() => (self.untagged.ok_or(DropReason::UnknownVlan)?, et, 0),
            et => match vlan::walk(et, &data[ethernet::HEADER_LEN..]) {
                Ok((vlans, inner, tags)) => (self.routes.iface_of(in_port, vlans).ok_or(DropReason::UnknownVlan)?, inner, tags),
                Err(crate::wire::Error::Unsupported) => return Err(DropReason::UnknownVlan),
                Err(_) => return Err(DropReason::MalformedL2),
            },
        };
        let l2 = L2 { len: ethernet::HEADER_LEN + tags, iface, multicast: dst.is_multicast() };
        match ethertype {
            EtherType::ARP => punt(pkt, meta, punt::Kind::Arp, in_port, &l2, 0),
            EtherType::IPV4 => self.ipv4(in_port, pkt, meta, &l2),
            EtherType::IPV6 => self.ipv6(in_port, pkt, meta, &l2),
            _ => Err(DropReason::UnsupportedEthertype),
        }
    }

    fn ipv4<P: Packet>(&mut self, in_port: PortIdx, pkt: &mut P, meta: &mut Meta, l2: &L2) -> Res {
        let hw_checked = pkt.ipv4_checksum_ok();
        let ip = ipv4::Packet::new_checked(&pkt.data()[l2.len..]).map_err(|_| DropReason::MalformedIpv4)?;
        if ip.version() != 4 {
            return Err(DropReason::MalformedIpv4);
        }
        if !hw_checked.unwrap_or_else(|| ip.verify_checksum()) {
            return Err(DropReason::BadIpv4Checksum);
        }
        let (src, dst) = (ip.src_addr(), ip.dst_addr());
        if dst.is_broadcast() || dst.is_multicast() || l2.multicast {
            return Err(DropReason::NotRouted);
        }
        if src.is_multicast()
            || src.is_broadcast()
            || src.is_loopback()
            || src.is_this_network()
            || dst.is_loopback()
            || dst.is_this_network()
        {
            return Err(DropReason::Martian);
        }
        let (ttl, total, df) = (ip.ttl(), ip.total_len(), ip.dont_frag());
        let Some((id, nh)) = self.routes.route_v4(dst) else {
            return self.v4_error(pkt, meta, in_port, l2, DropReason::NoRoute, icmpv4::msg::DST_UNREACHABLE, icmpv4::unreachable::NET, 0);
        };
        let (out, neighbor) = match nh {
            NextHop::Local { .. } => return self.v4_local(in_port, pkt, meta, l2),
            NextHop::Blackhole => return Err(DropReason::Blackhole),
            NextHop::Connected { iface } => (iface, dst),
            NextHop::Gateway { iface, via: std::net::IpAddr::V4(v) } => (iface, v.into()),
            NextHop::Gateway { .. } => return Err(DropReason::NoRoute),
        };
        if ttl <= 1 {
            return self.v4_error(pkt, meta, in_port, l2, DropReason::TtlExpired, icmpv4::msg::TIME_EXCEEDED, 0, 0);
        }
        let key = NeighborKey::v4(out, neighbor);
        let mtu = self.fib.adjacency(id, &nh, key).map_or(self.routes.ifaces[out as usize].mtu, |a| a.mtu);
        if total > mtu {
            if !df {
                return Err(DropReason::MtuExceeded); // no fragmentation here
            }
            return self.v4_error(
                pkt,
                meta,
                in_port,
                l2,
                DropReason::MtuExceeded,
                icmpv4::msg::DST_UNREACHABLE,
                icmpv4::unreachable::FRAG_NEEDED,
                mtu,
            );
        }
        ipv4::Packet::new_unchecked(&mut pkt.data_mut()[l2.len..]).decrement_ttl();
        self.forward_to(pkt, meta, in_port, l2, (id, &nh), key, EtherType::IPV4)
    }

    fn v4_local<P: Packet>(&mut self, in_port: PortIdx, pkt: &mut P, meta: &mut Meta, l2: &L2) -> Res {
        let ip = ipv4::Packet::new_unchecked(&pkt.data()[l2.len..]);
        if ip.protocol() != ip_proto::ICMP || ip.is_fragment() {
            return Err(DropReason::LocalUnsupported);
        }
        let icmp = icmpv4::Packet::new_checked(ip.payload()).map_err(|_| DropReason::MalformedIcmp)?;
        match icmpv4::Repr::parse(&icmp) {
            Ok(icmpv4::Repr::EchoRequest { .. }) => {}
            Ok(_) => return Err(DropReason::LocalUnsupported),
            Err(crate::wire::Error::Checksum) => return Err(DropReason::BadIcmpChecksum),
            Err(_) => return Err(DropReason::MalformedIcmp),
        }
        icmp::v4_echo_reply(pkt, l2.len, &self.routes.ifaces[l2.iface as usize]);
        meta.set_out_port(in_port);
        Ok(())
    }

    /// Answers with an ICMPv4 error in place when RFC 1812 allows one and
    /// the rate limit does; either way the original counts as dropped for
    /// `reason`.
    #[allow(clippy::too_many_arguments)]
    #[cold]
    fn v4_error<P: Packet>(
        &mut self,
        pkt: &mut P,
        meta: &mut Meta,
        in_port: PortIdx,
        l2: &L2,
        reason: DropReason,
        t: u8,
        code: u8,
        rest: u16,
    ) -> Res {
        let iface = &self.routes.ifaces[l2.iface as usize];
        let Some(from) = iface.v4_source() else { return Err(reason) };
        let allowed = icmp::v4_error_allowed(&ipv4::Packet::new_unchecked(&pkt.data()[l2.len..]));
        if !allowed || !self.icmp.allow(self.now.now()) || !icmp::v4_error(pkt, l2.len, iface, from, t, code, rest) {
            return Err(reason);
        }
        meta.set_out_port(in_port);
        meta.set_noted(reason);
        Ok(())
    }

    fn ipv6<P: Packet>(&mut self, in_port: PortIdx, pkt: &mut P, meta: &mut Meta, l2: &L2) -> Res {
        let data = &pkt.data()[l2.len..];
        let ip = ipv6::Packet::new_checked(data).map_err(|_| DropReason::MalformedIpv6)?;
        if ip.version() != 6 {
            return Err(DropReason::MalformedIpv6);
        }
        let (src, dst, hop_limit) = (ip.src_addr(), ip.dst_addr(), ip.hop_limit());
        if src.is_multicast() || src.is_loopback() || dst.is_loopback() || dst.is_unspecified() {
            return Err(DropReason::Martian);
        }
        let up = ipv6::walk_extensions(ip.next_header(), ip.payload()).map_err(|_| DropReason::MalformedIpv6)?;
        let first = (!up.later_fragment).then(|| ip.payload().get(up.offset).copied()).flatten();
        let upper = first.map(|b| (up.protocol, b));
        // Neighbor Discovery goes to the control thread (RFC 4861: hop limit 255).
        if let Some((ip_proto::ICMPV6, t)) = upper {
            if (icmpv6::msg::ROUTER_SOLICIT..=icmpv6::msg::REDIRECT).contains(&t) {
                if hop_limit != 255 {
                    return Err(DropReason::MalformedNd);
                }
                return punt(pkt, meta, punt::Kind::Nd, in_port, l2, 0);
            }
        }
        if dst.is_multicast() || l2.multicast {
            return Err(DropReason::NotRouted);
        }
        let iface = &self.routes.ifaces[l2.iface as usize];
        if dst.is_link_local() {
            return if dst == iface.link_local() {
                self.v6_local(in_port, pkt, meta, l2, upper, up.offset)
            } else {
                Err(DropReason::LinkLocalScope)
            };
        }
        let (payload_len, may_answer) = (ip.payload_len(), icmp::v6_error_allowed(src, dst, upper));
        let Some((id, nh)) = self.routes.route_v6(dst) else {
            return self.v6_error(
                pkt,
                meta,
                in_port,
                l2,
                may_answer,
                DropReason::NoRoute,
                icmpv6::msg::DST_UNREACHABLE,
                icmpv6::unreachable::NO_ROUTE,
                0,
            );
        };
        let (out, neighbor) = match nh {
            NextHop::Local { .. } => return self.v6_local(in_port, pkt, meta, l2, upper, up.offset),
            NextHop::Blackhole => return Err(DropReason::Blackhole),
            NextHop::Connected { iface } => (iface, dst),
            NextHop::Gateway { iface, via: std::net::IpAddr::V6(v) } => (iface, v.into()),
            NextHop::Gateway { .. } => return Err(DropReason::NoRoute),
        };
        if src.is_link_local() {
            return Err(DropReason::LinkLocalScope); // must not leave its link
        }
        if hop_limit <= 1 {
            return self.v6_error(pkt, meta, in_port, l2, may_answer, DropReason::TtlExpired, icmpv6::msg::TIME_EXCEEDED, 0, 0);
        }
        let mtu = self.routes.ifaces[out as usize].mtu as u32;
        if ipv6::HEADER_LEN + payload_len as usize > mtu as usize {
            return self.v6_error(pkt, meta, in_port, l2, may_answer, DropReason::MtuExceeded, icmpv6::msg::PACKET_TOO_BIG, 0, mtu);
        }
        ipv6::Packet::new_unchecked(&mut pkt.data_mut()[l2.len..]).set_hop_limit(hop_limit - 1);
        self.forward_to(pkt, meta, in_port, l2, (id, &nh), NeighborKey::v6(out, neighbor), EtherType::IPV6)
    }

    fn v6_local<P: Packet>(
        &mut self,
        in_port: PortIdx,
        pkt: &mut P,
        meta: &mut Meta,
        l2: &L2,
        upper: Option<(u8, u8)>,
        offset: usize,
    ) -> Res {
        if upper != Some((ip_proto::ICMPV6, icmpv6::msg::ECHO_REQUEST)) || offset != 0 {
            return Err(DropReason::LocalUnsupported);
        }
        let ip = ipv6::Packet::new_unchecked(&pkt.data()[l2.len..]);
        let icmp = icmpv6::Packet::new_checked(ip.payload()).map_err(|_| DropReason::MalformedIcmp)?;
        match icmpv6::Repr::parse(ip.src_addr(), ip.dst_addr(), &icmp) {
            Ok(icmpv6::Repr::EchoRequest { .. }) => {}
            Ok(_) => return Err(DropReason::LocalUnsupported),
            Err(crate::wire::Error::Checksum) => return Err(DropReason::BadIcmpChecksum),
            Err(_) => return Err(DropReason::MalformedIcmp),
        }
        icmp::v6_echo_reply(pkt, l2.len, &self.routes.ifaces[l2.iface as usize], ipv6::HEADER_LEN);
        meta.set_out_port(in_port);
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    #[cold]
    fn v6_error<P: Packet>(
        &mut self,
        pkt: &mut P,
        meta: &mut Meta,
        in_port: PortIdx,
        l2: &L2,
        allowed: bool,
        reason: DropReason,
        t: u8,
        code: u8,
        rest: u32,
    ) -> Res {
        let iface = &self.routes.ifaces[l2.iface as usize];
        if !allowed || !self.icmp.allow(self.now.now()) || !icmp::v6_error(pkt, l2.len, iface, t, code, rest) {
            return Err(reason);
        }
        meta.set_out_port(in_port);
        meta.set_noted(reason);
        Ok(())
    }

    #[inline(always)]
    #[allow(clippy::too_many_arguments)]
    fn forward_to<P: Packet>(
        &mut self,
        pkt: &mut P,
        meta: &mut Meta,
        in_port: PortIdx,
        l2: &L2,
        nh: (u32, &NextHop),
        key: NeighborKey,
        et: EtherType,
    ) -> Res {
        forward(self.fib, pkt, meta, in_port, l2.len, nh, key, et)
    }
}

/// Rewrites the L2 header (`l2_len` bytes) toward the neighbour and sends
/// the packet there, or punts it for resolution when its MAC is unknown
/// (with the egress header written but for the destination MAC).
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn forward<P: Packet>(
    fib: &Fib,
    pkt: &mut P,
    meta: &mut Meta,
    in_port: PortIdx,
    l2_len: usize,
    nh: (u32, &NextHop),
    key: NeighborKey,
    et: EtherType,
) -> Res {
    if let Some(adj) = fib.adjacency(nh.0, nh.1, key) {
        if !adj.rewrite(pkt, l2_len, et) {
            return Err(DropReason::MalformedL2); // no headroom for the egress tags
        }
        meta.set_out_port(adj.port);
        return Ok(());
    }
    let out_if = &fib.routes.ifaces[key.iface as usize];
    if !set_l2(pkt, l2_len, out_if, EthernetAddress::default(), et) {
        return Err(DropReason::MalformedL2);
    }
    let l2_out = L2 { len: out_if.l2_len(), iface: key.iface, multicast: false };
    punt(pkt, meta, punt::Kind::Resolve, in_port, &l2_out, key.ip)
}

/// Where the appliance's own packets to `dst` leave: the route's id and
/// next hop, the neighbour to resolve, and the source address to use.
#[derive(Clone, Copy, Debug)]
pub struct Egress {
    pub id: u32,
    pub nh: NextHop,
    pub key: NeighborKey,
    pub src: std::net::IpAddr,
}

/// Looks up how the appliance sends its own packets to `dst` (a tunnel
/// endpoint): `None` without a route or a source address on its interface.
#[inline]
pub fn egress_for(fib: &Fib, dst: std::net::IpAddr) -> Option<Egress> {
    let routes = &fib.routes;
    let (id, nh) = match dst {
        std::net::IpAddr::V4(a) => routes.route_v4(a.into())?,
        std::net::IpAddr::V6(a) => routes.route_v6(a.into())?,
    };
    let (iface, via) = match nh {
        NextHop::Connected { iface } => (iface, dst),
        NextHop::Gateway { iface, via } => (iface, via),
        NextHop::Local { .. } | NextHop::Blackhole => return None,
    };
    let f = &routes.ifaces[iface as usize];
    let src = match dst {
        std::net::IpAddr::V4(_) => std::net::IpAddr::V4(f.v4_source()?.into()),
        std::net::IpAddr::V6(a) => std::net::IpAddr::V6(f.v6_source(a.into()).into()),
    };
    Some(Egress { id, nh, key: NeighborKey::from_ip(iface, via), src })
}

/// Sends a packet the appliance originates along `e`: `pkt` starts with a
/// 14-byte placeholder Ethernet header, then the IP packet. Writes the
/// egress L2 header and sets the egress port, or punts the packet for
/// neighbour resolution.
#[inline]
pub fn output<P: Packet>(fib: &Fib, pkt: &mut P, meta: &mut Meta, in_port: PortIdx, e: &Egress) -> Result<(), DropReason> {
    let et = if e.src.is_ipv4() { EtherType::IPV4 } else { EtherType::IPV6 };
    forward(fib, pkt, meta, in_port, ethernet::HEADER_LEN, (e.id, &e.nh), e.key, et)
}

/// Replaces an L2 header of `in_len` bytes with `out`'s header to `dst`.
#[inline(always)]
fn set_l2<P: Packet>(pkt: &mut P, in_len: usize, out: &Iface, dst: EthernetAddress, et: EtherType) -> bool {
    let out_len = out.l2_len();
    if out_len > in_len && !pkt.prepend(out_len - in_len) {
        return false;
    }
    if out_len < in_len && !pkt.adj(in_len - out_len) {
        return false;
    }
    out.write_l2(&mut pkt.data_mut()[..out_len], dst, et);
    true
}

/// Hands a received frame (L2 header of `l2_len` bytes on `iface`) to the
/// control thread as `kind`.
pub fn punt_frame<P: Packet>(pkt: &mut P, meta: &mut Meta, kind: punt::Kind, in_port: PortIdx, iface: IfaceIdx, l2_len: usize) -> Res {
    punt(pkt, meta, kind, in_port, &L2 { len: l2_len, iface, multicast: false }, 0)
}

fn punt<P: Packet>(pkt: &mut P, meta: &mut Meta, kind: punt::Kind, in_port: PortIdx, l2: &L2, neighbor: u128) -> Res {
    let h = punt::Header { kind, in_port, iface: l2.iface, l2_len: l2.len as u16, neighbor };
    if !punt::push(pkt, &h) {
        return Err(DropReason::PuntFull);
    }
    meta.set_out_port(TO_CONTROL);
    Ok(())
}

#[cfg(test)]
mod tests;
