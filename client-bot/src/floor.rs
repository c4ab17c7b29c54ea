//! The floor: the cheapest room server one would write on the same stack (tokio's
//! multi-threaded runtime and tokio-tungstenite), and bots for it, so every load run can state
//! its cost as a ratio to what the bare job costs on the same machine.
//!
//! The floor server has no login, no tickets, no replay checks and no game. It accepts
//! WebSockets on 127.0.0.1, seats players in rooms of [`ROOM_SIZE`] by arrival order, reads
//! each connection in its own task and writes it from another (one bounded channel per
//! connection: the naive task-per-connection design), and each room is a task ticking at
//! [`TICK_HZ`] that broadcasts one [`BROADCAST_BYTES`]-byte message: every player's id and the
//! stamp of its latest input. A bot sends a [`INPUT_BYTES`]-byte input at [`TICK_HZ`] carrying
//! its id and a stamp (nanoseconds since the run's start), finds its own slot in each
//! broadcast and records RTT = now − stamp when the stamp is new: input → broadcast of the
//! next tick, the same measure as tickroom's input → ack.
//!
//! The server runs as its own process (`tickroom-bot floor-server`, or any binary that calls
//! [`server_main`]) so its CPU time and context switches are read from `/proc/<pid>` apart from
//! the bots'. [`run_floor`] starts it, runs the bots (ramp, play, stop, bounded by a hard
//! deadline) and returns a [`FloorReport`].

use std::collections::BTreeMap;
use std::fmt;
use std::io::{BufRead, BufReader, Write};
use std::net::{IpAddr, SocketAddr};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use serde::Serialize;
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio::time::MissedTickBehavior;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{Bytes, Message};

use crate::cli::{FloorArgs, BOTS_PER_SOURCE_ADDR};
use crate::report::{opt, process_cpu_time, process_cpu_time_of};
use crate::stats::{max_ms, quantile_ms, Samples};
use crate::swarm::{collect_until, run_deadlines};
use crate::{EXIT_FAILURE, EXIT_OK, EXIT_USAGE};

/// Players per room, seated by arrival order.
pub const ROOM_SIZE: usize = 10;
/// Room ticks (broadcasts) and bot inputs per second.
pub const TICK_HZ: u32 = 30;
/// One slot of a broadcast: the player's id (u32) and its latest input stamp (u64),
/// little-endian.
pub const SLOT_BYTES: usize = 4 + 8;
/// A broadcast: [`ROOM_SIZE`] slots.
pub const BROADCAST_BYTES: usize = ROOM_SIZE * SLOT_BYTES;
/// An input: the bot's id (u32), the stamp (u64) and zero padding, about a real input's size.
pub const INPUT_BYTES: usize = 40;
/// The id of a seat nobody sent an input from (yet, or any more).
pub const EMPTY_ID: u32 = u32::MAX;
/// How long the floor server gets to print its address.
pub const SERVER_START_TIMEOUT: Duration = Duration::from_secs(20);
/// How long a bot gets for TCP connect and the WebSocket upgrade.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long the server gets to exit by itself once its stdin closed, before it is killed.
const SERVER_EXIT_GRACE: Duration = Duration::from_secs(2);
/// How often the server's exit is polled within that grace.
const EXIT_POLL: Duration = Duration::from_millis(10);
/// How long a bot waits for its close handshake at the end.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(1);
/// Broadcasts queued for one connection's writer; a full queue drops the new one.
const WRITER_QUEUE: usize = 4;
/// WebSocket buffers of the server (the real server's sizes: tungstenite zero-fills its whole
/// read buffer before every read, so a large one costs CPU the floor should not carry).
const SERVER_READ_BUFFER_BYTES: usize = 4 * 1024;
const SERVER_WRITE_BUFFER_BYTES: usize = 16 * 1024;
/// The bot's WebSocket read buffer (the real bot's size).
const BOT_READ_BUFFER_BYTES: usize = 1024;
/// The largest message either side accepts.
const MAX_MESSAGE_BYTES: usize = 1024;

/// One seat of a broadcast: a player's id and the stamp of its latest input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Slot {
    /// The id the player sends with its inputs ([`EMPTY_ID`]: nobody).
    pub id: u32,
    /// The stamp of its latest input (0: none yet).
    pub stamp: u64,
}

impl Slot {
    /// A seat without inputs.
    pub const EMPTY: Slot = Slot {
        id: EMPTY_ID,
        stamp: 0,
    };
}

/// Encodes a broadcast: each slot's id then stamp, little-endian, in seat order.
pub fn encode_broadcast(slots: &[Slot; ROOM_SIZE]) -> [u8; BROADCAST_BYTES] {
    let mut out = [0u8; BROADCAST_BYTES];
    for (chunk, slot) in out.chunks_exact_mut(SLOT_BYTES).zip(slots) {
        chunk[..4].copy_from_slice(&slot.id.to_le_bytes());
        chunk[4..].copy_from_slice(&slot.stamp.to_le_bytes());
    }
    out
}

