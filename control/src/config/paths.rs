//! Multi-path SD-WAN: `[paths]` (tuning), `[[path]]` (one WAN path to a
//! tunnel peer), `[[bfd]]` (BFD sessions) and `[[policy]]` (rules that
//! steer applications to paths). docs/PATHS.md explains each field.
//!
//! ```toml
//! [[path]]
//! name = "mpls"
//! peer = "site-b"                 # a [[tunnel.peer]]
//! port = "wan0"                   # the local WAN port it leaves by
//! endpoint = "10.201.0.1:51820"   # the peer's address on this path
//! cost = 100
//! bandwidth_mbps = 10
//! probe_interval_ms = 100
//!
//! [[policy]]
//! name = "prefer-low-latency"
//! application = ["youtube"]
//! strategy = "lowest-latency"
//! max_latency_ms = 50
//! ```

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use dataplane::path::bfd::Timers;
use dataplane::path::sla::{DampingConf, Fallback, ProbeConf, RuleConf, SelectConf, Sla, Strategy};
use dataplane::path::{Match, Policy, MAX_PATHS, MAX_RULES};
use dataplane::vocab::Class;
use serde::{Deserialize, Serialize};

use super::{ConfigError, Locator, Seg};

fn d_hold_down() -> f64 {
    10.0
}
fn d_hysteresis() -> u32 {
    20
}
fn d_strategy() -> String {
    "least-cost".into()
}
fn d_sla_probes() -> u32 {
    10
}
fn d_interval() -> u32 {
    100
}
fn d_window() -> u32 {
    100
}
fn d_three() -> u32 {
    3
}
fn d_one() -> u32 {
    1
}
fn d_bfd_ms() -> u32 {
    300
}
fn d_mult() -> u8 {
    3
}

/// `[paths]`.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PathsOpts {
    /// Seconds a recovered path must stay good before flows fail back.
    #[serde(default = "d_hold_down")]
    pub hold_down_s: f64,
    /// SLA margin for coming back, and the gain a lower-latency path needs.
    #[serde(default = "d_hysteresis")]
    pub hysteresis_pct: u32,
    /// Strategy of the default rule (flows no `[[policy]]` matches).
    #[serde(default = "d_strategy")]
    pub default_strategy: String,
    /// Probes the SLA checks look at (the latest ones).
    #[serde(default = "d_sla_probes")]
    pub sla_probes: u32,
    #[serde(default)]
    pub damping: DampingOpts,
}

impl Default for PathsOpts {
    fn default() -> Self {
        PathsOpts {
            hold_down_s: d_hold_down(),
            hysteresis_pct: d_hysteresis(),
            default_strategy: d_strategy(),
            sla_probes: d_sla_probes(),
            damping: DampingOpts::default(),
        }
    }
}

/// `[paths.damping]`.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct DampingOpts {
    pub penalty: f64,
    pub suppress: f64,
    pub reuse: f64,
    pub max_penalty: f64,
    pub half_life_s: f64,
}

impl Default for DampingOpts {
    fn default() -> Self {
        let d = DampingConf::default();
        DampingOpts {
            penalty: d.penalty,
            suppress: d.suppress,
            reuse: d.reuse,
            max_penalty: d.max_penalty,
            half_life_s: d.half_life.as_secs_f64(),
        }
    }
}

/// `[[path]]`.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PathOpts {
    pub name: String,
    pub peer: String,
    pub port: String,
    pub endpoint: String,
    #[serde(default = "d_one")]
    pub cost: u32,
    #[serde(default)]
    pub bandwidth_mbps: u32,
    #[serde(default)]
    pub labels: Vec<String>,
    #[serde(default = "d_interval")]
    pub probe_interval_ms: u32,
    #[serde(default = "d_window")]
    pub probe_window: u32,
    #[serde(default = "d_three")]
    pub down_after: u32,
    #[serde(default = "d_three")]
    pub up_after: u32,
    /// A `[[bfd]]` session whose state gates the path.
    #[serde(default)]
    pub bfd: Option<String>,
    /// Where probes go as ICMP echo requests until the peer shows it is
    /// Patronus (an IPv4 address behind the peer); default: the peer's
    /// `address`, else the first address of its first IPv4 `allowed_ips`.
    #[serde(default)]
    pub probe_target: Option<String>,
}

