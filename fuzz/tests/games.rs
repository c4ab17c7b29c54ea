//! Fuzz targets for the games' decoders, for `arena`, `arena-lockstep` and the example game
//! `pong` (`tickroom-pong`): inputs, full and delta views, custom messages and results, and
//! `restore`. Seeds are real encodings taken from played matches; each target checks that
//! decoding returns (never panics), that what decodes survives a round trip, that a restored
//! game saves the same bytes back and can be played on, and that the largest single
//! allocation stays within the limit of the message the bytes arrive in.

use std::fmt::Debug;

use proptest::prelude::*;
use tickroom_fuzz::alloc::{assert_installed, measure, CountingAlloc};
use tickroom_fuzz::mutate::hostile;
use tickroom_fuzz::{check_alloc, run};
use tickroom_game::arena::{ArenaInput, ArenaParams, ArenaResult};
use tickroom_game::arena_lockstep::LockstepInput;
use tickroom_game::rng::SplitMix64;
use tickroom_game::{
    Arena, ArenaLockstep, Ctx, LockstepGame, Message, NoParams, Player, PlayerMetadata, Setup,
    StateCodec, StateGame, Viewer,
};
use tickroom_pong::{PaddleMove, Pong, PongClientMsg, PongParams, PongResult, PongServerMsg};
use tickroom_protocol::codec::{MAX_CLIENT_MSG_BYTES, MAX_SERVER_MSG_BYTES};

#[global_allocator]
static ALLOC: CountingAlloc = CountingAlloc;

/// Random inputs are at most this long.
const MAX_RANDOM_BYTES: usize = 256;
/// Filler mutations reach this far: past every game encoding, well inside the codec limits.
const MAX_MUTATED_BYTES: usize = 8 * 1024;
/// Ticks (or frames) played to collect seeds.
const SEED_TICKS: u64 = 300;
/// Seeds are kept every this many ticks.
const SEED_EVERY_TICKS: u64 = 25;
/// Ticks a restored game is played on, to show that what `restore` accepts is playable.
const TICKS_AFTER_RESTORE: u64 = 8;
/// The length of one tick, seconds.
const DT_S: f32 = 1.0 / 30.0;
/// The room seed of every seed match.
const MATCH_SEED: u64 = 0x5EED;

/// Encodings taken from a played match: the seeds of every target of one game.
#[derive(Default)]
struct Seeds {
    inputs: Vec<Vec<u8>>,
    fulls: Vec<Vec<u8>>,
    deltas: Vec<Vec<u8>>,
    client_messages: Vec<Vec<u8>>,
    server_messages: Vec<Vec<u8>>,
    results: Vec<Vec<u8>>,
    saves: Vec<Vec<u8>>,
}

fn encoded(msg: &impl Message) -> Vec<u8> {
    let mut out = Vec::new();
    msg.encode(&mut out);
    out
}

fn setup<P>(max_players: u8, params: &P) -> Setup<'_, P> {
    Setup {
        mode: "fuzz",
        max_players,
        tick_rate_hz: 30,
        seed: MATCH_SEED,
        params,
    }
}

/// Plays a state-sync match with pseudo-random inputs and keeps its encodings; `input` makes
/// one input from random bits.
fn play_state<G: StateGame>(
    setup: &Setup<'_, G::Params>,
    input: impl Fn(u64) -> G::Input,
    client_messages: &[G::ClientMessage],
) -> (Seeds, Vec<G::View>) {
    let metadata = PlayerMetadata::default();
    let mut game = G::create(setup);
    let mut ctx = Ctx::default();
    let mut seeds = Seeds::default();
    let mut views = Vec::new();
    let mut rng = SplitMix64::new(MATCH_SEED);
    for slot in 0..setup.max_players {
        let player = Player {
            player_id: u64::from(slot) + 1,
            slot,
            metadata: &metadata,
        };
        game.on_join(&player, &mut ctx);
    }
    let mut previous: Option<G::View> = None;
    for tick in 1..=SEED_TICKS {
        for slot in 0..setup.max_players {
            let i = input(rng.next_u64());
            if tick % SEED_EVERY_TICKS == 0 {
                let mut out = Vec::new();
                G::encode_input(&i, &mut out);
                seeds.inputs.push(out);
            }
            game.apply_input(slot, &i);
        }
        game.step(DT_S, &mut ctx);
        seeds
            .server_messages
            .extend(ctx.take_sends().map(|(_, bytes)| bytes));
        let view = game.view(Viewer::Everyone);
        if tick % SEED_EVERY_TICKS == 0 {
            let mut full = Vec::new();
            G::encode_full(&view, &mut full);
            seeds.fulls.push(full);
            let mut save = Vec::new();
            game.save(&mut save);
            seeds.saves.push(save);
            if let Some(base) = &previous {
                let mut delta = Vec::new();
                G::encode_delta(base, &view, &mut delta);
                seeds.deltas.push(delta);
            }
            views.push(view.clone());
        }
        previous = Some(view);
    }
    for (slot, msg) in (0..setup.max_players).cycle().zip(client_messages) {
        seeds.client_messages.push(encoded(msg));
        // Only the encodings are wanted; the hook may answer with server messages.
        let Ok(msg) = G::ClientMessage::decode(&encoded(msg)) else {
            continue;
        };
        game.on_message(slot, msg, &mut ctx);
    }
    game.on_time_up(&mut ctx);
    seeds
        .server_messages
        .extend(ctx.take_sends().map(|(_, bytes)| bytes));
    seeds.results.extend(ctx.take_result());
    for list in [
        &mut seeds.inputs,
        &mut seeds.client_messages,
        &mut seeds.server_messages,
        &mut seeds.results,
    ] {
        // Every list needs a seed for the mutator; an empty input is one.
        if list.is_empty() {
            list.push(Vec::new());
        }
    }
    (seeds, views)
}

