//! Who may call the API: bearer tokens from a token file, stored hashed,
//! each with a name and a role; and a limit on failed attempts per source.
//!
//! The token file has one token per line, `NAME ROLE sha256:HEX`, where
//! HEX is the SHA-256 of the token; `#` starts a comment. `patronus
//! api-token` makes a token and its line. The file must be mode 0600.

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

/// What a caller may do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Role {
    /// Every query and subscription.
    Read,
    /// Also the mutations.
    Admin,
}

impl Role {
    pub fn name(self) -> &'static str {
        match self {
            Role::Read => "read",
            Role::Admin => "admin",
        }
    }
}

/// The caller of one request, once authenticated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Caller {
    /// The token's name; "anonymous" without a token.
    pub name: String,
    pub role: Option<Role>,
}

impl Caller {
    pub fn anonymous(role: Option<Role>) -> Caller {
        Caller { name: "anonymous".into(), role }
    }
}

/// The tokens of a token file, by hash.
#[derive(Clone, Debug, Default)]
pub struct Tokens {
    entries: Vec<([u8; 32], String, Role)>,
}

/// A token file as the server holds it: re-read when it changes (checked
/// at most once a second, on a request), so adding or revoking a token
/// needs no restart. A changed file that does not load (bad line, loose
/// permissions) is refused: the tokens before it stay, the error is
/// logged and counted in `patronus_api_token_reloads_total{result}`.
pub struct TokenFile {
    path: std::path::PathBuf,
    state: std::sync::Mutex<TokenState>,
}

struct TokenState {
    tokens: std::sync::Arc<Tokens>,
    /// (modified, length, inode, mode) as last loaded or refused.
    stamp: Option<(std::time::SystemTime, u64, u64, u32)>,
    checked: Instant,
}

fn stamp(path: &Path) -> Option<(std::time::SystemTime, u64, u64, u32)> {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(path).ok()?;
    Some((m.modified().ok()?, m.len(), m.ino(), m.mode()))
}

/// How often a token file's change is looked for.
const TOKEN_CHECK: Duration = Duration::from_secs(1);

impl TokenFile {
    /// Loads `path` (errors name the file and line).
    pub fn load(path: &Path) -> Result<TokenFile, String> {
        let stamp = stamp(path);
        let tokens = std::sync::Arc::new(Tokens::load(path)?);
        Ok(TokenFile { path: path.to_owned(), state: std::sync::Mutex::new(TokenState { tokens, stamp, checked: Instant::now() }) })
    }

    /// The tokens now, after re-reading the file if it changed.
    pub fn current(&self) -> std::sync::Arc<Tokens> {
        let Ok(mut st) = self.state.lock() else {
            return std::sync::Arc::new(Tokens::default());
        };
        let now = Instant::now();
        if now.duration_since(st.checked) >= TOKEN_CHECK {
            st.checked = now;
            let s = stamp(&self.path);
            if s != st.stamp {
                st.stamp = s;
                match Tokens::load(&self.path) {
                    Ok(t) => {
                        tracing::info!("api: token file {} reloaded: {} token(s)", self.path.display(), t.entries.len());
                        metrics::counter!("patronus_api_token_reloads_total", "result" => "ok").increment(1);
                        st.tokens = std::sync::Arc::new(t);
                    }
                    Err(e) => {
                        tracing::error!("api: token file changed but is refused; the tokens before it stay: {e}");
                        metrics::counter!("patronus_api_token_reloads_total", "result" => "refused").increment(1);
                    }
                }
            }
        }
        st.tokens.clone()
    }
}

