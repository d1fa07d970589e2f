//! DPDK's own scheduler, LPM and hash table, kept only to measure ours
//! against them (`patronus-perf`). Behind the `baselines` feature, which
//! the appliance build leaves off.

use std::ptr::NonNull;

use dpdk_sys as ffi;

use super::*;
use crate::packet::Burst;

/// DPDK's hierarchical scheduler (`rte_sched`), set up as one pipe with
/// two strict classes and four WRR queues (8:4:2:1), kept to measure our
/// own [`crate::qos::Scheduler`] against it.
pub struct DpdkSched(NonNull<ffi::rte_sched_port>);

impl DpdkSched {
    /// `rate_bytes` per second; `qsize` packets per queue (a power of two).
    pub fn new(rate_bytes: u64, qsize: u16) -> Result<DpdkSched> {
        // SAFETY: EAL initialised; the shim builds every parameter block.
        NonNull::new(unsafe { ffi::shim_sched_create(ffi::rte_socket_id() as i32, rate_bytes, qsize) })
            .map(DpdkSched)
            .ok_or_else(|| rte_errno("rte_sched_port_config"))
    }

    /// Marks an mbuf for traffic class `tc` (0-12) and queue (0-3 in the best-effort class).
    #[inline(always)]
    pub fn classify(&self, m: &mut Mbuf, tc: u32, queue: u32) {
        // SAFETY: valid port and mbuf.
        unsafe { ffi::shim_sched_write(self.0.as_ptr(), m.0.as_ptr(), tc, queue) };
    }

    /// Enqueues the burst; the scheduler owns (or dropped and freed) them all. Returns how many it kept.
    #[inline(always)]
    pub fn enqueue(&mut self, burst: &mut Burst<Mbuf>) -> usize {
        let n = burst.len();
        // SAFETY: the burst's first n slots are mbufs we own; rte_sched takes all of them.
        unsafe {
            let kept = ffi::shim_sched_enqueue(self.0.as_ptr(), burst.as_mut_ptr().cast(), n as u32) as usize;
            burst.forget_front(n);
            kept
        }
    }

    /// Dequeues up to the burst's spare room into it.
    #[inline(always)]
    pub fn dequeue(&mut self, burst: &mut Burst<Mbuf>) -> usize {
        let (len, room) = (burst.len(), burst.spare());
        // SAFETY: room free slots after the held ones; the mbufs returned are ours.
        unsafe {
            let n = ffi::shim_sched_dequeue(self.0.as_ptr(), burst.as_mut_ptr().add(len).cast(), room as u32).max(0) as usize;
            burst.extend_written(n);
            n
        }
    }
}

impl Drop for DpdkSched {
    fn drop(&mut self) {
        // SAFETY: created by rte_sched_port_config, freed once (queued mbufs are freed by it).
        unsafe { ffi::shim_sched_free(self.0.as_ptr()) }
    }
}

/// DPDK's IPv4 LPM (`rte_lpm`, DIR-24-8), kept to measure our own
/// [`crate::router::lpm::Lpm`] against it.
pub struct DpdkLpm(NonNull<ffi::rte_lpm>);

impl DpdkLpm {
    pub fn new(name: &str, max_rules: u32, tbl8s: u32) -> Result<DpdkLpm> {
        let c = cstring(name)?;
        let conf = ffi::rte_lpm_config { max_rules, number_tbl8s: tbl8s, flags: 0 };
        // SAFETY: valid name and config; EAL initialised.
        NonNull::new(unsafe { ffi::rte_lpm_create(c.as_ptr(), -1, &conf) }).map(DpdkLpm).ok_or_else(|| rte_errno("rte_lpm_create"))
    }

    pub fn add(&mut self, prefix: u32, depth: u8, next_hop: u32) -> Result<()> {
        // SAFETY: valid table.
        check("rte_lpm_add", unsafe { ffi::rte_lpm_add(self.0.as_ptr(), prefix, depth, next_hop) }).map(drop)
    }

    #[inline(always)]
    pub fn lookup(&self, ip: u32) -> Option<u32> {
        let mut nh = 0;
        // SAFETY: valid table and out-pointer.
        (unsafe { ffi::shim_rte_lpm_lookup(self.0.as_ptr(), ip, &mut nh) } == 0).then_some(nh)
    }

    /// Looks up `ips`; each result is the next hop, or `u32::MAX` for no route.
    #[inline(always)]
    pub fn lookup_bulk(&self, ips: &[u32], out: &mut [u32]) {
        let n = ips.len().min(out.len());
        // SAFETY: valid table; both arrays hold n entries.
        unsafe { ffi::shim_rte_lpm_lookup_bulk(self.0.as_ptr(), ips.as_ptr(), out.as_mut_ptr(), n as u32) };
        for v in &mut out[..n] {
            // RTE_LPM_LOOKUP_SUCCESS is bit 24 of each result.
            *v = if *v & 0x0100_0000 != 0 { *v & 0x00ff_ffff } else { u32::MAX };
        }
    }
}

