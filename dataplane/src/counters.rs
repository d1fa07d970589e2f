//! Per-core counters and the one enum of drop reasons.
//!
//! Each worker owns a [`WorkerCounters`] block: it is the only writer, so an
//! increment is a plain load and store (no locked instruction); the control
//! thread reads the same atomics with relaxed loads, without locks. Every
//! block is cache-line aligned so two workers never write the same line.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// A monotonically increasing counter with exactly one writing thread.
#[derive(Default)]
pub struct Counter(AtomicU64);

impl Counter {
    /// Adds `n`. Only the owning worker may call this.
    #[inline(always)]
    pub fn add(&self, n: u64) {
        self.0.store(self.0.load(Relaxed).wrapping_add(n), Relaxed);
    }

    /// Current value, readable from any thread.
    #[inline]
    pub fn get(&self) -> u64 {
        self.0.load(Relaxed)
    }
}

macro_rules! drop_reasons {
    ($($(#[doc = $doc:literal])* $variant:ident => $name:literal,)*) => {
        /// Why the data path dropped a packet. Each reason is a counter an
        /// operator reads, per port; add a variant rather than reuse one.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        #[repr(u8)]
        pub enum DropReason { $($(#[doc = $doc])* $variant,)* }

        impl DropReason {
            /// Every reason, in counter-index order.
            pub const ALL: &'static [DropReason] = &[$(DropReason::$variant,)*];
            /// Number of reasons (length of each per-port drop array).
            pub const COUNT: usize = Self::ALL.len();

            /// Stable snake_case name used in stats output and metric labels.
            pub const fn name(self) -> &'static str {
                match self { $(DropReason::$variant => $name,)* }
            }
        }
    };
}

drop_reasons! {
    /// The TX queue refused the packet (ring full); freed by the worker.
    TxFull => "tx_full",
    /// No stage chose an egress port for the packet.
    NoEgress => "no_egress",
    /// The packet's chosen egress port has no TX queue on this worker.
    NoTxQueue => "no_tx_queue",
    /// Too short or malformed for the headers a stage needs.
    Malformed => "malformed",
    /// The ring to the control thread was full.
    PuntFull => "punt_full",
    /// Frame shorter than its Ethernet and VLAN headers, or a bad tag.
    MalformedL2 => "malformed_l2",
    /// Tagged with a VLAN stack no interface of the port is configured for.
    UnknownVlan => "unknown_vlan",
    /// Unicast frame addressed to another MAC (a port in promiscuous mode).
    NotOurMac => "not_our_mac",
    /// An EtherType the appliance does not handle.
    UnsupportedEthertype => "unsupported_ethertype",
    /// ARP packet that is not Ethernet/IPv4 or has a bad operation.
    MalformedArp => "malformed_arp",
    /// IPv4 header truncated, or a length or version field that lies.
    MalformedIpv4 => "malformed_ipv4",
    /// IPv4 header checksum does not verify.
    BadIpv4Checksum => "bad_ipv4_checksum",
    /// IPv6 header truncated, a lying payload length, or a bad extension-header chain.
    MalformedIpv6 => "malformed_ipv6",
    /// ICMP/ICMPv6 message to the appliance that is truncated or malformed.
    MalformedIcmp => "malformed_icmp",
    /// ICMP/ICMPv6 checksum does not verify.
    BadIcmpChecksum => "bad_icmp_checksum",
    /// Neighbor Discovery message failing RFC 4861 validation (hop limit, code, options).
    MalformedNd => "malformed_nd",
    /// Source or destination that must never appear on the wire (loopback, multicast source, ...).
    Martian => "martian",
    /// Multicast or broadcast destination the appliance does not route.
    NotRouted => "not_routed",
    /// IPv6 link-local destination that is not one of the appliance's addresses.
    LinkLocalScope => "link_local_scope",
    /// No route to the destination.
    NoRoute => "no_route",
    /// Route to a blackhole.
    Blackhole => "blackhole",
    /// TTL or hop limit expired.
    TtlExpired => "ttl_expired",
    /// Larger than the egress MTU (the appliance does not fragment).
    MtuExceeded => "mtu_exceeded",
    /// To the appliance, for a protocol or fragment it does not serve.
    LocalUnsupported => "local_unsupported",
    /// The queue of packets waiting for a neighbour's address was full.
    NeighborPendingOverflow => "neighbor_pending_overflow",
    /// The neighbour never answered resolution.
    NeighborUnresolved => "neighbor_unresolved",
    /// WireGuard message to the listen port with a bad type, reserved bytes or length.
    TunnelMalformed => "tunnel_malformed",
    /// Transport message for a receiver index with no live session.
    TunnelUnknownIndex => "tunnel_unknown_index",
    /// Transport message that does not authenticate (bad key or tampered).
    TunnelBadMac => "tunnel_bad_mac",
    /// Transport counter already seen or older than the replay window.
    TunnelReplay => "tunnel_replay",
    /// Session past REJECT_AFTER_TIME or REJECT_AFTER_MESSAGES.
    TunnelExpired => "tunnel_expired",
    /// Decrypted packet whose source is not in the peer's allowed IPs, or not IP.
    TunnelAllowedIps => "tunnel_allowed_ips",
    /// Packet for a peer with no usable session yet (a handshake was requested).
    TunnelNoSession => "tunnel_no_session",
    /// Inner packet larger than the tunnel MTU.
    TunnelMtu => "tunnel_mtu",
    /// A keepalive: authenticated and consumed (not an error).
    TunnelKeepalive => "tunnel_keepalive",
    /// The ring to the worker that owns the packet's flow was full.
    HandoffFull => "handoff_full",
    /// The QoS class queue of the egress port was full (tail drop).
    QosQueueFull => "qos_queue_full",
    /// Dropped by CoDel from a QoS queue that stayed above its target delay.
    QosCodel => "qos_codel",
    /// The flow's policy rule drops its traffic: no path meets its SLA and its fallback is `drop`.
    PathPolicyDrop => "path_policy_drop",
}

/// Counters of one port as seen by one worker. Bytes are summed per burst
/// from the mbuf headers the burst already touched (see docs/PERFORMANCE.md
/// for what that costs).
#[repr(align(64))]
pub struct PortCounters {
    pub rx_packets: Counter,
    pub tx_packets: Counter,
    /// Frame bytes received and sent (without FCS), as this core saw them.
    pub rx_bytes: Counter,
    pub tx_bytes: Counter,
    /// Received packets handed to the control thread (ARP, ND, waiting
    /// for a neighbour).
    pub punted: Counter,
    /// Received packets answered in place with an ICMP error (also counted
    /// as drops under their reason).
    pub icmp_errors: Counter,
    /// Drops attributed to this port, indexed by `DropReason as usize`.
    pub drops: [Counter; DropReason::COUNT],
}

impl Default for PortCounters {
    fn default() -> Self {
        PortCounters {
            rx_packets: Counter::default(),
            tx_packets: Counter::default(),
            rx_bytes: Counter::default(),
            tx_bytes: Counter::default(),
            punted: Counter::default(),
            icmp_errors: Counter::default(),
            drops: std::array::from_fn(|_| Counter::default()),
        }
    }
}

impl PortCounters {
    #[inline(always)]
    pub fn drop(&self, reason: DropReason, n: u64) {
        self.drops[reason as usize].add(n);
    }
}

/// Counters about the worker core itself rather than a port.
#[repr(align(64))]
#[derive(Default)]
pub struct CoreCounters {
    /// TSC cycles spent in loop iterations that received packets.
    pub busy_cycles: Counter,
    /// Loop iterations (one RX poll of every assigned queue each).
    pub polls: Counter,
    /// Short sleeps taken by the adaptive poll mode.
    pub sleeps: Counter,
    /// Linux thread id of the worker (for CPU accounting), set once at start.
    pub tid: Counter,
    /// Packets handed to the worker that owns their flow.
    pub handoff_out: Counter,
    /// Packets other workers handed to this one.
    pub handoff_in: Counter,
}

/// Everything one worker counts. Allocated once per worker at start-up.
pub struct WorkerCounters {
    pub core: CoreCounters,
    pub ports: Box<[PortCounters]>,
}

impl WorkerCounters {
    pub fn new(nports: usize) -> Self {
        WorkerCounters { core: CoreCounters::default(), ports: (0..nports).map(|_| PortCounters::default()).collect() }
    }
}

/// A plain-number copy of port counters, summed over workers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PortTotals {
    pub rx_packets: u64,
    pub tx_packets: u64,
    pub rx_bytes: u64,
    pub tx_bytes: u64,
    pub punted: u64,
    pub icmp_errors: u64,
    pub drops: [u64; DropReason::COUNT],
}

impl Default for PortTotals {
    fn default() -> Self {
        PortTotals { rx_packets: 0, tx_packets: 0, rx_bytes: 0, tx_bytes: 0, punted: 0, icmp_errors: 0, drops: [0; DropReason::COUNT] }
    }
}

impl PortTotals {
    pub fn add(&mut self, c: &PortCounters) {
        self.rx_packets += c.rx_packets.get();
        self.tx_packets += c.tx_packets.get();
        self.rx_bytes += c.rx_bytes.get();
        self.tx_bytes += c.tx_bytes.get();
        self.punted += c.punted.get();
        self.icmp_errors += c.icmp_errors.get();
        for (t, d) in self.drops.iter_mut().zip(c.drops.iter()) {
            *t += d.get();
        }
    }

    pub fn total_drops(&self) -> u64 {
        self.drops.iter().sum()
    }
}

/// Sums every worker's counters per port.
pub fn port_totals(workers: &[&WorkerCounters], nports: usize) -> Vec<PortTotals> {
    let mut out = vec![PortTotals::default(); nports];
    for w in workers {
        for (t, c) in out.iter_mut().zip(w.ports.iter()) {
            t.add(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drop_reason_names_are_unique_snake_case() {
        let mut names: Vec<_> = DropReason::ALL.iter().map(|r| r.name()).collect();
        assert!(names.iter().all(|n| n.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')));
        names.sort();
        names.dedup();
        assert_eq!(names.len(), DropReason::COUNT);
        for (i, r) in DropReason::ALL.iter().enumerate() {
            assert_eq!(*r as usize, i);
        }
    }

    #[test]
    fn counters_are_cache_line_isolated() {
        assert_eq!(std::mem::align_of::<PortCounters>(), 64);
        assert_eq!(std::mem::size_of::<PortCounters>() % 64, 0);
        assert_eq!(std::mem::align_of::<CoreCounters>(), 64);
    }

    #[test]
    fn totals_sum_workers() {
        let a = WorkerCounters::new(2);
        let b = WorkerCounters::new(2);
        a.ports[1].rx_packets.add(3);
        b.ports[1].rx_packets.add(4);
        b.ports[0].drop(DropReason::TxFull, 2);
        let t = port_totals(&[&a, &b], 2);
        assert_eq!(t[1].rx_packets, 7);
        assert_eq!(t[0].drops[DropReason::TxFull as usize], 2);
        assert_eq!(t[0].total_drops(), 2);
    }
}
