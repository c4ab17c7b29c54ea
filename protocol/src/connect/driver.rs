//! The session driver: `ClientSession` (sans-IO) on a real transport, reconnecting on its
//! own, and the task API (`join`, `Session`, `SessionHandle`) games use.

use std::fmt;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Sleep;

use super::{
    CertCheck, ConnectError, GatewayClient, MatchResult, QuicClient, RawConn, TransportKind,
    COMMAND_QUEUE_LEN, EVENT_QUEUE_LEN,
};
use crate::session::{ClientSession, SessionConfig, SessionEvent};
use crate::{Secret, ServerMsg};

/// Where and how to (re)connect.
#[derive(Debug, Clone)]
pub struct JoinTarget {
    /// The transport to (re)connect over.
    pub transport: TransportKind,
    /// WebSocket address, `host:port`.
    pub ws_addr: String,
    /// QUIC address, `ip:port`.
    pub quic_addr: String,
    /// How the QUIC certificate is checked.
    pub cert: CertCheck,
    /// The address WebSocket connections leave from (`None`: the system's choice). QUIC
    /// connections leave from their [`QuicClient`]'s socket.
    pub local_ip: Option<IpAddr>,
    /// The WebSocket speaks TLS (`wss://`, checked with `cert` like QUIC).
    pub ws_tls: bool,
}

impl JoinTarget {
    /// The target named by a match result, with the certificate pinned.
    pub fn from_match(
        m: &MatchResult,
        transport: TransportKind,
    ) -> Result<JoinTarget, ConnectError> {
        Ok(JoinTarget {
            transport,
            ws_addr: m.ws_addr.clone(),
            quic_addr: m.quic_addr.clone(),
            cert: CertCheck::pinned_hex(&m.cert_fingerprint)?,
            local_ip: None,
            ws_tls: m.ws_tls,
        })
    }

    async fn open(&self, quic: &Option<QuicClient>) -> Result<RawConn, ConnectError> {
        match self.transport {
            TransportKind::Ws => {
                let tls = self.ws_tls.then_some(&self.cert);
                RawConn::open_ws_from(&self.ws_addr, self.local_ip, tls).await
            }
            TransportKind::Quic => {
                let addr: SocketAddr = self
                    .quic_addr
                    .parse()
                    .map_err(|_| ConnectError::BadAddress(self.quic_addr.clone()))?;
                let owned;
                let client = match quic {
                    Some(c) => c,
                    None => {
                        owned = match self.local_ip {
                            Some(local) => QuicClient::bind(local)?,
                            None => QuicClient::new(addr)?,
                        };
                        &owned
                    }
                };
                RawConn::open_quic(client, addr, &self.cert).await
            }
        }
    }
}

/// What the game sends through a running session.
#[derive(Debug)]
enum Command {
    Input(Vec<u8>),
    FrameInput(u64, Vec<u8>),
    Checksum(u64, u64),
    Message(Vec<u8>),
    Leave,
    /// Drop the transport without leaving (chaos testing of the resume path).
    DropConnection,
    /// Reconnect over this transport from now on.
    SwitchTransport(TransportKind),
    /// The room moved to another server: resume there.
    MoveTo(Box<super::RoomStatus>),
}

/// Sends inputs into a running session.
#[derive(Debug, Clone)]
pub struct SessionHandle {
    tx: mpsc::Sender<Command>,
}

impl SessionHandle {
    /// State sync: one input (the session adds redundancy).
    pub async fn input(&self, bytes: Vec<u8>) -> bool {
        self.tx.send(Command::Input(bytes)).await.is_ok()
    }
    /// Lockstep: the input for `frame`.
    pub async fn frame_input(&self, frame: u64, bytes: Vec<u8>) -> bool {
        self.tx
            .send(Command::FrameInput(frame, bytes))
            .await
            .is_ok()
    }
    /// Lockstep: the state hash after `frame`.
    pub async fn checksum(&self, frame: u64, hash: u64) -> bool {
        self.tx.send(Command::Checksum(frame, hash)).await.is_ok()
    }
    /// A custom reliable message for the game (its own encoding).
    pub async fn message(&self, payload: Vec<u8>) -> bool {
        self.tx.send(Command::Message(payload)).await.is_ok()
    }
    /// Leaves the room; the event stream ends with `Closed`.
    pub async fn leave(&self) -> bool {
        self.tx.send(Command::Leave).await.is_ok()
    }
    /// Drops the transport as if the network failed; the session resumes by itself.
    pub async fn drop_connection(&self) -> bool {
        self.tx.send(Command::DropConnection).await.is_ok()
    }
    /// Uses `transport` for the next reconnect.
    pub async fn switch_transport(&self, transport: TransportKind) -> bool {
        self.tx
            .send(Command::SwitchTransport(transport))
            .await
            .is_ok()
    }

