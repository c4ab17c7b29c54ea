//! The admin API's directory contract and HTTP routes, over the in-memory directory and a real
//! redis-server alike: room listing (newest first, paged, closed and expired rooms leave it),
//! operator command queues with their bounds and replies, the ring of room servers' errors,
//! servers' self-descriptions; then the routes: token checks, the routes' absence without
//! tokens, and drain, seats, kick and close carried to a room server that lives "elsewhere"
//! (a task taking its commands from the directory, as a room server in another process does).

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use reqwest::StatusCode;
use serde_json::{json, Value};
use tickroom_gateway::admin::{self, ServersResponse, COMMAND_WAIT};
use tickroom_gateway::directory::{
    MAX_QUEUED_COMMANDS, MAX_RECENT_ERRORS, MAX_ROOMS_PAGE, PLACEMENT_EPOCH,
};
use tickroom_gateway::{
    now_ms, router, AdminAction, AdminCommand, AdminReply, AdminTokens, Directory, DirectoryError,
    ErrorLog, ErrorRecord, Gateway, InMemoryDirectory, MatchRequest, QueueEntry, SeatInfo,
    ServerAbout, TicketId,
};
use tickroom_protocol::ErrorCode;
use tokio::sync::watch;

use common::redis_server::RedisServer;
use common::{config, expect_error, server, TEST_DEADLINE};

const TTL: Duration = Duration::from_secs(60);
const TOKEN: &str = "ops-token-0123456789abcdef";
const OTHER_TOKEN: &str = "ci-token-fedcba9876543210";

fn request(now_ms: u64) -> MatchRequest {
    MatchRequest {
        mode: "m".into(),
        players: 2,
        min_players: 2,
        wait_ms: 0,
        abandon_after_ms: 30_000,
        now_ms,
        max_matches: 16,
        join_window_ms: 20_000,
        seed: 1,
        rules: None,
        teams: 1,
    }
}

/// Queues players `first` and `first + 1` at `at_ms` and forms their match; returns the room.
async fn one_match(dir: &dyn Directory, first: u64, at_ms: u64) -> u64 {
    for p in [first, first + 1] {
        let entry = QueueEntry {
            ticket_id: TicketId(u128::from(p) + 10_000),
            player_id: p,
            mode: "m".into(),
            enqueued_ms: at_ms,
            metadata: Default::default(),
            properties: Default::default(),
            party: None,
        };
        dir.enqueue(entry).await.expect("enqueue");
    }
    let formed = dir.form_matches(request(at_ms)).await.expect("form");
    assert_eq!(formed.matches.len(), 1, "{formed:?}");
    formed.matches[0].room_id
}

async fn redis_directory(redis: &RedisServer, prefix: &str) -> Arc<dyn Directory> {
    redis.patient_directory(prefix).await
}

/// Every room once, newest first, in pages; the total; closed rooms leave the listing.
async fn rooms_are_listed_newest_first_in_pages(dir: Arc<dyn Directory>) -> Vec<u64> {
    dir.register_server(server("s1", 0), TTL).await.unwrap();
    let base = now_ms();
    let mut rooms = Vec::new();
    for i in 0..7 {
        rooms.push(one_match(dir.as_ref(), 1 + 2 * i, base + i).await);
    }
    let newest_first: Vec<u64> = rooms.iter().rev().copied().collect();
    let mut listed = Vec::new();
    let mut offset = 0;
    loop {
        let page = dir.list_rooms(offset, 3).await.unwrap();
        assert_eq!(page.total, 7);
        assert!(page.rooms.len() <= 3);
        if page.rooms.is_empty() {
            break;
        }
        offset += page.rooms.len();
        listed.extend(page.rooms.iter().map(|r| r.room_id));
        assert!(listed.len() <= 7, "{listed:?}");
    }
    assert_eq!(listed, newest_first);
    let newest = &dir.list_rooms(0, 1).await.unwrap().rooms[0];
    assert_eq!(newest.room_id, rooms[6]);
    assert_eq!(
        (newest.mode.as_str(), newest.server.server_id.as_str()),
        ("m", "s1")
    );
    assert_eq!(newest.players, vec![13, 14]);
    assert_eq!(newest.epoch, PLACEMENT_EPOCH);
    assert_eq!(newest.created_ms, base + 6);
    // A page past the end is empty; a zero limit still tells the total; limits are capped.
    assert!(dir.list_rooms(7, 3).await.unwrap().rooms.is_empty());
    let far = dir.list_rooms(usize::MAX, 3).await.unwrap();
    assert_eq!((far.total, far.rooms.len()), (7, 0));
    let counted = dir.list_rooms(0, 0).await.unwrap();
    assert_eq!((counted.total, counted.rooms.len()), (7, 0));
    assert_eq!(dir.list_rooms(0, usize::MAX).await.unwrap().rooms.len(), 7);
    dir.close_room(rooms[3]).await.unwrap();
    let page = dir.list_rooms(0, MAX_ROOMS_PAGE).await.unwrap();
    assert_eq!(page.total, 6);
    assert!(!page.rooms.iter().any(|r| r.room_id == rooms[3]));
    rooms
}

