//! The packet trait the pipeline is written against, the fixed-size burst
//! array that carries packets between RX, stages and TX, and a heap-backed
//! packet so that stages and the worker loop run without EAL.

use std::mem::MaybeUninit;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::sync::Arc;

use crate::MAX_BURST;

/// A packet buffer: contiguous bytes starting at the outermost header.
///
/// Implemented by [`crate::dpdk::Mbuf`] in production and [`HeapPacket`] in
/// tests and benchmarks. Dropping a packet returns it to its pool.
pub trait Packet {
    /// The packet's bytes (for a chained mbuf, the first segment).
    fn data(&self) -> &[u8];
    /// The packet's bytes, writable.
    fn data_mut(&mut self) -> &mut [u8];
    /// Total length on the wire, over all segments.
    fn wire_len(&self) -> usize {
        self.data().len()
    }
    /// Hints the CPU to fetch the first cache line of packet data.
    #[inline(always)]
    fn prefetch(&self) {}
    /// Grows the packet by `n` bytes at the front (into headroom); false,
    /// and no change, when there is not enough headroom.
    fn prepend(&mut self, n: usize) -> bool;
    /// Removes `n` bytes from the front; false, and no change, if shorter.
    fn adj(&mut self, n: usize) -> bool;
    /// Cuts the packet to its first `len` bytes; false, and no change, if
    /// it is shorter or cannot be cut (a chained mbuf).
    fn truncate(&mut self, len: usize) -> bool;
    /// Grows the packet by `n` bytes at the end (into tailroom, one
    /// segment only); false, and no change, when there is no room. The new
    /// bytes are not cleared.
    fn extend(&mut self, n: usize) -> bool;
    /// The NIC's verdict on the IPv4 header checksum, when it checked it.
    #[inline(always)]
    fn ipv4_checksum_ok(&self) -> Option<bool> {
        None
    }
    /// Frees every packet in `pkts` (in one call where the pool allows);
    /// returns how many.
    #[inline(always)]
    fn free_all(pkts: &mut Burst<Self>) -> usize
    where
        Self: Sized,
    {
        pkts.clear()
    }
}

/// A fixed-capacity array of owned packets: an RX burst or a TX buffer.
///
/// It lives on the worker's stack or in its own state; nothing is allocated
/// per burst. Dropping it drops (frees) the packets it still holds.
pub struct Burst<P> {
    len: usize,
    pkts: [MaybeUninit<P>; MAX_BURST],
}

impl<P> Default for Burst<P> {
    fn default() -> Self {
        Self::new()
    }
}

impl<P> Burst<P> {
    pub const CAPACITY: usize = MAX_BURST;

    pub fn new() -> Self {
        Burst { len: 0, pkts: [const { MaybeUninit::uninit() }; MAX_BURST] }
    }

    #[inline(always)]
    pub fn len(&self) -> usize {
        self.len
    }

    #[inline(always)]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Appends a packet; hands it back if the burst is full.
    #[inline(always)]
    pub fn push(&mut self, p: P) -> Result<(), P> {
        if self.len == MAX_BURST {
            return Err(p);
        }
        self.pkts[self.len].write(p);
        self.len += 1;
        Ok(())
    }

    /// The packets held, in order.
    #[inline(always)]
    pub fn as_slice(&self) -> &[P] {
        // SAFETY: the first `len` slots are initialised.
        unsafe { std::slice::from_raw_parts(self.pkts.as_ptr().cast(), self.len) }
    }

    /// The packets held, in order, writable.
    #[inline(always)]
    pub fn as_mut_slice(&mut self) -> &mut [P] {
        // SAFETY: the first `len` slots are initialised.
        unsafe { std::slice::from_raw_parts_mut(self.pkts.as_mut_ptr().cast(), self.len) }
    }

    /// Raw pointer to the first slot, for device bursts.
    #[inline(always)]
    pub fn as_mut_ptr(&mut self) -> *mut P {
        self.pkts.as_mut_ptr().cast()
    }

