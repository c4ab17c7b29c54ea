//! One player connection, above the transport: the handshake (Hello or Resume → Challenge →
//! ChallengeResponse → Welcome, under a timeout), then the play loop that checks every
//! message's sequence number against the session's replay window and forwards it to the room.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use crossbeam_channel::TrySendError;
use rand::Rng;
use tickroom_protocol::{
    codec, protocol_hash, token, ClientMsg, ErrorCode, Secret, ServerMsg, TokenError,
    PROTOCOL_VERSION,
};
use tokio::sync::oneshot;
use tracing::{debug, instrument};

use crate::limits::{ConnectionSlot, IpGuard, SlotError};
use crate::outbox::Outbox;
use crate::room::{RoomId, RoomInput, SeatRefusal, Seated, Seating, SessionId};
use crate::transport::{Reader, TransportKind};
use crate::{unix_ms, RoomServer, SessionRecord};

/// How long a closed connection keeps reading (and dropping) what the client still sends,
/// waiting for the client to close its side.
const CLOSE_LINGER: std::time::Duration = std::time::Duration::from_secs(1);
/// The window over which rate-limited messages are counted for disconnection.
const RATE_WINDOW: std::time::Duration = std::time::Duration::from_secs(1);

/// Why a handshake failed; its `code()` and text reach the client as `Error{code, detail}`.
#[derive(Debug, thiserror::Error)]
enum HandshakeError {
    /// The transport closed or failed before the handshake finished.
    #[error("connection closed during the handshake")]
    Closed,
    /// The transport refused what the client sent (too large, undecodable).
    #[error("{0}")]
    Transport(ErrorCode),
    /// A message that has no place at this step.
    #[error("expected {expected}, got {got}")]
    Unexpected {
        expected: &'static str,
        got: &'static str,
    },
    /// The client speaks another protocol version or schema.
    #[error("server speaks protocol {PROTOCOL_VERSION} (schema {server_hash:016x}); client sent {version} ({hash:016x})")]
    Version {
        version: u16,
        hash: u64,
        server_hash: u64,
    },
    /// The ticket is past its expiry.
    #[error("ask the gateway for a new ticket")]
    TicketExpired,
    /// The ticket's signature or format is wrong.
    #[error("{0}")]
    TicketInvalid(TokenError),
    /// The ticket names another room server.
    #[error("ticket is for server {ticket}, this is {ours}")]
    WrongServer { ticket: String, ours: String },
    /// The ticket's mode is not one this server runs.
    #[error("no mode {0}")]
    UnknownMode(String),
    /// The ticket was already used.
    #[error("this ticket was already used")]
    TicketReused,
    /// The challenge response's MAC is wrong.
    #[error("challenge response is wrong")]
    BadChallengeResponse,
    /// The session to resume is gone.
    #[error("rejoin through the gateway")]
    SessionExpired,
    /// Another resume of the same session won the race.
    #[error("a concurrent resume won")]
    ConcurrentResume,
    /// The room refused the seat (full, busy, the game's admission...).
    #[error("{}", .0.detail)]
    Seat(SeatRefusal),
    /// No session slot for a proven client, or the pre-login budget evicted this connection.
    #[error("{0}")]
    Slot(SlotError),
}

impl HandshakeError {
    /// The stable code the client gets.
    fn code(&self) -> ErrorCode {
        match self {
            HandshakeError::Closed => ErrorCode::Unknown,
            HandshakeError::Transport(code) => *code,
            HandshakeError::Unexpected { .. } => ErrorCode::UnexpectedMessage,
            HandshakeError::Version { .. } => ErrorCode::VersionMismatch,
            HandshakeError::TicketExpired => ErrorCode::TicketExpired,
            HandshakeError::TicketInvalid(_) => ErrorCode::TicketInvalid,
            HandshakeError::WrongServer { .. } => ErrorCode::WrongServer,
            HandshakeError::UnknownMode(_) => ErrorCode::UnknownMode,
            HandshakeError::TicketReused => ErrorCode::TicketReused,
            HandshakeError::BadChallengeResponse | HandshakeError::ConcurrentResume => {
                ErrorCode::AuthFailed
            }
            HandshakeError::SessionExpired => ErrorCode::SessionExpired,
            HandshakeError::Seat(refusal) => refusal.code,
            HandshakeError::Slot(_) => ErrorCode::ServerBusy,
        }
    }
}

