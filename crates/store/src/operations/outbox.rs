//! The outbox: a webhook event written inside the transaction of whatever causes it
//! (a key's change, a condition found, a test), with a delivery for each endpoint
//! subscribed to its type. Shared by every operation that raises events; it depends
//! on none of them.

use keyward_core::model::KeyId;
use keyward_core::time::Timestamp;
use keyward_core::webhook::{EventType, new_event_id};
use serde_json::Value;

use crate::db::{Statement, params};
use crate::dialect::{Connection, Dialect, run};
use crate::error::StoreError;
use crate::rows::event_body;
use crate::sql;

/// Queues an event of `kind` about key `key` for every enabled endpoint subscribed
/// to it, inside the caller's transaction; nothing is written when none is.
pub(super) async fn enqueue<D: Dialect>(
    conn: &mut Connection<D>,
    kind: EventType,
    key: Option<KeyId>,
    at: Timestamp,
    data: Value,
) -> Result<(), StoreError> {
    if !subscribed::<D>(conn, kind).await? {
        return Ok(());
    }
    let event_id = insert_event::<D>(conn, kind, key, at, data).await?;
    let fan_out = params![event_id.as_str(), key, at, kind.as_str()];
    run::<D>(conn, Statement::new(sql::FAN_OUT, fan_out)).await?;
    Ok(())
}

/// Whether an enabled endpoint subscribes to `kind`.
pub(super) async fn subscribed<D: Dialect>(
    conn: &mut Connection<D>,
    kind: EventType,
) -> Result<bool, StoreError> {
    let rows = run::<D>(
        conn,
        Statement::new(sql::SUBSCRIBED, params![kind.as_str()]),
    )
    .await?;
    Ok(!rows.is_empty())
}

/// Writes an event's row (its body as it will be sent); its id.
pub(super) async fn insert_event<D: Dialect>(
    conn: &mut Connection<D>,
    kind: EventType,
    key: Option<KeyId>,
    at: Timestamp,
    data: Value,
) -> Result<String, StoreError> {
    let id = new_event_id(at);
    let body = event_body(kind, at, data);
    let values = params![id.as_str(), kind.as_str(), key, at, body];
    run::<D>(conn, Statement::new(sql::INSERT_WEBHOOK_EVENT, values)).await?;
    Ok(id)
}
