//! Push bookkeeping in the embedded store: which cards and devices are owed a push, and the
//! dead letters of pushes that failed for good.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rusqlite::{OptionalExtension, Row, params};

use super::{EmbeddedStore, sql};
use crate::domain::{DeviceLibraryId, SerialNumber};
use crate::store::records::{from_millis, millis};
use crate::store::{DeadLetter, GoogleSync, Owed, PushStore, StoreError, StoreResult};

const LETTER_COLUMNS: &str = "id, serial, version, target, reason, attempts, first_failure_at, created_at";

type LetterRow = (String, String, i64, String, String, u32, i64, i64);

fn letter_row(row: &Row<'_>) -> rusqlite::Result<LetterRow> {
    Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?, row.get(4)?, row.get(5)?, row.get(6)?, row.get(7)?))
}

fn letter((id, serial, version, target, reason, attempts, first, created): LetterRow) -> StoreResult<DeadLetter> {
    Ok(DeadLetter {
        serial: SerialNumber::parse(&serial).map_err(|e| StoreError::Corrupt(format!("dead letter {id}: {e}")))?,
        id,
        version,
        target,
        reason,
        attempts,
        first_failure_at: from_millis(first)?,
        created_at: from_millis(created)?,
    })
}

#[async_trait]
impl PushStore for EmbeddedStore {
    async fn cards_pending_push(&self, since: DateTime<Utc>, limit: usize) -> StoreResult<Vec<SerialNumber>> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let serials: Vec<String> = self
            .read(move |conn| {
                let mut stmt = conn
                    .prepare_cached(
                        "SELECT serial FROM cards WHERE push_pending_since IS NOT NULL AND push_pending_since <= ?1 \
                         ORDER BY push_pending_since LIMIT ?2",
                    )
                    .map_err(sql)?;
                let rows = stmt.query_map(params![millis(since), limit], |r| r.get(0)).map_err(sql)?;
                rows.collect::<rusqlite::Result<Vec<_>>>().map_err(sql)
            })
            .await?;
        serials.iter().map(|s| SerialNumber::parse(s).map_err(|e| StoreError::Corrupt(e.to_string()))).collect()
    }

    async fn push_generation(&self, serial: &SerialNumber) -> StoreResult<i64> {
        let serial = serial.as_str().to_owned();
        let generation: Option<i64> = self
            .read(move |conn| {
                conn.query_row("SELECT push_generation FROM cards WHERE serial = ?1", [serial], |r| r.get(0))
                    .optional()
                    .map_err(sql)
            })
            .await?;
        Ok(generation.unwrap_or(0))
    }

    async fn mark_card_pushed(&self, serial: &SerialNumber, version: i64, generation: i64) -> StoreResult<bool> {
        let serial = serial.as_str().to_owned();
        self.write(move |conn, _| {
            let marked = conn
                .execute(
                    "UPDATE cards SET pushed_version = MAX(pushed_version, ?2), \
                     push_pending_since = CASE WHEN version <= ?2 THEN NULL ELSE push_pending_since END \
                     WHERE serial = ?1 AND push_generation = ?3",
                    params![serial, version, generation],
                )
                .map_err(sql)?;
            Ok(marked == 1)
        })
        .await
    }

    async fn mark_devices_pushed(
        &self,
        serial: &SerialNumber,
        version: i64,
        devices: &[DeviceLibraryId],
    ) -> StoreResult<()> {
        if devices.is_empty() {
            return Ok(());
        }
        let serial = serial.as_str().to_owned();
        let devices: Vec<String> = devices.iter().map(|d| d.as_str().to_owned()).collect();
        self.write(move |conn, _| {
            let mut stmt = conn
                .prepare_cached(
                    "UPDATE registrations SET pushed_version = MAX(pushed_version, ?3) \
                     WHERE serial = ?1 AND device_library_id = ?2",
                )
                .map_err(sql)?;
            for device in &devices {
                stmt.execute(params![serial, device, version]).map_err(sql)?;
            }
            Ok(())
        })
        .await
    }

    async fn mark_push_owed(&self, serial: &SerialNumber, owed: Owed<'_>, now: DateTime<Utc>) -> StoreResult<bool> {
        let serial = serial.as_str().to_owned();
        let devices = match owed {
            Owed::AllDevices => Some(None),
            Owed::Device(d) => Some(Some(d.as_str().to_owned())),
            Owed::CardOnly => None,
        };
        self.write(move |conn, _| {
            let card = conn
                .execute(
                    "UPDATE cards SET pushed_version = MIN(pushed_version, version - 1), \
                     push_pending_since = COALESCE(push_pending_since, ?2), \
                     push_generation = push_generation + 1 WHERE serial = ?1",
                    params![serial, millis(now)],
                )
                .map_err(sql)?;
            match &devices {
                Some(Some(device)) => conn.execute(
                    "UPDATE registrations SET pushed_version = 0 WHERE serial = ?1 AND device_library_id = ?2",
                    params![serial, device],
                ),
                Some(None) => {
                    conn.execute("UPDATE registrations SET pushed_version = 0 WHERE serial = ?1", params![serial])
                }
                None => Ok(0),
            }
            .map_err(sql)?;
            Ok(card == 1)
        })
        .await
    }

    async fn google_sync(&self, serial: &SerialNumber) -> StoreResult<GoogleSync> {
        let serial = serial.as_str().to_owned();
        let row: Option<(i64, Option<i64>, String)> = self
            .read(move |conn| {
                conn.query_row("SELECT version, balance, notified FROM google_sync WHERE serial = ?1", [serial], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?))
                })
                .optional()
                .map_err(sql)
            })
            .await?;
        let Some((version, balance, notified)) = row else { return Ok(GoogleSync::default()) };
        let millis: Vec<i64> =
            serde_json::from_str(&notified).map_err(|e| StoreError::Corrupt(format!("google_sync.notified: {e}")))?;
        Ok(GoogleSync { version, balance, notified_at: millis.into_iter().map(from_millis).collect::<Result<_, _>>()? })
    }

    async fn record_google_sync(
        &self,
        serial: &SerialNumber,
        version: i64,
        balance: i64,
        notified: Option<DateTime<Utc>>,
    ) -> StoreResult<()> {
        // One worker holds a card at a time, so a read-then-write does not race.
        let current = self.google_sync(serial).await?;
        let notified_at = current.notifications_after(notified);
        let notified = serde_json::to_string(&notified_at.iter().map(|t| millis(*t)).collect::<Vec<_>>())
            .expect("numbers serialise");
        let serial = serial.as_str().to_owned();
        self.write(move |conn, _| {
            conn.execute(
                "INSERT INTO google_sync (serial, version, balance, notified) VALUES (?1, ?2, ?3, ?4) \
                 ON CONFLICT (serial) DO UPDATE SET version = MAX(version, excluded.version), \
                 balance = CASE WHEN excluded.version >= version THEN excluded.balance ELSE balance END, \
                 notified = excluded.notified",
                params![serial, version, balance, notified],
            )
            .map_err(sql)?;
            Ok(())
        })
        .await
    }

    async fn reset_google_sync(&self, serial: &SerialNumber) -> StoreResult<()> {
        let serial = serial.as_str().to_owned();
        self.write(move |conn, _| {
            conn.execute("UPDATE google_sync SET version = 0, balance = NULL WHERE serial = ?1", [serial])
                .map_err(sql)?;
            Ok(())
        })
        .await
    }

    async fn insert_dead_letter(&self, l: &DeadLetter) -> StoreResult<()> {
        let l = l.clone();
        self.write(move |conn, _| {
            conn.execute(
                &format!("INSERT INTO dead_letters ({LETTER_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)"),
                params![
                    l.id,
                    l.serial.as_str(),
                    l.version,
                    l.target,
                    l.reason,
                    l.attempts,
                    millis(l.first_failure_at),
                    millis(l.created_at)
                ],
            )
            .map_err(sql)?;
            Ok(())
        })
        .await
    }

    async fn dead_letters(&self, limit: usize) -> StoreResult<Vec<DeadLetter>> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = self
            .read(move |conn| {
                let mut stmt = conn
                    .prepare_cached(&format!(
                        "SELECT {LETTER_COLUMNS} FROM dead_letters ORDER BY created_at DESC, id LIMIT ?1"
                    ))
                    .map_err(sql)?;
                let rows = stmt.query_map([limit], letter_row).map_err(sql)?;
                rows.collect::<rusqlite::Result<Vec<_>>>().map_err(sql)
            })
            .await?;
        rows.into_iter().map(letter).collect()
    }

    async fn take_dead_letter(&self, id: &str) -> StoreResult<Option<DeadLetter>> {
        let id = id.to_owned();
        let row = self
            .write(move |conn, _| {
                let row = conn
                    .query_row(&format!("SELECT {LETTER_COLUMNS} FROM dead_letters WHERE id = ?1"), [&id], letter_row)
                    .optional()
                    .map_err(sql)?;
                conn.execute("DELETE FROM dead_letters WHERE id = ?1", [&id]).map_err(sql)?;
                Ok(row)
            })
            .await?;
        row.map(letter).transpose()
    }
}
