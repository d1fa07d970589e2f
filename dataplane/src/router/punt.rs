//! The header a worker puts in front of a packet it hands to the control
//! thread, so the packet carries why it was punted and where it belongs.
//! It sits in the mbuf's headroom: nothing is allocated to punt.

use super::fib::IfaceIdx;
use crate::packet::Packet;
use crate::PortIdx;

/// Bytes prepended to a punted packet.
pub const HEADER_LEN: usize = 32;

const MAGIC: [u8; 4] = *b"PNT1";

/// Why a packet was punted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// An ARP packet received on `iface`.
    Arp = 1,
    /// A Neighbor Discovery message received on `iface`.
    Nd = 2,
    /// A packet ready to leave by `iface` but for the neighbour's MAC.
    Resolve = 3,
    /// A WireGuard handshake message (initiation, response, cookie reply)
    /// to the tunnel's listen port, received on `iface`.
    Tunnel = 4,
    /// An SLA probe reply opened by the worker: a 14-byte placeholder
    /// L2 header, then the probe's plaintext (`path::probe`).
    Probe = 5,
    /// A BFD control packet (UDP to port 3784 or 4784) to one of our
    /// addresses, received on `iface`.
    Bfd = 6,
}

/// The punt header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    pub kind: Kind,
    pub in_port: PortIdx,
    pub iface: IfaceIdx,
    /// Length of the L2 header that follows the punt header.
    pub l2_len: u16,
    /// For [`Kind::Resolve`]: the neighbour (a `NeighborKey` address).
    pub neighbor: u128,
}

impl Header {
    fn write(&self, b: &mut [u8]) {
        b[0..4].copy_from_slice(&MAGIC);
        b[4] = self.kind as u8;
        b[5] = 0;
        b[6..8].copy_from_slice(&self.in_port.to_ne_bytes());
        b[8..10].copy_from_slice(&self.iface.to_ne_bytes());
        b[10..12].copy_from_slice(&self.l2_len.to_ne_bytes());
        b[12..16].fill(0);
        b[16..32].copy_from_slice(&self.neighbor.to_ne_bytes());
    }

    fn read(b: &[u8]) -> Option<Header> {
        if b.len() < HEADER_LEN || b[0..4] != MAGIC {
            return None;
        }
        let kind = match b[4] {
            1 => Kind::Arp,
            2 => Kind::Nd,
            3 => Kind::Resolve,
            4 => Kind::Tunnel,
            5 => Kind::Probe,
            6 => Kind::Bfd,
            _ => return None,
        };
        let u16_at = |i: usize| u16::from_ne_bytes([b[i], b[i + 1]]);
        let mut ip = [0u8; 16];
        ip.copy_from_slice(&b[16..32]);
        Some(Header { kind, in_port: u16_at(6), iface: u16_at(8), l2_len: u16_at(10), neighbor: u128::from_ne_bytes(ip) })
    }
}

/// Puts `h` in front of the packet; false if there is no headroom.
pub fn push<P: Packet>(pkt: &mut P, h: &Header) -> bool {
    if !pkt.prepend(HEADER_LEN) {
        return false;
    }
    h.write(&mut pkt.data_mut()[..HEADER_LEN]);
    true
}

/// Takes the punt header off a packet the control thread received.
pub fn pop<P: Packet>(pkt: &mut P) -> Option<Header> {
    let h = Header::read(pkt.data())?;
    pkt.adj(HEADER_LEN).then_some(h)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::packet::HeapPool;

    #[test]
    fn round_trip_through_headroom() {
        let pool = HeapPool::new();
        let mut p = pool.packet(&[9; 60]);
        let h = Header { kind: Kind::Resolve, in_port: 3, iface: 7, l2_len: 18, neighbor: 0xffff_0a00_0001 };
        assert!(push(&mut p, &h));
        assert_eq!(p.data().len(), 92);
        assert_eq!(pop(&mut p), Some(h));
        assert_eq!(p.data(), &[9; 60]);
        assert_eq!(pop(&mut p), None, "no header, nothing removed");
        assert_eq!(p.data().len(), 60);
    }
}
