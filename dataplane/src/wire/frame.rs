//! From a frame's link layer to its IP header: 802.1Q and 802.1ad tags
//! (QinQ, and the older 0x9100 outer tag), an MPLS label stack, a PPPoE
//! session. Stateless, like every format here. The flow key, DSCP trust
//! and DSCP marking all find the IP header through [`ip_header`], so a
//! tagged frame reads the same to each of them.

use super::{be16, ipv4, ipv6, EtherType};

/// Most tags, labels and session headers walked before giving up.
pub const MAX_SHIMS: usize = 8;

/// EtherTypes of the shims walked (besides [`EtherType::VLAN`] and
/// [`EtherType::QINQ`]).
pub mod ethertype {
    /// Pre-standard QinQ outer tag.
    pub const QINQ_OLD: u16 = 0x9100;
    pub const MPLS_UNICAST: u16 = 0x8847;
    pub const MPLS_MULTICAST: u16 = 0x8848;
    pub const PPPOE_SESSION: u16 = 0x8864;
}

/// PPP protocol numbers of IP in a PPPoE session (RFC 1332, RFC 5072).
const PPP_IPV4: u16 = 0x0021;
const PPP_IPV6: u16 = 0x0057;

/// The IP header a frame carries: its version and its offset in the frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ip {
    V4(usize),
    V6(usize),
}

impl Ip {
    #[inline(always)]
    pub fn offset(self) -> usize {
        match self {
            Ip::V4(o) | Ip::V6(o) => o,
        }
    }

    /// The header at `offset` by its version nibble (raw IP, the bottom of
    /// an MPLS stack, a tunnel's inner packet).
    #[inline]
    pub fn by_version(frame: &[u8], offset: usize) -> Option<Ip> {
        match frame.get(offset)? >> 4 {
            4 => Some(Ip::V4(offset)),
            6 => Some(Ip::V6(offset)),
            _ => None,
        }
    }

    /// The header that `ethertype` announces at `offset`.
    #[inline(always)]
    pub fn by_ethertype(ethertype: u16, offset: usize) -> Option<Ip> {
        match EtherType(ethertype) {
            EtherType::IPV4 => Some(Ip::V4(offset)),
            EtherType::IPV6 => Some(Ip::V6(offset)),
            _ => None,
        }
    }
}

/// The IP header of an Ethernet frame, or `None` for what is not IP (ARP,
/// LLDP, ...), a truncated shim, or more than [`MAX_SHIMS`] of them.
#[inline]
pub fn ip_header(frame: &[u8]) -> Option<Ip> {
    walk(frame, be16(frame.get(..super::ethernet::HEADER_LEN)?, 12), super::ethernet::HEADER_LEN)
}

/// Walks from an EtherType whose payload starts at `offset` through tags,
/// labels and a PPPoE session to the IP header (capture readers start here
/// after their own link header).
#[inline]
pub fn walk(frame: &[u8], mut ethertype: u16, mut offset: usize) -> Option<Ip> {
    for _ in 0..MAX_SHIMS {
        match ethertype {
            0x8100 | 0x88a8 | ethertype::QINQ_OLD => {
                ethertype = be16(frame.get(offset..offset + super::vlan::TAG_LEN)?, 2);
                offset += super::vlan::TAG_LEN;
            }
            ethertype::MPLS_UNICAST | ethertype::MPLS_MULTICAST => {
                // A label stack entry: label 20 bits, TC 3, bottom of stack 1, TTL 8.
                let bottom = frame.get(offset + 2)? & 1 != 0;
                offset += 4;
                if bottom {
                    return Ip::by_version(frame, offset);
                }
            }
            ethertype::PPPOE_SESSION => {
                // Version/type, code, session id, length, then the PPP protocol.
                let ppp = be16(frame.get(offset..offset + 8)?, 6);
                offset += 8;
                return match ppp {
                    PPP_IPV4 => Some(Ip::V4(offset)),
                    PPP_IPV6 => Some(Ip::V6(offset)),
                    _ => None,
                };
            }
            _ => return Ip::by_ethertype(ethertype, offset),
        }
    }
    None
}

