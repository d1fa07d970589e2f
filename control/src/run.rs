//! `patronus run`: start the engine from a config, then run the control
//! thread until a signal or `--duration`: the slow path (ARP, ND), reloads
//! (SIGHUP, `patronus reload`, file watch), the control socket's requests,
//! latency collection, metrics and the periodic summary.
//!
//! Threads: the workers (one per worker lcore, started by EAL), this
//! control thread (the main lcore), and two small server threads pinned to
//! the main lcore's CPU: the control socket and the metrics endpoint. Only
//! the control thread reads or changes the running state; the servers hand
//! it requests over a channel ([`crate::ctl`]) or render the metrics
//! registry it fills ([`crate::telemetry`]).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use crossbeam_channel::{Receiver, RecvTimeoutError};
use dataplane::chain::{self, ChainConf};
use dataplane::dpdk;
use dataplane::engine::Engine;
use dataplane::flow::stage::{DpiSnapshot, FlowCounters};
use dataplane::latency::Slot;
use dataplane::rcu::Publisher;
use dataplane::wire::EthernetAddress;
use serde_json::{json, Value};

use crate::config::{Config, ConfigErrors, PollModeName};
use crate::ctl::{self, Call, Reply, Request};
use crate::reload;
use crate::slowpath::SlowPath;
use crate::snapshots;
use crate::stats::{final_report, summary_line, CpuMeter};
use crate::telemetry::{self, LatencyBook, Measure, Metrics, PortInfo, ReloadStats};
use crate::tunnel::TunnelControl;

/// How long the control thread waits for work when it serves routed ports
/// (ARP, ND and packets waiting for a neighbour come through it) ...
const SLOW_PATH_TICK: Duration = Duration::from_millis(1);
/// ... when it only watches signals, requests and statistics ...
const TICK: Duration = Duration::from_millis(20);
/// ... and while a reload waits for the workers to adopt it.
const ADOPT_TICK: Duration = Duration::from_micros(100);

/// How often worker histograms are collected, and metrics refreshed.
const COLLECT_EVERY: Duration = Duration::from_millis(100);
const METRICS_EVERY: Duration = Duration::from_secs(1);
/// How often the config file is checked with `[control] watch`.
const WATCH_EVERY: Duration = Duration::from_secs(1);

/// Options of `patronus run` beyond the config.
#[derive(Clone, Debug, Default)]
pub struct RunOptions {
    /// Stop by itself after this long (otherwise on SIGINT/SIGTERM).
    pub duration: Option<Duration>,
}

/// Exit status: everything worked.
pub const EXIT_OK: i32 = 0;
/// Exit status: a runtime failure (EAL, device, leak).
pub const EXIT_FAILURE: i32 = 1;

pub(crate) fn mac(m: &[u8; 6]) -> String {
    m.iter().map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(":")
}

struct Signals {
    stop: Arc<AtomicBool>,
    hup: Arc<AtomicBool>,
}

/// SIGINT/SIGTERM: the first asks for a clean stop, a second one exits at
/// once. SIGHUP: reload.
fn signals() -> std::io::Result<Signals> {
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register_conditional_shutdown(sig, 130, stop.clone())?;
        signal_hook::flag::register(sig, stop.clone())?;
    }
    let hup = Arc::new(AtomicBool::new(false));
    signal_hook::flag::register(signal_hook::consts::SIGHUP, hup.clone())?;
    Ok(Signals { stop, hup })
}

/// Keeps freed memory in the process: returning it to the kernel (munmap,
/// heap trimming) interrupts every worker of this process with a TLB
/// shootdown, and reloads free whole route tables.
fn keep_heap() {
    // SAFETY: mallopt only tunes glibc's allocator.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 64 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, i32::MAX);
    }
}

/// The CPU the main lcore runs on (where the server threads go).
fn main_cpu(cfg: &Config) -> usize {
    let cpu_map = cfg.parse_cpu_map().unwrap_or_default();
    cpu_map.iter().find(|(l, _)| *l == cfg.eal.main_lcore).map_or(cfg.eal.main_lcore, |(_, c)| *c) as usize
}

