//! `ClientSession`: the sans-IO client side of a tickroom connection — handshake (Hello or
//! Resume, challenge, Welcome), sequence numbers, redundant inputs, pings and RTT, silence and
//! handshake timeouts, and resumption with full-jitter exponential backoff.
//!
//! Like quinn-proto it does no IO: time comes in as `now`, it never reads the clock, sleeps,
//! touches a socket or asks the OS for randomness (backoff jitter comes from a PRNG seeded by
//! `SessionConfig::jitter_seed`, so runs are reproducible). A driver opens the transport, calls
//! [`ClientSession::connected`], feeds decoded [`ServerMsg`]s to
//! [`ClientSession::handle_message`], sends whatever [`ClientSession::poll_transmit`] yields,
//! reacts to [`ClientSession::poll_event`], and sleeps until [`ClientSession::poll_timeout`]
//! before calling [`ClientSession::handle_timeout`].
//!
//! States: `Connecting` (fresh join or resume, before the challenge) → `Challenged` → `InRoom`;
//! a lost connection of a joined session goes to `Reconnecting` and, once the driver reopens the
//! transport, through `Connecting`/`Challenged` again with a `Resume`. `Closed` is final.

use std::collections::VecDeque;
use std::fmt;
use std::time::{Duration, Instant};

use serde_bytes::ByteBuf;

use crate::error::ErrorCode;
use crate::msg::{ClientMsg, Secret, ServerMsg, SyncKind, Welcome};
use crate::token;
use crate::{protocol_hash, PROTOCOL_VERSION};

/// How many unacked inputs are kept for redundant resending; older ones are dropped because a
/// server that far behind will not apply them anyway.
const MAX_BUFFERED_INPUTS: usize = 256;
/// How many unanswered pings are remembered; older ones are forgotten so a silent server
/// cannot grow the list.
const MAX_OUTSTANDING_PINGS: usize = 32;
/// A zero ping interval would make `poll_timeout` return `now` forever (a busy loop).
const MIN_PING_INTERVAL: Duration = Duration::from_millis(1);

/// Tunables of a [`ClientSession`].
#[derive(Debug, Clone)]
pub struct SessionConfig {
    /// How many unacked inputs each `Input` carries (newest last); default 8.
    pub input_redundancy: usize,
    /// Interval between pings while in the room; default 1 s.
    pub ping_interval: Duration,
    /// Hello/Resume sent but no Welcome after this long → connection considered lost; default 5 s.
    pub handshake_timeout: Duration,
    /// Nothing received for this long while in the room → connection lost; default 10 s.
    pub server_silence_timeout: Duration,
    /// Base of the exponential reconnect backoff; default 100 ms.
    pub reconnect_base: Duration,
    /// Cap of the exponential reconnect backoff; default 5 s.
    pub reconnect_max: Duration,
    /// Give up reconnecting this long after the first loss (the server's grace period); default 30 s.
    pub reconnect_window: Duration,
    /// Seed of the backoff jitter PRNG; default 0x5eed.
    pub jitter_seed: u64,
}

impl Default for SessionConfig {
    fn default() -> Self {
        SessionConfig {
            input_redundancy: 8,
            ping_interval: Duration::from_secs(1),
            handshake_timeout: Duration::from_secs(5),
            server_silence_timeout: Duration::from_secs(10),
            reconnect_base: Duration::from_millis(100),
            reconnect_max: Duration::from_secs(5),
            reconnect_window: Duration::from_secs(30),
            jitter_seed: 0x5eed,
        }
    }
}

/// Where a [`ClientSession`] is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionState {
    /// Waiting for the transport, or Hello/Resume sent and no challenge yet.
    Connecting,
    /// The challenge was answered; waiting for the Welcome.
    Challenged,
    /// Welcomed: game traffic flows.
    InRoom,
    /// The connection was lost; waiting for the backoff or for the driver to reconnect.
    Reconnecting,
    /// The session is over for good.
    Closed,
}

/// What the driver (and the game above it) should know about.
#[derive(Debug, Clone, PartialEq)]
pub enum SessionEvent {
    /// The first Welcome: the player is in the room.
    Joined(Welcome),
    /// A Welcome answering a Resume: the session continues on a new connection.
    Reconnected(Welcome),
    /// The room started.
    Started {
        /// The room's tick at the start.
        tick: u64,
        /// How many players are in.
        players: u8,
    },
    /// State sync: a full snapshot (`baseline == 0`) or a delta against `baseline`.
    Snapshot {
        /// The snapshot's tick.
        tick: u64,
        /// Newest input tick of this player the server applied.
        ack_seq: u64,
        /// The tick this delta is against, 0 for a full snapshot.
        baseline: u64,
        /// The game's encoding of the state.
        payload: Vec<u8>,
    },
    /// Lockstep: frame `n` closed with one input per slot (empty = no input).
    Frame {
        /// The frame number.
        n: u64,
        /// One input per slot.
        inputs: Vec<Vec<u8>>,
    },
    /// Lockstep: checksums for `frame` disagreed.
    Desync {
        /// The frame whose checksums disagreed.
        frame: u64,
    },
    /// A custom reliable message from the game (decode it with the game's `Message` type).
    Message {
        /// The game's encoding of its server message.
        payload: Vec<u8>,
    },
    /// The server refused the client's message `seq` (a custom message too big or too
    /// fast); the session goes on.
    Refused {
        /// The refused message's sequence number.
        seq: u64,
        /// Why.
        code: ErrorCode,
    },
    /// The match ended; the session closes right after (`Closed{RoomClosed}`).
    MatchEnded {
        /// The game's encoding of the result.
        result: Vec<u8>,
    },
    /// A Pong came back; `rtt` is this sample (see [`ClientSession::rtt`] for the smoothed one).
    Pong {
        /// Round-trip time of this ping.
        rtt: Duration,
    },
    /// The transport should be (re)opened now; call `connected(now)` once it is up.
    Reconnect {
        /// 1 for the first attempt after a loss, then 2, 3, ...
        attempt: u32,
    },
    /// The connection was lost or closed by the server; `code` says why when known.
    Disconnected {
        /// Why, when known.
        code: Option<ErrorCode>,
    },
    /// The session is over for good (left, kicked, expired, refused); no more events follow.
    Closed {
        /// Why, when known; `None` after `leave`.
        code: Option<ErrorCode>,
    },
}

/// SplitMix64: tiny, seedable and good enough for jitter (not for secrets).
#[derive(Clone)]
pub(crate) struct SplitMix64(pub(crate) u64);

