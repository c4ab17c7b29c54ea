//! tickroom-gateway: the stateless front door — login and matchmaking over HTTP JSON, handing
//! each player to a room server with a signed join ticket. Everything shared (room servers,
//! queues, tickets, rooms) lives behind the `Directory` trait; identity lives in signed tokens.
//!
//! Architecture invariant: a `Gateway` holds no per-player state beyond its requests in
//! flight (a count of each player's long polls, one waiter per polled ticket, both gone when
//! the polls end); two gateways over one directory behave as one.
//!
//! Wiring it up (what the `tickroom` binary does):
//!
//! ```no_run
//! # async fn wire() -> std::io::Result<()> {
//! use std::{net::SocketAddr, sync::Arc, time::Duration};
//! use tickroom_gateway::*;
//!
//! let keys = tickroom_protocol::KeyRing::single(1, [7; 32]);
//! let modes = tickroom_game::modes::Modes::embedded();
//! let directory = InMemoryDirectory::new();
//! // A room server registers itself and heartbeats before the TTL runs out.
//! let info = RoomServerInfo {
//!     server_id: "room-1".into(),
//!     quic_addr: "127.0.0.1:4433".into(),
//!     ws_addr: "127.0.0.1:8080".into(),
//!     cert_fingerprint: "ab".repeat(32),
//!     ws_tls: false,
//!     capacity: 2_000,
//!     load: 0,
//!     draining: false,
//! };
//! directory.register_server(info, Duration::from_secs(5)).await.ok();
//!
//! let gw = Gateway::new(GatewayConfig::new(keys, modes), directory.clone());
//! let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
//! tokio::spawn(run_matchmaker(gw.clone(), stop_rx));
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//! let app = router(gw).into_make_service_with_connect_info::<SocketAddr>();
//! axum::serve(listener, app).await?;
//! let _ = stop_tx.send(true);
//! # Ok(())
//! # }
//! ```
//!
//! With `--redis URL` the same wiring takes a shared directory instead, so any number of
//! gateway and room-server processes cooperate (room servers heartbeat `register_server`,
//! `deregister_server` on clean shutdown, and when a match ends `store_match_result` then
//! `close_room_at(room_id, epoch)`):
//!
//! ```no_run
//! # async fn wire() -> Result<(), tickroom_gateway::DirectoryError> {
//! use std::sync::Arc;
//! use tickroom_gateway::{Directory, RedisDirectory};
//!
//! let directory: Arc<dyn Directory> =
//!     RedisDirectory::connect("redis://127.0.0.1:6379", "tickroom:").await?;
//! # Ok(())
//! # }
//! ```

pub mod admin;
pub mod auth;
pub mod directory;
pub mod http;
pub mod matching;
pub mod matchmaker;
pub mod memory;
mod metrics;
pub mod prom;
pub mod redis;
pub mod waiters;

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use tickroom_game::modes::{ModeConfig, Modes};
use tickroom_protocol::KeyRing;

pub use crate::redis::{RedisConfig, RedisDirectory};
pub use admin::{AdminTokens, ErrorLog, ServerControl};
pub use directory::{
    move_room, pick_server, AdminAction, AdminCommand, AdminReply, Assignment, CancelOutcome,
    CodeJoin, Directory, DirectoryError, EnqueueOutcome, ErrorRecord, Formation, FormedMatch,
    FrameAppend, FramesStored, MatchPlayer, MatchRecord, MatchRequest, MatchedPlayer, PartyAnswer,
    PartyRecord, PrivateRoomRequest, QueueEntry, ReassignOutcome, RoomPage, RoomRecord,
    RoomServerInfo, RoomStatus, SeatInfo, ServerAbout, TicketChange, TicketId, TicketRecord,
    TicketStatus,
};
pub use http::router;
pub use matchmaker::run_matchmaker;
pub use memory::InMemoryDirectory;

use crate::metrics::Metrics;
use crate::waiters::{PollSlots, TicketWaiters};

