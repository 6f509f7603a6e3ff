//! Webhook endpoints, managed by the platform's services, and what a sender needs
//! to deliver their events: due deliveries with the secrets that sign them, and the
//! record of each attempt. The events themselves are queued by the store, in the
//! transaction of the change that causes each.

use std::time::Duration;

use keyward_core::time::Timestamp;
use keyward_core::webhook::{
    NewWebhookRequest, Webhook, WebhookEdit, WebhookId, WebhookSecret, origin, random_jitter,
};
use keyward_store::{
    AfterAttempt, AttemptRecord, ClaimedDelivery, ConditionRules, DeliveryRecord, NewWebhookRecord,
    SecretSeed, SigningSeeds, Store,
};

use crate::config::{DAY, WebhookConfig};
use crate::engine::Engine;
use crate::error::EngineError;

/// An endpoint just made or given a new secret: the secret is shown once.
#[derive(Debug)]
pub struct CreatedWebhook {
    pub webhook: Webhook,
    pub secret: WebhookSecret,
}

/// A delivery to attempt, with the secrets that sign it (the current one first).
#[derive(Debug)]
pub struct Outgoing {
    pub delivery: ClaimedDelivery,
    pub secrets: Vec<WebhookSecret>,
}

/// What an attempt found.
#[derive(Clone, Debug)]
pub struct AttemptOutcome {
    /// The endpoint's answer, if it answered.
    pub status_code: Option<u16>,
    pub latency: Duration,
    /// Why it failed, for the log (never a secret; not the endpoint's answer).
    pub error: Option<String>,
}

impl AttemptOutcome {
    /// Only a 2xx answer delivers (a redirect is not followed, so it fails).
    pub fn delivered(&self) -> bool {
        self.error.is_none()
            && self
                .status_code
                .is_some_and(|code| (200..300).contains(&code))
    }
}

impl<S: Store> Engine<S> {
    /// Adds an endpoint; its signing secret is returned once and never stored (it is
    /// derived from the current pepper and a stored random nonce).
    pub async fn create_webhook(
        &self,
        request: &NewWebhookRequest,
    ) -> Result<CreatedWebhook, EngineError> {
        let inner = &self.inner;
        let fields = request
            .validate(inner.config.webhooks.allow_private)
            .map_err(EngineError::Invalid)?;
        let now = inner.now();
        let webhook = Webhook {
            id: WebhookId::new(now),
            url: fields.url.expect("a new endpoint's URL is checked"),
            description: fields.description.flatten(),
            events: fields.events.expect("a new endpoint's events are checked"),
            created_at: now,
            created_by: self.admin().to_string(),
            updated_at: now,
            disabled_at: None,
            disabled_reason: None,
            last_success_at: None,
            previous_secret_until: None,
        };
        let (seed, secret) = self.new_secret();
        let record = NewWebhookRecord {
            webhook,
            secret: seed,
        };
        let (stored, actor) = (record.clone(), self.admin());
        self.store_write(move |store| async move { store.insert_webhook(&stored, &actor).await })
            .await?;
        tracing::info!(
            webhook_id = %record.webhook.id,
            origin = %origin(&record.webhook.url),
            by = %record.webhook.created_by,
            "webhook endpoint added"
        );
        Ok(CreatedWebhook {
            webhook: record.webhook,
            secret,
        })
    }

    /// Every endpoint, newest first.
    pub async fn list_webhooks(&self) -> Result<Vec<Webhook>, EngineError> {
        Ok(self.inner.store.list_webhooks().await?)
    }

    pub async fn get_webhook(&self, id: WebhookId) -> Result<Webhook, EngineError> {
        self.inner
            .store
            .get_webhook(id)
            .await?
            .ok_or(EngineError::NoSuchWebhook)
    }

