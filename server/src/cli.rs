//! The command line shared by the `tickroom` binary and every game server built with
//! `Server::builder()`: flags → a role (all-in-one by default, `room`, `gateway`) → run.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, CommandFactory, FromArgMatches, Parser, Subcommand};
use tickroom_game::modes::Modes;
use tickroom_protocol::{KeyRing, RoomKeys};
use tokio::sync::watch;

use crate::http::{
    HttpLimits, DEFAULT_HTTP_HEADER_TIMEOUT_MS, DEFAULT_HTTP_MAX_CONNECTIONS,
    DEFAULT_HTTP_MAX_CONNECTIONS_PER_IP,
};
use crate::roles::{random_key_ring, run_gateway, run_server, RoleConfig};
use crate::room::GameRegistry;
use crate::transport::quic::CertAndKey;
use crate::{QuicRetry, RoomServerConfig};

/// Shortest `--idle-timeout-ms`: a client pinging once a second needs a few pings of slack.
const MIN_IDLE_TIMEOUT_MS: u64 = 3_000;
/// Longest `--idle-timeout-ms`: a dead client's seat and session are held this long.
const MAX_IDLE_TIMEOUT_MS: u64 = 300_000;

/// tickroom: a real-time multiplayer game server.
///
/// With no subcommand, runs everything in one process on loopback: the login and
/// matchmaking gateway (HTTP), the room server (WebSocket and QUIC) and an in-memory
/// directory. No config file and no Redis needed.
#[derive(Parser)]
#[command(name = "tickroom", version, args_conflicts_with_subcommands = true)]
struct Cli {
    #[command(subcommand)]
    role: Option<Role>,
    #[command(flatten)]
    opts: Opts,
}

#[derive(Subcommand)]
enum Role {
    /// Run a room server alone (needs the room keys of the gateways' key ring).
    Room(Opts),
    /// Run a login and matchmaking gateway alone.
    Gateway(Opts),
    /// Print the room keys of the key ring (TICKROOM_KEYS or --keys-file): what room servers
    /// get as TICKROOM_ROOM_KEYS. They verify tickets and cannot sign anything; keep them
    /// secret all the same (they derive join secrets).
    RoomKeys(KeysOpts),
}

#[derive(Args, Clone)]
struct KeysOpts {
    /// Key ring file ("id:hexsecret,..."); else the TICKROOM_KEYS environment variable.
    #[arg(long)]
    keys_file: Option<PathBuf>,
}

/// `tickroom room-keys`: prints the room keys of the configured key ring.
fn print_room_keys(name: &str, o: &KeysOpts) -> ExitCode {
    let text = match &o.keys_file {
        Some(path) => std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read {}: {e}", path.display())),
        None => env_text("TICKROOM_KEYS")
            .ok_or_else(|| "needs a key ring: --keys-file or TICKROOM_KEYS".to_string()),
    };
    match text.and_then(|t| KeyRing::parse(&t).map_err(|e| format!("bad key ring: {e}"))) {
        Ok(ring) => {
            println!("{}", ring.room_keys());
            ExitCode::SUCCESS
        }
        Err(message) => {
            eprintln!("{name}: {message}");
            ExitCode::from(2)
        }
    }
}

