//! The operators' admin API (`/v1/admin/...`) and status page (`/status`), served on the
//! gateway's HTTP listener when the process is given `--admin-token-file`; without it these
//! routes do not exist (404).
//!
//! - **Auth.** `Authorization: Bearer <token>`, checked against the `id:token` lines of the
//!   token file (`AdminTokens`), in constant time over HMAC-SHA256 digests under a per-process
//!   key. The file is read again when it changes, so tokens rotate without a restart. Tokens
//!   are never logged; every action is logged with the acting token's id.
//! - **Endpoints.** Servers (with version and drain state), rooms (paged, newest first), one
//!   room's seats, kick, close, drain and undrain, and the recent errors. Anything a room
//!   server must do goes to the server that owns the room (or is named): directly when it runs
//!   in this process (`ServerControl`), else as an `AdminCommand` through the directory, which
//!   the room server takes within `COMMAND_POLL_INTERVAL` and answers with an `AdminReply`.
//! - **Errors.** `ErrorLog` is a ring of the last `MAX_RECENT_ERRORS` error answers of this
//!   gateway (`record_errors` wraps its router); the room servers' handshake refusals come
//!   from the directory (`Directory::recent_errors`). Every table is bounded.
//!
//! Answers are JSON; errors use the gateway's `ErrorBody`
//! (`{"code": 23, "error": "unauthorized", "message": "..."}`).

use std::collections::VecDeque;
use std::path::{Path as FsPath, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use async_trait::async_trait;
use axum::body::{Body, HttpBody};
use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{DefaultBodyLimit, Path, Query, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use hmac::{Hmac, Mac};
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use tickroom_protocol::api::ErrorBody;
use tickroom_protocol::ErrorCode;

use crate::directory::{
    AdminAction, AdminCommand, AdminReply, ErrorRecord, RoomRecord, SeatInfo, MAX_RECENT_ERRORS,
    MAX_ROOMS_PAGE,
};
use crate::http::ApiError;
use crate::{now_ms, Gateway};

/// Shortest admin token accepted, in characters.
pub const MIN_ADMIN_TOKEN_CHARS: usize = 16;
/// Longest admin token accepted, in characters.
pub const MAX_ADMIN_TOKEN_CHARS: usize = 256;
/// Longest admin token id, in characters.
pub const MAX_ADMIN_ID_CHARS: usize = 64;
/// Most tokens one file may hold.
pub const MAX_ADMIN_TOKENS: usize = 64;
/// Largest token file read, in bytes.
pub const MAX_ADMIN_TOKEN_FILE_BYTES: u64 = 64 * 1024;
/// The token file is looked at again (for rotation) at most this often.
pub const TOKEN_FILE_CHECK_INTERVAL: Duration = Duration::from_secs(1);
/// Rooms in a page when the request gives no `limit`.
pub const DEFAULT_ROOMS_PAGE: usize = 50;
/// Longest a request waits for a room server in another process to answer a command.
pub const COMMAND_WAIT: Duration = Duration::from_secs(3);
/// How often a waiting request looks for the reply of a command sent through the directory.
pub const REPLY_POLL_INTERVAL: Duration = Duration::from_millis(50);
/// How often a room server takes its commands from the directory (it applies them at once).
pub const COMMAND_POLL_INTERVAL: Duration = Duration::from_millis(250);
/// Largest admin request body, in bytes.
pub const ADMIN_MAX_BODY_BYTES: usize = 4 * 1024;
/// Largest error answer `record_errors` reads to learn its code, in bytes.
const MAX_RECORDED_BODY_BYTES: u64 = 16 * 1024;

type HmacSha256 = Hmac<Sha256>;

/// Why a token file was refused. Never carries a token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AdminTokenError {
    /// The file cannot be read.
    #[error("cannot read the admin token file {path}: {reason}")]
    Unreadable {
        /// The file.
        path: String,
        /// Why.
        reason: String,
    },
    /// A line is not `id:token` with a valid id and token.
    #[error(
        "admin token file line {line}: {reason} (each line is id:token; ids are 1..=64 of \
         A-Z a-z 0-9 . _ -, tokens 16..=256 of A-Z a-z 0-9 . _ ~ + / = -)"
    )]
    BadLine {
        /// 1-based line number.
        line: usize,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// Two lines have the same id, or the same token.
    #[error("admin token file line {line}: {what} already used on an earlier line")]
    Duplicate {
        /// 1-based line number.
        line: usize,
        /// `"id"` or `"token"`.
        what: &'static str,
    },
    /// No token at all.
    #[error("the admin token file holds no token")]
    Empty,
    /// More than `MAX_ADMIN_TOKENS` tokens, or a file over `MAX_ADMIN_TOKEN_FILE_BYTES`.
    #[error("the admin token file is too large (at most 64 tokens, 64 KiB)")]
    TooLarge,
}

/// The admin tokens of `--admin-token-file`: `id:token` per line (blank lines and `#`
/// comments are skipped). The id names the operator in logs; several lines let tokens rotate.
pub struct AdminTokens {
    path: PathBuf,
    /// Per-process HMAC key: tokens are compared as digests under it.
    key: [u8; 32],
    state: Mutex<TokenState>,
}

