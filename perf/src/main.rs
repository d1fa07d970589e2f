//! `patronus-perf`: testpmd-style forwarding runs over the Patronus engine
//! (the same EAL set-up, ports, worker loop and stage chain as `patronus
//! run`), printing port statistics the way `dpdk-testpmd` does so the two
//! can be compared on the same virtual devices.

mod aead_bench;
mod appliance;
mod flow_bench;
mod lpm_bench;
mod pattern_bench;
mod pcap;
mod qos_bench;
mod route;
mod stage_bench;
mod stages;
mod tunnel;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::{Parser, Subcommand, ValueEnum};
use dataplane::dpdk;
use dataplane::engine::{Device, EalSpec, Engine, EngineSpec, PortSpec, Snapshot};
use dataplane::latency::Slot;
use dataplane::pipeline::{Timed, XConnect};
use dataplane::worker::PollMode;
use dataplane::{PortIdx, MAX_BURST};

use stages::{MacRewrite, MacSwap};

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Mode {
    /// Forward packets untouched (testpmd `io`).
    Io,
    /// Rewrite source and destination MAC (testpmd `mac`).
    Mac,
    /// Swap source and destination MAC (testpmd `macswap`).
    Macswap,
    /// Route: parse, LPM, neighbour rewrite, TTL and checksum (two ports;
    /// port 0 receives `gen-pcap` frames).
    Route,
    /// Flow lookup and DPI (the built-in signatures), then route: what the
    /// appliance's workers run.
    Dpi,
    /// Route, then out through a QoS-scheduled port 1 (six class queues,
    /// shaped far above what one core sends): the scheduler's cost per packet.
    Qos,
    /// Tunnel encryption: seal port 0's frames for a WireGuard peer (padding,
    /// tag, outer headers) and route them out of port 1 (`gen-pcap`).
    Encrypt,
    /// `encrypt` with multi-path steering: two paths to the peer, the
    /// packets' policy rule choosing the second (`gen-pcap`).
    Steer,
    /// Tunnel decryption: open port 0's transport messages, check the
    /// allowed IPs, strip, route out of port 1 (`gen-pcap --wireguard`).
    Decrypt,
    /// The appliance's own chain (`dataplane::chain::appliance`, the one
    /// `patronus run` builds): tunnel decap, flow + DPI + policy, DSCP
    /// trust, encap to a WireGuard peer (10.0.0.0/8 is its allowed IPs),
    /// route out of port 1 (`gen-pcap --from` a capture).
    Appliance,
}

impl Mode {
    fn name(self) -> &'static str {
        match self {
            Mode::Io => "io",
            Mode::Mac => "mac",
            Mode::Macswap => "macswap",
            Mode::Route => "route",
            Mode::Dpi => "dpi",
            Mode::Qos => "qos",
            Mode::Encrypt => "encrypt",
            Mode::Steer => "steer",
            Mode::Decrypt => "decrypt",
            Mode::Appliance => "appliance",
        }
    }
}

#[derive(Parser)]
#[command(
    name = "patronus-perf",
    version,
    about = "testpmd-style forwarding benchmark over the Patronus engine",
    long_about = "testpmd-style forwarding benchmark over the Patronus engine.\n\n\
        Ports are paired like testpmd's default topology (0<->1, 2<->3, ...; an odd last port loops to itself).\n\
        Example: patronus-perf --vdev net_null0 --vdev net_null1 --forward-mode io --duration 10\n\
        The last line is machine-readable: RESULT mode=.. mpps=.. cycles_per_packet=..",
    args_conflicts_with_subcommands = true
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Cmd>,
    #[command(flatten)]
    run: RunArgs,
}

