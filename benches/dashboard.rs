//! The console's dashboard on a large embedded store: seeds N cards with E ledger entries each,
//! spread over the last year, builds the daily aggregates as the background task does, then
//! times `GET /admin` (the whole page over HTTP: session, aggregates read, charts, template) for
//! 30 and 365 days, and the console's customer list and search on the same store (by phone, by
//! card number, by name, sorted by balance), printing the median and the slowest of several
//! requests. Each card is installed in one wallet at registration, one in ten removed later.
//!
//!     cargo bench --bench dashboard
//!     LOY_BENCH_CARDS=1000000 cargo bench --bench dashboard     # 10 000 000 entries, ~4 GB
//!
//! Knobs: LOY_BENCH_CARDS (default 100000), LOY_BENCH_ENTRIES (entries per card, the welcome
//! entry included; default 10), LOY_BENCH_RUNS (requests per period, default 21).

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use futures_util::StreamExt;
use loy::domain::{
    Card, Customer, EntryKind, EntrySource, LedgerEntry, Locale, PersonName, Phone, PhoneRegion, Program, Role,
    StaffAccount,
};
use loy::store::LedgerWrite;
use loy::store::wallet_events::{Wallet, WalletChange, WalletEvent, WalletSource};

#[allow(dead_code)] // the helpers of the other benchmarks
mod support;

use support::env_or;

/// `card` after purchases of the given amounts at the given times, at 5 % in points, its tier
/// following: one write of all the entries, as a card's whole history is seeded at once.
fn purchases(program: &Program, card: &Card, history: &[(DateTime<Utc>, i64)]) -> LedgerWrite {
    let mut next = card.clone();
    let mut entries = Vec::with_capacity(history.len());
    for &(at, amount) in history {
        let points = amount / 2_000;
        let lifetime = next.lifetime_earned + points;
        let tier = program.rules.tier_for(lifetime).id.clone();
        entries.push(LedgerEntry {
            id: LedgerEntry::new_id(),
            serial: card.serial.clone(),
            program_id: card.program_id.clone(),
            seq: next.version + 1,
            kind: EntryKind::Earn,
            points,
            rewards: 0,
            rewards_after: 0,
            purchase_amount: Some(amount),
            balance_after: next.balance + points,
            lifetime_after: lifetime,
            tier_after: tier.clone(),
            order_id: None,
            description: None,
            source: EntrySource::Pos,
            actor: Some("bench".into()),
            idempotency_key: None,
            reverses: None,
            created_at: at,
        });
        next = next.bumped(at);
        next.balance += points;
        next.lifetime_earned = lifetime;
        next.tier = tier;
    }
    next.push_pending_since = None;
    next.pushed_version = next.version;
    LedgerWrite { card: next, expected_version: card.version, entries, completes: None }
}

fn median_and_max(mut times: Vec<Duration>) -> (f64, f64) {
    times.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    (ms(times[times.len() / 2]), ms(*times.last().unwrap()))
}

/// Signs in as `email` through the login form; answers the session cookie.
async fn sign_in(client: &reqwest::Client, base: &str, email: &str, password: &str) -> String {
    let form = client.get(format!("{base}/admin/login")).send().await.unwrap();
    let cookie = form
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|l| Some(l.strip_prefix("loy_admin_login=")?.split(';').next()?.to_owned()))
        .unwrap();
    let body = form.text().await.unwrap();
    let at = body.find(r#"name="csrf" value=""#).unwrap() + 19;
    let token = &body[at..at + body[at..].find('"').unwrap()];
    let answer = client
        .post(format!("{base}/admin/login"))
        .header("cookie", format!("loy_admin_login={cookie}"))
        .form(&[("email", email), ("password", password), ("next", "/admin"), ("csrf", token)])
        .send()
        .await
        .unwrap();
    answer
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|l| Some(l.strip_prefix("loy_admin=")?.split(';').next()?.to_owned()))
        .expect("the login succeeds")
}

