//! How a pong bot plays: it keeps its paddle level with the ball, and says `Ready` after
//! every point. [`PongBot`] plugs that into `tickroom_bot`, which does the rest (login,
//! matchmaking, transports, reconnects, measurements); [`run_bot_cli`] is the whole
//! program of `pong-play` and `pong-swarm`.

use std::ffi::OsString;
use std::process::ExitCode;

use tickroom_bot::{factory, GameBot, GameBotFactory, RandomBot, SmallRng};
use tickroom_game::{GameError, Message};
use tickroom_protocol::view::{encode_input, encode_message, ViewTracker};
use tickroom_protocol::SyncKind;

use crate::wire::{PaddleMove, PongClientMsg, PongResult, PongServerMsg, PongView};
use crate::Pong;

/// How far the ball may be from the paddle's centre before the bot moves, in view units.
pub const DEAD_ZONE_VIEW_UNITS: i32 = 20;
/// The mode `pong-play` and `pong-swarm` queue for unless `--mode` says otherwise.
pub const DEFAULT_MODE: &str = "pong";

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

/// A bot in one pong room: it rebuilds the server's view from snapshots and follows the ball.
#[derive(Debug)]
pub struct PongBot {
    slot: u8,
    views: ViewTracker<Pong>,
}

impl PongBot {
    /// A bot playing the paddle of `slot`.
    pub fn new(slot: u8) -> PongBot {
        PongBot {
            slot,
            views: ViewTracker::default(),
        }
    }
}

impl GameBot for PongBot {
    fn next_input(&mut self, _rng: &mut SmallRng) -> Vec<u8> {
        let input = self
            .views
            .latest()
            .map_or(PaddleMove::Stay, |(_, view)| follow_ball(view, self.slot));
        encode_input::<Pong>(&input)
    }

    fn on_snapshot(&mut self, tick: u64, baseline: u64, payload: &[u8]) -> Result<(), GameError> {
        self.views.apply(tick, baseline, payload).map(|_| ())
    }

    fn frame_input(&mut self, _frame: u64, _rng: &mut SmallRng) -> Vec<u8> {
        // Pong is state sync; a lockstep room never runs it.
        Vec::new()
    }

    fn on_message(&mut self, payload: &[u8]) -> Result<Option<Vec<u8>>, GameError> {
        Ok(match PongServerMsg::decode(payload)? {
            PongServerMsg::Scored { .. } => Some(encode_message(&PongClientMsg::Ready)),
            PongServerMsg::Chat { .. } => None,
        })
    }

    fn on_match_ended(&mut self, result: &[u8]) -> Result<(), GameError> {
        PongResult::decode(result).map(|_| ())
    }
}

/// Pong bots for state-sync rooms; a lockstep room (a mode of another game) gets the random bot.
pub fn pong_bots() -> GameBotFactory {
    factory(|welcome, _mode| match welcome.sync {
        SyncKind::State => Box::new(PongBot::new(welcome.slot)),
        SyncKind::Lockstep => Box::new(RandomBot),
    })
}

/// Runs `tickroom-bot <subcommand>` (`play` or `swarm`) with pong's bots: the process
/// arguments are that subcommand's flags, and `--mode` defaults to [`DEFAULT_MODE`].
pub fn run_bot_cli(subcommand: &str) -> ExitCode {
    tickroom_bot::run_game_cli(
        bot_args(subcommand, std::env::args_os()),
        DEFAULT_MODE,
        pong_bots(),
    )
}

/// `program FLAGS...` as `program SUBCOMMAND FLAGS...`.
fn bot_args(subcommand: &str, args: impl IntoIterator<Item = OsString>) -> Vec<OsString> {
    let mut args: Vec<OsString> = args.into_iter().collect();
    args.insert(1.min(args.len()), subcommand.into());
    args
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;

    use super::*;

    fn args(list: &[&str]) -> Vec<OsString> {
        list.iter().map(OsString::from).collect()
    }

    #[test]
    fn the_flags_are_the_subcommands() {
        let check = |given: &[&str], expect: &[&str]| {
            assert_eq!(bot_args("play", args(given)), args(expect));
        };
        check(
            &["pong-play", "--server", "x"],
            &["pong-play", "play", "--server", "x"],
        );
        check(
            &["pong-play", "--mode=p2"],
            &["pong-play", "play", "--mode=p2"],
        );
        check(&[], &["play"]);
    }

    #[test]
    fn the_bot_follows_the_ball_and_answers_a_point_with_ready() {
        let mut bot = PongBot::new(1);
        let mut rng = SmallRng::seed_from_u64(1);
        let stay = encode_input::<Pong>(&PaddleMove::Stay);
        let up = encode_input::<Pong>(&PaddleMove::Up);
        assert_eq!(bot.next_input(&mut rng), stay, "no view yet");
        let view = PongView {
            tick: 1,
            paddle_y: [300, 300],
            ball: [500, 450],
            ..PongView::default()
        };
        let mut full = Vec::new();
        view.encode_full(&mut full);
        assert_eq!(bot.on_snapshot(1, 0, &full), Ok(()));
        assert_eq!(bot.next_input(&mut rng), up, "the ball is above the paddle");
        assert!(bot.on_snapshot(3, 2, &[0, 1]).is_err(), "no view of tick 2");

        let scored = encode_message(&PongServerMsg::Scored {
            by: 0,
            scores: [1, 0],
        });
        let ready = encode_message(&PongClientMsg::Ready);
        assert_eq!(bot.on_message(&scored), Ok(Some(ready)));
        let chat = encode_message(&PongServerMsg::Chat {
            from: 0,
            text: "hi".into(),
        });
        assert_eq!(bot.on_message(&chat), Ok(None));
        assert!(bot.on_message(&[0xEE]).is_err());
        let result = encode_message(&PongResult {
            scores: [2, 1],
            winner: 0,
        });
        assert_eq!(bot.on_match_ended(&result), Ok(()));
        assert!(bot.on_match_ended(&[]).is_err());
    }
}
