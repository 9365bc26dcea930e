//! The sender: fans recorded events out into deliveries, and delivers each card's deliveries in
//! order through the queue. Safe on several nodes: fanning out twice stores nothing twice, and
//! the queue leases a card to one worker at a time.
//!
//! Per card and endpoint the deliveries go strictly in event order: a delivery that fails stops
//! the ones after it until it succeeds or is given up (`give_up_at`, `LOY_WEBHOOK_MAX_AGE_SECS`
//! after the event), when it is kept as failed and the next one goes. Retries wait
//! `LOY_WEBHOOK_RETRY_BASE_MS`, doubling, at most an hour.

use std::collections::HashSet;
use std::time::Duration;

use chrono::{DateTime, Utc};

use super::Webhooks;
use super::signature::{EVENT_ID_HEADER, EVENT_TYPE_HEADER, SIGNATURE_HEADER, header};
use super::ssrf;
use crate::domain::SerialNumber;
use crate::push::queue::QueueError;
use crate::state::AppState;
use crate::store::{DeliveryAttempt, DeliveryState, StoreError, WebhookDelivery, WebhookEndpoint, WebhookEvent};
use crate::telemetry::error_chain;

/// At most this many sends per card job; a card with more goes back to the queue, due at once.
const SENDS_PER_JOB: usize = 20;

/// Events read from the outbox at a time.
const FAN_OUT_BATCH: usize = 200;

/// What one step of the sender did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// No card was due.
    Idle,
    /// A card's due deliveries were attempted.
    Ran,
}

#[derive(Debug, thiserror::Error)]
pub enum SenderError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Queue(#[from] QueueError),
}

/// How long after `attempts` failed attempts the next one is due.
pub fn backoff(base: Duration, attempts: u32) -> Duration {
    let factor = 2u32.saturating_pow(attempts.saturating_sub(1).min(16));
    base.saturating_mul(factor).min(Duration::from_secs(3600))
}

/// Copies recorded events into deliveries for the endpoints that want them, and queues the
/// cards concerned. Returns how many events it handled.
pub async fn fan_out(state: &AppState) -> Result<usize, SenderError> {
    let webhooks = &state.webhooks;
    let mut handled = 0;
    let mut touched: HashSet<SerialNumber> = HashSet::new();
    loop {
        let events = state.store.events_to_fan_out(FAN_OUT_BATCH).await?;
        if events.is_empty() {
            break;
        }
        let endpoints = state.store.webhook_endpoints().await?;
        let now = state.clock.now();
        let give_up =
            now + chrono::Duration::from_std(webhooks.settings.max_age).unwrap_or_else(|_| chrono::Duration::days(1));
        let batch: Vec<(WebhookEvent, Vec<WebhookDelivery>)> = events
            .into_iter()
            .map(|event| {
                let deliveries: Vec<WebhookDelivery> = endpoints
                    .iter()
                    .filter(|e| e.wants(&event.kind))
                    .map(|e| WebhookDelivery::of(&event, e, give_up, now))
                    .collect();
                (event, deliveries)
            })
            .collect();
        state.store.fan_out(&batch).await?;
        for (event, deliveries) in &batch {
            if !deliveries.is_empty() {
                touched.insert(event.serial.clone());
            }
        }
        handled += batch.len();
    }
    for serial in &touched {
        webhooks.queue.enqueue(serial, Duration::ZERO).await?;
    }
    Ok(handled)
}

/// Queues every card with a delivery due (after a restart of the in-process queue, a lost
/// message, a replay from the command line). A card already waiting keeps its due time.
pub async fn sweep(state: &AppState) -> Result<usize, SenderError> {
    let due = state.store.cards_with_due_deliveries(state.clock.now(), 1000).await?;
    for serial in &due {
        state.webhooks.queue.ensure_queued(serial).await?;
    }
    Ok(due.len())
}

