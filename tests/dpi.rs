//! DPI end to end: real clients against real servers (scripts/lab-traffic.sh:
//! curl, dig/dnsmasq, ssh/sshd, psql/PostgreSQL, redis-cli/redis-server,
//! mariadb/mariadbd, ngtcp2's QUIC client and server, a sipp call) cross the
//! appliance between two namespaces. The workers classify every flow (seen
//! through `patronus show apps`), and `patronus classify` reads the same
//! traffic from the capture taken on the server side.

mod common;

use std::collections::HashMap;
use std::time::Duration;

use common::*;

fn classify_rows(pcap: &std::path::Path) -> Vec<HashMap<String, String>> {
    let root = env!("CARGO_MANIFEST_DIR").to_owned() + "/..";
    let out = run_with_timeout(
        patronus().args(["classify", "--format", "tsv", "--signatures"]).arg(format!("{root}/conf/signatures.toml")).arg(pcap),
        Duration::from_secs(60),
    );
    assert!(out.status.success(), "classify: {}", text(&out.stderr));
    let s = text(&out.stdout);
    let mut lines = s.lines();
    let head: Vec<&str> = lines.next().expect("header").split('\t').collect();
    lines.map(|l| head.iter().map(|h| h.to_string()).zip(l.split('\t').map(str::to_owned)).collect()).collect()
}

