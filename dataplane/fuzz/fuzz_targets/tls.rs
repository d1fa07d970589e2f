//! TLS ClientHello parsing, from records (split anywhere) and as a bare
//! handshake message (QUIC's crypto stream).
#![no_main]

use dataplane::dpi::tls;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    for h in [tls::client_hello(data), tls::handshake(data)] {
        if let tls::Hello::Done(c) = h {
            assert!(c.sni.len() <= data.len() && c.alpn.len() <= data.len());
        }
    }
});
