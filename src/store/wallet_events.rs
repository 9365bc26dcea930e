//! Passes added to and removed from the wallets (issue 13, installs and removals): an
//! append-only record of every change, deduplicated on an id the reporter gives it, and what
//! Google last said about each card's pass.
//!
//! Apple's PassKit web service reports a device registering or unregistering; Google posts a
//! signed callback on save and delete (and the reconciliation reads the object when a callback
//! was missed). Both may report the same change more than once — Google redelivers a callback,
//! a device registers again — so each change carries a unique id and a second record with the
//! same id is ignored. The console's day rows read the counts of a span of time through an
//! index on (program, time); nothing here scans every record.

use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, Utc};

use super::{StoreResult, WalletTotals};
use crate::domain::SerialNumber;

/// The wallet a pass was added to or removed from (or a message sent to).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Wallet {
    Apple,
    Google,
}

impl Wallet {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Apple => "apple",
            Self::Google => "google",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "apple" => Some(Self::Apple),
            "google" => Some(Self::Google),
            _ => None,
        }
    }
}

/// What happened to the pass in that wallet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum WalletChange {
    Installed,
    Removed,
}

impl WalletChange {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Installed => "installed",
            Self::Removed => "removed",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "installed" => Some(Self::Installed),
            "removed" => Some(Self::Removed),
            _ => None,
        }
    }
}

/// Who reported a change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WalletSource {
    /// Apple's PassKit web service (a device registered or unregistered).
    PassKit,
    /// Google's signed save/delete callback.
    Callback,
    /// The periodic read of the Google object, for a callback that never arrived.
    Reconciliation,
    /// APNs calling a device's push token dead: the pass is gone from a device that did not
    /// unregister (erased, restored, or offline when the pass was deleted).
    Apns,
}

impl WalletSource {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::PassKit => "passkit",
            Self::Callback => "callback",
            Self::Reconciliation => "reconciliation",
            Self::Apns => "apns",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "passkit" => Some(Self::PassKit),
            "callback" => Some(Self::Callback),
            "reconciliation" => Some(Self::Reconciliation),
            "apns" => Some(Self::Apns),
            _ => None,
        }
    }
}

/// One pass added to or removed from a wallet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WalletEvent {
    /// Unique per change as reported: Google's callback nonce (`google:{nonce}`), or for Apple
    /// the device, the serial and the registration's creation time. A second record with the
    /// same id is the same change reported again.
    pub id: String,
    pub serial: SerialNumber,
    pub program_id: String,
    pub wallet: Wallet,
    pub change: WalletChange,
    pub at: DateTime<Utc>,
    pub source: WalletSource,
}

impl WalletEvent {
    /// The UTC day of the change, stored beside its time for reading the record by hand (the
    /// charts count by time, in the program's zone).
    pub fn day(&self) -> NaiveDate {
        self.at.date_naive()
    }
}

/// What Google last said about a card's pass: saved in a wallet or not, and when.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GoogleWalletState {
    pub saved: bool,
    pub at: DateTime<Utc>,
}

/// How many passes of one wallet were installed or removed on one day.
pub type DayCount = (NaiveDate, Wallet, WalletChange, u64);

#[async_trait]
pub trait WalletEventStore: Send + Sync + 'static {
    /// Appends a change; `false` (and nothing written) when a change with its id is recorded
    /// already. A Google change also becomes the card's [`GoogleWalletState`] unless a later
    /// one is stored (on MongoDB that is a second write: should it be lost, the next change or
    /// the reconciliation sets it).
    async fn record_wallet_event(&self, event: &WalletEvent) -> StoreResult<bool>;

    /// The counts per wallet and change of one program's changes made in `[from, to)`: a range
    /// read on the (program, time) index.
    async fn wallet_totals(
        &self,
        program_id: &str,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> StoreResult<WalletTotals>;

    /// What Google last said about the card's pass; `None` when it never said anything.
    async fn google_wallet_state(&self, serial: &SerialNumber) -> StoreResult<Option<GoogleWalletState>>;

    /// The card's changes, newest first, at most `limit` (the customer page's history).
    async fn card_wallet_events(&self, serial: &SerialNumber, limit: usize) -> StoreResult<Vec<WalletEvent>>;
}
