//! The operators' admin API and status page against the real `tickroom` binary: tokens (none,
//! wrong, good, rotated), the routes' absence without `--admin-token-file`, and every action
//! in the all-in-one (servers, rooms in pages, a room's seats, kick, close, drain/undrain, the
//! recent errors with a gateway error and a room server's handshake refusal); then the same
//! actions across processes over Redis (two room servers, one gateway): a drained server gets
//! no new match while the other does, and kick, close, seats and refusals travel through the
//! directory. Only loopback traffic; children are ended by their own handles.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{json, Value};
use tickroom_protocol::connect::{
    self, GatewayClient, MatchResult, RawConn, Session, TransportKind,
};
use tickroom_protocol::session::{SessionConfig, SessionEvent};
use tickroom_protocol::{protocol_hash, ClientMsg, ErrorCode, ServerMsg, PROTOCOL_VERSION};

mod common;

use common::{
    free_port, start_redis, start_room_server, start_tickroom, Proc, TempDir, KEYS, WAIT,
};

const TOKEN: &str = "ops-token-0123456789abcdef";

/// Writes `lines` as the token file `DIR/tokens`.
fn token_file(dir: &Path, lines: &str) -> PathBuf {
    let path = dir.join("tokens");
    std::fs::write(&path, lines).unwrap();
    path
}

async fn all_in_one(dir: &TempDir, admin: bool) -> Proc {
    let tokens = token_file(dir.path(), &format!("ops:{TOKEN}\n"));
    let mut args = vec!["--ws", "127.0.0.1:0", "--quic", "127.0.0.1:0"];
    if admin {
        args.extend(["--admin-token-file", tokens.to_str().unwrap()]);
    }
    start_tickroom(dir.path(), "all-in-one", &args, &[]).await
}

/// An admin request with `auth` as the Authorization header; (status, JSON body or Null).
async fn call(
    base: &str,
    method: &str,
    path: &str,
    auth: Option<&str>,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let client = reqwest::Client::new();
    let url = format!("{base}{path}");
    let mut req = if method == "POST" {
        client.post(url)
    } else {
        client.get(url)
    };
    if let Some(auth) = auth {
        req = req.header("authorization", auth);
    }
    if let Some(body) = body {
        req = req.json(&body);
    }
    let r = req.send().await.expect("request");
    let status = r.status();
    let text = r.text().await.unwrap_or_default();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

/// An admin request with the good token that must answer 200.
async fn admin(base: &str, method: &str, path: &str, body: Option<Value>) -> Value {
    let (status, body) = call(base, method, path, Some(&format!("Bearer {TOKEN}")), body).await;
    assert_eq!(status, StatusCode::OK, "{method} {path}: {body}");
    body
}

/// Polls `GET path` with the good token until `ready` holds for its body.
async fn admin_until(base: &str, path: &str, what: &str, ready: impl Fn(&Value) -> bool) -> Value {
    let deadline = tokio::time::Instant::now() + WAIT;
    let mut every = tokio::time::interval(Duration::from_millis(50));
    loop {
        every.tick().await;
        let body = admin(base, "GET", path, None).await;
        if ready(&body) {
            return body;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}: last {body}"
        );
    }
}

/// Logs `n` players in through `gw`, queues them for `duel` and returns their matches.
async fn match_players(gw: &GatewayClient, n: usize, tag: &str) -> Vec<MatchResult> {
    let mut tasks = Vec::new();
    for i in 0..n {
        let gw = gw.clone();
        let device = tickroom_testkit::device_id(&format!("{tag}-{i}"));
        tasks.push(tokio::spawn(async move {
            gw.find_match(&device, "duel", WAIT).await.unwrap()
        }));
    }
    let mut out = Vec::new();
    for t in tasks {
        out.push(t.await.unwrap());
    }
    out
}

/// The matches grouped by room, each room's two matches in order.
fn by_room(matches: &[MatchResult]) -> HashMap<u64, Vec<MatchResult>> {
    let mut rooms: HashMap<u64, Vec<MatchResult>> = HashMap::new();
    for m in matches {
        rooms.entry(m.room_id).or_default().push(m.clone());
    }
    assert!(rooms.values().all(|r| r.len() == 2), "duels of two");
    rooms
}

