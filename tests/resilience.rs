//! Reconnection, anti-replay and overload protection: resume over either transport (and
//! across), lockstep catch-up that keeps simulations bit-exact, grace-period expiry, a replay
//! attack of captured traffic, rate limits, per-IP connection limits and admission control.

mod common;

use std::time::Duration;

use common::{next_matching, within, TestServer};
use tickroom::game::{ArenaLockstep, LockstepGame};
use tickroom::protocol::codec;
use tickroom::protocol::connect::{RawConn, TransportKind};
use tickroom::protocol::session::SessionEvent;
use tickroom::protocol::{
    protocol_hash, token, ClientMsg, ErrorCode, Secret, ServerMsg, Welcome, PROTOCOL_VERSION,
};
use tickroom::server::RoomServerConfig;

async fn joined(s: &mut tickroom::protocol::connect::Session) -> Welcome {
    next_matching(s, "welcome", |e| match e {
        SessionEvent::Joined(w) => Some(w.clone()),
        _ => None,
    })
    .await
}

/// Sends inputs until a snapshot acknowledges input `at_least`; returns the ack.
async fn acked(s: &mut tickroom::protocol::connect::Session, at_least: u64) -> u64 {
    within("acked input", async {
        loop {
            match s.events.recv().await.expect("session ended") {
                SessionEvent::Snapshot { ack_seq, .. } if ack_seq >= at_least => return ack_seq,
                SessionEvent::Snapshot { .. } => {
                    s.handle.input(vec![10, 10, 0]).await;
                }
                SessionEvent::Closed { code } => panic!("closed: {code:?}"),
                _ => {}
            }
        }
    })
    .await
}

async fn reconnected(s: &mut tickroom::protocol::connect::Session) -> Welcome {
    next_matching(s, "reconnected", |e| match e {
        SessionEvent::Reconnected(w) => Some(w.clone()),
        _ => None,
    })
    .await
}

/// A dropped connection resumes on its own, over the same transport and then over the other
/// one; inputs sent after each resume are acknowledged (never refused as "already received").
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn state_sync_resumes_over_both_transports_and_across() {
    let server = TestServer::quick().await;
    for (first, second) in [
        (TransportKind::Ws, TransportKind::Quic),
        (TransportKind::Quic, TransportKind::Ws),
    ] {
        let room = 100 + first as u64;
        let mut s = server.join(first, 1, room, "arena").await;
        let w = joined(&mut s).await;
        let a = acked(&mut s, 5).await;
        s.handle.drop_connection().await;
        let r = reconnected(&mut s).await;
        assert_eq!(r.session_id, w.session_id);
        assert_eq!(
            r.resume_counter,
            w.resume_counter + 1,
            "the resume key rotates"
        );
        assert!(r.next_seq > 5, "the server's window continued");
        let b = acked(&mut s, a + 5).await;
        assert!(b >= a + 5);
        s.handle.switch_transport(second).await;
        s.handle.drop_connection().await;
        let r2 = reconnected(&mut s).await;
        assert_eq!(r2.resume_counter, r.resume_counter + 1);
        acked(&mut s, b + 5).await;
        s.handle.leave().await;
    }
    let m = &server.server().shared.metrics;
    assert_eq!(m.resumes.value(), 4);
    assert_eq!(
        m.replayed_messages.value(),
        0,
        "no input was refused as a replay after a resume"
    );
}

