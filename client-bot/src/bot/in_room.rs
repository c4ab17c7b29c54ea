//! A bot in its room, on one task with one timer: the session driver's events, the input
//! clock, the link conditioner's delay queues, chaos drops, the end of play, the give-up
//! deadline and the room-status checks all fold into a single deadline handed to
//! `SessionDriver::wait`. The lockstep sim and checksums; the measurements; the decision to
//! rejoin through the gateway when the room's server is gone.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use tickroom_game::arena::ArenaInput;
use tickroom_game::arena_lockstep::LockstepInput;
use tickroom_game::{Arena, ArenaLockstep, LockstepGame, StateCodec};
use tickroom_protocol::connect::SessionDriver;
use tickroom_protocol::{ErrorCode, SessionEvent, SyncKind, Welcome};
use tokio::sync::watch;
use tracing::{debug, warn};

use super::{BotConfig, Player, CHECKSUM_INTERVAL_FRAMES, REJOIN_AFTER, ROOM_STATUS_PERIOD};
use crate::link::{DelayQueue, LinkDirection};
use crate::stats::{
    add_in_room, record, BotOutcome, IntervalJitter, LiveStats, Measurements, SendLog,
};

/// How often chaos rolls the dice.
const CHAOS_PERIOD: Duration = Duration::from_secs(1);
/// Largest change of a stick axis per input (random walk).
const WALK_STEP: i16 = 24;
/// Chance that an input presses dash.
const DASH_PROBABILITY: f64 = 0.05;
/// Snapshots/frames counted locally before they are added to the shared live counter.
const LIVE_MESSAGE_BATCH: u64 = 64;

/// Something the bot sends, held by the link conditioner until it is due.
#[derive(Debug)]
enum Outgoing {
    Input { bytes: Vec<u8>, created: Instant },
    FrameInput { frame: u64, bytes: Vec<u8> },
    Checksum { frame: u64, hash: u64 },
}

/// A stick that wanders.
#[derive(Debug, Default)]
struct RandomWalk {
    x: i8,
    y: i8,
}

impl RandomWalk {
    fn next(&mut self, rng: &mut SmallRng) -> (i8, i8, u8) {
        let mut walk = |v: i8| {
            let step = rng.random_range(-WALK_STEP..=WALK_STEP);
            (i16::from(v) + step).clamp(-127, 127) as i8
        };
        self.x = walk(self.x);
        self.y = walk(self.y);
        let buttons = u8::from(rng.random_bool(DASH_PROBABILITY));
        (self.x, self.y, buttons)
    }
}

/// How a room ended for the bot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum RoomEnd {
    /// The bot is done (played, left, failed or gave up).
    Done,
    /// The room's server is gone: queue again and play on in a new room.
    Rejoin,
}

/// What the bot knows about the room it is in now; reset for every room.
struct Room {
    welcome: Option<Welcome>,
    started: bool,
    start_tick: u64,
    /// The session was closed (the code, `None` after a plain leave).
    closed: Option<Option<ErrorCode>>,
    inbound: DelayQueue<SessionEvent>,
    outbound: DelayQueue<Outgoing>,
    /// State sync: send times of inputs by the session's input number.
    inputs: SendLog,
    next_input_at: Option<Instant>,
    /// Lockstep: send times of frame inputs, the sim, the newest frame stepped and sent for.
    frames: SendLog,
    sim: Option<ArenaLockstep>,
    /// The frame's inputs decoded (reused from frame to frame).
    decoded: Vec<LockstepInput>,
    last_frame: u64,
    last_input_frame: u64,
    jitter: IntervalJitter,
    /// When to ask the gateway whether this room's server still lives.
    status_check_at: Option<Instant>,
    /// The last message from the server.
    last_heard: Option<Instant>,
    /// The status check was started by silence (a dead QUIC server sends nothing at all),
    /// not by a lost connection: the next message cancels it.
    silence_suspected: bool,
}

impl Room {
    fn new() -> Room {
        Room {
            welcome: None,
            started: false,
            start_tick: 0,
            closed: None,
            inbound: DelayQueue::default(),
            outbound: DelayQueue::default(),
            inputs: SendLog::default(),
            next_input_at: None,
            frames: SendLog::default(),
            sim: None,
            decoded: Vec::new(),
            last_frame: 0,
            last_input_frame: 0,
            jitter: IntervalJitter::new(Duration::ZERO),
            status_check_at: None,
            last_heard: None,
            silence_suspected: false,
        }
    }
}

