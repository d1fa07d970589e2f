//! Multi-path SD-WAN: several WAN paths per tunnel peer, the policy that
//! steers each flow to one of them, and the measurements behind it.
//!
//! - [`Steering`] is the snapshot the tunnel stages read: per peer, its
//!   paths and which path each policy rule uses now. The control thread
//!   publishes a new one when a choice changes (a failover).
//! - [`Policy`] is the compiled rule set the classifier matches each flow
//!   against once; the rule rides in the packet's `Meta`.
//! - [`probe`] is the format of the SLA probes that travel inside the
//!   tunnel and that the far end's worker reflects.
//! - [`sla`] (measurement, health, selection) and [`bfd`] are sans-IO
//!   state machines the control thread drives.

pub mod bfd;
pub mod sla;

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;

use crate::vocab::{AppId, Category, Class};

/// A choice that sends the rule's packets to the peer's own endpoint (no
/// path configured or none chosen yet).
pub const NO_PATH: u8 = 0xff;
/// A choice that drops the rule's packets (`fallback = "drop"` and no
/// path meets the SLA).
pub const DROP: u8 = 0xfe;
/// Most paths one peer may have.
pub const MAX_PATHS: usize = 16;
/// Most policy rules (the rule index rides in 8 bits of `Meta`; 0 is the
/// default rule).
pub const MAX_RULES: usize = 254;

/// What the workers count per path (one cache line, relaxed atomics).
#[repr(align(64))]
#[derive(Default)]
pub struct PathLive {
    pub tx_packets: AtomicU64,
    pub tx_bytes: AtomicU64,
    pub rx_packets: AtomicU64,
    pub rx_bytes: AtomicU64,
    /// Worker clock at the last authenticated packet received on the path.
    pub last_rx: AtomicU64,
}

impl PathLive {
    /// Adds `packets` and `bytes` one way; `now` (the worker clock) marks
    /// the last receive. The workers call it once per burst and path.
    #[inline]
    pub fn add(&self, rx: bool, packets: u64, bytes: u64, now: u64) {
        let (p, b) = if rx { (&self.rx_packets, &self.rx_bytes) } else { (&self.tx_packets, &self.tx_bytes) };
        p.fetch_add(packets, Relaxed);
        b.fetch_add(bytes, Relaxed);
        if rx {
            self.last_rx.store(now, Relaxed);
        }
    }
}

/// One path as the workers use it.
#[derive(Clone)]
pub struct PathOut {
    /// The peer's address on this path.
    pub endpoint: SocketAddr,
    pub live: Arc<PathLive>,
}

/// One peer's paths and the current choice per rule.
#[derive(Clone, Default)]
pub struct PeerPaths {
    pub paths: Vec<PathOut>,
    /// By rule (0: default rule, `i + 1`: rule `i`): a path index, [`NO_PATH`] or [`DROP`].
    pub choice: Vec<u8>,
    /// Outer source ports its sessions spread over (0 or 1: the listen
    /// port alone; more only once the peer is known to be Patronus; see
    /// [`crate::rss::source_port`]).
    pub source_ports: u16,
}

impl PeerPaths {
    /// The path (index and path) a packet of `rule` takes: `Ok(None)` for
    /// the peer's own endpoint, `Err(())` to drop it.
    #[inline(always)]
    pub fn pick(&self, rule: usize) -> Result<Option<(usize, &PathOut)>, ()> {
        match self.choice.get(rule).or_else(|| self.choice.first()).copied().unwrap_or(NO_PATH) {
            DROP => Err(()),
            i => Ok(self.paths.get(i as usize).map(|p| (i as usize, p))),
        }
    }

    /// The index of the path whose endpoint address is `src` (how the
    /// receiver tells paths apart without moving the peer's endpoint).
    #[inline(always)]
    pub fn by_source(&self, src: IpAddr) -> Option<usize> {
        self.paths.iter().position(|p| p.endpoint.ip() == src)
    }
}

/// The snapshot the tunnel stages read, by tunnel peer index.
#[derive(Clone, Default)]
pub struct Steering {
    pub peers: Vec<PeerPaths>,
}

impl Steering {
    #[inline(always)]
    pub fn peer(&self, i: usize) -> Option<&PeerPaths> {
        self.peers.get(i).filter(|p| !p.paths.is_empty())
    }
}

/// An inclusive port range.
pub type PortRange = (u16, u16);

