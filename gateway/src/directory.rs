//! The `Directory`: the shared state behind stateless gateways and room servers — the
//! room-server registry, the matchmaking queues, ticket status, room records and the results
//! of finished matches — as one async, object-safe trait, plus the power-of-two-choices
//! placement every implementation uses.

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use rand::Rng;
use serde::{Deserialize, Serialize};
use tickroom_game::modes::MatchRules;
use tickroom_game::PlayerMetadata;
use tickroom_protocol::api::Grouping;
use tickroom_protocol::ErrorCode;
use tokio::sync::broadcast;

pub use tickroom_protocol::api::MatchPlayer;

/// How often a long poll's waiter re-reads its ticket from a directory that sends no change
/// notifications (`Directory::ticket_changes` is `None`), in ms.
pub const TICKET_POLL_INTERVAL_MS: u64 = 25;
/// Capacity of a directory's ticket-change channel, in messages (one per formation batch or
/// cancel); a listener that falls behind is told `Lagged` and treats it as `Unknown`.
pub const TICKET_CHANGES_QUEUE_LEN: usize = 1024;
/// Room ids stay below 2^53 so every JSON number implementation holds them exactly.
pub const ROOM_ID_MASK: u64 = (1 << 53) - 1;
/// Largest match result a directory stores, in bytes (a scoreboard, not a replay).
pub const MAX_MATCH_RESULT_BYTES: usize = 16 * 1024;
/// How long a room server should keep a match result readable, unless it has a reason to
/// choose otherwise.
pub const DEFAULT_MATCH_RESULT_TTL: Duration = Duration::from_secs(60 * 60);
/// Longest a match result is kept; a longer `ttl` is shortened to this.
pub const MAX_MATCH_RESULT_TTL: Duration = Duration::from_secs(7 * 24 * 60 * 60);
/// The epoch every room is placed at; `Directory::close_room` closes a room only at it.
pub const PLACEMENT_EPOCH: u64 = 1;
/// Most rooms one player may be placed in at once: rooms whose record still exists and whose
/// owner is alive. Past it `enqueue` answers `TooManyRooms`. (Queued tickets are capped at one
/// per player: a second is `AlreadyQueued`; each matched ticket belongs to one of these rooms.)
pub const MAX_OPEN_ROOMS_PER_PLAYER: usize = 4;

/// One room server as registered in the directory. `capacity` and `load` are counted in the
/// same unit (player seats): placement adds a match's player count to `load` until the
/// server's next heartbeat reports its real load.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RoomServerInfo {
    /// Unique id of the room server process; join tickets name it.
    pub server_id: String,
    /// Address clients reach its QUIC endpoint on.
    pub quic_addr: String,
    /// Address clients reach its WebSocket endpoint on.
    pub ws_addr: String,
    /// Hex SHA-256 of its (self-signed) certificate, for clients to pin.
    pub cert_fingerprint: String,
    /// Its WebSocket listener speaks TLS (`wss://`, the same certificate).
    #[serde(default)]
    pub ws_tls: bool,
    /// Seats it accepts in total.
    pub capacity: u32,
    /// Seats in use (or promised by placement since the last heartbeat).
    pub load: u32,
    /// A draining server keeps its rooms but gets no new ones.
    pub draining: bool,
}

/// Why the directory could not answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DirectoryError {
    /// The backing store is unreachable or failed; the request may be retried.
    #[error("directory unavailable: {0}")]
    Unavailable(String),
    /// A bounded table (queue, rooms) is full; the request may be retried later.
    #[error("directory is full: {0}")]
    Full(&'static str),
    /// The value is larger than the directory stores; retrying will not help.
    #[error("{what} is larger than the {limit_bytes} bytes a directory stores")]
    TooLarge {
        /// What was refused.
        what: &'static str,
        /// The bound it broke, in bytes.
        limit_bytes: usize,
    },
}

/// A matchmaking ticket id: 128 random bits, written as 32 lower-case hex digits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct TicketId(pub u128);

/// Why a string is not a ticket id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a ticket id is 32 hex digits")]
pub struct TicketIdError;

impl TicketId {
    /// A fresh random ticket id.
    pub fn random() -> TicketId {
        TicketId(rand::random())
    }
}

impl fmt::Display for TicketId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:032x}", self.0)
    }
}

impl FromStr for TicketId {
    type Err = TicketIdError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.len() != 32 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(TicketIdError);
        }
        u128::from_str_radix(s, 16)
            .map(TicketId)
            .map_err(|_| TicketIdError)
    }
}

/// A player joining a mode's queue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueueEntry {
    /// The ticket the player polls.
    pub ticket_id: TicketId,
    /// Who is queued (from the session token).
    pub player_id: u64,
    /// The mode queued for.
    pub mode: String,
    /// When the player queued, unix ms.
    pub enqueued_ms: u64,
    /// Signed into the player's join ticket. Supplied by the client (display name, loadout),
    /// so never trusted for ranking; trusted values such as ratings will be set by
    /// matchmaking itself.
    pub metadata: PlayerMetadata,
    /// What the mode's matchmaking rules read (checked against them by the gateway).
    #[serde(default)]
    pub properties: PlayerMetadata,
    /// The party queued with this ticket: its members are matched as one unit.
    #[serde(default)]
    pub party: Option<TicketId>,
}

