//! Phone numbers: every spelling of one number gives one card, impossible numbers are refused,
//! and stored numbers are re-normalised once at start without merging two people's cards.

use chrono::Utc;
use loy::domain::{Card, Phone, PhoneRegion, Scope};
use loy::enrollment::phones::{Mode, STEP, renormalise};
use loy::store::{CardLookup, StoreError, UniqueKey};
use serde_json::{Value, json};

use crate::helpers::{StoreKind, TestEnv, spawn_app, spawn_app_in};
use crate::on_both_stores;
use crate::store_conformance::{customer, program, test_store};

on_both_stores!(
    every_spelling_of_one_number_gives_one_card_through_the_api,
    every_spelling_of_one_number_gives_one_card_through_the_form,
    impossible_numbers_are_refused_with_a_clear_message,
    the_pos_finds_a_card_by_any_spelling_of_its_number,
    the_default_region_reads_numbers_without_a_country_code,
    phone_store_operations_list_rewrite_and_record,
    stored_numbers_are_renormalised_once_at_start_and_shared_ones_reported,
    loy_check_phones_exits_1_on_shared_or_impossible_numbers_and_changes_nothing,
);

/// Ways people write +7 912 345-67-89.
const SPELLINGS: &[&str] = &[
    "+7 (912) 345-67-89",
    "8 912 345-67-89",
    "8 (912) 345 67 89",
    "89123456789",
    "79123456789",
    "9123456789",
    "+79123456789",
    "007 912 345 67 89",
    "8.912.345.67.89",
    "+7-912-345-67-89",
];

fn with_number(digits: &str, spelling: &str) -> String {
    // Each test uses its own subscriber number (stores are shared by MongoDB tests in one run
    // only through fresh databases, but a distinct number keeps failures readable).
    spelling.replace("912", &digits[..3]).replace("345", &digits[3..6])
}

async fn every_spelling_of_one_number_gives_one_card_through_the_api(kind: StoreKind) {
    let app = spawn_app(kind).await;
    let first = app.enroll("Anna", SPELLINGS[0]).await;

    for spelling in &SPELLINGS[1..] {
        let response = app.post_enrollment(&json!({"first_name": "Anna", "phone": spelling, "consent": true})).await;
        assert_eq!(response.status(), 202, "{spelling} made a second card");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["status"], "already_registered", "{spelling}");
    }
    let phone = Phone::parse("+79123456789", PhoneRegion::RU).unwrap();
    let card = app.store.find_card(CardLookup::Phone { program_id: "default", phone: &phone }).await.unwrap();
    assert_eq!(card.unwrap().card_number.as_str(), first["card"]["card_number"].as_str().unwrap());
}

async fn every_spelling_of_one_number_gives_one_card_through_the_form(kind: StoreKind) {
    let app = spawn_app(kind).await;
    let spelled = |s: &str| with_number("903456", s);
    let created = app
        .post_form("/?lang=en", &[("first_name", "Anna"), ("phone", &spelled(SPELLINGS[1])), ("consent", "on")])
        .await;
    assert_eq!(created.status(), 303);

    for spelling in SPELLINGS {
        let again = app
            .post_form("/?lang=en", &[("first_name", "Anna"), ("phone", &spelled(spelling)), ("consent", "on")])
            .await;
        assert_eq!(again.status(), 200, "{spelling}");
        assert!(again.text().await.unwrap().contains("already registered"), "{spelling} made a second card");
    }
    let phone = Phone::parse("+79034566789", PhoneRegion::RU).unwrap();
    assert!(app.store.find_card(CardLookup::Phone { program_id: "default", phone: &phone }).await.unwrap().is_some());
}

async fn impossible_numbers_are_refused_with_a_clear_message(kind: StoreKind) {
    let app = spawn_app(kind).await;
    let cases = [
        ("+8 912 345 67 89", "phone_country_code"),
        ("+0 912 345 67 89", "phone_country_code"),
        ("+7 012 345 67 89", "phone_not_valid"),
        ("+7 912 345", "phone_length"),
        ("call me", "invalid_phone"),
    ];
    for (phone, code) in cases {
        let response = app.post_enrollment(&json!({"first_name": "Anna", "phone": phone, "consent": true})).await;
        assert_eq!(response.status(), 422, "{phone}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"]["code"], code, "{phone}: {body}");
        assert_eq!(body["error"]["field"], "phone");
        assert!(body["error"]["message"].as_str().unwrap().len() > 20, "{body}");
    }
    for (lang, words) in [("en", "No country has this code"), ("ru", "Такого кода страны нет")] {
        let page = app
            .post_form(
                &format!("/?lang={lang}"),
                &[("first_name", "Anna"), ("phone", "+8 912 345 67 89"), ("consent", "on")],
            )
            .await;
        assert_eq!(page.status(), 422);
        let html = page.text().await.unwrap();
        assert!(html.contains(words), "{lang}: the message is missing");
        assert!(html.contains("+8 912 345 67 89"), "what was typed is kept");
    }
}

