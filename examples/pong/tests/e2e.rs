//! End to end against the real binaries: `pong-server` on port 0 with a fast mode, two
//! `pong-play` bots that play a whole match to its score limit (result read back from the
//! gateway), and a short `pong-swarm` whose report has the keys of `tickroom-bot swarm`'s.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use tickroom_bot::report::{Report, ReportInputs};
use tickroom_game::Message;
use tickroom_pong::PongResult;
use tickroom_protocol::connect::GatewayClient;
use tickroom_protocol::token::decode_hex;
use tickroom_testkit::{
    device_id, wait_output, ServerProcess, TempDir, ALL_ON_PORT_0, RELAXED_TICK_BUDGET,
};

/// How long a two-point match may take, debug build on a loaded machine included (a few
/// seconds when idle).
const MATCH_TIMEOUT: Duration = Duration::from_secs(90);
/// How long the swarm may run (it plays for `SWARM_PLAY` after a `SWARM_RAMP`).
const SWARM_TIMEOUT: Duration = Duration::from_secs(60);
/// How long the gateway may take to have the result once the players were told.
const RESULT_TIMEOUT: Duration = Duration::from_secs(10);
/// Pause between two asks for the stored result.
const RESULT_POLL: Duration = Duration::from_millis(50);
/// Points that end the test match.
const SCORE_LIMIT: u32 = 2;
/// Bots in the swarm run.
const SWARM_BOTS: usize = 4;
const SWARM_RAMP: &str = "1s";
const SWARM_PLAY: &str = "3s";

/// A fast pong: two points, a quick ball, so a match of two ball-following bots takes seconds.
const FAST_MODES: &str = r#"
[[mode]]
name = "pong"
game = "pong"
sync = "state"
tick_rate_hz = 30
players = 2
min_players = 2
start_timeout_s = 10
match_duration_s = 120

[mode.params]
score_limit = 2
ball_speed = 200.0
"#;

