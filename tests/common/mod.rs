//! Test helpers: an in-process room server on port 0, tickets minted with its key ring, and
//! clients joined through the protocol crate's connectors. Waits use deadlines, never sleeps.
#![allow(dead_code)]

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tickroom::game::modes::Modes;
use tickroom::protocol::connect::{self, CertCheck, JoinTarget, RawConn, Session, TransportKind};
use tickroom::protocol::session::{SessionConfig, SessionEvent};
use tickroom::protocol::{KeyRing, PlayerMetadata, Secret, TicketClaims};
use tickroom::server::app::RunningRoomServer;
use tickroom::server::room::GameRegistry;
use tickroom::server::transport::quic::CertAndKey;
use tickroom::server::{unix_ms, RoomServer, RoomServerConfig};

/// The room-server config tests start from: two workers, and admission control's tick budget
/// raised so that a loaded CI machine running debug builds does not refuse rooms.
pub fn test_config() -> RoomServerConfig {
    RoomServerConfig {
        workers: 2,
        max_tick_p99_ms: 1_000.0,
        ..RoomServerConfig::default()
    }
}

/// Upper bound for any single wait in these tests.
pub const WAIT: Duration = Duration::from_secs(10);

/// A room server on loopback port 0.
pub struct TestServer {
    pub running: RunningRoomServer,
    pub keys: KeyRing,
}

impl TestServer {
    /// Starts a server with `config` (its server id is "room-1") and the embedded modes.
    pub async fn start(config: RoomServerConfig) -> TestServer {
        TestServer::start_with_modes(config, Modes::embedded()).await
    }

    /// Starts a server whose rooms start as soon as one player is in (start timeout 0) and
    /// whose dropped players keep their seat for 1 s.
    pub async fn quick() -> TestServer {
        TestServer::quick_with(RoomServerConfig {
            workers: 2,
            ..test_config()
        })
        .await
    }

    /// `quick()` with an explicit server config.
    pub async fn quick_with(config: RoomServerConfig) -> TestServer {
        let text = tickroom::game::modes::EMBEDDED_MODES_TOML
            .replace("start_timeout_s = 10", "start_timeout_s = 0")
            .replace("grace_s = 30", "grace_s = 1");
        TestServer::start_with_modes(config, Modes::parse(&text).unwrap()).await
    }

    /// Starts a server with `config` and `modes`, running the sample games.
    pub async fn start_with_modes(config: RoomServerConfig, modes: Modes) -> TestServer {
        let games = tickroom::server::Server::with_sample_games();
        TestServer::start_with_games(config, modes, games.games()).await
    }

    /// Starts a server with `config` and `modes`, running `games`.
    pub async fn start_with_games(
        config: RoomServerConfig,
        modes: Modes,
        games: &GameRegistry,
    ) -> TestServer {
        let keys = KeyRing::single(1, [7; 32]);
        let server = RoomServer::new(config, keys.room_keys().clone(), &modes, games).unwrap();
        let any = "127.0.0.1:0".parse().unwrap();
        let running =
            RunningRoomServer::start(server, any, any, CertAndKey::self_signed().unwrap(), None)
                .await
                .unwrap();
        TestServer { running, keys }
    }

    /// Starts a server with default limits and 2 workers.
    pub async fn default() -> TestServer {
        TestServer::start(RoomServerConfig {
            workers: 2,
            ..test_config()
        })
        .await
    }

    /// A ticket for `player` in `room` of `mode`, and the matching join secret.
    pub fn ticket(&self, player: u64, room: u64, mode: &str) -> (String, Secret) {
        self.ticket_with(player, room, mode, "room-1", 10_000)
    }

    /// A ticket with an explicit server id and lifetime (ms, may be negative for expired).
    pub fn ticket_with(
        &self,
        player: u64,
        room: u64,
        mode: &str,
        server: &str,
        ttl_ms: i64,
    ) -> (String, Secret) {
        self.ticket_with_metadata(player, room, mode, server, ttl_ms, Default::default())
    }

