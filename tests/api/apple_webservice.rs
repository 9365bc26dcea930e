//! Apple's PassKit web service as Wallet (and Android pass apps) use it, over HTTP.

use std::io::Read;
use std::process::{Command, Stdio};

use loy::clock::Clock;
use loy::domain::SerialNumber;
use loy::store::{CardLookup, bump_version};
use serde_json::{Value, json};

use crate::apple_support::{
    PASS_TYPE, Pkpass, apple_auth, assert_unauthorized, error_body, latest_pass, new_pass, register, registration_path,
    shared_ca, shared_dev_dir, unregister, updated_serials,
};
use crate::helpers::{StoreKind, TestApp, random_suffix, spawn_app, unique_phone};
use crate::on_both_stores;

on_both_stores!(
    a_device_lives_through_the_whole_passkit_lifecycle,
    android_pass_apps_authenticate_with_their_own_scheme,
    requests_without_the_right_token_are_refused_and_change_nothing,
    the_update_list_names_only_the_cards_that_changed_since_the_tag,
    bad_input_on_every_endpoint_gets_a_clear_4xx,
    tokens_and_push_tokens_never_reach_the_server_log,
);

const DEVICE: &str = "a1b2c3d4e5f60718293a4b5c6d7e8f90";

fn push_token(n: u8) -> String {
    format!("{n:02x}").repeat(32)
}

async fn card(app: &TestApp, serial: &str) -> loy::domain::Card {
    app.store.find_card(CardLookup::Serial(&SerialNumber::parse(serial).unwrap())).await.unwrap().unwrap()
}

fn http_date(t: chrono::DateTime<chrono::Utc>) -> String {
    t.format("%a, %d %b %Y %H:%M:%S GMT").to_string()
}

