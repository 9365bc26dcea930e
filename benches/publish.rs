//! Publishing a design to every card of a program on the embedded store: seeds N cards, then
//! publishes a new design (keep the version, save the program, move every card's version and
//! mark its push owed) and hands the owed cards to the push queue, timing both phases and
//! reading the process's memory before and after. No pass is signed: passes are signed when a
//! phone fetches them.
//!
//!     cargo bench --bench publish
//!
//! Knobs: LOY_BENCH_CARDS (default 100000), LOY_BENCH_ROUNDS (publishes, default 3),
//! LOY_BENCH_REDIS_URL (queue into Redis instead of the in-process queue).

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use loy::domain::{Card, Customer, Locale, PersonName, Phone, PhoneRegion, Program};
use loy::push::queue::PushQueue;
use loy::push::queue::memory::MemoryQueue;
use loy::store::embedded::EmbeddedStore;
use loy::store::{DynStore, Faults};

#[allow(dead_code)] // the helpers of the other benchmarks
mod support;

use support::env_or;

/// A field of `/proc/self/status` in MB (Linux; 0 elsewhere).
fn memory_mb(field: &str) -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let kb: f64 = status
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0);
    kb / 1024.0
}

async fn seed(store: &DynStore, program: &Program, cards: usize) {
    let now = loy::domain::card::stored_precision(chrono::Utc::now());
    futures_util::stream::iter(0..cards)
        .map(|i| {
            let (store, program) = (store.clone(), program.clone());
            async move {
                let holder = Customer {
                    first_name: PersonName::parse("Bench").unwrap(),
                    last_name: None,
                    phone: Phone::parse(&format!("+7900{i:07}"), PhoneRegion::RU).unwrap(),
                    email: None,
                    birthday: None,
                    locale: Locale::Ru,
                    consent_at: now,
                };
                let (mut card, welcome) = Card::enroll(&program, holder, None, now);
                card.push_pending_since = None;
                store.insert_card(&card, &welcome).await.unwrap();
            }
        })
        .buffer_unordered(256)
        .collect::<Vec<()>>()
        .await;
}

fn median(mut xs: Vec<Duration>) -> Duration {
    xs.sort();
    xs[xs.len() / 2]
}

#[tokio::main]
async fn main() {
    let cards = env_or("LOY_BENCH_CARDS", 100_000);
    let rounds = env_or("LOY_BENCH_ROUNDS", 3).max(1);
    let dir = tempfile::tempdir().unwrap();
    let store: DynStore =
        Arc::new(EmbeddedStore::open(&dir.path().join("loy.sqlite3"), false, Arc::new(Faults::default())).unwrap());
    let queue: Arc<dyn PushQueue> = match std::env::var("LOY_BENCH_REDIS_URL") {
        Ok(url) => {
            let client = redis::Client::open(url.as_str()).unwrap();
            let conn = redis::aio::ConnectionManager::new(client).await.unwrap();
            Arc::new(loy::push::queue::redis::RedisQueue::new(conn, &format!("loybench{}:", std::process::id())))
        }
        Err(_) => Arc::new(MemoryQueue::new()),
    };
    let program = Program::new("default", "Bench", loy::domain::Currency::parse("RUB").unwrap(), chrono::Utc::now());
    store.insert_program(&program).await.unwrap();
    let started = Instant::now();
    seed(&store, &program, cards).await;
    println!("seeded {cards} cards in {:.1} s; queue: {}", started.elapsed().as_secs_f64(), queue.backend());

    let (mut bumps, mut queued_times, mut totals) = (Vec::new(), Vec::new(), Vec::new());
    let rss_before = memory_mb("VmRSS:");
    for round in 0..rounds {
        let program = store.program("default").await.unwrap().unwrap();
        let mut design = program.design.clone();
        design.background_color = format!("rgb({}, 20, 30)", 10 + round);
        let started = Instant::now();
        let published =
            loy::programs::publish::publish(&store, &program, design, "bench", chrono::Utc::now()).await.unwrap();
        let bumped = started.elapsed();
        let queued = loy::programs::publish::queue_owed(&store, &queue, "default").await.unwrap();
        let total = started.elapsed();
        assert_eq!(published.cards as usize, cards);
        assert_eq!(queued as usize, cards);
        let depth = queue.depth().await.unwrap();
        println!(
            "round {}: bumped {} cards in {:.2} s, queued in {:.2} s more, total {:.2} s (queue depth {:?})",
            round + 1,
            published.cards,
            bumped.as_secs_f64(),
            (total - bumped).as_secs_f64(),
            total.as_secs_f64(),
            depth
        );
        // The next round starts from a drained queue (the cards stay owed a push, as when a
        // second publish follows before the workers caught up).
        while let Some(lease) = queue.take(Duration::from_secs(60)).await.unwrap() {
            queue.ack(&lease).await.unwrap();
        }
        bumps.push(bumped);
        queued_times.push(total - bumped);
        totals.push(total);
    }
    println!(
        "publish to {cards} cards, median of {rounds}: bump {:.2} s, enqueue {:.2} s, total {:.2} s; \
         memory: RSS {:.0} MB before, {:.0} MB after, peak {:.0} MB",
        median(bumps).as_secs_f64(),
        median(queued_times).as_secs_f64(),
        median(totals).as_secs_f64(),
        rss_before,
        memory_mb("VmRSS:"),
        memory_mb("VmHWM:")
    );
}
