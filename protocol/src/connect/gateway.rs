//! The gateway's HTTP client (`/v1` routes): login, matchmaking with the long poll, refresh,
//! private rooms by code, room status and match results.

use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::tls::tls_client_config;
use super::{CertCheck, ConnectError};
use crate::api::{
    CreateRoomRequest, CreateRoomResponse, EnqueueRequest, EnqueueResponse, ErrorBody,
    JoinByCodeRequest, JoinPartyRequest, MatchResultRecord, PartyResponse, WatchRequest,
};
use crate::session::{backoff_ceiling, full_jitter, SplitMix64};
use crate::{ErrorCode, PlayerMetadata, Secret};

/// Longest a single matchmaking poll is held (the gateway caps it at 20 s too).
const LONG_POLL: Duration = Duration::from_secs(20);
/// How long a gateway call keeps retrying a `503` by default
/// ([`GatewayClient::with_retry_deadline`]).
pub const DEFAULT_RETRY_DEADLINE: Duration = Duration::from_secs(30);
/// Backoff ceilings between retries of a `503`: doubling from the first up to the largest.
const RETRY_FIRST: Duration = Duration::from_millis(250);
const RETRY_MAX: Duration = Duration::from_secs(4);
/// A longer `Retry-After` is cut to this (a misconfigured gateway must not park clients).
const RETRY_AFTER_MAX: Duration = Duration::from_secs(30);

/// Where a room lives and how to get in: the gateway's match result (the shared API type).
pub type MatchResult = crate::api::MatchedResponse;
/// A login answer (the shared API type).
pub type Login = crate::api::LoginResponse;
/// Where a player's room is (`GET /v1/rooms/{room_id}`; the shared API type). A player whose
/// room's server is not `alive` cannot resume there: it queues again.
pub type RoomStatus = crate::api::RoomResponse;

impl crate::api::MatchedResponse {
    /// The join secret as bytes.
    pub fn join_secret(&self) -> Result<Secret, ConnectError> {
        self.join_secret_bytes()
            .ok_or(ConnectError::BadMatch("join_secret"))
    }
}

/// A small HTTP client for the gateway's `/v1` API.
#[derive(Debug, Clone)]
pub struct GatewayClient {
    base: String,
    http: reqwest::Client,
    /// How long one call keeps retrying `503`s.
    retry_deadline: Duration,
    /// `503`s waited out so far, by this client and its clones.
    retries: Arc<AtomicU64>,
}

impl GatewayClient {
    /// A client for the gateway at `base` (e.g. `http://127.0.0.1:7700`).
    pub fn new(base: &str) -> GatewayClient {
        GatewayClient {
            base: base.trim_end_matches('/').to_string(),
            http: reqwest::Client::new(),
            retry_deadline: DEFAULT_RETRY_DEADLINE,
            retries: Arc::default(),
        }
    }

    /// Every call answered `503` (the directory or every room server is briefly unavailable)
    /// is retried until `deadline` has passed since the call began (default 30 s; zero: never
    /// retried): after the gateway's `Retry-After`, plus a full-jitter backoff that doubles
    /// from 250 ms to 4 s, so the players of a failed-over Redis do not all come back at once.
    /// The last `503` is returned once the deadline would pass.
    pub fn with_retry_deadline(mut self, deadline: Duration) -> GatewayClient {
        self.retry_deadline = deadline;
        self
    }

    /// How many `503` answers this client (and its clones) waited out and retried.
    pub fn retries(&self) -> u64 {
        self.retries.load(Ordering::Relaxed)
    }

    /// A client for the gateway at `base` (`https://` for TLS), its connections leaving from
    /// `local` when given, checking an HTTPS certificate with `cert` when given (a pinned
    /// self-signed certificate: the gateway's `--tls-self-signed` fingerprint) and against the
    /// web's public roots otherwise.
    pub fn with_options(
        base: &str,
        local: Option<IpAddr>,
        cert: Option<&CertCheck>,
    ) -> Result<GatewayClient, ConnectError> {
        let mut builder = reqwest::Client::builder();
        if let Some(local) = local {
            builder = builder.local_address(local);
        }
        if let Some(check) = cert {
            builder = builder.use_preconfigured_tls(tls_client_config(check, b"http/1.1")?);
        }
        let http = builder.build().map_err(ConnectError::Http)?;
        Ok(GatewayClient {
            base: base.trim_end_matches('/').to_string(),
            http,
            retry_deadline: DEFAULT_RETRY_DEADLINE,
            retries: Arc::default(),
        })
    }

