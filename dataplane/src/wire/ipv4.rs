//! IPv4 headers (RFC 791), options included, fragments flagged.

use core::fmt;

use super::checksum;
use super::{be16, put16, Error, Result};

/// A 32-bit IPv4 address.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Ipv4Address(pub [u8; 4]);

impl Ipv4Address {
    pub const UNSPECIFIED: Ipv4Address = Ipv4Address([0; 4]);
    pub const BROADCAST: Ipv4Address = Ipv4Address([255; 4]);

    pub fn new(a: u8, b: u8, c: u8, d: u8) -> Self {
        Ipv4Address([a, b, c, d])
    }
    #[inline]
    pub fn from_bytes(b: &[u8]) -> Self {
        Ipv4Address([b[0], b[1], b[2], b[3]])
    }
    #[inline]
    pub fn to_u32(self) -> u32 {
        u32::from_be_bytes(self.0)
    }
    pub fn from_u32(v: u32) -> Self {
        Ipv4Address(v.to_be_bytes())
    }
    pub fn is_unspecified(&self) -> bool {
        self.0 == [0; 4]
    }
    #[inline]
    pub fn is_broadcast(&self) -> bool {
        self.0 == [255; 4]
    }
    #[inline]
    pub fn is_multicast(&self) -> bool {
        self.0[0] & 0xf0 == 224
    }
    #[inline]
    pub fn is_loopback(&self) -> bool {
        self.0[0] == 127
    }
    /// 169.254.0.0/16.
    pub fn is_link_local(&self) -> bool {
        self.0[0] == 169 && self.0[1] == 254
    }
    /// 0.0.0.0/8 ("this network"), valid only as a source during boot.
    #[inline]
    pub fn is_this_network(&self) -> bool {
        self.0[0] == 0
    }
}

impl From<std::net::Ipv4Addr> for Ipv4Address {
    fn from(a: std::net::Ipv4Addr) -> Self {
        Ipv4Address(a.octets())
    }
}

impl From<Ipv4Address> for std::net::Ipv4Addr {
    fn from(a: Ipv4Address) -> Self {
        std::net::Ipv4Addr::from(a.0)
    }
}

impl fmt::Display for Ipv4Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = self.0;
        write!(f, "{}.{}.{}.{}", b[0], b[1], b[2], b[3])
    }
}

impl fmt::Debug for Ipv4Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

mod field {
    use core::ops::Range;
    pub const VER_IHL: usize = 0;
    pub const DSCP_ECN: usize = 1;
    pub const LENGTH: usize = 2;
    pub const IDENT: usize = 4;
    pub const FLG_OFF: usize = 6;
    pub const TTL: usize = 8;
    pub const PROTOCOL: usize = 9;
    pub const CHECKSUM: usize = 10;
    pub const SRC: Range<usize> = 12..16;
    pub const DST: Range<usize> = 16..20;
}

/// Length of a header without options.
pub const HEADER_LEN: usize = 20;

/// Longest options field.
pub const MAX_OPTIONS: usize = 40;

