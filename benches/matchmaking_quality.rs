//! Matchmaking quality of the `ranked` mode's rules (issue 18): 10,000 players arrive at 500 per
//! second for 20 s, ratings N(1500, 300), spread evenly over three regions, one game version.
//! Formation passes run every 50 ms of simulated time until the queue is empty (or 60 s
//! passed), through the in-memory directory and, when `redis-server` is on PATH, through a
//! throwaway Redis. Printed per directory: rating spread per match (targets: median ≤ 100,
//! p99 ≤ 800), wait per player (target: p99 ≤ 15 s), cross-region and short matches, a
//! recheck of every match against the rules (zero violations asserted) and the wall time of
//! each pass against the 50 ms pass interval. Criterion then times one formation pass over
//! the queue the in-memory simulation held 10 s in, and the matcher over a backlog of the
//! first 5,000 players queued at once (the most one Redis pass considers).
//!
//! `cargo bench --bench matchmaking_quality`; under `cargo test` (no `--bench`) a 2 s arrival
//! run through the in-memory directory only.

use std::collections::{BTreeMap, HashSet};
use std::hint::black_box;
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use criterion::{BatchSize, Criterion};
use tickroom_game::modes::{MatchRules, ModeConfig, Modes};
use tickroom_game::{MetaValue, PlayerMetadata};
use tickroom_gateway::matching::{self, Candidate, Group, Grouping, Shape};
use tickroom_gateway::redis::RULES_SNAPSHOT_TICKETS;
use tickroom_gateway::{
    Directory, EnqueueOutcome, InMemoryDirectory, MatchRequest, QueueEntry, RedisDirectory,
    RoomServerInfo, TicketId,
};

/// The mode under test (`assets/modes.toml`).
const MODE: &str = "ranked";
/// Arrival rate, players per second.
const ARRIVALS_PER_S: u64 = 500;
/// How long players arrive, simulated ms (`--bench`); 10,000 players.
const ARRIVAL_MS: u64 = 20_000;
/// The same under `cargo test`.
const TEST_ARRIVAL_MS: u64 = 2_000;
/// Simulated time between two formation passes, ms.
const PASS_MS: u64 = 50;
/// The simulation stops here (simulated ms) even if players still wait.
const LIMIT_MS: u64 = 60_000;
/// Simulated time of the queue the criterion measurement forms from, ms.
const SNAPSHOT_MS: u64 = 10_000;
/// Simulated time zero, unix ms.
const BASE_MS: u64 = 1_700_000_000_000;
/// Seeds the population.
const SEED: u64 = 0x1518_2025;
/// Regions, each with a third of the players.
const REGIONS: [&str; 3] = ["eu", "us", "asia"];
/// Latency to the home region, ms (inclusive range).
const HOME_LATENCY_MS: (i64, i64) = (15, 60);
/// Latency to the other regions, ms (inclusive range).
const AWAY_LATENCY_MS: (i64, i64) = (70, 250);
/// Everyone's game version.
const VERSION: &str = "1.2";
/// Simulated bots never poll: nobody is dropped as abandoned.
const ABANDON_AFTER_MS: u64 = 600_000;
/// Join window of a placed player, ms (as `benches/matchmaking.rs`).
const JOIN_WINDOW_MS: u64 = 20_000;
/// Live room servers placement chooses among.
const ROOM_SERVERS: u32 = 8;
/// Target of the issue: median rating spread per match.
const TARGET_MEDIAN_SPREAD: i64 = 100;
/// Target of the issue: p99 wait per player, ms.
const TARGET_WAIT_P99_MS: u64 = 15_000;
/// Longest a fresh redis-server may take to answer.
const REDIS_START_DEADLINE: Duration = Duration::from_secs(10);

/// SplitMix64: a seeded generator, so the population is the same on every run without a
/// dependency the root package does not have.
struct SplitMix64(u64);

impl SplitMix64 {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in (0, 1].
    fn unit(&mut self) -> f64 {
        ((self.next_u64() >> 11) + 1) as f64 / (1u64 << 53) as f64
    }

    /// Uniform in `low..=high`.
    fn between(&mut self, (low, high): (i64, i64)) -> i64 {
        low + (self.next_u64() % (high - low + 1) as u64) as i64
    }

