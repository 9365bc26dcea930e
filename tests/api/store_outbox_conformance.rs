//! The e-mail outbox of the storage interface (`MailStore`), on every backend: due mails are
//! taken once under a lease, a lapsed lease returns them, and only the current taker records
//! the outcome.

use chrono::{Duration, Utc};
use loy::domain::SerialNumber;
use loy::store::{MailState, OutboxMail};

use crate::helpers::StoreKind;
use crate::on_both_stores;
use crate::store_conformance::test_store;

on_both_stores!(
    a_due_mail_is_taken_once_and_returns_when_its_lease_lapses,
    only_the_current_taker_records_the_outcome,
    concurrent_takers_never_get_the_same_mail,
    failed_mails_are_listed_and_can_be_retried,
);

fn mail(id: &str, due: chrono::DateTime<Utc>) -> OutboxMail {
    OutboxMail {
        id: id.to_owned(),
        kind: "welcome".into(),
        serial: SerialNumber::parse("b8c3a5a4-3a0f-4c8e-9f3b-6f1f2d1e0a01").unwrap(),
        recipient: "anna@mail.test".into(),
        locale: "ru".into(),
        state: MailState::Pending,
        attempts: 0,
        next_attempt_at: due,
        last_error: None,
        created_at: due,
        updated_at: due,
    }
}

fn now() -> chrono::DateTime<Utc> {
    loy::domain::card::stored_precision(Utc::now())
}

async fn a_due_mail_is_taken_once_and_returns_when_its_lease_lapses(kind: StoreKind) {
    let t = test_store(kind).await;
    let t0 = now();
    t.store.enqueue_mail(&mail("ml_later", t0 + Duration::minutes(5))).await.unwrap();
    t.store.enqueue_mail(&mail("ml_due", t0)).await.unwrap();

    let taken = t.store.take_due_mail(t0, t0 + Duration::minutes(1)).await.unwrap().expect("the due mail");
    assert_eq!(taken.id, "ml_due");
    assert_eq!(taken.attempts, 1);
    assert_eq!(taken.recipient, "anna@mail.test");
    assert!(
        t.store.take_due_mail(t0, t0 + Duration::minutes(1)).await.unwrap().is_none(),
        "leased, and the other is not due"
    );

    let after_lease = t0 + Duration::seconds(61);
    let again = t.store.take_due_mail(after_lease, after_lease + Duration::minutes(1)).await.unwrap().unwrap();
    assert_eq!((again.id.as_str(), again.attempts), ("ml_due", 2), "a lapsed lease returns the mail");
}

async fn only_the_current_taker_records_the_outcome(kind: StoreKind) {
    let t = test_store(kind).await;
    let t0 = now();
    t.store.enqueue_mail(&mail("ml_one", t0)).await.unwrap();
    let first = t.store.take_due_mail(t0, t0 + Duration::seconds(1)).await.unwrap().unwrap();
    let later = t0 + Duration::seconds(2);
    let second = t.store.take_due_mail(later, later + Duration::minutes(1)).await.unwrap().unwrap();

    let stale = t.store.finish_mail(&first.id, first.attempts, MailState::Sent, later, None, later).await.unwrap();
    assert!(!stale, "the lapsed taker cannot record");
    let current = t
        .store
        .finish_mail(
            &second.id,
            second.attempts,
            MailState::Pending,
            later + Duration::minutes(2),
            Some("reply 451"),
            later,
        )
        .await
        .unwrap();
    assert!(current);
    let stored = t.store.mail("ml_one").await.unwrap().unwrap();
    assert_eq!(stored.state, MailState::Pending);
    assert_eq!(stored.last_error.as_deref(), Some("reply 451"));
    assert_eq!(stored.next_attempt_at, later + Duration::minutes(2));
}

async fn concurrent_takers_never_get_the_same_mail(kind: StoreKind) {
    let t = test_store(kind).await;
    let t0 = now();
    for i in 0..10 {
        t.store.enqueue_mail(&mail(&format!("ml_{i:02}"), t0)).await.unwrap();
    }
    let mut tasks = Vec::new();
    for _ in 0..16 {
        let store = t.store.clone();
        tasks.push(tokio::spawn(async move { store.take_due_mail(t0, t0 + Duration::minutes(5)).await.unwrap() }));
    }
    let mut ids: Vec<String> = Vec::new();
    for task in tasks {
        if let Some(m) = task.await.unwrap() {
            ids.push(m.id);
        }
    }
    ids.sort();
    let before = ids.len();
    ids.dedup();
    assert_eq!(before, 10, "every mail taken once");
    assert_eq!(ids.len(), 10, "no mail taken twice");
}

async fn failed_mails_are_listed_and_can_be_retried(kind: StoreKind) {
    let t = test_store(kind).await;
    let t0 = now();
    t.store.enqueue_mail(&mail("ml_bad", t0)).await.unwrap();
    let taken = t.store.take_due_mail(t0, t0 + Duration::minutes(1)).await.unwrap().unwrap();
    assert!(t.store.finish_mail("ml_bad", taken.attempts, MailState::Failed, t0, Some("reply 550"), t0).await.unwrap());

    let failed = t.store.mails_in_state(MailState::Failed, 10).await.unwrap();
    assert_eq!(failed.iter().map(|m| m.id.as_str()).collect::<Vec<_>>(), ["ml_bad"]);
    assert!(t.store.take_due_mail(t0, t0).await.unwrap().is_none(), "a failed mail is not taken");

    assert!(t.store.retry_mail("ml_bad", t0).await.unwrap());
    assert!(!t.store.retry_mail("ml_bad", t0).await.unwrap(), "only a failed mail is retried");
    let back = t.store.take_due_mail(t0, t0 + Duration::minutes(1)).await.unwrap().unwrap();
    assert_eq!((back.id.as_str(), back.attempts), ("ml_bad", 1), "attempts start again");
    assert!(t.store.mails_in_state(MailState::Failed, 10).await.unwrap().is_empty());
}