/// Joins a match over WebSocket and waits for its Welcome: (session, player id, slot).
async fn join(m: &MatchResult) -> (Session, u64, u8) {
    let mut s = connect::join(m, TransportKind::Ws, SessionConfig::default(), None)
        .await
        .unwrap();
    let welcome = tokio::time::timeout(WAIT, async {
        loop {
            match s.events.recv().await.expect("session ended before joining") {
                SessionEvent::Joined(w) => return w,
                SessionEvent::Closed { code } => panic!("closed before joining: {code:?}"),
                _ => {}
            }
        }
    })
    .await
    .expect("joined in time");
    (s, welcome.player_id, welcome.slot)
}

/// Waits for the session's end and returns its code.
async fn closed(s: &mut Session) -> Option<ErrorCode> {
    tokio::time::timeout(WAIT, async {
        loop {
            match s.events.recv().await {
                Some(SessionEvent::Closed { code }) => return code,
                Some(_) => {}
                None => panic!("the session's events ended without Closed"),
            }
        }
    })
    .await
    .expect("the session closed in time")
}

/// A Hello with a ticket that is not one: the room server refuses it (`TicketInvalid`).
async fn refused_handshake(ws_addr: &str) {
    let mut conn = RawConn::open_ws(ws_addr).await.unwrap();
    conn.send(&ClientMsg::Hello {
        protocol_version: PROTOCOL_VERSION,
        protocol_hash: protocol_hash(),
        ticket: "not-a-ticket".into(),
    })
    .await
    .unwrap();
    let reply = tokio::time::timeout(WAIT, conn.recv()).await.unwrap();
    assert!(
        matches!(
            reply,
            Ok(Some(ServerMsg::Error {
                code: ErrorCode::TicketInvalid,
                ..
            }))
        ),
        "{reply:?}"
    );
}

fn has_error(errors: &Value, pick: impl Fn(&Value) -> bool) -> bool {
    errors["errors"]
        .as_array()
        .is_some_and(|l| l.iter().any(pick))
}

/// No token, a wrong one or another scheme: 401 with the gateway's JSON error; the good one:
/// 200. Without the flag the routes and the page do not exist. A rotated file is read again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_routes_need_the_flag_and_a_good_token() {
    let dir = TempDir::new("admin-auth");
    let plain = all_in_one(&dir, false).await;
    let good = format!("Bearer {TOKEN}");
    for (method, path) in [
        ("GET", "/v1/admin/servers"),
        ("GET", "/v1/admin/rooms"),
        ("GET", "/v1/admin/errors"),
        ("POST", "/v1/admin/servers/room-1/drain"),
    ] {
        let (status, body) = call(&plain.http(), method, path, Some(&good), None).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}: {body}");
    }
    let (status, _) = call(&plain.http(), "GET", "/status", None, None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    drop(plain);

    let dir = TempDir::new("admin-auth");
    let server = all_in_one(&dir, true).await;
    let base = server.http();
    for auth in [
        None,
        Some("Bearer wrong-token-0123456789".to_string()),
        Some(format!("Basic {TOKEN}")),
        Some(format!("Bearer {TOKEN}0")),
    ] {
        for (method, path) in [
            ("GET", "/v1/admin/servers"),
            ("GET", "/v1/admin/rooms/1"),
            ("POST", "/v1/admin/servers/room-1/drain"),
        ] {
            let (status, body) = call(&base, method, path, auth.as_deref(), None).await;
            assert_eq!(status, StatusCode::UNAUTHORIZED, "{auth:?} {path}: {body}");
            assert_eq!(body["code"], ErrorCode::Unauthorized.as_u16());
            assert_eq!(body["error"], "unauthorized");
            assert!(body["message"].as_str().is_some_and(|m| !m.is_empty()));
        }
    }
    let (status, _) = call(&base, "GET", "/v1/admin/servers", Some(&good), None).await;
    assert_eq!(status, StatusCode::OK);
    // Nothing was drained by the refused requests.
    let servers = admin(&base, "GET", "/v1/admin/servers", None).await;
    assert_eq!(servers["servers"][0]["draining"], false);
    let (status, _) = call(&base, "GET", "/status", None, None).await;
    assert_eq!(status, StatusCode::OK);

    // Rotation: a new file replaces the tokens without a restart.
    let fresh = "ops2:fresh-token-0123456789abcdef";
    token_file(dir.path(), &format!("{fresh}\n"));
    let deadline = tokio::time::Instant::now() + WAIT;
    let mut every = tokio::time::interval(Duration::from_millis(100));
    loop {
        every.tick().await;
        let (old, _) = call(&base, "GET", "/v1/admin/servers", Some(&good), None).await;
        let (new, _) = call(
            &base,
            "GET",
            "/v1/admin/servers",
            Some("Bearer fresh-token-0123456789abcdef"),
            None,
        )
        .await;
        if old == StatusCode::UNAUTHORIZED && new == StatusCode::OK {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the rotated token file was not read: old {old}, new {new}"
        );
    }
}

