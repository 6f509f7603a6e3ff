//! Every [`Store`] operation, written once for every backend.
//!
//! A change has one shape: begin a write transaction, read the row (as the backend
//! keeps it from concurrent changes), decide with `keyward_core::lifecycle`, write,
//! record the event, announce the change to other instances, commit. Only what the
//! [`Dialect`] says differs.

use keyward_core::audit::{Actor, EventQuery, KeyEvent};
use keyward_core::hash::KeyHash;
use keyward_core::lifecycle::{self, KeyState, Mutation, Successor};
use keyward_core::model::{ApiKey, KeyId, Metadata, Scope, UserId};
use keyward_core::time::Timestamp;
use keyward_core::usage::HourlyUsage;

use crate::db::{Backend, Columns, Param, Statement, params};
use crate::dialect::Dialect;
use crate::error::StoreError;
use crate::interface::Store;
use crate::records::{
    Applied, Consumed, ExternalChange, HourCounts, ImportedKey, LegacyCandidate, NewKeyRecord,
    PepperUsage, Replacement, Rotated, RotationTerms, UsageOf, VerifyRecord,
};
use crate::rows::{self, NewEvent, corrupt};
use crate::sql;

type Connection<D> = <<D as Dialect>::Db as sqlx::Database>::Connection;
type Row<D> = <<D as Dialect>::Db as sqlx::Database>::Row;

/// Runs one statement on a connection or transaction.
pub(crate) async fn run<D: Dialect>(
    conn: &mut Connection<D>,
    statement: Statement<'_>,
) -> Result<Vec<Row<D>>, StoreError> {
    D::Db::run(conn, statement).await
}

/// Runs one statement on a read connection.
pub(crate) async fn read<D: Dialect>(
    db: &D,
    statement: Statement<'_>,
) -> Result<Vec<Row<D>>, StoreError> {
    let mut conn = db.reader().await?;
    run::<D>(&mut conn, statement).await
}

/// Rows per bulk insert: 1,000 keys of 21 values stay under SQLite's 32,766 and
/// PostgreSQL's 65,535 bound values.
const BULK_ROWS: usize = 1_000;

/// A key row's values, in `sql::INSERT_KEY` order.
fn key_row(new: &NewKeyRecord) -> Vec<Param<'_>> {
    let key = &new.key;
    let (requests, per_seconds) = rows::rate_limit_columns(key.rate_limit);
    let mut values = params![
        key.id,
        key.user_id.as_str(),
        key.name.as_str(),
        key.description.as_deref(),
        &new.hash,
    ];
    values.push(Param::Small(Some(i32::from(new.pepper_version))));
    values.extend(params![
        key.prefix.as_str(),
        key.postfix.as_str(),
        key.status.as_str()
    ]);
    values.push(Param::Permissions(&key.permissions));
    values.extend(params![
        key.created_at,
        key.created_at,
        key.last_used_at,
        key.revoked_at,
        key.expires_at,
        requests,
        per_seconds,
        key.metadata.as_ref().map(Metadata::as_str),
        key.rotated_from,
        key.rotated_to,
        rows::remaining_column(key.remaining),
    ]);
    values
}

/// An event row's values, in `sql::INSERT_EVENT` order.
fn event_row<'a>(event: &'a NewEvent<'a>) -> Vec<Param<'a>> {
    params![
        event.at,
        event.actor.kind(),
        event.actor.id(),
        event.action,
        event.key_id,
        event.user_id.as_str(),
        event.changes.as_str(),
    ]
}

async fn insert_key_row<D: Dialect>(
    conn: &mut Connection<D>,
    new: &NewKeyRecord,
) -> Result<(), StoreError> {
    run::<D>(conn, Statement::new(sql::INSERT_KEY, key_row(new))).await?;
    Ok(())
}

async fn insert_event<D: Dialect>(
    conn: &mut Connection<D>,
    event: &NewEvent<'_>,
) -> Result<(), StoreError> {
    run::<D>(conn, Statement::new(sql::INSERT_EVENT, event_row(event))).await?;
    Ok(())
}

async fn lock_user<D: Dialect>(conn: &mut Connection<D>, user: &UserId) -> Result<(), StoreError> {
    if let Some(statement) = D::lock_user(user) {
        run::<D>(conn, statement).await?;
    }
    Ok(())
}