/// Where a matched ticket's player must go.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Assignment {
    /// The room to join.
    pub room_id: u64,
    /// The room's mode.
    pub mode: String,
    /// The room server hosting it, as it was registered at placement.
    pub server: RoomServerInfo,
    /// The ticket's metadata (from its `QueueEntry`), for the join ticket.
    pub metadata: PlayerMetadata,
    /// Why the players were grouped (modes with matchmaking rules).
    pub grouping: Option<Box<Grouping>>,
}

/// Where a ticket stands.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum TicketStatus {
    /// Still waiting in the queue.
    Queued,
    /// Placed in a room.
    Matched(Assignment),
}

/// A ticket as the directory holds it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TicketRecord {
    /// The ticket's id.
    pub ticket_id: TicketId,
    /// Its owner.
    pub player_id: u64,
    /// The mode queued for.
    pub mode: String,
    /// When it was queued, unix ms.
    pub enqueued_ms: u64,
    /// Queued or matched.
    pub status: TicketStatus,
}

/// The result of `Directory::enqueue`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EnqueueOutcome {
    /// The ticket is in the queue.
    Queued,
    /// The player already waits in a queue under this ticket; nothing changed.
    AlreadyQueued(TicketId),
    /// The player was placed in `room_id` less than its join window ago and may still join
    /// it: no new ticket until the window ends (`retry_after_ms` from the entry's
    /// `enqueued_ms`), the room closes, or its server dies. Nothing changed.
    MatchPending {
        /// The room the player should join.
        room_id: u64,
        /// How long until the join window ends, in ms.
        retry_after_ms: u64,
    },
    /// The player is in `open` rooms that are still open (`MAX_OPEN_ROOMS_PER_PLAYER`);
    /// nothing changed.
    TooManyRooms {
        /// The player's open rooms.
        open: usize,
    },
}

/// A ticket-change notification (`Directory::ticket_changes`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TicketChange {
    /// These tickets left the queue (matched or cancelled).
    Left(Arc<[TicketId]>),
    /// Notifications may have been missed (the listener reconnected): any waiting ticket may
    /// have changed.
    Unknown,
}

/// The result of `Directory::cancel_ticket`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CancelOutcome {
    /// The ticket left the queue.
    Cancelled,
    /// Too late: the ticket was already placed in a room.
    AlreadyMatched,
    /// No such ticket for this player.
    NotFound,
}

/// One atomic match-formation pass over one mode's queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MatchRequest {
    /// The mode whose queue is drained.
    pub mode: String,
    /// Room size: a full match takes this many players.
    pub players: usize,
    /// Fewest players a match may start with once the oldest has waited `wait_ms`.
    pub min_players: usize,
    /// How long the oldest player waits for a full room before `min_players` suffices, in ms.
    pub wait_ms: u64,
    /// A queued ticket not polled for this long is dropped (its client went away), in ms.
    pub abandon_after_ms: u64,
    /// The caller's clock, unix ms.
    pub now_ms: u64,
    /// At most this many matches are formed by this pass.
    pub max_matches: usize,
    /// How long a placed player may take to join, in ms: the join ticket's TTL plus the mode's
    /// start timeout. Until then the player gets no new ticket (`MatchPending`), and a room
    /// nobody joined is dropped after it (on servers that report joins: `room_joined`).
    pub join_window_ms: u64,
    /// Seeds the placement choices and room ids of this pass.
    pub seed: u64,
    /// The mode's matchmaking rules; `None`: first come, first served.
    pub rules: Option<MatchRules>,
    /// Teams a match is split into (the mode's `teams`; 1: none).
    pub teams: usize,
}

/// Most players in one party.
pub const MAX_PARTY_MEMBERS: usize = 16;
/// A party lives this long after its last change (creation, a join, a leave, queueing).
pub const PARTY_TTL: Duration = Duration::from_secs(60 * 60);

/// A party: players who queue together and always land in the same room (and team).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartyRecord {
    /// The party's id.
    pub party_id: TicketId,
    /// The code others join it with (a private room's alphabet and length).
    pub code: String,
    /// Who created it: only the leader queues the party; the leader leaving ends it.
    pub leader: u64,
    /// Everyone in it, the leader first.
    pub members: Vec<u64>,
    /// The members' tickets while the party is queued or matched: (player, ticket).
    #[serde(default)]
    pub tickets: Vec<(u64, TicketId)>,
}

/// The answer of `Directory::create_party` and `Directory::join_party`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PartyAnswer {
    /// The player is in this party.
    In(Box<PartyRecord>),
    /// The player is already in another party (its id).
    InAnother(TicketId),
    /// The party has `MAX_PARTY_MEMBERS`, or is queued (no joins until it is matched or
    /// cancelled).
    Closed,
    /// No party has this code (or the code is taken, when creating).
    NotFound,
}