async fn a_device_lives_through_the_whole_passkit_lifecycle(kind: StoreKind) {
    let app = spawn_app(kind).await;
    let pass = new_pass(&app).await;
    let (serial, auth) = (pass.serial(), apple_auth(&pass.token()));

    let first = register(&app, DEVICE, &serial, Some(&auth), &push_token(1)).await;
    assert_eq!(first.status(), 201, "a new registration");
    assert_eq!(first.bytes().await.unwrap().len(), 0);
    let again = register(&app, DEVICE, &serial, Some(&auth), &push_token(2)).await;
    assert_eq!(again.status(), 200, "already registered");
    let registrations = app.store.card_registrations(&SerialNumber::parse(&serial).unwrap()).await.unwrap();
    assert_eq!(registrations.len(), 1);
    assert_eq!(registrations[0].push_token.expose(), push_token(2), "the push token is updated");
    assert_eq!(registrations[0].pass_type_id.as_str(), PASS_TYPE);
    assert_eq!(registrations[0].pushed_version, card(&app, &serial).await.version);

    let all = updated_serials(&app, DEVICE, None).await;
    assert_eq!(all.status(), 200);
    let all: Value = all.json().await.unwrap();
    let first_tag = all["lastUpdated"].as_str().unwrap().to_owned();
    assert_eq!(all, json!({"serialNumbers": [serial], "lastUpdated": first_tag}));

    let bumped = bump_version(app.store.as_ref(), &SerialNumber::parse(&serial).unwrap(), app.clock.now())
        .await
        .unwrap()
        .unwrap();

    let changed = updated_serials(&app, DEVICE, Some(&first_tag)).await;
    assert_eq!(changed.status(), 200);
    let changed: Value = changed.json().await.unwrap();
    let second_tag = changed["lastUpdated"].as_str().unwrap().to_owned();
    assert_ne!(second_tag, first_tag);
    assert_eq!(changed, json!({"serialNumbers": [serial], "lastUpdated": second_tag}));
    let unchanged = updated_serials(&app, DEVICE, Some(&second_tag)).await;
    assert_eq!(unchanged.status(), 204);
    assert_eq!(unchanged.bytes().await.unwrap().len(), 0);

    let fetched = latest_pass(&app, &serial, Some(&auth), None).await;
    assert_eq!(fetched.status(), 200);
    assert_eq!(fetched.headers()["content-type"], "application/vnd.apple.pkpass");
    let last_modified = fetched.headers()["last-modified"].to_str().unwrap().to_owned();
    assert_eq!(last_modified, http_date(bumped.modified_at));
    let updated = Pkpass::parse(fetched.bytes().await.unwrap().to_vec());
    updated.assert_openssl_verifies(&shared_ca());
    assert_eq!((updated.serial(), updated.token()), (pass.serial(), pass.token()), "identity never changes");

    let not_modified = latest_pass(&app, &serial, Some(&auth), Some(&last_modified)).await;
    assert_eq!(not_modified.status(), 304);
    assert_eq!(not_modified.headers()["last-modified"], last_modified.as_str());
    assert_eq!(not_modified.bytes().await.unwrap().len(), 0);
    let a_second_before = http_date(bumped.modified_at - chrono::Duration::seconds(1));
    assert_eq!(latest_pass(&app, &serial, Some(&auth), Some(&a_second_before)).await.status(), 200);

    let head = app
        .client
        .head(app.url(&format!("/passkit/v1/passes/{PASS_TYPE}/{serial}")))
        .header("authorization", &auth)
        .send()
        .await
        .unwrap();
    assert_eq!(head.status(), 200);
    assert_eq!(head.headers()["content-type"], "application/vnd.apple.pkpass");
    assert_eq!(head.headers()["last-modified"], last_modified.as_str());
    assert_eq!(head.bytes().await.unwrap().len(), 0, "HEAD has no body");

    let log = app.post_json("/passkit/v1/log", &json!({"logs": ["Web service error for pass: 500"]})).await;
    assert_eq!(log.status(), 200);

    let removed = unregister(&app, DEVICE, &serial, Some(&auth)).await;
    assert_eq!(removed.status(), 200);
    assert_eq!(updated_serials(&app, DEVICE, None).await.status(), 204, "no longer registered");
    assert_eq!(unregister(&app, DEVICE, &serial, Some(&auth)).await.status(), 200, "200 also when not registered");
    // The business counters: one card issued, one install and one removal however often asked.
    let metrics = app.get_internal("/metrics").await.text().await.unwrap();
    for line in [
        r#"loy_cards_issued_total{program="default"} 1"#,
        r#"loy_wallet_changes_total{change="install",wallet="apple"} 1"#,
        r#"loy_wallet_changes_total{change="removal",wallet="apple"} 1"#,
    ] {
        assert!(metrics.lines().any(|l| l == line), "{line} in {metrics}");
    }
}

async fn android_pass_apps_authenticate_with_their_own_scheme(kind: StoreKind) {
    let app = spawn_app(kind).await;
    let pass = new_pass(&app).await;
    let auth = format!("AndroidPass {}", pass.token());
    let device = "android-7f3c9a";
    let fcm = "fcm:APA91bH-example_token";

    assert_eq!(register(&app, device, &pass.serial(), Some(&auth), fcm).await.status(), 201);
    assert_eq!(latest_pass(&app, &pass.serial(), Some(&auth), None).await.status(), 200);
    let registrations = app.store.card_registrations(&SerialNumber::parse(&pass.serial()).unwrap()).await.unwrap();
    assert_eq!(registrations[0].push_token.expose(), fcm);
    assert_eq!(unregister(&app, device, &pass.serial(), Some(&auth)).await.status(), 200);
}

