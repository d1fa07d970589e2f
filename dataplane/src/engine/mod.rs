//! Brings the data plane up and down: EAL, mempools, ports, queue
//! assignment, and one worker per worker lcore (EAL pins each lcore's
//! thread). Shutdown stops the workers, then the ports, and checks that
//! every mbuf is back in its pool.

use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use crossbeam_queue::ArrayQueue;

use crate::counters::{port_totals, PortTotals, WorkerCounters};
use crate::dpdk::{self, DevInfo, Eal, EthStats, EthTxQueue, Mbuf, Mempool, Port, PortSetup, Tsc};
use crate::egress::ControlEgress;
use crate::egress::{handoff_ring, HandoffRx, HandoffTx, PuntRing};
use crate::latency;
use crate::packet::Burst;
use crate::pipeline::Stage;
use crate::worker::{PortQueues, Worker, WorkerConf, WorkerLatency};
use crate::{PortIdx, MAX_BURST, MAX_PORTS};

mod spec;

#[allow(unused_imports)]
pub use spec::*;

/// Largest lcore id DPDK supports (exclusive).
pub const MAX_LCORE: u32 = dpdk_sys::RTE_MAX_LCORE;

/// Per-lcore mempool cache size.
const MBUF_CACHE: u32 = 256;

/// Packets each worker can have waiting for the control thread.
const PUNT_RING: usize = 1024;

/// Mbufs added on top of the computed need (in-flight slack, vdevs that
/// hold packets such as `net_pcap` with `infinite_rx`).
const MBUF_SLACK: u32 = 8192;

/// Why the engine could not start.
#[derive(Debug)]
pub enum StartError {
    Eal { err: dpdk::Error, args: Vec<String> },
    Probe { port: String, device: String, err: dpdk::Error },
    Port { port: String, err: dpdk::Error },
    TooFewTxQueues { port: String, offered: u16, needed: u16 },
    Pool(dpdk::Error),
    Launch { lcore: u32, err: dpdk::Error },
}

impl fmt::Display for StartError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StartError::Eal { err, args } => write!(
                f,
                "EAL initialisation failed: {err}; check the [eal] section (lcores that exist, memory_mb, hugepages, extra_args). EAL arguments were: {}",
                args.join(" ")
            ),
            StartError::Probe { port, device, err } => {
                write!(f, "port {port}: device {device:?} could not be probed: {err}")?;
                if device.starts_with("net_") {
                    write!(f, "; check the driver name and its arguments")
                } else {
                    write!(f, "; is it bound to a DPDK driver? (dpdk-devbind.py --status)")
                }
            }
            StartError::Port { port, err } => write!(f, "port {port}: {err}"),
            StartError::TooFewTxQueues { port, offered, needed } => write!(
                f,
                "port {port}: the device offers {offered} TX queue(s) but each of the {needed} workers needs its own; use fewer worker lcores{}",
                if *offered > 0 { " (net_pcap: give tx_pcap once per queue)" } else { "" }
            ),
            StartError::Pool(err) => write!(f, "creating the mbuf pool failed: {err}; raise eal.memory_mb or lower eal.mbufs"),
            StartError::Launch { lcore, err } => write!(f, "launching the worker on lcore {lcore} failed: {err}"),
        }
    }
}

impl std::error::Error for StartError {}

/// A started port and what it was given.
pub struct RunningPort {
    pub spec: PortSpec,
    pub port: Port,
    pub info: DevInfo,
    pub mac: [u8; 6],
    pub rx_queues: u16,
    pub tx_queues: u16,
    pub rx_desc: u16,
    pub tx_desc: u16,
    /// How its received packets reach the worker that owns their flow.
    pub spread: PortSpread,
}

/// The RX queues of a port with `queues` of them that worker `worker` of
/// `workers` polls: `worker, worker + workers, ...` (the symmetric RSS
/// table's entry `i` is queue `i % queues`, so a hash's owner is
/// `hash % workers`).
pub fn worker_rx_queues(worker: usize, workers: usize, queues: u16) -> impl Iterator<Item = u16> {
    (worker as u16..queues).step_by(workers.max(1))
}

