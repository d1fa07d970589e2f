//! The monitoring contract's files (alert rules, dashboards) and a real
//! Prometheus server, for tests/prometheus.rs (one appliance) and
//! tests/paths.rs (the two-site lab).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::{http_get, text};

pub fn conf(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../conf").join(rel)
}

pub fn have(tool: &str) -> bool {
    Command::new("sh").arg("-c").arg(format!("command -v {tool}")).output().is_ok_and(|o| o.status.success())
}

/// Every PromQL expression in the alert rules and the dashboards, with
/// where it comes from ("alerts.yml", "UID: PANEL TITLE", "UID: annotation",
/// "UID: variable").
pub fn expressions() -> Vec<(String, String)> {
    let mut out = Vec::new();
    let rules = std::fs::read_to_string(conf("prometheus/alerts.yml")).unwrap();
    for l in rules.lines() {
        if let Some(e) = l.trim().strip_prefix("expr: ") {
            out.push(("alerts.yml".to_owned(), e.to_owned()));
        }
    }
    for d in dashboards() {
        let name = d["uid"].as_str().unwrap().to_owned();
        for p in d["panels"].as_array().unwrap() {
            for t in p["targets"].as_array().unwrap() {
                out.push((format!("{name}: {}", p["title"].as_str().unwrap()), t["expr"].as_str().unwrap().to_owned()));
            }
        }
        for a in d["annotations"]["list"].as_array().unwrap() {
            out.push((format!("{name}: annotation"), a["expr"].as_str().unwrap().to_owned()));
        }
        out.push((format!("{name}: variable"), d["templating"]["list"][0]["definition"].as_str().unwrap().to_owned()));
    }
    out
}

pub fn dashboards() -> Vec<Value> {
    let mut v = Vec::new();
    let mut files: Vec<_> = std::fs::read_dir(conf("grafana/dashboards")).unwrap().map(|e| e.unwrap().path()).collect();
    files.sort();
    for f in files {
        let d: Value = serde_json::from_str(&std::fs::read_to_string(&f).unwrap()).unwrap_or_else(|e| panic!("{}: {e}", f.display()));
        v.push(d);
    }
    v
}

/// patronus_* names in an expression.
pub fn metric_names(expr: &str) -> Vec<String> {
    let mut out = Vec::new();
    let b = expr.as_bytes();
    let mut i = 0;
    while let Some(pos) = expr[i..].find("patronus_") {
        let start = i + pos;
        let mut end = start;
        while end < b.len() && (b[end].is_ascii_alphanumeric() || b[end] == b'_') {
            end += 1;
        }
        out.push(expr[start..end].to_owned());
        i = end;
    }
    out
}

pub fn referenced() -> BTreeSet<String> {
    expressions().iter().flat_map(|(_, e)| metric_names(e)).collect()
}

/// Grafana's variables, as a query through the HTTP API needs them.
pub fn grafana_to_promql(expr: &str) -> String {
    if let Some(inner) = expr.strip_prefix("label_values(").and_then(|e| e.strip_suffix(')')) {
        return inner.split(',').next().unwrap().to_owned();
    }
    expr.replace("$instance", ".*").replace("$__rate_interval", "1m").replace("$__range", "5m").replace("$__interval", "15s")
}

fn encode(q: &str) -> String {
    q.bytes()
        .map(|b| if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) { (b as char).to_string() } else { format!("%{b:02X}") })
        .collect()
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A real Prometheus server scraping `target` every second with the
/// alert rules loaded, in network namespace `ns` if given.
pub struct Prometheus {
    child: Child,
    pub base: String,
    ns: Option<String>,
}

impl Prometheus {
    pub fn start(dir: &Path, target: &str, ns: Option<&str>) -> Prometheus {
        std::fs::copy(conf("prometheus/alerts.yml"), dir.join("alerts.yml")).unwrap();
        let cfg = dir.join("prometheus.yml");
        std::fs::write(
            &cfg,
            format!(
                "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nrule_files:\n  - alerts.yml\nscrape_configs:\n  - job_name: patronus\n    static_configs:\n      - targets: [\"{target}\"]\n"
            ),
        )
        .unwrap();
        let port = free_port();
        let mut cmd = match ns {
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns, "prometheus"]);
                c
            }
            None => Command::new("prometheus"),
        };
        let child = cmd
            .arg(format!("--config.file={}", cfg.display()))
            .arg(format!("--storage.tsdb.path={}", dir.join("tsdb").display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start prometheus");
        let prom = Prometheus { child, base: format!("http://127.0.0.1:{port}"), ns: ns.map(str::to_owned) };
        // Ready, and at least three scrapes in (rate() needs two points).
        let start = Instant::now();
        loop {
            let up = prom.query("up{job=\"patronus\"} == 1").ok().and_then(|r| r.as_array().map(|a| !a.is_empty()));
            let scrapes =
                prom.query("count_over_time(up{job=\"patronus\"}[1m])").ok().and_then(|r| r[0]["value"][1].as_str()?.parse::<u32>().ok());
            if up == Some(true) && scrapes.is_some_and(|n| n >= 3) {
                break;
            }
            assert!(start.elapsed() < Duration::from_secs(60), "Prometheus did not scrape the appliance at {target} in 60 s");
            std::thread::sleep(Duration::from_millis(250));
        }
        prom
    }

    pub fn get(&self, path: &str) -> Result<String, String> {
        let url = format!("{}{path}", self.base);
        match &self.ns {
            None => http_get(&url),
            Some(ns) => {
                let out = Command::new("ip").args(["netns", "exec", ns, "curl", "-sf", &url]).output().map_err(|e| e.to_string())?;
                if out.status.success() {
                    Ok(text(&out.stdout))
                } else {
                    Err(format!("curl {url}: {}", text(&out.stderr)))
                }
            }
        }
    }

    pub fn query(&self, q: &str) -> Result<Value, String> {
        let body = self.get(&format!("/api/v1/query?query={}", encode(q)))?;
        let v: Value = serde_json::from_str(&body).map_err(|e| e.to_string())?;
        if v["status"] != "success" {
            return Err(format!("{q}: {v}"));
        }
        Ok(v["data"]["result"].clone())
    }

    /// Every rule and dashboard expression evaluates; returns the dashboard
    /// panels none of whose queries returns data, except those whose
    /// metrics are all in `waits` (features or events to come).
    pub fn panels_without_data(&self, waits: &BTreeSet<&str>) -> Vec<String> {
        let mut panels: BTreeMap<String, (bool, Vec<String>)> = BTreeMap::new();
        for (from, e) in expressions() {
            let q = grafana_to_promql(&e);
            let r = self.query(&q).unwrap_or_else(|err| panic!("{from}: {q}: {err}"));
            if from.starts_with("alerts.yml") || from.ends_with("annotation") {
                continue;
            }
            let data = r.as_array().is_some_and(|a| !a.is_empty()) || metric_names(&e).iter().any(|m| waits.contains(m.as_str()));
            let p = panels.entry(from).or_default();
            p.0 |= data;
            p.1.push(q);
        }
        panels.iter().filter(|(_, (data, _))| !data).map(|(from, (_, qs))| format!("{from}: {}", qs.join(" | "))).collect()
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
