//! `conf/signatures.toml`: the applications DPI knows. Parsed here (with
//! file, line and field in every error) into a [`SignatureSet`] that the
//! data plane compiles.

use std::path::Path;

use serde::{Deserialize, Serialize};

use dataplane::dpi::{App, AppSig, Dpi, Pattern, Proto, SignatureSet};
use dataplane::vocab::Category;

use super::{serde_path, ConfigError, ConfigErrors, Locator, Seg};

/// The signature set built into the binary (conf/signatures.toml).
pub const BUILTIN: &str = include_str!("../../../conf/signatures.toml");
pub const BUILTIN_NAME: &str = "<built-in conf/signatures.toml>";

/// `[dpi]`: flow tracking and application classification on the workers.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct DpiOpts {
    /// Track flows and classify them (off: the workers only forward).
    pub enabled: bool,
    /// Start from the built-in signature set (conf/signatures.toml).
    pub builtin: bool,
    /// More signature files, in order; relative paths are taken from the
    /// config file's directory. Reloads re-read them.
    pub signatures: Vec<std::path::PathBuf>,
    /// Payload packets per direction inspected before a flow is given up
    /// as Unknown (1..=32).
    pub max_packets: u8,
    /// Flow table capacity per worker (rounded up to a power of two).
    pub flows: u32,
    /// DNS answer cache entries per worker.
    pub dns_cache: u32,
    /// TLS/QUIC hello reassembly slots per worker (4 KiB each).
    pub reassembly: u32,
    /// Idle timeouts, seconds.
    pub tcp_timeout_s: u32,
    pub tcp_closing_timeout_s: u32,
    pub udp_timeout_s: u32,
    pub other_timeout_s: u32,
}

impl Default for DpiOpts {
    fn default() -> Self {
        DpiOpts {
            enabled: true,
            builtin: true,
            signatures: vec![],
            max_packets: 8,
            flows: 65536,
            dns_cache: 4096,
            reassembly: 256,
            tcp_timeout_s: 300,
            tcp_closing_timeout_s: 10,
            udp_timeout_s: 60,
            other_timeout_s: 30,
        }
    }
}

impl DpiOpts {
    /// Signature files as paths (relative ones from `config_dir`).
    pub fn files(&self, config_dir: &Path) -> Vec<std::path::PathBuf> {
        self.signatures.iter().map(|p| if p.is_absolute() { p.clone() } else { config_dir.join(p) }).collect()
    }

    /// Loads and compiles the signatures this section names.
    /// `ids` keeps application ids stable across reloads (see
    /// [`dataplane::dpi::AppIds`]); it changes only if this succeeds.
    pub fn compile(&self, config_dir: &Path, ids: &mut dataplane::dpi::AppIds) -> Result<Dpi, ConfigErrors> {
        let mut set = SignatureSet::default();
        if self.builtin {
            parse_into(Path::new(BUILTIN_NAME), BUILTIN, &mut set)?;
        }
        for (i, f) in self.files(config_dir).into_iter().enumerate() {
            let text = std::fs::read_to_string(&f).map_err(|e| {
                let field = format!("dpi.signatures[{i}]");
                ConfigErrors(vec![ConfigError { file: f.clone(), line: 0, column: 0, field, message: format!("cannot read: {e}") }])
            })?;
            parse_into(&f, &text, &mut set)?;
        }
        Dpi::compile_with(&set, self.max_packets, ids).map_err(|e| {
            ConfigErrors(vec![ConfigError {
                file: config_dir.into(),
                line: 0,
                column: 0,
                field: format!("dpi.signatures ({})", e.field),
                message: e.msg,
            }])
        })
    }

