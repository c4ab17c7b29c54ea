//! The room server's side of the operators' admin API (`tickroom_gateway::admin`).
//!
//! `ServerAgent` keeps the server's directory entry fresh (the heartbeat, with its version and
//! drain state as `ServerAbout`), carries out operators' actions (drain, and through the room
//! workers' queues seats, kick, close), and takes the commands gateways in other processes
//! leave for it in the directory every `COMMAND_POLL_INTERVAL` (with `--redis`). In the
//! all-in-one the gateway calls it directly (`ServerControl`).
//!
//! Handshake refusals reach the admin API's error list through `refusal_layer`, a tracing
//! layer that keeps the connection code's "handshake refused" events (bounded ring) until the
//! next heartbeat reports them to the directory.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use parking_lot::Mutex;
use tickroom_gateway::admin::{ServerControl, COMMAND_POLL_INTERVAL};
use tickroom_gateway::directory::{COMMAND_TTL, MAX_RECENT_ERRORS};
use tickroom_gateway::{
    AdminAction, AdminCommand, AdminReply, Directory, DirectoryError, ErrorRecord, RoomServerInfo,
    SeatInfo, ServerAbout,
};
use tickroom_protocol::ErrorCode;
use tokio::sync::{oneshot, watch};
use tracing::field::{Field, Visit};
use tracing::{debug, info, warn};

use crate::room::{AdminAnswer, AdminOp, RoomInput};
use crate::RoomServer;

/// Most commands taken from the directory at once.
pub const COMMANDS_PER_POLL: usize = 16;
/// Longest an operator's request waits for the room's worker.
pub const ROOM_OP_TIMEOUT: Duration = Duration::from_secs(1);

/// A room server's agent towards the directory and the operators.
pub struct ServerAgent {
    room: Arc<RoomServer>,
    dir: Arc<dyn Directory>,
    /// The registration without its live figures (load, draining).
    base: RoomServerInfo,
    /// `--drain`, then whatever operators last asked.
    drain_requested: AtomicBool,
    started_ms: u64,
    /// Set once `run` saw the stop: nothing registers the server again after it deregistered.
    stopping: AtomicBool,
}

impl ServerAgent {
    /// An agent for `room`, registered as `base` (load and draining are filled in live).
    pub fn new(
        room: Arc<RoomServer>,
        dir: Arc<dyn Directory>,
        base: RoomServerInfo,
        drain: bool,
    ) -> Arc<ServerAgent> {
        Arc::new(ServerAgent {
            room,
            dir,
            base,
            drain_requested: AtomicBool::new(drain),
            started_ms: crate::unix_ms(),
            stopping: AtomicBool::new(false),
        })
    }

    /// Takes no new rooms from now on (a shutdown that hands its rooms over), and says so in
    /// the directory at once.
    pub async fn drain_now(&self) {
        self.drain_requested.store(true, Ordering::Release);
        if let Err(e) = self.heartbeat().await {
            warn!(error = %e, "could not tell the directory this server drains");
        }
    }

    /// The registration now: an overloaded server takes no new rooms, so placement skips it
    /// as it skips a draining one.
    pub fn info(&self) -> RoomServerInfo {
        let mut info = self.base.clone();
        info.load = self.room.load();
        info.draining =
            self.drain_requested.load(Ordering::Acquire) || self.room.shared.admission.overloaded();
        info
    }

