//! `tickroom-bot netns-loss`: real packet loss in a network namespace (root, iproute2 and
//! iptables; `scripts/test.sh` installs the two packages). The subcommand sets up and removes
//! its namespace (also when signalled), and under 2 % kernel loss the real server and two
//! swarms at once (`scripts/netns-loss-swarms.sh`, as in the README) show WebSocket's
//! retransmission stalls in its RTT tail while QUIC's tail stays short.
//!
//! How robust the comparison is (debug builds, 40 bots per transport, 15 s, both swarms at
//! once): in 13 of 15 runs on the shared 2-core machine (3 of them beside two busy-looping
//! processes) WebSocket's p999 was 100–252 ms, its max always 270–720 ms (a lost segment that
//! waits for TCP's 200 ms minimum retransmission timeout), and QUIC's p999 36–83 ms (a lost
//! datagram is never waited for: the next input or snapshot, 33 ms later, carries on). In the
//! other two the whole machine stalled (other engineers' release builds and benchmarks): both
//! tails reached 0.6–1.5 s, once 589 ms (QUIC) against 605 ms (WebSocket). So a run whose QUIC
//! p99 exceeds 150 ms, which loss alone cannot cause, is repeated once. The swarms run at the
//! same time so that other load lands in both: run one after the other, a burst of someone
//! else's build once pushed QUIC's p999 alone to 512 ms.
//!
//! Where namespaces or the iptables rule are not permitted the tests print why and pass, except
//! under CI (`CI` set), where that is a failure: CI must run them.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use tickroom_testkit::wait_output_terminating;

mod common;

/// The subcommand's exit code when it could not set up the namespace.
const EXIT_SETUP: i32 = 125;
/// What its refusals say when this machine cannot do real loss.
const UNAVAILABLE: &str = "real loss needs root";
/// Bots per swarm: 4 full arena rooms of 10.
const BOTS: u64 = 40;
/// How long each bot plays.
const DURATION: &str = "15s";
/// Longest the two swarms may take (about 18 s: the ramp, the play, the joins and reports).
const SWARMS_TIMEOUT: Duration = Duration::from_secs(90);
/// A QUIC p99 above this is not loss (a lost datagram costs at most a tick or two of 33 ms) but
/// a machine too busy to run the test: that run is repeated.
const STARVED_P99_MS: f64 = 150.0;
/// Runs of the swarms at most.
const ATTEMPTS: u32 = 2;
/// Longest a short netns-loss run may take.
const SHORT_TIMEOUT: Duration = Duration::from_secs(20);

fn bot() -> Command {
    Command::new(env!("CARGO_BIN_EXE_tickroom-bot"))
}

/// A namespace name of this test process.
fn unique_name(tag: &str) -> String {
    format!("tickroom-test-{tag}-{}", std::process::id())
}

