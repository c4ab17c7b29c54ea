//! Command-line flags of `tickroom-bot` (`play`, `swarm`) and the parsers for durations
//! (`10s`, `500ms`, `2m`), percentages (`2%`) and drop rates (`1%/min`).

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};
use tickroom_protocol::api::check_device_id;
use tickroom_protocol::connect::{CertCheck, TransportKind};

/// tickroom-bot: headless tickroom clients for playing and load testing.
#[derive(Debug, Parser)]
#[command(name = "tickroom-bot", version)]
pub struct Cli {
    /// What to run.
    #[command(subcommand)]
    pub command: Command,
    /// Trace every session event (RUST_LOG overrides the filter).
    #[arg(short, long, global = true)]
    pub verbose: bool,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// One bot: log in, queue, join, play (the game's bot), leave and print what it saw.
    Play(PlayArgs),
    /// Many bots on one runtime: ramp up, play, leave, print a table and write a JSON report.
    Swarm(SwarmArgs),
    /// A series of swarms, one per `--steps` size: one CSV row per step and a plot of RTT and
    /// both CPU costs (server and bot, per player-second) against the number of players.
    Sweep(SweepArgs),
    /// The floor: a minimal WebSocket room server (no auth, no game: rooms of 10 broadcasting
    /// 120 bytes at 30 Hz) in its own process and bots for it; prints RTT and both CPU costs,
    /// the floor every run's cost is compared to.
    Floor(FloorArgs),
    /// The floor's server alone: prints its address and serves until stdin closes (`floor`
    /// starts it).
    #[command(hide = true)]
    FloorServer,
    /// Run a command where the kernel drops packets (network namespace + iptables, as root).
    ///
    /// Creates the namespace tickroom-loss-<pid> (or --name), brings its loopback up, adds
    /// `iptables -A INPUT -m statistic --mode random --probability P -j DROP` (and the same
    /// with ip6tables), runs COMMAND inside with TICKROOM_KERNEL_LOSS=P set (a swarm records
    /// it in its report as link.kernel_loss) and removes the namespace when COMMAND ends, when
    /// the setup fails, and on SIGINT/SIGTERM/SIGHUP (forwarded to COMMAND, which is waited
    /// for); processes still inside then are ended (TERM, then KILL).
    ///
    /// Unlike swarm's message-level conditioner (--latency/--jitter/--loss), this is real
    /// packet loss: TCP (WebSocket) retransmits and holds back every later message meanwhile,
    /// QUIC datagrams do not wait. The server and the bots must both run inside, e.g.:
    ///
    ///   tickroom-bot netns-loss --loss 2% -- scripts/netns-loss-swarms.sh target/release out \
    ///     --bots 200 --ramp 5s --duration 30s --mode arena
    ///
    /// Exit code: COMMAND's (128 + the signal when a signal ended it); 125 when the namespace
    /// could not be set up.
    #[command(verbatim_doc_comment)]
    NetnsLoss(crate::netns::NetnsLossArgs),
}

/// Flags of `sweep`: a swarm's flags (its `--bots` is replaced by each step), run once per step.
#[derive(Debug, Clone, Args)]
pub struct SweepArgs {
    /// The swarm run at every step.
    #[command(flatten)]
    pub swarm: SwarmArgs,
    /// Players per step, e.g. 250,500,1000,2000.
    #[arg(long, value_delimiter = ',', required = true)]
    pub steps: Vec<usize>,
    /// Where the CSV (one row per step) goes.
    #[arg(long, default_value = "sweep.csv")]
    pub csv: PathBuf,
    /// Where the plot (SVG) goes.
    #[arg(long, default_value = "sweep.svg")]
    pub plot: PathBuf,
    /// After each step's swarm, run the floor (`floor`) at the same size, ramp and duration:
    /// its RTT p99 and CPU costs, and tickroom's CPU as a ratio to them, are added to each row,
    /// the CSV and the plot.
    #[arg(long)]
    pub floor: bool,
}

