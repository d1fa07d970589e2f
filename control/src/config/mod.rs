//! The TOML configuration: the schema ([`schema`]), error location
//! ([`locate`]), validation one section at a time ([`validate`] and the
//! section modules), and what the rest of the binary asks of a config.
//!
//! Every error names the file, line, column and field and says what was
//! expected. Serde rejects unknown fields and wrong types; validation
//! checks ranges and cross-references. Positions come from one mechanism:
//! a field path (`port[1].forward`) looked up in the parsed document.
//! Interfaces, addresses and routes are in [`router`].

pub use router::RouterOpts;

use std::path::{Path, PathBuf};
use std::time::Duration;

use dataplane::engine::{Device, EalSpec, EngineSpec, PortSpec};
use dataplane::worker::PollMode;
use dataplane::PortIdx;

macro_rules! cfg_path {
    ($($seg:expr),* $(,)?) => { vec![$(Seg::from($seg)),*] };
}

// After the macro, so the section modules see it.
pub mod api;
pub mod keys;
mod locate;
pub mod paths;
pub mod qos;
mod router;
mod schema;
pub mod signatures;
pub mod tunnel;
mod validate;

pub(crate) use locate::{serde_path, Locator, Seg};
pub use locate::{ConfigError, ConfigErrors};
pub use schema::*;

/// The largest config file read.
pub const MAX_CONFIG_BYTES: u64 = 16 << 20;

/// A config file's text: a regular file of at most [`MAX_CONFIG_BYTES`].
/// Opened without blocking (a FIFO would hang the reader) and checked on
/// the open file (`fstat`), so `/dev/zero`, a FIFO or a directory given by
/// mistake is refused at once with what it is.
pub fn read_text(file: &Path) -> Result<String, String> {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    let f = std::fs::OpenOptions::new().read(true).custom_flags(libc::O_NONBLOCK).open(file).map_err(|e| format!("cannot read: {e}"))?;
    let m = f.metadata().map_err(|e| format!("cannot read: {e}"))?;
    if !m.is_file() {
        return Err("cannot read: not a regular file (a directory, FIFO or device); give the config file itself".into());
    }
    let too_big = || format!("cannot read: larger than {} MiB; a config is a few kilobytes", MAX_CONFIG_BYTES >> 20);
    if m.len() > MAX_CONFIG_BYTES {
        return Err(too_big());
    }
    let mut text = String::new();
    f.take(MAX_CONFIG_BYTES + 1).read_to_string(&mut text).map_err(|e| format!("cannot read: {e}"))?;
    if text.len() as u64 > MAX_CONFIG_BYTES {
        return Err(too_big());
    }
    Ok(text)
}

impl Config {
    /// Reads, parses and validates a config file.
    pub fn load(file: &Path) -> Result<Config, ConfigErrors> {
        let text = read_text(file).map_err(|message| {
            ConfigErrors(vec![ConfigError { file: file.to_owned(), line: 0, column: 0, field: String::new(), message }])
        })?;
        Self::parse(file, &text)
    }

    /// Parses and validates config text; `file` is used in error messages.
    pub fn parse(file: &Path, text: &str) -> Result<Config, ConfigErrors> {
        let loc = Locator::new(file, text);
        let de = toml::Deserializer::new(text);
        let cfg: Config = serde_path_to_error::deserialize(de).map_err(|e| {
            let path = serde_path(e.path());
            let inner = e.inner();
            let err = match inner.span() {
                Some(span) => loc.error_at(span.start, &path, inner.message()),
                None => loc.error(&path, inner.message()),
            };
            ConfigErrors(vec![err])
        })?;
        let errors = cfg.validate(&loc);
        if errors.is_empty() {
            Ok(cfg)
        } else {
            Err(ConfigErrors(errors))
        }
    }

    /// Validates a config derived from `text` (the one a reload will run),
    /// placing errors in that text.
    pub fn revalidate(&self, file: &Path, text: &str) -> Result<(), ConfigErrors> {
        let errors = self.validate(&Locator::new(file, text));
        if errors.is_empty() {
            Ok(())
        } else {
            Err(ConfigErrors(errors))
        }
    }

