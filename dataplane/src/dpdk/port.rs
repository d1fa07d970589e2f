//! Ethdev ports and the queues each thread owns.

use std::ffi::CStr;

use dpdk_sys as ffi;

use super::*;
use crate::egress::TxQueue;
use crate::packet::Burst;
use crate::worker::RxQueue;

/// What a device reports it can do.
#[derive(Clone, Debug)]
pub struct DevInfo {
    pub driver: String,
    pub max_rx_queues: u16,
    pub max_tx_queues: u16,
    /// RSS hash functions the device supports (0: no RSS).
    pub rss_offloads: u64,
    /// Entries in its RSS redirection table, and its key length (bytes).
    pub reta_size: u16,
    pub hash_key_size: u8,
    /// The device can verify IPv4 header checksums on receive.
    pub rx_ipv4_checksum: bool,
    pub socket: i32,
}

/// How to configure a port before starting it.
#[derive(Clone, Copy, Debug)]
pub struct PortSetup {
    pub rx_queues: u16,
    pub tx_queues: u16,
    pub rx_desc: u16,
    pub tx_desc: u16,
}

/// Device-level counters (`rte_eth_stats`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EthStats {
    pub ipackets: u64,
    pub opackets: u64,
    pub ibytes: u64,
    pub obytes: u64,
    /// Packets the NIC dropped because the RX ring was full.
    pub imissed: u64,
    pub ierrors: u64,
    pub oerrors: u64,
    /// RX mbuf allocation failures.
    pub rx_nombuf: u64,
}

/// An ethdev port, stopped (if started) and closed on drop. Each RX and TX
/// queue can be taken once, so exactly one thread owns each queue.
pub struct Port {
    id: u16,
    name: String,
    started: bool,
    rx_taken: Vec<bool>,
    tx_taken: Vec<bool>,
    /// For `net_af_packet`: the kernel rings whose drops count as missed.
    kernel: Option<super::kernel_ring::KernelRing>,
}

impl Port {
    /// The probed port whose device name is `name` (`net_null0`, `0000:03:00.0`).
    pub fn by_name(name: &str) -> Result<Port> {
        let c = cstring(name)?;
        let mut id = 0u16;
        // SAFETY: valid C string and out-pointer.
        let ret = unsafe { ffi::rte_eth_dev_get_port_by_name(c.as_ptr(), &mut id) };
        if ret < 0 {
            return Err(Error::NoSuchPort(name.to_owned()));
        }
        Ok(Port { id, name: name.to_owned(), started: false, rx_taken: Vec::new(), tx_taken: Vec::new(), kernel: None })
    }