fn command(id: u64) -> AdminCommand {
    AdminCommand {
        id,
        actor: "ops".into(),
        issued_ms: now_ms(),
        action: AdminAction::Close { room_id: id },
    }
}

/// Per-server queues, oldest first, bounded; replies are read once.
async fn commands_queue_per_server_and_replies_are_read_once(dir: Arc<dyn Directory>) {
    for id in 0..MAX_QUEUED_COMMANDS as u64 {
        dir.push_command("s1", command(id)).await.unwrap();
    }
    assert!(
        matches!(
            dir.push_command("s1", command(999)).await,
            Err(DirectoryError::Full(_))
        ),
        "the queue is bounded"
    );
    dir.push_command("s2", command(7)).await.unwrap();
    let first = dir.take_commands("s1", 10).await.unwrap();
    assert_eq!(
        first.iter().map(|c| c.id).collect::<Vec<_>>(),
        (0..10).collect::<Vec<_>>()
    );
    assert_eq!(first[3], command(3).with_issued(first[3].issued_ms));
    let rest = dir.take_commands("s1", 1_000).await.unwrap();
    assert_eq!(rest.len(), MAX_QUEUED_COMMANDS - 10);
    assert_eq!(rest[0].id, 10);
    assert!(dir.take_commands("s1", 5).await.unwrap().is_empty());
    assert_eq!(dir.take_commands("s2", 5).await.unwrap()[0].id, 7);
    // Room again once taken.
    dir.push_command("s1", command(1)).await.unwrap();
    let seats = AdminReply::Seats {
        tick: 5,
        started: true,
        seats: vec![SeatInfo {
            slot: 1,
            player_id: u64::MAX,
            connected: false,
        }],
    };
    dir.put_reply(41, seats.clone()).await.unwrap();
    assert_eq!(dir.take_reply(41).await.unwrap(), Some(seats));
    assert_eq!(dir.take_reply(41).await.unwrap(), None);
    assert_eq!(dir.take_reply(42).await.unwrap(), None);
}

trait WithIssued {
    fn with_issued(self, ms: u64) -> Self;
}

impl WithIssued for AdminCommand {
    fn with_issued(mut self, ms: u64) -> Self {
        self.issued_ms = ms;
        self
    }
}

