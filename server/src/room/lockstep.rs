//! Lockstep frame synchronisation for any `LockstepGame`: each tick the room closes frame N
//! with every player's input (an empty input for a player who missed the deadline), queues it
//! for everyone and keeps the frame log for late joiners and resumes, who get it in paced
//! chunks (a tick at a time) rather than all at once.
//!
//! Desyncs: with the mode's `server_sim` the room steps the game itself and a player whose
//! checksum differs from the server's gets `Desync` (only that player). Without it the room
//! only relays, and once every seated player reported a frame, a strict majority decides: the
//! players off it get `Desync`. Without a strict majority (two players who disagree) nobody
//! can be blamed: the disagreement is counted and logged, and nobody is told.
//!
//! Spectators get the same frame log, paced the same way, but only up to the mode's
//! `spectator_delay_ms` behind the newest closed frame; once the match is over they get the
//! rest at once.
//!
//! Gated (a room that fails over): a closed frame is sent to nobody until it is stored in the
//! directory (`frames_to_persist`, then `release_frames`), so every frame a player ever saw
//! is one the server taking the room over has too: no confirmed frame is lost, and nobody
//! sees a frame number closed twice with other inputs.

use std::collections::{BTreeMap, VecDeque};

use bytes::Bytes;
use serde_bytes::ByteBuf;
use tickroom_game::{Ctx, GameError, LockstepGame, Message, Player, Refusal, Setup};
use tickroom_protocol::{ServerMsg, SyncKind};
use tracing::warn;

use super::sim::{Delivery, Outbound, Sim, To};

/// How far ahead of the open frame an input may be sent.
pub const MAX_FRAMES_AHEAD: u64 = 64;
/// Catch-up sends at least this many logged frames per tick to a player behind...
pub const CATCH_UP_MIN_FRAMES_PER_TICK: u64 = 2;
/// ...and more, up to this many bytes per tick.
pub const CATCH_UP_BYTES_PER_TICK: usize = 32 * 1024;
/// How many frames of checksums are kept for comparison.
pub const CHECKSUM_HISTORY_FRAMES: u64 = 1024;

/// The lockstep part of a room running game `G`.
pub struct LockstepSim<G: LockstepGame> {
    /// The server's copy of the game: it always runs the hooks, and steps only with
    /// `server_sim`.
    game: G,
    server_sim: bool,
    ctx: Ctx<G::ServerMessage>,
    /// The frame the next tick closes (frames start at 1).
    next_frame: u64,
    /// Per slot: inputs for upcoming frames, in frame order.
    pending: Vec<VecDeque<(u64, Vec<u8>)>>,
    /// Encoded `Frame` messages back to back; frame n spans `offsets[n-1]..offsets[n]`.
    log: Vec<u8>,
    offsets: Vec<usize>,
    /// `server_sim`: the server's checksum after each recent frame.
    server_checksums: VecDeque<(u64, u64)>,
    /// Per slot: the next logged frame to send while the player catches up (None: live).
    catching_up: Vec<Option<u64>>,
    /// Relay: the checksums reported for each recent frame, (slot, hash).
    reports: BTreeMap<u64, Vec<(u8, u64)>>,
    /// Slots already told they desynced (told once per seat).
    desynced: Vec<bool>,
    /// Seats taken: a relay judges a frame once every seated player reported it.
    seated: Vec<bool>,
    decoded: Vec<G::Input>,
    /// Spectators by index: the next logged frame to send (`None`: none there, or away).
    watchers: Vec<Option<u64>>,
    /// How many frames behind the newest closed one spectators are kept.
    spectator_delay: u64,
    /// Gated: frames are sent only once stored (see the module docs).
    gated: bool,
    /// Gated: the newest frame stored, which may be sent.
    released: u64,
    /// Gated: the first frame not yet handed out to be stored.
    unstored: u64,
}

impl<G: LockstepGame> LockstepSim<G> {
    /// An empty frame log; `server_sim` makes the room step the game too.
    pub fn new(setup: &Setup<'_, G::Params>, server_sim: bool) -> LockstepSim<G> {
        let players = usize::from(setup.max_players);
        LockstepSim {
            game: G::create(setup),
            server_sim,
            ctx: Ctx::default(),
            next_frame: 1,
            pending: (0..players).map(|_| VecDeque::new()).collect(),
            log: Vec::new(),
            offsets: vec![0],
            server_checksums: VecDeque::new(),
            catching_up: vec![None; players],
            reports: BTreeMap::new(),
            desynced: vec![false; players],
            seated: vec![false; players],
            decoded: Vec::with_capacity(players),
            watchers: Vec::new(),
            spectator_delay: 0,
            gated: false,
            released: 0,
            unstored: 1,
        }
    }

