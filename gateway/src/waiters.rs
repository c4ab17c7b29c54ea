//! Long polls that cost the directory what one poll costs: every poll of one ticket on this
//! gateway shares one waiter task, which reads (and touches) the ticket when it starts, when
//! the directory says the ticket left the queue, and every `WAITER_REFRESH_MS` in case a
//! notification was lost. A directory without notifications is re-read every
//! `Directory::ticket_poll_interval()`, still once per ticket, not once per poll. And a player
//! holds at most `max_polls_per_player` polls at once on a gateway (`PollSlots`).
//!
//! Architecture invariant: a waiter lives only while polls watch it; the map entry and the
//! watchers' subscriptions change under one lock, so a poll never subscribes to a waiter that
//! is already gone.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use parking_lot::Mutex;
use tokio::sync::{broadcast, watch, Notify};
use tokio::task::AbortHandle;

use crate::directory::{
    Directory, DirectoryError, TicketChange, TicketId, TicketRecord, TicketStatus,
};
use crate::now_ms;

/// A waiter re-reads its ticket at least this often while notifications flow, in ms; this
/// also keeps the ticket from being dropped as abandoned while someone polls it.
pub const WAITER_REFRESH_MS: u64 = 1_000;

/// What a waiter last read: `None` before its first read.
type Reading = Option<Result<Option<TicketRecord>, DirectoryError>>;

/// The waiters of one gateway, by ticket, and the task that routes notifications to them.
pub(crate) struct TicketWaiters {
    waiters: Arc<Mutex<HashMap<TicketId, Arc<Waiter>>>>,
    /// How often a waiter re-reads, and the notification router: set on the first poll.
    routing: OnceLock<(Duration, Option<AbortHandle>)>,
}

struct Waiter {
    reading: watch::Sender<Reading>,
    wake: Notify,
}

impl TicketWaiters {
    pub(crate) fn new() -> TicketWaiters {
        TicketWaiters {
            waiters: Arc::default(),
            routing: OnceLock::new(),
        }
    }

    /// Waits up to `max_wait` for `ticket_id` to leave the queue and returns it; `None` when
    /// it is unknown or not `player_id`'s (at once, without waiting).
    pub(crate) async fn wait(
        &self,
        directory: &Arc<dyn Directory>,
        ticket_id: TicketId,
        player_id: u64,
        max_wait: Duration,
    ) -> Result<Option<TicketRecord>, DirectoryError> {
        let mut reading = self.watch(directory, ticket_id);
        // The first reading is awaited whatever `max_wait`: it is the answer of a plain poll.
        let first = reading.wait_for(Option::is_some).await.map(|r| r.clone());
        let Ok(mut current) = first else {
            return Err(gone());
        };
        let deadline = tokio::time::Instant::now() + max_wait;
        loop {
            let record = current.unwrap_or_else(|| Err(gone()))?;
            match record {
                Some(r) if r.player_id != player_id => return Ok(None),
                Some(r) if r.status == TicketStatus::Queued => {
                    if tokio::time::Instant::now() >= deadline {
                        return Ok(Some(r));
                    }
                    match tokio::time::timeout_at(deadline, reading.changed()).await {
                        Ok(Ok(())) => current = reading.borrow_and_update().clone(),
                        // The waiter ended (its task was cancelled): answer what we have.
                        Ok(Err(_)) | Err(_) => return Ok(Some(r)),
                    }
                }
                other => return Ok(other),
            }
        }
    }

    /// A subscription to the waiter of `ticket_id`, started if there is none.
    fn watch(
        &self,
        directory: &Arc<dyn Directory>,
        ticket_id: TicketId,
    ) -> watch::Receiver<Reading> {
        let refresh = self.routing(directory);
        let mut waiters = self.waiters.lock();
        if let Some(waiter) = waiters.get(&ticket_id) {
            return waiter.reading.subscribe();
        }
        let (tx, rx) = watch::channel(None);
        let waiter = Arc::new(Waiter {
            reading: tx,
            wake: Notify::new(),
        });
        waiters.insert(ticket_id, waiter.clone());
        tokio::spawn(run_waiter(
            self.waiters.clone(),
            directory.clone(),
            ticket_id,
            waiter,
            refresh,
        ));
        rx
    }

    /// The refresh period, starting the notification router on first use.
    fn routing(&self, directory: &Arc<dyn Directory>) -> Duration {
        let (refresh, _) = self
            .routing
            .get_or_init(|| match directory.ticket_changes() {
                Some(changes) => {
                    let task = tokio::spawn(route(self.waiters.clone(), changes));
                    (
                        Duration::from_millis(WAITER_REFRESH_MS),
                        Some(task.abort_handle()),
                    )
                }
                None => (directory.ticket_poll_interval(), None),
            });
        *refresh
    }
}

