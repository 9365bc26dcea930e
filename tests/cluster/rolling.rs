//! Phase 3: SIGTERM and restart every process, one by one, while POS clients keep writing.
//!
//! Each client sends earns with a fresh idempotency key; when a node gives no answer (it is
//! stopping or down) the client sends the same request, same key, to the other node until it
//! is answered, as a till does. Every write a client saw succeed must be in the ledger exactly
//! once, and nothing else.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use loy::domain::{EntryKind, Scope};
use serde_json::json;

use crate::Cluster;
use crate::client::random_key;

const CLIENTS: usize = 6;
const LOAD_CARDS: usize = 20;

/// What one client saw: card number → the points of each earn answered 200; and how many
/// times it had to send a request again (no answer from a stopping or stopped node).
type Seen = (HashMap<String, Vec<i64>>, usize);

pub async fn run(c: &Cluster) {
    let pos = c.api_key(Scope::Pos).await;
    let mut numbers = Vec::new();
    let mut tokens = Vec::new();
    for i in 0..LOAD_CARDS {
        let card = c.enroll(&c.apps[i % 2], &pos).await;
        let number = card["card_number"].as_str().unwrap().to_owned();
        tokens.push(c.register_device(&c.apps[(i + 1) % 2], &c.card(&number).await).await);
        numbers.push(number);
    }
    let mut before: HashMap<String, (i64, usize)> = HashMap::new();
    for number in &numbers {
        before.insert(number.clone(), earn_entries(c, number).await);
    }
    c.apns.deliveries.reset();

    let stop = Arc::new(AtomicBool::new(false));
    let load = futures_util::future::join_all((0..CLIENTS).map(|client| {
        let (stop, pos, numbers) = (stop.clone(), pos.clone(), numbers.clone());
        async move { client_loop(c, client, &numbers, &pos, &stop).await }
    }));
    let restarts = async {
        let grace = Duration::from_secs(c.vars["LOY_SHUTDOWN_GRACE"].parse().unwrap());
        let procs = [&c.workers[0], &c.workers[1], &c.apps[0], &c.apps[1]];
        for proc in procs {
            tokio::time::sleep(Duration::from_millis(1500)).await;
            let (status, took) = proc.terminate().await;
            assert!(status.success(), "{} exited with {status} on SIGTERM:\n{}", proc.name, proc.log_tail());
            assert!(took < grace + Duration::from_secs(5), "{} took {took:?} to stop", proc.name);
            eprintln!("cluster: {} stopped on SIGTERM in {took:?}; starting it again", proc.name);
            proc.start().await;
        }
        tokio::time::sleep(Duration::from_millis(1500)).await;
        stop.store(true, Ordering::SeqCst);
    };
    let began = Instant::now();
    let (seen, ()) = tokio::join!(load, restarts);
    let mut succeeded: HashMap<String, Vec<i64>> = HashMap::new();
    let mut resent = 0;
    for (client, again) in seen {
        resent += again;
        for (number, points) in client {
            succeeded.entry(number).or_default().extend(points);
        }
    }
    let writes: usize = succeeded.values().map(Vec::len).sum();
    eprintln!(
        "cluster: {writes} earns answered 200 during the rolling restart ({:?}); {resent} sends repeated with \
         the same key after no answer",
        began.elapsed()
    );
    assert!(writes >= 50, "the load kept going: {writes} writes");

    for number in &numbers {
        let (balance_before, earns_before) = before[number];
        let (balance, earns) = earn_entries(c, number).await;
        let points = succeeded.get(number).cloned().unwrap_or_default();
        assert_eq!(earns - earns_before, points.len(), "card {number}: earns in the ledger vs. answered 200");
        assert_eq!(balance - balance_before, points.iter().sum::<i64>(), "card {number}: balance vs. answered points");
    }
    for proc in c.apps.iter().chain(&c.workers) {
        assert!(!proc.log_lines("shutdown requested").is_empty(), "{} logged its graceful stop", proc.name);
    }
    assert!(
        crate::eventually(Duration::from_secs(60), || async {
            crate::fanout::idle(c).await && tokens.iter().all(|t| c.apns.deliveries.count(t) >= 1)
        })
        .await,
        "every load card was pushed after the restarts"
    );
}

async fn client_loop(c: &Cluster, client: usize, numbers: &[String], pos: &str, stop: &AtomicBool) -> Seen {
    let mut seen: Seen = Default::default();
    let mut n = client;
    while !stop.load(Ordering::SeqCst) {
        let number = &numbers[n % numbers.len()];
        let path = format!("/api/v1/cards/{number}/earn");
        let key = random_key();
        let body = json!({"purchase_amount": 10_000 + 100 * (n % 7) as i64});
        let began = Instant::now();
        let mut attempt = n;
        let answer = loop {
            match c.pos_post(&c.apps[attempt % 2], &path, pos, &key, &body).await {
                Ok(answer) if answer.status != 503 => break answer,
                _ => {}
            }
            assert!(began.elapsed() < Duration::from_secs(60), "no node answered {path} for a minute");
            seen.1 += 1;
            attempt += 1;
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        assert_eq!(answer.status, 200, "{answer:?}");
        seen.0.entry(number.clone()).or_default().push(answer.body["points"].as_i64().unwrap());
        n += CLIENTS;
    }
    seen
}

async fn earn_entries(c: &Cluster, number: &str) -> (i64, usize) {
    let card = c.card(number).await;
    let entries = c.store.card_entries(&card.serial, None, usize::MAX).await.unwrap();
    (card.balance, entries.iter().filter(|e| e.kind == EntryKind::Earn).count())
}
