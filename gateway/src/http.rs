//! The HTTP JSON API under `/v1`: login, matchmaking, match results and the JSON error body.
//! Request and response types are public so clients (the bot) can share them; the ones
//! `GatewayClient` also uses are defined once in `tickroom_protocol::api` and re-exported here.
//!
//! Every error is `{"code": <ErrorCode number>, "error": "<ErrorCode name>", "message": "..."}`.
//! An unknown mode is `400` with code `UnknownMode` (the request names a mode that is not
//! served); an unknown, cancelled or foreign ticket is `404` `NotFound`, and so is a room or a
//! match result asked for by someone who did not play in it. A placed player who queues again
//! while they may still join their room is `409` `Conflict` with `Retry-After` (and so is one
//! in `MAX_OPEN_ROOMS_PER_PLAYER` open rooms); a player already holding
//! `max_polls_per_player` long polls is `429` `RateLimited`. Private rooms (`POST /v1/rooms`)
//! are joined by code (`POST /v1/rooms/join`): an unknown code is `404`, a full room `409`
//! `RoomFull`, and too many lookups by one player `429`.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{ConnectInfo, DefaultBodyLimit, Path, Query, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use axum::{Json, Router};
use governor::clock::Clock;
use tickroom_protocol::token::encode_hex;
use tickroom_protocol::{ErrorCode, SessionClaims, TicketClaims};

pub use tickroom_protocol::api::{
    CancelResponse, CreateRoomRequest, CreateRoomResponse, CustomLogin, DeviceLogin,
    EnqueueRequest, EnqueueResponse, ErrorBody, JoinByCodeRequest, JoinPartyRequest,
    MatchResultRecord, MatchedResponse, PartyResponse, PartyTicket, PollQuery, PollResponse,
    RoomResponse, WatchRequest,
};

use crate::auth::{self, check_device_id, BearerError, Session, CUSTOM_ID_LABEL, DEVICE_ID_LABEL};
use crate::directory::{
    move_room, normalise_code, private_code, Assignment, CancelOutcome, CodeJoin, DirectoryError,
    EnqueueOutcome, MatchRecord, PartyAnswer, PartyRecord, PrivateRoomRequest, QueueEntry,
    ReassignOutcome, RoomRecord, TicketId, TicketRecord, TicketStatus, MAX_OPEN_ROOMS_PER_PLAYER,
};
use crate::metrics::LoginMethod;
use crate::{millis, now_ms, Gateway, PLACEMENT_YES_REUSE_MS};

/// `Retry-After` sent with `503 ServerBusy`, in seconds.
pub const BUSY_RETRY_AFTER_S: u64 = 1;
/// `Retry-After` sent when a player looked up too many join codes, in seconds.
pub const CODE_RETRY_AFTER_S: u64 = 10;
/// Fresh codes tried when creating a private room before giving up.
const CODE_ATTEMPTS: usize = 3;

/// All `/v1` routes of a gateway. Serve with
/// `into_make_service_with_connect_info::<SocketAddr>()` so the per-IP rate limit sees peers.
pub fn router(gw: Arc<Gateway>) -> Router {
    let body_limit = gw.config.max_body_bytes;
    Router::new()
        .route("/v1/auth/device", post(device_login))
        .route("/v1/auth/custom", post(custom_login))
        .route("/v1/auth/refresh", post(refresh))
        .route("/v1/matchmaking", post(enqueue))
        .route("/v1/matchmaking/{ticket_id}", get(poll).delete(cancel))
        .route("/v1/parties", post(create_party))
        .route("/v1/parties/join", post(join_party))
        .route("/v1/parties/{party_id}", get(get_party).delete(leave_party))
        .route("/v1/rooms", post(create_room))
        .route("/v1/rooms/join", post(join_by_code))
        .route("/v1/rooms/watch", post(watch))
        .route("/v1/rooms/{room_id}", get(room))
        .route("/v1/matches/{room_id}", get(match_result))
        .route("/v1/{*rest}", any(unknown_route))
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(middleware::from_fn_with_state(gw.clone(), rate_limit))
        .with_state(gw)
}

/// An error answer: status, stable code, message and an optional `Retry-After`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// Stable error code.
    pub code: ErrorCode,
    /// Human-readable text (never a secret).
    pub message: String,
    /// `Retry-After` in seconds, if any.
    pub retry_after_s: Option<u64>,
}

