//! The Internet checksum (RFC 1071), its pseudo-headers, and incremental
//! update (RFC 1624).

use super::{Ipv4Address, Ipv6Address};

/// One's-complement sum of `data` as big-endian 16-bit words, folded to 16
/// bits but not complemented. An odd trailing byte is padded with zero.
#[inline(always)]
pub fn sum(data: &[u8]) -> u16 {
    let mut acc: u64 = 0;
    let mut chunks = data.chunks_exact(8);
    for c in &mut chunks {
        let w = u64::from_be_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]);
        acc = acc.wrapping_add(w >> 32).wrapping_add(w & 0xffff_ffff);
    }
    let mut rest = chunks.remainder().chunks_exact(2);
    for c in &mut rest {
        acc += u16::from_be_bytes([c[0], c[1]]) as u64;
    }
    if let [b] = rest.remainder() {
        acc += (*b as u64) << 8;
    }
    fold(acc)
}

/// Folds a wide one's-complement accumulator to 16 bits.
#[inline(always)]
pub fn fold(mut acc: u64) -> u16 {
    while acc > 0xffff {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    acc as u16
}

/// Adds two folded sums.
#[inline]
pub fn combine(a: u16, b: u16) -> u16 {
    fold(a as u64 + b as u64)
}

/// The checksum field value for data whose sum (with the field zeroed) is `s`.
#[inline]
pub fn finish(s: u16) -> u16 {
    !s
}

/// Pseudo-header sum for TCP/UDP/ICMPv6 over IPv4.
pub fn pseudo_v4(src: Ipv4Address, dst: Ipv4Address, proto: u8, len: u16) -> u16 {
    let mut b = [0u8; 12];
    b[0..4].copy_from_slice(&src.0);
    b[4..8].copy_from_slice(&dst.0);
    b[9] = proto;
    b[10..12].copy_from_slice(&len.to_be_bytes());
    sum(&b)
}

/// Pseudo-header sum for TCP/UDP/ICMPv6 over IPv6 (RFC 8200 8.1).
pub fn pseudo_v6(src: Ipv6Address, dst: Ipv6Address, proto: u8, len: u32) -> u16 {
    let mut b = [0u8; 40];
    b[0..16].copy_from_slice(&src.0);
    b[16..32].copy_from_slice(&dst.0);
    b[32..36].copy_from_slice(&len.to_be_bytes());
    b[39] = proto;
    sum(&b)
}

/// Updates checksum field `check` after a 16-bit word changed from `old`
/// to `new` (RFC 1624, eqn. 3: HC' = ~(~HC + ~m + m')).
#[inline(always)]
pub fn update16(check: u16, old: u16, new: u16) -> u16 {
    !fold(!check as u64 + !old as u64 + new as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc1071_example() {
        // RFC 1071 section 3: the sum of these bytes is ddf2.
        assert_eq!(sum(&[0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7]), 0xddf2);
        assert_eq!(sum(&[0x00, 0x01, 0xf2]), 0xf201);
        assert_eq!(sum(&[]), 0);
    }

    #[test]
    fn wide_and_narrow_sums_agree() {
        let data: Vec<u8> = (0..1001u32).map(|i| (i * 7 + 3) as u8).collect();
        for len in [0, 1, 2, 7, 8, 9, 15, 16, 17, 1000, 1001] {
            let narrow = fold(data[..len].chunks(2).map(|c| u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]) as u64).sum());
            assert_eq!(sum(&data[..len]), narrow, "len {len}");
        }
    }

    #[test]
    fn incremental_update_matches_recompute() {
        let mut hdr = [0x45u8, 0, 0, 84, 0x12, 0x34, 0x40, 0, 64, 1, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2];
        let c = finish(sum(&hdr));
        hdr[10..12].copy_from_slice(&c.to_be_bytes());
        assert_eq!(sum(&hdr), 0xffff);
        // TTL 64 -> 63 changes the word (ttl, proto).
        let old = u16::from_be_bytes([hdr[8], hdr[9]]);
        hdr[8] = 63;
        let new = u16::from_be_bytes([hdr[8], hdr[9]]);
        let c2 = update16(c, old, new);
        hdr[10..12].copy_from_slice(&[0, 0]);
        assert_eq!(c2, finish(sum(&hdr)));
    }
}
