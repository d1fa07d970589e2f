//! Reading pcap and pcapng captures: every packet with its link type and
//! time. Malformed files give an error naming the offset, never a panic.
//! Link types other than Ethernet belong here, not to the workers: a
//! capture packet's IP header is found by [`Packet::ip_header`].

use std::path::Path;

use dataplane::wire::frame::{self, Ip};

/// The link layer a capture's packets start with (pcap's LINKTYPE values map here).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LinkType {
    Ethernet,
    /// Linux "cooked" capture v1 (16-byte header).
    LinuxSll,
    /// Linux cooked v2 (20-byte header).
    LinuxSll2,
    /// Raw IPv4 or IPv6, version from the first nibble.
    RawIp,
    /// BSD loopback: a 4-byte address family in host order.
    Null,
}

impl LinkType {
    /// From a pcap/pcapng LINKTYPE number.
    pub fn from_pcap(n: u32) -> Option<LinkType> {
        Some(match n {
            1 => LinkType::Ethernet,
            113 => LinkType::LinuxSll,
            276 => LinkType::LinuxSll2,
            101 | 12 | 14 => LinkType::RawIp,
            0 | 108 => LinkType::Null,
            _ => return None,
        })
    }

    /// Where the IP header of a packet of this link type starts: the link
    /// header read here, then the tags, labels and PPPoE walked by
    /// [`frame::walk`].
    pub fn ip_header(self, d: &[u8]) -> Option<Ip> {
        let be16 = |o: usize| d.get(o..o + 2).map(|b| u16::from_be_bytes([b[0], b[1]]));
        match self {
            LinkType::Ethernet => frame::ip_header(d),
            LinkType::LinuxSll => frame::walk(d, be16(14)?, 16),
            LinkType::LinuxSll2 => frame::walk(d, be16(0)?, 20),
            LinkType::RawIp => Ip::by_version(d, 0),
            LinkType::Null => {
                // The address family, in the capturing host's byte order:
                // AF_INET is 2 everywhere, AF_INET6 24, 28 or 30 by OS.
                let fam: [u8; 4] = d.get(..4)?.try_into().ok()?;
                let (le, be) = (u32::from_le_bytes(fam), u32::from_be_bytes(fam));
                match (le.min(be), le.max(be)) {
                    (2, _) => Some(Ip::V4(4)),
                    (_, 24 | 28 | 30) | (24 | 28 | 30, _) => Some(Ip::V6(4)),
                    _ => None,
                }
            }
        }
    }
}

pub struct Packet<'a> {
    pub link: Option<LinkType>,
    /// Nanoseconds since the epoch.
    pub ts_ns: u64,
    pub data: &'a [u8],
}

impl Packet<'_> {
    /// Where the packet's IP header starts, if it has one and its link
    /// type is known.
    pub fn ip_header(&self) -> Option<Ip> {
        self.link?.ip_header(self.data)
    }
}

/// A whole capture in memory.
pub struct Capture {
    bytes: Vec<u8>,
}

impl Capture {
    pub fn open(path: &Path) -> Result<Capture, String> {
        let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
        Ok(Capture { bytes })
    }

    /// The packets it holds (a walk over the record headers).
    pub fn packets(&self) -> usize {
        let mut n = 0;
        let _ = self.for_each(|_| n += 1);
        n
    }

