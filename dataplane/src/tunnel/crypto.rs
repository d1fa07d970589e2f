//! The primitives of WireGuard (whitepaper §5.4): BLAKE2s HASH and MAC,
//! HMAC-BLAKE2s and the KDFn built on it, X25519 DH, ChaCha20-Poly1305 AEAD
//! with WireGuard's 64-bit counter nonce, and XChaCha20-Poly1305 for
//! cookies.
//!
//! The transport AEAD sits behind [`Aead`] so its implementation is chosen
//! by measurement (`patronus-perf aead-bench`, docs/PERFORMANCE.md):
//! [`Cipher`] uses ring's assembly for short payloads and intel-ipsec-mb's
//! (AVX-512 here) for long ones; RustCrypto's is kept as a cross-check.

use blake2::digest::{FixedOutput, Mac as _, Update};
use blake2::{Blake2s256, Blake2sMac, Digest};

pub const KEY_LEN: usize = 32;
pub const HASH_LEN: usize = 32;
pub const MAC_LEN: usize = 16;
pub const TAG_LEN: usize = 16;

/// HASH(input...): BLAKE2s-256 over the concatenation.
pub fn hash(parts: &[&[u8]]) -> [u8; HASH_LEN] {
    let mut h = Blake2s256::new();
    for p in parts {
        Digest::update(&mut h, p);
    }
    h.finalize().into()
}

/// MAC(key, input): keyed BLAKE2s with a 16-byte output.
pub fn mac(key: &[u8], parts: &[&[u8]]) -> [u8; MAC_LEN] {
    let mut m = Blake2sMac::<blake2::digest::consts::U16>::new_from_slice(key).expect("BLAKE2s key of at most 32 bytes");
    for p in parts {
        Update::update(&mut m, p);
    }
    m.finalize_fixed().into()
}

/// HMAC(key, input) over BLAKE2s (block size 64).
pub fn hmac(key: &[u8; HASH_LEN], parts: &[&[u8]]) -> [u8; HASH_LEN] {
    let mut ipad = [0x36u8; 64];
    let mut opad = [0x5cu8; 64];
    for i in 0..HASH_LEN {
        ipad[i] ^= key[i];
        opad[i] ^= key[i];
    }
    let mut inner = Blake2s256::new();
    Digest::update(&mut inner, ipad);
    for p in parts {
        Digest::update(&mut inner, p);
    }
    let inner: [u8; HASH_LEN] = inner.finalize().into();
    hash(&[&opad, &inner])
}

/// KDFn(key, input): HKDF over HMAC-BLAKE2s, returning `N` 32-byte outputs
/// (N = 1, 2 or 3 in WireGuard).
pub fn kdf<const N: usize>(key: &[u8; HASH_LEN], input: &[u8]) -> [[u8; HASH_LEN]; N] {
    let t0 = hmac(key, &[input]);
    let mut out = [[0u8; HASH_LEN]; N];
    for i in 0..N {
        let t = match i {
            0 => hmac(&t0, &[&[1]]),
            _ => hmac(&t0, &[&out[i - 1], &[i as u8 + 1]]),
        };
        out[i] = t;
    }
    out
}

/// X25519 between our secret and their public key; `None` for an
/// all-zero result (a low-order point: RFC 7748 §6.1 says to abort).
pub fn dh(secret: &x25519_dalek::StaticSecret, public: &[u8; 32]) -> Option<[u8; 32]> {
    let shared = secret.diffie_hellman(&x25519_dalek::PublicKey::from(*public));
    shared.was_contributory().then(|| shared.to_bytes())
}

/// The public key of a secret.
pub fn public_key(secret: &x25519_dalek::StaticSecret) -> [u8; 32] {
    x25519_dalek::PublicKey::from(secret).to_bytes()
}

/// ChaCha20-Poly1305 with WireGuard's nonce: 32 zero bits, then the
/// counter little-endian.
pub trait Aead: Send + Sync + Sized {
    fn new(key: &[u8; KEY_LEN]) -> Self;
    /// Encrypts `in_out` in place; returns the tag.
    fn seal(&self, counter: u64, aad: &[u8], in_out: &mut [u8]) -> [u8; TAG_LEN];
    /// Decrypts `in_out` in place if `tag` authenticates it; false (and
    /// `in_out` unspecified) otherwise.
    fn open(&self, counter: u64, aad: &[u8], in_out: &mut [u8], tag: &[u8; TAG_LEN]) -> bool;
}

