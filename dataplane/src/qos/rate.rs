//! Rates: a token bucket shared by every worker that sends through one
//! egress port (or one class of it), lock-free. Workers take credit in
//! chunks and spend it locally, so the shared line is touched once per
//! chunk, not per packet, and the aggregate never exceeds the rate by more
//! than the bucket's burst plus one chunk per worker.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::*};

/// A token bucket of bytes, refilled at `bytes_per_sec` up to `burst`.
#[repr(align(64))]
pub struct SharedRate {
    /// Bytes per second; 0 means unlimited.
    bytes_per_sec: u64,
    burst: i64,
    /// Clock ticks per second (the TSC's, or 1e9 for nanoseconds).
    hz: u64,
    tokens: AtomicI64,
    /// Clock reading the tokens were last refilled for.
    stamp: AtomicU64,
}

impl SharedRate {
    /// `bits_per_sec` 0: unlimited. `burst_bytes`: how much may go at once
    /// after an idle spell.
    pub fn new(bits_per_sec: u64, burst_bytes: u64, hz: u64) -> Self {
        SharedRate {
            bytes_per_sec: bits_per_sec / 8,
            burst: burst_bytes.max(1) as i64,
            hz: hz.max(1),
            tokens: AtomicI64::new(burst_bytes.max(1) as i64),
            stamp: AtomicU64::new(0),
        }
    }

    pub fn unlimited(&self) -> bool {
        self.bytes_per_sec == 0
    }

    /// Bits per second (0: unlimited).
    pub fn bits_per_sec(&self) -> u64 {
        self.bytes_per_sec * 8
    }

    /// Adds the tokens earned since the last refill (one thread wins each
    /// interval; the others see its result).
    #[inline]
    fn refill(&self, now: u64) {
        let last = self.stamp.load(Acquire);
        if now <= last {
            return;
        }
        // Whole bytes only: the remainder of the interval stays unclaimed.
        let earned = ((now - last) as u128 * self.bytes_per_sec as u128 / self.hz as u128) as i64;
        if earned == 0 {
            return;
        }
        let used = (earned as u128 * self.hz as u128).div_ceil(self.bytes_per_sec as u128) as u64;
        if self.stamp.compare_exchange(last, last + used.min(now - last), AcqRel, Relaxed).is_err() {
            return; // another worker refilled
        }
        let mut cur = self.tokens.load(Relaxed);
        loop {
            let next = (cur + earned).min(self.burst);
            match self.tokens.compare_exchange_weak(cur, next, AcqRel, Relaxed) {
                Ok(_) => return,
                Err(c) => cur = c,
            }
        }
    }

    /// Takes up to `want` bytes of credit at `now`; returns how many.
    #[inline]
    pub fn take(&self, want: u64, now: u64) -> u64 {
        if self.unlimited() {
            return want;
        }
        self.refill(now);
        let mut cur = self.tokens.load(Relaxed);
        loop {
            if cur <= 0 {
                return 0;
            }
            let grant = (want as i64).min(cur);
            match self.tokens.compare_exchange_weak(cur, cur - grant, AcqRel, Relaxed) {
                Ok(_) => return grant as u64,
                Err(c) => cur = c,
            }
        }
    }

    /// Gives back credit a worker took but will not use (a queue emptied).
    #[inline]
    pub fn give_back(&self, bytes: u64) {
        if self.unlimited() || bytes == 0 {
            return;
        }
        let mut cur = self.tokens.load(Relaxed);
        loop {
            let next = (cur + bytes as i64).min(self.burst);
            match self.tokens.compare_exchange_weak(cur, next, AcqRel, Relaxed) {
                Ok(_) => return,
                Err(c) => cur = c,
            }
        }
    }
}

/// One worker's credit from a [`SharedRate`].
#[derive(Default)]
pub struct Credit {
    bytes: u64,
}

impl Credit {
    /// Whether `len` bytes may go now, taking a chunk from `rate` if the
    /// local credit is short. Does not spend.
    #[inline]
    pub fn has(&mut self, rate: &SharedRate, len: u64, chunk: u64, now: u64) -> bool {
        if rate.unlimited() || self.bytes >= len {
            return true;
        }
        self.bytes += rate.take(chunk.max(len - self.bytes), now);
        self.bytes >= len
    }

    #[inline]
    pub fn spend(&mut self, rate: &SharedRate, len: u64) {
        if !rate.unlimited() {
            self.bytes = self.bytes.saturating_sub(len);
        }
    }

    /// Returns unused credit (when the worker's queues are empty, so other
    /// workers can use it).
    pub fn release(&mut self, rate: &SharedRate) {
        rate.give_back(std::mem::take(&mut self.bytes));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_is_exact_over_a_second_from_10_mbps_to_10_gbps() {
        for bps in [10_000_000u64, 100_000_000, 1_000_000_000, 10_000_000_000] {
            let hz = 1_000_000_000;
            let r = SharedRate::new(bps, 15_000, hz);
            // Drain the initial burst, then take greedily every 10 µs for 1 s.
            let start = r.take(u64::MAX / 4, 0);
            assert_eq!(start, 15_000);
            let mut got = 0u64;
            let mut t = 0;
            while t < hz {
                t += 10_000;
                got += r.take(1 << 40, t);
            }
            let want = bps / 8;
            let err = (got as f64 - want as f64).abs() / want as f64;
            assert!(err < 0.001, "{bps} bit/s: {got} bytes in 1 s, want {want} ({:.4}%)", err * 100.0);
        }
    }

    #[test]
    fn chunked_credit_from_several_workers_stays_within_the_rate() {
        let hz = 1_000_000_000u64;
        let r = SharedRate::new(50_000_000, 3000, hz);
        let mut credits: Vec<Credit> = (0..4).map(|_| Credit::default()).collect();
        let mut sent = 0u64;
        let mut t = 0;
        while t < 2 * hz {
            t += 5_000;
            for c in credits.iter_mut() {
                while c.has(&r, 1500, 3000, t) {
                    c.spend(&r, 1500);
                    sent += 1500;
                }
            }
        }
        let want = 50_000_000 / 8 * 2;
        let err = (sent as f64 - want as f64).abs() / want as f64;
        assert!(err < 0.01, "sent {sent}, want {want}");
    }
}
