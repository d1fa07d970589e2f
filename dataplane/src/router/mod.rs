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
use crate::pipeline::{per_packet, Meta, Metas, Stage, Verdict, NO_PORT, TO_CONTROL};
use crate::rcu::Reader;
use crate::wire::{ethernet, icmpv4, icmpv6, ip_proto, ipv4, ipv6, vlan, EtherType, EthernetAddress};
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
#[derive(Clone, Copy, Debug)]
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

/// The router stage of one worker.
pub struct Router<C: Clock> {
    fib: Reader<Fib>,
    icmp: TokenBucket,
    clock: C,
}

impl<C: Clock> Router<C> {
    /// `hz`: ticks per second of `clock`.
    pub fn new(fib: Reader<Fib>, conf: RouterConf, clock: C, hz: u64) -> Self {
        Router { fib, icmp: TokenBucket::new(conf.icmp_rate, conf.icmp_burst, hz), clock }
    }
}

impl<P: Packet, C: Clock> Stage<P> for Router<C> {
    #[inline(always)]
    fn tick(&mut self) {
        self.fib.refresh();
    }

    #[inline(always)]
    fn process_burst(&mut self, in_port: PortIdx, pkts: &mut [P], metas: &mut Metas) {
        if !self.fib.get().routes.routed(in_port) {
            return;
        }
        per_packet(self, in_port, pkts, metas);
    }

    #[inline(always)]
    fn process(&mut self, in_port: PortIdx, pkt: &mut P, meta: &mut Meta) -> Verdict {
        if meta.out_port() != NO_PORT {
            return Verdict::Continue; // decided by an earlier stage
        }
        let mut cx = Cx { routes: &self.fib.get().routes, fib: self.fib.get(), icmp: &mut self.icmp, now: &self.clock };
        match cx.route(in_port, pkt, meta) {
            Ok(()) => Verdict::Continue,
            Err(reason) => Verdict::Drop(reason),
        }
    }
}

/// What one packet's processing needs, borrowed from the stage.
struct Cx<'a, C> {
    routes: &'a Routes,
    fib: &'a Fib,
    icmp: &'a mut TokenBucket,
    now: &'a C,
}

type Res = Result<(), DropReason>;

/// What L2 parsing found.
struct L2 {
    len: usize,
    iface: IfaceIdx,
    multicast: bool,
}

impl<C: Clock> Cx<'_, C> {
    fn route<P: Packet>(&mut self, in_port: PortIdx, pkt: &mut P, meta: &mut Meta) -> Res {
        let data = pkt.data();
        let eth = ethernet::Frame::new_checked(data).map_err(|_| DropReason::MalformedL2)?;
        let (vlans, ethertype, tags) = match vlan::walk(eth.ethertype(), &data[ethernet::HEADER_LEN..]) {
            Ok(x) => x,
            Err(crate::wire::Error::Unsupported) => return Err(DropReason::UnknownVlan),
            Err(_) => return Err(DropReason::MalformedL2),
        };
        let iface = self.routes.iface_of(in_port, vlans).ok_or(DropReason::UnknownVlan)?;
        let dst = eth.dst_addr();
        if dst.is_unicast() && dst != self.routes.ifaces[iface as usize].mac {
            return Err(DropReason::NotOurMac);
        }
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
        let may_answer = icmp::v4_error_allowed(&ip);
        let Some(nh) = self.routes.lookup_v4(dst) else {
            return self.v4_error(
                pkt,
                meta,
                in_port,
                l2,
                may_answer,
                DropReason::NoRoute,
                icmpv4::msg::DST_UNREACHABLE,
                icmpv4::unreachable::NET,
                0,
            );
        };
        let (out, neighbor) = match nh {
            NextHop::Local { .. } => return self.v4_local(in_port, pkt, meta, l2),
            NextHop::Blackhole => return Err(DropReason::Blackhole),
            NextHop::Connected { iface } => (iface, dst),
            NextHop::Gateway { iface, via: std::net::IpAddr::V4(v) } => (iface, v.into()),
            NextHop::Gateway { .. } => return Err(DropReason::NoRoute),
        };
        if ttl <= 1 {
            return self.v4_error(pkt, meta, in_port, l2, may_answer, DropReason::TtlExpired, icmpv4::msg::TIME_EXCEEDED, 0, 0);
        }
        let out_if = &self.routes.ifaces[out as usize];
        if total > out_if.mtu {
            if !df {
                return Err(DropReason::MtuExceeded); // no fragmentation here
            }
            let mtu = out_if.mtu;
            return self.v4_error(
                pkt,
                meta,
                in_port,
                l2,
                may_answer,
                DropReason::MtuExceeded,
                icmpv4::msg::DST_UNREACHABLE,
                icmpv4::unreachable::FRAG_NEEDED,
                mtu,
            );
        }
        ipv4::Packet::new_unchecked(&mut pkt.data_mut()[l2.len..]).decrement_ttl();
        self.forward_to(pkt, meta, in_port, l2, out, NeighborKey::v4(out, neighbor), EtherType::IPV4)
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

    /// Answers with an ICMPv4 error in place when allowed and within the
    /// rate limit; either way the original counts as dropped for `reason`.
    #[allow(clippy::too_many_arguments)]
    fn v4_error<P: Packet>(
        &mut self,
        pkt: &mut P,
        meta: &mut Meta,
        in_port: PortIdx,
        l2: &L2,
        allowed: bool,
        reason: DropReason,
        t: u8,
        code: u8,
        rest: u16,
    ) -> Res {
        let iface = &self.routes.ifaces[l2.iface as usize];
        let Some(from) = iface.v4_source() else { return Err(reason) };
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
        let Some(nh) = self.routes.lookup_v6(dst) else {
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
        let out_if = &self.routes.ifaces[out as usize];
        if ipv6::HEADER_LEN + payload_len as usize > out_if.mtu as usize {
            let mtu = out_if.mtu as u32;
            return self.v6_error(pkt, meta, in_port, l2, may_answer, DropReason::MtuExceeded, icmpv6::msg::PACKET_TOO_BIG, 0, mtu);
        }
        ipv6::Packet::new_unchecked(&mut pkt.data_mut()[l2.len..]).set_hop_limit(hop_limit - 1);
        self.forward_to(pkt, meta, in_port, l2, out, NeighborKey::v6(out, neighbor), EtherType::IPV6)
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

    /// Rewrites the L2 header for interface `out` and sends the packet to
    /// the neighbour, or punts it for resolution when its MAC is unknown.
    #[allow(clippy::too_many_arguments)]
    fn forward_to<P: Packet>(
        &mut self,
        pkt: &mut P,
        meta: &mut Meta,
        in_port: PortIdx,
        l2: &L2,
        out: IfaceIdx,
        key: NeighborKey,
        et: EtherType,
    ) -> Res {
        let out_if = &self.routes.ifaces[out as usize];
        let mac = self.fib.neighbors.get(key);
        if !set_l2(pkt, l2.len, out_if, mac.unwrap_or_default(), et) {
            return Err(DropReason::MalformedL2); // no headroom for the egress tags
        }
        match mac {
            Some(_) => {
                meta.set_out_port(out_if.port);
                Ok(())
            }
            None => {
                let l2_out = L2 { len: out_if.l2_len(), iface: out, multicast: false };
                punt(pkt, meta, punt::Kind::Resolve, in_port, &l2_out, key.ip)
            }
        }
    }
}

/// Replaces an L2 header of `in_len` bytes with `out`'s header to `dst`.
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
