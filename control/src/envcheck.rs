//! `patronus check`'s look at the machine: will this config run here, and
//! run well? Hugepages, IOMMU and vfio, the NICs' driver bindings, the
//! config's lcores against the CPUs that exist, and their isolation. Each
//! finding that needs action comes with the command that fixes it.
//!
//! Reads sysfs/procfs under a root directory so tests can fake a machine.

use std::path::{Path, PathBuf};

use dataplane::engine::Device;

use crate::config::Config;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Ok,
    /// Runs, but not as well as it could.
    Warning,
    /// Will not start (or not work) until fixed.
    Problem,
}

#[derive(Debug)]
pub struct Finding {
    pub level: Level,
    pub what: String,
    pub fix: Option<String>,
}

fn ok(what: String) -> Finding {
    Finding { level: Level::Ok, what, fix: None }
}
fn warn(what: String, fix: String) -> Finding {
    Finding { level: Level::Warning, what, fix: Some(fix) }
}
fn problem(what: String, fix: String) -> Finding {
    Finding { level: Level::Problem, what, fix: Some(fix) }
}

/// The machine as the files under `root` ("/" for the real one) describe it.
pub struct Machine {
    root: PathBuf,
    /// The offloads a kernel interface has on (None: cannot tell).
    offloads: fn(&str) -> Option<Vec<&'static str>>,
}

impl Machine {
    pub fn new(root: impl Into<PathBuf>) -> Machine {
        Machine { root: root.into(), offloads: |_| None }
    }

    fn read(&self, p: &str) -> Option<String> {
        std::fs::read_to_string(self.root.join(p.trim_start_matches('/'))).ok().map(|s| s.trim().to_owned())
    }

    fn path(&self, p: &str) -> PathBuf {
        self.root.join(p.trim_start_matches('/'))
    }

    /// A CPU list file ("0-3,8,10-11").
    fn cpus(&self, p: &str) -> Option<Vec<u32>> {
        self.read(p).map(|s| parse_cpu_list(&s))
    }
}

pub fn parse_cpu_list(s: &str) -> Vec<u32> {
    let mut v = Vec::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        match part.split_once('-') {
            Some((a, b)) => {
                if let (Ok(a), Ok(b)) = (a.parse::<u32>(), b.parse::<u32>()) {
                    v.extend(a..=b.min(a + 4096));
                }
            }
            None => v.extend(part.parse::<u32>().ok()),
        }
    }
    v
}

fn list(cpus: &[u32]) -> String {
    cpus.iter().map(u32::to_string).collect::<Vec<_>>().join(",")
}

/// Every finding about running `cfg` (loaded from `path`) on `m`.
pub fn inspect(cfg: &Config, m: &Machine) -> Vec<Finding> {
    let mut out = Vec::new();
    cpus(cfg, m, &mut out);
    hugepages(cfg, m, &mut out);
    nics(cfg, m, &mut out);
    out.extend(interfaces(cfg, m));
    spread(cfg, &mut out);
    out
}

/// With several workers: whether each port's device can spread flows by
/// the symmetric RSS key (a NIC is checked when it starts; a virtual
/// device cannot, and its packets are placed in software), and whether
/// its queues leave the control thread a TX queue.
fn spread(cfg: &Config, out: &mut Vec<Finding>) {
    let workers = cfg.eal.worker_lcores.len();
    if workers < 2 {
        return;
    }
    for (i, p) in cfg.port.iter().enumerate() {
        let Ok(device) = Device::parse(&p.device) else { continue };
        let at = format!("port[{i}].device ({})", p.name);
        match device.driver() {
            None => out.push(ok(format!(
                "{at}: a NIC: the symmetric RSS key and redirection table are set at start and read back (`show ports` spread)"
            ))),
            Some(driver) => out.push(warn(
                format!(
                    "{at}: {driver} cannot spread flows by the symmetric RSS key; with {workers} workers each of its packets is \
                     placed in software, and those another worker owns are handed to it (docs/ARCHITECTURE.md, \"Many workers\")"
                ),
                "a NIC with RSS, or one worker".into(),
            )),
        }
        if let Some(q) = p.rx_queues {
            if !(q as usize).is_multiple_of(workers) {
                out.push(warn(
                    format!("{at}: rx_queues = {q} do not divide among {workers} workers; its packets are placed in software"),
                    format!("rx_queues = {}", workers * (q as usize).div_ceil(workers)),
                ));
            }
        }
        if device.driver() == Some("net_af_packet") {
            let qpairs = device.arg("qpairs").and_then(|v| v.parse::<usize>().ok()).unwrap_or(1);
            if qpairs < workers + 1 {
                out.push(warn(
                    format!(
                        "{at}: qpairs={qpairs} gives the {workers} workers and the control thread {qpairs} TX queue(s); \
                         the control thread needs its own to send ARP, handshakes and probes on this port"
                    ),
                    format!(
                        "qpairs={} and rx_queues = {} (every af_packet queue is in the kernel's fanout, so poll them all)",
                        workers + 1,
                        workers + 1
                    ),
                ));
            }
        }
    }
}

