//! `patronus-perf pattern-bench`: the payload-pattern stage of DPI with
//! Hyperscan (what `Dpi::pattern_in` runs) against the `aho-corasick`
//! crate, on the same signatures (the built-in set) and the same payloads:
//! every payload is scanned for the first pattern placed where its
//! signature says (offset or depth, transport protocol). This measurement
//! chose Hyperscan.

use std::hint::black_box;
use std::path::PathBuf;
use std::time::Instant;

use aho_corasick::{AhoCorasick, AhoCorasickKind, MatchKind};
use dataplane::dpi::Proto;
use dataplane::flow::parse_at;

pub fn run(captures: &[PathBuf], passes: usize) -> Result<(), String> {
    let dpi = patronus::config::signatures::DpiOpts::default()
        .compile(std::path::Path::new("."), &mut Default::default())
        .map_err(|e| e.to_string())?;
    let pats = dpi.patterns();
    let reach = pats.iter().map(|(_, p)| p.offset.unwrap_or(p.depth) as usize + p.bytes.len()).max().unwrap_or(0);
    let mut payloads: Vec<(u8, Vec<u8>)> = Vec::new();
    for c in captures {
        let cap = patronus::capture::Capture::open(c)?;
        cap.for_each(|pkt| {
            if let Some(p) = pkt.ip_header().and_then(|ip| parse_at(pkt.data, ip)) {
                if p.payload.1 > 0 {
                    payloads.push((p.key.proto, pkt.data[p.payload.0..p.payload.0 + p.payload.1].to_vec()));
                }
            }
        })?;
    }
    let bytes: usize = payloads.iter().map(|p| p.1.len()).sum();
    let ac = AhoCorasick::builder()
        .match_kind(MatchKind::Standard)
        .kind(Some(AhoCorasickKind::DFA))
        .build(pats.iter().map(|(_, p)| &p.bytes))
        .map_err(|e| e.to_string())?;
    let scan_ac = |acc: &mut u64| {
        for (proto, payload) in &payloads {
            let payload = &payload[..payload.len().min(reach)];
            for m in ac.find_overlapping_iter(payload) {
                let (app, p) = &pats[m.pattern().as_usize()];
                let placed = match p.offset {
                    Some(o) => m.start() == o as usize,
                    None => m.start() <= p.depth as usize,
                };
                if placed && (p.proto == 0 || p.proto == *proto) && p.within.is_none() {
                    *acc += *app as u64;
                    break;
                }
            }
        }
    };
    let scan_hs = |acc: &mut u64| {
        for (proto, p) in &payloads {
            if let Some(a) = dpi.pattern_in(p, *proto, Proto::Unknown, 0) {
                *acc += a as u64;
            }
        }
    };
    let (mut a, mut b) = (0, 0);
    scan_ac(&mut a);
    scan_hs(&mut b);
    let time = |f: &dyn Fn(&mut u64)| {
        let mut best = f64::MAX;
        for _ in 0..3 {
            let t = Instant::now();
            let mut acc = 0;
            for _ in 0..passes {
                f(&mut acc);
            }
            black_box(acc);
            best = best.min(t.elapsed().as_nanos() as f64 / (passes * payloads.len()).max(1) as f64);
        }
        best
    };
    let t_ac = time(&scan_ac);
    let t_hs = time(&scan_hs);
    println!(
        "pattern-bench: {} patterns, {} payloads ({} bytes, mean {:.0}), {passes} passes, best of 3; {}",
        pats.len(),
        payloads.len(),
        bytes,
        bytes as f64 / payloads.len().max(1) as f64,
        if a == b { "same verdicts" } else { "DIFFERENT verdicts" }
    );
    println!(
        "  hyperscan (Dpi::pattern_in): {t_hs:.1} ns/payload   aho-corasick (DFA): {t_ac:.1} ns/payload   (aho-corasick/hyperscan {:.2})",
        t_ac / t_hs
    );
    println!("RESULT patterns hyperscan_ns={t_hs:.1} aho_corasick_ns={t_ac:.1}");
    if a != b {
        return Err("the matchers disagree".into());
    }
    Ok(())
}
