//! The room as a sans-IO core: it owns its seats, its spectators and their sessions' lifecycle
//! (join, leave, drop with a grace period, resume, start, match end) and its tick schedule,
//! takes `now` as
//! an argument and returns `Effect`s (send, close, forget a session, room over). It is
//! generic over the connection handle `C`, so tests drive it with fake connections and fake
//! time; the worker (`worker.rs`) owns the thread, the clock and the queue, and carries the
//! effects out.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use serde_bytes::ByteBuf;
use tickroom_game::modes::ModeConfig;
use tickroom_game::{Player, PlayerMetadata};
use tickroom_protocol::{ErrorCode, ServerMsg, Welcome, SPECTATOR_SLOT};

use super::image::{ImageError, RoomImage, SeatImage};
use super::input::{RoomId, RoomSeats, SeatRefusal, SeatView, Seated, Seating, SessionId};
use super::sim::{Delivery, Outbound, Sim, SimCounters, To};

/// Most ticks a late room runs back to back before it skips ahead.
pub const MAX_CATCH_UP_TICKS: u32 = 3;

/// What the core asks the IO around it to do, in order.
#[derive(Debug, Clone, PartialEq)]
pub enum Effect<C> {
    /// Queue `bytes` on connection `to`.
    Send {
        to: C,
        bytes: Bytes,
        delivery: Delivery,
    },
    /// Close connection `to` with `code` (after what was queued on it).
    Close { to: C, code: ErrorCode },
    /// The session is over: forget it (its seat is free).
    SessionEnded { session_id: SessionId },
    /// The room is over; nothing more comes from it.
    RoomEnded(RoomEnd),
    /// A running match of a `backfill` mode lost a player for good: it has `free` seats for
    /// matchmaking to fill.
    SeatsOpen { free: usize },
}

/// Why a room ended, and its result when the game gave one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoomEnd {
    pub reason: EndReason,
    /// The game's result, with every player who took a seat during the match.
    pub result: Option<MatchOutcome>,
}

/// Why a room ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndReason {
    /// Nobody was left (or nobody came before the start timeout).
    Empty,
    /// The game ended the match.
    MatchOver,
    /// The mode's match duration passed.
    TimeUp,
    /// The server is shutting down.
    Shutdown,
    /// The game panicked; the room cannot go on.
    GamePanicked,
    /// An operator closed it (admin API).
    Closed,
    /// The room moved to another server: this one lost it (it was paused past its lease, or
    /// cut off) and must not run it any more.
    Moved,
}

/// A finished match: the game's result bytes and who played, (player id, slot).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MatchOutcome {
    pub result: Vec<u8>,
    pub players: Vec<(u64, u8)>,
}

/// A session's place in a room: a player's seat, or a spectator's place (read-only, outside
/// the seats: never a participant, never counted as occupying the room; no metadata).
#[derive(Debug)]
struct Seat<C> {
    session_id: SessionId,
    player_id: u64,
    metadata: PlayerMetadata,
    /// None while the session is disconnected (in grace).
    conn: Option<C>,
    detached_at: Option<Instant>,
}

impl<C: PartialEq> Seat<C> {
    /// The session is back on `conn`: no longer in grace. Returns the connection it replaces
    /// (a half-open old one), to close.
    fn reattach(&mut self, conn: C) -> Option<C> {
        self.detached_at = None;
        self.conn.replace(conn)
    }

    /// The connection `conn` dropped at `now`: the place is kept for the grace period. False
    /// for a stale detach (the session already moved to a newer connection).
    fn detach(&mut self, conn: &C, now: Instant) -> bool {
        if self.conn.as_ref() != Some(conn) {
            return false;
        }
        self.conn = None;
        self.detached_at = Some(now);
        true
    }

    /// Disconnected for `grace` or longer at `now`.
    fn grace_over(&self, now: Instant, grace: Duration) -> bool {
        self.detached_at
            .is_some_and(|t| now.duration_since(t) >= grace)
    }
}

/// The index of the place held by `session_id`.
fn place_of_session<C>(places: &[Option<Seat<C>>], session_id: SessionId) -> Option<usize> {
    places
        .iter()
        .position(|p| p.as_ref().is_some_and(|p| p.session_id == session_id))
}

/// The index of the place held by `player_id`.
fn place_of_player<C>(places: &[Option<Seat<C>>], player_id: u64) -> Option<usize> {
    places
        .iter()
        .position(|p| p.as_ref().is_some_and(|p| p.player_id == player_id))
}

/// The connection of place `index`, when it has one.
fn conn_at<C: Clone>(places: &[Option<Seat<C>>], index: usize) -> Option<C> {
    places.get(index)?.as_ref()?.conn.clone()
}

