//! End-to-end tests against the real `tickroom` binary: start it on port 0 with a ready-file,
//! log in over HTTP, queue, get a ticket, join over WebSocket and QUIC, play in both modes; and
//! the gateway's refusals (expired token, tampered/reused ticket, cancelled ticket, unknown
//! mode, oversize body). Only loopback traffic; the child is killed by its own handle.

use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;
use tickroom_protocol::api::WatchRequest;
use tickroom_protocol::connect::{self, GatewayClient, MatchResult, RawConn, TransportKind};
use tickroom_protocol::session::{SessionConfig, SessionEvent};
use tickroom_protocol::{
    protocol_hash, token, ClientMsg, ErrorCode, ServerMsg, PROTOCOL_VERSION, SPECTATOR_SLOT,
};

mod common;

use common::{start_all_in_one, Proc, TempDir, WAIT};

/// The all-in-one binary on port 0 and its temp dir (both cleaned up on drop).
struct Server {
    proc: Proc,
    _dir: TempDir,
}

impl Server {
    async fn start() -> Server {
        let dir = TempDir::new("e2e");
        Server {
            proc: start_all_in_one(&dir).await,
            _dir: dir,
        }
    }
}

impl std::ops::Deref for Server {
    type Target = Proc;
    fn deref(&self) -> &Proc {
        &self.proc
    }
}

impl std::ops::DerefMut for Server {
    fn deref_mut(&mut self) -> &mut Proc {
        &mut self.proc
    }
}

