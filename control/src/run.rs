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

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};
use dataplane::counters::DropReason;
use dataplane::dpdk::{self, Tsc};
use dataplane::dpi::Dpi;
use dataplane::engine::{Engine, Snapshot};
use dataplane::flow::stage::{Classifier, FlowCounters};
use dataplane::latency::Slot;
use dataplane::pipeline::Timed;
use dataplane::rcu::Publisher;
use dataplane::router::fib::Routes;
use dataplane::router::Router;
use dataplane::tunnel::stage::{Decap, Encap};
use dataplane::wire::EthernetAddress;
use serde_json::{json, Value};

use crate::config::{Config, ConfigErrors, PollModeName};
use crate::ctl::{self, Call, Request};
use crate::reload;
use crate::slowpath::SlowPath;
use crate::stats::{final_report, summary_line, CpuMeter};
use crate::telemetry::{self, Exporter, LatencyBook, Measure, Metrics, PortInfo, ReloadStats};
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

fn mac(m: &[u8; 6]) -> String {
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

/// Compiles a validated config into the forwarding snapshot's routes.
fn compile(cfg: &Config, macs: &[EthernetAddress]) -> Result<Routes, String> {
    Ok(cfg.routes(macs)?.with_xconnect(&cfg.forward_pairs()).with_conf(cfg.router_conf()))
}

/// The CPU the main lcore runs on (where the server threads go).
fn main_cpu(cfg: &Config) -> usize {
    let cpu_map = cfg.parse_cpu_map().unwrap_or_default();
    cpu_map.iter().find(|(l, _)| *l == cfg.eal.main_lcore).map_or(cfg.eal.main_lcore, |(_, c)| *c) as usize
}

/// Identifies a version of the config file without reading it.
fn file_stamp(path: &Path) -> Option<(SystemTime, u64)> {
    let m = std::fs::metadata(path).ok()?;
    Some((m.modified().ok()?, m.len()))
}

/// A reload reply waiting for every worker to adopt its snapshot.
struct Pending {
    version: u64,
    deadline: Instant,
    reply: Option<Sender<Value>>,
    body: Value,
}

/// Everything the control thread owns while the appliance runs.
struct Control {
    cfg: Config,
    path: PathBuf,
    engine: Engine,
    slowpath: SlowPath,
    macs: Vec<EthernetAddress>,
    names: Vec<String>,
    book: LatencyBook,
    metrics: Metrics,
    reloads: ReloadStats,
    pending: Vec<Pending>,
    started: Instant,
    stamp: Option<(SystemTime, u64)>,
    /// The signatures the workers classify with.
    dpi: Publisher<Dpi>,
    tunnel: TunnelControl,
    paths: crate::paths::PathControl,
    /// Bumped on every reload that recompiles the policy.
    policy_generation: u32,
    /// Application ids, kept across reloads so counters follow names.
    app_ids: dataplane::dpi::AppIds,
    /// What the running signatures were compiled from (see dpi_sources).
    dpi_key: String,
    flows: Vec<Arc<FlowCounters>>,
}

/// The `[dpi]` options and the text of every signature file they name: a
/// reload recompiles the signatures only when this changes.
fn dpi_sources(cfg: &Config, dir: &Path) -> String {
    let mut key = format!("{:?}{:?}{:?}", cfg.dpi, cfg.qos, cfg.policy);
    for f in cfg.dpi.files(dir) {
        key.push('\0');
        key.push_str(&std::fs::read_to_string(&f).unwrap_or_else(|e| format!("unreadable: {e}")));
    }
    key
}

fn config_dir(path: &Path) -> PathBuf {
    path.parent().map(Path::to_path_buf).unwrap_or_default()
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
    let stamp = file_stamp(config_path);
    keep_heap();
    let spec = cfg.engine_spec();
    let mut engine = match Engine::init(&spec) {
        Ok(e) => e,
        Err(e) => {
            tracing::error!("{}: {e}", config_path.display());
            return EXIT_FAILURE;
        }
    };
    for note in engine.notes() {
        tracing::warn!("{note}");
    }
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
    let macs: Vec<EthernetAddress> = engine.ports().iter().map(|p| EthernetAddress(p.mac)).collect();
    let routes = match compile(cfg, &macs) {
        Ok(r) => r,
        Err(e) => {
            tracing::error!("{}: {e}", config_path.display());
            engine.shutdown();
            return EXIT_FAILURE;
        }
    };
    for f in &routes.ifaces {
        let addrs: Vec<String> = f.v4.iter().map(|(a, l)| format!("{a}/{l}")).chain(f.v6.iter().map(|(a, l)| format!("{a}/{l}"))).collect();
        tracing::info!("interface {} on {} (mtu {}): {}", f.name, cfg.port[f.port as usize].name, f.mtu, addrs.join(" "));
    }

    // Servers first: a port or socket clash stops the start before workers run.
    if let Err(e) = telemetry::install() {
        tracing::error!("cannot install the metrics recorder: {e}");
    }
    let cpu = Some(main_cpu(cfg));
    let exporter = match cfg.metrics_addr().map(|a| Exporter::start(a, cpu)).transpose() {
        Ok(x) => x,
        Err(e) => {
            tracing::error!("{}: {e}", config_path.display());
            engine.shutdown();
            return EXIT_FAILURE;
        }
    };
    let (call_tx, calls) = crossbeam_channel::unbounded::<Call>();
    let reply_timeout = Duration::from_millis(cfg.control.reload_timeout_ms as u64) + Duration::from_secs(5);
    let server = match cfg.socket_path().map(|p| ctl::Server::start(&p, cpu, call_tx, reply_timeout)).transpose() {
        Ok(s) => s,
        Err(e) => {
            tracing::error!("{}: {e}", config_path.display());
            engine.shutdown();
            return EXIT_FAILURE;
        }
    };

    let mut app_ids = dataplane::dpi::AppIds::default();
    let dpi = if cfg.dpi.enabled {
        cfg.dpi.compile(&config_dir(config_path), &mut app_ids)
    } else {
        Ok(Dpi::compile(&Default::default(), 1).expect("empty set"))
    };
    let workers = cfg.eal.worker_lcores.len();
    let dpi = match dpi
        .map(|mut d| {
            cfg.qos.apply(&mut d);
            d
        })
        .map(|mut d| {
            d.policy = crate::config::paths::compile_policy(&cfg.policy, &d, 1);
            d
        })
        .and_then(|mut d| {
            d.set_workers(workers).map_err(|e| {
                crate::config::ConfigErrors(vec![crate::config::ConfigError {
                    file: config_path.to_owned(),
                    line: 0,
                    column: 0,
                    field: "dpi".into(),
                    message: e,
                }])
            })?;
            Ok(d)
        }) {
        Ok(d) => Publisher::new(d),
        Err(e) => {
            tracing::error!("{e}");
            engine.shutdown();
            return EXIT_FAILURE;
        }
    };
    if cfg.dpi.enabled {
        tracing::info!(
            "classifying with {} applications, {} flows per worker, decision within {} packets per direction",
            dpi.current().apps.len() - 1,
            cfg.dpi.flows.next_power_of_two(),
            cfg.dpi.max_packets
        );
    }
    let flow_conf = cfg.dpi.flow_conf();
    let slowpath = SlowPath::new(routes, cfg.neighbor_conf(), engine.punt_rings(), cfg.port.len());
    let hz = engine.tsc_hz();
    let tunnel =
        match TunnelControl::new(&cfg.tunnel, &config_dir(config_path), cfg.private_key_path(config_path).as_deref(), hz, dpdk::tsc()) {
            Ok(t) => t,
            Err(e) => {
                tracing::error!("{}: {e}", config_path.display());
                drop(slowpath);
                engine.shutdown();
                return EXIT_FAILURE;
            }
        };
    if tunnel.enabled() {
        tracing::info!(
            "tunnel: public key {}, listening on UDP {}, {} peer(s)",
            tunnel.public_key(),
            tunnel.listen_port(),
            cfg.tunnel.peer.len()
        );
    }
    let paths = crate::paths::PathControl::new(&cfg.paths, &cfg.path, &cfg.bfd, &cfg.policy, &tunnel, hz);
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
    let every = cfg.worker.latency_sample;
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
    let trusted: Vec<u16> = cfg.port.iter().enumerate().filter(|(_, p)| p.trust_dscp).map(|(i, _)| i as u16).collect();
    let mut stage_slots = Vec::new();
    let launched = engine.launch(|i, _| {
        let slot = Slot::new("forward");
        stage_slots.push((lcores[i], slot.clone()));
        let classify = match cfg.dpi.enabled {
            true => Classifier::new(dpi.reader(), &flow_conf, Tsc, hz, flows[i].clone(), i),
            false => Classifier::off(dpi.reader(), Tsc, hz, flows[i].clone()),
        };
        let decap = Decap::new(tunnel.reader(), slowpath.reader(), paths.reader(), Tsc, paths.bfd_enabled());
        let encap = Encap::new(tunnel.reader(), slowpath.reader(), paths.reader(), Tsc, hz);
        let trust = dataplane::qos::DscpTrust::new(&trusted);
        Timed::new((decap, (classify, (trust, (encap, Router::new(slowpath.reader(), Tsc, hz))))), &slot, every, dpdk::tsc)
    });
    for (lcore, slot) in stage_slots {
        book.add(lcore, Measure::Stage("forward".into()), slot);
    }
    if let Err(e) = launched {
        tracing::error!("{e}");
        engine.stop_workers();
        drop(slowpath);
        engine.shutdown();
        return EXIT_FAILURE;
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
    if let Some(s) = &server {
        tracing::info!("control socket {}", s.path().display());
    }
    if let Some(x) = &exporter {
        tracing::info!("metrics on http://{}/metrics", x.addr());
    }

    let metrics = Metrics::new(infos, &lcores, Duration::from_micros(cfg.worker.stall_us as u64));
    let ctl = Control {
        cfg: cfg.clone(),
        path: config_path.to_owned(),
        names: cfg.port.iter().map(|p| p.name.clone()).collect(),
        engine,
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
        dpi_key: dpi_sources(cfg, &config_dir(config_path)),
        flows,
        tunnel,
        paths,
        policy_generation: 1,
    };
    let status = ctl.run(&sig, &calls, opts);
    drop(server);
    drop(exporter);
    status
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
                self.reload("SIGHUP", None);
            }
            if self.cfg.control.watch && now.duration_since(watched) >= WATCH_EVERY {
                watched = now;
                let stamp = file_stamp(&self.path);
                if stamp.is_some() && stamp != self.stamp {
                    self.reload("file change", None);
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
                self.metrics.update(&self.engine.snapshot(), &self.book, &self.reloads);
                telemetry::flow_series(&self.flows, self.dpi.current());
                telemetry::qos_series(&qos_rows(&self.engine, &self.names));
                self.tunnel.export();
                self.paths.export();
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

    /// Re-reads the config file and applies it; the reply (if any) is sent
    /// once every worker runs the new snapshot.
    fn reload(&mut self, why: &str, reply: Option<Sender<Value>>) {
        let at = telemetry::unix_now();
        self.stamp = file_stamp(&self.path);
        let started = Instant::now();
        match self.try_reload() {
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
                if let Some(r) = reply {
                    let _ = r.send(json!({ "ok": false, "error": "config rejected; the running config stays", "errors": errors.lines().collect::<Vec<_>>() }));
                }
            }
        }
        self.reloads.last_at = Some(at);
    }

    /// parse -> validate -> compile -> publish.
    fn try_reload(&mut self) -> Result<(u64, reload::Plan), String> {
        let text = std::fs::read_to_string(&self.path).map_err(|e| format!("{}:0:0: cannot read: {e}", self.path.display()))?;
        let new = Config::parse(&self.path, &text).map_err(|e: ConfigErrors| e.to_string())?;
        let plan = reload::plan(&self.cfg, &new);
        plan.effective.revalidate(&self.path, &text).map_err(|e| format!("{e} (changes to ports need a restart)"))?;
        let routes = compile(&plan.effective, &self.macs).map_err(|e| format!("{}: {e}", self.path.display()))?;
        // Key files are read before anything applies.
        let site_key = plan.effective.private_key_path(&self.path);
        if plan.effective.tunnel.enabled() {
            plan.effective
                .tunnel
                .load(&config_dir(&self.path), site_key.as_deref())
                .map_err(|e| format!("{}: {e}", self.path.display()))?;
        }
        // Signature files are re-read on every reload; a bad one refuses the
        // whole reload and the running set stays.
        // Recompiled only when the options or a file's text changed.
        let key = dpi_sources(&plan.effective, &config_dir(&self.path));
        let dpi = match plan.effective.dpi.enabled && key != self.dpi_key {
            true => {
                self.policy_generation += 1;
                let generation = self.policy_generation;
                Some(plan.effective.dpi.compile(&config_dir(&self.path), &mut self.app_ids).map_err(|e| e.to_string())?).map(|mut d| {
                    plan.effective.qos.apply(&mut d);
                    d.policy = crate::config::paths::compile_policy(&plan.effective.policy, &d, generation);
                    d
                })
            }
            false => None,
        };
        self.dpi_key = key;
        if let Some(mut d) = dpi {
            d.set_workers(self.cfg.eal.worker_lcores.len()).map_err(|e| format!("{}: dpi: {e}", self.path.display()))?;
            self.dpi.publish(d);
        }
        self.tunnel
            .reconfigure(&plan.effective.tunnel, &config_dir(&self.path), site_key.as_deref())
            .map_err(|e| format!("{}: {e}", self.path.display()))?;
        let e = &plan.effective;
        if (&e.paths, &e.path, &e.bfd, &e.policy) != (&self.cfg.paths, &self.cfg.path, &self.cfg.bfd, &self.cfg.policy) {
            self.paths.configure(&e.paths, &e.path, &e.bfd, &e.policy, &self.tunnel);
        }
        let version = self.slowpath.replace(&self.engine, routes, plan.effective.neighbor_conf());
        self.cfg = plan.effective.clone();
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
                    let _ = r.send(p.body);
                }
            } else {
                i += 1;
            }
        }
    }

    fn answer(&mut self, call: Call) {
        match call.request {
            Request::Reload => self.reload("control socket", Some(call.reply)),
            Request::Show { what } => {
                let _ = call.reply.send(self.show(&what));
            }
            Request::Rekey { peer } => {
                let r = match self.tunnel.rekey(&mut self.engine, &mut self.slowpath, peer.as_deref()) {
                    Ok(n) => json!({ "ok": true, "peers": n }),
                    Err(e) => ctl::error(e),
                };
                let _ = call.reply.send(r);
            }
        }
    }

    /// The data behind `patronus show WHAT`.
    fn show(&mut self, what: &str) -> Value {
        let snap = self.engine.snapshot();
        let names = &self.names;
        let data = match what {
            "ports" => json!(self
                .engine
                .ports()
                .iter()
                .zip(&self.cfg.port)
                .enumerate()
                .map(|(i, (p, c))| {
                    let t = &snap.ports[i];
                    let e = &snap.eth[i];
                    json!({
                        "port": c.name, "device": c.device, "driver": p.info.driver, "mac": mac(&p.mac), "role": c.role.name(),
                        "rx_queues": p.rx_queues, "tx_queues": p.tx_queues, "forward": c.forward,
                        "rx_packets": t.rx_packets, "tx_packets": t.tx_packets, "rx_bytes": t.rx_bytes, "tx_bytes": t.tx_bytes,
                        "drops": t.total_drops(), "punted": t.punted, "icmp_errors": t.icmp_errors,
                        "nic_rx_packets": e.ipackets, "nic_tx_packets": e.opackets, "nic_rx_bytes": e.ibytes, "nic_tx_bytes": e.obytes,
                        "nic_missed": e.imissed, "nic_rx_errors": e.ierrors, "nic_tx_errors": e.oerrors, "nic_rx_nombuf": e.rx_nombuf,
                    })
                })
                .collect::<Vec<_>>()),
            "counters" => json!(per_core(&snap, names)
                .map(|(core, port, t)| json!({
                    "core": core, "port": port, "rx_packets": t.rx_packets, "tx_packets": t.tx_packets,
                    "rx_bytes": t.rx_bytes, "tx_bytes": t.tx_bytes, "drops": t.total_drops(), "punted": t.punted,
                    "icmp_errors": t.icmp_errors,
                }))
                .collect::<Vec<_>>()),
            "drops" => json!(per_core(&snap, names)
                .flat_map(|(core, port, t)| {
                    DropReason::ALL
                        .iter()
                        .filter(|r| t.drops[**r as usize] > 0)
                        .map(move |r| json!({ "port": port, "core": core, "reason": r.name(), "packets": t.drops[*r as usize] }))
                        .collect::<Vec<_>>()
                })
                .collect::<Vec<_>>()),
            "workers" => {
                let hz = self.engine.tsc_hz().max(1) as f64;
                json!(snap
                    .workers
                    .iter()
                    .map(|w| json!({
                        "core": w.lcore, "tid": w.tid, "rx_packets": w.rx_packets, "polls": w.polls, "sleeps": w.sleeps,
                        "busy_seconds": w.busy_cycles as f64 / hz, "cpu_seconds": w.cpu_seconds,
                        "cycles_per_packet": (w.rx_packets > 0).then(|| w.busy_cycles as f64 / w.rx_packets as f64),
                        "stalls": self.book.stalls(w.lcore),
                    }))
                    .collect::<Vec<_>>())
            }
            "latency" => {
                self.book.collect(Instant::now());
                json!(self.book.rows())
            }
            "neighbors" => json!(self
                .slowpath
                .neighbors()
                .into_iter()
                .map(|(k, m, state)| json!({
                    "iface": self.slowpath.routes().ifaces[k.iface as usize].name,
                    "ip": k.ip().to_string(),
                    "mac": m.map(|m| m.to_string()),
                    "state": state,
                }))
                .collect::<Vec<_>>()),
            "status" => json!({
                "config": self.path.display().to_string(),
                "snapshots_retired_in_use": self.slowpath.retired(),
                "uptime_seconds": self.started.elapsed().as_secs_f64(),
                "version": env!("CARGO_PKG_VERSION"),
                "dpdk": dpdk::version(),
                "workers": self.cfg.eal.worker_lcores,
                "reloads": self.reloads,
                "resident_memory_bytes": telemetry::resident_bytes(),
            }),
            "apps" => json!(app_rows(&self.flows, self.dpi.current())),
            "flows" => {
                let sum = |f: fn(&FlowCounters) -> u64| self.flows.iter().map(|c| f(c)).sum::<u64>();
                json!({
                    "enabled": self.cfg.dpi.enabled,
                    "active": sum(|c| c.active.get()),
                    "created": sum(|c| c.created.get()),
                    "expired": sum(|c| c.expired.get()),
                    "closed": sum(|c| c.closed.get()),
                    "evicted": sum(|c| c.evicted.get()),
                    "capacity_per_worker": self.cfg.dpi.flows.next_power_of_two(),
                    "inspected_packets": sum(|c| c.inspected.get()),
                    "unparsed_packets": sum(|c| c.unparsed.get()),
                    "reassembly_overflows": sum(|c| c.reasm_overflows.get()),
                })
            }
            "peers" => self.tunnel.show(),
            "qos" => json!(qos_rows(&self.engine, names)),
            "paths" => self.paths.show(),
            "bfd" => self.paths.show_bfd(),
            "queues" => {
                return ctl::error(format!("`show {what}` is not available yet: this build has no {what}"));
            }
            _ => {
                return ctl::error(format!(
                "unknown `show {what}`; expected one of: status, ports, counters, drops, workers, latency, neighbors, flows, apps, peers, paths, bfd, qos"
            ))
            }
        };
        json!({ "ok": true, what: data })
    }
}

