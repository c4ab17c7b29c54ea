//! What connections send to rooms: the closed `RoomInput` enum, and the ids and seat data that
//! travel with it.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use serde_bytes::ByteBuf;
use tickroom_game::modes::ModeConfig;
use tickroom_game::PlayerMetadata;
use tickroom_protocol::ErrorCode;
use tokio::sync::oneshot;

use crate::outbox::Outbox;
use crate::SessionRecord;

/// Identifies a room across the cluster.
pub type RoomId = u64;
/// Identifies a player's session on one room server.
pub type SessionId = u64;

/// What the connection knows when it asks a room to seat a player; the room completes the
/// `Welcome` and queues it itself, so it goes out before any catch-up traffic.
#[derive(Debug, Clone)]
pub struct Seating {
    pub session_id: SessionId,
    pub player_id: u64,
    /// Successful resumes so far (the client derives its next resume key from it).
    pub resume_counter: u32,
    pub next_seq: u64,
    /// What the gateway put in the ticket (empty on resume: the room kept it).
    pub metadata: PlayerMetadata,
    /// A spectator's ticket: watch, outside the seats (false on resume: the room knows).
    pub spectator: bool,
}

/// Where a player was seated (`SPECTATOR_SLOT` for a spectator).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Seated {
    pub slot: u8,
}

/// Why a room refused to seat a player: the code, and a line for the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeatRefusal {
    pub code: ErrorCode,
    pub detail: String,
}

impl From<ErrorCode> for SeatRefusal {
    fn from(code: ErrorCode) -> Self {
        SeatRefusal {
            code,
            detail: code.to_string(),
        }
    }
}

/// Reply channel for joins and resumes.
pub type SeatReply = oneshot::Sender<Result<Seated, SeatRefusal>>;

/// What an operator asks of one room (`RoomInput::Admin`, from the admin API).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AdminOp {
    /// Who sits where.
    Seats,
    /// Removes a player: `Kicked{code}`, then the connection closes with `code`.
    Kick { player_id: u64, code: ErrorCode },
    /// Ends the room now: its players get `Kicked{RoomClosed}`.
    Close,
}

/// A room's answer to an `AdminOp`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AdminAnswer {
    /// The seats (`AdminOp::Seats`).
    Seats(RoomSeats),
    /// Done (kick, close).
    Done,
    /// No such player is seated.
    NoPlayer,
    /// The worker runs no such room (or it ended meanwhile).
    NoRoom,
}

/// A running room's seats, for operators.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoomSeats {
    /// The game's current tick (state) or next frame (lockstep).
    pub tick: u64,
    /// Whether the match started.
    pub started: bool,
    /// Occupied seats, by slot.
    pub seats: Vec<SeatView>,
}

/// One occupied seat.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SeatView {
    pub slot: u8,
    pub player_id: u64,
    /// False while the player is disconnected (in grace).
    pub connected: bool,
}

/// Every message a room accepts (a closed set).
#[derive(Debug)]
pub enum RoomInput {
    /// Seat a new player (verified ticket); creates the room on its first ticket. The room's
    /// worker records `session` in the session table once the player is seated.
    Join {
        room_id: RoomId,
        mode: Arc<ModeConfig>,
        seating: Box<Seating>,
        session: Arc<SessionRecord>,
        outbox: Arc<Outbox>,
        reply: SeatReply,
    },
    /// Re-attach a session to a new connection and send what it missed.
    Resume {
        room_id: RoomId,
        seating: Box<Seating>,
        last_frame: u64,
        outbox: Arc<Outbox>,
        reply: SeatReply,
    },
    /// The connection behind `outbox` dropped; keep the seat for the grace period.
    Detach {
        room_id: RoomId,
        session_id: SessionId,
        outbox: Arc<Outbox>,
    },
    /// The player left for good.
    Leave {
        room_id: RoomId,
        session_id: SessionId,
    },
    /// State-sync input with redundancy (see `ClientMsg::Input`).
    Input {
        room_id: RoomId,
        session_id: SessionId,
        tick: u64,
        ack_tick: u64,
        inputs: Vec<ByteBuf>,
        /// When the connection received it (for the input-to-ack wait metric).
        received: std::time::Instant,
    },
    /// Lockstep input for one frame.
    FrameInput {
        room_id: RoomId,
        session_id: SessionId,
        frame: u64,
        input: Vec<u8>,
    },
    /// Lockstep checksum report.
    Checksum {
        room_id: RoomId,
        session_id: SessionId,
        frame: u64,
        hash: u64,
    },
    /// A custom message for the game (size and rate already checked by the connection).
    Message {
        room_id: RoomId,
        session_id: SessionId,
        seq: u64,
        payload: Vec<u8>,
    },
    /// An operator's request about one room (admin API); the answer goes to `reply`.
    Admin {
        room_id: RoomId,
        op: AdminOp,
        reply: oneshot::Sender<AdminAnswer>,
    },
    /// Take over a room whose owner died, from its image (a resume of one of its sessions
    /// asked for it); nothing happens when the worker already runs the room. `epoch` is the
    /// room's epoch now that it belongs to this server.
    Restore {
        room_id: RoomId,
        epoch: u64,
        image: Box<super::image::RoomImage>,
        /// Lockstep: the stored frame log.
        frames: Vec<Vec<u8>>,
        reply: oneshot::Sender<Result<(), ErrorCode>>,
    },
    /// Lockstep: the room's frames up to `upto` are stored; send them.
    FramesStored { room_id: RoomId, upto: u64 },
    /// The server is shutting down: hand every failover room to another server (hold it and
    /// send its image to the process role, which moves it).
    HandOff,
    /// The room was handed to another server: end this copy, its players told `RoomMoved`.
    HandedOff { room_id: RoomId },
    /// Whether this server still owns a failover room, as the directory answered its image
    /// (fenced by the room's epoch): a room that moved ends with `RoomMoved`; a held room that
    /// is still ours ticks again.
    Ownership { room_id: RoomId, owned: bool },
    /// Close every room (server shutdown) and stop the worker.
    Shutdown,
}

