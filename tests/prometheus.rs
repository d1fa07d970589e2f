//! Monitoring as operators run it: the alert rules pass `promtool check`
//! and `promtool test` (every alert has a unit test), the Grafana
//! dashboards are well-formed and provisionable, and a real Prometheus
//! server scraping a running appliance finds a series for every metric the
//! rules and dashboards use. Metrics of features not built yet are listed
//! as pending below, and the test checks they really are absent, so the
//! list cannot go stale.

mod common;

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

use common::monitoring::*;
use common::*;
use serde_json::Value;

/// Metrics the rules and dashboards use that later features will export.
const PENDING: &[(&str, &str)] = &[("patronus_compression_ratio", "tunnel compression")];

/// Metrics with a series only once an event happened (their labels name
/// it); another test makes the event and checks the series.
const ON_EVENT: &[(&str, &str)] = &[
    (
        "patronus_failover_events_total",
        "a failover: its series are at 0 until then, and panels of failovers empty (tests/paths.rs shows them after one)",
    ),
    ("patronus_failover_path_health", "a failover (tests/paths.rs checks it after one)"),
    ("patronus_application_bytes_total", "IP traffic for DPI (net_null's frames are not IP; tests/demo.rs checks it)"),
];

/// The names the issue makes a contract for dashboards and alerts.
const CONTRACT: &[&str] = &[
    "patronus_path_health_score",
    "patronus_path_packet_loss_pct",
    "patronus_tunnel_status",
    "patronus_bfd_session_status",
    "patronus_compression_ratio",
    "patronus_failover_events_total",
];

#[test]
fn alert_rules_pass_promtool_and_every_alert_has_a_unit_test() {
    if !have("promtool") {
        return skip("alert_rules_pass_promtool", "`promtool` is not installed (scripts/setup.sh installs package prometheus)");
    }
    let dir = conf("prometheus");
    let out = Command::new("promtool").args(["check", "rules", "alerts.yml"]).current_dir(&dir).output().unwrap();
    assert!(out.status.success(), "{}{}", text(&out.stdout), text(&out.stderr));
    let out = Command::new("promtool").args(["test", "rules", "alerts_test.yml"]).current_dir(&dir).output().unwrap();
    assert!(out.status.success(), "{}{}", text(&out.stdout), text(&out.stderr));
    let out = Command::new("promtool").args(["check", "config", "prometheus.yml"]).current_dir(&dir).output().unwrap();
    assert!(out.status.success(), "{}{}", text(&out.stdout), text(&out.stderr));

    let rules = std::fs::read_to_string(dir.join("alerts.yml")).unwrap();
    let tests = std::fs::read_to_string(dir.join("alerts_test.yml")).unwrap();
    let alerts: Vec<&str> = rules.lines().filter_map(|l| l.trim().strip_prefix("- alert: ")).collect();
    for required in ["PathDown", "HighPacketLoss", "BfdSessionDown", "CompressionRatioDegraded", "FailoverLoop", "PatronusReloadFailed"] {
        assert!(alerts.contains(&required), "alerts.yml lacks {required}");
    }
    // The specification's group, verbatim.
    let spec = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/spec/sprint-43.md");
    match std::fs::read_to_string(&spec) {
        Err(_) => skip("alert_rules: the specification's rules verbatim", &format!("{} is absent", spec.display())),
        Ok(text) => {
            let block: Vec<&str> =
                text.lines().skip_while(|l| !l.contains("- name: patronus-sdwan")).take_while(|l| !l.starts_with("```")).collect();
            assert!(block.len() > 40, "the specification's rule block: {block:?}");
            let want = block.join("\n");
            assert!(rules.contains(&want), "alerts.yml does not hold the specification's group verbatim:\n{want}");
        }
    }
    for a in &alerts {
        let firing = tests.split("alertname: ").skip(1).filter(|t| t.starts_with(&format!("{a}\n"))).any(|t| t.contains("exp_labels"));
        assert!(firing, "alerts_test.yml has no case where {a} fires");
    }
}

