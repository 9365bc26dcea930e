//! Computing a program's segments from its ledger, in bounded steps.
//!
//! The program's cards are read a page at a time in serial order with their purchase entries
//! ([`SegmentStore::segment_sources`]) and reduced at once to one small [`Activity`] per card,
//! so memory holds one page of entries plus about a hundred bytes per card. Scoring needs the
//! whole population (quintiles), so it runs once over those activities, on the blocking pool.
//! The rows are then written a page at a time under the computation's own time, and one last
//! write makes that computation the program's current one (see [`crate::store::segments`]).
//! Between steps the computation renews its lease and yields, so neither the store nor the
//! event loop is held for long, whatever the number of cards.

use std::collections::HashSet;
use std::time::Instant;

use chrono::{DateTime, Duration, Utc};

use super::rfm::{self, Activity, Segment};
use crate::clock::Clock;
use crate::domain::{EntryKind, Program, SerialNumber};
use crate::store::segments::{CardSegment, FinishedRun, SegmentSource, all_counts};
use crate::store::{Store, StoreError};

/// The right to compute a program's segments, held in the store so one node computes at a time.
#[derive(Debug, Clone)]
pub struct Lease {
    /// Who holds it (random per computation).
    pub holder: String,
    /// How long it lasts from each renewal.
    pub length: Duration,
}

impl Lease {
    /// A lease for a new computation.
    pub fn new(length: Duration) -> Self {
        Self {
            holder: format!("seg_{}", crate::domain::tokens::random_string(b"abcdefghijkmnpqrstuvwxyz23456789", 16)),
            length,
        }
    }
}

/// How to compute.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    /// Purchases of the last this many days count for frequency and monetary value.
    pub window_days: u32,
    /// Cards read and written per step.
    pub batch: usize,
}

/// What a computation did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Computed {
    pub computed_at: DateTime<Utc>,
    pub cards: u64,
    pub counts: Vec<(Segment, u64)>,
    /// Pages read from the store (each at most `batch` cards).
    pub pages: u64,
    pub took_ms: i64,
}