/// `[[bfd]]`.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct BfdOpts {
    pub name: String,
    /// The neighbour's address (a WAN next hop, or the peer site's endpoint address).
    pub peer: String,
    /// RFC 5883 multihop (UDP 4784) instead of single hop (UDP 3784, TTL 255).
    #[serde(default)]
    pub multihop: bool,
    #[serde(default = "d_bfd_ms")]
    pub min_tx_ms: u32,
    #[serde(default = "d_bfd_ms")]
    pub min_rx_ms: u32,
    #[serde(default = "d_mult")]
    pub multiplier: u8,
    #[serde(default)]
    pub admin_down: bool,
}

/// `[[policy]]`.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PolicyOpts {
    pub name: String,
    /// Lower first; equal priorities keep their order in the file.
    #[serde(default)]
    pub priority: u32,
    #[serde(default)]
    pub application: Vec<String>,
    #[serde(default)]
    pub category: Vec<String>,
    #[serde(default)]
    pub source: Vec<String>,
    #[serde(default)]
    pub destination: Vec<String>,
    /// "443" or "10000-20000"; either port of the packet.
    #[serde(default)]
    pub ports: Vec<String>,
    /// "tcp", "udp" or a number.
    #[serde(default)]
    pub protocol: Vec<String>,
    #[serde(default)]
    pub dscp: Vec<u8>,
    #[serde(default = "d_strategy")]
    pub strategy: String,
    /// Path names, most preferred first (strategy "preference").
    #[serde(default)]
    pub prefer: Vec<String>,
    #[serde(default)]
    pub max_latency_ms: Option<f64>,
    #[serde(default)]
    pub max_loss_pct: Option<f64>,
    #[serde(default)]
    pub max_jitter_ms: Option<f64>,
    /// "best-available", "drop", or a path name.
    #[serde(default)]
    pub fallback: Option<String>,
    /// A QoS class for the rule's traffic.
    #[serde(default)]
    pub class: Option<String>,
}

pub const STRATEGIES: &[&str] = &["lowest-latency", "lowest-loss", "highest-bandwidth", "least-cost", "preference"];

fn parse_ports(s: &str) -> Option<(u16, u16)> {
    match s.split_once('-') {
        Some((a, b)) => {
            let (a, b) = (a.trim().parse().ok()?, b.trim().parse().ok()?);
            (a <= b).then_some((a, b))
        }
        None => s.trim().parse().ok().map(|p| (p, p)),
    }
}

fn parse_proto(s: &str) -> Option<u8> {
    match s.to_ascii_lowercase().as_str() {
        "tcp" => Some(6),
        "udp" => Some(17),
        "icmp" => Some(1),
        "icmpv6" => Some(58),
        n => n.parse().ok(),
    }
}

/// The policy rules in match order (priority, then file order).
pub fn ordered(rules: &[PolicyOpts]) -> Vec<&PolicyOpts> {
    let mut v: Vec<&PolicyOpts> = rules.iter().collect();
    v.sort_by_key(|r| r.priority);
    v
}

fn strategy(s: &str, prefer: &[String], paths: &[&PathOpts]) -> Strategy {
    match s {
        "lowest-latency" => Strategy::LowestLatency,
        "lowest-loss" => Strategy::LowestLoss,
        "highest-bandwidth" => Strategy::HighestBandwidth,
        "preference" => Strategy::Preference(prefer.iter().filter_map(|n| paths.iter().position(|p| &p.name == n)).collect()),
        _ => Strategy::LeastCost,
    }
}

impl PathsOpts {
    pub fn select_conf(&self) -> SelectConf {
        SelectConf { hold_down: Duration::from_secs_f64(self.hold_down_s.max(0.0)), hysteresis: self.hysteresis_pct.min(90) as f64 / 100.0 }
    }

    pub fn damping(&self) -> DampingConf {
        let d = &self.damping;
        DampingConf {
            penalty: d.penalty,
            suppress: d.suppress,
            reuse: d.reuse,
            max_penalty: d.max_penalty,
            half_life: Duration::from_secs_f64(d.half_life_s.max(0.001)),
        }
    }

    /// The default rule (index 0).
    pub fn default_rule(&self, paths: &[&PathOpts]) -> RuleConf {
        RuleConf { strategy: strategy(&self.default_strategy, &[], paths), sla: Sla::default(), fallback: Fallback::BestAvailable }
    }
}

