//! Raw connections to a room server over WebSocket (`ws://`, `wss://`) or QUIC: encoded
//! messages out, decoded messages in, traffic counted.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use quinn::VarInt;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use super::tls::tls_client_config;
use super::{
    CertCheck, ConnectError, CONNECT_TIMEOUT, QUIC_CLOSE_LINGER, READ_CHUNK_BYTES,
    WS_READ_BUFFER_BYTES,
};
use crate::codec::{self, FrameDecoder, MAX_SERVER_MSG_BYTES};
use crate::{ClientMsg, ErrorCode, ServerMsg, ALPN};

/// A shared QUIC client endpoint (one UDP socket for many connections).
#[derive(Debug, Clone)]
pub struct QuicClient {
    endpoint: quinn::Endpoint,
}

impl QuicClient {
    /// Binds a client endpoint on an ephemeral loopback-or-any port matching `family_of`.
    pub fn new(family_of: SocketAddr) -> Result<QuicClient, ConnectError> {
        let bind: SocketAddr = if family_of.is_ipv6() {
            "[::]:0".parse().expect("valid")
        } else {
            "0.0.0.0:0".parse().expect("valid")
        };
        let endpoint = quinn::Endpoint::client(bind).map_err(|source| ConnectError::Io {
            addr: bind.to_string(),
            source,
        })?;
        Ok(QuicClient { endpoint })
    }

    /// Binds a client endpoint on an ephemeral port of `local` (its connections leave from it).
    pub fn bind(local: IpAddr) -> Result<QuicClient, ConnectError> {
        let bind = SocketAddr::new(local, 0);
        let endpoint = quinn::Endpoint::client(bind).map_err(|source| ConnectError::Io {
            addr: bind.to_string(),
            source,
        })?;
        Ok(QuicClient { endpoint })
    }

    /// The address the endpoint's socket is bound to.
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.endpoint.local_addr().ok()
    }

    fn config(check: &CertCheck) -> Result<quinn::ClientConfig, ConnectError> {
        let tls = tls_client_config(check, ALPN)?;
        let crypto = quinn::crypto::rustls::QuicClientConfig::try_from(tls)
            .map_err(|e| ConnectError::Tls(e.to_string()))?;
        let mut config = quinn::ClientConfig::new(Arc::new(crypto));
        let mut transport = quinn::TransportConfig::default();
        // The session's pings (at most every 5 s for a bot, 1 s by default) keep the
        // connection busy; QUIC's own keep-alive only fires past this much silence, so an
        // idle session costs the server one ping round, not three packets more.
        transport.keep_alive_interval(Some(QUIC_KEEP_ALIVE));
        config.transport_config(Arc::new(transport));
        Ok(config)
    }
}

/// QUIC keep-alive of client connections: half the server's 20 s idle timeout.
const QUIC_KEEP_ALIVE: Duration = Duration::from_secs(10);

/// A raw connection to a room server: encoded messages out, decoded messages in. Used by the
/// session driver, and directly by tests that need to send exactly what they want.
pub struct RawConn {
    inner: Raw,
    buf: Vec<u8>,
    /// The tickroom code of a WebSocket close frame, once one arrived.
    ws_close: Option<ErrorCode>,
    /// Bytes sent (payload), for bandwidth reports.
    pub bytes_out: u64,
    /// Bytes received (payload), for bandwidth reports.
    pub bytes_in: u64,
}

/// A TCP connection to `addr` (`host:port`) from an ephemeral port of `local`.
async fn tcp_from(addr: &str, local: IpAddr) -> Result<TcpStream, ConnectError> {
    let transport = |source: std::io::Error| ConnectError::Io {
        addr: addr.to_string(),
        source,
    };
    let target = tokio::net::lookup_host(addr)
        .await
        .map_err(transport)?
        .find(|a| a.is_ipv4() == local.is_ipv4())
        .ok_or_else(|| {
            ConnectError::BadAddress(format!("{addr} has no address of {local}'s family"))
        })?;
    let socket = if local.is_ipv4() {
        tokio::net::TcpSocket::new_v4()
    } else {
        tokio::net::TcpSocket::new_v6()
    }
    .map_err(transport)?;
    socket.bind(SocketAddr::new(local, 0)).map_err(transport)?;
    socket.connect(target).await.map_err(transport)
}

