//! Flow keys and the frame walk that finds them: link layer (Ethernet with
//! 802.1Q/QinQ, Linux SLL, raw IP, BSD loopback), IPv4 or IPv6 (extension
//! headers walked), then TCP or UDP ports and the L4 payload.

/// TCP flags the flow table looks at.
pub const TCP_FIN: u8 = 0x01;
pub const TCP_SYN: u8 = 0x02;
pub const TCP_RST: u8 = 0x04;

/// The link layer a frame starts with (pcap's LINKTYPE values map here).
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
}

/// Which end of the canonical key sent the packet: `Lo` is the end with
/// the smaller (address, port).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Dir {
    #[default]
    Lo = 0,
    Hi = 1,
}

/// A bidirectional 5-tuple: both directions of a connection give the same
/// key. IPv4 addresses are stored as IPv4-mapped IPv6.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[repr(C)]
pub struct FlowKey {
    pub lo_addr: [u8; 16],
    pub hi_addr: [u8; 16],
    pub lo_port: u16,
    pub hi_port: u16,
    pub proto: u8,
}

impl FlowKey {
    /// The key of a packet from (src, sport) to (dst, dport), and the
    /// packet's direction in it.
    #[inline]
    pub fn new(src: [u8; 16], sport: u16, dst: [u8; 16], dport: u16, proto: u8) -> (FlowKey, Dir) {
        // Big-endian integers order as the bytes do, in two compares.
        if (u128::from_be_bytes(src), sport) <= (u128::from_be_bytes(dst), dport) {
            (FlowKey { lo_addr: src, hi_addr: dst, lo_port: sport, hi_port: dport, proto }, Dir::Lo)
        } else {
            (FlowKey { lo_addr: dst, hi_addr: src, lo_port: dport, hi_port: sport, proto }, Dir::Hi)
        }
    }

    /// A 64-bit hash (multiply-xorshift over the key's words): the same for
    /// both directions, since the key is canonical.
    #[inline]
    pub fn hash(&self) -> u64 {
        const K: u64 = 0x9E37_79B9_7F4A_7C15;
        let w = |b: &[u8]| u64::from_le_bytes(b.try_into().unwrap());
        let mut h = (self.proto as u64) << 32 | (self.lo_port as u64) << 16 | self.hi_port as u64;
        for part in [&self.lo_addr[..8], &self.lo_addr[8..], &self.hi_addr[..8], &self.hi_addr[8..]] {
            h = (h ^ w(part)).wrapping_mul(K);
            h ^= h >> 29;
        }
        h ^ (h >> 32)
    }

    /// The address and port of one end, as `IpAddr`.
    pub fn end(&self, d: Dir) -> (std::net::IpAddr, u16) {
        let (a, p) = match d {
            Dir::Lo => (self.lo_addr, self.lo_port),
            Dir::Hi => (self.hi_addr, self.hi_port),
        };
        (addr_of(&a), p)
    }
}

pub fn mapped_v4(a: [u8; 4]) -> [u8; 16] {
    let mut m = [0u8; 16];
    m[10] = 0xff;
    m[11] = 0xff;
    m[12..].copy_from_slice(&a);
    m
}

pub fn is_mapped_v4(a: &[u8; 16]) -> bool {
    a[..10] == [0; 10] && a[10] == 0xff && a[11] == 0xff
}

pub fn addr_of(a: &[u8; 16]) -> std::net::IpAddr {
    if is_mapped_v4(a) {
        std::net::IpAddr::V4(std::net::Ipv4Addr::new(a[12], a[13], a[14], a[15]))
    } else {
        std::net::IpAddr::V6(std::net::Ipv6Addr::from(*a))
    }
}

/// What the transport header said.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum L4Info {
    Tcp { flags: u8, seq: u32 },
    Udp,
    Other,
}

/// A frame's flow, direction, transport details and payload position.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Parsed {
    pub key: FlowKey,
    pub dir: Dir,
    pub l4: L4Info,
    /// Offset and length of the L4 payload in the frame (clipped to the
    /// IP length, so Ethernet padding is not payload).
    pub payload: (usize, usize),
    /// Length of the IP packet.
    pub ip_len: usize,
}

/// Walks a frame to its flow. `None` for what is not IP, a non-first
/// fragment, or a truncated or inconsistent header (the caller counts it).
#[inline]
pub fn parse_frame(link: LinkType, d: &[u8]) -> Option<Parsed> {
    let be16 = |o: usize| d.get(o..o + 2).map(|b| u16::from_be_bytes([b[0], b[1]]));
    let (mut ethertype, mut off) = match link {
        LinkType::Ethernet => (be16(12)?, 14),
        LinkType::LinuxSll => (be16(14)?, 16),
        LinkType::LinuxSll2 => (be16(0)?, 20),
        LinkType::RawIp => match d.first()? >> 4 {
            4 => (0x0800, 0),
            6 => (0x86dd, 0),
            _ => return None,
        },
        LinkType::Null => {
            let fam = d.get(..4)?;
            let le = u32::from_le_bytes(fam.try_into().unwrap());
            let be = u32::from_be_bytes(fam.try_into().unwrap());
            match (le.min(be), le.max(be)) {
                (2, _) => (0x0800, 4),
                (_, 24 | 28 | 30) | (24 | 28 | 30, _) => (0x86dd, 4),
                _ => return None,
            }
        }
    };
    // VLAN tags (802.1Q, 802.1ad, and the old QinQ 0x9100), MPLS labels,
    // a PPPoE session.
    let mut n = 0;
    loop {
        n += 1;
        if n > 8 {
            return None;
        }
        match ethertype {
            0x8100 | 0x88a8 | 0x9100 => {
                ethertype = be16(off + 2)?;
                off += 4;
            }
            0x8847 | 0x8848 => {
                let bottom = d.get(off + 2)? & 1 != 0;
                off += 4;
                if bottom {
                    ethertype = match d.get(off)? >> 4 {
                        4 => 0x0800,
                        6 => 0x86dd,
                        _ => return None,
                    };
                }
            }
            0x8864 => {
                ethertype = match be16(off + 6)? {
                    0x0021 => 0x0800,
                    0x0057 => 0x86dd,
                    _ => return None,
                };
                off += 8;
            }
            _ => break,
        }
    }
    let outer = ip_packet(d, off, ethertype)?;
    // GTP-U (mobile core, UDP 2152): the flow is the user's inner packet.
    if outer.key.proto == 17 && (outer.key.lo_port == 2152 || outer.key.hi_port == 2152) {
        if let Some(inner) = gtp_u(d, outer.payload) {
            return Some(inner);
        }
    }
    Some(outer)
}