    /// Number of free slots after the held packets.
    #[inline(always)]
    pub fn spare(&self) -> usize {
        MAX_BURST - self.len
    }

    /// Marks `n` more slots after the held packets as initialised.
    ///
    /// # Safety
    /// The caller has written `n` valid packets right after the held ones.
    #[inline(always)]
    pub unsafe fn extend_written(&mut self, n: usize) {
        debug_assert!(self.len + n <= MAX_BURST);
        self.len += n;
    }

    /// Forgets the first `n` packets, shifting the rest to the front.
    ///
    /// # Safety
    /// Ownership of the first `n` packets has passed elsewhere (a device).
    #[inline(always)]
    pub unsafe fn forget_front(&mut self, n: usize) {
        debug_assert!(n <= self.len);
        let rest = self.len - n;
        if rest > 0 {
            let p = self.pkts.as_mut_ptr();
            std::ptr::copy(p.add(n), p, rest);
        }
        self.len = rest;
    }

    /// Takes every packet out, front to back; the burst is empty afterwards.
    #[inline(always)]
    pub fn drain(&mut self) -> Drain<'_, P> {
        let end = self.len;
        self.len = 0;
        Drain { burst: self, next: 0, end }
    }

    /// Drops every packet held, one at a time, returning how many.
    pub fn clear(&mut self) -> usize {
        let n = self.len;
        self.drain();
        n
    }
}

impl<P: Packet> Burst<P> {
    /// Frees every packet held, in bulk where the packet type can; returns
    /// how many.
    #[inline(always)]
    pub fn free(&mut self) -> usize {
        P::free_all(self)
    }
}

impl<P> Drop for Burst<P> {
    fn drop(&mut self) {
        self.clear();
    }
}

/// Owning iterator over a burst's packets that can look ahead (for prefetch).
pub struct Drain<'a, P> {
    burst: &'a mut Burst<P>,
    next: usize,
    end: usize,
}

impl<P> Drain<'_, P> {
    /// The packet `k` positions after the one `next()` returns next.
    #[inline(always)]
    pub fn peek(&self, k: usize) -> Option<&P> {
        let i = self.next + k;
        // SAFETY: slots next..end are initialised and not yet taken.
        (i < self.end).then(|| unsafe { self.burst.pkts[i].assume_init_ref() })
    }
}

impl<P> Iterator for Drain<'_, P> {
    type Item = P;
    #[inline(always)]
    fn next(&mut self) -> Option<P> {
        if self.next == self.end {
            return None;
        }
        // SAFETY: slot is initialised and read exactly once.
        let p = unsafe { self.burst.pkts[self.next].assume_init_read() };
        self.next += 1;
        Some(p)
    }
}

impl<P> Drop for Drain<'_, P> {
    fn drop(&mut self) {
        for _ in self.by_ref() {}
    }
}

/// Counts live [`HeapPacket`]s, like a mempool's in-use count, so tests can
/// prove that nothing leaks.
#[derive(Clone, Default)]
pub struct HeapPool {
    live: Arc<AtomicUsize>,
}

impl HeapPool {
    pub fn new() -> Self {
        Self::default()
    }

    /// Allocates a packet holding a copy of `bytes`, with
    /// [`HEAP_HEADROOM`] bytes of headroom like an mbuf.
    pub fn packet(&self, bytes: &[u8]) -> HeapPacket {
        self.live.fetch_add(1, Relaxed);
        let mut buf = vec![0u8; HEAP_HEADROOM];
        buf.extend_from_slice(bytes);
        HeapPacket { buf, head: HEAP_HEADROOM, pool: self.live.clone() }
    }

    /// Packets allocated and not yet dropped.
    pub fn in_use(&self) -> usize {
        self.live.load(Relaxed)
    }
}

/// Headroom of a [`HeapPacket`], as DPDK's default `RTE_PKTMBUF_HEADROOM`.
pub const HEAP_HEADROOM: usize = 128;

