//! Where processed packets go: a TX buffer per port (flushed when full or
//! on the drain timer), the port's QoS scheduler when it is shaped (DSCP
//! marked on the way out), and the counting of what TX refuses. The
//! workers' loop and the control thread ([`ControlEgress`]) send through
//! this one path.

use std::sync::Arc;

use crossbeam_queue::ArrayQueue;

use crate::counters::{DropReason, PortCounters, WorkerCounters};
use crate::latency::{Recorder, Sampler};
use crate::packet::{Burst, Packet};
use crate::pipeline::Meta;
use crate::qos::Scheduler;
use crate::vocab::Class;
use crate::{PortIdx, MAX_BURST};

/// A device TX queue owned by exactly one thread.
pub trait TxQueue<P>: Send {
    /// Sends packets from the front of `burst`; the ones the device took
    /// leave the burst, the refused ones stay. Returns how many were sent.
    fn tx_burst(&mut self, burst: &mut Burst<P>) -> usize;
}

/// Packets a worker hands to the control thread: a bounded lock-free ring
/// per worker (ARP, ND, packets waiting for a neighbour).
pub type PuntRing<P> = Arc<ArrayQueue<P>>;

/// Packets one worker hands to another, the owner of their flow (see
/// [`crate::flow::affinity`]), with the port each arrived on: a bounded
/// single-producer single-consumer ring per ordered pair of workers
/// ([`crate::spsc`]), published once per poll-loop iteration. A full ring
/// is a counted drop (`handoff_full`), never a wait. The sending end:
pub type HandoffTx<P> = crate::spsc::Producer<(P, PortIdx)>;
/// The receiving end.
pub type HandoffRx<P> = crate::spsc::Consumer<(P, PortIdx)>;

/// Packets in flight towards one worker, over all the rings into it: a
/// worker descheduled for a while loses nothing until this many wait.
pub const HANDOFF_DEPTH: usize = 4096;

/// Capacity of each ring between two of `workers` workers: their share of
/// [`HANDOFF_DEPTH`], at least 256.
pub fn handoff_ring(workers: usize) -> usize {
    (HANDOFF_DEPTH / workers.saturating_sub(1).max(1)).next_power_of_two().max(256)
}

pub(crate) struct TxPort<T, P> {
    pub(crate) queue: Option<T>,
    pub(crate) buf: Burst<P>,
    /// Start of the iteration whose packet began the buffered batch.
    pub(crate) since: u64,
    /// The port's QoS scheduler, when the port is shaped: packets wait in
    /// its class queues and leave through `buf` as its rates allow.
    pub(crate) qos: Option<Scheduler<P>>,
}

/// The residence side of [`crate::worker::WorkerLatency`], carried with the TX buffers.
pub(crate) struct TxLatency {
    pub(crate) rec: Recorder,
    pub(crate) sampler: Sampler,
    /// Start of the current poll iteration.
    pub(crate) t0: u64,
    pub(crate) now: fn() -> u64,
}

/// Where processed packets go: a TX buffer per port, the punt ring, the
/// packets dropped in this burst (freed together at its end), and the
/// residence-latency recorder.
pub(crate) struct Egress<T, P> {
    pub(crate) tx: Vec<TxPort<T, P>>,
    /// The clock at the start of this poll iteration (QoS arrival times).
    pub(crate) now: u64,
    pub(crate) punt: Option<PuntRing<P>>,
    /// Rings to the other workers, by worker index (`None` for this one).
    pub(crate) handoff: Vec<Option<HandoffTx<P>>>,
    pub(crate) trash: Burst<P>,
    pub(crate) lat: Option<TxLatency>,
}

/// Queues a packet in its class on a shaped port; a full queue is a
/// counted drop on that port.
#[inline(always)]
pub(crate) fn enqueue<P: Packet>(q: &mut Scheduler<P>, pkt: P, meta: Meta, counters: &PortCounters, trash: &mut Burst<P>, now: u64) {
    let len = pkt.wire_len();
    if let Err(pkt) = q.enqueue(pkt, len, meta.class().unwrap_or_default(), now) {
        counters.drop(DropReason::QosQueueFull, 1);
        if let Err(p) = trash.push(pkt) {
            drop(p);
        }
    }
}