/// The bytes a worker's queue holds, taken by senders and given back by the worker.
#[derive(Debug)]
pub struct QueueBytes {
    used: AtomicUsize,
    max: usize,
}

impl QueueBytes {
    /// An empty budget of `max` bytes.
    pub fn new(max: usize) -> QueueBytes {
        QueueBytes {
            used: AtomicUsize::new(0),
            max,
        }
    }

    /// Takes `n` bytes if they fit under the bound.
    pub fn try_take(&self, n: usize) -> bool {
        self.used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| {
                used.checked_add(n).filter(|total| *total <= self.max)
            })
            .is_ok()
    }

    /// Takes `n` bytes whatever the bound (a message that must get through: shutdown).
    pub fn take(&self, n: usize) {
        self.used.fetch_add(n, Ordering::AcqRel);
    }

    /// Gives back what a dequeued message held.
    pub fn give_back(&self, n: usize) {
        self.used.fetch_sub(n, Ordering::AcqRel);
    }

    /// Bytes queued now.
    pub fn used(&self) -> usize {
        self.used.load(Ordering::Acquire)
    }
}

/// What every queued message costs besides its payload, in bytes (ids, channels, headers).
pub const QUEUED_MESSAGE_OVERHEAD_BYTES: usize = 64;

impl RoomInput {
    /// Whether the worker must see this at once rather than at its next tick: someone awaits
    /// the answer (a join, a resume, an operator) or the worker must stop. Everything else
    /// (inputs, frame inputs, checksums, custom messages, detaches, leaves) waits in the queue
    /// for the worker's next tick, which is when the room acts on it anyway: the worker wakes
    /// once per tick, not once per message.
    pub fn wakes_worker(&self) -> bool {
        matches!(
            self,
            RoomInput::Join { .. }
                | RoomInput::Resume { .. }
                | RoomInput::Admin { .. }
                | RoomInput::Restore { .. }
                | RoomInput::Ownership { .. }
                | RoomInput::FramesStored { .. }
                | RoomInput::HandOff
                | RoomInput::HandedOff { .. }
                | RoomInput::Shutdown
        )
    }

    /// Bytes this message holds while queued: the room queues are bounded by this as well as
    /// by count.
    pub fn weight(&self) -> usize {
        let payload = match self {
            RoomInput::Input { inputs, .. } => inputs
                .iter()
                .map(|i| i.len() + std::mem::size_of::<ByteBuf>())
                .sum(),
            RoomInput::FrameInput { input, .. } => input.len(),
            RoomInput::Message { payload, .. } => payload.len(),
            RoomInput::Join { .. }
            | RoomInput::Resume { .. }
            | RoomInput::Detach { .. }
            | RoomInput::Leave { .. }
            | RoomInput::Checksum { .. }
            | RoomInput::Admin { .. }
            | RoomInput::Restore { .. }
            | RoomInput::Ownership { .. }
            | RoomInput::FramesStored { .. }
            | RoomInput::HandOff
            | RoomInput::HandedOff { .. }
            | RoomInput::Shutdown => 0,
        };
        QUEUED_MESSAGE_OVERHEAD_BYTES + payload
    }
}
