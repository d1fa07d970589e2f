//! The forwarding state workers read: interfaces, routes and neighbours,
//! published as one immutable snapshot ([`Fib`]). Routes change only when
//! the configuration does; neighbours change at run time, so a new `Fib`
//! shares the `Routes` of the previous one.

use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;

use super::lpm::Lpm;
use super::neighbor::{NeighborKey, NeighborTable};
use crate::wire::{vlan, EthernetAddress, Ipv4Address, Ipv6Address};
use crate::{PortIdx, MAX_PORTS};

/// Index of an interface in [`Routes::ifaces`].
pub type IfaceIdx = u16;

/// An IP interface: a port, or a VLAN sub-interface of one.
#[derive(Clone, Debug)]
pub struct Iface {
    pub name: String,
    pub port: PortIdx,
    /// VLAN tags frames carry on this interface (none: untagged).
    pub vlans: vlan::Stack,
    pub mac: EthernetAddress,
    pub mtu: u16,
    /// Addresses and prefix lengths.
    pub v4: Vec<(Ipv4Address, u8)>,
    /// Addresses and prefix lengths; the first is the link-local address.
    pub v6: Vec<(Ipv6Address, u8)>,
}

impl Iface {
    /// Length of this interface's L2 header (Ethernet plus VLAN tags).
    #[inline]
    pub fn l2_len(&self) -> usize {
        crate::wire::ethernet::HEADER_LEN + 4 * (self.vlans.outer.is_some() as usize + self.vlans.inner.is_some() as usize)
    }

    /// Writes this interface's L2 header (`l2_len()` bytes) into `b`:
    /// addresses, VLAN tags (802.1ad outer and 802.1Q inner for QinQ) and
    /// the payload's EtherType.
    #[inline(always)]
    pub fn write_l2(&self, b: &mut [u8], dst: EthernetAddress, ethertype: crate::wire::EtherType) {
        use crate::wire::EtherType;
        b[0..6].copy_from_slice(&dst.0);
        b[6..12].copy_from_slice(&self.mac.0);
        let mut at = 12;
        let mut tag = |b: &mut [u8], tpid: EtherType, vid: u16| {
            b[at..at + 2].copy_from_slice(&tpid.0.to_be_bytes());
            b[at + 2..at + 4].copy_from_slice(&vid.to_be_bytes());
            at += 4;
        };
        match (self.vlans.outer, self.vlans.inner) {
            (Some(o), Some(i)) => {
                tag(b, EtherType::QINQ, o);
                tag(b, EtherType::VLAN, i);
            }
            (Some(o), None) => tag(b, EtherType::VLAN, o),
            _ => {}
        }
        b[at..at + 2].copy_from_slice(&ethertype.0.to_be_bytes());
    }

    pub fn link_local(&self) -> Ipv6Address {
        Ipv6Address::link_local_from_mac(self.mac)
    }

    /// The address to send IPv4 errors and replies from.
    pub fn v4_source(&self) -> Option<Ipv4Address> {
        self.v4.first().map(|a| a.0)
    }

    /// The address to send IPv6 errors to `to` from: link-local for a
    /// link-local peer, else the first global address.
    pub fn v6_source(&self, to: Ipv6Address) -> Ipv6Address {
        if to.is_link_local() {
            return self.link_local();
        }
        self.v6.iter().map(|a| a.0).find(|a| !a.is_link_local()).unwrap_or_else(|| self.link_local())
    }

    pub fn has_v4(&self, a: Ipv4Address) -> bool {
        self.v4.iter().any(|x| x.0 == a)
    }

    pub fn has_v6(&self, a: Ipv6Address) -> bool {
        self.v6.iter().any(|x| x.0 == a)
    }

    /// `a` lies in one of the interface's IPv4 subnets.
    pub fn on_link_v4(&self, a: Ipv4Address) -> bool {
        self.v4.iter().any(|&(net, len)| prefix_match(net.to_u32() as u128, a.to_u32() as u128, len as u32 + 96))
    }

    /// `a` lies in one of the interface's IPv6 subnets (or is link-local).
    pub fn on_link_v6(&self, a: Ipv6Address) -> bool {
        a.is_link_local() || self.v6.iter().any(|&(net, len)| prefix_match(net.to_u128(), a.to_u128(), len as u32))
    }
}

