//! Load for the API benchmark (scripts/perf-api.sh): N dashboards, each a
//! WebSocket subscribed to `figures` and `events` as the page does, plus
//! a steady rate of GraphQL queries over HTTP (status, paths, ports,
//! applications in turn). Prints one JSON line at the end: figures
//! received per dashboard, queries sent and answered, their latency
//! quantiles, errors.
//!
//!   api_load --addr 127.0.0.1:9100 --token-file F --dashboards 50 --qps 100 --seconds 60

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

struct Args {
    addr: SocketAddr,
    token: String,
    dashboards: usize,
    qps: u64,
    seconds: u64,
    /// The dashboard's subscription: every figure.
    figures: String,
}

fn args() -> Result<Args, String> {
    let mut a = Args {
        addr: "127.0.0.1:9100".parse().unwrap(),
        token: String::new(),
        dashboards: 50,
        qps: 100,
        seconds: 60,
        figures: String::new(),
    };
    let mut it = std::env::args().skip(1);
    while let Some(k) = it.next() {
        let mut v = || it.next().ok_or(format!("{k} needs a value"));
        match k.as_str() {
            "--addr" => a.addr = v()?.parse().map_err(|e| format!("--addr: {e}"))?,
            "--token-file" => a.token = std::fs::read_to_string(v()?).map_err(|e| format!("--token-file: {e}"))?.trim().to_owned(),
            "--dashboards" => a.dashboards = v()?.parse().map_err(|e| format!("--dashboards: {e}"))?,
            "--qps" => a.qps = v()?.parse().map_err(|e| format!("--qps: {e}"))?,
            "--seconds" => a.seconds = v()?.parse().map_err(|e| format!("--seconds: {e}"))?,
            "--help" | "-h" => {
                return Err("api_load --addr ADDR:PORT --token-file FILE [--dashboards 50] [--qps 100] [--seconds 60]".into())
            }
            _ => return Err(format!("unknown argument {k}; see --help")),
        }
    }
    Ok(a)
}

#[derive(Default)]
struct Counts {
    figures: AtomicU64,
    events: AtomicU64,
    ws_errors: AtomicU64,
    sent: AtomicU64,
    answered: AtomicU64,
    failed: AtomicU64,
}

