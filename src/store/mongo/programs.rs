//! Programs, design versions and images in the MongoDB store: a program is one document (the
//! program under `program`), updated with a filter on its version; a publish's fan-out is two
//! `updateMany` calls over the program's cards.

use async_trait::async_trait;
use bson::spec::BinarySubtype;
use bson::{Binary, Document, doc};
use chrono::{DateTime, Utc};
use futures_util::TryStreamExt;
use mongodb::options::IndexOptions;
use mongodb::{Collection, IndexModel};

use super::{MongoStore, mongo};
use crate::domain::{DesignVersion, Program, SerialNumber};
use crate::store::records::millis;
use crate::store::{ProgramStore, PushProgress, StoreError, StoreResult, UniqueKey};

pub(super) async fn create_indexes(
    cards: &Collection<Document>,
    versions: &Collection<Document>,
) -> mongodb::error::Result<()> {
    let named = |name: &str| IndexOptions::builder().name(name.to_owned()).build();
    cards
        .create_index(
            IndexModel::builder().keys(doc! { "program_id": 1, "_id": 1 }).options(named("program_serial")).build(),
        )
        .await?;
    versions
        .create_index(
            IndexModel::builder()
                .keys(doc! { "program_id": 1, "revision": -1 })
                .options(named("program_revision"))
                .build(),
        )
        .await?;
    Ok(())
}

fn corrupt(what: &str, e: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(format!("{what}: {e}"))
}

fn program_from(doc: &Document) -> StoreResult<Program> {
    let id = doc.get_str("_id").unwrap_or("?");
    let body = doc.get_document("program").map_err(|e| corrupt(&format!("program {id}"), e))?;
    bson::from_document(body.clone()).map_err(|e| corrupt(&format!("program {id}"), e))
}

fn version_from(doc: &Document) -> StoreResult<DesignVersion> {
    let body = doc.get_str("body").map_err(|e| corrupt("design version", e))?;
    serde_json::from_str(body).map_err(|e| corrupt("design version", e))
}

/// The first moment of the second after `t`: a card's new modification time, so that a device
/// whose copy is from the same second as the change still sees it as newer (HTTP dates have
/// whole seconds).
fn next_second(t: DateTime<Utc>) -> i64 {
    (millis(t) / 1000 + 1) * 1000
}

#[async_trait]
impl ProgramStore for MongoStore {
    async fn programs(&self) -> StoreResult<Vec<Program>> {
        self.faults.step()?;
        let docs: Vec<Document> = self
            .programs
            .find(doc! {})
            .sort(doc! { "_id": 1 })
            .await
            .map_err(mongo)?
            .try_collect()
            .await
            .map_err(mongo)?;
        docs.iter().map(program_from).collect()
    }

    async fn insert_program(&self, program: &Program) -> StoreResult<()> {
        self.faults.step()?;
        let body = bson::to_document(program).map_err(|e| corrupt("program", e))?;
        match self.programs.insert_one(doc! { "_id": &program.id, "program": body }).await {
            Ok(_) => Ok(()),
            Err(e) if super::duplicate_index(&e).is_some() => Err(StoreError::Duplicate(UniqueKey::Other)),
            Err(e) => Err(mongo(e)),
        }
    }

    async fn update_program(&self, program: &Program, expected_version: i64) -> StoreResult<bool> {
        self.faults.step()?;
        let body = bson::to_document(program).map_err(|e| corrupt("program", e))?;
        // Programs stored before edits were versioned have no version: that reads as 0.
        let version = if expected_version == 0 {
            doc! { "$or": [{ "program.version": 0_i64 }, { "program.version": { "$exists": false } }] }
        } else {
            doc! { "program.version": expected_version }
        };
        let mut filter = doc! { "_id": &program.id };
        filter.extend(version);
        let result = self.programs.update_one(filter, doc! { "$set": { "program": body } }).await.map_err(mongo)?;
        Ok(result.matched_count == 1)
    }

    async fn put_image(&self, id: &str, png: &[u8]) -> StoreResult<()> {
        self.faults.step()?;
        let bytes = Binary { subtype: BinarySubtype::Generic, bytes: png.to_vec() };
        self.images
            .update_one(doc! { "_id": id }, doc! { "$setOnInsert": { "png": bytes } })
            .upsert(true)
            .await
            .map_err(mongo)?;
        Ok(())
    }

