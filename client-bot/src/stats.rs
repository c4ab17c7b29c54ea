//! What bots measure: HDR histograms in microseconds, the send log that pairs an ack (or a
//! frame) with the time its input was sent, arrival-interval jitter, and the live counters the
//! progress bar reads while a swarm runs.

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicI64, AtomicU64, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

/// Largest latency a histogram tracks, in microseconds (larger samples saturate to it).
pub const MAX_TRACKED_US: u64 = 60_000_000;
/// Significant decimal digits the histograms keep.
const HISTOGRAM_DIGITS: u8 = 3;
/// Sends remembered while waiting for their ack; older ones are forgotten (never acked).
pub const MAX_UNACKED_SENDS: usize = 1024;

/// A histogram of durations in microseconds, 1 µs to [`MAX_TRACKED_US`].
pub fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, MAX_TRACKED_US, HISTOGRAM_DIGITS).expect("constant bounds")
}

/// Records `d` in microseconds (at least 1 µs, at most the bound).
pub fn record(h: &mut Histogram<u64>, d: Duration) {
    let us = u64::try_from(d.as_micros()).unwrap_or(u64::MAX).max(1);
    h.saturating_record(us);
}

/// The `q` quantile in milliseconds, `None` when nothing was recorded.
pub fn quantile_ms(h: &Histogram<u64>, q: f64) -> Option<f64> {
    (!h.is_empty()).then(|| h.value_at_quantile(q) as f64 / 1000.0)
}

/// The largest sample in milliseconds, `None` when nothing was recorded.
pub fn max_ms(h: &Histogram<u64>) -> Option<f64> {
    (!h.is_empty()).then(|| h.max() as f64 / 1000.0)
}

/// Send times by increasing key (input number or frame), so an ack for key k gives the RTT
/// of the send of k. Each send counts once: acking k forgets every key up to k.
#[derive(Debug, Default)]
pub struct SendLog {
    sent: VecDeque<(u64, Instant)>,
    newest_acked: u64,
}

impl SendLog {
    /// Remembers that `key` was sent at `at`; keys must grow (others are ignored).
    pub fn sent(&mut self, key: u64, at: Instant) {
        if self.sent.back().is_some_and(|(k, _)| *k >= key) || key <= self.newest_acked {
            return;
        }
        self.sent.push_back((key, at));
        while self.sent.len() > MAX_UNACKED_SENDS {
            self.sent.pop_front();
        }
    }

    /// `key` was acknowledged at `now`: its RTT if it was sent and not yet counted.
    pub fn ack(&mut self, key: u64, now: Instant) -> Option<Duration> {
        if key <= self.newest_acked {
            return None;
        }
        self.newest_acked = key;
        let mut rtt = None;
        while let Some(&(k, at)) = self.sent.front() {
            if k > key {
                break;
            }
            self.sent.pop_front();
            if k == key {
                rtt = Some(now.saturating_duration_since(at));
            }
        }
        rtt
    }

    /// The last key sent, if any is still remembered.
    pub fn last_sent(&self) -> Option<u64> {
        self.sent.back().map(|(k, _)| *k)
    }
}

/// |interval between consecutive arrivals − nominal interval|.
#[derive(Debug)]
pub struct IntervalJitter {
    nominal: Duration,
    last: Option<Instant>,
}

impl IntervalJitter {
    /// Jitter against `nominal` (1 / tick rate).
    pub fn new(nominal: Duration) -> IntervalJitter {
        IntervalJitter {
            nominal,
            last: None,
        }
    }

    /// One arrival at `now`: the deviation from the nominal interval (none for the first).
    pub fn arrival(&mut self, now: Instant) -> Option<Duration> {
        let deviation = self.last.map(|last| {
            let interval = now.saturating_duration_since(last);
            interval.abs_diff(self.nominal)
        });
        self.last = Some(now);
        deviation
    }

    /// Forgets the last arrival (after a disconnect the gap is not jitter).
    pub fn reset(&mut self) {
        self.last = None;
    }
}

/// Everything one bot (or a whole swarm, once merged) measured.
#[derive(Debug, Clone)]
pub struct Measurements {
    /// Input→ack RTT (state) or frame delivery latency (lockstep).
    pub rtt: Histogram<u64>,
    /// Connection loss → `Reconnected`.
    pub resume: Histogram<u64>,
    /// |arrival interval − nominal| of snapshots or frames.
    pub jitter: Histogram<u64>,
    /// Ping/Pong RTT as the session measured it.
    pub pong: Histogram<u64>,
    /// Snapshots processed.
    pub snapshots: u64,
    /// Frames processed.
    pub frames: u64,
    /// Messages the link conditioner dropped (inputs sent, snapshots received).
    pub link_dropped: u64,
    /// Desync reports from the server.
    pub desyncs: u64,
    /// Lockstep frames that closed without the input this bot sent for them (sent too late).
    pub late_inputs: u64,
    /// Connections dropped on purpose (chaos).
    pub drops: u64,
    /// `Reconnected` events.
    pub reconnects: u64,
    /// Game data from the server that did not decode or frames that skipped a number.
    pub bad_data: u64,
    /// Seconds spent in a room (join → close).
    pub played_s: f64,
    /// Transport bytes sent and received.
    pub bytes_out: u64,
    /// Transport bytes received.
    pub bytes_in: u64,
}

impl Default for Measurements {
    fn default() -> Self {
        Measurements {
            rtt: new_histogram(),
            resume: new_histogram(),
            jitter: new_histogram(),
            pong: new_histogram(),
            snapshots: 0,
            frames: 0,
            link_dropped: 0,
            desyncs: 0,
            late_inputs: 0,
            drops: 0,
            reconnects: 0,
            bad_data: 0,
            played_s: 0.0,
            bytes_out: 0,
            bytes_in: 0,
        }
    }
}

