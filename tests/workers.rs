//! Many workers: two workers on multi-queue `net_pcap` ports. The queue
//! files are written by a generator that places each packet as a NIC
//! with the symmetric Toeplitz key would (`dataplane::rss::toeplitz`, the
//! bit-by-bit reference, on a tuple this file parses itself), or
//! deliberately on the wrong queue; per-worker flow counts and handoff
//! counters show where each flow was handled.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::*;
use pcap_file::pcap::{PcapPacket, PcapWriter};

const LIMIT: Duration = Duration::from_secs(60);

fn write_pcap(path: &Path, frames: &[Vec<u8>]) {
    let mut w = PcapWriter::new(std::fs::File::create(path).unwrap()).unwrap();
    for (i, f) in frames.iter().enumerate() {
        w.write_packet(&PcapPacket::new(Duration::from_micros(i as u64), f.len() as u32, f)).unwrap();
    }
}

/// The queue (of 2) a NIC configured with the symmetric key puts an
/// untagged Ethernet frame on: Toeplitz over addresses and, for
/// unfragmented TCP and UDP, ports; redirection entry i is queue i % 2.
fn nic_queue(f: &[u8]) -> usize {
    let ip = &f[14..];
    let (tuple, proto, l4) = match f[12..14] {
        [0x08, 0x00] => {
            let frag = u16::from_be_bytes([ip[6], ip[7]]) & 0x3fff != 0;
            (ip[12..20].to_vec(), if frag { 0 } else { ip[9] }, (ip[0] & 0xf) as usize * 4)
        }
        [0x86, 0xdd] => (ip[8..40].to_vec(), ip[6], 40),
        _ => return 0,
    };
    let mut input = tuple;
    if matches!(proto, 6 | 17) && ip.len() >= l4 + 4 {
        input.extend_from_slice(&ip[l4..l4 + 4]);
    }
    let reta = 128;
    (dataplane::rss::toeplitz(&dataplane::rss::KEY, &input) % reta) as usize % 2
}

fn frame(src: [u8; 4], dst: [u8; 4], proto: u8, sport: u16, dport: u16, payload: &[u8]) -> Vec<u8> {
    let l4 = if proto == 6 { 20 } else { 8 };
    let total = 20 + l4 + payload.len();
    let mut f = vec![0u8; 14 + total];
    f[..6].copy_from_slice(&[2, 0, 0, 0, 0, 1]);
    f[6..12].copy_from_slice(&[2, 0, 0, 0, 0, 2]);
    f[12..14].copy_from_slice(&[0x08, 0x00]);
    let ip = &mut f[14..];
    ip[0] = 0x45;
    ip[2..4].copy_from_slice(&(total as u16).to_be_bytes());
    ip[8] = 64;
    ip[9] = proto;
    ip[12..16].copy_from_slice(&src);
    ip[16..20].copy_from_slice(&dst);
    ip[20..22].copy_from_slice(&sport.to_be_bytes());
    ip[22..24].copy_from_slice(&dport.to_be_bytes());
    if proto == 6 {
        ip[32] = 5 << 4;
        ip[33] = 0x18; // PSH ACK
    } else {
        ip[24..26].copy_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
    }
    ip[20 + l4..].copy_from_slice(payload);
    f
}

/// 96 TCP and UDP flows between LAN clients and WAN servers: three
/// packets out (arriving on lan0) and two back (on wan0) each.
fn conversations() -> (Vec<Vec<u8>>, Vec<Vec<u8>>, usize) {
    let (mut out, mut back) = (Vec::new(), Vec::new());
    let mut n = 0;
    for i in 0..96u16 {
        let client = [10, 1, (i / 7) as u8, 10 + (i % 7) as u8];
        let server = [198, 51, 100, 1 + (i % 5) as u8];
        let (proto, sport, dport) = if i % 2 == 0 { (6, 40000 + i * 13, 443) } else { (17, 50000 + i * 7, 5000 + i) };
        for k in 0..3u8 {
            out.push(frame(client, server, proto, sport, dport, &[k; 40]));
        }
        for k in 0..2u8 {
            back.push(frame(server, client, proto, dport, sport, &[k; 200]));
        }
        n += 1;
    }
    (out, back, n)
}

