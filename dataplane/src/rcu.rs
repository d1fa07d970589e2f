//! Immutable snapshots published by the control thread and adopted by the
//! workers without locks (read-copy-update).
//!
//! The control thread builds a new `T` and [`Publisher::publish`]es it.
//! Each worker holds a [`Reader`] and calls [`Reader::refresh`] at a burst
//! boundary: one relaxed-cost atomic load when nothing changed. A replaced
//! snapshot is freed by [`Publisher::reclaim`] only once every reader has
//! announced a newer version, so a worker never sees freed memory.

use std::sync::atomic::{AtomicPtr, AtomicU64, Ordering::*};
use std::sync::{Arc, Mutex};

#[repr(align(64))]
struct Shared<T> {
    ptr: AtomicPtr<T>,
    version: AtomicU64,
}

/// What each reader announces: the newest version it has adopted.
#[repr(align(64))]
struct Seen(AtomicU64);

/// The writing side (control thread).
pub struct Publisher<T> {
    shared: Arc<Shared<T>>,
    readers: Arc<Mutex<Vec<Arc<Seen>>>>,
    /// Replaced snapshots and the version that replaced them.
    retired: Vec<(u64, Box<T>)>,
}

/// The reading side (one per worker). Not `Clone`: each reader announces
/// its own progress; make more with [`Publisher::reader`].
pub struct Reader<T> {
    shared: Arc<Shared<T>>,
    seen: Arc<Seen>,
    local: *const T,
    version: u64,
}

// SAFETY: the snapshot is immutable and outlives every reader's use of it.
unsafe impl<T: Send + Sync> Send for Reader<T> {}
unsafe impl<T: Send + Sync> Send for Publisher<T> {}

impl<T> Publisher<T> {
    pub fn new(initial: T) -> Publisher<T> {
        let shared = Arc::new(Shared { ptr: AtomicPtr::new(Box::into_raw(Box::new(initial))), version: AtomicU64::new(1) });
        Publisher { shared, readers: Arc::default(), retired: Vec::new() }
    }

    /// A reader that starts at the current snapshot.
    pub fn reader(&self) -> Reader<T> {
        let version = self.shared.version.load(Acquire);
        let seen = Arc::new(Seen(AtomicU64::new(version)));
        self.readers.lock().unwrap_or_else(|e| e.into_inner()).push(seen.clone());
        Reader { shared: self.shared.clone(), seen, local: self.shared.ptr.load(Acquire), version }
    }

    /// The current snapshot (the publisher's own view).
    pub fn current(&self) -> &T {
        // SAFETY: only `publish` replaces it, and that needs &mut self.
        unsafe { &*self.shared.ptr.load(Acquire) }
    }

    /// Makes `next` the snapshot readers adopt; frees what no reader uses.
    pub fn publish(&mut self, next: T) {
        let old = self.shared.ptr.swap(Box::into_raw(Box::new(next)), AcqRel);
        let v = self.shared.version.fetch_add(1, AcqRel) + 1;
        // SAFETY: `old` came from Box::into_raw and is no longer published.
        self.retired.push((v, unsafe { Box::from_raw(old) }));
        self.reclaim();
    }

    /// Frees retired snapshots every reader has moved past. Returns how
    /// many are still waiting.
    pub fn reclaim(&mut self) -> usize {
        let readers = self.readers.lock().unwrap_or_else(|e| e.into_inner());
        // Readers dropped: only the list holds their Seen.
        let oldest = readers.iter().filter(|s| Arc::strong_count(s) > 1).map(|s| s.0.load(Acquire)).min().unwrap_or(u64::MAX);
        drop(readers);
        self.retired.retain(|(replaced_by, _)| *replaced_by > oldest);
        self.readers.lock().unwrap_or_else(|e| e.into_inner()).retain(|s| Arc::strong_count(s) > 1);
        self.retired.len()
    }

