//! Pools of packet buffers.

use std::ptr::NonNull;

use dpdk_sys as ffi;

use super::*;
use crate::packet::Burst;

/// A pool of packet buffers (`rte_pktmbuf_pool_create`), freed on drop.
///
/// Every mbuf taken from it must be back before it drops; the engine
/// checks this at shutdown with [`Mempool::available`].
pub struct Mempool {
    ptr: NonNull<ffi::rte_mempool>,
    size: u32,
    name: String,
}

// SAFETY: the mempool's ring ops are multi-producer/multi-consumer.
unsafe impl Send for Mempool {}
unsafe impl Sync for Mempool {}

impl Mempool {
    /// Creates a pktmbuf pool of `n` mbufs with a per-lcore cache.
    pub fn new_pktmbuf(name: &str, n: u32, cache: u32, data_room: u16, socket: i32) -> Result<Mempool> {
        let c = cstring(name)?;
        // SAFETY: valid name; EAL initialised (else DPDK returns NULL/E_RTE_NO_CONFIG).
        let p = unsafe { ffi::rte_pktmbuf_pool_create(c.as_ptr(), n, cache, 0, data_room, socket) };
        let ptr = NonNull::new(p).ok_or_else(|| rte_errno("rte_pktmbuf_pool_create"))?;
        Ok(Mempool { ptr, size: n, name: name.to_owned() })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Number of mbufs the pool was created with.
    pub fn size(&self) -> u32 {
        self.size
    }

    /// Mbufs currently in the pool, including per-lcore caches.
    pub fn available(&self) -> u32 {
        // SAFETY: valid pool.
        unsafe { ffi::rte_mempool_avail_count(self.ptr.as_ptr()) }
    }

    /// Takes one mbuf (reset, empty), or `None` when the pool is exhausted.
    pub fn alloc(&self) -> Option<Mbuf> {
        // SAFETY: valid pool.
        NonNull::new(unsafe { ffi::shim_rte_pktmbuf_alloc(self.ptr.as_ptr()) }).map(Mbuf)
    }

    /// Fills `burst` to `n` mbufs all at once, or takes none.
    pub fn alloc_bulk(&self, burst: &mut Burst<Mbuf>, n: usize) -> Result<()> {
        let n = n.min(burst.spare());
        // SAFETY: Mbuf is a transparent NonNull<rte_mbuf>; the spare slots
        // start at as_mut_ptr() + len and hold at least n entries.
        let ret = unsafe {
            let at = burst.as_mut_ptr().add(burst.len()).cast::<*mut ffi::rte_mbuf>();
            ffi::shim_rte_pktmbuf_alloc_bulk(self.ptr.as_ptr(), at, n as u32)
        };
        check("rte_pktmbuf_alloc_bulk", ret)?;
        // SAFETY: DPDK wrote n valid mbufs.
        unsafe { burst.extend_written(n) };
        Ok(())
    }

    pub(super) fn as_ptr(&self) -> *mut ffi::rte_mempool {
        self.ptr.as_ptr()
    }
}

impl Drop for Mempool {
    fn drop(&mut self) {
        // SAFETY: valid pool; no port references it any more (field order).
        unsafe { ffi::rte_mempool_free(self.ptr.as_ptr()) };
    }
}
