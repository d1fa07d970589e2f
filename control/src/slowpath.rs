//! The control thread's side of routing: it takes what workers punt (ARP,
//! Neighbor Discovery, packets waiting for a neighbour), answers and
//! resolves through the neighbour cache, sends from its own TX queues, and
//! publishes a new forwarding snapshot whenever the neighbours change.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Instant;

use dataplane::counters::DropReason;
use dataplane::dpdk::Mbuf;
use dataplane::egress::PuntRing;
use dataplane::egress::{fill_new, ControlIo};
use dataplane::packet::{Burst, Packet};
use dataplane::rcu::{Publisher, Reader};
use dataplane::router::fib::{Fib, Iface, IfaceIdx, Routes};
use dataplane::router::neighbor::{Action, NeighborCache, NeighborConf, NeighborKey, Resolve};
use dataplane::router::punt;
use dataplane::wire::{arp, icmpv6, ip_proto, ipv4, ipv6, udp, EtherType, EthernetAddress, Ipv4Address, Ipv6Address};
use dataplane::PortIdx;

/// Punted packets handled per ring per poll, so timers keep running.
const BATCH: usize = 256;

/// Handshake messages waiting for the tunnel control, at most.
const TUNNEL_BACKLOG: usize = 4096;

/// Smallest Ethernet frame without FCS; shorter frames are padded.
const MIN_FRAME: usize = 60;

pub struct SlowPath<P = Mbuf> {
    routes: Arc<Routes>,
    publisher: Publisher<Fib>,
    cache: NeighborCache<P>,
    rings: Vec<PuntRing<P>>,
    /// Frames to send, per port.
    out: Vec<Burst<P>>,
    /// Tunnel handshake messages the workers punted, for the tunnel control.
    pub tunnel_rx: Vec<(punt::Header, P)>,
    /// Probe replies and BFD packets, for the path controller.
    pub path_rx: Vec<(punt::Header, P)>,
}

impl<P: Packet> SlowPath<P> {
    pub fn new(routes: Routes, conf: NeighborConf, rings: Vec<PuntRing<P>>, nports: usize) -> SlowPath<P> {
        let routes = Arc::new(routes);
        let publisher = Publisher::new(Fib::new(routes.clone(), NeighborCache::<P>::new(conf).table()));
        SlowPath {
            routes,
            publisher,
            cache: NeighborCache::new(conf),
            rings,
            out: (0..nports).map(|_| Burst::new()).collect(),
            tunnel_rx: Vec::new(),
            path_rx: Vec::new(),
        }
    }

    /// A reader of the forwarding snapshot, for one worker's router stage.
    pub fn reader(&self) -> Reader<Fib> {
        self.publisher.reader()
    }

    pub fn routes(&self) -> &Routes {
        &self.routes
    }

    /// Installs reloaded routes and neighbour settings and publishes them;
    /// returns the snapshot version the workers must reach. Resolved
    /// neighbours carry over to the interfaces of the same name.
    pub fn replace(&mut self, io: &impl ControlIo<Pkt = P>, routes: Routes, conf: NeighborConf) -> u64 {
        let old = self.routes.clone();
        let new_index = |i: IfaceIdx| {
            let f = old.ifaces.get(i as usize)?;
            routes.ifaces.iter().position(|n| n.name == f.name && n.port == f.port).map(|n| n as IfaceIdx)
        };
        for (key, pkts) in self.cache.remap(new_index) {
            drop_count(io, old.ifaces[key.iface as usize].port, DropReason::NeighborUnresolved, pkts.len());
        }
        self.cache.set_conf(conf);
        self.cache.take_changed();
        self.routes = Arc::new(routes);
        self.publisher.publish(Fib::new(self.routes.clone(), self.cache.table()));
        self.publisher.version()
    }

    /// Replaced snapshots not yet freed (some worker may still use them).
    pub fn retired(&mut self) -> usize {
        self.publisher.reclaim()
    }

    /// Whether every worker has adopted snapshot `version`.
    pub fn adopted(&self, version: u64) -> bool {
        self.publisher.adopted(version)
    }

    /// Neighbours and their state, for display.
    pub fn neighbors(&self) -> Vec<(NeighborKey, Option<EthernetAddress>, &'static str)> {
        self.cache.entries()
    }