    pub fn id(&self) -> u16 {
        self.id
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn info(&self) -> Result<DevInfo> {
        let mut i = ffi::rte_eth_dev_info::default();
        // SAFETY: valid port id and out-pointer.
        check("rte_eth_dev_info_get", unsafe { ffi::rte_eth_dev_info_get(self.id, &mut i) })?;
        let driver = if i.driver_name.is_null() {
            String::new()
        } else {
            // SAFETY: DPDK's driver name is a static C string.
            unsafe { CStr::from_ptr(i.driver_name) }.to_string_lossy().into_owned()
        };
        // SAFETY: valid port id.
        let socket = unsafe { ffi::rte_eth_dev_socket_id(self.id) };
        Ok(DevInfo {
            driver,
            max_rx_queues: i.max_rx_queues,
            max_tx_queues: i.max_tx_queues,
            rss_offloads: i.flow_type_rss_offloads,
            reta_size: i.reta_size,
            hash_key_size: i.hash_key_size,
            // SAFETY: pure function.
            rx_ipv4_checksum: i.rx_offload_capa & unsafe { ffi::shim_rx_offload_ipv4_cksum() } != 0,
            socket,
        })
    }

    pub fn mac(&self) -> Result<[u8; 6]> {
        let mut a = ffi::rte_ether_addr::default();
        // SAFETY: valid port id and out-pointer.
        check("rte_eth_macaddr_get", unsafe { ffi::rte_eth_macaddr_get(self.id, &mut a) })?;
        Ok(a.addr_bytes)
    }

    /// Configures queues and rings. RSS spreads flows over the RX queues when
    /// there are several and the device supports it, with the symmetric key
    /// ([`crate::rss::KEY`], repeated to the device's key length; check it
    /// took with [`Port::spread_symmetric`]); IPv4 checksum verification is
    /// offloaded when the device can. Returns the ring sizes the device
    /// accepted.
    pub fn configure(&mut self, setup: &PortSetup, pool: &Mempool) -> Result<(u16, u16)> {
        let info = self.info()?;
        let mut conf = ffi::rte_eth_conf::default();
        let mut key = symmetric_key(info.hash_key_size);
        if setup.rx_queues > 1 && info.rss_offloads != 0 {
            conf.rxmode.mq_mode = ffi::RTE_ETH_MQ_RX_RSS;
            // SAFETY: pure function.
            conf.rx_adv_conf.rss_conf.rss_hf = unsafe { ffi::shim_rss_hf_ip_tcp_udp() } & info.rss_offloads;
            // DPDK copies the key during configure.
            conf.rx_adv_conf.rss_conf.rss_key = key.as_mut_ptr();
            conf.rx_adv_conf.rss_conf.rss_key_len = key.len() as u8;
        }
        if info.rx_ipv4_checksum {
            // The NIC checks IPv4 header checksums; mbufs carry its verdict
            // (Packet::ipv4_checksum_ok) and the router skips the sum.
            // SAFETY: pure function.
            conf.rxmode.offloads |= unsafe { ffi::shim_rx_offload_ipv4_cksum() };
        }
        // SAFETY: valid port and config.
        check("rte_eth_dev_configure", unsafe { ffi::rte_eth_dev_configure(self.id, setup.rx_queues, setup.tx_queues, &conf) })?;
        let (mut rxd, mut txd) = (setup.rx_desc, setup.tx_desc);
        // SAFETY: valid port and out-pointers.
        check("rte_eth_dev_adjust_nb_rx_tx_desc", unsafe { ffi::rte_eth_dev_adjust_nb_rx_tx_desc(self.id, &mut rxd, &mut txd) })?;
        let socket = info.socket as u32; // SOCKET_ID_ANY (-1) passes through as DPDK expects.
        for q in 0..setup.rx_queues {
            // SAFETY: valid port, queue index below the configured count, live pool.
            check("rte_eth_rx_queue_setup", unsafe {
                ffi::rte_eth_rx_queue_setup(self.id, q, rxd, socket, std::ptr::null(), pool.as_ptr())
            })?;
        }
        for q in 0..setup.tx_queues {
            // SAFETY: as above.
            check("rte_eth_tx_queue_setup", unsafe { ffi::rte_eth_tx_queue_setup(self.id, q, txd, socket, std::ptr::null()) })?;
        }
        self.rx_taken = vec![false; setup.rx_queues as usize];
        self.tx_taken = vec![false; setup.tx_queues as usize];
        Ok((rxd, txd))
    }

    /// After [`Port::start`]: points redirection entry `i` at queue
    /// `i % queues` and checks that the device holds the symmetric key, the
    /// TCP/UDP hash functions and that table, so that a flow's both
    /// directions reach the same queue index on every port. `Err` says why
    /// not (the caller spreads this port's packets in software).
    pub fn spread_symmetric(&self, queues: u16) -> std::result::Result<(), String> {
        let info = self.info().map_err(|e| e.to_string())?;
        if info.rss_offloads == 0 {
            return Err(format!("the {} device has no RSS", info.driver));
        }
        let wanted = symmetric_key(info.hash_key_size);
        let mut key = [0u8; 255];
        let mut len = wanted.len().min(key.len()) as u8;
        let mut hf = 0u64;
        // SAFETY: valid port; `key` holds `len` bytes.
        let ret = unsafe { ffi::shim_rss_conf_get(self.id, key.as_mut_ptr(), &mut len, &mut hf) };
        if ret != 0 {
            return Err(format!("reading its RSS key failed ({})", Error::Call { op: "rte_eth_dev_rss_hash_conf_get", errno: -ret }));
        }
        if key[..len as usize] != wanted[..] {
            return Err(format!("the {} device did not take the symmetric RSS key", info.driver));
        }
        // SAFETY: pure function.
        let tcp_udp = unsafe { ffi::shim_rss_hf_ip_tcp_udp() } & info.rss_offloads;
        if hf & tcp_udp != tcp_udp {
            return Err(format!("the {} device hashes with functions {hf:#x}, not {tcp_udp:#x}", info.driver));
        }
        if info.reta_size % queues != 0 {
            return Err(format!("its redirection table ({} entries) does not divide into {queues} queues", info.reta_size));
        }
        // SAFETY: valid, started port.
        match unsafe { ffi::shim_reta_spread(self.id, info.reta_size, queues) } {
            0 => Ok(()),
            code => Err(format!(
                "programming its redirection table failed ({})",
                Error::Call { op: "rte_eth_dev_rss_reta_update", errno: -code }
            )),
        }
    }

    pub fn start(&mut self) -> Result<()> {
        // SAFETY: configured port.
        check("rte_eth_dev_start", unsafe { ffi::rte_eth_dev_start(self.id) })?;
        self.started = true;
        // Cross-connect and routing need every frame; a device without
        // promiscuous mode (most vdevs) already delivers everything.
        // SAFETY: started port.
        let _ = unsafe { ffi::rte_eth_promiscuous_enable(self.id) };
        Ok(())
    }

    /// Stops the port. Every queue's owner must have stopped using it.
    pub fn stop(&mut self) -> Result<()> {
        if !self.started {
            return Ok(());
        }
        self.started = false;
        // SAFETY: started port, no thread polls it any more.
        check("rte_eth_dev_stop", unsafe { ffi::rte_eth_dev_stop(self.id) }).map(drop)
    }

    /// Counts the drops in the kernel's rings behind this `net_af_packet`
    /// port on interface `iface` as missed packets; returns how many of
    /// the driver's sockets were found.
    pub fn watch_kernel_ring(&mut self, iface: &str) -> usize {
        let ring = super::kernel_ring::KernelRing::find(iface);
        let n = ring.sockets();
        self.kernel = Some(ring);
        n
    }

    /// Device counters; `imissed` includes the kernel's ring drops of a
    /// watched `net_af_packet` port.
    pub fn stats(&self) -> Result<EthStats> {
        let mut s = ffi::rte_eth_stats::default();
        // SAFETY: valid port and out-pointer.
        check("rte_eth_stats_get", unsafe { ffi::rte_eth_stats_get(self.id, &mut s) })?;
        Ok(EthStats {
            ipackets: s.ipackets,
            opackets: s.opackets,
            ibytes: s.ibytes,
            obytes: s.obytes,
            imissed: s.imissed + self.kernel.as_ref().map_or(0, |k| k.drops()),
            ierrors: s.ierrors,
            oerrors: s.oerrors,
            rx_nombuf: s.rx_nombuf,
        })
    }

    /// Hands out RX queue `q`, once.
    pub fn take_rx_queue(&mut self, q: u16) -> Option<EthRxQueue> {
        let slot = self.rx_taken.get_mut(q as usize)?;
        (!std::mem::replace(slot, true)).then_some(EthRxQueue { port: self.id, queue: q })
    }

    /// Hands out TX queue `q`, once.
    pub fn take_tx_queue(&mut self, q: u16) -> Option<EthTxQueue> {
        let slot = self.tx_taken.get_mut(q as usize)?;
        (!std::mem::replace(slot, true)).then_some(EthTxQueue { port: self.id, queue: q })
    }
}

/// [`crate::rss::KEY`]'s pattern at a device's key length (40 bytes when
/// it does not say): the key stays symmetric at any length.
fn symmetric_key(len: u8) -> Vec<u8> {
    let len = if len == 0 { crate::rss::KEY.len() } else { len as usize };
    (0..len).map(|i| crate::rss::KEY[i % 2]).collect()
}

impl Drop for Port {
    fn drop(&mut self) {
        let _ = self.stop();
        // SAFETY: valid, stopped port; its RX rings' mbufs go back to the pool.
        unsafe { ffi::rte_eth_dev_close(self.id) };
    }
}

/// One RX queue of a started port, owned by one worker.
pub struct EthRxQueue {
    port: u16,
    queue: u16,
}

impl RxQueue for EthRxQueue {
    type Pkt = Mbuf;