/// How a port's received packets are spread over the workers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PortSpread {
    /// One worker: nothing to spread.
    OneWorker,
    /// The device hashes with the symmetric key into a table the workers'
    /// queues divide evenly: each packet arrives at its flow's owner.
    Device,
    /// The device cannot (the reason): the workers check every packet and
    /// hand it to its owner (`flow::affinity`).
    Software(String),
}

struct WorkerSlot {
    lcore: u32,
    counters: Arc<WorkerCounters>,
    punt: PuntRing<Mbuf>,
    /// Residence and iteration histograms.
    latency: [Arc<latency::Slot>; 2],
    launched: bool,
}

/// Per-worker figures at one instant.
#[derive(Clone, Debug, Default)]
pub struct WorkerSnapshot {
    pub lcore: u32,
    pub tid: u64,
    pub busy_cycles: u64,
    pub polls: u64,
    pub sleeps: u64,
    /// Packets this worker received, over all ports.
    pub rx_packets: u64,
    /// Packets it handed to the worker owning their flow, and took from others.
    pub handoff_out: u64,
    pub handoff_in: u64,
    /// CPU time (user + system) the worker thread has used, in seconds.
    pub cpu_seconds: Option<f64>,
    /// This worker's counters, per port.
    pub ports: Vec<PortTotals>,
}

/// CPU time (user + system) a thread of this process has used, in seconds,
/// from `/proc/self/task/<tid>/stat`.
pub fn thread_cpu_seconds(tid: u64) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/self/task/{tid}/stat")).ok()?;
    // Fields after the command name (which may hold spaces and parens).
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split(' ').collect();
    let ticks: u64 = f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?;
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    Some(ticks as f64 / hz)
}

/// Every counter at one instant.
#[derive(Clone, Debug, Default)]
pub struct Snapshot {
    pub tsc: u64,
    pub ports: Vec<PortTotals>,
    pub eth: Vec<EthStats>,
    pub workers: Vec<WorkerSnapshot>,
    /// The control thread's counters (its own sends and drops), per port.
    pub control: Vec<PortTotals>,
}

/// A pool's count at shutdown.
#[derive(Clone, Debug)]
pub struct PoolCheck {
    pub name: String,
    pub available: u32,
    pub size: u32,
}

impl PoolCheck {
    pub fn leaked(&self) -> u32 {
        self.size.saturating_sub(self.available)
    }
}

/// What shutdown found.
#[derive(Clone, Debug)]
pub struct ShutdownReport {
    pub last: Snapshot,
    pub pools: Vec<PoolCheck>,
    /// Workers whose loop returned non-zero.
    pub failed_workers: Vec<u32>,
}

/// The running data plane. Field order is teardown order: control TX
/// queues, then ports (stop, close), then pools, then EAL.
pub struct Engine {
    workers: Vec<WorkerSlot>,
    /// The control thread's TX queues, through the workers' egress path
    /// (shaped ports: its packets go in the Control class and spend the
    /// same shared rate as the workers').
    control_out: ControlEgress<EthTxQueue, Mbuf>,
    /// Counters the control thread writes (its own sends and drops).
    control_counters: Arc<WorkerCounters>,
    ports: Vec<RunningPort>,
    pools: Vec<(i32, Mempool)>,
    stop: Arc<AtomicBool>,
    conf: WorkerConf,
    latency_every: u32,
    stall_cycles: u64,
    notes: Vec<String>,
    failed_workers: Vec<u32>,
    tsc_hz: u64,
    /// Shaped ports: their shared buckets, and each worker's scheduler
    /// counters (worker index, port index).
    qos: Vec<Option<Arc<crate::qos::PortShaper>>>,
    qos_counters: Vec<(usize, PortIdx, Arc<crate::qos::QosCounters>)>,
    eal: Eal,
}