/// One bot, across the rooms it plays in.
pub(super) struct Bot {
    config: BotConfig,
    live: Arc<LiveStats>,
    stop: watch::Receiver<bool>,
    rng: SmallRng,
    up: Option<LinkDirection>,
    down: Option<LinkDirection>,
    walk: RandomWalk,
    room: Room,
    in_room: bool,
    leaving: bool,
    joined_at: Option<Instant>,
    closed_at: Option<Instant>,
    end_at: Option<Instant>,
    /// The connection loss not yet followed by a resume or a rejoin.
    lost_at: Option<Instant>,
    /// The old room was abandoned: the next `Joined` completes a rejoin.
    rejoining: bool,
    next_chaos_at: Option<Instant>,
    /// Snapshots and frames not yet added to the live counter.
    unreported_messages: u64,
    outcome: BotOutcome,
}

impl Bot {
    pub(super) fn new(config: BotConfig, live: Arc<LiveStats>, stop: watch::Receiver<bool>) -> Bot {
        let link = config.link;
        let direction = || link.is_active().then(|| LinkDirection::new(link));
        let next_chaos_at = (config.drop_per_s > 0.0).then(|| Instant::now() + CHAOS_PERIOD);
        Bot {
            rng: SmallRng::seed_from_u64(config.seed),
            up: direction(),
            down: direction(),
            config,
            live,
            stop,
            walk: RandomWalk::default(),
            room: Room::new(),
            in_room: false,
            leaving: false,
            joined_at: None,
            closed_at: None,
            end_at: None,
            lost_at: None,
            rejoining: false,
            next_chaos_at,
            unreported_messages: 0,
            outcome: BotOutcome::default(),
        }
    }

    fn m(&mut self) -> &mut Measurements {
        &mut self.outcome.measurements
    }

    /// Plays in the room `driver` is joining until the bot is done or must rejoin.
    pub(super) async fn play(&mut self, mut driver: SessionDriver, player: &mut Player) -> RoomEnd {
        self.room = Room::new();
        let give_up = self.config.give_up_at;
        let end = loop {
            let mut now = Instant::now();
            // Everything due now; sends can produce events (a failed send is a loss), so go
            // round until the driver has nothing left.
            loop {
                while let Some(event) = driver.poll_event().await {
                    self.receive(event, now);
                }
                self.step(&mut driver, now);
                if !driver.needs_poll() {
                    break;
                }
                now = Instant::now();
            }
            if now >= give_up {
                self.fail(if self.rejoining || self.room.status_check_at.is_some() {
                    "rejoin_failed"
                } else {
                    "timeout"
                });
                break RoomEnd::Done;
            }
            if let Some(code) = self.room.closed {
                if let Some(end) = self.after_close(code, now) {
                    break end;
                }
            }
            if self.room.status_check_at.is_some_and(|at| at <= now) {
                if self.server_gone(player).await {
                    let heard = self.room.last_heard.unwrap_or(now);
                    self.lost_at.get_or_insert(heard);
                    self.rejoining = true;
                    self.set_in_room(false);
                    break RoomEnd::Rejoin;
                }
                self.room.status_check_at = Some(Instant::now() + ROOM_STATUS_PERIOD);
                continue;
            }
            driver.wait(Some(self.next_deadline(give_up))).await;
        };
        let stats = driver.stats();
        let m = self.m();
        m.bytes_out += stats.bytes_out;
        m.bytes_in += stats.bytes_in;
        end
    }

    /// The outcome once the bot is done.
    pub(super) fn finish(mut self) -> BotOutcome {
        self.set_in_room(false);
        self.flush_live();
        if let Some(joined) = self.joined_at {
            let end = self.closed_at.unwrap_or_else(Instant::now);
            self.m().played_s = end.saturating_duration_since(joined).as_secs_f64();
        }
        self.outcome
    }

