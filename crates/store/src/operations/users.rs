//! Users: one deleted with all their keys, and how many keys each pepper version holds.

use keyward_core::audit::Actor;
use keyward_core::hash::KeyHash;
use keyward_core::model::UserId;
use keyward_core::time::Timestamp;

use super::events::insert_event;
use super::keys::{announce, lock_user};
use crate::db::{Columns, Statement, params};
use crate::dialect::{Dialect, run};
use crate::error::StoreError;
use crate::interface::UserStore;
use crate::records::PepperUsage;
use crate::rows::{self, NewEvent};
use crate::sql;

impl<D: Dialect> UserStore for D {
    async fn delete_user(
        &self,
        user: &UserId,
        now: Timestamp,
        actor: &Actor,
    ) -> Result<Vec<KeyHash>, StoreError> {
        self.writes()
            .track(async move {
                let mut tx = self.begin().await?;
                // The same lock as key creation: a key created concurrently cannot survive.
                lock_user::<D>(&mut tx, user).await?;
                let statement = Statement::new(sql::DELETE_USER_KEYS, params![user.as_str()]);
                let rows = run::<D>(&mut tx, statement).await?;
                let hashes = rows
                    .iter()
                    .map(|row| row.hash("key_hash"))
                    .collect::<Result<Vec<_>, _>>()?;
                let mut ids = rows
                    .iter()
                    .map(|row| row.id("id"))
                    .collect::<Result<Vec<_>, _>>()?;
                ids.sort_unstable();
                let event = NewEvent {
                    at: now,
                    actor,
                    action: "delete_user",
                    key_id: None,
                    user_id: user,
                    changes: rows::deletion_changes(&ids),
                    key: None,
                };
                insert_event::<D>(&mut tx, &event).await?;
                announce::<D>(&mut tx, &hashes).await?;
                tx.commit().await?;
                Ok(hashes)
            })
            .await
    }

    async fn pepper_usage(&self) -> Result<Vec<PepperUsage>, StoreError> {
        let rows = self
            .read(Statement::new(sql::PEPPER_USAGE, params![]))
            .await?;
        rows.iter()
            .map(|row| {
                rows::pepper_usage(
                    i64::from(row.small("pepper_version")?),
                    row.int("live")?,
                    row.int("revoked")?,
                )
            })
            .collect()
    }
}
