//! `Outbox`: the bounded queue of encoded messages from a room (or the connection's own task)
//! to one connection's writer. Reliable messages queue up to a byte bound, past which the
//! reader is too slow and is disconnected; snapshots conflate: a newer one replaces an unsent one.

use std::collections::VecDeque;

use bytes::Bytes;
use parking_lot::Mutex;
use tickroom_protocol::ErrorCode;
use tokio::sync::Notify;

/// Default bound of queued reliable bytes per connection before it counts as a slow consumer.
pub const DEFAULT_MAX_RELIABLE_QUEUE_BYTES: usize = 1024 * 1024;

/// What the writer should do next.
#[derive(Debug, PartialEq, Eq)]
pub enum OutItem {
    /// Must arrive, in order (stream).
    Reliable(Bytes),
    /// The newest snapshot; may go as a datagram.
    Unreliable(Bytes),
    /// Everything queued before was handed out; close the connection with this code.
    Close(ErrorCode),
}

/// Outcome of pushing a snapshot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pushed {
    /// Queued.
    Queued,
    /// Queued, replacing an unsent older snapshot.
    Conflated,
    /// The outbox is closed; nothing was queued.
    Closed,
}

/// A single-consumer queue to one connection's writer task.
#[derive(Debug)]
pub struct Outbox {
    inner: Mutex<Inner>,
    notify: Notify,
    max_reliable_bytes: usize,
}

#[derive(Debug, Default)]
struct Inner {
    reliable: VecDeque<Bytes>,
    reliable_bytes: usize,
    snapshot: Option<Bytes>,
    close: Option<ErrorCode>,
    /// Set once `Close` was handed to the writer.
    finished: bool,
}

impl Outbox {
    /// An outbox that tolerates `max_reliable_bytes` of unsent reliable data.
    pub fn new(max_reliable_bytes: usize) -> Self {
        Outbox {
            inner: Mutex::new(Inner::default()),
            notify: Notify::new(),
            max_reliable_bytes,
        }
    }

    /// Queues a reliable message. Past the byte bound the outbox closes with `SlowConsumer`
    /// and returns false; a closed outbox also returns false.
    pub fn push_reliable(&self, msg: Bytes) -> bool {
        let mut inner = self.inner.lock();
        if inner.close.is_some() {
            return false;
        }
        if inner.reliable_bytes + msg.len() > self.max_reliable_bytes {
            inner.close = Some(ErrorCode::SlowConsumer);
            drop(inner);
            self.notify.notify_one();
            return false;
        }
        inner.reliable_bytes += msg.len();
        inner.reliable.push_back(msg);
        drop(inner);
        self.notify.notify_one();
        true
    }

    /// Queues the newest snapshot, replacing one that was not sent yet.
    pub fn push_snapshot(&self, msg: Bytes) -> Pushed {
        let mut inner = self.inner.lock();
        if inner.close.is_some() {
            return Pushed::Closed;
        }
        let replaced = inner.snapshot.replace(msg).is_some();
        drop(inner);
        self.notify.notify_one();
        if replaced {
            Pushed::Conflated
        } else {
            Pushed::Queued
        }
    }

    /// Asks the writer to close after what is already queued reliably. The first code wins.
    pub fn close(&self, code: ErrorCode) {
        let mut inner = self.inner.lock();
        if inner.close.is_none() {
            inner.close = Some(code);
            inner.snapshot = None;
        }
        drop(inner);
        self.notify.notify_one();
    }

    /// True once a close was requested.
    pub fn is_closed(&self) -> bool {
        self.inner.lock().close.is_some()
    }

    /// The close code, once a close was requested.
    pub fn close_code(&self) -> Option<ErrorCode> {
        self.inner.lock().close
    }

    /// Queued reliable bytes (a queue-depth metric).
    pub fn queued_bytes(&self) -> usize {
        self.inner.lock().reliable_bytes
    }

    /// Waits for the next item. After `Close` was returned, it never returns again.
    pub async fn next(&self) -> OutItem {
        loop {
            if let Some(item) = self.try_next() {
                return item;
            }
            self.notify.notified().await;
        }
    }

    /// The next item if one is ready.
    pub fn try_next(&self) -> Option<OutItem> {
        let mut inner = self.inner.lock();
        if inner.finished {
            return None;
        }
        if let Some(msg) = inner.reliable.pop_front() {
            inner.reliable_bytes -= msg.len();
            return Some(OutItem::Reliable(msg));
        }
        if let Some(msg) = inner.snapshot.take() {
            return Some(OutItem::Unreliable(msg));
        }
        if let Some(code) = inner.close {
            inner.finished = true;
            return Some(OutItem::Close(code));
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(n: u8) -> Bytes {
        Bytes::from(vec![n; 4])
    }

    #[test]
    fn snapshots_conflate_and_reliable_keeps_order() {
        let o = Outbox::new(1024);
        assert!(o.push_reliable(b(1)));
        assert_eq!(o.push_snapshot(b(2)), Pushed::Queued);
        assert_eq!(o.push_snapshot(b(3)), Pushed::Conflated);
        assert!(o.push_reliable(b(4)));
        assert_eq!(o.try_next(), Some(OutItem::Reliable(b(1))));
        assert_eq!(o.try_next(), Some(OutItem::Reliable(b(4))));
        assert_eq!(o.try_next(), Some(OutItem::Unreliable(b(3))));
        assert_eq!(o.try_next(), None);
    }

    #[test]
    fn overflow_closes_with_slow_consumer_after_queued_data() {
        let o = Outbox::new(8);
        assert!(o.push_reliable(b(1)));
        assert!(o.push_reliable(b(2)));
        assert!(!o.push_reliable(b(3)));
        assert_eq!(o.try_next(), Some(OutItem::Reliable(b(1))));
        assert_eq!(o.try_next(), Some(OutItem::Reliable(b(2))));
        assert_eq!(o.try_next(), Some(OutItem::Close(ErrorCode::SlowConsumer)));
        assert_eq!(o.try_next(), None);
        assert_eq!(o.push_snapshot(b(5)), Pushed::Closed);
    }

    #[test]
    fn first_close_code_wins() {
        let o = Outbox::new(8);
        o.close(ErrorCode::RoomClosed);
        o.close(ErrorCode::Kicked);
        assert_eq!(o.try_next(), Some(OutItem::Close(ErrorCode::RoomClosed)));
    }
}
