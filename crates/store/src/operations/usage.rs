//! Usage: `last_used_at` written in batches, usage credits taken, and the usage
//! history (verifications per key and hour) added to, read and pruned.

use keyward_core::model::KeyId;
use keyward_core::time::Timestamp;
use keyward_core::usage::{HourlyUsage, UsageCounts};

use crate::db::{Columns, Param, Statement, params};
use crate::dialect::{Connection, Dialect, run};
use crate::error::{StoreError, corrupt};
use crate::interface::UsageStore;
use crate::records::{Consumed, Draw, Drawn, HourCounts, UsageOf};
use crate::rows;
use crate::sql;

impl<D: Dialect> UsageStore for D {
    async fn consume(
        &self,
        id: KeyId,
        cost: u64,
        refill_since: Option<Timestamp>,
    ) -> Result<Consumed, StoreError> {
        let cost = i64::try_from(cost).unwrap_or(i64::MAX);
        if cost == 0 {
            // A check alone reads through a reader (beside the writer on SQLite).
            let mut conn = self.reader().await?;
            return remaining::<D>(&mut conn, id, 0, refill_since).await;
        }
        self.writes()
            .track_if(
                async move {
                    let mut conn = self.writer().await?;
                    let take = Statement::new(sql::CONSUME, params![id, cost, refill_since]);
                    let rows = run::<D>(&mut conn, take).await?;
                    if let Some(row) = rows.first() {
                        let left = row.int("remaining")?;
                        return Ok(Consumed::Left(u64::try_from(left).unwrap_or(0)));
                    }
                    remaining::<D>(&mut conn, id, cost, refill_since).await
                },
                |consumed| matches!(consumed, Consumed::Left(_)),
            )
            .await
    }

    async fn draw(&self, draw: &Draw<'_>) -> Result<Drawn, StoreError> {
        let cost = i64::try_from(draw.cost).unwrap_or(i64::MAX);
        if cost == 0 {
            let mut conn = self.reader().await?;
            let key = match draw.key {
                Some((id, since)) => Some(remaining::<D>(&mut conn, id, 0, since).await?),
                None => None,
            };
            if key.is_some_and(|key| !taken(key)) {
                return Ok(Drawn { key, user: None });
            }
            let user = user_remaining::<D>(&mut conn, draw, 0).await?;
            return Ok(Drawn {
                key,
                user: Some(user),
            });
        }
        self.writes()
            .track_if(
                async move {
                    if draw.key.is_none() {
                        // The owner's credits alone: one statement, no transaction.
                        let mut conn = self.writer().await?;
                        let user = take_user::<D>(&mut conn, draw, cost).await?;
                        return Ok(Drawn {
                            key: None,
                            user: Some(user),
                        });
                    }
                    // Both or neither: the owner's refusal gives the key's credits back.
                    let mut tx = self.begin().await?;
                    let key = match draw.key {
                        Some((id, since)) => Some(take_key::<D>(&mut tx, id, cost, since).await?),
                        None => None,
                    };
                    if key.is_some_and(|key| !taken(key)) {
                        return Ok(Drawn { key, user: None });
                    }
                    let user = take_user::<D>(&mut tx, draw, cost).await?;
                    if taken(user) {
                        tx.commit().await?;
                    }
                    Ok(Drawn {
                        key,
                        user: Some(user),
                    })
                },
                |drawn| drawn.user.is_some_and(taken),
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
                    let mut conn = self.writer().await?;
                    let row = |(id, at): &(KeyId, Timestamp)| params![*id, *at];
                    flush::<D, _>(&mut conn, &sorted, sql::record_usage, row).await
                },
                |changed| *changed > 0,
            )
            .await
    }

    async fn record_usage_history(&self, counts: &[HourCounts]) -> Result<(), StoreError> {
        self.writes()
            .track(async move {
                if counts.is_empty() {
                    return Ok(());
                }
                // Rows in (key, hour) order: two instances flushing overlapping batches then
                // lock them in the same order and cannot deadlock.
                let mut sorted = counts.to_vec();
                sorted.sort_unstable_by_key(|c| (c.key_id, c.hour));
                // Counts are added to what is stored: a batch must be written whole or not at
                // all, or the engine's retry of a failed batch adds its first chunks twice. One
                // statement is atomic by itself; several share a transaction.
                if sorted.len() <= sql::BULK_ROWS {
                    let mut conn = self.writer().await?;
                    upsert::<D>(&mut conn, &sorted).await
                } else {
                    let mut tx = self.begin().await?;
                    upsert::<D>(&mut tx, &sorted).await?;
                    tx.commit().await?;
                    Ok(())
                }
            })
            .await
    }

    async fn usage_history(
        &self,
        of: UsageOf<'_>,
        from: Timestamp,
        to: Timestamp,
    ) -> Result<Vec<HourlyUsage>, StoreError> {
        let statement = match of {
            UsageOf::Key(id) => Statement::new(sql::KEY_USAGE_HISTORY, params![id, from, to]),
            UsageOf::User(user) => {
                Statement::new(sql::USER_USAGE_HISTORY, params![user.as_str(), from, to])
            }
            UsageOf::All => Statement::new(sql::ALL_USAGE_HISTORY, params![from, to]),
        };
        self.read(statement).await?.iter().map(hourly).collect()
    }

    async fn prune_usage_history(&self, before: Timestamp) -> Result<(), StoreError> {
        self.writes()
            .track(async move {
                let mut conn = self.writer().await?;
                let statement = Statement::new(sql::PRUNE_USAGE_HISTORY, params![before]);
                run::<D>(&mut conn, statement).await?;
                Ok(())
            })
            .await
    }
}

