//! Card lookup, transaction pages and bad input on every POS endpoint.

use loy::domain::Scope;
use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{StoreKind, spawn_app};
use crate::on_both_stores;

on_both_stores!(
    a_card_is_found_by_barcode_by_number_with_spaces_and_by_phone,
    transactions_are_listed_newest_first_with_a_cursor,
    bad_input_on_every_write_endpoint_is_a_clear_4xx_and_changes_nothing,
    bad_input_on_reversals_blocking_and_webhooks_is_a_clear_4xx,
);

async fn a_card_is_found_by_barcode_by_number_with_spaces_and_by_phone(kind: StoreKind) {
    let app = spawn_app(kind).await;
    let pos = app.api_key(Scope::Pos).await;
    let enrolled = app
        .post_enrollment(
            &json!({"first_name": "Anna", "last_name": "Ivanova", "phone": "+7 912 555 01 02", "consent": true}),
        )
        .await
        .json::<Value>()
        .await
        .unwrap();
    let number = enrolled["card"]["card_number"].as_str().unwrap().to_owned();
    let card = app.card(&number).await;

    let by_barcode = app.pos_get(&format!("/api/v1/cards/{}", card.barcode), &pos).await;
    let grouped = card.card_number.grouped().replace(' ', "%20");
    let by_spaced_number = app.pos_get(&format!("/api/v1/cards/{grouped}"), &pos).await;
    let by_phone = app.pos_get("/api/v1/cards?phone=8%20912%20555%2001%2002", &pos).await;

    assert_eq!(by_barcode.status, 200);
    assert_eq!(by_barcode, by_spaced_number);
    assert_eq!(by_barcode, by_phone);
    assert_eq!(
        by_barcode.body,
        json!({
            "card_number": number,
            "serial_number": card.serial.as_str(),
            "first_name": "Anna",
            "last_name": "I.",
            "balance": 100,
            "lifetime_earned": 0,
            "tier": {"id": "bronze", "name": "Bronze", "cashback_percent": 5.0},
            "status": "active",
            "redeem": {"available_points": 100, "min_redemption": 100, "max_share_percent": 50},
            "referral_code": card.referral_code.as_str(),
            "mechanic": "points"
        })
    );
    for missing in
        ["/api/v1/cards/4111111111111111", "/api/v1/cards/NOSUCHBARCODE", "/api/v1/cards?phone=%2B79990000000"]
    {
        let answer = app.pos_get(missing, &pos).await;
        assert_eq!((answer.status, answer.body["error"]["code"].as_str()), (404, Some("card_not_found")), "{missing}");
    }
    assert_eq!(app.pos_get("/api/v1/cards?phone=garbage", &pos).await.status, 422);
    assert_eq!(app.pos_get("/api/v1/cards", &pos).await.status, 400, "phone is required");
}

async fn transactions_are_listed_newest_first_with_a_cursor(kind: StoreKind) {
    let app = spawn_app(kind).await;
    let pos = app.api_key(Scope::Pos).await;
    let number = app.new_card().await;
    for i in 1..=4 {
        app.pos_post(
            &format!("/api/v1/cards/{number}/earn"),
            &pos,
            &json!({"purchase_amount": i * 10_000, "order_id": format!("o{i}")}),
        )
        .await;
    }

    let first = app.pos_get(&format!("/api/v1/cards/{number}/transactions?limit=3"), &pos).await;
    assert_eq!(first.status, 200);
    let orders: Vec<_> = first.body["transactions"].as_array().unwrap().iter().map(|t| t["order_id"].clone()).collect();
    assert_eq!(orders, [json!("o4"), json!("o3"), json!("o2")]);
    let cursor = first.body["next_cursor"].as_str().unwrap().to_owned();
    let second = app.pos_get(&format!("/api/v1/cards/{number}/transactions?limit=3&cursor={cursor}"), &pos).await;
    let kinds: Vec<_> = second.body["transactions"].as_array().unwrap().iter().map(|t| t["type"].clone()).collect();
    assert_eq!(kinds, [json!("earn"), json!("welcome")]);
    assert_eq!(second.body["next_cursor"], Value::Null);
    let tx = &first.body["transactions"][0];
    assert_eq!(tx["points"], 20);
    assert_eq!(tx["purchase_amount"], 40_000);
    assert_eq!(tx["source"], "pos");

    for bad in ["?limit=0", "?limit=101", "?limit=x", "?cursor=abc", "?cursor=-1", "?unknown=1"] {
        let answer = app.pos_get(&format!("/api/v1/cards/{number}/transactions{bad}"), &pos).await;
        assert!(answer.status == 400 || answer.status == 422, "{bad}: {answer:?}");
        assert!(answer.body["error"]["code"].is_string(), "{bad}");
    }
}

