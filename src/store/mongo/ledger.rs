//! The ledger and idempotency records in the MongoDB store. A write commits with one atomic
//! update of the card document (state + pending entries) and is then settled into the `ledger`
//! collection; see the module documentation of `store::mongo`.

use async_trait::async_trait;
use bson::{Bson, Document, doc};
use chrono::{DateTime, Utc};
use futures_util::TryStreamExt;

use super::{MongoStore, card_from_doc, card_state, duplicate_index, lookup_filter, mongo, pending_entries};
use crate::domain::{LedgerEntry, SerialNumber};
use crate::store::faults::points;
use crate::store::records::{CardRecord, EntryRecord, from_millis, millis};
use crate::store::{
    CardForWrite, CardLookup, IdempotencyKey, IdempotencyRecord, IdempotencyStart, LedgerStore, LedgerWrite,
    StoreError, StoreResult, StoredResponse,
};

/// How many recent entry ids a card remembers, to recognise a retried write after a crash.
pub(in crate::store) const RECENT_ENTRIES: i32 = 64;

pub(in crate::store) fn record_id(key: &IdempotencyKey) -> String {
    // Scopes (API key and webhook source ids) never contain ':'.
    format!("{}:{}", key.scope, key.key)
}

fn bson_date(t: DateTime<Utc>) -> bson::DateTime {
    bson::DateTime::from_millis(millis(t))
}

impl MongoStore {
    /// An entry matching `field = value`, whether still pending on its card or settled.
    ///
    /// By reversed transaction (`reverses`), usually not found: the card's `pending` list is
    /// read first and the `ledger` collection second. Settling inserts into the collection
    /// before it pulls from `pending`, so an entry being settled is seen by one read or the
    /// other, never missed.
    ///
    /// By id, usually found and long settled (the transaction a reversal names): the collection
    /// first answers in one round trip. Not there, the entry is pending or not yet written: then
    /// `pending`, then the collection once more — an entry that left `pending` between the
    /// first two reads was inserted into the collection before it left, so the third finds it.
    async fn find_entry(&self, field: &str, value: &str) -> StoreResult<Option<LedgerEntry>> {
        let settled_first = field == "_id";
        if settled_first {
            if let Some(found) = self.settled_entry(field, value).await? {
                return Ok(Some(found));
            }
            self.faults.reached(points::READ_BETWEEN).await;
        }
        if let Some(found) = self.pending_entry(field, value).await? {
            return Ok(Some(found));
        }
        if !settled_first {
            self.faults.reached(points::READ_BETWEEN).await;
        }
        self.settled_entry(field, value).await
    }

    async fn pending_entry(&self, field: &str, value: &str) -> StoreResult<Option<LedgerEntry>> {
        self.faults.step()?;
        let card = self
            .cards
            .find_one(doc! { format!("pending.{field}"): value })
            .projection(doc! { "pending": 1 })
            .await
            .map_err(mongo)?;
        let Some(card) = card else { return Ok(None) };
        let found = pending_entries(&card)?.into_iter().find(|e| match field {
            "_id" => e.id == value,
            _ => e.reverses.as_deref() == Some(value),
        });
        found.map(LedgerEntry::try_from).transpose()
    }

