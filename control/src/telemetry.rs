//! What the control thread exports: latency histograms merged from the
//! workers, and every counter as a Prometheus series.
//!
//! Workers record into double-buffered histograms ([`dataplane::latency`]);
//! [`LatencyBook::collect`] takes what each recorded since the last call,
//! without locks. Quantiles cover a sliding window of the last
//! [`WINDOW`]/2 to [`WINDOW`]. [`Metrics::update`] writes the counters and
//! quantiles into the `metrics` registry; the HTTP thread of [`Exporter`]
//! renders it for Prometheus. Metric names are listed in docs/METRICS.md.

use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use dataplane::counters::{DropReason, PortTotals};
use dataplane::engine::Snapshot;
use dataplane::latency::{accumulator, Slot};
use hdrhistogram::Histogram;
use metrics::{counter, describe_counter, describe_gauge, gauge, Unit};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use serde::Serialize;

use crate::histogram::{self, Buckets};

/// Quantiles are taken over at most this long (and at least half of it).
pub const WINDOW: Duration = Duration::from_secs(10);

/// The quantiles exported and shown; 1 is the maximum.
pub const QUANTILES: [f64; 6] = [0.5, 0.9, 0.95, 0.99, 0.999, 1.0];

fn quantile_label(q: f64) -> &'static str {
    match q {
        0.5 => "0.5",
        0.9 => "0.9",
        0.95 => "0.95",
        0.99 => "0.99",
        0.999 => "0.999",
        _ => "1",
    }
}

/// What a histogram measures.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Measure {
    /// Packet residence (RX burst to TX), in seconds.
    Residence,
    /// Poll-loop iteration length, in seconds.
    Iteration,
    /// Cycles per packet in a pipeline stage.
    Stage(String),
}

struct Track {
    core: u32,
    measure: Measure,
    slot: Arc<Slot>,
    /// Scratch for one take.
    delta: Histogram<u64>,
    /// The current and the previous half-window.
    cur: Histogram<u64>,
    prev: Histogram<u64>,
    /// Values ever recorded, and those at or above the stall threshold.
    total: u64,
    stalls: u64,
    /// Every value since start, in Prometheus buckets (seconds or cycles).
    hist: Buckets,
}

/// One histogram's summary, for `patronus show latency` and the exporter.
#[derive(Clone, Debug, Serialize)]
pub struct LatencyRow {
    pub core: u32,
    /// "residence", "iteration" or "stage:NAME".
    pub what: String,
    /// "seconds" or "cycles".
    pub unit: &'static str,
    /// Samples in the window.
    pub count: u64,
    /// Values at [`QUANTILES`], in `unit`.
    pub quantiles: Vec<f64>,
    /// Samples since start.
    pub total: u64,
    /// Iterations at or above the stall threshold since start (iteration only).
    pub stalls: u64,
}

/// The control thread's view of every worker's histograms.
pub struct LatencyBook {
    tracks: Vec<Track>,
    hz: f64,
    stall_cycles: u64,
    rotated: Instant,
}

impl LatencyBook {
    pub fn new(tsc_hz: u64, stall_cycles: u64) -> Self {
        LatencyBook { tracks: Vec::new(), hz: tsc_hz.max(1) as f64, stall_cycles, rotated: Instant::now() }
    }

    pub fn add(&mut self, core: u32, measure: Measure, slot: Arc<Slot>) {
        let hist = Buckets::new(if matches!(measure, Measure::Stage(_)) { histogram::STAGE_CYCLES } else { histogram::FORWARDING_SECONDS });
        self.tracks.push(Track {
            core,
            measure,
            slot,
            delta: accumulator(),
            cur: accumulator(),
            prev: accumulator(),
            total: 0,
            stalls: 0,
            hist,
        });
    }

    /// Takes what the workers recorded since the last call; slides the
    /// window.
    pub fn collect(&mut self, now: Instant) {
        let rotate = now.duration_since(self.rotated) >= WINDOW / 2;
        if rotate {
            self.rotated = now;
        }
        for t in &mut self.tracks {
            if t.slot.take(&mut t.delta) {
                t.total += t.delta.len();
                if t.measure == Measure::Iteration && self.stall_cycles > 0 {
                    t.stalls += t.delta.count_between(self.stall_cycles, u64::MAX);
                }
                let _ = t.cur.add(&t.delta);
                let scale = if matches!(t.measure, Measure::Stage(_)) { 1.0 } else { 1.0 / self.hz };
                t.hist.add_hdr(&t.delta, scale);
                t.delta.reset();
            }
            if rotate {
                std::mem::swap(&mut t.prev, &mut t.cur);
                t.cur.reset();
            }
        }
    }