async fn dashboard(a: Arc<Args>, c: Arc<Counts>, until: Instant) {
    let mut req = format!("ws://{}/graphql/ws", a.addr).into_client_request().unwrap();
    req.headers_mut().insert("Sec-WebSocket-Protocol", "graphql-transport-ws".parse().unwrap());
    let Ok((mut ws, _)) = tokio_tungstenite::connect_async(req).await else {
        c.ws_errors.fetch_add(1, Ordering::Relaxed);
        return;
    };
    let init = json!({ "type": "connection_init", "payload": { "authorization": format!("Bearer {}", a.token) } });
    let _ = ws.send(Message::text(init.to_string())).await;
    let mut subscribed = false;
    while Instant::now() < until {
        let Ok(Some(Ok(m))) = tokio::time::timeout(until.saturating_duration_since(Instant::now()), ws.next()).await else { break };
        let Message::Text(t) = m else { continue };
        let v: serde_json::Value = serde_json::from_str(&t).unwrap_or_default();
        match v["type"].as_str() {
            Some("connection_ack") if !subscribed => {
                subscribed = true;
                for (id, q) in [("f", a.figures.as_str()), ("e", "subscription { events { seq kind message } }")] {
                    let _ = ws.send(Message::text(json!({ "id": id, "type": "subscribe", "payload": { "query": q } }).to_string())).await;
                }
            }
            Some("ping") => {
                let _ = ws.send(Message::text(r#"{"type":"pong"}"#)).await;
            }
            Some("next") if !v["payload"]["errors"].is_null() => {
                if c.ws_errors.fetch_add(1, Ordering::Relaxed) == 0 {
                    eprintln!("api_load: refused: {t}");
                }
            }
            Some("complete") => {}
            Some("next") if v["id"] == "f" => {
                c.figures.fetch_add(1, Ordering::Relaxed);
            }
            Some("next") => {
                c.events.fetch_add(1, Ordering::Relaxed);
            }
            _ => {
                if c.ws_errors.fetch_add(1, Ordering::Relaxed) == 0 {
                    eprintln!("api_load: unexpected message: {t}");
                }
            }
        }
    }
    let _ = ws.close(None).await;
}

async fn query(a: &Args, q: &str) -> Result<(), String> {
    let body = json!({ "query": q }).to_string();
    let mut s = tokio::net::TcpStream::connect(a.addr).await.map_err(|e| e.to_string())?;
    let req = format!(
        "POST /graphql HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        a.addr,
        a.token,
        body.len()
    );
    s.write_all(req.as_bytes()).await.map_err(|e| e.to_string())?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).await.map_err(|e| e.to_string())?;
    let text = String::from_utf8_lossy(&buf);
    if text.starts_with("HTTP/1.1 200") && !text.contains("\"errors\"") {
        Ok(())
    } else {
        Err(text.lines().next().unwrap_or("").to_owned())
    }
}

fn main() {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let a = match args() {
        Ok(mut a) => {
            a.figures = format!("subscription {{ figures {} }}", rt.block_on(patronus::api::schema::selection("Figures")));
            Arc::new(a)
        }
        Err(e) => {
            eprintln!("api_load: {e}");
            std::process::exit(2);
        }
    };
    let c = Arc::new(Counts::default());
    let lat = Arc::new(std::sync::Mutex::new(Vec::<f64>::new()));
    let until = Instant::now() + Duration::from_secs(a.seconds);
    rt.block_on(async {
        let mut tasks = Vec::new();
        for _ in 0..a.dashboards {
            tasks.push(tokio::spawn(dashboard(a.clone(), c.clone(), until)));
        }
        let queries = [
            format!("{{ status {} }}", patronus::api::schema::selection("Status").await),
            format!("{{ paths {} }}", patronus::api::schema::selection("Paths").await),
            format!("{{ ports {} }}", patronus::api::schema::selection("Port").await),
            format!("{{ applications(first: 20) {} }}", patronus::api::schema::selection("ApplicationPage").await),
        ];
        let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / a.qps.max(1) as f64));
        let mut n = 0usize;
        while Instant::now() < until {
            tick.tick().await;
            let (a, c, lat) = (a.clone(), c.clone(), lat.clone());
            let q = queries[n % queries.len()].clone();
            n += 1;
            c.sent.fetch_add(1, Ordering::Relaxed);
            tokio::spawn(async move {
                let t = Instant::now();
                match query(&a, &q).await {
                    Ok(()) => {
                        c.answered.fetch_add(1, Ordering::Relaxed);
                        lat.lock().unwrap().push(t.elapsed().as_secs_f64() * 1e3);
                    }
                    Err(_) => {
                        c.failed.fetch_add(1, Ordering::Relaxed);
                    }
                }
            });
        }
        for t in tasks {
            let _ = t.await;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    });
    let mut l = lat.lock().unwrap().clone();
    l.sort_by(|x, y| x.partial_cmp(y).unwrap());
    let q = |p: f64| l.get(((l.len() as f64 - 1.0) * p) as usize).copied();
    let r = json!({
        "dashboards": a.dashboards, "seconds": a.seconds, "qps": a.qps,
        "figures_per_dashboard_per_second": c.figures.load(Ordering::Relaxed) as f64 / a.dashboards.max(1) as f64 / a.seconds as f64,
        "events": c.events.load(Ordering::Relaxed), "ws_errors": c.ws_errors.load(Ordering::Relaxed),
        "queries_sent": c.sent.load(Ordering::Relaxed), "queries_answered": c.answered.load(Ordering::Relaxed),
        "queries_failed": c.failed.load(Ordering::Relaxed),
        "query_ms": { "p50": q(0.5), "p99": q(0.99), "max": l.last() },
    });
    println!("{r}");
}
