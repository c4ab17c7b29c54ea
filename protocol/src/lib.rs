//! tickroom-protocol: everything a game client needs to talk to tickroom — the wire messages,
//! the codec and stream framing, signed tokens, the anti-replay window and a sans-IO client
//! session. The default build does no IO and reads no clock; the `tokio` feature adds ready
//! QUIC and WebSocket connectors.
//!
//! # A whole client
//!
//! Log in, find a match, join the room, send inputs and react to what the room sends (with the
//! `tokio` feature):
//!
//! ```no_run
//! # #[cfg(feature = "tokio")]
//! # async fn client() -> Result<(), Box<dyn std::error::Error>> {
//! use std::time::Duration;
//! use tickroom_protocol::connect::{self, GatewayClient, TransportKind};
//! use tickroom_protocol::{SessionConfig, SessionEvent};
//!
//! // 1. Log in with a device id (128 random bits, kept by the device) and queue: the match
//! //    result names the room server, carries a single-use join ticket and the fingerprint of
//! //    the server's certificate to pin.
//! let gateway = GatewayClient::new("http://127.0.0.1:7700");
//! let device_id = "5f0c8e2a9b7d4c31a6e8f0b2d4c6a8e0";
//! let found = gateway.find_match(device_id, "duel", Duration::from_secs(30)).await?;
//!
//! // 2. Join over QUIC (or `TransportKind::Ws`): the session runs on a task, resumes on its
//! //    own after a drop, and hands back events and a handle.
//! let mut session =
//!     connect::join(&found, TransportKind::Quic, SessionConfig::default(), None).await?;
//!
//! // 3. Play: inputs go out with redundancy and sequence numbers; events come in order.
//! while let Some(event) = session.events.recv().await {
//!     match event {
//!         SessionEvent::Joined(welcome) => println!("in slot {}", welcome.slot),
//!         SessionEvent::Snapshot { tick, payload, .. } => {
//!             // The game decodes `payload` (its own encoding) and draws tick `tick`.
//!             let _ = (tick, payload);
//!             session.handle.input(vec![1, 0, 0]).await; // the game's own input bytes
//!         }
//!         SessionEvent::Frame { n, .. } => {
//!             session.handle.frame_input(n + 1, vec![1, 0, 0]).await; // lockstep
//!         }
//!         SessionEvent::Closed { code } => {
//!             println!("closed: {code:?}");
//!             break;
//!         }
//!         _ => {}
//!     }
//! }
//! # Ok(())
//! # }
//! ```
//!
//! The wire itself (framing, the exact bytes of every message, the handshake and its MACs,
//! sequence numbers, resume, lockstep, error codes and the HTTP API) is specified in
//! `protocol/SPEC.md` (shipped with the crate's sources), with golden
//! vectors in `protocol/vectors/*.json` that every client in any language tests against, and
//! the gateway's OpenAPI document in `protocol/openapi.json`. `protocol/examples/client.rs` is
//! a runnable version of the example above.

#![warn(missing_docs)]

pub mod api;
pub mod codec;
pub mod error;
pub mod msg;
pub mod replay;
pub mod session;
pub mod token;
pub mod view;

#[cfg(feature = "tokio")]
pub mod connect;

pub use codec::{DecodeError, EncodeError, FrameDecoder, FrameError};
pub use error::ErrorCode;
pub use msg::{ClientMsg, Secret, ServerMsg, SyncKind, Welcome, SPECTATOR_SLOT};
pub use replay::{ReplayError, ReplayWindow};
pub use session::{ClientSession, SessionConfig, SessionEvent, SessionState};
pub use tickroom_game::{GameError, PlayerMetadata};
pub use token::{
    JoinTicket, KeyRing, RoomKeys, SessionClaims, SessionToken, TicketClaims, TokenError,
};

/// Which transport a connection uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransportKind {
    /// QUIC: one bidirectional stream of length-prefixed messages, datagrams for inputs and
    /// snapshots that fit.
    Quic,
    /// WebSocket: one binary message per protocol message.
    Ws,
}

/// The protocol version carried in `Hello`; bumped on any incompatible change.
pub const PROTOCOL_VERSION: u16 = 3;

/// ALPN protocol id for QUIC connections.
pub const ALPN: &[u8] = b"tickroom/1";

/// A hash over the message schema, computed from the encodings of one sample of every message:
/// a changed field, type or variant order changes it, so mismatched builds refuse each other.
pub fn protocol_hash() -> u64 {
    static HASH: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *HASH.get_or_init(|| {
        let (client, server) = msg::samples();
        let mut buf = Vec::new();
        let mut h = Fnv64::new();
        for m in &client {
            codec::encode_client(m, &mut buf).expect("samples encode");
            h.write(&buf);
        }
        for m in &server {
            codec::encode_server(m, &mut buf).expect("samples encode");
            h.write(&buf);
        }
        h.finish()
    })
}

/// FNV-1a 64: a tiny stable hash for schema and checksums (not for security).
#[derive(Clone, Copy, Debug)]
pub struct Fnv64(u64);

impl Default for Fnv64 {
    fn default() -> Self {
        Fnv64::new()
    }
}

impl Fnv64 {
    /// The FNV-1a offset basis.
    pub fn new() -> Self {
        Fnv64(0xcbf2_9ce4_8422_2325)
    }
    /// Mixes bytes in.
    pub fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 ^= u64::from(*b);
            self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
        }
    }
    /// The hash so far.
    pub fn finish(&self) -> u64 {
        self.0
    }
}