    /// What to do once the session closed: `None` while the bot waits for the gateway to say
    /// the old room's server is gone.
    fn after_close(&mut self, code: Option<ErrorCode>, now: Instant) -> Option<RoomEnd> {
        let server_gone = matches!(
            code,
            Some(ErrorCode::SessionExpired | ErrorCode::ServerGone | ErrorCode::ServerShutdown)
        );
        let playing =
            self.room.welcome.is_some() && !self.leaving && self.end_at.is_none_or(|end| now < end);
        if server_gone && playing {
            self.lost_at.get_or_insert(now);
            self.room.status_check_at.get_or_insert(now);
            return None;
        }
        if server_gone && self.room.welcome.is_some() {
            // Its play time is over: nothing to rejoin for.
            return Some(RoomEnd::Done);
        }
        match code {
            // The match ended: a normal end.
            Some(ErrorCode::RoomClosed) | None => {}
            Some(code) => self.fail(code.name()),
        }
        if self.room.welcome.is_none() {
            self.fail("closed_before_join");
        }
        Some(RoomEnd::Done)
    }

    /// Asks the gateway about the room; true when its server is gone (not alive, or the
    /// gateway no longer knows the room). A failed question is asked again later.
    async fn server_gone(&mut self, player: &mut Player) -> bool {
        let Some(room_id) = self.room.welcome.as_ref().map(|w| w.room_id) else {
            return false;
        };
        match player.room_status(room_id).await {
            Ok(Some(status)) => {
                debug!(
                    bot = self.config.index,
                    room = room_id,
                    alive = status.alive,
                    "room status"
                );
                !status.alive
            }
            Ok(None) => true,
            Err(e) => {
                debug!(bot = self.config.index, "room status failed: {e}");
                player.next_gateway();
                false
            }
        }
    }

    /// The earliest moment the bot has something to do.
    fn next_deadline(&self, give_up: Instant) -> Instant {
        let room = &self.room;
        [
            room.inbound.next_due(),
            room.outbound.next_due(),
            room.next_input_at,
            room.status_check_at,
            self.silence_deadline(),
            self.end_at.filter(|_| !self.leaving),
            self.next_chaos_at,
        ]
        .into_iter()
        .flatten()
        .fold(give_up, Instant::min)
    }

    /// Runs everything due at `now`.
    fn step(&mut self, driver: &mut SessionDriver, now: Instant) {
        while let Some(event) = self.room.inbound.pop_due(now) {
            self.on_event(event, now);
        }
        if self.room.closed.is_some() {
            return;
        }
        let ending = self.end_at.is_some_and(|end| end <= now);
        if !self.leaving && (ending || *self.stop.borrow()) {
            debug!(bot = self.config.index, "leaving");
            self.leaving = true;
            self.room.outbound.clear();
            self.room.next_input_at = None;
            driver.leave();
            return;
        }
        self.queue_frame_input(now);
        match (self.room.next_input_at, self.input_period()) {
            (None, Some(period)) => self.room.next_input_at = Some(now + period),
            (Some(at), Some(period)) if at <= now => {
                self.queue_state_input(now);
                let mut next = at + period;
                while next <= now {
                    next += period;
                }
                self.room.next_input_at = Some(next);
            }
            (Some(_), None) => self.room.next_input_at = None,
            _ => {}
        }
        while let Some(msg) = self.room.outbound.pop_due(now) {
            self.deliver(driver, msg);
        }
        if self.silence_deadline().is_some_and(|at| at <= now) {
            debug!(bot = self.config.index, "server silent: asking the gateway");
            self.room.silence_suspected = true;
            self.room.status_check_at = Some(now);
        }
        if let Some(at) = self.next_chaos_at.filter(|at| *at <= now) {
            self.next_chaos_at = Some(at + CHAOS_PERIOD);
            self.chaos(driver, now);
        }
    }

    /// When a started room has been silent long enough to ask whether its server lives
    /// (snapshots or frames arrive every tick while it does).
    fn silence_deadline(&self) -> Option<Instant> {
        let room = &self.room;
        if !self.in_room || !room.started || self.leaving || room.status_check_at.is_some() {
            return None;
        }
        room.last_heard.map(|t| t + REJOIN_AFTER)
    }