/// The newest `MAX_RECENT_ERRORS` reports are kept, newest first; abouts live with the
/// registration.
async fn errors_ring_and_abouts(dir: Arc<dyn Directory>) {
    let batch: Vec<ErrorRecord> = (0..300)
        .map(|i| ErrorRecord::new("room", ErrorCode::TicketInvalid, format!("#{i}"), "bad"))
        .collect();
    dir.report_errors(batch[..100].to_vec()).await.unwrap();
    dir.report_errors(batch[100..].to_vec()).await.unwrap();
    let recent = dir.recent_errors().await.unwrap();
    assert_eq!(recent.len(), MAX_RECENT_ERRORS);
    assert_eq!(recent[0].what, "#299");
    assert_eq!(recent[MAX_RECENT_ERRORS - 1].what, "#44");
    let about = ServerAbout {
        server_id: "s9".into(),
        version: "9.9.9".into(),
        started_ms: now_ms(),
        rooms: 3,
        drain_requested: true,
    };
    dir.register_server_about(server("s9", 1), about.clone(), TTL)
        .await
        .unwrap();
    assert!(dir
        .live_servers()
        .await
        .unwrap()
        .iter()
        .any(|s| s.server_id == "s9"));
    let abouts = dir
        .server_abouts(&["s9".into(), "nobody".into()])
        .await
        .unwrap();
    assert_eq!(abouts, vec![Some(about), None]);
}

#[tokio::test]
async fn memory_lists_rooms_newest_first_in_pages() {
    rooms_are_listed_newest_first_in_pages(InMemoryDirectory::new()).await;
}

