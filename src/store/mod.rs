//! The storage interface: the operations the domain needs, nothing more (STYLE §5).
//!
//! Two backends implement it — [`embedded::EmbeddedStore`] (SQLite in one local file) and
//! [`mongo::MongoStore`] — and one conformance suite (`tests/api/store_conformance.rs`) runs
//! against both. How ledger writes stay atomic on each is explained in `docs/architecture.md`.
//!
//! The interface is split by area ([`CardStore`], [`LedgerStore`], [`DeviceStore`],
//! [`PushStore`], [`AccessStore`], [`PhoneStore`], [`SegmentStore`] and more); [`Store`] is all of them, and `DynStore` is what the
//! application holds.

pub mod customers;
pub mod embedded;
pub mod faults;
mod imports;
mod messages;
pub mod migrate;
pub mod mongo;
mod outbox;
mod programs;
mod records;
pub mod segments;
mod staff_records;
mod stats;
pub mod wallet_events;
mod webhooks;

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::domain::{
    ApiKey, Card, CardNumber, DeviceLibraryId, LedgerEntry, PassTypeId, Phone, Program, PushToken, ReferralCode,
    RegisterOutcome, Registration, SerialNumber, WebhookSource,
};
use crate::domain::{AuditEntry, AuditFilter, StaffAccount, StaffSessionRecord};

pub use customers::{CustomerCursor, CustomerListQuery, CustomerSort, CustomerStore};
pub use faults::Faults;
pub use imports::{FILE_CHUNK_BYTES, ImportCounts, ImportJob, ImportState, ImportStore, MAX_KEPT_ERRORS};
pub use messages::{MessageSend, MessageStore, Reach, SendCounts, SendState, WalletCounts};
pub use outbox::{MailState, MailStore, OutboxMail};
pub use programs::{ProgramStore, PushProgress};
pub use segments::SegmentStore;
pub use stats::{DayStats, LedgerTotals, StatsSnapshot, StatsStore, WalletTotals};
pub use wallet_events::{
    DayCount, GoogleWalletState, Wallet, WalletChange, WalletEvent, WalletEventStore, WalletSource,
};
pub use webhooks::{DeliveryAttempt, DeliveryState, WebhookDelivery, WebhookEndpoint, WebhookEvent, WebhookStore};

/// A shared handle to whichever backend is configured.
pub type DynStore = Arc<dyn Store>;

/// Every storage capability; implemented by each backend through its parts.
pub trait Store:
    CardStore
    + LedgerStore
    + DeviceStore
    + PushStore
    + AccessStore
    + PhoneStore
    + StaffStore
    + CustomerStore
    + MailStore
    + WebhookStore
    + ImportStore
    + ProgramStore
    + MessageStore
    + SegmentStore
    + StatsStore
    + WalletEventStore
{
}

impl<
    T: CardStore
        + LedgerStore
        + DeviceStore
        + PushStore
        + AccessStore
        + PhoneStore
        + StaffStore
        + CustomerStore
        + MailStore
        + WebhookStore
        + ImportStore
        + ProgramStore
        + MessageStore
        + SegmentStore
        + StatsStore
        + WalletEventStore,
> Store for T
{
}

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
    /// Any other unique record (an entry id, an API key id).
    Other,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("a record with this {0:?} already exists")]
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

/// One atomic ledger write on one card: its new state and the entries that produced it.
#[derive(Debug, Clone)]
pub struct LedgerWrite {
    /// The card after the write (`version` already moved on by one per entry).
    pub card: Card,
    /// The version the write was computed from: the write applies only if it is still current.
    pub expected_version: i64,
    /// The new entries, in order; their `seq` values follow `expected_version`.
    pub entries: Vec<LedgerEntry>,
    /// The idempotency record to complete with this answer, in the same atomic step where the
    /// backend can (SQLite) or right after (MongoDB, where a retry derives the same answer).
    pub completes: Option<(IdempotencyKey, StoredResponse)>,
}

/// Who used an idempotency key: the API key or webhook source id (`scope`) and the key itself.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct IdempotencyKey {
    pub scope: String,
    pub key: String,
}

/// The answer given to a request, kept to answer its retries identically.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredResponse {
    pub status: u16,
    pub body: String,
}

