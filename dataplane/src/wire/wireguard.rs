//! WireGuard messages (whitepaper §5.4): handshake initiation, response,
//! cookie reply and transport data. Integers are little-endian; every
//! message starts with a type byte and three reserved zero bytes.

use super::{Error, Result};

/// Message types.
pub mod kind {
    pub const INITIATION: u8 = 1;
    pub const RESPONSE: u8 = 2;
    pub const COOKIE_REPLY: u8 = 3;
    pub const TRANSPORT: u8 = 4;
}

pub const INITIATION_LEN: usize = 148;
pub const RESPONSE_LEN: usize = 92;
pub const COOKIE_REPLY_LEN: usize = 64;
/// Type, receiver index and counter in front of a transport payload.
pub const TRANSPORT_HEADER_LEN: usize = 16;
/// Poly1305 tag.
pub const TAG_LEN: usize = 16;
/// Smallest transport message: header and the tag of an empty payload (a keepalive).
pub const TRANSPORT_MIN_LEN: usize = TRANSPORT_HEADER_LEN + TAG_LEN;
/// Transport payloads are padded to a multiple of this.
pub const PADDING: usize = 16;

/// Byte ranges of each message's fields.
pub mod field {
    use core::ops::Range;
    pub const TYPE: usize = 0;
    pub const RESERVED: Range<usize> = 1..4;

    /// Initiation.
    pub mod init {
        use core::ops::Range;
        pub const SENDER: Range<usize> = 4..8;
        pub const EPHEMERAL: Range<usize> = 8..40;
        pub const STATIC: Range<usize> = 40..88;
        pub const TIMESTAMP: Range<usize> = 88..116;
        pub const MAC1: Range<usize> = 116..132;
        pub const MAC2: Range<usize> = 132..148;
    }
    /// Response.
    pub mod resp {
        use core::ops::Range;
        pub const SENDER: Range<usize> = 4..8;
        pub const RECEIVER: Range<usize> = 8..12;
        pub const EPHEMERAL: Range<usize> = 12..44;
        pub const EMPTY: Range<usize> = 44..60;
        pub const MAC1: Range<usize> = 60..76;
        pub const MAC2: Range<usize> = 76..92;
    }
    /// Cookie reply.
    pub mod cookie {
        use core::ops::Range;
        pub const RECEIVER: Range<usize> = 4..8;
        pub const NONCE: Range<usize> = 8..32;
        pub const COOKIE: Range<usize> = 32..64;
    }
    /// Transport data.
    pub mod data {
        use core::ops::Range;
        pub const RECEIVER: Range<usize> = 4..8;
        pub const COUNTER: Range<usize> = 8..16;
        pub const PAYLOAD: usize = 16;
    }
}

/// The message type of `b`, checked against the reserved bytes and the
/// exact (or, for transport, minimum) length of that type.
pub fn message_type(b: &[u8]) -> Result<u8> {
    if b.len() < 4 {
        return Err(Error::Truncated);
    }
    if b[field::RESERVED] != [0, 0, 0] {
        return Err(Error::Malformed);
    }
    let t = b[field::TYPE];
    let ok = match t {
        kind::INITIATION => b.len() == INITIATION_LEN,
        kind::RESPONSE => b.len() == RESPONSE_LEN,
        kind::COOKIE_REPLY => b.len() == COOKIE_REPLY_LEN,
        kind::TRANSPORT => b.len() >= TRANSPORT_MIN_LEN,
        _ => return Err(Error::Unsupported),
    };
    if ok {
        Ok(t)
    } else {
        Err(Error::Truncated)
    }
}

/// Little-endian u32 at `r` (a 4-byte range the caller checked).
#[inline(always)]
pub fn le32(b: &[u8], r: core::ops::Range<usize>) -> u32 {
    u32::from_le_bytes(b[r].try_into().expect("4-byte field"))
}

/// The 32 bytes at `r`.
#[inline(always)]
pub fn bytes32(b: &[u8], r: core::ops::Range<usize>) -> [u8; 32] {
    b[r].try_into().expect("32-byte field")
}

/// Receiver index and counter of a transport message (length checked by
/// [`message_type`]).
#[inline(always)]
pub fn transport_header(b: &[u8]) -> (u32, u64) {
    let receiver = le32(b, field::data::RECEIVER);
    let counter = u64::from_le_bytes(b[field::data::COUNTER].try_into().expect("8-byte field"));
    (receiver, counter)
}

/// Writes a transport header for `receiver` and `counter`.
#[inline(always)]
pub fn emit_transport_header(b: &mut [u8], receiver: u32, counter: u64) {
    b[..4].copy_from_slice(&[kind::TRANSPORT, 0, 0, 0]);
    b[field::data::RECEIVER].copy_from_slice(&receiver.to_le_bytes());
    b[field::data::COUNTER].copy_from_slice(&counter.to_le_bytes());
}

/// Bytes a payload of `len` takes once padded (before the tag), never
/// more than `mtu` unless `len` already is.
#[inline(always)]
pub fn padded_len(len: usize, mtu: usize) -> usize {
    let p = len.next_multiple_of(PADDING);
    if p > mtu {
        len.max(mtu)
    } else {
        p
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_message_type_checks_length_and_reserved_bytes() {
        let mut init = [0u8; INITIATION_LEN];
        init[0] = 1;
        assert_eq!(message_type(&init), Ok(kind::INITIATION));
        assert_eq!(message_type(&init[..147]), Err(Error::Truncated));
        init[2] = 1;
        assert_eq!(message_type(&init), Err(Error::Malformed));
        let mut resp = [0u8; RESPONSE_LEN + 1];
        resp[0] = 2;
        assert_eq!(message_type(&resp), Err(Error::Truncated), "too long");
        assert_eq!(message_type(&resp[..RESPONSE_LEN]), Ok(kind::RESPONSE));
        let mut t = [0u8; 32];
        t[0] = 4;
        assert_eq!(message_type(&t), Ok(kind::TRANSPORT));
        assert_eq!(message_type(&t[..31]), Err(Error::Truncated));
        t[0] = 5;
        assert_eq!(message_type(&t), Err(Error::Unsupported));
        assert_eq!(message_type(&[4, 0]), Err(Error::Truncated));
    }

    #[test]
    fn test_transport_header_round_trip() {
        let mut b = [0u8; 32];
        emit_transport_header(&mut b, 0x768bd016, 0x0102030405060708);
        assert_eq!(&b[..16], &[4, 0, 0, 0, 0x16, 0xd0, 0x8b, 0x76, 8, 7, 6, 5, 4, 3, 2, 1]);
        assert_eq!(transport_header(&b), (0x768bd016, 0x0102030405060708));
    }

    #[test]
    fn test_padding() {
        assert_eq!(padded_len(0, 1420), 0);
        assert_eq!(padded_len(1, 1420), 16);
        assert_eq!(padded_len(84, 1420), 96);
        assert_eq!(padded_len(1419, 1420), 1420, "never padded past the MTU");
        assert_eq!(padded_len(1420, 1420), 1420);
    }
}
