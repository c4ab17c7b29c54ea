//! The three process roles behind the `tickroom` binary: all-in-one (gateway + room server +
//! in-memory directory), `room` (room server alone) and `gateway` (gateway alone). Each binds
//! its listeners (port 0 allowed), writes the ready-file, logs where it listens, and shuts down
//! gracefully when `shutdown` fires.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use rand::Rng;
use tickroom_game::modes::Modes;
use tickroom_gateway::{
    AdminTokens, Directory, ErrorLog, Gateway, GatewayConfig, InMemoryDirectory, MatchPlayer,
    MatchRecord, ReassignOutcome, RedisDirectory, RoomServerInfo, ServerControl,
};
use tickroom_protocol::{KeyRing, RoomKeys};
use tokio::sync::watch;
use tracing::{info, warn};

use crate::admin::ServerAgent;
use crate::app::{serve_http, write_ready_file, ReadyInfo, RunningRoomServer, StartError};
use crate::http::{health_router, metrics_router, HttpLimits, HttpStats, MetricsSource};
use crate::room::{GameRegistry, RoomInput};
use crate::tls::TlsServer;
use crate::transport::quic::CertAndKey;
use crate::{ImageWhy, RoomEvent, RoomServer, RoomServerConfig};

/// How long a shutting-down room server on a shared directory waits for its rooms to be
/// handed over or to end before it ends the rest.
pub const HANDOFF_DEADLINE: Duration = Duration::from_secs(30);
/// How long a directory entry lives without a heartbeat by default (`--heartbeat-ttl-ms`;
/// heartbeats go every third of it).
pub const HEARTBEAT_TTL: Duration = Duration::from_secs(3);

/// Everything a role needs, resolved from flags by `main.rs`.
pub struct RoleConfig {
    pub http: SocketAddr,
    /// The metrics listener (`/metrics`, `/healthz`), apart from the players' HTTP.
    pub metrics: SocketAddr,
    /// Bounds of the HTTP listener (the metrics listener derives its own from them).
    pub http_limits: HttpLimits,
    pub ws: SocketAddr,
    pub quic: SocketAddr,
    /// Host clients should use to reach this machine; default: the bound address.
    pub public_host: Option<String>,
    pub ready_file: Option<PathBuf>,
    /// The gateways' key ring (gateway and all-in-one; a room server given only room keys
    /// has none).
    pub keys: Option<KeyRing>,
    /// What the room server holds: ticket verification and join secrets.
    pub room_keys: RoomKeys,
    pub modes: Modes,
    pub room: RoomServerConfig,
    /// QUIC's certificate (default: the TLS certificate, else a self-signed one).
    pub cert: Option<CertAndKey>,
    /// TLS on the gateway's HTTP and on WebSocket (`https://`, `wss://`) with this certificate.
    pub tls: Option<CertAndKey>,
    /// Per-IP gateway request rate (requests/s) and burst.
    pub gateway_rate_per_ip_per_s: u32,
    pub gateway_rate_burst: u32,
    /// Redis URL of the shared directory; None = in-memory (single process).
    pub redis: Option<String>,
    /// Prefix of every Redis key (lets deployments share one Redis).
    pub redis_prefix: String,
    /// Room role: take no new rooms (drain), finish the running ones.
    pub drain: bool,
    /// With a shared directory: rooms fail over (images, takeover, hand-off on shutdown).
    pub failover: bool,
    /// The games this process can run, by the name modes give them.
    pub games: GameRegistry,
    /// How long a finished match's result is kept in the directory.
    pub match_result_ttl: Duration,
    /// How long a login lasts across its refreshes.
    pub session_max_lifetime: Duration,
    /// Web origins allowed to call the gateway from the browser (CORS).
    pub allow_origins: Vec<String>,
    /// The operators' tokens (`--admin-token-file`): the admin API (`/v1/admin`) and the
    /// status page (`/status`) exist only with them.
    pub admin_tokens: Option<Arc<AdminTokens>>,
}

