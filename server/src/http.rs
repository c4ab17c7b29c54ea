//! The HTTP front end of every process: an HTTP/1 server (hyper) with a header-read timeout,
//! a request timeout and connection caps (taken before accept, and per client IP), serving
//! the gateway's routes and `/healthz`; and the routes of the separate metrics listener.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ConnectInfo;
use axum::http::{header, Request, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, OwnedSemaphorePermit, Semaphore};
use tower_http::timeout::{RequestBodyTimeoutLayer, TimeoutLayer};
use tower_service::Service;
use tracing::{debug, warn};

use crate::limits::{IpGuard, IpLimits};
use crate::metrics::{Counter, Gauge};
use crate::tls::TlsServer;

/// Default time a client has to send a request's headers, in ms.
pub const DEFAULT_HTTP_HEADER_TIMEOUT_MS: u64 = 5_000;
/// Time from a request's headers to its response. Longer than the gateway's longest long
/// poll (`tickroom_gateway::DEFAULT_LONG_POLL_MAX`, 20 s), which is a legitimate slow request.
pub const HTTP_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Default HTTP connections open at once (each waiting player holds one for its long poll).
pub const DEFAULT_HTTP_MAX_CONNECTIONS: usize = 4_096;
/// Default HTTP connections one client IP may hold.
pub const DEFAULT_HTTP_MAX_CONNECTIONS_PER_IP: usize = 1_024;
/// Bytes hyper buffers per connection (the whole header must fit; hyper's minimum is 8 KiB).
pub const HTTP_READ_BUFFER_BYTES: usize = 16 * 1024;
/// Connections the metrics listener holds at once (a few scrapers, never players).
pub const METRICS_MAX_CONNECTIONS: usize = 64;
/// Time a scrape may take on the metrics listener.
pub const METRICS_REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Pause after a failed accept (out of descriptors): retrying at once would spin.
const ACCEPT_ERROR_BACKOFF: Duration = Duration::from_millis(100);

/// Something that can append Prometheus text.
pub type MetricsSource = Arc<dyn Fn(&mut String) + Send + Sync>;

/// The bounds of one HTTP listener; `HttpLimits::default()` is the gateway listener's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpLimits {
    /// Time a client has to send a whole request header, from the moment the server starts
    /// reading (a new connection, or the previous response on a keep-alive one) (default 5 s).
    /// A stalled request body is cut after the same time without a byte.
    pub header_read_timeout: Duration,
    /// Time from a request's headers to its response, body read included (default 30 s).
    pub request_timeout: Duration,
    /// Connections open at once; at the cap the listener stops accepting (default 4,096).
    pub max_connections: usize,
    /// Connections one client IP may hold; more are closed at once (default 1,024).
    pub max_connections_per_ip: usize,
}

impl Default for HttpLimits {
    fn default() -> Self {
        HttpLimits {
            header_read_timeout: Duration::from_millis(DEFAULT_HTTP_HEADER_TIMEOUT_MS),
            request_timeout: HTTP_REQUEST_TIMEOUT,
            max_connections: DEFAULT_HTTP_MAX_CONNECTIONS,
            max_connections_per_ip: DEFAULT_HTTP_MAX_CONNECTIONS_PER_IP,
        }
    }
}

impl HttpLimits {
    /// The metrics listener's bounds: the same header timeout, few connections.
    pub fn metrics(&self) -> HttpLimits {
        HttpLimits {
            header_read_timeout: self.header_read_timeout,
            request_timeout: METRICS_REQUEST_TIMEOUT,
            max_connections: METRICS_MAX_CONNECTIONS,
            max_connections_per_ip: METRICS_MAX_CONNECTIONS,
        }
    }
}

