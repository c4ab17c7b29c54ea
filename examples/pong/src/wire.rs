//! What pong sends over the wire, and its byte encodings: the input, the view (full and
//! delta), the custom messages and the match result. The server and Rust clients share these
//! through `StateCodec` and `Message`; decoding bad bytes is a `GameError`, never a panic.
//!
//! Input: one byte, the paddle direction as an `i8` (`0` stay, `1` up, `-1` down); an empty
//! input means "stay".
//!
//! Full view (little-endian): `tick varint, paddle_y i16 ×2, ball i16x2, ball_vel i16x2,
//! score varint ×2`: 15 bytes early in a match.
//!
//! Delta view: `mask u8, tick_advance varint` (wrapping), then only the fields whose mask bit
//! is set, in mask-bit order, each written as in the full form. A tick where only the ball
//! moved costs 6 bytes.
//!
//! Messages and the result start with a tag byte; text runs to the end of the message.

use tickroom_game::bytes::{self, Reader};
use tickroom_game::{GameError, Message};

/// Delta mask bit: the left paddle (slot 0) moved.
const CHANGED_PADDLE_0: u8 = 1 << 0;
/// Delta mask bit: the right paddle (slot 1) moved.
const CHANGED_PADDLE_1: u8 = 1 << 1;
/// Delta mask bit: the ball moved.
const CHANGED_BALL: u8 = 1 << 2;
/// Delta mask bit: the ball's velocity changed.
const CHANGED_BALL_VEL: u8 = 1 << 3;
/// Delta mask bit: a score changed.
const CHANGED_SCORES: u8 = 1 << 4;
/// Every delta mask bit the format defines; the others must be clear.
const CHANGED_ALL: u8 =
    CHANGED_PADDLE_0 | CHANGED_PADDLE_1 | CHANGED_BALL | CHANGED_BALL_VEL | CHANGED_SCORES;

/// Client message tag: a chat line.
const TAG_CHAT: u8 = 0;
/// Client message tag: ready for the serve.
const TAG_READY: u8 = 1;
/// Server message tag: a point was scored.
const TAG_SCORED: u8 = 2;

/// Which way a player moves their paddle: the whole input of pong.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum PaddleMove {
    /// Keep still.
    #[default]
    Stay,
    /// Towards the top of the field (+y).
    Up,
    /// Towards the bottom of the field (-y).
    Down,
}

impl PaddleMove {
    /// The direction as a factor of the paddle speed: +1, 0 or -1.
    pub fn sign(self) -> f32 {
        match self {
            PaddleMove::Stay => 0.0,
            PaddleMove::Up => 1.0,
            PaddleMove::Down => -1.0,
        }
    }

    /// Appends the one-byte encoding.
    pub fn encode(self, out: &mut Vec<u8>) {
        let direction: i8 = match self {
            PaddleMove::Stay => 0,
            PaddleMove::Up => 1,
            PaddleMove::Down => -1,
        };
        bytes::put_u8(out, direction as u8);
    }

    /// Decodes one input; empty is [`PaddleMove::Stay`].
    pub fn decode(bytes: &[u8]) -> Result<PaddleMove, GameError> {
        if bytes.is_empty() {
            return Ok(PaddleMove::Stay);
        }
        let mut r = Reader::new(bytes);
        let direction = match r.u8()? as i8 {
            0 => PaddleMove::Stay,
            1 => PaddleMove::Up,
            -1 => PaddleMove::Down,
            _ => return Err(GameError::Invalid("paddle direction must be -1, 0 or 1")),
        };
        r.finish()?;
        Ok(direction)
    }
}

/// What every player sees at one tick. Lengths are in tenths of a field unit (see
/// [`crate::game::VIEW_UNITS_PER_FIELD_UNIT`]), saturated to `i16`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PongView {
    /// Ticks the server has stepped.
    pub tick: u64,
    /// Centre height of each paddle, by slot (0 left, 1 right).
    pub paddle_y: [i16; 2],
    /// Ball centre `[x, y]`.
    pub ball: [i16; 2],
    /// Ball velocity `[x, y]` per second (zero while waiting to be served).
    pub ball_vel: [i16; 2],
    /// Points won, by slot.
    pub scores: [u32; 2],
}

impl PongView {
    /// Full encoding (appends to out).
    pub fn encode_full(&self, out: &mut Vec<u8>) {
        bytes::put_varint(out, self.tick);
        bytes::put_i16x2(out, self.paddle_y);
        bytes::put_i16x2(out, self.ball);
        bytes::put_i16x2(out, self.ball_vel);
        put_scores(out, self.scores);
    }

