//! Handshake messages: initiation, response and cookie reply, received and sent (Noise_IKpsk2 through `noise`, cookies under load).

use super::super::noise::{self, HandshakeError};
use super::super::session::Session;
use super::super::*;
use super::*;
use crate::wire::wireguard::{self as wg, kind};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

impl Device {
    /// Checks mac1, and under load mac2; `Some(reply)` when a cookie
    /// reply must be sent instead of processing the message.
    pub(super) fn check_macs(
        &mut self,
        msg: &[u8],
        src: SocketAddr,
        now: Duration,
    ) -> Result<Option<[u8; wg::COOKIE_REPLY_LEN]>, HandshakeError> {
        if !self.checker.check_mac1(msg) {
            return Err(refuse(&mut self.stats, HandshakeError::BadMac1));
        }
        if !self.under_load(now) {
            return Ok(None);
        }
        let mut b = [0u8; 18];
        let n = src_bytes(src, &mut b);
        if self.checker.check_mac2(msg, &b[..n], now, &mut self.rng) {
            return Ok(None);
        }
        let mut reply = [0u8; wg::COOKIE_REPLY_LEN];
        self.checker.reply(msg, &b[..n], now, &mut self.rng, &mut reply);
        self.stats.cookies_sent += 1;
        Ok(Some(reply))
    }

    /// Handles a handshake initiation from `src`.
    pub fn handle_initiation(&mut self, msg: &[u8], src: SocketAddr, now: Duration) -> Result<InitiationOutcome, HandshakeError> {
        if wg::message_type(msg) != Ok(kind::INITIATION) {
            return Err(refuse(&mut self.stats, HandshakeError::Malformed));
        }
        self.stats.initiations_received += 1;
        if let Some(reply) = self.check_macs(msg, src, now)? {
            return Ok(InitiationOutcome::Cookie(reply));
        }
        let seen = noise::consume_initiation(&self.identity, msg).map_err(|e| refuse(&mut self.stats, e))?;
        let Some(&i) = self.by_key.get(&seen.peer) else {
            return Err(refuse(&mut self.stats, HandshakeError::UnknownPeer));
        };
        let p = &self.peers[i];
        // TAI64N compares as big-endian bytes.
        if p.last_timestamp.is_some_and(|t| seen.timestamp <= t) {
            return Err(refuse(&mut self.stats, HandshakeError::Replay));
        }
        if p.last_initiation_rx.is_some_and(|t| now.saturating_sub(t) < INITIATION_MIN_GAP) {
            return Err(refuse(&mut self.stats, HandshakeError::Flood));
        }
        let psk = p.config.psk.unwrap_or([0; 32]);
        let timestamp = seen.timestamp;
        // A confirmed next session is in use: keep it as current.
        self.rotate(i);
        let Some(index) = self.allocate(Slot::Session(i)) else {
            return Err(refuse(&mut self.stats, HandshakeError::Flood));
        };
        let e = self.secret();
        let mut out = [0u8; wg::RESPONSE_LEN];
        let keys = match noise::create_response(seen, &psk, e, index, &mut out) {
            Ok(k) => k,
            Err(e) => {
                self.free(index);
                return Err(refuse(&mut self.stats, e));
            }
        };
        let p = &mut self.peers[i];
        p.stamp.stamp(&mut out, now);
        p.last_timestamp = Some(timestamp);
        p.last_initiation_rx = Some(now);
        p.endpoint = Some(src);
        let old = p.next.replace(Arc::new(Session::new(&keys, i, now)));
        p.last_handshake = Some(now);
        p.handshakes += 1;
        self.drop_session(old);
        self.changed = true;
        self.stats.responses_sent += 1;
        self.stats.completed += 1;
        self.sent(i, now, false);
        Ok(InitiationOutcome::Response { peer: i, msg: out })
    }

