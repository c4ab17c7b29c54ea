//! Gateway counters and the queue-time histogram, rendered as Prometheus text.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};

use hdrhistogram::Histogram;
use parking_lot::Mutex;

/// Longest queue time the histogram resolves, in ms (longer values are clamped).
const QUEUE_TIME_MAX_MS: u64 = 60 * 60 * 1000;
/// Significant decimal digits the queue-time histogram keeps.
const QUEUE_TIME_SIGNIFICANT_DIGITS: u8 = 2;
/// Quantiles reported for the queue time.
const QUANTILES: &[f64] = &[0.5, 0.9, 0.99, 0.999];

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

    pub(crate) fn record_queue_times(&self, waits_ms: impl Iterator<Item = u64>) {
        let mut h = self.queue_time_ms.lock();
        for ms in waits_ms {
            h.saturating_record(ms.clamp(1, QUEUE_TIME_MAX_MS));
        }
    }

    pub(crate) fn render(&self, out: &mut String) {
        let counter = |out: &mut String, name: &str, help: &str, value: &AtomicU64| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
            let _ = writeln!(out, "{name} {}", value.load(Ordering::Relaxed));
        };
        let _ = writeln!(
            out,
            "# HELP tickroom_gateway_logins_total Sessions issued, by login method.\n\
             # TYPE tickroom_gateway_logins_total counter"
        );
        for method in METHODS {
            let _ = writeln!(
                out,
                "tickroom_gateway_logins_total{{method=\"{}\"}} {}",
                method.label(),
                self.logins[method as usize].load(Ordering::Relaxed)
            );
        }
        counter(
            out,
            "tickroom_gateway_logins_rejected_total",
            "Login attempts refused.",
            &self.logins_rejected,
        );
        counter(
            out,
            "tickroom_gateway_tickets_total",
            "Matchmaking tickets created.",
            &self.tickets,
        );
        counter(
            out,
            "tickroom_gateway_cancels_total",
            "Matchmaking tickets cancelled.",
            &self.cancels,
        );
        counter(
            out,
            "tickroom_gateway_matches_total",
            "Matches formed by this gateway.",
            &self.matches,
        );
        counter(
            out,
            "tickroom_gateway_matched_players_total",
            "Players placed by this gateway.",
            &self.matched_players,
        );
        counter(
            out,
            "tickroom_gateway_rate_limited_total",
            "Requests refused by the per-IP rate limit.",
            &self.rate_limited,
        );
        counter(
            out,
            "tickroom_gateway_directory_errors_total",
            "Directory calls that failed.",
            &self.directory_errors,
        );

        let _ = writeln!(
            out,
            "# HELP tickroom_gateway_queue_length Players waiting, by mode.\n\
             # TYPE tickroom_gateway_queue_length gauge"
        );
        for (mode, length) in self.queue_length.lock().iter() {
            let _ = writeln!(
                out,
                "tickroom_gateway_queue_length{{mode=\"{mode}\"}} {length}"
            );
        }

        let h = self.queue_time_ms.lock();
        let _ = writeln!(
            out,
            "# HELP tickroom_gateway_queue_time_ms Time from queueing to placement, in ms.\n\
             # TYPE tickroom_gateway_queue_time_ms summary"
        );
        for q in QUANTILES {
            let _ = writeln!(
                out,
                "tickroom_gateway_queue_time_ms{{quantile=\"{q}\"}} {}",
                h.value_at_quantile(*q)
            );
        }
        let _ = writeln!(out, "tickroom_gateway_queue_time_ms_count {}", h.len());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_every_family_with_values() {
        let m = Metrics::new(["arena", "duel"].into_iter());
        m.login(LoginMethod::Custom);
        m.set_queue_length("duel", 3);
        m.set_queue_length("not-a-mode", 9);
        m.record_queue_times([10, 20, 30].into_iter());
        let mut out = String::new();
        m.render(&mut out);
        assert!(
            out.contains("tickroom_gateway_logins_total{method=\"custom\"} 1\n"),
            "{out}"
        );
        assert!(out.contains("tickroom_gateway_logins_total{method=\"device\"} 0\n"));
        assert!(out.contains("tickroom_gateway_queue_length{mode=\"duel\"} 3\n"));
        assert!(out.contains("tickroom_gateway_queue_length{mode=\"arena\"} 0\n"));
        assert!(!out.contains("not-a-mode"));
        assert!(
            out.contains("tickroom_gateway_queue_time_ms{quantile=\"0.5\"} 20\n"),
            "{out}"
        );
        assert!(out.contains("tickroom_gateway_queue_time_ms_count 3\n"));
    }
}