    /// `ticket_with`, carrying `metadata` as the gateway would.
    pub fn ticket_with_metadata(
        &self,
        player: u64,
        room: u64,
        mode: &str,
        server: &str,
        ttl_ms: i64,
        metadata: PlayerMetadata,
    ) -> (String, Secret) {
        let now = unix_ms();
        let claims = TicketClaims {
            player_id: player,
            room_id: room,
            mode: mode.into(),
            server_id: server.into(),
            issued_ms: now.saturating_sub(60_000),
            expires_ms: (now as i64 + ttl_ms) as u64,
            nonce: rand_nonce(player, room),
            metadata,
            spectator: false,
        };
        let token = self.keys.sign_ticket(&claims);
        let verified = self
            .keys
            .verify_ticket(&token, claims.issued_ms, 0)
            .unwrap();
        (token, self.keys.join_secret(&verified))
    }

    /// Where to connect over `transport`, with the certificate pinned.
    pub fn target(&self, transport: TransportKind) -> JoinTarget {
        JoinTarget {
            transport,
            ws_addr: self.running.ws_addr.to_string(),
            quic_addr: self.running.quic_addr.to_string(),
            cert: CertCheck::pinned_hex(&self.running.cert_fingerprint).unwrap(),
            local_ip: None,
            ws_tls: false,
        }
    }

    /// Joins `player` into `room` and returns the running session.
    pub async fn join(
        &self,
        transport: TransportKind,
        player: u64,
        room: u64,
        mode: &str,
    ) -> Session {
        self.join_with_metadata(transport, player, room, mode, PlayerMetadata::default())
            .await
    }

    /// `join` with a ticket carrying `metadata`.
    pub async fn join_with_metadata(
        &self,
        transport: TransportKind,
        player: u64,
        room: u64,
        mode: &str,
        metadata: PlayerMetadata,
    ) -> Session {
        let (ticket, secret) =
            self.ticket_with_metadata(player, room, mode, "room-1", 10_000, metadata);
        connect::join_target(
            self.target(transport),
            ticket,
            secret,
            SessionConfig::default(),
            None,
        )
        .await
        .unwrap()
    }

    /// A raw connection (no session logic) for sending exactly what a test wants.
    pub async fn raw(&self, transport: TransportKind) -> RawConn {
        match transport {
            TransportKind::Ws => RawConn::open_ws(&self.running.ws_addr.to_string())
                .await
                .unwrap(),
            TransportKind::Quic => {
                let client = connect::QuicClient::new(self.running.quic_addr).unwrap();
                let check = CertCheck::pinned_hex(&self.running.cert_fingerprint).unwrap();
                RawConn::open_quic(&client, self.running.quic_addr, &check)
                    .await
                    .unwrap()
            }
        }
    }

    /// The server's shared state (metrics, sessions).
    pub fn server(&self) -> &Arc<RoomServer> {
        &self.running.server
    }
}

fn rand_nonce(player: u64, room: u64) -> [u8; 16] {
    // Unique per (player, room, call): mixes a process-wide counter in.
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(1);
    let c = COUNTER.fetch_add(1, Ordering::Relaxed);
    let mut n = [0u8; 16];
    n[..8].copy_from_slice(&(player ^ room.rotate_left(17) ^ c.rotate_left(40)).to_le_bytes());
    n[8..].copy_from_slice(&c.to_le_bytes());
    n
}

/// Awaits `f` or fails the test after `WAIT`.
pub async fn within<T>(what: &str, f: impl Future<Output = T>) -> T {
    tokio::time::timeout(WAIT, f)
        .await
        .unwrap_or_else(|_| panic!("timed out waiting for {what}"))
}

/// Takes events until `pick` returns Some, failing on Closed or after `WAIT`.
pub async fn next_matching<T>(
    session: &mut Session,
    what: &str,
    mut pick: impl FnMut(&SessionEvent) -> Option<T>,
) -> T {
    within(what, async {
        loop {
            let event = session
                .events
                .recv()
                .await
                .unwrap_or_else(|| panic!("event stream ended waiting for {what}"));
            if let Some(v) = pick(&event) {
                return v;
            }
            if let SessionEvent::Closed { code } = event {
                panic!("session closed with {code:?} while waiting for {what}");
            }
        }
    })
    .await
}
