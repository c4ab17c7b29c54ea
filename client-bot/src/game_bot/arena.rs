//! The arena bots: a random-walk stick for the state-sync arena, and the same stick plus the
//! lockstep arena's simulation (stepped on every frame, checksummed) for `arena-lockstep`.

use rand::rngs::SmallRng;
use rand::Rng;
use std::collections::BTreeMap;
use tickroom_game::arena::ArenaInput;
use tickroom_game::arena_lockstep::LockstepInput;

use tickroom_game::modes::Modes;
use tickroom_game::{Arena, ArenaLockstep, GameError, LockstepGame, StateCodec};
use tickroom_protocol::view::ViewTracker;
use tickroom_protocol::{SyncKind, Welcome};

use super::{factory, GameBot, GameBotFactory, ARENA_GAME};

/// Largest change of a stick axis per input (random walk).
const WALK_STEP: i16 = 24;
/// Chance that an input presses dash.
const DASH_PROBABILITY: f64 = 0.05;

/// A stick that wanders, with an occasional dash.
#[derive(Debug, Default)]
struct RandomWalk {
    x: i8,
    y: i8,
}

impl RandomWalk {
    /// The next (move_x, move_y, buttons).
    fn next(&mut self, rng: &mut SmallRng) -> (i8, i8, u8) {
        let mut walk = |v: i8| {
            let step = rng.random_range(-WALK_STEP..=WALK_STEP);
            (i16::from(v) + step).clamp(-127, 127) as i8
        };
        self.x = walk(self.x);
        self.y = walk(self.y);
        let buttons = u8::from(rng.random_bool(DASH_PROBABILITY));
        (self.x, self.y, buttons)
    }
}

/// The state-sync arena: random-walk stick inputs; snapshots are not decoded (a swarm of
/// thousands of bots measures the server, not the bots' decoders).
#[derive(Debug, Default)]
pub struct ArenaStickBot {
    walk: RandomWalk,
}

impl GameBot for ArenaStickBot {
    fn next_input(&mut self, rng: &mut SmallRng) -> Vec<u8> {
        let (move_x, move_y, buttons) = self.walk.next(rng);
        let mut bytes = Vec::with_capacity(4);
        Arena::encode_input(
            &ArenaInput {
                move_x,
                move_y,
                buttons,
            },
            &mut bytes,
        );
        bytes
    }

    fn frame_input(&mut self, _frame: u64, _rng: &mut SmallRng) -> Vec<u8> {
        // A state-sync game has no frames; the default input if a server asks anyway.
        Vec::new()
    }
}

/// The lockstep arena: random-walk stick inputs per frame, and the simulation stepped with
/// every frame's inputs so the bot can report checksums (the server compares them).
#[derive(Debug)]
pub struct ArenaLockstepBot {
    walk: RandomWalk,
    sim: ArenaLockstep,
    /// The frame's inputs decoded (reused from frame to frame).
    decoded: Vec<LockstepInput>,
}

impl ArenaLockstepBot {
    /// The sim of the room in `welcome` (seeded by the room id, as on every client).
    pub fn new(welcome: &Welcome) -> ArenaLockstepBot {
        ArenaLockstepBot {
            walk: RandomWalk::default(),
            sim: ArenaLockstep::new(welcome.max_players, welcome.room_id),
            decoded: Vec::with_capacity(usize::from(welcome.max_players)),
        }
    }
}

impl GameBot for ArenaLockstepBot {
    fn next_input(&mut self, _rng: &mut SmallRng) -> Vec<u8> {
        // A lockstep game has no state-sync inputs; the default input if a server asks anyway.
        Vec::new()
    }

    fn frame_input(&mut self, _frame: u64, rng: &mut SmallRng) -> Vec<u8> {
        let (move_x, move_y, buttons) = self.walk.next(rng);
        let mut bytes = Vec::with_capacity(4);
        ArenaLockstep::encode_input(
            &LockstepInput {
                move_x,
                move_y,
                buttons,
            },
            &mut bytes,
        );
        bytes
    }

    /// Steps the sim; an input that does not decode is stepped as the idle input (as the
    /// server does) and makes this frame bad data, with no checksum sent for it.
    fn on_frame(&mut self, frame: u64, inputs: &[Vec<u8>]) -> Result<Option<u64>, GameError> {
        let mut bad = None;
        self.decoded.clear();
        self.decoded.extend(inputs.iter().map(|b| {
            ArenaLockstep::decode_input(b).unwrap_or_else(|e| {
                bad.get_or_insert(e);
                LockstepInput::default()
            })
        }));
        self.sim.step(frame, &self.decoded);
        match bad {
            Some(e) => Err(e),
            None => Ok(Some(self.sim.checksum())),
        }
    }
}

