//! Validation: ranges and cross-references, one function per section,
//! each error placed by [`Locator`] at its field. Serde has already
//! rejected unknown fields and wrong types.

use std::collections::HashSet;
use std::path::Path;

use dataplane::engine::{Device, MAX_LCORE};
use dataplane::{MAX_BURST, MAX_PORTS};

use super::{keys, paths, Config, ConfigError, Locator, Seg};

const LOG_LEVELS: &[&str] = &["emergency", "alert", "critical", "error", "warning", "notice", "info", "debug"];

impl Config {
    /// Every section, in the order the file reads; the signatures last,
    /// since their errors name their own files.
    pub(super) fn validate(&self, loc: &Locator) -> Vec<ConfigError> {
        let mut errs = self.validate_eal(loc);
        errs.extend(self.validate_worker(loc));
        errs.extend(self.validate_site(loc));
        errs.extend(self.validate_control(loc));
        errs.extend(self.api.validate(loc, &self.control.metrics_listen));
        errs.extend(self.validate_ports(loc));
        errs.extend(self.validate_router(loc));
        errs.extend(self.validate_dpi(loc));
        errs.extend(self.tunnel.validate(loc, self.site.private_key_file.is_some()));
        for (i, p) in self.port.iter().enumerate() {
            if let Some(q) = &p.qos {
                errs.extend(q.validate(loc, i));
            }
        }
        // The signatures, last: their errors name their own files.
        let mut apps = None;
        if self.dpi.enabled && errs.is_empty() {
            let dir = loc.file().parent().map(Path::to_path_buf).unwrap_or_default();
            match self.dpi.compile(&dir, &mut Default::default()) {
                Err(e) => errs.extend(e.0),
                Ok(d) => apps = Some(d.apps.iter().map(|a| a.name.clone()).collect::<Vec<_>>()),
            }
        }
        errs.extend(self.qos.validate(loc, apps.as_deref()));
        let peers: Vec<&str> = self.tunnel.peer.iter().map(|p| p.name.as_str()).collect();
        let ports: Vec<&str> = self.port.iter().map(|p| p.name.as_str()).collect();
        errs.extend(paths::validate(loc, &self.paths, &self.path, &self.bfd, &self.policy, &peers, &ports, apps.as_deref()));
        if !self.policy.is_empty() && !self.dpi.enabled {
            errs.push(loc.error(
                &[Seg::from("policy")],
                "policy rules are matched by the classifier: set [dpi] enabled = true (or remove the [[policy]] rules)",
            ));
        }
        errs
    }