/// The inner IP packet of a GTP-U G-PDU (3GPP TS 29.281).
fn gtp_u(d: &[u8], (start, len): (usize, usize)) -> Option<Parsed> {
    let g = d.get(start..start + len)?;
    if g.len() < 8 || g[0] >> 5 != 1 || g[0] & 0x10 == 0 || g[1] != 0xff {
        return None;
    }
    let mut off = 8;
    if g[0] & 0x07 != 0 {
        // Sequence number, N-PDU number, next extension header type.
        let mut next = *g.get(off + 3)?;
        off += 4;
        let mut n = 0;
        while next != 0 && n < 8 {
            let words = *g.get(off)? as usize;
            if words == 0 {
                return None;
            }
            off += words * 4;
            next = *g.get(off - 1)?;
            n += 1;
        }
    }
    let ethertype = match g.get(off)? >> 4 {
        4 => 0x0800,
        6 => 0x86dd,
        _ => return None,
    };
    ip_packet(d, start + off, ethertype)
}

/// An IPv4 or IPv6 packet at `off` in `d`, and its TCP/UDP header.
#[inline]
fn ip_packet(d: &[u8], off: usize, ethertype: u16) -> Option<Parsed> {
    let ip = d.get(off..)?;
    let (src, dst, mut proto, mut l4, ip_len) = match ethertype {
        0x0800 => {
            if ip.len() < 20 || ip[0] >> 4 != 4 {
                return None;
            }
            let ihl = (ip[0] & 0x0f) as usize * 4;
            let total = u16::from_be_bytes([ip[2], ip[3]]) as usize;
            if ihl < 20 || total < ihl || total > ip.len() {
                return None;
            }
            let frag = u16::from_be_bytes([ip[6], ip[7]]);
            if frag & 0x1fff != 0 {
                return None; // not the first fragment: no L4 header
            }
            let a = |o: usize| mapped_v4(ip[o..o + 4].try_into().unwrap());
            (a(12), a(16), ip[9], ihl, total)
        }
        0x86dd => {
            if ip.len() < 40 || ip[0] >> 4 != 6 {
                return None;
            }
            let total = 40 + u16::from_be_bytes([ip[4], ip[5]]) as usize;
            if total > ip.len() {
                return None;
            }
            let a = |o: usize| -> [u8; 16] { ip[o..o + 16].try_into().unwrap() };
            (a(8), a(24), ip[6], 40, total)
        }
        _ => return None,
    };
    let ip = &ip[..ip_len];
    // IPv6 extension headers (hop-by-hop, routing, fragment, destination).
    if ethertype == 0x86dd {
        let mut n = 0;
        while matches!(proto, 0 | 43 | 44 | 60) && n < 8 {
            let h = ip.get(l4..l4 + 8)?;
            if proto == 44 {
                if u16::from_be_bytes([h[2], h[3]]) & 0xfff8 != 0 {
                    return None; // not the first fragment
                }
                proto = h[0];
                l4 += 8;
            } else {
                proto = h[0];
                l4 += (h[1] as usize + 1) * 8;
            }
            n += 1;
        }
    }
    let t = ip.get(l4..)?;
    let (sport, dport, info, hdr) = match proto {
        6 => {
            if t.len() < 20 {
                return None;
            }
            let doff = (t[12] >> 4) as usize * 4;
            if doff < 20 || doff > t.len() {
                return None;
            }
            let seq = u32::from_be_bytes([t[4], t[5], t[6], t[7]]);
            (u16::from_be_bytes([t[0], t[1]]), u16::from_be_bytes([t[2], t[3]]), L4Info::Tcp { flags: t[13], seq }, doff)
        }
        17 => {
            if t.len() < 8 {
                return None;
            }
            (u16::from_be_bytes([t[0], t[1]]), u16::from_be_bytes([t[2], t[3]]), L4Info::Udp, 8)
        }
        _ => (0, 0, L4Info::Other, 0),
    };
    let (key, dir) = FlowKey::new(src, sport, dst, dport, proto);
    let start = off + l4 + hdr;
    let end = off + ip_len;
    Some(Parsed { key, dir, l4: info, payload: (start, end.saturating_sub(start)), ip_len })
}
