//! The state-sync sample game: a top-down arena where players chase orbs.
//!
//! The server steps this simulation in `f32` and sends quantised snapshots; clients
//! never simulate, so floats are fine here (compare `arena_lockstep`, which must not
//! use them). Each slot's last input persists until replaced, so a lost input packet
//! just means the player keeps doing what they were doing.

mod snapshot;

pub use snapshot::{ArenaSnapshot, PlayerState};

use glam::Vec2;

use crate::rng::{slot_seed, SplitMix64};
use crate::sdk::{Ctx, Message, Player as SdkPlayer, Setup, StateCodec, StateGame, Viewer};
use crate::{bytes, GameError};

/// Half the side of the square arena, which is centred on the origin.
pub const ARENA_HALF_SIZE_M: f32 = 50.0;
/// Radius of every player's circle.
pub const PLAYER_RADIUS_M: f32 = 0.5;
/// Radius of every orb's circle.
pub const ORB_RADIUS_M: f32 = 0.5;
/// Speed of a player holding the stick fully over.
pub const MAX_SPEED_M_PER_S: f32 = 8.0;
/// How much a dash multiplies speed for the step it applies to.
pub const DASH_SPEED_FACTOR: f32 = 2.0;
/// Steps after a dash before the next one can apply (1 s at 30 Hz): a client that presses
/// dash on every input must not move at double speed.
pub const DASH_COOLDOWN_STEPS: u64 = 30;
/// `buttons` bit that requests a dash.
pub const DASH_BUTTON: u8 = 1;
/// Largest magnitude of `move_x` / `move_y`; `-128` is treated as `-127`.
pub const MAX_AXIS_INPUT: i8 = 127;
/// Number of orbs in play at any time.
pub const ORB_COUNT: usize = 8;
/// Score at which the match ends unless overridden by [`Arena::with_score_limit`].
pub const DEFAULT_SCORE_LIMIT: u32 = 1000;
/// Longest time one `step` integrates, so a stalled room cannot teleport players.
pub const MAX_STEP_S: f32 = 0.25;
/// Snapshot quantisation: positions are sent in centimetres, velocities in cm/s.
pub const SNAPSHOT_UNITS_PER_M: f32 = 100.0;

/// Furthest a player's centre may be from the origin along either axis.
const PLAYER_LIMIT_M: f32 = ARENA_HALF_SIZE_M - PLAYER_RADIUS_M;
/// Furthest an orb's centre may be from the origin along either axis.
const ORB_LIMIT_M: f32 = ARENA_HALF_SIZE_M - ORB_RADIUS_M;
/// Below this centre distance two players count as coincident and are split along +x.
const COINCIDENT_EPSILON_M: f32 = 1e-6;

/// One player's control state: a stick and a button byte.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ArenaInput {
    /// Horizontal stick, -127..=127 scaled to [`MAX_SPEED_M_PER_S`].
    pub move_x: i8,
    /// Vertical stick, -127..=127 scaled to [`MAX_SPEED_M_PER_S`].
    pub move_y: i8,
    /// Button bits; bit 0 is [`DASH_BUTTON`], the rest are reserved and ignored.
    pub buttons: u8,
}

/// A player's full simulation state (the snapshot only carries a quantised part of it).
#[derive(Debug, Clone)]
struct Player {
    pos: Vec2,
    vel: Vec2,
    score: u32,
    input: ArenaInput,
    /// A dash lasts one step even though the input that asked for it persists.
    dash_pending: bool,
    /// The first step at which another dash may apply.
    dash_ready_at: u64,
}

/// The state-sync arena match.
#[derive(Debug, Clone)]
pub struct Arena {
    tick: u64,
    seed: u64,
    /// Indexed by slot; `None` is an empty slot.
    players: Vec<Option<Player>>,
    orbs: [Vec2; ORB_COUNT],
    rng: SplitMix64,
    score_limit: u32,
}

impl Arena {
    /// The same match but ending when any score reaches `n` (tests use small limits).
    pub fn with_score_limit(mut self, n: u32) -> Self {
        self.score_limit = n;
        self
    }