impl ApiError {
    /// An error without `Retry-After`.
    pub fn new(status: StatusCode, code: ErrorCode, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code,
            message: message.into(),
            retry_after_s: None,
        }
    }

    fn not_found(what: &str) -> ApiError {
        ApiError::new(
            StatusCode::NOT_FOUND,
            ErrorCode::NotFound,
            format!("{what} not found"),
        )
    }

    fn unauthorized(e: &BearerError) -> ApiError {
        ApiError::new(
            StatusCode::UNAUTHORIZED,
            ErrorCode::Unauthorized,
            e.to_string(),
        )
    }

    fn json(rejection: &JsonRejection) -> ApiError {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            return ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                ErrorCode::MessageTooLarge,
                "request body is larger than allowed",
            );
        }
        ApiError::new(
            StatusCode::BAD_REQUEST,
            ErrorCode::BadRequest,
            rejection.body_text(),
        )
    }
}

impl From<DirectoryError> for ApiError {
    fn from(e: DirectoryError) -> ApiError {
        tracing::warn!(error = %e, "directory call failed");
        ApiError {
            status: StatusCode::SERVICE_UNAVAILABLE,
            code: ErrorCode::ServerBusy,
            message: format!("matchmaking is temporarily unavailable: {e}"),
            retry_after_s: Some(BUSY_RETRY_AFTER_S),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            code: self.code.as_u16(),
            error: self.code.name().to_owned(),
            message: self.message,
        };
        let mut response = (self.status, Json(body)).into_response();
        // Every 503 says when to come back: clients wait and retry rather than give up.
        let retry_after_s = match self.status {
            StatusCode::SERVICE_UNAVAILABLE => self.retry_after_s.or(Some(BUSY_RETRY_AFTER_S)),
            _ => self.retry_after_s,
        };
        if let Some(secs) = retry_after_s {
            if let Ok(value) = HeaderValue::from_str(&secs.to_string()) {
                response.headers_mut().insert(header::RETRY_AFTER, value);
            }
        }
        response
    }
}

/// Per-IP GCRA in front of every route (the admin routes' too).
pub(crate) async fn rate_limit(
    State(gw): State<Arc<Gateway>>,
    request: Request,
    next: Next,
) -> Response {
    let ip = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |c| c.0.ip());
    match gw.limiter.check_key(&ip) {
        Ok(()) => next.run(request).await,
        Err(not_until) => {
            gw.metrics.rate_limited.fetch_add(1, Ordering::Relaxed);
            let wait = not_until.wait_time_from(gw.limiter.clock().now());
            let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
            ApiError {
                status: StatusCode::TOO_MANY_REQUESTS,
                code: ErrorCode::RateLimited,
                message: "too many requests from this address; retry later".into(),
                retry_after_s: Some(secs.max(1)),
            }
            .into_response()
        }
    }
}

async fn unknown_route() -> ApiError {
    ApiError::not_found("route")
}

