//! The floor end to end: `tickroom-bot floor` starts its own server process and bots and reports
//! RTT and both CPU costs; `tickroom-bot sweep --floor` adds the floor's columns to every row.

use std::process::{Command, Stdio};
use std::time::Duration;

use tickroom_testkit::wait_output;

mod common;

/// Longest `floor --ramp 1s --duration 2s` may take (about 3 s, plus start-up).
const FLOOR_TIMEOUT: Duration = Duration::from_secs(45);
/// Longest the sweep may take (two steps of a swarm and a floor, about 4 s each, plus start-up).
const SWEEP_TIMEOUT: Duration = Duration::from_secs(90);

// The command of README "Benchmarks" at test size: every bot connects and measures its RTT, the
// floor server's CPU is read from its own process.
#[test]
fn the_floor_reports_rtt_and_both_cpu_costs() {
    let dir = common::unique_temp_dir("floor");
    let report = dir.join("floor.json");
    let child = Command::new(env!("CARGO_BIN_EXE_tickroom-bot"))
        .args(["floor", "--bots", "20", "--ramp", "1s", "--duration", "2s"])
        .arg("--report")
        .arg(&report)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start tickroom-bot floor");
    let out = wait_output(child, FLOOR_TIMEOUT, "floor");
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "floor: {text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("connected") && text.contains("server cpu"),
        "{text}"
    );
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&report).expect("the report")).unwrap();
    assert_eq!(json["players"], 20, "{json}");
    assert_eq!(json["connected"], 20, "every bot connected: {json}");
    assert_eq!(json["errors"], 0, "{json}");
    let p99 = json["rtt_ms"]["p99"].as_f64().expect("rtt p99 measured");
    assert!(p99 > 0.0 && p99 < 1000.0, "rtt p99 {p99} ms");
    let server = json["server_cpu_ms_per_player_s"]
        .as_f64()
        .expect("server cpu measured");
    assert!(server > 0.0, "server cpu {server}");
    assert!(json["bot_cpu_ms_per_bot_s"].as_f64().is_some(), "{json}");
    let switches = json["server_context_switches_per_message"]
        .as_f64()
        .expect("context switches measured");
    assert!(switches > 0.0, "{json}");
    // 20 bots × 2 s × 30 Hz each way, give or take the ramp's edges.
    for key in ["messages_in", "messages_out"] {
        assert!(json[key].as_u64().is_some_and(|n| n > 600), "{key}: {json}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_sweep_with_the_floor_appends_its_columns() {
    let run = common::run_sweep("sweep-floor", "10,20", &["--floor"], SWEEP_TIMEOUT);
    let text = &run.stdout;
    assert_eq!(run.status.code(), Some(0), "sweep: {text}");
    assert!(text.contains("floor: rtt p99"), "{text}");
    let table = &run.csv;
    let mut lines = table.lines();
    let header: Vec<&str> = lines.next().expect("a header").split(',').collect();
    assert_eq!(header.len(), 15, "{table}");
    assert_eq!(header[10], "floor_rtt_p99_ms", "{table}");
    let rows: Vec<Vec<&str>> = lines.map(|l| l.split(',').collect()).collect();
    assert_eq!(rows.len(), 2, "{table}");
    for (row, bots) in rows.iter().zip(["10", "20"]) {
        assert_eq!(row[0], bots, "{table}");
        assert_eq!(row[1], bots, "every bot joined: {table}");
        for (col, name) in header.iter().enumerate().skip(10) {
            let v: f64 = row[col]
                .parse()
                .unwrap_or_else(|_| panic!("{name} measured: {table}"));
            assert!(v > 0.0, "{name}: {table}");
        }
    }
    assert!(run.svg.contains("floor server CPU"), "{:.200}", run.svg);
}
