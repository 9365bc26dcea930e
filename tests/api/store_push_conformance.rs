//! The push bookkeeping of the storage interface (`PushStore`), on every backend: which cards
//! and devices are owed a push, what reached Google, and dead letters.

use chrono::{Duration, TimeZone, Utc};
use loy::domain::{Card, DeviceLibraryId, PassTypeId, PushToken, Registration, SerialNumber};
use loy::store::{CardLookup, DeadLetter, Owed};

use crate::helpers::StoreKind;
use crate::on_both_stores;
use crate::store_conformance::{TestStore, customer, program, test_store};

on_both_stores!(
    cards_owed_a_push_are_listed_oldest_first_until_their_version_is_pushed,
    devices_record_the_version_they_were_pushed_and_can_be_made_owed_again,
    what_reached_google_is_recorded_with_the_notifications_of_the_last_day,
    dead_letters_are_kept_newest_first_and_taken_once,
    a_card_made_owed_again_is_not_marked_pushed_by_a_job_that_read_it_before,
    a_batch_learns_where_each_card_is_reached_in_one_read,
    news_put_on_cards_together_is_written_only_at_each_expected_version,
);

async fn insert(t: &TestStore, phone: &str) -> Card {
    let (card, welcome) = Card::enroll(&program(), customer(phone), None, Utc::now());
    t.store.insert_card(&card, &welcome).await.unwrap();
    card
}

async fn stored(t: &TestStore, card: &Card) -> Card {
    t.store.find_card(CardLookup::Serial(&card.serial)).await.unwrap().unwrap()
}

/// Moves a card to its next version at `now`, as any visible change does.
async fn change(t: &TestStore, card: &Card, now: chrono::DateTime<Utc>) -> Card {
    loy::store::bump_version(t.store.as_ref(), &card.serial, now).await.unwrap().unwrap()
}

async fn cards_owed_a_push_are_listed_oldest_first_until_their_version_is_pushed(kind: StoreKind) {
    let t = test_store(kind).await;
    let t0 = loy::domain::card::stored_precision(Utc::now());
    let a = insert(&t, "+79120000701").await;
    let b = insert(&t, "+79120000702").await;
    let untouched = insert(&t, "+79120000703").await;
    assert!(t.store.cards_pending_push(t0 + Duration::hours(1), 10).await.unwrap().is_empty(), "new cards owe nothing");

    let b1 = change(&t, &b, t0).await;
    let a1 = change(&t, &a, t0 + Duration::seconds(5)).await;

    let owed = t.store.cards_pending_push(t0 + Duration::seconds(5), 10).await.unwrap();
    assert_eq!(owed, vec![b.serial.clone(), a.serial.clone()], "oldest first");
    assert_eq!(t.store.cards_pending_push(t0 + Duration::seconds(1), 10).await.unwrap(), vec![b.serial.clone()]);
    assert_eq!(t.store.cards_pending_push(t0 + Duration::seconds(5), 1).await.unwrap().len(), 1, "the limit holds");
    assert!(!owed.contains(&untouched.serial));

    // A push of an older version leaves the card owed; the current version clears it.
    let b2 = change(&t, &b1, t0 + Duration::seconds(6)).await;
    assert!(t.store.mark_card_pushed(&b.serial, b1.version, 0).await.unwrap());
    let after = stored(&t, &b).await;
    assert_eq!(after.pushed_version, b1.version);
    assert!(after.push_pending_since.is_some(), "version {} is still owed", b2.version);
    assert!(t.store.mark_card_pushed(&b.serial, b2.version, 0).await.unwrap());
    let after = stored(&t, &b).await;
    assert_eq!((after.pushed_version, after.push_pending_since), (b2.version, None));
    // Recording an older push later never moves the pushed version back.
    assert!(t.store.mark_card_pushed(&b.serial, b1.version, 0).await.unwrap());
    assert_eq!(stored(&t, &b).await.pushed_version, b2.version);

    assert!(t.store.mark_card_pushed(&a.serial, a1.version, 0).await.unwrap());
    assert!(t.store.cards_pending_push(t0 + Duration::hours(1), 10).await.unwrap().is_empty());
}

