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
