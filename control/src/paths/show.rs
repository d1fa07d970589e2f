//! What `patronus show paths|bfd` and the metrics read of the path controller.

use super::*;
use dataplane::path::sla::Figures;
use dataplane::wire::bfd::{self};
use serde_json::{json, Value};
use std::sync::atomic::Ordering::Relaxed;
use std::time::Instant;

impl PathControl {
    /// Rule `r`'s name and its path now, per tunnel peer with paths
    /// ("peer:path" when there are several); "-" before the first choice
    /// or with no paths.
    pub fn rule_now(&self, r: usize) -> (&str, String) {
        let name = self.rule_names.get(r).map_or("default", String::as_str);
        let peers: Vec<(usize, &Vec<usize>)> = self.by_peer.iter().enumerate().filter(|(_, idx)| !idx.is_empty()).collect();
        let now: Vec<String> = peers
            .iter()
            .map(|&(peer, idx)| {
                let path = match self.choices[peer].get(r).and_then(|c| c.cur) {
                    None => "-",
                    Some(None) => "drop",
                    Some(Some(s)) => self.paths[idx[s]].name.as_str(),
                };
                if peers.len() > 1 {
                    format!("{}:{path}", self.paths[idx[0]].peer_name)
                } else {
                    path.to_owned()
                }
            })
            .collect();
        (name, if now.is_empty() { "-".to_owned() } else { now.join(",") })
    }

    /// How a path's probes travel: plain to a Patronus peer, else wrapped
    /// in ICMP echo requests to its target.
    fn probe_kind(&self, p: &Path) -> String {
        match p.peer {
            Some(peer) if self.patronus[peer] => "patronus".into(),
            _ if p.via_icmp => format!("icmp echo to {}", p.wrap.1),
            _ => format!("icmp echo to {} (no answer yet)", p.wrap.1),
        }
    }

    /// Each path's figures for the history ring: RTT p50 and p99 (ms),
    /// loss (%), jitter (ms); NaN before the first reply.
    pub fn history_samples(&self) -> Vec<(&str, [f32; 4])> {
        let now = self.now(Instant::now());
        self.paths
            .iter()
            .map(|p| {
                let f = p.monitor.figures(now);
                let ms = |v: Option<f64>| v.map_or(f32::NAN, |s| (s * 1e3) as f32);
                let measured = p.replies > 0;
                let or_nan = |v: f64| if measured { v as f32 } else { f32::NAN };
                (p.name.as_str(), [ms(f.rtt_p50), ms(f.rtt_p99), or_nan(f.loss_pct), or_nan(f.jitter * 1e3)])
            })
            .collect()
    }

