//! TLS on the TCP listeners: with `--tls-self-signed` players log in over HTTPS and play over
//! wss and QUIC (one certificate, pinned); a proxy that rewrites the gateway's answers can
//! swap the room server's certificate fingerprint over plain HTTP and cannot over HTTPS; an
//! impostor with another certificate is refused by a pinning client; and the bot speaks TLS.

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use tickroom_protocol::connect::{
    self, CertCheck, GatewayClient, MatchResult, RawConn, Session, TransportKind,
};
use tickroom_protocol::{SessionConfig, SessionEvent};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};

mod common;

use common::{start_tickroom, Proc, TempDir, WAIT};

/// The all-in-one binary with `extra` flags, and its temp dir.
async fn start(tag: &str, extra: &[&str]) -> (Proc, TempDir) {
    let dir = TempDir::new(tag);
    let mut args = vec!["--ws", "127.0.0.1:0", "--quic", "127.0.0.1:0"];
    args.extend(extra);
    let proc = start_tickroom(dir.path(), "all-in-one", &args, &[]).await;
    (proc, dir)
}

fn ready(server: &Proc, key: &str) -> String {
    server.ready[key]
        .as_str()
        .unwrap_or_else(|| panic!("{key} in the ready file: {}", server.ready))
        .to_string()
}

/// The pin of a `--tls-self-signed` server's certificate, from its ready file.
fn pin(server: &Proc) -> CertCheck {
    CertCheck::pinned_hex(&ready(server, "tls_fingerprint")).unwrap()
}

/// A player of `tag` matched into a duel through `gw`.
async fn matched(gw: &GatewayClient, tag: &str) -> Result<MatchResult, connect::ConnectError> {
    let device = tickroom_testkit::device_id(tag);
    tokio::time::timeout(WAIT, gw.find_match(&device, "duel", WAIT))
        .await
        .expect("matchmaking answered")
}

/// Waits for the session's `Joined`, failing on a close.
async fn joined(session: &mut Session) {
    tokio::time::timeout(WAIT, async {
        loop {
            match session.events.recv().await {
                Some(SessionEvent::Joined(_)) => return,
                Some(SessionEvent::Closed { code }) => panic!("closed before joining: {code:?}"),
                Some(_) => {}
                None => panic!("the session ended before joining"),
            }
        }
    })
    .await
    .expect("joined in time");
}

/// Players log in over HTTPS (pinning the self-signed certificate) and play one duel: one
/// over wss, one over QUIC, both checked against the same pinned certificate. Plain HTTP and
/// plain WebSocket on the TLS ports get nowhere, and a wrong pin is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn players_log_in_over_https_and_play_over_wss_and_quic() {
    let (server, _dir) = start("tls", &["--tls-self-signed"]).await;
    let https = format!("https://{}", ready(&server, "http"));
    let fingerprint = ready(&server, "tls_fingerprint");
    assert_eq!(
        fingerprint,
        ready(&server, "cert_fingerprint"),
        "one certificate for HTTPS, wss and QUIC"
    );
    let gw = GatewayClient::with_options(&https, None, Some(&pin(&server))).unwrap();
    let (a, b) = tokio::join!(matched(&gw, "tls-a"), matched(&gw, "tls-b"));
    let (a, b) = (a.unwrap(), b.unwrap());
    assert!(a.ws_tls && b.ws_tls, "the match result says wss");
    assert_eq!(a.cert_fingerprint, fingerprint);
    let mut sessions = Vec::new();
    for (m, transport) in [(&a, TransportKind::Ws), (&b, TransportKind::Quic)] {
        let mut s = connect::join(m, transport, SessionConfig::default(), None)
            .await
            .unwrap_or_else(|e| panic!("join over {transport:?}: {e}"));
        joined(&mut s).await;
        sessions.push(s);
    }

    // Plain HTTP to the HTTPS port, and plain WebSocket to the wss port: no answer.
    let plain = GatewayClient::new(&format!("http://{}", ready(&server, "http")));
    assert!(plain
        .login_device(&tickroom_testkit::device_id("plain"))
        .await
        .is_err());
    let ws = ready(&server, "ws");
    assert!(RawConn::open_ws(&ws).await.is_err(), "plain ws on wss");
    // A client pinning another certificate refuses this one.
    let wrong = CertCheck::pinned_hex(&"00".repeat(32)).unwrap();
    let gw_wrong = GatewayClient::with_options(&https, None, Some(&wrong)).unwrap();
    assert!(gw_wrong
        .login_device(&tickroom_testkit::device_id("wrong"))
        .await
        .is_err());
    let secured = RawConn::open_ws_from(&ws, None, Some(&wrong)).await;
    assert!(secured.is_err(), "wss with the wrong pin");
    for s in sessions {
        s.handle.leave().await;
    }
}

