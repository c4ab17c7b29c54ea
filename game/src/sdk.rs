//! The server SDK: the traits a game implements to run on tickroom, and what the room hands
//! its hooks. A game is pure logic: hooks get their inputs as arguments and say what should
//! happen through a [`Ctx`] (send a message, end the match); the room does the IO.
//!
//! Two kinds of game:
//! - [`StateGame`]: the server simulates; clients send inputs and receive [`StateCodec::View`]s
//!   (full or delta-encoded, optionally different per player: fog of war).
//! - [`LockstepGame`]: the server relays every player's input per frame and clients simulate
//!   deterministically; the server may also run the simulation to arbitrate checksums.
//!
//! Client code decodes views and messages through the same traits ([`StateCodec`] and
//! [`Message`]), so a Rust client needs no second copy of the encoding.

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::marker::PhantomData;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::GameError;

/// Most metadata entries a ticket carries.
pub const MAX_METADATA_ENTRIES: usize = 16;
/// Longest metadata key, in bytes.
pub const MAX_METADATA_KEY_BYTES: usize = 32;
/// Longest metadata string value, in bytes.
pub const MAX_METADATA_VALUE_BYTES: usize = 128;

/// A custom message or result type with the game's own byte encoding.
pub trait Message: Sized + Send + Debug + 'static {
    /// Appends the encoding of `self` to `out`.
    fn encode(&self, out: &mut Vec<u8>);
    /// Decodes one message; bad bytes are an error, never a panic.
    fn decode(bytes: &[u8]) -> Result<Self, GameError>;
}

/// Raw bytes: for games that encode their messages themselves.
impl Message for Vec<u8> {
    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(self);
    }
    fn decode(bytes: &[u8]) -> Result<Self, GameError> {
        Ok(bytes.to_vec())
    }
}

/// UTF-8 text (a chat line).
impl Message for String {
    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(self.as_bytes());
    }
    fn decode(bytes: &[u8]) -> Result<Self, GameError> {
        String::from_utf8(bytes.to_vec()).map_err(|_| GameError::Invalid("text is not UTF-8"))
    }
}

/// The message type of a game that takes or sends no custom messages: nothing decodes to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoMessage {}

impl Message for NoMessage {
    fn encode(&self, _out: &mut Vec<u8>) {
        match *self {}
    }
    fn decode(_bytes: &[u8]) -> Result<Self, GameError> {
        Err(GameError::Invalid("this game takes no custom messages"))
    }
}

/// One metadata value: a number (a rating, a latency) or a short string (a display name).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum MetaValue {
    /// A whole number.
    Int(i64),
    /// A short UTF-8 string.
    Str(String),
}

/// What the gateway knows of a player and puts in the join ticket (display name, rating...):
/// at most [`MAX_METADATA_ENTRIES`] small entries, checked by [`PlayerMetadata::check`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlayerMetadata(pub BTreeMap<String, MetaValue>);

impl PlayerMetadata {
    /// The string under `key`, if it is one.
    pub fn str(&self, key: &str) -> Option<&str> {
        match self.0.get(key)? {
            MetaValue::Str(s) => Some(s),
            MetaValue::Int(_) => None,
        }
    }

    /// The number under `key`, if it is one.
    pub fn int(&self, key: &str) -> Option<i64> {
        match self.0.get(key)? {
            MetaValue::Int(n) => Some(*n),
            MetaValue::Str(_) => None,
        }
    }

    /// Checks the size limits; the gateway refuses metadata that breaks them.
    pub fn check(&self) -> Result<(), &'static str> {
        if self.0.len() > MAX_METADATA_ENTRIES {
            return Err("too many metadata entries");
        }
        for (key, value) in &self.0 {
            if key.is_empty() || key.len() > MAX_METADATA_KEY_BYTES {
                return Err("a metadata key is empty or too long");
            }
            if matches!(value, MetaValue::Str(s) if s.len() > MAX_METADATA_VALUE_BYTES) {
                return Err("a metadata value is too long");
            }
        }
        Ok(())
    }
}

