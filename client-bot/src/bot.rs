//! One bot's life: log in, queue, join, then play in the room (see `in_room`: random-walk
//! inputs through the link conditioner, the lockstep sim and checksums, chaos drops), leave,
//! and measure all along.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tickroom_protocol::connect::{join, ConnectError, GatewayClient, QuicClient, TransportKind};
use tickroom_protocol::SessionConfig;
use tokio::sync::watch;
use tracing::{debug, warn};

use crate::link::LinkConfig;
use crate::stats::{BotOutcome, LiveStats};

mod in_room;

/// Lockstep checksums are sent after every frame that is a multiple of this.
pub const CHECKSUM_INTERVAL_FRAMES: u64 = 10;
/// Longest wait for a match.
pub const MATCHMAKING_TIMEOUT: Duration = Duration::from_secs(60);

/// What one bot does.
#[derive(Debug, Clone)]
pub struct BotConfig {
    /// Bot number (logs, transport choice, seeds).
    pub index: usize,
    /// Device id to log in with.
    pub device_id: String,
    /// Mode to queue for.
    pub mode: String,
    /// Transport to the room.
    pub transport: TransportKind,
    /// State-sync inputs per second; `None` = the room's tick rate.
    pub input_hz: Option<u32>,
    /// How long to play once the room started.
    pub play_for: Duration,
    /// Link conditioner for both directions.
    pub link: LinkConfig,
    /// Chance per second of dropping the connection on purpose.
    pub drop_per_s: f64,
    /// Seed of inputs, link conditioner, chaos and reconnect jitter.
    pub seed: u64,
    /// The bot stops (with a `timeout` error) if it is not done by then.
    pub give_up_at: Instant,
}

/// What bots share.
#[derive(Debug, Clone)]
pub struct BotContext {
    /// Gateway client (one HTTP connection pool).
    pub gateway: GatewayClient,
    /// One QUIC endpoint (one UDP socket) for all bots; `None` makes one per connection.
    pub quic: Option<QuicClient>,
    /// Live counters for the progress bar.
    pub live: Arc<LiveStats>,
    /// Becomes true when the bots should leave now (Ctrl-C).
    pub stop: watch::Receiver<bool>,
}

/// Runs one bot to the end and says how it went. Never panics on server data.
pub async fn run_bot(config: BotConfig, ctx: BotContext) -> BotOutcome {
    ctx.live.started.fetch_add(1, Ordering::Relaxed);
    let index = config.index;
    let give_up = tokio::time::Instant::from_std(config.give_up_at);
    let found = tokio::time::timeout_at(
        give_up,
        ctx.gateway
            .find_match(&config.device_id, &config.mode, MATCHMAKING_TIMEOUT),
    )
    .await;
    let matched = match found {
        Ok(Ok(m)) => m,
        Ok(Err(e)) => return failed(&ctx.live, index, connect_error_name(&e), &e),
        Err(_) => return failed(&ctx.live, index, "timeout", &"matchmaking"),
    };
    debug!(bot = index, room = matched.room_id, "matched");
    let session_config = SessionConfig {
        jitter_seed: config.seed,
        ..SessionConfig::default()
    };
    let joined = tokio::time::timeout_at(
        give_up,
        join(&matched, config.transport, session_config, ctx.quic.clone()),
    )
    .await;
    let session = match joined {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => return failed(&ctx.live, index, connect_error_name(&e), &e),
        Err(_) => return failed(&ctx.live, index, "timeout", &"connect"),
    };
    in_room::Bot::new(config, ctx.live)
        .play(session, ctx.stop)
        .await
}

/// The report name of a connect error: the server's `ErrorCode::name()` when it gave one.
pub fn connect_error_name(e: &ConnectError) -> &'static str {
    match e {
        ConnectError::Gateway { code, .. } | ConnectError::Closed(code) => code.name(),
        ConnectError::Http(_) => "http",
        ConnectError::Transport(_) => "transport",
        ConnectError::BadFingerprint => "bad_fingerprint",
        ConnectError::Timeout(_) => "timeout",
    }
}

fn failed(live: &LiveStats, index: usize, name: &str, why: &dyn std::fmt::Display) -> BotOutcome {
    warn!(bot = index, error = name, "join failed: {why}");
    live.errors.fetch_add(1, Ordering::Relaxed);
    BotOutcome {
        error: Some(name.to_string()),
        ..BotOutcome::default()
    }
}
