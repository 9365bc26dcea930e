//! Device registrations (PassKit web service) in the MongoDB store.

use async_trait::async_trait;
use bson::{Document, doc};
use futures_util::TryStreamExt;

use super::{MongoStore, card_fields, card_from_doc, duplicate_index, mongo};
use crate::domain::{Card, DeviceLibraryId, PassTypeId, PushToken, RegisterOutcome, Registration, SerialNumber};
use crate::store::records::RegistrationRecord;
use crate::store::{DeviceStore, StoreResult};

#[async_trait]
impl DeviceStore for MongoStore {
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
            .projection(card_fields())
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
}