/// Wraps `factory` so that in the sample arena's state-sync modes (of the built-in modes
/// file) the bot also decodes every snapshot and, at the end, reports how far each other
/// player moved: what `tickroom-bot play --watch` prints, so a test can see another client's
/// inputs take effect. Other modes get `factory`'s bot unchanged.
pub fn watching_arena(inner: GameBotFactory) -> GameBotFactory {
    let arena_modes: Vec<String> = Modes::embedded()
        .iter()
        .filter(|m| m.game == ARENA_GAME)
        .map(|m| m.name.clone())
        .collect();
    factory(move |welcome, mode| {
        let bot = inner(welcome, mode);
        if welcome.sync == SyncKind::State && arena_modes.iter().any(|m| m == mode) {
            Box::new(ArenaWatcher {
                inner: bot,
                own_slot: welcome.slot,
                views: ViewTracker::default(),
                first: BTreeMap::new(),
                moved_cm: BTreeMap::new(),
                decoded: 0,
            })
        } else {
            bot
        }
    })
}

/// Decodes the arena's snapshots beside another bot and keeps, per other slot, where it was
/// first seen and the farthest it has been from there.
struct ArenaWatcher {
    inner: Box<dyn GameBot>,
    own_slot: u8,
    views: ViewTracker<Arena>,
    first: BTreeMap<u8, [i16; 2]>,
    moved_cm: BTreeMap<u8, f32>,
    decoded: u64,
}

impl GameBot for ArenaWatcher {
    fn next_input(&mut self, rng: &mut SmallRng) -> Vec<u8> {
        self.inner.next_input(rng)
    }

    fn on_snapshot(&mut self, tick: u64, baseline: u64, payload: &[u8]) -> Result<(), GameError> {
        self.inner.on_snapshot(tick, baseline, payload)?;
        let view = self.views.apply(tick, baseline, payload)?;
        self.decoded += 1;
        for p in view.players.iter().filter(|p| p.slot != self.own_slot) {
            let start = *self.first.entry(p.slot).or_insert(p.pos);
            let dx = f32::from(p.pos[0]) - f32::from(start[0]);
            let dy = f32::from(p.pos[1]) - f32::from(start[1]);
            let far = self.moved_cm.entry(p.slot).or_insert(0.0);
            *far = far.max((dx * dx + dy * dy).sqrt());
        }
        Ok(())
    }

    fn frame_input(&mut self, frame: u64, rng: &mut SmallRng) -> Vec<u8> {
        self.inner.frame_input(frame, rng)
    }

    fn on_frame(&mut self, frame: u64, inputs: &[Vec<u8>]) -> Result<Option<u64>, GameError> {
        self.inner.on_frame(frame, inputs)
    }

    fn on_message(&mut self, payload: &[u8]) -> Result<Option<Vec<u8>>, GameError> {
        self.inner.on_message(payload)
    }

    fn on_match_ended(&mut self, result: &[u8]) -> Result<(), GameError> {
        self.inner.on_match_ended(result)
    }

    fn report(&self) -> Option<String> {
        let others: Vec<String> = self
            .moved_cm
            .iter()
            .map(|(slot, cm)| format!("slot {slot} {:.2} m", cm / 100.0))
            .collect();
        Some(format!(
            "others moved    {} ({} snapshots decoded)",
            if others.is_empty() {
                "nobody seen".to_string()
            } else {
                others.join(", ")
            },
            self.decoded
        ))
    }
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;
    use tickroom_protocol::SyncKind;

    use super::*;
    use crate::game_bot::tests::welcome;

    #[test]
    fn stick_inputs_decode_as_arena_inputs() {
        let mut rng = SmallRng::seed_from_u64(9);
        let mut bot = ArenaStickBot::default();
        for _ in 0..100 {
            let bytes = bot.next_input(&mut rng);
            assert!(Arena::decode_input(&bytes).is_ok());
        }
    }

    #[test]
    fn lockstep_bots_of_one_room_agree_and_bad_frames_are_reported() {
        let w = welcome(SyncKind::Lockstep);
        let (mut a, mut b) = (ArenaLockstepBot::new(&w), ArenaLockstepBot::new(&w));
        let mut rng = SmallRng::seed_from_u64(5);
        for frame in 1..=30 {
            let inputs = vec![a.frame_input(frame, &mut rng), Vec::new()];
            let hash = a.on_frame(frame, &inputs).unwrap();
            assert!(hash.is_some());
            assert_eq!(hash, b.on_frame(frame, &inputs).unwrap(), "frame {frame}");
        }
        assert!(a.on_frame(31, &[vec![1, 2]]).is_err());
    }
}