async fn next<T>(
    s: &mut connect::Session,
    what: &str,
    mut pick: impl FnMut(&SessionEvent) -> Option<T>,
) -> T {
    tokio::time::timeout(WAIT, async {
        loop {
            let e = s
                .events
                .recv()
                .await
                .unwrap_or_else(|| panic!("events ended waiting for {what}"));
            if let Some(v) = pick(&e) {
                return v;
            }
            if let SessionEvent::Closed { code } = e {
                panic!("closed with {code:?} waiting for {what}");
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("timed out waiting for {what}"))
}

/// Logs `n` players in, queues them for `mode` concurrently and returns their match results.
async fn match_players(gw: &GatewayClient, mode: &str, n: usize, tag: &str) -> Vec<MatchResult> {
    let mut tasks = Vec::new();
    for i in 0..n {
        let gw = gw.clone();
        let mode = mode.to_string();
        let device = tickroom_testkit::device_id(&format!("{tag}-{i}"));
        tasks.push(tokio::spawn(async move {
            gw.find_match(&device, &mode, WAIT).await.unwrap()
        }));
    }
    let mut out = Vec::new();
    for t in tasks {
        out.push(t.await.unwrap());
    }
    out
}

/// Joins a matched pair, the first over WebSocket and the second over QUIC, and waits until
/// both are welcomed.
async fn join_pair(matches: &[MatchResult]) -> (connect::Session, connect::Session) {
    let mut a = connect::join(
        &matches[0],
        TransportKind::Ws,
        SessionConfig::default(),
        None,
    )
    .await
    .unwrap();
    let mut b = connect::join(
        &matches[1],
        TransportKind::Quic,
        SessionConfig::default(),
        None,
    )
    .await
    .unwrap();
    for s in [&mut a, &mut b] {
        next(s, "joined", |e| {
            matches!(e, SessionEvent::Joined(_)).then_some(())
        })
        .await;
    }
    (a, b)
}

/// The ready file names every listener; `/healthz` answers on the HTTP and the metrics
/// listeners; `/metrics` is served by the metrics listener only (room server, gateway and
/// HTTP front end figures in one scrape).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ready_file_names_every_listener_and_health_answers() {
    let server = Server::start().await;
    for key in ["http", "ws", "quic", "cert_fingerprint", "metrics"] {
        assert!(
            server.ready[key].as_str().is_some_and(|v| !v.is_empty()),
            "ready file lacks {key}"
        );
    }
    assert_ne!(server.ready["metrics"], server.ready["http"]);
    let metrics_base = format!("http://{}", server.ready["metrics"].as_str().unwrap());
    for base in [server.http(), metrics_base] {
        let health = reqwest::get(format!("{base}/healthz")).await.unwrap();
        assert_eq!(health.status(), 200, "{base}/healthz");
    }
    let metrics = server.metrics_text().await;
    for name in [
        "tickroom_rooms ",
        "tickroom_gateway_logins_total",
        "tickroom_http_connections ",
    ] {
        assert!(metrics.contains(name), "{name} in {metrics}");
    }
    let moved = reqwest::get(format!("{}/metrics", server.http()))
        .await
        .unwrap();
    assert_eq!(
        moved.status(),
        404,
        "/metrics left the players' HTTP listener"
    );
}

/// The whole flow in state sync: two players (duel) over WebSocket and QUIC in one room.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_queue_join_and_play_state_sync_over_both_transports() {
    let server = Server::start().await;
    let gw = GatewayClient::new(&server.http());
    let matches = match_players(&gw, "duel", 2, "state").await;
    assert_eq!(
        matches[0].room_id, matches[1].room_id,
        "both players in one room"
    );
    assert_eq!(
        matches[0].cert_fingerprint,
        server.ready["cert_fingerprint"].as_str().unwrap()
    );
    let (mut a, mut b) = join_pair(&matches).await;
    for s in [&mut a, &mut b] {
        next(s, "started", |e| {
            matches!(e, SessionEvent::Started { players: 2, .. }).then_some(())
        })
        .await;
    }
    for s in [&mut a, &mut b] {
        let mut sent = 0;
        let ack = tokio::time::timeout(WAIT, async {
            loop {
                match s.events.recv().await.unwrap() {
                    SessionEvent::Snapshot { ack_seq, .. } if ack_seq >= 5 => return ack_seq,
                    SessionEvent::Snapshot { .. } => {
                        sent += 1;
                        s.handle.input(vec![100, 0, 0]).await;
                    }
                    SessionEvent::Closed { code } => panic!("closed {code:?}"),
                    _ => {}
                }
            }
        })
        .await
        .unwrap();
        assert!(ack >= 5 && ack <= sent);
    }
    a.handle.leave().await;
    b.handle.leave().await;
    let stats = tokio::time::timeout(WAIT, a.task).await.unwrap().unwrap();
    assert!(stats.bytes_in > 0 && stats.bytes_out > 0);
    // Once everyone left, the room ends and its directory record is closed.
    let login = gw
        .login_device(&tickroom_testkit::device_id("state-0"))
        .await
        .unwrap();
    let deadline = Instant::now() + WAIT;
    let mut poll = tokio::time::interval(Duration::from_millis(50));
    while gw
        .room_status(&login.session_token, matches[0].room_id)
        .await
        .unwrap()
        .is_some()
    {
        assert!(
            Instant::now() < deadline,
            "the ended room's record was not closed"
        );
        poll.tick().await;
    }
}

/// A private duel through the real binary: the host creates it, host and friend join by code
/// (no matchmaking), connect over both transports and the room starts with both; a third
/// player finds it full, and a made-up code finds nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_private_room_is_joined_by_code_and_plays() {
    let server = Server::start().await;
    let gw = GatewayClient::new(&server.http());
    let mut tokens = Vec::new();
    for tag in ["host", "friend", "third"] {
        let login = gw
            .login_device(&tickroom_testkit::device_id(&format!("private-{tag}")))
            .await
            .unwrap();
        tokens.push(login.session_token);
    }
    let room = gw.create_room(&tokens[0], "duel").await.unwrap();
    let host = gw.join_by_code(&tokens[0], &room.code).await.unwrap();
    let friend = gw
        .join_by_code(&tokens[1], &room.code.to_lowercase())
        .await
        .unwrap();
    assert_eq!((host.room_id, friend.room_id), (room.room_id, room.room_id));
    match gw.join_by_code(&tokens[2], &room.code).await {
        Err(connect::ConnectError::Gateway {
            status: 409, code, ..
        }) => {
            assert_eq!(code, ErrorCode::RoomFull)
        }
        other => panic!("a third player in a duel: {other:?}"),
    }
    match gw.join_by_code(&tokens[2], "ZZZZZZZZ").await {
        Err(connect::ConnectError::Gateway { status: 404, .. }) => {}
        other => panic!("a made-up code: {other:?}"),
    }
    let (mut a, mut b) = join_pair(&[host, friend]).await;
    for s in [&mut a, &mut b] {
        next(s, "started", |e| {
            matches!(e, SessionEvent::Started { players: 2, .. }).then_some(())
        })
        .await;
    }
    a.handle.leave().await;
    b.handle.leave().await;
}

