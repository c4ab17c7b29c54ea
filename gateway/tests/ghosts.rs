//! Free identities must not exhaust matchmaking (issue 13): "ghosts" that loop login →
//! enqueue → poll for `duel` and never join their rooms must not grow the room table, and a
//! real player is matched normally meanwhile; over the in-memory directory and over Redis.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{json, Value};
use tickroom_game::modes::Modes;
use tickroom_gateway::directory::MAX_OPEN_ROOMS_PER_PLAYER;
use tickroom_gateway::http::PollResponse;
use tickroom_gateway::{
    now_ms, Directory, EnqueueOutcome, GatewayConfig, InMemoryDirectory, MatchRequest, QueueEntry,
    TicketId,
};
use tickroom_protocol::ErrorCode;
use tokio::sync::watch;
use tokio::task::JoinSet;

use common::redis_server::RedisServer;
use common::{config, expect_error, server, start, TestGateway, TEST_DEADLINE};

/// Identities the attacker loops with.
const GHOSTS: usize = 4;
/// How long the ghosts loop in CI; `LONG_RUN` is the ignored run.
const CI_RUN: Duration = Duration::from_secs(4);
const LONG_RUN: Duration = Duration::from_secs(30);
/// A ghost retries this often when refused.
const GHOST_PACE: Duration = Duration::from_millis(20);
/// The room table is sampled this often.
const SAMPLE_EVERY: Duration = Duration::from_millis(100);
/// Each round, a real player must be matched within this long.
const REAL_MATCH_DEADLINE: Duration = Duration::from_secs(5);
/// Real players, queueing each round as a pair.
const REALS: usize = 2;
/// Most rooms the table may hold at once (ghosts' plus the real players').
const ROOM_TABLE_BOUND: usize = GHOSTS * MAX_OPEN_ROOMS_PER_PLAYER + REALS;
const SERVER_TTL: Duration = Duration::from_secs(600);

/// `duel` with a 1 s start timeout: with 1 s join tickets a room nobody joined is over after
/// 2 s, which keeps the CI run short.
const DUEL: &str = r#"
[[mode]]
name = "duel"
game = "arena"
sync = "state"
tick_rate_hz = 30
players = 2
min_players = 2
matchmaking_wait_s = 600
start_timeout_s = 1
"#;

fn duel_config() -> GatewayConfig {
    let mut c = config();
    c.modes = Modes::parse(DUEL).expect("duel parses");
    c.ticket_ttl = Duration::from_secs(1);
    c
}

/// One ghost: logs in, queues, polls until matched, never joins; again and again.
async fn ghost(t: Arc<TestGateway>, index: usize, stop: watch::Receiver<bool>) -> usize {
    let mut pace = tokio::time::interval(GHOST_PACE);
    let mut matches = 0;
    while !*stop.borrow() {
        pace.tick().await;
        let (_, token) = t.login(&format!("ghost-{index}")).await;
        let r = t
            .post_json("/v1/matchmaking", json!({"mode": "duel"}), Some(&token))
            .await;
        if r.status() != StatusCode::ACCEPTED {
            continue;
        }
        let v: Value = r.json().await.expect("enqueue json");
        let ticket = v["ticket_id"].as_str().expect("ticket").to_owned();
        while !*stop.borrow() {
            let r = t.poll_raw(&token, &ticket, 500).await;
            if r.status() != StatusCode::OK {
                break;
            }
            if let Ok(PollResponse::Matched(_)) = r.json::<PollResponse>().await {
                matches += 1;
                break;
            }
        }
    }
    matches
}

