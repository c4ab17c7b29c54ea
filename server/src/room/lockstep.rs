//! Lockstep frame synchronisation: each tick the room closes frame N with every player's
//! input (an empty input for a player who missed the deadline), broadcasts it, and keeps the
//! frame log for catch-up and late joiners. Checksum reports are compared to detect desyncs.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;

use serde_bytes::ByteBuf;
use tickroom_game::modes::ModeConfig;
use tickroom_protocol::ServerMsg;
use tracing::warn;

use super::worker::{push_reliable, Room, Sim};
use super::SessionId;
use crate::outbox::Outbox;
use crate::Shared;

/// How far ahead of the open frame an input may be sent.
pub const MAX_FRAMES_AHEAD: u64 = 64;
/// Largest lockstep input accepted, in bytes.
pub const MAX_FRAME_INPUT_BYTES: usize = 256;
/// How many frames of checksum reports are kept for comparison.
pub const CHECKSUM_HISTORY_FRAMES: u64 = 1024;

/// The lockstep part of a room.
pub(crate) struct LockstepSim {
    /// The frame the next tick closes (frames start at 1).
    next_frame: u64,
    /// Per slot: inputs for upcoming frames, in frame order.
    pending: Vec<VecDeque<(u64, Vec<u8>)>>,
    /// Encoded `Frame` messages back to back; frame n spans `offsets[n-1]..offsets[n]`.
    log: Vec<u8>,
    offsets: Vec<usize>,
    /// frame → (hash, reporting slot, desync already reported)
    checksums: BTreeMap<u64, (u64, u8, bool)>,
}

impl LockstepSim {
    /// An empty frame log for `mode`.
    pub fn new(mode: &ModeConfig) -> LockstepSim {
        LockstepSim {
            next_frame: 1,
            pending: (0..mode.players).map(|_| VecDeque::new()).collect(),
            log: Vec::new(),
            offsets: vec![0],
            checksums: BTreeMap::new(),
        }
    }

    /// The frame the next tick will close.
    pub fn next_frame(&self) -> u64 {
        self.next_frame
    }

    /// Stores a player's input for an upcoming frame; late or far-future inputs are dropped.
    pub fn input(
        room: &mut Room,
        session_id: SessionId,
        frame: u64,
        input: Vec<u8>,
        shared: &Shared,
    ) {
        let Room { seats, sim, .. } = room;
        let Sim::Lockstep(sim) = sim else { return };
        let Some(slot) = seats
            .iter()
            .position(|s| s.as_ref().is_some_and(|s| s.session_id == session_id))
        else {
            return;
        };
        if frame < sim.next_frame {
            shared.metrics.late_frame_inputs.inc();
            return;
        }
        if frame >= sim.next_frame + MAX_FRAMES_AHEAD || input.len() > MAX_FRAME_INPUT_BYTES {
            shared.metrics.dropped_inputs.inc();
            return;
        }
        let queue = &mut sim.pending[slot];
        match queue.binary_search_by_key(&frame, |(f, _)| *f) {
            Ok(i) => queue[i].1 = input,
            Err(i) => queue.insert(i, (frame, input)),
        }
    }

    /// Closes the open frame and broadcasts it.
    pub fn run_tick(room: &mut Room, shared: &Shared) {
        let Room {
            seats, sim, buf, ..
        } = room;
        let Sim::Lockstep(sim) = sim else { return };
        let frame = sim.next_frame;
        let inputs = sim
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
        let msg = ServerMsg::Frame { n: frame, inputs };
        if tickroom_protocol::codec::encode_server(&msg, buf).is_err() {
            return;
        }
        sim.log.extend_from_slice(buf);
        sim.offsets.push(sim.log.len());
        sim.next_frame += 1;
        let bytes = bytes::Bytes::copy_from_slice(buf);
        for seat in seats.iter().flatten() {
            if let Some(outbox) = &seat.outbox {
                push_reliable(outbox, bytes.clone(), shared);
            }
        }
    }

    /// Sends every logged frame after `last_frame` (a resume or a late joiner from 0).
    pub fn catch_up(room: &mut Room, outbox: &Arc<Outbox>, last_frame: u64, shared: &Shared) {
        let Sim::Lockstep(sim) = &room.sim else {
            return;
        };
        let closed = sim.next_frame - 1;
        for n in last_frame.saturating_add(1)..=closed {
            let (start, end) = (sim.offsets[(n - 1) as usize], sim.offsets[n as usize]);
            push_reliable(
                outbox,
                bytes::Bytes::copy_from_slice(&sim.log[start..end]),
                shared,
            );
        }
    }

    /// Compares a player's checksum for a closed frame with the first one reported.
    pub fn checksum(
        room: &mut Room,
        session_id: SessionId,
        frame: u64,
        hash: u64,
        shared: &Shared,
    ) {
        let room_id = room.id;
        let Some(slot) = room
            .seats
            .iter()
            .position(|s| s.as_ref().is_some_and(|s| s.session_id == session_id))
        else {
            return;
        };
        let Sim::Lockstep(sim) = &mut room.sim else {
            return;
        };
        if frame == 0 || frame >= sim.next_frame {
            return;
        }
        let floor = sim.next_frame.saturating_sub(CHECKSUM_HISTORY_FRAMES);
        if frame < floor {
            return;
        }
        let desync = match sim.checksums.get_mut(&frame) {
            None => {
                sim.checksums.insert(frame, (hash, slot as u8, false));
                false
            }
            Some((first, first_slot, reported)) if *first != hash && !*reported => {
                *reported = true;
                warn!(
                    room = room_id,
                    frame,
                    slot,
                    other_slot = *first_slot,
                    "lockstep desync"
                );
                true
            }
            Some(_) => false,
        };
        while sim
            .checksums
            .first_key_value()
            .is_some_and(|(f, _)| *f < floor)
        {
            sim.checksums.pop_first();
        }
        if desync {
            shared.metrics.desyncs.inc();
            room.broadcast_reliable(&ServerMsg::Desync { frame }, shared);
        }
    }
}