    /// The room moved to another server (`GatewayClient::room_status` names it, after
    /// `RoomMoved` or a loss): the session resumes there (`SessionDriver::move_to`).
    pub async fn move_to(&self, room: super::RoomStatus) -> bool {
        self.tx.send(Command::MoveTo(Box::new(room))).await.is_ok()
    }
}

/// Traffic counters of a finished session.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SessionStats {
    /// Bytes sent over every connection of the session.
    pub bytes_out: u64,
    /// Bytes received over every connection of the session.
    pub bytes_in: u64,
    /// Completed resumes.
    pub reconnects: u32,
}

/// A running session: events out, a handle in, and the task (its result is the stats).
pub struct Session {
    /// What happens in the session, in order; ends with `Closed`.
    pub events: mpsc::Receiver<SessionEvent>,
    /// Sends inputs and commands into the session.
    pub handle: SessionHandle,
    /// The task driving the session; its result is the traffic counters.
    pub task: JoinHandle<SessionStats>,
}

/// Joins the room in `m` over `transport` and drives the session on a task.
pub async fn join(
    m: &MatchResult,
    transport: TransportKind,
    config: SessionConfig,
    quic: Option<QuicClient>,
) -> Result<Session, ConnectError> {
    let target = JoinTarget::from_match(m, transport)?;
    join_target(
        target,
        m.join_ticket.clone(),
        m.join_secret()?,
        config,
        quic,
    )
    .await
}

/// Joins with an explicit target (for example with `CertCheck::InsecureAcceptAnyCertificate`).
pub async fn join_target(
    target: JoinTarget,
    ticket: String,
    join_secret: Secret,
    config: SessionConfig,
    quic: Option<QuicClient>,
) -> Result<Session, ConnectError> {
    let driver = SessionDriver::open(target, ticket, join_secret, config, quic).await?;
    let (event_tx, events) = mpsc::channel(EVENT_QUEUE_LEN);
    let (tx, commands) = mpsc::channel(COMMAND_QUEUE_LEN);
    let task = tokio::spawn(drive(driver, commands, event_tx));
    Ok(Session {
        events,
        handle: SessionHandle { tx },
        task,
    })
}

/// Login, queue and join in one call (WebSocket).
pub async fn connect_ws(
    gateway: &GatewayClient,
    device_id: &str,
    mode: &str,
) -> Result<Session, ConnectError> {
    let m = gateway
        .find_match(device_id, mode, Duration::from_secs(60))
        .await?;
    join(&m, TransportKind::Ws, SessionConfig::default(), None).await
}

/// Login, queue and join in one call (QUIC, certificate pinned from the match result).
pub async fn connect_quic(
    gateway: &GatewayClient,
    device_id: &str,
    mode: &str,
) -> Result<Session, ConnectError> {
    let m = gateway
        .find_match(device_id, mode, Duration::from_secs(60))
        .await?;
    join(&m, TransportKind::Quic, SessionConfig::default(), None).await
}

/// The session task behind [`join`]: the driver's events go out on a channel, commands come
/// in on another.
async fn drive(
    mut driver: SessionDriver,
    mut commands: mpsc::Receiver<Command>,
    events: mpsc::Sender<SessionEvent>,
) -> SessionStats {
    loop {
        while let Some(event) = driver.poll_event().await {
            if let SessionEvent::Closed { .. } = event {
                let _ = events.send(event).await;
                return driver.stats();
            }
            if events.send(event).await.is_err() {
                // Nobody listens any more: leave.
                driver.leave();
            }
        }
        tokio::select! {
            () = driver.wait(None) => {}
            cmd = commands.recv() => match cmd {
                Some(Command::Input(b)) => { driver.send_input(Instant::now(), b); }
                Some(Command::FrameInput(f, b)) => driver.send_frame_input(f, b),
                Some(Command::Checksum(f, h)) => driver.send_checksum(f, h),
                Some(Command::Message(p)) => driver.send_message(p),
                Some(Command::Leave) | None => driver.leave(),
                Some(Command::DropConnection) => driver.drop_connection(),
                Some(Command::SwitchTransport(t)) => driver.switch_transport(t),
                Some(Command::MoveTo(room)) => {
                    if let Err(e) = driver.move_to(&room) {
                        tracing::warn!("cannot move the session: {e}");
                    }
                }
            },
        }
    }
}

/// An opening transport connection (a reconnect in progress).
type Opening = Pin<Box<dyn Future<Output = Result<RawConn, ConnectError>> + Send>>;

