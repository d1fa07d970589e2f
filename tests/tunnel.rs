//! Tunnels end to end against real WireGuard: wireguard-go (userspace
//! WireGuard on a TUN device) in host B's namespace is the peer; the
//! appliance's WAN port faces it over a veth (net_af_packet). Host A,
//! behind the appliance, pings B's tunnel address and runs iperf3 to it in
//! both directions, each across a rekey forced with `patronus rekey`.

mod common;

use std::time::{Duration, Instant};

use common::*;

/// One lab at a time: two appliances, wireguard-go and iperf3 at once on a
/// 2-core machine starve each other's handshakes.
static ONE_LAB_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

struct Keys {
    ours_pub: String,
    theirs_file: std::path::PathBuf,
    theirs_pub: String,
}

fn keys(dir: &Scratch) -> Keys {
    let ours = sh(&format!("{} genkey", env!("CARGO_BIN_EXE_patronus")));
    let key_file = dir.write("appliance.key", &ours);
    sh(&format!("chmod 600 {}", key_file.display()));
    let ours_pub = sh(&format!("{} pubkey < {}", env!("CARGO_BIN_EXE_patronus"), key_file.display())).trim().to_owned();
    let theirs = sh("wg genkey");
    let theirs_file = dir.write("wggo.key", &theirs);
    sh(&format!("chmod 600 {}", theirs_file.display()));
    let theirs_pub = sh(&format!("wg pubkey < {}", theirs_file.display())).trim().to_owned();
    Keys { ours_pub, theirs_file, theirs_pub }
}

/// Why these tests cannot run here (root, namespaces, `tools`), if they cannot.
fn unavailable(tools: &[&str]) -> Option<String> {
    netns_unavailable().or_else(|| {
        let missing = tools.iter().find(|t| !try_sh(&format!("command -v {t}")).0)?;
        Some(format!("`{missing}` is not installed (scripts/setup.sh installs it)"))
    })
}

/// Host B's wireguard-go interface `wg0`, once created: tunnel address
/// 10.99.0.2, the appliance as its peer, A's LAN routed through it.
fn configure_wggo(lab: &Lab, wg0: &str, k: &Keys) {
    sh(&format!(
        "ip netns exec {b} wg set {wg0} private-key {key} listen-port 51820 peer {peer} endpoint 10.2.0.1:51820 allowed-ips 10.1.0.0/24 && \
         ip netns exec {b} ip addr add 10.99.0.2/24 dev {wg0} && ip netns exec {b} ip link set {wg0} up && \
         ip netns exec {b} ip route add 10.1.0.0/24 dev {wg0}",
        b = lab.b,
        key = k.theirs_file.display(),
        peer = k.ours_pub,
    ));
}

/// The appliance on the lab's ports with wireguard-go as tunnel peer
/// "wggo"; `more` continues the peer's table (more fields, then tables).
fn appliance_config(lab: &Lab, pfx: &str, k: &Keys, more: &str) -> String {
    format!(
        "{}\n[site]\nprivate_key_file = \"appliance.key\"\n\n[tunnel]\nlisten_port = 51820\n\n[[tunnel.peer]]\nname = \"wggo\"\npublic_key = \"{}\"\n\
         endpoint = \"10.2.0.2:51820\"\nallowed_ips = [\"10.99.0.0/24\"]\n{more}",
        lab.config(pfx),
        k.theirs_pub
    )
}

/// Runs `iperf3 -c` in A for `secs`, forcing a rekey after 2 s; returns the
/// receiver's bits per second.
fn iperf_across_rekey(lab: &Lab, socket: &std::path::Path, reverse: bool, secs: u32) -> f64 {
    let cmd =
        format!("ip netns exec {} iperf3 -c 10.99.0.2 -t {secs} -J --connect-timeout 3000 {}", lab.a, if reverse { "-R" } else { "" });
    let child = std::process::Command::new("sh")
        .arg("-c")
        .arg(&cmd)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_secs(2));
    let r = run_with_timeout(patronus().arg("rekey").arg("--socket").arg(socket), Duration::from_secs(10));
    assert!(r.status.success(), "rekey: {}{}", text(&r.stdout), text(&r.stderr));
    let out = wait_output(child, Duration::from_secs(secs as u64 + 30));
    assert!(out.status.success(), "iperf3{}: {}{}", if reverse { " -R" } else { "" }, text(&out.stdout), text(&out.stderr));
    let v: serde_json::Value = serde_json::from_str(&text(&out.stdout)).expect("iperf3 JSON");
    v["end"]["sum_received"]["bits_per_second"].as_f64().expect("sum_received")
}

