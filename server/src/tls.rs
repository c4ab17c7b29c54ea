//! TLS on the TCP listeners (the gateway's HTTPS and WebSocket's wss), from rustls as QUIC has
//! it: TLS 1.3 only, one certificate for the whole process (its SHA-256 fingerprint is what
//! clients pin when it is self-signed). A listener without TLS serves plain `MaybeTls::Plain`
//! connections through the same code.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;

use crate::transport::quic::{CertAndKey, QuicSetupError};

/// A TLS acceptor and the fingerprint of its certificate.
#[derive(Clone)]
pub struct TlsServer {
    acceptor: TlsAcceptor,
    fingerprint: String,
}

impl std::fmt::Debug for TlsServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsServer")
            .field("fingerprint", &self.fingerprint)
            .finish_non_exhaustive()
    }
}

impl TlsServer {
    /// TLS 1.3 with `cert`, offering HTTP/1.1 (what both the gateway and WebSocket speak).
    pub fn new(cert: &CertAndKey) -> Result<Arc<TlsServer>, QuicSetupError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13])
            .map_err(|e| QuicSetupError::Tls(e.to_string()))?
            .with_no_client_auth()
            .with_single_cert(cert.chain.clone(), cert.key.clone_key())
            .map_err(|e| QuicSetupError::Tls(e.to_string()))?;
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Arc::new(TlsServer {
            acceptor: TlsAcceptor::from(Arc::new(config)),
            fingerprint: cert.fingerprint(),
        }))
    }

    /// Lower-case hex SHA-256 of the certificate.
    pub fn fingerprint(&self) -> &str {
        &self.fingerprint
    }

    /// The TLS handshake on `stream`, within `timeout`; `None` when it failed or took longer.
    pub async fn accept(&self, stream: TcpStream, timeout: Duration) -> Option<MaybeTls> {
        match tokio::time::timeout(timeout, self.acceptor.accept(stream)).await {
            Ok(Ok(tls)) => Some(MaybeTls::Tls(Box::new(tls))),
            Ok(Err(e)) => {
                tracing::debug!(error = %e, "tls handshake failed");
                None
            }
            Err(_) => None,
        }
    }
}

/// Opens `stream` with TLS when `tls` is given (within `timeout`), else as it is.
pub async fn open(
    tls: Option<&TlsServer>,
    stream: TcpStream,
    timeout: Duration,
) -> Option<MaybeTls> {
    match tls {
        Some(tls) => tls.accept(stream, timeout).await,
        None => Some(MaybeTls::Plain(stream)),
    }
}

/// A TCP connection, with or without TLS.
pub enum MaybeTls {
    /// Plain TCP.
    Plain(TcpStream),
    /// TLS over TCP.
    Tls(Box<TlsStream<TcpStream>>),
}

impl AsyncRead for MaybeTls {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            MaybeTls::Plain(s) => Pin::new(s).poll_read(cx, buf),
            MaybeTls::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for MaybeTls {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            MaybeTls::Plain(s) => Pin::new(s).poll_write(cx, buf),
            MaybeTls::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            MaybeTls::Plain(s) => Pin::new(s).poll_flush(cx),
            MaybeTls::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            MaybeTls::Plain(s) => Pin::new(s).poll_shutdown(cx),
            MaybeTls::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            MaybeTls::Plain(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            MaybeTls::Tls(s) => Pin::new(s.as_mut()).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            MaybeTls::Plain(s) => s.is_write_vectored(),
            MaybeTls::Tls(s) => s.is_write_vectored(),
        }
    }
}
