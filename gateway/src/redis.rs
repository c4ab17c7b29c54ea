//! `RedisDirectory`: the `Directory` served by Redis, so any number of gateways and room
//! servers share one registry, queue and room table (horizontal room sharding). Every
//! multi-key step is one Lua script (`src/redis/*.lua`), so Redis is the only arbiter.
//!
//! Key layout, every key under the caller's prefix `P`:
//!
//! | key                   | type   | holds                                              |
//! |-----------------------|--------|----------------------------------------------------|
//! | `P servers`           | set    | ids of registered room servers (dead ids pruned)   |
//! | `P server:{id}`       | string | `RoomServerInfo` JSON, `PX` = heartbeat TTL         |
//! | `P server_rooms:{id}` | set    | room ids placed on the server                      |
//! | `P queue:{mode}`      | zset   | queued ticket ids scored by enqueue ms             |
//! | `P seen:{mode}`       | zset   | queued ticket ids scored by last poll ms           |
//! | `P ticket:{id}`       | hash   | `player`, `mode`, `enq`, `meta` (metadata JSON, if any), `room` once matched |
//! | `P player:{id}`       | string | the player's queued ticket id                      |
//! | `P player_rooms:{id}` | set    | ids of the rooms the player was placed in (pruned) |
//! | `P room:{id}`         | hash   | `server_id`, `server` JSON, `epoch`, `mode`, `created_ms`, `players`, `join_by`, `joined` |
//! | `P join_reporters`    | set    | ids of room servers that report joins (`room_joined`) |
//! | `P match:{room_id}`   | string | `MatchRecord` JSON, `PX` = the result's TTL         |
//! | `P ticket_changes`    | channel | ids of tickets that left the queue, comma-separated (published by the scripts) |
//! | `P rooms`             | zset   | room ids scored by created_ms: the admin listing's index (expired entries pruned as listed) |
//! | `P server_about:{id}` | string | `ServerAbout` JSON (version, start, drain request), `PX` = heartbeat TTL |
//! | `P commands:{id}`     | list   | `AdminCommand` JSON for the room server, oldest first (at most `MAX_QUEUED_COMMANDS`, `PX` = `COMMAND_TTL`) |
//! | `P command_reply:{n}` | string | `AdminReply` JSON for the gateway that sent command `n`, `PX` = `COMMAND_TTL` |
//! | `P recent_errors`     | list   | `ErrorRecord` JSON reported by room servers, newest first (at most `MAX_RECENT_ERRORS`) |
//! | `P image:{room_id}`   | string | the room's failover image (written by its owner, fenced by epoch), `PX` = the owner's TTL |
//! | `P session:{id}`      | string | the room id whose image holds the session, `PX` as the image |
//! | `P frames:{room_id}`  | list   | a lockstep room's stored frames (encoded `Frame` messages from frame 1), appended by its owner once per tick (fenced), `PX` = the match's length |
//!
//! Ids that may exceed 2^53 (players, rooms) only ever cross Lua as strings: Lua numbers are
//! doubles.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use ::redis::aio::ConnectionManager;
use ::redis::{FromRedisValue, RedisResult, Script};
use async_trait::async_trait;
use futures_util::StreamExt;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tickroom_game::modes::MatchRules;
use tickroom_game::PlayerMetadata;
use tokio::sync::{broadcast, watch};
use tokio::task::AbortHandle;

use crate::directory::{
    random_room_id, AdminCommand, AdminReply, CancelOutcome, CodeJoin, Directory, DirectoryError,
    EnqueueOutcome, ErrorRecord, Formation, FrameAppend, FramesStored, MatchRecord, MatchRequest,
    PartyAnswer, PartyRecord, PrivateRoomRequest, QueueEntry, ReassignOutcome, RoomPage,
    RoomRecord, RoomServerInfo, RoomStatus, ServerAbout, TicketChange, TicketId, TicketRecord,
    COMMAND_TTL, MAX_MATCH_RESULT_TTL, MAX_OPEN_ROOMS_PER_PLAYER, MAX_PARTY_MEMBERS,
    MAX_QUEUED_COMMANDS, MAX_RECENT_ERRORS, MAX_ROOMS_PAGE, PARTY_TTL, TICKET_CHANGES_QUEUE_LEN,
};
use crate::matching::{self, Candidate, Shape};
use crate::memory::{MATCHED_TICKET_RETENTION_MS, ROOM_RECORD_MAX_AGE_MS};
use crate::millis;
use reply::{
    malformed, parse_enqueue, parse_formation, parse_party_answer, room_record, ticket_record,
};

mod reply;
pub mod sentinel;

/// Default for `RedisConfig::response_timeout`, in ms.
pub const REDIS_RESPONSE_TIMEOUT_MS: u64 = 500;
/// Default for `RedisConfig::connect_timeout`, in ms.
pub const REDIS_CONNECT_TIMEOUT_MS: u64 = 500;
/// Default for `RedisConfig::call_timeout`, in ms.
pub const DIRECTORY_CALL_TIMEOUT_MS: u64 = 1_000;
/// Default key prefix.
pub const DEFAULT_REDIS_PREFIX: &str = "tickroom:";
/// Reconnect attempts per outage episode before the next call starts a fresh episode.
pub const REDIS_RECONNECT_RETRIES: usize = 2;
/// Longest pause between two reconnect attempts.
pub const REDIS_RECONNECT_MAX_DELAY_MS: u64 = 500;
/// Most queued tickets one formation by rules considers (the oldest).
pub const RULES_SNAPSHOT_TICKETS: usize = 5_000;
/// Most matches one formation script forms: bounds how long one script blocks Redis.
pub const MATCHES_PER_SCRIPT: usize = 64;
/// Most abandoned tickets one formation script drops.
pub const SWEEP_LIMIT_PER_SCRIPT: usize = 256;
/// A queued ticket (and its player's queue slot) that nobody polls expires after this long.
pub const QUEUED_TICKET_TTL_MS: u64 = 10 * 60 * 1000;
/// Most tickets waiting in one mode's queue; more get `DirectoryError::Full`.
pub const MAX_QUEUED_PER_MODE: usize = 1_000_000;
/// Pause before the ticket-change listener connects again after losing Redis, in ms.
pub const TICKET_CHANGES_RECONNECT_DELAY_MS: u64 = 250;
/// Most reads of the room index one `list_rooms` script makes (each of at most a page).
pub const LIST_ROOMS_ROUNDS: usize = 4;
/// Largest offset `list_rooms` sends to Redis; a larger one is an empty page.
pub const LIST_ROOMS_MAX_OFFSET: usize = 1 << 40;