/// What is known about a request with an idempotency key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyRecord {
    pub key: IdempotencyKey,
    /// SHA-256 of the request (method, path, body): a different request with the same key is refused.
    pub request_hash: String,
    /// The id reserved for the ledger entry this request writes, so a retry recognises it.
    pub entry_id: String,
    /// Until when the request that holds the record is presumed alive (while unanswered).
    pub lease_until: DateTime<Utc>,
    /// Set once answered.
    pub response: Option<StoredResponse>,
    pub created_at: DateTime<Utc>,
    /// Kept at least until then (24 h and more).
    pub expires_at: DateTime<Utc>,
}

/// The result of trying to start a request with an idempotency key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IdempotencyStart {
    /// The record was created: the caller owns the request.
    Started,
    /// A record already exists (answered, or in progress, or left by a crashed request).
    Existing(IdempotencyRecord),
}

#[async_trait]
pub trait CardStore: Send + Sync + 'static {
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

    /// Writes the changeable state of `card` (holder, status, balance, tier, version, times, last
    /// entry) if the stored version is still `expected_version`; `false` when it moved on (a
    /// concurrent change won: re-read and retry). Identity fields and `pushed_version` are never
    /// written here. Balance changes go through [`LedgerStore::commit_ledger`] instead.
    async fn update_card(&self, card: &Card, expected_version: i64) -> StoreResult<bool>;

    /// A message's version bump for each `(card, expected_version)`: writes the card's version,
    /// its modification and push times and its `news` (what [`Card::bumped`] and a message
    /// change), nothing else, if the stored version is still `expected_version`. In one
    /// transaction where the store has them; for each card, whether it was written.
    async fn put_news(&self, cards: &[(Card, i64)]) -> StoreResult<Vec<bool>>;

    /// All cards in serial order, a page at a time: those after `after`, at most `limit`.
    async fn cards_after(&self, after: Option<&SerialNumber>, limit: usize) -> StoreResult<Vec<Card>>;
}

/// A card read for a ledger write, with the write's own entry when it is already stored.
#[derive(Debug, Clone)]
pub struct CardForWrite {
    pub card: Card,
    /// The entry with the id the write reserved, if a write with that id was committed at or
    /// before the card's version as read (a retry, or a request whose lease was taken over).
    pub existing: Option<LedgerEntry>,
}

