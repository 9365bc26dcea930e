//! API keys and webhook sources in the embedded store.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rusqlite::{OptionalExtension, Row, params};

use super::{EmbeddedStore, sql};
use crate::domain::{ApiKey, WebhookSource};
use crate::store::records::{ApiKeyRecord, WebhookSourceRecord, millis};
use crate::store::{AccessStore, StoreResult};

fn api_key_from_row(row: &Row<'_>) -> rusqlite::Result<ApiKeyRecord> {
    Ok(ApiKeyRecord {
        id: row.get(0)?,
        name: row.get(1)?,
        scope: row.get(2)?,
        secret_hash: row.get(3)?,
        created_at: row.get(4)?,
        revoked_at: row.get(5)?,
        last_used_at: row.get(6)?,
        program_id: row.get(7)?,
    })
}

fn source_from_row(row: &Row<'_>) -> rusqlite::Result<WebhookSourceRecord> {
    Ok(WebhookSourceRecord {
        id: row.get(0)?,
        name: row.get(1)?,
        secret: row.get(2)?,
        created_at: row.get(3)?,
        revoked_at: row.get(4)?,
    })
}

const KEY_COLUMNS: &str = "id, name, scope, secret_hash, created_at, revoked_at, last_used_at, program_id";
const SOURCE_COLUMNS: &str = "id, name, secret, created_at, revoked_at";

#[async_trait]
impl AccessStore for EmbeddedStore {
    async fn insert_api_key(&self, key: &ApiKey) -> StoreResult<()> {
        let r = ApiKeyRecord::from(key);
        self.write(move |conn, _| {
            conn.execute(
                &format!("INSERT INTO api_keys ({KEY_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)"),
                params![r.id, r.name, r.scope, r.secret_hash, r.created_at, r.revoked_at, r.last_used_at, r.program_id],
            )
            .map_err(sql)?;
            Ok(())
        })
        .await
    }

    async fn api_key(&self, id: &str) -> StoreResult<Option<ApiKey>> {
        let id = id.to_owned();
        let record = self
            .read(move |conn| {
                conn.prepare_cached(&format!("SELECT {KEY_COLUMNS} FROM api_keys WHERE id = ?1"))
                    .map_err(sql)?
                    .query_row([id], api_key_from_row)
                    .optional()
                    .map_err(sql)
            })
            .await?;
        record.map(ApiKey::try_from).transpose()
    }

    async fn api_keys(&self) -> StoreResult<Vec<ApiKey>> {
        let records = self
            .read(|conn| {
                let mut stmt = conn
                    .prepare(&format!("SELECT {KEY_COLUMNS} FROM api_keys ORDER BY created_at DESC, id"))
                    .map_err(sql)?;
                let rows = stmt.query_map([], api_key_from_row).map_err(sql)?;
                rows.collect::<rusqlite::Result<Vec<_>>>().map_err(sql)
            })
            .await?;
        records.into_iter().map(ApiKey::try_from).collect()
    }

    async fn revoke_api_key(&self, id: &str, at: DateTime<Utc>) -> StoreResult<bool> {
        let id = id.to_owned();
        self.write(move |conn, _| {
            let changed = conn
                .execute(
                    "UPDATE api_keys SET revoked_at = ?1 WHERE id = ?2 AND revoked_at IS NULL",
                    params![millis(at), id],
                )
                .map_err(sql)?;
            Ok(changed == 1)
        })
        .await
    }

    async fn insert_webhook_source(&self, source: &WebhookSource) -> StoreResult<()> {
        let r = WebhookSourceRecord::from(source);
        self.write(move |conn, _| {
            conn.execute(
                &format!("INSERT INTO webhook_sources ({SOURCE_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5)"),
                params![r.id, r.name, r.secret, r.created_at, r.revoked_at],
            )
            .map_err(sql)?;
            Ok(())
        })
        .await
    }

    async fn webhook_source(&self, id: &str) -> StoreResult<Option<WebhookSource>> {
        let id = id.to_owned();
        let record = self
            .read(move |conn| {
                conn.query_row(
                    &format!("SELECT {SOURCE_COLUMNS} FROM webhook_sources WHERE id = ?1"),
                    [id],
                    source_from_row,
                )
                .optional()
                .map_err(sql)
            })
            .await?;
        record.map(WebhookSource::try_from).transpose()
    }

    async fn webhook_sources(&self) -> StoreResult<Vec<WebhookSource>> {
        let records = self
            .read(|conn| {
                let mut stmt = conn
                    .prepare(&format!("SELECT {SOURCE_COLUMNS} FROM webhook_sources ORDER BY created_at DESC, id"))
                    .map_err(sql)?;
                let rows = stmt.query_map([], source_from_row).map_err(sql)?;
                rows.collect::<rusqlite::Result<Vec<_>>>().map_err(sql)
            })
            .await?;
        records.into_iter().map(WebhookSource::try_from).collect()
    }

    async fn revoke_webhook_source(&self, id: &str, at: DateTime<Utc>) -> StoreResult<bool> {
        let id = id.to_owned();
        self.write(move |conn, _| {
            let changed = conn
                .execute(
                    "UPDATE webhook_sources SET revoked_at = ?1 WHERE id = ?2 AND revoked_at IS NULL",
                    params![millis(at), id],
                )
                .map_err(sql)?;
            Ok(changed == 1)
        })
        .await
    }

    async fn touch_api_key(&self, id: &str, at: DateTime<Utc>) -> StoreResult<()> {
        let id = id.to_owned();
        self.write(move |conn, _| {
            conn.execute("UPDATE api_keys SET last_used_at = ?1 WHERE id = ?2", params![millis(at), id])
                .map_err(sql)?;
            Ok(())
        })
        .await
    }
}
