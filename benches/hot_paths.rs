//! Criterion benches of the hot paths, with the design's targets:
//! snapshot message encode+decode (10 players) ≤ 1 µs, replay-window check ≤ 20 ns,
//! ticket verify ≤ 2 µs, arena step (10 players) ≤ 20 µs, a state-sync room tick for 10
//! players (step + per-player delta + encode) ≤ 20 µs, lockstep frame assembly + encode for
//! 8 players ≤ 2 µs. It also prints the state-sync bytes per player per second at 30 Hz.

mod support;

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};
use serde_bytes::ByteBuf;
use tickroom::game::arena::ArenaInput;
use tickroom::game::{Arena, StateCodec, StateGame};
use tickroom::protocol::codec::{decode_server, encode_server};
use tickroom::protocol::{KeyRing, ReplayWindow, ServerMsg, TicketClaims};

fn ten_player_arena() -> Arena {
    let mut game = Arena::new(10, 42);
    for slot in 0..10 {
        game.add_player(slot);
        game.apply_input(
            slot,
            &ArenaInput {
                move_x: (slot as i8 * 13) - 60,
                move_y: 40,
                buttons: 0,
            },
        );
    }
    for _ in 0..30 {
        game.step(1.0 / 30.0);
    }
    game
}

fn snapshot_codec(c: &mut Criterion) {
    let game = ten_player_arena();
    let mut payload = Vec::new();
    Arena::encode_full(&game.snapshot(), &mut payload);
    let msg = ServerMsg::Snapshot {
        tick: 1000,
        ack_seq: 999,
        baseline: 0,
        payload,
    };
    let mut buf = Vec::with_capacity(512);
    c.bench_function("codec/snapshot_10_players_encode_decode", |b| {
        b.iter(|| {
            encode_server(black_box(&msg), &mut buf).unwrap();
            black_box(decode_server(&buf).unwrap())
        })
    });
}

fn replay_window(c: &mut Criterion) {
    let mut w = ReplayWindow::default();
    for seq in 1..=1000 {
        w.accept(seq).unwrap();
    }
    let mut seq = 1000u64;
    c.bench_function("replay/check_and_commit", |b| {
        b.iter(|| {
            seq += 1;
            let ok = w.check(black_box(seq)).is_ok();
            w.commit(seq);
            ok
        })
    });
    c.bench_function("replay/check_duplicate", |b| {
        b.iter(|| w.check(black_box(seq - 3)).is_err())
    });
}

fn ticket_verify(c: &mut Criterion) {
    let ring = KeyRing::single(1, [5; 32]);
    let now = 1_700_000_000_000;
    let token = ring.sign_ticket(&TicketClaims {
        player_id: 42,
        room_id: 7,
        mode: "arena".into(),
        server_id: "room-1".into(),
        issued_ms: now,
        expires_ms: now + 10_000,
        nonce: [3; 16],
        metadata: Default::default(),
        spectator: false,
    });
    c.bench_function("token/ticket_verify", |b| {
        b.iter(|| ring.verify_ticket(black_box(&token), now, 0).unwrap())
    });
}

