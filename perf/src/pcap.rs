//! Writes the benchmark's input capture: 64-byte Ethernet/IPv4/UDP frames
//! to many destinations (the `route` mode's mixed traffic later).

use std::io::Write;
use std::path::Path;

/// Classic pcap, microsecond timestamps, Ethernet link type.
pub const PCAP_HEADER: [u8; 24] = [0xd4, 0xc3, 0xb2, 0xa1, 2, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0, 0, 1, 0, 0, 0];

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

/// Writes the IPv4 packets of `inputs` as a capture for port 0: each gets
/// an Ethernet header to [`DST_MAC`], its addresses mapped into 10.0.0.0/8
/// (per copy, so copies are distinct flows), TTL 64 and a fresh header
/// checksum. Payloads are untouched (L4 checksums are not checked on the
/// way through).
pub fn write_from(path: &Path, inputs: &[std::path::PathBuf], copies: u32) -> Result<(), String> {
    let mut frames: Vec<Vec<u8>> = Vec::new();
    for input in inputs {
        let cap = patronus::capture::Capture::open(input)?;
        cap.for_each(|pkt| {
            let Some(link) = pkt.link else { return };
            let Some(ip) = ipv4_start(link, pkt.data) else { return };
            // One mbuf per frame (net_pcap's infinite_rx needs that): frames
            // a capture took before segmentation offload split them are left out.
            if pkt.data.len() - ip <= 1500 {
                frames.push(pkt.data[ip..].to_vec());
            }
        })
        .map_err(|e| format!("{}: {e}", input.display()))?;
    }
    if frames.is_empty() {
        return Err("no IPv4 packets in the inputs".into());
    }
    let map = |a: [u8; 4], copy: u32| -> [u8; 4] {
        let h = u32::from_be_bytes(a).wrapping_mul(0x9E37_79B1) ^ copy.wrapping_mul(0x85EB_CA6B);
        let h = h ^ (h >> 15);
        [10, (h >> 16) as u8, (h >> 8) as u8, (h as u8).max(1)]
    };
    let mut out = std::io::BufWriter::new(std::fs::File::create(path).map_err(|e| format!("{}: {e}", path.display()))?);
    let w = |out: &mut std::io::BufWriter<std::fs::File>, b: &[u8]| out.write_all(b).map_err(|e| format!("{}: {e}", path.display()));
    w(&mut out, &PCAP_HEADER)?;
    let mut n = 0u32;
    for copy in 0..copies.max(1) {
        for ip in &frames {
            let mut f = Vec::with_capacity(14 + ip.len());
            f.extend_from_slice(&DST_MAC);
            f.extend_from_slice(&[0x02, 0, 0, 0, 0, 0x02]);
            f.extend_from_slice(&[0x08, 0x00]);
            f.extend_from_slice(ip);
            let ihl = ((f[14] & 0x0f) as usize * 4).max(20);
            let (src, dst) = (<[u8; 4]>::try_from(&f[26..30]).unwrap(), <[u8; 4]>::try_from(&f[30..34]).unwrap());
            f[26..30].copy_from_slice(&map(src, copy));
            f[30..34].copy_from_slice(&map(dst, copy));
            f[22] = 64;
            f[24..26].copy_from_slice(&[0, 0]);
            let c = ipv4_checksum(&f[14..14 + ihl]);
            f[24..26].copy_from_slice(&c.to_be_bytes());
            if f.len() < 60 {
                f.resize(60, 0);
            }
            let len = (f.len() as u32).to_le_bytes();
            w(&mut out, &0u32.to_le_bytes())?;
            w(&mut out, &n.to_le_bytes())?;
            w(&mut out, &len)?;
            w(&mut out, &len)?;
            w(&mut out, &f)?;
            n += 1;
        }
    }
    println!("gen-pcap: {} packets ({} per copy, {} copies) -> {}", n, frames.len(), copies.max(1), path.display());
    Ok(())
}

/// Where a frame's (outer) IPv4 header starts, after the link header and
/// any VLAN tags; None for anything else.
fn ipv4_start(link: dataplane::flow::key::LinkType, d: &[u8]) -> Option<usize> {
    use dataplane::flow::key::LinkType;
    let be16 = |o: usize| d.get(o..o + 2).map(|b| u16::from_be_bytes([b[0], b[1]]));
    let (mut et, mut off) = match link {
        LinkType::Ethernet => (be16(12)?, 14),
        LinkType::LinuxSll => (be16(14)?, 16),
        LinkType::LinuxSll2 => (be16(0)?, 20),
        LinkType::RawIp => (0x0800, 0),
        LinkType::Null => (0x0800, 4),
    };
    while matches!(et, 0x8100 | 0x88a8 | 0x9100) {
        et = be16(off + 2)?;
        off += 4;
    }
    let ip = d.get(off..off + 20)?;
    (et == 0x0800 && ip[0] >> 4 == 4 && u16::from_be_bytes([ip[2], ip[3]]) as usize <= d.len() - off).then_some(off)
}
