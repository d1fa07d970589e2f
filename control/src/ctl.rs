//! The control socket: a Unix stream socket only its owner (root, on an
//! appliance) can open, mode 0600. One request per connection, one line of
//! JSON each way: `{"cmd":"reload"}`, `{"cmd":"show","what":"ports"}`.
//! Replies are JSON objects with `"ok"`; the `patronus` CLI renders them.
//!
//! A thread accepts connections and hands each request to the control
//! thread over a channel, so everything that reads or changes the running
//! appliance happens on the control thread.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::acceptor::AcceptLoop;
use crossbeam_channel::{Receiver, Sender};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

/// Largest request accepted, in bytes.
const MAX_REQUEST: u64 = 4096;

/// How long a client may take to send its request.
const READ_TIMEOUT: Duration = Duration::from_secs(2);

/// What a client asks for.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "cmd", rename_all = "lowercase", deny_unknown_fields)]
pub enum Request {
    /// Re-read the config file and apply it.
    Reload,
    /// Report part of the running state.
    Show { what: String },
    /// Start a tunnel handshake now with one peer (all: no peer).
    Rekey {
        #[serde(default)]
        peer: Option<String>,
    },
    /// Take a path out of service (`drain`: true) or put it back.
    Drain { path: String, drain: bool },
    /// Validate a config text exactly as a file; if it is valid, write it
    /// over the config file atomically and reload from it.
    ReloadText { text: String },
    /// A page of the live flows: `first` from the cursor `after` (the
    /// start when absent).
    Flows {
        #[serde(default)]
        after: Option<String>,
        first: usize,
    },
}

/// Where a request's reply goes: the control socket's server thread, or
/// the API's runtime.
pub struct Reply(Box<dyn FnOnce(Value) + Send>);

impl Reply {
    pub fn new(f: impl FnOnce(Value) + Send + 'static) -> Reply {
        Reply(Box::new(f))
    }

    /// A reply that arrives on a channel.
    pub fn channel() -> (Reply, Receiver<Value>) {
        let (tx, rx) = crossbeam_channel::bounded(1);
        (Reply::new(move |v| drop(tx.send(v))), rx)
    }

    pub fn send(self, v: Value) {
        (self.0)(v)
    }
}

/// A request and where its reply goes.
pub struct Call {
    pub request: Request,
    pub reply: Reply,
    /// Who asked, for logs: "control socket", "api (token NAME)".
    pub from: String,
}

/// A failure reply.
pub fn error(msg: impl Into<String>) -> Value {
    json!({ "ok": false, "error": msg.into() })
}

/// The listening side; removes its socket file when dropped.
pub struct Server {
    path: PathBuf,
    accept: Option<AcceptLoop>,
}

impl Server {
    /// Binds `path` (creating its directory) and serves it on a thread
    /// pinned to `cpu`. `reply_timeout` bounds how long a client waits for
    /// the control thread.
    pub fn start(path: &Path, cpu: Option<usize>, calls: Sender<Call>, reply_timeout: Duration) -> Result<Server, String> {
        let listener = bind(path)?;
        let at = path.to_owned();
        let wake = move || drop(UnixStream::connect(&at));
        let accept = AcceptLoop::start("patronus-ctl", cpu, listener, wake, move |conn| serve(conn, &calls, reply_timeout))
            .map_err(|e| format!("control socket: {e}"))?;
        Ok(Server { path: path.to_owned(), accept: Some(accept) })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        // The thread first, then its socket file.
        drop(self.accept.take());
        let _ = std::fs::remove_file(&self.path);
    }
}

fn bind(path: &Path) -> Result<UnixListener, String> {
    let shown = path.display();
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| format!("control socket {shown}: cannot create {}: {e}", dir.display()))?;
    }
    if let Ok(m) = std::fs::symlink_metadata(path) {
        use std::os::unix::fs::FileTypeExt;
        if !m.file_type().is_socket() {
            return Err(format!("control socket {shown}: the path exists and is not a socket; not replacing it (remove it, or choose another [control] socket)"));
        }
        if UnixStream::connect(path).is_ok() {
            return Err(format!(
                "control socket {shown} is in use: another patronus is running with it (give each instance its own [control] socket or eal.file_prefix)"
            ));
        }
        // Left by a process that died.
        std::fs::remove_file(path).map_err(|e| format!("control socket {shown}: cannot remove the stale socket: {e}"))?;
    }
    // Created 0600 from the start: no window in which others could connect.
    // SAFETY: umask only swaps the process's file-creation mask.
    let old = unsafe { libc::umask(0o177) };
    let bound = UnixListener::bind(path);
    // SAFETY: as above.
    unsafe { libc::umask(old) };
    let listener = bound.map_err(|e| format!("control socket {shown}: cannot bind: {e}"))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
        .map_err(|e| format!("control socket {shown}: cannot set mode 0600: {e}"))?;
    Ok(listener)
}

