//! QoS end to end: the appliance's WAN port feeds a 50 Mbit/s link with a
//! deep buffer (`tbf` on its veth, as a real WAN modem). iperf3 saturates
//! it while a ping marked EF (from a trusted LAN port: RealTime) measures
//! the delay. Without QoS the link's buffer fills (bufferbloat); with the
//! port shaped just below the link rate, the queue stays in the
//! appliance, where RealTime goes first and CoDel keeps bulk queues short.

mod common;

use std::time::Duration;

use common::*;

/// Ping statistics: (average, maximum) RTT in ms.
fn rtt(out: &str) -> (f64, f64) {
    let line = out.lines().find(|l| l.contains("min/avg/max")).unwrap_or_else(|| panic!("no ping summary:\n{out}"));
    let v: Vec<f64> = line.split('=').nth(1).unwrap().trim().split(' ').next().unwrap().split('/').map(|x| x.parse().unwrap()).collect();
    (v[1], v[2])
}

/// iperf3 from A to B for `secs` (UDP at 70 Mbit/s: more than the link
/// takes, whatever it does with losses) while A pings B with EF; returns
/// the loaded (avg, max) RTT and the rate that arrived, Mbit/s.
fn loaded(lab: &Lab, secs: u32) -> ((f64, f64), f64) {
    let iperf = std::process::Command::new("ip")
        .args(["netns", "exec", &lab.a, "iperf3", "-c", "10.2.0.2", "-u", "-b", "70M", "-l", "1400", "-t", &secs.to_string(), "-J"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_secs(2));
    let (ok, ping) = lab.in_a(&format!("ping -Q 0xb8 -c {} -i 0.1 -W 2 10.2.0.2", (secs - 3) * 10));
    assert!(ok, "{ping}");
    let out = wait_output(iperf, Duration::from_secs(secs as u64 + 30));
    assert!(out.status.success(), "iperf3: {}{}", text(&out.stdout), text(&out.stderr));
    let v: serde_json::Value = serde_json::from_str(&text(&out.stdout)).unwrap();
    (
        rtt(&ping),
        v["end"]["sum"]["bits_per_second"].as_f64().unwrap() * (1.0 - v["end"]["sum"]["lost_percent"].as_f64().unwrap_or(0.0) / 100.0)
            / 1e6,
    )
}

#[test]
fn shaping_below_the_link_keeps_realtime_delay_flat_under_a_saturating_transfer() {
    let name = "qos::shaping_below_the_link_keeps_realtime_delay_flat_under_a_saturating_transfer";
    if let Some(why) = netns_unavailable() {
        return skip(name, &why);
    }
    if !try_sh("command -v iperf3 && command -v tc").0 {
        return skip(name, "`iperf3` or `tc` is not installed (scripts/setup.sh installs them)");
    }
    let lab = Lab::new("qs");
    // The WAN link: 50 Mbit/s with half a second of buffer, on the
    // appliance's side of the veth toward B.
    sh(&format!("ip netns exec {} tc qdisc replace dev {} root tbf rate 50mbit burst 32kb latency 500ms", lab.r, lab.b1));
    let (ok, out) = lab.in_b("iperf3 -s -D");
    assert!(ok, "{out}");
    let dir = Scratch::new("qos-lab");
    let mut results = Vec::new();
    for shaped in [false, true] {
        let pfx = prefix(if shaped { "qsy" } else { "qsn" });
        let mut cfg = lab.config(&pfx);
        // lan0 trusts its hosts' DSCP; wan0 optionally shaped to 48 Mbit/s.
        cfg = cfg.replacen("role = \"lan\"\n", "role = \"lan\"\ntrust_dscp = true\n", 1);
        // Through the veth's qdisc (the link), not around it.
        cfg = cfg.replace(&format!("iface={},", lab.b1), &format!("iface={},qdisc_bypass=0,", lab.b1));
        if shaped {
            let at = cfg.find("[[port]]\nname = \"wan0\"").unwrap();
            let end = cfg[at..].find("\n\n").map_or(cfg.len(), |e| at + e);
            cfg.insert_str(end, "\n\n[port.qos]\nrate_mbps = 48");
        }
        let file = dir.write(&format!("c{}.toml", shaped as u8), &cfg);
        let app = lab.start(&file);
        let (ok, idle) = lab.in_a("ping -Q 0xb8 -c 20 -i 0.05 -W 1 10.2.0.2");
        assert!(ok, "{idle}");
        let idle = rtt(&idle);
        let (load, mbps) = loaded(&lab, 10);
        let qos = run_with_timeout(patronus().args(["show", "qos", "--json", "--socket"]).arg(socket_path(&pfx)), Duration::from_secs(10));
        let out = stop(app);
        assert!(out.status.success(), "{}", text(&out.stderr));
        println!(
            "qos {}: idle RTT avg {:.2} ms; under iperf3 ({mbps:.1} Mbit/s) avg {:.2} ms, max {:.2} ms",
            if shaped { "on (48 Mbit/s)" } else { "off" },
            idle.0,
            load.0,
            load.1
        );
        results.push((idle, load, mbps, text(&qos.stdout)));
    }
    let (_, bloat, _, _) = &results[0];
    let (idle, flat, mbps, qos) = &results[1];
    assert!(bloat.0 > 50.0, "without QoS the link's buffer fills: {bloat:?}");
    assert!(
        flat.0 < idle.0 + 5.0 && flat.1 < idle.1 + 15.0,
        "with QoS RealTime stays within a few ms of idle: idle {idle:?}, loaded {flat:?}"
    );
    assert!(*mbps > 40.0, "the transfer still gets the link: {mbps} Mbit/s");
    let v: serde_json::Value = serde_json::from_str(qos).expect("show qos JSON");
    let rows = v["qos"].as_array().unwrap();
    let row = |class: &str| rows.iter().find(|r| r["port"] == "wan0" && r["class"] == class).unwrap_or_else(|| panic!("{class}: {v}"));
    assert!(row("realtime")["sent_packets"].as_u64().unwrap() >= 70, "the EF pings went RealTime: {v}");
    assert!(row("standard")["sent_bytes"].as_u64().unwrap() > 10_000_000, "iperf3 went Standard: {v}");
    assert!(
        row("control")["sent_packets"].as_u64().unwrap() >= 1,
        "the appliance's own packets (ARP to B) went Control, through the shaper: {v}"
    );
}
