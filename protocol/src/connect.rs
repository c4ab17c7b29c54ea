//! Ready connectors (feature `tokio`): log in and queue through the gateway over HTTP, then
//! join the room over QUIC (certificate pinned by fingerprint) or WebSocket, driving the sans-IO
//! `ClientSession` on a task. The game gets a typed event stream and a handle to send inputs.

use std::fmt;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use quinn::VarInt;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Sleep;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::api::{EnqueueRequest, MatchResultRecord};
use crate::codec::{self, FrameDecoder, MAX_SERVER_MSG_BYTES};
use crate::session::{ClientSession, SessionConfig, SessionEvent};
use crate::token::{decode_hex, encode_hex};
use crate::{ClientMsg, ErrorCode, PlayerMetadata, Secret, ServerMsg, ALPN};

/// Capacity of the event channel from the session task to the game.
pub const EVENT_QUEUE_LEN: usize = 1024;
/// Capacity of the command channel from the game to the session task.
pub const COMMAND_QUEUE_LEN: usize = 1024;
/// Time allowed to open a transport connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long `wait_match` waits before asking again after a 503 (the gateway's Retry-After).
const GATEWAY_BUSY_BACKOFF: Duration = Duration::from_secs(1);
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
    },
    /// HTTP failed below the gateway's answer.
    #[error("http: {0}")]
    Http(String),
    /// The transport could not be opened or failed.
    #[error("transport: {0}")]
    Transport(String),
    /// The certificate fingerprint from the match result is not valid hex of 32 bytes.
    #[error("bad certificate fingerprint")]
    BadFingerprint,
    /// The server closed the session with this code.
    #[error("closed by server: {0}")]
    Closed(ErrorCode),
    /// Timed out waiting.
    #[error("timed out: {0}")]
    Timeout(&'static str),
}

pub use crate::TransportKind;

/// How a client checks a server's certificate (QUIC, wss, and the gateway's HTTPS when pinned).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CertCheck {
    /// Accept only a leaf certificate whose SHA-256 is this (from the match result).
    Pinned([u8; 32]),
    /// DEVELOPMENT ONLY: accept any certificate. Never ship a client with this.
    InsecureAcceptAnyCertificate,
}

impl CertCheck {
    /// Pins the lower-case hex fingerprint the gateway returned.
    pub fn pinned_hex(hex: &str) -> Result<CertCheck, ConnectError> {
        let bytes = decode_hex(hex).ok_or(ConnectError::BadFingerprint)?;
        let pin: [u8; 32] = bytes.try_into().map_err(|_| ConnectError::BadFingerprint)?;
        Ok(CertCheck::Pinned(pin))
    }
}

/// Where a room lives and how to get in: the gateway's match result.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct MatchResult {
    /// The room to join.
    pub room_id: u64,
    /// Its game mode.
    pub mode: String,
    /// The room server hosting it.
    pub server_id: String,
    /// The room server's QUIC address.
    pub quic_addr: String,
    /// The room server's WebSocket address (endpoint path `/`).
    pub ws_addr: String,
    /// Hex SHA-256 of the room server's certificate: pin it.
    pub cert_fingerprint: String,
    /// The room server's WebSocket speaks TLS (`wss://`, the same certificate).
    #[serde(default)]
    pub ws_tls: bool,
    /// The signed, single-use join ticket (valid about 10 s).
    pub join_ticket: String,
    /// Hex of the secret that answers the join challenge.
    pub join_secret: String,
}

impl MatchResult {
    /// The join secret as bytes.
    pub fn join_secret(&self) -> Result<Secret, ConnectError> {
        decode_hex(&self.join_secret)
            .and_then(|b| b.try_into().ok())
            .ok_or(ConnectError::Transport(
                "bad join secret in match result".into(),
            ))
    }
}

/// A login answer.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Login {
    /// The player's id (derived from the device id).
    pub player_id: u64,
    /// Bearer token for the gateway's other routes.
    pub session_token: String,
    /// When the token expires, unix ms (refresh before).
    pub expires_ms: u64,
}

/// Where a player's room is (`GET /v1/rooms/{room_id}`). A player whose room's server is not
/// `alive` cannot resume there: it queues again.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct RoomStatus {
    /// The room asked about.
    pub room_id: u64,
    /// The room server that owns the room now.
    pub server_id: String,
    /// False once that server's registration expired.
    pub alive: bool,
    /// The room's ownership epoch.
    pub epoch: u64,
}

#[derive(Deserialize)]
struct GatewayErrorBody {
    code: u16,
    message: String,
}

#[derive(Deserialize)]
struct QueuedBody {
    ticket_id: String,
}

