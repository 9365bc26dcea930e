//! The MongoDB store, through the official driver.
//!
//! It never relies on multi-document transactions (a standalone `mongod` has none). A card
//! document is the unit of atomicity: a ledger write changes the card and appends the new entry
//! to the card's `pending` array in one single-document update; the entry is then copied into
//! the `ledger` collection (idempotent: the entry id is the `_id`) and removed from `pending`.
//! A crash between those steps leaves the entry in `pending`, where readers see it and the next
//! write to the card (or `loy check ledger`) settles it. See `docs/architecture.md`.

mod access;
mod cards;
mod customers;
mod devices;
mod imports;
mod ledger;
mod messages;
mod outbox;
mod phones;
mod programs;
mod push;
mod segments;
mod staff;
mod stats;
mod wallet_events;
mod webhooks;

pub(super) use ledger::{RECENT_ENTRIES, record_id};
pub(super) use webhooks::{delivery_doc, endpoint_doc, event_doc};

use std::sync::Arc;
use std::time::Duration;

use bson::{Document, doc};
use mongodb::options::{ClientOptions, IndexOptions};
use mongodb::{Client, Collection, Database, IndexModel};

use super::records::{ApiKeyRecord, CardRecord, EntryRecord, RegistrationRecord, WebhookSourceRecord};
use super::staff_records::{AuditRecord, SessionRecord, StaffRecord};
use super::{CardLookup, Faults, StoreError, StoreResult, UniqueKey};
use crate::domain::Card;

pub struct MongoStore {
    db: Database,
    programs: Collection<Document>,
    cards: Collection<Document>,
    ledger: Collection<EntryRecord>,
    registrations: Collection<RegistrationRecord>,
    idempotency: Collection<Document>,
    api_keys: Collection<ApiKeyRecord>,
    webhook_sources: Collection<WebhookSourceRecord>,
    dead_letters: Collection<Document>,
    google_sync: Collection<Document>,
    staff: Collection<StaffRecord>,
    staff_sessions: Collection<SessionRecord>,
    login_failures: Collection<Document>,
    setup_tokens: Collection<Document>,
    audit: Collection<AuditRecord>,
    mail_outbox: Collection<Document>,
    webhook_endpoints: Collection<Document>,
    webhook_deliveries: Collection<Document>,
    import_jobs: Collection<Document>,
    import_files: Collection<Document>,
    messages: Collection<Document>,
    message_sends: Collection<Document>,
    design_versions: Collection<Document>,
    images: Collection<Document>,
    faults: Arc<Faults>,
}

/// Unique indexes of the `cards` collection and the key each one guards.
const CARD_UNIQUE_INDEXES: &[(&str, &[&str], UniqueKey)] = &[
    ("program_phone", &["program_id", "phone"], UniqueKey::Phone),
    ("card_number", &["card_number"], UniqueKey::CardNumber),
    ("card_key", &["card_key"], UniqueKey::CardKey),
    ("barcode", &["barcode"], UniqueKey::Barcode),
    ("program_referral_code", &["program_id", "referral_code"], UniqueKey::ReferralCode),
];

impl MongoStore {
    /// Connects, checks the server answers, and creates the indexes.
    pub async fn connect(uri: &str, database: &str, faults: Arc<Faults>) -> anyhow::Result<Self> {
        use anyhow::Context;
        let mut options = ClientOptions::parse(uri).await.context("while reading LOY_MONGODB_URI")?;
        options.app_name.get_or_insert_with(|| "loy".to_owned());
        options.server_selection_timeout.get_or_insert(Duration::from_secs(5));
        options.connect_timeout.get_or_insert(Duration::from_secs(5));
        let client = Client::with_options(options).context("while configuring the MongoDB client")?;
        let db = client.database(database);
        db.run_command(doc! { "ping": 1 }).await.context("while contacting MongoDB")?;
        let store = Self {
            programs: db.collection("programs"),
            cards: db.collection("cards"),
            ledger: db.collection("ledger"),
            registrations: db.collection("registrations"),
            idempotency: db.collection("idempotency"),
            api_keys: db.collection("api_keys"),
            webhook_sources: db.collection("webhook_sources"),
            dead_letters: db.collection("dead_letters"),
            google_sync: db.collection("google_sync"),
            staff: db.collection("staff"),
            staff_sessions: db.collection("staff_sessions"),
            login_failures: db.collection("login_failures"),
            setup_tokens: db.collection("setup_tokens"),
            audit: db.collection("audit"),
            mail_outbox: db.collection("mail_outbox"),
            webhook_endpoints: db.collection("webhook_endpoints"),
            webhook_deliveries: db.collection("webhook_deliveries"),
            import_jobs: db.collection("import_jobs"),
            import_files: db.collection("import_files"),
            messages: db.collection("messages"),
            message_sends: db.collection("message_sends"),
            design_versions: db.collection("design_versions"),
            images: db.collection("images"),
            db,
            faults,
        };
        store.create_indexes().await.context("while creating MongoDB indexes")?;
        store.migrate().await.context("while upgrading the MongoDB data")?;
        Ok(store)
    }