/// Decodes a broadcast; `None` unless it is exactly [`BROADCAST_BYTES`] long.
pub fn decode_broadcast(bytes: &[u8]) -> Option<[Slot; ROOM_SIZE]> {
    if bytes.len() != BROADCAST_BYTES {
        return None;
    }
    let mut slots = [Slot::EMPTY; ROOM_SIZE];
    for (slot, chunk) in slots.iter_mut().zip(bytes.chunks_exact(SLOT_BYTES)) {
        *slot = read_slot(chunk);
    }
    Some(slots)
}

/// The stamp echoed for player `id` in a broadcast: `None` when the message is not a
/// broadcast, `id` has no seat in it, or the seat has no input yet.
pub fn find_stamp(broadcast: &[u8], id: u32) -> Option<u64> {
    if broadcast.len() != BROADCAST_BYTES || id == EMPTY_ID {
        return None;
    }
    broadcast
        .chunks_exact(SLOT_BYTES)
        .map(read_slot)
        .find(|s| s.id == id)
        .map(|s| s.stamp)
        .filter(|&stamp| stamp != 0)
}

fn read_slot(chunk: &[u8]) -> Slot {
    let mut id = [0u8; 4];
    let mut stamp = [0u8; 8];
    id.copy_from_slice(&chunk[..4]);
    stamp.copy_from_slice(&chunk[4..SLOT_BYTES]);
    Slot {
        id: u32::from_le_bytes(id),
        stamp: u64::from_le_bytes(stamp),
    }
}

/// Encodes an input: `id`, `stamp`, then zero padding up to [`INPUT_BYTES`].
pub fn encode_input(id: u32, stamp: u64) -> [u8; INPUT_BYTES] {
    let mut out = [0u8; INPUT_BYTES];
    out[..4].copy_from_slice(&id.to_le_bytes());
    out[4..SLOT_BYTES].copy_from_slice(&stamp.to_le_bytes());
    out
}

/// Decodes an input: its id and stamp; `None` when shorter than a slot (the only check).
pub fn decode_input(bytes: &[u8]) -> Option<Slot> {
    (bytes.len() >= SLOT_BYTES).then(|| read_slot(&bytes[..SLOT_BYTES]))
}

// ---------------------------------------------------------------------------------------------
// The server.

/// A seat in a room, written by the player's reader and read by the room's tick.
struct Seat {
    id: AtomicU32,
    stamp: AtomicU64,
}

/// A room: its seats and the writers of the players in it.
struct Room {
    seats: [Seat; ROOM_SIZE],
    writers: Mutex<Vec<mpsc::Sender<Bytes>>>,
    /// Seats handed out (only grows; the room ends once full and empty).
    seated: AtomicUsize,
}

impl Room {
    fn new() -> Room {
        Room {
            seats: std::array::from_fn(|_| Seat {
                id: AtomicU32::new(EMPTY_ID),
                stamp: AtomicU64::new(0),
            }),
            writers: Mutex::new(Vec::with_capacity(ROOM_SIZE)),
            seated: AtomicUsize::new(0),
        }
    }

    fn slots(&self) -> [Slot; ROOM_SIZE] {
        std::array::from_fn(|i| Slot {
            id: self.seats[i].id.load(Ordering::Relaxed),
            stamp: self.seats[i].stamp.load(Ordering::Relaxed),
        })
    }

    fn store(&self, seat: usize, slot: Slot) {
        self.seats[seat].id.store(slot.id, Ordering::Relaxed);
        self.seats[seat].stamp.store(slot.stamp, Ordering::Relaxed);
    }
}

/// The room being filled.
#[derive(Default)]
struct Lobby {
    filling: Option<Arc<Room>>,
}

/// Seats a player whose writer is `writer`: the room, the seat, and whether the room is new
/// (its tick task must be started).
fn seat(lobby: &Mutex<Lobby>, writer: mpsc::Sender<Bytes>) -> (Arc<Room>, usize, bool) {
    let mut lobby = lobby.lock().unwrap_or_else(|e| e.into_inner());
    let full = lobby
        .filling
        .as_ref()
        .is_none_or(|r| r.seated.load(Ordering::Relaxed) >= ROOM_SIZE);
    if full {
        lobby.filling = Some(Arc::new(Room::new()));
    }
    let room = lobby.filling.clone().expect("a room is filling");
    // The writer is in before the seat counts, so a room that looks full and empty is.
    room.writers
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push(writer);
    let seat = room.seated.fetch_add(1, Ordering::Relaxed);
    (room, seat, full)
}

/// The tick period of rooms and bots.
fn tick_period() -> Duration {
    Duration::from_secs(1) / TICK_HZ
}

