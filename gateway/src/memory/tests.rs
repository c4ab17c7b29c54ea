//! Unit tests of `InMemoryDirectory`: formation rules, placement, cancellation, sweeping, match
//! results and concurrent formation.

use super::*;

const NOW: u64 = 1_700_000_000_000;
const TTL: Duration = Duration::from_secs(60);
/// How long a placed player may take to join, in ms.
const JOIN_WINDOW_MS: u64 = 20_000;

fn server(id: &str, load: u32) -> RoomServerInfo {
    RoomServerInfo {
        server_id: id.into(),
        quic_addr: format!("{id}:1"),
        ws_addr: format!("{id}:2"),
        cert_fingerprint: "ff".into(),
        ws_tls: false,
        capacity: 1000,
        load,
        draining: false,
    }
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

fn queue(dir: &InMemoryDirectory, players: std::ops::Range<u64>, at_ms: u64) -> Vec<TicketId> {
    players
        .map(|p| {
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
            assert_eq!(dir.enqueue_now(entry), Ok(EnqueueOutcome::Queued));
            id
        })
        .collect()
}

#[test]
fn full_matches_form_and_the_rest_waits() {
    let dir = InMemoryDirectory::new();
    dir.register_server_now(server("s1", 0), TTL).unwrap();
    queue(&dir, 0..7, NOW);
    let f = dir.form_matches_now(&request(3, 3, 10_000, NOW));
    assert_eq!(f.matches.len(), 2);
    assert_eq!(f.still_queued, 1);
    let ids: Vec<u64> = f
        .matches
        .iter()
        .flat_map(|m| m.players.iter().map(|p| p.player_id))
        .collect();
    assert_eq!(ids, vec![0, 1, 2, 3, 4, 5]);
    let room = dir.state.lock().rooms[&f.matches[0].room_id].record.clone();
    assert_eq!(room.players, vec![0, 1, 2]);
    assert_eq!(room.server.server_id, "s1");
}

#[test]
fn min_players_start_only_after_the_wait() {
    let dir = InMemoryDirectory::new();
    dir.register_server_now(server("s1", 0), TTL).unwrap();
    queue(&dir, 0..2, NOW);
    assert!(dir
        .form_matches_now(&request(4, 2, 1000, NOW + 999))
        .matches
        .is_empty());
    let f = dir.form_matches_now(&request(4, 2, 1000, NOW + 1000));
    assert_eq!(f.matches.len(), 1);
    assert_eq!(f.matches[0].players.len(), 2);
}

#[test]
fn no_live_server_leaves_players_queued() {
    let dir = InMemoryDirectory::new();
    queue(&dir, 0..3, NOW);
    let f = dir.form_matches_now(&request(3, 3, 0, NOW));
    assert!(f.matches.is_empty());
    assert_eq!(f.still_queued, 3);
    dir.register_server_now(server("gone", 0), Duration::ZERO)
        .unwrap();
    assert!(dir
        .form_matches_now(&request(3, 3, 0, NOW))
        .matches
        .is_empty());
}

#[test]
fn cancelled_tickets_are_skipped_and_players_queue_once() {
    let dir = InMemoryDirectory::new();
    dir.register_server_now(server("s1", 0), TTL).unwrap();
    let ids = queue(&dir, 0..3, NOW);
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
        dir.enqueue_now(again),
        Ok(EnqueueOutcome::AlreadyQueued(ids[1]))
    );
    assert_eq!(
        dir.state.lock().cancel(ids[1], 999).0,
        CancelOutcome::NotFound
    );
    assert_eq!(
        dir.state.lock().cancel(ids[1], 1).0,
        CancelOutcome::Cancelled
    );
    assert!(dir
        .form_matches_now(&request(3, 3, 0, NOW))
        .matches
        .is_empty());
    queue(&dir, 3..4, NOW);
    let f = dir.form_matches_now(&request(3, 3, 0, NOW));
    let ids: Vec<u64> = f.matches[0].players.iter().map(|p| p.player_id).collect();
    assert_eq!(ids, vec![0, 2, 3]);
    assert_eq!(
        dir.state
            .lock()
            .cancel(f.matches[0].players[0].ticket_id, 0)
            .0,
        CancelOutcome::AlreadyMatched
    );
}