impl SplitMix64 {
    pub(crate) fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

/// An exponential backoff's ceiling: `min(max, base * 2^attempt)`.
pub(crate) fn backoff_ceiling(base: Duration, max: Duration, attempt: u32) -> Duration {
    let factor = 1u32.checked_shl(attempt).unwrap_or(u32::MAX);
    base.checked_mul(factor).unwrap_or(Duration::MAX).min(max)
}

/// Full jitter: uniform in `[0, ceiling]`, so many clients told to wait at once do not come
/// back in lockstep.
pub(crate) fn full_jitter(ceiling: Duration, rng: &mut SplitMix64) -> Duration {
    let ceiling = u64::try_from(ceiling.as_nanos()).unwrap_or(u64::MAX);
    let r = rng.next_u64();
    Duration::from_nanos(match ceiling.checked_add(1) {
        Some(span) => r % span,
        None => r,
    })
}

/// The sans-IO client state machine; see the module docs for how a driver uses it.
pub struct ClientSession {
    config: SessionConfig,
    ticket: String,
    join_secret: Secret,
    /// The construction instant: `client_time_us` in pings counts from here.
    epoch: Instant,
    state: SessionState,
    /// `connected` was called and no loss since: messages are accepted only then.
    transport_up: bool,
    /// The handshake under way answers a `Resume` (so its challenge uses the resume key).
    resuming: bool,
    handshake_deadline: Option<Instant>,
    /// The latest Welcome; its presence means a session exists that can be resumed.
    welcome: Option<Welcome>,
    next_seq: u64,
    /// The last input tick handed out by `send_input`.
    input_tick: u64,
    /// Unacked inputs `(tick, bytes)`, ticks contiguous and ascending.
    inputs: VecDeque<(u64, Vec<u8>)>,
    last_snapshot_tick: u64,
    last_frame: u64,
    last_received: Instant,
    next_ping: Option<Instant>,
    /// `client_time_us` of pings not answered yet; a Pong for anything else is ignored.
    pings: VecDeque<u64>,
    srtt: Option<Duration>,
    /// The first loss since the last Welcome: the reconnect window counts from here.
    first_loss: Option<Instant>,
    reconnect_at: Option<Instant>,
    /// The room moved (`RoomMoved`): reconnecting waits for `reconnect_now` with the new
    /// server's address (the reconnect window still bounds the wait).
    parked: bool,
    /// `Reconnect` events emitted since the last Welcome; the backoff exponent.
    attempt: u32,
    reconnects: u32,
    rng: SplitMix64,
    outbox: VecDeque<ClientMsg>,
    events: VecDeque<SessionEvent>,
}

impl fmt::Debug for ClientSession {
    // Hand-written so the ticket and the secrets never end up in logs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientSession")
            .field("state", &self.state)
            .field("transport_up", &self.transport_up)
            .field("resuming", &self.resuming)
            .field("session_id", &self.welcome.as_ref().map(|w| w.session_id))
            .field("next_seq", &self.next_seq)
            .field("input_tick", &self.input_tick)
            .field("last_snapshot_tick", &self.last_snapshot_tick)
            .field("last_frame", &self.last_frame)
            .field("srtt", &self.srtt)
            .field("attempt", &self.attempt)
            .field("reconnects", &self.reconnects)
            .finish_non_exhaustive()
    }
}

impl ClientSession {
    /// A fresh session in `Connecting`. `ticket` and `join_secret` come from the gateway's
    /// match result; nothing is sent until [`ClientSession::connected`].
    pub fn new(config: SessionConfig, ticket: String, join_secret: Secret, now: Instant) -> Self {
        let rng = SplitMix64(config.jitter_seed);
        ClientSession {
            config,
            ticket,
            join_secret,
            epoch: now,
            state: SessionState::Connecting,
            transport_up: false,
            resuming: false,
            handshake_deadline: None,
            welcome: None,
            next_seq: 1,
            input_tick: 0,
            inputs: VecDeque::new(),
            last_snapshot_tick: 0,
            last_frame: 0,
            last_received: now,
            next_ping: None,
            pings: VecDeque::new(),
            srtt: None,
            first_loss: None,
            reconnect_at: None,
            parked: false,
            attempt: 0,
            reconnects: 0,
            rng,
            outbox: VecDeque::new(),
            events: VecDeque::new(),
        }
    }

    /// The transport is up: queues `Hello` on a fresh session, or `Resume` when a session
    /// exists (after a Welcome), and starts the handshake timer. Ignored when closed, in the
    /// room, or while a handshake is already under way.
    pub fn connected(&mut self, now: Instant) {
        match self.state {
            SessionState::Closed | SessionState::InRoom => return,
            SessionState::Connecting | SessionState::Challenged if self.transport_up => return,
            _ => {}
        }
        self.transport_up = true;
        self.state = SessionState::Connecting;
        self.reconnect_at = None;
        self.parked = false;
        self.handshake_deadline = now.checked_add(self.config.handshake_timeout);
        self.last_received = now;
        // Anything still queued belongs to an older connection.
        self.outbox.clear();
        let hello = match &self.welcome {
            Some(w) => {
                self.resuming = true;
                ClientMsg::Resume {
                    protocol_version: PROTOCOL_VERSION,
                    protocol_hash: protocol_hash(),
                    session_id: w.session_id,
                    // The server replays from here: frames in lockstep, snapshot ticks in
                    // state sync (see `ClientMsg::Resume`).
                    last_frame: match w.sync {
                        SyncKind::Lockstep => self.last_frame,
                        SyncKind::State => self.last_snapshot_tick,
                    },
                }
            }
            None => {
                self.resuming = false;
                ClientMsg::Hello {
                    protocol_version: PROTOCOL_VERSION,
                    protocol_hash: protocol_hash(),
                    ticket: self.ticket.clone(),
                }
            }
        };
        self.outbox.push_back(hello);
    }

    /// The transport dropped (or the driver's read failed). A joined session with a resumable
    /// `code` goes to `Reconnecting` with full-jitter backoff; a never-joined session, a
    /// non-resumable code or an exhausted reconnect window closes it. `Disconnected{code}` is
    /// emitted first whenever a transport was up. Queued messages are dropped (they would be
    /// stale), unacked inputs are kept for the next `Input`.
    pub fn connection_lost(&mut self, now: Instant, code: Option<ErrorCode>) {
        if self.state == SessionState::Closed {
            return;
        }
        if self.parked && !self.transport_up {
            // The moved room's old server closing what is left: still waiting to move.
            return;
        }
        let was_up = self.transport_up;
        self.transport_up = false;
        self.resuming = false;
        self.handshake_deadline = None;
        self.next_ping = None;
        self.reconnect_at = None;
        self.pings.clear();
        self.outbox.clear();
        if was_up {
            self.events.push_back(SessionEvent::Disconnected { code });
        }
        if self.welcome.is_none() || !is_resumable(code) {
            self.close(code);
            return;
        }
        self.first_loss.get_or_insert(now);
        if self.window_deadline().is_some_and(|d| d <= now) {
            self.close(Some(ErrorCode::SessionExpired));
            return;
        }
        self.state = SessionState::Reconnecting;
        if code == Some(ErrorCode::RoomMoved) {
            self.parked = true;
            return;
        }
        let delay = self.backoff_delay();
        self.reconnect_at = Some(now.checked_add(delay).unwrap_or(now));
    }

    /// The session's room moved to another server (its owner died; the gateway says where):
    /// a reconnect waiting for its backoff is due now, and the backoff starts over, since the
    /// new server has refused nothing yet. Does nothing in any other state.
    pub fn reconnect_now(&mut self, now: Instant) {
        if self.state == SessionState::Reconnecting && (self.reconnect_at.is_some() || self.parked)
        {
            self.parked = false;
            self.attempt = 0;
            self.reconnect_at = Some(now);
        }
    }

