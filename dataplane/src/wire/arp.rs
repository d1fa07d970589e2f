//! ARP for IPv4 over Ethernet (RFC 826).

use super::{be16, put16, Error, EthernetAddress, Ipv4Address, Result};

/// ARP operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Operation {
    Request,
    Reply,
}

mod field {
    use core::ops::Range;
    pub const HTYPE: usize = 0;
    pub const PTYPE: usize = 2;
    pub const HLEN: usize = 4;
    pub const PLEN: usize = 5;
    pub const OPER: usize = 6;
    pub const SHA: Range<usize> = 8..14;
    pub const SPA: Range<usize> = 14..18;
    pub const THA: Range<usize> = 18..24;
    pub const TPA: Range<usize> = 24..28;
}

/// Length of an Ethernet/IPv4 ARP packet.
pub const PACKET_LEN: usize = 28;

/// A view of an ARP packet.
#[derive(Debug, Clone)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    pub fn new_unchecked(buffer: T) -> Packet<T> {
        Packet { buffer }
    }

    pub fn new_checked(buffer: T) -> Result<Packet<T>> {
        let p = Self::new_unchecked(buffer);
        p.check_len()?;
        Ok(p)
    }

    pub fn check_len(&self) -> Result<()> {
        if self.buffer.as_ref().len() < PACKET_LEN {
            Err(Error::Truncated)
        } else {
            Ok(())
        }
    }

    pub fn hardware_type(&self) -> u16 {
        be16(self.buffer.as_ref(), field::HTYPE)
    }
    pub fn protocol_type(&self) -> u16 {
        be16(self.buffer.as_ref(), field::PTYPE)
    }
    pub fn hardware_len(&self) -> u8 {
        self.buffer.as_ref()[field::HLEN]
    }
    pub fn protocol_len(&self) -> u8 {
        self.buffer.as_ref()[field::PLEN]
    }
    pub fn operation(&self) -> u16 {
        be16(self.buffer.as_ref(), field::OPER)
    }
    pub fn sender_hardware_addr(&self) -> EthernetAddress {
        EthernetAddress::from_bytes(&self.buffer.as_ref()[field::SHA])
    }
    pub fn sender_protocol_addr(&self) -> Ipv4Address {
        Ipv4Address::from_bytes(&self.buffer.as_ref()[field::SPA])
    }
    pub fn target_hardware_addr(&self) -> EthernetAddress {
        EthernetAddress::from_bytes(&self.buffer.as_ref()[field::THA])
    }
    pub fn target_protocol_addr(&self) -> Ipv4Address {
        Ipv4Address::from_bytes(&self.buffer.as_ref()[field::TPA])
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    fn set_fixed(&mut self, op: u16) {
        let b = self.buffer.as_mut();
        put16(b, field::HTYPE, 1);
        put16(b, field::PTYPE, 0x0800);
        b[field::HLEN] = 6;
        b[field::PLEN] = 4;
        put16(b, field::OPER, op);
    }
    pub fn set_addrs(&mut self, sha: EthernetAddress, spa: Ipv4Address, tha: EthernetAddress, tpa: Ipv4Address) {
        let b = self.buffer.as_mut();
        b[field::SHA].copy_from_slice(&sha.0);
        b[field::SPA].copy_from_slice(&spa.0);
        b[field::THA].copy_from_slice(&tha.0);
        b[field::TPA].copy_from_slice(&tpa.0);
    }
}

/// An Ethernet/IPv4 ARP packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Repr {
    pub operation: Operation,
    pub source_hardware_addr: EthernetAddress,
    pub source_protocol_addr: Ipv4Address,
    pub target_hardware_addr: EthernetAddress,
    pub target_protocol_addr: Ipv4Address,
}

impl Repr {
    pub fn parse<T: AsRef<[u8]>>(p: &Packet<T>) -> Result<Repr> {
        p.check_len()?;
        if p.hardware_type() != 1 || p.protocol_type() != 0x0800 || p.hardware_len() != 6 || p.protocol_len() != 4 {
            return Err(Error::Unsupported);
        }
        let operation = match p.operation() {
            1 => Operation::Request,
            2 => Operation::Reply,
            _ => return Err(Error::Malformed),
        };
        Ok(Repr {
            operation,
            source_hardware_addr: p.sender_hardware_addr(),
            source_protocol_addr: p.sender_protocol_addr(),
            target_hardware_addr: p.target_hardware_addr(),
            target_protocol_addr: p.target_protocol_addr(),
        })
    }

    pub const fn buffer_len(&self) -> usize {
        PACKET_LEN
    }

    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, p: &mut Packet<T>) {
        p.set_fixed(match self.operation {
            Operation::Request => 1,
            Operation::Reply => 2,
        });
        p.set_addrs(self.source_hardware_addr, self.source_protocol_addr, self.target_hardware_addr, self.target_protocol_addr);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Who has 10.0.0.2? Tell 10.0.0.1 (02:00:00:00:00:01).
    static PACKET: [u8; 28] =
        [0x00, 0x01, 0x08, 0x00, 0x06, 0x04, 0x00, 0x01, 0x02, 0x00, 0x00, 0x00, 0x00, 0x01, 10, 0, 0, 1, 0, 0, 0, 0, 0, 0, 10, 0, 0, 2];

    fn repr() -> Repr {
        Repr {
            operation: Operation::Request,
            source_hardware_addr: EthernetAddress([2, 0, 0, 0, 0, 1]),
            source_protocol_addr: Ipv4Address([10, 0, 0, 1]),
            target_hardware_addr: EthernetAddress([0; 6]),
            target_protocol_addr: Ipv4Address([10, 0, 0, 2]),
        }
    }

    #[test]
    fn test_parse() {
        assert_eq!(Repr::parse(&Packet::new_checked(&PACKET[..]).unwrap()).unwrap(), repr());
    }

    #[test]
    fn test_emit() {
        let mut b = [0u8; 28];
        repr().emit(&mut Packet::new_unchecked(&mut b[..]));
        assert_eq!(b, PACKET);
    }

    #[test]
    fn test_impossible_len() {
        assert_eq!(Packet::new_checked(&PACKET[..27]).unwrap_err(), Error::Truncated);
    }

    #[test]
    fn rejects_other_hardware_and_operations() {
        let mut b = PACKET;
        b[1] = 6; // IEEE 802 hardware type
        assert_eq!(Repr::parse(&Packet::new_unchecked(&b[..])).unwrap_err(), Error::Unsupported);
        let mut b = PACKET;
        b[7] = 3; // RARP request
        assert_eq!(Repr::parse(&Packet::new_unchecked(&b[..])).unwrap_err(), Error::Malformed);
    }
}