    /// Summaries of every histogram.
    pub fn rows(&self) -> Vec<LatencyRow> {
        let mut window = accumulator();
        self.tracks
            .iter()
            .map(|t| {
                window.reset();
                let _ = window.add(&t.prev);
                let _ = window.add(&t.cur);
                let (what, unit, scale) = match &t.measure {
                    Measure::Residence => ("residence".to_owned(), "seconds", 1.0 / self.hz),
                    Measure::Iteration => ("iteration".to_owned(), "seconds", 1.0 / self.hz),
                    Measure::Stage(s) => (format!("stage:{s}"), "cycles", 1.0),
                };
                let quantiles = if window.is_empty() {
                    vec![0.0; QUANTILES.len()]
                } else {
                    QUANTILES.iter().map(|&q| window.value_at_quantile(q) as f64 * scale).collect()
                };
                LatencyRow { core: t.core, what, unit, count: window.len(), quantiles, total: t.total, stalls: t.stalls }
            })
            .collect()
    }

    /// The Prometheus histograms of every track since start:
    /// `patronus_packet_residence_seconds`,
    /// `patronus_loop_iteration_duration_seconds` and
    /// `patronus_stage_packet_cycles`.
    pub fn render_histograms(&self) -> String {
        const FAMILIES: [(&str, &str); 3] = [
            (
                "patronus_packet_residence_seconds",
                "Packet residence, RX burst to TX burst (one TX burst in [worker] latency_every), per core.",
            ),
            ("patronus_loop_iteration_duration_seconds", "Poll-loop iteration lengths (sampled, and every stall), per core."),
            ("patronus_stage_packet_cycles", "TSC cycles per packet in a pipeline stage, per core and stage."),
        ];
        let family = |m: &Measure| match m {
            Measure::Residence => 0,
            Measure::Iteration => 1,
            Measure::Stage(_) => 2,
        };
        let mut out = String::new();
        for (k, (name, help)) in FAMILIES.iter().enumerate() {
            let mut tracks = self.tracks.iter().filter(|t| family(&t.measure) == k).peekable();
            if tracks.peek().is_some() {
                histogram::header(name, help, &mut out);
            }
            for t in tracks {
                let mut labels = vec![("core", t.core.to_string())];
                if let Measure::Stage(stage) = &t.measure {
                    labels.push(("stage", stage.clone()));
                }
                t.hist.render(name, &labels, &mut out);
            }
        }
        out
    }

    /// Stalls counted on `core` since start.
    pub fn stalls(&self, core: u32) -> u64 {
        self.tracks.iter().filter(|t| t.core == core && t.measure == Measure::Iteration).map(|t| t.stalls).sum()
    }
}

/// Reload bookkeeping, exported and shown (the API's `Status.reloads`).
#[derive(Clone, Debug, Default, Serialize, serde::Deserialize, async_graphql::SimpleObject)]
#[graphql(rename_fields = "lowercase")]
#[serde(deny_unknown_fields)]
pub struct ReloadStats {
    /// Reloads that applied.
    pub ok: u64,
    pub failed: u64,
    /// Unix time of the last attempt, and whether it applied.
    pub last_at: Option<f64>,
    pub last_ok: Option<bool>,
    pub last_error: Option<String>,
    /// Fields changed in the file that wait for a restart.
    pub restart_pending: Vec<String>,
}

pub fn unix_now() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64())
}

/// Static facts about a port, exported as `patronus_port_info`.
#[derive(Clone, Debug, Serialize)]
pub struct PortInfo {
    pub name: String,
    pub device: String,
    pub driver: String,
    pub role: String,
    pub mac: String,
}

/// Writes the appliance's state into the `metrics` registry.
pub struct Metrics {
    ports: Vec<PortInfo>,
    cores: Vec<String>,
    prev: Option<Snapshot>,
}

