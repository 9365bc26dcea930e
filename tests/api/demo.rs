//! `loy demo seed` on both stores: the customers and their history go through the real ledger
//! (the ledger check holds, points and stamps alike), registrations spread over the days asked,
//! nothing is owed a push, and a store holding cards is refused — also from the command line.

use chrono::{Duration, Utc};
use loy::demo::{SeedError, SeedOptions, seed};
use loy::domain::EntryKind;
use loy::store::Store;

use crate::helpers::{StoreKind, TestApp, spawn_app};
use crate::on_both_stores;

on_both_stores!(
    a_seeded_points_program_has_its_customers_history_and_a_sound_ledger,
    a_seeded_stamps_program_earns_rewards_by_its_rules,
    the_command_seeds_an_empty_store_and_refuses_one_with_cards,
);

async fn all_cards(store: &dyn Store) -> Vec<loy::domain::Card> {
    store.cards_after(None, usize::MAX).await.unwrap()
}

async fn sound(app: &TestApp, program: &loy::domain::Program) {
    let report = loy::ledger::check::check_all(app.store.as_ref(), program, Utc::now()).await.unwrap();
    assert!(report.mismatches.is_empty(), "{:?}", report.mismatches);
}

async fn a_seeded_points_program_has_its_customers_history_and_a_sound_ledger(kind: StoreKind) {
    let app = spawn_app(kind).await;
    let program = app.store.program("default").await.unwrap().unwrap();
    let now = Utc::now();
    let options = SeedOptions { cards: 60, days: 30, seed: 7 };
    let report = seed(app.store.as_ref(), &program, &options, now).await.unwrap();
    assert_eq!(report.cards, 60);
    assert!(report.transactions > 60, "most customers came back: {report:?}");
    let cards = all_cards(app.store.as_ref()).await;
    assert_eq!(cards.len(), 60);
    assert!(cards.iter().all(|c| c.created_at >= now - Duration::days(30) && c.created_at <= now));
    assert!(cards.iter().all(|c| !c.needs_push()), "demo cards are on no phone");
    assert!(cards.iter().any(|c| c.tier != "bronze"), "regulars reached a higher tier");
    let mut kinds = std::collections::HashSet::new();
    for card in &cards {
        for entry in app.store.card_entries(&card.serial, None, usize::MAX).await.unwrap() {
            assert!(entry.created_at <= now && entry.created_at >= card.created_at, "{entry:?}");
            kinds.insert(entry.kind);
        }
    }
    assert!(kinds.contains(&EntryKind::Earn) && kinds.contains(&EntryKind::Redeem), "{kinds:?}");
    sound(&app, &program).await;
    let again = seed(app.store.as_ref(), &program, &options, now).await;
    assert!(matches!(again, Err(SeedError::NotEmpty)), "{again:?}");
    assert_eq!(all_cards(app.store.as_ref()).await.len(), 60);
}

async fn a_seeded_stamps_program_earns_rewards_by_its_rules(kind: StoreKind) {
    let app = crate::stamps::app(kind).await;
    let program = crate::stamps::cafe(&app, |s| s.stamps_per_reward = 6).await;
    let options = SeedOptions { cards: 40, days: 90, seed: 3 };
    seed(app.store.as_ref(), &program, &options, Utc::now()).await.unwrap();
    let cards = all_cards(app.store.as_ref()).await;
    assert!(cards.iter().all(|c| c.program_id == "cafe" && c.balance < 6));
    let mut issued = 0;
    for card in &cards {
        let entries = app.store.card_entries(&card.serial, None, usize::MAX).await.unwrap();
        issued += entries.iter().filter(|e| e.kind == EntryKind::RewardIssued).count();
    }
    assert!(issued > 0, "regulars completed rounds");
    sound(&app, &program).await;
}

async fn the_command_seeds_an_empty_store_and_refuses_one_with_cards(kind: StoreKind) {
    let app = spawn_app(kind).await;
    let (code, stdout, stderr) = crate::cli::loy(&app, &["demo", "seed", "--cards", "5", "--days", "10"]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.starts_with("Seeded 5 demo customers of default with "), "{stdout}");
    assert_eq!(all_cards(app.store.as_ref()).await.len(), 5);
    let (code, _, stderr) = crate::cli::loy(&app, &["demo", "seed", "--cards", "5"]);
    assert_eq!(code, 1);
    assert!(stderr.contains("already holds cards"), "{stderr}");
    let (code, _, stderr) = crate::cli::loy(&app, &["demo", "seed", "--program", "nope"]);
    assert_eq!(code, 1);
    assert!(stderr.contains("there is no program nope"), "{stderr}");
}
