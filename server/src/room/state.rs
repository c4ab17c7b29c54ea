//! State synchronisation for any `StateGame`: the room applies inputs, steps the game each
//! tick and sends every connected player its view, delta-encoded against the last view that
//! player acknowledged (or full when there is none). With per-player views each player's
//! deltas are computed against that player's own history.
//!
//! A quiet player is sent nothing: once a player's view and input acknowledgement have not
//! changed for [`QUIET_REPEATS`] snapshots in a row, the room skips that player until either
//! changes. The repeats carry a change over a lost datagram; an unchanged view tells the
//! client nothing new. A lobby of idle players costs the server no snapshots at all.
//!
//! Spectators get full snapshots of the spectator view (`Viewer::Spectator` with per-player
//! views, else the shared view), encoded once per tick for all of them and quiet like a
//! player's: they send no acknowledgements, so there is no baseline to delta against.

use std::collections::VecDeque;

use serde_bytes::ByteBuf;
use tickroom_game::{Ctx, GameError, Message, Player, Refusal, Setup, StateGame, Viewer};
use tickroom_protocol::{ServerMsg, SyncKind};

use super::sim::{Delivery, Outbound, Sim, To};

/// How many past views a room keeps as delta baselines (about 1 s at 30 Hz when every tick's
/// view differs; an unchanged view extends its entry's tick range instead of taking another).
pub const SNAPSHOT_HISTORY_TICKS: usize = 32;

/// Snapshots of an unchanged view (with an unchanged input acknowledgement) a player is sent
/// before the room goes quiet for that player: enough that a change survives lost datagrams.
pub const QUIET_REPEATS: u8 = 3;

/// What the room knows of each seat's inputs and acknowledgements.
#[derive(Debug, Clone, Copy, Default)]
struct SlotState {
    /// Newest input number applied.
    last_input_tick: u64,
    /// Newest snapshot tick the client has (delta baseline); 0 = none.
    acked_tick: u64,
    /// `last_input_tick` as of the last snapshot sent (its `ack_seq`).
    sent_ack: u64,
    /// Snapshots sent in a row with an unchanged view and `sent_ack`; `None` until the first
    /// snapshot on this session or connection.
    repeats: Option<u8>,
}

impl SlotState {
    /// Records a snapshot sent (or skipped) with `view_changed`; returns whether to send it.
    fn should_send(&mut self, view_changed: bool) -> bool {
        let same = !view_changed && self.sent_ack == self.last_input_tick;
        let repeats = match self.repeats {
            Some(n) if same => n.saturating_add(1),
            _ => 0,
        };
        self.repeats = Some(repeats);
        self.sent_ack = self.last_input_tick;
        repeats <= QUIET_REPEATS
    }
}

/// One entry of a view history: the view, and the ticks it stayed unchanged over.
type Entry<V> = (std::ops::RangeInclusive<u64>, V);

/// The state-sync part of a room running game `G`.
pub struct StateSim<G: StateGame> {
    game: G,
    ctx: Ctx<G::ServerMessage>,
    tick: u64,
    dt_s: f32,
    slots: Vec<SlotState>,
    /// Shared views by tick range, or (with per-player views) one history per slot.
    history: Vec<VecDeque<Entry<G::View>>>,
    payload: Vec<u8>,
    /// Snapshots go out on ticks that are multiples of this (1 = every tick).
    snapshot_divisor: u32,
    /// Spectators by index: their quiet-repeat state (`None`: none there, or away).
    watchers: Vec<Option<SlotState>>,
    /// Per-player views: the spectator view of the last snapshot tick (to tell a change).
    spectator_view: Option<G::View>,
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
            watchers: Vec::new(),
            spectator_view: None,
        }
    }

    /// The room continues at `tick` (a room restored from an image).
    pub fn at_tick(mut self, tick: u64) -> StateSim<G> {
        self.tick = tick;
        self
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
            .find(|(ticks, _)| state.acked_tick != 0 && ticks.contains(&state.acked_tick));
        let baseline_tick = match baseline {
            Some((_, base)) => {
                G::encode_delta(base, view, &mut self.payload);
                state.acked_tick
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
        out.send(To::Slot(slot as u8), &msg, Delivery::Snapshot);
        if let ServerMsg::Snapshot { payload, .. } = msg {
            self.payload = payload;
        }
    }

    /// Sends `view` in full to every spectator it is news to, encoded once.
    fn send_to_spectators(&mut self, view: &G::View, changed: bool, out: &mut Outbound) {
        let mut encoded = None;
        for (index, watcher) in self.watchers.iter_mut().enumerate() {
            let Some(state) = watcher else {
                continue;
            };
            if !state.should_send(changed) {
                continue;
            }
            let bytes = encoded.get_or_insert_with(|| {
                self.payload.clear();
                G::encode_full(view, &mut self.payload);
                out.encode(&ServerMsg::Snapshot {
                    tick: self.tick,
                    ack_seq: 0,
                    baseline: 0,
                    payload: self.payload.clone(),
                })
            });
            out.sends
                .push((To::Spectator(index), bytes.clone(), Delivery::Snapshot));
        }
    }

    /// Whether `view` differs from the newest view of history `index`.
    fn changed(&self, index: usize, view: &G::View) -> bool {
        self.history[index]
            .back()
            .is_none_or(|(_, last)| last != view)
    }

    /// Adds this tick's view to history `index`: a new entry, or (unchanged) the newest
    /// entry's tick range grows to this tick.
    fn remember(&mut self, index: usize, view: G::View, changed: bool) {
        let history = &mut self.history[index];
        match history.back_mut() {
            Some((ticks, _)) if !changed => *ticks = *ticks.start()..=self.tick,
            _ => {
                history.push_back((self.tick..=self.tick, view));
                if history.len() > SNAPSHOT_HISTORY_TICKS {
                    history.pop_front();
                }
            }
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
            *s = SlotState::default();
        }
    }

    fn resume(&mut self, slot: u8, _last_frame: u64, out: &mut Outbound) {
        // No acknowledged baseline on the new connection: the next snapshot is full, and it
        // goes out even if nothing changed.
        if let Some(s) = self.slots.get_mut(usize::from(slot)) {
            s.acked_tick = 0;
            s.repeats = None;
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

    fn watch(&mut self, index: usize, _last_frame: u64, _out: &mut Outbound) {
        if self.watchers.len() <= index {
            self.watchers.resize(index + 1, None);
        }
        // No `repeats` yet: the next snapshot goes out even if nothing changed.
        self.watchers[index] = Some(SlotState::default());
    }

    fn unwatch(&mut self, index: usize) {
        if let Some(w) = self.watchers.get_mut(index) {
            *w = None;
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
                let changed = self.changed(slot, &view);
                if self.slots[slot].should_send(changed) {
                    self.send_view(slot, &view, out);
                }
                self.remember(slot, view, changed);
            }
            if self.watchers.iter().any(Option::is_some) {
                let view = self.game.view(Viewer::Spectator);
                let changed = self.spectator_view.as_ref() != Some(&view);
                self.send_to_spectators(&view, changed, out);
                self.spectator_view = Some(view);
            }
        } else {
            let view = self.game.view(Viewer::Everyone);
            let changed = self.changed(0, &view);
            for (slot, _) in connected.iter().enumerate().filter(|(_, c)| **c) {
                if self.slots[slot].should_send(changed) {
                    self.send_view(slot, &view, out);
                }
            }
            self.send_to_spectators(&view, changed, out);
            self.remember(0, view, changed);
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
