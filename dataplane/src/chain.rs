//! The appliance's stage chain, defined once. `patronus run` and
//! `patronus-perf --forward-mode appliance` both build a worker's chain
//! with [`appliance`], so the benchmark measures what the appliance runs.
//!
//! A burst goes through, in order ([`STAGES`]):
//! 1. tunnel decap: WireGuard messages from peers decrypted in place
//!    (SLA probes answered, BFD and handshakes punted);
//! 2. affinity: with several workers, a packet whose flow another worker
//!    owns (a decrypted one, or any from a port the device could not
//!    spread) is handed to that worker, which runs it from step 1;
//! 3. classify: the flow found or created, DPI while undecided, the policy
//!    rule matched once per flow and direction;
//! 4. DSCP trust: on trusted ports, the class the host's DSCP asks for;
//! 5. tunnel encap: packets for a peer's allowed IPs encrypted towards the
//!    path their rule chose;
//! 6. route: LPM, neighbour rewrite, TTL, ICMP errors, punts.
//!
//! The chain is timed as one "forward" stage (cycles per packet, one burst
//! in `latency_every`).

use std::sync::Arc;

use crate::dpdk::{self, Tsc};
use crate::dpi::DnsCache;
use crate::flow::affinity::{Affinity, Spread};
use crate::flow::stage::{Classifier, DpiSnapshot, FlowConf, FlowCounters};
use crate::latency::Slot;
use crate::path::Steering;
use crate::pipeline::Timed;
use crate::qos::DscpTrust;
use crate::rcu::Reader;
use crate::router::fib::Fib;
use crate::router::Router;
use crate::tunnel::stage::Tunnels;
use crate::tunnel::stage::{Decap, Encap};
use crate::PortIdx;

/// The stages of [`appliance`], in the order a packet meets them.
pub const STAGES: [&str; 6] = ["decap", "affinity", "classify", "dscp-trust", "encap", "route"];

/// One worker's chain.
pub type Appliance = Timed<(Decap<Tsc>, (Affinity, (Classifier<Tsc>, (DscpTrust, (Encap<Tsc>, Router<Tsc>)))))>;

/// Where a worker's chain gets its snapshot readers: the control thread's
/// publishers in the appliance, fixed snapshots in a benchmark.
pub trait Snapshots {
    fn tunnels(&self) -> Reader<Tunnels>;
    fn fib(&self) -> Reader<Fib>;
    fn steering(&self) -> Reader<Steering>;
    fn classification(&self) -> Reader<DpiSnapshot>;
}

/// The settings every worker's chain shares.
#[derive(Clone, Debug)]
pub struct ChainConf {
    /// `[dpi] enabled`: classify; otherwise the classifier passes packets
    /// untouched.
    pub classify: bool,
    pub flows: FlowConf,
    /// Ports whose hosts' DSCP is trusted.
    pub trusted_ports: Vec<PortIdx>,
    /// BFD sessions exist: decap punts BFD.
    pub bfd: bool,
    /// TSC ticks per second.
    pub hz: u64,
    /// Time one burst in this many (0: none).
    pub latency_every: u32,
    /// How flows are spread over the workers ([`crate::engine::Engine::spread`]).
    pub spread: Spread,
    /// The DNS answers and announced media and data connections every
    /// worker's classifier shares (`[dpi] dns_cache` entries).
    pub dns: DnsCache,
}

/// Builds worker `worker`'s chain, counting flows into `counters` and
/// timing into `slot`.
pub fn appliance(src: &impl Snapshots, conf: &ChainConf, worker: usize, counters: Arc<FlowCounters>, slot: &Arc<Slot>) -> Appliance {
    let hz = conf.hz;
    let classify = match conf.classify {
        true => Classifier::new(src.classification(), &conf.flows, Tsc, hz, counters, worker).sharing(&conf.dns),
        false => Classifier::off(src.classification(), Tsc, hz, counters),
    };
    let decap = Decap::new(src.tunnels(), src.fib(), src.steering(), Tsc, conf.bfd);
    let encap = Encap::new(src.tunnels(), src.fib(), src.steering(), Tsc, hz);
    let trust = DscpTrust::new(&conf.trusted_ports);
    let route = Router::new(src.fib(), Tsc, hz);
    let affinity = Affinity::new(&conf.spread, worker);
    Timed::new((decap, (affinity, (classify, (trust, (encap, route))))), slot, conf.latency_every, dpdk::tsc)
}