    /// Standard normal (Box–Muller).
    fn normal(&mut self) -> f64 {
        let (u1, u2) = (self.unit(), self.unit());
        (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
    }
}

/// One simulated player; its player id is its index + 1.
struct Player {
    /// Simulated arrival time, ms.
    arrival_ms: u64,
    rating: i64,
    region: usize,
    ticket: TicketId,
    properties: PlayerMetadata,
}

impl Player {
    /// Its best-latency region besides its own (ties: the lower name, as the matcher).
    fn best_other(&self) -> Option<&str> {
        REGIONS
            .iter()
            .filter(|r| **r != REGIONS[self.region])
            .map(|r| (self.properties.int(&format!("latency.{r}")), *r))
            .filter_map(|(ms, r)| Some((ms?, r)))
            .min()
            .map(|(_, r)| r)
    }
}

fn population(rules: &MatchRules, arrival_ms: u64) -> Vec<Player> {
    let rating_key = rules.rating.clone().expect("ranked rates players");
    let region_key = rules.region.clone().expect("ranked has regions");
    let mut rng = SplitMix64(SEED);
    let count = arrival_ms * ARRIVALS_PER_S / 1000;
    (0..count)
        .map(|i| {
            let region = (i % REGIONS.len() as u64) as usize;
            let rating = (1500.0 + 300.0 * rng.normal()).round() as i64;
            let mut props = BTreeMap::new();
            props.insert(rating_key.clone(), MetaValue::Int(rating));
            props.insert(region_key.clone(), MetaValue::Str(REGIONS[region].into()));
            for key in &rules.exact {
                props.insert(key.clone(), MetaValue::Str(VERSION.into()));
            }
            for (r, name) in REGIONS.iter().enumerate() {
                let range = if r == region {
                    HOME_LATENCY_MS
                } else {
                    AWAY_LATENCY_MS
                };
                props.insert(
                    format!("latency.{name}"),
                    MetaValue::Int(rng.between(range)),
                );
            }
            Player {
                arrival_ms: i * 1000 / ARRIVALS_PER_S,
                rating,
                region,
                ticket: TicketId((u128::from(rng.next_u64()) << 64) | u128::from(i)),
                properties: PlayerMetadata(props),
            }
        })
        .collect()
}

fn room_server(i: u32) -> RoomServerInfo {
    RoomServerInfo {
        server_id: format!("room-{i}"),
        quic_addr: format!("10.0.0.{i}:4433"),
        ws_addr: format!("10.0.0.{i}:8080"),
        cert_fingerprint: "ab".repeat(32),
        ws_tls: false,
        capacity: 100_000,
        load: 0,
        draining: false,
    }
}

fn queue_entry(players: &[Player], index: usize) -> QueueEntry {
    let p = &players[index];
    QueueEntry {
        ticket_id: p.ticket,
        player_id: index as u64 + 1,
        mode: MODE.into(),
        enqueued_ms: BASE_MS + p.arrival_ms,
        metadata: PlayerMetadata::default(),
        properties: p.properties.clone(),
        party: None,
    }
}

fn shape(mode: &ModeConfig) -> Shape {
    Shape {
        players: usize::from(mode.players),
        min_players: usize::from(mode.min_players),
        wait_ms: u64::from(mode.matchmaking_wait_s) * 1000,
        teams: usize::from(mode.teams),
    }
}

fn request(mode: &ModeConfig, rules: &MatchRules, now_ms: u64) -> MatchRequest {
    let shape = shape(mode);
    MatchRequest {
        mode: MODE.into(),
        players: shape.players,
        min_players: shape.min_players,
        wait_ms: shape.wait_ms,
        abandon_after_ms: ABANDON_AFTER_MS,
        now_ms: BASE_MS + now_ms,
        max_matches: usize::MAX,
        join_window_ms: JOIN_WINDOW_MS,
        seed: now_ms,
        rules: Some(rules.clone()),
        teams: shape.teams,
    }
}

/// A match the simulation saw formed.
struct Placed {
    /// Simulated time of its pass, ms.
    pass_ms: u64,
    /// Population indexes, the anchor first.
    members: Vec<usize>,
    grouping: Option<Grouping>,
}

/// What one simulation run did.
struct Run {
    matches: Vec<Placed>,
    left_queued: usize,
    end_ms: u64,
    passes: usize,
    peak_queued: usize,
    /// Wall time of each `form_matches` call.
    pass_wall: Vec<Duration>,
    /// Wall time of each step: its arrivals' enqueues and its pass.
    step_wall: Vec<Duration>,
    /// The queue (population indexes) right before the pass at `SNAPSHOT_MS`.
    snapshot: Vec<usize>,
}

async fn simulate(
    dir: &dyn Directory,
    players: &[Player],
    mode: &ModeConfig,
    rules: &MatchRules,
) -> Run {
    for i in 0..ROOM_SERVERS {
        dir.register_server(room_server(i), Duration::from_secs(3600))
            .await
            .expect("register a room server");
    }
    let mut run = Run {
        matches: Vec::new(),
        left_queued: 0,
        end_ms: 0,
        passes: 0,
        peak_queued: 0,
        pass_wall: Vec::new(),
        step_wall: Vec::new(),
        snapshot: Vec::new(),
    };
    let mut queued: HashSet<usize> = HashSet::new();
    let mut next = 0;
    let mut now_ms = 0;
    loop {
        now_ms += PASS_MS;
        let step = Instant::now();
        while next < players.len() && players[next].arrival_ms < now_ms {
            let outcome = dir
                .enqueue(queue_entry(players, next))
                .await
                .expect("enqueue");
            assert!(matches!(outcome, EnqueueOutcome::Queued), "{outcome:?}");
            queued.insert(next);
            next += 1;
        }
        if now_ms == SNAPSHOT_MS {
            run.snapshot = queued.iter().copied().collect();
            run.snapshot.sort_unstable();
        }
        run.peak_queued = run.peak_queued.max(queued.len());
        let pass = Instant::now();
        let formation = dir
            .form_matches(request(mode, rules, now_ms))
            .await
            .expect("form matches");
        run.pass_wall.push(pass.elapsed());
        run.step_wall.push(step.elapsed());
        run.passes += 1;
        for m in formation.matches {
            let members: Vec<usize> = m
                .players
                .iter()
                .map(|p| (p.player_id - 1) as usize)
                .collect();
            for i in &members {
                queued.remove(i);
            }
            run.matches.push(Placed {
                pass_ms: now_ms,
                members,
                grouping: m.grouping,
            });
        }
        run.left_queued = formation.still_queued;
        if (next == players.len() && formation.still_queued == 0) || now_ms >= LIMIT_MS {
            run.end_ms = now_ms;
            return run;
        }
    }
}

/// Nearest-rank percentile of sorted values.
fn pct<T: Copy + Default>(sorted: &[T], p: f64) -> T {
    if sorted.is_empty() {
        return T::default();
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn verdict(met: bool) -> &'static str {
    if met {
        "met"
    } else {
        "NOT met"
    }
}

/// Everything wrong with one match, checked by hand from the generated properties.
fn check_by_hand(
    players: &[Player],
    rules: &MatchRules,
    shape: Shape,
    m: &Placed,
    problems: &mut Vec<String>,
) {
    let a = &players[m.members[0]];
    let waited = |p: &Player| m.pass_ms - p.arrival_ms;
    let fallback_ms = u64::from(rules.region_fallback_s) * 1000;
    let n = m.members.len();
    if n > shape.players
        || (n < shape.players && (n < shape.min_players || waited(a) < shape.wait_ms))
    {
        problems.push(format!("a match of {n} at {} ms", m.pass_ms));
    }
    let grouping = m.grouping.clone().unwrap_or_default();
    if grouping.region.as_deref() != Some(REGIONS[a.region]) {
        problems.push(format!("grouping region {:?}", grouping.region));
    }
    let ratings = m.members.iter().map(|&i| players[i].rating);
    let spread = ratings.clone().max().unwrap_or(0) - ratings.min().unwrap_or(0);
    if grouping.spread != Some(spread as u32) {
        problems.push(format!(
            "grouping spread {:?}, not {spread}",
            grouping.spread
        ));
    }
    for &i in &m.members {
        let c = &players[i];
        for key in &rules.exact {
            if c.properties.str(key) != a.properties.str(key) {
                problems.push(format!("player {i}: {key} differs"));
            }
        }
        let same_region = c.region == a.region;
        let fell_back = waited(a) >= fallback_ms
            && waited(c) >= fallback_ms
            && c.best_other() == Some(REGIONS[a.region]);
        if !same_region && !fell_back {
            problems.push(format!(
                "player {i}: region {} in a {} match",
                REGIONS[c.region], REGIONS[a.region]
            ));
        }
        let d = c.rating.abs_diff(a.rating);
        if d > u64::from(rules.window_after(waited(a)))
            || d > u64::from(rules.window_after(waited(c)))
        {
            problems.push(format!(
                "player {i}: rating {} vs anchor {}",
                c.rating, a.rating
            ));
        }
    }
}

/// Prints one run's figures; returns its violations.
fn report(
    label: &str,
    players: &[Player],
    mode: &ModeConfig,
    rules: &MatchRules,
    run: &Run,
) -> usize {
    let shape = shape(mode);
    let mut problems = Vec::new();
    let mut seen = vec![false; players.len()];
    let mut twice = 0;
    let mut spreads = Vec::new();
    let mut waits = Vec::new();
    let (mut cross_region, mut partial) = (0, 0);
    for m in &run.matches {
        for &i in &m.members {
            if std::mem::replace(&mut seen[i], true) {
                twice += 1;
            }
            waits.push(m.pass_ms - players[i].arrival_ms);
        }
        let ratings = m.members.iter().map(|&i| players[i].rating);
        spreads.push(ratings.clone().max().unwrap_or(0) - ratings.min().unwrap_or(0));
        let anchor_region = players[m.members[0]].region;
        if m.members
            .iter()
            .any(|&i| players[i].region != anchor_region)
        {
            cross_region += 1;
        }
        if m.members.len() < shape.players {
            partial += 1;
        }
        // The matcher's own check, on candidates rebuilt from what was generated.
        let candidates: Vec<Candidate<'_>> = m
            .members
            .iter()
            .map(|&i| Candidate {
                enqueued_ms: BASE_MS + players[i].arrival_ms,
                tie: players[i].ticket.0,
                properties: &players[i].properties,
                party: None,
                player_id: i as u64 + 1,
            })
            .collect();
        let group = Group {
            members: (0..m.members.len()).collect(),
            grouping: m.grouping.clone().unwrap_or_default(),
        };
        if let Err(e) =
            matching::keeps_rules(&candidates, rules, shape, BASE_MS + m.pass_ms, &group)
        {
            problems.push(format!("keeps_rules at {} ms: {e}", m.pass_ms));
        }
        check_by_hand(players, rules, shape, m, &mut problems);
    }
    let matched = seen.iter().filter(|s| **s).count();
    if matched + run.left_queued != players.len() {
        problems.push(format!(
            "{matched} matched + {} queued != {} players",
            run.left_queued,
            players.len()
        ));
    }
    spreads.sort_unstable();
    waits.sort_unstable();
    let mut pass_wall = run.pass_wall.clone();
    pass_wall.sort_unstable();
    let mut step_wall = run.step_wall.clone();
    step_wall.sort_unstable();
    let max_window = i64::from(rules.max_window);
    let (spread_median, spread_p99) = (pct(&spreads, 50.0), pct(&spreads, 99.0));
    let wait_p99 = pct(&waits, 99.0);
    let interval = Duration::from_millis(PASS_MS);

    println!("\n== matchmaking quality: {label} ==");
    println!(
        "population: {} players over {:.0} s ({ARRIVALS_PER_S}/s), ratings N(1500, 300), regions {REGIONS:?}, version {VERSION}; mode {MODE} ({} players, min {}, {} s wait)",
        players.len(),
        players.len() as f64 / ARRIVALS_PER_S as f64,
        shape.players,
        shape.min_players,
        shape.wait_ms / 1000,
    );
    println!(
        "passes: {} every {PASS_MS} ms simulated, last at {:.2} s simulated; peak queue {}",
        run.passes,
        run.end_ms as f64 / 1000.0,
        run.peak_queued
    );
    println!(
        "matches formed: {}   players matched: {matched}   players left queued: {}",
        run.matches.len(),
        run.left_queued
    );
    let unmatched: Vec<String> = (0..players.len())
        .filter(|&i| !seen[i])
        .map(|i| {
            let p = &players[i];
            let waited = run.end_ms.saturating_sub(p.arrival_ms) as f64 / 1000.0;
            format!(
                "rating {} in {} ({waited:.1} s)",
                p.rating, REGIONS[p.region]
            )
        })
        .collect();
    if !unmatched.is_empty() {
        println!(
            "still queued at the end (not in the wait figures): {}",
            unmatched.join(", ")
        );
    }
    println!(
        "rating spread per match (max - min): median {spread_median} (target <= {TARGET_MEDIAN_SPREAD}: {}), p99 {spread_p99} (target <= {}: {}), max {}; matches with spread > {max_window}: {}",
        verdict(spread_median <= TARGET_MEDIAN_SPREAD),
        2 * max_window,
        verdict(spread_p99 <= 2 * max_window),
        spreads.last().copied().unwrap_or(0),
        spreads.iter().filter(|s| **s > max_window).count(),
    );
    println!(
        "wait per player (pass - arrival): median {:.2} s, p99 {:.2} s (target <= {} s: {}), max {:.2} s",
        pct(&waits, 50.0) as f64 / 1000.0,
        wait_p99 as f64 / 1000.0,
        TARGET_WAIT_P99_MS / 1000,
        verdict(wait_p99 <= TARGET_WAIT_P99_MS),
        waits.last().copied().unwrap_or(0) as f64 / 1000.0,
    );
    println!(
        "cross-region matches: {cross_region}   partial (short) matches: {partial}   sizes {}..={}",
        run.matches
            .iter()
            .map(|m| m.members.len())
            .min()
            .unwrap_or(0),
        run.matches
            .iter()
            .map(|m| m.members.len())
            .max()
            .unwrap_or(0),
    );
    println!(
        "constraint check (keeps_rules and by hand): {} violations, {twice} players in two matches",
        problems.len()
    );
    for p in problems.iter().take(10) {
        println!("  violation: {p}");
    }
    let pass_max = pass_wall.last().copied().unwrap_or_default();
    println!(
        "pass wall time (form_matches): median {:.3} ms, p99 {:.3} ms, max {:.3} ms; keeps up with the {PASS_MS} ms interval: {}",
        ms(pct(&pass_wall, 50.0)),
        ms(pct(&pass_wall, 99.0)),
        ms(pass_max),
        verdict(pct(&pass_wall, 99.0) < interval && pass_max < interval),
    );
    let step_max = step_wall.last().copied().unwrap_or_default();
    println!(
        "step wall time (its arrivals' enqueues + pass): median {:.3} ms, p99 {:.3} ms, max {:.3} ms; keeps up: {}",
        ms(pct(&step_wall, 50.0)),
        ms(pct(&step_wall, 99.0)),
        ms(step_max),
        verdict(pct(&step_wall, 99.0) < interval && step_max < interval),
    );
    problems.len() + twice
}

/// A throwaway `redis-server`, killed through its own `Child` handle when dropped.
struct RedisServer {
    child: Child,
    port: u16,
    dir: PathBuf,
}

impl RedisServer {
    /// Starts one on a free loopback port; `Err` says why not.
    fn start() -> Result<RedisServer, String> {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(|e| format!("no free port: {e}"))?
            .port();
        let dir = std::env::temp_dir().join(format!(
            "tickroom-bench-redis-{}-{port}",
            std::process::id()
        ));
        std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {dir:?}: {e}"))?;
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no", "--daemonize", "no"])
            .arg("--dir")
            .arg(&dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn();
        match child {
            Ok(child) => Ok(RedisServer { child, port, dir }),
            Err(e) => {
                let _ = std::fs::remove_dir_all(&dir);
                if e.kind() == std::io::ErrorKind::NotFound {
                    Err("redis-server is not on PATH".into())
                } else {
                    Err(format!("cannot start redis-server: {e}"))
                }
            }
        }
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Runs the simulation through a fresh Redis; `Err` says why it was skipped.
async fn redis_run(
    players: &[Player],
    mode: &ModeConfig,
    rules: &MatchRules,
) -> Result<Run, String> {
    let server = RedisServer::start()?;
    let deadline = Instant::now() + REDIS_START_DEADLINE;
    let dir = loop {
        match RedisDirectory::connect(&server.url(), "bench:").await {
            Ok(dir) => break dir,
            Err(e) if Instant::now() >= deadline => {
                return Err(format!("redis-server did not answer: {e}"));
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    };
    let run = simulate(dir.as_ref(), players, mode, rules).await;
    drop(dir);
    drop(server);
    Ok(run)
}

fn main() {
    let bench = std::env::args().any(|a| a == "--bench");
    let modes = Modes::embedded();
    let mode = modes.by_name(MODE).expect("the ranked mode").clone();
    let rules = mode
        .matchmaking
        .clone()
        .expect("ranked has matchmaking rules");
    let players = population(&rules, if bench { ARRIVAL_MS } else { TEST_ARRIVAL_MS });
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");

    let memory = InMemoryDirectory::new();
    let mem_run = runtime.block_on(simulate(memory.as_ref(), &players, &mode, &rules));
    drop(memory);
    let mut violations = report("in-memory directory", &players, &mode, &rules, &mem_run);
    if bench {
        match runtime.block_on(redis_run(&players, &mode, &rules)) {
            Ok(run) => violations += report("Redis directory", &players, &mode, &rules, &run),
            Err(why) => println!("\n== matchmaking quality: Redis directory skipped: {why} =="),
        }
    } else {
        println!("\n== matchmaking quality: Redis directory skipped: test mode (no --bench) ==");
    }
    println!();
    assert_eq!(violations, 0, "matches broke the rules (see above)");

    let mut c = Criterion::default().configure_from_args();
    steady_state_pass(&mut c, &players, &mode, &rules, &mem_run.snapshot);
    c.final_summary();
}

/// One formation pass over the queue the in-memory simulation held at `SNAPSHOT_MS`: the
/// pure matcher, and the in-memory directory's whole pass (placement included).
fn steady_state_pass(
    c: &mut Criterion,
    players: &[Player],
    mode: &ModeConfig,
    rules: &MatchRules,
    snapshot: &[usize],
) {
    if snapshot.is_empty() {
        return;
    }
    let now_ms = BASE_MS + SNAPSHOT_MS;
    let candidates: Vec<Candidate<'_>> = snapshot
        .iter()
        .map(|&i| Candidate {
            enqueued_ms: BASE_MS + players[i].arrival_ms,
            tie: players[i].ticket.0,
            properties: &players[i].properties,
            party: None,
            player_id: i as u64 + 1,
        })
        .collect();
    let formed = matching::form(&candidates, rules, shape(mode), now_ms, usize::MAX);
    println!(
        "steady-state queue at {} s simulated: {} tickets, {} matches form from it",
        SNAPSHOT_MS / 1000,
        snapshot.len(),
        formed.len()
    );
    let queued = || {
        let dir = InMemoryDirectory::new();
        for i in 0..ROOM_SERVERS {
            dir.register_server_now(room_server(i), Duration::from_secs(3600))
                .expect("register");
        }
        for &i in snapshot {
            dir.enqueue_now(queue_entry(players, i)).expect("enqueue");
        }
        dir
    };
    let mut group = c.benchmark_group("matchmaking_quality");
    group.sample_size(20);
    group.warm_up_time(Duration::from_secs(1));
    group.measurement_time(Duration::from_secs(3));
    group.bench_function("matcher_form_steady_state_queue", |b| {
        b.iter(|| {
            matching::form(
                black_box(&candidates),
                rules,
                shape(mode),
                now_ms,
                usize::MAX,
            )
        })
    });
    // A backlog: the first `RULES_SNAPSHOT_TICKETS` players queued with no pass between
    // (the most one Redis pass considers), formed at the last one's arrival.
    let backlog: Vec<Candidate<'_>> = players
        .iter()
        .take(RULES_SNAPSHOT_TICKETS)
        .map(|p| Candidate {
            enqueued_ms: BASE_MS + p.arrival_ms,
            tie: p.ticket.0,
            properties: &p.properties,
            party: None,
            player_id: 0,
        })
        .collect();
    let backlog_now_ms = BASE_MS + backlog.last().map_or(0, |c| c.enqueued_ms - BASE_MS);
    let formed = matching::form(&backlog, rules, shape(mode), backlog_now_ms, usize::MAX);
    println!(
        "backlog: {} tickets queued at once, {} matches form from it",
        backlog.len(),
        formed.len()
    );
    group.bench_function("matcher_form_backlog", |b| {
        b.iter(|| {
            matching::form(
                black_box(&backlog),
                rules,
                shape(mode),
                backlog_now_ms,
                usize::MAX,
            )
        })
    });
    group.bench_function("memory_pass_steady_state_queue", |b| {
        b.iter_batched(
            queued,
            |dir| {
                let f = dir.form_matches_now(&request(mode, rules, SNAPSHOT_MS));
                black_box(f.matches.len());
                // Return the directory so its drop is not timed.
                (dir, f)
            },
            BatchSize::PerIteration,
        )
    });
    group.finish();
}