enum Raw {
    Ws(Box<WebSocketStream<MaybeTlsStream<TcpStream>>>),
    Quic {
        conn: quinn::Connection,
        send: quinn::SendStream,
        recv: quinn::RecvStream,
        frames: FrameDecoder,
        chunk: Vec<u8>,
        /// Set once datagrams failed (connection closing): only the stream is read then.
        datagrams_done: bool,
    },
}

impl RawConn {
    /// Opens a WebSocket to `addr` (`host:port`), path `/`.
    pub async fn open_ws(addr: &str) -> Result<RawConn, ConnectError> {
        RawConn::open_ws_from(addr, None, None).await
    }

    /// Opens a WebSocket to `addr` (`host:port`), path `/`, leaving from `local` when given;
    /// over TLS (`wss://`) checking the certificate with `tls` when given.
    pub async fn open_ws_from(
        addr: &str,
        local: Option<IpAddr>,
        tls: Option<&CertCheck>,
    ) -> Result<RawConn, ConnectError> {
        let scheme = if tls.is_some() { "wss" } else { "ws" };
        let url = format!("{scheme}://{addr}/");
        let connector = match tls {
            Some(check) => tokio_tungstenite::Connector::Rustls(Arc::new(tls_client_config(
                check,
                b"http/1.1",
            )?)),
            None => tokio_tungstenite::Connector::Plain,
        };
        // tungstenite zero-fills its whole read buffer before every read: keep it small.
        let config = tokio_tungstenite::tungstenite::protocol::WebSocketConfig::default()
            .read_buffer_size(WS_READ_BUFFER_BYTES)
            .max_message_size(Some(MAX_SERVER_MSG_BYTES))
            .max_frame_size(Some(MAX_SERVER_MSG_BYTES));
        let open = async {
            let stream = match local {
                Some(local) => tcp_from(addr, local).await?,
                None => TcpStream::connect(addr)
                    .await
                    .map_err(|source| ConnectError::Io {
                        addr: addr.to_string(),
                        source,
                    })?,
            };
            let _ = stream.set_nodelay(true);
            tokio_tungstenite::client_async_tls_with_config(
                url,
                stream,
                Some(config),
                Some(connector),
            )
            .await
            .map_err(ConnectError::from)
        };
        let (ws, _) = tokio::time::timeout(CONNECT_TIMEOUT, open)
            .await
            .map_err(|_| ConnectError::Timeout("websocket connect"))??;
        Ok(RawConn::new(Raw::Ws(Box::new(ws))))
    }

    /// Opens a QUIC connection to `addr` checking the certificate with `check`.
    pub async fn open_quic(
        client: &QuicClient,
        addr: SocketAddr,
        check: &CertCheck,
    ) -> Result<RawConn, ConnectError> {
        let config = QuicClient::config(check)?;
        let connecting = client.endpoint.connect_with(config, addr, "localhost")?;
        let conn = tokio::time::timeout(CONNECT_TIMEOUT, connecting)
            .await
            .map_err(|_| ConnectError::Timeout("quic connect"))??;
        let (send, recv) = conn.open_bi().await?;
        Ok(RawConn::new(Raw::Quic {
            conn,
            send,
            recv,
            frames: FrameDecoder::new(MAX_SERVER_MSG_BYTES),
            chunk: vec![0; READ_CHUNK_BYTES],
            datagrams_done: false,
        }))
    }

    fn new(inner: Raw) -> RawConn {
        RawConn {
            inner,
            buf: Vec::with_capacity(256),
            ws_close: None,
            bytes_out: 0,
            bytes_in: 0,
        }
    }

    /// Sends a message: inputs as QUIC datagrams when they fit, everything else reliably.
    pub async fn send(&mut self, msg: &ClientMsg) -> Result<(), ConnectError> {
        if let Raw::Ws(ws) = &mut self.inner {
            // The WebSocket message owns its bytes: encode straight into them (no copy).
            let mut buf = Vec::with_capacity(self.buf.capacity());
            codec::encode_client(msg, &mut buf)?;
            self.bytes_out += buf.len() as u64;
            return ws
                .send(Message::Binary(buf.into()))
                .await
                .map_err(ConnectError::from);
        }
        let mut buf = std::mem::take(&mut self.buf);
        codec::encode_client(msg, &mut buf)?;
        let unreliable = matches!(msg, ClientMsg::Input { .. });
        let result = self.send_bytes(&buf, unreliable).await;
        self.buf = buf;
        result
    }

