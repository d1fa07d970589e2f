//! `patronus classify FILE...`: offline classification of captures with
//! the data plane's own flow table and DPI.

use std::path::{Path, PathBuf};
use std::time::Instant;

use dataplane::dpi::{Basis, Dpi, Local, Status};
use dataplane::flow::{account, parse_at, Flow, FlowTable, Timeouts};
use dataplane::vocab::Dir;

/// Output formats.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Table,
    Tsv,
    Json,
}

/// One flow's result.
#[derive(Clone, Debug, serde::Serialize)]
pub struct FlowResult {
    pub capture: String,
    pub proto: &'static str,
    /// "addr:port" of the side that sent the first packet, and the other.
    pub client: String,
    pub server: String,
    pub app: String,
    pub category: &'static str,
    pub protocol: &'static str,
    pub host: String,
    /// How the application was decided.
    pub basis: &'static str,
    pub packets: u64,
    pub bytes: u64,
    /// Packets of the flow seen when the decision was made.
    pub decided_after: u16,
}

/// Totals over a run.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct Summary {
    pub captures: usize,
    pub packets: u64,
    /// Packets that were not IP or whose headers did not parse.
    pub not_ip: u64,
    pub flows: usize,
    pub classified: usize,
    pub unknown: usize,
    pub seconds: f64,
    pub packets_per_second: f64,
    /// With `--workers N` (N > 1): the flows each worker's table held.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub flows_per_worker: Vec<usize>,
}

fn basis_name(b: Basis) -> &'static str {
    match b {
        Basis::None => "none",
        Basis::Host => "host",
        Basis::DnsCache => "dns-cache",
        Basis::Protocol => "protocol",
        Basis::Pattern => "pattern",
        Basis::Sdp => "sdp",
        Basis::Port => "port-hint",
        Basis::Ip => "ip",
    }
}

/// Classifies one capture; returns its flows in order of first packet.
/// With `loops` > 1 the capture (read once) is classified that many times
/// from a fresh state, as `ndpiReader -l` does, and only the last run's
/// flows are kept; `summary.seconds` counts processing, not reading.
///
/// `workers` splits the flows as that many appliance workers would: each
/// packet goes to the table of the worker that owns it by the symmetric
/// RSS hash (`dataplane::rss`), and the workers share one DNS answer and
/// announcement cache, as in the appliance. Packets are taken in capture
/// order, so verdicts must not depend on the split.
pub fn classify_file(dpi: &Dpi, path: &Path, loops: u32, workers: usize, summary: &mut Summary) -> Result<Vec<FlowResult>, String> {
    let cap = crate::capture::Capture::open(path)?;
    let workers = workers.max(1);
    // Sized to the capture (a flow needs a packet), within 1 Ki..1 Mi;
    // allocated once, cleared between loops.
    let mut tables: Vec<FlowTable> = (0..workers)
        .map(|_| {
            let mut t = FlowTable::new(cap.packets().clamp(1024, 1 << 20), Timeouts::with_hz(1_000_000_000));
            t.keep_retired();
            t
        })
        .collect();
    let shared = dataplane::dpi::DnsCache::new(4096);
    let mut locals: Vec<Local> = (0..workers)
        .map(|_| {
            let mut l = Local::new(1, 64);
            l.dns = shared.clone();
            l.dns.hz = 1_000_000_000;
            l
        })
        .collect();
    let started = Instant::now();
    let (mut n, mut not_ip) = (0, 0);
    for _ in 0..loops.max(1) {
        for t in &mut tables {
            t.clear();
        }
        // The locals share one cache: clearing one clears it for all.
        for l in &mut locals {
            l.clear();
        }
        (n, not_ip) = classify_once(dpi, &cap, &mut tables, &mut locals, path)?;
    }
    summary.seconds += started.elapsed().as_secs_f64();
    summary.packets += n * loops.max(1) as u64;
    summary.not_ip += not_ip;
    summary.captures += 1;
    if workers > 1 {
        summary.flows_per_worker.resize(workers, 0);
    }
    let mut flows: Vec<Flow> = Vec::new();
    for (w, t) in tables.iter_mut().enumerate() {
        let before = flows.len();
        flows.extend(t.take_retired());
        flows.extend(t.iter().cloned());
        if let Some(n) = summary.flows_per_worker.get_mut(w) {
            *n += flows.len() - before;
        }
    }
    Ok(results(dpi, flows, path, summary))
}