/// The fixed IP header at `ip`, if the frame holds all of it. DSCP is
/// read and written on the header alone: whether the length fields tell
/// the truth is for the stages that use them (the router drops a liar).
#[inline(always)]
fn fixed_header(frame: &[u8], ip: Ip) -> Option<core::ops::Range<usize>> {
    let o = ip.offset();
    let len = match ip {
        Ip::V4(_) => ipv4::HEADER_LEN,
        Ip::V6(_) => ipv6::HEADER_LEN,
    };
    (frame.len() >= o + len).then_some(o..o + len)
}

/// The DSCP of an Ethernet frame's IP header (tags walked).
#[inline]
pub fn dscp(frame: &[u8]) -> Option<u8> {
    let ip = ip_header(frame)?;
    let h = &frame[fixed_header(frame, ip)?];
    Some(match ip {
        Ip::V4(_) => ipv4::Packet::new_unchecked(h).dscp(),
        Ip::V6(_) => ipv6::Packet::new_unchecked(h).traffic_class() >> 2,
    })
}

/// Writes `dscp` into an Ethernet frame's IP header (tags walked), the ECN
/// bits kept and the IPv4 header checksum updated incrementally. False
/// when the frame is not IP or its fixed header is cut short.
#[inline]
pub fn set_dscp(frame: &mut [u8], dscp: u8) -> bool {
    let dscp = dscp & 0x3f;
    let Some(ip) = ip_header(frame) else { return false };
    let Some(h) = fixed_header(frame, ip) else { return false };
    match ip {
        Ip::V4(_) => {
            let mut p = ipv4::Packet::new_unchecked(&mut frame[h]);
            // The first header word holds version, IHL and the TOS byte.
            let vihl = 0x40 | (p.header_len() / 4) as u8;
            let ecn = p.ecn();
            let old = u16::from_be_bytes([vihl, p.dscp() << 2 | ecn]);
            p.set_dscp_ecn(dscp, ecn);
            let new = u16::from_be_bytes([vihl, dscp << 2 | ecn]);
            let sum = super::checksum::update16(p.checksum(), old, new);
            p.set_checksum(sum);
            true
        }
        Ip::V6(_) => {
            let mut p = ipv6::Packet::new_unchecked(&mut frame[h]);
            let tc = dscp << 2 | (p.traffic_class() & 3);
            let flow = p.flow_label();
            p.set_version_tc_flow(tc, flow);
            true
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An Ethernet header with `tags` (TPID, VID) before `ethertype`.
    fn eth(tags: &[(u16, u16)], ethertype: u16) -> Vec<u8> {
        let mut f = vec![0x02, 0, 0, 0, 0, 1, 0x02, 0, 0, 0, 0, 2];
        for &(tpid, vid) in tags {
            f.extend_from_slice(&tpid.to_be_bytes());
            f.extend_from_slice(&vid.to_be_bytes());
        }
        f.extend_from_slice(&ethertype.to_be_bytes());
        f
    }

    /// IPv4 UDP 10.0.0.1 -> 10.0.0.2, TOS 0xb9 (DSCP 46, ECN 1), checksum valid.
    const V4: [u8; 28] = [
        0x45, 0xb9, 0x00, 0x1c, 0x00, 0x01, 0x00, 0x00, 0x40, 0x11, 0x66, 0x15, 10, 0, 0, 1, 10, 0, 0, 2, //
        0x30, 0x39, 0x00, 0x35, 0x00, 0x08, 0x00, 0x00,
    ];

    /// IPv6 UDP ::1 -> ::2, traffic class 0x62 (DSCP 24, ECN 2), flow label 0x12345.
    fn v6() -> Vec<u8> {
        let mut p = vec![0x66, 0x21, 0x23, 0x45, 0x00, 0x08, 17, 64];
        p.extend_from_slice(&[0; 15]);
        p.push(1);
        p.extend_from_slice(&[0; 15]);
        p.push(2);
        p.extend_from_slice(&[0x30, 0x39, 0x00, 0x35, 0x00, 0x08, 0x00, 0x00]);
        p
    }

    fn tagged() -> [(&'static str, Vec<(u16, u16)>); 4] {
        [
            ("untagged", vec![]),
            ("802.1Q", vec![(0x8100, 100)]),
            ("QinQ", vec![(0x88a8, 200), (0x8100, 100)]),
            ("QinQ 0x9100", vec![(0x9100, 200), (0x8100, 100)]),
        ]
    }

    #[test]
    fn finds_the_ip_header_behind_every_tag_stack() {
        for (name, tags) in tagged() {
            let mut f = eth(&tags, 0x0800);
            let at = f.len();
            f.extend_from_slice(&V4);
            assert_eq!(ip_header(&f), Some(Ip::V4(at)), "{name}");
            assert_eq!(dscp(&f), Some(46), "{name}");
            let mut f = eth(&tags, 0x86dd);
            let at = f.len();
            f.extend_from_slice(&v6());
            assert_eq!(ip_header(&f), Some(Ip::V6(at)), "{name}");
            assert_eq!(dscp(&f), Some(24), "{name}");
        }
    }

    #[test]
    fn marks_dscp_behind_every_tag_stack_keeping_ecn_and_checksum() {
        for (name, tags) in tagged() {
            let mut f = eth(&tags, 0x0800);
            let at = f.len();
            f.extend_from_slice(&V4);
            assert!(set_dscp(&mut f, 10), "{name}");
            // DSCP 10 (AF11), ECN 1 kept; the checksum recomputed by hand.
            let mut golden = V4;
            golden[1] = 0x29;
            golden[10..12].copy_from_slice(&[0x66, 0xa5]);
            assert_eq!(&f[at..], &golden, "{name}");
            assert!(ipv4::Packet::new_checked(&f[at..]).unwrap().verify_checksum(), "{name}");
            assert_eq!(dscp(&f), Some(10), "{name}");

            let mut f = eth(&tags, 0x86dd);
            let at = f.len();
            f.extend_from_slice(&v6());
            assert!(set_dscp(&mut f, 46), "{name}");
            // Traffic class 46 << 2 | 2 = 0xba; flow label kept.
            let mut golden = v6();
            golden[..4].copy_from_slice(&[0x6b, 0xa1, 0x23, 0x45]);
            assert_eq!(&f[at..], &golden[..], "{name}");
        }
    }

    #[test]
    fn walks_mpls_and_pppoe_and_refuses_what_is_not_ip() {
        let mut f = eth(&[], 0x8847);
        f.extend_from_slice(&[0x00, 0x01, 0x00, 0x40, 0x00, 0x02, 0x01, 0x40]); // two labels, the second bottom
        let at = f.len();
        f.extend_from_slice(&V4);
        assert_eq!(ip_header(&f), Some(Ip::V4(at)));
        let mut f = eth(&[(0x8100, 7)], 0x8864);
        f.extend_from_slice(&[0x11, 0x00, 0x00, 0x01, 0x00, 0x2a, 0x00, 0x57]);
        let at = f.len();
        f.extend_from_slice(&v6());
        assert_eq!(ip_header(&f), Some(Ip::V6(at)));
        assert_eq!(dscp(&f), Some(24));

        let arp = eth(&[(0x8100, 7)], 0x0806);
        assert_eq!(ip_header(&arp), None);
        let mut too_many = eth(&[(0x8100, 1); MAX_SHIMS], 0x0800);
        too_many.extend_from_slice(&V4);
        assert_eq!(ip_header(&too_many), None);
        // Truncated: a tag cut short, an IPv4 header cut short.
        assert_eq!(ip_header(&eth(&[], 0x8100)), None);
        let mut short = eth(&[], 0x0800);
        short.extend_from_slice(&V4[..19]);
        assert_eq!(dscp(&short), None);
        assert!(!set_dscp(&mut short, 46));
        assert_eq!(ip_header(&[0; 13]), None);
    }
}
