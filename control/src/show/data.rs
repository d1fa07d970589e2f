//! The data behind `patronus show WHAT`, as JSON: what the control socket
//! answers (the tables are rendered from it by the caller, see the parent
//! module).

use std::sync::Arc;
use std::time::Instant;

use dataplane::counters::DropReason;
use dataplane::dpdk;
use dataplane::dpi::Dpi;
use dataplane::engine::{worker_rx_queues, Engine, PortSpread, Snapshot};
use dataplane::flow::stage::FlowCounters;
use serde_json::{json, Value};

use crate::ctl;
use crate::run::{mac, Control};
use crate::telemetry;

impl Control {
    /// The data behind `patronus show WHAT`.
    pub(crate) fn show(&mut self, what: &str) -> Value {
        let snap = self.engine.snapshot();
        let names = &self.names;
        let data = match what {
            "ports" => json!(self
                .engine
                .ports()
                .iter()
                .zip(&self.cfg.port)
                .enumerate()
                .map(|(i, (p, c))| {
                    let t = &snap.ports[i];
                    let e = &snap.eth[i];
                    json!({
                        "port": c.name, "device": c.device, "driver": p.info.driver, "mac": mac(&p.mac), "role": c.role.name(),
                        "rx_queues": p.rx_queues, "tx_queues": p.tx_queues, "forward": c.forward,
                        "spread": match &p.spread {
                            PortSpread::OneWorker => "one worker".to_owned(),
                            PortSpread::Device => "device (symmetric RSS)".to_owned(),
                            PortSpread::Software(why) => format!("software: {why}"),
                        },
                        "rx_packets": t.rx_packets, "tx_packets": t.tx_packets, "rx_bytes": t.rx_bytes, "tx_bytes": t.tx_bytes,
                        "drops": t.total_drops(), "punted": t.punted, "icmp_errors": t.icmp_errors,
                        "nic_rx_packets": e.ipackets, "nic_tx_packets": e.opackets, "nic_rx_bytes": e.ibytes, "nic_tx_bytes": e.obytes,
                        "nic_missed": e.imissed, "nic_rx_errors": e.ierrors, "nic_tx_errors": e.oerrors, "nic_rx_nombuf": e.rx_nombuf,
                    })
                })
                .collect::<Vec<_>>()),
            "counters" => json!(per_core(&snap, names)
                .map(|(core, port, t)| json!({
                    "core": core, "port": port, "rx_packets": t.rx_packets, "tx_packets": t.tx_packets,
                    "rx_bytes": t.rx_bytes, "tx_bytes": t.tx_bytes, "drops": t.total_drops(), "punted": t.punted,
                    "icmp_errors": t.icmp_errors,
                }))
                .collect::<Vec<_>>()),
            "drops" => json!(per_core(&snap, names)
                .flat_map(|(core, port, t)| {
                    DropReason::ALL
                        .iter()
                        .filter(|r| t.drops[**r as usize] > 0)
                        .map(move |r| json!({ "port": port, "core": core, "reason": r.name(), "packets": t.drops[*r as usize] }))
                        .collect::<Vec<_>>()
                })
                .collect::<Vec<_>>()),
            "workers" => {
                let hz = self.engine.tsc_hz().max(1) as f64;
                let n = snap.workers.len();
                json!(snap
                    .workers
                    .iter()
                    .enumerate()
                    .map(|(i, w)| {
                        let queues: Vec<String> = self
                            .engine
                            .ports()
                            .iter()
                            .zip(&self.cfg.port)
                            .flat_map(|(p, c)| worker_rx_queues(i, n, p.rx_queues).map(move |q| format!("{}:{q}", c.name)))
                            .collect();
                        let flows = self.flows.get(i);
                        json!({
                            "core": w.lcore, "tid": w.tid, "queues": queues, "rx_packets": w.rx_packets, "polls": w.polls, "sleeps": w.sleeps,
                            "busy_seconds": w.busy_cycles as f64 / hz, "cpu_seconds": w.cpu_seconds,
                            "cycles_per_packet": (w.rx_packets > 0).then(|| w.busy_cycles as f64 / w.rx_packets as f64),
                            "stalls": self.book.stalls(w.lcore),
                            "flows_active": flows.map(|f| f.active.get()), "flows_created": flows.map(|f| f.created.get()),
                            "handoff_out": w.handoff_out, "handoff_in": w.handoff_in,
                            "handoff_full": w.ports.iter().map(|p| p.drops[DropReason::HandoffFull as usize]).sum::<u64>(),
                        })
                    })
                    .collect::<Vec<_>>())
            }
            "latency" => {
                self.book.collect(Instant::now());
                json!(self.book.rows())
            }
            "neighbors" => json!(self
                .slowpath
                .neighbors()
                .into_iter()
                .map(|(k, m, state)| json!({
                    "iface": self.slowpath.routes().ifaces[k.iface as usize].name,
                    "ip": k.ip().to_string(),
                    "mac": m.map(|m| m.to_string()),
                    "state": state,
                }))
                .collect::<Vec<_>>()),
            "status" => json!({
                "site": self.cfg.site.name,
                "config": self.path.display().to_string(),
                "snapshots_retired_in_use": self.slowpath.retired(),
                "uptime_seconds": self.started.elapsed().as_secs_f64(),
                "version": env!("CARGO_PKG_VERSION"),
                "dpdk": dpdk::version(),
                "workers": self.cfg.eal.worker_lcores,
                "reloads": self.reloads,
                "resident_memory_bytes": telemetry::resident_bytes(),
            }),
            "apps" => {
                let snap = self.dpi.current();
                json!(app_rows(&self.flows, &snap.dpi, &snap.policy, &self.paths))
            }
            "flows" => {
                let sum = |f: fn(&FlowCounters) -> u64| self.flows.iter().map(|c| f(c)).sum::<u64>();
                json!({
                    "enabled": self.cfg.dpi.enabled,
                    "active": sum(|c| c.active.get()),
                    "created": sum(|c| c.created.get()),
                    "expired": sum(|c| c.expired.get()),
                    "closed": sum(|c| c.closed.get()),
                    "evicted": sum(|c| c.evicted.get()),
                    "capacity_per_worker": self.cfg.dpi.flows.next_power_of_two(),
                    "inspected_packets": sum(|c| c.inspected.get()),
                    "unparsed_packets": sum(|c| c.unparsed.get()),
                    "reassembly_overflows": sum(|c| c.reasm_overflows.get()),
                })
            }
            "peers" => self.tunnel.show(),
            "qos" => json!(qos_rows(&self.engine, names)),
            "paths" => self.paths.show(),
            "bfd" => self.paths.show_bfd(),
            "figures" => {
                let mut all = serde_json::Map::new();
                for topic in ["status", "ports", "paths", "peers", "drops", "apps", "qos", "workers", "flows"] {
                    let mut v = self.show(topic);
                    all.insert(topic.into(), v[topic].take());
                }
                all.insert("unix".into(), json!(telemetry::unix_now()));
                Value::Object(all)
            }
            "events" => json!(crate::events::recent()),
            "history" => self.history.show(),
            "config" => json!({
                "file": self.path.display().to_string(),
                "text": redact_text(&self.cfg_text),
                "running": redact(serde_json::to_value(&self.cfg).unwrap_or(Value::Null)),
                "drained_paths": self.paths.drained().collect::<Vec<_>>(),
            }),
            _ => {
                return ctl::error(format!(
                "unknown `show {what}`; expected one of: status, ports, counters, drops, workers, latency, neighbors, flows, apps, peers, paths, bfd, qos, events, history, config, figures"
            ))
            }
        };
        json!({ "ok": true, what: data })
    }
}

