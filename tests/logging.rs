//! The appliance's log: JSON lines when asked (`--log-format json` or
//! PATRONUS_LOG_FORMAT=json), every line an object with a timestamp, a
//! level and a message, the periodic summary and final report included;
//! text otherwise; and in neither the site's private key or a preshared key.

mod common;

use std::time::Duration;

use common::*;

const LIMIT: Duration = Duration::from_secs(60);

/// A cross-connect on net_null with a tunnel peer (never reachable), a
/// preshared key and a one-second summary.
fn setup(s: &Scratch, pfx: &str) -> (std::path::PathBuf, String, String) {
    let bin = env!("CARGO_BIN_EXE_patronus");
    let key = sh(&format!("{bin} genkey")).trim().to_owned();
    let psk = sh(&format!("{bin} genkey")).trim().to_owned();
    for (f, k) in [("site.key", &key), ("peer.psk", &psk)] {
        let p = s.write(f, &format!("{k}\n"));
        std::fs::set_permissions(&p, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    }
    let peer = sh(&format!("{bin} genkey | {bin} pubkey")).trim().to_owned();
    let cfg = s.write(
        "patronus.toml",
        &TwoPorts::appliance(pfx)
            .eal("log_level = \"notice\"")
            // DPDK's telemetry stays on: its notices are the DPDK lines the test looks for.
            .eal("extra_args = [\"--telemetry\"]")
            .worker("poll_mode = \"adaptive\"")
            .stats(1)
            .extra(&control_section(pfx))
            .extra(&format!(
                "\n[site]\nprivate_key_file = \"site.key\"\n\n\
                 [[tunnel.peer]]\nname = \"site-b\"\npublic_key = \"{peer}\"\npreshared_key = \"peer.psk\"\nendpoint = \"192.0.2.2:51820\"\nallowed_ips = [\"10.2.0.0/16\"]\n"
            ))
            .toml(),
    );
    (cfg, key, psk)
}

#[test]
fn json_logs_parse_line_by_line_and_hold_no_secret() {
    let s = Scratch::new("log-json");
    let pfx = prefix("logjson");
    let (cfg, key, psk) = setup(&s, &pfx);
    for how in ["flag", "env"] {
        let mut cmd = patronus();
        cmd.args(["run", "--duration", "2.5", "--config"]).arg(&cfg);
        match how {
            "flag" => cmd.args(["--log-format", "json"]),
            _ => cmd.env("PATRONUS_LOG_FORMAT", "json"),
        };
        let out = run_with_timeout(&mut cmd, LIMIT);
        assert!(out.status.success(), "{how}: {}\n{}", text(&out.stdout), text(&out.stderr));
        let all = format!("{}{}", text(&out.stdout), text(&out.stderr));
        assert!(!all.contains(&key) && !all.contains(&psk), "{how}: a secret was logged:\n{all}");
        let mut messages = Vec::new();
        let mut dpdk = 0;
        for line in all.lines() {
            // DPDK's own lines too: they arrive as events with target "dpdk".
            let v: serde_json::Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{how}: not JSON ({e}): {line}"));
            assert!(v["timestamp"].is_string() && v["level"].is_string(), "{line}");
            dpdk += (v["target"] == "dpdk") as usize;
            messages.push(v["message"].as_str().unwrap_or_else(|| panic!("no message: {line}")).to_owned());
        }
        let has = |needle: &str| messages.iter().any(|m| m.contains(needle));
        assert!(has("running: 1 worker(s)"), "{how}: {messages:?}");
        // The Promtail config reads fields the lines really have.
        let keys: std::collections::BTreeSet<String> = all
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .flat_map(|v| v.as_object().map(|o| o.keys().cloned().collect::<Vec<_>>()).unwrap_or_default())
            .collect();
        let promtail =
            std::fs::read_to_string(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../conf/promtail/promtail.yml")).unwrap();
        for field in ["timestamp", "level", "target", "message"] {
            assert!(promtail.contains(&format!(": {field}\n")), "promtail.yml does not read {field}");
            assert!(keys.contains(field), "{how}: no line has {field}: {keys:?}");
        }
        // DPDK's own notices (telemetry's, asked for with --telemetry) came through as events.
        assert!(dpdk > 0, "{how}: no DPDK line among {messages:?}");
        assert!(has("tunnel: public key "), "{how}: {messages:?}");
        assert!(has("lan0 rx "), "{how}: the periodic summary: {messages:?}");
        assert!(has("stopped after") && has("mbufs returned"), "{how}: the final report: {messages:?}");
    }
}

/// A bad config under `run --log-format json` is a JSON error naming the
/// file, line and field; nothing starts.
#[test]
fn a_bad_config_is_a_json_error() {
    let s = Scratch::new("log-bad");
    let cfg = s.write("bad.toml", "[eal]\nworker_lcores = [1]\nmemroy_mb = 512\n");
    let out = run_with_timeout(patronus().args(["run", "--log-format", "json", "--config"]).arg(&cfg), LIMIT);
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stdout.is_empty(), "{}", text(&out.stdout));
    let err = text(&out.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    let v: serde_json::Value = serde_json::from_str(err.trim()).unwrap_or_else(|e| panic!("not JSON ({e}): {err}"));
    assert_eq!(v["level"], "ERROR");
    let msg = v["message"].as_str().unwrap();
    assert!(msg.starts_with(&format!("{}:3:1: eal.memroy_mb: unknown field `memroy_mb`", cfg.display())), "{msg}");
}

#[test]
fn text_logs_are_prefixed_lines_and_hold_no_secret() {
    let s = Scratch::new("log-text");
    let pfx = prefix("logtext");
    let (cfg, key, psk) = setup(&s, &pfx);
    let out =
        run_with_timeout(patronus().args(["run", "--duration", "1.5", "--config"]).arg(&cfg).env_remove("PATRONUS_LOG_FORMAT"), LIMIT);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    let all = format!("{stdout}{}", text(&out.stderr));
    assert!(!all.contains(&key) && !all.contains(&psk), "a secret was logged:\n{all}");
    assert!(stdout.lines().any(|l| l.starts_with("patronus: running: 1 worker(s)")), "{stdout}");
    assert!(!stdout.lines().any(|l| l.starts_with('{')), "{stdout}");

    // A refused reload is a warning plus the error, on stderr.
    let mut app = Appliance::start(&cfg, socket_path(&pfx));
    let good = std::fs::read_to_string(&cfg).unwrap();
    std::fs::write(&cfg, good.replace("[stats]", "[stats]\ninterval_z = 1")).unwrap();
    let _ = app.cli(&["reload"]);
    let line = app.wait_for("rejected; the running config stays", LIMIT);
    assert!(line.starts_with("patronus: warning: reload (control socket) rejected"), "{line}");
    app.wait_for("patronus: error: ", LIMIT);
}
