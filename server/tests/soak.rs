//! Soak: a churning swarm (bots join, play, drop and resume, leave, and the next swarm joins
//! again) against the real server for `TICKROOM_SOAK_MINUTES` (30 by default). Between the
//! first sixth of the run and its end the server's RSS may grow by at most 5 % and its open
//! descriptors by 0. Not run in CI:
//!
//! ```sh
//! cargo build --release --workspace --bins
//! cargo test --release -p tickroom-server --test soak -- --ignored --nocapture
//! ```

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{start_all_in_one, TempDir};

/// Bots per swarm round.
const BOTS: &str = "200";
/// How long one swarm round plays (then every bot leaves and the next round joins).
const ROUND: &str = "30s";
/// Allowed RSS growth between the first sample and the last.
const MAX_RSS_GROWTH: f64 = 0.05;

/// The server's resident set, in KiB.
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// The server's open descriptors.
fn fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "30 minutes; run by hand (see the module doc)"]
async fn a_churning_swarm_for_half_an_hour_leaks_nothing() {
    let minutes: u64 = std::env::var("TICKROOM_SOAK_MINUTES")
        .ok()
        .and_then(|m| m.parse().ok())
        .unwrap_or(30);
    let total = Duration::from_secs(minutes * 60);
    let warm = total / 6;
    let dir = TempDir::new("soak");
    let server = start_all_in_one(&dir).await;
    let pid = server.child.id();
    let bot = Path::new(env!("CARGO_BIN_EXE_tickroom")).with_file_name("tickroom-bot");
    let started = Instant::now();
    let mut first: Option<(u64, usize)> = None;
    let mut rounds = 0;
    while started.elapsed() < total {
        let report = dir.join("round.json");
        let status = Command::new(&bot)
            .args(["swarm", "--server", &server.http(), "--bots", BOTS])
            .args(["--ramp", "5s", "--duration", ROUND, "--transport", "mixed"])
            .args(["--mode", "arena", "--drop-rate", "30%/min", "--no-progress"])
            .args(["--max-errors", "1000000"])
            .arg("--report")
            .arg(&report)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("run tickroom-bot swarm");
        assert!(status.code().is_some(), "the swarm was killed");
        // Every round must really play: a soak of failing joins would prove nothing.
        let text = std::fs::read_to_string(&report).expect("the swarm's report");
        let joined = serde_json::from_str::<serde_json::Value>(&text).expect("JSON")["joined"]
            .as_u64()
            .unwrap_or(0);
        assert!(
            joined * 10 >= BOTS.parse::<u64>().unwrap() * 9,
            "round {rounds}: {text}"
        );
        rounds += 1;
        if first.is_none() && started.elapsed() >= warm {
            first = Some((rss_kib(pid), fds(pid)));
        }
    }
    let (rss0, fds0) = first.expect("the run outlasted its warm-up");
    let (rss1, fds1) = (rss_kib(pid), fds(pid));
    println!(
        "{rounds} swarm rounds over {minutes} min: RSS {rss0} → {rss1} KiB, descriptors {fds0} → {fds1}"
    );
    assert!(
        rss1 as f64 <= rss0 as f64 * (1.0 + MAX_RSS_GROWTH),
        "RSS grew {rss0} → {rss1} KiB"
    );
    assert!(fds1 <= fds0, "descriptors grew {fds0} → {fds1}");
}
