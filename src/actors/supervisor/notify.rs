//! Postgres fast path for operators' controls: the CLI announces a change with `NOTIFY` and the
//! Supervisor scans at once instead of at its next interval. The periodic scan stays the
//! fallback (a notification may be lost while the listener reconnects).

use actix::prelude::*;

use super::{ScanNow, Supervisor};
use crate::store::{Store, CONTROL_CHANNEL};

impl Supervisor {
    /// Listens for control notifications when the store is Postgres.
    pub(super) fn listen_for_controls(&mut self, ctx: &mut Context<Self>) {
        let Store::Postgres(pool) = &self.store else {
            return;
        };
        let (pool, me) = (pool.clone(), ctx.address());
        let listen = async move {
            let mut listener = match sqlx::postgres::PgListener::connect_with(&pool).await {
                Ok(listener) => listener,
                Err(error) => {
                    tracing::warn!(%error, "Cannot listen for control notifications; scanning only.");
                    return;
                }
            };
            if let Err(error) = listener.listen(CONTROL_CHANNEL).await {
                tracing::warn!(%error, "Cannot listen for control notifications; scanning only.");
                return;
            }
            // `recv` reconnects by itself after a lost connection.
            while let Ok(notification) = listener.recv().await {
                tracing::info!(
                    collection_id = notification.payload(),
                    "Control notification received."
                );
                me.do_send(ScanNow);
            }
        };
        ctx.spawn(listen.into_actor(self));
    }
}
