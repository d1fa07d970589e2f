//! The control plane end to end: the bad-config corpus (check and live
//! reload), reload triggers (control socket, SIGHUP, file watch), fields
//! that need a restart, `patronus show`, and the socket's permissions.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::*;

const LIMIT: Duration = Duration::from_secs(60);

/// A two-port cross-connect on net_null: traffic flows as soon as it runs.
fn xconnect_config(prefix: &str, forward: bool, extra: &str) -> String {
    TwoPorts::appliance(prefix)
        .worker("poll_mode = \"adaptive\"")
        .stats(0)
        .forward(forward)
        .extra(&control_section(prefix))
        .extra(extra)
        .toml()
}

/// The corpus copied next to the key files it refers to, with each file's
/// expected error (`# expect:` on its first line, `{dir}` the copy's dir).
fn corpus(dir: &Scratch) -> Vec<(PathBuf, String, String)> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/bad-configs");
    std::fs::create_dir_all(dir.path("keys")).unwrap();
    let key = |name: &str, text: &str, mode: u32| {
        let p = dir.path(&format!("keys/{name}"));
        std::fs::write(&p, text).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
    };
    // A real key (RFC 7748 test vector) left world-readable, and a file of junk.
    key("loose.key", "dwdtCnMYpX08FsFyUbJmRd9ML4frwJkqsXf7pR25LCo=\n", 0o644);
    key("garbage.key", "not a key at all\n", 0o600);
    key("good.key", "dwdtCnMYpX08FsFyUbJmRd9ML4frwJkqsXf7pR25LCo=\n", 0o600);
    let mut out = Vec::new();
    let mut names: Vec<_> = std::fs::read_dir(&src).unwrap().map(|e| e.unwrap().path()).collect();
    names.sort();
    for p in names.into_iter().filter(|p| p.extension().is_some_and(|e| e == "toml")) {
        let text = std::fs::read_to_string(&p).unwrap().replace("{dir}", dir.0.to_str().unwrap());
        let expect =
            text.lines().next().and_then(|l| l.strip_prefix("# expect: ")).unwrap_or_else(|| panic!("{}: no # expect: line", p.display()));
        let expect = expect.replace("{dir}", dir.0.to_str().unwrap());
        let name = p.file_name().unwrap().to_str().unwrap().to_owned();
        out.push((dir.write(&name, &text), expect, text));
    }
    out
}

#[test]
fn every_bad_config_in_the_corpus_gets_its_precise_error() {
    let dir = Scratch::new("corpus-check");
    let cases = corpus(&dir);
    assert!(cases.len() >= 25, "the corpus holds at least 25 configs, found {}", cases.len());
    for (file, expect, _) in &cases {
        let out = run_with_timeout(patronus().arg("check").arg("--config").arg(file), LIMIT);
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{}: exit {}\n{stderr}", file.display(), code(out.status));
        assert_eq!(stderr.trim_end(), format!("patronus: error: {}{expect}", file.display()), "{}", file.display());
    }
}

