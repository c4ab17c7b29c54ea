//! Nothing leaks: many connect/disconnect cycles over both transports — cut before the
//! handshake, mid-handshake, after a full join, and mid-resume — and the process's open file
//! descriptors and the server's session table return to their baseline.
//!
//! CI runs `DEFAULT_CYCLES`; the full count:
//! `TICKROOM_LEAK_CYCLES=20000 cargo test --release --test leaks -- --nocapture`.

mod common;

use std::time::Duration;

use common::{next_matching, within, TestServer};
use tickroom::protocol::connect::TransportKind;
use tickroom::protocol::session::SessionEvent;
use tickroom::protocol::{protocol_hash, token, ClientMsg, ServerMsg, PROTOCOL_VERSION};

/// Cycles in CI (each of the four kinds, both transports, in turn).
const DEFAULT_CYCLES: usize = 400;

/// Open file descriptors of this process (client and server live in it).
fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").map_or(0, |d| d.count())
}

fn cycles() -> usize {
    std::env::var("TICKROOM_LEAK_CYCLES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(DEFAULT_CYCLES)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_cut_anywhere_leave_no_descriptor_or_session_behind() {
    let server = TestServer::quick().await;
    let sessions = &server.server().shared.sessions;
    // Warm up once per transport so lazily created state (the QUIC client config, caches)
    // is part of the baseline.
    for (i, transport) in [TransportKind::Ws, TransportKind::Quic]
        .into_iter()
        .enumerate()
    {
        let mut s = server.join(transport, 1, 1 + i as u64, "arena").await;
        next_matching(&mut s, "joined", |e| {
            matches!(e, SessionEvent::Joined(_)).then_some(())
        })
        .await;
        s.handle.leave().await;
        let _ = s.task.await;
    }
    let mut poll = tokio::time::interval(Duration::from_millis(20));
    within("the warm-up sessions to end", async {
        while !sessions.is_empty() {
            poll.tick().await;
        }
    })
    .await;
    let baseline = open_fds();
    let n = cycles();
    let started = std::time::Instant::now();
    for i in 0..n {
        let transport = if i % 2 == 0 {
            TransportKind::Ws
        } else {
            TransportKind::Quic
        };
        let player = 1_000 + i as u64;
        let room = 10_000 + i as u64 / 8;
        match (i / 2) % 4 {
            // Connect and go away without a word.
            0 => drop(server.raw(transport).await),
            // Cut mid-handshake: after the challenge, before answering it.
            1 => {
                let mut conn = server.raw(transport).await;
                let (ticket, _) = server.ticket(player, room, "arena");
                conn.send(&ClientMsg::Hello {
                    protocol_version: PROTOCOL_VERSION,
                    protocol_hash: protocol_hash(),
                    ticket,
                })
                .await
                .unwrap();
                let challenge = within("the challenge", conn.recv()).await;
                assert!(matches!(challenge, Ok(Some(ServerMsg::Challenge { .. }))));
            }
            // A whole join, then leave.
            2 => {
                let mut s = server.join(transport, player, room, "arena").await;
                next_matching(&mut s, "joined", |e| {
                    matches!(e, SessionEvent::Joined(_)).then_some(())
                })
                .await;
                s.handle.leave().await;
                let _ = s.task.await;
            }
            // Joined, connection lost, then a resume cut after its challenge: the session
            // sits in grace and must expire (1 s in these modes).
            _ => {
                let mut s = server.join(transport, player, room, "arena").await;
                let w = next_matching(&mut s, "joined", |e| match e {
                    SessionEvent::Joined(w) => Some(w.clone()),
                    _ => None,
                })
                .await;
                s.task.abort();
                drop(s);
                let mut conn = server.raw(transport).await;
                conn.send(&ClientMsg::Resume {
                    protocol_version: PROTOCOL_VERSION,
                    protocol_hash: protocol_hash(),
                    session_id: w.session_id,
                    last_frame: 0,
                })
                .await
                .unwrap();
                if let Ok(Some(ServerMsg::Challenge { nonce })) =
                    within("the resume challenge", conn.recv()).await
                {
                    // Prove nothing: the MAC is computed, never sent.
                    let key = token::resume_key(&[0; 32], w.session_id, w.resume_counter);
                    let _ = token::challenge_mac(&key, &nonce);
                }
            }
        }
    }
    let took = started.elapsed();
    // Everything closes within the handshake timeout, the linger and the grace period.
    let fds = within("descriptors back to the baseline", async {
        loop {
            let fds = open_fds();
            if fds <= baseline && sessions.is_empty() {
                return fds;
            }
            poll.tick().await;
        }
    })
    .await;
    println!(
        "{n} connect/disconnect cycles in {:.1} s: descriptors {baseline} → {fds}, sessions 0",
        took.as_secs_f64()
    );
}
