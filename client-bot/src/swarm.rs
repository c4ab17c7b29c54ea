//! `swarm`: many bots on one multi-threaded runtime (a task per bot), started evenly over the
//! ramp, each playing for the duration; a progress bar while they run, a hard deadline after
//! which stragglers are aborted, then the report.

use std::io::IsTerminal;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};
use tickroom_protocol::connect::{GatewayClient, QuicClient, TransportKind};
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::bot::{bot_device_id, run_bot, BotConfig, BotContext, Source};
use crate::cli::{SourceAddrs, SwarmArgs, SwarmTransport, BOTS_PER_SOURCE_ADDR};
use crate::error::BotError;
use crate::game_bot::GameBotFactory;
use crate::link::{LinkConfig, DEFAULT_MEAN_BURST_LEN};
use crate::netns::kernel_loss_from_env;
use crate::report::{process_cpu_time, scrape_all, LinkReport, Report, ReportInputs};
use crate::stats::{BotOutcome, LiveStats, Measurements};

/// Slack after ramp + duration before the swarm aborts whatever still runs.
pub const HARD_DEADLINE_SLACK: Duration = Duration::from_secs(30);
/// Slack beyond a mode's `matchmaking_wait_s` for the formation, the join and the bot's margin.
const MATCH_WAIT_SLACK: Duration = Duration::from_secs(15);
/// Bots give up by themselves this long before the hard deadline, so they report cleanly.
const BOT_GIVE_UP_MARGIN: Duration = Duration::from_secs(5);
/// How often the progress bar refreshes.
const PROGRESS_PERIOD: Duration = Duration::from_millis(500);

/// The swarm's result.
#[derive(Debug)]
pub struct SwarmResult {
    /// The report (also written to `--report`).
    pub report: Report,
    /// True when errors ≤ `--max-errors` and at least one bot joined.
    pub ok: bool,
    /// Every bot's measurements merged (for the counters the report has no key for).
    pub totals: Measurements,
}

impl SwarmResult {
    /// One line of the counters outside the report: chaos drops, desyncs, link losses.
    pub fn counters_line(&self) -> String {
        let t = &self.totals;
        format!(
            "  also          chaos drops {}  desyncs {}  late frame inputs {}  link-dropped {}  bad data {}  refused messages {}  snapshots {}  frames {}",
            t.drops, t.desyncs, t.late_inputs, t.link_dropped, t.bad_data, t.refused, t.snapshots, t.frames
        )
    }
}