/// Decodes `bytes` as one `T` with `decode`, within `limit`, and checks the round trip.
fn decode_round_trip<T: PartialEq + Debug>(
    what: &str,
    bytes: &[u8],
    limit: usize,
    decode: impl Fn(&[u8]) -> Result<T, tickroom_game::GameError>,
    encode: impl Fn(&T, &mut Vec<u8>),
) -> Result<(), TestCaseError> {
    let (decoded, stats) = measure(|| decode(bytes));
    check_alloc(what, bytes, stats, limit)?;
    if let Ok(value) = decoded {
        let mut again = Vec::new();
        encode(&value, &mut again);
        prop_assert_eq!(decode(&again), Ok(value), "{} round trip", what);
    }
    Ok(())
}

/// The input target of a state-sync game: inputs arrive in client messages.
fn state_inputs<G: StateGame>(name: &str, seeds: &Seeds) {
    let input = hostile(seeds.inputs.clone(), MAX_RANDOM_BYTES, MAX_MUTATED_BYTES);
    run(name, input, |bytes| {
        decode_round_trip(
            "decode_input",
            &bytes,
            MAX_CLIENT_MSG_BYTES,
            G::decode_input,
            G::encode_input,
        )
    });
}

/// The view target of a state-sync game: full views and deltas against real baselines
/// arrive in server snapshots.
fn state_views<G: StateGame>(name: &str, seeds: &Seeds, views: &[G::View]) {
    let mut all = seeds.fulls.clone();
    all.extend(seeds.deltas.iter().cloned());
    let input = (
        hostile(all, MAX_RANDOM_BYTES, MAX_MUTATED_BYTES),
        any::<proptest::sample::Index>(),
    );
    run(name, input, |(bytes, base)| {
        let base = base.get(views);
        decode_round_trip(
            "decode_full",
            &bytes,
            MAX_SERVER_MSG_BYTES,
            G::decode_full,
            G::encode_full,
        )?;
        decode_round_trip(
            "decode_delta",
            &bytes,
            MAX_SERVER_MSG_BYTES,
            |b| G::decode_delta(base, b),
            |v, out| G::encode_delta(base, v, out),
        )
    });
}

/// The message target: client messages (64 KiB), server messages and results (1 MiB).
fn messages<C, S, R>(name: &str, seeds: &Seeds)
where
    C: Message + PartialEq,
    S: Message + PartialEq,
    R: Message + PartialEq,
{
    let mut all = seeds.client_messages.clone();
    all.extend(seeds.server_messages.iter().cloned());
    all.extend(seeds.results.iter().cloned());
    let input = hostile(all, MAX_RANDOM_BYTES, MAX_MUTATED_BYTES);
    run(name, input, |bytes| {
        decode_round_trip(
            "client message",
            &bytes,
            MAX_CLIENT_MSG_BYTES,
            C::decode,
            C::encode,
        )?;
        decode_round_trip(
            "server message",
            &bytes,
            MAX_SERVER_MSG_BYTES,
            S::decode,
            S::encode,
        )?;
        decode_round_trip("result", &bytes, MAX_SERVER_MSG_BYTES, R::decode, R::encode)
    });
}

/// A save, the version it is restored as, and the random bits of the inputs played after.
fn save_case(seeds: &Seeds, version: u16) -> impl Strategy<Value = (Vec<u8>, u16, u64)> {
    (
        hostile(seeds.saves.clone(), MAX_RANDOM_BYTES, MAX_MUTATED_BYTES),
        prop_oneof![8 => Just(version), 1 => any::<u16>()],
        any::<u64>(),
    )
}

