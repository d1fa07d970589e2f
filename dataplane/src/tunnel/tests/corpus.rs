//! Checks against material written by others, from ../shared/corpora:
//! every Wycheproof ChaCha20-Poly1305, XChaCha20-Poly1305 and X25519 case,
//! the BLAKE2s known answers, the cacophony Noise_IK / Noise_IKpsk2
//! vectors, and real kernel WireGuard traffic (all 1212 transport packets
//! must open; replayed, each must be refused). Skipped, with the reason
//! printed, where ../shared is absent.

use std::path::PathBuf;

use serde_json::Value;

use super::*;
use crate::tunnel::noise::SessionKeys;
use crate::tunnel::session::Session;

fn corpus(dir: &str) -> Option<PathBuf> {
    let p = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/corpora")).join(dir);
    p.is_dir().then_some(p)
}

/// Printed, and appended to `$PATRONUS_SKIP_LOG` so `scripts/test.sh`
/// lists it at the end.
fn skip(test: &str, why: &str) {
    let line = format!("SKIPPED tunnel::{test}: {why}");
    eprintln!("{line}");
    if let Ok(path) = std::env::var("PATRONUS_SKIP_LOG") {
        if let Ok(mut f) = std::fs::OpenOptions::new().create(true).append(true).open(path) {
            let _ = std::io::Write::write_all(&mut f, format!("{line}\n").as_bytes());
        }
    }
}

fn json(p: PathBuf) -> Value {
    serde_json::from_slice(&std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))).expect("JSON")
}

fn h(v: &Value) -> Vec<u8> {
    hex(v.as_str().expect("hex string"))
}

/// Every test of every group of a Wycheproof file, with its group.
fn wycheproof(v: &Value) -> impl Iterator<Item = (&Value, &Value)> {
    v["testGroups"].as_array().unwrap().iter().flat_map(|g| g["tests"].as_array().unwrap().iter().map(move |t| (g, t)))
}

#[test]
fn wycheproof_chacha20_poly1305() {
    let Some(dir) = corpus("crypto") else { return skip("wycheproof_chacha20_poly1305", "../shared/corpora/crypto is absent") };
    let v = json(dir.join("chacha20_poly1305_test.json"));
    let mut n = 0;
    for (_, t) in wycheproof(&v) {
        n += 1;
        let (key, iv, aad, msg, ct, tag) = (h(&t["key"]), h(&t["iv"]), h(&t["aad"]), h(&t["msg"]), h(&t["ct"]), h(&t["tag"]));
        let valid = t["result"] == "valid";
        let id = &t["tcId"];
        // Only 96-bit nonces exist in RFC 8439; every other size is invalid.
        let (Ok(key), Ok(iv), Ok(tag)) = (<[u8; 32]>::try_from(key), <[u8; 12]>::try_from(iv), <[u8; 16]>::try_from(tag)) else {
            assert!(!valid, "tcId {id}: a valid case we cannot express");
            continue;
        };
        // Both implementations: ring and intel-ipsec-mb.
        let c = RingChaCha::new(&key);
        let mut buf = ct.clone();
        assert_eq!(c.open_nonce(iv, &aad, &mut buf, &tag), valid, "tcId {id} open");
        if valid {
            assert_eq!(buf, msg, "tcId {id} plaintext");
            let mut buf = msg.clone();
            assert_eq!((c.seal_nonce(iv, &aad, &mut buf), buf), (tag, ct.clone()), "tcId {id} seal");
        }
        let c = crate::tunnel::crypto::ImbChaCha::new(&key);
        let mut buf = ct.clone();
        assert_eq!(c.open_nonce(iv, &aad, &mut buf, &tag), valid, "tcId {id} open (ipsec-mb)");
        if valid {
            assert_eq!(buf, msg, "tcId {id} plaintext (ipsec-mb)");
            let mut buf = msg.clone();
            assert_eq!((c.seal_nonce(iv, &aad, &mut buf), buf), (tag, ct), "tcId {id} seal (ipsec-mb)");
        }
    }
    assert_eq!(n, 325);
}

