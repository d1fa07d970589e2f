//! Owned packet buffers, and the [`Packet`] trait on them.

use std::ptr::NonNull;

use dpdk_sys as ffi;

use crate::packet::{Burst, Packet};

/// An owned packet buffer. Dropping it returns it to its pool.
#[repr(transparent)]
pub struct Mbuf(pub(super) NonNull<ffi::rte_mbuf>);

// SAFETY: an mbuf is owned by exactly one thread at a time; freeing from any
// lcore is allowed.
unsafe impl Send for Mbuf {}

impl Mbuf {
    /// Takes ownership of a raw mbuf.
    ///
    /// # Safety
    /// `p` is a valid mbuf that nobody else owns.
    pub unsafe fn from_raw(p: NonNull<ffi::rte_mbuf>) -> Mbuf {
        Mbuf(p)
    }

    /// Gives up ownership without freeing.
    pub fn into_raw(self) -> NonNull<ffi::rte_mbuf> {
        let p = self.0;
        std::mem::forget(self);
        p
    }

    #[inline(always)]
    fn raw(&self) -> &ffi::rte_mbuf {
        // SAFETY: we own a valid mbuf.
        unsafe { self.0.as_ref() }
    }

    #[inline(always)]
    fn raw_mut(&mut self) -> &mut ffi::rte_mbuf {
        // SAFETY: we own a valid mbuf.
        unsafe { self.0.as_mut() }
    }

    #[inline(always)]
    fn data_ptr(&self) -> *mut u8 {
        let m = self.raw();
        // SAFETY: data_off is within the buffer.
        unsafe { m.buf_addr.cast::<u8>().add(m.data_off as usize) }
    }

    /// DPDK port id the mbuf was received on.
    pub fn port(&self) -> u16 {
        self.raw().port
    }

    /// Bytes before the packet data in the first segment.
    pub fn headroom(&self) -> usize {
        self.raw().data_off as usize
    }

    /// Bytes after the packet data in the first segment.
    pub fn tailroom(&self) -> usize {
        let m = self.raw();
        m.buf_len as usize - m.data_off as usize - m.data_len as usize
    }

    /// Number of segments.
    pub fn segments(&self) -> u16 {
        self.raw().nb_segs
    }

    /// Appends `len` bytes to a single-segment packet; returns them.
    pub fn append(&mut self, len: usize) -> Option<&mut [u8]> {
        if self.segments() != 1 || len > self.tailroom() {
            return None;
        }
        let old = self.raw().data_len as usize;
        let m = self.raw_mut();
        m.data_len += len as u16;
        m.pkt_len += len as u32;
        Some(&mut self.data_mut()[old..])
    }
}

impl Packet for Mbuf {
    #[inline(always)]
    fn data(&self) -> &[u8] {
        // SAFETY: data_len bytes from data_ptr are the first segment's data.
        unsafe { std::slice::from_raw_parts(self.data_ptr(), self.raw().data_len as usize) }
    }

    #[inline(always)]
    fn data_mut(&mut self) -> &mut [u8] {
        // SAFETY: as above, and we own the mbuf exclusively.
        unsafe { std::slice::from_raw_parts_mut(self.data_ptr(), self.raw().data_len as usize) }
    }

    #[inline(always)]
    fn wire_len(&self) -> usize {
        self.raw().pkt_len as usize
    }

    fn prepend(&mut self, n: usize) -> bool {
        if n > self.raw().data_off as usize {
            return false;
        }
        let m = self.raw_mut();
        m.data_off -= n as u16;
        m.data_len += n as u16;
        m.pkt_len += n as u32;
        true
    }

    fn adj(&mut self, n: usize) -> bool {
        if n > self.raw().data_len as usize {
            return false;
        }
        let m = self.raw_mut();
        m.data_off += n as u16;
        m.data_len -= n as u16;
        m.pkt_len -= n as u32;
        true
    }

    fn truncate(&mut self, len: usize) -> bool {
        if self.segments() != 1 || len > self.raw().data_len as usize {
            return false;
        }
        let m = self.raw_mut();
        m.data_len = len as u16;
        m.pkt_len = len as u32;
        true
    }

    #[inline(always)]
    fn extend(&mut self, n: usize) -> bool {
        self.append(n).is_some()
    }

    #[inline(always)]
    fn ipv4_checksum_ok(&self) -> Option<bool> {
        // RTE_MBUF_F_RX_IP_CKSUM_{BAD = 1 << 4, GOOD = 1 << 7}; neither or
        // both: not checked.
        match self.raw().ol_flags & (1 << 4 | 1 << 7) {
            x if x == 1 << 7 => Some(true),
            x if x == 1 << 4 => Some(false),
            _ => None,
        }
    }

    #[inline(always)]
    fn free_all(pkts: &mut Burst<Self>) -> usize {
        let n = pkts.len();
        if n > 0 {
            // SAFETY: the first n slots are owned mbufs; DPDK frees them and
            // the burst forgets them.
            unsafe {
                ffi::rte_pktmbuf_free_bulk(pkts.as_mut_ptr().cast::<*mut ffi::rte_mbuf>(), n as u32);
                pkts.forget_front(n);
            }
        }
        n
    }

    #[inline(always)]
    fn prefetch(&self) {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: prefetch never faults.
        unsafe {
            core::arch::x86_64::_mm_prefetch::<{ core::arch::x86_64::_MM_HINT_T0 }>(self.data_ptr() as *const i8)
        };
    }
}

impl Drop for Mbuf {
    #[inline(always)]
    fn drop(&mut self) {
        // SAFETY: we own the mbuf; it goes back to its pool.
        unsafe { ffi::shim_rte_pktmbuf_free(self.0.as_ptr()) };
    }
}
