//! Latency histograms a worker records into and the control thread reads,
//! with neither waiting for the other.
//!
//! A [`Slot`] holds two histograms. The worker records into the one the
//! slot's epoch selects; the control thread advances the epoch, and once
//! the worker has acknowledged it (at its next record or tick) the other
//! histogram is the control thread's to read and reset. Values are TSC
//! cycles; the control thread converts.

use std::cell::UnsafeCell;
use std::sync::atomic::{AtomicU64, Ordering::*};
use std::sync::Arc;

use hdrhistogram::Histogram;

/// Largest value kept exactly (about a second at 4 GHz); larger ones are
/// clamped to it.
const MAX_CYCLES: u64 = 1 << 32;

/// One double-buffered histogram shared by a recording worker and the
/// control thread.
pub struct Slot {
    /// What is measured (a metric label: "residence", "iteration", a stage name).
    pub name: String,
    /// Advanced by the control thread; the worker records into `hists[epoch & 1]`.
    epoch: AtomicU64,
    /// The epoch the worker has switched to.
    acked: AtomicU64,
    hists: [UnsafeCell<Histogram<u64>>; 2],
}

// SAFETY: at any time one histogram belongs to the worker (the epoch's) and
// the other to the control thread (once acknowledged); see Recorder and
// Slot::take.
unsafe impl Sync for Slot {}
unsafe impl Send for Slot {}

fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, MAX_CYCLES, 3).expect("valid histogram bounds")
}

impl Slot {
    pub fn new(name: &str) -> Arc<Slot> {
        Arc::new(Slot {
            name: name.to_owned(),
            epoch: AtomicU64::new(0),
            acked: AtomicU64::new(0),
            hists: [UnsafeCell::new(histogram()), UnsafeCell::new(histogram())],
        })
    }

    /// The recording side, for exactly one thread.
    pub fn recorder(self: &Arc<Self>) -> Recorder {
        Recorder { slot: self.clone(), seen: self.epoch.load(Acquire) }
    }

    /// Control thread: adds what was recorded since the last call into
    /// `into` and returns true; false if the worker has not yet moved to
    /// the current buffer (try again later; nothing is lost).
    pub fn take(&self, into: &mut Histogram<u64>) -> bool {
        let e = self.epoch.load(Acquire);
        if self.acked.load(Acquire) != e {
            return false;
        }
        // The worker records into hists[e & 1]; the other one is idle
        // since it acknowledged e.
        // SAFETY: see above; only the control thread calls take.
        let idle = unsafe { &mut *self.hists[((e + 1) & 1) as usize].get() };
        let _ = into.add(&*idle);
        idle.reset();
        // Hand the drained buffer to the worker next; the current one
        // becomes ours once it acknowledges.
        self.epoch.store(e + 1, Release);
        true
    }
}

/// The worker's handle on a slot.
pub struct Recorder {
    slot: Arc<Slot>,
    seen: u64,
}

impl Recorder {
    /// Follows the control thread to the buffer it selected. Called every
    /// loop iteration so an idle worker still hands buffers over.
    #[inline(always)]
    pub fn sync(&mut self) {
        let e = self.slot.epoch.load(Acquire);
        if e != self.seen {
            self.seen = e;
            self.slot.acked.store(e, Release);
        }
    }

    /// Records `n` occurrences of `cycles`.
    #[inline(always)]
    pub fn record_n(&mut self, cycles: u64, n: u64) {
        self.sync();
        // SAFETY: hists[seen & 1] is the worker's until it acknowledges a
        // newer epoch, which only this thread does.
        let h = unsafe { &mut *self.slot.hists[(self.seen & 1) as usize].get() };
        h.saturating_record_n(cycles.clamp(1, MAX_CYCLES), n);
    }
}

/// Counts down to pick one event in `every`.
#[derive(Clone, Copy)]
pub struct Sampler {
    every: u32,
    left: u32,
}

impl Sampler {
    pub fn new(every: u32) -> Self {
        Sampler { every: every.max(1), left: every.max(1) }
    }

    /// True once every `every` calls.
    #[inline(always)]
    pub fn hit(&mut self) -> bool {
        self.left -= 1;
        if self.left == 0 {
            self.left = self.every;
            true
        } else {
            false
        }
    }
}

/// A histogram the control thread accumulates.
pub fn accumulator() -> Histogram<u64> {
    histogram()
}

/// p50, p90, p99, p99.9 and max of `h`, in cycles.
pub fn quantiles(h: &Histogram<u64>) -> [u64; 5] {
    [h.value_at_quantile(0.5), h.value_at_quantile(0.9), h.value_at_quantile(0.99), h.value_at_quantile(0.999), h.max()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_control_thread_reads_what_the_worker_recorded_without_locks() {
        let slot = Slot::new("residence");
        let mut rec = slot.recorder();
        let mut acc = accumulator();
        rec.record_n(1000, 3);
        // Worker is on buffer 0 (epoch 0, acknowledged at creation): take
        // reads the idle buffer 1 (empty) and moves the worker to 1.
        assert!(slot.take(&mut acc));
        assert_eq!(acc.len(), 0);
        assert!(!slot.take(&mut acc), "the worker has not switched yet");
        rec.sync();
        assert!(slot.take(&mut acc));
        assert_eq!(acc.len(), 3);
        assert_eq!(acc.max(), acc.value_at_quantile(1.0));
        rec.record_n(5000, 1);
        rec.sync();
        assert!(slot.take(&mut acc));
        assert_eq!(acc.len(), 3, "recorded into the buffer the worker holds now: arrives next time");
        rec.sync();
        assert!(slot.take(&mut acc));
        assert_eq!(acc.len(), 4);
        assert!(quantiles(&acc)[4] >= 5000);
    }

    #[test]
    fn concurrent_recording_loses_nothing() {
        let slot = Slot::new("x");
        let mut rec = slot.recorder();
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let s2 = stop.clone();
        let worker = std::thread::spawn(move || {
            let mut n = 0u64;
            while !s2.load(Relaxed) {
                rec.record_n(100 + n % 50, 1);
                n += 1;
            }
            // Keep acknowledging so the control thread can drain the rest.
            for _ in 0..1000 {
                rec.sync();
                std::thread::yield_now();
            }
            n
        });
        let mut acc = accumulator();
        for _ in 0..2000 {
            slot.take(&mut acc);
        }
        stop.store(true, Relaxed);
        // Two more handovers bring in both buffers' remainders.
        let mut tries = 0;
        let mut takes = 0;
        while takes < 2 && tries < 1_000_000 {
            takes += slot.take(&mut acc) as u32;
            tries += 1;
        }
        let n = worker.join().unwrap();
        while !slot.take(&mut acc) {}
        assert_eq!(acc.len(), n, "every record reaches the control thread exactly once");
    }

    #[test]
    fn sampler_picks_one_in_n() {
        let mut s = Sampler::new(4);
        let hits: Vec<bool> = (0..8).map(|_| s.hit()).collect();
        assert_eq!(hits, [false, false, false, true, false, false, false, true]);
    }
}