/// The directory this process uses: Redis when configured, else in-memory.
async fn directory(cfg: &RoleConfig) -> Result<Arc<dyn Directory>, StartError> {
    match &cfg.redis {
        Some(url) => {
            let dir = RedisDirectory::connect(url, &cfg.redis_prefix)
                .await
                .map_err(|e| StartError::Directory(e.to_string()))?;
            info!(redis = %redact_url(url), "directory: redis");
            Ok(dir)
        }
        None => Ok(InMemoryDirectory::new()),
    }
}

/// A Redis URL without its password, for logs.
fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            format!("{}://***@{}", &url[..scheme], &url[at + 1..])
        }
        _ => url.to_string(),
    }
}

/// A fresh random key ring (all-in-one without configured keys).
pub fn random_key_ring() -> KeyRing {
    KeyRing::single(1, rand::rng().random())
}

fn advertised(public_host: &Option<String>, bound: SocketAddr) -> String {
    match public_host {
        Some(host) => format!("{host}:{}", bound.port()),
        None => bound.to_string(),
    }
}

/// Runs the all-in-one server (or the room role alone when `with_gateway` is false) until
/// `shutdown` fires.
pub async fn run_server(
    mut cfg: RoleConfig,
    with_gateway: bool,
    mut shutdown: watch::Receiver<bool>,
) -> Result<(), StartError> {
    let tls = cfg.tls.as_ref().map(TlsServer::new).transpose()?;
    let cert = match cfg.cert.take().or_else(|| cfg.tls.clone()) {
        Some(c) => c,
        None => CertAndKey::self_signed()?,
    };
    let room = RoomServer::new(
        cfg.room.clone(),
        cfg.room_keys.clone(),
        &cfg.modes,
        &cfg.games,
    )?;
    let running =
        RunningRoomServer::start(room.clone(), cfg.ws, cfg.quic, cert, tls.clone()).await?;
    let info = RoomServerInfo {
        server_id: cfg.room.server_id.clone(),
        quic_addr: advertised(&cfg.public_host, running.quic_addr),
        ws_addr: advertised(&cfg.public_host, running.ws_addr),
        cert_fingerprint: running.cert_fingerprint.clone(),
        ws_tls: tls.is_some(),
        capacity: cfg.room.max_connections as u32,
        load: 0,
        draining: false,
    };
    let (stop_tx, stop_rx) = watch::channel(false);
    let http_stats = Arc::new(HttpStats::default());
    let mut sources: Vec<MetricsSource> = vec![running.metrics_source(), http_source(&http_stats)];
    let mut routes = health_router();
    let mut background = Vec::new();
    // A room server registers with the directory when it is shared (Redis) or when the
    // gateway runs in this process (all-in-one).
    let mut agent = None;
    let dir = if with_gateway || cfg.redis.is_some() {
        let dir = directory(&cfg).await?;
        let server = ServerAgent::new(room.clone(), dir.clone(), info.clone(), cfg.drain);
        if let Err(e) = server.heartbeat().await {
            warn!(error = %e, "first directory registration failed; the heartbeat retries");
        }
        if cfg.redis.is_some() && cfg.failover {
            // Rooms fail over between room servers sharing a directory.
            let _ = room.shared.failover.set(crate::Failover(dir.clone()));
        }
        background.push(tokio::spawn(report_rooms(
            dir.clone(),
            room.clone(),
            cfg.match_result_ttl,
            stop_rx.clone(),
        )));
        // Operators' commands come through the directory when gateways in other processes
        // share it; the gateway in this process calls the agent directly.
        background.push(tokio::spawn(
            server.clone().run(cfg.redis.is_some(), stop_rx.clone()),
        ));
        agent = Some(server);
        Some(dir)
    } else {
        if cfg.admin_tokens.is_some() {
            warn!("--admin-token-file is for gateways: this room server has no admin API");
        }
        None
    };
    if let Some(dir) = dir.clone().filter(|_| with_gateway) {
        let keys = cfg.keys.clone().ok_or(StartError::NoKeyRing)?;
        let mut gw_config = GatewayConfig::new(keys, cfg.modes.clone());
        gw_config.session_max_lifetime = cfg.session_max_lifetime;
        gw_config.rate_per_ip_per_s = cfg.gateway_rate_per_ip_per_s;
        gw_config.rate_burst = cfg.gateway_rate_burst;
        let gateway = Gateway::new(gw_config, dir);
        background.push(tokio::spawn(tickroom_gateway::run_matchmaker(
            gateway.clone(),
            stop_rx.clone(),
        )));
        let gw = gateway.clone();
        sources.push(Arc::new(move |out: &mut String| gw.render_metrics(out)));
        let local = agent.clone().map(|a| a as Arc<dyn ServerControl>);
        routes = routes.merge(gateway_routes(&cfg, gateway, local));
    }
    let (http_addr, http_task) = serve_http(
        cfg.http,
        routes,
        cfg.http_limits.clone(),
        tls.clone(),
        http_stats,
        stop_rx.clone(),
    )
    .await?;
    let (metrics_addr, metrics_task) = serve_metrics(&cfg, sources, stop_rx).await?;
    let ready = ReadyInfo {
        http: Some(http_addr.to_string()),
        ws: Some(running.ws_addr.to_string()),
        quic: Some(running.quic_addr.to_string()),
        cert_fingerprint: Some(running.cert_fingerprint.clone()),
        tls_fingerprint: tls.as_ref().map(|t| t.fingerprint().to_string()),
        metrics: Some(metrics_addr.to_string()),
    };
    if let Some(path) = &cfg.ready_file {
        if let Err(e) = write_ready_file(path, &ready) {
            warn!(path = %path.display(), error = %e, "cannot write the ready file");
        }
    }
    if with_gateway {
        let (http, ws) = if tls.is_some() {
            ("https", "wss")
        } else {
            ("http", "ws")
        };
        info!(
            gateway = %format!("{http}://{http_addr}"),
            ws = %format!("{ws}://{}/", running.ws_addr),
            quic = %running.quic_addr,
            cert_fingerprint = %running.cert_fingerprint,
            metrics = %format!("http://{metrics_addr}/metrics"),
            "tickroom all-in-one ready: play in a browser at {http}://{http_addr}/play/, log in at POST {http}://{http_addr}/v1/auth/device, metrics at http://{metrics_addr}/metrics"
        );
    } else {
        info!(http = %http_addr, ws = %running.ws_addr, quic = %running.quic_addr, metrics = %metrics_addr, "tickroom room server ready");
    }
    let _ = shutdown.changed().await;
    if let (Some(_), Some(agent)) = (room.shared.failover.get(), &agent) {
        hand_off_rooms(&room, agent).await;
    }
    info!("shutting down: refusing new connections, telling players, draining");
    let _ = stop_tx.send(true);
    if let Some(dir) = &dir {
        if let Err(e) = dir.deregister_server(&info.server_id).await {
            warn!(error = %e, "could not deregister from the directory");
        }
    }
    running.shutdown().await;
    for t in background {
        let _ = tokio::time::timeout(Duration::from_secs(1), t).await;
    }
    let _ = tokio::time::timeout(Duration::from_secs(1), http_task).await;
    let _ = tokio::time::timeout(Duration::from_secs(1), metrics_task).await;
    info!("stopped");
    Ok(())
}

