//! Customer segments in the MongoDB store: `card_segments` (one document per card and
//! computation, `_id` = "{serial}@{computation ms}", written with `insert_many` only) and
//! `segment_runs` (one document per program: the current computation, its counts, the lease).

use std::collections::{HashMap, HashSet};

use async_trait::async_trait;
use bson::{Bson, Document, doc};
use chrono::{DateTime, Utc};
use futures_util::TryStreamExt;
use mongodb::options::IndexOptions;
use mongodb::{Collection, Database, IndexModel};

use super::{MongoStore, duplicate_index, mongo, pending_entries};
use crate::domain::{EntryKind, SerialNumber};
use crate::segments::rfm::Segment;
use crate::store::records::{from_millis, millis};
use crate::store::segments::{
    CardSegment, FACT_KINDS, FinishedRun, PurchaseFact, SegmentRun, SegmentSource, SegmentStore, decode_counts,
    encode_counts, parse_scores, parse_segment,
};
use crate::store::{StoreError, StoreResult};

pub(super) async fn create_indexes(db: &Database) -> mongodb::error::Result<()> {
    let named = |name: &str| IndexOptions::builder().name(name.to_owned()).build();
    rows(db)
        .create_indexes([
            IndexModel::builder()
                .keys(doc! { "program_id": 1, "computed_at": 1, "segment": 1, "serial": 1 })
                .options(named("members"))
                .build(),
            IndexModel::builder().keys(doc! { "serial": 1, "computed_at": 1 }).options(named("serial")).build(),
        ])
        .await?;
    Ok(())
}

fn rows(db: &Database) -> Collection<Document> {
    db.collection("card_segments")
}

fn runs(db: &Database) -> Collection<Document> {
    db.collection("segment_runs")
}

fn corrupt(what: &str, e: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(format!("{what}: {e}"))
}

fn serial(s: &str) -> StoreResult<SerialNumber> {
    SerialNumber::parse(s).map_err(|e| corrupt("segment serial", e))
}

fn opt_millis(d: &Document, key: &str) -> StoreResult<Option<DateTime<Utc>>> {
    match d.get(key) {
        Some(Bson::Int64(ms)) => Ok(Some(from_millis(*ms)?)),
        Some(Bson::Null) | None => Ok(None),
        Some(other) => Err(corrupt(key, other)),
    }
}

fn run_from(d: &Document) -> StoreResult<SegmentRun> {
    let c = |e: bson::document::ValueAccessError| corrupt("segment run", e);
    let computed_at = opt_millis(d, "computed_at")?;
    Ok(SegmentRun {
        program_id: d.get_str("_id").map_err(c)?.to_owned(),
        computed_at,
        took_ms: d.get_i64("took_ms").unwrap_or(0),
        cards: u64::try_from(d.get_i64("cards").unwrap_or(0)).unwrap_or(0),
        counts: if computed_at.is_some() { decode_counts(d.get_str("counts").unwrap_or("{}"))? } else { Vec::new() },
        requested_at: opt_millis(d, "requested_at")?,
        lease_holder: d.get_str("lease_holder").ok().map(str::to_owned),
        lease_until: from_millis(d.get_i64("lease_until").unwrap_or(0))?,
    })
}

/// A new run document's fields that an update does not set (the lease too, unless it sets it).
fn run_defaults(lease: bool) -> Document {
    let mut defaults = doc! { "took_ms": 0_i64, "cards": 0_i64, "counts": "{}" };
    if lease {
        defaults.insert("lease_until", 0_i64);
    }
    defaults
}

impl MongoStore {
    /// The program's current computation time, if any.
    async fn current_computation(&self, program_id: &str) -> StoreResult<Option<i64>> {
        let run = runs(&self.db)
            .find_one(doc! { "_id": program_id })
            .projection(doc! { "computed_at": 1 })
            .await
            .map_err(mongo)?;
        Ok(run.and_then(|d| d.get_i64("computed_at").ok()))
    }
}

