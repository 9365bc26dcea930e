//! Outgoing events to CRMs and other systems (SPEC §4.10): an owner configures endpoints (URL,
//! event types, secret); every change worth telling is recorded as an event in the same atomic
//! step as the change ([`events`], `store::webhooks`); the sender ([`delivery`]) fans events out
//! into one delivery per endpoint and delivers them through a queue keyed by card, signed
//! ([`signature`]), at least once, in order per card, retrying with backoff for up to a day,
//! then keeps them as failed for a replay. [`ssrf`] keeps deliveries away from private
//! addresses in production. Receivers' side: `docs/webhooks.md`.

pub mod delivery;
pub mod endpoints;
pub mod events;
pub mod signature;
pub mod ssrf;

use std::sync::Arc;

use crate::config::webhooks::WebhookSettings;
use crate::push::queue::PushQueue;

/// The sender's parts: settings, the queue of cards owed deliveries, the HTTP client, and a
/// bell that wakes the sender when something is to be delivered.
pub struct Webhooks {
    pub settings: WebhookSettings,
    /// One job per card with deliveries due: its lease keeps one worker per card, which keeps
    /// a card's events in order across workers and nodes.
    pub queue: Arc<dyn PushQueue>,
    client: reqwest::Client,
    pub wake: tokio::sync::Notify,
}

impl Webhooks {
    /// The HTTP client follows no redirects, uses no proxy, and resolves through
    /// [`ssrf::GuardedResolver`], so a host that turns private is refused at connection time.
    pub fn new(settings: &WebhookSettings, queue: Arc<dyn PushQueue>) -> anyhow::Result<Arc<Self>> {
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .timeout(settings.timeout)
            .connect_timeout(settings.timeout)
            .dns_resolver(ssrf::resolver(settings.allow_private))
            .user_agent(concat!("loy-webhooks/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Arc::new(Self { settings: settings.clone(), queue, client, wake: tokio::sync::Notify::new() }))
    }
}

/// Records `card.installed` or `card.removed` right after a wallet registration changed. The
/// registration is stored by its own write, so this is a second one: should it fail, the event
/// is lost (logged), never the registration. Also counted in `/metrics` (`loy_wallet_changes_total`).
/// `webhooks`: this process's sender, rung at once; without one (a standalone push worker) the
/// serving nodes' senders find the event on their next poll.
pub async fn record_wallet_change(
    store: &crate::store::DynStore,
    metrics: &crate::metrics::Metrics,
    webhooks: Option<&Webhooks>,
    card: &crate::domain::Card,
    installed: bool,
    wallet: events::Wallet,
    at: chrono::DateTime<chrono::Utc>,
) {
    let change = if installed { "install" } else { "removal" };
    metrics.wallet_changes.with_label_values(&[wallet.as_str(), change]).inc();
    let event = events::wallet_change(card, installed, wallet, at);
    match store.record_events(std::slice::from_ref(&event)).await {
        Ok(()) => {
            if let Some(webhooks) = webhooks {
                webhooks.wake.notify_one();
            }
        }
        Err(e) => {
            tracing::warn!(serial = %card.serial, kind = %event.kind, error = %crate::telemetry::error_chain(&e), "recording a webhook event failed")
        }
    }
}
