//! The two-site demo (scripts/demo.py, the README's first command) runs to
//! completion, and its summary says what it should: every packet the hosts
//! sent arrived at the other site, the tunnel was up, each application was
//! classified with the exact packet count the capture holds, the policy put
//! each class of traffic on its path, no drop but the expected ones, and
//! both appliances exited cleanly with every mbuf back. No root needed.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::*;

/// Packets of the demo capture per transport port, both directions.
fn packets_with_port(pcap: &Path, proto: u8, port: u16) -> u64 {
    let mut n = 0;
    patronus::capture::Capture::open(pcap)
        .unwrap()
        .for_each(|p| {
            let f = p.data;
            if f.len() < 38 || f[12..14] != [8, 0] || f[23] != proto {
                return;
            }
            let l4 = 14 + (f[14] as usize & 15) * 4;
            let sp = u16::from_be_bytes([f[l4], f[l4 + 1]]);
            let dp = u16::from_be_bytes([f[l4 + 2], f[l4 + 3]]);
            n += (sp == port || dp == port) as u64;
        })
        .unwrap();
    n
}

/// Interrupts the demo (SIGINT, as Ctrl-C: it stops what it started) if
/// the test panics while it runs.
struct StopOnPanic(Option<u32>);

impl Drop for StopOnPanic {
    fn drop(&mut self) {
        let Some(pid) = self.0 else { return };
        if std::thread::panicking() {
            // SAFETY: kill has no memory-safety preconditions.
            unsafe { libc::kill(pid as i32, libc::SIGINT) };
            let until = std::time::Instant::now() + Duration::from_secs(30);
            // Until it exits (a zombie, unreaped, counts as gone).
            let running = || std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| !s.contains(") Z "));
            while running() && std::time::Instant::now() < until {
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    }
}

fn demo_cmd(user: Option<&str>, dir: &Path, summary: &Path, loops: u64, tag: &str, metrics: (u16, u16)) -> Command {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let mut c = match user {
        Some(u) => {
            let mut c = Command::new("runuser");
            c.args(["-u", u, "--", "python3"]);
            c
        }
        None => Command::new("python3"),
    };
    c.arg(root.join("scripts/demo.py"))
        .args(["--loops", &loops.to_string(), "--pps", "3000", "--no-live", "--prefix", &prefix(tag)])
        .args(["--metrics-a", &metrics.0.to_string(), "--metrics-b", &metrics.1.to_string(), "--binary", env!("CARGO_BIN_EXE_patronus")])
        .arg("--dir")
        .arg(dir)
        .arg("--summary-json")
        .arg(summary);
    c
}

/// The demo as an ordinary user: no root, as the README says. Run when
/// the tests run as root (CI), as `nobody`.
#[test]
fn demo_runs_without_root() {
    const NAME: &str = "demo_runs_without_root";
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        // Not root already: the other test is the unprivileged run.
        skip(NAME, "not root, so demo_runs_and_its_summary_holds already ran without root");
        return;
    }
    if Command::new("runuser").arg("--version").output().is_err() || Command::new("python3").arg("--version").output().is_err() {
        skip(NAME, "needs runuser (util-linux) and python3");
        return;
    }
    // `nobody` must reach the binary and the scripts.
    let probe = Command::new("runuser").args(["-u", "nobody", "--", "test", "-x", env!("CARGO_BIN_EXE_patronus")]).status();
    if !probe.is_ok_and(|s| s.success()) {
        skip(NAME, "user nobody cannot reach the built binary (a parent directory is not world-searchable)");
        return;
    }
    let base = std::env::temp_dir().join(format!("patronus-demo-nobody-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&base);
    std::fs::create_dir_all(&base).unwrap();
    std::fs::set_permissions(&base, std::os::unix::fs::PermissionsExt::from_mode(0o777)).unwrap();
    let summary = base.join("summary.json");
    let out = run_with_timeout(
        &mut demo_cmd(Some("nobody"), &base.join("run"), &summary, 1, "demo-nobody", (19183, 19184)),
        Duration::from_secs(240),
    );
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "demo as nobody failed ({}):\n{stdout}\n{}", code(out.status), text(&out.stderr));
    let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&summary).unwrap()).unwrap();
    assert_eq!(v["ok"], true, "{v}");
    assert_eq!(v["delivered"]["site-a->site-b"], v["sent"]["site-a"]);
    let _ = std::fs::remove_dir_all(&base);
}

