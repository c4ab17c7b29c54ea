//! Match formation throughput: 10,000 queued players in a 10-player mode become 1,000 placed
//! matches through one atomic `InMemoryDirectory` formation pass (target ≤ 10 ms).

use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use tickroom_gateway::{InMemoryDirectory, MatchRequest, QueueEntry, RoomServerInfo, TicketId};

/// Players queued before the timed pass.
const QUEUED_PLAYERS: u64 = 10_000;
/// Room size of the benchmarked mode.
const ROOM_PLAYERS: usize = 10;
/// Live room servers placement chooses among.
const ROOM_SERVERS: u32 = 8;
/// A fixed clock for the queue, unix ms.
const NOW_MS: u64 = 1_700_000_000_000;
/// How long a placed player may take to join (join ticket TTL + start timeout), in ms.
const JOIN_WINDOW_MS: u64 = 20_000;

fn queued_directory() -> Arc<InMemoryDirectory> {
    let dir = InMemoryDirectory::new();
    for i in 0..ROOM_SERVERS {
        let info = RoomServerInfo {
            server_id: format!("room-{i}"),
            quic_addr: format!("10.0.0.{i}:4433"),
            ws_addr: format!("10.0.0.{i}:8080"),
            cert_fingerprint: "ab".repeat(32),
            ws_tls: false,
            capacity: 100_000,
            load: i * 100,
            draining: false,
        };
        dir.register_server_now(info, Duration::from_secs(3600))
            .expect("register");
    }
    for p in 0..QUEUED_PLAYERS {
        let entry = QueueEntry {
            ticket_id: TicketId((u128::from(p) << 64) | 0xbeef),
            player_id: p + 1,
            mode: "arena".into(),
            enqueued_ms: NOW_MS - 1_000,
            metadata: Default::default(),
            properties: Default::default(),
            party: None,
        };
        dir.enqueue_now(entry).expect("enqueue");
    }
    dir
}

fn request() -> MatchRequest {
    MatchRequest {
        mode: "arena".into(),
        players: ROOM_PLAYERS,
        min_players: ROOM_PLAYERS,
        wait_ms: 10_000,
        abandon_after_ms: 60_000,
        now_ms: NOW_MS,
        max_matches: usize::MAX,
        join_window_ms: JOIN_WINDOW_MS,
        seed: 7,
        rules: None,
        teams: 1,
    }
}

fn formation(c: &mut Criterion) {
    let check = queued_directory().form_matches_now(&request());
    assert_eq!(check.matches.len(), 1_000);
    assert_eq!(check.still_queued, 0);

    let mut group = c.benchmark_group("matchmaking");
    group.sample_size(20);
    group.bench_function("form_1000_matches_from_10000_queued", |b| {
        b.iter_batched(
            queued_directory,
            |dir| {
                let f = dir.form_matches_now(&request());
                black_box(f.matches.len());
                // Return the directory so its drop is not timed.
                (dir, f)
            },
            BatchSize::PerIteration,
        )
    });
    group.finish();
}

criterion_group!(benches, formation);
criterion_main!(benches);
