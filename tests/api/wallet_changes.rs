//! Passes added to and removed from the wallets, over HTTP: Google's signed save and delete
//! callbacks (signed by a fake Google with test keys, posted to the running application), the
//! reconciliation of missed callbacks, and Apple's registrations. Each change is recorded once,
//! counted in `/metrics` and in the daily counts.

use loy::domain::{Card, Role, SerialNumber};
use loy::google::reconcile;
use loy::store::{GoogleWalletState, Wallet, WalletChange, WalletSource, WalletTotals};
use serde_json::{Value, json};

use crate::admin_cashier::test_id;
use crate::apple_support::{apple_auth, new_pass, register, unregister};
use crate::google_fake::{FakeGoogle, ISSUER_ID, class_id, object_id, spawn_app_with_google};
use crate::google_signer::GoogleSigner;
use crate::helpers::{StoreKind, TestApp, spawn_app};
use crate::on_both_stores;

on_both_stores!(
    a_save_then_a_delete_are_recorded_counted_and_set_the_cards_google_state,
    a_tampered_message_is_refused_with_400_and_records_nothing,
    an_expired_intermediate_key_is_refused_with_400,
    a_replayed_callback_is_answered_200_and_recorded_once,
    a_callback_for_an_object_that_is_no_card_of_ours_is_answered_200_and_records_nothing,
    the_reconciliation_records_saves_and_removals_whose_callback_never_came,
    an_apple_registration_is_one_install_and_its_removal_one_removal,
    the_customer_page_shows_the_cards_wallets,
);

/// The application with Google on, a card whose object exists, and a signer whose root key the
/// fake publishes.
async fn google_app(kind: StoreKind) -> (TestApp, FakeGoogle, GoogleSigner, Card) {
    let (app, fake) = spawn_app_with_google(kind).await;
    let signer = GoogleSigner::new();
    fake.publish_root_keys(signer.key_list());
    let number = app.new_card().await;
    let card = app.card(&number).await;
    fake.wait_for_object(&object_id(card.serial.as_str())).await;
    (app, fake, signer, card)
}

async fn post_callback(app: &TestApp, body: &Value) -> reqwest::Response {
    app.client.post(app.url("/google/callbacks")).json(body).send().await.expect("POST /google/callbacks")
}

fn message(card: &Card, event: &str, nonce: &str) -> String {
    GoogleSigner::message(&class_id(), &object_id(card.serial.as_str()), event, nonce)
}

async fn metric(app: &TestApp, labels: &str) -> Option<String> {
    let metrics = app.get_internal("/metrics").await.text().await.unwrap();
    let name = format!("loy_wallet_changes_total{{{labels}}} ");
    metrics.lines().find_map(|l| l.strip_prefix(&name).map(str::to_owned))
}

async fn changes(app: &TestApp, card: &Card) -> Vec<(Wallet, WalletChange, WalletSource)> {
    let events = app.store.card_wallet_events(&card.serial, 100).await.unwrap();
    events.into_iter().rev().map(|e| (e.wallet, e.change, e.source)).collect()
}

