//! The lockstep sample game: the arena's rules in fixed-point integers.
//!
//! Every client steps this simulation itself from the same inputs, so it must produce
//! bit-identical states everywhere. Floats are therefore banned from the state and the
//! step: positions are Q16.16 metres in `i32`, products go through `i64`, square roots
//! use the integer `isqrt`, and randomness comes from the seeded SplitMix64 whose state
//! is part of the checksum.
//!
//! Unlike the state-sync arena, every slot up to `max_players` is on the field from the
//! first frame (lockstep has no join/leave events); an absent player simply sends the
//! default input and stands still.

use crate::rng::{slot_seed, SplitMix64};
use crate::sdk::{LockstepGame, NoMessage, NoParams, Setup};
use crate::{bytes, GameError};

/// A Q16.16 fixed-point number of metres (or metres per second).
pub type Fixed = i32;

/// Fractional bits of [`Fixed`].
pub const FIXED_FRAC_BITS: u32 = 16;
/// One metre in [`Fixed`] units.
pub const FIXED_ONE_M: Fixed = 1 << FIXED_FRAC_BITS;
/// Frames per simulated second; each frame advances time by `1 / FRAME_RATE_HZ` s.
pub const FRAME_RATE_HZ: i64 = 30;
/// Half the side of the square arena, which is centred on the origin.
pub const ARENA_HALF_SIZE_M: Fixed = 50 * FIXED_ONE_M;
/// Radius of every player's circle.
pub const PLAYER_RADIUS_M: Fixed = FIXED_ONE_M / 2;
/// Radius of every orb's circle.
pub const ORB_RADIUS_M: Fixed = FIXED_ONE_M / 2;
/// Speed of a player holding the stick fully over.
pub const MAX_SPEED_M_PER_S: Fixed = 8 * FIXED_ONE_M;
/// How much a dash multiplies speed for the frame it is pressed in.
pub const DASH_SPEED_FACTOR: i64 = 2;
/// `buttons` bit that requests a dash.
pub const DASH_BUTTON: u8 = 1;
/// Largest magnitude of `move_x` / `move_y`; `-128` is treated as `-127`.
pub const MAX_AXIS_INPUT: i8 = 127;
/// Number of orbs in play at any time.
pub const ORB_COUNT: usize = 8;

/// Furthest a player's centre may be from the origin along either axis.
const PLAYER_LIMIT_M: Fixed = ARENA_HALF_SIZE_M - PLAYER_RADIUS_M;
/// Furthest an orb's centre may be from the origin along either axis.
const ORB_LIMIT_M: Fixed = ARENA_HALF_SIZE_M - ORB_RADIUS_M;

/// FNV-1a 64-bit offset basis.
const FNV_OFFSET_BASIS: u64 = 0xCBF2_9CE4_8422_2325;
/// FNV-1a 64-bit prime.
const FNV_PRIME: u64 = 0x0000_0100_0000_01B3;

/// One player's input for one frame (same shape and wire format as the arena's).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LockstepInput {
    /// Horizontal stick, -127..=127 scaled to [`MAX_SPEED_M_PER_S`].
    pub move_x: i8,
    /// Vertical stick, -127..=127 scaled to [`MAX_SPEED_M_PER_S`].
    pub move_y: i8,
    /// Button bits; bit 0 is [`DASH_BUTTON`], the rest are reserved and ignored.
    pub buttons: u8,
}

/// One player's state; `[x, y]` pairs in [`Fixed`].
#[derive(Debug, Clone, PartialEq, Eq)]
struct Player {
    pos: [Fixed; 2],
    vel: [Fixed; 2],
    score: u32,
}

/// The lockstep arena match.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArenaLockstep {
    frame: u64,
    /// Indexed by slot; every slot is always present.
    players: Vec<Player>,
    orbs: [[Fixed; 2]; ORB_COUNT],
    rng: SplitMix64,
}

impl ArenaLockstep {
    /// Number of frames stepped so far.
    pub fn frame(&self) -> u64 {
        self.frame
    }

    /// Number of player slots (all of them are on the field).
    pub fn player_count(&self) -> u8 {
        // `new` takes a u8, so the length always fits.
        self.players.len() as u8
    }

    /// Score of `slot`, or `None` past the last slot.
    pub fn score(&self, slot: u8) -> Option<u32> {
        self.players.get(usize::from(slot)).map(|p| p.score)
    }