/// What a game is created with: its mode, room size, tick rate, the mode's parameters (from
/// `modes.toml`'s `params` table, typed by the game) and a seed that makes the match
/// reproducible.
#[derive(Debug, Clone)]
pub struct Setup<'a, P> {
    /// The mode's name (several modes may run the same game).
    pub mode: &'a str,
    /// Seats in the room.
    pub max_players: u8,
    /// Ticks (state) or frames (lockstep) per second.
    pub tick_rate_hz: u16,
    /// The seed (the room id), for reproducible randomness.
    pub seed: u64,
    /// The mode's `params`, decoded into the game's own type.
    pub params: &'a P,
}

/// A player asking to join, or joining: who, in which seat, and the ticket's metadata.
#[derive(Debug, Clone, Copy)]
pub struct Player<'a> {
    /// The player's stable id (from the gateway).
    pub player_id: u64,
    /// The seat the player gets (0-based).
    pub slot: u8,
    /// What the gateway put in the ticket.
    pub metadata: &'a PlayerMetadata,
}

/// Why a game refuses a player at admission; the client gets `Error{JoinRefused, reason}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal(pub String);

impl Refusal {
    /// A refusal with a reason for the player.
    pub fn new(reason: impl Into<String>) -> Refusal {
        Refusal(reason.into())
    }
}

/// Who a server message goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recipient {
    /// The player in this seat.
    Slot(u8),
    /// Every connected player.
    All,
}

/// What a hook may ask of the room: send custom messages, end the match. The room reuses one
/// `Ctx` and carries out what it collected after each hook.
#[derive(Debug)]
pub struct Ctx<M> {
    tick: u64,
    sends: Vec<(Recipient, Vec<u8>)>,
    result: Option<Vec<u8>>,
    _message: PhantomData<fn(&M)>,
}

impl<M: Message> Default for Ctx<M> {
    fn default() -> Self {
        Ctx {
            tick: 0,
            sends: Vec::new(),
            result: None,
            _message: PhantomData,
        }
    }
}

impl<M: Message> Ctx<M> {
    /// The room's current tick (state) or next frame (lockstep).
    pub fn tick(&self) -> u64 {
        self.tick
    }

    /// Sends `msg` reliably to the player in `slot` (dropped if the seat is empty or away).
    pub fn send(&mut self, slot: u8, msg: &M) {
        self.push(Recipient::Slot(slot), msg);
    }

    /// Sends `msg` reliably to every connected player.
    pub fn broadcast(&mut self, msg: &M) {
        self.push(Recipient::All, msg);
    }

    /// Ends the match with `result`: players get `MatchEnded`, the room closes, and the
    /// gateway keeps the result for the match's players. The first call wins.
    pub fn end_match(&mut self, result: &impl Message) {
        if self.result.is_none() {
            let mut bytes = Vec::new();
            result.encode(&mut bytes);
            self.result = Some(bytes);
        }
    }

    /// True once `end_match` was called.
    pub fn match_ended(&self) -> bool {
        self.result.is_some()
    }

    fn push(&mut self, to: Recipient, msg: &M) {
        let mut bytes = Vec::new();
        msg.encode(&mut bytes);
        self.sends.push((to, bytes));
    }

    /// For the room: sets the tick the next hooks see.
    pub fn set_tick(&mut self, tick: u64) {
        self.tick = tick;
    }

    /// For the room: the messages collected since the last call, oldest first.
    pub fn take_sends(&mut self) -> std::vec::Drain<'_, (Recipient, Vec<u8>)> {
        self.sends.drain(..)
    }

    /// For the room: the result, once the match ended (taken once).
    pub fn take_result(&mut self) -> Option<Vec<u8>> {
        self.result.take()
    }
}

