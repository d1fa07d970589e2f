//! The control thread's side of multi-path SD-WAN: sends SLA probes on
//! every path through the tunnel, reads the replies the workers hand
//! back, runs BFD sessions, judges each path (`path::sla::Monitor`),
//! chooses a path per (peer, policy rule) and publishes the choices as a
//! [`Steering`] snapshot the workers' Encap stage reads.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use dataplane::egress::ControlIo;
use dataplane::packet::Packet;
use dataplane::path::bfd::Session as BfdSession;
use dataplane::path::sla::{meets, select, Monitor, PathView, Reason, RuleConf, SelectConf, Transition};
use dataplane::path::{probe, PathLive, PathOut, PeerPaths, Steering, DROP, NO_PATH};
use dataplane::rcu::{Publisher, Reader};
use dataplane::router::punt;
use dataplane::tunnel::stage::emit_ip_udp_ttl;
use dataplane::wire::bfd::{self, Repr, State};
use dataplane::wire::{ipv4, ipv6, udp, Ipv4Address};
use serde_json::{json, Value};

use crate::config::paths::{ordered, PathOpts, PolicyOpts};
use crate::config::Config;
use crate::histogram::Buckets;
use crate::slowpath::SlowPath;
use crate::tunnel::{os_random, TunnelControl};

mod bfd_io;
mod show;

#[allow(unused_imports)]
pub use show::*;

/// One path's state on the control thread.
struct Path {
    name: String,
    peer_name: String,
    /// Tunnel peer index; `None` when the peer is gone (after a reload).
    peer: Option<usize>,
    /// Index among its peer's paths.
    slot: usize,
    port: String,
    endpoint: SocketAddr,
    cost: u32,
    bandwidth_mbps: u32,
    labels: Vec<String>,
    bfd: Option<usize>,
    monitor: Monitor,
    live: Arc<PathLive>,
    probes_sent: u64,
    probes_unsent: u64,
    replies: u64,
    /// (source, target) of its probes while they travel wrapped in ICMP.
    wrap: (Ipv4Address, Ipv4Address),
    /// The last reply came back as an ICMP echo reply (a plain WireGuard peer).
    via_icmp: bool,
    /// Every answered probe's RTT, in Prometheus buckets.
    rtt_hist: Buckets,
    /// Outages (down to up again) and their count.
    outage_hist: Buckets,
    down_since: Option<Duration>,
    last_transition: Option<(Duration, &'static str)>,
}

impl Path {
    /// The labels of its series: `path` and the specification's `path_id`
    /// (both its name), its local port (`link`) and peer.
    fn labels(&self) -> [(&'static str, String); 4] {
        [("path", self.name.clone()), ("path_id", self.name.clone()), ("link", self.port.clone()), ("peer", self.peer_name.clone())]
    }
}

/// One failover, and the health of the path it left and the path it took
/// when it happened and [`AFTER`] later.
#[derive(Clone, Debug)]
pub struct FailoverEvent {
    pub at: Duration,
    pub rule: String,
    pub from: String,
    pub to: String,
    pub reason: &'static str,
    /// Health of `from` and `to` (None for "drop").
    pub before: (Option<f64>, Option<f64>),
    pub after: Option<(Option<f64>, Option<f64>)>,
}

/// How long after a failover its "after" health is read.
pub const AFTER: Duration = Duration::from_secs(10);
/// Failover events kept for `show paths`.
const EVENTS: usize = 32;

/// A BFD session and where it talks.
struct Bfd {
    name: String,
    peer: IpAddr,
    multihop: bool,
    src_port: u16,
    session: BfdSession,
    send_failures: u64,
}

/// Counts of BFD packets refused before reaching a session.
#[derive(Default, Clone)]
struct BfdRefusals {
    by_reason: std::collections::BTreeMap<&'static str, u64>,
}

/// One rule's choice for one peer.
struct Choice {
    /// `None` until chosen; `Some(None)` drop; `Some(Some(i))` path slot `i`.
    cur: Option<Option<usize>>,
    since: Duration,
    /// Per path slot: since when it has met this rule's SLA with the
    /// hysteresis margin. The failback hold-down counts from here, so a
    /// path that broke the SLA without going down waits like one that did.
    good_since: Vec<Option<Duration>>,
}

pub struct PathControl {
    paths: Vec<Path>,
    bfd: Vec<Bfd>,
    /// Rule 0 is the default rule; then the `[[policy]]` rules in match order.
    rule_names: Vec<String>,
    /// What each rule matches, for `show paths` ("applications on a path").
    rule_matches: Vec<String>,
    /// Per tunnel peer: the rule confs for its paths (by rule), and choices.
    rules: Vec<Vec<RuleConf>>,
    choices: Vec<Vec<Choice>>,
    /// Tunnel peer index -> path indexes (into `paths`), by slot.
    by_peer: Vec<Vec<usize>>,
    /// Per tunnel peer: it answered a probe as Patronus does, so probes go
    /// to it plain; until then they go wrapped in ICMP echo requests.
    patronus: Vec<bool>,
    /// `[tunnel] source_ports`: what a Patronus peer's sessions spread over.
    source_ports: u16,
    select: SelectConf,
    sla_probes: usize,
    publisher: Publisher<Steering>,
    started: Instant,
    /// The wall clock at `started` (for times operators compare with logs).
    started_wall: std::time::SystemTime,
    hz: u64,
    /// (rule, from, to, reason) -> count.
    failovers: std::collections::BTreeMap<(String, String, String, &'static str), u64>,
    /// The latest failovers, with the paths' health around them.
    events: std::collections::VecDeque<FailoverEvent>,
    /// Per rule: the application it stands for (`app` label), if one.
    rule_apps: Vec<String>,
    refused: BfdRefusals,
    last_select: Duration,
    dirty: bool,
    /// Paths taken out of service by an operator (by name, so a drain
    /// survives reloads): no rule chooses them; they are still probed.
    drained: std::collections::BTreeSet<String>,
}

fn choice_code(c: Option<Option<usize>>) -> u8 {
    match c {
        None => NO_PATH,
        Some(None) => DROP,
        Some(Some(i)) => i as u8,
    }
}

impl PathControl {
    /// No paths: every peer uses its own endpoint.
    pub fn off(hz: u64) -> PathControl {
        PathControl {
            paths: Vec::new(),
            bfd: Vec::new(),
            rule_names: vec!["default".into()],
            rule_matches: vec!["everything no rule matches".into()],
            rules: Vec::new(),
            choices: Vec::new(),
            by_peer: Vec::new(),
            patronus: Vec::new(),
            source_ports: 1,
            select: SelectConf::default(),
            sla_probes: 10,
            publisher: Publisher::new(Steering::default()),
            started: Instant::now(),
            started_wall: std::time::SystemTime::now(),
            hz,
            failovers: Default::default(),
            events: Default::default(),
            rule_apps: vec![String::new()],
            refused: Default::default(),
            last_select: Duration::ZERO,
            dirty: false,
            drained: Default::default(),
        }
    }

