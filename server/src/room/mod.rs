//! Rooms. Architecture invariant: a room has exactly one owner, the worker thread it was
//! created on; nothing else mutates it, and inputs reach it only through the worker's bounded
//! crossbeam channel. The module graph has no cycle:
//!
//! ```text
//! pool → worker → core → sim ← state, lockstep ← registry
//!          ├──────────→ input
//!          └──────────→ load
//! ```

pub mod core;
pub mod image;
pub mod input;
pub mod load;
pub mod lockstep;
pub mod pool;
pub mod registry;
pub mod sim;
pub mod state;
mod worker;

pub use input::{
    AdminAnswer, AdminOp, RoomId, RoomInput, RoomSeats, SeatRefusal, SeatReply, SeatView, Seated,
    Seating, SessionId,
};
pub use pool::RoomPool;
pub use registry::{GameRegistry, ModeRooms, RegistryError, RoomFactory};

#[cfg(test)]
mod tests {
    /// Every module of `room/` with its source, to read its `super::` imports.
    const MODULES: &[(&str, &str)] = &[
        ("core", include_str!("core.rs")),
        ("image", include_str!("image.rs")),
        ("input", include_str!("input.rs")),
        ("load", include_str!("load.rs")),
        ("lockstep", include_str!("lockstep.rs")),
        ("pool", include_str!("pool.rs")),
        ("registry", include_str!("registry.rs")),
        ("sim", include_str!("sim.rs")),
        ("state", include_str!("state.rs")),
        ("worker", include_str!("worker.rs")),
    ];

    /// The sibling modules `source` imports (`super::name` outside its test module).
    fn imports(source: &str) -> Vec<&'static str> {
        let code = source.split("#[cfg(test)]").next().unwrap_or(source);
        MODULES
            .iter()
            .map(|(name, _)| *name)
            .filter(|name| {
                code.contains(&format!("super::{name}::"))
                    || code.contains(&format!("super::{name};"))
                    || code.contains(&format!("super::{{{name}"))
            })
            .collect()
    }

    /// Architecture invariant: no module under `room/` imports one that imports it back,
    /// directly or through others.
    #[test]
    fn the_room_modules_import_each_other_without_a_cycle() {
        fn reaches(from: &str, target: &str, seen: &mut Vec<String>) -> bool {
            let source = MODULES.iter().find(|(n, _)| *n == from).map_or("", |m| m.1);
            imports(source).into_iter().any(|next| {
                if next == target {
                    return true;
                }
                if seen.iter().any(|s| s == next) {
                    return false;
                }
                seen.push(next.to_string());
                reaches(next, target, seen)
            })
        }
        for (name, _) in MODULES {
            assert!(
                !reaches(name, name, &mut Vec::new()),
                "room/{name}.rs is part of an import cycle"
            );
        }
        // The check can fail: the worker imports the core, so the core must not import it.
        assert!(imports(MODULES[9].1).contains(&"core"));
        assert!(imports("use super::worker::Conn;").contains(&"worker"));
    }
}