    /// Handles punted packets and timers. Returns whether there was work.
    pub fn poll(&mut self, io: &mut impl ControlIo<Pkt = P>, now: Instant) -> bool {
        let mut work = false;
        for r in 0..self.rings.len() {
            for _ in 0..BATCH {
                let Some(pkt) = self.rings[r].pop() else { break };
                work = true;
                self.handle(io, pkt, now);
            }
        }
        for action in self.cache.poll(now) {
            work = true;
            match action {
                Action::Solicit { key, unicast } => self.solicit(io, key, unicast),
                Action::Unresolved { key, pkts } => {
                    let port = self.routes.ifaces[key.iface as usize].port;
                    drop_count(io, port, DropReason::NeighborUnresolved, pkts.len());
                }
            }
        }
        if self.cache.take_changed() {
            self.publisher.publish(Fib::new(self.routes.clone(), self.cache.table()));
        }
        self.publisher.reclaim();
        for port in 0..self.out.len() {
            if !self.out[port].is_empty() {
                io.send(port as PortIdx, &mut self.out[port]);
            }
        }
        work
    }

    fn handle(&mut self, io: &mut impl ControlIo<Pkt = P>, mut pkt: P, now: Instant) {
        let Some(h) = punt::pop(&mut pkt) else {
            return drop_count(io, 0, DropReason::Malformed, 1);
        };
        if h.iface as usize >= self.routes.ifaces.len() {
            return drop_count(io, h.in_port, DropReason::Malformed, 1);
        }
        match h.kind {
            punt::Kind::Arp => self.on_arp(io, &h, pkt, now),
            punt::Kind::Nd => self.on_nd(io, &h, pkt, now),
            punt::Kind::Tunnel | punt::Kind::Probe | punt::Kind::Bfd => {
                let q = if h.kind == punt::Kind::Tunnel { &mut self.tunnel_rx } else { &mut self.path_rx };
                if q.len() < TUNNEL_BACKLOG {
                    q.push((h, pkt));
                } else {
                    drop_count(io, h.in_port, DropReason::PuntFull, 1);
                }
            }
            punt::Kind::Resolve => {
                let key = NeighborKey { iface: h.iface, ip: h.neighbor };
                match self.cache.resolve(key, pkt, now) {
                    Resolve::Known(mac, pkt) => self.send_to(io, key, mac, pkt),
                    Resolve::Queued => {}
                    Resolve::Solicit => self.solicit(io, key, None),
                    Resolve::Overflow(_) => {
                        drop_count(io, self.routes.ifaces[h.iface as usize].port, DropReason::NeighborPendingOverflow, 1)
                    }
                }
            }
        }
    }

    fn on_arp(&mut self, io: &mut impl ControlIo<Pkt = P>, h: &punt::Header, pkt: P, now: Instant) {
        let Some(Ok(a)) = arp::Packet::new_checked(pkt.data().get(h.l2_len as usize..).unwrap_or(&[])).ok().map(|p| arp::Repr::parse(&p))
        else {
            return drop_count(io, h.in_port, DropReason::MalformedArp, 1);
        };
        drop(pkt);
        let routes = self.routes.clone();
        let iface = &routes.ifaces[h.iface as usize];
        let (spa, sha, tpa) = (a.source_protocol_addr, a.source_hardware_addr, a.target_protocol_addr);
        let for_us = iface.has_v4(tpa);
        if iface.on_link_v4(spa) && !spa.is_unspecified() && sha.is_unicast() && !iface.has_v4(spa) {
            let key = NeighborKey::v4(h.iface, spa);
            for p in self.cache.learn(key, sha, now, for_us) {
                self.send_to(io, key, sha, p);
            }
        }
        if a.operation == arp::Operation::Request && for_us {
            let reply = arp::Repr {
                operation: arp::Operation::Reply,
                source_hardware_addr: iface.mac,
                source_protocol_addr: tpa,
                target_hardware_addr: sha,
                target_protocol_addr: spa,
            };
            self.send_arp(io, iface, sha, &reply);
        }
    }

    fn on_nd(&mut self, io: &mut impl ControlIo<Pkt = P>, h: &punt::Header, pkt: P, now: Instant) {
        let l2 = h.l2_len as usize;
        let frame_src = EthernetAddress::from_bytes(&pkt.data()[6..12]);
        let parsed = ipv6::Packet::new_checked(&pkt.data()[l2..]).ok().filter(|ip| ip.next_header() == ip_proto::ICMPV6).and_then(|ip| {
            let (src, dst) = (ip.src_addr(), ip.dst_addr());
            let icmp = icmpv6::Packet::new_checked(ip.payload()).ok()?;
            icmpv6::Repr::parse(src, dst, &icmp).ok().map(|r| (src, owned(r)))
        });
        drop(pkt);
        let Some((src, msg)) = parsed else {
            return drop_count(io, h.in_port, DropReason::MalformedNd, 1);
        };
        let routes = self.routes.clone();
        let iface = &routes.ifaces[h.iface as usize];
        match msg {
            Nd::Solicit { target, source_lladdr } => {
                if !(iface.has_v6(target) || target == iface.link_local()) || src.is_unspecified() {
                    return; // not ours, or someone's duplicate address detection
                }
                let ll = source_lladdr.unwrap_or(frame_src);
                let key = NeighborKey::v6(h.iface, src);
                for p in self.cache.learn(key, ll, now, true) {
                    self.send_to(io, key, ll, p);
                }
                let na = icmpv6::Repr::NeighborAdvert {
                    flags: icmpv6::NA_ROUTER | icmpv6::NA_SOLICITED | icmpv6::NA_OVERRIDE,
                    target,
                    target_lladdr: Some(iface.mac),
                };
                self.send_icmpv6(io, iface, ll, target, src, &na);
            }
            Nd::Advert { target, target_lladdr } => {
                let ll = target_lladdr.unwrap_or(frame_src);
                let key = NeighborKey::v6(h.iface, target);
                for p in self.cache.learn(key, ll, now, false) {
                    self.send_to(io, key, ll, p);
                }
            }
            Nd::Other => {}
        }
    }