/// How the play loop ended.
enum End {
    /// The player sent `Leave`.
    Left,
    /// The transport closed or failed; the seat is kept for the grace period.
    Dropped,
    /// The server closes the connection with this code.
    Closed(ErrorCode),
}

/// Runs one connection from the first message to the end. Always closes `outbox` on return.
#[instrument(level = "debug", skip_all, fields(peer = %peer, transport = ?kind, session = tracing::field::Empty, room = tracing::field::Empty))]
pub async fn serve_connection(
    server: Arc<RoomServer>,
    mut reader: Reader,
    outbox: Arc<Outbox>,
    kind: TransportKind,
    peer: SocketAddr,
    ip: IpGuard,
    mut slot: ConnectionSlot,
) {
    let metrics = &server.shared.metrics;
    let gauge = match kind {
        TransportKind::Ws => &metrics.connections_ws,
        TransportKind::Quic => &metrics.connections_quic,
    };
    gauge.add(1);
    let started = Instant::now();
    let timeout = server.shared.config.handshake_timeout;
    // The seat the handshake asked a room for, if it got that far: a handshake that fails or
    // times out while (or after) the room seats it must not leave a seat bound to a closed
    // connection (it would never be detached, so never expire).
    let mut asked: Option<(RoomId, SessionId)> = None;
    let mark = slot.mark();
    let handshake = async {
        tokio::select! {
            done = handshake(&server, &mut reader, &outbox, &mut slot, &mut asked) => done,
            () = mark.evicted() => {
                metrics.prelogin_evictions.inc();
                Err(HandshakeError::Slot(SlotError::Evicted))
            }
        }
    };
    let session = match tokio::time::timeout(timeout, handshake).await {
        Ok(Ok(session)) => {
            metrics.record_handshake(started.elapsed());
            Some(session)
        }
        Ok(Err(e)) => {
            refuse(&server, &outbox, e.code(), e.to_string());
            None
        }
        Err(_) => {
            refuse(
                &server,
                &outbox,
                ErrorCode::HandshakeTimeout,
                "handshake took too long".into(),
            );
            None
        }
    };
    if let (None, Some((room_id, session_id))) = (&session, asked) {
        let _ = server.pool.try_send(
            room_id,
            RoomInput::Detach {
                room_id,
                session_id,
                outbox: outbox.clone(),
            },
        );
    }
    if let Some(session) = session {
        let span = tracing::Span::current();
        span.record("session", session.session_id);
        span.record("room", session.room_id);
        let end = play(&server, &session, &mut reader, &outbox, &ip).await;
        debug!(session = session.session_id, "connection ended");
        match end {
            End::Left => outbox.close(ErrorCode::RoomClosed),
            End::Dropped => detach(&server, &session, &outbox),
            End::Closed(code) => {
                send(&server, &outbox, &ServerMsg::Kicked { code });
                outbox.close(code);
                detach(&server, &session, &outbox);
            }
        }
    }
    // Keep reading until the client closes (or a short linger): dropping a socket with the
    // client's input unread makes TCP send a reset, which discards the last messages still in
    // flight to the client (the result, the close reason).
    let _ = tokio::time::timeout(CLOSE_LINGER, async {
        while let Ok(Some(_)) = reader.recv().await {}
    })
    .await;
    gauge.add(-1);
}

fn detach(server: &RoomServer, session: &SessionRecord, outbox: &Arc<Outbox>) {
    let _ = server.pool.try_send(
        session.room_id,
        RoomInput::Detach {
            room_id: session.room_id,
            session_id: session.session_id,
            outbox: outbox.clone(),
        },
    );
    outbox.close(ErrorCode::Kicked);
}

fn refuse(server: &RoomServer, outbox: &Outbox, code: ErrorCode, detail: String) {
    server.shared.metrics.handshake_failures.inc();
    debug!(%code, %detail, "handshake refused");
    send(server, outbox, &ServerMsg::Error { code, detail });
    outbox.close(code);
}

/// Encodes and queues a reliable message from the connection itself.
fn send(server: &RoomServer, outbox: &Outbox, msg: &ServerMsg) {
    let mut buf = Vec::new();
    if codec::encode_server(msg, &mut buf).is_ok() && !outbox.push_reliable(buf.into()) {
        server.shared.metrics.slow_consumers.inc();
    }
}

async fn recv(reader: &mut Reader, server: &RoomServer) -> Result<ClientMsg, HandshakeError> {
    match reader.recv().await {
        Ok(Some((msg, len))) => {
            server.shared.metrics.messages_in.inc();
            server.shared.metrics.bytes_in.add(len as u64);
            Ok(msg)
        }
        Ok(None) => Err(HandshakeError::Closed),
        Err(code) => Err(HandshakeError::Transport(code)),
    }
}

