//! The safe DPDK layer: owning types for EAL ([`eal`]), mempools
//! ([`mempool`]), mbufs ([`mbuf`]), ports and their queues ([`port`]).
//! `Drop` frees; a negative C return becomes a typed [`Error`] here, once.
//! Nothing else in the workspace calls DPDK's bindings (`dpi::hs` is the
//! safe layer over Hyperscan's, in the same crate). DPDK's own scheduler,
//! LPM and hash, kept only as benchmark baselines, are in [`baselines`]
//! behind the `baselines` feature.

#[cfg(feature = "baselines")]
pub mod baselines;
pub mod eal;
pub mod kernel_ring;
pub mod mbuf;
pub mod mempool;
pub mod port;

#[cfg(feature = "baselines")]
pub use baselines::{DpdkHash, DpdkLpm, DpdkLpm6, DpdkSched};
pub use eal::Eal;
pub use mbuf::Mbuf;
pub use mempool::Mempool;
pub use port::{DevInfo, EthRxQueue, EthStats, EthTxQueue, Port, PortSetup};

use std::ffi::{c_char, c_int, CStr, CString};
use std::fmt;

use dpdk_sys as ffi;

use crate::worker::Clock;

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