#[inline(always)]
fn nonce(counter: u64) -> [u8; 12] {
    let mut n = [0u8; 12];
    n[4..].copy_from_slice(&counter.to_le_bytes());
    n
}

/// ring's ChaCha20-Poly1305 (assembly, AVX2; 3.4x RustCrypto's on 1420-byte seals here).
pub struct RingChaCha(ring::aead::LessSafeKey);

impl RingChaCha {
    /// Seals with a full 96-bit nonce (RFC 8439 form; test vectors).
    pub fn seal_nonce(&self, nonce: [u8; 12], aad: &[u8], in_out: &mut [u8]) -> [u8; TAG_LEN] {
        let n = ring::aead::Nonce::assume_unique_for_key(nonce);
        let tag = self.0.seal_in_place_separate_tag(n, ring::aead::Aad::from(aad), in_out).expect("length within limits");
        tag.as_ref().try_into().expect("16-byte tag")
    }

    /// Opens with a full 96-bit nonce.
    pub fn open_nonce(&self, nonce: [u8; 12], aad: &[u8], in_out: &mut [u8], tag: &[u8; TAG_LEN]) -> bool {
        let n = ring::aead::Nonce::assume_unique_for_key(nonce);
        self.0.open_in_place_separate_tag(n, ring::aead::Aad::from(aad), ring::aead::Tag::from(*tag), in_out, 0..).is_ok()
    }
}

impl Aead for RingChaCha {
    fn new(key: &[u8; KEY_LEN]) -> Self {
        let k = ring::aead::UnboundKey::new(&ring::aead::CHACHA20_POLY1305, key).expect("32-byte key");
        RingChaCha(ring::aead::LessSafeKey::new(k))
    }

    #[inline]
    fn seal(&self, counter: u64, aad: &[u8], in_out: &mut [u8]) -> [u8; TAG_LEN] {
        self.seal_nonce(nonce(counter), aad, in_out)
    }

    #[inline]
    fn open(&self, counter: u64, aad: &[u8], in_out: &mut [u8], tag: &[u8; TAG_LEN]) -> bool {
        self.open_nonce(nonce(counter), aad, in_out, tag)
    }
}

/// RustCrypto's ChaCha20-Poly1305 (portable; a cross-check and the
/// benchmark's comparison).
pub struct RustCryptoChaCha(chacha20poly1305::ChaCha20Poly1305);

impl Aead for RustCryptoChaCha {
    fn new(key: &[u8; KEY_LEN]) -> Self {
        use chacha20poly1305::KeyInit;
        RustCryptoChaCha(chacha20poly1305::ChaCha20Poly1305::new(key.into()))
    }

    fn seal(&self, counter: u64, aad: &[u8], in_out: &mut [u8]) -> [u8; TAG_LEN] {
        use chacha20poly1305::AeadInPlace;
        let tag = self.0.encrypt_in_place_detached(&nonce(counter).into(), aad, in_out).expect("length within limits");
        tag.into()
    }

    fn open(&self, counter: u64, aad: &[u8], in_out: &mut [u8], tag: &[u8; TAG_LEN]) -> bool {
        use chacha20poly1305::AeadInPlace;
        self.0.decrypt_in_place_detached(&nonce(counter).into(), aad, in_out, tag.into()).is_ok()
    }
}

/// intel-ipsec-mb's ChaCha20-Poly1305 (the engine of DPDK's ipsec_mb crypto
/// PMD; AVX-512 where the CPU has it), called directly.
pub struct ImbChaCha {
    key: [u8; KEY_LEN],
}