    /// Number of `step` calls so far.
    pub fn tick(&self) -> u64 {
        self.tick
    }

    /// Number of player slots this match was created with.
    pub fn max_players(&self) -> u8 {
        // `new` takes a u8, so the length always fits.
        self.players.len() as u8
    }

    /// Score of the player in `slot`, or `None` if the slot is empty.
    pub fn score(&self, slot: u8) -> Option<u32> {
        self.player(slot).map(|p| p.score)
    }

    fn player(&self, slot: u8) -> Option<&Player> {
        self.players.get(usize::from(slot))?.as_ref()
    }

    fn player_mut(&mut self, slot: u8) -> Option<&mut Player> {
        self.players.get_mut(usize::from(slot))?.as_mut()
    }

    /// Push every overlapping pair apart by half the overlap each, then re-clamp.
    fn separate_players(&mut self) {
        for i in 0..self.players.len() {
            let (head, tail) = self.players.split_at_mut(i + 1);
            let Some(a) = head[i].as_mut() else { continue };
            for b in tail.iter_mut().flatten() {
                push_apart(a, b);
            }
        }
        for p in self.players.iter_mut().flatten() {
            p.pos = clamp_to_arena(p.pos, PLAYER_LIMIT_M);
        }
    }

    /// Award each orb to the lowest-slot player touching it and respawn it.
    fn collect_orbs(&mut self) {
        let reach_sq = (PLAYER_RADIUS_M + ORB_RADIUS_M).powi(2);
        for orb in &mut self.orbs {
            let toucher = self
                .players
                .iter_mut()
                .flatten()
                .find(|p| p.pos.distance_squared(*orb) < reach_sq);
            if let Some(p) = toucher {
                p.score = p.score.saturating_add(1);
                *orb = random_point(&mut self.rng, ORB_LIMIT_M);
            }
        }
    }
}

/// The arena's mode parameters (`[mode.params]` in `modes.toml`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ArenaParams {
    /// The match ends when a player's score reaches this.
    pub score_limit: u32,
}

impl Default for ArenaParams {
    fn default() -> Self {
        ArenaParams {
            score_limit: DEFAULT_SCORE_LIMIT,
        }
    }
}

/// The arena's result: every seated player's score, and the winner (highest score, lowest
/// slot on a tie). Encoding: count u8, then (slot u8, score u32 LE) each, then the winner's
/// slot u8 (255 = none).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ArenaResult {
    /// (slot, score) of every seated player, by slot.
    pub scores: Vec<(u8, u32)>,
    /// The winning slot, if anyone played.
    pub winner: Option<u8>,
}

impl Message for ArenaResult {
    fn encode(&self, out: &mut Vec<u8>) {
        bytes::put_u8(out, self.scores.len().min(usize::from(u8::MAX)) as u8);
        for (slot, score) in self.scores.iter().take(usize::from(u8::MAX)) {
            bytes::put_u8(out, *slot);
            bytes::put_u32(out, *score);
        }
        bytes::put_u8(out, self.winner.unwrap_or(NO_WINNER));
    }

    fn decode(buf: &[u8]) -> Result<Self, GameError> {
        let mut r = bytes::Reader::new(buf);
        let n = r.u8()?;
        let scores = (0..n)
            .map(|_| Ok((r.u8()?, r.u32()?)))
            .collect::<Result<Vec<_>, GameError>>()?;
        let winner = Some(r.u8()?).filter(|w| *w != NO_WINNER);
        r.finish()?;
        Ok(ArenaResult { scores, winner })
    }
}

/// The winner byte of a result nobody won.
const NO_WINNER: u8 = u8::MAX;

impl Arena {
    /// The result as it stands: scores by slot, and the leader.
    pub fn result(&self) -> ArenaResult {
        let scores: Vec<(u8, u32)> = self
            .players
            .iter()
            .enumerate()
            .filter_map(|(slot, p)| Some((slot as u8, p.as_ref()?.score)))
            .collect();
        let winner = scores
            .iter()
            .max_by(|a, b| a.1.cmp(&b.1).then(b.0.cmp(&a.0)))
            .map(|(slot, _)| *slot);
        ArenaResult { scores, winner }
    }