/// Waits for the refusal of a message, and returns its code.
async fn refusal(s: &mut connect::Session) -> ErrorCode {
    next(s, "a refusal", |e| match e {
        SessionEvent::Refused { code, .. } => Some(*code),
        _ => None,
    })
    .await
}

/// A spectator watches a running duel through the gateway: it is welcomed outside the seats,
/// gets full snapshots, and its input and custom messages are refused with
/// `SpectatorReadOnly` while it goes on watching. A lockstep spectator gets the frames from
/// frame 1, each only after the mode's delay (3 s), and its frame input is refused too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spectator_watches_a_match_and_is_refused_when_it_plays() {
    let server = Server::start().await;
    let gw = GatewayClient::new(&server.http());
    let device = tickroom_testkit::device_id("spectator");
    let token = gw.login_device(&device).await.unwrap().session_token;
    let watch = |room_id: u64| {
        let request = WatchRequest {
            room_id: Some(room_id),
            code: None,
        };
        let (gw, token) = (gw.clone(), token.clone());
        async move {
            let ticket = gw.watch(&token, &request).await.unwrap();
            let mut s = connect::join(&ticket, TransportKind::Ws, SessionConfig::default(), None)
                .await
                .unwrap();
            let welcome = next(&mut s, "welcome", |e| match e {
                SessionEvent::Joined(w) => Some(w.clone()),
                _ => None,
            })
            .await;
            assert_eq!(welcome.slot, SPECTATOR_SLOT);
            assert_eq!(welcome.room_id, room_id);
            s
        }
    };

    let matches = match_players(&gw, "duel", 2, "watched").await;
    let (a, b) = join_pair(&matches).await;
    let mut s = watch(matches[0].room_id).await;
    next(&mut s, "a full snapshot", |e| {
        matches!(e, SessionEvent::Snapshot { baseline: 0, .. }).then_some(())
    })
    .await;
    assert!(s.handle.input(vec![1, 0, 0, 0]).await);
    assert_eq!(refusal(&mut s).await, ErrorCode::SpectatorReadOnly);
    assert!(s.handle.message(b"hi".to_vec()).await);
    assert_eq!(refusal(&mut s).await, ErrorCode::SpectatorReadOnly);
    next(&mut s, "a snapshot after the refusals", |e| {
        matches!(e, SessionEvent::Snapshot { .. }).then_some(())
    })
    .await;
    s.handle.leave().await;
    a.handle.leave().await;
    b.handle.leave().await;

    let matches = match_players(&gw, "duel-lockstep", 2, "watched-lockstep").await;
    let (mut a, b) = join_pair(&matches).await;
    let started = next(&mut a, "started", |e| {
        matches!(e, SessionEvent::Started { .. }).then(Instant::now)
    })
    .await;
    let mut s = watch(matches[0].room_id).await;
    let first = next(&mut s, "the first frame", |e| match e {
        SessionEvent::Frame { n, .. } => Some(*n),
        _ => None,
    })
    .await;
    assert_eq!(first, 1, "a spectator gets the log from frame 1");
    assert!(
        started.elapsed() >= Duration::from_millis(2_500),
        "frame 1 reached the spectator {:?} after the start: not delayed",
        started.elapsed()
    );
    assert!(s.handle.frame_input(first + 100, vec![1]).await);
    assert_eq!(refusal(&mut s).await, ErrorCode::SpectatorReadOnly);
    s.handle.leave().await;
    a.handle.leave().await;
    b.handle.leave().await;
}