    /// `[eal]`: lcores, CPU map, memory, file prefix, log level, mbufs.
    fn validate_eal(&self, loc: &Locator) -> Vec<ConfigError> {
        let mut errs = Vec::new();
        let mut check = |ok: bool, path: Vec<Seg>, msg: String| {
            if !ok {
                errs.push(loc.error(&path, msg));
            }
        };
        let e = &self.eal;
        check(
            e.main_lcore < MAX_LCORE,
            cfg_path!("eal", "main_lcore"),
            format!("lcore {} is out of range; expected 0..{}", e.main_lcore, MAX_LCORE),
        );
        check(!e.worker_lcores.is_empty(), cfg_path!("eal", "worker_lcores"), "expected at least one worker lcore".into());
        let mut seen = HashSet::new();
        for (i, &l) in e.worker_lcores.iter().enumerate() {
            let p = cfg_path!("eal", "worker_lcores", i);
            if l >= MAX_LCORE {
                check(false, p, format!("lcore {l} is out of range; expected 0..{MAX_LCORE}"));
            } else if l == e.main_lcore {
                check(false, p, format!("lcore {l} is the main lcore (eal.main_lcore = {l}); workers need lcores of their own"));
            } else if !seen.insert(l) {
                check(false, p, format!("lcore {l} is listed twice"));
            }
        }
        if let Err(m) = self.parse_cpu_map() {
            check(false, cfg_path!("eal", "cpu_map"), m);
        }
        check(
            (64..=1 << 20).contains(&e.memory_mb),
            cfg_path!("eal", "memory_mb"),
            format!("{} MiB is out of range; expected 64..=1048576", e.memory_mb),
        );
        // It names files under /var/run/dpdk and the default control socket.
        let p = &e.file_prefix;
        check(
            !p.is_empty() && p.len() <= 64 && !p.starts_with('.') && p.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b)),
            cfg_path!("eal", "file_prefix"),
            format!("{p:?} is not a valid prefix; expected 1 to 64 letters, digits, '-', '_' or '.', not starting with '.'"),
        );
        check(
            LOG_LEVELS.contains(&e.log_level.as_str()),
            cfg_path!("eal", "log_level"),
            format!("unknown level {:?}; expected one of {}", e.log_level, LOG_LEVELS.join(", ")),
        );
        check(
            e.mbufs == 0 || (1023..=1 << 24).contains(&e.mbufs),
            cfg_path!("eal", "mbufs"),
            format!("{} is out of range; expected 0 (automatic) or 1023..=16777216", e.mbufs),
        );
        errs
    }

    /// `[worker]` and `[stats]`.
    fn validate_worker(&self, loc: &Locator) -> Vec<ConfigError> {
        let mut errs = Vec::new();
        let mut check = |ok: bool, path: Vec<Seg>, msg: String| {
            if !ok {
                errs.push(loc.error(&path, msg));
            }
        };
        let w = &self.worker;
        check(
            (1..=MAX_BURST as u32).contains(&w.burst),
            cfg_path!("worker", "burst"),
            format!("{} is out of range; expected 1..={MAX_BURST}", w.burst),
        );
        check(
            (1..=10_000).contains(&w.drain_us),
            cfg_path!("worker", "drain_us"),
            format!("{} is out of range; expected 1..=10000 microseconds", w.drain_us),
        );
        check(
            (1..=100_000).contains(&w.max_sleep_us),
            cfg_path!("worker", "max_sleep_us"),
            format!("{} is out of range; expected 1..=100000 microseconds", w.max_sleep_us),
        );
        check(
            w.latency_sample <= 65536,
            cfg_path!("worker", "latency_sample"),
            format!("{} is out of range; expected 0 (off) ..=65536", w.latency_sample),
        );
        check(
            (1..=1_000_000).contains(&w.stall_us),
            cfg_path!("worker", "stall_us"),
            format!("{} is out of range; expected 1..=1000000 microseconds", w.stall_us),
        );
        check(
            self.stats.interval_s <= 3600,
            cfg_path!("stats", "interval_s"),
            format!("{} is out of range; expected 0 (off) ..=3600 seconds", self.stats.interval_s),
        );
        errs
    }

    /// `[site]`: its name and private key.
    fn validate_site(&self, loc: &Locator) -> Vec<ConfigError> {
        let mut errs = Vec::new();
        let mut check = |ok: bool, path: Vec<Seg>, msg: String| {
            if !ok {
                errs.push(loc.error(&path, msg));
            }
        };
        let site = &self.site;
        check(
            (1..=63).contains(&site.name.len()) && site.name.bytes().all(|b| b.is_ascii_alphanumeric() || b"_-.".contains(&b)),
            cfg_path!("site", "name"),
            format!("{:?} is not a valid name; expected 1-63 letters, digits, '_', '-' or '.'", site.name),
        );
        if let Some(k) = self.private_key_path(loc.file) {
            if let Err(m) = keys::load_private_key(&k) {
                check(false, cfg_path!("site", "private_key_file"), m);
            }
        }
        errs
    }

    /// `[control]`: socket, metrics address, reload timeout.
    fn validate_control(&self, loc: &Locator) -> Vec<ConfigError> {
        let mut errs = Vec::new();
        let mut check = |ok: bool, path: Vec<Seg>, msg: String| {
            if !ok {
                errs.push(loc.error(&path, msg));
            }
        };
        let c = &self.control;
        if let Some(sock) = &c.socket {
            let s = sock.as_os_str();
            let named = sock.file_name().is_some() && !s.as_encoded_bytes().ends_with(b"/");
            let plain = sock.components().all(|c| !matches!(c, std::path::Component::ParentDir | std::path::Component::CurDir));
            let usable = sock.is_absolute() && s.len() < 108 && named && plain;
            check(
                s.is_empty() || usable,
                cfg_path!("control", "socket"),
                format!("{sock:?} is not usable; expected an absolute path to a file, without '.' or '..', shorter than 108 bytes, or \"\" (off)"),
            );
            // Never replace something that is not a socket (a stale socket is replaced at start).
            if let Some(m) = usable.then(|| std::fs::symlink_metadata(sock).ok()).flatten() {
                use std::os::unix::fs::FileTypeExt;
                check(
                    m.file_type().is_socket(),
                    cfg_path!("control", "socket"),
                    format!(
                        "{} exists and is not a socket; the appliance will not replace it: remove it, or choose another path",
                        sock.display()
                    ),
                );
            }
        }
        check(
            (10..=60_000).contains(&c.reload_timeout_ms),
            cfg_path!("control", "reload_timeout_ms"),
            format!("{} is out of range; expected 10..=60000 milliseconds", c.reload_timeout_ms),
        );
        errs
    }

    /// `[[port]]`: names, devices, rings, cross-connects.
    fn validate_ports(&self, loc: &Locator) -> Vec<ConfigError> {
        let mut errs = Vec::new();
        if self.port.is_empty() {
            errs.push(loc.error_at(
                loc.text.len(),
                &[Seg::from("port")],
                "no ports are defined; expected at least one [[port]] table with name, device and role",
            ));
        }
        let mut check = |ok: bool, path: Vec<Seg>, msg: String| {
            if !ok {
                errs.push(loc.error(&path, msg));
            }
        };
        check(
            self.port.len() <= MAX_PORTS,
            cfg_path!("port"),
            format!("{} ports defined; at most {MAX_PORTS} are supported", self.port.len()),
        );
        let names: Vec<&str> = self.port.iter().map(|p| p.name.as_str()).collect();
        let mut seen_names = HashSet::new();
        let mut seen_devs = HashSet::new();
        for (i, p) in self.port.iter().enumerate() {
            let name_ok =
                !p.name.is_empty() && p.name.len() <= 32 && p.name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
            check(
                name_ok,
                cfg_path!("port", i, "name"),
                format!("{:?} is not a valid name; expected 1-32 letters, digits, '_' or '-'", p.name),
            );
            check(seen_names.insert(p.name.as_str()), cfg_path!("port", i, "name"), format!("port name {:?} is used twice", p.name));
            match Device::parse(&p.device) {
                Ok(d) => check(
                    seen_devs.insert(d.port_name().to_owned()),
                    cfg_path!("port", i, "device"),
                    format!("device {:?} is used by two ports", d.port_name()),
                ),
                Err(m) => check(false, cfg_path!("port", i, "device"), m),
            }
            for (field, v) in [("rx_ring_size", p.rx_ring_size), ("tx_ring_size", p.tx_ring_size)] {
                check(
                    v.is_power_of_two() && (64..=16384).contains(&v),
                    cfg_path!("port", i, field),
                    format!("{v} is not allowed; expected a power of two in 64..=16384"),
                );
            }
            if let Some(to) = &p.forward {
                if !names.contains(&to.as_str()) {
                    check(false, cfg_path!("port", i, "forward"), format!("no port named {to:?}; expected one of: {}", names.join(", ")));
                } else {
                    check(to != &p.name, cfg_path!("port", i, "forward"), format!("port {:?} cannot forward to itself", p.name));
                }
            }
        }
        errs
    }

    /// `[dpi]`: table sizes and timeouts.
    fn validate_dpi(&self, loc: &Locator) -> Vec<ConfigError> {
        let mut errs = Vec::new();
        let mut check = |ok: bool, path: Vec<Seg>, msg: String| {
            if !ok {
                errs.push(loc.error(&path, msg));
            }
        };
        let d = &self.dpi;
        check((1..=32).contains(&d.max_packets), cfg_path!("dpi", "max_packets"), format!("{} is out of range 1..=32", d.max_packets));
        check((1024..=1 << 24).contains(&d.flows), cfg_path!("dpi", "flows"), format!("{} is out of range 1024..=16777216", d.flows));
        check((1..=1 << 20).contains(&d.dns_cache), cfg_path!("dpi", "dns_cache"), format!("{} is out of range 1..=1048576", d.dns_cache));
        check((1..=65534).contains(&d.reassembly), cfg_path!("dpi", "reassembly"), format!("{} is out of range 1..=65534", d.reassembly));
        for (name, v) in [
            ("tcp_timeout_s", d.tcp_timeout_s),
            ("tcp_closing_timeout_s", d.tcp_closing_timeout_s),
            ("udp_timeout_s", d.udp_timeout_s),
            ("other_timeout_s", d.other_timeout_s),
        ] {
            check((1..=86400).contains(&v), cfg_path!("dpi", name), format!("{v} s is out of range 1..=86400"));
        }
        errs
    }
}
