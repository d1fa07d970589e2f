//! The classification stage of a worker: every IP packet finds its flow in
//! the worker's own table (RSS keeps a flow on one core), is counted, and
//! while the flow is undecided its payload goes to DPI. The signature set
//! comes from the published snapshot, so a reload swaps it live; flows keep
//! the verdicts they already have.

use std::sync::Arc;

use crate::counters::Counter;
use crate::dpi::{Dpi, Local, Status};
use crate::flow::listing::FlowListing;
use crate::flow::{account, key, FlowStats, FlowTable, Timeouts};
use crate::packet::Packet;
use crate::path::{Facts, Policy};
use crate::pipeline::{Meta, Metas, Stage, Verdict};
use crate::rcu::Reader;
use crate::vocab::{AppId, Category, Class, Dir};
use crate::worker::Clock;
use crate::{PortIdx, MAX_BURST};

/// Applications counted per worker (ids past this share the last slot).
pub const COUNTED_APPS: usize = 512;

/// One worker's flow and DPI counters, read by the control thread.
pub struct FlowCounters {
    pub created: Counter,
    pub expired: Counter,
    pub closed: Counter,
    pub evicted: Counter,
    /// Live flows (a gauge: created - expired - closed - evicted).
    pub active: Counter,
    /// Frames that are not IPv4/IPv6 (ARP, LLDP, ...) or too damaged to
    /// parse: forwarded unclassified.
    pub unparsed: Counter,
    /// Flows decided, by application id ([`COUNTED_APPS`] slots; 0 is
    /// Unknown: flows that stayed unidentified).
    pub apps: Box<[Counter]>,
    /// Packets and IP bytes by the application their flow has at the time
    /// (Unknown while DPI is still deciding), same slots as `apps`.
    pub app_traffic: Box<[AppTraffic]>,
    /// Packets inspected by DPI.
    pub inspected: Counter,
    /// TLS/QUIC hellos that did not fit a reassembly slot.
    pub reasm_overflows: Counter,
    /// Where the control thread asks for a page of this worker's flows.
    pub listing: FlowListing,
}

impl Default for FlowCounters {
    fn default() -> Self {
        FlowCounters {
            created: Counter::default(),
            expired: Counter::default(),
            closed: Counter::default(),
            evicted: Counter::default(),
            active: Counter::default(),
            unparsed: Counter::default(),
            apps: (0..COUNTED_APPS).map(|_| Counter::default()).collect(),
            app_traffic: (0..COUNTED_APPS).map(|_| AppTraffic::default()).collect(),
            inspected: Counter::default(),
            reasm_overflows: Counter::default(),
            listing: FlowListing::default(),
        }
    }
}

/// One application's traffic on one worker: both counters in one line.
#[derive(Default)]
#[repr(align(16))]
pub struct AppTraffic {
    pub packets: Counter,
    pub bytes: Counter,
}

/// Sizes of a worker's classification state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FlowConf {
    /// Flow table capacity (rounded up to a power of two).
    pub flows: usize,
    pub timeouts_s: TimeoutsS,
    /// DNS answer cache entries.
    pub dns_cache: usize,
    /// TLS/QUIC hello reassembly slots.
    pub reassembly: usize,
}

/// Idle timeouts in seconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TimeoutsS {
    pub tcp: u64,
    pub tcp_closing: u64,
    pub udp: u64,
    pub other: u64,
}

impl Default for FlowConf {
    fn default() -> Self {
        FlowConf { flows: 65536, timeouts_s: TimeoutsS { tcp: 300, tcp_closing: 10, udp: 60, other: 30 }, dns_cache: 4096, reassembly: 256 }
    }
}

impl FlowConf {
    fn timeouts(&self, hz: u64) -> Timeouts {
        let t = self.timeouts_s;
        let mut x = Timeouts::with_hz(hz);
        x.tcp = t.tcp * hz;
        x.tcp_closing = t.tcp_closing * hz;
        x.udp = t.udp * hz;
        x.other = t.other * hz;
        x
    }
}

