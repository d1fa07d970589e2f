//! The safe DPDK layer: owning types for EAL, mempools, ports and their
//! queues, and mbufs. `Drop` frees; a negative C return becomes a typed
//! [`Error`] here, once. Nothing else in the workspace calls `dpdk_sys`.

use std::ffi::{c_char, c_int, c_void, CStr, CString};
use std::fmt;
use std::marker::PhantomData;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicBool, Ordering};

use dpdk_sys as ffi;

use crate::packet::{Burst, Packet};
use crate::worker::{Clock, RxQueue, TxQueue};

/// A DPDK failure.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Error {
    /// A DPDK call failed with this errno.
    Call { op: &'static str, errno: i32 },
    /// EAL was already initialised in this process; it can be only once.
    AlreadyInitialised,
    /// A string handed to DPDK contained a NUL byte.
    NulInArgument(String),
    /// No ethdev port has this name (the device was not probed).
    NoSuchPort(String),
    /// The device cannot do what was asked.
    Unsupported(String),
}

impl Error {
    /// The errno of a failed call, if this is one.
    pub fn errno(&self) -> Option<i32> {
        match self {
            Error::Call { errno, .. } => Some(*errno),
            _ => None,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Call { op, errno } => write!(f, "{op} failed: {} (errno {errno})", strerror(*errno)),
            Error::AlreadyInitialised => f.write_str("EAL is already initialised in this process"),
            Error::NulInArgument(s) => write!(f, "argument contains a NUL byte: {s:?}"),
            Error::NoSuchPort(s) => write!(f, "no DPDK port named {s:?}"),
            Error::Unsupported(s) => f.write_str(s),
        }
    }
}

impl std::error::Error for Error {}

pub type Result<T> = std::result::Result<T, Error>;

/// DPDK's text for an errno (covers DPDK's own codes as well as libc's).
pub fn strerror(errno: i32) -> String {
    // SAFETY: rte_strerror returns a pointer to a NUL-terminated string.
    unsafe { CStr::from_ptr(ffi::rte_strerror(errno)) }.to_string_lossy().into_owned()
}

/// Turns a negative-errno return into an error.
fn check(op: &'static str, ret: c_int) -> Result<c_int> {
    if ret < 0 {
        Err(Error::Call { op, errno: -ret })
    } else {
        Ok(ret)
    }
}

/// The error for a call that reports failure through `rte_errno`.
fn rte_errno(op: &'static str) -> Error {
    // SAFETY: reads a thread-local int.
    Error::Call { op, errno: unsafe { ffi::shim_rte_errno() } }
}

fn cstring(s: &str) -> Result<CString> {
    CString::new(s).map_err(|_| Error::NulInArgument(s.to_owned()))
}

/// The TSC. Read inline on x86-64 (it is read once per poll), through
/// DPDK's `rte_rdtsc` elsewhere.
#[inline(always)]
pub fn tsc() -> u64 {
    // SAFETY: reads the time-stamp counter.
    #[cfg(target_arch = "x86_64")]
    return unsafe { core::arch::x86_64::_rdtsc() };
    #[cfg(not(target_arch = "x86_64"))]
    return unsafe { ffi::shim_rte_rdtsc() };
}

/// The DPDK release linked in ("DPDK 22.11.4").
pub fn version() -> String {
    // SAFETY: rte_version returns a static NUL-terminated string.
    unsafe { std::ffi::CStr::from_ptr(ffi::shim_rte_version()) }.to_string_lossy().into_owned()
}

/// The TSC as the worker loop's clock.
#[derive(Clone, Copy, Default)]
pub struct Tsc;

impl Clock for Tsc {
    #[inline(always)]
    fn now(&self) -> u64 {
        tsc()
    }
}

/// Sends DPDK's own log lines (EAL, drivers) to `f` instead of stderr:
/// `f(level, bytes, len)`, level as DPDK's (1 emergency .. 4 error, 5
/// warning, 6 notice, 7 info, 8 debug), one line (or a few) per call. Call
/// before [`Eal::init`] to catch its messages too.
pub fn redirect_log(f: extern "C" fn(u32, *const c_char, usize)) -> Result<()> {
    // SAFETY: f is a plain function pointer that lives for the process.
    let ret = unsafe { ffi::shim_log_redirect(Some(f)) };
    if ret < 0 {
        return Err(rte_errno("rte_openlog_stream"));
    }
    Ok(())
}

static EAL_STARTED: AtomicBool = AtomicBool::new(false);

/// The initialised Environment Abstraction Layer. One per process; the
/// thread that creates it is the main lcore. `rte_eal_cleanup` on drop.
pub struct Eal {
    _main_thread_only: PhantomData<*const ()>,
}

