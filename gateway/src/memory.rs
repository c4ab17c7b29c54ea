//! `InMemoryDirectory`: the `Directory` of the all-in-one server — every table behind one
//! mutex, so each trait method is trivially atomic, and a broadcast channel that tells
//! long-polling gateways which tickets left the queue.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use parking_lot::Mutex;
use rand::rngs::StdRng;
use rand::SeedableRng;
use tickroom_game::modes::MatchRules;
use tickroom_game::PlayerMetadata;
use tickroom_protocol::api::Grouping;

use crate::directory::{
    pick_server, random_room_id, AdminCommand, AdminReply, Assignment, CancelOutcome, CodeJoin,
    Directory, DirectoryError, EnqueueOutcome, ErrorRecord, Formation, FormedMatch, FrameAppend,
    FramesStored, MatchRecord, MatchRequest, MatchedPlayer, PartyAnswer, PartyRecord,
    PrivateRoomRequest, QueueEntry, ReassignOutcome, RoomPage, RoomRecord, RoomServerInfo,
    ServerAbout, TicketChange, TicketId, TicketRecord, TicketStatus, COMMAND_TTL,
    MAX_MATCH_RESULT_TTL, MAX_OPEN_ROOMS_PER_PLAYER, MAX_PARTY_MEMBERS, MAX_QUEUED_COMMANDS,
    MAX_RECENT_ERRORS, MAX_ROOMS_PAGE, PARTY_TTL, PLACEMENT_EPOCH, TICKET_CHANGES_QUEUE_LEN,
};
use crate::matching::{self, Candidate, Shape};
use crate::millis;

/// Most tickets (queued or recently matched) held at once.
pub const MAX_TICKETS: usize = 1_000_000;
/// Most room records held at once.
pub const MAX_ROOMS: usize = 1_000_000;
/// Most room servers registered at once.
pub const MAX_SERVERS: usize = 10_000;
/// Most match results held at once (each at most `MAX_MATCH_RESULT_BYTES`).
pub const MAX_MATCH_RESULTS: usize = 100_000;
/// A matched ticket stays readable this long after placement, in ms, so its owner can fetch it.
pub const MATCHED_TICKET_RETENTION_MS: u64 = 60_000;
/// A room record not closed by its server is forgotten after this long, in ms (a room nobody
/// joined, on a server that reports joins, is forgotten at the end of its join window).
pub const ROOM_RECORD_MAX_AGE_MS: u64 = 6 * 60 * 60 * 1000;
/// Housekeeping (abandoned tickets, old matches and rooms) runs at most this often, in ms.
pub const SWEEP_INTERVAL_MS: u64 = 1_000;
/// Most operator-command replies held at once (each lives `COMMAND_TTL` unless taken).
pub const MAX_COMMAND_REPLIES: usize = 4_096;

/// The in-process directory used by the all-in-one server and tests.
pub struct InMemoryDirectory {
    state: Mutex<State>,
    /// The operators' tables, apart from the matchmaking lock.
    admin: Mutex<AdminTables>,
    /// Tickets that left the queue; long pollers wait on it.
    changes: tokio::sync::broadcast::Sender<TicketChange>,
}

#[derive(Default)]
struct State {
    servers: HashMap<String, (RoomServerInfo, Instant)>,
    /// Ticket ids in queue order per mode; cancelled ids stay as tombstones until popped.
    queues: HashMap<String, VecDeque<TicketId>>,
    /// Live (non-tombstone) entries per mode.
    queued: HashMap<String, usize>,
    tickets: HashMap<TicketId, Ticket>,
    queued_players: HashMap<u64, TicketId>,
    rooms: HashMap<u64, Room>,
    /// The rooms each player was placed in (ids of closed or expired rooms are pruned).
    player_rooms: HashMap<u64, Vec<u64>>,
    /// Room servers that report joins (`room_joined`).
    join_reporters: HashSet<String>,
    /// Parties by id, with their expiry (unix ms), and their codes and members.
    parties: HashMap<TicketId, (PartyRecord, u64)>,
    party_codes: HashMap<String, TicketId>,
    player_party: HashMap<u64, TicketId>,
    /// Running rooms of `backfill` modes with open seats, by room id.
    open_rooms: HashMap<u64, usize>,
    /// Private rooms by join code, with their seats (codes of rooms that are gone are swept).
    codes: HashMap<String, (u64, usize)>,
    last_sweep_ms: u64,
    /// Match results by room id, with their expiry.
    results: HashMap<u64, (MatchRecord, Instant)>,
    last_result_sweep: Option<Instant>,
    /// Failover images by room id, and the session index, with their expiry (read lazily:
    /// an expired entry is dropped when read or overwritten).
    images: HashMap<u64, (Vec<u8>, Instant)>,
    session_rooms: HashMap<u64, (u64, Instant)>,
    /// Lockstep frame logs by room id, with their expiry.
    frame_logs: HashMap<u64, (Vec<Vec<u8>>, Instant)>,
}

/// What operators' calls keep: servers' self-descriptions, command queues and replies, and
/// the ring of room servers' errors. Every table is bounded.
#[derive(Default)]
struct AdminTables {
    /// By server id, with the expiry of the registration they came with.
    abouts: HashMap<String, (ServerAbout, Instant)>,
    /// Commands per server, each with its expiry.
    commands: HashMap<String, VecDeque<(AdminCommand, Instant)>>,
    /// Replies by command id, with their expiry.
    replies: HashMap<u64, (AdminReply, Instant)>,
    /// Newest first.
    errors: VecDeque<ErrorRecord>,
}

/// A room record and when the sweep forgets it, unix ms (the caller's clock).
struct Room {
    record: RoomRecord,
    expires_ms: u64,
}

impl Room {
    /// A joined room, or one on a server that does not report joins, lives
    /// `ROOM_RECORD_MAX_AGE_MS`; one nobody joined on a reporting server, its join window.
    fn new(record: RoomRecord, reports_joins: bool) -> Room {
        let mut room = Room {
            record,
            expires_ms: 0,
        };
        room.set_expiry(reports_joins);
        room
    }

