//! The e-mail outbox in the MongoDB store: one document per mail, taken with a single
//! `findAndModify` so two nodes never take the same attempt.

use async_trait::async_trait;
use bson::{Bson, Document, doc};
use chrono::{DateTime, Utc};
use futures_util::TryStreamExt;
use mongodb::options::ReturnDocument;

use super::{MongoStore, mongo};
use crate::domain::SerialNumber;
use crate::store::records::{from_millis, millis};
use crate::store::{MailState, MailStore, OutboxMail, StoreError, StoreResult};

fn mail_from(d: &Document) -> StoreResult<OutboxMail> {
    let corrupt = |e: bson::document::ValueAccessError| StoreError::Corrupt(format!("mail: {e}"));
    let state = d.get_str("state").map_err(corrupt)?;
    Ok(OutboxMail {
        id: d.get_str("_id").map_err(corrupt)?.to_owned(),
        kind: d.get_str("kind").map_err(corrupt)?.to_owned(),
        serial: SerialNumber::parse(d.get_str("serial").map_err(corrupt)?)
            .map_err(|e| StoreError::Corrupt(e.to_string()))?,
        recipient: d.get_str("recipient").map_err(corrupt)?.to_owned(),
        locale: d.get_str("locale").map_err(corrupt)?.to_owned(),
        state: MailState::parse(state).ok_or_else(|| StoreError::Corrupt(format!("mail state {state}")))?,
        attempts: u32::try_from(d.get_i64("attempts").map_err(corrupt)?).unwrap_or(u32::MAX),
        next_attempt_at: from_millis(d.get_i64("next_attempt_at").map_err(corrupt)?)?,
        last_error: d.get_str("last_error").ok().map(str::to_owned),
        created_at: from_millis(d.get_i64("created_at").map_err(corrupt)?)?,
        updated_at: from_millis(d.get_i64("updated_at").map_err(corrupt)?)?,
    })
}

#[async_trait]
impl MailStore for MongoStore {
    async fn enqueue_mail(&self, m: &OutboxMail) -> StoreResult<()> {
        self.faults.step()?;
        self.mail_outbox
            .insert_one(doc! {
                "_id": &m.id,
                "kind": &m.kind,
                "serial": m.serial.as_str(),
                "recipient": &m.recipient,
                "locale": &m.locale,
                "state": m.state.as_str(),
                "attempts": i64::from(m.attempts),
                "next_attempt_at": millis(m.next_attempt_at),
                "last_error": m.last_error.as_deref().map_or(Bson::Null, |e| Bson::String(e.to_owned())),
                "created_at": millis(m.created_at),
                "updated_at": millis(m.updated_at),
            })
            .await
            .map_err(mongo)?;
        Ok(())
    }

    async fn take_due_mail(&self, now: DateTime<Utc>, lease_until: DateTime<Utc>) -> StoreResult<Option<OutboxMail>> {
        self.faults.step()?;
        let taken = self
            .mail_outbox
            .find_one_and_update(
                doc! { "state": "pending", "next_attempt_at": { "$lte": millis(now) } },
                doc! {
                    "$inc": { "attempts": 1_i64 },
                    "$set": { "next_attempt_at": millis(lease_until), "updated_at": millis(now) },
                },
            )
            .sort(doc! { "next_attempt_at": 1, "_id": 1 })
            .return_document(ReturnDocument::After)
            .await
            .map_err(mongo)?;
        taken.as_ref().map(mail_from).transpose()
    }

    async fn finish_mail(
        &self,
        id: &str,
        attempts: u32,
        state: MailState,
        next_attempt_at: DateTime<Utc>,
        last_error: Option<&str>,
        now: DateTime<Utc>,
    ) -> StoreResult<bool> {
        self.faults.step()?;
        let done = self
            .mail_outbox
            .update_one(
                doc! { "_id": id, "attempts": i64::from(attempts), "state": "pending" },
                doc! { "$set": {
                    "state": state.as_str(),
                    "next_attempt_at": millis(next_attempt_at),
                    "last_error": last_error.map_or(Bson::Null, |e| Bson::String(e.to_owned())),
                    "updated_at": millis(now),
                } },
            )
            .await
            .map_err(mongo)?;
        Ok(done.matched_count == 1)
    }

    async fn mail(&self, id: &str) -> StoreResult<Option<OutboxMail>> {
        self.faults.step()?;
        let found = self.mail_outbox.find_one(doc! { "_id": id }).await.map_err(mongo)?;
        found.as_ref().map(mail_from).transpose()
    }

    async fn mails_in_state(&self, state: MailState, limit: usize) -> StoreResult<Vec<OutboxMail>> {
        self.faults.step()?;
        let docs: Vec<Document> = self
            .mail_outbox
            .find(doc! { "state": state.as_str() })
            .sort(doc! { "updated_at": -1, "_id": 1 })
            .limit(i64::try_from(limit).unwrap_or(i64::MAX))
            .await
            .map_err(mongo)?
            .try_collect()
            .await
            .map_err(mongo)?;
        docs.iter().map(mail_from).collect()
    }

    async fn retry_mail(&self, id: &str, now: DateTime<Utc>) -> StoreResult<bool> {
        self.faults.step()?;
        let done = self
            .mail_outbox
            .update_one(
                doc! { "_id": id, "state": "failed" },
                doc! { "$set": {
                    "state": "pending",
                    "attempts": 0_i64,
                    "next_attempt_at": millis(now),
                    "updated_at": millis(now),
                } },
            )
            .await
            .map_err(mongo)?;
        Ok(done.matched_count == 1)
    }
}
