//! Path measurement and selection, sans IO (the control thread passes
//! the time; tests drive it with a virtual clock).
//!
//! - [`Monitor`] keeps one path's probes: RTT percentiles over a sliding
//!   window (hdrhistogram), RFC 3550 jitter, loss and availability, the
//!   up/down state (down after `down_after` probe intervals without an
//!   answer, up after `up_after` answers in a row) and flap damping.
//! - [`select`] picks the path for one policy rule from the paths' views:
//!   sticky, with SLA hysteresis and a failback hold-down.
//!
//! Health score (0–100, docs/PATHS.md): 0 while the path is down or
//! suppressed; otherwise `100 − min(50, 2·loss%) − min(30, p95 ms / 10) −
//! min(20, jitter ms / 2)`, and at least 1.

use std::collections::VecDeque;
use std::time::Duration;

/// How a path is probed and judged.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ProbeConf {
    pub interval: Duration,
    /// Probes the statistics cover.
    pub window: usize,
    /// Down after this many intervals with no answer.
    pub down_after: u32,
    /// Up again after this many answers in a row.
    pub up_after: u32,
    /// A probe unanswered this long counts as lost.
    pub lost_after: Duration,
    pub damping: DampingConf,
}

impl Default for ProbeConf {
    fn default() -> Self {
        ProbeConf {
            interval: Duration::from_millis(100),
            window: 100,
            down_after: 3,
            up_after: 3,
            lost_after: Duration::from_secs(1),
            damping: DampingConf::default(),
        }
    }
}

/// Flap damping (after RFC 2439): every down event adds `penalty`, which
/// decays with `half_life`; past `suppress` the path is not used until the
/// penalty falls below `reuse`. `max_penalty` bounds how long that lasts.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct DampingConf {
    pub penalty: f64,
    pub suppress: f64,
    pub reuse: f64,
    pub max_penalty: f64,
    pub half_life: Duration,
}

impl Default for DampingConf {
    fn default() -> Self {
        DampingConf { penalty: 1000.0, suppress: 2000.0, reuse: 750.0, max_penalty: 4000.0, half_life: Duration::from_secs(5) }
    }
}

/// Why a path changed state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transition {
    /// No probe answered for `down_after` intervals.
    Down,
    /// BFD declared the path down.
    BfdDown,
    Up,
}

/// Figures over the window.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Figures {
    pub up: bool,
    pub suppressed: bool,
    /// Seconds; `None` before the first answer in the window.
    pub rtt_p50: Option<f64>,
    pub rtt_p95: Option<f64>,
    pub rtt_p99: Option<f64>,
    pub jitter: f64,
    pub loss_pct: f64,
    pub availability_pct: f64,
    pub health: f64,
    pub penalty: f64,
}

struct Sent {
    seq: u32,
    at: Duration,
    rtt: Option<Duration>,
}

pub struct Monitor {
    pub conf: ProbeConf,
    seq: u32,
    next_probe: Duration,
    window: VecDeque<Sent>,
    last_answer: Option<Duration>,
    answers_in_row: u32,
    pub up: bool,
    /// BFD tied to this path says down.
    pub bfd_down: bool,
    /// Since when the path has been usable (up and not suppressed).
    pub usable_since: Option<Duration>,
    started: Duration,
    state_since: Duration,
    up_time: Duration,
    jitter: f64,
    last_rtt: Option<f64>,
    penalty: f64,
    penalty_at: Duration,
    suppressed: bool,
    pub downs: u64,
}

impl Monitor {
    /// A path that starts down (it must answer `up_after` probes first).
    pub fn new(conf: ProbeConf, now: Duration) -> Monitor {
        Monitor {
            conf,
            seq: 0,
            next_probe: now,
            window: VecDeque::with_capacity(conf.window + 1),
            last_answer: None,
            answers_in_row: 0,
            up: false,
            bfd_down: false,
            usable_since: None,
            started: now,
            state_since: now,
            up_time: Duration::ZERO,
            jitter: 0.0,
            last_rtt: None,
            penalty: 0.0,
            penalty_at: now,
            suppressed: false,
            downs: 0,
        }
    }

