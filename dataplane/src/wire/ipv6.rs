//! IPv6 headers (RFC 8200) and the extension-header walk to the upper layer.

use core::fmt;

use super::{be16, be32, ip_proto, put16, put32, Error, EthernetAddress, Result};

/// A 128-bit IPv6 address.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Ipv6Address(pub [u8; 16]);

impl Ipv6Address {
    pub const UNSPECIFIED: Ipv6Address = Ipv6Address([0; 16]);
    /// ff02::1, all nodes on the link.
    pub const ALL_NODES: Ipv6Address = Ipv6Address([0xff, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
    /// ff02::2, all routers on the link.
    pub const ALL_ROUTERS: Ipv6Address = Ipv6Address([0xff, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2]);

    #[inline]
    pub fn from_bytes(b: &[u8]) -> Self {
        let mut a = [0u8; 16];
        a.copy_from_slice(&b[..16]);
        Ipv6Address(a)
    }
    #[inline]
    pub fn to_u128(self) -> u128 {
        u128::from_be_bytes(self.0)
    }
    pub fn from_u128(v: u128) -> Self {
        Ipv6Address(v.to_be_bytes())
    }
    #[inline]
    pub fn is_unspecified(&self) -> bool {
        self.0 == [0; 16]
    }
    #[inline]
    pub fn is_loopback(&self) -> bool {
        self.to_u128() == 1
    }
    #[inline]
    pub fn is_multicast(&self) -> bool {
        self.0[0] == 0xff
    }
    /// fe80::/10.
    #[inline]
    pub fn is_link_local(&self) -> bool {
        self.0[0] == 0xfe && self.0[1] & 0xc0 == 0x80
    }
    /// Multicast with interface- or link-local scope (ff01::/16, ff02::/16).
    pub fn is_link_scope_multicast(&self) -> bool {
        self.is_multicast() && (self.0[1] & 0x0f) <= 2
    }
    /// ::ffff:0:0/96.
    pub fn is_ipv4_mapped(&self) -> bool {
        self.0[..10] == [0; 10] && self.0[10..12] == [0xff, 0xff]
    }
    /// The solicited-node multicast address of this address (RFC 4291 2.7.1).
    pub fn solicited_node(&self) -> Ipv6Address {
        let mut a = [0xff, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0xff, 0, 0, 0];
        a[13..].copy_from_slice(&self.0[13..]);
        Ipv6Address(a)
    }
    /// The link-local address with an EUI-64 interface identifier (RFC 4291 appendix A).
    pub fn link_local_from_mac(mac: EthernetAddress) -> Ipv6Address {
        let m = mac.0;
        Ipv6Address([0xfe, 0x80, 0, 0, 0, 0, 0, 0, m[0] ^ 2, m[1], m[2], 0xff, 0xfe, m[3], m[4], m[5]])
    }
}

impl From<std::net::Ipv6Addr> for Ipv6Address {
    fn from(a: std::net::Ipv6Addr) -> Self {
        Ipv6Address(a.octets())
    }
}

impl From<Ipv6Address> for std::net::Ipv6Addr {
    fn from(a: Ipv6Address) -> Self {
        std::net::Ipv6Addr::from(a.0)
    }
}

impl fmt::Display for Ipv6Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&std::net::Ipv6Addr::from(self.0), f)
    }
}

impl fmt::Debug for Ipv6Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

mod field {
    use core::ops::Range;
    pub const VER_TC_FLOW: usize = 0;
    pub const LENGTH: usize = 4;
    pub const NXT_HDR: usize = 6;
    pub const HOP_LIMIT: usize = 7;
    pub const SRC: Range<usize> = 8..24;
    pub const DST: Range<usize> = 24..40;
}

/// Length of the fixed header.
pub const HEADER_LEN: usize = 40;

/// Most extension headers walked before giving up (a chain longer than
/// this is almost certainly an attack on the walk).
pub const MAX_EXTENSION_HEADERS: usize = 8;

