//! Per-worker flow table: bidirectional 5-tuple keys, fixed capacity, no
//! allocation after construction.
//!
//! Layout: a set-associative table. A key hashes to two candidate buckets
//! of [`WAYS`] entries (the second derived from the tag, as in a cuckoo
//! table); lookup compares 32-bit tags first and the key only on a tag hit,
//! so a miss costs two cache lines of tags. A new flow takes a free or
//! expired way of either bucket; when all 16 are live, the one idle longest
//! is evicted and counted (with 16 candidates this approximates global LRU
//! the way a CPU cache does, without a list to maintain per packet). Two
//! choices keep a half-full table from evicting live flows: with one
//! bucket of 8, about 2% of flows landed in an overfull bucket at 50% load.
//!
//! Expiry is by idle time per protocol ([`Timeouts`]); TCP FIN or RST in
//! both directions (or RST alone) ends a flow at once. Expired flows are
//! found lazily (a lookup that lands on one) and by an incremental sweep
//! ([`FlowTable::sweep`]) the worker runs a few buckets at a time, so the
//! `expired` counter stays current without a pass over the whole table.

pub mod affinity;
pub mod key;
pub mod listing;
pub mod stage;

pub use key::{parse_at, parse_frame, L4Info};

use crate::dpi::{FlowDpi, FlowView};
use crate::vocab::{Dir, FlowKey};

/// Entries per bucket.
pub const WAYS: usize = 8;

/// Idle timeouts, in clock ticks, per protocol.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timeouts {
    pub tcp: u64,
    /// A TCP flow that has seen FIN from one side.
    pub tcp_closing: u64,
    /// A TCP flow ended by RST or FIN both ways: kept this long to absorb
    /// the last ACKs and retransmissions.
    pub tcp_ended: u64,
    pub udp: u64,
    pub other: u64,
}

impl Timeouts {
    /// The defaults, for a clock of `hz` ticks per second: TCP 300 s,
    /// closing TCP 10 s, ended TCP 1 s, UDP 60 s, others 30 s.
    pub fn with_hz(hz: u64) -> Timeouts {
        Timeouts { tcp: 300 * hz, tcp_closing: 10 * hz, tcp_ended: hz, udp: 60 * hz, other: 30 * hz }
    }
}

/// What one flow holds. Laid out so a lookup and its per-packet update
/// touch the first two cache lines only: the key, the expiry inputs and
/// the counters first; the classification state (read while a flow is
/// inspected) after.
#[derive(Clone, Debug, Default)]
#[repr(C, align(64))]
pub struct Flow {
    pub key: FlowKey,
    /// FIN seen per direction; RST seen.
    pub fin: [bool; 2],
    pub rst: bool,
    /// The direction (as canonicalised in the key) of the first packet.
    pub orig: Dir,
    pub last_seen: u64,
    /// Packets and bytes, [forward, reverse] (forward: as the first packet
    /// went).
    pub packets: [u64; 2],
    pub bytes: [u64; 2],
    pub first_seen: u64,
    /// Classification state and result.
    pub dpi: FlowDpi,
    /// The policy rule per direction (as canonicalised in the key), and
    /// what it was matched under: (policy generation, decided) + 1, so 0
    /// means not matched yet.
    pub rule: [u8; 2],
    pub rule_stamp: [u32; 2],
}

impl Flow {
    fn timeout(&self, t: &Timeouts) -> u64 {
        match self.key.proto {
            6 if self.ended() => t.tcp_ended,
            6 if self.fin[0] || self.fin[1] => t.tcp_closing,
            6 => t.tcp,
            17 => t.udp,
            _ => t.other,
        }
    }

    fn expired(&self, now: u64, t: &Timeouts) -> bool {
        now.wrapping_sub(self.last_seen) > self.timeout(t)
    }

    /// TCP ended by RST or by FIN both ways.
    pub fn ended(&self) -> bool {
        self.rst || (self.fin[0] && self.fin[1])
    }

    /// The flow's classification state, and what DPI reads of the rest.
    #[inline(always)]
    pub fn dpi_parts(&mut self) -> (&mut FlowDpi, FlowView<'_>) {
        (&mut self.dpi, FlowView { key: &self.key, orig: self.orig, packets: self.packets[0] + self.packets[1] })
    }
}

/// Flow-table counters, owned by one worker.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FlowStats {
    pub created: u64,
    /// Idle past their timeout.
    pub expired: u64,
    /// Ended by FIN/RST.
    pub closed: u64,
    /// Evicted from a full bucket to make room.
    pub evicted: u64,
    pub active: u64,
}

/// The table. Capacity is rounded up to a power of two of buckets.
pub struct FlowTable {
    tags: Box<[[u32; WAYS]]>,
    flows: Box<[Flow]>,
    mask: usize,
    timeouts: Timeouts,
    sweep_at: usize,
    pub stats: FlowStats,
    /// Offline only: flows that left the table, kept for reporting.
    retired: Option<Vec<Flow>>,
}

