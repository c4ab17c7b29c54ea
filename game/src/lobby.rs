//! The lobby: a state-sync sample where players gather, mark themselves ready and chat. Nothing
//! moves, so its view changes only when someone joins, leaves or toggles ready, and the room
//! sends a player nothing on the ticks between (see the server's `StateSim`): a seated player
//! who only keeps the connection alive costs the server almost nothing. It is also how
//! `tickroom` measures idle sessions.

use crate::bytes::{self, Reader};
use crate::sdk::{Ctx, NoParams, Player, Setup, StateCodec, StateGame, Viewer};
use crate::GameError;

/// A player's control state: ready or not.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LobbyInput {
    /// The player is ready to play.
    pub ready: bool,
}

/// One seated player as everyone sees them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Member {
    /// The seat.
    pub slot: u8,
    /// The player's stable id.
    pub player_id: u64,
    /// Ready to play.
    pub ready: bool,
}

/// The lobby as everyone sees it: the members in seat order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LobbyView {
    /// Seated players, by slot.
    pub members: Vec<Member>,
}

/// The lobby's state: one optional member per seat.
#[derive(Debug, Clone)]
pub struct Lobby {
    seats: Vec<Option<Member>>,
}

impl Lobby {
    /// An empty lobby of `max_players` seats.
    pub fn new(max_players: u8) -> Lobby {
        Lobby {
            seats: vec![None; usize::from(max_players)],
        }
    }

    /// Everyone seated, in seat order.
    pub fn view(&self) -> LobbyView {
        LobbyView {
            members: self.seats.iter().flatten().copied().collect(),
        }
    }
}

impl StateCodec for Lobby {
    type Input = LobbyInput;
    type View = LobbyView;
    /// Chat lines.
    type ClientMessage = String;
    /// Chat lines, prefixed with the sender's slot.
    type ServerMessage = String;

    /// One byte, 0 or 1; empty is "not ready".
    fn decode_input(bytes: &[u8]) -> Result<LobbyInput, GameError> {
        match bytes {
            [] | [0] => Ok(LobbyInput { ready: false }),
            [1] => Ok(LobbyInput { ready: true }),
            [_] => Err(GameError::Invalid("a lobby input is 0 or 1")),
            _ => Err(GameError::Trailing),
        }
    }

    fn encode_input(input: &LobbyInput, out: &mut Vec<u8>) {
        bytes::put_u8(out, u8::from(input.ready));
    }

    /// A count, then per member: slot, player id (u64 LE), ready (0 or 1).
    fn encode_full(view: &LobbyView, out: &mut Vec<u8>) {
        // A lobby has at most 64 seats (modes.toml), so the count fits a byte.
        bytes::put_u8(out, view.members.len() as u8);
        for m in &view.members {
            bytes::put_u8(out, m.slot);
            bytes::put_u64(out, m.player_id);
            bytes::put_u8(out, u8::from(m.ready));
        }
    }

    fn decode_full(buf: &[u8]) -> Result<LobbyView, GameError> {
        let mut r = Reader::new(buf);
        let count = r.u8()?;
        let mut members: Vec<Member> = Vec::with_capacity(usize::from(count));
        for _ in 0..count {
            let slot = r.u8()?;
            if members.last().is_some_and(|m| m.slot >= slot) {
                return Err(GameError::Invalid("lobby members out of seat order"));
            }
            let player_id = r.u64()?;
            let ready = match r.u8()? {
                0 => false,
                1 => true,
                _ => return Err(GameError::Invalid("a ready flag is 0 or 1")),
            };
            members.push(Member {
                slot,
                player_id,
                ready,
            });
        }
        r.finish()?;
        Ok(LobbyView { members })
    }

    /// A lobby view is small (10 bytes a member) and changes rarely: the delta is the full view.
    fn encode_delta(_baseline: &LobbyView, current: &LobbyView, out: &mut Vec<u8>) {
        Lobby::encode_full(current, out);
    }

    fn decode_delta(_baseline: &LobbyView, bytes: &[u8]) -> Result<LobbyView, GameError> {
        Lobby::decode_full(bytes)
    }
}

impl StateGame for Lobby {
    type Params = NoParams;

    fn create(setup: &Setup<'_, NoParams>) -> Self {
        Lobby::new(setup.max_players)
    }

    fn on_join(&mut self, player: &Player<'_>, _ctx: &mut Ctx<String>) {
        if let Some(seat) = self.seats.get_mut(usize::from(player.slot)) {
            *seat = Some(Member {
                slot: player.slot,
                player_id: player.player_id,
                ready: false,
            });
        }
    }

    fn on_leave(&mut self, slot: u8, _ctx: &mut Ctx<String>) {
        if let Some(seat) = self.seats.get_mut(usize::from(slot)) {
            *seat = None;
        }
    }

    fn apply_input(&mut self, slot: u8, input: &LobbyInput) {
        if let Some(Some(m)) = self.seats.get_mut(usize::from(slot)) {
            m.ready = input.ready;
        }
    }

    fn on_message(&mut self, slot: u8, line: String, ctx: &mut Ctx<String>) {
        ctx.broadcast(&format!("{slot}: {line}"));
    }

    /// Nothing moves in a lobby.
    fn step(&mut self, _dt_s: f32, _ctx: &mut Ctx<String>) {}

