//! Pong on tickroom: an example of a game written against the public SDK alone.
//!
//! [`Pong`] implements `StateGame` (the rules, in [`game`]) and `StateCodec` (the bytes, in
//! [`wire`]); [`PongBot`] implements the bot crate's `GameBot` (in [`bot`]). The binaries are
//! a few lines each: `pong-server` registers `Pong` on `tickroom::Server`, `pong-play` and
//! `pong-swarm` run the bot command line with `PongBot`.

pub mod bot;
pub mod game;
pub mod wire;

pub use bot::{follow_ball, PongBot};
pub use game::{Pong, PongParams, PONG_VERSION};
pub use wire::{PaddleMove, PongClientMsg, PongResult, PongServerMsg, PongView, NO_WINNER};
