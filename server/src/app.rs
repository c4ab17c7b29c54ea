//! Process roles: starting a room server's transports and HTTP endpoint on given addresses
//! (port 0 allowed), the ready-file, and graceful shutdown. `main.rs` only parses flags.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::info;

use crate::http::{HttpLimits, HttpStats, MetricsSource};
use crate::listen;
use crate::tls::TlsServer;
use crate::transport::quic::{self, CertAndKey, QuicListener};
use crate::transport::ws::WsListener;
use crate::RoomServer;

/// How long shutdown waits for connections to flush their last messages.
pub const SHUTDOWN_DRAIN: Duration = Duration::from_secs(2);

/// Where a running process listens; written as the ready-file JSON.
#[derive(Debug, Clone, Serialize, PartialEq, Eq, Default)]
pub struct ReadyInfo {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub http: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ws: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub quic: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cert_fingerprint: Option<String>,
    /// Hex SHA-256 of the HTTPS/wss certificate, when TLS is on (what clients pin).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_fingerprint: Option<String>,
    /// The metrics listener (`/metrics`, `/healthz`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metrics: Option<String>,
}

/// A started room server's listeners.
pub struct RunningRoomServer {
    pub server: Arc<RoomServer>,
    pub ws_addr: SocketAddr,
    pub quic_addr: SocketAddr,
    pub cert_fingerprint: String,
    shutdown: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

/// Why a role could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// A TCP listener could not be bound.
    #[error("cannot bind {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    /// The QUIC endpoint could not start.
    #[error(transparent)]
    Quic(#[from] quic::QuicSetupError),
    /// The shared directory (Redis) could not be reached.
    #[error("directory: {0}")]
    Directory(String),
    /// A mode names a game this server cannot run.
    #[error(transparent)]
    Games(#[from] crate::room::RegistryError),
    /// The connection threads could not start.
    #[error("cannot start the connection threads: {0}")]
    IoThreads(std::io::Error),
    /// A gateway needs the key ring; it was given only room keys.
    #[error("a gateway needs the key ring (TICKROOM_KEYS or --keys-file), not only room keys")]
    NoKeyRing,
}

/// Binds a TCP listener, naming the address on failure.
pub async fn bind_tcp(addr: SocketAddr) -> Result<TcpListener, StartError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| StartError::Bind { addr, source })
}

impl RunningRoomServer {
    /// Starts WebSocket and QUIC listeners for `server`.
    pub async fn start(
        server: Arc<RoomServer>,
        ws_addr: SocketAddr,
        quic_addr: SocketAddr,
        cert: CertAndKey,
        tls: Option<Arc<TlsServer>>,
    ) -> Result<RunningRoomServer, StartError> {
        let (shutdown, rx) = watch::channel(false);
        let listener = bind_tcp(ws_addr).await?;
        let ws_addr = listener.local_addr().map_err(|source| StartError::Bind {
            addr: ws_addr,
            source,
        })?;
        let cert_fingerprint = cert.fingerprint();
        let endpoint = quic::bind(quic_addr, cert, server.shared.config.idle_timeout)?;
        let quic_addr = endpoint.local_addr().map_err(|source| StartError::Bind {
            addr: quic_addr,
            source,
        })?;
        let tasks = vec![
            tokio::spawn(listen::run(
                WsListener(listener, tls),
                server.clone(),
                rx.clone(),
            )),
            tokio::spawn(listen::run(QuicListener(endpoint), server.clone(), rx)),
        ];
        info!(%ws_addr, %quic_addr, fingerprint = %cert_fingerprint, "room server listening (ws, quic)");
        Ok(RunningRoomServer {
            server,
            ws_addr,
            quic_addr,
            cert_fingerprint,
            shutdown,
            tasks,
        })
    }

    /// The room server's metrics as a source for `/metrics`.
    pub fn metrics_source(&self) -> MetricsSource {
        let server = self.server.clone();
        Arc::new(move |out: &mut String| server.render_metrics(out))
    }

    /// Stops accepting, tells every player (`Kicked{ServerShutdown}`), and waits up to
    /// `SHUTDOWN_DRAIN` for connections to flush.
    pub async fn shutdown(self) {
        let _ = self.shutdown.send(true);
        let server = self.server.clone();
        let _ = tokio::task::spawn_blocking(move || server.pool.shutdown()).await;
        let deadline = tokio::time::Instant::now() + SHUTDOWN_DRAIN;
        // Wait for the players to be told, not only for the sessions to end: a connection
        // counts until its writer sent the last message and the client closed (or the
        // linger ran out). Exiting earlier cut sockets without their close reason, and the
        // clients, seeing a plain loss, tried to resume a server that was gone.
        let metrics = &self.server.shared.metrics;
        let busy = || {
            !self.server.shared.sessions.is_empty()
                || metrics.connections_ws.value() + metrics.connections_quic.value() > 0
        };
        let mut poll = tokio::time::interval(Duration::from_millis(20));
        while busy() && tokio::time::Instant::now() < deadline {
            poll.tick().await;
        }
        for t in self.tasks {
            let _ = tokio::time::timeout_at(deadline, t).await;
        }
    }
}

/// Serves `app` on `addr` within `limits` (header-read and request timeouts, connection
/// caps: `http::serve`) until `shutdown`; returns the bound address.
pub async fn serve_http(
    addr: SocketAddr,
    app: axum::Router,
    limits: HttpLimits,
    tls: Option<Arc<TlsServer>>,
    stats: Arc<HttpStats>,
    shutdown: watch::Receiver<bool>,
) -> Result<(SocketAddr, JoinHandle<()>), StartError> {
    let listener = bind_tcp(addr).await?;
    let bound = listener
        .local_addr()
        .map_err(|source| StartError::Bind { addr, source })?;
    let task = tokio::spawn(crate::http::serve(
        listener, app, limits, tls, stats, shutdown,
    ));
    Ok((bound, task))
}

/// Writes the ready-file atomically (temp file + rename), so readers never see half of it.
pub fn write_ready_file(path: &std::path::Path, info: &ReadyInfo) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(
        &tmp,
        serde_json::to_vec(info).map_err(std::io::Error::other)?,
    )?;
    std::fs::rename(tmp, path)
}
