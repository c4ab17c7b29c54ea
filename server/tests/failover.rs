//! Hot standby of state-sync rooms, multi-process: a real `redis-server`, `tickroom room`
//! servers and a `tickroom gateway` sharing it, and a bot swarm in `duel` rooms. Once every
//! bot plays and the rooms' failover images are stored, a room server is killed (`kill -9`)
//! or frozen past its lease (SIGSTOP, then SIGCONT). Its players ask the gateway, which moves
//! each room to a live server; they resume their sessions there, in the same match: no bot
//! queues again, none fails, and no match rolls back by more than one checkpoint interval. A
//! frozen server that wakes ends its stale copies. Children are ended by their own handles.

use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;

mod common;

use common::{
    free_port, scraped, start_redis, start_room_server, start_swarm, start_tickroom, swarm_report,
    Proc, TempDir, KEYS, WAIT,
};

/// These tests run one at a time: each loads the 2-core machine with a swarm and several
/// servers, and their figures (resume times, tick overruns) are only meaningful alone.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// The modes' default checkpoint interval (`duel` keeps it).
const CHECKPOINT_INTERVAL: Duration = Duration::from_millis(1000);
/// The registry's heartbeat TTL: a dead server's rooms can move only once it expired.
const REGISTRY_TTL: Duration = Duration::from_secs(3);

/// Room servers and a gateway on one Redis, and the temp dir (fields drop in order).
struct Cluster {
    rooms: Vec<Proc>,
    gateway: Proc,
    redis: Proc,
    url: String,
    prefix: String,
    dir: TempDir,
}

async fn cluster(servers: usize) -> Cluster {
    let dir = TempDir::new("failover");
    let (redis, url) = start_redis(dir.path()).await;
    let prefix = format!("f{}:", free_port());
    let gateway = start_tickroom(
        dir.path(),
        "gateway",
        &["gateway", "--redis", &url, "--redis-prefix", &prefix],
        &[("TICKROOM_KEYS", KEYS)],
    )
    .await;
    let mut c = Cluster {
        rooms: Vec::new(),
        gateway,
        redis,
        url,
        prefix,
        dir,
    };
    for i in 0..servers {
        let room = c.start_room(i).await;
        c.rooms.push(room);
    }
    c
}

impl Cluster {
    /// Starts room server `i` (`room-{i+1}`), again after a restart.
    async fn start_room(&self, i: usize) -> Proc {
        let id = format!("room-{}", i + 1);
        // A restart must not read the old process's ready file.
        let _ = std::fs::remove_file(self.dir.join(&format!("{id}.json")));
        let prefix = ["--redis-prefix", &self.prefix];
        start_room_server(self.dir.path(), &id, &self.url, &prefix).await
    }
}

/// The bot swarm in `duel` rooms against the cluster's gateway, writing `swarm.json`.
fn swarm(c: &Cluster, bots: u64, duration: &str) -> Proc {
    swarm_in(c, "duel", bots, duration)
}

/// The bot swarm in `mode`.
fn swarm_in(c: &Cluster, mode: &str, bots: u64, duration: &str) -> Proc {
    let args = [
        "--server",
        &c.gateway.http(),
        "--bots",
        &bots.to_string(),
        "--ramp",
        "2s",
        "--duration",
        duration,
        "--mode",
        mode,
        "--transport",
        "mixed",
    ];
    start_swarm(&args, &c.dir.join("swarm.json"))
}

/// A metric summed over the cluster's room servers.
async fn total(c: &Cluster, name: &str) -> f64 {
    let mut sum = 0.0;
    for r in &c.rooms {
        sum += scraped(r, name).await;
    }
    sum
}

/// Waits until `bots` bots are seated and every room stored an image since.
async fn playing_with_images(c: &Cluster, bots: f64) {
    let deadline = Instant::now() + WAIT;
    let mut poll = tokio::time::interval(Duration::from_millis(50));
    loop {
        let seated = total(c, "tickroom_sessions").await;
        let images = total(c, "tickroom_images_stored").await;
        if seated >= bots && images >= bots {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{seated} seated, {images} images stored"
        );
        poll.tick().await;
    }
}

/// Waits for the swarm to exit and returns its report.
async fn report_of(c: &Cluster, swarm: &mut Proc) -> Value {
    swarm_report(swarm, &c.dir.join("swarm.json")).await
}

/// The server of `c` with the most sessions, and that count.
async fn busiest(c: &Cluster) -> (usize, f64) {
    let mut best = (0, -1.0);
    for (i, r) in c.rooms.iter().enumerate() {
        let n = scraped(r, "tickroom_sessions").await;
        if n > best.1 {
            best = (i, n);
        }
    }
    best
}

