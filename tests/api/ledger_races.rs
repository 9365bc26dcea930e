//! Exactly-once, race by race: each interleaving that could apply a write twice or lose one is
//! played step by step with the store's pause points (`store::faults::points`), on both stores.

use std::time::Duration;

use chrono::Utc;
use futures_util::future::join_all;
use loy::domain::{Card, EntryKind, Scope};
use loy::store::faults::points;
use loy::store::{CardLookup, LedgerWrite};
use reqwest::Method;
use serde_json::json;

use crate::helpers::{StoreKind, TestApp, random_suffix, spawn_app};
use crate::on_both_stores;
use crate::store_conformance::{TestStore, customer, program, test_store};

on_both_stores!(
    a_second_commit_of_an_entry_or_a_second_reversal_of_a_transaction_matches_nothing,
    an_entry_being_settled_is_seen_by_every_reader_at_every_step,
    the_card_read_for_a_write_finds_the_writes_entry_pending_settled_or_old,
    a_waiting_duplicate_reads_the_idempotency_record,
    twenty_concurrent_reversals_of_one_transaction_with_different_keys_make_one,
    a_reversal_held_before_its_commit_is_refused_once_another_reversal_committed,
    a_reversal_while_the_first_one_settles_is_refused,
    a_request_whose_lease_is_taken_over_while_it_runs_applies_once,
    a_request_stalled_before_reading_its_card_whose_lease_is_taken_over_applies_once,
    an_error_after_the_commit_point_is_answered_as_success,
);

async fn insert(t: &TestStore, phone: &str) -> Card {
    let (card, welcome) = Card::enroll(&program(), customer(phone), None, Utc::now());
    t.store.insert_card(&card, &welcome).await.unwrap();
    card
}

/// A write of one entry of `kind` on `card` as read, with the given id.
fn write(card: &Card, id: &str, kind: EntryKind, points: i64, reverses: Option<&str>) -> LedgerWrite {
    let now = loy::domain::card::stored_precision(Utc::now());
    let entry = loy::domain::LedgerEntry {
        id: id.to_owned(),
        serial: card.serial.clone(),
        program_id: card.program_id.clone(),
        seq: card.version + 1,
        kind,
        points,
        rewards: 0,
        rewards_after: 0,
        purchase_amount: None,
        balance_after: card.balance + points,
        lifetime_after: card.lifetime_earned,
        tier_after: card.tier.clone(),
        order_id: None,
        description: None,
        source: loy::domain::EntrySource::Pos,
        actor: None,
        idempotency_key: None,
        reverses: reverses.map(str::to_owned),
        created_at: now,
    };
    let mut next = card.bumped(now);
    next.balance += points;
    LedgerWrite { card: next, expected_version: card.version, entries: vec![entry], completes: None }
}

async fn current(t: &TestStore, card: &Card) -> Card {
    t.store.find_card(CardLookup::Serial(&card.serial)).await.unwrap().unwrap()
}

async fn a_second_commit_of_an_entry_or_a_second_reversal_of_a_transaction_matches_nothing(kind: StoreKind) {
    let t = test_store(kind).await;
    let card = insert(&t, "+79120000601").await;
    assert!(t.store.commit_ledger(&write(&card, "tx_earn", EntryKind::Earn, 50, None)).await.unwrap());

    // The same entry id again, computed from the card as it is now (the version matches): a
    // request whose lease was taken over and that read the card after the other committed.
    let now = current(&t, &card).await;
    assert!(!t.store.commit_ledger(&write(&now, "tx_earn", EntryKind::Earn, 50, None)).await.unwrap());

    let reverse = write(&now, "tx_rev1", EntryKind::Reverse, -50, Some("tx_earn"));
    assert!(t.store.commit_ledger(&reverse).await.unwrap());
    // A second reversal of the same transaction, with its own id, from the current version.
    let now = current(&t, &card).await;
    assert!(!t.store.commit_ledger(&write(&now, "tx_rev2", EntryKind::Reverse, -50, Some("tx_earn"))).await.unwrap());

    let after = current(&t, &card).await;
    assert_eq!((after.balance, after.version), (100, card.version + 2), "only the first of each was applied");
    let entries = t.store.card_entries(&card.serial, None, usize::MAX).await.unwrap();
    assert_eq!(entries.len(), 3);
    assert_eq!(entries.iter().map(|e| e.points).sum::<i64>(), after.balance);
    assert!(t.store.entry("tx_rev2").await.unwrap().is_none());
}

