//! A bot in its room: the event loop over session events, the input timer, the link
//! conditioner's delay queues and chaos drops; the lockstep sim and checksums; the measurements.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use tickroom_game::arena::ArenaInput;
use tickroom_game::arena_lockstep::LockstepInput;
use tickroom_game::{Arena, ArenaLockstep, LockstepGame, StateGame};
use tickroom_protocol::connect::{Session, SessionHandle};
use tickroom_protocol::{ErrorCode, SessionEvent, SyncKind, Welcome};
use tokio::sync::watch;
use tokio::time::{Interval, MissedTickBehavior};
use tracing::{debug, warn};

use super::{BotConfig, CHECKSUM_INTERVAL_FRAMES};
use crate::link::{DelayQueue, LinkDirection};
use crate::stats::{
    add_in_room, record, BotOutcome, IntervalJitter, LiveStats, Measurements, SendLog,
};

/// How long the session task gets to finish once the bot is done.
const SESSION_FINISH_TIMEOUT: Duration = Duration::from_secs(3);
/// How often chaos rolls the dice.
const CHAOS_PERIOD: Duration = Duration::from_secs(1);
/// Largest change of a stick axis per input (random walk).
const WALK_STEP: i16 = 24;
/// Chance that an input presses dash.
const DASH_PROBABILITY: f64 = 0.05;

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

/// One bot in a room.
pub(super) struct Bot {
    config: BotConfig,
    live: Arc<LiveStats>,
    rng: SmallRng,
    up: Option<LinkDirection>,
    down: Option<LinkDirection>,
    outbound: DelayQueue<Outgoing>,
    inbound: DelayQueue<SessionEvent>,
    walk: RandomWalk,
    welcome: Option<Welcome>,
    started: bool,
    start_tick: u64,
    in_room: bool,
    leaving: bool,
    closed: bool,
    joined_at: Option<Instant>,
    closed_at: Option<Instant>,
    end_at: Option<Instant>,
    lost_at: Option<Instant>,
    /// State sync: the session's input numbering (1, 2, 3, ...) and their send times.
    input_no: u64,
    inputs: SendLog,
    /// Lockstep: send times of frame inputs, the sim, the newest frame stepped and sent for.
    frames: SendLog,
    sim: Option<ArenaLockstep>,
    last_frame: u64,
    last_input_frame: u64,
    jitter: IntervalJitter,
    outcome: BotOutcome,
}

impl Bot {
    pub(super) fn new(config: BotConfig, live: Arc<LiveStats>) -> Bot {
        let link = config.link;
        let direction = || link.is_active().then(|| LinkDirection::new(link));
        Bot {
            rng: SmallRng::seed_from_u64(config.seed),
            up: direction(),
            down: direction(),
            config,
            live,
            outbound: DelayQueue::default(),
            inbound: DelayQueue::default(),
            walk: RandomWalk::default(),
            welcome: None,
            started: false,
            start_tick: 0,
            in_room: false,
            leaving: false,
            closed: false,
            joined_at: None,
            closed_at: None,
            end_at: None,
            lost_at: None,
            input_no: 0,
            inputs: SendLog::default(),
            frames: SendLog::default(),
            sim: None,
            last_frame: 0,
            last_input_frame: 0,
            jitter: IntervalJitter::new(Duration::ZERO),
            outcome: BotOutcome::default(),
        }
    }

    fn m(&mut self) -> &mut Measurements {
        &mut self.outcome.measurements
    }