/// Two lockstep players run the deterministic sim; one drops and resumes mid-match. The frames
/// it missed arrive from the frame log, and both compute the same checksum afterwards.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lockstep_catch_up_keeps_simulations_identical() {
    let server = TestServer::quick().await;
    let mut a = server
        .join(TransportKind::Ws, 1, 200, "duel-lockstep")
        .await;
    let mut b = server
        .join(TransportKind::Quic, 2, 200, "duel-lockstep")
        .await;
    let wa = joined(&mut a).await;
    joined(&mut b).await;
    let mut sim_a = ArenaLockstep::new(2, wa.room_id);
    let mut sim_b = ArenaLockstep::new(2, wa.room_id);
    const TARGET: u64 = 60;
    let mut checks = [None, None];
    let mut dropped = false;
    within("both sims at the target frame", async {
        let mut last = [0u64; 2];
        while checks.iter().any(Option::is_none) {
            tokio::select! {
                e = a.events.recv() => if let Some(SessionEvent::Frame { n, inputs }) = e {
                    assert_eq!(n, last[0] + 1, "player A: frames arrive without gaps");
                    last[0] = n;
                    step(&mut sim_a, &inputs);
                    a.handle.frame_input(n + 2, vec![(n % 7) as u8, 3, 0]).await;
                    if n == TARGET { checks[0] = Some(sim_a.checksum()); }
                },
                e = b.events.recv() => match e {
                    Some(SessionEvent::Frame { n, inputs }) => {
                        assert_eq!(n, last[1] + 1, "player B: frames arrive without gaps, across the resume");
                        last[1] = n;
                        step(&mut sim_b, &inputs);
                        b.handle.frame_input(n + 2, vec![5, (n % 5) as u8, 0]).await;
                        if n == 20 && !dropped {
                            dropped = true;
                            b.handle.drop_connection().await;
                        }
                        if n == TARGET { checks[1] = Some(sim_b.checksum()); }
                    }
                    Some(SessionEvent::Closed { code }) => panic!("B closed: {code:?}"),
                    _ => {}
                },
            }
        }
    })
    .await;
    assert!(dropped);
    assert_eq!(checks[0], checks[1], "bit-exact after catch-up");
    assert_eq!(server.server().shared.metrics.resumes.value(), 1);
}

fn step(sim: &mut ArenaLockstep, inputs: &[Vec<u8>]) {
    let decoded: Vec<_> = inputs
        .iter()
        .map(|i| ArenaLockstep::decode_input(i).unwrap_or_default())
        .collect();
    sim.step(sim.frame() + 1, &decoded);
}

/// Joins over a raw connection; returns the connection and the welcome, plus every message
/// sent (encoded) so tests can replay them.
async fn raw_join(
    server: &TestServer,
    transport: TransportKind,
    player: u64,
    room: u64,
    mode: &str,
    capture: &mut Vec<Vec<u8>>,
) -> (RawConn, Welcome) {
    let (conn, w, _) = raw_join_keyed(server, transport, player, room, mode, capture).await;
    (conn, w)
}

/// `raw_join`, also returning the join secret (the player's resume keys derive from it).
async fn raw_join_keyed(
    server: &TestServer,
    transport: TransportKind,
    player: u64,
    room: u64,
    mode: &str,
    capture: &mut Vec<Vec<u8>>,
) -> (RawConn, Welcome, Secret) {
    let ticket = server.ticket(player, room, mode);
    let join_secret = ticket.1;
    let mut conn = raw_handshake(server, transport, ticket, capture).await;
    let w = welcome(&mut conn).await;
    (conn, w, join_secret)
}

/// Opens a raw connection, sends Hello with `ticket` and answers the challenge; the reply
/// (Welcome or a refusal) is left for the caller to read.
async fn raw_handshake(
    server: &TestServer,
    transport: TransportKind,
    (ticket, secret): (String, Secret),
    capture: &mut Vec<Vec<u8>>,
) -> RawConn {
    let mut conn = server.raw(transport).await;
    let hello = ClientMsg::Hello {
        protocol_version: PROTOCOL_VERSION,
        protocol_hash: protocol_hash(),
        ticket,
    };
    send(&mut conn, &hello, capture).await;
    let nonce = challenge(&mut conn).await;
    let mac = token::challenge_mac(&secret, &nonce);
    send(&mut conn, &ClientMsg::ChallengeResponse { mac }, capture).await;
    conn
}

async fn send(conn: &mut RawConn, msg: &ClientMsg, capture: &mut Vec<Vec<u8>>) {
    let mut buf = Vec::new();
    codec::encode_client(msg, &mut buf).unwrap();
    conn.send_bytes(&buf, false).await.unwrap();
    capture.push(buf);
}

async fn challenge(conn: &mut RawConn) -> Secret {
    within("challenge", async {
        match conn.recv().await.unwrap() {
            Some(ServerMsg::Challenge { nonce }) => nonce,
            Some(other) => panic!("expected a challenge, got {other:?}"),
            None => panic!("closed before the challenge"),
        }
    })
    .await
}

