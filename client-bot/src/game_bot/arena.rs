//! The arena bots: a random-walk stick for the state-sync arena, and the same stick plus the
//! lockstep arena's simulation (stepped on every frame, checksummed) for `arena-lockstep`.

use rand::rngs::SmallRng;
use rand::Rng;
use tickroom_game::arena::ArenaInput;
use tickroom_game::arena_lockstep::LockstepInput;
use tickroom_game::{Arena, ArenaLockstep, GameError, LockstepGame, StateCodec};
use tickroom_protocol::Welcome;

use super::GameBot;

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