fn registration(device: &str, card: &Card) -> Registration {
    let now = loy::domain::card::stored_precision(Utc::now());
    Registration {
        device_library_id: DeviceLibraryId::parse(device).unwrap(),
        pass_type_id: PassTypeId::parse("pass.test.loy").unwrap(),
        serial: card.serial.clone(),
        push_token: PushToken::parse(&format!("{device}-token")).unwrap(),
        pushed_version: card.version,
        created_at: now,
        updated_at: now,
    }
}

async fn pushed_versions(t: &TestStore, card: &Card) -> Vec<(String, i64)> {
    let mut v: Vec<(String, i64)> = t
        .store
        .card_registrations(&card.serial)
        .await
        .unwrap()
        .into_iter()
        .map(|r| (r.device_library_id.as_str().to_owned(), r.pushed_version))
        .collect();
    v.sort();
    v
}

async fn devices_record_the_version_they_were_pushed_and_can_be_made_owed_again(kind: StoreKind) {
    let t = test_store(kind).await;
    let card = insert(&t, "+79120000711").await;
    for device in ["phone", "watch"] {
        t.store.register_device(&registration(device, &card), 10).await.unwrap();
    }
    let next = change(&t, &card, Utc::now()).await;
    let phone = DeviceLibraryId::parse("phone").unwrap();

    t.store.mark_devices_pushed(&card.serial, next.version, std::slice::from_ref(&phone)).await.unwrap();
    assert_eq!(pushed_versions(&t, &card).await, [("phone".into(), next.version), ("watch".into(), card.version)]);
    t.store.mark_devices_pushed(&card.serial, card.version, std::slice::from_ref(&phone)).await.unwrap();
    assert_eq!(pushed_versions(&t, &card).await[0].1, next.version, "never moves back");
    t.store.mark_devices_pushed(&card.serial, next.version, &[]).await.unwrap();
    assert!(t.store.mark_card_pushed(&card.serial, next.version, 0).await.unwrap());

    // An operator's "push again" for one device, then for all.
    let now = Utc::now();
    assert!(t.store.mark_push_owed(&card.serial, Owed::Device(&phone), now).await.unwrap());
    assert_eq!(pushed_versions(&t, &card).await, [("phone".into(), 0), ("watch".into(), card.version)]);
    let owed = stored(&t, &card).await;
    assert!(owed.pushed_version < owed.version && owed.push_pending_since.is_some(), "the card is owed again");
    assert!(t.store.mark_push_owed(&card.serial, Owed::AllDevices, now).await.unwrap());
    assert!(pushed_versions(&t, &card).await.iter().all(|(_, v)| *v == 0));
    // The card alone (its Google object): devices keep what they had.
    t.store.mark_devices_pushed(&card.serial, next.version, std::slice::from_ref(&phone)).await.unwrap();
    assert!(t.store.mark_push_owed(&card.serial, Owed::CardOnly, now).await.unwrap());
    assert_eq!(pushed_versions(&t, &card).await[0].1, next.version);
    assert!(!t.store.mark_push_owed(&SerialNumber::generate(), Owed::AllDevices, now).await.unwrap(), "no such card");
}