/// The all-in-one: the server with its version, rooms in pages, a room's seats, a kick that
/// ends that player's session with its code, a close that ends both, the errors list with a
/// gateway error and a handshake refusal.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn all_in_one_lists_and_acts_on_rooms() {
    let dir = TempDir::new("admin-aio");
    let server = all_in_one(&dir, true).await;
    let base = server.http();
    let servers = admin(&base, "GET", "/v1/admin/servers", None).await;
    let list = servers["servers"].as_array().unwrap();
    assert_eq!(list.len(), 1, "{servers}");
    let me = &list[0];
    assert_eq!(me["server_id"], "room-1");
    assert_eq!(me["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(me["ws_addr"], server.ready["ws"]);
    assert_eq!(me["quic_addr"], server.ready["quic"]);
    assert_eq!(
        (me["draining"].clone(), me["load"].clone()),
        (json!(false), json!(0))
    );
    assert!(me["capacity"].as_u64().unwrap() > 0);

    let gw = GatewayClient::new(&base);
    let matches = match_players(&gw, 6, "aio").await;
    let rooms = by_room(&matches);
    assert_eq!(rooms.len(), 3);
    let mut listed = BTreeSet::new();
    let first = admin(&base, "GET", "/v1/admin/rooms?limit=2", None).await;
    assert_eq!(
        (first["total"].clone(), first["limit"].clone()),
        (json!(3), json!(2))
    );
    assert_eq!(first["next_offset"], 2);
    let second = admin(&base, "GET", "/v1/admin/rooms?offset=2&limit=2", None).await;
    assert_eq!(second["next_offset"], Value::Null);
    for page in [&first, &second] {
        for r in page["rooms"].as_array().unwrap() {
            assert!(
                listed.insert(r["room_id"].as_u64().unwrap()),
                "listed twice"
            );
            assert_eq!(r["mode"], "duel");
            assert_eq!(r["server_id"], "room-1");
            assert_eq!(r["epoch"], 1);
            assert_eq!(r["players"].as_array().unwrap().len(), 2);
            assert!(r["age_ms"].as_u64().is_some());
        }
    }
    assert_eq!(listed, rooms.keys().copied().collect::<BTreeSet<_>>());

    // Seats of a room both players joined; a kick ends one session with the code asked.
    let mut ids = rooms.keys().copied();
    let (kick_room, close_room) = (ids.next().unwrap(), ids.next().unwrap());
    let (mut a, a_id, a_slot) = join(&rooms[&kick_room][0]).await;
    let (_b, b_id, b_slot) = join(&rooms[&kick_room][1]).await;
    let detail = admin(&base, "GET", &format!("/v1/admin/rooms/{kick_room}"), None).await;
    assert_eq!(detail["running"], true, "{detail}");
    let mut seats: Vec<(u64, u64)> = detail["seats"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["slot"].as_u64().unwrap(),
                s["player_id"].as_u64().unwrap(),
            )
        })
        .collect();
    seats.sort_unstable();
    let mut expected = vec![(u64::from(a_slot), a_id), (u64::from(b_slot), b_id)];
    expected.sort_unstable();
    assert_eq!(seats, expected);
    let kicked = admin(
        &base,
        "POST",
        &format!("/v1/admin/rooms/{kick_room}/kick"),
        Some(json!({"player_id": a_id, "code": "kicked"})),
    )
    .await;
    assert_eq!(kicked["kicked"], true);
    assert_eq!(closed(&mut a).await, Some(ErrorCode::Kicked));
    let detail = admin(&base, "GET", &format!("/v1/admin/rooms/{kick_room}"), None).await;
    let left: Vec<u64> = detail["seats"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["player_id"].as_u64().unwrap())
        .collect();
    assert_eq!(left, [b_id], "only the kicked player left");
    let (status, body) = call(
        &base,
        "POST",
        &format!("/v1/admin/rooms/{kick_room}/kick"),
        Some(&format!("Bearer {TOKEN}")),
        Some(json!({"player_id": a_id})),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");

    // A close ends the room for both its players.
    let (mut c, _, _) = join(&rooms[&close_room][0]).await;
    let (mut d, _, _) = join(&rooms[&close_room][1]).await;
    let answer = admin(
        &base,
        "POST",
        &format!("/v1/admin/rooms/{close_room}/close"),
        None,
    )
    .await;
    assert_eq!(answer["by"], "room_server");
    assert_eq!(closed(&mut c).await, Some(ErrorCode::RoomClosed));
    assert_eq!(closed(&mut d).await, Some(ErrorCode::RoomClosed));
    admin_until(
        &base,
        "/v1/admin/rooms",
        "the closed room to leave the list",
        |r| {
            !r["rooms"]
                .as_array()
                .unwrap()
                .iter()
                .any(|room| room["room_id"] == close_room)
        },
    )
    .await;

    // Errors: a bad login at the gateway and a refused handshake at the room server.
    let (status, _) = call(&base, "POST", "/v1/auth/device", None, Some(json!({}))).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    refused_handshake(server.ready["ws"].as_str().unwrap()).await;
    admin_until(&base, "/v1/admin/errors", "both errors listed", |e| {
        has_error(e, |r| {
            r["source"] == "gateway"
                && r["error"] == "bad_request"
                && r["status"] == 400
                && r["what"] == "POST /v1/auth/device"
        }) && has_error(e, |r| {
            r["source"] == "room"
                && r["server_id"] == "room-1"
                && r["error"] == "ticket_invalid"
                && r["code"] == ErrorCode::TicketInvalid.as_u16()
                && r["what"] == "handshake"
        })
    })
    .await;
}

