//! API keys, scopes and signed webhooks.

use loy::domain::{Scope, WebhookSource};
use loy::pos::webhook::sign;
use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{StoreKind, TestApp, random_suffix, spawn_app};
use crate::on_both_stores;

on_both_stores!(
    requests_without_a_valid_active_key_are_401_and_a_pos_key_cannot_adjust,
    signed_webhooks_earn_and_unsigned_stale_or_forged_ones_are_refused,
);

async fn requests_without_a_valid_active_key_are_401_and_a_pos_key_cannot_adjust(kind: StoreKind) {
    let app = spawn_app(kind).await;
    let pos = app.api_key(Scope::Pos).await;
    let number = app.new_card().await;
    let lookup = format!("/api/v1/cards/{number}");

    assert_eq!(app.pos(Method::GET, &lookup, None, None, None).await.status, 401);
    let malformed = app.client.get(app.url(&lookup)).header("authorization", "Basic abc").send().await.unwrap();
    assert_eq!(malformed.status(), 401);
    let mut forged = pos.clone();
    forged.pop();
    forged.push(if pos.ends_with('x') { 'y' } else { 'x' });
    let wrong = app.pos_get(&lookup, &forged).await;
    assert_eq!((wrong.status, wrong.body["error"]["code"].as_str()), (401, Some("unauthorized")));
    assert_eq!(app.pos_get(&lookup, &pos).await.status, 200);

    let id = pos.split('_').nth(1).unwrap();
    assert!(app.store.revoke_api_key(id, chrono::Utc::now()).await.unwrap());
    assert_eq!(app.pos_get(&lookup, &pos).await.status, 401, "a revoked key stops working at once");

    let pos = app.api_key(Scope::Pos).await;
    let adjust = app.pos_post(&format!("{lookup}/adjust"), &pos, &json!({"points": 10, "reason": "x"})).await;
    assert_eq!((adjust.status, adjust.body["error"]["code"].as_str()), (403, Some("insufficient_scope")));
    let block = app.pos_post(&format!("{lookup}/block"), &pos, &json!({})).await;
    assert_eq!(block.status, 403);
    let admin = app.api_key(Scope::Admin).await;
    assert_eq!(
        app.pos_post(&format!("{lookup}/adjust"), &admin, &json!({"points": 10, "reason": "goodwill"})).await.status,
        200
    );
}

async fn post_webhook(app: &TestApp, source: &str, signature: Option<String>, body: &str) -> (u16, Value) {
    let mut request = app
        .client
        .post(app.url("/api/v1/webhooks/pos"))
        .header("content-type", "application/json")
        .header("x-loy-source", source);
    if let Some(signature) = signature {
        request = request.header("x-loy-signature", signature);
    }
    let response = request.body(body.to_owned()).send().await.unwrap();
    (response.status().as_u16(), response.json().await.unwrap())
}

async fn signed_webhooks_earn_and_unsigned_stale_or_forged_ones_are_refused(kind: StoreKind) {
    let app = spawn_app(kind).await;
    let source = WebhookSource::generate("Till system", chrono::Utc::now());
    app.store.insert_webhook_source(&source).await.unwrap();
    let number = app.new_card().await;
    let body = json!({"event_id": format!("evt-{}", random_suffix()), "type": "earn", "card": number, "purchase_amount": 200_000}).to_string();
    let now = app.clock_now().timestamp();

    let (status, answer) =
        post_webhook(&app, &source.id, Some(sign(&source.secret, now, body.as_bytes())), &body).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["points"], 100);
    assert_eq!(app.balance(&number).await, 200);

    let replay = post_webhook(&app, &source.id, Some(sign(&source.secret, now, body.as_bytes())), &body).await;
    assert_eq!(replay, (200, answer.clone()), "a replay is answered from the record");
    assert_eq!(app.balance(&number).await, 200, "and applies nothing");

    let unsigned = post_webhook(&app, &source.id, None, &body).await;
    assert_eq!(unsigned.0, 401);
    let forged = post_webhook(&app, &source.id, Some(sign("whsec_guess", now, body.as_bytes())), &body).await;
    assert_eq!((forged.0, forged.1["error"]["code"].as_str()), (401, Some("invalid_signature")));
    let stale = post_webhook(&app, &source.id, Some(sign(&source.secret, now - 301, body.as_bytes())), &body).await;
    assert_eq!((stale.0, stale.1["error"]["code"].as_str()), (401, Some("stale_signature")));
    let unknown_source =
        post_webhook(&app, "src_nosuchsource", Some(sign(&source.secret, now, body.as_bytes())), &body).await;
    assert_eq!(unknown_source.0, 401);
    let tampered = body.replace("200000", "900000");
    let tampered = post_webhook(&app, &source.id, Some(sign(&source.secret, now, body.as_bytes())), &tampered).await;
    assert_eq!(tampered.0, 401);

    app.store.revoke_webhook_source(&source.id, chrono::Utc::now()).await.unwrap();
    let other =
        json!({"event_id": "evt-after-revoke", "type": "earn", "card": number, "purchase_amount": 1000}).to_string();
    assert_eq!(post_webhook(&app, &source.id, Some(sign(&source.secret, now, other.as_bytes())), &other).await.0, 401);
    assert_eq!(app.balance(&number).await, 200);
}
