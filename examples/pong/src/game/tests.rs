//! Unit and property tests of pong's rules, admission, save/restore and client view tracking.

use std::collections::BTreeMap;

use proptest::prelude::*;
use tickroom_game::{Message, PlayerMetadata};
use tickroom_protocol::view::ViewTracker;

use super::*;
use crate::bot::follow_ball;

const DT_S: f32 = 1.0 / 30.0;
/// Enough ticks for any test rally to end: ten minutes at 30 Hz.
const MAX_TEST_TICKS: u32 = 30 * 600;

fn params(score_limit: u32, ball_speed: f32) -> PongParams {
    PongParams {
        score_limit,
        ball_speed,
    }
}

fn setup(params: &PongParams, seed: u64) -> Setup<'_, PongParams> {
    Setup {
        mode: "pong",
        max_players: 2,
        tick_rate_hz: 30,
        seed,
        params,
    }
}

/// A match with both players seated.
fn seated(params: &PongParams, seed: u64) -> Pong {
    let mut g = Pong::create(&setup(params, seed));
    let metadata = PlayerMetadata::default();
    let mut ctx = Ctx::default();
    for slot in 0..2 {
        let player = Player {
            player_id: u64::from(slot) + 100,
            slot,
            metadata: &metadata,
        };
        g.join_attempt(&player).expect("admitted");
        g.on_join(&player, &mut ctx);
    }
    g
}

/// The ball in play at (x, y) with velocity (vx, vy).
fn rally(g: &mut Pong, x: f32, y: f32, vx: f32, vy: f32) {
    g.ball = Ball { x, y, vx, vy };
    g.phase = Phase::Rally;
}

/// Steps until `done` holds; panics after `MAX_TEST_TICKS`.
fn step_until(g: &mut Pong, ctx: &mut Ctx<PongServerMsg>, done: impl Fn(&Pong) -> bool) {
    for _ in 0..MAX_TEST_TICKS {
        if done(g) {
            return;
        }
        g.step(DT_S, ctx);
    }
    panic!("not done after {MAX_TEST_TICKS} ticks: {g:?}");
}

fn sent(ctx: &mut Ctx<PongServerMsg>) -> Vec<PongServerMsg> {
    ctx.take_sends()
        .map(|(_, bytes)| PongServerMsg::decode(&bytes).expect("own message decodes"))
        .collect()
}

/// A ball sent at slot `at`'s goal, far from its paddle, wins a point for the other one.
fn miss(g: &mut Pong, ctx: &mut Ctx<PongServerMsg>, at: u8) {
    let before = g.scores;
    g.paddles[usize::from(at)].y = PADDLE_HALF_HEIGHT_UNITS;
    let vx = if at == 0 { -40.0 } else { 40.0 };
    rally(
        g,
        FIELD_WIDTH_UNITS / 2.0,
        FIELD_HEIGHT_UNITS - 2.0,
        vx,
        0.0,
    );
    step_until(g, ctx, |g| g.scores != before);
}

#[test]
fn a_missed_ball_scores_for_the_other_player_and_is_served_again() {
    let mut g = seated(&PongParams::default(), 1);
    let mut ctx = Ctx::default();
    miss(&mut g, &mut ctx, 0);
    assert_eq!(g.scores(), [0, 1]);
    assert_eq!(
        sent(&mut ctx),
        [PongServerMsg::Scored {
            by: 1,
            scores: [0, 1]
        }]
    );
    assert_eq!(g.ball, Ball::AT_CENTRE);
    assert_eq!(
        g.phase,
        Phase::Serving {
            wait_s: SERVE_DELAY_S
        }
    );
    assert!(!g.is_over());
}

#[test]
fn a_paddle_returns_the_ball_faster_and_off_its_edge_steeper() {
    let mut g = seated(&PongParams::default(), 1);
    let mut ctx = Ctx::default();
    let paddle_y = g.paddles[1].y;
    // Aimed above the right paddle's centre, flat.
    rally(&mut g, 80.0, paddle_y + 3.0, 40.0, 0.0);
    step_until(&mut g, &mut ctx, |g| g.ball.vx < 0.0);
    assert_eq!(g.scores(), [0, 0]);
    assert!(
        (g.ball.vx + 40.0 * SPEEDUP_PER_HIT).abs() < 1e-4,
        "{:?}",
        g.ball
    );
    assert!(g.ball.vy > 0.0, "off the upper half goes up: {:?}", g.ball);
    assert!(g.ball.x <= FIELD_WIDTH_UNITS - PADDLE_INSET_UNITS - BALL_RADIUS_UNITS);
}

