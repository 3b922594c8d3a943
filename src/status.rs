//! The persisted status vocabularies of weeks and collections. A collection's status is derived
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

// `workflow_executions.status`: what the collector writes (`submitting` before the create,
// `pending` once AMC answered, `succeeded`, `refused` when AMC refused the create for a limit,
// `failed`) and, in between, AMC's own status lower-cased (`running`, `publishing`, ...).
text_enum!(ExecutionStatus, "execution", {
    Submitting => "submitting",
    Pending => "pending",
    Running => "running",
    Publishing => "publishing",
    Succeeded => "succeeded",
    Failed => "failed",
    Cancelled => "cancelled",
    Refused => "refused",
});

impl ExecutionStatus {
    /// Statuses in which an execution still holds one of its instance's slots on AMC.
    pub const LIVE: [ExecutionStatus; 4] = [
        ExecutionStatus::Submitting,
        ExecutionStatus::Pending,
        ExecutionStatus::Running,
        ExecutionStatus::Publishing,
    ];
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
}
