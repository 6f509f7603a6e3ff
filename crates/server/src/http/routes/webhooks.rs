//! Webhook endpoints, for the platform's services holding `webhooks.manage`: added
//! (the signing secret is in that answer only), listed, read, changed, deleted, given
//! a new secret, tested, and their delivery log read and retried.

use axum::Json;
use axum::http::StatusCode;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::http::auth::{Service, scope};
use crate::http::documented::{self, Callers};
use crate::http::error::{ApiError, ErrorBody};
use crate::http::json::{ApiJson, DeliveryIdPath, WebhookIdPath};
use crate::http::state::AppState;
use crate::wire::webhooks::{
    CreateWebhookRequest, CreatedWebhookResponse, DeliveryResponse, PatchWebhookRequest,
    TestQueuedResponse, WebhookResponse,
};

/// The platform's services call every route here: the document gives each the
/// service token's scheme, 401 and 403.
pub const CALLERS: Callers = Callers::Services;
pub const TAG: &str = "webhooks";

/// This resource's routes, one `routes!` per path, with their documentation.
pub(crate) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_webhook, list_webhooks))
        .routes(routes!(get_webhook, update_webhook, delete_webhook))
        .routes(routes!(rotate_webhook_secret))
        .routes(routes!(test_webhook))
        .routes(routes!(list_deliveries))
        .routes(routes!(retry_delivery))
}

/// Add a webhook endpoint. Its signing secret is in this response only.
///
/// Deliveries follow the Standard Webhooks specification: `webhook-id` (the event's
/// id, the same on every attempt: de-duplicate on it), `webhook-timestamp` and
/// `webhook-signature` (`v1,<base64 HMAC-SHA256>` of `id.timestamp.body` under the
/// secret), and a JSON body `{"type", "timestamp", "data"}`. Any Standard Webhooks
/// library verifies them with the `whsec_` secret.
#[utoipa::path(
    post,
    path = "/api/admin/webhooks",
    operation_id = "create_webhook",
    request_body = CreateWebhookRequest,
    security(("service_token" = ["webhooks.manage"])),
    responses(
        (status = 200, description = "The endpoint, with its secret (sent with Cache-Control: no-store)", body = CreatedWebhookResponse),
        (status = 400, description = "Malformed JSON", body = ErrorBody),
        documented::JsonBody,
        (status = 422, description = "Invalid fields: an https:// URL to a public address, at least one known event type", body = ErrorBody),
        documented::Database,
    )
)]
pub async fn create_webhook(
    caller: Service<scope::WebhooksManage>,
    ApiJson(body): ApiJson<CreateWebhookRequest>,
) -> Result<Json<CreatedWebhookResponse>, ApiError> {
    let created = caller.engine.create_webhook(&body.into()).await?;
    Ok(Json(created.into()))
}

/// Every webhook endpoint, newest first. Never a secret.
#[utoipa::path(
    get,
    path = "/api/admin/webhooks",
    operation_id = "list_webhooks",
    security(("service_token" = ["webhooks.manage"])),
    responses(
        (status = 200, description = "The endpoints", body = Vec<WebhookResponse>),
        documented::Database,
    )
)]
pub async fn list_webhooks(
    caller: Service<scope::WebhooksManage>,
) -> Result<Json<Vec<WebhookResponse>>, ApiError> {
    let webhooks = caller.engine.list_webhooks().await?;
    Ok(Json(webhooks.into_iter().map(Into::into).collect()))
}

/// One webhook endpoint. Never its secret.
#[utoipa::path(
    get,
    path = "/api/admin/webhooks/{id}",
    operation_id = "get_webhook",
    params(("id" = Uuid, Path, description = "The endpoint's id")),
    security(("service_token" = ["webhooks.manage"])),
    responses(
        (status = 200, description = "The endpoint", body = WebhookResponse),
        (status = 404, description = "No such endpoint", body = ErrorBody),
        documented::Database,
    )
)]
pub async fn get_webhook(
    caller: Service<scope::WebhooksManage>,
    WebhookIdPath(id): WebhookIdPath,
) -> Result<Json<WebhookResponse>, ApiError> {
    Ok(Json(caller.engine.get_webhook(id).await?.into()))
}

/// Change a webhook endpoint: its URL, events, description, or whether it is
/// enabled (`"enabled": true` switches back on one disabled after failing).
#[utoipa::path(
    patch,
    path = "/api/admin/webhooks/{id}",
    operation_id = "update_webhook",
    params(("id" = Uuid, Path, description = "The endpoint's id")),
    request_body = PatchWebhookRequest,
    security(("service_token" = ["webhooks.manage"])),
    responses(
        (status = 200, description = "The endpoint as changed", body = WebhookResponse),
        (status = 400, description = "Malformed JSON", body = ErrorBody),
        (status = 404, description = "No such endpoint", body = ErrorBody),
        documented::JsonBody,
        (status = 422, description = "Invalid fields", body = ErrorBody),
        documented::Database,
    )
)]
pub async fn update_webhook(
    caller: Service<scope::WebhooksManage>,
    WebhookIdPath(id): WebhookIdPath,
    ApiJson(body): ApiJson<PatchWebhookRequest>,
) -> Result<Json<WebhookResponse>, ApiError> {
    Ok(Json(
        caller.engine.update_webhook(id, &body.into()).await?.into(),
    ))
}