    /// One-time data migrations, recorded in the `meta` collection.
    async fn migrate(&self) -> anyhow::Result<()> {
        use futures_util::TryStreamExt;
        let meta: Collection<Document> = self.db.collection("meta");
        let version =
            meta.find_one(doc! { "_id": "schema" }).await?.and_then(|d| d.get_i64("version").ok()).unwrap_or(0);
        if version < 1 {
            // Every card's ledger starts with its welcome entry: cards from before the ledger
            // get one holding their balance.
            let mut cursor =
                self.cards.find(doc! { "pending.0": { "$exists": false } }).projection(card_fields()).await?;
            while let Some(doc) = cursor.try_next().await? {
                let card = card_from_doc(doc)?;
                if self.ledger.find_one(doc! { "serial": card.serial.as_str() }).await?.is_some() {
                    continue;
                }
                let entry = EntryRecord {
                    id: format!("tx_opening_{}", card.serial),
                    serial: card.serial.to_string(),
                    program_id: card.program_id.clone(),
                    seq: 0,
                    kind: "welcome".into(),
                    points: card.balance,
                    rewards: 0,
                    rewards_after: 0,
                    purchase_amount: None,
                    balance_after: card.balance,
                    lifetime_after: card.lifetime_earned,
                    tier_after: card.tier.clone(),
                    order_id: None,
                    description: Some("Opening balance".into()),
                    source: "system".into(),
                    actor: None,
                    idempotency_key: None,
                    reverses: None,
                    created_at: card.created_at.timestamp_millis(),
                };
                match self.ledger.insert_one(&entry).await {
                    Ok(_) => {}
                    Err(e) if duplicate_index(&e).is_some() => {}
                    Err(e) => return Err(e.into()),
                }
            }
            meta.update_one(doc! { "_id": "schema" }, doc! { "$set": { "version": 1_i64 } }).upsert(true).await?;
        }
        if version < 2 {
            customers::backfill(&self.cards).await?;
            meta.update_one(doc! { "_id": "schema" }, doc! { "$set": { "version": 2_i64 } }).upsert(true).await?;
        }
        Ok(())
    }

    async fn create_indexes(&self) -> mongodb::error::Result<()> {
        let unique = |name: &str| IndexOptions::builder().unique(true).name(name.to_owned()).build();
        let mut card_indexes: Vec<IndexModel> = CARD_UNIQUE_INDEXES
            .iter()
            .map(|(name, fields, _)| {
                let keys: Document = fields.iter().map(|f| ((*f).to_owned(), bson::Bson::Int32(1))).collect();
                IndexModel::builder().keys(keys).options(unique(name)).build()
            })
            .collect();
        card_indexes.push(
            IndexModel::builder()
                .keys(doc! { "push_pending_since": 1 })
                .options(
                    IndexOptions::builder()
                        .name("push_pending".to_owned())
                        .partial_filter_expression(doc! { "push_pending_since": { "$type": "long" } })
                        .build(),
                )
                .build(),
        );
        self.cards.create_indexes(card_indexes).await?;
        self.cards.create_indexes(customers::indexes()).await?;
        self.ledger
            .create_indexes([
                IndexModel::builder().keys(doc! { "serial": 1, "seq": -1 }).options(unique("serial_seq")).build(),
                IndexModel::builder()
                    .keys(doc! { "reverses": 1 })
                    .options(
                        IndexOptions::builder()
                            .unique(true)
                            .name("reverses".to_owned())
                            .partial_filter_expression(doc! { "reverses": { "$type": "string" } })
                            .build(),
                    )
                    .build(),
            ])
            .await?;
        self.registrations
            .create_indexes([
                IndexModel::builder()
                    .keys(doc! { "device_library_id": 1, "pass_type_id": 1, "serial": 1 })
                    .options(unique("device_pass"))
                    .build(),
                IndexModel::builder()
                    .keys(doc! { "serial": 1 })
                    .options(IndexOptions::builder().name("serial".to_owned()).build())
                    .build(),
                IndexModel::builder()
                    .keys(doc! { "push_token": 1 })
                    .options(IndexOptions::builder().name("push_token".to_owned()).build())
                    .build(),
            ])
            .await?;
        // Entries not yet settled into the ledger collection are found through these.
        self.cards
            .create_indexes([
                IndexModel::builder()
                    .keys(doc! { "pending._id": 1 })
                    .options(IndexOptions::builder().name("pending_id".to_owned()).sparse(true).build())
                    .build(),
                IndexModel::builder()
                    .keys(doc! { "pending.reverses": 1 })
                    .options(IndexOptions::builder().name("pending_reverses".to_owned()).sparse(true).build())
                    .build(),
            ])
            .await?;
        self.create_staff_indexes().await?;
        self.create_webhook_indexes().await?;
        self.mail_outbox
            .create_indexes([
                IndexModel::builder()
                    .keys(doc! { "state": 1, "next_attempt_at": 1 })
                    .options(IndexOptions::builder().name("due".to_owned()).build())
                    .build(),
                IndexModel::builder()
                    .keys(doc! { "state": 1, "updated_at": -1 })
                    .options(IndexOptions::builder().name("state_updated".to_owned()).build())
                    .build(),
            ])
            .await?;
        imports::create_indexes(&self.import_jobs, &self.import_files).await?;
        messages::create_indexes(&self.messages, &self.message_sends).await?;
        programs::create_indexes(&self.cards, &self.design_versions).await?;
        segments::create_indexes(&self.db).await?;
        stats::create_indexes(&self.db).await?;
        wallet_events::create_indexes(&self.db).await?;
        // Idempotency records expire by themselves (TTL); a purge job covers servers without TTL.
        self.idempotency
            .create_index(
                IndexModel::builder()
                    .keys(doc! { "expires_at": 1 })
                    .options(
                        IndexOptions::builder().name("expires".to_owned()).expire_after(Duration::from_secs(0)).build(),
                    )
                    .build(),
            )
            .await?;
        Ok(())
    }

