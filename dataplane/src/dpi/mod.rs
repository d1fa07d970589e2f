//! Application classification.
//!
//! The control thread compiles a signature set ([`SignatureSet`]) into an
//! immutable [`Dpi`]; workers only read it. A flow is inspected on its
//! first packets ([`Dpi::max_packets`] per direction) in three steps:
//!
//! 1. **protocol extractors** ([`extract`]) recognise the protocol from the
//!    payload and read names (TLS SNI/ALPN, HTTP Host/User-Agent/
//!    Content-Type, DNS qname, SSH banner, ...);
//! 2. **names to applications**: a host or SNI is matched against the
//!    signatures' domain suffixes, a DNS answer teaches [`DnsCache`] which
//!    address serves which name so a later flow to it is known at once;
//! 3. **payload patterns** (Hyperscan, with offsets and anchors) for applications
//!    that have no name on the wire.
//!
//! Ports are only hints: they name an application when nothing else did,
//! and the result says so ([`Basis::Port`]).

pub mod dns;
pub mod extract;
pub mod hs;
pub mod http;
pub mod quic;
pub mod tls;

use std::collections::HashMap;

use std::cell::UnsafeCell;

use crate::router::lpm::Lpm;
use crate::vocab::{AppId, Category, Dir, FlowKey, UNKNOWN};

pub use dns::DnsCache;
pub use extract::{Local, Proto};

mod compile;

#[allow(unused_imports)]
pub use compile::*;

/// One application as the signatures define it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct App {
    pub name: String,
    pub category: Category,
    /// QoS class of its traffic unless a policy says otherwise.
    pub class: crate::vocab::Class,
}

/// A payload pattern of an application.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pattern {
    pub bytes: Vec<u8>,
    /// Must start exactly here in the payload; `None`: anywhere within
    /// `depth`.
    pub offset: Option<u16>,
    /// How far into the payload an unanchored pattern may start.
    pub depth: u16,
    /// 6, 17, or 0 for either.
    pub proto: u8,
    /// Only within a flow an extractor recognised as this protocol (e.g. a
    /// vendor's STUN attribute).
    pub within: Option<Proto>,
}

/// The signature set as loaded (before compiling).
#[derive(Clone, Debug, Default)]
pub struct SignatureSet {
    pub apps: Vec<AppSig>,
}

#[derive(Clone, Debug)]
pub struct AppSig {
    pub app: App,
    /// Domain suffixes ("youtube.com" matches "www.youtube.com").
    pub hosts: Vec<String>,
    pub patterns: Vec<Pattern>,
    /// (proto, port) hints; with `over`, the ports on which that protocol
    /// means this application.
    pub ports: Vec<(u8, u16)>,
    /// A protocol that, on `ports`, is this application (TLS on 993 is
    /// IMAPS).
    pub over: Option<Proto>,
    /// The protocol an extractor reports that means this application (e.g.
    /// "ssh"), if any.
    pub protocol: Option<Proto>,
    /// Address prefixes the application's servers use (as its operator
    /// publishes them): (address, prefix length).
    pub ips: Vec<(std::net::IpAddr, u8)>,
}

/// How a flow's application was decided.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Basis {
    #[default]
    None,
    /// A name on the wire (SNI, Host, qname) matched a domain suffix.
    Host,
    /// The destination was learnt from a DNS answer.
    DnsCache,
    /// A protocol extractor recognised the protocol.
    Protocol,
    /// A payload pattern.
    Pattern,
    /// The server's address is in the application's published prefixes.
    Ip,
    /// An SDP body announced this flow.
    Sdp,
    /// Only the port: a hint, not an identification.
    Port,
}

/// Where a flow's classification stands.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Status {
    #[default]
    Inspecting,
    Decided,
    /// Nothing identified it within the packet budget: Unknown for good.
    GaveUp,
}

/// A host name held inline (no allocation per flow).
#[derive(Clone, Copy)]
pub struct Name {
    len: u8,
    b: [u8; 95],
}

impl Default for Name {
    fn default() -> Self {
        Name { len: 0, b: [0; 95] }
    }
}

impl PartialEq for Name {
    fn eq(&self, other: &Name) -> bool {
        self.as_str() == other.as_str()
    }
}

impl Eq for Name {}

impl std::fmt::Debug for Name {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.as_str().fmt(f)
    }
}

impl Name {
    /// Lower-cased, truncated to 95 bytes; only printable ASCII is kept.
    pub fn new(s: &[u8]) -> Name {
        let mut n = Name::default();
        for &c in s.iter().take(n.b.len()) {
            if c.is_ascii_graphic() {
                n.b[n.len as usize] = c.to_ascii_lowercase();
                n.len += 1;
            }
        }
        n
    }

