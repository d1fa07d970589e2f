//! QUIC: the server name from a client's first flight.
//!
//! - IETF QUIC v1 (RFC 9001), v2 (RFC 9369) and drafts 23-34, and Google's
//!   Q050/T050/T051, protect Initial packets with keys derived from the
//!   destination connection ID and a per-version salt. We derive them,
//!   remove header protection, open the AES-128-GCM payload, collect the
//!   CRYPTO frames (Chrome splits and reorders them; a post-quantum
//!   ClientHello spans several Initial packets) and read the TLS
//!   ClientHello (or, for Q050, the gQUIC CHLO) from the crypto stream.
//! - Older gQUIC (Q024-Q046) sends its CHLO in clear.
//!
//! Nothing here allocates: decryption happens in a scratch buffer and the
//! crypto stream is reassembled in one of the worker's reassembly slots.

use ring::aead::{self, quic::HeaderProtectionKey, Aad, LessSafeKey, Nonce, UnboundKey};
use ring::hkdf::{self, KeyType, Prk, Salt};

use super::tls::{self, Reader, MAX_HELLO};

/// The versions we can open, by their Initial salt and HKDF label prefix.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Version {
    V1,
    V2,
    Draft23,
    Draft29,
    Q050,
    T050,
    T051,
}

impl Version {
    fn of(v: u32) -> Option<Version> {
        Some(match v {
            0x0000_0001 => Version::V1,
            0x6b33_43cf => Version::V2,
            0xff00_0017..=0xff00_001c => Version::Draft23,
            0xff00_001d..=0xff00_0022 => Version::Draft29,
            0x5130_3530 => Version::Q050, // "Q050"
            0x5430_3530 => Version::T050, // "T050"
            0x5430_3531 => Version::T051, // "T051"
            _ => return None,
        })
    }

    fn salt(self) -> &'static [u8; 20] {
        match self {
            Version::V1 => b"\x38\x76\x2c\xf7\xf5\x59\x34\xb3\x4d\x17\x9a\xe6\xa4\xc8\x0c\xad\xcc\xbb\x7f\x0a",
            Version::V2 => b"\x0d\xed\xe3\xde\xf7\x00\xa6\xdb\x81\x93\x81\xbe\x6e\x26\x9d\xcb\xf9\xbd\x2e\xd9",
            Version::Draft23 => b"\xc3\xee\xf7\x12\xc7\x2e\xbb\x5a\x11\xa7\xd2\x43\x2b\xb4\x63\x65\xbe\xf9\xf5\x02",
            Version::Draft29 => b"\xaf\xbf\xec\x28\x99\x93\xd2\x4c\x9e\x97\x86\xf1\x9c\x61\x11\xe0\x43\x90\xa8\x99",
            Version::Q050 => b"\x50\x45\x74\xef\xd0\x66\xfe\x2f\x9d\x94\x5c\xfc\xdb\xd3\xa7\xf0\xd3\xb5\x6b\x45",
            Version::T050 => b"\x7f\xf5\x79\xe5\xac\xd0\x72\x91\x55\x80\x30\x4c\x43\xa2\x36\x7c\x60\x48\x83\x10",
            Version::T051 => b"\x7a\x4e\xde\xf4\xe7\xcc\xee\x5f\xa4\x50\x6c\x19\x12\x4f\xc8\xcc\xda\x6e\x03\x3d",
        }
    }

    /// The long-header packet type bits of an Initial.
    fn initial_type(self) -> u8 {
        if self == Version::V2 {
            1
        } else {
            0
        }
    }

    fn labels(self) -> (&'static [u8], &'static [u8], &'static [u8]) {
        if self == Version::V2 {
            (b"quicv2 key", b"quicv2 iv", b"quicv2 hp")
        } else {
            (b"quic key", b"quic iv", b"quic hp")
        }
    }

    /// Google's QUIC-crypto (CHLO) rather than TLS in the crypto stream.
    fn chlo(self) -> bool {
        self == Version::Q050
    }
}

/// What a UDP payload told us.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Quic<'a> {
    /// Not QUIC as far as we can tell.
    No,
    /// QUIC; the client's hello is complete and names this server (empty:
    /// it names none, or we cannot read this version).
    Named(&'a [u8]),
    /// QUIC; more Initial packets are needed for the hello.
    More,
    /// QUIC, but not a client Initial we can open (the server's, a
    /// version we lack keys for, or a damaged packet).
    Opaque,
}

/// Crypto-stream reassembly for one flow: bytes by offset and which of
/// them have arrived.
pub struct Stream<'a> {
    pub buf: &'a mut [u8; MAX_HELLO],
    pub have: &'a mut [u64; MAX_HELLO / 64],
}