#[derive(Debug, thiserror::Error)]
pub enum ComputeError {
    #[error("another node is computing this program's segments")]
    Busy,
    #[error("the computing lease was taken over by another node")]
    LeaseLost,
    #[error("the store failed while computing segments")]
    Store(#[from] StoreError),
    #[error("scoring failed: {0}")]
    Scoring(String),
}

/// A card's activity from its purchase entries: purchases that were refunded do not count;
/// frequency and monetary value count the window's purchases only, recency the last purchase
/// ever. Monetary value is the purchase amount, or the stamps of a stamp entry that has none.
///
/// A card that never bought counts its recency from its registration: a card opened yesterday
/// is "new", one opened long ago and never used is "lost".
pub fn activity(source: &SegmentSource, since: DateTime<Utc>) -> Activity {
    let refunded: HashSet<&str> =
        source.facts.iter().filter(|f| f.kind == EntryKind::Reverse).filter_map(|f| f.reverses.as_deref()).collect();
    let mut last: Option<DateTime<Utc>> = None;
    let (mut purchases, mut spent) = (0_u64, 0_i64);
    for fact in source.facts.iter().filter(|f| f.kind.is_purchase() && !refunded.contains(f.id.as_str())) {
        last = last.max(Some(fact.at));
        if fact.at >= since {
            purchases += 1;
            let value = fact.purchase_amount.unwrap_or(if fact.kind == EntryKind::Stamp { fact.points } else { 0 });
            spent = spent.saturating_add(value);
        }
    }
    Activity { last_purchase: last.or(Some(source.created_at)), purchases, spent }
}

/// Computes and stores the segments of `program`, taking `lease` first (and renewing it at
/// every step): [`ComputeError::Busy`] when another holder has it. The lease is given up at
/// the end, whatever the outcome.
pub async fn compute(
    store: &dyn Store,
    clock: &dyn Clock,
    program: &Program,
    lease: &Lease,
    options: Options,
) -> Result<Computed, ComputeError> {
    let now = clock.now();
    if !store.take_segment_lease(&program.id, &lease.holder, now, now + lease.length).await? {
        return Err(ComputeError::Busy);
    }
    let result = compute_holding(store, clock, program, lease, options).await;
    if let Err(e) = store.release_segment_lease(&program.id, &lease.holder).await {
        tracing::warn!(program = %program.id, error = %crate::telemetry::error_chain(&e), "giving up the segments lease failed; it ends by itself");
    }
    result
}

async fn renew(store: &dyn Store, clock: &dyn Clock, program: &Program, lease: &Lease) -> Result<(), ComputeError> {
    let now = clock.now();
    if store.take_segment_lease(&program.id, &lease.holder, now, now + lease.length).await? {
        Ok(())
    } else {
        Err(ComputeError::LeaseLost)
    }
}

async fn compute_holding(
    store: &dyn Store,
    clock: &dyn Clock,
    program: &Program,
    lease: &Lease,
    options: Options,
) -> Result<Computed, ComputeError> {
    let started = Instant::now();
    let batch = options.batch.max(1);
    // Each computation's rows carry its own time: strictly after the current one's.
    let mut computed_at = clock.now();
    if let Some(current) = store.segment_run(&program.id).await?.and_then(|r| r.computed_at) {
        computed_at = computed_at.max(current + Duration::milliseconds(1));
    }
    let since = computed_at - Duration::days(i64::from(options.window_days));

    let (mut serials, mut activities): (Vec<SerialNumber>, Vec<Activity>) = (Vec::new(), Vec::new());
    let mut after: Option<SerialNumber> = None;
    let mut pages = 0_u64;
    loop {
        let page = store.segment_sources(&program.id, after.as_ref(), batch).await?;
        let Some(last) = page.last() else { break };
        after = Some(last.serial.clone());
        pages += 1;
        for source in &page {
            activities.push(activity(source, since));
        }
        serials.extend(page.into_iter().map(|s| s.serial));
        renew(store, clock, program, lease).await?;
        tokio::task::yield_now().await;
    }

    let scores = tokio::task::spawn_blocking(move || rfm::score(&activities, computed_at))
        .await
        .map_err(|e| ComputeError::Scoring(e.to_string()))?;

    let mut counts = all_counts(&[]);
    for (serials, scores) in serials.chunks(batch).zip(scores.chunks(batch)) {
        let rows: Vec<CardSegment> = serials
            .iter()
            .zip(scores)
            .map(|(serial, scores)| {
                let segment = Segment::of(*scores);
                if let Some((_, n)) = counts.iter_mut().find(|(s, _)| *s == segment) {
                    *n += 1;
                }
                CardSegment {
                    serial: serial.clone(),
                    program_id: program.id.clone(),
                    scores: *scores,
                    segment,
                    computed_at,
                }
            })
            .collect();
        store.save_card_segments(&rows).await?;
        renew(store, clock, program, lease).await?;
        tokio::task::yield_now().await;
    }

    let took_ms = i64::try_from(started.elapsed().as_millis()).unwrap_or(i64::MAX);
    let cards = serials.len() as u64;
    renew(store, clock, program, lease).await?;
    store
        .finish_segment_run(&FinishedRun {
            program_id: program.id.clone(),
            computed_at,
            took_ms,
            cards,
            counts: counts.clone(),
        })
        .await?;
    // Earlier computations' rows (and those of one that died half-way) are no longer read.
    while store.delete_stale_segments(&program.id, computed_at, batch).await? > 0 {
        renew(store, clock, program, lease).await?;
        tokio::task::yield_now().await;
    }
    tracing::info!(program = %program.id, cards, pages, took_ms, "customer segments computed");
    Ok(Computed { computed_at, cards, counts, pages, took_ms })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::segments::PurchaseFact;

    fn fact(
        id: &str,
        kind: EntryKind,
        days_ago: i64,
        points: i64,
        amount: Option<i64>,
        now: DateTime<Utc>,
    ) -> PurchaseFact {
        PurchaseFact {
            id: id.into(),
            kind,
            at: now - Duration::days(days_ago),
            points,
            purchase_amount: amount,
            reverses: None,
        }
    }

    fn source(facts: Vec<PurchaseFact>, now: DateTime<Utc>) -> SegmentSource {
        SegmentSource { serial: SerialNumber::generate(), created_at: now - Duration::days(500), facts }
    }

    #[test]
    fn refunded_purchases_do_not_count_and_the_window_bounds_frequency_and_value_only() {
        let now = Utc::now();
        let mut refund = fact("r1", EntryKind::Reverse, 1, -50, None, now);
        refund.reverses = Some("t3".into());
        let card = source(
            vec![
                fact("t1", EntryKind::Earn, 400, 10, Some(10_000), now),
                fact("t2", EntryKind::Earn, 30, 5, Some(2_000), now),
                fact("t3", EntryKind::Earn, 2, 50, Some(9_000), now),
                refund,
            ],
            now,
        );

        let a = activity(&card, now - Duration::days(365));

        assert_eq!(a.purchases, 1, "t1 is outside the window, t3 was refunded");
        assert_eq!(a.spent, 2_000);
        assert_eq!(a.last_purchase, Some(now - Duration::days(30)), "the refunded purchase is not the last one");
        let old_only = source(vec![fact("t1", EntryKind::Earn, 400, 10, Some(10_000), now)], now);
        let a = activity(&old_only, now - Duration::days(365));
        assert_eq!((a.purchases, a.spent, a.last_purchase), (0, 0, Some(now - Duration::days(400))));
    }

    #[test]
    fn stamps_count_their_amount_or_else_their_stamps_and_a_card_that_never_bought_counts_from_registration() {
        let now = Utc::now();
        let stamps = source(
            vec![
                fact("s1", EntryKind::Stamp, 3, 2, None, now),
                fact("s2", EntryKind::Stamp, 1, 1, Some(450), now),
                fact("x", EntryKind::Adjust, 1, 40, None, now),
            ],
            now,
        );
        let a = activity(&stamps, now - Duration::days(365));
        assert_eq!((a.purchases, a.spent), (2, 2 + 450));

        let never = source(vec![], now);
        let a = activity(&never, now - Duration::days(365));
        assert_eq!((a.purchases, a.spent, a.last_purchase), (0, 0, Some(never.created_at)));
    }
}