    /// `POST /v1/auth/device`. The id must carry at least 128 random bits (32 hex digits or
    /// 22 base64url characters, `crate::api::check_device_id`); the gateway answers anything
    /// else with 400. Draw it once per device and keep it.
    pub async fn login_device(&self, device_id: &str) -> Result<Login, ConnectError> {
        self.call(|| {
            self.http
                .post(format!("{}/v1/auth/device", self.base))
                .json(&serde_json::json!({ "device_id": device_id }))
        })
        .await
    }

    /// `POST /v1/matchmaking`: returns the matchmaking ticket id. A player placed in a room
    /// they may still join gets 409 (`Conflict`, with the room in the message) until its join
    /// window ends, the room closes or its server dies.
    pub async fn queue(&self, token: &str, mode: &str) -> Result<String, ConnectError> {
        self.queue_with_metadata(token, mode, &PlayerMetadata::default())
            .await
    }

    /// `POST /v1/matchmaking` with metadata for the join ticket (display name, loadout: what
    /// the player chooses; the gateway refuses metadata breaking `PlayerMetadata::check` with
    /// 400). Empty metadata is not sent. Returns the matchmaking ticket id.
    pub async fn queue_with_metadata(
        &self,
        token: &str,
        mode: &str,
        metadata: &PlayerMetadata,
    ) -> Result<String, ConnectError> {
        let body = EnqueueRequest {
            mode: mode.to_owned(),
            metadata: metadata.clone(),
            properties: PlayerMetadata::default(),
            party_id: None,
        };
        self.enqueue(token, &body).await
    }

    /// `POST /v1/matchmaking` with the whole request: metadata for the join ticket and the
    /// properties the mode's matchmaking rules read (a rating, a region, a game version,
    /// `latency.<region>`; the gateway answers 400 for properties the mode does not take).
    /// Returns the matchmaking ticket id.
    pub async fn enqueue(
        &self,
        token: &str,
        body: &EnqueueRequest,
    ) -> Result<String, ConnectError> {
        self.call::<EnqueueResponse>(|| {
            self.http
                .post(format!("{}/v1/matchmaking", self.base))
                .bearer_auth(token)
                .json(body)
        })
        .await
        .map(|b| b.ticket_id)
    }

    /// Long-polls `GET /v1/matchmaking/{id}` until matched or `deadline` passes, one poll at
    /// a time (a gateway refuses a player's polls past a few at once with 429).
    pub async fn wait_match(
        &self,
        token: &str,
        ticket_id: &str,
        deadline: Duration,
    ) -> Result<MatchResult, ConnectError> {
        self.wait_match_reporting(token, ticket_id, deadline, LONG_POLL, &mut |_| {})
            .await
    }

