//! `play`: one bot — log in, queue, join, play for the duration, leave — then print what it saw.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tickroom_protocol::connect::GatewayClient;
use tokio::sync::watch;

use crate::bot::{run_bot, BotConfig, BotContext, MATCHMAKING_TIMEOUT};
use crate::cli::PlayArgs;
use crate::link::LinkConfig;
use crate::stats::{max_ms, quantile_ms, BotOutcome, LiveStats};
use crate::swarm::transport_name;

/// Slack after matchmaking + duration before the bot gives up.
const PLAY_DEADLINE_SLACK: Duration = Duration::from_secs(30);

/// Plays one bot; returns its outcome (printed by [`summary`]).
pub async fn run_play(args: &PlayArgs) -> BotOutcome {
    let (stop_tx, stop) = watch::channel(false);
    let ctrl_c = tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            let _ = stop_tx.send(true);
        }
    });
    let config = BotConfig {
        index: 0,
        device_id: args
            .device_id
            .clone()
            .unwrap_or_else(|| format!("play-{:016x}", rand::random::<u64>())),
        mode: args.mode.clone(),
        transport: args.transport.into(),
        input_hz: None,
        play_for: args.duration,
        link: LinkConfig::default(),
        drop_per_s: 0.0,
        seed: rand::random(),
        give_up_at: Instant::now() + MATCHMAKING_TIMEOUT + args.duration + PLAY_DEADLINE_SLACK,
    };
    let ctx = BotContext {
        gateways: Arc::new([GatewayClient::new(&args.server)]),
        quic: None,
        live: Arc::new(LiveStats::default()),
        stop,
    };
    let outcome = run_bot(config, ctx).await;
    ctrl_c.abort();
    outcome
}

/// A readable summary of one bot's run.
pub fn summary(args: &PlayArgs, o: &BotOutcome) -> String {
    let m = &o.measurements;
    let ms = |v: Option<f64>| v.map_or_else(|| "-".to_string(), |v| format!("{v:.2}"));
    let lockstep = m.frames > 0;
    let mut lines = Vec::new();
    lines.push(format!(
        "mode {} over {}: {}",
        args.mode,
        transport_name(args.transport.into()),
        match o.room_id {
            Some(room) if o.joined => format!("joined room {room}, played {:.1} s", m.played_s),
            _ => "did not join".to_string(),
        }
    ));
    lines.push(format!(
        "  {}  p50 {} ms  p99 {} ms  max {} ms  ({} samples)",
        if lockstep {
            "frame delivery"
        } else {
            "input->ack rtt"
        },
        ms(quantile_ms(&m.rtt, 0.5)),
        ms(quantile_ms(&m.rtt, 0.99)),
        ms(max_ms(&m.rtt)),
        m.rtt.len()
    ));
    lines.push(format!(
        "  pong rtt        p50 {} ms  p99 {} ms",
        ms(quantile_ms(&m.pong, 0.5)),
        ms(quantile_ms(&m.pong, 0.99))
    ));
    lines.push(format!(
        "  received        {} snapshots, {} frames; interval jitter p99 {} ms",
        m.snapshots,
        m.frames,
        ms(quantile_ms(&m.jitter, 0.99))
    ));
    let per_s = |b: u64| {
        if m.played_s > 0.0 {
            format!("{:.0}", b as f64 / m.played_s)
        } else {
            "-".to_string()
        }
    };
    lines.push(format!(
        "  bytes/s         up {}  down {}",
        per_s(m.bytes_out),
        per_s(m.bytes_in)
    ));
    lines.push(format!(
        "  desyncs {}  late frame inputs {}  reconnects {}  bad data {}",
        m.desyncs, m.late_inputs, m.reconnects, m.bad_data
    ));
    lines.push(format!(
        "  error           {}",
        o.error.as_deref().unwrap_or("none")
    ));
    lines.join("\n")
}
