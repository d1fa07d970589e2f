//! The GraphQL schema: queries for everything `patronus show` offers,
//! mutations for reload, rekey and drain, subscriptions for live figures
//! and events. Its SDL is `docs/api.graphql` (a test keeps it current).
//!
//! Each query field returns what `patronus show WHAT --json` answers
//! (docs/OPERATIONS.md), typed ([`super::types`]), with the same field
//! names: the figures are read from one place, the control thread's
//! answer.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use async_graphql::futures_util::Stream;
use async_graphql::{Context, Error, ErrorExtensions, Json, Object, Schema, Subscription};
use serde_json::{json, Value};

use super::auth::{Caller, Role};
use super::types::{self as t, typed};
use super::{refused, Shared};
use crate::ctl::Request;

pub type PatronusSchema = Schema<Query, Mutation, SubscriptionRoot>;

/// Most nested selection (the standard introspection query fits).
pub const MAX_DEPTH: usize = 16;
/// Most work per request: a field costs 1, and a read of the control
/// thread 4 more. The dashboard's whole `figures` costs about 330.
pub const MAX_COMPLEXITY: usize = 1000;

pub fn build() -> PatronusSchema {
    Schema::build(Query, Mutation, SubscriptionRoot)
        .limit_depth(MAX_DEPTH)
        .limit_complexity(MAX_COMPLEXITY)
        .limit_recursive_depth(32)
        .limit_directives(8)
        .finish()
}

/// The schema's SDL, as `docs/api.graphql` holds it.
pub fn sdl() -> String {
    build().sdl()
}

/// Every field below the object type `ty`, as a selection set: what the
/// dashboard asks for (it builds the same from introspection), for
/// clients such as the load bench.
pub async fn selection(ty: &str) -> String {
    let q = "{ __schema { types { name kind fields { name type { name ofType { name ofType { name ofType { name } } } } } } } }";
    let r = build().execute(q).await.data.into_json().unwrap_or_default();
    let types: std::collections::HashMap<&str, &Value> =
        r["__schema"]["types"].as_array().into_iter().flatten().map(|t| (t["name"].as_str().unwrap_or(""), t)).collect();
    fn named(t: &Value) -> &str {
        t["name"].as_str().unwrap_or_else(|| if t["ofType"].is_null() { "" } else { named(&t["ofType"]) })
    }
    fn sel(types: &std::collections::HashMap<&str, &Value>, ty: &str) -> String {
        match types.get(ty) {
            Some(t) if t["kind"] == "OBJECT" => {
                let f: Vec<String> = t["fields"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|f| format!("{} {}", f["name"].as_str().unwrap_or(""), sel(types, named(&f["type"]))))
                    .collect();
                format!("{{ {} }}", f.join(" "))
            }
            _ => String::new(),
        }
    }
    sel(&types, ty)
}

fn shared<'a>(ctx: &Context<'a>) -> async_graphql::Result<&'a Arc<Shared>> {
    ctx.data::<Arc<Shared>>()
}

fn caller<'a>(ctx: &Context<'a>) -> async_graphql::Result<&'a Caller> {
    ctx.data::<Caller>()
}

/// The caller, if it presented a token (a WebSocket may connect without
/// one in its headers, and must give one at init).
fn authenticated<'a>(ctx: &Context<'a>) -> async_graphql::Result<&'a Caller> {
    let c = caller(ctx)?;
    if c.role.is_none() {
        return Err(Error::new("this API needs a bearer token").extend_with(|_, e| e.set("code", "UNAUTHENTICATED")));
    }
    Ok(c)
}

/// A request's answer under `key`, typed, or its error.
async fn ask<T: serde::de::DeserializeOwned>(ctx: &Context<'_>, request: Request, key: &str) -> async_graphql::Result<T> {
    let c = authenticated(ctx)?;
    let mut v = shared(ctx)?.ask(request, c).await;
    if v["ok"] != json!(true) {
        return Err(Error::new(v["error"].as_str().unwrap_or("failed").to_owned()));
    }
    typed(key, v[key].take())
}

/// `show WHAT`, typed.
async fn show<T: serde::de::DeserializeOwned>(ctx: &Context<'_>, what: &str) -> async_graphql::Result<T> {
    ask(ctx, Request::Show { what: what.into() }, what).await
}

pub struct Query;

