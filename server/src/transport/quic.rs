//! QUIC transport (quinn): a self-signed certificate by default (its SHA-256 fingerprint is
//! served so clients pin it), ALPN `tickroom/1`, 0-RTT disabled, one bidirectional stream of
//! length-prefixed messages for reliable traffic, datagrams for inputs and snapshots that fit.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use quinn::{Connection, Endpoint, RecvStream, SendStream, VarInt};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use sha2::{Digest, Sha256};
use tickroom_protocol::codec::{self, FrameDecoder, MAX_CLIENT_MSG_BYTES};
use tickroom_protocol::{token, ClientMsg, ErrorCode, ALPN};
use tokio::task::JoinHandle;
use tracing::{debug, warn};

use super::{decode, Reader, TransportKind};
use crate::listen::{Listener, Pending};
use crate::outbox::{OutItem, Outbox};
use crate::RoomServer;

/// How long a closing connection waits for the peer to read its last message and close.
const CLOSE_LINGER: Duration = Duration::from_secs(1);
/// Most bytes taken from the stream at once. Reads borrow quinn's own buffers
/// (`read_chunk`), so an idle connection holds no read buffer of its own.
const READ_CHUNK_BYTES: usize = 16 * 1024;
/// The QUIC transport's own idle timeout beyond the room server's (`idle_timeout`), so the
/// room server's typed `IdleTimeout` close comes first.
const QUIC_IDLE_MARGIN: Duration = Duration::from_secs(5);
/// Least QUIC idle timeout.
const QUIC_MIN_IDLE_TIMEOUT: Duration = Duration::from_secs(20);
/// Datagram receive buffer per connection, in bytes.
const DATAGRAM_RECV_BUFFER_BYTES: usize = 256 * 1024;

/// Why the QUIC endpoint could not start.
#[derive(Debug, thiserror::Error)]
pub enum QuicSetupError {
    /// The certificate or key could not be made or read.
    #[error("certificate: {0}")]
    Certificate(String),
    /// rustls or quinn refused the configuration.
    #[error("tls configuration: {0}")]
    Tls(String),
    /// The UDP socket could not be bound.
    #[error("cannot bind {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
}

/// A certificate chain and its key.
pub struct CertAndKey {
    pub chain: Vec<CertificateDer<'static>>,
    pub key: PrivateKeyDer<'static>,
}

impl Clone for CertAndKey {
    fn clone(&self) -> Self {
        CertAndKey {
            chain: self.chain.clone(),
            key: self.key.clone_key(),
        }
    }
}

impl CertAndKey {
    /// A fresh self-signed certificate for `localhost`.
    pub fn self_signed() -> Result<CertAndKey, QuicSetupError> {
        let ck = rcgen::generate_simple_self_signed(vec!["localhost".to_string()])
            .map_err(|e| QuicSetupError::Certificate(e.to_string()))?;
        Ok(CertAndKey {
            chain: vec![ck.cert.der().clone()],
            key: PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(ck.signing_key.serialize_der())),
        })
    }

    /// Loads a PEM certificate chain and key.
    pub fn from_pem_files(cert: &Path, key: &Path) -> Result<CertAndKey, QuicSetupError> {
        let bad = |e: rustls::pki_types::pem::Error| QuicSetupError::Certificate(e.to_string());
        let chain = CertificateDer::pem_file_iter(cert)
            .map_err(bad)?
            .collect::<Result<Vec<_>, _>>()
            .map_err(bad)?;
        let key = PrivateKeyDer::from_pem_file(key).map_err(bad)?;
        Ok(CertAndKey { chain, key })
    }

    /// Lower-case hex SHA-256 of the leaf certificate: what clients pin.
    pub fn fingerprint(&self) -> String {
        self.chain
            .first()
            .map(|c| token::encode_hex(&Sha256::digest(c.as_ref())))
            .unwrap_or_default()
    }
}