    /// A room taken over from another server: the frame log as it stored it (the encoded
    /// `Frame` messages of frames 1, 2, ...), every frame of it already sent; with
    /// `server_sim` the game is stepped through them again. (Its new owner gates it, as the
    /// old one did: `RoomCore::fail_over`.)
    pub fn restored(
        setup: &Setup<'_, G::Params>,
        server_sim: bool,
        frames: &[Vec<u8>],
    ) -> Result<LockstepSim<G>, GameError> {
        let mut sim = LockstepSim::new(setup, server_sim);
        let mut ignored = Outbound::default();
        for bytes in frames {
            let Ok(ServerMsg::Frame { n, inputs }) = tickroom_protocol::codec::decode_server(bytes)
            else {
                return Err(GameError::Invalid("a stored frame does not decode"));
            };
            if n != sim.next_frame || inputs.len() != sim.pending.len() {
                return Err(GameError::Invalid("the stored frame log has a gap"));
            }
            if sim.server_sim {
                sim.step_server_copy(n, &inputs, &mut ignored);
            }
            sim.log.extend_from_slice(bytes);
            sim.offsets.push(sim.log.len());
            sim.next_frame += 1;
        }
        Ok(sim)
    }

    /// The newest frame that may be sent: the newest closed one, or when gated the newest
    /// stored one.
    fn sendable(&self) -> u64 {
        match self.gated {
            true => self.released,
            false => self.next_frame - 1,
        }
    }

    /// Keeps spectators `frames` frames behind the newest closed frame.
    pub fn with_spectator_delay(mut self, frames: u64) -> LockstepSim<G> {
        self.spectator_delay = frames;
        self
    }

    /// Starts sending `slot` the logged frames after `last_frame` (a resume, or a late joiner
    /// from 0): the first chunk now, then one chunk per tick, so a long log does not land in
    /// the player's outbox at once (it would be cut as a slow consumer).
    fn catch_up(&mut self, slot: u8, last_frame: u64, out: &mut Outbound) {
        let Some(next) = self.catching_up.get_mut(usize::from(slot)) else {
            return;
        };
        *next = Some(last_frame.saturating_add(1));
        self.send_catch_up_chunk(slot, out);
    }

    /// Sends `slot` its next chunk of the frame log: at least `CATCH_UP_MIN_FRAMES_PER_TICK`
    /// frames, then more up to `CATCH_UP_BYTES_PER_TICK`; done once it reaches the newest.
    fn send_catch_up_chunk(&mut self, slot: u8, out: &mut Outbound) {
        let closed = self.sendable();
        let Some(Some(from)) = self.catching_up.get(usize::from(slot)).copied() else {
            return;
        };
        let n = self.send_log(from, closed, To::Slot(slot), false, out);
        self.catching_up[usize::from(slot)] = (n <= closed).then_some(n);
    }

    /// Sends `to` the logged frames from `from` up to `upto`, at most one chunk (at least
    /// `CATCH_UP_MIN_FRAMES_PER_TICK` frames, then more up to `CATCH_UP_BYTES_PER_TICK`),
    /// or all of them when `whole`. Returns the next frame to send.
    fn send_log(&self, mut n: u64, upto: u64, to: To, whole: bool, out: &mut Outbound) -> u64 {
        let (mut frames, mut bytes) = (0u64, 0usize);
        while n <= upto
            && (whole || frames < CATCH_UP_MIN_FRAMES_PER_TICK || bytes < CATCH_UP_BYTES_PER_TICK)
        {
            let (start, end) = (self.offsets[(n - 1) as usize], self.offsets[n as usize]);
            let frame = Bytes::copy_from_slice(&self.log[start..end]);
            bytes += frame.len();
            out.sends.push((to, frame, Delivery::Reliable));
            frames += 1;
            n += 1;
        }
        n
    }

