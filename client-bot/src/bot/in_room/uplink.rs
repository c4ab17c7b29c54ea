//! What a bot sends, through the uplink side of the link conditioner: state-sync inputs on
//! the input clock, one lockstep input per frame, checksums and answers to custom messages,
//! each held in the room's outbound queue until due and handed to the session while game
//! traffic flows.

use std::time::{Duration, Instant};

use tickroom_protocol::connect::SessionDriver;
use tickroom_protocol::SyncKind;

use super::{Bot, Outgoing};

impl Bot {
    /// State sync: queues the inputs due at `now`, one per input period while inputs flow.
    pub(super) fn queue_state_inputs(&mut self, now: Instant) {
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
    }

    /// The state-sync input period while inputs flow.
    pub(super) fn input_period(&self) -> Option<Duration> {
        let w = self.room.welcome.as_ref()?;
        if w.sync != SyncKind::State || !self.phase.sends_inputs() {
            return None;
        }
        match self.config.input_hz.unwrap_or(u32::from(w.tick_rate_hz)) {
            0 => None,
            hz => Some(Duration::from_secs_f64(1.0 / f64::from(hz))),
        }
    }

    fn queue_state_input(&mut self, now: Instant) {
        let Some(game) = self.room.game.as_mut() else {
            return;
        };
        let bytes = game.next_input(&mut self.rng);
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
    pub(super) fn queue_frame_input(&mut self, now: Instant) {
        if self.room.sync() != Some(SyncKind::Lockstep) || !self.phase.plays() {
            return;
        }
        let next = match (self.room.last_frame, self.room.start_tick) {
            (0, Some(start)) => start.max(1),
            (0, None) => return,
            (last, _) => last + 1,
        };
        if next <= self.room.last_input_frame {
            return;
        }
        let Some(game) = self.room.game.as_mut() else {
            return;
        };
        let bytes = game.frame_input(next, &mut self.rng);
        self.room.last_input_frame = next;
        self.room.frames.sent(next, now);
        let delay = self.uplink_delay();
        self.room
            .outbound
            .push(now, delay, Outgoing::FrameInput { frame: next, bytes });
    }

    /// Delay of a reliable uplink message (never lost).
    pub(super) fn uplink_delay(&mut self) -> Duration {
        match self.up.as_mut() {
            Some(link) => link.delay(&mut self.rng),
            None => Duration::ZERO,
        }
    }

    /// Hands a due message to the session; dropped unless game traffic flows (the session
    /// would ignore it).
    pub(super) fn deliver(&mut self, driver: &mut SessionDriver, msg: Outgoing) {
        if !self.phase.plays() {
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
            Outgoing::Message { bytes } => driver.send_message(bytes),
        }
    }
}