impl Gateway {
    /// The served mode called `name`; `400 unknown_mode` otherwise.
    fn mode(&self, name: &str) -> Result<&tickroom_game::modes::ModeConfig, ApiError> {
        self.config.modes.by_name(name).ok_or_else(|| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                ErrorCode::UnknownMode,
                "no such game mode",
            )
        })
    }

    /// Counts one join-code lookup (room or party) of `player_id`: `429` past its budget.
    fn check_code_lookup(&self, player_id: u64) -> Result<(), ApiError> {
        if self.code_limiter.check_key(&player_id).is_ok() {
            return Ok(());
        }
        self.metrics.rate_limited.fetch_add(1, Ordering::Relaxed);
        Err(ApiError {
            retry_after_s: Some(CODE_RETRY_AFTER_S),
            ..ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                ErrorCode::RateLimited,
                "too many join-code lookups: wait before trying another code",
            )
        })
    }

    fn skew_ms(&self) -> u64 {
        millis(self.config.clock_skew)
    }

    /// A session for a login (`login_ms` None: now) or a refresh of the login made then.
    fn session(
        &self,
        player_id: u64,
        method: LoginMethod,
        login_ms: Option<u64>,
    ) -> Result<Json<Session>, ApiError> {
        let policy = auth::SessionPolicy {
            ttl_ms: millis(self.config.session_ttl),
            max_lifetime_ms: millis(self.config.session_max_lifetime),
        };
        let now = now_ms();
        let session = auth::issue_session(
            &self.config.keys,
            player_id,
            now,
            login_ms.unwrap_or(now),
            policy,
        )
        .map_err(|e| {
            self.rejected_login(ApiError::new(
                StatusCode::UNAUTHORIZED,
                ErrorCode::SessionExpired,
                e.to_string(),
            ))
        })?;
        self.metrics.login(method);
        tracing::debug!(player_id, ?method, "session issued");
        Ok(Json(session))
    }

    fn rejected_login(&self, error: ApiError) -> ApiError {
        self.metrics.logins_rejected.fetch_add(1, Ordering::Relaxed);
        error
    }

    fn player(&self, headers: &HeaderMap) -> Result<u64, ApiError> {
        self.session_claims(headers).map(|c| c.player_id)
    }

    fn session_claims(&self, headers: &HeaderMap) -> Result<SessionClaims, ApiError> {
        let header = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok());
        auth::bearer_session(&self.config.keys, header, now_ms(), self.skew_ms())
            .map_err(|e| ApiError::unauthorized(&e))
    }

    /// The matched answer with a join ticket signed now.
    fn matched(&self, player_id: u64, a: Assignment) -> Result<MatchedResponse, ApiError> {
        self.ticket_answer(player_id, a, false)
    }

    /// The answer with a join ticket signed now: a seat, or a spectator's place.
    fn ticket_answer(
        &self,
        player_id: u64,
        a: Assignment,
        spectator: bool,
    ) -> Result<MatchedResponse, ApiError> {
        let now = now_ms();
        let claims = TicketClaims {
            player_id,
            room_id: a.room_id,
            mode: a.mode.clone(),
            server_id: a.server.server_id.clone(),
            issued_ms: now,
            expires_ms: now.saturating_add(millis(self.config.ticket_ttl)),
            nonce: rand::random(),
            metadata: a.metadata,
            spectator,
        };
        let expires_ms = claims.expires_ms;
        let (join_ticket, join_secret) = self.config.keys.issue_ticket(claims);
        let join_secret = encode_hex(&join_secret);
        Ok(MatchedResponse {
            room_id: a.room_id,
            mode: a.mode,
            server_id: a.server.server_id,
            quic_addr: a.server.quic_addr,
            ws_addr: a.server.ws_addr,
            cert_fingerprint: a.server.cert_fingerprint,
            ws_tls: a.server.ws_tls,
            join_ticket,
            join_secret,
            expires_ms,
            grouping: a.grouping,
        })
    }

    /// Moves a room whose owner died to a live server (`move_room`), when the room has a
    /// failover image. Answers the room as it now is and whether its owner lives; without an
    /// image or a live server, the dead owner's record as it was.
    async fn take_over(&self, record: RoomRecord) -> Result<(RoomRecord, bool), ApiError> {
        let room_id = record.room_id;
        if self.directory.room_image(room_id).await?.is_none() {
            return Ok((record, false));
        }
        let from = &record.server.server_id;
        let moved = move_room(&*self.directory, room_id, record.epoch, from).await?;
        let Some((chosen, outcome)) = moved else {
            return Ok((record, false));
        };
        match outcome {
            ReassignOutcome::Reassigned(moved) => {
                tracing::info!(room = room_id, from = %record.server.server_id, to = %chosen, epoch = moved.epoch, "room taken over");
                Ok((*moved, true))
            }
            // Another gateway moved it first (or the chosen server just died): as it is now.
            ReassignOutcome::StaleEpoch { .. } | ReassignOutcome::ServerNotLive => {
                let status = self.directory.room_status(room_id).await?;
                let status = status.ok_or_else(|| ApiError::not_found("room"))?;
                Ok((status.record, status.owner_alive))
            }
            ReassignOutcome::NotFound => Err(ApiError::not_found("room")),
        }
    }

    /// Whether any live room server takes new rooms (not draining, below capacity). Polls
    /// that end together share one check: a check that started after a caller asked answers
    /// it too, and a "yes" is reused for `PLACEMENT_YES_REUSE_MS` (a "no" is never reused, so
    /// a server that registers is seen at once).
    async fn can_place(&self) -> Result<bool, DirectoryError> {
        let asked = tokio::time::Instant::now();
        let mut last = self.placement.lock().await;
        if let Some((started, answer)) = *last {
            let young = asked.saturating_duration_since(started)
                < Duration::from_millis(PLACEMENT_YES_REUSE_MS);
            if started >= asked || (answer && young) {
                return Ok(answer);
            }
        }
        let started = tokio::time::Instant::now();
        let servers = self.directory.live_servers().await?;
        let answer = servers.iter().any(|s| !s.draining && s.load < s.capacity);
        *last = Some((started, answer));
        Ok(answer)
    }

    /// `GET /v1/matchmaking/{ticket_id}` once the caller is authenticated as `player_id`:
    /// holds the poll up to `wait` (capped by `long_poll_max`) while the ticket is queued.
    /// Past `max_polls_per_player` polls of this player it is `429` before any directory
    /// call; every poll of one ticket shares one waiter (see `waiters`).
    pub async fn poll_ticket(
        &self,
        player_id: u64,
        ticket_id: TicketId,
        wait: Option<Duration>,
    ) -> Result<PollResponse, ApiError> {
        let Some(_slot) = self.poll_slots.take(player_id) else {
            self.metrics.rate_limited.fetch_add(1, Ordering::Relaxed);
            return Err(ApiError {
                retry_after_s: Some(BUSY_RETRY_AFTER_S),
                ..ApiError::new(
                    StatusCode::TOO_MANY_REQUESTS,
                    ErrorCode::RateLimited,
                    format!(
                        "this player already holds {} long polls on this gateway; poll once \
                         at a time",
                        self.config.max_polls_per_player.max(1)
                    ),
                )
            });
        };
        let max = self.config.long_poll_max;
        let wait = wait.map_or(max, |w| w.min(max));
        let record = self
            .waiters
            .wait(&self.directory, ticket_id, player_id, wait)
            .await?
            .ok_or_else(|| ApiError::not_found("ticket"))?;
        if record.status == TicketStatus::Queued && !self.can_place().await? {
            // The ticket stays queued; the client is told why it waits and when to ask again.
            return Err(ApiError {
                status: StatusCode::SERVICE_UNAVAILABLE,
                code: ErrorCode::ServerBusy,
                message: "no room server can take a new room right now; the ticket stays queued"
                    .into(),
                retry_after_s: Some(BUSY_RETRY_AFTER_S),
            });
        }
        self.poll_answer(record)
    }

    fn poll_answer(&self, record: TicketRecord) -> Result<PollResponse, ApiError> {
        match record.status {
            TicketStatus::Queued => Ok(PollResponse::Queued {
                ticket_id: record.ticket_id.to_string(),
                queued_ms: now_ms().saturating_sub(record.enqueued_ms),
            }),
            TicketStatus::Matched(a) => {
                Ok(PollResponse::Matched(self.matched(record.player_id, a)?))
            }
        }
    }
}

