//! The scheduler on a virtual clock (nanoseconds): sources offer traffic
//! per class at set rates, a worker polls every 10 µs, and the test
//! measures what leaves.

use super::*;

const HZ: u64 = 1_000_000_000;
const TICK: u64 = 10_000;

/// A packet: its class and when it was offered.
type Pkt = (Class, u64);

#[derive(Clone, Copy)]
struct Source {
    class: Class,
    bps: u64,
    size: usize,
}

#[derive(Default, Clone, Copy)]
struct Out {
    bytes: u64,
    packets: u64,
    max_delay: u64,
    delay_sum: u64,
    drops: u64,
}

/// Runs `secs` of virtual time; counts what leaves after `warm` seconds.
fn simulate(scheds: &mut [Scheduler<Pkt>], sources: &[Source], secs: f64, warm: f64) -> [Out; CLASSES] {
    let mut out = [Out::default(); CLASSES];
    let mut owed = vec![0f64; sources.len()];
    let (end, warm) = ((secs * HZ as f64) as u64, (warm * HZ as f64) as u64);
    let mut now = 0;
    let mut k = 0usize;
    while now < end {
        now += TICK;
        for (i, s) in sources.iter().enumerate() {
            owed[i] += s.bps as f64 / 8.0 * TICK as f64 / HZ as f64;
            while owed[i] >= s.size as f64 {
                owed[i] -= s.size as f64;
                // Spread over the workers.
                k += 1;
                let n = scheds.len();
                let _ = scheds[k % n].enqueue((s.class, now), s.size, s.class, now);
            }
        }
        for sch in scheds.iter_mut() {
            let sizes: [usize; CLASSES] = std::array::from_fn(|c| sources.iter().find(|s| s.class as usize == c).map_or(0, |s| s.size));
            let mut drops = [0u64; CLASSES];
            sch.dequeue(
                now,
                64,
                |(class, at), _| {
                    if now > warm {
                        let o = &mut out[class as usize];
                        o.bytes += sizes[class as usize] as u64;
                        o.packets += 1;
                        o.max_delay = o.max_delay.max(now - at);
                        o.delay_sum += now - at;
                    }
                },
                |(class, _), _| drops[class as usize] += 1,
            );
            if now > warm {
                for c in 0..CLASSES {
                    out[c].drops += drops[c];
                }
            }
        }
    }
    out
}

fn sched(conf: &PortQosConf, workers: usize) -> Vec<Scheduler<Pkt>> {
    let shaper = PortShaper::new(conf.clone(), HZ);
    (0..workers).map(|_| Scheduler::new(shaper.clone(), HZ)).collect()
}

fn share(out: &[Out; CLASSES], c: Class) -> f64 {
    let total: u64 = out.iter().map(|o| o.bytes).sum();
    out[c as usize].bytes as f64 / total as f64
}

#[test]
fn the_port_rate_holds_within_one_percent_from_10_mbps_to_10_gbps() {
    for rate in [10_000_000u64, 100_000_000, 1_000_000_000, 10_000_000_000] {
        let conf = PortQosConf::new(rate);
        let mut s = sched(&conf, 1);
        let out = simulate(&mut s, &[Source { class: Class::Bulk, bps: rate * 2, size: 1500 }], 1.2, 0.2);
        let got = out[Class::Bulk as usize].bytes as f64 * 8.0;
        let err = (got - rate as f64).abs() / rate as f64;
        assert!(err < 0.01, "{rate} bit/s shaped to {got:.0} bit/s ({:.2}%)", err * 100.0);
    }
}

#[test]
fn four_workers_share_the_rate_within_two_percent() {
    let rate = 200_000_000;
    let conf = PortQosConf::new(rate);
    let mut s = sched(&conf, 4);
    let out = simulate(&mut s, &[Source { class: Class::Standard, bps: rate * 2, size: 1200 }], 1.2, 0.2);
    let got = out[Class::Standard as usize].bytes as f64 * 8.0;
    assert!((got - rate as f64).abs() / (rate as f64) < 0.02, "{got:.0} bit/s through 4 workers");
}