    /// An event from the session, through the downlink conditioner.
    fn receive(&mut self, event: SessionEvent, now: Instant) {
        if network_reliability(&event).is_some() {
            self.room.last_heard = Some(now);
            if std::mem::take(&mut self.room.silence_suspected) {
                self.room.status_check_at = None;
            }
        }
        let delay = match (&mut self.down, network_reliability(&event)) {
            (Some(link), Some(reliable)) => match link.pass(reliable, &mut self.rng) {
                Some(d) => d,
                None => {
                    self.m().link_dropped += 1;
                    return;
                }
            },
            _ => Duration::ZERO,
        };
        if delay.is_zero() && self.room.inbound.is_empty() {
            self.on_event(event, now);
        } else {
            self.room.inbound.push(now, delay, event);
        }
    }

    fn on_event(&mut self, event: SessionEvent, now: Instant) {
        trace_event(self.config.index, &event);
        match event {
            SessionEvent::Joined(w) => self.on_joined(w, now),
            SessionEvent::Reconnected(_) => {
                self.m().reconnects += 1;
                if let Some(lost) = self.lost_at.take() {
                    record(&mut self.outcome.measurements.resume, now - lost);
                }
                self.room.status_check_at = None;
                self.room.jitter.reset();
                self.set_in_room(true);
            }
            SessionEvent::Started { tick, .. } => {
                self.room.started = true;
                self.room.start_tick = tick;
                // The play time counts from the start of the first match, not from the wait
                // for it, and a rejoin does not extend it.
                if self.end_at.is_none() {
                    self.end_at = now.checked_add(self.config.play_for);
                }
            }
            SessionEvent::Snapshot { ack_seq, .. } => {
                self.m().snapshots += 1;
                self.arrival(now);
                if let Some(rtt) = self.room.inputs.ack(ack_seq, now) {
                    self.rtt(rtt);
                }
            }
            SessionEvent::Frame { n, inputs } => self.on_frame(n, &inputs, now),
            SessionEvent::Desync { frame } => {
                self.m().desyncs += 1;
                warn!(bot = self.config.index, frame, "desync reported");
            }
            SessionEvent::Pong { rtt } => record(&mut self.outcome.measurements.pong, rtt),
            SessionEvent::Reconnect { .. }
            | SessionEvent::Message { .. }
            | SessionEvent::Refused { .. }
            | SessionEvent::MatchEnded { .. } => {}
            SessionEvent::Disconnected { .. } => {
                self.room.silence_suspected = false;
                let lost = *self.lost_at.get_or_insert(now);
                if self.room.welcome.is_some() && !self.leaving {
                    self.room.status_check_at = Some(lost + REJOIN_AFTER);
                }
                self.room.jitter.reset();
                self.set_in_room(false);
            }
            SessionEvent::Closed { code } => {
                self.room.closed = Some(code);
                self.closed_at = Some(now);
                self.set_in_room(false);
            }
        }
    }

    fn on_joined(&mut self, w: Welcome, now: Instant) {
        if self.room.welcome.is_some() {
            return;
        }
        if self.rejoining {
            self.rejoining = false;
            self.m().rejoins += 1;
            if let Some(lost) = self.lost_at.take() {
                record(&mut self.outcome.measurements.rejoin, now - lost);
            }
        }
        self.outcome.joined = true;
        self.outcome.room_id.get_or_insert(w.room_id);
        self.joined_at.get_or_insert(now);
        self.closed_at = None;
        let hz = f64::from(w.tick_rate_hz.max(1));
        self.room.jitter = IntervalJitter::new(Duration::from_secs_f64(1.0 / hz));
        if w.sync == SyncKind::Lockstep {
            self.room.sim = Some(ArenaLockstep::new(w.max_players, w.room_id));
        }
        self.room.welcome = Some(w);
        self.set_in_room(true);
    }

