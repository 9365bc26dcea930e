//! Messages in the MongoDB store: one document per message (state, attempts, lease and time as
//! fields, the rest as JSON), taken with a single `findAndModify`; one document per card's send,
//! keyed by message and serial.

use std::collections::HashMap;

use async_trait::async_trait;
use bson::{Document, doc};
use chrono::{DateTime, Utc};
use futures_util::TryStreamExt;
use mongodb::options::{IndexOptions, ReturnDocument};
use mongodb::{Collection, IndexModel};

use super::{MongoStore, mongo};
use crate::messages::{Message, MessageState, Wallet};
use crate::store::records::{from_millis, millis};
use crate::store::{MessageSend, MessageStore, Reach, SendCounts, SendState, StoreError, StoreResult};

pub(super) async fn create_indexes(
    messages: &Collection<Document>,
    sends: &Collection<Document>,
) -> mongodb::error::Result<()> {
    let named = |name: &str| IndexOptions::builder().name(name.to_owned()).build();
    messages
        .create_indexes([
            IndexModel::builder().keys(doc! { "state": 1, "send_at": 1 }).options(named("due")).build(),
            IndexModel::builder()
                .keys(doc! { "program_id": 1, "created_at": -1 })
                .options(named("program_created"))
                .build(),
        ])
        .await?;
    sends
        .create_index(
            IndexModel::builder()
                .keys(doc! { "message_id": 1, "apple": 1, "google": 1 })
                .options(named("states"))
                .build(),
        )
        .await?;
    Ok(())
}

fn corrupt(e: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(format!("message: {e}"))
}

fn message_from(d: &Document) -> StoreResult<Message> {
    let mut m: Message = serde_json::from_str(d.get_str("body").map_err(corrupt)?).map_err(corrupt)?;
    let state = d.get_str("state").map_err(corrupt)?;
    m.state = MessageState::parse(state).ok_or_else(|| corrupt(format!("state {state}")))?;
    m.attempts = u32::try_from(d.get_i64("attempts").map_err(corrupt)?).unwrap_or(u32::MAX);
    m.lease_until = from_millis(d.get_i64("lease_until").map_err(corrupt)?)?;
    Ok(m)
}

fn body(m: &Message) -> StoreResult<String> {
    serde_json::to_string(m).map_err(corrupt)
}

fn send_state(d: &Document, field: &str) -> StoreResult<SendState> {
    let s = d.get_str(field).map_err(corrupt)?;
    SendState::parse(s).ok_or_else(|| corrupt(format!("{field} {s}")))
}

fn send_id(message_id: &str, serial: &str) -> String {
    format!("{message_id}:{serial}")
}

#[async_trait]
impl MessageStore for MongoStore {
    async fn insert_message(&self, m: &Message) -> StoreResult<()> {
        self.faults.step()?;
        self.messages
            .insert_one(doc! {
                "_id": &m.id,
                "program_id": &m.program_id,
                "state": m.state.as_str(),
                "attempts": i64::from(m.attempts),
                "lease_until": millis(m.lease_until),
                "send_at": millis(m.send_at),
                "created_at": millis(m.created_at),
                "body": body(m)?,
            })
            .await
            .map_err(mongo)?;
        Ok(())
    }

    async fn message(&self, id: &str) -> StoreResult<Option<Message>> {
        self.faults.step()?;
        let found = self.messages.find_one(doc! { "_id": id }).await.map_err(mongo)?;
        found.as_ref().map(message_from).transpose()
    }

    async fn messages(&self, program_id: Option<&str>, limit: usize) -> StoreResult<Vec<Message>> {
        self.faults.step()?;
        let filter = match program_id {
            Some(p) => doc! { "program_id": p },
            None => doc! {},
        };
        let docs: Vec<Document> = self
            .messages
            .find(filter)
            .sort(doc! { "created_at": -1, "_id": -1 })
            .limit(i64::try_from(limit).unwrap_or(i64::MAX))
            .await
            .map_err(mongo)?
            .try_collect()
            .await
            .map_err(mongo)?;
        docs.iter().map(message_from).collect()
    }

    async fn take_message(&self, now: DateTime<Utc>, lease_until: DateTime<Utc>) -> StoreResult<Option<Message>> {
        self.faults.step()?;
        let taken = self
            .messages
            .find_one_and_update(
                doc! {
                    "state": { "$in": ["scheduled", "sending"] },
                    "send_at": { "$lte": millis(now) },
                    "lease_until": { "$lte": millis(now) },
                },
                doc! { "$inc": { "attempts": 1_i64 }, "$set": { "lease_until": millis(lease_until) } },
            )
            .sort(doc! { "lease_until": 1, "_id": 1 })
            .return_document(ReturnDocument::After)
            .await
            .map_err(mongo)?;
        taken.as_ref().map(message_from).transpose()
    }

    async fn save_message(&self, m: &Message) -> StoreResult<bool> {
        self.faults.step()?;
        let result = self
            .messages
            .update_one(
                doc! { "_id": &m.id, "attempts": i64::from(m.attempts), "state": { "$ne": "cancelled" } },
                doc! { "$set": { "state": m.state.as_str(), "lease_until": millis(m.lease_until), "body": body(m)? } },
            )
            .await
            .map_err(mongo)?;
        Ok(result.matched_count == 1)
    }

