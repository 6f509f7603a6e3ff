//! The usage history operations (verifications per key and hour), written once for
//! every backend like the rest of `operations.rs`, beside it to keep that file short.

use keyward_core::time::Timestamp;
use keyward_core::usage::{HourlyUsage, UsageCounts};

use crate::db::{Columns, Param, Statement, params};
use crate::dialect::Dialect;
use crate::error::StoreError;
use crate::operations::{read, run};
use crate::records::{HourCounts, UsageOf};
use crate::rows::corrupt;
use crate::sql;

/// Rows per upsert: 1,000 rows of 4 values, far under both backends' bound values.
const ROWS_PER_STATEMENT: usize = 1_000;

pub(crate) async fn record<D: Dialect>(db: &D, counts: &[HourCounts]) -> Result<(), StoreError> {
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
    if sorted.len() <= ROWS_PER_STATEMENT {
        let mut conn = db.writer().await?;
        upsert::<D>(&mut conn, &sorted).await
    } else {
        let mut tx = db.begin().await?;
        upsert::<D>(&mut tx, &sorted).await?;
        tx.commit().await?;
        Ok(())
    }
}

/// Adds `sorted` to the stored counts, a statement per [`ROWS_PER_STATEMENT`] rows.
async fn upsert<D: Dialect>(
    conn: &mut <D::Db as sqlx::Database>::Connection,
    sorted: &[HourCounts],
) -> Result<(), StoreError> {
    for chunk in sorted.chunks(ROWS_PER_STATEMENT) {
        let values = chunk
            .iter()
            .flat_map(|c| {
                params![
                    c.key_id,
                    c.hour,
                    clamp(c.counts.valid),
                    clamp(c.counts.refused)
                ]
            })
            .collect::<Vec<Param<'_>>>();
        debug_assert_eq!(values.len(), chunk.len() * sql::HISTORY_ROW_WIDTH);
        let sql = sql::record_usage_history(D::BULK_BINDS, chunk.len());
        let statement = Statement::recurring(
            sql,
            values,
            chunk.len(),
            ROWS_PER_STATEMENT,
            D::KEEPS_FLUSH_STATEMENTS,
        );
        run::<D>(conn, statement).await?;
    }
    Ok(())
}

fn clamp(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

pub(crate) async fn read_hours<D: Dialect>(
    db: &D,
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
    read(db, statement).await?.iter().map(hourly).collect()
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

pub(crate) async fn prune<D: Dialect>(db: &D, before: Timestamp) -> Result<(), StoreError> {
    let mut conn = db.writer().await?;
    let statement = Statement::new(sql::PRUNE_USAGE_HISTORY, params![before]);
    run::<D>(&mut conn, statement).await?;
    Ok(())
}