#[test]
fn wycheproof_xchacha20_poly1305() {
    let Some(dir) = corpus("crypto") else { return skip("wycheproof_xchacha20_poly1305", "../shared/corpora/crypto is absent") };
    let v = json(dir.join("xchacha20_poly1305_test.json"));
    let mut n = 0;
    for (_, t) in wycheproof(&v) {
        n += 1;
        let (key, iv, aad, msg, ct, tag) = (h(&t["key"]), h(&t["iv"]), h(&t["aad"]), h(&t["msg"]), h(&t["ct"]), h(&t["tag"]));
        let valid = t["result"] == "valid";
        let id = &t["tcId"];
        let (Ok(key), Ok(iv)) = (<[u8; 32]>::try_from(key), <[u8; 24]>::try_from(iv)) else {
            assert!(!valid, "tcId {id}");
            continue;
        };
        let sealed = [&ct[..], &tag[..]].concat();
        let mut out = vec![0u8; msg.len()];
        let opened = tag.len() == 16 && crypto::xopen(&key, &iv, &sealed, &aad, &mut out);
        assert_eq!(opened, valid, "tcId {id} open");
        if valid {
            assert_eq!(out, msg);
            let mut again = vec![0u8; sealed.len()];
            crypto::xseal(&key, &iv, &msg, &aad, &mut again);
            assert_eq!(again, sealed, "tcId {id} seal");
        }
    }
    assert_eq!(n, 315);
}

#[test]
fn wycheproof_x25519() {
    let Some(dir) = corpus("crypto") else { return skip("wycheproof_x25519", "../shared/corpora/crypto is absent") };
    let v = json(dir.join("x25519_test.json"));
    let (mut n, mut zero) = (0, 0);
    for (_, t) in wycheproof(&v) {
        n += 1;
        let private: [u8; 32] = h(&t["private"]).try_into().unwrap();
        let public: [u8; 32] = h(&t["public"]).try_into().unwrap();
        let shared = h(&t["shared"]);
        let got = crypto::dh(&x25519_dalek::StaticSecret::from(private), &public);
        if shared.iter().all(|&b| b == 0) {
            zero += 1;
            assert_eq!(got, None, "tcId {}: an all-zero secret must be refused", t["tcId"]);
        } else {
            assert_eq!(got.map(|g| g.to_vec()), Some(shared), "tcId {}", t["tcId"]);
        }
    }
    assert_eq!(n, 518);
    assert!(zero > 0, "the file has zero-secret cases");
}

#[test]
fn blake2s_known_answers() {
    let Some(dir) = corpus("crypto") else { return skip("blake2s_known_answers", "../shared/corpora/crypto is absent") };
    let v = json(dir.join("blake2s-kat.json"));
    let mut n = 0;
    for case in v.as_array().unwrap() {
        let (input, key, out) = (h(&case["in"]), h(&case["key"]), h(&case["out"]));
        if key.is_empty() {
            assert_eq!(crypto::hash(&[&input]).to_vec(), out);
        } else {
            use blake2::digest::{FixedOutput, KeyInit, Update};
            let mut m = blake2::Blake2sMac256::new_from_slice(&key).unwrap();
            m.update(&input);
            assert_eq!(m.finalize_fixed().to_vec(), out);
        }
        n += 1;
    }
    assert_eq!(n, 512);
}

