//! ICMPv4 (RFC 792): echo, destination unreachable, time exceeded.

use super::checksum;
use super::{be16, put16, Error, Result};

pub mod msg {
    pub const ECHO_REPLY: u8 = 0;
    pub const DST_UNREACHABLE: u8 = 3;
    pub const ECHO_REQUEST: u8 = 8;
    pub const TIME_EXCEEDED: u8 = 11;
}

/// Destination-unreachable codes the appliance sends.
pub mod unreachable {
    pub const NET: u8 = 0;
    pub const HOST: u8 = 1;
    pub const PROTOCOL: u8 = 2;
    pub const PORT: u8 = 3;
    pub const FRAG_NEEDED: u8 = 4;
    pub const ADMIN_PROHIBITED: u8 = 13;
}

mod field {
    pub const TYPE: usize = 0;
    pub const CODE: usize = 1;
    pub const CHECKSUM: usize = 2;
    pub const REST: usize = 4;
    pub const DATA: usize = 8;
}

/// Length of the header (type, code, checksum and the 4 type-specific bytes).
pub const HEADER_LEN: usize = field::DATA;

/// A view of an ICMPv4 message.
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
        if self.buffer.as_ref().len() < HEADER_LEN {
            Err(Error::Truncated)
        } else {
            Ok(())
        }
    }
    pub fn msg_type(&self) -> u8 {
        self.buffer.as_ref()[field::TYPE]
    }
    pub fn msg_code(&self) -> u8 {
        self.buffer.as_ref()[field::CODE]
    }
    pub fn checksum(&self) -> u16 {
        be16(self.buffer.as_ref(), field::CHECKSUM)
    }
    /// Echo identifier.
    pub fn echo_ident(&self) -> u16 {
        be16(self.buffer.as_ref(), field::REST)
    }
    /// Echo sequence number.
    pub fn echo_seq_no(&self) -> u16 {
        be16(self.buffer.as_ref(), field::REST + 2)
    }
    /// Next-hop MTU of a fragmentation-needed message (RFC 1191).
    pub fn next_hop_mtu(&self) -> u16 {
        be16(self.buffer.as_ref(), field::REST + 2)
    }
    pub fn data(&self) -> &[u8] {
        &self.buffer.as_ref()[field::DATA..]
    }
    pub fn verify_checksum(&self) -> bool {
        checksum::sum(self.buffer.as_ref()) == 0xffff
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    pub fn set_msg_type(&mut self, v: u8) {
        self.buffer.as_mut()[field::TYPE] = v;
    }
    pub fn set_msg_code(&mut self, v: u8) {
        self.buffer.as_mut()[field::CODE] = v;
    }
    pub fn set_rest(&mut self, hi: u16, lo: u16) {
        put16(self.buffer.as_mut(), field::REST, hi);
        put16(self.buffer.as_mut(), field::REST + 2, lo);
    }
    pub fn data_mut(&mut self) -> &mut [u8] {
        &mut self.buffer.as_mut()[field::DATA..]
    }
    /// Recomputes the checksum over the whole buffer.
    pub fn fill_checksum(&mut self) {
        put16(self.buffer.as_mut(), field::CHECKSUM, 0);
        let c = checksum::finish(checksum::sum(self.buffer.as_ref()));
        put16(self.buffer.as_mut(), field::CHECKSUM, c);
    }
}

/// A validated ICMPv4 message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Repr<'a> {
    EchoRequest {
        ident: u16,
        seq_no: u16,
        data: &'a [u8],
    },
    EchoReply {
        ident: u16,
        seq_no: u16,
        data: &'a [u8],
    },
    /// `original`: the start of the datagram that caused it.
    DstUnreachable {
        code: u8,
        next_hop_mtu: u16,
        original: &'a [u8],
    },
    TimeExceeded {
        code: u8,
        original: &'a [u8],
    },
    /// Any other message: parsed and checksummed, not interpreted.
    Other {
        msg_type: u8,
        code: u8,
    },
}