struct TokenState {
    /// (id, HMAC(key, token)).
    entries: Vec<(String, [u8; 32])>,
    /// The file's (modification time, length) when last read.
    stamp: Option<(SystemTime, u64)>,
    checked: Instant,
}

impl std::fmt::Debug for AdminTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdminTokens")
            .field("path", &self.path)
            .field("ids", &self.ids())
            .finish_non_exhaustive()
    }
}

impl AdminTokens {
    /// Reads and checks the token file.
    pub fn load(path: &FsPath) -> Result<Arc<AdminTokens>, AdminTokenError> {
        let key: [u8; 32] = rand::random();
        let (text, stamp) = read_token_file(path)?;
        let entries = digests(&key, parse_tokens(&text)?);
        Ok(Arc::new(AdminTokens {
            path: path.to_owned(),
            key,
            state: Mutex::new(TokenState {
                entries,
                stamp,
                checked: Instant::now(),
            }),
        }))
    }

    /// The ids of the tokens in use.
    pub fn ids(&self) -> Vec<String> {
        let state = self.state.lock();
        state.entries.iter().map(|(id, _)| id.clone()).collect()
    }

    /// The id of `token`'s line, if it is one of the tokens. Every token is compared (in
    /// constant time, as digests), whatever matches. Reads the file again first if it changed
    /// (checked at most once per `TOKEN_FILE_CHECK_INTERVAL`); a file that became invalid
    /// admits nobody until it is fixed.
    pub fn verify(&self, token: &str) -> Option<String> {
        self.refresh();
        let presented = digest(&self.key, token);
        let state = self.state.lock();
        let mut found = None;
        for (id, expected) in &state.entries {
            if constant_time_eq(&presented, expected) {
                found = Some(id.clone());
            }
        }
        found
    }

    fn refresh(&self) {
        let mut state = self.state.lock();
        if state.checked.elapsed() < TOKEN_FILE_CHECK_INTERVAL {
            return;
        }
        state.checked = Instant::now();
        let stamp = file_stamp(&self.path);
        if stamp.is_some() && stamp == state.stamp {
            return;
        }
        let read = read_token_file(&self.path).and_then(|(text, stamp)| {
            parse_tokens(&text).map(|tokens| (digests(&self.key, tokens), stamp))
        });
        match read {
            Ok((entries, stamp)) => {
                let ids: Vec<&str> = entries.iter().map(|(id, _)| id.as_str()).collect();
                tracing::info!(ids = ?ids, "admin tokens reloaded");
                state.entries = entries;
                state.stamp = stamp;
            }
            Err(e) => {
                tracing::error!(error = %e, "admin token file is invalid: no admin token is accepted until it is fixed");
                state.entries.clear();
                state.stamp = stamp;
            }
        }
    }
}

fn file_stamp(path: &FsPath) -> Option<(SystemTime, u64)> {
    let meta = std::fs::metadata(path).ok()?;
    Some((meta.modified().ok()?, meta.len()))
}

fn read_token_file(path: &FsPath) -> Result<(String, Option<(SystemTime, u64)>), AdminTokenError> {
    let unreadable = |reason: String| AdminTokenError::Unreadable {
        path: path.display().to_string(),
        reason,
    };
    let stamp = file_stamp(path);
    if stamp.is_some_and(|(_, len)| len > MAX_ADMIN_TOKEN_FILE_BYTES) {
        return Err(AdminTokenError::TooLarge);
    }
    let text = std::fs::read_to_string(path).map_err(|e| unreadable(e.to_string()))?;
    Ok((text, stamp))
}

/// Parses `id:token` lines into (id, token) pairs.
pub fn parse_tokens(text: &str) -> Result<Vec<(String, String)>, AdminTokenError> {
    let mut tokens: Vec<(String, String)> = Vec::new();
    for (index, raw) in text.lines().enumerate() {
        let line = index + 1;
        let trimmed = raw.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let bad = |reason| AdminTokenError::BadLine { line, reason };
        let (id, token) = trimmed.split_once(':').ok_or(bad("no ':'"))?;
        let id_ok = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-');
        if id.is_empty() || id.len() > MAX_ADMIN_ID_CHARS || !id.chars().all(id_ok) {
            return Err(bad("bad id"));
        }
        let token_ok = |c: char| {
            c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '~' | '+' | '/' | '=' | '-')
        };
        if token.len() < MIN_ADMIN_TOKEN_CHARS {
            return Err(bad("token shorter than 16 characters"));
        }
        if token.len() > MAX_ADMIN_TOKEN_CHARS || !token.chars().all(token_ok) {
            return Err(bad("bad token"));
        }
        if tokens.iter().any(|(i, _)| i == id) {
            return Err(AdminTokenError::Duplicate { line, what: "id" });
        }
        if tokens.iter().any(|(_, t)| t == token) {
            return Err(AdminTokenError::Duplicate {
                line,
                what: "token",
            });
        }
        if tokens.len() >= MAX_ADMIN_TOKENS {
            return Err(AdminTokenError::TooLarge);
        }
        tokens.push((id.to_owned(), token.to_owned()));
    }
    if tokens.is_empty() {
        return Err(AdminTokenError::Empty);
    }
    Ok(tokens)
}

