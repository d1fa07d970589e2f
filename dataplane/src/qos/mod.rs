//! QoS: class-based scheduling per egress port.
//!
//! Each worker keeps its own class queues for each port ([`Scheduler`]);
//! the port's rate, the cap on the priority classes and the classes'
//! minimum and maximum rates are token buckets shared by the workers
//! without locks ([`rate::SharedRate`]), taken in chunks.
//!
//! Order of service at each dequeue:
//! 1. any class still under its configured minimum rate (a guarantee holds
//!    even against strict priority; it is rate-limited, so it delays the
//!    priority classes by at most a chunk of credit);
//! 2. Control, then RealTime, strictly, while the priority cap has credit;
//! 3. deficit round robin by bytes over every class with packets (weights
//!    are the quanta), within each class's maximum rate.
//!
//! Everything is bounded by the port's shaper. Standard and Bulk are
//! managed by CoDel (head drop on a standing queue); every queue is bounded
//! (tail drop). Sans-IO: the caller passes the time (clock ticks) and owns
//! the packets that come out.

pub mod codel;
pub mod rate;
pub mod trust;

pub use trust::{class_of_dscp, DscpTrust};

use std::collections::VecDeque;
use std::sync::Arc;

use crate::counters::{Counter, DropReason};
use crate::vocab::{Class, CLASSES};
use codel::{Codel, CodelConf};
use rate::{Credit, SharedRate};

/// One class's settings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClassConf {
    /// Share of the bandwidth left after strict priority and minimums.
    pub weight: u32,
    /// Guaranteed rate, bits per second (0: none).
    pub min_bps: u64,
    /// Ceiling, bits per second (0: none).
    pub max_bps: u64,
    /// Queue bound per worker, packets.
    pub queue: usize,
    /// CoDel on this queue (else tail drop only).
    pub codel: bool,
    /// DSCP written on egress (None: left as it is).
    pub dscp: Option<u8>,
}

/// A port's QoS settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PortQosConf {
    /// The link's real capacity, bits per second.
    pub rate_bps: u64,
    /// Bytes that may leave at line rate after an idle spell.
    pub burst_bytes: u64,
    /// Most of the rate Control and RealTime together take by strict
    /// priority, percent; beyond it they share by weight like the rest.
    pub priority_cap_pct: u8,
    pub classes: [ClassConf; CLASSES],
}

impl PortQosConf {
    /// Defaults for a link of `rate_bps`: priority capped at 30%, weights
    /// Interactive 8, Streaming 4, Standard 2, Bulk 1 (priority classes 8
    /// beyond the cap), CoDel on Standard and Bulk, DSCP EF for RealTime,
    /// AF41 Interactive, AF31 Streaming, CS1 Bulk, CS6 Control (Standard
    /// left as it is).
    pub fn new(rate_bps: u64) -> Self {
        let c = |weight, queue, codel, dscp| ClassConf { weight, min_bps: 0, max_bps: 0, queue, codel, dscp: Some(dscp) };
        PortQosConf {
            rate_bps,
            burst_bytes: (rate_bps / 8 / 1000).max(3028), // 1 ms at line rate, at least two frames
            priority_cap_pct: 30,
            classes: [
                c(8, 256, false, 48),
                c(8, 256, false, 46),
                c(8, 512, false, 34),
                c(4, 1024, false, 26),
                // Most traffic: left as its hosts marked it.
                ClassConf { dscp: None, ..c(2, 1024, true, 0) },
                c(1, 1024, true, 8),
            ],
        }
    }
}

/// What the workers of a port share: its buckets.
pub struct PortShaper {
    pub conf: PortQosConf,
    pub port: SharedRate,
    priority: SharedRate,
    min: [SharedRate; CLASSES],
    max: [SharedRate; CLASSES],
    /// Chunk of credit a worker takes at a time, bytes.
    chunk: u64,
    /// Whether any class has a minimum rate (else that step is skipped).
    any_min: bool,
}

impl PortShaper {
    /// `hz`: ticks per second of the clock the schedulers are given.
    pub fn new(conf: PortQosConf, hz: u64) -> Arc<Self> {
        let burst = conf.burst_bytes;
        let rate = |bps: u64| SharedRate::new(bps, burst, hz);
        let prio = conf.rate_bps * conf.priority_cap_pct.min(100) as u64 / 100;
        // A chunk is 50 µs at line rate (at least one frame): small enough
        // for ±2% with several workers, large enough to keep the shared
        // line cold.
        let chunk = (conf.rate_bps / 8 / 20_000).max(1514);
        Arc::new(PortShaper {
            port: rate(conf.rate_bps),
            priority: SharedRate::new(prio.max(1), burst, hz),
            min: std::array::from_fn(|i| rate(conf.classes[i].min_bps)),
            max: std::array::from_fn(|i| rate(conf.classes[i].max_bps)),
            chunk,
            any_min: conf.classes.iter().any(|c| c.min_bps > 0),
            conf,
        })
    }
}

