//! The dashboard's aggregates, kept up to date in the background so that the console's home
//! never scans the ledger: each program's days are added up from the ledger (a range read on the
//! ledger's (program, time) index, one day per read) and from the wallet events (installs and
//! removals, on their (program, time) index) into the store's `day_stats` rows, and the
//! counts that describe the present (active cards, cards per tier) into a snapshot.
//!
//! Days are the program's own: they begin at midnight in its time zone. A day is final once it
//! was computed [`FINAL_AFTER`] past its end, in the zone the program has now: entries and
//! wallet events carry the time they were written, so nothing lands in a day after that; such a
//! day is never read again. The days that are not final — today, yesterday until shortly after
//! midnight, days never computed (a new install, an upgrade of an old one), and every day when
//! the program's zone changed — are computed on every round, newest first, at most
//! [`DAYS_PER_ROUND`] per round. Every node may run this: the rows are replaced whole, so two
//! nodes computing the same day write the same row.

use std::collections::HashMap;
use std::time::Duration;

use chrono::{DateTime, NaiveDate, Utc};

use crate::domain::{Program, TimeZone};
use crate::store::{DayStats, StatsSnapshot, Store, StoreResult};
use crate::telemetry::error_chain;

/// How long after its end a day's row is computed once more and then kept for good.
pub const FINAL_AFTER: chrono::Duration = chrono::Duration::minutes(10);

/// The most days computed in one round, so that a store with years of history is caught up in
/// short rounds rather than one long one.
pub const DAYS_PER_ROUND: usize = 60;

/// The pause between rounds once everything is up to date.
pub const INTERVAL: Duration = Duration::from_secs(60);

/// What a round did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Round {
    /// Days computed (and stored) in this round.
    pub days: usize,
    /// Whether days remain that this round had no budget for.
    pub more: bool,
}

/// The first moment after `day` in `zone`: where the day ends.
pub fn end_of(zone: TimeZone, day: NaiveDate) -> DateTime<Utc> {
    day.succ_opt().map_or(DateTime::<Utc>::MAX_UTC, |next| zone.start_of(next))
}

/// Computes `day` (in `zone`) of `program_id` from the ledger and the wallet events, and stores
/// it.
pub async fn compute_day(
    store: &dyn Store,
    program_id: &str,
    zone: TimeZone,
    day: NaiveDate,
    now: DateTime<Utc>,
) -> StoreResult<()> {
    let (start, end) = (zone.start_of(day), end_of(zone, day));
    let totals = store.ledger_totals(program_id, start, end).await?;
    let wallets = store.wallet_totals(program_id, start, end).await?;
    store.put_day_stats(program_id, &DayStats { day, totals, wallets, computed_at: now, time_zone: zone }).await
}

/// Computes the present's counts of `program` and stores them.
pub async fn compute_snapshot(store: &dyn Store, program: &Program, now: DateTime<Utc>) -> StoreResult<StatsSnapshot> {
    let active_30 = store.count_active_cards(&program.id, now - chrono::Duration::days(30)).await?;
    let active_90 = store.count_active_cards(&program.id, now - chrono::Duration::days(90)).await?;
    let mut tiers = Vec::with_capacity(program.rules.tiers.len());
    for tier in &program.rules.tiers {
        tiers.push((tier.id.clone(), store.count_tier_cards(&program.id, &tier.id).await?));
    }
    let snapshot = StatsSnapshot { program_id: program.id.clone(), computed_at: now, active_30, active_90, tiers };
    store.put_stats_snapshot(&snapshot).await?;
    Ok(snapshot)
}

/// One round for one program: the days that are not final (newest first, at most `budget`),
/// then the snapshot.
pub async fn refresh_program(
    store: &dyn Store,
    program: &Program,
    now: DateTime<Utc>,
    budget: usize,
) -> StoreResult<Round> {
    let mut round = Round::default();
    let zone = program.time_zone;
    if let Some(first) = store.first_entry_at(&program.id).await? {
        let (first, today) = (zone.date_of(first), zone.date_of(now));
        // A row computed in another zone is another day: it counts as never computed.
        let computed: HashMap<NaiveDate, DateTime<Utc>> = store
            .day_stats(&program.id, first, today)
            .await?
            .into_iter()
            .filter(|d| d.time_zone == zone)
            .map(|d| (d.day, d.computed_at))
            .collect();
        let mut day = today;
        while day >= first {
            let is_final = computed.get(&day).is_some_and(|at| *at >= end_of(zone, day) + FINAL_AFTER);
            if !is_final {
                if round.days == budget {
                    round.more = true;
                    break;
                }
                compute_day(store, &program.id, zone, day, now).await?;
                round.days += 1;
            }
            let Some(before) = day.pred_opt() else { break };
            day = before;
        }
    }
    compute_snapshot(store, program, now).await?;
    Ok(round)
}

/// One round over every program: what the background task runs, and what tests and the
/// benchmark call to bring the aggregates up to date at once (with an unlimited `budget`).
pub async fn try_execute_task(store: &dyn Store, now: DateTime<Utc>, budget: usize) -> StoreResult<Round> {
    let mut total = Round::default();
    for program in store.programs().await? {
        let round = refresh_program(store, &program, now, budget.saturating_sub(total.days)).await?;
        total.days += round.days;
        total.more |= round.more;
    }
    Ok(total)
}

/// Keeps the aggregates up to date until dropped: a round every [`INTERVAL`], and the next round
/// at once while a long history is being caught up.
pub async fn run_forever(store: crate::store::DynStore, clock: std::sync::Arc<dyn crate::clock::Clock>) {
    loop {
        let pause = match try_execute_task(store.as_ref(), clock.now(), DAYS_PER_ROUND).await {
            Ok(round) if round.more => Duration::from_millis(200),
            Ok(_) => INTERVAL,
            Err(e) => {
                tracing::warn!(error = %error_chain(&e), "updating the dashboard's figures failed; trying again shortly");
                INTERVAL
            }
        };
        tokio::time::sleep(pause).await;
    }
}
