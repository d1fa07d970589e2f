//! ICMP messages the router builds in place, in the buffer of the packet
//! that caused them: echo replies and errors (time exceeded, destination
//! unreachable, fragmentation needed / packet too big). Nothing is
//! allocated; the original's headers become the quoted part.

use super::fib::Iface;
use crate::packet::Packet;
use crate::wire::{checksum, icmpv4, icmpv6, ip_proto, ipv4, ipv6, EtherType, EthernetAddress, Ipv4Address, Ipv6Address};

/// Hop limit / TTL of messages the appliance originates.
pub const HOP_LIMIT: u8 = 64;

/// IPv6 minimum MTU: an ICMPv6 error fits in it (RFC 4443 2.4 c).
const IPV6_MIN_MTU: usize = 1280;

/// The source MAC of the frame (the previous hop), which the reply goes to.
fn previous_hop<P: Packet>(pkt: &P) -> EthernetAddress {
    EthernetAddress::from_bytes(&pkt.data()[6..12])
}

/// Makes room for `extra` bytes of new headers between the L2 header and
/// the original datagram, which is first cut to `l2 + quote` bytes.
fn open_gap<P: Packet>(pkt: &mut P, l2: usize, quote: usize, extra: usize) -> bool {
    if !pkt.truncate(l2 + quote) || !pkt.prepend(extra) {
        return false;
    }
    pkt.data_mut().copy_within(extra..extra + l2, 0);
    true
}

/// Whether an IPv4 packet may be answered with an ICMP error (RFC 1812
/// 4.3.2.7): not about an ICMP error, not a later fragment, not from a
/// non-unicast source.
pub fn v4_error_allowed(ip: &ipv4::Packet<&[u8]>) -> bool {
    let src = ip.src_addr();
    if ip.frag_offset() != 0 || src.is_multicast() || src.is_broadcast() || src.is_unspecified() || src.is_loopback() {
        return false;
    }
    if ip.protocol() == ip_proto::ICMP {
        let t = ip.payload().first().copied();
        return matches!(t, Some(icmpv4::msg::ECHO_REQUEST | icmpv4::msg::ECHO_REPLY | 13..=18));
    }
    true
}

/// Turns the frame (L2 header of `l2` bytes, then an IPv4 datagram) into
/// an ICMPv4 error from `from` back to the datagram's source, addressed to
/// the previous hop on `iface`. `rest` is the low 16 bits of the 4
/// type-specific bytes (the next-hop MTU of "fragmentation needed").
pub fn v4_error<P: Packet>(pkt: &mut P, l2: usize, iface: &Iface, from: Ipv4Address, msg_type: u8, code: u8, rest: u16) -> bool {
    let (dst, quote) = {
        let ip = ipv4::Packet::new_unchecked(&pkt.data()[l2..]);
        (ip.src_addr(), (ip.header_len() + 8).min(ip.total_len() as usize))
    };
    let to = previous_hop(pkt);
    const EXTRA: usize = ipv4::HEADER_LEN + icmpv4::HEADER_LEN;
    if !open_gap(pkt, l2, quote, EXTRA) {
        return false;
    }
    let b = pkt.data_mut();
    iface.write_l2(&mut b[..l2], to, EtherType::IPV4);
    let ip = &mut b[l2..];
    let repr = ipv4::Repr {
        src: from,
        dst,
        protocol: ip_proto::ICMP,
        ttl: HOP_LIMIT,
        dscp: 0x30, // CS6, network control
        ecn: 0,
        ident: 0,
        dont_frag: false,
        more_frags: false,
        frag_offset: 0,
        options: ipv4::Options::NONE,
        payload_len: icmpv4::HEADER_LEN + quote,
    };
    repr.emit(&mut ipv4::Packet::new_unchecked(&mut ip[..]));
    let mut icmp = icmpv4::Packet::new_unchecked(&mut ip[ipv4::HEADER_LEN..]);
    icmp.set_msg_type(msg_type);
    icmp.set_msg_code(code);
    icmp.set_rest(0, rest);
    icmp.fill_checksum();
    true
}

