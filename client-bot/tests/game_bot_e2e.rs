//! The library entry with a game's own bots: the real `tickroom` server (with a modes file of
//! short matches) and `tickroom_bot::run` in this process with a custom [`GameBot`] factory,
//! for a state-sync and a lockstep mode; then the default factory on a mode it does not know
//! (random inputs). Checks that the custom bot is the one that plays, that matches end
//! cleanly, and the report. Needs the server binary built first
//! (`cargo build -p tickroom-server --bin tickroom`).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use clap::Parser;
use tickroom_bot::cli::Cli;
use tickroom_bot::{
    default_factory, factory, GameBot, GameBotFactory, GameError, SmallRng, EXIT_OK,
};
use tickroom_protocol::SyncKind;

mod common;

/// Two short matches: the arena (state sync) ends its match with a result when time is up;
/// the lockstep arena's room just closes.
const MODES_TOML: &str = r#"
[[mode]]
name = "quick-duel"
game = "arena"
sync = "state"
tick_rate_hz = 30
players = 2
min_players = 2
matchmaking_wait_s = 10
start_timeout_s = 10
match_duration_s = 2
grace_s = 30
input_redundancy = 8

[[mode]]
name = "quick-duel-lockstep"
game = "arena-lockstep"
sync = "lockstep"
tick_rate_hz = 20
players = 2
min_players = 2
matchmaking_wait_s = 10
start_timeout_s = 10
match_duration_s = 2
grace_s = 30
checksum_interval_frames = 10
"#;
/// How long one in-process swarm may take (its own hard deadline is ~40 s).
const SWARM_TIMEOUT: Duration = Duration::from_secs(60);
/// Bots per run: one duel room.
const BOTS: u64 = 2;
/// The checksum every test bot reports (all agree, so no desync).
const TEST_CHECKSUM: u64 = 0x7e57;

/// What the test bots saw, across both bots of a run.
#[derive(Debug, Default)]
struct Seen {
    rooms: Mutex<Vec<(String, SyncKind)>>,
    inputs: AtomicU64,
    snapshots: AtomicU64,
    frame_inputs: AtomicU64,
    frames: AtomicU64,
    results: Mutex<Vec<Vec<u8>>>,
}

/// A game's own bot: idle inputs, counts everything.
struct CountingBot(Arc<Seen>);

impl GameBot for CountingBot {
    fn next_input(&mut self, _rng: &mut SmallRng) -> Vec<u8> {
        self.0.inputs.fetch_add(1, Ordering::Relaxed);
        vec![0, 0, 0]
    }