/// Splits frames over two queue files by `queue`.
fn queue_files(dir: &Scratch, name: &str, frames: &[Vec<u8>], queue: impl Fn(&[u8]) -> usize) -> [std::path::PathBuf; 2] {
    let mut q: [Vec<Vec<u8>>; 2] = [vec![], vec![]];
    for f in frames {
        q[queue(f) % 2].push(f.clone());
    }
    let paths = [dir.path(&format!("{name}-q0.pcap")), dir.path(&format!("{name}-q1.pcap"))];
    write_pcap(&paths[0], &q[0]);
    write_pcap(&paths[1], &q[1]);
    paths
}

/// A `net_pcap` port with two RX queues and three TX queues (two workers
/// and the control thread).
fn device(n: u8, dir: &Scratch, rx: &[std::path::PathBuf; 2]) -> String {
    let tx: Vec<String> = (0..3).map(|q| format!("tx_pcap={}", dir.path(&format!("out{n}-{q}.pcap")).display())).collect();
    format!("net_pcap{n},rx_pcap={},rx_pcap={},{}", rx[0].display(), rx[1].display(), tx.join(","))
}

/// Two workers: lcore 1 on CPU 1, lcore 2 sharing CPU 0 with the control
/// thread; both nap when idle.
fn two_workers(pfx: &str, lan: &str, wan: &str) -> String {
    TwoPorts::appliance(pfx)
        .main_lcore(0)
        .eal("worker_lcores = [1, 2]")
        .eal("cpu_map = \"2@0\"")
        .worker("poll_mode = \"adaptive\"")
        .devices(lan, wan)
        .extra(&control_section(pfx))
        .toml()
}

/// Waits until the ports together received `packets`.
fn wait_received(app: &Appliance, packets: u64) {
    let start = Instant::now();
    loop {
        let got: u64 = app.show("ports").as_array().unwrap().iter().map(|p| p["rx_packets"].as_u64().unwrap()).sum();
        if got >= packets {
            return;
        }
        assert!(start.elapsed() < LIMIT, "received {got} of {packets}\n{}", app.output());
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn worker_figure(workers: &serde_json::Value, key: &str) -> Vec<u64> {
    workers.as_array().unwrap().iter().map(|w| w[key].as_u64().unwrap_or_else(|| panic!("{key} in {w}"))).collect()
}

/// Both directions of every TCP and UDP flow meet in one worker's table,
/// whether the queues were filled as a NIC would (no handoff at all: the
/// data plane's folded hash is the NIC's Toeplitz) or all wrong (every
/// packet handed to its owner; none lost).
#[test]
fn both_directions_of_each_flow_meet_on_one_worker() {
    let (out, back, flows) = conversations();
    let packets = (out.len() + back.len()) as u64;
    for (case, wrong) in [("nic", false), ("wrong", true)] {
        let dir = Scratch::new(&format!("workers-{case}"));
        let place = |f: &[u8]| nic_queue(f) + wrong as usize;
        let lan = device(0, &dir, &queue_files(&dir, "lan", &out, place));
        let wan = device(1, &dir, &queue_files(&dir, "wan", &back, place));
        let pfx = prefix(&format!("workers-{case}"));
        let cfg = dir.write("c.toml", &two_workers(&pfx, &lan, &wan));
        let app = Appliance::start(&cfg, socket_path(&pfx));
        wait_received(&app, packets);
        // The last handed-off packets are processed within a poll or two.
        std::thread::sleep(Duration::from_millis(300));
        let ports = app.show("ports");
        for p in ports.as_array().unwrap() {
            assert!(p["spread"].as_str().unwrap().starts_with("software: the net_pcap device has no RSS"), "{p}");
        }
        let w = app.show("workers");
        let created = worker_figure(&w, "flows_created");
        let (handed_out, handed_in, full) =
            (worker_figure(&w, "handoff_out"), worker_figure(&w, "handoff_in"), worker_figure(&w, "handoff_full"));
        assert_eq!(created.iter().sum::<u64>(), flows as u64, "{case}: every flow created once, on one worker: {w}");
        assert!(created.iter().all(|&c| c > 10), "{case}: both workers own flows: {w}");
        assert_eq!(full, vec![0, 0], "{case}: {w}");
        assert_eq!(handed_out.iter().sum::<u64>(), handed_in.iter().sum::<u64>(), "{case}: {w}");
        if wrong {
            assert_eq!(handed_out.iter().sum::<u64>(), packets, "{case}: every packet was on the wrong queue: {w}");
        } else {
            assert_eq!(handed_out, vec![0, 0], "{case}: the generator's Toeplitz and the data plane's agree: {w}");
        }
        let (code, text) = app.stop();
        assert_eq!(code, Some(0), "{text}");
        // Cross-connected: everything left by the other port.
        let sent: usize =
            (0..2).flat_map(|n| (0..3).map(move |q| (n, q))).map(|(n, q)| count_pcap(&dir.path(&format!("out{n}-{q}.pcap")))).sum();
        assert_eq!(sent as u64, packets, "{case}: {text}");
    }
}

fn count_pcap(path: &Path) -> usize {
    let Ok(file) = std::fs::File::open(path) else { return 0 };
    let Ok(mut r) = pcap_file::pcap::PcapReader::new(file) else { return 0 };
    let mut n = 0;
    while let Some(Ok(_)) = r.next_packet() {
        n += 1;
    }
    n
}

/// `patronus classify --workers N` over the captures in `dir`: the
/// verdict columns of each flow (capture, protocol, ends, application,
/// category, protocol, host, basis), and the flows each worker held.
fn verdicts(dir: &Path, workers: u16) -> (Vec<String>, Vec<u64>) {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "pcap" || e == "pcapng"))
        .collect();
    files.sort();
    // Large output: read as it comes (classify finishes in well under a second).
    let out = patronus().args(["classify", "--format", "json", "--workers", &workers.to_string()]).args(&files).output().unwrap();
    // A damaged capture (ndpi-train holds fuzzed ones) fails alone, with
    // an error on stderr; the others' flows are still reported.
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(&out.stderr)));
    let cols = ["capture", "proto", "client", "server", "app", "category", "protocol", "host", "basis"];
    let mut rows: Vec<String> =
        v["flows"].as_array().unwrap().iter().map(|f| cols.iter().map(|c| f[*c].to_string()).collect::<Vec<_>>().join("\t")).collect();
    rows.sort();
    let per_worker = v["summary"]["flows_per_worker"].as_array().map_or(vec![], |a| a.iter().map(|n| n.as_u64().unwrap()).collect());
    (rows, per_worker)
}

