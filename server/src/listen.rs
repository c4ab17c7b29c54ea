//! The one accept path of both transports: a pre-login permit taken before accept (evicting
//! the oldest pre-login connection when the budget is spent), QUIC's Retry for unvalidated
//! addresses under load, per-IP admission, the connection's outbox and its writer, then
//! `serve_connection`, which exchanges the pre-login permit for a session permit once the
//! client proved its ticket. A transport only accepts (`Listener`) and opens an accepted
//! connection into a `Reader` and a writer task (`Pending`); it knows nothing of sessions or
//! rooms.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::conn::serve_connection;
use crate::outbox::Outbox;
use crate::transport::{Reader, TransportKind};
use crate::{QuicRetry, RoomServer};

/// A transport's listening side.
pub trait Listener: Send + 'static {
    /// A connection accepted but not yet opened (no transport handshake yet).
    type Pending: Pending;
    /// The next connection and its peer address; `None` once the listener is done.
    fn accept(&mut self) -> impl Future<Output = Option<(Self::Pending, SocketAddr)>> + Send;
    /// Stops listening (the server is shutting down).
    fn shut(self);
}

/// An accepted connection of one transport.
pub trait Pending: Send + 'static {
    /// Which transport.
    const KIND: TransportKind;
    /// Whether the connection may run on a connection thread (`IoThreads`): its socket is
    /// not bound to a runtime until `open`.
    const PORTABLE: bool = false;
    /// Turns the connection away (per-IP limit) as cheaply as the transport allows.
    fn refuse(self);
    /// Asks the client to prove its address first when `retry` and the transport can (QUIC's
    /// stateless Retry): `None` when it did, the connection itself otherwise.
    fn screen(self, retry: bool) -> Option<Self>
    where
        Self: Sized,
    {
        let _ = retry;
        Some(self)
    }
    /// Finishes the transport's own handshake (bounded by the server's handshake timeout)
    /// and starts the writer task that drains `outbox`; `None` when the peer went away.
    fn open(
        self,
        server: Arc<RoomServer>,
        outbox: Arc<Outbox>,
    ) -> impl Future<Output = Option<(Reader, JoinHandle<()>)>> + Send;
}

/// Accepts connections from `listener` until `shutdown` turns true.
pub async fn run<L: Listener>(
    mut listener: L,
    server: Arc<RoomServer>,
    mut shutdown: watch::Receiver<bool>,
) {
    let metrics = &server.shared.metrics;
    'accept: loop {
        // Taken before accept: with the budget spent, the oldest pre-login connection is
        // closed and this waits for its permit.
        let permit = tokio::select! {
            p = server.prelogin.acquire() => match p { Some(p) => p, None => break },
            _ = shutdown.changed() => break,
        };
        let (pending, peer) = loop {
            let (pending, peer) = tokio::select! {
                accepted = listener.accept() => match accepted { Some(a) => a, None => break 'accept },
                _ = shutdown.changed() => break 'accept,
            };
            let retry = match server.shared.config.quic_retry {
                QuicRetry::Never => false,
                QuicRetry::UnderLoad => server.prelogin.under_load(),
                QuicRetry::Always => true,
            };
            match pending.screen(retry) {
                Some(pending) => break (pending, peer),
                // The Retry cost no permit: keep it for the next connection.
                None => metrics.quic_retries.inc(),
            }
        };
        let Some(ip) = server.shared.ip_limits.admit(peer.ip()) else {
            metrics.refused_connections.inc();
            pending.refuse();
            continue;
        };
        let slot = server.prelogin.slot(permit);
        let server = server.clone();
        let io = server.clone();
        let task = async move {
            let outbox = Arc::new(Outbox::new(server.shared.config.max_reliable_queue_bytes));
            let mark = slot.mark();
            let opened = tokio::select! {
                opened = pending.open(server.clone(), outbox.clone()) => opened,
                () = mark.evicted() => {
                    server.shared.metrics.prelogin_evictions.inc();
                    None
                }
            };
            let Some((reader, writer)) = opened else {
                return;
            };
            serve_connection(server, reader, outbox, L::Pending::KIND, peer, ip, slot).await;
            let _ = writer.await;
        };
        match &io.io {
            Some(threads) if L::Pending::PORTABLE => threads.spawn(task),
            _ => {
                tokio::spawn(task);
            }
        }
    }
    listener.shut();
}