impl Eal {
    /// Runs `rte_eal_init` with `args` (the first is the program name).
    pub fn init<S: AsRef<str>>(args: &[S]) -> Result<Eal> {
        if EAL_STARTED.swap(true, Ordering::SeqCst) {
            return Err(Error::AlreadyInitialised);
        }
        let owned = args.iter().map(|a| cstring(a.as_ref())).collect::<Result<Vec<_>>>()?;
        // EAL may keep pointers into argv for the life of the process.
        let argv: &mut Vec<*mut c_char> = Box::leak(Box::new(owned.into_iter().map(CString::into_raw).collect()));
        // SAFETY: argv holds argc valid, leaked C strings.
        let ret = unsafe { ffi::rte_eal_init(argv.len() as c_int, argv.as_mut_ptr()) };
        if ret < 0 {
            return Err(rte_errno("rte_eal_init"));
        }
        Ok(Eal { _main_thread_only: PhantomData })
    }

    /// Probes a device by its devargs (`net_null0,size=64`, `0000:03:00.0`).
    pub fn probe(&self, devargs: &str) -> Result<()> {
        let c = cstring(devargs)?;
        // SAFETY: c is a valid C string; EAL is initialised.
        check("rte_dev_probe", unsafe { ffi::rte_dev_probe(c.as_ptr()) }).map(drop)
    }

    /// TSC ticks per second.
    pub fn tsc_hz(&self) -> u64 {
        // SAFETY: EAL is initialised.
        unsafe { ffi::rte_get_tsc_hz() }
    }

    /// NUMA socket of the calling thread's lcore.
    pub fn socket_id(&self) -> i32 {
        // SAFETY: EAL is initialised.
        unsafe { ffi::rte_socket_id() as i32 }
    }

    /// Runs `f` on worker lcore `lcore`; collect its result with [`Eal::wait`].
    pub fn launch<F: FnOnce() -> i32 + Send + 'static>(&self, lcore: u32, f: F) -> Result<()> {
        type Job = Box<dyn FnOnce() -> i32 + Send>;
        extern "C" fn trampoline(arg: *mut c_void) -> c_int {
            // SAFETY: `arg` is the Box<Job> leaked below, taken back exactly once.
            let job = unsafe { Box::from_raw(arg.cast::<Job>()) };
            job()
        }
        let arg = Box::into_raw(Box::new(Box::new(f) as Job)).cast::<c_void>();
        // SAFETY: trampoline has the lcore_function_t signature.
        let ret = unsafe { ffi::rte_eal_remote_launch(Some(trampoline), arg, lcore) };
        if ret < 0 {
            // SAFETY: the lcore did not take the job; reclaim it.
            drop(unsafe { Box::from_raw(arg.cast::<Job>()) });
        }
        check("rte_eal_remote_launch", ret).map(drop)
    }

    /// Waits for the job on `lcore` to finish and returns its result.
    pub fn wait(&self, lcore: u32) -> i32 {
        // SAFETY: EAL is initialised.
        unsafe { ffi::rte_eal_wait_lcore(lcore) }
    }
}

impl Drop for Eal {
    fn drop(&mut self) {
        // SAFETY: every DPDK object was released before the Eal (field order).
        unsafe { ffi::rte_eal_cleanup() };
    }
}

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

    fn as_ptr(&self) -> *mut ffi::rte_mempool {
        self.ptr.as_ptr()
    }
}

impl Drop for Mempool {
    fn drop(&mut self) {
        // SAFETY: valid pool; no port references it any more (field order).
        unsafe { ffi::rte_mempool_free(self.ptr.as_ptr()) };
    }
}

/// An owned packet buffer. Dropping it returns it to its pool.
#[repr(transparent)]
pub struct Mbuf(NonNull<ffi::rte_mbuf>);

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

/// What a device reports it can do.
#[derive(Clone, Debug)]
pub struct DevInfo {
    pub driver: String,
    pub max_rx_queues: u16,
    pub max_tx_queues: u16,
    /// RSS hash functions the device supports (0: no RSS).
    pub rss_offloads: u64,
    /// The device can verify IPv4 header checksums on receive.
    pub rx_ipv4_checksum: bool,
    pub socket: i32,
}

/// How to configure a port before starting it.
#[derive(Clone, Copy, Debug)]
pub struct PortSetup {
    pub rx_queues: u16,
    pub tx_queues: u16,
    pub rx_desc: u16,
    pub tx_desc: u16,
}

/// Device-level counters (`rte_eth_stats`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EthStats {
    pub ipackets: u64,
    pub opackets: u64,
    pub ibytes: u64,
    pub obytes: u64,
    /// Packets the NIC dropped because the RX ring was full.
    pub imissed: u64,
    pub ierrors: u64,
    pub oerrors: u64,
    /// RX mbuf allocation failures.
    pub rx_nombuf: u64,
}

