//! How hard a worker is pressed, and its answer: `SnapshotGovernor` turns a worker's tick
//! lateness, its busy time and its late snapshots (replaced in a connection's outbox before
//! the connection's writer sent them: the writers cannot keep up) into a snapshot-rate divisor
//! for its state-sync rooms. A late
//! snapshot hurts players more than a less frequent one, so an overloaded worker halves its
//! rooms' snapshot rates (down to each mode's `min_snapshot_hz`) before its ticks overrun,
//! and doubles them again, one step at a time, once the pressure has stayed low. Sans-IO:
//! time comes in as `now`.

use std::time::{Duration, Instant};

/// How often the governor weighs the pressure.
pub const WINDOW: Duration = Duration::from_millis(250);
/// Pressure (the larger of a tick's lateness as a share of its interval, and the share of
/// the window the worker was busy) above which the rate halves.
pub const DEGRADE_AT: f64 = 0.5;
/// Pressure below which, held for `RECOVER_WINDOWS` windows in a row, the rate doubles.
pub const RECOVER_AT: f64 = 0.2;
/// Late snapshots: a window in which at least this many snapshots, and more than
/// `CONFLATED_SHARE` of those pushed, replaced an unsent one counts as overloaded.
pub const MIN_CONFLATED: u64 = 10;
/// See `MIN_CONFLATED`.
pub const CONFLATED_SHARE: f64 = 0.01;
/// Calm windows in a row before one step of recovery (2 s).
pub const RECOVER_WINDOWS: u32 = 8;
/// The largest divisor a worker asks for; each room clamps it to its mode's floor.
pub const MAX_DIVISOR: u32 = 32;

/// A change of the divisor, for the metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// The rate was halved (the divisor doubled) to this divisor.
    Degraded(u32),
    /// The rate was doubled back (the divisor halved) to this divisor.
    Recovered(u32),
}

/// One worker's snapshot-rate governor.
#[derive(Debug)]
pub struct SnapshotGovernor {
    divisor: u32,
    window_start: Instant,
    /// The worst lateness seen this window, as a share of the late tick's interval.
    worst_late: f64,
    /// Time spent working (ticks and messages) this window.
    busy: Duration,
    /// Snapshots pushed to outboxes this window, and how many replaced an unsent one.
    pushed: u64,
    conflated: u64,
    calm_windows: u32,
}

impl SnapshotGovernor {
    /// A governor at full rate whose first window starts at `now`.
    pub fn new(now: Instant) -> Self {
        SnapshotGovernor {
            divisor: 1,
            window_start: now,
            worst_late: 0.0,
            busy: Duration::ZERO,
            pushed: 0,
            conflated: 0,
            calm_windows: 0,
        }
    }

    /// The divisor in force (1 = every tick sends snapshots).
    pub fn divisor(&self) -> u32 {
        self.divisor
    }

    /// A tick of a room with `interval` started `late` after it was due.
    pub fn record_tick(&mut self, late: Duration, interval: Duration) {
        let share = late.as_secs_f64() / interval.as_secs_f64().max(1e-6);
        self.worst_late = self.worst_late.max(share);
    }

    /// The worker pushed `pushed` snapshots, of which `conflated` replaced one still unsent.
    pub fn record_snapshots(&mut self, pushed: u64, conflated: u64) {
        self.pushed += pushed;
        self.conflated += conflated;
    }

    /// The worker spent `took` working.
    pub fn record_busy(&mut self, took: Duration) {
        self.busy += took;
    }

