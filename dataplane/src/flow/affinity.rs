//! Flow affinity across workers: a packet whose flow another worker owns
//! is handed to that worker, so both directions of every flow meet one
//! flow table.
//!
//! The device spreads what it receives by [`rss`]; the workers own flows
//! by the same function. What the device could not spread is checked here:
//! - a packet decap opened from a tunnel (the device hashed its outer
//!   header, one tuple per peer);
//! - everything from a port whose device did not take the symmetric key
//!   (`net_af_packet`'s kernel fanout, a `net_pcap` queue, a NIC without
//!   RSS): [`Spread::check_ports`];
//! - what a device hashes without its ports although the flow has them
//!   (an IPv4 first fragment, IPv6 with extension headers:
//!   [`rss::device_misplaces`]).
//!
//! A foreign packet is marked with [`Meta::hand_to`]; the poll loop puts
//! it on the owner's handoff ring, whose owner runs it through the chain
//! from the start (decap skips it: it is marked inner).

use crate::packet::Packet;
use crate::pipeline::{per_packet, Meta, Metas, Stage, Verdict, NO_PORT};
use crate::rss;
use crate::{PortIdx, MAX_PORTS};

/// How the workers share the ports: the same for every worker.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Spread {
    /// Worker count (at most 1: nothing to do).
    pub workers: u16,
    /// Ports whose device did not spread by the symmetric key: every
    /// packet from them is checked.
    pub check_ports: Vec<PortIdx>,
}

/// The affinity stage of one worker.
pub struct Affinity {
    me: u16,
    workers: u32,
    check: [bool; MAX_PORTS],
}

impl Affinity {
    pub fn new(spread: &Spread, me: usize) -> Self {
        let mut check = [false; MAX_PORTS];
        for &p in &spread.check_ports {
            if let Some(c) = check.get_mut(p as usize) {
                *c = true;
            }
        }
        Affinity { me: me as u16, workers: spread.workers.max(1) as u32, check }
    }

    /// Marks `meta` for its owner if that is another worker.
    #[inline(always)]
    fn place(&self, data: &[u8], meta: &mut Meta) {
        if meta.out_port() != NO_PORT {
            return;
        }
        if let Some(h) = rss::frame_hash(data) {
            let w = rss::owner(h, self.workers) as u16;
            if w != self.me {
                meta.hand_to(w);
            }
        }
    }
}

impl<P: Packet> Stage<P> for Affinity {
    const KEEPS_LENGTH: bool = true;

    #[inline(always)]
    fn process(&mut self, in_port: PortIdx, pkt: &mut P, meta: &mut Meta) -> Verdict {
        let all = self.check.get(in_port as usize).copied().unwrap_or(false);
        if self.workers > 1 && (all || meta.inner() || rss::device_misplaces(pkt.data())) {
            self.place(pkt.data(), meta);
        }
        Verdict::Continue
    }

    /// One worker: one compare per burst.
    #[inline(always)]
    fn process_burst(&mut self, in_port: PortIdx, pkts: &mut [P], metas: &mut Metas) {
        if self.workers > 1 {
            per_packet(self, in_port, pkts, metas);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::packet::HeapPool;
    use crate::wire::ip_proto;

    fn udp(src: [u8; 4], dst: [u8; 4], sport: u16, dport: u16) -> Vec<u8> {
        let mut f = vec![0u8; 60];
        f[12..14].copy_from_slice(&[0x08, 0x00]);
        f[14] = 0x45;
        f[14 + 2..14 + 4].copy_from_slice(&28u16.to_be_bytes());
        f[14 + 9] = ip_proto::UDP;
        f[14 + 12..14 + 16].copy_from_slice(&src);
        f[14 + 16..14 + 20].copy_from_slice(&dst);
        f[34..36].copy_from_slice(&sport.to_be_bytes());
        f[36..38].copy_from_slice(&dport.to_be_bytes());
        f
    }

    /// Frames of flows each of two workers owns.
    fn owned_by(w: u32) -> Vec<Vec<u8>> {
        (0..64u16)
            .map(|i| udp([10, 0, 0, 1], [192, 0, 2, 9], 1000 + i, 53))
            .filter(|f| rss::owner(rss::frame_hash(f).unwrap(), 2) == w)
            .collect()
    }

    fn run(stage: &mut Affinity, port: PortIdx, frames: &[Vec<u8>], first: Meta) -> Vec<Meta> {
        let pool = HeapPool::new();
        let mut pkts: Vec<_> = frames.iter().map(|f| pool.packet(f)).collect();
        let mut metas = Metas::uniform_as(pkts.len(), first);
        stage.process_burst(port, &mut pkts, &mut metas);
        (0..pkts.len()).map(|i| metas.get(i)).collect()
    }

    #[test]
    fn opened_packets_go_to_their_flows_owner_and_plain_ones_stay() {
        let spread = Spread { workers: 2, check_ports: vec![] };
        let mut w0 = Affinity::new(&spread, 0);
        let theirs = owned_by(1);
        let mine = owned_by(0);
        assert!(!theirs.is_empty() && !mine.is_empty());
        let mut inner = Meta::NEW;
        inner.set_inner();
        for m in run(&mut w0, 0, &theirs, inner) {
            assert_eq!(m.handoff(), Some(1));
            assert!(m.is_dropped(), "later stages skip it");
        }
        assert!(run(&mut w0, 0, &mine, inner).iter().all(|m| m.handoff().is_none() && !m.is_dropped()));
        // Plain packets from a port the device spreads are not second-guessed...
        assert!(run(&mut w0, 0, &theirs, Meta::NEW).iter().all(|m| m.handoff().is_none()));
        // ...except first fragments, which a NIC hashes without their ports.
        let fragments: Vec<Vec<u8>> = theirs
            .iter()
            .map(|f| {
                let mut f = f.clone();
                f[14 + 6] = 0x20; // more fragments, offset 0
                f
            })
            .collect();
        assert!(run(&mut w0, 0, &fragments, Meta::NEW).iter().all(|m| m.handoff() == Some(1)));
        // One worker: nothing is ever handed off.
        let mut alone = Affinity::new(&Spread { workers: 1, check_ports: vec![0] }, 0);
        assert!(run(&mut alone, 0, &theirs, inner).iter().all(|m| m.handoff().is_none()));
    }

    #[test]
    fn every_packet_of_a_port_the_device_could_not_spread_is_checked() {
        let spread = Spread { workers: 2, check_ports: vec![1] };
        let mut w1 = Affinity::new(&spread, 1);
        let theirs = owned_by(0);
        assert!(run(&mut w1, 1, &theirs, Meta::NEW).iter().all(|m| m.handoff() == Some(0)));
        assert!(run(&mut w1, 0, &theirs, Meta::NEW).iter().all(|m| m.handoff().is_none()));
        // A packet already decided (a punt, a reflected probe) stays.
        let mut punted = Meta::NEW;
        punted.set_out_port(crate::pipeline::TO_CONTROL);
        assert!(run(&mut w1, 1, &theirs, punted).iter().all(|m| m.handoff().is_none()));
        // Not IP: stays where the device put it.
        assert!(run(&mut w1, 1, &[vec![0u8; 60]], Meta::NEW)[0].handoff().is_none());
    }
}
