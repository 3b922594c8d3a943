//! The persisted status vocabularies of weeks, collections and executions. A collection's status is derived
//! from its weeks by the store (`store::progress`), never from submissions.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

#[derive(Debug, thiserror::Error)]
#[error("unknown {kind} status `{value}`")]
pub struct UnknownStatus {
    kind: &'static str,
    value: String,
}

macro_rules! text_enum {
    ($name:ident, $kind:literal, { $($variant:ident => $text:literal),+ $(,)? }) => {
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
        #[serde(rename_all = "lowercase")]
        pub enum $name { $($variant),+ }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];
            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.pad(self.as_str())
            }
        }

        impl TryFrom<String> for $name {
            type Error = UnknownStatus;
            fn try_from(s: String) -> Result<Self, Self::Error> {
                s.parse()
            }
        }

        impl FromStr for $name {
            type Err = UnknownStatus;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s {
                    $($text => Ok($name::$variant),)+
                    _ => Err(UnknownStatus { kind: $kind, value: s.to_string() }),
                }
            }
        }
    };
}

text_enum!(WeekStatus, "week", {
    Pending => "pending",
    Submitting => "submitting",
    Running => "running",
    Downloading => "downloading",
    Completed => "completed",
    Failed => "failed",
    Cancelled => "cancelled",
});

text_enum!(CollectionStatus, "collection", {
    Pending => "pending",
    Running => "running",
    Paused => "paused",
    Completed => "completed",
    Failed => "failed",
    Cancelled => "cancelled",
});

/// `workflow_executions.status`, every value the collector writes: `submitting` before the
/// create, `pending` once AMC answered, `refused` when AMC refused the create for a limit (it never
/// ran), `succeeded` and `failed` with the week's own transition, and in between AMC's own status
/// lower-cased (`running`, `publishing`, and at an end `rejected`, `cancelled`, `deleted`). A
/// status AMC adds later is kept verbatim, lower-cased (`Other`), as it always was stored.
/// AMC's wire enum (`amc::ExecutionStatus`) becomes this one only through `from_amc`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ExecutionStatus {
    Submitting,
    Pending,
    Running,
    Publishing,
    Succeeded,
    Failed,
    Rejected,
    Cancelled,
    Deleted,
    Refused,
    /// A status AMC reported that this client does not know, lower-cased.
    Other(String),
}

impl ExecutionStatus {
    /// Every known status (not `Other`).
    pub const ALL: [ExecutionStatus; 10] = [
        ExecutionStatus::Submitting,
        ExecutionStatus::Pending,
        ExecutionStatus::Running,
        ExecutionStatus::Publishing,
        ExecutionStatus::Succeeded,
        ExecutionStatus::Failed,
        ExecutionStatus::Rejected,
        ExecutionStatus::Cancelled,
        ExecutionStatus::Deleted,
        ExecutionStatus::Refused,
    ];

    /// Statuses in which an execution still holds one of its instance's slots on AMC.
    pub const LIVE: [ExecutionStatus; 4] = [
        ExecutionStatus::Submitting,
        ExecutionStatus::Pending,
        ExecutionStatus::Running,
        ExecutionStatus::Publishing,
    ];

    /// The stored text.
    pub fn as_str(&self) -> &str {
        match self {
            ExecutionStatus::Submitting => "submitting",
            ExecutionStatus::Pending => "pending",
            ExecutionStatus::Running => "running",
            ExecutionStatus::Publishing => "publishing",
            ExecutionStatus::Succeeded => "succeeded",
            ExecutionStatus::Failed => "failed",
            ExecutionStatus::Rejected => "rejected",
            ExecutionStatus::Cancelled => "cancelled",
            ExecutionStatus::Deleted => "deleted",
            ExecutionStatus::Refused => "refused",
            ExecutionStatus::Other(text) => text,
        }
    }

    /// The one mapping from AMC's wire status: AMC's spelling lower-cased, as it is stored.
    pub fn from_amc(status: &crate::amc::ExecutionStatus) -> Self {
        use crate::amc::ExecutionStatus as Amc;
        match status {
            Amc::Pending => ExecutionStatus::Pending,
            Amc::Running => ExecutionStatus::Running,
            Amc::Publishing => ExecutionStatus::Publishing,
            Amc::Succeeded => ExecutionStatus::Succeeded,
            Amc::Failed => ExecutionStatus::Failed,
            Amc::Rejected => ExecutionStatus::Rejected,
            Amc::Cancelled => ExecutionStatus::Cancelled,
            Amc::Deleted => ExecutionStatus::Deleted,
            Amc::Unknown(raw) => raw.to_ascii_lowercase().into(),
        }
    }
}

impl fmt::Display for ExecutionStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

/// Any stored text is a status: one this client does not know is `Other`.
impl From<String> for ExecutionStatus {
    fn from(text: String) -> Self {
        ExecutionStatus::ALL
            .into_iter()
            .find(|status| status.as_str() == text)
            .unwrap_or(ExecutionStatus::Other(text))
    }
}

impl From<&str> for ExecutionStatus {
    fn from(text: &str) -> Self {
        text.to_string().into()
    }
}

impl WeekStatus {
    /// Statuses in which an AMC execution may exist and still need attention.
    pub fn is_in_flight(self) -> bool {
        matches!(
            self,
            WeekStatus::Submitting | WeekStatus::Running | WeekStatus::Downloading
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_round_trip_through_text() {
        for status in WeekStatus::ALL {
            assert_eq!(status.as_str().parse::<WeekStatus>().unwrap(), *status);
        }
        assert!("succeeded".parse::<WeekStatus>().is_err());
    }

    #[test]
    fn every_execution_status_reads_back_as_itself() {
        let other = ExecutionStatus::Other("queued_for_review".into());
        for status in ExecutionStatus::ALL.into_iter().chain([other]) {
            assert_eq!(ExecutionStatus::from(status.as_str()), status);
        }
    }

    #[test]
    fn every_amc_status_is_stored_as_its_lower_cased_spelling() {
        use crate::amc::ExecutionStatus as Amc;
        for raw in [
            "PENDING",
            "RUNNING",
            "PUBLISHING",
            "SUCCEEDED",
            "FAILED",
            "REJECTED",
            "CANCELLED",
            "DELETED",
            "QUEUED_FOR_REVIEW",
        ] {
            let stored = ExecutionStatus::from_amc(&Amc::from(raw));
            assert_eq!(stored.as_str(), raw.to_ascii_lowercase());
        }
        assert_eq!(
            ExecutionStatus::from_amc(&Amc::Deleted),
            ExecutionStatus::Deleted
        );
    }
}
