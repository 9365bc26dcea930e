//! Customer segments kept in the store (SPEC §4.8): each card's RFM scores and segment, and per
//! program what the last computation counted and who holds the right to compute next.
//!
//! Rows are keyed by (serial, computation time) and indexed over (program, computation time,
//! segment, serial), so a segment's members page by keyset whatever its size. A computation
//! writes a new row for every card under its own time, invisible to readers, and
//! [`SegmentStore::finish_segment_run`] makes that time the program's current one in a single
//! write: readers switch from one whole computation to the next, so members and counts always
//! agree, and a computation that dies half-way changes nothing anyone sees. The rows of earlier
//! computations are then deleted in bounded batches ([`SegmentStore::delete_stale_segments`]).
//!
//! The inputs are read by card keyset too ([`SegmentStore::segment_sources`]): a bounded page of
//! a program's cards with their purchase entries, so a run over a million cards holds one page
//! of entries at a time.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::StoreResult;
use crate::domain::{EntryKind, SerialNumber};
use crate::segments::rfm::{Scores, Segment};

/// A ledger entry that segments read: a purchase (`earn`, `stamp`) or a reversal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PurchaseFact {
    pub id: String,
    pub kind: EntryKind,
    pub at: DateTime<Utc>,
    /// Points or stamps of the entry.
    pub points: i64,
    /// The purchase in minor currency units, when the till gave it.
    pub purchase_amount: Option<i64>,
    /// For a reversal: the entry it undid.
    pub reverses: Option<String>,
}

/// One card of a program as segment computation reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentSource {
    pub serial: SerialNumber,
    pub created_at: DateTime<Utc>,
    /// Its purchase and reversal entries, in no particular order.
    pub facts: Vec<PurchaseFact>,
}

/// A card's scores and segment as of one computation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CardSegment {
    pub serial: SerialNumber,
    pub program_id: String,
    pub scores: Scores,
    pub segment: Segment,
    pub computed_at: DateTime<Utc>,
}

/// A program's segment bookkeeping: the last finished computation, a request to compute again,
/// and the lease of the node computing now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentRun {
    pub program_id: String,
    /// When the last finished computation started (its rows carry this time); `None` before
    /// the first one.
    pub computed_at: Option<DateTime<Utc>>,
    /// How long it took, in milliseconds.
    pub took_ms: i64,
    /// Cards scored.
    pub cards: u64,
    /// Cards per segment, in [`Segment::ALL`] order.
    pub counts: Vec<(Segment, u64)>,
    /// When someone asked for a computation ("Compute now"); due while later than `computed_at`.
    pub requested_at: Option<DateTime<Utc>>,
    /// Who holds the lease and until when (a past time: nobody).
    pub lease_holder: Option<String>,
    pub lease_until: DateTime<Utc>,
}

impl SegmentRun {
    /// Whether a computation is running somewhere (its lease has not ended at `now`).
    pub fn computing(&self, now: DateTime<Utc>) -> bool {
        self.lease_holder.is_some() && self.lease_until > now
    }

    /// Whether a computation was asked for and not yet done.
    pub fn requested(&self) -> bool {
        match (self.requested_at, self.computed_at) {
            (Some(requested), Some(computed)) => requested > computed,
            (Some(_), None) => true,
            (None, _) => false,
        }
    }
}

/// The result of a finished computation, saved with [`SegmentStore::finish_segment_run`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FinishedRun {
    pub program_id: String,
    pub computed_at: DateTime<Utc>,
    pub took_ms: i64,
    pub cards: u64,
    pub counts: Vec<(Segment, u64)>,
}

/// Every segment with a count, in [`Segment::ALL`] order (a missing one counts 0).
pub fn all_counts(counts: &[(Segment, u64)]) -> Vec<(Segment, u64)> {
    Segment::ALL.into_iter().map(|s| (s, counts.iter().find(|(c, _)| *c == s).map_or(0, |(_, n)| *n))).collect()
}

