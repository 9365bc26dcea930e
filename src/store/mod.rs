//! The storage interface: the operations the domain needs, nothing more (STYLE §5).
//!
//! Two backends implement it — [`embedded::EmbeddedStore`] (SQLite in one local file) and
//! [`mongo::MongoStore`] — and one conformance suite (`tests/api/store_conformance.rs`) runs
//! against both. How ledger writes stay atomic on each is explained in `docs/architecture.md`.

pub mod embedded;
pub mod faults;
pub mod mongo;
mod records;

use std::sync::Arc;

use async_trait::async_trait;

use chrono::{DateTime, Utc};

use crate::domain::{
    Card, CardNumber, DeviceLibraryId, LedgerEntry, PassTypeId, Phone, Program, PushToken, ReferralCode,
    RegisterOutcome, Registration, SerialNumber,
};

pub use faults::Faults;

/// A shared handle to whichever backend is configured.
pub type DynStore = Arc<dyn Store>;

/// The unique keys of a card: inserting a second card with the same value fails with
/// [`StoreError::Duplicate`] naming the key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UniqueKey {
    /// One card per phone number and program.
    Phone,
    Serial,
    CardNumber,
    CardKey,
    Barcode,
    ReferralCode,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("a card with this {0:?} already exists")]
    Duplicate(UniqueKey),
    #[error("the database cannot be reached or refused the operation")]
    Unavailable(#[source] anyhow::Error),
    #[error("stored data cannot be read: {0}")]
    Corrupt(String),
    #[error("failure injected at store call {0}")]
    Injected(u64),
}

impl StoreError {
    pub fn unavailable(e: impl Into<anyhow::Error>) -> Self {
        Self::Unavailable(e.into())
    }
}

pub type StoreResult<T> = Result<T, StoreError>;

/// Ways to find one card.
#[derive(Debug, Clone, Copy)]
pub enum CardLookup<'a> {
    Serial(&'a SerialNumber),
    /// The secret key of the card page.
    Key(&'a str),
    Number(&'a CardNumber),
    Barcode(&'a str),
    Phone {
        program_id: &'a str,
        phone: &'a Phone,
    },
    ReferralCode {
        program_id: &'a str,
        code: &'a ReferralCode,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Embedded,
    MongoDb,
}

impl Backend {
    pub fn name(self) -> &'static str {
        match self {
            Self::Embedded => "embedded",
            Self::MongoDb => "mongodb",
        }
    }
}

#[async_trait]
pub trait Store: Send + Sync + 'static {
    fn backend(&self) -> Backend;

    /// Succeeds when the database answers.
    async fn ping(&self) -> StoreResult<()>;

    /// Inserts `program` unless a program with its id exists; returns the stored one.
    async fn ensure_program(&self, program: &Program) -> StoreResult<Program>;

    async fn program(&self, id: &str) -> StoreResult<Option<Program>>;

    /// Inserts a new card together with its first ledger entry, atomically: either both are
    /// stored or neither is. Fails with [`StoreError::Duplicate`] on any unique key.
    async fn insert_card(&self, card: &Card, first_entry: &LedgerEntry) -> StoreResult<()>;

    async fn find_card(&self, by: CardLookup<'_>) -> StoreResult<Option<Card>>;

    /// A card's ledger, newest first: entries with `seq < before_seq` (all when `None`), at most
    /// `limit` of them.
    /// Writes the changeable state of `card` (holder, status, balance, tier, version, times, last
    /// entry) if the stored version is still `expected_version`; `false` when it moved on (a
    /// concurrent change won: re-read and retry). Identity fields and `pushed_version` are never
    /// written here.
    async fn update_card(&self, card: &Card, expected_version: i64) -> StoreResult<bool>;

    /// Registers a device for a pass: an idempotent upsert. The device's push token is updated on
    /// all of its registrations.
    async fn register_device(&self, registration: &Registration) -> StoreResult<RegisterOutcome>;

    /// Removes one registration; `false` when there was none.
    async fn unregister_device(
        &self,
        device: &DeviceLibraryId,
        pass_type: &PassTypeId,
        serial: &SerialNumber,
    ) -> StoreResult<bool>;

    /// The cards a device is registered for, for one pass type.
    async fn device_cards(&self, device: &DeviceLibraryId, pass_type: &PassTypeId) -> StoreResult<Vec<Card>>;

    /// Every device registered for a card.
    async fn card_registrations(&self, serial: &SerialNumber) -> StoreResult<Vec<Registration>>;

    /// Removes every registration with this push token (the token is dead); returns how many.
    async fn delete_registrations_with_token(&self, token: &PushToken) -> StoreResult<u64>;

    async fn card_entries(
        &self,
        serial: &SerialNumber,
        before_seq: Option<i64>,
        limit: usize,
    ) -> StoreResult<Vec<LedgerEntry>>;
}

/// Moves a card to its next version without another change (a design or message change, an
/// operator's "push now"): retried until it wins against concurrent writers.
pub async fn bump_version(store: &dyn Store, serial: &SerialNumber, now: DateTime<Utc>) -> StoreResult<Option<Card>> {
    loop {
        let Some(card) = store.find_card(CardLookup::Serial(serial)).await? else {
            return Ok(None);
        };
        let next = card.bumped(now);
        if store.update_card(&next, card.version).await? {
            return Ok(Some(next));
        }
    }
}
