//! The API's object types: what `patronus show WHAT --json` answers, typed.
//!
//! The control thread answers the API exactly as it answers the control
//! socket (JSON); each query reads that answer into these types. Field
//! names are the JSON's (snake_case), so a dashboard, a script on
//! `show --json` and a GraphQL client read the same names. Every type
//! refuses fields it does not know: a field added to `show` without its
//! type here fails the API test that queries every field
//! (`tests/api.rs`), so the schema cannot silently fall behind.
//!
//! Free-form parts stay `JSON` on purpose: an event's `fields` (they differ
//! per kind) and the running config's effective values (the config's own
//! schema, docs/CONFIG.md).

use std::collections::BTreeMap;

use async_graphql::{Json, SimpleObject};
use serde::{Deserialize, Deserializer};
use serde_json::Value;

/// A count per reason (a JSON object of reason: count in `show --json`).
#[derive(SimpleObject, Clone, Debug)]
pub struct ReasonCount {
    pub reason: String,
    pub count: u64,
}

fn by_reason<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<ReasonCount>, D::Error> {
    let m = BTreeMap::<String, u64>::deserialize(d)?;
    Ok(m.into_iter().map(|(reason, count)| ReasonCount { reason, count }).collect())
}

macro_rules! object {
    ($(#[$m:meta])* pub struct $name:ident { $($body:tt)* }) => {
        $(#[$m])*
        #[derive(SimpleObject, Deserialize, Clone, Debug)]
        #[graphql(rename_fields = "lowercase")]
        #[serde(deny_unknown_fields)]
        pub struct $name { $($body)* }
    };
}

object! {
    /// `show status`.
    pub struct Status {
        pub site: String,
        pub config: String,
        pub version: String,
        pub dpdk: String,
        pub uptime_seconds: f64,
        /// The worker lcores.
        pub workers: Vec<u32>,
        pub reloads: crate::telemetry::ReloadStats,
        pub resident_memory_bytes: Option<u64>,
        /// Old snapshots some worker still holds.
        pub snapshots_retired_in_use: u64,
    }
}

object! {
    /// `show ports`: one port.
    pub struct Port {
        pub port: String,
        pub device: String,
        pub driver: String,
        pub mac: String,
        pub role: String,
        pub rx_queues: u32,
        pub tx_queues: u32,
        pub forward: Option<String>,
        /// How its flows are spread over the workers.
        pub spread: String,
        pub rx_packets: u64,
        pub tx_packets: u64,
        pub rx_bytes: u64,
        pub tx_bytes: u64,
        pub drops: u64,
        pub punted: u64,
        pub icmp_errors: u64,
        pub nic_rx_packets: u64,
        pub nic_tx_packets: u64,
        pub nic_rx_bytes: u64,
        pub nic_tx_bytes: u64,
        pub nic_missed: u64,
        pub nic_rx_errors: u64,
        pub nic_tx_errors: u64,
        pub nic_rx_nombuf: u64,
    }
}

object! {
    /// `show counters`: one core's traffic on one port.
    pub struct CoreCounters {
        /// A worker's lcore, or "control".
        pub core: String,
        pub port: String,
        pub rx_packets: u64,
        pub tx_packets: u64,
        pub rx_bytes: u64,
        pub tx_bytes: u64,
        pub drops: u64,
        pub punted: u64,
        pub icmp_errors: u64,
    }
}

object! {
    /// `show drops`: packets dropped for one reason on one core and port.
    pub struct Drop {
        pub port: String,
        pub core: String,
        pub reason: String,
        pub packets: u64,
    }
}

object! {
    /// `show workers`: one worker.
    pub struct Worker {
        pub core: u32,
        pub tid: u64,
        /// PORT:QUEUE it polls.
        pub queues: Vec<String>,
        pub rx_packets: u64,
        pub polls: u64,
        pub sleeps: u64,
        pub busy_seconds: f64,
        pub cpu_seconds: f64,
        pub cycles_per_packet: Option<f64>,
        pub stalls: u64,
        pub flows_active: Option<u64>,
        pub flows_created: Option<u64>,
        pub handoff_out: u64,
        pub handoff_in: u64,
        pub handoff_full: u64,
    }
}

object! {
    /// `show latency`: one track's quantiles over the last 5-10 s.
    pub struct Latency {
        pub core: u32,
        /// residence, iteration or stage:NAME.
        pub what: String,
        /// seconds or cycles.
        pub unit: String,
        pub count: u64,
        /// At p50, p90, p95, p99, p99.9 and max.
        pub quantiles: Vec<f64>,
        pub total: u64,
        pub stalls: u64,
    }
}

object! {
    /// `show neighbors`: one ARP or ND entry.
    pub struct Neighbor {
        pub iface: String,
        pub ip: String,
        pub mac: Option<String>,
        pub state: String,
    }
}

object! {
    /// `show flows`: the flow tables, summed over the workers.
    pub struct FlowSummary {
        pub enabled: bool,
        pub active: Option<u64>,
        pub created: Option<u64>,
        pub expired: Option<u64>,
        pub closed: Option<u64>,
        pub evicted: Option<u64>,
        pub capacity_per_worker: Option<u64>,
        pub inspected_packets: Option<u64>,
        pub unparsed_packets: Option<u64>,
        pub reassembly_overflows: Option<u64>,
    }
}

object! {
    /// One live flow (`patronus flows`).
    pub struct Flow {
        pub worker: u32,
        pub protocol: String,
        /// The end that sent the first packet.
        pub client: String,
        pub client_port: u32,
        pub server: String,
        pub server_port: u32,
        pub application: String,
        pub category: String,
        pub class: String,
        /// inspecting, decided or unknown (DPI gave up).
        pub state: String,
        /// The host name DPI saw: TLS SNI, HTTP Host, DNS query.
        pub host: Option<String>,
        /// The policy rule it matched, and that rule's path now.
        pub rule: Option<String>,
        pub path: Option<String>,
        pub packets_from_client: u64,
        pub packets_from_server: u64,
        pub bytes_from_client: u64,
        pub bytes_from_server: u64,
        pub age_seconds: f64,
        pub idle_seconds: f64,
    }
}

object! {
    /// A page of flows; pass `end_cursor` as `after` for the next.
    pub struct FlowPage {
        pub enabled: bool,
        pub rows: Vec<Flow>,
        pub end_cursor: Option<String>,
        pub has_next_page: bool,
    }
}

object! {
    /// `show apps`: one application's traffic.
    pub struct Application {
        pub application: String,
        pub category: String,
        pub flows: u64,
        pub packets: u64,
        pub bytes: u64,
        /// The rule its flows take (by application alone), and its path now.
        pub rule: String,
        pub path: String,
    }
}

object! {
    /// A page of applications.
    pub struct ApplicationPage {
        pub total: u64,
        pub offset: u64,
        pub rows: Vec<Application>,
    }
}

object! {
    /// `show peers`.
    pub struct Tunnel {
        pub enabled: bool,
        /// This site's public key (never a private one).
        pub public_key: Option<String>,
        pub listen_port: Option<u32>,
        pub mtu: Option<u32>,
        pub peers: Vec<Peer>,
        pub handshake: Handshakes,
        pub keepalives_sent: u64,
        pub attempts_abandoned: u64,
        pub keys_erased: u64,
        pub send_failures: u64,
    }
}

object! {
    pub struct Peer {
        pub peer: String,
        pub public_key: String,
        /// Whether one is configured (never its value).
        pub preshared_key: bool,
        pub endpoint: Option<String>,
        pub allowed_ips: Vec<String>,
        pub latest_handshake_seconds_ago: Option<f64>,
        pub latest_handshake_unix: Option<f64>,
        pub handshakes: u64,
        pub up: bool,
        pub rx_bytes: u64,
        pub tx_bytes: u64,
        pub rx_packets: u64,
        pub tx_packets: u64,
        pub persistent_keepalive_seconds: Option<u64>,
        pub handshake_in_flight: bool,
    }
}

/// Handshake messages sent and received, and those refused by reason.
#[derive(SimpleObject, Deserialize, Clone, Debug)]
#[graphql(rename_fields = "lowercase")]
#[serde(deny_unknown_fields)]
pub struct Handshakes {
    pub initiations_sent: u64,
    pub initiations_received: u64,
    pub responses_sent: u64,
    pub responses_received: u64,
    pub cookies_sent: u64,
    pub cookies_received: u64,
    pub completed: u64,
    #[serde(deserialize_with = "by_reason")]
    pub refused: Vec<ReasonCount>,
}

object! {
    /// `show paths`.
    pub struct Paths {
        pub paths: Vec<Path>,
        /// Each peer's rule's path now.
        pub choices: Vec<Choice>,
        pub failovers: Vec<Failovers>,
        pub failovers_total: u64,
        /// The latest failovers, with the health on each side.
        pub events: Vec<Failover>,
        pub bfd: Bfd,
    }
}

object! {
    /// One WAN path and its live SLA figures.
    pub struct Path {
        pub path: String,
        pub peer: String,
        pub port: String,
        pub endpoint: String,
        pub cost: u32,
        pub bandwidth_mbps: Option<f64>,
        pub labels: Vec<String>,
        pub drained: bool,
        /// up, down, suppressed (flap damping) or unmeasured.
        pub state: String,
        pub probes: String,
        pub health: f64,
        pub rtt_ms: Rtt,
        pub jitter_ms: f64,
        pub loss_pct: f64,
        pub availability_pct: f64,
        pub damping_penalty: f64,
        pub probe_interval_ms: u64,
        pub probes_sent: u64,
        pub probes_unsent: u64,
        pub replies: u64,
        pub downs: u64,
        pub recoveries: u64,
        pub outage_seconds_total: f64,
        pub bfd: Option<String>,
        pub last_change: Option<Change>,
        pub tx_packets: u64,
        pub tx_bytes: u64,
        pub rx_packets: u64,
        pub rx_bytes: u64,
        /// The policy rules on it now, and what they match.
        pub rules: Vec<String>,
        pub applications: Vec<String>,
    }
}

object! {
    pub struct Rtt {
        pub p50: Option<f64>,
        pub p95: Option<f64>,
        pub p99: Option<f64>,
    }
}

object! {
    pub struct Change {
        pub seconds_ago: f64,
        pub unix: f64,
        pub what: String,
    }
}

object! {
    pub struct Choice {
        pub peer: String,
        pub rule: String,
        /// A path, "drop", or none yet.
        pub path: Option<String>,
        pub for_seconds: f64,
    }
}

object! {
    /// How often a rule moved from one path to another, and why.
    pub struct Failovers {
        pub rule: String,
        pub from: String,
        pub to: String,
        pub reason: String,
        pub count: u64,
    }
}

object! {
    pub struct Failover {
        pub seconds_ago: f64,
        pub rule: String,
        pub from: String,
        pub to: String,
        pub reason: String,
        pub health_before: Health,
        /// Read 10 s after.
        pub health_after: Option<Health>,
    }
}

object! {
    /// Health of the path left and the path taken.
    pub struct Health {
        pub from: Option<f64>,
        pub to: Option<f64>,
    }
}

/// `show bfd`.
#[derive(SimpleObject, Deserialize, Clone, Debug)]
#[graphql(rename_fields = "lowercase")]
#[serde(deny_unknown_fields)]
pub struct Bfd {
    pub sessions: Vec<BfdSession>,
    /// Packets refused, by reason.
    #[serde(deserialize_with = "by_reason")]
    pub refused: Vec<ReasonCount>,
}

object! {
    pub struct BfdSession {
        pub name: String,
        pub peer: String,
        pub multihop: bool,
        pub state: String,
        pub remote_state: String,
        pub diagnostic: String,
        pub remote_diagnostic: String,
        pub local_discriminator: u32,
        pub remote_discriminator: u32,
        pub tx_interval_ms: f64,
        pub detection_time_ms: f64,
        pub remote_detect_mult: u32,
        pub since_seconds: f64,
        pub changed_at_unix: f64,
        pub polling: bool,
        pub rx: u64,
        pub tx: u64,
        pub up_events: u64,
        pub down_events: u64,
        pub polls_completed: u64,
        pub send_failures: u64,
    }
}

object! {
    /// `show qos`: one class on one shaped port, summed over the workers.
    pub struct QosClass {
        pub port: String,
        pub class: String,
        pub depth: u64,
        pub enqueued: u64,
        pub sent_packets: u64,
        pub sent_bytes: u64,
        pub tail_drops: u64,
        pub codel_drops: u64,
    }
}

object! {
    /// One event: a failover, a path or BFD change, a handshake, a reload,
    /// a drain, an audit record.
    pub struct Event {
        pub seq: u64,
        pub at: f64,
        pub kind: String,
        pub message: String,
        /// What the kind adds (path, peer, rule, errors, ...).
        pub fields: Json<Value>,
    }
}

object! {
    /// `show history`: each path's and port's last 15 minutes.
    pub struct History {
        pub interval_seconds: u32,
        pub depth: u32,
        pub paths: Vec<PathHistory>,
        pub ports: Vec<PortHistory>,
    }
}

object! {
    pub struct PathHistory {
        pub name: String,
        pub samples: u32,
        pub columns: PathColumns,
    }
}

object! {
    /// Parallel columns, oldest first; null where nothing was measured.
    pub struct PathColumns {
        pub unix: Vec<f64>,
        pub rtt_p50_ms: Vec<Option<f64>>,
        pub rtt_p99_ms: Vec<Option<f64>>,
        pub loss_pct: Vec<Option<f64>>,
        pub jitter_ms: Vec<Option<f64>>,
    }
}

object! {
    pub struct PortHistory {
        pub name: String,
        pub samples: u32,
        pub columns: PortColumns,
    }
}

object! {
    pub struct PortColumns {
        pub unix: Vec<f64>,
        pub rx_pps: Vec<Option<f64>>,
        pub tx_pps: Vec<Option<f64>>,
        pub rx_mbps: Vec<Option<f64>>,
        pub tx_mbps: Vec<Option<f64>>,
    }
}

object! {
    /// The running config, secrets redacted.
    pub struct RunningConfig {
        pub file: String,
        /// The file as last applied.
        pub text: String,
        /// The effective values (docs/CONFIG.md).
        pub running: Json<Value>,
        pub drained_paths: Vec<String>,
    }
}

object! {
    /// The once-a-second figures of a dashboard.
    pub struct Figures {
        pub unix: f64,
        pub status: Status,
        pub ports: Vec<Port>,
        pub paths: Paths,
        pub peers: Tunnel,
        pub drops: Vec<Drop>,
        pub apps: Vec<Application>,
        pub qos: Vec<QosClass>,
        pub workers: Vec<Worker>,
        pub flows: FlowSummary,
    }
}

object! {
    /// A mutation's outcome. `ok` false: `error` says why, and for a
    /// rejected config `errors` lists each as file:line:col: field:
    /// message, as `patronus check` prints them.
    pub struct Outcome {
        pub ok: bool,
        pub message: Option<String>,
        pub error: Option<String>,
        pub errors: Option<Vec<String>>,
        /// reload: the snapshot applied, the fields changed, and those
        /// that wait for a restart.
        pub snapshot: Option<u64>,
        pub applied: Option<Vec<String>>,
        pub restart_required: Option<Vec<String>>,
        /// rekey: the peers a handshake started with.
        pub peers: Option<u64>,
        /// drain and undrain.
        pub path: Option<String>,
        pub drained: Option<bool>,
        pub changed: Option<bool>,
        pub rules_still_on_path: Option<Vec<String>>,
        pub other_usable_paths: Option<u64>,
    }
}

object! {
    /// Who a token is.
    pub struct WhoAmI {
        pub name: String,
        /// read or admin; none without a token (where none is needed).
        pub role: Option<String>,
    }
}

/// Reads `show`'s JSON into its type; a mismatch is the API's fault, said
/// as such (and caught by the test that queries every field).
pub fn typed<T: serde::de::DeserializeOwned>(what: &str, v: Value) -> async_graphql::Result<T> {
    serde_json::from_value(v).map_err(|e| async_graphql::Error::new(format!("internal: `show {what}` does not fit its API type: {e}")))
}