/// Delete a webhook endpoint with its delivery log; what it had not received is
/// dropped.
#[utoipa::path(
    delete,
    path = "/api/admin/webhooks/{id}",
    operation_id = "delete_webhook",
    params(("id" = Uuid, Path, description = "The endpoint's id")),
    security(("service_token" = ["webhooks.manage"])),
    responses(
        (status = 204, description = "Deleted"),
        (status = 404, description = "No such endpoint", body = ErrorBody),
        documented::Database,
    )
)]
pub async fn delete_webhook(
    caller: Service<scope::WebhooksManage>,
    WebhookIdPath(id): WebhookIdPath,
) -> Result<StatusCode, ApiError> {
    caller.engine.delete_webhook(id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Give a webhook endpoint a new signing secret, in this response only. For 24
/// hours the old one signs too (two `v1,` signatures), so the consumer can switch
/// without refusing a delivery.
#[utoipa::path(
    post,
    path = "/api/admin/webhooks/{id}/rotate-secret",
    operation_id = "rotate_webhook_secret",
    params(("id" = Uuid, Path, description = "The endpoint's id")),
    security(("service_token" = ["webhooks.manage"])),
    responses(
        (status = 200, description = "The endpoint, with its new secret (sent with Cache-Control: no-store)", body = CreatedWebhookResponse),
        (status = 404, description = "No such endpoint", body = ErrorBody),
        documented::Database,
    )
)]
pub async fn rotate_webhook_secret(
    caller: Service<scope::WebhooksManage>,
    WebhookIdPath(id): WebhookIdPath,
) -> Result<Json<CreatedWebhookResponse>, ApiError> {
    Ok(Json(caller.engine.rotate_webhook_secret(id).await?.into()))
}

/// Send a `webhook.test` event to this endpoint, whatever it subscribes to (a
/// disabled endpoint gets it once enabled); follow it in the delivery log.
#[utoipa::path(
    post,
    path = "/api/admin/webhooks/{id}/test",
    operation_id = "test_webhook",
    params(("id" = Uuid, Path, description = "The endpoint's id")),
    security(("service_token" = ["webhooks.manage"])),
    responses(
        (status = 202, description = "Queued", body = TestQueuedResponse),
        (status = 404, description = "No such endpoint", body = ErrorBody),
        documented::Database,
    )
)]
pub async fn test_webhook(
    caller: Service<scope::WebhooksManage>,
    WebhookIdPath(id): WebhookIdPath,
) -> Result<(StatusCode, Json<TestQueuedResponse>), ApiError> {
    let event_id = caller.engine.test_webhook(id).await?;
    Ok((StatusCode::ACCEPTED, Json(TestQueuedResponse { event_id })))
}

/// A webhook endpoint's latest deliveries (100 at most), newest first, each with
/// its attempts: time, status code, latency and error.
#[utoipa::path(
    get,
    path = "/api/admin/webhooks/{id}/deliveries",
    operation_id = "list_webhook_deliveries",
    params(("id" = Uuid, Path, description = "The endpoint's id")),
    security(("service_token" = ["webhooks.manage"])),
    responses(
        (status = 200, description = "The deliveries", body = Vec<DeliveryResponse>),
        (status = 404, description = "No such endpoint", body = ErrorBody),
        documented::Database,
    )
)]
pub async fn list_deliveries(
    caller: Service<scope::WebhooksManage>,
    WebhookIdPath(id): WebhookIdPath,
) -> Result<Json<Vec<DeliveryResponse>>, ApiError> {
    let deliveries = caller.engine.webhook_deliveries(id).await?;
    Ok(Json(deliveries.into_iter().map(Into::into).collect()))
}

/// Attempt a delivery again now, whatever its state (one more attempt for a
/// failed one; a delivered one is sent again, with the same `webhook-id`).
#[utoipa::path(
    post,
    path = "/api/admin/webhooks/{id}/deliveries/{delivery_id}/retry",
    operation_id = "retry_webhook_delivery",
    params(
        ("id" = Uuid, Path, description = "The endpoint's id"),
        ("delivery_id" = i64, Path, description = "The delivery's id, from the log"),
    ),
    security(("service_token" = ["webhooks.manage"])),
    responses(
        (status = 202, description = "Due now"),
        (status = 404, description = "No such endpoint, or no such delivery of it", body = ErrorBody),
        documented::Database,
    )
)]
pub async fn retry_delivery(
    caller: Service<scope::WebhooksManage>,
    WebhookIdPath(id): WebhookIdPath,
    DeliveryIdPath(delivery): DeliveryIdPath,
) -> Result<StatusCode, ApiError> {
    caller.engine.retry_delivery(id, delivery).await?;
    Ok(StatusCode::ACCEPTED)
}