/// A private room to create (`Directory::create_private_room`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrivateRoomRequest {
    /// Its mode.
    pub mode: String,
    /// Its join code (`private_code`), unique among live codes.
    pub code: String,
    /// Seats in it (the mode's `players`): `join_by_code` seats no more.
    pub seats: usize,
    /// The caller's clock, unix ms.
    pub now_ms: u64,
    /// How long the room and its code live while nobody joined it, in ms (the mode's
    /// `private_room_ttl_s`); once its server reports a join, as long as any room record.
    pub ttl_ms: u64,
    /// Seeds the placement choice.
    pub seed: u64,
}

/// The answer of `Directory::join_by_code`.
#[derive(Debug, Clone, PartialEq)]
pub enum CodeJoin {
    /// The player has a seat in this room.
    Joined(Box<RoomRecord>),
    /// Every seat is taken.
    Full,
    /// No live room has this code.
    NotFound,
}

/// Characters of a private room's join code: Crockford's base32 (no I, L, O or U, so a
/// code read aloud or typed is not mistaken).
pub const CODE_ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";
/// Characters in a join code: 40 random bits.
pub const CODE_LEN: usize = 8;

/// A fresh random join code.
pub fn private_code(rng: &mut impl Rng) -> String {
    (0..CODE_LEN)
        .map(|_| char::from(CODE_ALPHABET[rng.random_range(0..CODE_ALPHABET.len())]))
        .collect()
}

/// A code as a player typed it: upper-cased, `None` unless it has the code's length and
/// alphabet.
pub fn normalise_code(text: &str) -> Option<String> {
    let code = text.trim().to_ascii_uppercase();
    (code.len() == CODE_LEN && code.bytes().all(|b| CODE_ALPHABET.contains(&b))).then_some(code)
}

/// One player placed by a formation pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MatchedPlayer {
    /// The player's ticket.
    pub ticket_id: TicketId,
    /// The player.
    pub player_id: u64,
    /// When they queued, unix ms (for queue-time metrics).
    pub enqueued_ms: u64,
}

/// A match a formation pass created.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FormedMatch {
    /// The fresh room's id.
    pub room_id: u64,
    /// The room server chosen for it.
    pub server_id: String,
    /// Who is in it (first come, first served: oldest first; by rules: the anchor first).
    pub players: Vec<MatchedPlayer>,
    /// Why they were grouped (modes with matchmaking rules).
    pub grouping: Option<Grouping>,
}

/// What a formation pass did.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Formation {
    /// The matches created, in order.
    pub matches: Vec<FormedMatch>,
    /// Players left in the mode's queue afterwards.
    pub still_queued: usize,
}

/// A room as recorded at placement.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RoomRecord {
    /// The room's id.
    pub room_id: u64,
    /// Its mode.
    pub mode: String,
    /// The room server it was placed on.
    pub server: RoomServerInfo,
    /// The players placed in it.
    pub players: Vec<u64>,
    /// When it was placed, unix ms.
    pub created_ms: u64,
    /// Ownership generation: 1 at placement, +1 on every reassignment. Writes that name an
    /// older epoch are refused (fencing), so a stale owner after a split changes nothing.
    pub epoch: u64,
    /// End of the join window, unix ms (`created_ms` + `MatchRequest::join_window_ms`).
    #[serde(default)]
    pub join_by_ms: u64,
    /// Whether the owner reported a seated player (`Directory::room_joined`).
    #[serde(default)]
    pub joined: bool,
    /// Why its players were grouped (modes with matchmaking rules).
    #[serde(default)]
    pub grouping: Option<Box<Grouping>>,
    /// A private room's join code.
    #[serde(default)]
    pub code: Option<String>,
}

/// The result of a finished match, kept for its players to read (`GET /v1/matches/{id}`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MatchRecord {
    /// The room the match was played in.
    pub room_id: u64,
    /// Its mode.
    pub mode: String,
    /// Who played, with their seats; only they may read the result.
    pub players: Vec<MatchPlayer>,
    /// The game's own encoding of the result, at most `MAX_MATCH_RESULT_BYTES`.
    #[serde(with = "tickroom_protocol::api::base64_bytes")]
    pub result: Vec<u8>,
    /// When the match ended, unix ms.
    pub ended_ms: u64,
}

impl MatchRecord {
    /// Refuses a result larger than `MAX_MATCH_RESULT_BYTES` (every directory calls this).
    pub fn check_size(&self) -> Result<(), DirectoryError> {
        if self.result.len() > MAX_MATCH_RESULT_BYTES {
            return Err(DirectoryError::TooLarge {
                what: "match result",
                limit_bytes: MAX_MATCH_RESULT_BYTES,
            });
        }
        Ok(())
    }

    /// Whether `player_id` played in this match.
    pub fn has_player(&self, player_id: u64) -> bool {
        self.players.iter().any(|p| p.player_id == player_id)
    }
}