async fn device_login(
    State(gw): State<Arc<Gateway>>,
    body: Result<Json<DeviceLogin>, JsonRejection>,
) -> Result<Json<Session>, ApiError> {
    let Json(body) = body.map_err(|e| gw.rejected_login(ApiError::json(&e)))?;
    if let Err(e) = check_device_id(&body.device_id) {
        return Err(gw.rejected_login(ApiError::new(
            StatusCode::BAD_REQUEST,
            ErrorCode::BadRequest,
            e.to_string(),
        )));
    }
    let player_id = gw
        .config
        .keys
        .derive_id(DEVICE_ID_LABEL, body.device_id.as_bytes());
    gw.session(player_id, LoginMethod::Device, None)
}

async fn custom_login(
    State(gw): State<Arc<Gateway>>,
    body: Result<Json<CustomLogin>, JsonRejection>,
) -> Result<Json<Session>, ApiError> {
    let Some(key) = gw.config.custom_auth_key.as_deref() else {
        return Err(gw.rejected_login(ApiError::new(
            StatusCode::NOT_FOUND,
            ErrorCode::NotFound,
            "custom auth is not configured on this gateway",
        )));
    };
    let Json(body) = body.map_err(|e| gw.rejected_login(ApiError::json(&e)))?;
    let subject =
        auth::verify_custom_token(key, &body.token, now_ms(), gw.skew_ms()).map_err(|e| {
            gw.rejected_login(ApiError::new(
                StatusCode::UNAUTHORIZED,
                ErrorCode::Unauthorized,
                e.to_string(),
            ))
        })?;
    let player_id = gw
        .config
        .keys
        .derive_id(CUSTOM_ID_LABEL, subject.as_bytes());
    gw.session(player_id, LoginMethod::Custom, None)
}

async fn refresh(
    State(gw): State<Arc<Gateway>>,
    headers: HeaderMap,
) -> Result<Json<Session>, ApiError> {
    let claims = gw
        .session_claims(&headers)
        .map_err(|e| gw.rejected_login(e))?;
    gw.session(
        claims.player_id,
        LoginMethod::Refresh,
        Some(claims.login_ms),
    )
}

fn party_response(party: PartyRecord) -> PartyResponse {
    PartyResponse {
        party_id: party.party_id.to_string(),
        code: party.code,
        leader: party.leader,
        members: party.members,
        tickets: party
            .tickets
            .into_iter()
            .map(|(player_id, ticket)| PartyTicket {
                player_id,
                ticket_id: ticket.to_string(),
            })
            .collect(),
    }
}

