//! The built-in web client at `/play`: the TypeScript package's page (`clients/ts/web-dist`,
//! made by `npm run build` in `clients/ts` and committed), embedded in the binary so the
//! all-in-one server needs nothing else. `/play` redirects to `/play/` (the page imports its
//! modules relative to it).

use axum::extract::Path;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::Router;
use include_dir::{include_dir, Dir};

static WEB: Dir<'_> = include_dir!("$CARGO_MANIFEST_DIR/../clients/ts/web-dist");

/// Where the page lives.
pub const PLAY_PATH: &str = "/play/";

/// The routes of the page: `/play`, `/play/` and `/play/{file}`.
pub fn router() -> Router {
    Router::new()
        .route("/play", get(|| async { Redirect::permanent(PLAY_PATH) }))
        .route("/play/", get(|| async { file("index.html") }))
        .route(
            "/play/{*path}",
            get(|Path(path): Path<String>| async move { file(&path) }),
        )
}

fn content_type(path: &str) -> &'static str {
    match path.rsplit_once('.').map(|(_, ext)| ext) {
        Some("html") => "text/html; charset=utf-8",
        Some("js") => "text/javascript; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("json") => "application/json",
        Some("png") => "image/png",
        Some("svg") => "image/svg+xml",
        _ => "application/octet-stream",
    }
}

fn file(path: &str) -> Response {
    let Some(f) = WEB.get_file(path) else {
        return (StatusCode::NOT_FOUND, "no such file\n").into_response();
    };
    let mut response = f.contents().into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(content_type(path)),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    // Scripts only from here; the page talks to the gateway and to room servers' WebSockets.
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'self'; connect-src 'self' http: https: ws: wss:; style-src 'self' 'unsafe-inline'; img-src 'self' data:",
        ),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_and_its_modules_are_embedded() {
        let index = WEB.get_file("index.html").expect("index.html");
        let html = std::str::from_utf8(index.contents()).unwrap();
        assert!(html.contains("play.js"), "the page loads its module");
        assert!(WEB.get_file("play.js").is_some());
        assert!(WEB.get_dir("lib").is_some_and(|d| d.files().count() > 0));
        assert_eq!(content_type("lib/x.js"), "text/javascript; charset=utf-8");
    }
}
