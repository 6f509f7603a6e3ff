//! The audit trail: each change's event, written in the change's own transaction, and
//! the events read back a page at a time.

use keyward_core::audit::{EventQuery, KeyEvent};

use crate::db::{Param, Statement};
use crate::dialect::{Connection, Dialect, run};
use crate::error::StoreError;
use crate::interface::EventStore;
use crate::rows::{NewEvent, event_from_row, event_row};
use crate::sql;

impl<D: Dialect> EventStore for D {
    async fn list_events(&self, query: &EventQuery) -> Result<Vec<KeyEvent>, StoreError> {
        let rows = self.read(event_statement(query)).await?;
        rows.iter().map(event_from_row).collect()
    }
}

pub(super) async fn insert_event<D: Dialect>(
    conn: &mut Connection<D>,
    event: &NewEvent<'_>,
) -> Result<(), StoreError> {
    run::<D>(conn, Statement::new(sql::INSERT_EVENT, event_row(event))).await?;
    Ok(())
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
