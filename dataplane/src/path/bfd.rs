//! A BFD session in asynchronous mode (RFC 5880), sans IO: the caller
//! feeds received control packets with the time and sends what
//! [`Session::poll`] returns. The control thread runs one per configured
//! neighbour; the packets travel in UDP (RFC 5881 single hop, RFC 5883
//! multihop).
//!
//! What is implemented: the full state machine including AdminDown
//! (§6.8.6, §6.8.16), the negotiated transmit interval and detection time
//! with the detect multiplier taken from the remote side (§6.8.4), the
//! 1-second pacing while the session is not Up (§6.8.3), Poll/Final
//! sequences for every timer change (§6.5), and transmit jitter (§6.8.7).
//! Demand mode and the Echo function are not (we advertise no echo).

use std::time::Duration;

use crate::wire::bfd::{diag, Repr, State};

/// Slowest pacing while the session is not Up (RFC 5880 §6.8.3).
pub const SLOW_TX: Duration = Duration::from_secs(1);

/// A session's configured timers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timers {
    pub desired_min_tx: Duration,
    pub required_min_rx: Duration,
    pub detect_mult: u8,
}

impl Default for Timers {
    fn default() -> Self {
        Timers { desired_min_tx: Duration::from_millis(300), required_min_rx: Duration::from_millis(300), detect_mult: 3 }
    }
}

/// A state change, for logs and counters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Change {
    pub from: State,
    pub to: State,
    pub diag: u8,
}

/// Counters of one session.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SessionStats {
    pub rx: u64,
    pub tx: u64,
    pub up_events: u64,
    pub down_events: u64,
    /// Packets for this session that were discarded (AdminDown here).
    pub ignored: u64,
    pub polls_started: u64,
    pub polls_completed: u64,
}

fn us(d: Duration) -> u32 {
    d.as_micros().min(u32::MAX as u128) as u32
}

fn from_us(v: u32) -> Duration {
    Duration::from_micros(v as u64)
}

pub struct Session {
    pub timers: Timers,
    pub local_disc: u32,
    pub remote_disc: u32,
    pub state: State,
    pub remote_state: State,
    pub diag: u8,
    pub remote_diag: u8,
    /// What the remote last asked for.
    pub remote_min_rx: Duration,
    pub remote_desired_tx: Duration,
    pub remote_mult: u8,
    /// The intervals we advertise now.
    adv_tx: Duration,
    adv_rx: Duration,
    /// The intervals in effect (they follow `adv_*` once a Poll completes).
    used_tx: Duration,
    used_rx: Duration,
    /// A Poll Sequence is running: every packet carries P until a Final.
    pub polling: bool,
    /// A packet with F is owed to the remote's Poll.
    owe_final: bool,
    next_tx: Duration,
    /// When the detection time runs out (none before the first packet).
    detect_at: Option<Duration>,
    pub last_change: Duration,
    pub stats: SessionStats,
    rng: u64,
}

impl Session {
    /// A session starting Down; `local_disc` must be non-zero and unique.
    pub fn new(timers: Timers, local_disc: u32, now: Duration) -> Session {
        assert!(local_disc != 0, "discriminator 0 is reserved");
        Session {
            timers,
            local_disc,
            remote_disc: 0,
            state: State::Down,
            remote_state: State::Down,
            diag: diag::NONE,
            remote_diag: diag::NONE,
            remote_min_rx: Duration::from_micros(1),
            remote_desired_tx: Duration::ZERO,
            remote_mult: 0,
            adv_tx: SLOW_TX.max(timers.desired_min_tx),
            adv_rx: timers.required_min_rx,
            used_tx: SLOW_TX.max(timers.desired_min_tx),
            used_rx: timers.required_min_rx,
            polling: false,
            owe_final: false,
            next_tx: now,
            detect_at: None,
            last_change: now,
            stats: SessionStats::default(),
            rng: (local_disc as u64) << 1 | 1,
        }
    }

    /// The transmit interval in use: the slower of ours and the remote's
    /// required receive interval (§6.8.7).
    pub fn tx_interval(&self) -> Duration {
        self.used_tx.max(self.remote_min_rx)
    }

    /// The detection time: the remote's multiplier times the slower of our
    /// required receive interval and its desired transmit interval.
    pub fn detection_time(&self) -> Duration {
        self.used_rx.max(self.remote_desired_tx) * self.remote_mult.max(1) as u32
    }

    pub fn is_up(&self) -> bool {
        self.state == State::Up
    }

    /// Changes the configured timers; a session that is Up runs a Poll
    /// Sequence so both sides agree before they take effect.
    pub fn set_timers(&mut self, t: Timers, now: Duration) {
        self.timers = t;
        self.retime(now);
    }

