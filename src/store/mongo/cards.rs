//! Programs and cards in the MongoDB store.

use async_trait::async_trait;
use bson::{Document, doc};
use futures_util::TryStreamExt;

use super::{MongoStore, card_fields, card_from_doc, card_state, lookup_filter, mongo};
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
        doc.insert("events", super::webhooks::event_docs(&crate::webhooks::events::new_card(card, first_entry)));
        self.cards.insert_one(doc).await.map_err(mongo)?;
        // The card and its first entry exist from here on (readers see pending entries); a
        // failure to settle is repaired by the next write to the card or `loy check ledger`.
        if let Err(e) = self.settle(card.serial.as_str(), std::slice::from_ref(&entry)).await {
            tracing::warn!(error = %crate::telemetry::error_chain(&e), "settling a new card's first entry failed");
        }
        Ok(())
    }

    async fn find_card(&self, by: CardLookup<'_>) -> StoreResult<Option<Card>> {
        self.faults.step()?;
        let doc = self.cards.find_one(lookup_filter(by)).projection(card_fields()).await.map_err(mongo)?;
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

    /// MongoDB has no multi-document transaction on a standalone server: the updates go
    /// concurrently, each conditional on its own card's version.
    async fn put_news(&self, cards: &[(Card, i64)]) -> StoreResult<Vec<bool>> {
        let update = |card: &Card, expected: i64| {
            let r = CardRecord::from(card);
            let set = doc! {
                "version": r.version, "modified_at": r.modified_at, "push_pending_since": r.push_pending_since,
                "updated_at": r.updated_at, "news": r.news,
            };
            async move {
                self.faults.step()?;
                let result = self
                    .cards
                    .update_one(doc! { "_id": &r.serial, "version": expected }, doc! { "$set": set })
                    .await
                    .map_err(mongo)?;
                Ok(result.matched_count == 1)
            }
        };
        futures_util::future::join_all(cards.iter().map(|(card, expected)| update(card, *expected)))
            .await
            .into_iter()
            .collect()
    }

    async fn cards_after(&self, after: Option<&SerialNumber>, limit: usize) -> StoreResult<Vec<Card>> {
        self.faults.step()?;
        let after = after.map(|s| s.as_str().to_owned()).unwrap_or_default();
        let docs: Vec<Document> = self
            .cards
            .find(doc! { "_id": { "$gt": after } })
            .projection(card_fields())
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
