//! What the end-to-end tests share: the real `tickroom` server binary started on port 0 (killed
//! and reaped when the guard drops), a temp directory per test, and a bounded wait for a child.

// Every test binary compiles this module and uses only a part of it.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// How long the server gets to write its ready file.
pub const READY_TIMEOUT: Duration = Duration::from_secs(20);

/// Kills and reaps the server when the test ends, pass or fail.
pub struct ChildGuard(pub Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

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
/// returns it and its HTTP address once it said it is ready.
pub fn start_server(dir: &Path, extra: &[&str]) -> (ChildGuard, String) {
    let ready = dir.join("ready.json");
    let child = Command::new(server_binary())
        .args([
            "--http",
            "127.0.0.1:0",
            "--ws",
            "127.0.0.1:0",
            "--quic",
            "127.0.0.1:0",
            // Debug builds on a loaded CI machine tick slowly: do not let admission control
            // refuse rooms in these functional tests.
            "--max-tick-p99-ms",
            "1000",
        ])
        .args(extra)
        .arg("--ready-file")
        .arg(&ready)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start tickroom");
    let mut server = ChildGuard(child);
    let http = wait_ready(&ready, &mut server.0, &dir.join("server.log"));
    (server, http)
}

/// Copies the server's log to `log` and signals once it logs that it is ready (the ready
/// file is written before that line); returns the HTTP address from the ready file.
fn wait_ready(path: &Path, server: &mut Child, log: &Path) -> String {
    let stderr = server.stderr.take().expect("server stderr is piped");
    let mut log = std::fs::File::create(log).expect("server log");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = writeln!(log, "{line}");
            if line.contains("ready") {
                let _ = tx.send(());
            }
        }
    });
    rx.recv_timeout(READY_TIMEOUT)
        .unwrap_or_else(|_| panic!("server not ready after {READY_TIMEOUT:?}"));
    let text = std::fs::read_to_string(path).expect("ready file written before the ready line");
    let v: serde_json::Value = serde_json::from_str(&text).expect("ready file is JSON");
    v["http"].as_str().expect("http address").to_string()
}

/// Runs `work` on its own thread and waits for it at most `limit`; panics past that (the
/// thread is left behind, the test fails).
pub fn within<T: Send + 'static>(
    limit: Duration,
    what: &str,
    work: impl FnOnce() -> T + Send + 'static,
) -> T {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(work());
    });
    rx.recv_timeout(limit)
        .unwrap_or_else(|_| panic!("{what} still running after {limit:?}"))
}
