//! Pipeline stages: the processing the worker loop runs between RX and TX.
//! Stages compose statically (`(A, B)` is a stage), so a chain is one
//! inlined function with no dynamic dispatch. The worker hands a stage a
//! whole RX burst at a time, as arrays of packets and their [`Meta`].

use crate::counters::DropReason;
use crate::packet::Packet;
use std::mem::MaybeUninit;

use crate::{PortIdx, MAX_BURST, MAX_PORTS};

/// Sentinel for "no egress port chosen yet".
pub const NO_PORT: PortIdx = PortIdx::MAX;

/// Egress "port" that hands the packet to the control thread (ARP, ND,
/// packets waiting for neighbour resolution, ...).
pub const TO_CONTROL: PortIdx = PortIdx::MAX - 1;

/// How many packets ahead of the one being processed to prefetch.
pub const PREFETCH_OFFSET: usize = 3;

/// Per-packet metadata: where the packet goes, its QoS class, or why it
/// was dropped. One `u64` (egress port in bits 0-15, drop reason + 1 in
/// bits 16-21, a noted reason + 1 in bits 22-27, QoS class + 1 in bits
/// 28-31, policy rule in bits 32-39, "opened from a tunnel" in bit 40,
/// "handed to the worker in bits 0-15" in bit 41), so a burst's worth
/// initialises, fills and compares as vectors.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(transparent)]
pub struct Meta(u64);

const DROP_SHIFT: u32 = 16;
const NOTED_SHIFT: u32 = 22;
const REASON_MASK: u64 = 0x3f;
const RULE_SHIFT: u32 = 32;
const CLASS_SHIFT: u32 = 28;
const INNER: u64 = 1 << 40;
const HANDOFF: u64 = 1 << 41;
const _: () = assert!(DropReason::COUNT < REASON_MASK as usize, "drop reasons fit in 6 bits");
const _: () = assert!(crate::vocab::CLASSES < 15, "classes fit in 4 bits");

impl Meta {
    /// A live packet with no egress yet.
    pub const NEW: Meta = Meta(NO_PORT as u64);

    /// A packet another worker opened from a tunnel and handed over:
    /// decap leaves it alone.
    pub const HANDED_INNER: Meta = Meta(NO_PORT as u64 | INNER);

    /// True for a packet decap opened from a tunnel (its frame now the
    /// inner packet).
    #[inline(always)]
    pub fn inner(self) -> bool {
        self.0 & INNER != 0
    }

    #[inline(always)]
    pub fn set_inner(&mut self) {
        self.0 |= INNER;
    }

    /// Hands the packet to worker `worker` (the owner of its flow): later
    /// stages skip it, as they skip a dropped one, and the poll loop puts
    /// it on that worker's handoff ring.
    #[inline(always)]
    pub fn hand_to(&mut self, worker: u16) {
        self.0 = (self.0 & !0xffff) | HANDOFF | worker as u64;
    }

    /// The worker the packet was handed to, if it was.
    #[inline(always)]
    pub fn handoff(self) -> Option<usize> {
        (self.0 & HANDOFF != 0).then_some(self.0 as u16 as usize)
    }

    /// Port the packet leaves by ([`NO_PORT`] until a stage sets it).
    #[inline(always)]
    pub fn out_port(self) -> PortIdx {
        self.0 as PortIdx
    }

    #[inline(always)]
    pub fn set_out_port(&mut self, port: PortIdx) {
        self.0 = (self.0 & !0xffff) | port as u64;
    }

    /// Records that the received packet was dropped for `reason` but its
    /// buffer now carries a reply generated in place (an ICMP error) that
    /// continues to `out_port`: counted as a drop and as a reply.
    #[inline(always)]
    pub fn set_noted(&mut self, reason: DropReason) {
        self.0 = (self.0 & !(REASON_MASK << NOTED_SHIFT)) | (reason as u64 + 1) << NOTED_SHIFT;
    }