/// One policy rule's match; an empty list matches anything.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Match {
    pub apps: Vec<AppId>,
    pub categories: Vec<Category>,
    pub sources: Vec<(IpAddr, u8)>,
    pub destinations: Vec<(IpAddr, u8)>,
    /// Either port of the packet.
    pub ports: Vec<PortRange>,
    pub protocols: Vec<u8>,
    pub dscp: Vec<u8>,
}

/// What the classifier knows about a packet when it matches the policy.
pub struct Facts<'a> {
    /// The flow's application and category, once decided.
    pub app: Option<(AppId, Category)>,
    pub src: &'a [u8; 16],
    pub dst: &'a [u8; 16],
    pub is_v4: bool,
    pub sport: u16,
    pub dport: u16,
    pub proto: u8,
    pub dscp: u8,
}

fn in_prefix(addr: &[u8; 16], v4: bool, (p, len): (IpAddr, u8)) -> bool {
    match p {
        IpAddr::V4(p) if v4 => {
            let a = u32::from_be_bytes([addr[12], addr[13], addr[14], addr[15]]);
            len == 0 || (a ^ u32::from(p)) >> (32 - len as u32) == 0
        }
        IpAddr::V6(p) if !v4 => len == 0 || (u128::from_be_bytes(*addr) ^ u128::from(p)) >> (128 - len as u32) == 0,
        _ => false,
    }
}

impl Match {
    /// Whether the rule needs the flow's application to decide.
    pub fn needs_app(&self) -> bool {
        !self.apps.is_empty() || !self.categories.is_empty()
    }

    pub fn matches(&self, f: &Facts) -> bool {
        let app_ok = match f.app {
            Some((app, cat)) => {
                (self.apps.is_empty() || self.apps.contains(&app)) && (self.categories.is_empty() || self.categories.contains(&cat))
            }
            None => !self.needs_app(),
        };
        app_ok
            && (self.sources.is_empty() || self.sources.iter().any(|&p| in_prefix(f.src, f.is_v4, p)))
            && (self.destinations.is_empty() || self.destinations.iter().any(|&p| in_prefix(f.dst, f.is_v4, p)))
            && (self.ports.is_empty() || self.ports.iter().any(|&(lo, hi)| (lo..=hi).contains(&f.sport) || (lo..=hi).contains(&f.dport)))
            && (self.protocols.is_empty() || self.protocols.contains(&f.proto))
            && (self.dscp.is_empty() || self.dscp.contains(&f.dscp))
    }
}

/// The compiled policy: rules by priority (first match wins), each with
/// the QoS class it sets, if any.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Policy {
    pub rules: Vec<(Match, Option<Class>)>,
    /// Changes on every reload, so flows match the new rules.
    pub generation: u32,
}

impl Policy {
    /// The rule for a packet: 0 for none (the default rule), `i + 1` for rule `i`.
    pub fn lookup(&self, f: &Facts) -> u8 {
        self.rules.iter().position(|(m, _)| m.matches(f)).map_or(0, |i| (i + 1) as u8)
    }

    /// The rule an application's flows take when nothing but the
    /// application decides: the first rule whose only conditions are
    /// applications and categories (or none) that it meets; 0 for the
    /// default. A rule before it that also names addresses, ports,
    /// protocols or DSCP can still take some of its flows.
    pub fn rule_for_app(&self, app: AppId, category: Category) -> u8 {
        self.rules
            .iter()
            .position(|(m, _)| {
                m.sources.is_empty()
                    && m.destinations.is_empty()
                    && m.ports.is_empty()
                    && m.protocols.is_empty()
                    && m.dscp.is_empty()
                    && (m.apps.is_empty() || m.apps.contains(&app))
                    && (m.categories.is_empty() || m.categories.contains(&category))
            })
            .map_or(0, |i| (i + 1) as u8)
    }

    pub fn class(&self, rule: u8) -> Option<Class> {
        (rule as usize).checked_sub(1).and_then(|i| self.rules.get(i)).and_then(|r| r.1)
    }
}

