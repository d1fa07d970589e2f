//! `patronus flows` and the API's `flows`: the live flows, a page at a
//! time, read from each worker's flow-listing mailbox
//! ([`dataplane::flow::listing`]); the workers' tables are never touched
//! from here.

use std::time::{Duration, Instant};

use dataplane::dpi::Status;
use dataplane::flow::listing::FlowRow;
use dataplane::vocab::{addr_of, Class, Dir};
use serde_json::{json, Value};

use crate::ctl;
use crate::run::Control;

/// Most rows in one page.
pub const MAX_PAGE: usize = 1000;
/// How long one worker may take to answer an ask (it answers on its next
/// poll-loop iteration; an idle worker sleeps at most `max_sleep_us`).
const ANSWER_WITHIN: Duration = Duration::from_millis(100);
/// How long one page may keep the control thread.
const PAGE_WITHIN: Duration = Duration::from_millis(250);

/// Where a page starts: a worker and a slot in its table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cursor {
    pub worker: usize,
    pub slot: usize,
}

impl Cursor {
    pub fn parse(s: &str) -> Result<Cursor, String> {
        let bad = || format!("bad cursor {s:?}: expected WORKER:SLOT, as a page's end_cursor gives it");
        let (w, s) = s.split_once(':').ok_or_else(bad)?;
        Ok(Cursor { worker: w.parse().map_err(|_| bad())?, slot: s.parse().map_err(|_| bad())? })
    }
}

impl std::fmt::Display for Cursor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.worker, self.slot)
    }
}

fn protocol(p: u8) -> String {
    match p {
        6 => "tcp".into(),
        17 => "udp".into(),
        1 => "icmp".into(),
        58 => "icmpv6".into(),
        132 => "sctp".into(),
        n => n.to_string(),
    }
}

impl Control {
    /// Up to `first` live flows from `after` (the start when `None`), in
    /// worker and table order, and the cursor of the rest.
    pub(crate) fn flow_page(&mut self, after: Option<&str>, first: usize) -> Value {
        if !self.cfg.dpi.enabled {
            return json!({ "ok": true, "flows": { "enabled": false, "rows": [], "end_cursor": null, "has_next_page": false } });
        }
        let start = match after.map(Cursor::parse).transpose() {
            Ok(c) => c.unwrap_or(Cursor { worker: 0, slot: 0 }),
            Err(e) => return ctl::error(e),
        };
        let first = first.clamp(1, MAX_PAGE);
        let until = Instant::now() + PAGE_WITHIN;
        let mut rows = Vec::new();
        let mut next = Some(start);
        while let Some(c) = next {
            if rows.len() >= first || Instant::now() >= until {
                break;
            }
            let Some(listing) = self.flows.get(c.worker).map(|f| &f.listing) else {
                next = None;
                break;
            };
            let Some(answer) = listing.ask(c.slot, Instant::now() + ANSWER_WITHIN) else {
                return ctl::error(format!("worker {} did not answer within {} ms", c.worker, ANSWER_WITHIN.as_millis()));
            };
            let take = (first - rows.len()).min(answer.rows.len());
            rows.extend(answer.rows[..take].iter().map(|r| self.flow_json(c.worker, r)));
            // A page that ends inside an answer resumes at the first row left.
            next = match answer.rows.get(take).map(|r| r.slot).or(answer.next) {
                Some(slot) => Some(Cursor { worker: c.worker, slot }),
                None => Some(Cursor { worker: c.worker + 1, slot: 0 }).filter(|n| n.worker < self.flows.len()),
            };
        }
        json!({ "ok": true, "flows": {
            "enabled": true,
            "rows": rows,
            "end_cursor": next.map(|c| c.to_string()),
            "has_next_page": next.is_some(),
        }})
    }

    fn flow_json(&self, worker: usize, r: &FlowRow) -> Value {
        let dpi = &self.dpi.current().dpi;
        let k = &r.key;
        let lo = (addr_of(&k.lo_addr), k.lo_port);
        let hi = (addr_of(&k.hi_addr), k.hi_port);
        let (client, server) = if r.orig == Dir::Lo { (lo, hi) } else { (hi, lo) };
        let o = r.orig as usize;
        let rule = r.rule[o].or(r.rule[1 - o]);
        let (rule_name, path) = match rule {
            Some(x) => {
                let (n, p) = self.paths.rule_now(x as usize);
                (Some(n.to_owned()), Some(p))
            }
            None => (None, None),
        };
        json!({
            "worker": worker,
            "protocol": protocol(k.proto),
            "client": client.0.to_string(), "client_port": client.1,
            "server": server.0.to_string(), "server_port": server.1,
            "application": dpi.apps.get(r.app as usize).map_or("Unknown", |a| a.name.as_str()),
            "category": r.category.name(),
            "class": Class::name(r.class),
            "state": match r.status { Status::Inspecting => "inspecting", Status::Decided => "decided", Status::GaveUp => "unknown" },
            "host": (!r.host.is_empty()).then(|| r.host.as_str()),
            "rule": rule_name, "path": path,
            "packets_from_client": r.packets[0], "packets_from_server": r.packets[1],
            "bytes_from_client": r.bytes[0], "bytes_from_server": r.bytes[1],
            "age_seconds": r.age_ms as f64 / 1e3, "idle_seconds": r.idle_ms as f64 / 1e3,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_bad_ones_say_what_they_expect() {
        let c = Cursor { worker: 1, slot: 4096 };
        assert_eq!(Cursor::parse(&c.to_string()), Ok(c));
        for bad in ["", "1", "a:1", "1:-2", "1:2:3"] {
            assert!(Cursor::parse(bad).unwrap_err().contains("WORKER:SLOT"), "{bad}");
        }
    }
}
