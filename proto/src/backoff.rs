//! Capped exponential backoff with "equal jitter": the one pause rule for every retry loop in
//! Orrery (a satellite dialling its masters, a master waiting for its store).
//!
//! [`Backoff`] is the policy: each failure doubles the step from `min` up to a cap, and the pause
//! is half the step fixed and half random, so that peers cut off together do not all come back
//! at the same instant. [`Retry`] counts the failures of one retry loop under a policy.

use std::time::Duration;

use rand::Rng;

/// The reconnection policy: how long to pause after a failure, from the link's history.
///
/// A master that was healthy a moment ago is most likely restarting: it is dialled again at
/// least every `recent_max` (≈ 1 s) for `recent` after the last healthy session ended, so a
/// satellite is back within about a second of the master. Otherwise (a satellite that has
/// not reached a master since it started, or one whose master has been away longer than
/// `recent`) the pause doubles from `min` to `max`, so that a cluster of satellites does not
/// hammer a master that is down for long. Either way half of each pause is random ("equal
/// jitter"), so that satellites cut off together do not come back together.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Backoff {
    /// The first pause after a failure.
    pub min: Duration,
    /// The longest pause.
    pub max: Duration,
    /// The longest pause within `recent` of a healthy session.
    pub recent_max: Duration,
    /// How long after a healthy session the low cap `recent_max` holds.
    pub recent: Duration,
    /// A session that lasted this long was healthy: it resets the failure count.
    pub stable_session: Duration,
}

impl Default for Backoff {
    /// 250 ms doubling to 30 s; at most 1 s for 5 minutes after a session of 5 s or more.
    fn default() -> Self {
        Self {
            min: Duration::from_millis(250),
            max: Duration::from_secs(30),
            recent_max: Duration::from_secs(1),
            recent: Duration::from_secs(300),
            stable_session: Duration::from_secs(5),
        }
    }
}

impl Backoff {
    /// The pause before jitter after `failures` failures in a row (0: none, dial at once),
    /// `since_healthy` after the last healthy session ended (`None`: there was none).
    pub fn step(&self, failures: u32, since_healthy: Option<Duration>) -> Duration {
        if failures == 0 {
            return Duration::ZERO;
        }
        let cap = match since_healthy {
            Some(d) if d < self.recent => self.recent_max.min(self.max),
            _ => self.max,
        };
        self.min
            .saturating_mul(1u32 << (failures - 1).min(16))
            .min(cap)
    }

    /// Equal jitter: half of `step` fixed, half random.
    pub fn jitter(step: Duration, rng: &mut impl Rng) -> Duration {
        let half = step / 2;
        half + Duration::from_millis(rng.random_range(0..=half.as_millis() as u64))
    }
}

impl Backoff {
    /// A plain policy: about `min` first, doubling to `max`, with no low cap after health.
    pub fn capped(min: Duration, max: Duration) -> Self {
        let max = max.max(min);
        Self {
            min,
            max,
            recent_max: max,
            recent: Duration::ZERO,
            stable_session: Duration::MAX,
        }
    }
}

/// The failures of one retry loop (e.g. a master waiting for its store); [`Retry::reset`] after
/// a success.
#[derive(Clone, Debug)]
pub struct Retry {
    policy: Backoff,
    failures: u32,
}

impl Retry {
    pub fn new(policy: Backoff) -> Self {
        Self {
            policy,
            failures: 0,
        }
    }

    /// The pause after one more failure.
    pub fn next_pause(&mut self) -> Duration {
        self.failures = self.failures.saturating_add(1);
        Backoff::jitter(self.policy.step(self.failures, None), &mut rand::rng())
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
    use rand::SeedableRng;

    const S: fn(u64) -> Duration = Duration::from_secs;
    const MS: fn(u64) -> Duration = Duration::from_millis;

    #[test]
    fn backoff_doubles_to_the_cap_without_a_healthy_session() {
        let b = Backoff::default();
        assert_eq!(b.step(0, None), Duration::ZERO);
        assert_eq!(b.step(1, None), MS(250));
        assert_eq!(b.step(2, None), MS(500));
        assert_eq!(b.step(5, None), S(4));
        assert_eq!(b.step(8, None), S(30));
        assert_eq!(b.step(u32::MAX, None), S(30));
        // A healthy session long ago does not hold the pause down.
        assert_eq!(b.step(8, Some(S(301))), S(30));
    }

    #[test]
    fn backoff_stays_low_after_a_recent_healthy_session() {
        let b = Backoff::default();
        // The master was healthy 25 s ago (a restart or a short outage): at most 1 s.
        for failures in 1..40 {
            assert!(b.step(failures, Some(S(25))) <= S(1), "{failures}");
        }
        assert_eq!(b.step(1, Some(S(0))), MS(250));
        assert_eq!(b.step(30, Some(S(299))), S(1));
        // A low overall cap wins over the recent cap.
        let tight = Backoff { max: MS(300), ..b };
        assert_eq!(tight.step(30, Some(S(1))), MS(300));
    }

    #[test]
    fn jitter_is_between_half_and_all_of_the_step() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let mut seen = std::collections::BTreeSet::new();
        for _ in 0..1000 {
            let p = Backoff::jitter(S(1), &mut rng);
            assert!(p >= MS(500) && p <= S(1), "{p:?}");
            seen.insert(p.as_millis() / 100);
        }
        assert!(seen.len() >= 5, "not spread: {seen:?}");
        assert_eq!(Backoff::jitter(Duration::ZERO, &mut rng), Duration::ZERO);
    }

    #[test]
    fn a_retry_grows_with_jitter_caps_and_resets() {
        let mut b = Retry::new(Backoff::capped(MS(200), S(2)));
        let first = b.next_pause();
        assert!(first >= MS(100) && first <= MS(200), "{first:?}");
        let second = b.next_pause();
        assert!(second >= MS(200) && second <= MS(400), "{second:?}");
        for _ in 0..40 {
            assert!(b.next_pause() <= S(2));
        }
        assert!(b.next_pause() >= S(1), "capped step, half fixed");
        assert_eq!(b.failures(), 43);
        b.reset();
        assert_eq!(b.failures(), 0);
        assert!(b.next_pause() <= MS(200));
    }
}
