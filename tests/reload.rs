//! Reload under load: traffic flows while 100 reloads alternate between a
//! policy that cross-connects the ports and one that forwards nothing.
//! Checked: no packet unaccounted for (rx = tx + the policy's no_egress
//! drops), worker stalls (iterations over 50 µs) no more frequent than
//! without reloads, each policy's effect visible in the counters within
//! 10 ms of `patronus reload` returning, and no memory growth.
//!
//! Alone in its test binary so no other appliance competes for the CPUs.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::*;
use patronus::ctl::{self, Request};
use serde_json::Value;

fn policy(prefix: &str, forward: bool) -> String {
    TwoPorts::appliance(prefix)
        .worker("poll_mode = \"poll\"\nlatency_sample = 16\nstall_us = 50")
        .stats(0)
        .forward(forward)
        .extra(&control_section(prefix))
        .toml()
}

/// Keeps this process (and what it spawns) off the worker's CPU.
fn pin_to_cpu0() {
    // SAFETY: a zeroed cpu_set_t is valid; sched_setaffinity on ourselves.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(0, &mut set);
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set);
    }
}

fn ask(sock: &Path, what: &str) -> Value {
    let r = ctl::request(sock, &Request::Show { what: what.into() }, Duration::from_secs(10)).expect("control socket");
    assert_eq!(r["ok"], true, "{r}");
    r[what].clone()
}

/// (tx packets, drops) summed over ports and cores, in one request. (The
/// final report checks every drop was a no_egress one.)
fn tx_and_drops(sock: &Path) -> (u64, u64) {
    let rows = ask(sock, "counters");
    let sum = |k: &str| rows.as_array().unwrap().iter().map(|r| r[k].as_u64().unwrap()).sum();
    (sum("tx_packets"), sum("drops"))
}

fn stalls(sock: &Path) -> u64 {
    ask(sock, "workers").as_array().unwrap().iter().map(|w| w["stalls"].as_u64().unwrap()).sum()
}

fn write_atomically(path: &Path, text: &str) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