/// Moves what the shapers allow from every shaped port's class queues to
/// its TX buffer (DSCP marked), flushing as buffers fill. Returns how many
/// packets are still waiting (the loop must not nap on them).
#[inline]
pub(crate) fn drain_qos<P: Packet, T: TxQueue<P>>(out: &mut Egress<T, P>, counters: &WorkerCounters, now: u64, flush_at: usize) -> usize {
    let mut waiting = 0;
    let Egress { tx, lat, trash, .. } = out;
    for (i, port) in tx.iter_mut().enumerate() {
        let TxPort { queue, buf, since, qos } = port;
        let Some(q) = qos.as_mut() else { continue };
        let c = &counters.ports[i];
        let marks = q.dscp_marks();
        loop {
            let room = flush_at.saturating_sub(buf.len());
            let mut moved = 0;
            q.dequeue(
                now,
                room,
                |mut pkt, class| {
                    if let Some(d) = marks[class as usize] {
                        crate::wire::frame::set_dscp(pkt.data_mut(), d);
                    }
                    if buf.is_empty() {
                        *since = lat.as_ref().map_or(0, |l| l.t0);
                    }
                    // Cannot fail: at most `room` packets come out.
                    let _ = buf.push(pkt);
                    moved += 1;
                },
                |pkt, reason| {
                    c.drop(reason, 1);
                    if let Err(p) = trash.push(pkt) {
                        drop(p);
                    }
                },
            );
            if buf.len() >= flush_at {
                transmit(queue.as_mut(), buf, None, c, *since, lat);
            }
            if moved < room || room == 0 {
                break;
            }
        }
        waiting += q.queued();
        trash.free();
    }
    waiting
}

/// The TX buffer of `out_port`, or the port to count against and why not.
#[inline(always)]
pub(crate) fn egress<T, P>(
    in_port: PortIdx,
    out_port: PortIdx,
    tx: &mut [TxPort<T, P>],
) -> Result<&mut TxPort<T, P>, (PortIdx, DropReason)> {
    match tx.get_mut(out_port as usize) {
        None => Err((in_port, DropReason::NoEgress)),
        Some(out) if out.queue.is_none() => Err((out_port, DropReason::NoTxQueue)),
        Some(out) => Ok(out),
    }
}

/// Sends a whole burst to one port: straight to the device when nothing is
/// buffered for it, else through its TX buffer. `rx_bytes`: the burst's
/// bytes, when the stages cannot have changed them.
#[inline(always)]
pub(crate) fn send_burst<P: Packet, T: TxQueue<P>>(
    rx: &mut Burst<P>,
    rx_bytes: Option<u64>,
    in_port: PortIdx,
    meta: Meta,
    out: &mut Egress<T, P>,
    counters: &WorkerCounters,
    flush_at: usize,
) {
    let out_port = meta.out_port();
    let Egress { tx, lat, trash, now, .. } = out;
    let port = match egress(in_port, out_port, tx) {
        Ok(port) => port,
        Err((at, reason)) => return counters.ports[at as usize].drop(reason, rx.free() as u64),
    };
    let out_counters = &counters.ports[out_port as usize];
    if let Some(q) = port.qos.as_mut() {
        for pkt in rx.drain() {
            enqueue(q, pkt, meta, out_counters, trash, *now);
        }
        trash.free();
        return;
    }
    if port.buf.is_empty() && rx.len() >= flush_at {
        let since = lat.as_ref().map_or(0, |l| l.t0);
        return transmit(port.queue.as_mut(), rx, rx_bytes, out_counters, since, lat);
    }
    for pkt in rx.drain() {
        buffer(port, pkt, out_counters, flush_at, lat);
    }
}

/// Appends to a TX buffer, flushing it when it reaches `flush_at`.
#[inline(always)]
pub(crate) fn buffer<P: Packet, T: TxQueue<P>>(
    port: &mut TxPort<T, P>,
    pkt: P,
    counters: &PortCounters,
    flush_at: usize,
    lat: &mut Option<TxLatency>,
) {
    if port.buf.is_empty() {
        port.since = lat.as_ref().map_or(0, |l| l.t0);
    }
    // Cannot fail: the buffer is flushed whenever it reaches `flush_at`.
    let _ = port.buf.push(pkt);
    if port.buf.len() >= flush_at {
        transmit(port.queue.as_mut(), &mut port.buf, None, counters, port.since, lat);
    }
}

/// Hands packets to a TX queue; frees and counts the ones it refuses.
/// Samples their residence since `since`. `total`: the packets' bytes, if
/// known.
#[inline(always)]
pub(crate) fn transmit<P: Packet, T: TxQueue<P>>(
    queue: Option<&mut T>,
    pkts: &mut Burst<P>,
    total: Option<u64>,
    counters: &PortCounters,
    since: u64,
    lat: &mut Option<TxLatency>,
) {
    if pkts.is_empty() {
        return;
    }
    let total = total.unwrap_or_else(|| bytes(pkts));
    let sent = queue.map_or(0, |q| q.tx_burst(pkts));
    counters.tx_packets.add(sent as u64);
    if pkts.is_empty() {
        counters.tx_bytes.add(total);
    } else {
        counters.tx_bytes.add(total - bytes(pkts));
        counters.drop(DropReason::TxFull, pkts.free() as u64);
    }
    if let Some(l) = lat.as_mut() {
        if sent > 0 && l.sampler.hit() {
            let now = (l.now)();
            l.rec.record_n(now.wrapping_sub(since), sent as u64);
        }
    }
}

