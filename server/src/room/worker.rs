//! A room worker thread: owns many rooms (`RoomCore`s), feeds them their `RoomInput`s with
//! the current time, runs their due ticks, and carries out their effects on the connections'
//! outboxes and the session table. It owns the thread, the clock and the queue; the rooms'
//! logic is in `core.rs`. Every tick's duration and lateness go into the worker's histograms.
//!
//! The worker wakes once per tick, not once per message: its rooms' ticks are aligned to one
//! grid (`RoomCore::align_ticks_to`), so rooms of one tick rate tick together; between ticks
//! it sleeps (`park_timeout`), and only messages someone awaits an answer to unpark it
//! (`RoomInput::wakes_worker`). Each wake drains everything queued, then ticks what is due.
//! Its `SnapshotGovernor` slows its state-sync rooms' snapshots when it falls behind.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, TryRecvError};
use tickroom_protocol::ErrorCode;
use tracing::info;

use super::core::{Effect, EndReason, RoomCore, RoomEnd, SessionState};
use super::input::{AdminAnswer, AdminOp, QueueBytes, RoomId, RoomInput, SeatRefusal, Seated};
use super::load::{Change, SnapshotGovernor};
use super::sim::Delivery;
use crate::outbox::{Outbox, Pushed};
use crate::{ClosedRoom, ImageWhy, RoomEvent, Shared};

/// How long a worker waits for input when it has no room at all.
const IDLE_WAIT: Duration = Duration::from_millis(250);

/// The workers' tick grids are staggered by a share of this interval (a 30 Hz tick), so two
/// workers' snapshot bursts do not reach the connections' writers at the same instant.
const STAGGER_OVER: Duration = Duration::from_micros(33_333);

/// A connection as a room sees it: its outbox, equal only to itself.
#[derive(Debug, Clone)]
pub struct Conn(pub Arc<Outbox>);

impl PartialEq for Conn {
    fn eq(&self, other: &Conn) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

type Room = RoomCore<Conn>;

/// What a worker owns besides its queue.
struct Worker {
    index: usize,
    rooms: HashMap<RoomId, Room>,
    /// When the worker last woke: a gap longer than the heartbeat TTL less one heartbeat means
    /// the process was paused (or starved) long enough to lose its rooms.
    last_wake: Instant,
    shared: Arc<Shared>,
    /// The grid every room of this worker ticks on.
    epoch: Instant,
    governor: SnapshotGovernor,
}

/// The worker loop: runs until `Shutdown` or until every sender is gone.
pub(super) fn run(
    index: usize,
    rx: Receiver<RoomInput>,
    queued: Arc<QueueBytes>,
    shared: Arc<Shared>,
) {
    let now = Instant::now();
    let workers = shared.metrics.tick_stats.len().max(1) as u32;
    let mut w = Worker {
        index,
        rooms: HashMap::new(),
        last_wake: now,
        shared,
        epoch: now + STAGGER_OVER * index as u32 / workers,
        governor: SnapshotGovernor::new(now),
    };
    loop {
        let woke = Instant::now();
        w.check_pause(woke);
        // Everything queued since the last pass, then the rooms that are due.
        loop {
            let msg = match rx.try_recv() {
                Ok(msg) => msg,
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => return w.shut_down(),
            };
            queued.give_back(msg.weight());
            if let RoomInput::Shutdown = msg {
                return w.shut_down();
            }
            w.handle(msg);
        }
        w.tick_due_rooms();
        let now = Instant::now();
        w.governor.record_busy(now.duration_since(woke));
        w.govern(now);
        match w.rooms.values().map(|r| r.next_tick_at()).min() {
            Some(due) if due > now => std::thread::park_timeout(due - now),
            Some(_) => {}
            None => std::thread::park_timeout(IDLE_WAIT),
        }
    }
}

impl Worker {
    /// After a pause longer than the heartbeat TTL less one heartbeat, the server's
    /// registration may have expired and its failover rooms moved to other servers: each is
    /// held (no tick, nothing sent) and its image offered to the directory, whose fenced
    /// answer says whether it is still ours.
    fn check_pause(&mut self, woke: Instant) {
        let gap = woke.saturating_duration_since(self.last_wake);
        self.last_wake = woke;
        // Past this, its server's registration may have expired (the TTL less one heartbeat).
        let config = &self.shared.config;
        if gap <= config.heartbeat_ttl - config.heartbeat_interval() {
            return;
        }
        let mut held = 0;
        for room in self.rooms.values_mut().filter(|r| r.fails_over()) {
            if !room.is_held() {
                room.hold();
                send_image(room, &self.shared, woke, ImageWhy::Probe);
                held += 1;
            }
        }
        if held > 0 {
            tracing::warn!(worker = self.index, paused_ms = gap.as_millis() as u64, rooms = held, "woke from a pause past the lease: holding the rooms until the directory says they are still ours");
        }
    }