/// Whose view of the world a state-sync snapshot is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Viewer {
    /// The shared view (games without per-player views).
    Everyone,
    /// What the player in this seat may see.
    Slot(u8),
    /// What a spectator may see (games with per-player views; the others' spectators get
    /// the `Everyone` view).
    Spectator,
}

/// A state-sync game's encodings, shared by the server and its clients: inputs, views (full
/// and delta) and the custom message types. A client decodes through this trait alone.
pub trait StateCodec: 'static {
    /// One player's control state, as sent by a client.
    type Input: Clone + Default + Send + Debug + PartialEq;
    /// What a player sees of the world at one tick.
    type View: Clone + Send + Debug + PartialEq;
    /// Custom messages clients send.
    type ClientMessage: Message;
    /// Custom messages the server sends.
    type ServerMessage: Message;

    /// Decodes one input; an empty slice decodes to `Input::default()`.
    fn decode_input(bytes: &[u8]) -> Result<Self::Input, GameError>;
    /// Encodes one input (appends to out).
    fn encode_input(input: &Self::Input, out: &mut Vec<u8>);
    /// Full encoding of a view (appends to out).
    fn encode_full(view: &Self::View, out: &mut Vec<u8>);
    /// Decodes a view written by `encode_full`.
    fn decode_full(bytes: &[u8]) -> Result<Self::View, GameError>;
    /// Delta of `current` against `baseline` (appends to out).
    fn encode_delta(baseline: &Self::View, current: &Self::View, out: &mut Vec<u8>);
    /// Rebuilds the current view from a baseline and a delta written by `encode_delta`.
    fn decode_delta(baseline: &Self::View, bytes: &[u8]) -> Result<Self::View, GameError>;
}

/// A server-authoritative game run by state synchronisation.
///
/// Hooks with a default do nothing (admission accepts everyone). A panic in any hook ends
/// that room with `Internal`; other rooms go on.
pub trait StateGame: StateCodec + Sized + Send {
    /// The mode's parameters (`[mode.params]` in `modes.toml`); a mode whose table does not
    /// decode into this type is a start-up error.
    type Params: DeserializeOwned + Default + Clone + Send + Sync + Debug + 'static;
    /// True when players see different views (fog of war): the room then asks for one view
    /// per player and delta-encodes each against that player's own history.
    const PER_PLAYER_VIEWS: bool = false;
    /// Version of the `save` encoding, passed back to `restore`.
    const SAVE_VERSION: u16 = 1;

