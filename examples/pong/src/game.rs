//! The rules of pong and the tickroom hooks that run them: two paddles, one ball, first to
//! `score_limit` points wins. Pure and deterministic: time arrives as `dt_s`, randomness comes
//! from a `SplitMix64` seeded with the room's seed, so a match replays exactly.
//!
//! The field runs from x = 0 (behind slot 0's paddle) to [`FIELD_WIDTH_UNITS`] (behind slot
//! 1's) and from y = 0 (bottom) to [`FIELD_HEIGHT_UNITS`]. The ball bounces off the top and
//! bottom walls and off the paddles; a ball that gets past a paddle is a point for the other
//! player, and the ball is served again from the centre.

use serde::Deserialize;
use tickroom_game::bytes::{self, Reader};
use tickroom_game::rng::SplitMix64;
use tickroom_game::{
    Ctx, GameError, MetaValue, Player, Refusal, Setup, StateCodec, StateGame, Viewer,
};

use crate::wire::{PaddleMove, PongClientMsg, PongResult, PongServerMsg, PongView, NO_WINNER};

/// The version a client states in its `"version"` ticket metadata; others are refused.
pub const PONG_VERSION: &str = "1";
/// Longest `"name"` ticket metadata a player may join with, in bytes.
pub const MAX_NAME_BYTES: usize = 16;
/// Players in a match: slot 0 plays on the left, slot 1 on the right.
pub const SEATS: usize = 2;

/// Width of the field, in field units.
pub const FIELD_WIDTH_UNITS: f32 = 100.0;
/// Height of the field, in field units.
pub const FIELD_HEIGHT_UNITS: f32 = 60.0;
/// Distance from each end of the field to its paddle's face.
pub const PADDLE_INSET_UNITS: f32 = 4.0;
/// Half a paddle's height.
pub const PADDLE_HALF_HEIGHT_UNITS: f32 = 6.0;
/// How fast a paddle moves while its player holds a direction.
pub const PADDLE_SPEED_UNITS_PER_S: f32 = 60.0;
/// The ball's radius.
pub const BALL_RADIUS_UNITS: f32 = 1.0;
/// Every paddle hit speeds the ball up by this factor, so that rallies end.
pub const SPEEDUP_PER_HIT: f32 = 1.1;
/// The ball never gets faster than this many times its serve speed.
pub const MAX_SPEEDUP: f32 = 3.0;
/// Steepest path off a paddle's edge, as vertical speed per horizontal speed.
pub const MAX_BOUNCE_SLOPE: f32 = 1.0;
/// Steepest serve, as vertical speed per horizontal speed.
pub const MAX_SERVE_SLOPE: f32 = 0.5;
/// How long the ball rests in the centre before a serve, unless both players say `Ready`.
pub const SERVE_DELAY_S: f32 = 1.0;
/// Longest time one `step` integrates, so a stalled room cannot throw the ball across.
pub const MAX_STEP_S: f32 = 0.25;
/// View quantisation: views carry lengths in tenths of a field unit.
pub const VIEW_UNITS_PER_FIELD_UNIT: f32 = 10.0;

/// Points to win when the mode does not say.
pub const DEFAULT_SCORE_LIMIT: u32 = 5;
/// Serve speed when the mode does not say, in field units per second.
pub const DEFAULT_BALL_SPEED_UNITS_PER_S: f32 = 60.0;
/// Serve speeds a mode may ask for; others are clamped into this range.
pub const BALL_SPEED_RANGE_UNITS_PER_S: std::ops::RangeInclusive<f32> = 5.0..=1000.0;

/// The mode's parameters: the `[mode.params]` table of `modes.toml`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PongParams {
    /// The first player to this many points wins (at least 1).
    pub score_limit: u32,
    /// Serve speed in field units per second (see [`BALL_SPEED_RANGE_UNITS_PER_S`]).
    pub ball_speed: f32,
}

impl Default for PongParams {
    fn default() -> Self {
        PongParams {
            score_limit: DEFAULT_SCORE_LIMIT,
            ball_speed: DEFAULT_BALL_SPEED_UNITS_PER_S,
        }
    }
}

