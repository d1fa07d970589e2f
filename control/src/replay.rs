//! `patronus replay`: the LAN hosts of a lab or of the demo.
//!
//! One DPDK process, one thread, a port per site LAN. It replays the IPv4
//! packets of a capture at a fixed rate, each out of the port whose host
//! prefix holds its source address, so that a capture of both directions
//! of a conversation becomes a client on one site talking to a server on
//! the other. Like a host, it resolves its gateway with ARP before it
//! sends, answers ARP for every address in its prefix, and counts what
//! arrives for those addresses. The summary says what was sent and what
//! arrived per port, so a test can tell loss from the appliances' drops.

use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use dataplane::dpdk::{Eal, Mbuf, Mempool, Port, PortSetup};
use dataplane::egress::TxQueue;
use dataplane::packet::{Burst, Packet};
use dataplane::wire::ethernet::{self, EtherType, EthernetAddress};
use dataplane::wire::frame::Ip;
use dataplane::wire::{arp, ipv4, Ipv4Address};
use dataplane::worker::RxQueue;

use crate::capture::Capture;

/// One LAN: a DPDK device, the hosts behind it, and their gateway.
#[derive(Clone, Debug)]
pub struct Side {
    pub device: String,
    pub prefix: Ipv4Addr,
    pub len: u8,
    pub gateway: Ipv4Addr,
}

impl Side {
    fn holds(&self, a: Ipv4Addr) -> bool {
        let mask = if self.len == 0 { 0 } else { u32::MAX << (32 - self.len) };
        u32::from(a) & mask == u32::from(self.prefix) & mask
    }
}

/// Parses `PREFIX/LEN`.
pub fn parse_prefix(s: &str) -> Result<(Ipv4Addr, u8), String> {
    let (a, l) = s.split_once('/').ok_or_else(|| format!("{s:?}: expected an IPv4 prefix like 10.1.0.0/24"))?;
    let a: Ipv4Addr = a.parse().map_err(|_| format!("{s:?}: {a:?} is not an IPv4 address"))?;
    let l: u8 = l.parse().ok().filter(|l| *l <= 32).ok_or_else(|| format!("{s:?}: prefix length must be 0..=32"))?;
    Ok((a, l))
}

pub struct Options {
    pub pcap: PathBuf,
    pub sides: Vec<Side>,
    /// Packets per second, over all ports.
    pub pps: u32,
    /// Replays of the whole capture (0: until `duration` or a signal).
    pub loops: u32,
    pub duration: Option<Duration>,
    /// How long to keep counting arrivals after the last packet.
    pub drain: Duration,
    pub file_prefix: String,
    pub cpu: usize,
    pub summary: Option<PathBuf>,
    /// Queues each way per port: as many as the appliance's port has
    /// (its workers and its control thread; memif pairs rings one to one).
    pub queues: u16,
}

#[derive(Default, Clone, Debug)]
struct SideStats {
    sent: u64,
    sent_bytes: u64,
    received: u64,
    received_bytes: u64,
    arp_answered: u64,
    /// Frames that were neither ARP nor IPv4 for our hosts.
    other: u64,
    tx_full: u64,
}

const ETH: usize = ethernet::HEADER_LEN;

/// Runs the replay; returns the process exit status.
pub fn main(o: &Options) -> u8 {
    match replay(o) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("patronus: replay: error: {e}");
            1
        }
    }
}

