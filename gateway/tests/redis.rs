//! `RedisDirectory` against a real redis-server: the in-memory directory's formation rules,
//! two gateways sharing one Redis, heartbeat expiry, epoch fencing, the room route and
//! re-queueing after a server death, and riding out a Redis outage.

mod common;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{json, Value};
use tickroom_gateway::http::PollResponse;
use tickroom_gateway::{
    CancelOutcome, Directory, EnqueueOutcome, Formation, MatchRequest, QueueEntry, ReassignOutcome,
    RedisDirectory, RoomServerInfo, TicketId, TicketStatus,
};
use tickroom_protocol::connect::{ConnectError, GatewayClient};
use tickroom_protocol::ErrorCode;
use tokio::task::JoinSet;

use common::redis_server::RedisServer;
use common::{config, expect_error, scenarios, server, start, TEST_DEADLINE};

const NOW: u64 = 1_700_000_000_000;
const TTL: Duration = Duration::from_secs(60);
/// How long a placed player may take to join, in ms.
const JOIN_WINDOW_MS: u64 = 20_000;
const PREFIX: &str = "test:";

async fn directory(redis: &RedisServer) -> Arc<RedisDirectory> {
    RedisDirectory::connect(&redis.url(), PREFIX)
        .await
        .expect("connect to the test redis")
}

fn request(players: usize, min_players: usize, wait_ms: u64, now_ms: u64) -> MatchRequest {
    MatchRequest {
        mode: "m".into(),
        players,
        min_players,
        wait_ms,
        abandon_after_ms: 30_000,
        now_ms,
        max_matches: usize::MAX,
        join_window_ms: JOIN_WINDOW_MS,
        seed: 9,
        rules: None,
        teams: 1,
    }
}

/// Queues players `range` (ticket id = player id + 1000) in mode `m` at `at_ms`.
async fn queue(dir: &RedisDirectory, range: std::ops::Range<u64>, at_ms: u64) -> Vec<TicketId> {
    let mut ids = Vec::new();
    for p in range {
        let id = TicketId(u128::from(p) + 1000);
        let entry = QueueEntry {
            ticket_id: id,
            player_id: p,
            mode: "m".into(),
            enqueued_ms: at_ms,
            metadata: Default::default(),
            properties: Default::default(),
            party: None,
        };
        assert_eq!(dir.enqueue(entry).await, Ok(EnqueueOutcome::Queued));
        ids.push(id);
    }
    ids
}

fn player_ids(f: &Formation) -> Vec<u64> {
    f.matches
        .iter()
        .flat_map(|m| m.players.iter().map(|p| p.player_id))
        .collect()
}

#[tokio::test]
async fn full_matches_form_and_the_rest_waits() {
    let redis = RedisServer::start().await;
    let dir = directory(&redis).await;
    dir.register_server(server("s1", 0), TTL).await.unwrap();
    let tickets = queue(&dir, 0..7, NOW).await;
    let f = dir.form_matches(request(3, 3, 10_000, NOW)).await.unwrap();
    assert_eq!(f.matches.len(), 2);
    assert_eq!(f.still_queued, 1);
    assert_eq!(player_ids(&f), vec![0, 1, 2, 3, 4, 5]);
    let room = dir.room(f.matches[0].room_id).await.unwrap().unwrap();
    assert_eq!(room.players, vec![0, 1, 2]);
    assert_eq!((room.server.server_id.as_str(), room.epoch), ("s1", 1));
    assert_eq!(room.mode, "m");
    let t0 = dir.ticket(tickets[0]).await.unwrap().unwrap();
    match t0.status {
        TicketStatus::Matched(a) => assert_eq!(a.room_id, f.matches[0].room_id),
        other => panic!("not matched: {other:?}"),
    }
    let t6 = dir.ticket(tickets[6]).await.unwrap().unwrap();
    assert_eq!((t6.player_id, t6.status), (6, TicketStatus::Queued));
    // Placement load was bumped by the six seats.
    assert_eq!(dir.live_servers().await.unwrap()[0].load, 6);
}