    /// The reason noted by [`Meta::set_noted`], if any.
    #[inline(always)]
    pub fn noted(self) -> Option<DropReason> {
        match (self.0 >> NOTED_SHIFT) & REASON_MASK {
            0 => None,
            d => DropReason::ALL.get(d as usize - 1).copied(),
        }
    }

    /// Why the packet was dropped, if it was.
    #[inline(always)]
    pub fn dropped(self) -> Option<DropReason> {
        match (self.0 >> DROP_SHIFT) & REASON_MASK {
            0 => None,
            d => DropReason::ALL.get(d as usize - 1).copied(),
        }
    }

    /// Dropped, or handed to another worker: either way no later stage
    /// of this worker touches it.
    #[inline(always)]
    pub fn is_dropped(self) -> bool {
        self.0 & (REASON_MASK << DROP_SHIFT | HANDOFF) != 0
    }

    /// Marks the packet dropped; later stages skip it.
    #[inline(always)]
    pub fn set_dropped(&mut self, reason: DropReason) {
        self.0 = (self.0 & !(REASON_MASK << DROP_SHIFT)) | (reason as u64 + 1) << DROP_SHIFT;
    }

    /// The QoS class a stage gave the packet, if any.
    #[inline(always)]
    pub fn class(self) -> Option<crate::vocab::Class> {
        match (self.0 >> CLASS_SHIFT) & 0xf {
            0 => None,
            c => crate::vocab::Class::ALL.get(c as usize - 1).copied(),
        }
    }

    #[inline(always)]
    pub fn set_class(&mut self, class: crate::vocab::Class) {
        self.0 = (self.0 & !(0xf << CLASS_SHIFT)) | (class as u64 + 1) << CLASS_SHIFT;
    }

    /// The policy rule the packet's flow matched (0: none, the default
    /// rule; `i + 1`: rule `i`), which picks its WAN path.
    #[inline(always)]
    pub fn rule(self) -> usize {
        ((self.0 >> RULE_SHIFT) & 0xff) as usize
    }

    #[inline(always)]
    pub fn set_rule(&mut self, rule: u8) {
        self.0 = (self.0 & !(0xff << RULE_SHIFT)) | (rule as u64) << RULE_SHIFT;
    }
}

/// The metas of one burst. While every packet shares one decision (a
/// stage decided for the whole burst, or nothing decided yet) it is held
/// once; a stage that decides per packet expands it into one per packet.
/// A burst-wide decision is then a single store, not one per packet.
pub struct Metas {
    len: usize,
    /// `Some` while every packet's meta is this one.
    all: Option<Meta>,
    each: [MaybeUninit<Meta>; MAX_BURST],
}

impl Metas {
    /// `len` live packets with no egress yet.
    #[inline(always)]
    pub fn new(len: usize) -> Self {
        Self::uniform_as(len, Meta::NEW)
    }

    /// `len` packets that all start as `first`.
    #[inline(always)]
    pub fn uniform_as(len: usize, first: Meta) -> Self {
        debug_assert!(len <= MAX_BURST);
        Metas { len: len.min(MAX_BURST), all: Some(first), each: [const { MaybeUninit::uninit() }; MAX_BURST] }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The meta every packet shares, if they do.
    #[inline(always)]
    pub fn uniform(&self) -> Option<Meta> {
        self.all
    }

    /// Applies `f` to every packet's meta. Costs one call while the burst
    /// is uniform.
    #[inline(always)]
    pub fn map(&mut self, f: impl Fn(Meta) -> Meta) {
        match &mut self.all {
            Some(m) => *m = f(*m),
            None => {
                for m in self.each_mut() {
                    *m = f(*m);
                }
            }
        }
    }

    /// One meta per packet, writable (expands a uniform burst).
    #[inline(always)]
    pub fn each_mut(&mut self) -> &mut [Meta] {
        if let Some(m) = self.all.take() {
            for slot in &mut self.each[..self.len] {
                slot.write(m);
            }
        }
        // SAFETY: `each[..len]` is initialised whenever `all` is None.
        unsafe { std::slice::from_raw_parts_mut(self.each.as_mut_ptr().cast(), self.len) }
    }

    /// The meta of packet `i`.
    #[inline(always)]
    pub fn get(&self, i: usize) -> Meta {
        assert!(i < self.len);
        // SAFETY: `each[..len]` is initialised whenever `all` is None.
        self.all.unwrap_or_else(|| unsafe { self.each[i].assume_init() })
    }

    /// Sets the meta of packet `i`; the burst stays uniform while every
    /// packet's meta stays the same.
    #[inline(always)]
    pub fn set(&mut self, i: usize, m: Meta) {
        if self.all != Some(m) {
            self.each_mut()[i] = m;
        }
    }

    /// The meta every packet has, whether or not the burst was expanded.
    #[inline(always)]
    pub fn common(&self) -> Option<Meta> {
        if self.all.is_some() || self.len == 0 {
            return self.all;
        }
        // SAFETY: as in get. A fold rather than `all` compiles to vector compares.
        let each: &[Meta] = unsafe { std::slice::from_raw_parts(self.each.as_ptr().cast(), self.len) };
        let first = each[0];
        each.iter().fold(true, |same, m| same & (*m == first)).then_some(first)
    }
}

/// What a stage decided about one packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Hand the packet to the next stage (or to TX after the last one).
    Continue,
    /// Drop the packet and count it under this reason.
    Drop(DropReason),
}

