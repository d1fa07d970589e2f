//! The frame walk that finds a packet's flow: the IP header found by
//! [`wire::frame`] (802.1Q/QinQ, MPLS, PPPoE), IPv4 or IPv6 (extension
//! headers walked), TCP or UDP ports, the L4 payload, and the user's inner
//! packet of GTP-U. Every byte is read through the `wire` views.

use crate::vocab::{mapped_v4, Dir, FlowKey};
use crate::wire::frame::{self, Ip};
use crate::wire::{gtpu, ip_proto, ipv4, ipv6, tcp, udp};

/// TCP flags the flow table looks at.
pub const TCP_FIN: u8 = tcp::flags::FIN as u8;
pub const TCP_SYN: u8 = tcp::flags::SYN as u8;
pub const TCP_RST: u8 = tcp::flags::RST as u8;

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
    /// DSCP of the (outer) IP header.
    pub dscp: u8,
}

/// Walks an Ethernet frame to its flow. `None` for what is not IP, a
/// non-first fragment, or a truncated or inconsistent header (the caller
/// counts it).
#[inline]
pub fn parse_frame(frame: &[u8]) -> Option<Parsed> {
    parse_at(frame, frame::ip_header(frame)?)
}

/// Walks from the IP header at `ip` (capture readers find it behind their
/// own link headers). A GTP-U G-PDU's flow is the user's inner packet.
#[inline]
pub fn parse_at(frame: &[u8], ip: Ip) -> Option<Parsed> {
    let outer = ip_packet(frame, ip)?;
    if outer.key.proto == ip_proto::UDP && (outer.key.lo_port == gtpu::PORT || outer.key.hi_port == gtpu::PORT) {
        let (start, len) = outer.payload;
        if let Some(inner) = gtpu::inner_offset(&frame[start..start + len]).and_then(|o| Ip::by_version(frame, start + o)) {
            if let Some(mut p) = ip_packet(frame, inner) {
                p.dscp = outer.dscp;
                return Some(p);
            }
        }
    }
    Some(outer)
}

/// An IPv4 or IPv6 packet and its TCP/UDP header.
#[inline(always)]
fn ip_packet(frame: &[u8], ip: Ip) -> Option<Parsed> {
    let off = ip.offset();
    let d = frame.get(off..)?;
    let (src, dst, proto, l4, ip_len, dscp) = match ip {
        Ip::V4(_) => {
            let p = ipv4::Packet::new_checked(d).ok()?;
            if p.version() != 4 || p.frag_offset() != 0 {
                return None; // not the first fragment: no L4 header
            }
            let (s, t) = (p.src_addr().0, p.dst_addr().0);
            (mapped_v4(s), mapped_v4(t), p.protocol(), p.header_len(), p.total_len() as usize, p.dscp())
        }
        Ip::V6(_) => {
            let p = ipv6::Packet::new_checked(d).ok()?;
            if p.version() != 6 {
                return None;
            }
            let up = ipv6::walk_extensions(p.next_header(), p.payload()).ok()?;
            if up.later_fragment {
                return None;
            }
            let len = ipv6::HEADER_LEN + p.payload_len() as usize;
            (p.src_addr().0, p.dst_addr().0, up.protocol, ipv6::HEADER_LEN + up.offset, len, p.traffic_class() >> 2)
        }
    };
    let t = d.get(l4..ip_len)?;
    let (sport, dport, info, hdr) = match proto {
        ip_proto::TCP => {
            let h = tcp::Packet::new_checked(t).ok()?;
            let info = L4Info::Tcp { flags: h.flags() as u8, seq: h.seq_number() };
            (h.src_port(), h.dst_port(), info, h.header_len())
        }
        ip_proto::UDP => {
            // Ports only: the length field is not checked here (the router
            // and the tunnel check what they use).
            if t.len() < udp::HEADER_LEN {
                return None;
            }
            let h = udp::Packet::new_unchecked(t);
            (h.src_port(), h.dst_port(), L4Info::Udp, udp::HEADER_LEN)
        }
        _ => (0, 0, L4Info::Other, 0),
    };
    let (key, dir) = FlowKey::new(src, sport, dst, dport, proto);
    let start = off + l4 + hdr;
    Some(Parsed { key, dir, l4: info, payload: (start, ip_len - l4 - hdr), ip_len, dscp })
}
