//! The TOML configuration: schema, parsing and validation.
//!
//! Every error names the file, line, column and field and says what was
//! expected. Serde rejects unknown fields and wrong types; [`validate`]
//! checks ranges and cross-references. Positions come from one mechanism:
//! a field path (`port[1].forward`) looked up in the parsed document.
//! Interfaces, addresses and routes are in [`router`].

pub use router::RouterOpts;

use std::collections::HashSet;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use dataplane::engine::{Device, EalSpec, EngineSpec, PortSpec, MAX_LCORE};
use dataplane::worker::PollMode;
use dataplane::{PortIdx, MAX_BURST, MAX_PORTS};
use serde::{Deserialize, Serialize};

/// The whole configuration file, as written.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub eal: Eal,
    #[serde(default)]
    pub site: Site,
    #[serde(default)]
    pub worker: Worker,
    #[serde(default)]
    pub stats: Stats,
    #[serde(default)]
    pub control: Control,
    #[serde(default)]
    pub port: Vec<Port>,
    #[serde(default)]
    pub router: RouterOpts,
    #[serde(default)]
    pub route: Vec<router::Route>,
    #[serde(default)]
    pub dpi: signatures::DpiOpts,
    #[serde(default)]
    pub tunnel: tunnel::TunnelOpts,
    #[serde(default)]
    pub qos: qos::QosOpts,
    #[serde(default)]
    pub paths: paths::PathsOpts,
    #[serde(default)]
    pub path: Vec<paths::PathOpts>,
    #[serde(default)]
    pub bfd: Vec<paths::BfdOpts>,
    #[serde(default)]
    pub policy: Vec<paths::PolicyOpts>,
}

/// `[eal]`: how DPDK's Environment Abstraction Layer starts.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Eal {
    /// Lcore of the control thread.
    #[serde(default)]
    pub main_lcore: u32,
    /// One poll-mode worker per lcore listed.
    pub worker_lcores: Vec<u32>,
    /// Lcores that run on another CPU than their number: "2@1,3@1".
    #[serde(default)]
    pub cpu_map: String,
    /// Memory EAL reserves, in MiB.
    #[serde(default = "default_memory_mb")]
    pub memory_mb: u32,
    /// Use hugepages (reserve them first) or ordinary pages (`--no-huge`).
    #[serde(default)]
    pub hugepages: bool,
    /// DPDK runtime prefix; processes running at once need distinct ones.
    #[serde(default = "default_file_prefix")]
    pub file_prefix: String,
    /// DPDK log level.
    #[serde(default = "default_log_level")]
    pub log_level: String,
    /// Mbufs per pool; 0 sizes pools from the rings.
    #[serde(default)]
    pub mbufs: u32,
    /// Extra EAL arguments, passed verbatim.
    #[serde(default)]
    pub extra_args: Vec<String>,
}

/// `[worker]`: the poll loop.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Worker {
    #[serde(default = "default_poll_mode")]
    pub poll_mode: PollModeName,
    #[serde(default = "default_burst")]
    pub burst: u32,
    #[serde(default = "default_drain_us")]
    pub drain_us: u32,
    #[serde(default = "default_max_sleep_us")]
    pub max_sleep_us: u32,
    /// Time one TX burst and one loop iteration in this many (0: off).
    #[serde(default = "default_latency_sample")]
    pub latency_sample: u32,
    /// A loop iteration at least this long counts as a stall.
    #[serde(default = "default_stall_us")]
    pub stall_us: u32,
}

impl Default for Worker {
    fn default() -> Self {
        Worker {
            poll_mode: default_poll_mode(),
            burst: default_burst(),
            drain_us: default_drain_us(),
            max_sleep_us: default_max_sleep_us(),
            latency_sample: default_latency_sample(),
            stall_us: default_stall_us(),
        }
    }
}

/// `poll` spins; `adaptive` sleeps briefly when the queues stay empty.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PollModeName {
    Poll,
    Adaptive,
}

/// `[stats]`: the control thread's periodic summary.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Stats {
    /// Seconds between summary lines; 0 turns them off.
    #[serde(default = "default_interval_s")]
    pub interval_s: u32,
}

impl Default for Stats {
    fn default() -> Self {
        Stats { interval_s: default_interval_s() }
    }
}

