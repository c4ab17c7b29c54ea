//! tickroom-server: the room server (rooms on worker threads behind QUIC and WebSocket), the
//! HTTP endpoints (`/metrics`, `/healthz`) and the process roles the `tickroom` binary runs:
//! all-in-one (gateway + room server + in-memory directory), `gateway` and `room`.

pub mod admin;
pub mod app;
mod builder;
mod cli;
pub mod conn;
pub mod http;
pub mod io_threads;
pub mod limits;
pub mod listen;
pub mod metrics;
pub mod outbox;
pub mod roles;
pub mod room;
pub mod tls;
pub mod transport;
pub mod web;

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use dashmap::DashMap;
use parking_lot::Mutex;
use tickroom_game::modes::Modes;
use tickroom_protocol::{token, ReplayWindow, RoomKeys, Secret};
use tokio::sync::Semaphore;

use crate::app::StartError;
pub use crate::builder::{Server, ServerBuilder};
use crate::io_threads::IoThreads;
use crate::limits::{Admission, IpLimits, PreLogin};
use crate::metrics::Metrics;
use crate::room::core::MatchOutcome;
use crate::room::{GameRegistry, ModeRooms, RoomId, RoomPool, SessionId};

/// Room-server limits and timeouts; `Default` documents each default.
#[derive(Debug, Clone)]
pub struct RoomServerConfig {
    /// This server's id; join tickets must name it.
    pub server_id: String,
    /// Room worker threads (default: one per core).
    pub workers: usize,
    /// Connection threads for WebSocket connections, each a current-thread runtime; 0 (the
    /// default) runs them on the main, work-stealing runtime with everything else. Measured
    /// on 2 shared cores (BENCHMARKS.md), the threads saved futex wake-ups but not CPU, and a
    /// thread descheduled by a busy neighbour stalls all its connections (nothing steals its
    /// work): tails grew from 63 to 191 ms at p999.
    pub io_threads: usize,
    /// Messages each worker's queue holds before inputs are dropped (default 65,536).
    pub room_queue_len: usize,
    /// Bytes of payload each worker's queue holds at most (default 16 MiB): the queue is
    /// bounded by bytes as well as by count, so large inputs cannot pile up.
    pub room_queue_bytes: usize,
    /// Rooms this server runs at most before answering `ServerBusy` (default 5,000).
    pub max_rooms: usize,
    /// Logged-in connections (sessions) at most, over both transports (default 20,000).
    pub max_connections: usize,
    /// Connections that have not logged in yet, at most (default 1,024): a budget of their
    /// own, so they never use up the slots of established sessions. When it is spent, the
    /// oldest of them is closed to make room.
    pub max_prelogin_connections: usize,
    /// When QUIC answers a new connection with a Retry to validate its address first (default:
    /// while more than half the pre-login budget is in use).
    pub quic_retry: QuicRetry,
    /// Time allowed from accept to `Welcome` (default 5 s): a pre-login connection is closed
    /// after it.
    pub handshake_timeout: Duration,
    /// A connection that sends nothing for this long is closed (default 15 s).
    pub idle_timeout: Duration,
    /// How long this server's registration in a shared directory lives without a heartbeat
    /// (default 3 s; heartbeats go every third of it): how soon its rooms can move once it
    /// dies, and how long a pause it survives without losing them.
    pub heartbeat_ttl: Duration,
    /// Tolerated clock difference with the gateway that signed tickets (default 5 s).
    pub clock_skew: Duration,
    /// Unsent reliable bytes per connection before it is a slow consumer (default 1 MiB).
    pub max_reliable_queue_bytes: usize,
    /// Replayed messages in a row before the connection is closed (default 32).
    pub max_consecutive_replays: u32,
    /// Anti-replay window size in sequence numbers (default 64).
    pub replay_window: u32,
    /// Connections one client IP (one /64 for IPv6) may hold, logged in or not (default 64).
    /// Load tests spread their bots over many loopback addresses instead of raising it
    /// (`tickroom-bot swarm --source-addrs`).
    pub max_connections_per_ip: usize,
    /// Messages per second one client IP may send, sustained (default 100,000) and burst.
    pub ip_message_rate_per_s: u32,
    pub ip_message_burst: u32,
    /// Messages per second one session may send, sustained (default 120) and burst (240).
    pub session_message_rate_per_s: u32,
    pub session_message_burst: u32,
    /// Rate-limited messages within one second past which the connection is closed
    /// (default 240: a client sending at three times its rate is a flood, not a burst).
    pub max_rate_limited_per_s: u32,
    /// New rooms are refused while the last second's tick p99 exceeds this, in ms (default 10).
    pub max_tick_p99_ms: f64,
}

