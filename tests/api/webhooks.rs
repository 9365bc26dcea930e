//! Outgoing events end to end: a receiver over a real socket (`webhook_receiver`) gets signed
//! events, in order per card, through 500s and timeouts; deliveries given up are kept failed
//! and replayed from the console and the command line; private addresses are refused when
//! they are not allowed. With the in-process queue and Redis, on both stores.

use std::process::Command;
use std::time::{Duration, Instant};

use loy::clock::Clock;
use loy::domain::{Role, Scope, SerialNumber};
use loy::store::{DeliveryState, WebhookDelivery, WebhookEndpoint};
use loy::webhooks::delivery::deliver_due;
use loy::webhooks::endpoints::{self, EndpointError};
use loy::webhooks::ssrf::UrlRefused;
use serde_json::{Value, json};

use crate::helpers::{StoreKind, TestApp, TestEnv, spawn_app_in};
use crate::push::QueueKind;
use crate::webhook_receiver::{Receiver, Reply, signature_valid};
use crate::{on_both_stores, on_every_queue};

on_every_queue!(
    events_arrive_signed_at_a_local_receiver,
    failures_and_timeouts_are_retried_and_a_cards_events_stay_in_order,
    a_delivery_failing_past_the_retry_period_is_kept_failed_and_a_replay_delivers_it,
);

on_both_stores!(
    blocking_deleting_and_wallet_changes_send_their_events,
    private_addresses_are_refused_unless_allowed_at_configuration_and_at_delivery,
    the_console_adds_an_endpoint_shows_its_secret_once_and_replays_a_failed_delivery,
    the_command_line_prints_the_secret_once_on_the_last_line_and_replays,
    only_subscribed_events_are_delivered,
    the_background_sender_delivers_by_itself,
    imported_cards_send_card_created_with_their_opening_balance,
);

async fn app_with(store: &StoreKind, queue: Option<&QueueKind>, extra: &[(&str, &str)]) -> TestApp {
    let mut env = TestEnv::new(store);
    if let Some(queue) = queue {
        queue.configure(&mut env);
    }
    env.set("LOY_WEBHOOK_RETRY_BASE_MS", "20").set("LOY_WEBHOOK_TIMEOUT_MS", "1000");
    for (k, v) in extra {
        env.set(k, v);
    }
    spawn_app_in(env).await
}

async fn queue_app(queue: &QueueKind, extra: &[(&str, &str)]) -> TestApp {
    app_with(&queue.store(), Some(queue), extra).await
}

async fn endpoint(app: &TestApp, url: &str, events: &str) -> WebhookEndpoint {
    endpoints::add(app.store.as_ref(), &app.state.settings.webhooks, url, events, app.clock.now())
        .await
        .expect("the endpoint is accepted")
}

