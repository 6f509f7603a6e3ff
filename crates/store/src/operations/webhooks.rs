//! Webhook endpoints, and the outbox their events wait in: written by the changes
//! that cause them, claimed by senders for a lease, finished attempt by attempt.

use std::collections::BTreeMap;

use keyward_core::audit::Actor;
use keyward_core::model::{KeyId, UserId};
use keyward_core::time::Timestamp;
use keyward_core::webhook::{EventType, ValidWebhookFields, Webhook, WebhookId, origin};
use serde_json::{Value, json};

use super::outbox::{enqueue, insert_event, subscribed};
use crate::db::{Columns, Param, Statement, params};
use crate::dialect::{Connection, Dialect, run};
use crate::error::{StoreError, corrupt};
use crate::interface::WebhookStore;
use crate::records::{
    AfterAttempt, AttemptRecord, ClaimedDelivery, ConditionRules, DeliveryRecord, NewWebhookRecord,
    SecretSeed, SigningSeeds,
};
use crate::rows::{self, NewEvent, key_from_row};
use crate::sql;

impl From<WebhookId> for Param<'_> {
    fn from(id: WebhookId) -> Self {
        Self::Id(Some(*id.as_uuid()))
    }
}

/// Why an endpoint was switched off when it failed for the whole retry window.
const FAILING: &str = "every delivery attempt failed for the whole retry window";

/// keyward itself, as the actor of what it does on its own.
fn keyward() -> Actor {
    Actor::Admin("keyward".into())
}

