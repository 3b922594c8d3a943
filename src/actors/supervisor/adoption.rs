//! The one place AMC slots are adopted: executions already on AMC (weeks `submitting` or
//! `running` in the database) hold their slots in the gateway before anything new is granted.
//! The Supervisor adopts them when it claims collections (before any child starts, so one child
//! cannot take the slots of another's executions) and when it starts a child (fresh or restarted
//! after its futures, and the slots they held, were dropped). Adopting is idempotent.

use std::collections::BTreeMap;

use actix::Addr;

use crate::actors::gateway::{AdoptSlots, AmcGateway};
use crate::ids::{CollectionId, WeekId};
use crate::status::WeekStatus;
use crate::store::model::CollectionSnapshot;

/// Counts the slots of these in-flight weeks (`week, collection, AMC instance id`), one message
/// per collection and instance. Queued at once: they reach the gateway before any slot request
/// of a child started after this.
pub(super) fn adopt_in_flight(
    gateway: &Addr<AmcGateway>,
    weeks: impl IntoIterator<Item = (WeekId, CollectionId, String)>,
) {
    let mut grouped: BTreeMap<(String, CollectionId), Vec<WeekId>> = BTreeMap::new();
    for (week_id, collection_id, instance_id) in weeks {
        grouped
            .entry((instance_id, collection_id))
            .or_default()
            .push(week_id);
    }
    for ((instance_id, collection_id), week_ids) in grouped {
        gateway.do_send(AdoptSlots {
            instance_id,
            collection_id,
            week_ids,
        });
    }
}

/// The in-flight weeks of a loaded collection, as `adopt_in_flight` takes them.
pub(super) fn in_flight_of(
    snapshot: &CollectionSnapshot,
) -> impl Iterator<Item = (WeekId, CollectionId, String)> + '_ {
    snapshot
        .weeks
        .iter()
        .filter(|week| matches!(week.status, WeekStatus::Submitting | WeekStatus::Running))
        .map(|week| {
            (
                week.id,
                snapshot.collection.id,
                snapshot.instance.instance_id.clone(),
            )
        })
}