async fn what_reached_google_is_recorded_with_the_notifications_of_the_last_day(kind: StoreKind) {
    let t = test_store(kind).await;
    let card = insert(&t, "+79120000721").await;
    assert_eq!(t.store.google_sync(&card.serial).await.unwrap(), Default::default(), "nothing yet");

    let t0 = Utc.timestamp_millis_opt(1_790_000_000_000).unwrap();
    t.store.record_google_sync(&card.serial, 2, 150, Some(t0)).await.unwrap();
    t.store.record_google_sync(&card.serial, 3, 180, None).await.unwrap();
    let sync = t.store.google_sync(&card.serial).await.unwrap();
    assert_eq!((sync.version, sync.balance, sync.notified_at.clone()), (3, Some(180), vec![t0]));

    // An older version recorded late changes neither version nor balance.
    t.store.record_google_sync(&card.serial, 2, 150, None).await.unwrap();
    let sync = t.store.google_sync(&card.serial).await.unwrap();
    assert_eq!((sync.version, sync.balance), (3, Some(180)));

    // Notifications older than Google's 24-hour budget are forgotten.
    let t1 = t0 + Duration::hours(26);
    t.store.record_google_sync(&card.serial, 4, 200, Some(t1)).await.unwrap();
    assert_eq!(t.store.google_sync(&card.serial).await.unwrap().notified_at, vec![t1]);

    t.store.reset_google_sync(&card.serial).await.unwrap();
    let sync = t.store.google_sync(&card.serial).await.unwrap();
    assert_eq!((sync.version, sync.balance), (0, None), "the next push updates the object again");
    assert_eq!(sync.notified_at, vec![t1], "the budget survives a replay");
}

async fn dead_letters_are_kept_newest_first_and_taken_once(kind: StoreKind) {
    let t = test_store(kind).await;
    let card = insert(&t, "+79120000731").await;
    let t0 = Utc.timestamp_millis_opt(1_790_000_000_000).unwrap();
    let letter = |id: &str, at: chrono::DateTime<Utc>, target: &str| DeadLetter {
        id: id.to_owned(),
        serial: card.serial.clone(),
        version: 7,
        target: target.to_owned(),
        reason: "TooManyRequests (429)".to_owned(),
        attempts: 12,
        first_failure_at: t0,
        created_at: at,
    };
    let older = letter("dl_older", t0 + Duration::minutes(1), "apns:phone");
    let newer = letter("dl_newer", t0 + Duration::minutes(2), "google");
    t.store.insert_dead_letter(&older).await.unwrap();
    t.store.insert_dead_letter(&newer).await.unwrap();

    assert_eq!(t.store.dead_letters(10).await.unwrap(), vec![newer.clone(), older.clone()]);
    assert_eq!(t.store.dead_letters(1).await.unwrap(), vec![newer.clone()]);
    assert_eq!(t.store.take_dead_letter("dl_older").await.unwrap(), Some(older));
    assert_eq!(t.store.take_dead_letter("dl_older").await.unwrap(), None, "taken once");
    assert_eq!(t.store.dead_letters(10).await.unwrap(), vec![newer]);
}

async fn a_card_made_owed_again_is_not_marked_pushed_by_a_job_that_read_it_before(kind: StoreKind) {
    let t = test_store(kind).await;
    let card = insert(&t, "+79120000741").await;
    assert_eq!(t.store.push_generation(&card.serial).await.unwrap(), 0, "never made owed again");
    assert_eq!(t.store.push_generation(&SerialNumber::generate()).await.unwrap(), 0, "no such card");
    let next = change(&t, &card, Utc::now()).await;

    // A job reads the generation, then a replay makes the card owed again before the job's mark.
    let read = t.store.push_generation(&card.serial).await.unwrap();
    assert!(t.store.mark_push_owed(&card.serial, Owed::CardOnly, Utc::now()).await.unwrap());
    let replayed = t.store.push_generation(&card.serial).await.unwrap();
    assert_eq!(replayed, read + 1);
    assert!(!t.store.mark_card_pushed(&card.serial, next.version, read).await.unwrap(), "the job's mark is refused");
    let after = stored(&t, &card).await;
    assert!(after.pushed_version < after.version && after.push_pending_since.is_some(), "still owed");

    // The job that runs after the replay marks it pushed.
    assert!(t.store.mark_card_pushed(&card.serial, next.version, replayed).await.unwrap());
    let after = stored(&t, &card).await;
    assert_eq!((after.pushed_version, after.push_pending_since), (next.version, None));
    // A card that moved on meanwhile is marked as far as the job got, and stays owed.
    let newer = change(&t, &next, Utc::now()).await;
    assert!(t.store.mark_card_pushed(&card.serial, next.version, replayed).await.unwrap());
    let after = stored(&t, &card).await;
    assert_eq!(after.pushed_version, next.version);
    assert!(after.push_pending_since.is_some(), "version {} is still owed", newer.version);
    assert!(!t.store.mark_card_pushed(&SerialNumber::generate(), 3, 0).await.unwrap(), "no such card");
}