    /// Feeds one decoded message from the server. Messages that make no sense in the current
    /// state (or arrive while no transport is up) are ignored.
    pub fn handle_message(&mut self, now: Instant, msg: ServerMsg) {
        if self.state == SessionState::Closed || !self.transport_up {
            return;
        }
        // Any message proves the server alive; `max` so a clock fed backwards never shortens.
        self.last_received = self.last_received.max(now);
        let in_room = self.state == SessionState::InRoom;
        match msg {
            ServerMsg::Challenge { nonce } => {
                if self.state == SessionState::Connecting {
                    let secret = match (&self.welcome, self.resuming) {
                        (Some(w), true) => {
                            token::resume_key(&self.join_secret, w.session_id, w.resume_counter)
                        }
                        _ => self.join_secret,
                    };
                    self.state = SessionState::Challenged;
                    self.outbox.push_back(ClientMsg::ChallengeResponse {
                        mac: token::challenge_mac(&secret, &nonce),
                    });
                }
            }
            ServerMsg::Welcome(w) => {
                if matches!(
                    self.state,
                    SessionState::Connecting | SessionState::Challenged
                ) {
                    self.on_welcome(now, w);
                }
            }
            // The server closes the connection after both, so the session cannot go on on it.
            // The room moved: keep the session, and wait to be pointed at its new server.
            ServerMsg::Kicked {
                code: ErrorCode::RoomMoved,
            } => self.connection_lost(now, Some(ErrorCode::RoomMoved)),
            ServerMsg::Error { code, .. } | ServerMsg::Kicked { code } => self.close(Some(code)),
            ServerMsg::Snapshot {
                tick,
                ack_seq,
                baseline,
                payload,
            } if in_room => {
                self.last_snapshot_tick = self.last_snapshot_tick.max(tick);
                while self.inputs.front().is_some_and(|(t, _)| *t <= ack_seq) {
                    self.inputs.pop_front();
                }
                self.events.push_back(SessionEvent::Snapshot {
                    tick,
                    ack_seq,
                    baseline,
                    payload,
                });
            }
            ServerMsg::Frame { n, inputs } if in_room => {
                self.last_frame = self.last_frame.max(n);
                self.events.push_back(SessionEvent::Frame {
                    n,
                    inputs: inputs.into_iter().map(ByteBuf::into_vec).collect(),
                });
            }
            ServerMsg::Desync { frame } if in_room => {
                self.events.push_back(SessionEvent::Desync { frame });
            }
            ServerMsg::Started { tick, players } if in_room => {
                self.events
                    .push_back(SessionEvent::Started { tick, players });
            }
            ServerMsg::Pong { client_time_us, .. } if in_room => self.on_pong(now, client_time_us),
            ServerMsg::Message { payload } if in_room => {
                self.events.push_back(SessionEvent::Message { payload });
            }
            ServerMsg::MatchEnded { result } if in_room => {
                self.events.push_back(SessionEvent::MatchEnded { result });
            }
            ServerMsg::Refused { seq, code } if in_room => {
                self.events.push_back(SessionEvent::Refused { seq, code });
            }
            ServerMsg::Snapshot { .. }
            | ServerMsg::Frame { .. }
            | ServerMsg::Desync { .. }
            | ServerMsg::Started { .. }
            | ServerMsg::Pong { .. }
            | ServerMsg::Message { .. }
            | ServerMsg::MatchEnded { .. }
            | ServerMsg::Refused { .. } => {}
        }
    }

    /// Runs whatever timer is due at `now`: the handshake timeout, the server silence timeout
    /// or the next ping while in the room, the backoff or the reconnect window while
    /// reconnecting. Calling it early is harmless.
    pub fn handle_timeout(&mut self, now: Instant) {
        let due = |t: Option<Instant>| t.is_some_and(|t| t <= now);
        match self.state {
            SessionState::Closed => {}
            SessionState::Connecting | SessionState::Challenged => {
                if self.transport_up && due(self.handshake_deadline) {
                    self.connection_lost(now, Some(ErrorCode::HandshakeTimeout));
                }
            }
            SessionState::InRoom => {
                if due(self.silence_deadline()) {
                    self.connection_lost(now, Some(ErrorCode::IdleTimeout));
                } else if due(self.next_ping) {
                    self.send_ping(now);
                }
            }
            SessionState::Reconnecting => {
                if due(self.window_deadline()) {
                    self.close(Some(ErrorCode::SessionExpired));
                } else if due(self.reconnect_at) {
                    self.reconnect_at = None;
                    self.attempt = self.attempt.saturating_add(1);
                    self.events.push_back(SessionEvent::Reconnect {
                        attempt: self.attempt,
                    });
                }
            }
        }
    }

    /// When `handle_timeout` should be called next; `None` when no timer runs.
    pub fn poll_timeout(&self) -> Option<Instant> {
        match self.state {
            SessionState::Closed => None,
            SessionState::Connecting | SessionState::Challenged => {
                self.handshake_deadline.filter(|_| self.transport_up)
            }
            SessionState::InRoom => earliest(self.next_ping, self.silence_deadline()),
            SessionState::Reconnecting => earliest(self.reconnect_at, self.window_deadline()),
        }
    }

    /// The next message to send on the transport, oldest first.
    pub fn poll_transmit(&mut self) -> Option<ClientMsg> {
        self.outbox.pop_front()
    }

    /// The next event for the driver, oldest first.
    pub fn poll_event(&mut self) -> Option<SessionEvent> {
        self.events.pop_front()
    }

    /// State sync: records `input` as the next input tick (1, 2, 3, ...) and queues an `Input`
    /// carrying up to `input_redundancy` of the newest unacked inputs, oldest first. Returns
    /// the input tick, or 0 (and ignores the input) unless in the room.
    pub fn send_input(&mut self, _now: Instant, input: Vec<u8>) -> u64 {
        if !self.can_send() {
            return 0;
        }
        self.input_tick = self.input_tick.saturating_add(1);
        let tick = self.input_tick;
        self.inputs.push_back((tick, input));
        while self.inputs.len() > MAX_BUFFERED_INPUTS {
            self.inputs.pop_front();
        }
        // At least the input just given, whatever the config says, and never more than the
        // room accepts (the mode's redundancy, from Welcome).
        let room_max = self
            .welcome
            .as_ref()
            .map_or(MAX_BUFFERED_INPUTS, |w| usize::from(w.input_redundancy))
            .max(1);
        let count = self
            .config
            .input_redundancy
            .min(room_max)
            .clamp(1, MAX_BUFFERED_INPUTS);
        let skip = self.inputs.len().saturating_sub(count);
        let inputs = self
            .inputs
            .iter()
            .skip(skip)
            .map(|(_, bytes)| ByteBuf::from(bytes.clone()))
            .collect();
        let seq = self.take_seq();
        self.outbox.push_back(ClientMsg::Input {
            seq,
            tick,
            ack_tick: self.last_snapshot_tick,
            inputs,
        });
        tick
    }

    /// Lockstep: queues `FrameInput` for `frame`. Ignored unless in the room.
    pub fn send_frame_input(&mut self, frame: u64, input: Vec<u8>) {
        if self.can_send() {
            let seq = self.take_seq();
            self.outbox
                .push_back(ClientMsg::FrameInput { seq, frame, input });
        }
    }

    /// Lockstep: queues `Checksum` of the state after `frame`. Ignored unless in the room.
    pub fn send_checksum(&mut self, frame: u64, hash: u64) {
        if self.can_send() {
            let seq = self.take_seq();
            self.outbox
                .push_back(ClientMsg::Checksum { seq, frame, hash });
        }
    }

    /// Queues a custom reliable message for the game (its own encoding). Returns false (and
    /// drops it) unless in the room.
    pub fn send_message(&mut self, payload: Vec<u8>) -> bool {
        if !self.can_send() {
            return false;
        }
        let seq = self.take_seq();
        self.outbox.push_back(ClientMsg::Message { seq, payload });
        true
    }

