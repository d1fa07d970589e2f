//! The Noise_IKpsk2 handshake as WireGuard uses it (whitepaper §5.4.2-5):
//! a generic [`SymmetricState`] (checked against the cacophony vectors)
//! and the two WireGuard messages built on it. MACs and cookies are in
//! [`super::cookie`]; nothing here does I/O or reads a clock.

use x25519_dalek::StaticSecret;

use super::crypto::{self, dh, hash, kdf, public_key, HASH_LEN, KEY_LEN, TAG_LEN};
use crate::wire::wireguard::{self as wg, field, kind};

pub const CONSTRUCTION: &[u8] = b"Noise_IKpsk2_25519_ChaChaPoly_BLAKE2s";
pub const IDENTIFIER: &[u8] = b"WireGuard v1 zx2c4 Jason@zx2c4.com";

/// Why a handshake message was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HandshakeError {
    /// Wrong length, type or reserved bytes.
    Malformed,
    /// A field failed to authenticate (not for us, or tampered).
    Decrypt,
    /// A DH result was all zeros (a low-order public key).
    LowOrderKey,
    /// The static key is not a configured peer.
    UnknownPeer,
    /// The timestamp is not newer than the last one from this peer.
    Replay,
    /// The peer initiates faster than allowed.
    Flood,
    /// A response for no handshake in flight.
    UnexpectedResponse,
    /// mac1 does not verify.
    BadMac1,
}

/// Noise's symmetric state: chaining key, hash, and the cipher key with
/// its nonce.
#[derive(Clone)]
pub struct SymmetricState {
    pub ck: [u8; HASH_LEN],
    pub h: [u8; HASH_LEN],
    k: Option<[u8; KEY_LEN]>,
    n: u64,
}

impl SymmetricState {
    /// InitializeSymmetric(protocol_name).
    pub fn new(protocol: &[u8]) -> Self {
        let mut h = [0u8; HASH_LEN];
        if protocol.len() <= HASH_LEN {
            h[..protocol.len()].copy_from_slice(protocol);
        } else {
            h = hash(&[protocol]);
        }
        SymmetricState { ck: h, h, k: None, n: 0 }
    }

    /// WireGuard's state before any message to the responder `responder`:
    /// construction, identifier as prologue, and the responder's static key.
    pub fn wireguard(responder: &[u8; 32]) -> Self {
        let mut s = SymmetricState::new(CONSTRUCTION);
        s.mix_hash(IDENTIFIER);
        s.mix_hash(responder);
        s
    }

    pub fn mix_hash(&mut self, data: &[u8]) {
        self.h = hash(&[&self.h, data]);
    }

    pub fn mix_key(&mut self, input: &[u8]) {
        let [ck, k] = kdf::<2>(&self.ck, input);
        self.ck = ck;
        self.k = Some(k);
        self.n = 0;
    }

    pub fn mix_key_and_hash(&mut self, input: &[u8]) {
        let [ck, t, k] = kdf::<3>(&self.ck, input);
        self.ck = ck;
        self.mix_hash(&t);
        self.k = Some(k);
        self.n = 0;
    }

    /// Encrypts `plain` into `out` (`plain.len() + 16` bytes with a key,
    /// else `plain.len()`) and mixes the ciphertext into the hash.
    pub fn encrypt_and_hash(&mut self, plain: &[u8], out: &mut [u8]) {
        match self.k {
            Some(k) => {
                assert_eq!(out.len(), plain.len() + TAG_LEN);
                let (body, tag) = out.split_at_mut(plain.len());
                body.copy_from_slice(plain);
                use crypto::Aead;
                tag.copy_from_slice(&crypto::Cipher::new(&k).seal(self.n, &self.h, body));
                self.n += 1;
            }
            None => out.copy_from_slice(plain),
        }
        self.mix_hash(out);
    }