/// The kernel interfaces the config's vdevs open (`iface=` of af_packet
/// and af_xdp, pcap's `iface=`/`rx_iface=`/`tx_iface=`): each must exist,
/// and af_packet/af_xdp ones should not offload checksums or segmentation.
/// `patronus run` checks these too before it starts DPDK.
pub fn interfaces(cfg: &Config, m: &Machine) -> Vec<Finding> {
    let mut out = Vec::new();
    for (i, p) in cfg.port.iter().enumerate() {
        let Ok(device) = Device::parse(&p.device) else {
            continue;
        };
        for (key, iface) in device.kernel_ifaces() {
            let at = format!("port[{i}].device ({}): {key}={iface}", p.name);
            if iface.is_empty() || iface.contains('/') || !m.path(&format!("/sys/class/net/{iface}")).exists() {
                out.push(problem(
                    format!("{at}: no such network interface here"),
                    "`ip -br link` lists this network namespace's interfaces; create it (a veth: ip link add NAME type veth peer name PEER) \
                     or name one that exists"
                        .into(),
                ));
                continue;
            }
            if device.driver() == Some("net_pcap") {
                out.push(ok(format!("{at}: interface exists")));
                continue;
            }
            match (m.offloads)(iface) {
                Some(on) if !on.is_empty() => out.push(warn(
                    format!(
                        "{at}: {} on; frames the kernel hands over can carry partial checksums or exceed the MTU, \
                         and the far end of a tunnel drops them (ping works, TCP does not)",
                        on.join(", ")
                    ),
                    format!("ethtool -K {iface} tx off rx off tso off gso off gro off, and the same on the far end of a veth"),
                )),
                Some(_) => out.push(ok(format!("{at}: interface exists, checksum and segmentation offloads off"))),
                None => out.push(ok(format!("{at}: interface exists"))),
            }
        }
    }
    out
}

/// The offloads that hand an af_packet socket frames unlike the wire's,
/// as `ethtool -k` names them, read with the SIOCETHTOOL ioctl.
fn kernel_offloads(iface: &str) -> Option<Vec<&'static str>> {
    const SIOCETHTOOL: libc::c_ulong = 0x8946;
    // ETHTOOL_GTXCSUM, GTSO, GGSO, GGRO (linux/ethtool.h).
    const FEATURES: [(u32, &str); 4] = [
        (0x16, "tx-checksumming"),
        (0x1e, "tcp-segmentation-offload"),
        (0x23, "generic-segmentation-offload"),
        (0x2b, "generic-receive-offload"),
    ];
    #[repr(C)]
    struct EthtoolValue {
        cmd: u32,
        data: u32,
    }
    #[repr(C)]
    struct IfReq {
        name: [u8; libc::IFNAMSIZ],
        data: *mut EthtoolValue,
        _pad: [u8; 16],
    }
    if iface.len() >= libc::IFNAMSIZ {
        return None;
    }
    // SAFETY: a plain socket for the ioctl, closed below.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return None;
    }
    let mut on = Some(Vec::new());
    for (cmd, name) in FEATURES {
        let mut value = EthtoolValue { cmd, data: 0 };
        let mut req = IfReq { name: [0; libc::IFNAMSIZ], data: &mut value, _pad: [0; 16] };
        req.name[..iface.len()].copy_from_slice(iface.as_bytes());
        // SAFETY: `req` names the interface and points at `value`, both live for the call.
        if unsafe { libc::ioctl(fd, SIOCETHTOOL, &mut req) } != 0 {
            on = None;
            break;
        }
        if value.data != 0 {
            on.as_mut().expect("set above").push(name);
        }
    }
    // SAFETY: our socket.
    unsafe { libc::close(fd) };
    on
}

