//! Fuzz target for the gateway's JSON request bodies, driven through its real axum router in
//! process (no socket): device login, custom login, refresh and matchmaking (with metadata),
//! with mutated and random bodies, content types and bearer tokens. Whatever arrives, the
//! answer is a success or a 4xx with the JSON error body (`code`, `error`, `message`) —
//! never a 5xx, never a panic.

use std::cell::RefCell;
use std::collections::BTreeMap;

use axum::body::Body;
use axum::http::{header, HeaderValue, Method, Request, StatusCode};
use axum::Router;
use proptest::prelude::*;
use tickroom_fuzz::mutate::hostile;
use tickroom_fuzz::{hex, run};
use tickroom_game::modes::Modes;
use tickroom_gateway::auth::{issue_session, sign_custom_token};
use tickroom_gateway::http::ErrorBody;
use tickroom_gateway::{now_ms, router, Gateway, GatewayConfig, InMemoryDirectory};
use tickroom_protocol::{ErrorCode, KeyRing};
use tower::ServiceExt;

/// Random bodies are at most this long.
const MAX_RANDOM_BYTES: usize = 256;
/// Filler mutations reach past the body limit, so 413 is tried too.
const MAX_BODY_FUZZ_BYTES: usize = tickroom_gateway::DEFAULT_MAX_BODY_BYTES + 64;
/// The studio key of custom logins.
const STUDIO_KEY: &[u8] = b"the studio's account key";
/// Requests per second the gateway allows one address: the fuzzer is one address.
const UNLIMITED_RATE_PER_S: u32 = 1_000_000;
/// How long the session tokens of the fuzz run are valid, ms.
const SESSION_TTL_MS: u64 = 3_600_000;
/// The player the valid session token names.
const PLAYER_ID: u64 = 77;

/// The body routes of `/v1`.
#[derive(Debug, Clone, Copy)]
enum Route {
    Device,
    Custom,
    Refresh,
    Matchmaking,
}

impl Route {
    fn path(self) -> &'static str {
        match self {
            Route::Device => "/v1/auth/device",
            Route::Custom => "/v1/auth/custom",
            Route::Refresh => "/v1/auth/refresh",
            Route::Matchmaking => "/v1/matchmaking",
        }
    }
}

/// The `Authorization` header of a case.
#[derive(Debug, Clone)]
enum Auth {
    /// `Bearer <a valid session token>`.
    Valid,
    /// No header.
    Missing,
    /// Any bytes (a header the HTTP layer refuses is left out).
    Raw(Vec<u8>),
}

/// The `Content-Type` header of a case.
#[derive(Debug, Clone)]
enum ContentType {
    Json,
    Missing,
    Raw(String),
}

fn keys() -> KeyRing {
    KeyRing::single(1, [7; 32])
}

fn gateway() -> Router {
    let mut config = GatewayConfig::new(keys(), Modes::embedded());
    config.rate_per_ip_per_s = UNLIMITED_RATE_PER_S;
    config.rate_burst = UNLIMITED_RATE_PER_S;
    config.custom_auth_key = Some(STUDIO_KEY.to_vec());
    router(Gateway::new(config, InMemoryDirectory::new()))
}

fn session_token() -> String {
    let policy = tickroom_gateway::auth::SessionPolicy {
        ttl_ms: SESSION_TTL_MS,
        max_lifetime_ms: SESSION_TTL_MS,
    };
    let now = now_ms();
    issue_session(&keys(), PLAYER_ID, now, now, policy)
        .expect("a fresh login is within its lifetime")
        .session_token
}

fn json(value: serde_json::Value) -> Vec<u8> {
    value.to_string().into_bytes()
}

fn device_seeds() -> Vec<Vec<u8>> {
    vec![
        // The first is valid (`valid_requests_succeed`): device ids carry 128 random bits.
        json(serde_json::json!({"device_id": "0123456789abcdef0123456789abcdef"})),
        json(serde_json::json!({"device_id": "phone-1"})),
        json(serde_json::json!({"device_id": "é".repeat(128)})),
    ]
}

fn custom_seeds() -> Vec<Vec<u8>> {
    let later_s = now_ms() / 1000 + 3_600;
    vec![
        json(serde_json::json!({"token": sign_custom_token(STUDIO_KEY, "alice", later_s)})),
        json(serde_json::json!({"token": sign_custom_token(STUDIO_KEY, "bob", 1)})),
        json(serde_json::json!({"token": sign_custom_token(b"another key", "eve", later_s)})),
    ]
}

fn enqueue_seeds() -> Vec<Vec<u8>> {
    vec![
        json(serde_json::json!({"mode": "arena"})),
        json(serde_json::json!({"mode": "duel", "metadata": {"name": "ann", "level": 3}})),
        json(serde_json::json!({"mode": "duel", "metadata": {"debt": i64::MIN, "": "x"}})),
        json(serde_json::json!({"mode": "no-such-mode", "metadata": {}})),
    ]
}

fn auth_seeds() -> Vec<Vec<u8>> {
    let token = session_token();
    vec![
        format!("Bearer {token}").into_bytes(),
        format!("bearer   {token}  ").into_bytes(),
        token.into_bytes(),
    ]
}

