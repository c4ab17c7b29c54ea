//! Hostile peers against the real binary: a 1 GiB length header on QUIC and a 100 MiB
//! WebSocket frame close the connection with < 1 MiB memory growth; QUIC 0-RTT is refused;
//! slowloris sockets on the HTTP listener are cut within the header timeout and its
//! connection cap holds, while players log in and the metrics listener answers.

use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use tickroom_protocol::connect::GatewayClient;
use tickroom_protocol::{protocol_hash, ClientMsg, ServerMsg, PROTOCOL_VERSION};

mod common;

use common::{metric, quic_client, start_all_in_one, Proc, TempDir, WAIT};

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

/// Header-read timeout the slowloris tests give the server, in ms (short, so tests stay short).
const HTTP_HEADER_TIMEOUT_MS: u64 = 1_000;
/// Beyond the header timeout, how late a cut may come on a loaded 2-core machine (debug build).
const CUT_SLACK: Duration = Duration::from_secs(3);
/// How often a slowloris socket sends its next byte.
const DRIP_INTERVAL: Duration = Duration::from_millis(50);
/// How long one real login may take while the attack runs.
const LOGIN_LIMIT: Duration = Duration::from_secs(2);
/// Descriptors the server may open beyond its HTTP connections (a scrape, a log rotation).
const FD_SLACK: usize = 4;

/// How a slowloris socket behaves once connected.
#[derive(Debug, Clone, Copy)]
enum Slowloris {
    /// Connects and sends nothing.
    Silent,
    /// Sends a request line that never ends, one byte at a time.
    RequestLineByteByByte,
    /// Sends a whole request line, then headers that never end, one byte at a time.
    HeadersByteByByte,
    /// Sends whole headers announcing a body, then nothing.
    SilentBody,
}

impl Slowloris {
    const ALL: [Slowloris; 4] = [
        Slowloris::Silent,
        Slowloris::RequestLineByteByByte,
        Slowloris::HeadersByteByByte,
        Slowloris::SilentBody,
    ];

    /// What it sends at once.
    fn burst(self) -> &'static [u8] {
        match self {
            Slowloris::Silent | Slowloris::RequestLineByteByByte => b"",
            Slowloris::HeadersByteByByte => b"POST /v1/auth/device HTTP/1.1\r\nHost: tickroom\r\n",
            Slowloris::SilentBody => {
                b"POST /v1/auth/device HTTP/1.1\r\nHost: tickroom\r\n\
                  Content-Type: application/json\r\nContent-Length: 64\r\n\r\n"
            }
        }
    }

    /// The bytes it then sends one at a time, without end (none for the silent kinds).
    fn drip(self) -> Box<dyn Iterator<Item = u8> + Send> {
        match self {
            Slowloris::Silent | Slowloris::SilentBody => Box::new(std::iter::empty()),
            Slowloris::RequestLineByteByByte => Box::new(
                b"GET /healthz?"
                    .iter()
                    .copied()
                    .chain(std::iter::repeat(b'a')),
            ),
            Slowloris::HeadersByteByByte => Box::new(b"X-Slow: a\r\n".iter().copied().cycle()),
        }
    }
}

/// Opens one slowloris socket from `from` to `to` and plays `kind` until the server closes it
/// or `give_up` passes; returns how long the server let it live (None: it never cut it).
async fn slowloris(
    from: IpAddr,
    to: SocketAddr,
    kind: Slowloris,
    give_up: Instant,
) -> Option<Duration> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind(SocketAddr::new(from, 0)).unwrap();
    let mut stream = socket.connect(to).await.unwrap();
    let opened = Instant::now();
    let _ = stream.write_all(kind.burst()).await;
    let mut drip = kind.drip();
    let mut every = tokio::time::interval(DRIP_INTERVAL);
    let mut buf = [0u8; 512];
    let until_cut = async {
        loop {
            tokio::select! {
                read = stream.read(&mut buf) => match read {
                    Ok(0) | Err(_) => return opened.elapsed(),
                    // A 408 (or any answer) before the close: keep reading until the close.
                    Ok(_) => continue,
                },
                _ = every.tick() => {
                    if let Some(byte) = drip.next() {
                        if stream.write_all(&[byte]).await.is_err() {
                            return opened.elapsed();
                        }
                    }
                }
            }
        }
    };
    tokio::time::timeout_at(give_up.into(), until_cut)
        .await
        .ok()
}