/// Takes one card that is due from the queue and attempts its due deliveries in order.
pub async fn try_execute_task(state: &AppState) -> Result<Outcome, SenderError> {
    let webhooks = &state.webhooks;
    let lease_for = webhooks.settings.timeout.saturating_mul(SENDS_PER_JOB as u32 + 1) + Duration::from_secs(30);
    let Some(lease) = webhooks.queue.take(lease_for).await? else { return Ok(Outcome::Idle) };
    let now = state.clock.now();
    match deliver_card(state, webhooks, &lease.serial).await {
        Ok(None) => webhooks.queue.ack(&lease).await?,
        Ok(Some(at)) => {
            let delay = (at - state.clock.now()).to_std().unwrap_or(Duration::ZERO);
            webhooks.queue.retry(&lease, delay, lease.attempts, lease.first_failure.unwrap_or(now)).await?;
        }
        Err(e) => {
            tracing::warn!(serial = %lease.serial, error = %error_chain(&e), "delivering a card's events failed; trying again shortly");
            webhooks
                .queue
                .retry(&lease, Duration::from_secs(5), lease.attempts + 1, lease.first_failure.unwrap_or(now))
                .await?;
        }
    }
    Ok(Outcome::Ran)
}

/// Attempts a card's due deliveries, per endpoint in event order, stopping at the first one
/// that must wait. Returns when the card is next due, if anything is left pending.
async fn deliver_card(
    state: &AppState,
    webhooks: &Webhooks,
    serial: &SerialNumber,
) -> Result<Option<DateTime<Utc>>, StoreError> {
    let pending = state.store.card_pending_deliveries(serial).await?;
    let mut order: Vec<String> = Vec::new();
    for d in &pending {
        if !order.contains(&d.endpoint_id) {
            order.push(d.endpoint_id.clone());
        }
    }
    let mut next_due: Option<DateTime<Utc>> = None;
    let due_at = |at: DateTime<Utc>, next: &mut Option<DateTime<Utc>>| {
        *next = Some(next.map_or(at, |n| n.min(at)));
    };
    let mut sends = 0;
    for endpoint_id in order {
        let Some(endpoint) = state.store.webhook_endpoint(&endpoint_id).await? else { continue };
        for d in pending.iter().filter(|d| d.endpoint_id == endpoint_id) {
            let now = state.clock.now();
            if d.next_attempt_at > now {
                due_at(d.next_attempt_at, &mut next_due);
                break;
            }
            if sends >= SENDS_PER_JOB {
                due_at(now, &mut next_due);
                break;
            }
            sends += 1;
            let result = send(webhooks, &endpoint, d, now).await;
            let now = state.clock.now();
            let attempts = d.attempts + 1;
            let outcome = match result {
                Ok(status) => DeliveryAttempt {
                    state: DeliveryState::Delivered,
                    next_attempt_at: now,
                    last_status: Some(status),
                    last_error: None,
                    at: now,
                },
                Err((status, error)) if now >= d.give_up_at => {
                    tracing::warn!(delivery = %d.id, endpoint = %endpoint.id, attempts, error = %error, "a webhook delivery failed for good");
                    DeliveryAttempt {
                        state: DeliveryState::Failed,
                        next_attempt_at: now,
                        last_status: status,
                        last_error: Some(error),
                        at: now,
                    }
                }
                Err((status, error)) => {
                    let wait = chrono::Duration::from_std(backoff(webhooks.settings.retry_base, attempts))
                        .unwrap_or_else(|_| chrono::Duration::hours(1));
                    // The last attempt is made when the retry period ends.
                    let next = (now + wait).min(d.give_up_at.max(now));
                    tracing::info!(delivery = %d.id, endpoint = %endpoint.id, attempts, error = %error, "a webhook delivery failed; will retry");
                    DeliveryAttempt {
                        state: DeliveryState::Pending,
                        next_attempt_at: next,
                        last_status: status,
                        last_error: Some(error),
                        at: now,
                    }
                }
            };
            let recorded = state.store.finish_delivery(&d.id, attempts, &outcome).await?;
            if !recorded {
                tracing::warn!(delivery = %d.id, "a delivery changed while it was being sent (a replay?); looking again");
                due_at(now, &mut next_due);
                break;
            }
            match outcome.state {
                DeliveryState::Pending => {
                    due_at(outcome.next_attempt_at, &mut next_due);
                    break;
                }
                DeliveryState::Delivered => {
                    tracing::info!(delivery = %d.id, endpoint = %endpoint.id, kind = %d.kind, "webhook delivered");
                }
                DeliveryState::Failed => {}
            }
        }
    }
    Ok(next_due)
}

