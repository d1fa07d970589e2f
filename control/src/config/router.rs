//! Interfaces, addresses, VLAN sub-interfaces, static routes and router
//! options: their schema, validation, and the [`Routes`] they build.

use std::collections::HashSet;
use std::net::IpAddr;
use std::time::Duration;

use dataplane::router::fib::{Iface, RouteTarget, Routes, StaticRoute};
use dataplane::router::neighbor::NeighborConf;
use dataplane::router::RouterConf;
use dataplane::wire::{vlan, EthernetAddress, Ipv6Address};
use dataplane::PortIdx;
use serde::{Deserialize, Serialize};

use super::{Config, ConfigError, Locator, Seg};

pub(super) fn default_mtu() -> u16 {
    1500
}

/// `[[port.vlan]]`: an 802.1Q sub-interface (802.1ad QinQ with `outer_id`).
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Vlan {
    /// VLAN ID (the inner C-tag when `outer_id` is set).
    pub id: u16,
    /// Outer S-tag VLAN ID, for QinQ.
    #[serde(default)]
    pub outer_id: Option<u16>,
    #[serde(default)]
    pub addresses: Vec<String>,
    /// Defaults to the port's MTU.
    #[serde(default)]
    pub mtu: Option<u16>,
}

/// `[[route]]`: a static route.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Route {
    /// Destination prefix, "0.0.0.0/0", "2001:db8::/32".
    pub prefix: String,
    /// Gateway on a connected subnet.
    #[serde(default)]
    pub via: Option<String>,
    /// Interface the destination is directly reachable on ("lan0", "lan0.100").
    #[serde(default)]
    pub dev: Option<String>,
    /// Discard matching packets.
    #[serde(default)]
    pub blackhole: bool,
}

/// `[router]`: ICMP and neighbour-resolution settings.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RouterOpts {
    /// ICMP errors each worker may send per second (0: none).
    pub icmp_rate: u32,
    /// ... and at once.
    pub icmp_burst: u32,
    /// Seconds a neighbour's address is trusted before it is re-probed.
    pub neighbor_reachable_s: u32,
    /// Milliseconds between ARP requests / neighbour solicitations.
    pub neighbor_retrans_ms: u32,
    /// Unanswered solicitations before a neighbour is given up.
    pub neighbor_probes: u32,
    /// Packets that may wait for one neighbour's address.
    pub neighbor_pending: u32,
}

impl Default for RouterOpts {
    fn default() -> Self {
        let n = NeighborConf::default();
        let r = RouterConf::default();
        RouterOpts {
            icmp_rate: r.icmp_rate,
            icmp_burst: r.icmp_burst,
            neighbor_reachable_s: n.reachable.as_secs() as u32,
            neighbor_retrans_ms: n.retrans.as_millis() as u32,
            neighbor_probes: n.probes,
            neighbor_pending: n.pending_max as u32,
        }
    }
}

/// "10.1.0.1/24" or "fd00::1/64".
pub(crate) fn parse_cidr(s: &str) -> Result<(IpAddr, u8), String> {
    let expected = "expected ADDRESS/PREFIX-LENGTH like 10.1.0.1/24 or fd00::1/64";
    let (a, l) = s.split_once('/').ok_or_else(|| format!("{s:?}: {expected}"))?;
    let ip: IpAddr = a.trim().parse().map_err(|_| format!("{s:?}: {a:?} is not an IP address; {expected}"))?;
    let max = if ip.is_ipv4() { 32 } else { 128 };
    let len: u8 = l.trim().parse().ok().filter(|&l| l <= max).ok_or_else(|| format!("{s:?}: prefix length must be 0..={max}"))?;
    Ok((ip, len))
}

fn network(ip: IpAddr, len: u8) -> u128 {
    let (v, bits) = match ip {
        IpAddr::V4(a) => (u32::from(a) as u128, 32u32),
        IpAddr::V6(a) => (u128::from(a), 128u32),
    };
    let host = bits - len as u32;
    if host >= 128 {
        0
    } else {
        v >> host << host
    }
}