#[test]
fn placement_load_spreads_matches_over_servers() {
    let dir = InMemoryDirectory::new();
    dir.register_server_now(server("a", 0), TTL).unwrap();
    dir.register_server_now(server("b", 0), TTL).unwrap();
    queue(&dir, 0..40, NOW);
    let f = dir.form_matches_now(&request(4, 4, 0, NOW));
    let on_a = f.matches.iter().filter(|m| m.server_id == "a").count();
    assert_eq!(f.matches.len(), 10);
    assert!((4..=6).contains(&on_a), "{on_a} of 10 on a");
}

#[test]
fn concurrent_formation_never_places_a_player_twice() {
    const PLAYERS: u64 = 4_000;
    let dir = InMemoryDirectory::new();
    for id in ["s1", "s2"] {
        let big = RoomServerInfo {
            capacity: 1_000_000,
            ..server(id, 0)
        };
        dir.register_server_now(big, TTL).unwrap();
    }
    let done = std::sync::atomic::AtomicBool::new(false);
    let formed: Vec<FormedMatch> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..3)
            .map(|w| {
                let (dir, done) = (&dir, &done);
                scope.spawn(move || {
                    let mut mine = Vec::new();
                    loop {
                        let finished = done.load(std::sync::atomic::Ordering::Acquire);
                        let mut r = request(5, 5, u64::MAX, NOW);
                        r.seed = w;
                        mine.extend(dir.form_matches_now(&r).matches);
                        if finished {
                            return mine;
                        }
                    }
                })
            })
            .collect();
        queue(&dir, 0..PLAYERS, NOW);
        done.store(true, std::sync::atomic::Ordering::Release);
        workers
            .into_iter()
            .flat_map(|w| w.join().unwrap())
            .collect()
    });
    let mut seen = std::collections::HashSet::new();
    for m in &formed {
        assert_eq!(m.players.len(), 5);
        for p in &m.players {
            assert!(
                seen.insert(p.player_id),
                "player {} placed twice",
                p.player_id
            );
        }
    }
    assert_eq!(seen.len() as u64, PLAYERS);
    let rooms: std::collections::HashSet<u64> = formed.iter().map(|m| m.room_id).collect();
    assert_eq!(rooms.len() as u64, PLAYERS / 5);
}

#[test]
fn full_servers_get_no_more_rooms() {
    let dir = InMemoryDirectory::new();
    dir.register_server_now(server("s1", 994), TTL).unwrap();
    queue(&dir, 0..9, NOW);
    // 994 + 3 + 3 = 1000 seats: the third match finds no server with headroom.
    let f = dir.form_matches_now(&request(3, 3, 0, NOW));
    assert_eq!(f.matches.len(), 2);
    assert_eq!(f.still_queued, 3);
}

#[test]
fn sweep_drops_abandoned_queued_tickets() {
    let dir = InMemoryDirectory::new();
    queue(&dir, 0..2, NOW);
    dir.state
        .lock()
        .tickets
        .get_mut(&TicketId(1000))
        .unwrap()
        .last_seen_ms = NOW + 40_000;
    let f = dir.form_matches_now(&request(3, 3, 0, NOW + 35_000));
    assert_eq!(f.still_queued, 1);
    assert!(dir.record(TicketId(1001), None).is_none());
    assert!(dir.record(TicketId(1000), None).is_some());
}

#[tokio::test]
async fn reassign_and_close_are_fenced_by_the_epoch() {
    let dir = InMemoryDirectory::new();
    dir.register_server_now(server("s1", 0), TTL).unwrap();
    queue(&dir, 0..3, NOW);
    let room_id = dir.form_matches_now(&request(3, 3, 0, NOW)).matches[0].room_id;
    assert_eq!(dir.room(room_id).await.unwrap().unwrap().epoch, 1);
    dir.register_server_now(server("s2", 0), TTL).unwrap();
    let moved = match dir.reassign_room(room_id, 1, "s2").await.unwrap() {
        ReassignOutcome::Reassigned(record) => record,
        other => panic!("not reassigned: {other:?}"),
    };
    assert_eq!((moved.epoch, moved.server.server_id.as_str()), (2, "s2"));
    assert_eq!(
        dir.reassign_room(room_id, 1, "s1").await.unwrap(),
        ReassignOutcome::StaleEpoch { current: 2 }
    );
    assert_eq!(
        dir.reassign_room(room_id, 2, "nobody").await.unwrap(),
        ReassignOutcome::ServerNotLive
    );
    assert_eq!(
        dir.reassign_room(room_id + 1, 2, "s1").await.unwrap(),
        ReassignOutcome::NotFound
    );
    assert!(dir.rooms_on_server("s1").await.unwrap().is_empty());
    assert_eq!(dir.rooms_on_server("s2").await.unwrap(), vec![room_id]);
    match dir.record(TicketId(1000), None).unwrap().status {
        TicketStatus::Matched(a) => assert_eq!(a.server.server_id, "s2"),
        TicketStatus::Queued => panic!("not matched"),
    }
    let status = dir.room_status(room_id).await.unwrap().unwrap();
    assert!(status.owner_alive);
    dir.deregister_server("s2").await.unwrap();
    assert!(!dir.room_status(room_id).await.unwrap().unwrap().owner_alive);
    assert!(!dir.close_room_at(room_id, 1).await.unwrap());
    assert!(dir.close_room_at(room_id, 2).await.unwrap());
    assert_eq!(dir.room(room_id).await.unwrap(), None);
}

