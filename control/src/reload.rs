//! What a reload changes. The running and the new config are compared
//! field by field (through their serialized form, so defaults count); each
//! changed field either applies live or is reported as requiring a restart
//! (EAL, worker loop, port devices and rings, the control endpoints). The
//! config that then runs is the new one with those fields kept as they are.

use serde_json::Value;

use crate::config::Config;

/// Field paths that only take effect at start. A pattern covers the field
/// and everything under it; `[]` matches any index.
const RESTART: &[&str] = &[
    "eal",
    "worker",
    "control.socket",
    "control.metrics_listen",
    "api",
    "port[].name",
    "port[].device",
    "port[].rx_ring_size",
    "port[].tx_ring_size",
    "port[].rx_queues",
    "port[].qos",
    "port[].trust_dscp",
    "dpi.enabled",
    "dpi.flows",
    "dpi.dns_cache",
    "dpi.reassembly",
    "dpi.tcp_timeout_s",
    "dpi.tcp_closing_timeout_s",
    "dpi.udp_timeout_s",
    "dpi.other_timeout_s",
    "site.private_key_file",
    "tunnel.listen_port",
];

/// The outcome of comparing two configs.
#[derive(Debug)]
pub struct Plan {
    /// The config to run: the new one, minus what needs a restart.
    pub effective: Config,
    /// Fields that change now.
    pub applied: Vec<String>,
    /// Fields that changed in the file but wait for a restart.
    pub restart: Vec<String>,
}

/// Compares the running config with a new, validated one.
pub fn plan(running: &Config, new: &Config) -> Plan {
    let mut eff = new.clone();
    eff.eal = running.eal.clone();
    eff.worker = running.worker.clone();
    eff.control.socket = running.control.socket.clone();
    eff.control.metrics_listen = running.control.metrics_listen.clone();
    eff.api = running.api.clone();
    // The flow tables are built at start; signatures and the packet budget
    // are live.
    eff.dpi = crate::config::signatures::DpiOpts {
        builtin: new.dpi.builtin,
        signatures: new.dpi.signatures.clone(),
        max_packets: new.dpi.max_packets,
        ..running.dpi.clone()
    };
    // Our identity and port stay; peers, MTU and limits are live.
    eff.site.private_key_file = running.site.private_key_file.clone();
    eff.tunnel = crate::config::tunnel::TunnelOpts { listen_port: running.tunnel.listen_port, ..new.tunnel.clone() };
    // Ports are matched by position and name: a port that kept both takes
    // its new live fields; any other change to the port list waits.
    eff.port = running
        .port
        .iter()
        .enumerate()
        .map(|(i, rp)| match new.port.get(i) {
            Some(np) if np.name == rp.name => {
                let mut p = np.clone();
                p.device = rp.device.clone();
                p.rx_ring_size = rp.rx_ring_size;
                p.tx_ring_size = rp.tx_ring_size;
                p.rx_queues = rp.rx_queues;
                p.qos = rp.qos.clone();
                p.trust_dscp = rp.trust_dscp;
                p
            }
            _ => rp.clone(),
        })
        .collect();
    let (old_v, new_v, eff_v) = (json(running), json(new), json(&eff));
    let mut restart = Vec::new();
    diff("", &old_v, &new_v, &mut restart);
    let mut applied = Vec::new();
    diff("", &old_v, &eff_v, &mut applied);
    restart.retain(|p| !applied.contains(p));
    Plan { effective: eff, applied, restart }
}

/// Whether a changed field waits for a restart.
pub fn needs_restart(path: &str) -> bool {
    let generic = normalize(path);
    // A whole port added or removed.
    generic == "port[]" || RESTART.iter().any(|p| generic == *p || generic.starts_with(&format!("{p}.")))
}

fn json(c: &Config) -> Value {
    serde_json::to_value(c).expect("a config serializes")
}

/// `port[3].vlan[0].id` -> `port[].vlan[].id`.
fn normalize(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    let mut in_index = false;
    for ch in path.chars() {
        match ch {
            '[' => {
                in_index = true;
                out.push('[');
            }
            ']' => {
                in_index = false;
                out.push(']');
            }
            _ if in_index => {}
            _ => out.push(ch),
        }
    }
    out
}

