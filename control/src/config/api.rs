//! `[api]`: the management plane's one HTTP server (metrics, the GraphQL
//! API, the dashboard). Loopback only unless TLS and tokens are set.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::{ConfigError, Locator, Seg};

#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ApiOpts {
    /// "ADDR:PORT" of the HTTP server; "" turns it off. Default: the older
    /// `[control] metrics_listen` (127.0.0.1:9100).
    #[serde(default)]
    pub listen: Option<String>,
    /// PEM certificate chain and private key: serve HTTPS. The key file
    /// must be mode 0600 (or tighter).
    #[serde(default)]
    pub tls_cert: Option<PathBuf>,
    #[serde(default)]
    pub tls_key: Option<PathBuf>,
    /// Bearer tokens, one per line: `NAME ROLE sha256:HEX` (see
    /// `patronus api-token`). Mode 0600. Without it the API is read-only.
    #[serde(default)]
    pub tokens_file: Option<PathBuf>,
    /// Origins allowed to call the API from another site's page; empty:
    /// CORS off.
    #[serde(default)]
    pub cors_origins: Vec<String>,
    /// Open connections at once; more wait in the kernel's backlog.
    #[serde(default = "default_max_connections")]
    pub max_connections: u32,
    /// Live subscriptions at once (over all connections).
    #[serde(default = "default_max_subscriptions")]
    pub max_subscriptions: u32,
    /// A connection that sends nothing for this long is closed.
    #[serde(default = "default_idle_timeout_s")]
    pub idle_timeout_s: u32,
    /// Largest request body (a config pushed through `reload` fits).
    #[serde(default = "default_max_request_bytes")]
    pub max_request_bytes: u32,
}

impl Default for ApiOpts {
    fn default() -> Self {
        ApiOpts {
            listen: None,
            tls_cert: None,
            tls_key: None,
            tokens_file: None,
            cors_origins: Vec::new(),
            max_connections: default_max_connections(),
            max_subscriptions: default_max_subscriptions(),
            idle_timeout_s: default_idle_timeout_s(),
            max_request_bytes: default_max_request_bytes(),
        }
    }
}

fn default_max_connections() -> u32 {
    1024
}
fn default_max_subscriptions() -> u32 {
    256
}
fn default_idle_timeout_s() -> u32 {
    60
}
fn default_max_request_bytes() -> u32 {
    1 << 20
}

/// The management plane's one exposure rule: beyond loopback only with
/// TLS and tokens.
pub fn may_listen(ip: std::net::IpAddr, tls: bool, tokens: bool) -> bool {
    ip.is_loopback() || (tls && tokens)
}

/// A validated `[api]`, with files resolved against the config's directory.
#[derive(Clone, Debug)]
pub struct ApiConf {
    pub listen: SocketAddr,
    pub tls: Option<(PathBuf, PathBuf)>,
    pub tokens_file: Option<PathBuf>,
    pub cors_origins: Vec<String>,
    pub max_connections: usize,
    pub max_subscriptions: usize,
    pub idle_timeout: std::time::Duration,
    pub max_request_bytes: usize,
}

impl ApiOpts {
    /// The address text in effect: `listen`, else `[control] metrics_listen`.
    pub fn listen_text<'a>(&'a self, metrics_listen: &'a str) -> &'a str {
        self.listen.as_deref().unwrap_or(metrics_listen)
    }

    pub fn conf(&self, metrics_listen: &str, config_file: &Path) -> Option<ApiConf> {
        let listen = self.listen_text(metrics_listen).parse().ok()?;
        let dir = config_file.parent().unwrap_or(Path::new("."));
        let at = |p: &PathBuf| dir.join(p);
        Some(ApiConf {
            listen,
            tls: self.tls_cert.as_ref().zip(self.tls_key.as_ref()).map(|(c, k)| (at(c), at(k))),
            tokens_file: self.tokens_file.as_ref().map(at),
            cors_origins: self.cors_origins.clone(),
            max_connections: self.max_connections as usize,
            max_subscriptions: self.max_subscriptions as usize,
            idle_timeout: std::time::Duration::from_secs(self.idle_timeout_s as u64),
            max_request_bytes: self.max_request_bytes as usize,
        })
    }