fn serve(conn: UnixStream, calls: &Sender<Call>, reply_timeout: Duration) {
    let _ = conn.set_read_timeout(Some(READ_TIMEOUT));
    let _ = conn.set_write_timeout(Some(READ_TIMEOUT));
    let mut line = String::new();
    let reply = match BufReader::new((&conn).take(MAX_REQUEST)).read_line(&mut line) {
        Err(e) => error(format!("cannot read the request: {e}")),
        Ok(_) if !line.ends_with('\n') => error(format!("the request must be one line of JSON of at most {MAX_REQUEST} bytes")),
        Ok(_) => match serde_json::from_str::<Request>(&line) {
            Err(e) => error(format!("bad request: {e}")),
            Ok(request) => {
                let (tx, rx) = Reply::channel();
                if calls.send(Call { request, reply: tx, from: "control socket".into() }).is_err() {
                    error("the appliance is shutting down")
                } else {
                    rx.recv_timeout(reply_timeout).unwrap_or_else(|_| error("the control thread did not answer in time"))
                }
            }
        },
    };
    let mut w = &conn;
    let _ = writeln!(w, "{reply}");
}

/// Sends one request and returns the reply. Errors say what to do.
pub fn request(path: &Path, req: &Request, timeout: Duration) -> Result<Value, String> {
    let shown = path.display();
    let conn = UnixStream::connect(path).map_err(|e| match e.kind() {
        io::ErrorKind::NotFound | io::ErrorKind::ConnectionRefused => {
            format!("no appliance answers on {shown}: is `patronus run` running with this config? ({e})")
        }
        io::ErrorKind::PermissionDenied => format!("{shown}: permission denied; the control socket is root-only (mode 0600)"),
        _ => format!("{shown}: {e}"),
    })?;
    conn.set_read_timeout(Some(timeout)).map_err(|e| e.to_string())?;
    let mut w = &conn;
    writeln!(w, "{}", serde_json::to_string(req).expect("requests serialize")).map_err(|e| format!("{shown}: {e}"))?;
    let mut line = String::new();
    BufReader::new(&conn).read_line(&mut line).map_err(|e| format!("{shown}: no reply: {e}"))?;
    serde_json::from_str(&line).map_err(|e| format!("{shown}: bad reply: {e}"))
}

/// The control thread's end of the channel.
pub type Calls = Receiver<Call>;

/// Where control sockets live unless `[control] socket` says otherwise.
pub const RUN_DIR: &str = "/run/patronus";

/// The socket an appliance with this `[eal] file_prefix` listens on by default.
pub fn default_socket(run_dir: &Path, file_prefix: &str) -> PathBuf {
    run_dir.join(format!("{file_prefix}.sock"))
}

/// The socket the CLI should ask: `socket` if given; else the one the
/// config file names, read leniently so that a broken file still reaches
/// the appliance (which validates, refuses, logs and counts); else the one
/// appliance answering in `run_dir`.
pub fn locate(socket: Option<&Path>, config: Option<&Path>, run_dir: &Path) -> Result<PathBuf, String> {
    match (socket, config) {
        (Some(s), _) => Ok(s.to_owned()),
        (None, Some(c)) => socket_of_config(c, run_dir),
        (None, None) => discover(run_dir),
    }
}

/// The control socket a config file names, without requiring the file to
/// be valid: `[control] socket`, else `[eal] file_prefix`'s default.
fn socket_of_config(config: &Path, run_dir: &Path) -> Result<PathBuf, String> {
    let shown = config.display();
    let text = crate::config::read_text(config).map_err(|e| format!("{shown}: {e}"))?;
    let (socket, prefix) = control_fields(&text);
    match socket {
        Some(s) if s.is_empty() => Err(format!("{shown}: the control socket is off ([control] socket = \"\"); give --socket")),
        Some(s) => Ok(PathBuf::from(s)),
        None => Ok(default_socket(run_dir, prefix.as_deref().unwrap_or(crate::config::DEFAULT_FILE_PREFIX))),
    }
}

