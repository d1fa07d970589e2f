//! Compiling a signature set into the immutable classifier the workers read.

use super::*;
use crate::router::lpm::Lpm;
use crate::vocab::{AppId, Category};
use std::cell::UnsafeCell;
use std::collections::HashMap;

impl Dpi {
    pub fn compile(set: &SignatureSet, max_packets: u8) -> Result<Dpi, SigError> {
        Self::compile_with(set, max_packets, &mut AppIds::default())
    }

    /// Compiles with application ids from `ids`, which keeps an
    /// application's id across recompilations (reloads) so per-application
    /// counters stay attached to its name; a removed application's id stays
    /// reserved, unmatched.
    pub fn compile_with(set: &SignatureSet, max_packets: u8, ids: &mut AppIds) -> Result<Dpi, SigError> {
        let mut apps: Vec<App> =
            ids.names.iter().map(|n| App { name: n.clone(), category: Category::Unknown, class: Default::default() }).collect();
        let mut by_name = HashMap::new();
        let mut hosts = HashMap::new();
        let mut pats = Vec::new();
        let mut pattern_of = Vec::new();
        let mut ports = HashMap::new();
        let mut by_proto = HashMap::new();
        let mut proto_port = HashMap::new();
        let (mut ips4, mut ips6) = (Vec::new(), Vec::new());
        let err = |app, field, msg: String| SigError { app, field, msg };
        let mut fresh = ids.clone();
        for (i, sig) in set.apps.iter().enumerate() {
            if sig.app.name.eq_ignore_ascii_case("unknown") {
                return Err(err(i, "name", "`Unknown` is reserved".into()));
            }
            let id = fresh.id_of(&sig.app.name).ok_or_else(|| err(i, "name", format!("more than {} applications", AppId::MAX)))?;
            if by_name.insert(sig.app.name.to_ascii_lowercase(), id).is_some() || sig.app.name.eq_ignore_ascii_case("unknown") {
                return Err(err(i, "name", format!("application `{}` is defined twice", sig.app.name)));
            }
            for h in &sig.hosts {
                let h = h.trim_start_matches('.').to_ascii_lowercase();
                if h.is_empty() || !h.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'.' || c == b'-' || c == b'_') {
                    return Err(err(i, "hosts", format!("`{h}` is not a domain name")));
                }
                if let Some(other) = hosts.insert(h.clone(), id) {
                    return Err(err(i, "hosts", format!("`{h}` also belongs to `{}`", apps[other as usize].name)));
                }
            }
            for p in &sig.patterns {
                if p.bytes.is_empty() {
                    return Err(err(i, "patterns", "an empty pattern matches everything".into()));
                }
                pats.push(p.bytes.clone());
                pattern_of.push((id, p.clone()));
            }
            if let Some(proto) = sig.protocol {
                if by_proto.insert(proto, id).is_some() {
                    return Err(err(i, "protocol", format!("protocol `{}` already names an application", proto.name())));
                }
            }
            match sig.over {
                Some(proto) => {
                    if sig.ports.is_empty() {
                        return Err(err(i, "over", "`over` needs `ports` to say where".into()));
                    }
                    for &(_, port) in &sig.ports {
                        if let Some(other) = proto_port.insert((proto, port), id) {
                            return Err(err(
                                i,
                                "ports",
                                format!("{} on port {port} already names `{}`", proto.name(), apps[other as usize].name),
                            ));
                        }
                    }
                }
                None => {
                    for &pp in &sig.ports {
                        ports.entry(pp).or_insert(id);
                    }
                }
            }
            for &(addr, len) in &sig.ips {
                match addr {
                    std::net::IpAddr::V4(a) if len <= 32 => ips4.push((u32::from(a), len, id as u32)),
                    std::net::IpAddr::V6(a) if len <= 128 => ips6.push((u128::from(a), len, id as u32)),
                    _ => return Err(err(i, "ips", format!("{addr}/{len}: prefix too long"))),
                }
            }
            if apps.len() <= id as usize {
                apps.resize(id as usize + 1, App { name: String::new(), category: Category::Unknown, class: Default::default() });
            }
            apps[id as usize] = sig.app.clone();
        }
        let patterns = if pats.is_empty() {
            None
        } else {
            let refs: Vec<&[u8]> = pats.iter().map(Vec::as_slice).collect();
            Some(hs::Database::literals(&refs).map_err(|e| err(0, "patterns", e))?)
        };
        let scratch = match &patterns {
            Some(db) => vec![UnsafeCell::new(db.scratch().map_err(|e| err(0, "patterns", e))?)].into_boxed_slice(),
            None => Box::new([]),
        };
        *ids = fresh;
        let pattern_reach =
            pattern_of.iter().map(|(_, p): &(AppId, Pattern)| p.offset.unwrap_or(p.depth) as usize + p.bytes.len()).max().unwrap_or(0);
        let ips4 = (!ips4.is_empty()).then(|| Lpm::build(&ips4));
        let ips6 = (!ips6.is_empty()).then(|| Lpm::build(&ips6));
        Ok(Dpi {
            apps,
            by_name,
            hosts,
            patterns,
            scratch,
            pattern_reach,
            pattern_of,
            ports,
            by_proto,
            proto_port,
            ips4,
            ips6,
            max_packets: max_packets.max(1),
        })
    }
}