    /// Decodes a view written by [`PongView::encode_full`].
    pub fn decode_full(bytes: &[u8]) -> Result<PongView, GameError> {
        let mut r = Reader::new(bytes);
        let view = PongView {
            tick: r.varint()?,
            paddle_y: r.i16x2()?,
            ball: r.i16x2()?,
            ball_vel: r.i16x2()?,
            scores: read_scores(&mut r)?,
        };
        r.finish()?;
        Ok(view)
    }

    /// Delta of `self` against `baseline` (appends to out).
    pub fn encode_delta(&self, baseline: &PongView, out: &mut Vec<u8>) {
        let changed = |bit, differs: bool| if differs { bit } else { 0 };
        let mask = changed(CHANGED_PADDLE_0, self.paddle_y[0] != baseline.paddle_y[0])
            | changed(CHANGED_PADDLE_1, self.paddle_y[1] != baseline.paddle_y[1])
            | changed(CHANGED_BALL, self.ball != baseline.ball)
            | changed(CHANGED_BALL_VEL, self.ball_vel != baseline.ball_vel)
            | changed(CHANGED_SCORES, self.scores != baseline.scores);
        bytes::put_u8(out, mask);
        bytes::put_varint(out, self.tick.wrapping_sub(baseline.tick));
        if mask & CHANGED_PADDLE_0 != 0 {
            bytes::put_i16(out, self.paddle_y[0]);
        }
        if mask & CHANGED_PADDLE_1 != 0 {
            bytes::put_i16(out, self.paddle_y[1]);
        }
        if mask & CHANGED_BALL != 0 {
            bytes::put_i16x2(out, self.ball);
        }
        if mask & CHANGED_BALL_VEL != 0 {
            bytes::put_i16x2(out, self.ball_vel);
        }
        if mask & CHANGED_SCORES != 0 {
            put_scores(out, self.scores);
        }
    }

    /// Rebuilds a view from `baseline` and a delta written by [`PongView::encode_delta`].
    pub fn decode_delta(baseline: &PongView, bytes: &[u8]) -> Result<PongView, GameError> {
        let mut r = Reader::new(bytes);
        let mask = r.u8()?;
        if mask & !CHANGED_ALL != 0 {
            return Err(GameError::Invalid(
                "reserved bit set in the view delta mask",
            ));
        }
        let mut view = *baseline;
        view.tick = baseline.tick.wrapping_add(r.varint()?);
        if mask & CHANGED_PADDLE_0 != 0 {
            view.paddle_y[0] = r.i16()?;
        }
        if mask & CHANGED_PADDLE_1 != 0 {
            view.paddle_y[1] = r.i16()?;
        }
        if mask & CHANGED_BALL != 0 {
            view.ball = r.i16x2()?;
        }
        if mask & CHANGED_BALL_VEL != 0 {
            view.ball_vel = r.i16x2()?;
        }
        if mask & CHANGED_SCORES != 0 {
            view.scores = read_scores(&mut r)?;
        }
        r.finish()?;
        Ok(view)
    }
}

/// What a client may send besides its input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PongClientMsg {
    /// A chat line for the other player.
    Chat(String),
    /// Ready for the next serve: once both players are, the ball is served at once.
    Ready,
}

/// What the server sends besides views.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PongServerMsg {
    /// The player in slot `by` won a point; `scores` are the new scores by slot.
    Scored {
        /// The slot that won the point.
        by: u8,
        /// Both scores after the point.
        scores: [u32; 2],
    },
    /// A chat line from the player in slot `from`.
    Chat {
        /// The sender's slot.
        from: u8,
        /// The line.
        text: String,
    },
}

/// How a match ended: stored by the gateway and sent to both players.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PongResult {
    /// Final scores by slot.
    pub scores: [u32; 2],
    /// The winning slot, or [`NO_WINNER`] when time ran out on a draw.
    pub winner: u8,
}

/// `PongResult::winner` of a draw.
pub const NO_WINNER: u8 = u8::MAX;

impl Message for PongClientMsg {
    fn encode(&self, out: &mut Vec<u8>) {
        match self {
            PongClientMsg::Chat(text) => {
                bytes::put_u8(out, TAG_CHAT);
                out.extend_from_slice(text.as_bytes());
            }
            PongClientMsg::Ready => bytes::put_u8(out, TAG_READY),
        }
    }

    fn decode(bytes: &[u8]) -> Result<Self, GameError> {
        match bytes.split_first().ok_or(GameError::Truncated)? {
            (&TAG_CHAT, text) => Ok(PongClientMsg::Chat(String::decode(text)?)),
            (&TAG_READY, []) => Ok(PongClientMsg::Ready),
            (&TAG_READY, _) => Err(GameError::Trailing),
            _ => Err(GameError::Invalid("unknown pong client message")),
        }
    }
}