    fn on_frame(&mut self, n: u64, inputs: &[Vec<u8>], now: Instant) {
        self.m().frames += 1;
        self.arrival(now);
        if let Some(latency) = self.room.frames.ack(n, now) {
            self.rtt(latency);
            // Our input for this frame reached the server after the frame closed.
            let slot = self
                .room
                .welcome
                .as_ref()
                .map_or(0, |w| usize::from(w.slot));
            if inputs.get(slot).is_none_or(Vec::is_empty) {
                self.m().late_inputs += 1;
            }
        }
        let last = self.room.last_frame;
        if n <= last {
            return;
        }
        if n != last + 1 {
            // A gap: the sim cannot follow any more, so stop checksumming rather than lie.
            warn!(bot = self.config.index, frame = n, last, "frame gap");
            self.m().lost_frames += n - last - 1;
            self.m().bad_data += 1;
            self.room.sim = None;
        }
        self.room.last_frame = n;
        let Some(sim) = self.room.sim.as_mut() else {
            return;
        };
        let mut bad = 0;
        let decoded = &mut self.room.decoded;
        decoded.clear();
        decoded.extend(inputs.iter().map(|b| {
            ArenaLockstep::decode_input(b).unwrap_or_else(|_| {
                bad += 1;
                LockstepInput::default()
            })
        }));
        sim.step(n, decoded);
        let hash = sim.checksum();
        self.m().bad_data += bad;
        if n.is_multiple_of(CHECKSUM_INTERVAL_FRAMES) && self.in_room && !self.leaving {
            let delay = self.uplink_delay();
            self.room
                .outbound
                .push(now, delay, Outgoing::Checksum { frame: n, hash });
        }
    }

    fn arrival(&mut self, now: Instant) {
        self.unreported_messages += 1;
        if self.unreported_messages >= LIVE_MESSAGE_BATCH {
            self.flush_live();
        }
        if let Some(deviation) = self.room.jitter.arrival(now) {
            record(&mut self.outcome.measurements.jitter, deviation);
        }
    }

    fn flush_live(&mut self) {
        let n = std::mem::take(&mut self.unreported_messages);
        if n > 0 {
            self.live.messages.fetch_add(n, Ordering::Relaxed);
        }
    }

    fn rtt(&mut self, rtt: Duration) {
        record(&mut self.outcome.measurements.rtt, rtt);
        self.live.record_rtt(rtt);
    }

    fn is_lockstep(&self) -> bool {
        self.room
            .welcome
            .as_ref()
            .is_some_and(|w| w.sync == SyncKind::Lockstep)
    }

    /// The state-sync input period once inputs should flow.
    fn input_period(&self) -> Option<Duration> {
        let w = self.room.welcome.as_ref()?;
        if w.sync != SyncKind::State || !self.room.started || self.leaving {
            return None;
        }
        let hz = self.config.input_hz.unwrap_or(u32::from(w.tick_rate_hz));
        Some(Duration::from_secs_f64(1.0 / f64::from(hz.max(1))))
    }

    fn queue_state_input(&mut self, now: Instant) {
        if !self.in_room || self.leaving || !self.room.started || self.is_lockstep() {
            return;
        }
        let (move_x, move_y, buttons) = self.walk.next(&mut self.rng);
        let mut bytes = Vec::with_capacity(4);
        Arena::encode_input(
            &ArenaInput {
                move_x,
                move_y,
                buttons,
            },
            &mut bytes,
        );
        let pass = match self.up.as_mut() {
            Some(link) => link.pass(false, &mut self.rng),
            None => Some(Duration::ZERO),
        };
        match pass {
            Some(delay) => self.room.outbound.push(
                now,
                delay,
                Outgoing::Input {
                    bytes,
                    created: now,
                },
            ),
            None => self.m().link_dropped += 1,
        }
    }

    /// Lockstep: the input for the frame after the newest one received (or the first frame
    /// once the room started), once per frame.
    fn queue_frame_input(&mut self, now: Instant) {
        if !self.is_lockstep() || !self.in_room || self.leaving {
            return;
        }
        let next = if self.room.last_frame > 0 {
            self.room.last_frame + 1
        } else if self.room.started {
            self.room.start_tick.max(1)
        } else {
            return;
        };
        if next <= self.room.last_input_frame {
            return;
        }
        self.room.last_input_frame = next;
        let (move_x, move_y, buttons) = self.walk.next(&mut self.rng);
        let mut bytes = Vec::with_capacity(4);
        ArenaLockstep::encode_input(
            &LockstepInput {
                move_x,
                move_y,
                buttons,
            },
            &mut bytes,
        );
        self.room.frames.sent(next, now);
        let delay = self.uplink_delay();
        self.room
            .outbound
            .push(now, delay, Outgoing::FrameInput { frame: next, bytes });
    }

