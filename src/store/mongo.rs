//! The MongoDB store, through the official driver.
//!
//! It never relies on multi-document transactions (a standalone `mongod` has none). A card
//! document is the unit of atomicity: a ledger write changes the card and appends the new entry
//! to the card's `pending` array in one single-document update; the entry is then copied into
//! the `ledger` collection (idempotent: the entry id is the `_id`) and removed from `pending`.
//! A crash between those steps leaves the entry in `pending`, where readers see it and the next
//! write to the card (or `loy check ledger`) settles it. See `docs/architecture.md`.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bson::{Document, doc};
use futures_util::TryStreamExt;
use mongodb::options::{ClientOptions, IndexOptions};
use mongodb::{Client, Collection, Database, IndexModel};

use super::records::{CardRecord, EntryRecord, RegistrationRecord};
use super::{Backend, CardLookup, Faults, Store, StoreError, StoreResult, UniqueKey};
use crate::domain::{
    Card, DeviceLibraryId, LedgerEntry, PassTypeId, Program, PushToken, RegisterOutcome, Registration, SerialNumber,
};

pub struct MongoStore {
    db: Database,
    programs: Collection<Document>,
    cards: Collection<Document>,
    ledger: Collection<EntryRecord>,
    registrations: Collection<RegistrationRecord>,
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
            db,
            faults,
        };
        store.create_indexes().await.context("while creating MongoDB indexes")?;
        Ok(store)
    }

    pub fn faults(&self) -> &Arc<Faults> {
        &self.faults
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
        Ok(())
    }

    /// Copies a card's pending entries into the ledger collection and removes them from the
    /// card. Safe to run any number of times, concurrently, at any point.
    pub(crate) async fn settle_pending(&self, serial: &str) -> StoreResult<()> {
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
        for entry in pending_entries(&doc)? {
            self.faults.step()?;
            match self.ledger.insert_one(&entry).await {
                Ok(_) => {}
                Err(e) if duplicate_index(&e).is_some() => {}
                Err(e) => return Err(mongo(e)),
            }
            self.faults.step()?;
            self.cards
                .update_one(doc! { "_id": serial }, doc! { "$pull": { "pending": { "_id": &entry.id } } })
                .await
                .map_err(mongo)?;
        }
        Ok(())
    }
}