async fn welcome(conn: &mut RawConn) -> Welcome {
    within("welcome", async {
        loop {
            match conn.recv().await.unwrap() {
                Some(ServerMsg::Welcome(w)) => return w,
                Some(ServerMsg::Error { code, detail }) => panic!("refused: {code:?} {detail}"),
                Some(_) => continue,
                None => panic!("closed before the welcome"),
            }
        }
    })
    .await
}

/// Reads until an Error or Kicked arrives (or the transport closes); returns its code.
async fn refusal(conn: &mut RawConn) -> Option<ErrorCode> {
    within("refusal", async {
        loop {
            match conn.recv().await {
                Ok(Some(ServerMsg::Error { code, .. })) | Ok(Some(ServerMsg::Kicked { code })) => {
                    return Some(code)
                }
                Ok(Some(_)) => continue,
                _ => return conn.close_code(),
            }
        }
    })
    .await
}

/// Counts Pongs that arrive until a fresh ping (seq `probe`) is answered.
async fn pongs_until_probe(conn: &mut RawConn, probe_seq: u64) -> usize {
    let probe_time = 9_999_999;
    let msg = ClientMsg::Ping {
        seq: probe_seq,
        client_time_us: probe_time,
    };
    send(conn, &msg, &mut Vec::new()).await;
    within("probe pong", async {
        let mut others = 0;
        loop {
            match conn.recv().await.unwrap() {
                Some(ServerMsg::Pong { client_time_us, .. }) if client_time_us == probe_time => {
                    return others
                }
                Some(ServerMsg::Pong { .. }) => others += 1,
                Some(_) => continue,
                None => panic!("closed"),
            }
        }
    })
    .await
}