async fn handshake(
    server: &RoomServer,
    reader: &mut Reader,
    outbox: &Arc<Outbox>,
    slot: &mut ConnectionSlot,
    asked: &mut Option<(RoomId, SessionId)>,
) -> Result<Arc<SessionRecord>, HandshakeError> {
    match recv(reader, server).await? {
        ClientMsg::Hello {
            protocol_version,
            protocol_hash: hash,
            ticket,
        } => {
            check_version(protocol_version, hash)?;
            join(server, reader, outbox, &ticket, slot, asked).await
        }
        ClientMsg::Resume {
            protocol_version,
            protocol_hash: hash,
            session_id,
            last_frame,
        } => {
            check_version(protocol_version, hash)?;
            resume(server, reader, outbox, session_id, last_frame, slot, asked).await
        }
        other => Err(HandshakeError::Unexpected {
            expected: "Hello or Resume",
            got: other.kind(),
        }),
    }
}

fn check_version(version: u16, hash: u64) -> Result<(), HandshakeError> {
    if version != PROTOCOL_VERSION || hash != protocol_hash() {
        return Err(HandshakeError::Version {
            version,
            hash,
            server_hash: protocol_hash(),
        });
    }
    Ok(())
}

/// Sends a fresh challenge and checks the answer against each of `secrets`: the index of the
/// one it was made with.
async fn challenge(
    server: &RoomServer,
    reader: &mut Reader,
    outbox: &Outbox,
    secrets: &[Secret],
) -> Result<usize, HandshakeError> {
    let nonce: Secret = rand::rng().random();
    send(server, outbox, &ServerMsg::Challenge { nonce });
    match recv(reader, server).await? {
        ClientMsg::ChallengeResponse { mac } => secrets
            .iter()
            .position(|s| token::verify_challenge_mac(s, &nonce, &mac))
            .ok_or(HandshakeError::BadChallengeResponse),
        other => Err(HandshakeError::Unexpected {
            expected: "ChallengeResponse",
            got: other.kind(),
        }),
    }
}

async fn join(
    server: &RoomServer,
    reader: &mut Reader,
    outbox: &Arc<Outbox>,
    ticket: &str,
    slot: &mut ConnectionSlot,
    asked: &mut Option<(RoomId, SessionId)>,
) -> Result<Arc<SessionRecord>, HandshakeError> {
    let shared = &server.shared;
    let skew = shared.config.clock_skew.as_millis() as u64;
    let ticket = shared
        .keys
        .verify_ticket(ticket, unix_ms(), skew)
        .map_err(|e| match e {
            TokenError::Expired => HandshakeError::TicketExpired,
            other => HandshakeError::TicketInvalid(other),
        })?;
    let claims = ticket.claims().clone();
    if claims.server_id != shared.config.server_id {
        return Err(HandshakeError::WrongServer {
            ticket: claims.server_id,
            ours: shared.config.server_id.clone(),
        });
    }
    let mode = shared
        .games
        .get(&claims.mode)
        .map(|g| g.mode.clone())
        .ok_or_else(|| HandshakeError::UnknownMode(claims.mode.clone()))?;
    let join_secret = shared.keys.join_secret(&ticket);
    challenge(server, reader, outbox, &[join_secret]).await?;
    promote(server, slot)?;
    // Reserve only after the challenge: a captured Hello cannot burn someone else's ticket.
    if !shared.reserve_ticket(claims.nonce, claims.expires_ms) {
        return Err(HandshakeError::TicketReused);
    }
    let session_id = loop {
        let id: u64 = rand::rng().random();
        if id != 0 && !shared.sessions.contains_key(&id) {
            break id;
        }
    };
    let ids = (session_id, claims.player_id, claims.room_id);
    let ticket_key = (ticket.key_id(), claims.nonce);
    let record = Arc::new(SessionRecord {
        spectator: claims.spectator,
        ..SessionRecord::new(shared, ids, mode.clone(), join_secret, ticket_key)
    });
    let seating = Seating {
        session_id,
        player_id: claims.player_id,
        resume_counter: 0,
        next_seq: 1,
        metadata: claims.metadata,
        spectator: claims.spectator,
    };
    let (reply, answer) = oneshot::channel();
    // The room records the session in the session table once the player is seated.
    let msg = RoomInput::Join {
        room_id: claims.room_id,
        mode,
        seating: Box::new(seating),
        session: record.clone(),
        outbox: outbox.clone(),
        reply,
    };
    *asked = Some((claims.room_id, session_id));
    match seat(server, claims.room_id, msg, answer).await {
        Ok(_) => {
            shared.metrics.joins.inc();
            Ok(record)
        }
        Err(refusal) => {
            shared.release_ticket(&claims.nonce);
            Err(HandshakeError::Seat(refusal))
        }
    }
}