fn pending_entries(card: &Document) -> StoreResult<Vec<EntryRecord>> {
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
fn duplicate_index(e: &mongodb::error::Error) -> Option<String> {
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

fn mongo(e: mongodb::error::Error) -> StoreError {
    match duplicate_index(&e) {
        Some(index) => {
            let key = CARD_UNIQUE_INDEXES
                .iter()
                .find(|(name, _, _)| *name == index)
                .map(|(_, _, key)| *key)
                .unwrap_or(UniqueKey::Serial);
            StoreError::Duplicate(key)
        }
        None => StoreError::unavailable(e),
    }
}

fn card_from_doc(doc: Document) -> StoreResult<Card> {
    let record: CardRecord = bson::from_document(doc).map_err(|e| StoreError::Corrupt(format!("card: {e}")))?;
    Card::try_from(record)
}

#[async_trait]
impl Store for MongoStore {
    fn backend(&self) -> Backend {
        Backend::MongoDb
    }

    async fn ping(&self) -> StoreResult<()> {
        self.faults.step()?;
        self.db.run_command(doc! { "ping": 1 }).await.map_err(mongo)?;
        Ok(())
    }

    async fn ensure_program(&self, program: &Program) -> StoreResult<Program> {
        self.faults.step()?;
        let body = bson::to_document(program).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        self.programs
            .update_one(doc! { "_id": &program.id }, doc! { "$setOnInsert": { "program": body } })
            .upsert(true)
            .await
            .map_err(mongo)?;
        self.program(&program.id).await?.ok_or_else(|| StoreError::Corrupt(format!("program {} vanished", program.id)))
    }

    async fn program(&self, id: &str) -> StoreResult<Option<Program>> {
        self.faults.step()?;
        let Some(doc) = self.programs.find_one(doc! { "_id": id }).await.map_err(mongo)? else {
            return Ok(None);
        };
        let body = doc.get_document("program").map_err(|e| StoreError::Corrupt(format!("program {id}: {e}")))?;
        bson::from_document(body.clone()).map(Some).map_err(|e| StoreError::Corrupt(format!("program {id}: {e}")))
    }

    async fn insert_card(&self, card: &Card, first_entry: &LedgerEntry) -> StoreResult<()> {
        self.faults.step()?;
        let entry = EntryRecord::from(first_entry);
        let mut doc = bson::to_document(&CardRecord::from(card)).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let entry_doc = bson::to_bson(&entry).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        doc.insert("pending", vec![entry_doc]);
        doc.insert("recent", vec![entry.id.clone()]);
        self.cards.insert_one(doc).await.map_err(mongo)?;
        self.settle_pending(card.serial.as_str()).await
    }

    async fn find_card(&self, by: CardLookup<'_>) -> StoreResult<Option<Card>> {
        self.faults.step()?;
        let filter = match by {
            CardLookup::Serial(s) => doc! { "_id": s.as_str() },
            CardLookup::Key(k) => doc! { "card_key": k },
            CardLookup::Number(n) => doc! { "card_number": n.as_str() },
            CardLookup::Barcode(b) => doc! { "barcode": b },
            CardLookup::Phone { program_id, phone } => doc! { "program_id": program_id, "phone": phone.as_str() },
            CardLookup::ReferralCode { program_id, code } => {
                doc! { "program_id": program_id, "referral_code": code.as_str() }
            }
        };
        let doc = self.cards.find_one(filter).projection(doc! { "pending": 0, "recent": 0 }).await.map_err(mongo)?;
        doc.map(card_from_doc).transpose()
    }

    async fn update_card(&self, card: &Card, expected_version: i64) -> StoreResult<bool> {
        self.faults.step()?;
        let r = CardRecord::from(card);
        let set = doc! {
            "first_name": &r.first_name, "last_name": &r.last_name, "phone": &r.phone, "email": &r.email,
            "birthday": &r.birthday, "locale": &r.locale, "consent_at": r.consent_at, "status": &r.status,
            "balance": r.balance, "lifetime_earned": r.lifetime_earned, "tier": &r.tier, "version": r.version,
            "push_pending_since": r.push_pending_since, "modified_at": r.modified_at,
            "last_entry_kind": &r.last_entry_kind, "last_entry_points": r.last_entry_points,
            "last_entry_at": r.last_entry_at, "updated_at": r.updated_at,
        };
        let result = self
            .cards
            .update_one(doc! { "_id": &r.serial, "version": expected_version }, doc! { "$set": set })
            .await
            .map_err(mongo)?;
        Ok(result.matched_count == 1)
    }

    async fn register_device(&self, registration: &Registration) -> StoreResult<RegisterOutcome> {
        let r = RegistrationRecord::from(registration);
        self.faults.step()?;
        self.registrations
            .update_many(
                doc! { "device_library_id": &r.device_library_id },
                doc! { "$set": { "push_token": &r.push_token, "updated_at": r.updated_at } },
            )
            .await
            .map_err(mongo)?;
        let key =
            doc! { "device_library_id": &r.device_library_id, "pass_type_id": &r.pass_type_id, "serial": &r.serial };
        let upsert = doc! {
            "$set": { "push_token": &r.push_token, "updated_at": r.updated_at },
            "$setOnInsert": { "pushed_version": r.pushed_version, "created_at": r.created_at },
        };
        // Two concurrent upserts of one key can both try to insert; the loser sees a duplicate
        // key and its retry finds the document.
        for _ in 0..3 {
            self.faults.step()?;
            match self.registrations.update_one(key.clone(), upsert.clone()).upsert(true).await {
                Ok(result) if result.upserted_id.is_some() => return Ok(RegisterOutcome::Created),
                Ok(_) => return Ok(RegisterOutcome::Updated),
                Err(e) if duplicate_index(&e).is_some() => continue,
                Err(e) => return Err(mongo(e)),
            }
        }
        Ok(RegisterOutcome::Updated)
    }

    async fn unregister_device(
        &self,
        device: &DeviceLibraryId,
        pass_type: &PassTypeId,
        serial: &SerialNumber,
    ) -> StoreResult<bool> {
        self.faults.step()?;
        let result = self
            .registrations
            .delete_one(doc! {
                "device_library_id": device.as_str(), "pass_type_id": pass_type.as_str(), "serial": serial.as_str()
            })
            .await
            .map_err(mongo)?;
        Ok(result.deleted_count > 0)
    }

    async fn device_cards(&self, device: &DeviceLibraryId, pass_type: &PassTypeId) -> StoreResult<Vec<Card>> {
        self.faults.step()?;
        let registrations: Vec<RegistrationRecord> = self
            .registrations
            .find(doc! { "device_library_id": device.as_str(), "pass_type_id": pass_type.as_str() })
            .await
            .map_err(mongo)?
            .try_collect()
            .await
            .map_err(mongo)?;
        if registrations.is_empty() {
            return Ok(Vec::new());
        }
        let serials: Vec<&str> = registrations.iter().map(|r| r.serial.as_str()).collect();
        self.faults.step()?;
        let docs: Vec<Document> = self
            .cards
            .find(doc! { "_id": { "$in": serials } })
            .projection(doc! { "pending": 0, "recent": 0 })
            .sort(doc! { "_id": 1 })
            .await
            .map_err(mongo)?
            .try_collect()
            .await
            .map_err(mongo)?;
        docs.into_iter().map(card_from_doc).collect()
    }

    async fn card_registrations(&self, serial: &SerialNumber) -> StoreResult<Vec<Registration>> {
        self.faults.step()?;
        let records: Vec<RegistrationRecord> = self
            .registrations
            .find(doc! { "serial": serial.as_str() })
            .sort(doc! { "device_library_id": 1 })
            .await
            .map_err(mongo)?
            .try_collect()
            .await
            .map_err(mongo)?;
        records.into_iter().map(Registration::try_from).collect()
    }

    async fn delete_registrations_with_token(&self, token: &PushToken) -> StoreResult<u64> {
        self.faults.step()?;
        let result = self.registrations.delete_many(doc! { "push_token": token.expose() }).await.map_err(mongo)?;
        Ok(result.deleted_count)
    }

    async fn card_entries(
        &self,
        serial: &SerialNumber,
        before_seq: Option<i64>,
        limit: usize,
    ) -> StoreResult<Vec<LedgerEntry>> {
        self.faults.step()?;
        let before = before_seq.unwrap_or(i64::MAX);
        let limit_i64 = i64::try_from(limit).unwrap_or(i64::MAX);
        let mut records: Vec<EntryRecord> = self
            .ledger
            .find(doc! { "serial": serial.as_str(), "seq": { "$lt": before } })
            .sort(doc! { "seq": -1 })
            .limit(limit_i64)
            .await
            .map_err(mongo)?
            .try_collect()
            .await
            .map_err(mongo)?;
        // Entries written but not yet settled into the ledger collection are part of the ledger.
        self.faults.step()?;
        if let Some(card) = self
            .cards
            .find_one(doc! { "_id": serial.as_str() })
            .projection(doc! { "pending": 1 })
            .await
            .map_err(mongo)?
        {
            for entry in pending_entries(&card)? {
                if entry.seq < before && !records.iter().any(|r| r.id == entry.id) {
                    records.push(entry);
                }
            }
        }
        records.sort_by_key(|r| std::cmp::Reverse(r.seq));
        records.truncate(limit);
        records.into_iter().map(LedgerEntry::try_from).collect()
    }
}
