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
//! 3. **payload patterns** (Aho-Corasick, with offsets) for applications
//!    that have no name on the wire.
//!
//! Ports are only hints: they name an application when nothing else did,
//! and the result says so ([`Basis::Port`]).

pub mod dns;
pub mod extract;
pub mod http;
pub mod quic;
pub mod tls;

use std::collections::HashMap;

use aho_corasick::AhoCorasick;

use crate::flow::Flow;

pub use dns::DnsCache;
pub use extract::{Local, Proto};

/// Application categories.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Category {
    #[default]
    Unknown,
    Web,
    Video,
    Music,
    VoIP,
    Conferencing,
    Gaming,
    FileTransfer,
    Database,
    Tunnel,
    NetworkService,
    RemoteAccess,
    Email,
    Cloud,
}

impl Category {
    pub const ALL: [Category; 14] = [
        Category::Unknown,
        Category::Web,
        Category::Video,
        Category::Music,
        Category::VoIP,
        Category::Conferencing,
        Category::Gaming,
        Category::FileTransfer,
        Category::Database,
        Category::Tunnel,
        Category::NetworkService,
        Category::RemoteAccess,
        Category::Email,
        Category::Cloud,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Category::Unknown => "Unknown",
            Category::Web => "Web",
            Category::Video => "Video",
            Category::Music => "Music",
            Category::VoIP => "VoIP",
            Category::Conferencing => "Conferencing",
            Category::Gaming => "Gaming",
            Category::FileTransfer => "FileTransfer",
            Category::Database => "Database",
            Category::Tunnel => "Tunnel",
            Category::NetworkService => "NetworkService",
            Category::RemoteAccess => "RemoteAccess",
            Category::Email => "Email",
            Category::Cloud => "Cloud",
        }
    }

    pub fn parse(s: &str) -> Option<Category> {
        Category::ALL.into_iter().find(|c| c.name().eq_ignore_ascii_case(s))
    }
}

/// Index of an application in [`Dpi::apps`]; 0 is "Unknown".
pub type AppId = u16;
pub const UNKNOWN: AppId = 0;

/// One application as the signatures define it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct App {
    pub name: String,
    pub category: Category,
    /// Default QoS class (0 best effort .. 7 highest).
    pub qos: u8,
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
    /// (proto, port) hints.
    pub ports: Vec<(u8, u16)>,
    /// The protocol an extractor reports that means this application (e.g.
    /// "ssh"), if any.
    pub protocol: Option<Proto>,
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
    pub qos: u8,
    pub host: Name,
    /// Payload-carrying packets inspected per direction.
    pub inspected: [u8; 2],
    /// Packets of the flow (both directions) when it was decided.
    pub decided_after: u16,
    /// Extractor state carried between packets.
    pub ex: extract::State,
}

