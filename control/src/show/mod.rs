//! Renders control-socket replies as the tables `patronus show` prints.
//! The appliance sends data (JSON); presentation lives here, so `--json`
//! and the tables always agree.

mod data;
pub(crate) mod flows;

pub(crate) use data::qos_rows;

use std::fmt::Write;

use serde_json::Value;

use crate::ctl::Request;
use crate::telemetry::QUANTILES;

/// A column: header, the row's key, and how to print it.
struct Col {
    head: &'static str,
    key: &'static str,
    fmt: Fmt,
}

#[derive(Clone, Copy)]
enum Fmt {
    Raw,
    /// Seconds, one decimal.
    Seconds,
    /// A list of strings, space-separated.
    List,
}

const fn col(head: &'static str, key: &'static str) -> Col {
    Col { head, key, fmt: Fmt::Raw }
}

fn cell(v: &Value, fmt: Fmt) -> String {
    match (v, fmt) {
        (Value::Null, _) => "-".into(),
        (Value::Number(n), Fmt::Seconds) => format!("{:.1}", n.as_f64().unwrap_or(0.0)),
        (Value::Number(n), Fmt::Raw) if n.is_f64() => format!("{:.1}", n.as_f64().unwrap_or(0.0)),
        (Value::String(s), _) => s.clone(),
        (Value::Array(a), Fmt::List) => {
            a.iter().map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_owned)).collect::<Vec<_>>().join(" ")
        }
        (v, _) => v.to_string(),
    }
}

/// Aligned columns: text left, numbers right.
fn table(rows: &[Value], cols: &[Col]) -> String {
    let cells: Vec<Vec<String>> = rows.iter().map(|r| cols.iter().map(|c| cell(&r[c.key], c.fmt)).collect()).collect();
    let is_num = |v: &Value| !(v.is_string() || v.is_array()) || v.as_str().is_some_and(|s| s.parse::<f64>().is_ok());
    let numeric: Vec<bool> = (0..cols.len()).map(|i| rows.iter().all(|r| is_num(&r[cols[i].key]))).collect();
    let width: Vec<usize> =
        (0..cols.len()).map(|i| cells.iter().map(|r| r[i].len()).chain([cols[i].head.len()]).max().unwrap_or(0)).collect();
    let mut out = String::new();
    let line = |out: &mut String, items: Vec<&str>| {
        let parts: Vec<String> = items
            .iter()
            .enumerate()
            .map(|(i, s)| if numeric[i] { format!("{s:>w$}", w = width[i]) } else { format!("{s:<w$}", w = width[i]) })
            .collect();
        let _ = writeln!(out, "{}", parts.join("  ").trim_end());
    };
    line(&mut out, cols.iter().map(|c| c.head).collect());
    for r in &cells {
        line(&mut out, r.iter().map(String::as_str).collect());
    }
    if rows.is_empty() {
        out.push_str("(none)\n");
    }
    out
}

/// The text for a successful reply.
pub fn render(req: &Request, reply: &Value) -> String {
    match req {
        Request::Reload => reload(reply),
        Request::Show { what } if what == "peers" => peers(&reply["peers"]),
        Request::Show { what } if what == "paths" => paths(&reply["paths"]),
        Request::Show { what } if what == "bfd" => bfd(&reply["bfd"]),
        Request::Show { what } => show(what, &reply[what.as_str()]),
        Request::Rekey { .. } => format!("handshake started with {} peer(s)\n", reply["peers"]),
        Request::Drain { .. } => {
            let still = list(&reply["rules_still_on_path"]);
            let mut s = format!("{}\n", str_of(&reply["message"]));
            if !still.is_empty() {
                s.push_str(&format!("rules still on it (no other usable path): {}\n", still.join(", ")));
            }
            s
        }
        Request::ReloadText { .. } => reload(reply),
        Request::Flows { .. } => flow_list(&reply["flows"]),
    }
}

