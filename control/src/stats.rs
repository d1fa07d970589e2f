//! Turning engine snapshots into what an operator reads: the periodic
//! one-line summary, the final report, and per-thread CPU use.

use std::fmt::Write;

use dataplane::counters::DropReason;
use dataplane::engine::{ShutdownReport, Snapshot};

/// Packets per second with an SI prefix: `30.12 Mpps`, `812.0 kpps`, `7 pps`.
pub fn rate(pps: f64) -> String {
    if pps >= 1e6 {
        format!("{:.2} Mpps", pps / 1e6)
    } else if pps >= 1e3 {
        format!("{:.1} kpps", pps / 1e3)
    } else {
        format!("{pps:.0} pps")
    }
}

/// CPU use of each worker between two readings, in percent of one core.
pub struct CpuMeter {
    last: Vec<Option<f64>>,
}

impl CpuMeter {
    pub fn new(snap: &Snapshot) -> Self {
        CpuMeter { last: snap.workers.iter().map(|w| w.cpu_seconds).collect() }
    }

    /// Percent of one core each worker used over `secs`, since the last call.
    pub fn sample(&mut self, snap: &Snapshot, secs: f64) -> Vec<Option<f64>> {
        let now: Vec<Option<f64>> = snap.workers.iter().map(|w| w.cpu_seconds).collect();
        let pct = now
            .iter()
            .zip(&self.last)
            .map(|(n, l)| match (n, l) {
                (Some(n), Some(l)) if secs > 0.0 => Some(100.0 * (n - l) / secs),
                _ => None,
            })
            .collect();
        self.last = now;
        pct
    }
}

fn pct(p: Option<f64>) -> String {
    p.map_or("?".into(), |p| format!("{p:.0}%"))
}

/// The one-line summary printed every interval.
pub fn summary_line(names: &[String], prev: &Snapshot, cur: &Snapshot, secs: f64, uptime: f64, cpu: &[Option<f64>]) -> String {
    let mut s = format!("[{uptime:>6.0}s]");
    for (i, name) in names.iter().enumerate() {
        let (p, c) = (&prev.ports[i], &cur.ports[i]);
        let rx = (c.rx_packets - p.rx_packets) as f64 / secs;
        let tx = (c.tx_packets - p.tx_packets) as f64 / secs;
        let _ = write!(s, " {name} rx {} tx {} |", rate(rx), rate(tx));
    }
    let drops = |x: &Snapshot| -> u64 {
        x.ports.iter().map(|p| p.total_drops()).sum::<u64>() + x.eth.iter().map(|e| e.imissed + e.rx_nombuf).sum::<u64>()
    };
    let _ = write!(s, " drops {:.0}/s", (drops(cur) - drops(prev)) as f64 / secs);
    let _ = write!(s, " | cpu");
    for (w, c) in cur.workers.iter().zip(cpu) {
        let _ = write!(s, " lcore{} {}", w.lcore, pct(*c));
    }
    s
}

/// The final report: totals per port, drops by reason, workers, pools.
pub fn final_report(names: &[String], report: &ShutdownReport, tsc_hz: u64, secs: f64, cpu: &[Option<f64>]) -> String {
    let last = &report.last;
    let mut s = String::new();
    let _ = writeln!(
        s,
        "{:<12} {:>14} {:>16} {:>14} {:>16} {:>10} {:>10} {:>10} {:>10} {:>10}",
        "port", "rx_packets", "nic_rx_bytes", "tx_packets", "nic_tx_bytes", "drops", "nic_missed", "nic_nombuf", "punted", "icmp_errs"
    );
    for (i, name) in names.iter().enumerate() {
        let (p, e) = (&last.ports[i], &last.eth[i]);
        let _ = writeln!(
            s,
            "{name:<12} {:>14} {:>16} {:>14} {:>16} {:>10} {:>10} {:>10} {:>10} {:>10}",
            p.rx_packets,
            e.ibytes,
            p.tx_packets,
            e.obytes,
            p.total_drops(),
            e.imissed,
            e.rx_nombuf,
            p.punted,
            p.icmp_errors
        );
    }
    let mut any = false;
    for (i, name) in names.iter().enumerate() {
        for r in DropReason::ALL {
            let n = last.ports[i].drops[*r as usize];
            if n > 0 {
                if !any {
                    let _ = writeln!(s, "drops by reason:");
                    any = true;
                }
                let _ = writeln!(s, "  {name} {} {n}", r.name());
            }
        }
    }
    if !any {
        let _ = writeln!(s, "drops by reason: none");
    }
    for (w, c) in last.workers.iter().zip(cpu) {
        let busy = if secs > 0.0 { 100.0 * w.busy_cycles as f64 / (tsc_hz as f64 * secs) } else { 0.0 };
        let cpp = if w.rx_packets > 0 { format!("{:.1}", w.busy_cycles as f64 / w.rx_packets as f64) } else { "-".into() };
        let _ = writeln!(
            s,
            "worker lcore {}: rx {} cpu {} busy {busy:.1}% cycles/packet {cpp} polls {} sleeps {}",
            w.lcore,
            w.rx_packets,
            pct(*c),
            w.polls,
            w.sleeps
        );
    }
    for p in &report.pools {
        if p.leaked() == 0 {
            let _ = writeln!(s, "mempool {}: all {} mbufs returned", p.name, p.size);
        } else {
            let _ = writeln!(s, "mempool {}: LEAK: {} of {} mbufs returned ({} missing)", p.name, p.available, p.size, p.leaked());
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use dataplane::counters::PortTotals;
    use dataplane::engine::WorkerSnapshot;

    #[test]
    fn rates_are_readable() {
        assert_eq!(rate(30_123_456.0), "30.12 Mpps");
        assert_eq!(rate(812_040.0), "812.0 kpps");
        assert_eq!(rate(7.2), "7 pps");
    }

    #[test]
    fn summary_shows_per_port_rates_and_drops() {
        let mut a = Snapshot {
            ports: vec![PortTotals::default(); 2],
            eth: vec![Default::default(); 2],
            workers: vec![WorkerSnapshot { lcore: 1, ..Default::default() }],
            tsc: 0,
            control: vec![PortTotals::default(); 2],
        };
        let mut b = a.clone();
        b.ports[0].rx_packets = 2_000_000;
        b.ports[1].tx_packets = 1_999_000;
        b.ports[1].drops[DropReason::TxFull as usize] = 1000;
        a.eth[0].imissed = 0;
        let line = summary_line(&["lan0".into(), "wan0".into()], &a, &b, 2.0, 10.0, &[Some(99.6)]);
        assert_eq!(line, "[    10s] lan0 rx 1.00 Mpps tx 0 pps | wan0 rx 0 pps tx 999.5 kpps | drops 500/s | cpu lcore1 100%");
    }
}
