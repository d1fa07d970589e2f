//! The management API against a running appliance: every query matches
//! `patronus show --json`, subscriptions stream figures and events, the
//! authentication matrix on every mutation, a non-loopback listen without
//! TLS refused, a loose TLS key refused, TLS served, the depth, complexity,
//! size and subscription limits, 500 idle connections and a slow client,
//! and no secret in any response. No root needed (net_null ports).

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::*;
use serde_json::{json, Value};

/// An appliance with the API on a free loopback port, an admin and a read
/// token, a tunnel peer with a preshared key (secrets to look for).
struct Api {
    app: Appliance,
    addr: SocketAddr,
    admin: String,
    read: String,
    /// The site key, the preshared key, the tokens: none may leak.
    secrets: Vec<String>,
    _dir: Scratch,
    config: PathBuf,
}

fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_patronus")
}

fn token(dir: &Scratch, name: &str, role: &str) -> String {
    let out = run_with_timeout(
        patronus().args(["api-token", "--name", name, "--role", role, "--file"]).arg(dir.path("api-tokens")),
        Duration::from_secs(10),
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    text(&out.stdout).trim().to_owned()
}

fn secret_file(dir: &Scratch, name: &str, text: &str) -> PathBuf {
    let p = dir.write(name, text);
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
    p
}

impl Api {
    fn start(tag: &str, api_extra: &str) -> Api {
        let dir = Scratch::new(tag);
        let pfx = prefix(tag);
        let key = sh(&format!("{} genkey", bin())).trim().to_owned();
        let psk = sh(&format!("{} genkey", bin())).trim().to_owned();
        secret_file(&dir, "site.key", &format!("{key}\n"));
        secret_file(&dir, "peer.psk", &format!("{psk}\n"));
        let peer = sh(&format!("{} genkey | {} pubkey", bin(), bin())).trim().to_owned();
        let admin = token(&dir, "ops", "admin");
        let read = token(&dir, "grafana", "read");
        let socket = socket_path(&pfx);
        let config = dir.write(
            "patronus.toml",
            &TwoPorts::appliance(&pfx)
                .worker("poll_mode = \"adaptive\"")
                .extra(&format!("\n[control]\nsocket = \"{}\"\n", socket.display()))
                .extra(&format!("\n[api]\nlisten = \"127.0.0.1:0\"\ntokens_file = \"api-tokens\"\n{api_extra}\n"))
                .extra(&format!(
                    "\n[site]\nprivate_key_file = \"site.key\"\n\n\
                     [[tunnel.peer]]\nname = \"site-b\"\npublic_key = \"{peer}\"\npreshared_key = \"peer.psk\"\nendpoint = \"192.0.2.2:51820\"\nallowed_ips = [\"10.2.0.0/16\"]\n\n\
                     [[bfd]]\nname = \"b\"\npeer = \"192.0.2.2\"\n\n\
                     [[path]]\nname = \"wan\"\npeer = \"site-b\"\nport = \"wan0\"\nendpoint = \"192.0.2.2:51820\"\nbfd = \"b\"\nlabels = [\"isp\"]\n\n\
                     [[policy]]\nname = \"video\"\ncategory = [\"video\"]\nmax_latency_ms = 50\n"
                ))
                .toml(),
        );
        let mut app = Appliance::start(&config, socket);
        let url = app.metrics_url();
        let addr: SocketAddr = url.trim_start_matches("http://").trim_end_matches("/metrics").parse().unwrap();
        let secrets = vec![key, psk, admin.clone(), read.clone()];
        Api { app, addr, admin, read, secrets, _dir: dir, config }
    }

    fn gql(&self, token: Option<&str>, query: &str, variables: Value) -> (u16, Value) {
        let body = json!({ "query": query, "variables": variables }).to_string();
        let (status, _, text) = http(self.addr, None, "POST", "/graphql", token, &body, &[]);
        (status, serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}")))
    }

    /// `field` of the Query type with every field below it selected, as
    /// a client that wants everything writes it (found by introspection,
    /// so a field added to the schema is asked for here too).
    fn all_of(&self, field: &str) -> String {
        let q = self.data("{ __type(name: \"Query\") { fields { name type { kind name ofType { kind name ofType { kind name ofType { kind name } } } } } } }");
        let f = q["__type"]["fields"].as_array().unwrap().iter().find(|f| f["name"] == field).unwrap_or_else(|| panic!("no query {field}"));
        format!("{field} {}", self.selection(named(&f["type"])))
    }

    /// Every field of the object type `ty`, recursively.
    fn selection(&self, ty: &str) -> String {
        let q = self.data(&format!(
            "{{ __type(name: \"{ty}\") {{ kind fields {{ name type {{ kind name ofType {{ kind name ofType {{ kind name ofType {{ kind name }} }} }} }} }} }} }}"
        ));
        if q["__type"]["kind"] != "OBJECT" {
            return String::new();
        }
        let fields: Vec<String> = q["__type"]["fields"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| format!("{} {}", f["name"].as_str().unwrap(), self.selection(named(&f["type"]))))
            .collect();
        format!("{{ {} }}", fields.join(" "))
    }

    /// A query's data as the admin; panics on an error.
    fn data(&self, query: &str) -> Value {
        let (st, v) = self.gql(Some(&self.admin), query, json!({}));
        assert_eq!(st, 200, "{query}: {v}");
        assert!(v["errors"].is_null(), "{query}: {v}");
        v["data"].clone()
    }
}

/// The dashboard's subscription: every figure.
fn figures_query(api: &Api) -> String {
    format!("subscription {{ figures {} }}", api.selection("Figures"))
}

/// The named type inside NON_NULL and LIST wrappers.
fn named(t: &Value) -> &str {
    match t["name"].as_str() {
        Some(n) => n,
        None => named(&t["ofType"]),
    }
}

/// One HTTP/1.1 request (Connection: close) from `from` (a local address
/// to bind, for a second source); returns (status, head, body).
fn http(
    addr: SocketAddr,
    from: Option<&str>,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: &str,
    headers: &[(&str, &str)],
) -> (u16, String, String) {
    let mut s = match from {
        None => TcpStream::connect_timeout(&addr, Duration::from_secs(5)).unwrap(),
        Some(ip) => connect_from(ip, addr),
    };
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n",
        body.len()
    );
    if let Some(t) = token {
        req.push_str(&format!("Authorization: Bearer {t}\r\n"));
    }
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).unwrap();
    let _ = s.write_all(body.as_bytes());
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf);
    let all = String::from_utf8_lossy(&buf).into_owned();
    let (head, rest) = all.split_once("\r\n\r\n").unwrap_or((&all, ""));
    let status = head.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    let body = if head.to_ascii_lowercase().contains("transfer-encoding: chunked") { unchunk(rest) } else { rest.to_owned() };
    (status, head.to_owned(), body)
}

