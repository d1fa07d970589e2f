//! DNS: the question's name, and an answer cache mapping the addresses
//! learnt from A/AAAA answers to the name asked for, so that a later flow
//! to one of them is classified on its first packet.

use std::net::IpAddr;

use super::Name;
use crate::vocab::AppId;

/// What a DNS message said.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Message {
    pub is_response: bool,
    pub qname: Name,
    pub answers: u16,
}

/// Parses the header and the first question. `None` if it is not a
/// plausible DNS message.
pub fn message(p: &[u8]) -> Option<Message> {
    if p.len() < 12 {
        return None;
    }
    let flags = u16::from_be_bytes([p[2], p[3]]);
    let qd = u16::from_be_bytes([p[4], p[5]]);
    let an = u16::from_be_bytes([p[6], p[7]]);
    let opcode = (flags >> 11) & 0xf;
    if qd != 1 || opcode > 5 || an > 256 {
        return None;
    }
    let (qname, end) = name(p, 12)?;
    p.get(end..end + 4)?; // qtype, qclass
    Some(Message { is_response: flags & 0x8000 != 0, qname, answers: an })
}

/// Reads a name at `off` (following compression pointers); returns it and
/// the offset after it in the message.
fn name(p: &[u8], mut off: usize) -> Option<(Name, usize)> {
    let mut buf = [0u8; 255];
    let mut len = 0;
    let mut end = None;
    for _ in 0..64 {
        let l = *p.get(off)? as usize;
        match l {
            0 => {
                return Some((Name::new(&buf[..len]), end.unwrap_or(off + 1)));
            }
            0xc0.. => {
                let ptr = (l & 0x3f) << 8 | *p.get(off + 1)? as usize;
                end.get_or_insert(off + 2);
                if ptr >= off {
                    return None; // pointers go backwards
                }
                off = ptr;
            }
            0x40.. => return None,
            _ => {
                let label = p.get(off + 1..off + 1 + l)?;
                if len + l + 1 > buf.len() {
                    return None;
                }
                if len > 0 {
                    buf[len] = b'.';
                    len += 1;
                }
                buf[len..len + l].copy_from_slice(label);
                len += l;
                off += 1 + l;
            }
        }
    }
    None
}

/// What the cache knows about an address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Learned {
    /// A DNS answer gave this address for this name.
    Name(Name),
    /// An SDP body announced this address and port for this application.
    App(AppId),
}

#[derive(Clone, Copy)]
struct Entry {
    addr: IpAddr,
    /// 0: any port (DNS); else the announced port (SDP).
    port: u16,
    what: Learned,
    expires: u64,
}

/// A fixed-size, direct-mapped cache (a newer answer replaces whatever
/// shared its slot). TTLs are capped at 10 minutes.
pub struct DnsCache {
    slots: Box<[Option<Entry>]>,
    /// Clock ticks per second, for TTLs.
    pub hz: u64,
    pub learned: u64,
}

impl DnsCache {
    pub fn new(entries: usize) -> DnsCache {
        DnsCache { slots: vec![None; entries.max(1).next_power_of_two()].into_boxed_slice(), hz: 1, learned: 0 }
    }

    /// Forgets everything learnt.
    pub fn clear(&mut self) {
        if self.learned > 0 {
            self.slots.fill(None);
            self.learned = 0;
        }
    }

    fn slot(&self, a: IpAddr, port: u16) -> usize {
        let h = match a {
            IpAddr::V4(v) => u32::from(v) as u64,
            IpAddr::V6(v) => {
                let x = u128::from(v);
                (x as u64) ^ (x >> 64) as u64
            }
        };
        let h = (h ^ port as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        (h >> 32) as usize & (self.slots.len() - 1)
    }

    fn put(&mut self, e: Entry) {
        let i = self.slot(e.addr, e.port);
        self.slots[i] = Some(e);
        self.learned += 1;
    }

    /// Learns the A/AAAA answers of a DNS response.
    pub fn learn(&mut self, p: &[u8], now: u64) {
        let Some(m) = message(p) else { return };
        let Some((_, mut off)) = name(p, 12) else { return };
        off += 4;
        for _ in 0..m.answers {
            let Some((_, end)) = name(p, off) else { return };
            let Some(rr) = p.get(end..end + 10) else { return };
            let typ = u16::from_be_bytes([rr[0], rr[1]]);
            let ttl = u32::from_be_bytes([rr[4], rr[5], rr[6], rr[7]]).min(600) as u64;
            let len = u16::from_be_bytes([rr[8], rr[9]]) as usize;
            let Some(data) = p.get(end + 10..end + 10 + len) else { return };
            let addr = match (typ, len) {
                (1, 4) => IpAddr::from(<[u8; 4]>::try_from(data).unwrap()),
                (28, 16) => IpAddr::from(<[u8; 16]>::try_from(data).unwrap()),
                _ => {
                    off = end + 10 + len;
                    continue;
                }
            };
            self.put(Entry { addr, port: 0, what: Learned::Name(m.qname), expires: now + ttl.max(30) * self.hz });
            off = end + 10 + len;
        }
    }

    /// Learns that `addr:port` will carry `app` (from SDP).
    pub fn announce(&mut self, addr: IpAddr, port: u16, app: AppId, now: u64) {
        self.put(Entry { addr, port, what: Learned::App(app), expires: now + 600 * self.hz });
    }

    /// What is known of a flow's server end.
    pub fn lookup(&self, addr: IpAddr, port: u16, now: u64) -> Option<Learned> {
        for p in [port, 0] {
            if let Some(e) = self.slots[self.slot(addr, p)] {
                if e.addr == addr && e.port == p && now <= e.expires {
                    return Some(e.what);
                }
            }
        }
        None
    }
}
