//! One bot's life: log in, queue, join, then play in the room (see `in_room`: the game's
//! inputs through the link conditioner, checksums, chaos drops; `phase`: the states it goes
//! through), leave, and measure all along. When its room's server is gone the bot queues again
//! through the gateway and plays on in a new room (a rejoin).

use std::fmt;
use std::net::IpAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tickroom_game::modes::LATENCY_PREFIX;
use tickroom_game::{MetaValue, PlayerMetadata};
use tickroom_protocol::api::EnqueueRequest;
use tickroom_protocol::connect::{
    ConnectError, GatewayClient, JoinTarget, MatchResult, QuicClient, RoomStatus, SessionDriver,
    TransportKind,
};
use tickroom_protocol::SessionConfig;
use tokio::sync::watch;
use tracing::{debug, warn};

use crate::error::BotError;
use crate::game_bot::GameBotFactory;
use crate::link::LinkConfig;
use crate::stats::{BotOutcome, LiveStats};

mod in_room;
mod phase;

/// Lockstep checksums are sent after every frame that is a multiple of this.
pub const CHECKSUM_INTERVAL_FRAMES: u64 = 10;
/// Longest wait for a match.
pub const MATCHMAKING_TIMEOUT: Duration = Duration::from_secs(60);
/// A bot disconnected this long without resuming asks the gateway whether its room's server
/// still lives.
pub const REJOIN_AFTER: Duration = Duration::from_secs(1);
/// While the server lives, the bot asks again this often (and keeps waiting for the resume).
pub const ROOM_STATUS_PERIOD: Duration = Duration::from_secs(1);
/// Time allowed for one `GET /v1/rooms/{id}`.
pub const ROOM_STATUS_TIMEOUT: Duration = Duration::from_secs(2);
/// Connect attempts per match result before the join counts as failed.
const JOIN_CONNECT_TRIES: u32 = 3;
/// Pause between two failed attempts to queue again for a rejoin.
const REQUEUE_RETRY: Duration = Duration::from_millis(500);

/// Regions the bots of a mode with a region rule come from (bot `seed % 3`).
pub const BOT_REGIONS: [&str; 3] = ["eu", "us", "asia"];

