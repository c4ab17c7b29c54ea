//! What the end-to-end tests share: the real `tickroom` server binary started on port 0 (killed
//! and reaped when the guard drops), a temp directory per test, and a bounded wait for a child.

// Every test binary compiles this module and uses only a part of it.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tickroom_testkit::{ServerProcess, ALL_ON_PORT_0, RELAXED_TICK_BUDGET};

/// The `tickroom` binary next to the bot's (build it first:
/// `cargo build -p tickroom-server --bin tickroom`).
pub fn server_binary() -> PathBuf {
    let bot = PathBuf::from(env!("CARGO_BIN_EXE_tickroom-bot"));
    let dir = bot.parent().expect("the bot binary has a directory");
    let server = dir.join(format!("tickroom{}", std::env::consts::EXE_SUFFIX));
    assert!(
        server.exists(),
        "server binary {} not found: build it first (cargo build -p tickroom-server --bin tickroom)",
        server.display()
    );
    server
}

/// A fresh directory under the system temp dir, named after `label`, this process and the time.
pub fn unique_temp_dir(label: &str) -> PathBuf {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let dir = std::env::temp_dir().join(format!(
        "tickroom-bot-{label}-{}-{nanos}",
        std::process::id()
    ));
    std::fs::create_dir_all(&dir).expect("create temp dir");
    dir
}

/// Starts the all-in-one server on port 0 with `extra` flags, its log in `dir/server.log`;
/// returns it (killed when dropped) and its HTTP address once it said it is ready.
pub fn start_server(dir: &Path, extra: &[&str]) -> (ServerProcess, String) {
    let args: Vec<&str> = ALL_ON_PORT_0
        .iter()
        .chain(&RELAXED_TICK_BUDGET)
        .chain(extra)
        .copied()
        .collect();
    let server = ServerProcess::start(&server_binary(), dir, &args);
    let http = server.ready["http"]
        .as_str()
        .expect("http address")
        .to_string();
    (server, http)
}

/// What a sweep run left: its exit and stdout, the CSV's text and the plot's.
pub struct SweepRun {
    pub status: std::process::ExitStatus,
    pub stdout: String,
    pub csv: String,
    pub svg: String,
}

/// Runs `tickroom-bot sweep --steps <steps> --ramp 1s --duration 2s --transport ws --mode duel`
/// (plus `extra`) against a fresh all-in-one server, bounded by `limit`.
pub fn run_sweep(label: &str, steps: &str, extra: &[&str], limit: Duration) -> SweepRun {
    let dir = unique_temp_dir(label);
    let (server, http) = start_server(&dir, &[]);
    let csv = dir.join("sweep.csv");
    let svg = dir.join("sweep.svg");
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_tickroom-bot"))
        .args(["sweep", "--server", &format!("http://{http}")])
        .args(["--metrics-url", &server.metrics_url()])
        .args(["--steps", steps, "--ramp", "1s", "--duration", "2s"])
        .args(["--transport", "ws", "--mode", "duel", "--no-progress"])
        .args(extra)
        .arg("--csv")
        .arg(&csv)
        .arg("--plot")
        .arg(&svg)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start tickroom-bot sweep");
    let out = tickroom_testkit::wait_output(child, limit, label);
    let run = SweepRun {
        status: out.status,
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        csv: std::fs::read_to_string(&csv).unwrap_or_default(),
        svg: std::fs::read_to_string(&svg).unwrap_or_default(),
    };
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
    run
}