/// Turns an ICMPv4 echo request to the appliance into the reply, in place.
pub fn v4_echo_reply<P: Packet>(pkt: &mut P, l2: usize, iface: &Iface) {
    let to = previous_hop(pkt);
    let b = pkt.data_mut();
    iface.write_l2(&mut b[..l2], to, EtherType::IPV4);
    let mut ip = ipv4::Packet::new_unchecked(&mut b[l2..]);
    let (src, dst) = (ip.src_addr(), ip.dst_addr());
    ip.set_src_addr(dst);
    ip.set_dst_addr(src);
    ip.set_ttl(HOP_LIMIT);
    ip.fill_checksum();
    let hl = ip.header_len();
    let icmp = &mut b[l2 + hl..];
    let old = u16::from_be_bytes([icmp[0], icmp[1]]);
    icmp[0] = icmpv4::msg::ECHO_REPLY;
    let c = checksum::update16(u16::from_be_bytes([icmp[2], icmp[3]]), old, u16::from_be_bytes([icmp[0], icmp[1]]));
    icmp[2..4].copy_from_slice(&c.to_be_bytes());
}

/// Whether an IPv6 packet may be answered with an ICMPv6 error (RFC 4443
/// 2.4 e): not about an error message, not from a non-unicast source.
/// `upper` is the upper-layer protocol and its first byte, if reachable.
pub fn v6_error_allowed(src: Ipv6Address, dst: Ipv6Address, upper: Option<(u8, u8)>) -> bool {
    if src.is_multicast() || src.is_unspecified() || src.is_loopback() || dst.is_multicast() {
        return false;
    }
    match upper {
        Some((ip_proto::ICMPV6, t)) => t >= 128,
        _ => true,
    }
}

/// Turns the frame (L2 header of `l2` bytes, then an IPv6 packet) into an
/// ICMPv6 error back to the packet's source, quoting as much as fits in
/// 1280 bytes. `rest` is the 4 type-specific bytes (the MTU of "packet too
/// big", the pointer of "parameter problem").
pub fn v6_error<P: Packet>(pkt: &mut P, l2: usize, iface: &Iface, msg_type: u8, code: u8, rest: u32) -> bool {
    let (dst, quote) = {
        let ip = ipv6::Packet::new_unchecked(&pkt.data()[l2..]);
        let len = ipv6::HEADER_LEN + ip.payload_len() as usize;
        (ip.src_addr(), len.min(IPV6_MIN_MTU - ipv6::HEADER_LEN - icmpv6::HEADER_LEN))
    };
    let from = iface.v6_source(dst);
    let to = previous_hop(pkt);
    const EXTRA: usize = ipv6::HEADER_LEN + icmpv6::HEADER_LEN;
    if !open_gap(pkt, l2, quote, EXTRA) {
        return false;
    }
    let b = pkt.data_mut();
    iface.write_l2(&mut b[..l2], to, EtherType::IPV6);
    let ip = &mut b[l2..];
    let repr = ipv6::Repr {
        src: from,
        dst,
        next_header: ip_proto::ICMPV6,
        hop_limit: HOP_LIMIT,
        traffic_class: 0xc0, // CS6
        flow_label: 0,
        payload_len: icmpv6::HEADER_LEN + quote,
    };
    repr.emit(&mut ipv6::Packet::new_unchecked(&mut ip[..]));
    let mut icmp = icmpv6::Packet::new_unchecked(&mut ip[ipv6::HEADER_LEN..]);
    icmp.set_msg_type(msg_type);
    icmp.set_msg_code(code);
    icmp.set_rest(rest);
    icmp.fill_checksum(from, dst);
    true
}

/// Turns an ICMPv6 echo request to the appliance into the reply, in place.
/// `icmp_at`: offset of the ICMPv6 header from the start of the IPv6 header.
pub fn v6_echo_reply<P: Packet>(pkt: &mut P, l2: usize, iface: &Iface, icmp_at: usize) {
    let to = previous_hop(pkt);
    let b = pkt.data_mut();
    iface.write_l2(&mut b[..l2], to, EtherType::IPV6);
    let mut ip = ipv6::Packet::new_unchecked(&mut b[l2..]);
    let (src, dst) = (ip.src_addr(), ip.dst_addr());
    ip.set_src_addr(dst);
    ip.set_dst_addr(src);
    ip.set_hop_limit(HOP_LIMIT);
    // The pseudo-header sum does not change when its addresses swap.
    let icmp = &mut b[l2 + icmp_at..];
    let old = u16::from_be_bytes([icmp[0], icmp[1]]);
    icmp[0] = icmpv6::msg::ECHO_REPLY;
    let c = checksum::update16(u16::from_be_bytes([icmp[2], icmp[3]]), old, u16::from_be_bytes([icmp[0], icmp[1]]));
    icmp[2..4].copy_from_slice(&c.to_be_bytes());
}
