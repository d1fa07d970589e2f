//! `patronus-perf stage-bench`: a stage chain on heap packets, without EAL
//! or devices, to see what the processing itself costs per packet.

use std::hint::black_box;
use std::time::Instant;

use dataplane::packet::{HeapPacket, HeapPool, Packet};
use dataplane::pipeline::{Metas, Stage};

use crate::{pcap, route};

/// Nanoseconds per packet of the `route` stage over `n` packets of the
/// `gen-pcap` set, bursts of 32, best of 5; and of the same loop with only
/// the frame refresh (subtracted).
pub fn run(n: usize) -> Result<(), String> {
    let frames: Vec<Vec<u8>> = (0..1024).map(|i| pcap::frame(i, 60)).collect();
    let fib = route::fib([2, 0, 0, 0, 0, 0xee]);
    let mut stage = route::stage_with_clock(&fib);
    let pool = HeapPool::new();
    let mut pkts: Vec<HeapPacket> = (0..32).map(|i| pool.packet(&frames[i])).collect();
    let mut pass = |route: bool| {
        let t = Instant::now();
        let mut k = 0;
        let mut out = 0u64;
        for _ in 0..n / 32 {
            for p in pkts.iter_mut() {
                p.data_mut().copy_from_slice(&frames[k & 1023]);
                k += 1;
            }
            if route {
                let mut metas = Metas::new(32);
                Stage::<HeapPacket>::tick(&mut stage);
                stage.process_burst(0, &mut pkts, &mut metas);
                out += metas.get(0).out_port() as u64;
            }
            black_box(&mut pkts);
        }
        black_box(out);
        t.elapsed().as_nanos() as f64 / n as f64
    };
    let base = (0..5).map(|_| pass(false)).fold(f64::MAX, f64::min);
    let routed = (0..5).map(|_| pass(true)).fold(f64::MAX, f64::min);
    println!(
        "stage-bench route: {:.2} ns/packet ({:.2} with the frame refresh, {:.2} refresh alone), {n} packets",
        routed - base,
        routed,
        base
    );
    println!("RESULT stage=route ns_per_packet={:.2}", routed - base);
    Ok(())
}
