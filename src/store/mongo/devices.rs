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
    /// Without transactions, the cap is held by the registrations' `_id`s: a new registration
    /// takes a free slot `"{serial}#{n}"` with `n < max_per_pass`, and two registrations racing
    /// for one slot cannot both insert it (the loser looks again). Registrations made before the
    /// cap existed have other `_id`s; they count towards the cap but hold no slot.
    async fn register_device(&self, registration: &Registration, max_per_pass: u32) -> StoreResult<RegisterOutcome> {
        let r = RegistrationRecord::from(registration);
        let raw = self.registrations.clone_with_type::<Document>();
        let key =
            doc! { "device_library_id": &r.device_library_id, "pass_type_id": &r.pass_type_id, "serial": &r.serial };
        // Each round either finishes or lost a race to a registration that now exists, so the
        // number of rounds is bounded by the number of slots.
        for _ in 0..max_per_pass + 3 {
            self.faults.step()?;
            let updated = self
                .registrations
                .update_one(key.clone(), doc! { "$set": { "push_token": &r.push_token, "updated_at": r.updated_at } })
                .await
                .map_err(mongo)?;
            if updated.matched_count > 0 {
                return Ok(RegisterOutcome::Updated);
            }
            self.faults.step()?;
            let taken: Vec<Document> = raw
                .find(doc! { "serial": &r.serial })
                .projection(doc! { "_id": 1 })
                .await
                .map_err(mongo)?
                .try_collect()
                .await
                .map_err(mongo)?;
            if taken.len() >= max_per_pass as usize {
                return Ok(RegisterOutcome::Full);
            }
            let used: std::collections::HashSet<&str> = taken.iter().filter_map(|d| d.get_str("_id").ok()).collect();
            let Some(slot) =
                (0..max_per_pass).map(|n| format!("{}#{n}", r.serial)).find(|id| !used.contains(id.as_str()))
            else {
                return Ok(RegisterOutcome::Full);
            };
            let document = doc! {
                "_id": slot,
                "device_library_id": &r.device_library_id,
                "pass_type_id": &r.pass_type_id,
                "serial": &r.serial,
                "push_token": &r.push_token,
                "pushed_version": r.pushed_version,
                "created_at": r.created_at,
                "updated_at": r.updated_at,
            };
            self.faults.step()?;
            match raw.insert_one(document).await {
                Ok(_) => return Ok(RegisterOutcome::Created),
                // The slot was taken, or the same device registered meanwhile: look again.
                Err(e) if duplicate_index(&e).is_some() => continue,
                Err(e) => return Err(mongo(e)),
            }
        }
        Err(crate::store::StoreError::Unavailable(anyhow::anyhow!(
            "device registrations keep racing for the same pass"
        )))
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

    async fn delete_registrations_with_token(&self, token: &PushToken) -> StoreResult<Vec<Registration>> {
        self.faults.step()?;
        // One document at a time, so that each removed registration is answered to the one
        // caller that removed it (a token is registered for the few passes of one device).
        let mut removed = Vec::new();
        while let Some(record) =
            self.registrations.find_one_and_delete(doc! { "push_token": token.expose() }).await.map_err(mongo)?
        {
            removed.push(Registration::try_from(record)?);
        }
        Ok(removed)
    }
}
