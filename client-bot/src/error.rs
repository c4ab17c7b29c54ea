//! `BotError`: why a bot failed, typed. Its [`BotError::name`] is the key of the swarm report's
//! `errors_by_code`: the server's `ErrorCode::name()` when the server gave a code, a fixed
//! snake_case name for the bot's own failures. Names are part of the operator contract.

use tickroom_protocol::connect::ConnectError;
use tickroom_protocol::ErrorCode;

/// Why a bot failed or ended badly (one per bot: the first one wins).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum BotError {
    /// The gateway refused a request (login, queue, match) with this code.
    #[error("the gateway refused: {0}")]
    Gateway(ErrorCode),
    /// The room server closed the session with this code.
    #[error("the room server closed the session: {0}")]
    Closed(ErrorCode),
    /// HTTP to the gateway failed below its answer.
    #[error("http to the gateway failed")]
    Http,
    /// The room's transport could not be opened.
    #[error("the transport to the room failed")]
    Transport,
    /// The match result carried a certificate fingerprint that is not 32 bytes of hex.
    #[error("bad certificate fingerprint")]
    BadFingerprint,
    /// Matchmaking, connecting or playing did not finish before the bot's deadline.
    #[error("timed out")]
    Timeout,
    /// The room's server was gone (or silent) and no new room was joined in time.
    #[error("no new room joined after the room's server was gone")]
    RejoinFailed,
    /// The session closed before the bot was in the room.
    #[error("closed before joining the room")]
    ClosedBeforeJoin,
    /// The swarm's hard deadline aborted the bot's task.
    #[error("aborted at the swarm's deadline")]
    Aborted,
    /// The bot's task panicked.
    #[error("the bot panicked")]
    Panic,
}

impl BotError {
    /// The bot's own failures, i.e. every variant that carries no server code.
    pub const OWN: [BotError; 8] = [
        BotError::Http,
        BotError::Transport,
        BotError::BadFingerprint,
        BotError::Timeout,
        BotError::RejoinFailed,
        BotError::ClosedBeforeJoin,
        BotError::Aborted,
        BotError::Panic,
    ];

    /// The stable report name: `ErrorCode::name()` for server codes, else a fixed name.
    pub fn name(self) -> &'static str {
        match self {
            BotError::Gateway(code) | BotError::Closed(code) => code.name(),
            BotError::Http => "http",
            BotError::Transport => "transport",
            BotError::BadFingerprint => "bad_fingerprint",
            BotError::Timeout => "timeout",
            BotError::RejoinFailed => "rejoin_failed",
            BotError::ClosedBeforeJoin => "closed_before_join",
            BotError::Aborted => "aborted",
            BotError::Panic => "panic",
        }
    }
}

impl From<&ConnectError> for BotError {
    fn from(e: &ConnectError) -> BotError {
        match e {
            ConnectError::Gateway { code, .. } => BotError::Gateway(*code),
            ConnectError::Closed(code) => BotError::Closed(*code),
            ConnectError::Http(_) | ConnectError::BadAnswer(_) => BotError::Http,
            ConnectError::BadFingerprint => BotError::BadFingerprint,
            ConnectError::Timeout(_) => BotError::Timeout,
            ConnectError::BadMatch(_)
            | ConnectError::BadAddress(_)
            | ConnectError::Io { .. }
            | ConnectError::WebSocket(_)
            | ConnectError::QuicConnect(_)
            | ConnectError::Quic(_)
            | ConnectError::QuicWrite(_)
            | ConnectError::QuicRead(_)
            | ConnectError::QuicDatagram(_)
            | ConnectError::Tls(_)
            | ConnectError::Encode(_)
            | ConnectError::Decode(_)
            | ConnectError::Frame(_) => BotError::Transport,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    fn check(error: BotError, expect: &str) {
        assert_eq!(error.name(), expect, "{error:?}");
    }

    #[test]
    fn names_are_stable() {
        check(BotError::Http, "http");
        check(BotError::Transport, "transport");
        check(BotError::BadFingerprint, "bad_fingerprint");
        check(BotError::Timeout, "timeout");
        check(BotError::RejoinFailed, "rejoin_failed");
        check(BotError::ClosedBeforeJoin, "closed_before_join");
        check(BotError::Aborted, "aborted");
        check(BotError::Panic, "panic");
        check(BotError::Closed(ErrorCode::RoomFull), "room_full");
        check(BotError::Gateway(ErrorCode::UnknownMode), "unknown_mode");
    }

    #[test]
    fn names_are_unique_and_never_a_server_code() {
        let server: HashSet<&str> = ErrorCode::all().map(ErrorCode::name).collect();
        let mut own = HashSet::new();
        for e in BotError::OWN {
            assert!(own.insert(e.name()), "{} used twice", e.name());
            assert!(!server.contains(e.name()), "{} is a server code", e.name());
            let snake = e.name().chars().all(|c| c.is_ascii_lowercase() || c == '_');
            assert!(snake, "{} is not snake_case", e.name());
        }
        // Server codes keep the server's name whichever way they reached the bot.
        for code in ErrorCode::all() {
            assert_eq!(BotError::Closed(code).name(), code.name());
            assert_eq!(BotError::Gateway(code).name(), code.name());
        }
    }

    #[test]
    fn connect_errors_keep_their_code() {
        let refused = ConnectError::Gateway {
            status: 404,
            code: ErrorCode::UnknownMode,
            message: String::new(),
            retry_after: None,
        };
        assert_eq!(
            BotError::from(&refused),
            BotError::Gateway(ErrorCode::UnknownMode)
        );
        assert_eq!(
            BotError::from(&ConnectError::Closed(ErrorCode::RoomFull)),
            BotError::Closed(ErrorCode::RoomFull)
        );
        assert_eq!(
            BotError::from(&ConnectError::Timeout("connect")),
            BotError::Timeout
        );
        let bad_json = serde_json::from_str::<u8>("x").unwrap_err();
        assert_eq!(
            BotError::from(&ConnectError::BadAnswer(bad_json)),
            BotError::Http
        );
        let refused = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        assert_eq!(
            BotError::from(&ConnectError::Io {
                addr: "127.0.0.1:1".into(),
                source: refused
            }),
            BotError::Transport
        );
    }
}
