//! Stored phones and one-time data steps in the MongoDB store (steps are `meta` documents).

use async_trait::async_trait;
use bson::{Document, doc};
use chrono::{DateTime, Utc};
use futures_util::TryStreamExt;
use mongodb::Collection;

use super::{MongoStore, mongo};
use crate::domain::{Phone, SerialNumber};
use crate::store::records::{from_millis, millis};
use crate::store::{PhoneStore, StoreError, StoreResult, StoredPhone};

impl MongoStore {
    fn meta(&self) -> Collection<Document> {
        self.db.collection("meta")
    }
}

fn step_id(name: &str) -> String {
    format!("step:{name}")
}

#[async_trait]
impl PhoneStore for MongoStore {
    async fn stored_phones(&self, after: Option<&SerialNumber>, limit: usize) -> StoreResult<Vec<StoredPhone>> {
        self.faults.step()?;
        let after = after.map(|s| s.as_str().to_owned()).unwrap_or_default();
        let docs: Vec<Document> = self
            .cards
            .find(doc! { "_id": { "$gt": after } })
            .projection(doc! { "_id": 1, "program_id": 1, "phone": 1 })
            .sort(doc! { "_id": 1 })
            .limit(i64::try_from(limit).unwrap_or(i64::MAX))
            .await
            .map_err(mongo)?
            .try_collect()
            .await
            .map_err(mongo)?;
        docs.into_iter()
            .map(|d| {
                let field = |name: &str| {
                    d.get_str(name).map(str::to_owned).map_err(|e| StoreError::Corrupt(format!("card {name}: {e}")))
                };
                let serial = field("_id")?;
                let serial = SerialNumber::parse(&serial)
                    .map_err(|e| StoreError::Corrupt(format!("card serial {serial}: {e}")))?;
                Ok(StoredPhone { serial, program_id: field("program_id")?, phone: field("phone")? })
            })
            .collect()
    }

    async fn set_card_phone(&self, serial: &SerialNumber, phone: &Phone) -> StoreResult<bool> {
        self.faults.step()?;
        let result = self
            .cards
            .update_one(doc! { "_id": serial.as_str() }, doc! { "$set": { "phone": phone.as_str() } })
            .await
            .map_err(mongo)?;
        Ok(result.matched_count == 1)
    }

    async fn data_step_done(&self, name: &str) -> StoreResult<Option<DateTime<Utc>>> {
        self.faults.step()?;
        let found = self.meta().find_one(doc! { "_id": step_id(name) }).await.map_err(mongo)?;
        found
            .map(|d| {
                d.get_i64("done_at")
                    .map_err(|e| StoreError::Corrupt(format!("data step {name}: {e}")))
                    .and_then(from_millis)
            })
            .transpose()
    }

    async fn record_data_step(&self, name: &str, at: DateTime<Utc>) -> StoreResult<()> {
        self.faults.step()?;
        self.meta()
            .update_one(doc! { "_id": step_id(name) }, doc! { "$setOnInsert": { "done_at": millis(at) } })
            .upsert(true)
            .await
            .map_err(mongo)?;
        Ok(())
    }
}