    pub fn new(cfg: &Config, tunnel: &TunnelControl, hz: u64) -> PathControl {
        let mut c = PathControl::off(hz);
        c.configure(cfg, tunnel);
        c
    }

    /// What [`configure`](Self::configure) reads of a config: whether a
    /// reload must call it.
    pub fn config_key(cfg: &Config) -> impl PartialEq + '_ {
        let addrs: Vec<_> = cfg.path.iter().map(|p| cfg.probe_addrs(p)).collect();
        (&cfg.paths, &cfg.path, &cfg.bfd, &cfg.policy, addrs, cfg.tunnel.source_ports)
    }

    /// Applies a (re)loaded configuration. Paths and BFD sessions that
    /// keep their name and settings keep their measurements.
    pub fn configure(&mut self, cfg: &Config, tunnel: &TunnelControl) {
        let (opts, paths, bfd, policy) = (&cfg.paths, &cfg.path[..], &cfg.bfd[..], &cfg.policy[..]);
        self.source_ports = cfg.tunnel.source_ports.max(1);
        let now = self.now(Instant::now());
        let mut old_bfd: Vec<Bfd> = std::mem::take(&mut self.bfd);
        for (i, b) in bfd.iter().enumerate() {
            let peer: IpAddr = b.peer.parse().expect("validated");
            let keep = old_bfd.iter().position(|o| o.name == b.name && o.peer == peer && o.multihop == b.multihop);
            let mut s = match keep {
                Some(k) => old_bfd.swap_remove(k),
                None => {
                    let mut d = [0u8; 4];
                    while u32::from_le_bytes(d) == 0 {
                        os_random(&mut d);
                    }
                    Bfd {
                        name: b.name.clone(),
                        peer,
                        multihop: b.multihop,
                        src_port: 49152 + i as u16,
                        session: BfdSession::new(b.timers(), u32::from_le_bytes(d), now),
                        send_failures: 0,
                    }
                }
            };
            if s.session.timers != b.timers() {
                s.session.set_timers(b.timers(), now);
            }
            s.session.set_admin_down(b.admin_down, now);
            self.bfd.push(s);
        }
        let mut old: Vec<Path> = std::mem::take(&mut self.paths);
        self.by_peer = vec![Vec::new(); tunnel.peer_count()];
        // Peers may have changed places: each shows again what it is.
        self.patronus = vec![false; tunnel.peer_count()];
        for p in paths {
            let peer = tunnel.peer_index(&p.peer);
            let endpoint = p.endpoint().expect("validated");
            let conf = p.probe_conf(opts);
            let keep = old.iter().position(|o| o.name == p.name && o.peer == peer && o.endpoint == endpoint && o.monitor.conf == conf);
            let mut path = match keep {
                Some(k) => old.swap_remove(k),
                None => Path {
                    name: p.name.clone(),
                    peer_name: p.peer.clone(),
                    peer,
                    slot: 0,
                    port: p.port.clone(),
                    endpoint,
                    cost: 0,
                    bandwidth_mbps: 0,
                    labels: Vec::new(),
                    bfd: None,
                    monitor: Monitor::new(conf, now),
                    live: Arc::new(PathLive::default()),
                    probes_sent: 0,
                    probes_unsent: 0,
                    replies: 0,
                    wrap: (Ipv4Address::UNSPECIFIED, Ipv4Address::UNSPECIFIED),
                    via_icmp: false,
                    rtt_hist: Buckets::new(crate::histogram::PATH_RTT_SECONDS),
                    outage_hist: Buckets::new(crate::histogram::OUTAGE_SECONDS),
                    down_since: None,
                    last_transition: None,
                },
            };
            let (src, dst) = cfg.probe_addrs(p);
            path.wrap = (Ipv4Address(src.octets()), Ipv4Address(dst.octets()));
            path.port = p.port.clone();
            path.cost = p.cost;
            path.bandwidth_mbps = p.bandwidth_mbps;
            path.labels = p.labels.clone();
            path.bfd = p.bfd.as_ref().and_then(|b| self.bfd.iter().position(|s| &s.name == b));
            if let Some(i) = peer {
                path.slot = self.by_peer[i].len();
                self.by_peer[i].push(self.paths.len());
            }
            self.paths.push(path);
        }
        let rules = ordered(policy);
        self.rule_names = std::iter::once("default".to_owned()).chain(rules.iter().map(|r| r.name.clone())).collect();
        self.rule_matches = std::iter::once("everything no rule matches".to_owned()).chain(rules.iter().map(|r| describe(r))).collect();
        // A rule for exactly one application stands for it in the `app` label.
        self.rule_apps = std::iter::once(String::new())
            .chain(rules.iter().map(|r| if r.application.len() == 1 { r.application[0].clone() } else { String::new() }))
            .collect();
        self.rules = (0..self.by_peer.len())
            .map(|peer| {
                let mine: Vec<&PathOpts> = paths.iter().filter(|p| tunnel.peer_index(&p.peer) == Some(peer)).collect();
                std::iter::once(opts.default_rule(&mine)).chain(rules.iter().map(|r| r.rule(&mine))).collect()
            })
            .collect();
        self.choices = self
            .rules
            .iter()
            .enumerate()
            .map(|(peer, r)| r.iter().map(|_| Choice { cur: None, since: now, good_since: vec![None; self.by_peer[peer].len()] }).collect())
            .collect();
        self.select = opts.select_conf();
        self.sla_probes = opts.sla_probes as usize;
        self.dirty = true;
        self.publish();
    }