/// Real players: each round both queue, each is matched within `REAL_MATCH_DEADLINE`, joins
/// and plays a (very short) match that the room server closes. Returns the rounds played.
async fn real_players(
    t: Arc<TestGateway>,
    dir: Arc<dyn Directory>,
    stop: watch::Receiver<bool>,
) -> usize {
    let mut tokens = Vec::new();
    for i in 0..REALS {
        tokens.push(t.login(&format!("real-{i}")).await.1);
    }
    let mut rounds = 0;
    while !*stop.borrow() {
        let mut tickets = Vec::new();
        for token in &tokens {
            tickets.push(t.enqueue(token, "duel").await);
        }
        let mut rooms = Vec::new();
        for (token, ticket) in tokens.iter().zip(&tickets) {
            let asked = Instant::now();
            let matched =
                tokio::time::timeout(REAL_MATCH_DEADLINE, t.poll_until_matched(token, ticket))
                    .await
                    .unwrap_or_else(|_| {
                        panic!("a real player waited over {REAL_MATCH_DEADLINE:?}")
                    });
            let PollResponse::Matched(m) = matched else {
                panic!("not matched");
            };
            assert!(asked.elapsed() < REAL_MATCH_DEADLINE);
            rooms.push(m.room_id);
        }
        // The room server seats the players, the match ends, the rooms are closed.
        for room_id in rooms {
            let joined = dir.room_joined(room_id, "room-a").await.expect("joined");
            // Both players may share a room: the second report finds it closed.
            if joined.is_some() {
                assert!(dir.close_room_at(room_id, 1).await.expect("close"));
            }
        }
        rounds += 1;
    }
    rounds
}

/// Runs the ghosts and the real players for `run`; returns the largest room table seen.
async fn ghost_loop(dir: Arc<dyn Directory>, run: Duration) {
    dir.register_server(server("room-a", 0), SERVER_TTL)
        .await
        .unwrap();
    let t = Arc::new(start(duel_config(), dir.clone(), true).await);
    let (stop_tx, stop) = watch::channel(false);
    let mut ghosts = JoinSet::new();
    for i in 0..GHOSTS {
        ghosts.spawn(ghost(t.clone(), i, stop.clone()));
    }
    let reals = tokio::spawn(real_players(t.clone(), dir.clone(), stop.clone()));
    let end = tokio::time::Instant::now() + run;
    let mut sample = tokio::time::interval(SAMPLE_EVERY);
    let mut largest = 0;
    while tokio::time::Instant::now() < end {
        sample.tick().await;
        let rooms = dir.rooms_on_server("room-a").await.expect("rooms").len();
        largest = largest.max(rooms);
        assert!(
            rooms <= ROOM_TABLE_BOUND,
            "{rooms} rooms after {:?} (bound {ROOM_TABLE_BOUND})",
            run - end.saturating_duration_since(tokio::time::Instant::now())
        );
        assert!(!reals.is_finished(), "the real players stopped");
    }
    let _ = stop_tx.send(true);
    let rounds = reals.await.expect("real players");
    let mut ghost_matches = 0;
    while let Some(m) = ghosts.join_next().await {
        ghost_matches += m.expect("ghost");
    }
    println!(
        "{run:?}: {GHOSTS} ghosts got {ghost_matches} matches; real players played {rounds} \
         rounds; at most {largest} rooms"
    );
    assert!(rounds > 0, "the real players were never matched");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ghosts_do_not_grow_the_in_memory_room_table() {
    ghost_loop(InMemoryDirectory::new(), CI_RUN).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ghosts_do_not_grow_the_redis_room_table() {
    let redis = RedisServer::start().await;
    ghost_loop(redis.patient_directory("ghosts:").await, CI_RUN).await;
}

/// `cargo test -p tickroom-gateway --test ghosts -- --ignored --nocapture`
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "30 s attack run"]
async fn ghosts_for_30_s_do_not_grow_the_in_memory_room_table() {
    ghost_loop(InMemoryDirectory::new(), LONG_RUN).await;
}

/// `cargo test -p tickroom-gateway --test ghosts -- --ignored --nocapture`
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "30 s attack run"]
async fn ghosts_for_30_s_do_not_grow_the_redis_room_table() {
    let redis = RedisServer::start().await;
    ghost_loop(redis.patient_directory("ghosts:").await, LONG_RUN).await;
}

/// A fixed clock for the directory-level tests, unix ms.
const NOW: u64 = 1_700_000_000_000;
/// Join window of the directory-level tests, in ms.
const JOIN_WINDOW_MS: u64 = 20_000;
/// A short, real join window for the expiry tests, in ms.
const SHORT_JOIN_WINDOW_MS: u64 = 300;
/// Formation passes of the expiry tests run this often.
const PASS_EVERY: Duration = Duration::from_millis(50);