    /// `eal.cpu_map` as (lcore, cpu) pairs.
    pub fn parse_cpu_map(&self) -> Result<Vec<(u32, u32)>, String> {
        let e = &self.eal;
        let expect = "expected LCORE@CPU pairs separated by commas, e.g. \"2@1,3@1\"";
        let mut out: Vec<(u32, u32)> = Vec::new();
        for item in e.cpu_map.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let (l, c) = item.split_once('@').ok_or_else(|| format!("{item:?}: {expect}"))?;
            let (l, c) = match (l.trim().parse::<u32>(), c.trim().parse::<u32>()) {
                (Ok(l), Ok(c)) if c < 1024 => (l, c),
                _ => return Err(format!("{item:?}: {expect}")),
            };
            if l != e.main_lcore && !e.worker_lcores.contains(&l) {
                return Err(format!("lcore {l} is neither the main lcore nor a worker lcore"));
            }
            if out.iter().any(|(seen, _)| *seen == l) {
                return Err(format!("lcore {l} is mapped twice"));
            }
            out.push((l, c));
        }
        Ok(out)
    }

    /// The site key file, resolved against the config file's directory.
    pub fn private_key_path(&self, config_file: &Path) -> Option<PathBuf> {
        let k = self.site.private_key_file.as_ref()?;
        Some(config_file.parent().map_or_else(|| k.clone(), |d| d.join(k)))
    }

    /// The control socket's path, if it is on.
    pub fn socket_path(&self) -> Option<PathBuf> {
        match &self.control.socket {
            Some(p) if p.as_os_str().is_empty() => None,
            Some(p) => Some(p.clone()),
            None => Some(crate::ctl::default_socket(Path::new(crate::ctl::RUN_DIR), &self.eal.file_prefix)),
        }
    }

    /// The addresses of path `p`'s probes while they travel as ICMP echo
    /// requests (docs/PATHS.md): (source, target). The source is our first
    /// IPv4 address on a LAN port (else on any port); the target is the
    /// path's `probe_target`, else its peer's `address`, else the first
    /// address of the peer's first IPv4 allowed prefix. 0.0.0.0 where none.
    pub fn probe_addrs(&self, p: &paths::PathOpts) -> (std::net::Ipv4Addr, std::net::Ipv4Addr) {
        use std::net::{IpAddr, Ipv4Addr};
        let v4 = |s: &str| match router::parse_cidr(s) {
            Ok((IpAddr::V4(a), len)) => Some((a, len)),
            _ => None,
        };
        let lan = self.port.iter().filter(|q| q.role == Role::Lan).chain(self.port.iter().filter(|q| q.role != Role::Lan));
        let src = lan.flat_map(|q| q.addresses.iter()).find_map(|a| v4(a)).map_or(Ipv4Addr::UNSPECIFIED, |(a, _)| a);
        let peer = self.tunnel.peer.iter().find(|q| q.name == p.peer);
        let dst = p
            .probe_target
            .as_deref()
            .or(peer.and_then(|q| q.address.as_deref()))
            .and_then(|a| a.parse().ok())
            .or_else(|| {
                let (net, len) = peer?.allowed_ips.iter().find_map(|a| v4(a))?;
                Some(if len >= 31 { net } else { Ipv4Addr::from(u32::from(net) + 1) })
            })
            .unwrap_or(Ipv4Addr::UNSPECIFIED);
        (src, dst)
    }

    /// The HTTP server's settings (`[api]`), if it is on.
    pub fn api_conf(&self, config_file: &Path) -> Option<api::ApiConf> {
        self.api.conf(&self.control.metrics_listen, config_file)
    }

    /// Index of the port named `name`.
    pub fn port_index(&self, name: &str) -> Option<PortIdx> {
        self.port.iter().position(|p| p.name == name).map(|i| i as PortIdx)
    }

    /// The cross-connect pairs (from, to) the ports' `forward` fields name.
    pub fn forward_pairs(&self) -> Vec<(PortIdx, PortIdx)> {
        self.port.iter().enumerate().filter_map(|(i, p)| Some((i as PortIdx, self.port_index(p.forward.as_deref()?)?))).collect()
    }

    /// What the engine needs from a validated config.
    pub fn engine_spec(&self) -> EngineSpec {
        let e = &self.eal;
        EngineSpec {
            eal: EalSpec {
                main_lcore: e.main_lcore,
                worker_lcores: e.worker_lcores.clone(),
                cpu_map: self.parse_cpu_map().expect("validated"),
                memory_mb: e.memory_mb,
                hugepages: e.hugepages,
                file_prefix: e.file_prefix.clone(),
                log_level: e.log_level.clone(),
                extra_args: e.extra_args.clone(),
            },
            ports: self
                .port
                .iter()
                .map(|p| PortSpec {
                    name: p.name.clone(),
                    device: Device::parse(&p.device).expect("validated"),
                    rx_desc: p.rx_ring_size as u16,
                    tx_desc: p.tx_ring_size as u16,
                    rx_queues: p.rx_queues,
                })
                .collect(),
            burst: self.worker.burst as usize,
            drain: Duration::from_micros(self.worker.drain_us as u64),
            mode: match self.worker.poll_mode {
                PollModeName::Poll => PollMode::Busy,
                PollModeName::Adaptive => PollMode::Adaptive { max_sleep: Duration::from_micros(self.worker.max_sleep_us as u64) },
            },
            mbufs: e.mbufs,
            latency_every: self.worker.latency_sample,
            stall: Duration::from_micros(self.worker.stall_us as u64),
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn only_a_regular_file_of_sane_size_is_read() {
        let dir = std::env::temp_dir().join(format!("patronus-cfgread-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        // A FIFO with no writer: refused at once, not waited on.
        let fifo = dir.join("fifo");
        let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
        // SAFETY: a valid path.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        let started = std::time::Instant::now();
        for p in [fifo.as_path(), std::path::Path::new("/dev/zero"), dir.as_path()] {
            let e = super::read_text(p).unwrap_err();
            assert!(e.contains("not a regular file"), "{}: {e}", p.display());
        }
        assert!(started.elapsed() < std::time::Duration::from_secs(2));
        // Larger than the limit (sparse): refused before reading it.
        let big = dir.join("big.toml");
        std::fs::File::create(&big).unwrap().set_len(super::MAX_CONFIG_BYTES + 1).unwrap();
        assert!(super::read_text(&big).unwrap_err().contains("larger than 16 MiB"));
        let ok = dir.join("ok.toml");
        std::fs::write(&ok, "[eal]\n").unwrap();
        assert_eq!(super::read_text(&ok).unwrap(), "[eal]\n");
        let e = super::Config::load(&fifo).unwrap_err().to_string();
        assert!(e.contains("fifo:0:0: cannot read: not a regular file"), "{e}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    use super::*;

    const GOOD: &str = r#"
[eal]
main_lcore = 0
worker_lcores = [1]

[[port]]
name = "lan0"
device = "net_null0"
role = "lan"
forward = "wan0"

[[port]]
name = "wan0"
device = "net_null1"
role = "wan"
forward = "lan0"
"#;

    fn err(text: &str) -> String {
        Config::parse(Path::new("t.toml"), text).unwrap_err().to_string()
    }

    #[test]
    fn a_good_config_parses_with_defaults() {
        let c = Config::parse(Path::new("t.toml"), GOOD).unwrap();
        assert_eq!(c.worker.burst, 32);
        assert_eq!(c.worker.poll_mode, PollModeName::Adaptive);
        assert_eq!(c.port[1].rx_ring_size, 1024);
        assert_eq!(c.forward_pairs(), vec![(0, 1), (1, 0)]);
        let spec = c.engine_spec();
        assert_eq!(spec.ports[0].device, Device::Vdev { name: "net_null0".into(), args: "".into() });
        assert_eq!(spec.mode, PollMode::Adaptive { max_sleep: Duration::from_micros(500) });
    }

    #[test]
    fn unknown_field_names_file_line_and_table() {
        let text = GOOD.replace("forward = \"wan0\"", "forwrd = \"wan0\"");
        assert_eq!(err(&text), "t.toml:10:1: port[0].forwrd: unknown field `forwrd`, expected one of `name`, `device`, `role`, `rx_ring_size`, `tx_ring_size`, `forward`, `rx_queues`, `mtu`, `addresses`, `vlan`, `qos`, `trust_dscp`");
    }

    #[test]
    fn wrong_type_names_the_field() {
        let text = GOOD.replace("worker_lcores = [1]", "worker_lcores = [\"1\"]");
        let e = err(&text);
        assert!(e.starts_with("t.toml:4:18: eal.worker_lcores[0]: invalid type: string \"1\", expected u32"), "{e}");
    }

    #[test]
    fn missing_required_field() {
        let text = GOOD.replace("device = \"net_null1\"\n", "");
        let e = err(&text);
        assert!(e.starts_with("t.toml:12:1: port[1]: missing field `device`"), "{e}");
    }

    #[test]
    fn forward_to_a_missing_port() {
        let text = GOOD.replace("forward = \"lan0\"", "forward = \"lan9\"");
        assert_eq!(err(&text), "t.toml:16:11: port[1].forward: no port named \"lan9\"; expected one of: lan0, wan0");
    }

    #[test]
    fn worker_lcore_equal_to_main() {
        let text = GOOD.replace("worker_lcores = [1]", "worker_lcores = [1, 0]");
        assert_eq!(
            err(&text),
            "t.toml:4:21: eal.worker_lcores[1]: lcore 0 is the main lcore (eal.main_lcore = 0); workers need lcores of their own"
        );
    }

    #[test]
    fn bad_device_string() {
        let text = GOOD.replace("\"net_null1\"", "\"eth1\"");
        let e = err(&text);
        assert!(e.starts_with("t.toml:14:10: port[1].device: \"eth1\": expected a PCI address"), "{e}");
    }

    #[test]
    fn cpu_map_is_checked() {
        let ok = GOOD.replace("worker_lcores = [1]", "worker_lcores = [1, 2]\ncpu_map = \"2@1\"");
        let c = Config::parse(Path::new("t.toml"), &ok).unwrap();
        assert_eq!(c.engine_spec().eal.cpu_map, vec![(2, 1)]);
        let bad = GOOD.replace("worker_lcores = [1]", "worker_lcores = [1]\ncpu_map = \"5@1\"");
        assert_eq!(err(&bad), "t.toml:5:11: eal.cpu_map: lcore 5 is neither the main lcore nor a worker lcore");
        let bad = GOOD.replace("worker_lcores = [1]", "worker_lcores = [1]\ncpu_map = \"1-1\"");
        assert!(err(&bad).contains("eal.cpu_map: \"1-1\": expected LCORE@CPU pairs"), "{}", err(&bad));
    }

    #[test]
    fn no_ports() {
        let text = "[eal]\nworker_lcores = [1]\n";
        assert_eq!(err(text), "t.toml:3:1: port: no ports are defined; expected at least one [[port]] table with name, device and role");
    }

    #[test]
    fn ranges_and_duplicates_are_checked_and_all_reported() {
        let text = GOOD.replace("name = \"wan0\"", "name = \"lan0\"").replace("[eal]", "[worker]\nburst = 0\n\n[eal]");
        let e = err(&text);
        let lines: Vec<&str> = e.lines().collect();
        assert_eq!(lines.len(), 4, "{e}");
        assert_eq!(lines[0], "t.toml:3:9: worker.burst: 0 is out of range; expected 1..=64");
        assert_eq!(lines[1], "t.toml:13:11: port[0].forward: no port named \"wan0\"; expected one of: lan0, lan0");
        assert_eq!(lines[2], "t.toml:16:8: port[1].name: port name \"lan0\" is used twice");
        assert_eq!(lines[3], "t.toml:19:11: port[1].forward: port \"lan0\" cannot forward to itself");
    }

    #[test]
    fn bad_enum_value() {
        let text = GOOD.replace("role = \"wan\"", "role = \"dmz\"");
        let e = err(&text);
        assert!(e.starts_with("t.toml:15:8: port[1].role: unknown variant `dmz`, expected `lan` or `wan`"), "{e}");
    }

    #[test]
    fn syntax_error_is_one_line() {
        let e = err("[eal\nworker_lcores = [1]\n");
        assert_eq!(e.lines().count(), 1, "{e}");
        assert!(e.starts_with("t.toml:1:5: "), "{e}");
    }
}
