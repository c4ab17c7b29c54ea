//! Horizontal room sharding, multi-process: a real `redis-server` (random port, temp dir),
//! three `tickroom room` and two `tickroom gateway` processes sharing it. Players queue
//! through both gateways: every player lands in exactly one match, rooms spread over all three
//! servers; `kill -9` of one room server sends its players back through the gateway into new
//! rooms within 5 s (p99) while the other players see no error. The room servers run
//! `--no-failover`, so their rooms do not move to another server (that is `failover.rs`).
//! Children are ended by their own handles.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::{Duration, Instant};

use serde_json::Value;
use tickroom_protocol::connect::{self, GatewayClient, MatchResult, Session, TransportKind};
use tickroom_protocol::session::{SessionConfig, SessionEvent};

/// How long the whole rejoin of the killed server's players may take at the 99th percentile.
const REJOIN_P99_LIMIT: Duration = Duration::from_secs(5);
/// The mode these tests kill a room server under. Its room servers run `--no-failover`, so
/// their players queue again (the path these tests check; failover: `tests/failover.rs`).
const REJOIN_MODE: &str = "duel";

mod common;

use common::{
    free_port, scraped, start_redis, start_room_server, start_swarm, start_tickroom, swarm_report,
    Proc, TempDir, KEYS, WAIT,
};

/// Fields drop in order: gateways and room servers first, Redis last, the temp dir at the end.
struct Cluster {
    gateways: Vec<Proc>,
    rooms: Vec<Proc>,
    _redis: Proc,
    dir: TempDir,
}

async fn cluster() -> Cluster {
    let dir = TempDir::new("shard");
    let (redis, url) = start_redis(dir.path()).await;
    let prefix = format!("t{}:", free_port());
    let mut rooms = Vec::new();
    for i in 1..=3 {
        let flags = ["--redis-prefix", &prefix, "--no-failover"];
        rooms.push(start_room_server(dir.path(), &format!("room-{i}"), &url, &flags).await);
    }
    let mut gateways = Vec::new();
    for i in 1..=2 {
        let args = ["gateway", "--redis", &url, "--redis-prefix", &prefix];
        let env = [("TICKROOM_KEYS", KEYS)];
        gateways.push(start_tickroom(dir.path(), &format!("gateway-{i}"), &args, &env).await);
    }
    Cluster {
        gateways,
        rooms,
        _redis: redis,
        dir,
    }
}

impl Cluster {
    fn gateway(&self, i: usize) -> GatewayClient {
        GatewayClient::new(&format!(
            "http://{}",
            self.gateways[i % 2].ready["http"].as_str().unwrap()
        ))
    }
}

/// Logs in and queues `n` players for `REJOIN_MODE`, alternating gateways; returns (token, match).
async fn match_all(c: &Cluster, n: usize, tag: &str) -> Vec<(usize, String, MatchResult)> {
    let mut tasks = Vec::new();
    for i in 0..n {
        let gw = c.gateway(i);
        let device = tickroom_testkit::device_id(&format!("{tag}-{i}"));
        tasks.push(tokio::spawn(async move {
            let login = gw.login_device(&device).await.unwrap();
            let ticket = gw.queue(&login.session_token, REJOIN_MODE).await.unwrap();
            let m = gw
                .wait_match(&login.session_token, &ticket, WAIT)
                .await
                .unwrap();
            (i, login.session_token, m)
        }));
    }
    let mut out = Vec::new();
    for t in tasks {
        out.push(t.await.unwrap());
    }
    out
}

