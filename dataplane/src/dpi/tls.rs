//! TLS ClientHello: server name (SNI) and ALPN, from one or more records
//! (a ClientHello may span records and TCP segments).

/// The longest ClientHello reassembled (larger ones are rare: post-quantum
/// key shares bring them to ~1.8 KiB).
pub const MAX_HELLO: usize = 4096;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ClientHello<'a> {
    pub sni: &'a [u8],
    /// The first ALPN protocol offered.
    pub alpn: &'a [u8],
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Hello<'a> {
    Done(ClientHello<'a>),
    /// Incomplete: this many bytes of records are needed in all.
    Partial(usize),
    Invalid,
}

/// Does this payload start a TLS ClientHello record?
pub fn starts_client_hello(p: &[u8]) -> bool {
    p.len() >= 6 && p[0] == 0x16 && p[1] == 3 && p[2] <= 4 && p[5] == 1
}

/// Parses a ClientHello from the start of a TCP stream (one record, which
/// may span several segments: `Partial` says how much is needed).
pub fn client_hello(stream: &[u8]) -> Hello<'_> {
    if !starts_client_hello(stream) {
        return Hello::Invalid;
    }
    let rec_len = u16::from_be_bytes([stream[3], stream[4]]) as usize;
    let Some(body) = stream.get(5..5 + rec_len) else {
        return Hello::Partial(5 + rec_len);
    };
    if body.len() < 4 {
        return Hello::Invalid;
    }
    let msg_len = u32::from_be_bytes([0, body[1], body[2], body[3]]) as usize;
    if 4 + msg_len > body.len() {
        // A hello split over several records is rare: it ends as TLS
        // without a name.
        return Hello::Invalid;
    }
    match parse(&body[4..4 + msg_len]) {
        Some(h) => Hello::Done(h),
        None => Hello::Invalid,
    }
}

/// Parses a ClientHello handshake message not wrapped in records (as QUIC
/// carries it in its crypto stream).
pub fn handshake(s: &[u8]) -> Hello<'_> {
    if s.len() < 4 {
        return if s.first().is_none_or(|&t| t == 1) { Hello::Partial(4) } else { Hello::Invalid };
    }
    if s[0] != 1 {
        return Hello::Invalid;
    }
    let len = u32::from_be_bytes([0, s[1], s[2], s[3]]) as usize;
    let Some(body) = s.get(4..4 + len) else {
        return Hello::Partial(4 + len);
    };
    match parse(body) {
        Some(h) => Hello::Done(h),
        None => Hello::Invalid,
    }
}

/// The ClientHello body (after the 4-byte handshake header).
fn parse(m: &[u8]) -> Option<ClientHello<'_>> {
    let mut r = Reader(m);
    r.skip(2 + 32)?; // version, random
    let sid = r.u8()? as usize;
    r.skip(sid)?;
    let cs = r.u16()? as usize;
    r.skip(cs)?;
    let comp = r.u8()? as usize;
    r.skip(comp)?;
    let mut out = ClientHello::default();
    if r.0.is_empty() {
        return Some(out); // no extensions
    }
    let ext_len = r.u16()? as usize;
    let mut ext = Reader(r.take(ext_len)?);
    while !ext.0.is_empty() {
        let typ = ext.u16()?;
        let len = ext.u16()? as usize;
        let mut e = Reader(ext.take(len)?);
        match typ {
            0 => {
                let _list = e.u16()?;
                while !e.0.is_empty() {
                    let kind = e.u8()?;
                    let n = e.u16()? as usize;
                    let name = e.take(n)?;
                    if kind == 0 {
                        out.sni = name;
                        break;
                    }
                }
            }
            16 => {
                let _list = e.u16()?;
                let n = e.u8()? as usize;
                out.alpn = e.take(n)?;
            }
            _ => {}
        }
    }
    Some(out)
}

/// A cursor over wire bytes (TLS here, QUIC in quic.rs).
pub(super) struct Reader<'a>(pub(super) &'a [u8]);

impl<'a> Reader<'a> {
    pub(super) fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if n > self.0.len() {
            return None;
        }
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        Some(a)
    }
    pub(super) fn skip(&mut self, n: usize) -> Option<()> {
        self.take(n).map(|_| ())
    }
    pub(super) fn u8(&mut self) -> Option<u8> {
        self.take(1).map(|b| b[0])
    }
    pub(super) fn u16(&mut self) -> Option<u16> {
        self.take(2).map(|b| u16::from_be_bytes([b[0], b[1]]))
    }
}
