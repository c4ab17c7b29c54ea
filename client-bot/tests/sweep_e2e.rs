//! `tickroom-bot sweep` against the real server: two short steps, a CSV row each with both CPU
//! costs measured, and the plot.

use std::process::{Command, Stdio};
use std::time::Duration;

use tickroom_testkit::wait_output;

mod common;

/// Longest the sweep may take (two steps of about 4 s each, plus start-up).
const SWEEP_TIMEOUT: Duration = Duration::from_secs(60);

#[test]
fn a_sweep_writes_a_row_per_step_and_the_plot() {
    let dir = common::unique_temp_dir("sweep");
    let (server, http) = common::start_server(&dir, &[]);
    let csv = dir.join("sweep.csv");
    let svg = dir.join("sweep.svg");
    let child = Command::new(env!("CARGO_BIN_EXE_tickroom-bot"))
        .args(["sweep", "--server", &format!("http://{http}")])
        .args(["--metrics-url", &server.metrics_url()])
        .args(["--steps", "2,4", "--ramp", "1s", "--duration", "2s"])
        .args(["--transport", "ws", "--mode", "duel", "--no-progress"])
        .arg("--csv")
        .arg(&csv)
        .arg("--plot")
        .arg(&svg)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start tickroom-bot sweep");
    let out = wait_output(child, SWEEP_TIMEOUT, "sweep");
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "sweep: {text}");
    let table = std::fs::read_to_string(&csv).expect("the CSV");
    let rows: Vec<Vec<&str>> = table
        .lines()
        .skip(1)
        .map(|l| l.split(',').collect())
        .collect();
    assert_eq!(rows.len(), 2, "{table}");
    for (row, bots) in rows.iter().zip(["2", "4"]) {
        assert_eq!(row[0], bots, "{table}");
        assert_eq!(row[1], bots, "every bot joined: {table}");
        assert_eq!(row[2], "0", "no errors: {table}");
        for (col, what) in [
            (4, "rtt p99"),
            (5, "server cpu"),
            (6, "bot cpu"),
            (9, "server context switches per message"),
        ] {
            let v: f64 = row[col]
                .parse()
                .unwrap_or_else(|_| panic!("{what} measured: {table}"));
            assert!(v > 0.0, "{what}: {table}");
        }
    }
    let plot = std::fs::read_to_string(&svg).expect("the plot");
    assert!(
        plot.starts_with("<svg") && plot.contains("server CPU"),
        "{plot:.200}"
    );
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
}
