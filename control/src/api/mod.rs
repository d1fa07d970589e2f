//! The management plane: one HTTP server on the control core, serving
//! `/metrics` (Prometheus), the GraphQL API (`/graphql`, subscriptions
//! over WebSocket at `/graphql/ws`) and the dashboard (`/`).
//!
//! It runs a single-threaded tokio runtime on a thread pinned to the
//! control thread's CPU. It owns no appliance state: every query, mutation
//! and the once-a-second figures go to the control thread as a
//! [`ctl::Call`], exactly like `patronus show` over the control socket, and
//! the control thread answers from the same snapshots and counters. So the
//! server never takes a lock a worker takes, and a slow or hostile client
//! costs the control thread nothing but the requests it is allowed to make.
//!
//! Who may do what is in [`auth`]; the schema in [`schema`]; the chart
//! history the control thread keeps in [`history`].

pub mod auth;
pub mod history;
pub mod schema;
pub mod types;

use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{DefaultBodyLimit, State, WebSocketUpgrade};
use axum::http::{header, HeaderMap, HeaderValue, Request, Response, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::Router;
use crossbeam_channel::Sender;
use serde_json::{json, Value};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::config::api::ApiConf;
use crate::ctl::{Call, Reply, Request as CtlRequest};
use auth::{Caller, Limiter, Role, TokenFile};

/// How long a client may take to send a request's headers.
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a TLS handshake may take.
const TLS_TIMEOUT: Duration = Duration::from_secs(10);

/// The dashboard, embedded in the binary (no CDN, no dependency).
const INDEX_HTML: &str = include_str!("dashboard/index.html");
const APP_JS: &str = include_str!("dashboard/app.js");
const STYLE_CSS: &str = include_str!("dashboard/style.css");

/// The content security policy of every response: only this origin's
/// scripts, styles and connections; no frames, forms or plugins.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; \
                   frame-ancestors 'none'; base-uri 'none'; form-action 'none'";

/// What every request handler shares.
pub struct Shared {
    calls: Sender<Call>,
    reply_timeout: Duration,
    tokens: Option<TokenFile>,
    limiter: Mutex<Limiter>,
    conf: ApiConf,
    tls: bool,
    schema: schema::PatronusSchema,
    /// Live subscriptions, against `conf.max_subscriptions`.
    subscriptions: AtomicUsize,
    /// The latest once-a-second figures, for every subscribed dashboard.
    figures: tokio::sync::watch::Sender<Option<types::Figures>>,
}

/// Counts a refused request in `patronus_api_refused_total{reason}`:
/// auth (no or bad token), rate (too many failures), origin, role.
pub fn refused(reason: &'static str) {
    metrics::counter!("patronus_api_refused_total", "reason" => reason).increment(1);
}

impl Shared {
    /// Asks the control thread; waits at most the reply timeout.
    pub async fn ask(&self, request: CtlRequest, from: &Caller) -> Value {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let call = Call { request, reply: Reply::new(move |v| drop(tx.send(v))), from: format!("api (token {})", from.name) };
        if self.calls.send(call).is_err() {
            return crate::ctl::error("the appliance is shutting down");
        }
        match tokio::time::timeout(self.reply_timeout, rx).await {
            Ok(Ok(v)) => v,
            _ => crate::ctl::error("the control thread did not answer in time"),
        }
    }

    /// The caller of a request with these headers from `ip`: `Err` is the
    /// HTTP refusal (401 without a valid token where one is needed, 429
    /// after too many failures).
    fn authenticate(&self, headers: &HeaderMap, ip: IpAddr, need_token: bool) -> Result<Caller, (StatusCode, &'static str)> {
        let bearer = headers.get(header::AUTHORIZATION).map(|v| v.to_str().unwrap_or("").trim().to_owned());
        self.check_token(bearer.as_deref(), ip, need_token)
    }

    /// `presented`: the Authorization value ("Bearer TOKEN"), if any.
    fn check_token(&self, presented: Option<&str>, ip: IpAddr, need_token: bool) -> Result<Caller, (StatusCode, &'static str)> {
        let now = Instant::now();
        let Some(tokens) = self.tokens.as_ref().map(TokenFile::current) else {
            // No token file: read-only for everyone who can reach the
            // (loopback) socket; a presented token cannot be checked.
            return Ok(Caller::anonymous(Some(Role::Read)));
        };
        if self.limiter.lock().map(|mut l| l.blocked(ip, now)).unwrap_or(false) {
            refused("rate");
            return Err((StatusCode::TOO_MANY_REQUESTS, "too many failed attempts from this address; wait a minute"));
        }
        let Some(value) = presented else {
            return if need_token {
                refused("auth");
                Err((StatusCode::UNAUTHORIZED, "this API needs a bearer token (Authorization: Bearer TOKEN)"))
            } else {
                Ok(Caller::anonymous(None))
            };
        };
        let token = value.strip_prefix("Bearer ").unwrap_or("").trim();
        match tokens.check(token) {
            Some(c) => Ok(c),
            None => {
                refused("auth");
                let n = self.limiter.lock().map(|mut l| l.fail(ip, now)).unwrap_or(0);
                tracing::warn!(source = %ip, failures = n, "api: authentication failed from {ip} ({n} in the last minute)");
                Err((StatusCode::UNAUTHORIZED, "the bearer token is not valid"))
            }
        }
    }

    /// The caller of an API request (`POST /graphql`, the WebSocket):
    /// its Origin may call, and its token (if `need_token`, one is
    /// required) is good. `Err` is the refusal to send.
    fn admit(&self, headers: &HeaderMap, ip: IpAddr, need_token: bool) -> Result<Caller, Response<Body>> {
        if !self.origin_allowed(headers) {
            refused("origin");
            return Err(refuse(StatusCode::FORBIDDEN, "this origin may not call the API (see [api] cors_origins)"));
        }
        self.authenticate(headers, ip, need_token).map_err(|(st, m)| refuse(st, m))
    }

    /// Whether a request's Origin (if any) may call: this server's own
    /// origin, or one in `[api] cors_origins`.
    fn origin_allowed(&self, headers: &HeaderMap) -> bool {
        let Some(origin) = headers.get(header::ORIGIN).and_then(|o| o.to_str().ok()) else { return true };
        let host = headers.get(header::HOST).and_then(|h| h.to_str().ok()).unwrap_or("");
        let scheme = if self.tls { "https" } else { "http" };
        origin == format!("{scheme}://{host}") || self.conf.cors_origins.iter().any(|o| o == origin)
    }
}

impl Shared {
    /// A server's shared state with no control thread behind it (every
    /// request to the appliance answers "shutting down"): what the fuzz
    /// target runs the GraphQL entry against.
    pub fn detached(conf: ApiConf) -> Arc<Shared> {
        Shared::new(conf, crossbeam_channel::unbounded().0, Duration::from_millis(10), None, false)
    }

    fn new(conf: ApiConf, calls: Sender<Call>, reply_timeout: Duration, tokens: Option<TokenFile>, tls: bool) -> Arc<Shared> {
        Arc::new(Shared {
            calls,
            reply_timeout,
            tokens,
            limiter: Mutex::new(Limiter::default()),
            tls,
            schema: schema::build(),
            conf,
            subscriptions: AtomicUsize::new(0),
            figures: tokio::sync::watch::channel(None).0,
        })
    }

    /// Runs one GraphQL request (query text, variables as JSON) as
    /// `caller`, as `POST /graphql` does after authentication.
    pub async fn execute(self: &Arc<Shared>, query: &str, variables: &[u8], caller: Caller) -> Value {
        let vars = serde_json::from_slice(variables).map(async_graphql::Variables::from_json).unwrap_or_default();
        let req = async_graphql::Request::new(query).variables(vars).data(caller).data(self.clone());
        serde_json::to_value(self.schema.execute(req).await).unwrap_or(Value::Null)
    }
}

/// The source address of a request's connection.
#[derive(Clone, Copy, Debug)]
struct Peer(SocketAddr);

/// The running server; dropping it stops and joins its thread.
pub struct Server {
    addr: SocketAddr,
    tls: bool,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Server {
    /// Binds the address, loads TLS and tokens (errors name the file), and
    /// serves on a thread pinned to `cpu`.
    pub fn start(conf: ApiConf, cpu: Option<usize>, calls: Sender<Call>, reply_timeout: Duration) -> Result<Server, String> {
        let listen = conf.listen;
        if !crate::config::api::may_listen(listen.ip(), conf.tls.is_some(), conf.tokens_file.is_some()) {
            return Err(format!("[api] listen = \"{listen}\" is not a loopback address; set tls_cert, tls_key and tokens_file first"));
        }
        let tls = match &conf.tls {
            Some((cert, key)) => Some(tls_acceptor(cert, key)?),
            None => None,
        };
        let tokens = conf.tokens_file.as_deref().map(TokenFile::load).transpose()?;
        raise_fd_limit(conf.max_connections as u64 + 256);
        let listener = std::net::TcpListener::bind(listen).map_err(|e| format!("API server {listen} ([api] listen): cannot bind: {e}"))?;
        listener.set_nonblocking(true).map_err(|e| e.to_string())?;
        let addr = listener.local_addr().map_err(|e| e.to_string())?;
        let shared = Shared::new(conf, calls, reply_timeout, tokens, tls.is_some());
        let (stop, stopped) = tokio::sync::oneshot::channel();
        let has_tls = tls.is_some();
        let thread = std::thread::Builder::new()
            .name("patronus-api".into())
            .spawn(move || {
                if let Some(c) = cpu {
                    core_affinity::set_for_current(core_affinity::CoreId { id: c });
                }
                let rt = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
                    Ok(rt) => rt,
                    Err(e) => {
                        tracing::error!("API server: cannot start its runtime: {e}");
                        return;
                    }
                };
                rt.block_on(serve(listener, tls, shared, stopped));
            })
            .map_err(|e| format!("API server: cannot start its thread: {e}"))?;
        Ok(Server { addr, tls: has_tls, stop: Some(stop), thread: Some(thread) })
    }

    /// The dashboard's URL (port 0 resolved).
    pub fn url(&self) -> String {
        format!("{}://{}/", if self.tls { "https" } else { "http" }, self.addr)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Raises the open-file limit toward `want` (idle clients hold sockets).
fn raise_fd_limit(want: u64) {
    let mut r = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: a valid rlimit buffer.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut r) } == 0 && r.rlim_cur < want + 1024 {
        r.rlim_cur = (want + 1024).min(r.rlim_max);
        // SAFETY: as above.
        unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &r) };
    }
}