#[test]
fn wireguard_go_peer_ping_and_iperf3_both_ways_across_rekeys() {
    let name = "tunnel::wireguard_go_peer_ping_and_iperf3_both_ways_across_rekeys";
    if let Some(why) = unavailable(&["wireguard-go", "wg", "iperf3"]) {
        return skip(name, &why);
    }
    let _one = ONE_LAB_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let lab = Lab::new("wg");
    let dir = Scratch::new("tunnel-wggo");
    let k = keys(&dir);
    // The wireguard-go peer in B: tunnel address 10.99.0.2, A's LAN through the tunnel.
    // wireguard-go's control socket is named after the interface, in a
    // directory all namespaces share: a name of our own.
    let wg0 = format!("wgt{}", std::process::id() % 100_000);
    let (ok, out) = lab.in_b(&format!("wireguard-go {wg0}"));
    assert!(ok, "wireguard-go: {out}");
    configure_wggo(&lab, &wg0, &k);
    let pfx = prefix("wggo");
    let cfg = dir.write("c.toml", &appliance_config(&lab, &pfx, &k, ""));
    let app = lab.start(&cfg);
    let socket = socket_path(&pfx);

    // wireguard-go initiates first (B pings A's host): the appliance is the
    // responder, and its session is confirmed by wireguard-go's first packet.
    let start = Instant::now();
    let mut up = false;
    while start.elapsed() < Duration::from_secs(15) {
        if lab.in_b("ping -c 1 -W 1 10.1.0.2").0 {
            up = true;
            break;
        }
    }
    let peers = || -> serde_json::Value {
        let o = run_with_timeout(patronus().args(["show", "peers", "--json", "--socket"]).arg(&socket), Duration::from_secs(10));
        serde_json::from_str(&text(&o.stdout)).expect("JSON")
    };
    assert!(up, "no ping through the tunnel: {}\n{}", peers(), lab.in_b("wg show").1);
    let v = peers();
    assert_eq!(v["peers"]["handshake"]["responses_sent"], 1, "wireguard-go initiated: {v}");
    let (ok, ping) = lab.in_a("ping -c 10 -i 0.05 -W 1 10.99.0.2");
    assert!(ok && ping.contains(" 0% packet loss"), "{ping}");
    let (ok, ping) = lab.in_b("ping -c 5 -i 0.05 -W 1 10.1.0.2");
    assert!(ok && ping.contains(" 0% packet loss"), "from the wireguard-go side: {ping}");

    let (ok, out) = lab.in_b("iperf3 -s -D -B 10.99.0.2");
    assert!(ok, "iperf3 server: {out}");
    std::thread::sleep(Duration::from_millis(300));
    let up_bps = iperf_across_rekey(&lab, &socket, false, 6);
    let down_bps = iperf_across_rekey(&lab, &socket, true, 6);
    println!("tunnel iperf3 through wireguard-go: A->B {:.1} Mbit/s, B->A {:.1} Mbit/s", up_bps / 1e6, down_bps / 1e6);
    assert!(up_bps > 5e6 && down_bps > 5e6, "A->B {up_bps} bit/s, B->A {down_bps} bit/s");

    // A rekey's response can be lost in a saturated ring: allow its retry
    // (REKEY_TIMEOUT, 5 s) to complete.
    let start = Instant::now();
    let mut v = peers();
    while v["peers"]["peers"][0]["handshake_in_flight"] == true && start.elapsed() < Duration::from_secs(12) {
        std::thread::sleep(Duration::from_millis(250));
        v = peers();
    }
    let p = &v["peers"]["peers"][0];
    assert_eq!(p["up"], true, "{v}");
    assert!(p["handshakes"].as_u64().unwrap() >= 3, "the first handshake and two forced rekeys: {v}");
    assert!(p["rx_bytes"].as_u64().unwrap() > 1_000_000 && p["tx_bytes"].as_u64().unwrap() > 1_000_000, "{v}");
    assert_eq!(p["endpoint"], "10.2.0.2:51820");
    let wg = lab.in_b(&format!("wg show {wg0} dump")).1;
    assert!(wg.lines().nth(1).is_some_and(|l| l.split('\t').nth(4).is_some_and(|h| h != "0")), "wireguard-go saw a handshake: {wg}");

    // A live reload adds a peer and changes the MTU: the running session
    // stays (same handshake count), pings still pass; then it is removed.
    let handshakes = p["handshakes"].as_u64().unwrap();
    let base = std::fs::read_to_string(&cfg).unwrap();
    let other = sh(&format!("{} genkey | {} pubkey", env!("CARGO_BIN_EXE_patronus"), env!("CARGO_BIN_EXE_patronus")));
    std::fs::write(
        &cfg,
        format!(
            "{}\n[[tunnel.peer]]\nname = \"dc\"\npublic_key = \"{}\"\nallowed_ips = [\"10.98.0.0/16\"]\n",
            base.replace("listen_port = 51820", "listen_port = 51820\nmtu = 1400"),
            other.trim()
        ),
    )
    .unwrap();
    let r = run_with_timeout(patronus().args(["reload", "--socket"]).arg(&socket), Duration::from_secs(20));
    assert!(r.status.success(), "reload: {}{}", text(&r.stdout), text(&r.stderr));
    let v = peers();
    assert_eq!(v["peers"]["mtu"], 1400, "{v}");
    let names: Vec<&str> = v["peers"]["peers"].as_array().unwrap().iter().map(|p| p["peer"].as_str().unwrap()).collect();
    assert_eq!(names, ["wggo", "dc"]);
    assert_eq!(v["peers"]["peers"][0]["handshakes"].as_u64(), Some(handshakes), "the running session is kept: {v}");
    let (ok, ping) = lab.in_a("ping -c 5 -i 0.05 -W 1 10.99.0.2");
    assert!(ok && ping.contains(" 0% packet loss"), "after the reload: {ping}");
    std::fs::write(&cfg, &base).unwrap();
    let r = run_with_timeout(patronus().args(["reload", "--socket"]).arg(&socket), Duration::from_secs(20));
    assert!(r.status.success(), "reload: {}{}", text(&r.stdout), text(&r.stderr));
    let v = peers();
    assert_eq!(v["peers"]["peers"].as_array().unwrap().len(), 1, "dc removed: {v}");

    let out = stop(app);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", text(&out.stderr));
    let drops = drops_by_reason(&stdout);
    for r in ["tunnel_bad_mac", "tunnel_unknown_index", "tunnel_malformed", "tunnel_allowed_ips"] {
        assert_eq!(drops.get(r).copied().unwrap_or(0), 0, "{r}:\n{stdout}");
    }
}