    pub fn reader(&self) -> Reader<Steering> {
        self.publisher.reader()
    }

    pub fn bfd_enabled(&self) -> bool {
        !self.bfd.is_empty()
    }

    fn now(&self, at: Instant) -> Duration {
        at.saturating_duration_since(self.started)
    }

    fn publish(&mut self) {
        let peers = self
            .by_peer
            .iter()
            .enumerate()
            .map(|(peer, idx)| PeerPaths {
                paths: idx.iter().map(|&i| PathOut { endpoint: self.paths[i].endpoint, live: self.paths[i].live.clone() }).collect(),
                choice: self.choices[peer].iter().map(|c| choice_code(c.cur)).collect(),
                source_ports: if self.patronus[peer] { self.source_ports } else { 1 },
            })
            .collect();
        self.publisher.publish(Steering { peers });
        self.dirty = false;
    }

    /// Probes, replies, BFD, path states and choices. Returns whether there was work.
    pub fn poll<P: Packet>(
        &mut self,
        io: &mut impl ControlIo<Pkt = P>,
        slow: &mut SlowPath<P>,
        tunnel: &mut TunnelControl,
        at: Instant,
    ) -> bool {
        let now = self.now(at);
        let mut work = false;
        for (h, pkt) in std::mem::take(&mut slow.path_rx) {
            work = true;
            match h.kind {
                punt::Kind::Probe => self.on_reply(&h, pkt, now),
                punt::Kind::Bfd => self.on_bfd(&h, pkt, now),
                _ => {}
            }
        }
        // BFD timers and transmissions.
        for b in 0..self.bfd.len() {
            let (changed, pkt) = self.bfd[b].session.poll(now);
            if let Some(c) = changed {
                work = true;
                self.on_bfd_change(b, c.to, now);
            }
            if let Some(p) = pkt {
                work = true;
                self.send_bfd(io, slow, b, &p, at);
            }
        }
        // Probes.
        for i in 0..self.paths.len() {
            let Some(peer) = self.paths[i].peer else { continue };
            if let Some(seq) = self.paths[i].monitor.due(now) {
                work = true;
                let p = &self.paths[i];
                let req = probe::request(p.slot as u8, seq, io.tsc());
                let wrapped;
                let payload: &[u8] = if self.patronus[peer] {
                    &req
                } else {
                    wrapped = probe::wrap(&req, p.wrap.0, p.wrap.1);
                    &wrapped
                };
                let sent = tunnel.seal(peer, payload, at).map(|msg| {
                    tunnel.send(io, slow, p.endpoint, &msg, at);
                    msg.len()
                });
                let p = &mut self.paths[i];
                if let Some(n) = sent {
                    p.live.add(false, 1, n as u64, 0);
                    p.probes_sent += 1;
                } else {
                    p.probes_unsent += 1; // no session yet: counts as unanswered
                }
            }
        }
        // States.
        let mut changed = false;
        for i in 0..self.paths.len() {
            let bfd_down = self.paths[i].bfd.is_some_and(|b| {
                let s = &self.bfd[b].session;
                // AdminDown, ours or the neighbour's, is not a failure (RFC
                // 5882 section 3.2): the path is judged by its probes alone.
                let admin = s.state == State::AdminDown || s.remote_state == State::AdminDown;
                !admin && s.state != State::Up && s.stats.up_events > 0
            });
            let p = &mut self.paths[i];
            p.monitor.bfd_down = bfd_down;
            let was = p.monitor.usable();
            if let Some(t) = p.monitor.tick(now) {
                match t {
                    Transition::Up => {
                        if let Some(since) = p.down_since.take() {
                            p.outage_hist.observe(now.saturating_sub(since).as_secs_f64());
                        }
                    }
                    Transition::Down | Transition::BfdDown => {
                        p.down_since.get_or_insert(now);
                    }
                }
                p.last_transition = Some((
                    now,
                    match t {
                        Transition::Up => "up",
                        Transition::Down => "down (probes unanswered)",
                        Transition::BfdDown => "down (BFD)",
                    },
                ));
                let state = p.last_transition.map_or("", |t| t.1);
                let msg = format!("path {} to {}: {state}", p.name, p.peer_name);
                tracing::info!(path = %p.name, peer = %p.peer_name, state, "{msg}");
                crate::events::emit("path", msg, serde_json::json!({ "path": p.name, "peer": p.peer_name, "state": state }));
            }
            changed |= was != p.monitor.usable();
        }
        // The health after each recent failover, once AFTER has passed
        // (by name: path names are unique, and survive a reload).
        for i in 0..self.events.len() {
            let e = &self.events[i];
            if e.after.is_none() && now.saturating_sub(e.at) >= AFTER {
                let after = (self.health_of(&e.from, now), self.health_of(&e.to, now));
                self.events[i].after = Some(after);
            }
        }
        // Choices: at once on a state change, else every few milliseconds.
        if changed || now.saturating_sub(self.last_select) >= Duration::from_millis(5) {
            self.last_select = now;
            self.reselect(now);
            self.steer_handshakes(tunnel);
        }
        if self.dirty {
            work = true;
            self.publish();
        }
        self.publisher.reclaim();
        work
    }

