//! Helpers for the end-to-end tests: they drive the real `patronus` binary
//! as a subprocess (EAL can start once per process), each run with its own
//! DPDK `--file-prefix` so tests run in parallel.
#![allow(dead_code)]

pub mod browser;
mod fixture;
pub mod monitoring;
pub use fixture::TwoPorts;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

/// The `patronus` binary cargo built for this test run.
pub fn patronus() -> Command {
    Command::new(env!("CARGO_BIN_EXE_patronus"))
}

/// A scratch directory under the target dir, removed on drop.
pub struct Scratch(pub PathBuf);

impl Scratch {
    pub fn new(name: &str) -> Scratch {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("scratch dir");
        Scratch(dir)
    }

    pub fn path(&self, file: &str) -> PathBuf {
        self.0.join(file)
    }

    pub fn write(&self, file: &str, text: &str) -> PathBuf {
        let p = self.path(file);
        std::fs::File::create(&p).and_then(|mut f| f.write_all(text.as_bytes())).expect("write");
        p
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

/// A DPDK runtime prefix no other test (or test run) uses.
pub fn prefix(test: &str) -> String {
    format!("t{}-{test}", std::process::id())
}

/// The control socket of the test appliance with DPDK prefix `prefix`.
pub fn socket_path(prefix: &str) -> PathBuf {
    std::env::temp_dir().join("patronus-tests").join(format!("{prefix}.sock"))
}

/// The `[control]` section of a test appliance: its own socket, and
/// metrics on a free port (so tests run in parallel).
pub fn control_section(prefix: &str) -> String {
    format!("\n[control]\nsocket = \"{}\"\nmetrics_listen = \"127.0.0.1:0\"\n", socket_path(prefix).display())
}

/// Records that a test could not run: printed, and appended to
/// `$PATRONUS_SKIP_LOG` so `scripts/test.sh` lists it at the end.
pub fn skip(test: &str, reason: &str) {
    let line = format!("SKIPPED {test}: {reason}");
    eprintln!("{line}");
    if let Ok(path) = std::env::var("PATRONUS_SKIP_LOG") {
        if let Ok(mut f) = std::fs::OpenOptions::new().create(true).append(true).open(path) {
            let _ = writeln!(f, "{line}");
        }
    }
}

/// Records something a test checks for but a later feature provides
/// (listed by `scripts/test.sh`, not counted as a skip).
pub fn pending(what: &str, why: &str) {
    let line = format!("PENDING {what}: {why}");
    eprintln!("{line}");
    if let Ok(path) = std::env::var("PATRONUS_SKIP_LOG") {
        if let Ok(mut f) = std::fs::OpenOptions::new().create(true).append(true).open(path) {
            let _ = writeln!(f, "{line}");
        }
    }
}

/// Runs a command to completion, killing it after `limit`.
pub fn run_with_timeout(cmd: &mut Command, limit: Duration) -> Output {
    let child = cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("spawn");
    wait_output(child, limit)
}

/// Collects a child's output, killing it after `limit`.
pub fn wait_output(mut child: Child, limit: Duration) -> Output {
    let start = Instant::now();
    loop {
        if child.try_wait().expect("wait").is_some() {
            return child.wait_with_output().expect("output");
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let out = child.wait_with_output().expect("output");
            panic!(
                "timed out after {limit:?}\nstdout:\n{}\nstderr:\n{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Sends a signal to a child.
pub fn signal(child: &Child, sig: i32) {
    // SAFETY: kill has no memory-safety preconditions.
    assert_eq!(unsafe { libc::kill(child.id() as i32, sig) }, 0);
}

pub fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Exit code, or a description of the signal that killed the process.
pub fn code(status: ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(c), _) => c.to_string(),
        (None, Some(s)) => format!("signal {s}"),
        _ => "?".into(),
    }
}

/// The numbers on the final-report row of `port`:
/// rx_packets, nic_rx_bytes, tx_packets, nic_tx_bytes, drops, nic_missed, nic_nombuf, punted, icmp_errs.
pub fn report_row(stdout: &str, port: &str) -> Vec<u64> {
    let line = stdout
        .lines()
        .rev()
        .find(|l| l.strip_prefix(port).is_some_and(|rest| rest.starts_with(' ')))
        .unwrap_or_else(|| panic!("no report row for {port} in:\n{stdout}"));
    line.split_whitespace().skip(1).map(|n| n.parse().expect("number")).collect()
}

/// Why this machine cannot run network-namespace tests, if it cannot.
pub fn netns_unavailable() -> Option<String> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Some("needs root (network namespaces, veth)".into());
    }
    for tool in ["ip", "ping", "ethtool"] {
        if Command::new(tool).arg("-V").output().is_err() && Command::new(tool).arg("--version").output().is_err() {
            return Some(format!("`{tool}` is not installed (scripts/setup.sh installs it)"));
        }
    }
    static PROBES: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = PROBES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let probe = format!("ptprobe{}-{n}", std::process::id());
    let ok = Command::new("ip").args(["netns", "add", &probe]).status().map(|s| s.success()).unwrap_or(false);
    let _ = Command::new("ip").args(["netns", "del", &probe]).status();
    (!ok).then(|| "cannot create network namespaces here".into())
}

/// Runs a shell command, panicking with its output if it fails.
pub fn sh(cmd: &str) -> String {
    let out = Command::new("sh").arg("-c").arg(cmd).output().expect("sh");
    assert!(out.status.success(), "`{cmd}` failed:\n{}{}", text(&out.stdout), text(&out.stderr));
    text(&out.stdout)
}

/// Runs a shell command and returns (success, stdout+stderr).
pub fn try_sh(cmd: &str) -> (bool, String) {
    let out = Command::new("sh").arg("-c").arg(cmd).output().expect("sh");
    (out.status.success(), format!("{}{}", text(&out.stdout), text(&out.stderr)))
}

/// Host A and host B in their own namespaces, each joined by a veth pair
/// to the appliance's namespace: A (10.1.0.2, fd01::2) -- lan0 [appliance]
/// wan0 -- B (10.2.0.2, fd02::2). Torn down on drop.
pub struct Lab {
    /// Namespace names: host A, host B, the appliance.
    pub a: String,
    pub b: String,
    pub r: String,
    /// Interface names: A's, B's, and the appliance's two.
    pub a0: String,
    pub b0: String,
    pub a1: String,
    pub b1: String,
}

impl Lab {
    pub fn new(tag: &str) -> Lab {
        let p = format!("{tag}{}", std::process::id() % 10000);
        let lab = Lab {
            a: format!("{p}a"),
            b: format!("{p}b"),
            r: format!("{p}r"),
            a0: format!("{p}a0"),
            b0: format!("{p}b0"),
            a1: format!("{p}a1"),
            b1: format!("{p}b1"),
        };
        lab.teardown();
        let (a, b, r) = (&lab.a, &lab.b, &lab.r);
        for ns in [a, b, r] {
            sh(&format!("ip netns add {ns} && ip netns exec {ns} ip link set lo up"));
        }
        sh(&format!("ip link add {} type veth peer name {}", lab.a0, lab.a1));
        sh(&format!("ip link add {} type veth peer name {}", lab.b0, lab.b1));
        for (dev, ns) in [(&lab.a0, a), (&lab.a1, r), (&lab.b0, b), (&lab.b1, r)] {
            sh(&format!("ip link set {dev} netns {ns}"));
            // Checksums and segmentation in software: frames cross the
            // appliance exactly as they are on the wire.
            let _ = try_sh(&format!("ip netns exec {ns} ethtool -K {dev} tx off rx off tso off gso off gro off"));
            sh(&format!("ip netns exec {ns} ip link set {dev} up"));
        }
        // The appliance's kernel side of its veths stays out of the way.
        sh(&format!("ip netns exec {r} sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1"));
        for (ns, dev, v4, v6, gw4, gw6) in [
            (a, &lab.a0, "10.1.0.2/24", "fd01::2/64", "10.1.0.1", "fd01::1"),
            (b, &lab.b0, "10.2.0.2/24", "fd02::2/64", "10.2.0.1", "fd02::1"),
        ] {
            sh(&format!(
                "ip netns exec {ns} ip addr add {v4} dev {dev} && ip netns exec {ns} ip -6 addr add {v6} dev {dev} nodad && \
                 ip netns exec {ns} ip route add default via {gw4} && ip netns exec {ns} ip -6 route add default via {gw6}"
            ));
        }
        lab
    }

    /// The appliance config for this lab (af_packet on the appliance's veths).
    /// `PATRONUS_LAB_WORKERS=N` runs it with N workers (beyond the CPUs
    /// they share them), each port with a queue more than the workers.
    pub fn config(&self, prefix: &str) -> String {
        let workers: u32 = std::env::var("PATRONUS_LAB_WORKERS").ok().and_then(|n| n.parse().ok()).unwrap_or(1).max(1);
        let q = (workers + 1).max(2);
        let mut t = TwoPorts::appliance(prefix);
        if workers > 1 {
            let cpus = std::thread::available_parallelism().map_or(1, |n| n.get()) as u32;
            let lcores: Vec<String> = (1..=workers).map(|l| l.to_string()).collect();
            let map: Vec<String> = (1..=workers).filter(|&l| l >= cpus).map(|l| format!("{l}@{}", l % cpus)).collect();
            t = t.main_lcore(0).eal(&format!("worker_lcores = [{}]", lcores.join(", "))).eal(&format!("cpu_map = \"{}\"", map.join(",")));
        }
        t.worker("poll_mode = \"adaptive\"")
            .devices(&format!("net_af_packet0,iface={},qpairs={q}", self.a1), &format!("net_af_packet1,iface={},qpairs={q}", self.b1))
            .routed()
            .lan(&format!("rx_queues = {q}\naddresses = [\"10.1.0.1/24\", \"fd01::1/64\"]"))
            .wan(&format!("rx_queues = {q}\naddresses = [\"10.2.0.1/24\", \"fd02::1/64\"]"))
            .extra(&control_section(prefix))
            .toml()
    }

    /// Starts the appliance in its namespace and waits until it runs.
    pub fn start(&self, config: &Path) -> Child {
        let mut child = Command::new("ip")
            .args(["netns", "exec", &self.r, env!("CARGO_BIN_EXE_patronus"), "run", "--config"])
            .arg(config)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn patronus");
        // Wait for the first summary line's worth of time, or an early exit.
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(3) {
            if let Some(st) = child.try_wait().expect("wait") {
                let out = child.wait_with_output().unwrap();
                panic!("appliance exited early ({st}):\n{}{}", text(&out.stdout), text(&out.stderr));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        child
    }

    pub fn in_a(&self, cmd: &str) -> (bool, String) {
        try_sh(&format!("ip netns exec {} {cmd}", self.a))
    }

    pub fn in_b(&self, cmd: &str) -> (bool, String) {
        try_sh(&format!("ip netns exec {} {cmd}", self.b))
    }

    fn teardown(&self) {
        for ns in [&self.a, &self.b, &self.r] {
            let _ = Command::new("ip").args(["netns", "pids", ns]).output().map(|o| {
                for pid in text(&o.stdout).split_whitespace() {
                    let _ = Command::new("kill").arg("-9").arg(pid).status();
                }
            });
            let _ = Command::new("ip").args(["netns", "del", ns]).stderr(Stdio::null()).status();
        }
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        self.teardown();
    }
}

/// Stops a running appliance with SIGINT and returns its output.
pub fn stop(child: Child) -> Output {
    signal(&child, libc::SIGINT);
    wait_output(child, Duration::from_secs(30))
}

/// Sends raw frames out of interface `dev` inside namespace `ns` (AF_PACKET,
/// from a thread that joins the namespace). Returns how many the kernel
/// accepted (it refuses some impossible frames, e.g. shorter than a header).
pub fn inject(ns: &str, dev: &str, frames: Vec<Vec<u8>>) -> usize {
    let (ns, dev) = (ns.to_owned(), dev.to_owned());
    std::thread::spawn(move || {
        let f = std::fs::File::open(format!("/var/run/netns/{ns}")).expect("netns file");
        use std::os::fd::AsRawFd;
        // SAFETY: plain syscalls on owned descriptors; this thread only.
        unsafe {
            assert_eq!(libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET), 0, "setns");
            let s = libc::socket(libc::AF_PACKET, libc::SOCK_RAW, 0);
            assert!(s >= 0, "AF_PACKET socket");
            let name = std::ffi::CString::new(dev).unwrap();
            let ifindex = libc::if_nametoindex(name.as_ptr());
            assert!(ifindex > 0, "no such interface");
            let mut addr: libc::sockaddr_ll = std::mem::zeroed();
            addr.sll_family = libc::AF_PACKET as u16;
            addr.sll_ifindex = ifindex as i32;
            addr.sll_halen = 6;
            let mut sent = 0;
            for fr in &frames {
                let n = libc::sendto(
                    s,
                    fr.as_ptr().cast(),
                    fr.len(),
                    0,
                    (&addr as *const libc::sockaddr_ll).cast(),
                    std::mem::size_of::<libc::sockaddr_ll>() as u32,
                );
                if n == fr.len() as isize {
                    sent += 1;
                }
            }
            libc::close(s);
            sent
        }
    })
    .join()
    .expect("inject thread")
}

/// Drop counts by reason from the appliance's final report.
pub fn drops_by_reason(stdout: &str) -> std::collections::HashMap<String, u64> {
    let mut m = std::collections::HashMap::new();
    let mut on = false;
    for l in stdout.lines() {
        if l.starts_with("drops by reason:") {
            on = true;
            continue;
        }
        if on {
            let f: Vec<&str> = l.split_whitespace().collect();
            if l.starts_with("  ") && f.len() == 3 {
                *m.entry(f[1].to_owned()).or_insert(0) += f[2].parse::<u64>().unwrap_or(0);
            } else {
                break;
            }
        }
    }
    m
}

/// A `patronus run` in the background whose output is collected as it
/// comes, so a test can wait for a line.
pub struct Appliance {
    child: Option<Child>,
    out: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
    readers: Vec<std::thread::JoinHandle<()>>,
    pub socket: PathBuf,
}

impl Appliance {
    /// Starts `patronus run --config config` and waits until it runs.
    pub fn start(config: &Path, socket: PathBuf) -> Appliance {
        Self::start_cmd(patronus().arg("run").arg("--config").arg(config), socket)
    }

    pub fn start_cmd(cmd: &mut Command, socket: PathBuf) -> Appliance {
        let mut child = cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("spawn patronus");
        let out = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let mut readers = Vec::new();
        let streams: Vec<Box<dyn std::io::Read + Send>> =
            vec![Box::new(child.stdout.take().unwrap()), Box::new(child.stderr.take().unwrap())];
        for s in streams {
            let out = out.clone();
            readers.push(std::thread::spawn(move || {
                use std::io::BufRead;
                for line in std::io::BufReader::new(s).lines().map_while(Result::ok) {
                    out.lock().unwrap().push(line);
                }
            }));
        }
        let mut app = Appliance { child: Some(child), out, readers, socket };
        app.wait_for("patronus: running", Duration::from_secs(30));
        app
    }

    /// Everything printed so far (stdout and stderr interleaved by line).
    pub fn output(&self) -> String {
        self.out.lock().unwrap().join("\n")
    }

    /// Waits until a printed line contains `needle`; returns that line.
    pub fn wait_for(&mut self, needle: &str, limit: Duration) -> String {
        let start = Instant::now();
        loop {
            if let Some(l) = self.out.lock().unwrap().iter().find(|l| l.contains(needle)) {
                return l.clone();
            }
            if let Some(st) = self.child.as_mut().unwrap().try_wait().expect("wait") {
                std::thread::sleep(Duration::from_millis(100));
                panic!("patronus exited ({st}) before printing {needle:?}:\n{}", self.output());
            }
            assert!(start.elapsed() < limit, "no {needle:?} within {limit:?}:\n{}", self.output());
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The metrics endpoint's URL (`http://ADDR/metrics`).
    pub fn metrics_url(&mut self) -> String {
        let line = self.wait_for("patronus: metrics on ", Duration::from_secs(5));
        line.split("metrics on ").nth(1).unwrap().trim().to_owned()
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().unwrap().id()
    }

    pub fn signal(&self, sig: i32) {
        signal(self.child.as_ref().unwrap(), sig);
    }

    /// Runs `patronus ARGS --socket SOCKET`; returns (exit code, stdout, stderr).
    pub fn cli(&self, args: &[&str]) -> (i32, String, String) {
        let out = run_with_timeout(patronus().args(args).arg("--socket").arg(&self.socket), Duration::from_secs(60));
        (out.status.code().unwrap_or(-1), text(&out.stdout), text(&out.stderr))
    }

    /// `patronus show WHAT --json`, parsed.
    pub fn show(&self, what: &str) -> serde_json::Value {
        let (code, out, err) = self.cli(&["show", what, "--json"]);
        assert_eq!(code, 0, "show {what}: {err}");
        let v: serde_json::Value = serde_json::from_str(&out).expect("JSON");
        v[what].clone()
    }

    /// Stops with SIGINT; returns (exit code, everything printed).
    pub fn stop(mut self) -> (Option<i32>, String) {
        let child = self.child.take().unwrap();
        signal(&child, libc::SIGINT);
        let out = wait_output(child, Duration::from_secs(60));
        for r in self.readers.drain(..) {
            let _ = r.join();
        }
        (out.status.code(), self.output())
    }
}

impl Drop for Appliance {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
            eprintln!("appliance output:\n{}", self.output());
        }
    }
}

/// A plain HTTP GET of `url` (http://HOST:PORT/PATH); returns the body.
pub fn http_get(url: &str) -> Result<String, String> {
    use std::io::{Read, Write};
    let rest = url.strip_prefix("http://").ok_or("not http")?;
    let (host, path) = rest.split_once('/').map_or((rest, "/".to_owned()), |(h, p)| (h, format!("/{p}")));
    let mut s = std::net::TcpStream::connect(host).map_err(|e| format!("{url}: {e}"))?;
    s.set_read_timeout(Some(Duration::from_secs(10))).ok();
    write!(s, "GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n").map_err(|e| e.to_string())?;
    let mut buf = String::new();
    s.read_to_string(&mut buf).map_err(|e| e.to_string())?;
    let (head, body) = buf.split_once("\r\n\r\n").ok_or("no header end")?;
    if !head.starts_with("HTTP/1.1 200") {
        return Err(format!("{url}: {}", head.lines().next().unwrap_or("")));
    }
    Ok(body.to_owned())
}

/// The value of a metric line `name{labels} value` in an exposition.
pub fn metric(exposition: &str, series: &str) -> Option<f64> {
    exposition
        .lines()
        .find(|l| l.starts_with(series) && l[series.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
}
