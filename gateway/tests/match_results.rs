//! Match results over both directories: stored through the `Directory` (as room servers do),
//! read at `GET /v1/matches/{room_id}` and by `GatewayClient::match_result` only by the
//! match's players (404 for anyone else and for unknown rooms), and gone after their TTL.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{json, Value};
use tickroom_gateway::directory::MAX_MATCH_RESULT_BYTES;
use tickroom_gateway::http::MatchResultRecord;
use tickroom_gateway::{
    Directory, DirectoryError, InMemoryDirectory, MatchPlayer, MatchRecord, RedisDirectory,
};
use tickroom_protocol::connect::GatewayClient;
use tickroom_protocol::ErrorCode;

use common::redis_server::RedisServer;
use common::{config, expect_error, start, TestGateway, TEST_DEADLINE};

const ROOM: u64 = 4_242;
const ENDED_MS: u64 = 1_700_000_000_000;
const LONG_TTL: Duration = Duration::from_secs(600);
/// Short enough to wait out, long enough that a read right after the store normally sees it.
const SHORT_TTL: Duration = Duration::from_millis(300);
/// Redis expires keys with millisecond precision on its own clock.
const EXPIRY_SLACK: Duration = Duration::from_millis(5);
const POLL_EVERY: Duration = Duration::from_millis(20);

fn record(room_id: u64, players: &[u64], result: Vec<u8>) -> MatchRecord {
    MatchRecord {
        room_id,
        mode: "duel".into(),
        players: players
            .iter()
            .zip(0u8..)
            .map(|(&player_id, slot)| MatchPlayer { player_id, slot })
            .collect(),
        result,
        ended_ms: ENDED_MS,
    }
}

async fn get_match(t: &TestGateway, token: &str, room: &str) -> reqwest::Response {
    t.http
        .get(t.url(&format!("/v1/matches/{room}")))
        .bearer_auth(token)
        .send()
        .await
        .expect("request")
}

/// Players read the result (exact JSON, and through the client); a stranger, an unknown room
/// and a malformed id are all the same 404; no session is 401; oversized results are refused.
async fn results_are_shown_only_to_their_players(dir: Arc<dyn Directory>) {
    let t = start(config(), dir.clone(), false).await;
    let client = GatewayClient::new(&t.base);
    let (ann, ann_token) = t.login("ann").await;
    let (bob, bob_token) = t.login("bob").await;
    let (_, stranger) = t.login("stranger").await;
    let stored = record(ROOM, &[ann, bob], vec![0, 1, 2, 255]);
    dir.store_match_result(stored.clone(), LONG_TTL)
        .await
        .unwrap();

    let r = get_match(&t, &ann_token, &ROOM.to_string()).await;
    assert_eq!(r.status(), StatusCode::OK);
    let expected = json!({
        "room_id": ROOM,
        "mode": "duel",
        "players": [{"player_id": ann, "slot": 0}, {"player_id": bob, "slot": 1}],
        "result": "AAEC/w==",
        "ended_ms": ENDED_MS,
    });
    assert_eq!(r.json::<Value>().await.unwrap(), expected);
    let seen = client.match_result(&bob_token, ROOM).await.unwrap();
    let expected = MatchResultRecord {
        room_id: ROOM,
        mode: "duel".into(),
        players: stored.players.clone(),
        result: stored.result.clone(),
        ended_ms: ENDED_MS,
    };
    assert_eq!(seen, Some(expected));

    for (token, room) in [
        (&stranger, ROOM.to_string()),
        (&ann_token, (ROOM + 1).to_string()),
        (&ann_token, "not-a-room".to_owned()),
        (&ann_token, "-1".to_owned()),
    ] {
        let r = get_match(&t, token, &room).await;
        let body = expect_error(r, StatusCode::NOT_FOUND, ErrorCode::NotFound).await;
        assert_eq!(body.message, "match not found", "{room}");
    }
    assert_eq!(client.match_result(&stranger, ROOM).await.unwrap(), None);
    assert_eq!(
        client.match_result(&ann_token, ROOM + 1).await.unwrap(),
        None
    );
    let r = t
        .http
        .get(t.url(&format!("/v1/matches/{ROOM}")))
        .send()
        .await
        .unwrap();
    expect_error(r, StatusCode::UNAUTHORIZED, ErrorCode::Unauthorized).await;

    let oversized = record(ROOM + 2, &[ann], vec![7; MAX_MATCH_RESULT_BYTES + 1]);
    assert_eq!(
        dir.store_match_result(oversized, LONG_TTL).await,
        Err(DirectoryError::TooLarge {
            what: "match result",
            limit_bytes: MAX_MATCH_RESULT_BYTES,
        })
    );
    assert_eq!(dir.match_result(ROOM + 2).await, Ok(None));
    let largest = record(ROOM + 2, &[ann], vec![7; MAX_MATCH_RESULT_BYTES]);
    dir.store_match_result(largest.clone(), LONG_TTL)
        .await
        .unwrap();
    assert_eq!(dir.match_result(ROOM + 2).await, Ok(Some(largest)));
}

