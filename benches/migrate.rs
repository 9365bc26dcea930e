//! `loy migrate --to-mongodb` on a large embedded store: seeds N cards with a few ledger
//! entries each straight through the embedded store, then copies and verifies it into a fresh
//! MongoDB database, timing both phases.
//!
//!     LOY_BENCH_MONGODB_URI='mongodb://127.0.0.1:27017/?directConnection=true' cargo bench --bench migrate
//!
//! Knobs: LOY_BENCH_CARDS (default 100000), LOY_BENCH_ENTRIES (earns per card besides the
//! welcome entry, default 3), LOY_BENCH_KEEP=1 keeps the target database (dropped otherwise).

use std::sync::Arc;
use std::time::Instant;

use futures_util::StreamExt;
use loy::domain::{Card, Customer, EntryKind, EntrySource, LedgerEntry, Locale, PersonName, Phone, PhoneRegion};
use loy::store::embedded::EmbeddedStore;
use loy::store::{CardStore, Faults, LedgerStore, LedgerWrite};

#[allow(dead_code)] // the helpers of the other benchmarks
mod support;

use support::env_or;

/// `card` after one earn of `points`, as a write to commit.
fn earn(card: &Card, points: i64, now: chrono::DateTime<chrono::Utc>) -> LedgerWrite {
    let entry = LedgerEntry {
        id: LedgerEntry::new_id(),
        serial: card.serial.clone(),
        program_id: card.program_id.clone(),
        seq: card.version + 1,
        kind: EntryKind::Earn,
        points,
        rewards: 0,
        rewards_after: 0,
        purchase_amount: Some(points * 100),
        balance_after: card.balance + points,
        lifetime_after: card.lifetime_earned + points,
        tier_after: card.tier.clone(),
        order_id: Some(format!("order-{}", card.version)),
        description: None,
        source: EntrySource::Pos,
        actor: Some("bench".into()),
        idempotency_key: None,
        reverses: None,
        created_at: now,
    };
    let mut next = card.bumped(now);
    next.push_pending_since = None;
    next.balance += points;
    next.lifetime_earned += points;
    LedgerWrite { card: next, expected_version: card.version, entries: vec![entry], completes: None }
}

#[tokio::main]
async fn main() {
    let Ok(uri) = std::env::var("LOY_BENCH_MONGODB_URI") else {
        eprintln!("set LOY_BENCH_MONGODB_URI to a MongoDB (or MongoDB-wire) server to run this benchmark");
        return;
    };
    let cards = env_or("LOY_BENCH_CARDS", 100_000);
    let entries = env_or("LOY_BENCH_ENTRIES", 3);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("loy.sqlite3");
    let program =
        loy::domain::Program::new("default", "Bench", loy::domain::Currency::parse("RUB").unwrap(), chrono::Utc::now());
    let started = Instant::now();
    {
        let store = Arc::new(EmbeddedStore::open(&path, false, Arc::new(Faults::default())).unwrap());
        let program = store.ensure_program(&program).await.unwrap();
        let now = loy::domain::card::stored_precision(chrono::Utc::now());
        futures_util::stream::iter(0..cards)
            .map(|i| {
                let (store, program) = (store.clone(), program.clone());
                async move {
                    let holder = Customer {
                        first_name: PersonName::parse("Bench").unwrap(),
                        last_name: Some(PersonName::parse(&format!("Card{i}")).unwrap()),
                        phone: Phone::parse(&format!("+7900{i:07}"), PhoneRegion::RU).unwrap(),
                        email: None,
                        birthday: None,
                        locale: Locale::Ru,
                        consent_at: now,
                    };
                    let (mut card, welcome) = Card::enroll(&program, holder, None, now);
                    store.insert_card(&card, &welcome).await.unwrap();
                    for n in 0..entries {
                        let write = earn(&card, 10 + n as i64, now);
                        assert!(store.commit_ledger(&write).await.unwrap());
                        card = write.card;
                    }
                }
            })
            .buffer_unordered(256)
            .collect::<Vec<()>>()
            .await;
    }
    let seeded = started.elapsed();
    let size = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0)
        + std::fs::metadata(dir.path().join("loy.sqlite3-wal")).map(|m| m.len()).unwrap_or(0);
    println!(
        "seeded {cards} cards x {} entries in {:.1} s ({} MB on disk)",
        entries + 1,
        seeded.as_secs_f64(),
        size / 1_000_000
    );

    let database = format!("loy_bench_migrate_{}", std::process::id());
    let progress = |line: &str| eprintln!("  {line}");
    let started = Instant::now();
    let report = loy::store::migrate::to_mongodb(&path, &uri, &database, chrono::Utc::now(), &progress).await.unwrap();
    let total = started.elapsed();
    for t in &report.tables {
        if t.source > 0 {
            println!("  {:<14} {:>9} -> {:>9}", t.table, t.source, t.target);
        }
    }
    println!(
        "migrated {} cards and {} entries: copy {:.1} s, verify {:.1} s, total {:.1} s; verified: {}",
        report.ledger.cards,
        report.ledger.entries,
        report.copy_time.as_secs_f64(),
        report.verify_time.as_secs_f64(),
        total.as_secs_f64(),
        report.is_verified()
    );
    assert!(report.is_verified(), "{:?}", report.ledger.mismatches.iter().take(5).collect::<Vec<_>>());
    if std::env::var("LOY_BENCH_KEEP").is_err() {
        let client = mongodb::Client::with_uri_str(&uri).await.unwrap();
        client.database(&database).drop().await.unwrap();
    }
}