/// Each shaped port's classes, summed over the workers.
pub(crate) fn qos_rows(engine: &Engine, names: &[String]) -> Vec<Value> {
    use dataplane::vocab::{Class, CLASSES};
    let mut rows = Vec::new();
    let ports: std::collections::BTreeSet<u16> = engine.qos_counters().iter().map(|(_, p, _)| *p).collect();
    for port in ports {
        for c in 0..CLASSES {
            let sum = |f: fn(&dataplane::qos::ClassCounters) -> u64| {
                engine.qos_counters().iter().filter(|(_, p, _)| *p == port).map(|(_, _, q)| f(&q.classes[c])).sum::<u64>()
            };
            rows.push(json!({
                "port": names.get(port as usize).cloned().unwrap_or_default(),
                "class": Class::ALL[c].name(),
                "depth": sum(|k| k.depth.get()),
                "enqueued": sum(|k| k.enqueued.get()),
                "sent_packets": sum(|k| k.sent_packets.get()),
                "sent_bytes": sum(|k| k.sent_bytes.get()),
                "tail_drops": sum(|k| k.tail_drops.get()),
                "codel_drops": sum(|k| k.codel_drops.get()),
            }));
        }
    }
    rows
}

/// Flows decided per application, summed over the workers.
/// Each application's traffic, the policy rule its flows take (by
/// application alone: see `Policy::rule_for_app`) and that rule's path now.
fn app_rows(flows: &[Arc<FlowCounters>], dpi: &Dpi, policy: &dataplane::path::Policy, paths: &crate::paths::PathControl) -> Vec<Value> {
    let mut rows: Vec<Value> = telemetry::app_totals(flows, dpi)
        .iter()
        .map(|t| {
            let rule = policy.rule_for_app(t.id, t.category_id) as usize;
            let (name, path) = paths.rule_now(rule);
            json!({
                "application": t.name, "category": t.category, "flows": t.flows, "packets": t.packets, "bytes": t.bytes,
                "rule": name, "path": path,
            })
        })
        .collect();
    rows.sort_by(|a, b| b["flows"].as_u64().cmp(&a["flows"].as_u64()));
    rows
}