/// A small HTTP client for the gateway's `/v1` API.
#[derive(Debug, Clone)]
pub struct GatewayClient {
    base: String,
    http: reqwest::Client,
}

impl GatewayClient {
    /// A client for the gateway at `base` (e.g. `http://127.0.0.1:7700`).
    pub fn new(base: &str) -> GatewayClient {
        GatewayClient {
            base: base.trim_end_matches('/').to_string(),
            http: reqwest::Client::new(),
        }
    }

    /// A client for the gateway at `base` whose connections leave from `local` (for example
    /// one of many loopback addresses, as load tests do).
    pub fn from_address(base: &str, local: IpAddr) -> Result<GatewayClient, ConnectError> {
        GatewayClient::with_options(base, Some(local), None)
    }

    /// A client for the gateway at `base` (`https://` for TLS), its connections leaving from
    /// `local` when given, checking an HTTPS certificate with `cert` when given (a pinned
    /// self-signed certificate: the gateway's `--tls-self-signed` fingerprint) and against the
    /// web's public roots otherwise.
    pub fn with_options(
        base: &str,
        local: Option<IpAddr>,
        cert: Option<&CertCheck>,
    ) -> Result<GatewayClient, ConnectError> {
        let mut builder = reqwest::Client::builder();
        if let Some(local) = local {
            builder = builder.local_address(local);
        }
        if let Some(check) = cert {
            builder = builder.use_preconfigured_tls(tls_client_config(check, b"http/1.1")?);
        }
        let http = builder
            .build()
            .map_err(|e| ConnectError::Transport(e.to_string()))?;
        Ok(GatewayClient {
            base: base.trim_end_matches('/').to_string(),
            http,
        })
    }

    /// `POST /v1/auth/device`. The id must carry at least 128 random bits (32 hex digits or
    /// 22 base64url characters, `crate::api::check_device_id`); the gateway answers anything
    /// else with 400. Draw it once per device and keep it.
    pub async fn login_device(&self, device_id: &str) -> Result<Login, ConnectError> {
        let req = self
            .http
            .post(format!("{}/v1/auth/device", self.base))
            .json(&serde_json::json!({ "device_id": device_id }));
        parse(req.send().await).await
    }

    /// `POST /v1/matchmaking`: returns the matchmaking ticket id. A player placed in a room
    /// they may still join gets 409 (`Conflict`, with the room in the message) until its join
    /// window ends, the room closes or its server dies.
    pub async fn queue(&self, token: &str, mode: &str) -> Result<String, ConnectError> {
        self.queue_with_metadata(token, mode, &PlayerMetadata::default())
            .await
    }

    /// `POST /v1/matchmaking` with metadata for the join ticket (display name, loadout: what
    /// the player chooses; the gateway refuses metadata breaking `PlayerMetadata::check` with
    /// 400). Empty metadata is not sent. Returns the matchmaking ticket id.
    pub async fn queue_with_metadata(
        &self,
        token: &str,
        mode: &str,
        metadata: &PlayerMetadata,
    ) -> Result<String, ConnectError> {
        let body = EnqueueRequest {
            mode: mode.to_owned(),
            metadata: metadata.clone(),
        };
        let req = self
            .http
            .post(format!("{}/v1/matchmaking", self.base))
            .bearer_auth(token)
            .json(&body);
        parse::<QueuedBody>(req.send().await)
            .await
            .map(|b| b.ticket_id)
    }