/// SHA-256 of a token.
pub fn hash(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn unhex32(s: &str) -> Option<[u8; 32]> {
    if s.len() != 64 || !s.is_ascii() {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, o) in out.iter_mut().enumerate() {
        *o = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(out)
}

impl Tokens {
    /// Reads and checks a token file; errors name the file and line and
    /// never quote a hash.
    pub fn load(path: &Path) -> Result<Tokens, String> {
        crate::config::keys::check_secret_file(path, "token file", "a token file")?;
        let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        Tokens::parse(&text).map_err(|(line, m)| format!("{}:{line}: {m}", path.display()))
    }

    /// Parses a token file's text; an error is (line, message).
    pub fn parse(text: &str) -> Result<Tokens, (usize, String)> {
        let mut t = Tokens::default();
        for (n, line) in text.lines().enumerate() {
            let line = line.split('#').next().unwrap_or("").trim();
            if line.is_empty() {
                continue;
            }
            let f: Vec<&str> = line.split_whitespace().collect();
            let [name, role, digest] = f[..] else {
                return Err((n + 1, format!("expected NAME ROLE sha256:HEX, found {} field(s)", f.len())));
            };
            if name.is_empty() || name.len() > 64 || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b"_-.@".contains(&b)) {
                return Err((n + 1, "the name must be 1-64 letters, digits, '_', '-', '.' or '@'".into()));
            }
            let role = match role {
                "read" => Role::Read,
                "admin" => Role::Admin,
                _ => return Err((n + 1, "the role must be read or admin".into())),
            };
            let Some(h) = digest.strip_prefix("sha256:").and_then(unhex32) else {
                return Err((
                    n + 1,
                    "the third field must be sha256: and 64 hex digits (the token's hash, as `patronus api-token` writes)".into(),
                ));
            };
            if t.entries.iter().any(|(_, n2, _)| n2 == name) {
                return Err((n + 1, format!("the name {name} is used twice")));
            }
            t.entries.push((h, name.to_owned(), role));
        }
        Ok(t)
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The caller a bearer token stands for. Every entry is compared, in
    /// constant time, whatever matches.
    pub fn check(&self, token: &str) -> Option<Caller> {
        let h = hash(token);
        let mut found = None;
        for (e, name, role) in &self.entries {
            let diff = e.iter().zip(&h).fold(0u8, |d, (a, b)| d | (a ^ b));
            if diff == 0 {
                found = Some(Caller { name: name.clone(), role: Some(*role) });
            }
        }
        found
    }
}

/// A new token and its token-file line.
pub fn generate(name: &str, role: Role) -> Result<(String, String), String> {
    let mut raw = [0u8; 32];
    crate::tunnel::os_random(&mut raw);
    let token = format!("ptk_{}", hex(&raw));
    let line = format!("{name} {} sha256:{}", role.name(), hex(&hash(&token)));
    Tokens::parse(&line).map_err(|(_, m)| m)?;
    Ok((token, line))
}

/// Makes a token, appends its line to `file` (created mode 0600; an
/// existing file must pass the same checks as at start) and returns it.
pub fn append_token(file: &Path, name: &str, role: Role) -> Result<String, String> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let existing = if file.exists() {
        let t = Tokens::load(file)?;
        if t.entries.iter().any(|(_, n, _)| n == name) {
            return Err(format!("{} already has a token named {name}; remove its line first to replace it", file.display()));
        }
        true
    } else {
        false
    };
    let (token, line) = generate(name, role)?;
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(file)
        .map_err(|e| format!("cannot open {}: {e}", file.display()))?;
    let text = if existing && !std::fs::read(file).map_err(|e| e.to_string())?.ends_with(b"\n") {
        format!("\n{line}\n")
    } else {
        format!("{line}\n")
    };
    f.write_all(text.as_bytes()).map_err(|e| format!("cannot write {}: {e}", file.display()))?;
    Ok(token)
}

/// Failed attempts per source address: after `MAX_FAILURES` in `WINDOW`,
/// the source is refused until the window passes.
#[derive(Default)]
pub struct Limiter {
    failures: HashMap<IpAddr, (Instant, u32)>,
}

pub const MAX_FAILURES: u32 = 10;
pub const WINDOW: Duration = Duration::from_secs(60);
/// Sources tracked at once (a flood of sources forgets the oldest).
const TRACKED: usize = 4096;

impl Limiter {
    /// Whether `ip` is refused now without checking its token.
    pub fn blocked(&mut self, ip: IpAddr, now: Instant) -> bool {
        match self.failures.get(&ip) {
            Some((since, n)) if now.duration_since(*since) < WINDOW => *n >= MAX_FAILURES,
            Some(_) => {
                self.failures.remove(&ip);
                false
            }
            None => false,
        }
    }

    /// Counts a failure; returns the count in the current window.
    pub fn fail(&mut self, ip: IpAddr, now: Instant) -> u32 {
        if self.failures.len() >= TRACKED {
            self.failures.retain(|_, (since, _)| now.duration_since(*since) < WINDOW);
            if self.failures.len() >= TRACKED {
                let oldest = self.failures.iter().min_by_key(|(_, (s, _))| *s).map(|(k, _)| *k);
                if let Some(k) = oldest {
                    self.failures.remove(&k);
                }
            }
        }
        let e = self.failures.entry(ip).or_insert((now, 0));
        if now.duration_since(e.0) >= WINDOW {
            *e = (now, 0);
        }
        e.1 += 1;
        e.1
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn a_generated_token_checks_and_a_wrong_one_does_not() {
        let (tok, line) = generate("ops", Role::Admin).unwrap();
        let (tok2, line2) = generate("grafana", Role::Read).unwrap();
        let t = Tokens::parse(&format!("# fleet\n{line}\n\n{line2} # dashboards\n")).unwrap();
        assert_eq!(t.check(&tok), Some(Caller { name: "ops".into(), role: Some(Role::Admin) }));
        assert_eq!(t.check(&tok2).unwrap().role, Some(Role::Read));
        assert_eq!(t.check("ptk_nope"), None);
        assert_eq!(t.check(""), None);
        assert!(!line.contains(&tok), "the file holds the hash, never the token");
    }

    #[test]
    fn bad_lines_are_named_by_number() {
        let h = format!("sha256:{}", "ab".repeat(32));
        assert_eq!(Tokens::parse("a read").unwrap_err().0, 1);
        assert!(Tokens::parse(&format!("\na root {h}")).unwrap_err().1.contains("read or admin"));
        assert!(Tokens::parse("a read sha256:xyz").unwrap_err().1.contains("64 hex"));
        assert!(Tokens::parse(&format!("a read {h}\na admin {h}")).unwrap_err().1.contains("twice"));
        assert!(Tokens::parse(&format!("a/b read {h}")).is_err());
        assert!(Tokens::parse(&format!("a read sha256:{}", "é".repeat(32))).is_err());
    }

    #[test]
    fn loose_permissions_are_refused() {
        let dir = std::env::temp_dir().join(format!("patronus-auth-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("tokens");
        std::fs::write(&f, generate("a", Role::Read).unwrap().1).unwrap();
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(Tokens::load(&f).unwrap_err().contains("chmod 600"));
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert!(Tokens::load(&f).is_ok());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn the_limiter_blocks_after_ten_failures_until_the_window_passes() {
        let mut l = Limiter::default();
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        let t0 = Instant::now();
        for i in 1..=MAX_FAILURES {
            assert!(!l.blocked(ip, t0));
            assert_eq!(l.fail(ip, t0), i);
        }
        assert!(l.blocked(ip, t0 + Duration::from_secs(1)));
        assert!(!l.blocked("192.0.2.2".parse().unwrap(), t0));
        assert!(!l.blocked(ip, t0 + WINDOW));
    }

    #[test]
    fn any_text_parses_or_fails_without_panicking() {
        // The parser's fuzz corpus, run as a test: every prefix of a valid
        // file and byte flips of it.
        let (_, line) = generate("ops", Role::Admin).unwrap();
        let text = format!("# c\n{line}\nx read sha256:{}\n", "0".repeat(64));
        for i in 0..text.len() {
            let _ = Tokens::parse(text.get(..i).unwrap_or(""));
            let mut b = text.clone().into_bytes();
            b[i] ^= 0x55;
            let _ = Tokens::parse(&String::from_utf8_lossy(&b));
        }
    }
}