/// One step of packet processing. Implement [`Stage::process`]; override
/// [`Stage::process_burst`] only when a stage can decide for a burst as a
/// whole.
pub trait Stage<P: Packet> {
    /// True when the stage never changes a packet's length: a burst such
    /// stages forward whole is then counted in bytes once, at RX, instead
    /// of again at TX (a pass over the burst that costs 1-2 cycles per
    /// packet in io forwarding; docs/PERFORMANCE.md).
    const KEEPS_LENGTH: bool = false;

    /// Processes one packet received on `in_port`.
    fn process(&mut self, in_port: PortIdx, pkt: &mut P, meta: &mut Meta) -> Verdict;

    /// Called once per poll-loop iteration, packets or not: where a stage
    /// adopts new snapshots from the control thread.
    #[inline(always)]
    fn tick(&mut self) {}

    /// Processes a burst received on `in_port`; packet `i`'s meta is
    /// `metas.get(i)`. The default is [`per_packet`].
    #[inline(always)]
    fn process_burst(&mut self, in_port: PortIdx, pkts: &mut [P], metas: &mut Metas) {
        per_packet(self, in_port, pkts, metas);
    }
}

/// Runs [`Stage::process`] on every packet not yet dropped, prefetching
/// packet data a few packets ahead.
#[inline(always)]
pub fn per_packet<P: Packet, S: Stage<P> + ?Sized>(stage: &mut S, in_port: PortIdx, pkts: &mut [P], metas: &mut Metas) {
    struct Each<'a, S: ?Sized>(&'a mut S, PortIdx);
    impl<P: Packet, S: Stage<P> + ?Sized> PacketFn<P> for Each<'_, S> {
        #[inline(always)]
        fn call(&mut self, pkt: &mut P, meta: &mut Meta) -> Verdict {
            self.0.process(self.1, pkt, meta)
        }
    }
    each_packet(pkts, metas, Each(stage, in_port));
}

/// The per-packet body [`each_packet`] runs. A stage implements it with an
/// `#[inline(always)]` method rather than passing a closure: once the
/// worker loop around it grew, LLVM stopped inlining the router's closure,
/// which cost 6 cycles per packet (docs/PERFORMANCE.md). Closures still
/// work, for tests and cold paths.
pub trait PacketFn<P> {
    fn call(&mut self, pkt: &mut P, meta: &mut Meta) -> Verdict;
}

impl<P, F: FnMut(&mut P, &mut Meta) -> Verdict> PacketFn<P> for F {
    #[inline(always)]
    fn call(&mut self, pkt: &mut P, meta: &mut Meta) -> Verdict {
        self(pkt, meta)
    }
}

