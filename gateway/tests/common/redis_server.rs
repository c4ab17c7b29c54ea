//! A throwaway `redis-server` per test: a free loopback port, no persistence, its own
//! directory; killed through its own `Child` handle when dropped.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// Longest a fresh redis-server may take to answer PING.
pub const REDIS_START_DEADLINE: Duration = Duration::from_secs(10);
/// Redis timeouts of a directory under a test's load.
pub const LOADED_TIMEOUT: Duration = Duration::from_secs(5);
/// Pause between two readiness probes.
const PROBE_INTERVAL: Duration = Duration::from_millis(10);
/// Longest one readiness probe may take.
const PROBE_TIMEOUT: Duration = Duration::from_millis(500);

/// A running `redis-server` child.
pub struct RedisServer {
    child: Option<Child>,
    port: u16,
    dir: PathBuf,
}

impl RedisServer {
    /// Starts a redis-server on a free port and waits until it answers PING. Fails the test
    /// (with the install command) if redis-server is not installed.
    pub async fn start() -> RedisServer {
        let port = {
            let probe = TcpListener::bind("127.0.0.1:0").expect("bind a probe port");
            probe.local_addr().expect("probe address").port()
        };
        let dir =
            std::env::temp_dir().join(format!("tickroom-redis-test-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("create the redis test directory");
        let mut server = RedisServer {
            child: None,
            port,
            dir,
        };
        server.restart().await;
        server
    }

    /// `redis://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// A directory on this server under `prefix`, with timeouts long enough for a 2-core
    /// machine running a test's load next to it.
    pub async fn patient_directory(
        &self,
        prefix: &str,
    ) -> std::sync::Arc<tickroom_gateway::RedisDirectory> {
        let config = tickroom_gateway::RedisConfig {
            prefix: prefix.into(),
            response_timeout: LOADED_TIMEOUT,
            call_timeout: LOADED_TIMEOUT,
            ..tickroom_gateway::RedisConfig::default()
        };
        tickroom_gateway::RedisDirectory::connect_with(&self.url(), config)
            .await
            .expect("connect to the test redis")
    }

    /// Freezes the server (SIGSTOP): it holds its connections and answers nothing.
    pub fn freeze(&self) {
        self.signal("-STOP");
    }

    /// Lets a frozen server go on (SIGCONT).
    pub fn thaw(&self) {
        self.signal("-CONT");
    }

    fn signal(&self, signal: &str) {
        let child = self.child.as_ref().expect("the server runs");
        let sent = Command::new("kill")
            .args([signal, &child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(sent.success(), "kill {signal} failed");
    }

    /// Kills the server (as a crash would) and reaps it.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server again on the same port (empty: nothing is persisted) and waits for
    /// PING.
    pub async fn restart(&mut self) {
        self.stop();
        let spawned = Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no", "--daemonize", "no"])
            .arg("--dir")
            .arg(&self.dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn();
        let child = match spawned {
            Ok(child) => child,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                panic!("redis-server not found: install redis-server (apt-get install -y redis-server)")
            }
            Err(e) => panic!("cannot start redis-server: {e}"),
        };
        self.child = Some(child);
        self.wait_until_ready().await;
    }

    async fn wait_until_ready(&mut self) {
        let deadline = tokio::time::Instant::now() + REDIS_START_DEADLINE;
        let mut probe = tokio::time::interval(PROBE_INTERVAL);
        loop {
            probe.tick().await;
            if self.pong().await {
                return;
            }
            if let Some(child) = self.child.as_mut() {
                if let Ok(Some(status)) = child.try_wait() {
                    panic!("redis-server on port {} exited: {status}", self.port);
                }
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "redis-server on port {} did not answer PING in time",
                self.port
            );
        }
    }

    async fn pong(&self) -> bool {
        let probe = async {
            let client = redis::Client::open(self.url()).ok()?;
            let mut conn = client.get_multiplexed_async_connection().await.ok()?;
            redis::cmd("PING")
                .query_async::<String>(&mut conn)
                .await
                .ok()
        };
        matches!(tokio::time::timeout(PROBE_TIMEOUT, probe).await, Ok(Some(p)) if p == "PONG")
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
