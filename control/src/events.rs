//! Operator events: failovers, path and BFD state changes, handshakes,
//! reloads and their outcome, drains. The control thread emits them where
//! it logs them; the API's `events` subscription streams them and the
//! `events` query returns the latest ones.
//!
//! The control thread emits, and the API thread for its audit events;
//! subscriptions receive through a broadcast channel. No worker touches
//! either.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};

use serde::Serialize;
use serde_json::Value;

/// Events kept for the `events` query.
pub const RECENT: usize = 256;

#[derive(Clone, Debug, Serialize)]
pub struct Event {
    /// Increases by one per event since start.
    pub seq: u64,
    /// Unix time, seconds.
    pub at: f64,
    /// failover, path, bfd, handshake, reload, drain, audit.
    pub kind: &'static str,
    /// One line, as the log says it.
    pub message: String,
    /// The event's fields (path, rule, from, to, reason, state, ...).
    pub fields: Value,
}

struct Bus {
    tx: tokio::sync::broadcast::Sender<Event>,
    recent: Mutex<VecDeque<Event>>,
    seq: AtomicU64,
}

fn bus() -> &'static Bus {
    static BUS: OnceLock<Bus> = OnceLock::new();
    BUS.get_or_init(|| Bus { tx: tokio::sync::broadcast::channel(RECENT).0, recent: Mutex::new(VecDeque::new()), seq: AtomicU64::new(0) })
}

/// Records an event and sends it to every subscriber.
pub fn emit(kind: &'static str, message: impl Into<String>, fields: Value) {
    let b = bus();
    let e =
        Event { seq: b.seq.fetch_add(1, Ordering::Relaxed) + 1, at: crate::telemetry::unix_now(), kind, message: message.into(), fields };
    if let Ok(mut r) = b.recent.lock() {
        if r.len() == RECENT {
            r.pop_front();
        }
        r.push_back(e.clone());
    }
    let _ = b.tx.send(e);
}

/// The latest events, oldest first.
pub fn recent() -> Vec<Event> {
    bus().recent.lock().map(|r| r.iter().cloned().collect()).unwrap_or_default()
}

/// A receiver of every event from now on.
pub fn subscribe() -> tokio::sync::broadcast::Receiver<Event> {
    bus().tx.subscribe()
}