/// Runs `f` on every packet not yet dropped, prefetching packet data a
/// few packets ahead: the loop of [`per_packet`], for stages that set up
/// per-burst state first. A uniform burst whose packets all come out with
/// the same meta stays uniform (one store instead of one per packet).
#[inline(always)]
pub fn each_packet<P: Packet>(pkts: &mut [P], metas: &mut Metas, mut f: impl PacketFn<P>) {
    let n = pkts.len().min(metas.len());
    // A function, not a closure, so that it can be inlined by force (see
    // [`PacketFn`]).
    #[inline(always)]
    fn run<P: Packet>(i: usize, mut meta: Meta, pkts: &mut [P], f: &mut impl PacketFn<P>) -> Meta {
        if let Some(ahead) = pkts.get(i + PREFETCH_OFFSET) {
            ahead.prefetch();
        }
        if !meta.is_dropped() {
            if let Verdict::Drop(reason) = f.call(&mut pkts[i], &mut meta) {
                meta.set_dropped(reason);
            }
        }
        meta
    }
    match metas.uniform() {
        Some(start) if n > 0 => {
            let mut out = [Meta::NEW; MAX_BURST];
            for (i, slot) in out[..n].iter_mut().enumerate() {
                *slot = run(i, start, pkts, &mut f);
            }
            let first = out[0];
            if out[..n].iter().fold(true, |same, m| same & (*m == first)) {
                metas.map(|_| first);
            } else {
                metas.each_mut().copy_from_slice(&out[..n]);
            }
        }
        _ => {
            for i in 0..n {
                let meta = run(i, metas.get(i), pkts, &mut f);
                metas.set(i, meta);
            }
        }
    }
}

/// A chain: `A` runs over the burst, then `B` over what `A` kept.
impl<P: Packet, A: Stage<P>, B: Stage<P>> Stage<P> for (A, B) {
    const KEEPS_LENGTH: bool = A::KEEPS_LENGTH && B::KEEPS_LENGTH;

    #[inline(always)]
    fn process(&mut self, in_port: PortIdx, pkt: &mut P, meta: &mut Meta) -> Verdict {
        match self.0.process(in_port, pkt, meta) {
            Verdict::Continue => self.1.process(in_port, pkt, meta),
            drop => drop,
        }
    }

    #[inline(always)]
    fn process_burst(&mut self, in_port: PortIdx, pkts: &mut [P], metas: &mut Metas) {
        self.0.process_burst(in_port, pkts, metas);
        self.1.process_burst(in_port, pkts, metas);
    }

    #[inline(always)]
    fn tick(&mut self) {
        self.0.tick();
        self.1.tick();
    }
}

/// A stage whose processing time is measured: cycles per packet, one
/// burst in `every` (none if 0), into a latency slot the control thread
/// reads.
pub struct Timed<S> {
    inner: S,
    rec: crate::latency::Recorder,
    sampler: Option<crate::latency::Sampler>,
    now: fn() -> u64,
}

impl<S> Timed<S> {
    pub fn new(inner: S, slot: &std::sync::Arc<crate::latency::Slot>, every: u32, now: fn() -> u64) -> Self {
        Timed { inner, rec: slot.recorder(), sampler: (every > 0).then(|| crate::latency::Sampler::new(every)), now }
    }
}

impl<P: Packet, S: Stage<P>> Stage<P> for Timed<S> {
    const KEEPS_LENGTH: bool = S::KEEPS_LENGTH;

    #[inline(always)]
    fn process(&mut self, in_port: PortIdx, pkt: &mut P, meta: &mut Meta) -> Verdict {
        self.inner.process(in_port, pkt, meta)
    }

    #[inline(always)]
    fn process_burst(&mut self, in_port: PortIdx, pkts: &mut [P], metas: &mut Metas) {
        if !self.sampler.as_mut().is_some_and(|s| s.hit()) || pkts.is_empty() {
            return self.inner.process_burst(in_port, pkts, metas);
        }
        let t = (self.now)();
        self.inner.process_burst(in_port, pkts, metas);
        let per_packet = (self.now)().wrapping_sub(t) / pkts.len() as u64;
        self.rec.record_n(per_packet, pkts.len() as u64);
    }

