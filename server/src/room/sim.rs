//! The seam between the generic room core and one game kind: `Sim` is what the core calls
//! (object-safe, so a worker can own rooms of many games), and `Outbound` is where a sim puts
//! what it wants sent. `StateSim<G>` and `LockstepSim<G>` implement it for any registered game.

use bytes::Bytes;
use serde_bytes::ByteBuf;
use tickroom_game::{Message, Player, Recipient, Refusal};
use tickroom_protocol::{codec, ServerMsg, SyncKind};
use tracing::warn;

/// How a message is delivered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    /// Queued in order; a connection that falls too far behind is a slow consumer.
    Reliable,
    /// A state snapshot: an unsent one is replaced by a newer one.
    Snapshot,
}

/// Counters a sim bumps; the worker adds them to the server's metrics.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct SimCounters {
    /// Lockstep inputs that arrived after their frame closed.
    pub late_frame_inputs: u64,
    /// Inputs dropped (too far ahead, too big).
    pub dropped_inputs: u64,
    /// Checksum mismatches found (one per desynced player and frame).
    pub desyncs: u64,
    /// Relay frames whose checksums disagreed with no strict majority to blame anyone.
    pub checksum_disagreements: u64,
}

/// Who a queued message is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum To {
    /// The player in this seat.
    Slot(u8),
    /// Every connected player (a game's broadcast: spectators are not players).
    Players,
    /// The spectator with this index in the room's spectator list.
    Spectator(usize),
}

impl From<Recipient> for To {
    fn from(to: Recipient) -> To {
        match to {
            Recipient::Slot(slot) => To::Slot(slot),
            Recipient::All => To::Players,
        }
    }
}

/// What a sim wants sent, and the match result once the game ended it. The core resolves
/// recipients to connections after each call.
#[derive(Debug, Default)]
pub struct Outbound {
    pub sends: Vec<(To, Bytes, Delivery)>,
    pub result: Option<Vec<u8>>,
    pub counters: SimCounters,
    buf: Vec<u8>,
}

impl Outbound {
    /// Encodes `msg` once into shareable bytes (empty on the impossible oversize case).
    pub fn encode(&mut self, msg: &ServerMsg) -> Bytes {
        match codec::encode_server(msg, &mut self.buf) {
            Ok(()) => Bytes::copy_from_slice(&self.buf),
            Err(e) => {
                // Only an oversize message can fail; it is a bug in the game, not the peer.
                warn!(error = %e, "cannot encode a server message");
                Bytes::new()
            }
        }
    }

    /// Queues `msg` for `to`.
    pub fn send(&mut self, to: To, msg: &ServerMsg, delivery: Delivery) {
        let bytes = self.encode(msg);
        self.sends.push((to, bytes, delivery));
    }

    /// Carries over what a game hook asked for through its `Ctx`.
    pub fn take_ctx<M: Message>(&mut self, ctx: &mut tickroom_game::Ctx<M>) {
        for (to, payload) in ctx.take_sends() {
            self.send(
                to.into(),
                &ServerMsg::Message { payload },
                Delivery::Reliable,
            );
        }
        if let Some(result) = ctx.take_result() {
            self.result.get_or_insert(result);
        }
    }
}

/// One game kind as the room core drives it. Every call may queue sends in `out`.
pub trait Sim: Send {
    /// State sync or lockstep.
    fn sync(&self) -> SyncKind;
    /// The current tick (state) or the next frame to close (lockstep).
    fn current_tick(&self) -> u64;
    /// Admission: may this player take this seat?
    fn join_attempt(&self, player: &Player<'_>) -> Result<(), Refusal>;
    /// The player took the seat (a late lockstep joiner gets the frame log from frame 1).
    fn join(&mut self, player: &Player<'_>, out: &mut Outbound);
    /// The player left for good.
    fn leave(&mut self, slot: u8, out: &mut Outbound);
    /// The player's connection was lost; the seat is kept.
    fn drop_connection(&mut self, slot: u8, out: &mut Outbound);
    /// The player is back on a new connection; send what it missed after `last_frame`.
    fn resume(&mut self, slot: u8, last_frame: u64, out: &mut Outbound);
    /// The seat's player came back with a new session (a fresh ticket, not a resume): its
    /// client numbers inputs from 1 again, so what the old session numbered is forgotten.
    fn new_session(&mut self, slot: u8) {
        let _ = slot;
    }
    /// Spectator `index` (re)attached, having frames up to `last_frame` (0: none): state
    /// sync sends it full snapshots of the spectator view from the next tick; lockstep sends
    /// it the frame log, then each frame once it is the mode's delay old.
    fn watch(&mut self, index: usize, last_frame: u64, out: &mut Outbound);
    /// Spectator `index` left or lost its connection: nothing more is sent to it.
    fn unwatch(&mut self, index: usize);
    /// Lockstep in a room that fails over: from now on a closed frame is sent only once it is
    /// stored (`frames_to_persist`, `release_frames`). Others ignore it.
    fn gate_frames(&mut self) {}
    /// The frames closed since the last call, to store (encoded `Frame` messages), when gated.
    fn frames_to_persist(&mut self) -> Vec<(u64, Vec<u8>)> {
        Vec::new()
    }
    /// The frames up to `upto` are stored: send them.
    fn release_frames(&mut self, upto: u64, out: &mut Outbound) {
        let _ = (upto, out);
    }
    /// The match is over: spectators get what they were still owed (lockstep: the delayed
    /// frames; the delay no longer protects anything).
    fn release_spectators(&mut self, out: &mut Outbound) {
        let _ = out;
    }
    /// State-sync input with redundancy, and the client's snapshot acknowledgement.
    fn input(&mut self, slot: u8, tick: u64, ack_tick: u64, inputs: &[ByteBuf], out: &mut Outbound);
    /// Lockstep input for one frame.
    fn frame_input(&mut self, slot: u8, frame: u64, input: Vec<u8>, out: &mut Outbound);
    /// Lockstep checksum report.
    fn checksum(&mut self, slot: u8, frame: u64, hash: u64, out: &mut Outbound);
    /// A custom message; bytes the game cannot decode are an error (the client is told).
    fn message(
        &mut self,
        slot: u8,
        payload: &[u8],
        out: &mut Outbound,
    ) -> Result<(), tickroom_game::GameError>;
    /// Under load the worker asks for snapshots on only every `divisor`-th tick (a power of
    /// two within the mode's floor; 1 = every tick). The game still steps every tick. Sims
    /// without snapshots (lockstep) ignore it.
    fn set_snapshot_divisor(&mut self, divisor: u32) {
        let _ = divisor;
    }
    /// One fixed tick; `connected[slot]` says who has a connection to send to.
    fn tick(&mut self, connected: &[bool], out: &mut Outbound);
    /// The match reached its duration.
    fn time_up(&mut self, out: &mut Outbound);
    /// The whole game state and its save version.
    fn save(&self, out: &mut Vec<u8>) -> u16;
}
