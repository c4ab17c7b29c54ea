//! Ready connectors (feature `tokio`): log in and queue through the gateway over HTTP, then
//! join the room over QUIC (certificate pinned by fingerprint) or WebSocket, driving the sans-IO
//! `ClientSession` on a task. The game gets a typed event stream and a handle to send inputs.

use std::time::Duration;

use crate::ErrorCode;

/// Capacity of the event channel from the session task to the game.
pub const EVENT_QUEUE_LEN: usize = 1024;
/// Capacity of the command channel from the game to the session task.
pub const COMMAND_QUEUE_LEN: usize = 1024;
/// Time allowed to open a transport connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long closing a QUIC connection waits for its last stream bytes to be acknowledged.
const QUIC_CLOSE_LINGER: Duration = Duration::from_millis(250);
/// WebSocket read buffer, in bytes.
const WS_READ_BUFFER_BYTES: usize = 1024;
/// Read buffer for QUIC streams, in bytes.
const READ_CHUNK_BYTES: usize = 16 * 1024;

/// Why connecting or talking to the server failed.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// The gateway answered with an error (`code`/`message` from its JSON).
    #[error("gateway refused ({status}): {message}")]
    Gateway {
        /// HTTP status.
        status: u16,
        /// The tickroom code from the JSON body (`Unknown` when there was none).
        code: ErrorCode,
        /// The human message from the JSON body.
        message: String,
        /// The gateway's `Retry-After` (seconds), when it sent one.
        retry_after: Option<Duration>,
    },
    /// The HTTP request failed before the gateway answered (connect, TLS, timeout, body).
    #[error("http: {0}")]
    Http(#[source] reqwest::Error),
    /// The gateway answered 2xx with JSON this client does not understand.
    #[error("unexpected gateway answer: {0}")]
    BadAnswer(#[source] serde_json::Error),
    /// A field of the match result is malformed (its name).
    #[error("bad {0} in the match result")]
    BadMatch(&'static str),
    /// The certificate fingerprint is not valid hex of 32 bytes.
    #[error("bad certificate fingerprint")]
    BadFingerprint,
    /// An address does not parse, or resolves to nothing usable.
    #[error("bad address {0}")]
    BadAddress(String),
    /// A socket operation failed.
    #[error("{addr}: {source}")]
    Io {
        /// The address it was for.
        addr: String,
        /// What the system said.
        #[source]
        source: std::io::Error,
    },
    /// The WebSocket (or its TLS) failed.
    #[error("websocket: {0}")]
    WebSocket(#[source] Box<tokio_tungstenite::tungstenite::Error>),
    /// The QUIC connection could not be started.
    #[error("quic connect: {0}")]
    QuicConnect(#[from] quinn::ConnectError),
    /// The QUIC connection failed or was closed.
    #[error("quic: {0}")]
    Quic(#[from] quinn::ConnectionError),
    /// Writing to the QUIC stream failed.
    #[error("quic write: {0}")]
    QuicWrite(#[from] quinn::WriteError),
    /// Reading from the QUIC stream failed.
    #[error("quic read: {0}")]
    QuicRead(#[from] quinn::ReadError),
    /// A QUIC datagram could not be sent.
    #[error("quic datagram: {0}")]
    QuicDatagram(#[from] quinn::SendDatagramError),
    /// The TLS configuration was refused.
    #[error("tls: {0}")]
    Tls(String),
    /// A message could not be encoded.
    #[error("encode: {0}")]
    Encode(#[from] crate::EncodeError),
    /// The server sent bytes that do not decode: the connection is unusable.
    #[error("server sent an undecodable message: {0}")]
    Decode(#[from] crate::DecodeError),
    /// The server's stream framing is broken (a length over the limit).
    #[error("server framing: {0}")]
    Frame(#[from] crate::FrameError),
    /// The server closed the session with this code.
    #[error("closed by server: {0}")]
    Closed(ErrorCode),
    /// Timed out waiting.
    #[error("timed out: {0}")]
    Timeout(&'static str),
}

impl ConnectError {
    /// True for failures worth retrying with the same ticket (the network, not the server's
    /// verdict): timeouts, sockets, WebSocket and QUIC transport errors.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            ConnectError::Timeout(_)
                | ConnectError::Io { .. }
                | ConnectError::WebSocket(_)
                | ConnectError::QuicConnect(_)
                | ConnectError::Quic(_)
                | ConnectError::QuicWrite(_)
                | ConnectError::QuicRead(_)
                | ConnectError::QuicDatagram(_)
                | ConnectError::Http(_)
        )
    }
}

impl From<tokio_tungstenite::tungstenite::Error> for ConnectError {
    fn from(e: tokio_tungstenite::tungstenite::Error) -> ConnectError {
        ConnectError::WebSocket(Box::new(e))
    }
}

pub use crate::TransportKind;

mod driver;
mod gateway;
mod raw;
mod tls;

pub use driver::*;
pub use gateway::*;
pub use raw::*;
pub use tls::*;
