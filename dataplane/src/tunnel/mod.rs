//! WireGuard-compatible tunnels.
//!
//! - [`crypto`], [`noise`], [`cookie`], [`replay`] and [`session`] are the
//!   sans-IO protocol core: the caller owns every buffer and passes the time.
//! - [`device`] is the control thread's side: our identity, the peers,
//!   handshakes, cookies and timers (still no I/O).
//! - [`stage`] is the workers' side: transport decryption and encryption in
//!   place on the packet, reading an immutable [`stage::Tunnels`] snapshot.

pub mod cookie;
pub mod crypto;
pub mod device;
pub mod noise;
pub mod replay;
pub mod session;
pub mod stage;

#[cfg(test)]
mod tests;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::time::Duration;

/// Protocol constants (whitepaper §6.1).
pub const REKEY_AFTER_MESSAGES: u64 = 1 << 60;
pub const REJECT_AFTER_MESSAGES: u64 = u64::MAX - (1 << 13);
pub const REKEY_AFTER_TIME: Duration = Duration::from_secs(120);
pub const REJECT_AFTER_TIME: Duration = Duration::from_secs(180);
pub const REKEY_ATTEMPT_TIME: Duration = Duration::from_secs(90);
pub const REKEY_TIMEOUT: Duration = Duration::from_secs(5);
pub const KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(10);
/// Extra random delay on each handshake retry.
pub const REKEY_TIMEOUT_JITTER_MAX: Duration = Duration::from_millis(333);
/// Fewest time between two initiations accepted from one peer (the
/// kernel's INITIATIONS_PER_SECOND = 50).
pub const INITIATION_MIN_GAP: Duration = Duration::from_millis(20);

/// What the workers tell the control thread about a peer: traffic counts,
/// last activity on the workers' clock, and a request for a handshake.
/// Written with relaxed atomics; one cache line per peer.
#[repr(align(64))]
#[derive(Default)]
pub struct PeerLive {
    pub rx_bytes: AtomicU64,
    pub tx_bytes: AtomicU64,
    pub rx_packets: AtomicU64,
    pub tx_packets: AtomicU64,
    /// Worker clock at the last authenticated packet received (0: never).
    pub last_rx: AtomicU64,
    /// Worker clock at the last data packet sent (0: never).
    pub last_tx: AtomicU64,
    /// Set by a worker that had data to send and no usable session, or a
    /// session due for rekeying.
    pub want_handshake: AtomicBool,
}

impl PeerLive {
    /// Asks for a handshake (one store; skipped when already asked).
    #[inline]
    pub fn ask_handshake(&self) {
        if !self.want_handshake.load(Relaxed) {
            self.want_handshake.store(true, Relaxed);
        }
    }
}