fn digest(key: &[u8; 32], token: &str) -> [u8; 32] {
    let mut mac = HmacSha256::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(token.as_bytes());
    mac.finalize().into_bytes().into()
}

fn digests(key: &[u8; 32], tokens: Vec<(String, String)>) -> Vec<(String, [u8; 32])> {
    tokens
        .into_iter()
        .map(|(id, token)| {
            let d = digest(key, &token);
            (id, d)
        })
        .collect()
}

/// Compares two digests without an early exit.
fn constant_time_eq(a: &[u8; 32], b: &[u8; 32]) -> bool {
    let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    std::hint::black_box(diff) == 0
}

/// The last `MAX_RECENT_ERRORS` error answers of this process's gateway (and its admin API),
/// newest first.
#[derive(Debug, Default)]
pub struct ErrorLog {
    ring: Mutex<VecDeque<ErrorRecord>>,
}

impl ErrorLog {
    /// An empty log.
    pub fn new() -> Arc<ErrorLog> {
        Arc::new(ErrorLog::default())
    }

    /// Adds a record (the oldest goes once the ring is full).
    pub fn push(&self, record: ErrorRecord) {
        let mut ring = self.ring.lock();
        if ring.len() >= MAX_RECENT_ERRORS {
            ring.pop_back();
        }
        ring.push_front(record);
    }

    /// The records, newest first.
    pub fn recent(&self) -> Vec<ErrorRecord> {
        self.ring.lock().iter().cloned().collect()
    }
}

/// A room server in this process, which the admin API drives directly (the all-in-one)
/// instead of through the directory.
#[async_trait]
pub trait ServerControl: Send + Sync + 'static {
    /// Its server id.
    fn server_id(&self) -> &str;
    /// Carries `action` out for the operator `actor` (a token id).
    async fn execute(&self, action: AdminAction, actor: &str) -> AdminReply;
}

/// What the admin routes share.
#[derive(Clone)]
struct AdminState {
    gw: Arc<Gateway>,
    tokens: Arc<AdminTokens>,
    errors: Arc<ErrorLog>,
    local: Option<Arc<dyn ServerControl>>,
}

/// The id of the token a request was made with.
#[derive(Debug, Clone)]
struct Actor(String);

/// The admin API and the status page. Merge it beside the gateway's `router`; wrap that one
/// with `record_errors` (with the same `errors`) so its error answers are listed too.
/// `local` is a room server in this process, driven directly.
pub fn router(
    gw: Arc<Gateway>,
    tokens: Arc<AdminTokens>,
    errors: Arc<ErrorLog>,
    local: Option<Arc<dyn ServerControl>>,
) -> Router {
    let state = AdminState {
        gw: gw.clone(),
        tokens,
        errors: errors.clone(),
        local,
    };
    let api = Router::new()
        .route("/v1/admin/servers", get(servers))
        .route("/v1/admin/servers/{server_id}/drain", post(drain))
        .route("/v1/admin/servers/{server_id}/undrain", post(undrain))
        .route("/v1/admin/rooms", get(rooms))
        .route("/v1/admin/rooms/{room_id}", get(room))
        .route("/v1/admin/rooms/{room_id}/kick", post(kick))
        .route("/v1/admin/rooms/{room_id}/close", post(close))
        .route("/v1/admin/errors", get(recent_errors))
        .route_layer(middleware::from_fn_with_state(state.clone(), require_token))
        .layer(DefaultBodyLimit::max(ADMIN_MAX_BODY_BYTES))
        .with_state(state);
    record_errors_as(api, errors, "admin")
        // The gateway's per-IP rate limit: guessing tokens costs the same as any request.
        .layer(middleware::from_fn_with_state(gw, crate::http::rate_limit))
        .merge(status_page())
}

/// Wraps the gateway's router so its error answers (status 400 and up) enter `errors`.
pub fn record_errors(router: Router, errors: Arc<ErrorLog>) -> Router {
    record_errors_as(router, errors, "gateway")
}

fn record_errors_as(router: Router, errors: Arc<ErrorLog>, source: &'static str) -> Router {
    router.layer(middleware::from_fn_with_state(
        (errors, source),
        record_error_answers,
    ))
}

