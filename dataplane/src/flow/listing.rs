//! A page of one worker's flows for the control side (`flows` in the API,
//! `patronus show flow-list`), without a lock: a mailbox.
//!
//! The control thread (the only asker) writes an ask: a sequence number
//! and the table slot to start from. The worker sees it on its next tick,
//! scans at most [`SCAN`] slots from there, copies up to [`PAGE`] live
//! flows into the mailbox's rows (plain atomics, so no unsafe and no
//! allocation), and publishes the sequence number as answered. Rows belong
//! to the worker from an ask until its answer, and to the asker after; an
//! asker that gave up on an answer simply asks again with a new number,
//! and reads rows only once that number is answered.
//!
//! Cost on the worker: one relaxed load per tick while nobody asks; a scan
//! of at most `SCAN` tags (and the records of live ones) per ask.

use std::sync::atomic::{AtomicU64, Ordering::Acquire, Ordering::Relaxed, Ordering::Release};

use crate::dpi::{Name, Status};
use crate::flow::{FlowTable, FREE, WAYS};
use crate::vocab::{AppId, Category, Class, Dir, FlowKey};

/// Rows in one answer.
pub const PAGE: usize = 64;
/// Table slots scanned per ask at most (a fraction of a tick's time).
pub const SCAN: usize = 8192;

/// One flow as listed. Times are milliseconds before the answer.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FlowRow {
    /// Where it sits in the worker's table: a page that stops inside an
    /// answer resumes here.
    pub slot: usize,
    pub key: FlowKey,
    /// Which end of the key sent the first packet.
    pub orig: Dir,
    /// [from the first packet's sender, from the other end].
    pub packets: [u64; 2],
    pub bytes: [u64; 2],
    pub age_ms: u64,
    pub idle_ms: u64,
    pub app: AppId,
    pub category: Category,
    pub class: Class,
    pub status: Status,
    /// The policy rule of each direction (of the key), if matched yet.
    pub rule: [Option<u8>; 2],
    /// The host name DPI saw (SNI, Host, query), lower case, ≤ 95 bytes.
    pub host: Name,
}

const WORDS: usize = 4 + 1 + 1 + 6 + 12 + 1;

fn encode(r: &FlowRow) -> [u64; WORDS] {
    let mut w = [0u64; WORDS];
    let addr = |a: &[u8; 16], i: usize| u64::from_be_bytes(a[i * 8..i * 8 + 8].try_into().unwrap_or_default());
    w[0] = addr(&r.key.lo_addr, 0);
    w[1] = addr(&r.key.lo_addr, 1);
    w[2] = addr(&r.key.hi_addr, 0);
    w[3] = addr(&r.key.hi_addr, 1);
    w[4] = u64::from(r.key.lo_port)
        | u64::from(r.key.hi_port) << 16
        | u64::from(r.key.proto) << 32
        | (r.orig as u64) << 40
        | (r.status as u64) << 48
        | (r.class as u64) << 56;
    let rule = |x: Option<u8>| x.map_or(0, |v| u64::from(v) + 1);
    w[5] =
        u64::from(r.app) | (r.category as u64) << 16 | rule(r.rule[0]) << 24 | rule(r.rule[1]) << 36 | (r.host.as_str().len() as u64) << 48;
    w[6..12].copy_from_slice(&[r.packets[0], r.packets[1], r.bytes[0], r.bytes[1], r.age_ms, r.idle_ms]);
    let mut host = [0u8; 96];
    let h = r.host.as_str().as_bytes();
    host[..h.len()].copy_from_slice(h);
    for (i, c) in host.chunks_exact(8).enumerate() {
        w[12 + i] = u64::from_le_bytes(c.try_into().unwrap_or_default());
    }
    w[24] = r.slot as u64;
    w
}