    /// Whether every live reader has adopted `version` or a newer one.
    pub fn adopted(&self, version: u64) -> bool {
        let readers = self.readers.lock().unwrap_or_else(|e| e.into_inner());
        readers.iter().filter(|s| Arc::strong_count(s) > 1).all(|s| s.0.load(Acquire) >= version)
    }

    /// Current version (starts at 1, one more per publish).
    pub fn version(&self) -> u64 {
        self.shared.version.load(Acquire)
    }
}

impl<T> Drop for Publisher<T> {
    fn drop(&mut self) {
        // Readers hold the Arc<Shared>; the last owner frees the snapshot.
        // Leaking it here would be safe but wasteful, so readers are
        // expected to be gone first (workers stop before the publisher).
        if Arc::strong_count(&self.shared) == 1 {
            // SAFETY: nobody else can reach the pointer.
            drop(unsafe { Box::from_raw(self.shared.ptr.load(Acquire)) });
        }
    }
}

impl<T> Reader<T> {
    /// Adopts the newest snapshot if there is one, and returns it.
    #[inline(always)]
    pub fn refresh(&mut self) -> &T {
        let v = self.shared.version.load(Acquire);
        if v != self.version {
            // The pointer is at least as new as version v.
            self.local = self.shared.ptr.load(Acquire);
            self.version = v;
            self.seen.0.store(v, Release);
        }
        // SAFETY: the publisher frees a snapshot only after every reader
        // announced a newer version, which this one has not done for `local`.
        unsafe { &*self.local }
    }

    /// The snapshot adopted at the last refresh.
    #[inline(always)]
    pub fn get(&self) -> &T {
        // SAFETY: as in refresh.
        unsafe { &*self.local }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    struct Tracked(u32, Arc<AtomicUsize>);
    impl Drop for Tracked {
        fn drop(&mut self) {
            self.1.fetch_add(1, SeqCst);
        }
    }

    #[test]
    fn readers_adopt_at_refresh_and_old_snapshots_wait_for_them() {
        let freed = Arc::new(AtomicUsize::new(0));
        let mut p = Publisher::new(Tracked(1, freed.clone()));
        let mut a = p.reader();
        let mut b = p.reader();
        assert_eq!(a.refresh().0, 1);

        p.publish(Tracked(2, freed.clone()));
        assert_eq!(a.get().0, 1, "no change until refresh");
        assert_eq!(a.refresh().0, 2);
        assert_eq!(p.reclaim(), 1, "b still on 1");
        assert_eq!(freed.load(SeqCst), 0);
        assert_eq!(b.refresh().0, 2);
        assert_eq!(p.reclaim(), 0);
        assert_eq!(freed.load(SeqCst), 1, "snapshot 1 freed once both moved on");

        // A reader that goes away does not hold snapshots forever.
        p.publish(Tracked(3, freed.clone()));
        a.refresh();
        drop(b);
        assert_eq!(p.reclaim(), 0);
        assert_eq!(freed.load(SeqCst), 2);
        assert_eq!(p.current().0, 3);
        assert_eq!(p.version(), 3);
    }

    #[test]
    fn concurrent_readers_never_see_freed_memory() {
        let freed = Arc::new(AtomicUsize::new(0));
        let mut p = Publisher::new(Tracked(0, freed.clone()));
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let handles: Vec<_> = (0..3)
            .map(|_| {
                let mut r = p.reader();
                let stop = stop.clone();
                std::thread::spawn(move || {
                    let mut last = 0;
                    while !stop.load(Relaxed) {
                        let v = r.refresh().0;
                        assert!(v >= last, "versions only move forward");
                        last = v;
                    }
                    last
                })
            })
            .collect();
        for i in 1..=2000 {
            p.publish(Tracked(i, freed.clone()));
        }
        stop.store(true, Relaxed);
        for h in handles {
            h.join().unwrap();
        }
        p.reclaim();
        assert_eq!(freed.load(SeqCst), 2000, "every replaced snapshot freed, the current one kept");
    }
}
