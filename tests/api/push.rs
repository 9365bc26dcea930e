//! The push pipeline with the in-process queue and with Redis: every change reaches every
//! registered device once, coalesced, retried, never lost.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use loy::domain::{Card, Scope};
use loy::push::PushRuntime;
use loy::push::gateway::PushOutcome;
use serde_json::json;

use crate::helpers::{StoreKind, TestApp, TestEnv, random_suffix, spawn_app_in};
use crate::push_fake::{FakeApns, eventually};

/// The pass type of the test app's (development) passes: the APNs topic.
pub const TOPIC: &str = crate::apple_support::PASS_TYPE;

/// The queue (and store) a push test runs with.
#[derive(Debug, Clone)]
pub enum QueueKind {
    /// The in-process queue on the embedded store: a single-node install.
    Memory,
    /// Redis on the embedded store.
    Redis(String),
    /// Redis on MongoDB: the production setup.
    RedisOnMongo { redis: String, mongo: StoreKind },
}

impl QueueKind {
    pub fn store(&self) -> StoreKind {
        match self {
            Self::RedisOnMongo { mongo, .. } => mongo.clone(),
            _ => StoreKind::Embedded,
        }
    }

    pub fn redis(&self) -> Option<&str> {
        match self {
            Self::Memory => None,
            Self::Redis(url) | Self::RedisOnMongo { redis: url, .. } => Some(url),
        }
    }

    /// Points `env` at this queue's Redis, under a fresh key prefix.
    pub fn configure(&self, env: &mut TestEnv) {
        if let Some(url) = self.redis() {
            env.set("LOY_REDIS_URL", url).set("LOY_REDIS_PREFIX", &format!("loytest{}", random_suffix()));
        }
    }
}

/// Runs `$name(QueueKind)` with the in-process queue, with Redis, and with Redis on MongoDB.
#[macro_export]
macro_rules! on_every_queue {
    ($($name:ident),* $(,)?) => {
        $(
            mod $name {
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn in_process() {
                    super::$name($crate::push::QueueKind::Memory).await
                }

                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn redis() {
                    if let Some(url) = $crate::helpers::redis_url() {
                        super::$name($crate::push::QueueKind::Redis(url)).await
                    }
                }

                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn redis_mongodb() {
                    if let (Some(redis), Some(mongo)) = ($crate::helpers::redis_url(), $crate::helpers::StoreKind::mongo()) {
                        super::$name($crate::push::QueueKind::RedisOnMongo { redis, mongo }).await
                    }
                }
            }
        )*
    };
}

/// An app with fast push timings.
pub async fn push_app(queue: &QueueKind, tweak: &[(&str, &str)]) -> TestApp {
    let mut env = TestEnv::new(&queue.store());
    env.set("LOY_PUSH_COALESCE_MS", "100")
        .set("LOY_PUSH_SWEEP_MS", "200")
        .set("LOY_PUSH_GRACE_MS", "400")
        .set("LOY_PUSH_LEASE_MS", "3000")
        .set("LOY_PUSH_POLL_MS", "5")
        .set("LOY_PUSH_BACKOFF_MS", "20");
    queue.configure(&mut env);
    for (key, value) in tweak {
        env.set(key, value);
    }
    spawn_app_in(env).await
}

pub fn start_workers(app: &TestApp, apns: &Arc<FakeApns>, workers: usize) -> PushRuntime {
    let worker = Arc::new(app.state.worker(Some(apns.clone()), TOPIC));
    PushRuntime::start(worker, workers)
}

/// Registers a device for the card's pass through the PassKit web service, as Wallet does.
pub async fn register(app: &TestApp, card: &Card, device: &str) -> String {
    let token = format!("{device}-token");
    let auth = crate::apple_support::apple_auth(card.auth_token.expose());
    let response = crate::apple_support::register(app, device, card.serial.as_str(), Some(&auth), &token).await;
    assert_eq!(response.status(), 201);
    token
}

async fn card_with_devices(app: &TestApp, devices: &[&str]) -> (String, Card, Vec<String>) {
    let number = app.new_card().await;
    let card = app.card(&number).await;
    let mut tokens = Vec::new();
    for device in devices {
        tokens.push(register(app, &card, &format!("{device}{}", random_suffix())).await);
    }
    (number, card, tokens)
}