/// Records error answers: the `ErrorBody`'s code and message when the body is one (read
/// only when small), else a code from the status. The route, never the raw path (which may
/// hold ids), says where.
async fn record_error_answers(
    State((errors, source)): State<(Arc<ErrorLog>, &'static str)>,
    request: Request,
    next: Next,
) -> Response {
    let what = format!("{} {}", request.method(), route_of(request.uri().path()));
    let response = next.run(request).await;
    let status = response.status();
    if status.as_u16() < 400 {
        return response;
    }
    let small = response
        .body()
        .size_hint()
        .exact()
        .is_some_and(|n| n <= MAX_RECORDED_BODY_BYTES);
    let (response, body) = if small {
        let (parts, body) = response.into_parts();
        let bytes = axum::body::to_bytes(body, MAX_RECORDED_BODY_BYTES as usize)
            .await
            .unwrap_or_default();
        let parsed = serde_json::from_slice::<ErrorBody>(&bytes).ok();
        (Response::from_parts(parts, Body::from(bytes)), parsed)
    } else {
        (response, None)
    };
    let (code, message) = match body {
        Some(b) => (ErrorCode::from(b.code), b.message),
        None => (code_of_status(status), String::new()),
    };
    let mut record = ErrorRecord::new(source, code, what, &message);
    record.status = Some(status.as_u16());
    errors.push(record);
    response
}

/// A path as a route: segments that are not short words (numeric ids, 32-digit tickets,
/// anything odd) become `{id}`, so the log keeps neither ids nor much text a client chose; at
/// most 8 segments.
fn route_of(path: &str) -> String {
    let word = |s: &str| {
        s.len() <= 16
            && s.starts_with(|c: char| c.is_ascii_lowercase())
            && s.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
    };
    let mut route = String::new();
    for (i, segment) in path.split('/').filter(|s| !s.is_empty()).enumerate() {
        if i == 8 {
            route.push_str("/...");
            break;
        }
        route.push('/');
        route.push_str(if word(segment) { segment } else { "{id}" });
    }
    if route.is_empty() {
        route.push('/');
    }
    route
}

fn code_of_status(status: StatusCode) -> ErrorCode {
    match status {
        StatusCode::UNAUTHORIZED => ErrorCode::Unauthorized,
        StatusCode::NOT_FOUND => ErrorCode::NotFound,
        StatusCode::CONFLICT => ErrorCode::Conflict,
        StatusCode::PAYLOAD_TOO_LARGE => ErrorCode::MessageTooLarge,
        StatusCode::TOO_MANY_REQUESTS => ErrorCode::RateLimited,
        StatusCode::SERVICE_UNAVAILABLE => ErrorCode::ServerBusy,
        s if s.is_server_error() => ErrorCode::Internal,
        _ => ErrorCode::BadRequest,
    }
}

/// Admits a request with a valid admin token (its id goes into the request as `Actor`);
/// anything else is 401. Answers are never cached.
async fn require_token(State(st): State<AdminState>, mut request: Request, next: Next) -> Response {
    let token = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            let (scheme, token) = v.trim().split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
        });
    let Some(id) = token.and_then(|t| st.tokens.verify(t)) else {
        let what = if token.is_some() {
            "wrong admin token"
        } else {
            "no admin token"
        };
        warn_refused();
        let mut response = ApiError::new(
            StatusCode::UNAUTHORIZED,
            ErrorCode::Unauthorized,
            format!("{what}: send Authorization: Bearer <admin token>"),
        )
        .into_response();
        response.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer realm=\"tickroom-admin\""),
        );
        return response;
    };
    tracing::debug!(admin = %id, method = %request.method(), path = %request.uri().path(), "admin request");
    request.extensions_mut().insert(Actor(id));
    let mut response = next.run(request).await;
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// Refused admin requests since the last warning.
static REFUSED: AtomicU64 = AtomicU64::new(0);
/// When that warning was logged, unix ms.
static REFUSED_WARNED_MS: AtomicU64 = AtomicU64::new(0);

/// Warns of refused admin requests at most once a second, with their count (each is also in
/// the error list), so guessing tokens cannot flood the log.
fn warn_refused() {
    let refused = REFUSED.fetch_add(1, Ordering::Relaxed) + 1;
    let now = now_ms();
    let last = REFUSED_WARNED_MS.load(Ordering::Relaxed);
    if now.saturating_sub(last) >= 1_000
        && REFUSED_WARNED_MS
            .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
            .is_ok()
    {
        REFUSED.fetch_sub(refused, Ordering::Relaxed);
        tracing::warn!(refused, "admin requests refused: no or wrong admin token");
    }
}

/// One room server as `GET /v1/admin/servers` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServerView {
    /// Its id.
    pub server_id: String,
    /// Where clients reach its QUIC endpoint.
    pub quic_addr: String,
    /// Where clients reach its WebSocket endpoint.
    pub ws_addr: String,
    /// Its WebSocket speaks TLS.
    pub ws_tls: bool,
    /// Hex SHA-256 of its certificate.
    pub cert_fingerprint: String,
    /// Seats it accepts.
    pub capacity: u32,
    /// Seats in use (or promised since its last heartbeat).
    pub load: u32,
    /// It takes no new rooms (asked to drain, or overloaded).
    pub draining: bool,
    /// An operator or `--drain` asked it to drain (`null`: it did not say).
    pub drain_requested: Option<bool>,
    /// Its build (`null`: it did not say).
    pub version: Option<String>,
    /// When it started, unix ms.
    pub started_ms: Option<u64>,
    /// Rooms it runs now.
    pub rooms: Option<u64>,
}

/// `GET /v1/admin/servers`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServersResponse {
    /// Live room servers, by id.
    pub servers: Vec<ServerView>,
}