/// One class's counters on one worker (single writer).
#[derive(Default)]
pub struct ClassCounters {
    pub enqueued: Counter,
    pub sent_packets: Counter,
    pub sent_bytes: Counter,
    /// Dropped because the queue was full.
    pub tail_drops: Counter,
    /// Dropped by CoDel (standing queue).
    pub codel_drops: Counter,
    /// Packets queued now (a gauge the worker stores).
    pub depth: Counter,
}

/// Counters of one worker's scheduler for one port.
#[derive(Default)]
pub struct QosCounters {
    pub classes: [ClassCounters; CLASSES],
}

struct Entry<P> {
    pkt: P,
    at: u64,
    len: u32,
}

/// How a class was chosen (which credit it spends).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Via {
    Priority,
    Min,
    Drr,
}

/// One worker's scheduler for one egress port.
pub struct Scheduler<P> {
    shaper: Arc<PortShaper>,
    queues: [VecDeque<Entry<P>>; CLASSES],
    bytes: [usize; CLASSES],
    deficit: [u64; CLASSES],
    quantum: [u64; CLASSES],
    /// DRR: the class being served, and whether it got its quantum this round.
    rr: usize,
    topped: bool,
    /// Rotates which class's minimum is checked first.
    min_rr: usize,
    port_credit: Credit,
    prio_credit: Credit,
    min_credit: [Credit; CLASSES],
    max_credit: [Credit; CLASSES],
    codel: [Codel; CLASSES],
    codel_conf: CodelConf,
    pub counters: Arc<QosCounters>,
}

/// The largest frame a quantum must cover (so DRR serves in one visit).
const MAX_FRAME: u64 = 1518;

impl<P> Scheduler<P> {
    /// Queues are allocated here, once; `hz` as for the shaper.
    pub fn new(shaper: Arc<PortShaper>, hz: u64) -> Self {
        let conf = &shaper.conf;
        let queues = std::array::from_fn(|i| VecDeque::with_capacity(conf.classes[i].queue.max(1)));
        let quantum = std::array::from_fn(|i| conf.classes[i].weight.max(1) as u64 * MAX_FRAME);
        Scheduler {
            queues,
            bytes: [0; CLASSES],
            deficit: [0; CLASSES],
            quantum,
            rr: Class::Control as usize,
            topped: false,
            min_rr: 0,
            port_credit: Credit::default(),
            prio_credit: Credit::default(),
            min_credit: Default::default(),
            max_credit: Default::default(),
            codel: [Codel::default(); CLASSES],
            codel_conf: CodelConf::default_for(hz),
            counters: Arc::default(),
            shaper,
        }
    }

    /// Packets queued in `class`.
    pub fn depth(&self, class: Class) -> usize {
        self.queues[class as usize].len()
    }

    pub fn is_empty(&self) -> bool {
        self.queues.iter().all(|q| q.is_empty())
    }

    /// Packets queued in every class.
    pub fn queued(&self) -> usize {
        self.queues.iter().map(|q| q.len()).sum()
    }

    /// The DSCP each class is marked with on egress.
    pub fn dscp_marks(&self) -> [Option<u8>; CLASSES] {
        std::array::from_fn(|c| self.shaper.conf.classes[c].dscp)
    }

    /// Queues a packet of `len` bytes; hands it back when the class's queue
    /// is full (a tail drop, counted here; the caller frees it).
    #[inline]
    pub fn enqueue(&mut self, pkt: P, len: usize, class: Class, now: u64) -> Result<(), P> {
        let c = class as usize;
        let q = &mut self.queues[c];
        let counters = &self.counters.classes[c];
        if q.len() >= self.shaper.conf.classes[c].queue.max(1) {
            counters.tail_drops.add(1);
            return Err(pkt);
        }
        q.push_back(Entry { pkt, at: now, len: len as u32 });
        self.bytes[c] += len;
        counters.enqueued.add(1);
        Ok(())
    }

    #[inline]
    fn head_len(&self, c: usize) -> Option<u64> {
        self.queues[c].front().map(|e| e.len as u64)
    }