/// A party of three and seven solo players, through the real binary, land in one 10-player
/// arena: the leader queues the party, each member polls its own ticket (listed by the party).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_party_of_three_and_seven_solo_players_share_one_arena() {
    let server = Server::start().await;
    let gw = GatewayClient::new(&server.http());
    let mut tokens = Vec::new();
    for i in 0..3 {
        let login = gw
            .login_device(&tickroom_testkit::device_id(&format!("party-{i}")))
            .await
            .unwrap();
        tokens.push(login.session_token);
    }
    let party = gw.create_party(&tokens[0]).await.unwrap();
    for token in &tokens[1..] {
        gw.join_party(token, &party.code).await.unwrap();
    }
    let body = tickroom_protocol::api::EnqueueRequest {
        mode: "arena".into(),
        metadata: Default::default(),
        properties: Default::default(),
        party_id: Some(party.party_id.clone()),
    };
    gw.enqueue(&tokens[0], &body).await.unwrap();
    let listed = gw.party(&tokens[0], &party.party_id).await.unwrap();
    assert_eq!(listed.tickets.len(), 3);
    let mut waits = Vec::new();
    for (token, ticket) in tokens.iter().zip(&listed.tickets) {
        let (gw, token, ticket) = (gw.clone(), token.clone(), ticket.ticket_id.clone());
        waits.push(tokio::spawn(async move {
            gw.wait_match(&token, &ticket, WAIT).await.unwrap()
        }));
    }
    let solos = match_players(&gw, "arena", 7, "party-solo").await;
    let mut rooms: Vec<u64> = solos.iter().map(|m| m.room_id).collect();
    for w in waits {
        rooms.push(w.await.unwrap().room_id);
    }
    assert_eq!(rooms.len(), 10);
    assert!(rooms.iter().all(|r| *r == rooms[0]), "one arena: {rooms:?}");
}

/// Backfill through the real binary: a two-player match of a `backfill` mode loses a player
/// (its connection dropped, its grace of 1 s ran out); the next player who queues the mode is
/// placed in that running match, joins in progress and gets a full snapshot.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_seat_lost_after_the_grace_period_is_backfilled() {
    let dir = TempDir::new("backfill");
    let modes = dir.join("modes.toml");
    std::fs::write(
        &modes,
        "[[mode]]\nname='pair'\ngame='arena'\nsync='state'\ntick_rate_hz=30\nplayers=2\n\
         min_players=2\ngrace_s=1\nbackfill=true\n",
    )
    .unwrap();
    let modes = modes.to_string_lossy().into_owned();
    let server = common::start_tickroom(
        dir.path(),
        "backfill",
        &[
            "--ws",
            "127.0.0.1:0",
            "--quic",
            "127.0.0.1:0",
            "--modes",
            &modes,
        ],
        &[],
    )
    .await;
    let gw = GatewayClient::new(&server.http());
    let matches = match_players(&gw, "pair", 2, "backfill").await;
    let (mut a, b) = join_pair(&matches).await;
    next(&mut a, "started", |e| {
        matches!(e, SessionEvent::Started { .. }).then_some(())
    })
    .await;
    // The second player vanishes without leaving: its seat is kept for the grace period.
    b.task.abort();
    let late = match_players(&gw, "pair", 1, "backfill-late").await;
    assert_eq!(
        late[0].room_id, matches[0].room_id,
        "placed in the running match"
    );
    let mut c = connect::join(&late[0], TransportKind::Ws, SessionConfig::default(), None)
        .await
        .unwrap();
    next(&mut c, "joined", |e| {
        matches!(e, SessionEvent::Joined(_)).then_some(())
    })
    .await;
    next(&mut c, "started", |e| {
        matches!(e, SessionEvent::Started { .. }).then_some(())
    })
    .await;
    let baseline = next(&mut c, "a snapshot", |e| match e {
        SessionEvent::Snapshot { baseline, .. } => Some(*baseline),
        _ => None,
    })
    .await;
    assert_eq!(
        baseline, 0,
        "a player who joins in progress gets a full snapshot"
    );
    a.handle.leave().await;
    c.handle.leave().await;
}