/// How a `RedisDirectory` talks to Redis; `RedisConfig::default()` holds the defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedisConfig {
    /// Every key starts with this, so deployments and tests can share one Redis
    /// (default `DEFAULT_REDIS_PREFIX`, `"tickroom:"`).
    pub prefix: String,
    /// A command not answered within this long fails (default 500 ms).
    pub response_timeout: Duration,
    /// A connection attempt gives up after this long (default 500 ms).
    pub connect_timeout: Duration,
    /// Upper bound of one directory call, including waiting for a reconnect in progress;
    /// beyond it the call is `Unavailable` (default 1 s).
    pub call_timeout: Duration,
}

impl Default for RedisConfig {
    fn default() -> Self {
        RedisConfig {
            prefix: DEFAULT_REDIS_PREFIX.to_owned(),
            response_timeout: Duration::from_millis(REDIS_RESPONSE_TIMEOUT_MS),
            connect_timeout: Duration::from_millis(REDIS_CONNECT_TIMEOUT_MS),
            call_timeout: Duration::from_millis(DIRECTORY_CALL_TIMEOUT_MS),
        }
    }
}

/// The Redis-backed directory; cheap to share (`Arc`), one multiplexed connection that
/// reconnects by itself, and (once a gateway long-polls) one subscriber connection for
/// ticket changes. Behind Sentinel (`sentinel`), both follow the primary through failovers.
pub struct RedisDirectory {
    primary: watch::Sender<sentinel::Primary>,
    /// The task that follows the primary named by the Sentinels (Sentinel URLs only).
    follower: Option<AbortHandle>,
    prefix: String,
    connect_timeout: Duration,
    call_timeout: Duration,
    scripts: Scripts,
    changes: OnceLock<ChangeListener>,
}

/// The task that forwards `P ticket_changes` messages, and its channel.
struct ChangeListener {
    tx: broadcast::Sender<TicketChange>,
    task: AbortHandle,
}

impl Drop for RedisDirectory {
    fn drop(&mut self) {
        if let Some(listener) = self.changes.get() {
            listener.task.abort();
        }
        if let Some(follower) = &self.follower {
            follower.abort();
        }
    }
}

struct Scripts {
    form_matches: Script,
    queue_snapshot: Script,
    join_by_code: Script,
    party: Script,
    open_seats: Script,
    enqueue: Script,
    ticket: Script,
    cancel: Script,
    live_servers: Script,
    room: Script,
    reassign_room: Script,
    close_room: Script,
    room_joined: Script,
    rooms_on_server: Script,
    list_rooms: Script,
    push_command: Script,
    save_image: Script,
    append_frames: Script,
}

impl Scripts {
    fn load() -> Scripts {
        Scripts {
            form_matches: Script::new(include_str!("redis/form_matches.lua")),
            queue_snapshot: Script::new(include_str!("redis/queue_snapshot.lua")),
            join_by_code: Script::new(include_str!("redis/join_by_code.lua")),
            party: Script::new(include_str!("redis/party.lua")),
            open_seats: Script::new(include_str!("redis/open_seats.lua")),
            enqueue: Script::new(include_str!("redis/enqueue.lua")),
            ticket: Script::new(include_str!("redis/ticket.lua")),
            cancel: Script::new(include_str!("redis/cancel.lua")),
            live_servers: Script::new(include_str!("redis/live_servers.lua")),
            room: Script::new(include_str!("redis/room.lua")),
            reassign_room: Script::new(include_str!("redis/reassign_room.lua")),
            close_room: Script::new(include_str!("redis/close_room.lua")),
            room_joined: Script::new(include_str!("redis/room_joined.lua")),
            rooms_on_server: Script::new(include_str!("redis/rooms_on_server.lua")),
            list_rooms: Script::new(include_str!("redis/list_rooms.lua")),
            push_command: Script::new(include_str!("redis/push_command.lua")),
            save_image: Script::new(include_str!("redis/save_image.lua")),
            append_frames: Script::new(include_str!("redis/append_frames.lua")),
        }
    }
}

impl RedisDirectory {
    /// Connects to `url` (`redis://host:port/db`, or `redis+sentinel://host:port,.../name` to
    /// follow the primary that Sentinels name) with the default timeouts and checks that
    /// Redis answers. Every key is written under `prefix` (e.g. `"tickroom:"`).
    pub async fn connect(url: &str, prefix: &str) -> Result<Arc<RedisDirectory>, DirectoryError> {
        let config = RedisConfig {
            prefix: prefix.to_owned(),
            ..RedisConfig::default()
        };
        RedisDirectory::connect_with(url, config).await
    }

    /// `connect` with explicit timeouts.
    pub async fn connect_with(
        url: &str,
        config: RedisConfig,
    ) -> Result<Arc<RedisDirectory>, DirectoryError> {
        let call_timeout = config.call_timeout;
        let sentinels = sentinel::Sentinels::parse(url)?;
        let primary = match &sentinels {
            Some(sentinels) => {
                let addr = sentinels.primary_addr(config.connect_timeout).await?;
                sentinel::connect(&format!("redis://{addr}"), &config).await?
            }
            None => sentinel::connect(url, &config).await?,
        };
        let (primary, _) = watch::channel(primary);
        let follower = sentinels.map(|sentinels| {
            tokio::spawn(sentinel::follow(sentinels, config.clone(), primary.clone()))
                .abort_handle()
        });
        let directory = RedisDirectory {
            primary,
            follower,
            prefix: config.prefix,
            connect_timeout: config.connect_timeout,
            call_timeout,
            scripts: Scripts::load(),
            changes: OnceLock::new(),
        };
        let mut conn = directory.conn();
        let ping = ::redis::cmd("PING");
        bounded(call_timeout, ping.query_async::<String>(&mut conn)).await?;
        Ok(Arc::new(directory))
    }

