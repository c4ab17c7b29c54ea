//! The pool of room worker threads: rooms are spread over them by id, and each worker's queue
//! is a bounded crossbeam channel.

use std::sync::Arc;
use std::thread::JoinHandle;

use crossbeam_channel::{bounded, Sender, TrySendError};

use super::input::{RoomId, RoomInput};
use super::worker;
use crate::Shared;

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