/// Everything `patronus show` offers, with `show WHAT --json`'s names.
#[Object]
impl Query {
    /// Version, uptime, config file, workers, reloads, memory.
    #[graphql(complexity = "4 + child_complexity")]
    async fn status(&self, ctx: &Context<'_>) -> async_graphql::Result<t::Status> {
        show(ctx, "status").await
    }
    /// Each port: device, driver, role, queues, spread, traffic, NIC counters.
    #[graphql(complexity = "4 + child_complexity")]
    async fn ports(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<t::Port>> {
        show(ctx, "ports").await
    }
    /// Traffic per core and port.
    #[graphql(complexity = "4 + child_complexity")]
    async fn counters(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<t::CoreCounters>> {
        show(ctx, "counters").await
    }
    /// Drops by reason, per core and port.
    #[graphql(complexity = "4 + child_complexity")]
    async fn drops(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<t::Drop>> {
        show(ctx, "drops").await
    }
    /// Each worker: queues, packets, busy time, flows, handoffs.
    #[graphql(complexity = "4 + child_complexity")]
    async fn workers(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<t::Worker>> {
        show(ctx, "workers").await
    }
    /// Residence, iteration and stage latency quantiles.
    #[graphql(complexity = "4 + child_complexity")]
    async fn latency(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<t::Latency>> {
        show(ctx, "latency").await
    }
    /// ARP and ND neighbours.
    #[graphql(complexity = "4 + child_complexity")]
    async fn neighbors(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<t::Neighbor>> {
        show(ctx, "neighbors").await
    }
    /// The flow tables: active, created, expired, evicted, inspected.
    #[graphql(complexity = "4 + child_complexity")]
    async fn flow_tables(&self, ctx: &Context<'_>) -> async_graphql::Result<t::FlowSummary> {
        show(ctx, "flows").await
    }
    /// The live flows, `first` from the cursor `after` (a page's
    /// `end_cursor`), read from each worker's table in turn
    /// (`patronus flows`).
    #[graphql(complexity = "8 + child_complexity")]
    async fn flows(
        &self,
        ctx: &Context<'_>,
        after: Option<String>,
        #[graphql(default = 50, validator(minimum = 1, maximum = 1000))] first: usize,
    ) -> async_graphql::Result<t::FlowPage> {
        ask(ctx, Request::Flows { after, first }, "flows").await
    }
    /// Traffic per application (most flows first), with the rule and
    /// path each takes, `first` rows from `offset`.
    #[graphql(complexity = "4 + child_complexity")]
    async fn applications(
        &self,
        ctx: &Context<'_>,
        #[graphql(default = 0)] offset: usize,
        #[graphql(default = 50, validator(maximum = 1000))] first: usize,
    ) -> async_graphql::Result<t::ApplicationPage> {
        let rows: Vec<t::Application> = show(ctx, "apps").await?;
        let total = rows.len() as u64;
        let rows = rows.into_iter().skip(offset).take(first).collect();
        Ok(t::ApplicationPage { total, offset: offset as u64, rows })
    }
    /// Tunnel peers: endpoint, handshake age, transfer.
    #[graphql(complexity = "4 + child_complexity")]
    async fn peers(&self, ctx: &Context<'_>) -> async_graphql::Result<t::Tunnel> {
        show(ctx, "peers").await
    }
    /// WAN paths: state, SLA figures, rules on each, choices, failovers.
    #[graphql(complexity = "4 + child_complexity")]
    async fn paths(&self, ctx: &Context<'_>) -> async_graphql::Result<t::Paths> {
        show(ctx, "paths").await
    }
    /// BFD sessions.
    #[graphql(complexity = "4 + child_complexity")]
    async fn bfd(&self, ctx: &Context<'_>) -> async_graphql::Result<t::Bfd> {
        show(ctx, "bfd").await
    }
    /// Per shaped port and class: depth, sent, drops.
    #[graphql(complexity = "4 + child_complexity")]
    async fn qos(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<t::QosClass>> {
        show(ctx, "qos").await
    }
    /// The running config: the file's text and the effective values,
    /// secrets redacted; the drained paths.
    #[graphql(complexity = "4 + child_complexity")]
    async fn config(&self, ctx: &Context<'_>) -> async_graphql::Result<t::RunningConfig> {
        show(ctx, "config").await
    }
    /// The latest events (failovers, path and BFD changes, handshakes,
    /// reloads, drains), oldest first; at most `last`.
    #[graphql(complexity = "4 + child_complexity")]
    async fn events(
        &self,
        ctx: &Context<'_>,
        #[graphql(default = 100, validator(maximum = 256))] last: usize,
    ) -> async_graphql::Result<Vec<t::Event>> {
        let rows: Vec<t::Event> = show(ctx, "events").await?;
        let skip = rows.len().saturating_sub(last);
        Ok(rows.into_iter().skip(skip).collect())
    }
    /// Each path's and port's last 15 minutes at 1 s (`show history`).
    #[graphql(complexity = "4 + child_complexity")]
    async fn history(&self, ctx: &Context<'_>) -> async_graphql::Result<t::History> {
        show(ctx, "history").await
    }
    /// Who this token is: its name and role.
    async fn whoami(&self, ctx: &Context<'_>) -> async_graphql::Result<t::WhoAmI> {
        let c = caller(ctx)?;
        Ok(t::WhoAmI { name: c.name.clone(), role: c.role.map(|r| r.name().to_owned()) })
    }
}

/// A mutation's caller, if admin; otherwise the refusal, audited.
fn admin<'a>(ctx: &Context<'a>, action: &str) -> async_graphql::Result<(&'a Caller, &'a Arc<Shared>)> {
    let (c, s) = (caller(ctx)?, shared(ctx)?);
    if c.role != Some(Role::Admin) {
        refused("role");
        audit(c, action, false, "refused: needs the admin role");
        let have = c.role.map_or("no token".to_owned(), |r| format!("role {}", r.name()));
        return Err(Error::new(format!("{action} needs a token with the admin role; this request has {have}"))
            .extend_with(|_, e| e.set("code", "FORBIDDEN")));
    }
    Ok((c, s))
}

/// One audit event: who, what, and how it ended, in the JSON log and the
/// event stream. Never the token itself.
fn audit(c: &Caller, action: &str, ok: bool, result: &str) {
    tracing::info!(target: "patronus::audit", token = %c.name, action, ok, result, "audit: {} {action}: {result}", c.name);
    crate::events::emit(
        "audit",
        format!("{} {action}: {result}", c.name),
        json!({ "token": c.name, "action": action, "ok": ok, "result": result }),
    );
}

/// Runs a mutation's request and audits it.
async fn mutate(ctx: &Context<'_>, action: String, request: Request) -> async_graphql::Result<t::Outcome> {
    let (c, s) = admin(ctx, &action)?;
    let v = s.ask(request, c).await;
    let ok = v["ok"] == json!(true);
    let result = if ok {
        v["message"].as_str().map_or_else(|| "ok".to_owned(), str::to_owned)
    } else {
        format!("failed: {}", v["error"].as_str().unwrap_or(""))
    };
    audit(c, &action, ok, &result);
    typed("mutation", v)
}

pub struct Mutation;

#[Object]
impl Mutation {
    /// Reloads: from the config file, or from `text`, which is validated
    /// exactly as the file would be (errors are file:line:col: field:
    /// message, as `patronus check` prints them) and, if valid, written
    /// over the file atomically before it applies. A rejected config
    /// changes nothing: the running config and the file stay.
    async fn reload(&self, ctx: &Context<'_>, text: Option<String>) -> async_graphql::Result<t::Outcome> {
        match text {
            Some(text) => mutate(ctx, "reload (pushed text)".into(), Request::ReloadText { text }).await,
            None => mutate(ctx, "reload".into(), Request::Reload).await,
        }
    }
    /// Starts a handshake with `peer` now (every peer without one).
    async fn rekey(&self, ctx: &Context<'_>, peer: Option<String>) -> async_graphql::Result<t::Outcome> {
        let action = format!("rekey {}", peer.as_deref().unwrap_or("all peers"));
        mutate(ctx, action, Request::Rekey { peer }).await
    }
    /// Takes a WAN path out of service: its rules move to their next best
    /// path at once; it keeps being probed.
    async fn drain_path(&self, ctx: &Context<'_>, path: String) -> async_graphql::Result<t::Outcome> {
        mutate(ctx, format!("drain {path}"), Request::Drain { path, drain: true }).await
    }
    /// Puts a drained path back in service (rules fail back after their hold-down).
    async fn undrain_path(&self, ctx: &Context<'_>, path: String) -> async_graphql::Result<t::Outcome> {
        mutate(ctx, format!("undrain {path}"), Request::Drain { path, drain: false }).await
    }
}

/// Releases a subscription slot when its stream ends.
struct Slot(Arc<Shared>);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.subscriptions.fetch_sub(1, Ordering::Relaxed);
    }
}

fn take_slot(ctx: &Context<'_>) -> async_graphql::Result<Slot> {
    let s = shared(ctx)?;
    authenticated(ctx)?;
    let max = s.conf.max_subscriptions;
    if s.subscriptions.fetch_add(1, Ordering::Relaxed) >= max {
        s.subscriptions.fetch_sub(1, Ordering::Relaxed);
        return Err(Error::new(format!("too many subscriptions ({max}, [api] max_subscriptions); close one first")));
    }
    Ok(Slot(s.clone()))
}

pub struct SubscriptionRoot;

#[Subscription]
impl SubscriptionRoot {
    /// Every second: status, ports, paths, peers, drops, applications,
    /// QoS, BFD and workers, as the queries return them. One read of the
    /// control thread a second serves every subscriber.
    async fn figures(&self, ctx: &Context<'_>) -> async_graphql::Result<impl Stream<Item = t::Figures>> {
        let slot = take_slot(ctx)?;
        let mut rx = slot.0.figures.subscribe();
        rx.mark_changed();
        Ok(async_graphql::futures_util::stream::unfold((rx, slot), |(mut rx, slot)| async move {
            loop {
                rx.changed().await.ok()?;
                let v = rx.borrow_and_update().clone();
                if let Some(f) = v {
                    return Some((f, (rx, slot)));
                }
            }
        }))
    }

    /// Each event as it happens: failovers, path and BFD state changes,
    /// handshakes, reloads and their outcome, drains, audit.
    async fn events(&self, ctx: &Context<'_>) -> async_graphql::Result<impl Stream<Item = t::Event>> {
        let slot = take_slot(ctx)?;
        let rx = crate::events::subscribe();
        Ok(async_graphql::futures_util::stream::unfold((rx, slot), |(mut rx, slot)| async move {
            let v = match rx.recv().await {
                Ok(e) => typed("events", json!(e)).ok()?,
                Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => t::Event {
                    seq: 0,
                    at: crate::telemetry::unix_now(),
                    kind: "lagged".into(),
                    message: format!("{n} event(s) missed"),
                    fields: Json(json!({ "missed": n })),
                },
                Err(_) => return None,
            };
            Some((v, (rx, slot)))
        }))
    }
}

/// Reads the figures once a second while anyone subscribes.
pub async fn figures_feed(shared: Arc<Shared>) {
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let me = Caller { name: "dashboard feed".into(), role: Some(Role::Read) };
    loop {
        tick.tick().await;
        if shared.figures.receiver_count() == 0 {
            continue;
        }
        let mut v = shared.ask(Request::Show { what: "figures".into() }, &me).await;
        if v["ok"] == json!(true) {
            match typed::<t::Figures>("figures", v["figures"].take()) {
                Ok(f) => {
                    shared.figures.send_replace(Some(f));
                }
                Err(e) => tracing::error!("{}", e.message),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::auth::{Caller, Role};
    use super::super::Shared;
    use serde_json::json;

    fn run(q: &str, vars: &str, role: Option<Role>) -> serde_json::Value {
        let conf = crate::config::api::ApiOpts::default().conf("127.0.0.1:0", std::path::Path::new("x.toml")).unwrap();
        let s = Shared::detached(conf);
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(s.execute(q, vars.as_bytes(), Caller { name: "t".into(), role }))
    }

    #[test]
    fn the_entry_refuses_what_it_should_without_reaching_the_appliance() {
        // Syntax, unknown fields, bad variables: errors, never a panic.
        for (q, v) in [("{", ""), ("{ nosuch }", ""), ("query ($n: Int) { events(last: $n) }", r#"{"n": "x"}"#), ("", "")] {
            let r = run(q, v, Some(Role::Read));
            assert!(r["errors"].is_array(), "{q}: {r}");
        }
        // Validators: page sizes are bounded.
        let r = run("{ applications(first: 100000) { total } }", "", Some(Role::Read));
        assert!(r["errors"][0]["message"].as_str().unwrap().contains("100000"), "{r}");
        // A request that passes reaches the (absent) control thread.
        let r = run("{ status { site } }", "", Some(Role::Read));
        assert_eq!(r["errors"][0]["message"], json!("the appliance is shutting down"), "{r}");
        // Mutations need admin before anything is asked.
        let r = run("mutation { reload { ok } }", "", Some(Role::Read));
        assert_eq!(r["errors"][0]["extensions"]["code"], "FORBIDDEN", "{r}");
        let r = run("{ status { site } }", "", None);
        assert_eq!(r["errors"][0]["extensions"]["code"], "UNAUTHENTICATED", "{r}");
    }

    #[test]
    fn the_figures_selection_names_every_topic_within_the_limits() {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let s = rt.block_on(super::selection("Figures"));
        for f in ["status {", "ports {", "paths {", "rtt_ms {", "refused {", "apps {", "qos {", "workers {", "flows {"] {
            assert!(s.contains(f), "{f}: {s}");
        }
        let r = run(&format!("subscription {{ figures {s} }}"), "", Some(Role::Read));
        assert!(r["errors"].is_null() || !r.to_string().contains("complex"), "{r}");
        assert_eq!(rt.block_on(super::selection("NoSuchType")), "");
    }

    /// docs/api.graphql is the schema; regenerate it with
    /// `patronus api-schema > docs/api.graphql`.
    #[test]
    fn the_schema_in_docs_is_current() {
        let docs = include_str!("../../../docs/api.graphql");
        let now = super::sdl();
        assert!(docs == now, "docs/api.graphql is stale: run `patronus api-schema > docs/api.graphql`\n--- now ---\n{now}");
    }
}
