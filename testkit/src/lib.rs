//! What the end-to-end tests of every crate share: a real server binary (`tickroom`, or a
//! game's own, such as `pong-server`) started on port 0 and killed by its own handle when
//! dropped, a temp directory per test, and waits bounded by a deadline (never a sleep).

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::time::Duration;

use serde_json::Value;

/// How long a server gets to say it is ready.
pub const READY_TIMEOUT: Duration = Duration::from_secs(20);

/// Every listener of the all-in-one server on a free port.
pub const ALL_ON_PORT_0: [&str; 8] = [
    "--http",
    "127.0.0.1:0",
    "--ws",
    "127.0.0.1:0",
    "--quic",
    "127.0.0.1:0",
    "--metrics",
    "127.0.0.1:0",
];

/// Debug builds on a loaded CI machine tick slowly: admission control must not refuse rooms
/// in functional tests.
pub const RELAXED_TICK_BUDGET: [&str; 2] = ["--max-tick-p99-ms", "1000"];

/// A temporary directory, removed when dropped.
#[derive(Debug)]
pub struct TempDir(PathBuf);

impl TempDir {
    /// A fresh directory named after `tag`, this process and a counter.
    pub fn new(tag: &str) -> TempDir {
        static N: AtomicU64 = AtomicU64::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("tickroom-{tag}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create the temp dir");
        TempDir(dir)
    }

    /// A path inside it.
    pub fn join(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A server process, killed and reaped (by its own handle) when dropped.
#[derive(Debug)]
pub struct ServerProcess {
    child: Child,
    /// The ready file's JSON: the bound addresses (`http`, `ws`, `quic`, `cert_fingerprint`,
    /// `metrics`).
    pub ready: Value,
}

impl ServerProcess {
    /// Starts `binary ARGS --ready-file DIR/ready.json`, copies its log to `DIR/server.log`
    /// and returns once it logged that it is ready (the ready file is written before that).
    pub fn start(binary: &Path, dir: &Path, args: &[&str]) -> ServerProcess {
        let ready_file = dir.join("ready.json");
        let mut child = Command::new(binary)
            .args(args)
            .arg("--ready-file")
            .arg(&ready_file)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("start {}: {e}", binary.display()));
        let stderr = child.stderr.take().expect("stderr is piped");
        // Owned by the guard from here on, so a failed wait below still ends the process.
        let mut server = ServerProcess {
            child,
            ready: Value::Null,
        };
        let mut log = std::fs::File::create(dir.join("server.log")).expect("server log");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let _ = writeln!(log, "{line}");
                if line.contains("ready") {
                    let _ = tx.send(());
                }
            }
        });
        rx.recv_timeout(READY_TIMEOUT)
            .unwrap_or_else(|_| panic!("{} not ready after {READY_TIMEOUT:?}", binary.display()));
        let text = std::fs::read_to_string(&ready_file).expect("ready file before the ready line");
        server.ready = serde_json::from_str(&text).expect("the ready file is JSON");
        server
    }

    /// `http://` + the bound HTTP address.
    pub fn http(&self) -> String {
        format!(
            "http://{}",
            self.ready["http"].as_str().expect("an http address")
        )
    }

    /// The metrics listener's `/metrics` URL.
    pub fn metrics_url(&self) -> String {
        format!(
            "http://{}/metrics",
            self.ready["metrics"].as_str().expect("a metrics address")
        )
    }

    /// The process id (to signal it).
    pub fn id(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Waits for `child` to exit within `limit` and collects its output; past that it is killed
/// by its own id and the test fails.
pub fn wait_output(child: Child, limit: Duration, what: &str) -> Output {
    wait_output_then_stop(child, limit, what, None)
}

/// [`wait_output`] for a child that cleans up after itself: past `limit` it gets SIGTERM and
/// `grace` to exit, then SIGKILL, and the test fails.
pub fn wait_output_terminating(
    child: Child,
    limit: Duration,
    grace: Duration,
    what: &str,
) -> Output {
    wait_output_then_stop(child, limit, what, Some(grace))
}

fn wait_output_then_stop(
    child: Child,
    limit: Duration,
    what: &str,
    grace: Option<Duration>,
) -> Output {
    let pid = child.id().to_string();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(limit) {
        Ok(out) => out.expect("collect the child's output"),
        Err(_) => {
            let ended = grace.is_some_and(|grace| {
                let _ = Command::new("kill").args(["-TERM", &pid]).status();
                rx.recv_timeout(grace).is_ok()
            });
            if !ended {
                let _ = Command::new("kill").args(["-KILL", &pid]).status();
            }
            panic!("{what} still running after {limit:?}");
        }
    }
}

/// Runs `work` on its own thread and waits for it at most `limit`; panics past that (the
/// thread is left behind, the test fails).
pub fn within<T: Send + 'static>(
    limit: Duration,
    what: &str,
    work: impl FnOnce() -> T + Send + 'static,
) -> T {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(work());
    });
    rx.recv_timeout(limit)
        .unwrap_or_else(|_| panic!("{what} still running after {limit:?}"))
}