    /// Push every overlapping pair apart by half the overlap each, then re-clamp.
    fn separate_players(&mut self) {
        for i in 0..self.players.len() {
            let (head, tail) = self.players.split_at_mut(i + 1);
            let a = &mut head[i];
            for b in tail {
                push_apart(a, b);
            }
        }
        for p in &mut self.players {
            p.pos = clamp_to_arena(p.pos, PLAYER_LIMIT_M);
        }
    }

    /// Award each orb to the lowest-slot player touching it and respawn it.
    fn collect_orbs(&mut self) {
        let reach = i64::from(PLAYER_RADIUS_M + ORB_RADIUS_M);
        for orb in &mut self.orbs {
            let toucher = self
                .players
                .iter_mut()
                .find(|p| distance_sq(p.pos, *orb) < reach * reach);
            if let Some(p) = toucher {
                p.score = p.score.saturating_add(1);
                *orb = random_point(&mut self.rng, ORB_LIMIT_M);
            }
        }
    }
}

impl ArenaLockstep {
    /// A fresh match for `max_players` slots; `seed` makes it reproducible.
    pub fn new(max_players: u8, seed: u64) -> Self {
        let mut rng = SplitMix64::new(seed);
        let orbs = std::array::from_fn(|_| random_point(&mut rng, ORB_LIMIT_M));
        let players = (0..max_players)
            .map(|slot| Player {
                pos: random_point(&mut SplitMix64::new(slot_seed(seed, slot)), PLAYER_LIMIT_M),
                vel: [0, 0],
                score: 0,
            })
            .collect();
        Self {
            frame: 0,
            players,
            orbs,
            rng,
        }
    }
}

impl LockstepGame for ArenaLockstep {
    type Params = NoParams;
    type Input = LockstepInput;
    type ClientMessage = NoMessage;
    type ServerMessage = NoMessage;

    fn create(setup: &Setup<'_, NoParams>) -> Self {
        ArenaLockstep::new(setup.max_players, setup.seed)
    }

    fn decode_input(bytes: &[u8]) -> Result<LockstepInput, GameError> {
        let (move_x, move_y, buttons) = bytes::move_input(bytes)?;
        Ok(LockstepInput {
            move_x,
            move_y,
            buttons,
        })
    }

    fn encode_input(input: &LockstepInput, out: &mut Vec<u8>) {
        bytes::put_move_input(out, input.move_x, input.move_y, input.buttons);
    }

    /// Frames must be stepped in order; the state counts them itself, so the `frame`
    /// argument (whatever numbering the caller uses) does not enter the simulation.
    fn step(&mut self, _frame: u64, inputs: &[LockstepInput]) {
        self.frame = self.frame.wrapping_add(1);
        let idle = LockstepInput::default();
        for (slot, p) in self.players.iter_mut().enumerate() {
            p.vel = velocity(inputs.get(slot).unwrap_or(&idle));
            let moved = [
                p.pos[0] + per_frame(p.vel[0]),
                p.pos[1] + per_frame(p.vel[1]),
            ];
            p.pos = clamp_to_arena(moved, PLAYER_LIMIT_M);
        }
        self.separate_players();
        self.collect_orbs();
    }

    fn checksum(&self) -> u64 {
        let mut h = Fnv1a::new();
        h.write(&self.frame.to_le_bytes());
        h.write(&(self.players.len() as u64).to_le_bytes());
        for p in &self.players {
            for v in p.pos.iter().chain(&p.vel) {
                h.write(&v.to_le_bytes());
            }
            h.write(&p.score.to_le_bytes());
        }
        for v in self.orbs.iter().flatten() {
            h.write(&v.to_le_bytes());
        }
        h.write(&self.rng.state().to_le_bytes());
        h.finish()
    }

    fn save(&self, out: &mut Vec<u8>) {
        bytes::put_u64(out, self.frame);
        bytes::put_u64(out, self.rng.state());
        bytes::put_u8(out, self.players.len() as u8);
        for p in &self.players {
            for v in p.pos.iter().chain(&p.vel) {
                bytes::put_u32(out, *v as u32);
            }
            bytes::put_u32(out, p.score);
        }
        for v in self.orbs.iter().flatten() {
            bytes::put_u32(out, *v as u32);
        }
    }