/// Binds a QUIC server endpoint for a room server that closes silent connections after
/// `idle_timeout`.
pub fn bind(
    addr: SocketAddr,
    cert: CertAndKey,
    idle_timeout: Duration,
) -> Result<Endpoint, QuicSetupError> {
    let quic_idle = (idle_timeout + QUIC_IDLE_MARGIN).max(QUIC_MIN_IDLE_TIMEOUT);
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut tls = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| QuicSetupError::Tls(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(cert.chain, cert.key)
        .map_err(|e| QuicSetupError::Tls(e.to_string()))?;
    tls.alpn_protocols = vec![ALPN.to_vec()];
    // 0-RTT data can be replayed by an attacker: never accept it.
    tls.max_early_data_size = 0;
    let crypto = quinn::crypto::rustls::QuicServerConfig::try_from(tls)
        .map_err(|e| QuicSetupError::Tls(e.to_string()))?;
    let mut config = quinn::ServerConfig::with_crypto(Arc::new(crypto));
    let mut transport = quinn::TransportConfig::default();
    transport
        .max_concurrent_bidi_streams(VarInt::from_u32(1))
        .max_concurrent_uni_streams(VarInt::from_u32(0))
        .datagram_receive_buffer_size(Some(DATAGRAM_RECV_BUFFER_BYTES))
        .max_idle_timeout(quic_idle.try_into().ok());
    config.transport_config(Arc::new(transport));
    Endpoint::server(config, addr).map_err(|source| QuicSetupError::Bind { addr, source })
}

/// The receiving half of a QUIC connection: the stream's frames and the datagrams.
pub struct QuicReader {
    conn: Connection,
    recv: RecvStream,
    frames: FrameDecoder,
}

impl QuicReader {
    pub(super) async fn recv(&mut self) -> Result<Option<(ClientMsg, usize)>, ErrorCode> {
        loop {
            match self.frames.next_frame() {
                Err(_) => return Err(ErrorCode::MessageTooLarge),
                Ok(Some(frame)) => return decode(frame),
                Ok(None) => {}
            }
            tokio::select! {
                read = self.recv.read_chunk(READ_CHUNK_BYTES, true) => match read {
                    Ok(Some(chunk)) => self.frames.push(&chunk.bytes),
                    Ok(None) | Err(_) => return Ok(None),
                },
                datagram = self.conn.read_datagram() => match datagram {
                    // Only inputs may come unreliably: the handshake, checksums, messages and
                    // leaves are ordered and must arrive, so they belong on the stream.
                    Ok(bytes) => return match decode(&bytes)? {
                        Some((msg @ ClientMsg::Input { .. }, len)) => Ok(Some((msg, len))),
                        _ => Err(ErrorCode::BadMessage),
                    },
                    Err(_) => return Ok(None),
                },
            }
        }
    }
}

/// The QUIC listener: the server endpoint.
pub struct QuicListener(pub Endpoint);

/// An incoming QUIC connection, before its handshake.
pub struct QuicPending(quinn::Incoming);

impl Listener for QuicListener {
    type Pending = QuicPending;

    async fn accept(&mut self) -> Option<(QuicPending, SocketAddr)> {
        let incoming = self.0.accept().await?;
        let peer = incoming.remote_address();
        Some((QuicPending(incoming), peer))
    }

    fn shut(self) {
        self.0.close(
            VarInt::from_u32(u32::from(ErrorCode::ServerShutdown.as_u16())),
            b"server_shutdown",
        );
    }
}

impl Pending for QuicPending {
    const KIND: TransportKind = TransportKind::Quic;

    fn refuse(self) {
        self.0.refuse();
    }

    fn screen(self, retry: bool) -> Option<Self> {
        if retry && !self.0.remote_address_validated() && self.0.may_retry() {
            // Stateless: the client comes back with a token proving it owns its address.
            return match self.0.retry() {
                Ok(()) => None,
                Err(e) => Some(QuicPending(e.into_incoming())),
            };
        }
        Some(self)
    }

    async fn open(
        self,
        server: Arc<RoomServer>,
        outbox: Arc<Outbox>,
    ) -> Option<(Reader, JoinHandle<()>)> {
        let peer = self.0.remote_address();
        let timeout = server.shared.config.handshake_timeout;
        let conn = match tokio::time::timeout(timeout, self.0).await {
            Ok(Ok(conn)) => conn,
            Ok(Err(e)) => {
                debug!(%peer, error = %e, "quic handshake failed");
                return None;
            }
            Err(_) => return None,
        };
        let (send, recv) = match tokio::time::timeout(timeout, conn.accept_bi()).await {
            Ok(Ok(pair)) => pair,
            _ => {
                conn.close(
                    VarInt::from_u32(u32::from(ErrorCode::HandshakeTimeout.as_u16())),
                    b"handshake_timeout",
                );
                return None;
            }
        };
        let writer = tokio::spawn(write_loop(conn.clone(), send, outbox, server));
        let reader = QuicReader {
            conn,
            recv,
            frames: FrameDecoder::new(MAX_CLIENT_MSG_BYTES),
        };
        Some((Reader::Quic(reader), writer))
    }
}

async fn write_loop(
    conn: Connection,
    mut send: SendStream,
    outbox: Arc<Outbox>,
    server: Arc<RoomServer>,
) {
    let metrics = &server.shared.metrics;
    loop {
        let item = outbox.next().await;
        let result = match item {
            OutItem::Reliable(bytes) => write_framed(&mut send, &bytes).await.map(|_| bytes.len()),
            OutItem::Unreliable(bytes) => {
                let len = bytes.len();
                if conn.max_datagram_size().is_some_and(|max| len <= max) {
                    // A full datagram buffer drops the oldest: snapshots conflate here too.
                    conn.send_datagram(bytes).map(|_| len).map_err(|_| ())
                } else {
                    write_framed(&mut send, &bytes).await.map(|_| len)
                }
            }
            OutItem::Close(code) => {
                // Closing at once would discard the final Error/Kicked the peer has not read:
                // finish the stream and give the peer time to read it and close first.
                let _ = send.finish();
                let _ = tokio::time::timeout(CLOSE_LINGER, conn.closed()).await;
                conn.close(
                    VarInt::from_u32(u32::from(code.as_u16())),
                    code.name().as_bytes(),
                );
                return;
            }
        };
        match result {
            Ok(len) => {
                metrics.messages_out.inc();
                metrics.bytes_out.add(len as u64);
            }
            Err(()) => {
                warn!("quic write failed; closing");
                outbox.close(ErrorCode::Kicked);
                conn.close(VarInt::from_u32(0), b"");
                return;
            }
        }
    }
}

async fn write_framed(send: &mut SendStream, body: &[u8]) -> Result<(), ()> {
    send.write_all(&codec::length_prefix(body.len()))
        .await
        .map_err(|_| ())?;
    send.write_all(body).await.map_err(|_| ())
}
