//! State synchronisation for any `StateGame`: the room applies inputs, steps the game each
//! tick and sends every connected player its view, delta-encoded against the last view that
//! player acknowledged (or full when there is none). With per-player views each player's
//! deltas are computed against that player's own history.

use std::collections::VecDeque;

use serde_bytes::ByteBuf;
use tickroom_game::{
    Ctx, GameError, Message, Player, Recipient, Refusal, Setup, StateGame, Viewer,
};
use tickroom_protocol::{ServerMsg, SyncKind};

use super::sim::{Delivery, Outbound, Sim};

/// How many past views a room keeps as delta baselines (about 1 s at 30 Hz).
pub const SNAPSHOT_HISTORY_TICKS: usize = 32;

/// What the room knows of each seat's inputs and acknowledgements.
#[derive(Debug, Clone, Copy, Default)]
struct SlotState {
    /// Newest input number applied.
    last_input_tick: u64,
    /// Newest snapshot tick the client has (delta baseline); 0 = none.
    acked_tick: u64,
}

/// The state-sync part of a room running game `G`.
pub struct StateSim<G: StateGame> {
    game: G,
    ctx: Ctx<G::ServerMessage>,
    tick: u64,
    dt_s: f32,
    slots: Vec<SlotState>,
    /// Shared views by tick, or (with per-player views) one history per slot.
    history: Vec<VecDeque<(u64, G::View)>>,
    payload: Vec<u8>,
    /// Snapshots go out on ticks that are multiples of this (1 = every tick).
    snapshot_divisor: u32,
}

impl<G: StateGame> StateSim<G> {
    /// A fresh match from `setup`.
    pub fn new(setup: &Setup<'_, G::Params>) -> StateSim<G> {
        StateSim::with_game(G::create(setup), setup)
    }

    /// A room around an existing game (a restore).
    pub fn with_game(game: G, setup: &Setup<'_, G::Params>) -> StateSim<G> {
        let players = usize::from(setup.max_players);
        let histories = if G::PER_PLAYER_VIEWS { players } else { 1 };
        StateSim {
            game,
            ctx: Ctx::default(),
            tick: 0,
            dt_s: 1.0 / f32::from(setup.tick_rate_hz.max(1)),
            slots: vec![SlotState::default(); players],
            history: (0..histories)
                .map(|_| VecDeque::with_capacity(SNAPSHOT_HISTORY_TICKS + 1))
                .collect(),
            snapshot_divisor: 1,
            payload: Vec::with_capacity(256),
        }
    }

    /// The game, for tests.
    #[cfg(test)]
    pub fn game(&self) -> &G {
        &self.game
    }

    /// Encodes `view` for `slot` against its acknowledged baseline and queues it.
    fn send_view(&mut self, slot: usize, view: &G::View, out: &mut Outbound) {
        let state = self.slots[slot];
        self.payload.clear();
        let history = &self.history[if G::PER_PLAYER_VIEWS { slot } else { 0 }];
        let baseline = history
            .iter()
            .find(|(t, _)| *t == state.acked_tick && state.acked_tick != 0);
        let baseline_tick = match baseline {
            Some((t, base)) => {
                G::encode_delta(base, view, &mut self.payload);
                *t
            }
            None => {
                G::encode_full(view, &mut self.payload);
                0
            }
        };
        let msg = ServerMsg::Snapshot {
            tick: self.tick,
            ack_seq: state.last_input_tick,
            baseline: baseline_tick,
            payload: std::mem::take(&mut self.payload),
        };
        out.send(Recipient::Slot(slot as u8), &msg, Delivery::Snapshot);
        if let ServerMsg::Snapshot { payload, .. } = msg {
            self.payload = payload;
        }
    }

    fn remember(&mut self, index: usize, view: G::View) {
        let history = &mut self.history[index];
        history.push_back((self.tick, view));
        if history.len() > SNAPSHOT_HISTORY_TICKS {
            history.pop_front();
        }
    }
}

impl<G: StateGame> Sim for StateSim<G> {
    fn sync(&self) -> SyncKind {
        SyncKind::State
    }

    fn current_tick(&self) -> u64 {
        self.tick
    }

    fn join_attempt(&self, player: &Player<'_>) -> Result<(), Refusal> {
        self.game.join_attempt(player)
    }