/// The lower-level API under [`join`]: drives a [`ClientSession`] over a [`RawConn`] on the
/// caller's task, with no channels and a single timer. A game loop (or a bot) calls the
/// `send_*` methods, drains [`SessionDriver::poll_event`], and then awaits
/// [`SessionDriver::wait`] with its own next deadline; the driver reconnects by itself.
///
/// ```text
/// loop {
///     while let Some(event) = driver.poll_event().await { /* game */ }
///     driver.wait(Some(next_game_deadline)).await;
/// }
/// ```
pub struct SessionDriver {
    session: ClientSession,
    target: JoinTarget,
    quic: Option<QuicClient>,
    conn: Option<RawConn>,
    opening: Option<Opening>,
    stats: SessionStats,
    /// The one timer: the earlier of the session's deadline and the caller's.
    sleep: Pin<Box<Sleep>>,
    armed: Option<Instant>,
    /// The session may hold messages to send or events to hand out.
    dirty: bool,
    /// `Closed` was handed out: nothing more will happen.
    finished: bool,
}

impl fmt::Debug for SessionDriver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionDriver")
            .field("session", &self.session)
            .field("connected", &self.conn.is_some())
            .field("opening", &self.opening.is_some())
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

impl SessionDriver {
    /// Opens the transport to `target` and starts the handshake (`Hello` with `ticket`).
    pub async fn open(
        target: JoinTarget,
        ticket: String,
        join_secret: Secret,
        config: SessionConfig,
        quic: Option<QuicClient>,
    ) -> Result<SessionDriver, ConnectError> {
        let conn = target.open(&quic).await?;
        let now = Instant::now();
        let mut session = ClientSession::new(config, ticket, join_secret, now);
        session.connected(now);
        Ok(SessionDriver {
            session,
            target,
            quic,
            conn: Some(conn),
            opening: None,
            stats: SessionStats::default(),
            sleep: Box::pin(tokio::time::sleep(Duration::ZERO)),
            armed: None,
            dirty: true,
            finished: false,
        })
    }

    /// Opens the room in a match result over `transport`.
    pub async fn open_match(
        m: &MatchResult,
        transport: TransportKind,
        config: SessionConfig,
        quic: Option<QuicClient>,
    ) -> Result<SessionDriver, ConnectError> {
        let target = JoinTarget::from_match(m, transport)?;
        SessionDriver::open(
            target,
            m.join_ticket.clone(),
            m.join_secret()?,
            config,
            quic,
        )
        .await
    }

    /// The session (read only: state, RTT, the latest Welcome, ...).
    pub fn session(&self) -> &ClientSession {
        &self.session
    }

    /// Traffic so far (transports already closed plus the current one).
    pub fn stats(&self) -> SessionStats {
        let mut stats = self.stats;
        if let Some(c) = &self.conn {
            stats.bytes_out += c.bytes_out;
            stats.bytes_in += c.bytes_in;
        }
        stats.reconnects = self.session.reconnects();
        stats
    }

    /// True when messages or events may be waiting for [`SessionDriver::poll_event`].
    pub fn needs_poll(&self) -> bool {
        self.dirty && !self.finished
    }

    /// True once `Closed` was handed out.
    pub fn is_finished(&self) -> bool {
        self.finished
    }

    /// State sync: queues one input; returns its input number (0 when not in the room).
    pub fn send_input(&mut self, now: Instant, bytes: Vec<u8>) -> u64 {
        self.dirty = true;
        self.session.send_input(now, bytes)
    }

    /// Lockstep: queues the input for `frame`.
    pub fn send_frame_input(&mut self, frame: u64, bytes: Vec<u8>) {
        self.dirty = true;
        self.session.send_frame_input(frame, bytes);
    }

    /// Lockstep: queues the state hash after `frame`.
    pub fn send_checksum(&mut self, frame: u64, hash: u64) {
        self.dirty = true;
        self.session.send_checksum(frame, hash);
    }

    /// Queues a custom reliable message for the game.
    pub fn send_message(&mut self, payload: Vec<u8>) {
        self.dirty = true;
        self.session.send_message(payload);
    }

    /// Leaves the room; `poll_event` hands out `Closed` next.
    pub fn leave(&mut self) {
        self.dirty = true;
        self.session.leave();
    }

    /// Drops the transport as if the network failed; the session resumes by itself.
    pub fn drop_connection(&mut self) {
        if let Some(c) = self.conn.take() {
            self.retire(c);
            self.dirty = true;
            self.session.connection_lost(Instant::now(), None);
        }
    }

    /// Uses `transport` for the next reconnect.
    pub fn switch_transport(&mut self, transport: TransportKind) {
        self.target.transport = transport;
    }