    /// The sequence number of a probe to send now, if one is due.
    pub fn due(&mut self, now: Duration) -> Option<u32> {
        if now < self.next_probe {
            return None;
        }
        // Keep the cadence; after a stall, restart it from now.
        self.next_probe = if now.saturating_sub(self.next_probe) > self.conf.interval { now } else { self.next_probe } + self.conf.interval;
        self.seq = self.seq.wrapping_add(1);
        if self.window.len() >= self.conf.window {
            self.window.pop_front();
        }
        self.window.push_back(Sent { seq: self.seq, at: now, rtt: None });
        Some(self.seq)
    }

    pub fn next_probe(&self) -> Duration {
        self.next_probe
    }

    /// An answer to probe `seq` with its round-trip time, seen at `now`.
    pub fn answered(&mut self, seq: u32, rtt: Duration, now: Duration) {
        let Some(s) = self.window.iter_mut().rev().find(|s| s.seq == seq) else { return };
        if s.rtt.is_some() {
            return; // a duplicate
        }
        s.rtt = Some(rtt);
        let r = rtt.as_secs_f64();
        if let Some(prev) = self.last_rtt {
            // RFC 3550 §6.4.1: J += (|D| - J) / 16.
            self.jitter += ((r - prev).abs() - self.jitter) / 16.0;
        }
        self.last_rtt = Some(r);
        self.last_answer = Some(now);
        self.answers_in_row += 1;
    }

    fn decay(&mut self, now: Duration) {
        let dt = now.saturating_sub(self.penalty_at).as_secs_f64();
        self.penalty_at = now;
        if self.penalty > 0.0 {
            self.penalty *= 0.5f64.powf(dt / self.conf.damping.half_life.as_secs_f64().max(1e-3));
        }
        let d = self.conf.damping;
        if self.suppressed && self.penalty < d.reuse {
            self.suppressed = false;
        } else if !self.suppressed && self.penalty >= d.suppress {
            self.suppressed = true;
        }
    }

    fn set_up(&mut self, up: bool, now: Duration) {
        if self.up {
            self.up_time += now.saturating_sub(self.state_since);
        }
        self.up = up;
        self.state_since = now;
        if !up {
            self.downs += 1;
            self.answers_in_row = 0;
            let d = self.conf.damping;
            self.penalty = (self.penalty + d.penalty).min(d.max_penalty);
        }
    }

    /// Runs the state machine; returns a change of state.
    pub fn tick(&mut self, now: Duration) -> Option<Transition> {
        self.decay(now);
        let silent_for = now.saturating_sub(self.last_answer.unwrap_or(self.started).max(self.state_since));
        let change = if self.up && self.bfd_down {
            self.set_up(false, now);
            Some(Transition::BfdDown)
        } else if self.up && silent_for > self.conf.interval * self.conf.down_after {
            self.set_up(false, now);
            Some(Transition::Down)
        } else if !self.up && !self.bfd_down && self.answers_in_row >= self.conf.up_after {
            self.set_up(true, now);
            Some(Transition::Up)
        } else {
            None
        };
        self.decay(now);
        let usable = self.usable();
        match (usable, self.usable_since) {
            (true, None) => self.usable_since = Some(now),
            (false, Some(_)) => self.usable_since = None,
            _ => {}
        }
        change
    }

    /// RFC 3550 jitter so far, seconds.
    pub fn figures_jitter(&self) -> f64 {
        self.jitter
    }

    /// Up and not suppressed by damping.
    pub fn usable(&self) -> bool {
        self.up && !self.suppressed
    }

