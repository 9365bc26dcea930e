//! Push fan-out: pushes per second from one worker to a fake APNs with a realistic per-push
//! latency, and the end-to-end delay from a POS earn to the push leaving.
//!
//!     cargo bench --bench push                                      # in-process queue
//!     LOY_BENCH_REDIS_URL=redis://127.0.0.1:6379 cargo bench --bench push
//!
//! Knobs: LOY_BENCH_CARDS (default 10000; two devices each), LOY_BENCH_APNS_MS (the fake's
//! latency per push, default 20), LOY_BENCH_CONCURRENCY (jobs in flight, default 256),
//! LOY_BENCH_EARNS (end-to-end samples, default 500).

use std::sync::Arc;
use std::time::{Duration, Instant};

mod support;

use loy::domain::{DeviceLibraryId, PassTypeId, PushToken, Registration};
use loy::push::PushRuntime;
use support::{SlowApns, env_or};

const TOPIC: &str = "pass.bench.loy";

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

#[tokio::main]
async fn main() {
    let cards = env_or("LOY_BENCH_CARDS", 10_000);
    let latency = Duration::from_millis(env_or("LOY_BENCH_APNS_MS", 20) as u64);
    let concurrency = env_or("LOY_BENCH_CONCURRENCY", 256);
    let earns = env_or("LOY_BENCH_EARNS", 500);
    let dir = tempfile::tempdir().unwrap();
    let mut vars = vec![
        ("LOY_PUSH_CONCURRENCY".to_owned(), concurrency.to_string()),
        ("LOY_PUSH_POLL_MS".to_owned(), "5".to_owned()),
    ];
    if let Ok(url) = std::env::var("LOY_BENCH_REDIS_URL") {
        vars.push(("LOY_REDIS_URL".to_owned(), url));
        vars.push(("LOY_REDIS_PREFIX".to_owned(), format!("loybench{}", std::process::id())));
    }
    let (base, state, store) = support::start(dir.path(), vars).await;
    println!(
        "queue: {}; {cards} cards x 2 devices; fake APNs latency {latency:?}; {concurrency} jobs in flight",
        state.queue.backend()
    );

    let now = loy::domain::card::stored_precision(chrono::Utc::now());
    let mut numbers = Vec::new();
    let mut serials = Vec::new();
    for (i, card) in support::cards(&store, cards).await.into_iter().enumerate() {
        for device in ["phone", "watch"] {
            store
                .register_device(
                    &Registration {
                        device_library_id: DeviceLibraryId::parse(&format!("{device}{i}")).unwrap(),
                        pass_type_id: PassTypeId::parse(TOPIC).unwrap(),
                        serial: card.serial.clone(),
                        push_token: PushToken::parse(&format!("{device}-{i}")).unwrap(),
                        pushed_version: card.version,
                        created_at: now,
                        updated_at: now,
                    },
                    10,
                )
                .await
                .unwrap();
        }
        numbers.push(card.card_number.as_str().to_owned());
        serials.push(card.serial);
    }
    // Every card changes once; the queue gets all of them at once.
    for serial in &serials {
        loy::store::bump_version(store.as_ref(), serial, chrono::Utc::now()).await.unwrap();
        state.queue.enqueue(serial, Duration::ZERO).await.unwrap();
    }

    let apns = Arc::new(SlowApns::new(latency, true));
    let worker = Arc::new(state.worker(Some(apns.clone()), TOPIC));
    let started = Instant::now();
    let runtime = PushRuntime::start(worker, 1);
    let expected = cards * 2;
    while apns.delivered() < expected {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let elapsed = started.elapsed();
    println!(
        "fan-out: {expected} pushes in {:.2} s = {:.0} pushes/s from one worker",
        elapsed.as_secs_f64(),
        expected as f64 / elapsed.as_secs_f64()
    );

    // End to end: a POS earn, then the time until its card's push leaves the worker.
    let plaintext = support::pos_key(&store).await;
    let client = reqwest::Client::new();
    let mut delays = Vec::new();
    for i in 0..earns {
        let card = i % cards;
        let token = format!("phone-{card}");
        let sent = Instant::now();
        let response = client
            .post(format!("{base}/api/v1/cards/{}/earn", numbers[card]))
            .bearer_auth(&plaintext)
            .header("Idempotency-Key", format!("e2e-{i}"))
            .json(&serde_json::json!({"purchase_amount": 10_000}))
            .send()
            .await
            .unwrap();
        assert!(response.status().is_success());
        loop {
            if let Some(at) = apns.arrived(&token).filter(|at| *at > sent) {
                // The fake's own latency is APNs's, not ours: count until the push left.
                delays.push(at.duration_since(sent).saturating_sub(latency));
                break;
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }
    delays.sort();
    println!(
        "end to end (earn answered -> push sent, {} samples): p50 {:.1} ms, p99 {:.1} ms",
        delays.len(),
        percentile(&delays, 0.5).as_secs_f64() * 1000.0,
        percentile(&delays, 0.99).as_secs_f64() * 1000.0
    );
    runtime.stop().await;
}
