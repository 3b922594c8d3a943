//! The guard of one AMC slot held by a week. The slot is freed only by the guard's `Drop` (also
//! when the week's future is cancelled), and a week that ends its hold on AMC does so through
//! [`Slot::release_after`], which takes the guard along into the write that makes the database
//! stop counting the week as in flight: the slot cannot be freed before that write has landed
//! (freed earlier, the next intent on the instance was refused as over the limit).

use std::future::Future;

use actix::prelude::*;

use super::steps::WeekContext;
use crate::actors::gateway::{AcquireSlot, AmcGateway, ReleaseSlot};
use crate::ids::WeekId;

/// One AMC slot held by a week; released when dropped.
pub struct Slot {
    gateway: Addr<AmcGateway>,
    instance_id: String,
    week_id: WeekId,
}

impl Slot {
    /// Waits for a slot. A week whose execution already exists on AMC holds one since its
    /// collection was loaded (the Supervisor adopts it), and is granted it at once.
    pub async fn acquire(cx: &WeekContext, week_id: WeekId) -> Slot {
        let backoff = cx.policy.infra_backoff();
        let mut failures = 0;
        loop {
            let request = AcquireSlot {
                instance_id: cx.instance.instance_id.clone(),
                collection_id: cx.collection_id,
                week_id,
            };
            match cx.gateway.send(request).await {
                Ok(Ok(())) => break,
                Ok(Err(error)) => tracing::warn!(%error, "Slot request failed; asking again."),
                Err(error) => {
                    tracing::warn!(%error, "Gateway unavailable; asking for a slot again.")
                }
            }
            actix_rt::time::sleep(backoff.delay(failures)).await;
            failures = failures.saturating_add(1);
        }
        Slot {
            gateway: cx.gateway.clone(),
            instance_id: cx.instance.instance_id.clone(),
            week_id,
        }
    }

    /// Awaits `write` (the week's transition out of flight), then frees the slot: the guard is
    /// consumed here and dropped at the end of this scope, after the write returned.
    pub async fn release_after<T>(self, write: impl Future<Output = T>) -> T {
        write.await
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.gateway.do_send(ReleaseSlot {
            instance_id: std::mem::take(&mut self.instance_id),
            week_id: self.week_id,
        });
    }
}

#[cfg(test)]
mod tests {
    use secrecy::SecretString;

    use super::*;
    use crate::actors::gateway::GetGatewayStatus;
    use crate::amc::AmcClient;
    use crate::ids::CollectionId;

    const INSTANCE: &str = "amc-instance";

    /// A gateway that is never asked to call AMC (its URLs point at a closed loopback port).
    fn gateway(limit: usize) -> Addr<AmcGateway> {
        let mut config = crate::config::Settings::default().client_config_with(
            "id",
            SecretString::from("s"),
            SecretString::from("r"),
        );
        config.token_url = "http://127.0.0.1:9/token".into();
        config.base_url_override = Some("http://127.0.0.1:9".into());
        let client = AmcClient::new(config).expect("valid loopback client configuration");
        AmcGateway::new(client, limit).start()
    }

    async fn in_use(gateway: &Addr<AmcGateway>) -> usize {
        let status = gateway.send(GetGatewayStatus).await.expect("gateway alive");
        status.slots.get(INSTANCE).map_or(0, |slots| slots.in_use)
    }

    async fn granted(gateway: &Addr<AmcGateway>, week_id: WeekId) -> Slot {
        let request = AcquireSlot {
            instance_id: INSTANCE.into(),
            collection_id: CollectionId::new(),
            week_id,
        };
        gateway
            .send(request)
            .await
            .expect("gateway alive")
            .expect("slot granted");
        Slot {
            gateway: gateway.clone(),
            instance_id: INSTANCE.into(),
            week_id,
        }
    }

    #[actix_rt::test]
    async fn a_slot_is_held_while_the_write_it_guards_runs_and_freed_once_that_write_returned() {
        let gateway = gateway(1);
        let slot = granted(&gateway, WeekId::new()).await;
        let held_during_write = slot.release_after(in_use(&gateway)).await;
        assert_eq!(held_during_write, 1);
        assert_eq!(in_use(&gateway).await, 0);
    }

    #[actix_rt::test]
    async fn a_slot_dropped_with_its_future_is_freed_for_the_next_week() {
        let gateway = gateway(1);
        let slot = granted(&gateway, WeekId::new()).await;
        let cancelled = slot.release_after(std::future::pending::<()>());
        drop(cancelled);
        let next = granted(&gateway, WeekId::new()).await;
        assert_eq!(in_use(&gateway).await, 1);
        drop(next);
        assert_eq!(in_use(&gateway).await, 0);
    }
}
