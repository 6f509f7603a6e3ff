//! Users: one deleted with all their keys, and how many keys each pepper version holds.

use keyward_core::audit::Actor;
use keyward_core::hash::KeyHash;
use keyward_core::model::{ApiKey, KeyStatus, UserId};
use keyward_core::time::Timestamp;
use keyward_core::webhook::EventType;
use serde_json::json;

use super::events::insert_event;
use super::keys::{announce, lock_user};
use super::outbox::{enqueue, subscribed};
use crate::db::{Columns, Statement, params};
use crate::dialect::{Dialect, run};
use crate::error::{StoreError, corrupt};
use crate::interface::UserStore;
use crate::records::PepperUsage;
use crate::rows::{self, NewEvent, key_from_row};
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
                // Keys that still worked stop working: each is announced as revoked.
                let announced = if subscribed::<D>(&mut tx, EventType::KeyRevoked).await? {
                    let list = Statement::new(sql::LIST_KEYS_OF, params![user.as_str()]);
                    let rows = run::<D>(&mut tx, list).await?;
                    let keys = rows
                        .iter()
                        .map(key_from_row)
                        .collect::<Result<Vec<_>, _>>()?;
                    keys.into_iter()
                        .filter(|key| key.status != KeyStatus::Revoked)
                        .collect()
                } else {
                    Vec::new()
                };
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
                for before in &announced {
                    let after = ApiKey {
                        status: KeyStatus::Revoked,
                        revoked_at: Some(now),
                        ..before.clone()
                    };
                    let data = json!({
                        "key": rows::public_record(&after),
                        "actor": rows::actor_value(actor),
                        "changes": serde_json::from_str::<serde_json::Value>(
                            &rows::key_changes(Some(before), Some(&after))
                        ).map_err(|_| corrupt("changes"))?,
                        "user_deleted": true,
                    });
                    enqueue::<D>(&mut tx, EventType::KeyRevoked, Some(before.id), now, data)
                        .await?;
                }
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