    /// The connection to the primary (a cheap clone).
    fn conn(&self) -> ConnectionManager {
        self.primary.borrow().conn.clone()
    }

    /// The key prefix every key of this directory starts with.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// Runs a script with the prefix as `ARGV[1]` followed by `args`.
    async fn run<T: FromRedisValue>(
        &self,
        script: &Script,
        args: &[String],
    ) -> Result<T, DirectoryError> {
        let mut invocation = script.prepare_invoke();
        invocation.arg(&self.prefix);
        for arg in args {
            invocation.arg(arg);
        }
        let mut conn = self.conn();
        bounded(self.call_timeout, invocation.invoke_async(&mut conn)).await
    }

    fn key(&self, kind: &str, id: &str) -> String {
        format!("{}{kind}{id}", self.prefix)
    }

    async fn read_ticket(
        &self,
        ticket_id: TicketId,
        touch_ms: Option<u64>,
    ) -> Result<Option<TicketRecord>, DirectoryError> {
        let args = [
            ticket_id.to_string(),
            touch_ms.map_or_else(String::new, |ms| ms.to_string()),
            QUEUED_TICKET_TTL_MS.to_string(),
        ];
        let reply: Option<Vec<String>> = self.run(&self.scripts.ticket, &args).await?;
        reply
            .map(|fields| ticket_record(ticket_id, &fields))
            .transpose()
    }

    /// One formation script: at most `slots` matches.
    /// Runs `enqueue.lua` for `entries` (one mode), as one party's when `party` is given.
    async fn enqueue_all(
        &self,
        party: Option<(TicketId, u64)>,
        entries: &[QueueEntry],
    ) -> Result<Vec<String>, DirectoryError> {
        // Most tickets carry no metadata or properties: they store no such field at all.
        let json = |map: &PlayerMetadata| {
            if map.0.is_empty() {
                Ok(String::new())
            } else {
                serde_json::to_string(map).map_err(|e| malformed(&e))
            }
        };
        let Some(first) = entries.first() else {
            return Err(malformed(&"an enqueue of nobody"));
        };
        let mut args = vec![
            first.mode.clone(),
            first.enqueued_ms.to_string(),
            QUEUED_TICKET_TTL_MS.to_string(),
            MAX_QUEUED_PER_MODE.to_string(),
            MAX_OPEN_ROOMS_PER_PLAYER.to_string(),
            party.map(|(id, _)| id.to_string()).unwrap_or_default(),
            party
                .map(|(_, leader)| leader.to_string())
                .unwrap_or_default(),
            millis(PARTY_TTL).to_string(),
            entries.len().to_string(),
        ];
        for e in entries {
            args.push(e.ticket_id.to_string());
            args.push(e.player_id.to_string());
            args.push(json(&e.metadata)?);
            args.push(json(&e.properties)?);
        }
        self.run(&self.scripts.enqueue, &args).await
    }

    /// The formation script's fixed arguments, then `kind` (`groups`, `backfill` or
    /// `private`).
    fn formation_args(request: &MatchRequest, kind: &str) -> Vec<String> {
        vec![
            request.mode.clone(),
            request
                .now_ms
                .saturating_sub(request.abandon_after_ms)
                .to_string(),
            request.now_ms.to_string(),
            MATCHED_TICKET_RETENTION_MS.to_string(),
            ROOM_RECORD_MAX_AGE_MS.to_string(),
            SWEEP_LIMIT_PER_SCRIPT.to_string(),
            request.join_window_ms.to_string(),
            kind.to_owned(),
        ]
    }