/// (core label, port name, counters) for every worker and the control thread.
fn per_core<'a>(
    snap: &'a Snapshot,
    names: &'a [String],
) -> impl Iterator<Item = (String, &'a str, &'a dataplane::counters::PortTotals)> + 'a {
    let cores = snap.workers.iter().map(|w| (w.lcore.to_string(), &w.ports)).chain(std::iter::once(("control".to_owned(), &snap.control)));
    cores.flat_map(move |(core, ports)| ports.iter().zip(names).map(move |(t, n)| (core.clone(), n.as_str(), t)))
}

/// Field names whose values are secrets wherever they appear (a key or
/// token written inline). Today's config names key files, never keys; this
/// keeps a future inline field from leaking through `show config`.
const SECRET_FIELDS: &[&str] = &["private_key", "preshared_key_inline", "psk", "token", "password", "secret"];

fn is_secret(field: &str) -> bool {
    SECRET_FIELDS.contains(&field)
}

/// A config as JSON, with secret fields' values replaced.
pub(crate) fn redact(v: Value) -> Value {
    match v {
        Value::Object(m) => {
            Value::Object(m.into_iter().map(|(k, v)| if is_secret(&k) { (k, json!("<redacted>")) } else { (k, redact(v)) }).collect())
        }
        Value::Array(a) => Value::Array(a.into_iter().map(redact).collect()),
        v => v,
    }
}

/// A config's text, with secret fields' values replaced line by line.
pub(crate) fn redact_text(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for line in text.lines() {
        match line.split_once('=') {
            Some((k, _)) if is_secret(k.trim().trim_matches('"')) => out.push_str(&format!("{}= \"<redacted>\"", k)),
            _ => out.push_str(line),
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod redaction {
    use super::*;

    #[test]
    fn secret_fields_are_redacted_in_text_and_values() {
        let t = redact_text("[site]\nname = \"a\"\nprivate_key = \"SECRET\"\n  token=\"T\"\n");
        assert!(!t.contains("SECRET") && !t.contains("\"T\""), "{t}");
        assert!(t.contains("name = \"a\""));
        let v = redact(json!({ "site": { "private_key": "SECRET", "private_key_file": "k" }, "x": [{ "psk": "P" }] }));
        assert_eq!(v["site"]["private_key"], "<redacted>");
        assert_eq!(v["site"]["private_key_file"], "k");
        assert_eq!(v["x"][0]["psk"], "<redacted>");
    }
}
