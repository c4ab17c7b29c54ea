//! A bot in its room, on one task with one timer: the session driver's events, the input
//! clock, the link conditioner's delay queues, chaos drops, the end of play, the give-up
//! deadline and the gateway questions all fold into a single deadline handed to
//! `SessionDriver::wait`. The [`Phase`] says what the bot may do, the game's [`GameBot`]
//! what it sends; this file receives and measures, `uplink` sends.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use tickroom_protocol::connect::{RoomStatus, SessionDriver};
use tickroom_protocol::{ErrorCode, SessionEvent, SyncKind, Welcome};
use tokio::sync::watch;
use tracing::{debug, warn};

use super::phase::{Cue, Note, Phase};
use super::{BotConfig, Player, CHECKSUM_INTERVAL_FRAMES, REJOIN_AFTER};
use crate::game_bot::{GameBot, GameBotFactory};
use crate::link::{DelayQueue, LinkDirection};
use crate::stats::{
    add_in_room, record, BotOutcome, IntervalJitter, LiveStats, Measurements, SendLog,
};

mod uplink;

/// How often chaos rolls the dice.
const CHAOS_PERIOD: Duration = Duration::from_secs(1);
/// Most a question to the gateway about the room is put off, at random (spreads a herd).
const STATUS_JITTER: Duration = Duration::from_millis(200);
/// Snapshots/frames counted locally before they are added to the shared live counter.
const LIVE_MESSAGE_BATCH: u64 = 64;

/// Something the bot sends, held by the link conditioner until it is due.
#[derive(Debug)]
pub(super) enum Outgoing {
    /// A state-sync input, created at `created` (the RTT counts from there).
    Input { bytes: Vec<u8>, created: Instant },
    /// A lockstep frame input.
    FrameInput { frame: u64, bytes: Vec<u8> },
    /// A lockstep state checksum.
    Checksum { frame: u64, hash: u64 },
    /// A custom message (the game's answer to one of the server's).
    Message { bytes: Vec<u8> },
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
    /// The tick the room started at, once `Started` came.
    start_tick: Option<u64>,
    /// How the game plays this room (made by the factory on `Joined`).
    game: Option<Box<dyn GameBot>>,
    inbound: DelayQueue<SessionEvent>,
    outbound: DelayQueue<Outgoing>,
    /// State sync: send times of inputs by the session's input number.
    inputs: SendLog,
    next_input_at: Option<Instant>,
    /// Lockstep: send times of frame inputs, the newest frame received and sent for.
    frames: SendLog,
    last_frame: u64,
    last_input_frame: u64,
    /// Lockstep: no frame was missed yet, so the game still gets every frame.
    frames_in_order: bool,
    jitter: IntervalJitter,
    /// State sync: the newest snapshot tick received.
    last_tick: u64,
    /// The last message from the server.
    last_heard: Option<Instant>,
}

impl Room {
    fn new() -> Room {
        Room {
            welcome: None,
            start_tick: None,
            game: None,
            inbound: DelayQueue::default(),
            outbound: DelayQueue::default(),
            inputs: SendLog::default(),
            next_input_at: None,
            frames: SendLog::default(),
            last_frame: 0,
            last_input_frame: 0,
            frames_in_order: true,
            jitter: IntervalJitter::new(Duration::ZERO),
            last_tick: 0,
            last_heard: None,
        }
    }

    fn sync(&self) -> Option<SyncKind> {
        self.welcome.as_ref().map(|w| w.sync)
    }
}

/// One bot, across the rooms it plays in.
pub(super) struct Bot {
    config: BotConfig,
    live: Arc<LiveStats>,
    stop: watch::Receiver<bool>,
    factory: GameBotFactory,
    rng: SmallRng,
    up: Option<LinkDirection>,
    down: Option<LinkDirection>,
    phase: Phase,
    /// The phase was `connected()` when the live gauge last heard of this bot.
    counted_live: bool,
    room: Room,
    /// Where the gateway moved the room (its owner died), until the driver is pointed there.
    moved: Option<RoomStatus>,
    joined_at: Option<Instant>,
    closed_at: Option<Instant>,
    end_at: Option<Instant>,
    next_chaos_at: Option<Instant>,
    /// Snapshots and frames not yet added to the live counter.
    unreported_messages: u64,
    outcome: BotOutcome,
}