    /// True once a score reached the limit.
    pub fn is_over(&self) -> bool {
        self.players
            .iter()
            .flatten()
            .any(|p| p.score >= self.score_limit)
    }

    /// A fresh match for up to `max_players` slots; `seed` makes it reproducible.
    pub fn new(max_players: u8, seed: u64) -> Self {
        let mut rng = SplitMix64::new(seed);
        let orbs = std::array::from_fn(|_| random_point(&mut rng, ORB_LIMIT_M));
        Self {
            tick: 0,
            seed,
            players: vec![None; usize::from(max_players)],
            orbs,
            rng,
            score_limit: DEFAULT_SCORE_LIMIT,
        }
    }

    /// Put a player into `slot` (no-op if the slot is taken or out of range).
    pub fn add_player(&mut self, slot: u8) {
        let seed = self.seed;
        if let Some(entry @ None) = self.players.get_mut(usize::from(slot)) {
            // Spawn from a per-slot stream so joins in any order land the same place.
            let pos = random_point(&mut SplitMix64::new(slot_seed(seed, slot)), PLAYER_LIMIT_M);
            *entry = Some(Player {
                pos,
                vel: Vec2::ZERO,
                score: 0,
                input: ArenaInput::default(),
                dash_pending: false,
                dash_ready_at: 0,
            });
        }
    }

    /// Take the player out of `slot` (no-op if the slot is empty).
    pub fn remove_player(&mut self, slot: u8) {
        if let Some(entry) = self.players.get_mut(usize::from(slot)) {
            *entry = None;
        }
    }

    /// Advance the simulation by `dt_s` seconds (clamped to [`MAX_STEP_S`]).
    pub fn step(&mut self, dt_s: f32) {
        // A NaN or negative dt from a confused caller must not poison the state.
        let dt = if dt_s.is_finite() {
            dt_s.clamp(0.0, MAX_STEP_S)
        } else {
            0.0
        };
        self.tick = self.tick.wrapping_add(1);
        let tick = self.tick;
        for p in self.players.iter_mut().flatten() {
            let dash = p.dash_pending && tick >= p.dash_ready_at;
            if dash {
                p.dash_ready_at = tick + DASH_COOLDOWN_STEPS;
            }
            p.vel = velocity(&p.input, dash);
            p.dash_pending = false;
            p.pos = clamp_to_arena(p.pos + p.vel * dt, PLAYER_LIMIT_M);
        }
        self.separate_players();
        self.collect_orbs();
    }

    /// The world as every client sees it now.
    pub fn snapshot(&self) -> ArenaSnapshot {
        let players = self
            .players
            .iter()
            .enumerate()
            .filter_map(|(slot, p)| {
                let p = p.as_ref()?;
                Some(PlayerState {
                    // Slots index a Vec built from a u8 length.
                    slot: slot as u8,
                    pos: quantise(p.pos),
                    vel: quantise(p.vel),
                    score: p.score,
                })
            })
            .collect();
        ArenaSnapshot {
            tick: self.tick,
            players,
            orbs: self.orbs.iter().map(|o| quantise(*o)).collect(),
        }
    }
}

impl StateCodec for Arena {
    type Input = ArenaInput;
    type View = ArenaSnapshot;
    /// Chat lines.
    type ClientMessage = String;
    /// Chat lines, prefixed with the sender's slot.
    type ServerMessage = String;

    fn decode_input(bytes: &[u8]) -> Result<ArenaInput, GameError> {
        let (move_x, move_y, buttons) = bytes::move_input(bytes)?;
        Ok(ArenaInput {
            move_x,
            move_y,
            buttons,
        })
    }

    fn encode_input(input: &ArenaInput, out: &mut Vec<u8>) {
        bytes::put_move_input(out, input.move_x, input.move_y, input.buttons);
    }

    fn encode_full(snapshot: &ArenaSnapshot, out: &mut Vec<u8>) {
        snapshot::encode_full(snapshot, out);
    }

    fn decode_full(bytes: &[u8]) -> Result<ArenaSnapshot, GameError> {
        snapshot::decode_full(bytes)
    }