    pub fn as_str(&self) -> &str {
        // Only ASCII graphic bytes are ever stored.
        std::str::from_utf8(&self.b[..self.len as usize]).unwrap_or("")
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

/// A flow's classification state and result.
#[derive(Clone, Copy, Debug, Default)]
pub struct FlowDpi {
    pub status: Status,
    pub app: AppId,
    pub proto: Proto,
    pub basis: Basis,
    pub category: Category,
    pub class: crate::vocab::Class,
    pub host: Name,
    /// Payload-carrying packets inspected per direction.
    pub inspected: [u8; 2],
    /// Packets of the flow (both directions) when it was decided.
    pub decided_after: u16,
    /// Extractor state carried between packets.
    pub ex: extract::State,
    /// Candidates met along the way, used when the flow is decided: the
    /// first payload pattern that matched, the server's address prefix.
    pub pattern_app: AppId,
    pub ip_app: AppId,
    /// After the decision, packets still to watch for flows this one
    /// announces (FTP data connections, SDP media).
    pub watch: u8,
}

impl FlowDpi {
    /// Does this flow still want its payloads shown to [`Dpi::inspect`]?
    #[inline(always)]
    pub fn wants(&self) -> bool {
        self.status == Status::Inspecting || self.watch > 0
    }
}

// SAFETY: everything but `scratch` is immutable after compile; scratch
// slot i is touched only by the worker whose Local says i (pattern_in).
unsafe impl Sync for Dpi {}

/// Application ids by name, stable for the life of a process (id 0 is
/// Unknown).
#[derive(Clone, Debug)]
pub struct AppIds {
    names: Vec<String>,
    by_name: HashMap<String, AppId>,
}

impl Default for AppIds {
    fn default() -> Self {
        AppIds { names: vec!["Unknown".into()], by_name: HashMap::from([("unknown".into(), UNKNOWN)]) }
    }
}

impl AppIds {
    /// The id of `name` (case-insensitive), assigned if new.
    pub fn id_of(&mut self, name: &str) -> Option<AppId> {
        let key = name.to_ascii_lowercase();
        if let Some(&id) = self.by_name.get(&key) {
            return Some(id);
        }
        let id = AppId::try_from(self.names.len()).ok()?;
        self.names.push(name.to_owned());
        self.by_name.insert(key, id);
        Some(id)
    }
}

/// What DPI reads of the flow it inspects, beside its own state
/// ([`FlowDpi`]): the flow table owns both.
#[derive(Clone, Copy, Debug)]
pub struct FlowView<'a> {
    pub key: &'a FlowKey,
    /// The direction of the flow's first packet.
    pub orig: Dir,
    /// Packets seen, both directions.
    pub packets: u64,
}

/// The compiled, immutable classifier.
pub struct Dpi {
    pub apps: Vec<App>,
    by_name: HashMap<String, AppId>,
    hosts: HashMap<String, AppId>,
    patterns: Option<hs::Database>,
    /// One Hyperscan scratch per worker (worker `i` uses only slot `i`),
    /// allocated by the control thread with the database.
    scratch: Box<[UnsafeCell<hs::Scratch>]>,
    /// How far into a payload any pattern can end where it is allowed:
    /// the scan stops there.
    pattern_reach: usize,
    pattern_of: Vec<(AppId, Pattern)>,
    ports: HashMap<(u8, u16), AppId>,
    by_proto: HashMap<Proto, AppId>,
    /// A protocol on a port naming a service (TLS on 993: IMAPS).
    proto_port: HashMap<(Proto, u16), AppId>,
    ips4: Option<Lpm<u32>>,
    ips6: Option<Lpm<u128>>,
    /// Packets per direction inspected before giving up.
    pub max_packets: u8,
}

/// Why a signature set does not compile.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SigError {
    /// Index of the application in the set.
    pub app: usize,
    pub field: &'static str,
    pub msg: String,
}

impl Dpi {
    pub fn app(&self, id: AppId) -> &App {
        &self.apps[id as usize]
    }

    pub fn app_id(&self, name: &str) -> Option<AppId> {
        self.by_name.get(&name.to_ascii_lowercase()).copied()
    }

    /// The application whose domain suffix matches `host` (longest first).
    pub fn app_of_host(&self, host: &str) -> Option<AppId> {
        let mut h = host.trim_end_matches('.');
        loop {
            if let Some(&id) = self.hosts.get(h) {
                return Some(id);
            }
            h = &h[h.find('.')? + 1..];
        }
    }

