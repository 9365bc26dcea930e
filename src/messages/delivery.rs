//! How the push worker delivers a card's news and settles the message's send records: Apple's
//! when a device behind the news version received the push (or every such device was given
//! up), Google's when `addMessage` went through on the card's object.

use chrono::{DateTime, Utc};

use super::Wallet;
use crate::domain::{Card, CardNews, DeviceLibraryId, Registration};
use crate::google::{GoogleError, GoogleWallet};
use crate::metrics::Metrics;
use crate::store::{DynStore, GoogleSync, SendState, StoreError};

/// The news `card` carries that devices in `owed` have not seen yet.
fn unseen<'a>(card: &'a Card, owed: &[Registration]) -> Option<&'a CardNews> {
    card.news.as_ref().filter(|news| owed.iter().any(|r| r.pushed_version < news.version))
}

async fn settle(
    store: &DynStore,
    metrics: &Metrics,
    news: &CardNews,
    card: &Card,
    wallet: Wallet,
    state: SendState,
) -> Result<(), StoreError> {
    if store.settle_send(&news.message_id, card.serial.as_str(), wallet, state).await? {
        metrics.messages_sent.with_label_values(&[wallet.as_str(), state.as_str()]).inc();
    }
    Ok(())
}

/// After APNs answered for the owed devices: the news counts as delivered to Apple when one
/// device that had not seen it got the push.
pub async fn apple_sent(
    store: &DynStore,
    metrics: &Metrics,
    card: &Card,
    owed: &[Registration],
    delivered: &[DeviceLibraryId],
) -> Result<(), StoreError> {
    let Some(news) = unseen(card, owed) else { return Ok(()) };
    let reached = owed.iter().any(|r| r.pushed_version < news.version && delivered.contains(&r.device_library_id));
    if reached {
        settle(store, metrics, news, card, Wallet::Apple, SendState::Delivered).await?;
    }
    Ok(())
}

/// When the devices behind the news cannot be told: given up into dead letters, or APNs is not
/// configured. A device delivered before keeps the send delivered.
pub async fn apple_failed(
    store: &DynStore,
    metrics: &Metrics,
    card: &Card,
    devices: &[Registration],
) -> Result<(), StoreError> {
    let Some(news) = unseen(card, devices) else { return Ok(()) };
    settle(store, metrics, news, card, Wallet::Apple, SendState::Failed).await
}

/// What adding the news to the card's Google object came to.
pub enum GoogleNews {
    /// Nothing to add, or added (or refused for good, and recorded as failed).
    Done,
    /// Google could not take it now; the card's Google update is retried.
    Retry(GoogleError),
}

/// Adds the card's news to its Google object when its send is still queued, announcing it
/// while the card is within Google's notification budget (after any balance notification this
/// update used; `sync` has the notifications so far) and silently otherwise.
pub async fn google(
    store: &DynStore,
    metrics: &Metrics,
    google: &GoogleWallet,
    card: &Card,
    program_name: &str,
    sync: &GoogleSync,
    now: DateTime<Utc>,
) -> Result<GoogleNews, StoreError> {
    let Some(news) = card.news.as_ref().filter(|n| n.google_object) else { return Ok(GoogleNews::Done) };
    let queued = store
        .message_send(&news.message_id, card.serial.as_str())
        .await?
        .is_some_and(|send| send.google == SendState::Queued);
    if !queued {
        return Ok(GoogleNews::Done);
    }
    let notify = crate::google::notify_allowed(&sync.notified_at, now);
    let header = if news.title.is_empty() { program_name } else { news.title.as_str() };
    let body = match &news.link {
        Some(link) => format!("{}\n{link}", news.body),
        None => news.body.clone(),
    };
    match google.add_message(card, &news.message_id, header, &body, notify).await {
        Ok(()) => {
            if notify {
                store.record_google_sync(&card.serial, sync.version, card.balance, Some(now)).await?;
            }
            settle(store, metrics, news, card, Wallet::Google, SendState::Delivered).await?;
            Ok(GoogleNews::Done)
        }
        Err(e) if e.is_retryable() => Ok(GoogleNews::Retry(e)),
        Err(e) => {
            tracing::warn!(serial = %card.serial, message = %news.message_id, error = %e, "Google refused a message");
            settle(store, metrics, news, card, Wallet::Google, SendState::Failed).await?;
            Ok(GoogleNews::Done)
        }
    }
}

/// When the card's Google update is given up: its news counts as failed there.
pub async fn google_failed(store: &DynStore, metrics: &Metrics, card: &Card) -> Result<(), StoreError> {
    match card.news.as_ref().filter(|n| n.google_object) {
        Some(news) => settle(store, metrics, news, card, Wallet::Google, SendState::Failed).await,
        None => Ok(()),
    }
}

/// When a card's news is replaced before its devices saw it: the earlier message will never
/// show there (a pass shows the latest news), so its sends still queued count as failed.
pub async fn superseded(store: &DynStore, metrics: &Metrics, card: &Card) -> Result<(), StoreError> {
    let Some(news) = &card.news else { return Ok(()) };
    if card.pushed_version >= news.version {
        return Ok(());
    }
    for wallet in [Wallet::Apple, Wallet::Google] {
        settle(store, metrics, news, card, wallet, SendState::Failed).await?;
    }
    Ok(())
}