    /// Changes the fields given; `enabled: false` switches the endpoint off (its
    /// events wait), `true` back on.
    pub async fn update_webhook(
        &self,
        id: WebhookId,
        edit: &WebhookEdit,
    ) -> Result<Webhook, EngineError> {
        let inner = &self.inner;
        let fields = edit
            .validate(inner.config.webhooks.allow_private)
            .map_err(EngineError::Invalid)?;
        let (now, actor) = (inner.now(), self.admin());
        let webhook = self
            .store_write(move |store| async move {
                store.update_webhook(id, &fields, now, &actor).await
            })
            .await?
            .ok_or(EngineError::NoSuchWebhook)?;
        tracing::info!(webhook_id = %id, by = %self.admin(), "webhook endpoint changed");
        Ok(webhook)
    }

    /// Deletes an endpoint and its delivery log; what it had not received is dropped.
    pub async fn delete_webhook(&self, id: WebhookId) -> Result<(), EngineError> {
        let (now, actor) = (self.inner.now(), self.admin());
        let deleted = self
            .store_write(move |store| async move { store.delete_webhook(id, now, &actor).await })
            .await?;
        if !deleted {
            return Err(EngineError::NoSuchWebhook);
        }
        tracing::info!(webhook_id = %id, by = %self.admin(), "webhook endpoint deleted");
        Ok(())
    }

    /// Gives an endpoint a new secret, returned once; the old one keeps signing
    /// beside it for [`WebhookConfig::ROTATION_OVERLAP`], so the consumer can switch
    /// without refusing a delivery.
    pub async fn rotate_webhook_secret(
        &self,
        id: WebhookId,
    ) -> Result<CreatedWebhook, EngineError> {
        let inner = &self.inner;
        let now = inner.now();
        let until = now.plus(WebhookConfig::ROTATION_OVERLAP);
        let (seed, secret) = self.new_secret();
        let actor = self.admin();
        let webhook = self
            .store_write(move |store| async move {
                store
                    .rotate_webhook_secret(id, seed, until, now, &actor)
                    .await
            })
            .await?
            .ok_or(EngineError::NoSuchWebhook)?;
        tracing::info!(webhook_id = %id, by = %self.admin(), "webhook secret rotated");
        Ok(CreatedWebhook { webhook, secret })
    }

    /// Queues a `webhook.test` event for this endpoint only; its event id.
    pub async fn test_webhook(&self, id: WebhookId) -> Result<String, EngineError> {
        let (now, actor) = (self.inner.now(), self.admin());
        self.store_write(move |store| async move { store.send_test(id, now, &actor).await })
            .await?
            .ok_or(EngineError::NoSuchWebhook)
    }

    /// An endpoint's latest deliveries, newest first, each with its attempts.
    pub async fn webhook_deliveries(
        &self,
        id: WebhookId,
    ) -> Result<Vec<DeliveryRecord>, EngineError> {
        self.inner
            .store
            .list_deliveries(id, WebhookConfig::LOG_LIMIT)
            .await?
            .ok_or(EngineError::NoSuchWebhook)
    }

    /// Makes one of an endpoint's deliveries due now (one more attempt for a failed
    /// one).
    pub async fn retry_delivery(&self, id: WebhookId, delivery: i64) -> Result<(), EngineError> {
        let inner = &self.inner;
        if inner.store.get_webhook(id).await?.is_none() {
            return Err(EngineError::NoSuchWebhook);
        }
        let now = inner.now();
        let retried = self
            .store_write(move |store| async move { store.retry_delivery(id, delivery, now).await })
            .await?;
        if !retried {
            return Err(EngineError::NoSuchDelivery);
        }
        Ok(())
    }

    /// Claims up to `limit` due deliveries for one attempt each (see
    /// [`WebhookConfig::lease`]), with the secrets that sign them.
    pub async fn claim_deliveries(&self, limit: u32) -> Result<Vec<Outgoing>, EngineError> {
        let inner = &self.inner;
        let now = inner.now();
        let lease_until = now.plus(inner.config.webhooks.lease());
        let claimed = self
            .store_write(move |store| async move {
                store.claim_deliveries(now, lease_until, limit).await
            })
            .await?;
        Ok(claimed
            .into_iter()
            .map(|delivery| Outgoing {
                secrets: self.signing_secrets(&delivery.seeds, now),
                delivery,
            })
            .collect())
    }