#[tokio::test]
async fn memory_queues_commands_and_keeps_recent_errors() {
    commands_queue_per_server_and_replies_are_read_once(InMemoryDirectory::new()).await;
    errors_ring_and_abouts(InMemoryDirectory::new()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_lists_rooms_and_skips_expired_records() {
    let redis = RedisServer::start().await;
    let dir = redis_directory(&redis, "adm:").await;
    let rooms = rooms_are_listed_newest_first_in_pages(dir.clone()).await;
    // A record that expired under the index (as an unjoined room's does) is skipped and its
    // index entry removed as the listing passes over it.
    let client = redis::Client::open(redis.url()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    redis::cmd("DEL")
        .arg(format!("adm:room:{}", rooms[5]))
        .query_async::<()>(&mut conn)
        .await
        .unwrap();
    let page = dir.list_rooms(0, 2).await.unwrap();
    assert_eq!(
        page.rooms.iter().map(|r| r.room_id).collect::<Vec<_>>(),
        [rooms[6], rooms[4]]
    );
    assert_eq!(page.total, 5);
    let zcard: u64 = redis::cmd("ZCARD")
        .arg("adm:rooms")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(zcard, 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_queues_commands_and_keeps_recent_errors() {
    let redis = RedisServer::start().await;
    commands_queue_per_server_and_replies_are_read_once(redis_directory(&redis, "cmd:").await)
        .await;
    errors_ring_and_abouts(redis_directory(&redis, "err:").await).await;
}

/// A gateway with (or without) the admin API, served on 127.0.0.1:0.
struct AdminGateway {
    base: String,
    http: reqwest::Client,
    _stop: watch::Sender<bool>,
    _files: TempDir,
}

/// A temporary directory, removed when dropped.
struct TempDir(std::path::PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!(
            "tickroom-{tag}-{}-{}",
            std::process::id(),
            rand::random::<u64>()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

async fn start_admin(dir: Arc<dyn Directory>, with_admin: bool) -> AdminGateway {
    let files = TempDir::new("gw-admin");
    let token_file = files.0.join("tokens");
    std::fs::write(
        &token_file,
        format!("# operators\nops:{TOKEN}\nci:{OTHER_TOKEN}\n"),
    )
    .unwrap();
    let gw = Gateway::new(config(), dir);
    let errors = ErrorLog::new();
    let mut app = admin::record_errors(router(gw.clone()), errors.clone());
    if with_admin {
        let tokens = AdminTokens::load(&token_file).unwrap();
        app = app.merge(admin::router(gw, tokens, errors, None));
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, mut rx) = watch::channel(false);
    tokio::spawn(async move {
        let app = app.into_make_service_with_connect_info::<SocketAddr>();
        let _ = axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                let _ = rx.wait_for(|s| *s).await;
            })
            .await;
    });
    AdminGateway {
        base: format!("http://{addr}"),
        http: reqwest::Client::new(),
        _stop: tx,
        _files: files,
    }
}

impl AdminGateway {
    async fn call(
        &self,
        method: &str,
        path: &str,
        auth: Option<&str>,
        body: Option<Value>,
    ) -> reqwest::Response {
        let url = format!("{}{path}", self.base);
        let mut req = match method {
            "POST" => self.http.post(url),
            _ => self.http.get(url),
        };
        if let Some(auth) = auth {
            req = req.header("authorization", auth);
        }
        if let Some(body) = body {
            req = req.json(&body);
        }
        req.send().await.expect("request")
    }

    async fn ok(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let r = self
            .call(method, path, Some(&format!("Bearer {TOKEN}")), body)
            .await;
        let status = r.status();
        let text = r.text().await.unwrap();
        assert_eq!(status, StatusCode::OK, "{method} {path}: {text}");
        serde_json::from_str(&text).unwrap()
    }
}

/// A room server in "another process": takes its commands from the directory like
/// `ServerAgent` does and answers them; records what it was asked and by whom.
fn fake_room_server(dir: Arc<dyn Directory>, id: &'static str) -> Arc<Mutex<Vec<AdminCommand>>> {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    tokio::spawn(async move {
        let mut every = tokio::time::interval(Duration::from_millis(20));
        loop {
            every.tick().await;
            let Ok(commands) = dir.take_commands(id, 16).await else {
                continue;
            };
            for c in commands {
                let reply = match &c.action {
                    AdminAction::Drain { draining } => {
                        let mut info = server(id, 0);
                        info.draining = *draining;
                        dir.register_server(info, TTL).await.unwrap();
                        AdminReply::Done
                    }
                    AdminAction::Seats { .. } => AdminReply::Seats {
                        tick: 42,
                        started: true,
                        seats: vec![SeatInfo {
                            slot: 0,
                            player_id: 1,
                            connected: true,
                        }],
                    },
                    AdminAction::Kick { player_id: 1, .. } | AdminAction::Close { .. } => {
                        AdminReply::Done
                    }
                    AdminAction::Kick { .. } => AdminReply::NoPlayer,
                };
                dir.put_reply(c.id, reply).await.unwrap();
                log.lock().push(c);
            }
        }
    });
    seen
}

async fn routes_check_tokens_and_reach_remote_servers(dir: Arc<dyn Directory>) {
    dir.register_server(server("s1", 0), TTL).await.unwrap();
    let seen = fake_room_server(dir.clone(), "s1");
    let gw = start_admin(dir.clone(), true).await;

    // Tokens: none, wrong or another scheme is 401 with the usual JSON body; either line's
    // token works, whatever the scheme's case.
    for auth in [
        None,
        Some("Bearer wrong-token-0123456789".to_string()),
        Some(format!("Basic {TOKEN}")),
        Some(format!("Bearer {TOKEN}x")),
    ] {
        let r = gw
            .call("GET", "/v1/admin/servers", auth.as_deref(), None)
            .await;
        assert!(r.headers().contains_key("www-authenticate"));
        expect_error(r, StatusCode::UNAUTHORIZED, ErrorCode::Unauthorized).await;
    }
    for auth in [format!("bearer {OTHER_TOKEN}"), format!("Bearer {TOKEN}")] {
        let r = gw.call("GET", "/v1/admin/servers", Some(&auth), None).await;
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(r.headers()["cache-control"], "no-store");
    }
    let servers: ServersResponse =
        serde_json::from_value(gw.ok("GET", "/v1/admin/servers", None).await).unwrap();
    assert_eq!(servers.servers.len(), 1);
    assert_eq!(servers.servers[0].server_id, "s1");
    assert_eq!(servers.servers[0].version, None, "s1 sent no about");

    // Drain and undrain travel to s1 through the directory, with the operator's id.
    let answer = gw.ok("POST", "/v1/admin/servers/s1/drain", None).await;
    assert_eq!(answer, json!({"server_id": "s1", "draining": true}));
    let listed = gw.ok("GET", "/v1/admin/servers", None).await;
    assert_eq!(listed["servers"][0]["draining"], true);
    let answer = gw.ok("POST", "/v1/admin/servers/s1/undrain", None).await;
    assert_eq!(answer["draining"], false);
    {
        let seen = seen.lock();
        assert_eq!(seen.len(), 2);
        assert_eq!(seen[0].actor, "ops");
        assert_eq!(seen[0].action, AdminAction::Drain { draining: true });
        assert_eq!(seen[1].action, AdminAction::Drain { draining: false });
    }
    let r = gw
        .call(
            "POST",
            "/v1/admin/servers/nobody/drain",
            Some(&format!("Bearer {TOKEN}")),
            None,
        )
        .await;
    expect_error(r, StatusCode::NOT_FOUND, ErrorCode::NotFound).await;

    // A room on s1: listed, its seats asked of s1, a kick and a close carried to s1.
    let room_id = one_match(dir.as_ref(), 1, now_ms()).await;
    let rooms = gw.ok("GET", "/v1/admin/rooms", None).await;
    assert_eq!(rooms["total"], 1);
    assert_eq!(rooms["next_offset"], Value::Null);
    assert_eq!(rooms["rooms"][0]["room_id"], room_id);
    assert_eq!(rooms["rooms"][0]["server_id"], "s1");
    assert_eq!(rooms["rooms"][0]["owner_alive"], true);
    assert_eq!(rooms["rooms"][0]["players"], json!([1, 2]));
    let detail = gw
        .ok("GET", &format!("/v1/admin/rooms/{room_id}"), None)
        .await;
    assert_eq!(detail["running"], true);
    assert_eq!(detail["tick"], 42);
    assert_eq!(
        detail["seats"],
        json!([{"slot": 0, "player_id": 1, "connected": true}])
    );
    let kicked = gw
        .ok(
            "POST",
            &format!("/v1/admin/rooms/{room_id}/kick"),
            Some(json!({"player_id": 1, "code": "kicked"})),
        )
        .await;
    assert_eq!(
        kicked,
        json!({"room_id": room_id, "player_id": 1, "code": "kicked", "kicked": true})
    );
    let admin = Some(format!("Bearer {TOKEN}"));
    let kick = |body: Value| {
        let gw = &gw;
        let admin = admin.clone();
        async move {
            gw.call(
                "POST",
                &format!("/v1/admin/rooms/{room_id}/kick"),
                admin.as_deref(),
                Some(body),
            )
            .await
        }
    };
    let r = kick(json!({"player_id": 2})).await;
    expect_error(r, StatusCode::NOT_FOUND, ErrorCode::NotFound).await;
    let r = kick(json!({"player_id": 1, "code": "no_such_code"})).await;
    expect_error(r, StatusCode::BAD_REQUEST, ErrorCode::BadRequest).await;
    let r = kick(json!({"player": 1})).await;
    expect_error(r, StatusCode::BAD_REQUEST, ErrorCode::BadRequest).await;
    let r = gw
        .call(
            "POST",
            "/v1/admin/rooms/12345/kick",
            admin.as_deref(),
            Some(json!({"player_id": 1})),
        )
        .await;
    expect_error(r, StatusCode::NOT_FOUND, ErrorCode::NotFound).await;
    let closed = gw
        .ok("POST", &format!("/v1/admin/rooms/{room_id}/close"), None)
        .await;
    assert_eq!(closed["by"], "room_server");
    {
        let seen = seen.lock();
        let actions: Vec<&AdminAction> = seen.iter().map(|c| &c.action).collect();
        assert!(actions.contains(&&AdminAction::Kick {
            room_id,
            player_id: 1,
            code: ErrorCode::Kicked
        }));
        assert!(actions.contains(&&AdminAction::Close { room_id }));
    }

    // Paging parameters: a bad one is 400, a large limit is capped.
    let r = gw
        .call("GET", "/v1/admin/rooms?limit=many", admin.as_deref(), None)
        .await;
    expect_error(r, StatusCode::BAD_REQUEST, ErrorCode::BadRequest).await;
    let capped = gw.ok("GET", "/v1/admin/rooms?limit=100000", None).await;
    assert_eq!(capped["limit"], MAX_ROOMS_PAGE);

    // The recent errors: this gateway's answers (API and admin) and the room servers'.
    let r = gw
        .call("POST", "/v1/auth/device", None, Some(json!({})))
        .await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let mut refusal =
        ErrorRecord::new("room", ErrorCode::TicketExpired, "handshake".into(), "late");
    refusal.server_id = Some("s1".into());
    dir.report_errors(vec![refusal]).await.unwrap();
    let errors = gw.ok("GET", "/v1/admin/errors", None).await;
    let list = errors["errors"].as_array().unwrap();
    let has = |source: &str, error: &str, what: &str| {
        list.iter()
            .any(|e| e["source"] == source && e["error"] == error && e["what"] == what)
    };
    assert!(
        has("gateway", "bad_request", "POST /v1/auth/device"),
        "{errors}"
    );
    assert!(
        has("admin", "unauthorized", "GET /v1/admin/servers"),
        "{errors}"
    );
    assert!(
        has("admin", "not_found", "POST /v1/admin/rooms/{id}/kick"),
        "{errors}"
    );
    assert!(has("room", "ticket_expired", "handshake"), "{errors}");
    let times: Vec<u64> = list
        .iter()
        .map(|e| e["time_ms"].as_u64().unwrap())
        .collect();
    assert!(times.windows(2).all(|w| w[0] >= w[1]), "newest first");
    let serialized = errors.to_string();
    assert!(!serialized.contains(TOKEN) && !serialized.contains("wrong-token"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_admin_routes_check_tokens_and_reach_remote_servers() {
    routes_check_tokens_and_reach_remote_servers(InMemoryDirectory::new()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_admin_routes_check_tokens_and_reach_remote_servers() {
    let redis = RedisServer::start().await;
    routes_check_tokens_and_reach_remote_servers(redis_directory(&redis, "http:").await).await;
}

/// A live server that never takes its commands: the request gives up after `COMMAND_WAIT`
/// with 504, and the command does not outlive its TTL in the queue's bound.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_does_not_answer_is_a_timeout() {
    let dir = InMemoryDirectory::new();
    dir.register_server(server("mute", 0), TTL).await.unwrap();
    let gw = start_admin(dir.clone(), true).await;
    let started = tokio::time::Instant::now();
    let r = gw
        .call(
            "POST",
            "/v1/admin/servers/mute/drain",
            Some(&format!("Bearer {TOKEN}")),
            None,
        )
        .await;
    let waited = started.elapsed();
    expect_error(r, StatusCode::GATEWAY_TIMEOUT, ErrorCode::ServerBusy).await;
    assert!(waited >= COMMAND_WAIT, "{waited:?}");
    assert!(waited < COMMAND_WAIT + TEST_DEADLINE);
    assert_eq!(dir.take_commands("mute", 16).await.unwrap().len(), 1);
}

/// Without tokens the admin routes and the page do not exist; with them the page is served
/// with a strict policy and asks for nothing but the token.
#[tokio::test]
async fn without_tokens_there_is_no_admin_api_and_no_page() {
    let plain = start_admin(InMemoryDirectory::new(), false).await;
    let r = plain
        .call(
            "GET",
            "/v1/admin/servers",
            Some(&format!("Bearer {TOKEN}")),
            None,
        )
        .await;
    expect_error(r, StatusCode::NOT_FOUND, ErrorCode::NotFound).await;
    let r = plain.call("GET", "/status", None, None).await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);

    let admin = start_admin(InMemoryDirectory::new(), true).await;
    let r = admin.call("GET", "/status", None, None).await;
    assert_eq!(r.status(), StatusCode::OK);
    let csp = r.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(csp.contains("default-src 'none'") && csp.contains("script-src 'self'"));
    let html = r.text().await.unwrap();
    assert!(html.contains("id=\"room-count\"") && html.contains("/status/status.js"));
    let js = admin.call("GET", "/status/status.js", None, None).await;
    assert_eq!(js.status(), StatusCode::OK);
    let js = js.text().await.unwrap();
    assert!(!js.contains("localStorage") && !js.contains("document.cookie"));
    assert!(!js.contains("innerHTML"));
}