/// One HTTP attempt: the receiver's 2xx status, or its status (if it answered) and a reason.
async fn send(
    webhooks: &Webhooks,
    endpoint: &WebhookEndpoint,
    d: &WebhookDelivery,
    now: DateTime<Utc>,
) -> Result<u16, (Option<u16>, String)> {
    let url = ssrf::parse_url(&endpoint.url).map_err(|e| (None, e.to_string()))?;
    // An address written as an IP never reaches the resolver: check it here.
    if !webhooks.settings.allow_private {
        let literal = match url.host() {
            Some(url::Host::Ipv4(ip)) => Some(std::net::IpAddr::V4(ip)),
            Some(url::Host::Ipv6(ip)) => Some(std::net::IpAddr::V6(ip)),
            _ => None,
        };
        if let Some(ip) = literal.filter(|ip| ssrf::is_private(*ip)) {
            return Err((None, ssrf::UrlRefused::Private(ip).to_string()));
        }
    }
    let timestamp = now.timestamp();
    let response = webhooks
        .client
        .post(url)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .header(SIGNATURE_HEADER, header(&endpoint.secret, timestamp, &d.body))
        .header(EVENT_ID_HEADER, &d.event_id)
        .header(EVENT_TYPE_HEADER, &d.kind)
        .body(d.body.clone())
        .send()
        .await
        .map_err(|e| (None, describe(&e)))?;
    let status = response.status();
    if status.is_success() {
        Ok(status.as_u16())
    } else {
        Err((Some(status.as_u16()), format!("the receiver answered {status}")))
    }
}

/// A transport failure in a few words, without the URL (it may hold a token).
fn describe(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        return "no answer within the time limit".into();
    }
    let chain = error_chain(e);
    if chain.contains("not allowed here") {
        return "the host resolves to a private address, which is not allowed here".into();
    }
    if e.is_connect() {
        return "the connection was refused or failed".into();
    }
    "the request failed".into()
}

/// Fans out, queues what is due and delivers until nothing is due now; returns how many card
/// jobs ran. Tests drive the sender with this.
pub async fn deliver_due(state: &AppState) -> Result<usize, SenderError> {
    fan_out(state).await?;
    sweep(state).await?;
    let mut ran = 0;
    while try_execute_task(state).await? == Outcome::Ran {
        ran += 1;
    }
    Ok(ran)
}

/// Delivers whenever woken and at least every `LOY_WEBHOOK_POLL_MS`, with a few card jobs in
/// parallel (one slow receiver does not hold up the others), until the task is dropped.
pub async fn run_forever(state: actix_web::web::Data<AppState>) {
    const WORKERS: usize = 4;
    // Dropped (and so aborted) with this task.
    let mut workers = tokio::task::JoinSet::new();
    for _ in 1..WORKERS {
        let state = state.clone();
        workers.spawn(async move {
            loop {
                match try_execute_task(&state).await {
                    Ok(Outcome::Ran) => continue,
                    Ok(Outcome::Idle) => {}
                    Err(e) => {
                        tracing::warn!(error = %error_chain(&e), "the webhook sender failed; trying again shortly")
                    }
                }
                tokio::time::sleep(state.webhooks.settings.poll).await;
            }
        });
    }
    loop {
        if let Err(e) = state.webhooks.queue.reap().await {
            tracing::warn!(error = %error_chain(&e), "returning expired webhook jobs failed");
        }
        if let Err(e) = deliver_due(&state).await {
            tracing::warn!(error = %error_chain(&e), "the webhook sender failed; trying again shortly");
        }
        let _ = tokio::time::timeout(state.webhooks.settings.poll, state.webhooks.wake.notified()).await;
    }
}