    async fn image(&self, id: &str) -> StoreResult<Option<Vec<u8>>> {
        self.faults.step()?;
        let Some(doc) = self.images.find_one(doc! { "_id": id }).await.map_err(mongo)? else { return Ok(None) };
        let bytes = doc.get_binary_generic("png").map_err(|e| corrupt("image", e))?;
        Ok(Some(bytes.clone()))
    }

    async fn insert_design_version(&self, version: &DesignVersion) -> StoreResult<()> {
        self.faults.step()?;
        let body = serde_json::to_string(version).map_err(|e| corrupt("design version", e))?;
        let id = format!("{}:{}", version.program_id, version.revision);
        self.design_versions
            .update_one(
                doc! { "_id": id },
                doc! { "$setOnInsert": {
                    "program_id": &version.program_id, "revision": version.revision,
                    "published_at": millis(version.published_at), "body": body,
                } },
            )
            .upsert(true)
            .await
            .map_err(mongo)?;
        Ok(())
    }

    async fn design_versions(&self, program_id: &str, limit: usize) -> StoreResult<Vec<DesignVersion>> {
        self.faults.step()?;
        let docs: Vec<Document> = self
            .design_versions
            .find(doc! { "program_id": program_id })
            .sort(doc! { "revision": -1 })
            .limit(i64::try_from(limit).unwrap_or(i64::MAX))
            .await
            .map_err(mongo)?
            .try_collect()
            .await
            .map_err(mongo)?;
        docs.iter().map(version_from).collect()
    }

    async fn design_version(&self, program_id: &str, revision: i64) -> StoreResult<Option<DesignVersion>> {
        self.faults.step()?;
        let doc = self
            .design_versions
            .find_one(doc! { "program_id": program_id, "revision": revision })
            .await
            .map_err(mongo)?;
        doc.as_ref().map(version_from).transpose()
    }

    async fn bump_program_cards(&self, program_id: &str, now: DateTime<Utc>) -> StoreResult<u64> {
        self.faults.step()?;
        let live = doc! { "program_id": program_id, "status": { "$ne": "deleted" } };
        let mut idle = live.clone();
        idle.insert("push_pending_since", bson::Bson::Null);
        self.cards.update_many(idle, doc! { "$set": { "push_pending_since": millis(now) } }).await.map_err(mongo)?;
        let moved = self
            .cards
            .update_many(live, doc! { "$inc": { "version": 1_i64 }, "$max": { "modified_at": next_second(now) } })
            .await
            .map_err(mongo)?;
        Ok(moved.modified_count)
    }

    async fn program_cards_owed(
        &self,
        program_id: &str,
        after: Option<&SerialNumber>,
        limit: usize,
    ) -> StoreResult<Vec<SerialNumber>> {
        self.faults.step()?;
        let after = after.map(|s| s.as_str()).unwrap_or("");
        let docs: Vec<Document> = self
            .cards
            .find(doc! { "program_id": program_id, "_id": { "$gt": after }, "push_pending_since": { "$type": "long" } })
            .projection(doc! { "_id": 1 })
            .sort(doc! { "_id": 1 })
            .limit(i64::try_from(limit).unwrap_or(i64::MAX))
            .await
            .map_err(mongo)?
            .try_collect()
            .await
            .map_err(mongo)?;
        docs.iter()
            .map(|d| {
                let id = d.get_str("_id").map_err(|e| corrupt("card", e))?;
                SerialNumber::parse(id).map_err(|e| corrupt("card", e))
            })
            .collect()
    }

    async fn program_push_progress(&self, program_id: &str) -> StoreResult<PushProgress> {
        self.faults.step()?;
        let live = doc! { "program_id": program_id, "status": { "$ne": "deleted" } };
        let cards = self.cards.count_documents(live.clone()).await.map_err(mongo)?;
        let mut owed = live;
        owed.insert("push_pending_since", doc! { "$type": "long" });
        let pending = self.cards.count_documents(owed).await.map_err(mongo)?;
        // Dead letters are few (they are replayed or cleared): their cards are looked up by id.
        let serials = self.dead_letters.distinct("serial", doc! {}).await.map_err(mongo)?;
        let failed = if serials.is_empty() {
            0
        } else {
            self.cards
                .count_documents(doc! { "program_id": program_id, "_id": { "$in": serials } })
                .await
                .map_err(mongo)?
        };
        Ok(PushProgress { cards, pending, failed })
    }
}
