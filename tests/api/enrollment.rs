use loy::domain::{CardNumber, EntryKind, Phone};
use loy::store::CardLookup;
use serde_json::{Value, json};

use crate::helpers::{PUBLIC_URL, StoreKind, path_of, spawn_app, spawn_app_in, unique_phone};
use crate::on_both_stores;

on_both_stores!(
    a_valid_enrollment_creates_a_card_with_the_welcome_bonus,
    each_invalid_field_is_a_422_naming_the_field,
    the_same_phone_again_gets_no_second_card_and_no_card_data,
    concurrent_enrollments_with_one_phone_create_one_card,
    a_referral_code_links_the_new_card_to_the_referrer,
    malformed_bodies_get_the_right_4xx_in_the_error_format,
    cards_survive_a_restart,
);

async fn a_valid_enrollment_creates_a_card_with_the_welcome_bonus(kind: StoreKind) {
    let app = spawn_app(kind).await;
    let response = app
        .post_enrollment(&json!({
            "first_name": "Anna",
            "last_name": "Ivanova",
            "phone": "8 912 345 67 89",
            "email": "anna@example.com",
            "birthday": "1990-05-17",
            "consent": true
        }))
        .await;

    assert_eq!(response.status(), 201);
    let location = response.headers()["location"].to_str().unwrap().to_owned();
    let body: Value = response.json().await.unwrap();
    let card = &body["card"];
    assert_eq!(card.as_object().unwrap().len(), 4, "exactly the documented fields: {body}");
    assert_eq!(card["balance"], 100);
    let number = card["card_number"].as_str().unwrap();
    assert_eq!(number.len(), 16);
    assert!(CardNumber::parse(number).is_ok(), "Luhn-valid card number");
    let card_url = card["card_url"].as_str().unwrap();
    assert!(card_url.starts_with(&format!("{PUBLIC_URL}/c/")), "{card_url}");
    assert_eq!(location, card_url);

    let stored = app
        .store
        .find_card(CardLookup::Phone {
            program_id: "default",
            phone: &Phone::parse("+79123456789", loy::domain::PhoneRegion::RU).unwrap(),
        })
        .await
        .unwrap()
        .expect("the card is stored under the normalised phone");
    assert_eq!(stored.serial.as_str(), card["serial_number"].as_str().unwrap());
    assert_eq!(stored.holder.as_ref().unwrap().email.as_ref().unwrap().as_str(), "anna@example.com");
    assert_eq!(stored.holder.as_ref().unwrap().birthday.unwrap().to_string(), "1990-05-17");
    assert!(stored.auth_token.expose().len() >= 32);
    assert_eq!(stored.version, 1);

    let entries = app.store.card_entries(&stored.serial, None, 10).await.unwrap();
    assert_eq!(entries.len(), 1, "the welcome bonus is the first ledger entry");
    assert_eq!((entries[0].kind, entries[0].points, entries[0].balance_after), (EntryKind::Welcome, 100, 100));

    let page = app.get(path_of(card_url)).await;
    assert_eq!(page.status(), 200);
    assert!(page.text().await.unwrap().contains("Anna I."));
}