    fn encode_delta(baseline: &ArenaSnapshot, current: &ArenaSnapshot, out: &mut Vec<u8>) {
        snapshot::encode_delta(baseline, current, out);
    }

    fn decode_delta(baseline: &ArenaSnapshot, bytes: &[u8]) -> Result<ArenaSnapshot, GameError> {
        snapshot::decode_delta(baseline, bytes)
    }
}

impl StateGame for Arena {
    type Params = ArenaParams;
    const SAVE_VERSION: u16 = 1;

    fn create(setup: &Setup<'_, ArenaParams>) -> Self {
        Arena::new(setup.max_players, setup.seed).with_score_limit(setup.params.score_limit)
    }

    fn on_join(&mut self, player: &SdkPlayer<'_>, _ctx: &mut Ctx<String>) {
        self.add_player(player.slot);
    }

    fn on_leave(&mut self, slot: u8, _ctx: &mut Ctx<String>) {
        self.remove_player(slot);
    }

    fn apply_input(&mut self, slot: u8, input: &ArenaInput) {
        if let Some(p) = self.player_mut(slot) {
            p.input = *input;
            p.dash_pending |= input.buttons & DASH_BUTTON != 0;
        }
    }

    fn on_message(&mut self, slot: u8, line: String, ctx: &mut Ctx<String>) {
        ctx.broadcast(&format!("{slot}: {line}"));
    }

    fn step(&mut self, dt_s: f32, ctx: &mut Ctx<String>) {
        Arena::step(self, dt_s);
        if self.is_over() {
            ctx.end_match(&self.result());
        }
    }

    fn view(&self, _viewer: Viewer) -> ArenaSnapshot {
        self.snapshot()
    }

    fn on_time_up(&mut self, ctx: &mut Ctx<String>) {
        ctx.end_match(&self.result());
    }

    fn save(&self, out: &mut Vec<u8>) {
        save::write(self, out);
    }

    fn restore(
        setup: &Setup<'_, ArenaParams>,
        version: u16,
        bytes: &[u8],
    ) -> Result<Self, GameError> {
        if version != Self::SAVE_VERSION {
            return Err(GameError::Invalid("unknown arena save version"));
        }
        save::read(setup, bytes)
    }
}

/// The arena's save format: every field, floats as raw bits, so a restore is exact.
mod save {
    use super::*;

    pub(super) fn write(a: &Arena, out: &mut Vec<u8>) {
        bytes::put_u64(out, a.tick);
        bytes::put_u64(out, a.seed);
        bytes::put_u64(out, a.rng.state());
        bytes::put_u32(out, a.score_limit);
        bytes::put_u8(out, a.players.len() as u8);
        for p in &a.players {
            match p {
                None => bytes::put_u8(out, 0),
                Some(p) => {
                    bytes::put_u8(out, 1);
                    put_vec2(out, p.pos);
                    put_vec2(out, p.vel);
                    bytes::put_u32(out, p.score);
                    bytes::put_move_input(out, p.input.move_x, p.input.move_y, p.input.buttons);
                    bytes::put_u8(out, u8::from(p.dash_pending));
                    bytes::put_u64(out, p.dash_ready_at);
                }
            }
        }
        for orb in &a.orbs {
            put_vec2(out, *orb);
        }
    }