fn unchunk(mut s: &str) -> String {
    let mut out = String::new();
    while let Some((len, rest)) = s.split_once("\r\n") {
        let n = usize::from_str_radix(len.trim(), 16).unwrap_or(0);
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        s = rest[n..].trim_start_matches("\r\n");
    }
    out
}

/// Runs a future to completion on a runtime of its own.
fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(f)
}

/// A TCP connection to `addr` from the local address `ip` (127.0.0.2: a
/// second client); std cannot bind before connecting.
fn connect_from(ip: &str, addr: SocketAddr) -> TcpStream {
    block_on(async {
        let sock = tokio::net::TcpSocket::new_v4().unwrap();
        sock.bind(format!("{ip}:0").parse().unwrap()).unwrap();
        let s = sock.connect(addr).await.unwrap().into_std().unwrap();
        s.set_nonblocking(false).unwrap();
        s
    })
}

/// Whether `api` lies between `a` and `b` (two `show --json` readings
/// taken before and after it): equal strings and shapes, numbers in range
/// (with a little room for figures that are not totals).
fn between(a: &Value, api: &Value, b: &Value, at: &str) -> Result<(), String> {
    match (a, api, b) {
        (Value::Number(x), Value::Number(y), Value::Number(z)) => {
            let (x, y, z) = (x.as_f64().unwrap(), y.as_f64().unwrap(), z.as_f64().unwrap());
            let (lo, hi) = (x.min(z), x.max(z));
            let room = (hi - lo).max(hi.abs() * 0.5) + 1e-3;
            if y >= lo - room && y <= hi + room {
                Ok(())
            } else {
                Err(format!("{at}: {y} is not between {x} and {z}"))
            }
        }
        (Value::Array(x), Value::Array(y), Value::Array(z)) => {
            if y.len() != x.len() && y.len() != z.len() {
                return Err(format!("{at}: {} rows, show had {} and {}", y.len(), x.len(), z.len()));
            }
            if x.len() != z.len() {
                return Ok(()); // rows came and went between the readings
            }
            for i in 0..y.len() {
                between(&x[i], &y[i], &z[i], &format!("{at}[{i}]"))?;
            }
            Ok(())
        }
        // A count per reason: an object in show, a list in the API.
        (Value::Object(x), Value::Array(_), Value::Object(z)) => {
            let rows =
                |m: &serde_json::Map<String, Value>| Value::Array(m.iter().map(|(k, v)| json!({ "reason": k, "count": v })).collect());
            between(&rows(x), api, &rows(z), at)
        }
        (Value::Object(x), Value::Object(y), Value::Object(z)) => {
            for (k, v) in y {
                match (x.get(k), z.get(k)) {
                    (Some(p), Some(q)) => between(p, v, q, &format!("{at}.{k}"))?,
                    _ => return Err(format!("{at}.{k}: not in show's answer")),
                }
            }
            if x.len() != y.len() {
                return Err(format!(
                    "{at}: fields differ from show's: {:?} vs {:?}",
                    x.keys().collect::<Vec<_>>(),
                    y.keys().collect::<Vec<_>>()
                ));
            }
            Ok(())
        }
        // Optional figures (null until measured) and changing states.
        _ if api == a || api == b => Ok(()),
        (Value::Null, _, _) | (_, _, Value::Null) => Ok(()),
        _ => Err(format!("{at}: {api} is neither {a} nor {b}")),
    }
}