    /// `patronus show paths`.
    pub fn show(&self) -> Value {
        let now = self.now(Instant::now());
        let paths: Vec<Value> = self
            .paths
            .iter()
            .map(|p| {
                let f = p.monitor.figures(now);
                let on: Vec<usize> = self.rules_on(p).collect();
                let rules: Vec<&str> = on.iter().map(|&r| self.rule_names[r].as_str()).collect();
                let applications: Vec<&str> = on.iter().map(|&r| self.rule_matches[r].as_str()).collect();
                let ms = |v: Option<f64>| v.map(|s| (s * 1e6).round() / 1e3);
                json!({
                    "path": p.name, "peer": p.peer_name, "port": p.port, "endpoint": p.endpoint.to_string(),
                    "cost": p.cost, "bandwidth_mbps": p.bandwidth_mbps, "labels": p.labels,
                    "drained": self.drained.contains(&p.name),
                    "state": if f.suppressed && f.up {
                        "suppressed"
                    } else if f.up {
                        "up"
                    } else if p.replies == 0 {
                        "unmeasured"
                    } else {
                        "down"
                    },
                    "probes": self.probe_kind(p),
                    "health": (f.health * 10.0).round() / 10.0,
                    "rtt_ms": {"p50": ms(f.rtt_p50), "p95": ms(f.rtt_p95), "p99": ms(f.rtt_p99)},
                    "jitter_ms": (f.jitter * 1e6).round() / 1e3,
                    "loss_pct": (f.loss_pct * 100.0).round() / 100.0,
                    "availability_pct": (f.availability_pct * 100.0).round() / 100.0,
                    "damping_penalty": f.penalty.round(),
                    "probe_interval_ms": p.monitor.conf.interval.as_millis() as u64,
                    "probes_sent": p.probes_sent, "probes_unsent": p.probes_unsent, "replies": p.replies,
                    "downs": p.monitor.downs,
                    "recoveries": p.outage_hist.count,
                    "outage_seconds_total": (p.outage_hist.sum * 1e3).round() / 1e3,
                    "bfd": p.bfd.map(|b| self.bfd[b].name.clone()),
                    "last_change": p.last_transition.map(|(t, what)| json!({
                        "seconds_ago": now.saturating_sub(t).as_secs_f64(),
                        "unix": (self.started_wall + t).duration_since(std::time::UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64()),
                        "what": what,
                    })),
                    "tx_packets": p.live.tx_packets.load(Relaxed), "tx_bytes": p.live.tx_bytes.load(Relaxed),
                    "rx_packets": p.live.rx_packets.load(Relaxed), "rx_bytes": p.live.rx_bytes.load(Relaxed),
                    "rules": rules,
                    "applications": applications,
                })
            })
            .collect();
        let mut choices = Vec::new();
        for (peer, idx) in self.by_peer.iter().enumerate() {
            if idx.is_empty() {
                continue;
            }
            for (r, c) in self.choices[peer].iter().enumerate() {
                let path = match c.cur {
                    None => Value::Null,
                    Some(None) => json!("drop"),
                    Some(Some(s)) => json!(self.paths[idx[s]].name),
                };
                choices.push(json!({
                    "peer": self.paths[idx[0]].peer_name, "rule": self.rule_names[r], "path": path,
                    "for_seconds": now.saturating_sub(c.since).as_secs_f64(),
                }));
            }
        }
        let failovers: Vec<Value> = self
            .failovers
            .iter()
            .map(|((rule, from, to, reason), n)| json!({"rule": rule, "from": from, "to": to, "reason": reason, "count": n}))
            .collect();
        json!({
            "paths": paths,
            "choices": choices,
            "failovers": failovers,
            "failovers_total": self.failovers.values().sum::<u64>(),
            "events": self.events.iter().map(|e| json!({
                "seconds_ago": now.saturating_sub(e.at).as_secs_f64(),
                "rule": e.rule, "from": e.from, "to": e.to, "reason": e.reason,
                "health_before": {"from": e.before.0, "to": e.before.1},
                "health_after": e.after.map(|a| json!({"from": a.0, "to": a.1})),
            })).collect::<Vec<_>>(),
            "bfd": self.show_bfd(),
        })
    }

    /// `patronus show bfd`.
    pub fn show_bfd(&self) -> Value {
        let now = self.now(Instant::now());
        let sessions: Vec<Value> = self
            .bfd
            .iter()
            .map(|b| {
                let s = &b.session;
                json!({
                    "name": b.name, "peer": b.peer.to_string(), "multihop": b.multihop,
                    "state": s.state.name(), "remote_state": s.remote_state.name(),
                    "diagnostic": bfd::diag::name(s.diag), "remote_diagnostic": bfd::diag::name(s.remote_diag),
                    "local_discriminator": s.local_disc, "remote_discriminator": s.remote_disc,
                    "tx_interval_ms": s.tx_interval().as_secs_f64() * 1e3,
                    "detection_time_ms": s.detection_time().as_secs_f64() * 1e3,
                    "remote_detect_mult": s.remote_mult,
                    "since_seconds": now.saturating_sub(s.last_change).as_secs_f64(),
                    "changed_at_unix": (self.started_wall + s.last_change)
                        .duration_since(std::time::UNIX_EPOCH)
                        .map_or(0.0, |d| d.as_secs_f64()),
                    "polling": s.polling,
                    "rx": s.stats.rx, "tx": s.stats.tx, "up_events": s.stats.up_events, "down_events": s.stats.down_events,
                    "polls_completed": s.stats.polls_completed, "send_failures": b.send_failures,
                })
            })
            .collect();
        json!({"sessions": sessions, "refused": self.refused.by_reason})
    }

