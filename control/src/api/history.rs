//! The short history behind the dashboard's charts: per path and per
//! port, the last 15 minutes at one sample a second, in fixed memory. The
//! control thread records a sample a second; `show history` reads it.

use serde_json::{json, Value};

/// Samples kept per series: 15 minutes at 1 s.
pub const DEPTH: usize = 900;

/// Four figures per sample; NaN where there is no figure (no reply yet).
#[derive(Clone, Copy, Debug)]
struct Sample {
    unix: f64,
    v: [f32; 4],
}

/// One series: a ring of [`DEPTH`] samples, allocated once.
pub struct Ring {
    samples: Box<[Sample]>,
    head: usize,
    len: usize,
}

impl Default for Ring {
    fn default() -> Self {
        Ring { samples: vec![Sample { unix: 0.0, v: [f32::NAN; 4] }; DEPTH].into_boxed_slice(), head: 0, len: 0 }
    }
}

impl Ring {
    pub fn push(&mut self, unix: f64, v: [f32; 4]) {
        self.samples[self.head] = Sample { unix, v };
        self.head = (self.head + 1) % DEPTH;
        self.len = (self.len + 1).min(DEPTH);
    }

    /// The last `n` samples, oldest first, as columns named by `names`.
    fn columns(&self, names: &[&str; 4], n: usize) -> Value {
        let n = n.min(self.len);
        let start = (self.head + DEPTH - n) % DEPTH;
        let at = |k: usize| &self.samples[(start + k) % DEPTH];
        let num = |x: f32| if x.is_finite() { json!((x as f64 * 1000.0).round() / 1000.0) } else { Value::Null };
        let mut o = serde_json::Map::new();
        o.insert("unix".into(), json!((0..n).map(|k| at(k).unix.round()).collect::<Vec<_>>()));
        for (c, name) in names.iter().enumerate() {
            o.insert((*name).into(), json!((0..n).map(|k| num(at(k).v[c])).collect::<Vec<_>>()));
        }
        Value::Object(o)
    }
}

pub const PATH_COLUMNS: [&str; 4] = ["rtt_p50_ms", "rtt_p99_ms", "loss_pct", "jitter_ms"];
pub const PORT_COLUMNS: [&str; 4] = ["rx_pps", "tx_pps", "rx_mbps", "tx_mbps"];

/// Every series, by kind and name. Series of paths and ports that a reload
/// removed are dropped; new ones start empty.
#[derive(Default)]
pub struct History {
    paths: Vec<(String, Ring)>,
    ports: Vec<(String, Ring)>,
    /// Per port: the totals at the previous sample (packets, bytes in and out).
    last_totals: Vec<[u64; 4]>,
    last_unix: f64,
}

fn keep(series: &mut Vec<(String, Ring)>, names: &[&str]) {
    series.retain(|(n, _)| names.contains(&n.as_str()));
    for n in names {
        if !series.iter().any(|(m, _)| m == n) {
            series.push(((*n).to_owned(), Ring::default()));
        }
    }
}

impl History {
    /// Records one second: each path's figures, and each port's totals
    /// (rx packets, tx packets, rx bytes, tx bytes) turned into rates.
    pub fn record(&mut self, unix: f64, paths: &[(&str, [f32; 4])], ports: &[(&str, [u64; 4])]) {
        keep(&mut self.paths, &paths.iter().map(|p| p.0).collect::<Vec<_>>());
        for (name, v) in paths {
            if let Some((_, r)) = self.paths.iter_mut().find(|(n, _)| n == name) {
                r.push(unix, *v);
            }
        }
        keep(&mut self.ports, &ports.iter().map(|p| p.0).collect::<Vec<_>>());
        let dt = unix - self.last_unix;
        let fresh = self.last_totals.len() != ports.len() || !(0.2..30.0).contains(&dt);
        for (i, (name, t)) in ports.iter().enumerate() {
            let rate = |k: usize, scale: f64| {
                if fresh {
                    f32::NAN
                } else {
                    (t[k].saturating_sub(self.last_totals[i][k]) as f64 * scale / dt) as f32
                }
            };
            let v = [rate(0, 1.0), rate(1, 1.0), rate(2, 8e-6), rate(3, 8e-6)];
            if let Some((_, r)) = self.ports.iter_mut().find(|(n, _)| n == name) {
                r.push(unix, v);
            }
        }
        self.last_totals = ports.iter().map(|p| p.1).collect();
        self.last_unix = unix;
    }

    /// Every series, whole.
    pub fn show(&self) -> Value {
        let series = |s: &[(String, Ring)], cols: &[&str; 4]| {
            s.iter().map(|(n, r)| json!({ "name": n, "samples": r.len, "columns": r.columns(cols, DEPTH) })).collect::<Vec<_>>()
        };
        json!({ "interval_seconds": 1, "depth": DEPTH, "paths": series(&self.paths, &PATH_COLUMNS), "ports": series(&self.ports, &PORT_COLUMNS) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ring_keeps_the_last_depth_samples_in_order() {
        let mut r = Ring::default();
        for i in 0..(DEPTH + 10) {
            r.push(i as f64, [i as f32, 0.0, 0.0, f32::NAN]);
        }
        assert_eq!(r.len, DEPTH);
        let c = r.columns(&PATH_COLUMNS, DEPTH);
        assert_eq!(c["unix"][0], json!(10.0));
        assert_eq!(c["unix"][DEPTH - 1], json!((DEPTH + 9) as f64));
        assert_eq!(c["rtt_p50_ms"][DEPTH - 1], json!((DEPTH + 9) as f64));
        assert_eq!(c["jitter_ms"][0], Value::Null);
        assert_eq!(r.columns(&PATH_COLUMNS, 3)["unix"], json!([(DEPTH + 7) as f64, (DEPTH + 8) as f64, (DEPTH + 9) as f64]));
    }

    #[test]
    fn port_rates_come_from_totals_and_series_follow_reloads() {
        let mut h = History::default();
        h.record(100.0, &[("a", [1.0; 4])], &[("wan", [0, 0, 0, 0])]);
        h.record(101.0, &[("a", [2.0; 4])], &[("wan", [1000, 500, 125_000, 0])]);
        let s = h.show();
        let cols = &s["ports"][0]["columns"];
        assert_eq!(cols["rx_pps"], json!([null, 1000.0]));
        assert_eq!(cols["rx_mbps"][1], json!(1.0));
        h.record(102.0, &[("b", [3.0; 4])], &[("wan", [2000, 500, 125_000, 0])]);
        let s = h.show();
        assert_eq!(s["paths"].as_array().unwrap().len(), 1);
        assert_eq!(s["paths"][0]["name"], "b");
        assert_eq!(s["paths"][0]["samples"], 1);
    }
}