/// One room: seats, lifecycle and schedule around a game's `Sim`.
pub struct RoomCore<C> {
    id: RoomId,
    mode: Arc<ModeConfig>,
    sim: Box<dyn Sim>,
    seats: Vec<Option<Seat<C>>>,
    /// Spectators by index (the sim's spectator index); grows up to the mode's `spectators`,
    /// and a freed place is reused.
    watchers: Vec<Option<Seat<C>>>,
    /// Everyone who took a seat, for the stored result.
    participants: Vec<(u64, u8)>,
    created: Instant,
    started: Option<Instant>,
    next_tick_at: Instant,
    interval: Duration,
    /// Ticks fall on `tick_grid + k × interval` (see `align_ticks_to`).
    tick_grid: Instant,
    /// Snapshots go out every this many ticks (1, or more while the worker is overloaded).
    snapshot_divisor: u32,
    out: Outbound,
    effects: Vec<Effect<C>>,
    connected: Vec<bool>,
    /// Per seat: when the oldest input not yet answered by a tick arrived at the connection.
    input_since: Vec<Option<Instant>>,
    /// Input-to-ack waits measured by ticks since the worker last drained them.
    input_waits: Vec<Duration>,
    ended: bool,
    /// Failover images: how often, and when the next is due (`None`: not taken).
    checkpoints: Option<(Duration, Instant)>,
    /// Held: the server was paused long enough that the room may have moved; it does not
    /// tick until the directory says it still owns it.
    held: bool,
}

/// What a room's image needs of a seat's session besides what the room knows: from the
/// session table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionState {
    pub key_id: u16,
    pub nonce: [u8; 16],
    pub resume_counter: u32,
    pub highest_seq: u64,
}

impl<C: Clone + PartialEq> RoomCore<C> {
    /// A room created at `now` (its first tick is one interval later).
    pub fn new(id: RoomId, mode: Arc<ModeConfig>, sim: Box<dyn Sim>, now: Instant) -> Self {
        let interval = mode.tick_interval();
        let players = usize::from(mode.players);
        RoomCore {
            id,
            seats: (0..players).map(|_| None).collect(),
            watchers: Vec::new(),
            participants: Vec::new(),
            mode,
            sim,
            created: now,
            started: None,
            next_tick_at: now + interval,
            interval,
            tick_grid: now,
            snapshot_divisor: 1,
            out: Outbound::default(),
            effects: Vec::new(),
            connected: vec![false; players],
            input_since: vec![None; players],
            input_waits: Vec::new(),
            ended: false,
            checkpoints: None,
            held: false,
        }
    }

    /// A room taken over from `image` at `now` (its owner died): the match goes on where the
    /// image left it, and every seat waits for its player's resume, within the mode's grace
    /// period from now.
    pub fn restored(
        image: &RoomImage,
        mode: Arc<ModeConfig>,
        sim: Box<dyn Sim>,
        now: Instant,
    ) -> Result<Self, ImageError> {
        let mut room = RoomCore::new(image.room_id, mode, sim, now);
        for seat in &image.seats {
            let place = room
                .seats
                .get_mut(usize::from(seat.slot))
                .ok_or(ImageError::Corrupted(tickroom_game::GameError::Invalid(
                    "a seat beyond the mode's players",
                )))?;
            *place = Some(Seat {
                session_id: seat.session_id,
                player_id: seat.player_id,
                metadata: seat.metadata.clone(),
                conn: None,
                detached_at: Some(now),
            });
        }
        room.participants = image.participants.clone();
        if let Some(ms) = image.played_ms {
            room.started = Some(now.checked_sub(Duration::from_millis(ms)).unwrap_or(now));
        }
        Ok(room)
    }

    /// The room fails over from now on (it runs on a shared directory): it takes a failover
    /// image every `checkpoint_interval_ms` of its mode (see `checkpoint_due`), and a lockstep
    /// room sends a closed frame only once it is stored.
    pub fn fail_over(&mut self, now: Instant) {
        let every = Duration::from_millis(u64::from(self.mode.checkpoint_interval_ms));
        self.checkpoints = Some((every, now + every));
        self.sim.gate_frames();
    }

    /// The frames closed since the last call, to store (gated lockstep rooms).
    pub fn frames_to_persist(&mut self) -> Vec<(u64, Vec<u8>)> {
        self.sim.frames_to_persist()
    }

    /// The frames up to `upto` are stored: they go out.
    pub fn release_frames(&mut self, upto: u64) {
        self.sim.release_frames(upto, &mut self.out);
        self.flush();
    }