    /// The application whose published prefixes hold `addr`.
    pub fn app_of_addr(&self, addr: std::net::IpAddr) -> Option<AppId> {
        let id = match addr {
            std::net::IpAddr::V4(a) => self.ips4.as_ref()?.lookup(u32::from(a)),
            std::net::IpAddr::V6(a) => match a.to_ipv4_mapped() {
                Some(a4) => self.ips4.as_ref()?.lookup(u32::from(a4)),
                None => self.ips6.as_ref()?.lookup(u128::from(a)),
            },
        };
        id.map(|x| x as AppId)
    }

    /// Allocates a pattern-matching scratch space for each of `n` workers
    /// (control thread, before publishing); worker `i` then passes `i` in
    /// its [`Local`].
    pub fn set_workers(&mut self, n: usize) -> Result<(), String> {
        if let Some(db) = &self.patterns {
            self.scratch = (0..n.max(1)).map(|_| db.scratch().map(UnsafeCell::new)).collect::<Result<_, _>>()?;
        }
        Ok(())
    }

    /// The payload patterns, in signature order, with their applications.
    pub fn patterns(&self) -> &[(AppId, Pattern)] {
        &self.pattern_of
    }

    /// The first payload pattern placed where it must be.
    pub fn pattern_in(&self, payload: &[u8], proto: u8, within: Proto, worker: usize) -> Option<AppId> {
        let db = self.patterns.as_ref()?;
        let slot = self.scratch.get(worker)?;
        // SAFETY: slot `worker` belongs to the one thread whose Local
        // carries that index (set_workers, Classifier), so this is the
        // only reference to it.
        let scratch = unsafe { &mut *slot.get() };
        let payload = &payload[..payload.len().min(self.pattern_reach)];
        let mut found = None;
        db.scan(payload, scratch, |i, end| {
            let (app, p) = &self.pattern_of[i];
            let at = end - p.bytes.len(); // literals: start = end - length
            let placed = match p.offset {
                Some(o) => at == o as usize,
                None => at <= p.depth as usize,
            };
            if placed && (p.proto == 0 || p.proto == proto) && p.within.is_none_or(|w| w == within) {
                found = Some(*app);
                return true;
            }
            false
        });
        found
    }

    /// Inspects one packet of a flow (`st` its classification state) in
    /// direction `d` (0: as the flow's first packet went). Call only while
    /// `st.wants()`.
    ///
    /// Evidence ranks: a name on the wire (SNI, Host, qname, or one a DNS
    /// answer taught) beats a payload pattern, which beats the server's
    /// address prefix, which beats the bare protocol; a port is a hint only.
    pub fn inspect(&self, st: &mut FlowDpi, flow: FlowView<'_>, d: usize, payload: &[u8], local: &mut Local, now: u64) {
        let responder = match flow.orig {
            Dir::Lo => Dir::Hi,
            Dir::Hi => Dir::Lo,
        };
        if st.status != Status::Inspecting {
            if st.watch > 0 && !payload.is_empty() && st.basis == Basis::DnsCache {
                // Decided from a DNS answer: a name the flow itself carries
                // (SNI, Host) is better evidence when it names another app.
                st.watch -= 1;
                let total = flow.packets.min(u16::MAX as u64) as u16;
                let seen = extract::run(&mut st.ex, payload, flow.key.proto, (flow.key.lo_port, flow.key.hi_port), local, now);
                if let Some(p) = seen.proto {
                    st.proto = p;
                }
                if let Some(host) = seen.host {
                    if let Some(app) = self.app_of_host(host.as_str()) {
                        st.host = host;
                        self.decide(st, app, Basis::Host, total);
                    }
                    st.watch = 0;
                }
                return;
            }
            if st.watch > 0 && !payload.is_empty() {
                st.watch -= 1;
                let sender = if d == 0 { flow.orig } else { responder };
                self.watch(st.proto, payload, flow.key.end(sender).0, local, now);
            }
            return;
        }
        let total = flow.packets.min(u16::MAX as u64) as u16;
        // First packet: an address a DNS answer (or SDP, or FTP) taught us,
        // or one in an application's published prefixes.
        if flow.packets == 1 {
            let (server, port) = flow.key.end(responder);
            if let Some(hit) = local.dns.lookup(server, port, now) {
                match hit {
                    dns::Learned::Name(name) => {
                        if let Some(app) = self.app_of_host(name.as_str()) {
                            st.host = name;
                            self.decide(st, app, Basis::DnsCache, total);
                            st.watch = self.max_packets;
                            return;
                        }
                    }
                    dns::Learned::App(app) => return self.decide(st, app, Basis::Sdp, total),
                }
            }
            st.ip_app = self.app_of_addr(server).unwrap_or(UNKNOWN);
        }
        // ICMP and IGMP are what they are, whoever the peer.
        if let Some(p) = extract::ip_proto(flow.key.proto) {
            st.proto = p;
            st.ip_app = UNKNOWN;
            return self.conclude(st, flow.key.proto, (flow.key.lo_port, flow.key.hi_port), total);
        }
        if payload.is_empty() {
            return;
        }
        st.inspected[d] = st.inspected[d].saturating_add(1);
        let proto = flow.key.proto;
        let ports = (flow.key.lo_port, flow.key.hi_port);
        let seen = extract::run(&mut st.ex, payload, proto, ports, local, now);
        if let Some(p) = seen.proto {
            st.proto = p;
        }
        if let Some(host) = seen.host {
            st.host = host;
        }
        if seen.download {
            st.category = Category::FileTransfer;
        }
        if st.pattern_app == UNKNOWN {
            st.pattern_app = self.pattern_in(payload, proto, st.proto, local.worker).unwrap_or(UNKNOWN);
        }
        if seen.watch {
            st.watch = WATCH_PACKETS;
            let sender = if d == 0 { flow.orig } else { responder };
            self.watch(st.proto, payload, flow.key.end(sender).0, local, now);
        }
        let host_app = (!st.host.is_empty()).then(|| self.app_of_host(st.host.as_str())).flatten();
        if seen.complete || host_app.is_some() && seen.host.is_some() || st.proto == Proto::Unknown && st.pattern_app != UNKNOWN {
            return self.conclude(st, proto, ports, total);
        }
        if st.inspected[0] >= self.max_packets || st.inspected[1] >= self.max_packets {
            self.conclude(st, proto, ports, total);
        }
    }

