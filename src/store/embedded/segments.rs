//! Customer segments in the embedded store: `card_segments` (one row per card and computation)
//! and `segment_runs` (per program: the current computation, its counts, the lease).

use std::collections::HashMap;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rusqlite::{OptionalExtension, params};

use super::{EmbeddedStore, sql};
use crate::domain::{EntryKind, SerialNumber};
use crate::segments::rfm::Segment;
use crate::store::records::{from_millis, millis};
use crate::store::segments::{
    CardSegment, FACT_KINDS, FinishedRun, PurchaseFact, SegmentRun, SegmentSource, SegmentStore, decode_counts,
    encode_counts, parse_scores, parse_segment,
};
use crate::store::{StoreError, StoreResult};

fn serial(s: &str) -> StoreResult<SerialNumber> {
    SerialNumber::parse(s).map_err(|e| StoreError::Corrupt(format!("segment serial: {e}")))
}

type RunRow = (String, Option<i64>, i64, i64, String, Option<i64>, Option<String>, i64);

const RUN_COLUMNS: &str = "program_id, computed_at, took_ms, cards, counts, requested_at, lease_holder, lease_until";

fn run_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<RunRow> {
    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?, r.get(6)?, r.get(7)?))
}

fn run(
    (program_id, computed_at, took_ms, cards, counts, requested_at, lease_holder, lease_until): RunRow,
) -> StoreResult<SegmentRun> {
    Ok(SegmentRun {
        program_id,
        computed_at: computed_at.map(from_millis).transpose()?,
        took_ms,
        cards: u64::try_from(cards).unwrap_or(0),
        counts: if computed_at.is_some() { decode_counts(&counts)? } else { Vec::new() },
        requested_at: requested_at.map(from_millis).transpose()?,
        lease_holder,
        lease_until: from_millis(lease_until)?,
    })
}

type FactRow = (String, String, String, i64, Option<i64>, Option<String>, i64);