/// Every reader finds `id` (and the reversal of `reversed`, if given).
async fn every_reader_finds(t: &TestStore, card: &Card, id: &str, reversed: &str, step: &str) {
    assert!(t.store.entry(id).await.unwrap().is_some(), "{step}: entry()");
    assert_eq!(
        t.store.reversal_of(reversed).await.unwrap().map(|e| e.id).as_deref(),
        Some(id),
        "{step}: reversal_of()"
    );
    let entries = t.store.card_entries(&card.serial, None, usize::MAX).await.unwrap();
    assert!(entries.iter().any(|e| e.id == id), "{step}: card_entries()");
    let read = t.store.card_for_write(CardLookup::Serial(&card.serial), id).await.unwrap().unwrap();
    assert!(read.existing.is_some(), "{step}: card_for_write()");
}

async fn an_entry_being_settled_is_seen_by_every_reader_at_every_step(kind: StoreKind) {
    let t = test_store(kind).await;
    let card = insert(&t, "+79120000602").await;
    assert!(t.store.commit_ledger(&write(&card, "tx_e", EntryKind::Earn, 50, None)).await.unwrap());
    let card = current(&t, &card).await;

    // Committed, not settled (MongoDB: only on the card's pending list).
    t.faults.fail_after(points::LEDGER_COMMITTED);
    assert!(t.store.commit_ledger(&write(&card, "tx_r", EntryKind::Reverse, -50, Some("tx_e"))).await.unwrap());
    t.faults.disarm();
    every_reader_finds(&t, &card, "tx_r", "tx_e", "committed").await;

    // Halfway through settling: in the collection and still pending.
    let mut halfway = t.faults.pause_at(points::SETTLE_BEFORE_PULL);
    let store = t.store.clone();
    let serial = card.serial.clone();
    let settling = tokio::spawn(async move { store.repair_card(&serial).await });
    let mongo = halfway.reached_within(Duration::from_secs(3)).await;
    assert_eq!(mongo, t.store.backend() == loy::store::Backend::MongoDb, "only MongoDB settles");
    every_reader_finds(&t, &card, "tx_r", "tx_e", "halfway").await;
    halfway.release();
    settling.await.unwrap().unwrap();
    every_reader_finds(&t, &card, "tx_r", "tx_e", "settled").await;

    // A settle that runs entirely between a reader's two reads.
    let card = current(&t, &card).await;
    t.faults.fail_after(points::LEDGER_COMMITTED);
    assert!(t.store.commit_ledger(&write(&card, "tx_e2", EntryKind::Earn, 7, None)).await.unwrap());
    t.faults.disarm();
    let mut between = t.faults.pause_at(points::READ_BETWEEN);
    let store = t.store.clone();
    let reader = tokio::spawn(async move { store.entry("tx_e2").await });
    if between.reached_within(Duration::from_secs(1)).await {
        t.store.repair_card(&card.serial).await.unwrap();
        between.release();
    } else {
        t.faults.disarm();
    }
    assert!(reader.await.unwrap().unwrap().is_some(), "the reader saw the entry being settled");
}

async fn the_card_read_for_a_write_finds_the_writes_entry_pending_settled_or_old(kind: StoreKind) {
    let t = test_store(kind).await;
    let card = insert(&t, "+79120000603").await;
    let none = t.store.card_for_write(CardLookup::Number(&card.card_number), "tx_never").await.unwrap().unwrap();
    assert_eq!(none.card, card);
    assert!(none.existing.is_none());
    assert!(
        t.store
            .card_for_write(CardLookup::Serial(&loy::domain::SerialNumber::generate()), "x")
            .await
            .unwrap()
            .is_none()
    );

    assert!(t.store.commit_ledger(&write(&card, "tx_first", EntryKind::Earn, 1, None)).await.unwrap());
    // Many writes later the first entry is no longer among the card's most recent ones.
    for i in 0..70 {
        let now = current(&t, &card).await;
        assert!(t.store.commit_ledger(&write(&now, &format!("tx_more{i}"), EntryKind::Earn, 1, None)).await.unwrap());
    }
    let old = t.store.card_for_write(CardLookup::Barcode(card.barcode.as_str()), "tx_first").await.unwrap().unwrap();
    assert_eq!(old.existing.map(|e| e.points), Some(1));
    let fresh = t.store.card_for_write(CardLookup::Serial(&card.serial), "tx_fresh").await.unwrap().unwrap();
    assert!(fresh.existing.is_none());
    assert_eq!(fresh.card.balance, 100 + 71);
}