    /// Decrypts `ct` into `out`; false if it does not authenticate.
    pub fn decrypt_and_hash(&mut self, ct: &[u8], out: &mut [u8]) -> bool {
        match self.k {
            Some(k) => {
                if !crypto::open_to(&k, self.n, ct, &self.h, out) {
                    return false;
                }
                self.n += 1;
            }
            None => {
                if out.len() != ct.len() {
                    return false;
                }
                out.copy_from_slice(ct);
            }
        }
        self.mix_hash(ct);
        true
    }

    /// Split(): the initiator's sending key, then its receiving key.
    pub fn split(&self) -> ([u8; KEY_LEN], [u8; KEY_LEN]) {
        let [a, b] = kdf::<2>(&self.ck, &[]);
        (a, b)
    }
}

/// Keys and indices of a new session, from either side.
#[derive(Clone)]
pub struct SessionKeys {
    pub send: [u8; KEY_LEN],
    pub recv: [u8; KEY_LEN],
    /// Our index: the receiver index the peer puts on packets to us.
    pub local_index: u32,
    /// The peer's index: what we put on packets to it.
    pub remote_index: u32,
    pub initiator: bool,
}

impl Drop for SessionKeys {
    fn drop(&mut self) {
        self.send.fill(0);
        self.recv.fill(0);
    }
}

/// Our static identity.
pub struct Identity {
    pub secret: StaticSecret,
    pub public: [u8; 32],
}

impl Identity {
    pub fn new(secret: [u8; 32]) -> Self {
        let secret = StaticSecret::from(secret);
        let public = public_key(&secret);
        Identity { secret, public }
    }
}

/// An initiation we sent, waiting for its response.
pub struct Initiated {
    state: SymmetricState,
    ephemeral: StaticSecret,
    pub local_index: u32,
}

/// Writes a handshake initiation (all but mac1/mac2) from `us` to the
/// peer with static key `peer`, with `ephemeral` (fresh per handshake) and
/// the TAI64N `timestamp`.
pub fn create_initiation(
    us: &Identity,
    peer: &[u8; 32],
    ephemeral: StaticSecret,
    local_index: u32,
    timestamp: &[u8; 12],
    msg: &mut [u8; wg::INITIATION_LEN],
) -> Result<Initiated, HandshakeError> {
    let mut s = SymmetricState::wireguard(peer);
    msg[..4].copy_from_slice(&[kind::INITIATION, 0, 0, 0]);
    msg[field::init::SENDER].copy_from_slice(&local_index.to_le_bytes());
    let e_pub = public_key(&ephemeral);
    msg[field::init::EPHEMERAL].copy_from_slice(&e_pub);
    s.mix_hash(&e_pub);
    s.mix_key(&e_pub);
    s.mix_key(&dh(&ephemeral, peer).ok_or(HandshakeError::LowOrderKey)?);
    s.encrypt_and_hash(&us.public, &mut msg[field::init::STATIC]);
    s.mix_key(&dh(&us.secret, peer).ok_or(HandshakeError::LowOrderKey)?);
    s.encrypt_and_hash(timestamp, &mut msg[field::init::TIMESTAMP]);
    Ok(Initiated { state: s, ephemeral, local_index })
}

/// What a responder learns from a valid initiation.
pub struct InitiationSeen {
    state: SymmetricState,
    pub peer: [u8; 32],
    pub timestamp: [u8; 12],
    pub sender: u32,
    ephemeral: [u8; 32],
}

/// Opens an initiation addressed to `us` (mac1 checked by the caller).
pub fn consume_initiation(us: &Identity, msg: &[u8]) -> Result<InitiationSeen, HandshakeError> {
    if wg::message_type(msg) != Ok(kind::INITIATION) {
        return Err(HandshakeError::Malformed);
    }
    let mut s = SymmetricState::wireguard(&us.public);
    let e = wg::bytes32(msg, field::init::EPHEMERAL);
    s.mix_hash(&e);
    s.mix_key(&e);
    s.mix_key(&dh(&us.secret, &e).ok_or(HandshakeError::LowOrderKey)?);
    let mut peer = [0u8; 32];
    if !s.decrypt_and_hash(&msg[field::init::STATIC], &mut peer) {
        return Err(HandshakeError::Decrypt);
    }
    s.mix_key(&dh(&us.secret, &peer).ok_or(HandshakeError::LowOrderKey)?);
    let mut timestamp = [0u8; 12];
    if !s.decrypt_and_hash(&msg[field::init::TIMESTAMP], &mut timestamp) {
        return Err(HandshakeError::Decrypt);
    }
    Ok(InitiationSeen { state: s, peer, timestamp, sender: wg::le32(msg, field::init::SENDER), ephemeral: e })
}

