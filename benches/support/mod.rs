//! A real room core for the benches: the `arena` mode with its players seated on fake
//! connections (`u32`) and started, driven with synthetic time.

use std::time::{Duration, Instant};

use tickroom::game::arena::ArenaInput;
use tickroom::game::modes::Modes;
use tickroom::game::{Arena, StateCodec};
use tickroom::server::room::core::{Effect, RoomCore};
use tickroom::server::room::Seating;
use tickroom::server::Server;

/// A started `arena` room with `players` seated and moving; the second value is the room's
/// clock, advanced one tick interval per `tick`.
pub struct BenchRoom {
    pub room: RoomCore<u32>,
    pub now: Instant,
    pub interval: Duration,
    pub players: u8,
}

impl BenchRoom {
    /// The `arena` mode's room (10 seats) with `players` joined, each holding its stick over.
    pub fn arena(players: u8) -> BenchRoom {
        // Criterion runs millions of ticks: the match must neither time out nor be won.
        let text = tickroom::game::modes::EMBEDDED_MODES_TOML
            .replace("match_duration_s = 600", "match_duration_s = 4000000000")
            .replace("score_limit = 1000", "score_limit = 4000000000");
        let modes = Modes::parse(&text).unwrap();
        let bound = Server::with_sample_games().games().bind(&modes).unwrap();
        let rooms = &bound["arena"];
        let t0 = Instant::now();
        let mut room = RoomCore::new(42, rooms.mode.clone(), (rooms.factory)(42), t0);
        for p in 0..players {
            let seating = Seating {
                session_id: u64::from(p) + 1,
                player_id: u64::from(p) + 100,
                resume_counter: 0,
                next_seq: 1,
                metadata: Default::default(),
                spectator: false,
            };
            room.join(t0, seating, u32::from(p)).unwrap();
            let mut input = Vec::new();
            Arena::encode_input(
                &ArenaInput {
                    move_x: (p as i8 * 13) - 60,
                    move_y: 40,
                    buttons: 0,
                },
                &mut input,
            );
            room.input(u64::from(p) + 1, 1, 0, &[input.into()], t0);
        }
        let interval = rooms.mode.tick_interval();
        assert!(!room.is_ended());
        let mut bench = BenchRoom {
            room,
            now: t0,
            interval,
            players,
        };
        bench.drain();
        // Warm up, and let every player acknowledge a recent snapshot so ticks send deltas.
        for _ in 0..30 {
            bench.tick();
        }
        bench
    }

    /// One tick at the next scheduled time; every player acknowledges it (deltas from now on).
    /// Returns the bytes queued for the players.
    pub fn tick(&mut self) -> usize {
        self.now += self.interval;
        self.room.tick(self.now);
        debug_assert!(!self.room.is_ended());
        let bytes = self.drain();
        let tick = self.room.current_tick();
        for p in 0..self.players {
            self.room.input(u64::from(p) + 1, 1, tick, &[], self.now);
        }
        bytes
    }

    /// Drops the queued effects, returning the bytes they carried.
    pub fn drain(&mut self) -> usize {
        self.room
            .drain_effects()
            .map(|e| match e {
                Effect::Send { bytes, .. } => bytes.len(),
                _ => 0,
            })
            .sum()
    }
}
