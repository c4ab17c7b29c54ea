//! Hostile peers against the real binary: a 1 GiB length header on QUIC and a 100 MiB
//! WebSocket frame close the connection with < 1 MiB memory growth; QUIC 0-RTT is refused.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use tickroom_protocol::{protocol_hash, ClientMsg, ServerMsg, ALPN, PROTOCOL_VERSION};

mod common;

use common::{start_all_in_one, Proc, TempDir, WAIT};

/// What a hostile peer may cost the server in resident memory, in bytes.
const MAX_GROWTH_BYTES: i64 = 1024 * 1024;
/// Payload the attacker streams after its oversize header (would be buffered if accepted).
const ATTACK_PAYLOAD_BYTES: usize = 4 * 1024 * 1024;

/// The all-in-one binary on port 0 and its temp dir (both cleaned up on drop).
struct Server {
    proc: Proc,
    _dir: TempDir,
}

impl std::ops::Deref for Server {
    type Target = Proc;
    fn deref(&self) -> &Proc {
        &self.proc
    }
}

async fn start() -> Server {
    let dir = TempDir::new("hostile");
    Server {
        proc: start_all_in_one(&dir).await,
        _dir: dir,
    }
}

fn rss_bytes(pid: u32) -> i64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kb: i64 = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .unwrap()
        .parse()
        .unwrap();
    kb * 1024
}

/// Fails when the server's RSS grew by `MAX_GROWTH_BYTES` or more since `before`; round 0 is
/// a warm-up whose one-time allocations are not counted.
fn assert_growth_bounded(pid: u32, before: i64, round: u32) {
    let growth = rss_bytes(pid) - before;
    if round > 0 {
        assert!(
            growth < MAX_GROWTH_BYTES,
            "round {round}: RSS grew by {growth} bytes"
        );
    }
}

fn addr(server: &Server, key: &str) -> SocketAddr {
    server.ready[key].as_str().unwrap().parse().unwrap()
}