#[tokio::test]
async fn min_players_start_only_after_the_wait() {
    let redis = RedisServer::start().await;
    let dir = directory(&redis).await;
    dir.register_server(server("s1", 0), TTL).await.unwrap();
    queue(&dir, 0..2, NOW).await;
    let early = dir.form_matches(request(4, 2, 1000, NOW + 999)).await;
    assert!(early.unwrap().matches.is_empty());
    let f = dir.form_matches(request(4, 2, 1000, NOW + 1000)).await;
    let f = f.unwrap();
    assert_eq!(f.matches.len(), 1);
    assert_eq!(f.matches[0].players.len(), 2);
    assert_eq!(f.still_queued, 0);
}

#[tokio::test]
async fn no_live_server_leaves_players_queued() {
    let redis = RedisServer::start().await;
    let dir = directory(&redis).await;
    queue(&dir, 0..3, NOW).await;
    let f = dir.form_matches(request(3, 3, 0, NOW)).await.unwrap();
    assert!(f.matches.is_empty());
    assert_eq!(f.still_queued, 3);
    dir.register_server(server("gone", 0), Duration::ZERO)
        .await
        .unwrap();
    let mut drained = server("drained", 0);
    drained.draining = true;
    dir.register_server(drained, TTL).await.unwrap();
    let f = dir.form_matches(request(3, 3, 0, NOW)).await.unwrap();
    assert!(f.matches.is_empty());
    assert_eq!(f.still_queued, 3);
    dir.register_server(server("alive", 0), TTL).await.unwrap();
    let f = dir.form_matches(request(3, 3, 0, NOW)).await.unwrap();
    assert_eq!(f.matches[0].server_id, "alive");
}

#[tokio::test]
async fn cancel_queue_once_and_requeue_after_a_match() {
    let redis = RedisServer::start().await;
    let dir = directory(&redis).await;
    dir.register_server(server("s1", 0), TTL).await.unwrap();
    let ids = queue(&dir, 0..3, NOW).await;
    let again = QueueEntry {
        ticket_id: TicketId(1),
        player_id: 1,
        mode: "m".into(),
        enqueued_ms: NOW,
        metadata: Default::default(),
        properties: Default::default(),
        party: None,
    };
    assert_eq!(
        dir.enqueue(again.clone()).await,
        Ok(EnqueueOutcome::AlreadyQueued(ids[1]))
    );
    assert_eq!(
        dir.cancel_ticket(ids[1], 999).await,
        Ok(CancelOutcome::NotFound)
    );
    assert_eq!(
        dir.cancel_ticket(ids[1], 1).await,
        Ok(CancelOutcome::Cancelled)
    );
    assert_eq!(dir.ticket(ids[1]).await, Ok(None));
    let f = dir.form_matches(request(3, 3, 0, NOW)).await.unwrap();
    assert!(f.matches.is_empty());
    assert_eq!(f.still_queued, 2);
    queue(&dir, 3..4, NOW).await;
    // A second connection (a restarted gateway) sees the same queue and forms the match.
    let other = directory(&redis).await;
    let f = other.form_matches(request(3, 3, 0, NOW)).await.unwrap();
    assert_eq!(player_ids(&f), vec![0, 2, 3]);
    let first = f.matches[0].players[0].ticket_id;
    assert_eq!(
        dir.cancel_ticket(first, 0).await,
        Ok(CancelOutcome::AlreadyMatched)
    );
    // A matched player waits for the join window to end (`ghosts.rs`), unless their room
    // server died: then they may queue again at once.
    let requeue = QueueEntry {
        ticket_id: TicketId(2),
        player_id: 0,
        ..again
    };
    let pending = dir.enqueue(requeue.clone()).await;
    assert!(
        matches!(pending, Ok(EnqueueOutcome::MatchPending { .. })),
        "{pending:?}"
    );
    dir.deregister_server("s1").await.unwrap();
    assert_eq!(dir.enqueue(requeue).await, Ok(EnqueueOutcome::Queued));
}