#[derive(Subcommand)]
enum Cmd {
    /// Write a pcap of 64-byte Ethernet/IPv4/UDP packets to mixed destinations.
    GenPcap {
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
        /// Number of packets.
        #[arg(long, default_value_t = 1024)]
        count: u32,
        /// Frame size in bytes (without FCS), at least 60.
        #[arg(long, default_value_t = 60)]
        size: u16,
        /// Instead of synthetic UDP: the IPv4 packets of these captures
        /// (pcap or pcapng, any link type), re-framed for port 0 and with
        /// their addresses mapped into 10.0.0.0/8 so `route` and `dpi`
        /// route them; repeated --copies times with different addresses.
        #[arg(long, value_name = "CAPTURE", num_args = 1..)]
        from: Vec<PathBuf>,
        #[arg(long, default_value_t = 1)]
        copies: u32,
        /// Simple IMIX instead of --size: 7:4:1 of 64-, 576- and 1434-byte
        /// frames (inner IP packets of 50, 562 and 1420 bytes).
        #[arg(long)]
        imix: bool,
        /// WireGuard transport messages carrying those frames, sealed with
        /// the `decrypt` mode's session (at most 8128: the replay window).
        #[arg(long)]
        wireguard: bool,
    },
    /// The route stage on heap packets, without EAL: ns per packet.
    StageBench {
        #[arg(long, default_value_t = 20_000_000)]
        packets: usize,
    },
    /// ChaCha20-Poly1305 in place: ring against RustCrypto's
    /// chacha20poly1305, same keys, nonces and payloads.
    AeadBench {
        #[arg(long, default_value_t = 1420)]
        size: usize,
        #[arg(long, default_value_t = 500_000)]
        packets: usize,
    },
    /// DPI payload patterns: aho-corasick against Hyperscan on the same
    /// signatures (the built-in set) and the payloads of these captures.
    PatternBench {
        #[arg(required = true, value_name = "CAPTURE")]
        captures: Vec<PathBuf>,
        #[arg(long, default_value_t = 20)]
        passes: usize,
    },
    /// Our flow table against DPDK's rte_hash: same flows, same lookups.
    FlowBench {
        /// Live flows, one run per size.
        #[arg(long, value_delimiter = ',', default_values_t = [16384usize, 262144, 1048576])]
        flows: Vec<usize>,
        #[arg(long, default_value_t = 10_000_000)]
        lookups: usize,
        #[arg(long, default_value = "patronus-flow-bench")]
        file_prefix: String,
    },
    /// The QoS scheduler against DPDK's rte_sched: enqueue plus dequeue per
    /// packet, same mbufs, size and class mix.
    QosBench {
        #[arg(long, default_value_t = 4_000_000)]
        packets: usize,
        #[arg(long, default_value_t = 64)]
        size: u16,
        #[arg(long, default_value = "patronus-qos-bench")]
        file_prefix: String,
    },
    /// Our LPM tables against DPDK's rte_lpm/rte_lpm6: same routes, same lookups.
    LpmBench {
        /// IPv4 routes in the large table.
        #[arg(long, default_value_t = 100_000)]
        routes4: usize,
        /// IPv6 routes in the large table.
        #[arg(long, default_value_t = 20_000)]
        routes6: usize,
        /// Lookups per pass.
        #[arg(long, default_value_t = 4_000_000)]
        lookups: usize,
        #[arg(long, default_value = "patronus-lpm")]
        file_prefix: String,
    },
}

#[derive(clap::Args)]
struct RunArgs {
    /// Forwarding mode.
    #[arg(long = "forward-mode", value_enum, default_value = "io")]
    mode: Mode,
    /// Packets per RX burst and TX flush (1..=64).
    #[arg(long, default_value_t = 32)]
    burst: usize,
    /// Seconds to forward for.
    #[arg(long, default_value_t = 10.0)]
    duration: f64,
    /// Seconds at the start left out of the Mpps figure.
    #[arg(long, default_value_t = 2.0)]
    warmup: f64,
    /// Number of worker cores (lcores main+1 ..= main+N).
    #[arg(long, default_value_t = 1)]
    cores: u32,
    /// Lcore of the control thread.
    #[arg(long, default_value_t = 0)]
    main_lcore: u32,
    /// A port, as an EAL vdev string (or PCI address); repeat per port.
    #[arg(long = "vdev", value_name = "DEVICE", required = true)]
    vdevs: Vec<String>,
    /// Seconds between port statistics blocks (0: only at the end).
    #[arg(long, default_value_t = 1)]
    stats_period: u64,
    /// EAL memory in MiB.
    #[arg(long, default_value_t = 1024)]
    memory_mb: u32,
    /// Use hugepages (reserved beforehand) instead of `--no-huge`.
    #[arg(long)]
    hugepages: bool,
    /// EAL runtime prefix (distinct for runs at the same time).
    #[arg(long, default_value = "patronus-perf")]
    file_prefix: String,
    /// Poll mode of the workers.
    #[arg(long, default_value = "busy", value_parser = ["busy", "adaptive"])]
    poll_mode: String,
    /// Longest nap of the adaptive poll mode, in microseconds.
    #[arg(long, default_value_t = 500)]
    max_sleep_us: u64,
    /// Latency sampling as `patronus run` does it: residence time of one TX
    /// burst in N, and the stage chain's cycles on one burst in N (the
    /// appliance's default `[worker] latency_sample`); 0 turns it off.
    #[arg(long, default_value_t = 16, value_name = "N")]
    latency_sample: u32,
    /// Mbufs in the pool (0: sized from the rings). net_pcap's infinite_rx
    /// holds the whole capture in mbufs.
    #[arg(long, default_value_t = 0)]
    mbufs: u32,
    /// appliance mode with several cores: each worker keeps what it
    /// receives (no handoff to the flow's owner), to measure the handoff's
    /// cost against.
    #[arg(long)]
    no_affinity: bool,
    /// dpi mode: flow table capacity per worker.
    #[arg(long, default_value_t = 65536)]
    flows: usize,
}