#[test]
fn backlogged_classes_share_by_weight_within_three_percent() {
    let rate = 100_000_000;
    let mut conf = PortQosConf::new(rate);
    for c in conf.classes.iter_mut() {
        c.codel = false;
    }
    let mut s = sched(&conf, 1);
    let srcs: Vec<Source> = [Class::Interactive, Class::Streaming, Class::Standard, Class::Bulk]
        .iter()
        .map(|&class| Source { class, bps: rate, size: 1000 })
        .collect();
    let out = simulate(&mut s, &srcs, 2.0, 0.5);
    for (class, w) in [(Class::Interactive, 8.0), (Class::Streaming, 4.0), (Class::Standard, 2.0), (Class::Bulk, 1.0)] {
        let want = w / 15.0;
        let got = share(&out, class);
        assert!((got - want).abs() / want < 0.03, "{class:?}: share {got:.4}, want {want:.4}");
    }
}

#[test]
fn realtime_delay_stays_bounded_while_bulk_is_oversubscribed_twice() {
    let rate = 50_000_000;
    let conf = PortQosConf::new(rate);
    let mut s = sched(&conf, 1);
    let out = simulate(
        &mut s,
        &[Source { class: Class::RealTime, bps: 160_000, size: 200 }, Source { class: Class::Bulk, bps: rate * 2, size: 1500 }],
        2.0,
        0.5,
    );
    let rt = out[Class::RealTime as usize];
    let bulk = out[Class::Bulk as usize];
    assert!(rt.packets > 100 && rt.drops == 0);
    // At most one poll interval plus one bulk frame already on the wire.
    let bound = TICK + 1500 * 8 * HZ / rate;
    assert!(rt.max_delay <= bound, "RealTime waited up to {} µs (bound {} µs)", rt.max_delay / 1000, bound / 1000);
    assert!(bulk.delay_sum / bulk.packets > 10 * rt.max_delay, "bulk queues, RealTime does not");
}

#[test]
fn codel_drops_under_a_standing_queue_and_not_for_a_short_burst() {
    let rate = 10_000_000;
    let conf = PortQosConf::new(rate);
    // Standing: an unresponsive source 10% over the rate for 3 s (CoDel
    // controls responsive flows; a 2x flood ends in tail drops by design).
    let mut s = sched(&conf, 1);
    let out = simulate(&mut s, &[Source { class: Class::Standard, bps: rate * 11 / 10, size: 1500 }], 6.0, 4.0);
    let o = out[Class::Standard as usize];
    assert!(o.drops > 100, "CoDel dropped {}", o.drops);
    assert_eq!(s[0].counters.classes[Class::Standard as usize].tail_drops.get(), 0, "CoDel keeps the queue short of its bound");
    let mean = o.delay_sum / o.packets;
    assert!(mean < 30_000_000, "mean queueing delay {} ms under CoDel", mean / 1_000_000);
    // The same without CoDel: the queue keeps growing toward its bound (1024 frames, 1.2 s).
    let mut plain = conf.clone();
    plain.classes[Class::Standard as usize].codel = false;
    let mut s = sched(&plain, 1);
    let o = simulate(&mut s, &[Source { class: Class::Standard, bps: rate * 11 / 10, size: 1500 }], 6.0, 4.0)[Class::Standard as usize];
    assert!(o.delay_sum / o.packets > 300_000_000, "without CoDel: {} ms", o.delay_sum / o.packets / 1_000_000);
    // A burst of 20 frames that drains in 24 ms: above the 5 ms target, but for less than an interval.
    let mut s = sched(&conf, 1);
    for i in 0..20 {
        s[0].enqueue((Class::Standard, 0), 1500, Class::Standard, 0).unwrap_or_else(|_| panic!("{i}"));
    }
    let (mut sent, mut dropped) = (0, 0);
    let mut now = 0;
    while now < 200_000_000 {
        now += TICK;
        sent += s[0].dequeue(now, 64, |_, _| {}, |_, _| dropped += 1);
    }
    assert_eq!((sent, dropped), (20, 0));
}