#[test]
fn a_fast_ball_cannot_pass_through_a_paddle() {
    let mut g = seated(&params(5, 1000.0), 1);
    let mut ctx = Ctx::default();
    let paddle_y = g.paddles[0].y;
    rally(&mut g, 20.0, paddle_y, -1000.0 * MAX_SPEEDUP, 0.0);
    g.step(MAX_STEP_S, &mut ctx);
    assert_eq!(g.scores(), [0, 0]);
    assert!(g.ball.vx > 0.0);
}

#[test]
fn the_ball_bounces_off_the_walls() {
    let mut g = seated(&PongParams::default(), 1);
    let mut ctx = Ctx::default();
    rally(&mut g, 50.0, 2.0, 0.0, -30.0);
    g.step(0.1, &mut ctx);
    // 1 unit down to the wall, 2 back up.
    assert_eq!(g.ball.vy, 30.0);
    assert!((g.ball.y - 3.0).abs() < 1e-4, "{:?}", g.ball);
    rally(&mut g, 50.0, FIELD_HEIGHT_UNITS - 2.0, 0.0, 30.0);
    g.step(0.1, &mut ctx);
    assert_eq!(g.ball.vy, -30.0);
}

#[test]
fn paddles_stop_at_the_field_edges() {
    let mut g = seated(&PongParams::default(), 1);
    let mut ctx = Ctx::default();
    g.apply_input(0, &PaddleMove::Up);
    g.apply_input(1, &PaddleMove::Down);
    g.apply_input(7, &PaddleMove::Up); // no such seat: ignored
    for _ in 0..100 {
        g.step(DT_S, &mut ctx);
    }
    assert_eq!(
        g.paddles[0].y,
        FIELD_HEIGHT_UNITS - PADDLE_HALF_HEIGHT_UNITS
    );
    assert_eq!(g.paddles[1].y, PADDLE_HALF_HEIGHT_UNITS);
    let view = g.view(Viewer::Everyone);
    assert_eq!(view.paddle_y, [540, 60]);
}

#[test]
fn the_serve_is_drawn_from_the_seed() {
    let serve = |seed| {
        let mut g = seated(&PongParams::default(), seed);
        let mut ctx = Ctx::default();
        step_until(&mut g, &mut ctx, |g| g.phase == Phase::Rally);
        (g.ball.vx, g.ball.vy)
    };
    assert_eq!(serve(7), serve(7));
    let serves: Vec<_> = (0..16).map(serve).collect();
    assert!(serves.iter().any(|s| s.0 > 0.0) && serves.iter().any(|s| s.0 < 0.0));
    assert!(serves.windows(2).any(|w| w[0] != w[1]));
    for (vx, vy) in serves {
        assert_eq!(vx.abs(), DEFAULT_BALL_SPEED_UNITS_PER_S);
        assert!(vy.abs() <= MAX_SERVE_SLOPE * vx.abs());
    }
}

#[test]
fn the_ball_waits_for_two_players_or_serves_at_once_when_both_are_ready() {
    let mut g = Pong::create(&setup(&PongParams::default(), 3));
    let mut ctx = Ctx::default();
    for _ in 0..100 {
        g.step(DT_S, &mut ctx);
    }
    assert_eq!(g.ball, Ball::AT_CENTRE, "no players, no serve");

    let mut g = seated(&PongParams::default(), 3);
    g.on_message(0, PongClientMsg::Ready, &mut ctx);
    g.step(DT_S, &mut ctx);
    assert!(
        matches!(g.phase, Phase::Serving { .. }),
        "one is not enough"
    );
    g.on_message(1, PongClientMsg::Ready, &mut ctx);
    g.step(DT_S, &mut ctx);
    assert_eq!(g.phase, Phase::Rally);
}