    fn restore(setup: &Setup<'_, NoParams>, version: u16, buf: &[u8]) -> Result<Self, GameError> {
        if version != Self::SAVE_VERSION {
            return Err(GameError::Invalid("unknown arena-lockstep save version"));
        }
        let mut r = bytes::Reader::new(buf);
        let frame = r.u64()?;
        let rng = SplitMix64::new(r.u64()?);
        let n = r.u8()?;
        if n != setup.max_players {
            return Err(GameError::Invalid("saved match has another room size"));
        }
        let fixed =
            |r: &mut bytes::Reader<'_>| -> Result<Fixed, GameError> { Ok(r.u32()? as Fixed) };
        // A position the game could never reach would overflow the next step's arithmetic.
        let point = |r: &mut bytes::Reader<'_>, limit_m: Fixed| -> Result<[Fixed; 2], GameError> {
            let p = [fixed(r)?, fixed(r)?];
            if clamp_to_arena(p, limit_m) != p {
                return Err(GameError::Invalid("saved position outside the arena"));
            }
            Ok(p)
        };
        let mut players = Vec::with_capacity(usize::from(n));
        for _ in 0..n {
            let pos = point(&mut r, PLAYER_LIMIT_M)?;
            let vel = [fixed(&mut r)?, fixed(&mut r)?];
            players.push(Player {
                pos,
                vel,
                score: r.u32()?,
            });
        }
        let mut orbs = [[0; 2]; ORB_COUNT];
        for orb in &mut orbs {
            *orb = point(&mut r, ORB_LIMIT_M)?;
        }
        r.finish()?;
        Ok(ArenaLockstep {
            frame,
            players,
            orbs,
            rng,
        })
    }
}

/// Hand-written FNV-1a 64: tiny, platform-independent, and good enough to spot desyncs.
struct Fnv1a(u64);

impl Fnv1a {
    fn new() -> Self {
        Self(FNV_OFFSET_BASIS)
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 ^ u64::from(b)).wrapping_mul(FNV_PRIME);
        }
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

/// Velocity an input asks for; diagonals are normalised (integer sqrt) so they are not faster.
fn velocity(input: &LockstepInput) -> [Fixed; 2] {
    let axis = |v: i8| i64::from(v.max(-MAX_AXIS_INPUT));
    let (sx, sy) = (axis(input.move_x), axis(input.move_y));
    let full_stick = i64::from(MAX_AXIS_INPUT);
    let len_sq = sx * sx + sy * sy;
    // Stick length in 1/65536ths: isqrt truncates, and without the extra bits a full
    // diagonal would come out 0.3% faster than a straight line.
    let len_scaled = if len_sq > full_stick * full_stick {
        // len_sq <= 2 * 128^2, so shifting by 32 bits stays far below u64::MAX.
        ((len_sq as u64) << 32).isqrt() as i64
    } else {
        full_stick << 16
    };
    let boost = if input.buttons & DASH_BUTTON != 0 {
        DASH_SPEED_FACTOR
    } else {
        1
    };
    let speed = i64::from(MAX_SPEED_M_PER_S) * boost;
    // |s| << 16 <= len_scaled, so each result is within ±speed and fits in Fixed.
    let scale = |s: i64| ((s << 16) * speed / len_scaled) as Fixed;
    [scale(sx), scale(sy)]
}

/// Displacement in one frame at velocity `v` (Rust's integer division truncates the
/// same way on every platform).
fn per_frame(v: Fixed) -> Fixed {
    (i64::from(v) / FRAME_RATE_HZ) as Fixed
}

fn distance_sq(a: [Fixed; 2], b: [Fixed; 2]) -> i64 {
    let dx = i64::from(b[0]) - i64::from(a[0]);
    let dy = i64::from(b[1]) - i64::from(a[1]);
    dx * dx + dy * dy
}

