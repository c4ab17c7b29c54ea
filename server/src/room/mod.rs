//! Rooms: the `RoomInput` messages connections send to rooms, and the pool of worker threads
//! that own and tick them. Architecture invariant: a room has exactly one owner, the worker
//! thread it was created on; nothing else mutates it, and inputs reach it only through the
//! worker's bounded crossbeam channel.

mod lockstep;
mod state;
mod worker;

use std::sync::Arc;
use std::thread::JoinHandle;

use crossbeam_channel::{bounded, Sender, TrySendError};
use serde_bytes::ByteBuf;
use tickroom_game::modes::ModeConfig;
use tickroom_protocol::{ErrorCode, Secret};
use tokio::sync::oneshot;

use crate::outbox::Outbox;
use crate::Shared;

/// Identifies a room across the cluster.
pub type RoomId = u64;
/// Identifies a player's session on one room server.
pub type SessionId = u64;

/// What the connection knows when it asks a room to seat a player; the room completes the
/// `Welcome` and pushes it itself, so it is queued before any catch-up traffic.
#[derive(Debug, Clone)]
pub struct Seating {
    pub session_id: SessionId,
    pub player_id: u64,
    pub resume_secret: Secret,
    pub next_seq: u64,
}

/// Where a player was seated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Seated {
    pub slot: u8,
}

/// Reply channel for joins and resumes.
pub type SeatReply = oneshot::Sender<Result<Seated, ErrorCode>>;

/// Every message a room accepts (a closed set).
#[derive(Debug)]
pub enum RoomInput {
    /// Seat a new player (verified ticket); creates the room on its first ticket.
    Join {
        room_id: RoomId,
        mode: Arc<ModeConfig>,
        seating: Seating,
        outbox: Arc<Outbox>,
        reply: SeatReply,
    },
    /// Re-attach a session to a new connection and send what it missed.
    Resume {
        room_id: RoomId,
        seating: Seating,
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
    /// Close every room (server shutdown) and stop the worker.
    Shutdown,
}

/// The worker threads; rooms are spread over them by id.
#[derive(Debug)]
pub struct RoomPool {
    senders: Vec<Sender<RoomInput>>,
    threads: parking_lot::Mutex<Vec<JoinHandle<()>>>,
}

impl RoomPool {
    /// Starts `workers` threads, each with a queue of `queue_len` messages.
    pub fn start(shared: Arc<Shared>, workers: usize, queue_len: usize) -> RoomPool {
        let mut senders = Vec::new();
        let mut threads = Vec::new();
        for index in 0..workers.max(1) {
            let (tx, rx) = bounded(queue_len);
            let shared = shared.clone();
            let handle = std::thread::Builder::new()
                .name(format!("room-worker-{index}"))
                .spawn(move || worker::run(index, rx, shared))
                .expect("spawning a room worker thread");
            senders.push(tx);
            threads.push(handle);
        }
        RoomPool {
            senders,
            threads: parking_lot::Mutex::new(threads),
        }
    }

    /// Sends to the worker that owns `room_id`; a full queue returns the message back.
    pub fn try_send(&self, room_id: RoomId, msg: RoomInput) -> Result<(), TrySendError<RoomInput>> {
        self.sender(room_id).try_send(msg)
    }

    /// Messages waiting in each worker's queue.
    pub fn queue_depths(&self) -> Vec<usize> {
        self.senders.iter().map(|s| s.len()).collect()
    }

    /// Tells every worker to close its rooms and waits for the threads to end.
    pub fn shutdown(&self) {
        for s in &self.senders {
            let _ = s.send(RoomInput::Shutdown);
        }
        for t in self.threads.lock().drain(..) {
            let _ = t.join();
        }
    }

    fn sender(&self, room_id: RoomId) -> &Sender<RoomInput> {
        // Room ids are random, so their low bits spread rooms evenly.
        &self.senders[(room_id % self.senders.len() as u64) as usize]
    }
}