/// Default lifetime of a session token.
pub const DEFAULT_SESSION_TTL: Duration = Duration::from_secs(60 * 60);
/// Default lifetime of a login across all its refreshes.
pub const DEFAULT_SESSION_MAX_LIFETIME: Duration = Duration::from_secs(24 * 60 * 60);
/// Default lifetime of a join ticket.
pub const DEFAULT_TICKET_TTL: Duration = Duration::from_secs(10);
/// Default longest a matchmaking long poll is held open.
pub const DEFAULT_LONG_POLL_MAX: Duration = Duration::from_secs(20);
/// Default tolerated clock difference when verifying tokens.
pub const DEFAULT_CLOCK_SKEW: Duration = Duration::from_secs(5);
/// Default largest request body, in bytes.
pub const DEFAULT_MAX_BODY_BYTES: usize = 4 * 1024;
/// Default sustained requests per second per client IP.
pub const DEFAULT_RATE_PER_IP_PER_S: u32 = 50;
/// Default burst of requests per client IP.
pub const DEFAULT_RATE_BURST: u32 = 100;
/// A queued ticket whose owner has not polled for `long_poll_max` plus this long is dropped.
pub const QUEUE_ABANDON_GRACE: Duration = Duration::from_secs(30);
/// Default most long polls one player holds open at once on one gateway; more get 429.
pub const DEFAULT_MAX_POLLS_PER_PLAYER: usize = 4;
/// Join-code lookups one player may make per minute (`POST /v1/rooms/join`), sustained.
pub const DEFAULT_CODE_LOOKUPS_PER_MIN: u32 = 20;
/// Join-code lookups one player may make in a burst.
pub const DEFAULT_CODE_LOOKUP_BURST: u32 = 5;
/// How long a "yes, a room server can take a room" answers the polls that end queued, in ms.
pub const PLACEMENT_YES_REUSE_MS: u64 = 1_000;

/// Everything a gateway is configured with; `GatewayConfig::new` documents the defaults.
#[derive(Debug, Clone)]
pub struct GatewayConfig {
    /// Signs sessions and join tickets; derives player ids.
    pub keys: KeyRing,
    /// The modes players may queue for.
    pub modes: Modes,
    /// Lifetime of a session token (default 1 h).
    pub session_ttl: Duration,
    /// Lifetime of a login across its refreshes (default 24 h): then the player logs in again.
    pub session_max_lifetime: Duration,
    /// Lifetime of a join ticket (default 10 s).
    pub ticket_ttl: Duration,
    /// Longest a `GET /v1/matchmaking/{ticket}` is held open (default 20 s).
    pub long_poll_max: Duration,
    /// Tolerated clock difference when verifying tokens (default 5 s).
    pub clock_skew: Duration,
    /// Largest request body in bytes; larger ones get 413 (default 4 KiB).
    pub max_body_bytes: usize,
    /// Sustained requests per second per client IP (default 50; 0 is treated as 1).
    pub rate_per_ip_per_s: u32,
    /// Requests per client IP allowed in a burst (default 100; 0 is treated as 1).
    pub rate_burst: u32,
    /// Key of the studio's custom account tokens; `None` disables `/v1/auth/custom` (default).
    pub custom_auth_key: Option<Vec<u8>>,
    /// Most long polls one player may hold open at once on this gateway; more get
    /// `429 RateLimited` (default 4; 0 is treated as 1).
    pub max_polls_per_player: usize,
    /// Join-code lookups per player per minute (default 20) and in a burst (default 5): a
    /// code has 40 random bits, and this keeps anyone from enumerating them.
    pub code_lookups_per_min: u32,
    pub code_lookup_burst: u32,
}

