//! Compiles a validated config into the snapshots the workers read: the
//! forwarding routes, and the classification (the signatures, each
//! application's QoS class, the policy's rules). Start-up and reload build
//! them with the same functions; [`Publishers`] hands their readers to
//! each worker's chain.

use std::path::{Path, PathBuf};

use dataplane::dpi::{AppIds, Dpi};
use dataplane::flow::stage::DpiSnapshot;
use dataplane::router::fib::Routes;
use dataplane::wire::EthernetAddress;

use dataplane::chain;
use dataplane::path::Steering;
use dataplane::rcu::{Publisher, Reader};
use dataplane::router::fib::Fib;
use dataplane::tunnel::stage::Tunnels;

use crate::config::{Config, ConfigError, ConfigErrors};
use crate::paths::PathControl;
use crate::slowpath::SlowPath;
use crate::tunnel::TunnelControl;

/// The routes of the forwarding snapshot.
pub fn routes(cfg: &Config, macs: &[EthernetAddress]) -> Result<Routes, String> {
    Ok(cfg.routes(macs)?.with_xconnect(&cfg.forward_pairs()).with_conf(cfg.router_conf()))
}

/// The classification snapshot: the signatures `[dpi]` names (none when
/// DPI is off), the classes `[qos]` gives applications, and `[[policy]]`
/// compiled as its `generation`, prepared for `workers` workers.
/// `ids` keeps each application's id across reloads.
pub fn classification(cfg: &Config, path: &Path, ids: &mut AppIds, generation: u32, workers: usize) -> Result<DpiSnapshot, ConfigErrors> {
    let mut dpi = match cfg.dpi.enabled {
        true => cfg.dpi.compile(&config_dir(path), ids)?,
        false => Dpi::compile(&Default::default(), 1).expect("the empty set compiles"),
    };
    cfg.qos.apply(&mut dpi);
    let policy = crate::config::paths::compile_policy(&cfg.policy, &dpi, generation);
    dpi.set_workers(workers)
        .map_err(|e| ConfigErrors(vec![ConfigError { file: path.to_owned(), line: 0, column: 0, field: "dpi".into(), message: e }]))?;
    Ok(DpiSnapshot { dpi, policy })
}

/// The `[dpi]`, `[qos]` and `[[policy]]` options and the text of every
/// signature file they name: a reload recompiles the classification only
/// when this changes.
pub fn classification_sources(cfg: &Config, path: &Path) -> String {
    let dir = config_dir(path);
    let mut key = format!("{:?}{:?}{:?}", cfg.dpi, cfg.qos, cfg.policy);
    for f in cfg.dpi.files(&dir) {
        key.push('\0');
        key.push_str(&std::fs::read_to_string(&f).unwrap_or_else(|e| format!("unreadable: {e}")));
    }
    key
}

/// The folder relative paths in the config file are read from.
pub fn config_dir(path: &Path) -> PathBuf {
    path.parent().map(Path::to_path_buf).unwrap_or_default()
}

/// The snapshot readers a worker's chain takes, from the control thread's
/// publishers.
pub struct Publishers<'a> {
    pub slowpath: &'a SlowPath,
    pub tunnel: &'a TunnelControl,
    pub paths: &'a PathControl,
    pub dpi: &'a Publisher<DpiSnapshot>,
}

impl chain::Snapshots for Publishers<'_> {
    fn tunnels(&self) -> Reader<Tunnels> {
        self.tunnel.reader()
    }
    fn fib(&self) -> Reader<Fib> {
        self.slowpath.reader()
    }
    fn steering(&self) -> Reader<Steering> {
        self.paths.reader()
    }
    fn classification(&self) -> Reader<DpiSnapshot> {
        self.dpi.reader()
    }
}