/// Accepts any certificate: these tests are about the server's behaviour, not pinning.
#[derive(Debug)]
struct AnyCert(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for AnyCert {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        m: &[u8],
        c: &CertificateDer<'_>,
        d: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(m, c, d, &self.0.signature_verification_algorithms)
    }
    fn verify_tls13_signature(
        &self,
        m: &[u8],
        c: &CertificateDer<'_>,
        d: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(m, c, d, &self.0.signature_verification_algorithms)
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

fn quic_client(early_data: bool) -> quinn::Endpoint {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut tls = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AnyCert(provider)))
        .with_no_client_auth();
    tls.alpn_protocols = vec![ALPN.to_vec()];
    tls.enable_early_data = early_data;
    let crypto = quinn::crypto::rustls::QuicClientConfig::try_from(tls).unwrap();
    let mut endpoint = quinn::Endpoint::client("127.0.0.1:0".parse().unwrap()).unwrap();
    endpoint.set_default_client_config(quinn::ClientConfig::new(Arc::new(crypto)));
    endpoint
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gigabyte_quic_length_header_closes_without_memory_growth() {
    let server = start().await;
    let pid = server.child.id();
    let endpoint = quic_client(false);
    let quic = addr(&server, "quic");
    // Warm up once so the first connection's one-time allocations are not counted.
    for round in 0..4u32 {
        let before = rss_bytes(pid);
        let conn = endpoint.connect(quic, "localhost").unwrap().await.unwrap();
        let (mut send, mut recv) = conn.open_bi().await.unwrap();
        send.write_all(&(1u32 << 30).to_le_bytes()).await.unwrap();
        let chunk = vec![0xAB; 64 * 1024];
        for _ in 0..ATTACK_PAYLOAD_BYTES / chunk.len() {
            if send.write_all(&chunk).await.is_err() {
                break;
            }
        }
        // The server answers with Error{MessageTooLarge} and closes.
        let closed = tokio::time::timeout(WAIT, async {
            let mut buf = vec![0; 4096];
            while let Ok(Some(_)) = recv.read(&mut buf).await {}
            conn.closed().await
        })
        .await
        .expect("the server closes the connection");
        assert!(
            matches!(closed, quinn::ConnectionError::ApplicationClosed(_)),
            "{closed:?}"
        );
        assert_growth_bounded(pid, before, round);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hundred_megabyte_websocket_frame_closes_without_memory_growth() {
    let server = start().await;
    let pid = server.child.id();
    let ws = addr(&server, "ws");
    for round in 0..4u32 {
        let before = rss_bytes(pid);
        let mut tcp = TcpStream::connect(ws).unwrap();
        tcp.set_read_timeout(Some(WAIT)).unwrap();
        write!(
            tcp,
            "GET / HTTP/1.1\r\nHost: {ws}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        )
        .unwrap();
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            tcp.read_exact(&mut byte).unwrap();
            head.push(byte[0]);
        }
        assert!(
            head.starts_with(b"HTTP/1.1 101"),
            "{}",
            String::from_utf8_lossy(&head)
        );
        // A masked binary frame announcing 100 MiB, then part of it.
        let mut frame = vec![0x82, 0x80 | 127];
        frame.extend_from_slice(&(100u64 * 1024 * 1024).to_be_bytes());
        frame.extend_from_slice(&[1, 2, 3, 4]);
        let _ = tcp.write_all(&frame);
        let chunk = vec![0x5A; 64 * 1024];
        for _ in 0..ATTACK_PAYLOAD_BYTES / chunk.len() {
            if tcp.write_all(&chunk).is_err() {
                break;
            }
        }
        // The server closes: reads end (EOF or reset) within the deadline.
        let mut sink = [0u8; 4096];
        loop {
            match tcp.read(&mut sink) {
                Ok(0) => break,
                Ok(_) => continue,
                Err(e) => {
                    let timed_out = matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    );
                    assert!(!timed_out, "the server did not close the connection");
                    break;
                }
            }
        }
        assert_growth_bounded(pid, before, round);
    }
}

/// The server never accepts 0-RTT data (it could be replayed): a client holding a session
/// ticket from an earlier connection still cannot send early data.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quic_zero_rtt_is_refused() {
    let server = start().await;
    let quic = addr(&server, "quic");
    let endpoint = quic_client(true);
    // A full handshake and a round trip, so the server's session tickets have arrived.
    let conn = endpoint.connect(quic, "localhost").unwrap().await.unwrap();
    let (mut send, mut recv) = conn.open_bi().await.unwrap();
    let mut buf = Vec::new();
    tickroom_protocol::codec::frame_client(
        &ClientMsg::Hello {
            protocol_version: PROTOCOL_VERSION,
            protocol_hash: protocol_hash(),
            ticket: "x".into(),
        },
        &mut buf,
    )
    .unwrap();
    send.write_all(&buf).await.unwrap();
    let mut dec = tickroom_protocol::FrameDecoder::new(1 << 20);
    let mut chunk = vec![0; 4096];
    let reply = tokio::time::timeout(WAIT, async {
        loop {
            if let Some(f) = dec.next_frame().unwrap() {
                return tickroom_protocol::codec::decode_server(f).unwrap();
            }
            let n = recv.read(&mut chunk).await.unwrap().unwrap();
            dec.push(&chunk[..n]);
        }
    })
    .await
    .unwrap();
    assert!(
        matches!(reply, ServerMsg::Error { .. }),
        "a bad ticket is refused: {reply:?}"
    );
    conn.close(0u32.into(), b"");
    // Second connection: the client tries 0-RTT and must be refused.
    let connecting = endpoint.connect(quic, "localhost").unwrap();
    match connecting.into_0rtt() {
        Ok((conn, accepted)) => {
            assert!(!accepted.await, "the server accepted 0-RTT data");
            drop(conn);
        }
        Err(connecting) => {
            // No 0-RTT possible at all: the handshake still completes normally.
            connecting.await.unwrap();
        }
    }
}
