//! Graceful shutdown: an app node finishes the requests in flight; a push worker finishes its
//! jobs within `LOY_SHUTDOWN_GRACE` and gives the rest back to the queue at once, without
//! waiting for their lease. (Separate processes stopped with SIGTERM: `tests/cluster/`.)

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use loy::domain::Scope;
use loy::store::faults::points;
use serde_json::json;

use crate::helpers::{StoreKind, spawn_app};
use crate::push::{QueueKind, push_app, register, start_workers};
use crate::push_fake::{FakeApns, eventually};

crate::on_both_stores!(a_stopping_app_node_finishes_the_request_in_flight_and_takes_no_new_one);

async fn a_stopping_app_node_finishes_the_request_in_flight_and_takes_no_new_one(kind: StoreKind) {
    let app = spawn_app(kind).await;
    let pos = app.api_key(Scope::Pos).await;
    let number = app.new_card().await;
    let mut held = app.faults.pause_at(points::LEDGER_BEFORE_COMMIT);
    let (client, url) = (app.client.clone(), app.url(&format!("/api/v1/cards/{number}/earn")));
    let in_flight = tokio::spawn({
        let (client, url, pos) = (client.clone(), url.clone(), pos.clone());
        async move {
            let response = client
                .post(url)
                .bearer_auth(pos)
                .header("Idempotency-Key", "in-flight-1")
                .json(&json!({"purchase_amount": 100_000}))
                .send()
                .await
                .expect("the request in flight is answered, not cut off");
            (response.status().as_u16(), response.json::<serde_json::Value>().await.unwrap())
        }
    });
    held.wait().await;
    let store = app.store.clone();
    let stopping = tokio::spawn(app.stop());
    tokio::time::sleep(Duration::from_millis(300)).await;
    let refused = reqwest::Client::new()
        .post(&url)
        .timeout(Duration::from_secs(2))
        .bearer_auth(&pos)
        .header("Idempotency-Key", "after-stop")
        .json(&json!({"purchase_amount": 100_000}))
        .send()
        .await;
    assert!(refused.is_err(), "a stopping node accepts no new connection: {refused:?}");
    assert!(!stopping.is_finished(), "the node waits for the request in flight");

    held.release();
    let (status, body) = in_flight.await.unwrap();
    assert_eq!(status, 200, "{body}");
    tokio::time::timeout(Duration::from_secs(10), stopping).await.expect("the node stops once it answered").unwrap();
    let number = loy::domain::CardNumber::parse(&number).unwrap();
    let card = store.find_card(loy::store::CardLookup::Number(&number)).await.unwrap().unwrap();
    assert_eq!(card.balance, 100 + body["points"].as_i64().unwrap(), "the write in flight was applied once");
}

crate::on_every_queue!(a_worker_past_its_grace_gives_the_job_in_hand_back_at_once_for_another_worker);

async fn a_worker_past_its_grace_gives_the_job_in_hand_back_at_once_for_another_worker(queue: QueueKind) {
    // The lease is a minute: the job can only reach the second worker in time if it is released.
    let app = push_app(&queue, &[("LOY_SHUTDOWN_GRACE", "1"), ("LOY_PUSH_LEASE_MS", "60000")]).await;
    let stuck = Arc::new(FakeApns::default());
    stuck.hang_next(1);
    let first = start_workers(&app, &stuck, 1);
    let pos = app.api_key(Scope::Pos).await;
    let number = app.new_card().await;
    let card = app.card(&number).await;
    let token = register(&app, &card, &format!("phone{}", crate::helpers::random_suffix())).await;

    app.pos_post(format!("/api/v1/cards/{number}/earn"), &pos, json!({"purchase_amount": 100_000})).await;
    assert!(eventually(Duration::from_secs(10), || stuck.started.load(Ordering::SeqCst) == 1).await);
    let stop_began = Instant::now();
    first.stop().await;
    let took = stop_began.elapsed();
    assert!(took >= Duration::from_millis(900), "the job had its grace: {took:?}");
    assert!(took < Duration::from_secs(5), "the worker stopped soon after the grace: {took:?}");
    let depth = app.state.queue.depth().await.unwrap();
    assert_eq!((depth.waiting, depth.leased), (1, 0), "the job is back in the queue, not leased");
    assert_eq!(app.card(&number).await.pushed_version, card.pushed_version, "nothing was recorded as pushed");

    let healthy = Arc::new(FakeApns::default());
    let second = start_workers(&app, &healthy, 1);
    assert!(
        eventually(Duration::from_secs(10), || healthy.delivered_to(&token) == 1).await,
        "another worker pushed the card long before the lease would have ended"
    );
    crate::push::wait_pushed(&app, &number).await;
    second.stop().await;
}

/// A job that finishes within the grace is settled normally: nothing is given back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_within_its_grace_finishes_the_job_in_hand() {
    let app = push_app(&QueueKind::Memory, &[("LOY_SHUTDOWN_GRACE", "5")]).await;
    let apns = Arc::new(FakeApns::default());
    apns.set_delay(Duration::from_millis(500));
    let workers = start_workers(&app, &apns, 1);
    let pos = app.api_key(Scope::Pos).await;
    let number = app.new_card().await;
    let card = app.card(&number).await;
    let token = register(&app, &card, &format!("phone{}", crate::helpers::random_suffix())).await;

    app.pos_post(format!("/api/v1/cards/{number}/earn"), &pos, json!({"purchase_amount": 100_000})).await;
    assert!(eventually(Duration::from_secs(10), || apns.started.load(Ordering::SeqCst) == 1).await);
    workers.stop().await;
    assert_eq!(apns.delivered_to(&token), 1);
    let depth = app.state.queue.depth().await.unwrap();
    assert_eq!((depth.waiting, depth.leased), (0, 0));
    let card = app.card(&number).await;
    assert_eq!(card.pushed_version, card.version);
}