#[async_trait]
impl SegmentStore for MongoStore {
    async fn segment_sources(
        &self,
        program_id: &str,
        after: Option<&SerialNumber>,
        limit: usize,
    ) -> StoreResult<Vec<SegmentSource>> {
        self.faults.step()?;
        let after = after.map(|s| s.as_str()).unwrap_or("");
        // The cards with their pending entries first, then the ledger collection: an entry being
        // settled meanwhile is in one or the other (see `docs/architecture.md`).
        let cards: Vec<Document> = self
            .cards
            .find(doc! { "program_id": program_id, "_id": { "$gt": after }, "status": { "$ne": "deleted" } })
            .projection(doc! { "_id": 1, "created_at": 1, "pending": 1 })
            .sort(doc! { "_id": 1 })
            .limit(i64::try_from(limit).unwrap_or(i64::MAX))
            .await
            .map_err(mongo)?
            .try_collect()
            .await
            .map_err(mongo)?;
        let mut sources = Vec::with_capacity(cards.len());
        let mut seen: HashSet<String> = HashSet::new();
        let mut index: HashMap<String, usize> = HashMap::with_capacity(cards.len());
        for card in &cards {
            let id = card.get_str("_id").map_err(|e| corrupt("card", e))?;
            let created_at = from_millis(card.get_i64("created_at").map_err(|e| corrupt("card", e))?)?;
            let mut facts = Vec::new();
            for entry in pending_entries(card)? {
                if FACT_KINDS.contains(&entry.kind.as_str()) && seen.insert(entry.id.clone()) {
                    facts.push(fact(
                        &entry.id,
                        &entry.kind,
                        entry.points,
                        entry.purchase_amount,
                        entry.reverses,
                        entry.created_at,
                    )?);
                }
            }
            index.insert(id.to_owned(), sources.len());
            sources.push(SegmentSource { serial: serial(id)?, created_at, facts });
        }
        if sources.is_empty() {
            return Ok(sources);
        }
        self.faults.step()?;
        let serials: Vec<&str> = index.keys().map(String::as_str).collect();
        let ledger: Collection<Document> = self.ledger.clone_with_type();
        let mut cursor = ledger
            .find(doc! { "serial": { "$in": serials }, "kind": { "$in": FACT_KINDS.to_vec() } })
            .projection(
                doc! { "serial": 1, "kind": 1, "points": 1, "purchase_amount": 1, "reverses": 1, "created_at": 1 },
            )
            .await
            .map_err(mongo)?;
        while let Some(d) = cursor.try_next().await.map_err(mongo)? {
            let c = |e: bson::document::ValueAccessError| corrupt("ledger entry", e);
            let id = d.get_str("_id").map_err(c)?;
            if !seen.insert(id.to_owned()) {
                continue;
            }
            let Some(&at) = index.get(d.get_str("serial").map_err(c)?) else { continue };
            let purchase_amount = d.get_i64("purchase_amount").ok();
            let reverses = d.get_str("reverses").ok().map(str::to_owned);
            let entry = fact(
                id,
                d.get_str("kind").map_err(c)?,
                d.get_i64("points").map_err(c)?,
                purchase_amount,
                reverses,
                d.get_i64("created_at").map_err(c)?,
            )?;
            sources[at].facts.push(entry);
        }
        Ok(sources)
    }

    async fn save_card_segments(&self, segments: &[CardSegment]) -> StoreResult<()> {
        if segments.is_empty() {
            return Ok(());
        }
        self.faults.step()?;
        let docs: Vec<Document> = segments
            .iter()
            .map(|s| {
                let at = millis(s.computed_at);
                doc! {
                    "_id": format!("{}@{at}", s.serial),
                    "serial": s.serial.as_str(),
                    "computed_at": at,
                    "program_id": &s.program_id,
                    "segment": s.segment.as_str(),
                    "r": i64::from(s.scores.r),
                    "f": i64::from(s.scores.f),
                    "m": i64::from(s.scores.m),
                }
            })
            .collect();
        match rows(&self.db).insert_many(docs).ordered(false).await {
            Ok(_) => Ok(()),
            // A row already written by this computation (a retried batch) is the same row.
            Err(e) if duplicate_index(&e).as_deref() == Some("_id_") => Ok(()),
            Err(e) => Err(mongo(e)),
        }
    }

    async fn delete_stale_segments(&self, program_id: &str, keep: DateTime<Utc>, limit: usize) -> StoreResult<u64> {
        self.faults.step()?;
        let stale: Vec<Document> = rows(&self.db)
            .find(doc! { "program_id": program_id, "computed_at": { "$ne": millis(keep) } })
            .projection(doc! { "_id": 1 })
            .limit(i64::try_from(limit).unwrap_or(i64::MAX))
            .await
            .map_err(mongo)?
            .try_collect()
            .await
            .map_err(mongo)?;
        if stale.is_empty() {
            return Ok(0);
        }
        let ids: Vec<Bson> = stale.into_iter().filter_map(|mut d| d.remove("_id")).collect();
        let deleted = rows(&self.db).delete_many(doc! { "_id": { "$in": ids } }).await.map_err(mongo)?;
        Ok(deleted.deleted_count)
    }

    async fn finish_segment_run(&self, finished: &FinishedRun) -> StoreResult<()> {
        self.faults.step()?;
        runs(&self.db)
            .update_one(
                doc! { "_id": &finished.program_id },
                doc! {
                    "$set": {
                        "computed_at": millis(finished.computed_at),
                        "took_ms": finished.took_ms,
                        "cards": i64::try_from(finished.cards).unwrap_or(i64::MAX),
                        "counts": encode_counts(&finished.counts),
                    },
                    "$setOnInsert": { "lease_until": 0_i64 },
                },
            )
            .upsert(true)
            .await
            .map_err(mongo)?;
        Ok(())
    }