/// A pong match: the whole server-side state.
#[derive(Debug, Clone, PartialEq)]
pub struct Pong {
    tick: u64,
    rng: SplitMix64,
    score_limit: u32,
    serve_speed: f32,
    paddles: [Paddle; SEATS],
    ball: Ball,
    scores: [u32; SEATS],
    phase: Phase,
}

/// One player's paddle and what its player asked for.
#[derive(Debug, Clone, PartialEq)]
struct Paddle {
    /// Centre height.
    y: f32,
    /// The last input; it holds until the next one arrives.
    input: PaddleMove,
    /// A player holds this seat.
    seated: bool,
    /// The player said `Ready` since the last point.
    ready: bool,
}

#[derive(Debug, Clone, Copy, PartialEq)]
struct Ball {
    x: f32,
    y: f32,
    vx: f32,
    vy: f32,
}

/// Where the match is.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Phase {
    /// The ball rests in the centre; it is served once `wait_s` runs out or both are ready.
    Serving { wait_s: f32 },
    /// The ball is in play.
    Rally,
    /// Someone reached the score limit (or time ran out); nothing moves any more.
    Over,
}

impl Pong {
    /// A fresh match, waiting for its two players.
    pub fn new(params: &PongParams, seed: u64) -> Pong {
        let serve_speed = if params.ball_speed.is_finite() {
            params.ball_speed.clamp(
                *BALL_SPEED_RANGE_UNITS_PER_S.start(),
                *BALL_SPEED_RANGE_UNITS_PER_S.end(),
            )
        } else {
            DEFAULT_BALL_SPEED_UNITS_PER_S
        };
        let paddle = Paddle {
            y: FIELD_HEIGHT_UNITS / 2.0,
            input: PaddleMove::Stay,
            seated: false,
            ready: false,
        };
        Pong {
            tick: 0,
            rng: SplitMix64::new(seed),
            score_limit: params.score_limit.max(1),
            serve_speed,
            paddles: [paddle.clone(), paddle],
            ball: Ball::AT_CENTRE,
            scores: [0; SEATS],
            phase: Phase::Serving {
                wait_s: SERVE_DELAY_S,
            },
        }
    }

    /// Points won so far, by slot.
    pub fn scores(&self) -> [u32; SEATS] {
        self.scores
    }

    /// True once the match has a result.
    pub fn is_over(&self) -> bool {
        self.phase == Phase::Over
    }

    /// The result as it stands: the leader wins, a draw has [`NO_WINNER`].
    pub fn result(&self) -> PongResult {
        let [left, right] = self.scores;
        let winner = match left.cmp(&right) {
            std::cmp::Ordering::Greater => 0,
            std::cmp::Ordering::Less => 1,
            std::cmp::Ordering::Equal => NO_WINNER,
        };
        PongResult {
            scores: self.scores,
            winner,
        }
    }

    fn paddle_mut(&mut self, slot: u8) -> Option<&mut Paddle> {
        self.paddles.get_mut(usize::from(slot))
    }

    fn serve(&mut self) {
        let toward_right = self.rng.below(2) == 1;
        let slope = (self.rng.unit_f32() * 2.0 - 1.0) * MAX_SERVE_SLOPE;
        let vx = if toward_right { 1.0 } else { -1.0 } * self.serve_speed;
        self.ball = Ball {
            vx,
            vy: slope * self.serve_speed,
            ..Ball::AT_CENTRE
        };
        self.phase = Phase::Rally;
    }