    /// Whether the room takes failover images (it runs on a shared directory).
    pub fn fails_over(&self) -> bool {
        self.checkpoints.is_some()
    }

    /// Stops ticking until `release` (the server woke from a pause longer than its lease:
    /// the room may belong to another server now).
    pub fn hold(&mut self) {
        self.held = true;
    }

    /// Ticks again (the directory says the room is still this server's); missed ticks are
    /// skipped, not caught up.
    pub fn release(&mut self, now: Instant) {
        self.held = false;
        self.skip_missed(now);
    }

    /// Held (see `hold`).
    pub fn is_held(&self) -> bool {
        self.held
    }

    /// The room moved to another server: it ends now, its players told `RoomMoved` (they
    /// resume on the new owner).
    pub fn moved_away(&mut self) {
        if !self.ended {
            self.end(EndReason::Moved);
        }
    }

    /// Whether an image is due at `now` (the next is then scheduled).
    pub fn checkpoint_due(&mut self, now: Instant) -> bool {
        match &mut self.checkpoints {
            Some((every, next)) if *next <= now && !self.ended => {
                *next = now + *every;
                true
            }
            _ => false,
        }
    }

    /// The room's failover image at `now`, each seat's session completed by `session` (a seat
    /// whose session the table lost is left out: its player cannot resume anyway).
    pub fn image(
        &self,
        now: Instant,
        session: impl Fn(SessionId) -> Option<SessionState>,
    ) -> RoomImage {
        let mut game = Vec::new();
        let save_version = self.sim.save(&mut game);
        let seats = self
            .seats
            .iter()
            .enumerate()
            .filter_map(|(slot, seat)| {
                let seat = seat.as_ref()?;
                let state = session(seat.session_id)?;
                Some(SeatImage {
                    slot: slot as u8,
                    player_id: seat.player_id,
                    session_id: seat.session_id,
                    metadata: seat.metadata.clone(),
                    key_id: state.key_id,
                    nonce: state.nonce,
                    resume_counter: state.resume_counter,
                    highest_seq: state.highest_seq,
                })
            })
            .collect();
        RoomImage {
            room_id: self.id,
            mode: self.mode.name.clone(),
            tick: self.sim.current_tick(),
            played_ms: self
                .started
                .map(|t| now.saturating_duration_since(t).as_millis() as u64),
            save_version,
            game,
            participants: self.participants.clone(),
            seats,
        }
    }

    /// The session ids of the seats (for the directory's session index).
    pub fn seated_sessions(&self) -> Vec<SessionId> {
        self.seats.iter().flatten().map(|s| s.session_id).collect()
    }

    /// The room's id.
    pub fn id(&self) -> RoomId {
        self.id
    }

    /// The mode it runs.
    pub fn mode(&self) -> &Arc<ModeConfig> {
        &self.mode
    }

    /// The game's current tick (state) or next frame (lockstep).
    pub fn current_tick(&self) -> u64 {
        self.sim.current_tick()
    }

    /// When the next tick is due.
    pub fn next_tick_at(&self) -> Instant {
        self.next_tick_at
    }

    /// The fixed time between two ticks.
    pub fn interval(&self) -> Duration {
        self.interval
    }

    /// Puts the room's ticks on the grid `epoch + k × interval` (by default the grid starts
    /// when the room was created). A worker aligns all its rooms to one grid, so rooms of
    /// one tick rate tick together and the worker wakes once per interval, not once per room.
    pub fn align_ticks_to(&mut self, epoch: Instant) {
        self.tick_grid = epoch;
        self.next_tick_at = self.next_grid_point_after(self.created);
    }

    /// The first grid point strictly after `t` (the grid's start if `t` is before it).
    fn next_grid_point_after(&self, t: Instant) -> Instant {
        let Some(since) = t.checked_duration_since(self.tick_grid) else {
            return self.tick_grid;
        };
        let interval_ns = self.interval.as_nanos().max(1);
        let k = since.as_nanos() / interval_ns + 1;
        self.tick_grid + Duration::from_nanos(u64::try_from(k * interval_ns).unwrap_or(u64::MAX))
    }

    /// Sends snapshots on every `divisor`-th tick only (the worker's answer to overload),
    /// clamped to what the mode's `min_snapshot_hz` allows; returns the divisor in force.
    pub fn set_snapshot_divisor(&mut self, divisor: u32) -> u32 {
        let divisor = divisor.clamp(1, self.mode.max_snapshot_divisor());
        if divisor != self.snapshot_divisor {
            self.snapshot_divisor = divisor;
            self.sim.set_snapshot_divisor(divisor);
        }
        divisor
    }