fn request(now_ms: u64, join_window_ms: u64) -> MatchRequest {
    MatchRequest {
        mode: "m".into(),
        players: 2,
        min_players: 2,
        wait_ms: 0,
        abandon_after_ms: 60_000,
        now_ms,
        max_matches: 1,
        join_window_ms,
        seed: 3,
        rules: None,
        teams: 1,
    }
}

/// Directory-level helpers: fresh ticket ids and a two-player placement.
struct Placer {
    dir: Arc<dyn Directory>,
    next_ticket: u128,
}

impl Placer {
    async fn enqueue(&mut self, player_id: u64, at_ms: u64) -> EnqueueOutcome {
        self.next_ticket += 1;
        let entry = QueueEntry {
            ticket_id: TicketId(self.next_ticket),
            player_id,
            mode: "m".into(),
            enqueued_ms: at_ms,
            metadata: Default::default(),
            properties: Default::default(),
            party: None,
        };
        self.dir.enqueue(entry).await.expect("enqueue")
    }

    /// Queues `players` at `at_ms` and places them in one room; returns its id.
    async fn place(&mut self, players: [u64; 2], at_ms: u64, join_window_ms: u64) -> u64 {
        for p in players {
            assert_eq!(self.enqueue(p, at_ms).await, EnqueueOutcome::Queued);
        }
        let f = self.dir.form_matches(request(at_ms, join_window_ms)).await;
        f.expect("formation").matches[0].room_id
    }

    /// Queues `player` (asserting it is allowed) and cancels the ticket again.
    async fn may_queue(&mut self, player_id: u64, at_ms: u64) {
        assert_eq!(self.enqueue(player_id, at_ms).await, EnqueueOutcome::Queued);
        let ticket = TicketId(self.next_ticket);
        self.dir
            .cancel_ticket(ticket, player_id)
            .await
            .expect("cancel");
    }
}

/// A placed player gets no new ticket while they may still join their room, unless the room
/// closed or its server died; nor past `MAX_OPEN_ROOMS_PER_PLAYER` open rooms.
async fn a_placed_player_queues_again_only_when_the_match_is_settled(dir: Arc<dyn Directory>) {
    const W: u64 = JOIN_WINDOW_MS;
    dir.register_server(server("s1", 0), SERVER_TTL)
        .await
        .unwrap();
    let mut at = Placer {
        dir: dir.clone(),
        next_ticket: 0,
    };
    let room = at.place([1, 2], NOW, W).await;
    assert_eq!(
        at.enqueue(1, NOW + 1).await,
        EnqueueOutcome::MatchPending {
            room_id: room,
            retry_after_ms: W - 1
        }
    );
    // The match ended and the room server closed the room: both may queue at once.
    dir.close_room(room).await.unwrap();
    at.may_queue(1, NOW + 1).await;
    at.may_queue(2, NOW + 1).await;

    // The room's server died: its players queue again at once.
    at.place([1, 2], NOW, W).await;
    dir.deregister_server("s1").await.unwrap();
    dir.register_server(server("s2", 0), SERVER_TTL)
        .await
        .unwrap();
    at.may_queue(1, NOW + 1).await;

    // Once each join window is over the player may queue again, up to the cap of open rooms.
    let mut rooms = Vec::new();
    for k in 0..MAX_OPEN_ROOMS_PER_PLAYER as u64 {
        rooms.push(at.place([1, 2], NOW + k * W, W).await);
    }
    let after = NOW + MAX_OPEN_ROOMS_PER_PLAYER as u64 * W;
    assert_eq!(
        at.enqueue(1, after).await,
        EnqueueOutcome::TooManyRooms {
            open: MAX_OPEN_ROOMS_PER_PLAYER
        }
    );
    dir.close_room(rooms[0]).await.unwrap();
    at.may_queue(1, after).await;
}

