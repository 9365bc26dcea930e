//! HTTP at the edges: `HEAD` wherever `GET` is served, 405 with `Allow` for a method a route
//! does not take, the security headers of every page, and who may read the metrics.

use reqwest::Method;
use serde_json::Value;

use crate::apple_support::{PASS_TYPE, apple_auth};
use crate::helpers::{StoreKind, TestApp, TestEnv, path_of, spawn_app, spawn_app_in, unique_phone};

/// A card's page path, its serial and pass token.
async fn card(app: &TestApp) -> (String, String, String) {
    let body = app.enroll("Anna", &unique_phone()).await;
    let page = path_of(body["card"]["card_url"].as_str().unwrap()).to_owned();
    let number = body["card"]["card_number"].as_str().unwrap().to_owned();
    let card = app.card(&number).await;
    (page, card.serial.as_str().to_owned(), card.auth_token.expose().to_owned())
}

async fn send(app: &TestApp, method: Method, path: &str, auth: Option<&str>) -> reqwest::Response {
    let mut request = app.client.request(method, app.url(path));
    if let Some(auth) = auth {
        request = request.header("authorization", auth);
    }
    request.send().await.unwrap()
}

async fn head_answers_like_get_on_every_get_route(kind: StoreKind) {
    let app = spawn_app(kind).await;
    let (page, serial, token) = card(&app).await;
    let number = app.card_number_of(&serial).await;
    let key = app.api_key(loy::domain::Scope::Pos).await;
    let bearer = format!("Bearer {key}");
    let pass_auth = apple_auth(&token);
    let routes: Vec<(String, Option<&str>)> = vec![
        ("/healthz".into(), None),
        ("/readyz".into(), None),
        ("/metrics".into(), None),
        ("/api/openapi.json".into(), None),
        ("/".into(), None),
        (page.clone(), None),
        (format!("{page}/card.pkpass"), None),
        (format!("{page}/google"), None),
        ("/static/style.css".into(), None),
        ("/no/such/page".into(), None),
        (format!("/api/v1/cards/{number}"), Some(bearer.as_str())),
        (format!("/api/v1/cards/{number}/transactions"), Some(bearer.as_str())),
        ("/api/v1/cards?phone=%2B79120000000".into(), Some(bearer.as_str())),
        (format!("/passkit/v1/devices/device123/registrations/{PASS_TYPE}"), None),
        (format!("/passkit/v1/passes/{PASS_TYPE}/{serial}"), Some(pass_auth.as_str())),
    ];
    for (path, auth) in routes {
        let get = send(&app, Method::GET, &path, auth).await;
        let head = send(&app, Method::HEAD, &path, auth).await;
        assert_eq!(head.status(), get.status(), "HEAD {path}");
        assert_ne!(head.status(), 405, "HEAD {path}");
        assert_eq!(head.headers().get("content-type"), get.headers().get("content-type"), "HEAD {path}");
        assert!(head.bytes().await.unwrap().is_empty(), "HEAD {path} has no body");
    }
    // The connection is still in step after HEAD answers (no stray body was sent).
    assert_eq!(app.get("/healthz").await.status(), 200);
}

