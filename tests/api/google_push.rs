//! Google Wallet updates through the push pipeline: a card change PATCHes its object from the
//! same job that pushes to iPhones, notifying within Google's budget.

use std::sync::Arc;
use std::time::Duration;

use loy::domain::Scope;
use loy::push::PushRuntime;
use loy::store::CardLookup;
use loy::store::faults::points;
use serde_json::{Value, json};

use crate::google_fake::{FakeGoogle, TestKey, google_env, object_id};
use crate::helpers::{TestApp, spawn_app_in, unique_phone};
use crate::push::QueueKind;
use crate::push_fake::eventually;

/// How long a test waits for the worker; generous, because `eventually` returns as soon as it holds
/// and a busy machine (or the MongoDB surrogate) can take seconds per push.
const WAIT: Duration = Duration::from_secs(30);

async fn app_with_google(queue: &QueueKind, tweak: &[(&str, &str)]) -> (TestApp, FakeGoogle, PushRuntime) {
    let fake = FakeGoogle::start(
        crate::google_fake::CLIENT_EMAIL,
        &TestKey::shared().public_pem,
        crate::google_fake::ISSUER_ID,
    );
    let mut env = google_env(&queue.store(), &fake);
    env.set("LOY_PUSH_COALESCE_MS", "50").set("LOY_PUSH_POLL_MS", "5").set("LOY_PUSH_BACKOFF_MS", "50");
    queue.configure(&mut env);
    for (key, value) in tweak {
        env.set(key, value);
    }
    let app = spawn_app_in(env).await;
    let worker = Arc::new(app.state.worker(None, crate::push::TOPIC));
    let runtime = PushRuntime::start(worker, 1);
    (app, fake, runtime)
}

/// Enrolls a customer and waits until the card's object exists at Google.
async fn issued(app: &TestApp, fake: &FakeGoogle) -> (String, String) {
    let body = app.enroll("Anna", &unique_phone()).await;
    let number = body["card"]["card_number"].as_str().unwrap().to_owned();
    let serial = body["card"]["serial_number"].as_str().unwrap().to_owned();
    fake.wait_for_object(&object_id(&serial)).await;
    (number, serial)
}

fn patches(fake: &FakeGoogle, serial: &str) -> Vec<Value> {
    let path = format!("loyaltyObject/{}", object_id(serial));
    fake.requests().into_iter().filter(|r| r.method == "PATCH" && r.path == path).map(|r| r.body).collect()
}

crate::on_every_queue!(
    a_pos_earn_is_one_patch_with_the_new_balance_and_a_notification_then_silent_past_the_budget,
    a_google_outage_is_retried_and_a_refusal_becomes_a_dead_letter_with_googles_message,
    a_dead_letter_replayed_before_its_job_finishes_is_still_pushed,
);

async fn a_pos_earn_is_one_patch_with_the_new_balance_and_a_notification_then_silent_past_the_budget(queue: QueueKind) {
    let (app, fake, runtime) = app_with_google(&queue, &[]).await;
    let pos = app.api_key(Scope::Pos).await;
    let (number, serial) = issued(&app, &fake).await;

    let earned = app.pos_post(format!("/api/v1/cards/{number}/earn"), &pos, json!({"purchase_amount": 100_000})).await;
    assert_eq!(earned.status, 200);

    assert!(eventually(WAIT, || patches(&fake, &serial).len() == 1).await, "{:#?}", fake.requests());
    tokio::time::sleep(Duration::from_millis(300)).await;
    let first = patches(&fake, &serial);
    assert_eq!(first.len(), 1, "one PATCH per change");
    assert_eq!(first[0]["loyaltyPoints"]["balance"]["int"], 150);
    assert_eq!(first[0]["notifyPreference"], "NOTIFY_ON_UPDATE");

    // Two more balance changes notify; the fourth within 24 hours is silent.
    for expected in 2..=4 {
        app.pos_post(format!("/api/v1/cards/{number}/earn"), &pos, json!({"purchase_amount": 100_000})).await;
        assert!(eventually(WAIT, || patches(&fake, &serial).len() == expected).await);
    }
    let all = patches(&fake, &serial);
    let notified: Vec<bool> = all.iter().map(|p| p.get("notifyPreference").is_some()).collect();
    assert_eq!(notified, [true, true, true, false], "{all:#?}");
    assert_eq!(all[3]["loyaltyPoints"]["balance"]["int"], app.balance(&number).await);
    crate::push::wait_pushed(&app, &number).await;
    fake.assert_clean();
    runtime.stop().await;
}

