//! The `loy` binary's operator commands, run against the same store as a running server.

use std::process::Command;

use loy::domain::Scope;
use serde_json::json;

use crate::helpers::{StoreKind, TestApp, spawn_app};
use crate::on_both_stores;

on_both_stores!(
    api_keys_created_on_the_command_line_work_at_once_and_revoking_stops_them,
    check_ledger_passes_on_consistent_data_and_fails_on_a_mismatch,
    programs_are_created_listed_shown_and_archived_from_the_command_line,
);

/// Runs `loy ARGS` with the test app's settings; returns (exit code, stdout, stderr).
pub fn loy(app: &TestApp, args: &[&str]) -> (i32, String, String) {
    loy_with(&app.env.vars, args)
}

/// Runs `loy ARGS` with exactly the settings `vars`.
fn loy_with(vars: &std::collections::HashMap<String, String>, args: &[&str]) -> (i32, String, String) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_loy"));
    for (name, _) in std::env::vars().filter(|(name, _)| name.starts_with("LOY_")) {
        command.env_remove(name);
    }
    command.envs(vars).args(args);
    let output = command.output().expect("the loy binary runs");
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

async fn api_keys_created_on_the_command_line_work_at_once_and_revoking_stops_them(kind: StoreKind) {
    let app = spawn_app(kind).await;
    let number = app.new_card().await;

    let (code, stdout, stderr) = loy(&app, &["api-key", "create", "--name", "Till 1"]);

    assert_eq!(code, 0, "{stderr}");
    let key = stdout.lines().last().unwrap().trim().to_owned();
    assert!(key.starts_with("loy_"), "the key is alone on the last line: {stdout}");
    let lookup = app.pos_get(&format!("/api/v1/cards/{number}"), &key).await;
    assert_eq!(lookup.status, 200, "the running server accepts the new key");
    let adjust =
        app.pos_post(format!("/api/v1/cards/{number}/adjust"), &key, json!({"points": 5, "reason": "x"})).await;
    assert_eq!(adjust.status, 403, "pos is the default scope");

    let (_, admin_out, _) = loy(&app, &["api-key", "create", "--name", "Back office", "--scope", "admin"]);
    let admin = admin_out.lines().last().unwrap().trim().to_owned();
    assert_eq!(
        app.pos_post(format!("/api/v1/cards/{number}/adjust"), &admin, json!({"points": 5, "reason": "x"}))
            .await
            .status,
        200
    );

    let (code, listing, _) = loy(&app, &["api-key", "list"]);
    assert_eq!(code, 0);
    assert!(listing.contains("Till 1") && listing.contains("Back office"));
    assert!(!listing.contains(&key[15..]), "secrets are never listed");

    let id = key.split('_').nth(1).unwrap();
    let (code, _, _) = loy(&app, &["api-key", "revoke", id]);
    assert_eq!(code, 0);
    assert_eq!(app.pos_get(&format!("/api/v1/cards/{number}"), &key).await.status, 401);
    let (code, _, stderr) = loy(&app, &["api-key", "revoke", id]);
    assert_eq!(code, 1, "revoking twice says so: {stderr}");
    let (code, _, _) = loy(&app, &["api-key", "create", "--name", "x", "--scope", "root"]);
    assert_ne!(code, 0, "unknown scopes are refused");
}