/// Splits a capture into per-side IP packets, in order.
fn load(o: &Options) -> Result<(Vec<(usize, Vec<u8>)>, u64), String> {
    let cap = Capture::open(&o.pcap)?;
    let mut pkts = Vec::new();
    let mut skipped = 0u64;
    cap.for_each(|p| {
        // IPv4 behind any link header, tags or labels (dropped: the hosts are untagged).
        let ip = match p.ip_header() {
            Some(Ip::V4(o)) => &p.data[o..],
            _ => {
                skipped += 1;
                return;
            }
        };
        match ipv4::Packet::new_checked(ip) {
            Ok(h) => match o.sides.iter().position(|s| s.holds(Ipv4Addr::from(h.src_addr().0))) {
                Some(i) => pkts.push((i, ip.to_vec())),
                None => skipped += 1,
            },
            _ => skipped += 1,
        }
    })
    .map_err(|e| format!("{}: {e}", o.pcap.display()))?;
    if pkts.is_empty() {
        return Err(format!("{}: no IPv4 packet from any of the host prefixes", o.pcap.display()));
    }
    Ok((pkts, skipped))
}

/// An ARP frame from `eth_src`, built with the wire codecs the slow path uses.
fn arp_frame(pool: &Mempool, eth_dst: EthernetAddress, a: &arp::Repr) -> Option<Mbuf> {
    let mut b = [0u8; ethernet::HEADER_LEN + arp::PACKET_LEN];
    let eth = ethernet::Repr { src: a.source_hardware_addr, dst: eth_dst, ethertype: EtherType::ARP };
    eth.emit(&mut ethernet::Frame::new_unchecked(&mut b[..]));
    a.emit(&mut arp::Packet::new_unchecked(&mut b[ethernet::HEADER_LEN..]));
    frame(pool, &[&b])
}

/// An IPv4 frame's Ethernet header.
fn ipv4_header(src: EthernetAddress, dst: EthernetAddress) -> [u8; ETH] {
    let mut b = [0u8; ETH];
    ethernet::Repr { src, dst, ethertype: EtherType::IPV4 }.emit(&mut ethernet::Frame::new_unchecked(&mut b[..]));
    b
}

fn frame(pool: &Mempool, parts: &[&[u8]]) -> Option<Mbuf> {
    let mut m = pool.alloc()?;
    let len = parts.iter().map(|p| p.len()).sum();
    let buf = m.append(len)?;
    let mut at = 0;
    for p in parts {
        buf[at..at + p.len()].copy_from_slice(p);
        at += p.len();
    }
    Some(m)
}

