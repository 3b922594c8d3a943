//! Waiting for AMC to publish the results of a SUCCEEDED execution. Right after a run ends its
//! DOWNLOAD output channel may still be `PENDING` and `downloadUrls` empty or "unavailable for
//! download" (API model of the channel: `AVAILABLE | PENDING | FAILED | UNAVAILABLE`; Amazon's
//! "Get your results" guide advises trying again within about 15 minutes). That is "not yet",
//! never "no rows": the result is asked for again with backoff for up to
//! `results.publish_grace_seconds`, then the attempt fails with that reason.

use std::time::{Duration, Instant};

use crate::backoff::{Backoff, Jitter};

/// Longest pause between two asks (AMC's guide speaks of minutes, not hours).
const MAX_PUBLISH_WAIT: Duration = Duration::from_secs(300);

/// The state of one week's wait for publication.
#[derive(Debug)]
pub struct PublishWait {
    since: Instant,
    grace: Duration,
    backoff: Backoff,
    waits: u32,
}

impl PublishWait {
    /// A wait that starts now: first pause `first` (the poll interval), doubling up to 5 minutes,
    /// for `grace` in all.
    pub fn new(first: Duration, grace: Duration) -> Self {
        let first = first.clamp(Duration::from_millis(10), MAX_PUBLISH_WAIT);
        Self {
            since: Instant::now(),
            grace,
            backoff: Backoff::new(first, MAX_PUBLISH_WAIT).with_jitter(Jitter::Equal),
            waits: 0,
        }
    }

    /// The pause before asking again, or `None` once the grace is spent. The last pause ends
    /// at the grace, so the result is asked for one last time at its end.
    pub fn next_pause(&mut self) -> Option<Duration> {
        let waited = self.since.elapsed();
        let left = self
            .grace
            .checked_sub(waited)
            .filter(|left| !left.is_zero())?;
        let pause = self.backoff.delay(self.waits).min(left);
        self.waits = self.waits.saturating_add(1);
        Some(pause)
    }

    /// How many times the result was found unpublished so far.
    pub fn waits(&self) -> u32 {
        self.waits
    }

    /// The grace, for the failure's reason.
    pub fn grace(&self) -> Duration {
        self.grace
    }
}

/// Why an attempt ends after the grace.
pub fn unpublished_reason(amc_execution_id: &str, wait: &PublishWait) -> String {
    format!(
        "AMC did not publish the results of execution {amc_execution_id} within {} s of its \
         success (asked {} times: the DOWNLOAD channel was not AVAILABLE, downloadUrls empty or \
         unavailable for download)",
        wait.grace().as_secs(),
        wait.waits() + 1
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pauses_grow_from_the_first_and_stop_at_the_grace() {
        let mut wait = PublishWait::new(Duration::from_millis(100), Duration::from_millis(50));
        let first = wait.next_pause().unwrap();
        assert!(first <= Duration::from_millis(50), "{first:?}");
        std::thread::sleep(Duration::from_millis(60)); // scenario time: the grace runs out
        assert_eq!(wait.next_pause(), None);
    }

    #[test]
    fn a_long_grace_pauses_at_most_five_minutes() {
        let mut wait = PublishWait::new(Duration::from_secs(60), Duration::from_secs(86_400));
        let pauses: Vec<_> = (0..10).map(|_| wait.next_pause().unwrap()).collect();
        assert!(pauses[0] >= Duration::from_secs(30) && pauses[0] <= Duration::from_secs(60));
        assert!(pauses.iter().all(|pause| *pause <= MAX_PUBLISH_WAIT));
        assert!(pauses[9] >= MAX_PUBLISH_WAIT / 2);
        assert_eq!(wait.waits(), 10);
    }
}