/// The all-in-one's only server drained: a new pair stays queued (no match placed), the
/// running room goes on; undrained, the pair is matched.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn all_in_one_drain_stops_new_matches_until_undrain() {
    let dir = TempDir::new("admin-drain");
    let server = all_in_one(&dir, true).await;
    let base = server.http();
    let gw = GatewayClient::new(&base);
    let running = match_players(&gw, 2, "running").await;
    let (_a, _, _) = join(&running[0]).await;
    let (_b, _, _) = join(&running[1]).await;

    let answer = admin(&base, "POST", "/v1/admin/servers/room-1/drain", None).await;
    assert_eq!(answer, json!({"server_id": "room-1", "draining": true}));
    let servers = admin(&base, "GET", "/v1/admin/servers", None).await;
    assert_eq!(servers["servers"][0]["draining"], true);
    assert_eq!(servers["servers"][0]["drain_requested"], true);

    let mut waiting = Vec::new();
    for i in 0..2 {
        let login = gw
            .login_device(&tickroom_testkit::device_id(&format!("late-{i}")))
            .await
            .unwrap();
        let ticket = gw.queue(&login.session_token, "duel").await.unwrap();
        waiting.push((login.session_token, ticket));
    }
    for (token, ticket) in &waiting {
        let r = gw
            .wait_match(token, ticket, Duration::from_millis(1500))
            .await;
        assert!(r.is_err(), "matched while the only server drains: {r:?}");
    }
    // The running room still runs.
    let detail = admin(
        &base,
        "GET",
        &format!("/v1/admin/rooms/{}", running[0].room_id),
        None,
    )
    .await;
    assert_eq!(detail["running"], true);

    let answer = admin(&base, "POST", "/v1/admin/servers/room-1/undrain", None).await;
    assert_eq!(answer["draining"], false);
    for (token, ticket) in &waiting {
        let m = gw.wait_match(token, ticket, WAIT).await.unwrap();
        assert_eq!(m.server_id, "room-1");
    }
    let (status, body) = call(
        &base,
        "POST",
        "/v1/admin/servers/nobody/drain",
        Some(&format!("Bearer {TOKEN}")),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
}