fn request() -> impl Strategy<Value = (Route, Vec<u8>, Auth, ContentType)> {
    let mut every_body = device_seeds();
    every_body.extend(custom_seeds());
    every_body.extend(enqueue_seeds());
    let body = |seeds| hostile(seeds, MAX_RANDOM_BYTES, MAX_BODY_FUZZ_BYTES);
    let route_and_body = prop_oneof![
        (Just(Route::Device), body(device_seeds())),
        (Just(Route::Custom), body(custom_seeds())),
        (Just(Route::Refresh), body(every_body)),
        (Just(Route::Matchmaking), body(enqueue_seeds())),
    ];
    let auth = prop_oneof![
        6 => Just(Auth::Valid),
        1 => Just(Auth::Missing),
        3 => hostile(auth_seeds(), MAX_RANDOM_BYTES, MAX_RANDOM_BYTES).prop_map(Auth::Raw),
    ];
    let content_type = prop_oneof![
        8 => Just(ContentType::Json),
        1 => Just(ContentType::Missing),
        1 => prop_oneof![
            Just("text/plain".to_owned()),
            Just("application/json; charset=utf-8".to_owned()),
            "[ -~]{0,40}",
        ]
        .prop_map(ContentType::Raw),
    ];
    (route_and_body, auth, content_type)
        .prop_map(|((route, body), auth, ct)| (route, body, auth, ct))
}

fn build(route: Route, body: Vec<u8>, auth: &Auth, ct: &ContentType, token: &str) -> Request<Body> {
    let mut request = Request::builder().method(Method::POST).uri(route.path());
    let auth = match auth {
        Auth::Valid => HeaderValue::from_str(&format!("Bearer {token}")).ok(),
        Auth::Missing => None,
        Auth::Raw(bytes) => HeaderValue::from_bytes(bytes).ok(),
    };
    if let Some(value) = auth {
        request = request.header(header::AUTHORIZATION, value);
    }
    let ct = match ct {
        ContentType::Json => HeaderValue::from_static("application/json").into(),
        ContentType::Missing => None,
        ContentType::Raw(text) => HeaderValue::from_str(text).ok(),
    };
    if let Some(value) = ct {
        request = request.header(header::CONTENT_TYPE, value);
    }
    request.body(Body::from(body)).expect("a valid request")
}

/// Checks one answer: success, or a 4xx carrying the JSON error body.
fn check_answer(
    status: StatusCode,
    content_type: Option<&str>,
    body: &[u8],
) -> Result<(), TestCaseError> {
    let text = String::from_utf8_lossy(body);
    prop_assert!(!status.is_server_error(), "{status}: {text}");
    prop_assert!(
        status.is_success() || status.is_client_error(),
        "{status}: {text}"
    );
    prop_assert_eq!(
        content_type,
        Some("application/json"),
        "{}: {}",
        status,
        text
    );
    if status.is_success() {
        prop_assert!(
            serde_json::from_slice::<serde_json::Value>(body).is_ok(),
            "{text}"
        );
        return Ok(());
    }
    let error: ErrorBody = match serde_json::from_slice(body) {
        Ok(error) => error,
        Err(e) => {
            return Err(TestCaseError::fail(format!(
                "{status}: not an error body ({e}): {text}"
            )))
        }
    };
    let code = ErrorCode::from(error.code);
    prop_assert_eq!(code.as_u16(), error.code, "an unknown error code: {}", text);
    prop_assert_eq!(code.name(), error.error.as_str(), "{}", text);
    prop_assert!(!error.message.is_empty(), "{text}");
    if status == StatusCode::PAYLOAD_TOO_LARGE {
        prop_assert_eq!(code, ErrorCode::MessageTooLarge);
    }
    Ok(())
}

#[test]
fn gateway_bodies() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let app = gateway();
    let token = session_token();
    let statuses = RefCell::new(BTreeMap::<u16, usize>::new());
    run("gateway_bodies", request(), |(route, body, auth, ct)| {
        let shown = format!("{route:?} {auth:?} {ct:?} body {}", hex(&body));
        let request = build(route, body, &auth, &ct, &token);
        let (status, content_type, answer) = runtime.block_on(async {
            let response = app
                .clone()
                .oneshot(request)
                .await
                .expect("the router is infallible");
            let status = response.status();
            let content_type = response
                .headers()
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
                .await
                .expect("an in-memory body");
            (status, content_type, bytes)
        });
        *statuses.borrow_mut().entry(status.as_u16()).or_default() += 1;
        check_answer(status, content_type.as_deref(), &answer)
            .map_err(|e| TestCaseError::fail(format!("{e} for {shown}")))
    });
    println!(
        "fuzz gateway_bodies answers by status: {:?}",
        statuses.borrow()
    );
}

/// The gateway under test is the one `gateway()` builds: a sanity check that valid requests
/// succeed, so the target does not only ever see errors.
#[test]
fn valid_requests_succeed() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let app: Router = gateway();
    let token = session_token();
    let cases = [
        (Route::Device, device_seeds()[0].clone(), StatusCode::OK),
        (Route::Custom, custom_seeds()[0].clone(), StatusCode::OK),
        (Route::Refresh, Vec::new(), StatusCode::OK),
        (
            Route::Matchmaking,
            enqueue_seeds()[0].clone(),
            StatusCode::ACCEPTED,
        ),
    ];
    for (route, body, want) in cases {
        let request = build(route, body, &Auth::Valid, &ContentType::Json, &token);
        let response = runtime
            .block_on(app.clone().oneshot(request))
            .expect("infallible");
        assert_eq!(response.status(), want, "{route:?}");
    }
}