    #[inline(always)]
    fn tick(&mut self) {
        self.inner.tick();
        self.rec.sync();
    }
}

/// Cross-connect: every packet received on a port leaves by its configured
/// peer port (`forward = "wan0"`). Packets from other ports pass through
/// undecided, for a later stage (or, if none decides, a `no_egress` drop).
#[derive(Clone)]
pub struct XConnect {
    peer: [PortIdx; MAX_PORTS],
}

impl XConnect {
    /// `pairs` lists (from, to) port indices.
    pub fn new(pairs: &[(PortIdx, PortIdx)]) -> Self {
        let mut peer = [NO_PORT; MAX_PORTS];
        for &(from, to) in pairs {
            peer[from as usize] = to;
        }
        XConnect { peer }
    }

    /// The peer of `in_port`, or [`NO_PORT`].
    #[inline(always)]
    pub fn peer_of(&self, in_port: PortIdx) -> PortIdx {
        self.peer.get(in_port as usize).copied().unwrap_or(NO_PORT)
    }
}

impl<P: Packet> Stage<P> for XConnect {
    const KEEPS_LENGTH: bool = true;

    #[inline(always)]
    fn process(&mut self, in_port: PortIdx, _pkt: &mut P, meta: &mut Meta) -> Verdict {
        let out = self.peer_of(in_port);
        if out != NO_PORT {
            meta.set_out_port(out);
        }
        Verdict::Continue
    }