/// Prints one port's block in the layout of testpmd's `show port stats`.
fn print_port_stats(i: usize, prev: &Snapshot, cur: &Snapshot, secs: f64) {
    let (p, c) = (&prev.ports[i], &cur.ports[i]);
    let e = &cur.eth[i];
    let rx_pps = ((c.rx_packets - p.rx_packets) as f64 / secs) as u64;
    let tx_pps = ((c.tx_packets - p.tx_packets) as f64 / secs) as u64;
    let rx_bps = ((e.ibytes - prev.eth[i].ibytes) as f64 * 8.0 / secs) as u64;
    let tx_bps = ((e.obytes - prev.eth[i].obytes) as f64 * 8.0 / secs) as u64;
    println!("  ######################## NIC statistics for port {i:<2} ########################");
    println!("  RX-packets: {:<10} RX-missed: {:<10} RX-bytes:  {}", c.rx_packets, e.imissed, e.ibytes);
    println!("  RX-errors: {}", e.ierrors);
    println!("  RX-nombuf:  {:<10}", e.rx_nombuf);
    println!("  TX-packets: {:<10} TX-errors: {:<10} TX-bytes:  {}", c.tx_packets, e.oerrors, e.obytes);
    println!("  TX-dropped: {}", c.total_drops());
    println!();
    println!("  Throughput (since last show)");
    println!("  Rx-pps: {rx_pps:>12}          Rx-bps: {rx_bps:>12}");
    println!("  Tx-pps: {tx_pps:>12}          Tx-bps: {tx_bps:>12}");
    println!("  ############################################################################");
}