    /// Leaves for good: queues `Leave` (when in the room, replacing anything still queued) and
    /// closes the session with `Closed{code: None}`.
    pub fn leave(&mut self) {
        if self.state == SessionState::Closed {
            return;
        }
        let seq = self.can_send().then(|| self.take_seq());
        self.close(None);
        if let Some(seq) = seq {
            self.outbox.push_back(ClientMsg::Leave { seq });
        }
    }

    /// The current state.
    pub fn state(&self) -> SessionState {
        self.state
    }

    /// Smoothed RTT (EWMA with gain 1/8, like TCP's SRTT), once a Pong came back.
    pub fn rtt(&self) -> Option<Duration> {
        self.srtt
    }

    /// The latest Welcome.
    pub fn welcome(&self) -> Option<&Welcome> {
        self.welcome.as_ref()
    }

    /// The highest lockstep frame received (0 if none).
    pub fn last_frame(&self) -> u64 {
        self.last_frame
    }

    /// The highest snapshot tick received (0 if none).
    pub fn last_snapshot_tick(&self) -> u64 {
        self.last_snapshot_tick
    }

    /// The seq the next message will carry; it only grows, across reconnects too.
    pub fn next_seq(&self) -> u64 {
        self.next_seq
    }

    /// How many resumes completed.
    pub fn reconnects(&self) -> u32 {
        self.reconnects
    }

    fn can_send(&self) -> bool {
        self.state == SessionState::InRoom && self.transport_up
    }

    fn take_seq(&mut self) -> u64 {
        let seq = self.next_seq;
        self.next_seq = seq.saturating_add(1);
        seq
    }

    fn on_welcome(&mut self, now: Instant, w: Welcome) {
        self.state = SessionState::InRoom;
        self.handshake_deadline = None;
        // The server's view wins when it is ahead, ours when it is behind: seqs never repeat.
        self.next_seq = self.next_seq.max(w.next_seq);
        self.last_received = now;
        self.next_ping = now.checked_add(self.ping_interval());
        self.pings.clear();
        self.first_loss = None;
        self.reconnect_at = None;
        self.attempt = 0;
        if w.tick < self.last_snapshot_tick {
            // The room went back in time (another server took it over from its last image):
            // the snapshots past its tick are of a timeline that no longer exists, so none of
            // them may be acknowledged as a delta baseline.
            self.last_snapshot_tick = 0;
        }
        let event = if self.resuming {
            self.reconnects = self.reconnects.saturating_add(1);
            SessionEvent::Reconnected(w.clone())
        } else {
            SessionEvent::Joined(w.clone())
        };
        self.resuming = false;
        // Keeps the new resume count: the next resume derives the next key.
        self.welcome = Some(w);
        self.events.push_back(event);
    }

    fn on_pong(&mut self, now: Instant, client_time_us: u64) {
        // Only pongs for pings we sent (and not yet answered) count: a forged or duplicated
        // echo must not skew the RTT.
        let Some(i) = self.pings.iter().position(|&t| t == client_time_us) else {
            return;
        };
        self.pings.remove(i);
        let Some(sent) = self
            .epoch
            .checked_add(Duration::from_micros(client_time_us))
        else {
            return;
        };
        let sample = now.saturating_duration_since(sent);
        self.srtt = Some(match self.srtt {
            None => sample,
            Some(srtt) => srtt
                .checked_mul(7)
                .and_then(|s| s.checked_add(sample))
                .map_or(sample, |s| s / 8),
        });
        self.events.push_back(SessionEvent::Pong { rtt: sample });
    }

    fn send_ping(&mut self, now: Instant) {
        let client_time_us = u64::try_from(now.saturating_duration_since(self.epoch).as_micros())
            .unwrap_or(u64::MAX);
        let seq = self.take_seq();
        self.outbox.push_back(ClientMsg::Ping {
            seq,
            client_time_us,
        });
        self.pings.push_back(client_time_us);
        while self.pings.len() > MAX_OUTSTANDING_PINGS {
            self.pings.pop_front();
        }
        // From `now`, not from the old deadline: after a long stall one ping is enough.
        self.next_ping = now.checked_add(self.ping_interval());
    }

    fn ping_interval(&self) -> Duration {
        self.config.ping_interval.max(MIN_PING_INTERVAL)
    }

    fn silence_deadline(&self) -> Option<Instant> {
        self.last_received
            .checked_add(self.config.server_silence_timeout)
    }

    fn window_deadline(&self) -> Option<Instant> {
        self.first_loss
            .and_then(|t| t.checked_add(self.config.reconnect_window))
    }

    /// The ceiling of the next backoff: `min(reconnect_max, reconnect_base * 2^attempt)`.
    fn backoff_ceiling(&self) -> Duration {
        backoff_ceiling(
            self.config.reconnect_base,
            self.config.reconnect_max,
            self.attempt,
        )
    }

    /// Full jitter under the current ceiling.
    fn backoff_delay(&mut self) -> Duration {
        full_jitter(self.backoff_ceiling(), &mut self.rng)
    }

    fn close(&mut self, code: Option<ErrorCode>) {
        self.state = SessionState::Closed;
        self.transport_up = false;
        self.resuming = false;
        self.handshake_deadline = None;
        self.next_ping = None;
        self.reconnect_at = None;
        self.outbox.clear();
        self.events.push_back(SessionEvent::Closed { code });
    }
}

/// Whether a loss for `code` may be followed by a `Resume`: transport trouble and transient
/// server conditions are; anything saying the session or room is gone, or that retrying the
/// same thing cannot work, is not.
fn is_resumable(code: Option<ErrorCode>) -> bool {
    match code {
        None => true,
        Some(code) => matches!(
            code,
            ErrorCode::Unknown
                | ErrorCode::BadMessage
                | ErrorCode::HandshakeTimeout
                | ErrorCode::IdleTimeout
                | ErrorCode::SlowConsumer
                | ErrorCode::ServerBusy
                | ErrorCode::RateLimited
                | ErrorCode::Internal
                | ErrorCode::RoomMoved
        ),
    }
}

