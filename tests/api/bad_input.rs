//! Bad input on every endpoint (SPEC §5): extreme integers, overlong strings, control and
//! invisible characters, invalid UTF-8 and deeply nested JSON are all answered with a clear 4xx
//! — never a 5xx, never a hang — and change nothing.

use std::time::Duration;

use loy::domain::Scope;
use reqwest::Method;
use serde_json::{Value, json};

use crate::apple_support::{PASS_TYPE, apple_auth, new_pass, registration_path};
use crate::helpers::{StoreKind, TestApp, TestEnv, random_suffix, spawn_app, spawn_app_in, unique_phone};
use crate::on_both_stores;

on_both_stores!(
    no_input_on_any_endpoint_gets_a_5xx_or_hangs,
    whole_number_floats_are_integers_and_fractions_are_refused_clearly,
    names_and_texts_with_invisible_or_control_characters_are_refused,
    a_form_with_invalid_utf8_is_refused_next_to_the_field,
    a_program_that_fails_validation_is_a_clear_503_not_a_500,
);

const DEVICE: &str = "f0e1d2c3b4a5968778695a4b3c2d1e0f";

/// Values that have broken parsers: integer extremes, floats, overlong and invisible text.
fn hostile_values() -> Vec<Value> {
    vec![
        json!(i64::MAX),
        json!(i64::MIN),
        json!(u64::MAX),
        serde_json::from_str("1e300").unwrap(),
        serde_json::from_str("-0").unwrap(),
        json!(-1),
        json!(0.5),
        json!("x".repeat(100 * 1024)),
        json!("a\u{0}b\u{7}c\u{1b}[31m"),
        json!("Anna\u{202E}anaN\u{200B}\u{FEFF}\u{E0041}"),
        json!(""),
        json!(null),
        json!(true),
        json!([1, 2]),
        json!({"a": 1}),
    ]
}

