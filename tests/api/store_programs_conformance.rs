//! Programs in the storage interface (`ProgramStore`), on every backend: programs are listed,
//! created once and updated only from the version read; designs and images round-trip; a
//! publish's fan-out moves every live card of one program and only those, and its progress counts
//! what is still owed.

use chrono::{Duration, Utc};
use loy::domain::{Card, Currency, DesignVersion, ImageSlot, LocalizedText, Program, SerialNumber};
use loy::store::{PushProgress, StoreError};

use crate::helpers::StoreKind;
use crate::on_both_stores;
use crate::store_conformance::{customer, program, test_store};

on_both_stores!(
    programs_are_created_once_listed_and_updated_only_from_the_version_read,
    designs_and_images_round_trip_and_versions_list_newest_first,
    bumping_a_program_moves_its_live_cards_only_and_marks_their_push_owed,
);

fn now() -> chrono::DateTime<Utc> {
    loy::domain::card::stored_precision(Utc::now())
}

async fn programs_are_created_once_listed_and_updated_only_from_the_version_read(kind: StoreKind) {
    let t = test_store(kind).await;
    let mut bakery = Program::new("bakery", "Bakery", Currency::parse("EUR").unwrap(), now());
    bakery.design.terms = LocalizedText::new("Условия", "Terms");
    bakery.design.images.insert(ImageSlot::Logo, [("logo.png".to_owned(), "ab12".to_owned())].into());
    t.store.insert_program(&bakery).await.unwrap();
    t.store.insert_program(&program()).await.unwrap();
    let again = t.store.insert_program(&bakery).await.unwrap_err();
    assert!(matches!(again, StoreError::Duplicate(_)), "{again:?}");

    let listed = t.store.programs().await.unwrap();
    assert_eq!(listed.iter().map(|p| p.id.as_str()).collect::<Vec<_>>(), ["bakery", "default"]);
    assert_eq!(listed[0], bakery, "every field round-trips, images by slot included");

    let mut renamed = bakery.clone();
    renamed.name = "Bakery & Co".into();
    renamed.version = bakery.version + 1;
    assert!(t.store.update_program(&renamed, bakery.version).await.unwrap());
    let mut stale = bakery.clone();
    stale.name = "Lost edit".into();
    stale.version = bakery.version + 1;
    assert!(!t.store.update_program(&stale, bakery.version).await.unwrap(), "a save from an old version fails");
    assert_eq!(t.store.program("bakery").await.unwrap().unwrap().name, "Bakery & Co");
}

async fn designs_and_images_round_trip_and_versions_list_newest_first(kind: StoreKind) {
    let t = test_store(kind).await;
    let png = vec![0x89, b'P', b'N', b'G', 0, 1, 2, 255];
    t.store.put_image("img1", &png).await.unwrap();
    t.store.put_image("img1", &png).await.unwrap();
    assert_eq!(t.store.image("img1").await.unwrap(), Some(png));
    assert_eq!(t.store.image("missing").await.unwrap(), None);

    let p = program();
    for revision in 1..=3 {
        let mut design = p.design.clone();
        design.revision = revision;
        design.background_color = format!("rgb({revision}, 0, 0)");
        let version = DesignVersion {
            program_id: p.id.clone(),
            revision,
            design,
            published_at: now() + Duration::seconds(revision),
            published_by: "owner@example.com".into(),
        };
        t.store.insert_design_version(&version).await.unwrap();
        t.store.insert_design_version(&version).await.unwrap();
    }
    let versions = t.store.design_versions("default", 2).await.unwrap();
    assert_eq!(versions.iter().map(|v| v.revision).collect::<Vec<_>>(), [3, 2]);
    let second = t.store.design_version("default", 2).await.unwrap().unwrap();
    assert_eq!(second.design.background_color, "rgb(2, 0, 0)");
    assert!(t.store.design_versions("other", 10).await.unwrap().is_empty());
}

async fn bumping_a_program_moves_its_live_cards_only_and_marks_their_push_owed(kind: StoreKind) {
    let t = test_store(kind).await;
    let (a, b) = (program(), Program::new("bakery", "Bakery", Currency::parse("RUB").unwrap(), now()));
    let t0 = now() - Duration::minutes(5);
    let mut ours = Vec::new();
    for i in 0..3 {
        let (card, first) = Card::enroll(&a, customer(&format!("+7912000010{i}")), None, t0);
        t.store.insert_card(&card, &first).await.unwrap();
        ours.push(card);
    }
    let (theirs, first) = Card::enroll(&b, customer("+79120000199"), None, t0);
    t.store.insert_card(&theirs, &first).await.unwrap();
    // A deleted card keeps its version: its pass is void already.
    let mut deleted = ours.pop().unwrap();
    let before = deleted.version;
    deleted.status = loy::domain::CardStatus::Deleted;
    deleted.version += 1;
    assert!(t.store.update_card(&deleted, before).await.unwrap());

    let at = now();
    assert_eq!(t.store.bump_program_cards("default", at).await.unwrap(), 2);

    for card in &ours {
        let stored = t.store.find_card(loy::store::CardLookup::Serial(&card.serial)).await.unwrap().unwrap();
        assert_eq!(stored.version, card.version + 1, "{}", card.serial);
        assert!(stored.modified_at > card.modified_at && stored.modified_at.timestamp() > at.timestamp() - 1);
        assert!(stored.push_pending_since.is_some());
    }
    let other = t.store.find_card(loy::store::CardLookup::Serial(&theirs.serial)).await.unwrap().unwrap();
    assert_eq!(other.version, theirs.version, "another program's card does not move");
    let gone = t.store.find_card(loy::store::CardLookup::Serial(&deleted.serial)).await.unwrap().unwrap();
    assert_eq!(gone.version, deleted.version);

    let mut owed: Vec<SerialNumber> = ours.iter().map(|c| c.serial.clone()).collect();
    owed.sort_by(|x, y| x.as_str().cmp(y.as_str()));
    let first_page = t.store.program_cards_owed("default", None, 1).await.unwrap();
    let rest = t.store.program_cards_owed("default", first_page.last(), 10).await.unwrap();
    assert_eq!([first_page, rest].concat(), owed, "paged by serial");
    assert_eq!(
        t.store.program_push_progress("default").await.unwrap(),
        PushProgress { cards: 2, pending: 2, failed: 0 }
    );
}