async fn a_google_outage_is_retried_and_a_refusal_becomes_a_dead_letter_with_googles_message(queue: QueueKind) {
    let (app, fake, runtime) = app_with_google(&queue, &[]).await;
    let pos = app.api_key(Scope::Pos).await;
    let (number, serial) = issued(&app, &fake).await;
    let object_path = format!("loyaltyObject/{}", object_id(&serial));

    fake.fail_next("PATCH", &object_path, 503, "The service is currently unavailable.", 2);
    app.pos_post(format!("/api/v1/cards/{number}/earn"), &pos, json!({"purchase_amount": 100_000})).await;
    assert!(
        eventually(WAIT, || fake
            .object(&object_id(&serial))
            .is_some_and(|o| o["loyaltyPoints"]["balance"]["int"] == 150))
        .await
    );
    assert_eq!(patches(&fake, &serial).len(), 3, "two 503s, then through");
    assert!(app.store.dead_letters(10).await.unwrap().is_empty());

    fake.fail_next("PATCH", &object_path, 400, "Invalid loyalty points value.", 1);
    app.pos_post(format!("/api/v1/cards/{number}/earn"), &pos, json!({"purchase_amount": 100_000})).await;
    let mut letters = Vec::new();
    for _ in 0..250 {
        letters = app.store.dead_letters(10).await.unwrap();
        if !letters.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(letters.len(), 1, "a 400 is not retried");
    assert_eq!(letters[0].target, "google");
    assert!(letters[0].reason.contains("Invalid loyalty points value."), "{}", letters[0].reason);
    assert_eq!(patches(&fake, &serial).len(), 4);

    // Replaying the dead letter updates the object.
    loy::push::worker::replay(&app.store, app.state.queue.as_ref(), &letters[0].id, chrono::Utc::now()).await.unwrap();
    let balance = app.balance(&number).await;
    assert!(
        eventually(WAIT, || fake
            .object(&object_id(&serial))
            .is_some_and(|o| o["loyaltyPoints"]["balance"]["int"] == balance))
        .await
    );
    runtime.stop().await;
}

/// An operator replays a dead letter while the job that wrote it has not yet marked its target
/// given up nor the card pushed: the job finishing must not cover the replay.
async fn a_dead_letter_replayed_before_its_job_finishes_is_still_pushed(queue: QueueKind) {
    let (app, fake, runtime) = app_with_google(&queue, &[]).await;
    let pos = app.api_key(Scope::Pos).await;
    let (number, serial) = issued(&app, &fake).await;
    let object_path = format!("loyaltyObject/{}", object_id(&serial));

    let mut held = app.faults.pause_at(points::PUSH_DEAD_LETTERED);
    fake.fail_next("PATCH", &object_path, 400, "Invalid loyalty points value.", 1);
    app.pos_post(format!("/api/v1/cards/{number}/earn"), &pos, json!({"purchase_amount": 100_000})).await;
    held.wait().await;
    let letters = app.store.dead_letters(10).await.unwrap();
    assert_eq!(letters.len(), 1);
    loy::push::worker::replay(&app.store, app.state.queue.as_ref(), &letters[0].id, chrono::Utc::now()).await.unwrap();
    held.release();

    let balance = app.balance(&number).await;
    assert!(
        eventually(WAIT, || fake
            .object(&object_id(&serial))
            .is_some_and(|o| o["loyaltyPoints"]["balance"]["int"] == balance))
        .await,
        "the replay is pushed after the job finishes: {:#?}",
        fake.requests()
    );
    assert_eq!(patches(&fake, &serial).len(), 2, "the refused PATCH, then the replay's");
    crate::push::wait_pushed(&app, &number).await;
    let card = app.store.find_card(CardLookup::Serial(&letters[0].serial)).await.unwrap().unwrap();
    assert_eq!(app.store.google_sync(&card.serial).await.unwrap().version, card.version);
    assert!(app.store.dead_letters(10).await.unwrap().is_empty(), "nothing failed again");
    runtime.stop().await;
}