/// Lockstep through the whole flow: eight players (both transports) get identical frames.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_queue_join_and_play_lockstep() {
    let server = Server::start().await;
    let gw = GatewayClient::new(&server.http());
    let matches = match_players(&gw, "arena-lockstep", 8, "lock").await;
    assert!(matches.iter().all(|m| m.room_id == matches[0].room_id));
    let mut sessions = Vec::new();
    for (i, m) in matches.iter().enumerate() {
        let t = if i % 2 == 0 {
            TransportKind::Ws
        } else {
            TransportKind::Quic
        };
        sessions.push(
            connect::join(m, t, SessionConfig::default(), None)
                .await
                .unwrap(),
        );
    }
    let mut seen = Vec::new();
    for s in &mut sessions {
        let mut frames = Vec::new();
        while frames.len() < 10 {
            frames.push(
                next(s, "frame", |e| match e {
                    SessionEvent::Frame { n, inputs } => Some((*n, inputs.clone())),
                    _ => None,
                })
                .await,
            );
        }
        seen.push(frames);
    }
    assert!(
        seen.iter().all(|f| f == &seen[0]),
        "identical frames for everyone"
    );
    assert_eq!(seen[0][0].0, 1);
}

async fn post(url: String, token: Option<&str>, body: Vec<u8>) -> (u16, Value) {
    let client = reqwest::Client::new();
    let mut req = client
        .post(url)
        .header("content-type", "application/json")
        .body(body);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gateway_refusals_are_typed() {
    let server = Server::start().await;
    let base = server.http();
    let gw = GatewayClient::new(&base);
    // Unknown mode.
    let login = gw
        .login_device(&tickroom_testkit::device_id("refusals"))
        .await
        .unwrap();
    let err = gw
        .queue(&login.session_token, "no-such-mode")
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            connect::ConnectError::Gateway {
                code: ErrorCode::UnknownMode,
                ..
            }
        ),
        "{err:?}"
    );
    // Expired / tampered session token.
    let mut tampered = login.session_token.clone();
    let last = tampered.pop().unwrap();
    tampered.push(if last == 'A' { 'B' } else { 'A' });
    let err = gw.queue(&tampered, "duel").await.unwrap_err();
    assert!(
        matches!(err, connect::ConnectError::Gateway { status: 401, .. }),
        "{err:?}"
    );
    // Oversize body.
    let (status, body) = post(
        format!("{base}/v1/auth/device"),
        None,
        vec![b' '; 64 * 1024],
    )
    .await;
    assert_eq!(status, 413);
    assert!(body.get("code").is_some());
    // Cancelled ticket: polling it afterwards is 404.
    let ticket = gw.queue(&login.session_token, "duel").await.unwrap();
    gw.cancel(&login.session_token, &ticket).await.unwrap();
    let err = gw
        .wait_match(&login.session_token, &ticket, Duration::from_secs(2))
        .await
        .unwrap_err();
    assert!(
        matches!(err, connect::ConnectError::Gateway { status: 404, .. }),
        "{err:?}"
    );
}

/// A join ticket from the gateway works once; a reused or tampered one is refused by the room.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn room_refuses_reused_and_tampered_tickets() {
    let server = Server::start().await;
    let gw = GatewayClient::new(&server.http());
    let matches = match_players(&gw, "duel", 2, "tickets").await;
    let m = &matches[0];
    let secret = m.join_secret().unwrap();
    let hello = |ticket: String| ClientMsg::Hello {
        protocol_version: PROTOCOL_VERSION,
        protocol_hash: protocol_hash(),
        ticket,
    };
    let attempt = |ticket: String| {
        let addr = m.ws_addr.clone();
        let msg = hello(ticket);
        async move {
            let mut conn = RawConn::open_ws(&addr).await.unwrap();
            conn.send(&msg).await.unwrap();
            let reply = conn.recv().await.unwrap().unwrap();
            let ServerMsg::Challenge { nonce } = reply else {
                return reply;
            };
            conn.send(&ClientMsg::ChallengeResponse {
                mac: token::challenge_mac(&secret, &nonce),
            })
            .await
            .unwrap();
            conn.recv().await.unwrap().unwrap()
        }
    };
    let first = attempt(m.join_ticket.clone()).await;
    assert!(matches!(first, ServerMsg::Welcome(_)), "{first:?}");
    let again = attempt(m.join_ticket.clone()).await;
    assert!(
        matches!(
            again,
            ServerMsg::Error {
                code: ErrorCode::TicketReused,
                ..
            }
        ),
        "{again:?}"
    );
    let mut bad = m.join_ticket.clone();
    bad.insert(10, 'x');
    let tampered = attempt(bad).await;
    assert!(
        matches!(
            tampered,
            ServerMsg::Error {
                code: ErrorCode::TicketInvalid,
                ..
            }
        ),
        "{tampered:?}"
    );
}