async fn each_invalid_field_is_a_422_naming_the_field(kind: StoreKind) {
    let app = spawn_app(kind).await;
    let valid = json!({"first_name": "Anna", "phone": unique_phone(), "consent": true});
    let cases: Vec<(&str, Value, &str, &str)> = vec![
        ("consent missing", json!({"consent": null}), "consent", "consent_required"),
        ("consent false", json!({"consent": false}), "consent", "consent_required"),
        ("consent not a boolean", json!({"consent": "yes"}), "consent", "invalid_field"),
        ("first name missing", json!({"first_name": null}), "first_name", "required"),
        ("first name blank", json!({"first_name": "   "}), "first_name", "required"),
        ("first name too long", json!({"first_name": "a".repeat(101)}), "first_name", "invalid_name"),
        ("phone missing", json!({"phone": null}), "phone", "required"),
        ("phone garbage", json!({"phone": "call me maybe"}), "phone", "invalid_phone"),
        ("phone too short for the region", json!({"phone": "12345"}), "phone", "phone_length"),
        ("phone with no such country code", json!({"phone": "+8 912 345 67 89"}), "phone", "phone_country_code"),
        ("phone not in the numbering plan", json!({"phone": "+7 012 345 67 89"}), "phone", "phone_not_valid"),
        ("phone too short", json!({"phone": "+7 912 34"}), "phone", "phone_length"),
        ("phone a number", json!({"phone": 79123456789u64}), "phone", "invalid_field"),
        ("email malformed", json!({"email": "anna@"}), "email", "invalid_email"),
        ("birthday malformed", json!({"birthday": "17.05.1990"}), "birthday", "invalid_birthday"),
        ("birthday in the future", json!({"birthday": "2999-01-01"}), "birthday", "invalid_birthday"),
        ("referral code malformed", json!({"referral_code": "!!"}), "referral_code", "invalid_referral_code"),
        ("referral code unknown", json!({"referral_code": "NOSUCHCODE"}), "referral_code", "unknown_referral_code"),
        ("locale unknown", json!({"locale": "de"}), "locale", "invalid_locale"),
        ("unknown field", json!({"nickname": "annie"}), "nickname", "invalid_field"),
    ];
    for (what, change, field, code) in cases {
        let mut body = valid.clone();
        for (k, v) in change.as_object().unwrap() {
            if v.is_null() {
                body.as_object_mut().unwrap().remove(k);
            } else {
                body[k] = v.clone();
            }
        }
        let response = app.post_enrollment(&body).await;
        assert_eq!(response.status(), 422, "{what}");
        let error: Value = response.json().await.unwrap();
        assert_eq!(error["error"]["field"], field, "{what}: {error}");
        assert_eq!(error["error"]["code"], code, "{what}: {error}");
        assert!(error["error"]["message"].as_str().is_some_and(|m| !m.is_empty()), "{what}");
    }
    let phone = Phone::parse(valid["phone"].as_str().unwrap(), loy::domain::PhoneRegion::RU).unwrap();
    let stored = app.store.find_card(CardLookup::Phone { program_id: "default", phone: &phone }).await.unwrap();
    assert!(stored.is_none(), "no invalid request created a card");
}

async fn the_same_phone_again_gets_no_second_card_and_no_card_data(kind: StoreKind) {
    let app = spawn_app(kind).await;
    let first = app.enroll("Anna", "+7 912 000 11 22").await;

    let again =
        app.post_enrollment(&json!({"first_name": "Mallory", "phone": "8 (912) 000-11-22", "consent": true})).await;

    assert_eq!(again.status(), 202);
    let text = again.text().await.unwrap();
    let body: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(body["status"], "already_registered");
    // E-mail is off in this app: nothing is claimed to be sent.
    assert_eq!(body["sent_to"], "none");
    assert!(!body["message"].as_str().unwrap().contains("has been sent"));
    assert!(body.get("card").is_none());
    let card = &first["card"];
    for secret in [&card["serial_number"], &card["card_number"], &card["card_url"]] {
        assert!(!text.contains(secret.as_str().unwrap()), "the answer leaks {secret}");
    }
    let stored = app
        .store
        .find_card(CardLookup::Phone {
            program_id: "default",
            phone: &Phone::parse("+79120001122", loy::domain::PhoneRegion::RU).unwrap(),
        })
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.serial.as_str(), card["serial_number"].as_str().unwrap());
    assert_eq!(stored.holder.as_ref().unwrap().first_name.as_str(), "Anna", "the first registration is untouched");
}

async fn concurrent_enrollments_with_one_phone_create_one_card(kind: StoreKind) {
    let app = spawn_app(kind).await;
    let phone = unique_phone();
    let requests = (0..12).map(|i| {
        let body = json!({"first_name": format!("Racer{i}"), "phone": phone, "consent": true});
        let app = &app;
        async move { app.post_enrollment(&body).await.status().as_u16() }
    });
    let mut statuses = futures_util::future::join_all(requests).await;
    statuses.sort();
    assert_eq!(statuses.iter().filter(|s| **s == 201).count(), 1, "{statuses:?}");
    assert_eq!(statuses.iter().filter(|s| **s == 202).count(), 11, "{statuses:?}");
}