    pub(super) async fn play(
        mut self,
        session: Session,
        mut stop: watch::Receiver<bool>,
    ) -> BotOutcome {
        let Session {
            mut events,
            handle,
            task,
        } = session;
        let give_up = tokio::time::Instant::from_std(self.config.give_up_at);
        let mut input_timer: Option<Interval> = None;
        let mut chaos =
            tokio::time::interval_at(tokio::time::Instant::now() + CHAOS_PERIOD, CHAOS_PERIOD);
        let chaos_on = self.config.drop_per_s > 0.0;
        let mut stop_seen = *stop.borrow();
        let mut session_done = false;
        // Timers are created once and re-armed only when their deadline changes: a fresh
        // sleep per loop turn put three timer-wheel inserts and removals on every event.
        let give_up_sleep = tokio::time::sleep_until(give_up);
        tokio::pin!(give_up_sleep);
        let wake_sleep = tokio::time::sleep_until(give_up);
        tokio::pin!(wake_sleep);
        let end_sleep = tokio::time::sleep_until(give_up);
        tokio::pin!(end_sleep);
        let mut wake_armed: Option<Instant> = None;
        let mut end_armed: Option<Instant> = None;
        loop {
            let now = Instant::now();
            while let Some(event) = self.inbound.pop_due(now) {
                self.on_event(event, now);
            }
            self.queue_frame_input(now);
            while let Some(msg) = self.outbound.pop_due(now) {
                self.deliver(&handle, msg).await;
            }
            if self.closed || (session_done && self.inbound.is_empty()) {
                break;
            }
            let ending = self.end_at.is_some_and(|end| end <= now);
            if !self.leaving && (stop_seen || ending) {
                debug!(bot = self.config.index, "leaving");
                self.leaving = true;
                self.outbound.clear();
                input_timer = None;
                let _ = handle.leave().await;
            }
            if input_timer.is_none() {
                input_timer = self.input_period().map(|period| {
                    let start = tokio::time::Instant::now() + period;
                    let mut t = tokio::time::interval_at(start, period);
                    t.set_missed_tick_behavior(MissedTickBehavior::Skip);
                    t
                });
            }
            let wake = earliest(self.inbound.next_due(), self.outbound.next_due());
            let end = self.end_at.filter(|_| !self.leaving);
            if wake != wake_armed {
                if let Some(at) = wake {
                    wake_sleep.as_mut().reset(at.into());
                }
                wake_armed = wake;
            }
            if end != end_armed {
                if let Some(at) = end {
                    end_sleep.as_mut().reset(at.into());
                }
                end_armed = end;
            }
            tokio::select! {
                event = events.recv(), if !session_done => match event {
                    Some(event) => self.receive(event, Instant::now()),
                    None => session_done = true,
                },
                () = &mut wake_sleep, if wake_armed.is_some() => wake_armed = None,
                () = &mut end_sleep, if end_armed.is_some() => end_armed = None,
                () = tick(&mut input_timer) => self.queue_state_input(Instant::now()),
                _ = chaos.tick(), if chaos_on => self.chaos(&handle).await,
                _ = stop.changed(), if !stop_seen => stop_seen = true,
                () = &mut give_up_sleep => {
                    self.fail("timeout");
                    break;
                }
            }
        }
        if !self.closed {
            let _ = handle.leave().await;
        }
        drop(events);
        let abort = task.abort_handle();
        match tokio::time::timeout(SESSION_FINISH_TIMEOUT, task).await {
            Ok(Ok(stats)) => {
                let m = self.m();
                m.bytes_out = stats.bytes_out;
                m.bytes_in = stats.bytes_in;
            }
            Ok(Err(_)) => {}
            Err(_) => abort.abort(),
        }
        self.set_in_room(false);
        if let Some(joined) = self.joined_at {
            let end = self.closed_at.unwrap_or_else(Instant::now);
            self.m().played_s = end.saturating_duration_since(joined).as_secs_f64();
        }
        self.outcome
    }

