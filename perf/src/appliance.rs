//! The `appliance` forwarding mode: the chain `patronus run` builds
//! (`dataplane::chain::appliance`), over fixed snapshots: the built-in
//! signatures, a WireGuard peer whose allowed IPs are 10.0.0.0/8 (the
//! session of the `encrypt` mode), no multi-path steering, and the `route`
//! mode's table. Port 0's frames (`gen-pcap --from`, mapped into
//! 10.0.0.0/8) are classified, sealed for the peer and routed out of port 1.

use dataplane::chain::{self, ChainConf};
use dataplane::flow::stage::{DpiSnapshot, FlowConf};
use dataplane::path::Steering;
use dataplane::rcu::{Publisher, Reader};
use dataplane::router::fib::Fib;
use dataplane::tunnel::stage::Tunnels;

/// The snapshots every worker's chain reads.
pub struct Snapshots {
    tunnels: Publisher<Tunnels>,
    fib: Publisher<Fib>,
    steering: Publisher<Steering>,
    dpi: Publisher<DpiSnapshot>,
}

impl Snapshots {
    /// `egress_mac`: port 1's address; `workers`: how many chains will read them.
    pub fn new(egress_mac: [u8; 6], workers: usize) -> Result<Snapshots, String> {
        let mut dpi = patronus::config::signatures::DpiOpts::default()
            .compile(std::path::Path::new("."), &mut Default::default())
            .map_err(|e| e.to_string())?;
        dpi.set_workers(workers)?;
        Ok(Snapshots {
            tunnels: crate::tunnel::tunnels(false),
            fib: crate::route::fib(egress_mac),
            steering: Publisher::new(Steering::default()),
            dpi: Publisher::new(DpiSnapshot { dpi, policy: Default::default() }),
        })
    }
}

impl chain::Snapshots for Snapshots {
    fn tunnels(&self) -> Reader<Tunnels> {
        self.tunnels.reader()
    }
    fn fib(&self) -> Reader<Fib> {
        self.fib.reader()
    }
    fn steering(&self) -> Reader<Steering> {
        self.steering.reader()
    }
    fn classification(&self) -> Reader<DpiSnapshot> {
        self.dpi.reader()
    }
}

/// The chain's settings: classification on with `flows` per worker, no
/// trusted port, no BFD, latency sampled as the appliance does.
pub fn conf(hz: u64, flows: usize, latency_every: u32) -> ChainConf {
    ChainConf {
        classify: true,
        flows: FlowConf { flows, ..Default::default() },
        trusted_ports: vec![],
        bfd: false,
        hz,
        latency_every,
        spread: Default::default(),
        dns: dataplane::dpi::DnsCache::new(4096),
    }
}