/// A room's task: every tick, the broadcast to every writer still there; ends once the room is
/// full and every player left.
async fn run_room(room: Arc<Room>) {
    let mut ticks = tokio::time::interval(tick_period());
    ticks.set_missed_tick_behavior(MissedTickBehavior::Skip);
    loop {
        ticks.tick().await;
        let message = Bytes::copy_from_slice(&encode_broadcast(&room.slots()));
        let mut writers = room.writers.lock().unwrap_or_else(|e| e.into_inner());
        writers.retain(|w| {
            !matches!(
                w.try_send(message.clone()),
                Err(mpsc::error::TrySendError::Closed(_))
            )
        });
        if writers.is_empty() && room.seated.load(Ordering::Relaxed) >= ROOM_SIZE {
            return;
        }
    }
}

fn server_ws_config() -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(SERVER_READ_BUFFER_BYTES)
        .write_buffer_size(SERVER_WRITE_BUFFER_BYTES)
        .max_message_size(Some(MAX_MESSAGE_BYTES))
        .max_frame_size(Some(MAX_MESSAGE_BYTES))
}

/// One connection: the upgrade, a seat, a writer task fed by the room, and this task reading
/// inputs into the seat until the player leaves.
async fn serve_connection(stream: TcpStream, lobby: Arc<Mutex<Lobby>>) {
    let _ = stream.set_nodelay(true);
    let upgrade = tokio_tungstenite::accept_async_with_config(stream, Some(server_ws_config()));
    let ws = match tokio::time::timeout(CONNECT_TIMEOUT, upgrade).await {
        Ok(Ok(ws)) => ws,
        Ok(Err(e)) => {
            tracing::debug!(error = %e, "floor: upgrade failed");
            return;
        }
        Err(_) => return,
    };
    let (mut sink, mut stream) = ws.split();
    let (tx, mut rx) = mpsc::channel::<Bytes>(WRITER_QUEUE);
    let (room, seat_index, new_room) = seat(&lobby, tx);
    if new_room {
        tokio::spawn(run_room(room.clone()));
    }
    let writer = tokio::spawn(async move {
        while let Some(message) = rx.recv().await {
            if sink.send(Message::Binary(message)).await.is_err() {
                break;
            }
        }
    });
    while let Some(Ok(message)) = stream.next().await {
        match message {
            Message::Binary(bytes) => {
                if let Some(slot) = decode_input(&bytes) {
                    room.store(seat_index, slot);
                }
            }
            Message::Close(_) => break,
            _ => {}
        }
    }
    room.store(seat_index, Slot::EMPTY);
    // Its receiver gone, the room drops this player's sender at the next tick.
    writer.abort();
}

/// Accepts connections on `listener` forever, a task each.
pub async fn serve(listener: TcpListener) {
    let lobby = Arc::new(Mutex::new(Lobby::default()));
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                tokio::spawn(serve_connection(stream, lobby.clone()));
            }
            Err(e) => {
                // Out of descriptors and the like: wait a little instead of spinning.
                tracing::debug!(error = %e, "floor: accept failed");
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    }
}

/// The floor server of `tickroom-bot floor-server`: listens on 127.0.0.1, port 0, prints the
/// bound address as the first line of stdout, and serves until its stdin closes (the process
/// that started it ended or let go of it) or Ctrl-C.
pub async fn serve_stdio() -> anyhow::Result<()> {
    let listener = TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0))).await?;
    let addr = listener.local_addr()?;
    {
        let mut out = std::io::stdout().lock();
        writeln!(out, "{addr}")?;
        out.flush()?;
    }
    let (closed_tx, closed_rx) = tokio::sync::oneshot::channel::<()>();
    // A plain thread, not the runtime's blocking pool: it lives as long as the server.
    std::thread::spawn(move || {
        let _ = std::io::copy(&mut std::io::stdin().lock(), &mut std::io::sink());
        let _ = closed_tx.send(());
    });
    tokio::select! {
        () = serve(listener) => {}
        _ = closed_rx => {}
        _ = tokio::signal::ctrl_c() => {}
    }
    Ok(())
}

/// [`serve_stdio`] on its own multi-threaded runtime (as the real server runs): the whole
/// program of a binary acting as the floor server (a bench re-executing itself).
pub fn server_main() -> std::process::ExitCode {
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("floor server: cannot start the runtime: {e}");
            return std::process::ExitCode::from(EXIT_FAILURE);
        }
    };
    match runtime.block_on(serve_stdio()) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("floor server: {e:#}");
            std::process::ExitCode::from(EXIT_FAILURE)
        }
    }
}

/// The command that starts this program as the floor server: the current executable with the
/// hidden `floor-server` subcommand (any binary built on [`crate::run_cli`] has it).
pub fn self_server_command() -> anyhow::Result<Command> {
    let exe = std::env::current_exe()
        .map_err(|e| anyhow::anyhow!("cannot find this program's executable: {e}"))?;
    let mut command = Command::new(exe);
    command.arg("floor-server");
    Ok(command)
}

