//! TCP headers (RFC 9293); options kept as bytes.

use super::checksum;
use super::{be16, be32, put16, put32, Error, Result};

mod field {
    pub const SRC_PORT: usize = 0;
    pub const DST_PORT: usize = 2;
    pub const SEQ: usize = 4;
    pub const ACK: usize = 8;
    pub const OFF_FLAGS: usize = 12;
    pub const WINDOW: usize = 14;
    pub const CHECKSUM: usize = 16;
    pub const URGENT: usize = 18;
}

pub const HEADER_LEN: usize = 20;
pub const MAX_OPTIONS: usize = 40;

/// Flag bits (of the 16-bit data-offset/flags word).
pub mod flags {
    pub const FIN: u16 = 0x001;
    pub const SYN: u16 = 0x002;
    pub const RST: u16 = 0x004;
    pub const PSH: u16 = 0x008;
    pub const ACK: u16 = 0x010;
    pub const URG: u16 = 0x020;
    pub const ECE: u16 = 0x040;
    pub const CWR: u16 = 0x080;
    pub const ALL: u16 = 0x0ff;
}

/// A view of a TCP segment.
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
        let len = self.buffer.as_ref().len();
        if len < HEADER_LEN {
            return Err(Error::Truncated);
        }
        let hl = self.header_len();
        if hl < HEADER_LEN {
            return Err(Error::Malformed);
        }
        if len < hl {
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
    pub fn seq_number(&self) -> u32 {
        be32(self.buffer.as_ref(), field::SEQ)
    }
    pub fn ack_number(&self) -> u32 {
        be32(self.buffer.as_ref(), field::ACK)
    }
    pub fn header_len(&self) -> usize {
        (self.buffer.as_ref()[field::OFF_FLAGS] >> 4) as usize * 4
    }
    pub fn flags(&self) -> u16 {
        be16(self.buffer.as_ref(), field::OFF_FLAGS) & flags::ALL
    }
    pub fn window(&self) -> u16 {
        be16(self.buffer.as_ref(), field::WINDOW)
    }
    pub fn checksum(&self) -> u16 {
        be16(self.buffer.as_ref(), field::CHECKSUM)
    }
    pub fn urgent(&self) -> u16 {
        be16(self.buffer.as_ref(), field::URGENT)
    }
    pub fn options(&self) -> &[u8] {
        &self.buffer.as_ref()[HEADER_LEN..self.header_len()]
    }
    /// Everything after the header (the caller bounds the buffer to the segment).
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[self.header_len()..]
    }
    pub fn verify_checksum(&self, pseudo: u16) -> bool {
        checksum::combine(pseudo, checksum::sum(self.buffer.as_ref())) == 0xffff
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    pub fn set_ports(&mut self, src: u16, dst: u16) {
        put16(self.buffer.as_mut(), field::SRC_PORT, src);
        put16(self.buffer.as_mut(), field::DST_PORT, dst);
    }
    pub fn set_seq_ack(&mut self, seq: u32, ack: u32) {
        put32(self.buffer.as_mut(), field::SEQ, seq);
        put32(self.buffer.as_mut(), field::ACK, ack);
    }
    pub fn set_header_len_flags(&mut self, header_len: usize, f: u16) {
        put16(self.buffer.as_mut(), field::OFF_FLAGS, ((header_len / 4) as u16) << 12 | (f & flags::ALL));
    }
    pub fn set_window(&mut self, v: u16) {
        put16(self.buffer.as_mut(), field::WINDOW, v);
    }
    pub fn set_urgent(&mut self, v: u16) {
        put16(self.buffer.as_mut(), field::URGENT, v);
    }
    pub fn fill_checksum(&mut self, pseudo: u16) {
        put16(self.buffer.as_mut(), field::CHECKSUM, 0);
        let c = checksum::finish(checksum::combine(pseudo, checksum::sum(self.buffer.as_ref())));
        put16(self.buffer.as_mut(), field::CHECKSUM, c);
    }
}

/// TCP options, as bytes (their content is not interpreted).
pub type Options = super::OptionBytes;

/// A TCP header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Repr {
    pub src_port: u16,
    pub dst_port: u16,
    pub seq: u32,
    pub ack: u32,
    pub flags: u16,
    pub window: u16,
    pub urgent: u16,
    pub options: Options,
    pub payload_len: usize,
}