/// One room as the admin API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoomView {
    /// Its id.
    pub room_id: u64,
    /// Its mode.
    pub mode: String,
    /// The room server that owns it.
    pub server_id: String,
    /// Whether that server is still registered.
    pub owner_alive: bool,
    /// Ownership generation.
    pub epoch: u64,
    /// When it was placed, unix ms.
    pub created_ms: u64,
    /// How long ago, in ms.
    pub age_ms: u64,
    /// A player joined it.
    pub joined: bool,
    /// The players placed in it.
    pub players: Vec<u64>,
}

/// `GET /v1/admin/rooms`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoomsResponse {
    /// Rooms recorded in all.
    pub total: u64,
    /// Rooms skipped.
    pub offset: u64,
    /// The page size used (the request's, capped at `MAX_ROOMS_PAGE`).
    pub limit: u64,
    /// The offset of the next page, `null` on the last.
    pub next_offset: Option<u64>,
    /// This page, newest first.
    pub rooms: Vec<RoomView>,
}

/// `GET /v1/admin/rooms/{room_id}`: the record and, from its room server, who sits where.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoomDetail {
    /// The directory's record.
    #[serde(flatten)]
    pub room: RoomView,
    /// The room server runs it (`false`: nobody joined yet, or it just ended; `null`: the
    /// server did not answer).
    pub running: Option<bool>,
    /// The game's tick (state) or next frame (lockstep).
    pub tick: Option<u64>,
    /// The match started.
    pub started: Option<bool>,
    /// Occupied seats, by slot.
    pub seats: Vec<SeatInfo>,
    /// Why `running` is `null`.
    pub seats_error: Option<String>,
}

/// `POST /v1/admin/rooms/{room_id}/kick` body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KickRequest {
    /// The player to remove.
    pub player_id: u64,
    /// The `ErrorCode` name the player is told (default `"kicked"`).
    #[serde(default)]
    pub code: Option<String>,
}

/// What a kick did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KickResponse {
    /// The room.
    pub room_id: u64,
    /// The player removed.
    pub player_id: u64,
    /// The code they were told.
    pub code: String,
    /// Always true (a player not seated is 404).
    pub kicked: bool,
}

/// What a close did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CloseResponse {
    /// The room.
    pub room_id: u64,
    /// Always true.
    pub closed: bool,
    /// `"room_server"`: its server ended it (players got `Kicked{RoomClosed}`);
    /// `"record"`: no server ran it (nobody joined, or its server is dead), so only the
    /// directory's record was removed.
    pub by: String,
}

/// What a drain or undrain did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DrainResponse {
    /// The server.
    pub server_id: String,
    /// Whether it now refuses new rooms at an operator's request.
    pub draining: bool,
}

/// `GET /v1/admin/errors`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorsResponse {
    /// This gateway's error answers and the room servers' refusals, newest first, at most
    /// `MAX_RECENT_ERRORS`.
    pub errors: Vec<ErrorRecord>,
    /// Set when the room servers' part could not be read (the directory is unavailable).
    pub incomplete: Option<String>,
}

/// `GET /v1/admin/rooms` query.
#[derive(Debug, Deserialize)]
struct RoomsQuery {
    offset: Option<u64>,
    limit: Option<u64>,
}

fn not_found(what: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, ErrorCode::NotFound, what)
}

fn bad_request(what: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, ErrorCode::BadRequest, what)
}

fn view(record: RoomRecord, owner_alive: bool, now: u64) -> RoomView {
    RoomView {
        room_id: record.room_id,
        mode: record.mode,
        server_id: record.server.server_id,
        owner_alive,
        epoch: record.epoch,
        created_ms: record.created_ms,
        age_ms: now.saturating_sub(record.created_ms),
        joined: record.joined,
        players: record.players,
    }
}

fn room_id(path: Result<Path<String>, PathRejection>) -> Result<u64, ApiError> {
    let Path(text) = path.map_err(|_| not_found("room not found"))?;
    text.parse().map_err(|_| not_found("room not found"))
}

impl AdminState {
    /// Has `server_id` carry out `action`: directly when it runs in this process, else
    /// through the directory (waiting up to `COMMAND_WAIT` for its reply).
    async fn execute(
        &self,
        server_id: &str,
        action: AdminAction,
        actor: &str,
    ) -> Result<AdminReply, ApiError> {
        if let Some(local) = self.local.as_ref().filter(|l| l.server_id() == server_id) {
            return Ok(local.execute(action, actor).await);
        }
        let id: u64 = rand::random();
        let command = AdminCommand {
            id,
            actor: actor.to_owned(),
            issued_ms: now_ms(),
            action,
        };
        let dir = &self.gw.directory;
        dir.push_command(server_id, command).await?;
        let deadline = tokio::time::Instant::now() + COMMAND_WAIT;
        let mut every = tokio::time::interval(REPLY_POLL_INTERVAL);
        loop {
            every.tick().await;
            if let Some(reply) = dir.take_reply(id).await? {
                return Ok(reply);
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(ApiError::new(
                    StatusCode::GATEWAY_TIMEOUT,
                    ErrorCode::ServerBusy,
                    format!(
                        "room server {server_id} did not answer within {} ms",
                        COMMAND_WAIT.as_millis()
                    ),
                ));
            }
        }
    }

