//! How a pong bot plays: it keeps its paddle level with the ball. Pure: a view in, an input
//! out, so tests and every bot binary share it.

use crate::wire::{PaddleMove, PongView};

/// How far the ball may be from the paddle's centre before the bot moves, in view units.
pub const DEAD_ZONE_VIEW_UNITS: i32 = 20;

/// The input that moves the paddle in `slot` towards the ball's height.
pub fn follow_ball(view: &PongView, slot: u8) -> PaddleMove {
    let paddle_y = view.paddle_y[usize::from(slot.min(1))];
    let gap = i32::from(view.ball[1]) - i32::from(paddle_y);
    if gap > DEAD_ZONE_VIEW_UNITS {
        PaddleMove::Up
    } else if gap < -DEAD_ZONE_VIEW_UNITS {
        PaddleMove::Down
    } else {
        PaddleMove::Stay
    }
}
