//! The storage conformance suite: the same functions run against every backend.

use std::sync::Arc;

use chrono::{TimeZone, Utc};
use loy::domain::{
    Card, Currency, Customer, DeviceLibraryId, Email, Locale, PassTypeId, PersonName, Phone, Program, PushToken,
    RegisterOutcome, Registration, SerialNumber,
};
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
        phone: Phone::parse(phone, loy::domain::PhoneRegion::RU).unwrap(),
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
    updating_a_card_succeeds_only_from_the_version_read,
    concurrent_version_bumps_are_never_lost,
    device_registrations_are_idempotent_upserts,
    a_ledger_write_applies_only_from_the_version_read_and_all_or_nothing,
    idempotency_records_start_once_can_be_taken_over_completed_and_purged,
    api_keys_and_webhook_sources_round_trip_and_revoke,
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
        CardLookup::Phone { program_id: "default", phone: &card.holder.as_ref().unwrap().phone },
        CardLookup::ReferralCode { program_id: "default", code: &card.referral_code },
    ];
    for lookup in lookups {
        let found = t.store.find_card(lookup).await.unwrap();
        assert_eq!(found.as_ref(), Some(&card), "{lookup:?}");
    }
    let other_program = t
        .store
        .find_card(CardLookup::Phone { program_id: "other", phone: &card.holder.as_ref().unwrap().phone })
        .await
        .unwrap();
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
        (
            UniqueKey::Phone,
            Box::new(|c: &mut Card| c.holder.as_mut().unwrap().phone = first.holder.as_ref().unwrap().phone.clone()),
        ),
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

        let stored = t.store.find_card(CardLookup::Serial(&card.serial)).await.unwrap();
        let entries = t.store.card_entries(&card.serial, None, 10).await.unwrap();
        match result {
            // A failure before the commit point: nothing exists.
            Err(StoreError::Injected(_)) => {
                assert!(stored.is_none(), "step {n}: a failed insert left a card");
                assert!(entries.is_empty(), "step {n}: an entry without its card");
            }
            // A failure after it is not the caller's: the card exists with its first entry.
            Ok(()) => {
                assert_eq!(stored.as_ref(), Some(&card), "step {n}");
                assert_eq!(entries, vec![welcome], "step {n}: a card without its welcome entry");
            }
            Err(other) => panic!("step {n}: {other:?}"),
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

async fn insert(t: &TestStore, phone: &str) -> Card {
    let (card, welcome) = Card::enroll(&program(), customer(phone), None, Utc::now());
    t.store.insert_card(&card, &welcome).await.unwrap();
    card
}

async fn updating_a_card_succeeds_only_from_the_version_read(kind: StoreKind) {
    let t = test_store(kind).await;
    let card = insert(&t, "+79120000301").await;
    let mut next = card.bumped(Utc::now());
    next.balance = 250;
    next.holder.as_mut().unwrap().first_name = PersonName::parse("Annie").unwrap();

    assert!(t.store.update_card(&next, card.version).await.unwrap());
    assert!(!t.store.update_card(&next.bumped(Utc::now()), card.version).await.unwrap(), "a stale version loses");

    let stored = t.store.find_card(CardLookup::Serial(&card.serial)).await.unwrap().unwrap();
    assert_eq!(stored, next);
    assert_eq!(stored.version, card.version + 1);
    assert!(stored.needs_push());
    assert!(stored.modified_at > card.modified_at);
}

async fn concurrent_version_bumps_are_never_lost(kind: StoreKind) {
    let t = test_store(kind).await;
    let card = insert(&t, "+79120000302").await;
    let bumps = (0..20).map(|_| loy::store::bump_version(t.store.as_ref(), &card.serial, Utc::now()));
    let results = futures_util::future::join_all(bumps).await;
    assert!(results.iter().all(|r| matches!(r, Ok(Some(_)))));

    let stored = t.store.find_card(CardLookup::Serial(&card.serial)).await.unwrap().unwrap();
    assert_eq!(stored.version, card.version + 20);
    assert!(
        stored.modified_at >= card.modified_at + chrono::Duration::seconds(20),
        "every version has its own Last-Modified second"
    );
    assert!(loy::store::bump_version(t.store.as_ref(), &SerialNumber::generate(), Utc::now()).await.unwrap().is_none());
}

fn registration(device: &str, serial: &SerialNumber, token: &str) -> Registration {
    Registration {
        device_library_id: DeviceLibraryId::parse(device).unwrap(),
        pass_type_id: PassTypeId::parse("pass.test.loy").unwrap(),
        serial: serial.clone(),
        push_token: PushToken::parse(token).unwrap(),
        pushed_version: 1,
        created_at: loy::domain::card::stored_precision(Utc::now()),
        updated_at: loy::domain::card::stored_precision(Utc::now()),
    }
}

async fn device_registrations_are_idempotent_upserts(kind: StoreKind) {
    let t = test_store(kind).await;
    let a = insert(&t, "+79120000401").await;
    let b = insert(&t, "+79120000402").await;
    let pass_type = PassTypeId::parse("pass.test.loy").unwrap();
    let phone = DeviceLibraryId::parse("device-one").unwrap();

    assert_eq!(
        t.store.register_device(&registration("device-one", &a.serial, "token1"), 10).await.unwrap(),
        RegisterOutcome::Created
    );
    assert_eq!(
        t.store.register_device(&registration("device-one", &a.serial, "token1"), 10).await.unwrap(),
        RegisterOutcome::Updated
    );
    assert_eq!(
        t.store.register_device(&registration("device-one", &b.serial, "token2"), 10).await.unwrap(),
        RegisterOutcome::Created
    );
    assert_eq!(
        t.store.register_device(&registration("device-two", &a.serial, "token3"), 10).await.unwrap(),
        RegisterOutcome::Created
    );

    let cards = t.store.device_cards(&phone, &pass_type).await.unwrap();
    let mut expected = vec![a.serial.clone(), b.serial.clone()];
    expected.sort();
    assert_eq!(cards.iter().map(|c| c.serial.clone()).collect::<Vec<_>>(), expected);
    let other_type = PassTypeId::parse("pass.other.type").unwrap();
    assert!(t.store.device_cards(&phone, &other_type).await.unwrap().is_empty());

    let on_a = t.store.card_registrations(&a.serial).await.unwrap();
    assert_eq!(on_a.len(), 2);
    let device_one = on_a.iter().find(|r| r.device_library_id == phone).unwrap();
    assert_eq!(
        device_one.push_token.expose(),
        "token1",
        "registering for another pass leaves this registration's token alone"
    );

    assert!(t.store.unregister_device(&phone, &pass_type, &a.serial).await.unwrap());
    assert!(!t.store.unregister_device(&phone, &pass_type, &a.serial).await.unwrap());
    assert_eq!(t.store.card_registrations(&a.serial).await.unwrap().len(), 1);

    let removed = t.store.delete_registrations_with_token(&PushToken::parse("token3").unwrap()).await.unwrap();
    assert_eq!(removed.len(), 1);
    assert_eq!((&removed[0].serial, removed[0].push_token.expose()), (&a.serial, "token3"));
    assert!(t.store.delete_registrations_with_token(&PushToken::parse("token3").unwrap()).await.unwrap().is_empty());
    assert!(t.store.card_registrations(&a.serial).await.unwrap().is_empty());
    assert_eq!(t.store.card_registrations(&b.serial).await.unwrap().len(), 1);
}

pub fn earn_write(card: &Card, points: i64) -> loy::store::LedgerWrite {
    let now = loy::domain::card::stored_precision(Utc::now());
    let entry = loy::domain::LedgerEntry {
        id: loy::domain::LedgerEntry::new_id(),
        serial: card.serial.clone(),
        program_id: card.program_id.clone(),
        seq: card.version + 1,
        kind: loy::domain::EntryKind::Earn,
        points,
        rewards: 0,
        rewards_after: 0,
        purchase_amount: Some(points * 2000),
        balance_after: card.balance + points,
        lifetime_after: card.lifetime_earned + points,
        tier_after: card.tier.clone(),
        order_id: Some("o-1".into()),
        description: None,
        source: loy::domain::EntrySource::Pos,
        actor: Some("key".into()),
        idempotency_key: Some("idem".into()),
        reverses: None,
        created_at: now,
    };
    let mut next = card.bumped(now);
    next.balance += points;
    next.lifetime_earned += points;
    loy::store::LedgerWrite { card: next, expected_version: card.version, entries: vec![entry], completes: None }
}

async fn a_ledger_write_applies_only_from_the_version_read_and_all_or_nothing(kind: StoreKind) {
    let t = test_store(kind).await;
    let card = insert(&t, "+79120000501").await;

    let write = earn_write(&card, 40);
    assert!(t.store.commit_ledger(&write).await.unwrap());
    assert!(!t.store.commit_ledger(&earn_write(&card, 7)).await.unwrap(), "a stale version commits nothing");
    let stored = t.store.find_card(CardLookup::Serial(&card.serial)).await.unwrap().unwrap();
    assert_eq!((stored.balance, stored.version), (140, card.version + 1));
    let entry = &write.entries[0];
    assert_eq!(t.store.entry(&entry.id).await.unwrap().as_ref(), Some(entry));
    assert_eq!(t.store.card_entries(&card.serial, None, 10).await.unwrap().len(), 2);

    // A reversal is found by the entry it reverses.
    let mut reversal = earn_write(&stored, -40);
    reversal.entries[0].kind = loy::domain::EntryKind::Reverse;
    reversal.entries[0].reverses = Some(entry.id.clone());
    assert!(t.store.commit_ledger(&reversal).await.unwrap());
    assert_eq!(t.store.reversal_of(&entry.id).await.unwrap().map(|e| e.id), Some(reversal.entries[0].id.clone()));
    assert!(t.store.reversal_of(&reversal.entries[0].id).await.unwrap().is_none());

    // Fail every step of a write in turn: the card and its entries always agree.
    let current = t.store.find_card(CardLookup::Serial(&card.serial)).await.unwrap().unwrap();
    t.faults.start_counting();
    let probe = earn_write(&current, 1);
    assert!(t.store.commit_ledger(&probe).await.unwrap());
    let steps = t.faults.calls();
    for n in 1..=steps {
        let before = t.store.find_card(CardLookup::Serial(&card.serial)).await.unwrap().unwrap();
        let write = earn_write(&before, 3);
        t.faults.fail_on_call(n);
        let result = t.store.commit_ledger(&write).await;
        t.faults.disarm();
        // Seen before any repair: readers never miss a committed entry.
        let found_at_once = t.store.entry(&write.entries[0].id).await.unwrap();
        t.store.repair_card(&card.serial).await.unwrap();
        let after = t.store.find_card(CardLookup::Serial(&card.serial)).await.unwrap().unwrap();
        let found = t.store.entry(&write.entries[0].id).await.unwrap();
        let entries = t.store.card_entries(&card.serial, None, usize::MAX).await.unwrap();
        match result {
            Err(StoreError::Injected(_)) => {
                assert_eq!(after.version, before.version, "step {n}: a failed commit changed the card");
                assert!(found.is_none(), "step {n}: an entry without its card change");
            }
            Ok(true) => {
                assert_eq!(after.balance, before.balance + 3, "step {n}");
                assert!(found_at_once.is_some() && found.is_some(), "step {n}: a card change without its entry");
            }
            other => panic!("step {n}: {other:?}"),
        }
        assert_eq!(entries.iter().map(|e| e.points).sum::<i64>(), after.balance, "step {n}: balance = sum of entries");
    }
}

async fn idempotency_records_start_once_can_be_taken_over_completed_and_purged(kind: StoreKind) {
    use loy::store::{IdempotencyKey, IdempotencyRecord, IdempotencyStart, StoredResponse};
    let t = test_store(kind).await;
    let now = loy::domain::card::stored_precision(Utc::now());
    let key = IdempotencyKey { scope: "key1".into(), key: "order-42".into() };
    let record = IdempotencyRecord {
        key: key.clone(),
        request_hash: "h1".into(),
        entry_id: "tx_one".into(),
        lease_until: now + chrono::Duration::seconds(10),
        response: None,
        created_at: now,
        expires_at: now + chrono::Duration::hours(48),
    };
    assert_eq!(t.store.idempotency_start(&record).await.unwrap(), IdempotencyStart::Started);
    let second = IdempotencyRecord { entry_id: "tx_two".into(), request_hash: "h2".into(), ..record.clone() };
    assert_eq!(t.store.idempotency_start(&second).await.unwrap(), IdempotencyStart::Existing(record.clone()));
    let other_scope =
        IdempotencyRecord { key: IdempotencyKey { scope: "key2".into(), key: "order-42".into() }, ..record.clone() };
    assert_eq!(t.store.idempotency_start(&other_scope).await.unwrap(), IdempotencyStart::Started, "keys are scoped");

    let later = now + chrono::Duration::seconds(20);
    assert!(!t.store.idempotency_take_over(&key, now, later).await.unwrap(), "only from the lease seen");
    assert!(t.store.idempotency_take_over(&key, record.lease_until, later).await.unwrap());
    assert!(!t.store.idempotency_take_over(&key, record.lease_until, later).await.unwrap(), "only once");
    t.store.idempotency_release(&key).await.unwrap();
    let IdempotencyStart::Existing(released) = t.store.idempotency_start(&record).await.unwrap() else { panic!() };
    assert!(released.lease_until.timestamp_millis() <= 0, "released: anyone may take over");

    let response = StoredResponse { status: 422, body: r#"{"error":{}}"#.into() };
    t.store.idempotency_complete(&key, &response).await.unwrap();
    let IdempotencyStart::Existing(done) = t.store.idempotency_start(&record).await.unwrap() else { panic!() };
    assert_eq!(done.response, Some(response));
    assert!(
        !t.store.idempotency_take_over(&key, done.lease_until, later).await.unwrap(),
        "answered records stay answered"
    );

    assert_eq!(t.store.idempotency_purge(now + chrono::Duration::hours(47)).await.unwrap(), 0);
    assert_eq!(t.store.idempotency_purge(now + chrono::Duration::hours(49)).await.unwrap(), 2);
    assert_eq!(t.store.idempotency_start(&record).await.unwrap(), IdempotencyStart::Started);
}

async fn api_keys_and_webhook_sources_round_trip_and_revoke(kind: StoreKind) {
    use loy::domain::{ApiKey, Scope, WebhookSource};
    let t = test_store(kind).await;
    let (key, _) = ApiKey::generate("Till 1", Scope::Pos, Utc::now());
    t.store.insert_api_key(&key).await.unwrap();
    assert_eq!(t.store.api_key(&key.id).await.unwrap(), Some(key.clone()));
    assert!(t.store.api_key("nosuchkey0").await.unwrap().is_none());
    assert!(matches!(t.store.insert_api_key(&key).await, Err(StoreError::Duplicate(_))));
    assert_eq!(t.store.api_keys().await.unwrap(), vec![key.clone()]);
    assert!(t.store.revoke_api_key(&key.id, Utc::now()).await.unwrap());
    assert!(!t.store.revoke_api_key(&key.id, Utc::now()).await.unwrap());
    assert!(!t.store.api_key(&key.id).await.unwrap().unwrap().is_active());

    let source = WebhookSource::generate("iiko", Utc::now());
    t.store.insert_webhook_source(&source).await.unwrap();
    assert_eq!(t.store.webhook_source(&source.id).await.unwrap(), Some(source.clone()));
    assert_eq!(t.store.webhook_sources().await.unwrap().len(), 1);
    assert!(t.store.revoke_webhook_source(&source.id, Utc::now()).await.unwrap());
    assert!(t.store.webhook_source(&source.id).await.unwrap().unwrap().revoked_at.is_some());
}