// tag_matches compares a bucket as two 4-lane vectors.
const _: () = assert!(WAYS == 8);

/// Bit w set where `tags[w] == tag`.
#[inline(always)]
fn tag_matches(tags: &[u32; WAYS], tag: u32) -> u32 {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: SSE2 is part of x86_64; unaligned loads of the 32-byte array.
    unsafe {
        use std::arch::x86_64::*;
        let t = _mm_set1_epi32(tag as i32);
        let lo = _mm_cmpeq_epi32(_mm_loadu_si128(tags.as_ptr().cast()), t);
        let hi = _mm_cmpeq_epi32(_mm_loadu_si128(tags.as_ptr().add(4).cast()), t);
        (_mm_movemask_ps(_mm_castsi128_ps(lo)) | _mm_movemask_ps(_mm_castsi128_ps(hi)) << 4) as u32
    }
    #[cfg(not(target_arch = "x86_64"))]
    tags.iter().enumerate().fold(0, |m, (w, &t)| m | ((t == tag) as u32) << w)
}

#[inline(always)]
fn prefetch(p: *const u8) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch is a hint; any address is allowed.
    unsafe {
        std::arch::x86_64::_mm_prefetch(p.cast(), std::arch::x86_64::_MM_HINT_T0)
    };
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}

/// Tag 0 marks a free way.
const FREE: u32 = 0;

impl FlowTable {
    pub fn new(capacity: usize, timeouts: Timeouts) -> FlowTable {
        let buckets = capacity.div_ceil(WAYS).max(1).next_power_of_two();
        FlowTable {
            tags: vec![[FREE; WAYS]; buckets].into_boxed_slice(),
            flows: vec![Flow::default(); buckets * WAYS].into_boxed_slice(),
            mask: buckets - 1,
            timeouts,
            sweep_at: 0,
            stats: FlowStats::default(),
            retired: None,
        }
    }

    /// Forgets every flow (offline reruns; the memory stays).
    pub fn clear(&mut self) {
        self.tags.fill([FREE; WAYS]);
        self.stats = FlowStats::default();
        self.sweep_at = 0;
        if let Some(r) = &mut self.retired {
            r.clear();
        }
    }

    /// Keeps every flow that leaves the table (for offline reports; a
    /// worker never turns this on: it allocates).
    pub fn keep_retired(&mut self) {
        self.retired = Some(Vec::new());
    }

    /// The flows kept by [`FlowTable::keep_retired`].
    pub fn take_retired(&mut self) -> Vec<Flow> {
        self.retired.as_mut().map(std::mem::take).unwrap_or_default()
    }

    pub fn capacity(&self) -> usize {
        self.flows.len()
    }

    /// Finds the flow of `key` or creates it; returns it and the packet's
    /// direction relative to the flow's first packet. `dir` is the key's
    /// direction as canonicalised.
    /// Starts loading the tag lines `key` may live in (call for a burst's
    /// keys before looking them up, so the misses overlap).
    #[inline(always)]
    pub fn prefetch(&self, key: &FlowKey) {
        self.prefetch_hashed(key.hash());
    }

    /// [`FlowTable::prefetch`] with the key's hash already computed.
    #[inline(always)]
    pub fn prefetch_hashed(&self, h: u64) {
        let tag = (h as u32) | 1;
        let b1 = (h >> 32) as usize & self.mask;
        let b2 = (b1 ^ (tag.wrapping_mul(0x9E37_79B1) >> 7) as usize) & self.mask;
        prefetch(self.tags[b1].as_ptr().cast());
        prefetch(self.tags[b2].as_ptr().cast());
    }

    /// Second step, once [`FlowTable::prefetch`]'s lines have arrived:
    /// starts loading the record whose tag matches.
    #[inline(always)]
    pub fn prefetch_flow(&self, h: u64) {
        let tag = (h as u32) | 1;
        let b1 = (h >> 32) as usize & self.mask;
        let b2 = (b1 ^ (tag.wrapping_mul(0x9E37_79B1) >> 7) as usize) & self.mask;
        for b in [b1, b2] {
            let hits = tag_matches(&self.tags[b], tag);
            if hits != 0 {
                prefetch((&self.flows[b * WAYS + hits.trailing_zeros() as usize] as *const Flow).cast());
                return;
            }
        }
    }

    pub fn lookup_or_insert(&mut self, key: &FlowKey, dir: Dir, now: u64) -> (&mut Flow, usize) {
        self.lookup_or_insert_hashed(key, key.hash(), dir, now)
    }