/// Redis, room servers `room-1` and `room-2` and a gateway with the admin API, each its own
/// process. Fields drop in order: the processes, then Redis, then the temp dir.
struct Cluster {
    gateway: Proc,
    rooms: Vec<Proc>,
    _redis: Proc,
    _dir: TempDir,
}

async fn cluster() -> Cluster {
    let dir = TempDir::new("admin-redis");
    let (redis, url) = start_redis(dir.path()).await;
    let prefix = format!("a{}:", free_port());
    let mut rooms = Vec::new();
    for id in ["room-1", "room-2"] {
        let prefix = ["--redis-prefix", &prefix];
        rooms.push(start_room_server(dir.path(), id, &url, &prefix).await);
    }
    let tokens = token_file(dir.path(), &format!("ops:{TOKEN}\n"));
    let args = [
        "gateway",
        "--redis",
        &url,
        "--redis-prefix",
        &prefix,
        "--admin-token-file",
        tokens.to_str().unwrap(),
    ];
    let gateway = start_tickroom(dir.path(), "gateway", &args, &[("TICKROOM_KEYS", KEYS)]).await;
    Cluster {
        gateway,
        rooms,
        _redis: redis,
        _dir: dir,
    }
}

/// Across processes: the gateway lists both room servers; a drained one gets no new match
/// while the other gets them all; undrained it is listed as taking rooms again; a room's
/// seats, a kick, a close and a handshake refusal travel through the directory.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drain_kick_and_close_reach_room_servers_in_other_processes() {
    let c = cluster().await;
    let base = c.gateway.http();
    let servers = admin_until(&base, "/v1/admin/servers", "both room servers", |s| {
        s["servers"].as_array().is_some_and(|l| l.len() == 2)
    })
    .await;
    for (i, s) in servers["servers"].as_array().unwrap().iter().enumerate() {
        assert_eq!(s["server_id"], format!("room-{}", i + 1));
        assert_eq!(s["version"], env!("CARGO_PKG_VERSION"));
        assert_eq!(s["ws_addr"], c.rooms[i].ready["ws"]);
        assert_eq!(s["draining"], false);
    }

    let answer = admin(&base, "POST", "/v1/admin/servers/room-1/drain", None).await;
    assert_eq!(answer["draining"], true);
    let servers = admin(&base, "GET", "/v1/admin/servers", None).await;
    assert_eq!(servers["servers"][0]["draining"], true, "{servers}");
    assert_eq!(servers["servers"][0]["drain_requested"], true);
    assert_eq!(servers["servers"][1]["draining"], false);

    let gw = GatewayClient::new(&base);
    let matches = match_players(&gw, 8, "redis").await;
    let placed: BTreeSet<&str> = matches.iter().map(|m| m.server_id.as_str()).collect();
    assert_eq!(
        placed,
        BTreeSet::from(["room-2"]),
        "every match on the server that is not drained"
    );

    let answer = admin(&base, "POST", "/v1/admin/servers/room-1/undrain", None).await;
    assert_eq!(answer["draining"], false);
    let servers = admin(&base, "GET", "/v1/admin/servers", None).await;
    assert_eq!(servers["servers"][0]["draining"], false, "{servers}");
    assert_eq!(servers["servers"][0]["drain_requested"], false);

    // Seats and a kick on room-2, asked at the gateway.
    let rooms = by_room(&matches);
    let mut ids = rooms.keys().copied();
    let (kick_room, close_room) = (ids.next().unwrap(), ids.next().unwrap());
    let (mut a, a_id, _) = join(&rooms[&kick_room][0]).await;
    let (_b, b_id, _) = join(&rooms[&kick_room][1]).await;
    let detail = admin(&base, "GET", &format!("/v1/admin/rooms/{kick_room}"), None).await;
    assert_eq!(detail["server_id"], "room-2");
    assert_eq!(detail["running"], true, "{detail}");
    let mut seated: Vec<u64> = detail["seats"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["player_id"].as_u64().unwrap())
        .collect();
    seated.sort_unstable();
    let mut expected = vec![a_id, b_id];
    expected.sort_unstable();
    assert_eq!(seated, expected);
    let kicked = admin(
        &base,
        "POST",
        &format!("/v1/admin/rooms/{kick_room}/kick"),
        Some(json!({"player_id": a_id, "code": "kicked"})),
    )
    .await;
    assert_eq!(kicked["kicked"], true);
    assert_eq!(closed(&mut a).await, Some(ErrorCode::Kicked));

    // A close on room-2: both players are told the room closed.
    let (mut x, _, _) = join(&rooms[&close_room][0]).await;
    let (mut y, _, _) = join(&rooms[&close_room][1]).await;
    let answer = admin(
        &base,
        "POST",
        &format!("/v1/admin/rooms/{close_room}/close"),
        None,
    )
    .await;
    assert_eq!(answer["by"], "room_server");
    assert_eq!(closed(&mut x).await, Some(ErrorCode::RoomClosed));
    assert_eq!(closed(&mut y).await, Some(ErrorCode::RoomClosed));

    // A refusal at room-2 reaches the gateway's error list through the directory.
    refused_handshake(c.rooms[1].ready["ws"].as_str().unwrap()).await;
    admin_until(&base, "/v1/admin/errors", "room-2's refusal", |e| {
        has_error(e, |r| {
            r["source"] == "room" && r["server_id"] == "room-2" && r["error"] == "ticket_invalid"
        })
    })
    .await;
}

