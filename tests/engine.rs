//! End-to-end tests of the poll-mode engine: the `patronus` binary on DPDK
//! virtual devices.

mod common;

use std::time::{Duration, Instant};

use common::*;
use pcap_file::pcap::{PcapPacket, PcapReader, PcapWriter};

const LIMIT: Duration = Duration::from_secs(60);

/// A config with two ports joined by a cross-connect.
fn two_port_config(prefix: &str, lan: &str, wan: &str, mode: &str) -> String {
    TwoPorts::appliance(prefix)
        .main_lcore(0)
        .worker(&format!("poll_mode = \"{mode}\""))
        .devices(lan, wan)
        .extra(&control_section(prefix))
        .toml()
}

/// Deterministic frames of many sizes: Ethernet header then a counter pattern.
fn frames(n: usize) -> Vec<Vec<u8>> {
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    (0..n)
        .map(|i| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let len = 60 + (seed % 1455) as usize;
            let mut f: Vec<u8> = (0..len).map(|j| (j as u64 ^ seed >> (j % 56)) as u8).collect();
            f[12..14].copy_from_slice(&[0x08, 0x00]);
            f[14..18].copy_from_slice(&(i as u32).to_be_bytes());
            f
        })
        .collect()
}

fn write_pcap(path: &std::path::Path, frames: &[Vec<u8>]) {
    let mut w = PcapWriter::new(std::fs::File::create(path).unwrap()).unwrap();
    for (i, f) in frames.iter().enumerate() {
        w.write_packet(&PcapPacket::new(Duration::from_micros(i as u64), f.len() as u32, f)).unwrap();
    }
}

/// Packets of a capture that may still be being written: whole records only.
fn read_pcap(path: &std::path::Path) -> Vec<Vec<u8>> {
    let Ok(file) = std::fs::File::open(path) else { return vec![] };
    let Ok(mut r) = PcapReader::new(file) else { return vec![] };
    let mut out = vec![];
    while let Some(Ok(p)) = r.next_packet() {
        out.push(p.data.into_owned());
    }
    out
}

#[test]
fn a_capture_crosses_the_appliance_byte_exact() {
    let dir = Scratch::new("xconnect-pcap");
    let input = frames(1000);
    let in_pcap = dir.path("in.pcap");
    write_pcap(&in_pcap, &input);
    let (lan_out, wan_out) = (dir.path("lan_out.pcap"), dir.path("wan_out.pcap"));
    let lan = format!("net_pcap0,rx_pcap={},tx_pcap={}", in_pcap.display(), lan_out.display());
    let wan = format!("net_pcap1,tx_pcap={}", wan_out.display());
    let cfg = dir.write("c.toml", &two_port_config(&prefix("pcap"), &lan, &wan, "adaptive"));

    let child = patronus()
        .arg("run")
        .arg("--config")
        .arg(&cfg)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let start = Instant::now();
    while read_pcap(&wan_out).len() < input.len() && start.elapsed() < LIMIT {
        std::thread::sleep(Duration::from_millis(50));
    }
    signal(&child, libc::SIGINT);
    let out = wait_output(child, LIMIT);
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert!(out.status.success(), "exit {}\n{stdout}\n{stderr}", code(out.status));

    let forwarded = read_pcap(&wan_out);
    assert_eq!(forwarded.len(), input.len(), "{stdout}");
    for (i, (a, b)) in input.iter().zip(&forwarded).enumerate() {
        assert!(a == b, "frame {i} differs ({} vs {} bytes)", a.len(), b.len());
    }
    assert!(read_pcap(&lan_out).is_empty(), "nothing comes back on the LAN side");

    let lan_row = report_row(&stdout, "lan0");
    let wan_row = report_row(&stdout, "wan0");
    assert_eq!(lan_row[0], 1000, "lan0 rx_packets\n{stdout}");
    assert_eq!(lan_row[1], input.iter().map(|f| f.len() as u64).sum::<u64>(), "lan0 NIC rx bytes");
    assert_eq!(wan_row[2], 1000, "wan0 tx_packets\n{stdout}");
    assert_eq!(wan_row[4], 0, "no drops");
    assert!(stdout.contains("drops by reason: none"), "{stdout}");
    assert!(stdout.lines().any(|l| l.starts_with("mempool ") && l.contains("all ") && l.ends_with("mbufs returned")), "{stdout}");
}