/// `[site]`: this appliance's identity among the sites it joins.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Site {
    /// Name of this site (a label in metrics and peers' views).
    #[serde(default = "default_site_name")]
    pub name: String,
    /// The site's x25519 private key (tunnels), in `wg genkey` format.
    /// Relative paths are relative to the config file. The file must be
    /// mode 0600 (or tighter) and owned by root or the running user.
    #[serde(default)]
    pub private_key_file: Option<PathBuf>,
}

impl Default for Site {
    fn default() -> Self {
        Site { name: default_site_name(), private_key_file: None }
    }
}

fn default_site_name() -> String {
    "site".into()
}

/// `[control]`: how operators and monitoring reach the running appliance.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Control {
    /// Unix socket for `patronus reload` / `patronus show` (mode 0600);
    /// "" turns it off. Default: /run/patronus/<eal.file_prefix>.sock.
    #[serde(default)]
    pub socket: Option<PathBuf>,
    /// Prometheus endpoint ("ADDR:PORT", port 0 picks a free one); ""
    /// turns it off.
    #[serde(default = "default_metrics_listen")]
    pub metrics_listen: String,
    /// Reload by itself when the config file changes.
    #[serde(default)]
    pub watch: bool,
    /// How long `patronus reload` waits for every worker to adopt the new
    /// policy before it reports a timeout.
    #[serde(default = "default_reload_timeout_ms")]
    pub reload_timeout_ms: u32,
}

impl Default for Control {
    fn default() -> Self {
        Control { socket: None, metrics_listen: default_metrics_listen(), watch: false, reload_timeout_ms: default_reload_timeout_ms() }
    }
}

fn default_metrics_listen() -> String {
    "127.0.0.1:9100".into()
}
fn default_reload_timeout_ms() -> u32 {
    1000
}

/// `[[port]]`: one network port.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Port {
    pub name: String,
    /// PCI address or DPDK vdev string.
    pub device: String,
    pub role: Role,
    #[serde(default = "default_ring")]
    pub rx_ring_size: u32,
    #[serde(default = "default_ring")]
    pub tx_ring_size: u32,
    /// Cross-connect: send everything received here out of this port.
    #[serde(default)]
    pub forward: Option<String>,
    /// RX queues; default one per worker.
    #[serde(default)]
    pub rx_queues: Option<u16>,
    /// IP MTU of the untagged interface (and default of its VLANs).
    #[serde(default = "router::default_mtu")]
    pub mtu: u16,
    /// Addresses of the untagged interface ("10.1.0.1/24", "fd00::1/64").
    #[serde(default)]
    pub addresses: Vec<String>,
    /// VLAN sub-interfaces.
    #[serde(default)]
    pub vlan: Vec<router::Vlan>,
    /// Egress shaping and class scheduling (docs/CONFIG.md).
    #[serde(default)]
    pub qos: Option<qos::PortQos>,
    /// Honour the DSCP hosts behind this port set (EF: RealTime, ...).
    #[serde(default)]
    pub trust_dscp: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Lan,
    Wan,
}

impl Role {
    pub fn name(self) -> &'static str {
        match self {
            Role::Lan => "lan",
            Role::Wan => "wan",
        }
    }
}

fn default_memory_mb() -> u32 {
    1024
}
fn default_file_prefix() -> String {
    "patronus".into()
}
fn default_log_level() -> String {
    "notice".into()
}
fn default_poll_mode() -> PollModeName {
    PollModeName::Adaptive
}
fn default_burst() -> u32 {
    32
}
fn default_drain_us() -> u32 {
    100
}
fn default_max_sleep_us() -> u32 {
    500
}
fn default_latency_sample() -> u32 {
    16
}
fn default_stall_us() -> u32 {
    50
}
fn default_interval_s() -> u32 {
    1
}
fn default_ring() -> u32 {
    1024
}

const LOG_LEVELS: &[&str] = &["emergency", "alert", "critical", "error", "warning", "notice", "info", "debug"];

