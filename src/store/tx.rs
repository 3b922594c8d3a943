//! One transaction on either backend (`Tx`, `on_tx!`), a statement in both dialects (`Sql`), and
//! the JSON id lists batch statements take: the plumbing the week transitions (`transitions`) and
//! the typed relations (`typed`) share, so neither imports the other for it.

use serde_json::{json, Value};

use super::Store;

/// An open transaction on either backend.
pub(super) enum Tx {
    Postgres(sqlx::Transaction<'static, sqlx::Postgres>),
    Sqlite(sqlx::Transaction<'static, sqlx::Sqlite>),
}

/// Runs the same sqlx code on whichever transaction `tx` holds (`$conn` is the connection).
macro_rules! on_tx {
    ($tx:expr, |$conn:ident| $body:expr) => {
        match $tx {
            $crate::store::tx::Tx::Postgres(tx) => {
                let $conn = &mut **tx;
                $body
            }
            $crate::store::tx::Tx::Sqlite(tx) => {
                let $conn = &mut **tx;
                $body
            }
        }
    };
}
pub(super) use on_tx;

/// One statement in both dialects.
pub(super) struct Sql {
    pub postgres: &'static str,
    pub sqlite: &'static str,
}

impl Tx {
    pub(in crate::store) async fn begin(store: &Store) -> Result<Tx, sqlx::Error> {
        Ok(match store {
            Store::Postgres(pool) => Tx::Postgres(pool.begin().await?),
            Store::Sqlite(pool) => Tx::Sqlite(pool.begin().await?),
        })
    }

    pub(in crate::store) async fn commit(self) -> Result<(), sqlx::Error> {
        match self {
            Tx::Postgres(tx) => tx.commit().await,
            Tx::Sqlite(tx) => tx.commit().await,
        }
    }

    /// The statement in this transaction's dialect.
    pub(super) fn sql(&self, sql: &Sql) -> &'static str {
        match self {
            Tx::Postgres(_) => sql.postgres,
            Tx::Sqlite(_) => sql.sqlite,
        }
    }
}

/// A JSON array of `{"id": …}` objects.
pub(super) fn id_list<T: serde::Serialize>(ids: impl IntoIterator<Item = T>) -> String {
    let ids: Vec<Value> = ids.into_iter().map(|id| json!({ "id": id })).collect();
    Value::from(ids).to_string()
}