/// SLA probes: a WireGuard transport message whose plaintext starts with
/// a type byte whose high nibble is 1, never an IP version, so no IP
/// packet is mistaken for one. The sender's control thread stamps and
/// sends a request on one path; the far end's worker turns it into a reply
/// in place and sends it back the way it came; our worker stamps the
/// reply's arrival and hands it to the control thread.
///
/// A peer that is not Patronus (plain WireGuard) would drop such a
/// plaintext as an invalid IP packet, and log it. So until a peer has
/// answered in this format, the request travels *wrapped*: as the data of
/// an ICMPv4 echo request ([`ICMP_IDENT`]) to an address behind the peer.
/// A Patronus far end answers a wrapped request with a plain reply (which
/// tells the sender it may send plain ones); any other host answers with
/// an echo reply carrying the request back, which our worker unwraps.
pub mod probe {
    use crate::wire::{icmpv4, ip_proto, ipv4, Ipv4Address};

    pub const REQUEST: u8 = 0x10;
    pub const REPLY: u8 = 0x11;
    /// Plaintext length (a multiple of WireGuard's 16-byte padding).
    pub const LEN: usize = 32;

    /// Byte offsets.
    pub mod field {
        pub const TYPE: usize = 0;
        /// Sender's path index.
        pub const PATH: usize = 1;
        /// Peer index, written by the worker that receives the reply.
        pub const PEER: usize = 2;
        pub const SEQ: usize = 4;
        /// Sender's clock when the request left.
        pub const SENT: usize = 8;
        /// Sender's worker clock when the reply arrived.
        pub const RECEIVED: usize = 16;
        /// 1 when the reply came back as an ICMP echo reply (written by
        /// the worker that unwraps it).
        pub const VIA_ICMP: usize = 24;
    }

    /// The ICMP echo identifier of wrapped requests.
    pub const ICMP_IDENT: u16 = 0x5054;
    /// Bytes of a wrapped request: IPv4 header, ICMP echo header, the probe.
    pub const WRAPPED_LEN: usize = ipv4::HEADER_LEN + icmpv4::HEADER_LEN + LEN;

    /// `req` as an ICMPv4 echo request from `src` to `dst`.
    pub fn wrap(req: &[u8; LEN], src: Ipv4Address, dst: Ipv4Address) -> [u8; WRAPPED_LEN] {
        let mut b = [0u8; WRAPPED_LEN];
        let (ip, icmp) = b.split_at_mut(ipv4::HEADER_LEN);
        let mut e = icmpv4::Packet::new_unchecked(&mut *icmp);
        e.set_msg_type(icmpv4::msg::ECHO_REQUEST);
        // The echo sequence number: the low 16 bits of the probe's (little-endian) one.
        e.set_rest(ICMP_IDENT, u16::from_le_bytes([req[field::SEQ], req[field::SEQ + 1]]));
        e.data_mut().copy_from_slice(req);
        e.fill_checksum();
        let mut h = ipv4::Packet::new_unchecked(&mut *ip);
        h.set_version_ihl(ipv4::HEADER_LEN);
        h.set_total_len(WRAPPED_LEN as u16);
        h.set_ttl(64);
        h.set_protocol(ip_proto::ICMP);
        h.set_src_addr(src);
        h.set_dst_addr(dst);
        h.fill_checksum();
        b
    }

    /// A wrapped probe in the IP packet `ip`: the ICMP type (echo request
    /// or reply) and the offset of the probe in `ip`. Only the identifier
    /// and the probe's type are checked: the tunnel authenticated it.
    pub fn unwrap(ip: &[u8]) -> Option<(u8, usize)> {
        let h = ipv4::Packet::new_checked(ip).ok()?;
        if h.version() != 4 || h.protocol() != ip_proto::ICMP || h.is_fragment() {
            return None;
        }
        let at = h.header_len();
        let e = icmpv4::Packet::new_checked(ip.get(at..h.total_len() as usize)?).ok()?;
        let t = e.msg_type();
        let ours = e.echo_ident() == ICMP_IDENT && e.data().len() >= LEN && e.data()[field::TYPE] == REQUEST;
        (ours && (t == icmpv4::msg::ECHO_REQUEST || t == icmpv4::msg::ECHO_REPLY)).then_some((t, at + icmpv4::HEADER_LEN))
    }

    /// Makes a wrapped probe in the IP packet `ip` plain, in place: the
    /// probe moves to `ip`'s start and, when it came back in an echo
    /// reply, becomes a reply marked [`field::VIA_ICMP`]. Whether `ip`
    /// held one; anything else is left as it was.
    #[inline]
    pub fn unwrap_in_place(ip: &mut [u8]) -> bool {
        // The cheap test first: every IPv4 packet out of a tunnel comes here.
        if ip.len() <= ipv4::HEADER_LEN || ip[0] >> 4 != 4 || ip[9] != ip_proto::ICMP {
            return false;
        }
        let Some((icmp_type, at)) = unwrap(ip) else { return false };
        ip.copy_within(at..at + LEN, 0);
        if icmp_type == icmpv4::msg::ECHO_REPLY {
            ip[field::TYPE] = REPLY;
            ip[field::VIA_ICMP] = 1;
        }
        true
    }