/// A configuration error at a place in a file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError {
    pub file: PathBuf,
    pub line: usize,
    pub column: usize,
    /// Dotted path of the field (`port[1].forward`); empty for the file.
    pub field: String,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}: ", self.file.display(), self.line, self.column)?;
        if !self.field.is_empty() {
            write!(f, "{}: ", self.field)?;
        }
        // One line, whatever the underlying message held.
        f.write_str(&self.message.split_whitespace().collect::<Vec<_>>().join(" "))
    }
}

/// Errors found in one file (at least one).
#[derive(Debug)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

/// Maps field paths and byte offsets of one file to line and column.
pub(crate) struct Locator<'a> {
    file: &'a Path,
    text: &'a str,
    doc: Option<toml_edit::ImDocument<&'a str>>,
}

impl<'a> Locator<'a> {
    fn file(&self) -> &'a Path {
        self.file
    }

    fn new(file: &'a Path, text: &'a str) -> Self {
        Locator { file, text, doc: toml_edit::ImDocument::parse(text).ok() }
    }

    fn line_col(&self, offset: usize) -> (usize, usize) {
        let before = &self.text[..offset.min(self.text.len())];
        let line = before.matches('\n').count() + 1;
        let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
        (line, col)
    }

    /// Byte offset of the deepest existing item along `path`.
    fn offset_of(&self, path: &[Seg]) -> usize {
        let Some(doc) = &self.doc else { return 0 };
        let mut item = doc.as_item();
        let mut best = 0;
        for seg in path {
            let next = match seg {
                Seg::Key(k) => item.get(k.as_str()),
                Seg::Index(i) => item.get(*i),
            };
            match next {
                Some(n) => {
                    item = n;
                    if let Some(span) = span_of(item) {
                        best = span.start;
                    }
                }
                None => break,
            }
        }
        best
    }

    pub(crate) fn error(&self, path: &[Seg], message: impl Into<String>) -> ConfigError {
        self.error_at(self.offset_of(path), path, message)
    }

    fn error_at(&self, offset: usize, path: &[Seg], message: impl Into<String>) -> ConfigError {
        let (line, column) = self.line_col(offset);
        ConfigError { file: self.file.to_owned(), line, column, field: path_string(path), message: message.into() }
    }
}

fn span_of(item: &toml_edit::Item) -> Option<std::ops::Range<usize>> {
    match item {
        toml_edit::Item::Value(v) => v.span(),
        toml_edit::Item::Table(t) => t.span(),
        toml_edit::Item::ArrayOfTables(a) => a.span(),
        toml_edit::Item::None => None,
    }
}

/// One step of a field path.
#[derive(Clone, Debug)]
pub(crate) enum Seg {
    Key(String),
    Index(usize),
}

fn path_string(path: &[Seg]) -> String {
    let mut s = String::new();
    for seg in path {
        match seg {
            Seg::Key(k) => {
                if !s.is_empty() {
                    s.push('.');
                }
                s.push_str(k);
            }
            Seg::Index(i) => s.push_str(&format!("[{i}]")),
        }
    }
    s
}

macro_rules! cfg_path {
    ($($seg:expr),* $(,)?) => { vec![$(Seg::from($seg)),*] };
}

// After the macro, so the router module sees it.
pub mod keys;
pub mod paths;
pub mod qos;
mod router;
pub mod signatures;
pub mod tunnel;

impl From<&str> for Seg {
    fn from(k: &str) -> Seg {
        Seg::Key(k.to_owned())
    }
}
impl From<usize> for Seg {
    fn from(i: usize) -> Seg {
        Seg::Index(i)
    }
}

impl Config {
    /// Reads, parses and validates a config file.
    pub fn load(file: &Path) -> Result<Config, ConfigErrors> {
        let text = std::fs::read_to_string(file).map_err(|e| {
            ConfigErrors(vec![ConfigError {
                file: file.to_owned(),
                line: 0,
                column: 0,
                field: String::new(),
                message: format!("cannot read: {e}"),
            }])
        })?;
        Self::parse(file, &text)
    }

