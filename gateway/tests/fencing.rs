//! A stale room owner is fenced off (issue 13): once a room was reassigned to another server
//! (its epoch moved on), the old owner's close at the end of its copy of the match must not
//! delete the new owner's room record; the new owner's close at its epoch does. Failover
//! images are fenced the same way: only the owner at the room's epoch writes them.

mod common;

use std::sync::Arc;
use std::time::Duration;

use tickroom_gateway::{
    Directory, EnqueueOutcome, InMemoryDirectory, MatchRequest, QueueEntry, ReassignOutcome,
    RedisDirectory, TicketId,
};

use common::redis_server::RedisServer;
use common::server;

const NOW: u64 = 1_700_000_000_000;
const TTL: Duration = Duration::from_secs(60);
/// How long a placed player may take to join, in ms.
const JOIN_WINDOW_MS: u64 = 20_000;

fn request() -> MatchRequest {
    MatchRequest {
        mode: "m".into(),
        players: 2,
        min_players: 2,
        wait_ms: 0,
        abandon_after_ms: 30_000,
        now_ms: NOW,
        max_matches: 1,
        join_window_ms: JOIN_WINDOW_MS,
        seed: 5,
        rules: None,
        teams: 1,
    }
}

async fn stale_owner_cannot_close_a_reassigned_room(dir: Arc<dyn Directory>) {
    dir.register_server(server("s1", 0), TTL).await.unwrap();
    for player in 0..2u64 {
        let entry = QueueEntry {
            ticket_id: TicketId(u128::from(player) + 1),
            player_id: player,
            mode: "m".into(),
            enqueued_ms: NOW,
            metadata: Default::default(),
            properties: Default::default(),
            party: None,
        };
        assert_eq!(dir.enqueue(entry).await, Ok(EnqueueOutcome::Queued));
    }
    let room_id = dir.form_matches(request()).await.unwrap().matches[0].room_id;
    // The owner's failover image, indexed by its sessions (binary bytes kept as they are).
    let image = [0u8, 255, 7, 0, 1];
    assert!(dir
        .save_room_image(room_id, "s1", 1, &image, &[41, 42], TTL)
        .await
        .unwrap());
    assert!(!dir
        .save_room_image(room_id, "s2", 1, b"not the owner", &[43], TTL)
        .await
        .unwrap());
    assert_eq!(
        dir.room_image(room_id).await.unwrap().as_deref(),
        Some(&image[..])
    );
    assert_eq!(dir.session_room(42).await, Ok(Some(room_id)));
    assert_eq!(dir.session_room(43).await, Ok(None));
    dir.register_server(server("s2", 0), TTL).await.unwrap();
    match dir.reassign_room(room_id, 1, "s2").await.unwrap() {
        ReassignOutcome::Reassigned(r) => assert_eq!(r.epoch, 2),
        other => panic!("not reassigned: {other:?}"),
    }
    // s1 (partitioned away while the room moved) can no longer write the room's image; s2,
    // its owner now, can.
    assert!(!dir
        .save_room_image(room_id, "s1", 1, b"stale", &[41], TTL)
        .await
        .unwrap());
    assert_eq!(
        dir.room_image(room_id).await.unwrap().as_deref(),
        Some(&image[..])
    );
    assert!(dir
        .save_room_image(room_id, "s2", 2, b"moved", &[41], TTL)
        .await
        .unwrap());
    assert_eq!(
        dir.room_image(room_id).await.unwrap().as_deref(),
        Some(&b"moved"[..])
    );
    // s1 (partitioned away while the room moved) ends its copy of the match and closes.
    dir.close_room(room_id).await.unwrap();
    let room = dir.room(room_id).await.unwrap();
    assert_eq!(
        room.map(|r| (r.server.server_id, r.epoch)),
        Some(("s2".to_owned(), 2)),
        "the stale owner closed the reassigned room"
    );
    assert!(!dir.close_room_at(room_id, 1).await.unwrap());
    assert!(dir.close_room_at(room_id, 2).await.unwrap());
    assert_eq!(dir.room(room_id).await, Ok(None));
}

#[tokio::test]
async fn in_memory_stale_owner_cannot_close_a_reassigned_room() {
    stale_owner_cannot_close_a_reassigned_room(InMemoryDirectory::new()).await;
}

#[tokio::test]
async fn redis_stale_owner_cannot_close_a_reassigned_room() {
    let redis = RedisServer::start().await;
    let dir = RedisDirectory::connect(&redis.url(), "fence:")
        .await
        .unwrap();
    stale_owner_cannot_close_a_reassigned_room(dir).await;
}