#[test]
fn every_query_matches_show_json() {
    let api = Api::start("api-queries", "");
    // Traffic has flowed (net_null cross-connect) and a history sample exists.
    std::thread::sleep(Duration::from_millis(2500));
    // Every field of every query: the same names and figures as show's
    // (a field show has and the API lacks fails here, and the reverse).
    let topics = [
        ("status", "status"),
        ("ports", "ports"),
        ("counters", "counters"),
        ("drops", "drops"),
        ("workers", "workers"),
        ("latency", "latency"),
        ("neighbors", "neighbors"),
        ("flowTables", "flows"),
        ("peers", "peers"),
        ("paths", "paths"),
        ("bfd", "bfd"),
        ("qos", "qos"),
        ("config", "config"),
    ];
    for (field, topic) in topics {
        let query = format!("{{ {} }}", api.all_of(field));
        let a = api.app.show(topic);
        let v = api.data(&query)[field].clone();
        let b = api.app.show(topic);
        if let Err(e) = between(&a, &v, &b, field) {
            panic!("{e}\nquery: {query}\nshow before: {a}\napi: {v}\nshow after: {b}");
        }
    }
    // Not vacuous: the lab has a path, a BFD session and a rule.
    let paths = api.app.show("paths");
    assert_eq!(paths["paths"].as_array().map(Vec::len), Some(1), "{paths}");
    assert_eq!(paths["bfd"]["sessions"].as_array().map(Vec::len), Some(1), "{paths}");
    assert!(paths["choices"].as_array().is_some_and(|c| c.len() == 2), "{paths}");
    // Paged: the rows are show's.
    let apps = api.data(&format!("{{ {} }}", api.all_of("applications").replacen("applications", "applications(first: 5)", 1)));
    let apps = &apps["applications"];
    assert_eq!(apps["rows"].as_array().unwrap().len(), apps["total"].as_u64().unwrap().min(5) as usize, "{apps}");
    // Flows: this lab's traffic is not IP (net_null), so the tables are
    // empty and say so; the demo's test pages through real flows.
    let flows = api.data(&format!("{{ {} }}", api.all_of("flows")))["flows"].clone();
    assert_eq!(flows, json!({ "enabled": true, "rows": [], "end_cursor": null, "has_next_page": false }));
    let (_, v) = api.gql(Some(&api.read), "{ flows(after: \"x\") { rows { client } } }", json!({}));
    assert!(v["errors"][0]["message"].as_str().unwrap_or("").contains("WORKER:SLOT"), "{v}");
    // Events and history: their own shapes.
    let events = api.data(&format!("{{ {} }}", api.all_of("events")))["events"].clone();
    assert!(events.is_array(), "{events}");
    let h = api.data(&format!("{{ {} }}", api.all_of("history")))["history"].clone();
    let ports: Vec<&str> = h["ports"].as_array().unwrap().iter().map(|s| s["name"].as_str().unwrap()).collect();
    assert_eq!(ports, ["lan0", "wan0"], "{h}");
    let rx = &h["ports"][0]["columns"]["rx_pps"];
    assert!(rx.as_array().unwrap().iter().any(|v| v.as_f64().is_some_and(|x| x > 0.0)), "the history has traffic: {h}");
    // The running config is the file, as loaded.
    let text = api.data("{ config { text } }")["config"]["text"].as_str().unwrap().to_owned();
    assert_eq!(text, std::fs::read_to_string(&api.config).unwrap());
    assert_eq!(api.data("{ whoami { name role } }")["whoami"], json!({ "name": "ops", "role": "admin" }));
    // The SDL is served as docs/api.graphql holds it.
    let (st, _, sdl) = http(api.addr, None, "GET", "/schema.graphql", None, "", &[]);
    assert_eq!(st, 200);
    assert_eq!(sdl, std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/api.graphql")).unwrap());
    let (code, _) = api.app.stop();
    assert_eq!(code, Some(0));
}

/// Every mutation with no token, a bad token, a read token and an admin
/// token; then the limit on failed attempts, from a second address.
#[test]
fn the_authentication_matrix() {
    let api = Api::start("api-auth", "");
    let mutations = [
        ("reload", "mutation { reload { ok error } }"),
        ("rekey", "mutation { rekey(peer: \"site-b\") { ok error } }"),
        ("drain", "mutation { drainPath(path: \"nosuch\") { ok error } }"),
        ("undrain", "mutation { undrainPath(path: \"nosuch\") { ok error } }"),
    ];
    for (name, m) in mutations {
        let (st, v) = api.gql(None, m, json!({}));
        assert_eq!(st, 401, "{name} without a token: {v}");
        let (st, v) = api.gql(Some("ptk_not-a-token"), m, json!({}));
        assert_eq!(st, 401, "{name} with a bad token: {v}");
        let (st, v) = api.gql(Some(&api.read), m, json!({}));
        assert_eq!(st, 200);
        assert_eq!(v["errors"][0]["extensions"]["code"], "FORBIDDEN", "{name} as read: {v}");
        assert!(v["errors"][0]["message"].as_str().unwrap().contains("admin role"), "{v}");
        let (st, v) = api.gql(Some(&api.admin), m, json!({}));
        assert_eq!(st, 200);
        assert!(v["errors"].is_null(), "{name} as admin: {v}");
        let field = v["data"].as_object().unwrap().values().next().unwrap().clone();
        match name {
            "reload" | "rekey" => assert_eq!(field["ok"], true, "{name}: {field}"),
            _ => assert!(field["error"].as_str().unwrap().contains("no path named \"nosuch\""), "{name}: {field}"),
        }
    }
    // Queries: a token of either role; none is refused.
    assert_eq!(api.gql(None, "{ status { site } }", json!({})).0, 401);
    assert!(api.gql(Some(&api.read), "{ status { site } }", json!({})).1["errors"].is_null());
    // Each mutation attempt is an audit event: token name, action, result.
    let events = api.data("{ events(last: 256) { kind fields } }")["events"].clone();
    let audit: Vec<&Value> = events.as_array().unwrap().iter().filter(|e| e["kind"] == "audit").collect();
    assert_eq!(audit.len(), 8, "{events}");
    assert!(audit.iter().any(|e| e["fields"]["token"] == "grafana" && e["fields"]["ok"] == false));
    assert!(audit.iter().any(|e| e["fields"]["token"] == "ops" && e["fields"]["action"] == "reload" && e["fields"]["ok"] == true));
    // Failed attempts: after 10 from one address, even a good token waits.
    for _ in 0..10 {
        let (st, _, _) = http(api.addr, Some("127.0.0.2"), "POST", "/graphql", Some("ptk_wrong"), r#"{"query":"{status{site}}"}"#, &[]);
        assert_eq!(st, 401);
    }
    let (st, _, body) = http(api.addr, Some("127.0.0.2"), "POST", "/graphql", Some(&api.admin), r#"{"query":"{status{site}}"}"#, &[]);
    assert_eq!(st, 429, "{body}");
    // Another address is not affected.
    assert!(api.gql(Some(&api.admin), "{ status { site } }", json!({})).1["errors"].is_null());
    let (code, out) = api.app.stop();
    assert_eq!(code, Some(0));
    assert!(out.contains("authentication failed from 127.0.0.2"), "failures are logged:\n{out}");
    assert!(out.contains("audit: ops reload"), "{out}");
    for s in &api.secrets {
        assert!(!out.contains(s.as_str()), "a secret was logged");
    }
}

#[test]
fn token_changes_apply_without_a_restart() {
    let api = Api::start("api-token-reload", "");
    let status = |t: &str| api.gql(Some(t), "{ whoami { name } }", json!({})).0;
    // Polled slowly: each refusal counts against this address's 10 a minute.
    let wait_for = |t: &str, want: u16, what: &str| {
        let until = Instant::now() + Duration::from_secs(6);
        while status(t) != want {
            assert!(Instant::now() < until, "{what}");
            std::thread::sleep(Duration::from_millis(700));
        }
    };
    // A token added to the file works without a restart.
    let file = api._dir.path("api-tokens");
    let before = std::fs::read_to_string(&file).unwrap();
    let late = token(&api._dir, "late", "read");
    wait_for(&late, 200, "the added token never worked");
    // A changed file that is refused (readable by others) leaves the
    // tokens as they were.
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(status(&late), 200, "a refused file changed the tokens");
    // Revoked: the file without it.
    std::fs::write(&file, &before).unwrap();
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
    wait_for(&late, 401, "the revoked token still works");
    assert_eq!(status(&api.admin), 200);
    let metrics = http(api.addr, None, "GET", "/metrics", None, "", &[]).2;
    assert!(metrics.contains("patronus_api_token_reloads_total{result=\"refused\"} 1"), "{metrics}");
    let (code, out) = api.app.stop();
    assert_eq!(code, Some(0));
    assert!(out.contains("token file changed but is refused") && out.contains("reloaded: 3 token(s)"), "{out}");
    for s in &api.secrets {
        assert!(!out.contains(s.as_str()), "a secret was logged");
    }
}

#[test]
fn no_secret_in_any_response() {
    let api = Api::start("api-secrets", "");
    let mut all = String::new();
    let fields = [
        "status",
        "ports",
        "counters",
        "drops",
        "workers",
        "latency",
        "neighbors",
        "flowTables",
        "flows",
        "peers",
        "paths",
        "bfd",
        "qos",
        "config",
        "whoami",
        "applications",
        "events",
        "history",
    ];
    let everything: Vec<String> = fields.iter().map(|f| api.all_of(f)).collect();
    for q in [format!("{{ {} }}", everything.join(" ")), "mutation { rekey { ok message error peers } }".to_owned()] {
        let (_, v) = api.gql(Some(&api.admin), &q, json!({}));
        assert!(v["errors"].is_null(), "{q}: {v}");
        all.push_str(&v.to_string());
    }
    for path in ["/", "/app.js", "/metrics", "/schema.graphql"] {
        all.push_str(&http(api.addr, None, "GET", path, None, "", &[]).2);
    }
    assert!(all.contains("site-b"), "the answers were read");
    for s in &api.secrets {
        assert!(!all.contains(s.as_str()), "a secret is in a response");
    }
    // Failed token checks never echo the token.
    let (_, _, body) = http(api.addr, None, "POST", "/graphql", Some("ptk_echo-me"), "{}", &[]);
    assert!(!body.contains("echo-me"), "{body}");
    api.app.stop();
}

#[test]
fn listen_beyond_loopback_needs_tls_and_tokens_and_a_tight_key() {
    let dir = Scratch::new("api-listen");
    let pfx = prefix("apilisten");
    let control = format!("\n[control]\nsocket = \"{}\"\n", socket_path(&pfx).display());
    let cfg = |api: &str| dir.write("patronus.toml", &TwoPorts::appliance(&pfx).extra(&control).extra(&format!("\n[api]\n{api}\n")).toml());
    let check = |p: &Path| {
        let out = run_with_timeout(patronus().args(["check", "--no-env", "--config"]).arg(p), Duration::from_secs(30));
        (out.status.code(), text(&out.stderr))
    };
    let p = cfg("listen = \"0.0.0.0:9443\"");
    let (code, err) = check(&p);
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("api.listen") && err.contains("not a loopback address") && err.contains("tls_cert, tls_key and tokens_file"),
        "{err}"
    );
    assert!(err.contains("patronus.toml:"), "the error names the file and line: {err}");
    // `run` refuses it the same way, before anything starts.
    let out = run_with_timeout(patronus().args(["run", "--duration", "1", "--config"]).arg(&p), Duration::from_secs(30));
    assert!(!out.status.success() && text(&out.stderr).contains("not a loopback address"), "{}", text(&out.stderr));
    // TLS with a key others can read.
    let ok = sh(&format!(
        "cd {} && openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout tls.key -out tls.crt -days 2 -subj /CN=localhost 2>&1 && chmod 644 tls.key && echo made",
        dir.0.display()
    ));
    if !ok.contains("made") {
        skip(
            "listen_beyond_loopback_needs_tls_and_tokens_and_a_tight_key (TLS part)",
            &format!("openssl could not make a certificate: {ok}"),
        );
        return;
    }
    token(&dir, "ops", "admin");
    let p = cfg("listen = \"0.0.0.0:9443\"\ntls_cert = \"tls.crt\"\ntls_key = \"tls.key\"\ntokens_file = \"api-tokens\"");
    let (code, err) = check(&p);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("api.tls_key") && err.contains("mode 0644") && err.contains("chmod 600"), "{err}");
    // Tight, it passes; and served on loopback, HTTPS answers.
    std::fs::set_permissions(dir.path("tls.key"), std::fs::Permissions::from_mode(0o600)).unwrap();
    let (code, err) = check(&p);
    assert_eq!(code, Some(0), "{err}");
    let socket = socket_path(&pfx);
    let p = dir.write(
        "patronus.toml",
        &TwoPorts::appliance(&pfx)
            .extra(&format!("\n[control]\nsocket = \"{}\"\n", socket.display()))
            .extra("\n[api]\nlisten = \"127.0.0.1:0\"\ntls_cert = \"tls.crt\"\ntls_key = \"tls.key\"\ntokens_file = \"api-tokens\"\n")
            .toml(),
    );
    let mut app = Appliance::start(&p, socket);
    let url = app.metrics_url();
    assert!(url.starts_with("https://"), "{url}");
    let head = sh(&format!("curl -sk -D - -o /dev/null {}", url.replace("/metrics", "/")));
    assert!(head.starts_with("HTTP/1.1 200") && head.contains("strict-transport-security"), "{head}");
    // Beyond loopback even /metrics wants a token; here (loopback) it does not.
    assert!(sh(&format!("curl -sk {url}")).contains("patronus_worker_polls_total"));
    app.stop();
}

#[test]
fn depth_complexity_size_and_subscription_limits_hold() {
    let api = Api::start("api-limits", "max_request_bytes = 65536\nmax_subscriptions = 2");
    // Depth: a nested introspection query beyond the limit.
    let deep = "{ __schema { types { fields { type { ofType { ofType { ofType { ofType { ofType { ofType { ofType { ofType { ofType { ofType { ofType { ofType { name } } } } } } } } } } } } } } } } }";
    let (_, v) = api.gql(Some(&api.read), deep, json!({}));
    assert!(v["errors"][0]["message"].as_str().unwrap_or("").contains("nested too deep"), "{v}");
    // Complexity: 250 aliased reads of the control thread.
    let wide: String = (0..250).map(|i| format!("s{i}: status {{ site }} ")).collect();
    let (_, v) = api.gql(Some(&api.read), &format!("{{ {wide} }}"), json!({}));
    assert!(v["errors"][0]["message"].as_str().unwrap_or("").contains("complex"), "{v}");
    // Size: a body beyond max_request_bytes.
    let big = json!({ "query": "{ status { site } }", "variables": { "pad": "x".repeat(70_000) } }).to_string();
    let (st, _, body) = http(api.addr, None, "POST", "/graphql", Some(&api.read), &big, &[]);
    assert_eq!(st, 413, "{body}");
    // Origin: another site's page may not call.
    let (st, _, _) =
        http(api.addr, None, "POST", "/graphql", Some(&api.read), r#"{"query":"{status{site}}"}"#, &[("Origin", "http://evil.example")]);
    assert_eq!(st, 403);
    // Subscriptions: the third waits for a free slot.
    block_on(async {
        let mut a = ws_connect(api.addr, Some(&api.read)).await.unwrap();
        let mut b = ws_connect(api.addr, Some(&api.read)).await.unwrap();
        let mut c = ws_connect(api.addr, Some(&api.read)).await.unwrap();
        for (ws, id) in [(&mut a, "1"), (&mut b, "2")] {
            ws_subscribe(ws, id, &figures_query(&api)).await;
            let m = ws_next(ws).await;
            assert_eq!(m["type"], "next", "{m}");
        }
        ws_subscribe(&mut c, "3", &figures_query(&api)).await;
        let m = ws_next(&mut c).await;
        assert!(m["payload"]["data"].is_null(), "{m}");
        assert!(m["payload"]["errors"][0]["message"].as_str().unwrap_or("").contains("too many subscriptions"), "{m}");
    });
    api.app.stop();
}

#[test]
fn subscriptions_stream_figures_each_second_and_events_as_they_happen() {
    let api = Api::start("api-subs", "");
    block_on(async {
        // Without a token the connection is refused at init.
        let refused = ws_connect(api.addr, None).await;
        assert!(refused.is_err(), "a subscription without a token");
        let mut ws = ws_connect(api.addr, Some(&api.read)).await.unwrap();
        ws_subscribe(&mut ws, "f", &figures_query(&api)).await;
        ws_subscribe(&mut ws, "e", "subscription { events { seq kind message } }").await;
        let mut figures = Vec::new();
        let started = Instant::now();
        while figures.len() < 3 {
            let m = ws_next(&mut ws).await;
            assert_eq!(m["type"], "next", "{m}");
            if m["id"] == "f" {
                figures.push((started.elapsed(), m["payload"]["data"]["figures"].clone()));
            }
        }
        for topic in ["status", "ports", "paths", "peers", "drops", "apps", "qos", "workers", "flows"] {
            assert!(!figures[2].1[topic].is_null(), "figures lack {topic}: {}", figures[2].1);
        }
        let rx = |f: &Value| f["ports"][0]["rx_packets"].as_u64().unwrap();
        assert!(rx(&figures[2].1) > rx(&figures[1].1), "live figures");
        let gap = figures[2].0 - figures[1].0;
        assert!(gap > Duration::from_millis(500) && gap < Duration::from_millis(1600), "about a second apart: {gap:?}");
        // A reload (as admin, over HTTP) arrives as an event.
        let (_, v) = api.gql(Some(&api.admin), "mutation { reload { ok error errors } }", json!({}));
        assert_eq!(v["data"]["reload"]["ok"], true, "{v}");
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut kinds = Vec::new();
        while Instant::now() < deadline && !(kinds.contains(&"reload".to_owned()) && kinds.contains(&"audit".to_owned())) {
            let m = ws_next(&mut ws).await;
            if m["id"] == "e" {
                kinds.push(m["payload"]["data"]["events"]["kind"].as_str().unwrap_or("").to_owned());
            }
        }
        assert!(kinds.contains(&"reload".to_owned()) && kinds.contains(&"audit".to_owned()), "{kinds:?}");
    });
    api.app.stop();
}

/// A dashboard that only listens (sends nothing after subscribing, as
/// the page does) keeps getting its figures: nothing cuts it after 30 s.
#[test]
fn a_quiet_subscriber_keeps_its_figures() {
    let api = Api::start("api-quiet", "idle_timeout_s = 5");
    block_on(async {
        let mut ws = ws_connect(api.addr, Some(&api.read)).await.unwrap();
        ws_subscribe(&mut ws, "f", &figures_query(&api)).await;
        let start = Instant::now();
        let mut n = 0;
        while start.elapsed() < Duration::from_secs(40) {
            let m = ws_next(&mut ws).await;
            assert_eq!(m["type"], "next", "after {:?}: {m}", start.elapsed());
            n += 1;
        }
        assert!(n >= 37, "{n} figures in 40 s");
    });
    api.app.stop();
}

#[test]
fn idle_connections_and_a_slow_client_do_not_stop_the_api() {
    let api = Api::start("api-idle", "idle_timeout_s = 3");
    let median = |f: &dyn Fn() -> u16| {
        let mut t: Vec<Duration> = (0..15)
            .map(|_| {
                let s = Instant::now();
                assert_eq!(f(), 200);
                s.elapsed()
            })
            .collect();
        t.sort();
        t[7]
    };
    let metrics = || http(api.addr, None, "GET", "/metrics", None, "", &[]).0;
    let query = || http(api.addr, None, "POST", "/graphql", Some(&api.read), r#"{"query":"{status{site}}"}"#, &[]).0;
    let (m0, q0) = (median(&metrics), median(&query));
    let idle: Vec<TcpStream> = (0..500).map(|_| TcpStream::connect(api.addr).unwrap()).collect();
    // A slow client: a header byte every 200 ms.
    let addr = api.addr;
    let slow = std::thread::spawn(move || {
        let mut s = TcpStream::connect(addr).unwrap();
        for b in
            b"GET /metrics HTTP/1.1\r\nHost: x\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
        {
            if s.write_all(&[*b]).is_err() {
                return true; // closed by the server: the header timeout
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        false
    });
    std::thread::sleep(Duration::from_millis(200));
    let (m1, q1) = (median(&metrics), median(&query));
    eprintln!("median /metrics {m0:?} -> {m1:?}, query {q0:?} -> {q1:?} with 500 idle connections and a slow client");
    // Served, and not slowed beyond noise (generous: this is not a benchmark).
    assert!(m1 < m0 * 5 + Duration::from_millis(50), "/metrics slowed: {m0:?} -> {m1:?}");
    assert!(q1 < q0 * 5 + Duration::from_millis(50), "queries slowed: {q0:?} -> {q1:?}");
    // The idle ones are closed after idle_timeout_s.
    std::thread::sleep(Duration::from_secs(5));
    let mut closed = 0;
    for mut s in idle {
        s.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
        let mut b = [0u8; 1];
        closed += matches!(s.read(&mut b), Ok(0)) as usize;
    }
    assert_eq!(closed, 500, "idle connections are closed");
    assert!(slow.join().unwrap(), "the slow client is cut off by the header timeout");
    api.app.stop();
}

type Ws = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// A graphql-transport-ws connection, acknowledged; Err when init is refused.
async fn ws_connect(addr: SocketAddr, token: Option<&str>) -> Result<Ws, String> {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    use tokio_tungstenite::tungstenite::Message;
    let mut req = format!("ws://{addr}/graphql/ws").into_client_request().unwrap();
    req.headers_mut().insert("Sec-WebSocket-Protocol", "graphql-transport-ws".parse().unwrap());
    let (mut ws, _) = tokio_tungstenite::connect_async(req).await.map_err(|e| e.to_string())?;
    let payload = token.map_or(json!({}), |t| json!({ "authorization": format!("Bearer {t}") }));
    ws.send(Message::text(json!({ "type": "connection_init", "payload": payload }).to_string())).await.unwrap();
    match tokio::time::timeout(Duration::from_secs(5), ws.next()).await {
        Ok(Some(Ok(Message::Text(t)))) if t.contains("connection_ack") => Ok(ws),
        other => Err(format!("{other:?}")),
    }
}

async fn ws_subscribe(ws: &mut Ws, id: &str, query: &str) {
    use futures_util::SinkExt;
    let m = json!({ "id": id, "type": "subscribe", "payload": { "query": query } });
    ws.send(tokio_tungstenite::tungstenite::Message::text(m.to_string())).await.unwrap();
}

async fn ws_next(ws: &mut Ws) -> Value {
    use futures_util::StreamExt;
    loop {
        match tokio::time::timeout(Duration::from_secs(5), ws.next()).await {
            Ok(Some(Ok(tokio_tungstenite::tungstenite::Message::Text(t)))) => {
                let v: Value = serde_json::from_str(&t).unwrap();
                if v["type"] != "ping" && v["type"] != "pong" {
                    return v;
                }
            }
            Ok(Some(Ok(_))) => continue,
            other => panic!("no message: {other:?}"),
        }
    }
}
