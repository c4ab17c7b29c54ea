//! Helpers for tests that run the real `tickroom` binary: a child process killed (by its own
//! handle) when dropped, a temp dir removed when dropped, and polling with a deadline.
#![allow(dead_code)]

use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use serde_json::Value;
use tickroom_protocol::ALPN;

/// Longest any single wait in these tests may take.
pub const WAIT: Duration = Duration::from_secs(20);

pub use tickroom_testkit::TempDir;

/// A child process, killed by its own handle when dropped; `ready` is its ready-file JSON.
pub struct Proc {
    pub child: Child,
    pub ready: Value,
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Proc {
    /// `http://` + the bound HTTP address.
    pub fn http(&self) -> String {
        format!("http://{}", self.ready["http"].as_str().unwrap())
    }

    /// The metrics listener's `/metrics` URL.
    pub fn metrics_url(&self) -> String {
        format!("http://{}/metrics", self.ready["metrics"].as_str().unwrap())
    }

    /// What `/metrics` answers now.
    pub async fn metrics_text(&self) -> String {
        reqwest::get(self.metrics_url())
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }
}

/// A counter or gauge of a process's /metrics, summed over its labels (0 when absent or
/// unreadable).
pub async fn scraped(p: &Proc, name: &str) -> f64 {
    let Ok(resp) = reqwest::get(p.metrics_url()).await else {
        return 0.0;
    };
    let text = resp.text().await.unwrap_or_default();
    text.lines()
        .filter_map(|l| {
            let rest = l.strip_prefix(name)?;
            let rest = rest.strip_prefix("_total").unwrap_or(rest);
            let value = match rest.strip_prefix('{') {
                Some(labelled) => labelled.split_once("} ")?.1,
                None => rest.strip_prefix(' ')?,
            };
            value.trim().parse::<f64>().ok()
        })
        .sum()
}

/// Polls `ready` every 20 ms until it holds, failing after `WAIT`.
pub async fn wait_for(what: &str, mut ready: impl FnMut() -> bool) {
    let deadline = Instant::now() + WAIT;
    let mut poll = tokio::time::interval(Duration::from_millis(20));
    while !ready() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        poll.tick().await;
    }
}

/// Starts `tickroom ARGS --http 127.0.0.1:0 --metrics 127.0.0.1:0 --ready-file DIR/NAME.json`
/// with `env`, and waits for its ready file. Admission control's tick budget is raised: debug
/// builds on a loaded CI machine have slow ticks, and refusing rooms there would only make the
/// tests flaky.
pub async fn start_tickroom(dir: &Path, name: &str, args: &[&str], env: &[(&str, &str)]) -> Proc {
    let ready_file = dir.join(format!("{name}.json"));
    let child = Command::new(tickroom_bin())
        .args(args)
        .args([
            "--http",
            "127.0.0.1:0",
            "--metrics",
            "127.0.0.1:0",
            "--max-tick-p99-ms",
            "1000",
            "--ready-file",
        ])
        .arg(&ready_file)
        .env("RUST_LOG", "warn")
        .envs(env.iter().copied())
        .stdout(Stdio::null())
        .spawn()
        .expect("start the tickroom binary");
    wait_for(name, || ready_file.exists()).await;
    let text = std::fs::read_to_string(&ready_file).unwrap();
    let ready = serde_json::from_str(&text).expect("the ready file is JSON");
    Proc { child, ready }
}

/// The binary under test: this build's `tickroom`, or `TICKROOM_TEST_BIN` when set (to show
/// that an attack test fails on an older build: see the hostile tests).
pub fn tickroom_bin() -> std::path::PathBuf {
    std::env::var_os("TICKROOM_TEST_BIN")
        .map_or_else(|| env!("CARGO_BIN_EXE_tickroom").into(), Into::into)
}

/// Starts the all-in-one server on port 0 everywhere.
pub async fn start_all_in_one(dir: &TempDir) -> Proc {
    start_tickroom(
        dir.path(),
        "all-in-one",
        &["--ws", "127.0.0.1:0", "--quic", "127.0.0.1:0"],
        &[],
    )
    .await
}