fn cpus(cfg: &Config, m: &Machine, out: &mut Vec<Finding>) {
    let e = &cfg.eal;
    let Some(online) = m.cpus("/sys/devices/system/cpu/online") else {
        out.push(warn("cannot read /sys/devices/system/cpu/online: CPUs not checked".into(), "mount sysfs on /sys".into()));
        return;
    };
    let map = cfg.parse_cpu_map().unwrap_or_default();
    let cpu_of = |l: u32| map.iter().find(|(lc, _)| *lc == l).map_or(l, |(_, c)| *c);
    let workers: Vec<(u32, u32)> = e.worker_lcores.iter().map(|&l| (l, cpu_of(l))).collect();
    let mut bad = Vec::new();
    for (role, l, c) in
        std::iter::once(("main_lcore", e.main_lcore, cpu_of(e.main_lcore))).chain(workers.iter().map(|&(l, c)| ("worker_lcores", l, c)))
    {
        if !online.contains(&c) {
            bad.push(format!("eal.{role}: lcore {l} runs on CPU {c}, which this machine does not have (online: {})", list_ranges(&online)));
        }
    }
    if bad.is_empty() {
        out.push(ok(format!(
            "CPUs {} online; control on CPU {}, workers on CPU(s) {}",
            list_ranges(&online),
            cpu_of(e.main_lcore),
            list(&workers.iter().map(|w| w.1).collect::<Vec<_>>())
        )));
    } else {
        let free: Vec<u32> = online.iter().copied().filter(|&c| c != cpu_of(e.main_lcore)).collect();
        for b in bad {
            out.push(problem(
                b,
                format!(
                    "set [eal] worker_lcores to CPUs that exist, e.g. [{}]",
                    list(&free[..free.len().min(e.worker_lcores.len().max(1))])
                ),
            ));
        }
        return;
    }
    if workers.iter().any(|w| w.1 == cpu_of(e.main_lcore)) {
        out.push(warn(
            format!("a worker shares CPU {} with the control thread", cpu_of(e.main_lcore)),
            "give each worker its own CPU in [eal] worker_lcores (or map them with cpu_map)".into(),
        ));
    }
    let isolated = m.cpus("/sys/devices/system/cpu/isolated").unwrap_or_default();
    let loose: Vec<u32> = workers.iter().map(|w| w.1).filter(|c| !isolated.contains(c)).collect();
    if loose.is_empty() {
        out.push(ok(format!("worker CPU(s) {} isolated from the scheduler", list(&workers.iter().map(|w| w.1).collect::<Vec<_>>()))));
    } else {
        let l = list(&loose);
        out.push(warn(
            format!("worker CPU(s) {l} not isolated: other tasks and interrupts run there (latency spikes, lower throughput)"),
            format!(
                "add `isolcpus={l} nohz_full={l} rcu_nocbs={l}` to GRUB_CMDLINE_LINUX in /etc/default/grub, run update-grub and reboot; \
                 meanwhile `systemctl set-property --runtime -- system.slice user.slice AllowedCPUs={}`",
                list_ranges(&online.iter().copied().filter(|c| !loose.contains(c)).collect::<Vec<_>>())
            ),
        ));
    }
}

/// "0-3,8" for a sorted list.
fn list_ranges(cpus: &[u32]) -> String {
    let mut parts = Vec::new();
    let mut i = 0;
    while i < cpus.len() {
        let mut j = i;
        while j + 1 < cpus.len() && cpus[j + 1] == cpus[j] + 1 {
            j += 1;
        }
        parts.push(if i == j { cpus[i].to_string() } else { format!("{}-{}", cpus[i], cpus[j]) });
        i = j + 1;
    }
    parts.join(",")
}

