//! Room-server metrics: lock-free counters and per-worker tick histograms, rendered as
//! Prometheus text on `/metrics`. A scrape reads the histograms from its own copy, refreshed
//! at most once per `TICK_COPY_MAX_AGE` without ever waiting for a worker's lock.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use parking_lot::Mutex;
use tickroom_gateway::prom;

/// Highest tick duration the histograms track, in microseconds (1 s).
const MAX_TRACKED_TICK_US: u64 = 1_000_000;
/// Highest handshake duration the histogram tracks, in microseconds (2 min).
const MAX_TRACKED_HANDSHAKE_US: u64 = 120_000_000;
/// How old the scrapes' copy of the workers' tick histograms may get: scrapes at any rate
/// touch each worker's lock at most once per this interval.
pub const TICK_COPY_MAX_AGE: Duration = Duration::from_secs(1);

/// An empty tick histogram (µs, 3 significant figures).
fn tick_histogram() -> Histogram<u64> {
    Histogram::new_with_max(MAX_TRACKED_TICK_US, 3).expect("valid histogram bounds")
}

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
    /// Every mode's count.
    pub fn values(&self) -> Vec<(String, u64)> {
        self.0.lock().iter().map(|(m, v)| (m.clone(), *v)).collect()
    }
}

/// A value that goes up and down.
#[derive(Debug, Default)]
pub struct Gauge(AtomicI64);

impl Gauge {
    /// A gauge starting at `value`.
    pub fn new(value: i64) -> Self {
        Gauge(AtomicI64::new(value))
    }
    /// Sets it to `value`.
    pub fn set(&self, value: i64) {
        self.0.store(value, Ordering::Relaxed);
    }
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
    /// From an input's arrival to the end of the tick that answered it, µs.
    pub input_ack_us: Histogram<u64>,
}

impl Default for TickStats {
    fn default() -> Self {
        TickStats {
            duration_us: tick_histogram(),
            lateness_us: tick_histogram(),
            recent_us: tick_histogram(),
            input_ack_us: tick_histogram(),
        }
    }
}

/// The scrapes' copy of each worker's tick histograms; only `/metrics` locks it.
#[derive(Debug, Default)]
struct TickCopy {
    /// When the copy was last refreshed.
    taken: Option<Instant>,
    /// Per worker: durations, lateness and input-to-ack waits, µs.
    workers: Vec<(Histogram<u64>, Histogram<u64>, Histogram<u64>)>,
}

/// Every room-server metric.
#[derive(Debug, Default)]
pub struct Metrics {
    pub rooms: Gauge,
    pub rooms_created: Counter,
    /// Rooms this server took over from a dead owner's image.
    pub rooms_taken_over: Counter,
    /// Failover images stored in the directory.
    pub images_stored: Counter,
    /// Rooms this server stopped because they had moved to another server.
    pub rooms_moved_away: Counter,
    /// Rooms this server handed to another server as it shut down.
    pub rooms_handed_off: Counter,
    /// Failover images refused (corrupted, foreign or of a newer format): those rooms ended.
    pub images_refused: Counter,
    /// Failover images the directory refused: the room had moved to another owner.
    pub images_fenced: Counter,
    /// Failover images that could not be stored (the directory was unavailable).
    pub image_failures: Counter,
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
    /// Pre-login connections closed to make room for newer ones.
    pub prelogin_evictions: Counter,
    /// QUIC connections answered with a Retry (address validation).
    pub quic_retries: Counter,
    /// 1 while admission control refuses new rooms.
    pub overloaded: Gauge,
    /// Times a worker asked its state-sync rooms to halve their snapshot rate.
    pub snapshot_degradations: Counter,
    /// Per worker: the snapshot-rate divisor in force (1 = full rate).
    pub snapshot_divisor: Vec<Gauge>,
    /// One per worker thread.
    pub tick_stats: Vec<Mutex<TickStats>>,
    /// What scrapes read instead of `tick_stats`.
    scrape_copy: Mutex<TickCopy>,
    /// Handshake durations (accept to Welcome), µs.
    handshake_us: HandshakeTimes,
}

/// Handshake durations (accept to Welcome), µs.
#[derive(Debug)]
struct HandshakeTimes(Mutex<Histogram<u64>>);