/// A room record and whether its owner is still registered.
#[derive(Debug, Clone, PartialEq)]
pub struct RoomStatus {
    /// The room as recorded.
    pub record: RoomRecord,
    /// `true` while the owning room server's registration has not expired.
    pub owner_alive: bool,
}

/// The result of `Directory::reassign_room`.
#[derive(Debug, Clone, PartialEq)]
pub enum ReassignOutcome {
    /// The room now belongs to the new server under the returned (incremented) epoch.
    Reassigned(Box<RoomRecord>),
    /// The room's epoch moved on (someone else reassigned it first); nothing changed.
    StaleEpoch {
        /// The epoch the room is at now.
        current: u64,
    },
    /// The new server is not live; nothing changed.
    ServerNotLive,
    /// No such room.
    NotFound,
}

/// Most operator commands queued for one room server at once; more are refused with `Full`.
pub const MAX_QUEUED_COMMANDS: usize = 64;
/// A queued operator command that its room server did not take within this long is dropped
/// (the server is gone); so is a reply nobody read.
pub const COMMAND_TTL: Duration = Duration::from_secs(10);
/// Most recent errors a directory keeps from room servers (`report_errors`), newest first.
pub const MAX_RECENT_ERRORS: usize = 256;
/// Most rooms one `list_rooms` call returns.
pub const MAX_ROOMS_PAGE: usize = 500;
/// Longest message an `ErrorRecord` keeps, in bytes (longer ones are cut).
pub const MAX_ERROR_MESSAGE_BYTES: usize = 256;

/// What a room server tells operators about itself beside its registration (the admin API's
/// server list); written with every heartbeat and living as long as the registration.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServerAbout {
    /// The room server it describes.
    pub server_id: String,
    /// Its build (`CARGO_PKG_VERSION` of tickroom-server).
    pub version: String,
    /// When it started, unix ms.
    pub started_ms: u64,
    /// Rooms it runs now.
    pub rooms: u64,
    /// An operator (or `--drain`) asked it to take no new rooms. `RoomServerInfo::draining`
    /// is also set while admission control finds it overloaded.
    pub drain_requested: bool,
}

/// One page of `Directory::list_rooms`, newest room first.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RoomPage {
    /// Rooms recorded in all (an estimate with Redis: records that expired unseen are counted
    /// until a listing passes over them).
    pub total: u64,
    /// At most the `limit` asked for (and `MAX_ROOMS_PAGE`).
    pub rooms: Vec<RoomRecord>,
}

/// An operator's action, carried out by one room server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum AdminAction {
    /// Who sits in the room now.
    Seats {
        /// The room.
        room_id: u64,
    },
    /// Ends a player's session with `code` (`Kicked{code}`, then the close).
    Kick {
        /// The room.
        room_id: u64,
        /// The player to remove.
        player_id: u64,
        /// The reason the player is told.
        code: ErrorCode,
    },
    /// Ends the room: its players get `Kicked{RoomClosed}`.
    Close {
        /// The room.
        room_id: u64,
    },
    /// Takes no new rooms (`true`) or takes them again (`false`); running rooms go on.
    Drain {
        /// Draining or not.
        draining: bool,
    },
}

/// An `AdminAction` on its way to a room server through the directory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AdminCommand {
    /// Random; names the reply (`Directory::put_reply`).
    pub id: u64,
    /// The id of the admin token that asked (for the room server's log).
    pub actor: String,
    /// When the gateway sent it, unix ms: a room server skips a command older than
    /// `COMMAND_TTL` (its gateway stopped waiting long ago).
    pub issued_ms: u64,
    /// What to do.
    pub action: AdminAction,
}

/// One seat of a running room.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SeatInfo {
    /// The seat's slot.
    pub slot: u8,
    /// Who sits there.
    pub player_id: u64,
    /// False while the player is disconnected (in grace).
    pub connected: bool,
}

/// What a room server answered to an `AdminAction`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum AdminReply {
    /// Done (kick, close, drain).
    Done,
    /// The seats of a running room.
    Seats {
        /// The game's current tick (state) or next frame (lockstep).
        tick: u64,
        /// The match started.
        started: bool,
        /// Occupied seats, by slot.
        seats: Vec<SeatInfo>,
    },
    /// The server runs no such room (nobody joined it yet, or it ended).
    NoRoom,
    /// No such player is seated in the room.
    NoPlayer,
    /// The server could not do it now (its room queue is full, the room did not answer).
    Failed {
        /// Why.
        message: String,
    },
}

/// An error or refusal for operators (`GET /v1/admin/errors`): a gateway API error answer, or
/// a room server's handshake refusal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorRecord {
    /// When, unix ms.
    pub time_ms: u64,
    /// `"gateway"` (an HTTP API answer), `"admin"` (the admin API's own) or `"room"` (a room
    /// server's handshake refusal).
    pub source: String,
    /// The room server, for `"room"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_id: Option<String>,
    /// The `ErrorCode` number.
    pub code: u16,
    /// The `ErrorCode` name.
    pub error: String,
    /// The HTTP status, for gateway answers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// Where: `"POST /v1/auth/device"` (the route, never the raw path) or `"handshake"`.
    pub what: String,
    /// The human text, at most `MAX_ERROR_MESSAGE_BYTES`.
    pub message: String,
}