/// One pass over a capture, each packet to its worker's table: packets,
/// not-IP frames.
fn classify_once(
    dpi: &Dpi,
    cap: &crate::capture::Capture,
    tables: &mut [FlowTable],
    locals: &mut [Local],
    path: &Path,
) -> Result<(u64, u64), String> {
    let mut not_ip = 0;
    let mut last_ts = 0;
    let workers = tables.len() as u32;
    let n = cap
        .for_each(|pkt| {
            // Timestamps: never backwards (captures merged from several
            // interfaces can step back a little).
            let now = pkt.ts_ns.max(last_ts);
            last_ts = now;
            let Some((ip, p)) = pkt.ip_header().and_then(|ip| Some((ip, parse_at(pkt.data, ip)?))) else {
                not_ip += 1;
                return;
            };
            let w = match workers {
                1 => 0,
                n => dataplane::rss::ip_hash(pkt.data, ip).map_or(0, |h| dataplane::rss::owner(h, n) as usize),
            };
            let (table, local) = (&mut tables[w], &mut locals[w]);
            let (flow, d) = table.lookup_or_insert(&p.key, p.dir, now);
            account(flow, d, p.ip_len, &p.l4, now);
            if flow.dpi.wants() {
                let payload = &pkt.data[p.payload.0..p.payload.0 + p.payload.1];
                let (st, view) = flow.dpi_parts();
                dpi.inspect(st, view, d, payload, local, now);
            }
        })
        .map_err(|e| format!("{}: {e}", path.display()))?;
    Ok((n, not_ip))
}

fn results(dpi: &Dpi, mut flows: Vec<Flow>, path: &Path, summary: &mut Summary) -> Vec<FlowResult> {
    flows.sort_by_key(|f| f.first_seen);
    let name = path.file_name().map_or_else(|| path.display().to_string(), |n| n.to_string_lossy().into_owned());
    let mut out = Vec::new();
    for mut f in flows {
        let (st, view) = f.dpi_parts();
        dpi.finish(st, view);
        let other = if f.orig == Dir::Lo { Dir::Hi } else { Dir::Lo };
        let ep = |d: Dir| {
            let (a, p) = f.key.end(d);
            match a {
                std::net::IpAddr::V6(v) => format!("[{v}]:{p}"),
                v4 => format!("{v4}:{p}"),
            }
        };
        let app = dpi.app(f.dpi.app);
        let classified = f.dpi.status == Status::Decided && f.dpi.basis != Basis::Port;
        if classified {
            summary.classified += 1;
        } else {
            summary.unknown += 1;
        }
        out.push(FlowResult {
            capture: name.clone(),
            proto: match f.key.proto {
                6 => "TCP",
                17 => "UDP",
                1 => "ICMP",
                58 => "ICMPv6",
                2 => "IGMP",
                _ => "IP",
            },
            client: ep(f.orig),
            server: ep(other),
            app: app.name.clone(),
            category: f.dpi.category.name(),
            protocol: f.dpi.proto.name(),
            host: f.dpi.host.as_str().to_owned(),
            basis: basis_name(f.dpi.basis),
            packets: f.packets[0] + f.packets[1],
            bytes: f.bytes[0] + f.bytes[1],
            decided_after: f.dpi.decided_after,
        });
    }
    summary.flows += out.len();
    out
}

/// Runs `patronus classify`; returns the exit status.
pub fn main(dpi: &Dpi, files: &[PathBuf], format: Format, loops: u32, workers: usize) -> u8 {
    let mut summary = Summary::default();
    let mut all = Vec::new();
    let mut failed = false;
    for f in files {
        match classify_file(dpi, f, loops, workers, &mut summary) {
            Ok(flows) => all.extend(flows),
            Err(e) => {
                eprintln!("patronus: error: {e}");
                failed = true;
            }
        }
    }
    summary.packets_per_second = summary.packets as f64 / summary.seconds.max(1e-9);
    match format {
        Format::Json => {
            let v = serde_json::json!({ "flows": all, "summary": summary });
            println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
        }
        Format::Tsv => {
            println!("capture\tproto\tclient\tserver\tapp\tcategory\tprotocol\thost\tbasis\tpackets\tbytes\tdecided_after");
            for r in &all {
                println!(
                    "{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}",
                    r.capture,
                    r.proto,
                    r.client,
                    r.server,
                    r.app,
                    r.category,
                    r.protocol,
                    r.host,
                    r.basis,
                    r.packets,
                    r.bytes,
                    r.decided_after
                );
            }
        }
        Format::Table => {
            for r in &all {
                println!(
                    "{:<18} {:<6} {:>45} -> {:<45} {:<16} {:<14} {:<10} {:<40} {:>4} pkts",
                    r.capture,
                    r.proto,
                    r.client,
                    r.server,
                    r.app,
                    r.category,
                    r.basis,
                    if r.host.is_empty() { "-" } else { &r.host },
                    r.decided_after
                );
            }
            println!(
                "summary: {} capture(s), {} packets ({} not IP), {} flows: {} classified, {} unknown; {:.3} s, {:.0} packets/s",
                summary.captures,
                summary.packets,
                summary.not_ip,
                summary.flows,
                summary.classified,
                summary.unknown,
                summary.seconds,
                summary.packets_per_second
            );
        }
    }
    if failed {
        1
    } else {
        0
    }
}