    /// Sends frames `from..=upto`, newly sendable: to every player that is live, from the log
    /// to those still catching up (in order), and on to the spectators.
    fn send_new(&mut self, from: u64, upto: u64, out: &mut Outbound) {
        self.feed_spectators(out);
        let live = self.catching_up.iter().all(Option::is_none);
        for n in from..=upto {
            let (start, end) = (self.offsets[(n - 1) as usize], self.offsets[n as usize]);
            let bytes = Bytes::copy_from_slice(&self.log[start..end]);
            if live {
                out.sends.push((To::Players, bytes, Delivery::Reliable));
                continue;
            }
            for slot in 0..self.catching_up.len() as u8 {
                if self.catching_up[usize::from(slot)].is_none() {
                    out.sends
                        .push((To::Slot(slot), bytes.clone(), Delivery::Reliable));
                }
            }
        }
        // A player still catching up gets the new frames from the log, in order.
        for slot in 0..self.catching_up.len() as u8 {
            if self.catching_up[usize::from(slot)].is_some() {
                self.send_catch_up_chunk(slot, out);
            }
        }
    }

    /// Sends each spectator its next chunk of the log, up to the delay.
    fn feed_spectators(&mut self, out: &mut Outbound) {
        let upto = self.sendable().saturating_sub(self.spectator_delay);
        for index in 0..self.watchers.len() {
            if let Some(from) = self.watchers[index] {
                self.watchers[index] =
                    Some(self.send_log(from, upto, To::Spectator(index), false, out));
            }
        }
    }

    fn flag(&mut self, slot: u8, frame: u64, out: &mut Outbound) {
        let Some(told) = self.desynced.get_mut(usize::from(slot)) else {
            return;
        };
        if !*told {
            *told = true;
            out.counters.desyncs += 1;
            warn!(frame, slot, "lockstep desync");
            out.send(
                To::Slot(slot),
                &ServerMsg::Desync { frame },
                Delivery::Reliable,
            );
        }
    }

    /// Steps the server's copy through the frame just closed and records its checksum.
    fn step_server_copy(&mut self, frame: u64, inputs: &[ByteBuf], out: &mut Outbound) {
        self.decoded.clear();
        self.decoded.extend(
            inputs
                .iter()
                .map(|b| G::decode_input(b).unwrap_or_default()),
        );
        self.game.step(frame, &self.decoded);
        self.server_checksums
            .push_back((frame, self.game.checksum()));
        if self.server_checksums.len() as u64 > CHECKSUM_HISTORY_FRAMES {
            self.server_checksums.pop_front();
        }
        self.ctx.set_tick(frame);
        self.game.on_frame(frame, &mut self.ctx);
        out.take_ctx(&mut self.ctx);
    }
}

/// What a relay makes of every seated player's checksum for one frame.
#[derive(Debug, PartialEq, Eq)]
enum Verdict {
    /// Everyone agrees.
    Agree,
    /// A strict majority agrees; these are the other hashes (their players desynced).
    Minority(Vec<u64>),
    /// They disagree and no hash has a strict majority (two players, or an even split):
    /// nobody can be blamed.
    Undecided,
}

fn judge(reports: &[(u8, u64)]) -> Verdict {
    let mut counts: Vec<(u64, usize)> = Vec::new();
    for (_, h) in reports {
        match counts.iter_mut().find(|(x, _)| x == h) {
            Some((_, n)) => *n += 1,
            None => counts.push((*h, 1)),
        }
    }
    if counts.len() < 2 {
        return Verdict::Agree;
    }
    match counts.iter().find(|(_, n)| 2 * n > reports.len()) {
        Some((majority, _)) => Verdict::Minority(
            counts
                .iter()
                .map(|(h, _)| *h)
                .filter(|h| h != majority)
                .collect(),
        ),
        None => Verdict::Undecided,
    }
}

impl<G: LockstepGame> Sim for LockstepSim<G> {
    fn sync(&self) -> SyncKind {
        SyncKind::Lockstep
    }

    fn current_tick(&self) -> u64 {
        self.next_frame
    }

    fn join_attempt(&self, player: &Player<'_>) -> Result<(), Refusal> {
        self.game.join_attempt(player)
    }