#[test]
fn bad_flags_exit_with_usage_code_2() {
    let out = Command::new(env!("CARGO_BIN_EXE_tickroom"))
        .arg("--http")
        .arg("not-an-address")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let out = Command::new(env!("CARGO_BIN_EXE_tickroom"))
        .arg("room")
        .env_remove("TICKROOM_KEYS")
        .env_remove("TICKROOM_ROOM_KEYS")
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(2),
        "room role without keys is a usage error"
    );
    // Players' secrets never cross a non-loopback listener in plaintext unless the operator
    // says a proxy in front terminates TLS (refused before anything is bound).
    for flags in [&["--http", "0.0.0.0:0"][..], &["--ws", "0.0.0.0:0"]] {
        let out = Command::new(env!("CARGO_BIN_EXE_tickroom"))
            .args(flags)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{flags:?}: {stderr}");
        assert!(stderr.contains("--insecure-plaintext"), "{stderr}");
        assert!(stderr.contains("--tls-self-signed"), "{stderr}");
    }
    // A connection budget or timeout of 0 would refuse or drop every player: refused at
    // start-up, naming the flag.
    for flag in [
        "--max-connections-per-ip",
        "--max-prelogin-connections",
        "--handshake-timeout-ms",
        "--idle-timeout-ms",
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_tickroom"))
            .args([flag, "0", "--http", "127.0.0.1:0"])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{flag} 0: {stderr}");
        assert!(stderr.contains(flag), "{stderr}");
    }
    // With a shared directory a room server's id is never defaulted: two `room-1`s would take
    // each other's rooms. Refused before Redis is dialled (nothing listens on port 1).
    for role in [&["room"][..], &[]] {
        let out = Command::new(env!("CARGO_BIN_EXE_tickroom"))
            .args(role)
            .args(["--redis", "redis://127.0.0.1:1"])
            .env("TICKROOM_KEYS", format!("1:{}", "ab".repeat(32)))
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{role:?} --redis: {stderr}");
        assert!(stderr.contains("--server-id"), "{stderr}");
    }
    // A mode naming a game this server did not register: a start-up error naming the mode,
    // the game and every registered game.
    let dir = TempDir::new("modes");
    let modes = dir.join("modes.toml");
    std::fs::write(
        &modes,
        "[[mode]]\nname='chess'\ngame='chess'\nsync='state'\ntick_rate_hz=10\nplayers=2\n",
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_tickroom"))
        .arg("--modes")
        .arg(&modes)
        .args([
            "--http",
            "127.0.0.1:0",
            "--ws",
            "127.0.0.1:0",
            "--quic",
            "127.0.0.1:0",
        ])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(2),
        "an unregistered game is a usage error"
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    for needle in ["\"chess\"", "not registered", "arena, arena-lockstep"] {
        assert!(stderr.contains(needle), "{needle} in: {stderr}");
    }
    let help = Command::new(env!("CARGO_BIN_EXE_tickroom"))
        .arg("--help")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&help.stdout);
    for flag in [
        "--http",
        "--metrics",
        "--http-header-timeout-ms",
        "--http-max-connections",
        "--ws",
        "--quic",
        "--ready-file",
        "--modes",
        "--keys-file",
    ] {
        assert!(text.contains(flag), "--help explains {flag}");
    }
}

