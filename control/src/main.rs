//! `patronus`: the SD-WAN appliance.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use patronus::config::Config;
use patronus::ctl::{self, Request};
use patronus::run::{run, RunOptions};
use patronus::show;

/// Exit status for a configuration that does not validate.
const EXIT_BAD_CONFIG: u8 = 2;

#[derive(Parser)]
#[command(
    name = "patronus",
    version,
    about = "Patronus SD-WAN appliance on DPDK",
    long_about = "Patronus SD-WAN appliance on DPDK.\n\n\
        Exit status: 0 success, 1 runtime failure (EAL, device, mbuf leak) or no appliance to talk to, \
        2 bad configuration or usage (for `reload`: the new config was rejected and the running one stays)."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Print a new private key (WireGuard's format, as `wg genkey`).
    ///
    /// Write it to a file only you can read: `umask 077; patronus genkey >
    /// private.key` (the appliance refuses key files others can read).
    Genkey,
    /// Read a private key on standard input; print its public key (as
    /// `wg pubkey`): `patronus pubkey < private.key`.
    Pubkey,
    /// Start the appliance: EAL, ports and workers, until SIGINT/SIGTERM.
    ///
    /// Prints a one-line summary per [stats] interval_s and a final report.
    /// A second SIGINT exits at once.
    Run {
        /// Configuration file (TOML; see docs/CONFIG.md).
        #[arg(short, long, value_name = "FILE")]
        config: PathBuf,
        /// Stop by itself after this many seconds.
        #[arg(long, value_name = "SECS")]
        duration: Option<f64>,
        /// Log as text (`patronus: message key=value`) or as JSON lines for
        /// journald/Loki [default: $PATRONUS_LOG_FORMAT, else text].
        #[arg(long, value_enum, value_name = "FORMAT")]
        log_format: Option<patronus::log::Format>,
    },
    /// Validate a configuration, then check that this machine can run it,
    /// without starting anything.
    ///
    /// Each problem in the file is printed as FILE:LINE:COLUMN: FIELD:
    /// MESSAGE (exit status 2). Then the machine: the config's lcores
    /// against the CPUs that exist and their isolation, hugepages (reserved,
    /// free, mounted), and for PCI ports the NIC's driver binding, vfio-pci
    /// and the IOMMU. Each finding is ok, warning (runs, but not at its
    /// best) or problem (will not start), with the command that fixes it.
    /// Exit status 1 when there is a problem, 0 otherwise.
    Check {
        /// Configuration file (TOML; see docs/CONFIG.md).
        #[arg(short, long, value_name = "FILE")]
        config: PathBuf,
        /// Validate the file only; do not look at this machine.
        #[arg(long)]
        no_env: bool,
    },
    /// Make a running appliance re-read its config file and apply it.
    ///
    /// Returns once every worker runs the new policy. Fields that cannot
    /// change live (EAL, worker loop, port devices and rings, control
    /// endpoints) are listed as requiring a restart; the rest applies. An
    /// invalid file is rejected whole (exit status 2) and the running
    /// config stays. Same as sending the process SIGHUP, but with an answer.
    Reload {
        #[command(flatten)]
        target: Target,
    },
    /// Classify the flows of pcap/pcapng captures offline, with the same
    /// flow table and DPI the workers run.
    ///
    /// One line per flow: capture, 5-tuple (client first), application,
    /// category, how it was decided (host, dns-cache, protocol, pattern,
    /// sdp, or port-hint: a guess from the port alone, not counted as
    /// classified), Host/SNI, and packets until the decision; then a
    /// summary. Link types: Ethernet (with VLAN tags), Linux SLL/SLL2, raw
    /// IP, BSD loopback. Use it to check your own signatures.
    Classify {
        /// Captures to classify.
        #[arg(required = true, value_name = "FILE")]
        files: Vec<PathBuf>,
        /// Signature files, in order, instead of the built-in set (the
        /// conf/signatures.toml this binary was built with). To add your own
        /// applications to it, pass both: --signatures conf/signatures.toml
        /// --signatures mine.toml.
        #[arg(long = "signatures", value_name = "FILE")]
        signatures: Vec<PathBuf>,
        /// Classify each capture this many times (read once, fresh state
        /// each time) and report the processing rate, like `ndpiReader -l`.
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=100000))]
        loops: u32,
        /// Packets per direction inspected before a flow is given up.
        #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u8).range(1..=64))]
        max_packets: u8,
        /// Split the flows as this many appliance workers would (by the
        /// symmetric RSS hash, one flow table each, one shared DNS cache);
        /// the verdicts must be those of one.
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=256))]
        workers: u16,
        #[arg(long, value_enum, default_value = "table")]
        format: patronus::classify::Format,
    },
    /// Start a new tunnel handshake at once, with one peer or all of
    /// them (new session keys; traffic continues on the old keys until the
    /// handshake completes).
    Rekey {
        /// Peer name from [[tunnel.peer]]; all peers when absent.
        peer: Option<String>,
        #[command(flatten)]
        target: Target,
    },
    /// List the live flows, a page at a time, from every worker's flow
    /// table: the client and server ends, the application DPI found (or
    /// that it is still inspecting), the host name it saw, the policy rule
    /// and its path now, packets each way and idle time. The last line
    /// says how to get the next page.
    Flows {
        /// Flows in this page (1-1000).
        #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u16).range(1..=1000))]
        first: u16,
        /// Start after this cursor (a previous page's last line, or
        /// `end_cursor` in its JSON).
        #[arg(long, value_name = "CURSOR")]
        after: Option<String>,
        #[command(flatten)]
        target: Target,
    },
    /// Take a WAN path out of service for maintenance: every policy rule
    /// on it moves to its next best path at once; the path keeps being
    /// probed. Lasts until `undrain` (reloads keep it; a restart ends it).
    Drain {
        /// Path name from [[path]].
        path: String,
        #[command(flatten)]
        target: Target,
    },
    /// Put a drained path back in service: rules fail back to it after
    /// their hold-down, as after an outage.
    Undrain {
        /// Path name from [[path]].
        path: String,
        #[command(flatten)]
        target: Target,
    },
    /// Print the API's GraphQL schema (SDL), as docs/api.graphql holds it.
    ApiSchema,
    /// Make a bearer token for the API (`[api] tokens_file`).
    ///
    /// Prints the token once, on standard output, and appends its line
    /// (name, role, SHA-256 of the token) to FILE, creating it mode 0600.
    /// The file never holds the token itself; a lost token is replaced,
    /// not recovered.
    ApiToken {
        /// The token's name, as audit events and logs show it.
        #[arg(long)]
        name: String,
        /// read: queries and subscriptions; admin: also mutations (reload,
        /// rekey, drain).
        #[arg(long, value_parser = ["read", "admin"])]
        role: String,
        /// The token file to append to.
        #[arg(long, value_name = "FILE")]
        file: PathBuf,
    },
    /// Be the LAN hosts of a lab: replay a capture into DPDK ports at a
    /// fixed rate.
    ///
    /// Each --port is one LAN, with the --hosts prefix behind it and its
    /// --gateway (the appliance's LAN address), given in the same order.
    /// Every IPv4 packet of the capture leaves by the port whose prefix holds
    /// its source address, so both directions of a captured conversation
    /// cross the appliances between the LANs. Like a host, it resolves the
    /// gateway by ARP first, answers ARP for its prefix, and counts the
    /// IPv4 packets that arrive for it. Ends with what was sent and
    /// received per port (also as JSON with --summary). Used by
    /// scripts/demo.sh.
    Replay {
        /// The capture (pcap or pcapng, Ethernet).
        #[arg(long, value_name = "FILE")]
        pcap: PathBuf,
        /// A DPDK device for one LAN, e.g. net_memif0,role=server,socket=/tmp/lan-a.sock,socket-abstract=no.
        #[arg(long = "port", value_name = "DEVARGS", required = true)]
        ports: Vec<String>,
        /// The hosts behind each port, e.g. 10.1.0.0/24 (one per --port, in order).
        #[arg(long = "hosts", value_name = "PREFIX", required = true)]
        hosts: Vec<String>,
        /// The gateway of each port's hosts, e.g. 10.1.0.1 (one per --port).
        #[arg(long = "gateway", value_name = "IPV4", required = true)]
        gateways: Vec<std::net::Ipv4Addr>,
        /// Packets per second over all ports.
        #[arg(long, default_value_t = 2000, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
        pps: u32,
        /// Times to replay the capture; 0 repeats until --duration or a signal.
        #[arg(long, default_value_t = 1)]
        loops: u32,
        /// Stop sending after this many seconds.
        #[arg(long, value_name = "SECS")]
        duration: Option<f64>,
        /// Keep counting arrivals this long after the last packet.
        #[arg(long, value_name = "SECS", default_value_t = 1.0)]
        drain: f64,
        /// EAL --file-prefix (distinct from the appliances').
        #[arg(long, default_value = "patronus-replay")]
        file_prefix: String,
        /// The CPU to run on.
        #[arg(long, default_value_t = 0)]
        cpu: usize,
        /// Queues each way per port: as many as the appliance's port has
        /// (one per worker and one for its control thread).
        #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u16).range(1..=16))]
        queues: u16,
        /// Write the summary as JSON to this file.
        #[arg(long, value_name = "FILE")]
        summary: Option<PathBuf>,
    },
    /// Show the running appliance's state.
    ///
    /// WHAT is one of: status, ports, counters (per core and port), drops
    /// (by reason, per core and port), workers, latency (p50..max of packet
    /// residence, loop iterations and stage cycles), neighbors, flows (the
    /// flow tables), apps (flows decided per application, the policy rule they take
    /// and its path now), peers (tunnel
    /// peers, like `wg show`: endpoint, latest handshake, transfer), qos
    /// (per shaped port and class: queue depth, sent, drops by reason),
    /// paths (per WAN path: state, health, RTT p50/p95/p99, jitter, loss,
    /// availability, traffic, the policy rules using it, failovers), bfd
    /// (BFD sessions: state, timers, diagnostics), events (the latest
    /// failovers, path, BFD and handshake changes, reloads, drains),
    /// history (15 minutes of each path's and port's figures, JSON), config
    /// (the running config's text, secrets redacted).
    Show {
        /// What to show.
        #[arg(value_parser = ["status", "ports", "counters", "drops", "workers", "latency", "neighbors", "flows", "apps", "paths", "bfd", "peers", "qos", "events", "history", "config"])]
        what: String,
        #[command(flatten)]
        target: Target,
    },
}