/// What a message's fan-out reads for a batch of cards: devices and Google objects at once.
async fn a_batch_learns_where_each_card_is_reached_in_one_read(kind: StoreKind) {
    use loy::store::Reach;
    let t = test_store(kind).await;
    let both = insert(&t, "+79120000741").await;
    let apple = insert(&t, "+79120000742").await;
    let google = insert(&t, "+79120000743").await;
    let neither = insert(&t, "+79120000744").await;
    for device in ["phone", "watch"] {
        t.store.register_device(&registration(device, &both), 10).await.unwrap();
    }
    t.store.register_device(&registration("phone", &apple), 10).await.unwrap();
    t.store.record_google_sync(&both.serial, 1, 0, None).await.unwrap();
    t.store.record_google_sync(&google.serial, 2, 0, None).await.unwrap();
    // A card whose object was given up and is written again on its next push has none now.
    t.store.record_google_sync(&neither.serial, 1, 0, None).await.unwrap();
    t.store.reset_google_sync(&neither.serial).await.unwrap();
    // Saved in Google Wallet: the first card; the third was saved and deleted again.
    let change = |id: &str, card: &Card, change, minutes| loy::store::WalletEvent {
        id: id.into(),
        serial: card.serial.clone(),
        program_id: card.program_id.clone(),
        wallet: loy::store::Wallet::Google,
        change,
        at: Utc::now() + Duration::minutes(minutes),
        source: loy::store::WalletSource::Callback,
    };
    use loy::store::WalletChange::{Installed, Removed};
    for event in
        [change("g1", &both, Installed, 0), change("g2", &google, Installed, 0), change("g3", &google, Removed, 1)]
    {
        assert!(t.store.record_wallet_event(&event).await.unwrap());
    }

    let serials = [&both, &apple, &google, &neither].map(|c| c.serial.as_str());
    let reach = t.store.reach(&serials).await.unwrap();
    assert_eq!(reach.len(), 3, "a card with neither is left out: {reach:?}");
    assert_eq!(reach[both.serial.as_str()], Reach { devices: 2, google_object: true, google_saved: true });
    assert_eq!(reach[apple.serial.as_str()], Reach { devices: 1, google_object: false, google_saved: false });
    assert_eq!(reach[google.serial.as_str()], Reach { devices: 0, google_object: true, google_saved: false });
    assert!(t.store.reach(&[]).await.unwrap().is_empty());
}

/// The fan-out's one write of a batch: a card a concurrent write moved on is left as it is,
/// the others get their version bump and news, and nothing else of theirs is written.
async fn news_put_on_cards_together_is_written_only_at_each_expected_version(kind: StoreKind) {
    let t = test_store(kind).await;
    let now = Utc::now();
    let a = insert(&t, "+79120000751").await;
    let b = insert(&t, "+79120000752").await;
    let moved = change(&t, &b, now).await;
    let news = |card: &Card| {
        let mut next = card.bumped(now);
        next.news = Some(loy::domain::CardNews {
            message_id: "m1".into(),
            version: next.version,
            title: String::new(),
            body: "Double points this weekend".into(),
            link: None,
            google_object: true,
            at: now,
        });
        // Not a message's to write: stays as stored.
        next.balance += 100;
        next
    };
    let updates = [(news(&a), a.version), (news(&b), b.version)];
    assert_eq!(t.store.put_news(&updates).await.unwrap(), [true, false]);
    let given = stored(&t, &a).await;
    assert_eq!((given.version, &given.news, given.balance), (a.version + 1, &updates[0].0.news, a.balance));
    assert!(given.needs_push() && given.push_pending_since.is_some());
    assert_eq!(stored(&t, &b).await, moved, "the concurrent write stays");
    assert!(t.store.put_news(&[]).await.unwrap().is_empty());
}