/// Flags of `floor`.
#[derive(Debug, Clone, Args)]
pub struct FloorArgs {
    /// Number of bots (players).
    #[arg(long, default_value_t = 200)]
    pub bots: usize,
    /// Bots start evenly spread over this time.
    #[arg(long, value_parser = parse_duration, default_value = "5s")]
    pub ramp: Duration,
    /// How long each bot plays once connected.
    #[arg(long, value_parser = parse_duration, default_value = "30s")]
    pub duration: Duration,
    /// Exit 1 when more bots than this failed.
    #[arg(long, default_value_t = 0)]
    pub max_errors: u64,
    /// Write the JSON report here.
    #[arg(long)]
    pub report: Option<PathBuf>,
}

impl Default for FloorArgs {
    /// The command line's defaults: 200 bots, ramp 5 s, 30 s each.
    fn default() -> FloorArgs {
        FloorArgs {
            bots: 200,
            ramp: Duration::from_secs(5),
            duration: Duration::from_secs(30),
            max_errors: 0,
            report: None,
        }
    }
}

/// The mode `play` and `swarm` queue for without `--mode`.
pub const DEFAULT_MODE: &str = "arena";

/// Flags of `play`.
#[derive(Debug, Clone, Args)]
pub struct PlayArgs {
    /// Gateway base URL, e.g. http://127.0.0.1:7700.
    #[arg(long)]
    pub server: String,
    /// Game mode to queue for.
    #[arg(long, default_value = DEFAULT_MODE)]
    pub mode: String,
    /// Transport to the room server.
    #[arg(long, value_enum, default_value_t = TransportArg::Ws)]
    pub transport: TransportArg,
    /// How long to play once the match started (e.g. 10s, 500ms, 2m).
    #[arg(long, value_parser = parse_duration, default_value = "10s")]
    pub duration: Duration,
    /// Device id to log in with: at least 128 random bits, written as 32 hex digits or 22
    /// base64url characters (default: a random one).
    #[arg(long, value_parser = parse_device_id)]
    pub device_id: Option<String>,
    /// With an `https://` server: pin its certificate by this hex SHA-256 fingerprint (a
    /// `--tls-self-signed` server's, from its log or ready file); default: the web's public
    /// certificate authorities.
    #[arg(long, value_parser = parse_tls_pin)]
    pub tls_pin: Option<CertCheck>,
    /// Decode the sample arena's snapshots and print how far the other players moved (shows
    /// another client's inputs taking effect).
    #[arg(long)]
    pub watch: bool,
}