async fn a_save_then_a_delete_are_recorded_counted_and_set_the_cards_google_state(kind: StoreKind) {
    let (app, fake, signer, card) = google_app(kind).await;
    let class = fake.class(&class_id()).unwrap();
    assert_eq!(class["callbackOptions"], json!({"url": "http://loy.test/google/callbacks"}));

    let saved = post_callback(&app, &signer.body(ISSUER_ID, &message(&card, "save", "nonce-save-1"))).await;
    assert_eq!(saved.status(), 200);
    let state = app.store.google_wallet_state(&card.serial).await.unwrap().expect("a state is stored");
    assert!(state.saved);
    let deleted = post_callback(&app, &signer.body(ISSUER_ID, &message(&card, "del", "nonce-del-1"))).await;
    assert_eq!(deleted.status(), 200);

    assert_eq!(
        changes(&app, &card).await,
        [
            (Wallet::Google, WalletChange::Installed, WalletSource::Callback),
            (Wallet::Google, WalletChange::Removed, WalletSource::Callback),
        ]
    );
    let state = app.store.google_wallet_state(&card.serial).await.unwrap().unwrap();
    assert!(!state.saved, "the delete is the latest word: {state:?}");
    assert_eq!(metric(&app, r#"change="install",wallet="google""#).await.as_deref(), Some("1"));
    assert_eq!(metric(&app, r#"change="removal",wallet="google""#).await.as_deref(), Some("1"));
    let today = loy::domain::TimeZone::UTC.date_of(app.clock_now());
    let (start, end) =
        (loy::domain::TimeZone::UTC.start_of(today), loy::stats::end_of(loy::domain::TimeZone::UTC, today));
    let counted = app.store.wallet_totals("default", start, end).await.unwrap();
    assert_eq!(counted, WalletTotals { google_installed: 1, google_removed: 1, ..WalletTotals::default() });
    assert_eq!(fake.root_key_requests(), 1, "the root keys are fetched once and kept");
    fake.assert_clean();
}

async fn a_tampered_message_is_refused_with_400_and_records_nothing(kind: StoreKind) {
    let (app, fake, signer, card) = google_app(kind).await;
    let mut body = signer.body(ISSUER_ID, &message(&card, "save", "nonce-t"));
    let tampered = body["signedMessage"].as_str().unwrap().replace("\"save\"", "\"del\"");
    body["signedMessage"] = json!(tampered);

    for _ in 0..3 {
        let refused = post_callback(&app, &body).await;
        assert_eq!(refused.status(), 400);
        let error: Value = refused.json().await.unwrap();
        assert_eq!(error["error"]["code"], "invalid_callback", "{error}");
    }
    let other_issuer = post_callback(&app, &signer.body("3388000000099999999", &message(&card, "save", "n-o"))).await;
    assert_eq!(other_issuer.status(), 400, "signed for another issuer");
    let garbage = app.client.post(app.url("/google/callbacks")).body("not json").send().await.unwrap();
    assert_eq!(garbage.status(), 400);

    assert!(changes(&app, &card).await.is_empty());
    assert_eq!(app.store.google_wallet_state(&card.serial).await.unwrap(), None);
    assert_eq!(metric(&app, r#"change="install",wallet="google""#).await, None);
    assert_eq!(fake.root_key_requests(), 1, "failed requests do not fetch the root keys again");
}

async fn an_expired_intermediate_key_is_refused_with_400(kind: StoreKind) {
    let (app, _fake, mut signer, card) = google_app(kind).await;
    signer.key_expires = app.clock_now() - chrono::Duration::minutes(1);

    let refused = post_callback(&app, &signer.body(ISSUER_ID, &message(&card, "save", "nonce-x"))).await;

    assert_eq!(refused.status(), 400);
    assert!(changes(&app, &card).await.is_empty());
}

async fn a_replayed_callback_is_answered_200_and_recorded_once(kind: StoreKind) {
    let (app, _fake, signer, card) = google_app(kind).await;
    let body = signer.body(ISSUER_ID, &message(&card, "save", "nonce-replayed"));

    for _ in 0..3 {
        assert_eq!(post_callback(&app, &body).await.status(), 200);
    }
    // Google signs a redelivery anew; the nonce is what identifies the event.
    let resigned = signer.body(ISSUER_ID, &message(&card, "save", "nonce-replayed"));
    assert_eq!(post_callback(&app, &resigned).await.status(), 200);

    assert_eq!(changes(&app, &card).await, [(Wallet::Google, WalletChange::Installed, WalletSource::Callback)]);
    assert_eq!(metric(&app, r#"change="install",wallet="google""#).await.as_deref(), Some("1"));
}

async fn a_callback_for_an_object_that_is_no_card_of_ours_is_answered_200_and_records_nothing(kind: StoreKind) {
    let (app, _fake, signer, card) = google_app(kind).await;
    let unknown = GoogleSigner::message(&class_id(), &format!("{ISSUER_ID}.nosuchcard"), "save", "n-unknown");
    let foreign = GoogleSigner::message(&class_id(), "1234.other-issuer", "save", "n-foreign");

    for message in [unknown, foreign] {
        assert_eq!(post_callback(&app, &signer.body(ISSUER_ID, &message)).await.status(), 200);
    }

    assert!(changes(&app, &card).await.is_empty());
    let nobody = SerialNumber::parse("nosuchcard").unwrap();
    assert!(app.store.card_wallet_events(&nobody, 10).await.unwrap().is_empty());
    assert_eq!(metric(&app, r#"change="install",wallet="google""#).await, None);
}

async fn the_reconciliation_records_saves_and_removals_whose_callback_never_came(kind: StoreKind) {
    let (app, fake, _signer, card) = google_app(kind).await;
    let id = object_id(card.serial.as_str());
    let mut object = fake.object(&id).unwrap();

    let first = reconcile::round(&app.state, None, 10).await.unwrap();
    assert_eq!((first.checked, first.recorded, first.next), (1, 0, None), "nobody has the pass yet");

    object["hasUsers"] = json!(true);
    fake.put_object(&id, object.clone());
    assert_eq!(reconcile::round(&app.state, None, 10).await.unwrap().recorded, 1);
    assert_eq!(reconcile::round(&app.state, None, 10).await.unwrap().recorded, 0, "already known");
    assert!(app.store.google_wallet_state(&card.serial).await.unwrap().is_some_and(|s| s.saved));

    object["hasUsers"] = json!(false);
    fake.put_object(&id, object);
    assert_eq!(reconcile::round(&app.state, None, 10).await.unwrap().recorded, 1);
    assert_eq!(
        changes(&app, &card).await,
        [
            (Wallet::Google, WalletChange::Installed, WalletSource::Reconciliation),
            (Wallet::Google, WalletChange::Removed, WalletSource::Reconciliation),
        ]
    );
    assert!(matches!(
        app.store.google_wallet_state(&card.serial).await.unwrap(),
        Some(GoogleWalletState { saved: false, .. })
    ));

    // Rounds are bounded: one card per round walks the cards in serial order.
    let second = app.card(&app.new_card().await).await;
    fake.wait_for_object(&object_id(second.serial.as_str())).await;
    let (low, high) = if card.serial.as_str() < second.serial.as_str() { (&card, &second) } else { (&second, &card) };
    let round = reconcile::round(&app.state, None, 1).await.unwrap();
    assert_eq!((round.checked, round.next.as_ref()), (1, Some(&low.serial)));
    let round = reconcile::round(&app.state, Some(&low.serial), 1).await.unwrap();
    assert_eq!((round.checked, round.next.as_ref()), (1, Some(&high.serial)));
    let round = reconcile::round(&app.state, Some(&high.serial), 1).await.unwrap();
    assert_eq!((round.checked, round.next), (0, None), "past the last card");
    fake.assert_clean();
}

async fn an_apple_registration_is_one_install_and_its_removal_one_removal(kind: StoreKind) {
    let app = spawn_app(kind).await;
    let pass = new_pass(&app).await;
    let (serial, auth) = (pass.serial(), apple_auth(&pass.token()));
    let parsed = SerialNumber::parse(&serial).unwrap();
    let card = app.store.find_card(loy::store::CardLookup::Serial(&parsed)).await.unwrap().unwrap();
    let (device, token) = ("a1b2c3d4e5f60718293a4b5c6d7e8f90", "ab".repeat(32));

    assert_eq!(register(&app, device, &serial, Some(&auth), &token).await.status(), 201);
    assert_eq!(register(&app, device, &serial, Some(&auth), &token).await.status(), 200);
    assert_eq!(unregister(&app, device, &serial, Some(&auth)).await.status(), 200);
    assert_eq!(unregister(&app, device, &serial, Some(&auth)).await.status(), 200);
    assert_eq!(changes(&app, &card).await.len(), 2, "a re-registration is not a new install");
    // Installed again after the removal: a new install.
    assert_eq!(register(&app, device, &serial, Some(&auth), &token).await.status(), 201);

    let expected = [
        (Wallet::Apple, WalletChange::Installed, WalletSource::PassKit),
        (Wallet::Apple, WalletChange::Removed, WalletSource::PassKit),
        (Wallet::Apple, WalletChange::Installed, WalletSource::PassKit),
    ];
    assert_eq!(changes(&app, &card).await, expected);
    assert_eq!(metric(&app, r#"change="install",wallet="apple""#).await.as_deref(), Some("2"));
    assert_eq!(metric(&app, r#"change="removal",wallet="apple""#).await.as_deref(), Some("1"));
    let today = loy::domain::TimeZone::UTC.date_of(app.clock_now());
    let (start, end) =
        (loy::domain::TimeZone::UTC.start_of(today), loy::stats::end_of(loy::domain::TimeZone::UTC, today));
    let counted = app.store.wallet_totals(&card.program_id, start, end).await.unwrap();
    assert_eq!(counted, WalletTotals { apple_installed: 2, apple_removed: 1, ..WalletTotals::default() });
    assert_eq!(app.store.google_wallet_state(&card.serial).await.unwrap(), None);
}

async fn the_customer_page_shows_the_cards_wallets(kind: StoreKind) {
    let (app, _fake, signer, card) = google_app(kind).await;
    let staff = app.signed_in(Role::Manager).await;
    let path = format!("/admin/customers/{}", card.serial);
    let before = staff.get(&path).await;
    assert_eq!(before.status, 200);
    assert_eq!(test_id(&before.body, "google-wallet").as_deref(), Some("Google has not reported it"));
    assert_eq!(test_id(&before.body, "apple-devices").as_deref(), Some("—"));

    post_callback(&app, &signer.body(ISSUER_ID, &message(&card, "save", "nonce-page"))).await;
    let stamp = |t: chrono::DateTime<chrono::Utc>| t.format("%Y-%m-%d %H:%M").to_string();
    let saved_at = app.store.google_wallet_state(&card.serial).await.unwrap().unwrap().at;
    let after = staff.get(&path).await;

    assert_eq!(test_id(&after.body, "google-wallet"), Some(format!("yes, since {}", stamp(saved_at))));
    assert!(after.body.contains("<td>Google Wallet</td><td>added</td><td>Google</td>"), "{}", after.body);
}