    /// The worker-side sizes.
    pub fn flow_conf(&self) -> dataplane::flow::stage::FlowConf {
        use dataplane::flow::stage::{FlowConf, TimeoutsS};
        FlowConf {
            flows: self.flows as usize,
            timeouts_s: TimeoutsS {
                tcp: self.tcp_timeout_s as u64,
                tcp_closing: self.tcp_closing_timeout_s as u64,
                udp: self.udp_timeout_s as u64,
                other: self.other_timeout_s as u64,
            },
            dns_cache: self.dns_cache as usize,
            reassembly: self.reassembly as usize,
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    app: Vec<AppDef>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AppDef {
    name: String,
    category: String,
    /// QoS class name; default from the category.
    #[serde(default)]
    class: Option<String>,
    #[serde(default)]
    hosts: Vec<String>,
    /// "tcp/443", "udp/3478".
    #[serde(default)]
    ports: Vec<String>,
    #[serde(default)]
    protocol: Option<String>,
    /// With `ports`: the protocol that, on those ports, is this app.
    #[serde(default)]
    over: Option<String>,
    #[serde(default)]
    pattern: Vec<PatternDef>,
    /// Published server prefixes: "52.112.0.0/14", "2603:1063::/38".
    #[serde(default)]
    ips: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PatternDef {
    /// Text, with \xNN escapes for bytes.
    bytes: String,
    offset: Option<u16>,
    #[serde(default = "default_depth")]
    depth: u16,
    #[serde(default)]
    proto: Option<String>,
    /// Only in flows an extractor recognised as this protocol.
    #[serde(default)]
    protocol: Option<String>,
}

fn default_depth() -> u16 {
    64
}

fn proto_num(s: &str) -> Option<u8> {
    match s {
        "tcp" => Some(6),
        "udp" => Some(17),
        _ => None,
    }
}

/// `\xNN` escapes in pattern text.
fn unescape(s: &str) -> Result<Vec<u8>, String> {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && b.get(i + 1) == Some(&b'x') {
            let hex = s.get(i + 2..i + 4).ok_or("`\\x` needs two hex digits")?;
            out.push(u8::from_str_radix(hex, 16).map_err(|_| format!("`\\x{hex}` is not a hex byte"))?);
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    Ok(out)
}

/// Parses one signature file into `set` (appending).
pub fn parse_into(file: &Path, text: &str, set: &mut SignatureSet) -> Result<(), ConfigErrors> {
    let loc = Locator::new(file, text);
    let de = toml::Deserializer::new(text);
    let f: File = serde_path_to_error::deserialize(de).map_err(|e| {
        let path = serde_path(e.path());
        let inner = e.inner();
        ConfigErrors(vec![match inner.span() {
            Some(span) => loc.error_at(span.start, &path, inner.message()),
            None => loc.error(&path, inner.message()),
        }])
    })?;
    let mut errors = Vec::new();
    let first = set.apps.len();
    for (i, a) in f.app.into_iter().enumerate() {
        let at = |field: &str| vec![Seg::Key("app".into()), Seg::Index(i), Seg::Key(field.into())];
        let category = Category::parse(&a.category).unwrap_or_else(|| {
            let names: Vec<_> = Category::ALL.iter().map(|c| c.name()).collect();
            errors.push(loc.error(&at("category"), format!("unknown category `{}`, expected one of {}", a.category, names.join(", "))));
            Category::Unknown
        });
        if let Some(c) = a.class.as_deref().filter(|c| dataplane::vocab::Class::from_name(c).is_none()) {
            let names: Vec<&str> = dataplane::vocab::Class::ALL.iter().map(|c| c.name()).collect();
            errors.push(loc.error(&at("class"), format!("unknown class {c:?}; expected one of: {}", names.join(", "))));
        }
        let mut ports = Vec::new();
        for (j, p) in a.ports.iter().enumerate() {
            let parsed = p.split_once('/').and_then(|(pr, n)| Some((proto_num(pr)?, n.parse::<u16>().ok()?)));
            match parsed {
                Some(pp) => ports.push(pp),
                None => {
                    let mut path = at("ports");
                    path.push(Seg::Index(j));
                    errors.push(loc.error(&path, format!("`{p}` is not PROTO/PORT (e.g. tcp/443)")));
                }
            }
        }
        let protocol = a.protocol.as_deref().and_then(|p| {
            Proto::parse(p).or_else(|| {
                let names: Vec<_> = Proto::ALL.iter().skip(1).map(|p| p.name()).collect();
                errors.push(loc.error(&at("protocol"), format!("unknown protocol `{p}`, expected one of {}", names.join(", "))));
                None
            })
        });
        let over = a.over.as_deref().and_then(|p| {
            Proto::parse(p).or_else(|| {
                errors.push(loc.error(&at("over"), format!("unknown protocol `{p}`")));
                None
            })
        });
        let mut patterns = Vec::new();
        for (j, p) in a.pattern.iter().enumerate() {
            let path = |f: &str| vec![Seg::Key("app".into()), Seg::Index(i), Seg::Key("pattern".into()), Seg::Index(j), Seg::Key(f.into())];
            let bytes = unescape(&p.bytes).unwrap_or_else(|e| {
                errors.push(loc.error(&path("bytes"), e));
                Vec::new()
            });
            if bytes.is_empty() {
                errors.push(loc.error(&path("bytes"), "a pattern must not be empty"));
            }
            let proto = match p.proto.as_deref() {
                None => 0,
                Some(s) => proto_num(s).unwrap_or_else(|| {
                    errors.push(loc.error(&path("proto"), format!("`{s}`: expected tcp or udp")));
                    0
                }),
            };
            let within = p.protocol.as_deref().and_then(|w| {
                Proto::parse(w).or_else(|| {
                    errors.push(loc.error(&path("protocol"), format!("unknown protocol `{w}`")));
                    None
                })
            });
            patterns.push(Pattern { bytes, offset: p.offset, depth: p.depth, proto, within });
        }
        let mut ips = Vec::new();
        for (j, p) in a.ips.iter().enumerate() {
            let parsed = p.split_once('/').and_then(|(addr, len)| Some((addr.parse::<std::net::IpAddr>().ok()?, len.parse::<u8>().ok()?)));
            match parsed {
                Some((addr, len)) if len <= if addr.is_ipv4() { 32 } else { 128 } => ips.push((addr, len)),
                _ => {
                    let mut path = at("ips");
                    path.push(Seg::Index(j));
                    errors.push(loc.error(&path, format!("`{p}` is not ADDRESS/LENGTH (e.g. 52.112.0.0/14)")));
                }
            }
        }
        set.apps.push(AppSig {
            app: App {
                name: a.name,
                category,
                class: a
                    .class
                    .as_deref()
                    .and_then(dataplane::vocab::Class::from_name)
                    .unwrap_or(dataplane::vocab::Class::for_category(category)),
            },
            hosts: a.hosts,
            patterns,
            ports,
            protocol,
            over,
            ips,
        });
    }
    // Compile to catch duplicates and bad hosts, placed at their app.
    if errors.is_empty() {
        if let Err(e) = Dpi::compile(set, 8) {
            if e.app >= first {
                let path = vec![Seg::Key("app".into()), Seg::Index(e.app - first), Seg::Key(e.field.into())];
                errors.push(loc.error(&path, e.msg));
            } else {
                errors.push(ConfigError { file: file.to_owned(), line: 0, column: 0, field: e.field.into(), message: e.msg });
            }
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(ConfigErrors(errors))
    }
}

/// Loads signature files in order (later files add applications).
pub fn load(files: &[&Path]) -> Result<SignatureSet, ConfigErrors> {
    let mut set = SignatureSet::default();
    for f in files {
        let text = std::fs::read_to_string(f).map_err(|e| {
            ConfigErrors(vec![ConfigError {
                file: f.to_path_buf(),
                line: 0,
                column: 0,
                field: String::new(),
                message: format!("cannot read: {e}"),
            }])
        })?;
        parse_into(f, &text, &mut set)?;
    }
    Ok(set)
}
