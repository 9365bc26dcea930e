//! Configuring endpoints and replaying deliveries: what the console and the CLI share.

use chrono::{DateTime, Utc};

use super::events;
use super::ssrf::{self, UrlRefused};
use crate::config::webhooks::WebhookSettings;
use crate::store::{DeliveryState, Store, StoreError, WebhookEndpoint};

#[derive(Debug, thiserror::Error)]
pub enum EndpointError {
    #[error("{0}")]
    Url(#[from] UrlRefused),
    #[error("{0}")]
    Events(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

const ALPHABET: &[u8] = b"abcdefghijkmnpqrstuvwxyz23456789";

/// A fresh signing secret (`whsec_` and 32 symbols, 160 bits).
pub fn new_secret() -> String {
    format!("whsec_{}", crate::domain::tokens::random_string(ALPHABET, 32))
}

/// Checks `url` (its shape, and its addresses unless private ones are allowed) and `events`
/// (`card.created,balance.changed`; empty = every type), then stores a new enabled endpoint
/// with a fresh secret. The caller shows the secret once.
pub async fn add(
    store: &dyn Store,
    settings: &WebhookSettings,
    url: &str,
    events: &str,
    now: DateTime<Utc>,
) -> Result<WebhookEndpoint, EndpointError> {
    let url = ssrf::check_url(url, settings.allow_private).await?;
    let events = events::parse_list(events).map_err(EndpointError::Events)?;
    let endpoint = WebhookEndpoint {
        id: format!("we_{}", crate::domain::tokens::random_string(ALPHABET, 16)),
        url: url.to_string(),
        events,
        secret: new_secret(),
        enabled: true,
        created_at: now,
    };
    store.insert_webhook_endpoint(&endpoint).await?;
    Ok(endpoint)
}

/// The event types an endpoint receives, as shown to people.
pub fn events_label(endpoint: &WebhookEndpoint) -> String {
    if endpoint.events.is_empty() { "all".to_owned() } else { endpoint.events.join(",") }
}

/// Puts a failed delivery back to be sent at once, with a new retry period; `false` when there
/// is no such failed delivery. The running sender picks it up within `LOY_WEBHOOK_POLL_MS`
/// (at once when `wake` is this process's sender).
pub async fn replay(
    store: &dyn Store,
    settings: &WebhookSettings,
    id: &str,
    now: DateTime<Utc>,
) -> Result<bool, StoreError> {
    let give_up = now + chrono::Duration::from_std(settings.max_age).unwrap_or_else(|_| chrono::Duration::days(1));
    store.replay_delivery(id, now, give_up).await
}

/// Replays every failed delivery of an endpoint; returns how many.
pub async fn replay_all_failed(
    store: &dyn Store,
    settings: &WebhookSettings,
    endpoint_id: &str,
    now: DateTime<Utc>,
) -> Result<usize, StoreError> {
    let mut replayed = 0;
    loop {
        let failed = store.endpoint_deliveries(endpoint_id, Some(DeliveryState::Failed), 500).await?;
        if failed.is_empty() {
            return Ok(replayed);
        }
        let before = replayed;
        for d in &failed {
            if replay(store, settings, &d.id, now).await? {
                replayed += 1;
            }
        }
        if replayed == before {
            return Ok(replayed);
        }
    }
}