/// A valid device id standing for `tag`: 32 hex digits (the 128 bits the gateway requires of
/// a device id), the same for the same tag, so a test can log in as "player 3" again.
pub fn device_id(tag: &str) -> String {
    /// Two FNV-1a lanes, told apart by a trailing lane byte.
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0100_0000_01b3;
    let lane = |salt: u8| {
        tag.bytes()
            .chain([salt])
            .fold(OFFSET, |h, b| (h ^ u64::from(b)).wrapping_mul(PRIME))
    };
    format!("{:016x}{:016x}", lane(0), lane(1))
}

/// A JSON schema (OpenAPI 3.0 dialect) derived from an example value: objects list every field
/// (all required), whole numbers are integers, arrays take their first element's schema, null
/// is nullable. The OpenAPI documents are generated from serialised examples of the API types
/// with it, so a field added, removed or retyped in Rust changes the document.
pub fn json_schema_of(example: &Value) -> Value {
    match example {
        Value::Null => serde_json::json!({ "nullable": true }),
        Value::Bool(_) => serde_json::json!({ "type": "boolean" }),
        Value::Number(n) if n.is_u64() => serde_json::json!({ "type": "integer", "minimum": 0 }),
        Value::Number(n) if n.is_i64() => serde_json::json!({ "type": "integer" }),
        Value::Number(_) => serde_json::json!({ "type": "number" }),
        Value::String(_) => serde_json::json!({ "type": "string" }),
        Value::Array(items) => serde_json::json!({
            "type": "array",
            "items": items.first().map_or(serde_json::json!({}), json_schema_of),
        }),
        Value::Object(fields) => {
            let properties: serde_json::Map<String, Value> = fields
                .iter()
                .map(|(k, v)| (k.clone(), json_schema_of(v)))
                .collect();
            let required: Vec<&String> = fields.keys().collect();
            serde_json::json!({ "type": "object", "properties": properties, "required": required })
        }
    }
}

/// Whether the file at `path` holds exactly `value` as pretty JSON (with a final newline): the
/// check of a generated file (golden vectors, OpenAPI documents). With
/// `TICKROOM_UPDATE_VECTORS` set it writes the file first (creating its folder), so a
/// deliberate change regenerates what the test then compares.
pub fn generated_json_is_current(path: &Path, value: &Value) -> bool {
    let text = serde_json::to_string_pretty(value).expect("a JSON value serialises") + "\n";
    if std::env::var_os("TICKROOM_UPDATE_VECTORS").is_some() {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).expect("create the generated file's folder");
        }
        std::fs::write(path, &text).expect("write the generated file");
    }
    std::fs::read_to_string(path).is_ok_and(|on_disk| on_disk == text)
}