/// Flags of `swarm`.
#[derive(Debug, Clone, Args)]
pub struct SwarmArgs {
    /// Gateway base URL, e.g. http://127.0.0.1:7700; several (comma-separated or the flag
    /// repeated) spread the bots: bot i uses gateway i % n.
    #[arg(long, required = true, value_delimiter = ',')]
    pub server: Vec<String>,
    /// Number of bots.
    #[arg(long, default_value_t = 10)]
    pub bots: usize,
    /// Bots start evenly spread over this time.
    #[arg(long, value_parser = parse_duration, default_value = "10s")]
    pub ramp: Duration,
    /// How long each bot plays once its match started.
    #[arg(long, value_parser = parse_duration, default_value = "60s")]
    pub duration: Duration,
    /// Transport: every bot over QUIC, over WebSocket, or alternating.
    #[arg(long, value_enum, default_value_t = SwarmTransport::Quic)]
    pub transport: SwarmTransport,
    /// Game mode to queue for.
    #[arg(long, default_value = DEFAULT_MODE)]
    pub mode: String,
    /// State-sync inputs per second (default: the room's tick rate; 0: none, an idle player
    /// that only pings); lockstep sends one per frame.
    #[arg(long)]
    pub input_hz: Option<u32>,
    /// Time between a bot's pings: its RTT samples, and the keepalive of an idle bot
    /// (`--input-hz 0`), whose pongs are all it hears in a quiet room. Keep it under the
    /// server's `--idle-timeout-ms` (15 s by default); up to 30 s.
    #[arg(long, value_parser = parse_ping_interval, default_value = "1s")]
    pub ping_interval: Duration,
    /// Message-level conditioner (in the bot, not the network): one-way latency added to
    /// each message in each direction. For real packet loss see `netns-loss`.
    #[arg(long, value_parser = parse_duration, default_value = "0ms")]
    pub latency: Duration,
    /// Message-level conditioner: uniform jitter (±) added to each message's latency.
    #[arg(long, value_parser = parse_duration, default_value = "0ms")]
    pub jitter: Duration,
    /// Message-level conditioner: average loss of unreliable messages (bursty,
    /// Gilbert–Elliott), e.g. 2%; whole messages, never a transport's packets, so TCP never
    /// retransmits (real loss: `netns-loss`).
    #[arg(long, value_parser = parse_percent, default_value = "0%")]
    pub loss: f64,
    /// Chaos: the chance per minute that each bot drops its connection, e.g. 1%/min.
    #[arg(long, value_parser = parse_drop_rate, default_value = "0%/min")]
    pub drop_rate: DropRate,
    /// Exit 1 when more errors than this happened.
    #[arg(long, default_value_t = 0)]
    pub max_errors: u64,
    /// Write the JSON report here.
    #[arg(long)]
    pub report: Option<PathBuf>,
    /// Server metrics to scrape at the end (the server's --metrics listener + /metrics),
    /// repeatable or comma-separated (default: port 7703 of the first gateway's host, the
    /// metrics listener of a server run with its defaults); several servers' figures are
    /// combined (worst tick p99 and RSS, summed overruns).
    #[arg(long, value_delimiter = ',')]
    pub metrics_url: Vec<String>,
    /// No progress bar (it is also off when stderr is not a terminal).
    #[arg(long)]
    pub no_progress: bool,
    /// Seed for the bots' inputs, link conditioners and chaos (default: random).
    #[arg(long)]
    pub seed: Option<u64>,
    /// Loopback source addresses to spread the bots over, as real players come from many
    /// addresses: N uses 127.0.0.1 to 127.0.0.N (bot i leaves from address i % N); `auto`
    /// (the default) uses one address per 8 bots against an IPv4 loopback server, so no
    /// address nears the server's per-IP cap (64) even with several swarms at once, and the
    /// system's choice otherwise.
    #[arg(long, value_parser = parse_source_addrs, default_value = "auto")]
    pub source_addrs: SourceAddrs,
    /// With `https://` gateways: pin their certificate by this hex SHA-256 fingerprint (a
    /// `--tls-self-signed` server's); default: the web's public certificate authorities.
    #[arg(long, value_parser = parse_tls_pin)]
    pub tls_pin: Option<CertCheck>,
}

/// Parses a hex SHA-256 certificate fingerprint into a pin.
pub fn parse_tls_pin(text: &str) -> Result<CertCheck, String> {
    CertCheck::pinned_hex(text.trim())
        .map_err(|_| format!("`{text}` is not a hex SHA-256 fingerprint (64 hex digits)"))
}

/// How many loopback source addresses a swarm spreads its bots over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourceAddrs {
    /// One per [`BOTS_PER_SOURCE_ADDR`] bots against an IPv4 loopback server.
    Auto,
    /// Exactly this many (1 to 254).
    Count(u8),
}

/// Bots per source address that `--source-addrs auto` aims for: an eighth of the server's
/// default per-IP cap, so several swarms at once, and reconnects overlapping their old
/// connections, stay under it.
pub const BOTS_PER_SOURCE_ADDR: usize = 8;

/// Parses `auto` or a count of loopback addresses (1 to 254).
pub fn parse_source_addrs(text: &str) -> Result<SourceAddrs, String> {
    if text.trim() == "auto" {
        return Ok(SourceAddrs::Auto);
    }
    match text.trim().parse::<u8>() {
        Ok(n @ 1..=254) => Ok(SourceAddrs::Count(n)),
        _ => Err(format!(
            "`{text}` is neither `auto` nor a count from 1 to 254"
        )),
    }
}

/// A single-transport choice.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum TransportArg {
    /// WebSocket.
    Ws,
    /// QUIC.
    Quic,
}

