//! `[port.qos]`: shaping and class scheduling on a port's egress.
//!
//! ```toml
//! [[port]]
//! name = "wan0"
//! ...
//! [port.qos]
//! rate_mbps = 50            # the link's real capacity
//! priority_cap_pct = 30     # Control + RealTime by strict priority, at most
//! [port.qos.class.bulk]
//! weight = 1
//! min_mbps = 5
//! ```

use std::collections::BTreeMap;

use dataplane::qos::PortQosConf;
use dataplane::vocab::Class;
use serde::{Deserialize, Serialize};

use super::{ConfigError, Locator, Seg};

fn default_cap() -> u8 {
    30
}

/// `[port.qos]`.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PortQos {
    /// Shaped rate, Mbit/s (the WAN link's real capacity).
    pub rate_mbps: f64,
    /// Bytes that may leave at once after an idle spell (default: 1 ms at the rate).
    #[serde(default)]
    pub burst_bytes: Option<u64>,
    #[serde(default = "default_cap")]
    pub priority_cap_pct: u8,
    /// Per class (`control`, `realtime`, `interactive`, `streaming`, `standard`, `bulk`).
    #[serde(default)]
    pub class: BTreeMap<String, ClassOpts>,
}

/// `[port.qos.class.NAME]`: what differs from the class's defaults.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ClassOpts {
    pub weight: Option<u32>,
    pub min_mbps: Option<f64>,
    pub max_mbps: Option<f64>,
    /// Queue bound per worker, packets.
    pub queue: Option<usize>,
    /// CoDel on this queue (default: Standard and Bulk).
    pub codel: Option<bool>,
    /// DSCP marked on egress, 0..=63; -1 leaves it as it is.
    pub dscp: Option<i16>,
}

fn bps(mbps: f64) -> u64 {
    (mbps * 1e6) as u64
}

impl PortQos {
    /// The scheduler's settings.
    pub fn conf(&self) -> PortQosConf {
        let mut c = PortQosConf::new(bps(self.rate_mbps));
        if let Some(b) = self.burst_bytes {
            c.burst_bytes = b;
        }
        c.priority_cap_pct = self.priority_cap_pct;
        for (name, o) in &self.class {
            let Some(class) = Class::from_name(name) else { continue };
            let k = &mut c.classes[class as usize];
            if let Some(w) = o.weight {
                k.weight = w;
            }
            if let Some(m) = o.min_mbps {
                k.min_bps = bps(m);
            }
            if let Some(m) = o.max_mbps {
                k.max_bps = bps(m);
            }
            if let Some(q) = o.queue {
                k.queue = q;
            }
            if let Some(x) = o.codel {
                k.codel = x;
            }
            if let Some(d) = o.dscp {
                k.dscp = (d >= 0).then_some(d as u8);
            }
        }
        c
    }

    pub(super) fn validate(&self, loc: &Locator, port: usize) -> Vec<ConfigError> {
        let mut errs = Vec::new();
        let at = |f: &[&str]| {
            let mut p = vec![Seg::from("port"), Seg::from(port), Seg::from("qos")];
            p.extend(f.iter().map(|s| Seg::from(*s)));
            p
        };
        if !(self.rate_mbps >= 0.064 && self.rate_mbps <= 400_000.0) {
            errs.push(loc.error(&at(&["rate_mbps"]), format!("{} is out of range 0.064..=400000 Mbit/s", self.rate_mbps)));
        }
        if self.priority_cap_pct > 100 {
            errs.push(loc.error(&at(&["priority_cap_pct"]), format!("{} is out of range 0..=100", self.priority_cap_pct)));
        }
        if self.burst_bytes.is_some_and(|b| b < 1514) {
            errs.push(loc.error(&at(&["burst_bytes"]), "at least one full frame (1514 bytes)".to_string()));
        }
        let (mut min_total, mut bad_min) = (0.0, false);
        for (name, o) in &self.class {
            if Class::from_name(name).is_none() {
                let names: Vec<&str> = Class::ALL.iter().map(|c| c.name()).collect();
                errs.push(loc.error(&at(&["class", name]), format!("unknown class {name:?}; expected one of: {}", names.join(", "))));
                continue;
            }
            if o.weight.is_some_and(|w| !(1..=1000).contains(&w)) {
                errs.push(loc.error(&at(&["class", name, "weight"]), format!("{} is out of range 1..=1000", o.weight.unwrap_or(0))));
            }
            if let Some(m) = o.min_mbps {
                min_total += m;
                if m < 0.0 || m > self.rate_mbps {
                    bad_min = true;
                    errs.push(
                        loc.error(
                            &at(&["class", name, "min_mbps"]),
                            format!("{m} is out of range 0..={} (the port's rate)", self.rate_mbps),
                        ),
                    );
                }
            }
            if let Some(m) = o.max_mbps {
                if m <= 0.0 || o.min_mbps.is_some_and(|n| n > m) {
                    errs.push(loc.error(&at(&["class", name, "max_mbps"]), format!("{m} must be above 0 and at least min_mbps")));
                }
            }
            if o.queue.is_some_and(|q| !(1..=65536).contains(&q)) {
                errs.push(loc.error(&at(&["class", name, "queue"]), format!("{} is out of range 1..=65536 packets", o.queue.unwrap_or(0))));
            }
            if o.dscp.is_some_and(|d| !(-1..=63).contains(&d)) {
                errs.push(
                    loc.error(
                        &at(&["class", name, "dscp"]),
                        format!("{} is out of range 0..=63 (or -1: leave as is)", o.dscp.unwrap_or(0)),
                    ),
                );
            }
        }
        if min_total > self.rate_mbps && !bad_min {
            errs.push(
                loc.error(&at(&["class"]), format!("minimum rates add up to {min_total} Mbit/s, more than the port's {}", self.rate_mbps)),
            );
        }
        errs
    }
}