fn decode(w: &[u64; WORDS]) -> FlowRow {
    let mut r = FlowRow::default();
    let split = |a: &mut [u8; 16], x: u64, y: u64| {
        a[..8].copy_from_slice(&x.to_be_bytes());
        a[8..].copy_from_slice(&y.to_be_bytes());
    };
    split(&mut r.key.lo_addr, w[0], w[1]);
    split(&mut r.key.hi_addr, w[2], w[3]);
    r.key.lo_port = w[4] as u16;
    r.key.hi_port = (w[4] >> 16) as u16;
    r.key.proto = (w[4] >> 32) as u8;
    r.orig = if (w[4] >> 40) as u8 & 1 == 1 { Dir::Hi } else { Dir::Lo };
    r.status = match (w[4] >> 48) as u8 {
        1 => Status::Decided,
        2 => Status::GaveUp,
        _ => Status::Inspecting,
    };
    r.class = Class::ALL.get((w[4] >> 56) as usize).copied().unwrap_or(Class::Standard);
    r.app = w[5] as u16;
    r.category = Category::ALL.get((w[5] >> 16) as u8 as usize).copied().unwrap_or_default();
    let rule = |x: u64| (x & 0xfff).checked_sub(1).map(|v| v as u8);
    r.rule = [rule(w[5] >> 24), rule(w[5] >> 36)];
    let len = ((w[5] >> 48) as u8).min(95) as usize;
    [r.packets[0], r.packets[1], r.bytes[0], r.bytes[1], r.age_ms, r.idle_ms] = [w[6], w[7], w[8], w[9], w[10], w[11]];
    let mut host = [0u8; 96];
    for i in 0..12 {
        host[i * 8..i * 8 + 8].copy_from_slice(&w[12 + i].to_le_bytes());
    }
    r.host = Name::new(&host[..len]);
    r.slot = w[24] as usize;
    r
}

/// The mailbox of one worker.
pub struct FlowListing {
    /// `seq << 32 | start slot`.
    ask: AtomicU64,
    answered: AtomicU64,
    /// With the answer: rows filled, and the slot to continue from (the
    /// table's capacity once the whole table was scanned).
    count: AtomicU64,
    next: AtomicU64,
    rows: Box<[[AtomicU64; WORDS]]>,
}

impl Default for FlowListing {
    fn default() -> Self {
        FlowListing {
            ask: AtomicU64::new(0),
            answered: AtomicU64::new(0),
            count: AtomicU64::new(0),
            next: AtomicU64::new(0),
            rows: (0..PAGE).map(|_| std::array::from_fn(|_| AtomicU64::new(0))).collect(),
        }
    }
}

/// One answer: the rows, and where the next ask should start (`None`
/// when this worker's table is done).
#[derive(Debug, Default)]
pub struct Answer {
    pub rows: Vec<FlowRow>,
    pub next: Option<usize>,
}

impl FlowListing {
    /// The asker's side (one asker at a time: the control thread): asks
    /// for the flows from slot `start` and waits for the answer until
    /// `deadline`. `None`: no answer in time (the worker is stopped or
    /// stalled).
    pub fn ask(&self, start: usize, deadline: std::time::Instant) -> Option<Answer> {
        let s = (self.ask.load(Relaxed) >> 32).wrapping_add(1) & 0xffff_ffff;
        let s = s.max(1);
        self.ask.store(s << 32 | start as u64 & 0xffff_ffff, Release);
        loop {
            if self.answered.load(Acquire) == s {
                break;
            }
            if std::time::Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(std::time::Duration::from_micros(20));
        }
        let n = (self.count.load(Relaxed) as usize).min(PAGE);
        let rows = self.rows[..n]
            .iter()
            .map(|cells| {
                let mut w = [0u64; WORDS];
                for (x, c) in w.iter_mut().zip(cells) {
                    *x = c.load(Relaxed);
                }
                decode(&w)
            })
            .collect();
        let next = self.next.load(Relaxed);
        Some(Answer { rows, next: (next != u64::MAX).then_some(next as usize) })
    }

    /// The worker's side, once per tick: answers a new ask from `table`.
    /// `ms`: clock ticks per millisecond.
    #[inline(always)]
    pub fn serve(&self, table: &FlowTable, now: u64, ms: u64, answered: &mut u32) {
        let a = self.ask.load(Relaxed);
        if (a >> 32) as u32 != *answered {
            self.answer(a, table, now, ms, answered);
        }
    }

