//! A pre-login flood against the real binary: idle TCP connections to the WebSocket listener
//! from eight loopback addresses and a flood of QUIC Initials (never followed up, as from
//! spoofed addresses) from eight more. Meanwhile two established players keep playing without
//! an error, and two new players log in, match and join within 2 s.
//!
//! The server runs with `--max-connections 1000` so the flood stays small enough for CI; the
//! attack scales with that cap. Against the build before the pre-login budget (connections
//! shared one budget of `--max-connections` taken before accept, 10,000 per IP, every QUIC
//! Initial started a handshake), the new players waited for the handshake timeout (5 s) and
//! this test failed; run it against another build with `TICKROOM_TEST_BIN=path/to/tickroom`.

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use tickroom_protocol::connect::{self, GatewayClient, Session, TransportKind};
use tickroom_protocol::{SessionConfig, SessionEvent};
use tokio::net::{TcpSocket, TcpStream, UdpSocket};

mod common;

use common::{metric, quic_client, start_tickroom, TempDir, WAIT};

/// The session budget the server runs with (small, so the flood stays small).
const MAX_CONNECTIONS: &str = "1000";
/// Attacking addresses per transport.
const ADDRESSES: u8 = 8;
/// Idle TCP connections opened from each attacking address.
const TCP_PER_ADDRESS: usize = 160;
/// QUIC Initials sent (each opens a new connection attempt on the server).
const QUIC_INITIALS: usize = 1_600;
/// How long new players may take from login to seated while the flood runs.
const JOIN_LIMIT: Duration = Duration::from_secs(2);

/// `127.0.0.{first + i % ADDRESSES}`.
fn attacker(first: u8, i: usize) -> IpAddr {
    IpAddr::from([127, 0, 0, first + (i % usize::from(ADDRESSES)) as u8])
}

/// Opens an idle TCP connection from `from` to `to`; `None` when the connect failed.
async fn idle_tcp(from: IpAddr, to: SocketAddr) -> Option<TcpStream> {
    let socket = TcpSocket::new_v4().ok()?;
    socket.bind(SocketAddr::new(from, 0)).ok()?;
    tokio::time::timeout(WAIT, socket.connect(to))
        .await
        .ok()?
        .ok()
}

/// `n` distinct QUIC Initial packets aimed at nobody: a quinn client connects `n` times to a
/// UDP socket of ours, which keeps the first datagram of each attempt.
async fn capture_initials(n: usize) -> Vec<Vec<u8>> {
    let sink = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let sink_addr = sink.local_addr().unwrap();
    let client = quic_client(false);
    let attempts: Vec<_> = (0..n)
        .map(|_| client.connect(sink_addr, "localhost").unwrap())
        .collect();
    let mut initials = Vec::with_capacity(n);
    let mut seen = std::collections::HashSet::new();
    let mut buf = vec![0u8; 2048];
    let deadline = tokio::time::Instant::now() + WAIT;
    while initials.len() < n {
        let (len, _) = tokio::time::timeout_at(deadline, sink.recv_from(&mut buf))
            .await
            .expect("the client sends its Initials")
            .unwrap();
        // Retransmissions repeat an attempt's connection id (bytes 6..6+len): keep one each.
        let dcid_len = usize::from(buf[5]);
        if seen.insert(buf[6..6 + dcid_len].to_vec()) {
            initials.push(buf[..len].to_vec());
        }
    }
    drop(attempts);
    client.close(0u32.into(), b"");
    initials
}

/// Sends every Initial once, spread over the attacking addresses; returns the sockets (their
/// replies are never read).
async fn flood_initials(initials: &[Vec<u8>], to: SocketAddr) -> Vec<UdpSocket> {
    let mut sockets = Vec::new();
    for k in 0..ADDRESSES {
        let from = attacker(20, usize::from(k));
        sockets.push(UdpSocket::bind(SocketAddr::new(from, 0)).await.unwrap());
    }
    for (i, packet) in initials.iter().enumerate() {
        let socket = &sockets[i % sockets.len()];
        socket.send_to(packet, to).await.unwrap();
        if i % 64 == 63 {
            // Let the server's receive buffer drain, as a flood spread over the network would.
            tokio::task::yield_now().await;
        }
    }
    sockets
}

