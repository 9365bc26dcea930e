//! Imports started from the console, run in the background (SPEC §4.10).
//!
//! An upload becomes an [`ImportJob`] in the store with its file. A runner takes the job with a
//! lease, checks the file (the dry run) and saves the report; when the owner confirms, a runner
//! takes it again and imports it, saving its progress (and renewing its lease) twice a second
//! so any node can show it. An attempt that fails (the store went away) leaves the job due again
//! a little later; a node that dies mid-import leaves it to be taken again when its lease ends.
//! Both resume safely because an import run twice writes each line once (see [`super`]). Once
//! imported, the file is deleted.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use actix_web::web;
use chrono::{DateTime, Utc};

use super::{ImportActor, ImportError, ImportOptions, ImportReport, import_customers};
use crate::domain::EntrySource;
use crate::state::AppState;
use crate::store::{ImportCounts, ImportJob, ImportState, MAX_KEPT_ERRORS, StoreError};
use crate::telemetry::error_chain;

/// The largest file the console accepts.
pub const MAX_FILE_BYTES: usize = 50 * 1024 * 1024;

/// How long a runner holds a job without saving progress before another may take it.
const LEASE: Duration = Duration::from_secs(60);

/// How often a running job saves its progress.
const PROGRESS_EVERY: Duration = Duration::from_millis(500);

/// After this many attempts a job that keeps failing is given up (marked failed).
const MAX_ATTEMPTS: u32 = 20;

/// The wait before attempt `attempts + 1` of a job whose attempt failed: 1 s, doubling, at
/// most a minute.
pub fn retry_delay(attempts: u32) -> Duration {
    Duration::from_secs(1u64 << attempts.saturating_sub(1).min(6)).min(Duration::from_secs(60))
}

/// A new job for an uploaded file, due for its dry run at once.
pub fn new_job(program_id: &str, staff_id: &str, file_name: &str, file_bytes: u64, now: DateTime<Utc>) -> ImportJob {
    ImportJob {
        id: format!("imp_{}", crate::domain::tokens::random_string(b"abcdefghijkmnpqrstuvwxyz23456789", 20)),
        program_id: program_id.to_owned(),
        staff_id: staff_id.to_owned(),
        file_name: file_name.to_owned(),
        file_bytes,
        state: ImportState::Checking,
        encoding: None,
        delimiter: None,
        ignored_columns: Vec::new(),
        lines: 0,
        total: 0,
        done: 0,
        checked: None,
        imported: None,
        errors: Vec::new(),
        problem: None,
        attempts: 0,
        lease_until: now,
        links_queued: 0,
        created_at: now,
        updated_at: now,
        finished_at: None,
    }
}

/// Runs, in the background, the due jobs of this node until `id` is finished (checked, done or
/// failed): what the console starts after an upload or a confirmation.
pub fn start(state: web::Data<AppState>, id: String) {
    tokio::spawn(async move {
        loop {
            if let Err(e) = run_due(&state).await {
                tracing::warn!(error = %error_chain(&e), "running imports failed; trying again shortly");
            }
            let wait = match state.store.import_job(&id).await {
                Ok(Some(job)) if job.state.runnable() => {
                    (job.lease_until - state.clock.now()).to_std().unwrap_or_default().clamp(PROGRESS_EVERY, LEASE)
                }
                Ok(_) => return,
                Err(_) => Duration::from_secs(1),
            };
            tokio::time::sleep(wait).await;
        }
    });
}

/// Takes due jobs and runs them until none is due; returns how many attempts it made.
pub async fn run_due(state: &AppState) -> Result<usize, StoreError> {
    let mut ran = 0;
    loop {
        let now = state.clock.now();
        let Some(job) = state.store.take_import_job(now, now + lease()).await? else { return Ok(ran) };
        ran += 1;
        run(state, job).await;
    }
}

/// Takes up jobs left by nodes that stopped, and jobs due again after a failed attempt, every
/// `poll`, until dropped.
pub async fn run_forever(state: web::Data<AppState>, poll: Duration) {
    loop {
        if let Err(e) = run_due(&state).await {
            tracing::warn!(error = %error_chain(&e), "running imports failed; trying again shortly");
        }
        tokio::time::sleep(poll).await;
    }
}

fn lease() -> chrono::Duration {
    chrono::Duration::from_std(LEASE).unwrap_or_else(|_| chrono::Duration::minutes(1))
}

/// One attempt at a job taken with a lease: the dry run or the import, then its outcome saved.
async fn run(state: &AppState, mut job: ImportJob) {
    let dry_run = job.state == ImportState::Checking;
    tracing::info!(job = %job.id, attempt = job.attempts, dry_run, "import job started");
    let outcome = attempt(state, &job, dry_run).await;
    let now = state.clock.now();
    job.updated_at = now;
    let mut finished = false;
    match outcome {
        Ok(report) => {
            record_report(&mut job, &report);
            job.problem = None;
            job.state = if dry_run { ImportState::Checked } else { ImportState::Done };
            job.finished_at = (!dry_run).then_some(now);
            finished = !dry_run;
        }
        Err(Failure::File(why)) => {
            job.problem = Some(why);
            job.state = ImportState::Failed;
            job.finished_at = Some(now);
            finished = true;
        }
        Err(Failure::Again(why)) if job.attempts >= MAX_ATTEMPTS => {
            job.problem = Some(why);
            job.state = ImportState::Failed;
            job.finished_at = Some(now);
            finished = true;
        }
        Err(Failure::Again(why)) => {
            job.problem = Some(why);
            job.lease_until = now + chrono::Duration::from_std(retry_delay(job.attempts)).unwrap_or_default();
        }
    }
    match state.store.save_import_job(&job).await {
        Ok(true) => {}
        Ok(false) => tracing::warn!(job = %job.id, "an import job's lease was taken over; its other runner saves it"),
        Err(e) => {
            // The job stays leased; once the lease ends it is taken again and, being idempotent,
            // run again to the same end.
            tracing::warn!(job = %job.id, error = %error_chain(&e), "saving an import job failed");
            return;
        }
    }
    tracing::info!(job = %job.id, state = job.state.as_str(), "import job attempt ended");
    if finished {
        if let Err(e) = state.store.delete_import_file(&job.id).await {
            tracing::warn!(job = %job.id, error = %error_chain(&e), "deleting an imported file failed");
        }
    }
}