#[tokio::test]
async fn abandoned_tickets_are_dropped_by_formation() {
    let redis = RedisServer::start().await;
    let dir = directory(&redis).await;
    let ids = queue(&dir, 0..2, NOW).await;
    dir.touch_ticket(ids[0], NOW + 40_000).await.unwrap();
    let f = dir.form_matches(request(3, 3, 0, NOW + 35_000)).await;
    assert_eq!(f.unwrap().still_queued, 1);
    assert!(dir.ticket(ids[1]).await.unwrap().is_none());
    assert!(dir.ticket(ids[0]).await.unwrap().is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_matchers_over_separate_connections_place_each_player_once() {
    const PLAYERS: u64 = 3_000;
    let redis = RedisServer::start().await;
    let feeder = redis.patient_directory(PREFIX).await;
    for id in ["s1", "s2"] {
        let big = RoomServerInfo {
            capacity: 1_000_000,
            ..server(id, 0)
        };
        feeder.register_server(big, TTL).await.unwrap();
    }
    let (done_tx, done_rx) = tokio::sync::watch::channel(false);
    let mut matchers = JoinSet::new();
    for seed in 0..3 {
        let dir = redis.patient_directory(PREFIX).await;
        let done = done_rx.clone();
        matchers.spawn(async move {
            let mut mine = Vec::new();
            loop {
                let finished = *done.borrow();
                let mut r = request(5, 5, u64::MAX, NOW);
                r.seed = seed;
                mine.extend(dir.form_matches(r).await.unwrap().matches);
                if finished {
                    return mine;
                }
            }
        });
    }
    queue(&feeder, 0..PLAYERS, NOW).await;
    done_tx.send(true).unwrap();
    let mut seen = HashSet::new();
    let mut rooms = HashSet::new();
    while let Some(formed) = matchers.join_next().await {
        for m in formed.unwrap() {
            assert_eq!(m.players.len(), 5);
            assert!(rooms.insert(m.room_id), "room {} formed twice", m.room_id);
            for p in &m.players {
                assert!(
                    seen.insert(p.player_id),
                    "player {} placed twice",
                    p.player_id
                );
            }
        }
    }
    assert_eq!(seen.len() as u64, PLAYERS);
    assert_eq!(rooms.len() as u64, PLAYERS / 5);
}

/// The `ranked` mode's rules (rating window, region with fallback, exact version).
fn ranked_rules() -> tickroom_game::modes::MatchRules {
    tickroom_game::modes::Modes::embedded()
        .by_name("ranked")
        .and_then(|m| m.matchmaking.clone())
        .expect("the embedded ranked mode has rules")
}

/// Rated players: ratings spread 1200..1800, two regions, two versions.
fn rated(p: u64) -> tickroom_game::PlayerMetadata {
    use tickroom_game::MetaValue::{Int, Str};
    let region = ["eu", "us"][(p % 2) as usize];
    let other = ["us", "eu"][(p % 2) as usize];
    tickroom_game::PlayerMetadata(
        [
            ("rating".to_string(), Int(1200 + (p * 37 % 600) as i64)),
            ("region".to_string(), Str(region.into())),
            (
                "version".to_string(),
                Str(["1.2", "1.3"][usize::from(p.is_multiple_of(3))].into()),
            ),
            (format!("latency.{other}"), Int(90)),
        ]
        .into_iter()
        .collect(),
    )
}

/// Three matchers over separate connections form matches by rules from one queue at once:
/// each claims its groups atomically, so no player is placed twice, and every match keeps
/// the rules (one version, one region before the fallback, ratings within the window).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_matchers_by_rules_place_each_player_once_within_the_rules() {
    const PLAYERS: u64 = 600;
    let redis = RedisServer::start().await;
    let feeder = redis.patient_directory(PREFIX).await;
    let big = RoomServerInfo {
        capacity: 1_000_000,
        ..server("s1", 0)
    };
    feeder.register_server(big, TTL).await.unwrap();
    let mut properties = HashMap::new();
    for p in 0..PLAYERS {
        let entry = QueueEntry {
            ticket_id: TicketId(u128::from(p) + 1000),
            player_id: p,
            mode: "m".into(),
            enqueued_ms: NOW + p,
            metadata: Default::default(),
            properties: rated(p),
            party: None,
        };
        properties.insert(p, entry.properties.clone());
        assert_eq!(feeder.enqueue(entry).await, Ok(EnqueueOutcome::Queued));
    }
    let mut matchers = JoinSet::new();
    for seed in 0..3 {
        let dir = redis.patient_directory(PREFIX).await;
        matchers.spawn(async move {
            let mut mine = Vec::new();
            // Time passes for the matchers: windows widen and regions fall back.
            for pass in 0..40u64 {
                let mut r = request(5, 2, 30_000, NOW + PLAYERS + pass * 1_000);
                r.seed = seed;
                r.rules = Some(ranked_rules());
                mine.extend(dir.form_matches(r).await.unwrap().matches);
            }
            mine
        });
    }
    let mut seen = HashSet::new();
    let mut formed = 0;
    while let Some(matches) = matchers.join_next().await {
        for m in matches.unwrap() {
            formed += 1;
            let grouping = m.grouping.clone().expect("a match by rules says why");
            let props: Vec<_> = m
                .players
                .iter()
                .map(|p| &properties[&p.player_id])
                .collect();
            let version = props[0].str("version");
            assert!(props.iter().all(|p| p.str("version") == version), "{m:?}");
            let ratings: Vec<i64> = props.iter().map(|p| p.int("rating").unwrap()).collect();
            let window = i64::from(grouping.window.expect("a window"));
            assert!(
                ratings.iter().all(|r| (r - ratings[0]).abs() <= window),
                "{m:?}"
            );
            assert_eq!(
                grouping.spread,
                Some((ratings.iter().max().unwrap() - ratings.iter().min().unwrap()) as u32)
            );
            for p in &m.players {
                assert!(
                    seen.insert(p.player_id),
                    "player {} placed twice",
                    p.player_id
                );
            }
        }
    }
    assert!(formed >= 60, "most of the queue formed: {formed} matches");
    // What the directory says agrees: every placed ticket reads as matched, with its room's
    // grouping.
    let some = seen.iter().next().copied().unwrap();
    let record = feeder
        .ticket(TicketId(u128::from(some) + 1000))
        .await
        .unwrap()
        .unwrap();
    match record.status {
        TicketStatus::Matched(a) => assert!(a.grouping.is_some()),
        other => panic!("{other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_gateways_over_one_redis_match_300_players_exactly_once() {
    const PLAYERS: usize = 300;
    let redis = RedisServer::start().await;
    let (dir_a, dir_b) = (
        redis.patient_directory(PREFIX).await,
        redis.patient_directory(PREFIX).await,
    );
    for id in ["room-a", "room-b"] {
        dir_a.register_server(server(id, 0), TTL).await.unwrap();
    }
    let gateways = [
        Arc::new(start(config(), dir_a.clone(), true).await),
        Arc::new(start(config(), dir_b, true).await),
    ];
    let mut players = JoinSet::new();
    for i in 0..PLAYERS {
        // Log in and queue on one gateway, poll on the other.
        let (front, back) = (gateways[i % 2].clone(), gateways[(i + 1) % 2].clone());
        players.spawn(async move {
            let (player, token) = front.login(&format!("p-{i}")).await;
            let ticket = front.enqueue(&token, "trio").await;
            match back.poll_until_matched(&token, &ticket).await {
                PollResponse::Matched(m) => (player, m.room_id, m.server_id),
                other => panic!("not matched: {other:?}"),
            }
        });
    }
    let mut rooms: HashMap<u64, Vec<u64>> = HashMap::new();
    let mut seen = HashSet::new();
    while let Some(joined) = players.join_next().await {
        let (player, room_id, server_id) = joined.unwrap();
        assert!(seen.insert(player), "player {player} answered twice");
        assert!(server_id == "room-a" || server_id == "room-b");
        rooms.entry(room_id).or_default().push(player);
    }
    assert_eq!(seen.len(), PLAYERS);
    assert_eq!(rooms.len(), PLAYERS / 3);
    for (room_id, mut members) in rooms {
        assert_eq!(members.len(), 3, "room {room_id}: {members:?}");
        let mut recorded = dir_a.room(room_id).await.unwrap().unwrap().players;
        members.sort_unstable();
        recorded.sort_unstable();
        assert_eq!(members, recorded);
    }
}

#[tokio::test]
async fn a_server_that_stops_heartbeating_leaves_live_servers_within_the_ttl() {
    const SHORT_TTL: Duration = Duration::from_millis(300);
    const SLACK: Duration = Duration::from_millis(250);
    let redis = RedisServer::start().await;
    let dir = directory(&redis).await;
    let registered = Instant::now();
    dir.register_server(server("quiet", 0), SHORT_TTL)
        .await
        .unwrap();
    dir.register_server(server("steady", 0), TTL).await.unwrap();
    let ids = |live: Vec<RoomServerInfo>| -> Vec<String> {
        live.into_iter().map(|s| s.server_id).collect()
    };
    assert_eq!(ids(dir.live_servers().await.unwrap()), ["quiet", "steady"]);
    let mut probe = tokio::time::interval(Duration::from_millis(20));
    loop {
        probe.tick().await;
        if ids(dir.live_servers().await.unwrap()) == ["steady"] {
            break;
        }
        assert!(registered.elapsed() < SHORT_TTL + SLACK, "still live");
    }
    assert!(registered.elapsed() >= SHORT_TTL - Duration::from_millis(5));
    queue(&dir, 0..30, NOW).await;
    let f = dir.form_matches(request(3, 3, 0, NOW)).await.unwrap();
    assert_eq!(f.matches.len(), 10);
    assert!(f.matches.iter().all(|m| m.server_id == "steady"));
}

#[tokio::test]
async fn a_stale_epoch_is_refused_by_reassign_and_close() {
    let redis = RedisServer::start().await;
    let dir = directory(&redis).await;
    dir.register_server(server("s1", 0), TTL).await.unwrap();
    let tickets = queue(&dir, 0..3, NOW).await;
    let room_id = dir
        .form_matches(request(3, 3, 0, NOW))
        .await
        .unwrap()
        .matches[0]
        .room_id;
    dir.register_server(server("s2", 0), TTL).await.unwrap();
    assert_eq!(dir.rooms_on_server("s1").await.unwrap(), vec![room_id]);

    let moved = match dir.reassign_room(room_id, 1, "s2").await.unwrap() {
        ReassignOutcome::Reassigned(record) => record,
        other => panic!("not reassigned: {other:?}"),
    };
    assert_eq!((moved.epoch, moved.server.server_id.as_str()), (2, "s2"));
    assert_eq!(moved.players, vec![0, 1, 2]);
    // A second writer that still believes epoch 1 is fenced off.
    assert_eq!(
        dir.reassign_room(room_id, 1, "s1").await.unwrap(),
        ReassignOutcome::StaleEpoch { current: 2 }
    );
    assert!(!dir.close_room_at(room_id, 1).await.unwrap());
    assert_eq!(
        dir.reassign_room(room_id, 2, "nobody").await.unwrap(),
        ReassignOutcome::ServerNotLive
    );
    assert_eq!(
        dir.reassign_room(room_id + 1, 1, "s2").await.unwrap(),
        ReassignOutcome::NotFound
    );
    assert!(dir.rooms_on_server("s1").await.unwrap().is_empty());
    assert_eq!(dir.rooms_on_server("s2").await.unwrap(), vec![room_id]);
    // Tickets follow the room to its new owner.
    match dir.ticket(tickets[0]).await.unwrap().unwrap().status {
        TicketStatus::Matched(a) => assert_eq!(a.server.server_id, "s2"),
        other => panic!("not matched: {other:?}"),
    }
    assert!(dir.close_room_at(room_id, 2).await.unwrap());
    assert_eq!(dir.room(room_id).await, Ok(None));
    assert_eq!(dir.ticket(tickets[0]).await, Ok(None));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn room_route_reports_a_dead_owner_and_its_players_queue_again() {
    let redis = RedisServer::start().await;
    scenarios::dead_owner_is_reported_and_players_queue_again(directory(&redis).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queue_metadata_is_signed_into_the_join_ticket() {
    let redis = RedisServer::start().await;
    scenarios::metadata_is_signed_into_the_join_ticket(directory(&redis).await).await;
}

#[tokio::test]
async fn every_kind_of_bad_metadata_is_refused() {
    let redis = RedisServer::start().await;
    scenarios::bad_metadata_is_refused(directory(&redis).await).await;
}

/// A client rides out a frozen Redis (SIGSTOP): the gateway answers 503 with Retry-After,
/// the client waits it out with jitter and is queued once Redis goes on; a client that may
/// not retry gets the 503 at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_waits_out_a_frozen_redis_and_gets_in() {
    let redis = RedisServer::start().await;
    let t = start(config(), directory(&redis).await, false).await;
    let (_, token) = t.login("p").await;
    redis.freeze();
    let impatient = GatewayClient::new(&t.base).with_retry_deadline(Duration::ZERO);
    match impatient.queue(&token, "trio").await {
        Err(ConnectError::Gateway {
            status: 503,
            retry_after,
            ..
        }) => assert_eq!(retry_after, Some(Duration::from_secs(1))),
        other => panic!("a frozen directory: {other:?}"),
    }
    assert_eq!(impatient.retries(), 0);
    let patient = GatewayClient::new(&t.base);
    let queued = tokio::spawn({
        let (patient, token) = (patient.clone(), token.clone());
        async move { patient.queue(&token, "trio").await }
    });
    // Redis goes on once the client has waited out a 503.
    let deadline = Instant::now() + TEST_DEADLINE;
    let mut poll = tokio::time::interval(Duration::from_millis(20));
    while patient.retries() == 0 {
        assert!(Instant::now() < deadline, "the client never heard a 503");
        poll.tick().await;
    }
    redis.thaw();
    let ticket = queued.await.unwrap().expect("queued once Redis is back");
    assert!(!ticket.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_outage_answers_503_then_recovers_by_itself() {
    const ANSWER_BOUND: Duration = Duration::from_secs(3);
    let mut redis = RedisServer::start().await;
    let dir = directory(&redis).await;
    let t = start(config(), dir.clone(), false).await;
    let (_, token) = t.login("p").await;
    let ticket = t.enqueue(&token, "trio").await;

    redis.stop();
    let asked = Instant::now();
    let r = t
        .post_json("/v1/matchmaking", json!({"mode": "trio"}), Some(&token))
        .await;
    assert!(asked.elapsed() < ANSWER_BOUND, "took {:?}", asked.elapsed());
    assert_eq!(r.headers()["retry-after"], "1");
    expect_error(r, StatusCode::SERVICE_UNAVAILABLE, ErrorCode::ServerBusy).await;
    let r = t.poll_raw(&token, &ticket, 0).await;
    expect_error(r, StatusCode::SERVICE_UNAVAILABLE, ErrorCode::ServerBusy).await;

    // Back (empty, as a fresh Redis would be): the same gateway serves again on its own.
    redis.restart().await;
    let deadline = tokio::time::Instant::now() + TEST_DEADLINE;
    let mut retry = tokio::time::interval(Duration::from_millis(50));
    let ticket = loop {
        retry.tick().await;
        let r = t
            .post_json("/v1/matchmaking", json!({"mode": "trio"}), Some(&token))
            .await;
        if r.status() == StatusCode::ACCEPTED {
            let v: Value = r.json().await.unwrap();
            break v["ticket_id"].as_str().unwrap().to_owned();
        }
        assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert!(tokio::time::Instant::now() < deadline, "no recovery");
    };
    // The fresh Redis knows no room server yet: the poll says so (503, not a directory
    // error); once one registers, the poll is an ordinary answer again.
    let r = t.poll_raw(&token, &ticket, 0).await;
    let body = expect_error(r, StatusCode::SERVICE_UNAVAILABLE, ErrorCode::ServerBusy).await;
    assert!(body.message.contains("no room server"), "{}", body.message);
    dir.register_server(server("s1", 0), Duration::from_secs(30))
        .await
        .unwrap();
    let r = t.poll_raw(&token, &ticket, 0).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(t.gw.match_pass().await, 0);
}

/// Match formation throughput through Redis: 10,000 queued for a mode of 10.
/// `cargo test -p tickroom-gateway --release --test redis -- --ignored --nocapture`
#[tokio::test]
#[ignore = "benchmark: prints figures"]
async fn bench_formation_throughput_from_10k_queued() {
    const QUEUED: u64 = 10_000;
    let redis = RedisServer::start().await;
    let dir = directory(&redis).await;
    for id in ["s1", "s2", "s3", "s4"] {
        let big = RoomServerInfo {
            capacity: 1_000_000,
            ..server(id, 0)
        };
        dir.register_server(big, TTL).await.unwrap();
    }
    let started = Instant::now();
    queue(&dir, 0..QUEUED, NOW).await;
    let enqueue_s = started.elapsed().as_secs_f64();
    let started = Instant::now();
    let mut formed = 0;
    loop {
        let mut r = request(10, 10, u64::MAX, NOW);
        r.max_matches = 1_000;
        let f = dir.form_matches(r).await.unwrap();
        formed += f.matches.len();
        if f.matches.is_empty() {
            break;
        }
    }
    let form_s = started.elapsed().as_secs_f64();
    assert_eq!(formed as u64, QUEUED / 10);
    println!(
        "redis formation: {formed} matches of 10 from {QUEUED} queued in {:.1} ms = {:.0} matches/s \
         ({:.0} players/s); enqueue {:.0} tickets/s sequential",
        form_s * 1e3,
        formed as f64 / form_s,
        (formed * 10) as f64 / form_s,
        QUEUED as f64 / enqueue_s
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rated_players_are_matched_by_the_rules_and_told_why() {
    let redis = RedisServer::start().await;
    scenarios::rated_players_are_matched_by_the_rules_and_told_why(directory(&redis).await).await;
}

#[tokio::test]
async fn bad_properties_are_refused() {
    let redis = RedisServer::start().await;
    scenarios::bad_properties_are_refused(directory(&redis).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn private_rooms_are_joined_by_code() {
    let redis = RedisServer::start().await;
    scenarios::private_rooms_are_joined_by_code(directory(&redis).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_owners_room_with_an_image_moves_to_a_live_server() {
    let redis = RedisServer::start().await;
    scenarios::a_dead_owners_room_with_an_image_moves_to_a_live_server(directory(&redis).await)
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spectators_watch_by_room_id_or_code() {
    let redis = RedisServer::start().await;
    scenarios::spectators_watch_by_room_id_or_code(directory(&redis).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parties_are_matched_whole() {
    let redis = RedisServer::start().await;
    scenarios::parties_are_matched_whole(directory(&redis).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_seats_are_filled_before_new_rooms() {
    let redis = RedisServer::start().await;
    scenarios::open_seats_are_filled_before_new_rooms(directory(&redis).await).await;
}
