use serde_json::Value;

use crate::helpers::{StoreKind, TestEnv, spawn_app, spawn_app_in};
use crate::on_both_stores;

on_both_stores!(health_and_readiness_report_the_store, every_response_carries_a_request_id);

async fn health_and_readiness_report_the_store(kind: StoreKind) {
    let expected_backend = match kind {
        StoreKind::Embedded => "embedded",
        StoreKind::Mongo { .. } => "mongodb",
    };
    let app = spawn_app(kind).await;

    let alive = app.get("/healthz").await;
    assert_eq!(alive.status(), 200);
    assert_eq!(alive.json::<Value>().await.unwrap()["status"], "ok");

    let ready = app.get_internal("/readyz").await;
    assert_eq!(ready.status(), 200);
    let body: Value = ready.json().await.unwrap();
    assert_eq!(body["status"], "ready");
    assert_eq!(body["checks"]["store"]["status"], "up");
    assert_eq!(body["checks"]["store"]["backend"], expected_backend);
    assert_eq!(body["checks"]["queue"]["backend"], "in-process");
}

async fn every_response_carries_a_request_id(kind: StoreKind) {
    let app = spawn_app(kind).await;
    let generated = app.get("/healthz").await;
    let id = generated.headers()["x-request-id"].to_str().unwrap();
    assert!(id.len() >= 8);
    let echoed =
        app.client.get(app.url("/healthz")).header("x-request-id", "client-chosen-id-42").send().await.unwrap();
    assert_eq!(echoed.headers()["x-request-id"], "client-chosen-id-42");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_checks_redis_when_it_is_configured() {
    let Some(redis) = crate::helpers::redis_url() else { return };
    let mut env = TestEnv::new(&StoreKind::Embedded);
    env.set("LOY_REDIS_URL", &redis);
    let app = spawn_app_in(env).await;

    let body: Value = app.get_internal("/readyz").await.json().await.unwrap();

    assert_eq!(body["status"], "ready");
    assert_eq!(body["checks"]["queue"], serde_json::json!({"status": "up", "backend": "redis"}));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_fails_when_the_store_is_down() {
    let app = spawn_app(StoreKind::Embedded).await;
    // Every store call fails from now on: the first fails by injection, the rest are re-armed.
    for _ in 0..3 {
        app.faults.fail_on_call(1);
        let response = app.get_internal("/readyz").await;
        assert_eq!(response.status(), 503);
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["checks"]["store"]["status"], "down");
    }
}

/// `/readyz` names what a node keeps to itself: nothing with Redis and MongoDB; the queue, the
/// rate limits and the data without them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_says_what_is_node_local() {
    let alone = spawn_app(StoreKind::Embedded).await;
    let body: Value = alone.get_internal("/readyz").await.json().await.unwrap();
    assert_eq!(body["status"], "ready", "node-local state is shown, never a reason to be unready");
    let check = &body["checks"]["node_local"];
    assert_eq!(check["status"], "node_local");
    let detail = check["detail"].as_str().unwrap();
    assert!(detail.contains("push queue") && detail.contains("LOY_REDIS_URL"), "{detail}");
    assert!(detail.contains("LOY_MONGODB_URI"), "{detail}");

    let (Some(redis), Some(mongo)) = (crate::helpers::redis_url(), StoreKind::mongo()) else { return };
    let mut env = TestEnv::new(&mongo);
    env.set("LOY_REDIS_URL", &redis);
    let shared = spawn_app_in(env).await;
    let body: Value = shared.get_internal("/readyz").await.json().await.unwrap();
    assert_eq!(body["checks"]["node_local"], serde_json::json!({"status": "shared"}));
}
