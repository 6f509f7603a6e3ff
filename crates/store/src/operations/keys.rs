//! Keys: created, imported, listed, read, changed, rotated and re-hashed.

use keyward_core::audit::Actor;
use keyward_core::hash::KeyHash;
use keyward_core::leak::{self, Sighting};
use keyward_core::lifecycle::{self, KeyState, Mutation, Successor};
use keyward_core::model::{ApiKey, KeyId, Metadata, Scope, UserId};
use keyward_core::time::Timestamp;
use keyward_core::webhook::EventType;

use super::events::{insert_event, queue_webhook};
use super::outbox::subscribed;
use crate::db::{Columns, Param, Statement, params};
use crate::dialect::{Connection, Dialect, run};
use crate::error::{StoreError, corrupt};
use crate::interface::KeyStore;
use crate::records::{
    Applied, ImportedKey, LegacyCandidate, NewKeyRecord, Replacement, Rotated, RotationTerms,
    VerifyRecord,
};
use crate::rows::{self, NewEvent, event_row, key_from_row, key_row, verify_record};
use crate::sql;

impl<D: Dialect> KeyStore for D {
    async fn insert_key(
        &self,
        new: &NewKeyRecord,
        max_live: u32,
        actor: &Actor,
    ) -> Result<(), StoreError> {
        self.writes()
            .track(async move {
                let key = &new.key;
                let mut tx = self.begin().await?;
                lock_user::<D>(&mut tx, &key.user_id).await?;
                if count_live::<D>(&mut tx, &key.user_id, key.created_at).await?
                    >= i64::from(max_live)
                {
                    return Err(StoreError::LimitReached { limit: max_live });
                }
                insert_key_row::<D>(&mut tx, new).await?;
                insert_event::<D>(&mut tx, &created_event(new, actor, "create")).await?;
                tx.commit().await?;
                Ok(())
            })
            .await
    }

    async fn insert_keys(&self, new: &[NewKeyRecord], actor: &Actor) -> Result<(), StoreError> {
        self.writes()
            .track(async move {
                self.bulk_load(true).await?;
                let inserted = insert_all(self, new, actor).await;
                let restored = self.bulk_load(false).await;
                inserted?;
                restored
            })
            .await
    }

    async fn import_keys(&self, keys: &[ImportedKey], actor: &Actor) -> Result<u64, StoreError> {
        self.writes()
            .track(async move {
                let mut tx = self.begin().await?;
                let mut added = 0;
                for key in keys {
                    let id = key.record.key.id;
                    let exists =
                        run::<D>(&mut tx, Statement::new(sql::KEY_EXISTS, params![id])).await?;
                    if !exists.is_empty() {
                        continue;
                    }
                    insert_key_row::<D>(&mut tx, &key.record).await?;
                    let (kind, digest, salt) = rows::legacy_columns(&key.legacy);
                    let legacy = params![
                        id,
                        kind,
                        digest.as_slice(),
                        salt.as_deref(),
                        key.head.as_str()
                    ];
                    run::<D>(&mut tx, Statement::new(sql::INSERT_LEGACY, legacy)).await?;
                    insert_event::<D>(&mut tx, &created_event(&key.record, actor, "import"))
                        .await?;
                    added += 1;
                }
                tx.commit().await?;
                Ok(added)
            })
            .await
    }

    async fn legacy_candidates(
        &self,
        sha256: &[u8; 32],
        head: &str,
    ) -> Result<Vec<LegacyCandidate>, StoreError> {
        let statement = Statement::new(sql::LEGACY_CANDIDATES, params![sha256.as_slice(), head]);
        let rows = self.read(statement).await?;
        rows.iter()
            .map(|row| {
                Ok(LegacyCandidate {
                    record: verify_record(row)?,
                    legacy: rows::legacy_hash(
                        &row.text("kind")?,
                        &row.bytes("digest")?,
                        row.maybe_bytes("salt")?,
                    )?,
                })
            })
            .collect()
    }

    async fn upgrade_legacy(
        &self,
        id: KeyId,
        hash: &KeyHash,
        version: u16,
    ) -> Result<(), StoreError> {
        // The AutoGPT hash is forgotten in the same transaction.
        let forget = Statement::new(sql::FORGET_LEGACY, params![id]);
        set_hash_and_announce(self, id, hash, version, Retired::Legacy(forget)).await
    }