impl Drop for TicketWaiters {
    fn drop(&mut self) {
        if let Some((_, Some(router))) = self.routing.get() {
            router.abort();
        }
    }
}

fn gone() -> DirectoryError {
    DirectoryError::Unavailable("the ticket's waiter stopped".into())
}

/// One ticket's waiter: reads, publishes, sleeps until a change, the refresh, or the last
/// watcher leaving; ends once the ticket left the queue (or the read failed).
async fn run_waiter(
    waiters: Arc<Mutex<HashMap<TicketId, Arc<Waiter>>>>,
    directory: Arc<dyn Directory>,
    ticket_id: TicketId,
    waiter: Arc<Waiter>,
    refresh: Duration,
) {
    let forget = || {
        let mut map = waiters.lock();
        if map.get(&ticket_id).is_some_and(|w| Arc::ptr_eq(w, &waiter)) {
            map.remove(&ticket_id);
        }
    };
    loop {
        let read = directory.touch_ticket(ticket_id, now_ms()).await;
        let waiting = matches!(&read, Ok(Some(r)) if r.status == TicketStatus::Queued);
        waiter.reading.send_replace(Some(read));
        if !waiting {
            // Watchers that subscribed before this have the final reading; later polls
            // start a new waiter.
            forget();
            return;
        }
        let next_read = tokio::time::Instant::now() + refresh;
        loop {
            tokio::select! {
                () = waiter.wake.notified() => break,
                () = tokio::time::sleep_until(next_read) => break,
                () = waiter.reading.closed() => {
                    // Subscriptions are made under the map lock: checked under it, no poll
                    // can join between the check and the removal.
                    let mut map = waiters.lock();
                    if waiter.reading.receiver_count() == 0 {
                        if map.get(&ticket_id).is_some_and(|w| Arc::ptr_eq(w, &waiter)) {
                            map.remove(&ticket_id);
                        }
                        return;
                    }
                }
            }
        }
    }
}

/// Wakes the waiters of the tickets the directory reports; all of them when it may have
/// missed some (`Unknown`, or this router fell behind).
async fn route(
    waiters: Arc<Mutex<HashMap<TicketId, Arc<Waiter>>>>,
    mut changes: broadcast::Receiver<TicketChange>,
) {
    loop {
        match changes.recv().await {
            Ok(TicketChange::Left(tickets)) => {
                let map = waiters.lock();
                for id in tickets.iter() {
                    if let Some(waiter) = map.get(id) {
                        waiter.wake.notify_one();
                    }
                }
            }
            Ok(TicketChange::Unknown) | Err(broadcast::error::RecvError::Lagged(_)) => {
                for waiter in waiters.lock().values() {
                    waiter.wake.notify_one();
                }
            }
            // The directory is gone; waiters go on re-reading every refresh.
            Err(broadcast::error::RecvError::Closed) => return,
        }
    }
}

/// Concurrent long polls per player on this gateway.
pub(crate) struct PollSlots {
    max_per_player: usize,
    held: Arc<Mutex<HashMap<u64, usize>>>,
}

/// One poll's slot; freed when dropped.
pub(crate) struct PollSlot {
    player_id: u64,
    held: Arc<Mutex<HashMap<u64, usize>>>,
}

impl PollSlots {
    pub(crate) fn new(max_per_player: usize) -> PollSlots {
        PollSlots {
            max_per_player,
            held: Arc::default(),
        }
    }

    /// A slot for `player_id`, unless they already hold `max_per_player` (0 counts as 1).
    pub(crate) fn take(&self, player_id: u64) -> Option<PollSlot> {
        let mut held = self.held.lock();
        let count = held.entry(player_id).or_default();
        if *count >= self.max_per_player.max(1) {
            return None;
        }
        *count += 1;
        Some(PollSlot {
            player_id,
            held: self.held.clone(),
        })
    }
}

impl Drop for PollSlot {
    fn drop(&mut self) {
        let mut held = self.held.lock();
        if let Some(count) = held.get_mut(&self.player_id) {
            *count -= 1;
            if *count == 0 {
                held.remove(&self.player_id);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn poll_slots_cap_each_player_and_free_on_drop() {
        let slots = PollSlots::new(2);
        let a = slots.take(1).expect("first");
        let b = slots.take(1).expect("second");
        assert!(slots.take(1).is_none());
        assert!(
            slots.take(2).is_some(),
            "another player has their own slots"
        );
        drop(a);
        let c = slots.take(1).expect("freed");
        drop((b, c));
        assert!(slots.held.lock().is_empty(), "no entry is left behind");
    }
}