async fn the_pos_finds_a_card_by_any_spelling_of_its_number(kind: StoreKind) {
    let app = spawn_app(kind).await;
    let pos = app.api_key(Scope::Pos).await;
    let enrolled = app.enroll("Anna", "+7 916 111 22 33").await;
    for spelling in ["8%20916%20111-22-33", "%2B7%20(916)%20111%2022%2033", "007%20916%20111%2022%2033", "9161112233"] {
        let answer = app.pos_get(&format!("/api/v1/cards?phone={spelling}"), &pos).await;
        assert_eq!(answer.status, 200, "{spelling}: {answer:?}");
        assert_eq!(answer.body["card_number"], enrolled["card"]["card_number"], "{spelling}");
    }
    let impossible = app.pos_get("/api/v1/cards?phone=%2B8%20916%20111%2022%2033", &pos).await;
    assert_eq!((impossible.status, impossible.body["error"]["code"].as_str()), (422, Some("phone_country_code")));
}

async fn the_default_region_reads_numbers_without_a_country_code(kind: StoreKind) {
    let mut env = TestEnv::new(&kind);
    env.set("LOY_DEFAULT_PHONE_REGION", "GB");
    let app = spawn_app_in(env).await;
    app.enroll("Alice", "020 7946 0958").await;
    let again =
        app.post_enrollment(&json!({"first_name": "Alice", "phone": "+44 (0)20 7946 0958", "consent": true})).await;
    assert_eq!(again.status(), 202);
    let phone = Phone::parse("+442079460958", PhoneRegion::RU).unwrap();
    assert!(app.store.find_card(CardLookup::Phone { program_id: "default", phone: &phone }).await.unwrap().is_some());
}

/// A card stored with `stored` as its phone, whatever the current rules say of it.
async fn card_with_stored_phone(store: &dyn loy::store::Store, stored: &str) -> Card {
    let mut holder = customer("+79120000001");
    holder.phone = Phone::from_stored(stored).unwrap();
    let (card, welcome) = Card::enroll(&program(), holder, None, Utc::now());
    store.insert_card(&card, &welcome).await.unwrap();
    card
}

async fn phone_store_operations_list_rewrite_and_record(kind: StoreKind) {
    let t = test_store(kind).await;
    t.store.ensure_program(&program()).await.unwrap();
    let mut cards = Vec::new();
    for n in 0..7 {
        cards.push(card_with_stored_phone(t.store.as_ref(), &format!("+7912555000{n}")).await);
    }
    cards.sort_by(|a, b| a.serial.cmp(&b.serial));

    let first = t.store.stored_phones(None, 4).await.unwrap();
    let rest = t.store.stored_phones(Some(&first.last().unwrap().serial), 4).await.unwrap();
    let listed: Vec<_> = first.iter().chain(&rest).map(|p| p.serial.clone()).collect();
    assert_eq!(listed, cards.iter().map(|c| c.serial.clone()).collect::<Vec<_>>(), "every card once, in serial order");
    assert_eq!(first[0].phone, cards[0].holder.as_ref().unwrap().phone.as_str());
    assert_eq!(first[0].program_id, "default");

    let new_phone = Phone::parse("+7 912 555 99 99", PhoneRegion::RU).unwrap();
    assert!(t.store.set_card_phone(&cards[0].serial, &new_phone).await.unwrap());
    let moved = t.store.find_card(CardLookup::Phone { program_id: "default", phone: &new_phone }).await.unwrap();
    assert_eq!(moved.unwrap().serial, cards[0].serial);
    let taken = t.store.set_card_phone(&cards[1].serial, &new_phone).await;
    assert!(matches!(taken, Err(StoreError::Duplicate(UniqueKey::Phone))), "{taken:?}");
    let nobody = loy::domain::SerialNumber::generate();
    assert!(!t.store.set_card_phone(&nobody, &new_phone).await.unwrap());

    assert_eq!(t.store.data_step_done("a_step").await.unwrap(), None);
    let at = chrono::DateTime::from_timestamp_millis(1_780_000_000_000).unwrap();
    t.store.record_data_step("a_step", at).await.unwrap();
    t.store.record_data_step("a_step", at + chrono::Duration::days(1)).await.unwrap();
    assert_eq!(t.store.data_step_done("a_step").await.unwrap(), Some(at), "the first record is kept");
}