/// A result stays readable until its TTL and is gone after it (polled, with a deadline); a
/// zero TTL removes a stored result at once.
async fn results_expire(dir: Arc<dyn Directory>) {
    let t = start(config(), dir.clone(), false).await;
    let client = GatewayClient::new(&t.base);
    let (ann, token) = t.login("ann").await;

    let stored = record(ROOM, &[ann], b"short".to_vec());
    let before = Instant::now();
    dir.store_match_result(stored.clone(), SHORT_TTL)
        .await
        .unwrap();
    let first = dir.match_result(ROOM).await.unwrap();
    if before.elapsed() < SHORT_TTL {
        assert_eq!(first, Some(stored));
    }
    let mut probe = tokio::time::interval(POLL_EVERY);
    loop {
        probe.tick().await;
        if dir.match_result(ROOM).await.unwrap().is_none() {
            break;
        }
        assert!(before.elapsed() < TEST_DEADLINE, "result never expired");
    }
    assert!(before.elapsed() >= SHORT_TTL - EXPIRY_SLACK);
    assert_eq!(client.match_result(&token, ROOM).await.unwrap(), None);

    let kept = record(ROOM + 1, &[ann], b"kept".to_vec());
    dir.store_match_result(kept.clone(), LONG_TTL)
        .await
        .unwrap();
    assert!(client
        .match_result(&token, ROOM + 1)
        .await
        .unwrap()
        .is_some());
    dir.store_match_result(kept, Duration::ZERO).await.unwrap();
    assert_eq!(dir.match_result(ROOM + 1).await, Ok(None));
}

async fn redis_directory(redis: &RedisServer) -> Arc<RedisDirectory> {
    RedisDirectory::connect(&redis.url(), "results-test:")
        .await
        .expect("connect to the test redis")
}

#[tokio::test]
async fn in_memory_results_are_shown_only_to_their_players() {
    results_are_shown_only_to_their_players(InMemoryDirectory::new()).await;
}

#[tokio::test]
async fn in_memory_results_expire() {
    results_expire(InMemoryDirectory::new()).await;
}

#[tokio::test]
async fn redis_results_are_shown_only_to_their_players() {
    let redis = RedisServer::start().await;
    results_are_shown_only_to_their_players(redis_directory(&redis).await).await;
}

#[tokio::test]
async fn redis_results_expire() {
    let redis = RedisServer::start().await;
    results_expire(redis_directory(&redis).await).await;
}

#[tokio::test]
async fn redis_keeps_one_json_key_per_room_under_the_prefix() {
    let redis = RedisServer::start().await;
    let dir = redis_directory(&redis).await;
    dir.store_match_result(record(ROOM, &[5], vec![1]), LONG_TTL)
        .await
        .unwrap();
    let client = redis::Client::open(redis.url()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let key = format!("results-test:match:{ROOM}");
    let json: String = redis::cmd("GET")
        .arg(&key)
        .query_async(&mut conn)
        .await
        .unwrap();
    let value: Value = serde_json::from_str(&json).unwrap();
    assert_eq!(value["result"], "AQ==");
    assert_eq!(value["players"], json!([{"player_id": 5, "slot": 0}]));
    let ttl_ms: i64 = redis::cmd("PTTL")
        .arg(&key)
        .query_async(&mut conn)
        .await
        .unwrap();
    let ttl_ms = u64::try_from(ttl_ms).expect("the key has a TTL");
    assert!(
        ttl_ms <= LONG_TTL.as_millis() as u64 && ttl_ms > 0,
        "{ttl_ms}"
    );
}