    fn set_expiry(&mut self, reports_joins: bool) {
        let r = &self.record;
        self.expires_ms = if r.joined || !reports_joins {
            r.created_ms.saturating_add(ROOM_RECORD_MAX_AGE_MS)
        } else {
            r.join_by_ms
        };
    }
}

struct Ticket {
    player_id: u64,
    mode: String,
    enqueued_ms: u64,
    last_seen_ms: u64,
    metadata: PlayerMetadata,
    properties: PlayerMetadata,
    party: Option<TicketId>,
    state: TicketState,
}

/// One formation pass's placement state: the live servers with the load placed so far, the
/// seeded choices, and what was formed.
struct Placement<'a> {
    request: &'a MatchRequest,
    live: Vec<RoomServerInfo>,
    rng: StdRng,
    formation: Formation,
}

#[derive(Clone, Copy)]
enum TicketState {
    Queued,
    Matched { room_id: u64, matched_ms: u64 },
}

impl InMemoryDirectory {
    /// An empty directory.
    pub fn new() -> Arc<Self> {
        Arc::new(InMemoryDirectory {
            state: Mutex::new(State::default()),
            admin: Mutex::new(AdminTables::default()),
            changes: tokio::sync::broadcast::channel(TICKET_CHANGES_QUEUE_LEN).0,
        })
    }

    /// The synchronous formation step behind `Directory::form_matches` (also used by benches).
    pub fn form_matches_now(&self, request: &MatchRequest) -> Formation {
        let formation = self.state.lock().form(request, Instant::now());
        if !formation.matches.is_empty() {
            let left = formation.matches.iter().flat_map(|m| &m.players);
            let left: Arc<[TicketId]> = left.map(|p| p.ticket_id).collect();
            // Nobody listening is fine: no gateway is long-polling.
            let _ = self.changes.send(TicketChange::Left(left));
        }
        formation
    }

    /// The synchronous form of `Directory::enqueue` (also used by benches).
    pub fn enqueue_now(&self, entry: QueueEntry) -> Result<EnqueueOutcome, DirectoryError> {
        self.state.lock().enqueue(entry)
    }

    /// The synchronous form of `Directory::register_server` (also used by benches).
    pub fn register_server_now(
        &self,
        info: RoomServerInfo,
        ttl: Duration,
    ) -> Result<(), DirectoryError> {
        let mut state = self.state.lock();
        let now = Instant::now();
        if !state.servers.contains_key(&info.server_id) && state.servers.len() >= MAX_SERVERS {
            state.servers.retain(|_, (_, expires)| *expires > now);
            if state.servers.len() >= MAX_SERVERS {
                return Err(DirectoryError::Full("room servers"));
            }
        }
        let expires = now.checked_add(ttl).unwrap_or(now);
        state
            .servers
            .insert(info.server_id.clone(), (info, expires));
        Ok(())
    }

    fn record(&self, ticket_id: TicketId, touch_ms: Option<u64>) -> Option<TicketRecord> {
        let mut state = self.state.lock();
        let ticket = state.tickets.get_mut(&ticket_id)?;
        if let Some(now_ms) = touch_ms {
            ticket.last_seen_ms = ticket.last_seen_ms.max(now_ms);
        }
        let state = &*state;
        let ticket = state.tickets.get(&ticket_id)?;
        let status = match ticket.state {
            TicketState::Queued => TicketStatus::Queued,
            TicketState::Matched { room_id, .. } => {
                let room = &state.rooms.get(&room_id)?.record;
                TicketStatus::Matched(Assignment {
                    room_id,
                    mode: room.mode.clone(),
                    server: room.server.clone(),
                    metadata: ticket.metadata.clone(),
                    grouping: room.grouping.clone(),
                })
            }
        };
        Some(TicketRecord {
            ticket_id,
            player_id: ticket.player_id,
            mode: ticket.mode.clone(),
            enqueued_ms: ticket.enqueued_ms,
            status,
        })
    }
}

impl State {
    fn enqueue(&mut self, entry: QueueEntry) -> Result<EnqueueOutcome, DirectoryError> {
        if let Some(existing) = self.queued_players.get(&entry.player_id) {
            return Ok(EnqueueOutcome::AlreadyQueued(*existing));
        }
        if let Some(refusal) = self.open_rooms_refusal(entry.player_id, entry.enqueued_ms) {
            return Ok(refusal);
        }
        if self.tickets.len() >= MAX_TICKETS {
            return Err(DirectoryError::Full("matchmaking tickets"));
        }
        if self.tickets.contains_key(&entry.ticket_id) {
            return Err(DirectoryError::Unavailable("ticket id collision".into()));
        }
        self.queues
            .entry(entry.mode.clone())
            .or_default()
            .push_back(entry.ticket_id);
        *self.queued.entry(entry.mode.clone()).or_default() += 1;
        self.queued_players.insert(entry.player_id, entry.ticket_id);
        self.tickets.insert(
            entry.ticket_id,
            Ticket {
                player_id: entry.player_id,
                mode: entry.mode,
                enqueued_ms: entry.enqueued_ms,
                last_seen_ms: entry.enqueued_ms,
                metadata: entry.metadata,
                properties: entry.properties,
                party: entry.party,
                state: TicketState::Queued,
            },
        );
        Ok(EnqueueOutcome::Queued)
    }

    /// Why `player_id` may not queue at `now_ms` because of the rooms they are in, if so.
    /// Prunes their closed rooms and those whose owner died (those players queue again).
    fn open_rooms_refusal(&mut self, player_id: u64, now_ms: u64) -> Option<EnqueueOutcome> {
        let now = Instant::now();
        let (rooms, servers) = (&self.rooms, &self.servers);
        let placed = self.player_rooms.get_mut(&player_id)?;
        placed.retain(|id| {
            rooms.get(id).is_some_and(|room| {
                let owner = &room.record.server.server_id;
                servers
                    .get(owner)
                    .is_some_and(|(_, expires)| *expires > now)
            })
        });
        let open = placed.len();
        let pending = placed
            .iter()
            .filter_map(|id| rooms.get(id))
            .find(|room| room.record.join_by_ms > now_ms);
        let refusal = if let Some(room) = pending {
            Some(EnqueueOutcome::MatchPending {
                room_id: room.record.room_id,
                retry_after_ms: room.record.join_by_ms - now_ms,
            })
        } else if open >= MAX_OPEN_ROOMS_PER_PLAYER {
            Some(EnqueueOutcome::TooManyRooms { open })
        } else {
            None
        };
        if open == 0 {
            self.player_rooms.remove(&player_id);
        }
        refusal
    }