impl Drop for DpdkLpm {
    fn drop(&mut self) {
        // SAFETY: valid table, freed once.
        unsafe { ffi::rte_lpm_free(self.0.as_ptr()) };
    }
}

/// DPDK's IPv6 LPM (`rte_lpm6`), kept for the same comparison.
pub struct DpdkLpm6(NonNull<ffi::rte_lpm6>);

impl DpdkLpm6 {
    pub fn new(name: &str, max_rules: u32, tbl8s: u32) -> Result<DpdkLpm6> {
        let c = cstring(name)?;
        let conf = ffi::rte_lpm6_config { max_rules, number_tbl8s: tbl8s, flags: 0 };
        // SAFETY: valid name and config; EAL initialised.
        NonNull::new(unsafe { ffi::rte_lpm6_create(c.as_ptr(), -1, &conf) }).map(DpdkLpm6).ok_or_else(|| rte_errno("rte_lpm6_create"))
    }

    pub fn add(&mut self, prefix: &[u8; 16], depth: u8, next_hop: u32) -> Result<()> {
        // SAFETY: valid table and a 16-byte address.
        check("rte_lpm6_add", unsafe { ffi::rte_lpm6_add(self.0.as_ptr(), prefix.as_ptr(), depth, next_hop) }).map(drop)
    }

    #[inline(always)]
    pub fn lookup(&self, ip: &[u8; 16]) -> Option<u32> {
        let mut nh = 0;
        // SAFETY: valid table, address and out-pointer.
        (unsafe { ffi::rte_lpm6_lookup(self.0.as_ptr(), ip.as_ptr(), &mut nh) } == 0).then_some(nh)
    }

    /// Looks up `ips`; each result is the next hop, or -1 for no route.
    pub fn lookup_bulk(&self, ips: &[[u8; 16]], out: &mut [i32]) {
        let n = ips.len().min(out.len());
        // SAFETY: valid table; both arrays hold n entries.
        unsafe { ffi::rte_lpm6_lookup_bulk_func(self.0.as_ptr(), ips.as_ptr().cast_mut(), out.as_mut_ptr(), n as u32) };
    }
}

impl Drop for DpdkLpm6 {
    fn drop(&mut self) {
        // SAFETY: valid table, freed once.
        unsafe { ffi::rte_lpm6_free(self.0.as_ptr()) };
    }
}

/// DPDK's `rte_hash` (cuckoo hash), for benchmarks against our flow table.
pub struct DpdkHash(NonNull<ffi::rte_hash>);

impl DpdkHash {
    pub fn new(name: &str, entries: u32, key_len: u32) -> Result<DpdkHash> {
        let c = cstring(name)?;
        let p = ffi::rte_hash_parameters { name: c.as_ptr(), entries, key_len, socket_id: -1, ..Default::default() };
        // SAFETY: valid parameters (default hash function); EAL initialised.
        NonNull::new(unsafe { ffi::rte_hash_create(&p) }).map(DpdkHash).ok_or_else(|| rte_errno("rte_hash_create"))
    }

    /// Adds or replaces `key` with `data`.
    #[inline(always)]
    pub fn add(&mut self, key: &[u8], data: usize) -> bool {
        // SAFETY: valid table; `key` holds key_len bytes (the caller's contract).
        unsafe { ffi::rte_hash_add_key_data(self.0.as_ptr(), key.as_ptr().cast(), data as *mut _) == 0 }
    }

    #[inline(always)]
    pub fn lookup(&self, key: &[u8]) -> Option<usize> {
        let mut d: *mut std::ffi::c_void = std::ptr::null_mut();
        // SAFETY: valid table and out-pointer; `key` holds key_len bytes.
        (unsafe { ffi::rte_hash_lookup_data(self.0.as_ptr(), key.as_ptr().cast(), &mut d) } >= 0).then_some(d as usize)
    }

    /// Looks up to 64 keys at once; `out[i]` is the data or `usize::MAX`.
    #[inline(always)]
    pub fn lookup_bulk(&self, keys: &[*const std::ffi::c_void], out: &mut [usize]) {
        let n = keys.len().min(out.len()).min(64);
        let mut hits = 0u64;
        let mut data = [std::ptr::null_mut::<std::ffi::c_void>(); 64];
        // SAFETY: valid table; n keys and n data slots.
        unsafe { ffi::rte_hash_lookup_bulk_data(self.0.as_ptr(), keys.as_ptr() as *mut _, n as u32, &mut hits, data.as_mut_ptr()) };
        for i in 0..n {
            out[i] = if hits >> i & 1 != 0 { data[i] as usize } else { usize::MAX };
        }
    }
}

impl Drop for DpdkHash {
    fn drop(&mut self) {
        // SAFETY: valid table, freed once.
        unsafe { ffi::rte_hash_free(self.0.as_ptr()) };
    }
}

// SAFETY: the table is used from one thread at a time.
unsafe impl Send for DpdkHash {}
