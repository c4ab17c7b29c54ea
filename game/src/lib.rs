//! The game SDK the tickroom server drives (`sdk`), and the sample games built on it
//! (the arena in both sync kinds, and a lobby).
//!
//! Everything here is pure logic: no IO, no clock reads and no OS randomness, so a
//! match is fully reproducible from its seed and its inputs. The server owns time and
//! transport; a game only turns inputs into state and state into bytes.

pub mod arena;
pub mod arena_lockstep;
pub mod bytes;
pub mod lobby;
pub mod modes;
pub mod rng;
pub mod sdk;

pub use arena::Arena;
pub use arena_lockstep::ArenaLockstep;
pub use lobby::Lobby;
pub use sdk::{
    Ctx, LockstepGame, Message, MetaValue, NoMessage, NoParams, Player, PlayerMetadata, Recipient,
    Refusal, Setup, StateCodec, StateGame, Viewer,
};

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