/// Runs the swarm described by `args`, each bot playing the game `factory` picks per room.
pub async fn run_swarm(args: &SwarmArgs, factory: GameBotFactory) -> anyhow::Result<SwarmResult> {
    anyhow::ensure!(args.bots > 0, "--bots must be at least 1");
    let started = Instant::now();
    let cpu_at_start = process_cpu_time();
    // The servers' CPU before the first bot, so the report states their cost per bot too.
    let server_at_start = scrape_all(&args.metrics_urls()).await;
    let (hard_deadline, give_up_at) = run_deadlines(
        started,
        args.ramp,
        args.duration,
        matchmaking_wait(&args.mode),
    );
    let base_seed = args.seed.unwrap_or_else(rand::random);
    let live = Arc::new(LiveStats::default());
    let (stop_tx, stop_rx) = watch::channel(false);
    let ctrl_c = tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            let _ = stop_tx.send(true);
        }
    });
    anyhow::ensure!(!args.server.is_empty(), "--server is required");
    let sources = sources(args)?;
    let ctx = BotContext {
        sources: sources.clone(),
        live: live.clone(),
        stop: stop_rx.clone(),
        factory,
    };
    let link = LinkConfig {
        latency: args.latency,
        jitter: args.jitter,
        loss: args.loss,
        mean_burst_len: DEFAULT_MEAN_BURST_LEN,
    };
    let progress = show_progress(args).then(|| {
        live.window_on.store(true, Ordering::Relaxed);
        Progress::start(args.bots, live.clone())
    });

    let mut set = JoinSet::new();
    for index in 0..args.bots {
        let at = started + args.ramp.mul_f64(index as f64 / args.bots as f64);
        tokio::time::sleep_until(at.into()).await;
        if *stop_rx.borrow() {
            break;
        }
        let config = BotConfig {
            index,
            device_id: bot_device_id(base_seed, index),
            mode: args.mode.clone(),
            transport: args.transport.for_bot(index),
            input_hz: args.input_hz,
            ping_interval: args.ping_interval,
            play_for: args.duration,
            link,
            drop_per_s: args.drop_rate.per_second,
            seed: split_mix(base_seed.wrapping_add(index as u64)),
            give_up_at,
            show_queue: false,
        };
        set.spawn(run_bot(config, ctx.clone()));
    }

    let (outcomes, aborted) = collect_until(set, hard_deadline, |panicked| {
        lost_outcome(if panicked {
            BotError::Panic
        } else {
            BotError::Aborted
        })
    })
    .await;
    live.errors.fetch_add(aborted as u64, Ordering::Relaxed);
    ctrl_c.abort();
    if let Some(p) = progress {
        p.finish().await;
    }

    let cpu = match (cpu_at_start, process_cpu_time()) {
        (Some(a), Some(b)) => Some(b.saturating_sub(a)),
        _ => None,
    };
    let server = scrape_all(&args.metrics_urls()).await;
    let report = Report::build(ReportInputs {
        transport: args.transport.name(),
        mode: &args.mode,
        bots: args.bots,
        duration: args.duration,
        outcomes: &outcomes,
        cpu,
        server_at_start,
        server,
    })
    .with_link(LinkReport::new(&link, kernel_loss_from_env()))
    .with_gateway_retries(
        sources
            .iter()
            .flat_map(|s| s.gateways.iter())
            .map(GatewayClient::retries)
            .sum(),
    );
    if let Some(path) = &args.report {
        std::fs::write(path, report.to_json() + "\n")
            .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", path.display()))?;
    }
    let ok = report.errors <= args.max_errors && report.joined > 0;
    let mut totals = Measurements::default();
    for o in &outcomes {
        totals.merge(&o.measurements);
    }
    Ok(SwarmResult { report, ok, totals })
}

/// When a run of bots started at `started` must be over (the hard deadline), and when each bot
/// gives up on its own a little before that. The slack covers the wait for a match: at least
/// `HARD_DEADLINE_SLACK`, and longer for a mode whose matches may wait longer (a rated mode's
/// `matchmaking_wait_s`, before a short match may start).
pub(crate) fn run_deadlines(
    started: Instant,
    ramp: Duration,
    duration: Duration,
    matchmaking_wait: Duration,
) -> (Instant, Instant) {
    let slack = HARD_DEADLINE_SLACK.max(matchmaking_wait + MATCH_WAIT_SLACK);
    let hard = started + ramp + duration + slack;
    (hard, hard.checked_sub(BOT_GIVE_UP_MARGIN).unwrap_or(hard))
}

/// How long a mode of the embedded modes file may keep a player waiting before a short match
/// starts (`matchmaking_wait_s`; zero for a mode the file does not know).
pub(crate) fn matchmaking_wait(mode: &str) -> Duration {
    tickroom_game::modes::Modes::embedded()
        .by_name(mode)
        .map_or(Duration::ZERO, |m| {
            Duration::from_secs(u64::from(m.matchmaking_wait_s))
        })
}

/// Collects the bots' results until `hard_deadline`; a bot that panicked (`lost(true)`) or is
/// still running then (aborted, `lost(false)`) gets a lost result. Returns the results and
/// how many were aborted at the deadline.
pub(crate) async fn collect_until<T: 'static>(
    mut set: JoinSet<T>,
    hard_deadline: Instant,
    lost: impl Fn(bool) -> T,
) -> (Vec<T>, usize) {
    let mut results = Vec::with_capacity(set.len());
    loop {
        tokio::select! {
            next = set.join_next() => match next {
                Some(Ok(result)) => results.push(result),
                Some(Err(e)) => results.push(lost(e.is_panic())),
                None => break,
            },
            () = tokio::time::sleep_until(hard_deadline.into()) => break,
        }
    }
    let aborted = set.len();
    set.abort_all();
    while set.join_next().await.is_some() {}
    results.extend((0..aborted).map(|_| lost(false)));
    (results, aborted)
}

/// The outcome of a bot whose task did not return (aborted at the deadline or panicked).
fn lost_outcome(error: BotError) -> BotOutcome {
    BotOutcome {
        error: Some(error),
        ..BotOutcome::default()
    }
}