/// Runs the gateway alone (its in-memory directory only knows room servers in this process,
/// so without a shared directory it can log players in but place nobody).
pub async fn run_gateway(
    cfg: RoleConfig,
    mut shutdown: watch::Receiver<bool>,
) -> Result<(), StartError> {
    if cfg.redis.is_none() {
        warn!("gateway without --redis: no room server in another process can register with it");
    }
    let keys = cfg.keys.clone().ok_or(StartError::NoKeyRing)?;
    let dir = directory(&cfg).await?;
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut gw_config = GatewayConfig::new(keys, cfg.modes.clone());
    gw_config.session_max_lifetime = cfg.session_max_lifetime;
    gw_config.rate_per_ip_per_s = cfg.gateway_rate_per_ip_per_s;
    gw_config.rate_burst = cfg.gateway_rate_burst;
    let gateway = Gateway::new(gw_config, dir);
    let matcher = tokio::spawn(tickroom_gateway::run_matchmaker(
        gateway.clone(),
        stop_rx.clone(),
    ));
    let gw = gateway.clone();
    let http_stats = Arc::new(HttpStats::default());
    let sources: Vec<MetricsSource> = vec![
        Arc::new(move |out: &mut String| gw.render_metrics(out)),
        http_source(&http_stats),
    ];
    let tls = cfg.tls.as_ref().map(TlsServer::new).transpose()?;
    let (http_addr, http_task) = serve_http(
        cfg.http,
        health_router().merge(gateway_routes(&cfg, gateway, None)),
        cfg.http_limits.clone(),
        tls.clone(),
        http_stats,
        stop_rx.clone(),
    )
    .await?;
    let (metrics_addr, metrics_task) = serve_metrics(&cfg, sources, stop_rx).await?;
    info!(http = %http_addr, metrics = %metrics_addr, "tickroom gateway ready");
    if let Some(path) = &cfg.ready_file {
        let ready = ReadyInfo {
            http: Some(http_addr.to_string()),
            metrics: Some(metrics_addr.to_string()),
            tls_fingerprint: tls.as_ref().map(|t| t.fingerprint().to_string()),
            ..ReadyInfo::default()
        };
        if let Err(e) = write_ready_file(path, &ready) {
            warn!(path = %path.display(), error = %e, "cannot write the ready file");
        }
    }
    let _ = shutdown.changed().await;
    let _ = stop_tx.send(true);
    let _ = tokio::time::timeout(Duration::from_secs(1), matcher).await;
    let _ = tokio::time::timeout(Duration::from_secs(1), http_task).await;
    let _ = tokio::time::timeout(Duration::from_secs(1), metrics_task).await;
    Ok(())
}