/// Every bad config is refused by a running appliance: `patronus reload`
/// exits 2 with the same error, the failure is counted (status and
/// metrics), and the running policy keeps forwarding untouched.
#[test]
fn a_running_appliance_rejects_bad_configs_and_keeps_its_own() {
    let dir = Scratch::new("corpus-reload");
    let pfx = prefix("corpus");
    let good = xconnect_config(&pfx, true, "");
    let cfg = dir.write("patronus.toml", &good);
    let mut app = Appliance::start(&cfg, socket_path(&pfx));
    let url = app.metrics_url();
    let cases = corpus(&dir);
    for (file, expect, text) in &cases {
        std::fs::write(&cfg, text).unwrap();
        let (code, out, err) = app.cli(&["reload"]);
        assert_eq!(code, 2, "{}: reload must be rejected\n{out}{err}", file.display());
        let want = format!("patronus: error: {}{expect}", cfg.display());
        assert!(err.lines().any(|l| l == want), "{}:\n got: {err}\nwant: {want}", file.display());
        assert!(err.starts_with("patronus: error: config rejected; the running config stays"), "{err}");
    }
    // Still forwarding both ways, nothing dropped.
    let before = app.show("ports");
    std::thread::sleep(Duration::from_millis(300));
    let after = app.show("ports");
    for i in 0..2 {
        assert!(after[i]["tx_packets"].as_u64() > before[i]["tx_packets"].as_u64(), "port {i} still forwards");
        assert_eq!(after[i]["drops"], 0, "port {i}: {after}");
    }
    let status = app.show("status");
    assert_eq!(status["reloads"]["failed"], cases.len(), "{status}");
    assert_eq!(status["reloads"]["ok"], 0, "{status}");
    assert_eq!(status["reloads"]["last_ok"], false, "{status}");
    // The exporter refreshes once a second.
    std::thread::sleep(Duration::from_millis(1200));
    let m = http_get(&url).unwrap();
    assert_eq!(metric(&m, "patronus_config_reload_failures_total"), Some(cases.len() as f64), "{m}");
    assert_eq!(metric(&m, "patronus_config_last_reload_success"), Some(0.0));

    // A good config again: applies, and the failure gauge clears.
    std::fs::write(&cfg, &good).unwrap();
    let (code, out, err) = app.cli(&["reload"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("changed: nothing"), "{out}");
    let (code, _) = app.stop();
    assert_eq!(code, Some(0));
}

/// `systemctl reload` runs `patronus reload --config FILE`. A broken FILE
/// (bad TOML, or a field the schema refuses) still reaches the appliance,
/// which refuses it, logs why and counts it; `show --config FILE` still
/// finds it meanwhile.
#[test]
fn reload_by_config_file_reaches_the_appliance_even_when_the_file_is_broken() {
    let dir = Scratch::new("reload-broken");
    let pfx = prefix("broken");
    let good = xconnect_config(&pfx, true, "");
    let cfg = dir.write("patronus.toml", &good);
    let mut app = Appliance::start(&cfg, socket_path(&pfx));
    let url = app.metrics_url();
    let broken = [
        ("a typo in a field", good.replacen("[eal]", "[eal]\nworker_lcore = [1]", 1), "unknown field `worker_lcore`"),
        ("not TOML", good.replacen("[eal]", "[eal\nfile_prefix = ", 1), "expected"),
    ];
    for (n, (what, body, says)) in broken.iter().enumerate() {
        std::fs::write(&cfg, body).unwrap();
        let out = run_with_timeout(patronus().arg("reload").arg("--config").arg(&cfg), LIMIT);
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{what}: {err}");
        assert!(err.starts_with("patronus: error: config rejected; the running config stays"), "{what}: {err}");
        assert!(err.contains(says), "{what}: {err}");
        let out = run_with_timeout(patronus().args(["show", "status", "--json", "--config"]).arg(&cfg), LIMIT);
        assert_eq!(out.status.code(), Some(0), "{what}: show finds the appliance: {}", text(&out.stderr));
        let status: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(status["status"]["reloads"]["failed"], n + 1, "{status}");
    }
    std::thread::sleep(Duration::from_millis(1200));
    let m = http_get(&url).unwrap();
    assert_eq!(metric(&m, "patronus_config_reload_failures_total"), Some(2.0), "{m}");
    let (code, log) = app.stop();
    assert_eq!(code, Some(0), "{log}");
    assert!(
        log.contains("rejected; the running config stays") && log.contains("unknown field `worker_lcore`"),
        "the appliance logs why: {log}"
    );
}

/// Reload by socket, SIGHUP and file watch; live fields apply, the others
/// are named as needing a restart and left as they run.
#[test]
fn reloads_apply_live_fields_and_name_the_ones_that_need_a_restart() {
    let dir = Scratch::new("reload-kinds");
    let pfx = prefix("kinds");
    let cfg = dir.write("patronus.toml", &xconnect_config(&pfx, true, ""));
    let mut app = Appliance::start(&cfg, socket_path(&pfx));

    // 1. Control socket: stop forwarding, and ask for more memory.
    std::fs::write(&cfg, xconnect_config(&pfx, false, "").replace("memory_mb = 512", "memory_mb = 768")).unwrap();
    let (code, out, err) = app.cli(&["reload", "--json"]);
    assert_eq!(code, 0, "{out}{err}");
    let r: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(r["applied"], serde_json::json!(["port[0].forward", "port[1].forward"]), "{r}");
    assert_eq!(r["restart_required"], serde_json::json!(["eal.memory_mb"]), "{r}");
    let t0 = app.show("ports");
    std::thread::sleep(Duration::from_millis(200));
    let t1 = app.show("ports");
    assert_eq!(t0[0]["tx_packets"], t1[0]["tx_packets"], "forwarding stopped");
    let drops = app.show("drops");
    assert!(drops.as_array().unwrap().iter().any(|d| d["reason"] == "no_egress"), "{drops}");
    let status = app.show("status");
    assert_eq!(status["reloads"]["restart_pending"], serde_json::json!(["eal.memory_mb"]));

    // 2. SIGHUP: forwarding back, and the file watch on (a live field).
    let watched = xconnect_config(&pfx, true, "").replace("metrics_listen", "watch = true\nmetrics_listen");
    std::fs::write(&cfg, &watched).unwrap();
    app.signal(libc::SIGHUP);
    let line = app.wait_for("reload (SIGHUP) applied", Duration::from_secs(5));
    assert!(line.contains("control.watch"), "{line}");
    let t2 = app.show("ports");
    std::thread::sleep(Duration::from_millis(200));
    assert!(app.show("ports")[0]["tx_packets"].as_u64() > t2[0]["tx_packets"].as_u64(), "forwarding again");
    assert_eq!(app.show("status")["reloads"]["restart_pending"], serde_json::json!([]), "memory_mb is back to what runs");

    // 3. File watch: the ICMP limits change without anyone asking.
    std::fs::write(&cfg, format!("{watched}\n[router]\nicmp_rate = 7\n")).unwrap();
    let line = app.wait_for("reload (file change) applied", Duration::from_secs(5));
    assert!(line.contains("changed router.icmp_rate"), "{line}");
    let status = app.show("status");
    assert_eq!(status["reloads"]["ok"], 3, "{status}");
    let (code, out) = app.stop();
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("3 reload(s) applied, 0 rejected"), "{out}");
}