fn show_progress(args: &SwarmArgs) -> bool {
    !args.no_progress && std::io::stderr().is_terminal()
}

/// The addresses the swarm's bots leave from, each with its gateway clients and QUIC endpoint.
fn sources(args: &SwarmArgs) -> anyhow::Result<Arc<[Source]>> {
    let first = args.server.first().map_or("", String::as_str);
    let loopback_v4 = host_of(first).is_some_and(|h| {
        h.parse::<std::net::Ipv4Addr>()
            .is_ok_and(|ip| ip.is_loopback())
    });
    let count = match args.source_addrs {
        SourceAddrs::Auto if loopback_v4 => args.bots.div_ceil(BOTS_PER_SOURCE_ADDR).clamp(1, 254),
        SourceAddrs::Auto => 1,
        SourceAddrs::Count(n) => {
            anyhow::ensure!(
                n == 1 || loopback_v4,
                "--source-addrs {n} needs a server on an IPv4 loopback address (127.x.x.x)"
            );
            usize::from(n)
        }
    };
    let quic_wanted = args.transport != SwarmTransport::Ws;
    let pin = args.tls_pin.as_ref();
    if count == 1 {
        let gateways = args
            .server
            .iter()
            .map(|s| GatewayClient::with_options(s, None, pin))
            .collect::<Result<Arc<[_]>, _>>()?;
        let quic = quic_wanted
            .then(|| QuicClient::new(family_of(first)))
            .transpose()?;
        return Ok(Arc::new([Source::system(gateways, quic)]));
    }
    (0..count)
        .map(|k| {
            let ip = IpAddr::from([127, 0, 0, 1 + k as u8]);
            let gateways = args
                .server
                .iter()
                .map(|s| GatewayClient::with_options(s, Some(ip), pin))
                .collect::<Result<Arc<[_]>, _>>()?;
            let quic = quic_wanted.then(|| QuicClient::bind(ip)).transpose()?;
            Ok(Source {
                local_ip: Some(ip),
                gateways,
                quic,
            })
        })
        .collect()
}

/// The host part of a gateway URL (`http://127.0.0.1:7700` → `127.0.0.1`).
fn host_of(server_url: &str) -> Option<&str> {
    let rest = server_url.split_once("://").map_or(server_url, |(_, r)| r);
    let authority = rest.split('/').next()?;
    if authority.starts_with('[') {
        return authority.split(']').next().map(|h| &h[1..]);
    }
    authority.split(':').next()
}

/// An address of the server's family, for binding the shared QUIC endpoint.
fn family_of(server_url: &str) -> SocketAddr {
    let host = server_url
        .split_once("://")
        .map_or(server_url, |(_, rest)| rest);
    let v4: SocketAddr = SocketAddr::from(([127, 0, 0, 1], 0));
    let v6: SocketAddr = SocketAddr::from(([0u16, 0, 0, 0, 0, 0, 0, 1], 0));
    if host.starts_with('[') {
        v6
    } else {
        v4
    }
}