    /// Whether rules may choose path `i`: up by its probes and BFD, and
    /// not drained.
    fn usable(&self, i: usize) -> bool {
        self.paths[i].monitor.usable() && !self.drained.contains(&self.paths[i].name)
    }

    /// Takes the path named `name` out of service (`on`) or puts it back.
    /// Draining moves every rule on it to its next best path at once;
    /// undraining lets rules fail back after their hold-down, as after an
    /// outage. Returns the rules still on the path, and whether each of
    /// the path's peer's other paths is usable.
    pub fn drain(&mut self, name: &str, on: bool) -> Result<Value, String> {
        let Some(i) = self.paths.iter().position(|p| p.name == name) else {
            let known: Vec<&str> = self.paths.iter().map(|p| p.name.as_str()).collect();
            return Err(format!("no path named {name:?}; paths: {}", if known.is_empty() { "none".into() } else { known.join(", ") }));
        };
        let changed = if on { self.drained.insert(name.to_owned()) } else { self.drained.remove(name) };
        let now = self.now(Instant::now());
        self.reselect(now);
        if self.dirty {
            self.publish();
        }
        let p = &self.paths[i];
        let still: Vec<&str> = self.rules_on(p).map(|r| self.rule_names[r].as_str()).collect();
        let others = p.peer.map_or(0, |peer| self.by_peer[peer].iter().filter(|&&j| j != i && self.usable(j)).count());
        let msg = match (on, changed) {
            (true, true) => format!("path {name} drained: no rule chooses it until it is undrained"),
            (true, false) => format!("path {name} was already drained"),
            (false, true) => format!("path {name} undrained: rules may fail back to it after their hold-down"),
            (false, false) => format!("path {name} was not drained"),
        };
        if changed {
            tracing::warn!(path = name, drained = on, "{msg}");
            crate::events::emit("drain", msg.clone(), json!({ "path": name, "drained": on, "rules_still_on_path": still }));
        }
        Ok(json!({ "ok": true, "path": name, "drained": on, "changed": changed, "message": msg,
            "rules_still_on_path": still, "other_usable_paths": others }))
    }