/// The library's function table for this CPU and the implementation it
/// chose, made once per process (null if the library cannot run here).
fn imb() -> (*mut std::ffi::c_void, i32) {
    struct Mgr(*mut std::ffi::c_void, i32);
    // SAFETY: the manager is read-only after initialisation; the direct
    // API keeps its state in the caller's context.
    unsafe impl Send for Mgr {}
    unsafe impl Sync for Mgr {}
    static MGR: std::sync::OnceLock<Mgr> = std::sync::OnceLock::new();
    let m = MGR.get_or_init(|| {
        let mut arch = 0;
        // SAFETY: a valid out pointer.
        let m = unsafe { dpdk_sys::shim_imb_mgr(&mut arch) };
        Mgr(m, arch)
    });
    (m.0, m.1)
}

fn imb_mgr() -> *mut std::ffi::c_void {
    let m = imb().0;
    assert!(!m.is_null(), "intel-ipsec-mb cannot run on this CPU (check ImbChaCha::available first)");
    m
}

impl ImbChaCha {
    /// Which implementation the library chose (IMB_ARCH: 2 SSE, 3 AVX, 4
    /// AVX2, 5 AVX-512), or 0 when it cannot run here.
    pub fn arch() -> i32 {
        match imb() {
            (m, _) if m.is_null() => 0,
            (_, arch) => arch,
        }
    }

    /// Whether to use it for long payloads: its AVX-512 code is what beat
    /// ring here; elsewhere ring's is the measured choice.
    pub fn preferred() -> bool {
        Self::arch() >= 5
    }

    /// Runs the library's seal or open (same signature) over `in_out` in
    /// place; the tag is written to (seal) or computed into (open) `tag`.
    #[inline]
    fn call(&self, f: ImbFn, nonce: [u8; 12], aad: &[u8], in_out: &mut [u8], tag: &mut [u8; TAG_LEN]) {
        // SAFETY: every pointer is valid for the length given; in place is supported.
        unsafe {
            f(
                imb_mgr(),
                self.key.as_ptr(),
                nonce.as_ptr(),
                aad.as_ptr(),
                aad.len() as u64,
                in_out.as_mut_ptr(),
                in_out.len() as u64,
                tag.as_mut_ptr(),
            )
        }
    }

    /// Seals with a full 96-bit nonce (RFC 8439 form; test vectors).
    pub fn seal_nonce(&self, nonce: [u8; 12], aad: &[u8], in_out: &mut [u8]) -> [u8; TAG_LEN] {
        let mut tag = [0u8; TAG_LEN];
        self.call(dpdk_sys::shim_imb_chacha_seal, nonce, aad, in_out, &mut tag);
        tag
    }

    /// Opens with a full 96-bit nonce; `in_out` is unspecified on failure.
    pub fn open_nonce(&self, nonce: [u8; 12], aad: &[u8], in_out: &mut [u8], tag: &[u8; TAG_LEN]) -> bool {
        let mut computed = [0u8; TAG_LEN];
        self.call(dpdk_sys::shim_imb_chacha_open, nonce, aad, in_out, &mut computed);
        ct_eq(&computed, tag)
    }
}

/// The shim's seal and open: (manager, key, iv, aad, aad length, buffer, length, tag).
type ImbFn = unsafe extern "C" fn(*mut std::ffi::c_void, *const u8, *const u8, *const u8, u64, *mut u8, u64, *mut u8);

impl Drop for ImbChaCha {
    fn drop(&mut self) {
        for b in self.key.iter_mut() {
            // SAFETY: a valid, aligned &mut u8; volatile so it is not elided.
            unsafe { std::ptr::write_volatile(b, 0) };
        }
    }
}

impl Aead for ImbChaCha {
    fn new(key: &[u8; KEY_LEN]) -> Self {
        imb_mgr();
        ImbChaCha { key: *key }
    }

    #[inline]
    fn seal(&self, counter: u64, aad: &[u8], in_out: &mut [u8]) -> [u8; TAG_LEN] {
        self.seal_nonce(nonce(counter), aad, in_out)
    }

    #[inline]
    fn open(&self, counter: u64, aad: &[u8], in_out: &mut [u8], tag: &[u8; TAG_LEN]) -> bool {
        self.open_nonce(nonce(counter), aad, in_out, tag)
    }
}