    /// The staff console's indexes: unique e-mails, sessions by account, throttling by key and
    /// time, the audit log by time (alone, per person, per action).
    async fn create_staff_indexes(&self) -> mongodb::error::Result<()> {
        let named = |name: &str| IndexOptions::builder().name(name.to_owned()).build();
        self.staff
            .create_index(
                IndexModel::builder()
                    .keys(doc! { "email": 1 })
                    .options(IndexOptions::builder().unique(true).name("email".to_owned()).build())
                    .build(),
            )
            .await?;
        self.staff_sessions
            .create_index(IndexModel::builder().keys(doc! { "staff_id": 1 }).options(named("staff_id")).build())
            .await?;
        self.login_failures
            .create_index(IndexModel::builder().keys(doc! { "key": 1, "at": 1 }).options(named("key_at")).build())
            .await?;
        self.audit
            .create_indexes([
                IndexModel::builder().keys(doc! { "at": -1, "_id": -1 }).options(named("at")).build(),
                IndexModel::builder()
                    .keys(doc! { "staff_id": 1, "at": -1, "_id": -1 })
                    .options(named("staff_at"))
                    .build(),
                IndexModel::builder()
                    .keys(doc! { "action": 1, "at": -1, "_id": -1 })
                    .options(named("action_at"))
                    .build(),
            ])
            .await?;
        Ok(())
    }

    /// Copies a card's pending entries into the ledger collection and removes them from the
    /// card (a write a crash interrupted after its commit point). Safe to run any number of
    /// times, concurrently, at any point.
    pub(super) async fn settle_pending(&self, serial: &str) -> StoreResult<()> {
        self.faults.step()?;
        let Some(doc) = self
            .cards
            .find_one(doc! { "_id": serial, "pending.0": { "$exists": true } })
            .projection(doc! { "pending": 1 })
            .await
            .map_err(mongo)?
        else {
            return Ok(());
        };
        self.settle(serial, &pending_entries(&doc)?).await
    }

    /// Copies committed entries of a card into the ledger collection, then removes them from
    /// the card's `pending` list. An entry already in the collection (its own `_id`) was settled
    /// before; any other unique conflict means two entries claim one place in the ledger (the
    /// same `seq`, or two reversals of one transaction), which the commit's guards make
    /// impossible: it is reported as corrupt data and the entries stay pending, visible to
    /// readers and to `loy check ledger`.
    pub(super) async fn settle(&self, serial: &str, entries: &[EntryRecord]) -> StoreResult<()> {
        if entries.is_empty() {
            return Ok(());
        }
        for entry in entries {
            self.faults.step()?;
            match self.ledger.insert_one(entry).await {
                Ok(_) => {}
                Err(e) => {
                    let Some(index) = duplicate_index(&e) else { return Err(mongo(e)) };
                    // A server may name another unique index first when the entry is already
                    // there (it repeats that index's values too): only its own `_id` proves it.
                    let settled_before = index == "_id_"
                        || self.ledger.find_one(doc! { "_id": &entry.id }).await.map_err(mongo)?.is_some();
                    if !settled_before {
                        tracing::error!(serial, entry = %entry.id, index, "a committed entry conflicts with the ledger");
                        return Err(StoreError::Corrupt(format!(
                            "entry {} of card {serial} conflicts with the ledger's {index} index",
                            entry.id
                        )));
                    }
                }
            }
        }
        self.faults.reached(crate::store::faults::points::SETTLE_BEFORE_PULL).await;
        self.faults.step()?;
        let ids: Vec<&str> = entries.iter().map(|e| e.id.as_str()).collect();
        self.cards
            .update_one(doc! { "_id": serial }, doc! { "$pull": { "pending": { "_id": { "$in": ids } } } })
            .await
            .map_err(mongo)?;
        Ok(())
    }
}