    /// Closes the window if it is over: returns the change of divisor it decided, if any.
    pub fn update(&mut self, now: Instant) -> Option<Change> {
        let elapsed = now.saturating_duration_since(self.window_start);
        if elapsed < WINDOW {
            return None;
        }
        let busy = self.busy.as_secs_f64() / elapsed.as_secs_f64();
        let pressure = self.worst_late.max(busy);
        let conflated_share = self.conflated as f64 / self.pushed.max(1) as f64;
        let late_snapshots = self.conflated >= MIN_CONFLATED && conflated_share > CONFLATED_SHARE;
        let some_late = conflated_share > CONFLATED_SHARE / 10.0;
        self.window_start = now;
        self.worst_late = 0.0;
        self.busy = Duration::ZERO;
        self.pushed = 0;
        self.conflated = 0;
        if pressure > DEGRADE_AT || late_snapshots {
            self.calm_windows = 0;
            if self.divisor < MAX_DIVISOR {
                self.divisor *= 2;
                return Some(Change::Degraded(self.divisor));
            }
            return None;
        }
        if pressure >= RECOVER_AT || some_late || self.divisor == 1 {
            self.calm_windows = 0;
            return None;
        }
        self.calm_windows += 1;
        if self.calm_windows < RECOVER_WINDOWS {
            return None;
        }
        self.calm_windows = 0;
        self.divisor /= 2;
        Some(Change::Recovered(self.divisor))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TICK: Duration = Duration::from_millis(33);

    /// Runs one window in which ticks were `late` and the worker busy for `busy`.
    fn window(g: &mut SnapshotGovernor, now: &mut Instant, late: u64, busy: u64) -> Option<Change> {
        g.record_tick(Duration::from_millis(late), TICK);
        g.record_busy(Duration::from_millis(busy));
        *now += WINDOW;
        g.update(*now)
    }

    #[test]
    fn late_ticks_halve_the_rate_step_by_step_up_to_the_cap() {
        let mut now = Instant::now();
        let mut g = SnapshotGovernor::new(now);
        // Ticks 20 ms late of 33 ms: over half an interval.
        let mut seen = Vec::new();
        for _ in 0..8 {
            seen.push(window(&mut g, &mut now, 20, 10));
        }
        assert_eq!(
            seen,
            [
                Some(Change::Degraded(2)),
                Some(Change::Degraded(4)),
                Some(Change::Degraded(8)),
                Some(Change::Degraded(16)),
                Some(Change::Degraded(32)),
                None,
                None,
                None,
            ]
        );
        assert_eq!(g.divisor(), MAX_DIVISOR);
    }

    #[test]
    fn a_busy_worker_degrades_even_when_its_ticks_are_on_time() {
        let mut now = Instant::now();
        let mut g = SnapshotGovernor::new(now);
        assert_eq!(window(&mut g, &mut now, 0, 200), Some(Change::Degraded(2)));
    }

    #[test]
    fn it_recovers_one_step_after_two_calm_seconds_and_not_before() {
        let mut now = Instant::now();
        let mut g = SnapshotGovernor::new(now);
        window(&mut g, &mut now, 30, 0);
        window(&mut g, &mut now, 30, 0);
        assert_eq!(g.divisor(), 4);
        for _ in 0..RECOVER_WINDOWS - 1 {
            assert_eq!(window(&mut g, &mut now, 1, 10), None);
        }
        assert_eq!(window(&mut g, &mut now, 1, 10), Some(Change::Recovered(2)));
        // Middling pressure neither degrades nor counts as calm.
        for _ in 0..RECOVER_WINDOWS * 2 {
            assert_eq!(window(&mut g, &mut now, 10, 0), None);
        }
        assert_eq!(g.divisor(), 2);
        for _ in 0..RECOVER_WINDOWS - 1 {
            window(&mut g, &mut now, 0, 0);
        }
        assert_eq!(window(&mut g, &mut now, 0, 0), Some(Change::Recovered(1)));
        assert_eq!(window(&mut g, &mut now, 0, 0), None);
    }

    #[test]
    fn late_snapshots_degrade_and_a_few_do_not() {
        let mut now = Instant::now();
        let mut g = SnapshotGovernor::new(now);
        // 9 of 100 replaced: too few to count; 20 of 1,000 (2 %): overloaded writers.
        g.record_snapshots(100, 9);
        assert_eq!(window(&mut g, &mut now, 0, 0), None);
        g.record_snapshots(1000, 20);
        assert_eq!(window(&mut g, &mut now, 0, 0), Some(Change::Degraded(2)));
        // 0.5 % is not overload, but not calm either: no recovery while it lasts.
        for _ in 0..RECOVER_WINDOWS * 2 {
            g.record_snapshots(2000, 10);
            assert_eq!(window(&mut g, &mut now, 0, 0), None);
        }
        for _ in 0..RECOVER_WINDOWS - 1 {
            g.record_snapshots(2000, 1);
            assert_eq!(window(&mut g, &mut now, 0, 0), None);
        }
        g.record_snapshots(2000, 1);
        assert_eq!(window(&mut g, &mut now, 0, 0), Some(Change::Recovered(1)));
    }

    #[test]
    fn a_window_only_closes_once_it_is_over() {
        let now = Instant::now();
        let mut g = SnapshotGovernor::new(now);
        g.record_tick(Duration::from_millis(30), TICK);
        assert_eq!(g.update(now + WINDOW / 2), None);
        assert_eq!(g.update(now + WINDOW), Some(Change::Degraded(2)));
    }
}
