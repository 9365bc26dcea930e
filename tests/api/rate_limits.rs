//! Rate limits: each surface answers 429 in its own error format with `Retry-After` past its
//! limit, counts each key apart, and shares its counts across nodes through Redis.

use serde_json::{Value, json};

use crate::apple_support::{apple_auth, register};
use crate::helpers::{StoreKind, TestApp, TestEnv, random_suffix, redis_url, spawn_app_in, unique_phone};

async fn app_with(kind: StoreKind, settings: &[(&str, &str)]) -> TestApp {
    let mut env = TestEnv::new(&kind);
    for (key, value) in settings {
        env.set(key, value);
    }
    spawn_app_in(env).await
}

/// The `Retry-After` of a 429, in seconds.
fn retry_after(response: &reqwest::Response) -> u64 {
    assert_eq!(response.status(), 429, "expected 429");
    let value = response.headers().get("retry-after").expect("a 429 has Retry-After").to_str().unwrap();
    let seconds: u64 = value.parse().expect("Retry-After is whole seconds");
    assert!((1..=60).contains(&seconds), "Retry-After {seconds}");
    seconds
}

async fn form_post(app: &TestApp, forwarded_for: Option<&str>) -> reqwest::Response {
    let mut request = app.client.post(app.url("/?lang=en"));
    if let Some(address) = forwarded_for {
        request = request.header("x-forwarded-for", address);
    }
    let phone = unique_phone();
    request.form(&[("first_name", "Anna"), ("phone", phone.as_str()), ("consent", "on")]).send().await.unwrap()
}

async fn assert_json_429(response: reqwest::Response) {
    retry_after(&response);
    assert!(response.headers()["content-type"].to_str().unwrap().starts_with("application/json"));
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "rate_limited", "{body}");
}

#[tokio::test]
async fn the_form_answers_a_page_with_retry_after_past_its_limit() {
    let app = app_with(StoreKind::Embedded, &[("LOY_RATE_LIMIT_ENROLL", "2/min")]).await;
    assert_eq!(form_post(&app, None).await.status(), 303);
    assert_eq!(form_post(&app, None).await.status(), 303);
    let throttled = form_post(&app, None).await;
    retry_after(&throttled);
    assert!(throttled.headers()["content-type"].to_str().unwrap().starts_with("text/html"));
    assert!(throttled.headers().contains_key("content-security-policy"), "a page like the others");
    assert!(throttled.text().await.unwrap().contains("Too many attempts"));
    // Showing the form is not limited.
    assert_eq!(app.get("/").await.status(), 200);
}

#[tokio::test]
async fn the_enrollment_api_answers_json_429_and_counts_each_address_apart() {
    let app =
        app_with(StoreKind::Embedded, &[("LOY_RATE_LIMIT_ENROLL", "1/min"), ("LOY_TRUSTED_PROXIES", "127.0.0.1")])
            .await;
    let key = app.enrollment_key().await;
    let enroll = |address: &'static str| {
        let request = app
            .client
            .post(app.url("/api/v1/enrollments"))
            .bearer_auth(&key)
            .header("x-forwarded-for", address)
            .json(&json!({"first_name": "Anna", "phone": unique_phone(), "consent": true}));
        async move { request.send().await.unwrap() }
    };
    assert_eq!(enroll("198.51.100.1").await.status(), 201);
    assert_json_429(enroll("198.51.100.1").await).await;
    assert_eq!(enroll("198.51.100.2").await.status(), 201, "another client behind the proxy");
    assert_eq!(enroll("2001:db8::5").await.status(), 201);
    // The form shares the allowance of its client address.
    assert_eq!(form_post(&app, Some("198.51.100.2")).await.status(), 429);
}

#[tokio::test]
async fn a_forwarded_header_from_an_untrusted_peer_does_not_buy_a_new_allowance() {
    let app = app_with(StoreKind::Embedded, &[("LOY_RATE_LIMIT_ENROLL", "1/min")]).await;
    assert_eq!(form_post(&app, Some("198.51.100.1")).await.status(), 303);
    let spoofed = form_post(&app, Some("198.51.100.99")).await;
    assert_eq!(spoofed.status(), 429, "the header is ignored: the peer is not a trusted proxy");
}

#[tokio::test]
async fn passkit_log_is_limited_per_client_address() {
    let app = app_with(StoreKind::Embedded, &[("LOY_RATE_LIMIT_PASSKIT_LOG", "3/min")]).await;
    let log = || app.client.post(app.url("/passkit/v1/log")).json(&json!({"logs": ["hello"]})).send();
    for _ in 0..3 {
        assert_eq!(log().await.unwrap().status(), 200);
    }
    assert_json_429(log().await.unwrap()).await;
}