async fn check_ledger_passes_on_consistent_data_and_fails_on_a_mismatch(kind: StoreKind) {
    let app = spawn_app(kind).await;
    let pos = app.api_key(Scope::Pos).await;
    let number = app.new_card().await;
    app.pos_post(format!("/api/v1/cards/{number}/earn"), &pos, json!({"purchase_amount": 100_000})).await;

    let (code, stdout, stderr) = loy(&app, &["check", "ledger"]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(stdout.contains("Ledger OK"), "{stdout}");

    // A balance changed behind the ledger's back.
    let mut card = app.card(&number).await;
    let version = card.version;
    card.balance += 5;
    assert!(app.store.update_card(&card, version).await.unwrap());

    let (code, stdout, _) = loy(&app, &["check", "ledger"]);
    assert_eq!(code, 1, "{stdout}");
    assert!(stdout.contains(&format!("MISMATCH card {}", card.serial)), "{stdout}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_letters_are_listed_and_replayed_from_the_command_line() {
    let Some(redis) = crate::helpers::redis_url() else { return };
    let app = crate::push::push_app(&crate::push::QueueKind::Redis(redis), &[]).await;
    let apns = std::sync::Arc::new(crate::push_fake::FakeApns::default());
    let workers = crate::push::start_workers(&app, &apns, 1);
    let number = app.new_card().await;
    let card = app.card(&number).await;
    let token = crate::push::register(&app, &card, "replayed-device").await;
    let letter = loy::store::DeadLetter {
        id: "dl_testletter0001".into(),
        serial: card.serial.clone(),
        version: card.version,
        target: "apns:replayed-device".into(),
        reason: "ServiceUnavailable (503)".into(),
        attempts: 12,
        first_failure_at: chrono::Utc::now(),
        created_at: chrono::Utc::now(),
    };
    app.store.insert_dead_letter(&letter).await.unwrap();

    let (code, listing, _) = loy(&app, &["push", "dead-letters", "list"]);
    assert_eq!(code, 0);
    assert!(
        listing.contains("dl_testletter0001") && listing.contains("apns:replayed-device") && listing.contains("503"),
        "{listing}"
    );

    let (code, out, err) = loy(&app, &["push", "dead-letters", "replay", "dl_testletter0001"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        crate::push_fake::eventually(std::time::Duration::from_secs(10), || apns.delivered_to(&token) == 1).await,
        "the replay pushed the device"
    );
    assert!(app.store.dead_letters(10).await.unwrap().is_empty());
    let (code, _, _) = loy(&app, &["push", "dead-letters", "replay", "dl_testletter0001"]);
    assert_eq!(code, 1, "an unknown id says so");
    workers.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn push_tools_explain_what_is_missing() {
    let app = crate::helpers::spawn_app(StoreKind::Embedded).await;
    let number = app.new_card().await;
    let serial = app.card(&number).await.serial;

    let (code, _, stderr) = loy(&app, &["worker"]);
    assert_eq!(code, 1);
    assert!(stderr.contains("LOY_REDIS_URL"), "{stderr}");
    let (code, _, stderr) = loy(&app, &["push", "card", serial.as_str()]);
    assert_eq!(code, 1);
    assert!(stderr.contains("neither APNs nor Google Wallet is configured"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_process_serves_its_metrics_and_stops_cleanly_on_sigterm() {
    let Some(redis) = crate::helpers::redis_url() else { return };
    let mut env = crate::helpers::TestEnv::new(&StoreKind::Embedded);
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    env.set("LOY_REDIS_URL", &redis)
        .set("LOY_REDIS_PREFIX", &format!("loytest{}", crate::helpers::random_suffix()))
        .set("LOY_BIND", &format!("127.0.0.1:{port}"));
    let mut command = Command::new(env!("CARGO_BIN_EXE_loy"));
    for (name, _) in std::env::vars().filter(|(name, _)| name.starts_with("LOY_")) {
        command.env_remove(name);
    }
    let mut child = command.envs(&env.vars).arg("worker").spawn().expect("loy worker starts");

    let client = reqwest::Client::new();
    let mut metrics = None;
    for _ in 0..200 {
        let request = client.get(format!("http://127.0.0.1:{port}/metrics")).bearer_auth(crate::helpers::METRICS_TOKEN);
        if let Ok(response) = request.send().await {
            metrics = Some(response.text().await.unwrap());
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let metrics = metrics.expect("the worker serves /metrics");
    assert!(metrics.contains("loy_push_queue_depth"), "{metrics}");
    assert!(metrics.contains("loy_push_jobs_in_flight"), "{metrics}");
    let anonymous = client.get(format!("http://127.0.0.1:{port}/metrics")).send().await.unwrap();
    assert_eq!(anonymous.status(), 401, "LOY_METRICS_TOKEN guards the worker's metrics too");
    assert_eq!(client.get(format!("http://127.0.0.1:{port}/healthz")).send().await.unwrap().status(), 200);

    let killed = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    assert!(killed.success());
    let status = tokio::task::spawn_blocking(move || child.wait()).await.unwrap().unwrap();
    assert!(status.success(), "the worker stops cleanly: {status:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_taken_while_the_server_writes_restores_into_a_consistent_store() {
    let app = spawn_app(StoreKind::Embedded).await;
    let pos = app.api_key(Scope::Pos).await;
    let mut numbers = Vec::new();
    for _ in 0..20 {
        numbers.push(app.new_card().await);
    }
    // Purchases keep coming in while the backup runs.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = tokio::spawn({
        let (client, base, pos, numbers, stop) =
            (app.client.clone(), app.address.clone(), pos.clone(), numbers.clone(), stop.clone());
        async move {
            let mut written = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let number = &numbers[written % numbers.len()];
                let response = client
                    .post(format!("{base}/api/v1/cards/{number}/earn"))
                    .bearer_auth(&pos)
                    .header("Idempotency-Key", format!("during-backup-{written}"))
                    .json(&json!({"purchase_amount": 12_345}))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(response.status(), 200);
                written += 1;
            }
            written
        }
    });
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let file = app.env.dir.path().join("backup.sqlite3");
    let file = file.to_str().unwrap().to_owned();
    let vars = app.env.vars.clone();
    let (code, out, err) = {
        let file = file.clone();
        tokio::task::spawn_blocking(move || loy_with(&vars, &["backup", &file])).await.unwrap()
    };
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let written = writer.await.unwrap();
    assert_eq!(code, 0, "{out}{err}");
    assert!(written > 0, "writes went on during the backup");
    assert!(out.contains("Backed up 20 cards"), "{out}");

    // A backup never overwrites; a restore never lands on an existing store.
    assert_eq!(loy(&app, &["backup", &file]).0, 1);
    assert_eq!(loy(&app, &["restore", &file]).0, 1);

    let fresh = tempfile::tempdir().unwrap();
    let mut restored = app.env.vars.clone();
    restored.insert("LOY_DATA_DIR".into(), fresh.path().display().to_string());
    let (code, out, err) = loy_with(&restored, &["restore", &file]);
    assert_eq!(code, 0, "{out}{err}");
    let (code, out, err) = loy_with(&restored, &["check", "ledger"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("Ledger OK: 20 cards"), "{out}");
    let (code, _, err) = loy_with(&restored, &["restore", app.env.dir.path().join("nothing").to_str().unwrap()]);
    assert_eq!(code, 1, "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn healthcheck_exits_zero_only_while_the_server_is_ready() {
    let app = spawn_app(StoreKind::Embedded).await;
    let mut vars = app.env.vars.clone();
    vars.insert("LOY_BIND".into(), format!("0.0.0.0:{}", app.address.rsplit(':').next().unwrap()));
    let (code, _, err) = tokio::task::spawn_blocking(move || loy_with(&vars, &["healthcheck"])).await.unwrap();
    assert_eq!(code, 0, "{err}");
    let mut vars = app.env.vars.clone();
    vars.insert("LOY_BIND".into(), "127.0.0.1:9".into());
    let (code, _, err) = tokio::task::spawn_blocking(move || loy_with(&vars, &["healthcheck"])).await.unwrap();
    assert_eq!(code, 1);
    assert!(err.contains("did not answer"), "{err}");
}

async fn programs_are_created_listed_shown_and_archived_from_the_command_line(kind: StoreKind) {
    let app = spawn_app(kind).await;

    let (code, stdout, stderr) = loy(
        &app,
        &["program", "create", "bakery", "--name", "Bakery on the corner", "--currency", "eur", "--locale", "en"],
    );

    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("Created program bakery") && stdout.contains("/p/bakery"), "{stdout}");
    let stored = app.store.program("bakery").await.unwrap().expect("created in the server's store");
    assert_eq!(
        (stored.name.as_str(), stored.currency.code.as_str(), stored.locale.map(|l| l.code()).unwrap_or_default()),
        ("Bakery on the corner", "EUR", "en")
    );
    let audit = crate::admin_helpers::audit_of(&app, None, "program.created").await;
    assert_eq!(audit[0].staff_email, "loy program create");

    let (code, _, stderr) = loy(&app, &["program", "create", "bakery", "--name", "Again"]);
    assert_eq!(code, 1);
    assert!(stderr.contains("a program with the id bakery exists"), "{stderr}");
    let args = ["program", "create", "coffee", "--name", "Coffee", "--mechanic", "stamps", "--stamps-per-reward", "40"];
    let (code, _, stderr) = loy(&app, &args);
    assert_eq!(code, 2);
    assert!(stderr.contains("stamps_per_reward: a reward needs from 2 to 30 stamps"), "{stderr}");
    let (code, _, stderr) = loy(&app, &["program", "create", "Bad Id", "--name", "X", "--currency", "RUBLES"]);
    assert_eq!(code, 2);
    assert!(stderr.contains("slug:") && stderr.contains("currency:"), "{stderr}");
    assert!(app.store.program("coffee").await.unwrap().is_none());
    let args = [
        "program",
        "create",
        "coffee",
        "--name",
        "Coffee",
        "--mechanic",
        "stamps",
        "--stamps-per-reward",
        "8",
        "--reward",
        "Free coffee",
    ];
    let (code, stdout, stderr) = loy(&app, &args);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("Stamp card: 8 stamps earn a reward: Free coffee"), "{stdout}");
    let coffee = app.store.program("coffee").await.unwrap().expect("created");
    let stamps = coffee.rules.stamp_rules().expect("a stamps program");
    assert_eq!(
        (stamps.stamps_per_reward, stamps.reward.en.as_str(), stamps.reward.ru.as_str()),
        (8, "Free coffee", "Free coffee")
    );
    let (code, shown, _) = loy(&app, &["program", "show", "coffee"]);
    assert_eq!(code, 0);
    assert!(shown.contains("mechanic            stamps") && shown.contains("stamps per reward         8"), "{shown}");

    let (code, listing, _) = loy(&app, &["program", "list"]);
    assert_eq!(code, 0);
    let lines: Vec<&str> = listing.lines().collect();
    assert!(lines[0].starts_with("ID") && lines[0].contains("CURRENCY") && lines[0].contains("STATUS"));
    let bakery = lines.iter().find(|l| l.starts_with("bakery ")).expect("listed");
    assert!(bakery.contains("EUR") && bakery.contains("active") && bakery.contains("Bakery on the corner"));
    assert!(lines.iter().any(|l| l.starts_with("default ")));

    let (code, shown, _) = loy(&app, &["program", "show", "default"]);
    assert_eq!(code, 0);
    for part in [
        "id                  default",
        "currency            RUB",
        "time zone           UTC",
        "bronze",
        "Бронза / Bronze",
        "5 %",
        "3000",
        "welcome bonus             100 points, at registration",
        "points expire             never",
        "referral minimum purchase 100.00 RUB",
    ] {
        assert!(shown.contains(part), "{part} in {shown}");
    }
    assert_eq!(loy(&app, &["program", "show", "nothing"]).0, 1);

    let (code, out, _) = loy(&app, &["program", "archive", "bakery"]);
    assert_eq!(code, 0, "{out}");
    assert!(app.store.program("bakery").await.unwrap().unwrap().archived_at.is_some());
    let (_, listing, _) = loy(&app, &["program", "list"]);
    assert!(listing.lines().any(|l| l.starts_with("bakery ") && l.contains("archived")), "{listing}");
    assert!(loy(&app, &["program", "show", "bakery"]).1.contains("archived since"));
    let (code, _, stderr) = loy(&app, &["program", "archive", "default"]);
    assert_eq!(code, 1);
    assert!(stderr.contains("cannot be archived"));
    let (code, _, _) = loy(&app, &["program", "unarchive", "bakery"]);
    assert_eq!(code, 0);
    assert!(app.store.program("bakery").await.unwrap().unwrap().archived_at.is_none());
    assert_eq!(crate::admin_helpers::audit_of(&app, None, "program.archived").await.len(), 1);
}