#[test]
fn a_matched_player_may_queue_again_once_the_join_window_is_over() {
    let dir = InMemoryDirectory::new();
    dir.register_server_now(server("s1", 0), TTL).unwrap();
    queue(&dir, 0..3, NOW);
    let f = dir.form_matches_now(&request(3, 3, 0, NOW));
    let again = |ticket: u128, at_ms: u64| QueueEntry {
        ticket_id: TicketId(ticket),
        player_id: 0,
        mode: "m".into(),
        enqueued_ms: at_ms,
        metadata: Default::default(),
        properties: Default::default(),
        party: None,
    };
    assert_eq!(
        dir.enqueue_now(again(7, NOW + 5)),
        Ok(EnqueueOutcome::MatchPending {
            room_id: f.matches[0].room_id,
            retry_after_ms: JOIN_WINDOW_MS - 5,
        })
    );
    assert_eq!(
        dir.enqueue_now(again(7, NOW + JOIN_WINDOW_MS)),
        Ok(EnqueueOutcome::Queued)
    );
}

#[test]
fn unjoined_rooms_on_a_reporting_server_are_swept_after_their_join_window() {
    let dir = InMemoryDirectory::new();
    dir.register_server_now(server("s1", 0), TTL).unwrap();
    dir.state.lock().join_reporters.insert("s1".into());
    queue(&dir, 0..6, NOW);
    let f = dir.form_matches_now(&request(3, 3, 0, NOW));
    let (joined, unjoined) = (f.matches[0].room_id, f.matches[1].room_id);
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    assert_eq!(rt.block_on(dir.room_joined(joined, "s1")), Ok(Some(1)));
    dir.form_matches_now(&request(3, 3, 0, NOW + JOIN_WINDOW_MS));
    assert!(
        dir.state.lock().rooms.contains_key(&unjoined),
        "swept at the window's end"
    );
    dir.form_matches_now(&request(3, 3, 0, NOW + JOIN_WINDOW_MS + SWEEP_INTERVAL_MS));
    let state = dir.state.lock();
    assert!(!state.rooms.contains_key(&unjoined));
    assert!(state.rooms.contains_key(&joined));
    // The unjoined room's players are forgotten with it; the joined room's are kept.
    assert!(!state.player_rooms.contains_key(&3));
    assert_eq!(state.player_rooms[&0], vec![joined]);
}

#[test]
fn queue_metadata_reaches_the_assignment() {
    let dir = InMemoryDirectory::new();
    dir.register_server_now(server("s1", 0), TTL).unwrap();
    let mut metadata = PlayerMetadata::default();
    metadata
        .0
        .insert("name".into(), tickroom_game::MetaValue::Str("ann".into()));
    let entry = QueueEntry {
        ticket_id: TicketId(1),
        player_id: 1,
        mode: "m".into(),
        enqueued_ms: NOW,
        metadata: metadata.clone(),
        properties: Default::default(),
        party: None,
    };
    dir.enqueue_now(entry).unwrap();
    queue(&dir, 2..4, NOW);
    dir.form_matches_now(&request(3, 3, 0, NOW));
    let assignment = |id| match dir.record(id, None).unwrap().status {
        TicketStatus::Matched(a) => a,
        TicketStatus::Queued => panic!("not matched"),
    };
    assert_eq!(assignment(TicketId(1)).metadata, metadata);
    assert_eq!(
        assignment(TicketId(1002)).metadata,
        PlayerMetadata::default()
    );
}

