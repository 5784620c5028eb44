//! The HTTP listener: hyper's HTTP/1.1 with a header-read timeout, an idle timeout and a cap on
//! open connections per address, and a graceful stop.
//!
//! - The request head must arrive within `http-header-timeout` (hyper's own timer), so a
//!   client that trickles a header holds nothing for long.
//! - A connection with no request in progress and no traffic either way for
//!   `http-idle-timeout` is closed (`Idle`); a request the server is still working on (a large
//!   COPY, a multipart completion) is never cut by it. A request body that stops arriving for
//!   as long fails (`TimedBody`), so a body sent a byte a minute holds nothing for long.
//!   (hyper also applies the header-read timeout to a keep-alive connection waiting for its
//!   next request.)
//! - An address (IPv6: its /64) holding `http-connections-per-address` connections gets 503
//!   with `Connection: close` on as many more, except for `/healthz`, so a balancer's health
//!   checks still pass while one client is over its share; past twice the limit its
//!   connections are closed at once.
//! - With TLS (`tls`), the handshake must end within `tls-handshake-timeout`; until it has,
//!   the connection counts against its address like any other.
//! - A connection from a trusted proxy (`--trusted-proxy`) may name its client in a PROXY
//!   protocol v2 header (HAProxy's `send-proxy-v2`, read before TLS) and in
//!   `X-Forwarded-For`: its requests then carry the client's address (`ConnectInfo`), which
//!   every per-address rule reads. The connection limit counts the client a PROXY header
//!   names, or else the proxy itself.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{ConnectInfo, Request};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::{Instant, Sleep};
use tower::ServiceExt;

use cells_core::auth::throttle::counted_as;
use cells_core::config::Limits;
use cells_core::connections::{Connections, Slot};
use cells_core::proxy::TrustedProxies;

/// Set on the requests of a connection over its address's limit.
#[derive(Clone, Copy, Debug)]
pub struct OverLimit;

/// How connections are spoken to: plain or TLS, and who may name the client.
#[derive(Clone, Default)]
pub struct Options {
    pub tls: Option<tokio_rustls::TlsAcceptor>,
    pub proxies: TrustedProxies,
}

/// Serve `router` on `listener` until `shutdown` completes, then let requests in progress
/// finish within `shutdown-timeout`.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: &Limits,
    options: Options,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.http_header_timeout);
    let shared = Arc::new(Shared {
        router,
        proxies: options.proxies,
        tls: options.tls,
        builder,
        connections: Connections::new(limits.http_connections_per_address),
        // Connections past the limit, answered 503 (or /healthz), up to as many again.
        overflow: Connections::new(limits.http_connections_per_address),
        body_timeout: limits.http_idle_timeout,
        idle_timeout: limits.http_idle_timeout,
        handshake_timeout: limits.tls_handshake_timeout,
        header_timeout: limits.http_header_timeout,
    });
    let graceful = GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        let (mut stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(error) => {
                    accept_failed(error).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let watcher = graceful.watcher();
        let shared = shared.clone();
        if shared.proxies.trusts(peer.ip()) {
            // A balancer's connection may name its client in a PROXY header: read it in the
            // connection's own task (never in this loop), then count the client, not the
            // balancer, against the per-address limit.
            tokio::spawn(async move {
                let wait = shared.header_timeout;
                let client = match cells_core::proxy::proxied_client(&mut stream, peer, wait).await {
                    Ok(client) => client,
                    Err(error) => {
                        tracing::debug!(%peer, %error, "closed: a bad PROXY header");
                        return;
                    }
                };
                if let Some(admitted) = shared.admit(client.ip()) {
                    shared.serve(stream, client, admitted, watcher).await;
                }
            });
            continue;
        }
        let Some(admitted) = shared.admit(peer.ip()) else {
            drop(stream);
            continue;
        };
        tokio::spawn(async move { shared.serve(stream, peer, admitted, watcher).await });
    }
    // Requests in flight finish, up to `shutdown-timeout`; idle connections close now.
    if tokio::time::timeout(limits.shutdown_timeout, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!(
            deadline = ?limits.shutdown_timeout,
            "HTTP requests still in flight at the shutdown deadline were cut"
        );
    }
    Ok(())
}

/// What every connection of one listener shares.
struct Shared {
    router: Router,
    proxies: TrustedProxies,
    tls: Option<tokio_rustls::TlsAcceptor>,
    builder: hyper::server::conn::http1::Builder,
    connections: Connections<IpAddr>,
    overflow: Connections<IpAddr>,
    body_timeout: Duration,
    idle_timeout: Duration,
    handshake_timeout: Duration,
    header_timeout: Duration,
}

/// A connection's place under its address's limit (held until it closes), or past the limit
/// (answered 503 but `/healthz`).
struct Admitted {
    _slot: Slot<IpAddr>,
    over_limit: bool,
}