impl PathOpts {
    pub fn probe_conf(&self, paths: &PathsOpts) -> ProbeConf {
        ProbeConf {
            interval: Duration::from_millis(self.probe_interval_ms as u64),
            window: self.probe_window as usize,
            down_after: self.down_after,
            up_after: self.up_after,
            lost_after: Duration::from_millis((self.probe_interval_ms as u64 * 10).clamp(500, 2000)),
            damping: paths.damping(),
        }
    }

    pub fn endpoint(&self) -> Option<SocketAddr> {
        self.endpoint.parse().ok()
    }
}

impl BfdOpts {
    pub fn timers(&self) -> Timers {
        Timers {
            desired_min_tx: Duration::from_millis(self.min_tx_ms as u64),
            required_min_rx: Duration::from_millis(self.min_rx_ms as u64),
            detect_mult: self.multiplier,
        }
    }
}

impl PolicyOpts {
    /// The rule for the paths of one peer (`paths`: that peer's, in order).
    pub fn rule(&self, paths: &[&PathOpts]) -> RuleConf {
        let ms = |v: Option<f64>| v.map(|m| Duration::from_secs_f64(m / 1e3));
        let fallback = match self.fallback.as_deref() {
            None | Some("best-available") => Fallback::BestAvailable,
            Some("drop") => Fallback::Drop,
            Some(name) => paths.iter().position(|p| p.name == name).map_or(Fallback::BestAvailable, Fallback::Path),
        };
        RuleConf {
            strategy: strategy(&self.strategy, &self.prefer, paths),
            sla: Sla { max_latency: ms(self.max_latency_ms), max_loss_pct: self.max_loss_pct, max_jitter: ms(self.max_jitter_ms) },
            fallback,
        }
    }
}

/// Compiles the rules' matches for the classifier (names resolved
/// against the signatures; validation has checked them).
pub fn compile_policy(rules: &[PolicyOpts], dpi: &dataplane::dpi::Dpi, generation: u32) -> Policy {
    let rules = ordered(rules)
        .into_iter()
        .map(|r| {
            let m = Match {
                apps: r.application.iter().filter_map(|a| dpi.app_id(a)).collect(),
                categories: r.category.iter().filter_map(|c| dataplane::vocab::Category::parse(c)).collect(),
                sources: r.source.iter().filter_map(|s| super::router::parse_cidr(s).ok()).collect(),
                destinations: r.destination.iter().filter_map(|s| super::router::parse_cidr(s).ok()).collect(),
                ports: r.ports.iter().filter_map(|p| parse_ports(p)).collect(),
                protocols: r.protocol.iter().filter_map(|p| parse_proto(p)).collect(),
                dscp: r.dscp.clone(),
            };
            (m, r.class.as_deref().and_then(Class::from_name))
        })
        .collect();
    Policy { rules, generation }
}