    /// Ends every room (server shutdown).
    fn shut_down(&mut self) {
        for (_, mut room) in self.rooms.drain() {
            room.abort(EndReason::Shutdown);
            carry_out(&mut room, &self.shared);
        }
    }

    /// Lets the governor weigh the last window, and applies its answer to every room.
    fn govern(&mut self, now: Instant) {
        let Some(change) = self.governor.update(now) else {
            return;
        };
        let metrics = &self.shared.metrics;
        if let Change::Degraded(_) = change {
            metrics.snapshot_degradations.inc();
        }
        let divisor = self.governor.divisor();
        metrics.snapshot_divisor[self.index].set(i64::from(divisor));
        for room in self.rooms.values_mut() {
            room.set_snapshot_divisor(divisor);
        }
        tracing::debug!(worker = self.index, ?change, "snapshot rate changed");
    }

    fn tick_due_rooms(&mut self) {
        tick_due_rooms(
            self.index,
            &mut self.rooms,
            &self.shared,
            &mut self.governor,
        );
    }

    fn handle(&mut self, msg: RoomInput) {
        let placement = Placement {
            epoch: self.epoch,
            snapshot_divisor: self.governor.divisor(),
        };
        handle(&mut self.rooms, msg, &self.shared, placement);
    }
}

/// How a worker sets up a room it creates: its tick grid and current snapshot divisor.
#[derive(Debug, Clone, Copy)]
struct Placement {
    epoch: Instant,
    snapshot_divisor: u32,
}

fn tick_due_rooms(
    index: usize,
    rooms: &mut HashMap<RoomId, Room>,
    shared: &Shared,
    governor: &mut SnapshotGovernor,
) {
    let now = Instant::now();
    let stats = &shared.metrics.tick_stats[index];
    let mut ended = Vec::new();
    let mut frames = Vec::new();
    for (id, room) in rooms.iter_mut() {
        if room.is_held() {
            room.skip_missed(now);
            continue;
        }
        for _ in 0..room.due_ticks(now) {
            let started = Instant::now();
            let late = room.guarded(|r| r.tick(now)).unwrap_or_default();
            let took = started.elapsed();
            governor.record_tick(late, room.interval());
            // Locked after the tick, never across it; only /metrics contends.
            let mut stats = stats.lock();
            let _ = stats.duration_us.record(took.as_micros() as u64);
            let _ = stats.recent_us.record(took.as_micros() as u64);
            let _ = stats.lateness_us.record(late.as_micros() as u64);
            for wait in room.drain_input_waits() {
                let _ = stats.input_ack_us.record(wait.as_micros() as u64);
            }
            drop(stats);
            shared.metrics.ticks.inc();
            if room.is_ended() {
                break;
            }
        }
        if !room.is_ended() {
            // Still behind after catching up: skip the missed ticks rather than spiral.
            shared.metrics.tick_overruns.add(room.skip_missed(now));
            if room.checkpoint_due(now) {
                send_image(room, shared, now, ImageWhy::Checkpoint);
            }
            let closed = room.frames_to_persist();
            if !closed.is_empty() {
                // The log lives as long as the match can, and a grace period after.
                let mode = room.mode();
                let ttl = Duration::from_secs(
                    u64::from(mode.match_duration_s) + u64::from(mode.grace_s) + 60,
                );
                frames.push((*id, ttl, closed));
            }
        }
        let (pushed, conflated) = carry_out(room, shared);
        governor.record_snapshots(pushed, conflated);
        if room.is_ended() {
            ended.push(*id);
        }
    }
    for id in ended {
        rooms.remove(&id);
    }
    if !frames.is_empty() {
        store_frames(rooms, shared, frames);
    }
}

/// Hands a tick's closed lockstep frames to the process role to store; when the queue is
/// full (or there is no role), they are released unstored: failover of those rooms is
/// suspended, and they play on.
fn store_frames(rooms: &mut HashMap<RoomId, Room>, shared: &Shared, frames: crate::FrameBatch) {
    let Some(events) = shared.room_events.get() else {
        return release_unstored(rooms, shared, frames);
    };
    if let Err(e) = events.try_send(RoomEvent::Frames(frames)) {
        let RoomEvent::Frames(frames) = e.into_inner() else {
            return;
        };
        shared.metrics.image_failures.inc();
        release_unstored(rooms, shared, frames);
    }
}

fn release_unstored(rooms: &mut HashMap<RoomId, Room>, shared: &Shared, frames: crate::FrameBatch) {
    for (room_id, _, closed) in frames {
        if let (Some(room), Some((upto, _))) = (rooms.get_mut(&room_id), closed.last()) {
            let upto = *upto;
            room.guarded(|r| r.release_frames(upto));
            carry_out(room, shared);
        }
    }
}

/// Carries out what the room asked for (and releases it once it ended). Returns the snapshots
/// pushed and how many of them replaced one the connection's writer had not sent yet.
fn carry_out(room: &mut Room, shared: &Shared) -> (u64, u64) {
    let counters = room.take_counters();
    let metrics = &shared.metrics;
    metrics.late_frame_inputs.add(counters.late_frame_inputs);
    metrics.dropped_inputs.add(counters.dropped_inputs);
    if counters.desyncs > 0 {
        metrics.desyncs.add(&room.mode().name, counters.desyncs);
    }
    if counters.checksum_disagreements > 0 {
        metrics
            .checksum_disagreements
            .add(&room.mode().name, counters.checksum_disagreements);
    }
    let mut end = None;
    let mut opened = None;
    let (mut pushed, mut conflated) = (0, 0);
    for effect in room.drain_effects() {
        match effect {
            Effect::Send {
                to,
                bytes,
                delivery: Delivery::Reliable,
            } => {
                if !to.0.push_reliable(bytes) && to.0.close_code() == Some(ErrorCode::SlowConsumer)
                {
                    metrics.slow_consumers.inc();
                }
            }
            Effect::Send {
                to,
                bytes,
                delivery: Delivery::Snapshot,
            } => {
                pushed += 1;
                if to.0.push_snapshot(bytes) == Pushed::Conflated {
                    metrics.conflated_snapshots.inc();
                    conflated += 1;
                }
            }
            Effect::Close { to, code } => to.0.close(code),
            Effect::SessionEnded { session_id } => {
                if shared.sessions.remove(&session_id).is_some() {
                    metrics.sessions.add(-1);
                }
            }
            Effect::RoomEnded(e) => end = Some(e),
            Effect::SeatsOpen { free } => opened = Some(free),
        }
    }
    if let (Some(free), Some(events)) = (opened, shared.room_events.get()) {
        // Best effort: a seat not reported stays empty.
        let _ = events.try_send(RoomEvent::SeatsOpen {
            room_id: room.id(),
            free,
        });
    }
    if let Some(e) = &end {
        release_room(shared, room, e);
    }
    (pushed, conflated)
}

/// Hands the room's failover image to the process role, which stores it in the directory
/// (best effort: a full queue skips this one; the next follows one interval later).
fn send_image(room: &Room, shared: &Shared, now: Instant, why: ImageWhy) {
    let Some(events) = shared.room_events.get() else {
        return;
    };
    let image = room.image(now, |session_id| {
        let record = shared.sessions.get(&session_id)?;
        let highest_seq = record.window.lock().highest();
        let resume_counter = *record.resume_counter.lock();
        Some(SessionState {
            key_id: record.ticket_key.0,
            nonce: record.ticket_key.1,
            resume_counter,
            highest_seq,
        })
    });
    let mode = room.mode();
    // Kept until the seats' grace ends after the owner stopped refreshing it.
    let ttl = Duration::from_secs(u64::from(mode.grace_s).max(10))
        + Duration::from_millis(u64::from(mode.checkpoint_interval_ms)) * 2;
    let _ = events.try_send(RoomEvent::Image {
        room_id: room.id(),
        sessions: image.seats.iter().map(|s| s.session_id).collect(),
        image: image.encode(),
        ttl,
        why,
    });
}

/// The server shuts down: each failover room is held and its image sent to be stored and
/// moved to another server; the other rooms play on until they end or the shutdown comes.
fn hand_off(rooms: &mut HashMap<RoomId, Room>, shared: &Shared, now: Instant) {
    for room in rooms
        .values_mut()
        .filter(|r| r.fails_over() && !r.is_ended())
    {
        room.hold();
        send_image(room, shared, now, ImageWhy::HandOff);
    }
}

/// Takes over a room from its image: the room, on this worker's grid, and its seats' sessions
/// in the session table (each must resume within the grace period). A room the worker already
/// runs is left as it is.
fn restore(
    rooms: &mut HashMap<RoomId, Room>,
    room_id: RoomId,
    epoch: u64,
    (image, frames): (&super::image::RoomImage, &[Vec<u8>]),
    shared: &Shared,
    placement: Placement,
) -> Result<(), ErrorCode> {
    use std::collections::hash_map::Entry;
    let Entry::Vacant(slot) = rooms.entry(room_id) else {
        return Ok(());
    };
    let now = Instant::now();
    let rooms_of_mode = shared
        .games
        .get(&image.mode)
        .ok_or(ErrorCode::UnknownMode)?;
    let restorer = rooms_of_mode
        .restorer
        .clone()
        .ok_or(ErrorCode::UnknownMode)?;
    let mode = rooms_of_mode.mode.clone();
    if !shared.admit_room() {
        shared.metrics.server_busy.inc();
        return Err(ErrorCode::ServerBusy);
    }
    let made = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        restorer(&super::registry::RestoreFrom {
            room_id,
            save_version: image.save_version,
            save: &image.game,
            tick: image.tick,
            frames,
        })
    }));
    let room = match made {
        Ok(Ok(sim)) => RoomCore::restored(image, mode.clone(), sim, now).map_err(|e| e.to_string()),
        Ok(Err(e)) => Err(format!("the game refused its saved state: {e}")),
        Err(_) => Err("the game panicked restoring its state".to_owned()),
    };
    let mut room = match room {
        Ok(room) => room,
        Err(why) => {
            shared.room_count.fetch_sub(1, Ordering::AcqRel);
            tracing::error!(room = room_id, mode = %mode.name, "cannot take the room over: {why}");
            return Err(ErrorCode::Internal);
        }
    };
    shared.metrics.rooms.add(1);
    shared.metrics.rooms_taken_over.inc();
    room.align_ticks_to(placement.epoch);
    room.set_snapshot_divisor(placement.snapshot_divisor);
    room.fail_over(now);
    for seat in &image.seats {
        let Some(record) = crate::SessionRecord::taken_over(shared, room_id, mode.clone(), seat)
        else {
            continue;
        };
        if shared
            .sessions
            .insert(seat.session_id, Arc::new(record))
            .is_none()
        {
            shared.metrics.sessions.add(1);
        }
    }
    slot.insert(room);
    if let Some(events) = shared.room_events.get() {
        let _ = events.try_send(RoomEvent::TakenOver { room_id, epoch });
    }
    info!(
        room = room_id,
        epoch,
        seats = image.seats.len(),
        "room taken over"
    );
    Ok(())
}

