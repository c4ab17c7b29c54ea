//! A minimal game client: log in with a device id, queue for a mode, join the room over QUIC
//! (or WebSocket with `ws` as the third argument), send random-walk inputs for a few seconds,
//! print what arrives, and leave.
//!
//! `cargo run --example client -p tickroom-protocol --features tokio -- http://127.0.0.1:7700 arena [ws|quic] [device-id]`
//!
//! A device id carries at least 128 random bits (32 hex digits or 22 base64url characters);
//! without one the example makes a fresh one.

use std::time::Duration;

use tickroom_protocol::api::check_device_id;
use tickroom_protocol::connect::{self, GatewayClient, TransportKind};
use tickroom_protocol::session::{SessionConfig, SessionEvent};
use tickroom_protocol::SyncKind;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let gateway = args
        .next()
        .unwrap_or_else(|| "http://127.0.0.1:7700".into());
    let mode = args.next().unwrap_or_else(|| "arena".into());
    let transport = match args.next().as_deref() {
        Some("ws") => TransportKind::Ws,
        _ => TransportKind::Quic,
    };
    let device = args.next().unwrap_or_else(fresh_device_id);
    check_device_id(&device)?;

    // 1. Login + matchmaking over HTTP: the match result names the room server and carries a
    //    signed single-use join ticket and the certificate fingerprint to pin.
    let gw = GatewayClient::new(&gateway);
    let found = gw
        .find_match(&device, &mode, Duration::from_secs(30))
        .await?;
    println!("matched into room {} on {}", found.room_id, found.server_id);

    // 2. Join: the session runs on a task; we get events and a handle to send inputs.
    let mut session = connect::join(&found, transport, SessionConfig::default(), None).await?;
    let end = tokio::time::Instant::now() + Duration::from_secs(5);
    let mut sync = SyncKind::State;
    let mut step = 0u8;
    loop {
        let event = tokio::select! {
            e = session.events.recv() => match e { Some(e) => e, None => break },
            _ = tokio::time::sleep_until(end) => { session.handle.leave().await; continue; }
        };
        match event {
            SessionEvent::Joined(w) => {
                sync = w.sync;
                println!(
                    "joined slot {} of {} ({:?}, {} Hz)",
                    w.slot, w.max_players, w.sync, w.tick_rate_hz
                );
            }
            SessionEvent::Snapshot {
                tick,
                ack_seq,
                payload,
                ..
            } => {
                // One input per snapshot: a 3-byte arena input (move x, move y, buttons).
                step = step.wrapping_add(1);
                session.handle.input(vec![step, 64, 0]).await;
                if tick % 30 == 0 {
                    println!(
                        "snapshot tick {tick}: {} bytes, input {ack_seq} acknowledged",
                        payload.len()
                    );
                }
            }
            SessionEvent::Frame { n, inputs } => {
                // Lockstep: answer each frame with the input for the next one.
                if sync == SyncKind::Lockstep {
                    session.handle.frame_input(n + 1, vec![1, 0, 0]).await;
                }
                if n % 20 == 0 {
                    println!("frame {n}: {} inputs", inputs.len());
                }
            }
            SessionEvent::Pong { rtt } => println!("rtt {rtt:?}"),
            SessionEvent::Closed { code } => {
                println!("closed: {code:?}");
                break;
            }
            other => println!("{other:?}"),
        }
    }
    let stats = session.task.await?;
    println!(
        "sent {} bytes, received {} bytes",
        stats.bytes_out, stats.bytes_in
    );
    Ok(())
}

/// A fresh device id: 32 hex digits from the process's random hash keys. A real client draws
/// 16 random bytes once and keeps them, so that it is the same player next time.
fn fresh_device_id() -> String {
    use std::hash::{BuildHasher, Hasher};
    let half = || {
        std::collections::hash_map::RandomState::new()
            .build_hasher()
            .finish()
    };
    format!("{:016x}{:016x}", half(), half())
}