async fn stored_numbers_are_renormalised_once_at_start_and_shared_ones_reported(kind: StoreKind) {
    let env = TestEnv::new(&kind);
    let t = loy::startup::connect_store(&env.settings(), Default::default()).await.unwrap();
    t.ensure_program(&program()).await.unwrap();
    // Written by the old rules: a trunk `0` kept after the country code, and an impossible code.
    let old_form = card_with_stored_phone(t.as_ref(), "+4402079460958").await;
    let impossible = card_with_stored_phone(t.as_ref(), "+89123456789").await;
    // One person's two cards, once the old form of the first is read by the current rules.
    let shared_a = card_with_stored_phone(t.as_ref(), "+4402079460959").await;
    let shared_b = card_with_stored_phone(t.as_ref(), "+442079460959").await;
    let fine = card_with_stored_phone(t.as_ref(), "+79123450000").await;
    drop(t);

    let app = spawn_app_in(env).await;

    let phone_of = |card: &Card| {
        let serial = card.serial.clone();
        let store = app.store.clone();
        async move { store.find_card(CardLookup::Serial(&serial)).await.unwrap().unwrap().holder.unwrap().phone }
    };
    assert_eq!(phone_of(&old_form).await.as_str(), "+442079460958", "re-normalised");
    assert_eq!(phone_of(&impossible).await.as_str(), "+89123456789", "left for staff");
    assert_eq!(phone_of(&shared_a).await.as_str(), "+4402079460959", "not merged");
    assert_eq!(phone_of(&shared_b).await.as_str(), "+442079460959", "not merged");
    assert_eq!(phone_of(&fine).await.as_str(), "+79123450000");
    assert!(app.store.data_step_done(STEP).await.unwrap().is_some(), "the run is recorded");

    // What `loy check phones` reports now: the shared pair and the impossible number.
    let report = renormalise(app.store.as_ref(), PhoneRegion::RU, Mode::CheckOnly).await.unwrap();
    assert!(!report.is_clean());
    assert_eq!(report.cards, 5);
    assert_eq!(report.shared.len(), 1, "{report:?}");
    assert_eq!((&report.shared[0].card, &report.shared[0].other), (&shared_a.serial, &shared_b.serial));
    assert_eq!(report.shared[0].phone, "+442079460959");
    assert_eq!(report.impossible.len(), 1);
    assert_eq!(report.impossible[0].card, impossible.serial);
    assert!(report.rewritten.is_empty(), "{report:?}");

    // The old form's owner enrolls again in today's spelling: the same card, not a second one.
    let again = app.post_enrollment(&json!({"first_name": "Anna", "phone": "+44 20 7946 0958", "consent": true})).await;
    assert_eq!(again.status(), 202);

    // A later start does not run it again: a number stored in the old form now stays.
    let late = card_with_stored_phone(app.store.as_ref(), "+4402079460957").await;
    let env = app.stop().await;
    let app = spawn_app_in(env).await;
    let stored = app.store.find_card(CardLookup::Serial(&late.serial)).await.unwrap().unwrap();
    assert_eq!(stored.holder.as_ref().unwrap().phone.as_str(), "+4402079460957");
}

/// Runs `loy ARGS` with the test app's settings only; returns (exit code, stdout, stderr).
fn loy(app: &crate::helpers::TestApp, args: &[&str]) -> (i32, String, String) {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_loy"));
    for (name, _) in std::env::vars().filter(|(name, _)| name.starts_with("LOY_")) {
        command.env_remove(name);
    }
    let output = command.envs(&app.env.vars).args(args).output().expect("the loy binary runs");
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

async fn loy_check_phones_exits_1_on_shared_or_impossible_numbers_and_changes_nothing(kind: StoreKind) {
    let app = spawn_app(kind).await;
    app.enroll("Anna", "8 912 345 00 01").await;

    let (code, stdout, stderr) = loy(&app, &["check", "phones"]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(stdout.contains("Phones OK: 1 cards"), "{stdout}");

    let shared = card_with_stored_phone(app.store.as_ref(), "+4402079460959").await;
    let other = card_with_stored_phone(app.store.as_ref(), "+442079460959").await;
    let impossible = card_with_stored_phone(app.store.as_ref(), "+89123456789").await;
    let (code, stdout, stderr) = loy(&app, &["check", "phones"]);

    assert_eq!(code, 1, "{stdout}{stderr}");
    assert!(
        stdout.contains(&format!("SHARED card {} (+4402079460959) and card {}", shared.serial, other.serial)),
        "{stdout}"
    );
    assert!(stdout.contains(&format!("IMPOSSIBLE card {}: +89123456789", impossible.serial)), "{stdout}");
    assert!(stdout.contains("Phone check FAILED: 1 shared and 1 impossible numbers in 4 cards"), "{stdout}");
    let stored = app.store.find_card(CardLookup::Serial(&shared.serial)).await.unwrap().unwrap();
    assert_eq!(stored.holder.as_ref().unwrap().phone.as_str(), "+4402079460959", "a check changes nothing");
}