#[test]
fn the_match_ends_at_the_score_limit_with_a_result() {
    let mut g = seated(&params(2, 40.0), 5);
    let mut ctx = Ctx::default();
    miss(&mut g, &mut ctx, 1);
    assert_eq!(ctx.take_result(), None);
    miss(&mut g, &mut ctx, 1);
    let result = ctx.take_result().expect("the match ended");
    assert_eq!(
        PongResult::decode(&result),
        Ok(PongResult {
            scores: [2, 0],
            winner: 0
        })
    );
    assert!(g.is_over());
    let view = g.view(Viewer::Everyone);
    g.apply_input(0, &PaddleMove::Up);
    g.step(DT_S, &mut ctx);
    assert_eq!(
        g.view(Viewer::Everyone),
        PongView {
            tick: view.tick + 1,
            ..view
        },
        "nothing moves after the end"
    );
}

#[test]
fn time_up_ends_on_the_leader_or_a_draw() {
    let mut ctx = Ctx::default();
    let mut g = seated(&PongParams::default(), 5);
    g.on_time_up(&mut ctx);
    let draw = PongResult::decode(&ctx.take_result().unwrap()).unwrap();
    assert_eq!(draw.winner, NO_WINNER);
    let mut g = seated(&PongParams::default(), 5);
    miss(&mut g, &mut ctx, 0);
    g.on_time_up(&mut ctx);
    let result = PongResult::decode(&ctx.take_result().unwrap()).unwrap();
    assert_eq!(result.winner, 1);
    assert!(g.is_over());
}

#[test]
fn admission_checks_seat_name_and_version() {
    let g = Pong::new(&PongParams::default(), 1);
    let join = |slot: u8, entries: &[(&str, MetaValue)]| {
        let metadata = PlayerMetadata(
            entries
                .iter()
                .map(|(k, v)| (k.to_string(), v.clone()))
                .collect::<BTreeMap<_, _>>(),
        );
        g.join_attempt(&Player {
            player_id: 1,
            slot,
            metadata: &metadata,
        })
    };
    let s = |v: &str| MetaValue::Str(v.to_string());
    let refused = |reason: &str| Err(Refusal::new(reason));
    assert_eq!(join(0, &[]), Ok(()));
    assert_eq!(join(1, &[("name", s("sixteen-bytes-ok"))]), Ok(()));
    assert_eq!(join(0, &[("version", s(PONG_VERSION))]), Ok(()));
    assert_eq!(
        join(0, &[("name", s("seventeen-bytes!!"))]),
        refused("name is longer than 16 bytes")
    );
    assert_eq!(
        join(1, &[("version", s("0"))]),
        refused("client version 0 does not match server version 1")
    );
    assert_eq!(
        join(0, &[("version", MetaValue::Int(1))]),
        refused("version metadata must be a string")
    );
    assert!(join(2, &[]).is_err());
}

#[test]
fn chat_is_broadcast_with_the_senders_slot() {
    let mut g = seated(&PongParams::default(), 1);
    let mut ctx = Ctx::default();
    g.on_message(1, PongClientMsg::Chat("gg".into()), &mut ctx);
    let sends: Vec<_> = ctx.take_sends().collect();
    assert_eq!(sends.len(), 1);
    assert_eq!(sends[0].0, tickroom_game::Recipient::All);
    assert_eq!(
        PongServerMsg::decode(&sends[0].1),
        Ok(PongServerMsg::Chat {
            from: 1,
            text: "gg".into()
        })
    );
}

#[test]
fn two_ball_following_bots_finish_a_match() {
    for seed in 0..4 {
        let mut g = seated(&PongParams::default(), seed);
        let mut ctx = Ctx::default();
        for _ in 0..MAX_TEST_TICKS {
            if g.is_over() {
                break;
            }
            let view = g.view(Viewer::Everyone);
            for slot in 0..2 {
                g.apply_input(slot, &follow_ball(&view, slot));
            }
            g.step(DT_S, &mut ctx);
        }
        let result = PongResult::decode(&ctx.take_result().expect("over")).unwrap();
        assert_eq!(
            result.scores[usize::from(result.winner)],
            DEFAULT_SCORE_LIMIT
        );
    }
}

#[test]
fn the_client_rebuilds_the_server_view_with_a_view_tracker() {
    let mut g = seated(&PongParams::default(), 11);
    let mut ctx = Ctx::default();
    let mut tracker = ViewTracker::<Pong>::default();
    // Baseline 0 means "full" to the tracker, so the first view sent is of tick 1.
    g.step(DT_S, &mut ctx);
    let mut bytes = Vec::new();
    let mut baseline = g.view(Viewer::Everyone);
    Pong::encode_full(&baseline, &mut bytes);
    tracker.apply(baseline.tick, 0, &bytes).unwrap();
    for _ in 0..90 {
        let view = *tracker.latest().unwrap().1;
        g.apply_input(0, &follow_ball(&view, 0));
        g.step(DT_S, &mut ctx);
        let current = g.view(Viewer::Everyone);
        bytes.clear();
        Pong::encode_delta(&baseline, &current, &mut bytes);
        assert!(bytes.len() <= 12, "{} delta bytes", bytes.len());
        let rebuilt = tracker.apply(current.tick, baseline.tick, &bytes).unwrap();
        assert_eq!(rebuilt, &current);
        baseline = current;
    }
}

