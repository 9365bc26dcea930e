//! The ledger and idempotency records in the embedded store: every ledger write is one
//! transaction (card update, entries, idempotency answer), so it is all-or-nothing.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rusqlite::{Connection, OptionalExtension, params};

use super::cards::Lookup;
use super::{CardRecord, ENTRY_COLUMNS, EmbeddedStore, entry_from_row, insert_entry_row, sql, update_card_row};
use crate::domain::{Card, LedgerEntry, SerialNumber};
use crate::store::faults::points;
use crate::store::records::{EntryRecord, from_millis, millis};
use crate::store::{
    CardForWrite, CardLookup, IdempotencyKey, IdempotencyRecord, IdempotencyStart, LedgerStore, LedgerWrite,
    StoreResult, StoredResponse,
};

fn complete(conn: &Connection, key: &IdempotencyKey, response: &StoredResponse) -> StoreResult<()> {
    conn.execute(
        "UPDATE idempotency SET status = ?1, body = ?2, lease_until = 0 WHERE scope = ?3 AND key = ?4",
        params![response.status, response.body, key.scope, key.key],
    )
    .map_err(sql)?;
    Ok(())
}

/// Whether `entry`'s id, or a reversal of the transaction it reverses, is in the ledger.
fn already_written(conn: &Connection, entry: &EntryRecord) -> StoreResult<bool> {
    let found: Option<i64> = conn
        .query_row(
            "SELECT 1 FROM ledger WHERE id = ?1 OR (?2 IS NOT NULL AND reverses = ?2) LIMIT 1",
            params![entry.id, entry.reverses],
            |r| r.get(0),
        )
        .optional()
        .map_err(sql)?;
    Ok(found.is_some())
}

fn read_record(conn: &Connection, key: &IdempotencyKey) -> StoreResult<Option<IdempotencyRecord>> {
    let found = conn
        .query_row(
            "SELECT request_hash, entry_id, lease_until, status, body, created_at, expires_at \
             FROM idempotency WHERE scope = ?1 AND key = ?2",
            params![key.scope, key.key],
            |row| {
                Ok((
                    row.get::<_, String>(0)?,
                    row.get::<_, String>(1)?,
                    row.get::<_, i64>(2)?,
                    row.get::<_, Option<u16>>(3)?,
                    row.get::<_, Option<String>>(4)?,
                    row.get::<_, i64>(5)?,
                    row.get::<_, i64>(6)?,
                ))
            },
        )
        .optional()
        .map_err(sql)?;
    let Some((request_hash, entry_id, lease_until, status, body, created_at, expires_at)) = found else {
        return Ok(None);
    };
    Ok(Some(IdempotencyRecord {
        key: key.clone(),
        request_hash,
        entry_id,
        lease_until: from_millis(lease_until)?,
        response: status.map(|status| StoredResponse { status, body: body.unwrap_or_default() }),
        created_at: from_millis(created_at)?,
        expires_at: from_millis(expires_at)?,
    }))
}

fn one_entry(conn: &Connection, condition: &str, value: &str) -> StoreResult<Option<EntryRecord>> {
    conn.query_row(&format!("SELECT {ENTRY_COLUMNS} FROM ledger WHERE {condition} = ?1"), [value], entry_from_row)
        .optional()
        .map_err(sql)
}

#[async_trait]
impl LedgerStore for EmbeddedStore {
    async fn commit_ledger(&self, write: &LedgerWrite) -> StoreResult<bool> {
        let card = CardRecord::from(&write.card);
        let entries: Vec<EntryRecord> = write.entries.iter().map(EntryRecord::from).collect();
        let expected = write.expected_version;
        let completes = write.completes.clone();
        // The events of the write are stored in its transaction: they exist exactly when it does.
        let events = crate::webhooks::events::ledger_entries(&write.card, &write.entries);
        let committed = self
            .write(move |conn, faults| {
                // A write whose entry is stored already (a request whose lease was taken over), or
                // that reverses a transaction reversed already, is a conflict like a moved version:
                // nothing is written and the caller decides again from what is stored.
                for entry in &entries {
                    if already_written(conn, entry)? {
                        return Ok(false);
                    }
                }
                if !update_card_row(conn, &card, expected)? {
                    return Ok(false);
                }
                for entry in &entries {
                    faults.step()?;
                    insert_entry_row(conn, entry)?;
                }
                super::webhooks::insert_event_rows(conn, &events)?;
                if let Some((key, response)) = &completes {
                    faults.step()?;
                    complete(conn, key, response)?;
                }
                Ok(true)
            })
            .await?;
        if committed {
            self.inner.faults.reached(points::LEDGER_COMMITTED).await;
        }
        Ok(committed)
    }

    async fn card_for_write(&self, by: CardLookup<'_>, entry_id: &str) -> StoreResult<Option<CardForWrite>> {
        let lookup = Lookup::of(by);
        let entry_id = entry_id.to_owned();
        // The card first, the entry second: an entry committed at or before the version read is
        // visible to the second read.
        let found = self
            .read(move |conn| {
                let Some(card) = lookup.card(conn)? else { return Ok(None) };
                Ok(Some((card, one_entry(conn, "id", &entry_id)?)))
            })
            .await?;
        let Some((card, existing)) = found else { return Ok(None) };
        Ok(Some(CardForWrite {
            card: Card::try_from(card)?,
            existing: existing.map(LedgerEntry::try_from).transpose()?,
        }))
    }