/// SIGTERM: the server stops accepting, tells every player `Kicked{ServerShutdown}`, and
/// exits 0 within its drain deadline.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_tells_players_and_exits_cleanly() {
    let mut server = Server::start().await;
    let gw = GatewayClient::new(&server.http());
    let matches = match_players(&gw, "duel", 2, "shutdown").await;
    let (mut a, mut b) = join_pair(&matches).await;
    let status = Command::new("kill")
        .args(["-TERM", &server.child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    for s in [&mut a, &mut b] {
        let code = tokio::time::timeout(WAIT, async {
            loop {
                match s.events.recv().await {
                    Some(SessionEvent::Closed { code }) => return code,
                    Some(_) => continue,
                    None => return None,
                }
            }
        })
        .await
        .expect("players are told");
        assert_eq!(code, Some(ErrorCode::ServerShutdown));
    }
    let deadline = Instant::now() + WAIT;
    let mut poll = tokio::time::interval(Duration::from_millis(20));
    let exit = loop {
        if let Some(status) = server.child.try_wait().unwrap() {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "the server did not exit after SIGTERM"
        );
        poll.tick().await;
    };
    assert_eq!(exit.code(), Some(0));
}

/// The README's client example: two copies fill a duel room (one over WebSocket, one over
/// QUIC), play for a few seconds, leave, and exit 0.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readme_client_example_plays_a_duel() {
    let server = Server::start().await;
    let example = std::path::Path::new(env!("CARGO_BIN_EXE_tickroom"))
        .with_file_name("examples")
        .join("client");
    assert!(
        example.exists(),
        "build the examples first (cargo build --workspace --examples): {}",
        example.display()
    );
    let children: Vec<_> = [("ws", "example-a"), ("quic", "example-b")]
        .iter()
        .map(|(transport, tag)| {
            let device = tickroom_testkit::device_id(tag);
            tokio::process::Command::new(&example)
                .args([server.http().as_str(), "duel", transport, &device])
                .stdout(std::process::Stdio::piped())
                .kill_on_drop(true)
                .spawn()
                .expect("start the example")
        })
        .collect();
    for child in children {
        let out = tokio::time::timeout(WAIT, child.wait_with_output())
            .await
            .expect("the example finishes")
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{text}");
        assert!(text.contains("joined slot"), "{text}");
        assert!(text.contains("closed"), "{text}");
    }
}

/// `--allow-origin` lets pages of that origin call the gateway from a browser: the preflight
/// is answered for it (and `Retry-After` is readable), another origin gets no CORS headers,
/// and without the flag no origin does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cors_answers_only_the_allowed_origins() {
    let dir = TempDir::new("cors");
    let allowed = "http://game.example.test";
    let with = common::start_tickroom(
        dir.path(),
        "with",
        &[
            "--ws",
            "127.0.0.1:0",
            "--quic",
            "127.0.0.1:0",
            "--allow-origin",
            allowed,
        ],
        &[],
    )
    .await;
    let without = common::start_tickroom(
        dir.path(),
        "without",
        &["--ws", "127.0.0.1:0", "--quic", "127.0.0.1:0"],
        &[],
    )
    .await;
    let http = reqwest::Client::new();
    let preflight = |base: String, origin: &'static str| {
        http.request(reqwest::Method::OPTIONS, format!("{base}/v1/matchmaking"))
            .header("Origin", origin)
            .header("Access-Control-Request-Method", "POST")
            .header(
                "Access-Control-Request-Headers",
                "authorization,content-type",
            )
            .send()
    };
    let allow = |r: &reqwest::Response| {
        r.headers()
            .get("access-control-allow-origin")
            .map(|v| v.to_str().unwrap().to_string())
    };
    let ok = preflight(with.http(), allowed).await.unwrap();
    assert_eq!(allow(&ok).as_deref(), Some(allowed));
    let methods = ok.headers()["access-control-allow-methods"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(
        methods.contains("POST") && methods.contains("DELETE"),
        "{methods}"
    );
    let other = preflight(with.http(), "http://evil.example.test")
        .await
        .unwrap();
    assert_eq!(allow(&other), None);
    let off = preflight(without.http(), allowed).await.unwrap();
    assert_eq!(allow(&off), None);
    // A real request from the allowed origin carries the header and exposes Retry-After.
    let login = http
        .post(format!("{}/v1/auth/device", with.http()))
        .header("Origin", allowed)
        .json(&serde_json::json!({ "device_id": tickroom_testkit::device_id("cors") }))
        .send()
        .await
        .unwrap();
    assert!(login.status().is_success());
    assert_eq!(allow(&login).as_deref(), Some(allowed));
    let exposed = login.headers()["access-control-expose-headers"]
        .to_str()
        .unwrap()
        .to_ascii_lowercase();
    assert!(exposed.contains("retry-after"), "{exposed}");
}