impl Shared {
    /// A place for a connection of `client`; `None` past twice the limit (closed at once).
    fn admit(&self, client: IpAddr) -> Option<Admitted> {
        let key = counted_as(client);
        match self.connections.open(key) {
            Some(slot) => Some(Admitted {
                _slot: slot,
                over_limit: false,
            }),
            None => self.overflow.open(key).map(|slot| Admitted {
                _slot: slot,
                over_limit: true,
            }),
        }
    }

    /// Serve HTTP on one connection of `peer` (the client, when a PROXY header named it).
    async fn serve(&self, stream: TcpStream, peer: SocketAddr, admitted: Admitted, watcher: Watcher) {
        let over_limit = admitted.over_limit;
        let busy = Arc::new(AtomicUsize::new(0));
        let idle = Idle::new(stream, self.idle_timeout, busy.clone());
        let router = self.router.clone();
        let proxies = self.proxies.clone();
        let body_timeout = self.body_timeout;
        let service = hyper::service::service_fn(move |request: Request<Incoming>| {
            let ended = Arc::new(AtomicBool::new(false));
            let read = ended.clone();
            let mut request = request.map(|body| Body::new(TimedBody::new(body, body_timeout, ended)));
            let client = client_of(&proxies, peer, request.headers());
            request.extensions_mut().insert(ConnectInfo(client));
            if over_limit {
                request.extensions_mut().insert(OverLimit);
            }
            let working = Working::start(busy.clone());
            let router = router.clone();
            async move {
                let mut response = router.oneshot(request).await;
                drop(working);
                // Answered before its body was read (a refusal: 403, 413, 423, 507): the rest
                // of the body is still on its way, so this connection cannot carry another
                // request. Say so, or a client that pools connections sends its next request
                // on one we are closing (RFC 9112 §9.6).
                if !read.load(Ordering::Acquire)
                    && let Ok(response) = &mut response
                {
                    response
                        .headers_mut()
                        .insert(header::CONNECTION, HeaderValue::from_static("close"));
                }
                response
            }
        });
        match &self.tls {
            None => {
                let _ = watcher
                    .watch(self.builder.serve_connection(TokioIo::new(idle), service))
                    .await;
            }
            Some(acceptor) => match tokio::time::timeout(self.handshake_timeout, acceptor.accept(idle)).await
            {
                Ok(Ok(stream)) => {
                    let _ = watcher
                        .watch(self.builder.serve_connection(TokioIo::new(stream), service))
                        .await;
                }
                Ok(Err(error)) => tracing::debug!(%peer, %error, "TLS handshake failed"),
                Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
            },
        }
        drop(admitted);
    }
}

/// The plain-HTTP port beside HTTPS (`--http-redirect-bind`): a GET or HEAD that carries no
/// credential is sent to the same path on the external (HTTPS) URL, never to the host the
/// request names; anything else is refused 403 "use https", so that a client set up with
/// `http://` fails loudly instead of sending its password or token in clear at every request.
pub fn redirect_router(external_url: &str) -> Router {
    let base = external_url.trim_end_matches('/').to_string();
    Router::new().fallback(move |request: Request| {
        let base = base.clone();
        async move { redirect(&base, &request) }
    })
}

fn redirect(base: &str, request: &Request) -> Response {
    let headers = request.headers();
    let query = request.uri().query().unwrap_or_default().to_ascii_lowercase();
    let credentials = headers.contains_key(header::AUTHORIZATION)
        || headers.contains_key(header::COOKIE)
        || ["signature=", "x-amz-credential=", "token=", "password="]
            .iter()
            .any(|name| query.contains(name));
    let safe = matches!(
        *request.method(),
        axum::http::Method::GET | axum::http::Method::HEAD
    );
    if safe && !credentials {
        let path = request.uri().path_and_query().map_or("/", |p| p.as_str());
        if let Ok(location) = HeaderValue::from_str(&format!("{base}{path}")) {
            return (StatusCode::PERMANENT_REDIRECT, [(header::LOCATION, location)]).into_response();
        }
    }
    (
        StatusCode::FORBIDDEN,
        "use https: this port only redirects browsers (whatever credential this request carried \
         crossed the network in clear)\n",
    )
        .into_response()
}

/// The client of a request: the peer, or whom a trusted proxy names (`proxy`).
fn client_of(proxies: &TrustedProxies, peer: SocketAddr, headers: &axum::http::HeaderMap) -> SocketAddr {
    if proxies.is_empty() {
        return peer;
    }
    let forwarded: Vec<&str> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect();
    SocketAddr::new(proxies.client(peer.ip(), &forwarded), peer.port())
}

/// Refuse a request that came on a connection over its address's limit (`/healthz` passes).
pub async fn refuse_over_limit(request: Request, next: Next) -> Response {
    if request.extensions().get::<OverLimit>().is_none() || request.uri().path() == "/healthz" {
        return next.run(request).await;
    }
    let mut response = (
        StatusCode::SERVICE_UNAVAILABLE,
        "too many open connections from this address\n",
    )
        .into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
    headers.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    response
}