fn prefix_match(a: u128, b: u128, len: u32) -> bool {
    len == 0 || (a ^ b) >> (128 - len.min(128)) == 0
}

/// Where a route sends packets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NextHop {
    /// An address of the appliance.
    Local { iface: IfaceIdx },
    /// A directly connected subnet: the destination itself is the neighbour.
    Connected { iface: IfaceIdx },
    /// Through a gateway on a connected subnet.
    Gateway { iface: IfaceIdx, via: IpAddr },
    /// Discarded (counted).
    Blackhole,
}

/// A route from the configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StaticRoute {
    pub prefix: IpAddr,
    pub len: u8,
    pub target: RouteTarget,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RouteTarget {
    /// Through this gateway (its interface is the one whose subnet holds it).
    Via(IpAddr),
    /// Out of this interface, the destination being on-link.
    Dev(IfaceIdx),
    Blackhole,
}

/// Why a static route could not be installed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RouteError {
    /// Index of the route in the `statics` given to [`Routes::build`].
    pub route: usize,
    pub message: String,
}

impl fmt::Display for RouteError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

/// Interfaces and routes, built from configuration.
pub struct Routes {
    pub ifaces: Vec<Iface>,
    pub nexthops: Vec<NextHop>,
    pub v4: Lpm<u32>,
    pub v6: Lpm<u128>,
    /// Interfaces of each port, for classifying received frames.
    by_port: Vec<PortIfaces>,
    /// Cross-connects: the port everything received on a port goes to.
    xconnect: [PortIdx; MAX_PORTS],
    /// ICMP rate limits the workers apply.
    pub conf: super::RouterConf,
}

/// A port's interfaces: the untagged one looked up directly.
#[derive(Clone, Default)]
struct PortIfaces {
    untagged: Option<IfaceIdx>,
    tagged: Vec<IfaceIdx>,
}

impl Routes {
    /// Connected and local routes come from the interfaces' addresses;
    /// `statics` add to them (a static route for the same prefix wins).
    pub fn build(ifaces: Vec<Iface>, statics: &[StaticRoute]) -> Result<Routes, RouteError> {
        let mut nexthops: Vec<NextHop> = Vec::new();
        let mut nh = |n: NextHop| match nexthops.iter().position(|x| *x == n) {
            Some(i) => i as u32,
            None => {
                nexthops.push(n);
                nexthops.len() as u32 - 1
            }
        };
        let mut r4: Vec<(u32, u8, u32)> = Vec::new();
        let mut r6: Vec<(u128, u8, u32)> = Vec::new();
        for (i, f) in ifaces.iter().enumerate() {
            let iface = i as IfaceIdx;
            for &(a, len) in &f.v4 {
                r4.push((a.to_u32(), len, nh(NextHop::Connected { iface })));
                r4.push((a.to_u32(), 32, nh(NextHop::Local { iface })));
            }
            for &(a, len) in &f.v6 {
                if !a.is_link_local() {
                    r6.push((a.to_u128(), len, nh(NextHop::Connected { iface })));
                    r6.push((a.to_u128(), 128, nh(NextHop::Local { iface })));
                }
            }
        }
        let on_link = |ip: IpAddr| -> Option<IfaceIdx> {
            ifaces
                .iter()
                .position(|f| match ip {
                    IpAddr::V4(a) => f.on_link_v4(a.into()),
                    IpAddr::V6(a) => !Ipv6Address::from(a).is_link_local() && f.on_link_v6(a.into()),
                })
                .map(|i| i as IfaceIdx)
        };
        for (route, s) in statics.iter().enumerate() {
            let err = |message: String| RouteError { route, message };
            let target = match &s.target {
                RouteTarget::Blackhole => NextHop::Blackhole,
                RouteTarget::Dev(iface) => NextHop::Connected { iface: *iface },
                RouteTarget::Via(via) => {
                    if via.is_ipv4() != s.prefix.is_ipv4() {
                        return Err(err(format!("gateway {via} is of the other address family than {}/{}", s.prefix, s.len)));
                    }
                    let iface = on_link(*via).ok_or_else(|| err(format!("gateway {via} is not on any interface's subnet")))?;
                    NextHop::Gateway { iface, via: *via }
                }
            };
            let id = nh(target);
            match s.prefix {
                IpAddr::V4(a) => r4.push((u32::from(a), s.len, id)),
                IpAddr::V6(a) => r6.push((u128::from(a), s.len, id)),
            }
        }
        let mut by_port = vec![PortIfaces::default(); MAX_PORTS];
        for (i, f) in ifaces.iter().enumerate() {
            let p = &mut by_port[f.port as usize];
            if f.vlans == vlan::Stack::default() {
                p.untagged = Some(i as IfaceIdx);
            } else {
                p.tagged.push(i as IfaceIdx);
            }
        }
        Ok(Routes {
            v4: Lpm::build(&r4),
            v6: Lpm::build(&r6),
            nexthops,
            by_port,
            ifaces,
            xconnect: [crate::pipeline::NO_PORT; MAX_PORTS],
            conf: super::RouterConf::default(),
        })
    }