fn earliest(a: Option<Instant>, b: Option<Instant>) -> Option<Instant> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::msg;
    use proptest::prelude::*;

    const JOIN: Secret = [11; 32];
    const NONCE: Secret = [22; 32];

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn session(t0: Instant) -> ClientSession {
        ClientSession::new(SessionConfig::default(), "j1.ticket".into(), JOIN, t0)
    }

    fn welcome(resume_counter: u32, next_seq: u64, sync: SyncKind, resumed: bool) -> Welcome {
        Welcome {
            session_id: 42,
            resume_counter,
            room_id: 7,
            player_id: 9,
            slot: 0,
            max_players: 2,
            sync,
            tick_rate_hz: 30,
            tick: 0,
            next_seq,
            resumed,
            input_redundancy: 8,
        }
    }

    fn tx(s: &mut ClientSession) -> Vec<ClientMsg> {
        std::iter::from_fn(|| s.poll_transmit()).collect()
    }

    fn ev(s: &mut ClientSession) -> Vec<SessionEvent> {
        std::iter::from_fn(|| s.poll_event()).collect()
    }

    /// The fake server's side of one handshake: expects `first` (Hello or Resume) from the
    /// client, challenges it, checks the MAC under `secret`, and welcomes it with `w`.
    fn handshake(s: &mut ClientSession, now: Instant, secret: Secret, w: Welcome) -> ClientMsg {
        s.connected(now);
        let sent = tx(s);
        assert_eq!(sent.len(), 1, "{sent:?}");
        assert_eq!(s.state(), SessionState::Connecting);
        s.handle_message(now, ServerMsg::Challenge { nonce: NONCE });
        assert_eq!(s.state(), SessionState::Challenged);
        match tx(s).as_slice() {
            [ClientMsg::ChallengeResponse { mac }] => {
                assert!(token::verify_challenge_mac(&secret, &NONCE, mac));
            }
            other => panic!("expected a challenge response, got {other:?}"),
        }
        s.handle_message(now, ServerMsg::Welcome(w));
        assert_eq!(s.state(), SessionState::InRoom);
        sent.into_iter().next().unwrap()
    }

    /// A session in the room (state sync unless told), events drained.
    fn joined(t0: Instant, sync: SyncKind) -> ClientSession {
        let mut s = session(t0);
        handshake(&mut s, t0, JOIN, welcome(1, 1, sync, false));
        ev(&mut s);
        s
    }

    /// Loses the connection of an in-room session and runs timers until `Reconnect`.
    fn lose_and_wait(s: &mut ClientSession, now: Instant) -> Instant {
        s.connection_lost(now, None);
        assert_eq!(s.state(), SessionState::Reconnecting);
        let at = s.poll_timeout().unwrap();
        s.handle_timeout(at);
        assert!(matches!(ev(s).last(), Some(SessionEvent::Reconnect { .. })));
        at
    }

    fn seqs(msgs: &[ClientMsg]) -> Vec<u64> {
        msgs.iter().filter_map(ClientMsg::seq).collect()
    }

    #[test]
    fn handshake_sends_hello_then_joins() {
        let t0 = Instant::now();
        let mut s = session(t0);
        assert_eq!(s.state(), SessionState::Connecting);
        assert_eq!(s.poll_transmit(), None);
        assert_eq!(s.poll_timeout(), None);
        let w = welcome(1, 1, SyncKind::State, false);
        let hello = handshake(&mut s, t0 + ms(10), JOIN, w.clone());
        assert_eq!(
            hello,
            ClientMsg::Hello {
                protocol_version: PROTOCOL_VERSION,
                protocol_hash: protocol_hash(),
                ticket: "j1.ticket".into(),
            }
        );
        assert_eq!(ev(&mut s), vec![SessionEvent::Joined(w.clone())]);
        assert_eq!(s.welcome(), Some(&w));
        assert_eq!(s.next_seq(), 1);
        assert_eq!(s.reconnects(), 0);
    }

    #[test]
    fn challenge_mac_uses_the_join_secret() {
        let t0 = Instant::now();
        let mut s = session(t0);
        s.connected(t0);
        tx(&mut s);
        s.handle_message(t0, ServerMsg::Challenge { nonce: NONCE });
        let Some(ClientMsg::ChallengeResponse { mac }) = s.poll_transmit() else {
            panic!("no challenge response");
        };
        assert!(token::verify_challenge_mac(&JOIN, &NONCE, &mac));
        assert!(!token::verify_challenge_mac(&[1; 32], &NONCE, &mac));
    }

    #[test]
    fn welcome_next_seq_raises_the_counter() {
        let t0 = Instant::now();
        let mut s = session(t0);
        handshake(&mut s, t0, JOIN, welcome(1, 50, SyncKind::Lockstep, false));
        s.send_frame_input(1, vec![1]);
        s.send_checksum(1, 99);
        assert_eq!(
            tx(&mut s),
            vec![
                ClientMsg::FrameInput {
                    seq: 50,
                    frame: 1,
                    input: vec![1]
                },
                ClientMsg::Checksum {
                    seq: 51,
                    frame: 1,
                    hash: 99
                },
            ]
        );
        assert_eq!(s.next_seq(), 52);
    }

    #[test]
    fn inputs_carry_redundancy_and_acked_inputs_are_pruned() {
        let t0 = Instant::now();
        let mut s = joined(t0, SyncKind::State);
        for i in 1..=10u8 {
            assert_eq!(s.send_input(t0, vec![i]), u64::from(i));
        }
        let sent = tx(&mut s);
        assert_eq!(seqs(&sent), (1..=10).collect::<Vec<_>>());
        let ClientMsg::Input {
            tick,
            ack_tick,
            inputs,
            ..
        } = &sent[9]
        else {
            panic!("not an input: {:?}", sent[9]);
        };
        assert_eq!((*tick, *ack_tick), (10, 0));
        // Default redundancy 8: inputs 3..=10, oldest first, newest last.
        let got: Vec<u8> = inputs.iter().map(|b| b[0]).collect();
        assert_eq!(got, (3..=10).collect::<Vec<u8>>());

        s.handle_message(
            t0,
            ServerMsg::Snapshot {
                tick: 20,
                ack_seq: 8,
                baseline: 0,
                payload: vec![5],
            },
        );
        assert_eq!(
            ev(&mut s),
            vec![SessionEvent::Snapshot {
                tick: 20,
                ack_seq: 8,
                baseline: 0,
                payload: vec![5]
            }]
        );
        assert_eq!(s.last_snapshot_tick(), 20);
        assert_eq!(s.send_input(t0, vec![11]), 11);
        let Some(ClientMsg::Input {
            tick,
            ack_tick,
            inputs,
            ..
        }) = s.poll_transmit()
        else {
            panic!("no input");
        };
        assert_eq!((tick, ack_tick), (11, 20));
        let got: Vec<u8> = inputs.iter().map(|b| b[0]).collect();
        assert_eq!(got, vec![9, 10, 11]);
        // An older snapshot never lowers the acknowledged tick.
        s.handle_message(
            t0,
            ServerMsg::Snapshot {
                tick: 5,
                ack_seq: 1,
                baseline: 0,
                payload: vec![],
            },
        );
        assert_eq!(s.last_snapshot_tick(), 20);
    }

    #[test]
    fn input_buffer_is_bounded() {
        let t0 = Instant::now();
        let mut s = joined(t0, SyncKind::State);
        s.config.input_redundancy = usize::MAX;
        for i in 0..1000u32 {
            s.send_input(t0, i.to_le_bytes().to_vec());
        }
        assert_eq!(s.inputs.len(), MAX_BUFFERED_INPUTS);
        let Some(ClientMsg::Input { inputs, .. }) = tx(&mut s).pop() else {
            panic!("no input");
        };
        // Never more than the room's redundancy (8 in this Welcome), whatever the config says.
        assert_eq!(inputs.len(), 8);
        assert_eq!(inputs.last().unwrap().as_slice(), 999u32.to_le_bytes());
    }

    #[test]
    fn ping_at_interval_and_rtt_from_pong() {
        let t0 = Instant::now();
        let mut s = joined(t0, SyncKind::State);
        assert_eq!(s.poll_timeout(), Some(t0 + ms(1000)));
        s.handle_timeout(t0 + ms(999));
        assert!(tx(&mut s).is_empty());
        s.handle_timeout(t0 + ms(1000));
        assert_eq!(
            tx(&mut s),
            vec![ClientMsg::Ping {
                seq: 1,
                client_time_us: 1_000_000
            }]
        );
        assert_eq!(s.poll_timeout(), Some(t0 + ms(2000)));
        s.handle_message(
            t0 + ms(1080),
            ServerMsg::Pong {
                client_time_us: 1_000_000,
                server_time_us: 1,
            },
        );
        assert_eq!(ev(&mut s), vec![SessionEvent::Pong { rtt: ms(80) }]);
        assert_eq!(s.rtt(), Some(ms(80)));
        // A duplicate echo does not count twice.
        s.handle_message(
            t0 + ms(1500),
            ServerMsg::Pong {
                client_time_us: 1_000_000,
                server_time_us: 1,
            },
        );
        assert!(ev(&mut s).is_empty());
        s.handle_timeout(t0 + ms(2000));
        let Some(ClientMsg::Ping {
            seq,
            client_time_us,
        }) = s.poll_transmit()
        else {
            panic!("no second ping");
        };
        assert_eq!((seq, client_time_us), (2, 2_000_000));
        s.handle_message(
            t0 + ms(2160),
            ServerMsg::Pong {
                client_time_us,
                server_time_us: 2,
            },
        );
        // SRTT = 7/8 * 80 + 1/8 * 160 = 90 ms.
        assert_eq!(s.rtt(), Some(ms(90)));
    }

    #[test]
    fn silence_timeout_disconnects_then_reconnects_within_backoff() {
        let t0 = Instant::now();
        let cfg = SessionConfig::default();
        let mut s = joined(t0, SyncKind::State);
        // Keep answering nothing; pings go out but the silence deadline stays put.
        let mut now = t0;
        while let Some(at) = s.poll_timeout() {
            now = at;
            s.handle_timeout(now);
            if s.state() != SessionState::InRoom {
                break;
            }
        }
        assert_eq!(now, t0 + cfg.server_silence_timeout);
        assert_eq!(s.state(), SessionState::Reconnecting);
        assert_eq!(
            ev(&mut s),
            vec![SessionEvent::Disconnected {
                code: Some(ErrorCode::IdleTimeout)
            }]
        );
        // Queued pings are dropped, not sent stale on the next connection.
        assert!(tx(&mut s).is_empty());
        let at = s.poll_timeout().unwrap();
        assert!(
            at >= now && at <= now + cfg.reconnect_base,
            "{:?}",
            at - now
        );
        s.handle_timeout(at);
        assert_eq!(ev(&mut s), vec![SessionEvent::Reconnect { attempt: 1 }]);
        // Waiting for the driver: only the reconnect window runs now.
        assert_eq!(s.poll_timeout(), Some(now + cfg.reconnect_window));
    }

    #[test]
    fn resume_answers_with_the_derived_resume_key_and_seq_continues() {
        let t0 = Instant::now();
        let mut s = joined(t0, SyncKind::Lockstep);
        s.handle_message(
            t0,
            ServerMsg::Frame {
                n: 7,
                inputs: vec![ByteBuf::from(vec![1]), ByteBuf::new()],
            },
        );
        assert_eq!(
            ev(&mut s),
            vec![SessionEvent::Frame {
                n: 7,
                inputs: vec![vec![1], vec![]]
            }]
        );
        for f in 1..=5 {
            s.send_frame_input(f, vec![f as u8]);
        }
        let before = seqs(&tx(&mut s));
        // Queued but never sent: dropped with the connection, its seq burnt all the same.
        s.send_checksum(5, 1);
        let max_before = s.next_seq() - 1;
        assert_eq!(*before.last().unwrap(), 5);

        let at = lose_and_wait(&mut s, t0 + ms(100));
        // The server restarted its counter view lower than ours: ours must win.
        let w2 = welcome(2, 3, SyncKind::Lockstep, true);
        let resume = handshake(&mut s, at, token::resume_key(&JOIN, 42, 1), w2.clone());
        assert_eq!(
            resume,
            ClientMsg::Resume {
                protocol_version: PROTOCOL_VERSION,
                protocol_hash: protocol_hash(),
                session_id: 42,
                last_frame: 7,
            }
        );
        assert_eq!(ev(&mut s), vec![SessionEvent::Reconnected(w2)]);
        assert_eq!(s.reconnects(), 1);
        s.send_frame_input(8, vec![8]);
        let after = seqs(&tx(&mut s));
        assert!(after[0] > max_before, "{after:?} vs {max_before}");
        assert_ne!(after[0], 0);

        // The resume key rotated: the next resume answers with the next one.
        let at = lose_and_wait(&mut s, at + ms(100));
        handshake(
            &mut s,
            at,
            token::resume_key(&JOIN, 42, 2),
            welcome(3, 1, SyncKind::Lockstep, true),
        );
        assert_eq!(s.reconnects(), 2);
        s.send_frame_input(9, vec![9]);
        assert!(seqs(&tx(&mut s))[0] > after[0]);
    }

    #[test]
    fn state_sync_resume_reports_snapshot_tick_and_resends_unacked_inputs() {
        let t0 = Instant::now();
        let mut s = joined(t0, SyncKind::State);
        for i in 1..=3u8 {
            s.send_input(t0, vec![i]);
        }
        s.handle_message(
            t0,
            ServerMsg::Snapshot {
                tick: 30,
                ack_seq: 1,
                baseline: 0,
                payload: vec![],
            },
        );
        ev(&mut s);
        s.connection_lost(t0, None);
        // Ignored while reconnecting: they would be stale by the time they got out.
        assert_eq!(s.send_input(t0, vec![99]), 0);
        s.send_frame_input(1, vec![]);
        assert!(tx(&mut s).is_empty());
        let at = s.poll_timeout().unwrap();
        s.handle_timeout(at);
        let resume = handshake(
            &mut s,
            at,
            token::resume_key(&JOIN, 42, 1),
            welcome(2, 1, SyncKind::State, true),
        );
        assert!(matches!(resume, ClientMsg::Resume { last_frame: 30, .. }));
        assert_eq!(s.send_input(at, vec![4]), 4);
        let Some(ClientMsg::Input { inputs, tick, .. }) = s.poll_transmit() else {
            panic!("no input");
        };
        assert_eq!(tick, 4);
        let got: Vec<u8> = inputs.iter().map(|b| b[0]).collect();
        assert_eq!(got, vec![2, 3, 4]);
    }

    /// `Kicked{RoomMoved}` keeps the session: it disconnects and waits, parked, without
    /// reconnecting to the old server (its close is ignored too) until `reconnect_now`.
    #[test]
    fn a_moved_room_parks_the_session_until_it_is_pointed_elsewhere() {
        let t0 = Instant::now();
        let mut s = joined(t0, SyncKind::State);
        let code = ErrorCode::RoomMoved;
        s.handle_message(t0, ServerMsg::Kicked { code });
        assert_eq!(
            ev(&mut s),
            [SessionEvent::Disconnected { code: Some(code) }]
        );
        assert_eq!(s.state(), SessionState::Reconnecting);
        s.connection_lost(t0 + ms(5), None);
        assert!(ev(&mut s).is_empty());
        // Only the reconnect window is pending: no reconnect to the old server.
        let window = SessionConfig::default().reconnect_window;
        assert_eq!(s.poll_timeout(), Some(t0 + window));
        s.handle_timeout(t0 + ms(5_000));
        assert!(ev(&mut s).is_empty());
        s.reconnect_now(t0 + ms(5_000));
        s.handle_timeout(t0 + ms(5_000));
        assert_eq!(ev(&mut s), [SessionEvent::Reconnect { attempt: 1 }]);
    }

    /// A resume into a room that went back in time (taken over from an older image) forgets
    /// the acknowledgement of the lost timeline: the next input acknowledges nothing until a
    /// snapshot of the new one arrives.
    #[test]
    fn a_resume_back_in_time_forgets_the_lost_timelines_acknowledgement() {
        let t0 = Instant::now();
        let mut s = joined(t0, SyncKind::State);
        let snapshot = |tick| ServerMsg::Snapshot {
            tick,
            ack_seq: 0,
            baseline: 0,
            payload: vec![],
        };
        s.handle_message(t0, snapshot(900));
        assert_eq!(s.last_snapshot_tick(), 900);
        s.connection_lost(t0, None);
        s.handle_timeout(t0 + ms(200));
        s.connected(t0 + ms(200));
        s.handle_message(t0 + ms(200), ServerMsg::Challenge { nonce: [1; 32] });
        let back = Welcome {
            tick: 870,
            ..welcome(1, 5, SyncKind::State, true)
        };
        s.handle_message(t0 + ms(200), ServerMsg::Welcome(back));
        assert_eq!(s.last_snapshot_tick(), 0, "tick 900 is of a lost timeline");
        s.handle_message(t0 + ms(210), snapshot(871));
        assert_eq!(s.last_snapshot_tick(), 871);
    }

    /// A reconnect waiting for a long backoff (its room moved to another server) is due at
    /// once after `reconnect_now`, and the backoff starts over; outside `Reconnecting` it
    /// does nothing.
    #[test]
    fn reconnect_now_cuts_the_wait_and_resets_the_backoff() {
        let t0 = Instant::now();
        let mut s = joined(t0, SyncKind::State);
        s.reconnect_now(t0);
        assert!(ev(&mut s).is_empty());
        s.connection_lost(t0, None);
        ev(&mut s);
        s.attempt = 6;
        s.reconnect_at = Some(t0 + Duration::from_secs(5));
        let now = t0 + ms(50);
        s.reconnect_now(now);
        assert_eq!(s.poll_timeout(), Some(now));
        s.handle_timeout(now);
        assert_eq!(ev(&mut s), [SessionEvent::Reconnect { attempt: 1 }]);
    }

    #[test]
    fn backoff_grows_is_capped_and_gives_up_after_window() {
        let t0 = Instant::now();
        let cfg = SessionConfig::default();
        // The ceiling doubles per attempt up to the cap; each delay stays within it.
        let mut s = joined(t0, SyncKind::State);
        let ceilings: Vec<Duration> = (0..10)
            .map(|a| {
                s.attempt = a;
                s.backoff_ceiling()
            })
            .collect();
        assert_eq!(ceilings[0], ms(100));
        assert_eq!(ceilings[1], ms(200));
        assert_eq!(ceilings[5], ms(3200));
        assert_eq!(ceilings[6], cfg.reconnect_max);
        assert_eq!(ceilings[9], cfg.reconnect_max);
        s.attempt = 40;
        assert_eq!(s.backoff_ceiling(), cfg.reconnect_max);

        // Drive failed attempts until the window closes, checking every delay.
        let mut s = joined(t0, SyncKind::State);
        let lost_at = t0 + ms(10);
        s.connection_lost(lost_at, None);
        let mut delays = Vec::new();
        let mut loss = lost_at;
        let closed_at = loop {
            let at = s.poll_timeout().unwrap();
            s.handle_timeout(at);
            match ev(&mut s).pop() {
                Some(SessionEvent::Reconnect { attempt }) => {
                    let d = at - loss;
                    let cap = ceilings[(attempt - 1).min(9) as usize];
                    assert!(d <= cap, "attempt {attempt}: {d:?} > {cap:?}");
                    delays.push(d);
                    // The connect attempt fails (no transport was up: no Disconnected).
                    s.connection_lost(at, None);
                    assert!(ev(&mut s).is_empty());
                    loss = at;
                }
                Some(SessionEvent::Closed { code }) => {
                    assert_eq!(code, Some(ErrorCode::SessionExpired));
                    break at;
                }
                other => panic!("unexpected {other:?}"),
            }
        };
        assert_eq!(closed_at, lost_at + cfg.reconnect_window);
        assert_eq!(s.state(), SessionState::Closed);
        assert_eq!(s.poll_timeout(), None);
        // 30 s of delays each at most 5 s: at least 6 attempts, and the later ones were
        // allowed (and with this seed did use) more than the first attempt's 100 ms.
        assert!(delays.len() >= 6, "{delays:?}");
        assert!(delays.iter().skip(3).any(|d| *d > ms(100)), "{delays:?}");
    }

    #[test]
    fn loss_past_the_window_closes_with_session_expired() {
        let t0 = Instant::now();
        let cfg = SessionConfig::default();
        let mut s = joined(t0, SyncKind::State);
        s.connection_lost(t0, None);
        let at = s.poll_timeout().unwrap();
        s.handle_timeout(at);
        s.connected(at);
        ev(&mut s);
        // The resume handshake drags on; the loss after the window ends the session.
        s.connection_lost(t0 + cfg.reconnect_window, None);
        assert_eq!(
            ev(&mut s),
            vec![
                SessionEvent::Disconnected { code: None },
                SessionEvent::Closed {
                    code: Some(ErrorCode::SessionExpired)
                }
            ]
        );
    }

    #[test]
    fn session_expired_on_resume_closes() {
        let t0 = Instant::now();
        let mut s = joined(t0, SyncKind::State);
        let at = lose_and_wait(&mut s, t0);
        s.connected(at);
        tx(&mut s);
        s.handle_message(
            at,
            ServerMsg::Error {
                code: ErrorCode::SessionExpired,
                detail: "gone".into(),
            },
        );
        assert_eq!(s.state(), SessionState::Closed);
        assert_eq!(
            ev(&mut s),
            vec![SessionEvent::Closed {
                code: Some(ErrorCode::SessionExpired)
            }]
        );
        // The driver reports the close too: nothing more happens.
        s.connection_lost(at, None);
        s.connected(at);
        s.handle_timeout(at + ms(100_000));
        assert!(ev(&mut s).is_empty());
        assert!(tx(&mut s).is_empty());
    }

    #[test]
    fn refused_join_closes() {
        let t0 = Instant::now();
        let mut s = session(t0);
        s.connected(t0);
        s.handle_message(
            t0,
            ServerMsg::Error {
                code: ErrorCode::RoomFull,
                detail: String::new(),
            },
        );
        assert_eq!(
            ev(&mut s),
            vec![SessionEvent::Closed {
                code: Some(ErrorCode::RoomFull)
            }]
        );
    }

    #[test]
    fn kicked_closes() {
        let t0 = Instant::now();
        let mut s = joined(t0, SyncKind::State);
        s.send_input(t0, vec![1]);
        s.handle_message(
            t0,
            ServerMsg::Kicked {
                code: ErrorCode::Kicked,
            },
        );
        assert_eq!(s.state(), SessionState::Closed);
        assert_eq!(
            ev(&mut s),
            vec![SessionEvent::Closed {
                code: Some(ErrorCode::Kicked)
            }]
        );
        assert!(tx(&mut s).is_empty());
        assert_eq!(s.send_input(t0, vec![2]), 0);
    }

    #[test]
    fn non_resumable_loss_closes() {
        let t0 = Instant::now();
        let mut s = joined(t0, SyncKind::State);
        s.connection_lost(t0, Some(ErrorCode::ServerShutdown));
        assert_eq!(
            ev(&mut s),
            vec![
                SessionEvent::Disconnected {
                    code: Some(ErrorCode::ServerShutdown)
                },
                SessionEvent::Closed {
                    code: Some(ErrorCode::ServerShutdown)
                }
            ]
        );
    }

    #[test]
    fn fresh_join_handshake_timeout_closes() {
        let t0 = Instant::now();
        let mut s = session(t0);
        s.connected(t0);
        assert_eq!(s.poll_timeout(), Some(t0 + ms(5000)));
        s.handle_timeout(t0 + ms(5000));
        assert_eq!(
            ev(&mut s),
            vec![
                SessionEvent::Disconnected {
                    code: Some(ErrorCode::HandshakeTimeout)
                },
                SessionEvent::Closed {
                    code: Some(ErrorCode::HandshakeTimeout)
                }
            ]
        );
    }

    #[test]
    fn resume_handshake_timeout_retries_with_backoff() {
        let t0 = Instant::now();
        let mut s = joined(t0, SyncKind::State);
        let at = lose_and_wait(&mut s, t0);
        s.connected(at);
        s.handle_timeout(at + ms(5000));
        assert_eq!(s.state(), SessionState::Reconnecting);
        assert_eq!(
            ev(&mut s),
            vec![SessionEvent::Disconnected {
                code: Some(ErrorCode::HandshakeTimeout)
            }]
        );
        let next = s.poll_timeout().unwrap();
        assert!(next <= at + ms(5000) + ms(200));
        s.handle_timeout(next);
        assert_eq!(ev(&mut s), vec![SessionEvent::Reconnect { attempt: 2 }]);
    }

    #[test]
    fn leave_queues_leave_and_closes() {
        let t0 = Instant::now();
        let mut s = joined(t0, SyncKind::State);
        s.send_input(t0, vec![1]);
        s.leave();
        assert_eq!(s.state(), SessionState::Closed);
        assert_eq!(tx(&mut s), vec![ClientMsg::Leave { seq: 2 }]);
        assert_eq!(ev(&mut s), vec![SessionEvent::Closed { code: None }]);
        s.leave();
        assert!(tx(&mut s).is_empty() && ev(&mut s).is_empty());

        // Before the Welcome there is nothing to tell the server: just close.
        let mut s = session(t0);
        s.connected(t0);
        tx(&mut s);
        s.leave();
        assert!(tx(&mut s).is_empty());
        assert_eq!(ev(&mut s), vec![SessionEvent::Closed { code: None }]);
    }

    #[test]
    fn wrong_state_messages_are_ignored() {
        let t0 = Instant::now();
        let (_, samples) = msg::samples();
        // Before the transport is up, everything is ignored.
        let mut s = session(t0);
        for m in samples.clone() {
            s.handle_message(t0, m);
        }
        assert_eq!(s.state(), SessionState::Connecting);
        assert!(ev(&mut s).is_empty() && tx(&mut s).is_empty());

        // During the handshake, game traffic is ignored.
        s.connected(t0);
        tx(&mut s);
        for m in [
            ServerMsg::Frame {
                n: 3,
                inputs: vec![],
            },
            ServerMsg::Started {
                tick: 1,
                players: 2,
            },
            ServerMsg::Pong {
                client_time_us: 0,
                server_time_us: 0,
            },
        ] {
            s.handle_message(t0, m);
        }
        assert_eq!(s.last_frame(), 0);
        assert!(ev(&mut s).is_empty());
        // Game sends before the Welcome are ignored.
        assert_eq!(s.send_input(t0, vec![1]), 0);
        s.send_frame_input(1, vec![]);
        s.send_checksum(1, 1);
        assert!(tx(&mut s).is_empty());
        assert_eq!(s.next_seq(), 1);

        // In the room, handshake messages are ignored.
        let mut s = joined(t0, SyncKind::Lockstep);
        s.handle_message(t0, ServerMsg::Challenge { nonce: NONCE });
        s.handle_message(
            t0,
            ServerMsg::Welcome(welcome(5, 1000, SyncKind::State, false)),
        );
        s.connected(t0);
        assert_eq!(s.state(), SessionState::InRoom);
        assert_eq!(s.welcome().unwrap().resume_counter, 1);
        assert!(ev(&mut s).is_empty() && tx(&mut s).is_empty());
        // A pong for a ping never sent is ignored.
        s.handle_message(
            t0,
            ServerMsg::Pong {
                client_time_us: 5,
                server_time_us: 6,
            },
        );
        assert_eq!(s.rtt(), None);
        s.handle_message(t0, ServerMsg::Desync { frame: 4 });
        assert_eq!(ev(&mut s), vec![SessionEvent::Desync { frame: 4 }]);
    }

    #[derive(Debug, Clone)]
    enum Op {
        Server(usize),
        EchoPing,
        Connected,
        Lost(Option<u16>),
        Input(u8),
        FrameInput(u64),
        Checksum,
        Leave,
        Timeout,
    }

    fn op() -> impl Strategy<Value = Op> {
        let n = msg::samples().1.len();
        prop_oneof![
            6 => (0..n).prop_map(Op::Server),
            1 => Just(Op::EchoPing),
            2 => Just(Op::Connected),
            1 => proptest::option::of(0u16..30).prop_map(Op::Lost),
            2 => any::<u8>().prop_map(Op::Input),
            1 => any::<u64>().prop_map(Op::FrameInput),
            1 => Just(Op::Checksum),
            1 => prop::bool::weighted(0.05).prop_map(|l| if l { Op::Leave } else { Op::Timeout }),
            3 => Just(Op::Timeout),
        ]
    }

    proptest! {
        #[test]
        fn arbitrary_server_messages_never_panic_and_seqs_increase(
            seed in any::<u64>(),
            steps in prop::collection::vec((op(), 0u64..40_000, any::<bool>()), 0..200),
        ) {
            let (_, samples) = msg::samples();
            let t0 = Instant::now();
            let cfg = SessionConfig { jitter_seed: seed, ..SessionConfig::default() };
            let mut s = ClientSession::new(cfg, "t".into(), JOIN, t0);
            let mut now = t0;
            let mut last_seq = 0u64;
            let mut last_ping = None;
            let mut closed = false;
            for (op, advance_ms, backwards) in steps {
                // Mostly forward, sometimes a clock fed backwards: neither may panic.
                now = if backwards {
                    now.checked_sub(ms(advance_ms)).unwrap_or(now)
                } else {
                    now + ms(advance_ms)
                };
                match op {
                    Op::Server(i) => s.handle_message(now, samples[i].clone()),
                    Op::EchoPing => {
                        if let Some(us) = last_ping {
                            s.handle_message(now, ServerMsg::Pong { client_time_us: us, server_time_us: 0 });
                        }
                    }
                    Op::Connected => s.connected(now),
                    Op::Lost(code) => s.connection_lost(now, code.map(ErrorCode::from)),
                    Op::Input(b) => { s.send_input(now, vec![b]); }
                    Op::FrameInput(f) => s.send_frame_input(f, vec![1]),
                    Op::Checksum => s.send_checksum(1, 2),
                    Op::Leave => s.leave(),
                    Op::Timeout => {
                        if let Some(at) = s.poll_timeout() {
                            now = now.max(at);
                        }
                        s.handle_timeout(now);
                    }
                }
                while let Some(m) = s.poll_transmit() {
                    if let ClientMsg::Ping { client_time_us, .. } = m {
                        last_ping = Some(client_time_us);
                    }
                    if let Some(seq) = m.seq() {
                        prop_assert!(seq > last_seq, "seq {} after {}", seq, last_seq);
                        last_seq = seq;
                    }
                }
                while let Some(e) = s.poll_event() {
                    prop_assert!(!closed, "event after Closed: {:?}", e);
                    closed = matches!(e, SessionEvent::Closed { .. });
                }
                prop_assert_eq!(closed, s.state() == SessionState::Closed);
                prop_assert!(s.next_seq() > last_seq);
            }
        }
    }
}