async fn a_waiting_duplicate_reads_the_idempotency_record(kind: StoreKind) {
    use loy::store::{IdempotencyKey, IdempotencyRecord, StoredResponse};
    let t = test_store(kind).await;
    let key = IdempotencyKey { scope: "k".into(), key: "order-7".into() };
    assert!(t.store.idempotency_get(&key).await.unwrap().is_none());
    let now = loy::domain::card::stored_precision(Utc::now());
    let record = IdempotencyRecord {
        key: key.clone(),
        request_hash: "h".into(),
        entry_id: "tx_7".into(),
        lease_until: now + chrono::Duration::seconds(10),
        response: None,
        created_at: now,
        expires_at: now + chrono::Duration::hours(48),
    };
    t.store.idempotency_start(&record).await.unwrap();
    assert_eq!(t.store.idempotency_get(&key).await.unwrap(), Some(record.clone()));
    let response = StoredResponse { status: 200, body: "{}".into() };
    t.store.idempotency_complete(&key, &response).await.unwrap();
    assert_eq!(t.store.idempotency_get(&key).await.unwrap().and_then(|r| r.response), Some(response));
}

/// A card with a 1 000.00 purchase on it; returns (card number, the earn's transaction id).
async fn card_with_an_earn(app: &TestApp, pos: &str) -> (String, String) {
    let number = app.new_card().await;
    let earn = app.pos_post(format!("/api/v1/cards/{number}/earn"), pos, json!({"purchase_amount": 100_000})).await;
    assert_eq!(earn.status, 200, "{earn:?}");
    (number, earn.body["transaction_id"].as_str().unwrap().to_owned())
}

async fn assert_one_reversal(app: &TestApp, number: &str) {
    let entries = app.entries(number).await;
    assert_eq!(entries.iter().filter(|e| e.kind == EntryKind::Reverse).count(), 1, "{entries:?}");
    assert_eq!(app.balance(number).await, 100);
    app.assert_ledger_consistent().await;
}

async fn twenty_concurrent_reversals_of_one_transaction_with_different_keys_make_one(kind: StoreKind) {
    let app = spawn_app(kind).await;
    let pos = app.api_key(Scope::Pos).await;
    let (number, tx) = card_with_an_earn(&app, &pos).await;
    let path = format!("/api/v1/transactions/{tx}/reverse");

    let answers = join_all((0..20).map(|_| app.pos_post(&path, &pos, json!({})))).await;

    let ok: Vec<_> = answers.iter().filter(|a| a.status == 200).collect();
    assert_eq!(ok.len(), 1, "{answers:?}");
    let reversal = ok[0].body["transaction_id"].as_str().unwrap();
    for refused in answers.iter().filter(|a| a.status != 200) {
        assert_eq!((refused.status, refused.body["error"]["code"].as_str()), (409, Some("already_reversed")));
    }
    let stored = app.pos_get(&format!("/api/v1/cards/{number}/transactions"), &pos).await;
    assert_eq!(stored.body["transactions"][0]["id"], reversal, "the answered reversal is the stored one");
    assert_one_reversal(&app, &number).await;
}

async fn a_reversal_held_before_its_commit_is_refused_once_another_reversal_committed(kind: StoreKind) {
    let app = spawn_app(kind).await;
    let pos = app.api_key(Scope::Pos).await;
    let (number, tx) = card_with_an_earn(&app, &pos).await;
    let path = format!("/api/v1/transactions/{tx}/reverse");

    let mut held = app.faults.pause_at(points::LEDGER_BEFORE_COMMIT);
    let first = tokio::spawn({
        let (client, url, pos) = (app.client.clone(), app.url(&path), pos.clone());
        async move { client.post(url).bearer_auth(pos).header("Idempotency-Key", "first").send().await.unwrap() }
    });
    held.wait().await;
    let second = app.pos(Method::POST, &path, Some(&pos), Some("second"), None).await;
    held.release();
    let first = first.await.unwrap();

    assert_eq!(second.status, 200, "{second:?}");
    assert_eq!(first.status(), 409);
    let body: serde_json::Value = first.json().await.unwrap();
    assert_eq!(body["error"]["code"], "already_reversed");
    assert_one_reversal(&app, &number).await;
}