impl Repr {
    /// Parses a whole segment (`p` spans exactly the segment); `pseudo`
    /// verifies the checksum, `None` skips it.
    pub fn parse<T: AsRef<[u8]>>(p: &Packet<T>, pseudo: Option<u16>) -> Result<Repr> {
        p.check_len()?;
        if let Some(ps) = pseudo {
            if !p.verify_checksum(ps) {
                return Err(Error::Checksum);
            }
        }
        let f = p.flags();
        if f & flags::SYN != 0 && f & flags::FIN != 0 {
            return Err(Error::Malformed);
        }
        Ok(Repr {
            src_port: p.src_port(),
            dst_port: p.dst_port(),
            seq: p.seq_number(),
            ack: p.ack_number(),
            flags: f,
            window: p.window(),
            urgent: p.urgent(),
            options: Options::new(p.options()).ok_or(Error::Malformed)?,
            payload_len: p.payload().len(),
        })
    }

    pub fn header_len(&self) -> usize {
        HEADER_LEN + self.options.as_bytes().len()
    }

    pub fn buffer_len(&self) -> usize {
        self.header_len() + self.payload_len
    }

    /// Writes the header; with `pseudo`, the checksum over the segment
    /// (payload already in place; the buffer spans exactly the segment).
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, p: &mut Packet<T>, pseudo: Option<u16>) {
        p.set_ports(self.src_port, self.dst_port);
        p.set_seq_ack(self.seq, self.ack);
        p.set_header_len_flags(self.header_len(), self.flags);
        p.set_window(self.window);
        p.set_urgent(self.urgent);
        p.buffer.as_mut()[HEADER_LEN..self.header_len()].copy_from_slice(self.options.as_bytes());
        match pseudo {
            Some(ps) => p.fill_checksum(ps),
            None => put16(p.buffer.as_mut(), field::CHECKSUM, 0),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{ip_proto, Ipv4Address};

    fn pseudo(len: u16) -> u16 {
        checksum::pseudo_v4(Ipv4Address::new(10, 0, 0, 1), Ipv4Address::new(10, 0, 0, 2), ip_proto::TCP, len)
    }

    // SYN 10.0.0.1:40000 -> 10.0.0.2:80, seq 1, window 65535, MSS 1460
    // option; checksum 0xe792 from an independent implementation (Python).
    static SYN: [u8; 24] =
        [0x9c, 0x40, 0x00, 0x50, 0, 0, 0, 1, 0, 0, 0, 0, 0x60, 0x02, 0xff, 0xff, 0xe7, 0x92, 0, 0, 0x02, 0x04, 0x05, 0xb4];

    fn repr() -> Repr {
        Repr {
            src_port: 40000,
            dst_port: 80,
            seq: 1,
            ack: 0,
            flags: flags::SYN,
            window: 65535,
            urgent: 0,
            options: Options::new(&[2, 4, 5, 0xb4]).unwrap(),
            payload_len: 0,
        }
    }

    #[test]
    fn test_parse() {
        assert_eq!(Repr::parse(&Packet::new_checked(&SYN[..]).unwrap(), Some(pseudo(24))).unwrap(), repr());
    }

    #[test]
    fn test_emit() {
        let mut b = [0u8; 24];
        repr().emit(&mut Packet::new_unchecked(&mut b[..]), Some(pseudo(24)));
        assert_eq!(b, SYN);
    }

    #[test]
    fn test_impossible_len() {
        assert_eq!(Packet::new_checked(&SYN[..19]).unwrap_err(), Error::Truncated);
        assert_eq!(Packet::new_checked(&SYN[..23]).unwrap_err(), Error::Truncated, "data offset says 24");
        let mut b = SYN;
        b[12] = 0x40;
        assert_eq!(Packet::new_checked(&b[..]).unwrap_err(), Error::Malformed, "data offset 16 < 20");
    }

    #[test]
    fn syn_fin_is_malformed() {
        let mut b = SYN;
        b[13] = 0x03;
        assert_eq!(Repr::parse(&Packet::new_unchecked(&b[..]), None).unwrap_err(), Error::Malformed);
    }
}
