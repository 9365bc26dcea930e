//! The dashboard's aggregates in the storage interface (`StatsStore`), on every backend: a span of
//! a program's ledger adds up by entry kind and stops at its ends and at the program, day rows
//! round-trip and are replaced, the present's counts come from indexed counts, and the snapshot
//! round-trips.

use chrono::{DateTime, Duration, NaiveDate, TimeZone, Utc};
use loy::domain::{Card, EntrySource, LedgerEntry, Program, SerialNumber, TimeZone as Zone};
use loy::ledger::{Actor, Command, WriteContext};
use loy::store::{DayStats, LedgerTotals, StatsSnapshot, Store, WalletTotals};

use crate::helpers::StoreKind;
use crate::on_both_stores;
use crate::store_conformance::{customer, program, test_store};

on_both_stores!(
    a_span_of_the_ledger_adds_up_by_kind_within_its_ends_and_program,
    day_rows_round_trip_by_range_and_are_replaced_whole,
    active_and_tier_counts_and_the_snapshot_come_back_as_stored,
);

fn at(day: u32, hour: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 2, day, hour, 0, 0).unwrap()
}

async fn enroll(store: &dyn Store, program: &Program, phone: &str, when: DateTime<Utc>) -> Card {
    let (card, welcome) = Card::enroll(program, customer(phone), None, when);
    store.insert_card(&card, &welcome).await.unwrap();
    card
}

async fn write(store: &dyn Store, program: &Program, serial: &SerialNumber, command: Command, when: DateTime<Utc>) {
    let ctx = WriteContext {
        entry_id: LedgerEntry::new_id(),
        actor: Actor { source: EntrySource::Pos, id: None },
        idempotency: None,
        now: when,
        notify: None,
    };
    loy::ledger::apply(store, program, serial, &command, &ctx, None).await.unwrap();
}

fn earn(amount: i64) -> Command {
    Command::Earn { purchase_amount: amount, order_id: None, description: None }
}

async fn a_span_of_the_ledger_adds_up_by_kind_within_its_ends_and_program(kind: StoreKind) {
    let t = test_store(kind).await;
    let store = t.store.as_ref();
    let coffee = program();
    let other = Program::new("other", "Other", coffee.currency.clone(), at(1, 0));
    assert_eq!(store.first_entry_at("default").await.unwrap(), None);

    let anna = enroll(store, &coffee, "+79990000001", at(10, 9)).await;
    write(store, &coffee, &anna.serial, earn(100_000), at(10, 12)).await;
    let redeem = Command::Redeem { points: 100, purchase_amount: Some(40_000), order_id: None, description: None };
    write(store, &coffee, &anna.serial, redeem, at(10, 23)).await;
    let adjust = Command::Adjust { points: -5, reason: "correction".into() };
    write(store, &coffee, &anna.serial, adjust, at(10, 23)).await;
    // Outside the span (the next day, the day before) and another program: not counted.
    write(store, &coffee, &anna.serial, earn(70_000), at(11, 0)).await;
    enroll(store, &coffee, "+79990000002", at(9, 23)).await;
    enroll(store, &other, "+79990000003", at(10, 10)).await;

    let totals = store.ledger_totals("default", at(10, 0), at(11, 0)).await.unwrap();
    let entries = store.card_entries(&anna.serial, None, usize::MAX).await.unwrap();
    let earned = entries.iter().find(|e| e.created_at == at(10, 12)).unwrap().points;
    assert!(earned > 0);
    let expected = LedgerTotals {
        registrations: 1,
        issued: coffee.rules.welcome_bonus + earned,
        redeemed: 100,
        purchases: 2,
        revenue: 140_000,
        ..LedgerTotals::default()
    };
    assert_eq!(totals, expected);
    let next_day = store.ledger_totals("default", at(11, 0), at(12, 0)).await.unwrap();
    assert_eq!((next_day.registrations, next_day.purchases, next_day.revenue), (0, 1, 70_000));
    assert_eq!(store.ledger_totals("other", at(10, 0), at(11, 0)).await.unwrap().registrations, 1);
    assert_eq!(store.first_entry_at("default").await.unwrap(), Some(at(9, 23)));
}