/// Captures a session's real traffic and replays it — in the same connection, on a new
/// connection, and after a resume: 10,000 replayed messages, none accepted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_attack_of_captured_traffic_is_refused() {
    let server = TestServer::quick_with(RoomServerConfig {
        workers: 2,
        max_consecutive_replays: u32::MAX,
        session_message_rate_per_s: 1_000_000,
        session_message_burst: 1_000_000,
        ..common::test_config()
    })
    .await;
    let mut handshake = Vec::new();
    let (mut conn, w, join_secret) =
        raw_join_keyed(&server, TransportKind::Ws, 1, 300, "arena", &mut handshake).await;
    // Real play traffic: inputs and pings (a replayed ping would be answered: easy to see).
    let mut play = Vec::new();
    for seq in 1..=50u64 {
        let msg = if seq % 5 == 0 {
            ClientMsg::Ping {
                seq,
                client_time_us: seq,
            }
        } else {
            ClientMsg::Input {
                seq,
                tick: seq,
                ack_tick: 0,
                inputs: vec![serde_bytes::ByteBuf::from(vec![1, 1, 0])],
            }
        };
        send(&mut conn, &msg, &mut play).await;
    }
    assert_eq!(
        pongs_until_probe(&mut conn, 51).await,
        10,
        "the ten real pings were answered"
    );
    let metrics = &server.server().shared.metrics;
    let before = metrics.replayed_messages.value();

    // 1. Within the same connection: 6,000 replays.
    for round in 0..120 {
        for bytes in &play {
            conn.send_bytes(bytes, round % 2 == 0).await.unwrap();
        }
    }
    assert_eq!(
        pongs_until_probe(&mut conn, 52).await,
        0,
        "no replayed ping was answered"
    );

    // 2. On a new connection: the captured handshake cannot join (fresh challenge), and
    //    captured play traffic is refused before any handshake.
    let mut fresh = server.raw(TransportKind::Quic).await;
    fresh.send_bytes(&handshake[0], false).await.unwrap();
    let nonce = challenge(&mut fresh).await;
    assert_ne!(nonce, [0; 32]);
    fresh.send_bytes(&handshake[1], false).await.unwrap();
    assert_eq!(refusal(&mut fresh).await, Some(ErrorCode::AuthFailed));
    let mut fresh = server.raw(TransportKind::Ws).await;
    fresh.send_bytes(&play[0], false).await.unwrap();
    assert_eq!(
        refusal(&mut fresh).await,
        Some(ErrorCode::UnexpectedMessage)
    );

    // 3. After a legitimate resume on a new connection: the window survived, so the captured
    //    traffic is still refused — 4,000 more replays.
    drop(conn);
    let mut resume_capture = Vec::new();
    let mut conn = server.raw(TransportKind::Quic).await;
    send(
        &mut conn,
        &ClientMsg::Resume {
            protocol_version: PROTOCOL_VERSION,
            protocol_hash: protocol_hash(),
            session_id: w.session_id,
            last_frame: 0,
        },
        &mut resume_capture,
    )
    .await;
    let nonce = challenge(&mut conn).await;
    send(
        &mut conn,
        &ClientMsg::ChallengeResponse {
            mac: token::challenge_mac(
                &token::resume_key(&join_secret, w.session_id, w.resume_counter),
                &nonce,
            ),
        },
        &mut resume_capture,
    )
    .await;
    let resumed = welcome(&mut conn).await;
    assert!(resumed.resumed && resumed.next_seq == 53);
    for _ in 0..80 {
        for bytes in &play {
            // On the stream, so every replay arrives and is counted exactly.
            conn.send_bytes(bytes, false).await.unwrap();
        }
    }
    assert_eq!(pongs_until_probe(&mut conn, 53).await, 0);

    // 4. The captured resume exchange is useless: the secret rotated and the nonce is fresh.
    let mut again = server.raw(TransportKind::Ws).await;
    again.send_bytes(&resume_capture[0], false).await.unwrap();
    challenge(&mut again).await;
    again.send_bytes(&resume_capture[1], false).await.unwrap();
    assert_eq!(refusal(&mut again).await, Some(ErrorCode::AuthFailed));

    let replayed = metrics.replayed_messages.value() - before;
    assert_eq!(
        replayed, 10_000,
        "every replayed message was counted and dropped"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_keeps_replaying_is_disconnected() {
    let server = TestServer::quick().await;
    let mut capture = Vec::new();
    let (mut conn, _) = raw_join(&server, TransportKind::Ws, 1, 400, "arena", &mut capture).await;
    let mut play = Vec::new();
    send(
        &mut conn,
        &ClientMsg::Ping {
            seq: 1,
            client_time_us: 1,
        },
        &mut play,
    )
    .await;
    for _ in 0..100 {
        if conn.send_bytes(&play[0], false).await.is_err() {
            break;
        }
    }
    assert_eq!(refusal(&mut conn).await, Some(ErrorCode::Replay));
}

/// Past the grace period the seat is gone and a resume answers SessionExpired.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resume_after_the_grace_period_is_session_expired() {
    let server = TestServer::quick().await;
    let mut capture = Vec::new();
    let (mut other, _) = raw_join(&server, TransportKind::Ws, 2, 500, "arena", &mut capture).await;
    let (conn, w) = raw_join(&server, TransportKind::Ws, 1, 500, "arena", &mut capture).await;
    drop(conn);
    // Poll (with a deadline) until the 1 s grace has released the seat.
    within("seat released", async {
        let mut tick = tokio::time::interval(Duration::from_millis(50));
        while server.server().shared.sessions.contains_key(&w.session_id) {
            tick.tick().await;
            let _ = other.recv().await;
        }
    })
    .await;
    let mut conn = server.raw(TransportKind::Quic).await;
    send(
        &mut conn,
        &ClientMsg::Resume {
            protocol_version: PROTOCOL_VERSION,
            protocol_hash: protocol_hash(),
            session_id: w.session_id,
            last_frame: 0,
        },
        &mut capture,
    )
    .await;
    assert_eq!(refusal(&mut conn).await, Some(ErrorCode::SessionExpired));
}