/// Every bot got in and stayed in its first match: no error, no rejoin, each duel whole.
fn same_matches(r: &Value, bots: f64) {
    assert_eq!(r["joined"], bots as u64, "{r}");
    assert_eq!(r["errors"], 0, "{r}");
    assert_eq!(r["rejoins"], 0, "{r}");
    assert_eq!(r["rooms"], bots as u64 / 2, "{r}");
}

/// The moved players were back within the registry TTL + 1.5 s of the kill (p99), counting
/// from the lost connection.
fn back_in_time(r: &Value) {
    let p99 = r["resume_ms"]["p99"].as_f64().unwrap();
    assert!(
        p99 <= (REGISTRY_TTL + Duration::from_millis(1500)).as_secs_f64() * 1e3,
        "resume p99 {p99} ms"
    );
}

/// Sends `sig` (`-STOP`, `-CONT`, `-TERM`) to process `pid`.
fn signal(pid: u32, sig: &str) {
    let sent = Command::new("kill")
        .args([sig, &pid.to_string()])
        .status()
        .unwrap();
    assert!(sent.success(), "kill {sig} {pid}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_room_servers_matches_go_on_on_another_server() {
    let _serial = SERIAL.lock().await;
    const BOTS: f64 = 20.0;
    let mut c = cluster(2).await;
    let mut swarm = swarm(&c, BOTS as u64, "12s");
    playing_with_images(&c, BOTS).await;
    // Kill the server with the most players.
    let (victim, moved) = busiest(&c).await;
    let survivor = 1 - victim;
    assert!(moved >= 2.0, "{moved} sessions on the busiest server");
    let overruns_before = scraped(&c.rooms[survivor], "tickroom_tick_overruns").await;
    c.rooms[victim].child.kill().unwrap();
    let _ = c.rooms[victim].child.wait();

    let r = report_of(&c, &mut swarm).await;
    let taken_over = scraped(&c.rooms[survivor], "tickroom_rooms_taken_over").await;
    let overruns = scraped(&c.rooms[survivor], "tickroom_tick_overruns").await - overruns_before;
    eprintln!(
        "failover: {moved} sessions on the killed server, {taken_over} rooms taken over, resume p50 {} ms p99 {} ms, most rolled back {} ms, {overruns} tick overruns on the new owner",
        r["resume_ms"]["p50"], r["resume_ms"]["p99"], r["max_rollback_ms"]
    );
    // The resume burst did not make the new owner's ticks overrun.
    assert_eq!(overruns, 0.0, "the takeover overran ticks");
    // The same matches: nobody queued again, and each bot stayed in its one room.
    same_matches(&r, BOTS);
    assert!(r["room_moves"].as_f64().unwrap() >= moved, "{r}");
    assert!(taken_over >= moved / 2.0, "{taken_over} rooms taken over");
    // At most one checkpoint interval of the match was lost (plus a tick and the write).
    let rollback = r["max_rollback_ms"].as_f64().unwrap();
    assert!(
        rollback <= CHECKPOINT_INTERVAL.as_secs_f64() * 1e3 + 100.0,
        "rolled back {rollback} ms"
    );
    back_in_time(&r);
}

/// Split brain: one of three room servers is frozen (SIGSTOP) past its registry TTL while a
/// swarm plays. Its players move to the others (the gateway takes the rooms over); once it
/// goes on (SIGCONT) it notices the pause, holds its rooms, learns from the directory's
/// fenced answer that they moved, and ends its copies: its rooms stop, their epochs in Redis
/// are the new owners', and every player ends in the new owners' copies, with no error and
/// no rejoin.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_room_server_gives_up_the_rooms_that_moved_while_it_slept() {
    let _serial = SERIAL.lock().await;
    const BOTS: f64 = 20.0;
    let c = cluster(3).await;
    let mut swarm = swarm(&c, BOTS as u64, "14s");
    playing_with_images(&c, BOTS).await;
    let (victim, sessions) = busiest(&c).await;
    let rooms = scraped(&c.rooms[victim], "tickroom_rooms").await;
    assert!(
        sessions >= 2.0 && rooms >= 1.0,
        "{sessions} sessions, {rooms} rooms"
    );
    let pid = c.rooms[victim].child.id();
    let ticks_before = scraped(&c.rooms[victim], "tickroom_ticks").await;
    signal(pid, "-STOP");
    // Its rooms move: the others take them over as their players ask.
    let deadline = Instant::now() + WAIT;
    let mut poll = tokio::time::interval(Duration::from_millis(50));
    loop {
        let mut taken = 0.0;
        for (i, r) in c.rooms.iter().enumerate() {
            if i != victim {
                taken += scraped(r, "tickroom_rooms_taken_over").await;
            }
        }
        if taken >= rooms {
            break;
        }
        if Instant::now() >= deadline {
            signal(pid, "-CONT");
            panic!("only {taken} of {rooms} rooms taken over");
        }
        poll.tick().await;
    }
    signal(pid, "-CONT");
    // Awake, it ends every copy that moved, and keeps no room.
    let deadline = Instant::now() + WAIT;
    loop {
        let stopped = scraped(&c.rooms[victim], "tickroom_rooms_moved_away").await;
        let running = scraped(&c.rooms[victim], "tickroom_rooms").await;
        if stopped >= rooms && running == 0.0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the paused server stopped {stopped} of {rooms} rooms and still runs {running}"
        );
        poll.tick().await;
    }
    // It noticed before it ticked again: the stale copies did not step (only the ticks of the
    // moments between reading the counter and the SIGSTOP, a few per room, are allowed).
    let ticks_after = scraped(&c.rooms[victim], "tickroom_ticks").await;
    eprintln!(
        "ticks of the paused server after waking: {}",
        ticks_after - ticks_before
    );
    assert!(
        ticks_after - ticks_before <= 3.0 * rooms,
        "the paused server ticked {} times after waking",
        ticks_after - ticks_before
    );
    let r = report_of(&c, &mut swarm).await;
    same_matches(&r, BOTS);
    assert!(r["room_moves"].as_f64().unwrap() >= sessions, "{r}");
}

