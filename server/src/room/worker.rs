//! A room worker thread: owns many rooms, feeds them their `RoomInput`s and ticks each on its
//! mode's fixed schedule. A late room catches up at most `MAX_CATCH_UP_TICKS`, then skips ahead
//! and counts an overrun; every tick's duration and lateness go into the worker's histograms.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use crossbeam_channel::{Receiver, RecvTimeoutError};
use tickroom_game::modes::{ModeConfig, ModeSync};
use tickroom_protocol::{codec, ErrorCode, ServerMsg, SyncKind, Welcome};
use tracing::{debug, info, warn};

use super::lockstep::LockstepSim;
use super::state::StateSim;
use super::{RoomId, RoomInput, Seated, Seating, SessionId};
use crate::outbox::{Outbox, Pushed};
use crate::Shared;

/// Most ticks a late room runs back to back before it skips ahead.
pub const MAX_CATCH_UP_TICKS: u32 = 3;
/// How long a worker waits for input when it has no room at all.
const IDLE_WAIT: Duration = Duration::from_millis(250);

/// A player's place in a room.
#[derive(Debug)]
pub(super) struct Seat {
    pub session_id: SessionId,
    pub player_id: u64,
    /// None while the player is disconnected (in grace).
    pub outbox: Option<Arc<Outbox>>,
    pub detached_at: Option<Instant>,
    /// State sync: newest input tick applied.
    pub last_input_tick: u64,
    /// State sync: newest snapshot tick the client has (delta baseline).
    pub acked_tick: u64,
}

/// The per-mode part of a room.
pub(super) enum Sim {
    State(Box<StateSim>),
    Lockstep(Box<LockstepSim>),
}

/// One room, owned by one worker.
pub(super) struct Room {
    pub id: RoomId,
    pub mode: Arc<ModeConfig>,
    created: Instant,
    started: Option<Instant>,
    next_tick_at: Instant,
    interval: Duration,
    pub seats: Vec<Option<Seat>>,
    pub sim: Sim,
    /// Scratch buffer for encoding.
    pub buf: Vec<u8>,
}

/// Why a room ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RoomEnd {
    Empty,
    MatchOver,
}

impl Room {
    fn new(id: RoomId, mode: Arc<ModeConfig>, now: Instant) -> Room {
        let interval = mode.tick_interval();
        let sim = match mode.sync {
            ModeSync::State => Sim::State(Box::new(StateSim::new(&mode, id))),
            ModeSync::Lockstep => Sim::Lockstep(Box::new(LockstepSim::new(&mode))),
        };
        Room {
            id,
            seats: (0..mode.players).map(|_| None).collect(),
            mode,
            created: now,
            started: None,
            next_tick_at: now + interval,
            interval,
            sim,
            buf: Vec::with_capacity(512),
        }
    }

    fn seat_of(&mut self, session_id: SessionId) -> Option<(usize, &mut Seat)> {
        self.seats
            .iter_mut()
            .enumerate()
            .find_map(|(i, s)| match s {
                Some(seat) if seat.session_id == session_id => Some((i, seat)),
                _ => None,
            })
    }

    fn occupied(&self) -> usize {
        self.seats.iter().filter(|s| s.is_some()).count()
    }

    /// Encodes `msg` once into shareable bytes.
    pub fn encode(&mut self, msg: &ServerMsg) -> Bytes {
        match codec::encode_server(msg, &mut self.buf) {
            Ok(()) => Bytes::copy_from_slice(&self.buf),
            Err(e) => {
                // Only an oversize message can fail; it is a bug in the room, not the peer.
                warn!(room = self.id, error = %e, "cannot encode a server message");
                Bytes::new()
            }
        }
    }

    /// Queues a reliable message to every connected player.
    pub fn broadcast_reliable(&mut self, msg: &ServerMsg, shared: &Shared) {
        let bytes = self.encode(msg);
        for seat in self.seats.iter().flatten() {
            if let Some(outbox) = &seat.outbox {
                push_reliable(outbox, bytes.clone(), shared);
            }
        }
    }

    fn current_tick(&self) -> u64 {
        match &self.sim {
            Sim::State(s) => s.tick(),
            Sim::Lockstep(l) => l.next_frame(),
        }
    }