const WAIT: Duration = Duration::from_secs(10);

/// Waits until the card's current version is recorded as pushed (the worker records it just
/// after its last send), and returns the card.
pub async fn wait_pushed(app: &TestApp, number: &str) -> Card {
    for _ in 0..500 {
        let card = app.card(number).await;
        if card.pushed_version == card.version && card.push_pending_since.is_none() {
            return card;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("card {number} was never recorded as pushed");
}

crate::on_every_queue!(
    an_earn_reaches_each_registered_device_exactly_once_and_the_version_is_recorded,
    a_burst_of_twenty_changes_gives_one_push_per_device_with_the_latest_version,
    a_worker_killed_mid_job_leaves_the_job_to_another_worker,
    a_lost_queue_message_is_made_good_by_the_sweeper,
    a_dead_token_removes_its_registration_and_the_others_still_get_the_push,
    throttling_and_server_errors_are_retried_with_backoff_until_delivered,
    a_push_that_keeps_failing_becomes_a_dead_letter_and_replaying_it_delivers,
    a_dead_letter_replayed_before_its_job_finishes_still_reaches_its_device,
    two_workers_on_one_queue_never_push_the_same_version_twice,
    shutdown_finishes_the_job_in_hand_and_takes_no_more,
    a_configuration_error_shows_in_readiness_until_a_push_goes_through,
);

async fn an_earn_reaches_each_registered_device_exactly_once_and_the_version_is_recorded(queue: QueueKind) {
    let app = push_app(&queue, &[]).await;
    let apns = Arc::new(FakeApns::default());
    let workers = start_workers(&app, &apns, 1);
    let pos = app.api_key(Scope::Pos).await;
    let (number, _, tokens) = card_with_devices(&app, &["phone", "watch"]).await;

    let earned = app.pos_post(format!("/api/v1/cards/{number}/earn"), &pos, json!({"purchase_amount": 100_000})).await;
    assert_eq!(earned.status, 200);

    assert!(eventually(WAIT, || tokens.iter().all(|t| apns.delivered_to(t) == 1)).await, "{:?}", apns.sent());
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(apns.sent().len(), 2, "exactly one push per device: {:?}", apns.sent());
    assert!(apns.sent().iter().all(|s| s.topic == TOPIC));
    let card = app.card(&number).await;
    assert_eq!(card.balance, 150);
    assert_eq!(card.pushed_version, card.version, "the pushed version is recorded");
    assert!(card.push_pending_since.is_none());
    let registrations = app.store.card_registrations(&card.serial).await.unwrap();
    assert!(registrations.iter().all(|r| r.pushed_version == card.version));
    // Woken by the push, the device fetches the pass: it shows the new balance.
    let pass = app
        .client
        .get(app.url(&format!("/passkit/v1/passes/{TOPIC}/{}", card.serial)))
        .header("authorization", crate::apple_support::apple_auth(card.auth_token.expose()))
        .send()
        .await
        .unwrap();
    assert_eq!(pass.status(), 200);
    let pass = crate::apple_support::Pkpass::parse(pass.bytes().await.unwrap().to_vec());
    assert_eq!(pass.pass_json()["storeCard"]["primaryFields"][0]["value"], 150);
    let metrics = app.get_internal("/metrics").await.text().await.unwrap();
    assert!(metrics.contains(r#"loy_pushes_total{result="delivered"} 2"#), "{metrics}");
    assert!(metrics.contains("loy_push_latency_seconds_count 1"), "{metrics}");
    workers.stop().await;
}

async fn a_burst_of_twenty_changes_gives_one_push_per_device_with_the_latest_version(queue: QueueKind) {
    // The window holds the whole burst even where twenty racing writes on one card take a couple
    // of seconds (the MongoDB surrogate on two busy cores).
    let app = push_app(&queue, &[("LOY_PUSH_COALESCE_MS", "5000")]).await;
    let apns = Arc::new(FakeApns::default());
    let workers = start_workers(&app, &apns, 1);
    let pos = app.api_key(Scope::Pos).await;
    let (number, _, tokens) = card_with_devices(&app, &["phone", "tablet"]).await;

    let burst = (0..20)
        .map(|i| app.pos_post(format!("/api/v1/cards/{number}/earn"), &pos, json!({"purchase_amount": 10_000 + i})));
    let answers = futures_util::future::join_all(burst).await;
    assert!(answers.iter().all(|a| a.status == 200));

    assert!(eventually(WAIT, || tokens.iter().all(|t| apns.delivered_to(t) == 1)).await);
    tokio::time::sleep(Duration::from_millis(5500)).await;
    for token in &tokens {
        assert_eq!(apns.attempts_to(token).len(), 1, "one push for the whole burst: {:?}", apns.sent());
    }
    let card = app.card(&number).await;
    assert_eq!(card.version, 21);
    assert_eq!(card.pushed_version, 21, "the push carried the latest version");
    workers.stop().await;
}

async fn a_worker_killed_mid_job_leaves_the_job_to_another_worker(queue: QueueKind) {
    let app = push_app(&queue, &[("LOY_PUSH_LEASE_MS", "700")]).await;
    let apns = Arc::new(FakeApns::default());
    let pos = app.api_key(Scope::Pos).await;
    let (number, _, tokens) = card_with_devices(&app, &["phone"]).await;
    apns.hang_next(1);
    let first = start_workers(&app, &apns, 1);

    app.pos_post(format!("/api/v1/cards/{number}/earn"), &pos, json!({"purchase_amount": 100_000})).await;
    assert!(
        eventually(WAIT, || apns.started.load(std::sync::atomic::Ordering::SeqCst) == 1).await,
        "the first worker took the job"
    );
    first.abort();
    assert_eq!(apns.delivered_to(&tokens[0]), 0, "the killed worker never finished its push");

    let second = start_workers(&app, &apns, 1);
    assert!(eventually(WAIT, || apns.delivered_to(&tokens[0]) == 1).await, "another worker redid the job");
    wait_pushed(&app, &number).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(apns.delivered_to(&tokens[0]), 1, "and pushed once");
    second.stop().await;
}

async fn a_lost_queue_message_is_made_good_by_the_sweeper(queue: QueueKind) {
    let app = push_app(&queue, &[]).await;
    let apns = Arc::new(FakeApns::default());
    let workers = start_workers(&app, &apns, 1);
    let (_, card, tokens) = card_with_devices(&app, &["phone"]).await;

    // A change whose queue message is lost: the version moves in the store, nothing is enqueued.
    loy::store::bump_version(app.store.as_ref(), &card.serial, Utc::now()).await.unwrap();

    assert!(eventually(WAIT, || apns.delivered_to(&tokens[0]) == 1).await, "the sweeper found the card");
    let after = wait_pushed(&app, card.card_number.as_str()).await;
    assert_eq!(after.pushed_version, card.version + 1);
    workers.stop().await;
}

async fn a_dead_token_removes_its_registration_and_the_others_still_get_the_push(queue: QueueKind) {
    let app = push_app(&queue, &[]).await;
    let apns = Arc::new(FakeApns::default());
    let workers = start_workers(&app, &apns, 1);
    let pos = app.api_key(Scope::Pos).await;
    let (number, card, tokens) = card_with_devices(&app, &["gone", "bad", "alive"]).await;
    apns.always(&tokens[0], PushOutcome::DeadToken("Unregistered (410)".into()));
    apns.always(&tokens[1], PushOutcome::DeadToken("BadDeviceToken (400)".into()));
    // The device that is gone holds a second card of ours, under the same token.
    let other = app.card(&app.new_card().await).await;
    let gone_device = tokens[0].strip_suffix("-token").unwrap();
    let auth = crate::apple_support::apple_auth(other.auth_token.expose());
    let registered = crate::apple_support::register(&app, gone_device, other.serial.as_str(), Some(&auth), &tokens[0]);
    assert_eq!(registered.await.status(), 201);

    app.pos_post(format!("/api/v1/cards/{number}/earn"), &pos, json!({"purchase_amount": 100_000})).await;

    assert!(eventually(WAIT, || apns.delivered_to(&tokens[2]) == 1).await);
    // Dead tokens do not hold the card back.
    wait_pushed(&app, &number).await;
    let remaining = app.store.card_registrations(&card.serial).await.unwrap();
    assert_eq!(remaining.iter().map(|r| r.push_token.expose().to_owned()).collect::<Vec<_>>(), vec![tokens[2].clone()]);
    assert!(app.store.card_registrations(&other.serial).await.unwrap().is_empty(), "the token is dead for every card");

    // Each registration the dead tokens took away is a removal from Apple Wallet, told by APNs:
    // counted once, in /metrics and in each card's history.
    let store = &app.store;
    let history = |serial| async move {
        let events = store.card_wallet_events(serial, 100).await.unwrap();
        let mut seen: Vec<_> = events.iter().map(|e| (e.change.as_str(), e.source.as_str())).collect();
        seen.sort_unstable();
        seen
    };
    let installed = ("installed", "passkit");
    let removed = ("removed", "apns");
    assert_eq!(history(&card.serial).await, [installed, installed, installed, removed, removed]);
    assert_eq!(history(&other.serial).await, [installed, removed]);
    let metrics = app.get_internal("/metrics").await.text().await.unwrap();
    assert!(metrics.contains(r#"loy_wallet_changes_total{change="removal",wallet="apple"} 3"#), "{metrics}");
    // The device coming back to unregister finds nothing left to remove.
    let unregistered = crate::apple_support::unregister(&app, gone_device, other.serial.as_str(), Some(&auth)).await;
    assert_eq!(unregistered.status(), 200);
    assert_eq!(history(&other.serial).await, [installed, removed]);
    workers.stop().await;
}

async fn throttling_and_server_errors_are_retried_with_backoff_until_delivered(queue: QueueKind) {
    let app = push_app(&queue, &[("LOY_PUSH_BACKOFF_MS", "100")]).await;
    let apns = Arc::new(FakeApns::default());
    let workers = start_workers(&app, &apns, 1);
    let pos = app.api_key(Scope::Pos).await;
    let (number, _, tokens) = card_with_devices(&app, &["a", "b"]).await;
    apns.script(
        &tokens[0],
        [PushOutcome::Retry("TooManyRequests (429)".into()), PushOutcome::Retry("TooManyRequests (429)".into())],
    );
    apns.script(&tokens[1], [PushOutcome::Retry("InternalServerError (500)".into())]);

    app.pos_post(format!("/api/v1/cards/{number}/earn"), &pos, json!({"purchase_amount": 100_000})).await;

    assert!(eventually(WAIT, || tokens.iter().all(|t| apns.delivered_to(t) == 1)).await, "{:?}", apns.sent());
    let a = apns.attempts_to(&tokens[0]);
    assert_eq!(a.len(), 3, "two failures, then delivered");
    let first_gap = a[1].at - a[0].at;
    let second_gap = a[2].at - a[1].at;
    assert!(first_gap >= Duration::from_millis(50), "the retry waited ({first_gap:?})");
    assert!(second_gap >= Duration::from_millis(100), "backoff grows ({second_gap:?})");
    assert_eq!(apns.attempts_to(&tokens[1]).len(), 2, "a delivered device is not pushed again on retry");
    wait_pushed(&app, &number).await;
    let metrics = app.get_internal("/metrics").await.text().await.unwrap();
    assert!(metrics.contains("loy_push_retries_total 2"), "{metrics}");
    workers.stop().await;
}

async fn a_push_that_keeps_failing_becomes_a_dead_letter_and_replaying_it_delivers(queue: QueueKind) {
    let app = push_app(&queue, &[("LOY_PUSH_MAX_ATTEMPTS", "3")]).await;
    let apns = Arc::new(FakeApns::default());
    let workers = start_workers(&app, &apns, 1);
    let pos = app.api_key(Scope::Pos).await;
    let (number, card, tokens) = card_with_devices(&app, &["flaky", "fine"]).await;
    apns.always(&tokens[0], PushOutcome::Retry("ServiceUnavailable (503)".into()));

    app.pos_post(format!("/api/v1/cards/{number}/earn"), &pos, json!({"purchase_amount": 100_000})).await;

    let store = app.store.clone();
    let mut letters = Vec::new();
    for _ in 0..250 {
        letters = store.dead_letters(10).await.unwrap();
        if !letters.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(letters.len(), 1, "given up into one dead letter");
    assert_eq!(letters[0].serial, card.serial);
    assert!(letters[0].target.starts_with("apns:flaky"));
    assert_eq!(letters[0].attempts, 3);
    assert!(letters[0].reason.contains("503"));
    assert_eq!(apns.attempts_to(&tokens[0]).len(), 3);
    assert_eq!(apns.delivered_to(&tokens[1]), 1, "the healthy device was served at the first attempt");
    let metrics = app.get_internal("/metrics").await.text().await.unwrap();
    assert!(metrics.contains("loy_push_dead_letters_total 1"), "{metrics}");

    apns.clear(&tokens[0]);
    let replayed =
        loy::push::worker::replay(&app.store, app.state.queue.as_ref(), &letters[0].id, Utc::now()).await.unwrap();
    assert!(replayed.is_some());

    assert!(eventually(WAIT, || apns.delivered_to(&tokens[0]) == 1).await, "the replay pushed it");
    assert!(app.store.dead_letters(10).await.unwrap().is_empty());
    assert_eq!(apns.delivered_to(&tokens[1]), 1, "the replay targets the failed device only");
    workers.stop().await;
}

/// An operator replays a device's dead letter while the job that wrote it has not yet marked the
/// device given up nor the card pushed: the job finishing must not cover the replay.
async fn a_dead_letter_replayed_before_its_job_finishes_still_reaches_its_device(queue: QueueKind) {
    let app = push_app(&queue, &[]).await;
    let apns = Arc::new(FakeApns::default());
    let workers = start_workers(&app, &apns, 1);
    let pos = app.api_key(Scope::Pos).await;
    let (number, _, tokens) = card_with_devices(&app, &["refused", "fine"]).await;
    apns.script(&tokens[0], [PushOutcome::Rejected("BadExpirationDate (400)".into())]);

    let mut held = app.faults.pause_at(loy::store::faults::points::PUSH_DEAD_LETTERED);
    app.pos_post(format!("/api/v1/cards/{number}/earn"), &pos, json!({"purchase_amount": 100_000})).await;
    held.wait().await;
    let letters = app.store.dead_letters(10).await.unwrap();
    assert_eq!(letters.len(), 1);
    assert!(letters[0].target.starts_with("apns:refused"));
    loy::push::worker::replay(&app.store, app.state.queue.as_ref(), &letters[0].id, Utc::now()).await.unwrap();
    held.release();

    assert!(eventually(WAIT, || apns.delivered_to(&tokens[0]) == 1).await, "the replay reached the device");
    let card = wait_pushed(&app, &number).await;
    let registrations = app.store.card_registrations(&card.serial).await.unwrap();
    assert!(registrations.iter().all(|r| r.pushed_version == card.version), "{registrations:#?}");
    assert!(app.store.dead_letters(10).await.unwrap().is_empty(), "nothing failed again");
    assert_eq!(apns.delivered_to(&tokens[1]), 1, "the healthy device was pushed once");
    workers.stop().await;
}

async fn two_workers_on_one_queue_never_push_the_same_version_twice(queue: QueueKind) {
    let app = push_app(&queue, &[]).await;
    let apns = Arc::new(FakeApns::default());
    apns.set_delay(Duration::from_millis(5));
    let first = start_workers(&app, &apns, 1);
    let second = start_workers(&app, &apns, 1);
    let pos = app.api_key(Scope::Pos).await;
    let mut all_tokens = Vec::new();
    let mut numbers = Vec::new();
    for _ in 0..15 {
        let (number, _, tokens) = card_with_devices(&app, &["p", "w"]).await;
        numbers.push(number);
        all_tokens.extend(tokens);
    }

    let earns = numbers
        .iter()
        .map(|n| app.pos_post(format!("/api/v1/cards/{n}/earn"), &pos, json!({"purchase_amount": 100_000})));
    futures_util::future::join_all(earns).await;

    assert!(eventually(WAIT, || all_tokens.iter().all(|t| apns.delivered_to(t) >= 1)).await);
    tokio::time::sleep(Duration::from_millis(800)).await;
    for token in &all_tokens {
        assert_eq!(apns.attempts_to(token).len(), 1, "{token} was pushed more than once");
    }
    first.stop().await;
    second.stop().await;
}

async fn shutdown_finishes_the_job_in_hand_and_takes_no_more(queue: QueueKind) {
    let app = push_app(&queue, &[]).await;
    let apns = Arc::new(FakeApns::default());
    apns.set_delay(Duration::from_millis(700));
    let workers = start_workers(&app, &apns, 1);
    let pos = app.api_key(Scope::Pos).await;
    let (first, _, first_tokens) = card_with_devices(&app, &["one"]).await;
    let (second, _, second_tokens) = card_with_devices(&app, &["two"]).await;

    app.pos_post(format!("/api/v1/cards/{first}/earn"), &pos, json!({"purchase_amount": 100_000})).await;
    assert!(eventually(WAIT, || apns.started.load(std::sync::atomic::Ordering::SeqCst) == 1).await);
    let stopping = tokio::spawn(workers.stop());
    tokio::time::sleep(Duration::from_millis(50)).await;
    app.pos_post(format!("/api/v1/cards/{second}/earn"), &pos, json!({"purchase_amount": 100_000})).await;
    stopping.await.unwrap();

    assert_eq!(apns.delivered_to(&first_tokens[0]), 1, "the job in hand was finished");
    let card = app.card(&first).await;
    assert_eq!(card.pushed_version, card.version);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(apns.attempts_to(&second_tokens[0]).len(), 0, "no job was taken after shutdown began");
    let depth = app.state.queue.depth().await.unwrap();
    assert_eq!(depth.leased, 0, "nothing was left leased");
}

async fn a_configuration_error_shows_in_readiness_until_a_push_goes_through(queue: QueueKind) {
    let app = push_app(&queue, &[("LOY_PUSH_BACKOFF_MS", "200")]).await;
    app.state.push_health.apns_configured.store(true, std::sync::atomic::Ordering::Relaxed);
    let apns = Arc::new(FakeApns::default());
    let workers = start_workers(&app, &apns, 1);
    let pos = app.api_key(Scope::Pos).await;
    let (number, _, tokens) = card_with_devices(&app, &["phone"]).await;
    apns.script(&tokens[0], [PushOutcome::ConfigError("TopicDisallowed (400)".into())]);

    app.pos_post(format!("/api/v1/cards/{number}/earn"), &pos, json!({"purchase_amount": 100_000})).await;
    assert!(eventually(WAIT, || apns.attempts_to(&tokens[0]).len() == 1).await);
    let ready: serde_json::Value = app.get_internal("/readyz").await.json().await.unwrap();
    assert_eq!(ready["status"], "degraded");
    assert_eq!(ready["checks"]["apns"]["status"], "error");
    assert!(ready["checks"]["apns"]["detail"].as_str().unwrap().contains("TopicDisallowed"));

    assert!(eventually(WAIT, || apns.delivered_to(&tokens[0]) == 1).await, "retried after the error");
    let ready: serde_json::Value = app.get_internal("/readyz").await.json().await.unwrap();
    assert_eq!(ready["checks"]["apns"]["status"], "up");
    workers.stop().await;
}

/// A card that changes while it is being pushed waits in the queue, due but leased, until its
/// push finishes. However many such cards there are, a card behind them is still taken.
#[tokio::test]
async fn the_redis_queue_takes_a_due_job_behind_more_than_a_hundred_leased_ones() {
    let Some(url) = crate::helpers::redis_url() else { return };
    let mut env = TestEnv::new(&StoreKind::Embedded);
    QueueKind::Redis(url).configure(&mut env);
    let settings = env.settings();
    let queue = loy::startup::connect_queue(&settings).await.unwrap();
    let lease = Duration::from_secs(60);
    let busy: Vec<loy::domain::SerialNumber> = (0..150).map(|_| loy::domain::SerialNumber::generate()).collect();
    for serial in &busy {
        queue.enqueue(serial, Duration::ZERO).await.unwrap();
    }
    for _ in &busy {
        assert!(queue.take(lease).await.unwrap().is_some());
    }
    // Each leased card changes again: due now, but not takeable while its lease runs.
    for serial in &busy {
        queue.enqueue(serial, Duration::ZERO).await.unwrap();
    }
    tokio::time::sleep(Duration::from_millis(5)).await;
    let waiting = loy::domain::SerialNumber::generate();
    queue.enqueue(&waiting, Duration::ZERO).await.unwrap();
    tokio::time::sleep(Duration::from_millis(5)).await;
    let taken = queue.take(lease).await.unwrap().expect("the job behind the leased ones is taken");
    assert_eq!(taken.serial, waiting);
    assert!(queue.take(lease).await.unwrap().is_none(), "the leased cards stay with their workers");
}