impl Engine {
    /// Initialises EAL, probes and starts every port. Workers are not
    /// running yet; see [`Engine::launch`].
    pub fn init(spec: &EngineSpec) -> Result<Engine, StartError> {
        assert!(spec.ports.len() <= MAX_PORTS && !spec.eal.worker_lcores.is_empty());
        let args = spec.eal_args();
        let eal = Eal::init(&args).map_err(|err| StartError::Eal { err, args })?;
        let nworkers = spec.eal.worker_lcores.len() as u16;
        let mut notes = Vec::new();

        let mut ports = Vec::new();
        for p in &spec.ports {
            let port_err = |err| StartError::Port { port: p.name.clone(), err };
            if let Device::Vdev { name, args } = &p.device {
                let devargs = if args.is_empty() { name.clone() } else { format!("{name},{args}") };
                eal.probe(&devargs).map_err(|err| StartError::Probe { port: p.name.clone(), device: devargs, err })?;
            }
            let mut port = Port::by_name(p.device.port_name()).map_err(|err| StartError::Probe {
                port: p.name.clone(),
                device: p.device.port_name().to_owned(),
                err,
            })?;
            if let Some(iface) = p.device.af_packet_iface() {
                if port.watch_kernel_ring(iface) == 0 {
                    notes.push(format!("port {}: no af_packet socket found on {iface}; its kernel ring drops are not counted", p.name));
                }
            }
            let info = port.info().map_err(port_err)?;
            let mac = port.mac().map_err(port_err)?;
            ports.push((p, port, info, mac));
        }

        // One pool per NUMA socket in use, sized from the rings it feeds.
        let socket_of = |info: &DevInfo| if info.socket < 0 { eal.socket_id() } else { info.socket };
        let mut need: Vec<(i32, u32)> = Vec::new();
        for (p, _, info, _) in &ports {
            let rings = p.rx_desc as u32 * nworkers as u32 + p.tx_desc as u32 * (nworkers as u32 + 1);
            let s = socket_of(info);
            match need.iter_mut().find(|(sock, _)| *sock == s) {
                Some((_, n)) => *n += rings,
                None => need.push((s, rings)),
            }
        }
        let per_lcore = (nworkers as u32 + 1) * (MBUF_CACHE + (spec.ports.len() as u32 + 1) * MAX_BURST as u32 + PUNT_RING as u32)
            + nworkers as u32 * (nworkers as u32 - 1) * handoff_ring(nworkers as usize) as u32;
        let mut pools = Vec::new();
        for (s, rings) in need {
            let n = (rings + per_lcore + MBUF_SLACK).max(spec.mbufs);
            let n = n.checked_next_power_of_two().map_or(n, |p| p - 1); // 2^k - 1 suits the ring
            let pool = Mempool::new_pktmbuf(&format!("mbuf_s{s}"), n, MBUF_CACHE, dpdk_sys::RTE_MBUF_DEFAULT_BUF_SIZE as u16, s)
                .map_err(StartError::Pool)?;
            pools.push((s, pool));
        }

        let mut running = Vec::new();
        for (p, mut port, info, mac) in ports {
            if info.max_tx_queues < nworkers {
                return Err(StartError::TooFewTxQueues { port: p.name.clone(), offered: info.max_tx_queues, needed: nworkers });
            }
            let rx_queues = p.rx_queues.unwrap_or(nworkers).min(info.max_rx_queues.max(1));
            let tx_queues = (nworkers + 1).min(info.max_tx_queues);
            if rx_queues < nworkers && p.rx_queues.is_none() {
                notes.push(format!(
                    "port {}: device offers {} RX queue(s) for {} workers; only the first {} poll it",
                    p.name, info.max_rx_queues, nworkers, rx_queues
                ));
            }
            if tx_queues == nworkers {
                notes.push(format!("port {}: no spare TX queue for the control thread; it cannot send on this port", p.name));
            }
            let s = socket_of(&info);
            let pool = &pools.iter().find(|(sock, _)| *sock == s).expect("pool per socket").1;
            let setup = PortSetup { rx_queues, tx_queues, rx_desc: p.rx_desc, tx_desc: p.tx_desc };
            let port_err = |err| StartError::Port { port: p.name.clone(), err };
            let (rx_desc, tx_desc) = port.configure(&setup, pool).map_err(port_err)?;
            port.start().map_err(port_err)?;
            let spread = match (nworkers, rx_queues) {
                (1, _) => PortSpread::OneWorker,
                (_, q) if q % nworkers != 0 => PortSpread::Software(format!("{q} RX queue(s) do not divide among {nworkers} workers")),
                (_, q) => port.spread_symmetric(q).map_or_else(PortSpread::Software, |()| PortSpread::Device),
            };
            if let PortSpread::Software(why) = &spread {
                notes.push(format!(
                    "port {}: {why}; the workers spread its packets in software (each one another worker owns is handed to it)",
                    p.name
                ));
            }
            running.push(RunningPort { spec: p.clone(), port, info, mac, rx_queues, tx_queues, rx_desc, tx_desc, spread });
        }

        let tsc_hz = eal.tsc_hz();
        let conf = WorkerConf {
            burst: spec.burst,
            drain_cycles: (tsc_hz as u128 * spec.drain.as_nanos() / 1_000_000_000).max(1) as u64,
            mode: spec.mode,
        };
        let workers = spec
            .eal
            .worker_lcores
            .iter()
            .map(|&lcore| WorkerSlot {
                lcore,
                counters: Arc::new(WorkerCounters::new(spec.ports.len())),
                punt: Arc::new(ArrayQueue::new(PUNT_RING)),
                latency: [latency::Slot::new("residence"), latency::Slot::new("iteration")],
                launched: false,
            })
            .collect();
        let control_tx = running.iter_mut().map(|p| p.port.take_tx_queue(nworkers)).collect();
        let control_counters = Arc::new(WorkerCounters::new(spec.ports.len()));
        Ok(Engine {
            workers,
            control_out: ControlEgress::new(control_tx, control_counters.clone()),
            control_counters,
            ports: running,
            pools,
            stop: Arc::new(AtomicBool::new(false)),
            conf,
            latency_every: spec.latency_every,
            stall_cycles: (tsc_hz as u128 * spec.stall.as_nanos() / 1_000_000_000) as u64,
            notes,
            failed_workers: Vec::new(),
            tsc_hz,
            qos: (0..spec.ports.len()).map(|_| None).collect(),
            qos_counters: Vec::new(),
            eal,
        })
    }

