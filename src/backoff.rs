//! The one backoff policy of the process: a delay that doubles from `base` with every attempt up
//! to `cap`, spread by a jitter. Every retry loop (AMC calls, token refreshes, a week's database
//! writes and AMC listings, failed attempts, collection actor restarts) asks a `Backoff` for its
//! next delay instead of doubling by hand, so no loop can overflow or forget its cap.

use std::time::Duration;

use rand::Rng;

/// How a delay is spread around the doubling curve, so that many waiters do not retry together.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Jitter {
    /// Exactly the curve (a single waiter, e.g. one actor's restarts).
    None,
    /// Uniform in `[0, curve]` ("full jitter": concurrent clients spread out the most).
    Full,
    /// Uniform in `[curve / 2, curve]` ("equal jitter": the pause surely grows, yet spreads).
    Equal,
    /// Uniform in `[curve × (1 − f), curve × (1 + f)]`: around the curve, possibly above the cap.
    Around(f64),
}

/// `base × 2^attempt`, capped at `cap`, then jittered. `attempt` counts from 0.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Backoff {
    base: Duration,
    cap: Duration,
    jitter: Jitter,
}

impl Backoff {
    /// A curve without jitter; `cap` below `base` caps every delay at `cap`.
    pub const fn new(base: Duration, cap: Duration) -> Self {
        Self {
            base,
            cap,
            jitter: Jitter::None,
        }
    }

    /// The same curve, spread by `jitter`.
    pub const fn with_jitter(self, jitter: Jitter) -> Self {
        Self { jitter, ..self }
    }

    /// A curve that doubles at most `doublings` times: its cap is `base × 2^doublings`.
    pub fn doubling(base: Duration, doublings: u32) -> Self {
        Self::new(base, base.saturating_mul(power_of_two(doublings)))
    }

    pub fn base(&self) -> Duration {
        self.base
    }

    pub fn cap(&self) -> Duration {
        self.cap
    }

    /// The curve without jitter: `min(cap, base × 2^attempt)`, saturating at any attempt.
    pub fn ceiling(&self, attempt: u32) -> Duration {
        self.base
            .saturating_mul(power_of_two(attempt))
            .min(self.cap)
    }

    /// The delay before retry number `attempt` (0 for the first retry).
    pub fn delay(&self, attempt: u32) -> Duration {
        let ceiling = self.ceiling(attempt);
        match self.jitter {
            Jitter::None => ceiling,
            Jitter::Full => uniform_up_to(ceiling),
            Jitter::Equal => {
                let half = ceiling / 2;
                half.saturating_add(uniform_up_to(ceiling - half))
            }
            Jitter::Around(spread) => {
                let spread = if spread.is_finite() {
                    spread.clamp(0.0, 1.0)
                } else {
                    0.0
                };
                let factor = if spread > 0.0 {
                    rand::thread_rng().gen_range(1.0 - spread..1.0 + spread)
                } else {
                    1.0
                };
                // Checked: `mul_f64` panics on overflow, and bases come from configuration.
                Duration::try_from_secs_f64(ceiling.as_secs_f64() * factor).unwrap_or(Duration::MAX)
            }
        }
    }
}

/// `2^exponent`, saturating at `u32::MAX` (a `Duration` saturates long before that matters).
fn power_of_two(exponent: u32) -> u32 {
    1u32.checked_shl(exponent.min(31)).unwrap_or(u32::MAX)
}

/// Uniform in `[0, max]`.
fn uniform_up_to(max: Duration) -> Duration {
    let nanos = u64::try_from(max.as_nanos()).unwrap_or(u64::MAX);
    if nanos == 0 {
        return Duration::ZERO;
    }
    Duration::from_nanos(rand::thread_rng().gen_range(0..=nanos))
}

#[cfg(test)]
mod tests {
    use super::*;

    const HUGE_ATTEMPTS: [u32; 6] = [31, 32, 63, 64, 1_000, u32::MAX];

    #[test]
    fn the_curve_doubles_from_the_base_and_stays_at_the_cap() {
        let backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(1));
        let delays: Vec<_> = (0..8).map(|n| backoff.delay(n)).collect();
        assert_eq!(delays[0], Duration::from_millis(100));
        assert_eq!(delays[1], Duration::from_millis(200));
        assert_eq!(delays[3], Duration::from_millis(800));
        assert!(
            delays.windows(2).all(|pair| pair[0] <= pair[1]),
            "{delays:?}"
        );
        assert!(delays[4..].iter().all(|d| *d == Duration::from_secs(1)));
    }

    #[test]
    fn huge_attempt_numbers_and_bases_saturate_at_the_cap_instead_of_overflowing() {
        let cap = Duration::from_secs(60);
        for jitter in [
            Jitter::None,
            Jitter::Full,
            Jitter::Equal,
            Jitter::Around(0.5),
        ] {
            for base in [Duration::from_millis(1), Duration::MAX] {
                let backoff = Backoff::new(base, cap).with_jitter(jitter);
                for attempt in HUGE_ATTEMPTS {
                    assert_eq!(backoff.ceiling(attempt), cap);
                    assert!(backoff.delay(attempt) <= cap.mul_f64(1.5));
                }
            }
        }
        let unbounded = Backoff::new(Duration::MAX, Duration::MAX).with_jitter(Jitter::Around(0.5));
        assert!(unbounded.delay(u32::MAX) >= Duration::from_secs(1));
    }

    #[test]
    fn full_jitter_stays_between_zero_and_the_curve() {
        let backoff = Backoff::new(Duration::from_millis(10), Duration::from_millis(50))
            .with_jitter(Jitter::Full);
        for attempt in 0..40 {
            assert!(backoff.delay(attempt) <= backoff.ceiling(attempt));
        }
    }

    #[test]
    fn equal_jitter_stays_between_half_the_curve_and_the_curve() {
        let backoff = Backoff::new(Duration::from_secs(2), Duration::from_secs(300))
            .with_jitter(Jitter::Equal);
        for attempt in 0..40 {
            let (delay, ceiling) = (backoff.delay(attempt), backoff.ceiling(attempt));
            assert!(
                delay >= ceiling / 2 && delay <= ceiling,
                "{attempt}: {delay:?}"
            );
        }
    }

    #[test]
    fn jitter_around_the_curve_stays_within_its_spread() {
        let backoff = Backoff::new(Duration::from_secs(1), Duration::from_secs(64))
            .with_jitter(Jitter::Around(0.5));
        for attempt in 0..40 {
            let (delay, ceiling) = (backoff.delay(attempt), backoff.ceiling(attempt));
            assert!(
                delay >= ceiling.mul_f64(0.5) && delay <= ceiling.mul_f64(1.5),
                "{attempt}: {delay:?}"
            );
        }
    }

    #[test]
    fn a_curve_of_bounded_doublings_is_capped_at_the_last_one() {
        let backoff = Backoff::doubling(Duration::from_millis(500), 10);
        assert_eq!(backoff.delay(0), Duration::from_millis(500));
        assert_eq!(backoff.delay(10), Duration::from_millis(500 * 1024));
        assert_eq!(backoff.delay(u32::MAX), Duration::from_millis(500 * 1024));
    }
}