enum Failure {
    /// The file cannot be imported: no attempt will do better.
    File(String),
    /// This attempt failed; another may succeed.
    Again(String),
}

/// Reads the file and runs the import (or its dry run), saving progress as it goes.
async fn attempt(state: &AppState, job: &ImportJob, dry_run: bool) -> Result<ImportReport, Failure> {
    let again = |e: &StoreError| {
        tracing::warn!(job = %job.id, error = %error_chain(e), "an import attempt failed");
        Failure::Again("the store failed during the import; it is resumed shortly".to_owned())
    };
    let bytes = match state.store.import_file(&job.id).await {
        Ok(Some(bytes)) => bytes,
        Ok(None) => return Err(Failure::File("the uploaded file is no longer stored; upload it again".into())),
        Err(e) => return Err(again(&e)),
    };
    let program = state.program_by_id(&job.program_id).await.map_err(|_| {
        // The cause is logged by `program_by_id`.
        Failure::Again("the program cannot be read; the import is tried again shortly".to_owned())
    })?;
    let done = Arc::new(AtomicU64::new(0));
    let total = Arc::new(AtomicU64::new(0));
    let saver =
        tokio::spawn(save_progress(state.store.clone(), state.clock.clone(), job.clone(), done.clone(), total.clone()));
    let progress = |n: u64, of: u64| {
        done.store(n, Ordering::Relaxed);
        total.store(of, Ordering::Relaxed);
    };
    let options = ImportOptions {
        region: state.settings.default_phone_region,
        dry_run,
        actor: ImportActor { source: EntrySource::Admin, id: Some(job.staff_id.clone()) },
        now: state.clock.now(),
        job: Some(job.id.clone()),
    };
    let result = import_customers(state.store.as_ref(), &program, &bytes, &options, &progress).await;
    saver.abort();
    let _ = saver.await;
    match result {
        Ok(report) => Ok(report),
        Err(ImportError::File(e)) => Err(Failure::File(e.to_string())),
        Err(ImportError::Store(e)) => Err(again(&e)),
    }
}

/// Saves the running pass's progress (and renews the lease) every [`PROGRESS_EVERY`] until
/// aborted.
async fn save_progress(
    store: crate::store::DynStore,
    clock: Arc<dyn crate::clock::Clock>,
    mut job: ImportJob,
    done: Arc<AtomicU64>,
    total: Arc<AtomicU64>,
) {
    job.done = 0;
    job.total = 0;
    loop {
        tokio::time::sleep(PROGRESS_EVERY).await;
        let (n, of) = (done.load(Ordering::Relaxed), total.load(Ordering::Relaxed));
        if (n, of) == (job.done, job.total) {
            continue;
        }
        let now = clock.now();
        job.done = n;
        job.total = of;
        job.updated_at = now;
        job.lease_until = now + lease();
        match store.save_import_job(&job).await {
            Ok(true) => {}
            Ok(false) => return,
            Err(e) => tracing::warn!(job = %job.id, error = %error_chain(&e), "saving an import's progress failed"),
        }
    }
}

/// Puts a finished pass's counts and bad lines (the first [`MAX_KEPT_ERRORS`]) on the job.
fn record_report(job: &mut ImportJob, report: &ImportReport) {
    let counts = ImportCounts {
        created: report.created,
        updated: report.updated,
        skipped: report.skipped,
        bad: report.errors.len() as u64,
    };
    if report.dry_run {
        job.checked = Some(counts);
    } else {
        job.imported = Some(counts);
    }
    job.lines = report.lines;
    job.total = report.created + report.updated + report.skipped;
    job.done = job.total;
    job.errors = report.errors.iter().take(MAX_KEPT_ERRORS).cloned().collect();
    if let Some(shape) = &report.shape {
        job.encoding = Some(shape.encoding.to_owned());
        job.delimiter = Some(shape.delimiter.to_string());
        job.ignored_columns.clone_from(&shape.ignored_columns);
    }
}

/// Confirms a checked job: it becomes due for its import at once. `false` when the job is not
/// waiting for a confirmation (already confirmed, or not checked yet).
pub async fn confirm(state: &AppState, id: &str) -> Result<bool, StoreError> {
    let Some(mut job) = state.store.import_job(id).await? else { return Ok(false) };
    if job.state != ImportState::Checked {
        return Ok(false);
    }
    let now = state.clock.now();
    job.state = ImportState::Importing;
    job.done = 0;
    job.lease_until = now;
    job.updated_at = now;
    state.store.save_import_job(&job).await
}