/// Which appliance to talk to.
#[derive(Args)]
struct Target {
    /// The running appliance's config file: its [control] socket is used
    /// (read even when the file is broken, so `reload` reaches the
    /// appliance, which refuses it, logs and counts).
    #[arg(short, long, value_name = "FILE", conflicts_with = "socket")]
    config: Option<PathBuf>,
    /// The control socket [default: the one appliance running, found in
    /// /run/patronus/].
    #[arg(short, long, value_name = "PATH")]
    socket: Option<PathBuf>,
    /// Print the reply as JSON instead of a table.
    #[arg(long)]
    json: bool,
}

/// Sends a request to the appliance `target` names and prints the reply.
fn call(target: &Target, req: Request) -> ExitCode {
    let socket = match ctl::locate(target.socket.as_deref(), target.config.as_deref(), Path::new(ctl::RUN_DIR)) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("patronus: error: {e}");
            return ExitCode::FAILURE;
        }
    };
    // Reload waits for the workers; allow for the largest reload_timeout_ms.
    let reply = match ctl::request(&socket, &req, Duration::from_secs(70)) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("patronus: error: {e}");
            return ExitCode::FAILURE;
        }
    };
    let ok = reply["ok"].as_bool().unwrap_or(false);
    if target.json {
        println!("{}", serde_json::to_string_pretty(&reply).unwrap_or_default());
    } else if ok {
        print!("{}", show::render(&req, &reply));
    } else {
        eprintln!("patronus: error: {}", reply["error"].as_str().unwrap_or("request failed"));
        for line in reply["errors"].as_array().into_iter().flatten() {
            eprintln!("patronus: error: {}", line.as_str().unwrap_or_default());
        }
    }
    match (ok, req) {
        (true, _) => ExitCode::SUCCESS,
        (false, Request::Reload) if reply.get("errors").is_some() => ExitCode::from(EXIT_BAD_CONFIG),
        (false, _) => ExitCode::FAILURE,
    }
}