    fn welcome(&mut self, slot: usize, seating: &Seating, resumed: bool) -> Bytes {
        let msg = ServerMsg::Welcome(Welcome {
            session_id: seating.session_id,
            resume_secret: seating.resume_secret,
            room_id: self.id,
            player_id: seating.player_id,
            slot: slot as u8,
            max_players: self.mode.players,
            sync: match self.mode.sync {
                ModeSync::State => SyncKind::State,
                ModeSync::Lockstep => SyncKind::Lockstep,
            },
            tick_rate_hz: self.mode.tick_rate_hz,
            tick: self.current_tick(),
            next_seq: seating.next_seq,
            resumed,
        });
        self.encode(&msg)
    }

    fn start_if_ready(&mut self, now: Instant, shared: &Shared) {
        if self.started.is_some() {
            return;
        }
        let occupied = self.occupied();
        let timed_out = now.duration_since(self.created)
            >= Duration::from_secs(u64::from(self.mode.start_timeout_s));
        if occupied == self.seats.len() || (timed_out && occupied > 0) {
            self.started = Some(now);
            self.next_tick_at = now + self.interval;
            let msg = ServerMsg::Started {
                tick: self.current_tick(),
                players: occupied as u8,
            };
            self.broadcast_reliable(&msg, shared);
            debug!(room = self.id, players = occupied, "room started");
        }
    }

    /// One fixed tick: grace expiry, start, simulation, end checks.
    fn tick(&mut self, now: Instant, shared: &Shared) -> Option<RoomEnd> {
        let grace = Duration::from_secs(u64::from(self.mode.grace_s));
        for slot in 0..self.seats.len() {
            let expired = matches!(&self.seats[slot], Some(s) if s.detached_at.is_some_and(|t| now.duration_since(t) >= grace));
            if expired {
                self.vacate(slot, shared);
            }
        }
        self.start_if_ready(now, shared);
        let Some(started) = self.started else {
            let waited = now.duration_since(self.created);
            let limit = Duration::from_secs(u64::from(self.mode.start_timeout_s));
            return (waited >= limit && self.occupied() == 0).then_some(RoomEnd::Empty);
        };
        match &mut self.sim {
            Sim::State(_) => StateSim::run_tick(self, shared),
            Sim::Lockstep(_) => LockstepSim::run_tick(self, shared),
        }
        if self.occupied() == 0 {
            return Some(RoomEnd::Empty);
        }
        let over = match &self.sim {
            Sim::State(s) => s.is_over(),
            Sim::Lockstep(_) => false,
        };
        let duration = Duration::from_secs(u64::from(self.mode.match_duration_s));
        (over || now.duration_since(started) >= duration).then_some(RoomEnd::MatchOver)
    }

    /// Frees a seat for good and forgets its session.
    fn vacate(&mut self, slot: usize, shared: &Shared) {
        if let Some(seat) = self.seats[slot].take() {
            if let Some(outbox) = seat.outbox {
                outbox.close(ErrorCode::Kicked);
            }
            forget_session(shared, seat.session_id);
            if let Sim::State(s) = &mut self.sim {
                s.remove_player(slot as u8);
            }
        }
    }

    /// Tells everyone the room closed and forgets all sessions.
    fn close(&mut self, code: ErrorCode, shared: &Shared) {
        let msg = self.encode(&ServerMsg::Kicked { code });
        for seat in self.seats.iter_mut().filter_map(Option::take) {
            if let Some(outbox) = &seat.outbox {
                push_reliable(outbox, msg.clone(), shared);
                outbox.close(code);
            }
            forget_session(shared, seat.session_id);
        }
    }
}

/// Queues reliable bytes, counting a slow consumer when the outbox overflows.
pub(super) fn push_reliable(outbox: &Outbox, bytes: Bytes, shared: &Shared) {
    if !outbox.push_reliable(bytes) && outbox.close_code() == Some(ErrorCode::SlowConsumer) {
        shared.metrics.slow_consumers.inc();
    }
}

/// Queues a snapshot, counting conflation.
pub(super) fn push_snapshot(outbox: &Outbox, bytes: Bytes, shared: &Shared) {
    if outbox.push_snapshot(bytes) == Pushed::Conflated {
        shared.metrics.conflated_snapshots.inc();
    }
}

fn forget_session(shared: &Shared, session_id: SessionId) {
    if shared.sessions.remove(&session_id).is_some() {
        shared.metrics.sessions.add(-1);
    }
}