    /// Takes the session administratively down (or back).
    pub fn set_admin_down(&mut self, down: bool, now: Duration) -> Option<Change> {
        match (down, self.state) {
            (true, State::AdminDown) | (false, State::Down | State::Init | State::Up) => None,
            (true, _) => {
                let c = self.change(State::AdminDown, diag::ADMIN_DOWN, now);
                self.remote_disc = 0;
                Some(c)
            }
            (false, State::AdminDown) => Some(self.change(State::Down, diag::NONE, now)),
        }
    }

    fn change(&mut self, to: State, diag: u8, now: Duration) -> Change {
        let from = self.state;
        self.state = to;
        self.diag = diag;
        self.last_change = now;
        if to == State::Up {
            self.stats.up_events += 1;
        } else if from == State::Up {
            self.stats.down_events += 1;
        }
        self.retime(now);
        // A state change is sent at once, not at the next interval.
        self.next_tx = now;
        Change { from, to, diag }
    }

    /// Recomputes the advertised intervals for the current state (§6.8.3).
    fn retime(&mut self, now: Duration) {
        let tx = if self.state == State::Up { self.timers.desired_min_tx } else { SLOW_TX.max(self.timers.desired_min_tx) };
        let rx = self.timers.required_min_rx;
        if tx == self.adv_tx && rx == self.adv_rx {
            return;
        }
        let up = self.state == State::Up;
        self.adv_tx = tx;
        self.adv_rx = rx;
        // Faster sending and slower detection may apply at once; the rest
        // waits for the Final (§6.8.3).
        if tx < self.used_tx || !up {
            self.used_tx = tx;
        }
        if rx > self.used_rx || !up {
            self.used_rx = rx;
        }
        if up && (self.used_tx != tx || self.used_rx != rx || !self.polling) {
            if !self.polling {
                self.stats.polls_started += 1;
            }
            self.polling = true;
            self.next_tx = now;
        }
    }

    /// A received control packet (already validated by [`Repr::parse`]).
    /// Returns the state change it caused, if any.
    pub fn receive(&mut self, r: &Repr, now: Duration) -> Option<Change> {
        if r.your_disc != 0 && r.your_disc != self.local_disc {
            self.stats.ignored += 1;
            return None;
        }
        self.stats.rx += 1;
        self.remote_disc = r.my_disc;
        self.remote_state = r.state;
        self.remote_diag = r.diag;
        self.remote_min_rx = from_us(r.required_min_rx_us);
        self.remote_desired_tx = from_us(r.desired_min_tx_us);
        self.remote_mult = r.detect_mult;
        if r.final_ && self.polling {
            self.polling = false;
            self.stats.polls_completed += 1;
            self.used_tx = self.adv_tx;
            self.used_rx = self.adv_rx;
        }
        if r.poll {
            self.owe_final = true;
        }
        // A remote that now accepts packets faster than our next one is
        // due gets them at the new pace (FRR lowers its required interval
        // only once Up, by a Poll): waiting out the old one would let its
        // detection time expire.
        let interval = self.tx_interval();
        if self.next_tx > now + interval {
            self.next_tx = now + self.jittered(interval);
        }
        if self.state == State::AdminDown {
            self.stats.ignored += 1;
            return None;
        }
        self.detect_at = Some(now + self.detection_time());
        let to = match (self.state, r.state) {
            (State::Down | State::Init | State::Up, State::AdminDown) if self.state != State::Down => {
                Some((State::Down, diag::NEIGHBOR_DOWN))
            }
            (_, State::AdminDown) => None,
            (State::Down, State::Down) => Some((State::Init, diag::NONE)),
            (State::Down, State::Init) => Some((State::Up, diag::NONE)),
            (State::Init, State::Init | State::Up) => Some((State::Up, diag::NONE)),
            (State::Up, State::Down) => Some((State::Down, diag::NEIGHBOR_DOWN)),
            _ => None,
        };
        to.map(|(s, d)| self.change(s, d, now))
    }