/// What a bot's ticket carries for `mode`'s matchmaking rules (the embedded modes file's;
/// empty for a mode without rules): a rating from N(1500, 300), a region of [`BOT_REGIONS`]
/// with its latency to each (home lowest), and `"1"` for every exact property, so every bot
/// can meet every other. The same seed, the same properties.
pub fn bot_properties(mode: &str, seed: u64) -> PlayerMetadata {
    let modes = tickroom_game::modes::Modes::embedded();
    let Some(rules) = modes.by_name(mode).and_then(|m| m.matchmaking.as_ref()) else {
        return PlayerMetadata::default();
    };
    let mut rng = tickroom_game::rng::SplitMix64::new(seed);
    let mut props = std::collections::BTreeMap::new();
    if let Some(key) = &rules.rating {
        // Box–Muller from two uniforms in (0, 1].
        let u1 = (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
        let u2 = (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
        let normal = (-2.0 * (1.0 - u1).ln()).sqrt() * (std::f64::consts::TAU * u2).cos();
        let rating = (1500.0 + 300.0 * normal).clamp(0.0, 3000.0).round() as i64;
        props.insert(key.clone(), MetaValue::Int(rating));
    }
    if let Some(key) = &rules.region {
        let home = BOT_REGIONS[(seed % 3) as usize];
        props.insert(key.clone(), MetaValue::Str(home.to_owned()));
        for region in BOT_REGIONS {
            let ms = if region == home {
                20
            } else {
                80 + (rng.next_u64() % 120) as i64
            };
            props.insert(format!("{LATENCY_PREFIX}{region}"), MetaValue::Int(ms));
        }
    }
    for key in &rules.exact {
        props.insert(key.clone(), MetaValue::Str("1".to_owned()));
    }
    PlayerMetadata(props)
}

/// The device id of bot `index` of a run seeded `seed`: 32 hex digits, the 128 bits a
/// gateway requires of a device id, the same for the same seed and index.
pub fn bot_device_id(seed: u64, index: usize) -> String {
    let mix = |x: u64| {
        let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    };
    let lane = mix(seed ^ mix(index as u64));
    format!("{:016x}{:016x}", mix(lane), mix(lane ^ 1))
}

/// What one bot does.
#[derive(Debug, Clone)]
pub struct BotConfig {
    /// Bot number (logs, transport choice, seeds).
    pub index: usize,
    /// Device id to log in with (`bot_device_id`, or a checked `--device-id`).
    pub device_id: String,
    /// Mode to queue for.
    pub mode: String,
    /// Transport to the room.
    pub transport: TransportKind,
    /// State-sync inputs per second; `None` = the room's tick rate, 0 = none (an idle player).
    pub input_hz: Option<u32>,
    /// Time between pings (RTT samples and the keepalive of a player sending nothing else).
    pub ping_interval: Duration,
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
    /// Print the wait in the matchmaking queue as it goes (`play`: a person is watching).
    pub show_queue: bool,
}

/// How often `play` tells how long it has been queued.
const QUEUE_REPORT_EVERY: Duration = Duration::from_secs(2);

/// What a person waiting in `mode`'s queue should know: when a match starts.
fn queue_line(mode: &str, waited: Duration) -> String {
    let rule = tickroom_game::modes::Modes::embedded()
        .by_name(mode)
        .map(|m| {
            format!(
                "; a match starts when {} players are in, or after {} s with at least {}",
                m.players, m.matchmaking_wait_s, m.min_players
            )
        })
        .unwrap_or_default();
    format!("queued for {mode}: {} s{rule}", waited.as_secs())
}

/// One address bots connect from, with its clients.
#[derive(Debug, Clone)]
pub struct Source {
    /// The address connections leave from (`None`: the system's choice).
    pub local_ip: Option<IpAddr>,
    /// Gateway clients (one HTTP connection pool each); bot i starts with gateway i % n.
    pub gateways: Arc<[GatewayClient]>,
    /// One QUIC endpoint (one UDP socket) for this source's bots; `None` makes one per
    /// connection.
    pub quic: Option<QuicClient>,
}

impl Source {
    /// Clients of `gateways` leaving from the system's choice of address.
    pub fn system(gateways: Arc<[GatewayClient]>, quic: Option<QuicClient>) -> Source {
        Source {
            local_ip: None,
            gateways,
            quic,
        }
    }
}

/// What bots share.
#[derive(Clone)]
pub struct BotContext {
    /// The addresses bots connect from: bot i uses source i % n.
    pub sources: Arc<[Source]>,
    /// Live counters for the progress bar.
    pub live: Arc<LiveStats>,
    /// Becomes true when the bots should leave now (Ctrl-C).
    pub stop: watch::Receiver<bool>,
    /// Makes each room's [`crate::GameBot`].
    pub factory: GameBotFactory,
}

impl fmt::Debug for BotContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BotContext")
            .field("sources", &self.sources)
            .field("live", &self.live)
            .finish_non_exhaustive()
    }
}

/// Runs one bot to the end and says how it went. Never panics on server data.
pub async fn run_bot(config: BotConfig, ctx: BotContext) -> BotOutcome {
    ctx.live.started.fetch_add(1, Ordering::Relaxed);
    let index = config.index;
    let give_up = tokio::time::Instant::from_std(config.give_up_at);
    let source = ctx.sources[index % ctx.sources.len().max(1)].clone();
    let mut player = Player::new(&source, index, config.device_id.clone());
    let mut attempt = 0u64;
    let joined = tokio::time::timeout_at(give_up, player.join(&config, attempt)).await;
    let mut driver = match joined {
        Ok(Ok(d)) => d,
        Ok(Err(e)) => return failed(&ctx.live, index, BotError::from(&e), &e),
        Err(_) => {
            return failed(
                &ctx.live,
                index,
                BotError::Timeout,
                &"matchmaking or connect",
            )
        }
    };
    let mut bot = in_room::Bot::new(
        config.clone(),
        ctx.live.clone(),
        ctx.stop.clone(),
        ctx.factory.clone(),
    );
    loop {
        match bot.play(driver, &mut player).await {
            in_room::RoomEnd::Done => break,
            in_room::RoomEnd::Rejoin => {
                attempt += 1;
                debug!(bot = index, "queueing again: the room's server is gone");
                let rejoin = async {
                    loop {
                        match player.join(&config, attempt).await {
                            Ok(d) => return d,
                            Err(e) => {
                                debug!(bot = index, "rejoin attempt failed: {e}");
                                player.next_gateway();
                                tokio::time::sleep(REQUEUE_RETRY).await;
                            }
                        }
                    }
                };
                match tokio::time::timeout_at(give_up, rejoin).await {
                    Ok(d) => driver = d,
                    Err(_) => {
                        bot.give_up();
                        break;
                    }
                }
            }
        }
    }
    bot.finish()
}