/// Runs one cacophony IK / IKpsk2 vector through [`SymmetricState`] as
/// both parties, then its transport messages.
fn cacophony_vector(v: &Value) {
    let name = v["protocol_name"].as_str().unwrap();
    let psk: Option<[u8; 32]> = v["init_psks"].as_array().and_then(|a| a.first()).map(|p| h(p).try_into().unwrap());
    let key = |f: &str| x25519_dalek::StaticSecret::from(<[u8; 32]>::try_from(h(&v[f])).unwrap());
    let (s_i, e_i, s_r, e_r) = (key("init_static"), key("init_ephemeral"), key("resp_static"), key("resp_ephemeral"));
    let (s_i_pub, e_i_pub, s_r_pub, e_r_pub) =
        (crypto::public_key(&s_i), crypto::public_key(&e_i), crypto::public_key(&s_r), crypto::public_key(&e_r));
    let dh = |a: &x25519_dalek::StaticSecret, b: &[u8; 32]| crypto::dh(a, b).unwrap();
    let msgs = v["messages"].as_array().unwrap();
    let prologue = h(&v["init_prologue"]);
    let mut i = SymmetricState::new(name.as_bytes());
    let mut r = i.clone();
    for s in [&mut i, &mut r] {
        s.mix_hash(&prologue);
        s.mix_hash(&s_r_pub);
    }

    // -> e, es, s, ss, payload
    let payload = h(&msgs[0]["payload"]);
    let mut out = e_i_pub.to_vec();
    i.mix_hash(&e_i_pub);
    if psk.is_some() {
        i.mix_key(&e_i_pub);
    }
    i.mix_key(&dh(&e_i, &s_r_pub));
    let mut s_ct = [0u8; 48];
    i.encrypt_and_hash(&s_i_pub, &mut s_ct);
    out.extend_from_slice(&s_ct);
    i.mix_key(&dh(&s_i, &s_r_pub));
    let mut p_ct = vec![0u8; payload.len() + 16];
    i.encrypt_and_hash(&payload, &mut p_ct);
    out.extend_from_slice(&p_ct);
    assert_eq!(out, h(&msgs[0]["ciphertext"]), "{name}: message 1");
    // The responder reads it.
    r.mix_hash(&e_i_pub);
    if psk.is_some() {
        r.mix_key(&e_i_pub);
    }
    r.mix_key(&dh(&s_r, &e_i_pub));
    let mut got_s = [0u8; 32];
    assert!(r.decrypt_and_hash(&out[32..80], &mut got_s));
    assert_eq!(got_s, s_i_pub);
    r.mix_key(&dh(&s_r, &got_s));
    let mut got_p = vec![0u8; payload.len()];
    assert!(r.decrypt_and_hash(&out[80..], &mut got_p));
    assert_eq!(got_p, payload);

    // <- e, ee, se, (psk), payload
    let payload = h(&msgs[1]["payload"]);
    let mut out = e_r_pub.to_vec();
    r.mix_hash(&e_r_pub);
    if psk.is_some() {
        r.mix_key(&e_r_pub);
    }
    r.mix_key(&dh(&e_r, &e_i_pub));
    r.mix_key(&dh(&e_r, &s_i_pub));
    if let Some(p) = psk {
        r.mix_key_and_hash(&p);
    }
    let mut p_ct = vec![0u8; payload.len() + 16];
    r.encrypt_and_hash(&payload, &mut p_ct);
    out.extend_from_slice(&p_ct);
    assert_eq!(out, h(&msgs[1]["ciphertext"]), "{name}: message 2");
    i.mix_hash(&e_r_pub);
    if psk.is_some() {
        i.mix_key(&e_r_pub);
    }
    i.mix_key(&dh(&e_i, &e_r_pub));
    i.mix_key(&dh(&s_i, &e_r_pub));
    if let Some(p) = psk {
        i.mix_key_and_hash(&p);
    }
    let mut got_p = vec![0u8; payload.len()];
    assert!(i.decrypt_and_hash(&out[32..], &mut got_p));
    assert_eq!(got_p, payload);
    assert_eq!(i.h.to_vec(), h(&v["handshake_hash"]), "{name}: handshake hash");
    assert_eq!(r.h, i.h);

    // Transport: alternating, each direction's nonce from 0.
    let (i_send, i_recv) = i.split();
    let (mut n_ir, mut n_ri) = (0u64, 0u64);
    for (k, m) in msgs.iter().enumerate().skip(2) {
        let payload = h(&m["payload"]);
        let (key, n) = if k % 2 == 0 { (&i_send, &mut n_ir) } else { (&i_recv, &mut n_ri) };
        let mut buf = payload.clone();
        let tag = RingChaCha::new(key).seal(*n, &[], &mut buf);
        buf.extend_from_slice(&tag);
        assert_eq!(buf, h(&m["ciphertext"]), "{name}: transport message {k}");
        *n += 1;
    }
}

#[test]
fn cacophony_noise_ik_and_ikpsk2() {
    let Some(dir) = corpus("crypto") else { return skip("cacophony_noise_ik_and_ikpsk2", "../shared/corpora/crypto is absent") };
    let v = json(dir.join("cacophony_IK_IKpsk2_25519_ChaChaPoly_BLAKE2s.json"));
    let vectors = v["vectors"].as_array().unwrap();
    for vector in vectors {
        cacophony_vector(vector);
    }
    assert!(vectors.iter().any(|x| x["protocol_name"] == "Noise_IKpsk2_25519_ChaChaPoly_BLAKE2s"));
}

fn base64_32(s: &str) -> [u8; 32] {
    let val = |c: u8| match c {
        b'A'..=b'Z' => c - b'A',
        b'a'..=b'z' => c - b'a' + 26,
        b'0'..=b'9' => c - b'0' + 52,
        b'+' => 62,
        b'/' => 63,
        _ => panic!("base64"),
    } as u32;
    let s = s.trim_end_matches('=').as_bytes();
    let mut out = Vec::new();
    for chunk in s.chunks(4) {
        let mut n = 0u32;
        for (i, &c) in chunk.iter().enumerate() {
            n |= val(c) << (18 - 6 * i);
        }
        out.extend_from_slice(&n.to_be_bytes()[1..chunk.len()]);
    }
    out.try_into().expect("32 bytes")
}