    /// Delay of a reliable uplink message (never lost).
    fn uplink_delay(&mut self) -> Duration {
        match self.up.as_mut() {
            Some(link) => link.delay(&mut self.rng),
            None => Duration::ZERO,
        }
    }

    /// Hands a due message to the session; dropped while not in the room (the session would
    /// ignore it).
    fn deliver(&mut self, driver: &mut SessionDriver, msg: Outgoing) {
        if !self.in_room || self.leaving {
            return;
        }
        match msg {
            Outgoing::Input { bytes, created } => {
                let input_no = driver.send_input(created, bytes);
                if input_no > 0 {
                    self.room.inputs.sent(input_no, created);
                }
            }
            Outgoing::FrameInput { frame, bytes } => driver.send_frame_input(frame, bytes),
            Outgoing::Checksum { frame, hash } => driver.send_checksum(frame, hash),
        }
    }

    fn chaos(&mut self, driver: &mut SessionDriver, now: Instant) {
        let p = self.config.drop_per_s.clamp(0.0, 1.0);
        if !self.in_room || self.leaving || !self.rng.random_bool(p) {
            return;
        }
        debug!(bot = self.config.index, "chaos: dropping the connection");
        self.m().drops += 1;
        self.lost_at = Some(now);
        driver.drop_connection();
    }

    fn set_in_room(&mut self, in_room: bool) {
        if self.in_room != in_room {
            self.in_room = in_room;
            add_in_room(&self.live, if in_room { 1 } else { -1 });
        }
    }

    pub(super) fn fail(&mut self, name: &str) {
        if self.outcome.error.is_none() {
            warn!(bot = self.config.index, error = name, "bot failed");
            self.outcome.error = Some(name.to_string());
            self.live.errors.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Whether an event came over the network and how: `Some(false)` for unreliable (may be
/// lost), `Some(true)` for reliable (only delayed), `None` for local session events.
fn network_reliability(event: &SessionEvent) -> Option<bool> {
    match event {
        SessionEvent::Snapshot { .. } => Some(false),
        SessionEvent::Joined(_)
        | SessionEvent::Reconnected(_)
        | SessionEvent::Started { .. }
        | SessionEvent::Frame { .. }
        | SessionEvent::Desync { .. }
        | SessionEvent::Message { .. }
        | SessionEvent::MatchEnded { .. }
        | SessionEvent::Refused { .. }
        | SessionEvent::Pong { .. } => Some(true),
        SessionEvent::Reconnect { .. }
        | SessionEvent::Disconnected { .. }
        | SessionEvent::Closed { .. } => None,
    }
}

fn trace_event(bot: usize, event: &SessionEvent) {
    match event {
        SessionEvent::Joined(w) | SessionEvent::Reconnected(w) => debug!(
            bot,
            room = w.room_id,
            slot = w.slot,
            sync = ?w.sync,
            tick_rate_hz = w.tick_rate_hz,
            tick = w.tick,
            resumed = w.resumed,
            "welcome"
        ),
        SessionEvent::Started { tick, players } => debug!(bot, tick, players, "started"),
        SessionEvent::Snapshot {
            tick,
            ack_seq,
            baseline,
            payload,
        } => debug!(
            bot,
            tick,
            ack_seq,
            baseline,
            bytes = payload.len(),
            "snapshot"
        ),
        SessionEvent::Frame { n, inputs } => debug!(bot, frame = n, slots = inputs.len(), "frame"),
        SessionEvent::Desync { frame } => debug!(bot, frame, "desync"),
        SessionEvent::Pong { rtt } => debug!(bot, rtt_ms = rtt.as_secs_f64() * 1e3, "pong"),
        SessionEvent::Reconnect { attempt } => debug!(bot, attempt, "reconnecting"),
        SessionEvent::Disconnected { code } => debug!(bot, code = ?code, "disconnected"),
        SessionEvent::Closed { code } => debug!(bot, code = ?code, "closed"),
        SessionEvent::Message { payload } => debug!(bot, bytes = payload.len(), "message"),
        SessionEvent::MatchEnded { result } => debug!(bot, bytes = result.len(), "match ended"),
        SessionEvent::Refused { seq, code } => debug!(bot, seq, code = ?code, "refused"),
    }
}
