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

use crate::domain::{Card, CardNumber, LedgerEntry, Phone, Program, ReferralCode, SerialNumber};

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
    async fn card_entries(
        &self,
        serial: &SerialNumber,
        before_seq: Option<i64>,
        limit: usize,
    ) -> StoreResult<Vec<LedgerEntry>>;
}
