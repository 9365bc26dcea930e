//! Passes added to and removed from the wallets, recorded once each: the change is stored
//! (deduplicated on its id, see [`crate::store::WalletEventStore`]), and only a change stored
//! for the first time is counted in `/metrics` (`loy_wallet_changes_total`) and sent as an
//! outgoing event (`card.installed` / `card.removed`).
//!
//! Apple's changes come from the PassKit web service ([`apple_event`]) and from the push worker
//! when APNs calls a device's token dead (the pass is gone from that device, which will not
//! unregister), Google's from its signed callbacks and from the reconciliation
//! (`google::callbacks::receive`, `google::reconcile`).

use chrono::{DateTime, Utc};

use crate::domain::{Card, DeviceLibraryId};
use crate::metrics::Metrics;
use crate::state::AppState;
use crate::store::{DynStore, StoreError, Wallet, WalletChange, WalletEvent, WalletSource};
use crate::webhooks::Webhooks;

/// Stores `event` for `card`; `Ok(true)` when it is new, and then it is counted and sent.
/// `Ok(false)`: the same change was recorded before (nothing else happens).
pub async fn record(state: &AppState, card: &Card, event: &WalletEvent) -> Result<bool, StoreError> {
    record_with(&state.store, &state.metrics, Some(&state.webhooks), card, event, state.clock.now()).await
}

/// [`record`] from a process that may have no webhook sender of its own (a push worker):
/// `webhooks` is rung when there is one; `now` is when the outgoing event is dated.
pub async fn record_with(
    store: &DynStore,
    metrics: &Metrics,
    webhooks: Option<&Webhooks>,
    card: &Card,
    event: &WalletEvent,
    now: DateTime<Utc>,
) -> Result<bool, StoreError> {
    if !store.record_wallet_event(event).await? {
        tracing::debug!(serial = %card.serial, wallet = event.wallet.as_str(), "wallet change recorded already");
        return Ok(false);
    }
    let installed = event.change == WalletChange::Installed;
    crate::webhooks::record_wallet_change(store, metrics, webhooks, card, installed, event.wallet, now).await;
    Ok(true)
}

/// A device registering for (or unregistering from) a card's pass. The id names the device, the
/// card and when the registration was made, so each registration is one install and one removal
/// however often Wallet repeats its requests.
pub fn apple_event(
    card: &Card,
    device: &DeviceLibraryId,
    registered_at: DateTime<Utc>,
    change: WalletChange,
    at: DateTime<Utc>,
) -> WalletEvent {
    WalletEvent {
        id: format!("apple:{device}:{}:{}:{}", card.serial, registered_at.timestamp_millis(), change.as_str()),
        serial: card.serial.clone(),
        program_id: card.program_id.clone(),
        wallet: Wallet::Apple,
        change,
        at,
        source: WalletSource::PassKit,
    }
}

/// Records an Apple change; a failure to store it is logged, never turned into a failed
/// registration (the device's registration is stored already, and Wallet would not repeat it).
pub async fn record_apple(state: &AppState, card: &Card, event: &WalletEvent) {
    if let Err(e) = record(state, card, event).await {
        tracing::warn!(serial = %card.serial, change = event.change.as_str(),
            error = %crate::telemetry::error_chain(&e), "recording an Apple Wallet change failed");
    }
}
