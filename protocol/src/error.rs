//! `ErrorCode`: the one list of reasons a connection, request or room can be refused or closed.
//! Numeric values are stable on the wire and in the gateway's JSON; never renumber, only append.

use std::fmt;

use serde::{Deserialize, Serialize};

/// A stable, numbered reason sent in `Error`, `Kicked` and the gateway's JSON errors.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(from = "u16", into = "u16")]
pub enum ErrorCode {
    /// A code this build does not know (sent by a newer peer).
    Unknown,
    /// The peer sent bytes that do not decode as a message.
    BadMessage,
    /// `Hello` carried a protocol version or schema hash this server does not speak.
    VersionMismatch,
    /// The join ticket's signature or format is wrong.
    TicketInvalid,
    /// The join ticket is past its expiry.
    TicketExpired,
    /// The join ticket was already used.
    TicketReused,
    /// The join ticket names another room server.
    WrongServer,
    /// The room has no free slot.
    RoomFull,
    /// The server refuses new work (too many rooms, connections or too slow ticks).
    ServerBusy,
    /// The peer exceeded a rate limit.
    RateLimited,
    /// The peer replayed a sequence number it already used (or one too old).
    Replay,
    /// The peer was removed by the server.
    Kicked,
    /// The handshake did not finish in time.
    HandshakeTimeout,
    /// Nothing was received for too long.
    IdleTimeout,
    /// The challenge response MAC did not verify.
    AuthFailed,
    /// A message arrived that is not allowed in the current state (e.g. input before Welcome).
    UnexpectedMessage,
    /// A message or frame was larger than the limit.
    MessageTooLarge,
    /// The session to resume is gone (grace period over or never existed).
    SessionExpired,
    /// The server is shutting down.
    ServerShutdown,
    /// The room ended (match over or every player left).
    RoomClosed,
    /// A lockstep client's checksum disagreed with the others.
    Desync,
    /// The peer fell too far behind on a reliable stream.
    SlowConsumer,
    /// The game mode is not known.
    UnknownMode,
    /// The session token is missing, malformed, badly signed or expired.
    Unauthorized,
    /// The requested thing (matchmaking ticket, room) does not exist.
    NotFound,
    /// The request conflicts with the current state (e.g. already queued).
    Conflict,
    /// A request was malformed.
    BadRequest,
    /// The server hit an internal fault; the request may be retried.
    Internal,
    /// The player's room server is gone; rejoin through the gateway.
    ServerGone,
    /// The game refused the player at admission (`join_attempt`); the detail says why.
    JoinRefused,
    /// A spectator sent input, a checksum or a custom message: spectators only watch.
    SpectatorReadOnly,
    /// The room moved to another server (this one lost it: paused, cut off, or handing it
    /// over on shutdown). Ask the gateway where it is now and resume the session there.
    RoomMoved,
}

/// Every code with its stable wire number; the single source for both directions.
const CODES: &[(ErrorCode, u16)] = &[
    (ErrorCode::Unknown, 0),
    (ErrorCode::BadMessage, 1),
    (ErrorCode::VersionMismatch, 2),
    (ErrorCode::TicketInvalid, 3),
    (ErrorCode::TicketExpired, 4),
    (ErrorCode::TicketReused, 5),
    (ErrorCode::WrongServer, 6),
    (ErrorCode::RoomFull, 7),
    (ErrorCode::ServerBusy, 8),
    (ErrorCode::RateLimited, 9),
    (ErrorCode::Replay, 10),
    (ErrorCode::Kicked, 11),
    (ErrorCode::HandshakeTimeout, 12),
    (ErrorCode::IdleTimeout, 13),
    (ErrorCode::AuthFailed, 14),
    (ErrorCode::UnexpectedMessage, 15),
    (ErrorCode::MessageTooLarge, 16),
    (ErrorCode::SessionExpired, 17),
    (ErrorCode::ServerShutdown, 18),
    (ErrorCode::RoomClosed, 19),
    (ErrorCode::Desync, 20),
    (ErrorCode::SlowConsumer, 21),
    (ErrorCode::UnknownMode, 22),
    (ErrorCode::Unauthorized, 23),
    (ErrorCode::NotFound, 24),
    (ErrorCode::Conflict, 25),
    (ErrorCode::BadRequest, 26),
    (ErrorCode::Internal, 27),
    (ErrorCode::ServerGone, 28),
    (ErrorCode::JoinRefused, 29),
    (ErrorCode::SpectatorReadOnly, 30),
    (ErrorCode::RoomMoved, 31),
];

/// WebSocket close codes for tickroom reasons start here (4000–4999 is for applications):
/// a connection closed with `code` carries close code `WS_CLOSE_CODE_BASE + code.as_u16()`.
pub const WS_CLOSE_CODE_BASE: u16 = 4000;

impl ErrorCode {
    /// The WebSocket close code that carries this code.
    pub fn ws_close_code(self) -> u16 {
        WS_CLOSE_CODE_BASE.saturating_add(self.as_u16())
    }

    /// The code a WebSocket close code carries (None below the application range).
    pub fn from_ws_close_code(n: u16) -> Option<ErrorCode> {
        n.checked_sub(WS_CLOSE_CODE_BASE).map(ErrorCode::from)
    }

    /// The stable wire number.
    pub fn as_u16(self) -> u16 {
        CODES
            .iter()
            .find(|(c, _)| *c == self)
            .map_or(0, |(_, n)| *n)
    }

    /// Every known code (for tests and documentation).
    pub fn all() -> impl Iterator<Item = ErrorCode> {
        CODES.iter().map(|(c, _)| *c)
    }

