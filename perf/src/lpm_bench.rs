//! `patronus-perf lpm-bench`: our multibit-trie LPM against DPDK's rte_lpm
//! and rte_lpm6 on the same routes and the same lookups, in one run.

use std::hint::black_box;
use std::time::Instant;

use dataplane::dpdk::{DpdkLpm, DpdkLpm6, Eal};
use dataplane::router::lpm::Lpm;

/// xorshift64: deterministic routes and lookups for every run.
pub struct Rng(pub u64);
impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// IPv4 routes shaped like a routing table: mostly /24, some shorter and longer.
fn v4_routes(n: usize, rng: &mut Rng) -> Vec<(u32, u8, u32)> {
    let mut r = vec![(0u32, 0u8, 0u32)];
    for i in 1..n {
        let len = match rng.next() % 100 {
            0..=59 => 24,
            60..=74 => 16 + (rng.next() % 8) as u8,
            75..=89 => 25 + (rng.next() % 8) as u8,
            _ => 8 + (rng.next() % 8) as u8,
        };
        r.push((rng.next() as u32, len, i as u32 % 4096));
    }
    r
}

fn v6_routes(n: usize, rng: &mut Rng) -> Vec<(u128, u8, u32)> {
    let mut r = vec![(0u128, 0u8, 0u32)];
    for i in 1..n {
        let len = match rng.next() % 100 {
            0..=39 => 48,
            40..=59 => 56,
            60..=84 => 64,
            85..=94 => 32 + (rng.next() % 16) as u8,
            _ => 128,
        };
        let p = 0x2000u128 << 112 | (rng.next() as u128) << 64 | rng.next() as u128;
        r.push((p, len, i as u32 % 4096));
    }
    r
}

/// Half the destinations fall inside a route's prefix, half anywhere.
fn v4_dests(routes: &[(u32, u8, u32)], n: usize, rng: &mut Rng) -> Vec<u32> {
    (0..n)
        .map(|_| {
            if rng.next().is_multiple_of(2) {
                let (p, l, _) = routes[rng.next() as usize % routes.len()];
                let host = if l >= 32 { 0 } else { rng.next() as u32 & (u32::MAX >> l) };
                p | host
            } else {
                rng.next() as u32
            }
        })
        .collect()
}

fn v6_dests(routes: &[(u128, u8, u32)], n: usize, rng: &mut Rng) -> Vec<u128> {
    (0..n)
        .map(|_| {
            let (p, l, _) = routes[rng.next() as usize % routes.len()];
            let host = if l >= 128 { 0 } else { ((rng.next() as u128) << 64 | rng.next() as u128) & (u128::MAX >> l) };
            p | host
        })
        .collect()
}

/// Nanoseconds per lookup: best of three passes over `dests`.
fn time<T>(dests: &[T], mut f: impl FnMut(&[T]) -> u64) -> f64 {
    let mut best = f64::MAX;
    for _ in 0..3 {
        let t = Instant::now();
        let mut acc = 0u64;
        for chunk in dests.chunks(32) {
            acc = acc.wrapping_add(f(chunk));
        }
        black_box(acc);
        best = best.min(t.elapsed().as_nanos() as f64 / dests.len() as f64);
    }
    best
}