async fn bad_input_on_every_write_endpoint_is_a_clear_4xx_and_changes_nothing(kind: StoreKind) {
    let app = spawn_app(kind).await;
    let admin = app.api_key(Scope::Admin).await;
    let number = app.card_with_balance(&admin, 1000).await;
    let earn = format!("/api/v1/cards/{number}/earn");
    let redeem = format!("/api/v1/cards/{number}/redeem");
    let adjust = format!("/api/v1/cards/{number}/adjust");
    let cases: Vec<(&str, &String, Value, u16, &str)> = vec![
        ("zero amount", &earn, json!({"purchase_amount": 0}), 422, "invalid_amount"),
        ("negative amount", &earn, json!({"purchase_amount": -100}), 422, "invalid_amount"),
        ("fractional amount", &earn, json!({"purchase_amount": 10.5}), 422, "invalid_field"),
        ("amount as text", &earn, json!({"purchase_amount": "100"}), 422, "invalid_field"),
        ("amount beyond i64", &earn, json!({"purchase_amount": 1e30}), 422, "invalid_field"),
        ("amount beyond the limit", &earn, json!({"purchase_amount": i64::MAX}), 422, "invalid_amount"),
        ("missing amount", &earn, json!({}), 422, "invalid_field"),
        ("unknown field", &earn, json!({"purchase_amount": 100, "bonus": 5}), 422, "invalid_field"),
        ("long order id", &earn, json!({"purchase_amount": 100, "order_id": "x".repeat(129)}), 422, "invalid_text"),
        ("zero points", &redeem, json!({"points": 0}), 422, "invalid_points"),
        ("negative points", &redeem, json!({"points": -100}), 422, "invalid_points"),
        ("huge points", &redeem, json!({"points": i64::MAX}), 422, "invalid_points"),
        ("negative purchase", &redeem, json!({"points": 100, "purchase_amount": -1}), 422, "invalid_amount"),
        ("zero adjustment", &adjust, json!({"points": 0, "reason": "x"}), 422, "invalid_points"),
        ("adjustment without reason", &adjust, json!({"points": 5}), 422, "invalid_field"),
        ("blank reason", &adjust, json!({"points": 5, "reason": "  "}), 422, "required"),
        ("below zero", &adjust, json!({"points": -1001, "reason": "x"}), 422, "insufficient_points"),
    ];
    for (what, path, body, status, code) in cases {
        let answer = app.pos_post(path, &admin, &body).await;
        assert_eq!((answer.status, answer.body["error"]["code"].as_str()), (status, Some(code)), "{what}: {answer:?}");
    }
    let unknown_card = app.pos_post("/api/v1/cards/NOSUCHCARD/earn", &admin, &json!({"purchase_amount": 100})).await;
    assert_eq!((unknown_card.status, unknown_card.body["error"]["code"].as_str()), (404, Some("card_not_found")));
    let no_key = app.pos(Method::POST, &earn, Some(&admin), None, Some(&json!({"purchase_amount": 100}))).await;
    assert_eq!((no_key.status, no_key.body["error"]["code"].as_str()), (400, Some("idempotency_key_required")));
    let broken = app
        .client
        .post(app.url(&earn))
        .bearer_auth(&admin)
        .header("Idempotency-Key", "k1")
        .header("content-type", "application/json")
        .body("{")
        .send()
        .await
        .unwrap();
    assert_eq!(broken.status(), 400);
    let text = app
        .client
        .post(app.url(&earn))
        .bearer_auth(&admin)
        .header("Idempotency-Key", "k2")
        .header("content-type", "text/plain")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(text.status(), 415);
    let big = app
        .client
        .post(app.url(&earn))
        .bearer_auth(&admin)
        .header("Idempotency-Key", "k3")
        .json(&json!({"description": "x".repeat(70_000)}))
        .send()
        .await
        .unwrap();
    assert_eq!(big.status(), 413);
    assert_eq!(app.balance(&number).await, 1000, "nothing changed");
    assert_eq!(app.entries(&number).await.len(), 2);
}