/// An operator's drain, across processes, empties a room server on a shared directory at
/// once: its running match moves to the other server live. Its players are told
/// `RoomMoved`, ask the gateway where the room is, and resume there: the same room, seats and
/// sessions.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drain_hands_a_room_servers_matches_to_another_server() {
    let c = cluster().await;
    let base = c.gateway.http();
    let gw = GatewayClient::new(&base);
    let mut players = Vec::new();
    for i in 0..2 {
        let device = tickroom_testkit::device_id(&format!("drained-{i}"));
        let token = gw.login_device(&device).await.unwrap().session_token;
        let ticket = gw.queue(&token, "duel").await.unwrap();
        players.push((token, ticket));
    }
    let mut matched = Vec::new();
    for (token, ticket) in &players {
        matched.push(gw.wait_match(token, ticket, WAIT).await.unwrap());
    }
    let (room_id, owner) = (matched[0].room_id, matched[0].server_id.clone());
    let (from, to) = match owner.as_str() {
        "room-1" => (0, 1),
        _ => (1, 0),
    };
    let mut sessions = Vec::new();
    for m in &matched {
        sessions.push(join(m).await.0);
    }
    // The room's image is stored before the drain (one at each join).
    let stored = || async {
        let text = c.rooms[from].metrics_text().await;
        text.lines()
            .find_map(|l| l.strip_prefix("tickroom_images_stored_total "))
            .and_then(|v| v.trim().parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    let deadline = std::time::Instant::now() + WAIT;
    let mut poll = tokio::time::interval(Duration::from_millis(20));
    while stored().await < 1.0 {
        assert!(std::time::Instant::now() < deadline, "no image stored");
        poll.tick().await;
    }
    let answer = admin(
        &base,
        "POST",
        &format!("/v1/admin/servers/{owner}/drain"),
        None,
    )
    .await;
    assert_eq!(answer["draining"], true);
    for ((token, _), s) in players.iter().zip(sessions.iter_mut()) {
        let code = tokio::time::timeout(WAIT, async {
            loop {
                match s.events.recv().await.expect("session events") {
                    SessionEvent::Disconnected { code } => return code,
                    SessionEvent::Closed { code } => panic!("closed: {code:?}"),
                    _ => {}
                }
            }
        })
        .await
        .expect("told the room moved");
        assert_eq!(code, Some(ErrorCode::RoomMoved));
        let status = gw
            .room_status(token, room_id)
            .await
            .unwrap()
            .expect("the room");
        assert_eq!(
            status.server_id,
            format!("room-{}", to + 1),
            "moved to the other server"
        );
        assert!(s.handle.move_to(status).await);
        let w = tokio::time::timeout(WAIT, async {
            loop {
                match s.events.recv().await.expect("session events") {
                    SessionEvent::Reconnected(w) => return w,
                    SessionEvent::Closed { code } => panic!("closed: {code:?}"),
                    _ => {}
                }
            }
        })
        .await
        .expect("resumed on the other server");
        assert_eq!(w.room_id, room_id);
    }
    let text = c.rooms[to].metrics_text().await;
    assert!(
        text.lines()
            .any(|l| l == "tickroom_rooms_taken_over_total 1"),
        "the other server took the room over"
    );
}