#[test]
fn sigterm_stops_workers_and_ports_and_returns_every_mbuf() {
    let dir = Scratch::new("sigterm");
    let cfg = dir.write("c.toml", &two_port_config(&prefix("sigterm"), "net_null0", "net_null1", "poll"));
    let mut child = patronus()
        .arg("run")
        .arg("--config")
        .arg(&cfg)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(2500));
    assert!(child.try_wait().unwrap().is_none(), "still running");
    signal(&child, libc::SIGTERM);
    let out = wait_output(child, LIMIT);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "exit {}\n{stdout}\n{}", code(out.status), text(&out.stderr));
    // The once-a-second summary names every port and the worker's CPU use.
    let summary = stdout.lines().find(|l| l.starts_with("[") && l.contains("s] lan0 rx ")).unwrap_or_else(|| panic!("{stdout}"));
    assert!(summary.contains("Mpps") && summary.contains("wan0 rx") && summary.contains("cpu lcore1"), "{summary}");
    assert!(stdout.contains("patronus: stopped after"), "{stdout}");
    let lan = report_row(&stdout, "lan0");
    let wan = report_row(&stdout, "wan0");
    assert!(lan[0] > 1_000_000, "net_null forwards millions per second: {lan:?}");
    // Everything received on one side left by the other (TX to net_null never refuses).
    assert_eq!(lan[0], wan[2]);
    assert_eq!(wan[0], lan[2]);
    assert!(stdout.contains("worker lcore 1: rx "), "{stdout}");
    assert!(stdout.lines().any(|l| l.starts_with("mempool ") && l.contains(": all ")), "{stdout}");
}

#[test]
fn adaptive_mode_sleeps_when_idle_and_busy_mode_never_does() {
    let dir = Scratch::new("adaptive");
    let empty = dir.path("empty.pcap");
    write_pcap(&empty, &[]);
    for mode in ["adaptive", "poll"] {
        let lan = format!("net_pcap0,rx_pcap={}", empty.display());
        let wan = format!("net_pcap1,rx_pcap={}", empty.display());
        let cfg = dir.write("c.toml", &two_port_config(&prefix(mode), &lan, &wan, mode));
        let out = run_with_timeout(patronus().arg("run").arg("--config").arg(&cfg).arg("--duration").arg("1.5"), LIMIT);
        let stdout = text(&out.stdout);
        assert!(out.status.success(), "{mode}: exit {}\n{stdout}\n{}", code(out.status), text(&out.stderr));
        let worker = stdout.lines().find(|l| l.starts_with("worker lcore 1:")).unwrap();
        let sleeps: u64 = worker.rsplit("sleeps ").next().unwrap().trim().parse().unwrap();
        if mode == "adaptive" {
            assert!(sleeps > 100, "idle adaptive worker naps: {worker}");
        } else {
            assert_eq!(sleeps, 0, "{worker}");
        }
    }
}