/// Whether credits were taken (or there was no limit to take them from).
fn taken(consumed: Consumed) -> bool {
    matches!(consumed, Consumed::Left(_) | Consumed::Unlimited)
}

/// Takes `cost` credits from key `id` (see `sql::CONSUME`).
async fn take_key<D: Dialect>(
    conn: &mut Connection<D>,
    id: KeyId,
    cost: i64,
    refill_since: Option<Timestamp>,
) -> Result<Consumed, StoreError> {
    let take = Statement::new(sql::CONSUME, params![id, cost, refill_since]);
    if let Some(row) = run::<D>(conn, take).await?.first() {
        return Ok(Consumed::Left(
            u64::try_from(row.int("remaining")?).unwrap_or(0),
        ));
    }
    remaining::<D>(conn, id, cost, refill_since).await
}

/// Takes `cost` credits from the owner in `draw`, first making their default balance
/// if they have none.
async fn take_user<D: Dialect>(
    conn: &mut Connection<D>,
    draw: &Draw<'_>,
    cost: i64,
) -> Result<Consumed, StoreError> {
    let user = draw.user.as_str();
    let since = draw.user_refill_since;
    for _ in 0..2 {
        let take = Statement::new(sql::CONSUME_USER, params![user, cost, since]);
        if let Some(row) = run::<D>(conn, take).await?.first() {
            return Ok(Consumed::Left(
                u64::try_from(row.int("remaining")?).unwrap_or(0),
            ));
        }
        let left = user_remaining::<D>(conn, draw, cost).await?;
        let (Consumed::Missing, Some(grant)) = (left, draw.default) else {
            return Ok(left);
        };
        let mut values = params![
            user,
            rows::remaining_column(Some(grant.remaining)),
            draw.now
        ];
        values.extend(rows::refill_columns(grant.refill));
        run::<D>(
            conn,
            Statement::new(sql::INSERT_DEFAULT_USER_CREDITS, values),
        )
        .await?;
    }
    user_remaining::<D>(conn, draw, cost).await
}

/// Why `cost` credits could not be taken from the owner in `draw`: what they have
/// left (their default balance, not made yet, when they have none), or no limit.
async fn user_remaining<D: Dialect>(
    conn: &mut Connection<D>,
    draw: &Draw<'_>,
    cost: i64,
) -> Result<Consumed, StoreError> {
    let statement = Statement::new(
        sql::REMAINING_USER,
        params![draw.user.as_str(), draw.user_refill_since],
    );
    let rows = run::<D>(conn, statement).await?;
    let row = rows
        .first()
        .map(|row| row.maybe_int("remaining"))
        .transpose()?;
    Ok(
        match (rows::not_consumed(row, cost.unsigned_abs())?, draw.default) {
            (Consumed::Missing, Some(grant)) if cost == 0 && grant.remaining > 0 => {
                Consumed::Left(grant.remaining)
            }
            (Consumed::Missing, None) => Consumed::Unlimited,
            (other, _) => other,
        },
    )
}

/// Why `cost` credits could not be taken from key `id`: what it has left (refilled
/// when due at `refill_since`), or that it has no such key.
async fn remaining<D: Dialect>(
    conn: &mut Connection<D>,
    id: KeyId,
    cost: i64,
    refill_since: Option<Timestamp>,
) -> Result<Consumed, StoreError> {
    let statement = Statement::new(sql::REMAINING, params![id, refill_since]);
    let rows = run::<D>(conn, statement).await?;
    let row = rows
        .first()
        .map(|row| row.maybe_int("remaining"))
        .transpose()?;
    rows::not_consumed(row, cost.unsigned_abs())
}

/// Adds `sorted` to the stored counts.
async fn upsert<D: Dialect>(
    conn: &mut Connection<D>,
    sorted: &[HourCounts],
) -> Result<(), StoreError> {
    let row = |c: &HourCounts| {
        params![
            c.key_id,
            c.hour,
            clamp(c.counts.valid),
            clamp(c.counts.refused)
        ]
    };
    flush::<D, _>(conn, sorted, sql::record_usage_history, row).await?;
    Ok(())
}

/// Writes a flush's `rows`, a statement of `statement`'s text per [`sql::BULK_ROWS`]
/// rows, each row's values from `values` (owned: ids, times, counts); how many rows
/// the statements returned.
async fn flush<D: Dialect, T>(
    conn: &mut Connection<D>,
    rows: &[T],
    statement: fn(sql::Binds, usize) -> String,
    values: impl Fn(&T) -> Vec<Param<'static>>,
) -> Result<u64, StoreError> {
    let mut returned = 0;
    for chunk in rows.chunks(sql::BULK_ROWS) {
        let params = chunk.iter().flat_map(&values).collect();
        let sql = statement(D::BULK_BINDS, chunk.len());
        let statement = Statement::recurring(
            sql,
            params,
            chunk.len(),
            sql::BULK_ROWS,
            D::KEEPS_FLUSH_STATEMENTS,
        );
        returned += run::<D>(conn, statement).await?.len() as u64;
    }
    Ok(returned)
}

fn clamp(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn hourly(row: &impl Columns) -> Result<HourlyUsage, StoreError> {
    let count = |column: &str| -> Result<u64, StoreError> {
        u64::try_from(row.int(column)?).map_err(|_| corrupt(column))
    };
    Ok(HourlyUsage {
        hour: row.time("hour")?,
        counts: UsageCounts {
            valid: count("valid")?,
            refused: count("refused")?,
        },
    })
}