    /// Formation by the mode's rules (none: first come, first served): the matcher runs here
    /// on a snapshot of the queue's oldest `RULES_SNAPSHOT_TICKETS`, and one script call claims
    /// its groups atomically (a group that lost a ticket to another gateway meanwhile is
    /// skipped). The call also sweeps abandoned tickets, whether or not a group formed.
    async fn form_by_rules(
        &self,
        request: &MatchRequest,
        rules: &MatchRules,
        rng: &mut StdRng,
    ) -> Result<Formation, DirectoryError> {
        let args = [request.mode.clone(), RULES_SNAPSHOT_TICKETS.to_string()];
        let reply: Vec<String> = self.run(&self.scripts.queue_snapshot, &args).await?;
        let open_count: usize = reply
            .first()
            .and_then(|n| n.parse().ok())
            .ok_or_else(|| malformed(&"queue snapshot"))?;
        let tickets_from = 1 + 2 * open_count;
        let open: Vec<(u64, usize)> = reply
            .get(1..tickets_from)
            .ok_or_else(|| malformed(&"queue snapshot"))?
            .chunks_exact(2)
            .map(|r| Ok((r[0].parse()?, r[1].parse()?)))
            .collect::<Result<_, std::num::ParseIntError>>()
            .map_err(|e| malformed(&e))?;
        let mut queued = Vec::with_capacity(reply.len() / 5);
        for t in reply[tickets_from..].chunks_exact(5) {
            let ticket: TicketId = t[0].parse().map_err(|_| malformed(&"ticket id"))?;
            let enqueued_ms: u64 = t[1].parse().map_err(|e| malformed(&e))?;
            let player_id: u64 = t[2].parse().map_err(|e| malformed(&e))?;
            let properties: PlayerMetadata = if t[3].is_empty() {
                PlayerMetadata::default()
            } else {
                serde_json::from_str(&t[3]).map_err(|e| malformed(&e))?
            };
            let party = match t[4].as_str() {
                "" => None,
                id => Some(id.parse::<TicketId>().map_err(|_| malformed(&"party id"))?),
            };
            queued.push((ticket, enqueued_ms, player_id, properties, party));
        }
        let candidates: Vec<Candidate<'_>> = queued
            .iter()
            .map(
                |(ticket, enqueued_ms, player_id, properties, party)| Candidate {
                    enqueued_ms: *enqueued_ms,
                    tie: ticket.0,
                    properties,
                    party: party.map(|p| p.0),
                    player_id: *player_id,
                },
            )
            .collect();
        let shape = Shape {
            players: request.players.max(1),
            min_players: request.min_players.clamp(1, request.players.max(1)),
            wait_ms: request.wait_ms,
            teams: request.teams,
        };
        let mut formation = Formation::default();
        // Open seats of running rooms first (backfill), then new rooms from what is left.
        let mut backfilled = vec![false; candidates.len()];
        if !open.is_empty() {
            let free: Vec<usize> = open.iter().map(|(_, f)| *f).collect();
            let fills = matching::backfill(&candidates, &free);
            let mut args = Self::formation_args(request, "backfill");
            for (room, members) in &fills {
                args.push(open[*room].0.to_string());
                args.extend(["0".to_owned(), "0".to_owned(), String::new()]);
                args.push(members.len().to_string());
                args.extend(members.iter().map(|&m| queued[m].0.to_string()));
                for &m in members {
                    backfilled[m] = true;
                }
            }
            if !fills.is_empty() {
                let reply: Vec<String> = self.run(&self.scripts.form_matches, &args).await?;
                formation.matches.extend(parse_formation(&reply)?.matches);
            }
        }
        let rest: Vec<usize> = (0..candidates.len()).filter(|&i| !backfilled[i]).collect();
        let remaining: Vec<Candidate<'_>> = rest.iter().map(|&i| candidates[i]).collect();
        let groups: Vec<matching::Group> = matching::form(
            &remaining,
            rules,
            shape,
            request.now_ms,
            request.max_matches,
        )
        .into_iter()
        .map(|mut g| {
            for m in &mut g.members {
                *m = rest[*m];
            }
            g
        })
        .collect();
        let mut batches = groups.chunks(MATCHES_PER_SCRIPT).peekable();
        // One call even with no group: it sweeps abandoned tickets and counts the queue.
        let empty: &[matching::Group] = &[];
        let first = batches.peek().is_none().then_some(empty);
        for batch in first.into_iter().chain(batches) {
            let mut args = Self::formation_args(request, "groups");
            let mut groupings = HashMap::new();
            for group in batch {
                let room_id = random_room_id(&mut rand::rng());
                args.push(room_id.to_string());
                args.push(rng.random::<u32>().to_string());
                args.push(rng.random::<u32>().to_string());
                let told = group.told();
                args.push(match &told {
                    Some(grouping) => serde_json::to_string(grouping).map_err(|e| malformed(&e))?,
                    None => String::new(),
                });
                args.push(group.members.len().to_string());
                args.extend(group.members.iter().map(|&m| queued[m].0.to_string()));
                if let Some(grouping) = told {
                    groupings.insert(room_id, grouping);
                }
            }
            let reply: Vec<String> = self.run(&self.scripts.form_matches, &args).await?;
            let mut batch = parse_formation(&reply)?;
            for m in &mut batch.matches {
                m.grouping = groupings.remove(&m.room_id);
            }
            formation.matches.extend(batch.matches);
            formation.still_queued = batch.still_queued;
        }
        Ok(formation)
    }
}

#[async_trait]
impl Directory for RedisDirectory {
    async fn register_server(
        &self,
        info: RoomServerInfo,
        ttl: Duration,
    ) -> Result<(), DirectoryError> {
        let json = serde_json::to_string(&info).map_err(|e| malformed(&e))?;
        let key = self.key("server:", &info.server_id);
        let servers = self.key("servers", "");
        let ttl_ms = millis(ttl);
        let mut pipe = ::redis::pipe();
        pipe.atomic();
        if ttl_ms == 0 {
            // An entry that is already expired: the same as deregistering.
            pipe.cmd("DEL").arg(&key).ignore();
            pipe.cmd("SREM").arg(&servers).arg(&info.server_id).ignore();
        } else {
            pipe.cmd("SET")
                .arg(&key)
                .arg(json)
                .arg("PX")
                .arg(ttl_ms)
                .ignore();
            pipe.cmd("SADD").arg(&servers).arg(&info.server_id).ignore();
        }
        let mut conn = self.conn();
        bounded(self.call_timeout, pipe.query_async::<()>(&mut conn)).await
    }

    async fn deregister_server(&self, server_id: &str) -> Result<(), DirectoryError> {
        let mut pipe = ::redis::pipe();
        pipe.atomic();
        pipe.cmd("DEL").arg(self.key("server:", server_id)).ignore();
        pipe.cmd("SREM")
            .arg(self.key("servers", ""))
            .arg(server_id)
            .ignore();
        let mut conn = self.conn();
        bounded(self.call_timeout, pipe.query_async::<()>(&mut conn)).await
    }

    async fn live_servers(&self) -> Result<Vec<RoomServerInfo>, DirectoryError> {
        let reply: Vec<String> = self.run(&self.scripts.live_servers, &[]).await?;
        let mut live = reply
            .iter()
            .map(|raw| serde_json::from_str::<RoomServerInfo>(raw).map_err(|e| malformed(&e)))
            .collect::<Result<Vec<_>, _>>()?;
        live.sort_by(|a, b| a.server_id.cmp(&b.server_id));
        Ok(live)
    }

    async fn enqueue(&self, entry: QueueEntry) -> Result<EnqueueOutcome, DirectoryError> {
        let reply = self.enqueue_all(None, &[entry]).await?;
        parse_enqueue(&reply)?.ok_or_else(|| malformed(&"enqueue reply"))
    }

    async fn open_seats(
        &self,
        room_id: u64,
        server_id: &str,
        free: usize,
    ) -> Result<bool, DirectoryError> {
        let args = [room_id.to_string(), server_id.to_owned(), free.to_string()];
        let recorded: i64 = self.run(&self.scripts.open_seats, &args).await?;
        Ok(recorded == 1)
    }