#[test]
fn two_bots_play_a_match_to_the_score_limit_and_the_gateway_keeps_the_result() {
    let dir = TempDir::new("match");
    let server = start_pong_server(&dir);
    let http = server.http();
    // Device ids carry 128 random bits (32 hex digits).
    let players = [
        ("ws", device_id("pong-e2e-left")),
        ("quic", device_id("pong-e2e-right")),
    ];
    let bots: Vec<Child> = players
        .iter()
        .map(|(transport, device)| {
            Command::new(env!("CARGO_BIN_EXE_pong-play"))
                .args(["--server", &http, "--transport", transport])
                .args(["--duration", "120s", "--device-id", device.as_str()])
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("start pong-play")
        })
        .collect();
    let mut seen = Vec::new();
    for bot in bots {
        let out = wait_output(bot, MATCH_TIMEOUT, "pong-play");
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let context = format!("{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
        assert!(out.status.success(), "pong-play failed:\n{context}");
        let room = after(&stdout, "joined room ")
            .and_then(|r| r.parse::<u64>().ok())
            .unwrap_or_else(|| panic!("no room in:\n{context}"));
        let result = after(&stdout, "bytes: ")
            .and_then(decode_hex)
            .unwrap_or_else(|| panic!("no match result in:\n{context}"));
        seen.push((room, result));
    }
    assert_eq!(
        seen[0], seen[1],
        "both players saw the same room and result"
    );
    let (room, told) = seen.swap_remove(0);

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let record = runtime.block_on(async {
        let gateway = GatewayClient::new(&http);
        let login = gateway.login_device(&players[0].1).await.expect("log in");
        // The result reaches the gateway's directory just after the players are told.
        let deadline = Instant::now() + RESULT_TIMEOUT;
        let mut poll = tokio::time::interval(RESULT_POLL);
        loop {
            let found = gateway.match_result(&login.session_token, room).await;
            if let Some(record) = found.expect("GET /v1/matches/{room_id}") {
                break record;
            }
            assert!(
                Instant::now() < deadline,
                "no stored result for room {room}"
            );
            poll.tick().await;
        }
    });
    assert_eq!((record.room_id, record.mode.as_str()), (room, "pong"));
    let slots: BTreeSet<u8> = record.players.iter().map(|p| p.slot).collect();
    assert_eq!(slots, BTreeSet::from([0, 1]));
    assert_eq!(
        record.result, told,
        "the stored result is the one the players got"
    );
    let result = PongResult::decode(&record.result).expect("a PongResult");
    let winner = usize::from(result.winner);
    assert!(winner < 2, "{result:?}");
    assert_eq!(result.scores[winner], SCORE_LIMIT, "{result:?}");
    assert!(result.scores[1 - winner] < SCORE_LIMIT, "{result:?}");
}

#[test]
fn a_pong_swarm_reports_the_keys_of_a_tickroom_bot_swarm() {
    let dir = TempDir::new("swarm");
    let server = start_pong_server(&dir);
    let http = server.http();
    let report_path = dir.join("report.json");
    let swarm = Command::new(env!("CARGO_BIN_EXE_pong-swarm"))
        .args(["--server", &http, "--bots", &SWARM_BOTS.to_string()])
        .args(["--metrics-url", &server.metrics_url()])
        .args(["--ramp", SWARM_RAMP, "--duration", SWARM_PLAY])
        .args(["--transport", "mixed", "--no-progress", "--seed", "7"])
        .arg("--report")
        .arg(&report_path)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start pong-swarm");
    let out = wait_output(swarm, SWARM_TIMEOUT, "pong-swarm");
    let context = format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "pong-swarm failed:\n{context}");
    let text = std::fs::read_to_string(&report_path).expect("the swarm wrote its report");
    let report: Value = serde_json::from_str(&text).expect("the report is JSON");

    let reference = Report::build(ReportInputs {
        transport: "mixed",
        mode: "pong",
        bots: SWARM_BOTS,
        duration: Duration::from_secs(3),
        outcomes: &[],
        cpu: None,
        server_at_start: Default::default(),
        server: Default::default(),
    });
    let reference: Value = serde_json::from_str(&reference.to_json()).unwrap();
    assert_eq!(key_paths(&report), key_paths(&reference), "{text}");
    assert_eq!(report["mode"], "pong");
    assert_eq!(report["joined"], SWARM_BOTS, "{text}");
    assert_eq!(report["errors"], 0, "{text}");
    assert_eq!(report["rooms"], SWARM_BOTS / 2, "{text}");
}

/// Every key path of `v`'s objects (`rtt_ms.p99`); the codes under `errors_by_code` vary.
fn key_paths(v: &Value) -> BTreeSet<String> {
    fn walk(v: &Value, prefix: &str, out: &mut BTreeSet<String>) {
        let Value::Object(map) = v else { return };
        for (key, value) in map {
            let path = format!("{prefix}{key}");
            if key != "errors_by_code" {
                walk(value, &format!("{path}."), out);
            }
            out.insert(path);
        }
    }
    let mut out = BTreeSet::new();
    walk(v, "", &mut out);
    out
}

/// The word after `marker` in `text`.
fn after<'a>(text: &'a str, marker: &str) -> Option<&'a str> {
    let rest = &text[text.find(marker)? + marker.len()..];
    rest.split(|c: char| c.is_whitespace() || c == ',').next()
}

/// The real `pong-server`, all-in-one on port 0 with [`FAST_MODES`]; killed when dropped.
fn start_pong_server(dir: &TempDir) -> ServerProcess {
    let modes = dir.join("modes.toml");
    std::fs::write(&modes, FAST_MODES).expect("write the test modes");
    let modes = modes.to_str().expect("a UTF-8 temp path");
    let args: Vec<&str> = ALL_ON_PORT_0
        .iter()
        .chain(&RELAXED_TICK_BUDGET)
        .copied()
        .chain(["--modes", modes])
        .collect();
    ServerProcess::start(
        Path::new(env!("CARGO_BIN_EXE_pong-server")),
        dir.path(),
        &args,
    )
}