/// When QUIC validates a client's address with a Retry before starting the handshake. A Retry
/// costs the server nothing but a MAC and the client one round trip; it stops Initials from
/// spoofed addresses from holding handshake state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum QuicRetry {
    /// Never (every Initial starts a handshake).
    Never,
    /// While more than half the pre-login budget is in use.
    #[default]
    UnderLoad,
    /// Always (one more round trip for every connection).
    Always,
}

impl Default for RoomServerConfig {
    fn default() -> Self {
        RoomServerConfig {
            server_id: "room-1".into(),
            workers: std::thread::available_parallelism().map_or(2, |n| n.get()),
            io_threads: 0,
            room_queue_len: 65_536,
            room_queue_bytes: 16 * 1024 * 1024,
            max_rooms: 5_000,
            max_connections: 20_000,
            max_prelogin_connections: 1_024,
            quic_retry: QuicRetry::UnderLoad,
            handshake_timeout: Duration::from_secs(5),
            idle_timeout: Duration::from_secs(15),
            heartbeat_ttl: crate::roles::HEARTBEAT_TTL,
            clock_skew: Duration::from_secs(5),
            max_reliable_queue_bytes: outbox::DEFAULT_MAX_RELIABLE_QUEUE_BYTES,
            max_consecutive_replays: 32,
            replay_window: tickroom_protocol::replay::DEFAULT_REPLAY_WINDOW,
            max_connections_per_ip: 64,
            ip_message_rate_per_s: 100_000,
            ip_message_burst: 200_000,
            session_message_rate_per_s: 120,
            session_message_burst: 240,
            max_rate_limited_per_s: 240,
            max_tick_p99_ms: 10.0,
        }
    }
}

impl RoomServerConfig {
    /// How often the server refreshes its registration: a third of its TTL, so two missed
    /// heartbeats do not yet lose it.
    pub fn heartbeat_interval(&self) -> Duration {
        self.heartbeat_ttl / 3
    }
}

/// A player's session on this server: it outlives connections (resume) and owns the
/// anti-replay window, so a reconnect continues the window instead of resetting it.
#[derive(Debug)]
pub struct SessionRecord {
    pub session_id: SessionId,
    pub player_id: u64,
    pub room_id: RoomId,
    /// The room's mode (its custom-message limits apply to this session).
    pub mode: Arc<tickroom_game::modes::ModeConfig>,
    /// The join secret the player proved at join; resume keys are derived from it
    /// (`token::resume_key`) and never sent.
    pub join_secret: Secret,
    /// Successful resumes so far: the next resume's key is derived with this count (or, when
    /// the client missed the last `Welcome`, with the one before).
    pub resume_counter: Mutex<u32>,
    pub window: Mutex<ReplayWindow>,
    /// The session's message rate limit (every message), for the whole session: a resume does
    /// not get a fresh burst.
    pub message_limit: governor::DefaultDirectRateLimiter,
    /// The mode's custom-message rate, for the whole session (a reconnect does not reset it).
    pub message_rate: governor::DefaultDirectRateLimiter,
    /// A spectator's session: its input, checksums and custom messages are refused.
    pub spectator: bool,
    /// The join ticket's key id and nonce: what the join secret is derived from (a server
    /// taking the room over derives it again; the secret is never stored).
    pub ticket_key: (u16, [u8; 16]),
    /// Restored from a failover image and not resumed since: the image's resume count may be
    /// one behind the client's (it resumed after the image was taken), so the next key is
    /// accepted too. Keys are derived from the join secret, so this lets in nobody else.
    pub taken_over: std::sync::atomic::AtomicBool,
}

impl SessionRecord {
    /// The resume keys a client may answer with now, with the count each stands for: the
    /// current one, and the previous one for a client that missed its last `Welcome`.
    pub fn resume_keys(&self) -> (u32, Vec<(u32, Secret)>) {
        let current = *self.resume_counter.lock();
        let ahead = self
            .taken_over
            .load(Ordering::Acquire)
            .then(|| current.checked_add(1))
            .flatten();
        let keys = [Some(current), current.checked_sub(1), ahead]
            .into_iter()
            .flatten()
            .map(|n| (n, token::resume_key(&self.join_secret, self.session_id, n)))
            .collect();
        (current, keys)
    }