#[test]
fn demo_runs_and_its_summary_holds() {
    if Command::new("python3").arg("--version").output().is_err() {
        skip("demo_runs_and_its_summary_holds", "python3 is not installed (scripts/setup.sh installs it)");
        return;
    }
    let s = Scratch::new("demo");
    let dir = s.path("run");
    let summary = s.path("summary.json");
    let loops = 2u64;
    let out = run_with_timeout(&mut demo_cmd(None, &dir, &summary, loops, "demo", (19181, 19182)), Duration::from_secs(240));
    let stdout = text(&out.stdout);
    let stderr = text(&out.stderr);
    assert!(out.status.success(), "demo failed ({}):\n{stdout}\n{stderr}", code(out.status));
    assert!(stdout.contains("result: OK"), "{stdout}");
    assert!(stdout.contains("application") && stdout.contains("rtt p50"), "no live table:\n{stdout}");
    let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&summary).unwrap()).unwrap();
    println!("{}", serde_json::to_string_pretty(&v).unwrap());

    assert_eq!(v["tunnel_up"], true);
    assert_eq!(v["ok"], true);
    // Nothing lost either way.
    assert_eq!(v["delivered"]["site-a->site-b"], v["sent"]["site-a"]);
    assert_eq!(v["delivered"]["site-b->site-a"], v["sent"]["site-b"]);
    assert!(v["sent"]["site-a"].as_u64().unwrap() > 2000, "{v}");
    assert_eq!(v["unexpected_drops"], serde_json::json!({}), "{v}");
    assert_eq!(v["exit_codes"]["site-a"], 0);
    assert_eq!(v["exit_codes"]["site-b"], 0);

    // Every application of the capture, classified at site A; for the
    // long-lived flows, the packet count of `loops` replays, less the few
    // a flow sends before DPI decides it (counted as Unknown; at most 8
    // each way).
    let pcap = dir.join("lan.pcap");
    let apps = &v["apps"];
    let exact = [("RTP", 17u8, 6000u16), ("SIP", 17, 5060), ("Dropbox", 6, 41000)];
    for (app, proto, port) in exact {
        let want = loops * packets_with_port(&pcap, proto, port);
        assert!(want > 0);
        let got = apps[app]["packets"].as_u64().unwrap_or(0);
        assert!(got <= want && got + 16 >= want, "{app}: {got} packets, expected {want} (less up to 16): {apps}");
    }
    for app in ["YouTube", "Netflix", "SSH", "MySQL", "PostgreSQL", "Redis"] {
        assert!(apps[app]["flows"].as_u64().unwrap_or(0) >= 1, "{app} not classified: {apps}");
    }
    assert_eq!(apps["Dropbox"]["category"], "Cloud");
    assert_eq!(apps["RTP"]["category"], "VoIP");

    // The policy: calls on the private line, bulk and video on the internet link.
    let paths = &v["paths"];
    let on = |p: &str| paths[p]["rules"].as_array().unwrap().iter().map(|r| r.as_str().unwrap().to_owned()).collect::<Vec<_>>();
    assert!(on("mpls").contains(&"voip".to_owned()), "{paths}");
    assert!(on("inet").contains(&"bulk".to_owned()) && on("inet").contains(&"video".to_owned()), "{paths}");
    assert_eq!(paths["mpls"]["state"], "up");
    assert_eq!(paths["inet"]["state"], "up");
    // RTP (200-byte packets, site A's half) went out on mpls.
    let rtp_out = loops * packets_with_port(&pcap, 17, 6000) / 2 * 200;
    assert!(paths["mpls"]["tx_bytes"].as_u64().unwrap() >= rtp_out, "{paths}");
    assert!(paths["inet"]["tx_bytes"].as_u64().unwrap() > 0, "{paths}");
    assert_eq!(v["failovers"], 0);

    // The metrics endpoint served what the table showed: per-application
    // traffic and per-path figures (scraped at the end, scripts/demo.py).
    let metrics = std::fs::read_to_string(dir.join("site-a.metrics")).unwrap();
    let rtp_bytes = metrics
        .lines()
        .find(|l| l.starts_with("patronus_application_bytes_total{") && l.contains("application=\"RTP\""))
        .and_then(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .unwrap_or_else(|| panic!("no RTP bytes series:\n{metrics}"));
    assert_eq!(rtp_bytes as u64, apps["RTP"]["bytes"].as_u64().unwrap());
    for series in ["patronus_path_health_score{", "patronus_tunnel_status{", "patronus_dpi_flows_total{"] {
        assert!(metrics.lines().any(|l| l.starts_with(series)), "no {series}: {metrics}");
    }

    // QoS: site A's calls left in the realtime class on mpls, the bulk
    // download's acknowledgements in the bulk class on inet.
    let qos = &v["qos"];
    assert!(qos["mpls"]["realtime"]["packets"].as_u64().unwrap_or(0) >= loops * packets_with_port(&pcap, 17, 6000) / 2, "{qos}");
    assert!(qos["inet"]["bulk"]["packets"].as_u64().unwrap_or(0) > 0, "{qos}");
}

