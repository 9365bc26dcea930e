//! Exactly-once under races, retries and failures (issue: the money of the system).

use futures_util::future::join_all;
use loy::domain::{EntryKind, Scope};
use reqwest::Method;
use serde_json::json;

use crate::helpers::{StoreKind, random_suffix, spawn_app};
use crate::on_both_stores;

on_both_stores!(
    fifty_concurrent_redeems_of_a_thousand_points_let_exactly_ten_through,
    fifty_concurrent_earns_lose_no_update,
    one_request_retried_twenty_times_at_once_applies_once_with_identical_answers,
    a_failure_at_any_step_then_a_retry_applies_exactly_once,
);

async fn fifty_concurrent_redeems_of_a_thousand_points_let_exactly_ten_through(kind: StoreKind) {
    let app = spawn_app(kind).await;
    let admin = app.api_key(Scope::Admin).await;
    let pos = app.api_key(Scope::Pos).await;
    let number = app.card_with_balance(&admin, 1000).await;
    let path = format!("/api/v1/cards/{number}/redeem");

    let answers = join_all((0..50).map(|_| app.pos_post(&path, &pos, json!({"points": 100})))).await;

    let ok = answers.iter().filter(|a| a.status == 200).count();
    let refused: Vec<_> = answers.iter().filter(|a| a.status != 200).collect();
    assert_eq!(ok, 10, "{answers:?}");
    assert!(refused.iter().all(|a| a.status == 422 && a.body["error"]["code"] == "insufficient_points"), "{refused:?}");
    assert_eq!(app.balance(&number).await, 0);
    let entries = app.entries(&number).await;
    assert_eq!(entries.iter().filter(|e| e.kind == EntryKind::Redeem).count(), 10);
    assert!(entries.iter().all(|e| e.balance_after >= 0), "the balance never went negative");
    let mut balances: Vec<i64> =
        answers.iter().filter(|a| a.status == 200).map(|a| a.body["balance"].as_i64().unwrap()).collect();
    balances.sort();
    assert_eq!(balances, (0..10).map(|i| i * 100).collect::<Vec<_>>(), "each success saw its own balance");
    app.assert_ledger_consistent().await;
}

async fn fifty_concurrent_earns_lose_no_update(kind: StoreKind) {
    let app = spawn_app(kind).await;
    let pos = app.api_key(Scope::Pos).await;
    let number = app.new_card().await;
    let path = format!("/api/v1/cards/{number}/earn");

    let answers = join_all(
        (0..50).map(|i| app.pos_post(&path, &pos, json!({"purchase_amount": 100_000, "order_id": format!("o{i}")}))),
    )
    .await;

    assert!(answers.iter().all(|a| a.status == 200), "{answers:?}");
    let earned: i64 = answers.iter().map(|a| a.body["points"].as_i64().unwrap()).sum();
    assert_eq!(app.balance(&number).await, 100 + earned);
    let entries = app.entries(&number).await;
    assert_eq!(entries.iter().filter(|e| e.kind == EntryKind::Earn).count(), 50);
    assert_eq!(entries.iter().map(|e| e.points).sum::<i64>(), 100 + earned);
    // 1 000 ₽ at 5 % is 50 points until Silver at 500 lifetime points, then 100 at 10 %, …
    assert!(earned > 50 * 50, "cashback grew with the tier: {earned}");
    app.assert_ledger_consistent().await;
}

async fn one_request_retried_twenty_times_at_once_applies_once_with_identical_answers(kind: StoreKind) {
    let app = spawn_app(kind).await;
    let pos = app.api_key(Scope::Pos).await;
    let number = app.new_card().await;
    let path = format!("/api/v1/cards/{number}/earn");
    let key = random_suffix();
    let body = json!({"purchase_amount": 123_450, "order_id": "A-1"});

    let answers = join_all((0..20).map(|_| app.pos(Method::POST, &path, Some(&pos), Some(&key), Some(&body)))).await;

    assert!(answers.iter().all(|a| a == &answers[0]), "all answers identical: {answers:?}");
    assert_eq!(answers[0].status, 200);
    assert_eq!(answers[0].body["points"], 61);
    assert_eq!(app.balance(&number).await, 161);
    assert_eq!(app.entries(&number).await.len(), 2, "welcome + one earn");

    let later = app.pos(Method::POST, &path, Some(&pos), Some(&key), Some(&body)).await;
    assert_eq!(later, answers[0], "a later retry gets the first answer");
    let different = app.pos(Method::POST, &path, Some(&pos), Some(&key), Some(&json!({"purchase_amount": 1}))).await;
    assert_eq!(different.status, 422);
    assert_eq!(different.body["error"]["code"], "idempotency_key_reused");
    let other_key = app.api_key(Scope::Pos).await;
    let same_key_other_client = app.pos(Method::POST, &path, Some(&other_key), Some(&key), Some(&body)).await;
    assert_eq!(same_key_other_client.status, 200, "keys are scoped to the API key");
    assert_eq!(app.balance(&number).await, 222);
}

async fn a_failure_at_any_step_then_a_retry_applies_exactly_once(kind: StoreKind) {
    let app = spawn_app(kind).await;
    let pos = app.api_key(Scope::Pos).await;
    let number = app.new_card().await;
    let path = format!("/api/v1/cards/{number}/earn");
    let body = json!({"purchase_amount": 100_000});

    // Count the store calls of one clean request.
    app.faults.start_counting();
    let clean = app.pos_post(&path, &pos, &body).await;
    assert_eq!(clean.status, 200);
    let steps = app.faults.calls();
    assert!(steps >= 4, "an earn takes several store calls ({steps})");

    let mut expected_balance = app.balance(&number).await;
    for n in 1..=steps {
        let key = format!("crash-{n}-{}", random_suffix());
        app.faults.fail_on_call(n);
        let first = app.pos(Method::POST, &path, Some(&pos), Some(&key), Some(&body)).await;
        app.faults.disarm();
        assert!(first.status == 200 || first.status == 503 || first.status == 401, "step {n}: {first:?}");

        let retry = app.pos(Method::POST, &path, Some(&pos), Some(&key), Some(&body)).await;

        assert_eq!(retry.status, 200, "step {n}: {retry:?}");
        if first.status == 200 {
            assert_eq!(retry, first, "step {n}: the retry got the first answer");
        }
        let applied: Vec<_> =
            app.entries(&number).await.into_iter().filter(|e| e.idempotency_key.as_deref() == Some(&key)).collect();
        assert_eq!(applied.len(), 1, "step {n}: applied exactly once");
        expected_balance += applied[0].points;
        assert_eq!(app.balance(&number).await, expected_balance, "step {n}");
        assert_eq!(retry.body["balance"].as_i64().unwrap(), expected_balance, "step {n}");
    }
    app.assert_ledger_consistent().await;
}