fn load(path: &Path) -> Result<Config, ExitCode> {
    Config::load(path).map_err(|e| {
        for line in e.to_string().lines() {
            patronus::log::error(line);
        }
        ExitCode::from(EXIT_BAD_CONFIG)
    })
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Check { config, no_env } => match load(&config) {
            Ok(c) => {
                println!("{}: OK ({} port(s), {} worker(s))", config.display(), c.port.len(), c.eal.worker_lcores.len());
                if no_env {
                    return ExitCode::SUCCESS;
                }
                let (text, bad) = patronus::envcheck::report(&patronus::envcheck::inspect(&c, &patronus::envcheck::here()));
                print!("{text}");
                if bad {
                    ExitCode::FAILURE
                } else {
                    ExitCode::SUCCESS
                }
            }
            Err(code) => code,
        },
        Command::Run { config, duration, log_format } => {
            patronus::log::init(log_format.unwrap_or_else(patronus::log::Format::from_env));
            let cfg = match load(&config) {
                Ok(c) => c,
                Err(code) => return code,
            };
            let duration = match duration.map(Duration::try_from_secs_f64) {
                None => None,
                Some(Ok(d)) => Some(d),
                Some(Err(_)) => {
                    patronus::log::error("--duration must be a non-negative number of seconds");
                    return ExitCode::from(EXIT_BAD_CONFIG);
                }
            };
            ExitCode::from(run(&cfg, &config, &RunOptions { duration }) as u8)
        }
        Command::Classify { files, signatures, max_packets, format, loops, workers } => {
            let paths: Vec<&Path> = signatures.iter().map(PathBuf::as_path).collect();
            let set = if paths.is_empty() {
                let mut set = dataplane::dpi::SignatureSet::default();
                let b = patronus::config::signatures::BUILTIN;
                patronus::config::signatures::parse_into(Path::new(patronus::config::signatures::BUILTIN_NAME), b, &mut set).map(|_| set)
            } else {
                patronus::config::signatures::load(&paths)
            };
            let set = match set {
                Ok(s) => s,
                Err(e) => {
                    for line in e.to_string().lines() {
                        eprintln!("patronus: error: {line}");
                    }
                    return ExitCode::from(EXIT_BAD_CONFIG);
                }
            };
            let dpi = match dataplane::dpi::Dpi::compile(&set, max_packets) {
                Ok(d) => d,
                Err(e) => {
                    eprintln!("patronus: error: signatures: app[{}].{}: {}", e.app, e.field, e.msg);
                    return ExitCode::from(EXIT_BAD_CONFIG);
                }
            };
            ExitCode::from(patronus::classify::main(&dpi, &files, format, loops, workers as usize))
        }
        Command::Genkey => {
            // Like wg: warn when the key goes to a file others could read.
            let mut st: libc::stat = unsafe { std::mem::zeroed() };
            // SAFETY: fd 1 and a valid stat buffer.
            if unsafe { libc::fstat(1, &mut st) } == 0 && st.st_mode & libc::S_IFMT == libc::S_IFREG && st.st_mode & 0o077 != 0 {
                eprintln!("patronus: warning: writing a private key to a file others can read; set `umask 077` first");
            }
            match patronus::config::keys::generate() {
                Ok(k) => {
                    println!("{}", k.to_base64());
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("patronus: error: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Pubkey => {
            let mut line = String::new();
            let _ = std::io::Read::read_to_string(&mut std::io::Read::take(std::io::stdin(), 4096), &mut line);
            match patronus::config::keys::PrivateKey::from_base64(&line) {
                Some(k) => {
                    println!("{}", k.public_base64());
                    ExitCode::SUCCESS
                }
                None => {
                    eprintln!("patronus: error: standard input is not a private key: expected 44 characters of base64 (32 bytes), as `wg genkey` writes");
                    ExitCode::from(EXIT_BAD_CONFIG)
                }
            }
        }
        Command::Replay { pcap, ports, hosts, gateways, pps, loops, duration, drain, file_prefix, cpu, summary, queues } => {
            if hosts.len() != ports.len() || gateways.len() != ports.len() {
                eprintln!(
                    "patronus: error: give one --hosts and one --gateway per --port ({} port(s), {} hosts, {} gateways)",
                    ports.len(),
                    hosts.len(),
                    gateways.len()
                );
                return ExitCode::from(EXIT_BAD_CONFIG);
            }
            let mut sides = Vec::new();
            for ((device, h), gateway) in ports.into_iter().zip(&hosts).zip(gateways) {
                match patronus::replay::parse_prefix(h) {
                    Ok((prefix, len)) => sides.push(patronus::replay::Side { device, prefix, len, gateway }),
                    Err(e) => {
                        eprintln!("patronus: error: --hosts {e}");
                        return ExitCode::from(EXIT_BAD_CONFIG);
                    }
                }
            }
            let secs = |x: f64| Duration::try_from_secs_f64(x).ok();
            let (duration, drain) = match (duration.map(secs), secs(drain)) {
                (Some(None), _) | (_, None) => {
                    eprintln!("patronus: error: --duration and --drain must be non-negative numbers of seconds");
                    return ExitCode::from(EXIT_BAD_CONFIG);
                }
                (d, Some(drain)) => (d.flatten(), drain),
            };
            let o = patronus::replay::Options { pcap, sides, pps, loops, duration, drain, file_prefix, cpu, summary, queues };
            ExitCode::from(patronus::replay::main(&o))
        }
        Command::Reload { target } => call(&target, Request::Reload),
        Command::Show { what, target } => call(&target, Request::Show { what }),
        Command::Rekey { peer, target } => call(&target, Request::Rekey { peer }),
        Command::Flows { first, after, target } => call(&target, Request::Flows { after, first: first.into() }),
        Command::Drain { path, target } => call(&target, Request::Drain { path, drain: true }),
        Command::Undrain { path, target } => call(&target, Request::Drain { path, drain: false }),
        Command::ApiSchema => {
            print!("{}", patronus::api::schema::sdl());
            ExitCode::SUCCESS
        }
        Command::ApiToken { name, role, file } => {
            let role = if role == "admin" { patronus::api::auth::Role::Admin } else { patronus::api::auth::Role::Read };
            match patronus::api::auth::append_token(&file, &name, role) {
                Ok(token) => {
                    println!("{token}");
                    eprintln!("patronus: token {name} ({}) added to {}; it is shown only now", role.name(), file.display());
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("patronus: error: {e}");
                    ExitCode::from(EXIT_BAD_CONFIG)
                }
            }
        }
    }
}