    /// Moves the ball; returns the slot that won a point, if the ball got past a paddle.
    fn advance_ball(&mut self, dt_s: f32) -> Option<u8> {
        let before = self.ball;
        let ball = &mut self.ball;
        ball.x += ball.vx * dt_s;
        ball.y += ball.vy * dt_s;
        let (bottom, top) = (BALL_RADIUS_UNITS, FIELD_HEIGHT_UNITS - BALL_RADIUS_UNITS);
        if ball.y < bottom {
            ball.y = (2.0 * bottom - ball.y).min(top);
            ball.vy = ball.vy.abs();
        } else if ball.y > top {
            ball.y = (2.0 * top - ball.y).max(bottom);
            ball.vy = -ball.vy.abs();
        }
        // Where the ball's centre is when it touches each paddle's face.
        let left_face = PADDLE_INSET_UNITS + BALL_RADIUS_UNITS;
        let right_face = FIELD_WIDTH_UNITS - PADDLE_INSET_UNITS - BALL_RADIUS_UNITS;
        let (slot, face): (u8, f32) = if before.x >= left_face && self.ball.x < left_face {
            (0, left_face)
        } else if before.x <= right_face && self.ball.x > right_face {
            (1, right_face)
        } else {
            return None;
        };
        // Crossing the face line is checked, not just the end position, so a fast ball
        // cannot pass through a paddle between two ticks.
        let along = (face - before.x) / (self.ball.x - before.x);
        let y_at_face = (before.y + (self.ball.y - before.y) * along).clamp(bottom, top);
        let reach = PADDLE_HALF_HEIGHT_UNITS + BALL_RADIUS_UNITS;
        let offset = (y_at_face - self.paddles[usize::from(slot)].y) / reach;
        if offset.abs() > 1.0 {
            return Some(1 - slot);
        }
        let speed = (self.ball.vx.abs() * SPEEDUP_PER_HIT).min(self.serve_speed * MAX_SPEEDUP);
        let away_from_paddle = if slot == 0 { 1.0 } else { -1.0 };
        self.ball = Ball {
            x: face,
            y: y_at_face,
            vx: away_from_paddle * speed,
            vy: offset * MAX_BOUNCE_SLOPE * speed,
        };
        None
    }

    fn point(&mut self, by: u8, ctx: &mut Ctx<PongServerMsg>) {
        let winner = usize::from(by);
        self.scores[winner] = self.scores[winner].saturating_add(1);
        ctx.broadcast(&PongServerMsg::Scored {
            by,
            scores: self.scores,
        });
        if self.scores[winner] >= self.score_limit {
            self.phase = Phase::Over;
            ctx.end_match(&PongResult {
                scores: self.scores,
                winner: by,
            });
            return;
        }
        self.ball = Ball::AT_CENTRE;
        self.phase = Phase::Serving {
            wait_s: SERVE_DELAY_S,
        };
        for paddle in &mut self.paddles {
            paddle.ready = false;
        }
    }
}

impl Paddle {
    fn advance(&mut self, dt_s: f32) {
        let (lowest, highest) = (
            PADDLE_HALF_HEIGHT_UNITS,
            FIELD_HEIGHT_UNITS - PADDLE_HALF_HEIGHT_UNITS,
        );
        self.y =
            (self.y + self.input.sign() * PADDLE_SPEED_UNITS_PER_S * dt_s).clamp(lowest, highest);
    }
}

impl Ball {
    const AT_CENTRE: Ball = Ball {
        x: FIELD_WIDTH_UNITS / 2.0,
        y: FIELD_HEIGHT_UNITS / 2.0,
        vx: 0.0,
        vy: 0.0,
    };
}

/// Field units to view units; `as` saturates, so a huge value cannot wrap.
fn view_units(v: f32) -> i16 {
    (v * VIEW_UNITS_PER_FIELD_UNIT).round() as i16
}

impl StateCodec for Pong {
    type Input = PaddleMove;
    type View = PongView;
    type ClientMessage = PongClientMsg;
    type ServerMessage = PongServerMsg;

    fn decode_input(bytes: &[u8]) -> Result<PaddleMove, GameError> {
        PaddleMove::decode(bytes)
    }

    fn encode_input(input: &PaddleMove, out: &mut Vec<u8>) {
        input.encode(out);
    }

    fn encode_full(view: &PongView, out: &mut Vec<u8>) {
        view.encode_full(out);
    }

    fn decode_full(bytes: &[u8]) -> Result<PongView, GameError> {
        PongView::decode_full(bytes)
    }

    fn encode_delta(baseline: &PongView, current: &PongView, out: &mut Vec<u8>) {
        current.encode_delta(baseline, out);
    }

    fn decode_delta(baseline: &PongView, bytes: &[u8]) -> Result<PongView, GameError> {
        PongView::decode_delta(baseline, bytes)
    }
}

