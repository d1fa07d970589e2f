//! What the engine is asked to bring up: EAL settings, devices, ports, and the EAL arguments they make.

use crate::worker::PollMode;
use std::time::Duration;

/// EAL settings.
#[derive(Clone, Debug)]
pub struct EalSpec {
    pub main_lcore: u32,
    pub worker_lcores: Vec<u32>,
    /// Lcores to run on another CPU than their own number (lcore, cpu);
    /// lets several lcores share a CPU on small machines.
    pub cpu_map: Vec<(u32, u32)>,
    pub memory_mb: u32,
    pub hugepages: bool,
    /// Runtime-directory prefix; distinct per process that runs at once.
    pub file_prefix: String,
    /// DPDK log level (`--log-level`), e.g. "notice".
    pub log_level: String,
    /// Passed to EAL verbatim, after the generated arguments.
    pub extra_args: Vec<String>,
}

/// A device, as named in the config.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Device {
    /// A PCI address in canonical `DDDD:BB:DD.F` form.
    Pci(String),
    /// A virtual device: `net_<driver><n>` plus its `key=value` arguments.
    Vdev { name: String, args: String },
}

impl Device {
    /// A vdev's driver: its name without the instance number
    /// (`net_af_packet` for `net_af_packet1`).
    pub fn driver(&self) -> Option<&str> {
        match self {
            Device::Vdev { name, .. } => Some(name.trim_end_matches(|c: char| c.is_ascii_digit())),
            Device::Pci(_) => None,
        }
    }

    /// The kernel network interfaces a vdev opens, as (argument,
    /// interface): `iface=` of af_packet and af_xdp; pcap's `iface=`,
    /// `rx_iface=`, `rx_iface_in=` and `tx_iface=`.
    pub fn kernel_ifaces(&self) -> Vec<(&str, &str)> {
        let keys: &[&str] = match self.driver() {
            Some("net_af_packet" | "net_af_xdp") => &["iface"],
            Some("net_pcap") => &["iface", "rx_iface", "rx_iface_in", "tx_iface"],
            _ => return Vec::new(),
        };
        self.args().filter(|(k, _)| keys.contains(k)).collect()
    }

    /// A vdev's `key=value` arguments, in order (none for a PCI device).
    fn args(&self) -> impl Iterator<Item = (&str, &str)> {
        let args = match self {
            Device::Vdev { args, .. } => args.as_str(),
            Device::Pci(_) => "",
        };
        args.split(',').filter_map(|kv| kv.split_once('='))
    }

    /// A vdev's argument `key` (the first if repeated).
    pub fn arg(&self, key: &str) -> Option<&str> {
        self.args().find(|(k, _)| *k == key).map(|(_, v)| v)
    }

    /// The kernel interface a `net_af_packet` vdev opens (`iface=`).
    pub fn af_packet_iface(&self) -> Option<&str> {
        (self.driver() == Some("net_af_packet")).then(|| self.kernel_ifaces().first().map(|&(_, i)| i)).flatten()
    }

    /// Parses `0000:03:00.0`, `03:00.0` or `net_pcap0,rx_pcap=in.pcap`.
    pub fn parse(s: &str) -> Result<Device, String> {
        const EXPECT: &str = "expected a PCI address like 0000:03:00.0 or a DPDK vdev string like net_null0 or net_pcap0,rx_pcap=in.pcap";
        if let Some(pci) = parse_pci(s) {
            return Ok(Device::Pci(pci));
        }
        let (name, args) = s.split_once(',').unwrap_or((s, ""));
        let driver = name.strip_prefix("net_").ok_or_else(|| format!("{s:?}: {EXPECT}"))?;
        let ok_name = !driver.is_empty()
            && driver.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
            && driver.as_bytes()[0].is_ascii_lowercase();
        if !ok_name {
            return Err(format!("{s:?}: bad vdev name {name:?}: {EXPECT}"));
        }
        if !name.as_bytes()[name.len() - 1].is_ascii_digit() {
            return Err(format!("{s:?}: vdev name {name:?} must end in an instance number, e.g. {name}0"));
        }
        if s.contains(',') {
            for kv in args.split(',') {
                match kv.split_once('=') {
                    Some((k, _)) if !k.is_empty() && k.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-') => {}
                    _ => return Err(format!("{s:?}: vdev argument {kv:?} is not key=value")),
                }
            }
        }
        Ok(Device::Vdev { name: name.to_owned(), args: args.to_owned() })
    }

