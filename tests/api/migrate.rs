//! `loy migrate --to-mongodb`: an embedded store with every kind of data moves into an empty
//! MongoDB database, and the server started on the copy carries on where the old one stopped:
//! outgoing events pending at the move are delivered after it, signed with the same secret.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use chrono::{Duration, Utc};
use loy::domain::{ApiKey, DeviceLibraryId, Role, Scope, SerialNumber, WebhookSource};
use loy::segments::rfm::Segment;
use loy::store::{
    CardLookup, DeadLetter, DeliveryState, FILE_CHUNK_BYTES, IdempotencyKey, IdempotencyRecord, ImportCounts,
    ImportJob, ImportState, MailState, OutboxMail, StoreResult, WebhookEndpoint, WebhookEvent,
};
use loy::webhooks::delivery::deliver_due;
use serde_json::json;
use sha2::Digest;

use crate::admin_helpers::{PASSWORD, session_cookie};
use crate::apple_support::{PASS_TYPE, apple_auth, new_pass, register, updated_serials};
use crate::helpers::{Answer, StoreKind, TestApp, TestEnv, random_suffix, spawn_app, spawn_app_in};
use crate::webhook_receiver::{Receiver, signature_valid};

const DEVICE: &str = "0123456789abcdef0123456789abcdef";