    /// Long-polls `GET /v1/matchmaking/{id}` until matched or `deadline` passes, one poll at
    /// a time (a gateway refuses a player's polls past a few at once with 429).
    pub async fn wait_match(
        &self,
        token: &str,
        ticket_id: &str,
        deadline: Duration,
    ) -> Result<MatchResult, ConnectError> {
        let end = Instant::now() + deadline;
        loop {
            let left = end.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(ConnectError::Timeout("matchmaking"));
            }
            let req = self
                .http
                .get(format!("{}/v1/matchmaking/{ticket_id}", self.base))
                .query(&[("wait_ms", left.as_millis().min(20_000).to_string())])
                .bearer_auth(token);
            let value: serde_json::Value = match parse(req.send().await).await {
                // No room server can take a room yet: the ticket stays queued; ask again.
                Err(ConnectError::Gateway { status: 503, .. }) => {
                    let pause =
                        GATEWAY_BUSY_BACKOFF.min(end.saturating_duration_since(Instant::now()));
                    tokio::time::sleep(pause).await;
                    continue;
                }
                other => other?,
            };
            if value.get("join_ticket").is_some() {
                return serde_json::from_value(value)
                    .map_err(|e| ConnectError::Http(e.to_string()));
            }
        }
    }

    /// `DELETE /v1/matchmaking/{id}`.
    pub async fn cancel(&self, token: &str, ticket_id: &str) -> Result<(), ConnectError> {
        let req = self
            .http
            .delete(format!("{}/v1/matchmaking/{ticket_id}", self.base))
            .bearer_auth(token);
        parse::<serde_json::Value>(req.send().await)
            .await
            .map(|_| ())
    }

    /// `GET /v1/rooms/{room_id}`: where the player's room is and whether its server lives;
    /// `None` when the gateway does not know the room or the player is not in it (404).
    pub async fn room_status(
        &self,
        token: &str,
        room_id: u64,
    ) -> Result<Option<RoomStatus>, ConnectError> {
        let req = self
            .http
            .get(format!("{}/v1/rooms/{room_id}", self.base))
            .bearer_auth(token);
        match parse::<RoomStatus>(req.send().await).await {
            Ok(status) => Ok(Some(status)),
            Err(ConnectError::Gateway { status: 404, .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// `GET /v1/matches/{room_id}`: the result of a finished match the player was in; `None`
    /// when the gateway has no such result or the player was not in the match (404).
    pub async fn match_result(
        &self,
        token: &str,
        room_id: u64,
    ) -> Result<Option<MatchResultRecord>, ConnectError> {
        let req = self
            .http
            .get(format!("{}/v1/matches/{room_id}", self.base))
            .bearer_auth(token);
        match parse::<MatchResultRecord>(req.send().await).await {
            Ok(record) => Ok(Some(record)),
            Err(ConnectError::Gateway { status: 404, .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The gateway's base URL.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// Login with a device id, queue for `mode`, and wait for the match.
    pub async fn find_match(
        &self,
        device_id: &str,
        mode: &str,
        deadline: Duration,
    ) -> Result<MatchResult, ConnectError> {
        let login = self.login_device(device_id).await?;
        let ticket = self.queue(&login.session_token, mode).await?;
        self.wait_match(&login.session_token, &ticket, deadline)
            .await
    }
}

async fn parse<T: serde::de::DeserializeOwned>(
    resp: Result<reqwest::Response, reqwest::Error>,
) -> Result<T, ConnectError> {
    let resp = resp.map_err(|e| ConnectError::Http(e.to_string()))?;
    let status = resp.status().as_u16();
    let body = resp
        .bytes()
        .await
        .map_err(|e| ConnectError::Http(e.to_string()))?;
    if (200..300).contains(&status) {
        return serde_json::from_slice(&body).map_err(|e| ConnectError::Http(e.to_string()));
    }
    let err: Option<GatewayErrorBody> = serde_json::from_slice(&body).ok();
    Err(ConnectError::Gateway {
        status,
        code: err
            .as_ref()
            .map_or(ErrorCode::Unknown, |e| ErrorCode::from(e.code)),
        message: err.map_or_else(
            || String::from_utf8_lossy(&body).into_owned(),
            |e| e.message,
        ),
    })
}

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
        let endpoint =
            quinn::Endpoint::client(bind).map_err(|e| ConnectError::Transport(e.to_string()))?;
        Ok(QuicClient { endpoint })
    }

    /// Binds a client endpoint on an ephemeral port of `local` (its connections leave from it).
    pub fn bind(local: IpAddr) -> Result<QuicClient, ConnectError> {
        let endpoint = quinn::Endpoint::client(SocketAddr::new(local, 0))
            .map_err(|e| ConnectError::Transport(e.to_string()))?;
        Ok(QuicClient { endpoint })
    }

    /// The address the endpoint's socket is bound to.
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.endpoint.local_addr().ok()
    }

    fn config(check: &CertCheck) -> Result<quinn::ClientConfig, ConnectError> {
        let tls = tls_client_config(check, ALPN)?;
        let crypto = quinn::crypto::rustls::QuicClientConfig::try_from(tls)
            .map_err(|e| ConnectError::Transport(e.to_string()))?;
        let mut config = quinn::ClientConfig::new(Arc::new(crypto));
        let mut transport = quinn::TransportConfig::default();
        transport.keep_alive_interval(Some(Duration::from_secs(2)));
        config.transport_config(Arc::new(transport));
        Ok(config)
    }
}

/// A TLS 1.3 client configuration that checks the certificate with `check`, offering `alpn`;
/// never sends early data (it could be replayed).
fn tls_client_config(check: &CertCheck, alpn: &[u8]) -> Result<rustls::ClientConfig, ConnectError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier = Arc::new(PinVerifier {
        pin: match check {
            CertCheck::Pinned(p) => Some(*p),
            CertCheck::InsecureAcceptAnyCertificate => None,
        },
        provider: provider.clone(),
    });
    let mut tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| ConnectError::Transport(e.to_string()))?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    tls.alpn_protocols = vec![alpn.to_vec()];
    tls.enable_early_data = false;
    Ok(tls)
}

#[derive(Debug)]
struct PinVerifier {
    pin: Option<[u8; 32]>,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for PinVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self.pin {
            None => Ok(ServerCertVerified::assertion()),
            Some(pin) if Sha256::digest(end_entity.as_ref()).as_slice() == pin => {
                Ok(ServerCertVerified::assertion())
            }
            Some(_) => Err(rustls::Error::General(
                "server certificate does not match the pinned fingerprint".into(),
            )),
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

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
    let transport = |e: std::io::Error| ConnectError::Transport(format!("{addr}: {e}"));
    let target = tokio::net::lookup_host(addr)
        .await
        .map_err(transport)?
        .find(|a| a.is_ipv4() == local.is_ipv4())
        .ok_or_else(|| {
            ConnectError::Transport(format!("{addr} has no address of {local}'s family"))
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
                    .map_err(|e| ConnectError::Transport(format!("{addr}: {e}")))?,
            };
            let _ = stream.set_nodelay(true);
            tokio_tungstenite::client_async_tls_with_config(
                url,
                stream,
                Some(config),
                Some(connector),
            )
            .await
            .map_err(|e| ConnectError::Transport(e.to_string()))
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
        let connecting = client
            .endpoint
            .connect_with(config, addr, "localhost")
            .map_err(|e| ConnectError::Transport(e.to_string()))?;
        let conn = tokio::time::timeout(CONNECT_TIMEOUT, connecting)
            .await
            .map_err(|_| ConnectError::Timeout("quic connect"))?
            .map_err(|e| ConnectError::Transport(e.to_string()))?;
        let (send, recv) = conn
            .open_bi()
            .await
            .map_err(|e| ConnectError::Transport(e.to_string()))?;
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
            codec::encode_client(msg, &mut buf)
                .map_err(|e| ConnectError::Transport(e.to_string()))?;
            self.bytes_out += buf.len() as u64;
            return ws
                .send(Message::Binary(buf.into()))
                .await
                .map_err(|e| ConnectError::Transport(e.to_string()));
        }
        let mut buf = std::mem::take(&mut self.buf);
        codec::encode_client(msg, &mut buf).map_err(|e| ConnectError::Transport(e.to_string()))?;
        let unreliable = matches!(msg, ClientMsg::Input { .. });
        let result = self.send_bytes(&buf, unreliable).await;
        self.buf = buf;
        result
    }

    /// Sends already-encoded bytes as one message (tests use it to send garbage or replays).
    pub async fn send_bytes(&mut self, bytes: &[u8], unreliable: bool) -> Result<(), ConnectError> {
        self.bytes_out += bytes.len() as u64;
        let err = |e: String| ConnectError::Transport(e);
        match &mut self.inner {
            Raw::Ws(ws) => ws
                .send(Message::Binary(bytes.to_vec().into()))
                .await
                .map_err(|e| err(e.to_string())),
            Raw::Quic { conn, send, .. } => {
                if unreliable && conn.max_datagram_size().is_some_and(|m| bytes.len() <= m) {
                    return conn
                        .send_datagram(bytes::Bytes::copy_from_slice(bytes))
                        .map_err(|e| err(e.to_string()));
                }
                send.write_all(&codec::length_prefix(bytes.len()))
                    .await
                    .map_err(|e| err(e.to_string()))?;
                send.write_all(bytes).await.map_err(|e| err(e.to_string()))
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
                .map_err(|e| ConnectError::Transport(e.to_string())),
            Raw::Quic { send, .. } => send
                .write_all(bytes)
                .await
                .map_err(|e| ConnectError::Transport(e.to_string())),
        }
    }

    /// The next message; `Ok(None)` when the server closed (see `close_code`).
    pub async fn recv(&mut self) -> Result<Option<ServerMsg>, ConnectError> {
        let decode = |b: &[u8]| {
            codec::decode_server(b)
                .map(Some)
                .map_err(|e| ConnectError::Transport(e.to_string()))
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
                    Some(Err(e)) => return Err(ConnectError::Transport(e.to_string())),
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
                        Err(e) => return Err(ConnectError::Transport(e.to_string())),
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
                            Err(e) => return Err(ConnectError::Transport(e.to_string())),
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
                let addr: SocketAddr = self.quic_addr.parse().map_err(|_| {
                    ConnectError::Transport(format!("bad quic address {}", self.quic_addr))
                })?;
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

/// Lower-case hex of a fingerprint (for logs and flags).
pub fn fingerprint_hex(pin: &[u8; 32]) -> String {
    encode_hex(pin)
}
