//! Link conditioner: one-way latency with uniform jitter and Gilbert–Elliott burst loss, plus
//! a FIFO delay queue. Pure logic: time and randomness come in as arguments, so tests run it
//! with a seeded rng and no clock.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use rand::Rng;

/// Mean length of a loss burst (packets) when none is given: loss on real links comes in bursts.
pub const DEFAULT_MEAN_BURST_LEN: f64 = 3.0;

/// What to do to one direction of a link.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct LinkConfig {
    /// Added one-way delay.
    pub latency: Duration,
    /// The delay varies uniformly by up to ± this.
    pub jitter: Duration,
    /// Average fraction of unreliable messages lost (0.0–1.0).
    pub loss: f64,
    /// Mean number of consecutive losses in a burst (≥ 1).
    pub mean_burst_len: f64,
}

impl LinkConfig {
    /// True when the conditioner changes anything.
    pub fn is_active(&self) -> bool {
        !self.latency.is_zero() || !self.jitter.is_zero() || self.loss > 0.0
    }
}

/// A two-state Markov chain (good: delivered, bad: lost). The bad→good probability is
/// 1 / mean burst length, and good→bad is chosen so the long-run time in bad equals the target
/// loss: π_bad = p / (p + r).
#[derive(Debug, Clone)]
pub struct GilbertElliott {
    good_to_bad: f64,
    bad_to_good: f64,
    bad: bool,
}

impl GilbertElliott {
    /// A chain with average loss `loss` (clamped to 0–1) in bursts of `mean_burst_len` on average.
    pub fn new(loss: f64, mean_burst_len: f64) -> GilbertElliott {
        let loss = if loss.is_finite() {
            loss.clamp(0.0, 1.0)
        } else {
            0.0
        };
        let bad_to_good = if mean_burst_len.is_finite() && mean_burst_len >= 1.0 {
            1.0 / mean_burst_len
        } else {
            1.0
        };
        let good_to_bad = if loss >= 1.0 {
            1.0
        } else {
            (loss * bad_to_good / (1.0 - loss)).min(1.0)
        };
        GilbertElliott {
            good_to_bad,
            bad_to_good: if loss >= 1.0 { 0.0 } else { bad_to_good },
            bad: false,
        }
    }

    /// Steps the chain for one message; true when that message is lost.
    pub fn lose(&mut self, rng: &mut impl Rng) -> bool {
        let flip = if self.bad {
            self.bad_to_good
        } else {
            self.good_to_bad
        };
        if flip > 0.0 && rng.random_bool(flip.min(1.0)) {
            self.bad = !self.bad;
        }
        self.bad
    }
}

/// One direction of a conditioned link.
#[derive(Debug, Clone)]
pub struct LinkDirection {
    config: LinkConfig,
    loss: GilbertElliott,
}

impl LinkDirection {
    /// A direction applying `config`.
    pub fn new(config: LinkConfig) -> LinkDirection {
        LinkDirection {
            config,
            loss: GilbertElliott::new(config.loss, config.mean_burst_len),
        }
    }

    /// The fate of one message: `None` when lost (only unreliable messages can be), else the
    /// delay to apply.
    pub fn pass(&mut self, reliable: bool, rng: &mut impl Rng) -> Option<Duration> {
        if !reliable && self.config.loss > 0.0 && self.loss.lose(rng) {
            return None;
        }
        Some(self.delay(rng))
    }

    /// Latency ± uniform jitter, never negative.
    pub fn delay(&self, rng: &mut impl Rng) -> Duration {
        let LinkConfig {
            latency, jitter, ..
        } = self.config;
        if jitter.is_zero() {
            return latency;
        }
        let j = jitter.as_secs_f64();
        let offset = rng.random_range(-j..=j);
        Duration::try_from_secs_f64((latency.as_secs_f64() + offset).max(0.0)).unwrap_or(latency)
    }
}

/// Messages held back until their delivery time, released in the order they went in (like an
/// ordered stream: a message never overtakes an earlier one).
#[derive(Debug)]
pub struct DelayQueue<T> {
    items: VecDeque<(Instant, T)>,
}

impl<T> Default for DelayQueue<T> {
    fn default() -> Self {
        DelayQueue {
            items: VecDeque::new(),
        }
    }
}

