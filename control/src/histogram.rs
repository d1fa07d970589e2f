//! Prometheus histograms with classic (fixed) buckets, kept by the control
//! thread and rendered in the exposition beside the `metrics` registry's
//! series. Unlike the quantile gauges they sum across appliances and over
//! time (`histogram_quantile(0.99, sum by (le) (rate(..._bucket[5m])))`).
//!
//! The latency histograms are fed from the workers' hdrhistograms (each
//! bucket gets the recorded values at or below its bound), the path ones
//! from each probe answer and each outage.

use std::fmt::Write;
use std::sync::Mutex;

/// Bucket bounds (upper, inclusive) of one family; `+Inf` is implied.
pub type Bounds = &'static [f64];

/// Packet residence and poll-loop iterations: microseconds to milliseconds.
pub const FORWARDING_SECONDS: Bounds = &[1e-6, 2.5e-6, 5e-6, 1e-5, 2.5e-5, 5e-5, 1e-4, 2.5e-4, 5e-4, 1e-3, 2.5e-3, 5e-3, 1e-2];
/// Cycles per packet in a stage.
pub const STAGE_CYCLES: Bounds = &[25.0, 50.0, 100.0, 250.0, 500.0, 1e3, 2.5e3, 5e3, 1e4, 2.5e4, 1e5];
/// Path round trips: a LAN hop to an intercontinental path under load.
pub const PATH_RTT_SECONDS: Bounds = &[5e-4, 1e-3, 2.5e-3, 5e-3, 1e-2, 2.5e-2, 5e-2, 0.1, 0.25, 0.5, 1.0, 2.5];
/// Path outages: a failover's probes to a long outage.
pub const OUTAGE_SECONDS: Bounds = &[0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0];

/// One labelled histogram's counts.
#[derive(Clone, Debug, PartialEq)]
pub struct Buckets {
    bounds: Bounds,
    /// Per bucket, not cumulative; the last is `+Inf`.
    counts: Vec<u64>,
    pub sum: f64,
    pub count: u64,
}

impl Buckets {
    pub fn new(bounds: Bounds) -> Buckets {
        Buckets { bounds, counts: vec![0; bounds.len() + 1], sum: 0.0, count: 0 }
    }

    pub fn observe(&mut self, v: f64) {
        self.observe_n(v, 1);
    }

    /// `n` observations of `v`.
    pub fn observe_n(&mut self, v: f64, n: u64) {
        let i = self.bounds.iter().position(|&b| v <= b).unwrap_or(self.bounds.len());
        self.counts[i] += n;
        self.sum += v * n as f64;
        self.count += n;
    }

    /// Adds an hdrhistogram's values, scaled by `scale` (cycles to seconds).
    pub fn add_hdr(&mut self, h: &hdrhistogram::Histogram<u64>, scale: f64) {
        for v in h.iter_recorded() {
            self.observe_n(h.highest_equivalent(v.value_iterated_to()) as f64 * scale, v.count_at_value());
        }
    }

    /// The cumulative count at or below each bound, then `+Inf`.
    pub fn cumulative(&self) -> Vec<u64> {
        self.counts
            .iter()
            .scan(0, |acc, c| {
                *acc += c;
                Some(*acc)
            })
            .collect()
    }

    /// The exposition lines of this histogram under `name` with `labels`.
    pub fn render(&self, name: &str, labels: &[(&str, String)], out: &mut String) {
        let base: String = labels.iter().map(|(k, v)| format!("{k}=\"{}\",", escape(v))).collect();
        for (i, c) in self.cumulative().into_iter().enumerate() {
            let le = self.bounds.get(i).map_or("+Inf".to_owned(), |b| b.to_string());
            let _ = writeln!(out, "{name}_bucket{{{base}le=\"{le}\"}} {c}");
        }
        let base = base.trim_end_matches(',');
        let set = if base.is_empty() { String::new() } else { format!("{{{base}}}") };
        let _ = writeln!(out, "{name}_sum{set} {}", self.sum);
        let _ = writeln!(out, "{name}_count{set} {}", self.count);
    }
}