/// The bot as the gateway knows it: its gateway, device id and session token.
pub(crate) struct Player {
    gateways: Arc<[GatewayClient]>,
    local_ip: Option<IpAddr>,
    quic: Option<QuicClient>,
    gateway: usize,
    device_id: String,
    token: Option<String>,
    /// The room server of the room the bot is in (its match result's, or where the gateway
    /// moved the room since).
    server_id: Option<String>,
}

impl Player {
    fn new(source: &Source, index: usize, device_id: String) -> Player {
        Player {
            gateways: source.gateways.clone(),
            local_ip: source.local_ip,
            quic: source.quic.clone(),
            gateway: index % source.gateways.len().max(1),
            device_id,
            token: None,
            server_id: None,
        }
    }

    /// Whether `status` names another server than the one the bot's room was on: the room
    /// moved (its owner died). The bot's room is on that server from now on.
    pub(crate) fn moved(&mut self, status: &RoomStatus) -> bool {
        if self.server_id.as_deref() == Some(status.server_id.as_str()) {
            return false;
        }
        self.server_id = Some(status.server_id.clone());
        true
    }

    fn client(&self) -> &GatewayClient {
        &self.gateways[self.gateway % self.gateways.len()]
    }

    /// Uses the next gateway from now on (after one failed).
    pub(crate) fn next_gateway(&mut self) {
        self.gateway = (self.gateway + 1) % self.gateways.len().max(1);
    }

    async fn token(&mut self) -> Result<String, ConnectError> {
        if let Some(t) = &self.token {
            return Ok(t.clone());
        }
        let login = self.client().login_device(&self.device_id).await?;
        self.token = Some(login.session_token.clone());
        Ok(login.session_token)
    }

    /// Queues (logging in again if the token was refused), waits for the match, and opens the
    /// room's transport.
    async fn join(
        &mut self,
        config: &BotConfig,
        attempt: u64,
    ) -> Result<SessionDriver, ConnectError> {
        let properties = bot_properties(&config.mode, config.seed);
        let m = self
            .find_match(&config.mode, &properties, config.show_queue)
            .await?;
        debug!(bot = config.index, room = m.room_id, "matched");
        self.server_id = Some(m.server_id.clone());
        let session_config = SessionConfig {
            jitter_seed: config.seed.wrapping_add(attempt),
            ping_interval: config.ping_interval,
            // Pongs may be all a quiet room sends: two intervals of silence before a resume.
            server_silence_timeout: SessionConfig::default()
                .server_silence_timeout
                .max(2 * config.ping_interval),
            ..SessionConfig::default()
        };
        // A connect that times out under load is retried with the same ticket (it is only
        // consumed once the join completes), as a real client would.
        let mut tries = 0;
        loop {
            tries += 1;
            let mut target = JoinTarget::from_match(&m, config.transport)?;
            target.local_ip = self.local_ip;
            match SessionDriver::open(
                target,
                m.join_ticket.clone(),
                m.join_secret()?,
                session_config.clone(),
                self.quic.clone(),
            )
            .await
            {
                Err(e) if e.is_transient() && tries < JOIN_CONNECT_TRIES => {
                    debug!(
                        bot = config.index,
                        tries, "connect failed; retrying with the same ticket"
                    );
                }
                other => return other,
            }
        }
    }