async fn joined(s: &mut Session) {
    tokio::time::timeout(WAIT, async {
        loop {
            match s.events.recv().await.expect("session ended") {
                SessionEvent::Joined(_) => return,
                SessionEvent::Closed { code } => panic!("closed: {code:?}"),
                _ => {}
            }
        }
    })
    .await
    .expect("joined in time");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sharded_cluster_spreads_rooms_and_survives_a_killed_room_server() {
    let mut c = cluster().await;
    let players = 48;
    let matched = match_all(&c, players, "p").await;

    // Every player in exactly one match; every room has exactly its two players.
    let mut by_room: BTreeMap<u64, Vec<usize>> = BTreeMap::new();
    let mut server_of_room = HashMap::new();
    for (i, _, m) in &matched {
        by_room.entry(m.room_id).or_default().push(*i);
        server_of_room.insert(m.room_id, m.server_id.clone());
    }
    assert_eq!(
        by_room.len(),
        players / 2,
        "two gateways never built overlapping matches"
    );
    assert!(by_room.values().all(|p| p.len() == 2));
    let servers: HashSet<&String> = server_of_room.values().collect();
    assert_eq!(
        servers.len(),
        3,
        "rooms spread over all three room servers: {server_of_room:?}"
    );

    // Everyone joins their room.
    let mut sessions = Vec::new();
    for (i, _, m) in &matched {
        let t = if i % 2 == 0 {
            TransportKind::Ws
        } else {
            TransportKind::Quic
        };
        let mut s = connect::join(m, t, SessionConfig::default(), None)
            .await
            .unwrap();
        joined(&mut s).await;
        sessions.push(s);
    }

    // kill -9 room-1.
    let victim = "room-1";
    let killed_at = Instant::now();
    c.rooms[0].child.kill().unwrap();
    let _ = c.rooms[0].child.wait();
    let affected: Vec<usize> = matched
        .iter()
        .filter(|(_, _, m)| m.server_id == victim)
        .map(|(i, _, _)| *i)
        .collect();
    assert!(!affected.is_empty());

    // Affected players ask the gateway where their room is; once it says the owner is dead,
    // they queue again and join a new room (on a live server).
    let mut rejoin = Vec::new();
    for &i in &affected {
        let (_, token, m) = &matched[i];
        sessions[i].task.abort();
        let gw = c.gateway(i);
        let token = token.clone();
        let room_id = m.room_id;
        let http = format!(
            "http://{}",
            c.gateways[i % 2].ready["http"].as_str().unwrap()
        );
        rejoin.push(tokio::spawn(async move {
            let client = reqwest::Client::new();
            let mut poll = tokio::time::interval(Duration::from_millis(100));
            loop {
                poll.tick().await;
                let resp = client
                    .get(format!("{http}/v1/rooms/{room_id}"))
                    .bearer_auth(&token)
                    .send()
                    .await
                    .unwrap();
                let status = resp.status().as_u16();
                let body: Value = resp.json().await.unwrap_or(Value::Null);
                if status == 404 || body["alive"] == Value::Bool(false) {
                    break;
                }
                assert!(
                    killed_at.elapsed() < WAIT,
                    "the gateway never noticed the dead server"
                );
            }
            let ticket = gw.queue(&token, REJOIN_MODE).await.unwrap();
            let m = gw.wait_match(&token, &ticket, WAIT).await.unwrap();
            assert_ne!(m.server_id, "room-1", "never placed on the dead server");
            let mut s = connect::join(&m, TransportKind::Ws, SessionConfig::default(), None)
                .await
                .unwrap();
            joined(&mut s).await;
            (killed_at.elapsed(), s)
        }));
    }
    let mut times = Vec::new();
    let mut rejoined = Vec::new();
    for r in rejoin {
        let (t, s) = r.await.unwrap();
        times.push(t);
        rejoined.push(s);
    }
    times.sort();
    let p99 = times[((times.len() as f64 * 0.99).ceil() as usize).saturating_sub(1)];
    eprintln!(
        "rejoin after kill -9: {} players, p50 {:?}, p99 {:?}",
        times.len(),
        times[times.len() / 2],
        p99
    );
    assert!(
        p99 <= REJOIN_P99_LIMIT,
        "rejoin p99 {p99:?} over {REJOIN_P99_LIMIT:?}"
    );

    // Players on the surviving servers saw no disconnect or error.
    for (i, s) in sessions.iter_mut().enumerate() {
        if affected.contains(&i) {
            continue;
        }
        while let Ok(event) = s.events.try_recv() {
            assert!(
                !matches!(
                    event,
                    SessionEvent::Disconnected { .. } | SessionEvent::Closed { .. }
                ),
                "player {i} on a live server saw {event:?}"
            );
        }
    }
}

/// Login → in-room time for `n` players (duel) through `gateways`, as sorted durations.
async fn login_to_room_times(gateways: &[GatewayClient], n: usize, tag: &str) -> Vec<Duration> {
    let mut tasks = Vec::new();
    for i in 0..n {
        let gw = gateways[i % gateways.len()].clone();
        let device = tickroom_testkit::device_id(&format!("{tag}-{i}"));
        tasks.push(tokio::spawn(async move {
            let start = Instant::now();
            let m = gw.find_match(&device, "duel", WAIT).await.unwrap();
            let mut s = connect::join(&m, TransportKind::Ws, SessionConfig::default(), None)
                .await
                .unwrap();
            joined(&mut s).await;
            let took = start.elapsed();
            s.handle.leave().await;
            took
        }));
    }
    let mut out = Vec::new();
    for t in tasks {
        out.push(t.await.unwrap());
    }
    out.sort();
    out
}

fn quantile(sorted: &[Duration], q: f64) -> Duration {
    sorted[((sorted.len() as f64 * q).ceil() as usize).clamp(1, sorted.len()) - 1]
}

/// Measurement, not a check: login → in-room p50/p99 through the Redis cluster versus the
/// all-in-one in-memory directory. Run with
/// `cargo test --release -p tickroom-server --test sharding -- --ignored --nocapture`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore]
async fn measure_login_to_room_redis_versus_in_memory() {
    const PLAYERS: usize = 200;
    let c = cluster().await;
    let redis = login_to_room_times(&[c.gateway(0), c.gateway(1)], PLAYERS, "redis").await;
    let dir = TempDir::new("aio");
    let aio = common::start_all_in_one(&dir).await;
    let gw = GatewayClient::new(&format!("http://{}", aio.ready["http"].as_str().unwrap()));
    let memory = login_to_room_times(&[gw], PLAYERS, "mem").await;
    for (name, t) in [
        ("in-memory (all-in-one)", &memory),
        ("redis (2 gateways, 3 rooms)", &redis),
    ] {
        println!(
            "login→in-room {name}: p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms ({PLAYERS} players)",
            quantile(t, 0.5).as_secs_f64() * 1e3,
            quantile(t, 0.99).as_secs_f64() * 1e3,
            t[t.len() - 1].as_secs_f64() * 1e3
        );
    }
}

/// Sum of a gauge over the room servers' /metrics.
async fn sessions_on(rooms: &[&Proc]) -> i64 {
    let mut total = 0.0;
    for r in rooms {
        total += scraped(r, "tickroom_sessions").await;
    }
    total as i64
}

/// The real bot swarm through both gateways; one room server is killed under load. Every bot
/// either keeps playing or rejoins through the gateway; the swarm ends with zero errors.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bot_swarm_through_two_gateways_survives_kill_9() {
    let mut c = cluster().await;
    let report = c.dir.join("swarm.json");
    let servers = format!(
        "http://{},http://{}",
        c.gateways[0].ready["http"].as_str().unwrap(),
        c.gateways[1].ready["http"].as_str().unwrap()
    );
    const BOTS: i64 = 60;
    // The figures that matter (tick p99, overruns) are the room servers'.
    let metrics_urls: Vec<String> = c.rooms.iter().map(Proc::metrics_url).collect();
    let bots = BOTS.to_string();
    let metrics = metrics_urls.join(",");
    let args = [
        "--server",
        &servers,
        "--bots",
        &bots,
        "--ramp",
        "2s",
        "--duration",
        "12s",
        "--mode",
        REJOIN_MODE,
        "--transport",
        "mixed",
        "--metrics-url",
        &metrics,
    ];
    let mut swarm = start_swarm(&args, &report);
    // Kill room-1 once every bot is seated somewhere.
    let deadline = Instant::now() + WAIT;
    let mut poll = tokio::time::interval(Duration::from_millis(100));
    loop {
        let seated = sessions_on(&c.rooms.iter().collect::<Vec<_>>()).await;
        if seated >= BOTS {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "only {seated} of {BOTS} bots seated"
        );
        poll.tick().await;
    }
    c.rooms[0].child.kill().unwrap();
    let _ = c.rooms[0].child.wait();
    let r = swarm_report(&mut swarm, &report).await;
    assert_eq!(r["joined"], BOTS);
    assert_eq!(r["errors"], 0);
    assert!(
        r["rejoins"].as_u64().unwrap() >= 1,
        "bots on the killed server rejoined"
    );
    assert!(r["rejoin_ms"]["p99"].as_f64().unwrap() <= REJOIN_P99_LIMIT.as_secs_f64() * 1e3);
}
