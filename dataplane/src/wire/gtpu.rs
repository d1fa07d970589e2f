//! GTP-U (3GPP TS 29.281): the user-plane tunnel of the mobile core, on
//! UDP port 2152. Only what finding the user's inner packet needs.

/// The UDP port of GTP-U.
pub const PORT: u16 = 2152;

/// Message type of a G-PDU (a user packet follows the header).
const G_PDU: u8 = 0xff;
/// Most extension headers walked before giving up.
const MAX_EXTENSIONS: usize = 8;

/// The offset, in `msg` (a UDP payload), of the user packet a G-PDU
/// carries; `None` for other messages, other versions, or a truncated or
/// inconsistent header.
#[inline]
pub fn inner_offset(msg: &[u8]) -> Option<usize> {
    // Version 1, protocol type GTP, type G-PDU; the fixed header is 8 bytes.
    if msg.len() < 8 || msg[0] >> 5 != 1 || msg[0] & 0x10 == 0 || msg[1] != G_PDU {
        return None;
    }
    let mut off = 8;
    if msg[0] & 0x07 != 0 {
        // Sequence number, N-PDU number, next extension header type.
        let mut next = *msg.get(off + 3)?;
        off += 4;
        let mut n = 0;
        while next != 0 && n < MAX_EXTENSIONS {
            // Each extension: its length in 4-byte words, ..., the next type.
            let words = *msg.get(off)? as usize;
            if words == 0 {
                return None;
            }
            off += words * 4;
            next = *msg.get(off - 1)?;
            n += 1;
        }
    }
    (off < msg.len()).then_some(off)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_user_packet_with_and_without_extensions() {
        let mut plain = vec![0x30, 0xff, 0x00, 0x04, 0, 0, 0, 1];
        plain.extend_from_slice(&[0x45, 0, 0, 0]);
        assert_eq!(inner_offset(&plain), Some(8));
        // S flag and one PDU session container extension (1 word).
        let mut ext = vec![0x34, 0xff, 0x00, 0x0c, 0, 0, 0, 1, 0, 0, 0, 0x85, 0x01, 0x00, 0x01, 0x00];
        ext.extend_from_slice(&[0x60, 0, 0, 0]);
        assert_eq!(inner_offset(&ext), Some(16));
        let mut zero_len = ext.clone();
        zero_len[12] = 0;
        assert_eq!(inner_offset(&zero_len), None);
        let mut echo = plain.clone();
        echo[1] = 1;
        assert_eq!(inner_offset(&echo), None);
        assert_eq!(inner_offset(&plain[..8]), None);
    }
}