async fn passkit_registration_is_limited_per_device(kind: StoreKind) {
    let app = app_with(kind, &[("LOY_RATE_LIMIT_PASSKIT_REGISTER", "2/min")]).await;
    let number = app.new_card().await;
    let card = app.card(&number).await;
    let auth = apple_auth(card.auth_token.expose());
    let device = format!("device{}", random_suffix());
    let serial = card.serial.as_str();
    assert_eq!(register(&app, &device, serial, Some(&auth), "token-a").await.status(), 201);
    assert_eq!(register(&app, &device, serial, Some(&auth), "token-b").await.status(), 200);
    let throttled = register(&app, &device, serial, Some(&auth), "token-c").await;
    assert_json_429(throttled).await;
    let other = format!("device{}", random_suffix());
    assert_eq!(register(&app, &other, serial, Some(&auth), "token-d").await.status(), 201, "another device");
    let stored = app.store.card_registrations(&card.serial).await.unwrap();
    let first = stored.iter().find(|r| r.device_library_id.as_str() == device).unwrap();
    assert_eq!(first.push_token.expose(), "token-b", "the throttled request changed nothing");
}

crate::on_both_stores!(passkit_registration_is_limited_per_device);

#[tokio::test]
async fn the_pos_api_is_limited_per_api_key() {
    let app = app_with(StoreKind::Embedded, &[("LOY_RATE_LIMIT_POS", "2/min")]).await;
    let number = app.new_card().await;
    let (first, second) = (app.api_key(loy::domain::Scope::Pos).await, app.api_key(loy::domain::Scope::Pos).await);
    let path = format!("/api/v1/cards/{number}");
    assert_eq!(app.pos_get(&path, &first).await.status, 200);
    assert_eq!(app.pos_get(&path, &first).await.status, 200);
    let response = app.client.get(app.url(&path)).bearer_auth(&first).send().await.unwrap();
    assert_json_429(response).await;
    assert_eq!(app.pos_get(&path, &second).await.status, 200, "another key has its own allowance");
}

#[tokio::test]
async fn limits_are_off_when_set_to_off() {
    let app = app_with(StoreKind::Embedded, &[("LOY_RATE_LIMIT_ENROLL", "off")]).await;
    for _ in 0..30 {
        assert_eq!(form_post(&app, None).await.status(), 303);
    }
}

#[tokio::test]
async fn two_nodes_sharing_redis_share_one_allowance() {
    let Some(redis) = redis_url() else { return };
    let prefix = format!("loytest{}", random_suffix());
    let node = || async {
        let mut env = TestEnv::new(&StoreKind::Embedded);
        env.set("LOY_REDIS_URL", &redis).set("LOY_REDIS_PREFIX", &prefix).set("LOY_RATE_LIMIT_PASSKIT_LOG", "3/min");
        spawn_app_in(env).await
    };
    let (a, b) = (node().await, node().await);
    let log = |app: &TestApp| app.client.post(app.url("/passkit/v1/log")).json(&json!({"logs": ["x"]})).send();
    assert_eq!(log(&a).await.unwrap().status(), 200);
    assert_eq!(log(&b).await.unwrap().status(), 200);
    assert_eq!(log(&a).await.unwrap().status(), 200);
    assert_json_429(log(&b).await.unwrap()).await;
    assert_json_429(log(&a).await.unwrap()).await;
    // A node with another prefix (another install on the same Redis) counts apart.
    let mut env = TestEnv::new(&StoreKind::Embedded);
    env.set("LOY_REDIS_URL", &redis)
        .set("LOY_REDIS_PREFIX", &format!("loytest{}", random_suffix()))
        .set("LOY_RATE_LIMIT_PASSKIT_LOG", "3/min");
    let other = spawn_app_in(env).await;
    assert_eq!(log(&other).await.unwrap().status(), 200);
}

#[tokio::test]
async fn a_failing_redis_leaves_each_node_counting_on_its_own() {
    let Some(redis) = redis_url() else { return };
    let prefix = format!("loytest{}", random_suffix());
    let mut env = TestEnv::new(&StoreKind::Embedded);
    env.set("LOY_REDIS_URL", &redis).set("LOY_REDIS_PREFIX", &prefix).set("LOY_RATE_LIMIT_PASSKIT_LOG", "2/min");
    let app = spawn_app_in(env).await;
    // Make the script fail for this client: its key holds a value of the wrong type.
    let client = redis::Client::open(redis.as_str()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let key = format!("{prefix}:ratelimit:passkit_log:127.0.0.1");
    let _: () = redis::cmd("HSET").arg(&key).arg("not").arg("a rate").query_async(&mut conn).await.unwrap();
    let log = || app.client.post(app.url("/passkit/v1/log")).json(&json!({"logs": ["x"]})).send();
    assert_eq!(log().await.unwrap().status(), 200);
    assert_eq!(log().await.unwrap().status(), 200);
    assert_json_429(log().await.unwrap()).await;
    let _: () = redis::cmd("DEL").arg(&key).query_async(&mut conn).await.unwrap();
}