    /// The rules whose traffic takes path `p` now.
    fn rules_on<'a>(&'a self, p: &'a Path) -> impl Iterator<Item = usize> + 'a {
        let choices = p.peer.map_or(&[][..], |peer| &self.choices[peer][..]);
        choices.iter().enumerate().filter(move |(_, c)| c.cur == Some(Some(p.slot))).map(|(r, _)| r)
    }

    /// The names of the drained paths.
    pub fn drained(&self) -> impl Iterator<Item = &str> {
        self.drained.iter().map(String::as_str)
    }

    /// The health of the path named `name` (None: "drop", or gone).
    fn health_of(&self, name: &str, now: Duration) -> Option<f64> {
        self.paths.iter().find(|p| p.name == name).map(|p| p.monitor.figures(now).health)
    }

    fn view(&self, i: usize, now: Duration) -> PathView {
        let p = &self.paths[i];
        let (rtt, loss_pct) = p.monitor.recent(self.sla_probes, now);
        PathView {
            usable: self.usable(i),
            usable_since: p.monitor.usable_since,
            rtt,
            loss_pct,
            jitter: p.monitor.figures_jitter(),
            cost: p.cost,
            bandwidth_mbps: p.bandwidth_mbps,
        }
    }

    fn reselect(&mut self, now: Duration) {
        for peer in 0..self.by_peer.len() {
            if self.by_peer[peer].is_empty() {
                continue;
            }
            let views: Vec<PathView> = self.by_peer[peer].iter().map(|&i| self.view(i, now)).collect();
            let margin = 1.0 - self.select.hysteresis.clamp(0.0, 0.9);
            for r in 0..self.rules[peer].len() {
                let cur = self.choices[peer][r].cur;
                let mut rule_views = views.clone();
                for (slot, v) in rule_views.iter_mut().enumerate() {
                    let good = &mut self.choices[peer][r].good_since[slot];
                    match (meets(v, &self.rules[peer][r].sla, margin), *good) {
                        (true, None) => *good = Some(now),
                        (false, Some(_)) => *good = None,
                        _ => {}
                    }
                    v.usable_since = v.usable_since.max(*good).filter(|_| good.is_some());
                }
                if let Some((next, reason)) = select(&self.rules[peer][r], &rule_views, cur, &self.select, now) {
                    let name = |c: Option<Option<usize>>| match c {
                        None => "none".to_owned(),
                        Some(None) => "drop".to_owned(),
                        Some(Some(s)) => self.paths[self.by_peer[peer][s]].name.clone(),
                    };
                    let (from, to) = (name(cur), name(Some(next)));
                    let reason = if reason == Reason::PathDown && self.drained.contains(&from) { "drained" } else { reason.name() };
                    if reason != Reason::Initial.name() {
                        let before = (self.health_of(&from, now), self.health_of(&to, now));
                        if self.events.len() == EVENTS {
                            self.events.pop_front();
                        }
                        self.events.push_back(FailoverEvent {
                            at: now,
                            rule: self.rule_names[r].clone(),
                            from: from.clone(),
                            to: to.clone(),
                            reason,
                            before,
                            after: None,
                        });
                        *self.failovers.entry((self.rule_names[r].clone(), from.clone(), to.clone(), reason)).or_default() += 1;
                        let msg = format!("rule {} moved from path {from} to {to} ({reason})", self.rule_names[r]);
                        tracing::warn!(rule = %self.rule_names[r], from = %from, to = %to, reason, "{msg}");
                        crate::events::emit(
                            "failover",
                            msg,
                            serde_json::json!({ "rule": self.rule_names[r], "from": from, "to": to, "reason": reason }),
                        );
                    }
                    let c = &mut self.choices[peer][r];
                    c.cur = Some(next);
                    c.since = now;
                    self.dirty = true;
                }
            }
        }
    }

