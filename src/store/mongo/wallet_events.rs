//! Wallet changes in the MongoDB store: `wallet_events` holds one document per change with the
//! change's id as `_id` (a repeated report is a duplicate key, so nothing is written twice), and
//! `google_wallet_state` one document per card, written after the change and only over an older
//! state. The counts of a span of time read the (program, time) index and count in the process.

use async_trait::async_trait;
use bson::{Document, doc};
use chrono::{DateTime, Utc};
use futures_util::TryStreamExt;
use mongodb::options::IndexOptions;
use mongodb::{Collection, Database, IndexModel};

use super::{MongoStore, duplicate_index, mongo};
use crate::domain::SerialNumber;
use crate::store::records::{from_millis, millis};
use crate::store::{
    GoogleWalletState, StoreError, StoreResult, Wallet, WalletChange, WalletEvent, WalletEventStore, WalletSource,
    WalletTotals,
};

const DAY_FORMAT: &str = "%Y-%m-%d";

fn events(db: &Database) -> Collection<Document> {
    db.collection("wallet_events")
}

fn google_states(db: &Database) -> Collection<Document> {
    db.collection("google_wallet_state")
}

pub(super) async fn create_indexes(db: &Database) -> mongodb::error::Result<()> {
    let named = |name: &str| IndexOptions::builder().name(name.to_owned()).build();
    events(db)
        .create_indexes([
            IndexModel::builder().keys(doc! { "program_id": 1, "at": 1 }).options(named("program_at")).build(),
            IndexModel::builder().keys(doc! { "serial": 1, "at": -1 }).options(named("serial_at")).build(),
        ])
        .await?;
    // The (program, day) index of earlier versions: the charts count by time now.
    if let Err(e) = events(db).drop_index("program_day").await {
        tracing::debug!(error = %e, "no (program, day) index of wallet changes to drop");
    }
    Ok(())
}

fn corrupt(what: &str, value: &str) -> StoreError {
    StoreError::Corrupt(format!("wallet change: {what} has an invalid value `{value}`"))
}

fn text<'a>(doc: &'a Document, field: &str) -> StoreResult<&'a str> {
    doc.get_str(field).map_err(|_| corrupt(field, "missing"))
}

fn event_from(doc: &Document) -> StoreResult<WalletEvent> {
    let (serial, wallet, change, source) =
        (text(doc, "serial")?, text(doc, "wallet")?, text(doc, "change")?, text(doc, "source")?);
    Ok(WalletEvent {
        id: text(doc, "_id")?.to_owned(),
        serial: SerialNumber::parse(serial).map_err(|_| corrupt("serial", serial))?,
        program_id: text(doc, "program_id")?.to_owned(),
        wallet: Wallet::parse(wallet).ok_or_else(|| corrupt("wallet", wallet))?,
        change: WalletChange::parse(change).ok_or_else(|| corrupt("change", change))?,
        at: from_millis(doc.get_i64("at").map_err(|_| corrupt("at", "missing"))?)?,
        source: WalletSource::parse(source).ok_or_else(|| corrupt("source", source))?,
    })
}

#[async_trait]
impl WalletEventStore for MongoStore {
    #[tracing::instrument(name = "store.record_wallet_event", skip_all)]
    async fn record_wallet_event(&self, event: &WalletEvent) -> StoreResult<bool> {
        self.faults.step()?;
        let at = millis(event.at);
        let document = doc! {
            "_id": event.id.as_str(),
            "serial": event.serial.as_str(),
            "program_id": event.program_id.as_str(),
            "wallet": event.wallet.as_str(),
            "change": event.change.as_str(),
            "at": at,
            "day": event.day().format(DAY_FORMAT).to_string(),
            "source": event.source.as_str(),
        };
        match events(&self.db).insert_one(document).await {
            Ok(_) => {}
            Err(e) if duplicate_index(&e).is_some() => return Ok(false),
            Err(e) => return Err(mongo(e)),
        }
        if event.wallet == Wallet::Google {
            let saved = event.change == WalletChange::Installed;
            // Matches the card's state only when it is older; when a later state is stored the
            // upsert tries to insert a second document with this `_id`, which is refused, and
            // that later state stays.
            let written = google_states(&self.db)
                .update_one(
                    doc! { "_id": event.serial.as_str(), "at": { "$lte": at } },
                    doc! { "$set": { "saved": saved, "at": at } },
                )
                .upsert(true)
                .await;
            match written {
                Ok(_) => {}
                Err(e) if duplicate_index(&e).is_some() => {}
                Err(e) => return Err(mongo(e)),
            }
        }
        Ok(true)
    }

    #[tracing::instrument(name = "store.wallet_totals", skip_all)]
    async fn wallet_totals(
        &self,
        program_id: &str,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> StoreResult<WalletTotals> {
        self.faults.step()?;
        let filter = doc! { "program_id": program_id, "at": { "$gte": millis(from), "$lt": millis(to) } };
        let mut cursor = events(&self.db)
            .find(filter)
            .projection(doc! { "_id": 0, "wallet": 1, "change": 1 })
            .await
            .map_err(mongo)?;
        let mut totals = WalletTotals::default();
        while let Some(doc) = cursor.try_next().await.map_err(mongo)? {
            let (wallet, change) = (text(&doc, "wallet")?, text(&doc, "change")?);
            totals.add(
                Wallet::parse(wallet).ok_or_else(|| corrupt("wallet", wallet))?,
                WalletChange::parse(change).ok_or_else(|| corrupt("change", change))?,
                1,
            );
        }
        Ok(totals)
    }

    async fn google_wallet_state(&self, serial: &SerialNumber) -> StoreResult<Option<GoogleWalletState>> {
        self.faults.step()?;
        let Some(doc) = google_states(&self.db).find_one(doc! { "_id": serial.as_str() }).await.map_err(mongo)? else {
            return Ok(None);
        };
        let saved = doc.get_bool("saved").map_err(|_| corrupt("saved", "missing"))?;
        let at = from_millis(doc.get_i64("at").map_err(|_| corrupt("at", "missing"))?)?;
        Ok(Some(GoogleWalletState { saved, at }))
    }

    async fn card_wallet_events(&self, serial: &SerialNumber, limit: usize) -> StoreResult<Vec<WalletEvent>> {
        self.faults.step()?;
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let cursor = events(&self.db)
            .find(doc! { "serial": serial.as_str() })
            .sort(doc! { "at": -1, "_id": -1 })
            .limit(limit)
            .await
            .map_err(mongo)?;
        let docs: Vec<Document> = cursor.try_collect().await.map_err(mongo)?;
        docs.iter().map(event_from).collect()
    }
}