#[async_trait]
pub trait LedgerStore: Send + Sync + 'static {
    /// Applies a ledger write atomically if the card is still at `expected_version` and holds
    /// none of the write's entry ids and no reversal of a transaction the write reverses.
    /// `false` (and nothing changed) otherwise: re-read the card and decide again.
    ///
    /// Once the write's commit point has passed the result is `Ok(true)`, whatever fails after
    /// it (settling, recording the answer): those failures are logged and repaired later, and
    /// the change is visible to every reader from the commit point on.
    async fn commit_ledger(&self, write: &LedgerWrite) -> StoreResult<bool>;

    /// Reads a card for a ledger write together with the entry `entry_id` if it is stored: an
    /// entry committed at or before the version read is always found, settled or not.
    async fn card_for_write(&self, by: CardLookup<'_>, entry_id: &str) -> StoreResult<Option<CardForWrite>>;

    /// Marks that a task reached a named point of the write path (see [`faults::points`]);
    /// tests hold tasks there or make the next call fail. Nothing happens in production.
    async fn reached(&self, point: &'static str);

    /// A checkpoint of a long task (see [`faults::points`]): fails only when a test armed it.
    fn checkpoint(&self, point: &'static str) -> StoreResult<()>;

    /// A card's ledger, newest first: entries with `seq < before_seq` (all when `None`), at most
    /// `limit` of them.
    async fn card_entries(
        &self,
        serial: &SerialNumber,
        before_seq: Option<i64>,
        limit: usize,
    ) -> StoreResult<Vec<LedgerEntry>>;

    /// One entry by id, wherever it is.
    async fn entry(&self, id: &str) -> StoreResult<Option<LedgerEntry>>;

    /// The entry that reversed `id`, if any.
    async fn reversal_of(&self, id: &str) -> StoreResult<Option<LedgerEntry>>;

    /// Finishes any write to this card that a crash interrupted after its commit point (MongoDB
    /// settles pending entries; SQLite has nothing to do).
    async fn repair_card(&self, serial: &SerialNumber) -> StoreResult<()>;

    /// Creates the record for a new request, or returns the existing one.
    async fn idempotency_start(&self, record: &IdempotencyRecord) -> StoreResult<IdempotencyStart>;

    /// Reads a record (the wait of a duplicate request polls this, never the writer).
    async fn idempotency_get(&self, key: &IdempotencyKey) -> StoreResult<Option<IdempotencyRecord>>;

    /// Takes over an unanswered record whose lease (as seen: `seen_lease_until`) has expired;
    /// `false` when someone else changed it first.
    async fn idempotency_take_over(
        &self,
        key: &IdempotencyKey,
        seen_lease_until: DateTime<Utc>,
        lease_until: DateTime<Utc>,
    ) -> StoreResult<bool>;

    /// Records the answer to a request.
    async fn idempotency_complete(&self, key: &IdempotencyKey, response: &StoredResponse) -> StoreResult<()>;

    /// Gives up the lease on an unanswered record so a retry can take over at once.
    async fn idempotency_release(&self, key: &IdempotencyKey) -> StoreResult<()>;

    /// Deletes records that expired before `now`; returns how many.
    async fn idempotency_purge(&self, now: DateTime<Utc>) -> StoreResult<u64>;
}

#[async_trait]
pub trait DeviceStore: Send + Sync + 'static {
    /// Registers a device for a pass: an idempotent upsert that updates the push token of this
    /// registration only (never of the device's registrations for other passes). A new device
    /// is refused with `Full` when the pass has `max_per_pass` already, atomically: concurrent
    /// registrations cannot exceed the cap.
    async fn register_device(&self, registration: &Registration, max_per_pass: u32) -> StoreResult<RegisterOutcome>;

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

    /// Removes every registration with this push token (the token is dead); returns the
    /// registrations removed, each by exactly one call however many workers remove it at once.
    async fn delete_registrations_with_token(&self, token: &PushToken) -> StoreResult<Vec<Registration>>;
}

/// A push that failed for good: kept for an operator to inspect and replay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetter {
    pub id: String,
    pub serial: SerialNumber,
    /// The card version that could not be delivered.
    pub version: i64,
    /// `apns:<device library id>` or `google`.
    pub target: String,
    /// The last answer, e.g. `TooManyRequests (429)`.
    pub reason: String,
    pub attempts: u32,
    pub first_failure_at: DateTime<Utc>,
    pub created_at: DateTime<Utc>,
}

/// Which targets of a card [`PushStore::mark_push_owed`] makes owed again.
#[derive(Debug, Clone, Copy)]
pub enum Owed<'a> {
    /// Every registered device.
    AllDevices,
    /// One device.
    Device(&'a DeviceLibraryId),
    /// The card only (its Google object, say), no device.
    CardOnly,
}

/// What last reached Google Wallet for a card.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GoogleSync {
    pub version: i64,
    pub balance: Option<i64>,
    /// When updates notified the holder, most recent last (the last 24 hours or so).
    pub notified_at: Vec<DateTime<Utc>>,
}

impl GoogleSync {
    /// The notification times to keep after an update: `notified_at`, plus `notified` when the
    /// update notified the holder.
    pub fn notifications_after(&self, notified: Option<DateTime<Utc>>) -> Vec<DateTime<Utc>> {
        match notified {
            Some(at) => self.with_notification(at),
            None => self.notified_at.clone(),
        }
    }

    /// `notified_at` with `at` added, keeping only what Google's 24-hour budget needs.
    pub fn with_notification(&self, at: DateTime<Utc>) -> Vec<DateTime<Utc>> {
        let mut kept: Vec<DateTime<Utc>> =
            self.notified_at.iter().copied().filter(|t| *t > at - chrono::Duration::hours(25)).collect();
        kept.push(at);
        kept
    }
}