/// A view of an IPv4 packet.
#[derive(Debug, Clone)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    #[inline]
    pub fn new_unchecked(buffer: T) -> Packet<T> {
        Packet { buffer }
    }

    #[inline]
    pub fn new_checked(buffer: T) -> Result<Packet<T>> {
        let p = Self::new_unchecked(buffer);
        p.check_len()?;
        Ok(p)
    }

    /// The buffer holds the whole header and the whole packet the total
    /// length field announces (it may hold more: link padding).
    #[inline]
    pub fn check_len(&self) -> Result<()> {
        let len = self.buffer.as_ref().len();
        if len < HEADER_LEN {
            return Err(Error::Truncated);
        }
        let hl = self.header_len();
        let total = self.total_len() as usize;
        if hl < HEADER_LEN || total < hl {
            return Err(Error::Malformed);
        }
        if len < hl || len < total {
            return Err(Error::Truncated);
        }
        Ok(())
    }

    pub fn into_inner(self) -> T {
        self.buffer
    }

    #[inline]
    pub fn version(&self) -> u8 {
        self.buffer.as_ref()[field::VER_IHL] >> 4
    }
    /// Header length in bytes.
    #[inline]
    pub fn header_len(&self) -> usize {
        ((self.buffer.as_ref()[field::VER_IHL] & 0x0f) as usize) * 4
    }
    pub fn dscp(&self) -> u8 {
        self.buffer.as_ref()[field::DSCP_ECN] >> 2
    }
    pub fn ecn(&self) -> u8 {
        self.buffer.as_ref()[field::DSCP_ECN] & 3
    }
    #[inline]
    pub fn total_len(&self) -> u16 {
        be16(self.buffer.as_ref(), field::LENGTH)
    }
    pub fn ident(&self) -> u16 {
        be16(self.buffer.as_ref(), field::IDENT)
    }
    #[inline]
    pub fn dont_frag(&self) -> bool {
        be16(self.buffer.as_ref(), field::FLG_OFF) & 0x4000 != 0
    }
    #[inline]
    pub fn more_frags(&self) -> bool {
        be16(self.buffer.as_ref(), field::FLG_OFF) & 0x2000 != 0
    }
    /// Reserved flag bit ("evil bit"); must be zero.
    pub fn reserved_flag(&self) -> bool {
        be16(self.buffer.as_ref(), field::FLG_OFF) & 0x8000 != 0
    }
    /// Fragment offset in bytes.
    #[inline]
    pub fn frag_offset(&self) -> u16 {
        (be16(self.buffer.as_ref(), field::FLG_OFF) & 0x1fff) << 3
    }
    /// Part of a fragmented datagram (not the whole of it).
    #[inline]
    pub fn is_fragment(&self) -> bool {
        self.more_frags() || self.frag_offset() != 0
    }
    #[inline]
    pub fn ttl(&self) -> u8 {
        self.buffer.as_ref()[field::TTL]
    }
    #[inline]
    pub fn protocol(&self) -> u8 {
        self.buffer.as_ref()[field::PROTOCOL]
    }
    pub fn checksum(&self) -> u16 {
        be16(self.buffer.as_ref(), field::CHECKSUM)
    }
    #[inline]
    pub fn src_addr(&self) -> Ipv4Address {
        Ipv4Address::from_bytes(&self.buffer.as_ref()[field::SRC])
    }
    #[inline]
    pub fn dst_addr(&self) -> Ipv4Address {
        Ipv4Address::from_bytes(&self.buffer.as_ref()[field::DST])
    }
    pub fn options(&self) -> &[u8] {
        &self.buffer.as_ref()[HEADER_LEN..self.header_len()]
    }
    /// The header checksum verifies.
    #[inline]
    pub fn verify_checksum(&self) -> bool {
        checksum::sum(&self.buffer.as_ref()[..self.header_len()]) == 0xffff
    }
    /// Bytes after the header, up to the total length.
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[self.header_len()..self.total_len() as usize]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    pub fn set_version_ihl(&mut self, header_len: usize) {
        self.buffer.as_mut()[field::VER_IHL] = 0x40 | (header_len / 4) as u8;
    }
    pub fn set_dscp_ecn(&mut self, dscp: u8, ecn: u8) {
        self.buffer.as_mut()[field::DSCP_ECN] = dscp << 2 | (ecn & 3);
    }
    pub fn set_total_len(&mut self, v: u16) {
        put16(self.buffer.as_mut(), field::LENGTH, v);
    }
    pub fn set_ident(&mut self, v: u16) {
        put16(self.buffer.as_mut(), field::IDENT, v);
    }
    pub fn set_flags_offset(&mut self, dont_frag: bool, more_frags: bool, offset: u16) {
        let v = (dont_frag as u16) << 14 | (more_frags as u16) << 13 | (offset >> 3);
        put16(self.buffer.as_mut(), field::FLG_OFF, v);
    }
    pub fn set_ttl(&mut self, v: u8) {
        self.buffer.as_mut()[field::TTL] = v;
    }
    pub fn set_protocol(&mut self, v: u8) {
        self.buffer.as_mut()[field::PROTOCOL] = v;
    }
    pub fn set_checksum(&mut self, v: u16) {
        put16(self.buffer.as_mut(), field::CHECKSUM, v);
    }
    pub fn set_src_addr(&mut self, a: Ipv4Address) {
        self.buffer.as_mut()[field::SRC].copy_from_slice(&a.0);
    }
    pub fn set_dst_addr(&mut self, a: Ipv4Address) {
        self.buffer.as_mut()[field::DST].copy_from_slice(&a.0);
    }
    /// Recomputes the header checksum.
    pub fn fill_checksum(&mut self) {
        self.set_checksum(0);
        let hl = self.header_len().min(self.buffer.as_ref().len());
        let c = checksum::finish(checksum::sum(&self.buffer.as_ref()[..hl]));
        self.set_checksum(c);
    }
    /// Decrements the TTL and updates the checksum incrementally.
    #[inline(always)]
    pub fn decrement_ttl(&mut self) {
        let b = self.buffer.as_mut();
        let old = be16(b, field::TTL);
        b[field::TTL] = b[field::TTL].wrapping_sub(1);
        let new = be16(b, field::TTL);
        let c = checksum::update16(be16(b, field::CHECKSUM), old, new);
        put16(b, field::CHECKSUM, c);
    }
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let (hl, total) = (self.header_len(), self.total_len() as usize);
        &mut self.buffer.as_mut()[hl..total]
    }
}