/// Forgets a room that ended: its slot, its gauge, and (through `Shared::room_events`) its
/// directory record and result.
fn release_room(shared: &Shared, room: &Room, end: &RoomEnd) {
    shared.room_count.fetch_sub(1, Ordering::AcqRel);
    shared.metrics.rooms.add(-1);
    if end.reason == EndReason::GamePanicked {
        shared.metrics.game_panics.add(&room.mode().name, 1);
    }
    info!(room = room.id(), reason = ?end.reason, result = end.result.is_some(), "room ended");
    if let Some(events) = shared.room_events.get() {
        // Bounded and best effort: a record that is not closed expires with its TTL.
        let _ = events.try_send(RoomEvent::Closed(ClosedRoom {
            room_id: room.id(),
            mode: room.mode().name.clone(),
            outcome: end.result.clone(),
        }));
    }
}

fn handle(
    rooms: &mut HashMap<RoomId, Room>,
    msg: RoomInput,
    shared: &Shared,
    placement: Placement,
) {
    let now = Instant::now();
    let msg = match msg {
        RoomInput::Restore {
            room_id,
            epoch,
            image,
            frames,
            reply,
        } => {
            let restored = restore(rooms, room_id, epoch, (&image, &frames), shared, placement);
            let _ = reply.send(restored);
            return;
        }
        other => other,
    };
    let room_id = match &msg {
        RoomInput::Join { room_id, .. }
        | RoomInput::Resume { room_id, .. }
        | RoomInput::Detach { room_id, .. }
        | RoomInput::Leave { room_id, .. }
        | RoomInput::Input { room_id, .. }
        | RoomInput::FrameInput { room_id, .. }
        | RoomInput::Checksum { room_id, .. }
        | RoomInput::Message { room_id, .. }
        | RoomInput::Admin { room_id, .. } => *room_id,
        RoomInput::Restore { .. } | RoomInput::Shutdown => return,
        RoomInput::HandOff => {
            hand_off(rooms, shared, now);
            return;
        }
        RoomInput::Ownership { room_id, .. }
        | RoomInput::HandedOff { room_id }
        | RoomInput::FramesStored { room_id, .. } => *room_id,
    };
    if let RoomInput::Join {
        mode,
        seating,
        session,
        outbox,
        reply,
        ..
    } = msg
    {
        let room = match room_for_join(rooms, room_id, &mode.name, shared, now, placement) {
            Ok(room) => room,
            Err(code) => {
                let _ = reply.send(Err(code.into()));
                return;
            }
        };
        // The first player seated (a spectator is not one) makes the room joined.
        let first = room.participant_count() == 0;
        let seated = room
            .guarded(|r| r.join(now, *seating, Conn(outbox)))
            .unwrap_or_else(|| Err(ErrorCode::Internal.into()));
        if seated.is_ok() && first && room.participant_count() > 0 {
            if let Some(events) = shared.room_events.get() {
                // Best effort: a room never reported joined is dropped after its join window.
                let _ = events.try_send(RoomEvent::Joined(room_id));
            }
        }
        if seated.is_ok() {
            // The session table's one writer: rooms add sessions when seated, end them here.
            shared.sessions.insert(session.session_id, session);
            shared.metrics.sessions.add(1);
            if room.fails_over() {
                // A newcomer must be in the image before its server can die under it.
                send_image(room, shared, now, ImageWhy::Checkpoint);
            }
        }
        let _ = reply.send(seated);
        finish(rooms, room_id, shared);
        return;
    }
    let Some(room) = rooms.get_mut(&room_id) else {
        match msg {
            RoomInput::Resume { reply, .. } => {
                let _ = reply.send(Err(ErrorCode::SessionExpired.into()));
            }
            RoomInput::Admin { reply, .. } => {
                let _ = reply.send(AdminAnswer::NoRoom);
            }
            _ => {}
        }
        return;
    };
    match msg {
        RoomInput::Resume {
            seating,
            last_frame,
            outbox,
            reply,
            ..
        } => {
            let result: Result<Seated, SeatRefusal> = room
                .guarded(|r| r.resume(*seating, last_frame, Conn(outbox)))
                .unwrap_or_else(|| Err(ErrorCode::Internal.into()));
            let _ = reply.send(result);
        }
        RoomInput::Detach {
            session_id, outbox, ..
        } => {
            room.guarded(|r| r.detach(now, session_id, &Conn(outbox)));
        }
        RoomInput::Leave { session_id, .. } => {
            room.guarded(|r| r.leave(session_id));
        }
        RoomInput::Input {
            session_id,
            tick,
            ack_tick,
            inputs,
            received,
            ..
        } => {
            room.guarded(|r| r.input(session_id, tick, ack_tick, &inputs, received));
        }
        RoomInput::FrameInput {
            session_id,
            frame,
            input,
            ..
        } => {
            room.guarded(|r| r.frame_input(session_id, frame, input));
        }
        RoomInput::Checksum {
            session_id,
            frame,
            hash,
            ..
        } => {
            room.guarded(|r| r.checksum(session_id, frame, hash));
        }
        RoomInput::Message {
            session_id,
            seq,
            payload,
            ..
        } => {
            room.guarded(|r| r.message(session_id, seq, &payload));
        }
        RoomInput::Admin { op, reply, .. } => {
            // A game that panics while a player is kicked ends the room: nothing is left.
            let answer = room
                .guarded(|r| match op {
                    AdminOp::Seats => AdminAnswer::Seats(r.seats()),
                    AdminOp::Kick { player_id, code } if r.kick(player_id, code) => {
                        AdminAnswer::Done
                    }
                    AdminOp::Kick { .. } => AdminAnswer::NoPlayer,
                    AdminOp::Close => {
                        r.close();
                        AdminAnswer::Done
                    }
                })
                .unwrap_or(AdminAnswer::NoRoom);
            let _ = reply.send(answer);
        }
        RoomInput::Ownership { owned: true, .. } => {
            if room.is_held() {
                room.release(now);
                info!(room = room_id, "still this server's room: ticking again");
            }
        }
        RoomInput::FramesStored { upto, .. } => {
            room.guarded(|r| r.release_frames(upto));
        }
        RoomInput::HandedOff { .. } => {
            shared.metrics.rooms_handed_off.inc();
            info!(room = room_id, "handed to another server: ending this copy");
            room.guarded(|r| r.moved_away());
        }
        RoomInput::Ownership { owned: false, .. } => {
            shared.metrics.rooms_moved_away.inc();
            info!(
                room = room_id,
                "the room moved to another server: ending this copy"
            );
            room.guarded(|r| r.moved_away());
        }
        RoomInput::Join { .. }
        | RoomInput::Restore { .. }
        | RoomInput::HandOff
        | RoomInput::Shutdown => {}
    }
    finish(rooms, room_id, shared);
}