fn tls_acceptor(cert: &std::path::Path, key: &std::path::Path) -> Result<tokio_rustls::TlsAcceptor, String> {
    use tokio_rustls::rustls;
    crate::config::keys::check_secret_file(key, "TLS key file", "a private key").map_err(|e| format!("[api] tls_key: {e}"))?;
    let read = |p: &std::path::Path| std::fs::read(p).map_err(|e| format!("cannot read {}: {e}", p.display()));
    let certs: Vec<_> = rustls_pemfile::certs(&mut &read(cert)?[..])
        .collect::<Result<_, _>>()
        .map_err(|e| format!("[api] tls_cert: {}: not a PEM certificate chain: {e}", cert.display()))?;
    if certs.is_empty() {
        return Err(format!("[api] tls_cert: {} holds no PEM certificate", cert.display()));
    }
    let key_der = rustls_pemfile::private_key(&mut &read(key)?[..])
        .map_err(|e| format!("[api] tls_key: {}: not a PEM private key: {e}", key.display()))?
        .ok_or_else(|| format!("[api] tls_key: {} holds no PEM private key", key.display()))?;
    // ring: no C toolchain beyond cc needed (aws-lc-rs wants cmake).
    #[allow(deprecated)]
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_no_client_auth()
        .with_single_cert(certs, key_der)
        .map_err(|e| format!("[api] tls_cert/tls_key: {e}"))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(tokio_rustls::TlsAcceptor::from(Arc::new(config)))
}

