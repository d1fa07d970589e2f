//! In-process interop with boringtun (Cloudflare's WireGuard), both as
//! initiator and as responder, with and without a preshared key: the
//! handshake completes, data flows both ways, rekeying works, and the
//! cookie exchange works under load on either side.

use std::net::IpAddr;
use std::sync::Arc;

use boringtun::noise::rate_limiter::RateLimiter;
use boringtun::noise::{Tunn, TunnResult};

use super::*;

const US: &str = "192.0.2.1:51820";
const THEM: &str = "192.0.2.2:51820";

/// An IPv4/UDP packet with `tag` as payload (boringtun checks inner headers).
fn ip_packet(tag: &[u8]) -> Vec<u8> {
    let total = 28 + tag.len();
    let mut p = vec![0x45, 0, (total >> 8) as u8, total as u8, 0, 0, 0, 0, 64, 17, 0, 0, 10, 1, 0, 1, 10, 2, 0, 1];
    p.extend_from_slice(&[0x30, 0x39, 0x30, 0x39, ((8 + tag.len()) >> 8) as u8, (8 + tag.len()) as u8, 0, 0]);
    p.extend_from_slice(tag);
    p
}

struct Pair {
    us: Device,
    them: Tunn,
    now: Duration,
    wall: Duration,
}

fn setup(psk: Option<[u8; 32]>, their_limit: Option<u64>) -> Pair {
    let (our_sec, our_pub) = keypair(11);
    let (their_sec, their_pub) = keypair(12);
    let us = Device::new(
        our_sec,
        vec![PeerConfig { public: their_pub, psk, endpoint: Some(addr(THEM)), persistent_keepalive: None }],
        test_rng(7),
    );
    let their_secret = x25519_dalek::StaticSecret::from(their_sec);
    let limiter = their_limit.map(|l| Arc::new(RateLimiter::new(&x25519_dalek::PublicKey::from(&their_secret), l)));
    let them = Tunn::new(their_secret, x25519_dalek::PublicKey::from(our_pub), psk, None, 42, limiter);
    Pair { us, them, now: Duration::from_secs(1000), wall: Duration::from_secs(1_700_000_000) }
}

fn us_addr() -> Option<IpAddr> {
    Some(addr(US).ip())
}

impl Pair {
    fn tick(&mut self, ms: u64) {
        self.now += Duration::from_millis(ms);
        self.wall += Duration::from_millis(ms);
    }

    /// Hands a message to boringtun; returns what it writes to the network.
    fn deliver(&mut self, msg: &[u8]) -> Option<Vec<u8>> {
        let mut buf = vec![0u8; 2048];
        match self.them.decapsulate(us_addr(), msg, &mut buf) {
            TunnResult::WriteToNetwork(out) => Some(out.to_vec()),
            TunnResult::Done => None,
            TunnResult::Err(e) => panic!("boringtun refused our message: {e:?}"),
            TunnResult::WriteToTunnelV4(p, _) | TunnResult::WriteToTunnelV6(p, _) => panic!("unexpected data {p:?}"),
        }
    }

    /// We initiate; boringtun answers (maybe with a cookie first).
    fn we_initiate(&mut self) {
        let init = self.us.initiate(0, self.now, self.wall).unwrap();
        let mut reply = self.deliver(&init).expect("a response or a cookie reply");
        if wg::message_type(&reply) == Ok(wg::kind::COOKIE_REPLY) {
            assert_eq!(self.us.handle_cookie_reply(&reply, self.now), Ok(0));
            self.tick(30);
            assert_eq!(self.us.timers(0, self.now), Some(TimerAction::Initiate), "retry at once with the cookie");
            let init = self.us.initiate(0, self.now, self.wall).unwrap();
            reply = self.deliver(&init).expect("a response");
        }
        assert!(matches!(self.us.handle_response(&reply, addr(THEM), self.now), Ok(ResponseOutcome::Done { peer: 0 })));
        // Our first packet confirms the session to boringtun.
        let ka = self.us.keepalive(0, self.now).unwrap();
        assert_eq!(self.deliver(&ka), None);
    }

