//! The poll loop: one per worker lcore, no locks, no allocation, no
//! syscalls while packets flow (adaptive mode sleeps only when idle).
//!
//! Each iteration: RX a burst from every assigned queue, then from every
//! other worker's handoff ring, run every packet through the stage chain,
//! buffer it for its egress port (or hand it to the worker that owns its
//! flow), flush a port's buffer when full or when the drain timer
//! (~100 µs) fires, and free and count whatever TX refuses.

use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

use crate::counters::{DropReason, WorkerCounters};
use crate::egress::{
    buffer, bytes, drain_qos, egress, enqueue, flush_all, send_burst, Egress, HandoffRx, HandoffTx, PuntRing, TxLatency, TxPort, TxQueue,
};
use crate::latency::{Recorder, Sampler};
use crate::packet::{Burst, Packet};
use crate::pipeline::{Meta, Metas, Stage, NO_PORT, TO_CONTROL};
use crate::qos::Scheduler;
use crate::{PortIdx, MAX_BURST};

/// Empty polls in a row before adaptive mode starts sleeping.
const SPIN_POLLS_BEFORE_SLEEP: u32 = 256;

/// First sleep of adaptive mode; doubles on each further idle poll.
const MIN_SLEEP: Duration = Duration::from_micros(8);

/// A device RX queue owned by exactly one worker.
pub trait RxQueue: Send {
    type Pkt: Packet;
    /// Appends up to `max` received packets to `burst`; returns how many.
    fn rx_burst(&mut self, burst: &mut Burst<Self::Pkt>, max: usize) -> usize;
}

/// Monotonic cycle counter (the TSC in production).
pub trait Clock: Send {
    fn now(&self) -> u64;
}

/// What the loop does when its queues are empty.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PollMode {
    /// Spin: lowest latency, one full core per worker.
    Busy,
    /// Spin briefly, then back off with short sleeps up to `max_sleep`.
    Adaptive { max_sleep: Duration },
}

/// Loop parameters, fixed when the worker starts.
#[derive(Clone, Copy, Debug)]
pub struct WorkerConf {
    /// Packets per RX burst and TX flush threshold (1..=MAX_BURST).
    pub burst: usize,
    /// Drain timer in clock cycles: buffered TX is flushed at least this often.
    pub drain_cycles: u64,
    pub mode: PollMode,
}

/// The queues of one port assigned to a worker.
pub struct PortQueues<R, T> {
    pub port: PortIdx,
    /// RX queues of the port this worker polls (usually one).
    pub rx: Vec<R>,
    pub tx: Option<T>,
}

/// What a worker measures about latency (see [`crate::latency`]).
pub struct WorkerLatency {
    /// Residence per packet: from the start of the poll iteration that
    /// received it to the TX burst that sent it; one TX burst in `every`.
    pub residence: Recorder,
    /// Length of poll-loop iterations: one in `every`, and every one at
    /// least `stall_cycles` long (so stalls are never missed).
    pub iteration: Recorder,
    pub every: u32,
    pub stall_cycles: u64,
    /// The clock latency is measured with (the TSC).
    pub now: fn() -> u64,
}

/// One worker's state: its queues, stage chain, counters and clock.
pub struct Worker<R: RxQueue, T, S, C> {
    rx: Vec<(PortIdx, R)>,
    /// Rings other workers hand this one packets on.
    handed: Vec<HandoffRx<R::Pkt>>,
    out: Egress<T, R::Pkt>,
    stages: S,
    counters: Arc<WorkerCounters>,
    conf: WorkerConf,
    clock: C,
    /// Iteration lengths, and how often to sample them.
    iteration: Option<(Recorder, Sampler, u64)>,
}

