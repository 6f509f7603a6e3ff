//! The webhook sender: delivers the outbox's events to their endpoints, as the
//! Standard Webhooks specification says (`webhook-id`, `webhook-timestamp`,
//! `webhook-signature`), and records each attempt.
//!
//! Every instance runs one. It claims due deliveries from the database for a lease
//! (so one instance at a time attempts each, and one killed mid-attempt leaves it to
//! the next after the lease), sends them side by side, and records what each found:
//! delivered on a 2xx, tried again on the retry schedule otherwise. Nothing here is on
//! a request's path.
//!
//! Outbound safety: only the addresses a name resolves to that are public are
//! connected to (checked here, at connect time, so a name cannot point inside the
//! network after its endpoint was accepted), redirects are never followed, no proxy
//! is used, an attempt has a deadline and an answer's body is read to a small bound.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use keyward_core::webhook::{check_url, public_address, signature_header};
use keyward_engine::{AttemptOutcome, Engine, Outgoing, WebhookConfig};
use keyward_store::AnyStore;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use tokio::sync::watch;
use tokio::task::JoinSet;

/// Attempts under way at once, per instance.
const IN_FLIGHT: u32 = 32;
/// How often the outbox is looked at when the last look found less than a batch.
const POLL: Duration = Duration::from_millis(500);
/// How often keys are looked at for conditions to announce (an expiry coming or
/// passed, credits low or exhausted).
const SCAN_EVERY: Duration = Duration::from_secs(5);
/// How often finished deliveries older than the history period are forgotten.
const PRUNE_EVERY: Duration = Duration::from_secs(600);
/// The most of an answer's body read (then dropped): enough to reuse the connection
/// for small answers, never a large download.
const MAX_ANSWER: usize = 4 * 1024;

