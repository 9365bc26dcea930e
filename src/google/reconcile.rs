//! Reconciliation of missed save and delete callbacks: Google delivers callbacks on a best-effort
//! basis, and while loy is down or unreachable they are lost. A periodic task reads the objects
//! of a few cards at a time and records a change when Google's `hasUsers` (set by Google: the
//! object is in someone's wallet) disagrees with what loy last recorded.
//!
//! What it can and cannot see: `hasUsers` says whether the pass is saved now, not when or how
//! often. A missed save shows up as a save, and a missed delete as a removal, dated when the
//! reconciliation noticed; a save followed by a delete between two reads leaves no trace.
//! Objects Google never created (404) are skipped.
//!
//! Rounds are bounded: [`round`] reads at most `batch` cards (one Google call each, through the
//! client's rate limiter), and [`run_forever`] waits `interval` between rounds, walking the cards
//! in serial order and starting again from the first after the last.

use std::time::Duration;

use actix_web::web;

use super::GoogleError;
use crate::domain::SerialNumber;
use crate::state::AppState;
use crate::store::{StoreError, Wallet, WalletChange, WalletEvent, WalletSource};

/// What one round did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Round {
    /// Cards whose object was read.
    pub checked: usize,
    /// Changes recorded because Google disagreed with the store.
    pub recorded: usize,
    /// Where the next round starts; `None` after the last card.
    pub next: Option<SerialNumber>,
}

#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    #[error("Google Wallet is not configured")]
    NotConfigured,
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Google(#[from] GoogleError),
}

/// Reads the objects of at most `batch` cards after `after` and records what the store missed.
pub async fn round(state: &AppState, after: Option<&SerialNumber>, batch: usize) -> Result<Round, ReconcileError> {
    let google = state.google.as_ref().ok_or(ReconcileError::NotConfigured)?;
    let cards = state.store.cards_after(after, batch).await?;
    let mut done =
        Round { next: cards.last().map(|c| c.serial.clone()).filter(|_| cards.len() == batch), ..Round::default() };
    for card in &cards {
        let Some(object) = google.client().get_object(&google.object_id(card)).await? else { continue };
        done.checked += 1;
        let in_wallet = object.get("hasUsers").and_then(serde_json::Value::as_bool).unwrap_or(false);
        let known = state.store.google_wallet_state(&card.serial).await?;
        let change = match (in_wallet, known) {
            (true, None) => WalletChange::Installed,
            (true, Some(known)) if !known.saved => WalletChange::Installed,
            (false, Some(known)) if known.saved => WalletChange::Removed,
            _ => continue,
        };
        // Named after the state it corrects, so nodes reconciling at once record it once.
        let since = known.map_or(0, |k| k.at.timestamp_millis());
        let event = WalletEvent {
            id: format!("google-reconciled:{}:{since}:{}", card.serial, change.as_str()),
            serial: card.serial.clone(),
            program_id: card.program_id.clone(),
            wallet: Wallet::Google,
            change,
            at: state.clock.now(),
            source: WalletSource::Reconciliation,
        };
        if crate::wallet_changes::record(state, card, &event).await? {
            done.recorded += 1;
            tracing::info!(serial = %card.serial, change = change.as_str(), "a missed Google Wallet callback was reconciled");
        }
    }
    Ok(done)
}

/// Runs rounds every `interval` while the process lives; a failed round is logged and the next
/// one starts where it did.
pub async fn run_forever(state: web::Data<AppState>, interval: Duration, batch: usize) {
    let mut after: Option<SerialNumber> = None;
    loop {
        tokio::time::sleep(interval).await;
        match round(&state, after.as_ref(), batch).await {
            Ok(done) => after = done.next,
            Err(e) => {
                tracing::warn!(error = %crate::telemetry::error_chain(&e), "Google Wallet reconciliation failed; trying again later")
            }
        }
    }
}