    async fn list_keys(&self, scope: Scope<'_>) -> Result<Vec<ApiKey>, StoreError> {
        let statement = match scope {
            Scope::User(user) => Statement::new(sql::LIST_KEYS_OF, params![user.as_str()]),
            Scope::Admin => Statement::new(sql::LIST_ALL_KEYS, params![]),
        };
        self.read(statement)
            .await?
            .iter()
            .map(key_from_row)
            .collect()
    }

    async fn get_key(&self, scope: Scope<'_>, id: KeyId) -> Result<Option<ApiKey>, StoreError> {
        let statement = Statement::new(sql::GET_KEY, params![id, scope.user().map(UserId::as_str)]);
        self.read(statement)
            .await?
            .first()
            .map(key_from_row)
            .transpose()
    }

    async fn find_by_hash(&self, hash: &KeyHash) -> Result<Option<VerifyRecord>, StoreError> {
        <D as Dialect>::find_by_hash(self, hash).await
    }

    async fn most_verified_since(
        &self,
        since: Timestamp,
        limit: u32,
    ) -> Result<Vec<(KeyHash, VerifyRecord)>, StoreError> {
        let hour = keyward_core::usage::hour_of(since);
        let statement = Statement::new(sql::MOST_VERIFIED_SINCE, params![hour, i64::from(limit)]);
        let rows = self.read(statement).await?;
        rows.iter()
            .map(|row| Ok((row.hash("key_hash")?, verify_record(row)?)))
            .collect()
    }

    async fn apply(
        &self,
        scope: Scope<'_>,
        id: KeyId,
        mutation: &Mutation,
        now: Timestamp,
        actor: &Actor,
    ) -> Result<Applied, StoreError> {
        self.writes()
            .track_if(
                async move {
                    let mut tx = self.begin().await?;
                    let (key, hash) = read_to_change::<D>(&mut tx, scope, id, now).await?;
                    let Some(new) = lifecycle::decide(&key, mutation, now)? else {
                        return Ok(Applied {
                            key,
                            hash,
                            changed: false,
                        });
                    };
                    let after =
                        write_change::<D>(&mut tx, &key, hash, new, mutation, now, actor).await?;
                    tx.commit().await?;
                    Ok(Applied {
                        key: after,
                        hash,
                        changed: true,
                    })
                },
                |applied| applied.changed,
            )
            .await
    }

    async fn rotate(
        &self,
        scope: Scope<'_>,
        id: KeyId,
        replacement: &Replacement,
        terms: RotationTerms,
        now: Timestamp,
        actor: &Actor,
    ) -> Result<Rotated, StoreError> {
        self.writes()
            .track(async move {
                let mut tx = self.begin().await?;
                let (old, old_hash) = read_to_change::<D>(&mut tx, scope, id, now).await?;
                let successor = Successor {
                    id: replacement.id,
                    prefix: &replacement.prefix,
                    postfix: &replacement.postfix,
                };
                let rotation = lifecycle::rotate(&old, successor, terms.grace_seconds, now)?;
                let (ending, new) = (rotation.ending, rotation.new);
                // Serialised with creates for the same user, as in `insert_key`.
                lock_user::<D>(&mut tx, &old.user_id).await?;
                let live = count_live::<D>(&mut tx, &old.user_id, now).await?;
                rows::rotation_fits(live, &ending, now, terms.max_live_per_user)?;
                let end = params![
                    id,
                    ending.expires_at,
                    replacement.id,
                    now,
                    rows::remaining_column(ending.remaining),
                ];
                run::<D>(&mut tx, Statement::new(sql::END_ROTATED, end)).await?;
                let record = NewKeyRecord {
                    key: new,
                    hash: replacement.hash,
                    pepper_version: replacement.pepper_version,
                };
                insert_key_row::<D>(&mut tx, &record).await?;
                for event in rows::rotation_events(&old, &ending, &record.key, now, actor) {
                    insert_event::<D>(&mut tx, &event).await?;
                }
                announce::<D>(&mut tx, &[old_hash, replacement.hash]).await?;
                tx.commit().await?;
                Ok(Rotated {
                    old: ending,
                    old_hash,
                    new: record.key,
                })
            })
            .await
    }