    /// Exports the path, failover and BFD series.
    pub fn export(&self) {
        let now = self.now(Instant::now());
        for p in &self.paths {
            let f: Figures = p.monitor.figures(now);
            let l = p.labels();
            metrics::gauge!("patronus_path_health_score", &l).set(f.health);
            metrics::gauge!("patronus_path_packet_loss_pct", &l).set(f.loss_pct);
            metrics::gauge!("patronus_path_jitter_seconds", &l).set(f.jitter);
            metrics::gauge!("patronus_path_availability_pct", &l).set(f.availability_pct);
            metrics::gauge!("patronus_path_up", &l).set(if f.up && !f.suppressed { 1.0 } else { 0.0 });
            metrics::gauge!("patronus_path_measured", &l).set(if p.replies > 0 { 1.0 } else { 0.0 });
            // NaN while no probe in the window was answered.
            for (q, v) in [("0.5", f.rtt_p50), ("0.95", f.rtt_p95), ("0.99", f.rtt_p99)] {
                let mut l = l.to_vec();
                l.push(("quantile", q.to_owned()));
                metrics::gauge!("patronus_path_rtt_seconds", &l).set(v.unwrap_or(f64::NAN));
            }
            for (dir, v) in [("tx", &p.live.tx_bytes), ("rx", &p.live.rx_bytes)] {
                let mut l = l.to_vec();
                l.push(("direction", dir.to_owned()));
                metrics::counter!("patronus_path_bytes_total", &l).absolute(v.load(Relaxed));
            }
        }
        // Every failover a rule could make is a series from the start, at 0,
        // so that `increase()` counts a first failover too.
        let reasons = [Reason::PathDown.name(), Reason::Sla.name(), Reason::Failback.name()];
        let mut all = self.failovers.clone();
        for idx in self.by_peer.iter().filter(|idx| !idx.is_empty()) {
            let ends: Vec<&str> = idx.iter().map(|&i| self.paths[i].name.as_str()).chain(["drop"]).collect();
            for rule in &self.rule_names {
                for (from, to) in ends.iter().flat_map(|f| ends.iter().map(move |t| (*f, *t))).filter(|(f, t)| f != t) {
                    for reason in reasons {
                        all.entry((rule.clone(), from.to_owned(), to.to_owned(), reason)).or_default();
                    }
                }
            }
        }
        for ((rule, from, to, reason), n) in &all {
            let app = self.rule_names.iter().position(|r| r == rule).and_then(|r| self.rule_apps.get(r)).cloned().unwrap_or_default();
            metrics::counter!("patronus_failover_events_total", "policy_id" => rule.clone(), "app" => app, "from_path" => from.clone(),
                "to_path" => to.clone(), "reason" => *reason)
            .absolute(*n);
        }
        // The latest failover of each rule: the health of both paths then and AFTER later.
        let mut latest: std::collections::BTreeMap<&str, &FailoverEvent> = Default::default();
        for e in &self.events {
            latest.insert(e.rule.as_str(), e);
        }
        for (rule, e) in latest {
            let sides = [("from", &e.from, e.before.0, e.after.map(|a| a.0)), ("to", &e.to, e.before.1, e.after.map(|a| a.1))];
            for (side, path, before, after) in sides {
                for (when, v) in [("before", before), ("after", after.flatten())] {
                    metrics::gauge!("patronus_failover_path_health", "policy_id" => rule.to_owned(), "path_id" => path.clone(),
                        "side" => side, "when" => when)
                    .set(v.unwrap_or(f64::NAN));
                }
            }
        }
        // OpenMetrics state sets: one series per state, 1 for the current one.
        for b in &self.bfd {
            let path_id: Vec<&str> =
                self.paths.iter().filter(|p| p.bfd.is_some_and(|i| self.bfd[i].name == b.name)).map(|p| p.name.as_str()).collect();
            let now = b.session.state;
            for (state, s) in [("up", State::Up), ("down", State::Down), ("init", State::Init), ("admin_down", State::AdminDown)] {
                metrics::gauge!("patronus_bfd_session_status", "peer" => b.name.clone(), "address" => b.peer.to_string(),
                    "path_id" => path_id.join(","), "state" => state)
                .set(if now == s { 1.0 } else { 0.0 });
            }
        }
        crate::histogram::publish("paths", self.render_histograms());
    }

    /// `patronus_path_rtt_histogram_seconds`, `patronus_path_outage_seconds`
    /// and `patronus_path_recoveries_total`, per path.
    fn render_histograms(&self) -> String {
        use crate::histogram::header;
        let mut out = String::new();
        if self.paths.is_empty() {
            return out;
        }
        header("patronus_path_rtt_histogram_seconds", "Round-trip times of answered probes, per path, since start.", &mut out);
        for p in &self.paths {
            p.rtt_hist.render("patronus_path_rtt_histogram_seconds", &p.labels(), &mut out);
        }
        header("patronus_path_outage_seconds", "Path outages, from down to up again, per path.", &mut out);
        for p in &self.paths {
            p.outage_hist.render("patronus_path_outage_seconds", &p.labels(), &mut out);
        }
        out.push_str("# HELP patronus_path_recoveries_total Paths that came back up after an outage.\n# TYPE patronus_path_recoveries_total counter\n");
        for p in &self.paths {
            crate::histogram::counter_line("patronus_path_recoveries_total", &p.labels(), p.outage_hist.count, &mut out);
        }
        out
    }
}