    /// How flows are spread over the workers (the chain's affinity stage).
    pub fn spread(&self) -> crate::flow::affinity::Spread {
        crate::flow::affinity::Spread {
            workers: self.workers.len() as u16,
            check_ports: (0..).zip(&self.ports).filter(|(_, p)| matches!(p.spread, PortSpread::Software(_))).map(|(i, _)| i).collect(),
        }
    }

    /// Starts one worker per worker lcore, each with the stage chain
    /// `make_stages(worker_index, ports)` builds for it. With several
    /// workers, each pair is joined by a handoff ring each way.
    pub fn launch<S, F>(&mut self, mut make_stages: F) -> Result<(), StartError>
    where
        S: Stage<Mbuf> + Send + 'static,
        F: FnMut(usize, &[RunningPort]) -> S,
    {
        let nworkers = self.workers.len() as u16;
        // to[from][to] and from[to]: the two ends of one ring per ordered pair.
        let n = nworkers as usize;
        let mut to: Vec<Vec<Option<HandoffTx<Mbuf>>>> = (0..n).map(|_| (0..n).map(|_| None).collect()).collect();
        let mut from: Vec<Vec<HandoffRx<Mbuf>>> = (0..n).map(|_| Vec::new()).collect();
        for (a, row) in to.iter_mut().enumerate() {
            for (b, slot) in row.iter_mut().enumerate().filter(|&(b, _)| b != a) {
                let (tx, rx) = crate::spsc::ring(handoff_ring(n));
                *slot = Some(tx);
                from[b].push(rx);
            }
        }
        let ends = to.into_iter().zip(from);
        for ((i, slot), (to, from)) in self.workers.iter_mut().enumerate().zip(ends) {
            let queues = self
                .ports
                .iter_mut()
                .enumerate()
                .map(|(idx, p)| PortQueues {
                    port: idx as PortIdx,
                    rx: worker_rx_queues(i, nworkers as usize, p.rx_queues).filter_map(|q| p.port.take_rx_queue(q)).collect(),
                    tx: p.port.take_tx_queue(i as u16),
                })
                .collect();
            let stages = make_stages(i, &self.ports);
            let lat = (self.latency_every > 0).then(|| WorkerLatency {
                residence: slot.latency[0].recorder(),
                iteration: slot.latency[1].recorder(),
                every: self.latency_every,
                stall_cycles: self.stall_cycles,
                now: dpdk::tsc,
            });
            let mut worker = Worker::with_latency(queues, Some(slot.punt.clone()), stages, slot.counters.clone(), self.conf, Tsc, lat);
            worker.set_handoff(to, from);
            for (port, shaper) in self.qos.iter().enumerate() {
                if let Some(shaper) = shaper {
                    let sched = crate::qos::Scheduler::new(shaper.clone(), self.tsc_hz);
                    self.qos_counters.push((i, port as PortIdx, sched.counters.clone()));
                    worker.set_qos(port as PortIdx, sched);
                }
            }
            let stop = self.stop.clone();
            self.eal
                .launch(slot.lcore, move || {
                    worker.run(&stop);
                    0
                })
                .map_err(|err| StartError::Launch { lcore: slot.lcore, err })?;
            slot.launched = true;
        }
        Ok(())
    }