    async fn create_party(&self, party: PartyRecord) -> Result<PartyAnswer, DirectoryError> {
        let args = [
            "create".to_owned(),
            millis(PARTY_TTL).to_string(),
            party.party_id.to_string(),
            party.code,
            party.leader.to_string(),
        ];
        let reply: Vec<String> = self.run(&self.scripts.party, &args).await?;
        parse_party_answer(&reply)
    }

    async fn join_party(&self, code: &str, player_id: u64) -> Result<PartyAnswer, DirectoryError> {
        let args = [
            "join".to_owned(),
            millis(PARTY_TTL).to_string(),
            code.to_owned(),
            player_id.to_string(),
            MAX_PARTY_MEMBERS.to_string(),
        ];
        let reply: Vec<String> = self.run(&self.scripts.party, &args).await?;
        parse_party_answer(&reply)
    }

    async fn party(&self, party_id: TicketId) -> Result<Option<PartyRecord>, DirectoryError> {
        let args = [
            "get".to_owned(),
            millis(PARTY_TTL).to_string(),
            party_id.to_string(),
        ];
        let reply: Vec<String> = self.run(&self.scripts.party, &args).await?;
        match parse_party_answer(&reply)? {
            PartyAnswer::In(party) => Ok(Some(*party)),
            _ => Ok(None),
        }
    }

    async fn leave_party(
        &self,
        party_id: TicketId,
        player_id: u64,
    ) -> Result<bool, DirectoryError> {
        let args = [
            "leave".to_owned(),
            millis(PARTY_TTL).to_string(),
            party_id.to_string(),
            player_id.to_string(),
        ];
        let reply: Vec<String> = self.run(&self.scripts.party, &args).await?;
        Ok(reply.first().map(String::as_str) == Some("left"))
    }

    async fn enqueue_party(
        &self,
        party_id: TicketId,
        leader: u64,
        entries: Vec<QueueEntry>,
    ) -> Result<Option<EnqueueOutcome>, DirectoryError> {
        let reply = self.enqueue_all(Some((party_id, leader)), &entries).await?;
        parse_enqueue(&reply)
    }

    async fn ticket(&self, ticket_id: TicketId) -> Result<Option<TicketRecord>, DirectoryError> {
        self.read_ticket(ticket_id, None).await
    }

    async fn touch_ticket(
        &self,
        ticket_id: TicketId,
        now_ms: u64,
    ) -> Result<Option<TicketRecord>, DirectoryError> {
        self.read_ticket(ticket_id, Some(now_ms)).await
    }

    /// Starts the listener on first use (room servers never call it, so they hold no
    /// subscriber connection); `None` outside a tokio runtime.
    fn ticket_changes(&self) -> Option<broadcast::Receiver<TicketChange>> {
        if let Some(listener) = self.changes.get() {
            return Some(listener.tx.subscribe());
        }
        let runtime = tokio::runtime::Handle::try_current().ok()?;
        let listener = self.changes.get_or_init(|| {
            let (tx, _) = broadcast::channel(TICKET_CHANGES_QUEUE_LEN);
            let task = runtime.spawn(listen_for_ticket_changes(
                self.primary.subscribe(),
                self.key("ticket_changes", ""),
                self.connect_timeout,
                tx.clone(),
            ));
            ChangeListener {
                tx,
                task: task.abort_handle(),
            }
        });
        Some(listener.tx.subscribe())
    }

    async fn cancel_ticket(
        &self,
        ticket_id: TicketId,
        player_id: u64,
    ) -> Result<CancelOutcome, DirectoryError> {
        let args = [ticket_id.to_string(), player_id.to_string()];
        let reply: String = self.run(&self.scripts.cancel, &args).await?;
        match reply.as_str() {
            "cancelled" => Ok(CancelOutcome::Cancelled),
            "matched" => Ok(CancelOutcome::AlreadyMatched),
            "not_found" => Ok(CancelOutcome::NotFound),
            _ => Err(malformed(&"cancel reply")),
        }
    }

    /// Forms by the mode's rules (none: first come, first served) on a snapshot of the
    /// queue, and claims the groups in batches of `MATCHES_PER_SCRIPT`: each claim is atomic,
    /// so no player is ever placed twice whatever the number of gateways. The seed drives the
    /// placement draws; room ids are always fresh.
    async fn form_matches(&self, request: MatchRequest) -> Result<Formation, DirectoryError> {
        let mut rng = StdRng::seed_from_u64(request.seed);
        let rules = request.rules.clone().unwrap_or_default();
        self.form_by_rules(&request, &rules, &mut rng).await
    }

    async fn room(&self, room_id: u64) -> Result<Option<RoomRecord>, DirectoryError> {
        Ok(self.room_status(room_id).await?.map(|s| s.record))
    }

    async fn create_private_room(
        &self,
        request: PrivateRoomRequest,
    ) -> Result<Option<RoomRecord>, DirectoryError> {
        // The formation script's placement, with one empty room and its code (kind `private`);
        // the room's life while nobody joins is the join window.
        let formation_request = MatchRequest {
            mode: request.mode.clone(),
            players: 1,
            min_players: 1,
            wait_ms: u64::MAX,
            abandon_after_ms: u64::MAX / 2,
            now_ms: request.now_ms,
            max_matches: 1,
            join_window_ms: request.ttl_ms,
            seed: request.seed,
            rules: None,
            teams: 1,
        };
        let mut rng = StdRng::seed_from_u64(request.seed);
        let mut args = Self::formation_args(&formation_request, "private");
        args.push(random_room_id(&mut rand::rng()).to_string());
        args.push(rng.random::<u32>().to_string());
        args.push(rng.random::<u32>().to_string());
        args.push(request.code);
        args.push(request.seats.to_string());
        let reply: Vec<String> = self.run(&self.scripts.form_matches, &args).await?;
        let Some(formed) = parse_formation(&reply)?.matches.pop() else {
            return Ok(None);
        };
        self.room(formed.room_id).await
    }

