//! `[tunnel]`: WireGuard-compatible tunnels to peer sites. The site's
//! identity is `[site] private_key_file`.
//!
//! ```toml
//! [site]
//! private_key_file = "keys/site-a.key"   # `patronus genkey`, mode 600
//!
//! [tunnel]
//! listen_port = 51820
//!
//! [[tunnel.peer]]
//! name = "site-b"
//! public_key = "base64 from `patronus pubkey` or `wg pubkey`"
//! preshared_key = "keys/ab.psk"     # optional, mode 600
//! endpoint = "192.0.2.2:51820"      # optional: learnt from its handshakes
//! allowed_ips = ["10.2.0.0/16"]
//! persistent_keepalive = 25         # seconds, optional
//! ```

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::keys::{decode_public_base64, load_private_key, PrivateKey};
use super::{ConfigError, Locator, Seg};

fn default_listen_port() -> u16 {
    51820
}
fn default_mtu() -> u16 {
    1420
}
fn default_load_limit() -> u32 {
    1000
}
fn default_source_ports() -> u16 {
    8
}

/// `[tunnel]`.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TunnelOpts {
    #[serde(default = "default_listen_port")]
    pub listen_port: u16,
    /// Largest inner packet sent into a tunnel (WireGuard's default 1420).
    #[serde(default = "default_mtu")]
    pub mtu: u16,
    /// Handshake messages per second above which senders must prove their
    /// address with a cookie (mac2).
    #[serde(default = "default_load_limit")]
    pub handshake_load_limit: u32,
    /// Outer UDP source ports a session to another Patronus spreads over
    /// (a power of two, 1..=32: `listen_port` XOR 0..31), chosen per inner
    /// flow so that the far end's RSS spreads decryption over its workers.
    /// A plain WireGuard peer always sees `listen_port` alone.
    #[serde(default = "default_source_ports")]
    pub source_ports: u16,
    #[serde(default)]
    pub peer: Vec<PeerOpts>,
}

/// `[[tunnel.peer]]`.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PeerOpts {
    pub name: String,
    pub public_key: String,
    /// File holding a preshared key (`wg genpsk`), mode 600.
    #[serde(default)]
    pub preshared_key: Option<PathBuf>,
    #[serde(default)]
    pub endpoint: Option<String>,
    #[serde(default)]
    pub allowed_ips: Vec<String>,
    /// Seconds; 0 or absent: off.
    #[serde(default)]
    pub persistent_keepalive: u16,
    /// The peer's own IPv4 address inside the tunnel (its wg interface's
    /// address): where path probes go as ICMP echo requests while the
    /// peer is not known to be Patronus.
    #[serde(default)]
    pub address: Option<String>,
}

/// A peer ready for the data plane.
pub struct PeerSpec {
    pub name: String,
    pub public: [u8; 32],
    pub psk: Option<PrivateKey>,
    pub endpoint: Option<SocketAddr>,
    pub allowed: Vec<(IpAddr, u8)>,
    pub persistent_keepalive: u16,
}

impl TunnelOpts {
    /// Whether tunnels are configured (at least one peer).
    pub fn enabled(&self) -> bool {
        !self.peer.is_empty()
    }

    fn key_path(&self, dir: &Path, p: &Path) -> PathBuf {
        if p.is_absolute() {
            p.to_owned()
        } else {
            dir.join(p)
        }
    }

    /// Reads the site's private key (`key`, resolved) and the peers'
    /// preshared keys.
    pub fn load(&self, dir: &Path, key: Option<&Path>) -> Result<(PrivateKey, Vec<PeerSpec>), String> {
        let key = key.ok_or("tunnels need the site's key: set [site] private_key_file")?;
        let private = load_private_key(key).map_err(|e| format!("site.private_key_file: {e}"))?;
        let mut peers = Vec::new();
        for (i, p) in self.peer.iter().enumerate() {
            let psk = match &p.preshared_key {
                Some(f) => Some(load_private_key(&self.key_path(dir, f)).map_err(|e| format!("tunnel.peer[{i}].preshared_key: {e}"))?),
                None => None,
            };
            peers.push(PeerSpec {
                name: p.name.clone(),
                public: decode_public_base64(&p.public_key).ok_or(format!("tunnel.peer[{i}].public_key: not a public key"))?,
                psk,
                endpoint: p
                    .endpoint
                    .as_deref()
                    .map(|e| e.parse())
                    .transpose()
                    .map_err(|_| format!("tunnel.peer[{i}].endpoint: bad address"))?,
                allowed: p.allowed_ips.iter().map(|a| super::router::parse_cidr(a)).collect::<Result<_, _>>()?,
                persistent_keepalive: p.persistent_keepalive,
            });
        }
        Ok((private, peers))
    }