    #[inline(always)]
    fn rx_burst(&mut self, burst: &mut Burst<Mbuf>, max: usize) -> usize {
        let max = max.min(burst.spare());
        // SAFETY: Mbuf is a transparent NonNull<rte_mbuf>, so the spare slots
        // are an array of `max` mbuf pointers for DPDK to fill.
        unsafe {
            let at = burst.as_mut_ptr().add(burst.len()).cast::<*mut ffi::rte_mbuf>();
            let n = ffi::shim_rte_eth_rx_burst(self.port, self.queue, at, max as u16) as usize;
            burst.extend_written(n);
            n
        }
    }
}

/// One TX queue of a started port, owned by one thread.
pub struct EthTxQueue {
    port: u16,
    queue: u16,
}

impl TxQueue<Mbuf> for EthTxQueue {
    #[inline(always)]
    fn tx_burst(&mut self, burst: &mut Burst<Mbuf>) -> usize {
        // SAFETY: as for RX; the device owns the first `n` mbufs afterwards.
        unsafe {
            let p = burst.as_mut_ptr().cast::<*mut ffi::rte_mbuf>();
            let n = ffi::shim_rte_eth_tx_burst(self.port, self.queue, p, burst.len() as u16) as usize;
            burst.forget_front(n);
            n
        }
    }
}
