//! Room-server metrics: lock-free counters and per-worker tick histograms, rendered as
//! Prometheus text on `/metrics`.

use std::fmt::Write;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

use hdrhistogram::Histogram;
use parking_lot::Mutex;

/// Highest tick duration the histograms track, in microseconds (1 s).
const MAX_TRACKED_TICK_US: u64 = 1_000_000;

/// A monotonically increasing counter.
#[derive(Debug, Default)]
pub struct Counter(AtomicU64);

impl Counter {
    /// Adds `n`.
    #[inline]
    pub fn add(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }
    /// Adds one.
    #[inline]
    pub fn inc(&self) {
        self.add(1);
    }
    /// The current value.
    pub fn value(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// A counter per game mode (rare events: desyncs, game panics), rendered with a `mode` label.
#[derive(Debug, Default)]
pub struct ModeCounter(Mutex<std::collections::BTreeMap<String, u64>>);

impl ModeCounter {
    /// Adds `n` for `mode`.
    pub fn add(&self, mode: &str, n: u64) {
        let mut map = self.0.lock();
        match map.get_mut(mode) {
            Some(v) => *v += n,
            None => {
                map.insert(mode.to_string(), n);
            }
        }
    }
    /// The count for `mode`.
    pub fn value(&self, mode: &str) -> u64 {
        self.0.lock().get(mode).copied().unwrap_or(0)
    }
    /// The sum over every mode.
    pub fn total(&self) -> u64 {
        self.0.lock().values().sum()
    }
    fn render(&self, out: &mut String, name: &str, help: &str) {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
        for (mode, v) in self.0.lock().iter() {
            let _ = writeln!(out, "{name}{{mode=\"{mode}\"}} {v}");
        }
    }
}

/// A value that goes up and down.
#[derive(Debug, Default)]
pub struct Gauge(AtomicI64);

impl Gauge {
    /// Adds `n` (may be negative).
    pub fn add(&self, n: i64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }
    /// The current value.
    pub fn value(&self) -> i64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// Tick timings of one worker thread; only that worker records, `/metrics` reads.
#[derive(Debug)]
pub struct TickStats {
    /// Time spent in one room's tick, µs.
    pub duration_us: Histogram<u64>,
    /// How late a tick started against its schedule, µs.
    pub lateness_us: Histogram<u64>,
    /// Tick durations since the admission monitor last looked, µs.
    pub recent_us: Histogram<u64>,
}

impl Default for TickStats {
    fn default() -> Self {
        let h = || Histogram::new_with_max(MAX_TRACKED_TICK_US, 3).expect("valid histogram bounds");
        TickStats {
            duration_us: h(),
            lateness_us: h(),
            recent_us: h(),
        }
    }
}

/// Every room-server metric.
#[derive(Debug, Default)]
pub struct Metrics {
    pub rooms: Gauge,
    pub rooms_created: Counter,
    pub connections_ws: Gauge,
    pub connections_quic: Gauge,
    pub sessions: Gauge,
    pub joins: Counter,
    pub resumes: Counter,
    pub handshake_failures: Counter,
    pub messages_in: Counter,
    pub messages_out: Counter,
    pub bytes_in: Counter,
    pub bytes_out: Counter,
    pub dropped_inputs: Counter,
    pub conflated_snapshots: Counter,
    pub replayed_messages: Counter,
    pub late_frame_inputs: Counter,
    /// Players told they desynced, by mode.
    pub desyncs: ModeCounter,
    /// Relay frames whose checksums disagreed with nobody to blame (two players), by mode.
    pub checksum_disagreements: ModeCounter,
    /// Rooms ended because their game panicked, by mode.
    pub game_panics: ModeCounter,
    /// Custom messages refused (too big, too fast), by the connection.
    pub refused_messages: Counter,
    pub tick_overruns: Counter,
    pub ticks: Counter,
    pub slow_consumers: Counter,
    pub server_busy: Counter,
    pub rate_limited: Counter,
    pub refused_connections: Counter,
    /// 1 while admission control refuses new rooms.
    pub overloaded: Gauge,
    /// One per worker thread.
    pub tick_stats: Vec<Mutex<TickStats>>,
}

impl Metrics {
    /// Metrics for `workers` worker threads.
    pub fn new(workers: usize) -> Self {
        Metrics {
            tick_stats: (0..workers)
                .map(|_| Mutex::new(TickStats::default()))
                .collect(),
            ..Metrics::default()
        }
    }

    /// Merged tick duration quantile over all workers, in milliseconds (None before any tick).
    pub fn tick_duration_ms(&self, q: f64) -> Option<f64> {
        let mut all = Histogram::<u64>::new_with_max(MAX_TRACKED_TICK_US, 3).ok()?;
        for w in &self.tick_stats {
            let _ = all.add(&w.lock().duration_us);
        }
        (!all.is_empty()).then(|| all.value_at_quantile(q) as f64 / 1000.0)
    }

    /// p99 of tick durations since the last call, in ms, and resets that window.
    pub fn take_recent_tick_p99_ms(&self) -> Option<f64> {
        let mut all = Histogram::<u64>::new_with_max(MAX_TRACKED_TICK_US, 3).ok()?;
        for w in &self.tick_stats {
            let mut w = w.lock();
            let _ = all.add(&w.recent_us);
            w.recent_us.reset();
        }
        (!all.is_empty()).then(|| all.value_at_quantile(0.99) as f64 / 1000.0)
    }

    /// Renders Prometheus text exposition; `extra` lines (queue depths) are appended.
    pub fn render(&self, out: &mut String, queue_depths: &[usize]) {
        let counters: [(&str, &str, &Counter); 19] = [
            (
                "tickroom_rooms_created_total",
                "rooms created",
                &self.rooms_created,
            ),
            ("tickroom_joins_total", "players joined", &self.joins),
            ("tickroom_resumes_total", "sessions resumed", &self.resumes),
            (
                "tickroom_handshake_failures_total",
                "handshakes refused",
                &self.handshake_failures,
            ),
            (
                "tickroom_messages_in_total",
                "client messages received",
                &self.messages_in,
            ),
            (
                "tickroom_messages_out_total",
                "server messages sent",
                &self.messages_out,
            ),
            ("tickroom_bytes_in_total", "bytes received", &self.bytes_in),
            ("tickroom_bytes_out_total", "bytes sent", &self.bytes_out),
            (
                "tickroom_dropped_messages_total",
                "inputs dropped on a full room queue",
                &self.dropped_inputs,
            ),
            (
                "tickroom_conflated_snapshots_total",
                "unsent snapshots replaced by newer ones",
                &self.conflated_snapshots,
            ),
            (
                "tickroom_replayed_messages_total",
                "messages refused by the replay window",
                &self.replayed_messages,
            ),
            (
                "tickroom_late_frame_inputs_total",
                "lockstep inputs that missed their frame",
                &self.late_frame_inputs,
            ),
            (
                "tickroom_refused_messages_total",
                "custom messages refused (too big or too fast for the mode)",
                &self.refused_messages,
            ),
            (
                "tickroom_tick_overruns_total",
                "ticks skipped because a room fell behind",
                &self.tick_overruns,
            ),
            ("tickroom_ticks_total", "room ticks run", &self.ticks),
            (
                "tickroom_slow_consumers_total",
                "connections closed for falling behind",
                &self.slow_consumers,
            ),
            (
                "tickroom_server_busy_total",
                "joins refused with ServerBusy",
                &self.server_busy,
            ),
            (
                "tickroom_rate_limited_messages_total",
                "messages dropped by rate limits",
                &self.rate_limited,
            ),
            (
                "tickroom_refused_connections_total",
                "connections refused by the per-IP limit",
                &self.refused_connections,
            ),
        ];
        for (name, help, c) in counters {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {}",
                c.value()
            );
        }
        self.desyncs.render(
            out,
            "tickroom_desyncs_total",
            "players told their lockstep checksum diverged",
        );
        self.checksum_disagreements.render(
            out,
            "tickroom_checksum_disagreements_total",
            "lockstep frames whose checksums disagreed with no majority to blame",
        );
        self.game_panics.render(
            out,
            "tickroom_game_panics_total",
            "rooms ended because their game panicked",
        );
        let gauges: [(&str, &str, i64); 5] = [
            (
                "tickroom_overloaded",
                "1 while new rooms are refused (tick p99 over budget)",
                self.overloaded.value(),
            ),
            ("tickroom_rooms", "rooms open", self.rooms.value()),
            (
                "tickroom_sessions",
                "player sessions (connected or in grace)",
                self.sessions.value(),
            ),
            (
                "tickroom_connections_ws",
                "open WebSocket connections",
                self.connections_ws.value(),
            ),
            (
                "tickroom_connections_quic",
                "open QUIC connections",
                self.connections_quic.value(),
            ),
        ];
        for (name, help, v) in gauges {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {v}");
        }
        let _ = writeln!(
            out,
            "# HELP tickroom_tick_duration_ms time spent in one room tick\n# TYPE tickroom_tick_duration_ms summary"
        );
        for q in [0.5, 0.99, 0.999] {
            if let Some(v) = self.tick_duration_ms(q) {
                let _ = writeln!(out, "tickroom_tick_duration_ms{{quantile=\"{q}\"}} {v:.3}");
            }
        }
        let mut late = Histogram::<u64>::new_with_max(MAX_TRACKED_TICK_US, 3).expect("bounds");
        for w in &self.tick_stats {
            let _ = late.add(&w.lock().lateness_us);
        }
        let _ = writeln!(
            out,
            "# HELP tickroom_tick_jitter_ms how late ticks started against their schedule\n# TYPE tickroom_tick_jitter_ms summary"
        );
        if !late.is_empty() {
            for q in [0.5, 0.99] {
                let v = late.value_at_quantile(q) as f64 / 1000.0;
                let _ = writeln!(out, "tickroom_tick_jitter_ms{{quantile=\"{q}\"}} {v:.3}");
            }
        }
        let _ = writeln!(
            out,
            "# HELP tickroom_room_queue_depth messages waiting for each room worker\n# TYPE tickroom_room_queue_depth gauge"
        );
        for (i, d) in queue_depths.iter().enumerate() {
            let _ = writeln!(out, "tickroom_room_queue_depth{{worker=\"{i}\"}} {d}");
        }
        let _ = writeln!(
            out,
            "# HELP tickroom_process_rss_bytes resident memory of the process\n# TYPE tickroom_process_rss_bytes gauge"
        );
        if let Some(rss) = process_rss_bytes() {
            let _ = writeln!(out, "tickroom_process_rss_bytes {rss}");
        }
    }
}

/// Resident set size from /proc (Linux); None elsewhere.
pub fn process_rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_and_quantiles() {
        let m = Metrics::new(2);
        m.joins.add(3);
        m.tick_stats[1].lock().duration_us.record(2000).unwrap();
        let mut out = String::new();
        m.render(&mut out, &[4, 0]);
        assert!(out.contains("tickroom_joins_total 3"));
        assert!(out.contains("tickroom_tick_duration_ms{quantile=\"0.99\"} 2.0"));
        assert!(out.contains("tickroom_room_queue_depth{worker=\"0\"} 4"));
    }
}