    /// Reads what a watched flow announces (FTP data connections, SDP
    /// media) into the cache, so those flows are known on their first
    /// packet.
    fn watch(&self, proto: Proto, payload: &[u8], sender: std::net::IpAddr, local: &mut Local, now: u64) {
        if proto == Proto::Dns {
            local.dns.learn(payload, now);
            return;
        }
        for a in extract::announcements(proto, payload, sender).into_iter().flatten() {
            if let Some(&app) = self.by_proto.get(&a.proto) {
                local.dns.announce(a.addr, a.port, app, now);
            }
        }
    }

    /// Ends inspection of a flow that is still undecided (its budget is
    /// spent, or it ended).
    pub fn finish(&self, st: &mut FlowDpi, flow: FlowView<'_>) {
        let total = flow.packets.min(u16::MAX as u64) as u16;
        let (proto, ports) = (flow.key.proto, (flow.key.lo_port, flow.key.hi_port));
        if st.status == Status::Inspecting {
            self.conclude(st, proto, ports, total);
        }
    }

    /// Decides on the best evidence gathered: name, pattern, address
    /// prefix, protocol (on its service port, else alone), port hint; else
    /// Unknown for good.
    fn conclude(&self, st: &mut FlowDpi, proto: u8, ports: (u16, u16), total: u16) {
        if let Some(app) = (!st.host.is_empty()).then(|| self.app_of_host(st.host.as_str())).flatten() {
            return self.decide(st, app, Basis::Host, total);
        }
        if st.pattern_app != UNKNOWN {
            return self.decide(st, st.pattern_app, Basis::Pattern, total);
        }
        if st.ip_app != UNKNOWN {
            return self.decide(st, st.ip_app, Basis::Ip, total);
        }
        let service = self.proto_port.get(&(st.proto, ports.0)).or_else(|| self.proto_port.get(&(st.proto, ports.1)));
        if let Some(&app) = service.or_else(|| self.by_proto.get(&st.proto)) {
            return self.decide(st, app, Basis::Protocol, total);
        }
        let hint = self.ports.get(&(proto, ports.0.min(ports.1))).or_else(|| self.ports.get(&(proto, ports.0.max(ports.1))));
        match hint {
            Some(&app) => self.decide(st, app, Basis::Port, total),
            None => {
                st.status = Status::GaveUp;
                st.app = UNKNOWN;
                st.decided_after = total;
            }
        }
    }

    fn decide(&self, st: &mut FlowDpi, app: AppId, basis: Basis, total: u16) {
        let a = &self.apps[app as usize];
        st.status = Status::Decided;
        st.app = app;
        st.basis = basis;
        st.class = a.class;
        // A name lookup is network plumbing whatever it names; a download
        // over HTTP is a file transfer whatever the site.
        st.category = if st.proto == Proto::Dns {
            self.by_proto.get(&Proto::Dns).map_or(Category::NetworkService, |&d| self.apps[d as usize].category)
        } else if st.category == Category::FileTransfer {
            Category::FileTransfer
        } else {
            a.category
        };
        st.decided_after = total;
    }
}

/// Packets of an FTP control, SIP or DNS flow watched after its decision
/// for the connections it announces (or the answers it brings).
pub const WATCH_PACKETS: u8 = 64;

#[cfg(test)]
mod tests;