impl GatewayConfig {
    /// A config with the `DEFAULT_*` values above and custom auth disabled.
    pub fn new(keys: KeyRing, modes: Modes) -> Self {
        GatewayConfig {
            keys,
            modes,
            session_ttl: DEFAULT_SESSION_TTL,
            session_max_lifetime: DEFAULT_SESSION_MAX_LIFETIME,
            ticket_ttl: DEFAULT_TICKET_TTL,
            long_poll_max: DEFAULT_LONG_POLL_MAX,
            clock_skew: DEFAULT_CLOCK_SKEW,
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            rate_per_ip_per_s: DEFAULT_RATE_PER_IP_PER_S,
            rate_burst: DEFAULT_RATE_BURST,
            custom_auth_key: None,
            max_polls_per_player: DEFAULT_MAX_POLLS_PER_PLAYER,
            code_lookups_per_min: DEFAULT_CODE_LOOKUPS_PER_MIN,
            code_lookup_burst: DEFAULT_CODE_LOOKUP_BURST,
        }
    }
}

/// One gateway: config, the shared directory, metrics, the per-IP rate limiter and the long
/// polls in flight.
pub struct Gateway {
    config: GatewayConfig,
    directory: Arc<dyn Directory>,
    metrics: Metrics,
    limiter: DefaultKeyedRateLimiter<IpAddr>,
    /// Join-code lookups per player.
    code_limiter: DefaultKeyedRateLimiter<u64>,
    waiters: TicketWaiters,
    poll_slots: PollSlots,
    /// The last placement check and when it started (shared by polls ending together).
    placement: tokio::sync::Mutex<Option<(tokio::time::Instant, bool)>>,
}

impl Gateway {
    /// A gateway over `directory`; serve it with `router` and run `run_matchmaker` beside it.
    pub fn new(config: GatewayConfig, directory: Arc<dyn Directory>) -> Arc<Gateway> {
        let rate = NonZeroU32::new(config.rate_per_ip_per_s.max(1)).unwrap_or(NonZeroU32::MIN);
        let burst = NonZeroU32::new(config.rate_burst.max(1)).unwrap_or(NonZeroU32::MIN);
        let limiter = RateLimiter::keyed(Quota::per_second(rate).allow_burst(burst));
        let lookups =
            NonZeroU32::new(config.code_lookups_per_min.max(1)).unwrap_or(NonZeroU32::MIN);
        let lookup_burst =
            NonZeroU32::new(config.code_lookup_burst.max(1)).unwrap_or(NonZeroU32::MIN);
        let code_limiter = RateLimiter::keyed(Quota::per_minute(lookups).allow_burst(lookup_burst));
        let metrics = Metrics::new(config.modes.iter().map(|m| m.name.as_str()));
        let poll_slots = PollSlots::new(config.max_polls_per_player);
        Arc::new(Gateway {
            config,
            directory,
            metrics,
            limiter,
            code_limiter,
            waiters: TicketWaiters::new(),
            poll_slots,
            placement: tokio::sync::Mutex::new(None),
        })
    }

    /// The configuration it was built with.
    pub fn config(&self) -> &GatewayConfig {
        &self.config
    }

    /// The shared directory.
    pub fn directory(&self) -> &Arc<dyn Directory> {
        &self.directory
    }

    /// Appends the gateway's metrics (OpenMetrics text, without `# EOF`):
    /// `tickroom_gateway_logins_total{method}`, `..._queue_length{mode}`,
    /// `..._queue_wait_seconds` (a histogram), `..._directory_errors_total` and other counters.
    pub fn render_metrics(self: &Arc<Self>, out: &mut String) {
        prom::encode_into(out, self.clone(), |gw, e| gw.metrics.encode(e));
    }

    /// How long a queued ticket may go unpolled before the directory drops it.
    fn abandon_after(&self) -> Duration {
        self.config.long_poll_max + QUEUE_ABANDON_GRACE
    }

    /// How long a player placed in a room of `mode` may take to join it: a join ticket's
    /// lifetime, then the room's start timeout. No new ticket for them before it ends.
    fn join_window(&self, mode: &ModeConfig) -> Duration {
        self.config.ticket_ttl + Duration::from_secs(u64::from(mode.start_timeout_s))
    }
}

/// The wall clock as unix milliseconds (0 if the clock is before 1970).
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// A duration in whole milliseconds, saturating.
fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}
