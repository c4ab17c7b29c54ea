//! Connection threads: one current-thread tokio runtime per thread, each with its own reactor,
//! timers and task queue. WebSocket connections are handed to them round-robin after accept,
//! so a connection's reader, its writer and its socket's readiness all live on one thread:
//! waking a task never crosses threads, and no work-stealing scheduler parks and unparks
//! threads for every message. (The main runtime keeps the HTTP front end, the listeners and
//! QUIC, whose endpoint drives all its connections from one task.)

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread::JoinHandle;

use tokio::runtime::Handle;
use tokio::sync::oneshot;

/// The connection threads of a room server; stopped when dropped.
#[derive(Debug)]
pub struct IoThreads {
    handles: Vec<Handle>,
    next: AtomicUsize,
    /// Dropping a sender ends its thread's runtime (after the task running at the time).
    stops: Vec<oneshot::Sender<()>>,
    threads: Vec<JoinHandle<()>>,
}

impl IoThreads {
    /// Starts `count` threads (at least one), named `tickroom-io-N`.
    pub fn start(count: usize) -> std::io::Result<IoThreads> {
        let mut handles = Vec::new();
        let mut stops = Vec::new();
        let mut threads = Vec::new();
        for index in 0..count.max(1) {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            handles.push(runtime.handle().clone());
            let (stop, stopped) = oneshot::channel::<()>();
            stops.push(stop);
            threads.push(
                std::thread::Builder::new()
                    .name(format!("tickroom-io-{index}"))
                    .spawn(move || {
                        // Runs the thread's tasks until the server lets go of it; the tasks
                        // still there are dropped with the runtime.
                        runtime.block_on(async move {
                            let _ = stopped.await;
                        });
                    })?,
            );
        }
        Ok(IoThreads {
            handles,
            next: AtomicUsize::new(0),
            stops,
            threads,
        })
    }

    /// How many threads.
    pub fn len(&self) -> usize {
        self.handles.len()
    }

    /// Always false: there is at least one thread.
    pub fn is_empty(&self) -> bool {
        self.handles.is_empty()
    }

    /// Runs `task` on the next thread, round-robin.
    pub fn spawn<F>(&self, task: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let index = self.next.fetch_add(1, Ordering::Relaxed) % self.handles.len();
        self.handles[index].spawn(task);
    }
}

impl Drop for IoThreads {
    fn drop(&mut self) {
        self.stops.clear();
        // Dropped from one of its own threads (its last connection held the server), that
        // thread cannot wait for itself: the others are still joined, it ends on its own.
        let me = std::thread::current().id();
        for thread in self.threads.drain(..) {
            if thread.thread().id() != me {
                let _ = thread.join();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    /// Tasks run on the connection threads, spread round-robin, with timers and IO of their
    /// own runtime; dropping the threads ends them.
    #[test]
    fn tasks_run_round_robin_on_named_threads_and_drop_stops_them() {
        let io = IoThreads::start(2).unwrap();
        assert_eq!(io.len(), 2);
        let (tx, rx) = std::sync::mpsc::channel();
        for _ in 0..4 {
            let tx = tx.clone();
            io.spawn(async move {
                // Timers work (a timeout needs the thread's time driver).
                let ready = tokio::time::timeout(Duration::from_secs(5), async { 7 }).await;
                assert_eq!(ready, Ok(7));
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
                assert!(listener.local_addr().is_ok());
                let name = std::thread::current().name().map(str::to_owned);
                let _ = tx.send(name.unwrap_or_default());
            });
        }
        let mut names: Vec<String> = (0..4)
            .map(|_| rx.recv_timeout(Duration::from_secs(10)).unwrap())
            .collect();
        names.sort();
        assert_eq!(
            names,
            [
                "tickroom-io-0",
                "tickroom-io-0",
                "tickroom-io-1",
                "tickroom-io-1"
            ]
        );
        drop(io);
    }
}