/// A party answer as HTTP: the party, or why not.
fn party_answer(
    answer: PartyAnswer,
    status: StatusCode,
) -> Result<(StatusCode, Json<PartyResponse>), ApiError> {
    match answer {
        PartyAnswer::In(party) => Ok((status, Json(party_response(*party)))),
        PartyAnswer::InAnother(other) => Err(ApiError::new(
            StatusCode::CONFLICT,
            ErrorCode::Conflict,
            format!("player is already in party {other}: leave it first"),
        )),
        PartyAnswer::Closed => Err(ApiError::new(
            StatusCode::CONFLICT,
            ErrorCode::Conflict,
            format!(
                "the party is queued, or has {} members already",
                crate::directory::MAX_PARTY_MEMBERS
            ),
        )),
        PartyAnswer::NotFound => Err(ApiError::not_found("party with this code")),
    }
}

/// `POST /v1/parties`: a party led by the caller, and the code others join it with.
async fn create_party(
    State(gw): State<Arc<Gateway>>,
    headers: HeaderMap,
) -> Result<(StatusCode, Json<PartyResponse>), ApiError> {
    let player_id = gw.player(&headers)?;
    for _ in 0..CODE_ATTEMPTS {
        let party = PartyRecord {
            party_id: TicketId::random(),
            code: private_code(&mut rand::rng()),
            leader: player_id,
            members: vec![player_id],
            tickets: Vec::new(),
        };
        match gw.directory.create_party(party).await? {
            // A taken code (40 random bits) is retried with a fresh one.
            PartyAnswer::NotFound => continue,
            other => return party_answer(other, StatusCode::CREATED),
        }
    }
    Err(ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        ErrorCode::ServerBusy,
        "no free party code was found; try again",
    ))
}

/// `POST /v1/parties/join`: joins the party with the code (rate-limited like room codes).
async fn join_party(
    State(gw): State<Arc<Gateway>>,
    headers: HeaderMap,
    body: Result<Json<JoinPartyRequest>, JsonRejection>,
) -> Result<(StatusCode, Json<PartyResponse>), ApiError> {
    let player_id = gw.player(&headers)?;
    gw.check_code_lookup(player_id)?;
    let Json(body) = body.map_err(|e| ApiError::json(&e))?;
    let code =
        normalise_code(&body.code).ok_or_else(|| ApiError::not_found("party with this code"))?;
    let answer = gw.directory.join_party(&code, player_id).await?;
    party_answer(answer, StatusCode::OK)
}

/// The party `party_id` names, if the caller is in it (404 otherwise).
async fn member_party(
    gw: &Gateway,
    party_id: &str,
    player_id: u64,
) -> Result<PartyRecord, ApiError> {
    let not_found = || ApiError::not_found("party");
    let id: TicketId = party_id.parse().map_err(|_| not_found())?;
    gw.directory
        .party(id)
        .await?
        .filter(|p| p.members.contains(&player_id))
        .ok_or_else(not_found)
}

/// `GET /v1/parties/{party_id}`: the party, to its members; with each member's ticket while
/// it is queued or matched.
async fn get_party(
    State(gw): State<Arc<Gateway>>,
    headers: HeaderMap,
    Path(party_id): Path<String>,
) -> Result<Json<PartyResponse>, ApiError> {
    let player_id = gw.player(&headers)?;
    Ok(Json(party_response(
        member_party(&gw, &party_id, player_id).await?,
    )))
}

/// `DELETE /v1/parties/{party_id}`: the caller leaves (the leader leaving ends the party); a
/// queued party's tickets are cancelled.
async fn leave_party(
    State(gw): State<Arc<Gateway>>,
    headers: HeaderMap,
    Path(party_id): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let player_id = gw.player(&headers)?;
    let party = member_party(&gw, &party_id, player_id).await?;
    if !gw.directory.leave_party(party.party_id, player_id).await? {
        return Err(ApiError::not_found("party"));
    }
    Ok(Json(
        serde_json::json!({ "party_id": party_id, "status": "left" }),
    ))
}