    pub(super) fn read(setup: &Setup<'_, ArenaParams>, buf: &[u8]) -> Result<Arena, GameError> {
        let mut r = bytes::Reader::new(buf);
        let tick = r.u64()?;
        let seed = r.u64()?;
        let rng = SplitMix64::new(r.u64()?);
        let score_limit = r.u32()?;
        let slots = r.u8()?;
        if slots != setup.max_players {
            return Err(GameError::Invalid("saved arena has another room size"));
        }
        let mut players = Vec::with_capacity(usize::from(slots));
        for _ in 0..slots {
            players.push(match r.u8()? {
                0 => None,
                1 => {
                    let pos = vec2(&mut r)?;
                    let vel = vec2(&mut r)?;
                    let score = r.u32()?;
                    let (move_x, move_y, buttons) =
                        bytes::move_input(r.slice(bytes::MOVE_INPUT_LEN_BYTES)?)?;
                    let dash_pending = match r.u8()? {
                        0 => false,
                        1 => true,
                        _ => return Err(GameError::Invalid("bad dash flag")),
                    };
                    let dash_ready_at = r.u64()?;
                    Some(Player {
                        pos,
                        vel,
                        score,
                        input: ArenaInput {
                            move_x,
                            move_y,
                            buttons,
                        },
                        dash_pending,
                        dash_ready_at,
                    })
                }
                _ => return Err(GameError::Invalid("bad seat marker")),
            });
        }
        let mut orbs = [Vec2::ZERO; ORB_COUNT];
        for orb in &mut orbs {
            *orb = vec2(&mut r)?;
        }
        r.finish()?;
        Ok(Arena {
            tick,
            seed,
            players,
            orbs,
            rng,
            score_limit,
        })
    }

    fn put_vec2(out: &mut Vec<u8>, v: Vec2) {
        bytes::put_u32(out, v.x.to_bits());
        bytes::put_u32(out, v.y.to_bits());
    }

    fn vec2(r: &mut bytes::Reader<'_>) -> Result<Vec2, GameError> {
        Ok(Vec2::new(
            f32::from_bits(r.u32()?),
            f32::from_bits(r.u32()?),
        ))
    }
}

/// Velocity a player's input asks for; diagonals are normalised so they are not faster.
fn velocity(input: &ArenaInput, dash: bool) -> Vec2 {
    let axis = |v: i8| f32::from(v.max(-MAX_AXIS_INPUT)) / f32::from(MAX_AXIS_INPUT);
    let stick = Vec2::new(axis(input.move_x), axis(input.move_y));
    let stick = if stick.length_squared() > 1.0 {
        stick.normalize()
    } else {
        stick
    };
    let boost = if dash { DASH_SPEED_FACTOR } else { 1.0 };
    stick * (MAX_SPEED_M_PER_S * boost)
}

/// Move two overlapping players apart symmetrically along the line between them.
fn push_apart(a: &mut Player, b: &mut Player) {
    let min_dist = 2.0 * PLAYER_RADIUS_M;
    let d = b.pos - a.pos;
    let dist_sq = d.length_squared();
    if dist_sq >= min_dist * min_dist {
        return;
    }
    let dist = dist_sq.sqrt();
    let normal = if dist > COINCIDENT_EPSILON_M {
        d / dist
    } else {
        Vec2::X
    };
    let half_push = normal * ((min_dist - dist) * 0.5);
    a.pos -= half_push;
    b.pos += half_push;
}

fn clamp_to_arena(p: Vec2, limit_m: f32) -> Vec2 {
    p.clamp(Vec2::splat(-limit_m), Vec2::splat(limit_m))
}

/// A uniformly random point with both coordinates in `-limit_m..limit_m`.
fn random_point(rng: &mut SplitMix64, limit_m: f32) -> Vec2 {
    let mut coord = || (rng.unit_f32() * 2.0 - 1.0) * limit_m;
    let x = coord();
    Vec2::new(x, coord())
}