    async fn report_leak(
        &self,
        id: KeyId,
        change: Option<&Mutation>,
        sighting: &Sighting,
        now: Timestamp,
        actor: &Actor,
    ) -> Result<Option<Applied>, StoreError> {
        self.writes()
            .track_if(
                async move {
                    let mut tx = self.begin().await?;
                    let (key, hash) =
                        match read_to_change::<D>(&mut tx, Scope::Admin, id, now).await {
                            Ok(found) => found,
                            Err(StoreError::NotFound) => return Ok(None),
                            Err(err) => return Err(err),
                        };
                    if !leak::is_live(key.status, key.expires_at, now) {
                        return Ok(None);
                    }
                    let mut after = key.clone();
                    let mut changed = false;
                    // A change the key's status does not allow (suspending a suspended
                    // key) is simply not made: the leak is recorded all the same.
                    if let Some(change) = change
                        && let Ok(Some(new)) = lifecycle::decide(&key, change, now)
                    {
                        after =
                            write_change::<D>(&mut tx, &key, hash, new, change, now, actor).await?;
                        changed = true;
                    }
                    let leaked = NewEvent {
                        at: now,
                        actor,
                        action: "leaked",
                        key_id: Some(id),
                        user_id: &key.user_id,
                        changes: rows::sighting_changes(sighting),
                        key: Some(&after),
                    };
                    insert_event::<D>(&mut tx, &leaked).await?;
                    tx.commit().await?;
                    Ok(Some(Applied {
                        key: after,
                        hash,
                        changed,
                    }))
                },
                |applied| applied.is_some(),
            )
            .await
    }

    async fn rehash(
        &self,
        id: KeyId,
        from: &KeyHash,
        hash: &KeyHash,
        version: u16,
    ) -> Result<(), StoreError> {
        set_hash_and_announce(self, id, hash, version, Retired::Hash(*from)).await
    }
}

/// What a key's move to a new hash leaves behind: the hash it had under a retired
/// pepper (announced, as instances may hold the key under it), or its AutoGPT
/// credential (a statement that forgets it, in the same transaction).
enum Retired<'a> {
    Hash(KeyHash),
    Legacy(Statement<'a>),
}

/// Moves key `id` to `hash` (under pepper `version`) and settles what it leaves
/// behind, in one transaction, and tells other instances: they may hold "no such key"
/// for the new hash.
async fn set_hash_and_announce<D: Dialect>(
    db: &D,
    id: KeyId,
    hash: &KeyHash,
    version: u16,
    retired: Retired<'_>,
) -> Result<(), StoreError> {
    db.writes()
        .track(async move {
            let mut tx = db.begin().await?;
            set_hash::<D>(&mut tx, id, hash, version).await?;
            let announced = match retired {
                Retired::Hash(old) => vec![*hash, old],
                Retired::Legacy(forget) => {
                    run::<D>(&mut tx, forget).await?;
                    vec![*hash]
                }
            };
            announce::<D>(&mut tx, &announced).await?;
            tx.commit().await?;
            Ok(())
        })
        .await
}

async fn insert_key_row<D: Dialect>(
    conn: &mut Connection<D>,
    new: &NewKeyRecord,
) -> Result<(), StoreError> {
    run::<D>(conn, Statement::new(sql::INSERT_KEY, key_row(new))).await?;
    Ok(())
}

pub(super) async fn lock_user<D: Dialect>(
    conn: &mut Connection<D>,
    user: &UserId,
) -> Result<(), StoreError> {
    if let Some(statement) = D::lock_user(user) {
        run::<D>(conn, statement).await?;
    }
    Ok(())
}

pub(super) async fn announce<D: Dialect>(
    conn: &mut Connection<D>,
    hashes: &[KeyHash],
) -> Result<(), StoreError> {
    for statement in D::announce(hashes) {
        run::<D>(conn, statement).await?;
    }
    Ok(())
}

/// The keys that count toward `user`'s cap at `at` (see `sql::COUNT_LIVE`).
async fn count_live<D: Dialect>(
    conn: &mut Connection<D>,
    user: &UserId,
    at: Timestamp,
) -> Result<i64, StoreError> {
    let rows = run::<D>(
        conn,
        Statement::new(sql::COUNT_LIVE, params![user.as_str(), at]),
    )
    .await?;
    rows.first().ok_or_else(|| corrupt("live"))?.int("live")
}