/// What the audit trail shows of an endpoint: never its URL's path or query (they
/// may carry a token), never a secret.
fn audited_fields(hook: &Webhook) -> [(&'static str, Value); 5] {
    let events: Vec<&str> = hook.events.iter().map(|e| e.as_str()).collect();
    let time = |at: Option<Timestamp>| at.map(Timestamp::to_rfc3339);
    [
        ("origin", json!(origin(&hook.url))),
        ("events", json!(events)),
        ("enabled", json!(hook.disabled_at.is_none())),
        ("disabled_reason", json!(hook.disabled_reason)),
        (
            "previous_secret_until",
            json!(time(hook.previous_secret_until)),
        ),
    ]
}

/// Records a change to an endpoint in the audit trail: `{webhook: {before, after}}`
/// (its id) and each audited field that differs. Endpoints are no user's: the
/// record is filed under [`UserId::system`].
async fn audit<D: Dialect>(
    conn: &mut Connection<D>,
    (actor, action, at): (&Actor, &str, Timestamp),
    before: Option<&Webhook>,
    after: Option<&Webhook>,
) -> Result<(), StoreError> {
    let id = |hook: Option<&Webhook>| hook.map(|h| h.id.to_string());
    let mut changes = serde_json::Map::new();
    changes.insert(
        "webhook".into(),
        json!({"before": id(before), "after": id(after)}),
    );
    let (old, new) = (before.map(audited_fields), after.map(audited_fields));
    for i in 0..5 {
        let name = old
            .as_ref()
            .or(new.as_ref())
            .map(|f| f[i].0)
            .unwrap_or_default();
        let value = |fields: &Option<[(&str, Value); 5]>| {
            fields.as_ref().map_or(Value::Null, |f| f[i].1.clone())
        };
        let (was, is) = (value(&old), value(&new));
        if was != is {
            changes.insert(name.into(), json!({"before": was, "after": is}));
        }
    }
    let event = NewEvent {
        at,
        actor,
        action,
        key_id: None,
        user_id: &UserId::system(),
        changes: Value::Object(changes).to_string(),
        key: None,
    };
    super::events::insert_event::<D>(conn, &event).await
}

impl<D: Dialect> WebhookStore for D {
    async fn insert_webhook(
        &self,
        new: &NewWebhookRecord,
        actor: &Actor,
    ) -> Result<(), StoreError> {
        self.writes()
            .track(async move {
                let hook = &new.webhook;
                let mut tx = self.begin().await?;
                let mut values = params![
                    hook.id,
                    hook.url.as_str(),
                    hook.description.as_deref(),
                    hook.created_at,
                    hook.created_by.as_str(),
                    hook.updated_at,
                    new.secret.nonce.as_slice(),
                ];
                values.push(Param::Small(Some(i32::from(new.secret.pepper_version))));
                run::<D>(&mut tx, Statement::new(sql::INSERT_WEBHOOK, values)).await?;
                subscribe::<D>(&mut tx, hook.id, &hook.events).await?;
                let what = (actor, "create_webhook", hook.created_at);
                audit::<D>(&mut tx, what, None, Some(hook)).await?;
                tx.commit().await?;
                Ok(())
            })
            .await
    }

    async fn list_webhooks(&self) -> Result<Vec<Webhook>, StoreError> {
        let mut conn = self.reader().await?;
        let rows = run::<D>(&mut conn, Statement::new(sql::LIST_WEBHOOKS, params![])).await?;
        let subscriptions =
            run::<D>(&mut conn, Statement::new(sql::SUBSCRIPTIONS, params![])).await?;
        let mut events: BTreeMap<WebhookId, Vec<EventType>> = BTreeMap::new();
        for row in &subscriptions {
            let (id, event) = rows::subscription(row)?;
            events.entry(id).or_default().push(event);
        }
        rows.iter()
            .map(|row| {
                let id = WebhookId::from_uuid(*row.id("id")?.as_uuid());
                let mut subscribed = events.remove(&id).unwrap_or_default();
                subscribed.sort();
                rows::webhook_from_row(row, subscribed)
            })
            .collect()
    }

    async fn get_webhook(&self, id: WebhookId) -> Result<Option<Webhook>, StoreError> {
        let mut conn = self.reader().await?;
        read_webhook::<D>(&mut conn, id).await
    }

    async fn update_webhook(
        &self,
        id: WebhookId,
        fields: &ValidWebhookFields,
        now: Timestamp,
        actor: &Actor,
    ) -> Result<Option<Webhook>, StoreError> {
        self.writes()
            .track(async move {
                let mut tx = self.begin().await?;
                if !hold::<D>(&mut tx, id).await? {
                    return Ok(None);
                }
                let Some(before) = read_webhook::<D>(&mut tx, id).await? else {
                    return Ok(None);
                };
                let mut hook = before.clone();
                if let Some(url) = &fields.url {
                    hook.url.clone_from(url);
                }
                if let Some(description) = &fields.description {
                    hook.description.clone_from(description);
                }
                match fields.enabled {
                    Some(true) => (hook.disabled_at, hook.disabled_reason) = (None, None),
                    Some(false) if hook.disabled_at.is_none() => {
                        let reason = format!("disabled by {actor}");
                        (hook.disabled_at, hook.disabled_reason) = (Some(now), Some(reason));
                    }
                    _ => {}
                }
                let values = params![
                    id,
                    hook.url.as_str(),
                    hook.description.as_deref(),
                    now,
                    hook.disabled_at,
                    hook.disabled_reason.as_deref(),
                ];
                run::<D>(&mut tx, Statement::new(sql::WRITE_WEBHOOK, values)).await?;
                if let Some(events) = &fields.events {
                    run::<D>(&mut tx, Statement::new(sql::UNSUBSCRIBE_ALL, params![id])).await?;
                    subscribe::<D>(&mut tx, id, events).await?;
                }
                let after = read_webhook::<D>(&mut tx, id).await?;
                audit::<D>(
                    &mut tx,
                    (actor, "update_webhook", now),
                    Some(&before),
                    after.as_ref(),
                )
                .await?;
                tx.commit().await?;
                Ok(after)
            })
            .await
    }

    async fn delete_webhook(
        &self,
        id: WebhookId,
        now: Timestamp,
        actor: &Actor,
    ) -> Result<bool, StoreError> {
        self.writes()
            .track(async move {
                let mut tx = self.begin().await?;
                let Some(before) = read_webhook::<D>(&mut tx, id).await? else {
                    return Ok(false);
                };
                // Deliveries and subscriptions go with it (ON DELETE CASCADE).
                let rows =
                    run::<D>(&mut tx, Statement::new(sql::DELETE_WEBHOOK, params![id])).await?;
                if rows.is_empty() {
                    return Ok(false);
                }
                audit::<D>(&mut tx, (actor, "delete_webhook", now), Some(&before), None).await?;
                tx.commit().await?;
                Ok(true)
            })
            .await
    }

    async fn signing_seeds(&self, id: WebhookId) -> Result<Option<SigningSeeds>, StoreError> {
        let rows = self
            .read(Statement::new(sql::SIGNING_SEEDS, params![id]))
            .await?;
        rows.first().map(rows::signing_seeds).transpose()
    }

    async fn rotate_webhook_secret(
        &self,
        id: WebhookId,
        seed: SecretSeed,
        previous_until: Timestamp,
        now: Timestamp,
        actor: &Actor,
    ) -> Result<Option<Webhook>, StoreError> {
        self.writes()
            .track(async move {
                let mut tx = self.begin().await?;
                if !hold::<D>(&mut tx, id).await? {
                    return Ok(None);
                }
                let before = read_webhook::<D>(&mut tx, id).await?;
                let mut values = params![id, seed.nonce.as_slice()];
                values.push(Param::Small(Some(i32::from(seed.pepper_version))));
                values.extend(params![previous_until, now]);
                run::<D>(&mut tx, Statement::new(sql::ROTATE_WEBHOOK_SECRET, values)).await?;
                let after = read_webhook::<D>(&mut tx, id).await?;
                let what = (actor, "rotate_webhook_secret", now);
                audit::<D>(&mut tx, what, before.as_ref(), after.as_ref()).await?;
                tx.commit().await?;
                Ok(after)
            })
            .await
    }

    async fn send_test(
        &self,
        id: WebhookId,
        now: Timestamp,
        actor: &Actor,
    ) -> Result<Option<String>, StoreError> {
        self.writes()
            .track(async move {
                let mut tx = self.begin().await?;
                if !hold::<D>(&mut tx, id).await? {
                    return Ok(None);
                }
                let data = json!({"webhook_id": id.to_string(), "actor": rows::actor_value(actor)});
                let event_id = insert_event::<D>(&mut tx, EventType::Test, None, now, data).await?;
                let delivery = params![id, event_id.as_str(), now];
                run::<D>(&mut tx, Statement::new(sql::INSERT_DELIVERY, delivery)).await?;
                tx.commit().await?;
                Ok(Some(event_id))
            })
            .await
    }

    async fn claim_deliveries(
        &self,
        now: Timestamp,
        lease_until: Timestamp,
        limit: u32,
    ) -> Result<Vec<ClaimedDelivery>, StoreError> {
        self.writes()
            .track(async move {
                let mut tx = self.begin().await?;
                let claim = params![now, lease_until, i64::from(limit)];
                let claimed = run::<D>(&mut tx, Statement::new(D::CLAIM_DELIVERIES, claim)).await?;
                let mut deliveries = Vec::with_capacity(claimed.len());
                for row in &claimed {
                    let read = Statement::new(sql::CLAIMED_DELIVERY, params![row.int("id")?]);
                    let rows = run::<D>(&mut tx, read).await?;
                    let row = rows.first().ok_or_else(|| corrupt("claimed delivery"))?;
                    deliveries.push(rows::claimed_delivery(row)?);
                }
                tx.commit().await?;
                deliveries.sort_by_key(|delivery| delivery.id);
                Ok(deliveries)
            })
            .await
    }

    async fn finish_attempt(&self, attempt: &AttemptRecord) -> Result<(), StoreError> {
        self.writes()
            .track(async move {
                let mut tx = self.begin().await?;
                let (id, number, at) =
                    (attempt.delivery_id, i64::from(attempt.attempt), attempt.at);
                let change = match attempt.next {
                    AfterAttempt::Delivered => {
                        Statement::new(sql::DELIVERED, params![id, number, at])
                    }
                    AfterAttempt::RetryAt(next) => {
                        Statement::new(sql::RETRY_LATER, params![id, number, next])
                    }
                    AfterAttempt::GiveUp => Statement::new(sql::GIVE_UP, params![id, number, at]),
                };
                let rows = run::<D>(&mut tx, change).await?;
                // Claimed again since (this attempt outlived its lease), or gone.
                let Some(row) = rows.first() else {
                    return Ok(());
                };
                let webhook = WebhookId::from_uuid(*row.id("webhook_id")?.as_uuid());
                let made_at = row.time("created_at")?;
                let mut values = params![id, at];
                values.push(Param::Small(attempt.status_code.map(i32::from)));
                values.push(Param::Small(Some(
                    i32::try_from(attempt.latency_ms).unwrap_or(i32::MAX),
                )));
                values.push(Param::from(attempt.error.as_deref()));
                run::<D>(&mut tx, Statement::new(sql::INSERT_ATTEMPT, values)).await?;
                match attempt.next {
                    AfterAttempt::Delivered => {
                        let success = params![webhook, at];
                        run::<D>(&mut tx, Statement::new(sql::RECORD_SUCCESS, success)).await?;
                    }
                    AfterAttempt::GiveUp => {
                        let disable = params![webhook, at, FAILING, made_at];
                        let disabled =
                            run::<D>(&mut tx, Statement::new(sql::DISABLE_FAILING, disable))
                                .await?;
                        if !disabled.is_empty()
                            && let Some(after) = read_webhook::<D>(&mut tx, webhook).await?
                        {
                            let before = Webhook {
                                disabled_at: None,
                                disabled_reason: None,
                                ..after.clone()
                            };
                            let what = (&keyward(), "disable_webhook", at);
                            audit::<D>(&mut tx, what, Some(&before), Some(&after)).await?;
                        }
                    }
                    AfterAttempt::RetryAt(_) => {}
                }
                tx.commit().await?;
                Ok(())
            })
            .await
    }

    async fn list_deliveries(
        &self,
        id: WebhookId,
        limit: u32,
    ) -> Result<Option<Vec<DeliveryRecord>>, StoreError> {
        let mut conn = self.reader().await?;
        if read_webhook::<D>(&mut conn, id).await?.is_none() {
            return Ok(None);
        }
        let list = Statement::new(sql::LIST_DELIVERIES, params![id, i64::from(limit)]);
        let rows = run::<D>(&mut conn, list).await?;
        let mut deliveries = rows
            .iter()
            .map(rows::delivery_from_row)
            .collect::<Result<Vec<_>, _>>()?;
        if let Some(oldest) = deliveries.last().map(|delivery| delivery.id) {
            let attempts = Statement::new(sql::ATTEMPTS_OF, params![id, oldest]);
            let mut by_delivery: BTreeMap<i64, Vec<_>> = BTreeMap::new();
            for row in &run::<D>(&mut conn, attempts).await? {
                let (delivery, attempt) = rows::attempt_from_row(row)?;
                by_delivery.entry(delivery).or_default().push(attempt);
            }
            for delivery in &mut deliveries {
                delivery.attempt_log = by_delivery.remove(&delivery.id).unwrap_or_default();
            }
        }
        Ok(Some(deliveries))
    }

    async fn retry_delivery(
        &self,
        id: WebhookId,
        delivery_id: i64,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        self.writes()
            .track(async move {
                let mut tx = self.begin().await?;
                let retry = Statement::new(sql::RETRY_DELIVERY, params![delivery_id, id, now]);
                let rows = run::<D>(&mut tx, retry).await?;
                tx.commit().await?;
                Ok(!rows.is_empty())
            })
            .await
    }

    async fn prune_deliveries(
        &self,
        before: Timestamp,
        markers_before: Timestamp,
    ) -> Result<u64, StoreError> {
        self.writes()
            .track(async move {
                let mut tx = self.begin().await?;
                let deliveries = Statement::new(sql::PRUNE_DELIVERIES, params![before]);
                let pruned = run::<D>(&mut tx, deliveries).await?;
                let events = Statement::new(sql::PRUNE_WEBHOOK_EVENTS, params![before]);
                run::<D>(&mut tx, events).await?;
                let markers = Statement::new(sql::PRUNE_TIME_MARKERS, params![markers_before]);
                run::<D>(&mut tx, markers).await?;
                run::<D>(
                    &mut tx,
                    Statement::new(sql::PRUNE_CREDIT_MARKERS, params![]),
                )
                .await?;
                tx.commit().await?;
                Ok(u64::try_from(pruned.len()).unwrap_or(u64::MAX))
            })
            .await
    }

    async fn record_rate_limited(
        &self,
        hits: &[(KeyId, Timestamp)],
        now: Timestamp,
    ) -> Result<u32, StoreError> {
        self.writes()
            .track_if(
                async move {
                    let mut tx = self.begin().await?;
                    let kind = EventType::RateLimited;
                    if hits.is_empty() || !subscribed::<D>(&mut tx, kind).await? {
                        return Ok(0);
                    }
                    // In key order: two instances marking the same keys wait for each
                    // other, never deadlock.
                    let mut hits = hits.to_vec();
                    hits.sort_unstable();
                    let mut queued = 0;
                    for (id, period) in &hits {
                        let mark = params![*id, kind.as_str(), *period];
                        let claimed =
                            run::<D>(&mut tx, Statement::new(sql::MARK_ANNOUNCED, mark)).await?;
                        if claimed.is_empty() {
                            continue;
                        }
                        let read = Statement::new(sql::GET_KEY, params![*id, None::<&str>]);
                        let rows = run::<D>(&mut tx, read).await?;
                        let Some(row) = rows.first() else {
                            continue; // deleted since
                        };
                        let key = key_from_row(row)?;
                        let data = json!({
                            "key": rows::public_record(&key),
                            "actor": {"type": "system", "id": "keyward"},
                            "period_start": period.to_rfc3339(),
                        });
                        enqueue::<D>(&mut tx, kind, Some(key.id), now, data).await?;
                        queued += 1;
                    }
                    tx.commit().await?;
                    Ok(queued)
                },
                |queued| *queued > 0,
            )
            .await
    }

    async fn announce_conditions(
        &self,
        now: Timestamp,
        rules: &ConditionRules,
    ) -> Result<u32, StoreError> {
        // A transaction per condition: one that fails leaves the others announced.
        let mut queued = 0;
        let mut failed = None;
        for (kind, statement) in condition_queries(now, rules, i64::from(rules.limit)) {
            let announced = self
                .writes()
                .track_if(announce_one(self, kind, statement, now), |n| *n > 0)
                .await;
            match announced {
                Ok(n) => queued += n,
                Err(err) => failed = failed.or(Some(err)),
            }
        }
        match failed {
            Some(err) => Err(err),
            None => Ok(queued),
        }
    }
}

/// Announces each key `candidates` finds in condition `kind`, once (see
/// `sql::MARK_ANNOUNCED`), in one transaction; how many events were queued.
async fn announce_one<D: Dialect>(
    db: &D,
    kind: EventType,
    candidates: Statement<'static>,
    now: Timestamp,
) -> Result<u32, StoreError> {
    let mut tx = db.begin().await?;
    if !subscribed::<D>(&mut tx, kind).await? {
        return Ok(0);
    }
    let mut queued = 0;
    for row in &run::<D>(&mut tx, candidates).await? {
        let key = key_from_row(row)?;
        let marker = row.int("marker")?;
        let mark = params![key.id, kind.as_str(), marker];
        if run::<D>(&mut tx, Statement::new(sql::MARK_ANNOUNCED, mark))
            .await?
            .is_empty()
        {
            continue;
        }
        let data = json!({
            "key": rows::public_record(&key),
            "actor": {"type": "system", "id": "keyward"},
        });
        enqueue::<D>(&mut tx, kind, Some(key.id), now, data).await?;
        queued += 1;
    }
    tx.commit().await?;
    Ok(queued)
}

/// The conditions to look for, each with its query, as `rules` ask.
fn condition_queries(
    now: Timestamp,
    rules: &ConditionRules,
    limit: i64,
) -> Vec<(EventType, Statement<'static>)> {
    let mut queries = Vec::new();
    if let Some(notice) = rules.expiry_notice {
        let coming = params![
            now,
            now.plus(notice),
            EventType::KeyExpiring.as_str(),
            limit
        ];
        queries.push((
            EventType::KeyExpiring,
            Statement::new(sql::EXPIRY_TO_ANNOUNCE, coming),
        ));
    }
    let since = now.minus(rules.expired_lookback);
    let passed = params![since, now, EventType::KeyExpired.as_str(), limit];
    queries.push((
        EventType::KeyExpired,
        Statement::new(sql::EXPIRY_TO_ANNOUNCE, passed),
    ));
    if rules.credits_low_percent > 0 {
        let low = params![
            i64::from(rules.credits_low_percent),
            EventType::CreditsLow.as_str(),
            limit
        ];
        queries.push((
            EventType::CreditsLow,
            Statement::new(sql::LOW_CREDITS_TO_ANNOUNCE, low),
        ));
    }
    let exhausted = params![EventType::CreditsExhausted.as_str(), limit];
    queries.push((
        EventType::CreditsExhausted,
        Statement::new(sql::EXHAUSTED_CREDITS_TO_ANNOUNCE, exhausted),
    ));
    queries
}

async fn subscribe<D: Dialect>(
    conn: &mut Connection<D>,
    id: WebhookId,
    events: &[EventType],
) -> Result<(), StoreError> {
    for event in events {
        run::<D>(
            conn,
            Statement::new(sql::SUBSCRIBE, params![event.as_str(), id]),
        )
        .await?;
    }
    Ok(())
}

/// Locks an endpoint's row for the transaction; false if there is none.
async fn hold<D: Dialect>(conn: &mut Connection<D>, id: WebhookId) -> Result<bool, StoreError> {
    let rows = run::<D>(conn, Statement::new(sql::HOLD_WEBHOOK, params![id])).await?;
    Ok(!rows.is_empty())
}

async fn read_webhook<D: Dialect>(
    conn: &mut Connection<D>,
    id: WebhookId,
) -> Result<Option<Webhook>, StoreError> {
    let rows = run::<D>(conn, Statement::new(sql::GET_WEBHOOK, params![id])).await?;
    let Some(row) = rows.first() else {
        return Ok(None);
    };
    let subscriptions = run::<D>(conn, Statement::new(sql::SUBSCRIPTIONS_OF, params![id])).await?;
    let mut events = subscriptions
        .iter()
        .map(|row| rows::subscription(row).map(|(_, event)| event))
        .collect::<Result<Vec<_>, _>>()?;
    events.sort();
    Some(rows::webhook_from_row(row, events)).transpose()
}