    /// What operators see about this server.
    pub fn about(&self) -> ServerAbout {
        ServerAbout {
            server_id: self.base.server_id.clone(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
            started_ms: self.started_ms,
            rooms: self.room.shared.room_count.load(Ordering::Acquire) as u64,
            drain_requested: self.drain_requested.load(Ordering::Acquire),
        }
    }

    /// Registers (or refreshes) this server in the directory; nothing once it stops.
    pub async fn heartbeat(&self) -> Result<(), DirectoryError> {
        if self.stopping.load(Ordering::Acquire) {
            return Ok(());
        }
        self.dir
            .register_server_about(
                self.info(),
                self.about(),
                self.room.shared.config.heartbeat_ttl,
            )
            .await
    }

    /// The heartbeat every third of the heartbeat TTL (which also reports handshake refusals), and
    /// with `take_commands` the operators' commands every `COMMAND_POLL_INTERVAL`, until
    /// `stop` fires.
    pub async fn run(self: Arc<Self>, take_commands: bool, mut stop: watch::Receiver<bool>) {
        let mut beat = tokio::time::interval(self.room.shared.config.heartbeat_interval());
        let mut poll = tokio::time::interval(COMMAND_POLL_INTERVAL);
        poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = beat.tick() => {
                    if let Err(e) = self.heartbeat().await {
                        warn!(error = %e, "directory heartbeat failed");
                    }
                    self.report_refusals().await;
                }
                _ = poll.tick(), if take_commands => self.take_commands(),
                _ = stop.changed() => {
                    self.stopping.store(true, Ordering::Release);
                    return;
                }
            }
        }
    }

    async fn report_refusals(&self) {
        let mut batch = take_refusals();
        if batch.is_empty() {
            return;
        }
        for record in &mut batch {
            record.server_id = Some(self.base.server_id.clone());
        }
        if let Err(e) = self.dir.report_errors(batch).await {
            debug!(error = %e, "could not report handshake refusals");
        }
    }

    /// Takes this server's queued commands and carries each out on a task of its own (each
    /// bounded by `ROOM_OP_TIMEOUT`), so the heartbeat never waits behind a room.
    fn take_commands(self: &Arc<Self>) {
        let agent = self.clone();
        tokio::spawn(async move {
            let commands = match agent
                .dir
                .take_commands(&agent.base.server_id, COMMANDS_PER_POLL)
                .await
            {
                Ok(commands) => commands,
                Err(e) => {
                    debug!(error = %e, "could not take operator commands");
                    return;
                }
            };
            for command in commands {
                let agent = agent.clone();
                tokio::spawn(async move { agent.answer(command).await });
            }
        });
    }

    async fn answer(&self, command: AdminCommand) {
        let age_ms = crate::unix_ms().saturating_sub(command.issued_ms);
        if u128::from(age_ms) > COMMAND_TTL.as_millis() {
            warn!(admin = %command.actor, action = ?command.action, age_ms, "skipping a stale operator command");
            return;
        }
        let reply = self.execute(command.action, &command.actor).await;
        if let Err(e) = self.dir.put_reply(command.id, reply).await {
            warn!(error = %e, "could not answer an operator command");
        }
    }

    /// Sends `op` to the worker that owns `room_id` and waits for its answer.
    async fn room_op(&self, room_id: u64, op: AdminOp) -> AdminReply {
        let (tx, rx) = oneshot::channel();
        let input = RoomInput::Admin {
            room_id,
            op,
            reply: tx,
        };
        if self.room.pool.try_send(room_id, input).is_err() {
            return AdminReply::Failed {
                message: "the room's worker queue is full; retry".into(),
            };
        }
        match tokio::time::timeout(ROOM_OP_TIMEOUT, rx).await {
            Ok(Ok(AdminAnswer::Seats(s))) => AdminReply::Seats {
                tick: s.tick,
                started: s.started,
                seats: s
                    .seats
                    .iter()
                    .map(|seat| SeatInfo {
                        slot: seat.slot,
                        player_id: seat.player_id,
                        connected: seat.connected,
                    })
                    .collect(),
            },
            Ok(Ok(AdminAnswer::Done)) => AdminReply::Done,
            Ok(Ok(AdminAnswer::NoPlayer)) => AdminReply::NoPlayer,
            // The worker dropped the request: it is shutting down, the room with it.
            Ok(Ok(AdminAnswer::NoRoom)) | Ok(Err(_)) => AdminReply::NoRoom,
            Err(_) => AdminReply::Failed {
                message: format!(
                    "the room did not answer within {} ms",
                    ROOM_OP_TIMEOUT.as_millis()
                ),
            },
        }
    }
}

#[async_trait]
impl ServerControl for ServerAgent {
    fn server_id(&self) -> &str {
        &self.base.server_id
    }

    async fn execute(&self, action: AdminAction, actor: &str) -> AdminReply {
        info!(admin = %actor, server = %self.base.server_id, action = ?action, "operator command");
        match action {
            AdminAction::Drain { draining } => {
                self.drain_requested.store(draining, Ordering::Release);
                // At once, so placement sees it before this answer arrives.
                if let Err(e) = self.heartbeat().await {
                    warn!(error = %e, "drain: the directory was not told yet; the next heartbeat retries");
                }
                // With failover, a drain empties the server now: its rooms move, live.
                if draining && self.room.shared.failover.get().is_some() {
                    self.room.pool.hand_off();
                }
                AdminReply::Done
            }
            AdminAction::Seats { room_id } => self.room_op(room_id, AdminOp::Seats).await,
            AdminAction::Kick {
                room_id,
                player_id,
                code,
            } => {
                self.room_op(room_id, AdminOp::Kick { player_id, code })
                    .await
            }
            AdminAction::Close { room_id } => self.room_op(room_id, AdminOp::Close).await,
        }
    }
}

