//! `patronus`: the SD-WAN appliance.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use patronus::config::Config;
use patronus::run::{run, RunOptions};

/// Exit status for a configuration that does not validate.
const EXIT_BAD_CONFIG: u8 = 2;

#[derive(Parser)]
#[command(
    name = "patronus",
    version,
    about = "Patronus SD-WAN appliance on DPDK",
    long_about = "Patronus SD-WAN appliance on DPDK.\n\n\
        Exit status: 0 success, 1 runtime failure (EAL, device, mbuf leak), 2 bad configuration or usage."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
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
    },
    /// Validate a configuration without starting anything.
    ///
    /// Exit status 0 when the file is valid, 2 otherwise; each problem is
    /// printed as FILE:LINE:COLUMN: FIELD: MESSAGE.
    Check {
        /// Configuration file (TOML; see docs/CONFIG.md).
        #[arg(short, long, value_name = "FILE")]
        config: PathBuf,
    },
}

fn load(path: &Path) -> Result<Config, ExitCode> {
    Config::load(path).map_err(|e| {
        for line in e.to_string().lines() {
            eprintln!("patronus: error: {line}");
        }
        ExitCode::from(EXIT_BAD_CONFIG)
    })
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Check { config } => match load(&config) {
            Ok(c) => {
                println!("{}: OK ({} port(s), {} worker(s))", config.display(), c.port.len(), c.eal.worker_lcores.len());
                ExitCode::SUCCESS
            }
            Err(code) => code,
        },
        Command::Run { config, duration } => {
            let cfg = match load(&config) {
                Ok(c) => c,
                Err(code) => return code,
            };
            let duration = match duration.map(Duration::try_from_secs_f64) {
                None => None,
                Some(Ok(d)) => Some(d),
                Some(Err(_)) => {
                    eprintln!("patronus: error: --duration must be a non-negative number of seconds");
                    return ExitCode::from(EXIT_BAD_CONFIG);
                }
            };
            ExitCode::from(run(&cfg, &config, &RunOptions { duration }) as u8)
        }
    }
}
