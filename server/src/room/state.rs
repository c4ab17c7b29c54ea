//! State synchronisation: the room steps the authoritative `arena` game each tick and sends
//! every player a snapshot delta-encoded against the last snapshot that player acknowledged,
//! or a full one when there is no acknowledged baseline.

use std::collections::VecDeque;

use serde_bytes::ByteBuf;
use tickroom_game::arena::ArenaSnapshot;
use tickroom_game::modes::ModeConfig;
use tickroom_game::{Arena, StateCodec, StateGame};
use tickroom_protocol::ServerMsg;

use super::worker::{push_snapshot, Room, Sim};
use super::{RoomId, SessionId};
use crate::Shared;

/// How many past snapshots a room keeps as delta baselines (about 1 s at 30 Hz).
pub const SNAPSHOT_HISTORY_TICKS: usize = 32;

/// The state-sync part of a room.
pub(crate) struct StateSim {
    game: Arena,
    tick: u64,
    dt_s: f32,
    history: VecDeque<(u64, ArenaSnapshot)>,
    payload: Vec<u8>,
}

impl StateSim {
    /// A fresh match; the room id seeds it.
    pub fn new(mode: &ModeConfig, room_id: RoomId) -> StateSim {
        StateSim {
            game: Arena::new(mode.players, room_id),
            tick: 0,
            dt_s: 1.0 / f32::from(mode.tick_rate_hz),
            history: VecDeque::with_capacity(SNAPSHOT_HISTORY_TICKS + 1),
            payload: Vec::with_capacity(256),
        }
    }

    /// Ticks stepped so far.
    pub fn tick(&self) -> u64 {
        self.tick
    }

    /// True once the game says the match is over.
    pub fn is_over(&self) -> bool {
        self.game.is_over()
    }

    /// Puts a player on the field.
    pub fn add_player(&mut self, slot: u8) {
        self.game.add_player(slot);
    }

    /// Takes a player off the field.
    pub fn remove_player(&mut self, slot: u8) {
        self.game.remove_player(slot);
    }

    /// Applies the inputs the room has not seen yet (redundant copies are skipped) and records
    /// the client's snapshot acknowledgement.
    pub fn input(
        room: &mut Room,
        session_id: SessionId,
        tick: u64,
        ack_tick: u64,
        inputs: &[ByteBuf],
    ) {
        let Room { seats, sim, .. } = room;
        let Sim::State(sim) = sim else { return };
        let Some((slot, seat)) = seats.iter_mut().enumerate().find_map(|(i, s)| match s {
            Some(seat) if seat.session_id == session_id => Some((i, seat)),
            _ => None,
        }) else {
            return;
        };
        let Some(first) = tick.checked_sub(inputs.len().saturating_sub(1) as u64) else {
            return;
        };
        for (i, bytes) in inputs.iter().enumerate() {
            let t = first + i as u64;
            if t <= seat.last_input_tick {
                continue;
            }
            // A malformed input is skipped; the tick still counts as received.
            if let Ok(input) = Arena::decode_input(bytes) {
                sim.game.apply_input(slot as u8, &input);
            }
            seat.last_input_tick = t;
        }
        // A client cannot acknowledge a snapshot that was never sent.
        if ack_tick <= sim.tick {
            seat.acked_tick = seat.acked_tick.max(ack_tick);
        }
    }

    /// Steps the game and sends each connected player its snapshot.
    pub fn run_tick(room: &mut Room, shared: &Shared) {
        let Room {
            seats, sim, buf, ..
        } = room;
        let Sim::State(sim) = sim else { return };
        sim.game.step(sim.dt_s);
        sim.tick += 1;
        let current = sim.game.snapshot();
        for seat in seats.iter().flatten() {
            let Some(outbox) = &seat.outbox else { continue };
            sim.payload.clear();
            let baseline = sim
                .history
                .iter()
                .find(|(t, _)| *t == seat.acked_tick && seat.acked_tick != 0);
            let baseline_tick = match baseline {
                Some((t, base)) => {
                    Arena::encode_delta(base, &current, &mut sim.payload);
                    *t
                }
                None => {
                    Arena::encode_full(&current, &mut sim.payload);
                    0
                }
            };
            let msg = ServerMsg::Snapshot {
                tick: sim.tick,
                ack_seq: seat.last_input_tick,
                baseline: baseline_tick,
                payload: std::mem::take(&mut sim.payload),
            };
            if tickroom_protocol::codec::encode_server(&msg, buf).is_ok() {
                push_snapshot(outbox, bytes::Bytes::copy_from_slice(buf), shared);
            }
            if let ServerMsg::Snapshot { payload, .. } = msg {
                sim.payload = payload;
            }
        }
        sim.history.push_back((sim.tick, current));
        if sim.history.len() > SNAPSHOT_HISTORY_TICKS {
            sim.history.pop_front();
        }
    }
}
