//! The one accept path of both transports: a connection slot taken before accept, per-IP
//! admission, the connection's outbox and its writer, then `serve_connection`. A transport
//! only accepts (`Listener`) and opens an accepted connection into a `Reader` and a writer
//! task (`Pending`); it knows nothing of sessions or rooms.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::conn::serve_connection;
use crate::outbox::Outbox;
use crate::transport::{Reader, TransportKind};
use crate::RoomServer;

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
    /// Turns the connection away (per-IP limit) as cheaply as the transport allows.
    fn refuse(self);
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
    loop {
        // Taken before accept: a full server stops accepting instead of growing.
        let permit = tokio::select! {
            p = server.connection_slots.clone().acquire_owned() => match p { Ok(p) => p, Err(_) => break },
            _ = shutdown.changed() => break,
        };
        let (pending, peer) = tokio::select! {
            accepted = listener.accept() => match accepted { Some(a) => a, None => break },
            _ = shutdown.changed() => break,
        };
        let Some(ip) = server.shared.ip_limits.admit(peer.ip()) else {
            server.shared.metrics.refused_connections.inc();
            pending.refuse();
            continue;
        };
        let server = server.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let outbox = Arc::new(Outbox::new(server.shared.config.max_reliable_queue_bytes));
            let Some((reader, writer)) = pending.open(server.clone(), outbox.clone()).await else {
                return;
            };
            serve_connection(server, reader, outbox, L::Pending::KIND, peer, ip).await;
            let _ = writer.await;
        });
    }
    listener.shut();
}