/// The namespaces that exist.
fn namespaces() -> String {
    Command::new("ip")
        .args(["netns", "list"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default()
}

/// Waits for `child` within `limit`; past that it gets SIGTERM (so it still removes its
/// namespace), then SIGKILL, and the test fails.
fn wait_bounded(child: Child, limit: Duration, what: &str) -> Output {
    wait_output_terminating(child, limit, Duration::from_secs(10), what)
}

/// True when `out` is the subcommand saying this machine cannot do real loss; under CI that
/// fails the test instead.
fn unavailable(out: &Output) -> bool {
    let stderr = String::from_utf8_lossy(&out.stderr);
    if out.status.code() != Some(EXIT_SETUP) || !stderr.contains(UNAVAILABLE) {
        return false;
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "CI must run the real-loss tests (scripts/test.sh installs iptables and iproute2): {stderr}"
    );
    eprintln!("skipped: {stderr}");
    true
}

/// Runs `netns-loss ARGS` to its end (bounded).
fn netns_loss(args: &[&str]) -> Output {
    let child = bot()
        .arg("netns-loss")
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start tickroom-bot netns-loss");
    wait_bounded(child, SHORT_TIMEOUT, "netns-loss")
}

#[test]
fn the_command_runs_inside_with_the_rule_and_its_exit_code_comes_back() {
    let name = unique_name("run");
    let script =
        "iptables -S INPUT; echo \"loss=$TICKROOM_KERNEL_LOSS\"; ip -o link show lo; exit 7";
    let out = netns_loss(&["--loss", "2%", "--name", &name, "--", "sh", "-c", script]);
    if unavailable(&out) {
        return;
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    let context = format!("{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(out.status.code(), Some(7), "the command's code: {context}");
    assert!(
        stdout.contains("-m statistic --mode random --probability 0.02") && stdout.contains("DROP"),
        "the DROP rule: {context}"
    );
    assert!(stdout.contains("loss=0.02"), "the variable: {context}");
    assert!(stdout.contains("LOOPBACK,UP"), "loopback up: {context}");
    assert!(!namespaces().contains(&name), "{name} removed");

    // A name in use is refused (125) and the namespace that had it is left alone.
    let taken = unique_name("taken");
    let added = Command::new("ip")
        .args(["netns", "add", &taken])
        .status()
        .expect("ip netns add");
    assert!(added.success());
    let out = netns_loss(&["--loss", "1%", "--name", &taken, "--", "true"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let still_there = namespaces().contains(&taken);
    let _ = Command::new("ip").args(["netns", "del", &taken]).status();
    assert_eq!(out.status.code(), Some(EXIT_SETUP), "{stderr}");
    assert!(stderr.contains("File exists"), "{stderr}");
    assert!(still_there, "not ours to remove");
}

#[test]
fn a_signal_is_forwarded_and_the_namespace_and_its_processes_still_go() {
    let name = unique_name("signal");
    // The shell prints the pid of a process it leaves running in the background, then waits.
    let mut child = bot()
        .args(["netns-loss", "--loss", "2%", "--name", &name, "--"])
        .args(["sh", "-c", "sleep 600 & echo $!; wait"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start tickroom-bot netns-loss");
    let stdout = child.stdout.take().expect("piped");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = BufReader::new(stdout).read_line(&mut line);
        let _ = tx.send(line);
    });
    let line = rx.recv_timeout(SHORT_TIMEOUT).unwrap_or_default();
    let Ok(background) = line.trim().parse::<u32>() else {
        let out = wait_bounded(child, SHORT_TIMEOUT, "netns-loss");
        if unavailable(&out) {
            return;
        }
        panic!("no pid printed ({line:?}): {out:?}");
    };
    let sent = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(sent.success());
    let out = wait_bounded(child, SHORT_TIMEOUT, "netns-loss after SIGTERM");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(128 + 15),
        "the shell ended by the forwarded SIGTERM: {stderr}"
    );
    assert!(!namespaces().contains(&name), "{name} removed: {stderr}");
    let left = std::fs::read_to_string(format!("/proc/{background}/cmdline")).unwrap_or_default();
    assert!(
        !left.starts_with("sleep"),
        "the process left in the namespace was ended: {stderr}"
    );
}

/// Reads a swarm report written by the script.
fn report(dir: &Path, transport: &str, context: &str) -> serde_json::Value {
    let path = dir.join(format!("report-{transport}.json"));
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("no {} ({e}): {context}", path.display()));
    serde_json::from_str(&text).expect("the report is JSON")
}

/// Runs the server and both swarms under 2 % kernel loss, writing into `dir`; returns the ws
/// and quic reports, or None when this machine cannot do real loss.
fn swarms_under_loss(dir: &Path) -> Option<(serde_json::Value, serde_json::Value)> {
    let server = common::server_binary();
    let bin_dir: PathBuf = server.parent().expect("a directory").to_path_buf();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/netns-loss-swarms.sh");
    let child = bot()
        .args(["netns-loss", "--loss", "2%", "--"])
        .arg(&script)
        .arg(&bin_dir)
        .arg(dir)
        .args(["--bots", &BOTS.to_string(), "--mode", "arena"])
        .args(["--ramp", "2s", "--duration", DURATION])
        .env("TICKROOM_SERVER_ARGS", "--max-tick-p99-ms 1000")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start tickroom-bot netns-loss");
    let out = wait_bounded(child, SWARMS_TIMEOUT, "netns-loss swarms");
    if unavailable(&out) {
        return None;
    }
    let context = format!(
        "{}\n{}\nserver log:\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
        std::fs::read_to_string(dir.join("server.log")).unwrap_or_default()
    );
    assert_eq!(out.status.code(), Some(0), "both swarms: {context}");
    let ws = report(dir, "ws", &context);
    let quic = report(dir, "quic", &context);
    for (r, transport) in [(&ws, "ws"), (&quic, "quic")] {
        assert_eq!(r["transport"], transport, "{context}");
        assert_eq!(r["joined"], BOTS, "{transport} joined: {context}");
        assert_eq!(r["errors"], 0, "{transport} errors: {context}");
        assert_eq!(r["link"]["kernel_loss"], 0.02, "{transport}: {context}");
        assert_eq!(r["link"]["message_level"]["loss"], 0.0, "{context}");
    }
    Some((ws, quic))
}

#[test]
fn under_real_loss_quic_keeps_a_shorter_rtt_tail_than_websocket() {
    let rtt = |r: &serde_json::Value, q: &str| r["rtt_ms"][q].as_f64().expect("an rtt figure");
    for attempt in 1..=ATTEMPTS {
        let dir = common::unique_temp_dir("netns-loss");
        let started = Instant::now();
        let Some((ws, quic)) = swarms_under_loss(&dir) else {
            return;
        };
        let (ws_p999, quic_p999) = (rtt(&ws, "p999"), rtt(&quic, "p999"));
        let figures = format!(
            "2 % kernel loss, {BOTS} bots each, arena: rtt p99/p999/max ms ws {}/{ws_p999}/{}, quic {}/{quic_p999}/{} ({:.0?})",
            rtt(&ws, "p99"),
            rtt(&ws, "max"),
            rtt(&quic, "p99"),
            rtt(&quic, "max"),
            started.elapsed()
        );
        eprintln!("{figures}");
        let _ = std::fs::remove_dir_all(&dir);
        if rtt(&quic, "p99") > STARVED_P99_MS && attempt < ATTEMPTS {
            eprintln!("QUIC's p99 says the machine stalled rather than the network: again");
            continue;
        }
        assert!(
            quic_p999 < ws_p999,
            "QUIC's p999 below WebSocket's: {figures}\nws: {ws:#}\nquic: {quic:#}"
        );
        return;
    }
}