impl Default for HandshakeTimes {
    fn default() -> Self {
        HandshakeTimes(Mutex::new(
            Histogram::new_with_max(MAX_TRACKED_HANDSHAKE_US, 2).expect("valid histogram bounds"),
        ))
    }
}

impl Metrics {
    /// Metrics for `workers` worker threads.
    pub fn new(workers: usize) -> Self {
        Metrics {
            tick_stats: (0..workers)
                .map(|_| Mutex::new(TickStats::default()))
                .collect(),
            snapshot_divisor: (0..workers).map(|_| Gauge::new(1)).collect(),
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

    /// Tick durations and lateness merged over all workers, for a scrape: from the scrapes'
    /// copy, refreshed when older than `TICK_COPY_MAX_AGE`. A worker's lock is tried, never
    /// waited for (the worker locks it after each tick): one that is busy keeps its last copy.
    fn scrape_ticks(&self) -> (Histogram<u64>, Histogram<u64>, Histogram<u64>) {
        let mut copy = self.scrape_copy.lock();
        let now = Instant::now();
        if copy
            .taken
            .is_none_or(|t| now.duration_since(t) >= TICK_COPY_MAX_AGE)
        {
            copy.workers.resize_with(self.tick_stats.len(), || {
                (tick_histogram(), tick_histogram(), tick_histogram())
            });
            for (worker, (duration, lateness, ack)) in self.tick_stats.iter().zip(&mut copy.workers)
            {
                if let Some(stats) = worker.try_lock() {
                    let _ = duration.set_to(&stats.duration_us);
                    let _ = lateness.set_to(&stats.lateness_us);
                    let _ = ack.set_to(&stats.input_ack_us);
                }
            }
            copy.taken = Some(now);
        }
        let (mut duration, mut lateness, mut ack) =
            (tick_histogram(), tick_histogram(), tick_histogram());
        for (d, l, a) in &copy.workers {
            let _ = duration.add(d);
            let _ = lateness.add(l);
            let _ = ack.add(a);
        }
        (duration, lateness, ack)
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

    /// Encodes every room-server metric (through `prometheus-client`, see
    /// `tickroom_gateway::prom`): counters, the per-mode counters, gauges, and the tick and
    /// handshake histograms (with buckets, so `histogram_quantile` aggregates over servers).
    pub fn encode(&self, e: &mut prom::Encoder, queue_depths: &[usize]) -> std::fmt::Result {
        let counters: [(&str, &str, &Counter); 29] = [
            (
                "tickroom_snapshot_degradations",
                "times a room worker asked its state-sync rooms to halve their snapshot rate (late ticks, a busy worker or late snapshots; each room stops at its mode's min_snapshot_hz)",
                &self.snapshot_degradations,
            ),
            (
                "tickroom_rooms_created",
                "rooms created",
                &self.rooms_created,
            ),
            (
                "tickroom_rooms_taken_over",
                "rooms this server took over from a dead owner's failover image",
                &self.rooms_taken_over,
            ),
            (
                "tickroom_images_refused",
                "failover images this server refused to take a room over from (corrupted, foreign or of a newer format); those rooms ended",
                &self.images_refused,
            ),
            (
                "tickroom_rooms_handed_off",
                "rooms this server handed to another server, live, as it shut down (players told room_moved resume there)",
                &self.rooms_handed_off,
            ),
            (
                "tickroom_rooms_moved_away",
                "rooms this server stopped (players told room_moved) because the directory had given them to another server: it was paused or cut off past its lease",
                &self.rooms_moved_away,
            ),
            (
                "tickroom_images_stored",
                "failover images of state-sync rooms stored in the directory (every checkpoint_interval_ms per room)",
                &self.images_stored,
            ),
            (
                "tickroom_images_fenced",
                "failover images the directory refused because the room had moved to another owner (this server no longer owns it)",
                &self.images_fenced,
            ),
            (
                "tickroom_image_failures",
                "failover images not stored because the directory was unavailable (failover of those rooms is suspended until it is back)",
                &self.image_failures,
            ),
            ("tickroom_joins", "players joined", &self.joins),
            ("tickroom_resumes", "sessions resumed", &self.resumes),
            (
                "tickroom_handshake_failures",
                "handshakes refused",
                &self.handshake_failures,
            ),
            (
                "tickroom_received_messages",
                "client messages received",
                &self.messages_in,
            ),
            (
                "tickroom_sent_messages",
                "server messages sent",
                &self.messages_out,
            ),
            ("tickroom_received_bytes", "bytes received", &self.bytes_in),
            ("tickroom_sent_bytes", "bytes sent", &self.bytes_out),
            (
                "tickroom_dropped_messages",
                "inputs dropped on a full room queue",
                &self.dropped_inputs,
            ),
            (
                "tickroom_conflated_snapshots",
                "unsent snapshots replaced by newer ones",
                &self.conflated_snapshots,
            ),
            (
                "tickroom_replayed_messages",
                "messages refused by the replay window",
                &self.replayed_messages,
            ),
            (
                "tickroom_late_frame_inputs",
                "lockstep inputs that missed their frame",
                &self.late_frame_inputs,
            ),
            (
                "tickroom_refused_messages",
                "custom messages refused (too big or too fast for the mode)",
                &self.refused_messages,
            ),
            (
                "tickroom_tick_overruns",
                "ticks skipped because a room fell behind",
                &self.tick_overruns,
            ),
            ("tickroom_ticks", "room ticks run", &self.ticks),
            (
                "tickroom_slow_consumers",
                "connections closed for falling behind",
                &self.slow_consumers,
            ),
            (
                "tickroom_server_busy",
                "joins refused with ServerBusy",
                &self.server_busy,
            ),
            (
                "tickroom_rate_limited_messages",
                "messages dropped by rate limits",
                &self.rate_limited,
            ),
            (
                "tickroom_refused_connections",
                "connections refused by the per-IP limit",
                &self.refused_connections,
            ),
            (
                "tickroom_prelogin_evictions",
                "connections not logged in, closed to make room for newer ones",
                &self.prelogin_evictions,
            ),
            (
                "tickroom_quic_retries",
                "QUIC connections asked to validate their address with a Retry",
                &self.quic_retries,
            ),
        ];
        for (name, help, c) in counters {
            prom::counter(e, name, help, c.value())?;
        }
        for (counter, name, help) in [
            (
                &self.desyncs,
                "tickroom_desyncs",
                "players told their lockstep checksum diverged",
            ),
            (
                &self.checksum_disagreements,
                "tickroom_checksum_disagreements",
                "lockstep frames whose checksums disagreed with no majority to blame",
            ),
            (
                &self.game_panics,
                "tickroom_game_panics",
                "rooms ended because their game panicked",
            ),
        ] {
            let values = counter.values();
            prom::counter_by(
                e,
                name,
                help,
                "mode",
                values.iter().map(|(m, n)| (m.as_str(), *n)),
            )?;
        }
        let gauges: [(&str, &str, i64); 4] = [
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
                "tickroom_connections",
                "open player connections",
                self.connections_ws.value() + self.connections_quic.value(),
            ),
        ];
        for (name, help, v) in gauges {
            prom::gauge(e, name, help, None, v)?;
        }
        prom::gauge_by(
            e,
            "tickroom_transport_connections",
            "open player connections by transport",
            "transport",
            [
                ("ws", self.connections_ws.value()),
                ("quic", self.connections_quic.value()),
            ],
        )?;
        let depths: Vec<(String, u64)> = queue_depths
            .iter()
            .enumerate()
            .map(|(i, d)| (i.to_string(), *d as u64))
            .collect();
        let divisors: Vec<(String, u64)> = self
            .snapshot_divisor
            .iter()
            .enumerate()
            .map(|(i, d)| (i.to_string(), d.value().max(1) as u64))
            .collect();
        prom::gauge_by(
            e,
            "tickroom_snapshot_divisor",
            "each room worker's snapshot-rate divisor (1 = every tick; rooms stop at their mode's min_snapshot_hz)",
            "worker",
            divisors.iter().map(|(w, d)| (w.as_str(), *d)),
        )?;
        prom::gauge_by(
            e,
            "tickroom_room_queue_depth",
            "messages waiting for each room worker",
            "worker",
            depths.iter().map(|(w, d)| (w.as_str(), *d)),
        )?;
        let (duration, late, input_ack) = self.scrape_ticks();
        prom::histogram_seconds(
            e,
            "tickroom_tick_duration",
            "time spent in one room tick",
            &duration,
            1e-6,
            &prom::TICK_BUCKETS_S,
        )?;
        prom::histogram_seconds(
            e,
            "tickroom_tick_lateness",
            "how late ticks started against their schedule (jitter)",
            &late,
            1e-6,
            &prom::TICK_BUCKETS_S,
        )?;
        prom::histogram_seconds(
            e,
            "tickroom_input_ack_wait",
            "time from an input's arrival to the end of the tick that answered it (the server's share of input-to-ack latency)",
            &input_ack,
            1e-6,
            &prom::TICK_BUCKETS_S,
        )?;
        let handshakes = self.handshake_us.0.lock().clone();
        prom::histogram_seconds(
            e,
            "tickroom_handshake_duration",
            "time from accept to Welcome of the connections that logged in",
            &handshakes,
            1e-6,
            &prom::WAIT_BUCKETS_S,
        )
    }

    /// Records one successful handshake's duration.
    pub fn record_handshake(&self, took: Duration) {
        let us = (took.as_micros() as u64).clamp(1, MAX_TRACKED_HANDSHAKE_US);
        let _ = self.handshake_us.0.lock().record(us);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    fn text(m: &Arc<Metrics>, depths: &'static [usize]) -> String {
        let mut out = String::new();
        prom::encode_into(&mut out, Arc::new((m.clone(), depths)), |(m, d), e| {
            m.encode(e, d)
        });
        out
    }

    #[test]
    fn renders_counters_and_bucketed_histograms() {
        let m = Arc::new(Metrics::new(2));
        m.joins.add(3);
        m.tick_stats[1].lock().duration_us.record(2000).unwrap();
        m.record_handshake(Duration::from_millis(30));
        let out = text(&m, &[4, 0]);
        assert!(out.contains("tickroom_joins_total 3\n"), "{out}");
        assert!(
            out.contains("tickroom_tick_duration_seconds_bucket{le=\"0.001\"} 0\n"),
            "{out}"
        );
        assert!(
            out.contains("tickroom_tick_duration_seconds_bucket{le=\"0.0025\"} 1\n"),
            "{out}"
        );
        assert!(
            out.contains("tickroom_handshake_duration_seconds_bucket{le=\"0.05\"} 1\n"),
            "{out}"
        );
        assert!(
            out.contains("tickroom_room_queue_depth{worker=\"0\"} 4\n"),
            "{out}"
        );
        assert!(out.contains("tickroom_received_bytes_total 0\n"), "{out}");
    }

    #[test]
    fn a_scrape_never_waits_for_a_worker_and_copies_at_most_once_per_interval() {
        let m = Arc::new(Metrics::new(2));
        m.tick_stats[0].lock().duration_us.record(1000).unwrap();
        let first = text(&m, &[0, 0]);
        assert!(
            first.contains("tickroom_tick_duration_seconds_count 1\n"),
            "{first}"
        );
        // Within the interval a scrape reads its copy: a worker holding its lock (mid-record)
        // does not block it, and what it records shows at the next refresh.
        let busy = m.tick_stats[0].lock();
        m.tick_stats[1].lock().duration_us.record(9000).unwrap();
        let again = text(&m, &[0, 0]);
        assert!(
            again.contains("tickroom_tick_duration_seconds_count 1\n"),
            "{again}"
        );
        // Past the interval the busy worker keeps its last copy; the idle one is copied anew.
        m.scrape_copy.lock().taken = Some(Instant::now() - TICK_COPY_MAX_AGE);
        let later = text(&m, &[0, 0]);
        drop(busy);
        assert!(
            later.contains("tickroom_tick_duration_seconds_count 2\n"),
            "{later}"
        );
        assert!(
            later.contains("tickroom_tick_duration_seconds_bucket{le=\"0.001\"} 1\n"),
            "{later}"
        );
        assert!(
            later.contains("tickroom_tick_duration_seconds_bucket{le=\"0.01\"} 2\n"),
            "{later}"
        );
    }
}