    /// Cancels `player_id`'s queued ticket, and with a party ticket every queued ticket of
    /// its party; returns the tickets that left the queue.
    fn cancel(&mut self, ticket_id: TicketId, player_id: u64) -> (CancelOutcome, Vec<TicketId>) {
        let Some(ticket) = self.tickets.get(&ticket_id) else {
            return (CancelOutcome::NotFound, Vec::new());
        };
        if ticket.player_id != player_id {
            return (CancelOutcome::NotFound, Vec::new());
        }
        if let TicketState::Matched { .. } = ticket.state {
            return (CancelOutcome::AlreadyMatched, Vec::new());
        }
        let mut ids = vec![ticket_id];
        if let Some(party) = ticket.party.and_then(|id| self.parties.get(&id)) {
            ids.extend(
                party
                    .0
                    .tickets
                    .iter()
                    .map(|(_, t)| *t)
                    .filter(|t| *t != ticket_id),
            );
        }
        let left: Vec<TicketId> = ids.into_iter().filter(|id| self.drop_queued(*id)).collect();
        (CancelOutcome::Cancelled, left)
    }

    /// Removes a ticket that is still queued; whether it was.
    fn drop_queued(&mut self, ticket_id: TicketId) -> bool {
        if !self
            .tickets
            .get(&ticket_id)
            .is_some_and(|t| matches!(t.state, TicketState::Queued))
        {
            return false;
        }
        if let Some(ticket) = self.tickets.remove(&ticket_id) {
            self.queued_players.remove(&ticket.player_id);
            if let Some(n) = self.queued.get_mut(&ticket.mode) {
                *n = n.saturating_sub(1);
            }
        }
        true
    }

    /// The party `id` while it lives.
    fn live_party(&mut self, id: TicketId, now_ms: u64) -> Option<&mut PartyRecord> {
        if self
            .parties
            .get(&id)
            .is_some_and(|(_, expires)| *expires < now_ms)
        {
            self.end_party(id);
        }
        self.parties.get_mut(&id).map(|(p, _)| p)
    }

    fn end_party(&mut self, id: TicketId) {
        if let Some((party, _)) = self.parties.remove(&id) {
            self.party_codes.remove(&party.code);
            for m in &party.members {
                if self.player_party.get(m) == Some(&id) {
                    self.player_party.remove(m);
                }
            }
        }
    }

    /// Whether the party has a ticket still queued.
    fn party_queued(&self, party: &PartyRecord) -> bool {
        party.tickets.iter().any(|(_, t)| {
            self.tickets
                .get(t)
                .is_some_and(|t| matches!(t.state, TicketState::Queued))
        })
    }

    fn create_party(&mut self, party: PartyRecord, now_ms: u64) -> PartyAnswer {
        if let Some(&other) = self.player_party.get(&party.leader) {
            if self.live_party(other, now_ms).is_some() {
                return PartyAnswer::InAnother(other);
            }
        }
        if let Some(&other) = self.party_codes.get(&party.code) {
            if self.live_party(other, now_ms).is_some()
                || self.parties.contains_key(&party.party_id)
            {
                return PartyAnswer::NotFound;
            }
        }
        self.player_party.insert(party.leader, party.party_id);
        self.party_codes.insert(party.code.clone(), party.party_id);
        let expires = now_ms.saturating_add(millis(PARTY_TTL));
        self.parties
            .insert(party.party_id, (party.clone(), expires));
        PartyAnswer::In(Box::new(party))
    }

    fn join_party(&mut self, code: &str, player_id: u64, now_ms: u64) -> PartyAnswer {
        let Some(&id) = self.party_codes.get(code) else {
            return PartyAnswer::NotFound;
        };
        if let Some(&other) = self.player_party.get(&player_id) {
            if other != id && self.live_party(other, now_ms).is_some() {
                return PartyAnswer::InAnother(other);
            }
        }
        let Some(party) = self.live_party(id, now_ms).cloned() else {
            return PartyAnswer::NotFound;
        };
        if party.members.contains(&player_id) {
            return PartyAnswer::In(Box::new(party));
        }
        if party.members.len() >= MAX_PARTY_MEMBERS || self.party_queued(&party) {
            return PartyAnswer::Closed;
        }
        self.player_party.insert(player_id, id);
        let Some((party, expires)) = self.parties.get_mut(&id) else {
            return PartyAnswer::NotFound;
        };
        party.members.push(player_id);
        party.tickets.clear();
        *expires = now_ms.saturating_add(millis(PARTY_TTL));
        PartyAnswer::In(Box::new(party.clone()))
    }

    /// `player_id` leaves; returns whether it was in the party, and the tickets cancelled.
    fn leave_party(&mut self, id: TicketId, player_id: u64, now_ms: u64) -> (bool, Vec<TicketId>) {
        let Some(party) = self.live_party(id, now_ms).cloned() else {
            return (false, Vec::new());
        };
        if !party.members.contains(&player_id) {
            return (false, Vec::new());
        }
        let left: Vec<TicketId> = party
            .tickets
            .iter()
            .map(|(_, t)| *t)
            .filter(|t| self.drop_queued(*t))
            .collect();
        if party.leader == player_id {
            self.end_party(id);
        } else if let Some((p, expires)) = self.parties.get_mut(&id) {
            p.members.retain(|m| *m != player_id);
            p.tickets.clear();
            *expires = now_ms.saturating_add(millis(PARTY_TTL));
            self.player_party.remove(&player_id);
        }
        (true, left)
    }

