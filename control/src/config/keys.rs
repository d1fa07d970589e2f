//! Private key files. A key is read only from a regular file that nobody
//! but its owner (root, or the user patronus runs as) can read or write,
//! in WireGuard's format (`wg genkey`: 32 bytes in base64). Key bytes never
//! appear in an error, a log line or a `Debug` print, and are wiped when
//! dropped.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

/// An x25519 private key.
pub struct PrivateKey([u8; 32]);

impl PrivateKey {
    pub fn bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl std::fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PrivateKey(<redacted>)")
    }
}

impl Drop for PrivateKey {
    fn drop(&mut self) {
        for b in self.0.iter_mut() {
            // SAFETY: a valid, aligned &mut u8; volatile so it is not elided.
            unsafe { std::ptr::write_volatile(b, 0) };
        }
    }
}

/// Checks a file that holds a secret (a key, a token file) before it is
/// read: a regular file, not accessible to group or others, owned by root
/// or the running user. `what` names the file in errors ("key file",
/// "token file"), `secret` what it holds ("a private key").
pub fn check_secret_file(path: &Path, what: &str, secret: &str) -> Result<(), String> {
    let shown = path.display();
    let meta = std::fs::metadata(path).map_err(|e| format!("cannot read {what} {shown}: {e}"))?;
    if !meta.is_file() {
        return Err(format!("{what} {shown} is not a regular file"));
    }
    let mode = meta.permissions().mode() & 0o7777;
    if mode & 0o077 != 0 {
        return Err(format!(
            "{what} {shown} has mode {mode:04o}: {secret} must not be accessible to group or others; run `chmod 600 {shown}`"
        ));
    }
    // SAFETY: geteuid has no preconditions.
    let me = unsafe { libc::geteuid() };
    if meta.uid() != 0 && meta.uid() != me {
        return Err(format!("{what} {shown} is owned by uid {}; expected root or uid {me} (the user patronus runs as)", meta.uid()));
    }
    Ok(())
}

/// Reads and checks a private key file. Errors name the file and say what
/// to do; they never quote its contents.
pub fn load_private_key(path: &Path) -> Result<PrivateKey, String> {
    let shown = path.display();
    check_secret_file(path, "key file", "a private key")?;
    let text = std::fs::read(path).map_err(|e| format!("cannot read key file {shown}: {e}"))?;
    let trimmed = text.trim_ascii();
    let key = decode_base64_32(trimmed).ok_or_else(|| {
        format!(
            "key file {shown} does not hold a WireGuard private key: expected 44 characters of base64 (32 bytes), as `wg genkey` writes"
        )
    })?;
    Ok(PrivateKey(key))
}

/// A new private key as `wg genkey` makes one: 32 bytes from the kernel's
/// random source, clamped for X25519.
pub fn generate() -> Result<PrivateKey, String> {
    let mut k = [0u8; 32];
    // SAFETY: a valid 32-byte buffer.
    let n = unsafe { libc::getrandom(k.as_mut_ptr().cast(), 32, 0) };
    if n != 32 {
        return Err(format!("getrandom: {}", std::io::Error::last_os_error()));
    }
    k[0] &= 248;
    k[31] = (k[31] & 127) | 64;
    Ok(PrivateKey(k))
}

impl PrivateKey {
    /// Parses WireGuard's base64 form (as `wg pubkey` reads it).
    pub fn from_base64(s: &str) -> Option<PrivateKey> {
        decode_base64_32(s.trim().as_bytes()).map(PrivateKey)
    }

    /// WireGuard's base64 form (for `patronus genkey` only: never logged).
    pub fn to_base64(&self) -> String {
        encode_base64_32(&self.0)
    }

    /// The X25519 public key (RFC 7748), in WireGuard's base64 form.
    pub fn public_base64(&self) -> String {
        encode_base64_32(&x25519_dalek::x25519(self.0, x25519_dalek::X25519_BASEPOINT_BYTES))
    }
}