#[async_trait]
impl SegmentStore for EmbeddedStore {
    async fn segment_sources(
        &self,
        program_id: &str,
        after: Option<&SerialNumber>,
        limit: usize,
    ) -> StoreResult<Vec<SegmentSource>> {
        let program_id = program_id.to_owned();
        let after = after.map(|s| s.as_str().to_owned()).unwrap_or_default();
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let (cards, facts) = self
            .read(move |conn| {
                let mut stmt = conn
                    .prepare_cached(
                        "SELECT serial, created_at FROM cards WHERE program_id = ?1 AND serial > ?2 \
                         AND status != 'deleted' ORDER BY serial LIMIT ?3",
                    )
                    .map_err(sql)?;
                let cards = stmt
                    .query_map(params![program_id, after, limit], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))
                    .map_err(sql)?
                    .collect::<rusqlite::Result<Vec<_>>>()
                    .map_err(sql)?;
                let Some((last, _)) = cards.last() else { return Ok((cards, Vec::new())) };
                // The entries of the page's serial range, through the ledger's (serial, seq) key.
                let mut stmt = conn
                    .prepare_cached(&format!(
                        "SELECT serial, id, kind, points, purchase_amount, reverses, created_at FROM ledger \
                         WHERE serial > ?1 AND serial <= ?2 AND program_id = ?3 AND kind IN ('{}', '{}', '{}')",
                        FACT_KINDS[0], FACT_KINDS[1], FACT_KINDS[2]
                    ))
                    .map_err(sql)?;
                let facts = stmt
                    .query_map(params![after, last, program_id], |r| {
                        Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?, r.get(6)?))
                    })
                    .map_err(sql)?
                    .collect::<rusqlite::Result<Vec<FactRow>>>()
                    .map_err(sql)?;
                Ok((cards, facts))
            })
            .await?;
        let mut by_serial: HashMap<String, Vec<PurchaseFact>> = HashMap::new();
        for (serial, id, kind, points, purchase_amount, reverses, at) in facts {
            let kind = EntryKind::parse(&kind).ok_or_else(|| StoreError::Corrupt(format!("entry kind `{kind}`")))?;
            let fact = PurchaseFact { id, kind, at: from_millis(at)?, points, purchase_amount, reverses };
            by_serial.entry(serial).or_default().push(fact);
        }
        cards
            .into_iter()
            .map(|(s, created_at)| {
                let facts = by_serial.remove(&s).unwrap_or_default();
                Ok(SegmentSource { serial: serial(&s)?, created_at: from_millis(created_at)?, facts })
            })
            .collect()
    }

    async fn save_card_segments(&self, rows: &[CardSegment]) -> StoreResult<()> {
        let rows = rows.to_vec();
        self.write(move |conn, _| {
            let mut stmt = conn
                .prepare_cached(
                    "INSERT OR REPLACE INTO card_segments (serial, computed_at, program_id, segment, r, f, m) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                )
                .map_err(sql)?;
            for row in &rows {
                stmt.execute(params![
                    row.serial.as_str(),
                    millis(row.computed_at),
                    row.program_id,
                    row.segment.as_str(),
                    row.scores.r,
                    row.scores.f,
                    row.scores.m
                ])
                .map_err(sql)?;
            }
            Ok(())
        })
        .await
    }

    async fn delete_stale_segments(&self, program_id: &str, keep: DateTime<Utc>, limit: usize) -> StoreResult<u64> {
        let program_id = program_id.to_owned();
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.write(move |conn, _| {
            // Two ranges of the members index: the computations before `keep` and after it.
            let deleted = conn
                .execute(
                    "DELETE FROM card_segments WHERE rowid IN (SELECT rowid FROM card_segments \
                     WHERE program_id = ?1 AND (computed_at < ?2 OR computed_at > ?2) LIMIT ?3)",
                    params![program_id, millis(keep), limit],
                )
                .map_err(sql)?;
            Ok(deleted as u64)
        })
        .await
    }

    async fn finish_segment_run(&self, finished: &FinishedRun) -> StoreResult<()> {
        let finished = finished.clone();
        self.write(move |conn, _| {
            conn.execute(
                "INSERT INTO segment_runs (program_id, computed_at, took_ms, cards, counts) VALUES (?1, ?2, ?3, ?4, ?5) \
                 ON CONFLICT (program_id) DO UPDATE SET computed_at = excluded.computed_at, \
                 took_ms = excluded.took_ms, cards = excluded.cards, counts = excluded.counts",
                params![
                    finished.program_id,
                    millis(finished.computed_at),
                    finished.took_ms,
                    i64::try_from(finished.cards).unwrap_or(i64::MAX),
                    encode_counts(&finished.counts)
                ],
            )
            .map_err(sql)?;
            Ok(())
        })
        .await
    }

    async fn segment_run(&self, program_id: &str) -> StoreResult<Option<SegmentRun>> {
        let program_id = program_id.to_owned();
        let row = self
            .read(move |conn| {
                conn.query_row(
                    &format!("SELECT {RUN_COLUMNS} FROM segment_runs WHERE program_id = ?1"),
                    [program_id],
                    run_row,
                )
                .optional()
                .map_err(sql)
            })
            .await?;
        row.map(run).transpose()
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
        let (program_id, after) = (program_id.to_owned(), after_serial.unwrap_or("").to_owned());
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let serials = self
            .read(move |conn| {
                let mut stmt = conn
                    .prepare_cached(
                        "SELECT serial FROM card_segments WHERE program_id = ?1 AND computed_at = \
                         (SELECT computed_at FROM segment_runs WHERE program_id = ?1) AND segment = ?2 AND serial > ?3 \
                         ORDER BY serial LIMIT ?4",
                    )
                    .map_err(sql)?;
                let rows = stmt
                    .query_map(params![program_id, segment.as_str(), after, limit], |r| r.get::<_, String>(0))
                    .map_err(sql)?;
                rows.collect::<rusqlite::Result<Vec<_>>>().map_err(sql)
            })
            .await?;
        serials.iter().map(|s| serial(s)).collect()
    }

    async fn card_segment(&self, card: &SerialNumber) -> StoreResult<Option<CardSegment>> {
        let key = card.as_str().to_owned();
        let row = self
            .read(move |conn| {
                conn.query_row(
                    "SELECT c.program_id, c.segment, c.r, c.f, c.m, c.computed_at FROM card_segments c \
                     JOIN segment_runs s ON s.program_id = c.program_id AND s.computed_at = c.computed_at \
                     WHERE c.serial = ?1",
                    [key],
                    |r| {
                        Ok((
                            r.get::<_, String>(0)?,
                            r.get::<_, String>(1)?,
                            r.get::<_, i64>(2)?,
                            r.get::<_, i64>(3)?,
                            r.get::<_, i64>(4)?,
                            r.get::<_, i64>(5)?,
                        ))
                    },
                )
                .optional()
                .map_err(sql)
            })
            .await?;
        let Some((program_id, segment, r, f, m, at)) = row else { return Ok(None) };
        Ok(Some(CardSegment {
            serial: card.clone(),
            program_id,
            scores: parse_scores(r, f, m)?,
            segment: parse_segment(&segment)?,
            computed_at: from_millis(at)?,
        }))
    }

    async fn request_segments(&self, program_id: &str, at: DateTime<Utc>) -> StoreResult<()> {
        let program_id = program_id.to_owned();
        self.write(move |conn, _| {
            conn.execute(
                "INSERT INTO segment_runs (program_id, requested_at) VALUES (?1, ?2) \
                 ON CONFLICT (program_id) DO UPDATE SET requested_at = excluded.requested_at",
                params![program_id, millis(at)],
            )
            .map_err(sql)?;
            Ok(())
        })
        .await
    }

    async fn take_segment_lease(
        &self,
        program_id: &str,
        holder: &str,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> StoreResult<bool> {
        let (program_id, holder) = (program_id.to_owned(), holder.to_owned());
        self.write(move |conn, _| {
            let changed = conn
                .execute(
                    "INSERT INTO segment_runs (program_id, lease_holder, lease_until) VALUES (?1, ?2, ?4) \
                     ON CONFLICT (program_id) DO UPDATE SET lease_holder = excluded.lease_holder, \
                     lease_until = excluded.lease_until \
                     WHERE segment_runs.lease_until <= ?3 OR segment_runs.lease_holder = ?2",
                    params![program_id, holder, millis(now), millis(until)],
                )
                .map_err(sql)?;
            Ok(changed == 1)
        })
        .await
    }

    async fn release_segment_lease(&self, program_id: &str, holder: &str) -> StoreResult<()> {
        let (program_id, holder) = (program_id.to_owned(), holder.to_owned());
        self.write(move |conn, _| {
            conn.execute(
                "UPDATE segment_runs SET lease_holder = NULL, lease_until = 0 WHERE program_id = ?1 AND lease_holder = ?2",
                params![program_id, holder],
            )
            .map_err(sql)?;
            Ok(())
        })
        .await
    }
}
