//! The safe DPDK layer against real EAL with virtual devices. EAL can be
//! initialised once per process, so this binary holds one test that walks
//! through every check in order.

use dataplane::dpdk::{Eal, Error, Mempool, Port, PortSetup};
use dataplane::egress::TxQueue;
use dataplane::packet::{Burst, Packet};
use dataplane::worker::RxQueue;

fn eal() -> Eal {
    let prefix = format!("dptest{}", std::process::id());
    let args =
        ["dptest", "-l", "0,1", "--no-huge", "-m", "256", "--file-prefix", &prefix, "--no-pci", "--log-level=warning", "--no-telemetry"];
    let eal = Eal::init(&args).expect("EAL init with --no-huge");
    assert_eq!(Eal::init(&args).err(), Some(Error::AlreadyInitialised));
    eal
}

fn mempool_and_mbufs() {
    let pool = Mempool::new_pktmbuf("t_pool", 1023, 32, 2048 + 128, -1).unwrap();
    assert_eq!(pool.size(), 1023);
    assert_eq!(pool.available(), 1023);
    assert_eq!(Mempool::new_pktmbuf("t_pool", 63, 0, 2176, -1).err().and_then(|e| e.errno()), Some(libc::EEXIST));

    let mut m = pool.alloc().unwrap();
    assert_eq!(pool.available(), 1022);
    assert_eq!(m.data().len(), 0);
    assert_eq!(m.headroom(), 128);
    m.append(60).unwrap().copy_from_slice(&[0xab; 60]);
    assert_eq!(m.wire_len(), 60);
    assert_eq!(m.data(), &[0xab; 60][..]);
    assert!(m.truncate(50));
    assert_eq!(m.wire_len(), 50);
    assert!(!m.truncate(51));
    assert!(m.prepend(14) && m.wire_len() == 64 && m.headroom() == 114);
    assert!(!m.prepend(115), "more than the headroom");
    assert!(m.adj(14) && m.data() == &[0xab; 50][..]);
    assert!(!m.adj(51));
    assert_eq!(m.ipv4_checksum_ok(), None, "nothing checked it");
    assert!(m.append(1 << 15).is_none(), "more than tailroom");
    drop(m);
    assert_eq!(pool.available(), 1023);

    let mut b = Burst::new();
    pool.alloc_bulk(&mut b, 40).unwrap();
    assert_eq!(b.len(), 40);
    assert_eq!(pool.available(), 1023 - 40);
    drop(b);
    assert_eq!(pool.available(), 1023);
}

fn ports_and_queues(eal: &Eal) {
    assert_eq!(Port::by_name("net_null9").err(), Some(Error::NoSuchPort("net_null9".into())));
    let e = eal.probe("net_bogus0").unwrap_err();
    assert!(e.to_string().starts_with("rte_dev_probe failed"), "{e}");

    eal.probe("net_null0,size=64").unwrap();
    let pool = Mempool::new_pktmbuf("port_pool", 4095, 0, 2176, -1).unwrap();
    {
        let mut port = Port::by_name("net_null0").unwrap();
        let info = port.info().unwrap();
        assert_eq!(info.driver, "net_null");
        assert!(info.max_tx_queues >= 2);
        let (rxd, txd) = port.configure(&PortSetup { rx_queues: 1, tx_queues: 2, rx_desc: 512, tx_desc: 512 }, &pool).unwrap();
        assert!(rxd > 0 && txd > 0);
        port.start().unwrap();

        let mut rx = port.take_rx_queue(0).unwrap();
        assert!(port.take_rx_queue(0).is_none(), "a queue is handed out once");
        assert!(port.take_rx_queue(1).is_none(), "only one RX queue was configured");
        let mut tx = port.take_tx_queue(1).unwrap();

        let mut b = Burst::new();
        assert_eq!(rx.rx_burst(&mut b, 32), 32, "net_null always has packets");
        assert!(b.as_slice().iter().all(|m| m.wire_len() == 64));
        assert_eq!(tx.tx_burst(&mut b), 32);
        assert!(b.is_empty(), "sent mbufs leave the burst");

        let stats = port.stats().unwrap();
        assert_eq!(stats.ipackets, 32);
        assert_eq!(stats.opackets, 32);
        port.stop().unwrap();
    } // closed here
    assert_eq!(pool.available(), pool.size(), "every mbuf is back after close");
}

fn launch_on_worker_lcore(eal: &Eal) {
    let (tx, rx) = std::sync::mpsc::channel();
    eal.launch(1, move || {
        tx.send(unsafe { dpdk_sys::shim_rte_lcore_id() }).unwrap();
        7
    })
    .unwrap();
    assert_eq!(eal.wait(1), 7);
    assert_eq!(rx.recv().unwrap(), 1, "the job ran on lcore 1");
    let e = eal.launch(5, || 0).unwrap_err();
    assert!(e.errno().is_some(), "{e}");
}

#[test]
fn safe_layer_against_real_eal() {
    let eal = eal();
    mempool_and_mbufs();
    ports_and_queues(&eal);
    launch_on_worker_lcore(&eal);
}
