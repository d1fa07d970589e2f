//! Writes the benchmark's input capture: 64-byte Ethernet/IPv4/UDP frames
//! to many destinations (the `route` mode's mixed traffic later).

use std::io::Write;
use std::path::Path;

/// Classic pcap, microsecond timestamps, Ethernet link type.
const PCAP_HEADER: [u8; 24] = [0xd4, 0xc3, 0xb2, 0xa1, 2, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0, 0, 1, 0, 0, 0];

/// Destination MAC of every frame (the `route` mode's ingress interface).
pub const DST_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x01];
/// Source address of every frame.
pub const SRC: [u8; 4] = [172, 16, 0, 9];

/// One's-complement sum for the IPv4 header checksum.
fn ipv4_checksum(hdr: &[u8]) -> u16 {
    let mut sum: u32 = hdr.chunks(2).map(|c| u16::from_be_bytes([c[0], c[1]]) as u32).sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// Frame `i` of the set: 172.16.0.9:1024+i -> 10.(73 i mod 256).(i mod 256).1:4000,
/// so consecutive frames go to different /16s.
pub fn frame(i: u32, size: usize) -> Vec<u8> {
    let size = size.max(60);
    let mut f = vec![0u8; size];
    f[0..6].copy_from_slice(&DST_MAC);
    f[6..12].copy_from_slice(&[0x02, 0, 0, 0, 0, 0x02]);
    f[12..14].copy_from_slice(&[0x08, 0x00]);
    let ip_len = (size - 14) as u16;
    let ip = &mut f[14..34];
    ip[0] = 0x45;
    ip[2..4].copy_from_slice(&ip_len.to_be_bytes());
    ip[8] = 64;
    ip[9] = 17;
    ip[12..16].copy_from_slice(&SRC);
    ip[16..20].copy_from_slice(&[10, (i.wrapping_mul(73) % 256) as u8, i as u8, 1]);
    let c = ipv4_checksum(ip);
    ip[10..12].copy_from_slice(&c.to_be_bytes());
    let udp = &mut f[34..42];
    udp[0..2].copy_from_slice(&(1024 + (i % 60000) as u16).to_be_bytes());
    udp[2..4].copy_from_slice(&4000u16.to_be_bytes());
    udp[4..6].copy_from_slice(&(ip_len - 20).to_be_bytes());
    f
}

pub fn write_mixed_udp(path: &Path, count: u32, size: u16) -> std::io::Result<()> {
    let mut out = std::io::BufWriter::new(std::fs::File::create(path)?);
    out.write_all(&PCAP_HEADER)?;
    for i in 0..count {
        let f = frame(i, size as usize);
        let len = f.len() as u32;
        out.write_all(&0u32.to_le_bytes())?;
        out.write_all(&i.to_le_bytes())?;
        out.write_all(&len.to_le_bytes())?;
        out.write_all(&len.to_le_bytes())?;
        out.write_all(&f)?;
    }
    out.flush()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_have_valid_ipv4_headers() {
        let f = frame(258, 60);
        assert_eq!(f.len(), 60);
        assert_eq!(&f[30..34], &[10, (258 * 73 % 256) as u8, 2, 1]);
        assert_eq!(ipv4_checksum(&f[14..34]), 0, "checksum over a valid header is zero");
    }
}