/// `patronus replay` refuses bad arguments and a bad capture before it
/// starts DPDK, naming what is wrong.
#[test]
fn replay_refuses_bad_input_clearly() {
    let s = Scratch::new("replay-bad");
    let out = run_with_timeout(
        patronus().args([
            "replay",
            "--pcap",
            "x.pcap",
            "--port",
            "net_null0",
            "--port",
            "net_null1",
            "--hosts",
            "10.1.0.0/24",
            "--gateway",
            "10.1.0.1",
        ]),
        Duration::from_secs(30),
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("give one --hosts and one --gateway per --port (2 port(s), 1 hosts, 1 gateways)"),
        "{}",
        text(&out.stderr)
    );
    let out = run_with_timeout(
        patronus().args(["replay", "--pcap", "x.pcap", "--port", "net_null0", "--hosts", "10.1.0.0/33", "--gateway", "10.1.0.1"]),
        Duration::from_secs(30),
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("prefix length must be 0..=32"), "{}", text(&out.stderr));
    let missing = s.path("missing.pcap");
    let out = run_with_timeout(
        patronus().args(["replay", "--port", "net_null0", "--hosts", "10.1.0.0/24", "--gateway", "10.1.0.1", "--pcap"]).arg(&missing),
        Duration::from_secs(30),
    );
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(err.contains(&format!("patronus: replay: error: {}", missing.display())) && !err.contains("EAL"), "{err}");
    let junk = s.write("junk.pcap", "not a capture");
    let out = run_with_timeout(
        patronus().args(["replay", "--port", "net_null0", "--hosts", "10.1.0.0/24", "--gateway", "10.1.0.1", "--pcap"]).arg(&junk),
        Duration::from_secs(30),
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("not a pcap or pcapng file"), "{}", text(&out.stderr));
}