    /// An ARP request or Neighbor Solicitation for `key`: broadcast /
    /// solicited-node multicast to resolve, unicast to re-probe.
    fn solicit(&mut self, io: &mut impl ControlIo<Pkt = P>, key: NeighborKey, unicast: Option<EthernetAddress>) {
        let routes = self.routes.clone();
        let iface = &routes.ifaces[key.iface as usize];
        match key.ip() {
            std::net::IpAddr::V4(t) => {
                let target: Ipv4Address = t.into();
                let Some(spa) = iface.v4.iter().find(|(a, l)| iface_net_contains(*a, *l, target)).or(iface.v4.first()).map(|a| a.0) else {
                    return;
                };
                let req = arp::Repr {
                    operation: arp::Operation::Request,
                    source_hardware_addr: iface.mac,
                    source_protocol_addr: spa,
                    target_hardware_addr: EthernetAddress::default(),
                    target_protocol_addr: target,
                };
                self.send_arp(io, iface, unicast.unwrap_or(EthernetAddress::BROADCAST), &req);
            }
            std::net::IpAddr::V6(t) => {
                let target: Ipv6Address = t.into();
                let (dst_ip, dst_mac) = match unicast {
                    Some(m) => (target, m),
                    None => (target.solicited_node(), EthernetAddress::ipv6_multicast(&target.solicited_node().0)),
                };
                let ns = icmpv6::Repr::NeighborSolicit { target, source_lladdr: Some(iface.mac) };
                self.send_icmpv6(io, iface, dst_mac, iface.link_local(), dst_ip, &ns);
            }
        }
    }

    /// Sends a packet that waited for `key`'s address.
    fn send_to(&mut self, io: &mut impl ControlIo<Pkt = P>, key: NeighborKey, mac: EthernetAddress, mut pkt: P) {
        let port = self.routes.ifaces[key.iface as usize].port;
        if let Some(d) = pkt.data_mut().get_mut(..6) {
            d.copy_from_slice(&mac.0);
        }
        self.queue(io, port, pkt);
    }

    fn send_arp(&mut self, io: &mut impl ControlIo<Pkt = P>, iface: &Iface, dst: EthernetAddress, a: &arp::Repr) {
        let l2 = iface.l2_len();
        self.build(io, iface.port, l2 + arp::PACKET_LEN, |b| {
            iface.write_l2(b, dst, EtherType::ARP);
            a.emit(&mut arp::Packet::new_unchecked(&mut b[l2..l2 + arp::PACKET_LEN]));
        });
    }

    fn send_icmpv6(
        &mut self,
        io: &mut impl ControlIo<Pkt = P>,
        iface: &Iface,
        dst_mac: EthernetAddress,
        src: Ipv6Address,
        dst: Ipv6Address,
        msg: &icmpv6::Repr,
    ) {
        let l2 = iface.l2_len();
        let len = msg.buffer_len();
        self.build(io, iface.port, l2 + ipv6::HEADER_LEN + len, |b| {
            iface.write_l2(b, dst_mac, EtherType::IPV6);
            let ip =
                ipv6::Repr { src, dst, next_header: ip_proto::ICMPV6, hop_limit: 255, traffic_class: 0, flow_label: 0, payload_len: len };
            ip.emit(&mut ipv6::Packet::new_unchecked(&mut b[l2..]));
            msg.emit(src, dst, &mut icmpv6::Packet::new_unchecked(&mut b[l2 + ipv6::HEADER_LEN..l2 + ipv6::HEADER_LEN + len]));
        });
    }