/// Checks `[paths]`, `[[path]]`, `[[bfd]]` and `[[policy]]`. `peers`: the
/// tunnel peers' names; `ports`: the port names; `apps`: the signatures'
/// application names when compiled.
pub(super) fn validate(
    loc: &Locator,
    opts: &PathsOpts,
    paths: &[PathOpts],
    bfd: &[BfdOpts],
    policy: &[PolicyOpts],
    peers: &[&str],
    ports: &[&str],
    apps: Option<&[String]>,
) -> Vec<ConfigError> {
    let mut errs = Vec::new();
    let mut check = |ok: bool, path: Vec<Seg>, msg: String| {
        if !ok {
            errs.push(loc.error(&path, msg));
        }
    };
    check(
        opts.hold_down_s >= 0.0 && opts.hold_down_s <= 3600.0,
        cfg_path!("paths", "hold_down_s"),
        format!("{} is out of range 0..=3600", opts.hold_down_s),
    );
    check(opts.hysteresis_pct <= 90, cfg_path!("paths", "hysteresis_pct"), format!("{} is out of range 0..=90", opts.hysteresis_pct));
    check((1..=1000).contains(&opts.sla_probes), cfg_path!("paths", "sla_probes"), format!("{} is out of range 1..=1000", opts.sla_probes));
    check(
        STRATEGIES.contains(&opts.default_strategy.as_str()) && opts.default_strategy != "preference",
        cfg_path!("paths", "default_strategy"),
        format!("unknown strategy {:?}; expected lowest-latency, lowest-loss, highest-bandwidth or least-cost", opts.default_strategy),
    );
    let d = &opts.damping;
    check(
        d.penalty > 0.0 && d.reuse > 0.0 && d.reuse < d.suppress && d.suppress <= d.max_penalty && d.half_life_s > 0.0,
        cfg_path!("paths", "damping"),
        "expected penalty > 0, 0 < reuse < suppress <= max_penalty and half_life_s > 0".into(),
    );
    let mut names: HashMap<&str, usize> = HashMap::new();
    let mut per_peer: HashMap<&str, usize> = HashMap::new();
    let mut endpoints: HashMap<(&str, SocketAddr), usize> = HashMap::new();
    for (i, p) in paths.iter().enumerate() {
        check(!p.name.is_empty(), cfg_path!("path", i, "name"), "expected a name".into());
        if let Some(j) = names.insert(&p.name, i) {
            check(false, cfg_path!("path", i, "name"), format!("{:?} is also the name of path[{j}]", p.name));
        }
        if !peers.contains(&p.peer.as_str()) {
            check(
                false,
                cfg_path!("path", i, "peer"),
                if peers.is_empty() {
                    format!("no tunnel peer named {:?}: paths run over [[tunnel.peer]] tunnels and none is configured", p.peer)
                } else {
                    format!("no tunnel peer named {:?}; expected one of: {}", p.peer, peers.join(", "))
                },
            );
        }
        let n = per_peer.entry(&p.peer).or_default();
        *n += 1;
        check(*n <= MAX_PATHS, cfg_path!("path", i), format!("more than {MAX_PATHS} paths to peer {:?}", p.peer));
        check(
            ports.contains(&p.port.as_str()),
            cfg_path!("path", i, "port"),
            format!("no port named {:?}; expected one of: {}", p.port, ports.join(", ")),
        );
        match p.endpoint() {
            None => check(false, cfg_path!("path", i, "endpoint"), format!("{:?} is not ADDRESS:PORT like 192.0.2.2:51820", p.endpoint)),
            Some(e) => {
                if let Some(j) = endpoints.insert((&p.peer, e), i) {
                    check(false, cfg_path!("path", i, "endpoint"), format!("{e} is also the endpoint of path[{j}] to the same peer"));
                }
            }
        }
        check(
            (10..=10_000).contains(&p.probe_interval_ms),
            cfg_path!("path", i, "probe_interval_ms"),
            format!("{} is out of range 10..=10000", p.probe_interval_ms),
        );
        check(
            (10..=10_000).contains(&p.probe_window),
            cfg_path!("path", i, "probe_window"),
            format!("{} is out of range 10..=10000", p.probe_window),
        );
        check((1..=100).contains(&p.down_after), cfg_path!("path", i, "down_after"), format!("{} is out of range 1..=100", p.down_after));
        check((1..=100).contains(&p.up_after), cfg_path!("path", i, "up_after"), format!("{} is out of range 1..=100", p.up_after));
        if let Some(t) = &p.probe_target {
            check(t.parse::<std::net::Ipv4Addr>().is_ok(), cfg_path!("path", i, "probe_target"), format!("{t:?} is not an IPv4 address"));
        }
        if let Some(b) = &p.bfd {
            check(
                bfd.iter().any(|s| &s.name == b),
                cfg_path!("path", i, "bfd"),
                format!(
                    "no [[bfd]] session named {b:?}; expected one of: {}",
                    bfd.iter().map(|s| s.name.as_str()).collect::<Vec<_>>().join(", ")
                ),
            );
        }
    }
    let mut bnames: HashMap<&str, usize> = HashMap::new();
    for (i, b) in bfd.iter().enumerate() {
        check(!b.name.is_empty(), cfg_path!("bfd", i, "name"), "expected a name".into());
        if let Some(j) = bnames.insert(&b.name, i) {
            check(false, cfg_path!("bfd", i, "name"), format!("{:?} is also the name of bfd[{j}]", b.name));
        }
        check(b.peer.parse::<IpAddr>().is_ok(), cfg_path!("bfd", i, "peer"), format!("{:?} is not an IP address", b.peer));
        check(
            (10..=60_000).contains(&b.min_tx_ms),
            cfg_path!("bfd", i, "min_tx_ms"),
            format!("{} is out of range 10..=60000", b.min_tx_ms),
        );
        check(
            (10..=60_000).contains(&b.min_rx_ms),
            cfg_path!("bfd", i, "min_rx_ms"),
            format!("{} is out of range 10..=60000", b.min_rx_ms),
        );
        check((1..=50).contains(&b.multiplier), cfg_path!("bfd", i, "multiplier"), format!("{} is out of range 1..=50", b.multiplier));
    }
    check(policy.len() <= MAX_RULES, cfg_path!("policy"), format!("at most {MAX_RULES} rules"));
    let mut rnames: HashMap<&str, usize> = HashMap::new();
    for (i, r) in policy.iter().enumerate() {
        check(!r.name.is_empty(), cfg_path!("policy", i, "name"), "expected a name".into());
        if let Some(j) = rnames.insert(&r.name, i) {
            check(false, cfg_path!("policy", i, "name"), format!("{:?} is also the name of policy[{j}]", r.name));
        }
        for (j, a) in r.application.iter().enumerate() {
            if apps.is_some_and(|list| !list.iter().any(|n| n.eq_ignore_ascii_case(a))) {
                check(
                    false,
                    cfg_path!("policy", i, "application", j),
                    format!("no application named {a:?} in the signatures (`patronus show apps` lists them)"),
                );
            }
        }
        for (j, c) in r.category.iter().enumerate() {
            if dataplane::vocab::Category::parse(c).is_none() {
                let cats: Vec<&str> = dataplane::vocab::Category::ALL.iter().map(|c| c.name()).collect();
                check(
                    false,
                    cfg_path!("policy", i, "category", j),
                    format!("unknown category {c:?}; expected one of: {}", cats.join(", ")),
                );
            }
        }
        for (field, list) in [("source", &r.source), ("destination", &r.destination)] {
            for (j, s) in list.iter().enumerate() {
                if let Err(m) = super::router::parse_cidr(s) {
                    check(false, cfg_path!("policy", i, field, j), m);
                }
            }
        }
        for (j, p) in r.ports.iter().enumerate() {
            check(parse_ports(p).is_some(), cfg_path!("policy", i, "ports", j), format!("{p:?} is not a port or a range like 10000-20000"));
        }
        for (j, p) in r.protocol.iter().enumerate() {
            check(
                parse_proto(p).is_some(),
                cfg_path!("policy", i, "protocol", j),
                format!("{p:?} is not tcp, udp, icmp or a protocol number"),
            );
        }
        for (j, &v) in r.dscp.iter().enumerate() {
            check(v < 64, cfg_path!("policy", i, "dscp", j), format!("{v} is out of range 0..=63"));
        }
        check(
            STRATEGIES.contains(&r.strategy.as_str()),
            cfg_path!("policy", i, "strategy"),
            format!("unknown strategy {:?}; expected one of: {}", r.strategy, STRATEGIES.join(", ")),
        );
        check(
            r.strategy != "preference" || !r.prefer.is_empty(),
            cfg_path!("policy", i, "prefer"),
            "strategy \"preference\" needs a list of path names, most preferred first".into(),
        );
        for (j, n) in r.prefer.iter().enumerate() {
            check(names.contains_key(n.as_str()), cfg_path!("policy", i, "prefer", j), format!("no [[path]] named {n:?}"));
        }
        for (field, v, max) in [
            ("max_latency_ms", r.max_latency_ms, 60_000.0),
            ("max_loss_pct", r.max_loss_pct, 100.0),
            ("max_jitter_ms", r.max_jitter_ms, 60_000.0),
        ] {
            if let Some(v) = v {
                check(v > 0.0 && v <= max, cfg_path!("policy", i, field), format!("{v} is out of range (0, {max}]"));
            }
        }
        if let Some(f) = &r.fallback {
            check(
                f == "best-available" || f == "drop" || names.contains_key(f.as_str()),
                cfg_path!("policy", i, "fallback"),
                format!("{f:?} is not \"best-available\", \"drop\" or a [[path]] name"),
            );
        }
        if let Some(c) = &r.class {
            check(Class::from_name(c).is_some(), cfg_path!("policy", i, "class"), {
                let names: Vec<&str> = Class::ALL.iter().map(|c| c.name()).collect();
                format!("unknown class {c:?}; expected one of: {}", names.join(", "))
            });
        }
    }
    errs
}
