//! Phase 2: a worker dies (`kill -9`) in the middle of a fan-out, and no device is left behind.
//!
//! The bound on duplicates: a job is one card with its one device here. A worker that dies
//! holds at most [`CONCURRENCY`] jobs; each may have delivered its push without recording it,
//! so the other worker, taking the job once its lease ends, pushes that device once more. So no
//! device gets more than 2 pushes of the fan-out, and at most [`CONCURRENCY`] devices get 2.

use std::time::{Duration, Instant};

use futures_util::StreamExt;
use futures_util::stream;
use loy::domain::{Scope, SerialNumber};
use loy::store::CardLookup;
use serde_json::json;

use crate::Cluster;
use crate::client::random_key;

/// Cards in the fan-out, each with one registered device.
pub const CARDS: usize = 2_000;
/// Jobs one worker runs at once (`LOY_PUSH_CONCURRENCY` of every process).
pub const CONCURRENCY: usize = 16;
/// Requests the test keeps in flight while it sets up and writes.
const PARALLEL: usize = 32;

pub async fn run(c: &Cluster) {
    let pos = c.api_key(Scope::Pos).await;
    let setup = Instant::now();
    let cluster = c;
    let tokens: Vec<(String, String)> = stream::iter(0..CARDS)
        .map(|i| {
            let pos = pos.clone();
            async move {
                let card = cluster.enroll(&cluster.apps[i % 2], &pos).await;
                let serial = SerialNumber::parse(card["serial_number"].as_str().unwrap()).unwrap();
                let stored = cluster.store.find_card(CardLookup::Serial(&serial)).await.unwrap().unwrap();
                let token = cluster.register_device(&cluster.apps[(i + 1) % 2], &stored).await;
                (card["card_number"].as_str().unwrap().to_owned(), token)
            }
        })
        .buffer_unordered(PARALLEL)
        .collect()
        .await;
    eprintln!("cluster: {CARDS} cards with a device each made in {:?}", setup.elapsed());
    assert!(
        crate::eventually(Duration::from_secs(60), || async { idle(cluster).await }).await,
        "the enrollments' own jobs end"
    );
    c.apns.deliveries.reset();
    // Slow answers until the kill: each worker then holds several jobs at any moment (the
    // writes come faster than the answers), so the kill always catches some in hand.
    c.apns.deliveries.set_delay(Duration::from_millis(500));

    // The fan-out: one earn per card, spread over both nodes; worker1 is killed on the way.
    let writes = Instant::now();
    let cluster = c;
    let earning = stream::iter(tokens.iter().enumerate())
        .map(|(i, (number, _))| {
            let pos = pos.clone();
            async move {
                let path = format!("/api/v1/cards/{number}/earn");
                let body = json!({"purchase_amount": 100_000});
                let answer = cluster.pos_post(&cluster.apps[i % 2], &path, &pos, &random_key(), &body).await;
                assert_eq!(answer.unwrap().status, 200);
            }
        })
        .buffer_unordered(PARALLEL)
        .collect::<Vec<()>>();
    let killing = async {
        let started = crate::eventually(Duration::from_secs(120), || async {
            cluster.apns.deliveries.total() >= (CARDS / 4) as u64
        })
        .await;
        assert!(started, "the fan-out started");
        cluster.workers[0].signal("KILL");
        let at = cluster.apns.deliveries.total();
        cluster.apns.deliveries.set_delay(Duration::ZERO);
        at
    };
    let (_, killed_at) = tokio::join!(earning, killing);
    c.workers[0].wait_exit(Duration::from_secs(10)).await;
    eprintln!(
        "cluster: worker1 killed (SIGKILL) with {killed_at} of {CARDS} devices pushed; earns done in {:?}",
        writes.elapsed()
    );
    assert!(killed_at < CARDS as u64, "the kill came in the middle of the fan-out");

    let cluster = c;
    let all_pushed = crate::eventually(Duration::from_secs(120), || async {
        tokens.iter().all(|(_, token)| cluster.apns.deliveries.count(token) >= 1)
    })
    .await;
    let missing = tokens.iter().filter(|(_, t)| cluster.apns.deliveries.count(t) == 0).count();
    assert!(all_pushed, "{missing} devices were never pushed");
    assert!(crate::eventually(Duration::from_secs(60), || async { idle(cluster).await }).await, "none left behind");
    eprintln!("cluster: every device pushed {:?} after the fan-out began", writes.elapsed());

    let counts = c.apns.deliveries.snapshot();
    let twice = tokens.iter().filter(|(_, t)| counts.get(t).copied().unwrap_or(0) == 2).count();
    let most = tokens.iter().map(|(_, t)| counts.get(t).copied().unwrap_or(0)).max().unwrap();
    eprintln!("cluster: {twice} devices pushed twice, at most {most} pushes to one device");
    assert!(most <= 2, "a device got {most} pushes of one change");
    assert!(twice <= CONCURRENCY, "{twice} duplicates, more than the {CONCURRENCY} jobs the dead worker could hold");
    assert!(c.store.dead_letters(10).await.unwrap().is_empty(), "nothing was given up");
    assert!(c.apns.deliveries.malformed().is_empty());
    let reaped = c.workers[1].log_lines("returned to the queue");
    assert!(!reaped.is_empty(), "worker2 took over the jobs the killed worker held when their lease ended");
    c.workers[0].start().await;
}

/// No card is owed a push and the queue is empty.
pub async fn idle(c: &Cluster) -> bool {
    let far_future = chrono::Utc::now() + chrono::Duration::days(1);
    let owed = c.store.cards_pending_push(far_future, 1).await.unwrap();
    let depth = c.queue.depth().await.unwrap();
    owed.is_empty() && depth.waiting == 0 && depth.leased == 0
}