    pub fn figures(&self, now: Duration) -> Figures {
        let mut h = hdrhistogram::Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("valid bounds");
        let (mut judged, mut lost) = (0u32, 0u32);
        for s in &self.window {
            match s.rtt {
                Some(r) => {
                    let _ = h.record((r.as_micros() as u64).clamp(1, 60_000_000));
                    judged += 1;
                }
                None if now.saturating_sub(s.at) >= self.conf.lost_after => {
                    judged += 1;
                    lost += 1;
                }
                None => {}
            }
        }
        let q = |p: f64| (h.len() > 0).then(|| h.value_at_quantile(p) as f64 / 1e6);
        let loss_pct = if judged == 0 { 0.0 } else { 100.0 * lost as f64 / judged as f64 };
        let total = now.saturating_sub(self.started);
        let up_time = self.up_time + if self.up { now.saturating_sub(self.state_since) } else { Duration::ZERO };
        let availability_pct = if total.is_zero() { 0.0 } else { 100.0 * up_time.as_secs_f64() / total.as_secs_f64() };
        let p95 = q(0.95);
        let health = if !self.usable() {
            0.0
        } else {
            let p95_ms = p95.unwrap_or(0.0) * 1e3;
            (100.0 - (2.0 * loss_pct).min(50.0) - (p95_ms / 10.0).min(30.0) - (self.jitter * 1e3 / 2.0).min(20.0)).max(1.0)
        };
        Figures {
            up: self.up,
            suppressed: self.suppressed,
            rtt_p50: q(0.5),
            rtt_p95: p95,
            rtt_p99: q(0.99),
            jitter: self.jitter,
            loss_pct,
            availability_pct,
            health,
            penalty: self.penalty,
        }
    }

    /// Loss over the last `n` judged probes (reacts faster than the window).
    pub fn recent(&self, n: usize, now: Duration) -> (Option<f64>, f64) {
        let mut rtts = Vec::with_capacity(n);
        let (mut judged, mut lost) = (0u32, 0u32);
        for s in self.window.iter().rev() {
            if judged as usize >= n {
                break;
            }
            match s.rtt {
                Some(r) => {
                    rtts.push(r.as_secs_f64());
                    judged += 1;
                }
                None if now.saturating_sub(s.at) >= self.conf.lost_after => {
                    judged += 1;
                    lost += 1;
                }
                None => {}
            }
        }
        rtts.sort_by(|a, b| a.total_cmp(b));
        let median = rtts.get(rtts.len() / 2).copied();
        (median, if judged == 0 { 0.0 } else { 100.0 * lost as f64 / judged as f64 })
    }
}

/// How a rule orders its candidate paths.
#[derive(Clone, Debug, PartialEq)]
pub enum Strategy {
    LowestLatency,
    LowestLoss,
    HighestBandwidth,
    LeastCost,
    /// Path indexes, most preferred first; paths not listed are not used.
    Preference(Vec<usize>),
}

/// What a rule does when no path meets its SLA.
#[derive(Clone, Debug, PartialEq)]
pub enum Fallback {
    BestAvailable,
    Path(usize),
    Drop,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct Sla {
    pub max_latency: Option<Duration>,
    pub max_loss_pct: Option<f64>,
    pub max_jitter: Option<Duration>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct RuleConf {
    pub strategy: Strategy,
    pub sla: Sla,
    pub fallback: Fallback,
}

/// Selection tuning shared by every rule.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SelectConf {
    /// A path must have been usable this long before flows fail back to it.
    pub hold_down: Duration,
    /// SLA margin, 0..1: a path that broke the SLA must come back under
    /// `(1 - hysteresis) ×` the thresholds to be chosen again, and a
    /// lower-latency or lower-loss path must beat the current one by it.
    pub hysteresis: f64,
}

impl Default for SelectConf {
    fn default() -> Self {
        SelectConf { hold_down: Duration::from_secs(10), hysteresis: 0.2 }
    }
}

/// One path as selection sees it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PathView {
    pub usable: bool,
    pub usable_since: Option<Duration>,
    /// Recent median RTT and loss (seconds, percent), jitter (seconds).
    pub rtt: Option<f64>,
    pub loss_pct: f64,
    pub jitter: f64,
    pub cost: u32,
    pub bandwidth_mbps: u32,
}