    async fn segment_run(&self, program_id: &str) -> StoreResult<Option<SegmentRun>> {
        self.faults.step()?;
        let found = runs(&self.db).find_one(doc! { "_id": program_id }).await.map_err(mongo)?;
        found.as_ref().map(run_from).transpose()
    }

    async fn segment_counts(&self, program_id: &str) -> StoreResult<Vec<(Segment, u64)>> {
        Ok(self.segment_run(program_id).await?.map(|r| r.counts).unwrap_or_default())
    }

    async fn segment_members(
        &self,
        program_id: &str,
        segment: Segment,
        after_serial: Option<&str>,
        limit: usize,
    ) -> StoreResult<Vec<SerialNumber>> {
        self.faults.step()?;
        let Some(current) = self.current_computation(program_id).await? else { return Ok(Vec::new()) };
        let docs: Vec<Document> = rows(&self.db)
            .find(doc! {
                "program_id": program_id,
                "computed_at": current,
                "segment": segment.as_str(),
                "serial": { "$gt": after_serial.unwrap_or("") },
            })
            .projection(doc! { "serial": 1 })
            .sort(doc! { "serial": 1 })
            .limit(i64::try_from(limit).unwrap_or(i64::MAX))
            .await
            .map_err(mongo)?
            .try_collect()
            .await
            .map_err(mongo)?;
        docs.iter().map(|d| serial(d.get_str("serial").map_err(|e| corrupt("segment row", e))?)).collect()
    }

    async fn card_segment(&self, card: &SerialNumber) -> StoreResult<Option<CardSegment>> {
        self.faults.step()?;
        // At most two rows: the current computation's and one in progress.
        let found: Vec<Document> = rows(&self.db)
            .find(doc! { "serial": card.as_str() })
            .sort(doc! { "computed_at": -1 })
            .limit(3)
            .await
            .map_err(mongo)?
            .try_collect()
            .await
            .map_err(mongo)?;
        let Some(first) = found.first() else { return Ok(None) };
        let c = |e: bson::document::ValueAccessError| corrupt("segment row", e);
        let Some(current) = self.current_computation(first.get_str("program_id").map_err(c)?).await? else {
            return Ok(None);
        };
        let Some(row) = found.iter().find(|d| d.get_i64("computed_at").ok() == Some(current)) else { return Ok(None) };
        Ok(Some(CardSegment {
            serial: card.clone(),
            program_id: row.get_str("program_id").map_err(c)?.to_owned(),
            scores: parse_scores(
                row.get_i64("r").map_err(c)?,
                row.get_i64("f").map_err(c)?,
                row.get_i64("m").map_err(c)?,
            )?,
            segment: parse_segment(row.get_str("segment").map_err(c)?)?,
            computed_at: from_millis(current)?,
        }))
    }

    async fn request_segments(&self, program_id: &str, at: DateTime<Utc>) -> StoreResult<()> {
        self.faults.step()?;
        runs(&self.db)
            .update_one(
                doc! { "_id": program_id },
                doc! { "$set": { "requested_at": millis(at) }, "$setOnInsert": run_defaults(true) },
            )
            .upsert(true)
            .await
            .map_err(mongo)?;
        Ok(())
    }

    async fn take_segment_lease(
        &self,
        program_id: &str,
        holder: &str,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> StoreResult<bool> {
        self.faults.step()?;
        // Matches a free lease or the holder's own; otherwise the upsert's insert meets the
        // existing `_id` and fails, which means someone else holds it.
        let taken = runs(&self.db)
            .update_one(
                doc! {
                    "_id": program_id,
                    "$or": [{ "lease_until": { "$lte": millis(now) } }, { "lease_holder": holder }],
                },
                doc! {
                    "$set": { "lease_holder": holder, "lease_until": millis(until) },
                    "$setOnInsert": run_defaults(false),
                },
            )
            .upsert(true)
            .await;
        match taken {
            Ok(_) => Ok(true),
            Err(e) if duplicate_index(&e).is_some() => Ok(false),
            Err(e) => Err(mongo(e)),
        }
    }

    async fn release_segment_lease(&self, program_id: &str, holder: &str) -> StoreResult<()> {
        self.faults.step()?;
        runs(&self.db)
            .update_one(
                doc! { "_id": program_id, "lease_holder": holder },
                doc! { "$set": { "lease_holder": Bson::Null, "lease_until": 0_i64 } },
            )
            .await
            .map_err(mongo)?;
        Ok(())
    }
}

fn fact(
    id: &str,
    kind: &str,
    points: i64,
    purchase_amount: Option<i64>,
    reverses: Option<String>,
    at: i64,
) -> StoreResult<PurchaseFact> {
    let kind = EntryKind::parse(kind).ok_or_else(|| corrupt("entry kind", kind))?;
    Ok(PurchaseFact { id: id.to_owned(), kind, at: from_millis(at)?, points, purchase_amount, reverses })
}