/// Each shaped port's classes, summed over the workers.
fn qos_rows(engine: &Engine, names: &[String]) -> Vec<Value> {
    use dataplane::qos::{Class, CLASSES};
    let mut rows = Vec::new();
    let ports: std::collections::BTreeSet<u16> = engine.qos_counters().iter().map(|(_, p, _)| *p).collect();
    for port in ports {
        for c in 0..CLASSES {
            let sum = |f: fn(&dataplane::qos::ClassCounters) -> u64| {
                engine.qos_counters().iter().filter(|(_, p, _)| *p == port).map(|(_, _, q)| f(&q.classes[c])).sum::<u64>()
            };
            rows.push(json!({
                "port": names.get(port as usize).cloned().unwrap_or_default(),
                "class": Class::ALL[c].name(),
                "depth": sum(|k| k.depth.get()),
                "enqueued": sum(|k| k.enqueued.get()),
                "sent_packets": sum(|k| k.sent_packets.get()),
                "sent_bytes": sum(|k| k.sent_bytes.get()),
                "tail_drops": sum(|k| k.tail_drops.get()),
                "codel_drops": sum(|k| k.codel_drops.get()),
            }));
        }
    }
    rows
}

/// Flows decided per application, summed over the workers.
fn app_rows(flows: &[Arc<FlowCounters>], dpi: &Dpi) -> Vec<Value> {
    let mut rows: Vec<Value> = telemetry::app_totals(flows, dpi)
        .iter()
        .map(|t| json!({ "application": t.name, "category": t.category, "flows": t.flows, "packets": t.packets, "bytes": t.bytes }))
        .collect();
    rows.sort_by(|a, b| b["flows"].as_u64().cmp(&a["flows"].as_u64()));
    rows
}

/// (core label, port name, counters) for every worker and the control thread.
fn per_core<'a>(
    snap: &'a Snapshot,
    names: &'a [String],
) -> impl Iterator<Item = (String, &'a str, &'a dataplane::counters::PortTotals)> + 'a {
    let cores = snap.workers.iter().map(|w| (w.lcore.to_string(), &w.ports)).chain(std::iter::once(("control".to_owned(), &snap.control)));
    cores.flat_map(move |(core, ports)| ports.iter().zip(names).map(move |(t, n)| (core.clone(), n.as_str(), t)))
}