/// A running sender; stopped by [`Sender::stop`], or told to stop when dropped.
pub struct Sender {
    stop: watch::Sender<bool>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Sender {
    /// Starts delivering for `engine`.
    pub fn start(engine: Engine<AnyStore>) -> anyhow::Result<Self> {
        let config = engine.config().webhooks.clone();
        let client = client(&config)?;
        let (stop, stopped) = watch::channel(false);
        let task = tokio::spawn(run(engine, client, config, stopped));
        Ok(Self {
            stop,
            task: Some(task),
        })
    }

    /// Stops claiming; attempts under way finish (each within its timeout), so
    /// their outcome is recorded rather than left for the lease to run out.
    pub async fn stop(mut self) {
        let _ = self.stop.send(true);
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

/// Dropped without [`Sender::stop`]: it is told to stop, and finishes on its own. It
/// is never cut short: an attempt cut mid-write could leave a pooled connection inside
/// a transaction.
impl Drop for Sender {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}

async fn run(
    engine: Engine<AnyStore>,
    client: reqwest::Client,
    config: WebhookConfig,
    mut stopped: watch::Receiver<bool>,
) {
    let mut pruned: Option<Instant> = None;
    let mut scanned: Option<Instant> = None;
    let mut failing = false;
    let mut scan_failing = false;
    // Attempts run side by side, up to IN_FLIGHT; a slow endpoint holds one place,
    // not the others: a place freed is filled from the outbox while there is more.
    let mut attempts = JoinSet::new();
    let mut backlog = true;
    let mut poll = tokio::time::interval(POLL);
    poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    while !*stopped.borrow() {
        let free = IN_FLIGHT.saturating_sub(u32::try_from(attempts.len()).unwrap_or(IN_FLIGHT));
        if backlog && free > 0 {
            match engine.claim_deliveries(free).await {
                Ok(batch) => {
                    if failing {
                        tracing::info!("webhook deliveries can be claimed again");
                        failing = false;
                    }
                    backlog = batch.len() == free as usize;
                    for outgoing in batch {
                        let (engine, client) = (engine.clone(), client.clone());
                        let allow_private = config.allow_private;
                        attempts.spawn(async move {
                            let outcome = send(&client, &outgoing, allow_private).await;
                            record(&engine, &outgoing, outcome).await;
                        });
                    }
                }
                Err(err) => {
                    backlog = false;
                    if !failing {
                        tracing::warn!(error = %err, "webhook deliveries cannot be claimed; retrying");
                        failing = true;
                    }
                }
            }
        }
        if scanned.is_none_or(|at| at.elapsed() >= SCAN_EVERY) {
            match engine.announce_conditions().await {
                Ok(n) => {
                    if n > 0 {
                        tracing::debug!(events = n, "key conditions announced");
                    }
                    scan_failing = false;
                }
                // Said once, not every few seconds while it lasts.
                Err(err) if !scan_failing => {
                    tracing::warn!(error = %err, "key conditions were not all scanned; trying again");
                    scan_failing = true;
                }
                Err(_) => {}
            }
            scanned = Some(Instant::now());
        }
        if pruned.is_none_or(|at| at.elapsed() >= PRUNE_EVERY) {
            match engine.prune_webhook_history().await {
                Ok(0) => {}
                Ok(n) => tracing::debug!(deliveries = n, "old webhook deliveries forgotten"),
                Err(err) => tracing::debug!(error = %err, "webhook history not pruned"),
            }
            pruned = Some(Instant::now());
        }
        tokio::select! {
            // An attempt done: its place may take the next due delivery.
            Some(_) = attempts.join_next(), if !attempts.is_empty() => {}
            _ = poll.tick() => backlog = true,
            _ = stopped.changed() => {}
        }
    }
    // Attempts under way finish (each within its timeout) and are recorded.
    while attempts.join_next().await.is_some() {}
}

/// Records an attempt; a failure to record leaves the delivery to be attempted
/// again after its lease (at least once, never lost).
async fn record(engine: &Engine<AnyStore>, outgoing: &Outgoing, outcome: AttemptOutcome) {
    let delivery = &outgoing.delivery;
    let (code, error) = (outcome.status_code, outcome.error.clone());
    match engine.finish_delivery(delivery, outcome).await {
        Ok(next) => tracing::debug!(
            delivery = delivery.id,
            webhook_id = %delivery.webhook_id,
            event_id = %delivery.event_id,
            attempt = delivery.attempt,
            status = ?code,
            error = ?error,
            next = ?next,
            "webhook attempt"
        ),
        Err(err) => tracing::warn!(
            delivery = delivery.id,
            error = %err,
            "a webhook attempt's outcome was not recorded; it will be attempted again"
        ),
    }
}

/// One attempt: the signed POST, and what came of it.
async fn send(
    client: &reqwest::Client,
    outgoing: &Outgoing,
    allow_private: bool,
) -> AttemptOutcome {
    let started = Instant::now();
    let delivery = &outgoing.delivery;
    let failed = |error: String| AttemptOutcome {
        status_code: None,
        latency: started.elapsed(),
        error: Some(error),
    };
    // Checked again: the setting may have changed since the endpoint was accepted.
    if let Err(why) = check_url(&delivery.url, allow_private) {
        return failed(format!("the endpoint's URL {why}"));
    }
    if outgoing.secrets.is_empty() {
        return failed(
            "cannot be signed: the pepper its secret was made with is no longer \
                       configured (rotate the endpoint's secret)"
                .into(),
        );
    }
    let timestamp = time::OffsetDateTime::now_utc().unix_timestamp();
    let secrets: Vec<_> = outgoing.secrets.iter().collect();
    let signature = signature_header(
        &secrets,
        &delivery.event_id,
        timestamp,
        delivery.body.as_bytes(),
    );
    let request = client
        .post(&delivery.url)
        .header("content-type", "application/json")
        .header("webhook-id", &delivery.event_id)
        .header("webhook-timestamp", timestamp.to_string())
        .header("webhook-signature", signature)
        .body(delivery.body.clone());
    let mut response = match request.send().await {
        Ok(response) => response,
        Err(err) => return failed(describe(&err)),
    };
    let status = response.status();
    // Read a little of the answer, so the connection can be reused, and no more.
    let mut read = 0;
    while read < MAX_ANSWER {
        match response.chunk().await {
            Ok(Some(chunk)) => read += chunk.len(),
            Ok(None) | Err(_) => break,
        }
    }
    let error = if status.is_success() {
        None
    } else if status.is_redirection() {
        Some(format!(
            "answered {} (a redirect): redirects are not followed; register the final URL",
            status.as_u16()
        ))
    } else {
        Some(format!("answered {}", status.as_u16()))
    };
    AttemptOutcome {
        status_code: Some(status.as_u16()),
        latency: started.elapsed(),
        error,
    }
}

/// A failed request in a few words, with its cause (never a header or the body).
fn describe(err: &reqwest::Error) -> String {
    use std::error::Error as _;
    let what = if err.is_timeout() {
        "timed out"
    } else if err.is_connect() {
        "could not connect"
    } else {
        "request failed"
    };
    let mut cause = err.source();
    let mut deepest = None;
    while let Some(inner) = cause {
        deepest = Some(inner.to_string());
        cause = inner.source();
    }
    match deepest {
        Some(reason) => format!("{what}: {reason}"),
        None => what.to_owned(),
    }
}

fn client(config: &WebhookConfig) -> reqwest::Result<reqwest::Client> {
    reqwest::Client::builder()
        .tls_backend_preconfigured(crate::http::jwks::tls_client_config())
        .timeout(config.timeout)
        .connect_timeout(config.timeout)
        .redirect(reqwest::redirect::Policy::none())
        // A proxy would resolve the name itself, past the address check.
        .no_proxy()
        .dns_resolver(PublicOnly {
            allow_private: config.allow_private,
        })
        .user_agent(concat!("keyward-webhooks/", env!("CARGO_PKG_VERSION")))
        .build()
}

/// Resolves a name to the addresses a webhook may be sent to: public ones only,
/// unless private ones are allowed. A name resolving to none of them fails.
struct PublicOnly {
    allow_private: bool,
}

impl Resolve for PublicOnly {
    fn resolve(&self, name: Name) -> Resolving {
        let allow_private = self.allow_private;
        Box::pin(async move {
            let host = name.as_str().to_owned();
            let found: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let allowed: Vec<SocketAddr> = found
                .iter()
                .copied()
                .filter(|address| allow_private || public_address(address.ip()))
                .collect();
            if allowed.is_empty() {
                let why: Box<dyn std::error::Error + Send + Sync> = if found.is_empty() {
                    format!("{host} has no address").into()
                } else {
                    format!(
                        "{host} resolves only to loopback, private or link-local addresses \
                         (allowed only with KEYWARD_WEBHOOK_ALLOW_PRIVATE=true)"
                    )
                    .into()
                };
                return Err(why);
            }
            let addresses: Addrs = Box::new(allowed.into_iter());
            Ok(addresses)
        })
    }
}

#[cfg(test)]
mod tests {
    use std::str::FromStr;

    use super::*;

    async fn resolve(name: &str, allow_private: bool) -> Result<Vec<SocketAddr>, String> {
        let resolver = PublicOnly { allow_private };
        match resolver.resolve(Name::from_str(name).unwrap()).await {
            Ok(addresses) => Ok(addresses.collect()),
            Err(err) => Err(err.to_string()),
        }
    }

    #[tokio::test]
    async fn a_name_resolving_to_loopback_is_refused_at_connect_time() {
        // Whatever name the endpoint was accepted with, the address connected to is
        // what counts: `localhost` stands for any name pointed inside the network.
        let err = resolve("localhost", false).await.unwrap_err();
        assert!(err.contains("loopback"), "{err}");
        let allowed = resolve("localhost", true).await.unwrap();
        assert!(allowed.iter().all(|a| a.ip().is_loopback()), "{allowed:?}");
    }

    #[tokio::test]
    async fn a_redirect_is_not_followed() {
        // A server that redirects to a second one, which must never be reached.
        let target = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let target_address = target.local_addr().unwrap();
        let redirector = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = redirector.local_addr().unwrap();
        tokio::spawn(async move {
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            let (mut socket, _) = redirector.accept().await.unwrap();
            let mut buffer = [0; 4096];
            let _ = socket.read(&mut buffer).await;
            let answer = format!(
                "HTTP/1.1 307 Temporary Redirect\r\nLocation: http://{target_address}/\r\n\
                 Content-Length: 0\r\n\r\n"
            );
            socket.write_all(answer.as_bytes()).await.unwrap();
        });
        let config = WebhookConfig {
            allow_private: true,
            ..WebhookConfig::default()
        };
        let response = client(&config)
            .unwrap()
            .post(format!("http://{address}/hook"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), 307);
        let reached = tokio::time::timeout(Duration::from_millis(200), target.accept()).await;
        assert!(reached.is_err(), "the redirect was followed");
    }
}
