//! Outgoing events in the MongoDB store. An event is pushed onto its card document's `events`
//! list by the same single-document update that commits the change (so it exists exactly when
//! the change does, without transactions); fanning out copies it into `webhook_deliveries` and
//! then pulls it from the card, the same order as settling ledger entries.

use async_trait::async_trait;
use bson::{Bson, Document, doc};
use chrono::{DateTime, Utc};
use futures_util::TryStreamExt;
use mongodb::IndexModel;
use mongodb::options::IndexOptions;

use super::{MongoStore, card_state, mongo};
use crate::domain::{Card, SerialNumber};
use crate::store::records::{CardRecord, from_millis, millis};
use crate::store::{
    DeliveryAttempt, DeliveryState, StoreError, StoreResult, WebhookDelivery, WebhookEndpoint, WebhookEvent,
    WebhookStore,
};

/// An event as it sits in a card's `events` list.
pub(in crate::store) fn event_doc(e: &WebhookEvent) -> Bson {
    Bson::Document(doc! {
        "_id": &e.id,
        "serial": e.serial.as_str(),
        "type": &e.kind,
        "position": e.position,
        "created_at": millis(e.created_at),
        "body": &e.body,
    })
}

pub(super) fn event_docs(events: &[WebhookEvent]) -> Vec<Bson> {
    events.iter().map(event_doc).collect()
}

fn corrupt(what: &str, e: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(format!("{what}: {e}"))
}

fn event_from(d: &Document) -> StoreResult<WebhookEvent> {
    let c = |e| corrupt("webhook event", e);
    Ok(WebhookEvent {
        id: d.get_str("_id").map_err(c)?.to_owned(),
        serial: SerialNumber::parse(d.get_str("serial").map_err(c)?).map_err(|e| corrupt("webhook event", e))?,
        kind: d.get_str("type").map_err(c)?.to_owned(),
        position: d.get_i64("position").map_err(c)?,
        created_at: from_millis(d.get_i64("created_at").map_err(c)?)?,
        body: d.get_str("body").map_err(c)?.to_owned(),
    })
}

pub(in crate::store) fn endpoint_doc(e: &WebhookEndpoint) -> Document {
    doc! {
        "_id": &e.id,
        "url": &e.url,
        "events": &e.events,
        "secret": &e.secret,
        "enabled": e.enabled,
        "created_at": millis(e.created_at),
    }
}

fn endpoint_from(d: &Document) -> StoreResult<WebhookEndpoint> {
    let c = |e| corrupt("webhook endpoint", e);
    Ok(WebhookEndpoint {
        id: d.get_str("_id").map_err(c)?.to_owned(),
        url: d.get_str("url").map_err(c)?.to_owned(),
        events: d.get_array("events").map_err(c)?.iter().filter_map(|b| b.as_str().map(str::to_owned)).collect(),
        secret: d.get_str("secret").map_err(c)?.to_owned(),
        enabled: d.get_bool("enabled").map_err(c)?,
        created_at: from_millis(d.get_i64("created_at").map_err(c)?)?,
    })
}

pub(in crate::store) fn delivery_doc(d: &WebhookDelivery) -> Document {
    doc! {
        "_id": &d.id,
        "event_id": &d.event_id,
        "endpoint_id": &d.endpoint_id,
        "serial": d.serial.as_str(),
        "type": &d.kind,
        "position": d.position,
        "body": &d.body,
        "state": d.state.as_str(),
        "attempts": i64::from(d.attempts),
        "next_attempt_at": millis(d.next_attempt_at),
        "give_up_at": millis(d.give_up_at),
        "last_status": d.last_status.map(i32::from),
        "last_error": d.last_error.as_deref(),
        "created_at": millis(d.created_at),
        "updated_at": millis(d.updated_at),
    }
}

fn delivery_from(d: &Document) -> StoreResult<WebhookDelivery> {
    let c = |e| corrupt("webhook delivery", e);
    let int = |field: &str| match d.get(field) {
        Some(Bson::Int32(v)) => Ok(Some(i64::from(*v))),
        Some(Bson::Int64(v)) => Ok(Some(*v)),
        Some(Bson::Null) | None => Ok(None),
        Some(other) => Err(corrupt("webhook delivery", format!("{field} is {other}"))),
    };
    Ok(WebhookDelivery {
        id: d.get_str("_id").map_err(c)?.to_owned(),
        event_id: d.get_str("event_id").map_err(c)?.to_owned(),
        endpoint_id: d.get_str("endpoint_id").map_err(c)?.to_owned(),
        serial: SerialNumber::parse(d.get_str("serial").map_err(c)?).map_err(|e| corrupt("webhook delivery", e))?,
        kind: d.get_str("type").map_err(c)?.to_owned(),
        position: d.get_i64("position").map_err(c)?,
        body: d.get_str("body").map_err(c)?.to_owned(),
        state: DeliveryState::parse(d.get_str("state").map_err(c)?)
            .ok_or_else(|| corrupt("webhook delivery", "unknown state"))?,
        attempts: u32::try_from(int("attempts")?.unwrap_or(0)).map_err(|e| corrupt("webhook delivery", e))?,
        next_attempt_at: from_millis(d.get_i64("next_attempt_at").map_err(c)?)?,
        give_up_at: from_millis(d.get_i64("give_up_at").map_err(c)?)?,
        last_status: int("last_status")?.and_then(|s| u16::try_from(s).ok()),
        last_error: d.get_str("last_error").ok().map(str::to_owned),
        created_at: from_millis(d.get_i64("created_at").map_err(c)?)?,
        updated_at: from_millis(d.get_i64("updated_at").map_err(c)?)?,
    })
}

