//! The GraphQL schema: queries for everything `patronus show` offers,
//! mutations for reload, rekey and drain, subscriptions for live figures
//! and events. Its SDL is `docs/api.graphql` (a test keeps it current).
//!
//! Each query field returns the same JSON object as `patronus show WHAT
//! --json` (documented in docs/OPERATIONS.md), as the `JSON` scalar: the
//! figures are read from one place, the control thread's answer.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use async_graphql::futures_util::Stream;
use async_graphql::{Context, Error, ErrorExtensions, Json, Object, Schema, Subscription};
use serde_json::{json, Value};

use super::auth::{Caller, Role};
use super::{refused, Shared};
use crate::ctl::Request;

pub type PatronusSchema = Schema<Query, Mutation, SubscriptionRoot>;

/// Most nested selection (the standard introspection query fits).
pub const MAX_DEPTH: usize = 16;
/// Most work per request: a state field costs 4, so 64 of them.
pub const MAX_COMPLEXITY: usize = 256;

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

/// `show WHAT` from the control thread: the topic's value, or its error.
async fn show(ctx: &Context<'_>, what: &str) -> async_graphql::Result<Json<Value>> {
    let c = authenticated(ctx)?;
    let mut v = shared(ctx)?.ask(Request::Show { what: what.into() }, c).await;
    if v["ok"] != json!(true) {
        return Err(Error::new(v["error"].as_str().unwrap_or("failed").to_owned()));
    }
    Ok(Json(v[what].take()))
}

pub struct Query;