    /// Sends an IP packet the appliance originates (a tunnel handshake or
    /// keepalive) to `dst`: `fill` writes its `ip_len` bytes given the
    /// source address of the route's interface. Resolves the next hop
    /// first when its MAC is unknown.
    pub fn originate(
        &mut self,
        io: &mut impl ControlIo<Pkt = P>,
        dst: std::net::IpAddr,
        ip_len: usize,
        now: Instant,
        fill: impl FnOnce(std::net::IpAddr, &mut [u8]) -> bool,
    ) -> Result<(), DropReason> {
        let e = dataplane::router::egress_for(self.publisher.current(), dst).ok_or(DropReason::NoRoute)?;
        let iface = &self.routes.ifaces[e.key.iface as usize];
        let (l2, port) = (iface.l2_len(), iface.port);
        let et = if dst.is_ipv4() { EtherType::IPV4 } else { EtherType::IPV6 };
        let mut m = io.alloc(port).ok_or(DropReason::TxFull)?;
        let b = fill_new(&mut m, (l2 + ip_len).max(MIN_FRAME)).ok_or(DropReason::TxFull)?;
        iface.write_l2(&mut b[..l2], EthernetAddress::default(), et);
        if !fill(e.src, &mut b[l2..l2 + ip_len]) {
            return Err(DropReason::NoRoute);
        }
        match self.cache.resolve(e.key, m, now) {
            Resolve::Known(mac, pkt) => self.send_to(io, e.key, mac, pkt),
            Resolve::Queued => {}
            Resolve::Solicit => self.solicit(io, e.key, None),
            Resolve::Overflow(_) => return Err(DropReason::NeighborPendingOverflow),
        }
        Ok(())
    }

    /// Allocates a frame of `len` bytes (padded to the Ethernet minimum),
    /// lets `fill` write it, and queues it on `port`.
    fn build(&mut self, io: &mut impl ControlIo<Pkt = P>, port: PortIdx, len: usize, fill: impl FnOnce(&mut [u8])) {
        let Some(mut m) = io.alloc(port) else {
            return drop_count(io, port, DropReason::TxFull, 1);
        };
        let Some(b) = fill_new(&mut m, len.max(MIN_FRAME)) else {
            return drop_count(io, port, DropReason::TxFull, 1);
        };
        fill(&mut b[..len]);
        self.queue(io, port, m);
    }

    fn queue(&mut self, io: &mut impl ControlIo<Pkt = P>, port: PortIdx, pkt: P) {
        let Some(out) = self.out.get_mut(port as usize) else { return };
        if let Err(pkt) = out.push(pkt) {
            io.send(port, out);
            let _ = out.push(pkt);
        }
    }
}

fn iface_net_contains(a: Ipv4Address, len: u8, x: Ipv4Address) -> bool {
    len == 0 || (a.to_u32() ^ x.to_u32()) >> (32 - len as u32) == 0
}

fn drop_count(io: &impl ControlIo, port: PortIdx, reason: DropReason, n: usize) {
    io.count_drop(port, reason, n as u64);
}

/// The ND messages the slow path acts on, detached from the packet buffer.
enum Nd {
    Solicit { target: Ipv6Address, source_lladdr: Option<EthernetAddress> },
    Advert { target: Ipv6Address, target_lladdr: Option<EthernetAddress> },
    Other,
}

fn owned(r: icmpv6::Repr) -> Nd {
    match r {
        icmpv6::Repr::NeighborSolicit { target, source_lladdr } => Nd::Solicit { target, source_lladdr },
        icmpv6::Repr::NeighborAdvert { target, target_lladdr, .. } => Nd::Advert { target, target_lladdr },
        _ => Nd::Other,
    }
}

/// Source, destination port, TTL (hop limit) and payload of a UDP datagram
/// in a punted frame with an L2 header of `l2` bytes (handshakes, BFD).
pub fn udp_datagram(d: &[u8], l2: usize) -> Option<(SocketAddr, u16, u8, &[u8])> {
    let et = EtherType(u16::from_be_bytes([*d.get(l2.checked_sub(2)?)?, *d.get(l2 - 1)?]));
    let ip = d.get(l2..)?;
    let (src, ttl, l4): (IpAddr, u8, &[u8]) = match et {
        EtherType::IPV4 => {
            let p = ipv4::Packet::new_checked(ip).ok()?;
            if p.protocol() != ip_proto::UDP {
                return None;
            }
            (IpAddr::V4(p.src_addr().into()), p.ttl(), ip.get(p.header_len()..p.total_len() as usize)?)
        }
        EtherType::IPV6 => {
            let p = ipv6::Packet::new_checked(ip).ok()?;
            if p.next_header() != ip_proto::UDP {
                return None;
            }
            (IpAddr::V6(p.src_addr().into()), p.hop_limit(), ip.get(ipv6::HEADER_LEN..ipv6::HEADER_LEN + p.payload_len() as usize)?)
        }
        _ => return None,
    };
    let u = udp::Packet::new_checked(l4).ok()?;
    Some((SocketAddr::new(src, u.src_port()), u.dst_port(), ttl, l4.get(udp::HEADER_LEN..u.len() as usize)?))
}