impl Metrics {
    /// Describes every series (HELP and unit) and sets the constant ones.
    pub fn new(ports: Vec<PortInfo>, cores: &[u32], stall: Duration) -> Self {
        describe();
        gauge!("patronus_build_info", "version" => env!("CARGO_PKG_VERSION"), "dpdk" => dataplane::dpdk::version()).set(1.0);
        gauge!("patronus_start_time_seconds").set(unix_now());
        gauge!("patronus_worker_stall_threshold_seconds").set(stall.as_secs_f64());
        for p in &ports {
            gauge!("patronus_port_info", "port" => p.name.clone(), "device" => p.device.clone(), "driver" => p.driver.clone(),
                "role" => p.role.clone(), "mac" => p.mac.clone())
            .set(1.0);
        }
        Metrics { ports, cores: cores.iter().map(|c| c.to_string()).collect(), prev: None }
    }

    /// Sets every series from a counter snapshot, the latency book and the
    /// reload state.
    pub fn update(&mut self, snap: &Snapshot, book: &LatencyBook, reloads: &ReloadStats) {
        histogram::publish("latency", book.render_histograms());
        let per_core = snap.workers.iter().map(|w| &w.ports).chain(std::iter::once(&snap.control));
        let labels = self.cores.iter().map(String::as_str).chain(std::iter::once("control"));
        for (core, ports) in labels.zip(per_core) {
            for (info, t) in self.ports.iter().zip(ports) {
                port_series(core, &info.name, t);
            }
        }
        for (info, e) in self.ports.iter().zip(&snap.eth) {
            let port = info.name.clone();
            counter!("patronus_nic_packets_total", "port" => port.clone(), "direction" => "rx").absolute(e.ipackets);
            counter!("patronus_nic_packets_total", "port" => port.clone(), "direction" => "tx").absolute(e.opackets);
            counter!("patronus_nic_bytes_total", "port" => port.clone(), "direction" => "rx").absolute(e.ibytes);
            counter!("patronus_nic_bytes_total", "port" => port.clone(), "direction" => "tx").absolute(e.obytes);
            counter!("patronus_nic_errors_total", "port" => port.clone(), "direction" => "rx").absolute(e.ierrors);
            counter!("patronus_nic_errors_total", "port" => port.clone(), "direction" => "tx").absolute(e.oerrors);
            counter!("patronus_nic_missed_packets_total", "port" => port.clone()).absolute(e.imissed);
            counter!("patronus_nic_rx_nombuf_total", "port" => port).absolute(e.rx_nombuf);
        }
        for (i, w) in snap.workers.iter().enumerate() {
            let core = self.cores[i].clone();
            counter!("patronus_worker_polls_total", "core" => core.clone()).absolute(w.polls);
            counter!("patronus_worker_sleeps_total", "core" => core.clone()).absolute(w.sleeps);
            counter!("patronus_worker_stalls_total", "core" => core.clone()).absolute(book.stalls(w.lcore));
            counter!("patronus_worker_handoff_packets_total", "core" => core.clone(), "direction" => "out").absolute(w.handoff_out);
            counter!("patronus_worker_handoff_packets_total", "core" => core.clone(), "direction" => "in").absolute(w.handoff_in);
            if let Some(p) = self.prev.as_ref().and_then(|p| p.workers.get(i)) {
                let span = snap.tsc.wrapping_sub(self.prev.as_ref().map_or(0, |p| p.tsc));
                if span > 0 {
                    gauge!("patronus_worker_busy_ratio", "core" => core)
                        .set(w.busy_cycles.wrapping_sub(p.busy_cycles) as f64 / span as f64);
                }
            }
        }
        for row in book.rows() {
            let core = row.core.to_string();
            for (q, v) in QUANTILES.iter().zip(&row.quantiles) {
                let ql = quantile_label(*q);
                match row.what.strip_prefix("stage:") {
                    Some(stage) => {
                        gauge!("patronus_stage_cycles_per_packet", "core" => core.clone(), "stage" => stage.to_owned(), "quantile" => ql)
                            .set(*v)
                    }
                    None if row.what == "residence" => {
                        gauge!("patronus_residence_seconds", "core" => core.clone(), "quantile" => ql).set(*v)
                    }
                    None => gauge!("patronus_loop_iteration_seconds", "core" => core.clone(), "quantile" => ql).set(*v),
                }
            }
        }
        counter!("patronus_config_reloads_total").absolute(reloads.ok);
        counter!("patronus_config_reload_failures_total").absolute(reloads.failed);
        if let Some(at) = reloads.last_at {
            gauge!("patronus_config_last_reload_timestamp_seconds").set(at);
        }
        gauge!("patronus_config_last_reload_success").set(if reloads.last_ok == Some(false) { 0.0 } else { 1.0 });
        gauge!("patronus_config_restart_pending_fields").set(reloads.restart_pending.len() as f64);
        if let Some(rss) = resident_bytes() {
            gauge!("patronus_resident_memory_bytes").set(rss as f64);
        }
        self.prev = Some(snap.clone());
    }
}

