//! The storage conformance suite for the staff console's customer operations: search, the
//! keyset-paged list, device counts and deleting a customer, on every backend.

use chrono::{Duration, Utc};
use loy::domain::{Card, CardStatus, Email, PersonName, Phone};
use loy::store::{CardLookup, CustomerCursor, CustomerListQuery, CustomerSort};

use crate::helpers::StoreKind;
use crate::on_both_stores;
use crate::store_conformance::{TestStore, customer, program, test_store};

on_both_stores!(
    customers_are_found_by_email_and_by_a_name_prefix_in_any_case,
    the_customer_list_pages_by_keyset_in_every_order_without_gaps_or_repeats,
    devices_of_a_card_are_counted,
    a_deleted_customer_keeps_card_and_ledger_without_personal_data_and_frees_the_phone,
);

async fn insert_named(t: &TestStore, phone: &str, first: &str, last: Option<&str>, email: &str, age: i64) -> Card {
    let mut holder = customer(phone);
    holder.first_name = PersonName::parse(first).unwrap();
    holder.last_name = last.map(|l| PersonName::parse(l).unwrap());
    holder.email = Some(Email::parse(email).unwrap());
    let (card, welcome) = Card::enroll(&program(), holder, None, Utc::now() - Duration::minutes(age));
    t.store.insert_card(&card, &welcome).await.unwrap();
    card
}

async fn customers_are_found_by_email_and_by_a_name_prefix_in_any_case(kind: StoreKind) {
    let t = test_store(kind).await;
    let anna = insert_named(&t, "+79120000601", "Анна", Some("Иванова"), "anna@example.com", 3).await;
    let anton = insert_named(&t, "+79120000602", "Антон", Some("Петров"), "anton@example.com", 2).await;
    let boris = insert_named(&t, "+79120000603", "Борис", Some("Анисимов"), "b@example.com", 1).await;
    let _ivan = insert_named(&t, "+79120000604", "Ivan", None, "anna@example.com", 0).await;

    let serials = |cards: Vec<Card>| cards.into_iter().map(|c| c.serial.to_string()).collect::<Vec<_>>();
    let found = serials(t.store.cards_by_name_prefix("default", "АН", 10).await.unwrap());
    assert_eq!(found.len(), 3, "first names Анна, Антон and the surname Анисимов: {found:?}");
    for card in [&anna, &anton, &boris] {
        assert!(found.contains(&card.serial.to_string()));
    }
    let found = serials(t.store.cards_by_name_prefix("default", "иванова а", 10).await.unwrap());
    assert_eq!(found, vec![anna.serial.to_string()], "last name then first name");
    let found = serials(t.store.cards_by_name_prefix("default", "анна ив", 10).await.unwrap());
    assert_eq!(found, vec![anna.serial.to_string()], "first name then last name");
    assert!(t.store.cards_by_name_prefix("default", "zz", 10).await.unwrap().is_empty());
    assert!(t.store.cards_by_name_prefix("other", "ан", 10).await.unwrap().is_empty(), "another program");
    assert_eq!(t.store.cards_by_name_prefix("default", "ан", 2).await.unwrap().len(), 2, "the limit holds");

    let by_email = t.store.cards_by_email("default", &Email::parse("anna@EXAMPLE.com").unwrap(), 10).await.unwrap();
    assert_eq!(by_email.len(), 2, "an e-mail is not unique");
    assert!(
        t.store.cards_by_email("default", &Email::parse("nobody@example.com").unwrap(), 10).await.unwrap().is_empty()
    );
}