impl<R, T, S, C> Worker<R, T, S, C>
where
    R: RxQueue,
    T: TxQueue<R::Pkt>,
    S: Stage<R::Pkt>,
    C: Clock,
{
    /// `ports` must hold one entry per configured port, in port-index order;
    /// `punt` receives packets the stages send [`TO_CONTROL`].
    pub fn new(
        ports: Vec<PortQueues<R, T>>,
        punt: Option<PuntRing<R::Pkt>>,
        stages: S,
        counters: Arc<WorkerCounters>,
        conf: WorkerConf,
        clock: C,
    ) -> Self {
        Self::with_latency(ports, punt, stages, counters, conf, clock, None)
    }

    /// [`Worker::new`], measuring latency into `latency`.
    pub fn with_latency(
        ports: Vec<PortQueues<R, T>>,
        punt: Option<PuntRing<R::Pkt>>,
        stages: S,
        counters: Arc<WorkerCounters>,
        conf: WorkerConf,
        clock: C,
        latency: Option<WorkerLatency>,
    ) -> Self {
        assert!((1..=MAX_BURST).contains(&conf.burst), "burst out of range");
        assert_eq!(ports.len(), counters.ports.len(), "one counter block per port");
        let mut rx = Vec::new();
        let mut tx = Vec::new();
        for (i, p) in ports.into_iter().enumerate() {
            assert_eq!(p.port as usize, i, "ports in index order");
            rx.extend(p.rx.into_iter().map(|q| (p.port, q)));
            tx.push(TxPort { queue: p.tx, buf: Burst::new(), since: 0, qos: None });
        }
        let (lat, iteration) = match latency {
            Some(l) => (
                Some(TxLatency { rec: l.residence, sampler: Sampler::new(l.every), t0: 0, now: l.now }),
                Some((l.iteration, Sampler::new(l.every), l.stall_cycles)),
            ),
            None => (None, None),
        };
        let out = Egress { tx, now: 0, punt, handoff: Vec::new(), trash: Burst::new(), lat };
        Worker { rx, handed: Vec::new(), out, stages, counters, conf, clock, iteration }
    }

    /// Connects the worker to the others: `to[w]` carries packets to
    /// worker `w` (`None` for this one), `from` the rings into this one.
    pub fn set_handoff(&mut self, to: Vec<Option<HandoffTx<R::Pkt>>>, from: Vec<HandoffRx<R::Pkt>>) {
        self.out.handoff = to;
        self.handed = from;
    }

    /// Shapes `port` with `sched` (its class queues on this worker).
    pub fn set_qos(&mut self, port: PortIdx, sched: Scheduler<R::Pkt>) {
        if let Some(tx) = self.out.tx.get_mut(port as usize) {
            tx.qos = Some(sched);
        }
    }

    /// Polls until `stop` is set, then flushes what is buffered.
    pub fn run(&mut self, stop: &AtomicBool) {
        let core = &self.counters.core;
        // SAFETY: gettid has no preconditions.
        core.tid.add(unsafe { libc::gettid() } as u64);
        let mut rx = Burst::new();
        let mut idle = Backoff::default();
        let mut last = self.clock.now();
        let mut last_drain = last;

        while !stop.load(Relaxed) {
            self.stages.tick();
            self.out.now = last;
            if let Some(l) = self.out.lat.as_mut() {
                l.t0 = last;
                l.rec.sync();
            }
            let mut got = 0;
            for (port, queue) in self.rx.iter_mut() {
                let n = queue.rx_burst(&mut rx, self.conf.burst);
                if n > 0 {
                    got += n;
                    process_burst(*port, &mut rx, Meta::NEW, &mut self.stages, &mut self.out, &self.counters, self.conf.burst);
                }
            }
            for ring in &mut self.handed {
                got += drain_handoff(ring, &mut rx, &mut self.stages, &mut self.out, &self.counters, self.conf.burst);
            }
            // What this iteration handed over becomes visible: one store per ring.
            for ring in self.out.handoff.iter_mut().flatten() {
                ring.publish();
            }

            let now = self.clock.now();
            let shaping = drain_qos(&mut self.out, &self.counters, now, self.conf.burst);
            let took = now.wrapping_sub(last);
            if got > 0 {
                core.busy_cycles.add(took);
            }
            if let Some((rec, sampler, stall)) = self.iteration.as_mut() {
                if took >= *stall || sampler.hit() {
                    rec.record_n(took, 1);
                } else {
                    rec.sync();
                }
            }
            core.polls.add(1);
            last = now;
            if now.wrapping_sub(last_drain) >= self.conf.drain_cycles {
                flush_all(&mut self.out, &self.counters);
                last_drain = now;
            }
            if let PollMode::Adaptive { max_sleep } = self.conf.mode {
                // Shaped packets waiting for credit keep the loop awake.
                if let Some(nap) = idle.after_poll(got + shaping, max_sleep) {
                    flush_all(&mut self.out, &self.counters);
                    core.sleeps.add(1);
                    std::thread::sleep(nap);
                    last = self.clock.now();
                }
            }
        }
        flush_all(&mut self.out, &self.counters);
    }
}

/// Takes up to one burst from a ring another worker hands this one
/// packets on and runs it through the stages, one burst per arrival port.
/// Returns how many packets it took.
#[inline(always)]
fn drain_handoff<P: Packet, T: TxQueue<P>, S: Stage<P>>(
    ring: &mut HandoffRx<P>,
    rx: &mut Burst<P>,
    stages: &mut S,
    out: &mut Egress<T, P>,
    counters: &WorkerCounters,
    burst: usize,
) -> usize {
    let mut at = NO_PORT;
    let mut took = 0;
    while took < burst {
        let Some((pkt, port)) = ring.pop() else { break };
        if port != at && !rx.is_empty() {
            process_burst(at, rx, Meta::HANDED_INNER, stages, out, counters, burst);
        }
        at = port;
        took += 1;
        // rx was emptied by the last burst and holds fewer than `burst` since.
        if let Err(p) = rx.push(pkt) {
            drop(p);
        }
    }
    ring.release();
    if !rx.is_empty() {
        process_burst(at, rx, Meta::HANDED_INNER, stages, out, counters, burst);
    }
    counters.core.handoff_in.add(took as u64);
    took
}

