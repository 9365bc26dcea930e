//! The dashboard's aggregates in MongoDB: `day_stats` documents keyed by program and day, the
//! snapshot as JSON under the program's id, and the reads that build them on the ledger's
//! `program_created` and the cards' `program_tier` / `program_activity` indexes.

use async_trait::async_trait;
use bson::{Bson, Document, doc};
use chrono::{DateTime, NaiveDate, Utc};
use futures_util::TryStreamExt;
use mongodb::options::IndexOptions;
use mongodb::{Collection, IndexModel};

use super::{MongoStore, mongo};
use crate::domain::EntryKind;
use crate::store::records::{from_millis, millis};
use crate::store::stats::stored_zone;
use crate::store::{DayStats, LedgerTotals, StatsSnapshot, StatsStore, StoreError, StoreResult, WalletTotals};

const DAY_FORMAT: &str = "%Y-%m-%d";

pub(super) async fn create_indexes(db: &mongodb::Database) -> mongodb::error::Result<()> {
    let named = |name: &str| IndexOptions::builder().name(name.to_owned()).build();
    db.collection::<Document>("ledger")
        .create_index(
            IndexModel::builder()
                .keys(doc! { "program_id": 1, "created_at": 1 })
                .options(named("program_created"))
                .build(),
        )
        .await?;
    db.collection::<Document>("cards")
        .create_index(
            IndexModel::builder()
                .keys(doc! { "program_id": 1, "tier": 1, "status": 1 })
                .options(named("program_tier"))
                .build(),
        )
        .await?;
    db.collection::<Document>("day_stats")
        .create_index(
            IndexModel::builder().keys(doc! { "program_id": 1, "day": 1 }).options(named("program_day")).build(),
        )
        .await?;
    Ok(())
}

/// A number field as written by either driver type (absent or null: 0).
fn number(d: &Document, key: &str) -> i64 {
    match d.get(key) {
        Some(Bson::Int64(n)) => *n,
        Some(Bson::Int32(n)) => i64::from(*n),
        Some(Bson::Double(n)) => *n as i64,
        _ => 0,
    }
}