/// The floor server's process: started from a command, its address read from its first line
/// of stdout; killed and reaped by its own handle when dropped.
#[derive(Debug)]
pub struct FloorServer {
    child: Option<Child>,
    stdin: Option<ChildStdin>,
    /// The WebSocket address it listens on.
    pub addr: SocketAddr,
}

impl FloorServer {
    /// Starts `command` (stdin and stdout piped, stderr inherited) and waits at most
    /// [`SERVER_START_TIMEOUT`] for the address line.
    pub fn start(mut command: Command) -> anyhow::Result<FloorServer> {
        let mut child = command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .map_err(|e| anyhow::anyhow!("cannot start the floor server: {e}"))?;
        let stdin = child.stdin.take();
        let stdout = child.stdout.take();
        // Owned by the guard from here on, so a failed start still ends the process.
        let mut server = FloorServer {
            child: Some(child),
            stdin,
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
        };
        let stdout = stdout.ok_or_else(|| anyhow::anyhow!("the floor server has no stdout"))?;
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let read = BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(read.map(|_| line));
        });
        let line = rx
            .recv_timeout(SERVER_START_TIMEOUT)
            .map_err(|_| {
                anyhow::anyhow!("the floor server said nothing in {SERVER_START_TIMEOUT:?}")
            })?
            .map_err(|e| anyhow::anyhow!("cannot read the floor server's address: {e}"))?;
        server.addr = line.trim().parse().map_err(|_| {
            anyhow::anyhow!("the floor server printed `{}`, not an address", line.trim())
        })?;
        Ok(server)
    }

    /// Its process id.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Closes its stdin, waits up to [`SERVER_EXIT_GRACE`] for it to exit, kills it past that,
    /// and reaps it.
    pub async fn stop(mut self) {
        drop(self.stdin.take());
        let Some(mut child) = self.child.take() else {
            return;
        };
        let deadline = Instant::now() + SERVER_EXIT_GRACE;
        loop {
            match child.try_wait() {
                Ok(Some(_)) => return,
                Ok(None) if Instant::now() < deadline => tokio::time::sleep(EXIT_POLL).await,
                _ => break,
            }
        }
        let _ = child.kill();
        let _ = child.wait();
    }
}

impl Drop for FloorServer {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Voluntary plus involuntary context switches of every thread of process `pid`, from
/// `/proc/<pid>/task/*/status` (`/proc/<pid>/status` counts the main thread only).
pub fn process_context_switches(pid: u32) -> Option<u64> {
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).ok()?;
    let mut total = None;
    for task in tasks.flatten() {
        if let Ok(status) = std::fs::read_to_string(task.path().join("status")) {
            if let Some(n) = parse_context_switches(&status) {
                total = Some(total.unwrap_or(0) + n);
            }
        }
    }
    total
}

/// `voluntary_ctxt_switches` + `nonvoluntary_ctxt_switches` of a `/proc/.../status` text.
pub fn parse_context_switches(status: &str) -> Option<u64> {
    let field = |name: &str| {
        status.lines().find_map(|l| {
            l.strip_prefix(name)?
                .strip_prefix(':')?
                .trim()
                .parse::<u64>()
                .ok()
        })
    };
    Some(field("voluntary_ctxt_switches")? + field("nonvoluntary_ctxt_switches")?)
}

// ---------------------------------------------------------------------------------------------
// The bots and the run.

/// Why a floor bot failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum FloorError {
    /// TCP connect failed.
    #[error("connect failed")]
    Connect,
    /// The WebSocket upgrade failed.
    #[error("websocket upgrade failed")]
    Upgrade,
    /// Reading or writing the WebSocket failed.
    #[error("websocket failed")]
    WebSocket,
    /// The server closed the connection before the bot's time was up.
    #[error("the server closed the connection")]
    Closed,
    /// Connecting or playing did not finish before the bot's deadline.
    #[error("timed out")]
    Timeout,
    /// The run's hard deadline aborted the bot's task.
    #[error("aborted at the deadline")]
    Aborted,
    /// The bot's task panicked.
    #[error("the bot panicked")]
    Panic,
}

impl FloorError {
    /// The report name.
    pub fn name(self) -> &'static str {
        match self {
            FloorError::Connect => "connect",
            FloorError::Upgrade => "upgrade",
            FloorError::WebSocket => "websocket",
            FloorError::Closed => "closed",
            FloorError::Timeout => "timeout",
            FloorError::Aborted => "aborted",
            FloorError::Panic => "panic",
        }
    }
}

/// What one floor bot did.
#[derive(Debug, Default)]
struct BotTally {
    connected: bool,
    error: Option<FloorError>,
    rtt: Samples,
    played_s: f64,
    sent: u64,
    received: u64,
}

/// What every bot shares.
#[derive(Debug, Clone, Copy)]
struct BotPlan {
    server: SocketAddr,
    /// Stamps are nanoseconds since this instant.
    origin: Instant,
    duration: Duration,
    give_up_at: Instant,
}