    #[cold]
    fn answer(&self, a: u64, table: &FlowTable, now: u64, ms: u64, answered: &mut u32) {
        std::sync::atomic::fence(Acquire);
        let seq = (a >> 32) as u32;
        let cap = table.capacity();
        let start = (a & 0xffff_ffff) as usize;
        let end = start.saturating_add(SCAN).min(cap);
        let ms = ms.max(1);
        let mut n = 0;
        let mut i = start.min(cap);
        while i < end && n < PAGE {
            if table.tags[i / WAYS][i % WAYS] != FREE {
                let f = &table.flows[i];
                if !f.expired(now, &table.timeouts) {
                    let d = &f.dpi;
                    let rule = |k: usize| (f.rule_stamp[k] != 0).then_some(f.rule[k]);
                    let row = FlowRow {
                        slot: i,
                        key: f.key,
                        orig: f.orig,
                        packets: f.packets,
                        bytes: f.bytes,
                        age_ms: now.wrapping_sub(f.first_seen) / ms,
                        idle_ms: now.wrapping_sub(f.last_seen) / ms,
                        app: d.app,
                        category: d.category,
                        class: d.class,
                        status: d.status,
                        rule: [rule(0), rule(1)],
                        host: d.host,
                    };
                    for (c, x) in self.rows[n].iter().zip(encode(&row)) {
                        c.store(x, Relaxed);
                    }
                    n += 1;
                }
            }
            i += 1;
        }
        self.count.store(n as u64, Relaxed);
        self.next.store(if i >= cap { u64::MAX } else { i as u64 }, Relaxed);
        self.answered.store(u64::from(seq), Release);
        *answered = seq;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flow::Timeouts;
    use std::time::{Duration, Instant};

    #[test]
    fn rows_survive_the_mailbox_encoding() {
        let (key, _) = FlowKey::new([1; 16], 1234, [0xfe; 16], 443, 6);
        let host = Name::new(b"example.com");
        let r = FlowRow {
            slot: 77,
            key,
            orig: Dir::Hi,
            packets: [3, u64::MAX],
            bytes: [1 << 40, 7],
            age_ms: 12,
            idle_ms: 4,
            app: 513,
            category: Category::ALL[14],
            class: Class::Bulk,
            status: Status::GaveUp,
            rule: [None, Some(255)],
            host,
        };
        assert_eq!(decode(&encode(&r)), r);
        assert_eq!(decode(&encode(&r)).host.as_str(), "example.com");
        assert_eq!(decode(&encode(&FlowRow::default())), FlowRow::default());
    }

    #[test]
    fn a_worker_answers_pages_until_its_table_is_done() {
        let hz = 1000;
        let mut t = FlowTable::new(SCAN * 4, Timeouts::with_hz(hz));
        for i in 0..300u16 {
            let (k, d) = FlowKey::new([10; 16], i, [20; 16], 80, 17);
            t.lookup_or_insert(&k, d, 5).0.packets[0] = u64::from(i) + 1;
        }
        let mb = std::sync::Arc::new(FlowListing::default());
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let worker = {
            let (mb, stop) = (mb.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut answered = 0;
                while !stop.load(Relaxed) {
                    mb.serve(&t, 10, 1, &mut answered);
                    std::thread::yield_now();
                }
            })
        };
        let (mut start, mut seen, mut asks) = (Some(0), Vec::new(), 0);
        while let Some(s) = start {
            let a = mb.ask(s, Instant::now() + Duration::from_secs(10)).expect("answered");
            assert!(a.rows.len() <= PAGE);
            seen.extend(a.rows.iter().map(|r| r.packets[0]));
            assert!(a.rows.iter().all(|r| r.age_ms == 5 && r.idle_ms == 5 && r.key.proto == 17));
            start = a.next;
            asks += 1;
        }
        stop.store(true, Relaxed);
        worker.join().unwrap();
        seen.sort_unstable();
        assert_eq!(seen, (1..=300).collect::<Vec<u64>>(), "every flow exactly once");
        assert!((300 / PAGE + 1..=300 / PAGE + 1 + 4).contains(&asks), "{asks} asks");
        // Nobody serving: the asker gives up at its deadline.
        assert!(mb.ask(0, Instant::now() + Duration::from_millis(5)).is_none());
    }
}