    pub(crate) fn validate(&self, loc: &Locator, metrics_listen: &str) -> Vec<ConfigError> {
        let mut errs = Vec::new();
        let mut check = |ok: bool, field: &str, msg: String| {
            if !ok {
                let at: Vec<Seg> = if field == "metrics_listen" {
                    vec![Seg::from("control"), Seg::from("metrics_listen")]
                } else {
                    vec![Seg::from("api"), Seg::from(field)]
                };
                errs.push(loc.error(&at, msg));
            }
        };
        let field = if self.listen.is_some() { "listen" } else { "metrics_listen" };
        let text = self.listen_text(metrics_listen);
        if self.listen.is_some() && !metrics_listen.is_empty() && metrics_listen != super::schema::DEFAULT_METRICS_LISTEN {
            check(
                text == metrics_listen,
                "listen",
                format!("[api] listen = {text:?} and [control] metrics_listen = {metrics_listen:?}: metrics are served by the API server now; set only [api] listen"),
            );
        }
        let addr = text.parse::<SocketAddr>();
        check(
            text.is_empty() || addr.is_ok(),
            field,
            format!("{text:?} is not an address; expected ADDR:PORT such as \"127.0.0.1:9100\" or \"[::1]:9100\", or \"\" (off)"),
        );
        check(
            self.tls_cert.is_some() == self.tls_key.is_some(),
            if self.tls_cert.is_some() { "tls_key" } else { "tls_cert" },
            "TLS needs both tls_cert (the PEM certificate chain) and tls_key (its PEM private key)".into(),
        );
        if let Ok(a) = addr {
            check(
                may_listen(a.ip(), self.tls_cert.is_some() && self.tls_key.is_some(), self.tokens_file.is_some()),
                field,
                format!(
                    "{text:?} is not a loopback address: the management plane listens beyond this box only with TLS and authentication; set [api] tls_cert, tls_key and tokens_file, or listen on 127.0.0.1"
                ),
            );
        }
        let dir = loc.file().parent().unwrap_or(Path::new("."));
        if let Some(p) = &self.tls_key {
            if let Err(m) = super::keys::check_secret_file(&dir.join(p), "TLS key file", "a private key") {
                check(false, "tls_key", m);
            }
        }
        if let Some(c) = &self.tls_cert {
            let p = dir.join(c);
            if let Err(e) = std::fs::metadata(&p) {
                check(false, "tls_cert", format!("cannot read {}: {e}", p.display()));
            }
        }
        if let Some(t) = &self.tokens_file {
            if let Err(m) = crate::api::auth::Tokens::load(&dir.join(t)) {
                check(false, "tokens_file", m);
            }
        }
        let ranges: [(&str, u32, u32, u32); 4] = [
            ("max_connections", self.max_connections, 1, 65_536),
            ("max_subscriptions", self.max_subscriptions, 0, 65_536),
            ("idle_timeout_s", self.idle_timeout_s, 1, 3600),
            ("max_request_bytes", self.max_request_bytes, 1024, 16 << 20),
        ];
        for (name, v, lo, hi) in ranges {
            check((lo..=hi).contains(&v), name, format!("{v} is out of range; expected {lo}..={hi}"));
        }
        for (i, o) in self.cors_origins.iter().enumerate() {
            let ok = (o.starts_with("https://") || o.starts_with("http://")) && !o.ends_with('/') && !o.contains('*');
            if !ok {
                errs.push(loc.error(
                    &[Seg::from("api"), Seg::from("cors_origins"), Seg::from(i)],
                    format!("{o:?} is not an origin; expected scheme://host[:port] with no path and no wildcard"),
                ));
            }
        }
        errs
    }
}