async fn announce<D: Dialect>(
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
) -> Result<(ApiKey, KeyHash), StoreError> {
    let statement = Statement::new(
        D::READ_KEY_TO_CHANGE,
        params![id, scope.user().map(UserId::as_str)],
    );
    let rows = run::<D>(conn, statement).await?;
    let row = rows.first().ok_or(StoreError::NotFound)?;
    Ok((key_from_row(row)?, row.hash("key_hash")?))
}

fn created_event<'a>(record: &'a NewKeyRecord, actor: &'a Actor, action: &'a str) -> NewEvent<'a> {
    NewEvent {
        at: record.key.created_at,
        actor,
        action,
        key_id: Some(record.key.id),
        user_id: &record.key.user_id,
        changes: rows::key_changes(None, Some(&record.key)),
    }
}

/// Inserts keys and their `create` events, many rows per statement.
async fn insert_all<D: Dialect>(
    db: &D,
    new: &[NewKeyRecord],
    actor: &Actor,
) -> Result<(), StoreError> {
    let mut tx = db.begin().await?;
    for chunk in new.chunks(BULK_ROWS) {
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
    }
    tx.commit().await?;
    Ok(())
}

pub(crate) fn key_from_row(row: &impl Columns) -> Result<ApiKey, StoreError> {
    Ok(ApiKey {
        id: row.id("id")?,
        user_id: owner(row)?,
        name: row.text("name")?,
        description: row.maybe_text("description")?,
        prefix: row.text("prefix")?,
        postfix: row.text("postfix")?,
        status: row.text("status")?.parse().map_err(|_| corrupt("status"))?,
        permissions: row.permissions("permissions")?,
        created_at: row.time("created_at")?,
        last_used_at: row.maybe_time("last_used_at")?,
        revoked_at: row.maybe_time("revoked_at")?,
        expires_at: row.maybe_time("expires_at")?,
        rate_limit: rate_limit(row)?,
        metadata: rows::metadata(row.maybe_text("metadata")?)?,
        rotated_from: row.maybe_id("rotated_from")?,
        rotated_to: row.maybe_id("rotated_to")?,
        remaining: rows::remaining(row.maybe_int("remaining")?)?,
    })
}

/// The `user_id` column, as stored (ids from before today's rule stay readable).
fn owner(row: &impl Columns) -> Result<UserId, StoreError> {
    UserId::from_stored(&row.text("user_id")?).map_err(|_| corrupt("user_id"))
}

fn rate_limit(row: &impl Columns) -> Result<Option<keyward_core::rate::RateLimit>, StoreError> {
    rows::rate_limit(
        row.maybe_small("rate_limit_requests")?,
        row.maybe_small("rate_limit_per_seconds")?,
    )
}

pub(crate) fn verify_record(row: &impl Columns) -> Result<VerifyRecord, StoreError> {
    Ok(VerifyRecord {
        id: row.id("id")?,
        user_id: owner(row)?,
        status: row.text("status")?.parse().map_err(|_| corrupt("status"))?,
        permissions: row.permissions("permissions")?,
        expires_at: row.maybe_time("expires_at")?,
        last_used_at: row.maybe_time("last_used_at")?,
        rate_limit: rate_limit(row)?,
        metadata: rows::metadata(row.maybe_text("metadata")?)?,
        remaining: rows::remaining(row.maybe_int("remaining")?)?,
        pepper_version: u16::try_from(row.small("pepper_version")?)
            .map_err(|_| corrupt("pepper_version"))?,
    })
}

fn event_from_row(row: &impl Columns) -> Result<KeyEvent, StoreError> {
    let (kind, id) = (row.text("actor_kind")?, row.text("actor_id")?);
    Ok(KeyEvent {
        id: row.int("id")?,
        at: row.time("at")?,
        actor: Actor::from_parts(&kind, &id).ok_or_else(|| corrupt("actor"))?,
        action: row.text("action")?,
        key_id: row.maybe_id("key_id")?,
        user_id: owner(row)?,
        changes: row.text("changes")?,
    })
}