#[test]
fn show_prints_tables_and_json() {
    let dir = Scratch::new("show");
    let pfx = prefix("show");
    let cfg = dir.write("patronus.toml", &xconnect_config(&pfx, true, ""));
    let app = Appliance::start(&cfg, socket_path(&pfx));
    std::thread::sleep(Duration::from_millis(700));
    let heads = [
        ("ports", "port  device"),
        ("counters", "core     port"),
        ("drops", "port  core  reason  packets"),
        ("workers", "core"),
        ("latency", "core  what"),
        ("neighbors", "iface  ip  mac  state"),
        ("status", "patronus "),
    ];
    for (what, head) in heads {
        let (code, out, err) = app.cli(&["show", what]);
        assert_eq!(code, 0, "show {what}: {err}");
        assert!(out.starts_with(head), "show {what}:\n{out}");
    }
    let counters = app.show("counters");
    let rows: Vec<_> = counters
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["core"].as_str().unwrap().to_owned(), r["port"].as_str().unwrap().to_owned()))
        .collect();
    assert_eq!(rows, [("1", "lan0"), ("1", "wan0"), ("control", "lan0"), ("control", "wan0")].map(|(a, b)| (a.to_owned(), b.to_owned())));
    let ports = app.show("ports");
    let p = &ports[0];
    assert!(p["rx_packets"].as_u64().unwrap() > 0 && p["rx_bytes"].as_u64().unwrap() >= 60 * p["rx_packets"].as_u64().unwrap(), "{p}");

    // Latency: residence, iteration and the forwarding stage, each sampled.
    let lat = app.show("latency");
    let whats: Vec<&str> = lat.as_array().unwrap().iter().map(|r| r["what"].as_str().unwrap()).collect();
    assert_eq!(whats, ["residence", "iteration", "stage:forward"]);
    for r in lat.as_array().unwrap() {
        let q: Vec<f64> = r["quantiles"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect();
        assert!(r["count"].as_u64().unwrap() > 100, "{r}");
        assert!(q.windows(2).all(|w| w[0] <= w[1]) && q[0] > 0.0, "quantiles ascend: {r}");
    }
    // Residence of a cross-connected packet on an idle-free net_null: well
    // under a millisecond at the median.
    assert!(lat[0]["quantiles"][0].as_f64().unwrap() < 1e-3, "{}", lat[0]);

    let (code, out, err) = app.cli(&["show", "paths"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("paths: none configured"), "{out}");
    // `queues` was a placeholder: neither --help nor the CLI offer it.
    let (code, _, err) = app.cli(&["show", "queues"]);
    assert_eq!(code, 2, "clap rejects it: {err}");
    let (_, help, _) = app.cli(&["show", "--help"]);
    assert!(help.contains("qos") && !help.contains("queues"), "{help}");
    let (code, _, err) = app.cli(&["show", "bogus"]);
    assert_eq!(code, 2, "clap rejects unknown WHAT: {err}");
    let _ = app.stop();
}

#[test]
fn the_control_socket_is_root_only() {
    let dir = Scratch::new("sockperm");
    let pfx = prefix("perm");
    let cfg = dir.write("patronus.toml", &xconnect_config(&pfx, true, ""));
    let app = Appliance::start(&cfg, socket_path(&pfx));
    let meta = std::fs::metadata(&app.socket).unwrap();
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        skip("the_control_socket_is_root_only (other user)", "needs root to try the socket as another user");
    } else {
        let (ok, out) = try_sh(&format!(
            "setpriv --reuid=65534 --regid=65534 --clear-groups {} show status --socket {}",
            env!("CARGO_BIN_EXE_patronus"),
            app.socket.display()
        ));
        assert!(!ok, "nobody must not reach the socket: {out}");
        assert!(out.contains("permission denied; the control socket is root-only"), "{out}");
    }
    // A second appliance with the same socket is refused before it starts workers.
    let cfg2 = dir.write(
        "second.toml",
        &xconnect_config(&pfx, true, "").replace(&format!("file_prefix = \"{pfx}\""), &format!("file_prefix = \"{pfx}2\"")),
    );
    let out = run_with_timeout(patronus().arg("run").arg("--config").arg(&cfg2), LIMIT);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("is in use: another patronus is running with it"), "{}", text(&out.stderr));
    let (code, out) = app.stop();
    assert_eq!(code, Some(0), "{out}");
    assert!(!socket_path(&pfx).exists(), "the socket is removed at exit");
}