fn arena(c: &mut Criterion) {
    let mut game = ten_player_arena();
    c.bench_function("game/arena_step_10_players", |b| {
        b.iter(|| game.step(black_box(1.0 / 30.0)))
    });

    // What a state-sync room does each tick: step, snapshot, a delta per player, encode.
    let mut game = ten_player_arena();
    let mut history = vec![game.snapshot()];
    let mut payload = Vec::new();
    let mut buf = Vec::new();
    let mut tick = 0u64;
    c.bench_function("room/state_tick_10_players", |b| {
        b.iter(|| {
            game.step(1.0 / 30.0);
            tick += 1;
            let current = game.snapshot();
            let base = &history[history.len().saturating_sub(3)];
            for _ in 0..10 {
                payload.clear();
                Arena::encode_delta(base, &current, &mut payload);
                let msg = ServerMsg::Snapshot {
                    tick,
                    ack_seq: tick,
                    baseline: tick - 1,
                    payload: std::mem::take(&mut payload),
                };
                encode_server(&msg, &mut buf).unwrap();
                black_box(bytes::Bytes::copy_from_slice(&buf));
                if let ServerMsg::Snapshot { payload: p, .. } = msg {
                    payload = p;
                }
            }
            history.push(current);
            if history.len() > 32 {
                history.remove(0);
            }
        })
    });

    // Bandwidth: average snapshot message size × 30 Hz, players moving.
    let mut game = ten_player_arena();
    let mut prev = game.snapshot();
    let mut total = 0usize;
    let ticks = 300;
    for t in 0..ticks {
        game.step(1.0 / 30.0);
        let cur = game.snapshot();
        payload.clear();
        Arena::encode_delta(&prev, &cur, &mut payload);
        let msg = ServerMsg::Snapshot {
            tick: t,
            ack_seq: t,
            baseline: t.saturating_sub(1),
            payload: payload.clone(),
        };
        encode_server(&msg, &mut buf).unwrap();
        total += buf.len();
        prev = cur;
    }
    println!(
        "state sync downstream at 30 Hz, 10 moving players: {:.0} bytes/player/s (delta snapshots, payload only, no transport overhead)",
        total as f64 / ticks as f64 * 30.0
    );
}

/// The real room core (generic over the game) ticking a 10-player `arena` room: grace check,
/// step, one view, 10 per-player deltas, encode, effects, plus each player's acknowledgement.
fn room_core(c: &mut Criterion) {
    let mut room = support::BenchRoom::arena(10);
    c.bench_function("room/core_state_tick_10_players", |b| {
        b.iter(|| black_box(room.tick()))
    });
    // A chat line through the core: the connection's message reaches the game, which
    // broadcasts it to all 10 players.
    let mut room = support::BenchRoom::arena(10);
    let mut seq = 1u64;
    c.bench_function("room/custom_message_broadcast_10_players", |b| {
        b.iter(|| {
            seq += 1;
            room.room.message(1, seq, black_box(b"gg, well played"));
            black_box(room.drain())
        })
    });
    // The failover image a worker takes of the room every checkpoint interval (1 s by
    // default): the game's save, the seats, the sessions, encoded.
    let room = support::BenchRoom::arena(10);
    let state = |session_id: u64| {
        Some(tickroom::server::room::core::SessionState {
            key_id: 1,
            nonce: [session_id as u8; 16],
            resume_counter: 0,
            highest_seq: 1_000,
        })
    };
    let image = room.room.image(room.now, state).encode();
    println!("failover image of a 10-player arena: {} bytes", image.len());
    c.bench_function("room/failover_image_10_players", |b| {
        b.iter(|| black_box(room.room.image(room.now, state).encode()))
    });
    // The same line on the wire: ClientMsg::Message encode + decode.
    let msg = tickroom::protocol::ClientMsg::Message {
        seq: 7,
        payload: b"gg, well played".to_vec(),
    };
    let mut buf = Vec::new();
    c.bench_function("codec/custom_message_encode_decode", |b| {
        b.iter(|| {
            tickroom::protocol::codec::encode_client(black_box(&msg), &mut buf).unwrap();
            black_box(tickroom::protocol::codec::decode_client(&buf).unwrap())
        })
    });
}

fn lockstep_frame(c: &mut Criterion) {
    let inputs: Vec<Vec<u8>> = (0..8).map(|i| vec![i as u8, 100, 0]).collect();
    let mut buf = Vec::new();
    let mut n = 0u64;
    c.bench_function("room/lockstep_frame_assembly_encode_8_players", |b| {
        b.iter(|| {
            n += 1;
            let frame = ServerMsg::Frame {
                n,
                inputs: inputs.iter().map(|i| ByteBuf::from(i.clone())).collect(),
            };
            encode_server(&frame, &mut buf).unwrap();
            black_box(bytes::Bytes::copy_from_slice(&buf))
        })
    });
}

criterion_group!(
    benches,
    snapshot_codec,
    replay_window,
    ticket_verify,
    arena,
    room_core,
    lockstep_frame
);
criterion_main!(benches);