    /// Runs the timers: returns a state change (detection time expired)
    /// and a packet to send now, either or both.
    pub fn poll(&mut self, now: Duration) -> (Option<Change>, Option<Repr>) {
        let mut changed = None;
        if let Some(at) = self.detect_at {
            if now >= at {
                self.detect_at = None;
                if matches!(self.state, State::Init | State::Up) {
                    changed = Some(self.change(State::Down, diag::DETECT_EXPIRED, now));
                }
                // The remote is gone: start over (§6.8.1).
                self.remote_disc = 0;
                self.remote_min_rx = Duration::from_micros(1);
                self.remote_state = State::Down;
            }
        }
        let due = now >= self.next_tx && self.remote_min_rx > Duration::ZERO;
        if !(due || self.owe_final) {
            return (changed, None);
        }
        if due {
            self.next_tx = now + self.jittered(self.tx_interval());
        }
        let final_ = std::mem::take(&mut self.owe_final);
        let pkt = Repr {
            diag: self.diag,
            state: self.state,
            poll: self.polling && !final_,
            final_,
            cpi: false,
            demand: false,
            detect_mult: self.timers.detect_mult,
            my_disc: self.local_disc,
            your_disc: self.remote_disc,
            desired_min_tx_us: us(self.adv_tx),
            required_min_rx_us: us(self.adv_rx),
            required_min_echo_rx_us: 0,
        };
        self.stats.tx += 1;
        (changed, Some(pkt))
    }

    /// When [`Session::poll`] next has something to do.
    pub fn next_event(&self) -> Duration {
        match self.detect_at {
            Some(d) => d.min(self.next_tx),
            None => self.next_tx,
        }
    }

