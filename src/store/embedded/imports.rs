//! Console imports in the embedded store: the job's state, attempts and lease in columns (what
//! taking it reads), the rest of it as JSON; the file in chunks.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rusqlite::{OptionalExtension, params};

use super::{EmbeddedStore, sql};
use crate::store::records::{from_millis, millis};
use crate::store::{FILE_CHUNK_BYTES, ImportJob, ImportState, ImportStore, StoreError, StoreResult};

type JobRow = (String, u32, i64, String);

fn job_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<JobRow> {
    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
}

/// The job from its JSON, with the columns (which taking a job changes) laid over it.
fn job((state, attempts, lease_until, body): JobRow) -> StoreResult<ImportJob> {
    let mut job: ImportJob =
        serde_json::from_str(&body).map_err(|e| StoreError::Corrupt(format!("import job: {e}")))?;
    job.state = ImportState::parse(&state).ok_or_else(|| StoreError::Corrupt(format!("import state {state}")))?;
    job.attempts = attempts;
    job.lease_until = from_millis(lease_until)?;
    Ok(job)
}

fn body(job: &ImportJob) -> StoreResult<String> {
    serde_json::to_string(job).map_err(|e| StoreError::Corrupt(format!("import job: {e}")))
}

const COLUMNS: &str = "state, attempts, lease_until, body";

#[async_trait]
impl ImportStore for EmbeddedStore {
    async fn insert_import_job(&self, job: &ImportJob, file: &[u8]) -> StoreResult<()> {
        let (job, body, file) = (job.clone(), body(job)?, file.to_vec());
        self.write(move |conn, _| {
            conn.execute(
                "INSERT INTO import_jobs (id, state, attempts, lease_until, created_at, body) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![
                    job.id,
                    job.state.as_str(),
                    job.attempts,
                    millis(job.lease_until),
                    millis(job.created_at),
                    body
                ],
            )
            .map_err(sql)?;
            for (n, chunk) in file.chunks(FILE_CHUNK_BYTES).enumerate() {
                conn.execute(
                    "INSERT INTO import_files (job_id, n, data) VALUES (?1, ?2, ?3)",
                    params![job.id, n as i64, chunk],
                )
                .map_err(sql)?;
            }
            Ok(())
        })
        .await
    }

    async fn import_job(&self, id: &str) -> StoreResult<Option<ImportJob>> {
        let id = id.to_owned();
        let row = self
            .read(move |conn| {
                conn.query_row(&format!("SELECT {COLUMNS} FROM import_jobs WHERE id = ?1"), [id], job_row)
                    .optional()
                    .map_err(sql)
            })
            .await?;
        row.map(job).transpose()
    }

    async fn import_jobs(&self, limit: usize) -> StoreResult<Vec<ImportJob>> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = self
            .read(move |conn| {
                let mut stmt = conn
                    .prepare_cached(&format!(
                        "SELECT {COLUMNS} FROM import_jobs ORDER BY created_at DESC, id DESC LIMIT ?1"
                    ))
                    .map_err(sql)?;
                let rows = stmt.query_map([limit], job_row).map_err(sql)?;
                rows.collect::<rusqlite::Result<Vec<_>>>().map_err(sql)
            })
            .await?;
        rows.into_iter().map(job).collect()
    }

    async fn import_file(&self, id: &str) -> StoreResult<Option<Vec<u8>>> {
        let id = id.to_owned();
        self.read(move |conn| {
            let mut stmt =
                conn.prepare_cached("SELECT data FROM import_files WHERE job_id = ?1 ORDER BY n").map_err(sql)?;
            let chunks = stmt.query_map([id], |r| r.get::<_, Vec<u8>>(0)).map_err(sql)?;
            let chunks = chunks.collect::<rusqlite::Result<Vec<_>>>().map_err(sql)?;
            Ok((!chunks.is_empty()).then(|| chunks.concat()))
        })
        .await
    }

    async fn delete_import_file(&self, id: &str) -> StoreResult<()> {
        let id = id.to_owned();
        self.write(move |conn, _| {
            conn.execute("DELETE FROM import_files WHERE job_id = ?1", [id]).map_err(sql)?;
            Ok(())
        })
        .await
    }

    async fn take_import_job(&self, now: DateTime<Utc>, lease_until: DateTime<Utc>) -> StoreResult<Option<ImportJob>> {
        // One writer thread runs every write: the select and the update cannot interleave.
        let row = self
            .write(move |conn, _| {
                conn.query_row(
                    &format!(
                        "UPDATE import_jobs SET attempts = attempts + 1, lease_until = ?2 \
                         WHERE id = (SELECT id FROM import_jobs WHERE state IN ('checking', 'importing') \
                         AND lease_until <= ?1 ORDER BY lease_until, id LIMIT 1) RETURNING {COLUMNS}"
                    ),
                    params![millis(now), millis(lease_until)],
                    job_row,
                )
                .optional()
                .map_err(sql)
            })
            .await?;
        row.map(job).transpose()
    }

    async fn save_import_job(&self, job: &ImportJob) -> StoreResult<bool> {
        let (job, body) = (job.clone(), body(job)?);
        self.write(move |conn, _| {
            let changed = conn
                .execute(
                    "UPDATE import_jobs SET state = ?3, lease_until = ?4, body = ?5 WHERE id = ?1 AND attempts = ?2",
                    params![job.id, job.attempts, job.state.as_str(), millis(job.lease_until), body],
                )
                .map_err(sql)?;
            Ok(changed == 1)
        })
        .await
    }
}