    /// True once the room ended (it only waits to be dropped).
    pub fn is_ended(&self) -> bool {
        self.ended
    }

    /// Players who took a seat in this room so far.
    pub fn participant_count(&self) -> usize {
        self.participants.len()
    }

    /// Seats taken (connected or in grace).
    pub fn occupied(&self) -> usize {
        self.seats.iter().filter(|s| s.is_some()).count()
    }

    /// What the core asks the IO to do, oldest first.
    pub fn drain_effects(&mut self) -> std::vec::Drain<'_, Effect<C>> {
        self.effects.drain(..)
    }

    /// Counters the sim bumped since the last call.
    pub fn take_counters(&mut self) -> SimCounters {
        std::mem::take(&mut self.out.counters)
    }

    /// Seats a new player with a verified ticket. The same player with a fresh ticket takes
    /// their old seat back (the old connection is closed).
    pub fn join(&mut self, now: Instant, seating: Seating, conn: C) -> Result<Seated, SeatRefusal> {
        if self.ended {
            return Err(ErrorCode::RoomClosed.into());
        }
        if seating.spectator {
            return self.watch(seating, conn);
        }
        let same_player = place_of_player(&self.seats, seating.player_id);
        let slot = same_player
            .or_else(|| self.seats.iter().position(Option::is_none))
            .ok_or(ErrorCode::RoomFull)?;
        let player = Player {
            player_id: seating.player_id,
            slot: slot as u8,
            metadata: &seating.metadata,
        };
        if same_player.is_none() {
            // Admission runs before anything changes, so a refusal leaves no trace.
            self.sim.join_attempt(&player).map_err(|r| SeatRefusal {
                code: ErrorCode::JoinRefused,
                detail: r.0,
            })?;
        }
        if let Some(old) = same_player.and_then(|s| self.seats[s].take()) {
            if let Some(c) = old.conn {
                self.effects.push(Effect::Close {
                    to: c,
                    code: ErrorCode::Kicked,
                });
            }
            self.effects.push(Effect::SessionEnded {
                session_id: old.session_id,
            });
        }
        let welcome = self.welcome(slot, &seating, false);
        self.send_to(&conn, welcome, Delivery::Reliable);
        if !self.participants.contains(&(seating.player_id, slot as u8)) {
            self.participants.push((seating.player_id, slot as u8));
        }
        self.seats[slot] = Some(Seat {
            session_id: seating.session_id,
            player_id: seating.player_id,
            metadata: seating.metadata,
            conn: Some(conn.clone()),
            detached_at: None,
        });
        if same_player.is_none() {
            let seat = self.seats[slot].as_ref().expect("just seated");
            let player = Player {
                player_id: seat.player_id,
                slot: slot as u8,
                metadata: &seat.metadata,
            };
            self.sim.join(&player, &mut self.out);
        } else {
            // A new session of the same player: its inputs are numbered from 1 again.
            self.sim.new_session(slot as u8);
            self.sim.resume(slot as u8, 0, &mut self.out);
        }
        // Welcome, then what the sim sends (a late lockstep joiner's frame log), then Started.
        self.flush();
        if !self.ended {
            self.send_started_to(&conn);
            self.start_if_ready(now);
        }
        Ok(Seated { slot: slot as u8 })
    }

    /// Takes a spectator (a spectator ticket): a free spectator place, or the same player's
    /// old one (its old connection is closed). Refused with `RoomFull` when every place of
    /// the mode's `spectators` is taken.
    fn watch(&mut self, seating: Seating, conn: C) -> Result<Seated, SeatRefusal> {
        let same = place_of_player(&self.watchers, seating.player_id);
        let index = same
            .or_else(|| self.watchers.iter().position(Option::is_none))
            .or_else(|| {
                (self.watchers.len() < usize::from(self.mode.spectators)).then(|| {
                    self.watchers.push(None);
                    self.watchers.len() - 1
                })
            })
            .ok_or_else(|| SeatRefusal {
                code: ErrorCode::RoomFull,
                detail: "every spectator place of this room is taken".into(),
            })?;
        if same.is_some() {
            self.unwatch(index, ErrorCode::Kicked, false);
        }
        let welcome = self.welcome(usize::from(SPECTATOR_SLOT), &seating, false);
        self.send_to(&conn, welcome, Delivery::Reliable);
        self.watchers[index] = Some(Seat {
            session_id: seating.session_id,
            player_id: seating.player_id,
            metadata: PlayerMetadata::default(),
            conn: Some(conn.clone()),
            detached_at: None,
        });
        // Welcome, then what the sim sends (the frame log up to the delay), then Started.
        self.sim.watch(index, 0, &mut self.out);
        self.flush();
        self.send_started_to(&conn);
        Ok(Seated {
            slot: SPECTATOR_SLOT,
        })
    }

    /// Removes spectator `index`: its connection is closed with `code` (told first when
    /// `tell`) and its session ends.
    fn unwatch(&mut self, index: usize, code: ErrorCode, tell: bool) {
        let Some(watcher) = self.watchers.get_mut(index).and_then(Option::take) else {
            return;
        };
        if let Some(conn) = watcher.conn {
            if tell {
                let kicked = self.out.encode(&ServerMsg::Kicked { code });
                self.send_to(&conn, kicked, Delivery::Reliable);
            }
            self.effects.push(Effect::Close { to: conn, code });
        }
        self.effects.push(Effect::SessionEnded {
            session_id: watcher.session_id,
        });
        self.sim.unwatch(index);
    }

    /// Re-attaches a spectator's session to a new connection; it gets the frames (or the
    /// snapshot) it missed after `last_frame`.
    fn resume_watching(
        &mut self,
        seating: Seating,
        last_frame: u64,
        conn: C,
    ) -> Result<Seated, SeatRefusal> {
        let index = self
            .watcher_of(seating.session_id)
            .ok_or(ErrorCode::SessionExpired)?;
        let welcome = self.welcome(usize::from(SPECTATOR_SLOT), &seating, true);
        let watcher = self.watchers[index].as_mut().expect("watcher_of found it");
        if let Some(old) = watcher.reattach(conn.clone()) {
            self.effects.push(Effect::Close {
                to: old,
                code: ErrorCode::Kicked,
            });
        }
        self.send_to(&conn, welcome, Delivery::Reliable);
        self.send_started_to(&conn);
        self.sim.watch(index, last_frame, &mut self.out);
        self.flush();
        Ok(Seated {
            slot: SPECTATOR_SLOT,
        })
    }

    /// Re-attaches a session to a new connection and sends what it missed after `last_frame`.
    pub fn resume(
        &mut self,
        seating: Seating,
        last_frame: u64,
        conn: C,
    ) -> Result<Seated, SeatRefusal> {
        let Some(slot) = self.slot_of(seating.session_id) else {
            return self.resume_watching(seating, last_frame, conn);
        };
        let welcome = self.welcome(slot, &seating, true);
        let seat = self.seats[slot].as_mut().expect("slot_of found it");
        if let Some(old) = seat.reattach(conn.clone()) {
            // A half-open old connection is replaced by the new one.
            self.effects.push(Effect::Close {
                to: old,
                code: ErrorCode::Kicked,
            });
        }
        self.send_to(&conn, welcome, Delivery::Reliable);
        self.send_started_to(&conn);
        self.sim.resume(slot as u8, last_frame, &mut self.out);
        self.flush();
        Ok(Seated { slot: slot as u8 })
    }

    /// The connection `conn` of `session_id` dropped: the seat is kept for the grace period.
    /// A stale detach (the session already moved to a newer connection) is ignored.
    pub fn detach(&mut self, now: Instant, session_id: SessionId, conn: &C) {
        if let Some(index) = self.watcher_of(session_id) {
            let watcher = self.watchers[index].as_mut().expect("watcher_of found it");
            if watcher.detach(conn, now) {
                self.sim.unwatch(index);
            }
            return;
        }
        let Some(slot) = self.slot_of(session_id) else {
            return;
        };
        let seat = self.seats[slot].as_mut().expect("slot_of found it");
        if !seat.detach(conn, now) {
            return;
        }
        self.sim.drop_connection(slot as u8, &mut self.out);
        self.flush();
    }

    /// The player left for good.
    pub fn leave(&mut self, session_id: SessionId) {
        if let Some(slot) = self.slot_of(session_id) {
            self.vacate(slot);
            self.flush();
        } else if let Some(index) = self.watcher_of(session_id) {
            self.unwatch(index, ErrorCode::RoomClosed, false);
        }
    }

    /// State-sync input, received by its connection at `received`.
    pub fn input(
        &mut self,
        session_id: SessionId,
        tick: u64,
        ack_tick: u64,
        inputs: &[ByteBuf],
        received: Instant,
    ) {
        if let Some(slot) = self.slot_of(session_id) {
            self.sim
                .input(slot as u8, tick, ack_tick, inputs, &mut self.out);
            self.flush();
            let since = &mut self.input_since[slot];
            *since = Some(since.map_or(received, |s| s.min(received)));
        }
    }

    /// The input-to-ack waits measured since the last call: for each player, from the arrival
    /// of its oldest input not yet answered to the end of the tick that answered it (the
    /// snapshot carrying its effect and acknowledgement went out).
    pub fn drain_input_waits(&mut self) -> std::vec::Drain<'_, Duration> {
        self.input_waits.drain(..)
    }

    /// Lockstep input for `frame`.
    pub fn frame_input(&mut self, session_id: SessionId, frame: u64, input: Vec<u8>) {
        if let Some(slot) = self.slot_of(session_id) {
            self.sim
                .frame_input(slot as u8, frame, input, &mut self.out);
            self.flush();
        }
    }

    /// Lockstep checksum report.
    pub fn checksum(&mut self, session_id: SessionId, frame: u64, hash: u64) {
        if let Some(slot) = self.slot_of(session_id) {
            self.sim.checksum(slot as u8, frame, hash, &mut self.out);
            self.flush();
        }
    }

    /// A custom message (`seq` is the client's); one the game cannot decode is refused with
    /// `BadMessage` and the session goes on.
    pub fn message(&mut self, session_id: SessionId, seq: u64, payload: &[u8]) {
        let Some(slot) = self.slot_of(session_id) else {
            return;
        };
        if self
            .sim
            .message(slot as u8, payload, &mut self.out)
            .is_err()
        {
            let refused = ServerMsg::Refused {
                seq,
                code: ErrorCode::BadMessage,
            };
            self.out
                .send(To::Slot(slot as u8), &refused, Delivery::Reliable);
        }
        self.flush();
    }

    /// How many ticks are due at `now`, at most `MAX_CATCH_UP_TICKS`.
    pub fn due_ticks(&self, now: Instant) -> u32 {
        if self.ended || self.next_tick_at > now {
            return 0;
        }
        let behind = now.duration_since(self.next_tick_at);
        let due = 1 + behind.as_nanos() / self.interval.as_nanos().max(1);
        due.min(u128::from(MAX_CATCH_UP_TICKS)) as u32
    }

    /// Runs one fixed tick scheduled at `next_tick_at`, as of `now`: grace expiry, start,
    /// the game's tick, end checks. Returns how late it started.
    pub fn tick(&mut self, now: Instant) -> Duration {
        let late = now.saturating_duration_since(self.next_tick_at);
        self.next_tick_at += self.interval;
        if self.ended {
            return late;
        }
        self.expire_grace(now);
        self.start_if_ready(now);
        match self.started {
            None => {
                let waited = now.duration_since(self.created);
                let limit = Duration::from_secs(u64::from(self.mode.start_timeout_s));
                if waited >= limit && self.occupied() == 0 {
                    self.end(EndReason::Empty);
                }
            }
            Some(started) => {
                for (c, seat) in self.connected.iter_mut().zip(&self.seats) {
                    *c = seat.as_ref().is_some_and(|s| s.conn.is_some());
                }
                self.sim.tick(&self.connected, &mut self.out);
                // Inputs are answered by the tick's snapshots (none on a tick a degraded
                // room skips) or frames.
                let answered = !self.out.sends.is_empty();
                self.flush();
                if answered && self.input_since.iter().any(Option::is_some) {
                    let sent = Instant::now();
                    for since in &mut self.input_since {
                        if let Some(arrived) = since.take() {
                            self.input_waits
                                .push(sent.saturating_duration_since(arrived));
                        }
                    }
                }
                if self.ended {
                    return late;
                }
                if self.occupied() == 0 {
                    self.end(EndReason::Empty);
                } else if now.duration_since(started)
                    >= Duration::from_secs(u64::from(self.mode.match_duration_s))
                {
                    self.sim.time_up(&mut self.out);
                    self.flush();
                    if !self.ended {
                        self.end(EndReason::TimeUp);
                    }
                }
            }
        }
        late
    }

    /// Still behind after catching up: skips the missed ticks rather than spiral. Returns how
    /// many were skipped (overruns).
    pub fn skip_missed(&mut self, now: Instant) -> u64 {
        if self.next_tick_at > now {
            return 0;
        }
        let behind = now.duration_since(self.next_tick_at);
        let skipped = 1 + (behind.as_nanos() / self.interval.as_nanos().max(1)) as u64;
        self.next_tick_at += self.interval * skipped as u32;
        skipped
    }

    /// Ends the room now (server shutdown, or the game panicked).
    pub fn abort(&mut self, reason: EndReason) {
        if !self.ended {
            // What a panicking hook half-queued is not sent.
            self.out.sends.clear();
            self.out.result = None;
            self.end(reason);
        }
    }

    /// Who sits where, for operators.
    pub fn seats(&self) -> RoomSeats {
        let seats = self
            .seats
            .iter()
            .enumerate()
            .filter_map(|(slot, seat)| {
                seat.as_ref().map(|s| SeatView {
                    slot: slot as u8,
                    player_id: s.player_id,
                    connected: s.conn.is_some(),
                })
            })
            .collect();
        RoomSeats {
            tick: self.sim.current_tick(),
            started: self.started.is_some(),
            seats,
        }
    }

    /// Removes `player_id` at an operator's request: `Kicked{code}` then a close with `code`
    /// on its connection, its session ends and the game sees it leave. False when no such
    /// player is seated. An emptied room ends at its next tick, as when players leave.
    pub fn kick(&mut self, player_id: u64, code: ErrorCode) -> bool {
        let Some(slot) = place_of_player(&self.seats, player_id) else {
            let watcher = place_of_player(&self.watchers, player_id);
            if let Some(index) = watcher {
                self.unwatch(index, code, true);
            }
            return watcher.is_some();
        };
        if let Some(seat) = self.seats[slot].take() {
            if let Some(conn) = seat.conn {
                let kicked = self.out.encode(&ServerMsg::Kicked { code });
                self.send_to(&conn, kicked, Delivery::Reliable);
                self.effects.push(Effect::Close { to: conn, code });
            }
            self.effects.push(Effect::SessionEnded {
                session_id: seat.session_id,
            });
            self.sim.leave(slot as u8, &mut self.out);
        }
        self.flush();
        true
    }

    /// Ends the room now at an operator's request: its players get `Kicked{RoomClosed}`.
    pub fn close(&mut self) {
        if !self.ended {
            self.end(EndReason::Closed);
        }
    }

    /// Runs `f` on the room; if the game panics inside it, the room ends with `Internal` to
    /// its players (`EndReason::GamePanicked`) and `None` is returned. Other rooms go on.
    pub fn guarded<R>(&mut self, f: impl FnOnce(&mut Self) -> R) -> Option<R> {
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(self))) {
            Ok(r) => Some(r),
            Err(_) => {
                tracing::error!(room = self.id, mode = %self.mode.name, "the game panicked; closing the room");
                self.abort(EndReason::GamePanicked);
                None
            }
        }
    }

    /// Saves the game state (with its version), for a hand-off to another server.
    pub fn save(&self, out: &mut Vec<u8>) -> u16 {
        self.sim.save(out)
    }

    fn watcher_of(&self, session_id: SessionId) -> Option<usize> {
        place_of_session(&self.watchers, session_id)
    }

    fn slot_of(&self, session_id: SessionId) -> Option<usize> {
        place_of_session(&self.seats, session_id)
    }

    fn welcome(&mut self, slot: usize, seating: &Seating, resumed: bool) -> Bytes {
        let msg = ServerMsg::Welcome(Welcome {
            session_id: seating.session_id,
            resume_counter: seating.resume_counter,
            room_id: self.id,
            player_id: seating.player_id,
            slot: slot as u8,
            max_players: self.mode.players,
            sync: self.sim.sync(),
            tick_rate_hz: self.mode.tick_rate_hz,
            tick: self.sim.current_tick(),
            next_seq: seating.next_seq,
            resumed,
            input_redundancy: match self.sim.sync() {
                tickroom_protocol::SyncKind::State => self.mode.input_redundancy,
                tickroom_protocol::SyncKind::Lockstep => 0,
            },
        });
        self.out.encode(&msg)
    }

    fn send_to(&mut self, conn: &C, bytes: Bytes, delivery: Delivery) {
        self.effects.push(Effect::Send {
            to: conn.clone(),
            bytes,
            delivery,
        });
    }

    /// A (re)joining player of a running room learns that it runs.
    fn send_started_to(&mut self, conn: &C) {
        if self.started.is_some() {
            let msg = self.started_msg();
            self.send_to(conn, msg, Delivery::Reliable);
        }
    }

    fn started_msg(&mut self) -> Bytes {
        let msg = ServerMsg::Started {
            tick: self.sim.current_tick(),
            players: self.occupied() as u8,
        };
        self.out.encode(&msg)
    }

    fn start_if_ready(&mut self, now: Instant) {
        if self.started.is_some() || self.ended {
            return;
        }
        let occupied = self.occupied();
        let timed_out = now.duration_since(self.created)
            >= Duration::from_secs(u64::from(self.mode.start_timeout_s));
        if occupied == self.seats.len() || (timed_out && occupied > 0) {
            self.started = Some(now);
            self.next_tick_at = self.next_grid_point_after(now);
            let msg = self.started_msg();
            self.broadcast(msg);
            tracing::debug!(room = self.id, players = occupied, "room started");
        }
    }

    fn expire_grace(&mut self, now: Instant) {
        let grace = Duration::from_secs(u64::from(self.mode.grace_s));
        for slot in 0..self.seats.len() {
            if self.seats[slot]
                .as_ref()
                .is_some_and(|s| s.grace_over(now, grace))
            {
                self.vacate(slot);
            }
        }
        for index in 0..self.watchers.len() {
            if self.watchers[index]
                .as_ref()
                .is_some_and(|w| w.grace_over(now, grace))
            {
                self.unwatch(index, ErrorCode::Kicked, false);
            }
        }
        self.flush();
    }

    /// Frees a seat for good and ends its session.
    fn vacate(&mut self, slot: usize) {
        if let Some(seat) = self.seats[slot].take() {
            if let Some(conn) = seat.conn {
                self.effects.push(Effect::Close {
                    to: conn,
                    code: ErrorCode::Kicked,
                });
            }
            self.effects.push(Effect::SessionEnded {
                session_id: seat.session_id,
            });
            self.sim.leave(slot as u8, &mut self.out);
            let occupied = self.occupied();
            if self.mode.backfill && self.started.is_some() && !self.ended && occupied > 0 {
                self.effects.push(Effect::SeatsOpen {
                    free: self.seats.len() - occupied,
                });
            }
        }
    }

    /// Sends `bytes` to every connected player and spectator (the room's own news: started,
    /// match ended).
    fn broadcast(&mut self, bytes: Bytes) {
        let conns = self.seats.iter().flatten().filter_map(|s| s.conn.as_ref());
        let watching = self
            .watchers
            .iter()
            .flatten()
            .filter_map(|w| w.conn.as_ref());
        for conn in conns.chain(watching) {
            self.effects.push(Effect::Send {
                to: conn.clone(),
                bytes: bytes.clone(),
                delivery: Delivery::Reliable,
            });
        }
    }

    /// Turns what the sim queued into effects, and ends the room if the game ended the match.
    fn flush(&mut self) {
        for (to, bytes, delivery) in self.out.sends.drain(..) {
            let conn = match to {
                To::Slot(slot) => conn_at(&self.seats, usize::from(slot)),
                To::Spectator(index) => conn_at(&self.watchers, index),
                To::Players => {
                    for seat in self.seats.iter().flatten() {
                        if let Some(conn) = &seat.conn {
                            self.effects.push(Effect::Send {
                                to: conn.clone(),
                                bytes: bytes.clone(),
                                delivery,
                            });
                        }
                    }
                    continue;
                }
            };
            if let Some(conn) = conn {
                self.effects.push(Effect::Send {
                    to: conn,
                    bytes,
                    delivery,
                });
            }
        }
        if self.out.result.is_some() && !self.ended {
            self.end(EndReason::MatchOver);
        }
    }

    /// Tells everyone the room closed (with the result first when there is one) and ends
    /// every session.
    fn end(&mut self, reason: EndReason) {
        self.ended = true;
        let result = self.out.result.take();
        // The match is over: spectators get what the delay still held back, before the end.
        self.sim.release_spectators(&mut self.out);
        self.flush();
        if let Some(result) = &result {
            let msg = self.out.encode(&ServerMsg::MatchEnded {
                result: result.clone(),
            });
            self.broadcast(msg);
        }
        let code = match reason {
            EndReason::Shutdown => ErrorCode::ServerShutdown,
            EndReason::GamePanicked => ErrorCode::Internal,
            EndReason::Moved => ErrorCode::RoomMoved,
            EndReason::Empty | EndReason::MatchOver | EndReason::TimeUp | EndReason::Closed => {
                ErrorCode::RoomClosed
            }
        };
        let kicked = self.out.encode(&ServerMsg::Kicked { code });
        for index in 0..self.watchers.len() {
            self.unwatch(index, code, true);
        }
        for seat in self.seats.iter_mut().filter_map(Option::take) {
            if let Some(conn) = seat.conn {
                self.effects.push(Effect::Send {
                    to: conn.clone(),
                    bytes: kicked.clone(),
                    delivery: Delivery::Reliable,
                });
                self.effects.push(Effect::Close { to: conn, code });
            }
            self.effects.push(Effect::SessionEnded {
                session_id: seat.session_id,
            });
        }
        let outcome = result.map(|result| MatchOutcome {
            result,
            players: self.participants.clone(),
        });
        self.effects.push(Effect::RoomEnded(RoomEnd {
            reason,
            result: outcome,
        }));
    }
}

#[cfg(test)]
mod tests;