/// Each bad config: exit status 2, one line on stderr naming file, line and
/// field, nothing on stdout, and no sign that EAL started.
#[test]
fn bad_configs_give_one_line_errors_and_start_nothing() {
    let dir = Scratch::new("badcfg");
    let good = two_port_config(&prefix("bad"), "net_null0", "net_null1", "poll");
    let cases: &[(&str, String, &str)] = &[
        ("unknown-field", good.replace("role = \"wan\"", "role = \"wan\"\nspeed = 10"), ":22:1: port[1].speed: unknown field `speed`"),
        ("missing-port", good[..good.find("[[port]]").unwrap()].to_string(), ":12:1: port: no ports are defined"),
        ("bad-device", good.replace("\"net_null1\"", "\"eth1\""), ":20:10: port[1].device: \"eth1\": expected a PCI address"),
        (
            "worker-is-main",
            good.replace("worker_lcores = [1]", "worker_lcores = [0]"),
            ":3:18: eal.worker_lcores[0]: lcore 0 is the main lcore",
        ),
        ("forward-to-nowhere", good.replace("forward = \"lan0\"", "forward = \"lan7\""), ":22:11: port[1].forward: no port named \"lan7\""),
    ];
    for (name, body, expect) in cases {
        let file = dir.write(&format!("{name}.toml"), body);
        for cmd in ["run", "check"] {
            let out = run_with_timeout(patronus().arg(cmd).arg("--config").arg(&file), LIMIT);
            let stderr = text(&out.stderr);
            assert_eq!(out.status.code(), Some(2), "{name} {cmd}: exit {}\n{stderr}", code(out.status));
            assert_eq!(stderr.lines().count(), 1, "{name} {cmd}: one line:\n{stderr}");
            let want = format!("patronus: error: {}{expect}", file.display());
            assert!(stderr.starts_with(&want), "{name} {cmd}:\n got: {stderr}\nwant: {want}");
            assert!(out.stdout.is_empty(), "{name} {cmd}: started something:\n{}", text(&out.stdout));
            assert!(!stderr.contains("EAL"), "{name}: EAL must not start");
        }
    }
}

#[test]
fn check_accepts_every_shipped_config() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../conf");
    let mut n = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        // The DPI signatures are not an appliance config: tests/classify.rs
        // loads them.
        if path.extension().is_some_and(|e| e == "toml") && !path.ends_with("signatures.toml") {
            // The file only: conf/appliance.toml names PCI NICs this machine lacks.
            let out = run_with_timeout(patronus().args(["check", "--no-env", "--config"]).arg(&path), LIMIT);
            assert!(out.status.success(), "{}: {}", path.display(), text(&out.stderr));
            assert!(text(&out.stdout).contains(": OK ("), "{}", text(&out.stdout));
            n += 1;
        }
    }
    assert!(n >= 2, "conf/ holds the default and the router example");
}

#[test]
fn the_config_reference_lists_every_drop_reason() {
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/CONFIG.md")).unwrap();
    for r in dataplane::counters::DropReason::ALL {
        assert!(doc.contains(&format!("| `{}` |", r.name())), "docs/CONFIG.md does not explain drop reason {}", r.name());
    }
}

#[test]
fn eal_and_device_failures_are_clear_messages_not_aborts() {
    let dir = Scratch::new("ealfail");
    let good = two_port_config(&prefix("ealfail"), "net_null0", "net_null1", "poll");
    let cases = [
        (
            "eal-arg",
            good.replace("extra_args = [\"--no-telemetry\"]", "extra_args = [\"--no-such-eal-option\"]"),
            "EAL initialisation failed: rte_eal_init failed",
        ),
        ("no-driver", good.replace("\"net_null1\"", "\"net_bogus1\""), "port wan0: device \"net_bogus1\" could not be probed"),
        ("no-pci-device", good.replace("\"net_null1\"", "\"0000:ff:1f.7\""), "port wan0: device \"0000:ff:1f.7\" could not be probed"),
    ];
    for (name, body, expect) in cases {
        let file = dir.write(&format!("{name}.toml"), &body);
        let out = run_with_timeout(patronus().arg("run").arg("--config").arg(&file), LIMIT);
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{name}: exit {}\n{stderr}", code(out.status));
        let ours = format!("patronus: error: {}: ", file.display());
        let line = stderr.lines().find(|l| l.starts_with(&ours)).unwrap_or_else(|| panic!("{name}: no line naming the config:\n{stderr}"));
        assert!(line.contains(expect), "{name}: {line}");
        assert!(!stderr.contains("panicked"), "{name}: {stderr}");
    }
}

