//! `patronus-perf pattern-bench`: the payload-pattern stage of DPI with
//! our Aho-Corasick matcher (the `aho-corasick` crate) against Hyperscan
//! (Debian libhyperscan), on the same signatures and the same payloads:
//! every payload is scanned for the first pattern placed where its
//! signature says (offset or depth, transport protocol).

use std::ffi::{c_char, c_int, c_uint, c_ulonglong, c_void, CString};
use std::hint::black_box;
use std::path::PathBuf;
use std::time::Instant;

use dataplane::dpi::{AppId, Pattern, Proto};
use dataplane::flow::parse_frame;

#[repr(C)]
struct HsDatabase(c_void);
#[repr(C)]
struct HsScratch(c_void);
#[repr(C)]
struct HsCompileError {
    message: *const c_char,
    expression: c_int,
}
type MatchFn = unsafe extern "C" fn(id: c_uint, from: c_ulonglong, to: c_ulonglong, flags: c_uint, ctx: *mut c_void) -> c_int;

extern "C" {
    fn hs_compile_multi(
        expressions: *const *const c_char,
        flags: *const c_uint,
        ids: *const c_uint,
        elements: c_uint,
        mode: c_uint,
        platform: *const c_void,
        db: *mut *mut HsDatabase,
        error: *mut *mut HsCompileError,
    ) -> c_int;
    fn hs_alloc_scratch(db: *const HsDatabase, scratch: *mut *mut HsScratch) -> c_int;
    fn hs_scan(
        db: *const HsDatabase,
        data: *const c_char,
        length: c_uint,
        flags: c_uint,
        scratch: *mut HsScratch,
        on_event: MatchFn,
        context: *mut c_void,
    ) -> c_int;
    fn hs_free_database(db: *mut HsDatabase) -> c_int;
    fn hs_free_scratch(scratch: *mut HsScratch) -> c_int;
}

const HS_MODE_BLOCK: c_uint = 1;
const HS_FLAG_SINGLEMATCH: c_uint = 8;

struct Ctx<'a> {
    pats: &'a [(AppId, Pattern)],
    proto: u8,
    found: Option<AppId>,
}

unsafe extern "C" fn on_match(id: c_uint, _from: c_ulonglong, to: c_ulonglong, _flags: c_uint, ctx: *mut c_void) -> c_int {
    // SAFETY: ctx is the &mut Ctx passed to hs_scan.
    let c = unsafe { &mut *(ctx as *mut Ctx) };
    let (app, p) = &c.pats[id as usize];
    let at = to as usize - p.bytes.len(); // literals: the start is the end minus the length
    let placed = match p.offset {
        Some(o) => at == o as usize,
        None => at <= p.depth as usize,
    };
    if placed && (p.proto == 0 || p.proto == c.proto) && p.within.is_none() {
        c.found = Some(*app);
        return 1; // stop
    }
    0
}

pub fn run(captures: &[PathBuf], passes: usize) -> Result<(), String> {
    let dpi = patronus::config::signatures::DpiOpts::default().compile(std::path::Path::new("."), &mut Default::default()).map_err(|e| e.to_string())?;
    let pats = dpi.patterns();
    // Payloads: every TCP/UDP payload of the captures.
    let mut payloads: Vec<(u8, Vec<u8>)> = Vec::new();
    for c in captures {
        let cap = patronus::capture::Capture::open(c)?;
        cap.for_each(|pkt| {
            let Some(link) = pkt.link else { return };
            if let Some(p) = parse_frame(link, pkt.data) {
                if p.payload.1 > 0 {
                    payloads.push((p.key.proto, pkt.data[p.payload.0..p.payload.0 + p.payload.1].to_vec()));
                }
            }
        })?;
    }
    let bytes: usize = payloads.iter().map(|p| p.1.len()).sum();

    // Hyperscan: each literal as a pattern of \xNN escapes, single match per id.
    let exprs: Vec<CString> =
        pats.iter().map(|(_, p)| CString::new(p.bytes.iter().map(|b| format!("\\x{b:02x}")).collect::<String>()).unwrap()).collect();
    let ptrs: Vec<*const c_char> = exprs.iter().map(|e| e.as_ptr()).collect();
    let flags = vec![HS_FLAG_SINGLEMATCH; pats.len()];
    let ids: Vec<c_uint> = (0..pats.len() as c_uint).collect();
    let mut db = std::ptr::null_mut();
    let mut err = std::ptr::null_mut();
    // SAFETY: arrays of pats.len() elements; out-pointers valid.
    let rc = unsafe { hs_compile_multi(ptrs.as_ptr(), flags.as_ptr(), ids.as_ptr(), pats.len() as c_uint, HS_MODE_BLOCK, std::ptr::null(), &mut db, &mut err) };
    if rc != 0 {
        return Err(format!("hs_compile_multi failed ({rc})"));
    }
    let mut scratch = std::ptr::null_mut();
    // SAFETY: valid database.
    if unsafe { hs_alloc_scratch(db, &mut scratch) } != 0 {
        return Err("hs_alloc_scratch failed".into());
    }

    let scan_ours = |acc: &mut u64| {
        for (proto, p) in &payloads {
            if let Some(a) = dpi.pattern_in(p, *proto, Proto::Unknown) {
                *acc += a as u64;
            }
        }
    };
    let scan_hs = |acc: &mut u64| {
        for (proto, p) in &payloads {
            let mut c = Ctx { pats, proto: *proto, found: None };
            // SAFETY: valid database and scratch; the context outlives the call.
            unsafe { hs_scan(db, p.as_ptr().cast(), p.len() as c_uint, 0, scratch, on_match, (&mut c as *mut Ctx).cast()) };
            if let Some(a) = c.found {
                *acc += a as u64;
            }
        }
    };
    // Same verdicts first.
    let (mut a, mut b) = (0, 0);
    scan_ours(&mut a);
    scan_hs(&mut b);
    let verdicts = if a == b { "same verdicts" } else { "DIFFERENT verdicts" };
    let time = |f: &dyn Fn(&mut u64)| {
        let mut best = f64::MAX;
        for _ in 0..3 {
            let t = Instant::now();
            let mut acc = 0;
            for _ in 0..passes {
                f(&mut acc);
            }
            black_box(acc);
            best = best.min(t.elapsed().as_nanos() as f64 / (passes * payloads.len()) as f64);
        }
        best
    };
    let ours = time(&scan_ours);
    let hs = time(&scan_hs);
    println!(
        "pattern-bench: {} patterns, {} payloads ({} bytes, mean {:.0}), {passes} passes, best of 3; {verdicts}",
        pats.len(),
        payloads.len(),
        bytes,
        bytes as f64 / payloads.len().max(1) as f64
    );
    println!("  aho-corasick: {ours:.1} ns/payload   hyperscan: {hs:.1} ns/payload   (hyperscan/ours {:.2})", hs / ours);
    println!("RESULT patterns ours_ns={ours:.1} hyperscan_ns={hs:.1}");
    // SAFETY: allocated above, freed once.
    unsafe {
        hs_free_scratch(scratch);
        hs_free_database(db);
    }
    if a != b {
        return Err("the matchers disagree".into());
    }
    Ok(())
}
