//! The schema: the file's tables and fields as serde reads them, with
//! their defaults. Unknown fields and wrong types are refused here.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::{paths, qos, router, signatures, tunnel, RouterOpts};

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
    pub api: super::api::ApiOpts,
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

pub const DEFAULT_METRICS_LISTEN: &str = "127.0.0.1:9100";

fn default_metrics_listen() -> String {
    DEFAULT_METRICS_LISTEN.into()
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
/// `[eal] file_prefix` when the config leaves it out.
pub const DEFAULT_FILE_PREFIX: &str = "patronus";

fn default_file_prefix() -> String {
    DEFAULT_FILE_PREFIX.into()
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
