//! The receive replay window, with the semantics of the Linux kernel's
//! `counter.c` (window of 8192 - 64 counters, RFC 6479 style) but lock-free:
//! several workers may accept packets of one session at once.
//!
//! Each 64-bit slot holds a 32-bit block number and a bitmap of that
//! block's 32 counters, updated by compare-and-swap. A slot only ever moves
//! to a newer block, so a counter, once accepted, is refused forever after:
//! its slot either still holds its block (bit set) or a newer one (too old).
//! Within the window a slot never holds a newer block than a counter's own,
//! so acceptance there is exactly "not seen before", as in the kernel.

use std::sync::atomic::{AtomicU64, Ordering::*};

use super::REJECT_AFTER_MESSAGES;

const SLOTS: usize = 256;
const BITS: u64 = 32;
/// Counters behind the highest one that are still accepted (the kernel's
/// COUNTER_WINDOW_SIZE).
pub const WINDOW: u64 = 8192 - 64;

/// A replay window (2 KiB, shared by the workers that receive a session).
pub struct ReplayWindow {
    /// Highest accepted counter + 1 (0: none yet).
    top: AtomicU64,
    slots: Box<[AtomicU64; SLOTS]>,
}

impl Default for ReplayWindow {
    fn default() -> Self {
        ReplayWindow { top: AtomicU64::new(0), slots: Box::new([const { AtomicU64::new(0) }; SLOTS]) }
    }
}

impl ReplayWindow {
    /// Whether `counter` could still be accepted (a cheap check before
    /// decrypting; [`ReplayWindow::accept`] decides).
    #[inline]
    pub fn may_accept(&self, counter: u64) -> bool {
        let top = self.top.load(Relaxed);
        counter < REJECT_AFTER_MESSAGES && top <= REJECT_AFTER_MESSAGES && counter + 1 + WINDOW >= top
    }

    /// Records `counter` of an authenticated packet: true the first time,
    /// false for a replay or a counter too old or past the limit.
    #[inline]
    pub fn accept(&self, counter: u64) -> bool {
        if !self.may_accept(counter) {
            return false;
        }
        // Shifted by one like the kernel, so that counter 0 is bit 1 of block 0.
        let c = counter + 1;
        let block = c / BITS;
        let bit = 1u64 << (c % BITS);
        // Raised before the slot is written, so that `top` covers every
        // block a slot holds (the full block number is rebuilt from it).
        self.top.fetch_max(c, AcqRel);
        let slot = &self.slots[block as usize % SLOTS];
        let mut cur = slot.load(Acquire);
        loop {
            let (held, bits) = (cur >> 32, cur & 0xffff_ffff);
            let top_block = self.top.load(Acquire) / BITS;
            // The newest block at or below the top whose low 32 bits are `held`.
            let held_block = top_block - ((top_block as u32).wrapping_sub(held as u32) as u64);
            let next = if cur == 0 || held_block < block {
                (block as u32 as u64) << 32 | bit // the slot moves on to this block
            } else if held_block == block {
                if bits & bit != 0 {
                    return false;
                }
                cur | bit
            } else {
                return false; // the slot already holds a newer block
            };
            match slot.compare_exchange_weak(cur, next, AcqRel, Acquire) {
                Ok(_) => return true,
                Err(now) => cur = now,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The Linux kernel's counter self-test (drivers/net/wireguard/selftest/counter.c).
    #[test]
    fn kernel_counter_selftest() {
        const T_LIM: u64 = WINDOW + 1;
        const R: u64 = REJECT_AFTER_MESSAGES;
        let mut w = ReplayWindow::default();
        let mut n = 0;
        let mut t = |w: &ReplayWindow, c: u64, expect: bool| {
            n += 1;
            assert_eq!(w.accept(c), expect, "kernel self-test {n}: counter {c}");
        };
        let seq = [
            (0, true),
            (1, true),
            (1, false),
            (9, true),
            (8, true),
            (7, true),
            (7, false),
            (T_LIM, true),
            (T_LIM - 1, true),
            (T_LIM - 1, false),
            (T_LIM - 2, true),
            (2, true),
            (2, false),
            (T_LIM + 16, true),
            (3, false),
            (T_LIM + 16, false),
            (T_LIM * 4, true),
            (T_LIM * 4 - (T_LIM - 1), true),
            (10, false),
            (T_LIM * 4 - T_LIM, false),
            (T_LIM * 4 - (T_LIM + 1), false),
            (T_LIM * 4 - (T_LIM - 2), true),
            (T_LIM * 4 + 1 - T_LIM, false),
            (0, false),
            (R, false),
            (R - 1, true),
            (R, false),
            (R - 1, false),
            (R - 2, true),
            (R + 1, false),
            (R + 2, false),
            (R - 2, false),
            (R - 3, true),
            (0, false),
        ];
        for (c, e) in seq {
            t(&w, c, e);
        }

        w = ReplayWindow::default();
        for i in 1..=WINDOW {
            t(&w, i, true);
        }
        t(&w, 0, true);
        t(&w, 0, false);

        w = ReplayWindow::default();
        for i in 2..=WINDOW + 1 {
            t(&w, i, true);
        }
        t(&w, 1, true);
        t(&w, 0, false);

        w = ReplayWindow::default();
        for i in (0..=WINDOW).rev() {
            t(&w, i, true);
        }

        w = ReplayWindow::default();
        for i in (1..=WINDOW + 1).rev() {
            t(&w, i, true);
        }
        t(&w, 0, false);

        w = ReplayWindow::default();
        for i in (1..=WINDOW).rev() {
            t(&w, i, true);
        }
        t(&w, WINDOW + 1, true);
        t(&w, 0, false);

        w = ReplayWindow::default();
        for i in (1..=WINDOW).rev() {
            t(&w, i, true);
        }
        t(&w, 0, true);
        t(&w, WINDOW + 1, true);
    }

    /// Workers racing over one window: every counter is accepted exactly
    /// once, however the threads interleave.
    #[test]
    fn concurrent_accepts_are_unique() {
        let w = ReplayWindow::default();
        let accepted = AtomicU64::new(0);
        std::thread::scope(|s| {
            for _ in 0..4 {
                s.spawn(|| {
                    // Every thread offers every counter, in a jittered order within the window.
                    for base in (0..200_000u64).step_by(64) {
                        for i in (0..64).rev() {
                            if w.accept(base + i) {
                                accepted.fetch_add(1, Relaxed);
                            }
                        }
                    }
                });
            }
        });
        assert_eq!(accepted.load(Relaxed), 200_000);
    }
}