impl<T> DelayQueue<T> {
    /// Queues `item` for `now + delay`, but not before the previous item.
    pub fn push(&mut self, now: Instant, delay: Duration, item: T) {
        let at = now.checked_add(delay).unwrap_or(now);
        let at = self.items.back().map_or(at, |(last, _)| at.max(*last));
        self.items.push_back((at, item));
    }

    /// When the next item is due.
    pub fn next_due(&self) -> Option<Instant> {
        self.items.front().map(|(at, _)| *at)
    }

    /// The next item if it is due at `now`.
    pub fn pop_due(&mut self, now: Instant) -> Option<T> {
        if self.items.front().is_some_and(|(at, _)| *at <= now) {
            self.items.pop_front().map(|(_, item)| item)
        } else {
            None
        }
    }

    /// Forgets everything queued.
    pub fn clear(&mut self) {
        self.items.clear();
    }

    /// True when nothing is queued.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use rand::rngs::SmallRng;
    use rand::SeedableRng;

    use super::*;

    const SAMPLES: usize = 100_000;

    /// Runs the chain and returns (loss fraction, mean burst length).
    fn measure(loss: f64, burst: f64, seed: u64) -> (f64, f64) {
        let mut rng = SmallRng::seed_from_u64(seed);
        let mut chain = GilbertElliott::new(loss, burst);
        let (mut lost, mut bursts, mut previous) = (0usize, 0usize, false);
        for _ in 0..SAMPLES {
            let l = chain.lose(&mut rng);
            lost += usize::from(l);
            bursts += usize::from(l && !previous);
            previous = l;
        }
        let mean_burst = if bursts == 0 {
            0.0
        } else {
            lost as f64 / bursts as f64
        };
        (lost as f64 / SAMPLES as f64, mean_burst)
    }

    #[test]
    fn average_loss_matches_the_target() {
        for (target, seed) in [(0.02, 1), (0.05, 2), (0.2, 3)] {
            let (loss, burst) = measure(target, DEFAULT_MEAN_BURST_LEN, seed);
            assert!(
                (loss - target).abs() < target * 0.15,
                "target {target}, got {loss}"
            );
            assert!(burst > 1.5, "bursts average {burst}");
        }
    }

    #[test]
    fn bursts_follow_the_mean_length() {
        let (_, burst) = measure(0.05, 5.0, 7);
        assert!((burst - 5.0).abs() < 1.0, "bursts average {burst}");
    }

    #[test]
    fn edge_losses() {
        assert_eq!(measure(0.0, 3.0, 1).0, 0.0);
        assert_eq!(measure(1.0, 3.0, 1).0, 1.0);
        assert_eq!(measure(f64::NAN, 3.0, 1).0, 0.0);
    }

    #[test]
    fn reliable_messages_are_never_lost() {
        let mut rng = SmallRng::seed_from_u64(3);
        let mut dir = LinkDirection::new(LinkConfig {
            loss: 1.0,
            mean_burst_len: 3.0,
            ..LinkConfig::default()
        });
        assert!((0..1000).all(|_| dir.pass(true, &mut rng).is_some()));
        assert!((0..1000).all(|_| dir.pass(false, &mut rng).is_none()));
    }

    #[test]
    fn delay_stays_within_jitter() {
        let mut rng = SmallRng::seed_from_u64(4);
        let dir = LinkDirection::new(LinkConfig {
            latency: Duration::from_millis(50),
            jitter: Duration::from_millis(10),
            ..LinkConfig::default()
        });
        let delays: Vec<Duration> = (0..10_000).map(|_| dir.delay(&mut rng)).collect();
        assert!(delays
            .iter()
            .all(|d| { *d >= Duration::from_millis(40) && *d <= Duration::from_millis(60) }));
        let mean = delays.iter().map(Duration::as_secs_f64).sum::<f64>() / delays.len() as f64;
        assert!((mean - 0.050).abs() < 0.001, "mean {mean}");
    }

    #[test]
    fn delay_queue_keeps_order() {
        let t0 = Instant::now();
        let mut q = DelayQueue::default();
        q.push(t0, Duration::from_millis(50), 1);
        q.push(t0, Duration::from_millis(10), 2);
        assert_eq!(q.next_due(), Some(t0 + Duration::from_millis(50)));
        assert_eq!(q.pop_due(t0 + Duration::from_millis(20)), None);
        assert_eq!(q.pop_due(t0 + Duration::from_millis(50)), Some(1));
        assert_eq!(q.pop_due(t0 + Duration::from_millis(50)), Some(2));
        assert!(q.is_empty());
    }
}