#[test]
fn minimum_rates_prevent_starvation_and_the_priority_cap_holds() {
    let rate = 100_000_000;
    // RealTime may take everything by strict priority; Bulk has a 10% floor.
    let mut conf = PortQosConf::new(rate);
    conf.priority_cap_pct = 100;
    conf.classes[Class::Bulk as usize].min_bps = rate / 10;
    conf.classes[Class::Bulk as usize].codel = false;
    let srcs = [Source { class: Class::RealTime, bps: rate * 2, size: 1000 }, Source { class: Class::Bulk, bps: rate, size: 1000 }];
    let out = simulate(&mut sched(&conf, 1), &srcs, 2.0, 0.5);
    let bulk = share(&out, Class::Bulk);
    assert!((bulk - 0.10).abs() < 0.01, "Bulk share with a 10% minimum: {bulk:.4}");
    // Without the floor it starves.
    conf.classes[Class::Bulk as usize].min_bps = 0;
    let out = simulate(&mut sched(&conf, 1), &srcs, 2.0, 0.5);
    assert!(share(&out, Class::Bulk) < 0.005);
    // With the default 30% cap, RealTime gets its 30% plus its weighted share of the rest (8:1).
    conf.priority_cap_pct = 30;
    let out = simulate(&mut sched(&conf, 1), &srcs, 2.0, 0.5);
    let want = 0.30 + 0.70 * 8.0 / 9.0;
    let rt = share(&out, Class::RealTime);
    assert!((rt - want).abs() < 0.01, "RealTime share under a 30% cap: {rt:.4}, want {want:.4}");
}

#[test]
fn maximum_rates_cap_a_class_even_when_the_link_is_idle() {
    let rate = 100_000_000;
    let mut conf = PortQosConf::new(rate);
    conf.classes[Class::Streaming as usize].max_bps = 20_000_000;
    let out = simulate(&mut sched(&conf, 1), &[Source { class: Class::Streaming, bps: rate, size: 1000 }], 1.5, 0.5);
    let got = out[Class::Streaming as usize].bytes as f64 * 8.0;
    assert!((got - 20e6).abs() / 20e6 < 0.01, "{got:.0} bit/s under a 20 Mbit/s ceiling");
}

#[test]
fn a_full_queue_tail_drops_and_hands_the_packet_back() {
    let mut conf = PortQosConf::new(1_000_000);
    conf.classes[Class::Interactive as usize].queue = 2;
    let mut s = sched(&conf, 1);
    assert!(s[0].enqueue((Class::Interactive, 0), 100, Class::Interactive, 0).is_ok());
    assert!(s[0].enqueue((Class::Interactive, 0), 100, Class::Interactive, 0).is_ok());
    assert_eq!(s[0].enqueue((Class::Interactive, 7), 100, Class::Interactive, 0).unwrap_err().1, 7);
    assert_eq!(s[0].counters.classes[Class::Interactive as usize].tail_drops.get(), 1);
    assert_eq!(s[0].depth(Class::Interactive), 2);
}