/// An ethdev port, stopped (if started) and closed on drop. Each RX and TX
/// queue can be taken once, so exactly one thread owns each queue.
pub struct Port {
    id: u16,
    name: String,
    started: bool,
    rx_taken: Vec<bool>,
    tx_taken: Vec<bool>,
}

impl Port {
    /// The probed port whose device name is `name` (`net_null0`, `0000:03:00.0`).
    pub fn by_name(name: &str) -> Result<Port> {
        let c = cstring(name)?;
        let mut id = 0u16;
        // SAFETY: valid C string and out-pointer.
        let ret = unsafe { ffi::rte_eth_dev_get_port_by_name(c.as_ptr(), &mut id) };
        if ret < 0 {
            return Err(Error::NoSuchPort(name.to_owned()));
        }
        Ok(Port { id, name: name.to_owned(), started: false, rx_taken: Vec::new(), tx_taken: Vec::new() })
    }

    pub fn id(&self) -> u16 {
        self.id
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn info(&self) -> Result<DevInfo> {
        let mut i = ffi::rte_eth_dev_info::default();
        // SAFETY: valid port id and out-pointer.
        check("rte_eth_dev_info_get", unsafe { ffi::rte_eth_dev_info_get(self.id, &mut i) })?;
        let driver = if i.driver_name.is_null() {
            String::new()
        } else {
            // SAFETY: DPDK's driver name is a static C string.
            unsafe { CStr::from_ptr(i.driver_name) }.to_string_lossy().into_owned()
        };
        // SAFETY: valid port id.
        let socket = unsafe { ffi::rte_eth_dev_socket_id(self.id) };
        Ok(DevInfo {
            driver,
            max_rx_queues: i.max_rx_queues,
            max_tx_queues: i.max_tx_queues,
            rss_offloads: i.flow_type_rss_offloads,
            // SAFETY: pure function.
            rx_ipv4_checksum: i.rx_offload_capa & unsafe { ffi::shim_rx_offload_ipv4_cksum() } != 0,
            socket,
        })
    }

    pub fn mac(&self) -> Result<[u8; 6]> {
        let mut a = ffi::rte_ether_addr::default();
        // SAFETY: valid port id and out-pointer.
        check("rte_eth_macaddr_get", unsafe { ffi::rte_eth_macaddr_get(self.id, &mut a) })?;
        Ok(a.addr_bytes)
    }

    /// Configures queues and rings. RSS spreads flows over the RX queues when
    /// there are several and the device supports it; IPv4 checksum
    /// verification is offloaded when the device can. Returns the ring
    /// sizes the device accepted.
    pub fn configure(&mut self, setup: &PortSetup, pool: &Mempool) -> Result<(u16, u16)> {
        let info = self.info()?;
        let mut conf = ffi::rte_eth_conf::default();
        if setup.rx_queues > 1 && info.rss_offloads != 0 {
            conf.rxmode.mq_mode = ffi::RTE_ETH_MQ_RX_RSS;
            // SAFETY: pure function.
            conf.rx_adv_conf.rss_conf.rss_hf = unsafe { ffi::shim_rss_hf_ip_tcp_udp() } & info.rss_offloads;
        }
        if info.rx_ipv4_checksum {
            // The NIC checks IPv4 header checksums; mbufs carry its verdict
            // (Packet::ipv4_checksum_ok) and the router skips the sum.
            // SAFETY: pure function.
            conf.rxmode.offloads |= unsafe { ffi::shim_rx_offload_ipv4_cksum() };
        }
        // SAFETY: valid port and config.
        check("rte_eth_dev_configure", unsafe { ffi::rte_eth_dev_configure(self.id, setup.rx_queues, setup.tx_queues, &conf) })?;
        let (mut rxd, mut txd) = (setup.rx_desc, setup.tx_desc);
        // SAFETY: valid port and out-pointers.
        check("rte_eth_dev_adjust_nb_rx_tx_desc", unsafe { ffi::rte_eth_dev_adjust_nb_rx_tx_desc(self.id, &mut rxd, &mut txd) })?;
        let socket = info.socket as u32; // SOCKET_ID_ANY (-1) passes through as DPDK expects.
        for q in 0..setup.rx_queues {
            // SAFETY: valid port, queue index below the configured count, live pool.
            check("rte_eth_rx_queue_setup", unsafe {
                ffi::rte_eth_rx_queue_setup(self.id, q, rxd, socket, std::ptr::null(), pool.as_ptr())
            })?;
        }
        for q in 0..setup.tx_queues {
            // SAFETY: as above.
            check("rte_eth_tx_queue_setup", unsafe { ffi::rte_eth_tx_queue_setup(self.id, q, txd, socket, std::ptr::null()) })?;
        }
        self.rx_taken = vec![false; setup.rx_queues as usize];
        self.tx_taken = vec![false; setup.tx_queues as usize];
        Ok((rxd, txd))
    }

    pub fn start(&mut self) -> Result<()> {
        // SAFETY: configured port.
        check("rte_eth_dev_start", unsafe { ffi::rte_eth_dev_start(self.id) })?;
        self.started = true;
        // Cross-connect and routing need every frame; a device without
        // promiscuous mode (most vdevs) already delivers everything.
        // SAFETY: started port.
        let _ = unsafe { ffi::rte_eth_promiscuous_enable(self.id) };
        Ok(())
    }

    /// Stops the port. Every queue's owner must have stopped using it.
    pub fn stop(&mut self) -> Result<()> {
        if !self.started {
            return Ok(());
        }
        self.started = false;
        // SAFETY: started port, no thread polls it any more.
        check("rte_eth_dev_stop", unsafe { ffi::rte_eth_dev_stop(self.id) }).map(drop)
    }

    pub fn stats(&self) -> Result<EthStats> {
        let mut s = ffi::rte_eth_stats::default();
        // SAFETY: valid port and out-pointer.
        check("rte_eth_stats_get", unsafe { ffi::rte_eth_stats_get(self.id, &mut s) })?;
        Ok(EthStats {
            ipackets: s.ipackets,
            opackets: s.opackets,
            ibytes: s.ibytes,
            obytes: s.obytes,
            imissed: s.imissed,
            ierrors: s.ierrors,
            oerrors: s.oerrors,
            rx_nombuf: s.rx_nombuf,
        })
    }

    /// Hands out RX queue `q`, once.
    pub fn take_rx_queue(&mut self, q: u16) -> Option<EthRxQueue> {
        let slot = self.rx_taken.get_mut(q as usize)?;
        (!std::mem::replace(slot, true)).then_some(EthRxQueue { port: self.id, queue: q })
    }

    /// Hands out TX queue `q`, once.
    pub fn take_tx_queue(&mut self, q: u16) -> Option<EthTxQueue> {
        let slot = self.tx_taken.get_mut(q as usize)?;
        (!std::mem::replace(slot, true)).then_some(EthTxQueue { port: self.id, queue: q })
    }
}

impl Drop for Port {
    fn drop(&mut self) {
        let _ = self.stop();
        // SAFETY: valid, stopped port; its RX rings' mbufs go back to the pool.
        unsafe { ffi::rte_eth_dev_close(self.id) };
    }
}

/// One RX queue of a started port, owned by one worker.
pub struct EthRxQueue {
    port: u16,
    queue: u16,
}

impl RxQueue for EthRxQueue {
    type Pkt = Mbuf;