async fn a_method_a_route_does_not_take_is_405_with_allow(kind: StoreKind) {
    let app = spawn_app(kind).await;
    let (page, serial, _) = card(&app).await;
    let number = app.card_number_of(&serial).await;
    let cases: Vec<(Method, String, &str)> = vec![
        (Method::POST, "/healthz".into(), "GET, HEAD"),
        (Method::DELETE, "/readyz".into(), "GET, HEAD"),
        (Method::POST, "/metrics".into(), "GET, HEAD"),
        (Method::PUT, "/api/openapi.json".into(), "GET, HEAD"),
        (Method::DELETE, "/".into(), "GET, HEAD, POST"),
        (Method::POST, page.clone(), "GET, HEAD"),
        (Method::POST, format!("{page}/card.pkpass"), "GET, HEAD"),
        (Method::POST, format!("{page}/google"), "GET, HEAD"),
        (Method::POST, "/static/style.css".into(), "GET, HEAD"),
        (Method::GET, "/api/v1/enrollments".into(), "POST"),
        (Method::POST, "/api/v1/cards".into(), "GET, HEAD"),
        (Method::DELETE, format!("/api/v1/cards/{number}"), "GET, HEAD"),
        (Method::POST, format!("/api/v1/cards/{number}/transactions"), "GET, HEAD"),
        (Method::GET, format!("/api/v1/cards/{number}/earn"), "POST"),
        (Method::GET, format!("/api/v1/cards/{number}/redeem"), "POST"),
        (Method::PUT, format!("/api/v1/cards/{number}/adjust"), "POST"),
        (Method::GET, format!("/api/v1/cards/{number}/block"), "POST"),
        (Method::GET, format!("/api/v1/cards/{number}/unblock"), "POST"),
        (Method::GET, "/api/v1/transactions/tx1/reverse".into(), "POST"),
        (Method::GET, "/api/v1/webhooks/pos".into(), "POST"),
        (Method::GET, format!("/passkit/v1/devices/device123/registrations/{PASS_TYPE}/{serial}"), "POST, DELETE"),
        (Method::POST, format!("/passkit/v1/devices/device123/registrations/{PASS_TYPE}"), "GET, HEAD"),
        (Method::POST, format!("/passkit/v1/passes/{PASS_TYPE}/{serial}"), "GET, HEAD"),
        (Method::GET, "/passkit/v1/log".into(), "POST"),
        (Method::from_bytes(b"BREW").unwrap(), "/healthz".into(), "GET, HEAD"),
    ];
    for (method, path, allow) in cases {
        let response = send(&app, method.clone(), &path, None).await;
        assert_eq!(response.status(), 405, "{method} {path}");
        assert_eq!(response.headers()["allow"], allow, "{method} {path}");
        if path.starts_with("/api/") || path.starts_with("/passkit/") {
            let body: Value = response.json().await.unwrap_or_else(|e| panic!("{method} {path}: not JSON: {e}"));
            assert_eq!(body["error"]["code"], "method_not_allowed", "{method} {path}");
        }
    }
    let metrics = app.get_internal("/metrics").await.text().await.unwrap();
    assert!(metrics.contains(r#"method="other""#), "an unknown method is counted as `other`");
    assert!(!metrics.contains("BREW"), "no label per made-up method");
}

/// The security headers every HTML answer must carry.
fn assert_page_headers(what: &str, response: &reqwest::Response) {
    let headers = response.headers();
    assert!(headers["content-type"].to_str().unwrap().starts_with("text/html"), "{what} is a page");
    let csp = headers.get("content-security-policy").unwrap_or_else(|| panic!("{what}: no CSP")).to_str().unwrap();
    assert!(csp.contains("default-src 'none'") && csp.contains("frame-ancestors 'none'"), "{what}: {csp}");
    assert!(!csp.contains("script-src 'self' 'unsafe-inline'"), "{what}: {csp}");
    assert_eq!(headers["x-frame-options"], "DENY", "{what}");
    assert_eq!(headers["referrer-policy"], "no-referrer", "{what}");
    assert_eq!(headers["x-content-type-options"], "nosniff", "{what}");
}

async fn every_page_carries_the_security_headers(kind: StoreKind) {
    let app = spawn_app(kind).await;
    let (page, _, _) = card(&app).await;
    let phone = unique_phone();
    app.enroll("Anna", &phone).await;
    let form = app.get("/").await;
    assert_page_headers("the form", &form);
    let card_page = app.get(&page).await;
    assert_page_headers("the card page", &card_page);
    assert_eq!(card_page.headers()["cache-control"], "no-store", "the card page is never cached");
    assert_page_headers("a missing page", &app.get("/no/such/page").await);
    assert_page_headers("an unknown card", &app.get("/c/AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA").await);
    let invalid = app.post_form("/", &[("first_name", ""), ("phone", "12")]).await;
    assert_page_headers("the form with errors", &invalid);
    let known = app.post_form("/", &[("first_name", "Anna"), ("phone", phone.as_str()), ("consent", "on")]).await;
    assert_page_headers("the already-registered message", &known);
    // JSON is not a page: no CSP, but nosniff and no Referer.
    let json = app.get("/healthz").await;
    assert!(json.headers().get("content-security-policy").is_none());
    assert_eq!(json.headers()["x-content-type-options"], "nosniff");
    assert!(json.headers().get("strict-transport-security").is_none(), "not over http");
}

#[tokio::test]
async fn an_https_public_url_turns_on_hsts() {
    let mut env = TestEnv::new(&StoreKind::Embedded);
    env.set("LOY_PUBLIC_URL", "https://loy.test");
    let app = spawn_app_in(env).await;
    for path in ["/", "/healthz", "/no/such/page"] {
        let response = app.get(path).await;
        assert_eq!(response.headers()["strict-transport-security"], "max-age=31536000", "{path}");
    }
}

#[tokio::test]
async fn a_metrics_token_guards_the_metrics_and_the_readiness_detail() {
    let token = "metrics-token-0123456789";
    let mut env = TestEnv::new(&StoreKind::Embedded);
    env.set("LOY_METRICS_TOKEN", token);
    let app = spawn_app_in(env).await;
    let anonymous = app.get("/metrics").await;
    assert_eq!(anonymous.status(), 401);
    assert_eq!(anonymous.headers()["www-authenticate"], "Bearer");
    let wrong = app.client.get(app.url("/metrics")).bearer_auth("metrics-token-0123456788").send().await.unwrap();
    assert_eq!(wrong.status(), 401);
    let metrics = app.client.get(app.url("/metrics")).bearer_auth(token).send().await.unwrap();
    assert_eq!(metrics.status(), 200);
    assert!(metrics.text().await.unwrap().contains("loy_http_requests_total"));

    let bare = app.get("/readyz").await;
    assert_eq!(bare.status(), 200);
    assert_eq!(bare.text().await.unwrap(), "ready\n", "no detail for strangers");
    let detail = app.client.get(app.url("/readyz")).bearer_auth(token).send().await.unwrap();
    let body: Value = detail.json().await.unwrap();
    assert_eq!(body["checks"]["store"]["status"], "up", "{body}");
}

#[tokio::test]
async fn without_a_token_or_a_listener_the_metrics_are_closed() {
    let mut env = TestEnv::new(&StoreKind::Embedded);
    env.vars.remove("LOY_METRICS_TOKEN");
    let app = spawn_app_in(env).await;
    assert_eq!(app.get("/metrics").await.status(), 404);
    let ready = app.get("/readyz").await;
    assert_eq!(ready.status(), 200);
    assert_eq!(ready.text().await.unwrap(), "ready\n");
}

#[tokio::test]
async fn a_metrics_listener_serves_them_and_the_public_one_does_not() {
    let mut env = TestEnv::new(&StoreKind::Embedded);
    env.vars.remove("LOY_METRICS_TOKEN");
    env.set("LOY_METRICS_BIND", "127.0.0.1:0");
    let app = spawn_app_in(env).await;
    assert_eq!(app.get("/metrics").await.status(), 404);
    assert_eq!(app.get("/readyz").await.text().await.unwrap(), "ready\n");
    let internal = app.metrics_address.clone().expect("the metrics listener runs");
    let metrics = app.client.get(format!("{internal}/metrics")).send().await.unwrap();
    assert_eq!(metrics.status(), 200);
    assert!(metrics.text().await.unwrap().contains("loy_http_requests_total"));
    let ready: Value = app.client.get(format!("{internal}/readyz")).send().await.unwrap().json().await.unwrap();
    assert_eq!(ready["status"], "ready");
    assert_eq!(app.client.get(format!("{internal}/healthz")).send().await.unwrap().status(), 200);
    assert_eq!(app.client.get(format!("{internal}/")).send().await.unwrap().status(), 404, "nothing else there");
}

crate::on_both_stores!(
    head_answers_like_get_on_every_get_route,
    a_method_a_route_does_not_take_is_405_with_allow,
    every_page_carries_the_security_headers,
);

impl TestApp {
    /// The card number of the card with this serial.
    async fn card_number_of(&self, serial: &str) -> String {
        let serial = loy::domain::SerialNumber::parse(serial).unwrap();
        let card = self.store.find_card(loy::store::CardLookup::Serial(&serial)).await.unwrap().unwrap();
        card.card_number.as_str().to_owned()
    }
}
