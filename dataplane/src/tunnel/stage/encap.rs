//! The workers' tunnel encap stage: packets for a peer's allowed IPs sealed in place and routed to the path their rule chose.

use super::*;
use crate::counters::DropReason;
use crate::packet::Packet;
use crate::path::Steering;
use crate::pipeline::{each_packet, Meta, Metas, Stage, Verdict, NO_PORT};
use crate::rcu::Reader;
use crate::router::fib::Fib;
use crate::router::{self};
use crate::wire::wireguard::{self as wg};
use crate::wire::{checksum, ethernet, ipv4, ipv6, udp, vlan};
use crate::worker::Clock;
use crate::PortIdx;

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
        let steer = self.steering.get().peer(peer);
        let (endpoint, via) = match steer.map(|pp| pp.pick(meta.rule())) {
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
        // To another Patronus: the source port that lands the packet on the
        // far worker owning its inner flow (rss::source_port).
        let sport = match steer.map_or(1, |pp| pp.source_ports) {
            0 | 1 => t.listen_port,
            n => {
                let inner = crate::rss::frame_hash(pkt.data()).unwrap_or(0);
                let outer = crate::rss::fold_addr(egress.src) ^ crate::rss::fold_addr(endpoint.ip()) ^ endpoint.port();
                crate::rss::source_port(t.listen_port, outer, inner, n)
            }
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
        if !emit_ip_udp(egress.src, sport, endpoint, &mut d[ETH..msg_at + msg_len]) {
            return Verdict::Drop(DropReason::NoRoute);
        }
        tally.add((t, self.steering.get()), peer, via, msg_len, false, now);
        match router::output(fib, pkt, meta, in_port, &egress) {
            Ok(()) => Verdict::Continue,
            Err(r) => Verdict::Drop(r),
        }
    }
}