/// Connection counts of one HTTP listener.
#[derive(Debug, Default)]
pub struct HttpStats {
    /// Connections open now.
    pub open: Gauge,
    /// Connections closed at once because their IP held its share.
    pub refused: Counter,
    /// Connections cut because a request header did not arrive in time.
    pub header_timeouts: Counter,
    /// TLS connections whose handshake failed or did not finish in the header-read time.
    pub tls_failures: Counter,
}

impl HttpStats {
    /// Appends these counts (OpenMetrics text without `# EOF`; one listener per process).
    pub fn render(self: &Arc<Self>, out: &mut String) {
        tickroom_gateway::prom::encode_into(out, self.clone(), |s, e| {
            use tickroom_gateway::prom;
            prom::gauge(
                e,
                "tickroom_http_connections",
                "HTTP connections open",
                None,
                s.open.value(),
            )?;
            prom::counter(
                e,
                "tickroom_http_refused_connections",
                "HTTP connections closed at once by the per-IP cap",
                s.refused.value(),
            )?;
            prom::counter(
                e,
                "tickroom_http_header_timeouts",
                "HTTP connections cut for not sending a request header in time",
                s.header_timeouts.value(),
            )?;
            prom::counter(
                e,
                "tickroom_http_tls_handshake_failures",
                "HTTPS connections whose TLS handshake failed or took too long",
                s.tls_failures.value(),
            )
        });
    }
}

/// `/healthz`: served on the main HTTP listener (load balancers check the path players use)
/// and on the metrics listener.
pub fn health_router() -> Router {
    Router::new().route("/healthz", get(|| async { "ok\n" }))
}

/// Lets pages from `origins` (exact origins such as `https://game.example.com`, or `*`) call
/// the gateway's API from the browser: the answer to their preflight, and the headers a page
/// needs (`Authorization`, JSON bodies, `Retry-After` readable). No origin: no CORS headers,
/// so only same-origin pages (the built-in `/play`) and non-browser clients get in.
pub fn cors(router: Router, origins: &[String]) -> Router {
    use tower_http::cors::{AllowOrigin, CorsLayer};
    if origins.is_empty() {
        return router;
    }
    let allow = if origins.iter().any(|o| o == "*") {
        AllowOrigin::any()
    } else {
        AllowOrigin::list(
            origins
                .iter()
                .filter_map(|o| axum::http::HeaderValue::from_str(o).ok()),
        )
    };
    router.layer(
        CorsLayer::new()
            .allow_origin(allow)
            .allow_methods([
                axum::http::Method::GET,
                axum::http::Method::POST,
                axum::http::Method::DELETE,
            ])
            .allow_headers([header::AUTHORIZATION, header::CONTENT_TYPE])
            .expose_headers([header::RETRY_AFTER])
            .max_age(Duration::from_secs(600)),
    )
}

/// The metrics listener's routes: `/metrics` over the given sources, and `/healthz`.
pub fn metrics_router(sources: Vec<MetricsSource>) -> Router {
    let sources = Arc::new(sources);
    health_router().route(
        "/metrics",
        get(move || {
            let sources = sources.clone();
            async move {
                let mut out = String::new();
                for s in sources.iter() {
                    s(&mut out);
                }
                // Once per process: the build and the standard process metrics, then the end.
                tickroom_gateway::prom::encode_into(&mut out, Arc::new(()), |_, e| {
                    tickroom_gateway::prom::build_info(e)?;
                    tickroom_gateway::prom::process(e)
                });
                out.push_str(tickroom_gateway::prom::EOF);
                (
                    [(header::CONTENT_TYPE, tickroom_gateway::prom::CONTENT_TYPE)],
                    out,
                )
                    .into_response()
            }
        }),
    )
}