/// Move two overlapping players apart symmetrically along the line between them.
fn push_apart(a: &mut Player, b: &mut Player) {
    let min_dist = 2 * i64::from(PLAYER_RADIUS_M);
    let dist_sq = distance_sq(a.pos, b.pos);
    if dist_sq >= min_dist * min_dist {
        return;
    }
    let dist = (dist_sq as u64).isqrt() as i64;
    let push = min_dist - dist;
    let (half_a, half_b) = (push / 2, push - push / 2);
    // Coincident centres have no direction between them, so split them along +x.
    let (nx, ny, len) = if dist == 0 {
        (1, 0, 1)
    } else {
        (
            i64::from(b.pos[0]) - i64::from(a.pos[0]),
            i64::from(b.pos[1]) - i64::from(a.pos[1]),
            dist,
        )
    };
    // Offsets are at most `push` < 1 m in magnitude, so they fit in Fixed.
    a.pos[0] -= (nx * half_a / len) as Fixed;
    a.pos[1] -= (ny * half_a / len) as Fixed;
    b.pos[0] += (nx * half_b / len) as Fixed;
    b.pos[1] += (ny * half_b / len) as Fixed;
}

fn clamp_to_arena(p: [Fixed; 2], limit_m: Fixed) -> [Fixed; 2] {
    p.map(|v| v.clamp(-limit_m, limit_m))
}