    /// Whether `server_id` is a live room server.
    async fn is_live(&self, server_id: &str) -> Result<bool, ApiError> {
        let live = self.gw.directory.live_servers().await?;
        Ok(live.iter().any(|s| s.server_id == server_id))
    }
}

/// A reply that is not what the action expects.
fn failed(reply: AdminReply) -> ApiError {
    let message = match reply {
        AdminReply::Failed { message } => message,
        other => format!("unexpected answer from the room server: {other:?}"),
    };
    ApiError {
        retry_after_s: Some(1),
        ..ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            ErrorCode::ServerBusy,
            message,
        )
    }
}

async fn servers(State(st): State<AdminState>) -> Result<Json<ServersResponse>, ApiError> {
    let live = st.gw.directory.live_servers().await?;
    let ids: Vec<String> = live.iter().map(|s| s.server_id.clone()).collect();
    let abouts = st.gw.directory.server_abouts(&ids).await?;
    let servers = live
        .into_iter()
        .zip(abouts.into_iter().chain(std::iter::repeat(None)))
        .map(|(s, about)| ServerView {
            server_id: s.server_id,
            quic_addr: s.quic_addr,
            ws_addr: s.ws_addr,
            ws_tls: s.ws_tls,
            cert_fingerprint: s.cert_fingerprint,
            capacity: s.capacity,
            load: s.load,
            draining: s.draining,
            drain_requested: about.as_ref().map(|a| a.drain_requested),
            version: about.as_ref().map(|a| a.version.clone()),
            started_ms: about.as_ref().map(|a| a.started_ms),
            rooms: about.as_ref().map(|a| a.rooms),
        })
        .collect();
    Ok(Json(ServersResponse { servers }))
}

async fn rooms(
    State(st): State<AdminState>,
    query: Result<Query<RoomsQuery>, QueryRejection>,
) -> Result<Json<RoomsResponse>, ApiError> {
    let Query(query) = query.map_err(|e| bad_request(e.body_text()))?;
    let offset = query.offset.unwrap_or(0);
    let limit = query
        .limit
        .map_or(DEFAULT_ROOMS_PAGE as u64, |l| l.min(MAX_ROOMS_PAGE as u64));
    let dir = &st.gw.directory;
    let page = dir
        .list_rooms(
            usize::try_from(offset).unwrap_or(usize::MAX),
            limit as usize,
        )
        .await?;
    let live = dir.live_servers().await?;
    let now = now_ms();
    let rooms: Vec<RoomView> = page
        .rooms
        .into_iter()
        .map(|r| {
            let alive = live.iter().any(|s| s.server_id == r.server.server_id);
            view(r, alive, now)
        })
        .collect();
    let next = offset.saturating_add(rooms.len() as u64);
    Ok(Json(RoomsResponse {
        total: page.total,
        offset,
        limit,
        next_offset: (!rooms.is_empty() && next < page.total).then_some(next),
        rooms,
    }))
}

async fn room(
    State(st): State<AdminState>,
    Extension(actor): Extension<Actor>,
    path: Result<Path<String>, PathRejection>,
) -> Result<Json<RoomDetail>, ApiError> {
    let room_id = room_id(path)?;
    let status = st
        .gw
        .directory
        .room_status(room_id)
        .await?
        .ok_or_else(|| not_found("room not found"))?;
    let server_id = status.record.server.server_id.clone();
    let mut detail = RoomDetail {
        room: view(status.record, status.owner_alive, now_ms()),
        running: None,
        tick: None,
        started: None,
        seats: Vec::new(),
        seats_error: None,
    };
    if !status.owner_alive {
        detail.seats_error = Some(format!("room server {server_id} is gone"));
        return Ok(Json(detail));
    }
    match st
        .execute(&server_id, AdminAction::Seats { room_id }, &actor.0)
        .await
    {
        Ok(AdminReply::Seats {
            tick,
            started,
            seats,
        }) => {
            detail.running = Some(true);
            detail.tick = Some(tick);
            detail.started = Some(started);
            detail.seats = seats;
        }
        Ok(AdminReply::NoRoom) => detail.running = Some(false),
        Ok(other) => detail.seats_error = Some(failed(other).message),
        Err(e) => detail.seats_error = Some(e.message),
    }
    Ok(Json(detail))
}