/// Nanoseconds since `origin` (at least 1: 0 means "no input").
fn stamp(origin: Instant) -> u64 {
    u64::try_from(origin.elapsed().as_nanos())
        .unwrap_or(u64::MAX)
        .max(1)
}

/// A TCP connection to `server`, leaving from `source` when given.
async fn connect(server: SocketAddr, source: Option<IpAddr>) -> std::io::Result<TcpStream> {
    let Some(source) = source else {
        return TcpStream::connect(server).await;
    };
    let socket = if source.is_ipv4() {
        TcpSocket::new_v4()
    } else {
        TcpSocket::new_v6()
    }?;
    socket.bind(SocketAddr::new(source, 0))?;
    socket.connect(server).await
}

/// One floor bot until its deadline; what it did.
async fn run_bot(id: u32, source: Option<IpAddr>, plan: BotPlan) -> BotTally {
    let mut tally = BotTally::default();
    let mut played_from = None;
    let played = tokio::time::timeout_at(
        plan.give_up_at.into(),
        play(id, source, plan, &mut tally, &mut played_from),
    )
    .await;
    tally.error = match played {
        Ok(Ok(())) => None,
        Ok(Err(e)) => Some(e),
        Err(_) => Some(FloorError::Timeout),
    };
    if let Some(from) = played_from {
        tally.played_s = Instant::now()
            .saturating_duration_since(from)
            .min(plan.duration)
            .as_secs_f64();
    }
    tally
}

async fn play(
    id: u32,
    source: Option<IpAddr>,
    plan: BotPlan,
    tally: &mut BotTally,
    played_from: &mut Option<Instant>,
) -> Result<(), FloorError> {
    let open = async {
        let tcp = connect(plan.server, source).await.map_err(|e| {
            tracing::debug!(error = %e, "floor bot: connect failed");
            FloorError::Connect
        })?;
        let _ = tcp.set_nodelay(true);
        let config = WebSocketConfig::default()
            .read_buffer_size(BOT_READ_BUFFER_BYTES)
            .max_message_size(Some(MAX_MESSAGE_BYTES))
            .max_frame_size(Some(MAX_MESSAGE_BYTES));
        let url = format!("ws://{}/", plan.server);
        tokio_tungstenite::client_async_with_config(url, tcp, Some(config))
            .await
            .map(|(ws, _)| ws)
            .map_err(|e| {
                tracing::debug!(error = %e, "floor bot: upgrade failed");
                FloorError::Upgrade
            })
    };
    let mut ws = tokio::time::timeout(CONNECT_TIMEOUT, open)
        .await
        .map_err(|_| FloorError::Timeout)??;
    tally.connected = true;
    let from = Instant::now();
    *played_from = Some(from);
    let until = tokio::time::Instant::from(from + plan.duration);
    let mut inputs = tokio::time::interval(tick_period());
    inputs.set_missed_tick_behavior(MissedTickBehavior::Skip);
    let mut newest = 0u64;
    loop {
        tokio::select! {
            _ = inputs.tick() => {
                let input = encode_input(id, stamp(plan.origin));
                ws.send(Message::Binary(Bytes::copy_from_slice(&input)))
                    .await
                    .map_err(|_| FloorError::WebSocket)?;
                tally.sent += 1;
            }
            message = ws.next() => match message {
                Some(Ok(Message::Binary(bytes))) => {
                    tally.received += 1;
                    let now = stamp(plan.origin);
                    if let Some(echoed) = find_stamp(&bytes, id).filter(|&s| s > newest) {
                        newest = echoed;
                        tally.rtt.record(Duration::from_nanos(now.saturating_sub(echoed)));
                    }
                }
                Some(Ok(Message::Close(_))) | None => return Err(FloorError::Closed),
                Some(Ok(_)) => {}
                Some(Err(_)) => return Err(FloorError::WebSocket),
            },
            () = tokio::time::sleep_until(until) => break,
        }
    }
    let _ = tokio::time::timeout(CLOSE_TIMEOUT, ws.close(None)).await;
    Ok(())
}

/// The loopback addresses `bots` bots leave from, as the swarm spreads them: one per
/// [`BOTS_PER_SOURCE_ADDR`] bots over 127.0.0.1 to 127.0.0.254, or the system's choice (`None`)
/// when one address is enough. Bot `i` uses entry `i % len`.
pub fn source_addrs(bots: usize) -> Vec<Option<IpAddr>> {
    let count = bots.div_ceil(BOTS_PER_SOURCE_ADDR).clamp(1, 254);
    if count == 1 {
        return vec![None];
    }
    (0..count)
        .map(|k| Some(IpAddr::from([127, 0, 0, 1 + k as u8])))
        .collect()
}

