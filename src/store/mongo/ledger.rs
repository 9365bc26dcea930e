//! The ledger and idempotency records in the MongoDB store. A write commits with one atomic
//! update of the card document (state + pending entries) and is then settled into the `ledger`
//! collection; see the module documentation of `store::mongo`.

use async_trait::async_trait;
use bson::{Bson, Document, doc};
use chrono::{DateTime, Utc};
use futures_util::TryStreamExt;

use super::{MongoStore, card_state, duplicate_index, mongo, pending_entries};
use crate::domain::{LedgerEntry, SerialNumber};
use crate::store::records::{CardRecord, EntryRecord, from_millis, millis};
use crate::store::{
    IdempotencyKey, IdempotencyRecord, IdempotencyStart, LedgerStore, LedgerWrite, StoreError, StoreResult,
    StoredResponse,
};

/// How many recent entry ids a card remembers, to recognise a retried write after a crash.
const RECENT_ENTRIES: i32 = 64;

fn record_id(key: &IdempotencyKey) -> String {
    // Scopes (API key and webhook source ids) never contain ':'.
    format!("{}:{}", key.scope, key.key)
}

fn bson_date(t: DateTime<Utc>) -> bson::DateTime {
    bson::DateTime::from_millis(millis(t))
}

impl MongoStore {
    /// An entry in the ledger collection matching `filter`, or else one still pending on a card.
    async fn find_entry(&self, filter: Document, pending_field: &str, value: &str) -> StoreResult<Option<LedgerEntry>> {
        self.faults.step()?;
        if let Some(record) = self.ledger.find_one(filter).await.map_err(mongo)? {
            return LedgerEntry::try_from(record).map(Some);
        }
        self.faults.step()?;
        let card = self
            .cards
            .find_one(doc! { format!("pending.{pending_field}"): value })
            .projection(doc! { "pending": 1 })
            .await
            .map_err(mongo)?;
        let Some(card) = card else { return Ok(None) };
        let found = pending_entries(&card)?.into_iter().find(|e| match pending_field {
            "_id" => e.id == value,
            _ => e.reverses.as_deref() == Some(value),
        });
        found.map(LedgerEntry::try_from).transpose()
    }

    async fn complete(&self, key: &IdempotencyKey, response: &StoredResponse) -> StoreResult<()> {
        self.faults.step()?;
        self.idempotency
            .update_one(
                doc! { "_id": record_id(key) },
                doc! { "$set": { "status": i32::from(response.status), "body": &response.body, "lease_until": 0_i64 } },
            )
            .await
            .map_err(mongo)?;
        Ok(())
    }
}