    /// An event from the session, through the downlink conditioner.
    fn receive(&mut self, event: SessionEvent, now: Instant) {
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
        if delay.is_zero() && self.inbound.is_empty() {
            self.on_event(event, now);
        } else {
            self.inbound.push(now, delay, event);
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
                self.jitter.reset();
                self.set_in_room(true);
            }
            SessionEvent::Started { tick, .. } => {
                self.started = true;
                self.start_tick = tick;
                // The play time counts from the start of the match, not from the wait for it.
                if self.end_at.is_none() {
                    self.end_at = now.checked_add(self.config.play_for);
                }
            }
            SessionEvent::Snapshot { ack_seq, .. } => {
                self.m().snapshots += 1;
                self.arrival(now);
                if let Some(rtt) = self.inputs.ack(ack_seq, now) {
                    self.rtt(rtt);
                }
            }
            SessionEvent::Frame { n, inputs } => self.on_frame(n, &inputs, now),
            SessionEvent::Desync { frame } => {
                self.m().desyncs += 1;
                warn!(bot = self.config.index, frame, "desync reported");
            }
            SessionEvent::Pong { rtt } => record(&mut self.outcome.measurements.pong, rtt),
            SessionEvent::Reconnect { .. } => {}
            SessionEvent::Disconnected { .. } => {
                self.lost_at.get_or_insert(now);
                self.jitter.reset();
                self.set_in_room(false);
            }
            SessionEvent::Closed { code } => {
                self.closed = true;
                self.closed_at = Some(now);
                self.set_in_room(false);
                match code {
                    // The match ended: a normal end.
                    Some(ErrorCode::RoomClosed) | None => {}
                    Some(code) => self.fail(code.name()),
                }
                if self.welcome.is_none() {
                    self.fail("closed_before_join");
                }
            }
        }
    }

    fn on_joined(&mut self, w: Welcome, now: Instant) {
        if self.welcome.is_some() {
            return;
        }
        self.outcome.joined = true;
        self.outcome.room_id = Some(w.room_id);
        self.joined_at = Some(now);
        let hz = f64::from(w.tick_rate_hz.max(1));
        self.jitter = IntervalJitter::new(Duration::from_secs_f64(1.0 / hz));
        if w.sync == SyncKind::Lockstep {
            self.sim = Some(ArenaLockstep::new(w.max_players, w.room_id));
        }
        self.welcome = Some(w);
        self.set_in_room(true);
    }

    fn on_frame(&mut self, n: u64, inputs: &[Vec<u8>], now: Instant) {
        self.m().frames += 1;
        self.arrival(now);
        if let Some(latency) = self.frames.ack(n, now) {
            self.rtt(latency);
            // Our input for this frame reached the server after the frame closed.
            let slot = self.welcome.as_ref().map_or(0, |w| usize::from(w.slot));
            if inputs.get(slot).is_none_or(Vec::is_empty) {
                self.m().late_inputs += 1;
            }
        }
        if n <= self.last_frame {
            return;
        }
        if n != self.last_frame + 1 {
            // A gap: the sim cannot follow any more, so stop checksumming rather than lie.
            warn!(
                bot = self.config.index,
                frame = n,
                last = self.last_frame,
                "frame gap"
            );
            self.m().bad_data += 1;
            self.sim = None;
        }
        self.last_frame = n;
        let Some(sim) = self.sim.as_mut() else { return };
        let mut bad = 0;
        let decoded: Vec<LockstepInput> = inputs
            .iter()
            .map(|b| {
                ArenaLockstep::decode_input(b).unwrap_or_else(|_| {
                    bad += 1;
                    LockstepInput::default()
                })
            })
            .collect();
        sim.step(n, &decoded);
        let hash = sim.checksum();
        self.m().bad_data += bad;
        if n.is_multiple_of(CHECKSUM_INTERVAL_FRAMES) && self.in_room && !self.leaving {
            let delay = self.uplink_delay();
            self.outbound
                .push(now, delay, Outgoing::Checksum { frame: n, hash });
        }
    }

    fn arrival(&mut self, now: Instant) {
        self.live.messages.fetch_add(1, Ordering::Relaxed);
        if let Some(deviation) = self.jitter.arrival(now) {
            record(&mut self.outcome.measurements.jitter, deviation);
        }
    }

    fn rtt(&mut self, rtt: Duration) {
        record(&mut self.outcome.measurements.rtt, rtt);
        self.live.record_rtt(rtt);
    }

    fn is_lockstep(&self) -> bool {
        self.welcome
            .as_ref()
            .is_some_and(|w| w.sync == SyncKind::Lockstep)
    }

    /// The state-sync input period once inputs should flow.
    fn input_period(&self) -> Option<Duration> {
        let w = self.welcome.as_ref()?;
        if w.sync != SyncKind::State || !self.started || self.leaving {
            return None;
        }
        let hz = self.config.input_hz.unwrap_or(u32::from(w.tick_rate_hz));
        Some(Duration::from_secs_f64(1.0 / f64::from(hz.max(1))))
    }

    fn queue_state_input(&mut self, now: Instant) {
        if !self.in_room || self.leaving || !self.started || self.is_lockstep() {
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
            Some(delay) => self.outbound.push(
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
        let next = if self.last_frame > 0 {
            self.last_frame + 1
        } else if self.started {
            self.start_tick.max(1)
        } else {
            return;
        };
        if next <= self.last_input_frame {
            return;
        }
        self.last_input_frame = next;
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
        self.frames.sent(next, now);
        let delay = self.uplink_delay();
        self.outbound
            .push(now, delay, Outgoing::FrameInput { frame: next, bytes });
    }

    /// Delay of a reliable uplink message (never lost).
    fn uplink_delay(&mut self) -> Duration {
        match self.up.as_mut() {
            Some(link) => link.delay(&mut self.rng),
            None => Duration::ZERO,
        }
    }

    /// Hands a due message to the session; dropped while not in the room, because the session
    /// would ignore it and the input numbering must match the session's.
    async fn deliver(&mut self, handle: &SessionHandle, msg: Outgoing) {
        if !self.in_room || self.leaving {
            return;
        }
        match msg {
            Outgoing::Input { bytes, created } => {
                self.input_no += 1;
                self.inputs.sent(self.input_no, created);
                handle.input(bytes).await;
            }
            Outgoing::FrameInput { frame, bytes } => {
                handle.frame_input(frame, bytes).await;
            }
            Outgoing::Checksum { frame, hash } => {
                handle.checksum(frame, hash).await;
            }
        }
    }

    async fn chaos(&mut self, handle: &SessionHandle) {
        let p = self.config.drop_per_s.clamp(0.0, 1.0);
        if !self.in_room || self.leaving || !self.rng.random_bool(p) {
            return;
        }
        debug!(bot = self.config.index, "chaos: dropping the connection");
        self.m().drops += 1;
        self.lost_at = Some(Instant::now());
        self.jitter.reset();
        self.set_in_room(false);
        handle.drop_connection().await;
    }

    fn set_in_room(&mut self, in_room: bool) {
        if self.in_room != in_room {
            self.in_room = in_room;
            add_in_room(&self.live, if in_room { 1 } else { -1 });
        }
    }

    fn fail(&mut self, name: &str) {
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
    }
}

fn earliest(a: Option<Instant>, b: Option<Instant>) -> Option<Instant> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

async fn tick(timer: &mut Option<Interval>) {
    match timer {
        Some(t) => {
            t.tick().await;
        }
        None => std::future::pending().await,
    }
}
