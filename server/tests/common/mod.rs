//! Helpers for tests that run the real `tickroom` binary: a child process killed (by its own
//! handle) when dropped, a temp dir removed when dropped, and polling with a deadline.
#![allow(dead_code)]

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// Longest any single wait in these tests may take.
pub const WAIT: Duration = Duration::from_secs(20);

pub use tickroom_testkit::TempDir;

/// A child process, killed by its own handle when dropped; `ready` is its ready-file JSON.
pub struct Proc {
    pub child: Child,
    pub ready: Value,
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Proc {
    /// `http://` + the bound HTTP address.
    pub fn http(&self) -> String {
        format!("http://{}", self.ready["http"].as_str().unwrap())
    }

    /// The metrics listener's `/metrics` URL.
    pub fn metrics_url(&self) -> String {
        format!("http://{}/metrics", self.ready["metrics"].as_str().unwrap())
    }
}

/// Polls `ready` every 20 ms until it holds, failing after `WAIT`.
pub async fn wait_for(what: &str, mut ready: impl FnMut() -> bool) {
    let deadline = Instant::now() + WAIT;
    let mut poll = tokio::time::interval(Duration::from_millis(20));
    while !ready() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        poll.tick().await;
    }
}

/// Starts `tickroom ARGS --http 127.0.0.1:0 --metrics 127.0.0.1:0 --ready-file DIR/NAME.json`
/// with `env`, and waits for its ready file. Admission control's tick budget is raised: debug
/// builds on a loaded CI machine have slow ticks, and refusing rooms there would only make the
/// tests flaky.
pub async fn start_tickroom(dir: &Path, name: &str, args: &[&str], env: &[(&str, &str)]) -> Proc {
    let ready_file = dir.join(format!("{name}.json"));
    let child = Command::new(env!("CARGO_BIN_EXE_tickroom"))
        .args(args)
        .args([
            "--http",
            "127.0.0.1:0",
            "--metrics",
            "127.0.0.1:0",
            "--max-tick-p99-ms",
            "1000",
            "--ready-file",
        ])
        .arg(&ready_file)
        .env("RUST_LOG", "warn")
        .envs(env.iter().copied())
        .stdout(Stdio::null())
        .spawn()
        .expect("start the tickroom binary");
    wait_for(name, || ready_file.exists()).await;
    let text = std::fs::read_to_string(&ready_file).unwrap();
    let ready = serde_json::from_str(&text).expect("the ready file is JSON");
    Proc { child, ready }
}

/// Starts the all-in-one server on port 0 everywhere.
pub async fn start_all_in_one(dir: &TempDir) -> Proc {
    start_tickroom(
        dir.path(),
        "all-in-one",
        &["--ws", "127.0.0.1:0", "--quic", "127.0.0.1:0"],
        &[],
    )
    .await
}