/// The routes.
fn router(shared: Arc<Shared>) -> Router {
    let limit = shared.conf.max_request_bytes;
    Router::new()
        .route("/", get(|| async { page("text/html; charset=utf-8", INDEX_HTML) }))
        .route("/app.js", get(|| async { page("text/javascript; charset=utf-8", APP_JS) }))
        .route("/style.css", get(|| async { page("text/css; charset=utf-8", STYLE_CSS) }))
        .route("/metrics", get(metrics))
        .route("/auth", get(|State(s): State<Arc<Shared>>| async move { axum::Json(json!({ "tokens": s.tokens.is_some() })) }))
        .route("/schema.graphql", get(|State(s): State<Arc<Shared>>| async move { page("text/plain; charset=utf-8", s.schema.sdl()) }))
        .route("/graphql", post(graphql).options(preflight))
        .route("/graphql/ws", get(websocket))
        .fallback(|| async { (StatusCode::NOT_FOUND, "not found: try /, /graphql, /graphql/ws, /metrics, /auth or /schema.graphql\n") })
        .layer(DefaultBodyLimit::max(limit))
        .with_state(shared)
}

fn page(ctype: &'static str, body: impl Into<Body>) -> Response<Body> {
    let mut r = Response::new(body.into());
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(ctype));
    r
}

fn refuse(status: StatusCode, msg: &str) -> Response<Body> {
    let mut r = (status, axum::Json(json!({ "errors": [{ "message": msg }] }))).into_response();
    if status == StatusCode::UNAUTHORIZED {
        r.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer realm=\"patronus\""));
    }
    r
}