/// Writes the response to `seen` (all but mac1/mac2) and derives the
/// responder's session keys.
pub fn create_response(
    seen: InitiationSeen,
    psk: &[u8; 32],
    ephemeral: StaticSecret,
    local_index: u32,
    msg: &mut [u8; wg::RESPONSE_LEN],
) -> Result<SessionKeys, HandshakeError> {
    let mut s = seen.state;
    msg[..4].copy_from_slice(&[kind::RESPONSE, 0, 0, 0]);
    msg[field::resp::SENDER].copy_from_slice(&local_index.to_le_bytes());
    msg[field::resp::RECEIVER].copy_from_slice(&seen.sender.to_le_bytes());
    let e_pub = public_key(&ephemeral);
    msg[field::resp::EPHEMERAL].copy_from_slice(&e_pub);
    s.mix_hash(&e_pub);
    s.mix_key(&e_pub);
    s.mix_key(&dh(&ephemeral, &seen.ephemeral).ok_or(HandshakeError::LowOrderKey)?);
    s.mix_key(&dh(&ephemeral, &seen.peer).ok_or(HandshakeError::LowOrderKey)?);
    s.mix_key_and_hash(psk);
    s.encrypt_and_hash(&[], &mut msg[field::resp::EMPTY]);
    let (i_send, i_recv) = s.split();
    Ok(SessionKeys { send: i_recv, recv: i_send, local_index, remote_index: seen.sender, initiator: false })
}

/// The receiver index a response is addressed to (for finding its handshake).
pub fn response_receiver(msg: &[u8]) -> u32 {
    wg::le32(msg, field::resp::RECEIVER)
}

/// Opens the response to `init` and derives the initiator's session keys.
pub fn consume_response(init: &Initiated, us: &Identity, psk: &[u8; 32], msg: &[u8]) -> Result<SessionKeys, HandshakeError> {
    if wg::message_type(msg) != Ok(kind::RESPONSE) {
        return Err(HandshakeError::Malformed);
    }
    if response_receiver(msg) != init.local_index {
        return Err(HandshakeError::UnexpectedResponse);
    }
    let mut s = init.state.clone();
    let e = wg::bytes32(msg, field::resp::EPHEMERAL);
    s.mix_hash(&e);
    s.mix_key(&e);
    s.mix_key(&dh(&init.ephemeral, &e).ok_or(HandshakeError::LowOrderKey)?);
    s.mix_key(&dh(&us.secret, &e).ok_or(HandshakeError::LowOrderKey)?);
    s.mix_key_and_hash(psk);
    if !s.decrypt_and_hash(&msg[field::resp::EMPTY], &mut []) {
        return Err(HandshakeError::Decrypt);
    }
    let (send, recv) = s.split();
    Ok(SessionKeys { send, recv, local_index: init.local_index, remote_index: wg::le32(msg, field::resp::SENDER), initiator: true })
}

/// TAI64N of a Unix time, as WireGuard writes it (whitepaper §5.4.2):
/// 2^62 + 10 + seconds, then nanoseconds, both big-endian.
pub fn tai64n(unix: std::time::Duration) -> [u8; 12] {
    let mut t = [0u8; 12];
    t[..8].copy_from_slice(&(0x4000_0000_0000_000a_u64 + unix.as_secs()).to_be_bytes());
    t[8..].copy_from_slice(&unix.subsec_nanos().to_be_bytes());
    t
}