    /// Records an attempt; what follows it (delivered, retried at a time, given up)
    /// is decided here, by the retry schedule.
    pub async fn finish_delivery(
        &self,
        delivery: &ClaimedDelivery,
        outcome: AttemptOutcome,
    ) -> Result<AfterAttempt, EngineError> {
        let inner = &self.inner;
        let now = inner.now();
        let next = if outcome.delivered() {
            AfterAttempt::Delivered
        } else {
            let retry = &inner.config.webhooks.retry;
            match retry.next_wait(delivery.attempt, random_jitter()) {
                Some(wait) => AfterAttempt::RetryAt(now.plus(wait)),
                None => AfterAttempt::GiveUp,
            }
        };
        let record = AttemptRecord {
            delivery_id: delivery.id,
            attempt: delivery.attempt,
            at: now,
            status_code: outcome.status_code,
            latency_ms: u32::try_from(outcome.latency.as_millis()).unwrap_or(u32::MAX),
            error: outcome.error,
            next,
        };
        self.store_write(move |store| async move { store.finish_attempt(&record).await })
            .await?;
        Ok(next)
    }

    /// Forgets deliveries finished more than the history period ago.
    pub async fn prune_webhook_history(&self) -> Result<u64, EngineError> {
        let inner = &self.inner;
        let before = inner.now().minus(inner.config.webhooks.history());
        // Expiry markers a day past the lookback can never match again.
        let markers_before = before.minus(DAY);
        self.store_write(move |store| async move {
            store.prune_deliveries(before, markers_before).await
        })
        .await
    }

    /// Announces what became true of keys with time or use and was not announced
    /// yet: an expiry coming (`KEYWARD_EXPIRY_NOTICE_DAYS`) or passed, credits low
    /// (`KEYWARD_CREDITS_LOW_PERCENT`) or exhausted. Each once, whichever instance
    /// finds it first; the conditions are in the keys' rows, so nothing on the
    /// verification path waits for this. Returns how many events were queued.
    pub async fn announce_conditions(&self) -> Result<u32, EngineError> {
        let inner = &self.inner;
        let config = &inner.config.webhooks;
        let notice_days = u64::from(config.expiry_notice_days);
        let rules = ConditionRules {
            expiry_notice: (notice_days > 0)
                .then(|| DAY * u32::try_from(notice_days).unwrap_or(u32::MAX)),
            expired_lookback: config.history(),
            credits_low_percent: config.credits_low_percent,
            limit: WebhookConfig::SCAN_LIMIT,
        };
        let now = inner.now();
        self.store_write(move |store| async move { store.announce_conditions(now, &rules).await })
            .await
    }

    /// The secrets that sign an endpoint's deliveries now: the current one, and the
    /// one a rotation replaced while its overlap lasts. A secret whose pepper is no
    /// longer configured cannot be derived, and is left out (and said so).
    pub fn signing_secrets(&self, seeds: &SigningSeeds, now: Timestamp) -> Vec<WebhookSecret> {
        let previous = seeds
            .previous
            .filter(|(_, until)| now < *until)
            .map(|(seed, _)| seed);
        std::iter::once(seeds.current)
            .chain(previous)
            .filter_map(|seed| self.derive(seed))
            .collect()
    }

    fn derive(&self, seed: SecretSeed) -> Option<WebhookSecret> {
        let pepper = self.inner.config.peppers.version(seed.pepper_version);
        if pepper.is_none() {
            tracing::error!(
                pepper_version = seed.pepper_version,
                "a webhook secret was made with a pepper that is no longer configured: \
                 configure it again, or rotate the endpoint's secret"
            );
        }
        pepper.map(|pepper| WebhookSecret::derive(pepper, &seed.nonce))
    }

    fn new_secret(&self) -> (SecretSeed, WebhookSecret) {
        let pepper = self.inner.config.peppers.current();
        let seed = SecretSeed {
            nonce: WebhookSecret::new_nonce(),
            pepper_version: pepper.version(),
        };
        (seed, WebhookSecret::derive(pepper, &seed.nonce))
    }
}
