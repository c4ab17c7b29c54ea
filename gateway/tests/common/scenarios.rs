//! Behaviour scenarios shared by every `Directory` implementation's tests.

use std::sync::Arc;

use reqwest::StatusCode;
use tickroom_gateway::http::{PollResponse, RoomResponse};
use tickroom_gateway::Directory;
use tickroom_protocol::ErrorCode;

use super::{config, expect_error, server, start};

const TTL: std::time::Duration = std::time::Duration::from_secs(60);

/// Three players are matched on `room-a`; `GET /v1/rooms/{id}` shows it alive to them (404
/// to others); `room-a` dies, the route says so, and the same players queue again (no 409)
/// and land on `room-b`.
pub async fn dead_owner_is_reported_and_players_queue_again(dir: Arc<dyn Directory>) {
    dir.register_server(server("room-a", 0), TTL).await.unwrap();
    let t = start(config(), dir.clone(), true).await;
    let mut players = Vec::new();
    for i in 0..3 {
        let (_, token) = t.login(&format!("p-{i}")).await;
        let ticket = t.enqueue(&token, "trio").await;
        players.push((token, ticket));
    }
    let mut room_id = 0;
    for (token, ticket) in &players {
        match t.poll_until_matched(token, ticket).await {
            PollResponse::Matched(m) => room_id = m.room_id,
            other => panic!("not matched: {other:?}"),
        }
    }
    let room = |token: String, id: u64| {
        let req = t.http.get(t.url(&format!("/v1/rooms/{id}")));
        async move { req.bearer_auth(token).send().await.expect("request") }
    };
    let r = room(players[0].0.clone(), room_id).await;
    assert_eq!(r.status(), StatusCode::OK);
    let answer: RoomResponse = r.json().await.unwrap();
    let expected = RoomResponse {
        room_id,
        server_id: "room-a".into(),
        alive: true,
        epoch: 1,
    };
    assert_eq!(answer, expected);
    let (_, stranger) = t.login("stranger").await;
    let r = room(stranger, room_id).await;
    expect_error(r, StatusCode::NOT_FOUND, ErrorCode::NotFound).await;
    let r = room(players[0].0.clone(), room_id + 1).await;
    expect_error(r, StatusCode::NOT_FOUND, ErrorCode::NotFound).await;

    // room-a dies; room-b takes over new placements.
    dir.deregister_server("room-a").await.unwrap();
    dir.register_server(server("room-b", 0), TTL).await.unwrap();
    let answer: RoomResponse = room(players[0].0.clone(), room_id)
        .await
        .json()
        .await
        .unwrap();
    assert!(!answer.alive);
    let mut again = Vec::new();
    for (token, _) in &players {
        again.push((token.clone(), t.enqueue(token, "trio").await));
    }
    for (token, ticket) in &again {
        match t.poll_until_matched(token, ticket).await {
            PollResponse::Matched(m) => {
                assert_eq!(m.server_id, "room-b");
                assert_ne!(m.room_id, room_id);
            }
            other => panic!("not matched: {other:?}"),
        }
    }
}