    /// Handles a handshake response from `src`.
    pub fn handle_response(&mut self, msg: &[u8], src: SocketAddr, now: Duration) -> Result<ResponseOutcome, HandshakeError> {
        if wg::message_type(msg) != Ok(kind::RESPONSE) {
            return Err(refuse(&mut self.stats, HandshakeError::Malformed));
        }
        self.stats.responses_received += 1;
        if let Some(reply) = self.check_macs(msg, src, now)? {
            return Ok(ResponseOutcome::Cookie(reply));
        }
        let index = noise::response_receiver(msg);
        let Slot::Pending(i) = self.slots[(index & INDEX_MASK) as usize] else {
            return Err(refuse(&mut self.stats, HandshakeError::UnexpectedResponse));
        };
        let p = &mut self.peers[i];
        let Some(pending) = p.pending.as_ref().filter(|x| x.init.local_index == index) else {
            return Err(refuse(&mut self.stats, HandshakeError::UnexpectedResponse));
        };
        let psk = p.config.psk.unwrap_or([0; 32]);
        let keys = noise::consume_response(&pending.init, &self.identity, &psk, msg).map_err(|e| refuse(&mut self.stats, e))?;
        self.rotate(i);
        let p = &mut self.peers[i];
        p.pending = None;
        p.endpoint = Some(src);
        let session = Arc::new(Session::new(&keys, i, now));
        // As the kernel does (noise.c, add_new_keypair): a responder
        // session still waiting for confirmation is demoted to previous,
        // not dropped. When both sides initiate at once, each side's
        // partner of the other's new session is that one, so dropping it
        // would leave both sending with keys the other no longer has.
        let old_prev = p.previous.take();
        let old_cur = p.current.replace(session);
        let (old_next, old_prev) = match p.next.take() {
            Some(n) => {
                p.previous = Some(n);
                (old_cur, old_prev)
            }
            None => {
                p.previous = old_cur;
                (None, old_prev)
            }
        };
        p.last_handshake = Some(now);
        p.handshakes += 1;
        p.data_unanswered = None;
        self.slots[(index & INDEX_MASK) as usize] = Slot::Session(i);
        self.drop_session(old_prev);
        self.drop_session(old_next);
        self.changed = true;
        self.stats.completed += 1;
        self.received(i, now, false);
        Ok(ResponseOutcome::Done { peer: i })
    }

    /// Handles a cookie reply; returns the peer whose cookie it was.
    pub fn handle_cookie_reply(&mut self, msg: &[u8], now: Duration) -> Result<usize, HandshakeError> {
        if wg::message_type(msg) != Ok(kind::COOKIE_REPLY) {
            return Err(refuse(&mut self.stats, HandshakeError::Malformed));
        }
        let index = wg::le32(msg, wg::field::cookie::RECEIVER);
        let i = match self.slots[(index & INDEX_MASK) as usize] {
            Slot::Pending(i) if self.peers[i].pending.as_ref().is_some_and(|p| p.init.local_index == index) => i,
            // A reply to our response: the session's index.
            Slot::Session(i) if self.session_by_index(index).is_some() => i,
            _ => return Err(refuse(&mut self.stats, HandshakeError::UnexpectedResponse)),
        };
        if !self.peers[i].stamp.consume_reply(msg, now) {
            return Err(refuse(&mut self.stats, HandshakeError::Decrypt));
        }
        self.stats.cookies_received += 1;
        // Retry at once with mac2 rather than after REKEY_TIMEOUT.
        if let Some(p) = self.peers[i].pending.as_mut() {
            p.sent = now.saturating_sub(REKEY_TIMEOUT + p.jitter);
        }
        Ok(i)
    }

    /// A new initiation to peer `i`, with the Unix time `wall` as its
    /// timestamp. A retry keeps the attempt's start time.
    pub fn initiate(&mut self, i: usize, now: Duration, wall: Duration) -> Option<[u8; wg::INITIATION_LEN]> {
        let started = self.peers[i].pending.take().map(|p| {
            self.free(p.init.local_index);
            p.started
        });
        let index = self.allocate(Slot::Pending(i))?;
        let e = self.secret();
        let mut jitter = [0u8; 2];
        (self.rng)(&mut jitter);
        let jitter = Duration::from_millis(u16::from_le_bytes(jitter) as u64 % (REKEY_TIMEOUT_JITTER_MAX.as_millis() as u64 + 1));
        let mut msg = [0u8; wg::INITIATION_LEN];
        let peer_key = self.peers[i].config.public;
        let init = match noise::create_initiation(&self.identity, &peer_key, e, index, &noise::tai64n(wall), &mut msg) {
            Ok(x) => x,
            Err(e) => {
                self.free(index);
                refuse(&mut self.stats, e);
                return None;
            }
        };
        let p = &mut self.peers[i];
        p.stamp.stamp(&mut msg, now);
        p.pending = Some(Pending { init, started: started.unwrap_or(now), sent: now, jitter });
        self.stats.initiations_sent += 1;
        self.sent(i, now, false);
        Some(msg)
    }
}