pub fn run(routes4: usize, routes6: usize, lookups: usize, file_prefix: &str) -> Result<(), String> {
    let args =
        ["eal", "-l", "0", "--no-huge", "-m", "2048", "--no-pci", "--file-prefix", file_prefix, "--log-level=warning", "--no-telemetry"];
    let _eal = Eal::init(&args).map_err(|e| e.to_string())?;
    let mut rng = Rng(0x2545_f491_4f6c_dd1d);
    println!("lpm-bench: {lookups} lookups per pass, batches of 32, best of 3 passes (ns/lookup)");
    println!(
        "{:<8} {:>8} {:>12} {:>12} {:>14} {:>14} {:>12}",
        "family", "routes", "ours-16", "ours-24", "rte bulk", "rte single", "ours-16 mem"
    );

    for n in [16usize, routes4] {
        let routes = v4_routes(n, &mut rng);
        let dests = v4_dests(&routes, lookups, &mut rng);
        let ours16 = Lpm::<u32, 16>::build(&routes);
        let ours24 = Lpm::<u32, 24>::build(&routes);
        let mut rte = DpdkLpm::new(&format!("bench4_{n}"), n as u32 * 2, 1 << 16).map_err(|e| e.to_string())?;
        // rte_lpm: a later add of the same prefix replaces the earlier, as ours.
        for &(p, l, v) in &routes {
            rte.add(p, l.max(1), v).map_err(|e| e.to_string())?;
            if l == 0 {
                rte.add(1 << 31, 1, v).map_err(|e| e.to_string())?; // 0/0 as two /1s
            }
        }
        let mut out = [0u32; 32];
        for &d in dests.iter().take(100_000) {
            let (a, b, c) = (ours16.lookup(d), ours24.lookup(d), rte.lookup(d));
            if a != b || a != c {
                return Err(format!("LPM implementations disagree on {d:#x}: ours-16 {a:?}, ours-24 {b:?}, rte_lpm {c:?}"));
            }
        }
        let t16 = time(&dests, |c| c.iter().map(|&d| ours16.lookup(d).unwrap_or(0) as u64).sum());
        let t24 = time(&dests, |c| c.iter().map(|&d| ours24.lookup(d).unwrap_or(0) as u64).sum());
        let tb = time(&dests, |c| {
            rte.lookup_bulk(c, &mut out);
            out[..c.len()].iter().map(|&v| v as u64).sum()
        });
        let ts = time(&dests, |c| c.iter().map(|&d| rte.lookup(d).unwrap_or(0) as u64).sum());
        println!("{:<8} {:>8} {:>12.2} {:>12.2} {:>14.2} {:>14.2} {:>10} KiB", "ipv4", n, t16, t24, tb, ts, ours16.memory() / 1024);
        println!("RESULT lpm family=ipv4 routes={n} ours16_ns={t16:.2} ours24_ns={t24:.2} rte_bulk_ns={tb:.2} rte_single_ns={ts:.2}");
    }

    for n in [16usize, routes6] {
        let routes = v6_routes(n, &mut rng);
        let dests = v6_dests(&routes, lookups, &mut rng);
        let ours = Lpm::<u128, 16>::build(&routes);
        let ours24 = Lpm::<u128, 24>::build(&routes);
        let mut rte = DpdkLpm6::new(&format!("bench6_{n}"), n as u32 * 2, 1 << 18).map_err(|e| e.to_string())?;
        for &(p, l, v) in &routes {
            if l == 0 {
                rte.add(&0u128.to_be_bytes(), 1, v).map_err(|e| e.to_string())?;
                rte.add(&(1u128 << 127).to_be_bytes(), 1, v).map_err(|e| e.to_string())?;
            } else {
                rte.add(&p.to_be_bytes(), l, v).map_err(|e| e.to_string())?;
            }
        }
        let bytes: Vec<[u8; 16]> = dests.iter().map(|d| d.to_be_bytes()).collect();
        for (&d, b) in dests.iter().zip(&bytes).take(100_000) {
            let (a, c) = (ours.lookup(d), rte.lookup(b));
            if a != c {
                return Err(format!("LPM6 implementations disagree on {d:#x}: ours {a:?}, rte_lpm6 {c:?}"));
            }
        }
        let mut out = [0i32; 32];
        let t16 = time(&dests, |c| c.iter().map(|&d| ours.lookup(d).unwrap_or(0) as u64).sum());
        let t24 = time(&dests, |c| c.iter().map(|&d| ours24.lookup(d).unwrap_or(0) as u64).sum());
        let tb = time(&bytes, |c| {
            rte.lookup_bulk(c, &mut out);
            out[..c.len()].iter().map(|&v| v as u64).sum()
        });
        let ts = time(&bytes, |c| c.iter().map(|b| rte.lookup(b).unwrap_or(0) as u64).sum());
        println!("{:<8} {:>8} {:>12.2} {:>12.2} {:>14.2} {:>14.2} {:>10} KiB", "ipv6", n, t16, t24, tb, ts, ours.memory() / 1024);
        println!("RESULT lpm family=ipv6 routes={n} ours16_ns={t16:.2} ours24_ns={t24:.2} rte_bulk_ns={tb:.2} rte_single_ns={ts:.2}");
    }
    Ok(())
}