#[test]
fn real_client_traffic_is_classified_by_the_workers_and_offline() {
    let name = "dpi::real_client_traffic_is_classified_by_the_workers_and_offline";
    if let Some(why) = netns_unavailable() {
        return skip(name, &why);
    }
    for tool in ["tcpdump", "curl", "openssl", "python3", "dig", "dnsmasq", "ssh", "psql", "redis-cli", "mariadb", "gtlsclient", "sipp"] {
        if !try_sh(&format!("command -v {tool} || test -x /usr/sbin/{tool}")).0 {
            return skip(name, &format!("`{tool}` is not installed (scripts/setup.sh installs it)"));
        }
    }
    let lab = Lab::new("dp");
    let dir = Scratch::new("dpi-lab");
    let pfx = prefix("dpil");
    let cfg = dir.write("c.toml", &lab.config(&pfx));
    let app = lab.start(&cfg);

    let root = env!("CARGO_MANIFEST_DIR").to_owned() + "/..";
    let pcap = dir.path("lab.pcap");
    let (ok, out) = try_sh(&format!(
        "{root}/scripts/lab-traffic.sh --client {} --server {} --server-ip 10.2.0.2 --alias-ip 10.2.0.3 --dev {} --out {}",
        lab.a,
        lab.b,
        lab.b0,
        pcap.display()
    ));
    assert!(ok, "lab-traffic:\n{out}");
    assert!(!out.contains("SKIPPED"), "lab-traffic skipped a step:\n{out}");

    // The workers' verdicts.
    let show = run_with_timeout(patronus().args(["show", "apps", "--json", "--socket"]).arg(socket_path(&pfx)), Duration::from_secs(30));
    assert!(show.status.success(), "show apps: {}", text(&show.stderr));
    let v: serde_json::Value = serde_json::from_str(&text(&show.stdout)).expect("JSON");
    let apps: HashMap<String, u64> = v["apps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["application"].as_str().unwrap().to_owned(), r["flows"].as_u64().unwrap()))
        .collect();
    // YouTube: the TLS SNI, the DNS query naming it, the TLS connection to
    // the address that answer gave (no name on the wire), the QUIC Initial.
    for (app_name, at_least) in
        [("YouTube", 4), ("Netflix", 1), ("SSH", 1), ("PostgreSQL", 1), ("Redis", 1), ("MySQL", 1), ("SIP", 1), ("RTP", 1)]
    {
        let n = apps.get(app_name).copied().unwrap_or(0);
        assert!(n >= at_least, "workers: {app_name} has {n} flows, expected at least {at_least}; all: {apps:?}\n{out}");
    }
    let flows = run_with_timeout(patronus().args(["show", "flows", "--json", "--socket"]).arg(socket_path(&pfx)), Duration::from_secs(30));
    let f: serde_json::Value = serde_json::from_str(&text(&flows.stdout)).expect("JSON");
    assert!(f["flows"]["created"].as_u64().unwrap() >= 11, "{f}");
    let out_app = stop(app);
    assert!(out_app.status.success(), "appliance: {}", text(&out_app.stderr));

    // The same traffic, offline, flow by flow (app, basis).
    let rows = classify_rows(&pcap);
    let has = |app: &str, basis: &str, server_port: &str| {
        rows.iter().any(|r| r["app"] == app && r["basis"] == basis && r["server"].ends_with(&format!(":{server_port}")))
    };
    for (app, basis, port) in [
        ("YouTube", "host", "443"),
        ("Netflix", "host", "80"),
        ("YouTube", "host", "53"),
        ("YouTube", "dns-cache", "443"),
        ("SSH", "protocol", "22"),
        ("PostgreSQL", "protocol", "5432"),
        ("Redis", "protocol", "6379"),
        ("MySQL", "protocol", "3306"),
        ("YouTube", "host", "4433"),
        ("SIP", "protocol", "5060"),
    ] {
        assert!(has(app, basis, port), "classify: no {app} by {basis} to port {port}:\n{rows:#?}");
    }
    assert!(rows.iter().any(|r| r["app"] == "RTP" && r["basis"] == "sdp"), "RTP announced by SDP:\n{rows:#?}");
    assert!(rows.iter().all(|r| r["app"] != "Unknown"), "every flow identified:\n{rows:#?}");
}

#[test]
fn signatures_reload_live_and_a_bad_file_keeps_the_running_set() {
    let name = "dpi::signatures_reload_live_and_a_bad_file_keeps_the_running_set";
    if let Some(why) = netns_unavailable() {
        return skip(name, &why);
    }
    for tool in ["curl", "openssl"] {
        if !try_sh(&format!("command -v {tool}")).0 {
            return skip(name, &format!("`{tool}` is not installed (scripts/setup.sh installs it)"));
        }
    }
    let lab = Lab::new("ds");
    let dir = Scratch::new("dpi-reload");
    let pfx = prefix("dpir");
    let sigs = dir.write("extra.toml", "[[app]]\nname = \"LabOne\"\ncategory = \"Web\"\nhosts = [\"lab.test\"]\n");
    let cfg = dir.write("c.toml", &format!("{}\n[dpi]\nsignatures = [\"extra.toml\"]\n", lab.config(&pfx)));
    let app = lab.start(&cfg);
    let (key, cert) = (dir.path("k.pem"), dir.path("c.pem"));
    sh(&format!(
        "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout {} -out {} -days 1 -subj /CN=lab 2>/dev/null",
        key.display(),
        cert.display()
    ));
    let server = std::process::Command::new("ip")
        .args(["netns", "exec", &lab.b, "openssl", "s_server", "-quiet", "-www", "-accept", "443", "-cert"])
        .arg(&cert)
        .arg("-key")
        .arg(&key)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("openssl s_server");
    std::thread::sleep(Duration::from_millis(500));
    let socket = socket_path(&pfx);
    let fetch = || assert!(lab.in_a("curl -sk --max-time 5 --resolve www.lab.test:443:10.2.0.2 https://www.lab.test/ -o /dev/null").0);
    let apps = || -> HashMap<String, u64> {
        let out = run_with_timeout(patronus().args(["show", "apps", "--json", "--socket"]).arg(&socket), Duration::from_secs(30));
        let v: serde_json::Value = serde_json::from_str(&text(&out.stdout)).expect("JSON");
        v["apps"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| (r["application"].as_str().unwrap().to_owned(), r["flows"].as_u64().unwrap()))
            .collect()
    };
    let reload = || run_with_timeout(patronus().args(["reload", "--socket"]).arg(&socket), Duration::from_secs(30));

    fetch();
    assert_eq!(apps().get("LabOne"), Some(&1), "{:?}", apps());

    // A broken signature file: refused with its file and line; the running set stays.
    std::fs::write(&sigs, "[[app]]\nname = \"LabTwo\"\ncategory = \"Webb\"\nhosts = [\"lab.test\"]\n").unwrap();
    let out = reload();
    let err = text(&out.stderr) + &text(&out.stdout);
    assert!(!out.status.success(), "a bad signature file must refuse the reload:\n{err}");
    assert!(err.contains("extra.toml:3") && err.contains("category"), "error names file, line and field:\n{err}");
    fetch();
    assert_eq!(apps().get("LabOne"), Some(&2), "old set still in force: {:?}", apps());

    // A good one applies to the next flows.
    std::fs::write(&sigs, "[[app]]\nname = \"LabTwo\"\ncategory = \"Video\"\nhosts = [\"lab.test\"]\n").unwrap();
    let out = reload();
    assert!(out.status.success(), "reload: {}{}", text(&out.stdout), text(&out.stderr));
    fetch();
    let now = apps();
    assert_eq!((now.get("LabOne"), now.get("LabTwo")), (Some(&2), Some(&1)), "{now:?}");

    let mut server = server;
    let _ = server.kill();
    let _ = server.wait();
    let out = stop(app);
    assert!(out.status.success(), "{}", text(&out.stderr));
}