/// One counter sample line.
pub fn counter_line(name: &str, labels: &[(&str, String)], value: u64, out: &mut String) {
    let set: Vec<String> = labels.iter().map(|(k, v)| format!("{k}=\"{}\"", escape(v))).collect();
    let _ = writeln!(out, "{name}{{{}}} {value}", set.join(","));
}

/// The `# HELP` and `# TYPE` lines of a histogram family.
pub fn header(name: &str, help: &str, out: &mut String) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} histogram");
}

fn escape(v: &str) -> String {
    v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

/// What the control thread rendered last, by part ("latency", "paths").
static RENDERED: Mutex<Vec<(&'static str, String)>> = Mutex::new(Vec::new());

/// Replaces part `part` of the histograms' exposition (control thread).
pub fn publish(part: &'static str, text: String) {
    let mut r = RENDERED.lock().unwrap_or_else(|e| e.into_inner());
    match r.iter_mut().find(|(p, _)| *p == part) {
        Some(slot) => slot.1 = text,
        None => r.push((part, text)),
    }
}

/// Every part, for the exporter's HTTP thread.
pub fn rendered() -> String {
    RENDERED.lock().unwrap_or_else(|e| e.into_inner()).iter().map(|(_, t)| t.as_str()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn observations_land_in_their_bucket_and_render_cumulatively() {
        let mut b = Buckets::new(&[1.0, 2.0]);
        b.observe(0.5);
        b.observe(1.0);
        b.observe_n(1.5, 3);
        b.observe(7.0);
        assert_eq!(b.cumulative(), vec![2, 5, 6]);
        let mut out = String::new();
        header("x_seconds", "help", &mut out);
        b.render("x_seconds", &[("path", "a\"b".to_owned())], &mut out);
        assert_eq!(
            out,
            "# HELP x_seconds help\n# TYPE x_seconds histogram\n\
             x_seconds_bucket{path=\"a\\\"b\",le=\"1\"} 2\nx_seconds_bucket{path=\"a\\\"b\",le=\"2\"} 5\n\
             x_seconds_bucket{path=\"a\\\"b\",le=\"+Inf\"} 6\nx_seconds_sum{path=\"a\\\"b\"} 13\nx_seconds_count{path=\"a\\\"b\"} 6\n"
        );
        let mut none = String::new();
        Buckets::new(&[1.0]).render("y", &[], &mut none);
        assert_eq!(none, "y_bucket{le=\"1\"} 0\ny_bucket{le=\"+Inf\"} 0\ny_sum 0\ny_count 0\n");
    }

    #[test]
    fn hdr_values_fill_the_buckets_and_agree_with_its_quantiles_within_a_bucket() {
        let mut h = hdrhistogram::Histogram::<u64>::new(3).unwrap();
        // Cycles at 1 GHz: 1..=9 µs, weighted towards the low end.
        for us in 1..=9u64 {
            h.record_n(us * 1000, 10 - us).unwrap();
        }
        let mut b = Buckets::new(FORWARDING_SECONDS);
        b.add_hdr(&h, 1e-9);
        assert_eq!(b.count, h.len());
        for q in [0.5, 0.9, 0.99] {
            let v = h.value_at_quantile(q) as f64 * 1e-9;
            let rank = (q * b.count as f64).ceil() as u64;
            let from_buckets = b.cumulative().iter().position(|&c| c >= rank).unwrap();
            let of_value = FORWARDING_SECONDS.iter().position(|&x| v <= x).unwrap_or(FORWARDING_SECONDS.len());
            assert!(from_buckets.abs_diff(of_value) <= 1, "q{q}: hdr {v} in bucket {of_value}, buckets say {from_buckets}");
        }
    }
}