#[async_trait]
impl LedgerStore for MongoStore {
    async fn commit_ledger(&self, write: &LedgerWrite) -> StoreResult<bool> {
        self.faults.step()?;
        let card = CardRecord::from(&write.card);
        let entries: Vec<EntryRecord> = write.entries.iter().map(EntryRecord::from).collect();
        let entry_docs = entries
            .iter()
            .map(|e| bson::to_bson(e).map_err(|e| StoreError::Corrupt(e.to_string())))
            .collect::<StoreResult<Vec<Bson>>>()?;
        let ids: Vec<&str> = entries.iter().map(|e| e.id.as_str()).collect();
        // The commit point: the card's new state and its new entries in one atomic update, only
        // if nobody changed the card since it was read.
        let result = self
            .cards
            .update_one(
                doc! { "_id": &card.serial, "version": write.expected_version },
                doc! {
                    "$set": card_state(&card),
                    "$push": {
                        "pending": { "$each": entry_docs },
                        "recent": { "$each": ids, "$slice": -RECENT_ENTRIES },
                    },
                },
            )
            .await
            .map_err(mongo)?;
        if result.matched_count == 0 {
            return Ok(false);
        }
        self.settle_pending(&card.serial).await?;
        if let Some((key, response)) = &write.completes {
            self.complete(key, response).await?;
        }
        Ok(true)
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

    async fn entry(&self, id: &str) -> StoreResult<Option<LedgerEntry>> {
        self.find_entry(doc! { "_id": id }, "_id", id).await
    }

    async fn reversal_of(&self, id: &str) -> StoreResult<Option<LedgerEntry>> {
        self.find_entry(doc! { "reverses": id }, "reverses", id).await
    }

    async fn repair_card(&self, serial: &SerialNumber) -> StoreResult<()> {
        self.settle_pending(serial.as_str()).await
    }

    async fn idempotency_start(&self, record: &IdempotencyRecord) -> StoreResult<IdempotencyStart> {
        self.faults.step()?;
        let id = record_id(&record.key);
        let document = doc! {
            "_id": &id,
            "scope": &record.key.scope,
            "key": &record.key.key,
            "request_hash": &record.request_hash,
            "entry_id": &record.entry_id,
            "lease_until": millis(record.lease_until),
            "status": Bson::Null,
            "body": Bson::Null,
            "created_at": millis(record.created_at),
            "expires_at": bson_date(record.expires_at),
        };
        match self.idempotency.insert_one(document).await {
            Ok(_) => return Ok(IdempotencyStart::Started),
            Err(e) if duplicate_index(&e).is_some() => {}
            Err(e) => return Err(mongo(e)),
        }
        self.faults.step()?;
        let existing = self
            .idempotency
            .find_one(doc! { "_id": &id })
            .await
            .map_err(mongo)?
            .ok_or_else(|| StoreError::Corrupt(format!("idempotency record {id} vanished")))?;
        let corrupt = |e: bson::document::ValueAccessError| StoreError::Corrupt(format!("idempotency record: {e}"));
        let status = match existing.get("status") {
            Some(Bson::Int32(s)) => Some(u16::try_from(*s).map_err(|_| StoreError::Corrupt("status".into()))?),
            Some(Bson::Int64(s)) => Some(u16::try_from(*s).map_err(|_| StoreError::Corrupt("status".into()))?),
            _ => None,
        };
        Ok(IdempotencyStart::Existing(IdempotencyRecord {
            key: record.key.clone(),
            request_hash: existing.get_str("request_hash").map_err(corrupt)?.to_owned(),
            entry_id: existing.get_str("entry_id").map_err(corrupt)?.to_owned(),
            lease_until: from_millis(existing.get_i64("lease_until").map_err(corrupt)?)?,
            response: status
                .map(|status| StoredResponse { status, body: existing.get_str("body").unwrap_or_default().to_owned() }),
            created_at: from_millis(existing.get_i64("created_at").map_err(corrupt)?)?,
            expires_at: DateTime::from_timestamp_millis(
                existing.get_datetime("expires_at").map_err(corrupt)?.timestamp_millis(),
            )
            .ok_or_else(|| StoreError::Corrupt("expires_at".into()))?,
        }))
    }

    async fn idempotency_take_over(
        &self,
        key: &IdempotencyKey,
        seen_lease_until: DateTime<Utc>,
        lease_until: DateTime<Utc>,
    ) -> StoreResult<bool> {
        self.faults.step()?;
        let result = self
            .idempotency
            .update_one(
                doc! { "_id": record_id(key), "status": Bson::Null, "lease_until": millis(seen_lease_until) },
                doc! { "$set": { "lease_until": millis(lease_until) } },
            )
            .await
            .map_err(mongo)?;
        Ok(result.matched_count == 1)
    }

    async fn idempotency_complete(&self, key: &IdempotencyKey, response: &StoredResponse) -> StoreResult<()> {
        self.complete(key, response).await
    }

    async fn idempotency_release(&self, key: &IdempotencyKey) -> StoreResult<()> {
        self.faults.step()?;
        self.idempotency
            .update_one(doc! { "_id": record_id(key), "status": Bson::Null }, doc! { "$set": { "lease_until": 0_i64 } })
            .await
            .map_err(mongo)?;
        Ok(())
    }

    async fn idempotency_purge(&self, now: DateTime<Utc>) -> StoreResult<u64> {
        self.faults.step()?;
        let result =
            self.idempotency.delete_many(doc! { "expires_at": { "$lt": bson_date(now) } }).await.map_err(mongo)?;
        Ok(result.deleted_count)
    }
}