/// The snapshot a classifier reads: the compiled signatures and the path
/// policy's rules (`[[policy]]`), published together on every reload.
pub struct DpiSnapshot {
    pub dpi: Dpi,
    pub policy: Policy,
}

pub struct Classifier<C: Clock> {
    dpi: Reader<DpiSnapshot>,
    table: FlowTable,
    local: Local,
    clock: C,
    counters: Arc<FlowCounters>,
    /// Table stats already added to `counters`.
    reported: FlowStats,
    overflows: u64,
    /// Buckets swept per tick: the whole table about every 2^16 ticks.
    sweep: usize,
    now: u64,
    /// `[dpi] enabled = false`: packets pass untouched.
    on: bool,
    /// Clock ticks per millisecond, and the last flow-listing ask answered.
    ms: u64,
    answered: u32,
}

impl<C: Clock> Classifier<C> {
    /// `hz`: ticks per second of `clock`. Allocates the table, cache and
    /// reassembly pool once, here.
    /// `worker`: this worker's index among those the snapshot's
    /// signatures were prepared for (`Dpi::set_workers`).
    pub fn new(dpi: Reader<DpiSnapshot>, conf: &FlowConf, clock: C, hz: u64, counters: Arc<FlowCounters>, worker: usize) -> Self {
        let mut c = Self::build(dpi, conf, clock, hz, counters, true);
        c.local.worker = worker;
        c
    }

    /// Shares `cache` (DNS answers, SDP and FTP announcements) with the
    /// other workers' classifiers instead of a table of its own.
    pub fn sharing(mut self, cache: &crate::dpi::DnsCache) -> Self {
        let hz = self.local.dns.hz;
        self.local.dns = cache.clone();
        self.local.dns.hz = hz;
        self
    }

    /// A stage that passes every packet untouched (classification off).
    pub fn off(dpi: Reader<DpiSnapshot>, clock: C, hz: u64, counters: Arc<FlowCounters>) -> Self {
        let tiny = FlowConf { flows: 8, dns_cache: 1, reassembly: 1, ..FlowConf::default() };
        Self::build(dpi, &tiny, clock, hz, counters, false)
    }

    fn build(dpi: Reader<DpiSnapshot>, conf: &FlowConf, clock: C, hz: u64, counters: Arc<FlowCounters>, on: bool) -> Self {
        let table = FlowTable::new(conf.flows, conf.timeouts(hz));
        let mut local = Local::new(conf.dns_cache, conf.reassembly);
        local.dns.hz = hz;
        let sweep = (table.capacity() / 8 / 65536).max(1);
        Classifier {
            dpi,
            table,
            local,
            now: clock.now(),
            clock,
            counters,
            reported: FlowStats::default(),
            overflows: 0,
            sweep,
            on,
            ms: hz / 1000,
            answered: 0,
        }
    }

    /// The table's and pool's counters, published as deltas.
    fn report(&mut self) {
        let s = self.table.stats;
        let c = &self.counters;
        c.created.add(s.created - self.reported.created);
        c.expired.add(s.expired - self.reported.expired);
        c.closed.add(s.closed - self.reported.closed);
        c.evicted.add(s.evicted - self.reported.evicted);
        c.active.add(s.active.wrapping_sub(self.reported.active));
        self.reported = s;
        let o = self.local.reasm.overflows;
        c.reasm_overflows.add(o - self.overflows);
        self.overflows = o;
    }
}

impl<P: Packet, C: Clock> Stage<P> for Classifier<C> {
    const KEEPS_LENGTH: bool = true;

    #[inline(always)]
    fn tick(&mut self) {
        self.dpi.refresh();
        self.now = self.clock.now();
        self.table.sweep(self.now, self.sweep);
        self.report();
        self.counters.listing.serve(&self.table, self.now, self.ms, &mut self.answered);
    }