/// Copies `from` to `to`, replacing every `find` by `put` (same length) even across reads.
async fn copy_replacing(mut from: OwnedReadHalf, mut to: OwnedWriteHalf, find: &[u8], put: &[u8]) {
    let mut pending: Vec<u8> = Vec::new();
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        pending.extend_from_slice(&buf[..n]);
        let mut i = 0;
        while i + find.len() <= pending.len() {
            if &pending[i..i + find.len()] == find {
                pending[i..i + find.len()].copy_from_slice(put);
                i += find.len();
            } else {
                i += 1;
            }
        }
        // Keep only a tail that begins `find` (a match split across reads); send the rest.
        let keep = (1..find.len().min(pending.len() + 1))
            .rev()
            .find(|&k| pending.ends_with(&find[..k]))
            .unwrap_or(0);
        let ready = pending.len() - keep;
        if to.write_all(&pending[..ready]).await.is_err() {
            break;
        }
        pending.drain(..ready);
    }
    let _ = to.write_all(&pending).await;
    let _ = to.shutdown().await;
}

/// A man in the middle on the path to `upstream`: forwards everything, and rewrites `find`
/// into `put` in what the server sends. Returns the address to connect to instead.
async fn tampering_proxy(upstream: SocketAddr, find: String, put: String) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let Ok(server) = TcpStream::connect(upstream).await else {
                continue;
            };
            let (mut client_read, client_write) = client.into_split();
            let (server_read, mut server_write) = server.into_split();
            let (find, put) = (find.clone(), put.clone());
            tokio::spawn(async move {
                let up = async {
                    let _ = tokio::io::copy(&mut client_read, &mut server_write).await;
                    let _ = server_write.shutdown().await;
                };
                let down =
                    copy_replacing(server_read, client_write, find.as_bytes(), put.as_bytes());
                tokio::join!(up, down);
            });
        }
    });
    addr
}

/// Over plain HTTP a man in the middle swaps the room server's certificate fingerprint in the
/// match result (a client would then pin the attacker's certificate for QUIC and wss); over
/// HTTPS the same proxy sees only ciphertext and the client gets the real fingerprint; and a
/// man in the middle that ends TLS itself (here: another server, with its own certificate) is
/// refused by the pinning client.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tampering_proxy_swaps_the_fingerprint_over_http_and_cannot_over_https() {
    let attacker_fp = "0a".repeat(32);
    // Plain: the attack works.
    let (plain, _d1) = start("mitm-plain", &[]).await;
    let real = ready(&plain, "cert_fingerprint");
    let via = tampering_proxy(
        ready(&plain, "http").parse().unwrap(),
        real.clone(),
        attacker_fp.clone(),
    )
    .await;
    let gw = GatewayClient::new(&format!("http://{via}"));
    let (a, b) = tokio::join!(matched(&gw, "mitm-a"), matched(&gw, "mitm-b"));
    let swapped = a.unwrap().cert_fingerprint;
    drop(b);
    assert_eq!(
        swapped, attacker_fp,
        "over plain HTTP the proxy rewrote the pin"
    );

    // TLS: the same proxy cannot.
    let (tls, _d2) = start("mitm-tls", &["--tls-self-signed"]).await;
    let real = ready(&tls, "cert_fingerprint");
    let via = tampering_proxy(
        ready(&tls, "http").parse().unwrap(),
        real.clone(),
        attacker_fp.clone(),
    )
    .await;
    let gw =
        GatewayClient::with_options(&format!("https://{via}"), None, Some(&pin(&tls))).unwrap();
    let (a, b) = tokio::join!(matched(&gw, "mitm-c"), matched(&gw, "mitm-d"));
    let (a, b) = (a.unwrap(), b.unwrap());
    assert_eq!(
        a.cert_fingerprint, real,
        "over HTTPS the pin arrived intact"
    );
    assert_eq!(b.cert_fingerprint, real);

    // An impostor with its own certificate, in the gateway's place: refused.
    let (impostor, _d3) = start("mitm-impostor", &["--tls-self-signed"]).await;
    let fooled = GatewayClient::with_options(
        &format!("https://{}", ready(&impostor, "http")),
        None,
        Some(&pin(&tls)),
    )
    .unwrap();
    assert!(fooled
        .login_device(&tickroom_testkit::device_id("fooled"))
        .await
        .is_err());
}

/// The bot speaks TLS: two `tickroom-bot play` runs with `--tls-pin` fill a duel over wss
/// and QUIC against a `--tls-self-signed` server.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_bot_plays_over_tls_with_a_pinned_certificate() {
    let (server, _dir) = start("tls-bot", &["--tls-self-signed"]).await;
    let bot = Path::new(env!("CARGO_BIN_EXE_tickroom")).with_file_name("tickroom-bot");
    assert!(
        bot.exists(),
        "build the workspace first (cargo build --workspace --bins): {}",
        bot.display()
    );
    let https = format!("https://{}", ready(&server, "http"));
    let fingerprint = ready(&server, "tls_fingerprint");
    let plays: Vec<_> = ["ws", "quic"]
        .iter()
        .map(|transport| {
            Command::new(&bot)
                .args([
                    "play",
                    "--server",
                    &https,
                    "--mode",
                    "duel",
                    "--duration",
                    "1s",
                ])
                .args(["--transport", transport, "--tls-pin", &fingerprint])
                .stdout(Stdio::piped())
                .stderr(Stdio::null())
                .spawn()
                .expect("start tickroom-bot play")
        })
        .collect();
    for child in plays {
        let out = tickroom_testkit::wait_output(child, WAIT + Duration::from_secs(10), "play");
        let text = String::from_utf8_lossy(&out.stdout);
        assert_eq!(out.status.code(), Some(0), "play over TLS: {text}");
        assert!(text.contains("joined room"), "{text}");
    }
}