/// Whether an insert failed only because some documents exist already.
pub(super) fn only_duplicates(e: &mongodb::error::Error) -> bool {
    use mongodb::error::{ErrorKind, WriteFailure};
    match e.kind.as_ref() {
        ErrorKind::Write(WriteFailure::WriteError(w)) => w.code == 11000,
        ErrorKind::InsertMany(m) => {
            m.write_concern_error.is_none()
                && m.write_errors.as_ref().is_some_and(|w| w.iter().all(|w| w.code == 11000))
        }
        _ => false,
    }
}

impl MongoStore {
    pub(super) async fn create_webhook_indexes(&self) -> mongodb::error::Result<()> {
        let named = |name: &str| IndexOptions::builder().name(name.to_owned()).build();
        self.webhook_deliveries
            .create_indexes([
                IndexModel::builder()
                    .keys(doc! { "serial": 1, "state": 1, "position": 1 })
                    .options(named("card"))
                    .build(),
                IndexModel::builder().keys(doc! { "state": 1, "next_attempt_at": 1 }).options(named("due")).build(),
                IndexModel::builder()
                    .keys(doc! { "endpoint_id": 1, "position": -1 })
                    .options(named("endpoint"))
                    .build(),
            ])
            .await?;
        self.cards
            .create_index(
                IndexModel::builder()
                    .keys(doc! { "events._id": 1 })
                    .options(IndexOptions::builder().name("events_id".to_owned()).sparse(true).build())
                    .build(),
            )
            .await?;
        Ok(())
    }
}

#[async_trait]
impl WebhookStore for MongoStore {
    async fn insert_webhook_endpoint(&self, e: &WebhookEndpoint) -> StoreResult<()> {
        self.faults.step()?;
        self.webhook_endpoints.insert_one(endpoint_doc(e)).await.map_err(mongo)?;
        Ok(())
    }

    async fn webhook_endpoint(&self, id: &str) -> StoreResult<Option<WebhookEndpoint>> {
        self.faults.step()?;
        let found = self.webhook_endpoints.find_one(doc! { "_id": id }).await.map_err(mongo)?;
        found.as_ref().map(endpoint_from).transpose()
    }

    async fn webhook_endpoints(&self) -> StoreResult<Vec<WebhookEndpoint>> {
        self.faults.step()?;
        let docs: Vec<Document> = self
            .webhook_endpoints
            .find(doc! {})
            .sort(doc! { "created_at": -1, "_id": 1 })
            .await
            .map_err(mongo)?
            .try_collect()
            .await
            .map_err(mongo)?;
        docs.iter().map(endpoint_from).collect()
    }

    async fn remove_webhook_endpoint(&self, id: &str) -> StoreResult<bool> {
        self.faults.step()?;
        let removed = self.webhook_endpoints.delete_one(doc! { "_id": id }).await.map_err(mongo)?;
        self.webhook_deliveries.delete_many(doc! { "endpoint_id": id }).await.map_err(mongo)?;
        Ok(removed.deleted_count == 1)
    }

    async fn update_card_emitting(
        &self,
        card: &Card,
        expected_version: i64,
        events: &[WebhookEvent],
    ) -> StoreResult<bool> {
        self.faults.step()?;
        let r = CardRecord::from(card);
        let result = self
            .cards
            .update_one(
                doc! { "_id": &r.serial, "version": expected_version },
                doc! { "$set": card_state(&r), "$push": { "events": { "$each": event_docs(events) } } },
            )
            .await
            .map_err(mongo)?;
        Ok(result.matched_count == 1)
    }

    async fn record_events(&self, events: &[WebhookEvent]) -> StoreResult<()> {
        for event in events {
            self.faults.step()?;
            self.cards
                .update_one(doc! { "_id": event.serial.as_str() }, doc! { "$push": { "events": event_doc(event) } })
                .await
                .map_err(mongo)?;
        }
        Ok(())
    }

    async fn events_to_fan_out(&self, limit: usize) -> StoreResult<Vec<WebhookEvent>> {
        self.faults.step()?;
        let cards: Vec<Document> = self
            .cards
            .find(doc! { "events._id": { "$exists": true } })
            .projection(doc! { "events": 1 })
            .limit(i64::try_from(limit).unwrap_or(i64::MAX))
            .await
            .map_err(mongo)?
            .try_collect()
            .await
            .map_err(mongo)?;
        let mut events = Vec::new();
        for card in &cards {
            let mut of_card = card
                .get_array("events")
                .map_err(|e| corrupt("card events", e))?
                .iter()
                .map(|b| b.as_document().ok_or_else(|| corrupt("card events", "not a document")).and_then(event_from))
                .collect::<StoreResult<Vec<_>>>()?;
            of_card.sort_by(|a, b| (a.position, &a.id).cmp(&(b.position, &b.id)));
            events.extend(of_card);
        }
        Ok(events)
    }

