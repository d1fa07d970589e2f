//! Hyperscan (Debian `libhyperscan-dev`), the payload-pattern matcher:
//! chosen over the `aho-corasick` crate by measurement (`patronus-perf
//! pattern-bench`, docs/PERFORMANCE.md: about 5x faster on the same
//! signatures and payloads).
//!
//! A [`Database`] is compiled once by the control thread and only read
//! afterwards (Hyperscan databases are safe to share). Scanning needs a
//! [`Scratch`] per thread; the control thread allocates one per worker
//! with each database, so workers never allocate.

use std::ffi::{c_char, c_int, c_uint, c_ulonglong, c_void, CString};
use std::ptr::NonNull;

use dpdk_sys::hs as ffi;

/// Literal patterns compiled for block scanning.
pub struct Database(NonNull<ffi::hs_database_t>);

// SAFETY: a compiled database is immutable; Hyperscan allows concurrent
// scans of one database with distinct scratch spaces.
unsafe impl Send for Database {}
unsafe impl Sync for Database {}

impl Database {
    /// Compiles literals; a match reports the literal's index.
    pub fn literals(pats: &[&[u8]]) -> Result<Database, String> {
        let exprs: Vec<CString> = pats
            .iter()
            .map(|p| CString::new(p.iter().map(|b| format!("\\x{b:02x}")).collect::<String>()).expect("hex escapes hold no NUL"))
            .collect();
        let ptrs: Vec<*const c_char> = exprs.iter().map(|e| e.as_ptr()).collect();
        let flags = vec![0 as c_uint; pats.len()];
        let ids: Vec<c_uint> = (0..pats.len() as c_uint).collect();
        let mut db = std::ptr::null_mut();
        let mut err = std::ptr::null_mut();
        // SAFETY: three arrays of pats.len() elements; valid out-pointers.
        let rc = unsafe {
            ffi::hs_compile_multi(
                ptrs.as_ptr(),
                flags.as_ptr(),
                ids.as_ptr(),
                pats.len() as c_uint,
                ffi::HS_MODE_BLOCK,
                std::ptr::null(),
                &mut db,
                &mut err,
            )
        };
        if rc != ffi::HS_SUCCESS as c_int {
            let msg = if err.is_null() {
                format!("hs_compile_multi failed ({rc})")
            } else {
                // SAFETY: Hyperscan filled a valid error; freed once.
                unsafe {
                    let e = &*err;
                    let m = format!("pattern {}: {}", e.expression, std::ffi::CStr::from_ptr(e.message).to_string_lossy());
                    ffi::hs_free_compile_error(err);
                    m
                }
            };
            return Err(msg);
        }
        NonNull::new(db).map(Database).ok_or_else(|| "hs_compile_multi returned no database".into())
    }

    /// A scratch space for scanning this database.
    pub fn scratch(&self) -> Result<Scratch, String> {
        let mut s = std::ptr::null_mut();
        // SAFETY: valid database; a null scratch asks for a new one.
        let rc = unsafe { ffi::hs_alloc_scratch(self.0.as_ptr(), &mut s) };
        match NonNull::new(s) {
            Some(s) if rc == ffi::HS_SUCCESS as c_int => Ok(Scratch(s)),
            _ => Err(format!("hs_alloc_scratch failed ({rc})")),
        }
    }

    /// Scans `data`, calling `on_match(index, end)` for each literal found
    /// (end: the offset just past it) until it returns true.
    #[inline]
    pub fn scan<F: FnMut(usize, usize) -> bool>(&self, data: &[u8], scratch: &mut Scratch, mut on_match: F) {
        unsafe extern "C" fn trampoline<F: FnMut(usize, usize) -> bool>(
            id: c_uint,
            _from: c_ulonglong,
            to: c_ulonglong,
            _flags: c_uint,
            ctx: *mut c_void,
        ) -> c_int {
            // SAFETY: ctx is the &mut F passed to hs_scan below.
            let f = unsafe { &mut *(ctx as *mut F) };
            f(id as usize, to as usize) as c_int
        }
        // SAFETY: valid database and scratch (allocated for it); the
        // closure outlives the call. A non-zero callback return stops the
        // scan (reported as HS_SCAN_TERMINATED, not an error for us).
        unsafe {
            ffi::hs_scan(
                self.0.as_ptr(),
                data.as_ptr().cast(),
                data.len() as c_uint,
                0,
                scratch.0.as_ptr(),
                Some(trampoline::<F>),
                (&mut on_match as *mut F).cast(),
            );
        }
    }
}

impl Drop for Database {
    fn drop(&mut self) {
        // SAFETY: freed once.
        unsafe { ffi::hs_free_database(self.0.as_ptr()) };
    }
}

/// Per-thread scanning state.
pub struct Scratch(NonNull<ffi::hs_scratch_t>);

// SAFETY: a scratch may move between threads; it is used by one at a time.
unsafe impl Send for Scratch {}

impl Drop for Scratch {
    fn drop(&mut self) {
        // SAFETY: freed once.
        unsafe { ffi::hs_free_scratch(self.0.as_ptr()) };
    }
}