#[test]
fn dashboards_are_provisionable_and_use_the_contract_metrics() {
    let ds = std::fs::read_to_string(conf("grafana/provisioning/datasources/patronus.yml")).unwrap();
    let uid = ds.lines().find_map(|l| l.trim().strip_prefix("uid: ")).unwrap().trim();
    let prov = std::fs::read_to_string(conf("grafana/provisioning/dashboards/patronus.yml")).unwrap();
    assert!(prov.contains("type: file"), "{prov}");
    let ds_uses = |v: &Value| v["datasource"]["uid"] == uid;
    let boards = dashboards();
    let titles: Vec<&str> = boards.iter().map(|d| d["title"].as_str().unwrap()).collect();
    // The specification's titles.
    assert_eq!(titles, ["Failover Events", "Performance Metrics", "Patronus SD-WAN Topology"]);
    let panels = |d: &Value| {
        d["panels"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| (p["type"].as_str().unwrap().to_owned(), p["title"].as_str().unwrap().to_owned()))
            .collect::<Vec<_>>()
    };
    let has = |d: &Value, ty: &str, title: &str| panels(d).iter().any(|(t, n)| t == ty && n == title);
    let topo = &boards[2];
    assert!(
        has(topo, "nodeGraph", "Site Connectivity Map")
            && has(topo, "heatmap", "Path Health Heatmap")
            && has(topo, "stat", "Active Tunnels"),
        "{:?}",
        panels(topo)
    );
    let active = topo["panels"].as_array().unwrap().iter().find(|p| p["title"] == "Active Tunnels").unwrap();
    assert_eq!(active["targets"][0]["expr"], "sum(patronus_tunnel_status{status=\"up\"})");
    for title in
        ["Latency p50 / p95 / p99 per path", "Packet Loss", "Throughput per tunnel", "Compression Ratio", "BFD Session Status per path"]
    {
        assert!(panels(&boards[1]).iter().any(|(_, n)| n == title), "Performance Metrics lacks {title}");
    }
    for title in ["Failover Timeline", "Failover Reasons", "MTTR", "Path Quality before and after failover"] {
        assert!(panels(&boards[0]).iter().any(|(_, n)| n == title), "Failover Events lacks {title}");
    }
    // Latency comes from the histograms.
    let exprs: Vec<String> = expressions().into_iter().map(|(_, e)| e).collect();
    for h in
        ["patronus_path_rtt_histogram_seconds_bucket", "patronus_packet_residence_seconds_bucket", "patronus_stage_packet_cycles_bucket"]
    {
        assert!(exprs.iter().any(|e| e.contains("histogram_quantile(") && e.contains(h)), "no histogram_quantile over {h}");
    }
    for d in &boards {
        let mut ids = BTreeSet::new();
        for p in d["panels"].as_array().unwrap() {
            assert!(ids.insert(p["id"].as_u64().unwrap()), "{}: duplicate panel id", d["uid"]);
            assert!(ds_uses(p), "{}: panel {} does not use data source {uid}", d["uid"], p["title"]);
            assert!(!p["targets"].as_array().unwrap().is_empty());
        }
    }
    let used = referenced();
    for c in CONTRACT {
        assert!(used.contains(*c), "no rule or dashboard uses contract metric {c}");
    }
    for (m, _) in PENDING.iter().chain(ON_EVENT) {
        assert!(used.contains(*m), "pending metric {m} is used nowhere; drop it from PENDING");
    }
}