    async fn fan_out(&self, batch: &[(WebhookEvent, Vec<WebhookDelivery>)]) -> StoreResult<()> {
        let docs: Vec<Document> = batch.iter().flat_map(|(_, ds)| ds.iter().map(delivery_doc)).collect();
        if !docs.is_empty() {
            self.faults.step()?;
            match self.webhook_deliveries.insert_many(docs).ordered(false).await {
                Ok(_) => {}
                Err(e) if only_duplicates(&e) => {}
                Err(e) => return Err(mongo(e)),
            }
        }
        // Then off the cards' `events` lists, one update per card.
        let mut by_card: std::collections::BTreeMap<&str, Vec<&str>> = std::collections::BTreeMap::new();
        for (event, _) in batch {
            by_card.entry(event.serial.as_str()).or_default().push(event.id.as_str());
        }
        for (serial, ids) in by_card {
            self.faults.step()?;
            self.cards
                .update_one(doc! { "_id": serial }, doc! { "$pull": { "events": { "_id": { "$in": ids } } } })
                .await
                .map_err(mongo)?;
        }
        Ok(())
    }

    async fn card_pending_deliveries(&self, serial: &SerialNumber) -> StoreResult<Vec<WebhookDelivery>> {
        self.faults.step()?;
        let docs: Vec<Document> = self
            .webhook_deliveries
            .find(doc! { "serial": serial.as_str(), "state": "pending" })
            .sort(doc! { "position": 1, "_id": 1 })
            .await
            .map_err(mongo)?
            .try_collect()
            .await
            .map_err(mongo)?;
        docs.iter().map(delivery_from).collect()
    }

    async fn cards_with_due_deliveries(&self, now: DateTime<Utc>, limit: usize) -> StoreResult<Vec<SerialNumber>> {
        self.faults.step()?;
        let serials = self
            .webhook_deliveries
            .distinct("serial", doc! { "state": "pending", "next_attempt_at": { "$lte": millis(now) } })
            .await
            .map_err(mongo)?;
        serials
            .iter()
            .take(limit)
            .map(|b| {
                let s = b.as_str().ok_or_else(|| corrupt("delivery serial", "not a string"))?;
                SerialNumber::parse(s).map_err(|e| corrupt("delivery serial", e))
            })
            .collect()
    }

    async fn finish_delivery(&self, id: &str, attempts: u32, o: &DeliveryAttempt) -> StoreResult<bool> {
        self.faults.step()?;
        let result = self
            .webhook_deliveries
            .update_one(
                doc! { "_id": id, "attempts": i64::from(attempts) - 1, "state": "pending" },
                doc! { "$set": {
                    "state": o.state.as_str(),
                    "attempts": i64::from(attempts),
                    "next_attempt_at": millis(o.next_attempt_at),
                    "last_status": o.last_status.map(i32::from),
                    "last_error": o.last_error.as_deref(),
                    "updated_at": millis(o.at),
                } },
            )
            .await
            .map_err(mongo)?;
        Ok(result.matched_count == 1)
    }

    async fn webhook_delivery(&self, id: &str) -> StoreResult<Option<WebhookDelivery>> {
        self.faults.step()?;
        let found = self.webhook_deliveries.find_one(doc! { "_id": id }).await.map_err(mongo)?;
        found.as_ref().map(delivery_from).transpose()
    }

    async fn endpoint_deliveries(
        &self,
        endpoint_id: &str,
        state: Option<DeliveryState>,
        limit: usize,
    ) -> StoreResult<Vec<WebhookDelivery>> {
        self.faults.step()?;
        let mut filter = doc! { "endpoint_id": endpoint_id };
        if let Some(state) = state {
            filter.insert("state", state.as_str());
        }
        let docs: Vec<Document> = self
            .webhook_deliveries
            .find(filter)
            .sort(doc! { "position": -1, "_id": -1 })
            .limit(i64::try_from(limit).unwrap_or(i64::MAX))
            .await
            .map_err(mongo)?
            .try_collect()
            .await
            .map_err(mongo)?;
        docs.iter().map(delivery_from).collect()
    }

    async fn replay_delivery(&self, id: &str, now: DateTime<Utc>, give_up_at: DateTime<Utc>) -> StoreResult<bool> {
        self.faults.step()?;
        let result = self
            .webhook_deliveries
            .update_one(
                doc! { "_id": id, "state": "failed" },
                doc! { "$set": {
                    "state": "pending",
                    "attempts": 0_i64,
                    "next_attempt_at": millis(now),
                    "give_up_at": millis(give_up_at),
                    "updated_at": millis(now),
                } },
            )
            .await
            .map_err(mongo)?;
        Ok(result.matched_count == 1)
    }
}