#[tokio::main]
async fn main() {
    let cards = env_or("LOY_BENCH_CARDS", 100_000);
    let entries = env_or("LOY_BENCH_ENTRIES", 10).max(1);
    let runs = env_or("LOY_BENCH_RUNS", 21).max(1);
    let dir = tempfile::tempdir().unwrap();
    let (base, _state, store) = support::start(dir.path(), Vec::new()).await;
    let program = store.program("default").await.unwrap().unwrap();
    let now = loy::domain::card::stored_precision(Utc::now());
    let year = chrono::Duration::days(365);

    let started = Instant::now();
    let done = std::sync::atomic::AtomicUsize::new(0);
    futures_util::stream::iter(0..cards)
        .map(|i| {
            let (store, program, done) = (store.clone(), program.clone(), &done);
            async move {
                let mut rng = fastrand::Rng::with_seed(i as u64);
                let joined = now - year + chrono::Duration::seconds(rng.i64(0..year.num_seconds()));
                let holder = Customer {
                    first_name: PersonName::parse("Bench").unwrap(),
                    last_name: None,
                    phone: Phone::parse(&format!("+7900{i:07}"), PhoneRegion::RU).unwrap(),
                    email: None,
                    birthday: None,
                    locale: Locale::Ru,
                    consent_at: joined,
                };
                // Fresh identifiers on a collision, as enrollment does: random referral codes
                // collide now and then at a million cards.
                let card = loop {
                    let (card, welcome) = Card::enroll(&program, holder.clone(), None, joined);
                    let card = Card { push_pending_since: None, pushed_version: card.version, ..card };
                    match store.insert_card(&card, &welcome).await {
                        Ok(()) => break card,
                        Err(loy::store::StoreError::Duplicate(key)) if key != loy::store::UniqueKey::Phone => continue,
                        Err(e) => panic!("seeding card {i}: {e}"),
                    }
                };
                let span = (now - joined).num_seconds().max(1);
                let mut times: Vec<i64> = (1..entries).map(|_| rng.i64(0..span)).collect();
                times.sort_unstable();
                let history: Vec<(DateTime<Utc>, i64)> = times
                    .into_iter()
                    .map(|offset| (joined + chrono::Duration::seconds(offset), rng.i64(10_000..500_000)))
                    .collect();
                if !history.is_empty() {
                    assert!(store.commit_ledger(&purchases(&program, &card, &history)).await.unwrap());
                }
                // Installed at registration (six in ten on Apple), one in ten removed later.
                let wallet = if rng.u8(0..10) < 6 { Wallet::Apple } else { Wallet::Google };
                let mut changes = vec![(WalletChange::Installed, joined)];
                if rng.u8(0..10) == 0 {
                    changes.push((WalletChange::Removed, joined + chrono::Duration::seconds(rng.i64(0..span))));
                }
                for (n, (change, at)) in changes.into_iter().enumerate() {
                    let event = WalletEvent {
                        id: format!("bench:{}:{n}", card.serial),
                        serial: card.serial.clone(),
                        program_id: card.program_id.clone(),
                        wallet,
                        change,
                        at,
                        source: WalletSource::PassKit,
                    };
                    assert!(store.record_wallet_event(&event).await.unwrap());
                }
                let seeded = done.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
                if seeded % 100_000 == 0 {
                    println!("  {seeded} cards after {:.0} s", started.elapsed().as_secs_f64());
                }
            }
        })
        .buffer_unordered(256)
        .collect::<Vec<()>>()
        .await;
    println!("seeded {cards} cards x {entries} entries in {:.1} s", started.elapsed().as_secs_f64());

    let started = Instant::now();
    let round = loy::stats::try_execute_task(store.as_ref(), Utc::now(), usize::MAX).await.unwrap();
    println!("aggregates: {} days computed in {:.1} s", round.days, started.elapsed().as_secs_f64());
    let started = Instant::now();
    let snapshot = loy::stats::compute_snapshot(store.as_ref(), &program, Utc::now()).await.unwrap();
    println!(
        "snapshot (active 30/90 days, tiers): {:.0} ms; active {} / {}, tiers {:?}",
        started.elapsed().as_secs_f64() * 1000.0,
        snapshot.active_30,
        snapshot.active_90,
        snapshot.tiers
    );

    let first_number = store.cards_after(None, 1).await.unwrap()[0].card_number.as_str().to_owned();
    let password = "bench password for the dashboard";
    let hash = loy::admin::password::hash(password.into()).await.unwrap();
    let owner = StaffAccount::new("owner@bench.example", Role::Owner, hash, Utc::now());
    store.insert_staff(&owner).await.unwrap();
    let client = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let session = sign_in(&client, &base, &owner.email, password).await;
    let pages = [
        ("/admin?days=30&lang=en".to_owned(), "chart-registrations"),
        ("/admin?days=365&lang=en".to_owned(), "chart-registrations"),
        // The staff console's customer search, on the same store.
        ("/admin/customers?lang=en".to_owned(), "Bench"),
        (format!("/admin/customers?lang=en&q=%2B7900{:07}", cards / 2), "Bench"),
        (format!("/admin/customers?lang=en&q={}", first_number), "Bench"),
        ("/admin/customers?lang=en&q=Bench".to_owned(), "Bench"),
        ("/admin/customers?lang=en&sort=balance&order=desc".to_owned(), "Bench"),
    ];
    for (path, expected) in pages {
        let mut times = Vec::with_capacity(runs);
        for _ in 0..runs {
            let started = Instant::now();
            let page = client
                .get(format!("{base}{path}"))
                .header("cookie", format!("loy_admin={session}"))
                .send()
                .await
                .unwrap();
            assert_eq!(page.status(), 200, "{path}");
            let body = page.text().await.unwrap();
            times.push(started.elapsed());
            assert!(body.contains(expected), "{path} shows {expected}");
        }
        let (median, max) = median_and_max(times);
        println!("GET {path}: median {median:.1} ms, slowest {max:.1} ms over {runs} requests");
    }
}