    /// A fresh match.
    fn create(setup: &Setup<'_, Self::Params>) -> Self;
    /// Admission: may this player take this seat? Runs before anything is changed.
    fn join_attempt(&self, _player: &Player<'_>) -> Result<(), Refusal> {
        Ok(())
    }
    /// The player took the seat.
    fn on_join(&mut self, player: &Player<'_>, ctx: &mut Ctx<Self::ServerMessage>);
    /// The player left for good (left, grace expired, kicked); the seat is free again.
    fn on_leave(&mut self, slot: u8, ctx: &mut Ctx<Self::ServerMessage>);
    /// The player's connection was lost; the seat is kept for the grace period.
    fn on_drop(&mut self, _slot: u8, _ctx: &mut Ctx<Self::ServerMessage>) {}
    /// The player came back on a new connection.
    fn on_resume(&mut self, _slot: u8, _ctx: &mut Ctx<Self::ServerMessage>) {}
    /// Records `input` as the current control state of `slot`.
    fn apply_input(&mut self, slot: u8, input: &Self::Input);
    /// A custom message from the player in `slot`.
    fn on_message(
        &mut self,
        _slot: u8,
        _msg: Self::ClientMessage,
        _ctx: &mut Ctx<Self::ServerMessage>,
    ) {
    }
    /// Advances the simulation by one tick of `dt_s` seconds.
    fn step(&mut self, dt_s: f32, ctx: &mut Ctx<Self::ServerMessage>);
    /// The world as `viewer` may see it now.
    fn view(&self, viewer: Viewer) -> Self::View;
    /// The match reached its mode's `match_duration_s`; call `ctx.end_match` to store a result.
    fn on_time_up(&mut self, _ctx: &mut Ctx<Self::ServerMessage>) {}
    /// The whole game state as bytes (`SAVE_VERSION` travels beside them).
    fn save(&self, out: &mut Vec<u8>);
    /// Rebuilds a game saved by `save` with `version`.
    fn restore(
        setup: &Setup<'_, Self::Params>,
        version: u16,
        bytes: &[u8],
    ) -> Result<Self, GameError>;
}

/// A deterministic game run by lockstep: every client steps the same frames with the same
/// inputs. The server always runs the hooks (admission, messages, results) but steps the
/// simulation only when the mode sets `server_sim = true`, to arbitrate checksums. Hooks
/// must not change the simulated state: clients do not see them.
pub trait LockstepGame: Sized + Send + 'static {
    /// The mode's parameters (`[mode.params]` in `modes.toml`).
    type Params: DeserializeOwned + Default + Clone + Send + Sync + Debug + 'static;
    /// One player's input for one frame.
    type Input: Clone + Default + Send + Debug + PartialEq;
    /// Custom messages clients send.
    type ClientMessage: Message;
    /// Custom messages the server sends.
    type ServerMessage: Message;
    /// Version of the `save` encoding, passed back to `restore`.
    const SAVE_VERSION: u16 = 1;

    /// A fresh match (the same on the server and every client).
    fn create(setup: &Setup<'_, Self::Params>) -> Self;
    /// Decodes one input; an empty slice (a missed deadline) decodes to `Input::default()`.
    fn decode_input(bytes: &[u8]) -> Result<Self::Input, GameError>;
    /// Encodes one input (appends to out).
    fn encode_input(input: &Self::Input, out: &mut Vec<u8>);
    /// Steps one frame; `inputs[slot]` is each slot's input.
    fn step(&mut self, frame: u64, inputs: &[Self::Input]);
    /// A hash of the whole state, identical on every platform for the same frames.
    fn checksum(&self) -> u64;
    /// Admission: may this player take this seat?
    fn join_attempt(&self, _player: &Player<'_>) -> Result<(), Refusal> {
        Ok(())
    }
    /// The player took the seat.
    fn on_join(&mut self, _player: &Player<'_>, _ctx: &mut Ctx<Self::ServerMessage>) {}
    /// The player left for good.
    fn on_leave(&mut self, _slot: u8, _ctx: &mut Ctx<Self::ServerMessage>) {}
    /// The player's connection was lost; the seat is kept for the grace period.
    fn on_drop(&mut self, _slot: u8, _ctx: &mut Ctx<Self::ServerMessage>) {}
    /// The player came back on a new connection.
    fn on_resume(&mut self, _slot: u8, _ctx: &mut Ctx<Self::ServerMessage>) {}
    /// A custom message from the player in `slot`.
    fn on_message(
        &mut self,
        _slot: u8,
        _msg: Self::ClientMessage,
        _ctx: &mut Ctx<Self::ServerMessage>,
    ) {
    }
    /// With `server_sim`: runs after the server stepped `frame` (end the match from here).
    fn on_frame(&mut self, _frame: u64, _ctx: &mut Ctx<Self::ServerMessage>) {}
    /// The match reached its mode's `match_duration_s`.
    fn on_time_up(&mut self, _ctx: &mut Ctx<Self::ServerMessage>) {}
    /// The whole game state as bytes.
    fn save(&self, out: &mut Vec<u8>);
    /// Rebuilds a game saved by `save` with `version`.
    fn restore(
        setup: &Setup<'_, Self::Params>,
        version: u16,
        bytes: &[u8],
    ) -> Result<Self, GameError>;
}

/// Parameters for games that take none: only an empty (or absent) `params` table decodes.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NoParams {}