/// A view of an IPv6 packet.
#[derive(Debug, Clone)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    pub fn new_unchecked(buffer: T) -> Packet<T> {
        Packet { buffer }
    }

    #[inline]
    pub fn new_checked(buffer: T) -> Result<Packet<T>> {
        let p = Self::new_unchecked(buffer);
        p.check_len()?;
        Ok(p)
    }

    /// The buffer holds the header and the payload length announced.
    #[inline]
    pub fn check_len(&self) -> Result<()> {
        let len = self.buffer.as_ref().len();
        if len < HEADER_LEN || len < HEADER_LEN + self.payload_len() as usize {
            return Err(Error::Truncated);
        }
        Ok(())
    }

    pub fn into_inner(self) -> T {
        self.buffer
    }

    #[inline]
    pub fn version(&self) -> u8 {
        self.buffer.as_ref()[field::VER_TC_FLOW] >> 4
    }
    pub fn traffic_class(&self) -> u8 {
        (be16(self.buffer.as_ref(), field::VER_TC_FLOW) >> 4) as u8
    }
    pub fn flow_label(&self) -> u32 {
        be32(self.buffer.as_ref(), field::VER_TC_FLOW) & 0x000f_ffff
    }
    #[inline]
    pub fn payload_len(&self) -> u16 {
        be16(self.buffer.as_ref(), field::LENGTH)
    }
    #[inline]
    pub fn next_header(&self) -> u8 {
        self.buffer.as_ref()[field::NXT_HDR]
    }
    #[inline]
    pub fn hop_limit(&self) -> u8 {
        self.buffer.as_ref()[field::HOP_LIMIT]
    }
    #[inline]
    pub fn src_addr(&self) -> Ipv6Address {
        Ipv6Address::from_bytes(&self.buffer.as_ref()[field::SRC])
    }
    #[inline]
    pub fn dst_addr(&self) -> Ipv6Address {
        Ipv6Address::from_bytes(&self.buffer.as_ref()[field::DST])
    }
    /// Bytes after the fixed header, up to the payload length.
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[HEADER_LEN..HEADER_LEN + self.payload_len() as usize]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    pub fn set_version_tc_flow(&mut self, tc: u8, flow: u32) {
        put32(self.buffer.as_mut(), field::VER_TC_FLOW, 6 << 28 | (tc as u32) << 20 | (flow & 0x000f_ffff));
    }
    pub fn set_payload_len(&mut self, v: u16) {
        put16(self.buffer.as_mut(), field::LENGTH, v);
    }
    pub fn set_next_header(&mut self, v: u8) {
        self.buffer.as_mut()[field::NXT_HDR] = v;
    }
    pub fn set_hop_limit(&mut self, v: u8) {
        self.buffer.as_mut()[field::HOP_LIMIT] = v;
    }
    pub fn set_src_addr(&mut self, a: Ipv6Address) {
        self.buffer.as_mut()[field::SRC].copy_from_slice(&a.0);
    }
    pub fn set_dst_addr(&mut self, a: Ipv6Address) {
        self.buffer.as_mut()[field::DST].copy_from_slice(&a.0);
    }
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let end = HEADER_LEN + self.payload_len() as usize;
        &mut self.buffer.as_mut()[HEADER_LEN..end]
    }
}

/// A validated fixed header (extension headers are walked separately).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Repr {
    pub src: Ipv6Address,
    pub dst: Ipv6Address,
    pub next_header: u8,
    pub hop_limit: u8,
    pub traffic_class: u8,
    pub flow_label: u32,
    pub payload_len: usize,
}

impl Repr {
    pub fn parse<T: AsRef<[u8]>>(p: &Packet<T>) -> Result<Repr> {
        p.check_len()?;
        if p.version() != 6 {
            return Err(Error::Malformed);
        }
        Ok(Repr {
            src: p.src_addr(),
            dst: p.dst_addr(),
            next_header: p.next_header(),
            hop_limit: p.hop_limit(),
            traffic_class: p.traffic_class(),
            flow_label: p.flow_label(),
            payload_len: p.payload_len() as usize,
        })
    }