    fn join(&mut self, player: &Player<'_>, out: &mut Outbound) {
        if let Some(s) = self.slots.get_mut(usize::from(player.slot)) {
            *s = SlotState::default();
        }
        self.ctx.set_tick(self.tick);
        self.game.on_join(player, &mut self.ctx);
        out.take_ctx(&mut self.ctx);
    }

    fn leave(&mut self, slot: u8, out: &mut Outbound) {
        self.game.on_leave(slot, &mut self.ctx);
        out.take_ctx(&mut self.ctx);
    }

    fn drop_connection(&mut self, slot: u8, out: &mut Outbound) {
        self.game.on_drop(slot, &mut self.ctx);
        out.take_ctx(&mut self.ctx);
    }

    fn new_session(&mut self, slot: u8) {
        if let Some(s) = self.slots.get_mut(usize::from(slot)) {
            s.last_input_tick = 0;
            s.acked_tick = 0;
        }
    }

    fn resume(&mut self, slot: u8, _last_frame: u64, out: &mut Outbound) {
        // No acknowledged baseline on the new connection: the next snapshot is full.
        if let Some(s) = self.slots.get_mut(usize::from(slot)) {
            s.acked_tick = 0;
        }
        self.game.on_resume(slot, &mut self.ctx);
        out.take_ctx(&mut self.ctx);
    }

    /// Applies the inputs the room has not seen yet (redundant copies are skipped) and records
    /// the client's snapshot acknowledgement.
    fn input(
        &mut self,
        slot: u8,
        tick: u64,
        ack_tick: u64,
        inputs: &[ByteBuf],
        _out: &mut Outbound,
    ) {
        let Some(state) = self.slots.get_mut(usize::from(slot)) else {
            return;
        };
        let Some(first) = tick.checked_sub(inputs.len().saturating_sub(1) as u64) else {
            return;
        };
        for (i, bytes) in inputs.iter().enumerate() {
            let t = first + i as u64;
            if t <= state.last_input_tick {
                continue;
            }
            // A malformed input is skipped; the tick still counts as received.
            if let Ok(input) = G::decode_input(bytes) {
                self.game.apply_input(slot, &input);
            }
            state.last_input_tick = t;
        }
        // A client cannot acknowledge a snapshot that was never sent.
        if ack_tick <= self.tick {
            state.acked_tick = state.acked_tick.max(ack_tick);
        }
    }

    fn frame_input(&mut self, _slot: u8, _frame: u64, _input: Vec<u8>, out: &mut Outbound) {
        out.counters.dropped_inputs += 1;
    }

    fn checksum(&mut self, _slot: u8, _frame: u64, _hash: u64, _out: &mut Outbound) {}

    fn message(&mut self, slot: u8, payload: &[u8], out: &mut Outbound) -> Result<(), GameError> {
        let msg = <G::ClientMessage as Message>::decode(payload)?;
        self.ctx.set_tick(self.tick);
        self.game.on_message(slot, msg, &mut self.ctx);
        out.take_ctx(&mut self.ctx);
        Ok(())
    }

    /// Steps the game and sends each connected player its view.
    fn tick(&mut self, connected: &[bool], out: &mut Outbound) {
        self.tick += 1;
        self.ctx.set_tick(self.tick);
        self.game.step(self.dt_s, &mut self.ctx);
        out.take_ctx(&mut self.ctx);
        if !self.tick.is_multiple_of(u64::from(self.snapshot_divisor)) {
            return;
        }
        if G::PER_PLAYER_VIEWS {
            for (slot, _) in connected.iter().enumerate().filter(|(_, c)| **c) {
                let view = self.game.view(Viewer::Slot(slot as u8));
                self.send_view(slot, &view, out);
                self.remember(slot, view);
            }
        } else {
            let view = self.game.view(Viewer::Everyone);
            for (slot, _) in connected.iter().enumerate().filter(|(_, c)| **c) {
                self.send_view(slot, &view, out);
            }
            self.remember(0, view);
        }
    }

    fn set_snapshot_divisor(&mut self, divisor: u32) {
        self.snapshot_divisor = divisor.max(1);
    }

    fn time_up(&mut self, out: &mut Outbound) {
        self.game.on_time_up(&mut self.ctx);
        out.take_ctx(&mut self.ctx);
    }

    fn save(&self, out: &mut Vec<u8>) -> u16 {
        self.game.save(out);
        G::SAVE_VERSION
    }
}
