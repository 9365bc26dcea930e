//! Push bookkeeping in the MongoDB store.

use async_trait::async_trait;
use bson::{Bson, Document, doc};
use chrono::{DateTime, Utc};
use futures_util::TryStreamExt;

use super::{MongoStore, mongo};
use crate::domain::{DeviceLibraryId, SerialNumber};
use crate::store::records::{from_millis, millis};
use crate::store::{CardLookup, CardStore, DeadLetter, GoogleSync, Owed, PushStore, StoreError, StoreResult};

fn letter_from(doc: &Document) -> StoreResult<DeadLetter> {
    let corrupt = |e: bson::document::ValueAccessError| StoreError::Corrupt(format!("dead letter: {e}"));
    Ok(DeadLetter {
        id: doc.get_str("_id").map_err(corrupt)?.to_owned(),
        serial: SerialNumber::parse(doc.get_str("serial").map_err(corrupt)?)
            .map_err(|e| StoreError::Corrupt(e.to_string()))?,
        version: doc.get_i64("version").map_err(corrupt)?,
        target: doc.get_str("target").map_err(corrupt)?.to_owned(),
        reason: doc.get_str("reason").map_err(corrupt)?.to_owned(),
        attempts: u32::try_from(doc.get_i64("attempts").map_err(corrupt)?).unwrap_or(u32::MAX),
        first_failure_at: from_millis(doc.get_i64("first_failure_at").map_err(corrupt)?)?,
        created_at: from_millis(doc.get_i64("created_at").map_err(corrupt)?)?,
    })
}

#[async_trait]
impl PushStore for MongoStore {
    async fn cards_pending_push(&self, since: DateTime<Utc>, limit: usize) -> StoreResult<Vec<SerialNumber>> {
        self.faults.step()?;
        let docs: Vec<Document> = self
            .cards
            .find(doc! { "push_pending_since": { "$type": "long", "$lte": millis(since) } })
            .projection(doc! { "_id": 1 })
            .sort(doc! { "push_pending_since": 1 })
            .limit(i64::try_from(limit).unwrap_or(i64::MAX))
            .await
            .map_err(mongo)?
            .try_collect()
            .await
            .map_err(mongo)?;
        docs.iter()
            .map(|d| {
                let id = d.get_str("_id").map_err(|e| StoreError::Corrupt(e.to_string()))?;
                SerialNumber::parse(id).map_err(|e| StoreError::Corrupt(e.to_string()))
            })
            .collect()
    }

    async fn push_generation(&self, serial: &SerialNumber) -> StoreResult<i64> {
        self.faults.step()?;
        let card = self
            .cards
            .find_one(doc! { "_id": serial.as_str() })
            .projection(doc! { "push_generation": 1 })
            .await
            .map_err(mongo)?;
        Ok(card.and_then(|c| c.get_i64("push_generation").ok()).unwrap_or(0))
    }

    async fn mark_card_pushed(&self, serial: &SerialNumber, version: i64, generation: i64) -> StoreResult<bool> {
        self.faults.step()?;
        // Cards written before push generations existed have none: generation 0.
        let same_generation =
            if generation == 0 { Bson::Document(doc! { "$in": [0_i64, Bson::Null] }) } else { Bson::Int64(generation) };
        let done = self
            .cards
            .update_one(
                doc! { "_id": serial.as_str(), "version": { "$lte": version }, "push_generation": same_generation.clone() },
                doc! { "$max": { "pushed_version": version }, "$set": { "push_pending_since": Bson::Null } },
            )
            .await
            .map_err(mongo)?;
        if done.matched_count == 1 {
            return Ok(true);
        }
        // The card moved on meanwhile: it stays owed a push for its newer version.
        self.faults.step()?;
        let done = self
            .cards
            .update_one(
                doc! { "_id": serial.as_str(), "push_generation": same_generation },
                doc! { "$max": { "pushed_version": version } },
            )
            .await
            .map_err(mongo)?;
        Ok(done.matched_count == 1)
    }

    async fn mark_devices_pushed(
        &self,
        serial: &SerialNumber,
        version: i64,
        devices: &[DeviceLibraryId],
    ) -> StoreResult<()> {
        if devices.is_empty() {
            return Ok(());
        }
        self.faults.step()?;
        let devices: Vec<&str> = devices.iter().map(DeviceLibraryId::as_str).collect();
        self.registrations
            .update_many(
                doc! { "serial": serial.as_str(), "device_library_id": { "$in": devices } },
                doc! { "$max": { "pushed_version": version } },
            )
            .await
            .map_err(mongo)?;
        Ok(())
    }