/// `GET /metrics`: the Prometheus exposition, as before. Beyond loopback
/// it needs a token (any role).
async fn metrics(State(s): State<Arc<Shared>>, axum::Extension(Peer(peer)): axum::Extension<Peer>, headers: HeaderMap) -> Response<Body> {
    let need = !s.conf.listen.ip().is_loopback();
    match s.authenticate(&headers, peer.ip(), need) {
        Err((st, m)) => refuse(st, m),
        Ok(_) => page("text/plain; version=0.0.4; charset=utf-8", crate::telemetry::render()),
    }
}

/// `POST /graphql`: queries and mutations.
async fn graphql(
    State(s): State<Arc<Shared>>,
    axum::Extension(Peer(peer)): axum::Extension<Peer>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response<Body> {
    let caller = match s.admit(&headers, peer.ip(), true) {
        Ok(c) => c,
        Err(refusal) => return refusal,
    };
    // JSON only (no multipart uploads); the body is already within
    // max_request_bytes (axum answers 413 beyond it).
    let req: async_graphql::Request = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => return refuse(StatusCode::BAD_REQUEST, &format!("the body must be a GraphQL request in JSON: {e}")),
    };
    let resp: async_graphql_axum::GraphQLResponse = s.schema.execute(req.data(caller).data(s.clone())).await.into();
    let mut r = resp.into_response();
    cors(&s, &headers, r.headers_mut());
    r
}

/// `OPTIONS /graphql`: a CORS preflight, answered only for allowed origins.
async fn preflight(State(s): State<Arc<Shared>>, headers: HeaderMap) -> Response<Body> {
    let mut r = Response::new(Body::empty());
    *r.status_mut() = StatusCode::NO_CONTENT;
    cors(&s, &headers, r.headers_mut());
    r
}

fn cors(s: &Shared, req: &HeaderMap, out: &mut HeaderMap) {
    let Some(origin) = req.get(header::ORIGIN).and_then(|o| o.to_str().ok()) else { return };
    if s.conf.cors_origins.iter().any(|o| o == origin) {
        if let Ok(v) = HeaderValue::from_str(origin) {
            out.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, v);
            out.insert(header::ACCESS_CONTROL_ALLOW_METHODS, HeaderValue::from_static("POST, OPTIONS"));
            out.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, HeaderValue::from_static("authorization, content-type"));
            out.insert(header::VARY, HeaderValue::from_static("Origin"));
        }
    }
}

/// `GET /graphql/ws`: subscriptions (graphql-transport-ws). A browser
/// cannot set headers on a WebSocket, so the token may also come in the
/// connection_init payload: `{"authorization": "Bearer TOKEN"}`.
async fn websocket(
    State(s): State<Arc<Shared>>,
    axum::Extension(Peer(peer)): axum::Extension<Peer>,
    headers: HeaderMap,
    protocol: async_graphql_axum::GraphQLProtocol,
    upgrade: WebSocketUpgrade,
) -> Response<Body> {
    let header_caller = match s.admit(&headers, peer.ip(), false) {
        Ok(c) => c,
        Err(refusal) => return refusal,
    };
    let schema = s.schema.clone();
    let shared = s.clone();
    upgrade.protocols(async_graphql::http::ALL_WEBSOCKET_PROTOCOLS).max_message_size(s.conf.max_request_bytes).on_upgrade(
        move |socket| async move {
            async_graphql_axum::GraphQLWebSocket::new(socket, schema, protocol)
                .on_connection_init(move |payload| async move {
                    let presented = payload.get("authorization").or_else(|| payload.get("Authorization")).and_then(Value::as_str);
                    let caller = if header_caller.role.is_some() && presented.is_none() {
                        header_caller
                    } else {
                        shared.check_token(presented, peer.ip(), true).map_err(|(_, m)| async_graphql::Error::new(m))?
                    };
                    let mut data = async_graphql::Data::default();
                    data.insert(caller);
                    data.insert(shared);
                    Ok(data)
                })
                // No protocol keep-alive: graphql-transport-ws clients need
                // not ping, and a quiet dashboard must not be cut every 30 s.
                // A dead client stops taking the figures' bytes; the idle
                // timeout (no byte moved) closes it.
                .serve()
                .await
        },
    )
}