/// A rolling restart: each of three room servers in turn gets SIGTERM under a swarm, hands its
/// rooms to the others live, exits 0, and is started again. Every match survives: no error,
/// no rejoin, every bot still in its first room at the end.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rolling_restart_of_every_room_server_loses_no_match() {
    let _serial = SERIAL.lock().await;
    const BOTS: f64 = 20.0;
    let mut c = cluster(3).await;
    let mut swarm = swarm(&c, BOTS as u64, "16s");
    playing_with_images(&c, BOTS).await;
    let mut poll = tokio::time::interval(Duration::from_millis(50));
    for i in 0..c.rooms.len() {
        let had = scraped(&c.rooms[i], "tickroom_rooms").await;
        let stopped = Instant::now();
        signal(c.rooms[i].child.id(), "-TERM");
        let status = loop {
            if let Some(status) = c.rooms[i].child.try_wait().unwrap() {
                break status;
            }
            assert!(
                stopped.elapsed() < Duration::from_secs(40),
                "room-{} did not exit",
                i + 1
            );
            poll.tick().await;
        };
        assert_eq!(status.code(), Some(0), "room-{} exit", i + 1);
        eprintln!(
            "room-{} handed {had} rooms over and exited in {:?}",
            i + 1,
            stopped.elapsed()
        );
        c.rooms[i] = c.start_room(i).await;
    }
    let r = report_of(&c, &mut swarm).await;
    same_matches(&r, BOTS);
    assert!(
        r["room_moves"].as_f64().unwrap() >= BOTS,
        "every bot moved at least once: {r}"
    );
}

/// A Redis outage while rooms run stops no room: it only suspends failover, which a metric
/// (`tickroom_image_failures`) and a log line say. Redis is frozen (SIGSTOP) under a swarm
/// until the room server has failed to store images, then goes on: no error, no move.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_outage_suspends_failover_and_stops_no_room() {
    let _serial = SERIAL.lock().await;
    const BOTS: f64 = 10.0;
    let c = cluster(1).await;
    let mut swarm = swarm(&c, BOTS as u64, "8s");
    playing_with_images(&c, BOTS).await;
    let pid = c.redis.child.id();
    let ticks_before = scraped(&c.rooms[0], "tickroom_ticks").await;
    signal(pid, "-STOP");
    let deadline = Instant::now() + WAIT;
    let mut poll = tokio::time::interval(Duration::from_millis(50));
    while scraped(&c.rooms[0], "tickroom_image_failures").await < 1.0 {
        if Instant::now() >= deadline {
            signal(pid, "-CONT");
            panic!("no image failed while Redis was frozen");
        }
        poll.tick().await;
    }
    // The rooms ticked on meanwhile.
    let ticks_frozen = scraped(&c.rooms[0], "tickroom_ticks").await;
    signal(pid, "-CONT");
    assert!(
        ticks_frozen > ticks_before,
        "the rooms stopped while Redis was away"
    );
    let r = report_of(&c, &mut swarm).await;
    assert_eq!(r["joined"], BOTS as u64, "{r}");
    assert_eq!(r["errors"], 0, "{r}");
    assert_eq!(
        (r["rejoins"].as_u64(), r["room_moves"].as_u64()),
        (Some(0), Some(0)),
        "{r}"
    );
    assert_eq!(scraped(&c.rooms[0], "tickroom_rooms_moved_away").await, 0.0);
}