#[async_trait]
pub trait SegmentStore: Send + Sync + 'static {
    /// The program's cards after `after` in serial order, at most `limit`, deleted customers
    /// left out, each with its purchase and reversal entries.
    async fn segment_sources(
        &self,
        program_id: &str,
        after: Option<&SerialNumber>,
        limit: usize,
    ) -> StoreResult<Vec<SegmentSource>>;

    /// Writes these rows of a computation in progress (not visible until it is finished).
    async fn save_card_segments(&self, rows: &[CardSegment]) -> StoreResult<()>;

    /// Deletes at most `limit` of the program's rows of any computation other than `keep` (the
    /// current one, or one in progress under the caller's lease); returns how many.
    async fn delete_stale_segments(&self, program_id: &str, keep: DateTime<Utc>, limit: usize) -> StoreResult<u64>;

    /// Records a finished computation: its rows, counts and time become the program's.
    async fn finish_segment_run(&self, run: &FinishedRun) -> StoreResult<()>;

    /// The program's bookkeeping; `None` when segments were never computed nor asked for.
    async fn segment_run(&self, program_id: &str) -> StoreResult<Option<SegmentRun>>;

    /// Cards per segment as of the last computation, every segment in [`Segment::ALL`] order;
    /// empty before the first one.
    async fn segment_counts(&self, program_id: &str) -> StoreResult<Vec<(Segment, u64)>>;

    /// The serials of a segment's cards after `after_serial`, in serial order, at most `limit`
    /// (as of the last finished computation).
    async fn segment_members(
        &self,
        program_id: &str,
        segment: Segment,
        after_serial: Option<&str>,
        limit: usize,
    ) -> StoreResult<Vec<SerialNumber>>;

    /// A card's scores and segment as of its program's last finished computation, if it was scored.
    async fn card_segment(&self, serial: &SerialNumber) -> StoreResult<Option<CardSegment>>;

    /// Asks for a computation of the program ("Compute now").
    async fn request_segments(&self, program_id: &str, at: DateTime<Utc>) -> StoreResult<()>;

    /// Takes the program's computing lease for `holder` until `until` if nobody holds it at
    /// `now` (or `holder` does already): `true` for exactly one of competing nodes.
    async fn take_segment_lease(
        &self,
        program_id: &str,
        holder: &str,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> StoreResult<bool>;

    /// Gives the lease up, if `holder` still holds it.
    async fn release_segment_lease(&self, program_id: &str, holder: &str) -> StoreResult<()>;
}

/// Counts as stored: a JSON object of segment name to count.
pub(super) fn encode_counts(counts: &[(Segment, u64)]) -> String {
    let map: std::collections::BTreeMap<&str, u64> = counts.iter().map(|(s, n)| (s.as_str(), *n)).collect();
    serde_json::to_string(&map).unwrap_or_else(|_| "{}".to_owned())
}

pub(super) fn decode_counts(json: &str) -> Result<Vec<(Segment, u64)>, super::StoreError> {
    let map: std::collections::BTreeMap<String, u64> =
        serde_json::from_str(json).map_err(|e| super::StoreError::Corrupt(format!("segment counts: {e}")))?;
    let mut counts = Vec::with_capacity(map.len());
    for (name, n) in map {
        let segment =
            Segment::parse(&name).ok_or_else(|| super::StoreError::Corrupt(format!("segment name `{name}`")))?;
        counts.push((segment, n));
    }
    Ok(all_counts(&counts))
}

/// A stored segment name or score, checked.
pub(super) fn parse_segment(name: &str) -> Result<Segment, super::StoreError> {
    Segment::parse(name).ok_or_else(|| super::StoreError::Corrupt(format!("segment name `{name}`")))
}

pub(super) fn parse_scores(r: i64, f: i64, m: i64) -> Result<Scores, super::StoreError> {
    let score = |v: i64| {
        u8::try_from(v)
            .ok()
            .filter(|v| (1..=5).contains(v))
            .ok_or_else(|| super::StoreError::Corrupt(format!("segment score {v}")))
    };
    Ok(Scores { r: score(r)?, f: score(f)?, m: score(m)? })
}

/// The ledger kinds segments read.
pub(super) const FACT_KINDS: [&str; 3] = ["earn", "stamp", "reverse"];