/// Standard, padded base64 of 32 bytes (44 characters).
pub fn encode_base64_32(b: &[u8; 32]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(44);
    for chunk in b.chunks(3) {
        let n = (chunk[0] as u32) << 16 | (*chunk.get(1).unwrap_or(&0) as u32) << 8 | *chunk.get(2).unwrap_or(&0) as u32;
        let chars = chunk.len() + 1;
        for j in 0..4 {
            out.push(if j < chars { A[(n >> (18 - 6 * j) & 63) as usize] as char } else { '=' });
        }
    }
    out
}

/// A public key in WireGuard's base64 form.
pub fn decode_public_base64(s: &str) -> Option<[u8; 32]> {
    decode_base64_32(s.trim().as_bytes())
}

/// Decodes exactly 32 bytes of standard, padded base64 (44 characters).
fn decode_base64_32(s: &[u8]) -> Option<[u8; 32]> {
    if s.len() != 44 || s[43] != b'=' || s[42] == b'=' {
        return None;
    }
    let val = |c: u8| -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        } as u32)
    };
    let mut out = [0u8; 33];
    for (i, chunk) in s.chunks(4).enumerate() {
        let mut n = 0u32;
        for (j, &c) in chunk.iter().enumerate() {
            let v = if i == 10 && j == 3 { 0 } else { val(c)? };
            n |= v << (18 - 6 * j);
        }
        out[i * 3..i * 3 + 3].copy_from_slice(&n.to_be_bytes()[1..]);
    }
    // The last character before '=' may only carry 2 meaningful bits.
    if out[32] != 0 {
        return None;
    }
    let mut key = [0u8; 32];
    key.copy_from_slice(&out[..32]);
    out.fill(0);
    Some(key)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    // RFC 7748 section 6.1: Alice's private key.
    const ALICE_HEX: &str = "77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a";
    const ALICE_B64: &str = "dwdtCnMYpX08FsFyUbJmRd9ML4frwJkqsXf7pR25LCo=";

    fn key_file(name: &str, text: &str, mode: u32) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("patronus-keys-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join(name);
        let _ = std::fs::remove_file(&p);
        std::fs::File::create(&p).unwrap().write_all(text.as_bytes()).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
        p
    }

    #[test]
    fn a_wg_key_with_tight_permissions_loads() {
        let p = key_file("good.key", &format!("{ALICE_B64}\n"), 0o600);
        let k = load_private_key(&p).unwrap();
        let hex: String = k.bytes().iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(hex, ALICE_HEX);
        assert_eq!(format!("{k:?}"), "PrivateKey(<redacted>)");
    }

    #[test]
    fn loose_permissions_are_refused() {
        let p = key_file("loose.key", ALICE_B64, 0o644);
        let e = load_private_key(&p).unwrap_err();
        assert!(e.contains("has mode 0644") && e.contains("chmod 600"), "{e}");
        assert!(!e.contains(ALICE_B64));
    }

    #[test]
    fn malformed_keys_are_refused_without_quoting_them() {
        for (name, text) in [
            ("short.key", &ALICE_B64[..40]),
            ("nopad.key", "dwdtCnMYpX08FsFyUbJmRd9ML4frwJkqsXf7pR25LCoA"),
            ("junk.key", "dwdtCnMYpX08FsFyUbJmRd9ML4frwJkqsXf7pR25LC!="),
            ("bits.key", "dwdtCnMYpX08FsFyUbJmRd9ML4frwJkqsXf7pR25LCp="),
        ] {
            let p = key_file(name, text, 0o600);
            let e = load_private_key(&p).unwrap_err();
            assert!(e.contains("does not hold a WireGuard private key"), "{name}: {e}");
            assert!(!e.contains(text), "{name}: the error quotes the key");
        }
        let e = load_private_key(Path::new("/nonexistent/site.key")).unwrap_err();
        assert!(e.starts_with("cannot read key file /nonexistent/site.key"), "{e}");
    }
}