impl StateGame for Pong {
    type Params = PongParams;
    const SAVE_VERSION: u16 = 1;

    fn create(setup: &Setup<'_, PongParams>) -> Self {
        Pong::new(setup.params, setup.seed)
    }

    fn join_attempt(&self, player: &Player<'_>) -> Result<(), Refusal> {
        if usize::from(player.slot) >= SEATS {
            return Err(Refusal::new(
                "pong has two seats; set players = 2 in the mode",
            ));
        }
        if player
            .metadata
            .str("name")
            .is_some_and(|name| name.len() > MAX_NAME_BYTES)
        {
            return Err(Refusal::new(format!(
                "name is longer than {MAX_NAME_BYTES} bytes"
            )));
        }
        match player.metadata.0.get("version") {
            None => Ok(()),
            Some(MetaValue::Str(v)) if v == PONG_VERSION => Ok(()),
            Some(MetaValue::Str(v)) => Err(Refusal::new(format!(
                "client version {v} does not match server version {PONG_VERSION}"
            ))),
            Some(MetaValue::Int(_)) => Err(Refusal::new("version metadata must be a string")),
        }
    }

    fn on_join(&mut self, player: &Player<'_>, _ctx: &mut Ctx<PongServerMsg>) {
        if let Some(paddle) = self.paddle_mut(player.slot) {
            paddle.seated = true;
        }
    }

    fn on_leave(&mut self, slot: u8, _ctx: &mut Ctx<PongServerMsg>) {
        if let Some(paddle) = self.paddle_mut(slot) {
            paddle.seated = false;
            paddle.input = PaddleMove::Stay;
            paddle.ready = false;
        }
    }

    fn on_drop(&mut self, slot: u8, _ctx: &mut Ctx<PongServerMsg>) {
        // The seat is kept for a resume; the paddle stops rather than run into a wall.
        if let Some(paddle) = self.paddle_mut(slot) {
            paddle.input = PaddleMove::Stay;
        }
    }

    fn apply_input(&mut self, slot: u8, input: &PaddleMove) {
        if let Some(paddle) = self.paddle_mut(slot) {
            paddle.input = *input;
        }
    }

    fn on_message(&mut self, slot: u8, msg: PongClientMsg, ctx: &mut Ctx<PongServerMsg>) {
        match msg {
            PongClientMsg::Chat(text) => ctx.broadcast(&PongServerMsg::Chat { from: slot, text }),
            PongClientMsg::Ready => {
                if let Some(paddle) = self.paddle_mut(slot) {
                    paddle.ready = true;
                }
            }
        }
    }

    fn step(&mut self, dt_s: f32, ctx: &mut Ctx<PongServerMsg>) {
        // A restored save may carry any tick: wrap rather than overflow.
        self.tick = self.tick.wrapping_add(1);
        let dt_s = if dt_s.is_finite() {
            dt_s.clamp(0.0, MAX_STEP_S)
        } else {
            0.0
        };
        if self.phase == Phase::Over {
            return;
        }
        for paddle in &mut self.paddles {
            paddle.advance(dt_s);
        }
        // The ball waits for two players (before the start, or while a seat is empty).
        if !self.paddles.iter().all(|p| p.seated) {
            return;
        }
        match self.phase {
            Phase::Serving { wait_s } => {
                let wait_s = wait_s - dt_s;
                if wait_s <= 0.0 || self.paddles.iter().all(|p| p.ready) {
                    self.serve();
                } else {
                    self.phase = Phase::Serving { wait_s };
                }
            }
            Phase::Rally => {
                if let Some(by) = self.advance_ball(dt_s) {
                    self.point(by, ctx);
                }
            }
            Phase::Over => {}
        }
    }

    fn view(&self, _viewer: Viewer) -> PongView {
        PongView {
            tick: self.tick,
            paddle_y: self.paddles.each_ref().map(|p| view_units(p.y)),
            ball: [view_units(self.ball.x), view_units(self.ball.y)],
            ball_vel: [view_units(self.ball.vx), view_units(self.ball.vy)],
            scores: self.scores,
        }
    }