impl ErrorRecord {
    /// A record of `code` now; `message` is cut to `MAX_ERROR_MESSAGE_BYTES`.
    pub fn new(source: &str, code: ErrorCode, what: String, message: &str) -> ErrorRecord {
        let mut end = message.len().min(MAX_ERROR_MESSAGE_BYTES);
        while !message.is_char_boundary(end) {
            end -= 1;
        }
        ErrorRecord {
            time_ms: crate::now_ms(),
            source: source.to_owned(),
            server_id: None,
            code: code.as_u16(),
            error: code.name().to_owned(),
            status: None,
            what,
            message: message[..end].to_owned(),
        }
    }
}

/// The shared state of a tickroom deployment. Every method is one atomic step, so any number
/// of gateways and room servers over one directory behave as one.
#[async_trait]
pub trait Directory: Send + Sync + 'static {
    /// Upsert + heartbeat: the entry lives for `ttl` unless refreshed.
    async fn register_server(
        &self,
        info: RoomServerInfo,
        ttl: Duration,
    ) -> Result<(), DirectoryError>;

    /// Removes a room server at once (clean shutdown).
    async fn deregister_server(&self, server_id: &str) -> Result<(), DirectoryError>;

    /// Every room server whose registration has not expired, ordered by `server_id`.
    async fn live_servers(&self) -> Result<Vec<RoomServerInfo>, DirectoryError>;

    /// Puts a player in a mode's queue, unless they already wait in one, were placed in a
    /// room whose join window is still open (`MatchPending`), or are in
    /// `MAX_OPEN_ROOMS_PER_PLAYER` open rooms (`TooManyRooms`). Rooms whose owner died do not
    /// count: their players queue again. `entry.enqueued_ms` is the caller's clock.
    async fn enqueue(&self, entry: QueueEntry) -> Result<EnqueueOutcome, DirectoryError>;

    /// Reads a ticket without side effects. `None` once it is unknown, cancelled, abandoned,
    /// matched longer ago than the retention, or its room was closed.
    async fn ticket(&self, ticket_id: TicketId) -> Result<Option<TicketRecord>, DirectoryError>;

    /// Reads a ticket and records that its owner is still waiting at `now_ms` (so it is not
    /// dropped as abandoned).
    async fn touch_ticket(
        &self,
        ticket_id: TicketId,
        now_ms: u64,
    ) -> Result<Option<TicketRecord>, DirectoryError>;

    /// Notifications of tickets leaving the queue, so that long polls wait on them instead of
    /// re-reading tickets (every call subscribes anew). `None` (the default) when the
    /// directory sends none: waiters then re-read every `ticket_poll_interval()`.
    fn ticket_changes(&self) -> Option<broadcast::Receiver<TicketChange>> {
        None
    }

    /// How often a waiter re-reads a queued ticket when `ticket_changes` is `None`.
    fn ticket_poll_interval(&self) -> Duration {
        Duration::from_millis(TICKET_POLL_INTERVAL_MS)
    }

    /// Removes a queued ticket owned by `player_id`; a party ticket takes every ticket of its
    /// party with it.
    async fn cancel_ticket(
        &self,
        ticket_id: TicketId,
        player_id: u64,
    ) -> Result<CancelOutcome, DirectoryError>;

    /// The atomic formation step: pops full matches (or one of at least `min_players` once
    /// the oldest waited long enough), places each on a live server by `pick_server`, records
    /// the room and every ticket's assignment. No player is ever placed twice, whatever the
    /// number of callers.
    async fn form_matches(&self, request: MatchRequest) -> Result<Formation, DirectoryError>;

    /// The running room `room_id`, owned by `server_id`, has `free` seats for matchmaking to
    /// fill (a `backfill` mode that lost a player): formation passes of its mode fill them,
    /// oldest tickets first, before they form new rooms. Returns whether the room is known.
    async fn open_seats(
        &self,
        room_id: u64,
        server_id: &str,
        free: usize,
    ) -> Result<bool, DirectoryError>;

    /// Creates `party` (its leader as its only member) unless the leader is in a party or the
    /// code is taken (`NotFound`).
    async fn create_party(&self, party: PartyRecord) -> Result<PartyAnswer, DirectoryError>;

    /// Adds `player_id` to the party with `code` (the same player again: the same answer).
    async fn join_party(&self, code: &str, player_id: u64) -> Result<PartyAnswer, DirectoryError>;

    /// The party, if it exists.
    async fn party(&self, party_id: TicketId) -> Result<Option<PartyRecord>, DirectoryError>;

    /// `player_id` leaves the party; the leader leaving ends it. A queued party's tickets are
    /// cancelled. Returns whether the player was in it.
    async fn leave_party(&self, party_id: TicketId, player_id: u64)
        -> Result<bool, DirectoryError>;

    /// Queues every member of the leader's party at once (`entries`: one per member, in
    /// member order, each naming the party): all or none. The first refusal of any member is
    /// the answer; `Ok(None)` when the party changed (not `leader`'s, or other members).
    async fn enqueue_party(
        &self,
        party_id: TicketId,
        leader: u64,
        entries: Vec<QueueEntry>,
    ) -> Result<Option<EnqueueOutcome>, DirectoryError>;

    /// Creates a private room of `request.mode` under `request.code` on a live server (power of
    /// two choices). `Ok(None)`: the code is taken or no server takes new rooms.
    async fn create_private_room(
        &self,
        request: PrivateRoomRequest,
    ) -> Result<Option<RoomRecord>, DirectoryError>;

    /// Seats `player_id` in the private room with `code` (up to its `seats`); the same player
    /// again gets the same answer.
    async fn join_by_code(&self, code: &str, player_id: u64) -> Result<CodeJoin, DirectoryError>;

    /// The record of a room, if it still exists.
    async fn room(&self, room_id: u64) -> Result<Option<RoomRecord>, DirectoryError>;

    /// The private room with `code`, if its code still lives (as for `join_by_code`), without
    /// seating anyone: for spectators.
    async fn room_by_code(&self, code: &str) -> Result<Option<RoomRecord>, DirectoryError>;

    /// Forgets a room whose match ended, as the owner it was placed on: fenced at
    /// `PLACEMENT_EPOCH`, so once the room was reassigned the old owner's close changes
    /// nothing. An owner that took a room over closes with `close_room_at` and its epoch.
    async fn close_room(&self, room_id: u64) -> Result<(), DirectoryError> {
        self.close_room_at(room_id, PLACEMENT_EPOCH)
            .await
            .map(|_| ())
    }

    /// Forgets a room only if it is still at `epoch` (a fenced close by its owner); `false`
    /// when the room is gone or its epoch moved on.
    async fn close_room_at(&self, room_id: u64, epoch: u64) -> Result<bool, DirectoryError>;

    /// The room server `server_id` seated a player of `room_id`: the record is kept until
    /// the room is closed (not dropped at the end of its join window). Returns the room's
    /// epoch (for `close_room_at`), or `None` when the room is gone or `server_id` does not
    /// own it. A server that reports joins once is trusted to report them all: from then on,
    /// rooms placed on it that nobody joins are dropped after their join window.
    async fn room_joined(
        &self,
        room_id: u64,
        server_id: &str,
    ) -> Result<Option<u64>, DirectoryError>;

    /// Compare-and-set of a room's owner: moves the room to `new_server_id` and increments
    /// its epoch, only if the epoch is still `expected_epoch` and the new server is live.
    async fn reassign_room(
        &self,
        room_id: u64,
        expected_epoch: u64,
        new_server_id: &str,
    ) -> Result<ReassignOutcome, DirectoryError>;

    /// Stores room `room_id`'s failover image as its owner `server_id` at `epoch`, and an
    /// index from each of `sessions` to the room, both for `ttl` (an owner refreshes them
    /// every checkpoint). Fenced: `false`, and nothing written, once the room belongs to
    /// another server or epoch, or is gone: the writer is no longer its owner.
    async fn save_room_image(
        &self,
        room_id: u64,
        server_id: &str,
        epoch: u64,
        image: &[u8],
        sessions: &[u64],
        ttl: Duration,
    ) -> Result<bool, DirectoryError>;

    /// Appends lockstep rooms' newly closed frames to their stored frame logs, each as its
    /// owner `server_id` at the room's epoch (fenced), the logs living `ttl` (refreshed by
    /// every append). One answer per append, in order. A log that does not end right before
    /// the append's first frame (a batch was lost while the directory was away) is dropped
    /// with the room's image: that room can no longer fail over (`Gap`).
    async fn append_frames(
        &self,
        server_id: &str,
        appends: &[FrameAppend],
        ttl: Duration,
    ) -> Result<Vec<FramesStored>, DirectoryError>;

    /// Room `room_id`'s stored frame log (encoded `Frame` messages from frame 1), oldest
    /// first; empty when none is stored.
    async fn room_frames(&self, room_id: u64) -> Result<Vec<Vec<u8>>, DirectoryError>;

    /// Room `room_id`'s failover image, if one is stored.
    async fn room_image(&self, room_id: u64) -> Result<Option<Vec<u8>>, DirectoryError>;

    /// The room whose image holds session `session_id`.
    async fn session_room(&self, session_id: u64) -> Result<Option<u64>, DirectoryError>;

    /// The ids of the rooms a server owns (at their current epoch), in no particular order.
    async fn rooms_on_server(&self, server_id: &str) -> Result<Vec<u64>, DirectoryError>;

    /// Keeps a finished match's result readable for `ttl` (replacing an earlier one for the
    /// same room; a zero `ttl` removes it). A result over `MAX_MATCH_RESULT_BYTES` is refused
    /// with `TooLarge`.
    async fn store_match_result(
        &self,
        record: MatchRecord,
        ttl: Duration,
    ) -> Result<(), DirectoryError>;

    /// The stored result of the match in `room_id`; `None` if there is none or it expired.
    async fn match_result(&self, room_id: u64) -> Result<Option<MatchRecord>, DirectoryError>;

    /// `register_server` with what operators see about the server (`ServerAbout`), which
    /// lives as long as the registration. The default registers without it.
    async fn register_server_about(
        &self,
        info: RoomServerInfo,
        about: ServerAbout,
        ttl: Duration,
    ) -> Result<(), DirectoryError> {
        let _ = about;
        self.register_server(info, ttl).await
    }

    /// What each of `server_ids` last said about itself, in the same order (`None`: nothing,
    /// or it expired). The default knows nothing.
    async fn server_abouts(
        &self,
        server_ids: &[String],
    ) -> Result<Vec<Option<ServerAbout>>, DirectoryError> {
        Ok(vec![None; server_ids.len()])
    }

    /// Rooms newest first, skipping `offset`, at most `limit` (capped at `MAX_ROOMS_PAGE`),
    /// with the total. Bounded work whatever the number of rooms.
    async fn list_rooms(&self, offset: usize, limit: usize) -> Result<RoomPage, DirectoryError> {
        let _ = (offset, limit);
        Err(DirectoryError::Unavailable(
            "this directory cannot list rooms".into(),
        ))
    }

    /// Queues an operator command for `server_id`, which takes it with `take_commands`
    /// (within `COMMAND_TTL`, else it is dropped); at most `MAX_QUEUED_COMMANDS` wait per
    /// server (`Full`).
    async fn push_command(
        &self,
        server_id: &str,
        command: AdminCommand,
    ) -> Result<(), DirectoryError> {
        let _ = (server_id, command);
        Err(DirectoryError::Unavailable(
            "this directory carries no operator commands".into(),
        ))
    }

    /// Takes (removes) up to `max` commands queued for `server_id`, oldest first.
    async fn take_commands(
        &self,
        server_id: &str,
        max: usize,
    ) -> Result<Vec<AdminCommand>, DirectoryError> {
        let _ = (server_id, max);
        Ok(Vec::new())
    }

    /// Keeps a command's reply for `COMMAND_TTL`, for the gateway that waits for it.
    async fn put_reply(&self, command_id: u64, reply: AdminReply) -> Result<(), DirectoryError> {
        let _ = (command_id, reply);
        Ok(())
    }

    /// Takes (removes) a command's reply, if it arrived.
    async fn take_reply(&self, command_id: u64) -> Result<Option<AdminReply>, DirectoryError> {
        let _ = command_id;
        Ok(None)
    }

    /// Adds room servers' errors (oldest first) to the directory's ring of recent errors (the
    /// newest `MAX_RECENT_ERRORS` are kept).
    async fn report_errors(&self, errors: Vec<ErrorRecord>) -> Result<(), DirectoryError> {
        let _ = errors;
        Ok(())
    }

    /// The ring of recent room-server errors, newest first.
    async fn recent_errors(&self) -> Result<Vec<ErrorRecord>, DirectoryError> {
        Ok(Vec::new())
    }

    /// A room and whether its owner is alive ("where is my room"). The default reads the
    /// room, then the live servers.
    async fn room_status(&self, room_id: u64) -> Result<Option<RoomStatus>, DirectoryError> {
        let Some(record) = self.room(room_id).await? else {
            return Ok(None);
        };
        let owner_alive = self
            .live_servers()
            .await?
            .iter()
            .any(|s| s.server_id == record.server.server_id);
        Ok(Some(RoomStatus {
            record,
            owner_alive,
        }))
    }
}