/// `patronus flows`: one line per flow, then where the next page starts.
fn flow_list(d: &Value) -> String {
    if d["enabled"] == Value::Bool(false) {
        return "flow tracking and DPI are off ([dpi] enabled = false)\n".into();
    }
    let rows: Vec<Value> = d["rows"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|r| {
                    let mut r = r.clone();
                    let end = |r: &Value, a: &str, p: &str| {
                        let ip = str_of(&r[a]);
                        if ip.contains(':') {
                            format!("[{ip}]:{}", r[p])
                        } else {
                            format!("{ip}:{}", r[p])
                        }
                    };
                    r["from"] = Value::String(end(&r, "client", "client_port"));
                    r["to"] = Value::String(end(&r, "server", "server_port"));
                    r["packets"] = Value::String(format!("{}/{}", r["packets_from_client"], r["packets_from_server"]));
                    r["idle"] = Value::String(format!("{:.1} s", r["idle_seconds"].as_f64().unwrap_or(0.0)));
                    for k in ["host", "rule", "path"] {
                        if r[k].is_null() {
                            r[k] = Value::String("-".into());
                        }
                    }
                    r
                })
                .collect()
        })
        .unwrap_or_default();
    let mut s = table(
        &rows,
        &[
            col("worker", "worker"),
            col("proto", "protocol"),
            col("client", "from"),
            col("server", "to"),
            col("application", "application"),
            col("host", "host"),
            col("state", "state"),
            col("rule", "rule"),
            col("path", "path"),
            col("packets c/s", "packets"),
            col("idle", "idle"),
        ],
    );
    match d["end_cursor"].as_str() {
        Some(c) => s.push_str(&format!("more: patronus flows --after {c}\n")),
        None => s.push_str(&format!("({} flow(s); end of the tables)\n", rows.len())),
    }
    s
}

/// `show paths`: each path's live SLA figures and the rules on it, the
/// choice per rule, the failovers so far, and BFD.
fn paths(v: &Value) -> String {
    let ms = |x: &Value| x.as_f64().map_or("-".to_owned(), |m| format!("{m:.2}"));
    let rows: Vec<Value> = v["paths"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|p| {
            serde_json::json!({
                "path": p["path"], "peer": p["peer"], "port": p["port"], "endpoint": p["endpoint"], "state": p["state"],
                "health": p["health"], "rtt_p50_ms": ms(&p["rtt_ms"]["p50"]), "rtt_p95_ms": ms(&p["rtt_ms"]["p95"]),
                "jitter_ms": ms(&p["jitter_ms"]), "loss_pct": p["loss_pct"], "avail_pct": p["availability_pct"],
                "tx_bytes": p["tx_bytes"], "rx_bytes": p["rx_bytes"],
                "rules": list(&p["rules"]).join(","),
                "applications": list(&p["applications"]).join(" | "),
            })
        })
        .collect();
    if rows.is_empty() {
        return "paths: none configured ([[path]] in the config; docs/PATHS.md)\n".into();
    }
    let mut s = table(
        &rows,
        &[
            col("path", "path"),
            col("peer", "peer"),
            col("port", "port"),
            col("endpoint", "endpoint"),
            col("state", "state"),
            col("health", "health"),
            col("rtt_p50_ms", "rtt_p50_ms"),
            col("rtt_p95_ms", "rtt_p95_ms"),
            col("jitter_ms", "jitter_ms"),
            col("loss_%", "loss_pct"),
            col("avail_%", "avail_pct"),
            col("tx_bytes", "tx_bytes"),
            col("rx_bytes", "rx_bytes"),
            col("rules", "rules"),
            col("applications", "applications"),
        ],
    );
    s.push_str("\nrule choices:\n");
    let choices: Vec<Value> = v["choices"].as_array().cloned().unwrap_or_default();
    s.push_str(&table(
        &choices,
        &[col("peer", "peer"), col("rule", "rule"), col("path", "path"), Col { head: "for_s", key: "for_seconds", fmt: Fmt::Seconds }],
    ));
    let f: Vec<Value> = v["failovers"].as_array().cloned().unwrap_or_default();
    let _ = writeln!(s, "\nfailovers: {}", v["failovers_total"]);
    if !f.is_empty() {
        s.push_str(&table(
            &f,
            &[col("rule", "rule"), col("from", "from"), col("to", "to"), col("reason", "reason"), col("count", "count")],
        ));
    }
    if v["bfd"]["sessions"].as_array().is_some_and(|a| !a.is_empty()) {
        s.push('\n');
        s.push_str(&bfd(&v["bfd"]));
    }
    s
}