    /// The decision depends only on the ingress port: made once per burst,
    /// and the packets themselves are never touched.
    #[inline(always)]
    fn process_burst(&mut self, in_port: PortIdx, _pkts: &mut [P], metas: &mut Metas) {
        let out = self.peer_of(in_port);
        if out != NO_PORT {
            metas.map(|mut m| {
                if !m.is_dropped() {
                    m.set_out_port(out);
                }
                m
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::packet::HeapPool;

    struct Tag(u8);

    /// Drops packets received on one port.
    struct DropOn(PortIdx);
    impl<P: Packet> Stage<P> for DropOn {
        fn process(&mut self, in_port: PortIdx, _: &mut P, _: &mut Meta) -> Verdict {
            if in_port == self.0 {
                Verdict::Drop(DropReason::NoEgress)
            } else {
                Verdict::Continue
            }
        }
    }
    impl<P: Packet> Stage<P> for Tag {
        fn process(&mut self, _: PortIdx, pkt: &mut P, _: &mut Meta) -> Verdict {
            pkt.data_mut()[0] = self.0;
            Verdict::Continue
        }
    }

    #[test]
    fn meta_carries_a_class_beside_port_and_reasons() {
        for c in crate::vocab::Class::ALL {
            let mut m = Meta::NEW;
            assert_eq!(m.class(), None);
            m.set_out_port(5);
            m.set_class(c);
            m.set_dropped(DropReason::ALL[DropReason::COUNT - 1]);
            m.set_noted(DropReason::TxFull);
            assert_eq!((m.class(), m.out_port()), (Some(c), 5));
            assert_eq!(m.dropped(), Some(DropReason::ALL[DropReason::COUNT - 1]));
            assert_eq!(m.noted(), Some(DropReason::TxFull));
            m.set_class(crate::vocab::Class::Bulk);
            assert_eq!(m.class(), Some(crate::vocab::Class::Bulk));
        }
    }

    #[test]
    fn meta_is_eight_bytes_and_round_trips_every_reason() {
        assert_eq!(std::mem::size_of::<Meta>(), 8);
        for r in DropReason::ALL {
            let mut m = Meta::NEW;
            assert_eq!(m.dropped(), None);
            m.set_out_port(3);
            m.set_noted(DropReason::TxFull);
            m.set_dropped(*r);
            assert_eq!(m.dropped(), Some(*r));
            assert_eq!(m.noted(), Some(DropReason::TxFull));
            assert_eq!(m.out_port(), 3);
            // The class and the policy rule leave the rest alone.
            m.set_class(crate::vocab::Class::RealTime);
            m.set_rule(253);
            assert_eq!((m.dropped(), m.noted(), m.out_port()), (Some(*r), Some(DropReason::TxFull), 3));
            assert_eq!((m.class(), m.rule()), (Some(crate::vocab::Class::RealTime), 253));
            m.set_rule(0);
            assert_eq!((m.class(), m.rule()), (Some(crate::vocab::Class::RealTime), 0));
            let mut n = Meta::NEW;
            n.set_noted(*r);
            assert_eq!((n.noted(), n.dropped(), n.out_port()), (Some(*r), None, NO_PORT));
        }
    }

    /// Drops everything (to test that later stages do not run).
    struct DropAll;
    impl<P: Packet> Stage<P> for DropAll {
        fn process(&mut self, _: PortIdx, _: &mut P, _: &mut Meta) -> Verdict {
            Verdict::Drop(DropReason::Malformed)
        }
    }

    thread_local!(static FAKE_TSC: std::cell::Cell<u64> = const { std::cell::Cell::new(0) });
    /// A clock that advances 640 cycles per reading.
    fn fake_tsc() -> u64 {
        FAKE_TSC.with(|c| {
            c.set(c.get() + 640);
            c.get()
        })
    }

    #[test]
    fn timed_records_cycles_per_packet_of_one_burst_in_n() {
        let pool = HeapPool::new();
        let slot = crate::latency::Slot::new("forward");
        let mut t = Timed::new(XConnect::new(&[(0, 1)]), &slot, 2, fake_tsc);
        let mut pkts: Vec<_> = (0..32).map(|_| pool.packet(&[0; 60])).collect();
        for _ in 0..4 {
            let mut metas = Metas::new(32);
            t.process_burst(0, &mut pkts, &mut metas);
            assert_eq!(metas.get(0).out_port(), 1, "the inner stage ran");
        }
        let mut acc = crate::latency::accumulator();
        // Hand-over: the recorder acknowledges at its next tick.
        assert!(slot.take(&mut acc));
        Stage::<crate::packet::HeapPacket>::tick(&mut t);
        assert!(slot.take(&mut acc));
        assert_eq!(acc.len(), 64, "two of four bursts, 32 packets each");
        assert_eq!((acc.min(), acc.max()), (20, 20), "640 cycles over 32 packets");
        let mut off = Timed::new(XConnect::new(&[(0, 1)]), &crate::latency::Slot::new("x"), 0, fake_tsc);
        let before = fake_tsc();
        off.process_burst(0, &mut pkts, &mut Metas::new(32));
        assert_eq!(fake_tsc(), before + 640, "every = 0 never reads the clock");
    }

    #[test]
    fn xconnect_sends_to_the_peer_and_leaves_unpaired_ports_undecided() {
        let pool = HeapPool::new();
        let mut x = XConnect::new(&[(0, 1), (1, 0)]);
        let mut p = pool.packet(&[0; 60]);
        let mut m = Meta::NEW;
        assert_eq!(x.process(1, &mut p, &mut m), Verdict::Continue);
        assert_eq!(m.out_port(), 0);
        let mut m = Meta::NEW;
        assert_eq!(x.process(2, &mut p, &mut m), Verdict::Continue);
        assert_eq!(m, Meta::NEW);
        assert_eq!(x.process(PortIdx::MAX - 1, &mut p, &mut m), Verdict::Continue);
        assert_eq!(m, Meta::NEW);
    }

    #[test]
    fn chains_run_in_order_and_stop_at_a_drop() {
        let pool = HeapPool::new();
        let mut chain = (XConnect::new(&[(0, 1)]), Tag(7));
        let mut p = pool.packet(&[0; 4]);
        assert_eq!(chain.process(0, &mut p, &mut Meta::NEW.clone()), Verdict::Continue);
        assert_eq!(p.data()[0], 7);
        let mut q = pool.packet(&[0; 4]);
        let mut dropping = (DropAll, Tag(7));
        assert_eq!(dropping.process(1, &mut q, &mut Meta::NEW.clone()), Verdict::Drop(DropReason::Malformed));
        assert_eq!(q.data()[0], 0, "stage after a drop must not run");
    }

    #[test]
    fn burst_processing_matches_per_packet_processing() {
        let pool = HeapPool::new();
        for in_port in [0, 1, 5] {
            let mut chain = (XConnect::new(&[(0, 1), (1, 0)]), (Tag(9), DropOn(5)));
            let mut burst: Vec<_> = (0..10).map(|_| pool.packet(&[0; 4])).collect();
            let mut metas = Metas::new(10);
            metas.each_mut()[3].set_dropped(DropReason::TxFull); // dropped earlier: left alone
            chain.process_burst(in_port, &mut burst, &mut metas);
            assert!(metas.uniform().is_none(), "one packet differs");
            for (i, p) in burst.iter_mut().enumerate() {
                let m = &metas.get(i);
                if i == 3 {
                    assert_eq!(m.dropped(), Some(DropReason::TxFull));
                    assert_eq!(p.data()[0], 0);
                    continue;
                }
                let mut one = pool.packet(&[0; 4]);
                let mut meta = Meta::NEW;
                let v = chain.process(in_port, &mut one, &mut meta);
                assert_eq!(
                    m.dropped(),
                    match v {
                        Verdict::Drop(r) => Some(r),
                        Verdict::Continue => None,
                    }
                );
                if !m.is_dropped() {
                    assert_eq!(m.out_port(), meta.out_port());
                }
                assert_eq!(p.data(), one.data());
            }
        }
    }

    #[test]
    fn burst_wide_decisions_stay_uniform() {
        let pool = HeapPool::new();
        let mut burst: Vec<_> = (0..5).map(|_| pool.packet(&[0; 4])).collect();
        let mut metas = Metas::new(5);
        XConnect::new(&[(0, 1)]).process_burst(0, &mut burst, &mut metas);
        let mut expect = Meta::NEW;
        expect.set_out_port(1);
        assert_eq!(metas.uniform(), Some(expect));
        assert_eq!(metas.get(4), expect);
        // Expanding keeps every packet's value.
        assert!(metas.each_mut().iter().all(|m| *m == expect));
        assert_eq!(metas.uniform(), None);
        // A per-packet drop survives a later burst-wide decision.
        metas.each_mut()[2].set_dropped(DropReason::TxFull);
        XConnect::new(&[(0, 3)]).process_burst(0, &mut burst, &mut metas);
        assert_eq!(metas.get(2).dropped(), Some(DropReason::TxFull));
        assert_eq!(metas.get(1).out_port(), 3);
        assert_eq!(metas.common(), None);
    }

    #[test]
    fn per_packet_stages_keep_a_burst_uniform_until_packets_differ() {
        let pool = HeapPool::new();
        let mut burst: Vec<_> = (0..6u8).map(|i| pool.packet(&[i; 4])).collect();
        let mut metas = Metas::new(6);
        let mut chain = (XConnect::new(&[(0, 1)]), Tag(1));
        chain.process_burst(0, &mut burst, &mut metas);
        assert!(metas.uniform().is_some(), "Tag leaves metas alone");

        metas.each_mut();
        assert_eq!(metas.uniform(), None);
        let mut expect = Meta::NEW;
        expect.set_out_port(1);
        assert_eq!(metas.common(), Some(expect), "expanded but still all equal");

        // One packet sent elsewhere splits the burst.
        struct OddTo2;
        impl<P: Packet> Stage<P> for OddTo2 {
            fn process(&mut self, _: PortIdx, pkt: &mut P, meta: &mut Meta) -> Verdict {
                if pkt.data()[1] % 2 == 1 {
                    meta.set_out_port(2);
                }
                Verdict::Continue
            }
        }
        let mut metas = Metas::new(6);
        (XConnect::new(&[(0, 1)]), OddTo2).process_burst(0, &mut burst, &mut metas);
        assert_eq!(metas.common(), None);
        let outs: Vec<_> = (0..6).map(|i| metas.get(i).out_port()).collect();
        assert_eq!(outs, vec![1, 2, 1, 2, 1, 2]);
    }
}