/// A corrupted failover image is refused, typed, and the room ends cleanly: its players are
/// told (`SessionExpired`, with the reason) and find the room over; nothing panics, and the
/// new owner goes on serving. The images of the killed server's rooms are overwritten with
/// garbage before it is killed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupted_image_ends_its_room_cleanly() {
    let _serial = SERIAL.lock().await;
    const BOTS: f64 = 10.0;
    let mut c = cluster(2).await;
    let mut swarm = swarm(&c, BOTS as u64, "10s");
    playing_with_images(&c, BOTS).await;
    let (victim, sessions) = busiest(&c).await;
    let survivor = 1 - victim;
    assert!(sessions >= 2.0, "{sessions} sessions on the busiest server");
    // Overwrite every stored image (the survivor's own rooms never need theirs).
    let port = c.url.rsplit(':').next().unwrap().to_owned();
    let cli = |args: &[&str]| {
        let out = Command::new("redis-cli")
            .args(["-h", "127.0.0.1", "-p", &port])
            .args(args)
            .output()
            .expect("redis-cli comes with redis-server");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let keys = cli(&["--scan", "--pattern", &format!("{}image:*", c.prefix)]);
    let keys: Vec<&str> = keys.lines().filter(|k| !k.is_empty()).collect();
    assert!(!keys.is_empty(), "no image stored");
    // A failed checkpoint refresh of the victim could undo the damage: freeze it first.
    signal(c.rooms[victim].child.id(), "-STOP");
    for key in &keys {
        cli(&["SET", key, "not an image", "PX", "60000"]);
    }
    c.rooms[victim].child.kill().unwrap();
    let _ = c.rooms[victim].child.wait();
    let deadline = Instant::now() + WAIT;
    let mut poll = tokio::time::interval(Duration::from_millis(50));
    while scraped(&c.rooms[survivor], "tickroom_images_refused").await < 1.0 {
        assert!(Instant::now() < deadline, "no image was refused");
        poll.tick().await;
    }
    let r = report_of(&c, &mut swarm).await;
    assert_eq!(r["joined"], BOTS as u64, "{r}");
    // The affected players were told their room is over; nobody failed.
    assert_eq!(r["errors"], 0, "{r}");
    assert_eq!(
        scraped(&c.rooms[survivor], "tickroom_rooms_taken_over").await,
        0.0
    );
    // The new owner is still up (it answers) and still refuses nothing else.
    assert!(c.rooms[survivor].child.try_wait().unwrap().is_none());
}

/// Lockstep hot standby: a lockstep room sends a frame only once it is stored, so when its
/// server is killed the new owner has every frame any player saw. The players resume there
/// in the same match, with no frame lost and no checksum disagreement after the move.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_room_servers_lockstep_matches_go_on_with_no_frame_lost() {
    let _serial = SERIAL.lock().await;
    const BOTS: f64 = 20.0;
    let mut c = cluster(2).await;
    let mut swarm = swarm_in(&c, "duel-lockstep", BOTS as u64, "12s");
    playing_with_images(&c, BOTS).await;
    let (victim, moved) = busiest(&c).await;
    let survivor = 1 - victim;
    assert!(moved >= 2.0, "{moved} sessions on the busiest server");
    c.rooms[victim].child.kill().unwrap();
    let _ = c.rooms[victim].child.wait();
    let r = report_of(&c, &mut swarm).await;
    let taken_over = scraped(&c.rooms[survivor], "tickroom_rooms_taken_over").await;
    let disagreements = scraped(&c.rooms[survivor], "tickroom_checksum_disagreements").await;
    let desyncs = scraped(&c.rooms[survivor], "tickroom_desyncs").await;
    eprintln!(
        "lockstep failover: {moved} sessions moved, {taken_over} rooms taken over, resume p50 {} ms p99 {} ms, {} frames lost, {disagreements} checksum disagreements, {desyncs} desyncs",
        r["resume_ms"]["p50"], r["resume_ms"]["p99"], r["lost_frames"]
    );
    same_matches(&r, BOTS);
    assert!(r["room_moves"].as_f64().unwrap() >= moved, "{r}");
    assert!(taken_over >= moved / 2.0, "{taken_over} rooms taken over");
    assert_eq!(r["lost_frames"], 0, "no frame a player saw was lost: {r}");
    assert_eq!(
        (disagreements, desyncs),
        (0.0, 0.0),
        "the same game after the move"
    );
    back_in_time(&r);
}