/// The workers decide nDPI's captures as one worker does, flow by flow:
/// each packet goes to the worker that owns its flow by the symmetric hash
/// (one flow table each), and what one worker learns from a DNS answer or
/// an FTP or SDP announcement classifies the flow another worker owns.
/// (Offline, in capture order: a line-rate replay through two DPDK queues
/// would race a DNS answer against the connection it announces, which
/// real traffic orders by at least a round trip.)
#[test]
fn two_workers_classify_the_shared_captures_as_one_does() {
    let corpora = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/corpora"));
    if !corpora.join("ndpi-dev").is_dir() {
        return skip("workers::two_workers_classify_the_shared_captures_as_one_does", "../shared/corpora/ndpi-dev is absent");
    }
    for set in ["ndpi-dev", "ndpi-train"] {
        let dir = corpora.join(set);
        if !dir.is_dir() {
            skip("workers::two_workers_classify_the_shared_captures_as_one_does", &format!("../shared/corpora/{set} is absent"));
            continue;
        }
        let (one, _) = verdicts(&dir, 1);
        assert!(one.len() > 250, "{set}: {} flows", one.len());
        for workers in [2, 4] {
            let (many, per_worker) = verdicts(&dir, workers);
            assert_eq!(per_worker.len(), workers as usize, "{set}");
            assert!(per_worker.iter().all(|&n| n as usize > one.len() / (4 * workers as usize)), "{set}: flows per worker {per_worker:?}");
            let differ: Vec<String> = one
                .iter()
                .filter(|r| !many.contains(r))
                .map(|r| format!("one worker:  {r}"))
                .chain(many.iter().filter(|r| !one.contains(r)).map(|r| format!("{workers} workers: {r}")))
                .collect();
            assert!(differ.is_empty(), "{set}, {workers} workers:\n{}", differ.join("\n"));
        }
    }
}