fn hugepages(cfg: &Config, m: &Machine, out: &mut Vec<Finding>) {
    let e = &cfg.eal;
    if !e.hugepages {
        out.push(ok(format!(
            "hugepages off ([eal] hugepages = false): {} MiB of ordinary pages; for production reserve hugepages and set it true",
            e.memory_mb
        )));
        return;
    }
    let mut free_mb = 0u64;
    let mut total_mb = 0u64;
    for (dir, mb) in [("hugepages-2048kB", 2u64), ("hugepages-1048576kB", 1024)] {
        let n = |f: &str| m.read(&format!("/sys/kernel/mm/hugepages/{dir}/{f}")).and_then(|s| s.parse::<u64>().ok()).unwrap_or(0);
        free_mb += n("free_hugepages") * mb;
        total_mb += n("nr_hugepages") * mb;
    }
    let need = e.memory_mb as u64;
    // 2 MiB pages for what is reserved now plus this config, with room.
    let pages = (need.div_ceil(2) + 64).max(total_mb / 2 + need.div_ceil(2));
    if free_mb < need {
        out.push(problem(
            format!("hugepages: {free_mb} MiB free of {total_mb} MiB reserved; [eal] memory_mb needs {need} MiB"),
            format!(
                "sysctl -w vm.nr_hugepages={pages} and persist it with `echo vm.nr_hugepages = {pages} > /etc/sysctl.d/80-patronus.conf` \
                 (scripts/install.sh --hugepages {pages} does both); or set [eal] hugepages = false"
            ),
        ));
    } else {
        out.push(ok(format!("hugepages: {free_mb} MiB free of {total_mb} MiB reserved (needs {need} MiB)")));
    }
    let mounts = m.read("/proc/mounts").unwrap_or_default();
    if !mounts.lines().any(|l| l.split_whitespace().nth(2) == Some("hugetlbfs")) {
        out.push(problem(
            "no hugetlbfs mounted: DPDK cannot map the hugepages".into(),
            "mkdir -p /dev/hugepages && mount -t hugetlbfs nodev /dev/hugepages (systemd's dev-hugepages.mount does it at boot)".into(),
        ));
    }
}

fn nics(cfg: &Config, m: &Machine, out: &mut Vec<Finding>) {
    let mut any_pci = false;
    let mut vfio = false;
    for (i, p) in cfg.port.iter().enumerate() {
        let Ok(Device::Pci(addr)) = Device::parse(&p.device) else {
            continue;
        };
        any_pci = true;
        let dev = m.path(&format!("/sys/bus/pci/devices/{addr}"));
        if !dev.exists() {
            out.push(problem(
                format!("port[{i}].device ({}): {addr} is not on this machine", p.name),
                format!("`lspci -D | grep -i ether` lists the NICs; put one of their addresses in port[{i}].device"),
            ));
            continue;
        }
        let driver = std::fs::read_link(dev.join("driver")).ok().and_then(|d| d.file_name().map(|f| f.to_string_lossy().into_owned()));
        match driver.as_deref() {
            Some("vfio-pci") => {
                vfio = true;
                out.push(ok(format!("port[{i}].device ({}): {addr} bound to vfio-pci", p.name)));
            }
            Some(d @ ("uio_pci_generic" | "igb_uio")) => out.push(ok(format!("port[{i}].device ({}): {addr} bound to {d}", p.name))),
            Some(d @ ("mlx5_core" | "mlx4_core")) => {
                out.push(ok(format!("port[{i}].device ({}): {addr} on {d} (Mellanox: DPDK shares the kernel driver)", p.name)))
            }
            Some(d) => out.push(problem(
                format!("port[{i}].device ({}): {addr} is bound to the kernel driver {d}; DPDK cannot use it", p.name),
                format!("ip link set <its interface> down; dpdk-devbind.py --bind=vfio-pci {addr} (scripts/install.sh binds the config's NICs and remembers {d})"),
            )),
            None => out.push(problem(
                format!("port[{i}].device ({}): {addr} has no driver", p.name),
                format!("modprobe vfio-pci && dpdk-devbind.py --bind=vfio-pci {addr}"),
            )),
        }
    }
    if !any_pci {
        out.push(ok("no PCI ports (virtual devices only): IOMMU and NIC bindings not needed".into()));
        return;
    }
    if !m.path("/sys/bus/pci/drivers/vfio-pci").exists() && !vfio {
        out.push(problem(
            "the vfio-pci driver is not loaded".into(),
            "modprobe vfio-pci; echo vfio-pci > /etc/modules-load.d/patronus.conf (scripts/install.sh does both)".into(),
        ));
    }
    let groups = std::fs::read_dir(m.path("/sys/kernel/iommu_groups")).map(|d| d.count()).unwrap_or(0);
    let noiommu = m.read("/sys/module/vfio/parameters/enable_unsafe_noiommu_mode").is_some_and(|v| v == "Y" || v == "1");
    if groups > 0 {
        out.push(ok(format!("IOMMU on ({groups} groups)")));
    } else if noiommu {
        out.push(warn(
            "no IOMMU; vfio runs in unsafe no-IOMMU mode (the NICs can DMA anywhere)".into(),
            "turn the IOMMU on: intel_iommu=on iommu=pt (Intel) or amd_iommu=on (AMD) on GRUB_CMDLINE_LINUX, update-grub, reboot".into(),
        ));
    } else {
        out.push(problem(
            "no IOMMU groups: vfio-pci cannot take the NICs".into(),
            "enable VT-d/AMD-Vi in the firmware and add intel_iommu=on iommu=pt (Intel) or amd_iommu=on (AMD) to GRUB_CMDLINE_LINUX, \
             update-grub, reboot; without an IOMMU: echo 1 > /sys/module/vfio/parameters/enable_unsafe_noiommu_mode"
                .into(),
        ));
    }
}