    fn view(&self, _viewer: Viewer) -> LobbyView {
        Lobby::view(self)
    }

    /// The lobby closes at its mode's `match_duration_s` with no result.
    fn on_time_up(&mut self, ctx: &mut Ctx<String>) {
        ctx.end_match(&String::new());
    }

    /// The seat count, then the view's encoding.
    fn save(&self, out: &mut Vec<u8>) {
        bytes::put_u8(out, self.seats.len() as u8);
        Lobby::encode_full(&Lobby::view(self), out);
    }

    fn restore(_setup: &Setup<'_, NoParams>, version: u16, buf: &[u8]) -> Result<Self, GameError> {
        if version != Self::SAVE_VERSION {
            return Err(GameError::Invalid("unknown lobby save version"));
        }
        let (&seats, rest) = buf.split_first().ok_or(GameError::Truncated)?;
        let view = Lobby::decode_full(rest)?;
        let mut lobby = Lobby::new(seats);
        for m in view.members {
            let seat = lobby
                .seats
                .get_mut(usize::from(m.slot))
                .ok_or(GameError::Invalid("a lobby member's seat is out of range"))?;
            *seat = Some(m);
        }
        Ok(lobby)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sdk::PlayerMetadata;
    use proptest::prelude::*;

    fn setup(max_players: u8) -> Setup<'static, NoParams> {
        Setup {
            mode: "lobby",
            max_players,
            tick_rate_hz: 10,
            params: &NoParams {},
            seed: 1,
        }
    }

    fn join(lobby: &mut Lobby, slot: u8, player_id: u64) {
        let metadata = PlayerMetadata::default();
        let player = Player {
            player_id,
            slot,
            metadata: &metadata,
        };
        lobby.on_join(&player, &mut Ctx::default());
    }

    #[test]
    fn the_view_changes_only_when_someone_joins_leaves_or_toggles_ready() {
        let mut lobby = Lobby::create(&setup(4));
        join(&mut lobby, 2, 7);
        join(&mut lobby, 0, 9);
        let seated = lobby.view();
        assert_eq!(
            seated.members.iter().map(|m| m.slot).collect::<Vec<_>>(),
            [0, 2]
        );
        lobby.step(0.1, &mut Ctx::default());
        assert_eq!(lobby.view(), seated, "a step changes nothing");
        lobby.apply_input(2, &LobbyInput { ready: true });
        assert!(lobby.view().members[1].ready);
        lobby.apply_input(2, &LobbyInput { ready: true });
        let ready = lobby.view();
        lobby.on_leave(0, &mut Ctx::default());
        assert_ne!(lobby.view(), ready);
        assert_eq!(lobby.view().members.len(), 1);
    }

    #[test]
    fn inputs_decode_strictly() {
        assert_eq!(Lobby::decode_input(&[]), Ok(LobbyInput { ready: false }));
        assert_eq!(Lobby::decode_input(&[1]), Ok(LobbyInput { ready: true }));
        assert!(Lobby::decode_input(&[2]).is_err());
        assert_eq!(Lobby::decode_input(&[1, 0]), Err(GameError::Trailing));
        let mut out = Vec::new();
        Lobby::encode_input(&LobbyInput { ready: true }, &mut out);
        assert_eq!(out, [1]);
    }

    #[test]
    fn save_and_restore_keep_every_member() {
        let mut lobby = Lobby::create(&setup(8));
        join(&mut lobby, 5, 50);
        join(&mut lobby, 1, 10);
        lobby.apply_input(5, &LobbyInput { ready: true });
        let mut saved = Vec::new();
        lobby.save(&mut saved);
        let back = Lobby::restore(&setup(8), Lobby::SAVE_VERSION, &saved).unwrap();
        assert_eq!(back.view(), lobby.view());
        assert_eq!(back.seats.len(), 8);
        assert!(Lobby::restore(&setup(8), 99, &saved).is_err());
        assert!(Lobby::restore(&setup(8), Lobby::SAVE_VERSION, &saved[..saved.len() - 1]).is_err());
    }

    proptest! {
        /// Any bytes: a typed error or a view that encodes back to the same bytes.
        #[test]
        fn the_view_decoder_never_panics_and_round_trips(bytes in proptest::collection::vec(any::<u8>(), 0..80)) {
            if let Ok(view) = Lobby::decode_full(&bytes) {
                let mut again = Vec::new();
                Lobby::encode_full(&view, &mut again);
                prop_assert_eq!(again, bytes);
            }
        }

        #[test]
        fn views_round_trip(slots in proptest::collection::btree_set(0u8..64, 0..20), ready in any::<bool>()) {
            let view = LobbyView {
                members: slots.iter().map(|&slot| Member { slot, player_id: u64::from(slot) * 31, ready }).collect(),
            };
            let mut out = Vec::new();
            Lobby::encode_full(&view, &mut out);
            prop_assert_eq!(Lobby::decode_full(&out).unwrap(), view.clone());
            let mut delta = Vec::new();
            Lobby::encode_delta(&LobbyView::default(), &view, &mut delta);
            prop_assert_eq!(Lobby::decode_delta(&LobbyView::default(), &delta).unwrap(), view);
        }
    }
}