/// `[qos]`: the class applications and categories get, over the
/// signatures' defaults (`[qos.application] YouTube = "bulk"`,
/// `[qos.category] Video = "streaming"`; an application's entry wins).
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct QosOpts {
    #[serde(default)]
    pub application: BTreeMap<String, String>,
    #[serde(default)]
    pub category: BTreeMap<String, String>,
}

impl QosOpts {
    /// Sets the compiled applications' classes.
    pub fn apply(&self, dpi: &mut dataplane::dpi::Dpi) {
        for app in dpi.apps.iter_mut() {
            let by_app = self.application.get(&app.name);
            let by_cat = self.category.iter().find(|(c, _)| dataplane::vocab::Category::parse(c) == Some(app.category)).map(|(_, v)| v);
            if let Some(class) = by_app.or(by_cat).and_then(|c| Class::from_name(c)) {
                app.class = class;
            }
        }
    }

    /// `apps`: the application names the signatures define, when compiled.
    pub(super) fn validate(&self, loc: &Locator, apps: Option<&[String]>) -> Vec<ConfigError> {
        let mut errs = Vec::new();
        let names: Vec<&str> = Class::ALL.iter().map(|c| c.name()).collect();
        for (table, map) in [("application", &self.application), ("category", &self.category)] {
            for (k, v) in map {
                let at = vec![Seg::from("qos"), Seg::from(table), Seg::from(k.as_str())];
                if Class::from_name(v).is_none() {
                    errs.push(loc.error(&at, format!("unknown class {v:?}; expected one of: {}", names.join(", "))));
                }
                if table == "category" && dataplane::vocab::Category::parse(k).is_none() {
                    let cats: Vec<&str> = dataplane::vocab::Category::ALL.iter().map(|c| c.name()).collect();
                    errs.push(loc.error(&at, format!("unknown category {k:?}; expected one of: {}", cats.join(", "))));
                }
                if table == "application" && apps.is_some_and(|a| !a.iter().any(|n| n == k)) {
                    errs.push(loc.error(
                        &at,
                        format!("no application named {k:?} in the signatures (`patronus show apps` and conf/signatures.toml list them)"),
                    ));
                }
            }
        }
        errs
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policy_classes_override_the_signatures_by_application_then_category() {
        let mut dpi = crate::config::signatures::DpiOpts::default().compile(std::path::Path::new("."), &mut Default::default()).unwrap();
        let class = |d: &dataplane::dpi::Dpi, name: &str| d.apps.iter().find(|a| a.name == name).unwrap().class;
        assert_eq!(class(&dpi, "SIP"), Class::RealTime, "VoIP by default");
        assert_eq!(class(&dpi, "YouTube"), Class::Streaming, "Video by default");
        assert_eq!(class(&dpi, "BitTorrent"), Class::Bulk);
        let opts = QosOpts {
            application: [("YouTube".to_string(), "bulk".to_string())].into(),
            category: [("VoIP".to_string(), "interactive".to_string()), ("Video".to_string(), "standard".to_string())].into(),
        };
        opts.apply(&mut dpi);
        assert_eq!(class(&dpi, "YouTube"), Class::Bulk, "the application's entry wins over its category's");
        assert_eq!(class(&dpi, "Netflix"), Class::Standard, "by category");
        assert_eq!(class(&dpi, "SIP"), Class::Interactive);
        assert_eq!(class(&dpi, "BitTorrent"), Class::Bulk, "untouched");
    }
}