/// Runs the sender until the receiver accepted `n` requests (or fails after 20 s).
async fn deliver_until(app: &TestApp, receiver: &Receiver, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        deliver_due(&app.state).await.expect("the sender runs");
        if receiver.accepted().len() >= n {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "only {} of {n} events arrived: {:?}",
            receiver.accepted().len(),
            receiver.received()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn earn(app: &TestApp, pos: &str, number: &str, amount: i64) -> Value {
    let answer = app.pos_post(format!("/api/v1/cards/{number}/earn"), pos, json!({ "purchase_amount": amount })).await;
    assert_eq!(answer.status, 200, "{answer:?}");
    answer.body
}

async fn deliveries(app: &TestApp, endpoint: &str) -> Vec<WebhookDelivery> {
    app.store.endpoint_deliveries(endpoint, None, 100).await.unwrap()
}

/// Checks each body against the OpenAPI document's `webhooks` entry for its type.
fn assert_documented(received: &[crate::webhook_receiver::Received]) {
    let doc: Value = serde_json::from_str(include_str!("../../docs/openapi.json")).unwrap();
    for r in received {
        let schema = &doc["webhooks"][&r.event_type]["post"]["requestBody"]["content"]["application/json"]["schema"];
        assert!(schema.is_object(), "{} is documented under webhooks", r.event_type);
        let errors = crate::openapi::validate(&doc, schema, &r.json(), "body");
        assert!(errors.is_empty(), "{}: {errors:?}\n{}", r.event_type, r.body);
    }
}

fn types(received: &[crate::webhook_receiver::Received]) -> Vec<String> {
    received.iter().map(|r| r.event_type.clone()).collect()
}

async fn events_arrive_signed_at_a_local_receiver(queue: QueueKind) {
    let receiver = Receiver::start().await;
    let app = queue_app(&queue, &[]).await;
    let endpoint = endpoint(&app, &receiver.url, "").await;
    assert!(endpoint.secret.starts_with("whsec_"));
    let pos = app.api_key(Scope::Pos).await;
    let number = app.new_card().await;
    let earned = earn(&app, &pos, &number, 10_000).await;

    deliver_until(&app, &receiver, 3).await;

    let got = receiver.accepted();
    assert_eq!(types(&got), ["card.created", "balance.changed", "balance.changed"]);
    for r in &got {
        assert!(signature_valid(&endpoint.secret, &r.signature, &r.body), "signed: {}", r.signature);
        assert!(!signature_valid("whsec_someone_else", &r.signature, &r.body));
        let body = r.json();
        assert_eq!(body["id"], json!(r.event_id), "Loy-Event-Id is the body's id");
        assert_eq!(body["type"], json!(r.event_type));
        assert!(body["created_at"].as_str().unwrap().ends_with('Z'));
        assert_eq!(body["data"]["card"]["card_number"], json!(number));
    }
    assert_documented(&got);
    let created = got[0].json();
    assert_eq!(created["data"]["card"]["holder"]["first_name"], json!("Anna"));
    assert_eq!(got[1].json()["data"]["entry"]["type"], json!("welcome"));
    let entry = &got[2].json()["data"]["entry"];
    assert_eq!(entry["type"], json!("earn"));
    assert_eq!(entry["id"], earned["transaction_id"]);
    assert_eq!(entry["balance_after"], json!(app.balance(&number).await));
    assert_eq!(got[2].json()["data"]["card"]["balance"], json!(app.balance(&number).await));
    let log = deliveries(&app, &endpoint.id).await;
    assert_eq!(log.len(), 3);
    assert!(log.iter().all(|d| d.state == DeliveryState::Delivered && d.attempts == 1 && d.last_status == Some(200)));
    assert_eq!(receiver.received().len(), 3, "each event was sent once");
    receiver.stop().await;
}

async fn failures_and_timeouts_are_retried_and_a_cards_events_stay_in_order(queue: QueueKind) {
    let receiver = Receiver::start().await;
    let app = queue_app(&queue, &[("LOY_WEBHOOK_TIMEOUT_MS", "300")]).await;
    let endpoint = endpoint(&app, &receiver.url, "").await;
    let pos = app.api_key(Scope::Pos).await;
    // The first event meets a 500, a timeout and a 503; the third a 500.
    receiver.script(&[
        Reply::Status(500),
        Reply::Hang(Duration::from_millis(1500)),
        Reply::Status(503),
        Reply::Status(200),
        Reply::Status(200),
        Reply::Status(500),
    ]);
    let number = app.new_card().await;
    for amount in [100_000, 200_000, 300_000] {
        earn(&app, &pos, &number, amount).await;
    }

    deliver_until(&app, &receiver, 5).await;

    let accepted = receiver.accepted();
    assert_eq!(
        types(&accepted),
        ["card.created", "balance.changed", "balance.changed", "balance.changed", "balance.changed"]
    );
    let kinds: Vec<Value> = accepted[1..].iter().map(|r| r.json()["data"]["entry"]["type"].clone()).collect();
    assert_eq!(kinds, [json!("welcome"), json!("earn"), json!("earn"), json!("earn")]);
    let balances: Vec<i64> =
        accepted[1..].iter().map(|r| r.json()["data"]["entry"]["balance_after"].as_i64().unwrap()).collect();
    assert!(balances.windows(2).all(|w| w[0] < w[1]), "in ledger order: {balances:?}");
    // No event was sent before the one before it had been accepted: every attempt's event is
    // the first one not yet accepted.
    let mut next = 0;
    for r in receiver.received() {
        assert_eq!(r.event_id, accepted[next].event_id, "attempts go in order: {:?}", types(&receiver.received()));
        if (200..300).contains(&r.answered) {
            next += 1;
        }
    }
    let log = deliveries(&app, &endpoint.id).await;
    let first = log.iter().find(|d| d.event_id == accepted[0].event_id).unwrap();
    assert_eq!((first.state, first.attempts), (DeliveryState::Delivered, 4), "500, timeout, 503, then 200");
    let third = log.iter().find(|d| d.event_id == accepted[2].event_id).unwrap();
    assert_eq!((third.state, third.attempts), (DeliveryState::Delivered, 2));
    receiver.stop().await;
}

async fn a_delivery_failing_past_the_retry_period_is_kept_failed_and_a_replay_delivers_it(queue: QueueKind) {
    let receiver = Receiver::start().await;
    let app = queue_app(&queue, &[("LOY_WEBHOOK_MAX_AGE_SECS", "60")]).await;
    let endpoint = endpoint(&app, &receiver.url, "card.created").await;
    receiver.otherwise(500);
    app.new_card().await;
    deliver_due(&app.state).await.unwrap();
    let pending = deliveries(&app, &endpoint.id).await.remove(0);
    assert_eq!(pending.state, DeliveryState::Pending, "retried, not given up, within the period");
    assert!(pending.attempts >= 1);

    // A day later (here: the configured 60 s) the next failure is the last.
    app.clock.advance(chrono::Duration::seconds(61));
    let deadline = Instant::now() + Duration::from_secs(10);
    let failed = loop {
        deliver_due(&app.state).await.unwrap();
        let d = deliveries(&app, &endpoint.id).await.remove(0);
        if d.state == DeliveryState::Failed {
            break d;
        }
        assert!(Instant::now() < deadline, "the delivery was never given up: {d:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(failed.last_status, Some(500));
    assert!(failed.last_error.as_deref().unwrap().contains("500"), "{failed:?}");
    let attempts = receiver.received().len();
    deliver_due(&app.state).await.unwrap();
    assert_eq!(receiver.received().len(), attempts, "a failed delivery is not retried by itself");

    receiver.otherwise(200);
    let replayed =
        endpoints::replay(app.store.as_ref(), &app.state.settings.webhooks, &failed.id, app.clock.now()).await.unwrap();
    assert!(replayed);
    deliver_until(&app, &receiver, 1).await;
    let delivered = deliveries(&app, &endpoint.id).await.remove(0);
    assert_eq!((delivered.state, delivered.attempts), (DeliveryState::Delivered, 1));
    assert_eq!(receiver.accepted()[0].event_id, failed.event_id, "the same event, with its id");
    receiver.stop().await;
}

async fn blocking_deleting_and_wallet_changes_send_their_events(kind: StoreKind) {
    let receiver = Receiver::start().await;
    let app = app_with(&kind, None, &[]).await;
    let endpoint = endpoint(&app, &receiver.url, "").await;
    let pass = crate::apple_support::new_pass(&app).await;
    let (serial, auth) = (pass.serial(), crate::apple_support::apple_auth(&pass.token()));
    let device = "a1b2c3d4e5f60718293a4b5c6d7e8f90";
    let token = "ab".repeat(32);
    assert_eq!(crate::apple_support::register(&app, device, &serial, Some(&auth), &token).await.status(), 201);
    assert_eq!(crate::apple_support::register(&app, device, &serial, Some(&auth), &token).await.status(), 200);
    assert_eq!(crate::apple_support::unregister(&app, device, &serial, Some(&auth)).await.status(), 200);
    let admin = app.api_key(Scope::Admin).await;
    let card = app
        .store
        .find_card(loy::store::CardLookup::Serial(&SerialNumber::parse(&serial).unwrap()))
        .await
        .unwrap()
        .unwrap();
    let number = card.card_number.as_str().to_owned();
    assert_eq!(app.pos_post(format!("/api/v1/cards/{number}/block"), &admin, json!({})).await.status, 200);
    assert_eq!(app.pos_post(format!("/api/v1/cards/{number}/block"), &admin, json!({})).await.status, 200);
    let owner = app.signed_in(Role::Owner).await;
    let deleted = owner.post(&format!("/admin/customers/{serial}/delete"), &[("confirm", "yes")]).await;
    assert!(deleted.status < 400, "{}", deleted.status);

    deliver_until(&app, &receiver, 6).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    deliver_due(&app.state).await.unwrap();

    let got = receiver.accepted();
    assert_eq!(
        types(&got),
        ["card.created", "balance.changed", "card.installed", "card.removed", "card.blocked", "customer.deleted"],
        "one event per change (a repeated registration or block changes nothing)"
    );
    assert_eq!(got[2].json()["data"]["wallet"], json!("apple"));
    assert_eq!(got[4].json()["data"]["card"]["status"], json!("blocked"));
    let gone = got[5].json();
    assert_eq!(gone["data"]["card"]["serial"], json!(serial));
    assert_eq!(gone["data"]["card"]["holder"], Value::Null, "no personal data after deletion");
    assert!(got.iter().all(|r| signature_valid(&endpoint.secret, &r.signature, &r.body)));
    assert_documented(&got);
    receiver.stop().await;
}

async fn only_subscribed_events_are_delivered(kind: StoreKind) {
    let receiver = Receiver::start().await;
    let app = app_with(&kind, None, &[]).await;
    let other = Receiver::start().await;
    let balance_only = endpoint(&app, &receiver.url, "balance.changed").await;
    endpoint(&app, &other.url, "card.created").await;
    let pos = app.api_key(Scope::Pos).await;
    let number = app.new_card().await;
    earn(&app, &pos, &number, 5_000).await;

    deliver_until(&app, &receiver, 2).await;
    deliver_until(&app, &other, 1).await;

    assert_eq!(types(&receiver.accepted()), ["balance.changed", "balance.changed"]);
    assert_eq!(types(&other.accepted()), ["card.created"]);
    assert_eq!(deliveries(&app, &balance_only.id).await.len(), 2);
    receiver.stop().await;
    other.stop().await;
}

async fn private_addresses_are_refused_unless_allowed_at_configuration_and_at_delivery(kind: StoreKind) {
    let receiver = Receiver::start().await;
    let app = app_with(&kind, None, &[("LOY_WEBHOOK_ALLOW_PRIVATE", "false")]).await;
    let settings = &app.state.settings.webhooks;
    let now = app.clock.now();
    let store = app.store.as_ref();
    for url in [
        receiver.url.clone(),
        receiver.url.replace("127.0.0.1", "localhost"),
        "http://10.0.0.8/x".into(),
        "http://[::1]:9/x".into(),
        "http://169.254.169.254/latest".into(),
    ] {
        let refused = endpoints::add(store, settings, &url, "", now).await;
        assert!(matches!(refused, Err(EndpointError::Url(UrlRefused::Private(_)))), "{url}: {refused:?}");
    }
    for url in ["ftp://crm.example/hooks", "file:///etc/passwd", "https://user:pw@crm.example/"] {
        assert!(matches!(endpoints::add(store, settings, url, "", now).await, Err(EndpointError::Url(_))), "{url}");
    }
    assert!(store.webhook_endpoints().await.unwrap().is_empty(), "nothing refused was stored");

    // Endpoints whose address is (or became) private are refused again at delivery.
    let lenient = loy::config::webhooks::WebhookSettings { allow_private: true, ..settings.clone() };
    for url in [receiver.url.clone(), receiver.url.replace("127.0.0.1", "localhost")] {
        endpoints::add(store, &lenient, &url, "card.created", now).await.unwrap();
    }
    app.new_card().await;
    for _ in 0..3 {
        deliver_due(&app.state).await.unwrap();
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
    assert!(receiver.received().is_empty(), "nothing reached the private address");
    for e in store.webhook_endpoints().await.unwrap() {
        let d = deliveries(&app, &e.id).await.remove(0);
        assert_eq!(d.state, DeliveryState::Pending);
        assert!(d.last_error.as_deref().unwrap_or_default().contains("private"), "{d:?}");
    }

    // With the setting, the same address is accepted and delivered to.
    let allowed = app_with(&kind, None, &[("LOY_WEBHOOK_ALLOW_PRIVATE", "true")]).await;
    endpoint(&allowed, &receiver.url, "card.created").await;
    allowed.new_card().await;
    deliver_until(&allowed, &receiver, 1).await;
    receiver.stop().await;
}

async fn the_console_adds_an_endpoint_shows_its_secret_once_and_replays_a_failed_delivery(kind: StoreKind) {
    let receiver = Receiver::start().await;
    let app = app_with(&kind, None, &[("LOY_WEBHOOK_MAX_AGE_SECS", "60")]).await;
    let manager = app.signed_in(Role::Manager).await;
    assert_eq!(manager.get("/admin/webhooks").await.status, 403, "owners only");
    let owner = app.signed_in(Role::Owner).await;
    let list = owner.get("/admin/webhooks").await;
    assert_eq!(list.status, 200);
    assert!(list.body.contains("href=\"/admin/webhooks\""), "linked from the navigation");

    let bad = owner.post("/admin/webhooks", &[("url", "ftp://crm.example/")]).await;
    assert_eq!(bad.status, 422);
    let added = owner.post("/admin/webhooks", &[("url", &receiver.url), ("ev_card_created", "on")]).await;
    assert_eq!(added.status, 200, "{}", added.body);
    let secret = crate::admin_helpers::text_of_id(&added.body, "new-secret").expect("the secret is shown");
    assert!(secret.starts_with("whsec_"));
    let stored = app.store.webhook_endpoints().await.unwrap().remove(0);
    assert_eq!((stored.url.as_str(), stored.events.clone()), (receiver.url.as_str(), vec!["card.created".to_owned()]));
    assert_eq!(stored.secret, secret);
    assert!(!owner.get("/admin/webhooks").await.body.contains(&secret), "shown only once");
    assert_eq!(owner.audit("webhook_endpoint_added").await.len(), 1);

    receiver.otherwise(500);
    app.new_card().await;
    deliver_due(&app.state).await.unwrap();
    app.clock.advance(chrono::Duration::seconds(61));
    let deadline = Instant::now() + Duration::from_secs(10);
    while deliveries(&app, &stored.id).await[0].state != DeliveryState::Failed {
        assert!(Instant::now() < deadline);
        deliver_due(&app.state).await.unwrap();
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let failed = deliveries(&app, &stored.id).await.remove(0);
    let log = owner.get(&format!("/admin/webhooks/{}?failed=1", stored.id)).await;
    assert_eq!(log.status, 200);
    assert!(log.body.contains(&format!("delivery-{}", failed.id)), "the failed delivery is listed");
    let replay_path = format!("/admin/webhooks/{}/deliveries/{}/replay", stored.id, failed.id);
    assert!(log.body.contains(&replay_path), "with a replay button");

    receiver.otherwise(200);
    let replay = owner.post(&replay_path, &[]).await;
    assert_eq!(replay.status, 303);
    deliver_until(&app, &receiver, 1).await;
    assert_eq!(deliveries(&app, &stored.id).await[0].state, DeliveryState::Delivered);
    assert_eq!(owner.audit("webhook_replayed").await.len(), 1);
    let all = owner.get(&format!("/admin/webhooks/{}", stored.id)).await;
    assert!(all.body.contains(&format!("delivery-{}", failed.id)));

    let removed = owner.post(&format!("/admin/webhooks/{}/remove", stored.id), &[]).await;
    assert_eq!(removed.status, 303);
    assert!(app.store.webhook_endpoints().await.unwrap().is_empty());
    assert_eq!(owner.audit("webhook_endpoint_removed").await.len(), 1);
    assert_eq!(owner.get(&format!("/admin/webhooks/{}", stored.id)).await.status, 404);
    receiver.stop().await;
}

fn loy(app: &TestApp, args: &[&str]) -> (i32, String, String) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_loy"));
    for (name, _) in std::env::vars().filter(|(name, _)| name.starts_with("LOY_")) {
        command.env_remove(name);
    }
    command.envs(&app.env.vars).args(args);
    let output = command.output().expect("the loy binary runs");
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

async fn the_command_line_prints_the_secret_once_on_the_last_line_and_replays(kind: StoreKind) {
    let receiver = Receiver::start().await;
    let app = app_with(&kind, None, &[("LOY_WEBHOOK_MAX_AGE_SECS", "60")]).await;

    let (code, out, err) =
        loy(&app, &["webhook-endpoint", "add", &receiver.url, "--events", "card.created,balance.changed"]);
    assert_eq!(code, 0, "{err}");
    let secret = out.lines().last().unwrap().trim().to_owned();
    assert!(secret.starts_with("whsec_"), "the secret is alone on the last line: {out}");
    assert_eq!(out.matches(&secret).count(), 1);
    let endpoint = app.store.webhook_endpoints().await.unwrap().remove(0);
    assert_eq!(endpoint.secret, secret);
    assert_eq!(endpoint.events, ["card.created", "balance.changed"]);
    let (code, _, err) = loy(&app, &["webhook-endpoint", "add", &receiver.url, "--events", "card.exploded"]);
    assert_ne!(code, 0);
    assert!(err.contains("card.exploded"), "{err}");
    let (code, list, _) = loy(&app, &["webhook-endpoint", "list"]);
    assert_eq!(code, 0);
    assert!(list.contains(&endpoint.id) && list.contains(&receiver.url) && !list.contains(&secret));

    receiver.otherwise(500);
    app.new_card().await;
    deliver_due(&app.state).await.unwrap();
    app.clock.advance(chrono::Duration::seconds(61));
    let deadline = Instant::now() + Duration::from_secs(10);
    while deliveries(&app, &endpoint.id).await.iter().any(|d| d.state != DeliveryState::Failed) {
        assert!(Instant::now() < deadline);
        deliver_due(&app.state).await.unwrap();
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (code, failed, _) = loy(&app, &["webhook-endpoint", "deliveries", &endpoint.id, "--failed"]);
    assert_eq!(code, 0);
    let failed_ids: Vec<String> = deliveries(&app, &endpoint.id).await.into_iter().map(|d| d.id).collect();
    assert_eq!(failed_ids.len(), 2);
    assert!(failed_ids.iter().all(|id| failed.contains(id.as_str())), "{failed}");

    receiver.otherwise(200);
    let (code, out, err) = loy(&app, &["webhook-endpoint", "replay", &failed_ids[1]]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains(&failed_ids[1]));
    let (code, out, _) = loy(&app, &["webhook-endpoint", "replay", "--all-failed", &endpoint.id]);
    assert_eq!(code, 0);
    assert!(out.contains("Queued 1 "), "{out}");
    deliver_until(&app, &receiver, 2).await;
    assert!(deliveries(&app, &endpoint.id).await.iter().all(|d| d.state == DeliveryState::Delivered));
    assert_eq!(types(&receiver.accepted()), ["card.created", "balance.changed"], "in order again");

    let (code, _, _) = loy(&app, &["webhook-endpoint", "remove", &endpoint.id]);
    assert_eq!(code, 0);
    assert!(app.store.webhook_endpoints().await.unwrap().is_empty());
    receiver.stop().await;
}

async fn the_background_sender_delivers_by_itself(kind: StoreKind) {
    let receiver = Receiver::start().await;
    let app = app_with(&kind, None, &[("LOY_WEBHOOK_POLL_MS", "50")]).await;
    endpoint(&app, &receiver.url, "").await;
    let sender = tokio::spawn(loy::webhooks::delivery::run_forever(app.state.clone()));
    let pos = app.api_key(Scope::Pos).await;
    let number = app.new_card().await;
    earn(&app, &pos, &number, 10_000).await;

    let deadline = Instant::now() + Duration::from_secs(10);
    while receiver.accepted().len() < 3 {
        assert!(Instant::now() < deadline, "the sender did not deliver: {:?}", receiver.received());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(types(&receiver.accepted()), ["card.created", "balance.changed", "balance.changed"]);
    sender.abort();
    receiver.stop().await;
}

async fn imported_cards_send_card_created_with_their_opening_balance(kind: StoreKind) {
    let receiver = Receiver::start().await;
    let app = app_with(&kind, None, &[]).await;
    endpoint(&app, &receiver.url, "").await;
    let file = app.env.dir.path().join("customers.csv");
    std::fs::write(&file, "name,phone,balance\nOlga,+79125550177,350\n").unwrap();

    let (code, _, err) = loy(&app, &["import", "customers", file.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    deliver_until(&app, &receiver, 2).await;

    let got = receiver.accepted();
    assert_eq!(types(&got), ["card.created", "balance.changed"]);
    assert_eq!(got[0].json()["data"]["card"]["holder"]["first_name"], json!("Olga"));
    let entry = &got[1].json()["data"]["entry"];
    assert_eq!((entry["type"].clone(), entry["points"].clone()), (json!("import"), json!(350)));
    assert_documented(&got);
    receiver.stop().await;
}
