//! Redis memory per queued card: enqueues N cards into the push queue exactly as the server
//! does (`RedisQueue`), reads what Redis reports, then leases part of them and reads again.
//! The figures feed the capacity model (docs/capacity.md).
//!
//!     LOY_BENCH_REDIS_URL=redis://127.0.0.1:6379 cargo bench --bench queue_memory
//!
//! Knobs: LOY_BENCH_CARDS (default 100000), LOY_BENCH_LEASED (default 10000). Everything is
//! written under a prefix of its own and deleted at the end.

use std::time::Duration;

use futures_util::StreamExt;
use loy::domain::SerialNumber;
use loy::push::queue::PushQueue;
use loy::push::queue::redis::RedisQueue;

#[allow(dead_code)] // the helpers of the other benchmarks
mod support;

use support::env_or;

async fn used_memory(conn: &mut redis::aio::ConnectionManager) -> i64 {
    let info: String = redis::cmd("INFO").arg("memory").query_async(conn).await.unwrap();
    info.lines().find_map(|l| l.strip_prefix("used_memory:")).unwrap().trim().parse().unwrap()
}

async fn key_bytes(conn: &mut redis::aio::ConnectionManager, key: &str) -> i64 {
    // SAMPLES 0: every element counted, not an estimate.
    let n: Option<i64> =
        redis::cmd("MEMORY").arg("USAGE").arg(key).arg("SAMPLES").arg(0).query_async(conn).await.unwrap();
    n.unwrap_or(0)
}

#[tokio::main]
async fn main() {
    let Ok(url) = std::env::var("LOY_BENCH_REDIS_URL") else {
        eprintln!("set LOY_BENCH_REDIS_URL to run this benchmark");
        return;
    };
    let cards = env_or("LOY_BENCH_CARDS", 100_000);
    let leased = env_or("LOY_BENCH_LEASED", 10_000).min(cards);
    let prefix = format!("loybenchmem{}", std::process::id());
    let client = redis::Client::open(url.as_str()).unwrap();
    let mut conn = redis::aio::ConnectionManager::new(client).await.unwrap();
    let queue = RedisQueue::new(conn.clone(), &prefix);
    let key = |name: &str| format!("{prefix}:push:{name}");

    let before = used_memory(&mut conn).await;
    futures_util::stream::iter(0..cards)
        .map(|_| {
            let queue = &queue;
            async move { queue.enqueue(&SerialNumber::generate(), Duration::from_millis(50)).await.unwrap() }
        })
        .buffer_unordered(64)
        .collect::<Vec<()>>()
        .await;
    let after = used_memory(&mut conn).await;
    let waiting = key_bytes(&mut conn, &key("waiting")).await;
    println!("{cards} cards waiting: sorted set {waiting} bytes = {:.1} bytes per card", waiting as f64 / cards as f64);
    println!(
        "  used_memory grew by {} bytes = {:.1} bytes per card (includes allocator slack)",
        after - before,
        (after - before) as f64 / cards as f64
    );

    tokio::time::sleep(Duration::from_millis(100)).await;
    for _ in 0..leased {
        queue.take(Duration::from_secs(60)).await.unwrap().expect("a due job");
    }
    let (waiting, leased_set, tokens) = (
        key_bytes(&mut conn, &key("waiting")).await,
        key_bytes(&mut conn, &key("leased")).await,
        key_bytes(&mut conn, &key("tokens")).await,
    );
    println!(
        "{leased} of them leased: leased set {leased_set} + tokens {tokens} bytes = {:.1} bytes per leased card; \
         {} still waiting in {waiting} bytes",
        (leased_set + tokens) as f64 / leased as f64,
        cards - leased
    );
    let _: i64 = redis::cmd("DEL")
        .arg(key("waiting"))
        .arg(key("leased"))
        .arg(key("tokens"))
        .arg(key("attempts"))
        .query_async(&mut conn)
        .await
        .unwrap();
}