/// Accepts any certificate: these tests are about the server's behaviour, not pinning.
#[derive(Debug)]
pub struct AnyCert(pub Arc<rustls::crypto::CryptoProvider>);

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

pub fn quic_client(early_data: bool) -> quinn::Endpoint {
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

/// The key ring the multi-process tests share (gateways get it; room servers its room keys).
pub const KEYS: &str = "1:5f9c3a7e21d04b8c96e0f1a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6";

/// A free loopback TCP port (bound, read back, released).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `tickroom room` with id `id` on the directory at `url` (`redis://` or `redis+sentinel://`),
/// its listeners on port 0, the room keys of `KEYS`, and `extra` flags (`--redis-prefix`, ...).
pub async fn start_room_server(dir: &Path, id: &str, url: &str, extra: &[&str]) -> Proc {
    let mut args = vec![
        "room",
        "--redis",
        url,
        "--server-id",
        id,
        "--ws",
        "127.0.0.1:0",
        "--quic",
        "127.0.0.1:0",
    ];
    args.extend_from_slice(extra);
    start_tickroom(dir, id, &args, &[("TICKROOM_ROOM_KEYS", room_keys())]).await
}

/// The bot swarm, `tickroom-bot swarm ARGS --no-progress --max-errors 0 --report REPORT`
/// (this build's, beside `tickroom`), its output dropped.
pub fn start_swarm(args: &[&str], report: &Path) -> Proc {
    let bot = Path::new(env!("CARGO_BIN_EXE_tickroom")).with_file_name("tickroom-bot");
    assert!(
        bot.exists(),
        "build the workspace first (cargo build --workspace --bins): {}",
        bot.display()
    );
    Proc {
        child: Command::new(&bot)
            .arg("swarm")
            .args(args)
            .args(["--no-progress", "--max-errors", "0", "--report"])
            .arg(report)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .spawn()
            .unwrap(),
        ready: Value::Null,
    }
}

/// Waits (60 s at most) for the swarm to exit 0, and returns its report.
pub async fn swarm_report(swarm: &mut Proc, report: &Path) -> Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut poll = tokio::time::interval(Duration::from_millis(100));
    let status = loop {
        if let Some(status) = swarm.child.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "the swarm did not finish");
        poll.tick().await;
    };
    let r: Value = serde_json::from_str(&std::fs::read_to_string(report).unwrap()).unwrap();
    eprintln!("swarm report: {r}");
    assert_eq!(status.code(), Some(0), "swarm failed: {r}");
    r
}

/// A `redis-server` of the test's own on a free loopback port (no persistence), and its URL.
pub async fn start_redis(dir: &Path) -> (Proc, String) {
    let port = free_port();
    let child = Command::new("redis-server")
        .args([
            "--port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
        ])
        .arg(dir)
        .stdout(Stdio::null())
        .spawn()
        .expect(
            "redis-server is needed: apt-get install -y redis-server (scripts/test.sh does it)",
        );
    wait_for("redis", || {
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
    })
    .await;
    (
        Proc {
            child,
            ready: Value::Null,
        },
        format!("redis://127.0.0.1:{port}"),
    )
}

/// The room keys of `KEYS`, as `tickroom room-keys` prints them: room servers get only these,
/// so none of them could sign a session or a ticket.
pub fn room_keys() -> &'static str {
    static ROOM_KEYS: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    ROOM_KEYS.get_or_init(|| {
        let out = Command::new(tickroom_bin())
            .arg("room-keys")
            .env("TICKROOM_KEYS", KEYS)
            .output()
            .expect("run tickroom room-keys");
        assert!(out.status.success(), "tickroom room-keys: {out:?}");
        let text = String::from_utf8(out.stdout).unwrap().trim().to_string();
        assert!(
            !text.contains(&KEYS[2..]),
            "room keys must not contain the master key"
        );
        text
    })
}

/// The value of the unlabelled metric `name` in Prometheus text (panics when absent).
pub fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("{name} in {text}"))
}