    pub const fn buffer_len(&self) -> usize {
        HEADER_LEN + self.payload_len
    }

    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, p: &mut Packet<T>) {
        p.set_version_tc_flow(self.traffic_class, self.flow_label);
        p.set_payload_len(self.payload_len as u16);
        p.set_next_header(self.next_header);
        p.set_hop_limit(self.hop_limit);
        p.set_src_addr(self.src);
        p.set_dst_addr(self.dst);
    }
}

/// Where the upper-layer header is, after the extension headers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Upper {
    /// Protocol of the upper layer (or ESP / No Next Header, which end the walk).
    pub protocol: u8,
    /// Offset of the upper-layer header from the start of the payload.
    pub offset: usize,
    /// A Fragment header was present.
    pub fragment: bool,
    /// ... and this is not the first fragment, so no upper header follows.
    pub later_fragment: bool,
    /// A Hop-by-Hop Options header was present.
    pub hop_by_hop: bool,
}

/// Walks the extension headers in `payload` starting from `next_header`.
#[inline]
pub fn walk_extensions(mut next_header: u8, payload: &[u8]) -> Result<Upper> {
    let mut up = Upper { protocol: next_header, offset: 0, fragment: false, later_fragment: false, hop_by_hop: false };
    for n in 0..=MAX_EXTENSION_HEADERS {
        let h = &payload[up.offset..];
        let len = match next_header {
            ip_proto::HOP_BY_HOP if n > 0 => return Err(Error::Malformed), // RFC 8200 4.1: only first
            ip_proto::HOP_BY_HOP
            | ip_proto::IPV6_ROUTING
            | ip_proto::IPV6_DEST_OPTS
            | ip_proto::MOBILITY
            | ip_proto::HIP
            | ip_proto::SHIM6 => {
                if h.len() < 8 {
                    return Err(Error::Truncated);
                }
                (h[1] as usize + 1) * 8
            }
            ip_proto::IPV6_FRAGMENT => {
                if h.len() < 8 {
                    return Err(Error::Truncated);
                }
                up.fragment = true;
                up.later_fragment = be16(h, 2) >> 3 != 0;
                8
            }
            ip_proto::AH => {
                if h.len() < 8 {
                    return Err(Error::Truncated);
                }
                (h[1] as usize + 2) * 4
            }
            proto => {
                up.protocol = proto;
                return Ok(up);
            }
        };
        if h.len() < len {
            return Err(Error::Truncated);
        }
        up.hop_by_hop |= next_header == ip_proto::HOP_BY_HOP;
        next_header = h[0];
        up.offset += len;
        if up.later_fragment {
            up.protocol = next_header;
            return Ok(up);
        }
    }
    Err(Error::Unsupported)
}

#[cfg(test)]
mod tests {
    use super::*;

    // fd00::1 -> fd00::2, next header UDP, hop limit 64, TC 0xb8, flow 0x12345, 4 payload bytes.
    static PACKET: [u8; 44] = [
        0x6b, 0x81, 0x23, 0x45, 0x00, 0x04, 0x11, 0x40, 0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0,
        0, 0, 0, 0, 0, 2, 1, 2, 3, 4,
    ];

    fn repr() -> Repr {
        Repr {
            src: Ipv6Address::from_u128(0xfd00 << 112 | 1),
            dst: Ipv6Address::from_u128(0xfd00 << 112 | 2),
            next_header: ip_proto::UDP,
            hop_limit: 64,
            traffic_class: 0xb8,
            flow_label: 0x12345,
            payload_len: 4,
        }
    }

    #[test]
    fn test_parse() {
        let p = Packet::new_checked(&PACKET[..]).unwrap();
        assert_eq!(Repr::parse(&p).unwrap(), repr());
        assert_eq!(p.payload(), &[1, 2, 3, 4]);
    }

    #[test]
    fn test_emit() {
        let mut b = [0u8; 44];
        b[40..].copy_from_slice(&[1, 2, 3, 4]);
        repr().emit(&mut Packet::new_unchecked(&mut b[..]));
        assert_eq!(b, PACKET);
    }

