//! Receive-side scaling with a symmetric key: which worker owns a flow.
//!
//! Every port is configured with [`KEY`], the 40-byte Toeplitz key of
//! `0x6d5a` repeated (Woo and Park, "Scalable TCP Session Monitoring with
//! Symmetric Receive-side Scaling", 2012), over IPv4/IPv6 addresses and
//! TCP/UDP ports, and a redirection table whose entry `i` is queue
//! `i % queues`. Worker `w` polls queues `w, w + workers, ...` of every
//! port. So a packet reaches worker [`owner`] of its hash, and both
//! directions of a flow reach the same one.
//!
//! The key's period is 16 bits, so the 32-bit window Toeplitz XORs in for
//! an input bit depends only on that bit's position within its 16-bit
//! word. Toeplitz is linear, so the hash of a tuple is the hash of the XOR
//! of its 16-bit words: two table lookups ([`hash_folded`]). That fold is
//! also why the key is symmetric (swapping source and destination leaves
//! the XOR unchanged), and why the hash carries only 16 bits of the tuple.
//!
//! The same function decides, in software, where a packet goes when the
//! device could not spread it ([`crate::flow::affinity`]): a decrypted
//! tunnel packet, or a port whose device did not take the key.

use crate::wire::{be16, frame, ip_proto, ipv4, ipv6};

/// The symmetric Toeplitz key (40 bytes, as NICs take it).
pub const KEY: [u8; 40] = {
    let mut k = [0u8; 40];
    let mut i = 0;
    while i < 40 {
        k[i] = if i % 2 == 0 { 0x6d } else { 0x5a };
        i += 1;
    }
    k
};

/// The Toeplitz hash of `input` under `key`, bit by bit, as a NIC computes
/// it (the reference the fast path is tested against). `input` may be at
/// most `key.len() - 4` bytes.
pub fn toeplitz(key: &[u8], input: &[u8]) -> u32 {
    assert!(input.len() + 4 <= key.len(), "Toeplitz input longer than the key allows");
    let mut hash = 0u32;
    let mut window = u32::from_be_bytes([key[0], key[1], key[2], key[3]]);
    for (i, byte) in input.iter().enumerate() {
        let next = key[i + 4];
        for bit in 0..8 {
            if byte & (0x80 >> bit) != 0 {
                hash ^= window;
            }
            window = window << 1 | ((next >> (7 - bit)) & 1) as u32;
        }
    }
    hash
}

/// The hash under [`KEY`] of a tuple whose 16-bit words XOR to `w`, bit by
/// bit (at compile time): the key's period is 16 bits, so its first 48
/// bits hold every window a bit of `w` selects.
const fn hash_word(w: u16) -> u32 {
    let k = u64::from_be_bytes([KEY[0], KEY[1], KEY[2], KEY[3], KEY[4], KEY[5], KEY[6], KEY[7]]);
    let mut h = 0u32;
    let mut bit = 0;
    while bit < 16 {
        if w & (0x8000 >> bit) != 0 {
            // The 32-bit window of the key starting at `bit`.
            h ^= (k >> (32 - bit)) as u32;
        }
        bit += 1;
    }
    h
}

/// What one byte of the folded word contributes: `[high byte][value]` and
/// `[low byte][value]`.
static TABLES: [[u32; 256]; 2] = {
    let mut t = [[0u32; 256]; 2];
    let mut v = 0;
    while v < 256 {
        t[0][v] = hash_word((v as u16) << 8);
        t[1][v] = hash_word(v as u16);
        v += 1;
    }
    t
};

/// The Toeplitz hash under [`KEY`] of a tuple whose 16-bit words XOR to
/// `folded`.
#[inline(always)]
pub fn hash_folded(folded: u16) -> u32 {
    TABLES[0][(folded >> 8) as usize] ^ TABLES[1][(folded & 0xff) as usize]
}

/// Most outer source ports one tunnel session spreads over
/// ([`source_port`]).
pub const MAX_SOURCE_PORTS: u16 = 32;

/// `PORT_BITS[m][t]`: the smallest `x < 32` whose hash has `t` in its low
/// `m` bits. The low five bits of a port reach every value of the low five
/// bits of the hash, so for `m <= 5` every `t` has one.
static PORT_BITS: [[u8; 32]; 6] = {
    let mut table = [[0u8; 32]; 6];
    let mut m = 0;
    while m <= 5 {
        let mut t = 0;
        while t < (1 << m) {
            let mut x = 0;
            while x < 32 && hash_word(x as u16) & ((1 << m) - 1) != t {
                x += 1;
            }
            assert!(x < 32, "the low port bits reach every hash value");
            table[m][t as usize] = x as u8;
            t += 1;
        }
        m += 1;
    }
    table
};