/// As axum's own loop: out of descriptors is waited out, anything else is logged and skipped.
async fn accept_failed(error: io::Error) {
    // ENFILE, EMFILE.
    if matches!(error.raw_os_error(), Some(23 | 24)) {
        tracing::warn!(%error, "cannot accept HTTP connections: out of file descriptors");
        tokio::time::sleep(Duration::from_secs(1)).await;
    } else {
        tracing::debug!(%error, "an HTTP connection failed while being accepted");
    }
}

/// A request in progress on a connection, while it lives.
struct Working(Arc<AtomicUsize>);

impl Working {
    fn start(busy: Arc<AtomicUsize>) -> Working {
        busy.fetch_add(1, Ordering::Relaxed);
        Working(busy)
    }
}

impl Drop for Working {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A TCP stream that fails with `TimedOut` once it has been idle for `timeout`: no byte read
/// or written, and no request in progress.
struct Idle {
    stream: TcpStream,
    timeout: Duration,
    last_activity: Instant,
    timer: Pin<Box<Sleep>>,
    busy: Arc<AtomicUsize>,
}

impl Idle {
    fn new(stream: TcpStream, timeout: Duration, busy: Arc<AtomicUsize>) -> Idle {
        let now = Instant::now();
        Idle {
            stream,
            timeout,
            last_activity: now,
            timer: Box::pin(tokio::time::sleep_until(now + timeout)),
            busy,
        }
    }

    /// Called when the stream has nothing to give or take: `Ready(Err)` once idle for long.
    fn poll_idle(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        loop {
            ready!(self.timer.as_mut().poll(cx));
            let now = Instant::now();
            if self.busy.load(Ordering::Relaxed) > 0 {
                self.last_activity = now;
            }
            let deadline = self.last_activity + self.timeout;
            if deadline <= now {
                return Poll::Ready(Err(io::Error::new(io::ErrorKind::TimedOut, "idle connection")));
            }
            self.timer.as_mut().reset(deadline);
        }
    }
}

impl Idle {
    /// What the stream answered, with the idle check when it had nothing.
    fn track<T>(&mut self, cx: &mut Context<'_>, outcome: Poll<io::Result<T>>) -> Poll<io::Result<T>> {
        match outcome {
            Poll::Ready(outcome) => {
                self.last_activity = Instant::now();
                Poll::Ready(outcome)
            }
            Poll::Pending => match self.poll_idle(cx) {
                Poll::Ready(Err(error)) => Poll::Ready(Err(error)),
                _ => Poll::Pending,
            },
        }
    }
}

impl AsyncRead for Idle {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let outcome = Pin::new(&mut self.stream).poll_read(cx, buf);
        self.track(cx, outcome)
    }
}

impl AsyncWrite for Idle {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, data: &[u8]) -> Poll<io::Result<usize>> {
        let outcome = Pin::new(&mut self.stream).poll_write(cx, data);
        self.track(cx, outcome)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buffers: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let outcome = Pin::new(&mut self.stream).poll_write_vectored(cx, buffers);
        self.track(cx, outcome)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

/// A request body that fails once no frame has arrived for `timeout` (a client that stopped
/// sending, or sends a byte now and then).
/// Only time spent waiting for the client counts: the server's own work before its first read
/// or between reads (a password check, a precheck) does not, nor does the wait for a client
/// that sends its body only after `100 Continue`, which the first read asks for.
struct TimedBody {
    body: Incoming,
    /// Set once the body was read to its end (or had none).
    ended: Arc<AtomicBool>,
    timeout: Duration,
    /// Since when the body has been waited for (`None`: a frame just came, or no read yet).
    waiting_since: Option<Instant>,
    timer: Pin<Box<Sleep>>,
}

impl TimedBody {
    fn new(body: Incoming, timeout: Duration, ended: Arc<AtomicBool>) -> TimedBody {
        if http_body::Body::is_end_stream(&body) {
            ended.store(true, Ordering::Release);
        }
        TimedBody {
            body,
            ended,
            timeout,
            waiting_since: None,
            timer: Box::pin(tokio::time::sleep(timeout)),
        }
    }
}

impl http_body::Body for TimedBody {
    type Data = bytes::Bytes;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        let this = &mut *self;
        match Pin::new(&mut this.body).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                this.waiting_since = None;
                if this.body.is_end_stream() {
                    this.ended.store(true, Ordering::Release);
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(error))) => Poll::Ready(Some(Err(error.into()))),
            Poll::Ready(None) => {
                this.ended.store(true, Ordering::Release);
                Poll::Ready(None)
            }
            Poll::Pending => {
                let now = Instant::now();
                let since = *this.waiting_since.get_or_insert_with(|| {
                    this.timer.as_mut().reset(now + this.timeout);
                    now
                });
                loop {
                    if this.timer.as_mut().poll(cx).is_pending() {
                        return Poll::Pending;
                    }
                    let deadline = since + this.timeout;
                    if deadline <= Instant::now() {
                        return Poll::Ready(Some(Err("the request body stopped arriving".into())));
                    }
                    this.timer.as_mut().reset(deadline);
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
    }
}