    async fn mark_push_owed(&self, serial: &SerialNumber, owed: Owed<'_>, now: DateTime<Utc>) -> StoreResult<bool> {
        loop {
            let Some(card) = self.find_card(CardLookup::Serial(serial)).await? else {
                return Ok(false);
            };
            self.faults.step()?;
            let pending = card.push_pending_since.map(millis).unwrap_or_else(|| millis(now));
            let updated = self
                .cards
                .update_one(
                    doc! { "_id": serial.as_str(), "version": card.version },
                    doc! {
                        "$min": { "pushed_version": card.version - 1 },
                        "$set": { "push_pending_since": pending },
                        "$inc": { "push_generation": 1_i64 },
                    },
                )
                .await
                .map_err(mongo)?;
            if updated.matched_count == 0 {
                continue;
            }
            let mut filter = doc! { "serial": serial.as_str() };
            match owed {
                Owed::AllDevices => {}
                Owed::Device(device) => {
                    filter.insert("device_library_id", device.as_str());
                }
                Owed::CardOnly => return Ok(true),
            }
            self.faults.step()?;
            self.registrations
                .update_many(filter, doc! { "$set": { "pushed_version": 0_i64 } })
                .await
                .map_err(mongo)?;
            return Ok(true);
        }
    }

    async fn google_sync(&self, serial: &SerialNumber) -> StoreResult<GoogleSync> {
        self.faults.step()?;
        let Some(doc) = self.google_sync.find_one(doc! { "_id": serial.as_str() }).await.map_err(mongo)? else {
            return Ok(GoogleSync::default());
        };
        let corrupt = |e: bson::document::ValueAccessError| StoreError::Corrupt(format!("google_sync: {e}"));
        let notified_at = doc
            .get_array("notified")
            .map_err(corrupt)?
            .iter()
            .map(|b| b.as_i64().ok_or_else(|| StoreError::Corrupt("google_sync.notified".into())).and_then(from_millis))
            .collect::<StoreResult<Vec<_>>>()?;
        Ok(GoogleSync {
            version: doc.get_i64("version").map_err(corrupt)?,
            balance: doc.get_i64("balance").ok(),
            notified_at,
        })
    }

    async fn record_google_sync(
        &self,
        serial: &SerialNumber,
        version: i64,
        balance: i64,
        notified: Option<DateTime<Utc>>,
    ) -> StoreResult<()> {
        // One worker holds a card at a time, so a read-then-write does not race.
        let current = self.google_sync(serial).await?;
        if current.version > version {
            return Ok(());
        }
        let notified_at = current.notifications_after(notified);
        let notified: Vec<Bson> = notified_at.iter().map(|t| Bson::Int64(millis(*t))).collect();
        self.faults.step()?;
        self.google_sync
            .update_one(
                doc! { "_id": serial.as_str() },
                doc! { "$set": { "version": version, "balance": balance, "notified": notified } },
            )
            .upsert(true)
            .await
            .map_err(mongo)?;
        Ok(())
    }

    async fn reset_google_sync(&self, serial: &SerialNumber) -> StoreResult<()> {
        self.faults.step()?;
        self.google_sync
            .update_one(doc! { "_id": serial.as_str() }, doc! { "$set": { "version": 0_i64, "balance": Bson::Null } })
            .await
            .map_err(mongo)?;
        Ok(())
    }

    async fn insert_dead_letter(&self, l: &DeadLetter) -> StoreResult<()> {
        self.faults.step()?;
        self.dead_letters
            .insert_one(doc! {
                "_id": &l.id,
                "serial": l.serial.as_str(),
                "version": l.version,
                "target": &l.target,
                "reason": &l.reason,
                "attempts": i64::from(l.attempts),
                "first_failure_at": millis(l.first_failure_at),
                "created_at": millis(l.created_at),
            })
            .await
            .map_err(mongo)?;
        Ok(())
    }

    async fn dead_letters(&self, limit: usize) -> StoreResult<Vec<DeadLetter>> {
        self.faults.step()?;
        let docs: Vec<Document> = self
            .dead_letters
            .find(doc! {})
            .sort(doc! { "created_at": -1, "_id": 1 })
            .limit(i64::try_from(limit).unwrap_or(i64::MAX))
            .await
            .map_err(mongo)?
            .try_collect()
            .await
            .map_err(mongo)?;
        docs.iter().map(letter_from).collect()
    }

    async fn take_dead_letter(&self, id: &str) -> StoreResult<Option<DeadLetter>> {
        self.faults.step()?;
        let doc = self.dead_letters.find_one_and_delete(doc! { "_id": id }).await.map_err(mongo)?;
        doc.as_ref().map(letter_from).transpose()
    }
}
