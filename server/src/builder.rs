//! The server SDK's entry: register games by name on a builder, then run the same command
//! line as the `tickroom` binary (all-in-one by default, or the `room` / `gateway` roles).
//!
//! ```no_run
//! use tickroom_game::{Arena, ArenaLockstep};
//! use tickroom_server::Server;
//!
//! fn main() -> std::process::ExitCode {
//!     Server::builder()
//!         .state_game::<Arena>("arena")
//!         .lockstep_game::<ArenaLockstep>("arena-lockstep")
//!         .default_modes(tickroom_game::modes::EMBEDDED_MODES_TOML)
//!         .run()
//! }
//! ```

use std::process::ExitCode;

use tickroom_game::modes::EMBEDDED_MODES_TOML;
use tickroom_game::{Arena, ArenaLockstep, Lobby, LockstepGame, StateGame};

use crate::room::GameRegistry;

/// A tickroom server: the games it can run and the modes it starts with.
pub struct Server;

impl Server {
    /// A builder with no game registered and no default modes.
    pub fn builder() -> ServerBuilder {
        ServerBuilder::default()
    }

    /// The `tickroom` binary's server: `arena`, `arena-lockstep` and `lobby` with the embedded
    /// modes.
    pub fn with_sample_games() -> ServerBuilder {
        Server::builder()
            .state_game::<Arena>("arena")
            .lockstep_game::<ArenaLockstep>("arena-lockstep")
            .state_game::<Lobby>("lobby")
            .default_modes(EMBEDDED_MODES_TOML)
    }
}

/// Registers games by name; `modes.toml` picks them with `game = "..."`.
#[derive(Debug, Default)]
pub struct ServerBuilder {
    games: GameRegistry,
    default_modes: String,
}

impl ServerBuilder {
    /// Registers a state-sync game under `name`.
    pub fn state_game<G: StateGame>(mut self, name: &str) -> Self {
        self.games.state_game::<G>(name);
        self
    }

    /// Registers a lockstep game under `name`.
    pub fn lockstep_game<G: LockstepGame>(mut self, name: &str) -> Self {
        self.games.lockstep_game::<G>(name);
        self
    }

    /// The modes file (TOML text, see `assets/modes.toml`) used when `--modes` is not given.
    pub fn default_modes(mut self, toml: impl Into<String>) -> Self {
        self.default_modes = toml.into();
        self
    }

    /// The games registered so far.
    pub fn games(&self) -> &GameRegistry {
        &self.games
    }

    /// Parses the command line and runs the server until SIGTERM / Ctrl-C. A mode that names
    /// an unregistered game is a start-up error (exit code 2) listing the registered names.
    pub fn run(self) -> ExitCode {
        crate::cli::run(self.games, &self.default_modes)
    }
}