/// `show bfd`.
fn bfd(v: &Value) -> String {
    let rows: Vec<Value> = v["sessions"].as_array().cloned().unwrap_or_default();
    if rows.is_empty() {
        return "bfd: no sessions ([[bfd]] in the config)\n".into();
    }
    let mut s = table(
        &rows,
        &[
            col("bfd", "name"),
            col("peer", "peer"),
            col("multihop", "multihop"),
            col("state", "state"),
            col("remote", "remote_state"),
            col("diagnostic", "diagnostic"),
            col("tx_ms", "tx_interval_ms"),
            col("detect_ms", "detection_time_ms"),
            Col { head: "since_s", key: "since_seconds", fmt: Fmt::Seconds },
            col("ups", "up_events"),
            col("downs", "down_events"),
        ],
    );
    if let Some(r) = v["refused"].as_object().filter(|r| !r.is_empty()) {
        let _ = writeln!(s, "refused: {}", r.iter().map(|(k, n)| format!("{k} {n}")).collect::<Vec<_>>().join(", "));
    }
    s
}

/// `show peers`, laid out like `wg show`.
fn peers(v: &Value) -> String {
    if v["enabled"] != Value::Bool(true) {
        return "tunnels: off (no [tunnel] private_key in the config)\n".into();
    }
    let mut s = String::new();
    let _ = writeln!(
        s,
        "interface: patronus\n  public key: {}\n  listening port: {}\n  mtu: {}",
        str_of(&v["public_key"]),
        v["listen_port"],
        v["mtu"]
    );
    for p in v["peers"].as_array().into_iter().flatten() {
        let _ = writeln!(s, "\npeer: {} ({})", str_of(&p["public_key"]), str_of(&p["peer"]));
        if p["preshared_key"] == Value::Bool(true) {
            let _ = writeln!(s, "  preshared key: (hidden)");
        }
        let _ = writeln!(s, "  endpoint: {}", p["endpoint"].as_str().unwrap_or("(none)"));
        let ips: Vec<String> = list(&p["allowed_ips"]);
        let _ = writeln!(s, "  allowed ips: {}", if ips.is_empty() { "(none)".into() } else { ips.join(", ") });
        match p["latest_handshake_seconds_ago"].as_f64() {
            Some(a) => {
                let _ = writeln!(s, "  latest handshake: {} seconds ago", a as u64);
            }
            None => {
                let _ = writeln!(s, "  latest handshake: (none)");
            }
        }
        let _ = writeln!(s, "  transfer: {} B received, {} B sent", p["rx_bytes"], p["tx_bytes"]);
        if let Some(k) = p["persistent_keepalive_seconds"].as_u64() {
            let _ = writeln!(s, "  persistent keepalive: every {k} seconds");
        }
        let _ = writeln!(s, "  status: {}", if p["up"] == Value::Bool(true) { "up" } else { "down" });
    }
    s
}

fn str_of(v: &Value) -> &str {
    v.as_str().unwrap_or("-")
}

fn list(v: &Value) -> Vec<String> {
    v.as_array().into_iter().flatten().filter_map(|x| x.as_str().map(str::to_owned)).collect()
}

fn reload(reply: &Value) -> String {
    let mut s = format!("reload applied: every worker runs snapshot {}\n", reply["snapshot"]);
    let applied = list(&reply["applied"]);
    if applied.is_empty() {
        s.push_str("changed: nothing\n");
    } else {
        let _ = writeln!(s, "changed: {}", applied.join(", "));
    }
    let restart = list(&reply["restart_required"]);
    if !restart.is_empty() {
        let _ = writeln!(s, "requires restart (not applied): {}", restart.join(", "));
    }
    s
}