async fn kick(
    State(st): State<AdminState>,
    Extension(actor): Extension<Actor>,
    path: Result<Path<String>, PathRejection>,
    body: Result<Json<KickRequest>, JsonRejection>,
) -> Result<Json<KickResponse>, ApiError> {
    let room_id = room_id(path)?;
    let Json(body) = body.map_err(|e| bad_request(e.body_text()))?;
    let name = body.code.as_deref().unwrap_or("kicked");
    let code = ErrorCode::all()
        .find(|c| c.name() == name && *c != ErrorCode::Unknown)
        .ok_or_else(|| bad_request(format!("{name:?} is not an error code name")))?;
    let status = st
        .gw
        .directory
        .room_status(room_id)
        .await?
        .ok_or_else(|| not_found("room not found"))?;
    let server_id = status.record.server.server_id;
    if !status.owner_alive {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            ErrorCode::ServerGone,
            format!("room server {server_id} is gone"),
        ));
    }
    let player_id = body.player_id;
    tracing::info!(admin = %actor.0, room = room_id, player = player_id, code = code.name(), server = %server_id, "admin: kick");
    let action = AdminAction::Kick {
        room_id,
        player_id,
        code,
    };
    match st.execute(&server_id, action, &actor.0).await? {
        AdminReply::Done => Ok(Json(KickResponse {
            room_id,
            player_id,
            code: code.name().to_owned(),
            kicked: true,
        })),
        AdminReply::NoPlayer => Err(not_found("that player is not seated in the room")),
        AdminReply::NoRoom => Err(not_found(
            "the room is not running on its server (nobody joined yet, or it ended)",
        )),
        other => Err(failed(other)),
    }
}

async fn close(
    State(st): State<AdminState>,
    Extension(actor): Extension<Actor>,
    path: Result<Path<String>, PathRejection>,
) -> Result<Json<CloseResponse>, ApiError> {
    let room_id = room_id(path)?;
    let dir = &st.gw.directory;
    let status = dir
        .room_status(room_id)
        .await?
        .ok_or_else(|| not_found("room not found"))?;
    let record = &status.record;
    let server_id = record.server.server_id.clone();
    tracing::info!(admin = %actor.0, room = room_id, server = %server_id, "admin: close room");
    let by_server = if status.owner_alive {
        match st
            .execute(&server_id, AdminAction::Close { room_id }, &actor.0)
            .await?
        {
            AdminReply::Done => true,
            AdminReply::NoRoom => false,
            other => return Err(failed(other)),
        }
    } else {
        false
    };
    if !by_server {
        // Nothing runs it: forget the record, fenced at the epoch just read.
        dir.close_room_at(room_id, record.epoch).await?;
    }
    Ok(Json(CloseResponse {
        room_id,
        closed: true,
        by: if by_server { "room_server" } else { "record" }.into(),
    }))
}

async fn drain(
    State(st): State<AdminState>,
    Extension(actor): Extension<Actor>,
    path: Result<Path<String>, PathRejection>,
) -> Result<Json<DrainResponse>, ApiError> {
    let Path(server_id) = path.map_err(|_| not_found("no live room server has that id"))?;
    set_draining(&st, &actor, server_id, true).await
}

async fn undrain(
    State(st): State<AdminState>,
    Extension(actor): Extension<Actor>,
    path: Result<Path<String>, PathRejection>,
) -> Result<Json<DrainResponse>, ApiError> {
    let Path(server_id) = path.map_err(|_| not_found("no live room server has that id"))?;
    set_draining(&st, &actor, server_id, false).await
}

async fn set_draining(
    st: &AdminState,
    actor: &Actor,
    server_id: String,
    draining: bool,
) -> Result<Json<DrainResponse>, ApiError> {
    if !st.is_live(&server_id).await? {
        return Err(not_found("no live room server has that id"));
    }
    tracing::info!(admin = %actor.0, server = %server_id, draining, "admin: drain");
    match st
        .execute(&server_id, AdminAction::Drain { draining }, &actor.0)
        .await?
    {
        AdminReply::Done => Ok(Json(DrainResponse {
            server_id,
            draining,
        })),
        other => Err(failed(other)),
    }
}

async fn recent_errors(State(st): State<AdminState>) -> Json<ErrorsResponse> {
    let mut errors = st.errors.recent();
    let incomplete = match st.gw.directory.recent_errors().await {
        Ok(theirs) => {
            errors.extend(theirs);
            None
        }
        Err(e) => Some(e.to_string()),
    };
    errors.sort_by_key(|e| std::cmp::Reverse(e.time_ms));
    errors.truncate(MAX_RECENT_ERRORS);
    Json(ErrorsResponse { errors, incomplete })
}

/// The status page's files, embedded in the binary.
const STATUS_HTML: &str = include_str!("admin/status.html");
const STATUS_JS: &str = include_str!("admin/status.js");
const STATUS_CSS: &str = include_str!("admin/status.css");
/// The page's icon (so browsers do not ask for `/favicon.ico`).
const STATUS_ICON: &str = "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 16 16\">\
    <circle cx=\"8\" cy=\"8\" r=\"7\" fill=\"#2e7d32\"/></svg>";

/// Only the page's own script and style; it talks only to this origin.
const STATUS_CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     connect-src 'self'; img-src 'self'; base-uri 'none'; form-action 'none'; \
     frame-ancestors 'none'";

/// `/status` and its script and style.
fn status_page() -> Router {
    Router::new()
        .route(
            "/status",
            get(|| async { page("text/html; charset=utf-8", STATUS_HTML) }),
        )
        .route(
            "/status/status.js",
            get(|| async { page("text/javascript; charset=utf-8", STATUS_JS) }),
        )
        .route(
            "/status/status.css",
            get(|| async { page("text/css; charset=utf-8", STATUS_CSS) }),
        )
        .route(
            "/status/favicon.svg",
            get(|| async { page("image/svg+xml", STATUS_ICON) }),
        )
}