#[test]
fn the_modes_file_declares_pong_and_its_params_decode() {
    let modes = tickroom_game::modes::Modes::parse(include_str!("../../modes.toml")).unwrap();
    let mode = modes.by_name("pong").expect("mode pong");
    assert_eq!((mode.game.as_str(), mode.players), ("pong", 2));
    let params: PongParams = toml::Value::Table(mode.params.clone()).try_into().unwrap();
    assert_eq!(params.score_limit, DEFAULT_SCORE_LIMIT);
    let partial: PongParams = toml::from_str("ball_speed = 90").unwrap();
    assert_eq!(partial, params_with_speed(90.0));
    assert!(toml::from_str::<PongParams>("speed = 1").is_err());
}

fn params_with_speed(ball_speed: f32) -> PongParams {
    PongParams {
        ball_speed,
        ..PongParams::default()
    }
}

/// One thing that can happen to a match between two ticks.
#[derive(Debug, Clone)]
enum Event {
    Input(u8, PaddleMove),
    Ready(u8),
    Step(f32),
}

fn any_event() -> impl Strategy<Value = Event> {
    let moves = prop_oneof![
        Just(PaddleMove::Stay),
        Just(PaddleMove::Up),
        Just(PaddleMove::Down)
    ];
    prop_oneof![
        (0u8..2, moves).prop_map(|(slot, m)| Event::Input(slot, m)),
        (0u8..2).prop_map(Event::Ready),
        (0.0f32..0.2).prop_map(Event::Step),
    ]
}

/// Plays `events`; returns everything observable: views, messages and the result.
fn play(g: &mut Pong, events: &[Event]) -> Vec<(PongView, Vec<PongServerMsg>, Option<Vec<u8>>)> {
    let mut ctx = Ctx::default();
    events
        .iter()
        .map(|event| {
            match *event {
                Event::Input(slot, m) => g.apply_input(slot, &m),
                Event::Ready(slot) => g.on_message(slot, PongClientMsg::Ready, &mut ctx),
                Event::Step(dt_s) => g.step(dt_s, &mut ctx),
            }
            (g.view(Viewer::Everyone), sent(&mut ctx), ctx.take_result())
        })
        .collect()
}

proptest! {
    #[test]
    fn a_restored_match_plays_on_exactly_like_the_original(
        seed in any::<u64>(),
        score_limit in 1u32..4,
        ball_speed in 5.0f32..400.0,
        before in proptest::collection::vec(any_event(), 0..300),
        after in proptest::collection::vec(any_event(), 1..300),
    ) {
        let params = params(score_limit, ball_speed);
        let mut original = seated(&params, seed);
        play(&mut original, &before);
        let mut saved = Vec::new();
        original.save(&mut saved);
        let mut restored = Pong::restore(&setup(&params, seed), Pong::SAVE_VERSION, &saved)
            .expect("own save restores");
        prop_assert_eq!(&restored, &original);
        prop_assert_eq!(play(&mut restored, &after), play(&mut original, &after));
    }

    #[test]
    fn restoring_arbitrary_bytes_never_panics(
        bytes in proptest::collection::vec(any::<u8>(), 0..96),
        version in any::<u16>(),
    ) {
        let params = PongParams::default();
        let _ = Pong::restore(&setup(&params, 0), version, &bytes);
    }
}

#[test]
fn a_save_of_another_version_is_refused() {
    let g = seated(&PongParams::default(), 1);
    let mut saved = Vec::new();
    g.save(&mut saved);
    let params = PongParams::default();
    assert!(Pong::restore(&setup(&params, 1), Pong::SAVE_VERSION + 1, &saved).is_err());
    assert_eq!(
        Pong::restore(&setup(&params, 1), Pong::SAVE_VERSION, &saved[1..]),
        Err(GameError::Truncated)
    );
}