async fn resume(
    server: &RoomServer,
    reader: &mut Reader,
    outbox: &Arc<Outbox>,
    session_id: u64,
    last_frame: u64,
    slot: &mut ConnectionSlot,
    asked: &mut Option<(RoomId, SessionId)>,
) -> Result<Arc<SessionRecord>, HandshakeError> {
    let shared = &server.shared;
    let known = shared.sessions.get(&session_id).map(|r| r.clone());
    let record = match known {
        Some(record) => record,
        None => take_over(server, session_id).await?,
    };
    // The keys are derived from the join secret on both ends: nothing secret was ever sent
    // on a room connection, so capturing one cannot resume it.
    let (seen, keys) = record.resume_keys();
    let secrets: Vec<Secret> = keys.iter().map(|(_, k)| *k).collect();
    let used = keys[challenge(server, reader, outbox, &secrets).await?].0;
    promote(server, slot)?;
    // Rotate: the next resume needs the next key.
    let next = record
        .rotate_resume(seen, used)
        .ok_or(HandshakeError::ConcurrentResume)?;
    let seating = Seating {
        session_id,
        player_id: record.player_id,
        resume_counter: next,
        next_seq: record.window.lock().highest() + 1,
        metadata: Default::default(),
        spectator: false,
    };
    let (reply, answer) = oneshot::channel();
    let msg = RoomInput::Resume {
        room_id: record.room_id,
        seating: Box::new(seating),
        last_frame,
        outbox: outbox.clone(),
        reply,
    };
    *asked = Some((record.room_id, session_id));
    if let Err(refusal) = seat(server, record.room_id, msg, answer).await {
        // The room refused before any Welcome: the client never saw the new count, so it
        // keeps the old key for its next try.
        record.restore_resume(next, seen);
        return Err(HandshakeError::Seat(refusal));
    }
    shared.metrics.resumes.inc();
    Ok(record)
}

/// A resume of a session this server does not know: if the session's room died with its
/// owner and the gateway moved it here, the room is taken over from its failover image (its
/// seats' sessions join the session table) and the resume goes on. Anything else is
/// `SessionExpired`, and a directory that does not answer `ServerBusy` (try again).
async fn take_over(
    server: &RoomServer,
    session_id: u64,
) -> Result<Arc<SessionRecord>, HandshakeError> {
    let shared = &server.shared;
    let Some(crate::Failover(dir)) = shared.failover.get() else {
        return Err(HandshakeError::SessionExpired);
    };
    let busy = |e: tickroom_gateway::DirectoryError| {
        debug!(error = %e, "directory unavailable during a takeover");
        HandshakeError::Seat(ErrorCode::ServerBusy.into())
    };
    let room_id = dir
        .session_room(session_id)
        .await
        .map_err(busy)?
        .ok_or(HandshakeError::SessionExpired)?;
    let record = dir.room(room_id).await.map_err(busy)?;
    let Some(record) = record.filter(|r| r.server.server_id == shared.config.server_id) else {
        // The room lives elsewhere (or nowhere): the gateway says where.
        return Err(HandshakeError::SessionExpired);
    };
    let bytes = dir
        .room_image(room_id)
        .await
        .map_err(busy)?
        .ok_or(HandshakeError::SessionExpired)?;
    // A room that cannot go on: its record is closed (at our epoch), so its players, told
    // why, find it over and queue again.
    let ends = |why: String| async move {
        tracing::error!(
            room = room_id,
            "the room cannot be taken over and ends: {why}"
        );
        shared.metrics.images_refused.inc();
        if let Err(e) = dir.close_room_at(room_id, record.epoch).await {
            debug!(error = %e, "could not close the room that cannot be taken over");
        }
        Err(HandshakeError::Seat(SeatRefusal {
            code: ErrorCode::SessionExpired,
            detail: format!("the room could not be taken over: {why}"),
        }))
    };
    let image = match crate::room::image::RoomImage::decode(&bytes, room_id) {
        Ok(image) => image,
        Err(e) => return ends(e.to_string()).await,
    };
    let lockstep = shared
        .games
        .get(&image.mode)
        .is_some_and(|g| g.mode.sync == tickroom_game::modes::ModeSync::Lockstep);
    let frames = match lockstep {
        true => dir.room_frames(room_id).await.map_err(busy)?,
        false => Vec::new(),
    };
    // The log must hold every frame closed before the image was taken; a shorter one (frames
    // lost while the directory was away) cannot go on: its players saw frames it lacks.
    if lockstep && (frames.len() as u64).saturating_add(1) < image.tick {
        let why = format!(
            "its frame log is incomplete ({} frames, the image is at frame {})",
            frames.len(),
            image.tick
        );
        return ends(why).await;
    }
    let (reply, answer) = oneshot::channel();
    let restore = RoomInput::Restore {
        room_id,
        epoch: record.epoch,
        image: Box::new(image),
        frames,
        reply,
    };
    if server.pool.try_send(room_id, restore).is_err() {
        return Err(HandshakeError::Seat(ErrorCode::ServerBusy.into()));
    }
    match answer.await {
        Ok(Ok(())) => {}
        Ok(Err(code)) => return Err(HandshakeError::Seat(code.into())),
        Err(_) => return Err(HandshakeError::Seat(ErrorCode::ServerShutdown.into())),
    }
    shared
        .sessions
        .get(&session_id)
        .map(|r| r.clone())
        .ok_or(HandshakeError::SessionExpired)
}