fn port_series(core: &str, port: &str, t: &PortTotals) {
    let (c, p) = (core.to_owned(), port.to_owned());
    counter!("patronus_packets_total", "core" => c.clone(), "port" => p.clone(), "direction" => "rx").absolute(t.rx_packets);
    counter!("patronus_packets_total", "core" => c.clone(), "port" => p.clone(), "direction" => "tx").absolute(t.tx_packets);
    counter!("patronus_bytes_total", "core" => c.clone(), "port" => p.clone(), "direction" => "rx").absolute(t.rx_bytes);
    counter!("patronus_bytes_total", "core" => c.clone(), "port" => p.clone(), "direction" => "tx").absolute(t.tx_bytes);
    counter!("patronus_punted_packets_total", "core" => c.clone(), "port" => p.clone()).absolute(t.punted);
    counter!("patronus_icmp_errors_sent_total", "core" => c.clone(), "port" => p.clone()).absolute(t.icmp_errors);
    for r in DropReason::ALL {
        counter!("patronus_drops_total", "core" => c.clone(), "port" => p.clone(), "reason" => r.name()).absolute(t.drops[*r as usize]);
    }
}

/// Resident set size of this process, from /proc/self/statm.
pub fn resident_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    // SAFETY: sysconf has no preconditions.
    Some(pages * unsafe { libc::sysconf(libc::_SC_PAGESIZE) }.max(1) as u64)
}

fn describe() {
    describe_gauge!("patronus_build_info", "Always 1; labels give the Patronus and DPDK versions.");
    describe_gauge!("patronus_start_time_seconds", Unit::Seconds, "Unix time the appliance started.");
    describe_gauge!("patronus_resident_memory_bytes", Unit::Bytes, "Resident memory of the process (DPDK memory included once touched).");
    describe_gauge!("patronus_port_info", "Always 1; labels describe each configured port.");
    describe_counter!(
        "patronus_packets_total",
        Unit::Count,
        "Packets received (direction=rx) and sent (tx), per core and port, as the workers count them."
    );
    describe_counter!("patronus_bytes_total", Unit::Bytes, "Frame bytes received and sent, per core and port, as the workers count them.");
    describe_counter!("patronus_drops_total", Unit::Count, "Packets dropped, per core, port and reason (see docs/CONFIG.md for reasons).");
    describe_counter!(
        "patronus_punted_packets_total",
        Unit::Count,
        "Packets handed to the control thread (ARP, ND, neighbour resolution)."
    );
    describe_counter!("patronus_icmp_errors_sent_total", Unit::Count, "Packets answered with an ICMP error.");
    describe_counter!("patronus_nic_packets_total", Unit::Count, "Packets the NIC received and sent (rte_eth_stats).");
    describe_counter!("patronus_nic_bytes_total", Unit::Bytes, "Bytes the NIC received and sent (rte_eth_stats).");
    describe_counter!("patronus_nic_errors_total", Unit::Count, "Receive and transmit errors the NIC reports.");
    describe_counter!(
        "patronus_nic_missed_packets_total",
        Unit::Count,
        "Packets the NIC dropped because its RX ring was full (net_af_packet: the kernel ring's drops)."
    );
    describe_counter!("patronus_nic_rx_nombuf_total", Unit::Count, "RX mbuf allocation failures.");
    describe_counter!("patronus_worker_polls_total", Unit::Count, "Poll-loop iterations per worker.");
    describe_counter!("patronus_worker_sleeps_total", Unit::Count, "Adaptive-mode naps per worker.");
    describe_counter!(
        "patronus_worker_handoff_packets_total",
        Unit::Count,
        "Packets a worker handed to the worker owning their flow (out) or took from others (in); a full ring is the drop reason handoff_full."
    );
    describe_gauge!("patronus_worker_flows_active", Unit::Count, "Flows in each worker's table.");
    describe_counter!(
        "patronus_worker_stalls_total",
        Unit::Count,
        "Poll-loop iterations at least patronus_worker_stall_threshold_seconds long."
    );
    describe_gauge!("patronus_worker_stall_threshold_seconds", Unit::Seconds, "Iteration length counted as a stall ([worker] stall_us).");
    describe_gauge!(
        "patronus_worker_busy_ratio",
        "Fraction of TSC time each worker spent on iterations that received packets, over the last interval."
    );
    describe_gauge!(
        "patronus_residence_seconds",
        Unit::Seconds,
        "Packet residence (RX burst to TX burst) quantiles over the last 5-10 s; quantile=\"1\" is the maximum."
    );
    describe_gauge!(
        "patronus_loop_iteration_seconds",
        Unit::Seconds,
        "Poll-loop iteration length quantiles over the last 5-10 s; quantile=\"1\" is the maximum."
    );
    describe_gauge!("patronus_stage_cycles_per_packet", "TSC cycles per packet spent in a pipeline stage, quantiles over the last 5-10 s.");
    describe_counter!("patronus_config_reloads_total", Unit::Count, "Config reloads that applied.");
    describe_counter!("patronus_config_reload_failures_total", Unit::Count, "Config reloads rejected (the running config stayed).");
    describe_counter!("patronus_api_refused_total", Unit::Count, "API requests refused, by reason (auth, rate, origin, role).");
    describe_gauge!("patronus_config_last_reload_timestamp_seconds", Unit::Seconds, "Unix time of the last reload attempt.");
    describe_gauge!("patronus_config_last_reload_success", "1 if the last reload applied (or none was tried), 0 if it was rejected.");
    describe_gauge!(
        "patronus_config_restart_pending_fields",
        Unit::Count,
        "Fields changed in the config file that need a restart to apply."
    );
}