/// A vdev's `iface=` that does not exist: `check` names it as a problem,
/// and `run` refuses with that cause instead of DPDK's "Operation not
/// permitted".
#[test]
fn check_and_run_name_a_missing_interface() {
    let dir = Scratch::new("noiface");
    let pfx = prefix("noiface");
    let toml = TwoPorts::appliance(&pfx).devices("net_af_packet0,iface=pnoif0", "net_null1").extra(&control_section(&pfx)).toml();
    let cfg = dir.write("patronus.toml", &toml);
    let want = "port[0].device (lan0): iface=pnoif0: no such network interface here";
    let out = run_with_timeout(patronus().arg("check").arg("--config").arg(&cfg), LIMIT);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}{}", text(&out.stderr));
    assert!(stdout.contains(&format!("problem  {want}")) && stdout.contains("fix: `ip -br link`"), "{stdout}");
    let out = run_with_timeout(patronus().arg("run").arg("--config").arg(&cfg).args(["--duration", "1"]), LIMIT);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains(&format!("{}: {want}", cfg.display())), "{stderr}");
    assert!(!stderr.contains("rte_dev_probe"), "DPDK never got to probe it: {stderr}");
}

/// On a real veth (offloads on, as veths come): `check` warns with the
/// `ethtool` command; once it has run, the warning is gone.
#[test]
fn check_warns_of_offloads_on_an_af_packet_veth() {
    if let Some(why) = netns_unavailable() {
        return skip("check_warns_of_offloads_on_an_af_packet_veth", &why);
    }
    let ns = format!("pto{}", std::process::id() % 100000);
    let _ = try_sh(&format!("ip netns del {ns}"));
    sh(&format!("ip netns add {ns} && ip -n {ns} link add v0 type veth peer name v1 && ip -n {ns} link set v0 up"));
    let dir = Scratch::new("offloads");
    let pfx = prefix("offloads");
    let toml = TwoPorts::appliance(&pfx).devices("net_af_packet0,iface=v0", "net_null1").extra(&control_section(&pfx)).toml();
    let cfg = dir.write("patronus.toml", &toml);
    let check = || {
        let out = run_with_timeout(
            Command::new("ip").args(["netns", "exec", &ns]).arg(env!("CARGO_BIN_EXE_patronus")).arg("check").arg("--config").arg(&cfg),
            LIMIT,
        );
        (out.status.code(), text(&out.stdout))
    };
    let (code, out) = check();
    let warned = out.lines().any(|l| l.contains("warning  port[0].device (lan0): iface=v0: tx-checksumming"));
    let fixed = out.contains("fix: ethtool -K v0 tx off rx off tso off gso off gro off");
    sh(&format!("ip netns exec {ns} ethtool -K v0 tx off rx off tso off gso off gro off"));
    let (code2, out2) = check();
    let _ = try_sh(&format!("ip netns del {ns}"));
    assert_eq!(code, Some(0), "a warning is not a problem: {out}");
    assert!(warned && fixed, "{out}");
    assert_eq!(code2, Some(0), "{out2}");
    assert!(out2.contains("iface=v0: interface exists, checksum and segmentation offloads off"), "{out2}");
}

/// `patronus reload` with nothing running: a clear error, exit 1.
#[test]
fn reload_without_an_appliance_says_so() {
    let out = run_with_timeout(patronus().args(["reload", "--socket", "/nonexistent/p.sock"]), LIMIT);
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(err.contains("no appliance answers on /nonexistent/p.sock"), "{err}");
}
