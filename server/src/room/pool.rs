//! The pool of room worker threads: rooms are spread over them by id, and each worker's queue
//! is a bounded crossbeam channel. A worker sleeps until its next tick; only messages someone
//! awaits an answer to (`RoomInput::wakes_worker`) wake it earlier.

use std::sync::Arc;
use std::thread::JoinHandle;

use crossbeam_channel::{bounded, Receiver, Sender, TrySendError};

use super::input::{QueueBytes, RoomId, RoomInput};
use super::worker;
use crate::Shared;

/// The worker threads; rooms are spread over them by id.
#[derive(Debug)]
pub struct RoomPool {
    queues: Vec<WorkerQueue>,
    threads: parking_lot::Mutex<Vec<JoinHandle<()>>>,
}

/// One worker's queue: bounded by count (the channel) and by bytes (the budget).
#[derive(Debug)]
struct WorkerQueue {
    tx: Sender<RoomInput>,
    bytes: Arc<QueueBytes>,
    /// The worker's thread, unparked for messages that cannot wait for its next tick.
    thread: Option<std::thread::Thread>,
}

impl RoomPool {
    /// Starts `workers` threads, each with a queue of at most `queue_len` messages and
    /// `queue_bytes` bytes.
    pub fn start(
        shared: Arc<Shared>,
        workers: usize,
        queue_len: usize,
        queue_bytes: usize,
    ) -> RoomPool {
        let (mut queues, receivers) = RoomPool::queues(workers, queue_len, queue_bytes);
        let threads: Vec<JoinHandle<()>> = receivers
            .into_iter()
            .enumerate()
            .map(|(index, (rx, bytes))| {
                let shared = shared.clone();
                std::thread::Builder::new()
                    .name(format!("room-worker-{index}"))
                    .spawn(move || worker::run(index, rx, bytes, shared))
                    .expect("spawning a room worker thread")
            })
            .collect();
        for (queue, thread) in queues.iter_mut().zip(&threads) {
            queue.thread = Some(thread.thread().clone());
        }
        RoomPool {
            queues,
            threads: parking_lot::Mutex::new(threads),
        }
    }

    #[allow(clippy::type_complexity)]
    fn queues(
        workers: usize,
        queue_len: usize,
        queue_bytes: usize,
    ) -> (
        Vec<WorkerQueue>,
        Vec<(Receiver<RoomInput>, Arc<QueueBytes>)>,
    ) {
        (0..workers.max(1))
            .map(|_| {
                let (tx, rx) = bounded(queue_len);
                let bytes = Arc::new(QueueBytes::new(queue_bytes));
                (
                    WorkerQueue {
                        tx,
                        bytes: bytes.clone(),
                        thread: None,
                    },
                    (rx, bytes),
                )
            })
            .unzip()
    }

    /// Sends to the worker that owns `room_id`; a queue full by count or by bytes returns
    /// the message back.
    pub fn try_send(&self, room_id: RoomId, msg: RoomInput) -> Result<(), TrySendError<RoomInput>> {
        let queue = self.queue(room_id);
        let weight = msg.weight();
        let wake = msg.wakes_worker();
        if !queue.bytes.try_take(weight) {
            return Err(TrySendError::Full(msg));
        }
        queue
            .tx
            .try_send(msg)
            .inspect_err(|_| queue.bytes.give_back(weight))?;
        if wake {
            queue.wake();
        }
        Ok(())
    }

    /// Messages waiting in each worker's queue.
    pub fn queue_depths(&self) -> Vec<usize> {
        self.queues.iter().map(|q| q.tx.len()).collect()
    }

    /// Tells every worker to hand its failover rooms to other servers (a shutdown that keeps
    /// the matches going). A full queue misses it: its rooms end at the shutdown.
    pub fn hand_off(&self) {
        for q in &self.queues {
            let msg = RoomInput::HandOff;
            if q.bytes.try_take(msg.weight()) {
                if q.tx.try_send(msg).is_err() {
                    q.bytes.give_back(RoomInput::HandOff.weight());
                }
                q.wake();
            }
        }
    }

    /// Tells every worker to close its rooms and waits for the threads to end.
    pub fn shutdown(&self) {
        for q in &self.queues {
            // The worker gives back every message's weight, this one's too.
            q.bytes.take(RoomInput::Shutdown.weight());
            // Woken first too: a full queue drains while this send waits.
            q.wake();
            let _ = q.tx.send(RoomInput::Shutdown);
            q.wake();
        }
        for t in self.threads.lock().drain(..) {
            let _ = t.join();
        }
    }