    /// Moves the counter from `seen` (read before the challenge) past `used`, the count whose
    /// key the client just proved; `None` when another resume moved it first.
    pub fn rotate_resume(&self, seen: u32, used: u32) -> Option<u32> {
        let mut current = self.resume_counter.lock();
        (*current == seen).then(|| {
            self.taken_over.store(false, Ordering::Release);
            *current = used + 1;
            *current
        })
    }

    /// Puts the counter back to `previous` if it is still `rotated` (the resume was refused
    /// before the client could see the new count).
    pub fn restore_resume(&self, rotated: u32, previous: u32) {
        let mut current = self.resume_counter.lock();
        if *current == rotated {
            *current = previous;
        }
    }
}

/// State shared by connections and room workers.
#[derive(Debug)]
pub struct Shared {
    pub config: RoomServerConfig,
    /// Ticket verification and join secrets only: a room server cannot sign anything.
    pub keys: RoomKeys,
    /// Every mode with the factory of its rooms (from the registered games).
    pub games: HashMap<String, ModeRooms>,
    /// Sessions seated in a room or in grace. Architecture invariant: only room workers
    /// write it (a session is added when seated, removed when it ends); connections read it.
    pub sessions: DashMap<SessionId, Arc<SessionRecord>>,
    /// Join-ticket nonces in use or used, with their expiry (unix ms), until they expire.
    used_tickets: Mutex<UsedTickets>,
    pub room_count: AtomicUsize,
    pub metrics: Metrics,
    pub started: Instant,
    pub ip_limits: Arc<IpLimits>,
    pub admission: Admission,
    /// Rooms that ended, for the process role to close in the directory and store their
    /// result (set when there is a directory).
    pub room_events: std::sync::OnceLock<tokio::sync::mpsc::Sender<RoomEvent>>,
    /// The shared directory when rooms fail over (a room server on Redis): rooms store their
    /// images (and lockstep rooms their frames) in it, and a resume of an unknown session
    /// looks there for a room this server took over.
    pub failover: std::sync::OnceLock<Failover>,
}

/// The directory rooms fail over through (see `Shared::failover`).
#[derive(Clone)]
pub struct Failover(pub Arc<dyn tickroom_gateway::Directory>);

impl std::fmt::Debug for Failover {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Failover")
    }
}

/// How far past a taken-over session's last known sequence number the new owner starts its
/// replay window: further than a session can send between two images (the session rate,
/// 120 a second, would need over a year), so no message captured before the takeover is
/// accepted again. The client learns the new floor from the resumed `Welcome.next_seq`.
pub const TAKEOVER_SEQ_JUMP: u64 = 1 << 32;

impl SessionRecord {
    /// A fresh session of `player_id` in `room_id`, a player's (not resumed yet, an empty
    /// replay window, the server's and the mode's rate limits), joined with the ticket that
    /// key `ticket_key.0` signed with nonce `ticket_key.1`.
    pub fn new(
        shared: &Shared,
        (session_id, player_id, room_id): (SessionId, u64, RoomId),
        mode: Arc<tickroom_game::modes::ModeConfig>,
        join_secret: Secret,
        ticket_key: (u16, [u8; 16]),
    ) -> SessionRecord {
        SessionRecord {
            session_id,
            player_id,
            room_id,
            message_rate: limits::limiter(mode.message_rate_per_s, mode.message_burst),
            mode,
            join_secret,
            resume_counter: Mutex::new(0),
            window: Mutex::new(ReplayWindow::new(shared.config.replay_window, false)),
            message_limit: limits::limiter(
                shared.config.session_message_rate_per_s,
                shared.config.session_message_burst,
            ),
            spectator: false,
            ticket_key,
            taken_over: std::sync::atomic::AtomicBool::new(false),
        }
    }

    /// The session of a seat in a room this server took over: its join secret derived again
    /// from the ticket's key id and nonce (`None` when that key left the ring), its resume
    /// count as the image kept it, and a replay window that accepts nothing at or below
    /// `highest_seq + TAKEOVER_SEQ_JUMP`.
    pub fn taken_over(
        shared: &Shared,
        room_id: RoomId,
        mode: Arc<tickroom_game::modes::ModeConfig>,
        seat: &room::image::SeatImage,
    ) -> Option<SessionRecord> {
        let join_secret = shared
            .keys
            .join_secret_of(seat.key_id, &seat.nonce, seat.player_id)?;
        let ids = (seat.session_id, seat.player_id, room_id);
        let mut record =
            SessionRecord::new(shared, ids, mode, join_secret, (seat.key_id, seat.nonce));
        *record.resume_counter.get_mut() = seat.resume_counter;
        record
            .window
            .get_mut()
            .commit(seat.highest_seq.saturating_add(TAKEOVER_SEQ_JUMP));
        *record.taken_over.get_mut() = true;
        Some(record)
    }
}

