//! Stored phones and one-time data steps in the embedded store.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rusqlite::{OptionalExtension, params};

use super::{EmbeddedStore, sql};
use crate::domain::{Phone, SerialNumber};
use crate::store::records::{from_millis, millis};
use crate::store::{PhoneStore, StoreError, StoreResult, StoredPhone};

#[async_trait]
impl PhoneStore for EmbeddedStore {
    async fn stored_phones(&self, after: Option<&SerialNumber>, limit: usize) -> StoreResult<Vec<StoredPhone>> {
        let after = after.map(|s| s.as_str().to_owned()).unwrap_or_default();
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows: Vec<(String, String, String)> = self
            .read(move |conn| {
                let mut statement = conn
                    .prepare_cached(
                        "SELECT serial, program_id, phone FROM cards WHERE serial > ?1 ORDER BY serial LIMIT ?2",
                    )
                    .map_err(sql)?;
                let rows = statement
                    .query_map(params![after, limit], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
                    .map_err(sql)?;
                rows.collect::<rusqlite::Result<Vec<_>>>().map_err(sql)
            })
            .await?;
        rows.into_iter()
            .map(|(serial, program_id, phone)| {
                let serial = SerialNumber::parse(&serial)
                    .map_err(|e| StoreError::Corrupt(format!("card serial {serial}: {e}")))?;
                Ok(StoredPhone { serial, program_id, phone })
            })
            .collect()
    }

    async fn set_card_phone(&self, serial: &SerialNumber, phone: &Phone) -> StoreResult<bool> {
        let serial = serial.as_str().to_owned();
        let phone = phone.as_str().to_owned();
        self.write(move |tx, _| {
            let changed =
                tx.execute("UPDATE cards SET phone = ?2 WHERE serial = ?1", params![serial, phone]).map_err(sql)?;
            Ok(changed == 1)
        })
        .await
    }

    async fn data_step_done(&self, name: &str) -> StoreResult<Option<DateTime<Utc>>> {
        let name = name.to_owned();
        let at: Option<i64> = self
            .read(move |conn| {
                conn.query_row("SELECT done_at FROM data_steps WHERE name = ?1", [&name], |r| r.get(0))
                    .optional()
                    .map_err(sql)
            })
            .await?;
        at.map(from_millis).transpose()
    }

    async fn record_data_step(&self, name: &str, at: DateTime<Utc>) -> StoreResult<()> {
        let name = name.to_owned();
        self.write(move |tx, _| {
            tx.execute(
                "INSERT INTO data_steps (name, done_at) VALUES (?1, ?2) ON CONFLICT (name) DO NOTHING",
                params![name, millis(at)],
            )
            .map_err(sql)?;
            Ok(())
        })
        .await
    }
}
