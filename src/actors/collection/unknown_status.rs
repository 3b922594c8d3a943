//! A status AMC reports that the client does not know. The API model lists PENDING, RUNNING,
//! PUBLISHING, SUCCEEDED, FAILED, REJECTED, CANCELLED (and DELETED), but AMC adds values without
//! notice; such a status is polled like a running one, for at most
//! `amc.unknown_status_max_seconds`, then the attempt fails naming it rather than waiting forever.

use std::time::{Duration, Instant};

use crate::amc::ExecutionStatus;
use crate::escape::escape_controls;

/// Since when one execution has been in statuses the client does not know.
#[derive(Debug, Default)]
pub(super) struct UnknownStatus {
    since: Option<Instant>,
}

impl UnknownStatus {
    /// Notes a polled status; returns the attempt's failure reason once an unknown status has
    /// lasted `max`.
    pub(super) fn check(
        &mut self,
        status: &ExecutionStatus,
        amc_execution_id: &str,
        max: Duration,
    ) -> Option<String> {
        let ExecutionStatus::Unknown(raw) = status else {
            self.since = None;
            return None;
        };
        let since = *self.since.get_or_insert_with(Instant::now);
        (since.elapsed() >= max).then(|| {
            format!(
                "AMC execution {amc_execution_id} stayed in status `{}`, which this client does not know, for {} s",
                escape_controls(raw),
                max.as_secs()
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unknown_status_fails_only_once_it_lasted_the_maximum_and_a_known_one_resets_it() {
        let mut unknown = UnknownStatus::default();
        let odd = ExecutionStatus::Unknown("QUEUED_FOR_REVIEW".into());
        assert_eq!(unknown.check(&odd, "e1", Duration::from_secs(60)), None);
        let reason = unknown.check(&odd, "e1", Duration::ZERO).unwrap();
        assert!(reason.contains("QUEUED_FOR_REVIEW"), "{reason}");
        assert_eq!(
            unknown.check(&ExecutionStatus::Running, "e1", Duration::ZERO),
            None
        );
        assert!(unknown.since.is_none());
    }
}