/// An event query: its filters as ` AND column op $n`, then one page.
fn event_statement(query: &EventQuery) -> Statement<'_> {
    let filters = [
        ("key_id =", query.key_id.map(Param::from)),
        (
            "user_id =",
            query.user_id.as_ref().map(|u| Param::from(u.as_str())),
        ),
        ("at >=", query.since.map(Param::from)),
        ("id >", query.after.map(Param::from)),
    ];
    let mut sql = String::from(sql::LIST_EVENTS);
    let mut values = Vec::new();
    for (column_op, value) in filters {
        if let Some(value) = value {
            values.push(value);
            sql.push_str(&format!(" AND {column_op} ${}", values.len()));
        }
    }
    values.push(Param::from(i64::from(query.page_size())));
    sql.push_str(&format!(" ORDER BY id LIMIT ${}", values.len()));
    Statement::built(sql, values)
}

impl<D: Dialect> Store for D {
    fn backend(&self) -> &'static str {
        D::NAME
    }

    async fn migrate(&self) -> Result<(), StoreError> {
        Dialect::migrate(self).await
    }

    async fn ping(&self) -> Result<(), StoreError> {
        Dialect::ping(self).await?;
        self.writes().check(|| self.probe_write()).await
    }

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
        let rows = read(self, statement).await?;
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
        self.writes()
            .track(async move {
                let mut tx = self.begin().await?;
                set_hash::<D>(&mut tx, id, hash, version).await?;
                run::<D>(&mut tx, Statement::new(sql::FORGET_LEGACY, params![id])).await?;
                // Other instances may hold "no such key" for this hash: drop it.
                announce::<D>(&mut tx, &[*hash]).await?;
                tx.commit().await?;
                Ok(())
            })
            .await
    }

    async fn list_keys(&self, scope: Scope<'_>) -> Result<Vec<ApiKey>, StoreError> {
        let statement = match scope {
            Scope::User(user) => Statement::new(sql::LIST_KEYS_OF, params![user.as_str()]),
            Scope::Admin => Statement::new(sql::LIST_ALL_KEYS, params![]),
        };
        read(self, statement)
            .await?
            .iter()
            .map(key_from_row)
            .collect()
    }

    async fn get_key(&self, scope: Scope<'_>, id: KeyId) -> Result<Option<ApiKey>, StoreError> {
        let statement = Statement::new(sql::GET_KEY, params![id, scope.user().map(UserId::as_str)]);
        read(self, statement)
            .await?
            .first()
            .map(key_from_row)
            .transpose()
    }

    async fn find_by_hash(&self, hash: &KeyHash) -> Result<Option<VerifyRecord>, StoreError> {
        D::find_by_hash(self, hash).await
    }

    async fn most_verified_since(
        &self,
        since: Timestamp,
        limit: u32,
    ) -> Result<Vec<(KeyHash, VerifyRecord)>, StoreError> {
        let hour = keyward_core::usage::hour_of(since);
        let statement = Statement::new(sql::MOST_VERIFIED_SINCE, params![hour, i64::from(limit)]);
        let rows = read(self, statement).await?;
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
                    let (key, hash) = read_to_change::<D>(&mut tx, scope, id).await?;
                    let Some(new) = lifecycle::decide(&key, mutation, now)? else {
                        return Ok(Applied {
                            key,
                            hash,
                            changed: false,
                        });
                    };
                    run::<D>(&mut tx, write_state(id, &new, now)).await?;
                    let after = new.applied_to(key.clone());
                    let event = NewEvent {
                        at: now,
                        actor,
                        action: mutation.name(),
                        key_id: Some(id),
                        user_id: &key.user_id,
                        changes: rows::key_changes(Some(&key), Some(&after)),
                    };
                    insert_event::<D>(&mut tx, &event).await?;
                    announce::<D>(&mut tx, &[hash]).await?;
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
                let (old, old_hash) = read_to_change::<D>(&mut tx, scope, id).await?;
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

    async fn consume(&self, id: KeyId, cost: u64) -> Result<Consumed, StoreError> {
        let cost = i64::try_from(cost).unwrap_or(i64::MAX);
        if cost == 0 {
            // A check alone reads through a reader (beside the writer on SQLite).
            let mut conn = self.reader().await?;
            return remaining::<D>(&mut conn, id, 0).await;
        }
        self.writes()
            .track_if(
                async move {
                    let mut conn = self.writer().await?;
                    let rows = run::<D>(&mut conn, Statement::new(sql::CONSUME, params![id, cost]))
                        .await?;
                    if let Some(row) = rows.first() {
                        let left = row.int("remaining")?;
                        return Ok(Consumed::Left(u64::try_from(left).unwrap_or(0)));
                    }
                    remaining::<D>(&mut conn, id, cost).await
                },
                |consumed| matches!(consumed, Consumed::Left(_)),
            )
            .await
    }

    async fn record_usage(&self, usage: &[(KeyId, Timestamp)]) -> Result<u64, StoreError> {
        self.writes()
            .track_if(
                async move {
                    if usage.is_empty() {
                        return Ok(0);
                    }
                    // Rows in id order: two instances flushing overlapping batches then lock them
                    // in the same order and cannot deadlock.
                    let mut sorted = usage.to_vec();
                    sorted.sort_unstable_by_key(|(id, _)| *id);
                    let mut changed = 0;
                    let mut conn = self.writer().await?;
                    for chunk in sorted.chunks(BULK_ROWS) {
                        let values = chunk
                            .iter()
                            .flat_map(|(id, at)| params![*id, *at])
                            .collect();
                        let sql = sql::record_usage(D::BULK_BINDS, chunk.len());
                        let statement = Statement::recurring(
                            sql,
                            values,
                            chunk.len(),
                            BULK_ROWS,
                            D::KEEPS_FLUSH_STATEMENTS,
                        );
                        changed += run::<D>(&mut conn, statement).await?.len() as u64;
                    }
                    Ok(changed)
                },
                |changed| *changed > 0,
            )
            .await
    }

    async fn record_usage_history(&self, counts: &[HourCounts]) -> Result<(), StoreError> {
        self.writes()
            .track(async move { crate::usage_history::record(self, counts).await })
            .await
    }

    async fn usage_history(
        &self,
        of: UsageOf<'_>,
        from: Timestamp,
        to: Timestamp,
    ) -> Result<Vec<HourlyUsage>, StoreError> {
        crate::usage_history::read_hours(self, of, from, to).await
    }

    async fn prune_usage_history(&self, before: Timestamp) -> Result<(), StoreError> {
        self.writes()
            .track(async move { crate::usage_history::prune(self, before).await })
            .await
    }

    async fn rehash(&self, id: KeyId, hash: &KeyHash, version: u16) -> Result<(), StoreError> {
        self.writes()
            .track(async move {
                let mut tx = self.begin().await?;
                set_hash::<D>(&mut tx, id, hash, version).await?;
                announce::<D>(&mut tx, &[*hash]).await?;
                tx.commit().await?;
                Ok(())
            })
            .await
    }

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
                };
                insert_event::<D>(&mut tx, &event).await?;
                announce::<D>(&mut tx, &hashes).await?;
                tx.commit().await?;
                Ok(hashes)
            })
            .await
    }

    async fn list_events(&self, query: &EventQuery) -> Result<Vec<KeyEvent>, StoreError> {
        let rows = read(self, event_statement(query)).await?;
        rows.iter().map(event_from_row).collect()
    }

    async fn pepper_usage(&self) -> Result<Vec<PepperUsage>, StoreError> {
        let rows = read(self, Statement::new(sql::PEPPER_USAGE, params![])).await?;
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

    async fn next_external_change(&self) -> Result<ExternalChange, StoreError> {
        Dialect::next_external_change(self).await
    }

    async fn close(&self) {
        Dialect::close(self).await;
    }
}

/// Why `cost` credits could not be taken from key `id`: what it has left, or that it
/// has no such key.
async fn remaining<D: Dialect>(
    conn: &mut Connection<D>,
    id: KeyId,
    cost: i64,
) -> Result<Consumed, StoreError> {
    let rows = run::<D>(conn, Statement::new(sql::REMAINING, params![id])).await?;
    let row = rows
        .first()
        .map(|row| row.maybe_int("remaining"))
        .transpose()?;
    rows::not_consumed(row, cost.unsigned_abs())
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
    Statement::new(sql::WRITE_STATE, values)
}
