//! `patronus genkey` / `patronus pubkey` against WireGuard's own `wg genkey`
//! / `wg pubkey`: interchangeable both ways, and RFC 7748's X25519 vector.

mod common;

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;

fn run_with_stdin(cmd: &mut Command, input: &str) -> (i32, String, String) {
    let mut child = cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("spawn");
    child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
    let out = wait_output(child, Duration::from_secs(30));
    (out.status.code().unwrap_or(-1), text(&out.stdout), text(&out.stderr))
}

fn b64(hex: &str) -> String {
    let bytes: Vec<u8> = (0..hex.len()).step_by(2).map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap()).collect();
    patronus::config::keys::encode_base64_32(&bytes.try_into().unwrap())
}

#[test]
fn pubkey_computes_rfc7748s_x25519_public_keys() {
    // RFC 7748 section 6.1: Alice's and Bob's key pairs.
    for (private, public) in [
        (
            "77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a",
            "8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a",
        ),
        (
            "5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb",
            "de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f",
        ),
    ] {
        let (code, out, err) = run_with_stdin(patronus().arg("pubkey"), &format!("{}\n", b64(private)));
        assert_eq!(code, 0, "{err}");
        assert_eq!(out.trim(), b64(public));
    }
}

#[test]
fn genkey_and_pubkey_are_interchangeable_with_wg() {
    let name = "keys::genkey_and_pubkey_are_interchangeable_with_wg";
    if !try_sh("command -v wg").0 {
        return skip(name, "`wg` is not installed (scripts/setup.sh installs wireguard-tools)");
    }
    for _ in 0..10 {
        // wg genkey -> both pubkeys agree.
        let k = sh("wg genkey");
        let (code, ours, _) = run_with_stdin(patronus().arg("pubkey"), &k);
        assert_eq!(code, 0);
        let (_, theirs, _) = run_with_stdin(Command::new("wg").arg("pubkey"), &k);
        assert_eq!(ours, theirs);
        // patronus genkey -> wg accepts it, and both pubkeys agree.
        let out = run_with_timeout(patronus().arg("genkey"), Duration::from_secs(10));
        let k = text(&out.stdout);
        assert_eq!(k.trim().len(), 44, "{k}");
        let raw = b64_decode(k.trim());
        assert_eq!((raw[0] & 7, raw[31] & 0xc0), (0, 0x40), "clamped as wg genkey clamps");
        let (code, theirs, err) = run_with_stdin(Command::new("wg").arg("pubkey"), &k);
        assert_eq!(code, 0, "wg pubkey refused our key: {err}");
        let (_, ours, _) = run_with_stdin(patronus().arg("pubkey"), &k);
        assert_eq!(ours, theirs);
    }
}

#[test]
fn pubkey_refuses_what_is_not_a_key_without_echoing_it() {
    for bad in ["", "not a key\n", "AAAA\n", &"A".repeat(44), "ZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZ==\n"] {
        let (code, out, err) = run_with_stdin(patronus().arg("pubkey"), bad);
        assert_eq!(code, 2, "{bad:?}: {out}{err}");
        assert!(out.is_empty() && err.contains("not a private key"), "{err}");
        assert!(bad.trim().is_empty() || !err.contains(bad.trim()), "the input is never echoed: {err}");
    }
}

fn b64_decode(s: &str) -> Vec<u8> {
    let val = |c: u8| match c {
        b'A'..=b'Z' => c - b'A',
        b'a'..=b'z' => c - b'a' + 26,
        b'0'..=b'9' => c - b'0' + 52,
        b'+' => 62,
        _ => 63,
    } as u32;
    let mut out = Vec::new();
    for chunk in s.trim_end_matches('=').as_bytes().chunks(4) {
        let mut n = 0u32;
        for (j, &c) in chunk.iter().enumerate() {
            n |= val(c) << (18 - 6 * j);
        }
        out.extend_from_slice(&n.to_be_bytes()[1..chunk.len()]);
    }
    out
}