    /// A short machine name, used as the `code` string in JSON and metrics labels.
    pub fn name(self) -> &'static str {
        match self {
            ErrorCode::Unknown => "unknown",
            ErrorCode::BadMessage => "bad_message",
            ErrorCode::VersionMismatch => "version_mismatch",
            ErrorCode::TicketInvalid => "ticket_invalid",
            ErrorCode::TicketExpired => "ticket_expired",
            ErrorCode::TicketReused => "ticket_reused",
            ErrorCode::WrongServer => "wrong_server",
            ErrorCode::RoomFull => "room_full",
            ErrorCode::ServerBusy => "server_busy",
            ErrorCode::RateLimited => "rate_limited",
            ErrorCode::Replay => "replay",
            ErrorCode::Kicked => "kicked",
            ErrorCode::HandshakeTimeout => "handshake_timeout",
            ErrorCode::IdleTimeout => "idle_timeout",
            ErrorCode::AuthFailed => "auth_failed",
            ErrorCode::UnexpectedMessage => "unexpected_message",
            ErrorCode::MessageTooLarge => "message_too_large",
            ErrorCode::SessionExpired => "session_expired",
            ErrorCode::ServerShutdown => "server_shutdown",
            ErrorCode::RoomClosed => "room_closed",
            ErrorCode::Desync => "desync",
            ErrorCode::SlowConsumer => "slow_consumer",
            ErrorCode::UnknownMode => "unknown_mode",
            ErrorCode::Unauthorized => "unauthorized",
            ErrorCode::NotFound => "not_found",
            ErrorCode::Conflict => "conflict",
            ErrorCode::BadRequest => "bad_request",
            ErrorCode::Internal => "internal",
            ErrorCode::ServerGone => "server_gone",
            ErrorCode::JoinRefused => "join_refused",
            ErrorCode::SpectatorReadOnly => "spectator_read_only",
            ErrorCode::RoomMoved => "room_moved",
        }
    }
}

impl From<u16> for ErrorCode {
    fn from(n: u16) -> Self {
        CODES
            .iter()
            .find(|(_, v)| *v == n)
            .map_or(ErrorCode::Unknown, |(c, _)| *c)
    }
}

impl From<ErrorCode> for u16 {
    fn from(c: ErrorCode) -> u16 {
        c.as_u16()
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = match self {
            ErrorCode::Unknown => "unknown error",
            ErrorCode::BadMessage => "the message could not be decoded",
            ErrorCode::VersionMismatch => "client and server speak different protocol versions",
            ErrorCode::TicketInvalid => "the join ticket is not valid",
            ErrorCode::TicketExpired => {
                "the join ticket has expired; ask the gateway for a new one"
            }
            ErrorCode::TicketReused => "the join ticket was already used",
            ErrorCode::WrongServer => "the join ticket is for another room server",
            ErrorCode::RoomFull => "the room is full",
            ErrorCode::ServerBusy => "the server is busy; try again shortly",
            ErrorCode::RateLimited => "too many requests; slow down",
            ErrorCode::Replay => "a message was replayed",
            ErrorCode::Kicked => "you were removed from the room",
            ErrorCode::HandshakeTimeout => "the handshake took too long",
            ErrorCode::IdleTimeout => "nothing was received for too long",
            ErrorCode::AuthFailed => "authentication failed",
            ErrorCode::UnexpectedMessage => "a message arrived that is not allowed now",
            ErrorCode::MessageTooLarge => "a message was larger than allowed",
            ErrorCode::SessionExpired => "the session has expired; rejoin through the gateway",
            ErrorCode::ServerShutdown => "the server is shutting down",
            ErrorCode::RoomClosed => "the room has closed",
            ErrorCode::Desync => "the game state diverged between players",
            ErrorCode::SlowConsumer => "the connection fell too far behind",
            ErrorCode::UnknownMode => "no such game mode",
            ErrorCode::Unauthorized => "the session token is missing, invalid or expired",
            ErrorCode::NotFound => "not found",
            ErrorCode::Conflict => "the request conflicts with the current state",
            ErrorCode::BadRequest => "the request is malformed",
            ErrorCode::Internal => "internal server error",
            ErrorCode::ServerGone => "the room server is gone; rejoin through the gateway",
            ErrorCode::JoinRefused => "the game refused the player",
            ErrorCode::SpectatorReadOnly => "spectators may not send input or messages",
            ErrorCode::RoomMoved => "the room moved to another server; ask the gateway where",
        };
        f.write_str(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_unique_and_round_trip() {
        let mut seen = std::collections::HashSet::new();
        for code in ErrorCode::all() {
            assert!(seen.insert(code.as_u16()), "duplicate number for {code:?}");
            assert_eq!(ErrorCode::from(code.as_u16()), code);
            assert!(!code.to_string().is_empty());
        }
        assert_eq!(seen.len(), CODES.len());
    }

    #[test]
    fn websocket_close_codes_round_trip() {
        for code in ErrorCode::all() {
            assert_eq!(
                ErrorCode::from_ws_close_code(code.ws_close_code()),
                Some(code)
            );
        }
        assert_eq!(ErrorCode::from_ws_close_code(1000), None);
    }

    #[test]
    fn unknown_numbers_map_to_unknown() {
        assert_eq!(ErrorCode::from(60_000), ErrorCode::Unknown);
    }

    #[test]
    fn stable_numbers_are_pinned() {
        // A changed number is a wire break: these must never change.
        assert_eq!(ErrorCode::BadMessage.as_u16(), 1);
        assert_eq!(ErrorCode::RoomFull.as_u16(), 7);
        assert_eq!(ErrorCode::Replay.as_u16(), 10);
        assert_eq!(ErrorCode::ServerGone.as_u16(), 28);
    }
}