async fn a_referral_code_links_the_new_card_to_the_referrer(kind: StoreKind) {
    let app = spawn_app(kind).await;
    let referrer_body = app.enroll("Anna", &unique_phone()).await;
    let referrer_serial =
        loy::domain::SerialNumber::parse(referrer_body["card"]["serial_number"].as_str().unwrap()).unwrap();
    let referrer = app.store.find_card(CardLookup::Serial(&referrer_serial)).await.unwrap().unwrap();

    let code = referrer.referral_code.as_str().to_lowercase();
    let response = app
        .post_enrollment(
            &json!({"first_name": "Boris", "phone": unique_phone(), "consent": true, "referral_code": code}),
        )
        .await;

    assert_eq!(response.status(), 201);
    let body: Value = response.json().await.unwrap();
    let serial = loy::domain::SerialNumber::parse(body["card"]["serial_number"].as_str().unwrap()).unwrap();
    let invited = app.store.find_card(CardLookup::Serial(&serial)).await.unwrap().unwrap();
    assert_eq!(invited.referred_by.as_ref(), Some(&referrer.serial));
}

async fn malformed_bodies_get_the_right_4xx_in_the_error_format(kind: StoreKind) {
    let app = spawn_app(kind).await;
    let url = app.url("/api/v1/enrollments");
    let key = app.enrollment_key().await;
    let send = |content_type: &'static str, body: Vec<u8>| {
        let request = app.client.post(&url).bearer_auth(&key).header("content-type", content_type).body(body);
        async move { request.send().await.unwrap() }
    };
    let cases: Vec<(&str, reqwest::Response, u16, &str)> = vec![
        ("broken JSON", send("application/json", b"{\"first_name\": ".to_vec()).await, 400, "invalid_json"),
        ("not an object", send("application/json", b"[1, 2]".to_vec()).await, 400, "invalid_json"),
        ("empty body", send("application/json", Vec::new()).await, 400, "invalid_json"),
        ("trailing garbage", send("application/json", b"{} {}".to_vec()).await, 400, "invalid_json"),
        ("not UTF-8", send("application/json", vec![b'{', b'"', 0xff, 0xfe, b'"', b'}']).await, 400, "invalid_json"),
        (
            "form content type",
            send("application/x-www-form-urlencoded", b"a=b".to_vec()).await,
            415,
            "unsupported_media_type",
        ),
        ("text content type", send("text/plain", b"{}".to_vec()).await, 415, "unsupported_media_type"),
        (
            "oversized body",
            send("application/json", format!("{{\"first_name\": \"{}\"}}", "a".repeat(70_000)).into_bytes()).await,
            413,
            "payload_too_large",
        ),
    ];
    for (what, response, status, code) in cases {
        assert_eq!(response.status().as_u16(), status, "{what}");
        let body: Value = response.json().await.unwrap_or_else(|e| panic!("{what}: the error is not JSON: {e}"));
        assert_eq!(body["error"]["code"], code, "{what}: {body}");
    }
    let no_type = app.client.post(&url).bearer_auth(&key).body("{}").send().await.unwrap();
    assert_eq!(no_type.status(), 415);
    let wrong_method = app.get("/api/v1/enrollments").await;
    assert_eq!(wrong_method.status(), 405);
    let unknown = app.get("/api/v1/nothing-here").await;
    assert_eq!(unknown.status(), 404);
    assert_eq!(unknown.json::<Value>().await.unwrap()["error"]["code"], "not_found");
}

async fn cards_survive_a_restart(kind: StoreKind) {
    let app = spawn_app(kind).await;
    let body = app.enroll("Anna", &unique_phone()).await;
    let card_path = path_of(body["card"]["card_url"].as_str().unwrap()).to_owned();
    let env = app.stop().await;

    let restarted = spawn_app_in(env).await;

    let page = restarted.get(&card_path).await;
    assert_eq!(page.status(), 200);
    let grouped = CardNumber::parse(body["card"]["card_number"].as_str().unwrap()).unwrap().grouped();
    assert!(page.text().await.unwrap().contains(&grouped));
}