/// The report `patronus check` prints; returns it and whether a problem was found.
pub fn report(findings: &[Finding]) -> (String, bool) {
    let mut s = String::from("environment:\n");
    for f in findings {
        let tag = match f.level {
            Level::Ok => "ok",
            Level::Warning => "warning",
            Level::Problem => "problem",
        };
        s += &format!("  {tag:<8} {}\n", f.what);
        if let Some(fix) = &f.fix {
            s += &format!("           fix: {fix}\n");
        }
    }
    let problems = findings.iter().filter(|f| f.level == Level::Problem).count();
    let warnings = findings.iter().filter(|f| f.level == Level::Warning).count();
    s += &format!("environment: {problems} problem(s), {warnings} warning(s)\n");
    (s, problems > 0)
}

/// The real machine.
pub fn here() -> Machine {
    Machine { offloads: kernel_offloads, ..Machine::new(Path::new("/")) }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(extra: &str, devices: (&str, &str), workers: &str, huge: bool) -> Config {
        let mut t = crate::fixture::TwoPorts::new()
            .eal(&format!("worker_lcores = {workers}"))
            .eal(&format!("hugepages = {huge}"))
            .eal("memory_mb = 1024")
            .devices(devices.0, devices.1);
        for line in extra.lines().filter(|l| !l.trim().is_empty()) {
            t = t.eal(line);
        }
        let text = t.toml();
        Config::parse(Path::new("t.toml"), &text).unwrap()
    }

    fn machine(files: &[(&str, &str)], links: &[(&str, &str)], dirs: &[&str]) -> (tempdir::Dir, Machine) {
        let d = tempdir::Dir::new();
        for (p, body) in files {
            let f = d.0.join(p);
            std::fs::create_dir_all(f.parent().unwrap()).unwrap();
            std::fs::write(f, body).unwrap();
        }
        for (p, target) in links {
            let f = d.0.join(p);
            std::fs::create_dir_all(f.parent().unwrap()).unwrap();
            std::os::unix::fs::symlink(target, f).unwrap();
        }
        for p in dirs {
            std::fs::create_dir_all(d.0.join(p)).unwrap();
        }
        let m = Machine::new(d.0.clone());
        (d, m)
    }

    mod tempdir {
        pub struct Dir(pub std::path::PathBuf);
        impl Dir {
            pub fn new() -> Dir {
                static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
                let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let p = std::env::temp_dir().join(format!("patronus-envcheck-{}-{n}", std::process::id()));
                let _ = std::fs::remove_dir_all(&p);
                std::fs::create_dir_all(&p).unwrap();
                Dir(p)
            }
        }
        impl Drop for Dir {
            fn drop(&mut self) {
                let _ = std::fs::remove_dir_all(&self.0);
            }
        }
    }

    fn problems(f: &[Finding]) -> Vec<&Finding> {
        f.iter().filter(|f| f.level == Level::Problem).collect()
    }

    #[test]
    fn a_well_set_up_box_has_no_problem() {
        let (_d, m) = machine(
            &[
                ("sys/devices/system/cpu/online", "0-3\n"),
                ("sys/devices/system/cpu/isolated", "2-3\n"),
                ("sys/kernel/mm/hugepages/hugepages-2048kB/free_hugepages", "1024\n"),
                ("sys/kernel/mm/hugepages/hugepages-2048kB/nr_hugepages", "1024\n"),
                ("proc/mounts", "hugetlbfs /dev/hugepages hugetlbfs rw 0 0\n"),
                ("sys/bus/pci/devices/0000:03:00.0/vendor", "0x8086"),
                ("sys/bus/pci/devices/0000:03:00.1/vendor", "0x8086"),
            ],
            &[
                ("sys/bus/pci/devices/0000:03:00.0/driver", "../../../bus/pci/drivers/vfio-pci"),
                ("sys/bus/pci/devices/0000:03:00.1/driver", "../../../bus/pci/drivers/vfio-pci"),
            ],
            &["sys/bus/pci/drivers/vfio-pci", "sys/kernel/iommu_groups/7"],
        );
        let f = inspect(&cfg("", ("0000:03:00.0", "0000:03:00.1"), "[2, 3]", true), &m);
        let (text, bad) = report(&f);
        assert!(!bad, "{text}");
        assert!(f.iter().all(|f| f.level == Level::Ok), "{text}");
        assert!(text.contains("bound to vfio-pci") && text.contains("IOMMU on (1 groups)") && text.contains("isolated"), "{text}");
    }

    #[test]
    fn each_problem_is_named_with_its_fix() {
        let (_d, m) = machine(
            &[
                ("sys/devices/system/cpu/online", "0-1\n"),
                ("sys/devices/system/cpu/isolated", "\n"),
                ("sys/kernel/mm/hugepages/hugepages-2048kB/free_hugepages", "0\n"),
                ("sys/kernel/mm/hugepages/hugepages-2048kB/nr_hugepages", "0\n"),
                ("proc/mounts", "sysfs /sys sysfs rw 0 0\n"),
                ("sys/bus/pci/devices/0000:03:00.0/vendor", "0x8086"),
            ],
            &[("sys/bus/pci/devices/0000:03:00.0/driver", "../../../bus/pci/drivers/ixgbe")],
            &[],
        );
        // Lcores beyond the CPUs: named, with CPUs that exist as the fix.
        let f = inspect(&cfg("", ("0000:03:00.0", "0000:04:00.0"), "[1, 5]", true), &m);
        let (text, bad) = report(&f);
        assert!(bad);
        assert!(text.contains("eal.worker_lcores: lcore 5 runs on CPU 5, which this machine does not have (online: 0-1)"), "{text}");
        assert!(text.contains("hugepages: 0 MiB free of 0 MiB reserved; [eal] memory_mb needs 1024 MiB"), "{text}");
        assert!(text.contains("fix: sysctl -w vm.nr_hugepages=576"), "{text}");
        assert!(text.contains("no hugetlbfs mounted"), "{text}");
        assert!(text.contains("port[0].device (lan0): 0000:03:00.0 is bound to the kernel driver ixgbe"), "{text}");
        assert!(text.contains("dpdk-devbind.py --bind=vfio-pci 0000:03:00.0"), "{text}");
        assert!(text.contains("port[1].device (wan0): 0000:04:00.0 is not on this machine"), "{text}");
        assert!(text.contains("the vfio-pci driver is not loaded") && text.contains("modprobe vfio-pci"), "{text}");
        assert!(text.contains("no IOMMU groups") && text.contains("intel_iommu=on"), "{text}");
        assert!(problems(&f).iter().all(|p| p.fix.is_some()));

        // Lcores that exist but are not isolated: a warning, not a problem.
        let f = inspect(&cfg("", ("net_null0", "net_null1"), "[1]", false), &m);
        let (text, bad) = report(&f);
        assert!(!bad, "{text}");
        assert!(text.contains("worker CPU(s) 1 not isolated") && text.contains("isolcpus=1 nohz_full=1 rcu_nocbs=1"), "{text}");
        assert!(text.contains("no PCI ports"), "{text}");
    }

    #[test]
    fn vdev_interfaces_must_exist_and_af_packet_ones_should_not_offload() {
        let (_d, mut m) = machine(&[("sys/devices/system/cpu/online", "0-3\n")], &[], &["sys/class/net/veth-a", "sys/class/net/veth-b"]);
        m.offloads = |i| Some(if i == "veth-a" { vec!["tx-checksumming", "generic-receive-offload"] } else { vec![] });
        let c = cfg("", ("net_af_packet0,iface=veth-a", "net_af_xdp0,iface=nope,start_queue=0"), "[1]", false);
        let f = interfaces(&c, &m);
        let (text, bad) = report(&f);
        assert!(bad, "{text}");
        assert!(text.contains("warning  port[0].device (lan0): iface=veth-a: tx-checksumming, generic-receive-offload on"), "{text}");
        assert!(text.contains("fix: ethtool -K veth-a tx off rx off tso off gso off gro off"), "{text}");
        assert!(text.contains("problem  port[1].device (wan0): iface=nope: no such network interface here"), "{text}");
        // inspect() includes them; pcap's interfaces are checked for existence only.
        let c = cfg("", ("net_pcap0,rx_iface=veth-b,tx_iface=veth-a", "net_af_packet1,iface=veth-b"), "[1]", false);
        let (text, bad) = report(&inspect(&c, &m));
        assert!(!bad, "{text}");
        assert!(text.contains("ok       port[0].device (lan0): rx_iface=veth-b: interface exists"), "{text}");
        assert!(
            text.contains("ok       port[1].device (wan0): iface=veth-b: interface exists, checksum and segmentation offloads off"),
            "{text}"
        );
    }

    #[test]
    fn several_workers_are_told_which_ports_spread_in_software() {
        let spread_of = |devices, workers| {
            let mut out = Vec::new();
            spread(&cfg("", devices, workers, false), &mut out);
            report(&out).0
        };
        assert!(
            spread_of(("net_af_packet0,iface=a", "0000:03:00.0"), "[1]").contains("0 problem(s), 0 warning(s)"),
            "one worker: nothing to say"
        );
        let text = spread_of(("net_af_packet0,iface=a,qpairs=2", "0000:03:00.0"), "[1, 2]");
        assert!(
            text.contains("port[0].device (lan0): net_af_packet cannot spread flows by the symmetric RSS key; with 2 workers"),
            "{text}"
        );
        assert!(text.contains("qpairs=2 gives the 2 workers and the control thread 2 TX queue(s)"), "{text}");
        assert!(text.contains("fix: qpairs=3 and rx_queues = 3"), "{text}");
        assert!(
            text.contains("ok       port[1].device (wan0): a NIC: the symmetric RSS key and redirection table are set at start"),
            "{text}"
        );
        assert!(!spread_of(("net_af_packet0,iface=a,qpairs=3", "net_null0"), "[1, 2]").contains("qpairs="));
    }

    #[test]
    fn the_real_loopback_reports_its_offloads() {
        // `lo` exists everywhere; the ioctl answers for it (its flags vary).
        assert!(kernel_offloads("lo").is_some());
        assert!(kernel_offloads("no-such-if0").is_none());
    }

    #[test]
    fn cpu_lists_parse() {
        assert_eq!(parse_cpu_list("0-3,8,10-11\n"), vec![0, 1, 2, 3, 8, 10, 11]);
        assert_eq!(parse_cpu_list(""), Vec::<u32>::new());
        assert_eq!(list_ranges(&[0, 1, 2, 5, 7, 8]), "0-2,5,7-8");
    }
}