async fn a_reversal_while_the_first_one_settles_is_refused(kind: StoreKind) {
    let app = spawn_app(kind).await;
    let pos = app.api_key(Scope::Pos).await;
    let (number, tx) = card_with_an_earn(&app, &pos).await;
    let path = format!("/api/v1/transactions/{tx}/reverse");

    // The first reversal is committed and held halfway through settling (MongoDB), or done.
    let mut settling = app.faults.pause_at(points::SETTLE_BEFORE_PULL);
    let first = tokio::spawn({
        let (client, url, pos) = (app.client.clone(), app.url(&path), pos.clone());
        async move { client.post(url).bearer_auth(pos).header("Idempotency-Key", "first").send().await.unwrap() }
    });
    let held = settling.reached_within(Duration::from_secs(3)).await;
    let during = app.pos(Method::POST, &path, Some(&pos), Some("during"), None).await;
    settling.release();
    let first = first.await.unwrap();
    assert_eq!(held, app.store.backend() == loy::store::Backend::MongoDb);
    assert_eq!(first.status(), 200);
    assert_eq!((during.status, during.body["error"]["code"].as_str()), (409, Some("already_reversed")), "{during:?}");

    // And while it is only on the card (its settling failed after the commit point).
    let (number2, tx2) = card_with_an_earn(&app, &pos).await;
    let path2 = format!("/api/v1/transactions/{tx2}/reverse");
    app.faults.fail_after(points::LEDGER_COMMITTED);
    let first2 = app.pos(Method::POST, &path2, Some(&pos), Some("first2"), None).await;
    app.faults.disarm();
    let second2 = app.pos(Method::POST, &path2, Some(&pos), Some("second2"), None).await;
    assert_eq!(first2.status, 200, "{first2:?}");
    assert_eq!((second2.status, second2.body["error"]["code"].as_str()), (409, Some("already_reversed")));
    assert_one_reversal(&app, &number).await;
    assert_one_reversal(&app, &number2).await;
}

async fn a_request_whose_lease_is_taken_over_while_it_runs_applies_once(kind: StoreKind) {
    let app = spawn_app(kind).await;
    let pos = app.api_key(Scope::Pos).await;
    let number = app.new_card().await;
    let path = format!("/api/v1/cards/{number}/earn");
    let key = random_suffix();
    let body = json!({"purchase_amount": 200_000});

    // The first request has read the card and is about to commit when it stalls…
    let mut stalled = app.faults.pause_at(points::LEDGER_BEFORE_COMMIT);
    let first = tokio::spawn({
        let (client, url, pos, key, body) =
            (app.client.clone(), app.url(&path), pos.clone(), key.clone(), body.clone());
        async move { client.post(url).bearer_auth(pos).header("Idempotency-Key", key).json(&body).send().await.unwrap() }
    });
    stalled.wait().await;
    // …long enough for its lease to run out: a retry takes the key over and applies the write.
    app.clock.advance(chrono::Duration::seconds(11));
    let retry = app.pos(Method::POST, &path, Some(&pos), Some(&key), Some(&body)).await;
    assert_eq!(retry.status, 200, "{retry:?}");
    // The first one wakes up and must not apply it again.
    stalled.release();
    let first = first.await.unwrap();
    assert_eq!(first.status(), 200);
    let first: serde_json::Value = first.json().await.unwrap();

    assert_eq!(first, retry.body, "both answers describe the one write");
    let applied = app.entries(&number).await.into_iter().filter(|e| e.idempotency_key.as_deref() == Some(&key)).count();
    assert_eq!(applied, 1);
    assert_eq!(app.balance(&number).await, 100 + 100);
    app.assert_ledger_consistent().await;
}

async fn a_request_stalled_before_reading_its_card_whose_lease_is_taken_over_applies_once(kind: StoreKind) {
    let app = spawn_app(kind).await;
    let pos = app.api_key(Scope::Pos).await;
    let number = app.new_card().await;
    let path = format!("/api/v1/cards/{number}/earn");
    let key = random_suffix();
    let body = json!({"purchase_amount": 200_000});

    // Stalled right after taking the key, before reading the card: it will read the card after
    // the retry committed, at the card's new version.
    let mut stalled = app.faults.pause_at(points::CLAIMED);
    let first = tokio::spawn({
        let (client, url, pos, key, body) =
            (app.client.clone(), app.url(&path), pos.clone(), key.clone(), body.clone());
        async move { client.post(url).bearer_auth(pos).header("Idempotency-Key", key).json(&body).send().await.unwrap() }
    });
    stalled.wait().await;
    app.clock.advance(chrono::Duration::seconds(11));
    let retry = app.pos(Method::POST, &path, Some(&pos), Some(&key), Some(&body)).await;
    assert_eq!(retry.status, 200, "{retry:?}");
    // More writes to the card meanwhile, so the entry is not the card's latest.
    for _ in 0..3 {
        assert_eq!(app.pos_post(&path, &pos, json!({"purchase_amount": 100})).await.status, 200);
    }
    stalled.release();
    let first = first.await.unwrap();
    assert_eq!(first.status(), 200);
    let first: serde_json::Value = first.json().await.unwrap();

    assert_eq!(first["transaction_id"], retry.body["transaction_id"]);
    let applied = app.entries(&number).await.into_iter().filter(|e| e.idempotency_key.as_deref() == Some(&key)).count();
    assert_eq!(applied, 1);
    app.assert_ledger_consistent().await;
}