/// The compiled, immutable classifier.
pub struct Dpi {
    pub apps: Vec<App>,
    by_name: HashMap<String, AppId>,
    hosts: HashMap<String, AppId>,
    patterns: Option<AhoCorasick>,
    pattern_of: Vec<(AppId, Pattern)>,
    ports: HashMap<(u8, u16), AppId>,
    by_proto: HashMap<Proto, AppId>,
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
    pub fn compile(set: &SignatureSet, max_packets: u8) -> Result<Dpi, SigError> {
        let mut apps = vec![App { name: "Unknown".into(), category: Category::Unknown, qos: 0 }];
        let mut by_name = HashMap::new();
        let mut hosts = HashMap::new();
        let mut pats = Vec::new();
        let mut pattern_of = Vec::new();
        let mut ports = HashMap::new();
        let mut by_proto = HashMap::new();
        let err = |app, field, msg: String| SigError { app, field, msg };
        for (i, sig) in set.apps.iter().enumerate() {
            let id = apps.len() as AppId;
            if by_name.insert(sig.app.name.to_ascii_lowercase(), id).is_some() || sig.app.name.eq_ignore_ascii_case("unknown") {
                return Err(err(i, "name", format!("application `{}` is defined twice", sig.app.name)));
            }
            for h in &sig.hosts {
                let h = h.trim_start_matches('.').to_ascii_lowercase();
                if h.is_empty() || !h.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'.' || c == b'-' || c == b'_') {
                    return Err(err(i, "hosts", format!("`{h}` is not a domain name")));
                }
                if let Some(other) = hosts.insert(h.clone(), id) {
                    return Err(err(i, "hosts", format!("`{h}` also belongs to `{}`", apps[other as usize].name)));
                }
            }
            for p in &sig.patterns {
                if p.bytes.is_empty() {
                    return Err(err(i, "patterns", "an empty pattern matches everything".into()));
                }
                pats.push(p.bytes.clone());
                pattern_of.push((id, p.clone()));
            }
            for &pp in &sig.ports {
                ports.entry(pp).or_insert(id);
            }
            if let Some(proto) = sig.protocol {
                if by_proto.insert(proto, id).is_some() {
                    return Err(err(i, "protocol", format!("protocol `{}` already names an application", proto.name())));
                }
            }
            apps.push(sig.app.clone());
        }
        let patterns = if pats.is_empty() {
            None
        } else {
            Some(
                AhoCorasick::builder()
                    .match_kind(aho_corasick::MatchKind::Standard)
                    .build(&pats)
                    .map_err(|e| err(0, "patterns", e.to_string()))?,
            )
        };
        Ok(Dpi { apps, by_name, hosts, patterns, pattern_of, ports, by_proto, max_packets: max_packets.max(1) })
    }

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

    /// Inspects one packet of `flow` in direction `d` (0: as the flow's
    /// first packet went). Call only while `flow.dpi.status` is
    /// `Inspecting`.
    pub fn inspect(&self, flow: &mut Flow, d: usize, payload: &[u8], local: &mut Local, now: u64) {
        let st = &mut flow.dpi;
        if st.status != Status::Inspecting {
            return;
        }
        let total = (flow.packets[0] + flow.packets[1]).min(u16::MAX as u64) as u16;
        // First packet: an address a DNS answer (or SDP) taught us.
        if flow.packets[0] + flow.packets[1] == 1 {
            let (server, port) = flow.key.end(match flow.orig {
                crate::flow::Dir::Lo => crate::flow::Dir::Hi,
                crate::flow::Dir::Hi => crate::flow::Dir::Lo,
            });
            if let Some(hit) = local.dns.lookup(server, port, now) {
                match hit {
                    dns::Learned::Name(name) => {
                        if let Some(app) = self.app_of_host(name.as_str()) {
                            st.host = name;
                            return self.decide(st, app, Basis::DnsCache, total);
                        }
                    }
                    dns::Learned::App(app) => return self.decide(st, app, Basis::Sdp, total),
                }
            }
        }
        if let Some(p) = extract::ip_proto(flow.key.proto) {
            st.proto = p;
            if let Some(&app) = self.by_proto.get(&p) {
                return self.decide(st, app, Basis::Protocol, total);
            }
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
        if seen.complete {
            let host_app = (!st.host.is_empty()).then(|| self.app_of_host(st.host.as_str())).flatten();
            let proto_app = self.by_proto.get(&st.proto).copied();
            match (host_app, proto_app) {
                (Some(app), _) => return self.decide(st, app, Basis::Host, total),
                (None, Some(app)) => return self.decide(st, app, Basis::Protocol, total),
                (None, None) => {}
            }
        }
        // Payload patterns.
        if let Some(ac) = &self.patterns {
            for m in ac.find_overlapping_iter(payload) {
                let (app, p) = &self.pattern_of[m.pattern().as_usize()];
                let at = m.start();
                let placed = match p.offset {
                    Some(o) => at == o as usize,
                    None => at <= p.depth as usize,
                };
                if placed && (p.proto == 0 || p.proto == proto) {
                    return self.decide(st, *app, Basis::Pattern, total);
                }
            }
        }
        if st.inspected[0] >= self.max_packets || st.inspected[1] >= self.max_packets {
            self.give_up(st, proto, ports, total);
        }
    }

    /// Ends inspection of a flow that is still undecided (its budget is
    /// spent, or it ended): a recognised protocol names its application;
    /// else a port hint; else Unknown for good.
    pub fn finish(&self, flow: &mut Flow) {
        let total = (flow.packets[0] + flow.packets[1]).min(u16::MAX as u64) as u16;
        let (proto, ports) = (flow.key.proto, (flow.key.lo_port, flow.key.hi_port));
        if flow.dpi.status == Status::Inspecting {
            self.give_up(&mut flow.dpi, proto, ports, total);
        }
    }

    fn give_up(&self, st: &mut FlowDpi, proto: u8, ports: (u16, u16), total: u16) {
        let host_app = (!st.host.is_empty()).then(|| self.app_of_host(st.host.as_str())).flatten();
        if let Some(app) = host_app {
            return self.decide(st, app, Basis::Host, total);
        }
        if let Some(&app) = self.by_proto.get(&st.proto) {
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
        st.qos = a.qos;
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

#[cfg(test)]
mod tests;