    /// Parses and validates config text; `file` is used in error messages.
    pub fn parse(file: &Path, text: &str) -> Result<Config, ConfigErrors> {
        let loc = Locator::new(file, text);
        let de = toml::Deserializer::new(text);
        let cfg: Config = serde_path_to_error::deserialize(de).map_err(|e| {
            let path = serde_path(e.path());
            let inner = e.inner();
            let err = match inner.span() {
                Some(span) => loc.error_at(span.start, &path, inner.message()),
                None => loc.error(&path, inner.message()),
            };
            ConfigErrors(vec![err])
        })?;
        let errors = cfg.validate(&loc);
        if errors.is_empty() {
            Ok(cfg)
        } else {
            Err(ConfigErrors(errors))
        }
    }

    /// Validates a config derived from `text` (the one a reload will run),
    /// placing errors in that text.
    pub fn revalidate(&self, file: &Path, text: &str) -> Result<(), ConfigErrors> {
        let errors = self.validate(&Locator::new(file, text));
        if errors.is_empty() {
            Ok(())
        } else {
            Err(ConfigErrors(errors))
        }
    }

    fn validate_dpi(&self, loc: &Locator) -> Vec<ConfigError> {
        let mut errs = Vec::new();
        let mut check = |ok: bool, path: Vec<Seg>, msg: String| {
            if !ok {
                errs.push(loc.error(&path, msg));
            }
        };
        let d = &self.dpi;
        check((1..=32).contains(&d.max_packets), cfg_path!("dpi", "max_packets"), format!("{} is out of range 1..=32", d.max_packets));
        check((1024..=1 << 24).contains(&d.flows), cfg_path!("dpi", "flows"), format!("{} is out of range 1024..=16777216", d.flows));
        check((1..=1 << 20).contains(&d.dns_cache), cfg_path!("dpi", "dns_cache"), format!("{} is out of range 1..=1048576", d.dns_cache));
        check((1..=65534).contains(&d.reassembly), cfg_path!("dpi", "reassembly"), format!("{} is out of range 1..=65534", d.reassembly));
        for (name, v) in [
            ("tcp_timeout_s", d.tcp_timeout_s),
            ("tcp_closing_timeout_s", d.tcp_closing_timeout_s),
            ("udp_timeout_s", d.udp_timeout_s),
            ("other_timeout_s", d.other_timeout_s),
        ] {
            check((1..=86400).contains(&v), cfg_path!("dpi", name), format!("{v} s is out of range 1..=86400"));
        }
        errs
    }

