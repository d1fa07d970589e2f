//! One session's transport keys, its send counter and its replay window.
//! Shared (behind an `Arc` the control thread owns) by every worker that
//! sends or receives for the peer: counters come from one atomic, so they
//! stay unique however many workers send.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::*};
use std::time::Duration;

use super::crypto::{Aead, Cipher, TAG_LEN};
use super::noise::SessionKeys;
use super::replay::ReplayWindow;
use super::REJECT_AFTER_MESSAGES;
use crate::counters::DropReason;
use crate::wire::wireguard::{self as wg};

#[repr(align(64))]
struct Padded<T>(T);

/// A live session.
pub struct Session {
    pub local_index: u32,
    pub remote_index: u32,
    /// Index of the peer in the device's peer list.
    pub peer: usize,
    /// Whether we initiated the handshake (only the initiator rekeys on age).
    pub initiator: bool,
    /// When the handshake completed, on the core's clock.
    pub born: Duration,
    send: Cipher,
    recv: Cipher,
    /// A responder's session is confirmed by the first packet it receives
    /// (whitepaper §5.4.6); until then it is not used to send.
    confirmed: AtomicBool,
    next_counter: Padded<AtomicU64>,
    replay: ReplayWindow,
}

impl Session {
    pub fn new(keys: &SessionKeys, peer: usize, born: Duration) -> Self {
        Session {
            local_index: keys.local_index,
            remote_index: keys.remote_index,
            peer,
            initiator: keys.initiator,
            born,
            send: Cipher::new(&keys.send),
            recv: Cipher::new(&keys.recv),
            confirmed: AtomicBool::new(keys.initiator),
            next_counter: Padded(AtomicU64::new(0)),
            replay: ReplayWindow::default(),
        }
    }

    /// Reserves `n` consecutive counters; the first, or `None` once the
    /// session has sent REJECT_AFTER_MESSAGES.
    #[inline]
    pub fn reserve(&self, n: u64) -> Option<u64> {
        let first = self.next_counter.0.fetch_add(n, Relaxed);
        (first.checked_add(n)? <= REJECT_AFTER_MESSAGES).then_some(first)
    }

    /// Counters handed out so far.
    pub fn sent(&self) -> u64 {
        self.next_counter.0.load(Relaxed)
    }

    pub fn confirmed(&self) -> bool {
        self.confirmed.load(Relaxed)
    }

    /// Seals a transport message in place. `msg` is the whole message: 16
    /// header bytes (written here), the payload already padded, and 16
    /// bytes for the tag (written here).
    #[inline]
    pub fn seal(&self, counter: u64, msg: &mut [u8]) {
        let n = msg.len();
        wg::emit_transport_header(msg, self.remote_index, counter);
        let (body, tag) = msg[wg::TRANSPORT_HEADER_LEN..].split_at_mut(n - wg::TRANSPORT_HEADER_LEN - TAG_LEN);
        tag.copy_from_slice(&self.send.seal(counter, &[], body));
    }

    /// Opens a transport message addressed to this session in place and
    /// records its counter; the plaintext is `msg[16..16 + len]`.
    #[inline]
    pub fn open(&self, msg: &mut [u8]) -> Result<usize, DropReason> {
        let (_, counter) = wg::transport_header(msg);
        if !self.replay.may_accept(counter) {
            return Err(DropReason::TunnelReplay);
        }
        let n = msg.len() - wg::TRANSPORT_HEADER_LEN - TAG_LEN;
        let (body, tag) = msg[wg::TRANSPORT_HEADER_LEN..].split_at_mut(n);
        let tag: &[u8; TAG_LEN] = (&*tag).try_into().expect("16-byte tag");
        if !self.recv.open(counter, &[], body, tag) {
            return Err(DropReason::TunnelBadMac);
        }
        if !self.replay.accept(counter) {
            return Err(DropReason::TunnelReplay);
        }
        if !self.confirmed.load(Relaxed) {
            self.confirmed.store(true, Relaxed);
        }
        Ok(n)
    }
}
