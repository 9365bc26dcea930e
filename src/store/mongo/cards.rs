//! Programs and cards in the MongoDB store.

use async_trait::async_trait;
use bson::{Document, doc};
use futures_util::TryStreamExt;

use super::{MongoStore, card_from_doc, card_state, mongo};
use crate::domain::{Card, LedgerEntry, Program, SerialNumber};
use crate::store::records::{CardRecord, EntryRecord};
use crate::store::{Backend, CardLookup, CardStore, StoreError, StoreResult};

#[async_trait]
impl CardStore for MongoStore {
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
        let set = card_state(&r);
        let result = self
            .cards
            .update_one(doc! { "_id": &r.serial, "version": expected_version }, doc! { "$set": set })
            .await
            .map_err(mongo)?;
        Ok(result.matched_count == 1)
    }

    async fn cards_after(&self, after: Option<&SerialNumber>, limit: usize) -> StoreResult<Vec<Card>> {
        self.faults.step()?;
        let after = after.map(|s| s.as_str().to_owned()).unwrap_or_default();
        let docs: Vec<Document> = self
            .cards
            .find(doc! { "_id": { "$gt": after } })
            .projection(doc! { "pending": 0, "recent": 0 })
            .sort(doc! { "_id": 1 })
            .limit(i64::try_from(limit).unwrap_or(i64::MAX))
            .await
            .map_err(mongo)?
            .try_collect()
            .await
            .map_err(mongo)?;
        docs.into_iter().map(card_from_doc).collect()
    }
}