impl Message for PongServerMsg {
    fn encode(&self, out: &mut Vec<u8>) {
        match self {
            PongServerMsg::Scored { by, scores } => {
                bytes::put_u8(out, TAG_SCORED);
                bytes::put_u8(out, *by);
                put_scores(out, *scores);
            }
            PongServerMsg::Chat { from, text } => {
                bytes::put_u8(out, TAG_CHAT);
                bytes::put_u8(out, *from);
                out.extend_from_slice(text.as_bytes());
            }
        }
    }

    fn decode(bytes: &[u8]) -> Result<Self, GameError> {
        match bytes.split_first().ok_or(GameError::Truncated)? {
            (&TAG_SCORED, rest) => {
                let mut r = Reader::new(rest);
                let by = r.u8()?;
                let scores = read_scores(&mut r)?;
                r.finish()?;
                Ok(PongServerMsg::Scored { by, scores })
            }
            (&TAG_CHAT, [from, text @ ..]) => Ok(PongServerMsg::Chat {
                from: *from,
                text: String::decode(text)?,
            }),
            (&TAG_CHAT, []) => Err(GameError::Truncated),
            _ => Err(GameError::Invalid("unknown pong server message")),
        }
    }
}

impl Message for PongResult {
    fn encode(&self, out: &mut Vec<u8>) {
        put_scores(out, self.scores);
        bytes::put_u8(out, self.winner);
    }

    fn decode(bytes: &[u8]) -> Result<Self, GameError> {
        let mut r = Reader::new(bytes);
        let scores = read_scores(&mut r)?;
        let winner = r.u8()?;
        r.finish()?;
        Ok(PongResult { scores, winner })
    }
}

fn put_scores(out: &mut Vec<u8>, scores: [u32; 2]) {
    bytes::put_varint(out, u64::from(scores[0]));
    bytes::put_varint(out, u64::from(scores[1]));
}