    /// `has_key`: whether `[site] private_key_file` is set (it is checked there).
    pub(super) fn validate(&self, loc: &Locator, has_key: bool) -> Vec<ConfigError> {
        let mut errs = Vec::new();
        if self.peer.is_empty() {
            return errs;
        }
        if !has_key {
            errs.push(loc.error(
                &[Seg::from("tunnel"), Seg::from("peer")],
                "tunnel peers need the site's key: set [site] private_key_file (create it with `umask 077; patronus genkey > site.key`)",
            ));
        }
        let mut check = |ok: bool, path: Vec<Seg>, msg: String| {
            if !ok {
                errs.push(loc.error(&path, msg));
            }
        };
        check(self.listen_port != 0, cfg_path!("tunnel", "listen_port"), "0 is not a port; expected 1..=65535".into());
        check(
            self.source_ports.is_power_of_two() && self.source_ports <= dataplane::rss::MAX_SOURCE_PORTS,
            cfg_path!("tunnel", "source_ports"),
            format!("{} is not one of 1, 2, 4, 8, 16, 32", self.source_ports),
        );
        check((576..=9000).contains(&self.mtu), cfg_path!("tunnel", "mtu"), format!("{} is out of range 576..=9000", self.mtu));
        check(
            self.handshake_load_limit >= 1,
            cfg_path!("tunnel", "handshake_load_limit"),
            "expected at least 1 handshake message per second".into(),
        );
        let dir = loc.file().parent().map(Path::to_path_buf).unwrap_or_default();
        let mut keys: HashMap<[u8; 32], usize> = HashMap::new();
        let mut names: HashMap<&str, usize> = HashMap::new();
        let mut prefixes: HashMap<(IpAddr, u8), usize> = HashMap::new();
        for (i, p) in self.peer.iter().enumerate() {
            check(!p.name.is_empty(), cfg_path!("tunnel", "peer", i, "name"), "expected a name".into());
            if let Some(j) = names.insert(&p.name, i) {
                check(false, cfg_path!("tunnel", "peer", i, "name"), format!("{:?} is also the name of tunnel.peer[{j}]", p.name));
            }
            match decode_public_base64(&p.public_key) {
                None => check(
                    false,
                    cfg_path!("tunnel", "peer", i, "public_key"),
                    "not a WireGuard public key: expected 44 characters of base64, as `patronus pubkey` or `wg pubkey` print".into(),
                ),
                Some(k) => {
                    if let Some(j) = keys.insert(k, i) {
                        check(false, cfg_path!("tunnel", "peer", i, "public_key"), format!("the same key as tunnel.peer[{j}]"));
                    }
                }
            }
            if let Some(f) = &p.preshared_key {
                if let Err(e) = load_private_key(&self.key_path(&dir, f)) {
                    check(false, cfg_path!("tunnel", "peer", i, "preshared_key"), e);
                }
            }
            if let Some(e) = &p.endpoint {
                check(
                    e.parse::<SocketAddr>().is_ok(),
                    cfg_path!("tunnel", "peer", i, "endpoint"),
                    format!("{e:?} is not ADDRESS:PORT like 192.0.2.2:51820 or [2001:db8::2]:51820"),
                );
            }
            if let Some(a) = &p.address {
                check(
                    a.parse::<std::net::Ipv4Addr>().is_ok(),
                    cfg_path!("tunnel", "peer", i, "address"),
                    format!("{a:?} is not an IPv4 address"),
                );
            }
            for (j, a) in p.allowed_ips.iter().enumerate() {
                match super::router::parse_cidr(a) {
                    Err(m) => check(false, cfg_path!("tunnel", "peer", i, "allowed_ips", j), m),
                    Ok(net) => {
                        if let Some(other) = prefixes.insert(net, i) {
                            check(
                                other == i,
                                cfg_path!("tunnel", "peer", i, "allowed_ips", j),
                                format!("{a} is already an allowed IP of tunnel.peer[{other}]: a prefix belongs to one peer"),
                            );
                        }
                    }
                }
            }
        }
        errs
    }
}
