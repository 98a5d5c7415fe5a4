//! Capped exponential backoff with "equal jitter": the one pause rule for every retry loop in
//! Orrery (a satellite dialling its masters, a master waiting for its store).
//!
//! Each failure doubles the step from `min` up to `max`; the pause is half the step fixed and
//! half random, so that peers cut off together do not all come back at the same instant.

use std::time::Duration;

use rand::Rng;

/// Pauses between attempts; [`Backoff::reset`] after a success.
#[derive(Clone, Debug)]
pub struct Backoff {
    min: Duration,
    max: Duration,
    failures: u32,
}

impl Backoff {
    /// A backoff whose first pause is about `min` and whose pauses never exceed `max`.
    pub fn new(min: Duration, max: Duration) -> Self {
        Self {
            min,
            max: max.max(min),
            failures: 0,
        }
    }

    /// The pause after one more failure.
    pub fn next_pause(&mut self) -> Duration {
        let step = self
            .min
            .saturating_mul(1u32 << self.failures.min(16))
            .min(self.max);
        self.failures = self.failures.saturating_add(1);
        let half = step / 2;
        let jitter_ms = rand::rng().random_range(0..=half.as_millis().max(1) as u64);
        (half + Duration::from_millis(jitter_ms)).min(self.max)
    }

    /// Failures since the last reset.
    pub fn failures(&self) -> u32 {
        self.failures
    }

    /// Starts again from `min` (after a success).
    pub fn reset(&mut self) {
        self.failures = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_with_jitter_caps_and_resets() {
        let mut b = Backoff::new(Duration::from_millis(200), Duration::from_secs(2));
        let first = b.next_pause();
        assert!(first >= Duration::from_millis(100) && first <= Duration::from_millis(200));
        let second = b.next_pause();
        assert!(second >= Duration::from_millis(200) && second <= Duration::from_millis(400));
        for _ in 0..40 {
            assert!(b.next_pause() <= Duration::from_secs(2));
        }
        assert!(
            b.next_pause() >= Duration::from_secs(1),
            "capped step, half fixed"
        );
        assert_eq!(b.failures(), 43);
        b.reset();
        assert_eq!(b.failures(), 0);
        assert!(b.next_pause() <= Duration::from_millis(200));
    }
}