    fn validate(&self, loc: &Locator) -> Vec<ConfigError> {
        let mut errs = Vec::new();
        let mut check = |ok: bool, path: Vec<Seg>, msg: String| {
            if !ok {
                errs.push(loc.error(&path, msg));
            }
        };

        let e = &self.eal;
        check(
            e.main_lcore < MAX_LCORE,
            cfg_path!("eal", "main_lcore"),
            format!("lcore {} is out of range; expected 0..{}", e.main_lcore, MAX_LCORE),
        );
        check(!e.worker_lcores.is_empty(), cfg_path!("eal", "worker_lcores"), "expected at least one worker lcore".into());
        let mut seen = HashSet::new();
        for (i, &l) in e.worker_lcores.iter().enumerate() {
            let p = cfg_path!("eal", "worker_lcores", i);
            if l >= MAX_LCORE {
                check(false, p, format!("lcore {l} is out of range; expected 0..{MAX_LCORE}"));
            } else if l == e.main_lcore {
                check(false, p, format!("lcore {l} is the main lcore (eal.main_lcore = {l}); workers need lcores of their own"));
            } else if !seen.insert(l) {
                check(false, p, format!("lcore {l} is listed twice"));
            }
        }
        if let Err(m) = self.parse_cpu_map() {
            check(false, cfg_path!("eal", "cpu_map"), m);
        }
        check(
            (64..=1 << 20).contains(&e.memory_mb),
            cfg_path!("eal", "memory_mb"),
            format!("{} MiB is out of range; expected 64..=1048576", e.memory_mb),
        );
        check(
            !e.file_prefix.is_empty() && !e.file_prefix.contains(['/', ' ']),
            cfg_path!("eal", "file_prefix"),
            format!("{:?} is not a valid prefix; expected a non-empty name without '/' or spaces", e.file_prefix),
        );
        check(
            LOG_LEVELS.contains(&e.log_level.as_str()),
            cfg_path!("eal", "log_level"),
            format!("unknown level {:?}; expected one of {}", e.log_level, LOG_LEVELS.join(", ")),
        );
        check(
            e.mbufs == 0 || (1023..=1 << 24).contains(&e.mbufs),
            cfg_path!("eal", "mbufs"),
            format!("{} is out of range; expected 0 (automatic) or 1023..=16777216", e.mbufs),
        );

        let w = &self.worker;
        check(
            (1..=MAX_BURST as u32).contains(&w.burst),
            cfg_path!("worker", "burst"),
            format!("{} is out of range; expected 1..={MAX_BURST}", w.burst),
        );
        check(
            (1..=10_000).contains(&w.drain_us),
            cfg_path!("worker", "drain_us"),
            format!("{} is out of range; expected 1..=10000 microseconds", w.drain_us),
        );
        check(
            (1..=100_000).contains(&w.max_sleep_us),
            cfg_path!("worker", "max_sleep_us"),
            format!("{} is out of range; expected 1..=100000 microseconds", w.max_sleep_us),
        );
        check(
            w.latency_sample <= 65536,
            cfg_path!("worker", "latency_sample"),
            format!("{} is out of range; expected 0 (off) ..=65536", w.latency_sample),
        );
        check(
            (1..=1_000_000).contains(&w.stall_us),
            cfg_path!("worker", "stall_us"),
            format!("{} is out of range; expected 1..=1000000 microseconds", w.stall_us),
        );
        check(
            self.stats.interval_s <= 3600,
            cfg_path!("stats", "interval_s"),
            format!("{} is out of range; expected 0 (off) ..=3600 seconds", self.stats.interval_s),
        );

        let site = &self.site;
        check(
            (1..=63).contains(&site.name.len()) && site.name.bytes().all(|b| b.is_ascii_alphanumeric() || b"_-.".contains(&b)),
            cfg_path!("site", "name"),
            format!("{:?} is not a valid name; expected 1-63 letters, digits, '_', '-' or '.'", site.name),
        );
        if let Some(k) = self.private_key_path(loc.file) {
            if let Err(m) = keys::load_private_key(&k) {
                check(false, cfg_path!("site", "private_key_file"), m);
            }
        }
        let c = &self.control;
        if let Some(sock) = &c.socket {
            let s = sock.as_os_str();
            check(
                s.is_empty() || (sock.is_absolute() && s.len() < 108),
                cfg_path!("control", "socket"),
                format!("{sock:?} is not usable; expected an absolute path shorter than 108 bytes, or \"\" (off)"),
            );
        }
        if !c.metrics_listen.is_empty() {
            check(
                c.metrics_listen.parse::<std::net::SocketAddr>().is_ok(),
                cfg_path!("control", "metrics_listen"),
                format!(
                    "{:?} is not an address; expected ADDR:PORT such as \"127.0.0.1:9100\" or \"[::1]:9100\", or \"\" (off)",
                    c.metrics_listen
                ),
            );
        }
        check(
            (10..=60_000).contains(&c.reload_timeout_ms),
            cfg_path!("control", "reload_timeout_ms"),
            format!("{} is out of range; expected 10..=60000 milliseconds", c.reload_timeout_ms),
        );

        if self.port.is_empty() {
            errs.push(loc.error_at(
                loc.text.len(),
                &[Seg::from("port")],
                "no ports are defined; expected at least one [[port]] table with name, device and role",
            ));
        }
        let mut check = |ok: bool, path: Vec<Seg>, msg: String| {
            if !ok {
                errs.push(loc.error(&path, msg));
            }
        };
        check(
            self.port.len() <= MAX_PORTS,
            cfg_path!("port"),
            format!("{} ports defined; at most {MAX_PORTS} are supported", self.port.len()),
        );
        let names: Vec<&str> = self.port.iter().map(|p| p.name.as_str()).collect();
        let mut seen_names = HashSet::new();
        let mut seen_devs = HashSet::new();
        for (i, p) in self.port.iter().enumerate() {
            let name_ok =
                !p.name.is_empty() && p.name.len() <= 32 && p.name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
            check(
                name_ok,
                cfg_path!("port", i, "name"),
                format!("{:?} is not a valid name; expected 1-32 letters, digits, '_' or '-'", p.name),
            );
            check(seen_names.insert(p.name.as_str()), cfg_path!("port", i, "name"), format!("port name {:?} is used twice", p.name));
            match Device::parse(&p.device) {
                Ok(d) => check(
                    seen_devs.insert(d.port_name().to_owned()),
                    cfg_path!("port", i, "device"),
                    format!("device {:?} is used by two ports", d.port_name()),
                ),
                Err(m) => check(false, cfg_path!("port", i, "device"), m),
            }
            for (field, v) in [("rx_ring_size", p.rx_ring_size), ("tx_ring_size", p.tx_ring_size)] {
                check(
                    v.is_power_of_two() && (64..=16384).contains(&v),
                    cfg_path!("port", i, field),
                    format!("{v} is not allowed; expected a power of two in 64..=16384"),
                );
            }
            if let Some(to) = &p.forward {
                if !names.contains(&to.as_str()) {
                    check(false, cfg_path!("port", i, "forward"), format!("no port named {to:?}; expected one of: {}", names.join(", ")));
                } else {
                    check(to != &p.name, cfg_path!("port", i, "forward"), format!("port {:?} cannot forward to itself", p.name));
                }
            }
        }
        errs.extend(self.validate_router(loc));
        errs.extend(self.validate_dpi(loc));
        errs.extend(self.tunnel.validate(loc, self.site.private_key_file.is_some()));
        for (i, p) in self.port.iter().enumerate() {
            if let Some(q) = &p.qos {
                errs.extend(q.validate(loc, i));
            }
        }
        // The signatures, last: their errors name their own files.
        let mut apps = None;
        if self.dpi.enabled && errs.is_empty() {
            let dir = loc.file().parent().map(Path::to_path_buf).unwrap_or_default();
            match self.dpi.compile(&dir, &mut Default::default()) {
                Err(e) => errs.extend(e.0),
                Ok(d) => apps = Some(d.apps.iter().map(|a| a.name.clone()).collect::<Vec<_>>()),
            }
        }
        errs.extend(self.qos.validate(loc, apps.as_deref()));
        let peers: Vec<&str> = self.tunnel.peer.iter().map(|p| p.name.as_str()).collect();
        let ports: Vec<&str> = self.port.iter().map(|p| p.name.as_str()).collect();
        errs.extend(paths::validate(loc, &self.paths, &self.path, &self.bfd, &self.policy, &peers, &ports, apps.as_deref()));
        if !self.policy.is_empty() && !self.dpi.enabled {
            errs.push(loc.error(
                &[Seg::from("policy")],
                "policy rules are matched by the classifier: set [dpi] enabled = true (or remove the [[policy]] rules)",
            ));
        }
        errs
    }