    /// Whether class `c` may send `len` bytes under its maximum.
    #[inline(always)]
    fn under_max(&mut self, sh: &PortShaper, c: usize, len: u64, now: u64) -> bool {
        sh.conf.classes[c].max_bps == 0 || self.max_credit[c].has(&sh.max[c], len, sh.chunk, now)
    }

    /// The class to serve next, or `None` (empty, or shaped until later).
    #[inline(always)]
    fn pick(&mut self, sh: &PortShaper, now: u64) -> Option<(usize, Via)> {
        let chunk = sh.chunk;
        // 1. Minimum rates: a promise, kept even against strict priority.
        for k in 0..if sh.any_min { CLASSES } else { 0 } {
            let c = (self.min_rr + k) % CLASSES;
            if sh.conf.classes[c].min_bps == 0 {
                continue;
            }
            if let Some(len) = self.head_len(c) {
                if self.min_credit[c].has(&sh.min[c], len, chunk, now) && self.under_max(sh, c, len, now) {
                    self.min_rr = (c + 1) % CLASSES;
                    return self.port_credit.has(&sh.port, len, chunk, now).then_some((c, Via::Min));
                }
            }
        }
        // 2. Strict priority, within the cap.
        for c in [Class::Control as usize, Class::RealTime as usize] {
            if let Some(len) = self.head_len(c) {
                if self.prio_credit.has(&sh.priority, len, chunk, now) && self.under_max(sh, c, len, now) {
                    return self.port_credit.has(&sh.port, len, chunk, now).then_some((c, Via::Priority));
                }
            }
        }
        // 3. Deficit round robin by bytes.
        for _ in 0..2 * CLASSES + 1 {
            let c = self.rr;
            let eligible = match self.head_len(c) {
                Some(len) if self.under_max(sh, c, len, now) => Some(len),
                Some(_) => None,
                None => {
                    self.deficit[c] = 0;
                    None
                }
            };
            if let Some(len) = eligible {
                if !self.topped {
                    self.deficit[c] += self.quantum[c];
                    self.topped = true;
                }
                if self.deficit[c] >= len {
                    return self.port_credit.has(&sh.port, len, chunk, now).then_some((c, Via::Drr));
                }
            }
            self.rr = (c + 1) % CLASSES;
            self.topped = false;
        }
        None
    }

    /// Sends up to `max` packets at `now`: each goes to `out` with its
    /// class (for DSCP marking), packets CoDel drops go to `drop`. Returns
    /// how many went to `out`.
    pub fn dequeue(&mut self, now: u64, max: usize, mut out: impl FnMut(P, Class), mut drop: impl FnMut(P, DropReason)) -> usize {
        if self.is_empty() {
            return 0;
        }
        // One reference count per call, not per packet.
        let shaper = self.shaper.clone();
        let sh = &*shaper;
        let mut sent = 0;
        while sent < max {
            let Some((c, via)) = self.pick(sh, now) else { break };
            let e = self.queues[c].pop_front().expect("picked a class with packets");
            self.bytes[c] -= e.len as usize;
            let counters = &self.counters.classes[c];
            if self.shaper.conf.classes[c].codel
                && self.codel[c].should_drop(&self.codel_conf, now.saturating_sub(e.at), self.bytes[c], now)
            {
                counters.codel_drops.add(1);
                drop(e.pkt, DropReason::QosCodel);
                continue;
            }
            let len = e.len as u64;
            self.port_credit.spend(&sh.port, len);
            self.max_credit[c].spend(&sh.max[c], len);
            match via {
                Via::Priority => self.prio_credit.spend(&sh.priority, len),
                Via::Min => self.min_credit[c].spend(&sh.min[c], len),
                Via::Drr => self.deficit[c] -= len,
            }
            counters.sent_packets.add(1);
            counters.sent_bytes.add(len);
            out(e.pkt, Class::ALL[c]);
            sent += 1;
        }
        for (c, q) in self.queues.iter().enumerate() {
            self.counters.classes[c].depth.add((q.len() as u64).wrapping_sub(self.counters.classes[c].depth.get()));
        }
        if self.is_empty() {
            // Idle: credit goes back for the other workers.
            self.port_credit.release(&sh.port);
            self.prio_credit.release(&sh.priority);
            for c in 0..CLASSES {
                self.min_credit[c].release(&sh.min[c]);
                self.max_credit[c].release(&sh.max[c]);
            }
        }
        sent
    }
}

#[cfg(test)]
mod tests;