    fn join(&mut self, player: &Player<'_>, out: &mut Outbound) {
        let slot = usize::from(player.slot);
        if let Some(q) = self.pending.get_mut(slot) {
            q.clear();
        }
        if let Some(d) = self.desynced.get_mut(slot) {
            *d = false;
        }
        if let Some(s) = self.seated.get_mut(slot) {
            *s = true;
        }
        // A late joiner gets the log from frame 1.
        self.catch_up(player.slot, 0, out);
        self.ctx.set_tick(self.next_frame);
        self.game.on_join(player, &mut self.ctx);
        out.take_ctx(&mut self.ctx);
    }

    fn leave(&mut self, slot: u8, out: &mut Outbound) {
        if let Some(s) = self.seated.get_mut(usize::from(slot)) {
            *s = false;
        }
        if let Some(c) = self.catching_up.get_mut(usize::from(slot)) {
            *c = None;
        }
        self.game.on_leave(slot, &mut self.ctx);
        out.take_ctx(&mut self.ctx);
    }

    fn drop_connection(&mut self, slot: u8, out: &mut Outbound) {
        // A resume says where the player is; until then nothing is sent to it.
        if let Some(c) = self.catching_up.get_mut(usize::from(slot)) {
            *c = None;
        }
        self.game.on_drop(slot, &mut self.ctx);
        out.take_ctx(&mut self.ctx);
    }

    fn resume(&mut self, slot: u8, last_frame: u64, out: &mut Outbound) {
        self.catch_up(slot, last_frame, out);
        self.game.on_resume(slot, &mut self.ctx);
        out.take_ctx(&mut self.ctx);
    }

    fn input(&mut self, _: u8, _: u64, _: u64, _: &[ByteBuf], out: &mut Outbound) {
        out.counters.dropped_inputs += 1;
    }

    /// Stores a player's input for an upcoming frame; late or far-future inputs are dropped.
    fn frame_input(&mut self, slot: u8, frame: u64, input: Vec<u8>, out: &mut Outbound) {
        let Some(queue) = self.pending.get_mut(usize::from(slot)) else {
            return;
        };
        if frame < self.next_frame {
            out.counters.late_frame_inputs += 1;
            return;
        }
        // Input size is bounded by the mode at the connection, before the room queue.
        if frame >= self.next_frame + MAX_FRAMES_AHEAD {
            out.counters.dropped_inputs += 1;
            return;
        }
        match queue.binary_search_by_key(&frame, |(f, _)| *f) {
            Ok(i) => queue[i].1 = input,
            Err(i) => queue.insert(i, (frame, input)),
        }
    }

    /// Compares a player's checksum for a closed frame with the server's (server sim) or with
    /// the other players' reports (relay: a strict majority, once all seated players reported).
    fn checksum(&mut self, slot: u8, frame: u64, hash: u64, out: &mut Outbound) {
        if frame == 0 || frame >= self.next_frame {
            return;
        }
        let floor = self.next_frame.saturating_sub(CHECKSUM_HISTORY_FRAMES);
        if frame < floor {
            return;
        }
        if self.server_sim {
            let ours = self
                .server_checksums
                .iter()
                .find(|(f, _)| *f == frame)
                .map(|(_, h)| *h);
            if ours.is_some_and(|h| h != hash) {
                self.flag(slot, frame, out);
            }
            return;
        }
        let reports = self.reports.entry(frame).or_default();
        if reports.iter().any(|(s, _)| *s == slot) {
            return;
        }
        reports.push((slot, hash));
        // Judge once every seated player reported this frame.
        if reports.len() < self.seated.iter().filter(|s| **s).count() {
            return;
        }
        match judge(reports) {
            Verdict::Agree => {}
            Verdict::Minority(minority) => {
                let offenders: Vec<u8> = reports
                    .iter()
                    .filter(|(_, h)| minority.contains(h))
                    .map(|(s, _)| *s)
                    .collect();
                for s in offenders {
                    self.flag(s, frame, out);
                }
            }
            Verdict::Undecided => {
                // Telling both would let any player make every room cry desync.
                out.counters.checksum_disagreements += 1;
                warn!(frame, reports = ?reports, "lockstep checksums disagree; nobody can be blamed");
            }
        }
        while self
            .reports
            .first_key_value()
            .is_some_and(|(f, _)| *f < floor)
        {
            self.reports.pop_first();
        }
    }

