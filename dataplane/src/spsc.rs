//! A bounded single-producer single-consumer ring whose ends batch: the
//! producer writes slots and makes them visible with one store per burst
//! ([`Producer::publish`]); the consumer frees slots with one store per
//! burst ([`Consumer::release`]). Between two workers that is two shared
//! cache-line writes per burst instead of two per packet (the handoff
//! rings, [`crate::egress::HandoffRing`]).
//!
//! Each end keeps a copy of the other end's index and reads the shared one
//! only when its copy says the ring is full (or empty). Items left in the
//! ring when both ends are gone are dropped with it.

use std::cell::UnsafeCell;
use std::mem::MaybeUninit;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// An index on a cache line of its own.
#[repr(align(64))]
struct Index(AtomicUsize);

struct Ring<T> {
    slots: Box<[UnsafeCell<MaybeUninit<T>>]>,
    mask: usize,
    /// Next slot the consumer reads (published by [`Consumer::release`]).
    head: Index,
    /// Next slot the producer writes (published by [`Producer::publish`]).
    tail: Index,
}

// SAFETY: a slot is written only by the producer while it is outside
// [head, tail), and read only by the consumer while inside; the Release
// stores and Acquire loads of head and tail order those accesses.
unsafe impl<T: Send> Send for Ring<T> {}
unsafe impl<T: Send> Sync for Ring<T> {}

impl<T> Drop for Ring<T> {
    fn drop(&mut self) {
        let (head, tail) = (*self.head.0.get_mut(), *self.tail.0.get_mut());
        for i in head..tail {
            // SAFETY: slots in [head, tail) hold items nobody took.
            unsafe { self.slots[i & self.mask].get_mut().assume_init_drop() };
        }
    }
}

/// The writing end.
pub struct Producer<T> {
    ring: Arc<Ring<T>>,
    tail: usize,
    published: usize,
    head_seen: usize,
}

/// The reading end.
pub struct Consumer<T> {
    ring: Arc<Ring<T>>,
    head: usize,
    released: usize,
    tail_seen: usize,
}

/// A ring of at least `capacity` items (rounded up to a power of two).
pub fn ring<T>(capacity: usize) -> (Producer<T>, Consumer<T>) {
    let n = capacity.max(2).next_power_of_two();
    let ring = Arc::new(Ring {
        slots: (0..n).map(|_| UnsafeCell::new(MaybeUninit::uninit())).collect(),
        mask: n - 1,
        head: Index(AtomicUsize::new(0)),
        tail: Index(AtomicUsize::new(0)),
    });
    (Producer { ring: ring.clone(), tail: 0, published: 0, head_seen: 0 }, Consumer { ring, head: 0, released: 0, tail_seen: 0 })
}

impl<T> Producer<T> {
    /// Writes `item` (visible to the consumer after [`Producer::publish`]);
    /// gives it back when the ring is full.
    #[inline]
    pub fn push(&mut self, item: T) -> Result<(), T> {
        if self.tail - self.head_seen > self.ring.mask {
            self.head_seen = self.ring.head.0.load(Ordering::Acquire);
            if self.tail - self.head_seen > self.ring.mask {
                return Err(item);
            }
        }
        // SAFETY: the slot is outside [head, tail): the consumer is not reading it.
        unsafe { (*self.ring.slots[self.tail & self.ring.mask].get()).write(item) };
        self.tail += 1;
        Ok(())
    }

    /// Makes what was pushed visible (one store, when there is anything new).
    #[inline]
    pub fn publish(&mut self) {
        if self.tail != self.published {
            self.ring.tail.0.store(self.tail, Ordering::Release);
            self.published = self.tail;
        }
    }
}

impl<T> Drop for Producer<T> {
    fn drop(&mut self) {
        self.publish();
    }
}

impl<T> Consumer<T> {
    /// The oldest published item, if any (its slot is reused after
    /// [`Consumer::release`]).
    #[inline]
    pub fn pop(&mut self) -> Option<T> {
        if self.head == self.tail_seen {
            self.tail_seen = self.ring.tail.0.load(Ordering::Acquire);
            if self.head == self.tail_seen {
                return None;
            }
        }
        // SAFETY: the slot is inside [head, tail): written and published.
        let item = unsafe { (*self.ring.slots[self.head & self.ring.mask].get()).assume_init_read() };
        self.head += 1;
        Some(item)
    }

    /// Gives the slots popped so far back to the producer (one store).
    #[inline]
    pub fn release(&mut self) {
        if self.head != self.released {
            self.ring.head.0.store(self.head, Ordering::Release);
            self.released = self.head;
        }
    }
}

impl<T> Drop for Consumer<T> {
    fn drop(&mut self) {
        self.release();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn items_arrive_in_order_once_published_and_a_full_ring_refuses() {
        let (mut p, mut c) = ring::<u32>(4);
        for i in 0..4 {
            p.push(i).unwrap();
        }
        assert_eq!(p.push(9), Err(9), "full");
        assert_eq!(c.pop(), None, "nothing published yet");
        p.publish();
        assert_eq!((c.pop(), c.pop()), (Some(0), Some(1)));
        assert_eq!(p.push(9), Err(9), "popped but not released");
        c.release();
        p.push(4).unwrap();
        p.push(5).unwrap();
        p.publish();
        assert_eq!((0..5).map(|_| c.pop()).collect::<Vec<_>>(), vec![Some(2), Some(3), Some(4), Some(5), None]);
    }

    #[test]
    fn what_is_left_is_dropped_with_the_ring() {
        let item = Arc::new(());
        let (mut p, c) = ring(8);
        for _ in 0..5 {
            p.push(item.clone()).unwrap();
        }
        drop(p); // publishes
        drop(c);
        assert_eq!(Arc::strong_count(&item), 1);
    }

    #[test]
    fn two_threads_pass_a_million_items_in_order() {
        let (mut p, mut c) = ring::<u64>(64);
        let n = 1_000_000u64;
        let t = std::thread::spawn(move || {
            let mut i = 0;
            while i < n {
                while i < n && p.push(i).is_ok() {
                    i += 1;
                }
                p.publish();
                std::hint::spin_loop();
            }
        });
        let mut next = 0;
        while next < n {
            while let Some(v) = c.pop() {
                assert_eq!(v, next);
                next += 1;
            }
            c.release();
        }
        t.join().unwrap();
    }
}