fn count(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

fn signed(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

impl MongoStore {
    fn day_stats_collection(&self) -> Collection<Document> {
        self.db.collection("day_stats")
    }

    fn snapshots_collection(&self) -> Collection<Document> {
        self.db.collection("stats_snapshots")
    }
}

#[async_trait]
impl StatsStore for MongoStore {
    async fn ledger_totals(
        &self,
        program_id: &str,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> StoreResult<LedgerTotals> {
        self.faults.step()?;
        let ledger: Collection<Document> = self.db.collection("ledger");
        let filter = doc! { "program_id": program_id, "created_at": { "$gte": millis(from), "$lt": millis(to) } };
        let mut cursor = ledger
            .find(filter)
            .projection(doc! { "_id": 0, "kind": 1, "points": 1, "rewards": 1, "purchase_amount": 1 })
            .batch_size(10_000)
            .await
            .map_err(mongo)?;
        let mut totals = LedgerTotals::default();
        while let Some(d) = cursor.try_next().await.map_err(mongo)? {
            let kind = d.get_str("kind").map_err(|e| StoreError::Corrupt(format!("entry kind: {e}")))?;
            let kind = EntryKind::parse(kind).ok_or_else(|| StoreError::Corrupt(format!("entry kind {kind}")))?;
            let amount = match d.get("purchase_amount") {
                None | Some(Bson::Null) => None,
                Some(_) => Some(number(&d, "purchase_amount")),
            };
            totals.add(kind, number(&d, "points"), number(&d, "rewards"), amount);
        }
        Ok(totals)
    }

    async fn first_entry_at(&self, program_id: &str) -> StoreResult<Option<DateTime<Utc>>> {
        self.faults.step()?;
        let ledger: Collection<Document> = self.db.collection("ledger");
        let first = ledger
            .find_one(doc! { "program_id": program_id })
            .sort(doc! { "program_id": 1, "created_at": 1 })
            .projection(doc! { "_id": 0, "created_at": 1 })
            .await
            .map_err(mongo)?;
        first.map(|d| from_millis(number(&d, "created_at"))).transpose()
    }

    async fn put_day_stats(&self, program_id: &str, stats: &DayStats) -> StoreResult<()> {
        self.faults.step()?;
        let day = stats.day.format(DAY_FORMAT).to_string();
        let t = stats.totals;
        let row = doc! {
            "program_id": program_id,
            "day": &day,
            "registrations": signed(t.registrations),
            "issued": t.issued,
            "redeemed": t.redeemed,
            "rewards_issued": t.rewards_issued,
            "rewards_redeemed": t.rewards_redeemed,
            "purchases": signed(t.purchases),
            "revenue": t.revenue,
            "computed_at": millis(stats.computed_at),
            "apple_installed": signed(stats.wallets.apple_installed),
            "apple_removed": signed(stats.wallets.apple_removed),
            "google_installed": signed(stats.wallets.google_installed),
            "google_removed": signed(stats.wallets.google_removed),
            "time_zone": stats.time_zone.name(),
        };
        self.day_stats_collection()
            .replace_one(doc! { "_id": format!("{program_id}/{day}") }, row)
            .upsert(true)
            .await
            .map_err(mongo)?;
        Ok(())
    }

    async fn day_stats(&self, program_id: &str, from: NaiveDate, to: NaiveDate) -> StoreResult<Vec<DayStats>> {
        self.faults.step()?;
        let filter = doc! {
            "program_id": program_id,
            "day": { "$gte": from.format(DAY_FORMAT).to_string(), "$lte": to.format(DAY_FORMAT).to_string() },
        };
        let docs: Vec<Document> = self
            .day_stats_collection()
            .find(filter)
            .sort(doc! { "program_id": 1, "day": 1 })
            .await
            .map_err(mongo)?
            .try_collect()
            .await
            .map_err(mongo)?;
        docs.iter()
            .map(|d| {
                let day = d.get_str("day").map_err(|e| StoreError::Corrupt(format!("stats day: {e}")))?;
                Ok(DayStats {
                    day: NaiveDate::parse_from_str(day, DAY_FORMAT)
                        .map_err(|_| StoreError::Corrupt(format!("stats day {day}")))?,
                    totals: LedgerTotals {
                        registrations: count(number(d, "registrations")),
                        issued: number(d, "issued"),
                        redeemed: number(d, "redeemed"),
                        rewards_issued: number(d, "rewards_issued"),
                        rewards_redeemed: number(d, "rewards_redeemed"),
                        purchases: count(number(d, "purchases")),
                        revenue: number(d, "revenue"),
                    },
                    wallets: WalletTotals {
                        apple_installed: count(number(d, "apple_installed")),
                        apple_removed: count(number(d, "apple_removed")),
                        google_installed: count(number(d, "google_installed")),
                        google_removed: count(number(d, "google_removed")),
                    },
                    // A row written before the wallet counts existed counts as never computed.
                    computed_at: if d.contains_key("apple_installed") {
                        from_millis(number(d, "computed_at"))?
                    } else {
                        DateTime::UNIX_EPOCH
                    },
                    time_zone: stored_zone(d.get_str("time_zone").ok())?,
                })
            })
            .collect()
    }

    async fn count_active_cards(&self, program_id: &str, since: DateTime<Utc>) -> StoreResult<u64> {
        self.faults.step()?;
        self.cards
            .count_documents(doc! { "program_id": program_id, "activity_at": { "$gte": millis(since) } })
            .await
            .map_err(mongo)
    }

    async fn count_tier_cards(&self, program_id: &str, tier: &str) -> StoreResult<u64> {
        self.faults.step()?;
        self.cards
            .count_documents(doc! { "program_id": program_id, "tier": tier, "status": { "$ne": "deleted" } })
            .await
            .map_err(mongo)
    }

    async fn put_stats_snapshot(&self, snapshot: &StatsSnapshot) -> StoreResult<()> {
        self.faults.step()?;
        let body = serde_json::to_string(snapshot).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        self.snapshots_collection()
            .replace_one(doc! { "_id": &snapshot.program_id }, doc! { "body": body })
            .upsert(true)
            .await
            .map_err(mongo)?;
        Ok(())
    }

    async fn stats_snapshot(&self, program_id: &str) -> StoreResult<Option<StatsSnapshot>> {
        self.faults.step()?;
        let found = self.snapshots_collection().find_one(doc! { "_id": program_id }).await.map_err(mongo)?;
        found
            .map(|d| {
                let body = d.get_str("body").map_err(|e| StoreError::Corrupt(format!("stats snapshot: {e}")))?;
                serde_json::from_str(body).map_err(|e| StoreError::Corrupt(format!("stats snapshot: {e}")))
            })
            .transpose()
    }
}