/// One interface as the configuration describes it, before MACs are known.
struct IfaceDef<'a> {
    name: String,
    port: PortIdx,
    vlans: vlan::Stack,
    mtu: u16,
    addresses: &'a [String],
    /// Path of the interface's table (for error positions).
    path: Vec<Seg>,
}

impl Config {
    /// Every IP interface: a port's untagged one (when it has addresses),
    /// then its VLAN sub-interfaces.
    fn iface_defs(&self) -> Vec<IfaceDef<'_>> {
        let mut out = Vec::new();
        for (i, p) in self.port.iter().enumerate() {
            if !p.addresses.is_empty() {
                out.push(IfaceDef {
                    name: p.name.clone(),
                    port: i as PortIdx,
                    vlans: vlan::Stack::default(),
                    mtu: p.mtu,
                    addresses: &p.addresses,
                    path: cfg_path!("port", i),
                });
            }
            for (j, v) in p.vlan.iter().enumerate() {
                let (vlans, name) = match v.outer_id {
                    Some(o) => (vlan::Stack { outer: Some(o), inner: Some(v.id) }, format!("{}.{o}.{}", p.name, v.id)),
                    None => (vlan::Stack { outer: Some(v.id), inner: None }, format!("{}.{}", p.name, v.id)),
                };
                out.push(IfaceDef {
                    name,
                    port: i as PortIdx,
                    vlans,
                    mtu: v.mtu.unwrap_or(p.mtu),
                    addresses: &v.addresses,
                    path: cfg_path!("port", i, "vlan", j),
                });
            }
        }
        out
    }

    /// Whether any port routes (has addresses or VLANs).
    pub fn routed(&self) -> bool {
        self.port.iter().any(|p| !p.addresses.is_empty() || !p.vlan.is_empty())
    }

    /// The interfaces, given each port's MAC.
    pub fn ifaces(&self, macs: &[EthernetAddress]) -> Vec<Iface> {
        self.iface_defs()
            .into_iter()
            .map(|d| {
                let mac = macs.get(d.port as usize).copied().unwrap_or_default();
                let mut v4 = Vec::new();
                let mut v6 = Vec::new();
                for (ip, len) in d.addresses.iter().filter_map(|a| parse_cidr(a).ok()) {
                    match ip {
                        IpAddr::V4(a) => v4.push((a.into(), len)),
                        IpAddr::V6(a) => v6.push((a.into(), len)),
                    }
                }
                if !v6.is_empty() {
                    v6.insert(0, (Ipv6Address::link_local_from_mac(mac), 64));
                }
                Iface { name: d.name, port: d.port, vlans: d.vlans, mac, mtu: d.mtu, v4, v6 }
            })
            .collect()
    }

    fn static_routes(&self, ifaces: &[Iface]) -> Vec<StaticRoute> {
        self.route
            .iter()
            .filter_map(|r| {
                let (prefix, len) = parse_cidr(&r.prefix).ok()?;
                let target = match (&r.via, &r.dev, r.blackhole) {
                    (Some(v), None, false) => RouteTarget::Via(v.trim().parse().ok()?),
                    (None, Some(d), false) => RouteTarget::Dev(ifaces.iter().position(|f| &f.name == d)? as u16),
                    (None, None, true) => RouteTarget::Blackhole,
                    _ => return None,
                };
                Some(StaticRoute { prefix, len, target })
            })
            .collect()
    }

    /// Interfaces and routes, given each port's MAC.
    pub fn routes(&self, macs: &[EthernetAddress]) -> Result<Routes, String> {
        let ifaces = self.ifaces(macs);
        let statics = self.static_routes(&ifaces);
        Routes::build(ifaces, &statics).map_err(|e| format!("route[{}]: {}", e.route, e.message))
    }

    pub fn router_conf(&self) -> RouterConf {
        RouterConf { icmp_rate: self.router.icmp_rate, icmp_burst: self.router.icmp_burst }
    }

    pub fn neighbor_conf(&self) -> NeighborConf {
        let r = &self.router;
        NeighborConf {
            reachable: Duration::from_secs(r.neighbor_reachable_s as u64),
            retrans: Duration::from_millis(r.neighbor_retrans_ms as u64),
            probes: r.neighbor_probes,
            pending_max: r.neighbor_pending as usize,
        }
    }

    pub(super) fn validate_router(&self, loc: &Locator) -> Vec<ConfigError> {
        let mut errs = Vec::new();
        let mut check = |ok: bool, path: Vec<Seg>, msg: String| {
            if !ok {
                errs.push(loc.error(&path, msg));
            }
        };

        for (i, p) in self.port.iter().enumerate() {
            let routed = !p.addresses.is_empty() || !p.vlan.is_empty();
            check(
                !(routed && p.forward.is_some()),
                cfg_path!("port", i, "forward"),
                format!(
                    "port {:?} has addresses or VLANs and so routes; it cannot also cross-connect (remove `forward` or the addresses)",
                    p.name
                ),
            );
            if let Some(q) = p.rx_queues {
                check((1..=128).contains(&q), cfg_path!("port", i, "rx_queues"), format!("{q} is out of range; expected 1..=128"));
            }
            let mut seen = HashSet::new();
            for (j, v) in p.vlan.iter().enumerate() {
                check(
                    (1..=4094).contains(&v.id),
                    cfg_path!("port", i, "vlan", j, "id"),
                    format!("VLAN ID {} is out of range; expected 1..=4094", v.id),
                );
                if let Some(o) = v.outer_id {
                    check(
                        (1..=4094).contains(&o),
                        cfg_path!("port", i, "vlan", j, "outer_id"),
                        format!("VLAN ID {o} is out of range; expected 1..=4094"),
                    );
                }
                check(
                    seen.insert((v.outer_id, v.id)),
                    cfg_path!("port", i, "vlan", j, "id"),
                    format!("VLAN {} is defined twice on port {:?}", v.id, p.name),
                );
                check(!v.addresses.is_empty(), cfg_path!("port", i, "vlan", j), "a VLAN sub-interface needs at least one address".into());
            }
        }

        // Addresses: well formed, unicast, unique; subnets must not overlap.
        let defs = self.iface_defs();
        let mut seen_addrs: Vec<(IpAddr, String)> = Vec::new();
        let mut subnets: Vec<(u128, u8, bool, String)> = Vec::new();
        for d in &defs {
            let mut has_v6 = false;
            let mtu_path = |mut p: Vec<Seg>| {
                p.push(Seg::from("mtu"));
                p
            };
            for (k, a) in d.addresses.iter().enumerate() {
                let mut path = d.path.clone();
                path.push(Seg::from("addresses"));
                path.push(Seg::from(k));
                let (ip, len) = match parse_cidr(a) {
                    Ok(x) => x,
                    Err(m) => {
                        check(false, path, m);
                        continue;
                    }
                };
                has_v6 |= ip.is_ipv6();
                let bad = ip.is_unspecified()
                    || ip.is_loopback()
                    || ip.is_multicast()
                    || matches!(ip, IpAddr::V6(v) if Ipv6Address::from(v).is_link_local());
                if bad {
                    check(false, path, format!("{ip} cannot be an interface address (unspecified, loopback, multicast or link-local)"));
                    continue;
                }
                if let IpAddr::V4(v4) = ip {
                    let host = u32::from(v4) & (u32::MAX >> len.min(31) as u32);
                    let hostmask = if len >= 31 { 0 } else { u32::MAX >> len };
                    if len < 31 && (host == 0 || host == hostmask) {
                        check(false, path, format!("{a} is the subnet's network or broadcast address; pick a host address"));
                        continue;
                    }
                }
                if let Some((_, other)) = seen_addrs.iter().find(|(x, _)| *x == ip) {
                    check(false, path, format!("{ip} is already an address of {other}"));
                    continue;
                }
                seen_addrs.push((ip, d.name.clone()));
                let net = network(ip, len);
                if let Some((_, _, _, other)) = subnets.iter().find(|(n, l, v6, other)| {
                    *v6 == ip.is_ipv6() && other != &d.name && {
                        let shorter = (*l).min(len);
                        network(if *v6 { IpAddr::V6((*n).into()) } else { IpAddr::V4((*n as u32).into()) }, shorter) == network(ip, shorter)
                    }
                }) {
                    check(false, path, format!("subnet {a} overlaps a subnet of {other}"));
                    continue;
                }
                subnets.push((net, len, ip.is_ipv6(), d.name.clone()));
            }
            let min = if has_v6 { 1280 } else { 576 };
            check(
                (min..=9000).contains(&d.mtu),
                mtu_path(d.path.clone()),
                format!("MTU {} is out of range; expected {min}..=9000{}", d.mtu, if has_v6 { " (IPv6 needs at least 1280)" } else { "" }),
            );
        }

        let names: Vec<&str> = defs.iter().map(|d| d.name.as_str()).collect();
        if !self.route.is_empty() && defs.is_empty() {
            check(false, cfg_path!("route"), "routes need at least one port with addresses".into());
        }
        for (i, r) in self.route.iter().enumerate() {
            let (ip, len) = match parse_cidr(&r.prefix) {
                Ok(x) => x,
                Err(m) => {
                    check(false, cfg_path!("route", i, "prefix"), m);
                    continue;
                }
            };
            let net = network(ip, len);
            let exact = match ip {
                IpAddr::V4(a) => u32::from(a) as u128 == net,
                IpAddr::V6(a) => u128::from(a) == net,
            };
            if !exact {
                let fixed: IpAddr = match ip {
                    IpAddr::V4(_) => IpAddr::V4((net as u32).into()),
                    IpAddr::V6(_) => IpAddr::V6(net.into()),
                };
                check(false, cfg_path!("route", i, "prefix"), format!("{:?} has host bits set; did you mean \"{fixed}/{len}\"?", r.prefix));
            }
            let targets = r.via.is_some() as u8 + r.dev.is_some() as u8 + r.blackhole as u8;
            check(targets == 1, cfg_path!("route", i), "expected exactly one of `via`, `dev` or `blackhole = true`".into());
            if let Some(v) = &r.via {
                match v.trim().parse::<IpAddr>() {
                    Ok(g) if g.is_ipv4() != ip.is_ipv4() => {
                        check(false, cfg_path!("route", i, "via"), format!("gateway {g} is of the other address family than {}", r.prefix))
                    }
                    Ok(_) => {}
                    Err(_) => check(false, cfg_path!("route", i, "via"), format!("{v:?} is not an IP address")),
                }
            }
            if let Some(d) = &r.dev {
                check(
                    names.contains(&d.as_str()),
                    cfg_path!("route", i, "dev"),
                    format!("no interface named {d:?}; expected one of: {}", names.join(", ")),
                );
            }
        }
        // Gateways on connected subnets: the same check that builds the tables.
        if errs.is_empty() {
            let ifaces = self.ifaces(&[]);
            let statics = self.static_routes(&ifaces);
            if let Err(e) = Routes::build(ifaces, &statics) {
                let at = cfg_path!("route", e.route, "via");
                errs.push(loc.error(&at, e.message));
            }
        }

        let r = &self.router;
        let mut check = |ok: bool, path: Vec<Seg>, msg: String| {
            if !ok {
                errs.push(loc.error(&path, msg));
            }
        };
        let ranges: [(&str, u32, u32, u32); 6] = [
            ("icmp_rate", r.icmp_rate, 0, 100_000),
            ("icmp_burst", r.icmp_burst, 1, 10_000),
            ("neighbor_reachable_s", r.neighbor_reachable_s, 1, 3600),
            ("neighbor_retrans_ms", r.neighbor_retrans_ms, 10, 10_000),
            ("neighbor_probes", r.neighbor_probes, 1, 10),
            ("neighbor_pending", r.neighbor_pending, 0, 1024),
        ];
        for (field, v, lo, hi) in ranges {
            check((lo..=hi).contains(&v), cfg_path!("router", field), format!("{v} is out of range; expected {lo}..={hi}"));
        }
        errs
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    const ROUTED: &str = r#"
[eal]
worker_lcores = [1]

[[port]]
name = "lan0"
device = "net_null0"
role = "lan"
addresses = ["10.1.0.1/24", "fd01::1/64"]

[[port.vlan]]
id = 100
addresses = ["10.100.0.1/24"]

[[port]]
name = "wan0"
device = "net_null1"
role = "wan"
mtu = 1400
addresses = ["192.0.2.1/30"]

[[route]]
prefix = "0.0.0.0/0"
via = "192.0.2.2"

[[route]]
prefix = "10.66.0.0/16"
blackhole = true
"#;

    fn err(text: &str) -> String {
        Config::parse(Path::new("r.toml"), text).unwrap_err().to_string()
    }

    #[test]
    fn interfaces_and_routes_build() {
        let c = Config::parse(Path::new("r.toml"), ROUTED).unwrap();
        assert!(c.routed());
        let macs = [EthernetAddress([2, 0, 0, 0, 0, 1]), EthernetAddress([2, 0, 0, 0, 0, 2])];
        let ifaces = c.ifaces(&macs);
        let names: Vec<&str> = ifaces.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(names, ["lan0", "lan0.100", "wan0"]);
        assert_eq!(ifaces[1].vlans, vlan::Stack { outer: Some(100), inner: None });
        assert_eq!(ifaces[0].v6.len(), 2, "link-local added");
        assert_eq!(ifaces[2].mtu, 1400);
        let r = c.routes(&macs).unwrap();
        assert!(r.lookup_v4("8.8.8.8".parse::<std::net::Ipv4Addr>().unwrap().into()).is_some());
        assert_eq!(c.router_conf().icmp_rate, 100);
        assert_eq!(c.neighbor_conf().pending_max, 16);
    }

    #[test]
    fn address_errors_name_the_field() {
        let e = err(&ROUTED.replace("\"192.0.2.1/30\"", "\"192.0.2.1\""));
        assert_eq!(e, "r.toml:20:14: port[1].addresses[0]: \"192.0.2.1\": expected ADDRESS/PREFIX-LENGTH like 10.1.0.1/24 or fd00::1/64");
        let e = err(&ROUTED.replace("\"192.0.2.1/30\"", "\"192.0.2.3/30\""));
        assert!(e.ends_with("port[1].addresses[0]: 192.0.2.3/30 is the subnet's network or broadcast address; pick a host address"), "{e}");
        let e = err(&ROUTED.replace("\"10.100.0.1/24\"", "\"10.1.0.1/24\""));
        assert!(e.ends_with("port[0].vlan[0].addresses[0]: 10.1.0.1 is already an address of lan0"), "{e}");
        let e = err(&ROUTED.replace("\"10.100.0.1/24\"", "\"10.1.0.9/16\""));
        assert!(e.ends_with("port[0].vlan[0].addresses[0]: subnet 10.1.0.9/16 overlaps a subnet of lan0"), "{e}");
        let e = err(&ROUTED.replace("mtu = 1400\naddresses = [\"192.0.2.1/30\"]", "mtu = 1200\naddresses = [\"fd02::1/64\"]"));
        assert!(e.ends_with("port[1].mtu: MTU 1200 is out of range; expected 1280..=9000 (IPv6 needs at least 1280)"), "{e}");
    }

    #[test]
    fn route_errors_name_the_field() {
        let e = err(&ROUTED.replace("via = \"192.0.2.2\"", "via = \"192.0.9.2\""));
        assert_eq!(e, "r.toml:24:7: route[0].via: gateway 192.0.9.2 is not on any interface's subnet");
        let e = err(&ROUTED.replace("10.66.0.0/16", "10.66.1.0/16"));
        assert!(e.ends_with("route[1].prefix: \"10.66.1.0/16\" has host bits set; did you mean \"10.66.0.0/16\"?"), "{e}");
        let e = err(&ROUTED.replace("blackhole = true", "blackhole = true\ndev = \"lan0\""));
        assert!(e.ends_with("route[1]: expected exactly one of `via`, `dev` or `blackhole = true`"), "{e}");
        let e = err(&ROUTED.replace("blackhole = true", "dev = \"lan9\""));
        assert!(e.ends_with("route[1].dev: no interface named \"lan9\"; expected one of: lan0, lan0.100, wan0"), "{e}");
    }

    #[test]
    fn a_routed_port_cannot_also_cross_connect() {
        let e = err(&ROUTED.replace("mtu = 1400", "mtu = 1400\nforward = \"lan0\""));
        assert!(e.contains("port[1].forward: port \"wan0\" has addresses or VLANs and so routes"), "{e}");
    }
}