/// `POST /v1/rooms`: a private room of a mode, placed at once, and its join code.
async fn create_room(
    State(gw): State<Arc<Gateway>>,
    headers: HeaderMap,
    body: Result<Json<CreateRoomRequest>, JsonRejection>,
) -> Result<(StatusCode, Json<CreateRoomResponse>), ApiError> {
    let player_id = gw.player(&headers)?;
    let Json(body) = body.map_err(|e| ApiError::json(&e))?;
    let mode = gw.mode(&body.mode)?;
    let ttl_ms = u64::from(mode.private_room_ttl_s).saturating_mul(1000);
    // A code collision (40 random bits) is retried with a fresh code.
    for _ in 0..CODE_ATTEMPTS {
        let now = now_ms();
        let request = PrivateRoomRequest {
            mode: mode.name.clone(),
            seats: usize::from(mode.players),
            code: private_code(&mut rand::rng()),
            now_ms: now,
            ttl_ms,
            seed: rand::random(),
        };
        let code = request.code.clone();
        if let Some(room) = gw.directory.create_private_room(request).await? {
            tracing::info!(player_id, room_id = room.room_id, mode = %mode.name, "private room created");
            let answer = CreateRoomResponse {
                room_id: room.room_id,
                mode: room.mode,
                code,
                expires_ms: now.saturating_add(ttl_ms),
            };
            return Ok((StatusCode::CREATED, Json(answer)));
        }
        if !gw.can_place().await? {
            break;
        }
    }
    Err(ApiError {
        retry_after_s: Some(BUSY_RETRY_AFTER_S),
        ..ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            ErrorCode::ServerBusy,
            "no room server can take a new room right now",
        )
    })
}

/// `POST /v1/rooms/join`: a seat in the private room with this code, as a join ticket.
/// Lookups are rate-limited per player, so codes cannot be enumerated.
async fn join_by_code(
    State(gw): State<Arc<Gateway>>,
    headers: HeaderMap,
    body: Result<Json<JoinByCodeRequest>, JsonRejection>,
) -> Result<Json<MatchedResponse>, ApiError> {
    let player_id = gw.player(&headers)?;
    gw.check_code_lookup(player_id)?;
    let Json(body) = body.map_err(|e| ApiError::json(&e))?;
    let not_found = || ApiError::not_found("room with this code");
    let code = normalise_code(&body.code).ok_or_else(not_found)?;
    match gw.directory.join_by_code(&code, player_id).await? {
        CodeJoin::Joined(room) => gw.matched(player_id, entry_to(*room)).map(Json),
        CodeJoin::Full => Err(ApiError::new(
            StatusCode::CONFLICT,
            ErrorCode::RoomFull,
            "every seat of this room is taken",
        )),
        CodeJoin::NotFound => Err(not_found()),
    }
}

/// `POST /v1/rooms/watch`: a spectator ticket for a public room (by id) or a private room (by
/// its code). A private room is not found by its id, and code lookups share the per-player
/// limit of `join_by_code`.
async fn watch(
    State(gw): State<Arc<Gateway>>,
    headers: HeaderMap,
    body: Result<Json<WatchRequest>, JsonRejection>,
) -> Result<Json<MatchedResponse>, ApiError> {
    let player_id = gw.player(&headers)?;
    let Json(body) = body.map_err(|e| ApiError::json(&e))?;
    let not_found = || ApiError::not_found("room");
    let room = match (body.room_id, body.code) {
        (Some(room_id), None) => gw
            .directory
            .room(room_id)
            .await?
            .filter(|room| room.code.is_none()),
        (None, Some(code)) => {
            gw.check_code_lookup(player_id)?;
            let code = normalise_code(&code).ok_or_else(not_found)?;
            gw.directory.room_by_code(&code).await?
        }
        _ => {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                ErrorCode::BadRequest,
                "give exactly one of room_id and code",
            ))
        }
    };
    let room = room.ok_or_else(not_found)?;
    if gw.mode(&room.mode)?.spectators == 0 {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            ErrorCode::Conflict,
            format!("mode {} takes no spectators", room.mode),
        ));
    }
    tracing::debug!(player_id, room_id = room.room_id, "spectator ticket issued");
    gw.ticket_answer(player_id, entry_to(room), true).map(Json)
}

/// A way into `room` outside matchmaking (a code, a spectator's place): no metadata, no
/// grouping.
fn entry_to(room: RoomRecord) -> Assignment {
    Assignment {
        room_id: room.room_id,
        mode: room.mode,
        server: room.server,
        metadata: Default::default(),
        grouping: None,
    }
}

