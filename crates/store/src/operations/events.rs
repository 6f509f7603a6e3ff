//! The audit trail: each change's event, written in the change's own transaction, and
//! the events read back a page at a time.

use keyward_core::audit::{EventQuery, KeyEvent};
use keyward_core::webhook::EventType;
use serde_json::{Value, json};

use crate::db::{Param, Statement};
use crate::dialect::{Connection, Dialect, run};
use crate::error::{StoreError, corrupt};
use crate::interface::EventStore;
use crate::rows::{self, NewEvent, event_from_row, event_row};
use crate::sql;

impl<D: Dialect> EventStore for D {
    async fn list_events(&self, query: &EventQuery) -> Result<Vec<KeyEvent>, StoreError> {
        let rows = self.read(event_statement(query)).await?;
        rows.iter().map(event_from_row).collect()
    }
}

/// Records a change in the audit trail and, in the same transaction, queues the
/// webhook event it announces for every endpoint subscribed to it.
pub(super) async fn insert_event<D: Dialect>(
    conn: &mut Connection<D>,
    event: &NewEvent<'_>,
) -> Result<(), StoreError> {
    run::<D>(conn, Statement::new(sql::INSERT_EVENT, event_row(event))).await?;
    queue_webhook::<D>(conn, event).await
}

/// Queues the webhook event a recorded change announces, if it announces one (see
/// `EventType::of_action`), for every endpoint subscribed to it.
pub(super) async fn queue_webhook<D: Dialect>(
    conn: &mut Connection<D>,
    event: &NewEvent<'_>,
) -> Result<(), StoreError> {
    let (Some(key), Some(kind)) = (event.key, EventType::of_action(event.action)) else {
        return Ok(());
    };
    let changes: Value = serde_json::from_str(&event.changes).map_err(|_| corrupt("changes"))?;
    let data = json!({
        "key": rows::public_record(key),
        "actor": rows::actor_value(event.actor),
        "changes": changes,
    });
    super::outbox::enqueue::<D>(conn, kind, Some(key.id), event.at, data).await
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