    #[test]
    fn test_impossible_len() {
        assert_eq!(Packet::new_checked(&PACKET[..39]).unwrap_err(), Error::Truncated);
        assert_eq!(Packet::new_checked(&PACKET[..43]).unwrap_err(), Error::Truncated, "payload length says 4");
    }

    #[test]
    fn addresses() {
        let a: Ipv6Address = "2001:db8::1:2345:6789".parse::<std::net::Ipv6Addr>().unwrap().into();
        assert_eq!(a.solicited_node().to_string(), "ff02::1:ff45:6789");
        let ll = Ipv6Address::link_local_from_mac(EthernetAddress([0x00, 0x1b, 0x21, 0x3c, 0x4d, 0x5e]));
        assert_eq!(ll.to_string(), "fe80::21b:21ff:fe3c:4d5e");
        assert!(ll.is_link_local() && !ll.is_multicast());
        assert!(Ipv6Address::ALL_NODES.is_link_scope_multicast());
    }

    #[test]
    fn extension_walk() {
        // Hop-by-hop (8 bytes, next: routing), routing (16 bytes, next: fragment),
        // fragment (first, next: dest opts), dest opts (8, next: TCP).
        let mut p = vec![];
        p.extend([ip_proto::IPV6_ROUTING, 0, 5, 2, 0, 0, 1, 0]); // HBH with router-alert option and PadN
        p.extend([ip_proto::IPV6_FRAGMENT, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
        p.extend([ip_proto::IPV6_DEST_OPTS, 0, 0x00, 0x01, 0, 0, 0, 42]); // offset 0, M=1
        p.extend([ip_proto::TCP, 0, 1, 4, 0, 0, 0, 0]);
        p.extend([0u8; 20]);
        let up = walk_extensions(ip_proto::HOP_BY_HOP, &p).unwrap();
        assert_eq!(up, Upper { protocol: ip_proto::TCP, offset: 40, fragment: true, later_fragment: false, hop_by_hop: true });

        // A later fragment stops the walk: its upper header is elsewhere.
        let later = [ip_proto::UDP, 0, 0x00, 0x10, 0, 0, 0, 1, 0xaa];
        let up = walk_extensions(ip_proto::IPV6_FRAGMENT, &later).unwrap();
        assert!(up.fragment && up.later_fragment && up.offset == 8 && up.protocol == ip_proto::UDP);

        assert_eq!(walk_extensions(ip_proto::UDP, &[]).unwrap().offset, 0);
        assert_eq!(walk_extensions(ip_proto::ESP, &[1, 2]).unwrap().protocol, ip_proto::ESP);
    }

    #[test]
    fn extension_walk_rejects_lies_and_long_chains() {
        // Length byte claims 16 bytes, only 8 present.
        assert_eq!(walk_extensions(ip_proto::IPV6_DEST_OPTS, &[ip_proto::TCP, 1, 0, 0, 0, 0, 0, 0]).unwrap_err(), Error::Truncated);
        assert_eq!(walk_extensions(ip_proto::IPV6_ROUTING, &[6, 0, 0]).unwrap_err(), Error::Truncated);
        // Hop-by-hop anywhere but first.
        let hbh_second = [ip_proto::HOP_BY_HOP, 0, 0, 0, 0, 0, 0, 0, ip_proto::TCP, 0, 0, 0, 0, 0, 0, 0];
        assert_eq!(walk_extensions(ip_proto::IPV6_DEST_OPTS, &hbh_second).unwrap_err(), Error::Malformed);
        // A chain of destination-options headers longer than the limit.
        let chain: Vec<u8> = (0..10).flat_map(|_| [ip_proto::IPV6_DEST_OPTS, 0, 0, 0, 0, 0, 0, 0]).collect();
        assert_eq!(walk_extensions(ip_proto::IPV6_DEST_OPTS, &chain).unwrap_err(), Error::Unsupported);
    }
}