    fn queue(&self, room_id: RoomId) -> &WorkerQueue {
        // Room ids are random, so their low bits spread rooms evenly.
        &self.queues[(room_id % self.queues.len() as u64) as usize]
    }
}

impl WorkerQueue {
    /// Wakes the worker now (an unpark before it parks is kept: its next park returns at once).
    fn wake(&self) {
        if let Some(thread) = &self.thread {
            thread.unpark();
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_bytes::ByteBuf;

    use super::*;
    use crate::room::input::QUEUED_MESSAGE_OVERHEAD_BYTES;

    fn frame_input(bytes: usize) -> RoomInput {
        RoomInput::FrameInput {
            room_id: 1,
            session_id: 1,
            frame: 1,
            input: vec![0; bytes],
        }
    }

    /// A worker that does not drain: a flood of large inputs stops at the byte bound, long
    /// before the count bound.
    #[test]
    fn a_queue_is_bounded_by_bytes_as_well_as_by_count() {
        let (queues, receivers) = RoomPool::queues(1, 65_536, 1024 * 1024);
        let pool = RoomPool {
            queues,
            threads: parking_lot::Mutex::new(Vec::new()),
        };
        let accepted = (0..1000)
            .take_while(|_| pool.try_send(1, frame_input(60_000)).is_ok())
            .count();
        assert_eq!(
            accepted,
            1024 * 1024 / (60_000 + QUEUED_MESSAGE_OVERHEAD_BYTES)
        );
        let (rx, bytes) = &receivers[0];
        assert!(bytes.used() <= 1024 * 1024);
        // Small messages still fit; a dequeued message gives its bytes back.
        assert!(pool
            .try_send(
                1,
                RoomInput::Input {
                    room_id: 1,
                    session_id: 1,
                    tick: 1,
                    ack_tick: 0,
                    inputs: vec![ByteBuf::from(vec![1, 2, 3])],
                    received: std::time::Instant::now(),
                },
            )
            .is_ok());
        let msg = rx.try_recv().unwrap();
        bytes.give_back(msg.weight());
        assert!(pool.try_send(1, frame_input(60_000)).is_ok());
    }

    /// A message someone awaits (here an operator's) unparks the worker at once; inputs are
    /// not meant to (the worker reads them at its next tick).
    #[test]
    fn an_awaited_message_wakes_the_worker_at_once() {
        use std::sync::mpsc;
        use std::time::Duration;

        use crate::room::input::AdminOp;

        assert!(!frame_input(8).wakes_worker());
        assert!(RoomInput::Shutdown.wakes_worker());
        let (mut queues, _receivers) = RoomPool::queues(1, 16, 1 << 20);
        let (parked_tx, parked) = mpsc::channel();
        let (woke_tx, woke) = mpsc::channel();
        // A stand-in worker that parks far longer than the test may take.
        let worker = std::thread::spawn(move || {
            let _ = parked_tx.send(());
            std::thread::park_timeout(Duration::from_secs(600));
            let _ = woke_tx.send(());
        });
        queues[0].thread = Some(worker.thread().clone());
        let pool = RoomPool {
            queues,
            threads: parking_lot::Mutex::new(Vec::new()),
        };
        parked.recv().unwrap();
        assert!(pool.try_send(1, frame_input(8)).is_ok());
        let (reply, _answer) = tokio::sync::oneshot::channel();
        let admin = RoomInput::Admin {
            room_id: 1,
            op: AdminOp::Seats,
            reply,
        };
        assert!(admin.wakes_worker());
        assert!(pool.try_send(1, admin).is_ok());
        woke.recv_timeout(Duration::from_secs(10))
            .expect("the operator's message woke the worker");
        worker.join().unwrap();
    }

    /// Shutdown goes through whatever the bound, and its weight is accounted like any other
    /// message's (the worker gives it back): the budget never underflows.
    #[test]
    fn shutdown_is_accounted_so_the_budget_never_underflows() {
        let (queues, receivers) = RoomPool::queues(1, 16, 100);
        let pool = RoomPool {
            queues,
            threads: parking_lot::Mutex::new(Vec::new()),
        };
        pool.shutdown();
        let (rx, bytes) = &receivers[0];
        let msg = rx.try_recv().unwrap();
        assert!(matches!(msg, RoomInput::Shutdown));
        bytes.give_back(msg.weight());
        assert_eq!(bytes.used(), 0);
        assert!(pool.try_send(1, frame_input(8)).is_ok());
    }
}