/// Appends the paths where `a` and `b` differ: leaves, or whole subtrees
/// present on one side only.
fn diff(path: &str, a: &Value, b: &Value, out: &mut Vec<String>) {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            let mut keys: Vec<&String> = x.keys().chain(y.keys()).collect();
            keys.sort();
            keys.dedup();
            for k in keys {
                let p = if path.is_empty() { k.clone() } else { format!("{path}.{k}") };
                match (x.get(k), y.get(k)) {
                    (Some(u), Some(v)) => diff(&p, u, v, out),
                    _ => out.push(p),
                }
            }
        }
        // Lists of tables are compared element by element; lists of
        // values (addresses, lcores) as a whole.
        (Value::Array(x), Value::Array(y)) if x.iter().chain(y).any(Value::is_object) => {
            for i in 0..x.len().max(y.len()) {
                let p = format!("{path}[{i}]");
                match (x.get(i), y.get(i)) {
                    (Some(u), Some(v)) => diff(&p, u, v, out),
                    _ => out.push(p),
                }
            }
        }
        _ if a != b => out.push(path.to_owned()),
        _ => {}
    }
}

/// Sorts changed paths into the two lists the operator sees.
pub fn classify(paths: &[String]) -> (Vec<String>, Vec<String>) {
    paths.iter().cloned().partition(|p| !needs_restart(p))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    /// The shared two-port fixture (`tests/common/fixture.rs`).
    fn base() -> String {
        crate::fixture::TwoPorts::new().toml()
    }

    fn cfg(text: &str) -> Config {
        Config::parse(Path::new("t.toml"), text).unwrap()
    }

    #[test]
    fn identical_configs_change_nothing() {
        let p = plan(&cfg(&base()), &cfg(&base()));
        assert!(p.applied.is_empty() && p.restart.is_empty(), "{p:?}");
    }

    #[test]
    fn an_explicit_default_is_no_change() {
        let p = plan(&cfg(&base()), &cfg(&base().replace("role = \"lan\"", "role = \"lan\"\nrx_ring_size = 1024")));
        assert!(p.applied.is_empty() && p.restart.is_empty(), "{p:?}");
    }

    #[test]
    fn live_fields_apply_and_the_rest_waits_for_a_restart() {
        let new = base()
            .replace("forward = \"wan0\"\n", "")
            .replace("worker_lcores = [1]", "worker_lcores = [1, 2]")
            .replace("device = \"net_null1\"", "device = \"net_null7\"\ntx_ring_size = 512");
        let p = plan(&cfg(&base()), &cfg(&new));
        assert_eq!(p.applied, vec!["port[0].forward"]);
        assert_eq!(p.restart, vec!["eal.worker_lcores", "port[1].device", "port[1].tx_ring_size"]);
        assert_eq!(p.effective.port[0].forward, None);
        assert_eq!(p.effective.port[1].device, "net_null1");
        assert_eq!(p.effective.port[1].tx_ring_size, 1024);
        assert_eq!(p.effective.eal.worker_lcores, vec![1]);
    }

    #[test]
    fn added_and_renamed_ports_wait_for_a_restart() {
        let new =
            format!("{}\n[[port]]\nname = \"wan1\"\ndevice = \"net_null2\"\nrole = \"wan\"\n", base().replace("\"wan0\"", "\"wan9\""));
        let p = plan(&cfg(&base()), &cfg(&new));
        assert_eq!(p.applied, vec!["port[0].forward"], "lan0 kept its name and position");
        assert_eq!(p.restart, vec!["port[1].name", "port[2]"]);
        assert_eq!(p.effective.port.len(), 2);
        assert_eq!(p.effective.port[1].name, "wan0");
        // lan0 now forwards to a port that is not running: the effective
        // config no longer validates, so this reload is rejected whole.
        assert_eq!(p.effective.port[0].forward.as_deref(), Some("wan9"));
    }

    #[test]
    fn patterns_match_whole_segments() {
        assert!(needs_restart("eal.memory_mb"));
        assert!(needs_restart("port[12].rx_queues"));
        assert!(needs_restart("port[3]"));
        assert!(!needs_restart("port[3].forward"));
        assert!(!needs_restart("port[0].vlan[1].addresses"));
        assert!(!needs_restart("control.watch"));
        assert!(!needs_restart("route[0]"));
        assert_eq!(
            classify(&["eal.hugepages".into(), "router.icmp_rate".into()]),
            (vec!["router.icmp_rate".into()], vec!["eal.hugepages".into()])
        );
    }
}