fn result(room_id: u64) -> MatchRecord {
    MatchRecord {
        room_id,
        mode: "m".into(),
        players: vec![crate::MatchPlayer {
            player_id: 1,
            slot: 0,
        }],
        result: vec![1, 2, 3],
        ended_ms: NOW,
    }
}

#[test]
fn expired_results_are_hidden_then_swept() {
    let mut state = State::default();
    let t0 = Instant::now();
    let ttl = Duration::from_millis(10);
    state.store_result(result(1), ttl, t0).unwrap();
    state.store_result(result(2), TTL, t0).unwrap();
    assert_eq!(state.result(1, t0 + ttl / 2), Some(result(1)));
    assert_eq!(state.result(1, t0 + ttl), None);
    assert_eq!(state.results.len(), 2, "not swept before the interval");
    let later = t0 + Duration::from_millis(SWEEP_INTERVAL_MS);
    state.store_result(result(3), TTL, later).unwrap();
    let mut kept: Vec<u64> = state.results.keys().copied().collect();
    kept.sort_unstable();
    assert_eq!(kept, vec![2, 3]);
}

#[test]
fn a_full_result_table_refuses_until_records_expire() {
    let mut state = State::default();
    let t0 = Instant::now();
    let ttl = Duration::from_millis(10);
    for room_id in 0..MAX_MATCH_RESULTS as u64 {
        state.store_result(result(room_id), ttl, t0).unwrap();
    }
    let extra = MAX_MATCH_RESULTS as u64;
    assert_eq!(
        state.store_result(result(extra), ttl, t0),
        Err(DirectoryError::Full("match results"))
    );
    // Replacing a stored room's result needs no new slot.
    state.store_result(result(0), ttl, t0).unwrap();
    // Once they expire the table makes room at once, without waiting for the sweep interval.
    state.store_result(result(extra), TTL, t0 + ttl).unwrap();
    assert_eq!(state.results.len(), 1);
}

#[test]
fn zero_ttl_removes_and_long_ttls_are_capped() {
    let mut state = State::default();
    let t0 = Instant::now();
    state.store_result(result(1), TTL, t0).unwrap();
    state.store_result(result(1), Duration::ZERO, t0).unwrap();
    assert_eq!(state.result(1, t0), None);
    state.store_result(result(2), Duration::MAX, t0).unwrap();
    assert_eq!(state.result(2, t0 + MAX_MATCH_RESULT_TTL), None);
    assert!(state.result(2, t0 + MAX_MATCH_RESULT_TTL / 2).is_some());
}

/// A party is queued all or none: when one member's ticket id is already taken, the
/// directory refuses the whole party and queues nobody (not even the members before it).
#[tokio::test]
async fn a_party_whose_ticket_collides_queues_nobody() {
    let dir = InMemoryDirectory::new();
    let party_id = TicketId(77);
    let party = PartyRecord {
        party_id,
        code: "ABCDEFGH".into(),
        leader: 1,
        members: vec![1],
        tickets: Vec::new(),
    };
    assert!(matches!(
        dir.create_party(party).await,
        Ok(PartyAnswer::In(_))
    ));
    assert!(matches!(
        dir.join_party("ABCDEFGH", 2).await,
        Ok(PartyAnswer::In(_))
    ));
    // Player 3 already holds ticket 500.
    queue_one(&dir, 3, TicketId(500));
    let entry = |player: u64, ticket: u128| QueueEntry {
        ticket_id: TicketId(ticket),
        player_id: player,
        mode: "m".into(),
        enqueued_ms: NOW,
        metadata: Default::default(),
        properties: Default::default(),
        party: Some(party_id),
    };
    let outcome = dir
        .enqueue_party(party_id, 1, vec![entry(1, 400), entry(2, 500)])
        .await;
    assert!(outcome.is_err(), "{outcome:?}");
    assert!(
        dir.ticket(TicketId(400)).await.unwrap().is_none(),
        "the leader was queued"
    );
    assert_eq!(dir.state.lock().queued.get("m").copied(), Some(1));
}

fn queue_one(dir: &InMemoryDirectory, player: u64, ticket: TicketId) {
    let entry = QueueEntry {
        ticket_id: ticket,
        player_id: player,
        mode: "m".into(),
        enqueued_ms: NOW,
        metadata: Default::default(),
        properties: Default::default(),
        party: None,
    };
    assert_eq!(dir.enqueue_now(entry), Ok(EnqueueOutcome::Queued));
}
