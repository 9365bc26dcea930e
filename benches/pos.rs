//! POS throughput over HTTP on one node: earn and redeem transactions per second, with p50 and
//! p99 latency, through the whole stack (HTTP, API key, idempotency record, ledger write).
//!
//!     cargo bench --bench pos                                   # embedded store (SQLite)
//!     LOY_BENCH_MONGODB_URI=mongodb://127.0.0.1:27017 cargo bench --bench pos
//!
//! Knobs: LOY_BENCH_REQUESTS (per phase, default 20000), LOY_BENCH_CONCURRENCY (default 32),
//! LOY_BENCH_CARDS (default 1000), LOY_BENCH_SYNCHRONOUS (full|normal, default full).
//! The load generator runs in the same process and shares the CPU with the server, so the
//! figures are a lower bound for what a separate client would see.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

#[allow(dead_code)] // the helpers of the other benchmarks
mod support;

use support::env_or;

struct Phase {
    name: &'static str,
    requests: usize,
    elapsed: Duration,
    latencies: Vec<Duration>,
    failures: usize,
}

impl Phase {
    fn percentile(&self, p: f64) -> Duration {
        let index = ((self.latencies.len() as f64 - 1.0) * p).round() as usize;
        self.latencies[index]
    }

    fn print(&self) {
        println!(
            "{:<8} {:>7} requests in {:>6.2} s = {:>7.0} tx/s   p50 {:>6.2} ms   p99 {:>6.2} ms   failures {}",
            self.name,
            self.requests,
            self.elapsed.as_secs_f64(),
            self.requests as f64 / self.elapsed.as_secs_f64(),
            self.percentile(0.50).as_secs_f64() * 1000.0,
            self.percentile(0.99).as_secs_f64() * 1000.0,
            self.failures
        );
    }
}

/// The load generator: what every phase shares.
struct Load {
    client: reqwest::Client,
    base: String,
    key: String,
    cards: Vec<String>,
    concurrency: usize,
}

impl Load {
    async fn phase(&self, name: &'static str, requests: usize, verb: &'static str, body: serde_json::Value) -> Phase {
        let next = Arc::new(AtomicUsize::new(0));
        let started = Instant::now();
        let mut tasks = Vec::new();
        for _ in 0..self.concurrency {
            let (next, client, base, key, cards, body) = (
                next.clone(),
                self.client.clone(),
                self.base.clone(),
                self.key.clone(),
                self.cards.clone(),
                body.clone(),
            );
            tasks.push(tokio::spawn(async move {
                let mut latencies = Vec::new();
                let mut failures = 0;
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= requests {
                        break;
                    }
                    let card = &cards[i % cards.len()];
                    let t = Instant::now();
                    let response = client
                        .post(format!("{base}/api/v1/cards/{card}/{verb}"))
                        .bearer_auth(&key)
                        .header("Idempotency-Key", format!("{name}-{i}"))
                        .json(&body)
                        .send()
                        .await;
                    match response {
                        Ok(r) if r.status().is_success() => {
                            let _ = r.bytes().await;
                        }
                        _ => failures += 1,
                    }
                    latencies.push(t.elapsed());
                }
                (latencies, failures)
            }));
        }
        let mut latencies = Vec::with_capacity(requests);
        let mut failures = 0;
        for task in tasks {
            let (l, f) = task.await.unwrap();
            latencies.extend(l);
            failures += f;
        }
        let elapsed = started.elapsed();
        latencies.sort();
        Phase { name, requests, elapsed, latencies, failures }
    }
}

#[tokio::main]
async fn main() {
    let requests = env_or("LOY_BENCH_REQUESTS", 20_000);
    let concurrency = env_or("LOY_BENCH_CONCURRENCY", 32);
    let card_count = env_or("LOY_BENCH_CARDS", 1000);
    let dir = tempfile::tempdir().unwrap();
    let mut vars = vec![(
        "LOY_SQLITE_SYNCHRONOUS".to_owned(),
        std::env::var("LOY_BENCH_SYNCHRONOUS").unwrap_or_else(|_| "full".into()),
    )];
    if let Some(uri) = std::env::var("LOY_BENCH_MONGODB_URI").ok().filter(|u| !u.is_empty()) {
        vars.push(("LOY_MONGODB_URI".to_owned(), uri));
        vars.push(("LOY_MONGODB_DATABASE".to_owned(), format!("loy_bench_{}", std::process::id())));
    }
    let (base, _, store) = support::start(dir.path(), vars).await;
    println!("{requests} requests per phase, {concurrency} concurrent, {card_count} cards");
    let cards: Vec<String> =
        support::cards(&store, card_count).await.iter().map(|c| c.card_number.as_str().to_owned()).collect();
    let plaintext = support::pos_key(&store).await;
    let client = reqwest::Client::builder().pool_max_idle_per_host(concurrency).build().unwrap();

    let load = Load { client, base, key: plaintext, cards, concurrency };
    // Warm-up: connections, caches, the SQLite page cache.
    load.phase("warmup", 500.min(requests), "earn", serde_json::json!({"purchase_amount": 1000})).await;
    let earn = load.phase("earn", requests, "earn", serde_json::json!({"purchase_amount": 250_000})).await;
    let redeem = load.phase("redeem", requests, "redeem", serde_json::json!({"points": 100})).await;
    earn.print();
    redeem.print();
}