    fn message(&mut self, slot: u8, payload: &[u8], out: &mut Outbound) -> Result<(), GameError> {
        let msg = <G::ClientMessage as Message>::decode(payload)?;
        self.ctx.set_tick(self.next_frame);
        self.game.on_message(slot, msg, &mut self.ctx);
        out.take_ctx(&mut self.ctx);
        Ok(())
    }

    /// Closes the open frame and queues it for everyone.
    fn tick(&mut self, _connected: &[bool], out: &mut Outbound) {
        let frame = self.next_frame;
        let inputs: Vec<ByteBuf> = self
            .pending
            .iter_mut()
            .map(|queue| {
                while queue.front().is_some_and(|(f, _)| *f < frame) {
                    queue.pop_front();
                }
                match queue.front() {
                    Some((f, _)) if *f == frame => {
                        ByteBuf::from(queue.pop_front().map(|(_, i)| i).unwrap_or_default())
                    }
                    _ => ByteBuf::new(),
                }
            })
            .collect();
        if self.server_sim {
            self.step_server_copy(frame, &inputs, out);
        }
        let bytes = out.encode(&ServerMsg::Frame { n: frame, inputs });
        self.log.extend_from_slice(&bytes);
        self.offsets.push(self.log.len());
        self.next_frame += 1;
        if self.gated {
            // Sent once stored (`release_frames`).
            return;
        }
        self.send_new(frame, frame, out);
    }

    fn gate_frames(&mut self) {
        self.gated = true;
        self.released = self.next_frame - 1;
        self.unstored = self.next_frame;
    }

    fn frames_to_persist(&mut self) -> Vec<(u64, Vec<u8>)> {
        if !self.gated {
            return Vec::new();
        }
        let closed = self.next_frame - 1;
        let frames = (self.unstored..=closed)
            .map(|n| {
                let (start, end) = (self.offsets[(n - 1) as usize], self.offsets[n as usize]);
                (n, self.log[start..end].to_vec())
            })
            .collect();
        self.unstored = closed + 1;
        frames
    }

    fn release_frames(&mut self, upto: u64, out: &mut Outbound) {
        let upto = upto.min(self.next_frame - 1);
        if !self.gated || upto <= self.released {
            return;
        }
        let from = self.released + 1;
        self.released = upto;
        self.send_new(from, upto, out);
    }

    fn watch(&mut self, index: usize, last_frame: u64, out: &mut Outbound) {
        if self.watchers.len() <= index {
            self.watchers.resize(index + 1, None);
        }
        let upto = self.sendable().saturating_sub(self.spectator_delay);
        let from = last_frame.saturating_add(1);
        self.watchers[index] = Some(self.send_log(from, upto, To::Spectator(index), false, out));
    }

    fn unwatch(&mut self, index: usize) {
        if let Some(w) = self.watchers.get_mut(index) {
            *w = None;
        }
    }

    fn release_spectators(&mut self, out: &mut Outbound) {
        let closed = self.next_frame - 1;
        for index in 0..self.watchers.len() {
            if let Some(from) = self.watchers[index].take() {
                self.send_log(from, closed, To::Spectator(index), true, out);
            }
        }
    }

    fn time_up(&mut self, out: &mut Outbound) {
        self.game.on_time_up(&mut self.ctx);
        out.take_ctx(&mut self.ctx);
    }

    fn save(&self, out: &mut Vec<u8>) -> u16 {
        self.game.save(out);
        G::SAVE_VERSION
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_strict_majority_blames_the_others_and_a_tie_blames_nobody() {
        let check = |reports: &[(u8, u64)], expect: Verdict| {
            assert_eq!(judge(reports), expect, "{reports:?}");
        };
        check(&[], Verdict::Agree);
        check(&[(0, 7)], Verdict::Agree);
        check(&[(0, 7), (1, 7)], Verdict::Agree);
        check(&[(0, 7), (1, 8)], Verdict::Undecided);
        check(&[(0, 7), (1, 7), (2, 8)], Verdict::Minority(vec![8]));
        check(
            &[(0, 7), (1, 9), (2, 7), (3, 7)],
            Verdict::Minority(vec![9]),
        );
        check(&[(0, 7), (1, 9), (2, 7), (3, 8)], Verdict::Undecided);
        check(&[(0, 7), (1, 7), (2, 8), (3, 8)], Verdict::Undecided);
    }
}
