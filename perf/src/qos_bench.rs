//! `patronus-perf qos-bench`: the QoS scheduler's enqueue plus dequeue,
//! ours against DPDK's `rte_sched`, on the same mbufs, packet size and
//! class mix, in one run. Both schedulers are set to a rate far above what
//! one core can push (1 Tbit/s), so the figure is the scheduling work
//! per packet, not the shaping: bursts of 32 are classified, enqueued and
//! dequeued again, in a loop.
//!
//! rte_sched is set up like ours: one pipe; traffic classes 0 and 1
//! (strict) carry Control and RealTime; the best-effort class's four WRR
//! queues (8:4:2:1) carry Interactive, Streaming, Standard and Bulk.

use std::hint::black_box;
use std::time::Instant;

use dataplane::dpdk::{DpdkSched, Eal, Mbuf, Mempool};
use dataplane::packet::Burst;
use dataplane::qos::{PortQosConf, PortShaper, Scheduler};
use dataplane::vocab::Class;

/// Classes of a 32-packet burst: 1 Control, 3 RealTime, 4 Interactive,
/// 6 Streaming, 10 Standard, 8 Bulk.
fn mix() -> [Class; 32] {
    let counts = [
        (Class::Control, 1),
        (Class::RealTime, 3),
        (Class::Interactive, 4),
        (Class::Streaming, 6),
        (Class::Standard, 10),
        (Class::Bulk, 8),
    ];
    let mut out = [Class::Standard; 32];
    let mut i = 0;
    // Interleaved, as traffic arrives.
    for round in 0..10 {
        for (c, n) in counts {
            if round < n && i < 32 {
                out[i] = c;
                i += 1;
            }
        }
    }
    out
}

/// rte_sched's (traffic class, queue) for a class.
fn tc_queue(c: Class) -> (u32, u32) {
    match c {
        Class::Control => (0, 0),
        Class::RealTime => (1, 0),
        other => (12, other as u32 - Class::Interactive as u32),
    }
}

pub fn run(packets: usize, size: u16, file_prefix: &str) -> Result<(), String> {
    let args =
        ["eal", "-l", "0", "--no-huge", "-m", "1024", "--no-pci", "--file-prefix", file_prefix, "--log-level=warning", "--no-telemetry"];
    let eal = Eal::init(&args).map_err(|e| e.to_string())?;
    let pool = Mempool::new_pktmbuf("qos_bench", 8191, 256, 2048 + 128, -1).map_err(|e| e.to_string())?;
    let mut free: Vec<Mbuf> = Vec::with_capacity(4096);
    for _ in 0..4096 {
        let mut m = pool.alloc().ok_or("mempool empty")?;
        m.append(size as usize).ok_or("mbuf too small")?;
        free.push(m);
    }
    let classes = mix();
    let rate_bytes = 1_000_000_000_000u64 / 8;
    let hz = eal.tsc_hz();
    let rounds = packets / 32;

    let time = |f: &mut dyn FnMut() -> usize| {
        let mut best = f64::MAX;
        for _ in 0..3 {
            let t = Instant::now();
            let moved = f();
            best = best.min(t.elapsed().as_nanos() as f64 / moved.max(1) as f64);
        }
        best
    };

    // rte_sched.
    let mut sched = DpdkSched::new(rate_bytes, 64).map_err(|e| e.to_string())?;
    let rte = time(&mut || {
        let mut moved = 0;
        let mut burst = Burst::new();
        for _ in 0..rounds {
            for c in classes {
                let mut m = free.pop().expect("mbufs circulate");
                let (tc, q) = tc_queue(c);
                sched.classify(&mut m, tc, q);
                let _ = burst.push(m);
            }
            sched.enqueue(&mut burst);
            let n = sched.dequeue(&mut burst);
            moved += n;
            for m in burst.drain() {
                free.push(m);
            }
            // What the scheduler kept queued comes out in later rounds; top up the free list.
            while free.len() < 64 {
                let mut b = Burst::new();
                if sched.dequeue(&mut b) == 0 {
                    break;
                }
                for m in b.drain() {
                    free.push(m);
                }
            }
        }
        black_box(moved)
    });
    // Drain it back.
    loop {
        let mut b = Burst::new();
        if sched.dequeue(&mut b) == 0 {
            break;
        }
        free.extend(b.drain());
    }
    drop(sched);

    // Ours.
    let mut conf = PortQosConf::new(rate_bytes * 8);
    for k in conf.classes.iter_mut() {
        k.queue = 64;
        k.codel = false;
    }
    let mut ours = Scheduler::<Mbuf>::new(PortShaper::new(conf, hz), hz);
    let lens: [usize; 32] = [size as usize; 32];
    let us = time(&mut || {
        let mut moved = 0;
        for _ in 0..rounds {
            let now = dataplane::dpdk::tsc();
            for (i, c) in classes.iter().enumerate() {
                let m = free.pop().expect("mbufs circulate");
                if let Err(m) = ours.enqueue(m, lens[i], *c, now) {
                    free.push(m);
                }
            }
            moved += ours.dequeue(now, 32, |m, _| free.push(m), |m, _| drop(m));
            while free.len() < 64 {
                let n = ours.dequeue(dataplane::dpdk::tsc(), 32, |m, _| free.push(m), |m, _| drop(m));
                if n == 0 {
                    break;
                }
            }
        }
        black_box(moved)
    });
    ours.dequeue(u64::MAX / 2, usize::MAX, |m, _| free.push(m), |m, _| drop(m));
    println!(
        "qos-bench: enqueue + dequeue of {size}-byte mbufs in bursts of 32, class mix 1:3:4:6:10:8, {rounds} bursts per pass, best of 3"
    );
    println!("  rte_sched:           {rte:>6.1} ns/packet  {:>6.2} Mpps", 1e3 / rte);
    println!("  patronus Scheduler:  {us:>6.1} ns/packet  {:>6.2} Mpps   (ratio {:.2})", 1e3 / us, rte / us);
    println!("RESULT qos size={size} rte_sched_mpps={:.2} patronus_mpps={:.2} ratio={:.3}", 1e3 / rte, 1e3 / us, rte / us);
    drop(free);
    Ok(())
}