/// The process-wide Prometheus recorder (installed once).
fn handle() -> Result<&'static PrometheusHandle, String> {
    static HANDLE: OnceLock<Result<PrometheusHandle, String>> = OnceLock::new();
    HANDLE.get_or_init(|| PrometheusBuilder::new().install_recorder().map_err(|e| e.to_string())).as_ref().map_err(Clone::clone)
}

/// Installs the recorder without serving it (so series are kept even when
/// the endpoint is off).
pub fn install() -> Result<(), String> {
    handle().map(|_| ())
}

/// The text Prometheus scrapes.
pub fn render() -> String {
    handle().map(exposition).unwrap_or_default()
}

/// The registry's series, then the histograms the control thread rendered.
fn exposition(h: &PrometheusHandle) -> String {
    h.render() + &histogram::rendered()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_book_merges_workers_histograms_into_quantiles_and_counts_stalls() {
        let hz = 1_000_000_000; // 1 cycle = 1 ns
        let mut book = LatencyBook::new(hz, 50_000);
        let slot = Slot::new("iteration");
        let mut rec = slot.recorder();
        book.add(3, Measure::Iteration, slot.clone());
        for _ in 0..99 {
            rec.record_n(1_000, 1);
        }
        rec.record_n(80_000, 1); // an 80 µs stall
                                 // Two collections: the first moves the worker to the other buffer.
        book.collect(Instant::now());
        rec.sync();
        book.collect(Instant::now());
        let rows = book.rows();
        assert_eq!(rows.len(), 1);
        let r = &rows[0];
        assert_eq!((r.core, r.what.as_str(), r.unit, r.count, r.total, r.stalls), (3, "iteration", "seconds", 100, 100, 1));
        assert!((r.quantiles[0] - 1e-6).abs() < 1e-8, "p50 {:?}", r.quantiles);
        assert!((r.quantiles[5] - 80e-6).abs() < 1e-7, "max {:?}", r.quantiles);
        assert_eq!(book.stalls(3), 1);
    }

    #[test]
    fn the_window_forgets_old_samples() {
        let mut book = LatencyBook::new(1_000, 0);
        let slot = Slot::new("residence");
        let mut rec = slot.recorder();
        book.add(1, Measure::Residence, slot.clone());
        rec.record_n(5, 10);
        let t0 = Instant::now();
        book.collect(t0);
        rec.sync();
        book.collect(t0);
        assert_eq!(book.rows()[0].count, 10);
        book.collect(t0 + WINDOW / 2);
        assert_eq!(book.rows()[0].count, 10, "in the previous half");
        book.collect(t0 + WINDOW);
        assert_eq!(book.rows()[0].count, 0, "out of the window");
        assert_eq!(book.rows()[0].total, 10);
    }
}