#[async_trait]
pub trait PushStore: Send + Sync + 'static {
    /// Cards owed a push since `since` or earlier, oldest first (the sweeper's query).
    async fn cards_pending_push(&self, since: DateTime<Utc>, limit: usize) -> StoreResult<Vec<SerialNumber>>;

    /// How many times the card was made owed a push again ([`PushStore::mark_push_owed`]); a
    /// push job reads it before the card (0 for a card never made owed again, or none).
    async fn push_generation(&self, serial: &SerialNumber) -> StoreResult<i64>;

    /// Records that `version` of a card reached every target: `pushed_version` moves up to it,
    /// and the card stops being owed a push if it is still at that version. Only while the
    /// card's push generation is still `generation`: a card made owed again since (a dead letter
    /// replayed while its job was finishing) is left as it is, and `false` says so.
    async fn mark_card_pushed(&self, serial: &SerialNumber, version: i64, generation: i64) -> StoreResult<bool>;

    /// Records that `version` reached these devices (their `pushed_version` moves up to it).
    async fn mark_devices_pushed(
        &self,
        serial: &SerialNumber,
        version: i64,
        devices: &[DeviceLibraryId],
    ) -> StoreResult<()>;

    /// Makes a card owed a push again for one device (or all when `None`), at once: for an
    /// operator's "push now" and dead-letter replays. It moves the card's push generation on
    /// (the card first, then its devices), so that a job already running cannot mark it pushed.
    async fn mark_push_owed(&self, serial: &SerialNumber, owed: Owed<'_>, now: DateTime<Utc>) -> StoreResult<bool>;

    /// What last reached Google Wallet for a card (nothing yet: version 0).
    async fn google_sync(&self, serial: &SerialNumber) -> StoreResult<GoogleSync>;

    /// Records that `version` of a card, showing `balance`, reached Google; `notified` is when
    /// that update notified the holder (Google allows few such notifications).
    async fn record_google_sync(
        &self,
        serial: &SerialNumber,
        version: i64,
        balance: i64,
        notified: Option<DateTime<Utc>>,
    ) -> StoreResult<()>;

    /// Forgets what reached Google, so the next push updates the object again (replays).
    async fn reset_google_sync(&self, serial: &SerialNumber) -> StoreResult<()>;

    async fn insert_dead_letter(&self, letter: &DeadLetter) -> StoreResult<()>;

    /// The newest dead letters first.
    async fn dead_letters(&self, limit: usize) -> StoreResult<Vec<DeadLetter>>;

    /// Removes and returns a dead letter (to replay it).
    async fn take_dead_letter(&self, id: &str) -> StoreResult<Option<DeadLetter>>;
}

#[async_trait]
pub trait AccessStore: Send + Sync + 'static {
    async fn insert_api_key(&self, key: &ApiKey) -> StoreResult<()>;

    async fn api_key(&self, id: &str) -> StoreResult<Option<ApiKey>>;

    /// Every key, newest first.
    async fn api_keys(&self) -> StoreResult<Vec<ApiKey>>;

    /// Marks a key revoked; `false` when there is no such active key.
    async fn revoke_api_key(&self, id: &str, at: DateTime<Utc>) -> StoreResult<bool>;

    async fn insert_webhook_source(&self, source: &WebhookSource) -> StoreResult<()>;

    async fn webhook_source(&self, id: &str) -> StoreResult<Option<WebhookSource>>;

    async fn webhook_sources(&self) -> StoreResult<Vec<WebhookSource>>;

    async fn revoke_webhook_source(&self, id: &str, at: DateTime<Utc>) -> StoreResult<bool>;

    /// Records that a key was used at `at` (callers do it at most once a minute per key).
    async fn touch_api_key(&self, id: &str, at: DateTime<Utc>) -> StoreResult<()>;
}

