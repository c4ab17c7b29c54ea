//! How a game's bot plays. A game implements [`GameBot`] (what to send, what to make of what
//! arrives) and hands a [`GameBotFactory`] to [`crate::run_cli`]; everything else — login,
//! matchmaking, reconnects, rejoins, the link conditioner, measurements, the report — is the
//! bot crate's. [`RandomBot`] plays any mode of any game; [`default_factory`] picks the arena
//! bots for the modes `tickroom` ships and the random bot for the rest.
//!
//! How the bot knows the game behind a mode: the `Welcome` says only the sync kind and the room
//! size, so the default factory looks the queued mode up in the modes file built into the
//! binary (`assets/modes.toml`, whose `game` field names the game) and uses an arena bot only
//! when the room's sync kind is the one that game runs. A mode the file does not know, or
//! one a server configured differently, gets the random bot: its inputs may not decode, which
//! a server skips, so the load and the measurements stay meaningful.

use std::collections::HashMap;
use std::sync::Arc;

use rand::rngs::SmallRng;
use rand::Rng;
use tickroom_game::modes::Modes;
use tickroom_game::GameError;
use tickroom_protocol::{SyncKind, Welcome};

mod arena;

pub use arena::{watching_arena, ArenaLockstepBot, ArenaStickBot};

/// The name under which `tickroom` registers the state-sync arena (`game` in modes.toml).
pub const ARENA_GAME: &str = "arena";
/// The name under which `tickroom` registers the lockstep arena.
pub const ARENA_LOCKSTEP_GAME: &str = "arena-lockstep";
/// Longest input the random bot sends, in bytes.
pub const RANDOM_INPUT_MAX_BYTES: usize = 8;

/// How a bot plays one game in one room. The bot's loop calls it on the bot's own task; the
/// `rng` it passes is the bot's seeded generator, so a swarm with `--seed` is reproducible.
///
/// An `Err` from a method that reads server bytes counts as bad data in the swarm's
/// counters; the bot plays on.
pub trait GameBot: Send + 'static {
    /// State sync: the next input to send (called at `--input-hz`, else the room's tick rate,
    /// once the room started).
    fn next_input(&mut self, rng: &mut SmallRng) -> Vec<u8>;

    /// State sync: a snapshot arrived (`baseline == 0`: full, else a delta against that tick).
    /// Decode it with `tickroom_protocol::view::ViewTracker` if the bot needs the world.
    fn on_snapshot(
        &mut self,
        _tick: u64,
        _baseline: u64,
        _payload: &[u8],
    ) -> Result<(), GameError> {
        Ok(())
    }

    /// Lockstep: the input for `frame` (called once per frame).
    fn frame_input(&mut self, frame: u64, rng: &mut SmallRng) -> Vec<u8>;

    /// Lockstep: frame `frame` closed with one input per slot. Called for consecutive frames
    /// only; after a gap (frames lost) it is not called again in this room, since a sim
    /// cannot follow. Return the state checksum if the bot runs the sim: the bot sends it for
    /// every frame that is a multiple of [`crate::bot::CHECKSUM_INTERVAL_FRAMES`].
    fn on_frame(&mut self, _frame: u64, _inputs: &[Vec<u8>]) -> Result<Option<u64>, GameError> {
        Ok(None)
    }

    /// A custom message from the game; `Some(bytes)` answers with a custom message.
    fn on_message(&mut self, _payload: &[u8]) -> Result<Option<Vec<u8>>, GameError> {
        Ok(None)
    }

    /// The match ended with this result (the room closes right after).
    fn on_match_ended(&mut self, _result: &[u8]) -> Result<(), GameError> {
        Ok(())
    }

    /// A line about what the bot saw, for `play`'s summary (`None`: nothing to say).
    fn report(&self) -> Option<String> {
        None
    }
}

/// Makes the bot for one room: called on every `Joined` (a rejoin gets a fresh bot) with the
/// room's welcome and the mode the bot queued for.
pub type GameBotFactory = Arc<dyn Fn(&Welcome, &str) -> Box<dyn GameBot> + Send + Sync>;

/// Wraps a closure as a [`GameBotFactory`] (it spells out the closure's argument types).
pub fn factory<F>(make: F) -> GameBotFactory
where
    F: Fn(&Welcome, &str) -> Box<dyn GameBot> + Send + Sync + 'static,
{
    Arc::new(make)
}

