//! The Environment Abstraction Layer: one per process.

use std::ffi::{c_char, c_int, c_void, CString};
use std::marker::PhantomData;
use std::sync::atomic::{AtomicBool, Ordering};

use dpdk_sys as ffi;

use super::*;

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
