//! The client side of a game's encoding: rebuilds state-sync views from the `Snapshot`
//! messages a session receives (full or delta against an earlier tick) through the game's own
//! [`StateCodec`], so a Rust game client needs no second copy of the encoding. Sans-IO.

use std::collections::VecDeque;

use tickroom_game::{GameError, Message, StateCodec};

/// How many received views are kept as delta baselines (the server keeps 32).
pub const VIEW_HISTORY_TICKS: usize = 64;

/// The views received so far, by tick: feed it every `SessionEvent::Snapshot`.
#[derive(Debug)]
pub struct ViewTracker<G: StateCodec> {
    history: VecDeque<(u64, G::View)>,
}

impl<G: StateCodec> Default for ViewTracker<G> {
    fn default() -> Self {
        ViewTracker {
            history: VecDeque::with_capacity(VIEW_HISTORY_TICKS),
        }
    }
}

impl<G: StateCodec> ViewTracker<G> {
    /// Decodes one snapshot (`baseline == 0`: full, else a delta against the view of tick
    /// `baseline`) and returns the view of `tick`. A delta against a view this tracker no
    /// longer has is `GameError::Invalid`; the server sends a full one once the client's
    /// acknowledgement moves on.
    pub fn apply(
        &mut self,
        tick: u64,
        baseline: u64,
        payload: &[u8],
    ) -> Result<&G::View, GameError> {
        let view = if baseline == 0 {
            G::decode_full(payload)?
        } else {
            let base = self
                .history
                .iter()
                .find(|(t, _)| *t == baseline)
                .map(|(_, v)| v)
                .ok_or(GameError::Invalid("delta against a view no longer held"))?;
            G::decode_delta(base, payload)?
        };
        // A reordered older snapshot is decoded but does not replace newer ones.
        if self.history.back().is_some_and(|(t, _)| *t >= tick) {
            self.history.retain(|(t, _)| *t != tick);
            let at = self.history.partition_point(|(t, _)| *t < tick);
            self.history.insert(at, (tick, view));
        } else {
            self.history.push_back((tick, view));
        }
        while self.history.len() > VIEW_HISTORY_TICKS {
            self.history.pop_front();
        }
        let at = self
            .history
            .iter()
            .position(|(t, _)| *t == tick)
            .unwrap_or(0);
        Ok(&self.history[at].1)
    }

    /// The newest view and its tick.
    pub fn latest(&self) -> Option<(u64, &G::View)> {
        self.history.back().map(|(t, v)| (*t, v))
    }
}

/// Encodes one input for `ClientSession::send_input`.
pub fn encode_input<G: StateCodec>(input: &G::Input) -> Vec<u8> {
    let mut out = Vec::new();
    G::encode_input(input, &mut out);
    out
}

/// Encodes a custom message for `ClientSession::send_message`.
pub fn encode_message<M: Message>(msg: &M) -> Vec<u8> {
    let mut out = Vec::new();
    msg.encode(&mut out);
    out
}

/// Decodes a custom message or a match result (`SessionEvent::Message`, `MatchEnded`).
pub fn decode_message<M: Message>(payload: &[u8]) -> Result<M, GameError> {
    M::decode(payload)
}

#[cfg(test)]
mod tests {
    use tickroom_game::arena::ArenaInput;
    use tickroom_game::{Arena, StateCodec, StateGame};

    use super::*;

    fn snapshot_bytes(game: &Arena, base: Option<&Arena>) -> Vec<u8> {
        let mut out = Vec::new();
        match base {
            None => Arena::encode_full(&game.snapshot(), &mut out),
            Some(b) => Arena::encode_delta(&b.snapshot(), &game.snapshot(), &mut out),
        }
        out
    }

    #[test]
    fn full_then_deltas_rebuild_the_server_view() {
        let mut game = Arena::new(4, 7);
        game.add_player(0);
        game.add_player(2);
        let mut tracker = ViewTracker::<Arena>::default();
        tracker.apply(1, 0, &snapshot_bytes(&game, None)).unwrap();
        for tick in 2..10u64 {
            let before = game.clone();
            StateGame::apply_input(
                &mut game,
                0,
                &ArenaInput {
                    move_x: 100,
                    move_y: -50,
                    buttons: 0,
                },
            );
            game.step(1.0 / 30.0);
            let view = tracker
                .apply(tick, tick - 1, &snapshot_bytes(&game, Some(&before)))
                .unwrap();
            assert_eq!(view, &game.snapshot());
        }
        assert_eq!(tracker.latest().unwrap().0, 9);
        // A delta against a tick never received is refused, not guessed.
        assert!(tracker.apply(20, 15, &snapshot_bytes(&game, None)).is_err());
    }

    #[test]
    fn messages_round_trip_through_the_game_types() {
        let bytes = encode_message(&"gg".to_string());
        assert_eq!(decode_message::<String>(&bytes).unwrap(), "gg");
        assert!(decode_message::<String>(&[0xff, 0xfe]).is_err());
        assert_eq!(encode_input::<Arena>(&ArenaInput::default()).len(), 3);
    }
}