    /// The ethdev name DPDK gives the port once probed.
    pub fn port_name(&self) -> &str {
        match self {
            Device::Pci(a) => a,
            Device::Vdev { name, .. } => name,
        }
    }
}

fn parse_pci(s: &str) -> Option<String> {
    let hex = |p: &str, n: usize| p.len() == n && p.bytes().all(|b| b.is_ascii_hexdigit());
    let (dom, rest) = match s.matches(':').count() {
        2 => s.split_once(':')?,
        1 => ("0000", s),
        _ => return None,
    };
    let (bus, devfn) = rest.split_once(':')?;
    let (dev, func) = devfn.split_once('.')?;
    let func_ok = func.len() == 1 && (b'0'..=b'7').contains(&func.as_bytes()[0]);
    (hex(dom, 4) && hex(bus, 2) && hex(dev, 2) && func_ok).then(|| format!("{dom}:{bus}:{dev}.{func}").to_ascii_lowercase())
}

/// One port to bring up.
#[derive(Clone, Debug)]
pub struct PortSpec {
    pub name: String,
    pub device: Device,
    pub rx_desc: u16,
    pub tx_desc: u16,
    /// RX queues to configure; `None`: one per worker. Queue q is polled
    /// by worker q mod workers (devices whose queues all receive, such as
    /// `net_af_packet` with `qpairs`, need every queue polled).
    pub rx_queues: Option<u16>,
}

/// Everything the engine needs to start.
#[derive(Clone, Debug)]
pub struct EngineSpec {
    pub eal: EalSpec,
    pub ports: Vec<PortSpec>,
    pub burst: usize,
    pub drain: Duration,
    pub mode: PollMode,
    /// Mbufs per pool; 0 sizes the pool from the rings and workers.
    pub mbufs: u32,
    /// Latency sampling: one TX burst / loop iteration in this many is
    /// timed (0: no latency histograms).
    pub latency_every: u32,
    /// A loop iteration at least this long is a stall: always recorded.
    pub stall: Duration,
}

impl EngineSpec {
    /// The argument vector handed to `rte_eal_init`. Virtual devices are
    /// probed afterwards, one by one, so a failure names its port.
    pub fn eal_args(&self) -> Vec<String> {
        let e = &self.eal;
        let mut lcores = vec![e.main_lcore];
        lcores.extend(&e.worker_lcores);
        let cpu = |l: u32| e.cpu_map.iter().find(|(lc, _)| *lc == l).map_or(l, |(_, c)| *c);
        let lcores: Vec<String> = lcores.iter().map(|&l| format!("{l}@{}", cpu(l))).collect();
        // argv[0] prefixes EAL's own messages ("eal: unrecognized option ...").
        let mut a: Vec<String> = vec!["eal".into(), "--lcores".into(), lcores.join(","), "--main-lcore".into(), e.main_lcore.to_string()];
        if !e.hugepages {
            a.push("--no-huge".into());
        }
        a.extend(["-m".into(), e.memory_mb.to_string()]);
        a.extend(["--file-prefix".into(), e.file_prefix.clone()]);
        a.push(format!("--log-level={}", e.log_level));
        let pci: Vec<&str> = self.ports.iter().filter(|&p| matches!(p.device, Device::Pci(_))).map(|p| p.device.port_name()).collect();
        if pci.is_empty() {
            a.push("--no-pci".into());
        }
        for addr in pci {
            a.extend(["-a".into(), addr.to_owned()]);
        }
        // DPDK's telemetry socket is off unless asked for: the appliance
        // exports its own metrics, and EAL's start-up notice about it
        // ("No legacy callbacks") only confuses.
        if !e.extra_args.iter().any(|x| x == "--telemetry" || x == "--no-telemetry") {
            a.push("--no-telemetry".into());
        }
        a.extend(e.extra_args.iter().cloned());
        a
    }
}
