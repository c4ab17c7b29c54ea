//! Rooms. Architecture invariant: a room has exactly one owner, the worker thread it was
//! created on; nothing else mutates it, and inputs reach it only through the worker's bounded
//! crossbeam channel. The module graph has no cycle:
//!
//! ```text
//! pool → worker → core → sim ← state, lockstep ← registry
//!          └──────────→ input
//! ```

pub mod core;
pub mod input;
pub mod lockstep;
pub mod pool;
pub mod registry;
pub mod sim;
pub mod state;
mod worker;

pub use input::{RoomId, RoomInput, SeatRefusal, SeatReply, Seated, Seating, SessionId};
pub use pool::RoomPool;
pub use registry::{GameRegistry, ModeRooms, RegistryError, RoomFactory};