impl From<TransportArg> for TransportKind {
    fn from(t: TransportArg) -> TransportKind {
        match t {
            TransportArg::Ws => TransportKind::Ws,
            TransportArg::Quic => TransportKind::Quic,
        }
    }
}

/// The swarm's transport choice.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SwarmTransport {
    /// Every bot over QUIC.
    Quic,
    /// Every bot over WebSocket.
    Ws,
    /// Even bots over QUIC, odd bots over WebSocket.
    Mixed,
}

impl SwarmTransport {
    /// The transport of bot number `index`.
    pub fn for_bot(self, index: usize) -> TransportKind {
        match self {
            SwarmTransport::Quic => TransportKind::Quic,
            SwarmTransport::Ws => TransportKind::Ws,
            SwarmTransport::Mixed if index.is_multiple_of(2) => TransportKind::Quic,
            SwarmTransport::Mixed => TransportKind::Ws,
        }
    }

    /// The name used in the report.
    pub fn name(self) -> &'static str {
        match self {
            SwarmTransport::Quic => "quic",
            SwarmTransport::Ws => "ws",
            SwarmTransport::Mixed => "mixed",
        }
    }
}

/// How often each bot drops its connection on purpose.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DropRate {
    /// Probability per bot per second.
    pub per_second: f64,
}

/// Parses `10s`, `500ms`, `2m`, `1h`, `250us`, `1.5s`.
/// Longest `--ping-interval`. The bot's server-silence timeout is at least twice its ping
/// interval, so one late pong does not end the session; the server's `--idle-timeout-ms`
/// (15 s by default) must be longer than the interval.
pub const MAX_PING_INTERVAL: Duration = Duration::from_secs(30);

/// Parses `--ping-interval`: a duration from 1 ms to [`MAX_PING_INTERVAL`].
pub fn parse_ping_interval(text: &str) -> Result<Duration, String> {
    let interval = parse_duration(text)?;
    if interval < Duration::from_millis(1) || interval > MAX_PING_INTERVAL {
        return Err(format!(
            "`{text}`: the ping interval must be from 1ms to {}s",
            MAX_PING_INTERVAL.as_secs()
        ));
    }
    Ok(interval)
}

pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .ok_or_else(|| format!("`{text}` needs a unit: us, ms, s, m or h"))?;
    let (number, unit) = text.split_at(split);
    let value: f64 = number
        .parse()
        .map_err(|_| format!("`{text}` is not a duration"))?;
    let seconds_per_unit = match unit {
        "us" => 1e-6,
        "ms" => 1e-3,
        "s" => 1.0,
        "m" | "min" => 60.0,
        "h" => 3600.0,
        _ => return Err(format!("unknown unit `{unit}` (use us, ms, s, m or h)")),
    };
    Duration::try_from_secs_f64(value * seconds_per_unit)
        .map_err(|_| format!("`{text}` is out of range"))
}

/// Checks a device id as the gateway will (at least 128 random bits, see
/// `tickroom_protocol::api::check_device_id`), so a bad one fails at start-up.
pub fn parse_device_id(text: &str) -> Result<String, String> {
    check_device_id(text)
        .map(|()| text.to_owned())
        .map_err(|e| format!("`{text}`: {e}"))
}

/// Parses `2%` or `0.5%` into a fraction (0.02, 0.005); 0–100 % only.
pub fn parse_percent(text: &str) -> Result<f64, String> {
    let number = text
        .trim()
        .strip_suffix('%')
        .ok_or_else(|| format!("`{text}` needs a % sign, e.g. 2%"))?;
    let value: f64 = number
        .trim()
        .parse()
        .map_err(|_| format!("`{text}` is not a percentage"))?;
    if !(0.0..=100.0).contains(&value) {
        return Err(format!("`{text}` is not between 0% and 100%"));
    }
    Ok(value / 100.0)
}

