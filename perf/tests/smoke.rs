//! patronus-perf runs every forwarding mode end to end on net_null and
//! reports in the format the comparison script parses. (Speed itself is
//! measured by scripts/perf-compare.sh, not here.)

use std::process::Command;

#[test]
fn every_mode_forwards_and_reports() {
    for mode in ["io", "mac", "macswap"] {
        let out = Command::new(env!("CARGO_BIN_EXE_patronus-perf"))
            .args(["--vdev", "net_null0", "--vdev", "net_null1", "--duration", "1", "--warmup", "0.2", "--stats-period", "1"])
            .args(["--forward-mode", mode, "--memory-mb", "512"])
            .args(["--file-prefix", &format!("smoke{}-{mode}", std::process::id())])
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{mode}: {stdout}\n{}", String::from_utf8_lossy(&out.stderr));
        assert!(stdout.contains("NIC statistics for port 0"), "testpmd-style blocks: {stdout}");
        assert!(stdout.contains("Rx-pps:") && stdout.contains("CPU cycles/packet="), "{stdout}");
        let result = stdout.lines().find(|l| l.starts_with("RESULT ")).unwrap();
        assert!(result.starts_with(&format!("RESULT mode={mode} ports=2 cores=1 burst=32 mpps=")), "{result}");
        let mpps: f64 = result.split("mpps=").nth(1).unwrap().split(' ').next().unwrap().parse().unwrap();
        assert!(mpps > 0.1, "{result}");
        assert!(
            stdout.lines().any(|l| l.contains("mempool") && {
                let n: Vec<&str> = l.split_whitespace().collect();
                n[2] == n[4]
            }),
            "every mbuf back: {stdout}"
        );
    }
}

#[test]
fn gen_pcap_writes_a_readable_capture() {
    let path = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("gen{}.pcap", std::process::id()));
    let out = Command::new(env!("CARGO_BIN_EXE_patronus-perf")).args(["gen-pcap", "--count", "5", "--out"]).arg(&path).output().unwrap();
    assert!(out.status.success());
    let bytes = std::fs::read(&path).unwrap();
    assert_eq!(bytes.len(), 24 + 5 * (16 + 60));
    assert_eq!(&bytes[..4], &[0xd4, 0xc3, 0xb2, 0xa1]);
    std::fs::remove_file(path).unwrap();
}

#[path = "../../tests/common/fixture.rs"]
mod fixture;

/// `--forward-mode appliance` runs the chain `patronus run` runs: both
/// build it with `dataplane::chain::appliance` (the compiler holds both to
/// its `Appliance` type) and print the stages it strings together; here
/// both binaries run, and their lines must be the same. The mode also
/// forwards: frames to the peer's allowed IPs leave sealed.
#[test]
fn the_appliance_mode_runs_the_chain_patronus_run_builds() {
    let want = format!("stage chain: {}", dataplane::chain::STAGES.join(" > "));
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("chain{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let pcap = dir.join("in.pcap");
    let perf = env!("CARGO_BIN_EXE_patronus-perf");
    assert!(Command::new(perf).args(["gen-pcap", "--count", "64", "--size", "200", "--out"]).arg(&pcap).status().unwrap().success());
    let out = Command::new(perf)
        .args(["--forward-mode", "appliance", "--duration", "1", "--warmup", "0.2", "--stats-period", "0", "--memory-mb", "512"])
        .arg("--vdev")
        .arg(format!("net_pcap0,rx_pcap={},infinite_rx=1", pcap.display()))
        .args(["--vdev", "net_null0,no-rx=1", "--file-prefix", &format!("chain{}", std::process::id())])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains(&want), "patronus-perf: {stdout}");
    let result = stdout.lines().find(|l| l.starts_with("RESULT mode=appliance ")).unwrap_or_else(|| panic!("{stdout}"));
    let sent: f64 = stdout
        .lines()
        .find(|l| l.contains("port 1:"))
        .and_then(|l| l.split("TX ").nth(1))
        .and_then(|t| t.split(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0);
    assert!(sent > 0.01, "sealed frames leave port 1: {result}\n{stdout}");
    std::fs::remove_file(&pcap).unwrap();

    // patronus run, the binary built beside patronus-perf.
    let patronus = std::path::Path::new(perf).with_file_name("patronus");
    if !patronus.exists() {
        let line = format!("SKIPPED the_appliance_mode_runs_the_chain_patronus_run_builds (patronus run half): {} is not built (cargo build --workspace builds it)", patronus.display());
        eprintln!("{line}");
        if let Ok(p) = std::env::var("PATRONUS_SKIP_LOG") {
            let _ = std::io::Write::write_all(
                &mut std::fs::OpenOptions::new().create(true).append(true).open(p).unwrap(),
                format!("{line}\n").as_bytes(),
            );
        }
        return;
    }
    let prefix = format!("chainrun{}", std::process::id());
    let cfg = dir.join("c.toml");
    std::fs::write(&cfg, fixture::TwoPorts::appliance(&prefix).extra("\n[control]\nsocket = \"\"\nmetrics_listen = \"\"\n").toml())
        .unwrap();
    let out = Command::new(&patronus).args(["run", "--duration", "0.5", "--config"]).arg(&cfg).output().unwrap();
    let all = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "patronus run: {all}");
    assert!(all.contains(&want), "patronus run: {all}");
    let _ = std::fs::remove_dir_all(&dir);
}
