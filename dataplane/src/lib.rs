//! The Patronus data plane.
//!
//! Layout: [`dpdk`] is the only module that touches DPDK (owning, safe
//! wrappers); [`packet`] is the small trait the pipeline is written against,
//! so stages run on mbufs in production and on heap buffers in tests and
//! benchmarks; [`pipeline`] holds the stage trait and the stages; [`worker`]
//! is the poll loop; [`engine`] brings EAL, pools, ports and workers up and
//! down; [`counters`] holds per-core counters and the drop-reason enum.

pub mod chain;
pub mod counters;
pub mod dpdk;
pub mod dpi;
pub mod egress;
pub mod engine;
pub mod flow;
pub mod latency;
pub mod packet;
pub mod path;
pub mod pipeline;
pub mod qos;
pub mod rcu;
pub mod router;
pub mod rss;
pub mod spsc;
pub mod tunnel;
pub mod vocab;
pub mod wire;
pub mod worker;

/// Index of a port in the configuration's port list (not the DPDK port id).
pub type PortIdx = u16;

/// Most ports one appliance drives; matches DPDK's `RTE_MAX_ETHPORTS`.
pub const MAX_PORTS: usize = dpdk_sys::RTE_MAX_ETHPORTS as usize;

/// Largest RX burst and TX buffer a worker uses.
pub const MAX_BURST: usize = 64;
