//! The match formation loop: every `MATCHMAKER_INTERVAL_MS`, one atomic directory call per
//! mode turns queued players into placed matches. Any number of gateways may run it at once.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::MissedTickBehavior;

use crate::directory::MatchRequest;
use crate::{millis, now_ms, Gateway};

/// Time between two formation passes, in ms.
pub const MATCHMAKER_INTERVAL_MS: u64 = 50;
/// Most matches one pass forms per mode (the rest wait for the next pass).
pub const MAX_MATCHES_PER_PASS: usize = 1_000;
/// How often idle per-IP rate-limit entries are forgotten, in ms.
pub const RATE_LIMIT_SWEEP_INTERVAL_MS: u64 = 10_000;

/// Runs formation passes until `shutdown` becomes `true` or its sender is dropped.
pub async fn run_matchmaker(gw: Arc<Gateway>, mut shutdown: watch::Receiver<bool>) {
    let mut interval = tokio::time::interval(Duration::from_millis(MATCHMAKER_INTERVAL_MS));
    interval.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut last_limiter_sweep_ms = now_ms();
    loop {
        if *shutdown.borrow() {
            break;
        }
        tokio::select! {
            _ = interval.tick() => {
                gw.match_pass().await;
                let now = now_ms();
                if now.saturating_sub(last_limiter_sweep_ms) >= RATE_LIMIT_SWEEP_INTERVAL_MS {
                    last_limiter_sweep_ms = now;
                    gw.limiter.retain_recent();
                    gw.limiter.shrink_to_fit();
                    gw.code_limiter.retain_recent();
                    gw.code_limiter.shrink_to_fit();
                }
            }
            changed = shutdown.changed() => {
                if changed.is_err() {
                    break;
                }
            }
        }
    }
    tracing::debug!("matchmaker stopped");
}

impl Gateway {
    /// One formation pass over every mode; returns how many matches it formed. Directory
    /// errors are counted and logged, never fatal.
    pub async fn match_pass(&self) -> usize {
        let mut formed = 0;
        for mode in self.config.modes.iter() {
            let now = now_ms();
            let request = MatchRequest {
                mode: mode.name.clone(),
                players: usize::from(mode.players),
                min_players: usize::from(mode.min_players),
                wait_ms: u64::from(mode.matchmaking_wait_s).saturating_mul(1000),
                abandon_after_ms: millis(self.abandon_after()),
                now_ms: now,
                max_matches: MAX_MATCHES_PER_PASS,
                join_window_ms: millis(self.join_window(mode)),
                seed: rand::random(),
                rules: mode.matchmaking.clone(),
                teams: usize::from(mode.teams),
            };
            match self.directory.form_matches(request).await {
                Ok(formation) => {
                    self.metrics
                        .set_queue_length(&mode.name, formation.still_queued);
                    for m in &formation.matches {
                        tracing::info!(
                            room_id = m.room_id,
                            server_id = %m.server_id,
                            mode = %mode.name,
                            players = m.players.len(),
                            "match formed"
                        );
                        self.metrics
                            .matched_players
                            .fetch_add(m.players.len() as u64, Ordering::Relaxed);
                        self.metrics.record_queue_times(
                            m.players.iter().map(|p| now.saturating_sub(p.enqueued_ms)),
                        );
                    }
                    self.metrics
                        .matches
                        .fetch_add(formation.matches.len() as u64, Ordering::Relaxed);
                    formed += formation.matches.len();
                }
                Err(e) => {
                    self.metrics
                        .directory_errors
                        .fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(mode = %mode.name, error = %e, "match formation failed");
                }
            }
        }
        formed
    }
}