/// Why a rule's traffic moved.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reason {
    /// Its path went down (probes or BFD) or was suppressed.
    PathDown,
    /// Its path broke the rule's SLA.
    Sla,
    /// A better path has been good for the hold-down time.
    Failback,
    /// The first choice (not counted as a failover).
    Initial,
}

impl Reason {
    pub fn name(self) -> &'static str {
        match self {
            Reason::PathDown => "path_down",
            Reason::Sla => "sla",
            Reason::Failback => "failback",
            Reason::Initial => "initial",
        }
    }
}

/// Whether a path meets an SLA with its thresholds scaled by `scale`.
pub fn meets(v: &PathView, sla: &Sla, scale: f64) -> bool {
    v.usable
        && sla.max_latency.is_none_or(|m| v.rtt.is_some_and(|r| r <= m.as_secs_f64() * scale))
        && sla.max_loss_pct.is_none_or(|m| v.loss_pct <= m * scale)
        && sla.max_jitter.is_none_or(|m| v.jitter <= m.as_secs_f64() * scale)
}

/// The candidate paths in the rule's order of preference.
fn ranked(rule: &RuleConf, paths: &[PathView]) -> Vec<usize> {
    let mut idx: Vec<usize> = match &rule.strategy {
        Strategy::Preference(order) => return order.iter().copied().filter(|&i| i < paths.len()).collect(),
        _ => (0..paths.len()).collect(),
    };
    let key = |i: usize| -> (f64, u32) {
        let v = &paths[i];
        match rule.strategy {
            Strategy::LowestLatency => (v.rtt.unwrap_or(f64::MAX), v.cost),
            Strategy::LowestLoss => (v.loss_pct, v.cost),
            Strategy::HighestBandwidth => (-(v.bandwidth_mbps as f64), v.cost),
            _ => (v.cost as f64, u32::MAX - v.bandwidth_mbps),
        }
    };
    idx.sort_by(|&a, &b| key(a).partial_cmp(&key(b)).unwrap_or(std::cmp::Ordering::Equal).then(a.cmp(&b)));
    idx
}

/// Smallest RTT gain (seconds) worth moving a flow for: below it,
/// differences are measurement noise (sub-millisecond LAN-like paths
/// would otherwise swap on every jitter).
pub const LATENCY_GAIN_FLOOR: f64 = 0.002;

/// Whether `b` is worth moving to from `cur` (both usable) under the strategy.
fn clearly_better(rule: &RuleConf, paths: &[PathView], b: usize, cur: usize, h: f64) -> bool {
    let (vb, vc) = (&paths[b], &paths[cur]);
    match rule.strategy {
        Strategy::LowestLatency => match (vb.rtt, vc.rtt) {
            (Some(rb), Some(rc)) => rb < rc * (1.0 - h) && rc - rb >= LATENCY_GAIN_FLOOR,
            _ => false,
        },
        Strategy::LowestLoss => vb.loss_pct + 1.0 < vc.loss_pct * (1.0 - h),
        // Static attributes: the ranking itself is stable.
        _ => true,
    }
}