    /// 75–100% of `d` (75–90% with a multiplier of 1), §6.8.7.
    fn jittered(&mut self, d: Duration) -> Duration {
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        let span = if self.timers.detect_mult == 1 { 15 } else { 25 };
        let pct = 75 + (self.rng % (span + 1));
        d * pct as u32 / 100
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    fn fast() -> Timers {
        Timers { desired_min_tx: 50 * MS, required_min_rx: 50 * MS, detect_mult: 3 }
    }

    /// Runs two sessions against each other over a perfect wire for `dur`,
    /// 1 ms steps; `cut` stops delivery in both directions from then on.
    fn run(a: &mut Session, b: &mut Session, from: Duration, dur: Duration, cut: Option<Duration>) -> Vec<(Duration, char, Change)> {
        let mut log = Vec::new();
        let mut t = from;
        while t < from + dur {
            let open = cut.is_none_or(|c| t < c);
            let (ca, pa) = a.poll(t);
            let (cb, pb) = b.poll(t);
            ca.map(|c| log.push((t, 'a', c)));
            cb.map(|c| log.push((t, 'b', c)));
            if open {
                if let Some(p) = pa {
                    b.receive(&p, t).map(|c| log.push((t, 'b', c)));
                }
                if let Some(p) = pb {
                    a.receive(&p, t).map(|c| log.push((t, 'a', c)));
                }
            }
            t += MS;
        }
        log
    }

    #[test]
    fn three_way_handshake_then_fast_timers_by_poll_final() {
        let (mut a, mut b) = (Session::new(fast(), 1, Duration::ZERO), Session::new(fast(), 2, Duration::ZERO));
        let log = run(&mut a, &mut b, Duration::ZERO, 3000 * MS, None);
        assert!(a.is_up() && b.is_up(), "{log:?}");
        // Down -> Init -> Up on one side, Down -> Up on the other.
        assert!(log.iter().any(|(_, _, c)| c.from == State::Down && c.to == State::Init));
        // Both advertised 1 s while not Up, then polled down to 50 ms.
        assert_eq!(a.stats.polls_completed, 1);
        assert_eq!(b.stats.polls_completed, 1);
        assert_eq!(a.tx_interval(), 50 * MS);
        assert_eq!(a.detection_time(), 150 * MS);
        let before = a.stats.tx;
        run(&mut a, &mut b, 3000 * MS, 1000 * MS, None);
        let sent = a.stats.tx - before;
        // 50 ms with 75-100% jitter: 20 to 27 packets a second.
        assert!((20..=27).contains(&sent), "{sent} packets in 1 s");
    }

    #[test]
    fn detects_loss_within_detect_mult_intervals() {
        let (mut a, mut b) = (Session::new(fast(), 1, Duration::ZERO), Session::new(fast(), 2, Duration::ZERO));
        run(&mut a, &mut b, Duration::ZERO, 3000 * MS, None);
        let cut = 3000 * MS;
        let log = run(&mut a, &mut b, cut, 1000 * MS, Some(cut));
        for side in ['a', 'b'] {
            let (t, _, c) = log.iter().find(|(_, s, _)| *s == side).copied().expect("went down");
            assert_eq!((c.to, c.diag), (State::Down, diag::DETECT_EXPIRED));
            assert!(t - cut <= 150 * MS, "{side} detected after {:?}", t - cut);
        }
        assert_eq!(a.remote_disc, 0);
    }

    #[test]
    fn remote_multiplier_sets_our_detection_time() {
        let (mut a, mut b) =
            (Session::new(fast(), 1, Duration::ZERO), Session::new(Timers { detect_mult: 5, ..fast() }, 2, Duration::ZERO));
        run(&mut a, &mut b, Duration::ZERO, 3000 * MS, None);
        assert_eq!(a.detection_time(), 250 * MS);
        assert_eq!(b.detection_time(), 150 * MS);
    }

    #[test]
    fn admin_down_takes_the_remote_down_and_back() {
        let (mut a, mut b) = (Session::new(fast(), 1, Duration::ZERO), Session::new(fast(), 2, Duration::ZERO));
        run(&mut a, &mut b, Duration::ZERO, 3000 * MS, None);
        let c = a.set_admin_down(true, 3000 * MS).unwrap();
        assert_eq!((c.to, c.diag), (State::AdminDown, diag::ADMIN_DOWN));
        let log = run(&mut a, &mut b, 3000 * MS, 100 * MS, None);
        assert!(log.iter().any(|(_, s, c)| *s == 'b' && c.to == State::Down && c.diag == diag::NEIGHBOR_DOWN), "{log:?}");
        // AdminDown is not a failure: b does not time out into another change.
        let log = run(&mut a, &mut b, 3100 * MS, 2000 * MS, None);
        assert!(log.iter().all(|(_, s, _)| *s == 'a'), "{log:?}");
        a.set_admin_down(false, 5100 * MS).unwrap();
        run(&mut a, &mut b, 5100 * MS, 4000 * MS, None);
        assert!(a.is_up() && b.is_up());
    }

    #[test]
    fn packets_for_another_discriminator_are_ignored() {
        let mut a = Session::new(fast(), 1, Duration::ZERO);
        let (_, p) = Session::new(fast(), 2, Duration::ZERO).poll(Duration::ZERO);
        let mut p = p.unwrap();
        p.your_disc = 99;
        p.state = State::Init;
        assert_eq!(a.receive(&p, Duration::ZERO), None);
        assert_eq!(a.stats.ignored, 1);
        assert_eq!(a.state, State::Down);
    }

    #[test]
    fn answers_a_poll_with_a_final_at_once() {
        let mut a = Session::new(fast(), 1, Duration::ZERO);
        let (_, p) = a.poll(Duration::ZERO);
        assert!(p.is_some());
        let mut b = Session::new(fast(), 2, Duration::ZERO);
        let (_, q) = b.poll(Duration::ZERO);
        let mut q = q.unwrap();
        q.poll = true;
        a.receive(&q, MS);
        // The next transmission is not due for ~1 s, but the Final is owed now.
        let (_, f) = a.poll(2 * MS);
        let f = f.expect("a final at once");
        assert!(f.final_ && !f.poll);
    }

    #[test]
    fn a_remote_lowering_its_receive_interval_is_sent_to_at_the_new_pace() {
        // As FRR does: Init with 1 s timers, then Up with 100 ms ones.
        let mut a = Session::new(Timers { desired_min_tx: 100 * MS, required_min_rx: 100 * MS, detect_mult: 3 }, 1, Duration::ZERO);
        let slow = Repr {
            diag: 0,
            state: State::Init,
            poll: false,
            final_: false,
            cpi: false,
            demand: false,
            detect_mult: 3,
            my_disc: 9,
            your_disc: 1,
            desired_min_tx_us: 1_000_000,
            required_min_rx_us: 1_000_000,
            required_min_echo_rx_us: 0,
        };
        assert_eq!(a.receive(&slow, Duration::ZERO).map(|c| c.to), Some(State::Up));
        let (_, p) = a.poll(Duration::ZERO);
        assert!(p.unwrap().poll);
        // The next one is now ~1 s away (the remote asked for 1 s) ...
        assert!(a.poll(200 * MS).1.is_none());
        // ... until the remote lowers its interval.
        let fast = Repr { state: State::Up, poll: true, desired_min_tx_us: 100_000, required_min_rx_us: 100_000, ..slow };
        a.receive(&fast, 210 * MS);
        let (_, f) = a.poll(210 * MS);
        assert!(f.unwrap().final_);
        let sent = (211..=320).filter(|&t| a.poll(t * MS).1.is_some()).count();
        assert_eq!(sent, 1, "one packet within the new 100 ms interval");
    }

    #[test]
    fn slow_pacing_until_up() {
        let mut a = Session::new(fast(), 1, Duration::ZERO);
        let (_, p) = a.poll(Duration::ZERO);
        assert_eq!(p.unwrap().desired_min_tx_us, 1_000_000);
        let (_, p) = a.poll(10 * MS);
        assert!(p.is_none(), "paced at ~1 s while down");
    }
}