/// The save target of a state-sync game: what `restore` accepts saves the same bytes back
/// and plays on with random inputs made by `input`. A save is not bounded by a message; it is
/// held to the client limit, far above any real save.
fn state_saves<G: StateGame>(
    name: &str,
    setup: &Setup<'_, G::Params>,
    seeds: &Seeds,
    input: impl Fn(u64) -> G::Input,
) {
    run(
        name,
        save_case(seeds, G::SAVE_VERSION),
        |(bytes, version, script)| {
            let (restored, stats) = measure(|| G::restore(setup, version, &bytes));
            check_alloc("restore", &bytes, stats, MAX_CLIENT_MSG_BYTES)?;
            let Ok(mut game) = restored else {
                return Ok(());
            };
            let mut saved = Vec::new();
            game.save(&mut saved);
            prop_assert_eq!(&saved, &bytes, "a restored game saves other bytes");
            let mut ctx = Ctx::default();
            let mut full = Vec::new();
            let mut script = SplitMix64::new(script);
            for _ in 0..TICKS_AFTER_RESTORE {
                for slot in 0..setup.max_players {
                    game.apply_input(slot, &input(script.next_u64()));
                }
                game.step(DT_S, &mut ctx);
                ctx.take_sends().for_each(drop);
                full.clear();
                G::encode_full(&game.view(Viewer::Everyone), &mut full);
                prop_assert!(
                    G::decode_full(&full).is_ok(),
                    "a restored game's view decodes"
                );
            }
            Ok(())
        },
    );
}

/// Plays a lockstep match with pseudo-random inputs; returns encoded inputs and saves.
fn play_lockstep<G: LockstepGame>(
    setup: &Setup<'_, G::Params>,
    input: impl Fn(u64) -> G::Input,
) -> Seeds {
    let mut game = G::create(setup);
    let mut seeds = Seeds::default();
    let mut rng = SplitMix64::new(MATCH_SEED);
    for frame in 1..=SEED_TICKS {
        let inputs: Vec<G::Input> = (0..setup.max_players)
            .map(|_| input(rng.next_u64()))
            .collect();
        game.step(frame, &inputs);
        if frame % SEED_EVERY_TICKS == 0 {
            for i in &inputs {
                let mut out = Vec::new();
                G::encode_input(i, &mut out);
                seeds.inputs.push(out);
            }
            let mut save = Vec::new();
            game.save(&mut save);
            seeds.saves.push(save);
        }
    }
    seeds.inputs.push(Vec::new());
    seeds
}

/// The input target of a lockstep game: inputs arrive in client messages and in frames.
fn lockstep_inputs<G: LockstepGame>(name: &str, seeds: &Seeds) {
    let input = hostile(seeds.inputs.clone(), MAX_RANDOM_BYTES, MAX_MUTATED_BYTES);
    run(name, input, |bytes| {
        decode_round_trip(
            "decode_input",
            &bytes,
            MAX_CLIENT_MSG_BYTES,
            G::decode_input,
            G::encode_input,
        )
    });
}

/// The save target of a lockstep game, as for state-sync games.
fn lockstep_saves<G: LockstepGame>(
    name: &str,
    setup: &Setup<'_, G::Params>,
    seeds: &Seeds,
    input: impl Fn(u64) -> G::Input,
) {
    run(
        name,
        save_case(seeds, G::SAVE_VERSION),
        |(bytes, version, script)| {
            let (restored, stats) = measure(|| G::restore(setup, version, &bytes));
            check_alloc("restore", &bytes, stats, MAX_CLIENT_MSG_BYTES)?;
            let Ok(mut game) = restored else {
                return Ok(());
            };
            let mut saved = Vec::new();
            game.save(&mut saved);
            prop_assert_eq!(&saved, &bytes, "a restored game saves other bytes");
            let mut script = SplitMix64::new(script);
            for frame in 0..TICKS_AFTER_RESTORE {
                let inputs: Vec<G::Input> = (0..setup.max_players)
                    .map(|_| input(script.next_u64()))
                    .collect();
                game.step(frame, &inputs);
                let _ = game.checksum();
            }
            Ok(())
        },
    );
}

/// Random bits as the shared 3-byte movement input.
fn stick(bits: u64) -> (i8, i8, u8) {
    let [x, y, b, ..] = bits.to_le_bytes();
    (x as i8, y as i8, b)
}

const ARENA_PLAYERS: u8 = 6;

fn arena_input(bits: u64) -> ArenaInput {
    let (move_x, move_y, buttons) = stick(bits);
    ArenaInput {
        move_x,
        move_y,
        buttons,
    }
}