async fn day_rows_round_trip_by_range_and_are_replaced_whole(kind: StoreKind) {
    let t = test_store(kind).await;
    let store = t.store.as_ref();
    let day = |d: u32| NaiveDate::from_ymd_opt(2026, 2, d).unwrap();
    let totals = LedgerTotals {
        registrations: 3,
        issued: 450,
        redeemed: 120,
        rewards_issued: 2,
        rewards_redeemed: 1,
        purchases: 7,
        revenue: 1_234_500,
    };
    let wallets = WalletTotals { apple_installed: 5, apple_removed: 1, google_installed: 3, google_removed: 0 };
    for d in [1, 2, 3, 5] {
        let row = DayStats { day: day(d), totals, wallets, computed_at: at(d, 8), time_zone: Zone::UTC };
        store.put_day_stats("default", &row).await.unwrap();
    }
    let other = DayStats { day: day(2), totals, wallets, computed_at: at(2, 8), time_zone: Zone::UTC };
    store.put_day_stats("other", &other).await.unwrap();
    let replaced = DayStats {
        day: day(2),
        totals: LedgerTotals { registrations: 9, ..totals },
        wallets: WalletTotals { google_removed: 2, ..wallets },
        computed_at: at(4, 1),
        time_zone: Zone::parse("Asia/Vladivostok").unwrap(),
    };
    store.put_day_stats("default", &replaced).await.unwrap();

    let rows = store.day_stats("default", day(2), day(5)).await.unwrap();
    assert_eq!(rows.iter().map(|r| r.day).collect::<Vec<_>>(), [day(2), day(3), day(5)], "oldest first, both ends in");
    assert_eq!(rows[0], replaced, "with the zone it was computed in");
    assert_eq!(rows[1], DayStats { day: day(3), totals, wallets, computed_at: at(3, 8), time_zone: Zone::UTC });
    assert!(store.day_stats("default", day(6), day(9)).await.unwrap().is_empty());
}

async fn active_and_tier_counts_and_the_snapshot_come_back_as_stored(kind: StoreKind) {
    let t = test_store(kind).await;
    let store = t.store.as_ref();
    let coffee = program();
    let now = loy::domain::card::stored_precision(Utc::now());
    let recent = enroll(store, &coffee, "+79990000011", now - Duration::days(40)).await;
    write(store, &coffee, &recent.serial, earn(2_000_000), now - Duration::days(2)).await;
    enroll(store, &coffee, "+79990000012", now - Duration::days(60)).await;
    enroll(store, &coffee, "+79990000013", now - Duration::days(120)).await;
    let gone = enroll(store, &coffee, "+79990000014", now - Duration::days(5)).await;
    assert!(store.update_card(&gone.deleted(now - Duration::days(5)), gone.version).await.unwrap());

    assert_eq!(store.count_active_cards("default", now - Duration::days(30)).await.unwrap(), 2);
    assert_eq!(store.count_active_cards("default", now - Duration::days(90)).await.unwrap(), 3);
    assert_eq!(store.count_active_cards("other", now - Duration::days(90)).await.unwrap(), 0);
    let promoted = store.find_card(loy::store::CardLookup::Serial(&recent.serial)).await.unwrap().unwrap().tier;
    assert_ne!(promoted, "bronze", "a large purchase moves the card up");
    assert_eq!(store.count_tier_cards("default", "bronze").await.unwrap(), 2, "the deleted card is not counted");
    assert_eq!(store.count_tier_cards("default", &promoted).await.unwrap(), 1);

    assert_eq!(store.stats_snapshot("default").await.unwrap(), None);
    let snapshot = StatsSnapshot {
        program_id: "default".into(),
        computed_at: now,
        active_30: 2,
        active_90: 3,
        tiers: vec![("bronze".into(), 2), (promoted, 1)],
    };
    store.put_stats_snapshot(&snapshot).await.unwrap();
    store.put_stats_snapshot(&StatsSnapshot { active_30: 9, ..snapshot.clone() }).await.unwrap();
    assert_eq!(store.stats_snapshot("default").await.unwrap(), Some(StatsSnapshot { active_30: 9, ..snapshot }));
}
