//! DNS: the question's name, and an answer cache mapping the addresses
//! learnt from A/AAAA answers to the name asked for, so that a later flow
//! to one of them is classified on its first packet.

use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

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

/// Words of a slot after its sequence number: address (2), port and
/// kind and application (1), expiry (1), name (12).
const WORDS: usize = 16;
const NAME_WORDS: usize = 12;
const KIND_NAME: u64 = 1;
const KIND_APP: u64 = 2;

/// One entry, written under a sequence lock: the sequence is odd while a
/// writer fills the words; a reader that saw it change discards what it
/// read. Every field is an atomic, so a torn read is a detected miss,
/// never undefined behaviour.
#[repr(align(64))]
#[derive(Default)]
struct Slot {
    seq: AtomicU64,
    words: [AtomicU64; WORDS],
}

/// An address as the slots hold it (IPv4 mapped into IPv6).
fn addr_key(a: IpAddr) -> u128 {
    match a {
        IpAddr::V4(v) => u128::from(v.to_ipv6_mapped()),
        IpAddr::V6(v) => u128::from(v),
    }
}

/// The answers and announcements every worker shares: a fixed-size,
/// direct-mapped table (a newer entry replaces whatever shared its slot)
/// that any worker writes and reads without a lock. A DNS answer seen by
/// one worker classifies the flow that then arrives on another; so does
/// an SDP or FTP announcement. TTLs are capped at 10 minutes.
///
/// A handle is cheap to clone and shares the table; `hz` and `learned`
/// are the handle's own.
pub struct DnsCache {
    slots: Arc<[Slot]>,
    /// Clock ticks per second, for TTLs.
    pub hz: u64,
    /// Entries this handle wrote.
    pub learned: u64,
    /// Writes this handle gave up because another worker was writing the
    /// same slot (a cache: the next answer fills it).
    pub contended: u64,
}

impl Clone for DnsCache {
    fn clone(&self) -> Self {
        DnsCache { slots: self.slots.clone(), hz: self.hz, learned: 0, contended: 0 }
    }
}

impl std::fmt::Debug for DnsCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "DnsCache({} slots)", self.slots.len())
    }
}

impl DnsCache {
    pub fn new(entries: usize) -> DnsCache {
        let slots: Arc<[Slot]> = (0..entries.max(1).next_power_of_two()).map(|_| Slot::default()).collect();
        DnsCache { slots, hz: 1, learned: 0, contended: 0 }
    }

    /// Forgets everything learnt (offline reruns; no worker may be using
    /// the table).
    pub fn clear(&mut self) {
        for s in self.slots.iter() {
            s.seq.store(0, Ordering::Relaxed);
            for w in &s.words {
                w.store(0, Ordering::Relaxed);
            }
        }
        self.learned = 0;
    }