impl Measurements {
    /// Adds another bot's measurements to these.
    pub fn merge(&mut self, other: &Measurements) {
        // Same bounds on both sides, so `add` cannot fail.
        let _ = self.rtt.add(&other.rtt);
        let _ = self.resume.add(&other.resume);
        let _ = self.jitter.add(&other.jitter);
        let _ = self.pong.add(&other.pong);
        self.snapshots += other.snapshots;
        self.frames += other.frames;
        self.link_dropped += other.link_dropped;
        self.desyncs += other.desyncs;
        self.late_inputs += other.late_inputs;
        self.drops += other.drops;
        self.reconnects += other.reconnects;
        self.bad_data += other.bad_data;
        self.played_s += other.played_s;
        self.bytes_out += other.bytes_out;
        self.bytes_in += other.bytes_in;
    }
}

/// How one bot ended.
#[derive(Debug, Clone, Default)]
pub struct BotOutcome {
    /// It got a `Joined`.
    pub joined: bool,
    /// The room it joined.
    pub room_id: Option<u64>,
    /// Why it failed or ended badly: an `ErrorCode::name()` or a local reason
    /// (`http`, `transport`, `timeout`, `aborted`, ...).
    pub error: Option<String>,
    /// What it measured.
    pub measurements: Measurements,
}

/// Swarm-wide counters the progress bar reads while bots run.
#[derive(Debug)]
pub struct LiveStats {
    /// Bots started so far.
    pub started: AtomicUsize,
    /// Bots in a room with a live connection now.
    pub in_room: AtomicI64,
    /// Snapshots and frames processed so far.
    pub messages: AtomicU64,
    /// Errors so far.
    pub errors: AtomicU64,
    /// RTT samples since the progress bar last looked.
    window: Mutex<Histogram<u64>>,
}

impl Default for LiveStats {
    fn default() -> Self {
        LiveStats {
            started: AtomicUsize::new(0),
            in_room: AtomicI64::new(0),
            messages: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            window: Mutex::new(new_histogram()),
        }
    }
}

impl LiveStats {
    /// Adds an RTT sample to the current window.
    pub fn record_rtt(&self, d: Duration) {
        if let Ok(mut h) = self.window.lock() {
            record(&mut h, d);
        }
    }

    /// The p99 of the window in ms, and starts a new window.
    pub fn take_window_p99_ms(&self) -> Option<f64> {
        let mut h = self.window.lock().ok()?;
        let p99 = quantile_ms(&h, 0.99);
        h.reset();
        p99
    }
}

/// Counts errors by name.
pub fn count_errors<'a>(errors: impl Iterator<Item = &'a str>) -> BTreeMap<String, u64> {
    let mut by_code = BTreeMap::new();
    for e in errors {
        *by_code.entry(e.to_string()).or_insert(0) += 1;
    }
    by_code
}

/// Moves the in-room gauge by `delta` (+1 on join or resume, -1 on loss or close).
pub fn add_in_room(live: &LiveStats, delta: i64) {
    live.in_room.fetch_add(delta, Ordering::Relaxed);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn send_log_pairs_acks_with_sends_once() {
        let t0 = Instant::now();
        let mut log = SendLog::default();
        for k in 1..=5 {
            log.sent(k, t0 + ms(k * 10));
        }
        assert_eq!(log.ack(3, t0 + ms(100)), Some(ms(70)));
        // Acked again, or an older one: not counted twice.
        assert_eq!(log.ack(3, t0 + ms(120)), None);
        assert_eq!(log.ack(2, t0 + ms(120)), None);
        // 4 was skipped by the ack of 5.
        assert_eq!(log.ack(5, t0 + ms(200)), Some(ms(150)));
        assert_eq!(log.ack(4, t0 + ms(200)), None);
        // Never sent.
        assert_eq!(log.ack(9, t0 + ms(200)), None);
    }

    #[test]
    fn send_log_is_bounded() {
        let t0 = Instant::now();
        let mut log = SendLog::default();
        for k in 1..=(MAX_UNACKED_SENDS as u64 * 2) {
            log.sent(k, t0);
        }
        assert_eq!(log.ack(1, t0), None);
        assert_eq!(log.last_sent(), Some(MAX_UNACKED_SENDS as u64 * 2));
    }

    #[test]
    fn jitter_is_the_deviation_from_nominal() {
        let t0 = Instant::now();
        let mut j = IntervalJitter::new(ms(50));
        assert_eq!(j.arrival(t0), None);
        assert_eq!(j.arrival(t0 + ms(50)), Some(ms(0)));
        assert_eq!(j.arrival(t0 + ms(110)), Some(ms(10)));
        assert_eq!(j.arrival(t0 + ms(150)), Some(ms(10)));
        j.reset();
        assert_eq!(j.arrival(t0 + ms(900)), None);
    }

    #[test]
    fn quantiles_are_none_when_empty() {
        let mut h = new_histogram();
        assert_eq!(quantile_ms(&h, 0.99), None);
        assert_eq!(max_ms(&h), None);
        record(&mut h, ms(20));
        let p = quantile_ms(&h, 0.5).unwrap();
        assert!((p - 20.0).abs() < 0.1, "{p}");
        record(&mut h, Duration::from_secs(3600));
        assert_eq!(h.max(), h.highest_equivalent(MAX_TRACKED_US));
    }

    #[test]
    fn merge_adds_up() {
        let mut a = Measurements::default();
        let mut b = Measurements::default();
        record(&mut a.rtt, ms(1));
        record(&mut b.rtt, ms(2));
        b.snapshots = 3;
        a.merge(&b);
        assert_eq!(a.rtt.len(), 2);
        assert_eq!(a.snapshots, 3);
    }
}