/// Frame bytes in a burst.
#[inline(always)]
pub(crate) fn bytes<P: Packet>(pkts: &Burst<P>) -> u64 {
    pkts.as_slice().iter().map(|p| p.wire_len() as u64).sum()
}

pub(crate) fn flush_all<P: Packet, T: TxQueue<P>>(out: &mut Egress<T, P>, counters: &WorkerCounters) {
    for (port, c) in out.tx.iter_mut().zip(counters.ports.iter()) {
        transmit(port.queue.as_mut(), &mut port.buf, None, c, port.since, &mut out.lat);
    }
}

/// The control thread's egress: its own TX queue on every port, through
/// the same buffers, QoS schedulers (class Control) and counters as the
/// workers'. Handshakes, probes, BFD, ARP and ND leave this way.
pub struct ControlEgress<T, P> {
    out: Egress<T, P>,
    counters: Arc<WorkerCounters>,
}

impl<T: TxQueue<P>, P: Packet> ControlEgress<T, P> {
    /// `queues`: the control thread's TX queue per port, in port order.
    pub fn new(queues: Vec<Option<T>>, counters: Arc<WorkerCounters>) -> Self {
        let tx = queues.into_iter().map(|queue| TxPort { queue, buf: Burst::new(), since: 0, qos: None }).collect();
        ControlEgress { out: Egress { tx, now: 0, punt: None, handoff: Vec::new(), trash: Burst::new(), lat: None }, counters }
    }

    /// Shapes `port` with `sched` (the control thread's class queues).
    pub fn set_qos(&mut self, port: PortIdx, sched: Scheduler<P>) {
        if let Some(tx) = self.out.tx.get_mut(port as usize) {
            tx.qos = Some(sched);
        }
    }

    /// Sends `pkts` on `port` now, or as the port's shaper allows; what
    /// cannot be sent is freed and counted against the port.
    pub fn send(&mut self, port: PortIdx, pkts: &mut Burst<P>, now: u64) {
        if port as usize >= self.out.tx.len() {
            pkts.clear();
            return;
        }
        let mut meta = Meta::NEW;
        meta.set_out_port(port);
        meta.set_class(Class::Control);
        self.out.now = now;
        send_burst(pkts, None, port, meta, &mut self.out, &self.counters, 1);
        self.poll(now);
    }

    /// Sends what the shaped ports' rates allow of the queued packets;
    /// returns how many still wait. Call it every loop.
    pub fn poll(&mut self, now: u64) -> usize {
        let waiting = drain_qos(&mut self.out, &self.counters, now, MAX_BURST);
        flush_all(&mut self.out, &self.counters);
        waiting
    }

    /// Drops the queues and whatever waits in them (before the ports stop).
    pub fn close(&mut self) {
        self.out.tx.clear();
        self.out.trash.clear();
    }
}

/// What the control thread's drivers (slow path, tunnel handshakes, path
/// probes and BFD) need of the machine: packet buffers, the way out, drop
/// counting and the TSC. The engine provides it on mbufs; tests provide it
/// on heap packets, without DPDK.
pub trait ControlIo {
    type Pkt: Packet;
    /// A fresh, empty packet buffer for `port`.
    fn alloc(&mut self, port: PortIdx) -> Option<Self::Pkt>;
    /// Sends on `port` through the control thread's egress
    /// ([`ControlEgress::send`]).
    fn send(&mut self, port: PortIdx, pkts: &mut Burst<Self::Pkt>);
    /// Counts `n` packets dropped for `reason` against `port`.
    fn count_drop(&self, port: PortIdx, reason: DropReason, n: u64);
    /// The TSC, as the workers read it (probe timestamps).
    fn tsc(&self) -> u64;
}

/// Grows an empty packet to `len` bytes and returns them (cleared).
pub fn fill_new<P: Packet>(pkt: &mut P, len: usize) -> Option<&mut [u8]> {
    let old = pkt.data().len();
    if !pkt.extend(len) {
        return None;
    }
    let b = &mut pkt.data_mut()[old..];
    b.fill(0);
    Some(b)
}