    #[inline(always)]
    fn rx_burst(&mut self, burst: &mut Burst<Mbuf>, max: usize) -> usize {
        let max = max.min(burst.spare());
        // SAFETY: Mbuf is a transparent NonNull<rte_mbuf>, so the spare slots
        // are an array of `max` mbuf pointers for DPDK to fill.
        unsafe {
            let at = burst.as_mut_ptr().add(burst.len()).cast::<*mut ffi::rte_mbuf>();
            let n = ffi::shim_rte_eth_rx_burst(self.port, self.queue, at, max as u16) as usize;
            burst.extend_written(n);
            n
        }
    }
}

/// One TX queue of a started port, owned by one thread.
pub struct EthTxQueue {
    port: u16,
    queue: u16,
}

impl TxQueue<Mbuf> for EthTxQueue {
    #[inline(always)]
    fn tx_burst(&mut self, burst: &mut Burst<Mbuf>) -> usize {
        // SAFETY: as for RX; the device owns the first `n` mbufs afterwards.
        unsafe {
            let p = burst.as_mut_ptr().cast::<*mut ffi::rte_mbuf>();
            let n = ffi::shim_rte_eth_tx_burst(self.port, self.queue, p, burst.len() as u16) as usize;
            burst.forget_front(n);
            n
        }
    }
}

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_name_the_call_and_the_errno() {
        let e = check("rte_eth_dev_configure", -22).unwrap_err();
        assert_eq!(e.errno(), Some(22));
        assert_eq!(e.to_string(), "rte_eth_dev_configure failed: Invalid argument (errno 22)");
        assert_eq!(check("x", 3), Ok(3));
    }

    #[test]
    fn nul_in_arguments_is_an_error_not_a_panic() {
        assert!(matches!(cstring("a\0b"), Err(Error::NulInArgument(_))));
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