/// Headers every response carries.
fn secure(headers: &mut HeaderMap, tls: bool) {
    let set = |h: &mut HeaderMap, k: header::HeaderName, v: &'static str| {
        h.insert(k, HeaderValue::from_static(v));
    };
    set(headers, header::CONTENT_SECURITY_POLICY, CSP);
    set(headers, header::X_CONTENT_TYPE_OPTIONS, "nosniff");
    set(headers, header::X_FRAME_OPTIONS, "DENY");
    set(headers, header::REFERRER_POLICY, "no-referrer");
    set(headers, header::CACHE_CONTROL, "no-store");
    set(headers, header::HeaderName::from_static("cross-origin-opener-policy"), "same-origin");
    set(headers, header::HeaderName::from_static("cross-origin-resource-policy"), "same-origin");
    if tls {
        set(headers, header::STRICT_TRANSPORT_SECURITY, "max-age=31536000");
    }
}

/// The accept loop: at most `max_connections` at once (more wait in the
/// backlog), each served until it ends, goes idle, or the server stops.
async fn serve(
    listener: std::net::TcpListener,
    tls: Option<tokio_rustls::TlsAcceptor>,
    shared: Arc<Shared>,
    mut stopped: tokio::sync::oneshot::Receiver<()>,
) {
    let listener = match tokio::net::TcpListener::from_std(listener) {
        Ok(l) => l,
        Err(e) => {
            tracing::error!("API server: {e}");
            return;
        }
    };
    let slots = Arc::new(tokio::sync::Semaphore::new(shared.conf.max_connections));
    let app = router(shared.clone());
    tokio::spawn(schema::figures_feed(shared.clone()));
    let idle = shared.conf.idle_timeout;
    let tls_on = tls.is_some();
    loop {
        let permit = tokio::select! {
            _ = &mut stopped => return,
            p = slots.clone().acquire_owned() => match p { Ok(p) => p, Err(_) => return },
        };
        let (stream, peer) = tokio::select! {
            _ = &mut stopped => return,
            a = listener.accept() => match a {
                Ok(a) => a,
                Err(e) => {
                    tracing::debug!("API server: accept: {e}");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let app = app.clone();
        let tls = tls.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let svc = tower::service_fn(move |mut req: Request<hyper::body::Incoming>| {
                req.extensions_mut().insert(Peer(peer));
                let app = app.clone();
                async move {
                    let mut r = tower::ServiceExt::oneshot(app, req.map(Body::new)).await?;
                    secure(r.headers_mut(), tls_on);
                    Ok::<_, std::convert::Infallible>(r)
                }
            });
            match tls {
                None => serve_conn(stream, svc, idle).await,
                Some(acceptor) => match tokio::time::timeout(TLS_TIMEOUT, acceptor.accept(stream)).await {
                    Ok(Ok(s)) => serve_conn(s, svc, idle).await,
                    Ok(Err(e)) => tracing::debug!("API server: TLS handshake from {peer}: {e}"),
                    Err(_) => tracing::debug!("API server: TLS handshake from {peer} timed out"),
                },
            }
        });
    }
}

/// Serves one connection with HTTP/1.1 (and upgrades), closing it when
/// nothing has been read or written for `idle`.
async fn serve_conn<IO, S>(io: IO, svc: S, idle: Duration)
where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    S: tower::Service<Request<hyper::body::Incoming>, Response = Response<Body>, Error = std::convert::Infallible> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    let last = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let io = Watched { inner: io, last: last.clone(), start };
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(hyper_util::rt::TokioTimer::new()).header_read_timeout(HEADER_TIMEOUT).max_buf_size(64 * 1024);
    let conn = http.serve_connection(hyper_util::rt::TokioIo::new(io), hyper_util::service::TowerToHyperService::new(svc)).with_upgrades();
    tokio::pin!(conn);
    let mut tick = tokio::time::interval(Duration::from_secs(1).min(idle));
    loop {
        tokio::select! {
            r = &mut conn => {
                if let Err(e) = r {
                    tracing::debug!("API server: connection: {e}");
                }
                return;
            }
            _ = tick.tick() => {
                let quiet = start.elapsed().saturating_sub(Duration::from_millis(last.load(Ordering::Relaxed)));
                if quiet >= idle {
                    return;
                }
            }
        }
    }
}

/// A connection's IO, noting when it last moved bytes.
struct Watched<IO> {
    inner: IO,
    last: Arc<AtomicU64>,
    start: Instant,
}

impl<IO> Watched<IO> {
    fn touch(&self) {
        self.last.store(self.start.elapsed().as_millis() as u64, Ordering::Relaxed);
    }
}

impl<IO: AsyncRead + Unpin> AsyncRead for Watched<IO> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(r, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.touch();
        }
        r
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for Watched<IO> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, data: &[u8]) -> Poll<std::io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write(cx, data);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            self.touch();
        }
        r
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