/// Metres (or m/s) to the snapshot's centimetre grid; `as` saturates, so this cannot wrap.
fn quantise(v: Vec2) -> [i16; 2] {
    let q = v * SNAPSHOT_UNITS_PER_M;
    [q.x.round() as i16, q.y.round() as i16]
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const DT_S: f32 = 1.0 / 30.0;

    fn arena(slots: &[u8]) -> Arena {
        let mut a = Arena::new(16, 0xA5EED);
        for &s in slots {
            a.add_player(s);
        }
        a
    }

    fn input(move_x: i8, move_y: i8, buttons: u8) -> ArenaInput {
        ArenaInput {
            move_x,
            move_y,
            buttons,
        }
    }

    fn place(a: &mut Arena, slot: u8, x: f32, y: f32) {
        a.player_mut(slot).expect("slot present").pos = Vec2::new(x, y);
    }

    fn pos(a: &Arena, slot: u8) -> Vec2 {
        a.player(slot).expect("slot present").pos
    }

    /// Move one player from the origin for one step and return how far it went.
    fn displacement(i: ArenaInput) -> Vec2 {
        let mut a = arena(&[0]);
        place(&mut a, 0, 0.0, 0.0);
        a.apply_input(0, &i);
        a.step(DT_S);
        pos(&a, 0)
    }

    #[test]
    fn players_move_in_input_direction() {
        let step_m = MAX_SPEED_M_PER_S * DT_S;
        assert!(displacement(input(127, 0, 0)).abs_diff_eq(Vec2::new(step_m, 0.0), 1e-5));
        assert!(displacement(input(-127, 0, 0)).abs_diff_eq(Vec2::new(-step_m, 0.0), 1e-5));
        assert!(displacement(input(0, 127, 0)).abs_diff_eq(Vec2::new(0.0, step_m), 1e-5));
        assert!(displacement(input(-128, 0, 0)).abs_diff_eq(Vec2::new(-step_m, 0.0), 1e-5));
        assert_eq!(displacement(input(0, 0, 0)), Vec2::ZERO);
    }

    #[test]
    fn diagonal_is_not_faster() {
        let d = displacement(input(127, 127, 0));
        assert!((d.length() - MAX_SPEED_M_PER_S * DT_S).abs() < 1e-5);
        assert!(d.x > 0.0 && (d.x - d.y).abs() < 1e-6);
    }

    #[test]
    fn dash_doubles_speed_for_one_step() {
        let mut a = arena(&[0]);
        place(&mut a, 0, 0.0, 0.0);
        a.apply_input(0, &input(127, 0, DASH_BUTTON));
        a.step(DT_S);
        let first = pos(&a, 0).x;
        a.step(DT_S);
        let second = pos(&a, 0).x - first;
        assert!((first - 2.0 * second).abs() < 1e-5, "{first} vs {second}");
    }

    /// Dash held on every input: one boost per cooldown, not double speed throughout.
    #[test]
    fn dash_has_a_cooldown() {
        let mut a = arena(&[0, 1]);
        place(&mut a, 0, -40.0, -20.0);
        place(&mut a, 1, -40.0, 20.0);
        let steps = 2 * DASH_COOLDOWN_STEPS;
        for _ in 0..steps {
            a.apply_input(0, &input(127, 0, DASH_BUTTON));
            a.apply_input(1, &input(127, 0, 0));
            a.step(DT_S);
        }
        let dasher = pos(&a, 0).x + 40.0;
        let walker = pos(&a, 1).x + 40.0;
        // Two boosts of one step each in 60 steps: 62/60 of the walker's distance.
        let expected = walker * (steps as f32 + 2.0) / steps as f32;
        assert!((dasher - expected).abs() < 1e-3, "{dasher} vs {expected}");
    }

    #[test]
    fn input_persists_until_replaced() {
        let mut a = arena(&[0]);
        place(&mut a, 0, 0.0, 0.0);
        a.apply_input(0, &input(127, 0, 0));
        (0..3).for_each(|_| a.step(DT_S));
        a.apply_input(0, &input(0, 0, 0));
        a.step(DT_S);
        assert!((pos(&a, 0).x - 3.0 * MAX_SPEED_M_PER_S * DT_S).abs() < 1e-4);
        assert_eq!(a.snapshot().players[0].vel, [0, 0]);
    }

    #[test]
    fn walls_stop_players() {
        let mut a = arena(&[0]);
        place(&mut a, 0, PLAYER_LIMIT_M - 0.01, 0.0);
        a.apply_input(0, &input(127, 0, DASH_BUTTON));
        a.step(DT_S);
        assert_eq!(pos(&a, 0).x, PLAYER_LIMIT_M);
    }

    #[test]
    fn collisions_push_apart() {
        let mut a = arena(&[0, 1, 2]);
        place(&mut a, 0, 10.0, 10.0);
        place(&mut a, 1, 10.3, 10.0);
        place(&mut a, 2, -10.0, -10.0);
        a.step(DT_S);
        let gap = pos(&a, 0).distance(pos(&a, 1));
        assert!(gap >= 2.0 * PLAYER_RADIUS_M - 1e-4, "gap {gap}");
        assert!(pos(&a, 0).x < 10.0 && pos(&a, 1).x > 10.3);
    }

    #[test]
    fn coincident_players_are_split() {
        let mut a = arena(&[3, 4]);
        place(&mut a, 3, 0.0, 0.0);
        place(&mut a, 4, 0.0, 0.0);
        a.step(DT_S);
        assert!(pos(&a, 3).distance(pos(&a, 4)) >= 2.0 * PLAYER_RADIUS_M - 1e-4);
    }

    #[test]
    fn touching_an_orb_scores_and_respawns_it() {
        let mut a = arena(&[0]).with_score_limit(1);
        let orb = a.orbs[0];
        place(&mut a, 0, orb.x, orb.y);
        assert!(!a.is_over());
        a.step(DT_S);
        assert_eq!(a.score(0), Some(1));
        assert_ne!(a.orbs[0], orb);
        assert!(a.is_over());
    }

    #[test]
    fn running_into_an_orb_scores() {
        let mut a = arena(&[0]);
        let orb = a.orbs[0];
        place(&mut a, 0, orb.x - 2.0, orb.y);
        a.apply_input(0, &input(127, 0, 0));
        for _ in 0..30 {
            a.step(DT_S);
        }
        assert!(a.score(0) >= Some(1));
    }

    #[test]
    fn slots_come_and_go() {
        let mut a = arena(&[5, 1]);
        a.add_player(200); // out of range: ignored
        a.apply_input(9, &input(1, 1, 1)); // empty slot: ignored
        let slots: Vec<u8> = a.snapshot().players.iter().map(|p| p.slot).collect();
        assert_eq!(slots, [1, 5]);
        a.remove_player(5);
        a.remove_player(5);
        assert_eq!(a.snapshot().players.len(), 1);
        assert_eq!(a.score(5), None);
        assert_eq!(a.max_players(), 16);
    }

    #[test]
    fn same_seed_same_match_different_seed_different_orbs() {
        let run = |seed| {
            let mut a = Arena::new(4, seed);
            (0..4).for_each(|s| a.add_player(s));
            (0..4).for_each(|s| a.apply_input(s, &input([100, 50, 0, -50][usize::from(s)], 60, 0)));
            (0..200).for_each(|_| a.step(DT_S));
            a.snapshot()
        };
        assert_eq!(run(1), run(1));
        assert_ne!(run(1).orbs, run(2).orbs);
        assert_eq!(run(1).tick, 200);
    }

    #[test]
    fn bad_dt_is_harmless() {
        let mut a = arena(&[0]);
        a.apply_input(0, &input(127, 127, 0));
        let before = pos(&a, 0);
        a.step(f32::NAN);
        a.step(-1.0);
        a.step(f32::INFINITY);
        assert_eq!(pos(&a, 0), before);
        assert_eq!(a.tick(), 3);
    }

    #[test]
    fn input_wire_format() {
        let mut out = Vec::new();
        Arena::encode_input(&input(-3, 127, DASH_BUTTON), &mut out);
        assert_eq!(out, [0xFD, 0x7F, 0x01]);
        assert_eq!(Arena::decode_input(&out), Ok(input(-3, 127, DASH_BUTTON)));
        assert_eq!(Arena::decode_input(&[]), Ok(ArenaInput::default()));
        assert_eq!(Arena::decode_input(&[1, 2]), Err(GameError::Truncated));
        assert_eq!(Arena::decode_input(&[1, 2, 3, 4]), Err(GameError::Trailing));
    }

    fn any_input() -> impl Strategy<Value = ArenaInput> {
        (any::<i8>(), any::<i8>(), any::<u8>()).prop_map(|(x, y, b)| input(x, y, b))
    }

    proptest! {
        #[test]
        fn bounds_hold_and_no_nan(
            script in proptest::collection::vec((0u8..6, any_input(), 0.0f32..0.3), 1..300)
        ) {
            let mut a = arena(&[0, 1, 2, 3, 4, 5]);
            for (slot, i, dt) in script {
                a.apply_input(slot, &i);
                a.step(dt);
                for p in a.players.iter().flatten() {
                    prop_assert!(p.pos.is_finite() && p.vel.is_finite());
                    prop_assert!(p.pos.abs().max_element() <= PLAYER_LIMIT_M);
                }
                for o in &a.orbs {
                    prop_assert!(o.abs().max_element() <= ORB_LIMIT_M);
                }
            }
        }

        #[test]
        fn input_round_trips(i in any_input()) {
            let mut out = Vec::new();
            Arena::encode_input(&i, &mut out);
            prop_assert_eq!(Arena::decode_input(&out), Ok(i));
        }

        #[test]
        fn decode_input_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..8)) {
            let _ = Arena::decode_input(&bytes);
        }

        /// A restored arena is the saved one: it steps identically ever after.
        #[test]
        fn save_restore_round_trips(
            slots in proptest::collection::vec(0u8..6, 0..6),
            script in proptest::collection::vec((0u8..6, any_input()), 0..60),
            more in proptest::collection::vec((0u8..6, any_input()), 1..30),
        ) {
            let mut a = arena(&slots);
            for (slot, i) in script {
                a.apply_input(slot, &i);
                a.step(DT_S);
            }
            let mut saved = Vec::new();
            StateGame::save(&a, &mut saved);
            let params = ArenaParams::default();
            let setup = Setup { mode: "arena", max_players: 16, tick_rate_hz: 30, seed: 0, params: &params };
            let mut b = Arena::restore(&setup, Arena::SAVE_VERSION, &saved).unwrap();
            prop_assert_eq!(b.snapshot(), a.snapshot());
            for (slot, i) in more {
                a.apply_input(slot, &i);
                b.apply_input(slot, &i);
                a.step(DT_S);
                b.step(DT_S);
                prop_assert_eq!(b.snapshot(), a.snapshot());
                prop_assert_eq!(b.result(), a.result());
            }
        }

        #[test]
        fn restore_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
            let params = ArenaParams::default();
            let setup = Setup { mode: "arena", max_players: 16, tick_rate_hz: 30, seed: 0, params: &params };
            let _ = Arena::restore(&setup, Arena::SAVE_VERSION, &bytes);
        }

        #[test]
        fn result_round_trips(scores in proptest::collection::vec((any::<u8>(), any::<u32>()), 0..20), winner in proptest::option::of(0u8..254)) {
            let r = ArenaResult { scores, winner };
            let mut out = Vec::new();
            r.encode(&mut out);
            prop_assert_eq!(ArenaResult::decode(&out), Ok(r));
        }
    }

    #[test]
    fn restore_refuses_another_version_and_room_size() {
        let a = arena(&[0]);
        let mut saved = Vec::new();
        StateGame::save(&a, &mut saved);
        let params = ArenaParams::default();
        let setup = |max_players| Setup {
            mode: "arena",
            max_players,
            tick_rate_hz: 30,
            seed: 0,
            params: &params,
        };
        assert!(Arena::restore(&setup(16), 99, &saved).is_err());
        assert!(Arena::restore(&setup(4), Arena::SAVE_VERSION, &saved).is_err());
        assert!(Arena::restore(&setup(16), Arena::SAVE_VERSION, &saved).is_ok());
    }

    #[test]
    fn the_score_limit_ends_the_match_with_the_leader_as_winner() {
        let params = ArenaParams { score_limit: 1 };
        let setup = Setup {
            mode: "arena",
            max_players: 2,
            tick_rate_hz: 30,
            seed: 3,
            params: &params,
        };
        let mut a = Arena::create(&setup);
        let mut ctx = Ctx::<String>::default();
        a.on_join(
            &SdkPlayer {
                player_id: 1,
                slot: 0,
                metadata: &Default::default(),
            },
            &mut ctx,
        );
        a.players[0].as_mut().unwrap().pos = a.orbs[0];
        StateGame::step(&mut a, DT_S, &mut ctx);
        let result = ctx.take_result().expect("the match ended");
        assert_eq!(
            ArenaResult::decode(&result).unwrap(),
            ArenaResult {
                scores: vec![(0, 1)],
                winner: Some(0)
            }
        );
    }
}