    /// A burst in three passes so the flow table's cache misses overlap:
    /// parse every frame and prefetch its candidate buckets' tags; prefetch
    /// the records whose tags match; then look up, count and inspect.
    #[inline(always)]
    fn process_burst(&mut self, _in_port: PortIdx, pkts: &mut [P], metas: &mut Metas) {
        if !self.on {
            return;
        }
        let n = pkts.len().min(MAX_BURST);
        let mut parsed: [Option<key::Parsed>; MAX_BURST] = [None; MAX_BURST];
        let mut hashes = [0u64; MAX_BURST];
        for i in 0..n {
            if metas.get(i).is_dropped() {
                continue;
            }
            match key::parse_frame(pkts[i].data()) {
                Some(p) => {
                    hashes[i] = p.key.hash();
                    self.table.prefetch_hashed(hashes[i]);
                    parsed[i] = Some(p);
                }
                None => self.counters.unparsed.add(1),
            }
        }
        for i in 0..n {
            if parsed[i].is_some() {
                self.table.prefetch_flow(hashes[i]);
            }
        }
        for i in 0..n {
            if let Some(p) = &parsed[i] {
                let (class, rule) = self.packet(pkts[i].data(), p, hashes[i]);
                // Standard and the default rule are what an unmarked packet
                // gets: a burst of them stays uniform.
                if class != Class::Standard || rule != 0 {
                    let mut m = metas.get(i);
                    m.set_class(class);
                    m.set_rule(rule);
                    metas.set(i, m);
                }
            }
        }
    }

    #[inline(always)]
    fn process(&mut self, _in_port: PortIdx, pkt: &mut P, meta: &mut Meta) -> Verdict {
        if !self.on || meta.is_dropped() {
            return Verdict::Continue;
        }
        let data = pkt.data();
        let Some(p) = key::parse_frame(data) else {
            self.counters.unparsed.add(1);
            return Verdict::Continue;
        };
        let (class, rule) = self.packet(data, &p, p.key.hash());
        if class != Class::Standard || rule != 0 {
            meta.set_class(class);
            meta.set_rule(rule);
        }
        Verdict::Continue
    }
}

impl<C: Clock> Classifier<C> {
    /// One parsed packet: its flow found (or created) and counted, its
    /// payload inspected while the flow wants it. Returns the flow's QoS
    /// class (its policy rule's, else its application's once decided) and
    /// its policy rule.
    #[inline(always)]
    fn packet(&mut self, data: &[u8], p: &key::Parsed, hash: u64) -> (Class, u8) {
        let now = self.now;
        let (flow, d) = self.table.lookup_or_insert_hashed(&p.key, hash, p.dir, now);
        account(flow, d, p.ip_len, &p.l4, now);
        if flow.dpi.wants() {
            let dpi = &self.dpi.get().dpi;
            let payload = &data[p.payload.0..p.payload.0 + p.payload.1];
            let was = flow.dpi.status;
            let (st, view) = flow.dpi_parts();
            dpi.inspect(st, view, d, payload, &mut self.local, now);
            self.counters.inspected.add(1);
            if was == Status::Inspecting && flow.dpi.status != Status::Inspecting {
                let slot = (flow.dpi.app as usize).min(COUNTED_APPS - 1);
                self.counters.apps[slot].add(1);
            }
        }
        let t = &self.counters.app_traffic[(flow.dpi.app as usize).min(COUNTED_APPS - 1)];
        t.packets.add(1);
        t.bytes.add(p.ip_len as u64);
        let policy = &self.dpi.get().policy;
        if policy.rules.is_empty() {
            return (flow.dpi.class, 0);
        }
        // Matched once per direction, again when the flow is decided or the policy reloads.
        let decided = flow.dpi.status == Status::Decided;
        let stamp = (policy.generation << 1 | decided as u32).wrapping_add(1);
        let d = p.dir as usize;
        if flow.rule_stamp[d] != stamp {
            flow.rule_stamp[d] = stamp;
            flow.rule[d] = policy.lookup(&facts(p, decided.then_some((flow.dpi.app, flow.dpi.category))));
        }
        let rule = flow.rule[d];
        (policy.class(rule).unwrap_or(flow.dpi.class), rule)
    }
}

