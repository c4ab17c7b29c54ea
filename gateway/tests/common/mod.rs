//! Shared test harness: a gateway served on 127.0.0.1:0 with its matchmaker, and small HTTP
//! helpers over reqwest.
#![allow(dead_code)]

pub mod redis_server;
pub mod scenarios;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use reqwest::{Response, StatusCode};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use tickroom_game::modes::Modes;
use tickroom_gateway::http::{ErrorBody, PollResponse};
use tickroom_gateway::{router, run_matchmaker, Directory, Gateway, GatewayConfig, RoomServerInfo};
use tickroom_protocol::token::encode_hex;
use tickroom_protocol::KeyRing;
use tokio::sync::watch;

/// Test modes: `trio` only starts full; `flex` starts with 2 of 4 at once; `quad` only full;
/// `squad` is 2 teams of 2; `brief` keeps an unused private room's code 1 s and takes no spectators; `rated` matches 2 by rating (±50 widening by 25 every 5 s), region and version.
pub const MODES: &str = r#"
[[mode]]
name = "trio"
game = "arena"
sync = "state"
tick_rate_hz = 30
players = 3
min_players = 3
matchmaking_wait_s = 600

[[mode]]
name = "flex"
game = "arena"
sync = "state"
tick_rate_hz = 30
players = 4
min_players = 2
matchmaking_wait_s = 0

[[mode]]
name = "quad"
game = "arena"
sync = "state"
tick_rate_hz = 30
players = 4
min_players = 4
matchmaking_wait_s = 600

[[mode]]
name = "squad"
game = "arena"
sync = "state"
tick_rate_hz = 30
players = 4
min_players = 4
matchmaking_wait_s = 600
teams = 2

[[mode]]
name = "brief"
game = "arena"
sync = "state"
tick_rate_hz = 30
players = 2
private_room_ttl_s = 1
spectators = 0

[[mode]]
name = "rated"
game = "arena"
sync = "state"
tick_rate_hz = 30
players = 2
min_players = 2
matchmaking_wait_s = 600
[mode.matchmaking]
rating = "rating"
region = "region"
exact = ["version"]
"#;

/// Longest any test waits for a state before failing.
pub const TEST_DEADLINE: Duration = Duration::from_secs(15);

/// A valid device id (32 hex digits) standing for `tag`: the same tag, the same device.
pub fn device_id(tag: &str) -> String {
    encode_hex(&Sha256::digest(tag.as_bytes())[..16])
}

pub fn keys() -> KeyRing {
    KeyRing::single(3, [9; 32])
}

/// A config over the test modes with a rate limit too high to matter.
pub fn config() -> GatewayConfig {
    let mut c = GatewayConfig::new(keys(), Modes::parse(MODES).expect("test modes parse"));
    c.rate_per_ip_per_s = 100_000;
    c.rate_burst = 100_000;
    c
}

pub fn server(id: &str, load: u32) -> RoomServerInfo {
    RoomServerInfo {
        server_id: id.into(),
        quic_addr: format!("127.0.0.1:{}", 4000 + load),
        ws_addr: format!("127.0.0.1:{}", 5000 + load),
        cert_fingerprint: format!("fp-{id}"),
        ws_tls: false,
        capacity: 10_000,
        load,
        draining: false,
    }
}

/// A served gateway; dropping it stops the HTTP server and the matchmaker.
pub struct TestGateway {
    pub base: String,
    pub gw: Arc<Gateway>,
    pub http: reqwest::Client,
    _shutdown: watch::Sender<bool>,
}

pub async fn start(
    config: GatewayConfig,
    directory: Arc<dyn Directory>,
    matcher: bool,
) -> TestGateway {
    let gw = Gateway::new(config, directory);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("local addr");
    let (tx, rx) = watch::channel(false);
    let app = router(gw.clone()).into_make_service_with_connect_info::<SocketAddr>();
    let mut stop = rx.clone();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                let _ = stop.wait_for(|s| *s).await;
            })
            .await;
    });
    if matcher {
        tokio::spawn(run_matchmaker(gw.clone(), rx));
    }
    TestGateway {
        base: format!("http://{addr}"),
        gw,
        http: reqwest::Client::new(),
        _shutdown: tx,
    }
}

impl Drop for TestGateway {
    fn drop(&mut self) {
        let _ = self._shutdown.send(true);
    }
}

impl TestGateway {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub async fn post_json(&self, path: &str, body: Value, token: Option<&str>) -> Response {
        let mut req = self.http.post(self.url(path)).json(&body);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        req.send().await.expect("request")
    }

    /// Device login as the device `device_id(tag)`; returns (player_id, session_token).
    pub async fn login(&self, tag: &str) -> (u64, String) {
        let r = self
            .post_json(
                "/v1/auth/device",
                json!({"device_id": device_id(tag)}),
                None,
            )
            .await;
        assert_eq!(r.status(), StatusCode::OK);
        let v: Value = r.json().await.expect("json");
        (
            v["player_id"].as_u64().expect("player_id"),
            v["session_token"].as_str().expect("token").to_owned(),
        )
    }

    /// Queues; returns the ticket id (asserts 202).
    pub async fn enqueue(&self, token: &str, mode: &str) -> String {
        let r = self
            .post_json("/v1/matchmaking", json!({"mode": mode}), Some(token))
            .await;
        let status = r.status();
        let v: Value = r.json().await.expect("json");
        assert_eq!(status, StatusCode::ACCEPTED, "{v}");
        v["ticket_id"].as_str().expect("ticket_id").to_owned()
    }

    pub async fn poll_raw(&self, token: &str, ticket: &str, wait_ms: u64) -> Response {
        self.http
            .get(self.url(&format!("/v1/matchmaking/{ticket}?wait_ms={wait_ms}")))
            .bearer_auth(token)
            .send()
            .await
            .expect("request")
    }

    /// Long-polls until matched or `TEST_DEADLINE`.
    pub async fn poll_until_matched(&self, token: &str, ticket: &str) -> PollResponse {
        let deadline = tokio::time::Instant::now() + TEST_DEADLINE;
        loop {
            let r = self.poll_raw(token, ticket, 2_000).await;
            let status = r.status();
            let text = r.text().await.expect("poll body");
            assert_eq!(status, StatusCode::OK, "{text}");
            let answer: PollResponse = serde_json::from_str(&text).expect("poll json");
            if matches!(answer, PollResponse::Matched(_)) {
                return answer;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "ticket {ticket} not matched in time"
            );
        }
    }
}

/// Asserts an error response's status and code, and returns its body.
pub async fn expect_error(
    r: Response,
    status: StatusCode,
    code: tickroom_protocol::ErrorCode,
) -> ErrorBody {
    assert_eq!(r.status(), status);
    let body: ErrorBody = r.json().await.expect("error json");
    assert_eq!(body.code, code.as_u16(), "{body:?}");
    assert_eq!(body.error, code.name());
    assert!(!body.message.is_empty());
    body
}
