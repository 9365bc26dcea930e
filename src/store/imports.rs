//! Imports started from the console (SPEC §4.10): the uploaded file and the job that checks and
//! then imports it, kept in the store so any node shows its progress and a node that dies
//! mid-import leaves it to be taken up again.
//!
//! A job is taken with a lease, as a mail of the outbox is: taking it counts an attempt and
//! holds it until `lease_until`; the attempt count is the lease's token, so only the taker can
//! save it. The file is kept in chunks beside the job until the import is done.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::StoreResult;
use crate::import::LineError;

/// The most bad lines a job keeps (the count of bad lines is always exact).
pub const MAX_KEPT_ERRORS: usize = 10_000;

/// The size of one stored chunk of an uploaded file.
pub const FILE_CHUNK_BYTES: usize = 4 * 1024 * 1024;

/// Where an import job is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ImportState {
    /// Uploaded; the dry run is due or running.
    Checking,
    /// The dry run's report is ready; waiting for the owner to start the import.
    Checked,
    /// The import is due or running.
    Importing,
    /// Imported; the file is deleted.
    Done,
    /// Cannot be imported (the file as a whole is unreadable, or it failed too many times).
    Failed,
}

impl ImportState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Checking => "checking",
            Self::Checked => "checked",
            Self::Importing => "importing",
            Self::Done => "done",
            Self::Failed => "failed",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [Self::Checking, Self::Checked, Self::Importing, Self::Done, Self::Failed].into_iter().find(|v| v.as_str() == s)
    }

    /// Whether a runner has work to do on a job in this state.
    pub fn runnable(self) -> bool {
        matches!(self, Self::Checking | Self::Importing)
    }
}

/// What a pass over the file counted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImportCounts {
    pub created: u64,
    pub updated: u64,
    pub skipped: u64,
    pub bad: u64,
}

/// One import started from the console.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImportJob {
    /// `imp_` and random letters.
    pub id: String,
    pub program_id: String,
    /// The owner who uploaded it.
    pub staff_id: String,
    /// The uploaded file's name, as the browser gave it.
    pub file_name: String,
    pub file_bytes: u64,
    pub state: ImportState,
    /// `UTF-8` or `windows-1251`, and the separator, once the file was read.
    pub encoding: Option<String>,
    pub delimiter: Option<String>,
    pub ignored_columns: Vec<String>,
    /// Data lines of the file.
    pub lines: u64,
    /// Good lines, and how many of them the running pass has finished.
    pub total: u64,
    pub done: u64,
    /// What the dry run found would happen.
    pub checked: Option<ImportCounts>,
    /// What the import did (a line written before an interruption counts as skipped after it).
    pub imported: Option<ImportCounts>,
    /// The first [`MAX_KEPT_ERRORS`] bad lines, in line order.
    pub errors: Vec<LineError>,
    /// Why the file cannot be imported at all, or why the last attempt stopped.
    pub problem: Option<String>,
    /// Attempts taken so far (the lease's token).
    pub attempts: u32,
    /// Until when the runner that took the job holds it.
    pub lease_until: DateTime<Utc>,
    /// Card links queued to the customers this import created.
    pub links_queued: u64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
}

impl ImportJob {
    /// Whole percent of the running pass (100 when it has nothing to do).
    pub fn percent(&self) -> u64 {
        (self.done.min(self.total) * 100).checked_div(self.total).unwrap_or(100)
    }
}

#[async_trait]
pub trait ImportStore: Send + Sync + 'static {
    /// Saves a new job with its file.
    async fn insert_import_job(&self, job: &ImportJob, file: &[u8]) -> StoreResult<()>;

    async fn import_job(&self, id: &str) -> StoreResult<Option<ImportJob>>;

    /// The latest jobs, newest first, at most `limit`.
    async fn import_jobs(&self, limit: usize) -> StoreResult<Vec<ImportJob>>;

    /// The job's file; `None` once it is deleted.
    async fn import_file(&self, id: &str) -> StoreResult<Option<Vec<u8>>>;

    async fn delete_import_file(&self, id: &str) -> StoreResult<()>;

    /// Takes the runnable job whose lease ended longest ago, atomically: its attempts go up by
    /// one and it is held until `lease_until`. `None` when no job is due.
    async fn take_import_job(&self, now: DateTime<Utc>, lease_until: DateTime<Utc>) -> StoreResult<Option<ImportJob>>;

    /// Replaces the job if its attempts are still `job.attempts` (nobody took it over);
    /// `false` and nothing changed otherwise.
    async fn save_import_job(&self, job: &ImportJob) -> StoreResult<bool>;
}