    /// Handshakes go by the default rule's path when the peer's endpoint is on a path that is not usable.
    fn steer_handshakes(&self, tunnel: &mut TunnelControl) {
        for (peer, idx) in self.by_peer.iter().enumerate() {
            if idx.is_empty() {
                continue;
            }
            let cur = tunnel.endpoint(peer);
            let ok = idx.iter().any(|&i| Some(self.paths[i].endpoint) == cur && self.usable(i));
            if ok {
                continue;
            }
            let want = match self.choices[peer].first().and_then(|c| c.cur).flatten() {
                Some(s) if self.usable(idx[s]) => Some(self.paths[idx[s]].endpoint),
                _ => idx.iter().find(|&&i| self.usable(i)).map(|&i| self.paths[i].endpoint),
            };
            if let Some(e) = want.or(cur.is_none().then(|| self.paths[idx[0]].endpoint)) {
                if Some(e) != cur {
                    tunnel.set_endpoint(peer, e);
                }
            }
        }
    }

    fn on_reply<P: Packet>(&mut self, h: &punt::Header, pkt: P, now: Duration) {
        let Some(r) = pkt.data().get(h.l2_len as usize..).and_then(probe::parse_reply) else { return };
        let Some(&i) = self.by_peer.get(r.peer as usize).and_then(|v| v.get(r.path as usize)) else { return };
        let rtt = Duration::from_secs_f64(r.received.saturating_sub(r.sent) as f64 / self.hz.max(1) as f64);
        if !r.via_icmp && !self.patronus[r.peer as usize] {
            self.patronus[r.peer as usize] = true;
            // Its sessions may now spread over several source ports.
            self.dirty = true;
            tracing::info!(peer = %self.paths[i].peer_name, "peer {} answers probes as Patronus does: probing it plainly", self.paths[i].peer_name);
        }
        let p = &mut self.paths[i];
        p.replies += 1;
        p.via_icmp = r.via_icmp;
        p.rtt_hist.observe(rtt.as_secs_f64());
        p.monitor.answered(r.seq, rtt, now);
    }
}

/// What a rule matches, in words: "category voip; ports 5060".
fn describe(r: &PolicyOpts) -> String {
    let mut parts = Vec::new();
    for (what, list) in [
        ("application", &r.application),
        ("category", &r.category),
        ("source", &r.source),
        ("destination", &r.destination),
        ("ports", &r.ports),
        ("protocol", &r.protocol),
    ] {
        if !list.is_empty() {
            parts.push(format!("{what} {}", list.join(",")));
        }
    }
    if !r.dscp.is_empty() {
        parts.push(format!("dscp {}", r.dscp.iter().map(|d| d.to_string()).collect::<Vec<_>>().join(",")));
    }
    if parts.is_empty() {
        "everything".into()
    } else {
        parts.join("; ")
    }
}