    fn on_time_up(&mut self, ctx: &mut Ctx<PongServerMsg>) {
        self.phase = Phase::Over;
        ctx.end_match(&self.result());
    }

    fn save(&self, out: &mut Vec<u8>) {
        save::write(self, out);
    }

    fn restore(
        _setup: &Setup<'_, PongParams>,
        version: u16,
        bytes: &[u8],
    ) -> Result<Self, GameError> {
        if version != Self::SAVE_VERSION {
            return Err(GameError::Invalid("unknown pong save version"));
        }
        save::read(bytes)
    }
}

/// The save format: every field, floats as raw bits so a restored match is exact.
///
/// Layout (little-endian): `tick u64, rng u64, score_limit u32, serve_speed f32`, per paddle
/// `y f32, input (one input byte), seated u8, ready u8`, then `ball x, y, vx, vy f32`,
/// `scores u32 ×2`, and the phase: `0, wait_s f32` (serving), `1` (rally) or `2` (over).
mod save {
    use super::*;

    const PHASE_SERVING: u8 = 0;
    const PHASE_RALLY: u8 = 1;
    const PHASE_OVER: u8 = 2;

    pub(super) fn write(g: &Pong, out: &mut Vec<u8>) {
        bytes::put_u64(out, g.tick);
        bytes::put_u64(out, g.rng.state());
        bytes::put_u32(out, g.score_limit);
        put_f32(out, g.serve_speed);
        for p in &g.paddles {
            put_f32(out, p.y);
            p.input.encode(out);
            bytes::put_u8(out, u8::from(p.seated));
            bytes::put_u8(out, u8::from(p.ready));
        }
        for v in [g.ball.x, g.ball.y, g.ball.vx, g.ball.vy] {
            put_f32(out, v);
        }
        for score in g.scores {
            bytes::put_u32(out, score);
        }
        match g.phase {
            Phase::Serving { wait_s } => {
                bytes::put_u8(out, PHASE_SERVING);
                put_f32(out, wait_s);
            }
            Phase::Rally => bytes::put_u8(out, PHASE_RALLY),
            Phase::Over => bytes::put_u8(out, PHASE_OVER),
        }
    }

    pub(super) fn read(buf: &[u8]) -> Result<Pong, GameError> {
        let mut r = Reader::new(buf);
        let tick = r.u64()?;
        let rng = SplitMix64::new(r.u64()?);
        let score_limit = r.u32()?;
        let serve_speed = f32(&mut r)?;
        let mut paddle = || -> Result<Paddle, GameError> {
            Ok(Paddle {
                y: f32(&mut r)?,
                input: PaddleMove::decode(r.slice(1)?)?,
                seated: flag(&mut r)?,
                ready: flag(&mut r)?,
            })
        };
        let paddles = [paddle()?, paddle()?];
        let ball = Ball {
            x: f32(&mut r)?,
            y: f32(&mut r)?,
            vx: f32(&mut r)?,
            vy: f32(&mut r)?,
        };
        let scores = [r.u32()?, r.u32()?];
        let phase = match r.u8()? {
            PHASE_SERVING => Phase::Serving {
                wait_s: f32(&mut r)?,
            },
            PHASE_RALLY => Phase::Rally,
            PHASE_OVER => Phase::Over,
            _ => return Err(GameError::Invalid("unknown pong phase")),
        };
        r.finish()?;
        Ok(Pong {
            tick,
            rng,
            score_limit,
            serve_speed,
            paddles,
            ball,
            scores,
            phase,
        })
    }

    fn put_f32(out: &mut Vec<u8>, v: f32) {
        bytes::put_u32(out, v.to_bits());
    }

    fn f32(r: &mut Reader<'_>) -> Result<f32, GameError> {
        Ok(f32::from_bits(r.u32()?))
    }

    fn flag(r: &mut Reader<'_>) -> Result<bool, GameError> {
        match r.u8()? {
            0 => Ok(false),
            1 => Ok(true),
            _ => Err(GameError::Invalid("bad flag in pong save")),
        }
    }
}

#[cfg(test)]
mod tests;