    async fn join_by_code(&self, code: &str, player_id: u64) -> Result<CodeJoin, DirectoryError> {
        let args = [
            code.to_owned(),
            player_id.to_string(),
            ROOM_RECORD_MAX_AGE_MS.to_string(),
        ];
        let reply: Vec<String> = self.run(&self.scripts.join_by_code, &args).await?;
        match reply.first().map(String::as_str) {
            Some("ok") => {
                let room_id = reply
                    .get(1)
                    .and_then(|id| id.parse().ok())
                    .ok_or_else(|| malformed(&"join_by_code reply"))?;
                let mut record = room_record(room_id, &reply[2..])?;
                record.code = Some(code.to_owned());
                Ok(CodeJoin::Joined(Box::new(record)))
            }
            Some("full") => Ok(CodeJoin::Full),
            Some("not_found") => Ok(CodeJoin::NotFound),
            _ => Err(malformed(&"join_by_code reply")),
        }
    }

    async fn close_room_at(&self, room_id: u64, epoch: u64) -> Result<bool, DirectoryError> {
        let args = [room_id.to_string(), epoch.to_string()];
        let closed: i64 = self.run(&self.scripts.close_room, &args).await?;
        Ok(closed == 1)
    }

    async fn room_joined(
        &self,
        room_id: u64,
        server_id: &str,
    ) -> Result<Option<u64>, DirectoryError> {
        let args = [
            room_id.to_string(),
            server_id.to_owned(),
            ROOM_RECORD_MAX_AGE_MS.to_string(),
        ];
        let epoch: Option<String> = self.run(&self.scripts.room_joined, &args).await?;
        epoch
            .map(|e| e.parse().map_err(|e| malformed(&e)))
            .transpose()
    }

    async fn reassign_room(
        &self,
        room_id: u64,
        expected_epoch: u64,
        new_server_id: &str,
    ) -> Result<ReassignOutcome, DirectoryError> {
        let args = [
            room_id.to_string(),
            expected_epoch.to_string(),
            new_server_id.to_owned(),
            ROOM_RECORD_MAX_AGE_MS.to_string(),
        ];
        let reply: Vec<String> = self.run(&self.scripts.reassign_room, &args).await?;
        match reply.first().map(String::as_str) {
            Some("ok") => Ok(ReassignOutcome::Reassigned(Box::new(room_record(
                room_id,
                &reply[1..],
            )?))),
            Some("stale") => {
                let current = reply.get(1).and_then(|e| e.parse().ok());
                let current = current.ok_or_else(|| malformed(&"reassign reply"))?;
                Ok(ReassignOutcome::StaleEpoch { current })
            }
            Some("no_server") => Ok(ReassignOutcome::ServerNotLive),
            Some("not_found") => Ok(ReassignOutcome::NotFound),
            _ => Err(malformed(&"reassign reply")),
        }
    }

    async fn rooms_on_server(&self, server_id: &str) -> Result<Vec<u64>, DirectoryError> {
        let reply: Vec<String> = self
            .run(&self.scripts.rooms_on_server, &[server_id.to_owned()])
            .await?;
        reply
            .iter()
            .map(|id| id.parse().map_err(|e| malformed(&e)))
            .collect()
    }

    async fn store_match_result(
        &self,
        record: MatchRecord,
        ttl: Duration,
    ) -> Result<(), DirectoryError> {
        record.check_size()?;
        let key = self.key("match:", &record.room_id.to_string());
        let ttl_ms = millis(ttl.min(MAX_MATCH_RESULT_TTL));
        let cmd = if ttl_ms == 0 {
            // `SET .. PX 0` is an error in Redis; an already expired result is no result.
            ::redis::Cmd::del(&key)
        } else {
            let json = serde_json::to_string(&record).map_err(|e| malformed(&e))?;
            ::redis::Cmd::pset_ex(&key, json, ttl_ms)
        };
        let mut conn = self.conn();
        bounded(self.call_timeout, cmd.query_async::<()>(&mut conn)).await
    }

    async fn save_room_image(
        &self,
        room_id: u64,
        server_id: &str,
        epoch: u64,
        image: &[u8],
        sessions: &[u64],
        ttl: Duration,
    ) -> Result<bool, DirectoryError> {
        let sessions: Vec<String> = sessions.iter().map(u64::to_string).collect();
        let mut invocation = self.scripts.save_image.prepare_invoke();
        invocation
            .arg(&self.prefix)
            .arg(room_id.to_string())
            .arg(server_id)
            .arg(epoch.to_string())
            .arg(millis(ttl).max(1).to_string())
            .arg(image)
            .arg(sessions.join(","));
        let mut conn = self.conn();
        let saved: i64 = bounded(self.call_timeout, invocation.invoke_async(&mut conn)).await?;
        Ok(saved == 1)
    }

    async fn append_frames(
        &self,
        server_id: &str,
        appends: &[FrameAppend],
        ttl: Duration,
    ) -> Result<Vec<FramesStored>, DirectoryError> {
        let mut invocation = self.scripts.append_frames.prepare_invoke();
        invocation
            .arg(&self.prefix)
            .arg(server_id)
            .arg(millis(ttl).max(1).to_string())
            .arg(appends.len().to_string());
        for append in appends {
            invocation
                .arg(append.room_id.to_string())
                .arg(append.epoch.to_string())
                .arg(append.first.to_string())
                .arg(append.frames.len().to_string());
            for frame in &append.frames {
                invocation.arg(frame.as_slice());
            }
        }
        let mut conn = self.conn();
        let codes: Vec<i64> =
            bounded(self.call_timeout, invocation.invoke_async(&mut conn)).await?;
        if codes.len() != appends.len() {
            return Err(malformed(&"append_frames reply"));
        }
        Ok(codes
            .into_iter()
            .map(|code| match code {
                1 => FramesStored::Stored,
                2 => FramesStored::Gap,
                _ => FramesStored::Fenced,
            })
            .collect())
    }