    /// boringtun initiates; we answer (maybe with a cookie first).
    fn they_initiate(&mut self) {
        let mut buf = vec![0u8; 2048];
        let TunnResult::WriteToNetwork(init) = self.them.format_handshake_initiation(&mut buf, true) else { panic!("no initiation") };
        let init = init.to_vec();
        let msg = match self.us.handle_initiation(&init, addr(THEM), self.now).expect("valid initiation") {
            InitiationOutcome::Response { msg, .. } => msg.to_vec(),
            InitiationOutcome::Cookie(cookie) => {
                assert_eq!(self.deliver(&cookie), None, "boringtun takes the cookie");
                self.tick(30);
                let TunnResult::WriteToNetwork(init) = self.them.format_handshake_initiation(&mut buf, true) else { panic!() };
                let init = init.to_vec();
                let InitiationOutcome::Response { msg, .. } = self.us.handle_initiation(&init, addr(THEM), self.now).expect("valid") else {
                    panic!("a second cookie reply: mac2 did not verify")
                };
                msg.to_vec()
            }
        };
        // boringtun answers the response with a keepalive, confirming our session.
        let ka = self.deliver(&msg).expect("boringtun's keepalive");
        let mut ka = ka;
        assert_eq!(self.us.decapsulate(&mut ka, self.now), Ok((0, 0)));
    }

    fn data_both_ways(&mut self, round: u8) {
        for i in 0..20u8 {
            let p = ip_packet(&[round, i, 0xaa]);
            // Ours to theirs.
            let mut msg = self.us.encapsulate(0, &p, self.now).unwrap();
            let mut buf = vec![0u8; 2048];
            match self.them.decapsulate(us_addr(), &msg, &mut buf) {
                TunnResult::WriteToTunnelV4(got, src) => {
                    assert_eq!(got, &p[..]);
                    assert_eq!(src, std::net::Ipv4Addr::new(10, 1, 0, 1));
                }
                _ => panic!("boringtun did not deliver our packet"),
            }
            // Theirs to ours.
            let mut out = vec![0u8; 2048];
            let TunnResult::WriteToNetwork(m) = self.them.encapsulate(&p, &mut out) else { panic!("boringtun has no session") };
            let mut m = m.to_vec();
            let sealed = m.clone();
            let (peer, n) = self.us.decapsulate(&mut m, self.now).unwrap();
            assert_eq!((peer, &m[16..16 + p.len()]), (0, &p[..]));
            assert_eq!(n, p.len(), "boringtun sends without padding");
            // Replaying boringtun's message is refused.
            msg.clone_from(&sealed);
            assert_eq!(self.us.decapsulate(&mut msg, self.now), Err(DropReason::TunnelReplay));
        }
    }
}

#[test]
fn boringtun_interop_as_initiator_and_responder_with_and_without_psk() {
    for psk in [None, Some([0x5a; 32])] {
        // We initiate, then rekey twice (once each way).
        let mut p = setup(psk, None);
        p.we_initiate();
        p.data_both_ways(1);
        p.tick(1000);
        let before = p.us.peers[0].current.as_ref().unwrap().local_index;
        p.we_initiate();
        assert_ne!(p.us.peers[0].current.as_ref().unwrap().local_index, before, "new keys");
        p.data_both_ways(2);
        p.tick(1000);
        p.they_initiate();
        p.data_both_ways(3);

        // They initiate, then rekey from our side.
        let mut p = setup(psk, None);
        p.they_initiate();
        p.data_both_ways(4);
        p.tick(1000);
        p.we_initiate();
        p.data_both_ways(5);
        assert!(p.us.stats.completed >= 2);
    }
}

#[test]
fn boringtun_interop_cookies_under_load_both_ways() {
    // boringtun under load (limit 0): it answers our initiation with a cookie reply.
    let mut p = setup(None, Some(0));
    p.we_initiate();
    assert_eq!(p.us.stats.cookies_received, 1);
    p.data_both_ways(6);

    // We are under load: boringtun must come back with mac2.
    let mut p = setup(Some([1; 32]), None);
    p.us.force_under_load = true;
    p.they_initiate();
    assert_eq!(p.us.stats.cookies_sent, 1);
    p.data_both_ways(7);
}
