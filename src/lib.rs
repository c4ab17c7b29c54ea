//! tickroom: a real-time multiplayer game server. This facade re-exports the workspace crates
//! so that integration tests and benches (in `tests/` and `benches/`) reach them by one name.

pub use tickroom_game as game;
pub use tickroom_gateway as gateway;
pub use tickroom_protocol as protocol;
pub use tickroom_server as server;
pub use tickroom_server::{Server, ServerBuilder};