/// A flood far above the per-session rate is cut (RateLimited) while the other player in the
/// room keeps receiving snapshots.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_is_cut_without_hurting_the_room() {
    let server = TestServer::quick().await;
    let mut good = server.join(TransportKind::Ws, 1, 600, "arena").await;
    joined(&mut good).await;
    let mut capture = Vec::new();
    let (mut flooder, _) =
        raw_join(&server, TransportKind::Ws, 2, 600, "arena", &mut capture).await;
    for seq in 1..=5_000u64 {
        let msg = ClientMsg::Input {
            seq,
            tick: seq,
            ack_tick: 0,
            inputs: vec![serde_bytes::ByteBuf::from(vec![1, 0, 0])],
        };
        if flooder.send(&msg).await.is_err() {
            break;
        }
    }
    assert_eq!(refusal(&mut flooder).await, Some(ErrorCode::RateLimited));
    assert!(server.server().shared.metrics.rate_limited.value() > 240);
    let a = acked(&mut good, 3).await;
    acked(&mut good, a + 10).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_ip_connection_limit_refuses_extra_connections() {
    let server = TestServer::quick_with(RoomServerConfig {
        workers: 1,
        max_connections_per_ip: 2,
        ..common::test_config()
    })
    .await;
    let mut capture = Vec::new();
    let (_a, _) = raw_join(&server, TransportKind::Ws, 1, 700, "arena", &mut capture).await;
    let (_b, _) = raw_join(&server, TransportKind::Ws, 2, 700, "arena", &mut capture).await;
    let refused = match RawConn::open_ws(&server.running.ws_addr.to_string()).await {
        Err(_) => true,
        Ok(mut c) => matches!(c.recv().await, Ok(None) | Err(_)),
    };
    assert!(refused, "a third connection from the same IP is refused");
    assert!(server.server().shared.metrics.refused_connections.value() >= 1);
}

/// Admission control: past the room limit, or while ticks are over budget, new rooms are
/// refused with ServerBusy; rooms already running keep accepting their players.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overloaded_server_answers_server_busy_for_new_rooms() {
    let server = TestServer::quick_with(RoomServerConfig {
        workers: 1,
        max_rooms: 1,
        ..common::test_config()
    })
    .await;
    let mut capture = Vec::new();
    let (_a, _) = raw_join(&server, TransportKind::Ws, 1, 800, "arena", &mut capture).await;
    let ticket = server.ticket(2, 801, "arena");
    let mut conn = raw_handshake(&server, TransportKind::Ws, ticket, &mut capture).await;
    assert_eq!(refusal(&mut conn).await, Some(ErrorCode::ServerBusy));
    // The running room still seats its players.
    let (_b, w) = raw_join(&server, TransportKind::Ws, 3, 800, "arena", &mut capture).await;
    assert_eq!(w.room_id, 800);

    let server = TestServer::quick().await;
    server.server().shared.admission.set_overloaded(true);
    let ticket = server.ticket(4, 900, "arena");
    let mut conn = raw_handshake(&server, TransportKind::Quic, ticket, &mut capture).await;
    assert_eq!(refusal(&mut conn).await, Some(ErrorCode::ServerBusy));
}

/// Measurement, not a check (timings belong in BENCHMARKS.md): input→ack RTT p99 of 30
/// well-behaved players, alone and while 3 flooders each send 10× the per-session rate
/// (1,200 messages/s), reconnecting with fresh tickets whenever they are cut. Run with
/// `cargo test --release --test resilience -- --ignored --nocapture flood`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore]
async fn measure_flood_impact_on_other_players_rtt() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    let server = Arc::new(TestServer::quick().await);
    let measure = |server: Arc<TestServer>, round: u64| async move {
        let mut tasks = Vec::new();
        for p in 0..30u64 {
            let server = server.clone();
            tasks.push(tokio::spawn(async move {
                let mut s = server
                    .join(
                        TransportKind::Ws,
                        round * 1000 + p,
                        round * 100 + p / 10,
                        "arena",
                    )
                    .await;
                joined(&mut s).await;
                let mut sent: std::collections::HashMap<u64, std::time::Instant> =
                    Default::default();
                let mut rtts = Vec::new();
                let mut n = 0;
                let end = std::time::Instant::now() + Duration::from_secs(5);
                while std::time::Instant::now() < end {
                    if let Some(SessionEvent::Snapshot { ack_seq, .. }) = s.events.recv().await {
                        if let Some(t) = sent.remove(&ack_seq) {
                            rtts.push(t.elapsed());
                        }
                        n += 1;
                        sent.insert(n, std::time::Instant::now());
                        s.handle.input(vec![1, 1, 0]).await;
                    }
                }
                s.handle.leave().await;
                rtts
            }));
        }
        let mut all = Vec::new();
        for t in tasks {
            all.extend(t.await.unwrap());
        }
        all.sort();
        all[all.len() * 99 / 100]
    };
    let quiet = measure(server.clone(), 1).await;
    let stop = Arc::new(AtomicBool::new(false));
    let mut flooders = Vec::new();
    for f in 0..3u64 {
        let server = server.clone();
        let stop = stop.clone();
        flooders.push(tokio::spawn(async move {
            let mut cuts = 0u64;
            let mut k = 0u64;
            while !stop.load(Ordering::Relaxed) {
                k += 1;
                let mut capture = Vec::new();
                let (mut conn, _) = raw_join(
                    &server,
                    TransportKind::Ws,
                    90_000 + f * 1000 + k,
                    9_000 + f,
                    "arena",
                    &mut capture,
                )
                .await;
                let mut tick = tokio::time::interval(Duration::from_micros(833));
                for seq in 1.. {
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    tick.tick().await;
                    let msg = ClientMsg::Ping {
                        seq,
                        client_time_us: 0,
                    };
                    if conn.send(&msg).await.is_err() {
                        cuts += 1;
                        break;
                    }
                }
            }
            cuts
        }));
    }
    let flooded = measure(server.clone(), 2).await;
    stop.store(true, Ordering::Relaxed);
    let mut cuts = 0;
    for f in flooders {
        cuts += f.await.unwrap();
    }
    println!(
        "input→ack p99 of 30 players: quiet {:.1} ms, under 3 × 1,200 msg/s flood {:.1} ms ({:+.0} %); flooders cut {cuts} times; rate-limited {}",
        quiet.as_secs_f64() * 1e3,
        flooded.as_secs_f64() * 1e3,
        (flooded.as_secs_f64() / quiet.as_secs_f64() - 1.0) * 100.0,
        server.server().shared.metrics.rate_limited.value()
    );
}