impl Stream<'_> {
    fn put(&mut self, off: usize, data: &[u8]) {
        if off >= MAX_HELLO {
            return;
        }
        let n = data.len().min(MAX_HELLO - off);
        self.buf[off..off + n].copy_from_slice(&data[..n]);
        for i in off..off + n {
            self.have[i / 64] |= 1 << (i % 64);
        }
    }

    /// Length of the contiguous prefix received.
    fn prefix(&self) -> usize {
        for (w, &bits) in self.have.iter().enumerate() {
            if bits != u64::MAX {
                return w * 64 + bits.trailing_ones() as usize;
            }
        }
        MAX_HELLO
    }
}

/// Is this the start of a QUIC long-header packet (or a gQUIC packet with
/// its version), and which version?
pub fn long_header_version(p: &[u8]) -> Option<u32> {
    if p.len() >= 5 && p[0] & 0x80 != 0 {
        let v = u32::from_be_bytes([p[1], p[2], p[3], p[4]]);
        if Version::of(v).is_some() || p[1] == b'Q' && p[2] == b'0' || v & 0xffff_ff00 == 0xff00_0000 {
            return Some(v);
        }
    }
    // gQUIC before Q046: public flags (version bit, 8-byte connection ID),
    // then the version "Q0nn".
    if p.len() >= 13 && p[0] & 0x81 == 0x01 && p[0] & 0x08 != 0 && p[9] == b'Q' && p[10] == b'0' {
        return Some(u32::from_be_bytes([p[9], p[10], p[11], p[12]]));
    }
    None
}

/// Reads the server name from a client's QUIC packet. `scratch` holds the
/// decrypted payload; `stream` collects the crypto stream across packets.
pub fn client_initial<'s>(p: &[u8], scratch: &'s mut [u8], stream: &'s mut Stream<'_>) -> Quic<'s> {
    let Some(v) = long_header_version(p) else {
        return Quic::No;
    };
    let Some(ver) = Version::of(v) else {
        // Plain-text gQUIC CHLO (Q024-Q046), or a version we cannot open.
        if p[0] & 0x80 == 0 || v >> 24 == u32::from(b'Q') {
            let n = p.len().min(scratch.len());
            scratch[..n].copy_from_slice(&p[..n]);
            return match chlo_sni(&scratch[..n]) {
                Some(sni) => Quic::Named(sni),
                None => Quic::Named(&[]),
            };
        }
        return Quic::Opaque;
    };
    let Some(plain) = open_initial(p, ver, scratch) else {
        return Quic::Opaque;
    };
    // CRYPTO frames into the stream.
    frames(plain, ver.chlo(), stream);
    let have = stream.prefix();
    let s: &'s [u8] = &stream.buf[..have];
    if ver.chlo() {
        return match chlo_sni(s) {
            Some(sni) => Quic::Named(sni),
            None if have < MAX_HELLO && !s.is_empty() && chlo_needs_more(s) => Quic::More,
            None => Quic::Named(&[]),
        };
    }
    match tls::handshake(s) {
        tls::Hello::Done(h) => Quic::Named(h.sni),
        tls::Hello::Partial(need) if need <= MAX_HELLO => Quic::More,
        _ => Quic::Named(&[]),
    }
}

/// Collects the CRYPTO frames of a decrypted Initial into `stream`
/// (stopping at the first frame an Initial should not carry).
pub fn frames(plain: &[u8], chlo: bool, stream: &mut Stream<'_>) {
    // Q050 numbers its CRYPTO frame 0x08.
    let crypto = if chlo { 0x08 } else { 0x06 };
    let mut r = Reader(plain);
    while let Some(t) = varint(&mut r) {
        match t {
            t if t == crypto => {
                let (Some(off), Some(len)) = (varint(&mut r), varint(&mut r)) else { break };
                let Some(data) = r.take(len as usize) else { break };
                stream.put(off as usize, data);
            }
            0x00 | 0x01 => {} // PADDING, PING
            0x02 | 0x03 => {
                // ACK: largest, delay, range count, first range, ranges (+ ECN).
                let (_, _, n, _) = (varint(&mut r), varint(&mut r), varint(&mut r), varint(&mut r));
                for _ in 0..n.unwrap_or(0).min(64) {
                    varint(&mut r);
                    varint(&mut r);
                }
                if t == 3 {
                    varint(&mut r);
                    varint(&mut r);
                    varint(&mut r);
                }
            }
            0x1c => {
                // CONNECTION_CLOSE: nothing more to read.
                break;
            }
            _ => break, // a frame an Initial should not carry
        }
    }
}

