//! `patronus-perf aead-bench`: ChaCha20-Poly1305 seal and open in place,
//! the three implementations behind the tunnel's `Aead` trait on the same
//! keys, nonces and payloads (default 1420 bytes: a WireGuard packet at a
//! 1500-byte MTU), in one run: the measurement that picks the tunnel's AEAD.

use std::hint::black_box;
use std::time::Instant;

use dataplane::tunnel::crypto::{Aead, Cipher, ImbChaCha, RingChaCha, RustCryptoChaCha};

fn bench<A: Aead>(key: &[u8; 32], size: usize, packets: usize) -> (f64, f64) {
    let c = A::new(key);
    let mut buf = vec![0x5au8; size];
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
    let seal = time(&mut |i| {
        black_box(c.seal(i, &[], &mut buf));
    });
    // Open what was sealed under one counter, over and over (a failed
    // open would leave garbage: checked once after).
    let mut sealed = vec![0x5au8; size];
    let tag = c.seal(7, &[], &mut sealed);
    let mut work = sealed.clone();
    let open = time(&mut |_| {
        work.copy_from_slice(&sealed);
        black_box(c.open(7, &[], &mut work, &tag));
    });
    assert!(work.iter().all(|&b| b == 0x5a), "open gives the plaintext back");
    (seal, open)
}

pub fn run(size: usize, packets: usize) -> Result<(), String> {
    let key = [7u8; 32];
    // Same ciphertext and tag from all three first.
    let mut outs = Vec::new();
    for i in 0..3 {
        let mut b = vec![0x5au8; size];
        let t = match i {
            0 => RingChaCha::new(&key).seal(1, &[], &mut b),
            1 => RustCryptoChaCha::new(&key).seal(1, &[], &mut b),
            _ => ImbChaCha::new(&key).seal(1, &[], &mut b),
        };
        outs.push((b, t));
    }
    if outs[0] != outs[1] || outs[0] != outs[2] {
        return Err("the implementations disagree".into());
    }
    let gbps = |ns: f64| size as f64 * 8.0 / ns;
    let rows = [
        ("intel-ipsec-mb", bench::<ImbChaCha>(&key, size, packets)),
        ("ring", bench::<RingChaCha>(&key, size, packets)),
        ("chacha20poly1305", bench::<RustCryptoChaCha>(&key, size, packets)),
        ("patronus Cipher", bench::<Cipher>(&key, size, packets)),
    ];
    println!(
        "aead-bench: ChaCha20-Poly1305 in place, {size}-byte payloads, {packets} per pass, best of 3; same ciphertext and tag (ipsec-mb arch {})",
        ImbChaCha::arch()
    );
    for (name, (seal, open)) in &rows {
        println!("  {name:<17} seal {seal:>6.0} ns {:>6.2} Gbit/s   open {open:>6.0} ns {:>6.2} Gbit/s", gbps(*seal), gbps(*open));
    }
    // The open loop also copies the ciphertext back each time (a few % at 1420 bytes).
    println!(
        "RESULT aead size={size} ipsecmb_gbps={:.2} ring_gbps={:.2} rustcrypto_gbps={:.2} ipsecmb_open_gbps={:.2} ring_open_gbps={:.2} cipher_gbps={:.2}",
        gbps(rows[0].1 .0),
        gbps(rows[1].1 .0),
        gbps(rows[2].1 .0),
        gbps(rows[0].1 .1),
        gbps(rows[1].1 .1),
        gbps(rows[3].1 .0)
    );
    Ok(())
}