/// Starts the all-in-one server with short HTTP limits `extra`.
async fn start_with(tag: &str, extra: &[&str]) -> Server {
    let dir = TempDir::new(tag);
    let timeout = HTTP_HEADER_TIMEOUT_MS.to_string();
    let mut args = vec!["--ws", "127.0.0.1:0", "--quic", "127.0.0.1:0"];
    args.extend(["--http-header-timeout-ms", &timeout]);
    args.extend(extra);
    Server {
        proc: common::start_tickroom(dir.path(), "all-in-one", &args, &[]).await,
        _dir: dir,
    }
}

/// Logs a new player in over a fresh connection (a new player has no pooled connection).
async fn login(http: &str, n: u64) -> Result<(), String> {
    let gw = GatewayClient::new(http);
    let device = format!("{:016x}{n:016x}", std::process::id());
    match tokio::time::timeout(LOGIN_LIMIT, gw.login_device(&device)).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => Err(format!("login {n} failed: {e}")),
        Err(_) => Err(format!("login {n} took over {LOGIN_LIMIT:?}")),
    }
}

/// Logs players in one after another until `done` turns true; returns how many succeeded,
/// failing at the first login that errs or is slow.
async fn logins_until(
    http: String,
    done: tokio::sync::watch::Receiver<bool>,
) -> Result<u64, String> {
    let mut n = 0;
    let mut every = tokio::time::interval(Duration::from_millis(100));
    while !*done.borrow() {
        every.tick().await;
        login(&http, n).await?;
        n += 1;
    }
    Ok(n)
}

/// Open descriptors of process `pid` (Linux).
fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .count()
}

/// Slowloris on the gateway's HTTP listener: sockets that send nothing, a request line byte by
/// byte, headers byte by byte, or headers and then no body are all cut within the header-read
/// timeout (the ones past the per-IP cap at once), while real players log in throughout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slowloris_sockets_are_cut_within_the_header_timeout_while_logins_go_on() {
    const PER_IP: usize = 16;
    let per_ip = PER_IP.to_string();
    let server = start_with("slowloris", &["--http-max-connections-per-ip", &per_ip]).await;
    let http_addr = addr(&server, "http");
    let give_up = Instant::now() + Duration::from_millis(HTTP_HEADER_TIMEOUT_MS) + CUT_SLACK + WAIT;
    let (done_tx, done_rx) = tokio::sync::watch::channel(false);
    let logins = tokio::spawn(logins_until(server.http(), done_rx));
    let mut attackers = Vec::new();
    // Every kind from one address, within its per-IP budget...
    for i in 0..12 {
        let kind = Slowloris::ALL[i % Slowloris::ALL.len()];
        let from = IpAddr::from([127, 0, 0, 2]);
        attackers.push((
            kind,
            tokio::spawn(slowloris(from, http_addr, kind, give_up)),
        ));
    }
    // ...and three times the per-IP budget of silent sockets from another.
    for _ in 0..3 * PER_IP {
        let from = IpAddr::from([127, 0, 0, 3]);
        let kind = Slowloris::Silent;
        attackers.push((
            kind,
            tokio::spawn(slowloris(from, http_addr, kind, give_up)),
        ));
    }
    let limit = Duration::from_millis(HTTP_HEADER_TIMEOUT_MS) + CUT_SLACK;
    let mut late = Vec::new();
    let mut longest = Duration::ZERO;
    for (kind, a) in attackers {
        match a.await.unwrap() {
            Some(lived) if lived <= limit => longest = longest.max(lived),
            lived => late.push(format!("{kind:?} lived {lived:?}")),
        }
    }
    let _ = done_tx.send(true);
    let logged_in = logins.await.unwrap().unwrap_or_else(|e| panic!("{e}"));
    assert!(
        late.is_empty(),
        "slowloris sockets not cut within {limit:?}: {late:?}"
    );
    assert!(logged_in >= 1, "no login went through during the attack");
    // The server is still there for a new player.
    login(&server.http(), u64::MAX).await.unwrap();
    // The cuts are counted: those within the per-IP share timed out, the rest were refused.
    let text = server.metrics_text().await;
    let timeouts = metric(&text, "tickroom_http_header_timeouts_total");
    let refused = metric(&text, "tickroom_http_refused_connections_total");
    assert!(timeouts >= PER_IP as f64, "{text}");
    assert!(refused >= (2 * PER_IP) as f64, "{text}");
    println!(
        "slowloris: longest-lived socket {longest:?} (timeout {HTTP_HEADER_TIMEOUT_MS} ms), \
         {timeouts} header timeouts, {refused} refused by the per-IP cap, {logged_in} logins meanwhile"
    );
}