fn page(content_type: &'static str, body: &'static str) -> Response {
    let mut response = body.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(STATUS_CSP),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_files_parse_and_refuse_bad_lines_without_echoing_tokens() {
        let good =
            "# operators\n\nalice:0123456789abcdef0123\n bob:Zm9vYmFyYmF6cXV4MTIzNDU2Nzg= \n";
        let tokens = parse_tokens(good).unwrap();
        assert_eq!(tokens.len(), 2);
        assert_eq!(tokens[0].0, "alice");
        assert_eq!(tokens[1].1, "Zm9vYmFyYmF6cXV4MTIzNDU2Nzg=");
        let secret = "s3cr3t-s3cr3t-s3cr3t";
        for (text, line) in [
            (format!("alice {secret}"), 1),
            (format!("ok:{secret}\n:{secret}x"), 2),
            ("alice:short".to_string(), 1),
            (format!("al ice:{secret}"), 1),
            (format!("alice:{secret} x"), 1),
        ] {
            let e = parse_tokens(&text).unwrap_err();
            assert!(
                matches!(e, AdminTokenError::BadLine { line: l, .. } if l == line),
                "{text}: {e:?}"
            );
            assert!(!e.to_string().contains(secret), "{e}");
        }
        assert_eq!(
            parse_tokens(&format!("a:{secret}\na:{secret}x")),
            Err(AdminTokenError::Duplicate {
                line: 2,
                what: "id"
            })
        );
        assert_eq!(
            parse_tokens(&format!("a:{secret}\nb:{secret}")),
            Err(AdminTokenError::Duplicate {
                line: 2,
                what: "token"
            })
        );
        assert_eq!(parse_tokens("# nothing\n"), Err(AdminTokenError::Empty));
    }

    #[test]
    fn tokens_verify_by_digest_and_reload_when_the_file_changes() {
        let dir = std::env::temp_dir().join(format!("tickroom-admin-{}", rand::random::<u64>()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("tokens");
        std::fs::write(&path, "ops:aaaaaaaaaaaaaaaaaaaa\nci:bbbbbbbbbbbbbbbbbbbb\n").unwrap();
        let tokens = AdminTokens::load(&path).unwrap();
        assert_eq!(
            tokens.verify("aaaaaaaaaaaaaaaaaaaa").as_deref(),
            Some("ops")
        );
        assert_eq!(tokens.verify("bbbbbbbbbbbbbbbbbbbb").as_deref(), Some("ci"));
        assert_eq!(tokens.verify("aaaaaaaaaaaaaaaaaaab"), None);
        assert_eq!(tokens.verify(""), None);
        assert!(!format!("{tokens:?}").contains("aaaa"));
        // Rotation: the new file is read once the check interval passed.
        std::fs::write(&path, "ops2:cccccccccccccccccccccc\n").unwrap();
        tokens.state.lock().checked = Instant::now() - TOKEN_FILE_CHECK_INTERVAL;
        assert_eq!(tokens.verify("aaaaaaaaaaaaaaaaaaaa"), None);
        assert_eq!(
            tokens.verify("cccccccccccccccccccccc").as_deref(),
            Some("ops2")
        );
        // A broken file admits nobody until fixed.
        std::fs::write(&path, "oops\n").unwrap();
        tokens.state.lock().checked = Instant::now() - TOKEN_FILE_CHECK_INTERVAL;
        assert_eq!(tokens.verify("cccccccccccccccccccccc"), None);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn routes_keep_words_and_hide_ids() {
        assert_eq!(route_of("/v1/auth/device"), "/v1/auth/device");
        assert_eq!(
            route_of("/v1/matchmaking/0123456789abcdef0123456789abcdef"),
            "/v1/matchmaking/{id}"
        );
        assert_eq!(route_of("/v1/rooms/4503599627370495"), "/v1/rooms/{id}");
        assert_eq!(route_of("/v1/<script>/x"), "/v1/{id}/x");
        assert_eq!(route_of("/"), "/");
        assert_eq!(route_of("/a/b/c/d/e/f/g/h/i/j"), "/a/b/c/d/e/f/g/h/...");
    }

    #[test]
    fn the_error_ring_keeps_the_newest() {
        let log = ErrorLog::new();
        for i in 0..(MAX_RECENT_ERRORS + 10) {
            log.push(ErrorRecord::new(
                "gateway",
                ErrorCode::NotFound,
                format!("GET /{i}"),
                "x",
            ));
        }
        let recent = log.recent();
        assert_eq!(recent.len(), MAX_RECENT_ERRORS);
        assert_eq!(recent[0].what, format!("GET /{}", MAX_RECENT_ERRORS + 9));
        let long = "é".repeat(1000);
        let r = ErrorRecord::new("gateway", ErrorCode::BadRequest, String::new(), &long);
        assert!(r.message.len() <= crate::directory::MAX_ERROR_MESSAGE_BYTES);
    }
}
