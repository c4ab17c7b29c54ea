//! Hot standby of state-sync rooms, multi-process: a real `redis-server`, two `tickroom room`
//! servers and a `tickroom gateway` sharing it, and a bot swarm in `duel` rooms. Once every
//! bot plays and the rooms' failover images are stored, the server holding rooms is killed
//! (`kill -9`). Its players ask the gateway, which moves each room to the live server; they
//! resume their sessions there, in the same match: no bot queues again, none fails, and no
//! match rolls back by more than one checkpoint interval. Children are ended by their own
//! handles.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

mod common;

use common::{free_port, room_keys, start_redis, start_tickroom, Proc, TempDir, KEYS, WAIT};

/// The modes' default checkpoint interval (`duel` keeps it).
const CHECKPOINT_INTERVAL: Duration = Duration::from_millis(1000);
/// The registry's heartbeat TTL: a dead server's rooms can move only once it expired.
const REGISTRY_TTL: Duration = Duration::from_secs(3);

/// A counter or gauge of a process's /metrics (0 when absent or unreadable).
async fn metric(p: &Proc, name: &str) -> f64 {
    let Ok(resp) = reqwest::get(p.metrics_url()).await else {
        return 0.0;
    };
    let text = resp.text().await.unwrap_or_default();
    text.lines()
        .find_map(|l| {
            let rest = l.strip_prefix(name)?;
            let rest = rest.strip_prefix("_total").unwrap_or(rest);
            rest.strip_prefix(' ')?.trim().parse().ok()
        })
        .unwrap_or(0.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_room_servers_matches_go_on_on_another_server() {
    let dir = TempDir::new("failover");
    let (_redis, url) = start_redis(dir.path()).await;
    let prefix = format!("f{}:", free_port());
    let mut rooms = Vec::new();
    for i in 1..=2 {
        let id = format!("room-{i}");
        let args = [
            "room",
            "--redis",
            &url,
            "--redis-prefix",
            &prefix,
            "--server-id",
            &id,
            "--ws",
            "127.0.0.1:0",
            "--quic",
            "127.0.0.1:0",
        ];
        let env = [("TICKROOM_ROOM_KEYS", room_keys())];
        rooms.push(start_tickroom(dir.path(), &id, &args, &env).await);
    }
    let gateway = start_tickroom(
        dir.path(),
        "gateway",
        &["gateway", "--redis", &url, "--redis-prefix", &prefix],
        &[("TICKROOM_KEYS", KEYS)],
    )
    .await;

    const BOTS: f64 = 20.0;
    let bot = Path::new(env!("CARGO_BIN_EXE_tickroom")).with_file_name("tickroom-bot");
    assert!(bot.exists(), "build the workspace first: {}", bot.display());
    let report = dir.join("swarm.json");
    let mut swarm = Proc {
        child: Command::new(&bot)
            .args(["swarm", "--server", &gateway.http()])
            .args([
                "--bots",
                &BOTS.to_string(),
                "--ramp",
                "2s",
                "--duration",
                "12s",
            ])
            .args(["--mode", "duel", "--transport", "mixed", "--no-progress"])
            .args(["--max-errors", "0", "--report"])
            .arg(&report)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .spawn()
            .unwrap(),
        ready: Value::Null,
    };

    // Every bot plays, and each room server holding sessions stored images of them since.
    let deadline = Instant::now() + WAIT;
    let mut poll = tokio::time::interval(Duration::from_millis(50));
    let (mut seated, mut images) = (0.0, 0.0);
    while seated < BOTS || images < 2.0 * BOTS / 2.0 {
        assert!(
            Instant::now() < deadline,
            "{seated} seated, {images} images stored"
        );
        poll.tick().await;
        seated = metric(&rooms[0], "tickroom_sessions").await
            + metric(&rooms[1], "tickroom_sessions").await;
        images = metric(&rooms[0], "tickroom_images_stored").await
            + metric(&rooms[1], "tickroom_images_stored").await;
    }
    // Kill the server with the most players.
    let counts = [
        metric(&rooms[0], "tickroom_sessions").await,
        metric(&rooms[1], "tickroom_sessions").await,
    ];
    let (victim, survivor) = if counts[0] >= counts[1] {
        (0, 1)
    } else {
        (1, 0)
    };
    let moved = counts[victim];
    assert!(moved >= 2.0, "sessions on the servers: {counts:?}");
    rooms[victim].child.kill().unwrap();
    let _ = rooms[victim].child.wait();

    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(status) = swarm.child.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "the swarm did not finish");
        poll.tick().await;
    };
    let r: Value = serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    eprintln!("swarm report: {r}");
    let taken_over = metric(&rooms[survivor], "tickroom_rooms_taken_over").await;
    eprintln!(
        "failover: {moved} sessions on the killed server, {taken_over} rooms taken over, resume p50 {} ms p99 {} ms, most rolled back {} ms",
        r["resume_ms"]["p50"], r["resume_ms"]["p99"], r["max_rollback_ms"]
    );
    assert_eq!(status.code(), Some(0), "swarm failed: {r}");
    assert_eq!(r["joined"], BOTS as u64, "{r}");
    assert_eq!(r["errors"], 0, "{r}");
    // The same matches: nobody queued again, and each bot stayed in its one room.
    assert_eq!(r["rejoins"], 0, "{r}");
    assert_eq!(r["rooms"], BOTS as u64 / 2, "{r}");
    assert!(r["room_moves"].as_f64().unwrap() >= moved, "{r}");
    assert!(taken_over >= moved / 2.0, "{taken_over} rooms taken over");
    // At most one checkpoint interval of the match was lost (plus a tick and the write).
    let rollback = r["max_rollback_ms"].as_f64().unwrap();
    assert!(
        rollback <= CHECKPOINT_INTERVAL.as_secs_f64() * 1e3 + 100.0,
        "rolled back {rollback} ms"
    );
    // Back within the registry TTL + 1.5 s of the kill (p99), counting from the lost
    // connection.
    let p99 = r["resume_ms"]["p99"].as_f64().unwrap();
    assert!(
        p99 <= (REGISTRY_TTL + Duration::from_millis(1500)).as_secs_f64() * 1e3,
        "resume p99 {p99} ms"
    );
}
