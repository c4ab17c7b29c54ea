//! What bots measure: HDR histograms in microseconds, the send log that pairs an ack (or a
//! frame) with the time its input was sent, arrival-interval jitter, and the live counters the
//! progress bar reads while a swarm runs.

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

use crate::error::BotError;

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
pub fn record(samples: &mut Samples, d: Duration) {
    samples.record(d);
}

/// Records `d` in microseconds into a histogram (at least 1 µs, at most the bound).
pub fn record_histogram(h: &mut Histogram<u64>, d: Duration) {
    h.saturating_record(micros(d));
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros())
        .unwrap_or(u64::MAX)
        .clamp(1, MAX_TRACKED_US)
}

/// The `q` quantile in milliseconds, `None` when nothing was recorded.
pub fn quantile_ms(s: &Samples, q: f64) -> Option<f64> {
    let h = s.histogram();
    (!h.is_empty()).then(|| h.value_at_quantile(q) as f64 / 1000.0)
}

/// The largest sample in milliseconds, `None` when nothing was recorded.
pub fn max_ms(s: &Samples) -> Option<f64> {
    let h = s.histogram();
    (!h.is_empty()).then(|| h.max() as f64 / 1000.0)
}

/// Samples folded into the histogram at once; below this a bot keeps them raw.
pub const SAMPLE_BATCH: usize = 4096;

/// Latency samples: kept raw (a push per sample, cache friendly, 4 bytes each) and folded into
/// an HDR histogram in batches of [`SAMPLE_BATCH`]. A bot of a one-minute run never allocates
/// a histogram (each one is ~140 KB that thousands of bots would touch at random).
#[derive(Debug, Clone, Default)]
pub struct Samples {
    raw: Vec<u32>,
    folded: Option<Histogram<u64>>,
}

impl Samples {
    /// Adds one sample.
    pub fn record(&mut self, d: Duration) {
        // MAX_TRACKED_US fits in u32.
        self.raw.push(micros(d) as u32);
        if self.raw.len() >= SAMPLE_BATCH {
            self.fold();
        }
    }

    /// How many samples were recorded.
    pub fn len(&self) -> u64 {
        self.raw.len() as u64 + self.folded.as_ref().map_or(0, Histogram::len)
    }

    /// True when nothing was recorded.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Adds another set of samples to these.
    pub fn merge(&mut self, other: &Samples) {
        if let Some(h) = &other.folded {
            // Same bounds on both sides, so `add` cannot fail.
            let _ = self.folded.get_or_insert_with(new_histogram).add(h);
        }
        for &us in &other.raw {
            self.raw.push(us);
            if self.raw.len() >= SAMPLE_BATCH {
                self.fold();
            }
        }
    }

    /// All samples as one histogram.
    pub fn histogram(&self) -> Histogram<u64> {
        let mut h = self.folded.clone().unwrap_or_else(new_histogram);
        for &us in &self.raw {
            h.saturating_record(u64::from(us));
        }
        h
    }