async fn requests_without_the_right_token_are_refused_and_change_nothing(kind: StoreKind) {
    let app = spawn_app(kind).await;
    let pass = new_pass(&app).await;
    let other = new_pass(&app).await;
    let serial = pass.serial();
    let wrong = [
        None,
        Some("Bearer ".to_owned() + &pass.token()),
        Some("ApplePass".to_owned()),
        Some("ApplePass ".to_owned()),
        Some(apple_auth("0123456789abcdef0123456789abcdef")),
        Some(apple_auth(&other.token())),
        Some(apple_auth(&pass.token()[..31])),
    ];
    for auth in &wrong {
        let what = format!("{auth:?}");
        assert_unauthorized(register(&app, DEVICE, &serial, auth.as_deref(), &push_token(1)).await, &what).await;
        assert_unauthorized(unregister(&app, DEVICE, &serial, auth.as_deref()).await, &what).await;
        assert_unauthorized(latest_pass(&app, &serial, auth.as_deref(), None).await, &what).await;
    }
    // A serial nobody issued answers like a wrong token, even with a real token.
    let unknown = "zzzzzzzzzzzzzzzzzzzz";
    assert_unauthorized(
        register(&app, DEVICE, unknown, Some(&apple_auth(&pass.token())), &push_token(1)).await,
        "unknown",
    )
    .await;
    assert_unauthorized(latest_pass(&app, unknown, Some(&apple_auth(&pass.token())), None).await, "unknown").await;

    let registrations = app.store.card_registrations(&SerialNumber::parse(&serial).unwrap()).await.unwrap();
    assert!(registrations.is_empty(), "nothing was registered");
    assert_eq!(updated_serials(&app, DEVICE, None).await.status(), 204);
}

async fn the_update_list_names_only_the_cards_that_changed_since_the_tag(kind: StoreKind) {
    let app = spawn_app(kind).await;
    let (a, b) = (new_pass(&app).await, new_pass(&app).await);
    for pass in [&a, &b] {
        assert_eq!(
            register(&app, DEVICE, &pass.serial(), Some(&apple_auth(&pass.token())), &push_token(3)).await.status(),
            201
        );
    }
    let mut both = vec![a.serial(), b.serial()];
    both.sort();
    let listed: Value = updated_serials(&app, DEVICE, None).await.json().await.unwrap();
    assert_eq!(listed["serialNumbers"], json!(both));
    let tag = listed["lastUpdated"].as_str().unwrap().to_owned();

    bump_version(app.store.as_ref(), &SerialNumber::parse(&b.serial()).unwrap(), app.clock.now()).await.unwrap();
    let changed: Value = updated_serials(&app, DEVICE, Some(&tag)).await.json().await.unwrap();
    assert_eq!(changed["serialNumbers"], json!([b.serial()]), "only the card that moved on");

    for foreign in ["1718000000", "v1.!!", "garbage"] {
        let listed: Value = updated_serials(&app, DEVICE, Some(foreign)).await.json().await.unwrap();
        assert_eq!(listed["serialNumbers"], json!(both), "a tag loy did not make lists everything: {foreign}");
    }
    assert_eq!(updated_serials(&app, "another-device", None).await.status(), 204);
}

/// A request body: its content type and bytes.
type Body<'a> = Option<(&'a str, Vec<u8>)>;

async fn send(
    app: &TestApp,
    method: reqwest::Method,
    path: &str,
    auth: Option<&str>,
    body: Body<'_>,
) -> reqwest::Response {
    let mut request = app.client.request(method, app.url(path));
    if let Some(auth) = auth {
        request = request.header("authorization", auth);
    }
    if let Some((content_type, bytes)) = body {
        request = request.header("content-type", content_type).body(bytes);
    }
    request.send().await.unwrap()
}

