//! The storage conformance suite: the same functions run against every backend.

use std::sync::Arc;

use chrono::{TimeZone, Utc};
use loy::domain::{Card, Currency, Customer, Email, Locale, PersonName, Phone, Program, SerialNumber};
use loy::store::{CardLookup, DynStore, Faults, StoreError, UniqueKey};

use crate::helpers::{StoreKind, TestEnv};
use crate::on_both_stores;

pub struct TestStore {
    pub store: DynStore,
    pub faults: Arc<Faults>,
    _env: TestEnv,
}

pub async fn test_store(kind: StoreKind) -> TestStore {
    let env = TestEnv::new(&kind);
    let faults = Arc::new(Faults::default());
    let store = loy::startup::connect_store(&env.settings(), faults.clone()).await.expect("store opens");
    TestStore { store, faults, _env: env }
}

pub fn program() -> Program {
    Program::new("default", "Coffee", Currency::parse("RUB").unwrap(), Utc::now())
}

pub fn customer(phone: &str) -> Customer {
    Customer {
        first_name: PersonName::parse("Anna").unwrap(),
        last_name: Some(PersonName::parse("Ivanova").unwrap()),
        phone: Phone::parse(phone).unwrap(),
        email: Some(Email::parse("anna@example.com").unwrap()),
        birthday: chrono::NaiveDate::from_ymd_opt(1990, 5, 17),
        locale: Locale::En,
        consent_at: Utc.with_ymd_and_hms(2026, 1, 2, 3, 4, 5).unwrap(),
    }
}

on_both_stores!(
    a_card_round_trips_every_field_and_is_found_by_every_lookup,
    each_unique_key_refuses_a_second_card,
    inserting_a_card_is_all_or_nothing_whatever_step_fails,
    ensuring_a_program_creates_it_once_and_keeps_what_is_stored,
);

async fn a_card_round_trips_every_field_and_is_found_by_every_lookup(kind: StoreKind) {
    let t = test_store(kind).await;
    let program = program();
    let referrer = SerialNumber::generate();
    let now = Utc.timestamp_millis_opt(1_790_000_000_123).unwrap();
    let (card, welcome) = Card::enroll(&program, customer("+79120000001"), Some(referrer), now);

    t.store.insert_card(&card, &welcome).await.unwrap();

    let lookups = [
        CardLookup::Serial(&card.serial),
        CardLookup::Key(card.card_key.expose()),
        CardLookup::Number(&card.card_number),
        CardLookup::Barcode(card.barcode.as_str()),
        CardLookup::Phone { program_id: "default", phone: &card.holder.phone },
        CardLookup::ReferralCode { program_id: "default", code: &card.referral_code },
    ];
    for lookup in lookups {
        let found = t.store.find_card(lookup).await.unwrap();
        assert_eq!(found.as_ref(), Some(&card), "{lookup:?}");
    }
    let other_program =
        t.store.find_card(CardLookup::Phone { program_id: "other", phone: &card.holder.phone }).await.unwrap();
    assert!(other_program.is_none());
    assert!(t.store.find_card(CardLookup::Key("nosuchkeynosuchkeynosuchke")).await.unwrap().is_none());

    let entries = t.store.card_entries(&card.serial, None, 50).await.unwrap();
    assert_eq!(entries, vec![welcome]);
    assert!(t.store.card_entries(&SerialNumber::generate(), None, 50).await.unwrap().is_empty());
}

async fn each_unique_key_refuses_a_second_card(kind: StoreKind) {
    let t = test_store(kind).await;
    let program = program();
    let (first, welcome) = Card::enroll(&program, customer("+79120000002"), None, Utc::now());
    t.store.insert_card(&first, &welcome).await.unwrap();

    type Collide<'a> = Box<dyn Fn(&mut Card) + 'a>;
    let cases: Vec<(UniqueKey, Collide)> = vec![
        (UniqueKey::Phone, Box::new(|c: &mut Card| c.holder.phone = first.holder.phone.clone())),
        (UniqueKey::Serial, Box::new(|c: &mut Card| c.serial = first.serial.clone())),
        (UniqueKey::CardNumber, Box::new(|c: &mut Card| c.card_number = first.card_number.clone())),
        (UniqueKey::CardKey, Box::new(|c: &mut Card| c.card_key = first.card_key.clone())),
        (UniqueKey::Barcode, Box::new(|c: &mut Card| c.barcode = first.barcode.clone())),
        (UniqueKey::ReferralCode, Box::new(|c: &mut Card| c.referral_code = first.referral_code.clone())),
    ];
    for (i, (key, collide)) in cases.into_iter().enumerate() {
        let (mut second, mut entry) = Card::enroll(&program, customer(&format!("+7912111000{i}")), None, Utc::now());
        collide(&mut second);
        entry.serial = second.serial.clone();
        let result = t.store.insert_card(&second, &entry).await;
        assert!(matches!(result, Err(StoreError::Duplicate(k)) if k == key), "{key:?}: {result:?}");
    }
    assert_eq!(t.store.find_card(CardLookup::Serial(&first.serial)).await.unwrap(), Some(first.clone()));
    assert_eq!(t.store.card_entries(&first.serial, None, 10).await.unwrap().len(), 1);
}

async fn inserting_a_card_is_all_or_nothing_whatever_step_fails(kind: StoreKind) {
    let t = test_store(kind).await;
    let program = program();
    // Count the steps of a clean insert, then fail each one in turn.
    let (probe, probe_entry) = Card::enroll(&program, customer("+79120000100"), None, Utc::now());
    t.faults.start_counting();
    t.store.insert_card(&probe, &probe_entry).await.unwrap();
    let steps = t.faults.calls();
    assert!(steps >= 2, "the insert has several steps ({steps})");

    for n in 1..=steps {
        let (card, welcome) = Card::enroll(&program, customer(&format!("+7912000{:04}", 200 + n)), None, Utc::now());
        t.faults.fail_on_call(n);
        let result = t.store.insert_card(&card, &welcome).await;
        t.faults.disarm();
        assert!(matches!(result, Err(StoreError::Injected(_))), "step {n}: {result:?}");

        let stored = t.store.find_card(CardLookup::Serial(&card.serial)).await.unwrap();
        let entries = t.store.card_entries(&card.serial, None, 10).await.unwrap();
        match stored {
            None => assert!(entries.is_empty(), "step {n}: an entry without its card"),
            Some(stored) => {
                assert_eq!(stored, card, "step {n}");
                assert_eq!(entries, vec![welcome], "step {n}: a card without its welcome entry");
            }
        }
    }
}

async fn ensuring_a_program_creates_it_once_and_keeps_what_is_stored(kind: StoreKind) {
    let t = test_store(kind).await;
    let original = program();
    let stored = t.store.ensure_program(&original).await.unwrap();
    assert_eq!(stored.id, original.id);
    assert_eq!(stored.rules, original.rules);
    assert_eq!(stored.name, "Coffee");

    let mut renamed = program();
    renamed.name = "Tea".into();
    let again = t.store.ensure_program(&renamed).await.unwrap();

    assert_eq!(again.name, "Coffee", "an existing program is not overwritten");
    assert_eq!(t.store.program("default").await.unwrap().unwrap().name, "Coffee");
    assert!(t.store.program("nope").await.unwrap().is_none());
}