/// RTT percentiles of a floor run, ms.
#[derive(Debug, Clone, Serialize, PartialEq, Default)]
pub struct FloorRttMs {
    pub p50: Option<f64>,
    pub p99: Option<f64>,
    pub max: Option<f64>,
}

/// The result of a floor run (`--report` writes it as JSON); figures not measured are `null`.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct FloorReport {
    /// Bots asked for.
    pub players: usize,
    /// Bots that connected.
    pub connected: usize,
    /// Bots that failed (connect, upgrade, closed, timed out, aborted).
    pub errors: u64,
    /// The errors by kind ([`FloorError::name`]).
    pub errors_by_kind: BTreeMap<String, u64>,
    /// The play time asked of each bot, s.
    pub duration_s: f64,
    /// Input → next broadcast echoing it, ms.
    pub rtt_ms: FloorRttMs,
    /// The floor server's CPU (user + system) per player-second played, ms.
    pub server_cpu_ms_per_player_s: Option<f64>,
    /// The bots' process CPU per bot-second played, ms (as the swarm's `bot_cpu_ms_per_bot_s`).
    pub bot_cpu_ms_per_bot_s: Option<f64>,
    /// The floor server's context switches (voluntary + involuntary, every thread) per
    /// message it received or sent.
    pub server_context_switches_per_message: Option<f64>,
    /// Inputs the bots sent (messages into the server).
    pub messages_in: u64,
    /// Broadcasts the bots received (messages out of the server).
    pub messages_out: u64,
    /// Seconds played, over all bots.
    pub played_s: f64,
}

impl FloorReport {
    /// The report as pretty JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_else(|_| "{}".to_string())
    }
}

impl fmt::Display for FloorReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let by_kind: Vec<String> = self
            .errors_by_kind
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        writeln!(
            f,
            "floor: {} players, rooms of {ROOM_SIZE} at {TICK_HZ} Hz, {:.0} s each",
            self.players, self.duration_s
        )?;
        writeln!(
            f,
            "  connected     {:>10}   errors {}{}",
            self.connected,
            self.errors,
            if by_kind.is_empty() {
                String::new()
            } else {
                format!(" ({})", by_kind.join(" "))
            }
        )?;
        writeln!(
            f,
            "  rtt ms        p50 {}  p99 {}  max {}",
            opt(self.rtt_ms.p50, 2),
            opt(self.rtt_ms.p99, 2),
            opt(self.rtt_ms.max, 2)
        )?;
        writeln!(
            f,
            "  server cpu    {} ms per player-second   context switches {} per message ({} in, {} out)",
            opt(self.server_cpu_ms_per_player_s, 3),
            opt(self.server_context_switches_per_message, 3),
            self.messages_in,
            self.messages_out
        )?;
        write!(
            f,
            "  bot cpu       {} ms per bot-second",
            opt(self.bot_cpu_ms_per_bot_s, 3)
        )
    }
}

/// Readings of a process's counters, taken before the first bot and at the end.
#[derive(Debug, Clone, Copy, Default)]
struct Readings {
    server_cpu: Option<Duration>,
    server_switches: Option<u64>,
    bot_cpu: Option<Duration>,
}

impl Readings {
    fn take(server_pid: Option<u32>) -> Readings {
        Readings {
            server_cpu: server_pid.and_then(process_cpu_time_of),
            server_switches: server_pid.and_then(process_context_switches),
            bot_cpu: process_cpu_time(),
        }
    }
}

/// Runs the floor: starts the server with `server` (see [`self_server_command`]), starts
/// `args.bots` bots evenly over the ramp, each playing for the duration once connected, stops
/// the server, writes `--report` when asked, and returns the report. Bounded: bots still
/// running at ramp + duration + the swarm's slack are aborted.
pub async fn run_floor(args: &FloorArgs, server: Command) -> anyhow::Result<FloorReport> {
    anyhow::ensure!(args.bots > 0, "--bots must be at least 1");
    let server = tokio::task::spawn_blocking(move || FloorServer::start(server)).await??;
    let pid = server.pid();
    let before = Readings::take(pid);
    let tallies = run_bots(args, server.addr).await;
    let after = Readings::take(pid);
    server.stop().await;
    let report = build_report(args, &tallies, before, after);
    if let Some(path) = &args.report {
        std::fs::write(path, report.to_json() + "\n")
            .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", path.display()))?;
    }
    Ok(report)
}

async fn run_bots(args: &FloorArgs, server: SocketAddr) -> Vec<BotTally> {
    let started = Instant::now();
    let (hard_deadline, give_up_at) =
        run_deadlines(started, args.ramp, args.duration, Duration::ZERO);
    let plan = BotPlan {
        server,
        origin: started,
        duration: args.duration,
        give_up_at,
    };
    let sources = source_addrs(args.bots);
    let mut set = JoinSet::new();
    for index in 0..args.bots {
        let at = started + args.ramp.mul_f64(index as f64 / args.bots as f64);
        tokio::time::sleep_until(at.into()).await;
        let id = u32::try_from(index).unwrap_or(EMPTY_ID - 1);
        set.spawn(run_bot(id, sources[index % sources.len()], plan));
    }
    let (tallies, _aborted) = collect_until(set, hard_deadline, |panicked| {
        lost(if panicked {
            FloorError::Panic
        } else {
            FloorError::Aborted
        })
    })
    .await;
    tallies
}