    /// `eal.cpu_map` as (lcore, cpu) pairs.
    pub fn parse_cpu_map(&self) -> Result<Vec<(u32, u32)>, String> {
        let e = &self.eal;
        let expect = "expected LCORE@CPU pairs separated by commas, e.g. \"2@1,3@1\"";
        let mut out: Vec<(u32, u32)> = Vec::new();
        for item in e.cpu_map.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let (l, c) = item.split_once('@').ok_or_else(|| format!("{item:?}: {expect}"))?;
            let (l, c) = match (l.trim().parse::<u32>(), c.trim().parse::<u32>()) {
                (Ok(l), Ok(c)) if c < 1024 => (l, c),
                _ => return Err(format!("{item:?}: {expect}")),
            };
            if l != e.main_lcore && !e.worker_lcores.contains(&l) {
                return Err(format!("lcore {l} is neither the main lcore nor a worker lcore"));
            }
            if out.iter().any(|(seen, _)| *seen == l) {
                return Err(format!("lcore {l} is mapped twice"));
            }
            out.push((l, c));
        }
        Ok(out)
    }

    /// The site key file, resolved against the config file's directory.
    pub fn private_key_path(&self, config_file: &Path) -> Option<PathBuf> {
        let k = self.site.private_key_file.as_ref()?;
        Some(config_file.parent().map_or_else(|| k.clone(), |d| d.join(k)))
    }

    /// The control socket's path, if it is on.
    pub fn socket_path(&self) -> Option<PathBuf> {
        match &self.control.socket {
            Some(p) if p.as_os_str().is_empty() => None,
            Some(p) => Some(p.clone()),
            None => Some(PathBuf::from(format!("/run/patronus/{}.sock", self.eal.file_prefix))),
        }
    }

    /// The metrics endpoint's address, if it is on.
    pub fn metrics_addr(&self) -> Option<std::net::SocketAddr> {
        self.control.metrics_listen.parse().ok()
    }

    /// Index of the port named `name`.
    pub fn port_index(&self, name: &str) -> Option<PortIdx> {
        self.port.iter().position(|p| p.name == name).map(|i| i as PortIdx)
    }

    /// The cross-connect pairs (from, to) the ports' `forward` fields name.
    pub fn forward_pairs(&self) -> Vec<(PortIdx, PortIdx)> {
        self.port.iter().enumerate().filter_map(|(i, p)| Some((i as PortIdx, self.port_index(p.forward.as_deref()?)?))).collect()
    }

    /// What the engine needs from a validated config.
    pub fn engine_spec(&self) -> EngineSpec {
        let e = &self.eal;
        EngineSpec {
            eal: EalSpec {
                main_lcore: e.main_lcore,
                worker_lcores: e.worker_lcores.clone(),
                cpu_map: self.parse_cpu_map().expect("validated"),
                memory_mb: e.memory_mb,
                hugepages: e.hugepages,
                file_prefix: e.file_prefix.clone(),
                log_level: e.log_level.clone(),
                extra_args: e.extra_args.clone(),
            },
            ports: self
                .port
                .iter()
                .map(|p| PortSpec {
                    name: p.name.clone(),
                    device: Device::parse(&p.device).expect("validated"),
                    rx_desc: p.rx_ring_size as u16,
                    tx_desc: p.tx_ring_size as u16,
                    rx_queues: p.rx_queues,
                })
                .collect(),
            burst: self.worker.burst as usize,
            drain: Duration::from_micros(self.worker.drain_us as u64),
            mode: match self.worker.poll_mode {
                PollModeName::Poll => PollMode::Busy,
                PollModeName::Adaptive => PollMode::Adaptive { max_sleep: Duration::from_micros(self.worker.max_sleep_us as u64) },
            },
            mbufs: e.mbufs,
            latency_every: self.worker.latency_sample,
            stall: Duration::from_micros(self.worker.stall_us as u64),
        }
    }
}