#[derive(Args, Clone)]
struct Opts {
    /// HTTP address: gateway API (/v1) and /healthz. Port 0 picks a free port.
    #[arg(long, default_value = "127.0.0.1:7700")]
    http: SocketAddr,
    /// Metrics address: /metrics (Prometheus text) and /healthz, a listener of its own so a
    /// scrape never waits behind players. Port 0 picks a free port.
    #[arg(long, default_value = "127.0.0.1:7703")]
    metrics: SocketAddr,
    /// WebSocket address for players (endpoint path /). Port 0 picks a free port.
    #[arg(long, default_value = "127.0.0.1:7701")]
    ws: SocketAddr,
    /// QUIC (UDP) address for players, ALPN tickroom/1. Port 0 picks a free port.
    #[arg(long, default_value = "127.0.0.1:7702")]
    quic: SocketAddr,
    /// TLS certificate chain (PEM) for the gateway's HTTPS and WebSocket's wss (and QUIC,
    /// unless --cert is given); with --tls-key.
    #[arg(long, requires = "tls_key", conflicts_with = "tls_self_signed")]
    tls_cert: Option<PathBuf>,
    /// TLS private key (PEM), with --tls-cert.
    #[arg(long, requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// TLS with a fresh self-signed certificate (its fingerprint goes to the ready file and
    /// the log; clients pin it).
    #[arg(long)]
    tls_self_signed: bool,
    /// Allow binding a non-loopback address without TLS (a proxy in front terminates TLS).
    #[arg(long)]
    insecure_plaintext: bool,
    /// Web origins whose pages may call the gateway's API (CORS), e.g.
    /// https://game.example.com; repeatable or comma-separated; `*` allows any.
    #[arg(long, value_delimiter = ',')]
    allow_origin: Vec<String>,
    /// Host name or IP that clients use to reach this machine (default: the bound address).
    #[arg(long)]
    public_host: Option<String>,
    /// Once listening, write {"http","ws","quic","cert_fingerprint","metrics"} (the role's
    /// listeners) as JSON to this file.
    #[arg(long)]
    ready_file: Option<PathBuf>,
    /// Game modes file (default: the assets/modes.toml built into the binary).
    #[arg(long)]
    modes: Option<PathBuf>,
    /// Key ring file ("id:hexsecret,..."); else the TICKROOM_KEYS environment variable;
    /// else (all-in-one only) a random key generated at start-up.
    #[arg(long)]
    keys_file: Option<PathBuf>,
    /// Room role: room keys file ("id:verifyhex:joinhex,...", printed by `tickroom room-keys`);
    /// else the TICKROOM_ROOM_KEYS environment variable. With these alone a room server
    /// verifies tickets and cannot sign sessions or tickets.
    #[arg(long)]
    room_keys_file: Option<PathBuf>,
    /// This room server's id (join tickets name it); default room-1. With --redis it is
    /// required and must be unique among the room servers sharing the directory.
    #[arg(long)]
    server_id: Option<String>,
    /// Room worker threads (default: one per core).
    #[arg(long)]
    workers: Option<usize>,
    /// Connection threads for WebSocket players, each running its connections on a runtime
    /// of its own; 0 (the default) runs them on the main runtime, whose threads steal each
    /// other's work when one is descheduled. Try it only on cores of the server's own.
    #[arg(long)]
    io_threads: Option<usize>,
    /// Most rooms this server runs before refusing new ones with ServerBusy.
    #[arg(long, default_value_t = 5_000)]
    max_rooms: usize,
    /// Most logged-in player connections at once (over both transports).
    #[arg(long, default_value_t = 20_000)]
    max_connections: usize,
    /// Most connections not logged in yet at once; when spent, the oldest of them is closed.
    #[arg(long, default_value_t = 1_024)]
    max_prelogin_connections: usize,
    /// Most player connections one client IP (one /64 for IPv6) may hold.
    #[arg(long, default_value_t = 64)]
    max_connections_per_ip: usize,
    /// Time a new connection has to log in (from accept to Welcome), in milliseconds.
    #[arg(long, default_value_t = 5_000)]
    handshake_timeout_ms: u64,
    /// A logged-in connection that sends nothing for this long is closed (`idle_timeout`), in
    /// milliseconds: clients must ping more often. Raise it for idle-heavy games whose
    /// clients ping rarely (lobbies, turn-based play on phones).
    #[arg(long, default_value_t = 15_000)]
    idle_timeout_ms: u64,
    /// With --redis: how long this room server's registration lives without a heartbeat, in
    /// milliseconds (500 to 60,000; heartbeats go every third of it). When the server dies its
    /// rooms move to others once it expired; too short, and a loaded server loses rooms it
    /// still runs (BENCHMARKS.md measures where).
    #[arg(long, default_value_t = 3_000)]
    heartbeat_ttl_ms: u64,
    /// When QUIC validates a client's address with a Retry before the handshake.
    #[arg(long, value_enum, default_value_t = QuicRetry::UnderLoad)]
    quic_retry: QuicRetry,
    /// QUIC certificate chain (PEM); default: a self-signed certificate made at start-up.
    #[arg(long, requires = "key")]
    cert: Option<PathBuf>,
    /// QUIC private key (PEM), with --cert.
    #[arg(long, requires = "cert")]
    key: Option<PathBuf>,
    /// Redis URL of the shared directory (e.g. redis://127.0.0.1:6379, or
    /// redis+sentinel://host:port,host:port/name to follow the primary that Redis Sentinels
    /// name through failovers) for running many gateways and room servers; default: an
    /// in-memory directory (one process only).
    #[arg(long)]
    redis: Option<String>,
    /// Prefix of every Redis key, so several deployments can share one Redis.
    #[arg(long, default_value = "tickroom:")]
    redis_prefix: String,
    /// Room role: take no new rooms; the running ones finish (for a planned shutdown).
    #[arg(long)]
    drain: bool,
    /// With --redis: store no failover images, so when this server dies or stops its
    /// players queue again instead of resuming their matches on another server (saves the
    /// directory a write per room per second, and one per lockstep frame).
    #[arg(long)]
    no_failover: bool,
    /// Admission control: new rooms are refused while the last second's tick p99 is above
    /// this many milliseconds.
    #[arg(long, default_value_t = 10.0)]
    max_tick_p99_ms: f64,
    /// Time an HTTP client has to send a request's headers (on a new connection and between
    /// keep-alive requests), in milliseconds; slower connections are cut.
    #[arg(long, default_value_t = DEFAULT_HTTP_HEADER_TIMEOUT_MS)]
    http_header_timeout_ms: u64,
    /// Most HTTP connections open at once; at the cap the server stops accepting until one
    /// closes.
    #[arg(long, default_value_t = DEFAULT_HTTP_MAX_CONNECTIONS)]
    http_max_connections: usize,
    /// Most HTTP connections one client IP may hold; more are closed at once.
    #[arg(long, default_value_t = DEFAULT_HTTP_MAX_CONNECTIONS_PER_IP)]
    http_max_connections_per_ip: usize,
    /// Gateway requests per second allowed per client IP (sustained).
    #[arg(long, default_value_t = 2_000)]
    gateway_rate_per_ip: u32,
    /// Gateway requests per client IP allowed in a burst.
    #[arg(long, default_value_t = 4_000)]
    gateway_rate_burst: u32,
    /// How long a finished match's result stays readable at GET /v1/matches/{room_id}, in
    /// seconds.
    #[arg(long, default_value_t = 86_400)]
    match_result_ttl_s: u64,
    /// How long a login lasts across all its refreshes, in seconds; then the player logs in
    /// again.
    #[arg(long, default_value_t = 86_400)]
    session_max_lifetime_s: u64,
    /// Operators' admin API (/v1/admin/...) and status page (/status) on the gateway's HTTP
    /// listener, for the tokens in this file: one `id:token` per line (the id names the
    /// operator in logs; tokens of 16 to 256 characters; several lines let tokens rotate, and
    /// the file is read again when it changes). Without it those routes do not exist.
    #[arg(long)]
    admin_token_file: Option<PathBuf>,
    /// Log lines for people (`human`: colour only on a terminal) or for log collectors
    /// (`json`: one object per line, with the room, session and player ids of the span).
    #[arg(long, value_enum, default_value_t = LogFormat::Human)]
    log_format: LogFormat,
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum LogFormat {
    /// Text, coloured only when stderr is a terminal.
    Human,
    /// One JSON object per line.
    Json,
}

/// Parses the command line and runs the chosen role with `games` registered; `default_modes`
/// is the modes file used without `--modes`. Exit codes: 0 ok, 1 runtime failure, 2 bad usage.
pub fn run(games: GameRegistry, default_modes: &str) -> ExitCode {
    let name = program_name();
    let matches = Cli::command().name(name).bin_name(name).get_matches();
    let cli = match Cli::from_arg_matches(&matches) {
        Ok(cli) => cli,
        Err(e) => e.exit(),
    };
    let (role, opts) = match cli.role {
        None => ("all-in-one", cli.opts),
        Some(Role::Room(o)) => ("room", o),
        Some(Role::Gateway(o)) => ("gateway", o),
        Some(Role::RoomKeys(o)) => return print_room_keys(name, &o),
    };
    {
        use std::io::IsTerminal;
        use tracing_subscriber::layer::SubscriberExt;
        use tracing_subscriber::util::SubscriberInitExt;
        use tracing_subscriber::Layer;
        let filter = || {
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"))
        };
        let log = match opts.log_format {
            // A log redirected to a file carries no escape codes.
            LogFormat::Human => tracing_subscriber::fmt::layer()
                .with_writer(std::io::stderr)
                .with_ansi(std::io::stderr().is_terminal())
                .with_filter(filter())
                .boxed(),
            LogFormat::Json => tracing_subscriber::fmt::layer()
                .json()
                .with_current_span(true)
                .with_span_list(true)
                .with_writer(std::io::stderr)
                .with_filter(filter())
                .boxed(),
        };
        // Handshake refusals for the admin API's error list, whatever the log level.
        let refusals = crate::admin::RefusalLayer.with_filter(crate::admin::refusal_filter());
        tracing_subscriber::registry()
            .with(log)
            .with(refusals)
            .init();
    }
    let config = match resolve(role, opts, games, default_modes) {
        Ok(c) => c,
        Err(message) => {
            eprintln!("{name}: {message}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("{name}: cannot start the runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let result = runtime.block_on(async move {
        let (tx, rx) = watch::channel(false);
        tokio::spawn(async move {
            wait_for_signal().await;
            let _ = tx.send(true);
        });
        match role {
            "gateway" => run_gateway(config, rx).await,
            "room" => run_server(config, false, rx).await,
            _ => run_server(config, true, rx).await,
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{name}: {e}");
            ExitCode::from(1)
        }
    }
}

/// An environment variable's text; unset and empty are the same.
fn env_text(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|t| !t.trim().is_empty())
}

/// The running binary's file name (for usage and errors), `tickroom` when unknown.
fn program_name() -> &'static str {
    let name = std::env::args_os()
        .next()
        .and_then(|a| {
            std::path::Path::new(&a)
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
        })
        .unwrap_or_else(|| "tickroom".to_string());
    // Leaked once per process: clap keeps the name for the life of the command.
    Box::leak(name.into_boxed_str())
}

fn resolve(
    role: &str,
    o: Opts,
    games: GameRegistry,
    default_modes: &str,
) -> Result<RoleConfig, String> {
    let modes = match &o.modes {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
            Modes::parse(&text).map_err(|e| e.to_string())?
        }
        None => Modes::parse(default_modes).map_err(|e| format!("built-in modes: {e}"))?,
    };
    // A room server must be able to run every mode it may be asked for.
    if role != "gateway" {
        games.bind(&modes).map_err(|e| e.to_string())?;
    }
    let keys_text = match &o.keys_file {
        Some(path) => Some(
            std::fs::read_to_string(path)
                .map_err(|e| format!("cannot read {}: {e}", path.display()))?,
        ),
        None => env_text("TICKROOM_KEYS"),
    };
    let room_keys_text = match &o.room_keys_file {
        Some(path) => Some(
            std::fs::read_to_string(path)
                .map_err(|e| format!("cannot read {}: {e}", path.display()))?,
        ),
        None => env_text("TICKROOM_ROOM_KEYS"),
    };
    let (keys, room_keys) = match (keys_text, room_keys_text) {
        // A room server given its room keys holds nothing that can sign.
        (None, Some(text)) if role == "room" => (
            None,
            RoomKeys::parse(&text).map_err(|e| format!("bad room keys: {e}"))?,
        ),
        (Some(text), _) => {
            let ring = KeyRing::parse(&text).map_err(|e| format!("bad key ring: {e}"))?;
            if role == "room" {
                tracing::warn!(
                    "this room server holds the whole key ring, so it could sign sessions and \
                     tickets; give it only TICKROOM_ROOM_KEYS (`tickroom room-keys` prints them)"
                );
            }
            let room = ring.room_keys().clone();
            (Some(ring), room)
        }
        (None, _) if role == "all-in-one" => {
            let ring = random_key_ring();
            let room = ring.room_keys().clone();
            (Some(ring), room)
        }
        (None, _) if role == "room" => {
            return Err(
                "the room role needs its keys: TICKROOM_ROOM_KEYS or --room-keys-file (from \
                 `tickroom room-keys`), or the key ring"
                    .into(),
            )
        }
        (None, _) => {
            return Err(format!(
                "the {role} role needs a key ring: --keys-file or TICKROOM_KEYS"
            ))
        }
    };
    // Two room servers with one id would take each other's rooms and tickets in the shared
    // directory: with Redis the id is never defaulted.
    let server_id = match o.server_id {
        Some(id) if id.is_empty() => return Err("--server-id must not be empty".into()),
        Some(id) => id,
        None if o.redis.is_some() && role != "gateway" => {
            return Err(format!(
                "the {role} role with --redis needs --server-id ID, unique among the room servers sharing the directory"
            ))
        }
        None => RoomServerConfig::default().server_id,
    };
    if o.max_connections == 0
        || o.max_prelogin_connections == 0
        || o.max_connections_per_ip == 0
        || o.handshake_timeout_ms == 0
    {
        return Err("--max-connections, --max-prelogin-connections, --max-connections-per-ip and --handshake-timeout-ms must be at least 1".into());
    }
    if !(500..=60_000).contains(&o.heartbeat_ttl_ms) {
        return Err("--heartbeat-ttl-ms must be from 500 to 60000".into());
    }
    if !(MIN_IDLE_TIMEOUT_MS..=MAX_IDLE_TIMEOUT_MS).contains(&o.idle_timeout_ms) {
        return Err(format!(
            "--idle-timeout-ms must be from {MIN_IDLE_TIMEOUT_MS} to {MAX_IDLE_TIMEOUT_MS}"
        ));
    }
    if o.http_header_timeout_ms == 0
        || o.http_max_connections == 0
        || o.http_max_connections_per_ip == 0
    {
        return Err(
            "--http-header-timeout-ms, --http-max-connections and --http-max-connections-per-ip must be at least 1"
                .into(),
        );
    }
    let http_limits = HttpLimits {
        header_read_timeout: std::time::Duration::from_millis(o.http_header_timeout_ms),
        max_connections: o.http_max_connections,
        max_connections_per_ip: o.http_max_connections_per_ip,
        ..HttpLimits::default()
    };
    let cert = match (&o.cert, &o.key) {
        (Some(c), Some(k)) => Some(CertAndKey::from_pem_files(c, k).map_err(|e| e.to_string())?),
        _ => None,
    };
    let tls = match (&o.tls_cert, &o.tls_key) {
        (Some(c), Some(k)) => Some(CertAndKey::from_pem_files(c, k).map_err(|e| e.to_string())?),
        _ if o.tls_self_signed => Some(CertAndKey::self_signed().map_err(|e| e.to_string())?),
        _ => None,
    };
    // Secrets (session tokens, join secrets) cross these listeners: off loopback, only with
    // TLS, or when the operator says a proxy in front provides it.
    let exposed: Vec<SocketAddr> = [o.http, o.ws]
        .into_iter()
        .filter(|a| !a.ip().is_loopback())
        .collect();
    if tls.is_none() && !exposed.is_empty() && !o.insecure_plaintext {
        return Err(format!(
            "refusing to serve players in plaintext on {}: give --tls-cert/--tls-key or --tls-self-signed, \
             or --insecure-plaintext when a proxy in front terminates TLS",
            exposed.iter().map(ToString::to_string).collect::<Vec<_>>().join(" and ")
        ));
    }
    let mut room = RoomServerConfig {
        server_id,
        max_rooms: o.max_rooms,
        max_connections: o.max_connections,
        max_prelogin_connections: o.max_prelogin_connections,
        max_connections_per_ip: o.max_connections_per_ip,
        handshake_timeout: std::time::Duration::from_millis(o.handshake_timeout_ms),
        idle_timeout: std::time::Duration::from_millis(o.idle_timeout_ms),
        heartbeat_ttl: std::time::Duration::from_millis(o.heartbeat_ttl_ms),
        quic_retry: o.quic_retry,
        max_tick_p99_ms: o.max_tick_p99_ms,
        ..RoomServerConfig::default()
    };
    if let Some(w) = o.workers {
        room.workers = w.max(1);
    }
    if let Some(n) = o.io_threads {
        room.io_threads = n;
    }
    let admin_tokens = match &o.admin_token_file {
        Some(path) => Some(tickroom_gateway::AdminTokens::load(path).map_err(|e| e.to_string())?),
        None => None,
    };
    Ok(RoleConfig {
        http: o.http,
        metrics: o.metrics,
        http_limits,
        ws: o.ws,
        quic: o.quic,
        public_host: o.public_host,
        ready_file: o.ready_file,
        keys,
        room_keys,
        modes,
        games,
        room,
        cert,
        tls,
        gateway_rate_per_ip_per_s: o.gateway_rate_per_ip,
        gateway_rate_burst: o.gateway_rate_burst,
        redis: o.redis,
        redis_prefix: o.redis_prefix,
        drain: o.drain,
        failover: !o.no_failover,
        match_result_ttl: std::time::Duration::from_secs(o.match_result_ttl_s),
        session_max_lifetime: std::time::Duration::from_secs(o.session_max_lifetime_s),
        allow_origins: o.allow_origin,
        admin_tokens,
    })
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