    /// Shapes `port` with QoS on every worker launched after this (the
    /// port's buckets are shared by them). Returns the shaper.
    pub fn set_port_qos(&mut self, port: PortIdx, conf: crate::qos::PortQosConf) -> Option<Arc<crate::qos::PortShaper>> {
        let shaper = crate::qos::PortShaper::new(conf, self.tsc_hz);
        *self.qos.get_mut(port as usize)? = Some(shaper.clone());
        let sched = crate::qos::Scheduler::new(shaper.clone(), self.tsc_hz);
        // The control thread's counters, under worker index usize::MAX.
        self.qos_counters.push((usize::MAX, port, sched.counters.clone()));
        self.control_out.set_qos(port, sched);
        Some(shaper)
    }

    /// Every worker's scheduler counters: (worker index, port, counters).
    pub fn qos_counters(&self) -> &[(usize, PortIdx, Arc<crate::qos::QosCounters>)] {
        &self.qos_counters
    }

    pub fn ports(&self) -> &[RunningPort] {
        &self.ports
    }

    /// Warnings about degraded set-ups (fewer queues than workers, ...).
    pub fn notes(&self) -> &[String] {
        &self.notes
    }

    pub fn tsc_hz(&self) -> u64 {
        self.tsc_hz
    }

    pub fn worker_lcores(&self) -> Vec<u32> {
        self.workers.iter().map(|w| w.lcore).collect()
    }

    /// The rings the workers punt packets into, one per worker.
    pub fn punt_rings(&self) -> Vec<PuntRing<Mbuf>> {
        self.workers.iter().map(|w| w.punt.clone()).collect()
    }

    /// Each worker's lcore and latency histograms (residence, iteration).
    pub fn latency_slots(&self) -> Vec<(u32, Vec<Arc<latency::Slot>>)> {
        self.workers.iter().map(|w| (w.lcore, w.latency.to_vec())).collect()
    }

    /// Loop iterations at least this many cycles long count as stalls.
    pub fn stall_cycles(&self) -> u64 {
        self.stall_cycles
    }

    /// Counters for what the control thread sends and drops.
    pub fn control_counters(&self) -> &WorkerCounters {
        &self.control_counters
    }

    /// A fresh mbuf from the pool of `port`'s NUMA socket.
    pub fn alloc(&self, port: PortIdx) -> Option<Mbuf> {
        let socket = self.ports.get(port as usize).map_or(-1, |p| p.info.socket);
        let pool = self.pools.iter().find(|(s, _)| *s == socket).or_else(|| self.pools.first())?;
        pool.1.alloc()
    }

