//! `keyward webhooks …`: webhook endpoints and their delivery log, straight on the
//! database. A running `keyward serve` delivers what they queue.

use std::process::ExitCode;

use clap::Subcommand;
use keyward_core::webhook::{Webhook, WebhookId};
use keyward_engine::{Engine, EngineError};
use keyward_store::{AnyStore, DeliveryRecord};

use super::keys::open_engine;
use super::output::{self, say, say_raw};
use crate::flags::Flags;
use crate::wire::webhooks::{
    CreateWebhookRequest, CreatedWebhookResponse, DeliveryResponse, TestQueuedResponse,
    WebhookResponse,
};

#[derive(Debug, Subcommand)]
pub enum WebhooksCommand {
    /// Add an endpoint and print its signing secret (the only time it is shown).
    Create {
        /// https:// URL to deliver to (http:// and private addresses only with
        /// KEYWARD_WEBHOOK_ALLOW_PRIVATE=true).
        #[arg(long)]
        url: String,
        /// An event type it receives (repeat, or separate with commas):
        /// api_key.created, api_key.updated, api_key.suspended, api_key.reactivated,
        /// api_key.rotated, api_key.revoked, api_key.expiring, api_key.expired,
        /// api_key.leaked, api_key.credits_low, api_key.credits_exhausted,
        /// api_key.rate_limited.
        #[arg(long = "event", value_delimiter = ',', required = true)]
        events: Vec<String>,
        /// A note on what the endpoint is for, shown in listings.
        #[arg(long)]
        description: Option<String>,
    },
    /// List endpoints, newest first (never a secret).
    List,
    /// Queue a webhook.test event for an endpoint.
    Test { id: String },
    /// An endpoint's latest deliveries, newest first, with their attempts.
    Deliveries { id: String },
}

pub async fn run(flags: &Flags, command: WebhooksCommand, json: bool) -> anyhow::Result<ExitCode> {
    let engine = open_engine(flags).await?;
    let result = execute(&engine, command, json).await;
    engine.shutdown().await;
    result.map(|()| ExitCode::SUCCESS)
}

async fn execute(
    engine: &Engine<AnyStore>,
    command: WebhooksCommand,
    json: bool,
) -> anyhow::Result<()> {
    match command {
        WebhooksCommand::Create {
            url,
            events,
            description,
        } => {
            // The HTTP API's body, read the same way.
            let request = CreateWebhookRequest {
                url,
                events,
                description,
            };
            let created = engine
                .create_webhook(&request.into())
                .await
                .map_err(describe)?;
            if json {
                let body = CreatedWebhookResponse::from(created);
                say!("{}", serde_json::to_string_pretty(&body)?);
            } else {
                say_raw!("{}", webhook_fields(&created.webhook));
                say!(
                    "\n{}\n(shown once: give it to the endpoint's owner now; it cannot be \
                     retrieved again)",
                    created.secret.expose()
                );
            }
        }
        WebhooksCommand::List => {
            let webhooks = engine.list_webhooks().await.map_err(describe)?;
            if json {
                let body: Vec<WebhookResponse> = webhooks.into_iter().map(Into::into).collect();
                say!("{}", serde_json::to_string_pretty(&body)?);
            } else if webhooks.is_empty() {
                say!("no webhooks");
            } else {
                say_raw!("{}", webhook_table(&webhooks));
            }
        }
        WebhooksCommand::Test { id } => {
            let event_id = engine
                .test_webhook(webhook_id(&id)?)
                .await
                .map_err(describe)?;
            if json {
                let body = TestQueuedResponse { event_id };
                say!("{}", serde_json::to_string_pretty(&body)?);
            } else {
                say!("queued {event_id}; `keyward webhooks deliveries {id}` shows how it went");
            }
        }
        WebhooksCommand::Deliveries { id } => {
            let deliveries = engine
                .webhook_deliveries(webhook_id(&id)?)
                .await
                .map_err(describe)?;
            if json {
                let body: Vec<DeliveryResponse> = deliveries.into_iter().map(Into::into).collect();
                say!("{}", serde_json::to_string_pretty(&body)?);
            } else if deliveries.is_empty() {
                say!("no deliveries");
            } else {
                say_raw!("{}", delivery_table(&deliveries));
            }
        }
    }
    Ok(())
}

fn webhook_id(text: &str) -> anyhow::Result<WebhookId> {
    text.parse()
        .map_err(|_| anyhow::anyhow!("{text:?} is not a webhook id (expected a UUID)"))
}

fn describe(err: EngineError) -> anyhow::Error {
    match err {
        EngineError::Invalid(errors) => anyhow::anyhow!("invalid request: {errors}"),
        EngineError::NoSuchWebhook => anyhow::anyhow!("no webhook with this id"),
        other => anyhow::Error::new(other),
    }
}

fn state(webhook: &Webhook) -> String {
    match (&webhook.disabled_at, &webhook.disabled_reason) {
        (None, _) => "enabled".into(),
        (Some(_), Some(reason)) => format!("disabled ({reason})"),
        (Some(_), None) => "disabled".into(),
    }
}

fn webhook_table(webhooks: &[Webhook]) -> String {
    let rows: Vec<Vec<String>> = webhooks
        .iter()
        .map(|w| {
            vec![
                w.id.to_string(),
                w.url.clone(),
                w.events
                    .iter()
                    .map(|e| e.as_str())
                    .collect::<Vec<_>>()
                    .join(","),
                state(w),
                output::or_dash(w.last_success_at.map(|t| t.to_string())),
            ]
        })
        .collect();
    output::table(&["ID", "URL", "EVENTS", "STATE", "LAST SUCCESS"], &rows)
}

fn webhook_fields(webhook: &Webhook) -> String {
    output::field_lines(&[
        ("id", webhook.id.to_string()),
        ("url", webhook.url.clone()),
        (
            "events",
            webhook
                .events
                .iter()
                .map(|e| e.as_str())
                .collect::<Vec<_>>()
                .join(","),
        ),
        ("state", state(webhook)),
        ("created", webhook.created_at.to_string()),
        ("created by", webhook.created_by.clone()),
    ])
}

fn delivery_table(deliveries: &[DeliveryRecord]) -> String {
    let rows: Vec<Vec<String>> = deliveries
        .iter()
        .map(|d| {
            let last = d.attempt_log.last();
            vec![
                d.id.to_string(),
                d.event_id.clone(),
                d.event_type.clone(),
                d.state.as_str().to_owned(),
                d.attempts.to_string(),
                output::or_dash(last.and_then(|a| a.status_code).map(|c| c.to_string())),
                output::or_dash(last.and_then(|a| a.error.clone())),
            ]
        })
        .collect();
    output::table(
        &[
            "ID",
            "EVENT",
            "TYPE",
            "STATE",
            "ATTEMPTS",
            "LAST STATUS",
            "LAST ERROR",
        ],
        &rows,
    )
}