/// Flow-table and classification series, summed over the workers.
/// QoS series from `show qos` rows (one per shaped port and class).
pub fn qos_series(rows: &[serde_json::Value]) {
    for r in rows {
        let (port, class) = (r["port"].as_str().unwrap_or("").to_owned(), r["class"].as_str().unwrap_or("").to_owned());
        let n = |k: &str| r[k].as_u64().unwrap_or(0);
        metrics::gauge!("patronus_qos_queue_depth", "port" => port.clone(), "class" => class.clone()).set(n("depth") as f64);
        metrics::counter!("patronus_qos_bytes_total", "port" => port.clone(), "class" => class.clone()).absolute(n("sent_bytes"));
        metrics::counter!("patronus_qos_packets_total", "port" => port.clone(), "class" => class.clone()).absolute(n("sent_packets"));
        for (reason, key) in [("queue_full", "tail_drops"), ("codel", "codel_drops")] {
            metrics::counter!("patronus_qos_drops_total", "port" => port.clone(), "class" => class.clone(), "reason" => reason)
                .absolute(n(key));
        }
    }
}

/// Flow and DPI series; `cores` names each worker's lcore, in worker order.
pub fn flow_series(flows: &[std::sync::Arc<dataplane::flow::stage::FlowCounters>], cores: &[u32], dpi: &dataplane::dpi::Dpi) {
    use dataplane::flow::stage::FlowCounters;
    let sum = |f: fn(&FlowCounters) -> u64| flows.iter().map(|c| f(c)).sum::<u64>();
    gauge!("patronus_flows_active").set(sum(|c| c.active.get()) as f64);
    for (c, core) in flows.iter().zip(cores) {
        gauge!("patronus_worker_flows_active", "core" => core.to_string()).set(c.active.get() as f64);
    }
    counter!("patronus_flows_total", "event" => "created").absolute(sum(|c| c.created.get()));
    counter!("patronus_flows_total", "event" => "expired").absolute(sum(|c| c.expired.get()));
    counter!("patronus_flows_total", "event" => "closed").absolute(sum(|c| c.closed.get()));
    counter!("patronus_flows_total", "event" => "evicted").absolute(sum(|c| c.evicted.get()));
    counter!("patronus_dpi_inspected_packets_total").absolute(sum(|c| c.inspected.get()));
    counter!("patronus_dpi_unparsed_packets_total").absolute(sum(|c| c.unparsed.get()));
    counter!("patronus_dpi_reassembly_overflows_total").absolute(sum(|c| c.reasm_overflows.get()));
    for t in app_totals(flows, dpi) {
        if t.flows > 0 {
            counter!("patronus_dpi_flows_total", "application" => t.name.to_owned(), "category" => t.category).absolute(t.flows);
        }
        if t.packets > 0 {
            counter!("patronus_application_packets_total", "application" => t.name.to_owned(), "category" => t.category)
                .absolute(t.packets);
            counter!("patronus_application_bytes_total", "application" => t.name.to_owned(), "category" => t.category).absolute(t.bytes);
        }
    }
}

/// One application's figures, summed over the workers.
pub struct AppTotals<'a> {
    pub id: dataplane::vocab::AppId,
    pub category_id: dataplane::vocab::Category,
    pub name: &'a str,
    pub category: &'static str,
    /// Flows decided as this application.
    pub flows: u64,
    pub packets: u64,
    pub bytes: u64,
}

/// Every application with a flow or a packet, summed over the workers
/// (for `show apps` and the exporter).
pub fn app_totals<'a>(flows: &[std::sync::Arc<dataplane::flow::stage::FlowCounters>], dpi: &'a dataplane::dpi::Dpi) -> Vec<AppTotals<'a>> {
    use dataplane::flow::stage::COUNTED_APPS;
    let sum = |f: &dyn Fn(&dataplane::flow::stage::FlowCounters) -> u64| flows.iter().map(|c| f(c)).sum::<u64>();
    dpi.apps
        .iter()
        .enumerate()
        .take(COUNTED_APPS)
        .map(|(id, app)| AppTotals {
            id: id as dataplane::vocab::AppId,
            category_id: app.category,
            name: &app.name,
            category: app.category.name(),
            flows: sum(&|c| c.apps[id].get()),
            packets: sum(&|c| c.app_traffic[id].packets.get()),
            bytes: sum(&|c| c.app_traffic[id].bytes.get()),
        })
        .filter(|t| t.flows > 0 || t.packets > 0)
        .collect()
}