/// `[control] socket` and `[eal] file_prefix` of a config file's text:
/// from the TOML when it parses, else line by line (`key = "value"` under
/// its `[section]`), so a typo elsewhere in the file does not hide them.
fn control_fields(text: &str) -> (Option<String>, Option<String>) {
    if let Ok(t) = text.parse::<toml::Table>() {
        let get = |section: &str, key: &str| t.get(section).and_then(|s| s.get(key)).and_then(|v| v.as_str()).map(str::to_owned);
        return (get("control", "socket"), get("eal", "file_prefix"));
    }
    let (mut socket, mut prefix) = (None, None);
    let mut section = "";
    for line in text.lines().map(str::trim) {
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.split_once(']')).map(|(n, _)| n.trim()) {
            section = name;
            continue;
        }
        let Some((key, value)) = line.split_once('=') else { continue };
        let value = value.trim().strip_prefix('"').and_then(|v| v.split_once('"')).map(|(v, _)| v.to_owned());
        match (section, key.trim()) {
            ("control", "socket") => socket = value,
            ("eal", "file_prefix") => prefix = value,
            _ => {}
        }
    }
    (socket, prefix)
}

/// The one appliance answering on a socket in `run_dir`. None or several
/// is an error that names what was found and what to give instead.
fn discover(run_dir: &Path) -> Result<PathBuf, String> {
    let mut found: Vec<PathBuf> = std::fs::read_dir(run_dir)
        .map(|d| d.filter_map(|e| e.ok()).map(|e| e.path()).filter(|p| p.extension().is_some_and(|x| x == "sock")).collect())
        .unwrap_or_default();
    found.sort();
    let (live, dead): (Vec<PathBuf>, Vec<PathBuf>) = found.into_iter().partition(|p| match UnixStream::connect(p) {
        Ok(_) => true,
        // Root-only sockets refuse others: an appliance is there all the same.
        Err(e) => e.kind() == io::ErrorKind::PermissionDenied,
    });
    let names = |v: &[PathBuf]| v.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ");
    match live.as_slice() {
        [one] => Ok(one.clone()),
        [] if dead.is_empty() => Err(format!(
            "no appliance is running: no control socket in {}; start one with `patronus run --config FILE`, \
             or name its socket with --config FILE or --socket PATH",
            run_dir.display()
        )),
        [] => Err(format!(
            "no appliance answers on {} (left by appliances that stopped); start one, or name its socket with --config FILE or --socket PATH",
            names(&dead)
        )),
        several => Err(format!("{} appliances are running ({}); say which with --config FILE or --socket PATH", several.len(), names(several))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sock(name: &str) -> PathBuf {
        std::env::temp_dir().join(format!("patronus-ctl-{}-{name}", std::process::id())).join("s.sock")
    }

    #[test]
    fn requests_reach_the_control_thread_and_replies_come_back() {
        let path = sock("rt");
        let (tx, rx) = crossbeam_channel::unbounded();
        let server = Server::start(&path, None, tx, Duration::from_secs(5)).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let control = std::thread::spawn(move || {
            let call = rx.recv().unwrap();
            assert_eq!(call.request, Request::Show { what: "ports".into() });
            call.reply.send(json!({"ok": true, "ports": []}));
        });
        let r = request(&path, &Request::Show { what: "ports".into() }, Duration::from_secs(5)).unwrap();
        assert_eq!(r, json!({"ok": true, "ports": []}));
        control.join().unwrap();
        drop(server);
        assert!(!path.exists(), "the socket is removed at shutdown");
    }

    #[test]
    fn bad_requests_get_an_error_and_a_second_server_is_refused() {
        let path = sock("bad");
        let (tx, _rx) = crossbeam_channel::unbounded();
        let _server = Server::start(&path, None, tx.clone(), Duration::from_secs(5)).unwrap();
        let e = Server::start(&path, None, tx, Duration::from_secs(5)).err().unwrap();
        assert!(e.contains("is in use"), "{e}");
        let conn = UnixStream::connect(&path).unwrap();
        let mut w = &conn;
        writeln!(w, "{{\"cmd\":\"format-disk\"}}").unwrap();
        let mut line = String::new();
        BufReader::new(&conn).read_line(&mut line).unwrap();
        let v: Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["ok"], false);
        assert!(v["error"].as_str().unwrap().contains("unknown variant `format-disk`"), "{v}");
    }

    #[test]
    fn a_stale_socket_file_is_replaced() {
        let path = sock("stale");
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        drop(UnixListener::bind(&path).unwrap());
        assert!(path.exists());
        let (tx, _rx) = crossbeam_channel::unbounded();
        assert!(Server::start(&path, None, tx, Duration::from_secs(5)).is_ok());
    }

    #[test]
    fn a_broken_config_still_names_its_socket() {
        let dir = sock("cfg").parent().unwrap().to_owned();
        std::fs::create_dir_all(&dir).unwrap();
        let run = Path::new("/run/x");
        let write = |name: &str, text: &str| {
            let p = dir.join(name);
            std::fs::write(&p, text).unwrap();
            p
        };
        // Valid TOML, invalid config (an unknown field): the TOML is read.
        let p = write("a.toml", "[eal]\nfile_prefix = \"site-a\"\nbogus = 1\n");
        assert_eq!(locate(None, Some(&p), run).unwrap(), Path::new("/run/x/site-a.sock"));
        // Not even TOML: the lines are read.
        let p = write("b.toml", "[eal]\nfile_prefix = \"site-b\" # note\n[[port]\nname = \n[control]\nsocket = \"/tmp/b.sock\"\n");
        assert_eq!(locate(None, Some(&p), run).unwrap(), Path::new("/tmp/b.sock"));
        let p = write("c.toml", "[[port]\nname = \n");
        assert_eq!(locate(None, Some(&p), run).unwrap(), Path::new("/run/x/patronus.sock"));
        let p = write("d.toml", "[control]\nsocket = \"\"\n");
        assert!(locate(None, Some(&p), run).unwrap_err().contains("the control socket is off"));
        let e = locate(None, Some(&dir.join("missing.toml")), run).unwrap_err();
        assert!(e.contains("missing.toml: cannot read"), "{e}");
        // --socket wins.
        assert_eq!(locate(Some(Path::new("/s")), Some(&p), run).unwrap(), Path::new("/s"));
    }

    #[test]
    fn what_is_not_a_socket_is_never_replaced() {
        let path = sock("notsock");
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, "precious").unwrap();
        let (tx, _rx) = crossbeam_channel::unbounded();
        let e = Server::start(&path, None, tx, Duration::from_secs(5)).err().unwrap();
        assert!(e.contains("exists and is not a socket"), "{e}");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "precious");
    }

    #[test]
    fn a_bare_command_finds_the_one_running_appliance() {
        let dir = sock("disc").parent().unwrap().join("run");
        std::fs::create_dir_all(&dir).unwrap();
        let e = locate(None, None, &dir).unwrap_err();
        assert!(e.contains("no appliance is running") && e.contains("--socket"), "{e}");
        // A socket left by an appliance that died does not count.
        drop(UnixListener::bind(dir.join("old.sock")).unwrap());
        let e = locate(None, None, &dir).unwrap_err();
        assert!(e.contains("old.sock (left by appliances that stopped)"), "{e}");
        let (tx, _rx) = crossbeam_channel::unbounded();
        let _a = Server::start(&dir.join("a.sock"), None, tx.clone(), Duration::from_secs(5)).unwrap();
        assert_eq!(locate(None, None, &dir).unwrap(), dir.join("a.sock"));
        let _b = Server::start(&dir.join("b.sock"), None, tx, Duration::from_secs(5)).unwrap();
        let e = locate(None, None, &dir).unwrap_err();
        assert!(e.contains("2 appliances are running") && e.contains("a.sock") && e.contains("b.sock"), "{e}");
    }

    #[test]
    fn no_server_is_a_clear_error() {
        let e = request(Path::new("/nonexistent/patronus.sock"), &Request::Reload, Duration::from_secs(1)).unwrap_err();
        assert!(e.contains("no appliance answers on /nonexistent/patronus.sock"), "{e}");
    }
}