    /// The room moved to another server (its owner died and the gateway moved it: see
    /// [`GatewayClient::room_status`]): the session resumes there, the same session, at once
    /// when a reconnect is under way (the old server's address is dropped) and otherwise at
    /// its next one. A connection still open to the old server is dropped.
    pub fn move_to(&mut self, room: &super::RoomStatus) -> Result<(), ConnectError> {
        self.target.ws_addr = room.ws_addr.clone();
        self.target.quic_addr = room.quic_addr.clone();
        self.target.cert = CertCheck::pinned_hex(&room.cert_fingerprint)?;
        self.target.ws_tls = room.ws_tls;
        if self.opening.is_some() {
            self.start_opening();
        } else {
            self.drop_connection();
            self.session.reconnect_now(Instant::now());
            self.dirty = true;
        }
        Ok(())
    }

    /// Sends what the session queued and hands out its next event. Reconnects are handled
    /// here (the transport is reopened in the background of [`SessionDriver::wait`]); after
    /// `Closed` the transport is closed and nothing more comes.
    pub async fn poll_event(&mut self) -> Option<SessionEvent> {
        if self.finished {
            return None;
        }
        loop {
            self.flush().await;
            match self.session.poll_event() {
                Some(SessionEvent::Reconnect { .. }) => self.start_opening(),
                Some(SessionEvent::Closed { code }) => {
                    // Flush a final Leave, then close.
                    self.flush().await;
                    if let Some(mut c) = self.conn.take() {
                        c.close().await;
                        self.retire(c);
                    }
                    self.opening = None;
                    self.finished = true;
                    self.dirty = false;
                    return Some(SessionEvent::Closed { code });
                }
                Some(event) => return Some(event),
                None => {
                    self.dirty = false;
                    return None;
                }
            }
        }
    }

    /// Waits until something happened — a message arrived, a session timer ran, a reconnect
    /// finished or failed — or until `until`. Returns at once when `poll_event` has work.
    /// Cancel safe: nothing is lost when the future is dropped.
    pub async fn wait(&mut self, until: Option<Instant>) {
        if self.dirty && !self.finished {
            return;
        }
        let wake = earliest(self.session.poll_timeout(), until);
        if wake != self.armed {
            if let Some(at) = wake {
                self.sleep.as_mut().reset(at.into());
            }
            self.armed = wake;
        }
        let woke = {
            let SessionDriver {
                conn,
                opening,
                sleep,
                armed,
                ..
            } = self;
            tokio::select! {
                msg = async { conn.as_mut().expect("guarded").recv().await }, if conn.is_some() => Woke::Message(msg),
                opened = async { opening.as_mut().expect("guarded").await }, if opening.is_some() => Woke::Opened(opened),
                () = sleep.as_mut(), if armed.is_some() => Woke::Timer,
                else => std::future::pending().await,
            }
        };
        let now = Instant::now();
        match woke {
            Woke::Message(Ok(Some(m))) => self.session.handle_message(now, m),
            Woke::Message(Ok(None) | Err(_)) => {
                if let Some(c) = self.conn.take() {
                    let code = c.close_code();
                    self.retire(c);
                    self.session.connection_lost(now, code);
                }
            }
            Woke::Opened(opened) => {
                self.opening = None;
                match opened {
                    Ok(c) => {
                        self.conn = Some(c);
                        self.session.connected(now);
                    }
                    Err(_) => self.session.connection_lost(now, None),
                }
            }
            Woke::Timer => {
                self.armed = None;
                // Early calls are harmless, so the caller's deadline may share the timer.
                self.session.handle_timeout(now);
            }
        }
        self.dirty = true;
    }

    async fn flush(&mut self) {
        while let Some(msg) = self.session.poll_transmit() {
            let Some(c) = self.conn.as_mut() else {
                continue;
            };
            if c.send(&msg).await.is_err() {
                let c = self.conn.take().expect("just used");
                self.retire(c);
                self.session.connection_lost(Instant::now(), None);
            }
        }
    }

    fn start_opening(&mut self) {
        let target = self.target.clone();
        let quic = self.quic.clone();
        self.opening = Some(Box::pin(async move { target.open(&quic).await }));
    }

    /// Keeps the counters of a transport that is going away.
    fn retire(&mut self, c: RawConn) {
        self.stats.bytes_out += c.bytes_out;
        self.stats.bytes_in += c.bytes_in;
    }
}

/// What ended a [`SessionDriver::wait`].
enum Woke {
    Message(Result<Option<ServerMsg>, ConnectError>),
    Opened(Result<RawConn, ConnectError>),
    Timer,
}

fn earliest(a: Option<Instant>, b: Option<Instant>) -> Option<Instant> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}