fn show(what: &str, data: &Value) -> String {
    let rows = data.as_array().cloned().unwrap_or_default();
    match what {
        "ports" => table(
            &rows,
            &[
                col("port", "port"),
                col("device", "device"),
                col("driver", "driver"),
                col("mac", "mac"),
                col("role", "role"),
                col("rx_packets", "rx_packets"),
                col("tx_packets", "tx_packets"),
                col("rx_bytes", "rx_bytes"),
                col("tx_bytes", "tx_bytes"),
                col("drops", "drops"),
                col("nic_missed", "nic_missed"),
                col("punted", "punted"),
            ],
        ),
        "counters" => table(
            &rows,
            &[
                col("core", "core"),
                col("port", "port"),
                col("rx_packets", "rx_packets"),
                col("tx_packets", "tx_packets"),
                col("rx_bytes", "rx_bytes"),
                col("tx_bytes", "tx_bytes"),
                col("drops", "drops"),
                col("punted", "punted"),
                col("icmp_errors", "icmp_errors"),
            ],
        ),
        "drops" => table(&rows, &[col("port", "port"), col("core", "core"), col("reason", "reason"), col("packets", "packets")]),
        "workers" => table(
            &rows,
            &[
                col("core", "core"),
                col("tid", "tid"),
                col("rx_packets", "rx_packets"),
                col("polls", "polls"),
                col("sleeps", "sleeps"),
                Col { head: "busy_s", key: "busy_seconds", fmt: Fmt::Seconds },
                Col { head: "cpu_s", key: "cpu_seconds", fmt: Fmt::Seconds },
                col("cycles/pkt", "cycles_per_packet"),
                col("stalls", "stalls"),
                col("flows", "flows_active"),
                col("handoff_out", "handoff_out"),
                col("handoff_in", "handoff_in"),
                col("ring_full", "handoff_full"),
                Col { head: "queues", key: "queues", fmt: Fmt::List },
            ],
        ),
        "latency" => latency(&rows),
        "neighbors" => table(&rows, &[col("iface", "iface"), col("ip", "ip"), col("mac", "mac"), col("state", "state")]),
        "status" => status(data),
        "flows" => flows(data),
        "apps" => table(
            &rows,
            &[
                col("application", "application"),
                col("category", "category"),
                col("flows", "flows"),
                col("packets", "packets"),
                col("bytes", "bytes"),
                col("rule", "rule"),
                col("path", "path"),
            ],
        ),
        "qos" => table(
            &rows,
            &[
                col("port", "port"),
                col("class", "class"),
                col("depth", "depth"),
                col("sent_packets", "sent_packets"),
                col("sent_bytes", "sent_bytes"),
                col("tail_drops", "tail_drops"),
                col("codel_drops", "codel_drops"),
            ],
        ),
        "events" => table(&rows, &[col("seq", "seq"), col("kind", "kind"), col("message", "message")]),
        "config" => data["text"].as_str().map_or_else(|| format!("{data}\n"), str::to_owned),
        _ => format!("{data}\n"),
    }
}

fn latency(rows: &[Value]) -> String {
    // Flatten the quantile list into columns; seconds shown as µs.
    let heads = ["p50", "p90", "p95", "p99", "p99.9", "max"];
    debug_assert_eq!(heads.len(), QUANTILES.len());
    let flat: Vec<Value> = rows
        .iter()
        .map(|r| {
            let mut o = serde_json::Map::new();
            o.insert("core".into(), r["core"].clone());
            let secs = r["unit"] == "seconds";
            o.insert("what".into(), r["what"].clone());
            o.insert("unit".into(), Value::from(if secs { "µs" } else { "cycles/pkt" }));
            o.insert("count".into(), r["count"].clone());
            for (i, h) in heads.iter().enumerate() {
                let v = r["quantiles"][i].as_f64().unwrap_or(0.0);
                let shown = if secs { format!("{:.2}", v * 1e6) } else { format!("{v:.0}") };
                o.insert((*h).into(), Value::from(shown));
            }
            Value::Object(o)
        })
        .collect();
    let mut cols = vec![col("core", "core"), col("what", "what"), col("unit", "unit"), col("samples", "count")];
    cols.extend([col("p50", "p50"), col("p90", "p90"), col("p95", "p95"), col("p99", "p99"), col("p99.9", "p99.9"), col("max", "max")]);
    let mut s = table(&flat, &cols);
    s.push_str("(quantiles over the last 5-10 s; residence = RX burst to TX, iteration = one poll loop)\n");
    s
}