fn replay(o: &Options) -> Result<(), String> {
    let (pkts, skipped) = load(o)?;
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, stop.clone()).map_err(|e| format!("signal handler: {e}"))?;
    }
    let args: Vec<String> = [
        "replay",
        "--lcores",
        &format!("0@{}", o.cpu),
        "--no-huge",
        "-m",
        "256",
        "--file-prefix",
        &o.file_prefix,
        "--no-pci",
        "--no-telemetry",
        "--log-level=warning",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let eal = Eal::init(&args).map_err(|e| format!("EAL: {e}"))?;
    let pool = Mempool::new_pktmbuf("replay", 4095, 0, 2048 + 128, eal.socket_id()).map_err(|e| format!("mempool: {e}"))?;
    let mut ports = Vec::new();
    let mut queues = Vec::new();
    for s in &o.sides {
        eal.probe(&s.device).map_err(|e| format!("{}: {e}", s.device))?;
        let name = s.device.split(',').next().unwrap_or_default();
        let mut port = Port::by_name(name).map_err(|e| format!("{name}: {e}"))?;
        // As many queues each way as the appliance's port (its workers and
        // its control thread): memif pairs rings one to one.
        let q = o.queues.max(1);
        port.configure(&PortSetup { rx_queues: q, tx_queues: q, rx_desc: 512, tx_desc: 512 }, &pool).map_err(|e| format!("{name}: {e}"))?;
        port.start().map_err(|e| format!("{name}: {e}"))?;
        let mac = EthernetAddress(port.mac().map_err(|e| format!("{name}: {e}"))?);
        let rx: Vec<_> = (0..q).filter_map(|q| port.take_rx_queue(q)).collect();
        let tx = port.take_tx_queue(0).ok_or("no TX queue")?;
        queues.push((rx, tx, mac));
        ports.push(port);
    }
    let n = o.sides.len();
    let mut stats = vec![SideStats::default(); n];
    let mut gw_mac: Vec<Option<EthernetAddress>> = vec![None; n];
    let mut rx = Burst::<Mbuf>::new();
    let mut out: Vec<Burst<Mbuf>> = (0..n).map(|_| Burst::new()).collect();

    // Everything the hosts receive: ARP is answered, IPv4 for a host counted.
    type Queues = Vec<(Vec<dataplane::dpdk::EthRxQueue>, dataplane::dpdk::EthTxQueue, EthernetAddress)>;
    let mut poll = |queues: &mut Queues, stats: &mut Vec<SideStats>, gw_mac: &mut Vec<Option<EthernetAddress>>| {
        for i in 0..n {
            let (qs, txq, mac) = &mut queues[i];
            let mac = *mac;
            for q in qs.iter_mut() {
                q.rx_burst(&mut rx, 32);
            }
            let mut replies = Burst::<Mbuf>::new();
            for m in rx.drain() {
                let d = m.data();
                let Ok(f) = ethernet::Frame::new_checked(d) else {
                    stats[i].other += 1;
                    continue;
                };
                match f.ethertype() {
                    EtherType::ARP => {
                        let Ok(a) = arp::Packet::new_checked(f.payload()).and_then(|p| arp::Repr::parse(&p)) else {
                            stats[i].other += 1;
                            continue;
                        };
                        let (spa, tpa) = (Ipv4Addr::from(a.source_protocol_addr.0), Ipv4Addr::from(a.target_protocol_addr.0));
                        if spa == o.sides[i].gateway {
                            gw_mac[i] = Some(a.source_hardware_addr);
                        }
                        // Every host of the prefix answers, as the hosts themselves would.
                        if a.operation == arp::Operation::Request && o.sides[i].holds(tpa) && tpa != o.sides[i].gateway {
                            let reply = arp::Repr {
                                operation: arp::Operation::Reply,
                                source_hardware_addr: mac,
                                source_protocol_addr: a.target_protocol_addr,
                                target_hardware_addr: a.source_hardware_addr,
                                target_protocol_addr: a.source_protocol_addr,
                            };
                            if let Some(r) = arp_frame(&pool, a.source_hardware_addr, &reply) {
                                let _ = replies.push(r);
                                stats[i].arp_answered += 1;
                            }
                        }
                    }
                    EtherType::IPV4
                        if ipv4::Packet::new_checked(f.payload()).is_ok_and(|p| o.sides[i].holds(Ipv4Addr::from(p.dst_addr().0))) =>
                    {
                        stats[i].received += 1;
                        stats[i].received_bytes += (d.len() - ETH) as u64;
                    }
                    _ => stats[i].other += 1,
                }
            }
            txq.tx_burst(&mut replies);
        }
    };

    // Resolve each gateway, as a host would, before sending anything.
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut next_ask = Instant::now();
    while gw_mac.iter().any(Option::is_none) {
        if stop.load(Ordering::Relaxed) {
            return Err("stopped before the gateways answered ARP".into());
        }
        if Instant::now() > deadline {
            let missing: Vec<String> =
                o.sides.iter().zip(&gw_mac).filter(|(_, m)| m.is_none()).map(|(s, _)| format!("{} on {}", s.gateway, s.device)).collect();
            return Err(format!(
                "no ARP reply from gateway {} within 30 s (is the appliance running and its port up?)",
                missing.join(", ")
            ));
        }
        if Instant::now() >= next_ask {
            for (i, s) in o.sides.iter().enumerate() {
                if gw_mac[i].is_none() {
                    // Ask as the side's first host in the capture.
                    let me = pkts.iter().find(|(j, _)| *j == i).map_or(s.prefix, |(_, ip)| Ipv4Addr::new(ip[12], ip[13], ip[14], ip[15]));
                    let ask = arp::Repr {
                        operation: arp::Operation::Request,
                        source_hardware_addr: queues[i].2,
                        source_protocol_addr: Ipv4Address(me.octets()),
                        target_hardware_addr: EthernetAddress::default(),
                        target_protocol_addr: Ipv4Address(s.gateway.octets()),
                    };
                    if let Some(r) = arp_frame(&pool, EthernetAddress::BROADCAST, &ask) {
                        let mut b = Burst::new();
                        let _ = b.push(r);
                        queues[i].1.tx_burst(&mut b);
                    }
                }
            }
            next_ask = Instant::now() + Duration::from_millis(200);
        }
        poll(&mut queues, &mut stats, &mut gw_mac);
        std::thread::sleep(Duration::from_micros(200));
    }
    eprintln!("patronus: replay: {} packets from {} ({} skipped), {} pps, gateways resolved", pkts.len(), o.pcap.display(), skipped, o.pps);

    let start = Instant::now();
    let per = Duration::from_secs_f64(1.0 / o.pps.max(1) as f64);
    let total = if o.loops == 0 { u64::MAX } else { o.loops as u64 * pkts.len() as u64 };
    let mut k: u64 = 0;
    while k < total && !stop.load(Ordering::Relaxed) && o.duration.map_or(true, |d| start.elapsed() < d) {
        let now = Instant::now();
        while k < total && start + per.mul_f64(k as f64) <= now {
            let (i, ip) = &pkts[(k % pkts.len() as u64) as usize];
            let eth = ipv4_header(queues[*i].2, gw_mac[*i].unwrap_or(EthernetAddress::BROADCAST));
            if let Some(m) = frame(&pool, &[&eth, ip]) {
                stats[*i].sent += 1;
                stats[*i].sent_bytes += ip.len() as u64;
                if let Err(m) = out[*i].push(m) {
                    drop(m);
                }
            }
            k += 1;
            if out[*i].spare() == 0 {
                break;
            }
        }
        for (i, b) in out.iter_mut().enumerate() {
            if !b.is_empty() {
                queues[i].1.tx_burst(b);
                let left = b.len() as u64;
                stats[i].tx_full += left;
                stats[i].sent -= left;
                b.clear();
            }
        }
        poll(&mut queues, &mut stats, &mut gw_mac);
        std::thread::sleep(Duration::from_micros(100));
    }
    let elapsed = start.elapsed().as_secs_f64();
    let end = Instant::now() + o.drain;
    while Instant::now() < end {
        poll(&mut queues, &mut stats, &mut gw_mac);
        std::thread::sleep(Duration::from_micros(200));
    }

    let mut json = Vec::new();
    for (i, s) in o.sides.iter().enumerate() {
        let st = &stats[i];
        println!(
            "replay: {} ({}/{}): sent {} packets ({} bytes), received {} ({} bytes), answered {} ARP, {} other frames, {} refused by the device",
            s.device.split(',').next().unwrap_or_default(),
            s.prefix,
            s.len,
            st.sent,
            st.sent_bytes,
            st.received,
            st.received_bytes,
            st.arp_answered,
            st.other,
            st.tx_full
        );
        json.push(serde_json::json!({
            "device": s.device, "hosts": format!("{}/{}", s.prefix, s.len), "sent": st.sent, "sent_bytes": st.sent_bytes,
            "received": st.received, "received_bytes": st.received_bytes, "arp_answered": st.arp_answered,
            "other": st.other, "tx_refused": st.tx_full,
        }));
    }
    if let Some(p) = &o.summary {
        let v = serde_json::json!({ "seconds": elapsed, "pps": o.pps, "capture_packets": pkts.len(), "sides": json });
        std::fs::write(p, serde_json::to_string_pretty(&v).unwrap_or_default()).map_err(|e| format!("{}: {e}", p.display()))?;
    }
    drop(queues);
    for mut p in ports {
        let _ = p.stop();
    }
    drop(out);
    drop(pool);
    drop(eal);
    Ok(())
}