/// The running demo's two dashboards in a real browser (headless
/// Chromium; no root): each page loads with no console error, logs in
/// with the demo's admin token, shows both paths up and the applications
/// the demo's traffic carries, and its figures match `patronus show
/// --json`. Screenshots go to target/dashboard/ (the README's is site A's).
#[test]
fn the_running_demos_dashboards_in_a_real_browser() {
    const NAME: &str = "the_running_demos_dashboards_in_a_real_browser";
    for tool in ["python3", "chromium"] {
        if Command::new(tool).arg("--version").output().is_err() {
            skip(NAME, &format!("{tool} is not installed (scripts/setup.sh installs it)"));
            return;
        }
    }
    let s = Scratch::new("demo-browser");
    let dir = s.path("run");
    let summary = s.path("summary.json");
    let ports = (19185, 19186);
    let mut cmd = demo_cmd(None, &dir, &summary, 0, "demo-browser", ports);
    cmd.args(["--duration", "25"]).stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    // A failed assertion below stops the demo (its appliances run in
    // sessions of their own and would keep the test's ports).
    let mut guard = StopOnPanic(Some(child.id()));
    // Until the demo prints its dashboards (the tunnel is up then).
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let mut seen = Vec::new();
    while !seen.iter().any(|l: &String| l.contains("demo: dashboards:")) {
        match rx.recv_timeout(deadline.saturating_duration_since(std::time::Instant::now())) {
            Ok(l) => seen.push(l),
            Err(_) => panic!("no dashboards line:\n{}", seen.join("\n")),
        }
    }
    let line = seen.last().unwrap().clone();
    assert!(
        line.contains(&format!("http://127.0.0.1:{}/ (site A)", ports.0))
            && line.contains(&format!("http://127.0.0.1:{}/ (site B)", ports.1)),
        "{line}"
    );
    let token = std::fs::read_to_string(dir.join("api-token")).unwrap().trim().to_owned();
    std::thread::sleep(Duration::from_secs(4)); // traffic for the tables
    let shots = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/dashboard");
    for (site, port) in [("a", ports.0), ("b", ports.1)] {
        let mut b = common::browser::Browser::launch(None, &s.path(&format!("chromium-{site}"))).unwrap();
        b.open(&format!("http://127.0.0.1:{port}/")).unwrap();
        b.eval(&format!("document.getElementById('token').value = {token:?}; document.getElementById('login').requestSubmit(); true"))
            .unwrap();
        let ready = "window.__patronus.role === 'admin' && document.querySelectorAll('#paths .state-up').length === 2 \
                     && document.querySelectorAll('#apps tbody tr').length >= 5 && document.querySelectorAll('#events li').length > 0";
        if let Err(e) = b.wait_until(ready, Duration::from_secs(10)) {
            let said = b.eval("document.getElementById('whoami').textContent + ' | ' + document.getElementById('status').textContent");
            panic!("site {site}: {e}\npage: {said:?}\nconsole: {:?}", b.errors());
        }
        // Let a chart grow, then compare the page's applications with show's.
        std::thread::sleep(Duration::from_secs(2));
        let page = b.eval("JSON.stringify(window.__patronus.figures.apps.map(a => [a.application, a.packets]))").unwrap();
        let show = run_with_timeout(
            patronus().args(["show", "apps", "--json", "--socket"]).arg(dir.join(format!("{site}.sock"))),
            Duration::from_secs(10),
        );
        let show: serde_json::Value = serde_json::from_str(&text(&show.stdout)).unwrap();
        let page: Vec<(String, u64)> = serde_json::from_str(page.as_str().unwrap()).unwrap();
        for (app, packets) in &page {
            let now =
                show["apps"].as_array().unwrap().iter().find(|a| &a["application"] == app).map_or(0, |a| a["packets"].as_u64().unwrap());
            // The page is at most a second behind: up to 3000 pps more since.
            assert!(*packets <= now && packets + 4000 >= now, "site {site} {app}: page {packets}, show {now}");
        }
        // The live flows, a page of 5 at a time through the page's own
        // client, against the whole listing of `patronus flows` and the
        // table's count in `show flows`.
        let sock = dir.join(format!("{site}.sock"));
        let cli = |args: &[&str]| -> serde_json::Value {
            let out = run_with_timeout(patronus().args(args).arg("--json").arg("--socket").arg(&sock), Duration::from_secs(10));
            assert!(out.status.success(), "patronus {args:?}: {}", text(&out.stderr));
            serde_json::from_str(&text(&out.stdout)).unwrap()
        };
        let active_before = cli(&["show", "flows"])["flows"]["active"].as_u64().unwrap();
        let listed = cli(&["flows", "--first", "1000"])["flows"].clone();
        assert_eq!(listed["has_next_page"], false, "site {site}: {listed}");
        let paged = b
            .eval(
                "(async () => { let after = null; const pages = [], rows = []; \
                 for (let i = 0; i < 500; i++) { \
                   const r = await gql('query ($a: String) { flows(first: 5, after: $a) { rows { worker protocol client client_port \
                     server server_port application state packets_from_client } end_cursor has_next_page } }', { a: after }); \
                   if (r.errors) return JSON.stringify({ error: r.errors[0].message }); \
                   const p = r.data.flows; pages.push(p.rows.length); rows.push(...p.rows); \
                   if (!p.has_next_page) return JSON.stringify({ pages, rows }); \
                   after = p.end_cursor; } \
                 return JSON.stringify({ error: 'no last page' }); })()",
            )
            .unwrap();
        let paged: serde_json::Value = serde_json::from_str(paged.as_str().unwrap()).unwrap();
        assert!(paged["error"].is_null(), "site {site}: {paged}");
        let active_after = cli(&["show", "flows"])["flows"]["active"].as_u64().unwrap();
        assert!(paged["pages"].as_array().unwrap().iter().all(|n| n.as_u64().unwrap() <= 5), "{paged}");
        let (lo, hi) = (active_before.min(active_after), active_before.max(active_after));
        for (how, rows) in [("patronus flows", &listed["rows"]), ("paged", &paged["rows"])] {
            let n = rows.as_array().unwrap().len() as u64;
            // Short flows start and end while the pages are read.
            assert!(n + 10 >= lo / 2 && n <= hi * 2 + 10, "site {site} {how}: {n} flows listed, show says {lo}..{hi}");
        }
        // The busiest flow of the listing is in the pages, with at least
        // as many packets (read later).
        let tuple = |r: &serde_json::Value| {
            (r["protocol"].clone(), r["client"].clone(), r["client_port"].clone(), r["server"].clone(), r["server_port"].clone())
        };
        let busiest = listed["rows"].as_array().unwrap().iter().max_by_key(|r| r["packets_from_client"].as_u64()).unwrap();
        let again = paged["rows"].as_array().unwrap().iter().find(|r| tuple(r) == tuple(busiest));
        let again = again.unwrap_or_else(|| panic!("site {site}: {busiest} not in the pages {paged}"));
        assert_eq!(again["application"], busiest["application"]);
        assert!(again["packets_from_client"].as_u64() >= busiest["packets_from_client"].as_u64(), "{again} vs {busiest}");
        assert!(busiest["application"] != "Unknown" && busiest["state"] == "decided", "{busiest}");
        // Rates come from consecutive figures: live traffic shows.
        let pps = b.eval("parseFloat(document.querySelector('#ports tr[data-port=lan0]').children[4].textContent)").unwrap();
        assert!(pps.as_f64().unwrap_or(0.0) > 100.0, "site {site}: lan0 rx pps {pps}");
        b.screenshot(&shots.join(format!("demo-site-{site}.png"))).unwrap();
        assert!(b.errors().is_empty(), "site {site}: console errors: {:?}", b.errors());
    }
    guard.0 = None;
    let out = wait_output(child, Duration::from_secs(120));
    let rest: Vec<String> = rx.try_iter().collect();
    assert!(
        out.status.success(),
        "the demo failed ({}):\n{}\n{}\n{}",
        code(out.status),
        seen.join("\n"),
        rest.join("\n"),
        text(&out.stderr)
    );
}