    fn enqueue_party(
        &mut self,
        id: TicketId,
        leader: u64,
        entries: Vec<QueueEntry>,
        now_ms: u64,
    ) -> Result<Option<EnqueueOutcome>, DirectoryError> {
        let Some(party) = self.live_party(id, now_ms).cloned() else {
            return Ok(None);
        };
        let players: Vec<u64> = entries.iter().map(|e| e.player_id).collect();
        if party.leader != leader || party.members != players {
            return Ok(None);
        }
        for e in &entries {
            if let Some(existing) = self.queued_players.get(&e.player_id) {
                return Ok(Some(EnqueueOutcome::AlreadyQueued(*existing)));
            }
            if let Some(refusal) = self.open_rooms_refusal(e.player_id, e.enqueued_ms) {
                return Ok(Some(refusal));
            }
        }
        if self.tickets.len() + entries.len() > MAX_TICKETS {
            return Err(DirectoryError::Full("matchmaking tickets"));
        }
        // All or none: nothing below may fail half way.
        if entries
            .iter()
            .any(|e| self.tickets.contains_key(&e.ticket_id))
        {
            return Err(DirectoryError::Unavailable("ticket id collision".into()));
        }
        let tickets: Vec<(u64, TicketId)> =
            entries.iter().map(|e| (e.player_id, e.ticket_id)).collect();
        for entry in entries {
            self.enqueue(entry)?;
        }
        if let Some((p, expires)) = self.parties.get_mut(&id) {
            p.tickets = tickets;
            *expires = now_ms.saturating_add(millis(PARTY_TTL));
        }
        Ok(Some(EnqueueOutcome::Queued))
    }

    fn form(&mut self, request: &MatchRequest, now: Instant) -> Formation {
        if request.now_ms.saturating_sub(self.last_sweep_ms) >= SWEEP_INTERVAL_MS {
            self.sweep(request, now);
        }
        let live = self.live_servers_by_id(now);
        let mut place = Placement {
            request,
            live,
            rng: StdRng::seed_from_u64(request.seed),
            formation: Formation::default(),
        };
        self.backfill(&mut place, now);
        let rules = request.rules.clone().unwrap_or_default();
        self.form_by_rules(&mut place, &rules);
        let mut formation = place.formation;
        formation.still_queued = self.queued.get(&request.mode).copied().unwrap_or(0);
        formation
    }

    /// By the mode's rules (`matching::form`; none: first come, first served) over every live
    /// ticket of the mode's queue.
    fn form_by_rules(&mut self, place: &mut Placement<'_>, rules: &MatchRules) {
        let request = place.request;
        let ids = self.queued_ids(&request.mode);
        let groups = {
            let candidates = self.candidates(&ids);
            let shape = Shape {
                players: request.players.max(1),
                min_players: request.min_players.clamp(1, request.players.max(1)),
                wait_ms: request.wait_ms,
                teams: request.teams,
            };
            matching::form(
                &candidates,
                rules,
                shape,
                request.now_ms,
                request.max_matches,
            )
        };
        for group in groups {
            let Some((server_index, room_id)) = self.room_slot(place) else {
                break;
            };
            let members: Vec<TicketId> = group.members.iter().map(|&m| ids[m]).collect();
            let players = self.take(&request.mode, &members, room_id, request.now_ms);
            self.place(place, server_index, room_id, players, group.told());
        }
    }

    /// Fills the open seats of the mode's running rooms (on live servers) from the queue,
    /// oldest first, before new rooms form.
    fn backfill(&mut self, place: &mut Placement<'_>, now: Instant) {
        let request = place.request;
        let (rooms, servers) = (&self.rooms, &self.servers);
        self.open_rooms.retain(|id, _| {
            rooms.get(id).is_some_and(|r| {
                servers
                    .get(&r.record.server.server_id)
                    .is_some_and(|(_, expires)| *expires > now)
            })
        });
        let open: Vec<(u64, usize)> = self
            .open_rooms
            .iter()
            .filter(|(id, _)| self.rooms[*id].record.mode == request.mode)
            .map(|(id, free)| (*id, *free))
            .collect();
        if open.is_empty() {
            return;
        }
        let ids = self.queued_ids(&request.mode);
        let fills = {
            let candidates = self.candidates(&ids);
            let free: Vec<usize> = open.iter().map(|(_, f)| *f).collect();
            matching::backfill(&candidates, &free)
        };
        for (room, members) in fills {
            let (room_id, free) = open[room];
            let members: Vec<TicketId> = members.iter().map(|&m| ids[m]).collect();
            let players = self.take(&request.mode, &members, room_id, request.now_ms);
            let left = free.saturating_sub(players.len());
            if left == 0 {
                self.open_rooms.remove(&room_id);
            } else {
                self.open_rooms.insert(room_id, left);
            }
            let Some(room) = self.rooms.get_mut(&room_id) else {
                continue;
            };
            for p in &players {
                room.record.players.push(p.player_id);
                self.player_rooms
                    .entry(p.player_id)
                    .or_default()
                    .push(room_id);
            }
            place.formation.matches.push(FormedMatch {
                room_id,
                server_id: room.record.server.server_id.clone(),
                players,
                grouping: None,
            });
        }
    }