    /// A request's plaintext.
    pub fn request(path: u8, seq: u32, sent: u64) -> [u8; LEN] {
        let mut b = [0u8; LEN];
        b[field::TYPE] = REQUEST;
        b[field::PATH] = path;
        b[field::SEQ..field::SEQ + 4].copy_from_slice(&seq.to_le_bytes());
        b[field::SENT..field::SENT + 8].copy_from_slice(&sent.to_le_bytes());
        b
    }

    /// A reply as the control thread reads it.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub struct Reply {
        pub path: u8,
        pub peer: u16,
        pub seq: u32,
        pub sent: u64,
        pub received: u64,
        /// It came back as an ICMP echo reply: the peer is not Patronus.
        pub via_icmp: bool,
    }

    pub fn parse_reply(b: &[u8]) -> Option<Reply> {
        if b.len() < LEN || b[field::TYPE] != REPLY {
            return None;
        }
        let u64_at = |i: usize| u64::from_le_bytes(b[i..i + 8].try_into().expect("8 bytes"));
        Some(Reply {
            path: b[field::PATH],
            peer: u16::from_le_bytes([b[field::PEER], b[field::PEER + 1]]),
            seq: u32::from_le_bytes(b[field::SEQ..field::SEQ + 4].try_into().expect("4 bytes")),
            sent: u64_at(field::SENT),
            received: u64_at(field::RECEIVED),
            via_icmp: b[field::VIA_ICMP] == 1,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v4(a: [u8; 4]) -> [u8; 16] {
        let mut b = [0u8; 16];
        b[10] = 0xff;
        b[11] = 0xff;
        b[12..].copy_from_slice(&a);
        b
    }

    #[test]
    fn first_matching_rule_wins_and_app_rules_wait_for_the_decision() {
        let voip = Match { categories: vec![Category::VoIP], ..Match::default() };
        let bulk = Match { ports: vec![(5201, 5201)], ..Match::default() };
        let lan = Match { sources: vec![("10.1.0.0".parse().unwrap(), 16)], dscp: vec![46], ..Match::default() };
        let p = Policy { rules: vec![(voip, Some(Class::RealTime)), (bulk, Some(Class::Bulk)), (lan, None)], generation: 1 };
        let (s, d) = (v4([10, 1, 0, 2]), v4([10, 2, 0, 2]));
        let f = |app, sport, dport, dscp| Facts { app, src: &s, dst: &d, is_v4: true, sport, dport, proto: 17, dscp };
        assert_eq!(p.lookup(&f(None, 4000, 5004, 0)), 0);
        assert_eq!(p.lookup(&f(Some((7, Category::VoIP)), 4000, 5004, 0)), 1);
        assert_eq!(p.lookup(&f(None, 40000, 5201, 0)), 2);
        assert_eq!(p.lookup(&f(Some((7, Category::VoIP)), 40000, 5201, 0)), 1);
        assert_eq!(p.lookup(&f(None, 1, 2, 46)), 3);
        assert_eq!(p.class(1), Some(Class::RealTime));
        assert_eq!(p.class(3), None);
        assert_eq!(p.class(0), None);
        let other = v4([10, 3, 0, 2]);
        assert_eq!(p.lookup(&Facts { src: &other, ..f(None, 1, 2, 46) }), 0);
        // By application alone: rules with other conditions are passed over.
        assert_eq!(p.rule_for_app(7, Category::VoIP), 1);
        assert_eq!(p.rule_for_app(8, Category::Web), 0);
        let by_app = Match { apps: vec![8], ..Match::default() };
        let all = Match::default();
        let p = Policy {
            rules: vec![(Match { apps: vec![8], dscp: vec![46], ..Match::default() }, None), (by_app, None), (all, None)],
            generation: 1,
        };
        assert_eq!(p.rule_for_app(8, Category::Web), 2);
        assert_eq!(p.rule_for_app(9, Category::Web), 3);
    }

    #[test]
    fn choices_pick_paths_drop_or_the_endpoint() {
        let live = Arc::new(PathLive::default());
        let path = |a: &str| PathOut { endpoint: a.parse().unwrap(), live: live.clone() };
        let pp =
            PeerPaths { paths: vec![path("10.0.1.2:51820"), path("10.0.2.2:51820")], choice: vec![1, 0, DROP, NO_PATH], source_ports: 1 };
        assert_eq!(pp.pick(0).unwrap().unwrap().1.endpoint.port(), 51820);
        assert_eq!(pp.pick(0).unwrap().unwrap().0, 1);
        assert_eq!(pp.pick(1).unwrap().unwrap().1.endpoint.ip(), "10.0.1.2".parse::<IpAddr>().unwrap());
        assert!(pp.pick(2).is_err());
        assert!(pp.pick(3).unwrap().is_none());
        // A rule past the table (a reload in flight) takes the default.
        assert_eq!(pp.pick(9).unwrap().unwrap().1.endpoint.ip(), "10.0.2.2".parse::<IpAddr>().unwrap());
        assert_eq!(pp.by_source("10.0.2.2".parse().unwrap()), Some(1));
        assert!(pp.by_source("10.0.3.2".parse().unwrap()).is_none());
    }

    #[test]
    fn probe_round_trip() {
        let mut b = probe::request(3, 77, 123_456);
        b[probe::field::TYPE] = probe::REPLY;
        b[probe::field::PEER..probe::field::PEER + 2].copy_from_slice(&5u16.to_le_bytes());
        b[probe::field::RECEIVED..probe::field::RECEIVED + 8].copy_from_slice(&999u64.to_le_bytes());
        assert_eq!(probe::parse_reply(&b), Some(probe::Reply { path: 3, peer: 5, seq: 77, sent: 123_456, received: 999, via_icmp: false }));
        assert_eq!(probe::parse_reply(&b[..31]), None);
        assert_eq!(probe::parse_reply(&probe::request(0, 0, 0)), None);
    }

    #[test]
    fn a_wrapped_probe_is_an_echo_request_with_the_probe_as_its_data() {
        use crate::wire::{icmpv4, ipv4, Ipv4Address};
        let req = probe::request(2, 0x0001_0007, 42);
        let w = probe::wrap(&req, Ipv4Address::new(10, 1, 0, 1), Ipv4Address::new(10, 99, 0, 2));
        // Golden bytes (checksums computed independently, with Python): IPv4, then the echo header.
        assert_eq!(
            w[..28],
            [
                0x45, 0, 0, 60, 0, 0, 0, 0, 64, 1, 0x66, 0x5b, 10, 1, 0, 1, 10, 99, 0, 2, //
                8, 0, 0x65, 0xa2, 0x50, 0x54, 0, 7
            ]
        );
        let ip = ipv4::Packet::new_checked(&w[..]).unwrap();
        assert!(ip.verify_checksum());
        assert!(icmpv4::Packet::new_checked(&w[20..]).unwrap().verify_checksum());
        assert_eq!(&w[28..], &req);
        assert_eq!(probe::unwrap(&w), Some((icmpv4::msg::ECHO_REQUEST, 28)));
        // The echo reply a host sends back.
        let mut r = w;
        r[20] = icmpv4::msg::ECHO_REPLY;
        assert_eq!(probe::unwrap(&r), Some((icmpv4::msg::ECHO_REPLY, 28)));
        // Someone else's ping, a truncated one, and a plain probe are not.
        let mut other = w;
        other[24] = 0x12;
        assert_eq!(probe::unwrap(&other), None);
        assert_eq!(probe::unwrap(&w[..50]), None);
        assert_eq!(probe::unwrap(&req), None);
        // Made plain in place: a request stays one, an echo reply becomes a marked reply.
        let mut ip = w;
        assert!(probe::unwrap_in_place(&mut ip));
        assert_eq!(&ip[..probe::LEN], &req);
        let mut ip = r;
        assert!(probe::unwrap_in_place(&mut ip));
        assert_eq!((ip[probe::field::TYPE], ip[probe::field::VIA_ICMP]), (probe::REPLY, 1));
        assert_eq!(&ip[4..16], &req[4..16]);
        let (mut plain, mut short) = (req, [0x45u8; 20]);
        assert!(!probe::unwrap_in_place(&mut plain) && plain == req && !probe::unwrap_in_place(&mut short));
    }
}