    fn slot(&self, a: u128, port: u16) -> usize {
        let h = (a as u64) ^ (a >> 64) as u64;
        let h = (h ^ port as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        (h >> 32) as usize & (self.slots.len() - 1)
    }

    fn put(&mut self, e: Entry) {
        let a = addr_key(e.addr);
        let slot = &self.slots[self.slot(a, e.port)];
        let seq = slot.seq.load(Ordering::Relaxed);
        if seq & 1 == 1 || slot.seq.compare_exchange(seq, seq + 1, Ordering::Acquire, Ordering::Relaxed).is_err() {
            self.contended += 1;
            return;
        }
        let (kind, app, name) = match e.what {
            Learned::Name(n) => (KIND_NAME, 0, n),
            Learned::App(app) => (KIND_APP, app, Name::default()),
        };
        let w = &slot.words;
        // The writes may not move above the odd sequence.
        std::sync::atomic::fence(Ordering::Release);
        w[0].store(a as u64, Ordering::Relaxed);
        w[1].store((a >> 64) as u64, Ordering::Relaxed);
        w[2].store(e.port as u64 | kind << 16 | (app as u64) << 32, Ordering::Relaxed);
        w[3].store(e.expires, Ordering::Relaxed);
        let mut bytes = [0u8; NAME_WORDS * 8];
        bytes[0] = name.len;
        bytes[1..].copy_from_slice(&name.b);
        for (i, word) in w[4..].iter().enumerate() {
            word.store(u64::from_le_bytes(std::array::from_fn(|j| bytes[8 * i + j])), Ordering::Relaxed);
        }
        slot.seq.store(seq + 2, Ordering::Release);
        self.learned += 1;
    }

    /// The entry for `a:port` if a consistent copy of it is live.
    fn get(&self, a: u128, port: u16, now: u64) -> Option<Learned> {
        let slot = &self.slots[self.slot(a, port)];
        let seq = slot.seq.load(Ordering::Acquire);
        if seq & 1 == 1 || seq == 0 {
            return None;
        }
        let w = &slot.words;
        let addr = w[0].load(Ordering::Relaxed) as u128 | (w[1].load(Ordering::Relaxed) as u128) << 64;
        let meta = w[2].load(Ordering::Relaxed);
        let expires = w[3].load(Ordering::Relaxed);
        if addr != a || meta as u16 != port || now > expires {
            return None;
        }
        let what = match meta >> 16 & 0xffff {
            KIND_APP => Learned::App((meta >> 32) as AppId),
            KIND_NAME => {
                let mut bytes = [0u8; NAME_WORDS * 8];
                for (i, chunk) in bytes.chunks_exact_mut(8).enumerate() {
                    chunk.copy_from_slice(&w[4 + i].load(Ordering::Relaxed).to_le_bytes());
                }
                let mut name = Name::default();
                name.len = bytes[0].min(name.b.len() as u8);
                name.b.copy_from_slice(&bytes[1..]);
                Learned::Name(name)
            }
            _ => return None,
        };
        std::sync::atomic::fence(Ordering::Acquire);
        (slot.seq.load(Ordering::Relaxed) == seq).then_some(what)
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
        let a = addr_key(addr);
        self.get(a, port, now).or_else(|| self.get(a, 0, now))
    }
}

#[cfg(test)]
mod shared_tests {
    use super::*;
    use std::net::Ipv4Addr;

    #[test]
    fn what_one_worker_learns_another_finds() {
        let mut a = DnsCache::new(64);
        let b = a.clone();
        let server = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 80));
        a.announce(server, 5004, 7, 0);
        assert_eq!(b.lookup(server, 5004, 10), Some(Learned::App(7)));
        assert_eq!(b.lookup(server, 5006, 10), None, "another port");
        assert_eq!(b.lookup(server, 5004, 601), None, "expired");
        a.put(Entry { addr: server, port: 0, what: Learned::Name(Name::new(b"video.example")), expires: 100 });
        match b.lookup(server, 443, 5) {
            Some(Learned::Name(n)) => assert_eq!(n.as_str(), "video.example"),
            other => panic!("{other:?}"),
        }
        let v6: IpAddr = "2001:db8::7".parse().unwrap();
        assert_eq!(b.lookup(v6, 443, 5), None);
        a.announce(v6, 443, 9, 0);
        assert_eq!(b.lookup(v6, 443, 5), Some(Learned::App(9)));
    }

    /// Writers on several threads hammer a small table while readers
    /// check every hit: a name always belongs to its address (no torn
    /// entry is ever returned).
    #[test]
    fn concurrent_writers_never_show_a_reader_a_torn_entry() {
        let cache = DnsCache::new(8);
        let name_of = |i: u32| Name::new(format!("host-{i}-{}", "x".repeat((i % 60) as usize)).as_bytes());
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let mut threads = Vec::new();
        for t in 0..3u32 {
            let mut c = cache.clone();
            threads.push(std::thread::spawn(move || {
                for round in 0..100_000u32 {
                    let i = (round * 7 + t) % 64;
                    let addr = IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + i));
                    c.put(Entry { addr, port: 0, what: Learned::Name(name_of(i)), expires: u64::MAX });
                }
                c.learned + c.contended
            }));
        }
        let (reader, s) = (cache.clone(), stop.clone());
        let check = std::thread::spawn(move || {
            let mut hits = 0u64;
            while !s.load(Ordering::Relaxed) {
                for i in 0..64u32 {
                    if let Some(Learned::Name(n)) = reader.lookup(IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + i)), 80, 0) {
                        assert_eq!(n, name_of(i));
                        hits += 1;
                    }
                }
            }
            hits
        });
        for t in threads {
            assert_eq!(t.join().unwrap(), 100_000, "every write either landed or was counted as contended");
        }
        stop.store(true, Ordering::Relaxed);
        assert!(check.join().unwrap() > 0);
    }
}