/// A late joiner in lockstep receives the frame log from frame 1, so its simulation starts
/// from the same state as everyone else's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lockstep_late_joiner_gets_the_frame_log_from_the_start() {
    let server = TestServer::quick().await;
    let mut early = server
        .join(TransportKind::Ws, 1, 950, "arena-lockstep")
        .await;
    joined(&mut early).await;
    next_matching(&mut early, "frame 15", |e| {
        matches!(e, SessionEvent::Frame { n: 15, .. }).then_some(())
    })
    .await;
    let mut late = server
        .join(TransportKind::Quic, 2, 950, "arena-lockstep")
        .await;
    let w = joined(&mut late).await;
    assert!(w.tick > 15, "the room was already at frame {}", w.tick);
    let mut numbers = Vec::new();
    while numbers.len() < 20 {
        let n = next_matching(&mut late, "frame", |e| match e {
            SessionEvent::Frame { n, .. } => Some(*n),
            _ => None,
        })
        .await;
        numbers.push(n);
    }
    assert_eq!(
        numbers,
        (1..=20).collect::<Vec<u64>>(),
        "the log from frame 1, in order"
    );
}

/// The per-session rate limit belongs to the session, not the connection: a client that
/// spent its burst and resumes does not get a fresh one (it used to).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resume_does_not_refill_the_sessions_rate_limit() {
    const BURST: u32 = 30;
    let server = TestServer::quick_with(RoomServerConfig {
        session_message_rate_per_s: 1,
        session_message_burst: BURST,
        // Count refusals; do not cut the connection for them.
        max_rate_limited_per_s: 100_000,
        ..common::test_config()
    })
    .await;
    let mut s = server.join(TransportKind::Ws, 1, 9300, "arena").await;
    joined(&mut s).await;
    let limited = || server.server().shared.metrics.rate_limited.value();
    let mut poll = tokio::time::interval(Duration::from_millis(10));
    // Spend the burst (the session's own pings count too) until messages are refused.
    within("the burst to run out", async {
        while limited() == 0 {
            s.handle.input(vec![1, 1, 0]).await;
            poll.tick().await;
        }
    })
    .await;
    s.handle.drop_connection().await;
    reconnected(&mut s).await;
    let before = limited();
    for _ in 0..BURST {
        s.handle.input(vec![1, 1, 0]).await;
    }
    // With a fresh burst none of these would be refused.
    within("refusals after the resume", async {
        while limited() < before + BURST as u64 / 2 {
            poll.tick().await;
        }
    })
    .await;
}