    /// [`GatewayClient::wait_match`] with polls of at most `every`, telling `waited` how long
    /// the ticket has been queued after each one (to show the wait to a player).
    pub async fn wait_match_reporting(
        &self,
        token: &str,
        ticket_id: &str,
        deadline: Duration,
        every: Duration,
        waited: &mut (dyn FnMut(Duration) + Send),
    ) -> Result<MatchResult, ConnectError> {
        let end = Instant::now() + deadline;
        let mut rng = jitter_rng();
        let mut busy = 0;
        loop {
            let left = end.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(ConnectError::Timeout("matchmaking"));
            }
            let wait = left.min(every).max(Duration::from_millis(1));
            let req = self
                .http
                .get(format!("{}/v1/matchmaking/{ticket_id}", self.base))
                .query(&[("wait_ms", wait.as_millis().to_string())])
                .bearer_auth(token);
            let value: serde_json::Value = match parse(req.send().await).await {
                // No room server can take a room yet, or the directory is away: the ticket
                // stays queued; ask again.
                Err(ConnectError::Gateway {
                    status: 503,
                    retry_after,
                    ..
                }) => {
                    let pause = retry_pause(retry_after, busy, &mut rng);
                    busy += 1;
                    self.retries.fetch_add(1, Ordering::Relaxed);
                    tokio::time::sleep(pause.min(end.saturating_duration_since(Instant::now())))
                        .await;
                    continue;
                }
                other => other?,
            };
            if value.get("join_ticket").is_some() {
                return serde_json::from_value(value).map_err(ConnectError::BadAnswer);
            }
            if let Some(ms) = value.get("queued_ms").and_then(serde_json::Value::as_u64) {
                waited(Duration::from_millis(ms));
            }
        }
    }

    /// `DELETE /v1/matchmaking/{id}`.
    pub async fn cancel(&self, token: &str, ticket_id: &str) -> Result<(), ConnectError> {
        self.call::<serde_json::Value>(|| {
            self.http
                .delete(format!("{}/v1/matchmaking/{ticket_id}", self.base))
                .bearer_auth(token)
        })
        .await
        .map(|_| ())
    }

    /// `GET /v1/rooms/{room_id}`: where the player's room is and whether its server lives;
    /// `None` when the gateway does not know the room or the player is not in it (404).
    pub async fn room_status(
        &self,
        token: &str,
        room_id: u64,
    ) -> Result<Option<RoomStatus>, ConnectError> {
        match self
            .call::<RoomStatus>(|| {
                self.http
                    .get(format!("{}/v1/rooms/{room_id}", self.base))
                    .bearer_auth(token)
            })
            .await
        {
            Ok(status) => Ok(Some(status)),
            Err(ConnectError::Gateway { status: 404, .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// `GET /v1/matches/{room_id}`: the result of a finished match the player was in; `None`
    /// when the gateway has no such result or the player was not in the match (404).
    pub async fn match_result(
        &self,
        token: &str,
        room_id: u64,
    ) -> Result<Option<MatchResultRecord>, ConnectError> {
        match self
            .call::<MatchResultRecord>(|| {
                self.http
                    .get(format!("{}/v1/matches/{room_id}", self.base))
                    .bearer_auth(token)
            })
            .await
        {
            Ok(record) => Ok(Some(record)),
            Err(ConnectError::Gateway { status: 404, .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// `POST /v1/parties`: a party led by the caller, with the code others join it with.
    pub async fn create_party(&self, token: &str) -> Result<PartyResponse, ConnectError> {
        self.call(|| {
            self.http
                .post(format!("{}/v1/parties", self.base))
                .bearer_auth(token)
        })
        .await
    }

    /// `POST /v1/parties/join`: joins the party with `code`.
    pub async fn join_party(&self, token: &str, code: &str) -> Result<PartyResponse, ConnectError> {
        self.call(|| {
            self.http
                .post(format!("{}/v1/parties/join", self.base))
                .bearer_auth(token)
                .json(&JoinPartyRequest { code: code.into() })
        })
        .await
    }

    /// `GET /v1/parties/{party_id}`: the party (its members' tickets once it is queued).
    pub async fn party(&self, token: &str, party_id: &str) -> Result<PartyResponse, ConnectError> {
        self.call(|| {
            self.http
                .get(format!("{}/v1/parties/{party_id}", self.base))
                .bearer_auth(token)
        })
        .await
    }

    /// `DELETE /v1/parties/{party_id}`: leaves it (the leader leaving ends it).
    pub async fn leave_party(&self, token: &str, party_id: &str) -> Result<(), ConnectError> {
        self.call::<serde_json::Value>(|| {
            self.http
                .delete(format!("{}/v1/parties/{party_id}", self.base))
                .bearer_auth(token)
        })
        .await
        .map(|_| ())
    }

    /// `POST /v1/rooms`: a private room of `mode`, and the code everyone (its creator too)
    /// joins it with (`join_by_code`).
    pub async fn create_room(
        &self,
        token: &str,
        mode: &str,
    ) -> Result<CreateRoomResponse, ConnectError> {
        self.call(|| {
            self.http
                .post(format!("{}/v1/rooms", self.base))
                .bearer_auth(token)
                .json(&CreateRoomRequest { mode: mode.into() })
        })
        .await
    }

    /// `POST /v1/rooms/join`: a seat in the private room with `code`, as a match result to
    /// open the room's transport with. An unknown code is a 404 gateway error, a full room 409.
    pub async fn join_by_code(&self, token: &str, code: &str) -> Result<MatchResult, ConnectError> {
        self.call(|| {
            self.http
                .post(format!("{}/v1/rooms/join", self.base))
                .bearer_auth(token)
                .json(&JoinByCodeRequest { code: code.into() })
        })
        .await
    }

    /// `POST /v1/rooms/watch`: a spectator's place in a room, as a match result to open the
    /// room's transport with: a public room by its id, or a private one by its code. The
    /// room's `Welcome` then says `slot` [`SPECTATOR_SLOT`](crate::SPECTATOR_SLOT); the
    /// session only watches (its input and custom messages are refused).
    pub async fn watch(
        &self,
        token: &str,
        room: &WatchRequest,
    ) -> Result<MatchResult, ConnectError> {
        self.call(|| {
            self.http
                .post(format!("{}/v1/rooms/watch", self.base))
                .bearer_auth(token)
                .json(room)
        })
        .await
    }

    /// The gateway's base URL.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// Login with a device id, queue for `mode`, and wait for the match.
    pub async fn find_match(
        &self,
        device_id: &str,
        mode: &str,
        deadline: Duration,
    ) -> Result<MatchResult, ConnectError> {
        let login = self.login_device(device_id).await?;
        let ticket = self.queue(&login.session_token, mode).await?;
        self.wait_match(&login.session_token, &ticket, deadline)
            .await
    }
}

impl GatewayClient {
    /// Sends the request `make` builds, again after each `503` until the retry deadline
    /// (see [`GatewayClient::with_retry_deadline`]), and parses the answer.
    async fn call<T: serde::de::DeserializeOwned>(
        &self,
        make: impl Fn() -> reqwest::RequestBuilder,
    ) -> Result<T, ConnectError> {
        let end = Instant::now() + self.retry_deadline;
        let mut rng = jitter_rng();
        let mut attempt = 0;
        loop {
            match parse(make().send().await).await {
                Err(ConnectError::Gateway {
                    status: 503,
                    retry_after,
                    code,
                    message,
                }) => {
                    let pause = retry_pause(retry_after, attempt, &mut rng);
                    if Instant::now() + pause > end {
                        return Err(ConnectError::Gateway {
                            status: 503,
                            retry_after,
                            code,
                            message,
                        });
                    }
                    attempt += 1;
                    self.retries.fetch_add(1, Ordering::Relaxed);
                    tokio::time::sleep(pause).await;
                }
                other => return other,
            }
        }
    }
}

/// A jitter source for one call, seeded from the clock (jitter only spreads retries).
fn jitter_rng() -> SplitMix64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    SplitMix64(nanos)
}

/// How long to wait before retrying a `503`: the gateway's `Retry-After` (at most 30 s), plus
/// full jitter under a ceiling that doubles with each attempt.
fn retry_pause(retry_after: Option<Duration>, attempt: u32, rng: &mut SplitMix64) -> Duration {
    let asked = retry_after.unwrap_or_default().min(RETRY_AFTER_MAX);
    asked + full_jitter(backoff_ceiling(RETRY_FIRST, RETRY_MAX, attempt), rng)
}

/// Reads `Retry-After` as whole seconds (the form the gateway sends).
fn retry_after(resp: &reqwest::Response) -> Option<Duration> {
    let value = resp.headers().get(reqwest::header::RETRY_AFTER)?;
    let secs: u64 = value.to_str().ok()?.trim().parse().ok()?;
    Some(Duration::from_secs(secs))
}

async fn parse<T: serde::de::DeserializeOwned>(
    resp: Result<reqwest::Response, reqwest::Error>,
) -> Result<T, ConnectError> {
    let resp = resp.map_err(ConnectError::Http)?;
    let status = resp.status().as_u16();
    let retry_after = retry_after(&resp);
    let body = resp.bytes().await.map_err(ConnectError::Http)?;
    if (200..300).contains(&status) {
        return serde_json::from_slice(&body).map_err(ConnectError::BadAnswer);
    }
    let err: Option<ErrorBody> = serde_json::from_slice(&body).ok();
    Err(ConnectError::Gateway {
        status,
        code: err
            .as_ref()
            .map_or(ErrorCode::Unknown, |e| ErrorCode::from(e.code)),
        message: err.map_or_else(
            || String::from_utf8_lossy(&body).into_owned(),
            |e| e.message,
        ),
        retry_after,
    })
}
