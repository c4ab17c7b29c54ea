//! HTTP endpoints every process serves: `/metrics` (Prometheus text) and `/healthz`. The
//! all-in-one and gateway roles mount the gateway's `/v1` routes beside them.

use std::sync::Arc;

use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;

/// Something that can append Prometheus text.
pub type MetricsSource = Arc<dyn Fn(&mut String) + Send + Sync>;

/// `/metrics` and `/healthz` over the given metric sources.
pub fn ops_router(sources: Vec<MetricsSource>) -> Router {
    let sources = Arc::new(sources);
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route(
            "/metrics",
            get(move || {
                let sources = sources.clone();
                async move {
                    let mut out = String::new();
                    for s in sources.iter() {
                        s(&mut out);
                    }
                    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], out).into_response()
                }
            }),
        )
}