/// Idle sockets from six addresses, three times the HTTP connection cap: the server never
/// holds more than the cap (its descriptors prove it), its metrics listener answers
/// meanwhile, every idle socket is cut, and players log in again once the flood is cut.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_connection_cap_holds_under_a_flood_of_idle_sockets() {
    const CAP: usize = 24;
    const PER_IP: usize = 8;
    const ADDRESSES: u8 = 6;
    const FLOOD: usize = 3 * CAP;
    let (cap, per_ip) = (CAP.to_string(), PER_IP.to_string());
    let server = start_with(
        "http-cap",
        &[
            "--http-max-connections",
            &cap,
            "--http-max-connections-per-ip",
            &per_ip,
        ],
    )
    .await;
    let pid = server.child.id();
    let http_addr = addr(&server, "http");
    let metrics = format!(
        "http://{}/metrics",
        server.ready["metrics"].as_str().unwrap()
    );
    let baseline = open_fds(pid);
    let give_up = Instant::now() + WAIT;
    let mut flood = tokio::task::JoinSet::new();
    for i in 0..FLOOD {
        let from = IpAddr::from([127, 0, 0, 2 + (i % usize::from(ADDRESSES)) as u8]);
        flood.spawn(slowloris(from, http_addr, Slowloris::Silent, give_up));
    }
    let scrape = reqwest::Client::new();
    let mut most = 0;
    let mut scrapes = 0;
    let mut poll = tokio::time::interval(Duration::from_millis(20));
    let mut cut = 0;
    while cut < FLOOD {
        tokio::select! {
            joined = flood.join_next() => {
                let lived = joined.unwrap().unwrap();
                assert!(lived.is_some(), "an idle socket was never cut");
                cut += 1;
            }
            _ = poll.tick() => {
                let held = open_fds(pid).saturating_sub(baseline);
                most = most.max(held);
                assert!(held <= CAP + FD_SLACK, "the server holds {held} more descriptors (cap {CAP})");
                // The metrics listener is not behind the full HTTP listener.
                if scrapes < 5 {
                    let text = tokio::time::timeout(LOGIN_LIMIT, async {
                        scrape.get(&metrics).send().await?.text().await
                    })
                    .await
                    .expect("a scrape during the flood answers")
                    .unwrap();
                    assert!(text.contains("tickroom_http_connections "), "{text}");
                    scrapes += 1;
                }
            }
        }
    }
    assert!(
        most >= CAP / 2,
        "the flood reached the server ({most} descriptors)"
    );
    login(&server.http(), 0).await.unwrap();
    println!("cap {CAP}: at most {most} descriptors above the baseline during a flood of {FLOOD}");
}