/// Removes header protection and opens an Initial packet into `scratch`;
/// returns the plaintext frames.
fn open_initial<'s>(p: &[u8], ver: Version, scratch: &'s mut [u8]) -> Option<&'s [u8]> {
    if (p[0] >> 4) & 3 != ver.initial_type() || p[0] & 0x40 == 0 && !matches!(ver, Version::Q050 | Version::T050 | Version::T051) {
        return None;
    }
    let mut r = Reader(&p[5..]);
    let dcid_len = r.u8()? as usize;
    if dcid_len > 20 {
        return None;
    }
    let dcid = r.take(dcid_len)?;
    let scid_len = r.u8()? as usize;
    r.take(scid_len)?;
    let token = varint(&mut r)?;
    r.take(token as usize)?;
    let len = varint(&mut r)? as usize;
    let pn_off = p.len() - r.0.len();
    if len < 20 || pn_off + len > p.len() || pn_off + len > scratch.len() {
        return None;
    }
    // Keys (RFC 9001 section 5.2).
    let initial = Salt::new(hkdf::HKDF_SHA256, ver.salt()).extract(dcid);
    let mut secret = [0u8; 32];
    expand_label(&initial, b"client in", &mut secret)?;
    let client = Prk::new_less_safe(hkdf::HKDF_SHA256, &secret);
    let (lk, liv, lhp) = ver.labels();
    let (mut key, mut iv, mut hp) = ([0u8; 16], [0u8; 12], [0u8; 16]);
    expand_label(&client, lk, &mut key)?;
    expand_label(&client, liv, &mut iv)?;
    expand_label(&client, lhp, &mut hp)?;
    // Header protection (section 5.4): sample 4 bytes past the packet number.
    let sample = p.get(pn_off + 4..pn_off + 20)?;
    let mask = HeaderProtectionKey::new(&aead::quic::AES_128, &hp).ok()?.new_mask(sample).ok()?;
    let pkt = &mut scratch[..pn_off + len];
    pkt.copy_from_slice(&p[..pn_off + len]);
    pkt[0] ^= mask[0] & 0x0f;
    let pn_len = (pkt[0] & 3) as usize + 1;
    let mut pn = 0u64;
    for i in 0..pn_len {
        pkt[pn_off + i] ^= mask[1 + i];
        pn = pn << 8 | pkt[pn_off + i] as u64;
    }
    let hdr_len = pn_off + pn_len;
    for (i, b) in pn.to_be_bytes().iter().enumerate() {
        iv[4 + i] ^= b;
    }
    let (hdr, body) = pkt.split_at_mut(hdr_len);
    let key = LessSafeKey::new(UnboundKey::new(&aead::AES_128_GCM, &key).ok()?);
    let plain = key.open_in_place(Nonce::assume_unique_for_key(iv), Aad::from(&*hdr), body).ok()?;
    Some(plain)
}

struct Len(usize);

impl KeyType for Len {
    fn len(&self) -> usize {
        self.0
    }
}

/// HKDF-Expand-Label (RFC 8446 section 7.1) with an empty context.
fn expand_label(prk: &Prk, label: &[u8], out: &mut [u8]) -> Option<()> {
    let len = (out.len() as u16).to_be_bytes();
    let llen = [6 + label.len() as u8];
    let info: [&[u8]; 5] = [&len, &llen, b"tls13 ", label, &[0]];
    prk.expand(&info, Len(out.len())).ok()?.fill(out).ok()
}

/// The SNI tag of a gQUIC CHLO message found in `p`.
fn chlo_sni(p: &[u8]) -> Option<&[u8]> {
    let at = super::extract::find(&p[..p.len().min(256)], b"CHLO")?;
    let m = &p[at..];
    let n = u16::from_le_bytes([*m.get(4)?, *m.get(5)?]) as usize;
    let table = m.get(8..8 + 8 * n)?;
    let values = &m[8 + 8 * n..];
    let mut start = 0usize;
    for e in table.chunks_exact(8) {
        let end = u32::from_le_bytes([e[4], e[5], e[6], e[7]]) as usize;
        if &e[..4] == b"SNI\0" {
            return values.get(start..end);
        }
        start = end;
    }
    None
}

/// Is a CHLO in `p` cut short (its tag values run past what we have)?
fn chlo_needs_more(p: &[u8]) -> bool {
    let Some(at) = super::extract::find(&p[..p.len().min(256)], b"CHLO") else {
        return p.len() < 8;
    };
    let m = &p[at..];
    let Some(n) = m.get(4..6).map(|b| u16::from_le_bytes([b[0], b[1]]) as usize) else {
        return true;
    };
    match m.get(8 + 8 * n - 4..8 + 8 * n) {
        Some(e) => m.len() < 8 + 8 * n + u32::from_le_bytes([e[0], e[1], e[2], e[3]]) as usize,
        None => true,
    }
}

/// A QUIC variable-length integer (RFC 9000 section 16).
fn varint(r: &mut Reader<'_>) -> Option<u64> {
    let first = *r.0.first()?;
    let b = r.take(1usize << (first >> 6))?;
    Some(b[1..].iter().fold((b[0] & 0x3f) as u64, |v, &x| v << 8 | x as u64))
}