async fn an_error_after_the_commit_point_is_answered_as_success(kind: StoreKind) {
    let app = spawn_app(kind).await;
    let pos = app.api_key(Scope::Pos).await;

    // A plain earn: the first store call after the commit fails (settling on MongoDB).
    let number = app.new_card().await;
    let key = random_suffix();
    let path = format!("/api/v1/cards/{number}/earn");
    let body = json!({"purchase_amount": 100_000});
    app.faults.fail_after(points::LEDGER_COMMITTED);
    let answer = app.pos(Method::POST, &path, Some(&pos), Some(&key), Some(&body)).await;
    app.faults.disarm();
    assert_eq!(answer.status, 200, "{answer:?}");
    assert_eq!(app.balance(&number).await, 150);
    let again = app.pos(Method::POST, &path, Some(&pos), Some(&key), Some(&body)).await;
    assert_eq!((again.status, &again.body), (200, &answer.body), "a retry gets the same answer");
    assert_eq!(app.balance(&number).await, 150, "and applies nothing");

    // An invited customer's first purchase: the failure hits the inviting card's bonus.
    let inviter_number = app.new_card().await;
    let inviter = app.card(&inviter_number).await;
    let invited: serde_json::Value = app
        .post_enrollment(&json!({"first_name": "Boris", "phone": crate::helpers::unique_phone(), "consent": true,
            "referral_code": inviter.referral_code.as_str()}))
        .await
        .json()
        .await
        .unwrap();
    let invited_number = invited["card"]["card_number"].as_str().unwrap();
    app.faults.fail_after(points::LEDGER_COMMITTED);
    let first = app.pos_post(format!("/api/v1/cards/{invited_number}/earn"), &pos, &body).await;
    app.faults.disarm();
    assert_eq!(first.status, 200, "{first:?}");
    assert_eq!(first.body["referral_bonus"], 100);
    // The inviting card is paid by the ledger check (or a retry), never lost and never twice.
    let program = app.store.program("default").await.unwrap().unwrap();
    let report = loy::ledger::check::check_all(app.store.as_ref(), &program, Utc::now()).await.unwrap();
    assert!(report.mismatches.is_empty(), "{:?}", report.mismatches);
    assert!(report.repaired_referrals <= 1);
    assert_eq!(app.balance(&inviter_number).await, 200);
    let again = loy::ledger::check::check_all(app.store.as_ref(), &program, Utc::now()).await.unwrap();
    assert_eq!(again.repaired_referrals, 0);
    assert_eq!(app.balance(&inviter_number).await, 200);
}

/// The round trips of one POS write on MongoDB (the store's steps), so a change that adds one
/// is seen: API key, idempotency record, program, card, commit, settle (insert and pull),
/// answer. A reversal also reads the transaction it reverses and looks for an earlier reversal.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pos_write_on_mongodb_takes_a_known_number_of_round_trips() {
    let Some(kind) = StoreKind::mongo() else { return };
    let app = spawn_app(kind).await;
    let pos = app.api_key(Scope::Pos).await;
    let (number, _) = card_with_an_earn(&app, &pos).await;
    let mut counted = Vec::new();
    for (verb, body) in [("earn", json!({"purchase_amount": 100_000})), ("redeem", json!({"points": 100}))] {
        app.faults.start_counting();
        assert_eq!(app.pos_post(format!("/api/v1/cards/{number}/{verb}"), &pos, body).await.status, 200);
        counted.push((verb, app.faults.calls()));
    }
    let (_, tx) = card_with_an_earn(&app, &pos).await;
    app.faults.start_counting();
    assert_eq!(app.pos_post(format!("/api/v1/transactions/{tx}/reverse"), &pos, json!({})).await.status, 200);
    counted.push(("reverse", app.faults.calls()));
    println!("MongoDB round trips per POS write: {counted:?}");
    for ((verb, count), most) in counted.iter().zip([8, 8, 12]) {
        assert!(*count <= most, "{verb} took {count} round trips, more than the {most} it needs");
    }
}
