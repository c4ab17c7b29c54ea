//! Gateway counters and the queue-time histogram, rendered as Prometheus text.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};

use hdrhistogram::Histogram;
use parking_lot::Mutex;

use crate::prom;

/// Longest queue time the histogram resolves, in ms (longer values are clamped).
const QUEUE_TIME_MAX_MS: u64 = 60 * 60 * 1000;
/// Significant decimal digits the queue-time histogram keeps.
const QUEUE_TIME_SIGNIFICANT_DIGITS: u8 = 2;

/// How a player logged in, for the login counter's label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LoginMethod {
    Device,
    Custom,
    Refresh,
}

impl LoginMethod {
    fn label(self) -> &'static str {
        match self {
            LoginMethod::Device => "device",
            LoginMethod::Custom => "custom",
            LoginMethod::Refresh => "refresh",
        }
    }
}

const METHODS: [LoginMethod; 3] = [
    LoginMethod::Device,
    LoginMethod::Custom,
    LoginMethod::Refresh,
];

/// Every gateway metric; cheap to update from any task.
pub(crate) struct Metrics {
    logins: [AtomicU64; 3],
    pub(crate) logins_rejected: AtomicU64,
    pub(crate) tickets: AtomicU64,
    pub(crate) cancels: AtomicU64,
    pub(crate) matches: AtomicU64,
    pub(crate) matched_players: AtomicU64,
    pub(crate) rate_limited: AtomicU64,
    pub(crate) directory_errors: AtomicU64,
    queue_length: Mutex<BTreeMap<String, usize>>,
    queue_time_ms: Mutex<Histogram<u64>>,
}

impl Metrics {
    pub(crate) fn new<'a>(modes: impl Iterator<Item = &'a str>) -> Metrics {
        let histogram =
            Histogram::new_with_bounds(1, QUEUE_TIME_MAX_MS, QUEUE_TIME_SIGNIFICANT_DIGITS)
                .expect("constant histogram bounds are valid");
        Metrics {
            logins: Default::default(),
            logins_rejected: AtomicU64::new(0),
            tickets: AtomicU64::new(0),
            cancels: AtomicU64::new(0),
            matches: AtomicU64::new(0),
            matched_players: AtomicU64::new(0),
            rate_limited: AtomicU64::new(0),
            directory_errors: AtomicU64::new(0),
            queue_length: Mutex::new(modes.map(|m| (m.to_owned(), 0)).collect()),
            queue_time_ms: Mutex::new(histogram),
        }
    }

    pub(crate) fn login(&self, method: LoginMethod) {
        self.logins[method as usize].fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn set_queue_length(&self, mode: &str, length: usize) {
        if let Some(slot) = self.queue_length.lock().get_mut(mode) {
            *slot = length;
        }
    }

    /// Players the last matchmaking pass left waiting in `mode`'s queue.
    pub(crate) fn queue_length(&self, mode: &str) -> usize {
        self.queue_length.lock().get(mode).copied().unwrap_or(0)
    }

    pub(crate) fn record_queue_times(&self, waits_ms: impl Iterator<Item = u64>) {
        let mut h = self.queue_time_ms.lock();
        for ms in waits_ms {
            h.saturating_record(ms.clamp(1, QUEUE_TIME_MAX_MS));
        }
    }

    /// Encodes every gateway metric (through `prometheus-client`, see [`crate::prom`]).
    pub(crate) fn encode(&self, e: &mut prom::Encoder) -> std::fmt::Result {
        let n = |v: &AtomicU64| v.load(Ordering::Relaxed);
        prom::counter_by(
            e,
            "tickroom_gateway_logins",
            "Sessions issued, by login method.",
            "method",
            METHODS.map(|m| (m.label(), self.logins[m as usize].load(Ordering::Relaxed))),
        )?;
        prom::counter(
            e,
            "tickroom_gateway_logins_rejected",
            "Login attempts refused.",
            n(&self.logins_rejected),
        )?;
        prom::counter(
            e,
            "tickroom_gateway_tickets",
            "Matchmaking tickets created.",
            n(&self.tickets),
        )?;
        prom::counter(
            e,
            "tickroom_gateway_cancels",
            "Matchmaking tickets cancelled.",
            n(&self.cancels),
        )?;
        prom::counter(
            e,
            "tickroom_gateway_matches",
            "Matches formed by this gateway.",
            n(&self.matches),
        )?;
        prom::counter(
            e,
            "tickroom_gateway_matched_players",
            "Players placed by this gateway.",
            n(&self.matched_players),
        )?;
        prom::counter(
            e,
            "tickroom_gateway_rate_limited",
            "Requests refused by the per-IP rate limit.",
            n(&self.rate_limited),
        )?;
        prom::counter(
            e,
            "tickroom_gateway_directory_errors",
            "Directory (Redis) calls that failed.",
            n(&self.directory_errors),
        )?;
        let lengths: Vec<(String, u64)> = self
            .queue_length
            .lock()
            .iter()
            .map(|(mode, len)| (mode.clone(), *len as u64))
            .collect();
        prom::gauge_by(
            e,
            "tickroom_gateway_queue_length",
            "Players waiting, by mode.",
            "mode",
            lengths.iter().map(|(m, v)| (m.as_str(), *v)),
        )?;
        let h = self.queue_time_ms.lock().clone();
        prom::histogram_seconds(
            e,
            "tickroom_gateway_queue_wait",
            "Time from queueing to placement.",
            &h,
            1e-3,
            &prom::WAIT_BUCKETS_S,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_every_family_with_values() {
        let m = std::sync::Arc::new(Metrics::new(["arena", "duel"].into_iter()));
        m.login(LoginMethod::Custom);
        m.set_queue_length("duel", 3);
        m.set_queue_length("not-a-mode", 9);
        m.record_queue_times([10, 20, 30].into_iter());
        let mut out = String::new();
        prom::encode_into(&mut out, m, |m, e| m.encode(e));
        assert!(
            out.contains("tickroom_gateway_logins_total{method=\"custom\"} 1\n"),
            "{out}"
        );
        assert!(out.contains("tickroom_gateway_logins_total{method=\"device\"} 0\n"));
        assert!(
            out.contains("tickroom_gateway_queue_length{mode=\"duel\"} 3\n"),
            "{out}"
        );
        assert!(out.contains("tickroom_gateway_queue_length{mode=\"arena\"} 0\n"));
        assert!(!out.contains("not-a-mode"));
        assert!(
            out.contains("tickroom_gateway_queue_wait_seconds_bucket{le=\"0.025\"} 2\n"),
            "{out}"
        );
        assert!(
            out.contains("tickroom_gateway_queue_wait_seconds_count 3\n"),
            "{out}"
        );
    }
}