/// Parses `1%/min` or `0.1%/s` into a probability per second. Rates per minute or hour may
/// exceed 100 % (several drops per period on average) as long as the chance per second is ≤ 1.
pub fn parse_drop_rate(text: &str) -> Result<DropRate, String> {
    let (percent, per) = text
        .trim()
        .split_once('/')
        .ok_or_else(|| format!("`{text}` needs a period, e.g. 1%/min"))?;
    let number = percent
        .trim()
        .strip_suffix('%')
        .ok_or_else(|| format!("`{text}` needs a % sign, e.g. 1%/min"))?;
    let value: f64 = number
        .trim()
        .parse()
        .map_err(|_| format!("`{text}` is not a drop rate"))?;
    let seconds = match per.trim() {
        "s" | "sec" => 1.0,
        "min" | "m" => 60.0,
        "h" => 3600.0,
        other => return Err(format!("unknown period `{other}` (use s, min or h)")),
    };
    let per_second = value / 100.0 / seconds;
    if !(0.0..=1.0).contains(&per_second) {
        return Err(format!("`{text}` is not between 0 and 100%/s"));
    }
    Ok(DropRate { per_second })
}

impl SwarmArgs {
    /// The metrics endpoints to scrape: `--metrics-url`, else the default metrics listener on
    /// the first gateway's host.
    pub fn metrics_urls(&self) -> Vec<String> {
        if !self.metrics_url.is_empty() {
            return self.metrics_url.clone();
        }
        self.server
            .first()
            .and_then(|s| crate::report::default_metrics_url(s))
            .into_iter()
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn swarm(args: &[&str]) -> SwarmArgs {
        let cli = Cli::try_parse_from(["tickroom-bot", "swarm"].iter().chain(args)).unwrap();
        match cli.command {
            Command::Swarm(s) => s,
            _ => panic!("not a swarm"),
        }
    }

    #[test]
    fn several_gateways_and_metrics_urls() {
        let s = swarm(&[
            "--server",
            "http://a:1,http://b:2",
            "--server",
            "http://c:3",
        ]);
        assert_eq!(s.server, ["http://a:1", "http://b:2", "http://c:3"]);
        assert_eq!(s.metrics_urls(), ["http://a:7703/metrics"]);
        let s = swarm(&["--server", "http://127.0.0.1:7700/"]);
        assert_eq!(s.metrics_urls(), ["http://127.0.0.1:7703/metrics"]);
        let s = swarm(&["--server", "http://[::1]:7700"]);
        assert_eq!(s.metrics_urls(), ["http://[::1]:7703/metrics"]);
        let s = swarm(&[
            "--server",
            "http://a:1/",
            "--metrics-url",
            "http://r1/metrics",
            "--metrics-url",
            "http://r2/metrics,http://r3/metrics",
        ]);
        assert_eq!(
            s.metrics_urls(),
            [
                "http://r1/metrics",
                "http://r2/metrics",
                "http://r3/metrics"
            ]
        );
        assert!(Cli::try_parse_from(["tickroom-bot", "swarm"]).is_err());
    }

    #[test]
    fn an_idle_swarm_sends_no_inputs_and_pings_within_the_silence_timeout() {
        let s = swarm(&[
            "--server",
            "http://a:1",
            "--input-hz",
            "0",
            "--ping-interval",
            "4s",
        ]);
        assert_eq!(
            (s.input_hz, s.ping_interval),
            (Some(0), Duration::from_secs(4))
        );
        assert_eq!(
            swarm(&["--server", "http://a:1"]).ping_interval,
            Duration::from_secs(1)
        );
        for bad in ["31s", "0ms", "soon"] {
            assert!(parse_ping_interval(bad).is_err(), "{bad}");
        }
    }

    fn check_duration(text: &str, expect: Option<Duration>) {
        assert_eq!(parse_duration(text).ok(), expect, "{text}");
    }

    #[test]
    fn durations() {
        check_duration("10s", Some(Duration::from_secs(10)));
        check_duration("500ms", Some(Duration::from_millis(500)));
        check_duration("2m", Some(Duration::from_secs(120)));
        check_duration("1h", Some(Duration::from_secs(3600)));
        check_duration("1.5s", Some(Duration::from_millis(1500)));
        check_duration("250us", Some(Duration::from_micros(250)));
        check_duration("0ms", Some(Duration::ZERO));
        check_duration("10", None);
        check_duration("s", None);
        check_duration("10 parsecs", None);
        check_duration("-1s", None);
    }

    #[test]
    fn device_ids_are_checked_at_start_up() {
        let play = |id: &str| {
            let args = [
                "tickroom-bot",
                "play",
                "--server",
                "http://a:1",
                "--device-id",
                id,
            ];
            Cli::try_parse_from(args).map(|cli| match cli.command {
                Command::Play(p) => p.device_id,
                _ => panic!("not play"),
            })
        };
        let hex = "00112233445566778899aabbccddeeff";
        assert_eq!(play(hex).unwrap(), Some(hex.to_owned()));
        assert!(play("my-phone").is_err());
    }

    #[test]
    fn percents() {
        assert_eq!(parse_percent("2%"), Ok(0.02));
        assert_eq!(parse_percent("0%"), Ok(0.0));
        assert_eq!(parse_percent("100%"), Ok(1.0));
        assert!((parse_percent("0.5%").unwrap() - 0.005).abs() < 1e-12);
        assert!(parse_percent("2").is_err());
        assert!(parse_percent("101%").is_err());
        assert!(parse_percent("-1%").is_err());
        assert!(parse_percent("x%").is_err());
    }

    #[test]
    fn drop_rates() {
        let per_min = parse_drop_rate("1%/min").unwrap().per_second;
        assert!((per_min - 0.01 / 60.0).abs() < 1e-15);
        assert_eq!(parse_drop_rate("6%/s").unwrap().per_second, 0.06);
        assert!(parse_drop_rate("1%").is_err());
        assert!(parse_drop_rate("1%/week").is_err());
        assert!((parse_drop_rate("300%/min").unwrap().per_second - 0.05).abs() < 1e-12);
        assert!(parse_drop_rate("101%/s").is_err());
        assert!(parse_drop_rate("-1%/s").is_err());
    }

    #[test]
    fn mixed_alternates() {
        assert_eq!(SwarmTransport::Mixed.for_bot(0), TransportKind::Quic);
        assert_eq!(SwarmTransport::Mixed.for_bot(1), TransportKind::Ws);
        assert_eq!(SwarmTransport::Ws.for_bot(0), TransportKind::Ws);
    }

    #[test]
    fn floor_defaults_and_the_hidden_server() {
        use clap::CommandFactory;
        let Command::Floor(f) = Cli::try_parse_from(["tickroom-bot", "floor"])
            .unwrap()
            .command
        else {
            panic!("not floor")
        };
        let d = FloorArgs::default();
        assert_eq!(
            (f.bots, f.ramp, f.duration, f.max_errors),
            (d.bots, d.ramp, d.duration, d.max_errors)
        );
        let cli = Cli::try_parse_from(["tickroom-bot", "floor-server"]).unwrap();
        assert!(matches!(cli.command, Command::FloorServer));
        let help = Cli::command().render_help().to_string();
        assert!(
            help.contains("floor") && !help.contains("floor-server"),
            "{help}"
        );
        let sweep = Cli::try_parse_from([
            "tickroom-bot",
            "sweep",
            "--server",
            "http://a:1",
            "--steps",
            "2",
            "--floor",
        ])
        .unwrap();
        assert!(matches!(sweep.command, Command::Sweep(s) if s.floor));
    }

    #[test]
    fn cli_parses_a_swarm() {
        let cli = Cli::try_parse_from([
            "tickroom-bot",
            "swarm",
            "--server",
            "http://127.0.0.1:1",
            "--bots",
            "5",
            "--latency",
            "50ms",
            "--loss",
            "2%",
            "--drop-rate",
            "1%/min",
        ])
        .unwrap();
        let Command::Swarm(s) = cli.command else {
            panic!("not a swarm")
        };
        assert_eq!(s.bots, 5);
        assert_eq!(s.server, ["http://127.0.0.1:1"]);
        assert!(s.metrics_url.is_empty());
        assert_eq!(s.latency, Duration::from_millis(50));
        assert_eq!(s.loss, 0.02);
    }
}