/// Resumes `session_id` on a fresh connection answering the challenge with `key`; the server's
/// answer: the Welcome, or the code it refused with.
async fn resume_with(
    server: &TestServer,
    session_id: u64,
    key: &Secret,
) -> Result<Welcome, Option<ErrorCode>> {
    let mut conn = server.raw(TransportKind::Ws).await;
    let resume = ClientMsg::Resume {
        protocol_version: PROTOCOL_VERSION,
        protocol_hash: protocol_hash(),
        session_id,
        last_frame: 0,
    };
    send(&mut conn, &resume, &mut Vec::new()).await;
    let nonce = challenge(&mut conn).await;
    let mac = token::challenge_mac(key, &nonce);
    send(
        &mut conn,
        &ClientMsg::ChallengeResponse { mac },
        &mut Vec::new(),
    )
    .await;
    within("the resume's answer", async {
        loop {
            match conn.recv().await {
                Ok(Some(ServerMsg::Welcome(w))) => return Ok(w),
                Ok(Some(ServerMsg::Error { code, .. } | ServerMsg::Kicked { code })) => {
                    return Err(Some(code))
                }
                Ok(Some(_)) => continue,
                _ => return Err(conn.close_code()),
            }
        }
    })
    .await
}

/// An observer who captured everything a plaintext room connection carried, both ways, cannot
/// take the session over: no resume key (nor the join secret it derives from) is anywhere in
/// the capture, every 32 bytes of the server's Welcome tried as the key are refused, and the
/// player resumes afterwards as if nothing happened. (Before, `Welcome` carried the resume
/// secret itself: the observer resumed, kicked the player and locked them out.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_captured_plaintext_session_cannot_be_resumed_by_its_observer() {
    let server = TestServer::quick().await;
    let mut sent = Vec::new();
    let (conn, w, join_secret) =
        raw_join_keyed(&server, TransportKind::Ws, 1, 900, "arena", &mut sent).await;
    drop(conn);
    let mut welcome_bytes = Vec::new();
    codec::encode_server(&ServerMsg::Welcome(w.clone()), &mut welcome_bytes).unwrap();
    let key = token::resume_key(&join_secret, w.session_id, w.resume_counter);
    let capture: Vec<&[u8]> = sent
        .iter()
        .map(Vec::as_slice)
        .chain([welcome_bytes.as_slice()])
        .collect();
    for bytes in &capture {
        for window in bytes.windows(32) {
            assert_ne!(window, key, "the resume key travelled");
            assert_ne!(window, join_secret, "the join secret travelled");
        }
    }
    // Live guesses: the transcript, the server's Welcome first (where the secret used to be).
    let transcript: Vec<u8> = capture
        .iter()
        .rev()
        .flat_map(|b| b.iter().copied())
        .collect();
    let mut refused = 0;
    for window in transcript.windows(32).take(48) {
        let guess: Secret = window.try_into().unwrap();
        match resume_with(&server, w.session_id, &guess).await {
            Err(Some(ErrorCode::AuthFailed)) => refused += 1,
            other => panic!("a guess from the capture was answered with {other:?}"),
        }
    }
    assert_eq!(refused, 48);
    // The player is neither kicked nor locked out.
    let resumed = resume_with(&server, w.session_id, &key).await.unwrap();
    assert!(resumed.resumed);
    assert_eq!(resumed.session_id, w.session_id);
    assert_eq!(resumed.resume_counter, w.resume_counter + 1);
}

/// Only inputs may arrive as QUIC datagrams: a `Leave` (or any ordered message) sent
/// unreliably closes the connection with `BadMessage` instead of being acted on out of order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_inputs_may_come_as_quic_datagrams() {
    let server = TestServer::quick().await;
    let mut capture = Vec::new();
    let (mut conn, _) = raw_join(&server, TransportKind::Quic, 1, 950, "arena", &mut capture).await;
    let input = ClientMsg::Input {
        seq: 1,
        tick: 1,
        ack_tick: 0,
        inputs: vec![serde_bytes::ByteBuf::from(vec![1, 0, 0])],
    };
    let mut bytes = Vec::new();
    codec::encode_client(&input, &mut bytes).unwrap();
    conn.send_bytes(&bytes, true).await.unwrap();
    bytes.clear();
    codec::encode_client(&ClientMsg::Leave { seq: 2 }, &mut bytes).unwrap();
    conn.send_bytes(&bytes, true).await.unwrap();
    assert_eq!(refusal(&mut conn).await, Some(ErrorCode::BadMessage));
}