/// The path for one rule now: the current choice (`cur`, a path index or
/// `None`) is kept while it is usable and meets the SLA. Returns the new
/// choice (`Some(i)` a path, `None` drop) and why, when it changes.
pub fn select(
    rule: &RuleConf,
    paths: &[PathView],
    cur: Option<Option<usize>>,
    conf: &SelectConf,
    now: Duration,
) -> Option<(Option<usize>, Reason)> {
    let order = ranked(rule, paths);
    let h = conf.hysteresis.clamp(0.0, 0.9);
    let settled = |i: usize| paths[i].usable_since.is_some_and(|s| now.saturating_sub(s) >= conf.hold_down);
    let cur_path = cur.flatten().filter(|&i| i < paths.len());
    if let Some(c) = cur_path {
        if meets(&paths[c], &rule.sla, 1.0) {
            let pos_c = order.iter().position(|&i| i == c);
            let better = order
                .iter()
                .take_while(|&&i| Some(i) != Some(c) || pos_c.is_none())
                .copied()
                .find(|&i| i != c && settled(i) && meets(&paths[i], &rule.sla, 1.0 - h) && clearly_better(rule, paths, i, c, h));
            return better.map(|b| (Some(b), Reason::Failback));
        }
    }
    let reason = match (cur, cur_path) {
        (None, _) => Reason::Initial,
        (Some(_), Some(c)) if paths[c].usable => Reason::Sla,
        _ => Reason::PathDown,
    };
    // A path that broke the SLA must clear it by the margin to be taken
    // (again); settled paths before fresh ones.
    let scale = |i: usize| if Some(i) == cur_path { 1.0 - h } else { 1.0 };
    let meeting: Vec<usize> = order.iter().copied().filter(|&i| meets(&paths[i], &rule.sla, scale(i))).collect();
    let pick = meeting.iter().copied().find(|&i| settled(i)).or_else(|| meeting.first().copied());
    let next = match pick {
        Some(p) => Some(p),
        None => match rule.fallback {
            Fallback::BestAvailable => {
                // Nothing meets the SLA: stay if still usable, else the best usable.
                match cur_path.filter(|&c| paths[c].usable) {
                    Some(c) => Some(c),
                    None => match order.iter().copied().find(|&i| paths[i].usable) {
                        Some(i) => Some(i),
                        None => return None, // nothing usable: keep what we have
                    },
                }
            }
            Fallback::Path(p) => Some(p),
            Fallback::Drop => None,
        },
    };
    (Some(next) != cur).then_some((next, reason))
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    fn ten_ms() -> ProbeConf {
        ProbeConf { interval: 10 * MS, window: 100, ..ProbeConf::default() }
    }

    /// Probes every `interval`, answered after `rtt` while `alive(t)`.
    fn drive(
        m: &mut Monitor,
        from: Duration,
        to: Duration,
        rtt: Duration,
        alive: impl Fn(Duration) -> bool,
    ) -> Vec<(Duration, Transition)> {
        let mut pending: Vec<(u32, Duration)> = Vec::new();
        let mut out = Vec::new();
        let mut t = from;
        while t < to {
            if let Some(seq) = m.due(t) {
                if alive(t) {
                    pending.push((seq, t + rtt));
                }
            }
            pending.retain(|&(seq, at)| {
                if at <= t {
                    m.answered(seq, rtt, t);
                    false
                } else {
                    true
                }
            });
            if let Some(x) = m.tick(t) {
                out.push((t, x));
            }
            t += MS;
        }
        out
    }

    /// Asked at a time before its last probe (a caller's clock that lags
    /// the loop's), the monitor answers instead of panicking.
    #[test]
    fn figures_for_an_earlier_time_do_not_panic() {
        let mut m = Monitor::new(ten_ms(), Duration::ZERO);
        drive(&mut m, Duration::ZERO, 1000 * MS, 2 * MS, |_| true);
        // Up since about 25 ms: asked at 1 ms.
        let f = m.figures(MS);
        assert!(f.up && (0.0..=100.0).contains(&f.availability_pct), "{f:?}");
    }

    #[test]
    fn up_after_three_answers_down_within_three_intervals() {
        let mut m = Monitor::new(ten_ms(), Duration::ZERO);
        let ev = drive(&mut m, Duration::ZERO, 1000 * MS, 2 * MS, |_| true);
        assert_eq!(ev.len(), 1);
        assert_eq!(ev[0].1, Transition::Up);
        assert!(ev[0].0 <= 25 * MS, "{ev:?}");
        let cut = 1000 * MS;
        assert!((m.figures(cut).rtt_p50.unwrap() - 0.002).abs() < 1e-4);
        let ev = drive(&mut m, cut, 2000 * MS, 2 * MS, |t| t < cut);
        assert_eq!(ev[0].1, Transition::Down);
        let took = ev[0].0 - cut;
        assert!(took <= 31 * MS + 2 * MS, "down after {took:?}");
        let f = m.figures(2000 * MS);
        assert_eq!(f.health, 0.0);
        assert!(f.loss_pct > 90.0, "{f:?}");
    }

    #[test]
    fn figures_jitter_loss_and_health() {
        let mut m = Monitor::new(ProbeConf { interval: 100 * MS, window: 50, ..ProbeConf::default() }, Duration::ZERO);
        let mut t = Duration::ZERO;
        for i in 0..60u32 {
            let seq = m.due(t).unwrap();
            // Every 10th probe lost; RTT alternates 10 ms / 20 ms.
            if i % 10 != 9 {
                m.answered(seq, if i % 2 == 0 { 10 * MS } else { 20 * MS }, t + 5 * MS);
            }
            m.tick(t + 5 * MS);
            t += 100 * MS;
        }
        let f = m.figures(t + 2000 * MS);
        assert!((f.loss_pct - 10.0).abs() < 0.1, "{f:?}");
        // Jitter converges to the 10 ms step.
        assert!(f.jitter > 0.008 && f.jitter <= 0.010, "{f:?}");
        assert!((f.rtt_p99.unwrap() - 0.020).abs() < 1e-4);
        // 100 - 2·10 - 2 (p95 20 ms) - ~5 (jitter ~9.7 ms / 2)
        assert!(f.health > 72.0 && f.health < 74.0, "{f:?}");
        assert!(f.availability_pct > 90.0);
    }

    #[test]
    fn damping_suppresses_a_flapping_path() {
        let mut m = Monitor::new(ten_ms(), Duration::ZERO);
        drive(&mut m, Duration::ZERO, 500 * MS, MS, |_| true);
        assert!(m.usable());
        // 100 ms down, 100 ms up, for 2 s.
        let start = 500 * MS;
        drive(&mut m, start, 2500 * MS, MS, |t| ((t - start).as_millis() / 100) % 2 == 1);
        assert!(m.downs >= 5, "{}", m.downs);
        drive(&mut m, 2500 * MS, 3000 * MS, MS, |_| true);
        assert!(m.up && !m.usable(), "up but suppressed");
        // The penalty (capped at 4000) decays below 750 after ~12 s.
        drive(&mut m, 3000 * MS, 20_000 * MS, MS, |_| true);
        assert!(m.usable());
    }

    fn view(rtt_ms: f64, cost: u32, bw: u32, since: u64) -> PathView {
        PathView {
            usable: true,
            usable_since: Some(Duration::from_secs(since)),
            rtt: Some(rtt_ms / 1e3),
            loss_pct: 0.0,
            jitter: 0.0,
            cost,
            bandwidth_mbps: bw,
        }
    }

    #[test]
    fn strategies_order_paths() {
        let paths = [view(20.0, 100, 10, 0), view(5.0, 10, 100, 0), view(10.0, 1, 1000, 0)];
        let rule = |s| RuleConf { strategy: s, sla: Sla::default(), fallback: Fallback::BestAvailable };
        let c = SelectConf::default();
        let now = Duration::from_secs(100);
        assert_eq!(select(&rule(Strategy::LowestLatency), &paths, None, &c, now), Some((Some(1), Reason::Initial)));
        assert_eq!(select(&rule(Strategy::LeastCost), &paths, None, &c, now), Some((Some(2), Reason::Initial)));
        assert_eq!(select(&rule(Strategy::HighestBandwidth), &paths, None, &c, now), Some((Some(2), Reason::Initial)));
        assert_eq!(select(&rule(Strategy::Preference(vec![0, 2])), &paths, None, &c, now), Some((Some(0), Reason::Initial)));
        // Sticky: nothing changes while the choice is good.
        assert_eq!(select(&rule(Strategy::LowestLatency), &paths, Some(Some(1)), &c, now), None);
    }

    #[test]
    fn sla_breach_moves_then_fails_back_after_hold_down_with_hysteresis() {
        let sla = Sla { max_latency: Some(30 * MS), ..Sla::default() };
        let rule = RuleConf { strategy: Strategy::Preference(vec![0, 1]), sla, fallback: Fallback::BestAvailable };
        let c = SelectConf { hold_down: Duration::from_secs(3), hysteresis: 0.2 };
        let mut p = [view(5.0, 100, 10, 0), view(8.0, 10, 100, 0)];
        let now = Duration::from_secs(100);
        assert_eq!(select(&rule, &p, Some(Some(0)), &c, now), None);
        p[0].rtt = Some(0.040);
        assert_eq!(select(&rule, &p, Some(Some(0)), &c, now), Some((Some(1), Reason::Sla)));
        // Back under the SLA but not under 80% of it: stays.
        p[0].rtt = Some(0.027);
        assert_eq!(select(&rule, &p, Some(Some(1)), &c, now), None);
        // Well under, but usable again only since 1 s: stays (hold-down).
        p[0].rtt = Some(0.005);
        p[0].usable_since = Some(now - Duration::from_secs(1));
        assert_eq!(select(&rule, &p, Some(Some(1)), &c, now), None);
        assert_eq!(select(&rule, &p, Some(Some(1)), &c, now + Duration::from_secs(2)), Some((Some(0), Reason::Failback)));
    }

    #[test]
    fn down_path_fails_over_at_once_and_fallbacks_apply() {
        let sla = Sla { max_latency: Some(30 * MS), ..Sla::default() };
        let mut p = [view(5.0, 100, 10, 0), view(50.0, 10, 100, 0)];
        let c = SelectConf::default();
        let now = Duration::from_secs(100);
        let rule = |f| RuleConf { strategy: Strategy::LowestLatency, sla: sla.clone(), fallback: f };
        p[0].usable = false;
        p[0].usable_since = None;
        // Path 1 breaks the SLA too: the fallback decides.
        assert_eq!(select(&rule(Fallback::BestAvailable), &p, Some(Some(0)), &c, now), Some((Some(1), Reason::PathDown)));
        assert_eq!(select(&rule(Fallback::Drop), &p, Some(Some(0)), &c, now), Some((None, Reason::PathDown)));
        assert_eq!(select(&rule(Fallback::Path(1)), &p, Some(Some(0)), &c, now), Some((Some(1), Reason::PathDown)));
        // Nothing usable at all: keep the choice.
        p[1].usable = false;
        assert_eq!(select(&rule(Fallback::BestAvailable), &p, Some(Some(0)), &c, now), None);
    }

    #[test]
    fn lowest_latency_needs_a_clear_gain_to_move() {
        let rule = RuleConf { strategy: Strategy::LowestLatency, sla: Sla::default(), fallback: Fallback::BestAvailable };
        let c = SelectConf { hold_down: Duration::ZERO, hysteresis: 0.2 };
        let now = Duration::from_secs(100);
        let p = [view(10.0, 1, 1, 0), view(9.0, 1, 1, 0)];
        assert_eq!(select(&rule, &p, Some(Some(0)), &c, now), None);
        let p = [view(10.0, 1, 1, 0), view(7.0, 1, 1, 0)];
        assert_eq!(select(&rule, &p, Some(Some(0)), &c, now), Some((Some(1), Reason::Failback)));
    }
}