/// IPv4 options, as bytes (their content is not interpreted).
pub type Options = super::OptionBytes;

/// A validated IPv4 header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Repr {
    pub src: Ipv4Address,
    pub dst: Ipv4Address,
    pub protocol: u8,
    pub ttl: u8,
    pub dscp: u8,
    pub ecn: u8,
    pub ident: u16,
    pub dont_frag: bool,
    pub more_frags: bool,
    /// Fragment offset in bytes (a multiple of 8).
    pub frag_offset: u16,
    pub options: Options,
    /// Bytes after the header.
    pub payload_len: usize,
}

impl Repr {
    /// Parses and validates, checksum included.
    pub fn parse<T: AsRef<[u8]>>(p: &Packet<T>) -> Result<Repr> {
        Self::parse_with(p, true)
    }

    /// Parses; `verify_checksum` false when the NIC already verified it.
    pub fn parse_with<T: AsRef<[u8]>>(p: &Packet<T>, verify_checksum: bool) -> Result<Repr> {
        p.check_len()?;
        if p.version() != 4 || p.reserved_flag() {
            return Err(Error::Malformed);
        }
        if verify_checksum && !p.verify_checksum() {
            return Err(Error::Checksum);
        }
        let options = Options::new(p.options()).ok_or(Error::Malformed)?;
        Ok(Repr {
            src: p.src_addr(),
            dst: p.dst_addr(),
            protocol: p.protocol(),
            ttl: p.ttl(),
            dscp: p.dscp(),
            ecn: p.ecn(),
            ident: p.ident(),
            dont_frag: p.dont_frag(),
            more_frags: p.more_frags(),
            frag_offset: p.frag_offset(),
            options,
            payload_len: p.total_len() as usize - p.header_len(),
        })
    }

    #[inline]
    pub fn header_len(&self) -> usize {
        HEADER_LEN + self.options.as_bytes().len()
    }

    pub fn buffer_len(&self) -> usize {
        self.header_len() + self.payload_len
    }

    #[inline]
    pub fn is_fragment(&self) -> bool {
        self.more_frags || self.frag_offset != 0
    }

    /// Writes the header (checksum included); the payload is the caller's.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, p: &mut Packet<T>) {
        let hl = self.header_len();
        p.set_version_ihl(hl);
        p.set_dscp_ecn(self.dscp, self.ecn);
        p.set_total_len((hl + self.payload_len) as u16);
        p.set_ident(self.ident);
        p.set_flags_offset(self.dont_frag, self.more_frags, self.frag_offset);
        p.set_ttl(self.ttl);
        p.set_protocol(self.protocol);
        p.set_src_addr(self.src);
        p.set_dst_addr(self.dst);
        p.buffer.as_mut()[HEADER_LEN..hl].copy_from_slice(self.options.as_bytes());
        p.fill_checksum();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // 10.0.0.1 -> 10.0.0.2, ICMP, TTL 64, DF, ident 0x1234, 4 payload bytes.
    static PACKET: [u8; 24] =
        [0x45, 0x00, 0x00, 0x18, 0x12, 0x34, 0x40, 0x00, 0x40, 0x01, 0x00, 0x00, 10, 0, 0, 1, 10, 0, 0, 2, 0xde, 0xad, 0xbe, 0xef];