fn flows(d: &Value) -> String {
    if d["enabled"] == Value::Bool(false) {
        return "flow tracking and DPI are off ([dpi] enabled = false)\n".into();
    }
    let mut s = String::new();
    let n = |k: &str| d[k].as_u64().unwrap_or(0);
    let _ = writeln!(s, "flows:      {} active ({} per worker at most)", n("active"), n("capacity_per_worker"));
    let _ = writeln!(
        s,
        "since start: {} created, {} expired, {} closed (FIN/RST), {} evicted (table full)",
        n("created"),
        n("expired"),
        n("closed"),
        n("evicted")
    );
    let _ = writeln!(
        s,
        "DPI:        {} packets inspected, {} frames not IP, {} hello reassembly overflows",
        n("inspected_packets"),
        n("unparsed_packets"),
        n("reassembly_overflows")
    );
    s
}

fn status(d: &Value) -> String {
    let r = &d["reloads"];
    let mut s = String::new();
    let _ = writeln!(s, "patronus {} on {}", cell(&d["version"], Fmt::Raw), cell(&d["dpdk"], Fmt::Raw));
    let _ = writeln!(s, "config:   {}", cell(&d["config"], Fmt::Raw));
    let _ = writeln!(s, "uptime:   {:.0} s", d["uptime_seconds"].as_f64().unwrap_or(0.0));
    let _ = writeln!(s, "workers:  lcores {}", d["workers"]);
    let _ = writeln!(s, "reloads:  {} applied, {} rejected", r["ok"], r["failed"]);
    if let Some(e) = r["last_error"].as_str() {
        let _ = writeln!(s, "last reload rejected: {}", e.lines().next().unwrap_or(""));
    }
    let pending = list(&r["restart_pending"]);
    if !pending.is_empty() {
        let _ = writeln!(s, "changed in the file, waiting for a restart: {}", pending.join(", "));
    }
    if let Some(m) = d["resident_memory_bytes"].as_u64() {
        let _ = writeln!(s, "memory:   {:.1} MiB resident", m as f64 / (1 << 20) as f64);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn tables_align_text_left_and_numbers_right() {
        let reply = json!({"ok": true, "drops": [
            {"port": "lan0", "core": "1", "reason": "no_route", "packets": 5},
            {"port": "wan0", "core": "control", "reason": "neighbor_unresolved", "packets": 12345},
        ]});
        let s = render(&Request::Show { what: "drops".into() }, &reply);
        assert_eq!(
            s,
            "port  core     reason               packets\n\
             lan0  1        no_route                   5\n\
             wan0  control  neighbor_unresolved    12345\n"
        );
    }

    #[test]
    fn reload_reply_lists_changes_and_restarts() {
        let reply = json!({"ok": true, "snapshot": 7, "applied": ["port[0].forward"], "restart_required": ["eal.memory_mb"]});
        assert_eq!(
            render(&Request::Reload, &reply),
            "reload applied: every worker runs snapshot 7\nchanged: port[0].forward\nrequires restart (not applied): eal.memory_mb\n"
        );
    }

    #[test]
    fn latency_is_shown_in_microseconds() {
        let reply = json!({"ok": true, "latency": [
            {"core": 1, "what": "residence", "unit": "seconds", "count": 10, "quantiles": [1e-6, 2e-6, 3e-6, 4e-6, 5e-6, 6.5e-6], "total": 10, "stalls": 0},
        ]});
        let s = render(&Request::Show { what: "latency".into() }, &reply);
        assert!(s.lines().nth(1).unwrap().ends_with("1.00  2.00  3.00  4.00   5.00  6.50"), "{s}");
    }
}