/// What the room workers tell the process role about rooms, for the directory.
#[derive(Debug, Clone)]
pub enum RoomEvent {
    /// The room seated its first player: the directory keeps its record until it closes.
    Joined(RoomId),
    /// The room ended.
    Closed(ClosedRoom),
    /// A running match of a `backfill` mode has `free` seats for matchmaking to fill.
    SeatsOpen { room_id: RoomId, free: usize },
    /// A room's failover image, indexed by its seats' sessions, to store for
    /// `ttl` (fenced by the room's epoch), and why it was taken.
    Image {
        room_id: RoomId,
        image: Vec<u8>,
        sessions: Vec<SessionId>,
        ttl: std::time::Duration,
        why: ImageWhy,
    },
    /// This server took the room over from a dead owner, at `epoch`.
    TakenOver { room_id: RoomId, epoch: u64 },
    /// Lockstep frames to store before they are sent, one worker tick's worth: per room, how
    /// long its log is kept and its newly closed frames (encoded `Frame` messages), oldest
    /// first.
    Frames(FrameBatch),
}

/// One worker tick's closed lockstep frames to store: per room, how long its log is kept,
/// and its new frames (number, encoded `Frame` message), oldest first.
pub type FrameBatch = Vec<(RoomId, std::time::Duration, Vec<(u64, Vec<u8>)>)>;

/// Why a room's image was taken, and what the process role does once it is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImageWhy {
    /// The periodic checkpoint: stored; a fenced refusal ends the room (it moved).
    Checkpoint,
    /// The room is held after a pause: the answer (`RoomInput::Ownership`) says whether it
    /// may tick again.
    Probe,
    /// The server shuts down: stored, then the room is moved to another server
    /// (`RoomInput::HandedOff`), or released to finish here when it cannot be.
    HandOff,
}

/// A room that ended, on its way to the directory.
#[derive(Debug, Clone)]
pub struct ClosedRoom {
    pub room_id: RoomId,
    pub mode: String,
    /// The game's result and who played, when the game ended the match with one.
    pub outcome: Option<MatchOutcome>,
}

/// Used-ticket count past which expired entries are first swept.
const USED_TICKETS_SWEEP_AT: usize = 4096;

/// Used join-ticket nonces with their expiry; swept when the map doubles, so inserts stay
/// amortised O(1) and memory is bounded by ticket lifetime × join rate.
#[derive(Debug)]
struct UsedTickets {
    expiry_ms: HashMap<[u8; 16], u64>,
    sweep_at: usize,
}

impl Default for UsedTickets {
    fn default() -> Self {
        UsedTickets {
            expiry_ms: HashMap::new(),
            sweep_at: USED_TICKETS_SWEEP_AT,
        }
    }
}

impl Shared {
    /// Takes a room slot if the server is under its room limit.
    pub fn admit_room(&self) -> bool {
        if self.admission.overloaded() {
            return false;
        }
        self.room_count
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < self.config.max_rooms).then_some(n + 1)
            })
            .is_ok()
    }

    /// Reserves a ticket nonce; false when it was already used (or is being used).
    pub fn reserve_ticket(&self, nonce: [u8; 16], expires_ms: u64) -> bool {
        let now = unix_ms();
        let mut used = self.used_tickets.lock();
        if used.expiry_ms.len() >= used.sweep_at {
            let skew = self.config.clock_skew.as_millis() as u64;
            used.expiry_ms
                .retain(|_, exp| exp.saturating_add(skew) >= now);
            used.sweep_at = (used.expiry_ms.len() * 2).max(USED_TICKETS_SWEEP_AT);
        }
        used.expiry_ms.insert(nonce, expires_ms).is_none()
    }

    /// Releases a reservation whose join failed, so the holder can retry with the same ticket.
    pub fn release_ticket(&self, nonce: &[u8; 16]) {
        self.used_tickets.lock().expiry_ms.remove(nonce);
    }

    /// Used-ticket entries held (bounded by ticket lifetime × join rate).
    pub fn used_ticket_count(&self) -> usize {
        self.used_tickets.lock().expiry_ms.len()
    }
}

