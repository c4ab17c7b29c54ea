//! `ReplayWindow`: the per-session anti-replay check over u64 sequence numbers. A message is
//! first `check`ed, then `commit`ted once it was accepted, so a rejected message burns nothing.

/// Default window size in sequence numbers.
pub const DEFAULT_REPLAY_WINDOW: u32 = 64;
/// Largest supported window size in sequence numbers.
pub const MAX_REPLAY_WINDOW: u32 = 4096;

/// Why a sequence number was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ReplayError {
    /// The number was already accepted.
    #[error("sequence number {0} was already used")]
    Duplicate(u64),
    /// The number is older than the window (or 0, which is never valid).
    #[error("sequence number {0} is too old")]
    TooOld(u64),
    /// Strict mode: the number is not above the highest one seen.
    #[error("sequence number {0} is out of order")]
    OutOfOrder(u64),
}

/// A sliding window over sequence numbers: numbers start at 1; each is accepted at most once.
/// In strict mode (ordered streams) every number must exceed the previous one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplayWindow {
    /// Highest committed number; 0 when nothing was committed.
    highest: u64,
    /// Bit `i` set = `highest - i` was committed. Word 0 holds bits 0..64.
    bits: Vec<u64>,
    size: u64,
    strict: bool,
}

impl Default for ReplayWindow {
    fn default() -> Self {
        ReplayWindow::new(DEFAULT_REPLAY_WINDOW, false)
    }
}

impl ReplayWindow {
    /// A window of `size` numbers (rounded up to a multiple of 64, clamped to 64..=4096).
    pub fn new(size: u32, strict: bool) -> Self {
        let size = size.clamp(64, MAX_REPLAY_WINDOW).div_ceil(64) * 64;
        ReplayWindow {
            highest: 0,
            bits: vec![0; (size / 64) as usize],
            size: u64::from(size),
            strict,
        }
    }

    /// A window for an ordered stream: numbers must strictly increase.
    pub fn strict() -> Self {
        ReplayWindow::new(DEFAULT_REPLAY_WINDOW, true)
    }

    /// The highest number committed so far (0 when none).
    pub fn highest(&self) -> u64 {
        self.highest
    }

    /// Whether `seq` would be accepted now. Does not change the window.
    #[inline]
    pub fn check(&self, seq: u64) -> Result<(), ReplayError> {
        if seq == 0 {
            return Err(ReplayError::TooOld(seq));
        }
        if seq > self.highest {
            return Ok(());
        }
        if self.strict {
            return Err(ReplayError::OutOfOrder(seq));
        }
        let age = self.highest - seq;
        if age >= self.size {
            return Err(ReplayError::TooOld(seq));
        }
        if self.bit(age) {
            Err(ReplayError::Duplicate(seq))
        } else {
            Ok(())
        }
    }

    /// Records `seq` as used. Call only after `check(seq)` passed and the message was accepted.
    #[inline]
    pub fn commit(&mut self, seq: u64) {
        if seq > self.highest {
            self.shift(seq - self.highest);
            self.highest = seq;
            self.bits[0] |= 1;
        } else {
            let age = self.highest - seq;
            if age < self.size {
                self.bits[(age / 64) as usize] |= 1 << (age % 64);
            }
        }
    }

    /// `check` then `commit` in one step, for callers with nothing in between.
    pub fn accept(&mut self, seq: u64) -> Result<(), ReplayError> {
        self.check(seq)?;
        self.commit(seq);
        Ok(())
    }

    fn bit(&self, age: u64) -> bool {
        self.bits[(age / 64) as usize] & (1 << (age % 64)) != 0
    }

    /// Moves every bit `by` places towards older ages, dropping those that leave the window.
    fn shift(&mut self, by: u64) {
        if by >= self.size {
            self.bits.iter_mut().for_each(|w| *w = 0);
            return;
        }
        let words = (by / 64) as usize;
        let bits = (by % 64) as u32;
        let n = self.bits.len();
        for i in (0..n).rev() {
            let src = i.checked_sub(words);
            let hi = src.map_or(0, |s| self.bits[s]);
            let lo = src
                .and_then(|s| s.checked_sub(1))
                .map_or(0, |s| self.bits[s]);
            self.bits[i] = if bits == 0 {
                hi
            } else {
                (hi << bits) | (lo >> (64 - bits))
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_each_number_once() {
        let mut w = ReplayWindow::default();
        assert_eq!(w.accept(1), Ok(()));
        assert_eq!(w.accept(1), Err(ReplayError::Duplicate(1)));
        assert_eq!(w.accept(3), Ok(()));
        assert_eq!(w.accept(2), Ok(()));
        assert_eq!(w.accept(2), Err(ReplayError::Duplicate(2)));
        assert_eq!(w.accept(0), Err(ReplayError::TooOld(0)));
    }

    #[test]
    fn check_does_not_commit() {
        let mut w = ReplayWindow::default();
        assert_eq!(w.check(5), Ok(()));
        assert_eq!(w.check(5), Ok(()));
        w.commit(5);
        assert_eq!(w.check(5), Err(ReplayError::Duplicate(5)));
    }

    #[test]
    fn too_old_outside_the_window() {
        let mut w = ReplayWindow::new(64, false);
        w.accept(100).unwrap();
        assert_eq!(w.check(36), Err(ReplayError::TooOld(36)));
        assert_eq!(w.check(37), Ok(()));
    }

    #[test]
    fn strict_mode_requires_increase() {
        let mut w = ReplayWindow::strict();
        w.accept(5).unwrap();
        assert_eq!(w.check(4), Err(ReplayError::OutOfOrder(4)));
        assert_eq!(w.check(5), Err(ReplayError::OutOfOrder(5)));
        assert_eq!(w.accept(9), Ok(()));
    }

    #[test]
    fn works_at_u64_max() {
        let mut w = ReplayWindow::default();
        w.accept(u64::MAX - 1).unwrap();
        w.accept(u64::MAX).unwrap();
        assert_eq!(w.check(u64::MAX), Err(ReplayError::Duplicate(u64::MAX)));
        assert_eq!(
            w.check(u64::MAX - 1),
            Err(ReplayError::Duplicate(u64::MAX - 1))
        );
        assert_eq!(w.check(u64::MAX - 2), Ok(()));
        assert_eq!(
            w.check(u64::MAX - 64),
            Err(ReplayError::TooOld(u64::MAX - 64))
        );
    }

    #[test]
    fn multi_word_window_shifts_across_words() {
        let mut w = ReplayWindow::new(256, false);
        w.accept(1).unwrap();
        w.accept(70).unwrap();
        w.accept(200).unwrap();
        assert_eq!(w.check(1), Err(ReplayError::Duplicate(1)));
        assert_eq!(w.check(70), Err(ReplayError::Duplicate(70)));
        assert_eq!(w.check(2), Ok(()));
        w.accept(257).unwrap();
        assert_eq!(w.check(1), Err(ReplayError::TooOld(1)));
        assert_eq!(w.check(70), Err(ReplayError::Duplicate(70)));
    }
}