fn lost(error: FloorError) -> BotTally {
    BotTally {
        error: Some(error),
        ..BotTally::default()
    }
}

fn build_report(
    args: &FloorArgs,
    tallies: &[BotTally],
    before: Readings,
    after: Readings,
) -> FloorReport {
    let mut rtt = Samples::default();
    let mut errors_by_kind = BTreeMap::new();
    let (mut played_s, mut messages_in, mut messages_out) = (0.0, 0, 0);
    for t in tallies {
        rtt.merge(&t.rtt);
        played_s += t.played_s;
        messages_in += t.sent;
        messages_out += t.received;
        if let Some(e) = t.error {
            *errors_by_kind.entry(e.name().to_string()).or_insert(0) += 1;
        }
    }
    let per_player_s = |a: Option<Duration>, b: Option<Duration>| match (a, b) {
        (Some(a), Some(b)) if played_s > 0.0 && b >= a => {
            Some((b - a).as_secs_f64() * 1e3 / played_s)
        }
        _ => None,
    };
    let messages = messages_in + messages_out;
    let switches = match (before.server_switches, after.server_switches) {
        (Some(a), Some(b)) if messages > 0 && b >= a => Some((b - a) as f64 / messages as f64),
        _ => None,
    };
    FloorReport {
        players: args.bots,
        connected: tallies.iter().filter(|t| t.connected).count(),
        errors: errors_by_kind.values().sum(),
        errors_by_kind,
        duration_s: args.duration.as_secs_f64(),
        rtt_ms: FloorRttMs {
            p50: quantile_ms(&rtt, 0.5),
            p99: quantile_ms(&rtt, 0.99),
            max: max_ms(&rtt),
        },
        server_cpu_ms_per_player_s: per_player_s(before.server_cpu, after.server_cpu),
        bot_cpu_ms_per_bot_s: per_player_s(before.bot_cpu, after.bot_cpu),
        server_context_switches_per_message: switches,
        messages_in,
        messages_out,
        played_s,
    }
}

/// Whether a floor run went well: errors within `--max-errors` and someone connected.
pub fn report_ok(args: &FloorArgs, report: &FloorReport) -> bool {
    report.errors <= args.max_errors && report.connected > 0
}

/// `tickroom-bot floor`: runs the floor with the server from `server`, prints the report and
/// returns the exit code.
pub async fn run_and_print(args: &FloorArgs, server: Command) -> u8 {
    if args.bots == 0 {
        eprintln!("floor: --bots must be at least 1");
        return EXIT_USAGE;
    }
    match run_floor(args, server).await {
        Ok(report) => {
            println!("{report}");
            if report_ok(args, &report) {
                EXIT_OK
            } else {
                EXIT_FAILURE
            }
        }
        Err(e) => {
            eprintln!("floor: {e:#}");
            EXIT_FAILURE
        }
    }
}

