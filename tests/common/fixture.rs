//! The two-port appliance config most tests start from, written once:
//! `lan0` and `wan0`, cross-connected on `net_null` unless a test says
//! otherwise. The end-to-end tests use it through `tests/common`, and the
//! `patronus` crate's unit tests include this file by path, so there is
//! one copy.
#![allow(dead_code)]

/// The fixture's TOML, built up by what a test changes.
#[derive(Clone, Debug)]
pub struct TwoPorts {
    eal: Vec<String>,
    worker: Option<String>,
    stats: Option<u32>,
    ports: [Port; 2],
    extra: String,
}

#[derive(Clone, Debug)]
struct Port {
    device: String,
    /// Cross-connected to the other port.
    forward: bool,
    lines: Vec<String>,
}

impl Default for TwoPorts {
    fn default() -> Self {
        Self::new()
    }
}

impl TwoPorts {
    /// `net_null0` and `net_null1` cross-connected; `[eal]` names the
    /// worker lcore and nothing else.
    pub fn new() -> Self {
        let port = |device: &str| Port { device: device.into(), forward: true, lines: Vec::new() };
        TwoPorts {
            eal: vec!["worker_lcores = [1]".into()],
            worker: None,
            stats: None,
            ports: [port("net_null0"), port("net_null1")],
            extra: String::new(),
        }
    }

    /// What a test appliance runs with: its own DPDK prefix, 512 MiB of
    /// ordinary pages, DPDK warnings only, no telemetry socket.
    pub fn appliance(prefix: &str) -> Self {
        let mut t = Self::new();
        t.eal.extend([
            "memory_mb = 512".into(),
            format!("file_prefix = \"{prefix}\""),
            "log_level = \"warning\"".into(),
            "extra_args = [\"--no-telemetry\"]".into(),
        ]);
        t
    }

    /// `[eal] main_lcore`, written first in the table.
    pub fn main_lcore(mut self, lcore: u32) -> Self {
        self.eal.retain(|l| !l.starts_with("main_lcore"));
        self.eal.insert(0, format!("main_lcore = {lcore}"));
        self
    }

    /// Sets an `[eal]` field (replacing it when present).
    pub fn eal(mut self, line: &str) -> Self {
        let key = line.split('=').next().unwrap_or("").trim();
        self.eal.retain(|l| l.split('=').next().unwrap_or("").trim() != key);
        self.eal.push(line.into());
        self
    }

    /// The `[worker]` table's body.
    pub fn worker(mut self, body: &str) -> Self {
        self.worker = Some(body.trim_end().into());
        self
    }

    /// A `[stats]` table with this summary interval.
    pub fn stats(mut self, interval_s: u32) -> Self {
        self.stats = Some(interval_s);
        self
    }

    /// The two ports' devices.
    pub fn devices(mut self, lan: &str, wan: &str) -> Self {
        self.ports[0].device = lan.into();
        self.ports[1].device = wan.into();
        self
    }

    /// No cross-connect: the ports route (give them addresses with
    /// [`TwoPorts::lan`] and [`TwoPorts::wan`]).
    pub fn routed(mut self) -> Self {
        self.ports[0].forward = false;
        self.ports[1].forward = false;
        self
    }

    /// Whether the ports are cross-connected.
    pub fn forward(self, on: bool) -> Self {
        if on {
            self
        } else {
            self.routed()
        }
    }

    /// More fields of the `lan0` port, one per line.
    pub fn lan(mut self, lines: &str) -> Self {
        self.ports[0].lines.extend(lines.lines().map(str::to_owned));
        self
    }

    /// More fields of the `wan0` port, one per line.
    pub fn wan(mut self, lines: &str) -> Self {
        self.ports[1].lines.extend(lines.lines().map(str::to_owned));
        self
    }

    /// Tables after the ports (`[control]`, `[tunnel]`, ...).
    pub fn extra(mut self, toml: &str) -> Self {
        self.extra.push_str(toml);
        self
    }

    pub fn toml(&self) -> String {
        let mut t = format!("[eal]\n{}\n", self.eal.join("\n"));
        if let Some(w) = &self.worker {
            t.push_str(&format!("\n[worker]\n{w}\n"));
        }
        if let Some(s) = self.stats {
            t.push_str(&format!("\n[stats]\ninterval_s = {s}\n"));
        }
        for (i, (name, role, other)) in [("lan0", "lan", "wan0"), ("wan0", "wan", "lan0")].into_iter().enumerate() {
            let p = &self.ports[i];
            t.push_str(&format!("\n[[port]]\nname = \"{name}\"\ndevice = \"{}\"\nrole = \"{role}\"\n", p.device));
            for l in &p.lines {
                t.push_str(l);
                t.push('\n');
            }
            if p.forward {
                t.push_str(&format!("forward = \"{other}\"\n"));
            }
        }
        t.push_str(&self.extra);
        t
    }
}