    fn fold(&mut self) {
        let h = self.folded.get_or_insert_with(new_histogram);
        for us in self.raw.drain(..) {
            h.saturating_record(u64::from(us));
        }
    }
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
#[derive(Debug, Clone, Default)]
pub struct Measurements {
    /// Input→ack RTT (state) or frame delivery latency (lockstep).
    pub rtt: Samples,
    /// Connection loss → `Reconnected`.
    pub resume: Samples,
    /// Connection loss → `Joined` in a new room (the old room's server was gone).
    pub rejoin: Samples,
    /// |arrival interval − nominal| of snapshots or frames.
    pub jitter: Samples,
    /// Ping/Pong RTT as the session measured it.
    pub pong: Samples,
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
    /// Rooms joined again through the gateway after the old room's server was gone.
    pub rejoins: u64,
    /// Sessions pointed at their room's new server after its owner died (the room was taken
    /// over from its failover image; the session resumed there).
    pub moves: u64,
    /// The most a resume took the match back, in ms: the newest snapshot tick the bot had
    /// minus the tick it resumed at (a room taken over from an image rolls back to it).
    pub max_rollback_ms: f64,
    /// `GET /v1/rooms/{id}` asked because the room went silent or a resume was overdue.
    pub room_status_checks: u64,
    /// Lockstep frames never received: a frame `n` after `last` counts `n - last - 1`.
    pub lost_frames: u64,
    /// Game data from the server that did not decode or frames that skipped a number.
    pub bad_data: u64,
    /// Custom messages the server refused (too big or too fast for the mode).
    pub refused: u64,
    /// `MatchEnded` received: matches the game ended.
    pub matches_ended: u64,
    /// Seconds spent in a room (join → close).
    pub played_s: f64,
    /// Transport bytes sent and received.
    pub bytes_out: u64,
    /// Transport bytes received.
    pub bytes_in: u64,
}

impl Measurements {
    /// Adds another bot's measurements to these.
    pub fn merge(&mut self, other: &Measurements) {
        self.rtt.merge(&other.rtt);
        self.resume.merge(&other.resume);
        self.rejoin.merge(&other.rejoin);
        self.jitter.merge(&other.jitter);
        self.pong.merge(&other.pong);
        self.snapshots += other.snapshots;
        self.frames += other.frames;
        self.link_dropped += other.link_dropped;
        self.desyncs += other.desyncs;
        self.late_inputs += other.late_inputs;
        self.drops += other.drops;
        self.reconnects += other.reconnects;
        self.rejoins += other.rejoins;
        self.moves += other.moves;
        self.max_rollback_ms = self.max_rollback_ms.max(other.max_rollback_ms);
        self.room_status_checks += other.room_status_checks;
        self.lost_frames += other.lost_frames;
        self.bad_data += other.bad_data;
        self.refused += other.refused;
        self.matches_ended += other.matches_ended;
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
    /// Why it failed or ended badly (its `name()` is the report's key).
    pub error: Option<BotError>,
    /// The result bytes of the last match the game ended.
    pub match_result: Option<Vec<u8>>,
    /// What the game bot of the last room reported ([`crate::GameBot::report`]).
    pub game_report: Option<String>,
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
    /// A progress bar reads the RTT window (without one, bots skip the shared lock).
    pub window_on: AtomicBool,
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
            window_on: AtomicBool::new(false),
            window: Mutex::new(new_histogram()),
        }
    }
}

impl LiveStats {
    /// Adds an RTT sample to the current window.
    pub fn record_rtt(&self, d: Duration) {
        if !self.window_on.load(Ordering::Relaxed) {
            return;
        }
        if let Ok(mut h) = self.window.lock() {
            record_histogram(&mut h, d);
        }
    }

    /// The p99 of the window in ms, and starts a new window.
    pub fn take_window_p99_ms(&self) -> Option<f64> {
        let mut h = self.window.lock().ok()?;
        let p99 = (!h.is_empty()).then(|| h.value_at_quantile(0.99) as f64 / 1000.0);
        h.reset();
        p99
    }
}

/// Counts errors by their report name ([`BotError::name`]).
pub fn count_errors(errors: impl Iterator<Item = BotError>) -> BTreeMap<String, u64> {
    let mut by_code = BTreeMap::new();
    for e in errors {
        *by_code.entry(e.name().to_string()).or_insert(0) += 1;
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
        let mut s = Samples::default();
        assert_eq!(quantile_ms(&s, 0.99), None);
        assert_eq!(max_ms(&s), None);
        record(&mut s, ms(20));
        let p = quantile_ms(&s, 0.5).unwrap();
        assert!((p - 20.0).abs() < 0.1, "{p}");
        record(&mut s, Duration::from_secs(3600));
        let h = s.histogram();
        assert_eq!(h.max(), h.highest_equivalent(MAX_TRACKED_US));
    }

    #[test]
    fn samples_fold_in_batches_and_merge() {
        let mut a = Samples::default();
        for i in 0..(SAMPLE_BATCH as u64 + 10) {
            record(&mut a, Duration::from_micros(1 + i % 1000));
        }
        assert_eq!(a.len(), SAMPLE_BATCH as u64 + 10);
        let mut b = Samples::default();
        record(&mut b, ms(5));
        b.merge(&a);
        assert_eq!(b.len(), SAMPLE_BATCH as u64 + 11);
        assert!((max_ms(&b).unwrap() - 5.0).abs() < 0.01);
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