/// The gateway's API (with CORS for `--allow-origin`), the web client at `/play/`, and with
/// `--admin-token-file` the admin API and the status page (whose error list then records the
/// API's error answers). `local` is the room server of this process, if any.
fn gateway_routes(
    cfg: &RoleConfig,
    gateway: Arc<Gateway>,
    local: Option<Arc<dyn ServerControl>>,
) -> axum::Router {
    let api = tickroom_gateway::router(gateway.clone());
    let Some(tokens) = cfg.admin_tokens.clone() else {
        return crate::http::cors(api, &cfg.allow_origins).merge(crate::web::router());
    };
    let errors = ErrorLog::new();
    let api = tickroom_gateway::admin::record_errors(api, errors.clone());
    info!(admins = ?tokens.ids(), "admin API at /v1/admin/, status page at /status");
    crate::http::cors(api, &cfg.allow_origins)
        .merge(crate::web::router())
        .merge(tickroom_gateway::admin::router(
            gateway, tokens, errors, local,
        ))
}

/// The HTTP listener's connection counts as a metrics source.
fn http_source(stats: &Arc<HttpStats>) -> MetricsSource {
    let stats = stats.clone();
    Arc::new(move |out: &mut String| stats.render(out))
}

/// Starts the metrics listener (`/metrics` over `sources`, `/healthz`) on `cfg.metrics`: a
/// listener of its own, so a scrape never waits behind players' HTTP connections.
async fn serve_metrics(
    cfg: &RoleConfig,
    sources: Vec<MetricsSource>,
    stop: watch::Receiver<bool>,
) -> Result<(SocketAddr, tokio::task::JoinHandle<()>), StartError> {
    serve_http(
        cfg.metrics,
        metrics_router(sources),
        cfg.http_limits.metrics(),
        None,
        Arc::new(HttpStats::default()),
        stop,
    )
    .await
}

/// Capacity of the queue of room events waiting for the directory.
const ROOM_EVENTS_QUEUE_LEN: usize = 4096;

/// A shutdown of a room server on a shared directory keeps its matches: it takes no new rooms,
/// hands every room to another server (its players resume there), and waits until no room is
/// left here, or `HANDOFF_DEADLINE` (rooms no other server takes play on until then).
async fn hand_off_rooms(room: &Arc<RoomServer>, agent: &ServerAgent) {
    let rooms = || {
        room.shared
            .room_count
            .load(std::sync::atomic::Ordering::Acquire)
    };
    info!(
        rooms = rooms(),
        "shutting down: handing the rooms to other servers"
    );
    agent.drain_now().await;
    room.pool.hand_off();
    let deadline = tokio::time::Instant::now() + HANDOFF_DEADLINE;
    let mut poll = tokio::time::interval(Duration::from_millis(50));
    while rooms() > 0 && tokio::time::Instant::now() < deadline {
        poll.tick().await;
    }
    info!(left = rooms(), "rooms handed over");
}