/// The factory of `tickroom-bot`: the arena bots for the modes of the built-in modes file
/// that run an arena game with the sync kind the room has, the random bot for anything else.
pub fn default_factory() -> GameBotFactory {
    let games: HashMap<String, String> = Modes::embedded()
        .iter()
        .map(|m| (m.name.clone(), m.game.clone()))
        .collect();
    factory(
        move |welcome, mode| match (games.get(mode).map(String::as_str), welcome.sync) {
            (Some(ARENA_GAME), SyncKind::State) => Box::new(ArenaStickBot::default()),
            (Some(ARENA_LOCKSTEP_GAME), SyncKind::Lockstep) => {
                Box::new(ArenaLockstepBot::new(welcome))
            }
            _ => Box::new(RandomBot),
        },
    )
}

/// Plays any mode of any game: random short byte strings as inputs (1 to
/// [`RANDOM_INPUT_MAX_BYTES`]), no checksums, no answers to messages.
#[derive(Debug, Clone, Copy, Default)]
pub struct RandomBot;

impl RandomBot {
    fn input(rng: &mut SmallRng) -> Vec<u8> {
        let len = rng.random_range(1..=RANDOM_INPUT_MAX_BYTES);
        (0..len).map(|_| rng.random()).collect()
    }
}

impl GameBot for RandomBot {
    fn next_input(&mut self, rng: &mut SmallRng) -> Vec<u8> {
        RandomBot::input(rng)
    }

    fn frame_input(&mut self, _frame: u64, rng: &mut SmallRng) -> Vec<u8> {
        RandomBot::input(rng)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    pub(crate) fn welcome(sync: SyncKind) -> Welcome {
        Welcome {
            session_id: 1,
            resume_counter: 0,
            room_id: 42,
            player_id: 7,
            slot: 1,
            max_players: 4,
            sync,
            tick_rate_hz: 30,
            tick: 1,
            next_seq: 1,
            resumed: false,
            input_redundancy: 8,
        }
    }

    #[test]
    fn random_inputs_are_short_nonempty_and_seeded() {
        let mut rng = SmallRng::seed_from_u64(3);
        let mut bot = RandomBot;
        let mut lengths = std::collections::HashSet::new();
        for frame in 1..200 {
            let state = bot.next_input(&mut rng);
            let lockstep = bot.frame_input(frame, &mut rng);
            for input in [&state, &lockstep] {
                assert!((1..=RANDOM_INPUT_MAX_BYTES).contains(&input.len()));
                lengths.insert(input.len());
            }
            assert_eq!(
                bot.on_frame(frame, std::slice::from_ref(&lockstep)),
                Ok(None)
            );
        }
        assert!(lengths.len() > 1, "lengths vary: {lengths:?}");
        assert_eq!(bot.on_message(b"hi"), Ok(None));
        let again: Vec<_> = {
            let mut rng = SmallRng::seed_from_u64(3);
            (0..5).map(|_| RandomBot.next_input(&mut rng)).collect()
        };
        let mut rng = SmallRng::seed_from_u64(3);
        let first: Vec<_> = (0..5).map(|_| RandomBot.next_input(&mut rng)).collect();
        assert_eq!(first, again, "same seed, same inputs");
    }

    /// What the default factory picks, told apart by what the bot sends: arena inputs are
    /// always 3 bytes (random ones vary), the lockstep sim answers frames with a checksum.
    fn check(mode: &str, sync: SyncKind, expect: &str) {
        let mut bot = default_factory()(&welcome(sync), mode);
        let mut rng = SmallRng::seed_from_u64(1);
        let inputs: Vec<Vec<u8>> = (1..=20)
            .map(|frame| match sync {
                SyncKind::State => bot.next_input(&mut rng),
                SyncKind::Lockstep => bot.frame_input(frame, &mut rng),
            })
            .collect();
        let checksum = bot.on_frame(1, &[Vec::new(), inputs[0].clone()]);
        let picked = match (inputs.iter().all(|i| i.len() == 3), checksum) {
            (true, Ok(Some(_))) => "arena-lockstep",
            (true, Ok(None)) => "arena",
            _ => "random",
        };
        assert_eq!(picked, expect, "{mode} {sync:?}");
    }

    #[test]
    fn default_factory_knows_the_arena_modes() {
        check("arena", SyncKind::State, "arena");
        check("duel", SyncKind::State, "arena");
        check("arena-lockstep", SyncKind::Lockstep, "arena-lockstep");
        check("duel-lockstep", SyncKind::Lockstep, "arena-lockstep");
        // A server whose `arena` runs by lockstep is not the game this bot knows.
        check("arena", SyncKind::Lockstep, "random");
        check("chess-blitz", SyncKind::State, "random");
        check("rts-4p", SyncKind::Lockstep, "random");
    }
}