fn serde_path(p: &serde_path_to_error::Path) -> Vec<Seg> {
    use serde_path_to_error::Segment;
    p.iter()
        .filter_map(|s| match s {
            Segment::Seq { index } => Some(Seg::Index(*index)),
            Segment::Map { key } => Some(Seg::Key(key.clone())),
            Segment::Enum { variant } => Some(Seg::Key(variant.clone())),
            Segment::Unknown => None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
[eal]
main_lcore = 0
worker_lcores = [1]

[[port]]
name = "lan0"
device = "net_null0"
role = "lan"
forward = "wan0"

[[port]]
name = "wan0"
device = "net_null1"
role = "wan"
forward = "lan0"
"#;

    fn err(text: &str) -> String {
        Config::parse(Path::new("t.toml"), text).unwrap_err().to_string()
    }

    #[test]
    fn a_good_config_parses_with_defaults() {
        let c = Config::parse(Path::new("t.toml"), GOOD).unwrap();
        assert_eq!(c.worker.burst, 32);
        assert_eq!(c.worker.poll_mode, PollModeName::Adaptive);
        assert_eq!(c.port[1].rx_ring_size, 1024);
        assert_eq!(c.forward_pairs(), vec![(0, 1), (1, 0)]);
        let spec = c.engine_spec();
        assert_eq!(spec.ports[0].device, Device::Vdev { name: "net_null0".into(), args: "".into() });
        assert_eq!(spec.mode, PollMode::Adaptive { max_sleep: Duration::from_micros(500) });
    }

    #[test]
    fn unknown_field_names_file_line_and_table() {
        let text = GOOD.replace("forward = \"wan0\"", "forwrd = \"wan0\"");
        assert_eq!(err(&text), "t.toml:10:1: port[0].forwrd: unknown field `forwrd`, expected one of `name`, `device`, `role`, `rx_ring_size`, `tx_ring_size`, `forward`, `rx_queues`, `mtu`, `addresses`, `vlan`, `qos`, `trust_dscp`");
    }

    #[test]
    fn wrong_type_names_the_field() {
        let text = GOOD.replace("worker_lcores = [1]", "worker_lcores = [\"1\"]");
        let e = err(&text);
        assert!(e.starts_with("t.toml:4:18: eal.worker_lcores[0]: invalid type: string \"1\", expected u32"), "{e}");
    }

    #[test]
    fn missing_required_field() {
        let text = GOOD.replace("device = \"net_null1\"\n", "");
        let e = err(&text);
        assert!(e.starts_with("t.toml:12:1: port[1]: missing field `device`"), "{e}");
    }

    #[test]
    fn forward_to_a_missing_port() {
        let text = GOOD.replace("forward = \"lan0\"", "forward = \"lan9\"");
        assert_eq!(err(&text), "t.toml:16:11: port[1].forward: no port named \"lan9\"; expected one of: lan0, wan0");
    }

    #[test]
    fn worker_lcore_equal_to_main() {
        let text = GOOD.replace("worker_lcores = [1]", "worker_lcores = [1, 0]");
        assert_eq!(
            err(&text),
            "t.toml:4:21: eal.worker_lcores[1]: lcore 0 is the main lcore (eal.main_lcore = 0); workers need lcores of their own"
        );
    }

    #[test]
    fn bad_device_string() {
        let text = GOOD.replace("\"net_null1\"", "\"eth1\"");
        let e = err(&text);
        assert!(e.starts_with("t.toml:14:10: port[1].device: \"eth1\": expected a PCI address"), "{e}");
    }

    #[test]
    fn cpu_map_is_checked() {
        let ok = GOOD.replace("worker_lcores = [1]", "worker_lcores = [1, 2]\ncpu_map = \"2@1\"");
        let c = Config::parse(Path::new("t.toml"), &ok).unwrap();
        assert_eq!(c.engine_spec().eal.cpu_map, vec![(2, 1)]);
        let bad = GOOD.replace("worker_lcores = [1]", "worker_lcores = [1]\ncpu_map = \"5@1\"");
        assert_eq!(err(&bad), "t.toml:5:11: eal.cpu_map: lcore 5 is neither the main lcore nor a worker lcore");
        let bad = GOOD.replace("worker_lcores = [1]", "worker_lcores = [1]\ncpu_map = \"1-1\"");
        assert!(err(&bad).contains("eal.cpu_map: \"1-1\": expected LCORE@CPU pairs"), "{}", err(&bad));
    }

    #[test]
    fn no_ports() {
        let text = "[eal]\nworker_lcores = [1]\n";
        assert_eq!(err(text), "t.toml:3:1: port: no ports are defined; expected at least one [[port]] table with name, device and role");
    }

    #[test]
    fn ranges_and_duplicates_are_checked_and_all_reported() {
        let text = GOOD.replace("name = \"wan0\"", "name = \"lan0\"").replace("[eal]", "[worker]\nburst = 0\n\n[eal]");
        let e = err(&text);
        let lines: Vec<&str> = e.lines().collect();
        assert_eq!(lines.len(), 4, "{e}");
        assert_eq!(lines[0], "t.toml:3:9: worker.burst: 0 is out of range; expected 1..=64");
        assert_eq!(lines[1], "t.toml:13:11: port[0].forward: no port named \"wan0\"; expected one of: lan0, lan0");
        assert_eq!(lines[2], "t.toml:16:8: port[1].name: port name \"lan0\" is used twice");
        assert_eq!(lines[3], "t.toml:19:11: port[1].forward: port \"lan0\" cannot forward to itself");
    }

    #[test]
    fn bad_enum_value() {
        let text = GOOD.replace("role = \"wan\"", "role = \"dmz\"");
        let e = err(&text);
        assert!(e.starts_with("t.toml:15:8: port[1].role: unknown variant `dmz`, expected `lan` or `wan`"), "{e}");
    }

    #[test]
    fn syntax_error_is_one_line() {
        let e = err("[eal\nworker_lcores = [1]\n");
        assert_eq!(e.lines().count(), 1, "{e}");
        assert!(e.starts_with("t.toml:1:5: "), "{e}");
    }
}