/// Most bytes a [`HeapPacket`] holds after its headroom (DPDK's default
/// mbuf data room is 2048 bytes, headroom included).
pub const HEAP_ROOM: usize = 2048 - HEAP_HEADROOM;

/// A packet on the heap, for tests and benchmarks that run without EAL.
pub struct HeapPacket {
    buf: Vec<u8>,
    /// Start of the data in `buf`.
    head: usize,
    pool: Arc<AtomicUsize>,
}

impl Packet for HeapPacket {
    #[inline]
    fn data(&self) -> &[u8] {
        &self.buf[self.head..]
    }
    #[inline]
    fn data_mut(&mut self) -> &mut [u8] {
        &mut self.buf[self.head..]
    }
    fn prepend(&mut self, n: usize) -> bool {
        if n > self.head {
            return false;
        }
        self.head -= n;
        true
    }
    fn adj(&mut self, n: usize) -> bool {
        if n > self.buf.len() - self.head {
            return false;
        }
        self.head += n;
        true
    }
    fn truncate(&mut self, len: usize) -> bool {
        if len > self.buf.len() - self.head {
            return false;
        }
        self.buf.truncate(self.head + len);
        true
    }
    fn extend(&mut self, n: usize) -> bool {
        // Like an mbuf's 2 KiB data room: room for a full frame and its tunnel trailer.
        if self.buf.len() - self.head + n > HEAP_ROOM {
            return false;
        }
        self.buf.resize(self.buf.len() + n, 0);
        true
    }
}

impl Drop for HeapPacket {
    fn drop(&mut self) {
        self.pool.fetch_sub(1, Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn burst_push_drain_and_drop_free_everything() {
        let pool = HeapPool::new();
        let mut b = Burst::new();
        for i in 0..MAX_BURST {
            assert!(b.push(pool.packet(&[i as u8])).is_ok());
        }
        let extra = b.push(pool.packet(&[0xff])).unwrap_err();
        assert_eq!(extra.data(), &[0xff]);
        drop(extra);
        assert_eq!(b.len(), MAX_BURST);

        let mut d = b.drain();
        assert_eq!(d.peek(2).unwrap().data(), &[2]);
        let first = d.next().unwrap();
        assert_eq!(first.data(), &[0]);
        assert_eq!(d.peek(0).unwrap().data(), &[1]);
        drop(d); // drops the 62 not taken
        assert!(b.is_empty());
        assert_eq!(pool.in_use(), 1);
        drop(first);
        assert_eq!(pool.in_use(), 0);
    }

    #[test]
    fn heap_packets_have_headroom() {
        let pool = HeapPool::new();
        let mut p = pool.packet(&[1, 2, 3]);
        assert!(p.prepend(2));
        assert_eq!(p.data(), &[0, 0, 1, 2, 3]);
        assert!(!p.prepend(HEAP_HEADROOM));
        assert!(p.adj(3));
        assert_eq!(p.data(), &[2, 3]);
        assert!(!p.adj(3));
        assert!(p.truncate(1) && p.data() == [2]);
        assert!(!p.truncate(2));
    }

    #[test]
    fn forget_front_keeps_the_tail_in_order() {
        let pool = HeapPool::new();
        let mut b = Burst::new();
        for i in 0..5u8 {
            b.push(pool.packet(&[i])).ok().unwrap();
        }
        // Pretend a device took the first two.
        let taken: Vec<HeapPacket> = (0..2).map(|i| unsafe { b.as_mut_ptr().add(i).read() }).collect();
        unsafe { b.forget_front(2) };
        let rest: Vec<u8> = b.as_slice().iter().map(|p| p.data()[0]).collect();
        assert_eq!(rest, vec![2, 3, 4]);
        drop(taken);
        assert_eq!(b.clear(), 3);
        assert_eq!(pool.in_use(), 0);
    }
}
