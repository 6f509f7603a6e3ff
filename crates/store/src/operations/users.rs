//! Users: one deleted with all their keys, and how many keys each pepper version holds.

use keyward_core::audit::Actor;
use keyward_core::credits::UserLimits;
use keyward_core::hash::KeyHash;
use keyward_core::model::{ApiKey, KeyStatus, UserId};
use keyward_core::time::Timestamp;
use keyward_core::webhook::EventType;
use serde_json::json;

use super::events::insert_event;
use super::keys::{announce, lock_user};
use super::outbox::{enqueue, subscribed};
use crate::db::{Columns, Statement, params};
use crate::dialect::{Connection, Dialect, run};
use crate::error::{StoreError, corrupt};
use crate::interface::UserStore;
use crate::records::{PepperUsage, UserLimitsRecord};
use crate::rows::{self, NewEvent, key_from_row};
use crate::sql;

/// A user's stored limits, in the caller's transaction.
async fn read_limits<D: Dialect>(
    conn: &mut Connection<D>,
    user: &UserId,
) -> Result<Option<UserLimitsRecord>, StoreError> {
    let statement = Statement::new(sql::GET_USER_LIMITS, params![user.as_str()]);
    let rows = run::<D>(conn, statement).await?;
    rows.first().map(rows::user_limits_from_row).transpose()
}

/// Records a change of a user's limits as `action` and announces the hashes of the
/// user's keys (the limits travel with them in every instance's cache); the hashes.
async fn limits_changed<D: Dialect>(
    conn: &mut Connection<D>,
    user: &UserId,
    action: &str,
    changes: String,
    now: Timestamp,
    actor: &Actor,
) -> Result<Vec<KeyHash>, StoreError> {
    let event = NewEvent {
        at: now,
        actor,
        action,
        key_id: None,
        user_id: user,
        changes,
        key: None,
    };
    insert_event::<D>(conn, &event).await?;
    let statement = Statement::new(sql::USER_KEY_HASHES, params![user.as_str()]);
    let hashes = run::<D>(conn, statement)
        .await?
        .iter()
        .map(|row| row.hash("key_hash"))
        .collect::<Result<Vec<_>, _>>()?;
    announce::<D>(conn, &hashes).await?;
    Ok(hashes)
}

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
                // What the user's keys shared goes with them: after the keys, in the
                // order a verification takes credits (key, then owner), so the two
                // cannot deadlock.
                let limits = Statement::new(sql::DELETE_USER_LIMITS, params![user.as_str()]);
                run::<D>(&mut tx, limits).await?;
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

    async fn user_limits(&self, user: &UserId) -> Result<Option<UserLimitsRecord>, StoreError> {
        let statement = Statement::new(sql::GET_USER_LIMITS, params![user.as_str()]);
        let rows = self.read(statement).await?;
        rows.first().map(rows::user_limits_from_row).transpose()
    }

    async fn set_user_limits(
        &self,
        user: &UserId,
        limits: &UserLimits,
        now: Timestamp,
        actor: &Actor,
    ) -> Result<Vec<KeyHash>, StoreError> {
        self.writes()
            .track(async move {
                let mut tx = self.begin().await?;
                // The lock key creation takes: a key created meanwhile is either among
                // the hashes announced or created after the change, never missed.
                lock_user::<D>(&mut tx, user).await?;
                let before = read_limits::<D>(&mut tx, user).await?;
                let put = Statement::new(
                    sql::PUT_USER_LIMITS,
                    rows::user_limits_row(user, limits, now),
                );
                run::<D>(&mut tx, put).await?;
                let before = before.filter(|b| b.explicit).map(|b| b.limits);
                let changes = rows::user_limits_changes(before.as_ref(), Some(limits));
                let hashes =
                    limits_changed::<D>(&mut tx, user, "set_user_limits", changes, now, actor)
                        .await?;
                tx.commit().await?;
                Ok(hashes)
            })
            .await
    }

    async fn delete_user_limits(
        &self,
        user: &UserId,
        now: Timestamp,
        actor: &Actor,
    ) -> Result<Option<Vec<KeyHash>>, StoreError> {
        self.writes()
            .track(async move {
                let mut tx = self.begin().await?;
                lock_user::<D>(&mut tx, user).await?;
                // Only limits set for the user: the balance kept for the default
                // credits stays (removing it would give the user a fresh default).
                let Some(before) = read_limits::<D>(&mut tx, user)
                    .await?
                    .filter(|b| b.explicit)
                    .map(|b| b.limits)
                else {
                    return Ok(None);
                };
                let delete = Statement::new(sql::DELETE_USER_LIMITS, params![user.as_str()]);
                run::<D>(&mut tx, delete).await?;
                let changes = rows::user_limits_changes(Some(&before), None);
                let hashes =
                    limits_changed::<D>(&mut tx, user, "delete_user_limits", changes, now, actor)
                        .await?;
                tx.commit().await?;
                Ok(Some(hashes))
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