    fn packet() -> [u8; 24] {
        let mut b = PACKET;
        let c = checksum::finish(checksum::sum(&b[..20]));
        b[10..12].copy_from_slice(&c.to_be_bytes());
        b
    }

    fn repr() -> Repr {
        Repr {
            src: Ipv4Address::new(10, 0, 0, 1),
            dst: Ipv4Address::new(10, 0, 0, 2),
            protocol: 1,
            ttl: 64,
            dscp: 0,
            ecn: 0,
            ident: 0x1234,
            dont_frag: true,
            more_frags: false,
            frag_offset: 0,
            options: Options::NONE,
            payload_len: 4,
        }
    }

    #[test]
    fn golden_checksum() {
        // Reference value from an independent implementation (Python, RFC 1071).
        assert_eq!(&packet()[10..12], &[0x14, 0xaf]);
    }

    #[test]
    fn test_parse() {
        let b = packet();
        let p = Packet::new_checked(&b[..]).unwrap();
        assert_eq!(Repr::parse(&p).unwrap(), repr());
        assert_eq!(p.payload(), &[0xde, 0xad, 0xbe, 0xef]);
        assert!(!p.is_fragment());
    }

    #[test]
    fn test_emit() {
        let mut b = [0u8; 24];
        b[20..].copy_from_slice(&[0xde, 0xad, 0xbe, 0xef]);
        repr().emit(&mut Packet::new_unchecked(&mut b[..]));
        assert_eq!(b, packet());
    }

    #[test]
    fn test_impossible_len() {
        let b = packet();
        assert_eq!(Packet::new_checked(&b[..19]).unwrap_err(), Error::Truncated);
        assert_eq!(Packet::new_checked(&b[..23]).unwrap_err(), Error::Truncated, "total length says 24");
        let mut short_ihl = packet();
        short_ihl[0] = 0x44;
        assert_eq!(Packet::new_checked(&short_ihl[..]).unwrap_err(), Error::Malformed);
        let mut lying = packet();
        lying[3] = 0x10; // total 16 < header 20
        assert_eq!(Packet::new_checked(&lying[..]).unwrap_err(), Error::Malformed);
    }

    #[test]
    fn padding_after_total_length_is_ignored() {
        let mut b = packet().to_vec();
        b.extend_from_slice(&[0; 22]); // Ethernet minimum-frame padding
        let p = Packet::new_checked(&b[..]).unwrap();
        assert_eq!(p.payload().len(), 4);
    }

    #[test]
    fn bad_checksum_version_and_flags() {
        let mut b = packet();
        b[15] ^= 1;
        assert_eq!(Repr::parse(&Packet::new_unchecked(&b[..])).unwrap_err(), Error::Checksum);
        assert!(Repr::parse_with(&Packet::new_unchecked(&b[..]), false).is_ok(), "offload verified it");
        let mut v6 = packet();
        v6[0] = 0x65;
        assert_eq!(Repr::parse(&Packet::new_unchecked(&v6[..])).unwrap_err(), Error::Malformed);
    }

    #[test]
    fn options_and_fragments() {
        // Header with 4 bytes of options (NOP NOP NOP EOL), MF set, offset 8.
        let mut b = vec![0x46, 0, 0, 28, 0, 1, 0x20, 0x01, 5, 17, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 1, 1, 1, 0, 9, 9, 9, 9];
        Packet::new_unchecked(&mut b[..]).fill_checksum();
        let p = Packet::new_checked(&b[..]).unwrap();
        let r = Repr::parse(&p).unwrap();
        assert_eq!(r.options.as_bytes(), &[1, 1, 1, 0]);
        assert!(r.is_fragment() && r.more_frags && r.frag_offset == 8);
        assert_eq!(p.payload(), &[9, 9, 9, 9]);
        let mut out = vec![0u8; r.buffer_len()];
        out[24..].copy_from_slice(&[9, 9, 9, 9]);
        r.emit(&mut Packet::new_unchecked(&mut out[..]));
        assert_eq!(out, b);
    }

    #[test]
    fn ttl_decrement_keeps_the_checksum_valid() {
        let mut b = packet();
        let mut p = Packet::new_unchecked(&mut b[..]);
        for ttl in (1..64).rev() {
            p.decrement_ttl();
            assert_eq!(p.ttl(), ttl);
            assert!(p.verify_checksum());
        }
    }
}
