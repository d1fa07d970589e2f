//! mac1, mac2 and the cookie reply (whitepaper §5.4.4, §5.4.7): mac1 proves
//! the sender knows our public key; under load the responder also wants
//! mac2, keyed by a cookie it hands out encrypted, so that a flood of
//! initiations from spoofed addresses costs a MAC each, not a DH.

use std::time::Duration;

use super::crypto::{hash, mac, xopen, xseal, MAC_LEN};
use crate::wire::wireguard::{self as wg, field, kind};

pub const LABEL_MAC1: &[u8] = b"mac1----";
pub const LABEL_COOKIE: &[u8] = b"cookie--";
/// How long a cookie, and the responder's cookie secret, stay valid.
pub const COOKIE_REFRESH_TIME: Duration = Duration::from_secs(120);

/// Where mac1 and mac2 sit in a handshake message of this length.
fn mac_offsets(len: usize) -> Option<(usize, usize)> {
    match len {
        wg::INITIATION_LEN => Some((field::init::MAC1.start, field::init::MAC2.start)),
        wg::RESPONSE_LEN => Some((field::resp::MAC1.start, field::resp::MAC2.start)),
        _ => None,
    }
}

/// The responder side: checks mac1/mac2 of messages to us and makes
/// cookie replies.
pub struct CookieChecker {
    mac1_key: [u8; 32],
    cookie_key: [u8; 32],
    secret: [u8; 32],
    secret_born: Option<Duration>,
}

impl CookieChecker {
    /// For the identity whose public key is `public`.
    pub fn new(public: &[u8; 32]) -> Self {
        CookieChecker {
            mac1_key: hash(&[LABEL_MAC1, public]),
            cookie_key: hash(&[LABEL_COOKIE, public]),
            secret: [0; 32],
            secret_born: None,
        }
    }

    /// Whether mac1 of a handshake message verifies.
    pub fn check_mac1(&self, msg: &[u8]) -> bool {
        let Some((m1, _)) = mac_offsets(msg.len()) else { return false };
        super::crypto::ct_eq(&mac(&self.mac1_key, &[&msg[..m1]]), &msg[m1..m1 + MAC_LEN])
    }

    /// The cookie for `src` (address bytes then port) at `now`; rotates the
    /// secret when it is older than two minutes, from `rng`.
    fn cookie(&mut self, src: &[u8], now: Duration, rng: &mut dyn FnMut(&mut [u8])) -> [u8; MAC_LEN] {
        if self.secret_born.is_none_or(|b| now.saturating_sub(b) >= COOKIE_REFRESH_TIME) {
            rng(&mut self.secret);
            self.secret_born = Some(now);
        }
        mac(&self.secret, &[src])
    }

    /// Whether mac2 of a handshake message from `src` verifies.
    pub fn check_mac2(&mut self, msg: &[u8], src: &[u8], now: Duration, rng: &mut dyn FnMut(&mut [u8])) -> bool {
        let Some((_, m2)) = mac_offsets(msg.len()) else { return false };
        let cookie = self.cookie(src, now, rng);
        super::crypto::ct_eq(&mac(&cookie, &[&msg[..m2]]), &msg[m2..m2 + MAC_LEN])
    }

    /// Writes a cookie reply to handshake message `msg` from `src`.
    pub fn reply(&mut self, msg: &[u8], src: &[u8], now: Duration, rng: &mut dyn FnMut(&mut [u8]), out: &mut [u8; wg::COOKIE_REPLY_LEN]) {
        let (m1, _) = mac_offsets(msg.len()).expect("a handshake message");
        let cookie = self.cookie(src, now, rng);
        out[..4].copy_from_slice(&[kind::COOKIE_REPLY, 0, 0, 0]);
        // The sender index of the message being answered.
        out[field::cookie::RECEIVER].copy_from_slice(&msg[4..8]);
        let mut nonce = [0u8; 24];
        rng(&mut nonce);
        out[field::cookie::NONCE].copy_from_slice(&nonce);
        xseal(&self.cookie_key, &nonce, &cookie, &msg[m1..m1 + MAC_LEN], &mut out[field::cookie::COOKIE]);
    }
}

/// The initiator side for one peer: stamps mac1 (and mac2 while we hold a
/// fresh cookie from that peer) on our handshake messages.
pub struct CookieStamp {
    mac1_key: [u8; 32],
    cookie_key: [u8; 32],
    cookie: Option<([u8; MAC_LEN], Duration)>,
    /// mac1 of the last message we sent (a cookie reply's AAD).
    last_mac1: Option<[u8; MAC_LEN]>,
}

impl CookieStamp {
    /// For messages to the peer whose public key is `peer`.
    pub fn new(peer: &[u8; 32]) -> Self {
        CookieStamp { mac1_key: hash(&[LABEL_MAC1, peer]), cookie_key: hash(&[LABEL_COOKIE, peer]), cookie: None, last_mac1: None }
    }

    /// Writes mac1 and mac2 into a handshake message we are about to send.
    pub fn stamp(&mut self, msg: &mut [u8], now: Duration) {
        let (m1, m2) = mac_offsets(msg.len()).expect("a handshake message");
        let mac1 = mac(&self.mac1_key, &[&msg[..m1]]);
        msg[m1..m1 + MAC_LEN].copy_from_slice(&mac1);
        self.last_mac1 = Some(mac1);
        let mac2 = match self.cookie {
            Some((c, at)) if now.saturating_sub(at) < COOKIE_REFRESH_TIME => mac(&c, &[&msg[..m2]]),
            _ => [0; MAC_LEN],
        };
        msg[m2..m2 + MAC_LEN].copy_from_slice(&mac2);
    }

    /// Takes the cookie from a reply to our last message; false if it does
    /// not open.
    pub fn consume_reply(&mut self, reply: &[u8], now: Duration) -> bool {
        if wg::message_type(reply) != Ok(kind::COOKIE_REPLY) {
            return false;
        }
        let Some(aad) = self.last_mac1 else { return false };
        let nonce: [u8; 24] = reply[field::cookie::NONCE].try_into().expect("24 bytes");
        let mut cookie = [0u8; MAC_LEN];
        if !xopen(&self.cookie_key, &nonce, &reply[field::cookie::COOKIE], &aad, &mut cookie) {
            return false;
        }
        self.cookie = Some((cookie, now));
        true
    }
}