/// Everything `patronus show` offers; each is `show WHAT --json`'s value.
#[Object]
impl Query {
    /// Version, uptime, config file, workers, reloads, memory.
    #[graphql(complexity = 4)]
    async fn status(&self, ctx: &Context<'_>) -> async_graphql::Result<Json<Value>> {
        show(ctx, "status").await
    }
    /// Each port: device, driver, role, queues, spread, traffic, NIC counters.
    #[graphql(complexity = 4)]
    async fn ports(&self, ctx: &Context<'_>) -> async_graphql::Result<Json<Value>> {
        show(ctx, "ports").await
    }
    /// Traffic per core and port.
    #[graphql(complexity = 4)]
    async fn counters(&self, ctx: &Context<'_>) -> async_graphql::Result<Json<Value>> {
        show(ctx, "counters").await
    }
    /// Drops by reason, per core and port.
    #[graphql(complexity = 4)]
    async fn drops(&self, ctx: &Context<'_>) -> async_graphql::Result<Json<Value>> {
        show(ctx, "drops").await
    }
    /// Each worker: queues, packets, busy time, flows, handoffs.
    #[graphql(complexity = 4)]
    async fn workers(&self, ctx: &Context<'_>) -> async_graphql::Result<Json<Value>> {
        show(ctx, "workers").await
    }
    /// Residence, iteration and stage latency quantiles.
    #[graphql(complexity = 4)]
    async fn latency(&self, ctx: &Context<'_>) -> async_graphql::Result<Json<Value>> {
        show(ctx, "latency").await
    }
    /// ARP and ND neighbours.
    #[graphql(complexity = 4)]
    async fn neighbors(&self, ctx: &Context<'_>) -> async_graphql::Result<Json<Value>> {
        show(ctx, "neighbors").await
    }
    /// The flow tables: active, created, expired, evicted, inspected.
    #[graphql(complexity = 4)]
    async fn flows(&self, ctx: &Context<'_>) -> async_graphql::Result<Json<Value>> {
        show(ctx, "flows").await
    }
    /// Traffic per application (most flows first), with the rule and
    /// path each takes, `first` rows from `offset`.
    #[graphql(complexity = 4)]
    async fn applications(
        &self,
        ctx: &Context<'_>,
        #[graphql(default = 0)] offset: usize,
        #[graphql(default = 50, validator(maximum = 1000))] first: usize,
    ) -> async_graphql::Result<Json<Value>> {
        let Json(v) = show(ctx, "apps").await?;
        let rows = v.as_array().cloned().unwrap_or_default();
        let total = rows.len();
        let page: Vec<Value> = rows.into_iter().skip(offset).take(first).collect();
        Ok(Json(json!({ "total": total, "offset": offset, "rows": page })))
    }
    /// Tunnel peers: endpoint, handshake age, transfer.
    #[graphql(complexity = 4)]
    async fn peers(&self, ctx: &Context<'_>) -> async_graphql::Result<Json<Value>> {
        show(ctx, "peers").await
    }
    /// WAN paths: state, SLA figures, rules on each, choices, failovers.
    #[graphql(complexity = 4)]
    async fn paths(&self, ctx: &Context<'_>) -> async_graphql::Result<Json<Value>> {
        show(ctx, "paths").await
    }
    /// BFD sessions.
    #[graphql(complexity = 4)]
    async fn bfd(&self, ctx: &Context<'_>) -> async_graphql::Result<Json<Value>> {
        show(ctx, "bfd").await
    }
    /// Per shaped port and class: depth, sent, drops.
    #[graphql(complexity = 4)]
    async fn qos(&self, ctx: &Context<'_>) -> async_graphql::Result<Json<Value>> {
        show(ctx, "qos").await
    }
    /// The running config: the file's text and the effective values,
    /// secrets redacted; the drained paths.
    #[graphql(complexity = 4)]
    async fn config(&self, ctx: &Context<'_>) -> async_graphql::Result<Json<Value>> {
        show(ctx, "config").await
    }
    /// The latest events (failovers, path and BFD changes, handshakes,
    /// reloads, drains), oldest first; at most `last`.
    #[graphql(complexity = 4)]
    async fn events(
        &self,
        ctx: &Context<'_>,
        #[graphql(default = 100, validator(maximum = 256))] last: usize,
    ) -> async_graphql::Result<Json<Value>> {
        let Json(v) = show(ctx, "events").await?;
        let rows = v.as_array().cloned().unwrap_or_default();
        let skip = rows.len().saturating_sub(last);
        Ok(Json(json!(rows[skip..])))
    }
    /// Each path's and port's last 15 minutes at 1 s (`show history`).
    #[graphql(complexity = 4)]
    async fn history(&self, ctx: &Context<'_>) -> async_graphql::Result<Json<Value>> {
        show(ctx, "history").await
    }
    /// Who this token is: its name and role.
    async fn whoami(&self, ctx: &Context<'_>) -> async_graphql::Result<Json<Value>> {
        let c = caller(ctx)?;
        Ok(Json(json!({ "name": c.name, "role": c.role.map(Role::name) })))
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
async fn mutate(ctx: &Context<'_>, action: String, request: Request) -> async_graphql::Result<Json<Value>> {
    let (c, s) = admin(ctx, &action)?;
    let v = s.ask(request, c).await;
    let ok = v["ok"] == json!(true);
    let result = if ok {
        v["message"].as_str().map_or_else(|| "ok".to_owned(), str::to_owned)
    } else {
        format!("failed: {}", v["error"].as_str().unwrap_or(""))
    };
    audit(c, &action, ok, &result);
    Ok(Json(v))
}

pub struct Mutation;

#[Object]
impl Mutation {
    /// Reloads: from the config file, or from `text`, which is validated
    /// exactly as the file would be (errors are file:line:col: field:
    /// message, as `patronus check` prints them) and, if valid, written
    /// over the file atomically before it applies. A rejected config
    /// changes nothing: the running config and the file stay.
    async fn reload(&self, ctx: &Context<'_>, text: Option<String>) -> async_graphql::Result<Json<Value>> {
        match text {
            Some(text) => mutate(ctx, "reload (pushed text)".into(), Request::ReloadText { text }).await,
            None => mutate(ctx, "reload".into(), Request::Reload).await,
        }
    }
    /// Starts a handshake with `peer` now (every peer without one).
    async fn rekey(&self, ctx: &Context<'_>, peer: Option<String>) -> async_graphql::Result<Json<Value>> {
        let action = format!("rekey {}", peer.as_deref().unwrap_or("all peers"));
        mutate(ctx, action, Request::Rekey { peer }).await
    }
    /// Takes a WAN path out of service: its rules move to their next best
    /// path at once; it keeps being probed.
    async fn drain_path(&self, ctx: &Context<'_>, path: String) -> async_graphql::Result<Json<Value>> {
        mutate(ctx, format!("drain {path}"), Request::Drain { path, drain: true }).await
    }
    /// Puts a drained path back in service (rules fail back after their hold-down).
    async fn undrain_path(&self, ctx: &Context<'_>, path: String) -> async_graphql::Result<Json<Value>> {
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
    async fn figures(&self, ctx: &Context<'_>) -> async_graphql::Result<impl Stream<Item = Json<Value>>> {
        let slot = take_slot(ctx)?;
        let mut rx = slot.0.figures.subscribe();
        rx.mark_changed();
        Ok(async_graphql::futures_util::stream::unfold((rx, slot), |(mut rx, slot)| async move {
            loop {
                rx.changed().await.ok()?;
                let v = rx.borrow_and_update().clone();
                if !v.is_null() {
                    return Some((Json(v), (rx, slot)));
                }
            }
        }))
    }

    /// Each event as it happens: failovers, path and BFD state changes,
    /// handshakes, reloads and their outcome, drains, audit.
    async fn events(&self, ctx: &Context<'_>) -> async_graphql::Result<impl Stream<Item = Json<Value>>> {
        let slot = take_slot(ctx)?;
        let rx = crate::events::subscribe();
        Ok(async_graphql::futures_util::stream::unfold((rx, slot), |(mut rx, slot)| async move {
            let v = match rx.recv().await {
                Ok(e) => json!(e),
                Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                    json!({ "kind": "lagged", "message": format!("{n} event(s) missed"), "fields": {} })
                }
                Err(_) => return None,
            };
            Some((Json(v), (rx, slot)))
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
            shared.figures.send_replace(v["figures"].take());
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
        let r = run("{ applications(first: 100000) }", "", Some(Role::Read));
        assert!(r["errors"][0]["message"].as_str().unwrap().contains("100000"), "{r}");
        // A request that passes reaches the (absent) control thread.
        let r = run("{ status }", "", Some(Role::Read));
        assert_eq!(r["errors"][0]["message"], json!("the appliance is shutting down"), "{r}");
        // Mutations need admin before anything is asked.
        let r = run("mutation { reload }", "", Some(Role::Read));
        assert_eq!(r["errors"][0]["extensions"]["code"], "FORBIDDEN", "{r}");
        let r = run("{ status }", "", None);
        assert_eq!(r["errors"][0]["extensions"]["code"], "UNAUTHENTICATED", "{r}");
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