    async fn cancel_message(&self, id: &str, now: DateTime<Utc>) -> StoreResult<bool> {
        let Some(mut m) = self.message(id).await? else { return Ok(false) };
        if !m.state.runnable() {
            return Ok(false);
        }
        m.state = MessageState::Cancelled;
        m.finished_at = Some(now);
        m.updated_at = now;
        self.faults.step()?;
        let result = self
            .messages
            .update_one(
                doc! { "_id": id, "state": { "$in": ["scheduled", "sending"] } },
                doc! { "$set": { "state": "cancelled", "body": body(&m)? } },
            )
            .await
            .map_err(mongo)?;
        Ok(result.matched_count == 1)
    }

    async fn record_sends(&self, sends: &[MessageSend]) -> StoreResult<()> {
        if sends.is_empty() {
            return Ok(());
        }
        let docs: Vec<Document> = sends
            .iter()
            .map(|s| {
                doc! {
                    "_id": send_id(&s.message_id, &s.serial),
                    "message_id": &s.message_id,
                    "serial": &s.serial,
                    "apple": s.apple.as_str(),
                    "google": s.google.as_str(),
                    "at": millis(s.at),
                }
            })
            .collect();
        self.faults.step()?;
        // One unordered insert: records already written (a batch run again) stay as they are.
        match self.message_sends.insert_many(docs).ordered(false).await {
            Ok(_) => Ok(()),
            Err(e) if super::webhooks::only_duplicates(&e) => Ok(()),
            Err(e) => Err(mongo(e)),
        }
    }

    async fn message_send(&self, message_id: &str, serial: &str) -> StoreResult<Option<MessageSend>> {
        self.faults.step()?;
        let Some(d) = self.message_sends.find_one(doc! { "_id": send_id(message_id, serial) }).await.map_err(mongo)?
        else {
            return Ok(None);
        };
        Ok(Some(MessageSend {
            message_id: message_id.to_owned(),
            serial: serial.to_owned(),
            apple: send_state(&d, "apple")?,
            google: send_state(&d, "google")?,
            at: from_millis(d.get_i64("at").map_err(corrupt)?)?,
        }))
    }

    async fn settle_send(&self, message_id: &str, serial: &str, wallet: Wallet, to: SendState) -> StoreResult<bool> {
        self.faults.step()?;
        let field = wallet.as_str();
        let mut filter = doc! { "_id": send_id(message_id, serial) };
        filter.insert(field, "queued");
        let mut set = Document::new();
        set.insert(field, to.as_str());
        let result = self.message_sends.update_one(filter, doc! { "$set": set }).await.map_err(mongo)?;
        Ok(result.modified_count == 1)
    }

    async fn send_counts(&self, message_id: &str) -> StoreResult<SendCounts> {
        self.faults.step()?;
        let groups: Vec<Document> = self
            .message_sends
            .aggregate([
                doc! { "$match": { "message_id": message_id } },
                doc! { "$group": { "_id": { "apple": "$apple", "google": "$google" }, "n": { "$sum": 1_i64 } } },
            ])
            .await
            .map_err(mongo)?
            .try_collect()
            .await
            .map_err(mongo)?;
        let mut counts = SendCounts::default();
        for g in &groups {
            let key = g.get_document("_id").map_err(corrupt)?;
            let n = match g.get("n") {
                Some(bson::Bson::Int64(n)) => u64::try_from(*n).unwrap_or(0),
                Some(bson::Bson::Int32(n)) => u64::try_from(*n).unwrap_or(0),
                _ => 0,
            };
            counts.cards += n;
            counts.add(Wallet::Apple, send_state(key, "apple")?, n);
            counts.add(Wallet::Google, send_state(key, "google")?, n);
        }
        Ok(counts)
    }

    async fn reach(&self, serials: &[&str]) -> StoreResult<HashMap<String, Reach>> {
        self.faults.step()?;
        let mut reach: HashMap<String, Reach> = HashMap::new();
        if serials.is_empty() {
            return Ok(reach);
        }
        let devices: Vec<Document> = self
            .registrations
            .clone_with_type::<Document>()
            .find(doc! { "serial": { "$in": serials } })
            .projection(doc! { "serial": 1, "_id": 0 })
            .await
            .map_err(mongo)?
            .try_collect()
            .await
            .map_err(mongo)?;
        for d in devices {
            let serial = d.get_str("serial").map_err(|e| StoreError::Corrupt(format!("registration: {e}")))?;
            reach.entry(serial.to_owned()).or_default().devices += 1;
        }
        let google: Vec<Document> = self
            .google_sync
            .find(doc! { "_id": { "$in": serials }, "version": { "$gt": 0_i64 } })
            .projection(doc! { "_id": 1 })
            .await
            .map_err(mongo)?
            .try_collect()
            .await
            .map_err(mongo)?;
        for d in google {
            let serial = d.get_str("_id").map_err(|e| StoreError::Corrupt(format!("google_sync: {e}")))?;
            reach.entry(serial.to_owned()).or_default().google_object = true;
        }
        let saved: Vec<Document> = self
            .db
            .collection::<Document>("google_wallet_state")
            .find(doc! { "_id": { "$in": serials }, "saved": true })
            .projection(doc! { "_id": 1 })
            .await
            .map_err(mongo)?
            .try_collect()
            .await
            .map_err(mongo)?;
        for d in saved {
            let serial = d.get_str("_id").map_err(|e| StoreError::Corrupt(format!("google_wallet_state: {e}")))?;
            reach.entry(serial.to_owned()).or_default().google_saved = true;
        }
        Ok(reach)
    }
}