/// [`run_and_print`] on its own multi-threaded runtime (the bots' runtime, as the swarm's):
/// the whole program of a binary running the floor (`benches/floor.rs`).
pub fn run_blocking(args: &FloorArgs, server: Command) -> u8 {
    match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime.block_on(run_and_print(args, server)),
        Err(e) => {
            eprintln!("floor: cannot start the runtime: {e}");
            EXIT_FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn slots() -> [Slot; ROOM_SIZE] {
        let mut s = [Slot::EMPTY; ROOM_SIZE];
        s[0] = Slot {
            id: 7,
            stamp: 1_000,
        };
        s[3] = Slot {
            id: 42,
            stamp: u64::MAX - 1,
        };
        s[9] = Slot { id: 0, stamp: 5 };
        s[5] = Slot { id: 11, stamp: 0 };
        s
    }

    #[test]
    fn a_broadcast_is_120_bytes_and_decodes_back() {
        let bytes = encode_broadcast(&slots());
        assert_eq!(bytes.len(), 120);
        assert_eq!(&bytes[..4], &7u32.to_le_bytes());
        assert_eq!(&bytes[4..12], &1_000u64.to_le_bytes());
        assert_eq!(decode_broadcast(&bytes), Some(slots()));
        assert_eq!(decode_broadcast(&bytes[..119]), None);
        assert_eq!(decode_broadcast(&[bytes.as_slice(), &[0]].concat()), None);
    }

    #[test]
    fn a_bot_finds_its_own_slot() {
        let bytes = encode_broadcast(&slots());
        assert_eq!(find_stamp(&bytes, 7), Some(1_000));
        assert_eq!(find_stamp(&bytes, 42), Some(u64::MAX - 1));
        assert_eq!(find_stamp(&bytes, 0), Some(5), "id 0 is a player");
        assert_eq!(find_stamp(&bytes, 11), None, "seated, no input yet");
        assert_eq!(find_stamp(&bytes, 8), None, "not in this room");
        assert_eq!(
            find_stamp(&bytes, EMPTY_ID),
            None,
            "empty seats are nobody's"
        );
        assert_eq!(find_stamp(&bytes[..60], 7), None, "not a broadcast");
    }

    #[test]
    fn inputs_carry_id_and_stamp_and_only_their_length_is_checked() {
        let input = encode_input(9, 123_456_789);
        assert_eq!(input.len(), INPUT_BYTES);
        assert_eq!(
            decode_input(&input),
            Some(Slot {
                id: 9,
                stamp: 123_456_789
            })
        );
        assert_eq!(
            decode_input(&input[..12]),
            Some(Slot {
                id: 9,
                stamp: 123_456_789
            })
        );
        assert_eq!(decode_input(&input[..11]), None);
    }

    #[test]
    fn rooms_fill_by_arrival_order() {
        let lobby = Mutex::new(Lobby::default());
        let mut rooms = Vec::new();
        let mut receivers = Vec::new();
        for n in 0..(ROOM_SIZE * 2 + 1) {
            let (tx, rx) = mpsc::channel(1);
            receivers.push(rx);
            let (room, seat_index, new_room) = seat(&lobby, tx);
            assert_eq!(seat_index, n % ROOM_SIZE);
            assert_eq!(new_room, n % ROOM_SIZE == 0, "player {n}");
            if new_room {
                rooms.push(room);
            }
        }
        assert_eq!(rooms.len(), 3);
        let writers = |r: &Arc<Room>| r.writers.lock().unwrap().len();
        assert_eq!(writers(&rooms[0]), ROOM_SIZE);
        assert_eq!(writers(&rooms[2]), 1);
        rooms[1].store(4, Slot { id: 14, stamp: 99 });
        assert_eq!(
            find_stamp(&encode_broadcast(&rooms[1].slots()), 14),
            Some(99)
        );
    }

    #[test]
    fn loopback_sources_like_the_swarm() {
        assert_eq!(source_addrs(8), [None]);
        let hundred = source_addrs(100);
        assert_eq!(hundred.len(), 13);
        assert_eq!(hundred[12], Some(IpAddr::from([127, 0, 0, 13])));
        assert_eq!(source_addrs(10_000).len(), 254);
    }

    #[test]
    fn context_switches_are_summed() {
        let status = "Name:\tx\nvoluntary_ctxt_switches:\t120\nnonvoluntary_ctxt_switches:\t7\n";
        assert_eq!(parse_context_switches(status), Some(127));
        assert_eq!(parse_context_switches("Name:\tx\n"), None);
        let me = process_context_switches(std::process::id());
        assert!(me.is_some_and(|n| n > 0), "{me:?}");
    }

    #[test]
    fn the_report_divides_by_the_time_played() {
        let args = FloorArgs {
            bots: 3,
            ..FloorArgs::default()
        };
        let mut played = BotTally {
            connected: true,
            played_s: 2.0,
            sent: 60,
            received: 60,
            ..BotTally::default()
        };
        played.rtt.record(Duration::from_millis(20));
        let tallies = [played, lost(FloorError::Aborted), lost(FloorError::Connect)];
        let before = Readings {
            server_cpu: Some(Duration::from_millis(100)),
            server_switches: Some(1_000),
            bot_cpu: Some(Duration::from_millis(10)),
        };
        let after = Readings {
            server_cpu: Some(Duration::from_millis(104)),
            server_switches: Some(1_060),
            bot_cpu: Some(Duration::from_millis(13)),
        };
        let r = build_report(&args, &tallies, before, after);
        assert_eq!((r.players, r.connected, r.errors), (3, 1, 2));
        assert_eq!(r.errors_by_kind["aborted"], 1);
        assert!((r.server_cpu_ms_per_player_s.unwrap() - 2.0).abs() < 1e-9);
        assert!((r.bot_cpu_ms_per_bot_s.unwrap() - 1.5).abs() < 1e-9);
        assert!((r.server_context_switches_per_message.unwrap() - 0.5).abs() < 1e-9);
        assert!((r.rtt_ms.p99.unwrap() - 20.0).abs() < 0.1);
        let none = build_report(&args, &[], Readings::default(), Readings::default());
        assert_eq!(none.server_cpu_ms_per_player_s, None);
        assert_eq!(none.rtt_ms, FloorRttMs::default());
        let json: serde_json::Value = serde_json::from_str(&r.to_json()).unwrap();
        assert_eq!(json["connected"], 1);
        assert!(json["rtt_ms"]["p99"].is_number());
    }
}