/// The client proved a ticket or session: its pre-login permit becomes a session permit.
fn promote(server: &RoomServer, slot: &mut ConnectionSlot) -> Result<(), HandshakeError> {
    slot.promote(&server.session_slots).map_err(|e| {
        if e == SlotError::Full {
            server.shared.metrics.server_busy.inc();
        }
        HandshakeError::Slot(e)
    })
}

async fn seat(
    server: &RoomServer,
    room_id: u64,
    msg: RoomInput,
    answer: oneshot::Receiver<Result<Seated, SeatRefusal>>,
) -> Result<Seated, SeatRefusal> {
    if server.pool.try_send(room_id, msg).is_err() {
        server.shared.metrics.server_busy.inc();
        return Err(ErrorCode::ServerBusy.into());
    }
    answer
        .await
        .unwrap_or_else(|_| Err(ErrorCode::ServerShutdown.into()))
}

async fn play(
    server: &RoomServer,
    session: &SessionRecord,
    reader: &mut Reader,
    outbox: &Outbox,
    ip: &IpGuard,
) -> End {
    let shared = &server.shared;
    let config = &shared.config;
    let idle = config.idle_timeout;
    let room_id = session.room_id;
    let session_id = session.session_id;
    let max_message_bytes = session.mode.max_message_bytes as usize;
    let max_input_bytes = session.mode.max_input_bytes as usize;
    let max_inputs = usize::from(session.mode.input_redundancy).max(1);
    let mut replays_in_a_row = 0;
    let mut limited_window = (Instant::now(), 0u32);
    // The idle timer is armed once per idle period, not once per message: when it fires, a
    // connection heard from since is given the rest of its period (both transports' `recv`
    // keep partial data in the reader, so interrupting it loses nothing).
    let mut last_heard = Instant::now();
    let idle_timer = tokio::time::sleep(idle);
    tokio::pin!(idle_timer);
    loop {
        let received = tokio::select! {
            // A message that arrived as the timer fired is read first: the timer's check
            // must see it, or a talking player could be closed as idle.
            biased;
            received = reader.recv() => received,
            () = &mut idle_timer => {
                let quiet_until = last_heard + idle;
                if Instant::now() >= quiet_until {
                    return End::Closed(ErrorCode::IdleTimeout);
                }
                idle_timer.as_mut().reset(quiet_until.into());
                continue;
            }
        };
        let msg = match received {
            Err(code) => return End::Closed(code),
            Ok(None) => return End::Dropped,
            Ok(Some((msg, len))) => {
                last_heard = Instant::now();
                shared.metrics.messages_in.inc();
                shared.metrics.bytes_in.add(len as u64);
                msg
            }
        };
        if outbox.is_closed() {
            // Replaced by a newer connection of the same session, or kicked.
            return End::Dropped;
        }
        let Some(seq) = msg.seq() else {
            return End::Closed(ErrorCode::UnexpectedMessage);
        };
        // Both limits are checked; a flood is dropped before it costs the room anything.
        if session.message_limit.check().is_err() || ip.limiter.check().is_err() {
            shared.metrics.rate_limited.inc();
            let now = Instant::now();
            if now.duration_since(limited_window.0) >= RATE_WINDOW {
                limited_window = (now, 0);
            }
            limited_window.1 += 1;
            if limited_window.1 > config.max_rate_limited_per_s {
                return End::Closed(ErrorCode::RateLimited);
            }
            continue;
        }
        // Check, forward and commit under one lock: a concurrent connection of the same
        // session (a half-open one and its resume) cannot both accept the same seq.
        let mut window = session.window.lock();
        if window.check(seq).is_err() {
            drop(window);
            shared.metrics.replayed_messages.inc();
            replays_in_a_row += 1;
            if replays_in_a_row > shared.config.max_consecutive_replays {
                return End::Closed(ErrorCode::Replay);
            }
            continue;
        }
        replays_in_a_row = 0;
        if session.spectator && msg.is_play() {
            // A spectator only watches: refused, and the session goes on.
            shared.metrics.refused_messages.inc();
            let code = ErrorCode::SpectatorReadOnly;
            send(server, outbox, &ServerMsg::Refused { seq, code });
            window.commit(seq);
            continue;
        }
        let forwarded = match msg {
            ClientMsg::Input {
                tick,
                ack_tick,
                inputs,
                ..
            } => {
                // Bounded by the mode before anything reaches the room: a 64 KiB message of
                // empty entries must not become 65,000 inputs for the room worker to walk.
                if inputs.len() > max_inputs || inputs.iter().any(|i| i.len() > max_input_bytes) {
                    return End::Closed(ErrorCode::BadMessage);
                }
                let input = RoomInput::Input {
                    room_id,
                    session_id,
                    tick,
                    ack_tick,
                    inputs,
                    received: last_heard,
                };
                // Unreliable input: on a full queue it is dropped; redundancy covers it.
                if let Err(TrySendError::Full(_)) = server.pool.try_send(room_id, input) {
                    shared.metrics.dropped_inputs.inc();
                }
                true
            }
            ClientMsg::FrameInput { input, .. } if input.len() > max_input_bytes => {
                return End::Closed(ErrorCode::BadMessage);
            }
            ClientMsg::FrameInput { frame, input, .. } => server
                .pool
                .try_send(
                    room_id,
                    RoomInput::FrameInput {
                        room_id,
                        session_id,
                        frame,
                        input,
                    },
                )
                .is_ok(),
            ClientMsg::Checksum { frame, hash, .. } => server
                .pool
                .try_send(
                    room_id,
                    RoomInput::Checksum {
                        room_id,
                        session_id,
                        frame,
                        hash,
                    },
                )
                .is_ok(),
            ClientMsg::Ping { client_time_us, .. } => {
                let server_time_us =
                    Instant::now().duration_since(shared.started).as_micros() as u64;
                send(
                    server,
                    outbox,
                    &ServerMsg::Pong {
                        client_time_us,
                        server_time_us,
                    },
                );
                true
            }
            ClientMsg::Leave { .. } => {
                window.commit(seq);
                let _ = server.pool.try_send(
                    room_id,
                    RoomInput::Leave {
                        room_id,
                        session_id,
                    },
                );
                return End::Left;
            }
            ClientMsg::Message { seq, payload } => {
                // Too big or too fast for the mode: refused, and the session goes on.
                let refused = if payload.len() > max_message_bytes {
                    Some(ErrorCode::MessageTooLarge)
                } else if session.message_rate.check().is_err() {
                    Some(ErrorCode::RateLimited)
                } else {
                    None
                };
                match refused {
                    Some(code) => {
                        shared.metrics.refused_messages.inc();
                        send(server, outbox, &ServerMsg::Refused { seq, code });
                        true
                    }
                    None => server
                        .pool
                        .try_send(
                            room_id,
                            RoomInput::Message {
                                room_id,
                                session_id,
                                seq,
                                payload,
                            },
                        )
                        .is_ok(),
                }
            }
            ClientMsg::Hello { .. }
            | ClientMsg::ChallengeResponse { .. }
            | ClientMsg::Resume { .. } => {
                return End::Closed(ErrorCode::UnexpectedMessage);
            }
        };
        if !forwarded {
            // Reliable traffic cannot be dropped silently: the room is overloaded.
            shared.metrics.server_busy.inc();
            return End::Closed(ErrorCode::ServerBusy);
        }
        window.commit(seq);
    }
}
