//! Console imports in the MongoDB store: one document per job (state, attempts and lease as
//! fields, the rest as JSON), taken with a single `findAndModify`; the file in chunks of one
//! document each (well under MongoDB's 16 MB document limit).

use async_trait::async_trait;
use bson::spec::BinarySubtype;
use bson::{Binary, Document, doc};
use chrono::{DateTime, Utc};
use futures_util::TryStreamExt;
use mongodb::options::{IndexOptions, ReturnDocument};
use mongodb::{Collection, IndexModel};

use super::{MongoStore, mongo};
use crate::store::records::{from_millis, millis};
use crate::store::{FILE_CHUNK_BYTES, ImportJob, ImportState, ImportStore, StoreError, StoreResult};

pub(super) async fn create_indexes(
    jobs: &Collection<Document>,
    files: &Collection<Document>,
) -> mongodb::error::Result<()> {
    let named = |name: &str| IndexOptions::builder().name(name.to_owned()).build();
    jobs.create_indexes([
        IndexModel::builder().keys(doc! { "state": 1, "lease_until": 1 }).options(named("due")).build(),
        IndexModel::builder().keys(doc! { "created_at": -1 }).options(named("created")).build(),
    ])
    .await?;
    files
        .create_index(IndexModel::builder().keys(doc! { "job_id": 1, "n": 1 }).options(named("job_chunks")).build())
        .await?;
    Ok(())
}

fn job_from(d: &Document) -> StoreResult<ImportJob> {
    let corrupt = |e: bson::document::ValueAccessError| StoreError::Corrupt(format!("import job: {e}"));
    let mut job: ImportJob = serde_json::from_str(d.get_str("body").map_err(corrupt)?)
        .map_err(|e| StoreError::Corrupt(format!("import job: {e}")))?;
    let state = d.get_str("state").map_err(corrupt)?;
    job.state = ImportState::parse(state).ok_or_else(|| StoreError::Corrupt(format!("import state {state}")))?;
    job.attempts = u32::try_from(d.get_i64("attempts").map_err(corrupt)?).unwrap_or(u32::MAX);
    job.lease_until = from_millis(d.get_i64("lease_until").map_err(corrupt)?)?;
    Ok(job)
}

fn body(job: &ImportJob) -> StoreResult<String> {
    serde_json::to_string(job).map_err(|e| StoreError::Corrupt(format!("import job: {e}")))
}

#[async_trait]
impl ImportStore for MongoStore {
    async fn insert_import_job(&self, job: &ImportJob, file: &[u8]) -> StoreResult<()> {
        // The chunks first: a job is only visible (and runnable) once its whole file is stored.
        for (n, chunk) in file.chunks(FILE_CHUNK_BYTES).enumerate() {
            self.faults.step()?;
            let data = Binary { subtype: BinarySubtype::Generic, bytes: chunk.to_vec() };
            self.import_files
                .insert_one(doc! { "_id": format!("{}:{n}", job.id), "job_id": &job.id, "n": n as i64, "data": data })
                .await
                .map_err(mongo)?;
        }
        self.faults.step()?;
        self.import_jobs
            .insert_one(doc! {
                "_id": &job.id,
                "state": job.state.as_str(),
                "attempts": i64::from(job.attempts),
                "lease_until": millis(job.lease_until),
                "created_at": millis(job.created_at),
                "body": body(job)?,
            })
            .await
            .map_err(mongo)?;
        Ok(())
    }

    async fn import_job(&self, id: &str) -> StoreResult<Option<ImportJob>> {
        self.faults.step()?;
        let found = self.import_jobs.find_one(doc! { "_id": id }).await.map_err(mongo)?;
        found.as_ref().map(job_from).transpose()
    }

    async fn import_jobs(&self, limit: usize) -> StoreResult<Vec<ImportJob>> {
        self.faults.step()?;
        let docs: Vec<Document> = self
            .import_jobs
            .find(doc! {})
            .sort(doc! { "created_at": -1, "_id": -1 })
            .limit(i64::try_from(limit).unwrap_or(i64::MAX))
            .await
            .map_err(mongo)?
            .try_collect()
            .await
            .map_err(mongo)?;
        docs.iter().map(job_from).collect()
    }

    async fn import_file(&self, id: &str) -> StoreResult<Option<Vec<u8>>> {
        self.faults.step()?;
        let docs: Vec<Document> = self
            .import_files
            .find(doc! { "job_id": id })
            .sort(doc! { "n": 1 })
            .await
            .map_err(mongo)?
            .try_collect()
            .await
            .map_err(mongo)?;
        if docs.is_empty() {
            return Ok(None);
        }
        let mut file = Vec::new();
        for d in &docs {
            let data = d.get_binary_generic("data").map_err(|e| StoreError::Corrupt(format!("import file: {e}")))?;
            file.extend_from_slice(data);
        }
        Ok(Some(file))
    }

    async fn delete_import_file(&self, id: &str) -> StoreResult<()> {
        self.faults.step()?;
        self.import_files.delete_many(doc! { "job_id": id }).await.map_err(mongo)?;
        Ok(())
    }

    async fn take_import_job(&self, now: DateTime<Utc>, lease_until: DateTime<Utc>) -> StoreResult<Option<ImportJob>> {
        self.faults.step()?;
        let taken = self
            .import_jobs
            .find_one_and_update(
                doc! { "state": { "$in": ["checking", "importing"] }, "lease_until": { "$lte": millis(now) } },
                doc! { "$inc": { "attempts": 1_i64 }, "$set": { "lease_until": millis(lease_until) } },
            )
            .sort(doc! { "lease_until": 1, "_id": 1 })
            .return_document(ReturnDocument::After)
            .await
            .map_err(mongo)?;
        taken.as_ref().map(job_from).transpose()
    }

    async fn save_import_job(&self, job: &ImportJob) -> StoreResult<bool> {
        self.faults.step()?;
        let result = self
            .import_jobs
            .update_one(
                doc! { "_id": &job.id, "attempts": i64::from(job.attempts) },
                doc! { "$set": {
                    "state": job.state.as_str(),
                    "lease_until": millis(job.lease_until),
                    "body": body(job)?,
                } },
            )
            .await
            .map_err(mongo)?;
        Ok(result.matched_count == 1)
    }
}