/// Payloads from this size on go to intel-ipsec-mb, shorter ones to ring:
/// where the two cross on this machine's AVX-512 (`patronus-perf
/// aead-bench --size N`: ring leads by 45% at 64 bytes, ipsec-mb by 21% at
/// 1420; docs/PERFORMANCE.md).
pub const LONG_FROM: usize = 512;

/// The transport AEAD the data path uses: per payload, the faster of the
/// two measured implementations for its size (same keys, same output).
pub struct Cipher {
    short: RingChaCha,
    /// None where intel-ipsec-mb has no AVX-512 code for this CPU: ring does all.
    long: Option<ImbChaCha>,
}

impl Aead for Cipher {
    fn new(key: &[u8; KEY_LEN]) -> Self {
        Cipher { short: RingChaCha::new(key), long: ImbChaCha::preferred().then(|| ImbChaCha::new(key)) }
    }

    #[inline]
    fn seal(&self, counter: u64, aad: &[u8], in_out: &mut [u8]) -> [u8; TAG_LEN] {
        match &self.long {
            Some(long) if in_out.len() >= LONG_FROM => long.seal(counter, aad, in_out),
            _ => self.short.seal(counter, aad, in_out),
        }
    }

    #[inline]
    fn open(&self, counter: u64, aad: &[u8], in_out: &mut [u8], tag: &[u8; TAG_LEN]) -> bool {
        match &self.long {
            Some(long) if in_out.len() >= LONG_FROM => long.open(counter, aad, in_out, tag),
            _ => self.short.open(counter, aad, in_out, tag),
        }
    }
}

/// AEAD(key, counter, plain, aad) into a fresh buffer (handshake fields).
pub fn seal_to<const N: usize>(key: &[u8; KEY_LEN], counter: u64, plain: &[u8], aad: &[u8]) -> [u8; N] {
    assert_eq!(plain.len() + TAG_LEN, N);
    let mut out = [0u8; N];
    out[..plain.len()].copy_from_slice(plain);
    let tag = Cipher::new(key).seal(counter, aad, &mut out[..plain.len()]);
    out[plain.len()..].copy_from_slice(&tag);
    out
}

/// Opens a handshake field of `ct.len()` bytes into `out`
/// (`ct.len() - 16` bytes); false if it does not authenticate.
pub fn open_to(key: &[u8; KEY_LEN], counter: u64, ct: &[u8], aad: &[u8], out: &mut [u8]) -> bool {
    let Some(n) = ct.len().checked_sub(TAG_LEN) else { return false };
    if out.len() != n {
        return false;
    }
    out.copy_from_slice(&ct[..n]);
    let tag: [u8; TAG_LEN] = ct[n..].try_into().expect("16 bytes");
    Cipher::new(key).open(counter, aad, out, &tag)
}

/// XAEAD(key, nonce, plain, aad): XChaCha20-Poly1305 (cookie replies).
pub fn xseal(key: &[u8; KEY_LEN], nonce: &[u8; 24], plain: &[u8], aad: &[u8], out: &mut [u8]) {
    use chacha20poly1305::{AeadInPlace, KeyInit, XChaCha20Poly1305};
    assert_eq!(out.len(), plain.len() + TAG_LEN);
    let (body, tag_out) = out.split_at_mut(plain.len());
    body.copy_from_slice(plain);
    let tag = XChaCha20Poly1305::new(key.into()).encrypt_in_place_detached(nonce.into(), aad, body).expect("length within limits");
    tag_out.copy_from_slice(&tag);
}

/// Opens an XAEAD ciphertext (with its tag) into `out`.
pub fn xopen(key: &[u8; KEY_LEN], nonce: &[u8; 24], ct: &[u8], aad: &[u8], out: &mut [u8]) -> bool {
    use chacha20poly1305::{AeadInPlace, KeyInit, XChaCha20Poly1305};
    let Some(n) = ct.len().checked_sub(TAG_LEN) else { return false };
    if out.len() != n {
        return false;
    }
    out.copy_from_slice(&ct[..n]);
    XChaCha20Poly1305::new(key.into()).decrypt_in_place_detached(nonce.into(), aad, out, ct[n..].into()).is_ok()
}

/// Compares in time independent of where the inputs differ.
pub fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