    /// Sends packets on `port` through the control thread's own TX queue
    /// (and the port's shaper, when it has one); what cannot be sent is
    /// freed and counted against the port.
    pub fn control_send(&mut self, port: PortIdx, pkts: &mut Burst<Mbuf>) {
        self.control_out.send(port, pkts, dpdk::tsc());
    }

    /// Sends what the shaped ports' rates allow of the control thread's
    /// queued packets; returns how many still wait. Call it every loop.
    pub fn control_qos_poll(&mut self) -> usize {
        self.control_out.poll(dpdk::tsc())
    }

    /// Reads every counter without stopping or locking the workers.
    pub fn snapshot(&self) -> Snapshot {
        let mut counters: Vec<&WorkerCounters> = self.workers.iter().map(|w| &*w.counters).collect();
        counters.push(&self.control_counters);
        Snapshot {
            tsc: dpdk::tsc(),
            ports: port_totals(&counters, self.ports.len()),
            eth: self.ports.iter().map(|p| p.port.stats().unwrap_or_default()).collect(),
            workers: self
                .workers
                .iter()
                .map(|w| {
                    let c = &w.counters.core;
                    let tid = c.tid.get();
                    WorkerSnapshot {
                        lcore: w.lcore,
                        tid,
                        busy_cycles: c.busy_cycles.get(),
                        polls: c.polls.get(),
                        sleeps: c.sleeps.get(),
                        rx_packets: w.counters.ports.iter().map(|p| p.rx_packets.get()).sum(),
                        handoff_out: c.handoff_out.get(),
                        handoff_in: c.handoff_in.get(),
                        cpu_seconds: (tid != 0).then(|| thread_cpu_seconds(tid)).flatten(),
                        ports: port_totals(&[&w.counters], self.ports.len()),
                    }
                })
                .collect(),
            control: port_totals(&[&self.control_counters], self.ports.len()),
        }
    }

    /// Stops the workers and waits for them (idempotent). Afterwards no
    /// worker touches a queue, a ring or a snapshot, so the control thread
    /// can release what it holds before [`Engine::shutdown`].
    pub fn stop_workers(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        for w in self.workers.iter_mut().filter(|w| w.launched) {
            if self.eal.wait(w.lcore) != 0 {
                self.failed_workers.push(w.lcore);
            }
            w.launched = false;
        }
    }

    /// Stops workers and ports and checks every pool got all its mbufs back.
    pub fn shutdown(mut self) -> ShutdownReport {
        self.stop_workers();
        let failed_workers = std::mem::take(&mut self.failed_workers);
        let last = self.snapshot();
        for w in &self.workers {
            while w.punt.pop().is_some() {}
        }
        // The handoff rings went with the workers that held their ends.
        self.control_out.close();
        for p in &mut self.ports {
            let _ = p.port.stop();
        }
        self.ports.clear(); // closes: RX rings give their mbufs back
        let pools =
            self.pools.iter().map(|(_, p)| PoolCheck { name: p.name().to_owned(), available: p.available(), size: p.size() }).collect();
        ShutdownReport { last, pools, failed_workers }
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        self.stop_workers();
    }
}

impl crate::egress::ControlIo for Engine {
    type Pkt = Mbuf;

    fn alloc(&mut self, port: PortIdx) -> Option<Mbuf> {
        Engine::alloc(self, port)
    }

    fn send(&mut self, port: PortIdx, pkts: &mut Burst<Mbuf>) {
        self.control_send(port, pkts);
    }

    fn count_drop(&self, port: PortIdx, reason: crate::counters::DropReason, n: u64) {
        if let Some(c) = self.control_counters.ports.get(port as usize) {
            c.drop(reason, n);
        }
    }

