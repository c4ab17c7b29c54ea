//! Matchmaking over HTTP: queue, long-poll, cancel, placement, and two gateways sharing one
//! directory.

mod common;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use reqwest::StatusCode;
use serde_json::{json, Value};
use tickroom_gateway::http::PollResponse;
use tickroom_gateway::{
    now_ms, CancelOutcome, CodeJoin, Directory, DirectoryError, EnqueueOutcome, Formation,
    InMemoryDirectory, MatchRecord, MatchRequest, PartyAnswer, PartyRecord, PrivateRoomRequest,
    QueueEntry, ReassignOutcome, RoomRecord, RoomServerInfo, TicketId, TicketRecord,
};
use tickroom_protocol::token::encode_hex;
use tickroom_protocol::ErrorCode;

use common::{config, expect_error, keys, scenarios, server, start, TestGateway};

const SERVER_TTL: Duration = Duration::from_secs(600);

fn matched(answer: PollResponse) -> tickroom_gateway::http::MatchedResponse {
    match answer {
        PollResponse::Matched(m) => m,
        other => panic!("not matched: {other:?}"),
    }
}

async fn queued_players(
    t: &TestGateway,
    n: usize,
    mode: &str,
    tag: &str,
) -> Vec<(u64, String, String)> {
    let mut out = Vec::new();
    for i in 0..n {
        let (player, token) = t.login(&format!("{tag}-{i}")).await;
        let ticket = t.enqueue(&token, mode).await;
        out.push((player, token, ticket));
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_room_forms_one_match_with_valid_join_tickets() {
    let dir = InMemoryDirectory::new();
    dir.register_server(server("room-a", 0), SERVER_TTL)
        .await
        .unwrap();
    let t = start(config(), dir.clone(), true).await;
    let players = queued_players(&t, 4, "trio", "p").await;

    let mut answers = Vec::new();
    for (player, token, ticket) in &players[..3] {
        answers.push((*player, matched(t.poll_until_matched(token, ticket).await)));
    }
    let room_id = answers[0].1.room_id;
    assert_ne!(room_id, 0);
    assert!(room_id < 1 << 53);
    for (player, m) in &answers {
        assert_eq!(m.room_id, room_id);
        assert_eq!(m.mode, "trio");
        assert_eq!(m.server_id, "room-a");
        assert_eq!(m.quic_addr, "127.0.0.1:4000");
        assert_eq!(m.ws_addr, "127.0.0.1:5000");
        assert_eq!(m.cert_fingerprint, "fp-room-a");
        let ticket = keys()
            .verify_ticket(&m.join_ticket, now_ms(), 0)
            .expect("ticket verifies");
        let c = ticket.claims();
        assert_eq!(
            (
                c.player_id,
                c.room_id,
                c.mode.as_str(),
                c.server_id.as_str()
            ),
            (*player, room_id, "trio", "room-a")
        );
        assert!(c.expires_ms > now_ms() && c.expires_ms <= now_ms() + 10_000);
        assert_eq!(m.expires_ms, c.expires_ms);
        assert_eq!(m.join_secret, encode_hex(&keys().join_secret(&ticket)));
    }
    let distinct: HashSet<u64> = answers.iter().map(|(p, _)| *p).collect();
    assert_eq!(distinct.len(), 3);
    let room = dir.room(room_id).await.unwrap().expect("room recorded");
    assert_eq!(
        room.players.iter().copied().collect::<HashSet<_>>(),
        distinct
    );

    // The fourth player has no partners: still queued at the poll deadline.
    let (_, token, ticket) = &players[3];
    let r = t.poll_raw(token, ticket, 150).await;
    assert_eq!(r.status(), StatusCode::OK);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["status"], "queued");
    assert_eq!(v["ticket_id"], ticket.as_str());

    let mut metrics = String::new();
    t.gw.render_metrics(&mut metrics);
    assert!(
        metrics.contains("tickroom_gateway_queue_length{mode=\"trio\"} 1\n"),
        "{metrics}"
    );
    assert!(
        metrics.contains("tickroom_gateway_queue_wait_seconds_count 3\n"),
        "{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn min_players_start_without_a_full_room_after_the_wait() {
    let dir = InMemoryDirectory::new();
    dir.register_server(server("room-a", 0), SERVER_TTL)
        .await
        .unwrap();
    let t = start(config(), dir.clone(), true).await;
    // flex: 4 seats, 2 suffice after 0 s; a single player never starts alone.
    let (_, token1) = t.login("solo").await;
    let ticket1 = t.enqueue(&token1, "flex").await;
    let v: Value = t
        .poll_raw(&token1, &ticket1, 150)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(v["status"], "queued");
    let (_, token2) = t.login("second").await;
    let ticket2 = t.enqueue(&token2, "flex").await;
    let a = matched(t.poll_until_matched(&token1, &ticket1).await);
    let b = matched(t.poll_until_matched(&token2, &ticket2).await);
    assert_eq!(a.room_id, b.room_id);
    assert_eq!(dir.room(a.room_id).await.unwrap().unwrap().players.len(), 2);
}

#[tokio::test]
async fn cancel_removes_the_ticket_and_unknown_tickets_are_not_found() {
    let dir = InMemoryDirectory::new();
    let t = start(config(), dir, false).await;
    let (_, token) = t.login("p").await;
    let ticket = t.enqueue(&token, "trio").await;
    let del = |ticket: String| {
        t.http
            .delete(t.url(&format!("/v1/matchmaking/{ticket}")))
            .bearer_auth(&token)
            .send()
    };
    let r = del(ticket.clone()).await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["status"], "cancelled");
    let r = t.poll_raw(&token, &ticket, 0).await;
    expect_error(r, StatusCode::NOT_FOUND, ErrorCode::NotFound).await;
    let r = del(ticket.clone()).await.unwrap();
    expect_error(r, StatusCode::NOT_FOUND, ErrorCode::NotFound).await;
    for junk in [TicketId(77).to_string(), "zz".to_owned()] {
        let r = t.poll_raw(&token, &junk, 0).await;
        expect_error(r, StatusCode::NOT_FOUND, ErrorCode::NotFound).await;
    }
    // After cancelling, the player may queue again.
    t.enqueue(&token, "trio").await;
}

#[tokio::test]
async fn only_the_owner_may_poll_or_cancel_a_ticket() {
    let dir = InMemoryDirectory::new();
    dir.register_server(server("s1", 0), SERVER_TTL)
        .await
        .unwrap();
    let t = start(config(), dir, false).await;
    let (_, owner) = t.login("owner").await;
    let (_, other) = t.login("other").await;
    let ticket = t.enqueue(&owner, "trio").await;
    let r = t.poll_raw(&other, &ticket, 0).await;
    expect_error(r, StatusCode::NOT_FOUND, ErrorCode::NotFound).await;
    let r = t
        .http
        .delete(t.url(&format!("/v1/matchmaking/{ticket}")))
        .bearer_auth(&other)
        .send()
        .await
        .unwrap();
    expect_error(r, StatusCode::NOT_FOUND, ErrorCode::NotFound).await;
    let r = t.poll_raw(&owner, &ticket, 0).await;
    assert_eq!(r.status(), StatusCode::OK);
}

#[tokio::test]
async fn queueing_twice_conflicts_and_unknown_modes_are_refused() {
    let t = start(config(), InMemoryDirectory::new(), false).await;
    let (_, token) = t.login("p").await;
    let ticket = t.enqueue(&token, "trio").await;
    let r = t
        .post_json("/v1/matchmaking", json!({"mode": "quad"}), Some(&token))
        .await;
    let body = expect_error(r, StatusCode::CONFLICT, ErrorCode::Conflict).await;
    assert!(body.message.contains(&ticket));
    let (_, token2) = t.login("q").await;
    let r = t
        .post_json("/v1/matchmaking", json!({"mode": "chess"}), Some(&token2))
        .await;
    expect_error(r, StatusCode::BAD_REQUEST, ErrorCode::UnknownMode).await;
    let r = t
        .post_json("/v1/matchmaking", json!({"mood": "trio"}), Some(&token2))
        .await;
    expect_error(r, StatusCode::BAD_REQUEST, ErrorCode::BadRequest).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_live_room_server_players_stay_queued_and_hear_503() {
    let dir = InMemoryDirectory::new();
    // Registered, but its heartbeat has already lapsed.
    dir.register_server(server("dead", 0), Duration::ZERO)
        .await
        .unwrap();
    let t = start(config(), dir.clone(), false).await;
    let players = queued_players(&t, 3, "trio", "p").await;
    assert_eq!(t.gw.match_pass().await, 0);
    let (_, token, ticket) = &players[0];
    // At the end of the long-poll the player is told why it waits: 503 with Retry-After.
    let resp = t.poll_raw(token, ticket, 100).await;
    assert_eq!(resp.status(), 503);
    assert!(resp.headers().contains_key("retry-after"));
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["error"], "server_busy");
    // A server coming up places them.
    dir.register_server(server("alive", 0), SERVER_TTL)
        .await
        .unwrap();
    assert_eq!(t.gw.match_pass().await, 1);
    assert_eq!(
        matched(t.poll_until_matched(token, ticket).await).server_id,
        "alive"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn placement_prefers_the_less_loaded_server() {
    let dir = InMemoryDirectory::new();
    dir.register_server(server("busy", 9_000), SERVER_TTL)
        .await
        .unwrap();
    dir.register_server(server("idle", 0), SERVER_TTL)
        .await
        .unwrap();
    let t = start(config(), dir.clone(), false).await;
    let players = queued_players(&t, 3, "trio", "p").await;
    assert_eq!(t.gw.match_pass().await, 1);
    let (_, token, ticket) = &players[0];
    assert_eq!(
        matched(t.poll_until_matched(token, ticket).await).server_id,
        "idle"
    );
    let idle = dir
        .live_servers()
        .await
        .unwrap()
        .into_iter()
        .find(|s| s.server_id == "idle")
        .unwrap();
    assert_eq!(idle.load, 3, "placement counts the seats it promised");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_gateways_on_one_directory_match_every_player_exactly_once() {
    const PLAYERS: usize = 200;
    let dir = InMemoryDirectory::new();
    for id in ["s1", "s2", "s3"] {
        dir.register_server(server(id, 0), SERVER_TTL)
            .await
            .unwrap();
    }
    let gateways = [
        Arc::new(start(config(), dir.clone(), true).await),
        Arc::new(start(config(), dir.clone(), true).await),
    ];
    // Queue and poll concurrently through both gateways while both matchers run.
    let mut tasks = Vec::new();
    for i in 0..PLAYERS {
        let t = gateways[i % 2].clone();
        tasks.push(tokio::spawn(async move {
            let (player, token) = t.login(&format!("crowd-{i}")).await;
            let ticket = t.enqueue(&token, "quad").await;
            (player, matched(t.poll_until_matched(&token, &ticket).await))
        }));
    }
    let mut rooms: HashMap<u64, Vec<u64>> = HashMap::new();
    let mut seen = HashSet::new();
    for task in tasks {
        let (player, m) = task.await.expect("player task");
        assert!(seen.insert(player), "player {player} answered twice");
        let room: RoomRecord = dir.room(m.room_id).await.unwrap().expect("room recorded");
        assert_eq!(room.server.server_id, m.server_id);
        rooms.entry(m.room_id).or_default().push(player);
    }
    assert_eq!(seen.len(), PLAYERS);
    assert_eq!(rooms.len(), PLAYERS / 4);
    let mut placed = HashSet::new();
    for (room_id, members) in &rooms {
        let record = dir.room(*room_id).await.unwrap().unwrap();
        let mut recorded = record.players.clone();
        recorded.sort_unstable();
        let mut answered = members.clone();
        answered.sort_unstable();
        assert_eq!(recorded, answered, "room {room_id}");
        assert_eq!(recorded.len(), 4);
        for p in recorded {
            assert!(placed.insert(p), "player {p} placed in two rooms");
        }
    }
    let mut servers = HashSet::new();
    for room_id in rooms.keys() {
        servers.insert(dir.room(*room_id).await.unwrap().unwrap().server.server_id);
    }
    assert!(
        servers.len() >= 2,
        "placement spread rooms over {servers:?}"
    );
}

/// A directory whose backing store is down.
struct DownDirectory;

#[async_trait]
impl Directory for DownDirectory {
    async fn register_server(&self, _: RoomServerInfo, _: Duration) -> Result<(), DirectoryError> {
        Err(down())
    }
    async fn deregister_server(&self, _: &str) -> Result<(), DirectoryError> {
        Err(down())
    }
    async fn live_servers(&self) -> Result<Vec<RoomServerInfo>, DirectoryError> {
        Err(down())
    }
    async fn enqueue(&self, _: QueueEntry) -> Result<EnqueueOutcome, DirectoryError> {
        Err(down())
    }
    async fn ticket(&self, _: TicketId) -> Result<Option<TicketRecord>, DirectoryError> {
        Err(down())
    }
    async fn touch_ticket(
        &self,
        _: TicketId,
        _: u64,
    ) -> Result<Option<TicketRecord>, DirectoryError> {
        Err(down())
    }
    async fn cancel_ticket(&self, _: TicketId, _: u64) -> Result<CancelOutcome, DirectoryError> {
        Err(down())
    }
    async fn form_matches(&self, _: MatchRequest) -> Result<Formation, DirectoryError> {
        Err(down())
    }
    async fn create_private_room(
        &self,
        _: PrivateRoomRequest,
    ) -> Result<Option<RoomRecord>, DirectoryError> {
        Err(down())
    }
    async fn join_by_code(&self, _: &str, _: u64) -> Result<CodeJoin, DirectoryError> {
        Err(down())
    }
    async fn create_party(&self, _: PartyRecord) -> Result<PartyAnswer, DirectoryError> {
        Err(down())
    }
    async fn open_seats(&self, _: u64, _: &str, _: usize) -> Result<bool, DirectoryError> {
        Err(down())
    }
    async fn join_party(&self, _: &str, _: u64) -> Result<PartyAnswer, DirectoryError> {
        Err(down())
    }
    async fn party(&self, _: TicketId) -> Result<Option<PartyRecord>, DirectoryError> {
        Err(down())
    }
    async fn leave_party(&self, _: TicketId, _: u64) -> Result<bool, DirectoryError> {
        Err(down())
    }
    async fn enqueue_party(
        &self,
        _: TicketId,
        _: u64,
        _: Vec<QueueEntry>,
    ) -> Result<Option<EnqueueOutcome>, DirectoryError> {
        Err(down())
    }
    async fn room(&self, _: u64) -> Result<Option<RoomRecord>, DirectoryError> {
        Err(down())
    }
    async fn room_by_code(&self, _: &str) -> Result<Option<RoomRecord>, DirectoryError> {
        Err(down())
    }
    async fn save_room_image(
        &self,
        _: u64,
        _: &str,
        _: u64,
        _: &[u8],
        _: &[u64],
        _: Duration,
    ) -> Result<bool, DirectoryError> {
        Err(down())
    }
    async fn room_image(&self, _: u64) -> Result<Option<Vec<u8>>, DirectoryError> {
        Err(down())
    }
    async fn append_frames(
        &self,
        _: &str,
        _: &[tickroom_gateway::FrameAppend],
        _: Duration,
    ) -> Result<Vec<tickroom_gateway::FramesStored>, DirectoryError> {
        Err(down())
    }
    async fn room_frames(&self, _: u64) -> Result<Vec<Vec<u8>>, DirectoryError> {
        Err(down())
    }
    async fn session_room(&self, _: u64) -> Result<Option<u64>, DirectoryError> {
        Err(down())
    }
    async fn close_room_at(&self, _: u64, _: u64) -> Result<bool, DirectoryError> {
        Err(down())
    }
    async fn room_joined(&self, _: u64, _: &str) -> Result<Option<u64>, DirectoryError> {
        Err(down())
    }
    async fn reassign_room(
        &self,
        _: u64,
        _: u64,
        _: &str,
    ) -> Result<ReassignOutcome, DirectoryError> {
        Err(down())
    }
    async fn rooms_on_server(&self, _: &str) -> Result<Vec<u64>, DirectoryError> {
        Err(down())
    }
    async fn store_match_result(&self, _: MatchRecord, _: Duration) -> Result<(), DirectoryError> {
        Err(down())
    }
    async fn match_result(&self, _: u64) -> Result<Option<MatchRecord>, DirectoryError> {
        Err(down())
    }
}

fn down() -> DirectoryError {
    DirectoryError::Unavailable("test store is down".into())
}

#[tokio::test]
async fn a_failing_directory_answers_503_with_retry_after() {
    let t = start(config(), Arc::new(DownDirectory), false).await;
    let (_, token) = t.login("p").await;
    let r = t
        .post_json("/v1/matchmaking", json!({"mode": "trio"}), Some(&token))
        .await;
    assert_eq!(r.headers()["retry-after"], "1");
    expect_error(r, StatusCode::SERVICE_UNAVAILABLE, ErrorCode::ServerBusy).await;
    let r = t.poll_raw(&token, &TicketId(5).to_string(), 0).await;
    expect_error(r, StatusCode::SERVICE_UNAVAILABLE, ErrorCode::ServerBusy).await;
    assert_eq!(t.gw.match_pass().await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn room_route_reports_a_dead_owner_and_its_players_queue_again() {
    scenarios::dead_owner_is_reported_and_players_queue_again(InMemoryDirectory::new()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queue_metadata_is_signed_into_the_join_ticket() {
    scenarios::metadata_is_signed_into_the_join_ticket(InMemoryDirectory::new()).await;
}

#[tokio::test]
async fn every_kind_of_bad_metadata_is_refused() {
    scenarios::bad_metadata_is_refused(InMemoryDirectory::new()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rated_players_are_matched_by_the_rules_and_told_why() {
    scenarios::rated_players_are_matched_by_the_rules_and_told_why(InMemoryDirectory::new()).await;
}

#[tokio::test]
async fn bad_properties_are_refused() {
    scenarios::bad_properties_are_refused(InMemoryDirectory::new()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn private_rooms_are_joined_by_code() {
    scenarios::private_rooms_are_joined_by_code(InMemoryDirectory::new()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_owners_room_with_an_image_moves_to_a_live_server() {
    scenarios::a_dead_owners_room_with_an_image_moves_to_a_live_server(InMemoryDirectory::new())
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spectators_watch_by_room_id_or_code() {
    scenarios::spectators_watch_by_room_id_or_code(InMemoryDirectory::new()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parties_are_matched_whole() {
    scenarios::parties_are_matched_whole(InMemoryDirectory::new()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_seats_are_filled_before_new_rooms() {
    scenarios::open_seats_are_filled_before_new_rooms(InMemoryDirectory::new()).await;
}
