//! `play`: one bot — log in, queue, join, play for the duration, leave — then print what it saw.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tickroom_protocol::connect::GatewayClient;
use tickroom_protocol::token::encode_hex;
use tokio::sync::watch;

use crate::bot::{run_bot, BotConfig, BotContext, Source, MATCHMAKING_TIMEOUT};
use crate::cli::PlayArgs;
use crate::error::BotError;
use crate::game_bot::GameBotFactory;
use crate::link::LinkConfig;
use crate::stats::{max_ms, quantile_ms, BotOutcome, LiveStats};
use crate::swarm::transport_name;

/// Slack after matchmaking + duration before the bot gives up.
const PLAY_DEADLINE_SLACK: Duration = Duration::from_secs(30);
/// Result bytes shown in hex; longer results are cut (their length is printed in full).
const MATCH_RESULT_HEX_MAX_BYTES: usize = 64;

/// Plays one bot with the game `factory` picks; returns its outcome (printed by [`summary`]).
pub async fn run_play(args: &PlayArgs, factory: GameBotFactory) -> BotOutcome {
    let (stop_tx, stop) = watch::channel(false);
    let ctrl_c = tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            let _ = stop_tx.send(true);
        }
    });
    let gateway = match GatewayClient::with_options(&args.server, None, args.tls_pin.as_ref()) {
        Ok(g) => g,
        Err(e) => {
            ctrl_c.abort();
            return BotOutcome {
                error: Some(BotError::from(&e)),
                ..BotOutcome::default()
            };
        }
    };
    let config = BotConfig {
        index: 0,
        device_id: args
            .device_id
            .clone()
            .unwrap_or_else(|| format!("{:032x}", rand::random::<u128>())),
        mode: args.mode.clone(),
        transport: args.transport.into(),
        input_hz: None,
        ping_interval: tickroom_protocol::SessionConfig::default().ping_interval,
        play_for: args.duration,
        link: LinkConfig::default(),
        drop_per_s: 0.0,
        seed: rand::random(),
        give_up_at: Instant::now() + MATCHMAKING_TIMEOUT + args.duration + PLAY_DEADLINE_SLACK,
        show_queue: true,
    };
    let ctx = BotContext {
        sources: Arc::new([Source::system(Arc::new([gateway]), None)]),
        live: Arc::new(LiveStats::default()),
        stop,
        factory,
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
    if let Some(result) = &o.match_result {
        lines.push(match_result_line(result));
    }
    if let Some(report) = &o.game_report {
        lines.push(format!("  {report}"));
    }
    lines.push(format!(
        "  error           {}",
        o.error.map_or("none", |e| e.name())
    ));
    lines.join("\n")
}

/// `  match ended     result 5 bytes: 0a0b0c0d0e` (hex cut after
/// [`MATCH_RESULT_HEX_MAX_BYTES`]).
fn match_result_line(result: &[u8]) -> String {
    let shown = &result[..result.len().min(MATCH_RESULT_HEX_MAX_BYTES)];
    let cut = if shown.len() < result.len() {
        "..."
    } else {
        ""
    };
    format!(
        "  match ended     result {} bytes: {}{cut}",
        result.len(),
        encode_hex(shown)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn match_results_print_as_length_and_hex() {
        assert_eq!(
            match_result_line(&[0x0a, 0xff]),
            "  match ended     result 2 bytes: 0aff"
        );
        assert_eq!(match_result_line(&[]), "  match ended     result 0 bytes: ");
        let long = match_result_line(&[1; 100]);
        assert!(long.starts_with("  match ended     result 100 bytes: 0101"));
        assert!(long.ends_with("..."));
        assert_eq!(
            long.len(),
            "  match ended     result 100 bytes: ".len() + 128 + 3
        );
    }
}
