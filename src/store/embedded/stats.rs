//! The dashboard's aggregates in the embedded store: `day_stats` rows by (program, day), the
//! snapshot as JSON, and the reads that build them on the `ledger_program_created` and
//! `cards_program_tier` / `cards_program_activity` indexes.

use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, Utc};
use rusqlite::{OptionalExtension, params};

use super::{EmbeddedStore, sql};
use crate::domain::EntryKind;
use crate::store::records::{from_millis, millis};
use crate::store::stats::stored_zone as zone_of;
use crate::store::{DayStats, LedgerTotals, StatsSnapshot, StatsStore, StoreError, StoreResult, WalletTotals};

const DAY_FORMAT: &str = "%Y-%m-%d";

fn count(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

fn signed(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

#[async_trait]
impl StatsStore for EmbeddedStore {
    async fn ledger_totals(
        &self,
        program_id: &str,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> StoreResult<LedgerTotals> {
        let program_id = program_id.to_owned();
        self.read(move |conn| {
            let mut stmt = conn
                .prepare_cached(
                    "SELECT kind, points, rewards, purchase_amount FROM ledger INDEXED BY ledger_program_created \
                     WHERE program_id = ?1 AND created_at >= ?2 AND created_at < ?3",
                )
                .map_err(sql)?;
            let mut rows = stmt.query(params![program_id, millis(from), millis(to)]).map_err(sql)?;
            let mut totals = LedgerTotals::default();
            while let Some(row) = rows.next().map_err(sql)? {
                let kind: String = row.get(0).map_err(sql)?;
                let kind = EntryKind::parse(&kind).ok_or_else(|| StoreError::Corrupt(format!("entry kind {kind}")))?;
                totals.add(kind, row.get(1).map_err(sql)?, row.get(2).map_err(sql)?, row.get(3).map_err(sql)?);
            }
            Ok(totals)
        })
        .await
    }

    async fn first_entry_at(&self, program_id: &str) -> StoreResult<Option<DateTime<Utc>>> {
        let program_id = program_id.to_owned();
        let first: Option<i64> = self
            .read(move |conn| {
                conn.query_row("SELECT min(created_at) FROM ledger WHERE program_id = ?1", [program_id], |r| r.get(0))
                    .map_err(sql)
            })
            .await?;
        first.map(from_millis).transpose()
    }

    async fn put_day_stats(&self, program_id: &str, stats: &DayStats) -> StoreResult<()> {
        let program_id = program_id.to_owned();
        let day = stats.day.format(DAY_FORMAT).to_string();
        let (t, w, at, zone) = (stats.totals, stats.wallets, millis(stats.computed_at), stats.time_zone.name());
        self.write(move |tx, _| {
            tx.execute(
                "INSERT INTO day_stats (program_id, day, registrations, issued, redeemed, rewards_issued, \
                 rewards_redeemed, purchases, revenue, computed_at, apple_installed, apple_removed, \
                 google_installed, google_removed, time_zone) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15) \
                 ON CONFLICT (program_id, day) DO UPDATE SET registrations = ?3, issued = ?4, redeemed = ?5, \
                 rewards_issued = ?6, rewards_redeemed = ?7, purchases = ?8, revenue = ?9, computed_at = ?10, \
                 apple_installed = ?11, apple_removed = ?12, google_installed = ?13, google_removed = ?14, \
                 time_zone = ?15",
                params![
                    program_id,
                    day,
                    signed(t.registrations),
                    t.issued,
                    t.redeemed,
                    t.rewards_issued,
                    t.rewards_redeemed,
                    signed(t.purchases),
                    t.revenue,
                    at,
                    signed(w.apple_installed),
                    signed(w.apple_removed),
                    signed(w.google_installed),
                    signed(w.google_removed),
                    zone
                ],
            )
            .map_err(sql)?;
            Ok(())
        })
        .await
    }

    async fn day_stats(&self, program_id: &str, from: NaiveDate, to: NaiveDate) -> StoreResult<Vec<DayStats>> {
        let program_id = program_id.to_owned();
        let (from, to) = (from.format(DAY_FORMAT).to_string(), to.format(DAY_FORMAT).to_string());
        type Row = (String, [i64; 7], i64, [Option<i64>; 4], Option<String>);
        let rows: Vec<Row> = self
            .read(move |conn| {
                let mut stmt = conn
                    .prepare_cached(
                        "SELECT day, registrations, issued, redeemed, rewards_issued, rewards_redeemed, purchases, \
                         revenue, computed_at, apple_installed, apple_removed, google_installed, google_removed, \
                         time_zone FROM day_stats WHERE program_id = ?1 AND day >= ?2 AND day <= ?3 \
                         ORDER BY day",
                    )
                    .map_err(sql)?;
                let rows = stmt
                    .query_map(params![program_id, from, to], |r| {
                        Ok((
                            r.get(0)?,
                            [r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?, r.get(6)?, r.get(7)?],
                            r.get(8)?,
                            [r.get(9)?, r.get(10)?, r.get(11)?, r.get(12)?],
                            r.get(13)?,
                        ))
                    })
                    .map_err(sql)?;
                rows.collect::<rusqlite::Result<Vec<_>>>().map_err(sql)
            })
            .await?;
        rows.into_iter()
            .map(|(day, n, at, w, zone)| {
                // A row written before the wallet columns existed counts as never computed.
                let at = if w[0].is_none() { 0 } else { at };
                let w = w.map(|n| count(n.unwrap_or(0)));
                Ok(DayStats {
                    day: NaiveDate::parse_from_str(&day, DAY_FORMAT)
                        .map_err(|_| StoreError::Corrupt(format!("stats day {day}")))?,
                    totals: LedgerTotals {
                        registrations: count(n[0]),
                        issued: n[1],
                        redeemed: n[2],
                        rewards_issued: n[3],
                        rewards_redeemed: n[4],
                        purchases: count(n[5]),
                        revenue: n[6],
                    },
                    wallets: WalletTotals {
                        apple_installed: w[0],
                        apple_removed: w[1],
                        google_installed: w[2],
                        google_removed: w[3],
                    },
                    computed_at: from_millis(at)?,
                    time_zone: zone_of(zone.as_deref())?,
                })
            })
            .collect()
    }

    async fn count_active_cards(&self, program_id: &str, since: DateTime<Utc>) -> StoreResult<u64> {
        let program_id = program_id.to_owned();
        let n: i64 = self
            .read(move |conn| {
                conn.query_row(
                    "SELECT count(*) FROM cards INDEXED BY cards_program_activity \
                     WHERE program_id = ?1 AND activity_at >= ?2",
                    params![program_id, millis(since)],
                    |r| r.get(0),
                )
                .map_err(sql)
            })
            .await?;
        Ok(count(n))
    }

    async fn count_tier_cards(&self, program_id: &str, tier: &str) -> StoreResult<u64> {
        let (program_id, tier) = (program_id.to_owned(), tier.to_owned());
        let n: i64 = self
            .read(move |conn| {
                conn.query_row(
                    "SELECT count(*) FROM cards INDEXED BY cards_program_tier \
                     WHERE program_id = ?1 AND tier = ?2 AND status <> 'deleted'",
                    params![program_id, tier],
                    |r| r.get(0),
                )
                .map_err(sql)
            })
            .await?;
        Ok(count(n))
    }

    async fn put_stats_snapshot(&self, snapshot: &StatsSnapshot) -> StoreResult<()> {
        let body = serde_json::to_string(snapshot).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let program_id = snapshot.program_id.clone();
        self.write(move |tx, _| {
            tx.execute(
                "INSERT INTO stats_snapshots (program_id, body) VALUES (?1, ?2) \
                 ON CONFLICT (program_id) DO UPDATE SET body = ?2",
                params![program_id, body],
            )
            .map_err(sql)?;
            Ok(())
        })
        .await
    }

    async fn stats_snapshot(&self, program_id: &str) -> StoreResult<Option<StatsSnapshot>> {
        let program_id = program_id.to_owned();
        let body: Option<String> = self
            .read(move |conn| {
                conn.query_row("SELECT body FROM stats_snapshots WHERE program_id = ?1", [program_id], |r| r.get(0))
                    .optional()
                    .map_err(sql)
            })
            .await?;
        body.map(|b| serde_json::from_str(&b).map_err(|e| StoreError::Corrupt(format!("stats snapshot: {e}"))))
            .transpose()
    }
}
