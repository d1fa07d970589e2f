//! Helpers for the end-to-end tests: they drive the real `patronus` binary
//! as a subprocess (EAL can start once per process), each run with its own
//! DPDK `--file-prefix` so tests run in parallel.
#![allow(dead_code)]

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
/// rx_packets, nic_rx_bytes, tx_packets, nic_tx_bytes, drops, nic_missed, nic_nombuf.
pub fn report_row(stdout: &str, port: &str) -> Vec<u64> {
    let line = stdout
        .lines()
        .rev()
        .find(|l| l.split_whitespace().next() == Some(port))
        .unwrap_or_else(|| panic!("no report row for {port} in:\n{stdout}"));
    line.split_whitespace().skip(1).map(|n| n.parse().expect("number")).collect()
}