/// Runs `loy ARGS` with exactly the settings `vars`; returns (exit code, stdout, stderr).
fn loy(vars: &std::collections::HashMap<String, String>, args: &[&str]) -> (i32, String, String) {
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

/// SHA-256 of the store file and of its write-ahead log unless empty (SQLite removes an empty
/// log when the last connection closes).
fn fingerprint(dir: &Path) -> Vec<(PathBuf, String)> {
    ["loy.sqlite3", "loy.sqlite3-wal"]
        .iter()
        .map(|name| dir.join(name))
        .filter(|path| path.metadata().is_ok_and(|m| m.len() > 0))
        .map(|path| {
            let digest = sha2::Sha256::digest(std::fs::read(&path).unwrap());
            (path, digest.iter().map(|b| format!("{b:02x}")).collect())
        })
        .collect()
}

/// The fingerprint once nothing has been written for a while (some writes a request starts,
/// such as an API key's last use, finish after its answer).
async fn settled_fingerprint(dir: &Path) -> Vec<(PathBuf, String)> {
    let mut last = fingerprint(dir);
    for _ in 0..50 {
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        let now = fingerprint(dir);
        if now == last {
            return now;
        }
        last = now;
    }
    panic!("the embedded store keeps being written to after its server stopped");
}

fn mongo_uri() -> Option<String> {
    match StoreKind::mongo()? {
        StoreKind::Mongo { uri } => Some(uri),
        StoreKind::Embedded => None,
    }
}

/// What the old server had, to compare with the new one.
struct Seeded {
    staff_email: String,
    totp_email: String,
    session_cookie: String,
    pos_key: String,
    replay: (String, String, serde_json::Value, Answer),
    reversed_transaction: String,
    long_card: String,
    device_serial: String,
    mail_id: String,
    outgoing: Outgoing,
}

/// The outgoing events and console import seeded before the move.
struct Outgoing {
    endpoint: WebhookEndpoint,
    failed_delivery: String,
    import: ImportJob,
    import_file: Vec<u8>,
}

/// An endpoint (of `card.created` only) with a delivered and a failed delivery, and an import
/// job checked and waiting for the owner, with a file of three chunks. Every card created after
/// this leaves a `card.created` event pending: the old server's sender is never run again.
async fn seed_outgoing(app: &TestApp, receiver: &Receiver) -> Outgoing {
    let now = app.clock_now();
    let endpoint = loy::webhooks::endpoints::add(
        app.store.as_ref(),
        &app.state.settings.webhooks,
        &receiver.url,
        "card.created",
        now,
    )
    .await
    .expect("the endpoint is accepted");
    receiver.otherwise(200);
    let number = app.new_card().await;
    for _ in 0..500 {
        deliver_due(&app.state).await.unwrap();
        if !receiver.accepted().is_empty() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let delivered = app.store.endpoint_deliveries(&endpoint.id, None, 10).await.unwrap().remove(0);
    assert_eq!(delivered.state, DeliveryState::Delivered);
    let serial = app.card(&number).await.serial;
    let event = WebhookEvent {
        id: format!("evt_{}", random_suffix()),
        serial,
        kind: "card.created".into(),
        position: delivered.position + 1,
        created_at: now,
        body: delivered.body.clone(),
    };
    let failed = loy::store::WebhookDelivery {
        id: format!("dlv_{}", random_suffix()),
        event_id: event.id.clone(),
        state: DeliveryState::Failed,
        attempts: 7,
        position: event.position,
        last_status: Some(500),
        last_error: Some("HTTP 500".into()),
        ..delivered
    };
    app.store.fan_out(&[(event, vec![failed.clone()])]).await.unwrap();

    let file: Vec<u8> = (0..FILE_CHUNK_BYTES * 2 + 17).map(|i| (i % 251) as u8).collect();
    let now = loy::domain::card::stored_precision(now);
    let mut import = loy::import::jobs::new_job("default", "staff_1", "клиенты.csv", file.len() as u64, now);
    import.state = ImportState::Checked;
    import.attempts = 1;
    import.lines = 3;
    import.total = 3;
    import.checked = Some(ImportCounts { created: 3, updated: 0, skipped: 0, bad: 0 });
    app.store.insert_import_job(&import, &file).await.unwrap();
    Outgoing { endpoint, failed_delivery: failed.id, import, import_file: file }
}

/// On the new server: the endpoint, its deliveries and the import are as they were; the events
/// pending at the move and the replayed failed delivery arrive signed with the same secret.
async fn check_outgoing(new: &TestApp, receiver: &Receiver, seeded: &Outgoing, before: &OutgoingState) {
    assert_eq!(new.store.import_file(&seeded.import.id).await.unwrap().as_deref(), Some(&seeded.import_file[..]));
    let owner = new.signed_in(Role::Owner).await;
    let data = owner.get("/admin/data").await;
    assert_eq!(data.status, 200);
    assert!(data.body.contains(&format!("/admin/data/imports/{}", seeded.import.id)), "{}", data.body);

    let endpoint = &seeded.endpoint;
    let replay = format!("/admin/webhooks/{}/deliveries/{}/replay", endpoint.id, seeded.failed_delivery);
    assert_eq!(owner.post(&replay, &[]).await.status, 303);
    let pending: Vec<&WebhookEvent> = before.events.iter().filter(|e| e.kind == "card.created").collect();
    assert!(pending.len() >= 3, "cards created after the first delivery left events: {pending:?}");
    let already = receiver.accepted().len();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while receiver.accepted().len() < already + pending.len() + 1 {
        assert!(std::time::Instant::now() < deadline, "only got {:?}", receiver.received());
        deliver_due(&new.state).await.unwrap();
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let arrived = receiver.accepted().split_off(already);
    assert!(arrived.iter().all(|r| signature_valid(&endpoint.secret, &r.signature, &r.body)), "the same secret");
    let mut got: Vec<&str> = arrived.iter().map(|r| r.event_id.as_str()).collect();
    got.sort_unstable();
    let failed = before.deliveries.iter().find(|d| d.id == seeded.failed_delivery).unwrap();
    let mut expected: Vec<&str> = pending.iter().map(|e| e.id.as_str()).chain([failed.event_id.as_str()]).collect();
    expected.sort_unstable();
    assert_eq!(got, expected, "every pending event and the replay, once");
    assert!(new.store.events_to_fan_out(1000).await.unwrap().is_empty());
    let deliveries = new.store.endpoint_deliveries(&endpoint.id, None, 1000).await.unwrap();
    assert!(deliveries.iter().all(|d| d.state == DeliveryState::Delivered), "{deliveries:?}");
}

/// What the store holds of outgoing events and the import, in an order both stores agree on.
#[derive(Debug, PartialEq)]
struct OutgoingState {
    endpoint: Option<WebhookEndpoint>,
    events: Vec<WebhookEvent>,
    deliveries: Vec<loy::store::WebhookDelivery>,
    import: Option<ImportJob>,
}

async fn outgoing_state(app: &TestApp, seeded: &Outgoing) -> OutgoingState {
    let mut events = app.store.events_to_fan_out(100_000).await.unwrap();
    events.sort_by(|a, b| (a.position, &a.id).cmp(&(b.position, &b.id)));
    let mut deliveries = app.store.endpoint_deliveries(&seeded.endpoint.id, None, 1000).await.unwrap();
    deliveries.sort_by(|a, b| a.id.cmp(&b.id));
    OutgoingState {
        endpoint: app.store.webhook_endpoint(&seeded.endpoint.id).await.unwrap(),
        events,
        deliveries,
        import: app.store.import_job(&seeded.import.id).await.unwrap(),
    }
}

async fn seed(app: &TestApp, receiver: &Receiver) -> Seeded {
    let outgoing = seed_outgoing(app, receiver).await;
    let admin = app.api_key(Scope::Admin).await;
    let pos_key = app.api_key(Scope::Pos).await;
    // Expired points: an expiry run as of two days on, with a one-day expiry.
    let expiring = app.new_card().await;
    let mut program = app.store.program("default").await.unwrap().unwrap();
    program.rules.expiry_days = Some(1);
    let expired = loy::ledger::expiry::run(app.store.as_ref(), &program, app.clock_now() + Duration::days(2), None)
        .await
        .unwrap();
    assert!(expired > 0, "the welcome points expired");
    assert_eq!(app.balance(&expiring).await, 0);

    // Earns, redeems, a reversal, and a request to replay after the move.
    let number = app.card_with_balance(&admin, 1000).await;
    let earn = format!("/api/v1/cards/{number}/earn");
    let earned = app.pos_post(&earn, &pos_key, json!({"purchase_amount": 50_000})).await;
    assert_eq!(earned.status, 200, "{earned:?}");
    let redeemed = app.pos_post(format!("/api/v1/cards/{number}/redeem"), &pos_key, json!({"points": 300})).await;
    assert_eq!(redeemed.status, 200, "{redeemed:?}");
    let transaction = earned.body["transaction_id"].as_str().unwrap().to_owned();
    let reversed = app
        .pos_post(format!("/api/v1/transactions/{transaction}/reverse"), &pos_key, json!({"reason": "refund"}))
        .await;
    assert_eq!(reversed.status, 200, "{reversed:?}");
    let key = random_suffix();
    let body = json!({"purchase_amount": 12_000, "order_id": "before-the-move"});
    let answer = app.pos(reqwest::Method::POST, &earn, Some(&pos_key), Some(&key), Some(&body)).await;
    assert_eq!(answer.status, 200, "{answer:?}");

    // A card with more entries than a MongoDB card remembers the ids of.
    let long_card = app.new_card().await;
    for i in 0..70 {
        let answer = app
            .pos_post(format!("/api/v1/cards/{long_card}/earn"), &pos_key, json!({"purchase_amount": 1000 + i}))
            .await;
        assert_eq!(answer.status, 200, "{answer:?}");
    }

    // A registered device.
    let pass = new_pass(app).await;
    let registered = register(app, DEVICE, &pass.serial(), Some(&apple_auth(&pass.token())), &"ab".repeat(32)).await;
    assert_eq!(registered.status(), 201);

    // Staff: an owner signed in (a session and audit entries), one with a second factor.
    let owner = app.staff_account(Role::Owner).await;
    let signed_in = app.admin_login(&owner.email, PASSWORD).await;
    assert_eq!(signed_in.status, 303, "{}", signed_in.body);
    let (cookie, _) = session_cookie(&signed_in.headers).unwrap();
    let mut with_totp = app.staff_account(Role::Manager).await;
    with_totp.totp_secret = Some("JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP".into());
    with_totp.recovery_codes = vec!["hash-of-code-1".into(), "hash-of-code-2".into()];
    assert!(app.store.update_staff(&with_totp).await.unwrap());

    // The rest of what the store keeps.
    let now = app.clock_now();
    let (revoked, _) = ApiKey::generate("old till", Scope::Pos, now);
    app.store.insert_api_key(&revoked).await.unwrap();
    assert!(app.store.revoke_api_key(&revoked.id, now).await.unwrap());
    let source = WebhookSource::generate("till system", now);
    app.store.insert_webhook_source(&source).await.unwrap();
    let serial = app.card(&number).await.serial;
    let mail = OutboxMail {
        id: format!("mail_{}", random_suffix()),
        kind: "welcome".into(),
        serial: serial.clone(),
        recipient: "anna@example.com".into(),
        locale: "ru".into(),
        state: MailState::Pending,
        attempts: 1,
        next_attempt_at: now,
        last_error: Some("451 try later".into()),
        created_at: now,
        updated_at: now,
    };
    app.store.enqueue_mail(&mail).await.unwrap();
    let letter = DeadLetter {
        id: format!("dl_{}", random_suffix()),
        serial: serial.clone(),
        version: 3,
        target: "apns".into(),
        reason: "BadDeviceToken".into(),
        attempts: 5,
        first_failure_at: now,
        created_at: now,
    };
    app.store.insert_dead_letter(&letter).await.unwrap();
    app.store.record_google_sync(&serial, 4, 1234, Some(now)).await.unwrap();
    app.store.record_login_failure("someone@example.com", now, now - Duration::hours(1)).await.unwrap();
    app.store.insert_setup_token("setup-token-hash", now + Duration::hours(1)).await.unwrap();
    // An idempotency record past its window is not worth moving.
    let old = IdempotencyRecord {
        key: IdempotencyKey { scope: "k_old".into(), key: "old".into() },
        request_hash: "h".into(),
        entry_id: "tx_old".into(),
        lease_until: now - Duration::days(3),
        response: None,
        created_at: now - Duration::days(3),
        expires_at: now - Duration::days(2),
    };
    app.store.idempotency_start(&old).await.unwrap();

    Seeded {
        staff_email: owner.email,
        totp_email: with_totp.email,
        session_cookie: cookie,
        pos_key,
        replay: (earn, key, body, answer),
        reversed_transaction: transaction,
        long_card,
        device_serial: pass.serial(),
        mail_id: mail.id,
        outgoing,
    }
}

/// Every card's serial and balance.
async fn balances(app: &TestApp) -> BTreeMap<String, i64> {
    let cards = app.store.cards_after(None, 10_000).await.unwrap();
    cards.into_iter().map(|c| (c.serial.as_str().to_owned(), c.balance)).collect()
}

async fn everything_else(app: &TestApp, mail_id: &str) -> StoreResult<String> {
    let s = &app.store;
    let staff = s.staff_list().await?;
    let audit = s.audit_entries(&Default::default(), 1000).await?;
    let keys = s.api_keys().await?;
    let sources = s.webhook_sources().await?;
    let mail = s.mail(mail_id).await?;
    let letters = s.dead_letters(100).await?;
    let serials: Vec<SerialNumber> =
        s.cards_after(None, 10_000).await?.into_iter().map(|c| c.serial).collect::<Vec<_>>();
    let mut google = Vec::new();
    let mut registrations = Vec::new();
    let mut push_generations = Vec::new();
    for serial in &serials {
        google.push(s.google_sync(serial).await?);
        registrations.push(s.card_registrations(serial).await?);
        push_generations.push(s.push_generation(serial).await?);
    }
    let failures = s.login_failures("someone@example.com", Utc::now() - Duration::days(1)).await?;
    let setup = s.setup_token_valid("setup-token-hash", Utc::now()).await?;
    let step = s.data_step_done(loy::enrollment::phones::STEP).await?;
    Ok(format!(
        "{staff:?}\n{audit:?}\n{keys:?}\n{sources:?}\n{mail:?}\n{letters:?}\n{google:?}\n{registrations:?}\n\
         {push_generations:?}\n{failures:?}\n{setup}\n{step:?}"
    ))
}

type Segments = (Vec<(Segment, u64)>, Option<loy::store::segments::CardSegment>, Vec<loy::domain::SerialNumber>);

/// Computes the default program's segments, then reads them as [`segments_of_stored`] does.
async fn segments_of(app: &TestApp, serial: &loy::domain::SerialNumber) -> Segments {
    use loy::segments::compute::{Lease, Options, compute};
    let program = app.store.program("default").await.unwrap().unwrap();
    let lease = Lease::new(chrono::Duration::minutes(2));
    compute(app.store.as_ref(), app.clock.as_ref(), &program, &lease, Options { window_days: 365, batch: 100 })
        .await
        .unwrap();
    segments_of_stored(app, serial).await
}

/// The counts, one card's scores and the members of its segment.
async fn segments_of_stored(app: &TestApp, serial: &loy::domain::SerialNumber) -> Segments {
    let card = app.store.card_segment(serial).await.unwrap();
    let segment = card.as_ref().expect("the card is scored").segment;
    let members = app.store.segment_members("default", segment, None, 1000).await.unwrap();
    (app.store.segment_counts("default").await.unwrap(), card, members)
}

#[tokio::test]
async fn an_embedded_store_moves_to_mongodb_and_the_server_carries_on_there() {
    let Some(uri) = mongo_uri() else { return };
    let receiver = Receiver::start().await;
    let old = spawn_app(StoreKind::Embedded).await;
    let seeded = seed(&old, &receiver).await;
    let before_balances = balances(&old).await;
    let before_rest = everything_else(&old, &seeded.mail_id).await.unwrap();
    let before_outgoing = outgoing_state(&old, &seeded.outgoing).await;
    let entry_ids: Vec<String> = old.entries(&seeded.long_card).await.into_iter().map(|e| e.id).collect();
    let long_serial = old.card(&seeded.long_card).await.serial;
    let segments_before = segments_of(&old, &long_serial).await;
    let env = old.stop().await;
    let data_dir = PathBuf::from(&env.vars["LOY_DATA_DIR"]);
    let fingerprint_before = settled_fingerprint(&data_dir).await;
    let database = format!("loy_test_{}", random_suffix());

    let (code, stdout, stderr) = loy(&env.vars, &["migrate", "--to-mongodb", &uri, "--database", &database]);

    assert_eq!(code, 0, "stdout:\n{stdout}\nstderr:\n{stderr}");
    assert!(stdout.contains("Verified:"), "{stdout}");
    assert!(stdout.contains("1 idempotency records past their window were left behind"), "{stdout}");
    assert!(stderr.contains("loy migrate:"), "progress goes to stderr: {stderr}");
    assert_eq!(fingerprint(&data_dir), fingerprint_before, "the embedded store is only read");

    let mut env = TestEnv { vars: env.vars, dir: env.dir };
    env.set("LOY_MONGODB_URI", &uri).set("LOY_MONGODB_DATABASE", &database);
    let new = spawn_app_in(env).await;
    assert_eq!(new.store.backend(), loy::store::Backend::MongoDb);
    assert_eq!(balances(&new).await, before_balances, "every card with its balance");
    new.assert_ledger_consistent().await;
    assert_eq!(everything_else(&new, &seeded.mail_id).await.unwrap(), before_rest);
    assert_eq!(outgoing_state(&new, &seeded.outgoing).await, before_outgoing, "events, deliveries, the import");
    assert_eq!(segments_of_stored(&new, &long_serial).await, segments_before, "customer segments");
    let totp = new.store.staff_by_email(&seeded.totp_email).await.unwrap().unwrap();
    assert_eq!(totp.totp_secret.as_deref(), Some("JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"));
    let mail = new.store.mail(&seeded.mail_id).await.unwrap().unwrap();
    assert_eq!(mail.state, MailState::Pending);

    // Staff sign in with their password; a session opened before the move is still valid.
    new.sign_in(&seeded.staff_email, PASSWORD).await;
    new.staff_with_cookie(&seeded.staff_email, seeded.session_cookie.clone()).await;
    // The same API key; the replay of an earlier request gets its stored answer, once.
    let (path, key, body, answer) = &seeded.replay;
    let number = path.trim_start_matches("/api/v1/cards/").trim_end_matches("/earn");
    let balance = new.balance(number).await;
    let replayed = new.pos(reqwest::Method::POST, path, Some(&seeded.pos_key), Some(key), Some(body)).await;
    assert_eq!(&replayed, answer, "the stored answer");
    assert_eq!(new.balance(number).await, balance, "and nothing written again");
    // A transaction reversed before the move cannot be reversed again.
    let again = new
        .pos_post(
            format!("/api/v1/transactions/{}/reverse", seeded.reversed_transaction),
            &seeded.pos_key,
            json!({"reason": "twice"}),
        )
        .await;
    assert_eq!((again.status, again.body["error"]["code"].as_str()), (409, Some("already_reversed")), "{again:?}");
    // Every entry of a long ledger is recognised as committed, and a new one is not.
    let long = new.card(&seeded.long_card).await;
    for id in &entry_ids {
        let read = new.store.card_for_write(CardLookup::Serial(&long.serial), id).await.unwrap().unwrap();
        assert_eq!(read.existing.map(|e| e.id).as_deref(), Some(id.as_str()));
    }
    let fresh = new.store.card_for_write(CardLookup::Serial(&long.serial), "tx_new").await.unwrap().unwrap();
    assert!(fresh.existing.is_none());
    // New writes go on.
    let earned = new
        .pos_post(format!("/api/v1/cards/{}/earn", seeded.long_card), &seeded.pos_key, json!({"purchase_amount": 5000}))
        .await;
    assert_eq!(earned.status, 200, "{earned:?}");
    // The registered device still gets its pass list.
    let listed = updated_serials(&new, DEVICE, None).await;
    assert_eq!(listed.status(), 200);
    let listed: serde_json::Value = listed.json().await.unwrap();
    assert_eq!(listed["serialNumbers"], json!([seeded.device_serial]));
    let device = DeviceLibraryId::parse(DEVICE).unwrap();
    let cards = new.store.device_cards(&device, &loy::domain::PassTypeId::parse(PASS_TYPE).unwrap()).await.unwrap();
    assert_eq!(cards.len(), 1);
    check_outgoing(&new, &receiver, &seeded.outgoing, &before_outgoing).await;
    new.assert_ledger_consistent().await;
    receiver.stop().await;
}

#[tokio::test]
async fn a_database_that_holds_documents_is_refused_and_left_as_it_was() {
    let Some(uri) = mongo_uri() else { return };
    let old = spawn_app(StoreKind::Embedded).await;
    old.new_card().await;
    let env = old.stop().await;
    let target = spawn_app(StoreKind::Mongo { uri: uri.clone() }).await;
    let number = target.new_card().await;
    let database = target.env.vars["LOY_MONGODB_DATABASE"].clone();

    let (code, stdout, stderr) = loy(&env.vars, &["migrate", "--to-mongodb", &uri, "--database", &database]);

    assert_eq!(code, 1, "stdout:\n{stdout}\nstderr:\n{stderr}");
    assert!(stderr.contains("is not empty"), "{stderr}");
    assert!(stderr.contains("cards"), "names what is there: {stderr}");
    assert_eq!(target.store.cards_after(None, 100).await.unwrap().len(), 1, "nothing was added");
    assert_eq!(target.card(&number).await.balance, 100);
}

#[tokio::test]
async fn a_missing_store_is_refused_before_anything_is_written() {
    let Some(uri) = mongo_uri() else { return };
    let env = TestEnv::new(&StoreKind::Embedded);
    let database = format!("loy_test_{}", random_suffix());

    let (code, _, stderr) = loy(&env.vars, &["migrate", "--to-mongodb", &uri, "--database", &database]);

    assert_eq!(code, 1);
    assert!(stderr.contains("there is no embedded store"), "{stderr}");
}

#[tokio::test]
async fn a_store_with_a_table_the_migrator_does_not_know_is_refused() {
    let old = spawn_app(StoreKind::Embedded).await;
    old.new_card().await;
    let env = old.stop().await;
    let path = PathBuf::from(&env.vars["LOY_DATA_DIR"]).join("loy.sqlite3");
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.execute_batch("CREATE TABLE loyalty_notes (id TEXT PRIMARY KEY)").unwrap();
    drop(conn);

    // Nothing listens on port 1: the refusal comes before any connection.
    let (code, _, stderr) =
        loy(&env.vars, &["migrate", "--to-mongodb", "mongodb://127.0.0.1:1/", "--database", "never_written"]);

    assert_eq!(code, 1);
    assert!(stderr.contains("tables loy migrate does not know how to copy: loyalty_notes"), "{stderr}");
}