/// Two workers sharing CPU 1 (lcore 2 mapped onto it): every port gets an
/// RX queue per worker (RSS), a TX queue per worker plus one for control,
/// and both workers carry traffic.
#[test]
fn two_workers_each_get_their_own_queues() {
    let dir = Scratch::new("two-workers");
    let cfg = two_port_config(&prefix("two"), "net_null0", "net_null1", "adaptive")
        .replace("worker_lcores = [1]", "worker_lcores = [1, 2]\ncpu_map = \"2@1\"");
    let cfg = dir.write("c.toml", &cfg);
    let out = run_with_timeout(patronus().arg("run").arg("--config").arg(&cfg).arg("--duration").arg("2"), LIMIT);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "exit {}\n{stdout}\n{}", code(out.status), text(&out.stderr));
    for port in ["lan0", "wan0"] {
        let line = stdout.lines().find(|l| l.starts_with(&format!("patronus: port {port} "))).unwrap();
        assert!(line.contains("2 RX / 3 TX queues"), "{line}");
    }
    let rx: Vec<u64> = stdout
        .lines()
        .filter(|l| l.starts_with("worker lcore "))
        .map(|l| l.split(" rx ").nth(1).unwrap().split(' ').next().unwrap().parse().unwrap())
        .collect();
    assert_eq!(rx.len(), 2, "{stdout}");
    assert!(rx.iter().all(|&n| n > 10_000), "both workers forward: {rx:?}");
    let (lan, wan) = (report_row(&stdout, "lan0"), report_row(&stdout, "wan0"));
    assert_eq!(rx.iter().sum::<u64>(), lan[0] + wan[0], "per-worker counts add up to the port totals");
    assert_eq!(lan[0], wan[2]);
    assert!(stdout.lines().any(|l| l.starts_with("mempool ") && l.contains(": all ")), "{stdout}");
}

/// A device with fewer queues than the workers need: too few TX queues is a
/// clear error; too few RX queues and no spare TX queue are notes.
#[test]
fn devices_with_few_queues_are_reported() {
    let dir = Scratch::new("few-queues");
    let empty = dir.path("empty.pcap");
    write_pcap(&empty, &[]);
    let two = |cfg: String| cfg.replace("worker_lcores = [1]", "worker_lcores = [1, 2]\ncpu_map = \"2@1\"");

    let one_txq = format!("net_pcap0,rx_pcap={},tx_pcap={}", empty.display(), dir.path("o.pcap").display());
    let cfg = dir.write("one.toml", &two(two_port_config(&prefix("fewq1"), &one_txq, "net_null1", "adaptive")));
    let out = run_with_timeout(patronus().arg("run").arg("--config").arg(&cfg), LIMIT);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("port lan0: the device offers 1 TX queue(s) but each of the 2 workers needs its own"), "{stderr}");

    let two_txq = format!(
        "net_pcap0,rx_pcap={},tx_pcap={},tx_pcap={}",
        empty.display(),
        dir.path("o1.pcap").display(),
        dir.path("o2.pcap").display()
    );
    let cfg = dir.write("two.toml", &two(two_port_config(&prefix("fewq2"), &two_txq, "net_null1", "adaptive")));
    let out = run_with_timeout(patronus().arg("run").arg("--config").arg(&cfg).arg("--duration").arg("1"), LIMIT);
    let stderr = text(&out.stderr);
    assert!(out.status.success(), "{stderr}\n{}", text(&out.stdout));
    assert!(
        stderr.contains("patronus: warning: port lan0: device offers 1 RX queue(s) for 2 workers; only the first 1 poll it"),
        "{stderr}"
    );
    assert!(stderr.contains("patronus: warning: port lan0: no spare TX queue for the control thread"), "{stderr}");
}