/// The fields of a card document that make a [`Card`]: without the ledger bookkeeping (the
/// `pending` entries and the `recent` and `reversed` id lists).
pub(super) fn card_fields() -> Document {
    doc! { "pending": 0, "recent": 0, "reversed": 0, "events": 0 }
}

/// The filter that finds one card.
pub(super) fn lookup_filter(by: CardLookup<'_>) -> Document {
    match by {
        CardLookup::Serial(s) => doc! { "_id": s.as_str() },
        CardLookup::Key(k) => doc! { "card_key": k },
        CardLookup::Number(n) => doc! { "card_number": n.as_str() },
        CardLookup::Barcode(b) => doc! { "barcode": b },
        CardLookup::Phone { program_id, phone } => doc! { "program_id": program_id, "phone": phone.as_str() },
        CardLookup::ReferralCode { program_id, code } => {
            doc! { "program_id": program_id, "referral_code": code.as_str() }
        }
    }
}

pub(super) fn pending_entries(card: &Document) -> StoreResult<Vec<EntryRecord>> {
    match card.get_array("pending") {
        Ok(items) => items
            .iter()
            .map(|b| {
                bson::from_bson::<EntryRecord>(b.clone())
                    .map_err(|e| StoreError::Corrupt(format!("pending entry: {e}")))
            })
            .collect(),
        Err(_) => Ok(Vec::new()),
    }
}

/// The name of the unique index a write error violated, if it was a duplicate key.
pub(super) fn duplicate_index(e: &mongodb::error::Error) -> Option<String> {
    use mongodb::error::{ErrorKind, WriteFailure};
    let message = match e.kind.as_ref() {
        ErrorKind::Write(WriteFailure::WriteError(w)) if w.code == 11000 => &w.message,
        ErrorKind::Command(c) if c.code == 11000 => &c.message,
        ErrorKind::InsertMany(m) => m.write_errors.as_ref()?.iter().find(|w| w.code == 11000).map(|w| &w.message)?,
        _ => return None,
    };
    // "E11000 duplicate key error collection: db.cards index: card_number dup key: { … }"
    let name = message.split("index: ").nth(1).and_then(|rest| rest.split_whitespace().next()).unwrap_or("");
    Some(name.to_owned())
}

pub(super) fn mongo(e: mongodb::error::Error) -> StoreError {
    match duplicate_index(&e) {
        Some(index) => {
            let key = CARD_UNIQUE_INDEXES
                .iter()
                .find(|(name, _, _)| *name == index)
                .map(|(_, _, key)| *key)
                .unwrap_or(if index == "_id_" { UniqueKey::Serial } else { UniqueKey::Other });
            StoreError::Duplicate(key)
        }
        None => StoreError::unavailable(e),
    }
}

/// The `$set` document of a card's changeable fields.
pub(super) fn card_state(r: &CardRecord) -> Document {
    doc! {
        "first_name": &r.first_name, "last_name": &r.last_name, "phone": &r.phone, "email": &r.email,
        "birthday": &r.birthday, "locale": &r.locale, "consent_at": r.consent_at, "status": &r.status,
        "balance": r.balance, "lifetime_earned": r.lifetime_earned, "rewards": r.rewards, "news": &r.news, "tier": &r.tier,
        "version": r.version,
        "push_pending_since": r.push_pending_since, "modified_at": r.modified_at,
        "last_entry_kind": &r.last_entry_kind, "last_entry_points": r.last_entry_points,
        "last_entry_at": r.last_entry_at, "updated_at": r.updated_at,
        "name_key": &r.name_key, "surname_key": &r.surname_key, "activity_at": r.activity_at,
    }
}

pub(super) fn card_from_doc(doc: Document) -> StoreResult<Card> {
    let record: CardRecord = bson::from_document(doc).map_err(|e| StoreError::Corrupt(format!("card: {e}")))?;
    Card::try_from(record)
}