/// Moves a room this server owns at `epoch` (its image just stored) to another live server,
/// chosen by the power of two choices; false when none takes it (the room then finishes
/// here, or ends at the shutdown).
async fn hand_over(dir: &Arc<dyn Directory>, server_id: &str, room_id: u64, epoch: u64) -> bool {
    match tickroom_gateway::move_room(&**dir, room_id, epoch, server_id).await {
        Ok(Some((target, ReassignOutcome::Reassigned(_)))) => {
            info!(room = room_id, to = %target, "room handed over");
            true
        }
        Ok(Some((target, other))) => {
            warn!(room = room_id, to = %target, outcome = ?other, "the room was not handed over");
            false
        }
        Ok(None) => {
            warn!(
                room = room_id,
                "no other room server takes rooms: the room finishes here"
            );
            false
        }
        Err(e) => {
            warn!(room = room_id, error = %e, "cannot hand the room over: directory unavailable");
            false
        }
    }
}

/// Stores a worker tick's closed lockstep frames (one directory call for every room of the
/// batch) and lets each room send them: once stored, or at once when its frames cannot be
/// stored (an unknown epoch, a gap, the directory away: that room's failover is suspended,
/// its play is not). A room whose epoch moved on ends its copy (`RoomMoved`).
async fn store_frames(
    dir: &Arc<dyn Directory>,
    room: &RoomServer,
    epochs: &HashMap<u64, u64>,
    batch: crate::FrameBatch,
) {
    let release = |room_id: u64, upto: u64| {
        let _ = room
            .pool
            .try_send(room_id, RoomInput::FramesStored { room_id, upto });
    };
    // Each append, and the newest frame it lets the room send.
    let (mut appends, mut uptos) = (Vec::with_capacity(batch.len()), Vec::new());
    let mut ttl = Duration::ZERO;
    for (room_id, room_ttl, frames) in batch {
        let (Some(&epoch), Some(&(first, _)), Some(&(upto, _))) =
            (epochs.get(&room_id), frames.first(), frames.last())
        else {
            if let Some(&(upto, _)) = frames.last() {
                release(room_id, upto);
            }
            continue;
        };
        ttl = ttl.max(room_ttl);
        let frames = frames.into_iter().map(|(_, bytes)| bytes).collect();
        appends.push(tickroom_gateway::FrameAppend {
            room_id,
            epoch,
            first,
            frames,
        });
        uptos.push(upto);
    }
    if appends.is_empty() {
        return;
    }
    let server_id = &room.shared.config.server_id;
    let answers = match dir.append_frames(server_id, &appends, ttl).await {
        Ok(answers) => answers,
        Err(e) => {
            room.shared.metrics.image_failures.inc();
            warn!(error = %e, "could not store lockstep frames; their rooms' failover is suspended");
            vec![tickroom_gateway::FramesStored::Stored; appends.len()]
        }
    };
    for ((append, upto), answer) in appends.iter().zip(uptos).zip(answers) {
        let room_id = append.room_id;
        match answer {
            tickroom_gateway::FramesStored::Stored => release(room_id, upto),
            tickroom_gateway::FramesStored::Gap => {
                warn!(
                    room = room_id,
                    "the room's stored frames have a gap: it can no longer fail over"
                );
                release(room_id, upto);
            }
            tickroom_gateway::FramesStored::Fenced => {
                room.shared.metrics.images_fenced.inc();
                let _ = room.pool.try_send(
                    room_id,
                    RoomInput::Ownership {
                        room_id,
                        owned: false,
                    },
                );
            }
        }
    }
}

/// Stores a room's failover image as its owner at `epoch`; returns whether the room is still
/// this server's. Only the directory's fenced refusal says it is not: an unreachable
/// directory suspends failover and leaves the room running.
async fn store_image(
    dir: &Arc<dyn Directory>,
    room: &RoomServer,
    room_id: u64,
    epoch: u64,
    image: &[u8],
    sessions: &[u64],
    ttl: Duration,
) -> bool {
    let server_id = &room.shared.config.server_id;
    let metrics = &room.shared.metrics;
    match dir
        .save_room_image(room_id, server_id, epoch, image, sessions, ttl)
        .await
    {
        Ok(true) => {
            metrics.images_stored.inc();
            true
        }
        Ok(false) => {
            metrics.images_fenced.inc();
            warn!(
                room = room_id,
                epoch, "the room moved to another server: this server no longer owns it"
            );
            false
        }
        Err(e) => {
            metrics.image_failures.inc();
            warn!(room = room_id, error = %e, "could not store the room's failover image; its failover is suspended until the directory is back");
            true
        }
    }
}