fn arena_seeds() -> (Seeds, Vec<<Arena as StateCodec>::View>) {
    let params = ArenaParams::default();
    let lines = ["gg".to_owned(), "héllo 🎮".to_owned(), String::new()];
    play_state::<Arena>(&setup(ARENA_PLAYERS, &params), arena_input, &lines)
}

#[test]
fn arena_inputs() {
    state_inputs::<Arena>("arena_inputs", &arena_seeds().0);
}

#[test]
fn arena_views() {
    let (seeds, views) = arena_seeds();
    state_views::<Arena>("arena_views", &seeds, &views);
}

#[test]
fn arena_messages() {
    messages::<String, String, ArenaResult>("arena_messages", &arena_seeds().0);
}

#[test]
fn arena_saves() {
    let params = ArenaParams::default();
    let setup = setup(ARENA_PLAYERS, &params);
    let seeds = arena_seeds().0;
    state_saves::<Arena>("arena_saves", &setup, &seeds, arena_input);
}

const LOCKSTEP_PLAYERS: u8 = 4;

fn lockstep_input(bits: u64) -> LockstepInput {
    let (move_x, move_y, buttons) = stick(bits);
    LockstepInput {
        move_x,
        move_y,
        buttons,
    }
}

fn lockstep_seeds() -> Seeds {
    play_lockstep::<ArenaLockstep>(&setup(LOCKSTEP_PLAYERS, &NoParams {}), lockstep_input)
}

#[test]
fn arena_lockstep_inputs() {
    lockstep_inputs::<ArenaLockstep>("arena_lockstep_inputs", &lockstep_seeds());
}

#[test]
fn arena_lockstep_saves() {
    let params = NoParams {};
    let setup = setup(LOCKSTEP_PLAYERS, &params);
    let seeds = lockstep_seeds();
    lockstep_saves::<ArenaLockstep>("arena_lockstep_saves", &setup, &seeds, lockstep_input);
}

const PONG_PLAYERS: u8 = 2;

fn pong_seeds() -> (Seeds, Vec<<Pong as StateCodec>::View>) {
    let params = PongParams::default();
    let messages = [
        PongClientMsg::Ready,
        PongClientMsg::Chat("gg wp".into()),
        PongClientMsg::Chat("ça va ✓".into()),
        PongClientMsg::Ready,
    ];
    play_state::<Pong>(&setup(PONG_PLAYERS, &params), pong_input, &messages)
}

fn pong_input(bits: u64) -> PaddleMove {
    match bits % 3 {
        0 => PaddleMove::Stay,
        1 => PaddleMove::Up,
        _ => PaddleMove::Down,
    }
}

#[test]
fn pong_inputs() {
    state_inputs::<Pong>("pong_inputs", &pong_seeds().0);
}

#[test]
fn pong_views() {
    let (seeds, views) = pong_seeds();
    state_views::<Pong>("pong_views", &seeds, &views);
}

#[test]
fn pong_messages() {
    messages::<PongClientMsg, PongServerMsg, PongResult>("pong_messages", &pong_seeds().0);
}

/// Pong's save starts with the tick, a `u64` that `step` increments with `+=`.
const PONG_SAVED_TICK: std::ops::Range<usize> = 0..8;

/// True for a save whose tick the target's `TICKS_AFTER_RESTORE` steps take past `u64::MAX`
/// (found by this harness: pong's `step` overflowed there; it wraps now).
fn pong_tick_overflows(save: &[u8]) -> bool {
    let Some(Ok(tick)) = save.get(PONG_SAVED_TICK).map(<[u8; 8]>::try_from) else {
        return false;
    };
    u64::from_le_bytes(tick) > u64::MAX - TICKS_AFTER_RESTORE
}

#[test]
fn pong_saves() {
    let params = PongParams::default();
    let setup = setup(PONG_PLAYERS, &params);
    let seeds = pong_seeds().0;
    state_saves::<Pong>("pong_saves", &setup, &seeds, pong_input);
}

#[test]
fn pong_steps_a_restored_tick_of_u64_max_without_overflow() {
    let params = PongParams::default();
    let setup = setup(PONG_PLAYERS, &params);
    let mut save = pong_seeds().0.saves[0].clone();
    save[PONG_SAVED_TICK].copy_from_slice(&u64::MAX.to_le_bytes());
    assert!(pong_tick_overflows(&save));
    let mut game = Pong::restore(&setup, Pong::SAVE_VERSION, &save).expect("restores");
    game.step(DT_S, &mut Ctx::default());
}

#[test]
fn the_counting_allocator_is_installed() {
    assert_installed();
}