#[test]
fn dscp_marking_rewrites_the_field_and_keeps_checksums_valid() {
    // IPv4 behind one VLAN tag.
    let mut f = vec![0u8; 12];
    f.extend([0x81, 0x00, 0x00, 0x64, 0x08, 0x00]);
    let mut ip = vec![0x45, 0x02, 0, 40, 0, 1, 0, 0, 64, 6, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2];
    let c = crate::wire::checksum::finish(crate::wire::checksum::sum(&ip));
    ip[10..12].copy_from_slice(&c.to_be_bytes());
    f.extend(&ip);
    f.extend([0u8; 20]);
    assert!(crate::wire::frame::set_dscp(&mut f, 46));
    assert_eq!(f[19], 46 << 2 | 2, "DSCP EF, ECN bits kept");
    assert_eq!(crate::wire::checksum::sum(&f[18..38]), 0xffff, "header checksum still verifies");
    // IPv6: traffic class across the first two bytes.
    let mut f6 = vec![0u8; 12];
    f6.extend([0x86, 0xdd, 0x60, 0x1f, 0xff, 0xff]);
    f6.extend([0u8; 38]);
    assert!(crate::wire::frame::set_dscp(&mut f6, 34));
    let tc = (f6[14] & 0x0f) << 4 | f6[15] >> 4;
    assert_eq!((tc >> 2, tc & 3, f6[14] >> 4, f6[15] & 0x0f, f6[16]), (34, 1, 6, 0xf, 0xff), "AF41, ECN and flow label kept");
    assert!(!crate::wire::frame::set_dscp(&mut [0u8; 13], 1));
    let mut arp = vec![0u8; 12];
    arp.extend([0x08, 0x06]);
    assert!(!crate::wire::frame::set_dscp(&mut arp, 1));
}

#[test]
fn trusted_ports_give_packets_the_class_their_dscp_asks_for() {
    use crate::packet::{HeapPool, Packet};
    use crate::pipeline::{Meta, Metas, Stage};
    let pool = HeapPool::new();
    let frame = |tos: u8| {
        let mut f = vec![0u8; 14 + 20];
        f[12..14].copy_from_slice(&[0x08, 0x00]);
        f[14] = 0x45;
        f[15] = tos;
        pool.packet(&f)
    };
    let mut t = DscpTrust::new(&[0]);
    let mut pkts = vec![frame(46 << 2), frame(10 << 2), frame(0), frame(48 << 2)];
    let mut metas = Metas::new(4);
    t.process_burst(0, &mut pkts, &mut metas);
    let classes: Vec<_> = (0..4).map(|i| metas.get(i).class()).collect();
    assert_eq!(classes, [Some(Class::RealTime), Some(Class::Bulk), None, None], "CS6 is not Control from outside");
    // An untrusted port: nothing changes.
    let mut metas = Metas::new(4);
    t.process_burst(1, &mut pkts, &mut metas);
    assert_eq!(metas.uniform(), Some(Meta::NEW));
    // IPv6 traffic class.
    let mut f6 = vec![0u8; 14 + 40];
    f6[12..14].copy_from_slice(&[0x86, 0xdd]);
    f6[14] = 0x60 | (46 << 2) >> 4;
    f6[15] = ((46u8 << 2) & 0x0f) << 4;
    let mut p = pool.packet(&f6);
    let mut m = Meta::NEW;
    t.process(0, &mut p, &mut m);
    assert_eq!(m.class(), Some(Class::RealTime));
    assert!(!p.data().is_empty());
}

/// DSCP trust reads the IP header behind 802.1Q and QinQ tags, both families.
#[test]
fn trusted_dscp_is_read_behind_vlan_tags() {
    use crate::flow::stage::tests::{tagged_udp, TAGS};
    use crate::packet::HeapPool;
    use crate::pipeline::{Metas, Stage};
    let pool = HeapPool::new();
    let mut t = DscpTrust::new(&[0]);
    for (name, tags) in TAGS {
        for v6 in [false, true] {
            let mut pkts: Vec<_> = [46, 34, 26, 10, 48, 0].iter().map(|&d| pool.packet(&tagged_udp(tags, v6, d))).collect();
            let mut metas = Metas::new(pkts.len());
            t.process_burst(0, &mut pkts, &mut metas);
            let classes: Vec<_> = (0..pkts.len()).map(|i| metas.get(i).class()).collect();
            let expect = [Some(Class::RealTime), Some(Class::Interactive), Some(Class::Streaming), Some(Class::Bulk), None, None];
            assert_eq!(classes, expect, "{name}, IPv{}", if v6 { 6 } else { 4 });
        }
    }
}