    fn on_snapshot(
        &mut self,
        _tick: u64,
        _baseline: u64,
        _payload: &[u8],
    ) -> Result<(), GameError> {
        self.0.snapshots.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    fn frame_input(&mut self, _frame: u64, _rng: &mut SmallRng) -> Vec<u8> {
        self.0.frame_inputs.fetch_add(1, Ordering::Relaxed);
        vec![0, 0, 0]
    }

    fn on_frame(&mut self, _frame: u64, _inputs: &[Vec<u8>]) -> Result<Option<u64>, GameError> {
        self.0.frames.fetch_add(1, Ordering::Relaxed);
        Ok(Some(TEST_CHECKSUM))
    }

    fn on_match_ended(&mut self, result: &[u8]) -> Result<(), GameError> {
        self.0.results.lock().unwrap().push(result.to_vec());
        Ok(())
    }
}

fn counting_factory(seen: &Arc<Seen>) -> GameBotFactory {
    let seen = seen.clone();
    factory(move |welcome, mode| {
        seen.rooms
            .lock()
            .unwrap()
            .push((mode.to_string(), welcome.sync));
        Box::new(CountingBot(seen.clone()))
    })
}

/// Runs a swarm of [`BOTS`] in this process; returns the exit code and the report.
fn swarm(
    http: &str,
    mode: &str,
    dir: &std::path::Path,
    bots: GameBotFactory,
) -> (u8, serde_json::Value) {
    let report = dir.join(format!("report-{mode}.json"));
    let cli = Cli::try_parse_from([
        "tickroom-bot",
        "swarm",
        "--server",
        &format!("http://{http}"),
        "--bots",
        &BOTS.to_string(),
        "--ramp",
        "0s",
        // Longer than the match: the match ending is what ends play.
        "--duration",
        "20s",
        "--transport",
        "mixed",
        "--mode",
        mode,
        "--no-progress",
        "--report",
        report.to_str().expect("utf-8 temp path"),
    ])
    .expect("valid command line");
    let code = tickroom_testkit::within(SWARM_TIMEOUT, mode, move || tickroom_bot::run(cli, bots));
    let text = std::fs::read_to_string(&report).expect("report written");
    (code, serde_json::from_str(&text).expect("report is JSON"))
}

#[test]
fn a_games_own_bot_plays_through_the_library_entry() {
    let dir = common::unique_temp_dir("game-bot");
    let modes = dir.join("modes.toml");
    std::fs::write(&modes, MODES_TOML).expect("write modes file");
    let (server, http) = common::start_server(&dir, &["--modes", modes.to_str().unwrap()]);

    // State sync: the arena ends the match when time is up and sends its result.
    let seen = Arc::new(Seen::default());
    let (code, report) = swarm(&http, "quick-duel", &dir, counting_factory(&seen));
    let what = format!("quick-duel: {report:#} {seen:?}");
    assert_eq!(code, EXIT_OK, "{what}");
    assert_eq!(report["joined"], BOTS, "{what}");
    assert_eq!(
        report["errors"], 0,
        "the room closing after the result is no error: {what}"
    );
    // At least one: the server's WebSocket close can lose the last messages to a TCP reset
    // (it stops reading before the client's close), and a bot that missed the end learns from
    // the gateway that the room is over, with no error.
    let ended = report["matches_ended"].as_u64().expect("matches_ended");
    assert!((1..=BOTS).contains(&ended), "{what}");
    let rooms = seen.rooms.lock().unwrap().clone();
    assert_eq!(
        rooms,
        vec![("quick-duel".to_string(), SyncKind::State); 2],
        "{what}"
    );
    assert!(seen.inputs.load(Ordering::Relaxed) > 0, "{what}");
    assert!(seen.snapshots.load(Ordering::Relaxed) > 0, "{what}");
    assert_eq!(seen.frame_inputs.load(Ordering::Relaxed), 0, "{what}");
    let results = seen.results.lock().unwrap().clone();
    assert_eq!(
        results.len() as u64,
        ended,
        "on_match_ended once per match: {what}"
    );
    assert!(!results[0].is_empty(), "{what}");
    assert!(
        results.iter().all(|r| *r == results[0]),
        "one result: {what}"
    );

    // Lockstep: the same bot type steps frames and reports (agreeing) checksums.
    let seen = Arc::new(Seen::default());
    let (code, report) = swarm(&http, "quick-duel-lockstep", &dir, counting_factory(&seen));
    let what = format!("quick-duel-lockstep: {report:#} {seen:?}");
    assert_eq!(code, EXIT_OK, "{what}");
    assert_eq!(report["errors"], 0, "{what}");
    let rooms = seen.rooms.lock().unwrap().clone();
    let lockstep = ("quick-duel-lockstep".to_string(), SyncKind::Lockstep);
    assert_eq!(rooms, vec![lockstep; 2], "{what}");
    assert!(seen.frame_inputs.load(Ordering::Relaxed) > 0, "{what}");
    assert!(seen.frames.load(Ordering::Relaxed) > 0, "{what}");
    assert_eq!(seen.inputs.load(Ordering::Relaxed), 0, "{what}");

    // The default factory does not know this mode: random inputs, and the server copes.
    let (code, report) = swarm(&http, "quick-duel", &dir, default_factory());
    assert_eq!(code, EXIT_OK, "random bots: {report:#}");
    assert_eq!(report["errors"], 0, "random bots: {report:#}");
    assert!(
        report["matches_ended"].as_u64() >= Some(1),
        "random bots: {report:#}"
    );

    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
}
