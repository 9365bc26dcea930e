//! Google Wallet classes and objects through the REST API, against the fake Google.

use std::sync::Arc;
use std::time::Duration;

use loy::google::{GoogleError, GoogleWallet};
use serde_json::{Value, json};

use crate::google_fake::{
    CLIENT_EMAIL, FakeGoogle, ISSUER_ID, TestKey, class_id, google_env, object_id, spawn_app_with_google,
    write_service_account,
};
use crate::helpers::{StoreKind, TestApp, spawn_app_in};
use crate::on_both_stores;

on_both_stores!(
    a_silent_update_carries_no_notify_preference,
    an_object_that_exists_already_is_patched_keeping_what_others_set,
    the_class_is_patched_when_the_design_changes_and_written_once_otherwise,
    failures_are_classified_for_retrying_with_googles_message,
    an_object_never_created_is_created_by_the_first_update,
    messages_are_added_to_the_object,
    an_unreachable_api_is_a_retryable_failure,
    a_key_the_token_endpoint_refuses_is_a_permanent_failure,
    a_key_file_that_does_not_parse_stops_the_start_with_one_sentence,
    enrollment_creates_the_programs_class_and_the_cards_object,
    a_card_change_is_one_patch_with_the_new_balance_and_a_notification_request,
);

fn google(app: &TestApp) -> Arc<GoogleWallet> {
    app.state.google.clone().expect("Google Wallet is on")
}

async fn program(app: &TestApp) -> loy::domain::Program {
    app.store.program("default").await.unwrap().unwrap()
}

/// Enrolls a customer, waits for the card's object and returns the card.
async fn issued_card(app: &TestApp, fake: &FakeGoogle) -> loy::domain::Card {
    let number = app.new_card().await;
    let card = app.card(&number).await;
    fake.wait_for_object(&object_id(card.serial.as_str())).await;
    card
}

async fn enrollment_creates_the_programs_class_and_the_cards_object(kind: StoreKind) {
    let (app, fake) = spawn_app_with_google(kind).await;

    let body = app.enroll("Anna", &crate::helpers::unique_phone()).await;

    let serial = body["card"]["serial_number"].as_str().unwrap();
    let object = fake.wait_for_object(&object_id(serial)).await;
    let card = app.card(body["card"]["card_number"].as_str().unwrap()).await;
    let class = fake.class(&class_id()).expect("the class was created first");
    assert_eq!(class["programName"], "Loyalty Card");
    assert_eq!(class["issuerName"], "Loyalty Card");
    assert_eq!(class["reviewStatus"], "UNDER_REVIEW");
    assert_eq!(class["programLogo"]["sourceUri"]["uri"], "http://loy.test/static/google/logo.png");
    assert_eq!(class["heroImage"]["sourceUri"]["uri"], "http://loy.test/static/google/hero.png");
    assert_eq!(class["hexBackgroundColor"], "#1c2b4a");
    assert_eq!(class["localizedAccountIdLabel"]["defaultValue"], json!({"language": "en", "value": "Card number"}));
    assert_eq!(object["classId"], class_id());
    assert_eq!(object["state"], "ACTIVE");
    assert_eq!(object["accountId"], card.card_number.grouped());
    assert_eq!(object["accountName"], "Anna");
    assert_eq!(object["loyaltyPoints"]["balance"], json!({"int": 100}));
    assert_eq!(object["secondaryLoyaltyPoints"]["balance"], json!({"string": "Bronze"}));
    assert_eq!(
        object["barcode"],
        json!({"type": "QR_CODE", "value": card.barcode.as_str(), "alternateText": card.card_number.grouped()})
    );
    assert_eq!(object["textModulesData"][0]["id"], "last_transaction");
    assert_eq!(object["textModulesData"][0]["localizedHeader"]["defaultValue"]["value"], "Welcome bonus");
    assert_eq!(object["textModulesData"][1]["id"], "referral_code");
    assert_eq!(object["textModulesData"][1]["localizedBody"]["defaultValue"]["value"], card.referral_code.as_str());
    assert!(fake.token_requests() >= 1, "the API was called with a token from the token endpoint");
    fake.assert_clean();
    let ready: Value = app.get_internal("/readyz").await.json().await.unwrap();
    assert_eq!(ready["checks"]["google"], json!({"status": "up", "backend": "walletobjects"}));
}