/// A room nobody joins is dropped after its join window on a server that reports joins; a
/// joined room stays, and so do the rooms of a server that never reported a join.
async fn rooms_nobody_joins_expire_after_their_join_window(dir: Arc<dyn Directory>) {
    const W: u64 = SHORT_JOIN_WINDOW_MS;
    let mut at = Placer {
        dir: dir.clone(),
        next_ticket: 0,
    };
    dir.register_server(server("silent", 0), SERVER_TTL)
        .await
        .unwrap();
    let silent_room = at.place([5, 6], now_ms(), W).await;
    let mut drained = server("silent", 0);
    drained.draining = true;
    dir.register_server(drained, SERVER_TTL).await.unwrap();
    dir.register_server(server("s1", 0), SERVER_TTL)
        .await
        .unwrap();
    let joined = at.place([1, 2], now_ms(), W).await;
    assert_eq!(
        dir.room_joined(joined, "silent").await,
        Ok(None),
        "not its owner"
    );
    assert_eq!(dir.room_joined(joined, "s1").await, Ok(Some(1)));
    let ghost_room = at.place([3, 4], now_ms(), W).await;
    assert!(!dir.room(ghost_room).await.unwrap().unwrap().joined);

    let deadline = tokio::time::Instant::now() + TEST_DEADLINE;
    let mut pass = tokio::time::interval(PASS_EVERY);
    while dir.room(ghost_room).await.unwrap().is_some() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the unjoined room never expired"
        );
        pass.tick().await;
        dir.form_matches(request(now_ms(), W)).await.unwrap();
    }
    let kept = dir
        .room(joined)
        .await
        .unwrap()
        .expect("the joined room is kept");
    assert!(kept.joined);
    assert!(kept.join_by_ms < now_ms());
    assert!(
        dir.room(silent_room).await.unwrap().is_some(),
        "a silent server's room is kept"
    );
    // The players of the expired room may queue again; its join ticket is no longer issued.
    at.may_queue(3, now_ms()).await;
}

#[tokio::test]
async fn in_memory_placed_players_queue_again_only_when_the_match_is_settled() {
    a_placed_player_queues_again_only_when_the_match_is_settled(InMemoryDirectory::new()).await;
}

#[tokio::test]
async fn redis_placed_players_queue_again_only_when_the_match_is_settled() {
    let redis = RedisServer::start().await;
    let dir = redis.patient_directory("ghosts:").await;
    a_placed_player_queues_again_only_when_the_match_is_settled(dir).await;
}

#[tokio::test]
async fn in_memory_rooms_nobody_joins_expire_after_their_join_window() {
    rooms_nobody_joins_expire_after_their_join_window(InMemoryDirectory::new()).await;
}

#[tokio::test]
async fn redis_rooms_nobody_joins_expire_after_their_join_window() {
    let redis = RedisServer::start().await;
    rooms_nobody_joins_expire_after_their_join_window(redis.patient_directory("ghosts:").await)
        .await;
}

/// Over HTTP: a matched player who queues again hears 409 with the room and a Retry-After.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queueing_again_before_joining_is_409_with_retry_after() {
    let dir = InMemoryDirectory::new();
    dir.register_server(server("room-a", 0), SERVER_TTL)
        .await
        .unwrap();
    let t = start(duel_config(), dir.clone(), true).await;
    let mut players = Vec::new();
    for i in 0..2 {
        let (_, token) = t.login(&format!("p-{i}")).await;
        let ticket = t.enqueue(&token, "duel").await;
        players.push((token, ticket));
    }
    let PollResponse::Matched(m) = t.poll_until_matched(&players[0].0, &players[0].1).await else {
        panic!("not matched");
    };
    let r = t
        .post_json(
            "/v1/matchmaking",
            json!({"mode": "duel"}),
            Some(&players[0].0),
        )
        .await;
    assert_eq!(r.headers()["retry-after"], "2");
    let body = expect_error(r, StatusCode::CONFLICT, ErrorCode::Conflict).await;
    assert!(
        body.message.contains(&m.room_id.to_string()),
        "{}",
        body.message
    );
}