    async fn settled_entry(&self, field: &str, value: &str) -> StoreResult<Option<LedgerEntry>> {
        self.faults.step()?;
        match self.ledger.find_one(doc! { field: value }).await.map_err(mongo)? {
            Some(record) => LedgerEntry::try_from(record).map(Some),
            None => Ok(None),
        }
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

fn strings(doc: &Document, field: &str) -> Vec<String> {
    doc.get_array(field)
        .map(|items| items.iter().filter_map(|b| b.as_str().map(str::to_owned)).collect())
        .unwrap_or_default()
}

fn record_from_doc(key: &IdempotencyKey, existing: &Document) -> StoreResult<IdempotencyRecord> {
    let corrupt = |e: bson::document::ValueAccessError| StoreError::Corrupt(format!("idempotency record: {e}"));
    let status = match existing.get("status") {
        Some(Bson::Int32(s)) => Some(u16::try_from(*s).map_err(|_| StoreError::Corrupt("status".into()))?),
        Some(Bson::Int64(s)) => Some(u16::try_from(*s).map_err(|_| StoreError::Corrupt("status".into()))?),
        _ => None,
    };
    Ok(IdempotencyRecord {
        key: key.clone(),
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
    })
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
        let reversed: Vec<&str> = entries.iter().filter_map(|e| e.reverses.as_deref()).collect();
        // The commit point: the card's new state and its new entries in one atomic update, only
        // if nobody changed the card since it was read, none of these entries is on it already
        // (`recent`: a request whose lease was taken over), and no transaction reversed here
        // was reversed before (`reversed`).
        let mut filter = doc! { "_id": &card.serial, "version": write.expected_version, "recent": { "$nin": &ids } };
        // The write's events ride on the same update (see `store::webhooks`).
        let events = super::webhooks::event_docs(&crate::webhooks::events::ledger_entries(&write.card, &write.entries));
        let mut push = doc! {
            "pending": { "$each": entry_docs },
            "events": { "$each": events },
            "recent": { "$each": &ids, "$slice": -RECENT_ENTRIES },
        };
        if !reversed.is_empty() {
            filter.insert("reversed", doc! { "$nin": &reversed });
            push.insert("reversed", doc! { "$each": &reversed });
        }
        let result =
            self.cards.update_one(filter, doc! { "$set": card_state(&card), "$push": push }).await.map_err(mongo)?;
        if result.matched_count == 0 {
            return Ok(false);
        }
        // Past the commit point: the write exists whatever fails from here on. Settling is
        // finished by the next write to the card or `loy check ledger`; an unrecorded answer is
        // derived again from the entries by a retry.
        self.faults.reached(points::LEDGER_COMMITTED).await;
        if let Err(e) = self.settle(&card.serial, &entries).await {
            tracing::warn!(error = %crate::telemetry::error_chain(&e), "settling committed entries failed");
        }
        if let Some((key, response)) = &write.completes {
            if let Err(e) = self.complete(key, response).await {
                tracing::warn!(error = %crate::telemetry::error_chain(&e), "recording an answer failed");
            }
        }
        Ok(true)
    }

    async fn card_for_write(&self, by: CardLookup<'_>, entry_id: &str) -> StoreResult<Option<CardForWrite>> {
        self.faults.step()?;
        let Some(mut doc) =
            self.cards.find_one(lookup_filter(by)).projection(doc! { "reversed": 0 }).await.map_err(mongo)?
        else {
            return Ok(None);
        };
        let pending = pending_entries(&doc)?;
        let recent = strings(&doc, "recent");
        doc.remove("pending");
        doc.remove("recent");
        doc.remove("events");
        let card = card_from_doc(doc)?;
        let existing = if let Some(entry) = pending.into_iter().find(|e| e.id == entry_id) {
            Some(entry)
        } else if recent.len() < RECENT_ENTRIES as usize && !recent.iter().any(|id| id == entry_id) {
            // `recent` holds every id ever committed to this card: the entry was not.
            None
        } else {
            // Committed before the card was read and no longer pending: settled before that
            // read, so in the collection now.
            self.faults.step()?;
            let settled = self.ledger.find_one(doc! { "_id": entry_id }).await.map_err(mongo)?;
            if settled.is_none() && recent.iter().any(|id| id == entry_id) {
                return Err(StoreError::Corrupt(format!(
                    "entry {entry_id} is recorded on its card but stored nowhere"
                )));
            }
            settled
        };
        let existing = existing.map(LedgerEntry::try_from).transpose()?;
        Ok(Some(CardForWrite { card, existing }))
    }

    async fn reached(&self, point: &'static str) {
        self.faults.reached(point).await;
    }

    fn checkpoint(&self, point: &'static str) -> StoreResult<()> {
        self.faults.checkpoint(point)
    }

    async fn card_entries(
        &self,
        serial: &SerialNumber,
        before_seq: Option<i64>,
        limit: usize,
    ) -> StoreResult<Vec<LedgerEntry>> {
        // Pending entries first, the collection second (see `find_entry`).
        self.faults.step()?;
        let before = before_seq.unwrap_or(i64::MAX);
        let mut records: Vec<EntryRecord> = match self
            .cards
            .find_one(doc! { "_id": serial.as_str() })
            .projection(doc! { "pending": 1 })
            .await
            .map_err(mongo)?
        {
            Some(card) => pending_entries(&card)?.into_iter().filter(|e| e.seq < before).collect(),
            None => Vec::new(),
        };
        self.faults.reached(points::READ_BETWEEN).await;
        self.faults.step()?;
        let limit_i64 = i64::try_from(limit).unwrap_or(i64::MAX);
        let settled: Vec<EntryRecord> = self
            .ledger
            .find(doc! { "serial": serial.as_str(), "seq": { "$lt": before } })
            .sort(doc! { "seq": -1 })
            .limit(limit_i64)
            .await
            .map_err(mongo)?
            .try_collect()
            .await
            .map_err(mongo)?;
        for entry in settled {
            if !records.iter().any(|r| r.id == entry.id) {
                records.push(entry);
            }
        }
        records.sort_by_key(|r| std::cmp::Reverse(r.seq));
        records.truncate(limit);
        records.into_iter().map(LedgerEntry::try_from).collect()
    }

    async fn entry(&self, id: &str) -> StoreResult<Option<LedgerEntry>> {
        self.find_entry("_id", id).await
    }

    async fn reversal_of(&self, id: &str) -> StoreResult<Option<LedgerEntry>> {
        self.find_entry("reverses", id).await
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
        Ok(IdempotencyStart::Existing(record_from_doc(&record.key, &existing)?))
    }

    async fn idempotency_get(&self, key: &IdempotencyKey) -> StoreResult<Option<IdempotencyRecord>> {
        self.faults.step()?;
        let found = self.idempotency.find_one(doc! { "_id": record_id(key) }).await.map_err(mongo)?;
        found.map(|doc| record_from_doc(key, &doc)).transpose()
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
