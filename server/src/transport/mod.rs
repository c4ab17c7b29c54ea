//! Transports: the only code that knows quinn and tokio-tungstenite. Each implements the
//! accept path's `Listener` and `Pending` (`listen.rs` takes the connection slot, admits the
//! IP and runs the connection), and presents every connection upward as a `Reader` of decoded
//! `ClientMsg`s plus a writer task that drains the connection's `Outbox`.

pub mod quic;
pub mod ws;

pub use tickroom_protocol::TransportKind;
use tickroom_protocol::{ClientMsg, DecodeError, ErrorCode};

/// The receiving half of a connection.
pub enum Reader {
    /// A WebSocket connection.
    Ws(ws::WsReader),
    /// A QUIC connection.
    Quic(quic::QuicReader),
}

impl Reader {
    /// The next decoded message and its size in bytes; `Ok(None)` when the peer closed; an
    /// error code when the peer broke the protocol (the caller closes with it).
    pub async fn recv(&mut self) -> Result<Option<(ClientMsg, usize)>, ErrorCode> {
        match self {
            Reader::Ws(r) => r.recv().await,
            Reader::Quic(r) => r.recv().await,
        }
    }
}

/// Maps a decode failure to the code the connection is closed with.
pub(crate) fn decode_error_code(e: &DecodeError) -> ErrorCode {
    match e {
        DecodeError::TooLarge { .. } => ErrorCode::MessageTooLarge,
        _ => ErrorCode::BadMessage,
    }
}

/// Decodes one client message, mapping failures to close codes.
pub(crate) fn decode(bytes: &[u8]) -> Result<Option<(ClientMsg, usize)>, ErrorCode> {
    tickroom_protocol::codec::decode_client(bytes)
        .map(|m| Some((m, bytes.len())))
        .map_err(|e| decode_error_code(&e))
}