    async fn room_frames(&self, room_id: u64) -> Result<Vec<Vec<u8>>, DirectoryError> {
        let mut conn = self.conn();
        let range = ::redis::Cmd::lrange(self.key("frames:", &room_id.to_string()), 0, -1);
        bounded(self.call_timeout, range.query_async(&mut conn)).await
    }

    async fn room_image(&self, room_id: u64) -> Result<Option<Vec<u8>>, DirectoryError> {
        let mut conn = self.conn();
        let get = ::redis::Cmd::get(self.key("image:", &room_id.to_string()));
        bounded(self.call_timeout, get.query_async(&mut conn)).await
    }

    async fn session_room(&self, session_id: u64) -> Result<Option<u64>, DirectoryError> {
        let mut conn = self.conn();
        let get = ::redis::Cmd::get(self.key("session:", &session_id.to_string()));
        bounded(self.call_timeout, get.query_async(&mut conn)).await
    }

    async fn room_by_code(&self, code: &str) -> Result<Option<RoomRecord>, DirectoryError> {
        let mut conn = self.conn();
        let get = ::redis::Cmd::get(self.key("code:", code));
        let room_id: Option<u64> = bounded(self.call_timeout, get.query_async(&mut conn)).await?;
        match room_id {
            Some(room_id) => self.room(room_id).await,
            None => Ok(None),
        }
    }

    async fn match_result(&self, room_id: u64) -> Result<Option<MatchRecord>, DirectoryError> {
        let key = self.key("match:", &room_id.to_string());
        let mut conn = self.conn();
        let get = ::redis::Cmd::get(&key);
        let raw: Option<String> = bounded(self.call_timeout, get.query_async(&mut conn)).await?;
        raw.map(|json| serde_json::from_str(&json).map_err(|e| malformed(&e)))
            .transpose()
    }

    async fn register_server_about(
        &self,
        info: RoomServerInfo,
        about: ServerAbout,
        ttl: Duration,
    ) -> Result<(), DirectoryError> {
        let ttl_ms = millis(ttl);
        if ttl_ms == 0 {
            return self.register_server(info, ttl).await;
        }
        let json = serde_json::to_string(&info).map_err(|e| malformed(&e))?;
        let about_json = serde_json::to_string(&about).map_err(|e| malformed(&e))?;
        let mut pipe = ::redis::pipe();
        pipe.atomic();
        pipe.cmd("SET")
            .arg(self.key("server:", &info.server_id))
            .arg(json)
            .arg("PX")
            .arg(ttl_ms)
            .ignore();
        pipe.cmd("SET")
            .arg(self.key("server_about:", &info.server_id))
            .arg(about_json)
            .arg("PX")
            .arg(ttl_ms)
            .ignore();
        pipe.cmd("SADD")
            .arg(self.key("servers", ""))
            .arg(&info.server_id)
            .ignore();
        let mut conn = self.conn();
        bounded(self.call_timeout, pipe.query_async::<()>(&mut conn)).await
    }

    async fn server_abouts(
        &self,
        server_ids: &[String],
    ) -> Result<Vec<Option<ServerAbout>>, DirectoryError> {
        if server_ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut mget = ::redis::cmd("MGET");
        for id in server_ids {
            mget.arg(self.key("server_about:", id));
        }
        let mut conn = self.conn();
        let raw: Vec<Option<String>> =
            bounded(self.call_timeout, mget.query_async(&mut conn)).await?;
        // One unreadable entry (another build's) is shown as unknown, not an error.
        Ok(raw
            .into_iter()
            .map(|json| json.and_then(|j| serde_json::from_str(&j).ok()))
            .collect())
    }

    async fn list_rooms(&self, offset: usize, limit: usize) -> Result<RoomPage, DirectoryError> {
        let limit = limit.min(MAX_ROOMS_PAGE);
        // Offsets cross Lua as doubles: past any real number of rooms, the page is empty.
        if limit == 0 || offset > LIST_ROOMS_MAX_OFFSET {
            let mut conn = self.conn();
            let zcard = ::redis::Cmd::zcard(self.key("rooms", ""));
            let total: u64 = bounded(self.call_timeout, zcard.query_async(&mut conn)).await?;
            return Ok(RoomPage {
                total,
                rooms: Vec::new(),
            });
        }
        let oldest_ms = crate::now_ms().saturating_sub(ROOM_RECORD_MAX_AGE_MS);
        let args = [
            offset.to_string(),
            limit.to_string(),
            LIST_ROOMS_ROUNDS.to_string(),
            oldest_ms.to_string(),
        ];
        let reply: Vec<String> = self.run(&self.scripts.list_rooms, &args).await?;
        let Some((total, fields)) = reply.split_first() else {
            return Err(malformed(&"list_rooms reply"));
        };
        let total = total.parse().map_err(|e| malformed(&e))?;
        let mut rooms = Vec::new();
        for room in fields.chunks(9) {
            let parsed = room
                .first()
                .and_then(|id| id.parse().ok())
                .map(|id| room_record(id, &room[1..]));
            match parsed {
                Some(Ok(record)) => rooms.push(record),
                // A record another build wrote is left out of the page, not an error.
                _ => tracing::warn!("skipping an unreadable room record in the listing"),
            }
        }
        Ok(RoomPage { total, rooms })
    }

    async fn push_command(
        &self,
        server_id: &str,
        command: AdminCommand,
    ) -> Result<(), DirectoryError> {
        let json = serde_json::to_string(&command).map_err(|e| malformed(&e))?;
        let args = [
            server_id.to_owned(),
            json,
            MAX_QUEUED_COMMANDS.to_string(),
            millis(COMMAND_TTL).to_string(),
        ];
        let queued: i64 = self.run(&self.scripts.push_command, &args).await?;
        if queued == 1 {
            Ok(())
        } else {
            Err(DirectoryError::Full("operator commands"))
        }
    }

