//! DSCP trust: a classification stage, not part of the scheduler. Hosts
//! behind a trusted port choose their class by the DSCP they set.

use crate::packet::Packet;
use crate::pipeline::{per_packet, Meta, Metas, Stage, Verdict};
use crate::vocab::Class;
use crate::wire::frame;
use crate::{PortIdx, MAX_PORTS};

/// The class a DSCP value asks for, when a trusted port's hosts set it:
/// EF and CS5 RealTime, AF4x and CS4 Interactive, AF3x and CS3 Streaming,
/// AF1x and CS1 Bulk; anything else asks for nothing (the flow decides).
/// Control is the appliance's own and is never granted from outside.
pub fn class_of_dscp(dscp: u8) -> Option<Class> {
    match dscp {
        46 | 40 => Some(Class::RealTime),
        32 | 34 | 36 | 38 => Some(Class::Interactive),
        24 | 26 | 28 | 30 => Some(Class::Streaming),
        8 | 10 | 12 | 14 => Some(Class::Bulk),
        _ => None,
    }
}

/// Honours the DSCP that hosts behind trusted ports set: a packet asking
/// for a class gets it, whatever its flow's application would give. The
/// IP header is found behind VLAN tags (802.1Q, QinQ) as everywhere else.
pub struct DscpTrust {
    trusted: [bool; MAX_PORTS],
}

impl DscpTrust {
    pub fn new(trusted_ports: &[PortIdx]) -> Self {
        let mut trusted = [false; MAX_PORTS];
        for &p in trusted_ports {
            if let Some(t) = trusted.get_mut(p as usize) {
                *t = true;
            }
        }
        DscpTrust { trusted }
    }

    #[inline(always)]
    fn trusts(&self, port: PortIdx) -> bool {
        self.trusted.get(port as usize).copied().unwrap_or(false)
    }
}

impl<P: Packet> Stage<P> for DscpTrust {
    const KEEPS_LENGTH: bool = true;

    #[inline(always)]
    fn process(&mut self, in_port: PortIdx, pkt: &mut P, meta: &mut Meta) -> Verdict {
        if self.trusts(in_port) && !meta.is_dropped() {
            if let Some(c) = frame::dscp(pkt.data()).and_then(class_of_dscp) {
                meta.set_class(c);
            }
        }
        Verdict::Continue
    }

    /// Untrusted ports (the common case) cost one load per burst.
    #[inline(always)]
    fn process_burst(&mut self, in_port: PortIdx, pkts: &mut [P], metas: &mut Metas) {
        if self.trusts(in_port) {
            per_packet(self, in_port, pkts, metas);
        }
    }
}
