//! `patronus-perf flow-bench`: our flow table against DPDK's rte_hash on
//! the same flows and the same lookups, in one run. Each operation is a
//! flow's per-packet work: find the flow (inserting it if new) and touch
//! its record (a packet counter), as the classifier stage does.

use std::hint::black_box;
use std::time::Instant;

use dataplane::dpdk::{DpdkHash, Eal};
use dataplane::flow::{FlowTable, Timeouts};
use dataplane::vocab::{Dir, FlowKey};

use crate::lpm_bench::Rng;

/// The key as rte_hash sees it: the canonical 5-tuple, 40 bytes.
fn key_bytes(k: &FlowKey) -> [u8; 40] {
    let mut b = [0u8; 40];
    b[..16].copy_from_slice(&k.lo_addr);
    b[16..32].copy_from_slice(&k.hi_addr);
    b[32..34].copy_from_slice(&k.lo_port.to_be_bytes());
    b[34..36].copy_from_slice(&k.hi_port.to_be_bytes());
    b[36] = k.proto;
    b
}

/// Best of three passes, ns per operation.
fn time(ops: usize, mut f: impl FnMut() -> u64) -> f64 {
    let mut best = f64::MAX;
    for _ in 0..3 {
        let t = Instant::now();
        black_box(f());
        best = best.min(t.elapsed().as_nanos() as f64 / ops as f64);
    }
    best
}

pub fn run(sizes: &[usize], lookups: usize, file_prefix: &str) -> Result<(), String> {
    let args =
        ["eal", "-l", "0", "--no-huge", "-m", "2048", "--no-pci", "--file-prefix", file_prefix, "--log-level=warning", "--no-telemetry"];
    let _eal = Eal::init(&args).map_err(|e| e.to_string())?;
    println!("flow-bench: {lookups} packets per pass over N live flows (uniform), best of 3 passes, ns per packet; table capacity 2N");
    println!(
        "{:>9} {:>10} {:>12} {:>12} {:>14} {:>14} {:>8}",
        "flows", "ours", "ours burst32", "rte single", "rte bulk32", "ours insert", "evicted"
    );
    for (i, &n) in sizes.iter().enumerate() {
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ n as u64);
        let keys: Vec<(FlowKey, Dir)> = (0..n)
            .map(|_| {
                let (a, b) = (rng.next(), rng.next());
                let src = dataplane::vocab::mapped_v4((a as u32).to_be_bytes());
                let dst = dataplane::vocab::mapped_v4((b as u32).to_be_bytes());
                FlowKey::new(src, (a >> 32) as u16, dst, (b >> 32) as u16 | 1, if a & 1 == 0 { 6 } else { 17 })
            })
            .collect();
        let stream: Vec<u32> = (0..lookups).map(|_| (rng.next() % n as u64) as u32).collect();

        // Ours.
        let mut table = FlowTable::new(2 * n, Timeouts::with_hz(1));
        let t = Instant::now();
        for (k, d) in &keys {
            table.lookup_or_insert(k, *d, 1);
        }
        let ours_insert = t.elapsed().as_nanos() as f64 / n as f64;
        let ours = time(lookups, || {
            let mut acc = 0;
            for &j in &stream {
                let (k, d) = &keys[j as usize];
                let (f, _) = table.lookup_or_insert(k, *d, 2);
                f.packets[0] += 1;
                acc += f.packets[0];
            }
            acc
        });
        let evicted = table.stats.evicted;
        let ours_burst = time(lookups, || {
            let mut acc = 0;
            let mut hs = [0u64; 32];
            for chunk in stream.chunks(32) {
                for (x, &j) in chunk.iter().enumerate() {
                    hs[x] = keys[j as usize].0.hash();
                    table.prefetch_hashed(hs[x]);
                }
                for &h in &hs[..chunk.len()] {
                    table.prefetch_flow(h);
                }
                for (x, &j) in chunk.iter().enumerate() {
                    let (k, d) = &keys[j as usize];
                    let (f, _) = table.lookup_or_insert_hashed(k, hs[x], *d, 2);
                    f.packets[0] += 1;
                    acc += f.packets[0];
                }
            }
            acc
        });

        // rte_hash, with the flow records in an array beside it.
        let mut h = DpdkHash::new(&format!("fb{i}"), (2 * n) as u32, 40).map_err(|e| e.to_string())?;
        let kb: Vec<[u8; 40]> = keys.iter().map(|(k, _)| key_bytes(k)).collect();
        // The same per-flow records ours holds, so both touch as much memory.
        let mut counts = vec![dataplane::flow::Flow::default(); n];
        for (j, k) in kb.iter().enumerate() {
            if !h.add(k, j) {
                return Err(format!("rte_hash_add_key_data failed at {j} of {n}"));
            }
        }
        let single = time(lookups, || {
            let mut acc = 0;
            for &j in &stream {
                let k = &kb[j as usize];
                let idx = match h.lookup(k) {
                    Some(x) => x,
                    None => {
                        h.add(k, j as usize);
                        j as usize
                    }
                };
                counts[idx].packets[0] += 1;
                acc += counts[idx].packets[0];
            }
            acc
        });
        let bulk = time(lookups, || {
            let mut acc = 0;
            let mut out = [0usize; 32];
            for chunk in stream.chunks(32) {
                let ptrs: [*const std::ffi::c_void; 32] =
                    std::array::from_fn(|x| chunk.get(x).map_or(std::ptr::null(), |&j| kb[j as usize].as_ptr().cast()));
                h.lookup_bulk(&ptrs[..chunk.len()], &mut out);
                for (x, &j) in chunk.iter().enumerate() {
                    let idx = if out[x] == usize::MAX { j as usize } else { out[x] };
                    counts[idx].packets[0] += 1;
                    acc += counts[idx].packets[0];
                }
            }
            acc
        });
        println!("{n:>9} {ours:>10.2} {ours_burst:>12.2} {single:>12.2} {bulk:>14.2} {ours_insert:>14.2} {evicted:>8}");
        println!("RESULT flows n={n} ours_ns={ours:.2} ours_burst_ns={ours_burst:.2} rte_single_ns={single:.2} rte_bulk_ns={bulk:.2} ours_evicted={evicted}");
    }
    Ok(())
}