/// The outer UDP source port for a tunnel packet whose inner flow hashes
/// to `inner` ([`frame_hash`]), between two ends that spread a session
/// over `ports` (a power of two, at most [`MAX_SOURCE_PORTS`]) ports
/// around `listen`. `outer` is the XOR of the outer addresses' 16-bit
/// words and the destination port.
///
/// The port is chosen so that the outer tuple's hash agrees with `inner`
/// in its low `log2(ports)` bits: a receiver spreading by [`KEY`] over a
/// power-of-two number of workers up to `ports` decrypts the packet on the
/// worker that owns its inner flow, so nothing is handed over; and one
/// peer's traffic spreads over that many workers.
#[inline]
pub fn source_port(listen: u16, outer: u16, inner: u32, ports: u16) -> u16 {
    let m = ports.clamp(1, MAX_SOURCE_PORTS).trailing_zeros() as usize;
    let want = (hash_folded(outer ^ listen) ^ inner) & ((1 << m) - 1);
    listen ^ PORT_BITS[m][want as usize] as u16
}

/// The XOR of an address's 16-bit words.
#[inline(always)]
pub fn fold_addr(a: std::net::IpAddr) -> u16 {
    match a {
        std::net::IpAddr::V4(v) => fold(&v.octets()),
        std::net::IpAddr::V6(v) => fold(&v.octets()),
    }
}

/// The XOR of a byte string's 16-bit big-endian words (an even length).
#[inline(always)]
fn fold(bytes: &[u8]) -> u16 {
    bytes.chunks_exact(2).fold(0, |a, w| a ^ u16::from_be_bytes([w[0], w[1]]))
}

/// The worker of `workers` that owns hash `h` (see the module docs).
#[inline(always)]
pub fn owner(h: u32, workers: u32) -> u32 {
    h % workers.max(1)
}

/// The hash that places `frame`'s flow: the Toeplitz hash under [`KEY`]
/// of the addresses of its (outermost) IP header, and the ports when the
/// packet carries a TCP or UDP header. `None` for what is not IP (NICs
/// give it hash 0: queue 0).
///
/// A NIC configured with [`KEY`] for `RTE_ETH_RSS_IP | TCP | UDP` gives
/// the same hash except where it does not look for ports: an IPv4 first
/// fragment, and an IPv6 packet with extension headers, which it hashes
/// by addresses alone ([`device_misplaces`]). A later fragment carries no
/// ports, so it is placed by its addresses, as the NIC places it; it is
/// not classified either.
#[inline]
pub fn frame_hash(frame: &[u8]) -> Option<u32> {
    ip_hash(frame, frame::ip_header(frame)?)
}

/// [`frame_hash`] of the IP header at `ip` (capture readers find it
/// behind their own link headers).
#[inline]
pub fn ip_hash(frame: &[u8], ip: frame::Ip) -> Option<u32> {
    let d = frame.get(ip.offset()..)?;
    let (addrs, proto, l4) = match ip {
        frame::Ip::V4(_) => {
            let h = d.get(..ipv4::HEADER_LEN)?;
            let later_fragment = be16(h, 6) & 0x1fff != 0;
            (fold(&h[12..20]), if later_fragment { 0 } else { h[9] }, (h[0] & 0xf) as usize * 4)
        }
        frame::Ip::V6(_) => {
            let h = d.get(..ipv6::HEADER_LEN)?;
            let (proto, at) = match h[6] {
                ip_proto::TCP | ip_proto::UDP => (h[6], 0),
                next => match ipv6::walk_extensions(next, &d[ipv6::HEADER_LEN..]) {
                    Ok(up) if !up.later_fragment => (up.protocol, up.offset),
                    _ => (0, 0),
                },
            };
            (fold(&h[8..40]), proto, ipv6::HEADER_LEN + at)
        }
    };
    let folded = match proto {
        ip_proto::TCP | ip_proto::UDP => match d.get(l4..l4 + 4) {
            Some(ports) => addrs ^ fold(ports),
            None => addrs,
        },
        _ => addrs,
    };
    Some(hash_folded(folded))
}