/// Queues the leader's whole party: one ticket per member with the leader's properties (the
/// leader's own carries its metadata), all or none.
async fn enqueue_party(
    gw: &Gateway,
    mode: &tickroom_game::modes::ModeConfig,
    party_id: &str,
    leader_entry: QueueEntry,
) -> Result<EnqueueOutcome, ApiError> {
    let party = member_party(gw, party_id, leader_entry.player_id).await?;
    if party.leader != leader_entry.player_id {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            ErrorCode::Conflict,
            "only the party's leader queues it",
        ));
    }
    let room = usize::from(mode.players);
    let team = room / usize::from(mode.teams.max(1));
    if party.members.len() > team {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            ErrorCode::BadRequest,
            format!(
                "a party of {} does not fit mode {}: {} players a room, {} a team",
                party.members.len(),
                mode.name,
                room,
                team
            ),
        ));
    }
    let leader_ticket = leader_entry.ticket_id;
    let entries: Vec<QueueEntry> = party
        .members
        .iter()
        .map(|&member| {
            let mine = member == leader_entry.player_id;
            QueueEntry {
                ticket_id: if mine {
                    leader_ticket
                } else {
                    TicketId::random()
                },
                player_id: member,
                metadata: if mine {
                    leader_entry.metadata.clone()
                } else {
                    Default::default()
                },
                party: Some(party.party_id),
                ..leader_entry.clone()
            }
        })
        .collect();
    gw.directory
        .enqueue_party(party.party_id, party.leader, entries)
        .await?
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::CONFLICT,
                ErrorCode::Conflict,
                "the party changed while it was being queued: queue it again",
            )
        })
}

async fn enqueue(
    State(gw): State<Arc<Gateway>>,
    headers: HeaderMap,
    body: Result<Json<EnqueueRequest>, JsonRejection>,
) -> Result<(StatusCode, Json<EnqueueResponse>), ApiError> {
    let player_id = gw.player(&headers)?;
    let Json(body) = body.map_err(|e| ApiError::json(&e))?;
    let mode = gw.mode(&body.mode)?;
    // What the mode's rules read: nothing they do not name, everything they need, rightly
    // typed (the size limits were checked while parsing).
    crate::matching::check_properties(mode.matchmaking.as_ref(), &body.properties).map_err(
        |e| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                ErrorCode::BadRequest,
                e.to_string(),
            )
        },
    )?;
    let ticket_id = TicketId::random();
    let enqueued_ms = now_ms();
    // The body's metadata was checked while parsing (`PlayerMetadata::check`); it is the
    // client's own claim (display name, loadout) and is signed into the ticket as such.
    let entry = QueueEntry {
        ticket_id,
        player_id,
        mode: mode.name.clone(),
        enqueued_ms,
        metadata: body.metadata,
        properties: body.properties,
        party: None,
    };
    let outcome = match &body.party_id {
        None => gw.directory.enqueue(entry).await?,
        Some(party_id) => enqueue_party(&gw, mode, party_id, entry).await?,
    };
    match outcome {
        EnqueueOutcome::Queued => {
            gw.metrics.tickets.fetch_add(1, Ordering::Relaxed);
            // What the wait will be, for whoever reads the log on a first run.
            tracing::info!(
                player_id,
                mode = %mode.name,
                waiting = gw.metrics.queue_length(&mode.name),
                "queued: a match starts when {} players are in, or after {} s with at least {}",
                mode.players,
                mode.matchmaking_wait_s,
                mode.min_players
            );
            let answer = EnqueueResponse {
                ticket_id: ticket_id.to_string(),
                mode: mode.name.clone(),
            };
            Ok((StatusCode::ACCEPTED, Json(answer)))
        }
        EnqueueOutcome::AlreadyQueued(existing) => Err(ApiError::new(
            StatusCode::CONFLICT,
            ErrorCode::Conflict,
            format!("player is already queued with ticket {existing}"),
        )),
        EnqueueOutcome::MatchPending {
            room_id,
            retry_after_ms,
        } => {
            let secs = retry_after_ms.div_ceil(1000).max(1);
            Err(ApiError {
                retry_after_s: Some(secs),
                ..ApiError::new(
                    StatusCode::CONFLICT,
                    ErrorCode::Conflict,
                    format!(
                        "player was matched into room {room_id} and may still join it; no new \
                         ticket before the join window ends in {secs} s"
                    ),
                )
            })
        }
        EnqueueOutcome::TooManyRooms { open } => Err(ApiError::new(
            StatusCode::CONFLICT,
            ErrorCode::Conflict,
            format!(
                "player is in {open} open rooms (at most {MAX_OPEN_ROOMS_PER_PLAYER}); no new \
                 ticket until one of them ends"
            ),
        )),
    }
}

/// Parses a path ticket id; anything malformed is simply not found.
fn ticket_id(path: Result<Path<String>, PathRejection>) -> Result<TicketId, ApiError> {
    let Path(text) = path.map_err(|_| ApiError::not_found("ticket"))?;
    text.parse().map_err(|_| ApiError::not_found("ticket"))
}

