//! A webhook endpoint's shapes: the endpoint as shown (its secret only in the answer
//! that makes one), the requests that create and change it, and its delivery log.

use keyward_core::time::Timestamp;
use keyward_core::webhook::{NewWebhookRequest, Webhook, WebhookEdit};
use keyward_store::DeliveryRecord;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use super::keys::present;

/// An event type's contract name (`api_key.created`, … ; `webhook.test` is sent on
/// request, not subscribed to).
#[derive(ToSchema)]
#[schema(value_type = String, example = "api_key.revoked")]
#[allow(dead_code)]
pub struct EventTypeName(String);

fn time(at: Option<Timestamp>) -> Option<String> {
    at.map(Timestamp::to_rfc3339)
}

/// A webhook endpoint; never its secret.
#[derive(Serialize, ToSchema)]
pub struct WebhookResponse {
    pub id: Uuid,
    #[schema(example = "https://billing.example.com/keyward-events")]
    pub url: String,
    pub description: Option<String>,
    /// The event types it receives.
    #[schema(value_type = Vec<EventTypeName>)]
    pub events: Vec<&'static str>,
    /// False while it is disabled: by an operator, or after failing for the whole
    /// retry window (`disabled_reason` says which). Its events wait meanwhile.
    pub enabled: bool,
    #[schema(format = DateTime)]
    pub disabled_at: Option<String>,
    pub disabled_reason: Option<String>,
    /// When it last acknowledged a delivery (a 2xx answer).
    #[schema(format = DateTime)]
    pub last_success_at: Option<String>,
    /// After a secret rotation: until then the replaced secret signs too (a second
    /// `v1,` signature in `webhook-signature`).
    #[schema(format = DateTime)]
    pub previous_secret_until: Option<String>,
    #[schema(format = DateTime)]
    pub created_at: String,
    /// Who added it, as the audit trail names actors.
    #[schema(example = "admin:cli")]
    pub created_by: String,
    #[schema(format = DateTime)]
    pub updated_at: String,
}

impl From<Webhook> for WebhookResponse {
    fn from(webhook: Webhook) -> Self {
        Self {
            id: *webhook.id.as_uuid(),
            url: webhook.url,
            description: webhook.description,
            events: webhook.events.iter().map(|e| e.as_str()).collect(),
            enabled: webhook.disabled_at.is_none(),
            disabled_at: time(webhook.disabled_at),
            disabled_reason: webhook.disabled_reason,
            last_success_at: time(webhook.last_success_at),
            previous_secret_until: time(webhook.previous_secret_until),
            created_at: webhook.created_at.to_rfc3339(),
            created_by: webhook.created_by,
            updated_at: webhook.updated_at.to_rfc3339(),
        }
    }
}

/// A new endpoint.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateWebhookRequest {
    /// `https://` to a public address (see `KEYWARD_WEBHOOK_ALLOW_PRIVATE`); at most
    /// 2,000 characters; no credentials or fragment.
    #[schema(example = "https://billing.example.com/keyward-events")]
    pub url: String,
    /// At least one event type.
    #[schema(value_type = Vec<EventTypeName>, example = json!(["api_key.revoked", "api_key.credits_exhausted"]))]
    pub events: Vec<String>,
    /// At most 1,000 characters.
    #[serde(default)]
    pub description: Option<String>,
}

impl From<CreateWebhookRequest> for NewWebhookRequest {
    fn from(body: CreateWebhookRequest) -> Self {
        Self {
            url: body.url,
            events: body.events,
            description: body.description,
            unreadable: Vec::new(),
        }
    }
}

/// A change to an endpoint: only the fields given change.
#[derive(Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PatchWebhookRequest {
    pub url: Option<String>,
    #[schema(value_type = Option<Vec<EventTypeName>>)]
    pub events: Option<Vec<String>>,
    /// `null` clears it.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub description: Option<Option<String>>,
    /// `false` switches the endpoint off (its events wait); `true` back on, after an
    /// operator's or a failure's disabling.
    pub enabled: Option<bool>,
}

impl From<PatchWebhookRequest> for WebhookEdit {
    fn from(body: PatchWebhookRequest) -> Self {
        Self {
            url: body.url,
            events: body.events,
            description: body.description,
            enabled: body.enabled,
            unreadable: Vec::new(),
        }
    }
}

/// An endpoint with its signing secret: shown this once (it is derived, not
/// stored). Consumers verify deliveries with it, with any Standard Webhooks library.
#[derive(Serialize, ToSchema)]
pub struct CreatedWebhookResponse {
    pub webhook: WebhookResponse,
    #[schema(example = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")]
    pub secret: String,
}

impl From<keyward_engine::CreatedWebhook> for CreatedWebhookResponse {
    fn from(created: keyward_engine::CreatedWebhook) -> Self {
        Self {
            webhook: created.webhook.into(),
            secret: created.secret.expose(),
        }
    }
}

/// A test event queued for an endpoint.
#[derive(Serialize, ToSchema)]
pub struct TestQueuedResponse {
    /// Its `webhook-id`: find it in the delivery log.
    #[schema(example = "msg_0193b5c2d7e84f1a9c3b2a1d0e9f8a7b")]
    pub event_id: String,
}

/// A delivery's state.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryStateDto {
    /// Waiting for its next attempt (or being attempted).
    Pending,
    /// Acknowledged with a 2xx.
    Delivered,
    /// Every attempt of the retry schedule failed.
    Failed,
}

/// One attempt of a delivery.
#[derive(Serialize, ToSchema)]
pub struct AttemptResponse {
    #[schema(format = DateTime)]
    pub at: String,
    /// The endpoint's answer; null when it did not answer.
    pub status_code: Option<u16>,
    pub latency_ms: u32,
    /// Why it failed; null when it was delivered.
    pub error: Option<String>,
}

/// One event's delivery to an endpoint, with its attempts.
#[derive(Serialize, ToSchema)]
pub struct DeliveryResponse {
    pub id: i64,
    /// The `webhook-id` header, the same on every attempt.
    pub event_id: String,
    #[schema(value_type = EventTypeName)]
    pub event_type: String,
    /// The key it is about; null for `webhook.test`.
    pub key_id: Option<Uuid>,
    pub state: DeliveryStateDto,
    /// When it is attempted next, while pending.
    #[schema(format = DateTime)]
    pub next_attempt_at: Option<String>,
    #[schema(format = DateTime)]
    pub created_at: String,
    #[schema(format = DateTime)]
    pub finished_at: Option<String>,
    /// Oldest first.
    pub attempts: Vec<AttemptResponse>,
}

impl From<DeliveryRecord> for DeliveryResponse {
    fn from(delivery: DeliveryRecord) -> Self {
        use keyward_core::webhook::DeliveryState;
        Self {
            id: delivery.id,
            event_id: delivery.event_id,
            event_type: delivery.event_type,
            key_id: delivery.key_id.map(|id| *id.as_uuid()),
            state: match delivery.state {
                DeliveryState::Pending => DeliveryStateDto::Pending,
                DeliveryState::Delivered => DeliveryStateDto::Delivered,
                DeliveryState::Failed => DeliveryStateDto::Failed,
            },
            next_attempt_at: time(delivery.next_attempt_at),
            created_at: delivery.created_at.to_rfc3339(),
            finished_at: time(delivery.finished_at),
            attempts: delivery
                .attempt_log
                .into_iter()
                .map(|attempt| AttemptResponse {
                    at: attempt.at.to_rfc3339(),
                    status_code: attempt.status_code,
                    latency_ms: attempt.latency_ms,
                    error: attempt.error,
                })
                .collect(),
        }
    }
}