/// The room server: shared state plus the worker pool and the connection budgets.
#[derive(Debug)]
pub struct RoomServer {
    pub shared: Arc<Shared>,
    pub pool: RoomPool,
    /// Connections that have not logged in: a permit is taken before each accept.
    pub prelogin: PreLogin,
    /// Logged-in connections: a pre-login permit is exchanged for one of these once the
    /// handshake's challenge is answered.
    pub session_slots: Arc<Semaphore>,
    /// Where WebSocket connections run (None: on the main runtime).
    pub io: Option<IoThreads>,
}

impl RoomServer {
    /// Starts the worker threads; every mode must name a game in `games`.
    pub fn new(
        config: RoomServerConfig,
        keys: RoomKeys,
        modes: &Modes,
        games: &GameRegistry,
    ) -> Result<Arc<RoomServer>, StartError> {
        let games = games.bind(modes)?;
        let io = match config.io_threads {
            0 => None,
            n => Some(IoThreads::start(n).map_err(StartError::IoThreads)?),
        };
        let workers = config.workers.max(1);
        let queue_len = config.room_queue_len;
        let queue_bytes = config.room_queue_bytes;
        let session_slots = Arc::new(Semaphore::new(config.max_connections.max(1)));
        let prelogin = PreLogin::new(config.max_prelogin_connections);
        let shared = Arc::new(Shared {
            keys,
            games,
            sessions: DashMap::new(),
            used_tickets: Mutex::new(UsedTickets::default()),
            room_count: AtomicUsize::new(0),
            metrics: Metrics::new(workers),
            started: Instant::now(),
            ip_limits: IpLimits::new(
                config.max_connections_per_ip,
                config.ip_message_rate_per_s,
                config.ip_message_burst,
            ),
            admission: Admission::default(),
            room_events: std::sync::OnceLock::new(),
            failover: std::sync::OnceLock::new(),
            config,
        });
        // Per-mode counters start at 0 for every mode, so a quiet one still has a series.
        for mode in modes.iter() {
            let m = &shared.metrics;
            for counter in [&m.desyncs, &m.checksum_disagreements, &m.game_panics] {
                counter.add(&mode.name, 0);
            }
        }
        spawn_admission_monitor(Arc::downgrade(&shared));
        let pool = RoomPool::start(shared.clone(), workers, queue_len, queue_bytes);
        Ok(Arc::new(RoomServer {
            shared,
            pool,
            prelogin,
            session_slots,
            io,
        }))
    }

    /// This server's metrics (OpenMetrics text without `# EOF`, through `prometheus-client`).
    pub fn render_metrics(self: &Arc<Self>, out: &mut String) {
        tickroom_gateway::prom::encode_into(out, self.clone(), |s, e| {
            s.shared.metrics.encode(e, &s.pool.queue_depths())?;
            tickroom_gateway::prom::gauge(
                e,
                "tickroom_prelogin_connections",
                "connections not logged in yet",
                None,
                s.prelogin.in_use() as u64,
            )
        });
    }

    /// Current load for placement: players seated or in grace.
    pub fn load(&self) -> u32 {
        self.shared.sessions.len() as u32
    }
}

/// How often admission control looks at the recent tick p99.
pub const ADMISSION_CHECK_INTERVAL: Duration = Duration::from_secs(1);

/// A thread that flags the server overloaded while the last interval's tick p99 is over
/// budget; it ends when the server is dropped.
fn spawn_admission_monitor(shared: std::sync::Weak<Shared>) {
    let _ = std::thread::Builder::new()
        .name("admission".into())
        .spawn(move || loop {
            std::thread::park_timeout(ADMISSION_CHECK_INTERVAL);
            let Some(shared) = shared.upgrade() else {
                return;
            };
            let p99 = shared.metrics.take_recent_tick_p99_ms();
            let over = p99.is_some_and(|p| p > shared.config.max_tick_p99_ms);
            if over != shared.admission.overloaded() {
                tracing::warn!(tick_p99_ms = ?p99, overloaded = over, "admission control changed");
            }
            shared.admission.set_overloaded(over);
            shared
                .metrics
                .overloaded
                .add(i64::from(over) - shared.metrics.overloaded.value());
        });
}