/// Carries out a room's effects after a message, and drops it if it ended.
fn finish(rooms: &mut HashMap<RoomId, Room>, room_id: RoomId, shared: &Shared) {
    if let Some(room) = rooms.get_mut(&room_id) {
        carry_out(room, shared);
        if room.is_ended() {
            rooms.remove(&room_id);
        }
    }
}

/// The room a ticket is for, created on its first ticket if the server can take a room.
fn room_for_join<'a>(
    rooms: &'a mut HashMap<RoomId, Room>,
    room_id: RoomId,
    mode: &str,
    shared: &Shared,
    now: Instant,
    placement: Placement,
) -> Result<&'a mut Room, ErrorCode> {
    use std::collections::hash_map::Entry;
    match rooms.entry(room_id) {
        Entry::Occupied(e) => {
            if e.get().mode().name != mode {
                return Err(ErrorCode::TicketInvalid);
            }
            Ok(e.into_mut())
        }
        Entry::Vacant(e) => {
            let rooms_of_mode = shared.games.get(mode).ok_or(ErrorCode::UnknownMode)?;
            if !shared.admit_room() {
                shared.metrics.server_busy.inc();
                return Err(ErrorCode::ServerBusy);
            }
            shared.metrics.rooms.add(1);
            shared.metrics.rooms_created.inc();
            let factory = rooms_of_mode.factory.clone();
            let mode = rooms_of_mode.mode.clone();
            // The room id seeds the game; a game that panics while being created is refused.
            let sim = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| factory(room_id)))
                .map_err(|_| {
                shared.room_count.fetch_sub(1, Ordering::AcqRel);
                shared.metrics.rooms.add(-1);
                shared.metrics.game_panics.add(&mode.name, 1);
                ErrorCode::Internal
            })?;
            let mut room = RoomCore::new(room_id, mode, sim, now);
            room.align_ticks_to(placement.epoch);
            room.set_snapshot_divisor(placement.snapshot_divisor);
            if shared.failover.get().is_some() {
                room.fail_over(now);
            }
            Ok(e.insert(room))
        }
    }
}