/// Replaces `path` with `text` so that a reader sees the old file or the
/// new one, never a part: a temporary file beside it (same mode), synced,
/// renamed over it, and the directory synced.
fn write_atomically(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::PermissionsExt;
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let tmp = dir.join(format!(".{name}.patronus-new"));
    let mode = std::fs::metadata(path).map(|m| m.permissions().mode() & 0o7777).unwrap_or(0o644);
    let result = (|| {
        let mut f = std::fs::OpenOptions::new().write(true).create(true).truncate(true).open(&tmp)?;
        f.set_permissions(std::fs::Permissions::from_mode(mode))?;
        f.write_all(text.as_bytes())?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)?;
        std::fs::File::open(dir)?.sync_all()
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// Identifies a version of the config file without reading it.
fn file_stamp(path: &Path) -> Option<(SystemTime, u64)> {
    let m = std::fs::metadata(path).ok()?;
    Some((m.modified().ok()?, m.len()))
}

/// A reload reply waiting for every worker to adopt its snapshot.
pub(crate) struct Pending {
    version: u64,
    deadline: Instant,
    reply: Option<Reply>,
    body: Value,
}

/// Everything the control thread owns while the appliance runs.
pub(crate) struct Control {
    pub(crate) cfg: Config,
    pub(crate) path: PathBuf,
    pub(crate) engine: Engine,
    pub(crate) slowpath: SlowPath,
    pub(crate) macs: Vec<EthernetAddress>,
    pub(crate) names: Vec<String>,
    pub(crate) book: LatencyBook,
    pub(crate) metrics: Metrics,
    pub(crate) reloads: ReloadStats,
    pending: Vec<Pending>,
    pub(crate) started: Instant,
    pub(crate) stamp: Option<(SystemTime, u64)>,
    /// The signatures the workers classify with.
    pub(crate) dpi: Publisher<DpiSnapshot>,
    pub(crate) tunnel: TunnelControl,
    pub(crate) paths: crate::paths::PathControl,
    /// Bumped on every reload that recompiles the policy.
    pub(crate) policy_generation: u32,
    /// Application ids, kept across reloads so counters follow names.
    pub(crate) app_ids: dataplane::dpi::AppIds,
    /// What the running classification was compiled from (see
    /// [`snapshots::classification_sources`]).
    pub(crate) dpi_key: String,
    pub(crate) flows: Vec<Arc<FlowCounters>>,
    /// The text of the config running (the file as last applied).
    pub(crate) cfg_text: String,
    /// The last 15 minutes of each path and port, for the dashboard.
    pub(crate) history: crate::api::history::History,
}

/// Runs the appliance until a signal or `opts.duration`; returns the exit status.
pub fn run(cfg: &Config, config_path: &Path, opts: &RunOptions) -> i32 {
    let sig = match signals() {
        Ok(s) => s,
        Err(e) => {
            tracing::error!("cannot install signal handlers: {e}");
            return EXIT_FAILURE;
        }
    };
    keep_heap();
    match start(cfg, config_path) {
        Ok(Started { control, calls, server, api }) => {
            let status = control.run(&sig, &calls, opts);
            drop(server);
            drop(api);
            status
        }
        Err(e) => {
            tracing::error!("{e}");
            EXIT_FAILURE
        }
    }
}

/// The running appliance and its servers, once start-up succeeded.
struct Started {
    control: Control,
    calls: Receiver<Call>,
    server: Option<ctl::Server>,
    api: Option<crate::api::Server>,
}

/// Shuts the engine down when start-up fails after EAL came up, on
/// whichever error path: declared before everything that holds the
/// engine's rings or mbufs, it is dropped after them.
struct EngineGuard(Option<Engine>);

impl EngineGuard {
    fn get(&mut self) -> &mut Engine {
        self.0.as_mut().expect("the engine until start-up ends")
    }

    fn release(mut self) -> Engine {
        self.0.take().expect("the engine until start-up ends")
    }
}

impl Drop for EngineGuard {
    fn drop(&mut self) {
        if let Some(engine) = self.0.take() {
            engine.shutdown();
        }
    }
}

/// Brings the engine, the servers and the control state up, and launches
/// the workers. An error names the config file where it comes from it.
fn start(cfg: &Config, config_path: &Path) -> Result<Started, String> {
    let at_file = |e: &dyn std::fmt::Display| format!("{}: {e}", config_path.display());
    let stamp = file_stamp(config_path);
    // The interfaces vdevs open: a missing one is named here, not as
    // DPDK's "rte_dev_probe failed: Operation not permitted".
    for f in crate::envcheck::interfaces(cfg, &crate::envcheck::here()) {
        let text = match &f.fix {
            Some(fix) => format!("{}; fix: {fix}", f.what),
            None => f.what.clone(),
        };
        match f.level {
            crate::envcheck::Level::Problem => return Err(at_file(&text)),
            crate::envcheck::Level::Warning => tracing::warn!("{text}"),
            crate::envcheck::Level::Ok => {}
        }
    }
    let mut guard = EngineGuard(Some(Engine::init(&cfg.engine_spec()).map_err(|e| at_file(&e))?));
    let engine = guard.get();
    for note in engine.notes() {
        tracing::warn!("{note}");
    }
    let infos = port_infos(cfg, engine);
    let macs: Vec<EthernetAddress> = engine.ports().iter().map(|p| EthernetAddress(p.mac)).collect();
    let routes = snapshots::routes(cfg, &macs).map_err(|e| at_file(&e))?;
    for f in &routes.ifaces {
        let addrs: Vec<String> = f.v4.iter().map(|(a, l)| format!("{a}/{l}")).chain(f.v6.iter().map(|(a, l)| format!("{a}/{l}"))).collect();
        tracing::info!("interface {} on {} (mtu {}): {}", f.name, cfg.port[f.port as usize].name, f.mtu, addrs.join(" "));
    }

    // Servers first: a port or socket clash stops the start before workers run.
    if let Err(e) = telemetry::install() {
        tracing::error!("cannot install the metrics recorder: {e}");
    }
    let cpu = Some(main_cpu(cfg));
    let (call_tx, calls) = crossbeam_channel::unbounded::<Call>();
    let reply_timeout = Duration::from_millis(cfg.control.reload_timeout_ms as u64) + Duration::from_secs(5);
    let api = cfg
        .api_conf(config_path)
        .map(|a| crate::api::Server::start(a, cpu, call_tx.clone(), reply_timeout))
        .transpose()
        .map_err(|e| at_file(&e))?;
    let server = cfg.socket_path().map(|p| ctl::Server::start(&p, cpu, call_tx, reply_timeout)).transpose().map_err(|e| at_file(&e))?;

    let mut app_ids = dataplane::dpi::AppIds::default();
    let workers = cfg.eal.worker_lcores.len();
    let dpi = Publisher::new(snapshots::classification(cfg, config_path, &mut app_ids, 1, workers).map_err(|e| e.to_string())?);
    if cfg.dpi.enabled {
        tracing::info!(
            "classifying with {} applications, {} flows per worker, decision within {} packets per direction",
            dpi.current().dpi.apps.len() - 1,
            cfg.dpi.flows.next_power_of_two(),
            cfg.dpi.max_packets
        );
    }
    let engine = guard.get();
    let slowpath = SlowPath::new(routes, cfg.neighbor_conf(), engine.punt_rings(), cfg.port.len());
    let hz = engine.tsc_hz();
    let dir = snapshots::config_dir(config_path);
    let tunnel =
        TunnelControl::new(&cfg.tunnel, &dir, cfg.private_key_path(config_path).as_deref(), hz, dpdk::tsc()).map_err(|e| at_file(&e))?;
    if tunnel.enabled() {
        tracing::info!(
            "tunnel: public key {}, listening on UDP {}, {} peer(s)",
            tunnel.public_key(),
            tunnel.listen_port(),
            cfg.tunnel.peer.len()
        );
    }
    let paths = crate::paths::PathControl::new(cfg, &tunnel, hz);
    if !cfg.path.is_empty() || !cfg.bfd.is_empty() {
        tracing::info!("paths: {} path(s), {} policy rule(s), {} BFD session(s)", cfg.path.len(), cfg.policy.len(), cfg.bfd.len());
    }
    let lcores = engine.worker_lcores();
    let flows: Vec<Arc<FlowCounters>> = lcores.iter().map(|_| Arc::default()).collect();
    let mut book = LatencyBook::new(hz, engine.stall_cycles());
    for (lcore, slots) in engine.latency_slots() {
        book.add(lcore, Measure::Residence, slots[0].clone());
        book.add(lcore, Measure::Iteration, slots[1].clone());
    }
    for (i, p) in cfg.port.iter().enumerate() {
        if let Some(q) = &p.qos {
            let conf = q.conf();
            tracing::info!(
                "port {} shaped to {} Mbit/s (priority cap {}%), 6 classes",
                p.name,
                conf.rate_bps as f64 / 1e6,
                conf.priority_cap_pct
            );
            engine.set_port_qos(i as u16, conf);
        }
    }
    let chain_conf = ChainConf {
        classify: cfg.dpi.enabled,
        flows: cfg.dpi.flow_conf(),
        trusted_ports: cfg.port.iter().enumerate().filter(|(_, p)| p.trust_dscp).map(|(i, _)| i as u16).collect(),
        bfd: paths.bfd_enabled(),
        hz,
        latency_every: cfg.worker.latency_sample,
        spread: engine.spread(),
        dns: dataplane::dpi::DnsCache::new(cfg.dpi.flow_conf().dns_cache),
    };
    let sources = snapshots::Publishers { slowpath: &slowpath, tunnel: &tunnel, paths: &paths, dpi: &dpi };
    let mut stage_slots = Vec::new();
    let launched = engine.launch(|i, _| -> chain::Appliance {
        let slot = Slot::new("forward");
        stage_slots.push((lcores[i], slot.clone()));
        chain::appliance(&sources, &chain_conf, i, flows[i].clone(), &slot)
    });
    for (lcore, slot) in stage_slots {
        book.add(lcore, Measure::Stage("forward".into()), slot);
    }
    if let Err(e) = launched {
        engine.stop_workers();
        return Err(e.to_string());
    }
    let mode = match cfg.worker.poll_mode {
        PollModeName::Poll => "busy polling",
        PollModeName::Adaptive => "adaptive polling",
    };
    tracing::info!(
        "running: {} worker(s) on lcore(s) {:?} ({mode}), control on lcore {}; Ctrl-C stops, SIGHUP reloads",
        cfg.eal.worker_lcores.len(),
        cfg.eal.worker_lcores,
        cfg.eal.main_lcore
    );
    tracing::info!("stage chain: {}", chain::STAGES.join(" > "));
    if let Some(s) = &server {
        tracing::info!("control socket {}", s.path().display());
    }
    if let Some(x) = &api {
        tracing::info!("metrics on {}metrics", x.url());
        tracing::info!("dashboard on {} (API: {}graphql)", x.url(), x.url());
    }

    let metrics = Metrics::new(infos, &lcores, Duration::from_micros(cfg.worker.stall_us as u64));
    let control = Control {
        cfg: cfg.clone(),
        path: config_path.to_owned(),
        names: cfg.port.iter().map(|p| p.name.clone()).collect(),
        engine: guard.release(),
        slowpath,
        macs,
        book,
        metrics,
        reloads: ReloadStats::default(),
        pending: Vec::new(),
        started: Instant::now(),
        stamp,
        dpi,
        app_ids,
        dpi_key: snapshots::classification_sources(cfg, config_path),
        flows,
        tunnel,
        paths,
        policy_generation: 1,
        cfg_text: crate::config::read_text(config_path).unwrap_or_default(),
        history: Default::default(),
    };
    Ok(Started { control, calls, server, api })
}

/// Logs each port and returns what the metrics say of it.
fn port_infos(cfg: &Config, engine: &Engine) -> Vec<PortInfo> {
    let mut infos = Vec::new();
    for (p, c) in engine.ports().iter().zip(&cfg.port) {
        tracing::info!(
            "port {} = {} (driver {}, mac {}{}), role {}, {} RX / {} TX queues, rings {}/{}{}",
            c.name,
            c.device,
            p.info.driver,
            mac(&p.mac),
            if p.info.rx_ipv4_checksum { ", IPv4 checksum offload" } else { "" },
            c.role.name(),
            p.rx_queues,
            p.tx_queues,
            p.rx_desc,
            p.tx_desc,
            c.forward.as_ref().map(|f| format!(", forwards to {f}")).unwrap_or_default()
        );
        infos.push(PortInfo {
            name: c.name.clone(),
            device: c.device.clone(),
            driver: p.info.driver.clone(),
            role: c.role.name().into(),
            mac: mac(&p.mac),
        });
    }
    infos
}

impl Control {
    fn run(mut self, sig: &Signals, calls: &Receiver<Call>, opts: &RunOptions) -> i32 {
        let first = self.engine.snapshot();
        let mut prev = first.clone();
        let mut prev_at = self.started;
        let mut cpu = CpuMeter::new(&first);
        let mut cpu_total = CpuMeter::new(&first);
        let (mut collected, mut exported, mut watched) = (self.started, self.started, self.started);
        self.metrics.update(&first, &self.book, &self.reloads);

        while !sig.stop.load(Ordering::Relaxed) && opts.duration.is_none_or(|d| self.started.elapsed() < d) {
            let now = Instant::now();
            let busy = self.slowpath.poll(&mut self.engine, now);
            let busy = self.tunnel.poll(&mut self.engine, &mut self.slowpath, now) | busy;
            let busy = self.paths.poll(&mut self.engine, &mut self.slowpath, &mut self.tunnel, now) | busy;
            let busy = self.engine.control_qos_poll() > 0 || busy;
            self.dpi.reclaim();
            if sig.hup.swap(false, Ordering::Relaxed) {
                self.reload("SIGHUP", None, None);
            }
            if self.cfg.control.watch && now.duration_since(watched) >= WATCH_EVERY {
                watched = now;
                let stamp = file_stamp(&self.path);
                if stamp.is_some() && stamp != self.stamp {
                    self.reload("file change", None, None);
                }
            }
            while let Ok(call) = calls.try_recv() {
                self.answer(call);
            }
            self.settle(now);
            if now.duration_since(collected) >= COLLECT_EVERY {
                collected = now;
                self.book.collect(now);
            }
            if now.duration_since(exported) >= METRICS_EVERY {
                exported = now;
                let snap = self.engine.snapshot();
                self.metrics.update(&snap, &self.book, &self.reloads);
                telemetry::flow_series(&self.flows, &self.cfg.eal.worker_lcores, &self.dpi.current().dpi);
                telemetry::qos_series(&crate::show::qos_rows(&self.engine, &self.names));
                self.tunnel.export();
                self.paths.export();
                self.record_history(&snap);
            }
            let interval = Duration::from_secs(self.cfg.stats.interval_s as u64);
            if !interval.is_zero() && prev_at.elapsed() >= interval {
                let cur = self.engine.snapshot();
                let secs = prev_at.elapsed().as_secs_f64();
                let up = self.started.elapsed().as_secs_f64();
                crate::log::report(&summary_line(&self.names, &prev, &cur, secs, up, &cpu.sample(&cur, secs)));
                prev = cur;
                prev_at = Instant::now();
            }
            if !busy {
                let tick = if !self.pending.is_empty() {
                    ADOPT_TICK
                } else if self.slowpath.routes().ifaces.is_empty() {
                    TICK
                } else {
                    SLOW_PATH_TICK
                };
                match calls.recv_timeout(tick) {
                    Ok(call) => self.answer(call),
                    Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => {}
                }
            }
        }

        let secs = self.started.elapsed().as_secs_f64();
        let tsc_hz = self.engine.tsc_hz();
        let cpu_avg = cpu_total.sample(&self.engine.snapshot(), secs);
        self.engine.stop_workers();
        self.settle(Instant::now() + Duration::from_secs(3600));
        let n = self.slowpath.neighbors();
        if !n.is_empty() {
            crate::log::report(&format!("neighbors: {}", n.iter().filter(|e| e.1.is_some()).count()));
            for (k, mac, state) in n {
                let mac = mac.map_or("-".into(), |m| m.to_string());
                crate::log::report(&format!("  {} {} {mac} {state}", self.slowpath.routes().ifaces[k.iface as usize].name, k.ip()));
            }
        }
        let Control { engine, slowpath, names, reloads, .. } = self;
        drop(slowpath);
        let report = engine.shutdown();
        tracing::info!("stopped after {secs:.1} s ({} reload(s) applied, {} rejected)", reloads.ok, reloads.failed);
        for line in final_report(&names, &report, tsc_hz, secs, &cpu_avg).lines() {
            crate::log::report(line);
        }
        let leaked = report.pools.iter().any(|p| p.leaked() > 0);
        if !report.failed_workers.is_empty() {
            tracing::error!("workers on lcores {:?} failed", report.failed_workers);
        }
        if leaked || !report.failed_workers.is_empty() {
            EXIT_FAILURE
        } else {
            EXIT_OK
        }
    }

    /// One second of the history ring: each path's figures, each port's
    /// totals over every core.
    fn record_history(&mut self, snap: &dataplane::engine::Snapshot) {
        let ports: Vec<(&str, [u64; 4])> = self
            .names
            .iter()
            .enumerate()
            .map(|(i, n)| {
                let t = &snap.ports[i];
                (n.as_str(), [t.rx_packets, t.tx_packets, t.rx_bytes, t.tx_bytes])
            })
            .collect();
        self.history.record(telemetry::unix_now(), &self.paths.history_samples(), &ports);
    }

    /// Re-reads the config file (or takes `text`, which then replaces the
    /// file) and applies it; the reply (if any) is sent once every worker
    /// runs the new snapshot.
    fn reload(&mut self, why: &str, reply: Option<Reply>, text: Option<&str>) {
        let at = telemetry::unix_now();
        self.stamp = file_stamp(&self.path);
        let started = Instant::now();
        match self.try_reload(text) {
            Ok((version, plan)) => {
                self.reloads.ok += 1;
                self.reloads.last_ok = Some(true);
                self.reloads.last_error = None;
                self.reloads.restart_pending = plan.restart.clone();
                let mut msg = format!("reload ({why}) applied as snapshot {version}");
                if plan.applied.is_empty() {
                    msg.push_str(": nothing changed");
                } else {
                    msg.push_str(&format!(": changed {}", plan.applied.join(", ")));
                }
                if !plan.restart.is_empty() {
                    msg.push_str(&format!("; requires restart: {}", plan.restart.join(", ")));
                }
                tracing::info!(reload = why, snapshot = version, "{msg}");
                crate::events::emit(
                    "reload",
                    msg,
                    json!({ "ok": true, "why": why, "snapshot": version, "applied": plan.applied, "restart_required": plan.restart }),
                );
                self.pending.push(Pending {
                    version,
                    deadline: started + Duration::from_millis(self.cfg.control.reload_timeout_ms as u64),
                    reply,
                    body: json!({
                        "ok": true,
                        "snapshot": version,
                        "applied": plan.applied,
                        "restart_required": plan.restart,
                    }),
                });
            }
            Err(errors) => {
                self.reloads.failed += 1;
                self.reloads.last_ok = Some(false);
                self.reloads.last_error = Some(errors.clone());
                tracing::warn!(reload = why, "reload ({why}) rejected; the running config stays:");
                for line in errors.lines() {
                    tracing::error!("{line}");
                }
                crate::events::emit(
                    "reload",
                    format!("reload ({why}) rejected; the running config stays: {}", errors.lines().next().unwrap_or("")),
                    json!({ "ok": false, "why": why, "errors": errors.lines().collect::<Vec<_>>() }),
                );
                if let Some(r) = reply {
                    r.send(json!({ "ok": false, "error": "config rejected; the running config stays", "errors": errors.lines().collect::<Vec<_>>() }));
                }
            }
        }
        self.reloads.last_at = Some(at);
    }

    /// parse -> validate -> (write the given text) -> compile -> publish.
    fn try_reload(&mut self, given: Option<&str>) -> Result<(u64, reload::Plan), String> {
        let text = match given {
            Some(t) => t.to_owned(),
            None => crate::config::read_text(&self.path).map_err(|e| format!("{}:0:0: {e}", self.path.display()))?,
        };
        let new = Config::parse(&self.path, &text).map_err(|e: ConfigErrors| e.to_string())?;
        let plan = reload::plan(&self.cfg, &new);
        plan.effective.revalidate(&self.path, &text).map_err(|e| format!("{e} (changes to ports need a restart)"))?;
        let routes = snapshots::routes(&plan.effective, &self.macs).map_err(|e| format!("{}: {e}", self.path.display()))?;
        // Key files are read before anything applies.
        let site_key = plan.effective.private_key_path(&self.path);
        if plan.effective.tunnel.enabled() {
            plan.effective
                .tunnel
                .load(&snapshots::config_dir(&self.path), site_key.as_deref())
                .map_err(|e| format!("{}: {e}", self.path.display()))?;
        }
        // Valid: a pushed text replaces the file before anything applies.
        if let Some(t) = given {
            write_atomically(&self.path, t).map_err(|e| format!("{}:0:0: cannot write the new config: {e}", self.path.display()))?;
            self.stamp = file_stamp(&self.path);
        }
        // Signature files are re-read on every reload; a bad one refuses the
        // whole reload and the running set stays.
        // Recompiled only when the options or a file's text changed.
        let key = snapshots::classification_sources(&plan.effective, &self.path);
        if plan.effective.dpi.enabled && key != self.dpi_key {
            let workers = self.cfg.eal.worker_lcores.len();
            let generation = self.policy_generation + 1;
            let snap = snapshots::classification(&plan.effective, &self.path, &mut self.app_ids, generation, workers)
                .map_err(|e| e.to_string())?;
            self.policy_generation = generation;
            self.dpi.publish(snap);
        }
        self.dpi_key = key;
        self.tunnel
            .reconfigure(&plan.effective.tunnel, &snapshots::config_dir(&self.path), site_key.as_deref())
            .map_err(|e| format!("{}: {e}", self.path.display()))?;
        let e = &plan.effective;
        if crate::paths::PathControl::config_key(e) != crate::paths::PathControl::config_key(&self.cfg) {
            self.paths.configure(e, &self.tunnel);
        }
        let version = self.slowpath.replace(&self.engine, routes, plan.effective.neighbor_conf());
        self.cfg = plan.effective.clone();
        self.cfg_text = text;
        Ok((version, plan))
    }

    /// Sends the replies of reloads every worker has adopted (or that
    /// timed out by `now`).
    fn settle(&mut self, now: Instant) {
        let mut i = 0;
        while i < self.pending.len() {
            let p = &self.pending[i];
            let adopted = self.slowpath.adopted(p.version);
            if adopted || now >= p.deadline {
                let mut p = self.pending.swap_remove(i);
                if !adopted {
                    p.body = json!({
                        "ok": false,
                        "error": format!("applied as snapshot {}, but not every worker adopted it within {} ms", p.version, self.cfg.control.reload_timeout_ms),
                    });
                }
                if let Some(r) = p.reply.take() {
                    r.send(p.body);
                }
            } else {
                i += 1;
            }
        }
    }

    fn answer(&mut self, call: Call) {
        match call.request {
            Request::Reload => self.reload(&call.from, Some(call.reply), None),
            Request::ReloadText { text } => self.reload(&format!("config pushed by {}", call.from), Some(call.reply), Some(&text)),
            Request::Drain { path, drain } => {
                let r = self.paths.drain(&path, drain).unwrap_or_else(ctl::error);
                call.reply.send(r);
            }
            Request::Show { what } => {
                call.reply.send(self.show(&what));
            }
            Request::Flows { after, first } => {
                call.reply.send(self.flow_page(after.as_deref(), first));
            }
            Request::Rekey { peer } => {
                let r = match self.tunnel.rekey(&mut self.engine, &mut self.slowpath, peer.as_deref()) {
                    Ok(n) => json!({ "ok": true, "peers": n }),
                    Err(e) => ctl::error(e),
                };
                call.reply.send(r);
            }
        }
    }
}