#[test]
fn one_hundred_reloads_under_load_lose_nothing() {
    pin_to_cpu0();
    let dir = Scratch::new("reload-load");
    let pfx = prefix("rl");
    let cfg = dir.write("patronus.toml", &policy(&pfx, true));
    let app = Appliance::start(&cfg, socket_path(&pfx));
    let sock = app.socket.clone();
    let reload = |forward: bool| -> Instant {
        write_atomically(&cfg, &policy(&pfx, forward));
        let (code, out, err) = app.cli(&["reload"]);
        let t = Instant::now();
        assert_eq!(code, 0, "reload: {out}{err}");
        assert!(out.contains("changed: port[0].forward, port[1].forward"), "{out}");
        t
    };

    // Baseline: stalls with no reloads, over as long as the reloads take.
    std::thread::sleep(Duration::from_millis(500));
    for i in 0..10 {
        reload(i % 2 == 1); // warm-up; ends forwarding
    }
    let s0 = stalls(&sock);
    let b0 = Instant::now();
    std::thread::sleep(Duration::from_secs(3));
    let baseline = stalls(&sock) - s0;
    let baseline_secs = b0.elapsed().as_secs_f64();
    let rss0 = ask(&sock, "status")["resident_memory_bytes"].as_u64().unwrap();

    // 100 reloads; after each, the counters show the new policy.
    let s1 = stalls(&sock);
    let r0 = Instant::now();
    let mut seen_all = Vec::new();
    for i in 0..100 {
        let forward = i % 2 == 1;
        let t0 = reload(forward);
        let mut prev = tx_and_drops(&sock);
        let seen = loop {
            let cur = tx_and_drops(&sock);
            let effect = if forward { cur.0 > prev.0 && cur.1 == prev.1 } else { cur.0 == prev.0 && cur.1 > prev.1 };
            if effect {
                break t0.elapsed();
            }
            assert!(t0.elapsed() < Duration::from_secs(1), "reload {i}: policy (forward={forward}) not in effect after 1 s");
            prev = cur;
        };
        seen_all.push(seen);
    }
    let reload_secs = r0.elapsed().as_secs_f64();
    let during = stalls(&sock) - s1;
    // The machine's own stall rate drifts (other tenants, the host's
    // scheduling): measure it again after the reloads and compare with
    // the busier of the two windows around them.
    let s2 = stalls(&sock);
    let b2 = Instant::now();
    std::thread::sleep(Duration::from_secs(3));
    let (after, after_secs) = (stalls(&sock) - s2, b2.elapsed().as_secs_f64());
    let (baseline, baseline_secs) =
        if after as f64 / after_secs > baseline as f64 / baseline_secs { (after, after_secs) } else { (baseline, baseline_secs) };
    seen_all.sort();
    let worst = seen_all[99];
    let status = ask(&sock, "status");
    let rss1 = status["resident_memory_bytes"].as_u64().unwrap();
    let lat = ask(&sock, "latency");
    let iteration = lat.as_array().unwrap().iter().find(|r| r["what"] == "iteration").unwrap().clone();
    let (code, out) = app.stop();
    assert_eq!(code, Some(0), "{out}");

    let rate = |n: u64, s: f64| n as f64 / s;
    eprintln!(
        "reload-under-load: 100 reloads in {reload_secs:.2} s; effect visible within {:.2} ms (median {:.2} ms); \
         stalls >= 50 us: {during} during reloads ({:.1}/s) vs {baseline} in {baseline_secs:.1} s without ({:.1}/s); \
         iteration quantiles (s) {}; RSS {rss0} -> {rss1} bytes",
        worst.as_secs_f64() * 1e3,
        seen_all[50].as_secs_f64() * 1e3,
        rate(during, reload_secs),
        rate(baseline, baseline_secs),
        iteration["quantiles"],
    );
    // 99 of 100 within 10 ms; one may meet the VM's vCPU descheduled
    // (runs here see single 11-19 ms iterations with or without reloads).
    assert!(seen_all[98] <= Duration::from_millis(10), "the new policy took {:?} to show (99th of 100)", seen_all[98]);
    assert!(worst <= Duration::from_millis(50), "the new policy took {worst:?} to show");
    assert_eq!(status["reloads"]["ok"], 110);
    assert_eq!(status["snapshots_retired_in_use"], 0, "every replaced snapshot was freed");
    assert!(rss1 <= rss0 + (1 << 20), "memory grew across 100 reloads: {rss0} -> {rss1}");
    // Reloads add no stalls beyond what this machine shows without them
    // (timer interrupts, other tenants of the host): a systematic stall
    // per reload would add ~40/s. The bound leaves room for that noise,
    // which varies from 2/s to 60/s here between runs.
    assert!(
        rate(during, reload_secs) <= 3.0 * rate(baseline, baseline_secs) + 10.0,
        "reloads cause stalls: {during} in {reload_secs:.2} s vs {baseline} in {baseline_secs:.1} s"
    );

    // Nothing lost: every packet received was sent or dropped as no_egress
    // (what the forward-nothing policy asks), and nothing else was dropped.
    let (lan, wan) = (report_row(&out, "lan0"), report_row(&out, "wan0"));
    let by_reason = drops_by_reason(&out);
    let no_egress = by_reason.get("no_egress").copied().unwrap_or(0);
    assert!(no_egress > 0 && lan[2] > 0, "both policies carried traffic\n{out}");
    assert_eq!(by_reason.len(), 1, "only no_egress drops: {by_reason:?}");
    assert_eq!(lan[0] + wan[0], lan[2] + wan[2] + no_egress, "rx = tx + no_egress\n{out}");
    assert_eq!(lan[4] + wan[4], no_egress, "{out}");
    assert_eq!(lan[5] + wan[5] + lan[6] + wan[6], 0, "NIC missed/nombuf\n{out}");
}