/// True when a NIC spreading by [`KEY`] may have hashed `frame`
/// differently from [`frame_hash`]: an IPv4 first fragment, or IPv6 with
/// extension headers. Cheap: the affinity stage asks it of every packet a
/// NIC spread.
#[inline(always)]
pub fn device_misplaces(frame: &[u8]) -> bool {
    match frame::ip_header(frame) {
        Some(frame::Ip::V4(o)) => frame.get(o + 6..o + 8).is_some_and(|f| f[0] & 0x20 != 0 && be16(f, 0) & 0x1fff == 0),
        Some(frame::Ip::V6(o)) => frame.get(o + 6).is_some_and(|&n| !matches!(n, ip_proto::TCP | ip_proto::UDP | ip_proto::ICMPV6)),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The key and IPv4 vectors of Microsoft's "Verifying the RSS Hash
    /// Calculation" (the reference every NIC vendor tests against).
    const MS_KEY: [u8; 40] = [
        0x6d, 0x5a, 0x56, 0xda, 0x25, 0x5b, 0x0e, 0xc2, 0x41, 0x67, 0x25, 0x3d, 0x43, 0xa3, 0x8f, 0xb0, 0xd0, 0xca, 0x2b, 0xcb, 0xae, 0x7b,
        0x30, 0xb4, 0x77, 0xcb, 0x2d, 0xa3, 0x80, 0x30, 0xf2, 0x0c, 0x6a, 0x42, 0xb7, 0x3b, 0xbe, 0xac, 0x01, 0xfa,
    ];

    fn tuple(src: [u8; 4], dst: [u8; 4], sport: u16, dport: u16) -> Vec<u8> {
        [&src[..], &dst[..], &sport.to_be_bytes(), &dport.to_be_bytes()].concat()
    }

    #[test]
    fn the_reference_toeplitz_gives_microsofts_published_hashes() {
        // (destination, source) as the table lists them; the input is source first.
        let cases = [
            ([161, 142, 100, 80], 1766, [66, 9, 149, 187], 2794, 0x51cc_c178, 0x323e_8fc2),
            ([65, 69, 140, 83], 4739, [199, 92, 111, 2], 14230, 0xc626_b0ea, 0xd718_262a),
            ([12, 22, 207, 184], 38024, [24, 19, 198, 95], 12898, 0x5c2b_394a, 0xd2d0_a5de),
            ([209, 142, 163, 6], 2217, [38, 27, 205, 30], 48228, 0xafc7_327f, 0x8298_9176),
            ([202, 188, 127, 2], 1303, [153, 39, 163, 191], 44251, 0x10e8_28a2, 0x5d18_09c5),
        ];
        for (dst, dport, src, sport, with_ports, addrs_only) in cases {
            assert_eq!(toeplitz(&MS_KEY, &tuple(src, dst, sport, dport)), with_ports, "{src:?}:{sport} -> {dst:?}:{dport}");
            assert_eq!(toeplitz(&MS_KEY, &[&src[..], &dst[..]].concat()), addrs_only, "{src:?} -> {dst:?}");
        }
    }

    #[test]
    fn the_folded_hash_is_toeplitz_under_the_symmetric_key_and_symmetric() {
        let mut x = 0x1234_5678_9abc_def0u64;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        for _ in 0..2000 {
            let r = next().to_be_bytes();
            let (src, dst) = ([r[0], r[1], r[2], r[3]], [r[4], r[5], r[6], r[7]]);
            let p = next();
            let (sport, dport) = (p as u16, (p >> 16) as u16);
            let fwd = tuple(src, dst, sport, dport);
            let h = toeplitz(&KEY, &fwd);
            assert_eq!(hash_folded(fold(&fwd)), h);
            assert_eq!(toeplitz(&KEY, &tuple(dst, src, dport, sport)), h, "the key is symmetric");
            // IPv6: 36 bytes, the longest input the key allows.
            let v6: Vec<u8> = (0..4).flat_map(|_| next().to_be_bytes()).chain(fwd[8..12].iter().copied()).collect();
            let v6 = &v6[..36];
            assert_eq!(hash_folded(fold(v6)), toeplitz(&KEY, v6));
        }
    }

    fn frame_v4(proto: u8, src: [u8; 4], dst: [u8; 4], sport: u16, dport: u16, frag: u16) -> Vec<u8> {
        let mut f = vec![0u8; 14 + 20 + 8];
        f[12..14].copy_from_slice(&[0x08, 0x00]);
        f[14] = 0x45;
        f[14 + 6..14 + 8].copy_from_slice(&frag.to_be_bytes());
        f[14 + 9] = proto;
        f[14 + 12..14 + 16].copy_from_slice(&src);
        f[14 + 16..14 + 20].copy_from_slice(&dst);
        f[34..36].copy_from_slice(&sport.to_be_bytes());
        f[36..38].copy_from_slice(&dport.to_be_bytes());
        f
    }

    #[test]
    fn frames_hash_as_a_nic_hashes_them() {
        let (a, b) = ([10, 0, 0, 1], [192, 0, 2, 7]);
        let udp = frame_v4(ip_proto::UDP, a, b, 5353, 53, 0);
        assert_eq!(frame_hash(&udp), Some(toeplitz(&KEY, &tuple(a, b, 5353, 53))));
        assert_eq!(frame_hash(&udp), frame_hash(&frame_v4(ip_proto::UDP, b, a, 53, 5353, 0)));
        // ICMP and later fragments: addresses only.
        let two = toeplitz(&KEY, &[&a[..], &b[..]].concat());
        assert_eq!(frame_hash(&frame_v4(ip_proto::ICMP, a, b, 1, 2, 0)), Some(two));
        assert_eq!(frame_hash(&frame_v4(ip_proto::TCP, a, b, 1, 2, 0x0010)), Some(two), "later fragment");
        assert!(!device_misplaces(&frame_v4(ip_proto::TCP, a, b, 1, 2, 0x0010)));
        // A first fragment goes with its flow (the NIC hashes it by addresses: corrected).
        let first = frame_v4(ip_proto::UDP, a, b, 5353, 53, 0x2000);
        assert_eq!(frame_hash(&first), frame_hash(&udp));
        assert!(device_misplaces(&first) && !device_misplaces(&udp));
        // Behind an 802.1Q tag, the same.
        let mut tagged = udp[..12].to_vec();
        tagged.extend_from_slice(&[0x81, 0x00, 0x00, 0x05]);
        tagged.extend_from_slice(&udp[12..]);
        assert_eq!(frame_hash(&tagged), frame_hash(&udp));
        // Not IP, or cut short: no hash, no panic.
        assert_eq!(frame_hash(&[0u8; 60]), None);
        for n in 0..udp.len() {
            let _ = frame_hash(&udp[..n]);
        }
    }

    #[test]
    fn the_chosen_source_port_lands_the_outer_packet_with_its_inner_flow() {
        assert_eq!(hash_word(0x1234), hash_folded(0x1234));
        let (site_a, site_b) = ([192, 0, 2, 1], [198, 51, 100, 7]);
        let listen = 51820;
        let outer = fold(&site_a) ^ fold(&site_b) ^ listen;
        for ports in [1u16, 2, 4, 8, 16, 32] {
            let mut used = std::collections::HashSet::new();
            let mut x = 0x2545_f491u32;
            for _ in 0..2000 {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                let inner =
                    frame_hash(&frame_v4(ip_proto::TCP, [10, 1, (x >> 24) as u8, (x >> 16) as u8], [10, 2, 0, 9], x as u16, 443, 0))
                        .unwrap();
                let sport = source_port(listen, outer, inner, ports);
                used.insert(sport);
                // What a receiver's NIC computes for the outer packet.
                let on_wire = toeplitz(&KEY, &tuple(site_a, site_b, sport, listen));
                for workers in (0..).map(|k| 1u32 << k).take_while(|&w| w <= ports as u32) {
                    assert_eq!(owner(on_wire, workers), owner(inner, workers), "{ports} ports, {workers} workers");
                }
            }
            assert_eq!(used.len(), ports as usize, "{ports} ports: {used:?}");
            assert!(used.iter().all(|p| p ^ listen < 32), "near the listen port: {used:?}");
        }
    }

    #[test]
    fn owners_spread_and_agree_for_both_directions() {
        let mut seen = [0u32; 4];
        let mut x = 0x9e37_79b9u32;
        for _ in 0..4096 {
            // Clients of one server, on random addresses and ports.
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            let (a, b, port) = ([10, 1, (x >> 24) as u8, (x >> 16) as u8], [172, 16, 0, 1], x as u16);
            let h = frame_hash(&frame_v4(ip_proto::TCP, a, b, port, 443, 0)).unwrap();
            let r = frame_hash(&frame_v4(ip_proto::TCP, b, a, 443, port, 0)).unwrap();
            assert_eq!(owner(h, 4), owner(r, 4));
            seen[owner(h, 4) as usize] += 1;
        }
        assert!(seen.iter().all(|&n| n > 800), "{seen:?}");
    }
}