/// The worker loop: runs until `Shutdown` or until every sender is gone.
pub(super) fn run(index: usize, rx: Receiver<RoomInput>, shared: Arc<Shared>) {
    let mut rooms: HashMap<RoomId, Room> = HashMap::new();
    loop {
        let deadline = rooms.values().map(|r| r.next_tick_at).min();
        // Drain input until the earliest room is due.
        loop {
            let msg = match deadline {
                Some(d) => rx.recv_deadline(d),
                None => rx.recv_timeout(IDLE_WAIT),
            };
            match msg {
                Ok(RoomInput::Shutdown) | Err(RecvTimeoutError::Disconnected) => {
                    for (id, mut room) in rooms.drain() {
                        room.close(ErrorCode::ServerShutdown, &shared);
                        release_room(&shared, id);
                    }
                    return;
                }
                Ok(msg) => handle(&mut rooms, msg, &shared),
                Err(RecvTimeoutError::Timeout) => break,
            }
            if deadline.is_none() && !rooms.is_empty() {
                break;
            }
        }
        tick_due_rooms(index, &mut rooms, &shared);
    }
}

fn tick_due_rooms(index: usize, rooms: &mut HashMap<RoomId, Room>, shared: &Shared) {
    let now = Instant::now();
    let mut ended = Vec::new();
    let stats = &shared.metrics.tick_stats[index];
    for room in rooms.values_mut() {
        let mut ran = 0;
        while room.next_tick_at <= now && ran < MAX_CATCH_UP_TICKS {
            let late = now.saturating_duration_since(room.next_tick_at);
            let started = Instant::now();
            let end = room.tick(now, shared);
            let took = started.elapsed();
            // Locked after the tick, never across it; only /metrics contends.
            let mut stats = stats.lock();
            let _ = stats.duration_us.record(took.as_micros() as u64);
            let _ = stats.recent_us.record(took.as_micros() as u64);
            let _ = stats.lateness_us.record(late.as_micros() as u64);
            drop(stats);
            shared.metrics.ticks.inc();
            room.next_tick_at += room.interval;
            ran += 1;
            if let Some(end) = end {
                ended.push((room.id, end));
                break;
            }
        }
        if room.next_tick_at <= now {
            // Still behind after catching up: skip the missed ticks rather than spiral.
            let behind = now.duration_since(room.next_tick_at);
            let skipped = 1 + (behind.as_nanos() / room.interval.as_nanos().max(1)) as u64;
            shared.metrics.tick_overruns.add(skipped);
            room.next_tick_at += room.interval * skipped as u32;
        }
    }
    for (id, end) in ended {
        if let Some(mut room) = rooms.remove(&id) {
            room.close(ErrorCode::RoomClosed, shared);
            release_room(shared, id);
            info!(room = id, reason = ?end, "room ended");
        }
    }
}

/// Forgets a room that ended: its slot, its gauge, and (through `Shared::closed_rooms`) its
/// directory record.
fn release_room(shared: &Shared, room_id: RoomId) {
    shared.room_count.fetch_sub(1, Ordering::AcqRel);
    shared.metrics.rooms.add(-1);
    if let Some(closed) = shared.closed_rooms.get() {
        // Bounded and best effort: a record that is not closed expires with its TTL.
        let _ = closed.try_send(room_id);
    }
}

fn handle(rooms: &mut HashMap<RoomId, Room>, msg: RoomInput, shared: &Shared) {
    match msg {
        RoomInput::Join {
            room_id,
            mode,
            seating,
            outbox,
            reply,
        } => {
            let _ = reply.send(join(rooms, room_id, mode, seating, outbox, shared));
        }
        RoomInput::Resume {
            room_id,
            seating,
            last_frame,
            outbox,
            reply,
        } => {
            let result = match rooms.get_mut(&room_id) {
                Some(room) => resume(room, seating, last_frame, outbox, shared),
                None => Err(ErrorCode::SessionExpired),
            };
            let _ = reply.send(result);
        }
        RoomInput::Detach {
            room_id,
            session_id,
            outbox,
        } => {
            if let Some((_, seat)) = rooms.get_mut(&room_id).and_then(|r| r.seat_of(session_id)) {
                if seat
                    .outbox
                    .as_ref()
                    .is_some_and(|o| Arc::ptr_eq(o, &outbox))
                {
                    seat.outbox = None;
                    seat.detached_at = Some(Instant::now());
                }
            }
        }
        RoomInput::Leave {
            room_id,
            session_id,
        } => {
            if let Some(room) = rooms.get_mut(&room_id) {
                if let Some((slot, _)) = room.seat_of(session_id) {
                    room.vacate(slot, shared);
                }
            }
        }
        RoomInput::Input {
            room_id,
            session_id,
            tick,
            ack_tick,
            inputs,
        } => {
            if let Some(room) = rooms.get_mut(&room_id) {
                StateSim::input(room, session_id, tick, ack_tick, &inputs);
            }
        }
        RoomInput::FrameInput {
            room_id,
            session_id,
            frame,
            input,
        } => {
            if let Some(room) = rooms.get_mut(&room_id) {
                LockstepSim::input(room, session_id, frame, input, shared);
            }
        }
        RoomInput::Checksum {
            room_id,
            session_id,
            frame,
            hash,
        } => {
            if let Some(room) = rooms.get_mut(&room_id) {
                LockstepSim::checksum(room, session_id, frame, hash, shared);
            }
        }
        RoomInput::Shutdown => {}
    }
}