/// The UDP payloads of a classic Ethernet pcap.
pub(crate) fn udp_payloads(pcap: &[u8]) -> Vec<Vec<u8>> {
    assert_eq!(&pcap[..4], &[0xd4, 0xc3, 0xb2, 0xa1], "little-endian classic pcap");
    let mut out = Vec::new();
    let mut at = 24;
    while at + 16 <= pcap.len() {
        let caplen = u32::from_le_bytes(pcap[at + 8..at + 12].try_into().unwrap()) as usize;
        let frame = &pcap[at + 16..at + 16 + caplen];
        at += 16 + caplen;
        if frame.len() < 42 || frame[12..14] != [0x08, 0x00] || frame[23] != 17 {
            continue;
        }
        let ihl = (frame[14] & 15) as usize * 4;
        let udp = &frame[14 + ihl..];
        let len = u16::from_be_bytes([udp[4], udp[5]]) as usize;
        out.push(udp[8..len].to_vec());
    }
    out
}

#[test]
fn kernel_wireguard_trace_opens_and_replays_are_refused() {
    let Some(dir) = corpus("wireguard-trace") else {
        return skip("kernel_wireguard_trace_opens_and_replays_are_refused", "../shared/corpora/wireguard-trace is absent");
    };
    let keys = std::fs::read_to_string(dir.join("8-trace.keys")).unwrap();
    let mut sessions: std::collections::HashMap<u32, Session> = Default::default();
    let mut fields: Vec<(String, u32, [u8; 32], [u8; 32])> = Vec::new();
    for line in keys.lines().filter(|l| !l.trim().is_empty()) {
        let f: Vec<&str> = line.split_whitespace().collect();
        let idx = |s: &str| u32::from_str_radix(s.trim_start_matches("0x"), 16).unwrap();
        match f[..] {
            [kind, i, key, hash] => fields.push((kind.into(), idx(i), base64_32(key), base64_32(hash))),
            [i, key] => {
                let keys = SessionKeys { send: [0; 32], recv: base64_32(key), local_index: idx(i), remote_index: 0, initiator: false };
                sessions.insert(idx(i), Session::new(&keys, 0, Duration::ZERO));
            }
            _ => panic!("unexpected line {line:?}"),
        }
    }
    let msgs = udp_payloads(&std::fs::read(dir.join("8-trace.pcap")).unwrap());
    let (mut transport, mut handshake_fields) = (Vec::new(), 0);
    for m in &msgs {
        match wg::message_type(m) {
            Ok(wg::kind::TRANSPORT) => transport.push(m.clone()),
            Ok(wg::kind::INITIATION) => {
                let sender = wg::le32(m, wg::field::init::SENDER);
                for (kind, idx, key, hash) in &fields {
                    if *idx != sender {
                        continue;
                    }
                    let (range, len) = match kind.as_str() {
                        "STAT" => (wg::field::init::STATIC, 32),
                        "TIME" => (wg::field::init::TIMESTAMP, 12),
                        _ => continue,
                    };
                    let mut out = vec![0u8; len];
                    assert!(crypto::open_to(key, 0, &m[range], hash, &mut out), "{kind} of initiation {sender:#x}");
                    if kind == "TIME" {
                        assert_eq!(out[0], 0x40, "a TAI64N label");
                    }
                    handshake_fields += 1;
                }
            }
            Ok(wg::kind::RESPONSE) => {
                let sender = wg::le32(m, wg::field::resp::SENDER);
                for (kind, idx, key, hash) in &fields {
                    if kind == "EMPT" && *idx == sender {
                        assert!(crypto::open_to(key, 0, &m[wg::field::resp::EMPTY], hash, &mut []), "EMPT of response {sender:#x}");
                        handshake_fields += 1;
                    }
                }
            }
            other => panic!("unexpected message {other:?}"),
        }
    }
    assert_eq!(handshake_fields, 15, "5 STAT, 5 TIME, 5 EMPT");
    assert_eq!(transport.len(), 1212);
    let mut opened = 0;
    for m in &transport {
        let (idx, _) = wg::transport_header(m);
        let s = sessions.get(&idx).unwrap_or_else(|| panic!("no key for index {idx:#x}"));
        let mut buf = m.clone();
        let n = s.open(&mut buf).unwrap_or_else(|e| panic!("index {idx:#x}: {e:?}"));
        if n > 0 {
            assert!(matches!(buf[16] >> 4, 4 | 6), "an IP packet inside");
        }
        opened += 1;
    }
    assert_eq!(opened, 1212);
    for m in &transport {
        let (idx, _) = wg::transport_header(m);
        assert_eq!(sessions[&idx].open(&mut m.clone()), Err(DropReason::TunnelReplay));
    }
}