    /// [`FlowTable::lookup_or_insert`] with `key.hash()` already computed
    /// (a burst computes each once for prefetching and lookup).
    #[inline]
    pub fn lookup_or_insert_hashed(&mut self, key: &FlowKey, h: u64, dir: Dir, now: u64) -> (&mut Flow, usize) {
        let tag = (h as u32) | 1; // never FREE
                                  // Two candidate buckets (the second from the tag, as cuckoo tables
                                  // do): a flow lives in either, so a crowded bucket overflows into
                                  // its partner instead of evicting a live flow.
        let b1 = (h >> 32) as usize & self.mask;
        let b2 = (b1 ^ (tag.wrapping_mul(0x9E37_79B1) >> 7) as usize) & self.mask;
        // A hit touches the tag lines and the flow's own record only; the
        // eight tags of a bucket are compared at once.
        for b in [b1, b2] {
            let mut hits = tag_matches(&self.tags[b], tag);
            while hits != 0 {
                let w = hits.trailing_zeros() as usize;
                hits &= hits - 1;
                let i = b * WAYS + w;
                if self.flows[i].key == *key {
                    if !self.flows[i].expired(now, &self.timeouts) {
                        let f = &mut self.flows[i];
                        let d = (dir as usize) ^ f.orig as usize;
                        return (f, d);
                    }
                    // Expired: a new flow with the same key takes its place.
                    Self::retire(&mut self.stats, &mut self.retired, &self.flows[i]);
                    self.tags[b][w] = FREE;
                    return self.create(i, tag, key, dir, now);
                }
            }
        }
        // A new flow: a free way, else an expired one, else the idlest.
        let mut free = None::<usize>;
        let mut victim = None::<(usize, u64)>;
        for b in [b1, b2] {
            for w in 0..WAYS {
                let i = b * WAYS + w;
                if self.tags[b][w] == FREE {
                    free = Some(i);
                    break;
                }
            }
            if free.is_some() {
                break;
            }
        }
        if free.is_none() {
            for b in [b1, b2] {
                for w in 0..WAYS {
                    let i = b * WAYS + w;
                    if self.flows[i].expired(now, &self.timeouts) {
                        Self::retire(&mut self.stats, &mut self.retired, &self.flows[i]);
                        self.tags[b][w] = FREE;
                        free = Some(i);
                        break;
                    } else if victim.is_none_or(|(_, t)| self.flows[i].last_seen < t) {
                        victim = Some((i, self.flows[i].last_seen));
                    }
                }
                if free.is_some() {
                    break;
                }
            }
        }
        let i = match free {
            Some(i) => i,
            None => {
                let (i, _) = victim.expect("a full bucket has a victim");
                if let Some(r) = &mut self.retired {
                    r.push(self.flows[i].clone());
                }
                self.stats.evicted += 1;
                self.stats.active -= 1;
                i
            }
        };
        self.create(i, tag, key, dir, now)
    }

    fn create(&mut self, i: usize, tag: u32, key: &FlowKey, dir: Dir, now: u64) -> (&mut Flow, usize) {
        self.tags[i / WAYS][i % WAYS] = tag;
        self.stats.created += 1;
        self.stats.active += 1;
        let f = &mut self.flows[i];
        *f = Flow { key: *key, first_seen: now, last_seen: now, ..Flow::default() };
        f.orig = dir;
        (f, 0)
    }

    fn retire(stats: &mut FlowStats, retired: &mut Option<Vec<Flow>>, f: &Flow) {
        if let Some(r) = retired {
            r.push(f.clone());
        }
        if f.ended() {
            stats.closed += 1;
        } else {
            stats.expired += 1;
        }
        stats.active -= 1;
    }

    /// Expires idle or ended flows in the next `buckets` buckets.
    pub fn sweep(&mut self, now: u64, buckets: usize) {
        for _ in 0..buckets.min(self.mask + 1) {
            let b = self.sweep_at;
            self.sweep_at = (b + 1) & self.mask;
            for w in 0..WAYS {
                if self.tags[b][w] != FREE && self.flows[b * WAYS + w].expired(now, &self.timeouts) {
                    Self::retire(&mut self.stats, &mut self.retired, &self.flows[b * WAYS + w]);
                    self.tags[b][w] = FREE;
                }
            }
        }
    }

    /// Every live flow (for display and offline classification).
    pub fn iter(&self) -> impl Iterator<Item = &Flow> {
        self.tags
            .iter()
            .enumerate()
            .flat_map(move |(b, t)| (0..WAYS).filter(move |w| t[*w] != FREE).map(move |w| &self.flows[b * WAYS + w]))
    }
}

/// Updates a flow's counters and TCP state for one packet in direction
/// `d` (0 forward, 1 reverse).
#[inline]
pub fn account(f: &mut Flow, d: usize, bytes: usize, l4: &L4Info, now: u64) {
    f.packets[d] += 1;
    f.bytes[d] += bytes as u64;
    f.last_seen = now;
    if let L4Info::Tcp { flags, .. } = *l4 {
        if flags & key::TCP_FIN != 0 {
            f.fin[d] = true;
        }
        if flags & key::TCP_RST != 0 {
            f.rst = true;
        }
    }
}

#[cfg(test)]
mod tests;