fn join(
    rooms: &mut HashMap<RoomId, Room>,
    room_id: RoomId,
    mode: Arc<ModeConfig>,
    seating: Seating,
    outbox: Arc<Outbox>,
    shared: &Shared,
) -> Result<Seated, ErrorCode> {
    let now = Instant::now();
    let room = match rooms.entry(room_id) {
        std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
        std::collections::hash_map::Entry::Vacant(e) => {
            if !shared.admit_room() {
                shared.metrics.server_busy.inc();
                return Err(ErrorCode::ServerBusy);
            }
            shared.metrics.rooms.add(1);
            shared.metrics.rooms_created.inc();
            e.insert(Room::new(room_id, mode.clone(), now))
        }
    };
    if room.mode.name != mode.name {
        return Err(ErrorCode::TicketInvalid);
    }
    // The same player with a fresh ticket takes their old seat back.
    let slot = room
        .seats
        .iter()
        .position(|s| matches!(s, Some(seat) if seat.player_id == seating.player_id));
    if let Some(slot) = slot {
        if let Some(old) = room.seats[slot].take() {
            if let Some(o) = old.outbox {
                o.close(ErrorCode::Kicked);
            }
            forget_session(shared, old.session_id);
        }
    }
    let slot = slot
        .or_else(|| room.seats.iter().position(Option::is_none))
        .ok_or(ErrorCode::RoomFull)?;
    let welcome = room.welcome(slot, &seating, false);
    push_reliable(&outbox, welcome, shared);
    room.seats[slot] = Some(Seat {
        session_id: seating.session_id,
        player_id: seating.player_id,
        outbox: Some(outbox.clone()),
        detached_at: None,
        last_input_tick: 0,
        acked_tick: 0,
    });
    match &mut room.sim {
        Sim::State(s) => s.add_player(slot as u8),
        Sim::Lockstep(_) => LockstepSim::catch_up(room, &outbox, 0, shared),
    }
    if room.started.is_some() {
        let msg = room.encode(&ServerMsg::Started {
            tick: room.current_tick(),
            players: room.occupied() as u8,
        });
        push_reliable(&outbox, msg, shared);
    }
    room.start_if_ready(now, shared);
    Ok(Seated { slot: slot as u8 })
}

fn resume(
    room: &mut Room,
    seating: Seating,
    last_frame: u64,
    outbox: Arc<Outbox>,
    shared: &Shared,
) -> Result<Seated, ErrorCode> {
    let Some((slot, seat)) = room.seat_of(seating.session_id) else {
        return Err(ErrorCode::SessionExpired);
    };
    if let Some(old) = seat.outbox.replace(outbox.clone()) {
        // A half-open old connection is replaced by the new one.
        old.close(ErrorCode::Kicked);
    }
    seat.detached_at = None;
    // No acknowledged baseline on the new connection: the next snapshot is full.
    seat.acked_tick = 0;
    let welcome = room.welcome(slot, &seating, true);
    push_reliable(&outbox, welcome, shared);
    if room.started.is_some() {
        let msg = room.encode(&ServerMsg::Started {
            tick: room.current_tick(),
            players: room.occupied() as u8,
        });
        push_reliable(&outbox, msg, shared);
    }
    if matches!(room.sim, Sim::Lockstep(_)) {
        LockstepSim::catch_up(room, &outbox, last_frame, shared);
    }
    Ok(Seated { slot: slot as u8 })
}