    /// Adds cross-connects (from, to): ports whose traffic goes straight to
    /// another port, unrouted.
    pub fn with_xconnect(mut self, pairs: &[(PortIdx, PortIdx)]) -> Self {
        for &(from, to) in pairs {
            if let Some(slot) = self.xconnect.get_mut(from as usize) {
                *slot = to;
            }
        }
        self
    }

    pub fn with_conf(mut self, conf: super::RouterConf) -> Self {
        self.conf = conf;
        self
    }

    /// The port `port` is cross-connected to, or `NO_PORT`.
    #[inline(always)]
    pub fn xconnect_of(&self, port: PortIdx) -> PortIdx {
        self.xconnect.get(port as usize).copied().unwrap_or(crate::pipeline::NO_PORT)
    }

    /// The interface a frame with `vlans` received on `port` belongs to.
    #[inline(always)]
    pub fn iface_of(&self, port: PortIdx, vlans: vlan::Stack) -> Option<IfaceIdx> {
        let p = self.by_port.get(port as usize)?;
        if vlans == vlan::Stack::default() {
            return p.untagged;
        }
        p.tagged.iter().copied().find(|&i| self.ifaces[i as usize].vlans == vlans)
    }

    /// The MAC of `port` (that of its interfaces).
    #[inline]
    pub fn port_mac(&self, port: PortIdx) -> Option<EthernetAddress> {
        let p = self.by_port.get(port as usize)?;
        p.untagged.or(p.tagged.first().copied()).map(|i| self.ifaces[i as usize].mac)
    }

    /// The port carries IP interfaces (the router handles its frames).
    #[inline(always)]
    pub fn routed(&self, port: PortIdx) -> bool {
        self.by_port.get(port as usize).is_some_and(|p| p.untagged.is_some() || !p.tagged.is_empty())
    }

    /// The next hop for `dst` and its index in [`Routes::nexthops`].
    #[inline(always)]
    pub fn route_v4(&self, dst: Ipv4Address) -> Option<(u32, NextHop)> {
        self.v4.lookup(dst.to_u32()).map(|i| (i, self.nexthops[i as usize]))
    }

    #[inline(always)]
    pub fn route_v6(&self, dst: Ipv6Address) -> Option<(u32, NextHop)> {
        self.v6.lookup(dst.to_u128()).map(|i| (i, self.nexthops[i as usize]))
    }

    pub fn lookup_v4(&self, dst: Ipv4Address) -> Option<NextHop> {
        self.route_v4(dst).map(|r| r.1)
    }

    pub fn lookup_v6(&self, dst: Ipv6Address) -> Option<NextHop> {
        self.route_v6(dst).map(|r| r.1)
    }
}

/// A ready-made L2 rewrite toward one neighbour: the header (addresses and
/// VLAN tags, everything but the EtherType), the port, the interface MTU.
/// Forwarding copies it over the packet's header; nothing is looked up.
#[derive(Clone, Copy, Default, Debug, PartialEq, Eq)]
pub struct Adjacency {
    hdr: [u8; 20],
    /// Bytes of `hdr` used (12 untagged, 16 with one tag, 20 with two).
    hdr_len: u8,
    pub port: PortIdx,
    pub mtu: u16,
}

impl Adjacency {
    pub fn new(iface: &Iface, dst: EthernetAddress) -> Adjacency {
        let mut b = [0u8; 22];
        iface.write_l2(&mut b, dst, crate::wire::EtherType(0));
        let len = iface.l2_len() - 2;
        let mut hdr = [0u8; 20];
        hdr[..len].copy_from_slice(&b[..len]);
        Adjacency { hdr, hdr_len: len as u8, port: iface.port, mtu: iface.mtu }
    }

