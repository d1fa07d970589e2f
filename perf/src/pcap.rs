//! Writes the benchmark's input capture: 64-byte Ethernet/IPv4/UDP frames
//! to many destinations (the `route` mode's mixed traffic later).

use std::io::Write;
use std::path::Path;

use dataplane::wire::ethernet::{self, EtherType, EthernetAddress};
use dataplane::wire::frame::Ip;
use dataplane::wire::{ipv4, Ipv4Address};

/// Classic pcap, microsecond timestamps, Ethernet link type.
pub const PCAP_HEADER: [u8; 24] = [0xd4, 0xc3, 0xb2, 0xa1, 2, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0, 0, 1, 0, 0, 0];

/// Destination MAC of every frame (the `route` mode's ingress interface).
pub const DST_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x01];
/// Source address of every frame.
pub const SRC: [u8; 4] = [172, 16, 0, 9];

/// Source MAC of every frame.
const SRC_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x02];

/// The Ethernet header every generated frame carries.
fn ethernet_header(f: &mut [u8]) {
    let eth = ethernet::Repr { dst: EthernetAddress(DST_MAC), src: EthernetAddress(SRC_MAC), ethertype: EtherType::IPV4 };
    eth.emit(&mut ethernet::Frame::new_unchecked(f));
}

/// Frame `i` of the set: 172.16.0.9:1024+i -> 10.(73 i mod 256).(i mod 256).1:4000,
/// so consecutive frames go to different /16s.
pub fn frame(i: u32, size: usize) -> Vec<u8> {
    let size = size.max(60);
    let mut f = vec![0u8; size];
    ethernet_header(&mut f);
    let src = std::net::SocketAddr::from((SRC, 1024 + (i % 60000) as u16));
    let dst = std::net::SocketAddr::from(([10, (i.wrapping_mul(73) % 256) as u8, i as u8, 1], 4000));
    // The same IPv4/UDP writer the tunnel's encap uses (no UDP checksum, TTL 64).
    let written = dataplane::tunnel::stage::emit_ip_udp(src.ip(), src.port(), dst, &mut f[ethernet::HEADER_LEN..]);
    debug_assert!(written, "one family");
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
        assert!(ipv4::Packet::new_checked(&f[14..]).unwrap().verify_checksum());
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
            // The outer IPv4 packet, whole, behind any link header and tags.
            let Some(Ip::V4(at)) = pkt.ip_header() else { return };
            let Ok(ip) = ipv4::Packet::new_checked(&pkt.data[at..]) else { return };
            // One mbuf per frame (net_pcap's infinite_rx needs that): frames
            // a capture took before segmentation offload split them are left out.
            if pkt.data.len() - at <= 1500 {
                frames.push(ip.into_inner().to_vec());
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
            let mut f = vec![0; ethernet::HEADER_LEN];
            ethernet_header(&mut f);
            f.extend_from_slice(ip);
            let mut p = ipv4::Packet::new_unchecked(&mut f[ethernet::HEADER_LEN..]);
            let (src, dst) = (p.src_addr().0, p.dst_addr().0);
            p.set_src_addr(Ipv4Address(map(src, copy)));
            p.set_dst_addr(Ipv4Address(map(dst, copy)));
            p.set_ttl(64);
            p.fill_checksum();
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