/// Two players matched into one duel over `transports`, seated, and how long that took.
async fn duel(http: &str, tag: &str, transports: [TransportKind; 2]) -> (Vec<Session>, Duration) {
    let started = Instant::now();
    let player = |i: usize| {
        let gw = GatewayClient::new(http);
        let device = tickroom_testkit::device_id(&format!("{tag}-{i}"));
        let transport = transports[i];
        async move {
            let m = gw
                .find_match(&device, "duel", WAIT)
                .await
                .map_err(|e| format!("{tag} {i} matchmaking: {e}"))?;
            let mut session = connect::join(&m, transport, SessionConfig::default(), None)
                .await
                .map_err(|e| format!("{tag} {i} join: {e}"))?;
            loop {
                match session.events.recv().await {
                    Some(SessionEvent::Joined(_)) => return Ok(session),
                    Some(SessionEvent::Closed { code, .. }) => {
                        return Err(format!("{tag} {i} closed: {code:?}"))
                    }
                    Some(_) => {}
                    None => return Err(format!("{tag} {i}: the session ended")),
                }
            }
        }
    };
    let both = async {
        let (a, b) = tokio::join!(player(0), player(1));
        Ok::<_, String>(vec![a?, b?])
    };
    let sessions = tokio::time::timeout(WAIT, both)
        .await
        .unwrap_or_else(|_| panic!("{tag}: no duel within {WAIT:?}"))
        .unwrap_or_else(|e| panic!("{tag}: {e}"));
    (sessions, started.elapsed())
}

/// Reads `session`'s events until `until`: how many snapshots arrived, failing on any close
/// or reconnect (an established player must not notice the flood).
async fn watch(mut session: Session, until: tokio::time::Instant) -> Result<u64, String> {
    let mut snapshots = 0;
    loop {
        match tokio::time::timeout_at(until, session.events.recv()).await {
            Err(_) => return Ok(snapshots),
            Ok(Some(SessionEvent::Snapshot { .. })) => snapshots += 1,
            Ok(Some(e @ (SessionEvent::Closed { .. } | SessionEvent::Reconnected(_)))) => {
                return Err(format!("an established player saw {e:?}"))
            }
            Ok(Some(_)) => {}
            Ok(None) => return Err("an established session ended".into()),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_sockets_and_quic_initials_do_not_stop_a_new_player() {
    let dir = TempDir::new("flood");
    let server = start_tickroom(
        dir.path(),
        "all-in-one",
        &[
            "--ws",
            "127.0.0.1:0",
            "--quic",
            "127.0.0.1:0",
            "--max-connections",
            MAX_CONNECTIONS,
        ],
        &[],
    )
    .await;
    let http = server.http();
    let ws: SocketAddr = server.ready["ws"].as_str().unwrap().parse().unwrap();
    let quic: SocketAddr = server.ready["quic"].as_str().unwrap().parse().unwrap();

    let (established, _) = duel(
        &http,
        "established",
        [TransportKind::Quic, TransportKind::Ws],
    )
    .await;
    let initials = capture_initials(QUIC_INITIALS).await;

    // The flood: idle TCP first (connects completed), then every Initial.
    let flood_started = Instant::now();
    let tcp: Vec<_> = (0..usize::from(ADDRESSES) * TCP_PER_ADDRESS)
        .map(|i| tokio::spawn(idle_tcp(attacker(2, i), ws)))
        .collect();
    let mut held = Vec::new();
    for t in tcp {
        held.extend(t.await.unwrap());
    }
    let _udp = flood_initials(&initials, quic).await;
    let flood_took = flood_started.elapsed();

    // Established players keep playing while new ones come in.
    let until = tokio::time::Instant::now() + JOIN_LIMIT + Duration::from_secs(1);
    let watchers: Vec<_> = established
        .into_iter()
        .map(|s| tokio::spawn(watch(s, until)))
        .collect();
    let (newcomers, took) = duel(&http, "newcomer", [TransportKind::Ws, TransportKind::Quic]).await;
    for w in watchers {
        let snapshots = w.await.unwrap().unwrap_or_else(|e| panic!("{e}"));
        assert!(
            snapshots > 0,
            "an established player got no snapshot during the flood"
        );
    }
    assert!(
        took <= JOIN_LIMIT,
        "two new players took {took:?} to log in, match and join during the flood (limit {JOIN_LIMIT:?})"
    );

    let text = server.metrics_text().await;
    let value = |name: &str| metric(&text, name);
    println!(
        "flood: {} idle TCP connections opened ({} still held by us), {} QUIC Initials, sent in {flood_took:?}; \
         two new players seated in {took:?}; refused by the per-IP cap {}, QUIC retries {}, pre-login evictions {}",
        usize::from(ADDRESSES) * TCP_PER_ADDRESS,
        held.len(),
        initials.len(),
        value("tickroom_refused_connections_total"),
        value("tickroom_quic_retries_total"),
        value("tickroom_prelogin_evictions_total"),
    );
    drop(newcomers);
}
