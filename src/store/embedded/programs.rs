//! Programs, design versions and images in the embedded store: each program and version as JSON,
//! images as blobs, the fan-out as one `UPDATE` over the program's cards.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rusqlite::{OptionalExtension, params};

use super::{EmbeddedStore, sql};
use crate::domain::{DesignVersion, Program, SerialNumber};
use crate::store::records::millis;
use crate::store::{ProgramStore, PushProgress, StoreError, StoreResult, UniqueKey};

fn to_json<T: serde::Serialize>(value: &T) -> StoreResult<String> {
    serde_json::to_string(value).map_err(|e| StoreError::Corrupt(e.to_string()))
}

fn from_json<T: serde::de::DeserializeOwned>(what: &str, json: &str) -> StoreResult<T> {
    serde_json::from_str(json).map_err(|e| StoreError::Corrupt(format!("{what}: {e}")))
}

#[async_trait]
impl ProgramStore for EmbeddedStore {
    async fn programs(&self) -> StoreResult<Vec<Program>> {
        let docs: Vec<(String, String)> = self
            .read(|conn| {
                let mut stmt = conn.prepare_cached("SELECT id, doc FROM programs ORDER BY id").map_err(sql)?;
                let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?))).map_err(sql)?;
                rows.collect::<rusqlite::Result<Vec<_>>>().map_err(sql)
            })
            .await?;
        docs.iter().map(|(id, doc)| from_json(&format!("program {id}"), doc)).collect()
    }

    async fn insert_program(&self, program: &Program) -> StoreResult<()> {
        let doc = to_json(program)?;
        let id = program.id.clone();
        self.write(move |tx, _| {
            let inserted = tx
                .execute("INSERT INTO programs (id, doc) VALUES (?1, ?2) ON CONFLICT (id) DO NOTHING", params![id, doc])
                .map_err(sql)?;
            if inserted == 0 { Err(StoreError::Duplicate(UniqueKey::Other)) } else { Ok(()) }
        })
        .await
    }

    async fn update_program(&self, program: &Program, expected_version: i64) -> StoreResult<bool> {
        let doc = to_json(program)?;
        let id = program.id.clone();
        self.write(move |tx, _| {
            let updated = tx
                .execute(
                    "UPDATE programs SET doc = ?2 WHERE id = ?1 AND COALESCE(json_extract(doc, '$.version'), 0) = ?3",
                    params![id, doc, expected_version],
                )
                .map_err(sql)?;
            Ok(updated == 1)
        })
        .await
    }

    async fn put_image(&self, id: &str, png: &[u8]) -> StoreResult<()> {
        let (id, png) = (id.to_owned(), png.to_vec());
        self.write(move |tx, _| {
            tx.execute("INSERT INTO images (id, png) VALUES (?1, ?2) ON CONFLICT (id) DO NOTHING", params![id, png])
                .map_err(sql)?;
            Ok(())
        })
        .await
    }

    async fn image(&self, id: &str) -> StoreResult<Option<Vec<u8>>> {
        let id = id.to_owned();
        self.read(move |conn| {
            conn.query_row("SELECT png FROM images WHERE id = ?1", [id], |r| r.get(0)).optional().map_err(sql)
        })
        .await
    }

    async fn insert_design_version(&self, version: &DesignVersion) -> StoreResult<()> {
        let body = to_json(version)?;
        let (program, revision, at) = (version.program_id.clone(), version.revision, millis(version.published_at));
        self.write(move |tx, _| {
            tx.execute(
                "INSERT INTO design_versions (program_id, revision, published_at, body) VALUES (?1, ?2, ?3, ?4) \
                 ON CONFLICT (program_id, revision) DO NOTHING",
                params![program, revision, at, body],
            )
            .map_err(sql)?;
            Ok(())
        })
        .await
    }

    async fn design_versions(&self, program_id: &str, limit: usize) -> StoreResult<Vec<DesignVersion>> {
        let (program, limit) = (program_id.to_owned(), i64::try_from(limit).unwrap_or(i64::MAX));
        let bodies: Vec<String> = self
            .read(move |conn| {
                let mut stmt = conn
                    .prepare_cached(
                        "SELECT body FROM design_versions WHERE program_id = ?1 ORDER BY revision DESC LIMIT ?2",
                    )
                    .map_err(sql)?;
                let rows = stmt.query_map(params![program, limit], |r| r.get(0)).map_err(sql)?;
                rows.collect::<rusqlite::Result<Vec<_>>>().map_err(sql)
            })
            .await?;
        bodies.iter().map(|b| from_json("design version", b)).collect()
    }

    async fn design_version(&self, program_id: &str, revision: i64) -> StoreResult<Option<DesignVersion>> {
        let program = program_id.to_owned();
        let body: Option<String> = self
            .read(move |conn| {
                conn.query_row(
                    "SELECT body FROM design_versions WHERE program_id = ?1 AND revision = ?2",
                    params![program, revision],
                    |r| r.get(0),
                )
                .optional()
                .map_err(sql)
            })
            .await?;
        body.map(|b| from_json("design version", &b)).transpose()
    }

    async fn bump_program_cards(&self, program_id: &str, now: DateTime<Utc>) -> StoreResult<u64> {
        let (program, now) = (program_id.to_owned(), millis(now));
        self.write(move |tx, _| {
            let moved = tx
                .execute(
                    "UPDATE cards SET version = version + 1, modified_at = MAX((modified_at / 1000 + 1) * 1000, ?2), \
                     push_pending_since = COALESCE(push_pending_since, ?2) \
                     WHERE program_id = ?1 AND status <> 'deleted'",
                    params![program, now],
                )
                .map_err(sql)?;
            Ok(moved as u64)
        })
        .await
    }

    async fn program_cards_owed(
        &self,
        program_id: &str,
        after: Option<&SerialNumber>,
        limit: usize,
    ) -> StoreResult<Vec<SerialNumber>> {
        let program = program_id.to_owned();
        let after = after.map(|s| s.as_str().to_owned()).unwrap_or_default();
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let serials: Vec<String> = self
            .read(move |conn| {
                let mut stmt = conn
                    .prepare_cached(
                        "SELECT serial FROM cards WHERE program_id = ?1 AND serial > ?2 \
                         AND push_pending_since IS NOT NULL ORDER BY serial LIMIT ?3",
                    )
                    .map_err(sql)?;
                let rows = stmt.query_map(params![program, after, limit], |r| r.get(0)).map_err(sql)?;
                rows.collect::<rusqlite::Result<Vec<_>>>().map_err(sql)
            })
            .await?;
        serials.iter().map(|s| SerialNumber::parse(s).map_err(|e| StoreError::Corrupt(e.to_string()))).collect()
    }

    async fn program_push_progress(&self, program_id: &str) -> StoreResult<PushProgress> {
        let program = program_id.to_owned();
        self.read(move |conn| {
            let (cards, pending): (i64, i64) = conn
                .query_row(
                    "SELECT COUNT(*), COUNT(push_pending_since) FROM cards \
                     WHERE program_id = ?1 AND status <> 'deleted'",
                    [&program],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .map_err(sql)?;
            let failed: i64 = conn
                .query_row(
                    "SELECT COUNT(DISTINCT d.serial) FROM dead_letters d JOIN cards c ON c.serial = d.serial \
                     WHERE c.program_id = ?1",
                    [&program],
                    |r| r.get(0),
                )
                .map_err(sql)?;
            let count = |n: i64| u64::try_from(n).unwrap_or(0);
            Ok(PushProgress { cards: count(cards), pending: count(pending), failed: count(failed) })
        })
        .await
    }
}
