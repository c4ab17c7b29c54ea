//! End to end: the real `tickroom` server binary on port 0 and four `tickroom-bot swarm` runs
//! against it at once — (ws, quic) × (arena, arena-lockstep) — each checked through its JSON
//! report. Needs the server binary built first (`cargo build -p tickroom-server --bin tickroom`).

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use tickroom_testkit::wait_output;

mod common;

/// How long one swarm run may take before it is killed (its own hard deadline is ~34 s).
const SWARM_TIMEOUT: Duration = Duration::from_secs(50);
/// Bots per run.
const BOTS: u64 = 20;

/// Waits for `child` to exit within `limit`; kills it (by its own id) past that.
fn wait_exit(child: Child, limit: Duration, what: &str) -> std::process::ExitStatus {
    let pid = child.id();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut child = child;
        let _ = tx.send(child.wait());
    });
    match rx.recv_timeout(limit) {
        Ok(status) => status.expect("wait for the child"),
        Err(_) => {
            let _ = Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .status();
            panic!("{what} still running after {limit:?}");
        }
    }
}

/// Runs a swarm of `BOTS` bots to its end (killed after `SWARM_TIMEOUT`), with `extra` flags
/// after `--ramp 1s` (the runs pass their `--duration`); returns (exit code, report, output).
fn run_swarm(
    http: &str,
    metrics_url: &str,
    transport: &str,
    mode: &str,
    dir: &Path,
    extra: &[&str],
) -> (i32, serde_json::Value, String) {
    let report = dir.join(format!("report-{transport}-{mode}.json"));
    let log = dir.join(format!("bot-{transport}-{mode}.log"));
    let log_file = std::fs::File::create(&log).expect("create log");
    let child = Command::new(env!("CARGO_BIN_EXE_tickroom-bot"))
        .args(["swarm", "--server", &format!("http://{http}")])
        .args(["--metrics-url", metrics_url])
        .args(["--bots", &BOTS.to_string(), "--ramp", "1s"])
        .args(["--transport", transport, "--mode", mode, "--no-progress"])
        .args(extra)
        .arg("--report")
        .arg(&report)
        .stdout(log_file.try_clone().expect("clone log"))
        .stderr(log_file)
        .spawn()
        .expect("start tickroom-bot");
    let status = wait_exit(child, SWARM_TIMEOUT, &format!("swarm {transport}/{mode}"));
    let output = std::fs::read_to_string(&log).unwrap_or_default();
    let text = std::fs::read_to_string(&report)
        .unwrap_or_else(|e| panic!("no report from {transport}/{mode} ({e}); output:\n{output}"));
    let value = serde_json::from_str(&text).expect("report is JSON");
    (status.code().unwrap_or(-1), value, output)
}

