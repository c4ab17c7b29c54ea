//! Games registered by name, and the per-mode room factories built from them at start-up: a
//! mode that names an unregistered game, runs a game with the wrong sync kind, or has
//! `params` the game cannot decode is a start-up error.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::Arc;

use tickroom_game::modes::{ModeConfig, ModeSync, Modes};
use tickroom_game::{GameError, LockstepGame, Setup, StateGame};

use super::lockstep::LockstepSim;
use super::sim::Sim;
use super::state::StateSim;

/// Makes the sim of a new room of one mode from the room's seed.
pub type RoomFactory = Arc<dyn Fn(u64) -> Box<dyn Sim> + Send + Sync>;

/// What a room taken over from another server is restored from.
#[derive(Debug, Clone, Copy)]
pub struct RestoreFrom<'a> {
    /// The room: its id seeds the game, as at its creation.
    pub room_id: u64,
    /// State sync: the game's save version and bytes, and the tick the image was taken at.
    pub save_version: u16,
    pub save: &'a [u8],
    pub tick: u64,
    /// Lockstep: the stored frame log (encoded `Frame` messages of frames 1, 2, ...).
    pub frames: &'a [Vec<u8>],
}

/// Makes the sim of a room taken over from another server.
pub type RoomRestorer =
    Arc<dyn Fn(&RestoreFrom<'_>) -> Result<Box<dyn Sim>, GameError> + Send + Sync>;

/// Turns a mode into its room factory (and restorer), decoding the mode's params into the
/// game's type.
type Binder = Arc<
    dyn Fn(&Arc<ModeConfig>) -> Result<(RoomFactory, Option<RoomRestorer>), String> + Send + Sync,
>;

/// Games by name, each with its sync kind.
#[derive(Clone, Default)]
pub struct GameRegistry {
    games: BTreeMap<String, (ModeSync, Binder)>,
}

impl fmt::Debug for GameRegistry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.games.keys()).finish()
    }
}

/// Why the modes and the registered games do not fit together.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RegistryError {
    /// A mode names a game nobody registered.
    #[error("mode {mode:?} runs game {game:?}, which is not registered; registered games: {}", registered.join(", "))]
    UnknownGame {
        mode: String,
        game: String,
        registered: Vec<String>,
    },
    /// A mode's sync kind is not the game's.
    #[error("mode {mode:?} says sync = {mode_sync:?}, but game {game:?} is a {game_sync:?} game")]
    WrongSync {
        mode: String,
        game: String,
        mode_sync: ModeSync,
        game_sync: ModeSync,
    },
    /// A mode's `params` table does not decode into the game's `Params`.
    #[error("mode {mode:?}: params for game {game:?} do not decode: {problem}")]
    BadParams {
        mode: String,
        game: String,
        problem: String,
    },
}

impl GameRegistry {
    /// Registers a state-sync game under `name` (a later registration replaces it).
    pub fn state_game<G: StateGame>(&mut self, name: &str) {
        let binder: Binder = Arc::new(|mode: &Arc<ModeConfig>| {
            let params: Arc<G::Params> = Arc::new(decode_params::<G::Params>(mode)?);
            let (for_new, for_restore) = (mode.clone(), mode.clone());
            let restore_params = params.clone();
            let factory = Arc::new(move |seed| {
                let sim: Box<dyn Sim> =
                    Box::new(StateSim::<G>::new(&setup(&for_new, seed, &params)));
                sim
            }) as RoomFactory;
            let restorer = Arc::new(move |from: &RestoreFrom<'_>| {
                let setup = setup(&for_restore, from.room_id, &*restore_params);
                let game = G::restore(&setup, from.save_version, from.save)?;
                let sim = StateSim::with_game(game, &setup).at_tick(from.tick);
                Ok(Box::new(sim) as Box<dyn Sim>)
            }) as RoomRestorer;
            Ok((factory, Some(restorer)))
        });
        self.games
            .insert(name.to_string(), (ModeSync::State, binder));
    }

    /// Registers a lockstep game under `name`.
    pub fn lockstep_game<G: LockstepGame>(&mut self, name: &str) {
        let binder: Binder = Arc::new(|mode: &Arc<ModeConfig>| {
            let params: Arc<G::Params> = Arc::new(decode_params::<G::Params>(mode)?);
            let mode = mode.clone();
            let (for_restore, restore_params) = (mode.clone(), params.clone());
            let factory = Arc::new(move |seed| {
                let sim: Box<dyn Sim> = Box::new(
                    LockstepSim::<G>::new(&setup(&mode, seed, &params), mode.server_sim)
                        .with_spectator_delay(mode.spectator_delay_frames()),
                );
                sim
            }) as RoomFactory;
            // The game is created again from its seed and stepped through the stored frames.
            let restorer = Arc::new(move |from: &RestoreFrom<'_>| {
                let mode = &for_restore;
                let setup = setup(mode, from.room_id, &*restore_params);
                let sim = LockstepSim::<G>::restored(&setup, mode.server_sim, from.frames)?
                    .with_spectator_delay(mode.spectator_delay_frames());
                Ok(Box::new(sim) as Box<dyn Sim>)
            }) as RoomRestorer;
            Ok((factory, Some(restorer)))
        });
        self.games
            .insert(name.to_string(), (ModeSync::Lockstep, binder));
    }

    /// Registered game names, sorted.
    pub fn names(&self) -> Vec<String> {
        self.games.keys().cloned().collect()
    }

    /// A room factory for every mode, or the first mode that does not fit.
    pub fn bind(&self, modes: &Modes) -> Result<HashMap<String, ModeRooms>, RegistryError> {
        let mut out = HashMap::new();
        for m in modes.iter() {
            let (sync, binder) =
                self.games
                    .get(&m.game)
                    .ok_or_else(|| RegistryError::UnknownGame {
                        mode: m.name.clone(),
                        game: m.game.clone(),
                        registered: self.names(),
                    })?;
            if *sync != m.sync {
                return Err(RegistryError::WrongSync {
                    mode: m.name.clone(),
                    game: m.game.clone(),
                    mode_sync: m.sync,
                    game_sync: *sync,
                });
            }
            let mode = Arc::new(m.clone());
            let (factory, restorer) =
                binder(&mode).map_err(|problem| RegistryError::BadParams {
                    mode: m.name.clone(),
                    game: m.game.clone(),
                    problem,
                })?;
            out.insert(
                m.name.clone(),
                ModeRooms {
                    mode,
                    factory,
                    restorer,
                },
            );
        }
        Ok(out)
    }
}

/// A mode and the factory of its rooms.
#[derive(Clone)]
pub struct ModeRooms {
    pub mode: Arc<ModeConfig>,
    pub factory: RoomFactory,
    /// How a room of the mode is taken over from an image (state sync; `None` for lockstep).
    pub restorer: Option<RoomRestorer>,
}

impl fmt::Debug for ModeRooms {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ModeRooms")
            .field("mode", &self.mode.name)
            .finish_non_exhaustive()
    }
}

fn setup<'a, P>(mode: &'a ModeConfig, seed: u64, params: &'a P) -> Setup<'a, P> {
    Setup {
        mode: &mode.name,
        max_players: mode.players,
        tick_rate_hz: mode.tick_rate_hz,
        seed,
        params,
    }
}

fn decode_params<P: serde::de::DeserializeOwned>(mode: &ModeConfig) -> Result<P, String> {
    toml::Value::Table(mode.params.clone())
        .try_into()
        .map_err(|e: toml::de::Error| e.to_string())
}