    /// Destination and source MAC (the first 12 bytes of the header).
    #[inline(always)]
    pub fn eth_addrs(&self) -> [u8; 12] {
        let mut a = [0u8; 12];
        a.copy_from_slice(&self.hdr[..12]);
        a
    }

    /// Length of the L2 header this adjacency writes.
    #[inline(always)]
    pub fn l2_len(&self) -> usize {
        self.hdr_len as usize + 2
    }

    /// Replaces the packet's L2 header of `in_len` bytes with this one;
    /// false if there is no headroom for it.
    #[inline(always)]
    pub fn rewrite<P: crate::packet::Packet>(&self, pkt: &mut P, in_len: usize, et: crate::wire::EtherType) -> bool {
        let out_len = self.l2_len();
        if out_len > in_len && !pkt.prepend(out_len - in_len) {
            return false;
        }
        if out_len < in_len && !pkt.adj(in_len - out_len) {
            return false;
        }
        let d = pkt.data_mut();
        if out_len == crate::wire::ethernet::HEADER_LEN && d.len() >= 14 {
            // The common case as two fixed-size copies.
            d[..12].copy_from_slice(&self.hdr[..12]);
            d[12..14].copy_from_slice(&et.0.to_be_bytes());
        } else {
            let n = self.hdr_len as usize;
            d[..n].copy_from_slice(&self.hdr[..n]);
            d[n..n + 2].copy_from_slice(&et.0.to_be_bytes());
        }
        true
    }
}

/// What workers read: routes plus the neighbours resolved so far, as
/// ready-made rewrites.
pub struct Fib {
    pub routes: Arc<Routes>,
    /// Resolved neighbours on connected subnets.
    pub neighbors: NeighborTable<Adjacency>,
    /// Per next hop (index into `routes.nexthops`), the gateway's rewrite
    /// when resolved: forwarding through a gateway needs no hash lookup.
    gateways: Box<[Option<Adjacency>]>,
}

impl Fib {
    /// `macs`: the neighbours' MACs as the neighbour cache knows them.
    pub fn new(routes: Arc<Routes>, macs: NeighborTable) -> Fib {
        let adj = |k: NeighborKey, mac: EthernetAddress| routes.ifaces.get(k.iface as usize).map(|f| Adjacency::new(f, mac));
        let neighbors = NeighborTable::build(macs.iter().filter_map(|(k, mac)| Some((k, adj(k, mac)?))));
        let gateways = routes
            .nexthops
            .iter()
            .map(|nh| match *nh {
                NextHop::Gateway { iface, via } => {
                    let k = NeighborKey::from_ip(iface, via);
                    macs.get(k).and_then(|m| adj(k, *m))
                }
                _ => None,
            })
            .collect();
        Fib { routes, neighbors, gateways }
    }

    /// The rewrite toward gateway next hop `id`, if resolved.
    #[inline(always)]
    pub fn gateway(&self, id: u32) -> Option<&Adjacency> {
        self.gateways.get(id as usize).and_then(Option::as_ref)
    }