impl Bot {
    pub(super) fn new(
        config: BotConfig,
        live: Arc<LiveStats>,
        stop: watch::Receiver<bool>,
        factory: GameBotFactory,
    ) -> Bot {
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
            factory,
            phase: Phase::Joining,
            counted_live: false,
            room: Room::new(),
            moved: None,
            joined_at: None,
            closed_at: None,
            end_at: None,
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
                self.apply(Cue::GiveUp, now);
            }
            match self.phase {
                Phase::Done(_) => break RoomEnd::Done,
                Phase::CheckingServer { check_at, .. } if check_at <= now => {
                    let answer = self.ask_gateway(player).await;
                    match self.apply(answer, Instant::now()) {
                        Some(Note::Rejoin) => break RoomEnd::Rejoin,
                        Some(Note::Leave) => self.leave(&mut driver),
                        Some(Note::Move) => {
                            if let Some(status) = self.moved.take() {
                                self.m().moves += 1;
                                if let Err(e) = driver.move_to(&status) {
                                    warn!(
                                        bot = self.config.index,
                                        "cannot move to the room's new server: {e}"
                                    );
                                }
                            }
                        }
                        _ => {}
                    }
                    continue;
                }
                _ => {}
            }
            driver.wait(Some(self.next_deadline(give_up))).await;
        };
        let stats = driver.stats();
        let m = self.m();
        m.bytes_out += stats.bytes_out;
        m.bytes_in += stats.bytes_in;
        end
    }

    /// No new room was joined in time after the old one's server was gone.
    pub(super) fn give_up(&mut self) {
        self.apply(Cue::GiveUp, Instant::now());
    }

    /// The outcome once the bot is done.
    pub(super) fn finish(mut self) -> BotOutcome {
        self.set_live(false);
        self.flush_live();
        if let Some(joined) = self.joined_at {
            let end = self.closed_at.unwrap_or_else(Instant::now);
            self.m().played_s = end.saturating_duration_since(joined).as_secs_f64();
        }
        debug_assert!(matches!(self.phase, Phase::Done(_)), "{:?}", self.phase);
        if let Phase::Done(error) = self.phase {
            self.outcome.error = error;
        }
        if let Some(game) = self.room.game.as_ref() {
            self.outcome.game_report = game.report().or(self.outcome.game_report.take());
        }
        self.outcome
    }

    /// Moves the phase on; records what the transition measured and returns what the caller
    /// must do.
    fn apply(&mut self, cue: Cue, now: Instant) -> Option<Note> {
        let before = self.phase;
        let (phase, note) = before.on(cue, now);
        if phase == before {
            return note;
        }
        debug!(bot = self.config.index, ?cue, from = ?before, to = ?phase, "phase");
        self.phase = match phase {
            // Questions to the gateway are spread: the players of a dead server must not all
            // ask (and then resume on the room's new server) in the same instant.
            Phase::CheckingServer {
                why,
                lost_at,
                check_at,
            } => Phase::CheckingServer {
                why,
                lost_at,
                check_at: check_at + self.rng.random_range(Duration::ZERO..=STATUS_JITTER),
            },
            other => other,
        };
        match note {
            Some(Note::Resumed { after }) => record(&mut self.outcome.measurements.resume, after),
            Some(Note::Rejoined { after }) => {
                self.m().rejoins += 1;
                record(&mut self.outcome.measurements.rejoin, after);
            }
            Some(Note::Leave | Note::Rejoin | Note::Move) | None => {}
        }
        if let Phase::Done(Some(error)) = phase {
            warn!(
                bot = self.config.index,
                error = error.name(),
                "bot failed: {error}"
            );
            self.live.errors.fetch_add(1, Ordering::Relaxed);
        }
        self.set_live(phase.connected());
        note
    }

    /// Asks the gateway about the room: `ServerGone` when its server is not alive,
    /// `RoomOver` when the gateway no longer knows the room; a failed question counts as
    /// alive (asked again).
    async fn ask_gateway(&mut self, player: &mut Player) -> Cue {
        let Some(room_id) = self.room.welcome.as_ref().map(|w| w.room_id) else {
            return Cue::ServerAlive;
        };
        self.m().room_status_checks += 1;
        match player.room_status(room_id).await {
            Ok(Some(status)) => {
                debug!(
                    bot = self.config.index,
                    room = room_id,
                    alive = status.alive,
                    "room status"
                );
                if !status.alive {
                    Cue::ServerGone
                } else if player.moved(&status) {
                    self.moved = Some(status);
                    Cue::ServerMoved
                } else {
                    Cue::ServerAlive
                }
            }
            Ok(None) => Cue::RoomOver,
            Err(e) => {
                debug!(bot = self.config.index, "room status failed: {e}");
                player.next_gateway();
                Cue::ServerAlive
            }
        }
    }

    /// The earliest moment the bot has something to do.
    fn next_deadline(&self, give_up: Instant) -> Instant {
        let room = &self.room;
        let may_leave = !matches!(self.phase, Phase::Leaving { .. } | Phase::Done(_));
        [
            room.inbound.next_due(),
            room.outbound.next_due(),
            room.next_input_at,
            self.phase.deadline(),
            self.silence_deadline(),
            self.end_at.filter(|_| may_leave),
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
        let play_over = self.end_at.is_some_and(|end| end <= now) || *self.stop.borrow();
        if play_over && self.apply(Cue::PlayOver, now) == Some(Note::Leave) {
            self.leave(driver);
            return;
        }
        if self.phase.session_over() {
            return;
        }
        self.queue_frame_input(now);
        self.queue_state_inputs(now);
        while let Some(msg) = self.room.outbound.pop_due(now) {
            self.deliver(driver, msg);
        }
        if let Some(last_heard) = self.room.last_heard {
            if self.silence_deadline().is_some_and(|at| at <= now) {
                debug!(bot = self.config.index, "server silent: asking the gateway");
                self.apply(Cue::Silent { last_heard }, now);
            }
        }
        if matches!(self.phase, Phase::Reconnecting { .. })
            && self.phase.deadline().is_some_and(|at| at <= now)
        {
            self.apply(Cue::ResumeOverdue, now);
        }
        if let Some(at) = self.next_chaos_at.filter(|at| *at <= now) {
            self.next_chaos_at = Some(at + CHAOS_PERIOD);
            self.chaos(driver, now);
        }
    }

    /// Sends `Leave` and forgets what was still to be sent.
    fn leave(&mut self, driver: &mut SessionDriver) {
        debug!(bot = self.config.index, "leaving");
        self.room.outbound.clear();
        self.room.next_input_at = None;
        driver.leave();
    }

    /// When a started room has been silent long enough to ask whether its server lives.
    /// Frames, and the snapshots answering a bot's inputs, arrive every tick while it does. A
    /// state-sync bot that sends no inputs may be in a quiet room that sends it nothing: only
    /// its pongs prove the server alive, so it waits a ping interval longer.
    fn silence_deadline(&self) -> Option<Instant> {
        if self.phase != Phase::Playing {
            return None;
        }
        let idle = self.room.sync() == Some(SyncKind::State) && self.input_period().is_none();
        let wait = if idle {
            REJOIN_AFTER + self.config.ping_interval
        } else {
            REJOIN_AFTER
        };
        self.room.last_heard.map(|t| t + wait)
    }

    /// An event from the session, through the downlink conditioner.
    fn receive(&mut self, event: SessionEvent, now: Instant) {
        if network_reliability(&event).is_some() {
            self.room.last_heard = Some(now);
            self.apply(Cue::Heard, now);
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
            SessionEvent::Reconnected(w) => {
                self.m().reconnects += 1;
                let back = self.room.last_tick.saturating_sub(w.tick);
                let ms = back as f64 * 1e3 / f64::from(w.tick_rate_hz.max(1));
                let m = self.m();
                m.max_rollback_ms = m.max_rollback_ms.max(ms);
                self.room.jitter.reset();
                let started = self.room.start_tick.is_some();
                self.apply(Cue::Reconnected { started }, now);
            }
            SessionEvent::Started { tick, .. } => {
                self.room.start_tick = Some(tick);
                // The play time counts from the start of the first match, not from the wait
                // for it, and a rejoin does not extend it.
                if self.end_at.is_none() {
                    self.end_at = now.checked_add(self.config.play_for);
                }
                self.apply(Cue::Started, now);
            }
            SessionEvent::Snapshot {
                tick,
                ack_seq,
                baseline,
                payload,
            } => {
                self.m().snapshots += 1;
                self.room.last_tick = self.room.last_tick.max(tick);
                self.arrival(now);
                if let Some(rtt) = self.room.inputs.ack(ack_seq, now) {
                    self.rtt(rtt);
                }
                let decoded = match self.room.game.as_mut() {
                    Some(game) => game.on_snapshot(tick, baseline, &payload),
                    None => Ok(()),
                };
                self.bad_data(decoded.err());
            }
            SessionEvent::Frame { n, inputs } => self.on_frame(n, &inputs, now),
            SessionEvent::Desync { frame } => {
                self.m().desyncs += 1;
                warn!(bot = self.config.index, frame, "desync reported");
            }
            SessionEvent::Message { payload } => {
                let answer = match self.room.game.as_mut() {
                    Some(game) => game.on_message(&payload),
                    None => Ok(None),
                };
                match answer {
                    Ok(Some(bytes)) if self.phase.plays() => {
                        let delay = self.uplink_delay();
                        self.room
                            .outbound
                            .push(now, delay, Outgoing::Message { bytes });
                    }
                    Ok(_) => {}
                    Err(e) => self.bad_data(Some(e)),
                }
            }
            SessionEvent::Refused { .. } => self.m().refused += 1,
            SessionEvent::MatchEnded { result } => {
                self.m().matches_ended += 1;
                let read = match self.room.game.as_mut() {
                    Some(game) => game.on_match_ended(&result),
                    None => Ok(()),
                };
                self.bad_data(read.err());
                self.outcome.match_result = Some(result);
                self.apply(Cue::MatchEnded, now);
            }
            SessionEvent::Pong { rtt } => record(&mut self.outcome.measurements.pong, rtt),
            SessionEvent::Reconnect { .. } => {}
            SessionEvent::Disconnected { code } => {
                self.room.jitter.reset();
                let cue = match code {
                    Some(ErrorCode::RoomMoved) => Cue::RoomMoved,
                    _ => Cue::Disconnected,
                };
                self.apply(cue, now);
            }
            SessionEvent::Closed { code } => {
                self.closed_at = Some(now);
                self.apply(Cue::Closed(code), now);
            }
        }
    }

    fn on_joined(&mut self, w: Welcome, now: Instant) {
        if self.room.welcome.is_some() {
            return;
        }
        self.outcome.joined = true;
        self.outcome.room_id.get_or_insert(w.room_id);
        self.joined_at.get_or_insert(now);
        self.closed_at = None;
        let hz = f64::from(w.tick_rate_hz.max(1));
        self.room.jitter = IntervalJitter::new(Duration::from_secs_f64(1.0 / hz));
        self.room.game = Some((self.factory)(&w, &self.config.mode));
        self.room.welcome = Some(w);
        self.apply(Cue::Joined, now);
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
            // A gap: a sim cannot follow any more, so stop feeding it rather than lie.
            warn!(bot = self.config.index, frame = n, last, "frame gap");
            self.m().lost_frames += n - last - 1;
            self.m().bad_data += 1;
            self.room.frames_in_order = false;
        }
        self.room.last_frame = n;
        if !self.room.frames_in_order {
            return;
        }
        let Some(game) = self.room.game.as_mut() else {
            return;
        };
        match game.on_frame(n, inputs) {
            Ok(Some(hash)) if n.is_multiple_of(CHECKSUM_INTERVAL_FRAMES) && self.phase.plays() => {
                let delay = self.uplink_delay();
                self.room
                    .outbound
                    .push(now, delay, Outgoing::Checksum { frame: n, hash });
            }
            Ok(_) => {}
            Err(e) => self.bad_data(Some(e)),
        }
    }

    /// Counts server data the game could not read.
    fn bad_data(&mut self, error: Option<tickroom_game::GameError>) {
        if let Some(e) = error {
            debug!(bot = self.config.index, "bad game data: {e}");
            self.m().bad_data += 1;
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

    fn chaos(&mut self, driver: &mut SessionDriver, now: Instant) {
        let p = self.config.drop_per_s.clamp(0.0, 1.0);
        if !self.phase.plays() || !self.rng.random_bool(p) {
            return;
        }
        debug!(bot = self.config.index, "chaos: dropping the connection");
        self.m().drops += 1;
        driver.drop_connection();
        self.apply(Cue::Disconnected, now);
    }

    /// Keeps the swarm's live gauge in step with this bot.
    fn set_live(&mut self, live: bool) {
        if self.counted_live != live {
            self.counted_live = live;
            add_in_room(&self.live, if live { 1 } else { -1 });
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
