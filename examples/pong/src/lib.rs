//! Pong on tickroom: an example of a game written against the public SDK alone.
//!
//! [`Pong`] implements `StateGame` (the rules, in [`game`]) and `StateCodec` (the bytes, in
//! [`wire`]); the binaries register it on a server and run bots that play it.

pub mod bot;
pub mod game;
pub mod wire;

pub use bot::follow_ball;
pub use game::{Pong, PongParams, PONG_VERSION};
pub use wire::{PaddleMove, PongClientMsg, PongResult, PongServerMsg, PongView, NO_WINNER};