/// Runs one burst (all received on `port`) through the stages and hands
/// each packet to its egress port's TX buffer (or the control thread, or
/// the worker that owns its flow), or drops and counts it. `first` is
/// every packet's meta before the first stage: [`Meta::NEW`] for what a
/// queue received (counted as received here), [`Meta::HANDED_INNER`] for
/// what another worker handed over (counted there).
#[inline(always)]
fn process_burst<P: Packet, T: TxQueue<P>, S: Stage<P>>(
    port: PortIdx,
    rx: &mut Burst<P>,
    first: Meta,
    stages: &mut S,
    out: &mut Egress<T, P>,
    counters: &WorkerCounters,
    flush_at: usize,
) {
    let n = rx.len();
    let c = &counters.ports[port as usize];
    let rx_bytes = bytes(rx);
    if first == Meta::NEW {
        c.rx_packets.add(n as u64);
        c.rx_bytes.add(rx_bytes);
    }
    let mut metas = Metas::uniform_as(n, first);
    stages.process_burst(port, rx.as_mut_slice(), &mut metas);

    // Common cases: the whole burst bound for one port, or all dropped
    // for one reason (a flood of one kind of bad packet).
    if let Some(meta) = metas.common() {
        match (meta.dropped(), meta.out_port()) {
            (Some(reason), _) => {
                counters.ports[port as usize].drop(reason, n as u64);
                rx.free();
                return;
            }
            (None, TO_CONTROL) => {}
            (None, _) if meta.handoff().is_some() => {}
            (None, _) => {
                account_replies(port, meta, n, counters);
                return send_burst(rx, S::KEEPS_LENGTH.then_some(rx_bytes), port, meta, out, counters, flush_at);
            }
        }
    }
    for (i, pkt) in rx.drain().enumerate() {
        dispatch(pkt, port, metas.get(i), out, counters, flush_at);
    }
    out.trash.free();
}

/// Sends one packet where its meta says, or drops and counts it.
#[inline(always)]
fn dispatch<P: Packet, T: TxQueue<P>>(
    pkt: P,
    port: PortIdx,
    meta: Meta,
    out: &mut Egress<T, P>,
    counters: &WorkerCounters,
    flush_at: usize,
) {
    if let Some(w) = meta.handoff() {
        return hand_off(pkt, port, w, out, counters);
    }
    if let Some(reason) = meta.dropped() {
        counters.ports[port as usize].drop(reason, 1);
        // The trash holds at most one burst: it is freed after each.
        let _ = out.trash.push(pkt);
        return;
    }
    account_replies(port, meta, 1, counters);
    if meta.out_port() == TO_CONTROL {
        let c = &counters.ports[port as usize];
        return match out.punt.as_ref().map(|ring| ring.push(pkt)) {
            Some(Ok(())) => c.punted.add(1),
            _ => c.drop(DropReason::PuntFull, 1),
        };
    }
    match egress(port, meta.out_port(), &mut out.tx) {
        Ok(tx) => match tx.qos.as_mut() {
            Some(q) => enqueue(q, pkt, meta, &counters.ports[meta.out_port() as usize], &mut out.trash, out.now),
            None => buffer(tx, pkt, &counters.ports[meta.out_port() as usize], flush_at, &mut out.lat),
        },
        Err((at, reason)) => counters.ports[at as usize].drop(reason, 1),
    }
}

/// Puts a packet on the ring to worker `w`, the owner of its flow; a full
/// ring is a counted drop.
#[inline(always)]
fn hand_off<P: Packet, T: TxQueue<P>>(pkt: P, port: PortIdx, w: usize, out: &mut Egress<T, P>, counters: &WorkerCounters) {
    let c = &counters.ports[port as usize];
    let refused = match out.handoff.get_mut(w).and_then(Option::as_mut) {
        Some(ring) => match ring.push((pkt, port)) {
            Ok(()) => return counters.core.handoff_out.add(1),
            Err((pkt, _)) => (pkt, DropReason::HandoffFull),
        },
        None => (pkt, DropReason::NoEgress),
    };
    c.drop(refused.1, 1);
    let _ = out.trash.push(refused.0);
}

/// Counts packets turned into an ICMP error in place: a drop of the
/// original under its reason, and a reply.
#[inline(always)]
fn account_replies(port: PortIdx, meta: Meta, n: usize, counters: &WorkerCounters) {
    if let Some(reason) = meta.noted() {
        let c = &counters.ports[port as usize];
        c.drop(reason, n as u64);
        c.icmp_errors.add(n as u64);
    }
}