fn run(a: &RunArgs) -> Result<(), String> {
    if !(1..=MAX_BURST).contains(&a.burst) {
        return Err(format!("--burst must be 1..={MAX_BURST}"));
    }
    if a.cores == 0 {
        return Err("--cores must be at least 1".into());
    }
    let ports = a
        .vdevs
        .iter()
        .enumerate()
        .map(|(i, d)| Ok(PortSpec { name: format!("port{i}"), device: Device::parse(d)?, rx_desc: 1024, tx_desc: 1024, rx_queues: None }))
        .collect::<Result<Vec<_>, String>>()?;
    let spec = EngineSpec {
        eal: EalSpec {
            main_lcore: a.main_lcore,
            worker_lcores: (1..=a.cores).map(|i| a.main_lcore + i).collect(),
            // Lcores beyond the machine's CPUs share them (a 2-CPU box: a
            // second worker on the main lcore's CPU; figures then include
            // that sharing).
            cpu_map: {
                let cpus = std::thread::available_parallelism().map_or(1, |n| n.get()) as u32;
                (1..=a.cores).map(|i| a.main_lcore + i).filter(|&l| l >= cpus).map(|l| (l, l % cpus)).collect()
            },
            memory_mb: a.memory_mb,
            hugepages: a.hugepages,
            file_prefix: a.file_prefix.clone(),
            log_level: "warning".into(),
            extra_args: vec!["--no-telemetry".into()],
        },
        ports,
        burst: a.burst,
        drain: Duration::from_micros(100),
        mode: if a.poll_mode == "busy" { PollMode::Busy } else { PollMode::Adaptive { max_sleep: Duration::from_micros(a.max_sleep_us) } },
        mbufs: a.mbufs,
        latency_every: a.latency_sample,
        stall: Duration::from_micros(50),
    };
    let n = spec.ports.len() as PortIdx;
    // testpmd's paired topology.
    let pairs: Vec<(PortIdx, PortIdx)> = (0..n).map(|i| (i, if i ^ 1 < n { i ^ 1 } else { i })).collect();

    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, stop.clone()).map_err(|e| e.to_string())?;
    }
    let mut engine = Engine::init(&spec).map_err(|e| e.to_string())?;
    for note in engine.notes() {
        eprintln!("patronus-perf: note: {note}");
    }
    let macs: Vec<[u8; 6]> = engine.ports().iter().map(|p| p.mac).collect();
    let xc = XConnect::new(&pairs);
    let mut fibs = Vec::new(); // outlives the workers' readers
    let mut dpis = Vec::new();
    let mut tunnel_snaps = Vec::new();
    let mut appliances = Vec::new();
    let every = a.latency_sample;
    let launched = match a.mode {
        Mode::Io => engine.launch(|_, _| Timed::new(xc.clone(), &Slot::new("forward"), every, dpdk::tsc)),
        Mode::Mac => engine.launch(|_, _| Timed::new((xc.clone(), MacRewrite::new(&macs)), &Slot::new("forward"), every, dpdk::tsc)),
        Mode::Macswap => engine.launch(|_, _| Timed::new((xc.clone(), MacSwap), &Slot::new("forward"), every, dpdk::tsc)),
        Mode::Route | Mode::Qos => {
            if n != 2 {
                return Err("route mode takes exactly two ports (capture in, gateways out)".into());
            }
            let fib = route::fib(macs[1]);
            let hz = engine.tsc_hz();
            if a.mode == Mode::Qos {
                engine.set_port_qos(1, dataplane::qos::PortQosConf::new(1_000_000_000_000));
            }
            let r = engine.launch(|_, _| Timed::new(route::stage(&fib, hz), &Slot::new("forward"), every, dpdk::tsc));
            fibs.push(fib);
            r
        }
        Mode::Encrypt | Mode::Decrypt | Mode::Steer => {
            if n != 2 {
                return Err("encrypt and decrypt modes take exactly two ports (capture in, peer or gateways out)".into());
            }
            let fib = route::fib(macs[1]);
            let hz = engine.tsc_hz();
            let t = tunnel::tunnels(a.mode == Mode::Decrypt);
            let r = if a.mode == Mode::Encrypt {
                engine.launch(|_, _| Timed::new(tunnel::encrypt_stage(&t, &fib, hz), &Slot::new("forward"), every, dpdk::tsc))
            } else if a.mode == Mode::Steer {
                engine.launch(|_, _| Timed::new(tunnel::steer_stage(&t, &fib, hz), &Slot::new("forward"), every, dpdk::tsc))
            } else {
                engine.launch(|_, _| Timed::new(tunnel::decrypt_stage(&t, &fib, hz), &Slot::new("forward"), every, dpdk::tsc))
            };
            fibs.push(fib);
            tunnel_snaps.push(t);
            r
        }
        Mode::Dpi => {
            if n != 2 {
                return Err("dpi mode takes exactly two ports (capture in, gateways out)".into());
            }
            let fib = route::fib(macs[1]);
            let hz = engine.tsc_hz();
            let dir = std::path::Path::new(".");
            let mut sigs =
                patronus::config::signatures::DpiOpts::default().compile(dir, &mut Default::default()).map_err(|e| e.to_string())?;
            sigs.set_workers(a.cores as usize)?;
            let dpi = dataplane::rcu::Publisher::new(dataplane::flow::stage::DpiSnapshot { dpi: sigs, policy: Default::default() });
            let conf = dataplane::flow::stage::FlowConf { flows: a.flows, ..Default::default() };
            let counters: Vec<Arc<dataplane::flow::stage::FlowCounters>> = (0..a.cores).map(|_| Arc::default()).collect();
            let r = engine.launch(|i, _| {
                let c = dataplane::flow::stage::Classifier::new(dpi.reader(), &conf, dataplane::dpdk::Tsc, hz, counters[i].clone(), i);
                Timed::new((c, route::stage(&fib, hz)), &Slot::new("forward"), every, dpdk::tsc)
            });
            fibs.push(fib);
            dpis.push((dpi, counters));
            r
        }
        Mode::Appliance => {
            if n != 2 {
                return Err("appliance mode takes exactly two ports (capture in, peer out)".into());
            }
            let hz = engine.tsc_hz();
            let snaps = appliance::Snapshots::new(macs[1], a.cores as usize)?;
            let mut conf = appliance::conf(hz, a.flows, every);
            if !a.no_affinity {
                conf.spread = engine.spread();
            }
            let counters: Vec<Arc<dataplane::flow::stage::FlowCounters>> = (0..a.cores).map(|_| Arc::default()).collect();
            let r = engine.launch(|i, _| dataplane::chain::appliance(&snaps, &conf, i, counters[i].clone(), &Slot::new("forward")));
            println!("patronus-perf: stage chain: {}", dataplane::chain::STAGES.join(" > "));
            appliances.push((snaps, counters));
            r
        }
    };
    launched.map_err(|e| e.to_string())?;
    println!(
        "patronus-perf: {} forwarding, {} port(s), {} core(s), burst {}, {} s (first {} s not counted)",
        a.mode.name(),
        n,
        a.cores,
        a.burst,
        a.duration,
        a.warmup
    );

    let start = Instant::now();
    let duration = Duration::from_secs_f64(a.duration.max(0.0));
    let warmup = Duration::from_secs_f64(a.warmup.clamp(0.0, a.duration.max(0.0)));
    let period = Duration::from_secs(a.stats_period);
    let mut prev = engine.snapshot();
    let mut prev_at = Instant::now();
    let mut at_warmup: Option<(Snapshot, Instant)> = None;
    while start.elapsed() < duration && !stop.load(Ordering::Relaxed) {
        std::thread::sleep(Duration::from_millis(10));
        if at_warmup.is_none() && start.elapsed() >= warmup {
            at_warmup = Some((engine.snapshot(), Instant::now()));
        }
        if !period.is_zero() && prev_at.elapsed() >= period {
            let cur = engine.snapshot();
            let secs = prev_at.elapsed().as_secs_f64();
            println!("\nPort statistics ====================================");
            for i in 0..n as usize {
                print_port_stats(i, &prev, &cur, secs);
            }
            prev = cur;
            prev_at = Instant::now();
        }
    }
    let end = engine.snapshot();
    let end_at = Instant::now();
    let tsc_hz = engine.tsc_hz();
    engine.stop_workers();
    drop(fibs);
    drop(tunnel_snaps);
    for (dpi, counters) in &dpis {
        let sum = |f: fn(&dataplane::flow::stage::FlowCounters) -> u64| counters.iter().map(|c| f(c)).sum::<u64>();
        let decided: u64 = counters.iter().flat_map(|c| c.apps.iter()).map(|x| x.get()).sum();
        let unknown: u64 = counters.iter().map(|c| c.apps[0].get()).sum();
        println!(
            "  flows: created {} evicted {} expired {}; decided {} ({} unknown); packets inspected {}; not IP {}",
            sum(|c| c.created.get()),
            sum(|c| c.evicted.get()),
            sum(|c| c.expired.get()),
            decided,
            unknown,
            sum(|c| c.inspected.get()),
            sum(|c| c.unparsed.get())
        );
        let _ = dpi;
    }
    drop(dpis);
    let report = engine.shutdown();
    let (w0, w0_at) = at_warmup.unwrap_or_else(|| (end.clone(), start));
    let secs = end_at.duration_since(w0_at).as_secs_f64().max(1e-9);

    println!("\n  ---------------------- patronus-perf summary ----------------------");
    let mut total_rx = 0f64;
    for i in 0..n as usize {
        let rx = (end.ports[i].rx_packets - w0.ports[i].rx_packets) as f64 / secs;
        let tx = (end.ports[i].tx_packets - w0.ports[i].tx_packets) as f64 / secs;
        total_rx += rx;
        println!("  port {i}: RX {:.2} Mpps  TX {:.2} Mpps  drops {}", rx / 1e6, tx / 1e6, report.last.ports[i].total_drops());
    }
    let mut routed_mpps = String::new();
    if a.mode != Mode::Io && a.mode != Mode::Mac && a.mode != Mode::Macswap {
        let routed = (end.ports[1].tx_packets - w0.ports[1].tx_packets) as f64 / secs;
        routed_mpps = format!(" routed_mpps={:.3}", routed / 1e6);
        println!("  routed (port 0 -> port 1): {:.2} Mpps", routed / 1e6);
        for r in dataplane::counters::DropReason::ALL {
            let d: u64 = report.last.ports.iter().map(|p| p.drops[*r as usize]).sum();
            if d > 0 {
                println!("  dropped {}: {d}", r.name());
            }
        }
    }
    let rx_all: u64 = report.last.ports.iter().map(|p| p.rx_packets).sum();
    let busy: u64 = report.last.workers.iter().map(|w| w.busy_cycles).sum();
    let cpp = if rx_all > 0 { busy as f64 / rx_all as f64 } else { 0.0 };
    println!("  CPU cycles/packet={cpp:.2} (busy cycles={busy} / total RX packets={rx_all}) at {} MHz Clock", tsc_hz / 1_000_000);
    for (w, w0) in end.workers.iter().zip(&w0.workers) {
        let cpu = match (w.cpu_seconds, w0.cpu_seconds) {
            (Some(a), Some(b)) => format!("{:.1}%", 100.0 * (a - b) / secs),
            _ => "?".into(),
        };
        println!("  worker lcore {}: cpu {cpu} of one core, {} sleeps", w.lcore, w.sleeps - w0.sleeps);
    }
    for p in &report.pools {
        println!("  mempool {}: {} of {} mbufs returned", p.name, p.available, p.size);
    }
    let handed: u64 = end.workers.iter().zip(&w0.workers).map(|(w, w0)| w.handoff_out - w0.handoff_out).sum();
    let rx_counted: u64 = end.ports.iter().zip(&w0.ports).map(|(p, p0)| p.rx_packets - p0.rx_packets).sum();
    if a.cores > 1 {
        println!(
            "  handed to the flow's owner: {handed} packets ({:.1}% of those received)",
            100.0 * handed as f64 / rx_counted.max(1) as f64
        );
    }
    println!(
        "RESULT mode={} ports={n} cores={} burst={} mpps={:.3} cycles_per_packet={cpp:.2}{routed_mpps} handed_fraction={:.4}",
        a.mode.name(),
        a.cores,
        a.burst,
        total_rx / 1e6,
        handed as f64 / rx_counted.max(1) as f64
    );
    if report.pools.iter().any(|p| p.leaked() > 0) {
        return Err("mbuf leak".into());
    }
    Ok(())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let res = match cli.command {
        Some(Cmd::GenPcap { out, from, copies, .. }) if !from.is_empty() => pcap::write_from(&out, &from, copies),
        Some(Cmd::GenPcap { out, count, size, imix, wireguard: true, .. }) => tunnel::write_sealed(&out, &tunnel::sizes(count, size, imix)),
        Some(Cmd::GenPcap { out, count, size, imix: true, .. }) => tunnel::write_plain(&out, &tunnel::sizes(count, size, true)),
        Some(Cmd::GenPcap { out, count, size, .. }) => {
            pcap::write_mixed_udp(&out, count, size).map_err(|e| format!("{}: {e}", out.display()))
        }
        Some(Cmd::StageBench { packets }) => stage_bench::run(packets),
        Some(Cmd::AeadBench { size, packets }) => aead_bench::run(size, packets),
        Some(Cmd::PatternBench { captures, passes }) => pattern_bench::run(&captures, passes),
        Some(Cmd::FlowBench { flows, lookups, file_prefix }) => flow_bench::run(&flows, lookups, &file_prefix),
        Some(Cmd::QosBench { packets, size, file_prefix }) => qos_bench::run(packets, size, &file_prefix),
        Some(Cmd::LpmBench { routes4, routes6, lookups, file_prefix }) => lpm_bench::run(routes4, routes6, lookups, &file_prefix),
        None => run(&cli.run),
    };
    match res {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("patronus-perf: error: {e}");
            ExitCode::FAILURE
        }
    }
}