    /// The rewrite toward next hop `id` (kind `nh`) for neighbour `key`.
    #[inline(always)]
    pub fn adjacency(&self, id: u32, nh: &NextHop, key: NeighborKey) -> Option<&Adjacency> {
        match nh {
            NextHop::Gateway { .. } => self.gateways.get(id as usize).and_then(Option::as_ref),
            _ => self.neighbors.get(key),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn iface(name: &str, port: PortIdx, mac: u8, v4: &str, v6: &str) -> Iface {
        let (a4, l4) = v4.split_once('/').unwrap();
        let (a6, l6) = v6.split_once('/').unwrap();
        let mac = EthernetAddress([2, 0, 0, 0, 0, mac]);
        Iface {
            name: name.into(),
            port,
            vlans: vlan::Stack::default(),
            mac,
            mtu: 1500,
            v4: vec![(a4.parse::<std::net::Ipv4Addr>().unwrap().into(), l4.parse().unwrap())],
            v6: vec![(Ipv6Address::link_local_from_mac(mac), 64), (a6.parse::<std::net::Ipv6Addr>().unwrap().into(), l6.parse().unwrap())],
        }
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn connected_local_and_static_routes() {
        let ifaces = vec![iface("lan0", 0, 1, "10.1.0.1/24", "fd01::1/64"), iface("wan0", 1, 2, "192.0.2.1/30", "fd02::1/64")];
        let statics = vec![
            StaticRoute { prefix: ip("0.0.0.0"), len: 0, target: RouteTarget::Via(ip("192.0.2.2")) },
            StaticRoute { prefix: ip("10.66.0.0"), len: 16, target: RouteTarget::Blackhole },
            StaticRoute { prefix: ip("::"), len: 0, target: RouteTarget::Via(ip("fd02::2")) },
        ];
        let r = Routes::build(ifaces, &statics).unwrap();
        let v4 = |s: &str| r.lookup_v4(s.parse::<std::net::Ipv4Addr>().unwrap().into());
        let v6 = |s: &str| r.lookup_v6(s.parse::<std::net::Ipv6Addr>().unwrap().into());
        assert_eq!(v4("10.1.0.1"), Some(NextHop::Local { iface: 0 }));
        assert_eq!(v4("10.1.0.77"), Some(NextHop::Connected { iface: 0 }));
        assert_eq!(v4("8.8.8.8"), Some(NextHop::Gateway { iface: 1, via: ip("192.0.2.2") }));
        assert_eq!(v4("10.66.1.1"), Some(NextHop::Blackhole));
        assert_eq!(v6("fd01::1"), Some(NextHop::Local { iface: 0 }));
        assert_eq!(v6("fd01::9"), Some(NextHop::Connected { iface: 0 }));
        assert_eq!(v6("2001:db8::1"), Some(NextHop::Gateway { iface: 1, via: ip("fd02::2") }));
        assert!(r.routed(0) && r.routed(1) && !r.routed(2));
        assert_eq!(r.iface_of(1, vlan::Stack::default()), Some(1));
        assert_eq!(r.iface_of(1, vlan::Stack { outer: Some(7), inner: None }), None);
    }

    #[test]
    fn l2_headers_carry_the_interface_tags() {
        let mut f = iface("lan0.100", 0, 1, "10.1.0.1/24", "fd01::1/64");
        let dst = EthernetAddress([2, 0, 0, 0, 0, 9]);
        let mut b = [0u8; 22];
        f.write_l2(&mut b, dst, crate::wire::EtherType::IPV4);
        assert_eq!(f.l2_len(), 14);
        assert_eq!(&b[..14], &[2, 0, 0, 0, 0, 9, 2, 0, 0, 0, 0, 1, 0x08, 0x00]);
        f.vlans = vlan::Stack { outer: Some(100), inner: None };
        f.write_l2(&mut b, dst, crate::wire::EtherType::IPV6);
        assert_eq!(f.l2_len(), 18);
        assert_eq!(&b[12..18], &[0x81, 0x00, 0x00, 100, 0x86, 0xdd]);
        f.vlans = vlan::Stack { outer: Some(10), inner: Some(20) };
        f.write_l2(&mut b, dst, crate::wire::EtherType::ARP);
        assert_eq!(f.l2_len(), 22);
        assert_eq!(&b[12..22], &[0x88, 0xa8, 0, 10, 0x81, 0x00, 0, 20, 0x08, 0x06]);
        // What walk() reads back is what write_l2 wrote.
        let (stack, et, off) = vlan::walk(crate::wire::EtherType(0x88a8), &b[14..]).unwrap();
        assert_eq!((stack, et, off), (f.vlans, crate::wire::EtherType::ARP, 8));
    }

    #[test]
    fn gateways_must_be_on_link() {
        let ifaces = vec![iface("lan0", 0, 1, "10.1.0.1/24", "fd01::1/64")];
        let bad = [StaticRoute { prefix: ip("0.0.0.0"), len: 0, target: RouteTarget::Via(ip("10.9.9.9")) }];
        let e = Routes::build(ifaces.clone(), &bad).err().unwrap();
        assert_eq!((e.route, e.message.as_str()), (0, "gateway 10.9.9.9 is not on any interface's subnet"));
        let mixed = [StaticRoute { prefix: ip("::"), len: 0, target: RouteTarget::Via(ip("10.1.0.2")) }];
        assert!(Routes::build(ifaces, &mixed).err().unwrap().message.contains("other address family"));
    }
}