    /// Calls `f` for each packet.
    pub fn for_each(&self, mut f: impl FnMut(Packet<'_>)) -> Result<u64, String> {
        let b = &self.bytes;
        if b.len() < 4 {
            return Err("too short for a capture".into());
        }
        match u32::from_le_bytes(b[..4].try_into().unwrap()) {
            0xa1b2c3d4 | 0xa1b23c4d | 0xd4c3b2a1 | 0x4d3cb2a1 => pcap(b, &mut f),
            0x0a0d0d0a => pcapng(b, &mut f),
            m => Err(format!("not a pcap or pcapng file (magic {m:#010x})")),
        }
    }
}

fn pcap(b: &[u8], f: &mut impl FnMut(Packet<'_>)) -> Result<u64, String> {
    if b.len() < 24 {
        return Err("pcap header truncated".into());
    }
    let magic = u32::from_le_bytes(b[..4].try_into().unwrap());
    let le = matches!(magic, 0xa1b2c3d4 | 0xa1b23c4d);
    let nano = matches!(magic, 0xa1b23c4d | 0x4d3cb2a1);
    let u32at = |o: usize| {
        let w: [u8; 4] = b[o..o + 4].try_into().unwrap();
        if le {
            u32::from_le_bytes(w)
        } else {
            u32::from_be_bytes(w)
        }
    };
    let link = LinkType::from_pcap(u32at(20) & 0x0fff_ffff);
    let mut off = 24;
    let mut n = 0;
    while off + 16 <= b.len() {
        let (sec, frac, incl) = (u32at(off) as u64, u32at(off + 4) as u64, u32at(off + 8) as usize);
        let data = b.get(off + 16..off + 16 + incl).ok_or_else(|| format!("packet at offset {off} truncated"))?;
        f(Packet { link, ts_ns: sec * 1_000_000_000 + if nano { frac } else { frac * 1000 }, data });
        n += 1;
        off += 16 + incl;
    }
    Ok(n)
}

fn pcapng(b: &[u8], f: &mut impl FnMut(Packet<'_>)) -> Result<u64, String> {
    let mut off = 0;
    let mut le = true;
    let mut ifaces: Vec<(Option<LinkType>, u64)> = Vec::new(); // link, ticks per second
    let mut n = 0;
    while off + 12 <= b.len() {
        let raw = |o: usize| -> [u8; 4] { b[o..o + 4].try_into().unwrap() };
        let typ_raw = raw(off);
        if u32::from_le_bytes(typ_raw) == 0x0a0d0d0a {
            // Section header: its byte-order magic sets the endianness.
            le = u32::from_le_bytes(raw(off + 8)) == 0x1a2b3c4d;
            ifaces.clear();
        }
        let u32at = |o: usize| if le { u32::from_le_bytes(raw(o)) } else { u32::from_be_bytes(raw(o)) };
        let u16at = |o: usize| {
            let w = [b[o], b[o + 1]];
            if le {
                u16::from_le_bytes(w)
            } else {
                u16::from_be_bytes(w)
            }
        };
        let typ = u32at(off);
        let len = u32at(off + 4) as usize;
        if len < 12 || !len.is_multiple_of(4) || off + len > b.len() {
            return Err(format!("pcapng block at offset {off} has bad length {len}"));
        }
        let body = off + 8..off + len - 4;
        match typ {
            1 if body.len() >= 8 => {
                let link = LinkType::from_pcap(u16at(body.start) as u32);
                // if_tsresol option (9): default microseconds.
                let mut hz = 1_000_000u64;
                let mut o = body.start + 8;
                while o + 4 <= body.end {
                    let (code, olen) = (u16at(o), u16at(o + 2) as usize);
                    if code == 0 {
                        break;
                    }
                    if code == 9 && olen >= 1 && o + 4 < body.end {
                        let v = b[o + 4];
                        hz = if v & 0x80 != 0 { 1u64 << (v & 0x7f).min(63) } else { 10u64.saturating_pow((v as u32).min(19)) };
                    }
                    o += 4 + olen.div_ceil(4) * 4;
                }
                ifaces.push((link, hz));
            }
            6 if body.len() >= 20 => {
                let iface = u32at(body.start) as usize;
                let ts = (u32at(body.start + 4) as u64) << 32 | u32at(body.start + 8) as u64;
                let cap = u32at(body.start + 12) as usize;
                let data = b.get(body.start + 20..body.start + 20 + cap).filter(|_| body.start + 20 + cap <= body.end);
                let data = data.ok_or_else(|| format!("pcapng packet at offset {off} overruns its block"))?;
                let (link, hz) = ifaces.get(iface).copied().unwrap_or((None, 1_000_000));
                let ts_ns = (ts as u128 * 1_000_000_000 / hz.max(1) as u128) as u64;
                f(Packet { link, ts_ns, data });
                n += 1;
            }
            3 if body.len() >= 4 => {
                let (link, _) = ifaces.first().copied().unwrap_or((None, 1_000_000));
                let orig = u32at(body.start) as usize;
                let data = &b[body.start + 4..body.end];
                f(Packet { link, ts_ns: 0, data: &data[..orig.min(data.len())] });
                n += 1;
            }
            _ => {}
        }
        off += len;
    }
    Ok(n)
}