/// A uniformly random point with both coordinates in `-limit_m..=limit_m`.
fn random_point(rng: &mut SplitMix64, limit_m: Fixed) -> [Fixed; 2] {
    let span = 2 * u64::from(limit_m.unsigned_abs()) + 1;
    // below(span) < span <= 2 * Fixed::MAX + 1, so subtracting the limit lands in range.
    let mut coord = || (rng.below(span) as i64 - i64::from(limit_m)) as Fixed;
    let x = coord();
    [x, coord()]
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const SCRIPT_FRAMES: u64 = 10_000;
    const SCRIPT_PLAYERS: u8 = 6;
    const CHECK_EVERY_FRAMES: u64 = 100;

    fn input(move_x: i8, move_y: i8, buttons: u8) -> LockstepInput {
        LockstepInput {
            move_x,
            move_y,
            buttons,
        }
    }

    /// Play `SCRIPT_FRAMES` of seeded pseudo-random input, where each player holds an
    /// input for a while like a human would; `tamper` may rewrite a frame's inputs.
    /// Returns the checksum every `CHECK_EVERY_FRAMES` frames plus the final game.
    fn play(seed: u64, tamper: impl Fn(u64, &mut [LockstepInput])) -> (Vec<u64>, ArenaLockstep) {
        let mut game = ArenaLockstep::new(SCRIPT_PLAYERS, seed);
        let mut script = SplitMix64::new(seed ^ 0x005C_4197);
        let mut inputs = vec![LockstepInput::default(); usize::from(SCRIPT_PLAYERS)];
        let mut sums = Vec::new();
        for frame in 0..SCRIPT_FRAMES {
            for i in inputs.iter_mut() {
                if script.below(20) == 0 {
                    let [x, y, b, ..] = script.next_u64().to_le_bytes();
                    *i = input(x as i8, y as i8, b & DASH_BUTTON);
                }
            }
            let mut frame_inputs = inputs.clone();
            tamper(frame, &mut frame_inputs);
            game.step(frame, &frame_inputs);
            if game.frame().is_multiple_of(CHECK_EVERY_FRAMES) {
                sums.push(game.checksum());
            }
        }
        sums.push(game.checksum());
        (sums, game)
    }

    #[test]
    fn same_seed_and_inputs_give_same_checksums() {
        let (a, game_a) = play(1234, |_, _| {});
        let (b, game_b) = play(1234, |_, _| {});
        assert_eq!(a.len() as u64, SCRIPT_FRAMES / CHECK_EVERY_FRAMES + 1);
        assert_eq!(a, b);
        assert_eq!(game_a, game_b);
        assert_eq!(game_a.frame(), SCRIPT_FRAMES);
        // The script must exercise the interesting paths for the comparison to mean much.
        let total: u32 = (0..SCRIPT_PLAYERS).filter_map(|s| game_a.score(s)).sum();
        assert!(total > 0, "no orb was collected in the script");
        // The state keeps evolving: no two periodic checksums coincide.
        let periodic = &a[..a.len() - 1];
        let distinct: std::collections::HashSet<_> = periodic.iter().collect();
        assert_eq!(distinct.len(), periodic.len());
    }

    #[test]
    fn one_different_input_changes_the_final_checksum() {
        // Late in the run: walls clamp positions, so given enough frames a small
        // difference can be pressed out of the state again.
        const TAMPER_FRAME: u64 = SCRIPT_FRAMES - 2 * CHECK_EVERY_FRAMES;
        let (base, _) = play(1234, |_, _| {});
        let (tampered, _) = play(1234, |frame, inputs| {
            if frame == TAMPER_FRAME {
                inputs[2] = input(-inputs[2].move_x.saturating_add(1), 100, DASH_BUTTON);
            }
        });
        let before = (TAMPER_FRAME / CHECK_EVERY_FRAMES) as usize;
        assert_eq!(
            base[..before],
            tampered[..before],
            "frames before the change agree"
        );
        assert_ne!(base.last(), tampered.last());
    }

    #[test]
    fn different_seeds_differ() {
        let a = ArenaLockstep::new(4, 1);
        let b = ArenaLockstep::new(4, 2);
        assert_ne!(a.checksum(), b.checksum());
        assert_eq!(a.checksum(), ArenaLockstep::new(4, 1).checksum());
    }

    #[test]
    fn checksum_is_pinned_across_platforms() {
        // A golden value: if this changes, either the rules changed on purpose (update
        // it) or some platform computes a different frame, which lockstep cannot allow.
        let (sums, _) = play(42, |_, _| {});
        assert_eq!(*sums.last().expect("final checksum"), PINNED_CHECKSUM);
    }

    const PINNED_CHECKSUM: u64 = 6_813_692_428_556_944_182;

    #[test]
    fn players_move_by_exact_fixed_point_steps() {
        let mut g = ArenaLockstep::new(1, 5);
        g.players[0].pos = [0, 0];
        g.orbs = [[ORB_LIMIT_M, ORB_LIMIT_M]; ORB_COUNT];
        let step = MAX_SPEED_M_PER_S / FRAME_RATE_HZ as Fixed;
        g.step(0, &[input(127, 0, 0)]);
        assert_eq!(g.players[0].pos, [step, 0]);
        g.step(1, &[input(0, -128, DASH_BUTTON)]);
        assert_eq!(g.players[0].pos, [step, -2 * step]);
        g.step(2, &[]); // missed input: stands still
        assert_eq!(g.players[0].pos, [step, -2 * step]);
        assert_eq!(g.players[0].vel, [0, 0]);
    }

    #[test]
    fn diagonal_is_not_faster() {
        let [vx, vy] = velocity(&input(127, 127, 0));
        assert_eq!(vx, vy);
        let len_sq = i64::from(vx).pow(2) + i64::from(vy).pow(2);
        let len = (len_sq as u64).isqrt() as i64;
        // Within 1/65536 m/s of full speed.
        assert!(
            (len - i64::from(MAX_SPEED_M_PER_S)).abs() <= 1,
            "speed {len}"
        );
    }

    #[test]
    fn collisions_push_apart_and_walls_hold() {
        let mut g = ArenaLockstep::new(3, 5);
        g.players[0].pos = [0, 0];
        g.players[1].pos = [0, 0];
        g.players[2].pos = [PLAYER_LIMIT_M, 0];
        g.step(
            0,
            &[input(0, 0, 0), input(0, 0, 0), input(127, 0, DASH_BUTTON)],
        );
        let gap_sq = distance_sq(g.players[0].pos, g.players[1].pos);
        assert!(gap_sq >= (2 * i64::from(PLAYER_RADIUS_M) - 2).pow(2));
        assert_eq!(g.players[2].pos[0], PLAYER_LIMIT_M);
    }

    #[test]
    fn touching_an_orb_scores() {
        let mut g = ArenaLockstep::new(2, 5);
        let orb = g.orbs[3];
        g.players[1].pos = orb;
        g.step(0, &[]);
        assert_eq!(g.score(1), Some(1));
        assert_ne!(g.orbs[3], orb);
        assert_eq!(g.score(2), None);
    }

    /// Found by the fuzz harness: a save with a player at x = i32::MAX restored, and the next
    /// step overflowed (`attempt to add with overflow`).
    #[test]
    fn restore_refuses_positions_outside_the_arena() {
        let setup = Setup {
            mode: "m",
            max_players: 2,
            tick_rate_hz: 20,
            seed: 5,
            params: &NoParams {},
        };
        let mut saved = Vec::new();
        ArenaLockstep::new(2, 5).save(&mut saved);
        // frame u64, rng u64, player count u8, then player 0's x.
        let player_x = 17;
        let last_orb_y = saved.len() - 4;
        for (at, value) in [
            (player_x, i32::MAX),
            (player_x, -PLAYER_LIMIT_M - 1),
            (last_orb_y, ORB_LIMIT_M + 1),
        ] {
            let mut bad = saved.clone();
            bad[at..at + 4].copy_from_slice(&value.to_le_bytes());
            assert_eq!(
                ArenaLockstep::restore(&setup, ArenaLockstep::SAVE_VERSION, &bad),
                Err(GameError::Invalid("saved position outside the arena")),
                "{value} at {at}"
            );
        }
        let mut edge = saved.clone();
        edge[player_x..player_x + 4].copy_from_slice(&PLAYER_LIMIT_M.to_le_bytes());
        let mut g = ArenaLockstep::restore(&setup, ArenaLockstep::SAVE_VERSION, &edge).unwrap();
        g.step(
            0,
            &[input(127, 0, DASH_BUTTON), input(-128, 0, DASH_BUTTON)],
        );
    }

    #[test]
    fn input_wire_format() {
        let mut out = Vec::new();
        ArenaLockstep::encode_input(&input(-1, 2, 3), &mut out);
        assert_eq!(out, [0xFF, 2, 3]);
        assert_eq!(ArenaLockstep::decode_input(&out), Ok(input(-1, 2, 3)));
        assert_eq!(
            ArenaLockstep::decode_input(&[]),
            Ok(LockstepInput::default())
        );
        assert_eq!(ArenaLockstep::decode_input(&[9]), Err(GameError::Truncated));
        assert_eq!(
            ArenaLockstep::decode_input(&[1, 2, 3, 4]),
            Err(GameError::Trailing)
        );
    }

    proptest! {
        #[test]
        fn decode_input_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..8)) {
            let _ = ArenaLockstep::decode_input(&bytes);
        }

        #[test]
        fn input_round_trips(x in any::<i8>(), y in any::<i8>(), b in any::<u8>()) {
            let mut out = Vec::new();
            ArenaLockstep::encode_input(&input(x, y, b), &mut out);
            prop_assert_eq!(ArenaLockstep::decode_input(&out), Ok(input(x, y, b)));
        }

        /// A restored match steps to the same checksums as the saved one.
        #[test]
        fn save_restore_round_trips(
            before in proptest::collection::vec((any::<i8>(), any::<i8>()), 0..100),
            after in proptest::collection::vec((any::<i8>(), any::<i8>()), 1..50),
        ) {
            let mut g = ArenaLockstep::new(3, 5);
            for (n, (x, y)) in before.into_iter().enumerate() {
                g.step(n as u64, &[input(x, y, 0), input(y, x, 1), input(0, 0, 0)]);
            }
            let mut saved = Vec::new();
            g.save(&mut saved);
            let setup = Setup { mode: "m", max_players: 3, tick_rate_hz: 20, seed: 5, params: &NoParams {} };
            let mut r = ArenaLockstep::restore(&setup, ArenaLockstep::SAVE_VERSION, &saved).unwrap();
            prop_assert_eq!(&r, &g);
            for (n, (x, y)) in after.into_iter().enumerate() {
                let frame = [input(x, y, 0), input(y, x, 0), input(x, 0, 1)];
                g.step(n as u64, &frame);
                r.step(n as u64, &frame);
                prop_assert_eq!(r.checksum(), g.checksum());
            }
        }

        #[test]
        fn restore_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let setup = Setup { mode: "m", max_players: 3, tick_rate_hz: 20, seed: 5, params: &NoParams {} };
            let _ = ArenaLockstep::restore(&setup, ArenaLockstep::SAVE_VERSION, &bytes);
        }

        #[test]
        fn bounds_hold(
            frames in proptest::collection::vec((any::<i8>(), any::<i8>(), any::<u8>()), 1..300)
        ) {
            let mut g = ArenaLockstep::new(4, 9);
            for (n, (x, y, b)) in frames.into_iter().enumerate() {
                g.step(n as u64, &[input(x, y, b), input(y, x, b), input(x, x, 0)]);
                for p in &g.players {
                    prop_assert!(p.pos.iter().all(|v| v.abs() <= PLAYER_LIMIT_M));
                }
            }
        }
    }
}
