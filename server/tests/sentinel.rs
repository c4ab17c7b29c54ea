//! Redis behind Sentinel, multi-process: a primary, a replica and three Sentinels (real
//! `redis-server` processes on loopback), two `tickroom room` servers and a `tickroom gateway`
//! that reach Redis through `redis+sentinel://`. The primary is killed (`kill -9`) while a bot
//! swarm is still logging in: running matches go on, the bots that arrive during the failover
//! wait out the gateway's 503s and get in once a replica is promoted, and no match is formed
//! twice. The failover time is printed for BENCHMARKS.md. Children are ended by their own
//! handles.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use tickroom_protocol::connect::{ConnectError, GatewayClient};

mod common;

use common::{
    free_port, scraped, start_room_server, start_swarm, start_tickroom, swarm_report, wait_for,
    Proc, TempDir, KEYS, WAIT,
};

/// The Sentinels' master name.
const MASTER: &str = "tickroom";

/// `redis-cli -p PORT ARGS...`'s output (empty when the server does not answer).
fn redis_cli(port: u16, args: &[&str]) -> String {
    let out = Command::new("redis-cli")
        .args(["-h", "127.0.0.1", "-p", &port.to_string()])
        .args(args)
        .stderr(Stdio::null())
        .output()
        .expect("redis-cli comes with redis-server (apt-get install -y redis-server)");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `redis-server ARGS`, its output dropped.
fn spawn_redis(args: &[&std::ffi::OsStr]) -> Proc {
    let child = Command::new("redis-server")
        .args(args)
        .stdout(Stdio::null())
        .spawn()
        .expect("redis-server is needed: apt-get install -y redis-server");
    Proc {
        child,
        ready: Value::Null,
    }
}

fn redis_server(dir: &Path, port: u16, extra: &[&str]) -> Proc {
    std::fs::create_dir_all(dir).unwrap();
    let port = port.to_string();
    let mut args: Vec<&std::ffi::OsStr> = ["--port", &port, "--bind", "127.0.0.1"]
        .into_iter()
        .chain(["--save", "", "--appendonly", "no", "--dir"])
        .map(std::ffi::OsStr::new)
        .collect();
    args.push(dir.as_os_str());
    args.extend(extra.iter().map(std::ffi::OsStr::new));
    spawn_redis(&args)
}

/// A Sentinel on `port` watching the primary on `primary` (quorum 2, down after 1 s).
fn sentinel(dir: &Path, port: u16, primary: u16) -> Proc {
    let conf = dir.join(format!("sentinel-{port}.conf"));
    std::fs::write(
        &conf,
        format!(
            "port {port}\nbind 127.0.0.1\ndir {}\n\
             sentinel monitor {MASTER} 127.0.0.1 {primary} 2\n\
             sentinel down-after-milliseconds {MASTER} 1000\n\
             sentinel failover-timeout {MASTER} 5000\n\
             sentinel parallel-syncs {MASTER} 1\n",
            dir.display()
        ),
    )
    .unwrap();
    spawn_redis(&[conf.as_os_str(), std::ffi::OsStr::new("--sentinel")])
}

/// The primary's port as the first Sentinel that answers names it.
fn primary_port(sentinels: &[u16]) -> Option<u16> {
    sentinels.iter().find_map(|port| {
        let out = redis_cli(*port, &["SENTINEL", "get-master-addr-by-name", MASTER]);
        out.lines().nth(1)?.trim().parse().ok()
    })
}

/// Sum of `tickroom_sessions` over the room servers' /metrics.
async fn sessions_on(rooms: &[Proc]) -> f64 {
    let mut total = 0.0;
    for r in rooms {
        total += scraped(r, "tickroom_sessions").await;
    }
    total
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_redis_primary_fails_over_and_arriving_players_get_in() {
    let dir = TempDir::new("sentinel");
    let (primary_port_0, replica_port) = (free_port(), free_port());
    let mut primary = redis_server(&dir.join("primary"), primary_port_0, &[]);
    let _replica = redis_server(
        &dir.join("replica"),
        replica_port,
        &["--replicaof", "127.0.0.1", &primary_port_0.to_string()],
    );
    let sentinel_ports = [free_port(), free_port(), free_port()];
    let _sentinels: Vec<Proc> = sentinel_ports
        .iter()
        .map(|p| sentinel(dir.path(), *p, primary_port_0))
        .collect();
    // Ready: the replica follows the primary, and every Sentinel knows the replica and the
    // two other Sentinels (they find each other through the primary within a few seconds).
    wait_for("the replica to sync", || {
        redis_cli(replica_port, &["INFO", "replication"]).contains("master_link_status:up")
    })
    .await;
    wait_for("the sentinels to know each other and the replica", || {
        sentinel_ports.iter().all(|p| {
            let replicas = redis_cli(*p, &["SENTINEL", "replicas", MASTER]);
            let others = redis_cli(*p, &["SENTINEL", "sentinels", MASTER]);
            replicas.contains(&replica_port.to_string())
                && sentinel_ports
                    .iter()
                    .filter(|o| *o != p)
                    .all(|o| others.contains(&o.to_string()))
        })
    })
    .await;

    let url = format!(
        "redis+sentinel://{}/{MASTER}",
        sentinel_ports
            .iter()
            .map(|p| format!("127.0.0.1:{p}"))
            .collect::<Vec<_>>()
            .join(",")
    );
    let mut rooms = Vec::new();
    for i in 1..=2 {
        rooms.push(start_room_server(dir.path(), &format!("room-{i}"), &url, &[]).await);
    }
    let gateway = start_tickroom(
        dir.path(),
        "gateway",
        &["gateway", "--redis", &url],
        &[("TICKROOM_KEYS", KEYS)],
    )
    .await;

    const BOTS: i64 = 40;
    let report = dir.join("swarm.json");
    let args = [
        "--server",
        &gateway.http(),
        "--bots",
        &BOTS.to_string(),
        "--ramp",
        "6s",
        "--duration",
        "5s",
        "--mode",
        "duel",
        "--transport",
        "ws",
    ];
    let mut swarm = start_swarm(&args, &report);

    // Kill the primary while the swarm is still arriving: a quarter of the bots seated.
    let deadline = Instant::now() + WAIT;
    let mut poll = tokio::time::interval(Duration::from_millis(50));
    while sessions_on(&rooms).await < (BOTS / 4) as f64 {
        assert!(Instant::now() < deadline, "the bots never sat down");
        poll.tick().await;
    }
    primary.child.kill().unwrap();
    let _ = primary.child.wait();
    let killed = Instant::now();
    // The failover: until a Sentinel names the replica, and until the gateway answers a
    // directory read again (a client that may not retry, so every 503 is seen).
    let probe = GatewayClient::new(&gateway.http()).with_retry_deadline(Duration::ZERO);
    let token = probe
        .login_device(&tickroom_testkit::device_id("sentinel-probe"))
        .await
        .unwrap()
        .session_token;
    let (mut promoted, mut served) = (None, None);
    while promoted.is_none() || served.is_none() {
        assert!(killed.elapsed() < WAIT, "no failover within {WAIT:?}");
        if promoted.is_none() && primary_port(&sentinel_ports) == Some(replica_port) {
            promoted = Some(killed.elapsed());
        }
        if served.is_none() {
            match probe.room_status(&token, 1).await {
                Ok(_) => served = Some(killed.elapsed()),
                Err(ConnectError::Gateway { status: 503, .. }) => {}
                Err(e) => panic!("the probe: {e}"),
            }
        }
        poll.tick().await;
    }
    let (promoted, served) = (promoted.unwrap(), served.unwrap());
    eprintln!(
        "sentinel failover: replica promoted {:.2} s after kill -9, gateway serving again after {:.2} s",
        promoted.as_secs_f64(),
        served.as_secs_f64()
    );

    let r = swarm_report(&mut swarm, &report).await;
    // Everyone got in, the late ones after the failover; running matches were untouched.
    assert_eq!(r["joined"], BOTS, "{r}");
    assert_eq!(r["errors"], 0, "{r}");
    assert_eq!(r["rejoins"], 0, "no match was lost: {r}");
    // No match was formed twice: every duel has its two bots, and no bot sat alone.
    assert_eq!(r["rooms"], BOTS / 2, "{r}");
}