/// Moves room `room_id`, at `epoch` on server `from` (dead, or handing it over), to another
/// live server that takes rooms, chosen by the power of two choices (`pick_server`), under the
/// next epoch. `None` when no other server takes rooms; otherwise what the fenced
/// `reassign_room` did.
pub async fn move_room(
    dir: &dyn Directory,
    room_id: u64,
    epoch: u64,
    from: &str,
) -> Result<Option<(String, ReassignOutcome)>, DirectoryError> {
    let mut servers = dir.live_servers().await?;
    servers.retain(|s| s.server_id != from);
    let Some(target) = pick_server(&servers, &mut rand::rng()) else {
        return Ok(None);
    };
    let target = servers.swap_remove(target).server_id;
    let outcome = dir.reassign_room(room_id, epoch, &target).await?;
    Ok(Some((target, outcome)))
}

/// Power of two choices: among servers that are not draining and have headroom
/// (`load < capacity`), draws two at random and returns the index (into `servers`) of the one
/// with the lower `load / capacity`, the first drawn on a tie. `None` if no server qualifies.
pub fn pick_server<R: Rng + ?Sized>(servers: &[RoomServerInfo], rng: &mut R) -> Option<usize> {
    let eligible = |s: &RoomServerInfo| !s.draining && s.load < s.capacity;
    let count = servers.iter().filter(|s| eligible(s)).count();
    let nth = |n: usize| {
        servers
            .iter()
            .enumerate()
            .filter(|(_, s)| eligible(s))
            .nth(n)
            .map(|(i, _)| i)
    };
    match count {
        0 => None,
        1 => nth(0),
        _ => {
            let a = rng.random_range(0..count);
            let mut b = rng.random_range(0..count - 1);
            if b >= a {
                b += 1;
            }
            let (a, b) = (nth(a)?, nth(b)?);
            Some(if less_loaded(&servers[b], &servers[a]) {
                b
            } else {
                a
            })
        }
    }
}