/// Handshake refusals not yet reported (process-wide; a process runs one room server).
static REFUSALS: Mutex<VecDeque<ErrorRecord>> = parking_lot::const_mutex(VecDeque::new());

/// Where the connection code logs its refusals (`conn.rs`, `refuse`).
const REFUSAL_TARGET: &str = "tickroom_server::conn";
const REFUSAL_MESSAGE: &str = "handshake refused";

fn take_refusals() -> Vec<ErrorRecord> {
    let mut ring = REFUSALS.lock();
    let mut taken: Vec<ErrorRecord> = ring.drain(..).collect();
    // The ring is newest first; reports go oldest first.
    taken.reverse();
    taken
}

fn keep_refusal(record: ErrorRecord) {
    let mut ring = REFUSALS.lock();
    if ring.len() >= MAX_RECENT_ERRORS {
        ring.pop_back();
    }
    ring.push_front(record);
}

/// A tracing layer that keeps handshake refusals for the admin API (filter it to
/// `refusal_filter()`, so only those events reach it whatever the log level).
pub struct RefusalLayer;

/// The events `RefusalLayer` needs: the connection code's, up to DEBUG. Events only: a
/// span it enabled would be built for every connection at any log level (the connection's
/// span is DEBUG so that, at the default level, polling a connection costs no span work).
pub fn refusal_filter(
) -> tracing_subscriber::filter::FilterFn<impl Fn(&tracing::Metadata<'_>) -> bool> {
    tracing_subscriber::filter::filter_fn(|meta| {
        meta.is_event() && meta.target() == REFUSAL_TARGET && *meta.level() <= tracing::Level::DEBUG
    })
}

#[derive(Default)]
struct RefusalFields {
    message: String,
    code: String,
    detail: String,
}

impl Visit for RefusalFields {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        let slot = match field.name() {
            "message" => &mut self.message,
            "code" => &mut self.code,
            "detail" => &mut self.detail,
            _ => return,
        };
        *slot = format!("{value:?}");
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "detail" {
            self.detail = value.to_owned();
        }
    }
}

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for RefusalLayer {
    fn on_event(
        &self,
        event: &tracing::Event<'_>,
        _ctx: tracing_subscriber::layer::Context<'_, S>,
    ) {
        if event.metadata().target() != REFUSAL_TARGET {
            return;
        }
        let mut fields = RefusalFields::default();
        event.record(&mut fields);
        if fields.message != REFUSAL_MESSAGE {
            return;
        }
        // `code` is logged with Display (its human text): find the code it names. A client
        // that went away before saying anything (`Unknown`) is not a refusal.
        let Some(code) = ErrorCode::all().find(|c| c.to_string() == fields.code) else {
            return;
        };
        if code != ErrorCode::Unknown {
            keep_refusal(ErrorRecord::new(
                "room",
                code,
                "handshake".into(),
                &fields.detail,
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::Layer;

    use super::*;

    /// The layer keeps what `conn.rs` logs as a refusal, by code, and nothing else.
    #[test]
    fn refusal_events_are_kept_by_code() {
        let subscriber =
            tracing_subscriber::registry().with(RefusalLayer.with_filter(refusal_filter()));
        tracing::subscriber::with_default(subscriber, || {
            let code = ErrorCode::TicketInvalid;
            let detail = "bad signature".to_string();
            tracing::debug!(target: "tickroom_server::conn", %code, %detail, "handshake refused");
            let code = ErrorCode::Unknown;
            tracing::debug!(target: "tickroom_server::conn", %code, %detail, "handshake refused");
            let code = ErrorCode::Replay;
            tracing::debug!(target: "tickroom_server::conn", %code, "something else");
            tracing::debug!(target: "tickroom_server::other", %code, "handshake refused");
        });
        let kept = take_refusals();
        assert_eq!(kept.len(), 1, "{kept:?}");
        assert_eq!(kept[0].error, "ticket_invalid");
        assert_eq!(kept[0].message, "bad signature");
        assert_eq!(kept[0].what, "handshake");
        assert!(take_refusals().is_empty());
    }
}
