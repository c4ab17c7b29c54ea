//! Behaviour scenarios shared by every `Directory` implementation's tests.

use std::sync::Arc;

use reqwest::StatusCode;
use serde_json::{json, Value};
use tickroom_game::sdk::{MAX_METADATA_ENTRIES, MAX_METADATA_KEY_BYTES, MAX_METADATA_VALUE_BYTES};
use tickroom_game::{MetaValue, PlayerMetadata};
use tickroom_gateway::http::{CreateRoomResponse, MatchedResponse, PollResponse, RoomResponse};
use tickroom_gateway::{now_ms, Directory};
use tickroom_protocol::api::EnqueueRequest;
use tickroom_protocol::connect::{ConnectError, GatewayClient};
use tickroom_protocol::ErrorCode;

use super::{config, expect_error, keys, server, start};

const TTL: std::time::Duration = std::time::Duration::from_secs(60);

/// Three players (`tag-0`..`tag-2`) queued for `trio` and matched: their (token, ticket) and
/// their room.
async fn trio(t: &super::TestGateway, tag: &str) -> (Vec<(String, String)>, u64) {
    let mut players = Vec::new();
    for i in 0..3 {
        let (_, token) = t.login(&format!("{tag}-{i}")).await;
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
    (players, room_id)
}

/// Three players are matched on `room-a`; `GET /v1/rooms/{id}` shows it alive to them (404
/// to others); `room-a` dies, the route says so, and the same players queue again (no 409)
/// and land on `room-b`.
pub async fn dead_owner_is_reported_and_players_queue_again(dir: Arc<dyn Directory>) {
    dir.register_server(server("room-a", 0), TTL).await.unwrap();
    let t = start(config(), dir.clone(), true).await;
    let (players, room_id) = trio(&t, "p").await;
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
        quic_addr: "127.0.0.1:4000".into(),
        ws_addr: "127.0.0.1:5000".into(),
        cert_fingerprint: "fp-room-a".into(),
        ws_tls: false,
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

/// Metadata given at queue time comes back in each player's verified join ticket: one player
/// queues through `GatewayClient::queue_with_metadata`, one with raw JSON, and one through
/// `GatewayClient::queue`, which sends none.
pub async fn metadata_is_signed_into_the_join_ticket(dir: Arc<dyn Directory>) {
    dir.register_server(server("room-a", 0), TTL).await.unwrap();
    let t = start(config(), dir, true).await;
    let client = GatewayClient::new(&t.base);
    let ann = metadata(&[
        ("name", MetaValue::Str("ann".into())),
        ("rating", MetaValue::Int(1500)),
    ]);
    let bob = metadata(&[
        ("name", MetaValue::Str("bob".into())),
        ("loadout", MetaValue::Int(-3)),
    ]);
    let (_, ann_token) = t.login("ann").await;
    let ann_ticket = client
        .queue_with_metadata(&ann_token, "trio", &ann)
        .await
        .expect("queue with metadata");
    let (_, bob_token) = t.login("bob").await;
    let body = json!({"mode": "trio", "metadata": {"name": "bob", "loadout": -3}});
    let r = t.post_json("/v1/matchmaking", body, Some(&bob_token)).await;
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    let bob_ticket = r.json::<Value>().await.unwrap()["ticket_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (_, cy_token) = t.login("cy").await;
    let cy_ticket = client.queue(&cy_token, "trio").await.expect("queue");

    let expected = [
        (ann_token, ann_ticket, ann),
        (bob_token, bob_ticket, bob),
        (cy_token, cy_ticket, PlayerMetadata::default()),
    ];
    for (token, ticket, want) in expected {
        let PollResponse::Matched(m) = t.poll_until_matched(&token, &ticket).await else {
            panic!("not matched");
        };
        let verified = keys()
            .verify_ticket(&m.join_ticket, now_ms(), 0)
            .expect("ticket verifies");
        assert_eq!(verified.claims().metadata, want);
    }
}

/// Every kind of metadata that is not an object of strings and whole numbers within
/// `PlayerMetadata::check` is a 400 `bad_request` naming the problem, and queues nothing.
pub async fn bad_metadata_is_refused(dir: Arc<dyn Directory>) {
    let t = start(config(), dir, false).await;
    let (_, token) = t.login("picky").await;
    let value_kind = "a metadata value: a string or a whole number";
    let too_many: serde_json::Map<String, Value> = (0..=MAX_METADATA_ENTRIES)
        .map(|i| (format!("k{i}"), json!(i)))
        .collect();
    let long_key = "k".repeat(MAX_METADATA_KEY_BYTES + 1);
    let cases = [
        (json!({"x": 1.5}), value_kind),
        (json!({"x": 1e3}), value_kind),
        (json!({"x": true}), value_kind),
        (json!({"x": null}), value_kind),
        (json!({"x": ["a"]}), value_kind),
        (json!({"x": {"nested": 1}}), value_kind),
        (json!({"x": u64::MAX}), "signed 64-bit"),
        (json!(["name", "ann"]), "an object whose values"),
        (json!("ann"), "an object whose values"),
        (Value::Object(too_many), "too many metadata entries"),
        (json!({ long_key: 1 }), "key is empty or too long"),
        (json!({"": 1}), "key is empty or too long"),
        (
            json!({"name": "n".repeat(MAX_METADATA_VALUE_BYTES + 1)}),
            "value is too long",
        ),
    ];
    for (metadata, needle) in cases {
        let body = json!({"mode": "trio", "metadata": metadata});
        let r = t.post_json("/v1/matchmaking", body, Some(&token)).await;
        let error = expect_error(r, StatusCode::BAD_REQUEST, ErrorCode::BadRequest).await;
        assert!(
            error.message.contains("metadata") && error.message.contains(needle),
            "{metadata}: {}",
            error.message
        );
    }
    // A repeated key cannot be written with `json!`.
    let twice = r#"{"mode":"trio","metadata":{"name":"a","name":"b"}}"#;
    let r = t
        .http
        .post(t.url("/v1/matchmaking"))
        .bearer_auth(&token)
        .header("content-type", "application/json")
        .body(twice)
        .send()
        .await
        .unwrap();
    let error = expect_error(r, StatusCode::BAD_REQUEST, ErrorCode::BadRequest).await;
    assert!(error.message.contains("appears twice"), "{}", error.message);
    // Nothing was queued: the player's first good request is accepted, not a conflict.
    t.enqueue(&token, "trio").await;
}

fn metadata(entries: &[(&str, MetaValue)]) -> PlayerMetadata {
    PlayerMetadata(
        entries
            .iter()
            .map(|(key, value)| ((*key).to_owned(), value.clone()))
            .collect(),
    )
}

/// A rated mode through the HTTP API: players far apart in rating, or of other versions or
/// regions, are not matched together; close ones are, and each is told why (the window, the
/// spread, the region).
pub async fn rated_players_are_matched_by_the_rules_and_told_why(dir: Arc<dyn Directory>) {
    dir.register_server(server("room-a", 0), TTL).await.unwrap();
    let t = start(config(), dir, true).await;
    let client = GatewayClient::new(&t.base);
    let queue = |tag: &'static str, rating: i64, region: &'static str, version: &'static str| {
        let t = &t;
        let client = &client;
        async move {
            let (_, token) = t.login(tag).await;
            let body = EnqueueRequest {
                mode: "rated".into(),
                metadata: PlayerMetadata::default(),
                properties: metadata(&[
                    ("rating", MetaValue::Int(rating)),
                    ("region", MetaValue::Str(region.into())),
                    ("version", MetaValue::Str(version.into())),
                ]),
                party_id: None,
            };
            let ticket = client.enqueue(&token, &body).await.expect("queue rated");
            (token, ticket)
        }
    };
    // In queue order: the first three have no partner the rules allow; the last two pair up
    // with the second and the first.
    let far = queue("far", 2000, "eu", "1.2").await;
    let us = queue("us", 1500, "us", "1.2").await;
    let newer = queue("newer", 1500, "eu", "1.3").await;
    let ann = queue("ann", 1510, "eu", "1.2").await;
    let bob = queue("bob", 1540, "eu", "1.2").await;
    for (token, ticket) in [&ann, &bob] {
        let PollResponse::Matched(m) = t.poll_until_matched(token, ticket).await else {
            panic!("not matched");
        };
        let grouping = m.grouping.expect("a rated match says why");
        assert_eq!(grouping.window, Some(50));
        assert_eq!(grouping.spread, Some(30));
        assert_eq!(grouping.region.as_deref(), Some("eu"));
    }
    for (token, ticket) in [&far, &us, &newer] {
        let r = t.poll_raw(token, ticket, 0).await;
        assert_eq!(r.status(), StatusCode::OK);
        let answer: PollResponse = r.json().await.unwrap();
        assert!(matches!(answer, PollResponse::Queued { .. }), "{answer:?}");
    }
}

/// Properties a mode does not take, missing or mistyped ones, and any at all for a mode
/// without rules: each a 400 `bad_request` naming the property, and nothing queued.
pub async fn bad_properties_are_refused(dir: Arc<dyn Directory>) {
    let t = start(config(), dir, false).await;
    let (_, token) = t.login("careless").await;
    let cases = [
        (
            "rated",
            json!({"rating": 1, "region": "eu", "version": "1", "map": "dust"}),
            "`map` is not one",
        ),
        (
            "rated",
            json!({"rating": 1, "region": "eu"}),
            "`version` is required",
        ),
        (
            "rated",
            json!({"rating": "high", "region": "eu", "version": "1"}),
            "`rating` must be a whole number",
        ),
        (
            "rated",
            json!({"rating": 1, "region": 7, "version": "1"}),
            "`region` must be text",
        ),
        (
            "rated",
            json!({"rating": 1, "region": "eu", "version": "1", "latency.us": "slow"}),
            "`latency.us` must be a whole number",
        ),
        ("trio", json!({"rating": 1}), "`rating` is not one"),
        (
            "rated",
            json!({"rating": 1.5, "region": "eu", "version": "1"}),
            "a string or a whole number",
        ),
        (
            "rated",
            json!({"rating": 1, "region": "e".repeat(MAX_METADATA_VALUE_BYTES + 1), "version": "1"}),
            "too long",
        ),
    ];
    for (mode, properties, needle) in cases {
        let body = json!({"mode": mode, "properties": properties});
        let r = t.post_json("/v1/matchmaking", body, Some(&token)).await;
        let error = expect_error(r, StatusCode::BAD_REQUEST, ErrorCode::BadRequest).await;
        assert!(
            error.message.contains(needle),
            "{properties}: {}",
            error.message
        );
    }
    // Nothing was queued: the same player queues now.
    let body =
        json!({"mode": "rated", "properties": {"rating": 1, "region": "eu", "version": "1"}});
    let r = t.post_json("/v1/matchmaking", body, Some(&token)).await;
    assert_eq!(r.status(), StatusCode::ACCEPTED);
}

/// A private room through the HTTP API: created with a code, joined by the creator and two
/// friends (the code typed in lower case works), then full; unknown and malformed codes are
/// 404, a code nobody used dies after the mode's `private_room_ttl_s`, and a player who
/// tries codes one after another is stopped with 429.
pub async fn private_rooms_are_joined_by_code(dir: Arc<dyn Directory>) {
    dir.register_server(server("room-a", 0), TTL).await.unwrap();
    let t = start(config(), dir.clone(), false).await;
    let (_, host) = t.login("host").await;
    let r = t
        .post_json("/v1/rooms", json!({"mode": "trio"}), Some(&host))
        .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let created: CreateRoomResponse = r.json().await.unwrap();
    assert_eq!(created.code.len(), 8);
    assert!(created.expires_ms > now_ms());
    let join = |token: String, code: String| {
        let t = &t;
        async move {
            t.post_json("/v1/rooms/join", json!({ "code": code }), Some(&token))
                .await
        }
    };
    let mut seated = Vec::new();
    for (tag, code) in [
        ("host", created.code.clone()),
        ("ann", created.code.to_lowercase()),
        ("bob", created.code.clone()),
        ("ann", created.code.clone()),
    ] {
        let (player_id, token) = t.login(tag).await;
        let r = join(token, code).await;
        assert_eq!(r.status(), StatusCode::OK, "{tag}");
        let m: MatchedResponse = r.json().await.unwrap();
        assert_eq!((m.room_id, m.mode.as_str()), (created.room_id, "trio"));
        let verified = keys().verify_ticket(&m.join_ticket, now_ms(), 0).unwrap();
        assert_eq!(verified.claims().player_id, player_id);
        seated.push(player_id);
    }
    assert_eq!(seated[1], seated[3], "ann again: the same seat");
    let (_, cy) = t.login("cy").await;
    let r = join(cy.clone(), created.code.clone()).await;
    expect_error(r, StatusCode::CONFLICT, ErrorCode::RoomFull).await;
    let room = dir.room(created.room_id).await.unwrap().unwrap();
    assert_eq!(room.players.len(), 3);
    assert_eq!(room.code.as_deref(), Some(created.code.as_str()));

    for bad in ["ZZZZZZZZ", "short", "I0I0I0I0", "00000000"] {
        let r = join(cy.clone(), bad.into()).await;
        expect_error(r, StatusCode::NOT_FOUND, ErrorCode::NotFound).await;
    }
    // cy has used its burst of lookups (5): the next is refused before the directory is asked.
    let r = join(cy.clone(), created.code.clone()).await;
    expect_error(r, StatusCode::TOO_MANY_REQUESTS, ErrorCode::RateLimited).await;

    // A room nobody joins: its code dies with its join window (the `brief` mode: 1 s).
    let r = t
        .post_json("/v1/rooms", json!({"mode": "brief"}), Some(&host))
        .await;
    let brief: CreateRoomResponse = r.json().await.unwrap();
    let (_, late) = t.login("late").await;
    let deadline = std::time::Instant::now() + super::TEST_DEADLINE;
    let mut poll = tokio::time::interval(std::time::Duration::from_millis(250));
    loop {
        poll.tick().await;
        let r = join(late.clone(), brief.code.clone()).await;
        if r.status() == StatusCode::NOT_FOUND {
            assert!(now_ms() >= brief.expires_ms, "not before its time");
            break;
        }
        assert!(std::time::Instant::now() < deadline, "the code never died");
        // The first lookup seated `late`; later ones answer the same until the code dies.
        assert_eq!(r.status(), StatusCode::OK);
    }
    let r = t
        .post_json("/v1/rooms", json!({"mode": "chess"}), Some(&host))
        .await;
    expect_error(r, StatusCode::BAD_REQUEST, ErrorCode::UnknownMode).await;
}

/// A dead owner's room that has a failover image moves to a live server when one of its
/// players asks where it is: of the two live servers the less loaded takes it under the next
/// epoch, every player is told the same, and the room moves once. Without an image the
/// answer stays "not alive" (the players queue again).
pub async fn a_dead_owners_room_with_an_image_moves_to_a_live_server(dir: Arc<dyn Directory>) {
    dir.register_server(server("room-a", 0), TTL).await.unwrap();
    let t = start(config(), dir.clone(), true).await;
    let (players, room_id) = trio(&t, "moved").await;
    let status = |token: String| {
        let req = t.http.get(t.url(&format!("/v1/rooms/{room_id}")));
        async move {
            let r = req.bearer_auth(token).send().await.expect("request");
            assert_eq!(r.status(), StatusCode::OK);
            r.json::<RoomResponse>().await.unwrap()
        }
    };
    dir.deregister_server("room-a").await.unwrap();
    dir.register_server(server("room-b", 5), TTL).await.unwrap();
    dir.register_server(server("room-c", 1), TTL).await.unwrap();
    // No image: the owner is dead and stays so.
    let answer = status(players[0].0.clone()).await;
    assert_eq!((answer.alive, answer.epoch), (false, 1));
    // With an image, room-c (less loaded) takes it at epoch 2.
    assert!(dir
        .save_room_image(room_id, "room-a", 1, b"image", &[7], TTL)
        .await
        .unwrap());
    let answer = status(players[0].0.clone()).await;
    assert_eq!(
        (answer.alive, answer.server_id.as_str(), answer.epoch),
        (true, "room-c", 2)
    );
    assert_eq!(
        (answer.ws_addr.as_str(), answer.cert_fingerprint.as_str()),
        ("127.0.0.1:5001", "fp-room-c")
    );
    for (token, _) in &players[1..] {
        assert_eq!(
            status(token.clone()).await,
            answer,
            "moved once, the same for all"
        );
    }
}

/// Spectators: a public room is watched by its id, a private one only by its code; the
/// ticket is a spectator's and seats nobody. Bad requests, unknown rooms and a mode without
/// spectators get typed errors.
pub async fn spectators_watch_by_room_id_or_code(dir: Arc<dyn Directory>) {
    dir.register_server(server("room-a", 0), TTL).await.unwrap();
    let t = start(config(), dir.clone(), true).await;
    let (_, room_id) = trio(&t, "p").await;
    let (watcher_id, watcher) = t.login("watcher").await;
    let watch = |body: Value| {
        let (t, watcher) = (&t, watcher.clone());
        async move { t.post_json("/v1/rooms/watch", body, Some(&watcher)).await }
    };
    let spectator_of = |m: &MatchedResponse| {
        let verified = keys().verify_ticket(&m.join_ticket, now_ms(), 0).unwrap();
        let claims = verified.claims();
        assert_eq!(claims.player_id, watcher_id);
        assert!(claims.spectator, "a spectator's ticket");
        claims.room_id
    };
    let r = watch(json!({ "room_id": room_id })).await;
    assert_eq!(r.status(), StatusCode::OK);
    let m: MatchedResponse = r.json().await.unwrap();
    assert_eq!(
        (spectator_of(&m), m.server_id.as_str()),
        (room_id, "room-a")
    );
    let room = dir.room(room_id).await.unwrap().unwrap();
    assert_eq!(room.players.len(), 3, "a spectator takes no seat");
    assert!(!room.players.contains(&watcher_id));
    let r = watch(json!({ "room_id": room_id ^ 1 })).await;
    expect_error(r, StatusCode::NOT_FOUND, ErrorCode::NotFound).await;
    for bad in [json!({}), json!({ "room_id": room_id, "code": "7KQ2M9XD" })] {
        let r = watch(bad).await;
        expect_error(r, StatusCode::BAD_REQUEST, ErrorCode::BadRequest).await;
    }

    // A private room is not watched by its id, only with its code.
    let (_, host) = t.login("host").await;
    let created: CreateRoomResponse = t
        .post_json("/v1/rooms", json!({"mode": "trio"}), Some(&host))
        .await
        .json()
        .await
        .unwrap();
    let r = watch(json!({ "room_id": created.room_id })).await;
    expect_error(r, StatusCode::NOT_FOUND, ErrorCode::NotFound).await;
    let r = watch(json!({ "code": created.code.to_lowercase() })).await;
    assert_eq!(r.status(), StatusCode::OK);
    let m: MatchedResponse = r.json().await.unwrap();
    assert_eq!(spectator_of(&m), created.room_id);
    let room = dir.room(created.room_id).await.unwrap().unwrap();
    assert!(room.players.is_empty(), "watching by code seats nobody");
    let r = watch(json!({ "code": "ZZZZZZZZ" })).await;
    expect_error(r, StatusCode::NOT_FOUND, ErrorCode::NotFound).await;

    // `brief` takes no spectators.
    let brief: CreateRoomResponse = t
        .post_json("/v1/rooms", json!({"mode": "brief"}), Some(&host))
        .await
        .json()
        .await
        .unwrap();
    let r = watch(json!({ "code": brief.code })).await;
    expect_error(r, StatusCode::CONFLICT, ErrorCode::Conflict).await;
}

/// Parties through the HTTP API: one is made and joined by code; its leader queues it into a
/// mode of two teams of two beside two solo players, and the four land in one room with the
/// party on one team. Only the leader queues, a party larger than a team is refused, a member
/// cancelling takes the whole party out of the queue, and the leader leaving ends the party.
pub async fn parties_are_matched_whole(dir: Arc<dyn Directory>) {
    dir.register_server(server("room-a", 0), TTL).await.unwrap();
    let t = start(config(), dir, true).await;
    let client = GatewayClient::new(&t.base);
    let queue = |token: String, mode: &'static str, party: Option<String>| {
        let client = &client;
        async move {
            let body = EnqueueRequest {
                mode: mode.into(),
                metadata: PlayerMetadata::default(),
                properties: PlayerMetadata::default(),
                party_id: party,
            };
            client.enqueue(&token, &body).await
        }
    };
    let (ann, ann_token) = t.login("ann").await;
    let (bob, bob_token) = t.login("bob").await;
    let party = client
        .create_party(&ann_token)
        .await
        .expect("create a party");
    assert_eq!((party.leader, party.members.clone()), (ann, vec![ann]));
    let joined = client
        .join_party(&bob_token, &party.code.to_lowercase())
        .await
        .expect("join by code");
    assert_eq!(joined.members, vec![ann, bob]);
    let (cy, cy_token) = t.login("cy").await;
    let (dan, dan_token) = t.login("dan").await;
    let cy_ticket = queue(cy_token.clone(), "squad", None).await.unwrap();
    // Only the leader queues the party.
    match queue(bob_token.clone(), "squad", Some(party.party_id.clone())).await {
        Err(ConnectError::Gateway { status: 409, .. }) => {}
        other => panic!("a member queued the party: {other:?}"),
    }
    let ann_ticket = queue(ann_token.clone(), "squad", Some(party.party_id.clone()))
        .await
        .expect("queue the party");
    let dan_ticket = queue(dan_token.clone(), "squad", None).await.unwrap();
    let listed = client.party(&bob_token, &party.party_id).await.unwrap();
    let bob_ticket = listed
        .tickets
        .iter()
        .find(|t| t.player_id == bob)
        .expect("bob's ticket is listed")
        .ticket_id
        .clone();
    let mut rooms = Vec::new();
    for (token, ticket) in [
        (&ann_token, &ann_ticket),
        (&bob_token, &bob_ticket),
        (&cy_token, &cy_ticket),
        (&dan_token, &dan_ticket),
    ] {
        let PollResponse::Matched(m) = t.poll_until_matched(token, ticket).await else {
            panic!("not matched");
        };
        let teams = m.grouping.and_then(|g| g.teams).expect("teams are told");
        assert_eq!(teams.len(), 2);
        let team_of = |p: u64| teams.iter().position(|t| t.contains(&p));
        assert_eq!(team_of(ann), team_of(bob), "{teams:?}");
        assert_ne!(team_of(ann), team_of(cy), "{teams:?}");
        assert!(team_of(dan).is_some());
        rooms.push(m.room_id);
    }
    assert!(rooms.iter().all(|r| *r == rooms[0]), "one room: {rooms:?}");

    // A party of three does not fit a team of two.
    let (eve, eve_token) = t.login("eve").await;
    let big = client.create_party(&eve_token).await.unwrap();
    for tag in ["fay", "gus"] {
        let (_, token) = t.login(tag).await;
        client.join_party(&token, &big.code).await.unwrap();
    }
    match queue(eve_token.clone(), "squad", Some(big.party_id.clone())).await {
        Err(ConnectError::Gateway {
            status: 400,
            message,
            ..
        }) => {
            assert!(message.contains("does not fit"), "{message}")
        }
        other => panic!("a party larger than a team: {other:?}"),
    }
    // Queued into `quad` (four, full only): a member cancelling takes all three out.
    let eve_ticket = queue(eve_token.clone(), "quad", Some(big.party_id.clone()))
        .await
        .unwrap();
    let (_, fay_token) = t.login("fay").await;
    let listed = client.party(&fay_token, &big.party_id).await.unwrap();
    assert_eq!(listed.tickets.len(), 3);
    let fay_ticket = &listed.tickets[1].ticket_id;
    client.cancel(&fay_token, fay_ticket).await.expect("cancel");
    let r = t.poll_raw(&eve_token, &eve_ticket, 0).await;
    assert_eq!(
        r.status(),
        StatusCode::NOT_FOUND,
        "the leader's ticket went too"
    );
    // The leader leaving ends the party.
    client.leave_party(&eve_token, &big.party_id).await.unwrap();
    match client.party(&fay_token, &big.party_id).await {
        Err(ConnectError::Gateway { status: 404, .. }) => {}
        other => panic!("the party outlived its leader: {other:?}"),
    }
    let _ = eve;
}

/// Backfill through the HTTP API: a running room reports an open seat; the next player who
/// queues its mode is placed in that room (not a new one), and the seat is then taken: the
/// player after waits for a room of its own. A seat of a room whose server is someone else's
/// is not recorded.
pub async fn open_seats_are_filled_before_new_rooms(dir: Arc<dyn Directory>) {
    dir.register_server(server("room-a", 0), TTL).await.unwrap();
    let t = start(config(), dir.clone(), true).await;
    let mut first = Vec::new();
    for tag in ["a", "b", "c"] {
        let (_, token) = t.login(tag).await;
        let ticket = t.enqueue(&token, "trio").await;
        first.push((token, ticket));
    }
    let mut room_id = 0;
    for (token, ticket) in &first {
        let PollResponse::Matched(m) = t.poll_until_matched(token, ticket).await else {
            panic!("not matched");
        };
        room_id = m.room_id;
    }
    assert!(
        !dir.open_seats(room_id, "room-b", 1).await.unwrap(),
        "not its room"
    );
    assert!(dir.open_seats(room_id, "room-a", 1).await.unwrap());
    let (late, late_token) = t.login("late").await;
    let late_ticket = t.enqueue(&late_token, "trio").await;
    let PollResponse::Matched(m) = t.poll_until_matched(&late_token, &late_ticket).await else {
        panic!("not matched");
    };
    assert_eq!(m.room_id, room_id, "the open seat, not a new room");
    let record = dir.room(room_id).await.unwrap().unwrap();
    assert_eq!(record.players.len(), 4);
    assert!(record.players.contains(&late));
    // The seat is taken: the next player waits in the queue.
    let (_, next_token) = t.login("next").await;
    let next_ticket = t.enqueue(&next_token, "trio").await;
    for _ in 0..3 {
        t.gw.match_pass().await;
    }
    let r = t.poll_raw(&next_token, &next_ticket, 0).await;
    let answer: PollResponse = r.json().await.unwrap();
    assert!(matches!(answer, PollResponse::Queued { .. }), "{answer:?}");
}
