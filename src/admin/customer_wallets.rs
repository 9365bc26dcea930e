//! The wallets panel of a customer's page: the Apple devices the card is registered on (since
//! when), whether the pass is saved in Google Wallet as Google last said, and the latest
//! installs and removals in both wallets.

use serde::Serialize;

use super::AdminError;
use crate::domain::Card;
use crate::state::AppState;

/// Changes shown in the history.
const HISTORY: usize = 10;

#[derive(Serialize)]
pub(super) struct Wallets {
    apple_devices: Vec<AppleDevice>,
    /// `None` when Google never said anything about the pass.
    google: Option<GoogleSaved>,
    history: Vec<Change>,
}

#[derive(Serialize)]
struct AppleDevice {
    /// The first characters of the device library id: enough to tell devices apart.
    device: String,
    since: String,
}

#[derive(Serialize)]
struct GoogleSaved {
    saved: bool,
    when: String,
}

#[derive(Serialize)]
struct Change {
    when: String,
    wallet: &'static str,
    change: &'static str,
    source: &'static str,
}

fn when(t: chrono::DateTime<chrono::Utc>) -> String {
    t.format("%Y-%m-%d %H:%M").to_string()
}

pub(super) async fn wallets(state: &AppState, card: &Card) -> Result<Wallets, AdminError> {
    let mut registrations = state.store.card_registrations(&card.serial).await?;
    registrations.sort_by_key(|r| r.created_at);
    let google = state.store.google_wallet_state(&card.serial).await?;
    let history = state.store.card_wallet_events(&card.serial, HISTORY).await?;
    Ok(Wallets {
        apple_devices: registrations
            .iter()
            .map(|r| AppleDevice {
                device: r.device_library_id.as_str().chars().take(8).collect(),
                since: when(r.created_at),
            })
            .collect(),
        google: google.map(|g| GoogleSaved { saved: g.saved, when: when(g.at) }),
        history: history
            .iter()
            .map(|e| Change {
                when: when(e.at),
                wallet: e.wallet.as_str(),
                change: e.change.as_str(),
                source: e.source.as_str(),
            })
            .collect(),
    })
}