/// A packet's addresses, ports and DSCP as the policy matches them.
#[inline]
fn facts(p: &key::Parsed, app: Option<(AppId, Category)>) -> Facts<'_> {
    let k = &p.key;
    let (src, sport, dst, dport) = match p.dir {
        Dir::Lo => (&k.lo_addr, k.lo_port, &k.hi_addr, k.hi_port),
        Dir::Hi => (&k.hi_addr, k.hi_port, &k.lo_addr, k.lo_port),
    };
    Facts { app, src, dst, is_v4: crate::vocab::is_mapped_v4(src), sport, dport, proto: k.proto, dscp: p.dscp }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::packet::HeapPool;
    use crate::path::Match;
    use crate::rcu::Publisher;
    use crate::vocab::Class;

    struct Fixed;
    impl Clock for Fixed {
        fn now(&self) -> u64 {
            1
        }
    }

    /// Ethernet with `tags` (TPID, VID), then an IPv4 or IPv6 UDP packet
    /// whose DSCP is `dscp`, from a source port of its own (one flow per DSCP).
    pub(crate) fn tagged_udp(tags: &[(u16, u16)], v6: bool, dscp: u8) -> Vec<u8> {
        let mut f = vec![2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2];
        for &(tpid, vid) in tags {
            f.extend_from_slice(&tpid.to_be_bytes());
            f.extend_from_slice(&vid.to_be_bytes());
        }
        if v6 {
            let tc = dscp << 2;
            f.extend_from_slice(&[0x86, 0xdd, 0x60 | tc >> 4, tc << 4, 0, 0, 0, 12, 17, 64]);
            f.extend_from_slice(&[0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
            f.extend_from_slice(&[0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2]);
        } else {
            f.extend_from_slice(&[0x08, 0x00, 0x45, dscp << 2, 0, 32, 0, 0, 0, 0, 64, 17, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2]);
        }
        f.extend_from_slice(&[0x13, dscp, 0x13, 0x89, 0, 12, 0, 0, b'v', b'o', b'i', b'p']);
        f
    }

    pub(crate) const TAGS: [(&str, &[(u16, u16)]); 3] =
        [("untagged", &[]), ("802.1Q", &[(0x8100, 100)]), ("QinQ", &[(0x88a8, 200), (0x8100, 100)])];

    /// A `[[policy]]` rule matching DSCP EF (46) picks its rule and class
    /// whatever tags the frame carries.
    #[test]
    fn a_dscp_policy_rule_matches_tagged_and_untagged_frames_of_both_families() {
        let mut dpi = Dpi::compile(&Default::default(), 4).unwrap();
        dpi.set_workers(1).unwrap();
        let rule = Match { dscp: vec![46], ..Match::default() };
        let snap = Publisher::new(DpiSnapshot { dpi, policy: Policy { rules: vec![(rule, Some(Class::RealTime))], generation: 1 } });
        let pool = HeapPool::new();
        for (name, tags) in TAGS {
            for v6 in [false, true] {
                let mut c = Classifier::new(snap.reader(), &FlowConf::default(), Fixed, 1000, Arc::default(), 0);
                let mut pkts = vec![pool.packet(&tagged_udp(tags, v6, 46)), pool.packet(&tagged_udp(tags, v6, 0))];
                let mut metas = Metas::new(2);
                c.process_burst(0, &mut pkts, &mut metas);
                let got: Vec<_> = (0..2).map(|i| (metas.get(i).rule(), metas.get(i).class())).collect();
                assert_eq!(got, [(1, Some(Class::RealTime)), (0, None)], "{name}, IPv{}", if v6 { 6 } else { 4 });
            }
        }
    }
}
