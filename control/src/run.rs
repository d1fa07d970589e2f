//! `patronus run`: start the engine from a config, run the control loop
//! (periodic summary, signals), and shut down cleanly.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use dataplane::dpdk::Tsc;
use dataplane::engine::Engine;
use dataplane::pipeline::XConnect;
use dataplane::router::Router;
use dataplane::wire::EthernetAddress;

use crate::config::{Config, PollModeName};
use crate::slowpath::SlowPath;
use crate::stats::{final_report, summary_line, CpuMeter};

/// How often the control loop wakes when it only watches signals and stats.
const TICK: Duration = Duration::from_millis(50);

/// ... and when it also serves the workers' punted packets (ARP, ND,
/// packets waiting for a neighbour).
const SLOW_PATH_TICK: Duration = Duration::from_millis(1);

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

/// Registers SIGINT/SIGTERM: the first asks for a clean stop, a second
/// one exits at once.
fn stop_on_signals() -> std::io::Result<Arc<AtomicBool>> {
    let flag = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register_conditional_shutdown(sig, 130, flag.clone())?;
        signal_hook::flag::register(sig, flag.clone())?;
    }
    Ok(flag)
}

/// Runs the appliance until a signal or `opts.duration`; returns the exit status.
pub fn run(cfg: &Config, config_path: &Path, opts: &RunOptions) -> i32 {
    let stop = match stop_on_signals() {
        Ok(f) => f,
        Err(e) => {
            eprintln!("patronus: cannot install signal handlers: {e}");
            return EXIT_FAILURE;
        }
    };
    let spec = cfg.engine_spec();
    let mut engine = match Engine::init(&spec) {
        Ok(e) => e,
        Err(e) => {
            eprintln!("patronus: {}: {e}", config_path.display());
            return EXIT_FAILURE;
        }
    };
    for note in engine.notes() {
        eprintln!("patronus: note: {note}");
    }
    for (p, c) in engine.ports().iter().zip(&cfg.port) {
        println!(
            "patronus: port {} = {} (driver {}, mac {}{}), role {}, {} RX / {} TX queues, rings {}/{}{}",
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
    }
    let pairs = cfg.forward_pairs();
    let mut slowpath = None;
    let launched = if cfg.routed() {
        let macs: Vec<EthernetAddress> = engine.ports().iter().map(|p| EthernetAddress(p.mac)).collect();
        let routes = match cfg.routes(&macs) {
            Ok(r) => r,
            Err(e) => {
                eprintln!("patronus: {}: {e}", config_path.display());
                engine.shutdown();
                return EXIT_FAILURE;
            }
        };
        for f in &routes.ifaces {
            let addrs: Vec<String> =
                f.v4.iter().map(|(a, l)| format!("{a}/{l}")).chain(f.v6.iter().map(|(a, l)| format!("{a}/{l}"))).collect();
            println!("patronus: interface {} on {} (mtu {}): {}", f.name, cfg.port[f.port as usize].name, f.mtu, addrs.join(" "));
        }
        let sp = SlowPath::new(routes, cfg.neighbor_conf(), engine.punt_rings(), cfg.port.len());
        let (rconf, hz) = (cfg.router_conf(), engine.tsc_hz());
        let launched = engine.launch(|_, _| (XConnect::new(&pairs), Router::new(sp.reader(), rconf, Tsc, hz)));
        slowpath = Some(sp);
        launched
    } else {
        engine.launch(|_, _| XConnect::new(&pairs))
    };
    if let Err(e) = launched {
        eprintln!("patronus: {e}");
        engine.stop_workers();
        drop(slowpath);
        engine.shutdown();
        return EXIT_FAILURE;
    }
    let mode = match cfg.worker.poll_mode {
        PollModeName::Poll => "busy polling",
        PollModeName::Adaptive => "adaptive polling",
    };
    println!(
        "patronus: running: {} worker(s) on lcore(s) {:?} ({mode}), control on lcore {}; Ctrl-C stops",
        cfg.eal.worker_lcores.len(),
        cfg.eal.worker_lcores,
        cfg.eal.main_lcore
    );

    let names: Vec<String> = cfg.port.iter().map(|p| p.name.clone()).collect();
    let start = Instant::now();
    let first = engine.snapshot();
    let mut prev = first.clone();
    let mut prev_at = start;
    let mut cpu = CpuMeter::new(&first);
    let mut cpu_total = CpuMeter::new(&first);
    let interval = Duration::from_secs(cfg.stats.interval_s as u64);
    let tick = if slowpath.is_some() { SLOW_PATH_TICK } else { TICK };
    while !stop.load(Ordering::Relaxed) && opts.duration.is_none_or(|d| start.elapsed() < d) {
        let busy = slowpath.as_mut().is_some_and(|sp| sp.poll(&mut engine, Instant::now()));
        if !busy {
            std::thread::sleep(tick);
        }
        if !interval.is_zero() && prev_at.elapsed() >= interval {
            let cur = engine.snapshot();
            let secs = prev_at.elapsed().as_secs_f64();
            println!("{}", summary_line(&names, &prev, &cur, secs, start.elapsed().as_secs_f64(), &cpu.sample(&cur, secs)));
            prev = cur;
            prev_at = Instant::now();
        }
    }

    let secs = start.elapsed().as_secs_f64();
    let tsc_hz = engine.tsc_hz();
    let cpu_avg = cpu_total.sample(&engine.snapshot(), secs);
    engine.stop_workers();
    if let Some(sp) = slowpath.take() {
        let n = sp.neighbors();
        println!("neighbors: {}", n.iter().filter(|e| e.1.is_some()).count());
        for (k, mac, state) in n {
            let mac = mac.map_or("-".into(), |m| m.to_string());
            println!("  {} {} {mac} {state}", sp.routes().ifaces[k.iface as usize].name, k.ip());
        }
    }
    let report = engine.shutdown();
    println!("patronus: stopped after {secs:.1} s");
    print!("{}", final_report(&names, &report, tsc_hz, secs, &cpu_avg));
    let leaked = report.pools.iter().any(|p| p.leaked() > 0);
    if !report.failed_workers.is_empty() {
        eprintln!("patronus: workers on lcores {:?} failed", report.failed_workers);
    }
    if leaked || !report.failed_workers.is_empty() {
        EXIT_FAILURE
    } else {
        EXIT_OK
    }
}