async fn bad_input_on_every_endpoint_gets_a_clear_4xx(kind: StoreKind) {
    use reqwest::Method;
    let app = spawn_app(kind).await;
    let pass = new_pass(&app).await;
    let (serial, auth) = (pass.serial(), apple_auth(&pass.token()));
    let register_path = registration_path(DEVICE, PASS_TYPE, &serial);
    let json_body = |v: Value| Some(("application/json", v.to_string().into_bytes()));
    let big = Some(("application/json", format!(r#"{{"logs": ["{}"]}}"#, "x".repeat(70 * 1024)).into_bytes()));
    let unknown_type =
        error_body("unknown_pass_type", "This server issues no passes of this pass type.", Some("passTypeIdentifier"));

    let header = auth.clone();
    let auth = Some(auth.as_str());
    let cases = vec![
        (
            Method::POST,
            registration_path(DEVICE, "pass.other.loyalty", &serial),
            auth,
            json_body(json!({"pushToken": "ab"})),
            404,
            Some(unknown_type.clone()),
        ),
        (
            Method::GET,
            format!("/passkit/v1/devices/{DEVICE}/registrations/pass.other.loyalty"),
            None,
            None,
            404,
            Some(unknown_type.clone()),
        ),
        (
            Method::GET,
            format!("/passkit/v1/passes/pass.other.loyalty/{serial}"),
            auth,
            None,
            404,
            Some(unknown_type.clone()),
        ),
        (
            Method::POST,
            registration_path(DEVICE, "not-a-pass-type", &serial),
            auth,
            json_body(json!({"pushToken": "ab"})),
            400,
            None,
        ),
        (
            Method::POST,
            registration_path("bad%20device", PASS_TYPE, &serial),
            auth,
            json_body(json!({"pushToken": "ab"})),
            400,
            None,
        ),
        (
            Method::GET,
            format!("/passkit/v1/devices/{}/registrations/{PASS_TYPE}", "d".repeat(129)),
            None,
            None,
            400,
            None,
        ),
        (Method::GET, format!("/passkit/v1/passes/{PASS_TYPE}/{}", "s".repeat(65)), auth, None, 400, None),
        (Method::POST, register_path.clone(), auth, Some(("application/json", b"{".to_vec())), 400, None),
        (Method::POST, register_path.clone(), auth, json_body(json!({})), 422, None),
        (Method::POST, register_path.clone(), auth, json_body(json!({"pushToken": "has space"})), 422, None),
        (Method::POST, register_path.clone(), auth, json_body(json!({"pushToken": 5})), 422, None),
        (Method::POST, register_path.clone(), auth, Some(("text/plain", b"pushToken=ab".to_vec())), 415, None),
        (Method::POST, register_path.clone(), auth, big.clone(), 413, None),
        (Method::POST, "/passkit/v1/log".to_owned(), None, big, 413, None),
        (Method::POST, "/passkit/v1/log".to_owned(), None, Some(("application/json", b"not json".to_vec())), 400, None),
        (Method::POST, "/passkit/v1/log".to_owned(), None, json_body(json!({"logs": "one"})), 422, None),
        (Method::PUT, register_path.clone(), auth, None, 405, None),
        (Method::GET, "/passkit/v1/log".to_owned(), None, None, 405, None),
        (
            Method::GET,
            "/passkit/v1/nothing".to_owned(),
            None,
            None,
            404,
            Some(error_body("not_found", "No such PassKit endpoint.", None)),
        ),
    ];
    let mut malformed_paths = 0;
    for (method, path, auth, body, status, exact) in cases {
        let what = format!("{method} {}", &path[..path.len().min(90)]);
        let response = send(&app, method, &path, auth, body).await;
        assert_eq!(response.status().as_u16(), status, "{what}");
        let body: Value = response.json().await.unwrap_or_else(|e| panic!("{what}: a JSON error body ({e})"));
        assert!(body["error"]["code"].is_string() && body["error"]["message"].is_string(), "{what}: {body}");
        if let Some(exact) = exact {
            assert_eq!(body, exact, "{what}");
        }
        if body["error"]["code"] == "invalid_path" {
            assert!(body["error"]["field"].is_string(), "{what} names the segment: {body}");
            malformed_paths += 1;
        }
    }
    assert_eq!(malformed_paths, 4, "each malformed identifier is an invalid_path");
    // The registration may arrive without a content type (some Android apps send none).
    let bare = send(&app, Method::POST, &register_path, auth, None).await;
    assert_eq!(bare.status(), 400, "an empty body is refused, not a 500");
    let untyped =
        app.client.post(app.url(&register_path)).header("authorization", &header).body(r#"{"pushToken": "abcd"}"#);
    assert_eq!(untyped.send().await.unwrap().status(), 201);
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

async fn tokens_and_push_tokens_never_reach_the_server_log(kind: StoreKind) {
    let work = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut command = Command::new(env!("CARGO_BIN_EXE_loy"));
    command
        .arg("serve")
        .env_clear()
        .env("LOY_BIND", format!("127.0.0.1:{port}"))
        .env("LOY_PUBLIC_URL", format!("http://127.0.0.1:{port}"))
        .env("LOY_DATA_DIR", work.path())
        .env("LOY_APPLE_DEV_DIR", shared_dev_dir())
        .env("LOY_LOG", "debug")
        .env("LOY_HTTP_WORKERS", "1")
        .current_dir(work.path())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    if let StoreKind::Mongo { uri } = &kind {
        command.env("LOY_MONGODB_URI", uri).env("LOY_MONGODB_DATABASE", format!("loy_test_{}", random_suffix()));
    }
    let mut child = command.spawn().expect("loy serve starts");
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    let mut up = false;
    for _ in 0..200 {
        if client.get(format!("{base}/healthz")).send().await.is_ok() {
            up = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(up, "loy serve answers");

    // The registration form (the JSON API would need an API key, which this process has none of).
    let phone = unique_phone();
    let enrolled = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
        .post(format!("{base}/"))
        .form(&[("first_name", "Anna"), ("phone", phone.as_str()), ("consent", "on")])
        .send()
        .await
        .unwrap();
    assert_eq!(enrolled.status(), 303, "the form enrolls");
    let location = enrolled.headers()["location"].to_str().unwrap().to_owned();
    let card_path = location.split('?').next().unwrap();
    let card_url = format!("{base}{card_path}");
    let card_key = card_path.rsplit('/').next().unwrap().to_owned();
    let pass = Pkpass::parse(
        client.get(format!("{card_url}/card.pkpass")).send().await.unwrap().bytes().await.unwrap().to_vec(),
    );
    let (serial, token) = (pass.serial(), pass.token());
    let device_token = push_token(7);
    let registered = client
        .post(format!("{base}{}", registration_path(DEVICE, PASS_TYPE, &serial)))
        .header("authorization", apple_auth(&token))
        .json(&json!({"pushToken": device_token}))
        .send()
        .await
        .unwrap();
    assert_eq!(registered.status(), 201);
    let _ = client
        .get(format!("{base}/passkit/v1/passes/{PASS_TYPE}/{serial}"))
        .header("authorization", apple_auth(&token))
        .send()
        .await;
    let _ = client
        .get(format!("{base}/passkit/v1/passes/{PASS_TYPE}/{serial}"))
        .header("authorization", apple_auth("wrong-token-0123456789"))
        .send()
        .await;
    let logged = client
        .post(format!("{base}/passkit/v1/log"))
        .json(&json!({"logs": [format!("marker-7q2: could not register push token {device_token}")]}))
        .send()
        .await
        .unwrap();
    assert_eq!(logged.status(), 200);

    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    child.kill().expect("our own child process stops");
    let mut log = String::new();
    child.stderr.take().unwrap().read_to_string(&mut log).unwrap();
    let _ = child.wait();

    assert!(log.contains("marker-7q2: could not register push token [redacted]"), "the device's message is logged");
    assert!(log.contains("device registered for a pass"));
    for (secret, what) in [(&token, "authentication token"), (&device_token, "push token"), (&card_key, "card key")] {
        assert!(!log.contains(secret.as_str()), "the {what} appears in the log");
    }
}