fn read_scores(r: &mut Reader<'_>) -> Result<[u32; 2], GameError> {
    let mut score =
        || u32::try_from(r.varint()?).map_err(|_| GameError::Invalid("score does not fit in u32"));
    Ok([score()?, score()?])
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn full(view: &PongView) -> Vec<u8> {
        let mut out = Vec::new();
        view.encode_full(&mut out);
        out
    }

    fn delta(base: &PongView, cur: &PongView) -> Vec<u8> {
        let mut out = Vec::new();
        cur.encode_delta(base, &mut out);
        out
    }

    fn encoded(msg: &impl Message) -> Vec<u8> {
        let mut out = Vec::new();
        msg.encode(&mut out);
        out
    }

    fn view(tick: u64) -> PongView {
        PongView {
            tick,
            paddle_y: [300, 300],
            ball: [500, 300],
            ball_vel: [-400, 120],
            scores: [1, 2],
        }
    }

    #[test]
    fn input_bytes() {
        let check = |bytes: &[u8], expect: Result<PaddleMove, GameError>| {
            assert_eq!(PaddleMove::decode(bytes), expect, "{bytes:?}");
        };
        check(&[], Ok(PaddleMove::Stay));
        check(&[0], Ok(PaddleMove::Stay));
        check(&[1], Ok(PaddleMove::Up));
        check(&[0xFF], Ok(PaddleMove::Down));
        check(
            &[2],
            Err(GameError::Invalid("paddle direction must be -1, 0 or 1")),
        );
        check(&[1, 0], Err(GameError::Trailing));
        for m in [PaddleMove::Stay, PaddleMove::Up, PaddleMove::Down] {
            let mut out = Vec::new();
            m.encode(&mut out);
            assert_eq!(out.len(), 1);
            check(&out, Ok(m));
        }
    }

    #[test]
    fn only_the_ball_moving_costs_six_bytes() {
        let base = view(10);
        let mut cur = view(11);
        cur.ball[0] -= 13;
        let d = delta(&base, &cur);
        assert_eq!(d, [CHANGED_BALL, 1, 0xE7, 0x01, 0x2C, 0x01]);
        assert_eq!(PongView::decode_delta(&base, &d), Ok(cur));
        assert_eq!(full(&base).len(), 15);
    }

    #[test]
    fn malformed_views_are_errors() {
        let base = view(1);
        assert_eq!(
            PongView::decode_delta(&base, &[]),
            Err(GameError::Truncated)
        );
        assert!(matches!(
            PongView::decode_delta(&base, &[0x20, 0]),
            Err(GameError::Invalid(_))
        ));
        assert_eq!(
            PongView::decode_delta(&base, &[CHANGED_PADDLE_0, 0, 1]),
            Err(GameError::Truncated)
        );
        assert_eq!(
            PongView::decode_delta(&base, &[0, 0, 0]),
            Err(GameError::Trailing)
        );
        let f = full(&base);
        for n in 0..f.len() {
            assert_eq!(PongView::decode_full(&f[..n]), Err(GameError::Truncated));
        }
    }

    #[test]
    fn message_bytes() {
        assert_eq!(encoded(&PongClientMsg::Ready), [TAG_READY]);
        assert_eq!(
            encoded(&PongClientMsg::Chat("gg".into())),
            [TAG_CHAT, b'g', b'g']
        );
        let scored = PongServerMsg::Scored {
            by: 1,
            scores: [0, 3],
        };
        assert_eq!(encoded(&scored), [TAG_SCORED, 1, 0, 3]);
        assert_eq!(
            PongClientMsg::decode(&[TAG_READY, 0]),
            Err(GameError::Trailing)
        );
        assert!(PongClientMsg::decode(&[TAG_CHAT, 0xFF]).is_err());
        assert!(PongServerMsg::decode(&[9]).is_err());
        assert_eq!(PongResult::decode(&[1, 2]), Err(GameError::Truncated));
    }

    fn any_view() -> impl Strategy<Value = PongView> {
        (
            any::<u64>(),
            any::<[i16; 2]>(),
            any::<[i16; 2]>(),
            any::<[i16; 2]>(),
            any::<[u32; 2]>(),
        )
            .prop_map(|(tick, paddle_y, ball, ball_vel, scores)| PongView {
                tick,
                paddle_y,
                ball,
                ball_vel,
                scores,
            })
    }

    /// A view that shares some fields with `base`, as consecutive ticks do.
    fn nearby_view(base: PongView) -> impl Strategy<Value = PongView> {
        (any_view(), any::<[bool; 5]>()).prop_map(move |(other, keep)| PongView {
            tick: other.tick,
            paddle_y: [
                if keep[0] {
                    base.paddle_y[0]
                } else {
                    other.paddle_y[0]
                },
                if keep[1] {
                    base.paddle_y[1]
                } else {
                    other.paddle_y[1]
                },
            ],
            ball: if keep[2] { base.ball } else { other.ball },
            ball_vel: if keep[3] {
                base.ball_vel
            } else {
                other.ball_vel
            },
            scores: if keep[4] { base.scores } else { other.scores },
        })
    }

    fn any_text() -> impl Strategy<Value = String> {
        proptest::collection::vec(any::<char>(), 0..40).prop_map(String::from_iter)
    }

    fn any_server_msg() -> impl Strategy<Value = PongServerMsg> {
        prop_oneof![
            (any::<u8>(), any::<[u32; 2]>())
                .prop_map(|(by, scores)| PongServerMsg::Scored { by, scores }),
            (any::<u8>(), any_text()).prop_map(|(from, text)| PongServerMsg::Chat { from, text }),
        ]
    }

    fn any_client_msg() -> impl Strategy<Value = PongClientMsg> {
        prop_oneof![
            Just(PongClientMsg::Ready),
            any_text().prop_map(PongClientMsg::Chat)
        ]
    }

    proptest! {
        #[test]
        fn full_view_round_trips(v in any_view()) {
            prop_assert_eq!(PongView::decode_full(&full(&v)), Ok(v));
        }

        #[test]
        fn delta_view_round_trips(
            (base, cur) in any_view().prop_flat_map(|b| (Just(b), nearby_view(b)))
        ) {
            prop_assert_eq!(PongView::decode_delta(&base, &delta(&base, &cur)), Ok(cur));
        }

        #[test]
        fn messages_and_result_round_trip(
            client in any_client_msg(),
            server in any_server_msg(),
            scores in any::<[u32; 2]>(),
            winner in any::<u8>(),
        ) {
            prop_assert_eq!(PongClientMsg::decode(&encoded(&client)), Ok(client));
            prop_assert_eq!(PongServerMsg::decode(&encoded(&server)), Ok(server));
            let result = PongResult { scores, winner };
            prop_assert_eq!(PongResult::decode(&encoded(&result)), Ok(result));
        }

        #[test]
        fn arbitrary_bytes_never_panic(
            bytes in proptest::collection::vec(any::<u8>(), 0..48),
            base in any_view(),
        ) {
            let _ = PaddleMove::decode(&bytes);
            let _ = PongView::decode_full(&bytes);
            let _ = PongView::decode_delta(&base, &bytes);
            let _ = PongClientMsg::decode(&bytes);
            let _ = PongServerMsg::decode(&bytes);
            let _ = PongResult::decode(&bytes);
        }
    }
}
