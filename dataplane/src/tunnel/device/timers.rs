//! Session timers: rekey, keepalive, expiry, and the promotion of a confirmed responder session.

use super::super::*;
use super::*;
use std::time::Duration;

impl Device {
    /// Promotes a responder's session once a worker confirmed it.
    pub(super) fn rotate(&mut self, i: usize) {
        let p = &mut self.peers[i];
        if p.next.as_ref().is_some_and(|s| s.confirmed()) {
            let old = p.previous.take();
            p.previous = p.current.take();
            p.current = p.next.take();
            self.drop_session(old);
            self.changed = true;
        }
    }

    /// Runs peer `i`'s timers at `now`.
    pub fn timers(&mut self, i: usize, now: Duration) -> Option<TimerAction> {
        if self.peers[i].removed {
            return None;
        }
        self.rotate(i);
        let p = &mut self.peers[i];
        let newest = [&p.next, &p.current].into_iter().flatten().map(|s| s.born).max();
        if newest.is_some_and(|b| now.saturating_sub(b) >= REJECT_AFTER_TIME * 3) {
            self.clear_sessions(i);
            return Some(TimerAction::KeysErased);
        }
        let p = &mut self.peers[i];
        if let Some(pend) = &p.pending {
            if now.saturating_sub(pend.sent) < REKEY_TIMEOUT + pend.jitter {
                return None;
            }
            if now.saturating_sub(pend.started) >= REKEY_ATTEMPT_TIME {
                let index = pend.init.local_index;
                p.pending = None;
                p.data_unanswered = None;
                self.free(index);
                return Some(TimerAction::GaveUp);
            }
            return Some(TimerAction::Initiate);
        }
        if p.data_unanswered.is_some_and(|t| now.saturating_sub(t) >= KEEPALIVE_TIMEOUT + REKEY_TIMEOUT) {
            p.data_unanswered = None;
            return Some(TimerAction::Initiate);
        }
        if let Some(cur) = &p.current {
            let age_rekey = cur.initiator && p.last_data_tx.is_some_and(|t| t >= cur.born + REKEY_AFTER_TIME);
            let recv_rekey =
                cur.initiator && p.last_data_rx.is_some_and(|t| t >= cur.born + REJECT_AFTER_TIME - KEEPALIVE_TIMEOUT - REKEY_TIMEOUT);
            if age_rekey || recv_rekey || cur.sent() >= REKEY_AFTER_MESSAGES {
                return Some(TimerAction::Initiate);
            }
        }
        if p.keepalive_due.is_some_and(|t| now.saturating_sub(t) >= KEEPALIVE_TIMEOUT) {
            p.keepalive_due = None;
            return Some(TimerAction::Keepalive);
        }
        if let Some(every) = p.config.persistent_keepalive {
            if p.last_any_tx.is_none_or(|t| now.saturating_sub(t) >= every) {
                return Some(if p.current.is_some() { TimerAction::Keepalive } else { TimerAction::Initiate });
            }
        }
        None
    }
}
