//! `tickroom-bot sweep` against the real server: two short steps, a CSV row each with both CPU
//! costs measured, and the plot.

use std::time::Duration;

mod common;

/// Longest the sweep may take (two steps of about 4 s each, plus start-up).
const SWEEP_TIMEOUT: Duration = Duration::from_secs(60);

#[test]
fn a_sweep_writes_a_row_per_step_and_the_plot() {
    let run = common::run_sweep("sweep", "2,4", &[], SWEEP_TIMEOUT);
    assert_eq!(run.status.code(), Some(0), "sweep: {}", run.stdout);
    let table = &run.csv;
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
    let plot = &run.svg;
    assert!(
        plot.starts_with("<svg") && plot.contains("server CPU"),
        "{plot:.200}"
    );
}