/// `{"a":[[[[…]]]]}` nested `depth` levels deep.
fn deep_json(depth: usize) -> String {
    format!(r#"{{"a":{}{}}}"#, "[".repeat(depth), "]".repeat(depth))
}

struct Endpoint {
    name: &'static str,
    method: Method,
    path: String,
    headers: Vec<(&'static str, String)>,
    /// A body the endpoint accepts, whose fields are replaced one at a time.
    body: Value,
    /// Signs each body (webhooks).
    sign: Option<loy::domain::WebhookSource>,
}

async fn send(app: &TestApp, endpoint: &Endpoint, body: Vec<u8>, content_type: &str) -> (u16, String) {
    let mut request = app
        .client
        .request(endpoint.method.clone(), app.url(&endpoint.path))
        .timeout(Duration::from_secs(20))
        .header("content-type", content_type);
    for (name, value) in &endpoint.headers {
        request = request.header(*name, value);
    }
    if endpoint.headers.iter().any(|(name, _)| *name == "authorization") && endpoint.path.starts_with("/api/") {
        request = request.header("Idempotency-Key", random_suffix());
    }
    if let Some(source) = &endpoint.sign {
        let t = app.clock_now().timestamp();
        request = request
            .header("x-loy-source", &source.id)
            .header("x-loy-signature", loy::pos::webhook::sign(&source.secret, t, &body));
    }
    let response = request.body(body).send().await.unwrap_or_else(|e| panic!("{}: no answer: {e}", endpoint.name));
    let status = response.status().as_u16();
    (status, response.text().await.unwrap_or_default())
}

fn assert_clear_refusal(what: &str, status: u16, text: &str, json_errors: bool) {
    assert!((400..500).contains(&status), "{what}: answered {status}: {}", &text[..text.len().min(300)]);
    if json_errors && (status != 413 || text.starts_with('{')) {
        let body: Value = serde_json::from_str(text).unwrap_or_else(|_| panic!("{what}: not JSON: {text:.300}"));
        assert!(body["error"]["code"].is_string(), "{what}: {body}");
        assert!(body["error"]["message"].is_string(), "{what}: {body}");
    }
}

async fn no_input_on_any_endpoint_gets_a_5xx_or_hangs(kind: StoreKind) {
    let app = spawn_app(kind).await;
    let admin = app.api_key(Scope::Admin).await;
    let number = app.card_with_balance(&admin, 1000).await;
    let earned = app.pos_post(format!("/api/v1/cards/{number}/earn"), &admin, json!({"purchase_amount": 10_000})).await;
    let transaction = earned.body["transaction_id"].as_str().unwrap().to_owned();
    let pass = new_pass(&app).await;
    let pass_auth = apple_auth(&pass.token());
    let source = loy::domain::WebhookSource::generate("till", chrono::Utc::now());
    app.store.insert_webhook_source(&source).await.unwrap();
    let bearer = vec![("authorization", format!("Bearer {admin}"))];
    let endpoint = |name, method, path: String, headers: Vec<(&'static str, String)>, body| Endpoint {
        name,
        method,
        path,
        headers,
        body,
        sign: None,
    };
    let mut endpoints = vec![
        endpoint(
            "enrollment",
            Method::POST,
            "/api/v1/enrollments".into(),
            vec![],
            json!({"first_name": "Anna", "last_name": "Ivanova", "phone": unique_phone(), "email": "a@example.com",
                   "birthday": "1990-01-02", "consent": true, "referral_code": "ABCD1234", "locale": "en"}),
        ),
        endpoint(
            "earn",
            Method::POST,
            format!("/api/v1/cards/{number}/earn"),
            bearer.clone(),
            json!({"purchase_amount": 100, "order_id": "A1", "description": "coffee"}),
        ),
        endpoint(
            "redeem",
            Method::POST,
            format!("/api/v1/cards/{number}/redeem"),
            bearer.clone(),
            json!({"points": 100, "purchase_amount": 1000, "order_id": "A2", "description": "coffee"}),
        ),
        endpoint(
            "adjust",
            Method::POST,
            format!("/api/v1/cards/{number}/adjust"),
            bearer.clone(),
            json!({"points": 5, "reason": "goodwill"}),
        ),
        endpoint(
            "reverse",
            Method::POST,
            format!("/api/v1/transactions/{transaction}/reverse"),
            bearer.clone(),
            json!({"reason": "refund"}),
        ),
        endpoint(
            "register a device",
            Method::POST,
            registration_path(DEVICE, PASS_TYPE, &pass.serial()),
            vec![("authorization", pass_auth.clone())],
            json!({"pushToken": "ab".repeat(32)}),
        ),
        endpoint("passkit log", Method::POST, "/passkit/v1/log".into(), vec![], json!({"logs": ["a message"]})),
    ];
    endpoints.push(Endpoint {
        name: "webhook",
        method: Method::POST,
        path: "/api/v1/webhooks/pos".into(),
        headers: vec![],
        body: json!({"event_id": "e1", "type": "earn", "card": number, "purchase_amount": 100, "points": 1,
                     "order_id": "A3", "description": "d", "transaction_id": transaction, "reason": "r"}),
        sign: Some(source.clone()),
    });

    for endpoint in &endpoints {
        let json_errors = endpoint.path.starts_with("/api/") || endpoint.path.starts_with("/passkit/");
        let fields: Vec<String> = endpoint.body.as_object().unwrap().keys().cloned().collect();
        for field in &fields {
            for (n, value) in hostile_values().into_iter().enumerate() {
                let mut body = endpoint.body.clone();
                body[field] = value;
                if endpoint.name == "webhook" {
                    body["event_id"] = json!(random_suffix());
                    if field == "event_id" {
                        body["event_id"] = json!(format!("{n}-{}", random_suffix()));
                    }
                }
                let (status, text) = send(&app, endpoint, body.to_string().into_bytes(), "application/json").await;
                let what = format!("{} with {field} = value #{n}", endpoint.name);
                // A hostile value in an optional free-text field may be accepted; never a 5xx.
                assert!(status < 500, "{what}: answered {status}: {:.300}", text);
            }
        }
        for (what, body) in [
            ("nested 10 000 levels", deep_json(10_000).into_bytes()),
            ("nested 10 000 objects", format!("{}1{}", r#"{"a":"#.repeat(10_000), "}".repeat(10_000)).into_bytes()),
            ("invalid UTF-8", b"{\"a\": \"\xff\xfe\"}".to_vec()),
            ("a bare number", b"9223372036854775808".to_vec()),
            ("control bytes", b"\x00\x01\x02".to_vec()),
            ("100 KB of JSON", format!(r#"{{"a":"{}"}}"#, "x".repeat(100 * 1024)).into_bytes()),
        ] {
            let (status, text) = send(&app, endpoint, body, "application/json").await;
            assert_clear_refusal(&format!("{}: {what}", endpoint.name), status, &text, json_errors);
        }
    }

    // Paths and query strings.
    let long = "9".repeat(4000);
    let mut gets: Vec<String> = vec![
        format!("/api/v1/cards/{long}"),
        "/api/v1/cards/9223372036854775807".into(),
        "/api/v1/cards/-0".into(),
        "/api/v1/cards/1e300".into(),
        "/api/v1/cards/%00%0A%1B".into(),
        "/api/v1/cards/%E2%80%AE1234".into(),
        "/api/v1/cards/%FF%FE".into(),
        format!("/api/v1/cards?phone={long}"),
        "/api/v1/cards?phone=%2B9223372036854775807".into(),
        "/api/v1/cards?phone=%00%0A".into(),
        "/api/v1/cards?phone=%FF%FE".into(),
        "/api/v1/cards?phone=-0".into(),
        format!("/api/v1/transactions/{long}/reverse"),
    ];
    for query in [
        "limit=9223372036854775807",
        "limit=-9223372036854775808",
        "limit=1e300",
        "limit=-0",
        "limit=%00",
        "cursor=9223372036854775807x",
        "cursor=-9223372036854775808",
        "cursor=1e300",
        "cursor=%FF%FE",
        "limit=1&limit=2",
    ] {
        gets.push(format!("/api/v1/cards/{number}/transactions?{query}"));
    }
    for path in gets {
        let method = if path.ends_with("/reverse") { Method::POST } else { Method::GET };
        let response = app
            .client
            .request(method, app.url(&path))
            .bearer_auth(&admin)
            .header("Idempotency-Key", random_suffix())
            .timeout(Duration::from_secs(20))
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        let text = response.text().await.unwrap();
        assert!(status < 500, "GET {path:.80}: answered {status}: {text:.300}");
    }
    for (path, method) in [
        (format!("/api/v1/cards/{long}/block"), Method::POST),
        (format!("/api/v1/cards/{long}/unblock"), Method::POST),
        ("/api/v1/cards/%00/block".into(), Method::POST),
        (
            format!("/passkit/v1/devices/{DEVICE}/registrations/{PASS_TYPE}?passesUpdatedSince=9223372036854775807"),
            Method::GET,
        ),
        (format!("/passkit/v1/devices/{DEVICE}/registrations/{PASS_TYPE}?passesUpdatedSince=-0"), Method::GET),
        (format!("/passkit/v1/devices/{DEVICE}/registrations/{PASS_TYPE}?passesUpdatedSince=1e300"), Method::GET),
        (format!("/passkit/v1/devices/{long}/registrations/{PASS_TYPE}"), Method::GET),
        (format!("/passkit/v1/passes/{PASS_TYPE}/{long}"), Method::GET),
        (format!("/passkit/v1/passes/{PASS_TYPE}/%00%FF"), Method::GET),
        (registration_path(DEVICE, PASS_TYPE, &long), Method::DELETE),
    ] {
        let auth = if path.starts_with("/passkit/") { pass_auth.clone() } else { format!("Bearer {admin}") };
        let response = app
            .client
            .request(method.clone(), app.url(&path))
            .header("authorization", auth)
            .header("Idempotency-Key", random_suffix())
            .header("if-modified-since", "Thu, 99 Foo 99999 99:99:99 GMT")
            .timeout(Duration::from_secs(20))
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        assert!((400..500).contains(&status) || status == 204, "{method} {path:.80}: answered {status}");
    }

    // The form: overlong, control characters, extreme numbers in every field.
    for field in ["first_name", "last_name", "phone", "email", "birthday", "referral_code", "consent", "lang"] {
        for value in ["x".repeat(100 * 1024), "a\u{0}b\u{7}".into(), "9223372036854775807".into(), "-0".into()] {
            let mut fields =
                vec![("first_name", "Anna".to_owned()), ("phone", unique_phone()), ("consent", "on".into())];
            fields.retain(|(name, _)| *name != field);
            fields.push((field, value));
            let response = app.client.post(app.url("/")).form(&fields).timeout(Duration::from_secs(20)).send().await;
            let status = response.unwrap().status().as_u16();
            assert!(status < 500, "form with a hostile {field}: answered {status}");
        }
    }
    let deep_form = format!("first_name={}&phone=%2B79120000000&consent=on", "%5B".repeat(5000));
    let response = app
        .client
        .post(app.url("/"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(deep_form)
        .send()
        .await
        .unwrap();
    assert!((400..500).contains(&response.status().as_u16()), "{}", response.status());

    // Hostile values in optional fields may leave a valid request (a null description); whatever
    // was accepted, the books still balance.
    app.assert_ledger_consistent().await;
}

async fn whole_number_floats_are_integers_and_fractions_are_refused_clearly(kind: StoreKind) {
    let app = spawn_app(kind).await;
    let admin = app.api_key(Scope::Admin).await;
    let number = app.card_with_balance(&admin, 1000).await;

    let earned =
        app.pos_post(format!("/api/v1/cards/{number}/earn"), &admin, json!({"purchase_amount": 10000.0})).await;
    assert_eq!(earned.status, 200, "{earned:?}");
    assert_eq!(earned.body["points"], 5);
    let redeemed = app.pos_post(format!("/api/v1/cards/{number}/redeem"), &admin, json!({"points": 239.0})).await;
    assert_eq!(redeemed.status, 200, "{redeemed:?}");
    assert_eq!(redeemed.body["points"], -239);

    for (path, body, field) in [
        ("redeem", json!({"points": 239.5}), "points"),
        ("earn", json!({"purchase_amount": 1e300}), "purchase_amount"),
        ("adjust", json!({"points": 0.001, "reason": "x"}), "points"),
    ] {
        let answer = app.pos_post(format!("/api/v1/cards/{number}/{path}"), &admin, body).await;
        assert_eq!(answer.status, 422, "{answer:?}");
        assert_eq!(answer.body["error"]["field"], field);
        assert!(answer.body["error"]["message"].as_str().unwrap().contains("whole number"), "{answer:?}");
    }
    assert_eq!(app.balance(&number).await, 1000 + 5 - 239);
}

async fn names_and_texts_with_invisible_or_control_characters_are_refused(kind: StoreKind) {
    let app = spawn_app(kind).await;
    let admin = app.api_key(Scope::Admin).await;
    let number = app.card_with_balance(&admin, 1000).await;
    let spoofs = [
        "Anna\u{202E}anaN",
        "\u{2066}Anna\u{2069}",
        "An\u{200B}na",
        "An\u{200F}na",
        "\u{FEFF}Anna",
        "Anna\u{E0041}\u{E0042}",
        "An\u{1}na",
        "An\u{85}na",
    ];
    for name in spoofs {
        for field in ["first_name", "last_name"] {
            let mut body = json!({"first_name": "Anna", "phone": unique_phone(), "consent": true});
            body[field] = json!(name);
            let response = app.post_enrollment(&body).await;
            assert_eq!(response.status(), 422, "{name:?} in {field}");
            let error: Value = response.json().await.unwrap();
            assert_eq!(
                (error["error"]["field"].as_str(), error["error"]["code"].as_str()),
                (Some(field), Some("invalid_characters"))
            );
        }
        let form =
            app.post_form("/?lang=ru", &[("first_name", name), ("phone", &unique_phone()), ("consent", "on")]).await;
        assert_eq!(form.status(), 422, "{name:?} in the form");
        assert!(form.text().await.unwrap().contains("невидимые"), "the Russian message is shown");

        let adjust =
            app.pos_post(format!("/api/v1/cards/{number}/adjust"), &admin, json!({"points": 1, "reason": name})).await;
        assert_eq!((adjust.status, adjust.body["error"]["code"].as_str()), (422, Some("invalid_text")), "{name:?}");
        let earn = app
            .pos_post(
                format!("/api/v1/cards/{number}/earn"),
                &admin,
                json!({"purchase_amount": 100, "description": name}),
            )
            .await;
        assert_eq!((earn.status, earn.body["error"]["field"].as_str()), (422, Some("description")), "{name:?}");
    }
    assert_eq!(app.balance(&number).await, 1000, "nothing was written");
    let plain = app
        .post_enrollment(
            &json!({"first_name": "José María", "last_name": "O'Brien", "phone": unique_phone(), "consent": true}),
        )
        .await;
    assert_eq!(plain.status(), 201, "ordinary names still pass");
}

async fn a_form_with_invalid_utf8_is_refused_next_to_the_field(kind: StoreKind) {
    let app = spawn_app(kind).await;
    let phone = unique_phone().replace('+', "%2B");
    for body in [
        format!("first_name=%FF%FE&phone={phone}&consent=on"),
        format!("first_name=Anna&last_name=Iv%C3anova&phone={phone}&consent=on"),
    ] {
        let response = app
            .client
            .post(app.url("/?lang=en"))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 422, "{body}");
        assert!(response.text().await.unwrap().contains("not sent as valid text"), "{body}");
    }
    let raw = app
        .client
        .post(app.url("/?lang=en"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(b"first_name=\xff\xfe&phone=%2B79120000000&consent=on".to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(raw.status(), 422);
    let phone = loy::domain::Phone::parse("+79120000000", loy::domain::PhoneRegion::RU).unwrap();
    let stored = app.store.find_card(loy::store::CardLookup::Phone { program_id: "default", phone: &phone }).await;
    assert!(stored.unwrap().is_none(), "no card was made");
}

/// Breaks the stored program's rules behind the application's back (no tier at all).
async fn break_the_program(app: &TestApp, kind: &StoreKind) {
    match kind {
        StoreKind::Embedded => {
            let path = app.env.dir.path().join("loy.sqlite3");
            let conn = rusqlite::Connection::open(path).unwrap();
            conn.busy_timeout(Duration::from_secs(10)).unwrap();
            let doc: String =
                conn.query_row("SELECT doc FROM programs WHERE id = 'default'", [], |r| r.get(0)).unwrap();
            let mut program: Value = serde_json::from_str(&doc).unwrap();
            program["rules"]["tiers"] = json!([]);
            conn.execute("UPDATE programs SET doc = ?1 WHERE id = 'default'", [program.to_string()]).unwrap();
        }
        StoreKind::Mongo { uri } => {
            let client = mongodb::Client::with_uri_str(uri).await.unwrap();
            let database = app.env.vars["LOY_MONGODB_DATABASE"].clone();
            let programs = client.database(&database).collection::<bson::Document>("programs");
            let result = programs
                .update_one(bson::doc! { "_id": "default" }, bson::doc! { "$set": { "program.rules.tiers": [] } })
                .await
                .unwrap();
            assert_eq!(result.matched_count, 1);
        }
    }
}

async fn a_program_that_fails_validation_is_a_clear_503_not_a_500(kind: StoreKind) {
    // Programs are read through a short per-node cache; this test breaks the stored one behind
    // the application's back and expects the very next request to see it.
    let mut env = TestEnv::new(&kind);
    env.set("LOY_PROGRAM_CACHE_MS", "0");
    let app = spawn_app_in(env).await;
    let admin = app.api_key(Scope::Admin).await;
    let number = app.new_card().await;
    break_the_program(&app, &kind).await;

    let lookup = app.pos_get(&format!("/api/v1/cards/{number}"), &admin).await;
    assert_eq!(
        (lookup.status, lookup.body["error"]["code"].as_str()),
        (503, Some("program_unavailable")),
        "{lookup:?}"
    );
    let earn = app.pos_post(format!("/api/v1/cards/{number}/earn"), &admin, json!({"purchase_amount": 100})).await;
    assert_eq!(earn.status, 503, "{earn:?}");
    let enrollment =
        app.post_enrollment(&json!({"first_name": "Anna", "phone": unique_phone(), "consent": true})).await;
    assert_eq!(enrollment.status(), 503);
    let body: Value = enrollment.json().await.unwrap();
    assert!(body["error"]["message"].as_str().unwrap().contains("program"), "{body}");
    let form = app.get("/?lang=en").await;
    assert_eq!(form.status(), 503);
    assert!(form.text().await.unwrap().contains("Please try again"));
    assert_eq!(app.balance(&number).await, 100, "nothing was written");
}
