//! The PassKit web service's open doors, tried as an attacker would: the unauthenticated log
//! endpoint, and a pass's token used to register thousands of devices or to touch other passes.

use std::io::Read;
use std::process::{Command, Stdio};

use futures_util::StreamExt;
use serde_json::{Value, json};

use crate::apple_support::{apple_auth, register, shared_dev_dir};
use crate::helpers::{StoreKind, TestApp, random_suffix, spawn_app};

#[tokio::test]
async fn a_log_request_over_64_kib_is_refused_whole() {
    let app = spawn_app(StoreKind::Embedded).await;
    let big = json!({"logs": ["x".repeat(70_000)]});
    let response = app.client.post(app.url("/passkit/v1/log")).json(&big).send().await.unwrap();
    assert_eq!(response.status(), 413);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "payload_too_large");
}

/// Runs `loy serve` with JSON logs, sends `logs` to `/passkit/v1/log`, and returns the log lines.
async fn served_log_lines(logs: Value) -> Vec<Value> {
    let work = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let mut child = Command::new(env!("CARGO_BIN_EXE_loy"))
        .arg("serve")
        .env_clear()
        .env("LOY_BIND", format!("127.0.0.1:{port}"))
        .env("LOY_PUBLIC_URL", format!("http://127.0.0.1:{port}"))
        .env("LOY_DATA_DIR", work.path())
        .env("LOY_APPLE_DEV_DIR", shared_dev_dir())
        .env("LOY_LOG", "info")
        .env("LOY_LOG_FORMAT", "json")
        .env("LOY_HTTP_WORKERS", "1")
        .env("LOY_WORKERS", "0")
        .current_dir(work.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("loy serve starts");
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
    let response = client.post(format!("{base}/passkit/v1/log")).json(&logs).send().await.unwrap();
    assert_eq!(response.status(), 200);
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    child.kill().expect("our own child process stops");
    let mut out = String::new();
    child.stdout.take().unwrap().read_to_string(&mut out).unwrap();
    child.stderr.take().unwrap().read_to_string(&mut out).unwrap();
    let _ = child.wait();
    out.lines()
        .filter(|line| !line.trim().is_empty())
        .map(|line| {
            serde_json::from_str(line).unwrap_or_else(|e| panic!("a log line is not one JSON object ({e}): {line}"))
        })
        .collect()
}

fn device_messages(lines: &[Value]) -> Vec<String> {
    lines
        .iter()
        .filter(|l| l["target"] == "loy::passkit::device_log")
        .filter_map(|l| l["fields"]["device_message"].as_str().map(str::to_owned))
        .collect()
}

#[tokio::test]
async fn device_logs_are_bounded_and_cannot_forge_log_lines_or_fields() {
    let forged =
        "ok\n{\"level\":\"ERROR\",\"fields\":{\"message\":\"forged\"}}\r\nlevel=ERROR \u{1b}[31mred\u{202e}txt";
    let long = "é".repeat(3000);
    let lines = served_log_lines(json!({"logs": [forged, long]})).await;
    assert!(!lines.iter().any(|l| l["level"] == "ERROR"), "no forged error line");
    assert!(!lines.iter().any(|l| l["fields"]["message"] == "forged"), "no forged field");
    let messages = device_messages(&lines);
    assert_eq!(messages.len(), 2, "{lines:?}");
    // One field, quoted; every control and invisible character escaped.
    let first = &messages[0];
    assert!(first.starts_with('"') && first.ends_with('"'), "{first}");
    assert!(!first.chars().any(|c| c.is_control() || c == '\u{202e}'), "{first:?}");
    assert!(first.contains("\\\\u{a}") && first.contains("\\\\u{1b}") && first.contains("\\\\u{202e}"), "{first}");
    // Cut to about 1 KiB.
    let second = &messages[1];
    assert!(second.len() < 1100, "{} bytes logged", second.len());
    assert!(second.contains('…'));
}

async fn pass_and_auth(app: &TestApp) -> (loy::domain::Card, String) {
    let number = app.new_card().await;
    let card = app.card(&number).await;
    let auth = apple_auth(card.auth_token.expose());
    (card, auth)
}

async fn two_thousand_registrations_of_one_pass_stop_at_the_cap(kind: StoreKind) {
    let app = spawn_app(kind).await;
    let (card, auth) = pass_and_auth(&app).await;
    let serial = card.serial.as_str().to_owned();
    let statuses: Vec<u16> = futures_util::stream::iter(0..2000)
        .map(|i| {
            let (app, serial, auth) = (&app, serial.clone(), auth.clone());
            async move {
                let device = format!("fake{i:05}{}", random_suffix());
                register(app, &device, &serial, Some(&auth), &format!("token{i}")).await.status().as_u16()
            }
        })
        .buffer_unordered(32)
        .collect()
        .await;
    let created = statuses.iter().filter(|s| **s == 201).count();
    let refused = statuses.iter().filter(|s| **s == 403).count();
    assert_eq!(created, 10, "LOY_MAX_DEVICES_PER_PASS defaults to 10");
    assert_eq!(
        refused,
        1990,
        "every other registration is refused: {:?}",
        statuses.iter().find(|s| **s != 201 && **s != 403)
    );
    assert_eq!(app.store.card_registrations(&card.serial).await.unwrap().len(), 10);
    // A device already registered may still update its token; after an unregistration a new
    // device fits again.
    let registrations = app.store.card_registrations(&card.serial).await.unwrap();
    let known = registrations[0].device_library_id.as_str().to_owned();
    assert_eq!(register(&app, &known, &serial, Some(&auth), "fresh-token").await.status(), 200);
    let refused = register(&app, "latecomer01", &serial, Some(&auth), "t").await;
    assert_eq!(refused.status(), 403);
    let body: Value = refused.json().await.unwrap();
    assert_eq!(body["error"]["code"], "too_many_devices");
    let gone = crate::apple_support::unregister(&app, &known, &serial, Some(&auth)).await;
    assert_eq!(gone.status(), 200);
    assert_eq!(register(&app, "latecomer01", &serial, Some(&auth), "t").await.status(), 201);
}

async fn a_registration_updates_only_the_push_token_of_its_own_pass(kind: StoreKind) {
    let app = spawn_app(kind).await;
    let (mine, my_auth) = pass_and_auth(&app).await;
    let (theirs, their_auth) = pass_and_auth(&app).await;
    let device = format!("shared{}", random_suffix());
    assert_eq!(register(&app, &device, theirs.serial.as_str(), Some(&their_auth), "their-token").await.status(), 201);
    assert_eq!(register(&app, &device, mine.serial.as_str(), Some(&my_auth), "my-token").await.status(), 201);
    // With my pass's token I re-register the device id with another push token.
    assert_eq!(register(&app, &device, mine.serial.as_str(), Some(&my_auth), "hijacked").await.status(), 200);
    let token_on = |registrations: Vec<loy::domain::Registration>| {
        registrations
            .into_iter()
            .find(|r| r.device_library_id.as_str() == device)
            .unwrap()
            .push_token
            .expose()
            .to_owned()
    };
    assert_eq!(token_on(app.store.card_registrations(&mine.serial).await.unwrap()), "hijacked");
    assert_eq!(
        token_on(app.store.card_registrations(&theirs.serial).await.unwrap()),
        "their-token",
        "the other pass's registration keeps its token"
    );
}

#[tokio::test]
async fn a_lower_cap_is_configurable() {
    let mut env = crate::helpers::TestEnv::new(&StoreKind::Embedded);
    env.set("LOY_MAX_DEVICES_PER_PASS", "2");
    let app = crate::helpers::spawn_app_in(env).await;
    let (card, auth) = pass_and_auth(&app).await;
    let serial = card.serial.as_str();
    assert_eq!(register(&app, "phone0001", serial, Some(&auth), "a").await.status(), 201);
    assert_eq!(register(&app, "watch0001", serial, Some(&auth), "b").await.status(), 201);
    assert_eq!(register(&app, "spare0001", serial, Some(&auth), "c").await.status(), 403);
}

crate::on_both_stores!(
    two_thousand_registrations_of_one_pass_stop_at_the_cap,
    a_registration_updates_only_the_push_token_of_its_own_pass,
);

#[tokio::test]
async fn concurrent_downloads_of_a_new_version_sign_it_once() {
    let app = spawn_app(StoreKind::Embedded).await;
    let body = app.enroll("Anna", &crate::helpers::unique_phone()).await;
    let page = crate::helpers::path_of(body["card"]["card_url"].as_str().unwrap()).to_owned();
    let before = app.state.metrics.pass_builds.get();
    let statuses: Vec<u16> = futures_util::stream::iter(0..20)
        .map(|_| async { app.get(&format!("{page}/card.pkpass")).await.status().as_u16() })
        .buffer_unordered(20)
        .collect()
        .await;
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
    assert_eq!(app.state.metrics.pass_builds.get() - before, 1, "one signature for twenty downloads");
    let metrics = app.get_internal("/metrics").await.text().await.unwrap();
    assert!(metrics.contains("loy_pass_builds_total"), "the counter is exported");
}