    /// The live tickets of a mode's queue, in queue order (matched and cancelled ones stay in
    /// it as tombstones until the sweep compacts it).
    fn queued_ids(&self, mode: &str) -> Vec<TicketId> {
        self.queues
            .get(mode)
            .map(|q| {
                q.iter()
                    .filter(|id| {
                        self.tickets
                            .get(id)
                            .is_some_and(|t| matches!(t.state, TicketState::Queued))
                    })
                    .copied()
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The matcher's view of the tickets `ids`.
    fn candidates(&self, ids: &[TicketId]) -> Vec<Candidate<'_>> {
        ids.iter()
            .filter_map(|id| {
                let t = self.tickets.get(id)?;
                Some(Candidate {
                    enqueued_ms: t.enqueued_ms,
                    tie: id.0,
                    properties: &t.properties,
                    party: t.party.map(|p| p.0),
                    player_id: t.player_id,
                })
            })
            .collect()
    }

    /// A server for the next room (power of two choices) and a fresh room id; `None` when no
    /// server has headroom or the room table is full.
    fn room_slot(&self, place: &mut Placement<'_>) -> Option<(usize, u64)> {
        let server_index = pick_server(&place.live, &mut place.rng)?;
        if self.rooms.len() >= MAX_ROOMS {
            return None;
        }
        let mut room_id = random_room_id(&mut place.rng);
        while self.rooms.contains_key(&room_id) {
            room_id = random_room_id(&mut place.rng);
        }
        Some((server_index, room_id))
    }

    /// Records room `room_id` on `live[server_index]` with `players` (already marked matched).
    fn place(
        &mut self,
        place: &mut Placement<'_>,
        server_index: usize,
        room_id: u64,
        players: Vec<MatchedPlayer>,
        grouping: Option<Grouping>,
    ) {
        let request = place.request;
        for p in &players {
            self.player_rooms
                .entry(p.player_id)
                .or_default()
                .push(room_id);
        }
        let server = &mut place.live[server_index];
        server.load = server
            .load
            .saturating_add(u32::try_from(players.len()).unwrap_or(u32::MAX));
        if let Some((registered, _)) = self.servers.get_mut(&server.server_id) {
            registered.load = server.load;
        }
        let record = RoomRecord {
            room_id,
            mode: request.mode.clone(),
            server: server.clone(),
            players: players.iter().map(|p| p.player_id).collect(),
            created_ms: request.now_ms,
            epoch: PLACEMENT_EPOCH,
            join_by_ms: request.now_ms.saturating_add(request.join_window_ms),
            joined: false,
            grouping: grouping.clone().map(Box::new),
            code: None,
        };
        let reports_joins = self.join_reporters.contains(&server.server_id);
        self.rooms.insert(room_id, Room::new(record, reports_joins));
        place.formation.matches.push(FormedMatch {
            room_id,
            server_id: server.server_id.clone(),
            players,
            grouping,
        });
    }

    /// Marks the queued tickets `ids` matched into `room_id` (their queue entries become
    /// tombstones).
    fn take(
        &mut self,
        mode: &str,
        ids: &[TicketId],
        room_id: u64,
        now_ms: u64,
    ) -> Vec<MatchedPlayer> {
        let mut players = Vec::with_capacity(ids.len());
        for id in ids {
            let Some(ticket) = self.tickets.get_mut(id) else {
                continue;
            };
            if !matches!(ticket.state, TicketState::Queued) {
                continue;
            }
            ticket.state = TicketState::Matched {
                room_id,
                matched_ms: now_ms,
            };
            self.queued_players.remove(&ticket.player_id);
            players.push(MatchedPlayer {
                ticket_id: *id,
                player_id: ticket.player_id,
                enqueued_ms: ticket.enqueued_ms,
            });
        }
        if let Some(n) = self.queued.get_mut(mode) {
            *n = n.saturating_sub(players.len());
        }
        players
    }

    /// Keeps `record` until `now + ttl`. Expired results are swept every `SWEEP_INTERVAL_MS`
    /// (and at once when the table is full), so memory stays within `MAX_MATCH_RESULTS`.
    fn store_result(
        &mut self,
        record: MatchRecord,
        ttl: Duration,
        now: Instant,
    ) -> Result<(), DirectoryError> {
        record.check_size()?;
        let swept_ago = self
            .last_result_sweep
            .map(|at| now.saturating_duration_since(at));
        if swept_ago.is_none_or(|ago| ago >= Duration::from_millis(SWEEP_INTERVAL_MS)) {
            self.sweep_results(now);
        }
        if ttl.is_zero() {
            self.results.remove(&record.room_id);
            return Ok(());
        }
        if !self.results.contains_key(&record.room_id) && self.results.len() >= MAX_MATCH_RESULTS {
            self.sweep_results(now);
            if self.results.len() >= MAX_MATCH_RESULTS {
                return Err(DirectoryError::Full("match results"));
            }
        }
        let expires = now + ttl.min(MAX_MATCH_RESULT_TTL);
        self.results.insert(record.room_id, (record, expires));
        Ok(())
    }

    /// The result of `room_id` unless it expired by `now`.
    fn result(&self, room_id: u64, now: Instant) -> Option<MatchRecord> {
        self.results
            .get(&room_id)
            .filter(|(_, expires)| *expires > now)
            .map(|(record, _)| record.clone())
    }

    fn sweep_results(&mut self, now: Instant) {
        self.last_result_sweep = Some(now);
        self.results.retain(|_, (_, expires)| *expires > now);
    }

    /// Drops abandoned queued tickets, long-matched tickets, stale rooms (and unjoined ones
    /// past their join window) and expired servers.
    fn sweep(&mut self, request: &MatchRequest, now: Instant) {
        let now_ms = request.now_ms;
        self.last_sweep_ms = now_ms;
        let queued_players = &mut self.queued_players;
        let queued = &mut self.queued;
        self.tickets.retain(|_, t| {
            let keep = match t.state {
                TicketState::Queued => {
                    now_ms.saturating_sub(t.last_seen_ms) <= request.abandon_after_ms
                }
                TicketState::Matched { matched_ms, .. } => {
                    now_ms.saturating_sub(matched_ms) <= MATCHED_TICKET_RETENTION_MS
                }
            };
            if !keep && matches!(t.state, TicketState::Queued) {
                queued_players.remove(&t.player_id);
                if let Some(n) = queued.get_mut(&t.mode) {
                    *n = n.saturating_sub(1);
                }
            }
            keep
        });
        let tickets = &self.tickets;
        for queue in self.queues.values_mut() {
            queue.retain(|id| {
                tickets
                    .get(id)
                    .is_some_and(|t| matches!(t.state, TicketState::Queued))
            });
        }
        self.rooms.retain(|_, r| now_ms <= r.expires_ms);
        let rooms = &self.rooms;
        self.player_rooms.retain(|_, placed| {
            placed.retain(|id| rooms.contains_key(id));
            !placed.is_empty()
        });
        self.servers.retain(|_, (_, expires)| *expires > now);
        self.codes.retain(|_, (id, _)| rooms.contains_key(id));
        let expired: Vec<TicketId> = self
            .parties
            .iter()
            .filter(|(_, (_, expires))| *expires < now_ms)
            .map(|(id, _)| *id)
            .collect();
        for id in expired {
            self.end_party(id);
        }
    }

    /// The registered servers still alive at `now`, ordered by id (placement draws from it).
    fn live_servers_by_id(&self, now: Instant) -> Vec<RoomServerInfo> {
        let mut live: Vec<RoomServerInfo> = self
            .servers
            .values()
            .filter(|(_, expires)| *expires > now)
            .map(|(info, _)| info.clone())
            .collect();
        live.sort_by(|a, b| a.server_id.cmp(&b.server_id));
        live
    }

    fn create_private_room(
        &mut self,
        request: &PrivateRoomRequest,
        now: Instant,
    ) -> Option<RoomRecord> {
        if let Some((id, _)) = self.codes.get(&request.code) {
            if self.rooms.contains_key(id) {
                return None;
            }
        }
        let mut live = self.live_servers_by_id(now);
        let mut rng = StdRng::seed_from_u64(request.seed);
        let server = live.swap_remove(pick_server(&live, &mut rng)?);
        if self.rooms.len() >= MAX_ROOMS {
            return None;
        }
        let mut room_id = random_room_id(&mut rng);
        while self.rooms.contains_key(&room_id) {
            room_id = random_room_id(&mut rng);
        }
        let record = RoomRecord {
            room_id,
            mode: request.mode.clone(),
            server,
            players: Vec::new(),
            created_ms: request.now_ms,
            epoch: PLACEMENT_EPOCH,
            join_by_ms: request.now_ms.saturating_add(request.ttl_ms),
            joined: false,
            grouping: None,
            code: Some(request.code.clone()),
        };
        let reports_joins = self.join_reporters.contains(&record.server.server_id);
        self.rooms
            .insert(room_id, Room::new(record.clone(), reports_joins));
        self.codes
            .insert(request.code.clone(), (room_id, request.seats));
        Some(record)
    }

    /// The live room behind `code` and its seats. A code dies with its room, and with the
    /// room's join window while nobody joined it.
    fn coded_room(&mut self, code: &str) -> Option<(u64, usize)> {
        let &(room_id, seats) = self.codes.get(code)?;
        let live = self
            .rooms
            .get(&room_id)
            .is_some_and(|r| r.record.joined || crate::now_ms() <= r.record.join_by_ms);
        if !live {
            self.codes.remove(code);
            return None;
        }
        Some((room_id, seats))
    }

    fn join_by_code(&mut self, code: &str, player_id: u64) -> CodeJoin {
        let Some((room_id, seats)) = self.coded_room(code) else {
            return CodeJoin::NotFound;
        };
        let room = self.rooms.get_mut(&room_id).expect("coded_room checked it");
        let players = &mut room.record.players;
        if !players.contains(&player_id) {
            if players.len() >= seats {
                return CodeJoin::Full;
            }
            players.push(player_id);
            self.player_rooms
                .entry(player_id)
                .or_default()
                .push(room_id);
        }
        CodeJoin::Joined(Box::new(room.record.clone()))
    }
}

/// The value under `key` of a table whose entries carry their expiry, unless it expired.
fn unexpired<V: Clone>(table: &HashMap<u64, (V, Instant)>, key: u64) -> Option<V> {
    table
        .get(&key)
        .filter(|(_, expires)| *expires > Instant::now())
        .map(|(value, _)| value.clone())
}

#[async_trait]
impl Directory for InMemoryDirectory {
    async fn register_server(
        &self,
        info: RoomServerInfo,
        ttl: Duration,
    ) -> Result<(), DirectoryError> {
        self.register_server_now(info, ttl)
    }

    async fn deregister_server(&self, server_id: &str) -> Result<(), DirectoryError> {
        self.state.lock().servers.remove(server_id);
        Ok(())
    }

    async fn live_servers(&self) -> Result<Vec<RoomServerInfo>, DirectoryError> {
        Ok(self.state.lock().live_servers_by_id(Instant::now()))
    }

    async fn enqueue(&self, entry: QueueEntry) -> Result<EnqueueOutcome, DirectoryError> {
        self.enqueue_now(entry)
    }

    async fn ticket(&self, ticket_id: TicketId) -> Result<Option<TicketRecord>, DirectoryError> {
        Ok(self.record(ticket_id, None))
    }

    async fn touch_ticket(
        &self,
        ticket_id: TicketId,
        now_ms: u64,
    ) -> Result<Option<TicketRecord>, DirectoryError> {
        Ok(self.record(ticket_id, Some(now_ms)))
    }

    fn ticket_changes(&self) -> Option<tokio::sync::broadcast::Receiver<TicketChange>> {
        Some(self.changes.subscribe())
    }

    async fn cancel_ticket(
        &self,
        ticket_id: TicketId,
        player_id: u64,
    ) -> Result<CancelOutcome, DirectoryError> {
        let (outcome, left) = self.state.lock().cancel(ticket_id, player_id);
        if !left.is_empty() {
            let _ = self.changes.send(TicketChange::Left(Arc::from(left)));
        }
        Ok(outcome)
    }

    async fn create_party(&self, party: PartyRecord) -> Result<PartyAnswer, DirectoryError> {
        Ok(self.state.lock().create_party(party, crate::now_ms()))
    }

    async fn join_party(&self, code: &str, player_id: u64) -> Result<PartyAnswer, DirectoryError> {
        Ok(self
            .state
            .lock()
            .join_party(code, player_id, crate::now_ms()))
    }

    async fn party(&self, party_id: TicketId) -> Result<Option<PartyRecord>, DirectoryError> {
        Ok(self
            .state
            .lock()
            .live_party(party_id, crate::now_ms())
            .cloned())
    }

    async fn leave_party(
        &self,
        party_id: TicketId,
        player_id: u64,
    ) -> Result<bool, DirectoryError> {
        let (was_in, left) = self
            .state
            .lock()
            .leave_party(party_id, player_id, crate::now_ms());
        if !left.is_empty() {
            let _ = self.changes.send(TicketChange::Left(Arc::from(left)));
        }
        Ok(was_in)
    }

    async fn enqueue_party(
        &self,
        party_id: TicketId,
        leader: u64,
        entries: Vec<QueueEntry>,
    ) -> Result<Option<EnqueueOutcome>, DirectoryError> {
        self.state
            .lock()
            .enqueue_party(party_id, leader, entries, crate::now_ms())
    }

    async fn form_matches(&self, request: MatchRequest) -> Result<Formation, DirectoryError> {
        Ok(self.form_matches_now(&request))
    }

    async fn create_private_room(
        &self,
        request: PrivateRoomRequest,
    ) -> Result<Option<RoomRecord>, DirectoryError> {
        Ok(self
            .state
            .lock()
            .create_private_room(&request, Instant::now()))
    }

    async fn join_by_code(&self, code: &str, player_id: u64) -> Result<CodeJoin, DirectoryError> {
        Ok(self.state.lock().join_by_code(code, player_id))
    }

    async fn room_by_code(&self, code: &str) -> Result<Option<RoomRecord>, DirectoryError> {
        let mut state = self.state.lock();
        let room_id = state.coded_room(code).map(|(room_id, _)| room_id);
        Ok(room_id.and_then(|id| state.rooms.get(&id).map(|r| r.record.clone())))
    }

    async fn room(&self, room_id: u64) -> Result<Option<RoomRecord>, DirectoryError> {
        Ok(self
            .state
            .lock()
            .rooms
            .get(&room_id)
            .map(|r| r.record.clone()))
    }

    async fn close_room_at(&self, room_id: u64, epoch: u64) -> Result<bool, DirectoryError> {
        let mut state = self.state.lock();
        if state
            .rooms
            .get(&room_id)
            .is_some_and(|r| r.record.epoch == epoch)
        {
            state.rooms.remove(&room_id);
            return Ok(true);
        }
        Ok(false)
    }

    async fn open_seats(
        &self,
        room_id: u64,
        server_id: &str,
        free: usize,
    ) -> Result<bool, DirectoryError> {
        let mut state = self.state.lock();
        let owned = state
            .rooms
            .get(&room_id)
            .is_some_and(|r| r.record.server.server_id == server_id);
        if owned {
            if free == 0 {
                state.open_rooms.remove(&room_id);
            } else {
                state.open_rooms.insert(room_id, free);
            }
        }
        Ok(owned)
    }

    async fn room_joined(
        &self,
        room_id: u64,
        server_id: &str,
    ) -> Result<Option<u64>, DirectoryError> {
        let mut state = self.state.lock();
        let Some(room) = state.rooms.get_mut(&room_id) else {
            return Ok(None);
        };
        if room.record.server.server_id != server_id {
            return Ok(None);
        }
        room.record.joined = true;
        room.set_expiry(true);
        let epoch = room.record.epoch;
        if !state.join_reporters.contains(server_id) {
            state.join_reporters.insert(server_id.to_owned());
        }
        Ok(Some(epoch))
    }

    async fn reassign_room(
        &self,
        room_id: u64,
        expected_epoch: u64,
        new_server_id: &str,
    ) -> Result<ReassignOutcome, DirectoryError> {
        let now = Instant::now();
        let mut state = self.state.lock();
        let live = state
            .servers
            .get(new_server_id)
            .filter(|(_, expires)| *expires > now)
            .map(|(info, _)| info.clone());
        let Some(room) = state.rooms.get_mut(&room_id).map(|r| &mut r.record) else {
            return Ok(ReassignOutcome::NotFound);
        };
        if room.epoch != expected_epoch {
            return Ok(ReassignOutcome::StaleEpoch {
                current: room.epoch,
            });
        }
        let Some(server) = live else {
            return Ok(ReassignOutcome::ServerNotLive);
        };
        room.server = server;
        room.epoch += 1;
        Ok(ReassignOutcome::Reassigned(Box::new(room.clone())))
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
        let expires = Instant::now() + ttl;
        let mut state = self.state.lock();
        let owner = state
            .rooms
            .get(&room_id)
            .is_some_and(|r| r.record.server.server_id == server_id && r.record.epoch == epoch);
        if !owner {
            return Ok(false);
        }
        state.images.insert(room_id, (image.to_vec(), expires));
        state.images.retain(|_, (_, e)| *e > Instant::now());
        for session in sessions {
            state.session_rooms.insert(*session, (room_id, expires));
        }
        state.session_rooms.retain(|_, (_, e)| *e > Instant::now());
        Ok(true)
    }

    async fn append_frames(
        &self,
        server_id: &str,
        appends: &[FrameAppend],
        ttl: Duration,
    ) -> Result<Vec<FramesStored>, DirectoryError> {
        let now = Instant::now();
        let mut state = self.state.lock();
        state.frame_logs.retain(|_, (_, e)| *e > now);
        let mut answers = Vec::with_capacity(appends.len());
        for append in appends {
            let owner = state.rooms.get(&append.room_id).is_some_and(|r| {
                r.record.server.server_id == server_id && r.record.epoch == append.epoch
            });
            if !owner {
                answers.push(FramesStored::Fenced);
                continue;
            }
            let stored = state
                .frame_logs
                .get(&append.room_id)
                .map_or(0, |(frames, _)| frames.len() as u64);
            if stored + 1 != append.first {
                state.frame_logs.remove(&append.room_id);
                state.images.remove(&append.room_id);
                answers.push(FramesStored::Gap);
                continue;
            }
            let log = state
                .frame_logs
                .entry(append.room_id)
                .or_insert_with(|| (Vec::new(), now));
            log.0.extend(append.frames.iter().cloned());
            log.1 = now + ttl;
            answers.push(FramesStored::Stored);
        }
        Ok(answers)
    }

    async fn room_frames(&self, room_id: u64) -> Result<Vec<Vec<u8>>, DirectoryError> {
        Ok(unexpired(&self.state.lock().frame_logs, room_id).unwrap_or_default())
    }

    async fn room_image(&self, room_id: u64) -> Result<Option<Vec<u8>>, DirectoryError> {
        Ok(unexpired(&self.state.lock().images, room_id))
    }

    async fn session_room(&self, session_id: u64) -> Result<Option<u64>, DirectoryError> {
        Ok(unexpired(&self.state.lock().session_rooms, session_id))
    }

    async fn rooms_on_server(&self, server_id: &str) -> Result<Vec<u64>, DirectoryError> {
        Ok(self
            .state
            .lock()
            .rooms
            .values()
            .filter(|r| r.record.server.server_id == server_id)
            .map(|r| r.record.room_id)
            .collect())
    }

    async fn store_match_result(
        &self,
        record: MatchRecord,
        ttl: Duration,
    ) -> Result<(), DirectoryError> {
        self.state.lock().store_result(record, ttl, Instant::now())
    }

    async fn match_result(&self, room_id: u64) -> Result<Option<MatchRecord>, DirectoryError> {
        Ok(self.state.lock().result(room_id, Instant::now()))
    }

    async fn register_server_about(
        &self,
        info: RoomServerInfo,
        about: ServerAbout,
        ttl: Duration,
    ) -> Result<(), DirectoryError> {
        self.register_server_now(info, ttl)?;
        let now = Instant::now();
        let expires = now.checked_add(ttl).unwrap_or(now);
        let mut admin = self.admin.lock();
        if !admin.abouts.contains_key(&about.server_id) && admin.abouts.len() >= MAX_SERVERS {
            admin.abouts.retain(|_, (_, expires)| *expires > now);
        }
        admin
            .abouts
            .insert(about.server_id.clone(), (about, expires));
        Ok(())
    }

    async fn server_abouts(
        &self,
        server_ids: &[String],
    ) -> Result<Vec<Option<ServerAbout>>, DirectoryError> {
        let now = Instant::now();
        let admin = self.admin.lock();
        Ok(server_ids
            .iter()
            .map(|id| {
                admin
                    .abouts
                    .get(id)
                    .filter(|(_, expires)| *expires > now)
                    .map(|(about, _)| about.clone())
            })
            .collect())
    }

    /// Copies the (created, id) pairs under the lock and sorts them outside it, so a listing
    /// holds the matchmaking lock for one pass over the rooms, not for the sort.
    async fn list_rooms(&self, offset: usize, limit: usize) -> Result<RoomPage, DirectoryError> {
        let limit = limit.min(MAX_ROOMS_PAGE);
        let mut order: Vec<(u64, u64)> = self
            .state
            .lock()
            .rooms
            .values()
            .map(|r| (r.record.created_ms, r.record.room_id))
            .collect();
        let total = order.len() as u64;
        let wanted = offset.saturating_add(limit).min(order.len());
        if wanted == 0 {
            order.clear();
        } else if wanted < order.len() {
            order.select_nth_unstable_by(wanted - 1, |a, b| b.cmp(a));
            order.truncate(wanted);
        }
        order.sort_unstable_by(|a, b| b.cmp(a));
        let state = self.state.lock();
        let rooms = order
            .iter()
            .skip(offset)
            .take(limit)
            .filter_map(|(_, id)| state.rooms.get(id).map(|r| r.record.clone()))
            .collect();
        Ok(RoomPage { total, rooms })
    }

    async fn push_command(
        &self,
        server_id: &str,
        command: AdminCommand,
    ) -> Result<(), DirectoryError> {
        let now = Instant::now();
        let mut admin = self.admin.lock();
        if !admin.commands.contains_key(server_id) && admin.commands.len() >= MAX_SERVERS {
            admin.commands.retain(|_, queue| {
                queue.retain(|(_, expires)| *expires > now);
                !queue.is_empty()
            });
            if admin.commands.len() >= MAX_SERVERS {
                return Err(DirectoryError::Full("operator command queues"));
            }
        }
        let queue = admin.commands.entry(server_id.to_owned()).or_default();
        queue.retain(|(_, expires)| *expires > now);
        if queue.len() >= MAX_QUEUED_COMMANDS {
            return Err(DirectoryError::Full("operator commands"));
        }
        queue.push_back((command, now + COMMAND_TTL));
        Ok(())
    }

    async fn take_commands(
        &self,
        server_id: &str,
        max: usize,
    ) -> Result<Vec<AdminCommand>, DirectoryError> {
        let now = Instant::now();
        let mut admin = self.admin.lock();
        let Some(queue) = admin.commands.get_mut(server_id) else {
            return Ok(Vec::new());
        };
        let mut taken = Vec::new();
        while taken.len() < max {
            let Some((command, expires)) = queue.pop_front() else {
                break;
            };
            if expires > now {
                taken.push(command);
            }
        }
        if queue.is_empty() {
            admin.commands.remove(server_id);
        }
        Ok(taken)
    }

    async fn put_reply(&self, command_id: u64, reply: AdminReply) -> Result<(), DirectoryError> {
        let now = Instant::now();
        let mut admin = self.admin.lock();
        if admin.replies.len() >= MAX_COMMAND_REPLIES {
            admin.replies.retain(|_, (_, expires)| *expires > now);
            if admin.replies.len() >= MAX_COMMAND_REPLIES {
                return Err(DirectoryError::Full("operator command replies"));
            }
        }
        admin.replies.insert(command_id, (reply, now + COMMAND_TTL));
        Ok(())
    }

    async fn take_reply(&self, command_id: u64) -> Result<Option<AdminReply>, DirectoryError> {
        let now = Instant::now();
        Ok(self
            .admin
            .lock()
            .replies
            .remove(&command_id)
            .filter(|(_, expires)| *expires > now)
            .map(|(reply, _)| reply))
    }

    async fn report_errors(&self, errors: Vec<ErrorRecord>) -> Result<(), DirectoryError> {
        let mut admin = self.admin.lock();
        let skip = errors.len().saturating_sub(MAX_RECENT_ERRORS);
        for error in errors.into_iter().skip(skip) {
            admin.errors.push_front(error);
        }
        admin.errors.truncate(MAX_RECENT_ERRORS);
        Ok(())
    }

    async fn recent_errors(&self) -> Result<Vec<ErrorRecord>, DirectoryError> {
        Ok(self.admin.lock().errors.iter().cloned().collect())
    }
}

#[cfg(test)]
mod tests;