async fn poll(
    State(gw): State<Arc<Gateway>>,
    headers: HeaderMap,
    path: Result<Path<String>, PathRejection>,
    query: Result<Query<PollQuery>, QueryRejection>,
) -> Result<Json<PollResponse>, ApiError> {
    let player_id = gw.player(&headers)?;
    let id = ticket_id(path)?;
    let Query(query) = query.map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            ErrorCode::BadRequest,
            e.body_text(),
        )
    })?;
    gw.poll_ticket(player_id, id, query.wait_ms.map(Duration::from_millis))
        .await
        .map(Json)
}

async fn cancel(
    State(gw): State<Arc<Gateway>>,
    headers: HeaderMap,
    path: Result<Path<String>, PathRejection>,
) -> Result<Json<CancelResponse>, ApiError> {
    let player_id = gw.player(&headers)?;
    let id = ticket_id(path)?;
    match gw.directory.cancel_ticket(id, player_id).await? {
        CancelOutcome::Cancelled => {
            gw.metrics.cancels.fetch_add(1, Ordering::Relaxed);
            Ok(Json(CancelResponse {
                ticket_id: id.to_string(),
                status: "cancelled".into(),
            }))
        }
        CancelOutcome::AlreadyMatched => Err(ApiError::new(
            StatusCode::CONFLICT,
            ErrorCode::Conflict,
            "the ticket was already matched; join the room or leave it",
        )),
        CancelOutcome::NotFound => Err(ApiError::not_found("ticket")),
    }
}

/// A room is only shown to its players; anyone else (and an unknown or closed room) gets 404.
async fn room(
    State(gw): State<Arc<Gateway>>,
    headers: HeaderMap,
    path: Result<Path<String>, PathRejection>,
) -> Result<Json<RoomResponse>, ApiError> {
    let player_id = gw.player(&headers)?;
    let room_id = room_id(path, "room")?;
    let status = gw
        .directory
        .room_status(room_id)
        .await?
        .filter(|s| s.record.players.contains(&player_id))
        .ok_or_else(|| ApiError::not_found("room"))?;
    let (record, alive) = match status.owner_alive {
        true => (status.record, true),
        false => gw.take_over(status.record).await?,
    };
    let server = record.server;
    Ok(Json(RoomResponse {
        room_id,
        server_id: server.server_id,
        alive,
        epoch: record.epoch,
        quic_addr: server.quic_addr,
        ws_addr: server.ws_addr,
        cert_fingerprint: server.cert_fingerprint,
        ws_tls: server.ws_tls,
    }))
}

/// Parses a path room id; anything malformed is simply not found.
fn room_id(path: Result<Path<String>, PathRejection>, what: &str) -> Result<u64, ApiError> {
    let Path(text) = path.map_err(|_| ApiError::not_found(what))?;
    text.parse().map_err(|_| ApiError::not_found(what))
}

/// A result is only shown to the match's players; anyone else gets the same 404 as for an
/// unknown or expired match, so the route does not reveal which matches exist.
async fn match_result(
    State(gw): State<Arc<Gateway>>,
    headers: HeaderMap,
    path: Result<Path<String>, PathRejection>,
) -> Result<Json<MatchResultRecord>, ApiError> {
    let player_id = gw.player(&headers)?;
    let room_id = room_id(path, "match")?;
    let record = gw
        .directory
        .match_result(room_id)
        .await?
        .filter(|r| r.has_player(player_id))
        .ok_or_else(|| ApiError::not_found("match"))?;
    Ok(Json(answer(record)))
}

/// The API form of a stored match result.
fn answer(record: MatchRecord) -> MatchResultRecord {
    MatchResultRecord {
        room_id: record.room_id,
        mode: record.mode,
        players: record.players,
        result: record.result,
        ended_ms: record.ended_ms,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every 503 tells the client when to come back, also one built without a `Retry-After`
    /// (a client waits and retries on it; without the header it could only guess).
    #[test]
    fn every_503_carries_retry_after() {
        let busy = ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            ErrorCode::ServerBusy,
            "no free party code was found; try again",
        );
        let response = busy.into_response();
        assert_eq!(
            response.headers()[header::RETRY_AFTER],
            BUSY_RETRY_AFTER_S.to_string()
        );
        let asked = ApiError {
            retry_after_s: Some(7),
            ..ApiError::new(StatusCode::SERVICE_UNAVAILABLE, ErrorCode::ServerBusy, "x")
        };
        assert_eq!(asked.into_response().headers()[header::RETRY_AFTER], "7");
        let other = ApiError::not_found("room").into_response();
        assert!(!other.headers().contains_key(header::RETRY_AFTER));
    }
}