/// The staff console: accounts, sessions (by the hash of their id), login throttling kept where
/// every node sees it, the first-owner setup token, and the append-only audit log.
#[async_trait]
pub trait StaffStore: Send + Sync + 'static {
    /// Fails with [`StoreError::Duplicate`] when the e-mail is taken.
    async fn insert_staff(&self, staff: &StaffAccount) -> StoreResult<()>;

    async fn staff_by_id(&self, id: &str) -> StoreResult<Option<StaffAccount>>;

    /// `email` in lower case.
    async fn staff_by_email(&self, email: &str) -> StoreResult<Option<StaffAccount>>;

    /// Every account, by e-mail.
    async fn staff_list(&self) -> StoreResult<Vec<StaffAccount>>;

    /// Writes role, password hash, disabled flag, second factor and last login; `false` when
    /// there is no such account.
    async fn update_staff(&self, staff: &StaffAccount) -> StoreResult<bool>;

    /// Records a login without touching anything else of the account (so it cannot undo a
    /// change an owner made meanwhile).
    async fn record_staff_login(&self, id: &str, at: DateTime<Utc>) -> StoreResult<()>;

    /// Uses up one recovery code (by its hash): `true` for exactly one caller, and only while
    /// the code is unused.
    async fn use_recovery_code(&self, id: &str, code_hash: &str) -> StoreResult<bool>;

    async fn insert_staff_session(&self, session: &StaffSessionRecord) -> StoreResult<()>;

    async fn staff_session(&self, id_hash: &str) -> StoreResult<Option<StaffSessionRecord>>;

    async fn touch_staff_session(&self, id_hash: &str, at: DateTime<Utc>) -> StoreResult<()>;

    async fn delete_staff_session(&self, id_hash: &str) -> StoreResult<()>;

    /// Ends every session of an account; returns how many there were.
    async fn delete_staff_sessions_of(&self, staff_id: &str) -> StoreResult<u64>;

    /// Removes an account's sessions that can no longer be used: last seen before `seen_before`
    /// or created before `created_before`. Returns how many.
    async fn delete_stale_staff_sessions(
        &self,
        staff_id: &str,
        seen_before: DateTime<Utc>,
        created_before: DateTime<Utc>,
    ) -> StoreResult<u64>;

    /// Notes a failed login under `key` (an account or a client address) and forgets that
    /// key's failures from before `forget_before`.
    async fn record_login_failure(&self, key: &str, at: DateTime<Utc>, forget_before: DateTime<Utc>)
    -> StoreResult<()>;

    /// The times of `key`'s failed logins since `since`, oldest first.
    async fn login_failures(&self, key: &str, since: DateTime<Utc>) -> StoreResult<Vec<DateTime<Utc>>>;

    async fn clear_login_failures(&self, key: &str) -> StoreResult<()>;

    /// Stores the hash of a first-owner setup token.
    async fn insert_setup_token(&self, hash: &str, expires_at: DateTime<Utc>) -> StoreResult<()>;

    /// Whether the token is stored and unexpired at `now`.
    async fn setup_token_valid(&self, hash: &str, now: DateTime<Utc>) -> StoreResult<bool>;

    /// Uses up a valid token: `true` for exactly one caller.
    async fn take_setup_token(&self, hash: &str, now: DateTime<Utc>) -> StoreResult<bool>;

    /// Appends to the audit log (never updated or deleted).
    async fn insert_audit(&self, entry: &AuditEntry) -> StoreResult<()>;

    /// Audit entries matching `filter`, newest first, at most `limit`.
    async fn audit_entries(&self, filter: &AuditFilter, limit: usize) -> StoreResult<Vec<AuditEntry>>;

    /// How many cards there are (for the console's home page).
    async fn count_cards(&self) -> StoreResult<u64>;
}

/// A card's phone exactly as stored, before any checking: what the phone migration reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredPhone {
    pub serial: SerialNumber,
    pub program_id: String,
    pub phone: String,
}

/// Re-normalising stored phone numbers, and the record of one-time data steps.
#[async_trait]
pub trait PhoneStore: Send + Sync + 'static {
    /// The phones of the cards after `after` in serial order, at most `limit`.
    async fn stored_phones(&self, after: Option<&SerialNumber>, limit: usize) -> StoreResult<Vec<StoredPhone>>;

    /// Rewrites one card's phone: `Duplicate(Phone)` when another card of its program has it,
    /// `false` when there is no such card.
    async fn set_card_phone(&self, serial: &SerialNumber, phone: &Phone) -> StoreResult<bool>;

    /// When the one-time data step `name` ran, if it has.
    async fn data_step_done(&self, name: &str) -> StoreResult<Option<DateTime<Utc>>>;

    /// Records that the one-time data step `name` ran (again: the first record is kept).
    async fn record_data_step(&self, name: &str, at: DateTime<Utc>) -> StoreResult<()>;
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
