//! WebSocket transport (tokio-tungstenite): binary messages on path `/`, explicit message,
//! frame and write-buffer limits; the writer batches queued messages and flushes once.

use std::net::SocketAddr;
use std::sync::Arc;

use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use tickroom_protocol::codec::MAX_CLIENT_MSG_BYTES;
use tickroom_protocol::ErrorCode;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::http;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, WebSocketConfig};
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_tungstenite::WebSocketStream;
use tracing::{debug, warn};

use super::{decode, Reader, TransportKind};
use crate::listen::{Listener, Pending};
use crate::outbox::{OutItem, Outbox};
use crate::tls::{self, MaybeTls, TlsServer};
use crate::RoomServer;

/// Bytes tungstenite reads per call. Small on purpose: tungstenite zero-fills its whole read
/// buffer before each read, and the 128 KiB default made that memset half the server's CPU.
const READ_BUFFER_BYTES: usize = 4 * 1024;
/// Bytes tungstenite buffers before writing to the socket.
const WRITE_BUFFER_BYTES: usize = 16 * 1024;
/// Bytes tungstenite may hold unwritten before a write fails (a stuck peer).
const MAX_WRITE_BUFFER_BYTES: usize = 2 * 1024 * 1024;

type Ws = WebSocketStream<MaybeTls>;

/// The receiving half of a WebSocket connection.
pub struct WsReader {
    stream: SplitStream<Ws>,
}

impl WsReader {
    pub(super) async fn recv(
        &mut self,
    ) -> Result<Option<(tickroom_protocol::ClientMsg, usize)>, ErrorCode> {
        loop {
            match self.stream.next().await {
                None => return Ok(None),
                Some(Ok(Message::Binary(bytes))) => return decode(&bytes),
                Some(Ok(Message::Text(_))) => return Err(ErrorCode::BadMessage),
                Some(Ok(Message::Close(_))) => return Ok(None),
                Some(Ok(_)) => continue,
                Some(Err(WsError::Capacity(_))) => return Err(ErrorCode::MessageTooLarge),
                Some(Err(WsError::Protocol(_))) => return Err(ErrorCode::BadMessage),
                Some(Err(_)) => return Ok(None),
            }
        }
    }
}

/// The limits every WebSocket connection runs with.
pub fn ws_config() -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(READ_BUFFER_BYTES)
        .max_message_size(Some(MAX_CLIENT_MSG_BYTES))
        .max_frame_size(Some(MAX_CLIENT_MSG_BYTES))
        .write_buffer_size(WRITE_BUFFER_BYTES)
        .max_write_buffer_size(MAX_WRITE_BUFFER_BYTES)
}

/// The WebSocket listener; with TLS (`wss://`) when it has a [`TlsServer`].
pub struct WsListener(pub TcpListener, pub Option<Arc<TlsServer>>);

/// An accepted TCP connection, before TLS and the WebSocket upgrade. Its socket is not bound
/// to a runtime yet: `open` binds it to the one it runs on (a connection thread's).
pub struct WsPending(std::net::TcpStream, Option<Arc<TlsServer>>);

impl Listener for WsListener {
    type Pending = WsPending;

    async fn accept(&mut self) -> Option<(WsPending, SocketAddr)> {
        loop {
            match self.0.accept().await {
                Ok((stream, peer)) => match stream.into_std() {
                    Ok(stream) => return Some((WsPending(stream, self.1.clone()), peer)),
                    Err(e) => warn!(error = %e, "websocket accept failed"),
                },
                // A failed accept (out of descriptors, a reset) is that connection's problem.
                Err(e) => warn!(error = %e, "websocket accept failed"),
            }
        }
    }

    fn shut(self) {}
}

impl Pending for WsPending {
    const KIND: TransportKind = TransportKind::Ws;
    const PORTABLE: bool = true;

    fn refuse(self) {}

    // tungstenite's callback signature fixes the error type; it is built once per refused upgrade.
    #[allow(clippy::result_large_err)]
    async fn open(
        self,
        server: Arc<RoomServer>,
        outbox: Arc<Outbox>,
    ) -> Option<(Reader, JoinHandle<()>)> {
        let stream = TcpStream::from_std(self.0).ok()?;
        let _ = stream.set_nodelay(true);
        let only_root = |req: &Request, resp: Response| -> Result<Response, ErrorResponse> {
            if req.uri().path() == "/" {
                Ok(resp)
            } else {
                let mut not_found =
                    ErrorResponse::new(Some("not found: the WebSocket endpoint is /".into()));
                *not_found.status_mut() = http::StatusCode::NOT_FOUND;
                Err(not_found)
            }
        };
        let timeout = server.shared.config.handshake_timeout;
        // TLS (when on) and the upgrade share the handshake's time.
        let accept = async {
            let stream = tls::open(self.1.as_deref(), stream, timeout).await?;
            match tokio_tungstenite::accept_hdr_async_with_config(
                stream,
                only_root,
                Some(ws_config()),
            )
            .await
            {
                Ok(ws) => Some(ws),
                Err(e) => {
                    debug!(error = %e, "websocket upgrade failed");
                    None
                }
            }
        };
        let ws = tokio::time::timeout(timeout, accept).await.ok()??;
        let (sink, stream) = ws.split();
        let writer = tokio::spawn(write_loop(sink, outbox, server));
        Some((Reader::Ws(WsReader { stream }), writer))
    }
}

async fn write_loop(
    mut sink: SplitSink<Ws, Message>,
    outbox: Arc<Outbox>,
    server: Arc<RoomServer>,
) {
    let metrics = &server.shared.metrics;
    let mut item = outbox.next().await;
    loop {
        match item {
            OutItem::Reliable(bytes) | OutItem::Unreliable(bytes) => {
                metrics.messages_out.inc();
                metrics.bytes_out.add(bytes.len() as u64);
                if sink.feed(Message::Binary(bytes)).await.is_err() {
                    break;
                }
            }
            OutItem::Close(code) => {
                let frame = CloseFrame {
                    code: CloseCode::from(code.ws_close_code()),
                    reason: code.name().into(),
                };
                let _ = sink.send(Message::Close(Some(frame))).await;
                break;
            }
        }
        // Batch what is already queued into one flush.
        item = match outbox.try_next() {
            Some(next) => next,
            None => {
                if sink.flush().await.is_err() {
                    break;
                }
                outbox.next().await
            }
        };
    }
    outbox.close(ErrorCode::Kicked);
}