/// The all-in-one serves the web client at `/play/`: the page, its module and the library
/// modules, with their content types; `/play` redirects there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_web_client_is_served_at_play() {
    let server = Server::start().await;
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let base = server.http();
    let moved = http.get(format!("{base}/play")).send().await.unwrap();
    assert!(moved.status().is_redirection());
    assert_eq!(moved.headers()["location"], "/play/");
    let page = http.get(format!("{base}/play/")).send().await.unwrap();
    assert_eq!(page.status(), 200);
    assert!(page.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/html"));
    let html = page.text().await.unwrap();
    assert!(html.contains("./play.js"), "{html}");
    let script = http
        .get(format!("{base}/play/play.js"))
        .send()
        .await
        .unwrap();
    assert_eq!(script.status(), 200);
    assert!(script.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/javascript"));
    let js = script.text().await.unwrap();
    assert!(
        js.contains("./lib/"),
        "the page imports the library next to it"
    );
    let lib = http
        .get(format!("{base}/play/lib/index.js"))
        .send()
        .await
        .unwrap();
    assert_eq!(lib.status(), 200);
    let missing = http
        .get(format!("{base}/play/nope.js"))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
}

/// Starts the all-in-one with `extra` flags and stderr to a file, waits until it logged that
/// it is ready, stops it, and returns its log.
async fn log_of(tag: &str, extra: &[&str]) -> String {
    let dir = TempDir::new(tag);
    let ready = dir.join("ready.json");
    let log_path = dir.join("stderr.log");
    let mut child = Command::new(env!("CARGO_BIN_EXE_tickroom"))
        .args([
            "--http",
            "127.0.0.1:0",
            "--ws",
            "127.0.0.1:0",
            "--quic",
            "127.0.0.1:0",
        ])
        .args(["--metrics", "127.0.0.1:0", "--ready-file"])
        .arg(&ready)
        .args(extra)
        .env("RUST_LOG", "info")
        .stderr(std::fs::File::create(&log_path).unwrap())
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    common::wait_for("the ready line in the log", || {
        std::fs::read_to_string(&log_path).is_ok_and(|l| l.contains("ready"))
    })
    .await;
    // A player queues: the log says when its match will start.
    let info: Value = serde_json::from_str(&std::fs::read_to_string(&ready).unwrap()).unwrap();
    let gw = GatewayClient::new(&format!("http://{}", info["http"].as_str().unwrap()));
    let login = gw
        .login_device(&tickroom_testkit::device_id(tag))
        .await
        .unwrap();
    gw.queue(&login.session_token, "arena").await.unwrap();
    common::wait_for("the queued line in the log", || {
        std::fs::read_to_string(&log_path).is_ok_and(|l| l.contains("a match starts when"))
    })
    .await;
    let _ = child.kill();
    let _ = child.wait();
    std::fs::read_to_string(&log_path).unwrap()
}

/// `--log-format json` writes one JSON object per line (level, message, fields); the default
/// human format written to a file has no colour escape codes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_are_json_on_request_and_plain_in_a_file() {
    let json = log_of("log-json", &["--log-format", "json"]).await;
    let lines: Vec<&str> = json.lines().filter(|l| !l.trim().is_empty()).collect();
    assert!(!lines.is_empty(), "no log lines");
    for line in &lines {
        let v: Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        assert!(v["level"].is_string() && v["fields"].is_object(), "{line}");
    }
    assert!(
        lines.iter().any(|l| l.contains("ready")),
        "the ready line is there: {json}"
    );
    let human = log_of("log-human", &[]).await;
    assert!(human.contains("ready"), "{human}");
    assert!(
        human.contains(
            "queued: a match starts when 10 players are in, or after 10 s with at least 1"
        ),
        "a first run shows what the wait is: {human}"
    );
    assert!(
        !human.contains('\u{1b}'),
        "escape codes in a log file: {human:?}"
    );
}
