//! The audit trail's shapes: recorded changes, their pages, and the queries that
//! page through them.

use keyward_core::audit::{self, EventQuery, KeyEvent};
use keyward_core::model::UserId;
use keyward_core::time::Timestamp;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use super::validate::optional;

/// Who made a change.
#[derive(Serialize, ToSchema)]
pub struct ActorDto {
    /// `user`: the key's owner, through this API; `admin`: a service with the
    /// static service token, or the CLI; `credential`: a service with one of its
    /// credentials.
    #[serde(rename = "type")]
    #[schema(example = "user")]
    pub kind: &'static str,
    /// The user id; `service` / `cli` for administrators; the credential's name.
    pub id: String,
    /// The credential's id, for `credential`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub credential_id: Option<Uuid>,
}

/// One recorded change to a key (or, for `delete_user`, to a user's keys).
#[derive(Serialize, ToSchema)]
pub struct KeyEventResponse {
    /// Increasing in the order events were recorded; pass the last one seen as
    /// `after` to read on.
    pub id: i64,
    #[schema(format = DateTime)]
    pub at: String,
    pub actor: ActorDto,
    /// `create`, `suspend`, `reactivate`, `revoke`, `set_permissions`,
    /// `set_rate_limit`, `edit` (PATCH), `rotate`, `import` (AutoGPT import) or
    /// `delete_user`.
    #[schema(example = "suspend")]
    pub action: String,
    /// Absent for `delete_user`, which lists the removed keys in `changes.keys`.
    pub key_id: Option<Uuid>,
    /// The owner of the key(s).
    pub user_id: String,
    /// For each field that changed: `{"before": …, "after": …}`. Never a secret.
    #[schema(value_type = Object, example = json!({"status": {"before": "ACTIVE", "after": "SUSPENDED"}}))]
    pub changes: serde_json::Value,
}

impl From<KeyEvent> for KeyEventResponse {
    fn from(event: KeyEvent) -> Self {
        Self {
            id: event.id,
            at: event.at.to_rfc3339(),
            actor: ActorDto {
                kind: event.actor.kind(),
                id: event.actor.id().to_owned(),
                credential_id: event.actor.credential_id().map(|id| *id.as_uuid()),
            },
            action: event.action,
            key_id: event.key_id.map(|id| *id.as_uuid()),
            user_id: event.user_id.as_str().to_owned(),
            // Written by the store as a JSON object; anything else is a bug, shown
            // as null rather than failing the whole page.
            changes: serde_json::from_str(&event.changes).unwrap_or_default(),
        }
    }
}

/// A page of events, oldest first.
#[derive(Serialize, ToSchema)]
pub struct EventPage {
    pub events: Vec<KeyEventResponse>,
    /// When the page is full: the `after` value for the next page. Null when there
    /// is nothing more (for now).
    pub next_after: Option<i64>,
}

impl EventPage {
    pub fn new(events: Vec<KeyEvent>, limit: u32) -> Self {
        let next_after = (events.len() as u64 >= u64::from(limit))
            .then(|| events.last().map(|e| e.id))
            .flatten();
        Self {
            events: events.into_iter().map(Into::into).collect(),
            next_after,
        }
    }
}

/// Paging through a key's events.
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct KeyEventsQuery {
    /// Events after this one (the previous page's `next_after`).
    #[param(minimum = 0)]
    pub after: Option<i64>,
    /// Page size, 1–1000 (default 100).
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<u32>,
}

/// Selecting and paging through events across keys.
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AdminEventsQuery {
    /// Only this user's keys.
    pub user_id: Option<String>,
    /// Only events recorded at or after this time (RFC 3339).
    #[param(format = DateTime)]
    pub since: Option<String>,
    /// Events after this one (the previous page's `next_after`).
    #[param(minimum = 0)]
    pub after: Option<i64>,
    /// Page size, 1–1000 (default 100).
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<u32>,
}

impl AdminEventsQuery {
    /// The events asked for: a user id as stored (so a user whose id predates
    /// today's rules is found), a time in RFC 3339, a page within bounds.
    pub fn to_query(&self) -> Result<EventQuery, String> {
        let (after, limit) = audit::page(self.after, self.limit)?;
        Ok(EventQuery {
            key_id: None,
            user_id: optional("user_id", self.user_id.as_deref(), UserId::from_stored)?,
            since: optional("since", self.since.as_deref(), Timestamp::parse_rfc3339)?,
            after,
            limit,
        })
    }
}