/// SplitMix64 finaliser: turns consecutive seeds into unrelated ones.
fn split_mix(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The progress bar and the task refreshing it.
struct Progress {
    bar: ProgressBar,
    done: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl Progress {
    fn start(bots: usize, live: Arc<LiveStats>) -> Progress {
        let bar = ProgressBar::new(bots as u64);
        let style =
            ProgressStyle::with_template("{elapsed_precise} [{bar:30}] {pos}/{len} started  {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> ");
        bar.set_style(style);
        let (done, mut done_rx) = watch::channel(false);
        let shown = bar.clone();
        let task = tokio::spawn(async move {
            let mut last = (Instant::now(), 0u64);
            let mut timer = tokio::time::interval(PROGRESS_PERIOD);
            loop {
                tokio::select! {
                    _ = timer.tick() => {}
                    _ = done_rx.changed() => break,
                }
                let now = Instant::now();
                let messages = live.messages.load(Ordering::Relaxed);
                let secs = now.duration_since(last.0).as_secs_f64().max(1e-3);
                let rate = messages.saturating_sub(last.1) as f64 / secs;
                last = (now, messages);
                let p99 = live
                    .take_window_p99_ms()
                    .map_or_else(|| "-".to_string(), |v| format!("{v:.1}"));
                shown.set_position(live.started.load(Ordering::Relaxed) as u64);
                shown.set_message(format!(
                    "live {}  {:.0} msg/s  p99 {} ms  errors {}",
                    live.in_room.load(Ordering::Relaxed),
                    rate,
                    p99,
                    live.errors.load(Ordering::Relaxed)
                ));
            }
        });
        Progress { bar, done, task }
    }

    async fn finish(self) {
        let _ = self.done.send(true);
        let _ = self.task.await;
        self.bar.finish_and_clear();
    }
}

/// The transport of every bot when not mixed (for logs).
pub fn transport_name(kind: TransportKind) -> &'static str {
    match kind {
        TransportKind::Quic => "quic",
        TransportKind::Ws => "ws",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A first-come mode keeps the usual slack; a rated mode, whose short matches wait 30 s,
    /// gets the wait and more, so its bots are not counted as timed out for waiting.
    #[test]
    fn the_deadline_leaves_room_for_the_modes_wait_for_a_match() {
        let t0 = Instant::now();
        let (ramp, play) = (Duration::from_secs(10), Duration::from_secs(20));
        let slack =
            |mode: &str| run_deadlines(t0, ramp, play, matchmaking_wait(mode)).0 - t0 - ramp - play;
        assert_eq!(slack("arena"), HARD_DEADLINE_SLACK);
        assert_eq!(slack("no-such-mode"), HARD_DEADLINE_SLACK);
        assert_eq!(slack("ranked"), Duration::from_secs(30) + MATCH_WAIT_SLACK);
        let (hard, give_up) = run_deadlines(t0, ramp, play, Duration::ZERO);
        assert_eq!(hard - give_up, BOT_GIVE_UP_MARGIN);
    }

    #[test]
    fn family_follows_the_url() {
        assert!(family_of("http://127.0.0.1:7700").is_ipv4());
        assert!(family_of("http://[::1]:7700").is_ipv6());
        assert!(family_of("localhost:1").is_ipv4());
    }

    fn args(line: &[&str]) -> SwarmArgs {
        use clap::Parser;
        let cli =
            crate::cli::Cli::try_parse_from(["tickroom-bot", "swarm"].iter().chain(line)).unwrap();
        match cli.command {
            crate::cli::Command::Swarm(s) => s,
            _ => unreachable!("a swarm was parsed"),
        }
    }

    #[tokio::test]
    async fn bots_spread_over_loopback_addresses() {
        let ips = |line: &[&str]| {
            sources(&args(line))
                .unwrap()
                .iter()
                .map(|s| s.local_ip.map(|ip| ip.to_string()))
                .collect::<Vec<_>>()
        };
        let base = ["--server", "http://127.0.0.1:7700", "--transport", "ws"];
        assert_eq!(ips(&[&base[..], &["--bots", "8"]].concat()), [None]);
        let hundred = ips(&[&base[..], &["--bots", "100"]].concat());
        assert_eq!(hundred.len(), 13, "one address per 8 bots");
        assert_eq!(hundred[12].as_deref(), Some("127.0.0.13"));
        let many = ips(&[&base[..], &["--bots", "4000"]].concat());
        assert_eq!(many.len(), 254, "127.0.0.1 to 127.0.0.254");
        let three = ips(&[&base[..], &["--source-addrs", "3"]].concat());
        assert_eq!(three[0].as_deref(), Some("127.0.0.1"));
        assert_eq!(three[2].as_deref(), Some("127.0.0.3"));
        let remote = ["--server", "http://10.0.0.1:7700", "--bots", "500"];
        assert_eq!(
            ips(&remote),
            [None],
            "auto never spreads to a remote server"
        );
        assert!(sources(&args(&[&remote[..], &["--source-addrs", "2"]].concat())).is_err());
        let quic = sources(&args(&[
            "--server",
            "http://127.0.0.1:1",
            "--source-addrs",
            "2",
        ]))
        .unwrap();
        let bound = quic[1]
            .quic
            .as_ref()
            .and_then(QuicClient::local_addr)
            .unwrap();
        assert_eq!(bound.ip().to_string(), "127.0.0.2");
        assert_eq!(host_of("http://[::1]:7700/x"), Some("::1"));
        assert!(crate::cli::parse_source_addrs("0").is_err());
        assert!(crate::cli::parse_source_addrs("255").is_err());
    }

    #[test]
    fn seeds_differ() {
        assert_ne!(split_mix(1), split_mix(2));
    }
}