/// A `[[path]]` to a plain WireGuard peer (wireguard-go): its probes go as
/// ICMP echo requests to the peer's tunnel address, the path comes up with
/// real RTT figures, and wireguard-go logs no invalid packet (a plain
/// Patronus probe would be "invalid IP version" to it).
#[test]
fn a_path_to_a_plain_wireguard_peer_is_measured_with_icmp_probes() {
    let name = "tunnel::a_path_to_a_plain_wireguard_peer_is_measured_with_icmp_probes";
    if let Some(why) = unavailable(&["wireguard-go", "wg"]) {
        return skip(name, &why);
    }
    let _one = ONE_LAB_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let lab = Lab::new("wp");
    let dir = Scratch::new("tunnel-wgpath");
    let k = keys(&dir);
    let wg0 = format!("wgp{}", std::process::id() % 100_000);
    // In the foreground, verbose: its log is what the test reads.
    let log = dir.path("wireguard-go.log");
    let wggo = std::process::Command::new("ip")
        .args(["netns", "exec", &lab.b, "env", "LOG_LEVEL=verbose", "wireguard-go", "-f", &wg0])
        .stdout(std::fs::File::create(&log).unwrap())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let start = Instant::now();
    while !lab.in_b(&format!("ip link show {wg0}")).0 {
        assert!(start.elapsed() < Duration::from_secs(10), "wireguard-go did not create {wg0}");
        std::thread::sleep(Duration::from_millis(100));
    }
    configure_wggo(&lab, &wg0, &k);
    let pfx = prefix("wgpath");
    let cfg = dir.write(
        "c.toml",
        &appliance_config(
            &lab,
            &pfx,
            &k,
            "address = \"10.99.0.2\"\npersistent_keepalive = 1\n\n\
             [[path]]\nname = \"inet\"\npeer = \"wggo\"\nport = \"wan0\"\nendpoint = \"10.2.0.2:51820\"\nprobe_interval_ms = 100\n",
        ),
    );
    let app = lab.start(&cfg);
    let socket = socket_path(&pfx);
    let paths = || -> serde_json::Value {
        let o = run_with_timeout(patronus().args(["show", "paths", "--json", "--socket"]).arg(&socket), Duration::from_secs(10));
        serde_json::from_str::<serde_json::Value>(&text(&o.stdout)).expect("JSON")["paths"]["paths"][0].clone()
    };
    // B's host starts the session (the appliance answers the handshake).
    let start = Instant::now();
    while !lab.in_b("ping -c 1 -W 1 10.1.0.2").0 {
        assert!(start.elapsed() < Duration::from_secs(15), "no session: {}", paths());
    }
    let start = Instant::now();
    let mut p = paths();
    while p["state"] != "up" && start.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(200));
        p = paths();
    }
    let out = stop(app);
    let _ = try_sh(&format!("kill {}", wggo.id()));
    let wg_log = std::fs::read_to_string(&log).unwrap_or_default();
    println!("path to wireguard-go: {p}");
    assert_eq!(p["state"], "up", "{p}\n{}", text(&out.stderr));
    assert_eq!(p["probes"], "icmp echo to 10.99.0.2", "{p}");
    let rtt = p["rtt_ms"]["p50"].as_f64().unwrap_or(0.0);
    assert!(rtt > 0.0 && rtt < 100.0, "a real RTT through the veth and wireguard-go: {p}");
    assert!(p["replies"].as_u64().unwrap() >= 3, "{p}");
    assert!(wg_log.contains("Received handshake initiation") || wg_log.contains("Sending handshake"), "the log is verbose: {wg_log}");
    assert!(!wg_log.to_lowercase().contains("invalid"), "wireguard-go saw invalid packets:\n{wg_log}");
}