/// `x.load / x.capacity < y.load / y.capacity`, in integers.
fn less_loaded(x: &RoomServerInfo, y: &RoomServerInfo) -> bool {
    u64::from(x.load) * u64::from(y.capacity) < u64::from(y.load) * u64::from(x.capacity)
}

/// One lockstep room's newly closed frames (`Directory::append_frames`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FrameAppend {
    pub room_id: u64,
    /// The room's epoch as its owner knows it.
    pub epoch: u64,
    /// The number of the first frame in `frames`; the others follow it.
    pub first: u64,
    /// Encoded `Frame` messages.
    pub frames: Vec<Vec<u8>>,
}

/// What `Directory::append_frames` did with one room's frames.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FramesStored {
    /// Appended: they may be sent.
    Stored,
    /// The room belongs to another owner or epoch (or is gone): nothing written.
    Fenced,
    /// The stored log did not end right before them; it was dropped with the room's image.
    Gap,
}

/// A fresh room id: random, non-zero, below 2^53.
pub fn random_room_id<R: Rng + ?Sized>(rng: &mut R) -> u64 {
    (rng.random::<u64>() & ROOM_ID_MASK).max(1)
}

#[cfg(test)]
mod tests {
    use rand::rngs::StdRng;
    use rand::SeedableRng;