#[test]
fn a_real_prometheus_finds_every_metric_the_rules_and_dashboards_use() {
    const NAME: &str = "a_real_prometheus_finds_every_metric";
    if !have("prometheus") {
        return skip(NAME, "`prometheus` is not installed (scripts/setup.sh installs it)");
    }
    let dir = Scratch::new("prom");
    let pfx = prefix("prom");
    let cfg = dir.write("patronus.toml", &TwoPorts::appliance(&pfx).stats(0).extra(&control_section(&pfx)).toml());
    // A tunnel peer, a path to it and a BFD session (never reachable
    // here), so the tunnel, path and BFD series exist.
    let key = dir.write("site.key", &sh(&format!("{} genkey", env!("CARGO_BIN_EXE_patronus"))));
    sh(&format!("chmod 600 {}", key.display()));
    let peer_pub = sh(&format!("{} genkey | {} pubkey", env!("CARGO_BIN_EXE_patronus"), env!("CARGO_BIN_EXE_patronus")));
    let text = std::fs::read_to_string(&cfg).unwrap();
    std::fs::write(
        &cfg,
        format!(
            "{text}\n[site]\nprivate_key_file = \"site.key\"\n\n[[tunnel.peer]]\nname = \"site-b\"\npublic_key = \"{}\"\nallowed_ips = [\"10.2.0.0/16\"]\n\n\
             [[path]]\nname = \"inet-b\"\npeer = \"site-b\"\nport = \"wan0\"\nendpoint = \"192.0.2.2:51820\"\nbfd = \"gw\"\n\n\
             [[bfd]]\nname = \"gw\"\npeer = \"192.0.2.1\"\n",
            peer_pub.trim()),
    )
    .unwrap();
    let mut app = Appliance::start(&cfg, socket_path(&pfx));
    // Every series the exporter emits is documented.
    let doc = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/METRICS.md")).unwrap();
    let exposition = http_get(&app.metrics_url()).unwrap();
    for name in exposition.lines().filter_map(|l| l.strip_prefix("# TYPE ")).map(|l| l.split(' ').next().unwrap()) {
        assert!(doc.contains(&format!("| `{name}` |")), "docs/METRICS.md does not document {name}");
    }
    let target = app.metrics_url().trim_start_matches("http://").trim_end_matches("/metrics").to_owned();
    let prom = Prometheus::start(&dir.path(""), &target, None);

    let later: BTreeSet<&str> = PENDING.iter().map(|(m, _)| *m).collect();
    let mut missing = Vec::new();
    for m in referenced() {
        let r = prom.query(&format!("count({{__name__=\"{m}\"}})")).unwrap();
        let present = r.as_array().is_some_and(|a| !a.is_empty());
        if let Some((_, why)) = ON_EVENT.iter().find(|(e, _)| *e == m) {
            if !present {
                pending(&m, &format!("no series until {why}"));
            }
            continue;
        }
        match (later.contains(m.as_str()), present) {
            (false, false) => missing.push(m),
            (true, true) => panic!("{m} is exported now: move it out of PENDING"),
            (true, false) => {
                let why = PENDING.iter().find(|(p, _)| *p == m).unwrap().1;
                pending(&m, &format!("no series yet; arrives with {why}"));
            }
            (false, true) => {}
        }
    }
    assert!(missing.is_empty(), "rules or dashboards use metrics Prometheus has no series for: {missing:?}");

    // Every expression parses and evaluates in this Prometheus, and every
    // dashboard panel shows data unless it waits for an event or feature.
    let waits: BTreeSet<&str> = PENDING.iter().chain(ON_EVENT).map(|(m, _)| *m).collect();
    let empty = prom.panels_without_data(&waits);
    assert!(empty.is_empty(), "dashboard panels with no data:\n{}", empty.join("\n"));
    // The residence histogram's median is in the bucket of the hdrhistogram's, or next to it.
    let bounds = [1e-6, 2.5e-6, 5e-6, 1e-5, 2.5e-5, 5e-5, 1e-4, 2.5e-4, 5e-4, 1e-3, 2.5e-3, 5e-3, 1e-2];
    let bucket = |v: f64| bounds.iter().position(|&b| v <= b).unwrap_or(bounds.len());
    let hist = prom.query("histogram_quantile(0.5, sum by (le) (patronus_packet_residence_seconds_bucket))").unwrap();
    let hdr = prom.query("max(patronus_residence_seconds{quantile=\"0.5\"})").unwrap();
    let (h, q): (f64, f64) =
        (hist[0]["value"][1].as_str().unwrap().parse().unwrap(), hdr[0]["value"][1].as_str().unwrap().parse().unwrap());
    assert!(bucket(h).abs_diff(bucket(q)) <= 1, "histogram p50 {h} s against the hdrhistogram's {q} s");
    // Live values are what the appliance counts.
    let r = prom.query("sum(rate(patronus_packets_total{direction=\"rx\"}[5s]))").unwrap();
    let pps: f64 = r[0]["value"][1].as_str().unwrap().parse().unwrap();
    assert!(pps > 1000.0, "forwarding rate seen by Prometheus: {pps}");
    let r = prom.query("patronus_residence_seconds{quantile=\"0.5\"}").unwrap();
    assert!(r[0]["value"][1].as_str().unwrap().parse::<f64>().unwrap() > 0.0, "{r}");
    // Nothing fires on a healthy appliance.
    let alerts = http_get(&format!("{}/api/v1/alerts", prom.base)).unwrap();
    assert!(!alerts.contains("\"state\":\"firing\""), "{alerts}");
    drop(prom);
    let (code, _) = app.stop();
    assert_eq!(code, Some(0));
}