#[test]
fn swarm_over_ws_and_quic_in_state_and_lockstep_modes() {
    let dir = common::unique_temp_dir("e2e");
    let (server, http) = common::start_server(&dir, &[]);
    let metrics_url = server.metrics_url();

    // All four at once: 40 bots per mode fill whole rooms (10 per arena room, 8 per lockstep
    // room), so no bot waits for a partial room's start timeout, and the test stays short.
    let runs = [
        ("ws", "arena"),
        ("quic", "arena"),
        ("ws", "arena-lockstep"),
        ("quic", "arena-lockstep"),
    ];
    let results: Vec<_> = std::thread::scope(|s| {
        let handles: Vec<_> = runs
            .iter()
            .map(|&(transport, mode)| {
                let (http, metrics_url, dir) = (&http, &metrics_url, &dir);
                s.spawn(move || {
                    let run = run_swarm(
                        http,
                        metrics_url,
                        transport,
                        mode,
                        dir,
                        &["--duration", "3s"],
                    );
                    (transport, mode, run)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("swarm thread"))
            .collect()
    });

    // The README's `play` command: two bots fill a duel room, play a second, and leave.
    let plays: Vec<_> = ["ws", "quic"]
        .iter()
        .map(|transport| {
            Command::new(env!("CARGO_BIN_EXE_tickroom-bot"))
                .args([
                    "play",
                    "--server",
                    &format!("http://{http}"),
                    "--mode",
                    "duel",
                ])
                .args(["--transport", transport, "--duration", "1s", "--watch"])
                .stdout(Stdio::piped())
                .stderr(Stdio::null())
                .spawn()
                .expect("start tickroom-bot play")
        })
        .collect();
    for child in plays {
        let out = wait_output(child, SWARM_TIMEOUT, "play");
        let text = String::from_utf8_lossy(&out.stdout);
        assert_eq!(out.status.code(), Some(0), "play: {text}");
        assert!(
            text.contains("joined room"),
            "play prints what it saw: {text}"
        );
        // `--watch`: each decoded the other's player moving on the other's inputs.
        let moved_m: f64 = text
            .lines()
            .find_map(|l| l.trim().strip_prefix("others moved"))
            .and_then(|rest| rest.split_whitespace().nth(2))
            .and_then(|m| m.parse().ok())
            .unwrap_or_else(|| panic!("play --watch reports the other player: {text}"));
        assert!(moved_m > 0.0, "the other player moved: {text}");
    }

    for (transport, mode, (code, report, output)) in results {
        let what = format!("{transport}/{mode}: {report:#}\n{output}");
        assert_eq!(code, 0, "exit code, {what}");
        assert_eq!(report["transport"], transport, "{what}");
        assert_eq!(report["mode"], mode, "{what}");
        assert_eq!(report["bots"], BOTS, "{what}");
        assert_eq!(report["joined"], BOTS, "joined, {what}");
        assert_eq!(report["failed"], 0, "failed, {what}");
        assert_eq!(report["errors"], 0, "errors, {what}");
        assert!(report["rtt_ms"]["p99"].is_f64(), "rtt p99, {what}");
        assert!(
            report["interval_jitter_ms"]["p99"].is_f64(),
            "jitter, {what}"
        );
        assert!(report["bytes_per_bot_s"]["down"].is_f64(), "bytes, {what}");
        assert!(
            report["server"]["rss_mb"].is_f64(),
            "server metrics, {what}"
        );
        // Both costs, side by side: the server's CPU per bot-second from its
        // process_cpu_seconds_total at the start and the end, and the bots' own.
        assert!(
            report["server"]["cpu_ms_per_bot_s"]
                .as_f64()
                .is_some_and(|v| v > 0.0),
            "server cpu per bot, {what}"
        );
        assert!(report["bot_cpu_ms_per_bot_s"].is_f64(), "bot cpu, {what}");
        // And the server's context switches per message it received or sent.
        assert!(
            report["server"]["context_switches_per_msg"]
                .as_f64()
                .is_some_and(|v| v > 0.0),
            "server context switches per message, {what}"
        );
        // The arena modes' matches last minutes: none ended in a 3 s run.
        assert_eq!(report["matches_ended"], 0, "matches ended, {what}");
        // Nothing dropped on purpose, so nothing to resume.
        assert!(report["resume_ms"]["p50"].is_null(), "resume, {what}");
    }
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Idle players (`--input-hz 0`, a ping every 3 s) seated in a lobby, whose view does not
/// change once everyone is in: after a few snapshots the room sends them nothing but pongs,
/// and the bots do not mistake the quiet for a dead server.
/// A room that sent every player its view every tick (10 Hz, about 200 bytes for 20 members)
/// would send each bot over 2 KB a second; the bound leaves room for the first snapshots.
#[test]
fn idle_players_in_a_quiet_lobby_are_sent_almost_nothing() {
    let dir = common::unique_temp_dir("idle");
    let (server, http) = common::start_server(&dir, &[]);
    let idle = [
        "--input-hz",
        "0",
        "--ping-interval",
        "3s",
        "--duration",
        "6s",
    ];
    for transport in ["ws", "quic"] {
        let (code, report, output) = run_swarm(
            &http,
            &server.metrics_url(),
            transport,
            "lobby",
            &dir,
            &idle,
        );
        let what = format!("{transport}: {report:#}\n{output}");
        assert_eq!(code, 0, "exit code, {what}");
        assert_eq!(report["joined"], BOTS, "joined, {what}");
        assert_eq!(report["errors"], 0, "errors, {what}");
        assert_eq!(
            report["reconnects"], 0,
            "pongs keep the session alive, {what}"
        );
        // A quiet room is not a dead server: no bot asked the gateway about it.
        assert_eq!(report["room_status_checks"], 0, "{what}");
        assert!(
            report["rtt_ms"]["p99"].is_null(),
            "no inputs, no input RTT, {what}"
        );
        assert!(
            report["ping_rtt_ms"]["p99"].is_f64(),
            "pings measure RTT, {what}"
        );
        let down = report["bytes_per_bot_s"]["down"]
            .as_f64()
            .expect("down bytes");
        assert!(
            down > 0.0 && down < 500.0,
            "bytes down per bot-second: {down}, {what}"
        );
        let up = report["bytes_per_bot_s"]["up"].as_f64().expect("up bytes");
        assert!(
            up < 200.0,
            "an idle bot sends only pings: {up} bytes a second, {what}"
        );
    }
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
}

/// `scripts/idle-sessions.sh` (the idle-sessions benchmark of BENCHMARKS.md), at a size CI
/// can afford: it seats every bot, samples the server and leaves its figures in `idle.txt`.
#[test]
fn the_idle_sessions_script_seats_every_bot_and_reports_the_server() {
    let dir = common::unique_temp_dir("idle-script");
    let bin = common::server_binary();
    let bin_dir = bin.parent().expect("a directory");
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../scripts/idle-sessions.sh");
    let child = Command::new("bash")
        .arg(script)
        .arg(bin_dir)
        .arg(&dir)
        .args(["ws", "20"])
        .env("WINDOW_S", "1")
        .env("RAMP_S", "1")
        .env("MARGIN_S", "2")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the script");
    let out = wait_output(child, SWARM_TIMEOUT, "idle-sessions.sh");
    let text = String::from_utf8_lossy(&out.stdout);
    let errors = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{text}\n{errors}");
    let figures = std::fs::read_to_string(dir.join("idle.txt")).expect("idle.txt");
    assert!(
        figures.contains("bots 20 over 1 swarm(s), seated 20 at the start"),
        "{figures}"
    );
    assert!(figures.contains("% of a core"), "{figures}");
    assert!(figures.contains("KiB per session"), "{figures}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// `scripts/failover-ttl.sh` (the heartbeat-TTL measurement of BENCHMARKS.md), at a size CI
/// can afford: two room servers at a 1 s TTL under a small swarm, nothing killed, and the
/// figures it leaves: every bot in, no false failover, the registration samples.
#[test]
fn the_failover_ttl_script_counts_false_failovers() {
    let dir = common::unique_temp_dir("ttl-script");
    let bin = common::server_binary();
    let bin_dir = bin.parent().expect("a directory");
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../scripts/failover-ttl.sh");
    let child = Command::new("bash")
        .arg(script)
        .arg(bin_dir)
        .arg(&dir)
        .args(["1000", "20", "3"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the script");
    let out = wait_output(child, SWARM_TIMEOUT, "failover-ttl.sh");
    let text = String::from_utf8_lossy(&out.stdout);
    let errors = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{text}\n{errors}");
    let figures = std::fs::read_to_string(dir.join("ttl-1000.txt")).expect("ttl-1000.txt");
    assert!(
        figures.contains("ttl 1000 ms: 20 of 20 bots, 0 errors, rooms taken over 0"),
        "{figures}"
    );
    assert!(figures.contains("registration lapses "), "{figures}");
    let _ = std::fs::remove_dir_all(&dir);
}