/// Reads a key in `scope` inside a write transaction, so the
/// change is decided on the row as it is.
async fn read_to_change<D: Dialect>(
    conn: &mut Connection<D>,
    scope: Scope<'_>,
    id: KeyId,
    now: Timestamp,
) -> Result<(ApiKey, KeyHash), StoreError> {
    let statement = Statement::new(
        D::READ_KEY_TO_CHANGE,
        params![id, scope.user().map(UserId::as_str)],
    );
    let rows = run::<D>(conn, statement).await?;
    let row = rows.first().ok_or(StoreError::NotFound)?;
    let mut key = key_from_row(row)?;
    // A change is decided on the key as it stands: credits due a refill are
    // refilled (and written so with the change).
    key.credits_as_of(now);
    Ok((key, row.hash("key_hash")?))
}

fn created_event<'a>(record: &'a NewKeyRecord, actor: &'a Actor, action: &'a str) -> NewEvent<'a> {
    NewEvent {
        at: record.key.created_at,
        actor,
        action,
        key_id: Some(record.key.id),
        user_id: &record.key.user_id,
        changes: rows::key_changes(None, Some(&record.key)),
        key: Some(&record.key),
    }
}

/// Inserts keys and their `create` events, many rows per statement.
async fn insert_all<D: Dialect>(
    db: &D,
    new: &[NewKeyRecord],
    actor: &Actor,
) -> Result<(), StoreError> {
    let mut tx = db.begin().await?;
    // Asked once: a bulk load of keys nobody listens for writes no event.
    let announced = subscribed::<D>(&mut tx, EventType::KeyCreated).await?;
    for chunk in new.chunks(sql::BULK_ROWS) {
        let keys = chunk.iter().flat_map(key_row).collect();
        run::<D>(
            &mut tx,
            Statement::built(sql::insert_keys(D::BULK_BINDS, chunk.len()), keys),
        )
        .await?;
        let events: Vec<NewEvent<'_>> = chunk
            .iter()
            .map(|record| created_event(record, actor, "create"))
            .collect();
        let values = events.iter().flat_map(event_row).collect();
        run::<D>(
            &mut tx,
            Statement::built(sql::insert_events(D::BULK_BINDS, chunk.len()), values),
        )
        .await?;
        if announced {
            for event in &events {
                queue_webhook::<D>(&mut tx, event).await?;
            }
        }
    }
    tx.commit().await?;
    Ok(())
}

async fn set_hash<D: Dialect>(
    conn: &mut Connection<D>,
    id: KeyId,
    hash: &KeyHash,
    version: u16,
) -> Result<(), StoreError> {
    let mut values = params![id, hash];
    values.push(Param::Small(Some(i32::from(version))));
    run::<D>(conn, Statement::new(sql::SET_HASH, values)).await?;
    Ok(())
}

/// The statement writing `state` on key `id` at `now`.
/// Writes a change `mutation` decided (`new`) to `key`, records it in the audit trail
/// as `actor`'s and announces the key's `hash` to other instances; the key as it now
/// is. The one way a decided change reaches the database, in the caller's transaction.
async fn write_change<D: Dialect>(
    tx: &mut Connection<D>,
    key: &ApiKey,
    hash: KeyHash,
    new: KeyState,
    mutation: &Mutation,
    now: Timestamp,
    actor: &Actor,
) -> Result<ApiKey, StoreError> {
    run::<D>(tx, write_state(key.id, &new, now)).await?;
    let after = new.applied_to(key.clone());
    let event = NewEvent {
        at: now,
        actor,
        action: mutation.name(),
        key_id: Some(key.id),
        user_id: &key.user_id,
        changes: rows::key_changes(Some(key), Some(&after)),
        key: Some(&after),
    };
    insert_event::<D>(tx, &event).await?;
    announce::<D>(tx, &[hash]).await?;
    Ok(after)
}

fn write_state(id: KeyId, state: &KeyState, now: Timestamp) -> Statement<'_> {
    let (requests, per_seconds) = rows::rate_limit_columns(state.rate_limit);
    let mut values = params![id, state.status.as_str(), state.revoked_at];
    values.push(Param::Permissions(&state.permissions));
    values.extend(params![
        now,
        requests,
        per_seconds,
        state.name.as_str(),
        state.description.as_deref(),
        state.expires_at,
        state.metadata.as_ref().map(Metadata::as_str),
        rows::remaining_column(state.remaining),
    ]);
    values.push(rows::allowed_ips_column(state.allowed_ips.as_ref()));
    values.extend(rows::refill_columns(state.refill));
    values.push(state.credits_set_at.into());
    Statement::new(sql::WRITE_STATE, values)
}
