#![no_main]
//! WireGuard handshake parsing: arbitrary bytes as initiations, responses
//! and cookie replies to a device that has a peer, with and without a
//! correct mac1 stamped on (so inputs get past the first check), and under
//! load (the mac2/cookie path). Nothing may panic; every refusal is counted.
use std::time::Duration;

use dataplane::tunnel::cookie::CookieStamp;
use dataplane::tunnel::device::{Device, PeerConfig};
use dataplane::wire::wireguard as wg;
use libfuzzer_sys::fuzz_target;

fn device() -> (Device, [u8; 32]) {
    let secret = [3u8; 32];
    let peer_secret = [4u8; 32];
    let public = dataplane::tunnel::crypto::public_key(&x25519_dalek::StaticSecret::from(secret));
    let peer = dataplane::tunnel::crypto::public_key(&x25519_dalek::StaticSecret::from(peer_secret));
    let mut x = 1u64;
    let rng = Box::new(move |b: &mut [u8]| {
        for v in b.iter_mut() {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1);
            *v = (x >> 33) as u8;
        }
    });
    let cfg = PeerConfig { public: peer, psk: None, endpoint: Some("192.0.2.2:51820".parse().unwrap()), persistent_keepalive: None };
    (Device::new(secret, vec![cfg], rng), public)
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, body)) = data.split_first() else { return };
    let (mut d, public) = device();
    d.force_under_load = mode & 0x10 != 0;
    let src = "198.51.100.7:4000".parse().unwrap();
    let now = Duration::from_secs(10);
    // A handshake of ours in flight, so responses and cookie replies can match it.
    let _ = d.initiate(0, now, Duration::from_secs(1_700_000_000));
    let mut msg = body.to_vec();
    let kind = match mode & 3 {
        0 => wg::kind::INITIATION,
        1 => wg::kind::RESPONSE,
        2 => wg::kind::COOKIE_REPLY,
        _ => wg::kind::TRANSPORT,
    };
    if mode & 0x20 != 0 {
        let len = match kind {
            wg::kind::INITIATION => wg::INITIATION_LEN,
            wg::kind::RESPONSE => wg::RESPONSE_LEN,
            wg::kind::COOKIE_REPLY => wg::COOKIE_REPLY_LEN,
            _ => msg.len().max(wg::TRANSPORT_MIN_LEN),
        };
        msg.resize(len, 0);
        msg[..4].copy_from_slice(&[kind, 0, 0, 0]);
        if kind == wg::kind::INITIATION || kind == wg::kind::RESPONSE {
            CookieStamp::new(&public).stamp(&mut msg, now);
        }
    }
    let _ = wg::message_type(&msg);
    let _ = d.handle_initiation(&msg, src, now);
    let _ = d.handle_response(&msg, src, now);
    let _ = d.handle_cookie_reply(&msg, now);
    let _ = d.decapsulate(&mut msg.clone(), now);
    let _ = d.timers(0, now + Duration::from_secs(6));
});