    async fn find_match(
        &mut self,
        mode: &str,
        properties: &PlayerMetadata,
        show_queue: bool,
    ) -> Result<MatchResult, ConnectError> {
        let body = EnqueueRequest {
            mode: mode.to_owned(),
            metadata: PlayerMetadata::default(),
            properties: properties.clone(),
            party_id: None,
        };
        let token = self.token().await?;
        let (token, ticket) = match self.client().enqueue(&token, &body).await {
            Ok(ticket) => (token, ticket),
            Err(ConnectError::Gateway { status: 401, .. }) => {
                self.token = None;
                let token = self.token().await?;
                let ticket = self.client().enqueue(&token, &body).await?;
                (token, ticket)
            }
            Err(e) => return Err(e),
        };
        if !show_queue {
            return self
                .client()
                .wait_match(&token, &ticket, MATCHMAKING_TIMEOUT)
                .await;
        }
        let mut shown = |waited: Duration| eprintln!("{}", queue_line(mode, waited));
        self.client()
            .wait_match_reporting(
                &token,
                &ticket,
                MATCHMAKING_TIMEOUT,
                QUEUE_REPORT_EVERY,
                &mut shown,
            )
            .await
    }

    /// `GET /v1/rooms/{room_id}`; `None` when the gateway does not know the room (any more).
    pub(crate) async fn room_status(
        &mut self,
        room_id: u64,
    ) -> Result<Option<RoomStatus>, ConnectError> {
        let token = self.token().await?;
        let asked = tokio::time::timeout(
            ROOM_STATUS_TIMEOUT,
            self.client().room_status(&token, room_id),
        )
        .await;
        match asked {
            Ok(Err(ConnectError::Gateway { status: 401, .. })) => {
                self.token = None;
                Err(ConnectError::Timeout("token refused"))
            }
            Ok(answer) => answer,
            Err(_) => Err(ConnectError::Timeout("room status")),
        }
    }
}

fn failed(live: &LiveStats, index: usize, error: BotError, why: &dyn fmt::Display) -> BotOutcome {
    warn!(bot = index, error = error.name(), "join failed: {why}");
    live.errors.fetch_add(1, Ordering::Relaxed);
    BotOutcome {
        error: Some(error),
        ..BotOutcome::default()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use tickroom_protocol::api::check_device_id;

    use super::*;

    /// A ranked bot's ticket carries what the mode's rules ask for, rightly typed, and
    /// nothing else; the same seed gives the same ticket; a first-come mode gets none.
    #[test]
    fn bots_carry_the_properties_their_mode_matches_on() {
        let rules = tickroom_game::modes::Modes::embedded()
            .by_name("ranked")
            .and_then(|m| m.matchmaking.clone())
            .expect("ranked has rules");
        let mut ratings = Vec::new();
        for seed in 0..300 {
            let p = bot_properties("ranked", seed);
            assert!(p.0.keys().all(|k| rules.knows(k)), "{p:?}");
            assert!(p.check().is_ok());
            let rating = p.int("rating").expect("a whole-number rating");
            assert!((0..=3000).contains(&rating));
            ratings.push(rating);
            let home = p.str("region").expect("a region");
            assert_eq!(p.int(&format!("latency.{home}")), Some(20));
            assert_eq!(p.str("version"), Some("1"));
            assert_eq!(p, bot_properties("ranked", seed));
        }
        let mean = ratings.iter().sum::<i64>() as f64 / ratings.len() as f64;
        assert!((1400.0..1600.0).contains(&mean), "mean rating {mean}");
        assert!(ratings.iter().any(|r| *r < 1300) && ratings.iter().any(|r| *r > 1700));
        assert!(bot_properties("arena", 1).0.is_empty());
        assert!(bot_properties("no-such-mode", 1).0.is_empty());
    }

    #[test]
    fn the_queue_line_says_when_a_match_starts() {
        let line = queue_line("arena", Duration::from_millis(4_200));
        assert_eq!(
            line,
            "queued for arena: 4 s; a match starts when 10 players are in, or after 10 s with at least 1"
        );
        assert_eq!(
            queue_line("custom", Duration::ZERO),
            "queued for custom: 0 s"
        );
    }

    #[test]
    fn bot_device_ids_are_valid_stable_and_distinct() {
        let mut seen = HashSet::new();
        for seed in [0, 1, u64::MAX] {
            for index in 0..1000 {
                let id = bot_device_id(seed, index);
                assert_eq!(check_device_id(&id), Ok(()), "{id}");
                assert_eq!(id, bot_device_id(seed, index));
                assert!(seen.insert(id), "seed {seed} index {index} collides");
            }
        }
    }
}