async fn the_customer_list_pages_by_keyset_in_every_order_without_gaps_or_repeats(kind: StoreKind) {
    let t = test_store(kind).await;
    let mut cards = Vec::new();
    for i in 0..7_i64 {
        let card = insert_named(&t, &format!("+7912000070{i}"), "Kim", None, "k@example.com", 100 - i).await;
        // Balances with ties, so the serial decides between equal values.
        let mut next = card.bumped(Utc::now() - Duration::minutes(50 - i));
        next.balance = (i % 3) * 10;
        next.last_entry.as_mut().unwrap().at = Utc::now() - Duration::minutes((i * 5) % 7);
        assert!(t.store.update_card(&next, card.version).await.unwrap());
        cards.push(t.store.find_card(CardLookup::Serial(&card.serial)).await.unwrap().unwrap());
    }
    for sort in [CustomerSort::Registered, CustomerSort::Balance, CustomerSort::Activity] {
        for descending in [false, true] {
            let mut expected = cards.clone();
            expected.sort_by(|a, b| (sort.key(a), a.serial.as_str()).cmp(&(sort.key(b), b.serial.as_str())));
            if descending {
                expected.reverse();
            }
            let mut seen = Vec::new();
            let mut after: Option<CustomerCursor> = None;
            loop {
                let query =
                    CustomerListQuery { program_id: "default", sort, descending, after: after.clone(), limit: 3 };
                let page = t.store.list_cards(&query).await.unwrap();
                assert!(page.len() <= 3);
                let Some(last) = page.last() else { break };
                after = Some(CustomerCursor::after(last, sort));
                let decoded = CustomerCursor::decode(&after.as_ref().unwrap().encode());
                assert_eq!(decoded, after, "a cursor survives a link");
                seen.extend(page.iter().map(|c| c.serial.to_string()));
            }
            let expected: Vec<String> = expected.iter().map(|c| c.serial.to_string()).collect();
            assert_eq!(seen, expected, "{sort:?} descending={descending}");
        }
    }
    let other =
        CustomerListQuery { program_id: "other", sort: CustomerSort::Balance, descending: true, after: None, limit: 3 };
    assert!(t.store.list_cards(&other).await.unwrap().is_empty());
}

async fn devices_of_a_card_are_counted(kind: StoreKind) {
    let t = test_store(kind).await;
    let card = insert_named(&t, "+79120000801", "Kim", None, "k@example.com", 0).await;
    assert_eq!(t.store.count_card_devices(card.serial.as_str()).await.unwrap(), 0);
    for device in ["device-one-0001", "device-two-0002"] {
        let registration = loy::domain::Registration {
            device_library_id: loy::domain::DeviceLibraryId::parse(device).unwrap(),
            pass_type_id: loy::domain::PassTypeId::parse("pass.com.example.loy").unwrap(),
            serial: card.serial.clone(),
            push_token: loy::domain::PushToken::parse(&"ab".repeat(32)).unwrap(),
            pushed_version: card.version,
            created_at: Utc::now(),
            updated_at: Utc::now(),
        };
        t.store.register_device(&registration, 10).await.unwrap();
    }
    assert_eq!(t.store.count_card_devices(card.serial.as_str()).await.unwrap(), 2);
}

async fn a_deleted_customer_keeps_card_and_ledger_without_personal_data_and_frees_the_phone(kind: StoreKind) {
    let t = test_store(kind).await;
    let card = insert_named(&t, "+79120000901", "Анна", Some("Иванова"), "anna@example.com", 0).await;
    let entries_before = t.store.card_entries(&card.serial, None, 100).await.unwrap();

    let (before, after) = loy::customers::delete_customer(t.store.as_ref(), &card.serial, Utc::now())
        .await
        .unwrap()
        .expect("the card exists");

    assert_eq!(before, card);
    assert!(after.holder.is_none());
    let stored = t.store.find_card(CardLookup::Serial(&card.serial)).await.unwrap().unwrap();
    assert_eq!(stored, after);
    assert_eq!(stored.status, CardStatus::Deleted);
    assert!(stored.holder.is_none(), "no personal data is read back");
    assert_eq!(stored.balance, card.balance, "the amounts stay");
    assert_eq!(stored.version, card.version + 1, "Wallet is owed the voided pass");
    assert!(stored.needs_push());
    assert_eq!(t.store.card_entries(&card.serial, None, 100).await.unwrap(), entries_before, "the ledger stays");

    let phone = Phone::parse("+79120000901", loy::domain::phone::PhoneRegion::RU).unwrap();
    assert!(t.store.find_card(CardLookup::Phone { program_id: "default", phone: &phone }).await.unwrap().is_none());
    assert!(t.store.cards_by_name_prefix("default", "анна", 10).await.unwrap().is_empty());
    assert!(
        t.store.cards_by_email("default", &Email::parse("anna@example.com").unwrap(), 10).await.unwrap().is_empty()
    );
    let again = insert_named(&t, "+79120000901", "Анна", Some("Иванова"), "anna@example.com", 0).await;
    assert_ne!(again.serial, card.serial, "the phone is free for a new registration");

    let (_, twice) =
        loy::customers::delete_customer(t.store.as_ref(), &card.serial, Utc::now()).await.unwrap().unwrap();
    assert_eq!(twice, stored, "deleting again changes nothing");
}