async fn a_card_change_is_one_patch_with_the_new_balance_and_a_notification_request(kind: StoreKind) {
    let (app, fake) = spawn_app_with_google(kind).await;
    let card = issued_card(&app, &fake).await;
    let number = card.card_number.as_str().to_owned();
    let key = app.api_key(loy::domain::Scope::Pos).await;
    let earned = app.pos_post(format!("/api/v1/cards/{number}/earn"), &key, json!({"purchase_amount": 200_000})).await;
    assert_eq!(earned.status, 200, "{earned:?}");
    let card = app.card(&number).await;
    assert_ne!(card.balance, 100);
    let before = fake.requests().len();
    let tokens = fake.token_requests();

    google(&app).sync_card(&program(&app).await, &card, true).await.unwrap();

    let sent = fake.requests()[before..].to_vec();
    assert_eq!(sent.len(), 1, "one request per change: {sent:#?}");
    let id = object_id(card.serial.as_str());
    assert_eq!((sent[0].method.as_str(), sent[0].path.clone()), ("PATCH", format!("loyaltyObject/{id}")));
    assert_eq!(sent[0].body["loyaltyPoints"]["balance"], json!({"int": card.balance}));
    assert_eq!(sent[0].body["notifyPreference"], "NOTIFY_ON_UPDATE");
    assert_eq!(
        sent[0].body["textModulesData"][0]["localizedHeader"]["defaultValue"]["value"],
        "Last purchase: points earned"
    );
    assert!(sent[0].body.get("id").is_none() && sent[0].body.get("barcode").is_none(), "only what a change touches");
    assert_eq!(fake.object(&id).unwrap()["loyaltyPoints"]["balance"]["int"], card.balance);
    assert_eq!(fake.token_requests(), tokens, "the access token is cached");
    fake.assert_clean();
}

async fn a_silent_update_carries_no_notify_preference(kind: StoreKind) {
    let (app, fake) = spawn_app_with_google(kind).await;
    let card = issued_card(&app, &fake).await;
    let before = fake.requests().len();

    google(&app).sync_card(&program(&app).await, &card, false).await.unwrap();

    let sent = fake.requests()[before..].to_vec();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].method, "PATCH");
    assert!(sent[0].body.get("notifyPreference").is_none(), "{}", sent[0].body);
    assert_eq!(sent[0].body["loyaltyPoints"]["balance"], json!({"int": 100}));
    fake.assert_clean();
}

async fn an_object_that_exists_already_is_patched_keeping_what_others_set(kind: StoreKind) {
    let (app, fake) = spawn_app_with_google(kind).await;
    let card = issued_card(&app, &fake).await;
    let id = object_id(card.serial.as_str());
    // Google or another tool added a message; the balance there is stale.
    let mut existing = fake.object(&id).unwrap();
    existing["messages"] = json!([{"id": "hello", "header": "Hello", "body": "Welcome aboard"}]);
    existing["loyaltyPoints"]["balance"] = json!({"int": 1});
    fake.put_object(&id, existing);
    let before = fake.requests().len();

    google(&app).upsert_object(&program(&app).await, &card).await.unwrap();

    let sent: Vec<_> = fake.requests()[before..].iter().map(|r| (r.method.clone(), r.path.clone())).collect();
    assert_eq!(
        sent,
        [("POST".to_owned(), "loyaltyObject".to_owned()), ("PATCH".to_owned(), format!("loyaltyObject/{id}"))]
    );
    let object = fake.object(&id).unwrap();
    assert_eq!(object["loyaltyPoints"]["balance"], json!({"int": 100}));
    assert_eq!(object["messages"][0]["id"], "hello", "a PATCH keeps what it does not send");
    fake.assert_clean();
}

async fn the_class_is_patched_when_the_design_changes_and_written_once_otherwise(kind: StoreKind) {
    let (app, fake) = spawn_app_with_google(kind).await;
    issued_card(&app, &fake).await;
    let google = google(&app);
    let mut program = program(&app).await;
    let before = fake.requests().len();

    google.ensure_class(&program).await.unwrap();
    assert_eq!(fake.requests().len(), before, "an unchanged class is not written again");

    program.design.background_color = "rgb(200, 16, 46)".into();
    program.design.contacts = "+7 495 000-00-00".into();
    google.ensure_class(&program).await.unwrap();

    let sent: Vec<_> = fake.requests()[before..].iter().map(|r| (r.method.clone(), r.path.clone())).collect();
    assert_eq!(
        sent,
        [("POST".to_owned(), "loyaltyClass".to_owned()), ("PATCH".to_owned(), format!("loyaltyClass/{}", class_id()))]
    );
    let class = fake.class(&class_id()).unwrap();
    assert_eq!(class["hexBackgroundColor"], "#c8102e");
    assert_eq!(class["textModulesData"][2]["localizedBody"]["defaultValue"]["value"], "+7 495 000-00-00");
    assert_eq!(class["reviewStatus"], "UNDER_REVIEW", "an approved class is updated as under review");
    fake.assert_clean();
}