/// Tells the directory about this server's rooms: a room that seated a player is kept until
/// it ends (rooms nobody joins are dropped after their join window), and an ended room's
/// record is closed, fenced by the epoch the join reported, after storing its result. It also
/// stores failover images and lockstep frames (fenced), and moves rooms on hand-off.
async fn report_rooms(
    dir: Arc<dyn Directory>,
    room: Arc<RoomServer>,
    result_ttl: Duration,
    mut stop: watch::Receiver<bool>,
) {
    let (tx, mut rx) = tokio::sync::mpsc::channel(ROOM_EVENTS_QUEUE_LEN);
    if room.shared.room_events.set(tx).is_err() {
        return;
    }
    let server_id = room.shared.config.server_id.clone();
    // Epochs of this server's joined rooms, for fenced closes.
    let mut epochs: HashMap<u64, u64> = HashMap::new();
    loop {
        tokio::select! {
            event = rx.recv() => match event {
                None => return,
                Some(RoomEvent::Joined(room_id)) => match dir.room_joined(room_id, &server_id).await {
                    Ok(Some(epoch)) => {
                        epochs.insert(room_id, epoch);
                    }
                    Ok(None) => {}
                    Err(e) => warn!(room = room_id, error = %e, "could not report the room joined"),
                },
                Some(RoomEvent::TakenOver { room_id, epoch }) => {
                    epochs.insert(room_id, epoch);
                }
                Some(RoomEvent::Frames(batch)) => store_frames(&dir, &room, &epochs, batch).await,
                Some(RoomEvent::Image { room_id, image, sessions, ttl, why }) => {
                    let epoch = epochs.get(&room_id).copied();
                    let owned = match epoch {
                        Some(epoch) => store_image(&dir, &room, room_id, epoch, &image, &sessions, ttl).await,
                        // Not yet reported joined: nothing to fail over, and ours.
                        None => true,
                    };
                    let answer = match (why, epoch) {
                        (ImageWhy::HandOff, Some(epoch)) if owned => {
                            match hand_over(&dir, &server_id, room_id, epoch).await {
                                true => RoomInput::HandedOff { room_id },
                                false => RoomInput::Ownership { room_id, owned },
                            }
                        }
                        (ImageWhy::Checkpoint, _) if owned => continue,
                        _ => RoomInput::Ownership { room_id, owned },
                    };
                    let _ = room.pool.try_send(room_id, answer);
                }
                Some(RoomEvent::SeatsOpen { room_id, free }) => {
                    if let Err(e) = dir.open_seats(room_id, &server_id, free).await {
                        warn!(room = room_id, error = %e, "could not report the room's open seats");
                    }
                }
                Some(RoomEvent::Closed(closed)) => {
                    let room_id = closed.room_id;
                    if let Some(outcome) = closed.outcome {
                        let record = MatchRecord {
                            room_id,
                            mode: closed.mode,
                            players: outcome
                                .players
                                .iter()
                                .map(|&(player_id, slot)| MatchPlayer { player_id, slot })
                                .collect(),
                            result: outcome.result,
                            ended_ms: crate::unix_ms(),
                        };
                        if let Err(e) = dir.store_match_result(record, result_ttl).await {
                            warn!(room = room_id, error = %e, "could not store the match result");
                        }
                    }
                    // Fenced: a room reassigned to another server since is not ours to close.
                    let closed = match epochs.remove(&room_id) {
                        Some(epoch) => dir.close_room_at(room_id, epoch).await.map(|_| ()),
                        None => dir.close_room(room_id).await,
                    };
                    if let Err(e) = closed {
                        warn!(room = room_id, error = %e, "could not close the room's directory record");
                    }
                }
            },
            _ = stop.changed() => return,
        }
    }
}
