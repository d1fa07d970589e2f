//! QUIC: long-header parsing, Initial decryption attempts, gQUIC CHLO
//! reading, and (since a fuzzer cannot forge an AEAD tag) the decrypted
//! frame parser fed directly, with the crypto stream carried across inputs
//! split from one buffer.
#![no_main]

use dataplane::dpi::{quic, tls};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut buf = [0u8; tls::MAX_HELLO];
    let mut have = [0u64; tls::MAX_HELLO / 64];
    let mut scratch = vec![0u8; 65536];
    let (a, b) = data.split_at(data.len() / 2);
    for part in [a, b] {
        let mut s = quic::Stream { buf: &mut buf, have: &mut have };
        let _ = quic::long_header_version(part);
        let _ = quic::client_initial(part, &mut scratch, &mut s);
        let mut s = quic::Stream { buf: &mut buf, have: &mut have };
        quic::frames(part, part.first().is_some_and(|b| b & 1 == 1), &mut s);
    }
});