    /// Sends already-encoded bytes as one message (tests use it to send garbage or replays).
    pub async fn send_bytes(&mut self, bytes: &[u8], unreliable: bool) -> Result<(), ConnectError> {
        self.bytes_out += bytes.len() as u64;
        match &mut self.inner {
            Raw::Ws(ws) => Ok(ws.send(Message::Binary(bytes.to_vec().into())).await?),
            Raw::Quic { conn, send, .. } => {
                if unreliable && conn.max_datagram_size().is_some_and(|m| bytes.len() <= m) {
                    return Ok(conn.send_datagram(bytes::Bytes::copy_from_slice(bytes))?);
                }
                send.write_all(&codec::length_prefix(bytes.len())).await?;
                Ok(send.write_all(bytes).await?)
            }
        }
    }

    /// Writes bytes as they are, without framing: on QUIC onto the stream, on WebSocket as one
    /// binary message. For tests of hostile peers (partial headers, garbage).
    pub async fn write_raw(&mut self, bytes: &[u8]) -> Result<(), ConnectError> {
        match &mut self.inner {
            Raw::Ws(ws) => ws
                .send(Message::Binary(bytes.to_vec().into()))
                .await
                .map_err(ConnectError::from),
            Raw::Quic { send, .. } => Ok(send.write_all(bytes).await?),
        }
    }

    /// The next message; `Ok(None)` when the server closed (see `close_code`).
    pub async fn recv(&mut self) -> Result<Option<ServerMsg>, ConnectError> {
        let decode = |b: &[u8]| {
            codec::decode_server(b)
                .map(Some)
                .map_err(ConnectError::from)
        };
        loop {
            match &mut self.inner {
                Raw::Ws(ws) => match ws.next().await {
                    None => return Ok(None),
                    Some(Ok(Message::Close(frame))) => {
                        self.ws_close = frame.and_then(|f| ws_close_to_code(f.code));
                        return Ok(None);
                    }
                    Some(Ok(Message::Binary(b))) => {
                        self.bytes_in += b.len() as u64;
                        return decode(&b);
                    }
                    Some(Ok(_)) => continue,
                    Some(Err(e)) => return Err(e.into()),
                },
                Raw::Quic {
                    conn,
                    recv,
                    frames,
                    chunk,
                    datagrams_done,
                    ..
                } => {
                    match frames.next_frame() {
                        Err(e) => return Err(e.into()),
                        Ok(Some(frame)) => {
                            self.bytes_in += frame.len() as u64;
                            return decode(frame);
                        }
                        Ok(None) => {}
                    }
                    tokio::select! {
                        read = recv.read(chunk) => match read {
                            Ok(Some(n)) => frames.push(&chunk[..n]),
                            Ok(None) => return Ok(None),
                            Err(e) => return Err(e.into()),
                        },
                        dg = conn.read_datagram(), if !*datagrams_done => match dg {
                            Ok(b) => {
                                self.bytes_in += b.len() as u64;
                                return decode(&b);
                            }
                            // The stream may still hold a final Error: read it out first.
                            Err(_) => *datagrams_done = true,
                        },
                    }
                }
            }
        }
    }

    /// The tickroom code the server closed the transport with, when it said one.
    pub fn close_code(&self) -> Option<ErrorCode> {
        match &self.inner {
            Raw::Ws(_) => self.ws_close,
            Raw::Quic { conn, .. } => match conn.close_reason()? {
                quinn::ConnectionError::ApplicationClosed(c) => {
                    u16::try_from(c.error_code.into_inner())
                        .ok()
                        .map(ErrorCode::from)
                }
                _ => None,
            },
        }
    }

    /// Closes the transport.
    pub async fn close(&mut self) {
        match &mut self.inner {
            Raw::Ws(ws) => {
                let _ = WebSocketStream::close(ws.as_mut(), None).await;
            }
            Raw::Quic { conn, send, .. } => {
                // Closing at once would discard stream data not yet delivered (a final Leave):
                // finish the stream and give the server a moment to acknowledge it.
                let _ = send.finish();
                let _ = tokio::time::timeout(QUIC_CLOSE_LINGER, send.stopped()).await;
                conn.close(VarInt::from_u32(0), b"bye");
            }
        }
    }
}

/// Maps a WebSocket close code back to a tickroom code.
pub fn ws_close_to_code(code: CloseCode) -> Option<ErrorCode> {
    ErrorCode::from_ws_close_code(u16::from(code))
}
