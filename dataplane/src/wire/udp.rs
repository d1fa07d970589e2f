//! UDP (RFC 768).

use super::checksum;
use super::{be16, put16, Error, Result};

mod field {
    pub const SRC_PORT: usize = 0;
    pub const DST_PORT: usize = 2;
    pub const LENGTH: usize = 4;
    pub const CHECKSUM: usize = 6;
}

pub const HEADER_LEN: usize = 8;

/// A view of a UDP datagram.
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
    /// The buffer holds the header and the length field's worth of bytes.
    pub fn check_len(&self) -> Result<()> {
        let len = self.buffer.as_ref().len();
        if len < HEADER_LEN {
            return Err(Error::Truncated);
        }
        let l = self.len() as usize;
        if l < HEADER_LEN {
            return Err(Error::Malformed);
        }
        if len < l {
            return Err(Error::Truncated);
        }
        Ok(())
    }
    pub fn src_port(&self) -> u16 {
        be16(self.buffer.as_ref(), field::SRC_PORT)
    }
    pub fn dst_port(&self) -> u16 {
        be16(self.buffer.as_ref(), field::DST_PORT)
    }
    /// The length field: header plus payload.
    pub fn len(&self) -> u16 {
        be16(self.buffer.as_ref(), field::LENGTH)
    }
    pub fn is_empty(&self) -> bool {
        self.len() as usize <= HEADER_LEN
    }
    pub fn checksum(&self) -> u16 {
        be16(self.buffer.as_ref(), field::CHECKSUM)
    }
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[HEADER_LEN..self.len() as usize]
    }
    /// Verifies against `pseudo` (see `checksum::pseudo_v4`/`pseudo_v6`).
    /// A zero checksum means "none" (allowed over IPv4 only; the caller decides).
    pub fn verify_checksum(&self, pseudo: u16) -> bool {
        let b = &self.buffer.as_ref()[..self.len() as usize];
        checksum::combine(pseudo, checksum::sum(b)) == 0xffff
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    pub fn set_src_port(&mut self, v: u16) {
        put16(self.buffer.as_mut(), field::SRC_PORT, v);
    }
    pub fn set_dst_port(&mut self, v: u16) {
        put16(self.buffer.as_mut(), field::DST_PORT, v);
    }
    pub fn set_len(&mut self, v: u16) {
        put16(self.buffer.as_mut(), field::LENGTH, v);
    }
    pub fn set_checksum(&mut self, v: u16) {
        put16(self.buffer.as_mut(), field::CHECKSUM, v);
    }
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let l = self.len() as usize;
        &mut self.buffer.as_mut()[HEADER_LEN..l]
    }
    /// Computes the checksum with `pseudo` (0 is sent as 0xffff).
    pub fn fill_checksum(&mut self, pseudo: u16) {
        self.set_checksum(0);
        let l = self.len() as usize;
        let c = checksum::finish(checksum::combine(pseudo, checksum::sum(&self.buffer.as_ref()[..l])));
        self.set_checksum(if c == 0 { 0xffff } else { c });
    }
}

/// A UDP header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Repr {
    pub src_port: u16,
    pub dst_port: u16,
    pub payload_len: usize,
}

impl Repr {
    /// Parses; `pseudo` is the pseudo-header sum, or `None` to skip the
    /// checksum (offloaded, or zero over IPv4).
    pub fn parse<T: AsRef<[u8]>>(p: &Packet<T>, pseudo: Option<u16>) -> Result<Repr> {
        p.check_len()?;
        if let Some(ps) = pseudo {
            if p.checksum() != 0 && !p.verify_checksum(ps) {
                return Err(Error::Checksum);
            }
        }
        Ok(Repr { src_port: p.src_port(), dst_port: p.dst_port(), payload_len: p.len() as usize - HEADER_LEN })
    }

    pub const fn buffer_len(&self) -> usize {
        HEADER_LEN + self.payload_len
    }

    /// Writes the header; with `pseudo`, also the checksum over the payload
    /// already in place.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, p: &mut Packet<T>, pseudo: Option<u16>) {
        p.set_src_port(self.src_port);
        p.set_dst_port(self.dst_port);
        p.set_len(self.buffer_len() as u16);
        match pseudo {
            Some(ps) => p.fill_checksum(ps),
            None => p.set_checksum(0),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{ip_proto, Ipv4Address};

    // 10.0.0.1:1024 -> 10.0.0.2:53, payload "hi"; checksum 0x7f39 (with the
    // pseudo-header) from an independent implementation (Python, RFC 1071).
    static PACKET: [u8; 10] = [0x04, 0x00, 0x00, 0x35, 0x00, 0x0a, 0x7f, 0x39, b'h', b'i'];

    fn pseudo() -> u16 {
        checksum::pseudo_v4(Ipv4Address::new(10, 0, 0, 1), Ipv4Address::new(10, 0, 0, 2), ip_proto::UDP, 10)
    }

    #[test]
    fn test_parse() {
        let p = Packet::new_checked(&PACKET[..]).unwrap();
        assert_eq!(Repr::parse(&p, Some(pseudo())).unwrap(), Repr { src_port: 1024, dst_port: 53, payload_len: 2 });
        assert_eq!(p.payload(), b"hi");
    }

    #[test]
    fn test_emit() {
        let mut b = [0u8; 10];
        b[8..].copy_from_slice(b"hi");
        Repr { src_port: 1024, dst_port: 53, payload_len: 2 }.emit(&mut Packet::new_unchecked(&mut b[..]), Some(pseudo()));
        assert_eq!(b, PACKET);
    }

    #[test]
    fn test_impossible_len() {
        assert_eq!(Packet::new_checked(&PACKET[..7]).unwrap_err(), Error::Truncated);
        assert_eq!(Packet::new_checked(&PACKET[..9]).unwrap_err(), Error::Truncated, "length field says 10");
        let mut short = PACKET;
        short[5] = 4;
        assert_eq!(Packet::new_checked(&short[..]).unwrap_err(), Error::Malformed);
    }

    #[test]
    fn checksum_zero_means_none_and_bad_is_rejected() {
        let mut b = PACKET;
        b[6..8].copy_from_slice(&[0, 0]);
        assert!(Repr::parse(&Packet::new_unchecked(&b[..]), Some(pseudo())).is_ok());
        let mut b = PACKET;
        b[9] ^= 1;
        assert_eq!(Repr::parse(&Packet::new_unchecked(&b[..]), Some(pseudo())).unwrap_err(), Error::Checksum);
    }
}