async fn bad_input_on_reversals_blocking_and_webhooks_is_a_clear_4xx(kind: StoreKind) {
    let app = spawn_app(kind).await;
    let admin = app.api_key(Scope::Admin).await;
    let number = app.card_with_balance(&admin, 500).await;
    let earned = app.pos_post(format!("/api/v1/cards/{number}/earn"), &admin, json!({"purchase_amount": 10_000})).await;
    let reverse = format!("/api/v1/transactions/{}/reverse", earned.body["transaction_id"].as_str().unwrap());

    let unknown_field = app.pos_post(&reverse, &admin, json!({"reason": "x", "points": 5})).await;
    assert_eq!((unknown_field.status, unknown_field.body["error"]["field"].as_str()), (422, Some("points")));
    let long_reason = app.pos_post(&reverse, &admin, json!({"reason": "x".repeat(501)})).await;
    assert_eq!((long_reason.status, long_reason.body["error"]["code"].as_str()), (422, Some("invalid_text")));
    let text = app
        .client
        .post(app.url(&reverse))
        .bearer_auth(&admin)
        .header("Idempotency-Key", "r1")
        .header("content-type", "text/plain")
        .body("refund")
        .send()
        .await
        .unwrap();
    assert_eq!(text.status(), 415);
    let no_key = app.pos(Method::POST, &reverse, Some(&admin), None, None).await;
    assert_eq!(no_key.status, 400);
    let block_unknown = app.pos_post("/api/v1/cards/NOSUCHCARD/block", &admin, json!({})).await;
    assert_eq!((block_unknown.status, block_unknown.body["error"]["code"].as_str()), (404, Some("card_not_found")));
    assert_eq!(app.balance(&number).await, 500 + 5, "nothing was reversed");

    let source = loy::domain::WebhookSource::generate("till", chrono::Utc::now());
    app.store.insert_webhook_source(&source).await.unwrap();
    let now = app.clock_now().timestamp();
    let cases: Vec<(&str, Value, u16, &str)> = vec![
        ("unknown type", json!({"event_id": "e1", "type": "gift", "card": number}), 422, "invalid_type"),
        ("earn without a card", json!({"event_id": "e2", "type": "earn", "purchase_amount": 100}), 422, "required"),
        ("earn without an amount", json!({"event_id": "e3", "type": "earn", "card": number}), 422, "required"),
        (
            "negative amount",
            json!({"event_id": "e4", "type": "earn", "card": number, "purchase_amount": -5}),
            422,
            "invalid_amount",
        ),
        (
            "blank event id",
            json!({"event_id": " ", "type": "earn", "card": number, "purchase_amount": 100}),
            422,
            "invalid_event_id",
        ),
        (
            "unknown field",
            json!({"event_id": "e5", "type": "earn", "card": number, "purchase_amount": 100, "x": 1}),
            422,
            "invalid_field",
        ),
        (
            "unknown card",
            json!({"event_id": "e6", "type": "earn", "card": "NOSUCHCARD", "purchase_amount": 100}),
            404,
            "card_not_found",
        ),
        ("reverse without id", json!({"event_id": "e7", "type": "reverse"}), 422, "required"),
    ];
    for (what, body, status, code) in cases {
        let body = body.to_string();
        let response = app
            .client
            .post(app.url("/api/v1/webhooks/pos"))
            .header("content-type", "application/json")
            .header("x-loy-source", &source.id)
            .header("x-loy-signature", loy::pos::webhook::sign(&source.secret, now, body.as_bytes()))
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), status, "{what}");
        let answer: Value = response.json().await.unwrap();
        assert_eq!(answer["error"]["code"], code, "{what}: {answer}");
    }
    assert_eq!(app.balance(&number).await, 505, "no webhook changed anything");
}
