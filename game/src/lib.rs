//! Game traits the tickroom server drives, and two sample games built on them.
//!
//! Everything here is pure logic: no IO, no clock reads and no OS randomness, so a
//! match is fully reproducible from its seed and its inputs. The server owns time and
//! transport; a game only turns inputs into state and state into bytes.

pub mod arena;
pub mod arena_lockstep;
mod bytes;
pub mod modes;
mod rng;

pub use arena::Arena;
pub use arena_lockstep::ArenaLockstep;

/// Why game bytes (an input, a snapshot or a delta) could not be decoded.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum GameError {
    /// The bytes ended before the value was complete.
    #[error("truncated game data")]
    Truncated,
    /// The value was complete but more bytes followed it.
    #[error("trailing bytes after game data")]
    Trailing,
    /// The bytes were structurally wrong (unknown marker, reserved bits set, ...).
    #[error("invalid game data: {0}")]
    Invalid(&'static str),
}

/// A server-authoritative game run by state synchronisation.
pub trait StateGame: Send + 'static {
    /// One player's control state, as sent by a client.
    type Input: Clone + Default + Send + std::fmt::Debug + PartialEq;
    /// What clients see of the world at one tick.
    type Snapshot: Clone + Send + std::fmt::Debug + PartialEq;

    /// A fresh match for up to `max_players` slots; `seed` makes it reproducible.
    fn new(max_players: u8, seed: u64) -> Self
    where
        Self: Sized;
    /// Put a player into `slot` (no-op if the slot is taken or out of range).
    fn add_player(&mut self, slot: u8);
    /// Take the player out of `slot` (no-op if the slot is empty).
    fn remove_player(&mut self, slot: u8);
    /// Decode one input; an empty slice decodes to `Input::default()`.
    fn decode_input(bytes: &[u8]) -> Result<Self::Input, GameError>;
    /// Encode one input (appends to out).
    fn encode_input(input: &Self::Input, out: &mut Vec<u8>);
    /// Record `input` as the current control state of `slot`.
    fn apply_input(&mut self, slot: u8, input: &Self::Input);
    /// Advance the simulation by `dt_s` seconds (the room passes 1/tick_rate).
    fn step(&mut self, dt_s: f32);
    /// The world as clients should see it now.
    fn snapshot(&self) -> Self::Snapshot;
    /// Full encoding of a snapshot (appends to out).
    fn encode_full(snapshot: &Self::Snapshot, out: &mut Vec<u8>);
    /// Decode a snapshot written by `encode_full`.
    fn decode_full(bytes: &[u8]) -> Result<Self::Snapshot, GameError>;
    /// Delta of `current` against `baseline` (appends to out); smaller than full when little changed.
    fn encode_delta(baseline: &Self::Snapshot, current: &Self::Snapshot, out: &mut Vec<u8>);
    /// Rebuild the current snapshot from a baseline and a delta produced by encode_delta.
    fn decode_delta(baseline: &Self::Snapshot, bytes: &[u8]) -> Result<Self::Snapshot, GameError>;
    /// True once the match is over (e.g. a score limit); the room ends then.
    fn is_over(&self) -> bool;
}

/// A deterministic game run by lockstep: every client steps the same frames with the same inputs.
pub trait LockstepGame: Send + 'static {
    /// One player's input for one frame.
    type Input: Clone + Default + Send + std::fmt::Debug + PartialEq;

    /// A fresh match for `max_players` slots; `seed` makes it reproducible.
    fn new(max_players: u8, seed: u64) -> Self
    where
        Self: Sized;
    /// Decode one input; an empty slice (a player who missed the deadline) decodes to `Input::default()`.
    fn decode_input(bytes: &[u8]) -> Result<Self::Input, GameError>;
    /// Encode one input (appends to out).
    fn encode_input(input: &Self::Input, out: &mut Vec<u8>);
    /// Step one frame; `inputs[slot]` is each slot's input (Default for a missed/absent player).
    fn step(&mut self, frame: u64, inputs: &[Self::Input]);
    /// A hash of the whole state, identical on every platform for the same frames.
    fn checksum(&self) -> u64;
}