impl<'a> Repr<'a> {
    pub fn parse<T: AsRef<[u8]> + ?Sized>(p: &'a Packet<&'a T>) -> Result<Repr<'a>> {
        p.check_len()?;
        if !p.verify_checksum() {
            return Err(Error::Checksum);
        }
        Ok(match (p.msg_type(), p.msg_code()) {
            (msg::ECHO_REQUEST, 0) => Repr::EchoRequest { ident: p.echo_ident(), seq_no: p.echo_seq_no(), data: p.data() },
            (msg::ECHO_REPLY, 0) => Repr::EchoReply { ident: p.echo_ident(), seq_no: p.echo_seq_no(), data: p.data() },
            (msg::ECHO_REQUEST | msg::ECHO_REPLY, _) => return Err(Error::Malformed),
            (msg::DST_UNREACHABLE, code) => Repr::DstUnreachable { code, next_hop_mtu: p.next_hop_mtu(), original: p.data() },
            (msg::TIME_EXCEEDED, code) => Repr::TimeExceeded { code, original: p.data() },
            (msg_type, code) => Repr::Other { msg_type, code },
        })
    }

    pub fn buffer_len(&self) -> usize {
        HEADER_LEN
            + match self {
                Repr::EchoRequest { data, .. } | Repr::EchoReply { data, .. } => data.len(),
                Repr::DstUnreachable { original, .. } | Repr::TimeExceeded { original, .. } => original.len(),
                Repr::Other { .. } => 0,
            }
    }

    /// Writes the whole message, checksum included. The buffer must be
    /// exactly `buffer_len()` long.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, p: &mut Packet<T>) {
        let (t, c, hi, lo, data): (u8, u8, u16, u16, &[u8]) = match *self {
            Repr::EchoRequest { ident, seq_no, data } => (msg::ECHO_REQUEST, 0, ident, seq_no, data),
            Repr::EchoReply { ident, seq_no, data } => (msg::ECHO_REPLY, 0, ident, seq_no, data),
            Repr::DstUnreachable { code, next_hop_mtu, original } => (msg::DST_UNREACHABLE, code, 0, next_hop_mtu, original),
            Repr::TimeExceeded { code, original } => (msg::TIME_EXCEEDED, code, 0, 0, original),
            Repr::Other { msg_type, code } => (msg_type, code, 0, 0, &[]),
        };
        p.set_msg_type(t);
        p.set_msg_code(c);
        p.set_rest(hi, lo);
        p.data_mut()[..data.len()].copy_from_slice(data);
        p.fill_checksum();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Echo request, ident 0x1234, seq 1, data "abcd"; checksum 0x2104 from
    // an independent implementation (Python, RFC 1071).
    static ECHO: [u8; 12] = [0x08, 0x00, 0x21, 0x04, 0x12, 0x34, 0x00, 0x01, b'a', b'b', b'c', b'd'];

    #[test]
    fn test_parse() {
        let p = Packet::new_checked(&ECHO[..]).unwrap();
        assert_eq!(Repr::parse(&p).unwrap(), Repr::EchoRequest { ident: 0x1234, seq_no: 1, data: b"abcd" });
    }

    #[test]
    fn test_emit() {
        let r = Repr::EchoRequest { ident: 0x1234, seq_no: 1, data: b"abcd" };
        let mut b = [0u8; 12];
        assert_eq!(r.buffer_len(), 12);
        r.emit(&mut Packet::new_unchecked(&mut b[..]));
        assert_eq!(b, ECHO);
    }

    #[test]
    fn test_impossible_len() {
        assert_eq!(Packet::new_checked(&ECHO[..7]).unwrap_err(), Error::Truncated);
    }

    #[test]
    fn checksum_and_code_errors() {
        let mut b = ECHO;
        b[9] ^= 0xff;
        assert_eq!(Repr::parse(&Packet::new_unchecked(&b[..])).unwrap_err(), Error::Checksum);
        let mut b = ECHO;
        b[1] = 1; // echo with a non-zero code
        Packet::new_unchecked(&mut b[..]).fill_checksum();
        assert_eq!(Repr::parse(&Packet::new_unchecked(&b[..])).unwrap_err(), Error::Malformed);
    }

    #[test]
    fn errors_round_trip() {
        let original = [0x45, 0, 0, 28, 0, 0, 0, 0, 1, 17, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2, 1, 2, 3, 4, 5, 6, 7, 8];
        for r in [
            Repr::TimeExceeded { code: 0, original: &original },
            Repr::DstUnreachable { code: unreachable::FRAG_NEEDED, next_hop_mtu: 1400, original: &original },
        ] {
            let mut b = vec![0u8; r.buffer_len()];
            r.emit(&mut Packet::new_unchecked(&mut b[..]));
            let p = Packet::new_checked(&b[..]).unwrap();
            assert_eq!(Repr::parse(&p).unwrap(), r);
        }
    }
}
