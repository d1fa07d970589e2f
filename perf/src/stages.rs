//! The forwarding modes testpmd has and the engine's cross-connect does
//! not: rewriting or swapping Ethernet addresses.

use dataplane::packet::Packet;
use dataplane::pipeline::{Meta, Stage, Verdict};
use dataplane::{PortIdx, MAX_PORTS};

use dataplane::counters::DropReason;

/// testpmd `mac`: source = the egress port's MAC, destination = the peer
/// address testpmd uses by default (02:00:00:00:00:<port>).
pub struct MacRewrite {
    /// Per egress port: destination then source address.
    addrs: [[u8; 12]; MAX_PORTS],
}

impl MacRewrite {
    pub fn new(port_macs: &[[u8; 6]]) -> Self {
        let mut addrs = [[0u8; 12]; MAX_PORTS];
        for (i, mac) in port_macs.iter().enumerate().take(MAX_PORTS) {
            addrs[i][..6].copy_from_slice(&[0x02, 0, 0, 0, 0, i as u8]);
            addrs[i][6..].copy_from_slice(mac);
        }
        MacRewrite { addrs }
    }
}

impl<P: Packet> Stage<P> for MacRewrite {
    const KEEPS_LENGTH: bool = true;

    #[inline(always)]
    fn process(&mut self, _in_port: PortIdx, pkt: &mut P, meta: &mut Meta) -> Verdict {
        let Some(addrs) = self.addrs.get(meta.out_port() as usize) else { return Verdict::Drop(DropReason::NoEgress) };
        match pkt.data_mut().get_mut(..12) {
            Some(hdr) => {
                hdr.copy_from_slice(addrs);
                Verdict::Continue
            }
            None => Verdict::Drop(DropReason::Malformed),
        }
    }
}

/// testpmd `macswap`: exchange source and destination addresses.
pub struct MacSwap;

impl<P: Packet> Stage<P> for MacSwap {
    const KEEPS_LENGTH: bool = true;

    #[inline(always)]
    fn process(&mut self, _in_port: PortIdx, pkt: &mut P, _meta: &mut Meta) -> Verdict {
        match pkt.data_mut().get_mut(..12) {
            Some(hdr) => {
                let (dst, src) = hdr.split_at_mut(6);
                dst.swap_with_slice(src);
                Verdict::Continue
            }
            None => Verdict::Drop(DropReason::Malformed),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dataplane::packet::HeapPool;

    #[test]
    fn mac_rewrite_sets_peer_and_port_address() {
        let pool = HeapPool::new();
        let mut s = MacRewrite::new(&[[0xaa; 6], [0xbb; 6]]);
        let mut p = pool.packet(&[0x11; 60]);
        let mut m = Meta::NEW;
        m.set_out_port(1);
        assert_eq!(s.process(0, &mut p, &mut m), Verdict::Continue);
        assert_eq!(&p.data()[..12], &[2, 0, 0, 0, 0, 1, 0xbb, 0xbb, 0xbb, 0xbb, 0xbb, 0xbb]);
        assert_eq!(p.data()[12], 0x11);
        let mut short = pool.packet(&[0; 11]);
        assert_eq!(s.process(0, &mut short, &mut m), Verdict::Drop(DropReason::Malformed));
    }

    #[test]
    fn macswap_swaps() {
        let pool = HeapPool::new();
        let mut frame = [0u8; 60];
        frame[..6].copy_from_slice(&[1; 6]);
        frame[6..12].copy_from_slice(&[2; 6]);
        let mut p = pool.packet(&frame);
        assert_eq!(MacSwap.process(0, &mut p, &mut Meta::NEW.clone()), Verdict::Continue);
        assert_eq!(&p.data()[..12], &[2, 2, 2, 2, 2, 2, 1, 1, 1, 1, 1, 1]);
    }
}