/// Serves `app` on `listener` within `limits` until `shutdown` turns true; each request
/// carries its peer address as `ConnectInfo<SocketAddr>` (the gateway's rate limiter reads it).
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: HttpLimits,
    tls: Option<Arc<TlsServer>>,
    stats: Arc<HttpStats>,
    mut shutdown: watch::Receiver<bool>,
) {
    let app = app
        .layer(RequestBodyTimeoutLayer::new(limits.header_read_timeout))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            limits.request_timeout,
        ));
    let mut http = http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .max_buf_size(HTTP_READ_BUFFER_BYTES);
    let slots = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    // Request rates are the gateway's limiter's business; this only counts connections.
    let per_ip = IpLimits::new(limits.max_connections_per_ip.max(1), u32::MAX, u32::MAX);
    loop {
        // The slot is taken before accept: at the cap the listener stops accepting (the
        // kernel's backlog holds the rest) instead of growing without bound.
        let slot = tokio::select! {
            s = slots.clone().acquire_owned() => match s { Ok(s) => s, Err(_) => return },
            _ = shutdown.changed() => return,
        };
        let (stream, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    warn!(error = %e, "http accept failed");
                    tokio::time::sleep(ACCEPT_ERROR_BACKOFF).await;
                    continue;
                }
            },
            _ = shutdown.changed() => return,
        };
        let Some(ip) = per_ip.admit(peer.ip()) else {
            stats.refused.inc();
            continue;
        };
        let held = Held::new(slot, ip, stats.clone());
        tokio::spawn(serve_connection(
            http.clone(),
            app.clone(),
            (stream, tls.clone(), limits.header_read_timeout),
            peer,
            held,
            shutdown.clone(),
        ));
    }
}

/// What one open connection holds: its slot, its IP's share and its place in the gauge.
struct Held {
    _slot: OwnedSemaphorePermit,
    _ip: IpGuard,
    stats: Arc<HttpStats>,
}

impl Held {
    fn new(slot: OwnedSemaphorePermit, ip: IpGuard, stats: Arc<HttpStats>) -> Held {
        stats.open.add(1);
        Held {
            _slot: slot,
            _ip: ip,
            stats,
        }
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        self.stats.open.add(-1);
    }
}

async fn serve_connection(
    http: http1::Builder,
    app: Router,
    (stream, tls, handshake_timeout): (TcpStream, Option<Arc<TlsServer>>, Duration),
    peer: SocketAddr,
    held: Held,
    mut shutdown: watch::Receiver<bool>,
) {
    let _ = stream.set_nodelay(true);
    // A TLS handshake gets the header-read time: a silent client is cut as fast either way.
    let Some(stream) = crate::tls::open(tls.as_deref(), stream, handshake_timeout).await else {
        held.stats.tls_failures.inc();
        return;
    };
    let service = hyper::service::service_fn(move |mut req: Request<Incoming>| {
        req.extensions_mut().insert(ConnectInfo(peer));
        app.clone().call(req)
    });
    let conn = http.serve_connection(TokioIo::new(stream), service);
    let mut conn = std::pin::pin!(conn);
    let result = tokio::select! {
        r = conn.as_mut() => r,
        _ = shutdown.changed() => {
            // Finish the request in flight, then close (idle connections close at once).
            conn.as_mut().graceful_shutdown();
            conn.await
        }
    };
    if let Err(e) = result {
        if e.is_timeout() {
            held.stats.header_timeouts.inc();
        }
        debug!(%peer, error = %e, "http connection ended");
    }
    drop(held);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_outlives_the_longest_long_poll() {
        assert!(HttpLimits::default().request_timeout > tickroom_gateway::DEFAULT_LONG_POLL_MAX);
    }

    #[test]
    fn renders_connection_counts() {
        let stats = Arc::new(HttpStats::default());
        stats.open.add(3);
        stats.header_timeouts.inc();
        let mut out = String::new();
        stats.render(&mut out);
        assert!(out.contains("tickroom_http_connections 3\n"), "{out}");
        assert!(
            out.contains("tickroom_http_header_timeouts_total 1\n"),
            "{out}"
        );
        assert!(
            out.contains("tickroom_http_refused_connections_total 0\n"),
            "{out}"
        );
    }
}