    async fn reached(&self, point: &'static str) {
        self.inner.faults.reached(point).await;
    }

    fn checkpoint(&self, point: &'static str) -> StoreResult<()> {
        self.inner.faults.checkpoint(point)
    }

    async fn card_entries(
        &self,
        serial: &SerialNumber,
        before_seq: Option<i64>,
        limit: usize,
    ) -> StoreResult<Vec<LedgerEntry>> {
        let serial = serial.as_str().to_owned();
        let before = before_seq.unwrap_or(i64::MAX);
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let records = self
            .read(move |conn| {
                let mut stmt = conn
                    .prepare_cached(&format!(
                        "SELECT {ENTRY_COLUMNS} FROM ledger WHERE serial = ?1 AND seq < ?2 ORDER BY seq DESC LIMIT ?3"
                    ))
                    .map_err(sql)?;
                let rows = stmt.query_map(params![serial, before, limit], entry_from_row).map_err(sql)?;
                rows.collect::<rusqlite::Result<Vec<_>>>().map_err(sql)
            })
            .await?;
        records.into_iter().map(LedgerEntry::try_from).collect()
    }

    async fn entry(&self, id: &str) -> StoreResult<Option<LedgerEntry>> {
        let id = id.to_owned();
        let record = self.read(move |conn| one_entry(conn, "id", &id)).await?;
        record.map(LedgerEntry::try_from).transpose()
    }

    async fn reversal_of(&self, id: &str) -> StoreResult<Option<LedgerEntry>> {
        let id = id.to_owned();
        let record = self.read(move |conn| one_entry(conn, "reverses", &id)).await?;
        record.map(LedgerEntry::try_from).transpose()
    }

    async fn repair_card(&self, _serial: &SerialNumber) -> StoreResult<()> {
        // A transaction is never left half-done: nothing to repair.
        Ok(())
    }

    async fn idempotency_start(&self, record: &IdempotencyRecord) -> StoreResult<IdempotencyStart> {
        let r = record.clone();
        self.write(move |conn, _| {
            let inserted = conn
                .execute(
                    "INSERT INTO idempotency (scope, key, request_hash, entry_id, lease_until, status, body, \
                     created_at, expires_at) VALUES (?1, ?2, ?3, ?4, ?5, NULL, NULL, ?6, ?7) \
                     ON CONFLICT (scope, key) DO NOTHING",
                    params![
                        r.key.scope,
                        r.key.key,
                        r.request_hash,
                        r.entry_id,
                        millis(r.lease_until),
                        millis(r.created_at),
                        millis(r.expires_at)
                    ],
                )
                .map_err(sql)?;
            if inserted == 1 {
                return Ok(IdempotencyStart::Started);
            }
            read_record(conn, &r.key)?
                .map(IdempotencyStart::Existing)
                .ok_or_else(|| crate::store::StoreError::Corrupt("an idempotency record vanished".into()))
        })
        .await
    }

    async fn idempotency_get(&self, key: &IdempotencyKey) -> StoreResult<Option<IdempotencyRecord>> {
        let key = key.clone();
        self.read(move |conn| read_record(conn, &key)).await
    }

    async fn idempotency_take_over(
        &self,
        key: &IdempotencyKey,
        seen_lease_until: DateTime<Utc>,
        lease_until: DateTime<Utc>,
    ) -> StoreResult<bool> {
        let key = key.clone();
        self.write(move |conn, _| {
            let changed = conn
                .execute(
                    "UPDATE idempotency SET lease_until = ?1 \
                     WHERE scope = ?2 AND key = ?3 AND status IS NULL AND lease_until = ?4",
                    params![millis(lease_until), key.scope, key.key, millis(seen_lease_until)],
                )
                .map_err(sql)?;
            Ok(changed == 1)
        })
        .await
    }

    async fn idempotency_complete(&self, key: &IdempotencyKey, response: &StoredResponse) -> StoreResult<()> {
        let (key, response) = (key.clone(), response.clone());
        self.write(move |conn, _| complete(conn, &key, &response)).await
    }

    async fn idempotency_release(&self, key: &IdempotencyKey) -> StoreResult<()> {
        let key = key.clone();
        self.write(move |conn, _| {
            conn.execute(
                "UPDATE idempotency SET lease_until = 0 WHERE scope = ?1 AND key = ?2 AND status IS NULL",
                params![key.scope, key.key],
            )
            .map_err(sql)?;
            Ok(())
        })
        .await
    }

    async fn idempotency_purge(&self, now: DateTime<Utc>) -> StoreResult<u64> {
        self.write(move |conn, _| {
            let deleted = conn.execute("DELETE FROM idempotency WHERE expires_at < ?1", [millis(now)]).map_err(sql)?;
            Ok(deleted as u64)
        })
        .await
    }
}