    async fn take_commands(
        &self,
        server_id: &str,
        max: usize,
    ) -> Result<Vec<AdminCommand>, DirectoryError> {
        if max == 0 {
            return Ok(Vec::new());
        }
        let key = self.key("commands:", server_id);
        let mut pipe = ::redis::pipe();
        pipe.atomic();
        pipe.cmd("LRANGE").arg(&key).arg(0).arg(max - 1);
        pipe.cmd("LTRIM").arg(&key).arg(max).arg(-1).ignore();
        let mut conn = self.conn();
        let (raw,): (Vec<String>,) =
            bounded(self.call_timeout, pipe.query_async(&mut conn)).await?;
        Ok(raw
            .iter()
            .filter_map(|json| match serde_json::from_str(json) {
                Ok(command) => Some(command),
                Err(e) => {
                    tracing::warn!(error = %e, "dropping an unreadable operator command");
                    None
                }
            })
            .collect())
    }

    async fn put_reply(&self, command_id: u64, reply: AdminReply) -> Result<(), DirectoryError> {
        let json = serde_json::to_string(&reply).map_err(|e| malformed(&e))?;
        let key = self.key("command_reply:", &command_id.to_string());
        let cmd = ::redis::Cmd::pset_ex(&key, json, millis(COMMAND_TTL));
        let mut conn = self.conn();
        bounded(self.call_timeout, cmd.query_async::<()>(&mut conn)).await
    }

    async fn take_reply(&self, command_id: u64) -> Result<Option<AdminReply>, DirectoryError> {
        let key = self.key("command_reply:", &command_id.to_string());
        let mut conn = self.conn();
        let getdel = ::redis::Cmd::get_del(&key);
        let raw: Option<String> = bounded(self.call_timeout, getdel.query_async(&mut conn)).await?;
        raw.map(|json| serde_json::from_str(&json).map_err(|e| malformed(&e)))
            .transpose()
    }

    async fn report_errors(&self, errors: Vec<ErrorRecord>) -> Result<(), DirectoryError> {
        if errors.is_empty() {
            return Ok(());
        }
        let key = self.key("recent_errors", "");
        let skip = errors.len().saturating_sub(MAX_RECENT_ERRORS);
        let mut pipe = ::redis::pipe();
        pipe.atomic();
        for error in errors.iter().skip(skip) {
            let json = serde_json::to_string(error).map_err(|e| malformed(&e))?;
            pipe.cmd("LPUSH").arg(&key).arg(json).ignore();
        }
        pipe.cmd("LTRIM")
            .arg(&key)
            .arg(0)
            .arg(MAX_RECENT_ERRORS - 1)
            .ignore();
        let mut conn = self.conn();
        bounded(self.call_timeout, pipe.query_async::<()>(&mut conn)).await
    }

    async fn recent_errors(&self) -> Result<Vec<ErrorRecord>, DirectoryError> {
        let key = self.key("recent_errors", "");
        let lrange = ::redis::Cmd::lrange(&key, 0, MAX_RECENT_ERRORS as isize - 1);
        let mut conn = self.conn();
        let raw: Vec<String> = bounded(self.call_timeout, lrange.query_async(&mut conn)).await?;
        Ok(raw
            .iter()
            .filter_map(|json| serde_json::from_str(json).ok())
            .collect())
    }

    async fn room_status(&self, room_id: u64) -> Result<Option<RoomStatus>, DirectoryError> {
        let reply: Option<Vec<String>> =
            self.run(&self.scripts.room, &[room_id.to_string()]).await?;
        let Some(fields) = reply else {
            return Ok(None);
        };
        let record = room_record(room_id, &fields)?;
        let owner_alive = fields.get(8).is_some_and(|alive| alive == "1");
        Ok(Some(RoomStatus {
            record,
            owner_alive,
        }))
    }
}

/// Subscribes to `channel` and forwards each message (ticket ids, comma-separated) as
/// `TicketChange::Left`; says `Unknown` after every (re)subscription, since messages published
/// while it was not subscribed are lost. Runs until aborted.
async fn listen_for_ticket_changes(
    mut primary: watch::Receiver<sentinel::Primary>,
    channel: String,
    connect_timeout: Duration,
    tx: broadcast::Sender<TicketChange>,
) {
    loop {
        let client = primary.borrow_and_update().client.clone();
        let subscribed = async {
            let mut pubsub = client.get_async_pubsub().await?;
            pubsub.subscribe(&channel).await?;
            RedisResult::Ok(pubsub)
        };
        if let Ok(Ok(pubsub)) = tokio::time::timeout(connect_timeout, subscribed).await {
            let _ = tx.send(TicketChange::Unknown);
            let mut messages = pubsub.into_on_message();
            loop {
                let message = tokio::select! {
                    message = messages.next() => message,
                    // A failover: subscribe on the new primary.
                    _ = primary.changed() => None,
                };
                let Some(message) = message else {
                    break;
                };
                let Ok(payload) = message.get_payload::<String>() else {
                    continue;
                };
                let left: Arc<[TicketId]> =
                    payload.split(',').filter_map(|t| t.parse().ok()).collect();
                let _ = tx.send(TicketChange::Left(left));
            }
            tracing::warn!("lost the redis ticket-change subscription; reconnecting");
        }
        let _ = tx.send(TicketChange::Unknown);
        tokio::time::sleep(Duration::from_millis(TICKET_CHANGES_RECONNECT_DELAY_MS)).await;
    }
}

/// Bounds a Redis future by `limit` and maps every failure to `Unavailable`.
async fn bounded<T>(
    limit: Duration,
    call: impl Future<Output = RedisResult<T>>,
) -> Result<T, DirectoryError> {
    match tokio::time::timeout(limit, call).await {
        Ok(result) => result.map_err(unavailable),
        Err(_) => Err(DirectoryError::Unavailable(format!(
            "redis did not answer within {} ms",
            limit.as_millis()
        ))),
    }
}

fn unavailable(e: ::redis::RedisError) -> DirectoryError {
    DirectoryError::Unavailable(format!("redis: {e}"))
}
