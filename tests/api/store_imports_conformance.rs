//! Console imports in the storage interface (`ImportStore`), on every backend: a job and its
//! file are stored and read back whole, a due job is taken once under a lease that returns it
//! when it lapses, only its current taker saves it, and the file goes when it is deleted.

use chrono::{Duration, Utc};
use loy::import::LineError;
use loy::import::jobs::new_job;
use loy::store::{FILE_CHUNK_BYTES, ImportCounts, ImportState};

use crate::helpers::StoreKind;
use crate::on_both_stores;
use crate::store_conformance::test_store;

on_both_stores!(
    a_job_and_a_file_of_several_chunks_read_back_whole,
    a_due_job_is_taken_once_and_returns_when_its_lease_lapses,
    only_the_current_taker_saves_a_job,
    jobs_waiting_for_the_owner_or_finished_are_never_taken,
);

fn now() -> chrono::DateTime<Utc> {
    loy::domain::card::stored_precision(Utc::now())
}

async fn a_job_and_a_file_of_several_chunks_read_back_whole(kind: StoreKind) {
    let t = test_store(kind).await;
    let file: Vec<u8> = (0..FILE_CHUNK_BYTES * 2 + 17).map(|i| (i % 251) as u8).collect();
    let mut job = new_job("default", "staff_1", "клиенты.csv", file.len() as u64, now());
    job.errors = vec![LineError { line: 3, reason: "the phone number is missing".into() }];
    job.checked = Some(ImportCounts { created: 5, updated: 1, skipped: 2, bad: 1 });
    let older = new_job("default", "staff_1", "old.csv", 1, now() - Duration::minutes(1));

    t.store.insert_import_job(&older, b"x").await.unwrap();
    t.store.insert_import_job(&job, &file).await.unwrap();

    assert_eq!(t.store.import_job(&job.id).await.unwrap().as_ref(), Some(&job));
    assert_eq!(t.store.import_file(&job.id).await.unwrap().as_deref(), Some(file.as_slice()));
    let listed: Vec<String> = t.store.import_jobs(10).await.unwrap().into_iter().map(|j| j.id).collect();
    assert_eq!(listed, [job.id.clone(), older.id.clone()], "newest first");
    t.store.delete_import_file(&job.id).await.unwrap();
    assert_eq!(t.store.import_file(&job.id).await.unwrap(), None);
    assert_eq!(t.store.import_file(&older.id).await.unwrap().as_deref(), Some(b"x".as_slice()));
    assert!(t.store.import_job("imp_missing").await.unwrap().is_none());
}

async fn a_due_job_is_taken_once_and_returns_when_its_lease_lapses(kind: StoreKind) {
    let t = test_store(kind).await;
    let t0 = now();
    let job = new_job("default", "staff_1", "a.csv", 1, t0);
    t.store.insert_import_job(&job, b"x").await.unwrap();

    let taken = t.store.take_import_job(t0, t0 + Duration::minutes(1)).await.unwrap().expect("the due job");
    let second = t.store.take_import_job(t0, t0 + Duration::minutes(1)).await.unwrap();
    let later = t0 + Duration::seconds(61);
    let again = t.store.take_import_job(later, later + Duration::minutes(1)).await.unwrap().expect("lease lapsed");

    assert_eq!((taken.id.as_str(), taken.attempts), (job.id.as_str(), 1));
    assert_eq!(taken.lease_until, t0 + Duration::minutes(1));
    assert!(second.is_none(), "a leased job is not taken twice");
    assert_eq!(again.attempts, 2);
}

async fn only_the_current_taker_saves_a_job(kind: StoreKind) {
    let t = test_store(kind).await;
    let t0 = now();
    t.store.insert_import_job(&new_job("default", "staff_1", "a.csv", 1, t0), b"x").await.unwrap();
    let mut first = t.store.take_import_job(t0, t0 + Duration::seconds(10)).await.unwrap().unwrap();
    let later = t0 + Duration::seconds(11);
    let mut second = t.store.take_import_job(later, later + Duration::minutes(1)).await.unwrap().unwrap();

    first.done = 7;
    second.state = ImportState::Checked;
    second.done = 9;
    let stale = t.store.save_import_job(&first).await.unwrap();
    let current = t.store.save_import_job(&second).await.unwrap();

    assert!(!stale, "the taker whose lease lapsed cannot save");
    assert!(current);
    let stored = t.store.import_job(&second.id).await.unwrap().unwrap();
    assert_eq!((stored.state, stored.done, stored.attempts), (ImportState::Checked, 9, 2));
}

async fn jobs_waiting_for_the_owner_or_finished_are_never_taken(kind: StoreKind) {
    let t = test_store(kind).await;
    let t0 = now();
    for state in [ImportState::Checked, ImportState::Done, ImportState::Failed] {
        let mut job = new_job("default", "staff_1", "a.csv", 1, t0 - Duration::minutes(5));
        job.state = state;
        t.store.insert_import_job(&job, b"x").await.unwrap();
    }
    let mut importing = new_job("default", "staff_1", "b.csv", 1, t0);
    importing.state = ImportState::Importing;
    t.store.insert_import_job(&importing, b"x").await.unwrap();

    let taken = t.store.take_import_job(t0, t0 + Duration::minutes(1)).await.unwrap().expect("the importing job");
    assert_eq!(taken.id, importing.id);
    assert!(t.store.take_import_job(t0, t0 + Duration::minutes(1)).await.unwrap().is_none());
}