async fn failures_are_classified_for_retrying_with_googles_message(kind: StoreKind) {
    let (app, fake) = spawn_app_with_google(kind).await;
    let card = issued_card(&app, &fake).await;
    let (google, program) = (google(&app), program(&app).await);

    fake.fail_next("PATCH", "loyaltyObject/", 503, "The service is currently unavailable.", 1);
    let error = google.sync_card(&program, &card, true).await.unwrap_err();
    assert!(matches!(error, GoogleError::Retryable { status: Some(503), .. }), "{error:?}");
    assert_eq!(error.message(), "The service is currently unavailable.");
    let ready: Value = app.get_internal("/readyz").await.json().await.unwrap();
    assert_eq!(ready["status"], "ready", "Google does not make the node unready");
    assert_eq!(ready["checks"]["google"]["status"], "degraded");

    fake.throttle_next("PATCH", "loyaltyObject/", 7);
    let error = google.sync_card(&program, &card, true).await.unwrap_err();
    assert!(error.is_retryable());
    assert_eq!(error.retry_after(), Some(Duration::from_secs(7)));

    fake.fail_next("PATCH", "loyaltyObject/", 400, "Invalid value at 'loyalty_points.balance'.", 1);
    let error = google.sync_card(&program, &card, true).await.unwrap_err();
    assert_eq!(
        error,
        GoogleError::Permanent { status: Some(400), message: "Invalid value at 'loyalty_points.balance'.".into() }
    );

    google.sync_card(&program, &card, true).await.expect("the retry goes through");
    let ready: Value = app.get_internal("/readyz").await.json().await.unwrap();
    assert_eq!(ready["checks"]["google"]["status"], "up");
    fake.assert_clean();
}

async fn an_object_never_created_is_created_by_the_first_update(kind: StoreKind) {
    let (app, fake) = spawn_app_with_google(kind).await;
    fake.fail_next("POST", "loyaltyObject", 500, "Internal error", 10);
    let number = app.new_card().await;
    let card = app.card(&number).await;
    let id = object_id(card.serial.as_str());
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(fake.object(&id).is_none());
    fake.heal();

    google(&app).sync_card(&program(&app).await, &card, false).await.unwrap();

    assert_eq!(fake.object(&id).unwrap()["loyaltyPoints"]["balance"], json!({"int": 100}));
    fake.assert_clean();
}

async fn messages_are_added_to_the_object(kind: StoreKind) {
    let (app, fake) = spawn_app_with_google(kind).await;
    let card = issued_card(&app, &fake).await;

    google(&app).add_message(&card, "weekend-x2", "Double points", "This weekend only.", true).await.unwrap();

    let object = fake.object(&object_id(card.serial.as_str())).unwrap();
    assert_eq!(
        object["messages"][0],
        json!({"id": "weekend-x2", "header": "Double points", "body": "This weekend only.", "messageType": "TEXT_AND_NOTIFY"})
    );
    fake.assert_clean();
}

async fn an_unreachable_api_is_a_retryable_failure(kind: StoreKind) {
    let fake = FakeGoogle::start(CLIENT_EMAIL, &TestKey::shared().public_pem, ISSUER_ID);
    let mut env = google_env(&kind, &fake);
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    env.set("LOY_GOOGLE_API_BASE_URL", &format!("http://{closed}/walletobjects/v1"));
    let app = spawn_app_in(env).await;

    let error = google(&app).ensure_class(&program(&app).await).await.unwrap_err();

    assert!(matches!(error, GoogleError::Retryable { status: None, .. }), "{error:?}");
}

async fn a_key_the_token_endpoint_refuses_is_a_permanent_failure(kind: StoreKind) {
    let fake = FakeGoogle::start(CLIENT_EMAIL, &TestKey::shared().public_pem, ISSUER_ID);
    let mut env = google_env(&kind, &fake);
    let other_key = TestKey::generate();
    let path = write_service_account(env.dir.path(), &other_key.private_pem, &fake.token_uri());
    env.set("LOY_GOOGLE_SERVICE_ACCOUNT_KEY", &path);
    let app = spawn_app_in(env).await;

    let error = google(&app).ensure_class(&program(&app).await).await.unwrap_err();

    assert!(matches!(error, GoogleError::Permanent { .. }), "{error:?}");
    assert!(error.message().contains("refused the service account"), "{error}");
    assert!(fake.requests().is_empty(), "no API call without a token");
}

async fn a_key_file_that_does_not_parse_stops_the_start_with_one_sentence(kind: StoreKind) {
    let env = crate::helpers::TestEnv::new(&kind);
    let key_path = env.dir.path().join("key.json");
    std::fs::write(&key_path, "{\"type\": \"service_account\", \"private_key\": ").unwrap();
    let mut env = env;
    env.set("LOY_GOOGLE_ISSUER_ID", ISSUER_ID).set("LOY_GOOGLE_SERVICE_ACCOUNT_KEY", &key_path.display().to_string());
    let settings = env.settings();
    let store =
        loy::startup::connect_store(&settings, Arc::new(loy::store::Faults::default())).await.expect("the store opens");

    let error = loy::startup::Application::build_with(settings, store, Arc::new(loy::clock::SystemClock))
        .await
        .err()
        .expect("the start fails");

    let message = format!("{error:#}");
    assert!(message.starts_with("LOY_GOOGLE_SERVICE_ACCOUNT_KEY: "), "{message}");
    assert!(message.contains("is not a Google service-account JSON key"), "{message}");
    assert!(!message.contains('\n'), "{message}");
}