    use super::*;

    fn server(id: &str, load: u32, capacity: u32) -> RoomServerInfo {
        RoomServerInfo {
            server_id: id.into(),
            quic_addr: String::new(),
            ws_addr: String::new(),
            cert_fingerprint: String::new(),
            ws_tls: false,
            capacity,
            load,
            draining: false,
        }
    }

    #[test]
    fn two_servers_always_pick_the_less_loaded() {
        let servers = [server("a", 90, 100), server("b", 10, 100)];
        for seed in 0..100 {
            let mut rng = StdRng::seed_from_u64(seed);
            assert_eq!(pick_server(&servers, &mut rng), Some(1));
        }
    }

    #[test]
    fn load_is_relative_to_capacity() {
        // 50/1000 is lighter than 10/20 even though its absolute load is higher.
        let servers = [server("small", 10, 20), server("big", 50, 1000)];
        let mut rng = StdRng::seed_from_u64(7);
        assert_eq!(pick_server(&servers, &mut rng), Some(1));
    }

    #[test]
    fn the_most_loaded_of_many_is_never_picked_and_the_least_is_favoured() {
        let servers = [
            server("a", 10, 100),
            server("b", 50, 100),
            server("c", 60, 100),
            server("d", 95, 100),
        ];
        let mut rng = StdRng::seed_from_u64(42);
        let mut picks = [0u32; 4];
        for _ in 0..4000 {
            picks[pick_server(&servers, &mut rng).unwrap()] += 1;
        }
        assert_eq!(picks[3], 0);
        // The least loaded wins every pair it is drawn in: half of all draws (3 of 6 pairs).
        assert!(picks[0] > 1800, "{picks:?}");
        assert!(picks[0] > picks[1] && picks[1] > picks[2], "{picks:?}");
    }

    #[test]
    fn draining_and_full_servers_are_skipped() {
        let mut drained = server("a", 0, 100);
        drained.draining = true;
        let servers = [drained, server("full", 100, 100), server("ok", 99, 100)];
        let mut rng = StdRng::seed_from_u64(1);
        assert_eq!(pick_server(&servers, &mut rng), Some(2));
        assert_eq!(pick_server(&servers[..2], &mut rng), None);
        assert_eq!(pick_server(&[], &mut rng), None);
    }

    #[test]
    fn ticket_ids_round_trip_and_reject_junk() {
        let id = TicketId(0x0123_4567_89ab_cdef_0011_2233_4455_6677);
        let text = id.to_string();
        assert_eq!(text, "0123456789abcdef0011223344556677");
        assert_eq!(text.parse::<TicketId>(), Ok(id));
        for bad in [
            "",
            "abc",
            "+123456789abcdef0011223344556677",
            &"g".repeat(32),
        ] {
            assert_eq!(bad.parse::<TicketId>(), Err(TicketIdError), "{bad}");
        }
        assert_eq!(TicketId(1).to_string().len(), 32);
    }

    #[test]
    fn room_ids_are_non_zero_and_53_bit() {
        let mut rng = StdRng::seed_from_u64(3);
        for _ in 0..1000 {
            let id = random_room_id(&mut rng);
            assert!((1..=ROOM_ID_MASK).contains(&id));
        }
    }
}