/// Adaptive polling: after a run of empty polls, sleep with exponential
/// back-off; any packet resets it.
#[derive(Default)]
struct Backoff {
    empty_polls: u32,
    sleep: Duration,
}

impl Backoff {
    fn after_poll(&mut self, got: usize, max_sleep: Duration) -> Option<Duration> {
        if got > 0 {
            self.empty_polls = 0;
            self.sleep = Duration::ZERO;
            return None;
        }
        self.empty_polls = self.empty_polls.saturating_add(1);
        if self.empty_polls < SPIN_POLLS_BEFORE_SLEEP {
            return None;
        }
        self.sleep = (self.sleep * 2).clamp(MIN_SLEEP, max_sleep.max(MIN_SLEEP));
        Some(self.sleep)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::packet::{HeapPacket, HeapPool};
    use crate::pipeline::{Meta, Verdict, XConnect};
    use crossbeam_queue::ArrayQueue;
    use std::collections::VecDeque;
    use std::sync::atomic::AtomicU64;
    use std::sync::Mutex;

    /// Fake clock advanced by the fake RX queue.
    #[derive(Clone, Default)]
    struct FakeClock(Arc<AtomicU64>);
    impl Clock for FakeClock {
        fn now(&self) -> u64 {
            self.0.load(Relaxed)
        }
    }

    /// Replays a script of bursts, advancing the clock `tick` per poll, and
    /// raises `stop` when the script is exhausted and `idle_polls` passed.
    struct ScriptRx {
        script: VecDeque<Vec<HeapPacket>>,
        clock: FakeClock,
        tick: u64,
        stop: Arc<AtomicBool>,
        idle_polls: u32,
    }
    impl RxQueue for ScriptRx {
        type Pkt = HeapPacket;
        fn rx_burst(&mut self, burst: &mut Burst<HeapPacket>, max: usize) -> usize {
            self.clock.0.fetch_add(self.tick, Relaxed);
            match self.script.pop_front() {
                Some(pkts) => {
                    assert!(pkts.len() <= max);
                    let n = pkts.len();
                    for p in pkts {
                        burst.push(p).ok().unwrap();
                    }
                    n
                }
                None => {
                    if self.idle_polls == 0 {
                        self.stop.store(true, Relaxed);
                    } else {
                        self.idle_polls -= 1;
                    }
                    0
                }
            }
        }
    }

    /// Records what it sends (first byte of each packet, and the clock at
    /// each call); accepts at most `accept` packets per call.
    /// (clock at the call, first byte of each packet sent).
    type SentLog = Arc<Mutex<Vec<(u64, Vec<u8>)>>>;

    #[derive(Clone)]
    struct RecordTx {
        sent: SentLog,
        clock: FakeClock,
        accept: usize,
    }
    impl TxQueue<HeapPacket> for RecordTx {
        fn tx_burst(&mut self, burst: &mut Burst<HeapPacket>) -> usize {
            let n = burst.len().min(self.accept);
            let now = self.clock.now();
            let mut rec = self.sent.lock().unwrap();
            let ids = burst.as_slice()[..n].iter().map(|p| p.data()[0]).collect();
            rec.push((now, ids));
            // Consume (free) the first n, as a device would.
            for i in 0..n {
                drop(unsafe { burst.as_mut_ptr().add(i).read() });
            }
            unsafe { burst.forget_front(n) };
            n
        }
    }

    struct Rig {
        pool: HeapPool,
        clock: FakeClock,
        stop: Arc<AtomicBool>,
        tx: RecordTx,
        counters: Arc<WorkerCounters>,
    }

    impl Rig {
        fn new(accept: usize) -> Rig {
            let clock = FakeClock::default();
            Rig {
                pool: HeapPool::new(),
                tx: RecordTx { sent: Default::default(), clock: clock.clone(), accept },
                clock,
                stop: Arc::new(AtomicBool::new(false)),
                counters: Arc::new(WorkerCounters::new(2)),
            }
        }

        fn burst(&self, ids: std::ops::Range<u8>) -> Vec<HeapPacket> {
            ids.map(|i| self.pool.packet(&[i; 64])).collect()
        }

        /// Port 0 receives `script`; everything cross-connects 0 -> 1.
        fn run(&self, script: Vec<Vec<HeapPacket>>, tick: u64, idle_polls: u32, conf: WorkerConf) {
            let rx = ScriptRx { script: script.into(), clock: self.clock.clone(), tick, stop: self.stop.clone(), idle_polls };
            let ports = vec![
                PortQueues { port: 0, rx: vec![rx], tx: Some(self.tx.clone()) },
                PortQueues { port: 1, rx: vec![], tx: Some(self.tx.clone()) },
            ];
            let mut w = Worker::new(ports, None, XConnect::new(&[(0, 1)]), self.counters.clone(), conf, self.clock.clone());
            w.run(&self.stop);
        }
    }

    fn conf(burst: usize, drain_cycles: u64) -> WorkerConf {
        WorkerConf { burst, drain_cycles, mode: PollMode::Busy }
    }

    /// Sends everything to port 1; packets whose first byte is below 100
    /// are RealTime, the rest Bulk.
    struct ClassBy;
    impl Stage<HeapPacket> for ClassBy {
        fn process(&mut self, _: PortIdx, pkt: &mut HeapPacket, meta: &mut Meta) -> Verdict {
            meta.set_out_port(1);
            meta.set_class(if pkt.data()[0] < 100 { crate::vocab::Class::RealTime } else { crate::vocab::Class::Bulk });
            Verdict::Continue
        }
    }

    #[test]
    fn a_shaped_port_sends_at_its_rate_and_realtime_overtakes_queued_bulk() {
        let rig = Rig::new(usize::MAX);
        // 64-byte frames at 512 kbit/s: one per millisecond; polls every 0.1 ms.
        let mut qconf = crate::qos::PortQosConf::new(512_000);
        qconf.burst_bytes = 64;
        // RealTime's burst here is the whole link's rate: let priority take it all.
        qconf.priority_cap_pct = 100;
        let shaper = crate::qos::PortShaper::new(qconf, 1_000_000_000);
        let script = vec![rig.burst(100..120), rig.burst(1..6)];
        let rx = ScriptRx { script: script.into(), clock: rig.clock.clone(), tick: 100_000, stop: rig.stop.clone(), idle_polls: 400 };
        let ports = vec![
            PortQueues { port: 0, rx: vec![rx], tx: Some(rig.tx.clone()) },
            PortQueues { port: 1, rx: vec![], tx: Some(rig.tx.clone()) },
        ];
        let mut w = Worker::new(ports, None, ClassBy, rig.counters.clone(), conf(32, 1), rig.clock.clone());
        w.set_qos(1, crate::qos::Scheduler::new(shaper, 1_000_000_000));
        w.run(&rig.stop);
        let sent = rig.tx.sent.lock().unwrap();
        let order: Vec<u8> = sent.iter().flat_map(|(_, ids)| ids.clone()).collect();
        assert_eq!(order.len(), 25, "everything leaves in the end: {order:?}");
        let first_rt = order.iter().position(|&i| i < 100).unwrap();
        assert!(first_rt <= 2, "RealTime overtakes the queued Bulk: {order:?}");
        assert!(order[first_rt..first_rt + 5].iter().all(|&i| i < 100), "{order:?}");
        // One frame per millisecond.
        let (t0, t1) = (sent.first().unwrap().0, sent.last().unwrap().0);
        let ms = (t1 - t0) as f64 / 1e6;
        assert!((23.0..=25.5).contains(&ms), "25 frames took {ms} ms at one per ms");
        assert_eq!(rig.pool.in_use(), 0);
    }

    #[test]
    fn full_buffers_flush_immediately_and_partial_ones_on_the_drain_timer() {
        let rig = Rig::new(usize::MAX);
        // 32 packets fill the buffer at once; 5 more wait for the drain timer.
        let script = vec![rig.burst(0..32), rig.burst(32..37)];
        rig.run(script, 10, 50, conf(32, 100));
        let sent = rig.tx.sent.lock().unwrap();
        assert_eq!(sent.len(), 2, "{sent:?}");
        assert_eq!(sent[0].1, (0..32).collect::<Vec<u8>>());
        assert_eq!(sent[0].0, 10, "full burst goes out in the poll that filled it");
        assert_eq!(sent[1].1, (32..37).collect::<Vec<u8>>());
        // Partial burst arrived at t=20 and left when >= 100 cycles had passed since the last drain (t=0).
        assert!(sent[1].0 >= 100 && sent[1].0 <= 110, "drained at {}", sent[1].0);
        let c = &rig.counters.ports;
        assert_eq!(c[0].rx_packets.get(), 37);
        assert_eq!(c[1].tx_packets.get(), 37);
        assert_eq!(rig.pool.in_use(), 0);
    }

    #[test]
    fn refused_packets_are_freed_and_counted_per_egress_port() {
        let rig = Rig::new(20);
        rig.run(vec![rig.burst(0..32), rig.burst(0..32)], 1, 0, conf(32, 1_000_000));
        let c = &rig.counters.ports[1];
        assert_eq!(c.tx_packets.get(), 40);
        assert_eq!(c.drops[DropReason::TxFull as usize].get(), 24);
        assert_eq!(rig.pool.in_use(), 0, "refused packets must be freed");
    }

    #[test]
    fn bytes_are_counted_as_received_and_as_sent() {
        // Cross-connect keeps lengths: TX bytes are those the device took.
        let rig = Rig::new(20);
        rig.run(vec![rig.burst(0..32), rig.burst(0..32)], 1, 0, conf(32, 1_000_000));
        let c = &rig.counters.ports;
        assert_eq!(c[0].rx_bytes.get(), 64 * 64);
        assert_eq!(c[1].tx_bytes.get(), 40 * 64, "refused packets are not counted as sent");

        // A stage that shortens packets: TX bytes are the new lengths.
        struct Trim;
        impl Stage<HeapPacket> for Trim {
            fn process(&mut self, _: PortIdx, pkt: &mut HeapPacket, meta: &mut Meta) -> crate::pipeline::Verdict {
                pkt.truncate(60);
                meta.set_out_port(1);
                crate::pipeline::Verdict::Continue
            }
        }
        let rig = Rig::new(usize::MAX);
        let rx =
            ScriptRx { script: vec![rig.burst(0..32)].into(), clock: rig.clock.clone(), tick: 1, stop: rig.stop.clone(), idle_polls: 0 };
        let ports = vec![
            PortQueues { port: 0, rx: vec![rx], tx: Some(rig.tx.clone()) },
            PortQueues { port: 1, rx: vec![], tx: Some(rig.tx.clone()) },
        ];
        let mut w = Worker::new(ports, None, Trim, rig.counters.clone(), conf(32, 10), rig.clock.clone());
        w.run(&rig.stop);
        assert_eq!(rig.counters.ports[0].rx_bytes.get(), 32 * 64);
        assert_eq!(rig.counters.ports[1].tx_bytes.get(), 32 * 60);
        assert_eq!(rig.pool.in_use(), 0);
    }

    #[test]
    fn packets_without_egress_are_dropped_with_a_reason() {
        // Port 1 is not cross-connected: XConnect leaves its packets undecided.
        let rig = Rig::new(usize::MAX);
        let stop = rig.stop.clone();
        let rx = ScriptRx { script: vec![rig.burst(0..8)].into(), clock: rig.clock.clone(), tick: 1, stop: stop.clone(), idle_polls: 0 };
        // Port 1 receives but is not cross-connected anywhere.
        let ports = vec![
            PortQueues { port: 0, rx: vec![], tx: Some(rig.tx.clone()) },
            PortQueues { port: 1, rx: vec![rx], tx: Some(rig.tx.clone()) },
        ];
        let mut w = Worker::new(ports, None, XConnect::new(&[(0, 1)]), rig.counters.clone(), conf(32, 10), rig.clock.clone());
        w.run(&stop);
        assert_eq!(rig.counters.ports[1].drops[DropReason::NoEgress as usize].get(), 8);
        assert_eq!(rig.counters.ports[1].rx_packets.get(), 8);
        assert_eq!(rig.pool.in_use(), 0);
    }

    #[test]
    fn egress_without_tx_queue_is_counted() {
        let rig = Rig::new(usize::MAX);
        let rx =
            ScriptRx { script: vec![rig.burst(0..3)].into(), clock: rig.clock.clone(), tick: 1, stop: rig.stop.clone(), idle_polls: 0 };
        let ports = vec![
            PortQueues { port: 0, rx: vec![rx], tx: Some(rig.tx.clone()) },
            PortQueues::<ScriptRx, RecordTx> { port: 1, rx: vec![], tx: None },
        ];
        let mut w = Worker::new(ports, None, XConnect::new(&[(0, 1)]), rig.counters.clone(), conf(32, 10), rig.clock.clone());
        w.run(&rig.stop);
        assert_eq!(rig.counters.ports[1].drops[DropReason::NoTxQueue as usize].get(), 3);
        assert_eq!(rig.pool.in_use(), 0);
    }

    /// Sends packets whose first byte is even to port 1, drops odd ones.
    struct EvenOdd;
    impl Stage<HeapPacket> for EvenOdd {
        fn process(&mut self, _: PortIdx, pkt: &mut HeapPacket, meta: &mut Meta) -> crate::pipeline::Verdict {
            if pkt.data()[0].is_multiple_of(2) {
                meta.set_out_port(1);
                crate::pipeline::Verdict::Continue
            } else {
                crate::pipeline::Verdict::Drop(DropReason::NoEgress)
            }
        }
    }

    #[test]
    fn mixed_bursts_split_per_packet() {
        let rig = Rig::new(usize::MAX);
        let script = (0..5).map(|i| rig.burst(i * 8..i * 8 + 8)).collect();
        let rx = ScriptRx { script, clock: rig.clock.clone(), tick: 1, stop: rig.stop.clone(), idle_polls: 0 };
        let ports = vec![
            PortQueues { port: 0, rx: vec![rx], tx: Some(rig.tx.clone()) },
            PortQueues { port: 1, rx: vec![], tx: Some(rig.tx.clone()) },
        ];
        let mut w = Worker::new(ports, None, EvenOdd, rig.counters.clone(), conf(8, 1_000_000), rig.clock.clone());
        w.run(&rig.stop);
        let sent: Vec<Vec<u8>> = rig.tx.sent.lock().unwrap().iter().map(|s| s.1.clone()).collect();
        let evens: Vec<u8> = (0..40).filter(|i| i % 2 == 0).collect();
        assert_eq!(sent, vec![evens[0..8].to_vec(), evens[8..16].to_vec(), evens[16..20].to_vec()]);
        assert_eq!(rig.counters.ports[0].drops[DropReason::NoEgress as usize].get(), 20);
        assert_eq!(rig.counters.ports[1].tx_packets.get(), 20);
        assert_eq!(rig.pool.in_use(), 0);
    }

    /// Punts packets whose first byte is 0, turns those whose first byte
    /// is 1 into a "reply" back out of port 0, forwards the rest to port 1.
    struct Slowpath;
    impl Stage<HeapPacket> for Slowpath {
        fn process(&mut self, _: PortIdx, pkt: &mut HeapPacket, meta: &mut Meta) -> crate::pipeline::Verdict {
            match pkt.data()[0] {
                0 => meta.set_out_port(TO_CONTROL),
                1 => {
                    meta.set_out_port(0);
                    meta.set_noted(DropReason::Malformed);
                }
                _ => meta.set_out_port(1),
            }
            crate::pipeline::Verdict::Continue
        }
    }

    #[test]
    fn punts_and_in_place_replies_are_counted() {
        let rig = Rig::new(usize::MAX);
        let ring: PuntRing<HeapPacket> = Arc::new(ArrayQueue::new(3));
        let script = vec![rig.burst(0..1), rig.burst(0..1), rig.burst(0..1), rig.burst(0..1), rig.burst(0..4)];
        let rx = ScriptRx { script: script.into(), clock: rig.clock.clone(), tick: 1, stop: rig.stop.clone(), idle_polls: 0 };
        let ports = vec![
            PortQueues { port: 0, rx: vec![rx], tx: Some(rig.tx.clone()) },
            PortQueues { port: 1, rx: vec![], tx: Some(rig.tx.clone()) },
        ];
        let mut w = Worker::new(ports, Some(ring.clone()), Slowpath, rig.counters.clone(), conf(32, 10), rig.clock.clone());
        w.run(&rig.stop);
        let c = &rig.counters.ports[0];
        assert_eq!(c.punted.get(), 3, "the ring holds three");
        assert_eq!(c.drops[DropReason::PuntFull as usize].get(), 2);
        assert_eq!(c.icmp_errors.get(), 1);
        assert_eq!(c.drops[DropReason::Malformed as usize].get(), 1, "the original counts as a drop");
        assert_eq!(c.tx_packets.get(), 1, "the reply left by port 0");
        assert_eq!(rig.counters.ports[1].tx_packets.get(), 2);
        assert_eq!(ring.len(), 3);
        drop(ring.pop());
        while ring.pop().is_some() {}
        drop(w);
        assert_eq!(rig.pool.in_use(), 0);
    }

    #[test]
    fn stages_tick_every_iteration() {
        struct Ticks(Arc<AtomicU64>);
        impl Stage<HeapPacket> for Ticks {
            fn process(&mut self, _: PortIdx, _: &mut HeapPacket, _: &mut Meta) -> crate::pipeline::Verdict {
                crate::pipeline::Verdict::Continue
            }
            fn tick(&mut self) {
                self.0.fetch_add(1, Relaxed);
            }
        }
        let rig = Rig::new(usize::MAX);
        let ticks = Arc::new(AtomicU64::new(0));
        let rx = ScriptRx { script: VecDeque::new(), clock: rig.clock.clone(), tick: 1, stop: rig.stop.clone(), idle_polls: 9 };
        let ports = vec![
            PortQueues { port: 0, rx: vec![rx], tx: Some(rig.tx.clone()) },
            PortQueues { port: 1, rx: vec![], tx: Some(rig.tx.clone()) },
        ];
        let mut w = Worker::new(ports, None, Ticks(ticks.clone()), rig.counters.clone(), conf(32, 10), rig.clock.clone());
        w.run(&rig.stop);
        assert_eq!(ticks.load(Relaxed), 10, "idle iterations tick too");
    }

    #[test]
    fn small_burst_setting_flushes_at_its_threshold() {
        let rig = Rig::new(usize::MAX);
        rig.run(vec![rig.burst(0..4), rig.burst(4..8)], 1, 0, conf(4, 1_000_000));
        let sent = rig.tx.sent.lock().unwrap();
        assert_eq!(sent.iter().map(|s| s.1.len()).collect::<Vec<_>>(), vec![4, 4]);
    }

    #[test]
    fn adaptive_mode_sleeps_only_when_idle() {
        let rig = Rig::new(usize::MAX);
        let mode = PollMode::Adaptive { max_sleep: Duration::from_micros(50) };
        let script = (0..10).map(|i| rig.burst(i * 4..i * 4 + 4)).collect();
        rig.run(script, 1, SPIN_POLLS_BEFORE_SLEEP + 20, WorkerConf { burst: 32, drain_cycles: 1 << 40, mode });
        let core = &rig.counters.core;
        // SPIN + 21 empty polls (the last one raises stop); the first
        // SPIN - 1 of them spin, each later one sleeps.
        assert_eq!(core.sleeps.get(), 22, "sleeps start after the spin threshold");
        // Flushed before the first sleep even though the drain timer never fired.
        assert_eq!(rig.counters.ports[1].tx_packets.get(), 40);
        let sizes: Vec<usize> = rig.tx.sent.lock().unwrap().iter().map(|s| s.1.len()).collect();
        assert_eq!(sizes, vec![32, 8]);
    }

    #[test]
    fn backoff_doubles_up_to_the_cap_and_resets_on_traffic() {
        let mut b = Backoff::default();
        let max = Duration::from_micros(100);
        for _ in 0..SPIN_POLLS_BEFORE_SLEEP - 1 {
            assert_eq!(b.after_poll(0, max), None);
        }
        let naps: Vec<_> = (0..6).map(|_| b.after_poll(0, max).unwrap().as_micros()).collect();
        assert_eq!(naps, vec![8, 16, 32, 64, 100, 100]);
        assert_eq!(b.after_poll(1, max), None);
        assert_eq!(b.after_poll(0, max), None);
    }

    /// Hands every packet to worker 1.
    struct ToOne;
    impl Stage<HeapPacket> for ToOne {
        fn process(&mut self, _: PortIdx, _: &mut HeapPacket, meta: &mut Meta) -> Verdict {
            meta.hand_to(1);
            Verdict::Continue
        }
    }

    /// A flood towards a worker that never drains its ring: the ring fills,
    /// the rest are counted drops (`handoff_full`), and the loop runs on.
    #[test]
    fn a_handoff_flood_is_counted_drops_never_a_stall() {
        let rig = Rig::new(usize::MAX);
        let script: Vec<Vec<HeapPacket>> = (0..20).map(|_| rig.burst(0..32)).collect();
        let rx = ScriptRx { script: script.into(), clock: rig.clock.clone(), tick: 1000, stop: rig.stop.clone(), idle_polls: 0 };
        let ports = vec![
            PortQueues { port: 0, rx: vec![rx], tx: Some(rig.tx.clone()) },
            PortQueues { port: 1, rx: vec![], tx: Some(rig.tx.clone()) },
        ];
        let mut w = Worker::new(ports, None, ToOne, rig.counters.clone(), conf(32, 10_000), rig.clock.clone());
        let (tx, ring): (HandoffTx<HeapPacket>, HandoffRx<HeapPacket>) = crate::spsc::ring(128);
        w.set_handoff(vec![None, Some(tx)], vec![]);
        w.run(&rig.stop);
        let c = &rig.counters;
        assert_eq!(c.core.handoff_out.get(), 128);
        assert_eq!(c.ports[0].drops[DropReason::HandoffFull as usize].get(), 640 - 128);
        drop(w); // publishes
        assert_eq!(rig.pool.in_use(), 128, "the dropped packets were freed");

        // The owner takes them: from the start of its chain, as received on port 0.
        let rig2 = Rig::new(usize::MAX);
        let rx = ScriptRx { script: Default::default(), clock: rig2.clock.clone(), tick: 1000, stop: rig2.stop.clone(), idle_polls: 10 };
        let ports = vec![
            PortQueues { port: 0, rx: vec![rx], tx: Some(rig2.tx.clone()) },
            PortQueues { port: 1, rx: vec![], tx: Some(rig2.tx.clone()) },
        ];
        let mut owner = Worker::new(ports, None, XConnect::new(&[(0, 1)]), rig2.counters.clone(), conf(32, 10_000), rig2.clock.clone());
        owner.set_handoff(vec![None, None], vec![ring]);
        owner.run(&rig2.stop);
        assert_eq!(rig2.counters.core.handoff_in.get(), 128);
        assert_eq!(rig2.counters.ports[1].tx_packets.get(), 128, "cross-connected out of port 1");
        assert_eq!(rig2.counters.ports[0].rx_packets.get(), 0, "counted as received by the worker that took them off the wire");
    }
}