/// Wall-clock unix milliseconds (tokens carry wall-clock times).
pub fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(join_secret: Secret) -> SessionRecord {
        let mode = Modes::embedded().by_name("arena").unwrap().clone();
        SessionRecord {
            session_id: 1,
            player_id: 2,
            room_id: 3,
            mode: Arc::new(mode),
            join_secret,
            resume_counter: Mutex::new(0),
            window: Mutex::new(ReplayWindow::new(64, false)),
            message_limit: limits::limiter(1, 1),
            message_rate: limits::limiter(1, 1),
            spectator: false,
            ticket_key: (1, [0; 16]),
            taken_over: std::sync::atomic::AtomicBool::new(false),
        }
    }

    /// A resume the room refuses leaves the client's key valid; only one of two racing
    /// resumes rotates it; a client that missed its last Welcome may use the key before.
    #[test]
    fn a_refused_resume_keeps_the_old_key_and_racing_resumes_rotate_once() {
        let r = record([1; 32]);
        let (seen, keys) = r.resume_keys();
        assert_eq!((seen, keys.len()), (0, 1), "no key before the first");
        assert_eq!(keys[0].1, token::resume_key(&[1; 32], 1, 0));
        let next = r.rotate_resume(seen, 0).unwrap();
        assert!(r.rotate_resume(seen, 0).is_none(), "the loser");
        r.restore_resume(next, seen);
        assert_eq!(*r.resume_counter.lock(), 0);
        // A restore after another rotation already happened changes nothing.
        let next = r.rotate_resume(0, 0).unwrap();
        let later = r.rotate_resume(next, next).unwrap();
        r.restore_resume(next, 0);
        assert_eq!(*r.resume_counter.lock(), later);
        // At count 2 the keys of counts 2 and 1 are accepted, and never that of 0.
        let (seen, keys) = r.resume_keys();
        assert_eq!(seen, 2);
        let counts: Vec<u32> = keys.iter().map(|(n, _)| *n).collect();
        assert_eq!(counts, [2, 1]);
        assert!(keys
            .iter()
            .all(|(_, k)| *k != token::resume_key(&[1; 32], 1, 0)));
    }

    /// A session taken over from an image refuses every sequence number up to 2^32 past the
    /// image's highest: a message captured before the move (its seq at most a few thousand
    /// past the image) cannot be replayed to the new owner. It keeps its resume count, and its
    /// join secret is the one the ticket's key id and nonce derive.
    #[test]
    fn a_taken_over_session_refuses_every_seq_from_before_the_move() {
        let ring = tickroom_protocol::KeyRing::single(1, [7; 32]);
        let modes = Modes::embedded();
        let server = RoomServer::new(
            RoomServerConfig {
                workers: 1,
                ..RoomServerConfig::default()
            },
            ring.room_keys().clone(),
            &modes,
            Server::with_sample_games().games(),
        )
        .unwrap();
        let seat = room::image::SeatImage {
            slot: 0,
            player_id: 5,
            session_id: 9,
            metadata: Default::default(),
            key_id: 1,
            nonce: [3; 16],
            resume_counter: 2,
            highest_seq: 40,
        };
        let mode = Arc::new(modes.by_name("duel").unwrap().clone());
        let r = SessionRecord::taken_over(&server.shared, 77, mode, &seat).unwrap();
        let window = r.window.lock();
        for captured in [1, 40, 41, 5_000, 40 + TAKEOVER_SEQ_JUMP] {
            assert!(window.check(captured).is_err(), "seq {captured} replayed");
        }
        assert!(window.check(40 + TAKEOVER_SEQ_JUMP + 1).is_ok());
        assert_eq!(*r.resume_counter.lock(), 2);
        assert_eq!(
            Some(r.join_secret),
            ring.room_keys().join_secret_of(1, &[3; 16], 5)
        );
        // A key that left the ring cannot be taken over.
        let gone = room::image::SeatImage { key_id: 9, ..seat };
        let mode = Arc::new(modes.by_name("duel").unwrap().clone());
        assert!(SessionRecord::taken_over(&server.shared, 77, mode, &gone).is_none());
        drop(window);
        server.pool.shutdown();
    }

    /// A session restored from a failover image also takes the next count's key (the client
    /// may have resumed after the image was taken), until its first resume here.
    #[test]
    fn a_taken_over_session_accepts_the_next_key_until_it_resumes() {
        let r = record([1; 32]);
        *r.resume_counter.lock() = 3;
        r.taken_over.store(true, Ordering::Release);
        let counts =
            |r: &SessionRecord| -> Vec<u32> { r.resume_keys().1.iter().map(|(n, _)| *n).collect() };
        assert_eq!(counts(&r), [3, 2, 4]);
        let next = r.rotate_resume(3, 4).unwrap();
        assert_eq!(next, 5);
        assert_eq!(counts(&r), [5, 4], "an ordinary session again");
    }
}