    fn tsc(&self) -> u64 {
        dpdk::tsc()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::worker::PollMode;
    use std::time::Duration;

    #[test]
    fn devices_parse_or_say_what_was_expected() {
        assert_eq!(Device::parse("0000:03:00.0"), Ok(Device::Pci("0000:03:00.0".into())));
        assert_eq!(Device::parse("03:00.1"), Ok(Device::Pci("0000:03:00.1".into())));
        assert_eq!(Device::parse("0000:AF:00.0"), Ok(Device::Pci("0000:af:00.0".into())));
        assert_eq!(Device::parse("net_null0"), Ok(Device::Vdev { name: "net_null0".into(), args: "".into() }));
        assert_eq!(
            Device::parse("net_pcap1,rx_pcap=/tmp/a b.pcap,infinite_rx=1"),
            Ok(Device::Vdev { name: "net_pcap1".into(), args: "rx_pcap=/tmp/a b.pcap,infinite_rx=1".into() })
        );
        for bad in [
            "eth0",
            "",
            "net_",
            "net_null",
            "net_Null0",
            "net_null0,",
            "net_null0,size",
            "0000:03:00.8",
            "0000:3:00.0",
            "1:2:3:4",
            "net_null0,=5",
        ] {
            let e = Device::parse(bad).unwrap_err();
            assert!(e.contains(&format!("{bad:?}")), "{bad}: {e}");
        }
    }

    #[test]
    fn own_thread_cpu_time_is_readable() {
        let tid = unsafe { libc::gettid() } as u64;
        assert!(thread_cpu_seconds(tid).unwrap() >= 0.0);
        assert!(thread_cpu_seconds(u64::MAX).is_none());
    }

    #[test]
    fn vdevs_name_the_kernel_interfaces_they_open() {
        let d = |s: &str| Device::parse(s).unwrap();
        let a = d("net_af_packet1,iface=veth0,qpairs=2");
        assert_eq!((a.driver(), a.kernel_ifaces(), a.af_packet_iface()), (Some("net_af_packet"), vec![("iface", "veth0")], Some("veth0")));
        let p = d("net_pcap0,rx_iface=a,tx_pcap=out.pcap,tx_iface=b");
        assert_eq!((p.kernel_ifaces(), p.af_packet_iface()), (vec![("rx_iface", "a"), ("tx_iface", "b")], None));
        assert_eq!(d("net_af_xdp0,iface=x,start_queue=0").kernel_ifaces(), vec![("iface", "x")]);
        assert!(d("net_tap0,iface=tap0").kernel_ifaces().is_empty(), "tap creates its interface");
        assert_eq!((d("0000:03:00.0").driver(), d("0000:03:00.0").kernel_ifaces()), (None, vec![]));
    }

    #[test]
    fn eal_args_follow_the_spec() {
        let spec = EngineSpec {
            eal: EalSpec {
                main_lcore: 0,
                worker_lcores: vec![1, 2],
                cpu_map: vec![(2, 1)],
                memory_mb: 512,
                hugepages: false,
                file_prefix: "t1".into(),
                log_level: "notice".into(),
                extra_args: vec!["--no-telemetry".into()],
            },
            ports: vec![
                PortSpec { name: "a".into(), device: Device::parse("net_null0").unwrap(), rx_desc: 512, tx_desc: 512, rx_queues: None },
                PortSpec { name: "b".into(), device: Device::parse("0000:03:00.0").unwrap(), rx_desc: 512, tx_desc: 512, rx_queues: None },
            ],
            burst: 32,
            drain: Duration::from_micros(100),
            mode: PollMode::Busy,
            mbufs: 0,
            latency_every: 16,
            stall: Duration::from_micros(50),
        };
        assert_eq!(
            spec.eal_args().join(" "),
            "eal --lcores 0@0,1@1,2@1 --main-lcore 0 --no-huge -m 512 --file-prefix t1 --log-level=notice -a 0000:03:00.0 --no-telemetry"
        );
        let mut vdev_only = spec.clone();
        vdev_only.ports.pop();
        vdev_only.eal.hugepages = true;
        assert!(vdev_only.eal_args().join(" ").contains("-m 512 --file-prefix t1 --log-level=notice --no-pci"));
        // DPDK telemetry: off unless asked for.
        vdev_only.eal.extra_args.clear();
        assert!(vdev_only.eal_args().join(" ").ends_with("--no-pci --no-telemetry"));
        vdev_only.eal.extra_args = vec!["--telemetry".into()];
        assert!(vdev_only.eal_args().join(" ").ends_with("--no-pci --telemetry"));
    }
}
