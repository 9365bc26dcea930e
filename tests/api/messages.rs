//! Messages to the cards: the audience counted and reached once, the Apple pass's news field
//! announced on the lock screen, Google's message within the notification budget, the class
//! used for every card, resumable and cancellable fan-out, scheduled sends, and the API.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use loy::domain::{Card, Customer, DeviceLibraryId, Locale, PassTypeId, PersonName, Phone, PushToken, Registration};
use loy::domain::{Scope, TierRule};
use loy::messages::{Audience, Message, MessageState, MessageText};
use loy::push::PushRuntime;
use loy::store::CardLookup;
use serde_json::{Value, json};

use crate::google_fake::{FakeGoogle, TestKey, google_env, object_id};
use crate::helpers::{StoreKind, TestApp, TestEnv, random_suffix, spawn_app_in, unique_phone};
use crate::push::QueueKind;
use crate::push_fake::FakeApns;

/// Generous: a thousand cards through the MongoDB surrogate on a busy machine take a while, and
/// the waits end as soon as the message settles.
const WAIT: Duration = Duration::from_secs(240);

/// The default program with a Gold tier added.
async fn add_gold(app: &TestApp) {
    let mut program = app.store.program("default").await.unwrap().unwrap();
    if !program.rules.tiers.iter().any(|t| t.id == "gold") {
        program.rules.tiers.push(TierRule {
            id: "gold".into(),
            name_en: "Gold".into(),
            name_ru: "Золото".into(),
            threshold: 1_000_000,
            cashback_bp: 500,
        });
        assert!(app.state.save_program(&program, program.version).await.unwrap());
    }
}

/// `n` cards written straight to the store, every `gold_every`-th one in the Gold tier, each with
/// one registered iPhone and (when `google` is given) a Google object there and on record.
async fn cards(app: &TestApp, n: usize, gold_every: usize, google: Option<&FakeGoogle>) -> Vec<Card> {
    let program = app.store.program("default").await.unwrap().unwrap();
    let now = app.clock_now();
    let mut made = Vec::new();
    for i in 0..n {
        let holder = Customer {
            first_name: PersonName::parse("Anna").unwrap(),
            last_name: None,
            phone: Phone::parse(&unique_phone(), loy::domain::PhoneRegion::default()).unwrap(),
            email: None,
            birthday: None,
            locale: if i % 2 == 0 { Locale::En } else { Locale::Ru },
            consent_at: now,
        };
        let (mut card, welcome) = Card::enroll(&program, holder, None, now);
        if i % gold_every == 0 {
            card.tier = "gold".into();
        }
        app.store.insert_card(&card, &welcome).await.unwrap();
        let registration = Registration {
            device_library_id: DeviceLibraryId::parse(&format!("dev{i}{}", random_suffix())).unwrap(),
            pass_type_id: PassTypeId::parse(crate::apple_support::PASS_TYPE).unwrap(),
            serial: card.serial.clone(),
            push_token: PushToken::parse(&format!("{:064x}", i + 1)).unwrap(),
            pushed_version: card.version,
            created_at: now,
            updated_at: now,
        };
        app.store.register_device(&registration, 10).await.unwrap();
        if let Some(fake) = google {
            let id = object_id(card.serial.as_str());
            let object = json!({"id": id, "classId": crate::google_fake::class_id(), "state": "ACTIVE"});
            fake.put_object(&id, object);
            app.store.record_google_sync(&card.serial, card.version, card.balance, None).await.unwrap();
        }
        made.push(card);
    }
    made
}

async fn message_app(queue: &QueueKind, google: Option<&FakeGoogle>) -> TestApp {
    message_app_paced(queue, google, 1000).await
}

/// The application with Google taking `google_per_second` calls a second.
async fn message_app_paced(queue: &QueueKind, google: Option<&FakeGoogle>, google_per_second: u32) -> TestApp {
    let mut env = match google {
        Some(fake) => google_env(&queue.store(), fake),
        None => TestEnv::new(&queue.store()),
    };
    env.set("LOY_PUSH_COALESCE_MS", "50")
        .set("LOY_PUSH_POLL_MS", "5")
        .set("LOY_PUSH_BACKOFF_MS", "50")
        .set("LOY_GOOGLE_REQUESTS_PER_SECOND", &google_per_second.to_string())
        .set("LOY_MESSAGE_CARDS_PER_SECOND", "100000");
    queue.configure(&mut env);
    spawn_app_in(env).await
}

fn google_fake() -> FakeGoogle {
    FakeGoogle::start(crate::google_fake::CLIENT_EMAIL, &TestKey::shared().public_pem, crate::google_fake::ISSUER_ID)
}

fn workers(app: &TestApp, apns: &Arc<FakeApns>) -> PushRuntime {
    PushRuntime::start(Arc::new(app.state.worker(Some(apns.clone()), crate::push::TOPIC)), 2)
}

fn text(en: &str, ru: &str) -> Value {
    json!({ "en": en, "ru": ru })
}

async fn send(app: &TestApp, key: &str, body: Value) -> Value {
    let answer = app.pos_post("/api/v1/messages", key, &body).await;
    assert_eq!(answer.status, 201, "{answer:?}");
    answer.body
}

async fn progress(app: &TestApp, key: &str, id: &str) -> Value {
    let answer = app.pos_get(&format!("/api/v1/messages/{id}"), key).await;
    assert_eq!(answer.status, 200, "{answer:?}");
    answer.body
}

/// Waits until no send of the message is queued any more, and returns its progress.
async fn settled(app: &TestApp, key: &str, id: &str) -> Value {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let p = progress(app, key, id).await;
        let queued =
            p["progress"]["apple"]["queued"].as_u64().unwrap() + p["progress"]["google"]["queued"].as_u64().unwrap();
        if p["state"] == "sent" && queued == 0 {
            return p;
        }
        assert!(tokio::time::Instant::now() < deadline, "the message did not settle: {p}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

crate::on_every_queue!(a_message_to_the_gold_tier_reaches_each_gold_phone_once_on_both_wallets);

async fn a_message_to_the_gold_tier_reaches_each_gold_phone_once_on_both_wallets(queue: QueueKind) {
    let fake = google_fake();
    let app = message_app(&queue, Some(&fake)).await;
    add_gold(&app).await;
    let apns = Arc::new(FakeApns::default());
    let runtime = workers(&app, &apns);
    // 1 000 cards, 500 of them Gold; 300 on MongoDB, whose surrogate here takes tens of
    // milliseconds per write (setting up 1 000 cards there alone would take a minute and a half).
    let n = if matches!(queue, QueueKind::RedisOnMongo { .. }) { 300 } else { 1_000 };
    let all = cards(&app, n, 2, Some(&fake)).await;
    let gold: Vec<&Card> = all.iter().filter(|c| c.tier == "gold").collect();
    let key = app.api_key(Scope::Admin).await;

    let body = json!({
        "title": text("Double points", "Двойные баллы"),
        "text": text("Double points this weekend", "Двойные баллы в эти выходные"),
        "audience": {"kind": "tier", "tier": "gold"},
    });
    let written = send(&app, &key, body).await;
    assert_eq!(written["audience_size"], n / 2);
    let id = written["id"].as_str().unwrap().to_owned();
    let done = settled(&app, &key, &id).await;

    assert_eq!(done["progress"]["cards"], n / 2);
    assert_eq!(done["progress"]["apple"], json!({"queued": 0, "delivered": n / 2, "failed": 0}));
    assert_eq!(done["progress"]["google"], json!({"queued": 0, "delivered": n / 2, "failed": 0}));
    // Each Gold phone pushed once, no other phone at all.
    for (i, card) in all.iter().enumerate() {
        let token = format!("{:064x}", i + 1);
        let expected = usize::from(card.tier == "gold");
        assert_eq!(apns.delivered_to(&token), expected, "card {i}");
    }
    // Each Gold card's Google object got the message once, announced (a fresh budget).
    for card in &gold {
        let object = fake.object(&object_id(card.serial.as_str())).expect("the object exists");
        let messages: Vec<&Value> =
            object["messages"].as_array().unwrap().iter().filter(|m| m["id"] == id.as_str()).collect();
        assert_eq!(messages.len(), 1, "{object}");
        assert_eq!(messages[0]["messageType"], "TEXT_AND_NOTIFY");
        let expected = if card.locale() == Locale::Ru {
            "Двойные баллы в эти выходные"
        } else {
            "Double points this weekend"
        };
        assert_eq!(messages[0]["body"], expected);
    }
    // The message was all that changed on the objects: one call per card, no update before it.
    let object_calls = fake.requests().into_iter().filter(|r| r.path.starts_with("loyaltyObject")).count();
    assert_eq!(object_calls, n / 2, "one addMessage per Gold card and nothing else");
    fake.assert_clean();
    // The card carries the news, one version up.
    let first = app.store.find_card(CardLookup::Serial(&gold[0].serial)).await.unwrap().unwrap();
    assert_eq!(first.version, gold[0].version + 1);
    assert_eq!(first.news.as_ref().unwrap().message_id, id);
    let metrics = app.get_internal("/metrics").await.text().await.unwrap();
    let delivered = format!(r#"loy_messages_sent_total{{result="delivered",wallet="apple"}} {}"#, n / 2);
    assert!(metrics.contains(&delivered), "{metrics}");
    runtime.stop().await;
}

crate::on_every_queue!(past_the_budget_google_gets_it_silently_and_every_card_gets_it_through_the_class);

async fn past_the_budget_google_gets_it_silently_and_every_card_gets_it_through_the_class(queue: QueueKind) {
    let fake = google_fake();
    let app = message_app(&queue, Some(&fake)).await;
    let apns = Arc::new(FakeApns::default());
    let runtime = workers(&app, &apns);
    let all = cards(&app, 2, 1, Some(&fake)).await;
    let key = app.api_key(Scope::Admin).await;
    // The first card was announced three times in the last hours: Google's budget is spent.
    let now = app.clock_now();
    for hours in [1, 2, 3] {
        app.store
            .record_google_sync(&all[0].serial, all[0].version, 100, Some(now - chrono::Duration::hours(hours)))
            .await
            .unwrap();
    }
    let serial = all[0].serial.as_str();
    let one = send(&app, &key, json!({"text": text("Just for you", "Только для вас"), "audience": {"kind": "customer", "card": all[0].card_number.as_str()}})).await;
    let one_id = one["id"].as_str().unwrap().to_owned();
    assert_eq!(one["audience_size"], 1);
    settled(&app, &key, &one_id).await;
    let object = fake.object(&object_id(serial)).unwrap();
    let message = object["messages"].as_array().unwrap().iter().find(|m| m["id"] == one_id.as_str()).unwrap().clone();
    assert_eq!(message["messageType"], "TEXT", "over the budget the message is silent");

    // Every card of the program: one call on the class, none per object.
    let everyone =
        send(&app, &key, json!({"text": text("We open at 8", "Открываемся в 8"), "audience": {"kind": "all"}})).await;
    let id = everyone["id"].as_str().unwrap().to_owned();
    let done = settled(&app, &key, &id).await;
    assert_eq!(done["progress"]["google_class"], 2);
    assert_eq!(done["progress"]["apple"]["delivered"], 2);
    let class_calls: Vec<_> = fake
        .requests()
        .into_iter()
        .filter(|r| r.path.ends_with("addMessage") && r.path.starts_with("loyaltyClass"))
        .collect();
    assert_eq!(class_calls.len(), 1);
    assert_eq!(class_calls[0].body["message"]["localizedBody"]["translatedValues"][1]["value"], "Открываемся в 8");
    for card in &all {
        let Some(object) = fake.object(&object_id(card.serial.as_str())) else { continue };
        let ids: Vec<&Value> =
            object["messages"].as_array().into_iter().flatten().filter(|m| m["id"] == id.as_str()).collect();
        assert!(ids.is_empty(), "no object call for a class message: {object}");
    }
    fake.assert_clean();
    runtime.stop().await;
}

crate::on_every_queue!(a_card_changed_before_its_message_is_brought_up_to_date_on_google_first);

async fn a_card_changed_before_its_message_is_brought_up_to_date_on_google_first(queue: QueueKind) {
    let fake = google_fake();
    let app = message_app(&queue, Some(&fake)).await;
    let all = cards(&app, 2, 1, Some(&fake)).await;
    let key = app.api_key(Scope::Admin).await;
    // Both passes are saved in Google Wallet (Google said so in a callback); the first card
    // changed and Google has not been told yet when the message comes.
    for card in &all {
        saved_in_google(&app, card).await;
    }
    loy::store::bump_version(app.store.as_ref(), &all[0].serial, Utc::now()).await.unwrap();
    let body = json!({"text": text("News", "Новости"), "audience": {"kind": "wallet", "wallet": "google"}});
    let id = send(&app, &key, body).await["id"].as_str().unwrap().to_owned();
    while app.store.message(&id).await.unwrap().unwrap().state != MessageState::Sent {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let apns = Arc::new(FakeApns::default());
    let runtime = workers(&app, &apns);
    let done = settled(&app, &key, &id).await;
    assert_eq!(done["progress"]["google"], json!({"queued": 0, "delivered": 2, "failed": 0}));
    let calls = |serial: &str| -> Vec<String> {
        let path = format!("loyaltyObject/{}", object_id(serial));
        fake.requests().into_iter().filter(|r| r.path.starts_with(&path)).map(|r| r.method).collect()
    };
    assert_eq!(calls(all[0].serial.as_str()), ["PATCH", "POST"], "the change first, then the message");
    assert_eq!(calls(all[1].serial.as_str()), ["POST"], "only the message");
    fake.assert_clean();
    runtime.stop().await;
}

crate::on_every_queue!(the_iphones_are_not_held_back_by_googles_pace);

async fn the_iphones_are_not_held_back_by_googles_pace(queue: QueueKind) {
    let fake = google_fake();
    let app = message_app_paced(&queue, Some(&fake), 4).await;
    add_gold(&app).await;
    // Google takes 4 calls a second: its 24 messages need six seconds.
    let n = 24;
    let all = cards(&app, n, 1, Some(&fake)).await;
    let apns = Arc::new(FakeApns::default());
    let runtime = workers(&app, &apns);
    let key = app.api_key(Scope::Admin).await;
    let body = json!({"text": text("Double points", "Двойные баллы"), "audience": {"kind": "tier", "tier": "gold"}});
    let id = send(&app, &key, body).await["id"].as_str().unwrap().to_owned();
    let deadline = tokio::time::Instant::now() + WAIT;
    while (1..=n).any(|i| apns.delivered_to(&format!("{i:064x}")) == 0) {
        assert!(tokio::time::Instant::now() < deadline, "the iPhones were not pushed");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Every iPhone has its push while Google's messages still go out at Google's pace.
    let meanwhile = progress(&app, &key, &id).await;
    assert!(meanwhile["progress"]["google"]["queued"].as_u64().unwrap() > 0, "{meanwhile}");
    // Where they wait shows in /metrics.
    let metrics = app.get_internal("/metrics").await.text().await.unwrap();
    let lane: i64 = ["waiting", "leased"]
        .iter()
        .map(|state| {
            let prefix = format!("loy_google_lane_depth{{state=\"{state}\"}} ");
            let line =
                metrics.lines().find(|l| l.starts_with(&prefix)).unwrap_or_else(|| panic!("{prefix}: {metrics}"));
            line[prefix.len()..].parse::<i64>().unwrap()
        })
        .sum();
    assert!(lane > 0, "cards wait in the Google lane: {metrics}");
    let done = settled(&app, &key, &id).await;
    assert_eq!(done["progress"]["apple"], json!({"queued": 0, "delivered": n, "failed": 0}));
    assert_eq!(done["progress"]["google"], json!({"queued": 0, "delivered": n, "failed": 0}));
    // Each phone was pushed once, and every card ends up pushed on both wallets.
    for i in 1..=n {
        assert_eq!(apns.delivered_to(&format!("{i:064x}")), 1);
    }
    for card in &all {
        loop {
            let now = app.store.find_card(CardLookup::Serial(&card.serial)).await.unwrap().unwrap();
            if !now.needs_push() {
                break;
            }
            assert!(tokio::time::Instant::now() < deadline, "{} stays owed a push", card.serial);
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    fake.assert_clean();
    runtime.stop().await;
}

crate::on_both_stores!(
    the_pass_announces_the_news_field_alone_in_the_holders_language,
    a_fan_out_run_again_from_the_start_changes_nothing,
    a_cancelled_message_reaches_no_more_cards,
    a_scheduled_message_waits_for_its_time,
    audiences_count_what_they_say,
    the_api_refuses_what_it_cannot_send,
);

/// Google's save callback for `card`'s pass, as `google::callbacks` records it.
fn google_saved_event(card: &Card) -> loy::store::WalletEvent {
    loy::store::WalletEvent {
        id: format!("google:saved:{}", card.serial),
        serial: card.serial.clone(),
        program_id: card.program_id.clone(),
        wallet: loy::store::Wallet::Google,
        change: loy::store::WalletChange::Installed,
        at: Utc::now(),
        source: loy::store::WalletSource::Callback,
    }
}

async fn saved_in_google(app: &TestApp, card: &Card) {
    assert!(app.store.record_wallet_event(&google_saved_event(card)).await.unwrap());
}

/// A message straight through the store and the fan-out runner, without the API.
async fn write(app: &TestApp, audience: Audience, send_at: Option<chrono::DateTime<Utc>>) -> Message {
    let program = app.store.program("default").await.unwrap().unwrap();
    let text = MessageText {
        title: loy::domain::LocalizedText::new("Новости", "News"),
        body: loy::domain::LocalizedText::new("Скидка 10%", "10% off"),
        link: None,
    };
    loy::messages::compose::compose(&app.state, &program, text, audience, send_at, "staff:test".into()).await.unwrap()
}

async fn run(app: &TestApp) {
    loy::messages::fanout::run_due(&app.state).await.unwrap();
}

/// Runs due messages until `id` is on every card of its audience (a runner the write started in
/// the background may hold it meanwhile).
async fn run_until_sent(app: &TestApp, id: &str) -> Message {
    for _ in 0..1500 {
        run(app).await;
        let message = app.store.message(id).await.unwrap().unwrap();
        if message.state == MessageState::Sent {
            return message;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("message {id} never went out");
}

async fn the_pass_announces_the_news_field_alone_in_the_holders_language(kind: StoreKind) {
    let app = crate::helpers::spawn_app(kind).await;
    let all = cards(&app, 2, 1, None).await;
    let before: Vec<Value> = futures_util::future::join_all(all.iter().map(|c| pass_json(&app, c))).await;
    let message = write(&app, Audience::All, None).await;
    run_until_sent(&app, &message.id).await;
    for (card, before) in all.iter().zip(before) {
        let card = app.store.find_card(CardLookup::Serial(&card.serial)).await.unwrap().unwrap();
        let after = pass_json(&app, &card).await;
        let news = &after["storeCard"]["backFields"][0];
        assert_eq!(news["key"], "news");
        assert_eq!(news["changeMessage"], "%@");
        let expected = if card.locale() == Locale::Ru { "Скидка 10%" } else { "10% off" };
        assert_eq!(news["value"], expected);
        assert_eq!(card.news.as_ref().unwrap().message_id, message.id);
        // Nothing but the news field changed between the two versions.
        let strip = |mut v: Value| {
            v["storeCard"]["backFields"][0] = Value::Null;
            v
        };
        assert_eq!(strip(before), strip(after));
    }
}

/// `pass.json` of the card's current pass, as Wallet downloads it.
async fn pass_json(app: &TestApp, card: &Card) -> Value {
    let path = format!("/passkit/v1/passes/{}/{}", crate::apple_support::PASS_TYPE, card.serial.as_str());
    let response = app
        .client
        .get(app.url(&path))
        .header("Authorization", crate::apple_support::apple_auth(card.auth_token.expose()))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    crate::apple_support::Pkpass::parse(response.bytes().await.unwrap().to_vec()).pass_json()
}

async fn a_fan_out_run_again_from_the_start_changes_nothing(kind: StoreKind) {
    let mut env = TestEnv::new(&kind);
    env.set("LOY_MESSAGE_CARDS_PER_SECOND", "100000");
    let app = spawn_app_in(env).await;
    let all = cards(&app, 250, 1, None).await;
    let message = write(&app, Audience::All, None).await;
    let done = run_until_sent(&app, &message.id).await;
    assert_eq!(done.fan_out.reached, 250);
    // A node that died before saving its cursor leaves the message to be run again: a second
    // runner (the lease ended) starts from the beginning and must not give any card it twice.
    let mut replay = done.clone();
    replay.state = MessageState::Sending;
    replay.cursor = None;
    replay.fan_out = Default::default();
    assert!(app.store.save_message(&replay).await.unwrap());
    app.clock.advance(chrono::Duration::minutes(2));
    let again = run_until_sent(&app, &message.id).await;
    assert_eq!(again.fan_out.reached, 0, "no card got it a second time");
    for card in &all {
        let now = app.store.find_card(CardLookup::Serial(&card.serial)).await.unwrap().unwrap();
        assert_eq!(now.version, card.version + 1);
    }
    let counts = app.store.send_counts(&message.id).await.unwrap();
    assert_eq!(counts.cards, 250);
    assert_eq!(counts.apple.queued, 250, "no worker runs in this test: every iPhone send waits");
}

async fn a_cancelled_message_reaches_no_more_cards(kind: StoreKind) {
    let mut env = TestEnv::new(&kind);
    // 200 cards a batch, 100 cards a second: the second batch waits two seconds.
    env.set("LOY_MESSAGE_CARDS_PER_SECOND", "100");
    let app = spawn_app_in(env).await;
    cards(&app, 300, 1, None).await;
    let program = app.store.program("default").await.unwrap().unwrap();
    let message = Message::new(
        &program.id,
        MessageText { body: "Hello".into(), ..MessageText::default() },
        Audience::All,
        None,
        "staff:test".into(),
        app.clock_now(),
    );
    app.store.insert_message(&message).await.unwrap();
    let state = app.state.clone();
    let runner = tokio::spawn(async move { loy::messages::fanout::run_due(&state).await.unwrap() });
    let deadline = tokio::time::Instant::now() + WAIT;
    while app.store.send_counts(&message.id).await.unwrap().cards < 200 {
        assert!(tokio::time::Instant::now() < deadline, "the first batch never went out");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(app.store.cancel_message(&message.id, app.clock_now()).await.unwrap());
    runner.await.unwrap();
    let cancelled = app.store.message(&message.id).await.unwrap().unwrap();
    assert_eq!(cancelled.state, MessageState::Cancelled);
    let counts = app.store.send_counts(&message.id).await.unwrap();
    assert!(counts.cards < 300, "the cards after the cancellation never got it: {counts:?}");
    assert!(!app.store.cancel_message(&message.id, app.clock_now()).await.unwrap(), "cancelled once");
}

async fn a_scheduled_message_waits_for_its_time(kind: StoreKind) {
    let app = crate::helpers::spawn_app(kind).await;
    cards(&app, 3, 1, None).await;
    let at = app.clock_now() + chrono::Duration::hours(2);
    let message = write(&app, Audience::All, Some(at)).await;
    assert_eq!(message.state, MessageState::Scheduled);
    run(&app).await;
    assert_eq!(app.store.send_counts(&message.id).await.unwrap().cards, 0, "not before its time");
    app.clock.advance(chrono::Duration::hours(2));
    run_until_sent(&app, &message.id).await;
    assert_eq!(app.store.send_counts(&message.id).await.unwrap().cards, 3);
}

async fn audiences_count_what_they_say(kind: StoreKind) {
    let app = crate::helpers::spawn_app(kind).await;
    add_gold(&app).await;
    let all = cards(&app, 6, 3, None).await;
    let now = app.clock_now();
    let count = |a: Audience| {
        let store = app.store.clone();
        async move { a.count(&store, "default", now).await.unwrap() }
    };
    assert_eq!(count(Audience::All).await, 6);
    assert_eq!(count(Audience::Tier { tier: "gold".into() }).await, 2);
    assert_eq!(count(Audience::Tier { tier: all[1].tier.clone() }).await, 4);
    assert_eq!(count(Audience::Wallet { wallet: loy::messages::Wallet::Apple }).await, 6);
    assert_eq!(count(Audience::Wallet { wallet: loy::messages::Wallet::Google }).await, 0);
    // Google's callback says two passes were saved, and one of them deleted again.
    saved_in_google(&app, &all[0]).await;
    saved_in_google(&app, &all[1]).await;
    let deleted = loy::store::WalletEvent {
        id: format!("google:deleted:{}", all[1].serial),
        change: loy::store::WalletChange::Removed,
        at: Utc::now() + chrono::Duration::minutes(1),
        ..google_saved_event(&all[1])
    };
    assert!(app.store.record_wallet_event(&deleted).await.unwrap());
    assert_eq!(count(Audience::Wallet { wallet: loy::messages::Wallet::Google }).await, 1, "saved, not deleted");
    assert_eq!(count(Audience::Customer { serial: all[4].serial.as_str().into() }).await, 1);
    assert_eq!(count(Audience::Inactive { days: 30 }).await, 0);
    // Segments, once computed: the audience is the segment's cards.
    assert_eq!(count(Audience::Segment { segment: "new".into() }).await, 0, "before the first computation");
    loy::segments::runner::run_due(&app.state).await.unwrap();
    let counts = app.store.segment_counts("default").await.unwrap();
    let (segment, n) = counts.iter().find(|(_, n)| *n > 0).copied().expect("the cards are in a segment");
    assert_eq!(n, 6);
    assert_eq!(count(Audience::Segment { segment: segment.as_str().into() }).await, 6);
    let member = Audience::Segment { segment: segment.as_str().into() };
    assert!(member.includes(&app.store, &all[0], now).await.unwrap());
    let other = if segment.as_str() == "lost" { "champions" } else { "lost" };
    assert!(!Audience::Segment { segment: other.into() }.includes(&app.store, &all[0], now).await.unwrap());
    app.clock.advance(chrono::Duration::days(31));
    let later = app.clock_now();
    assert_eq!(Audience::Inactive { days: 30 }.count(&app.store, "default", later).await.unwrap(), 6);
    // A customer with a birthday this month, through the registration form's API.
    let key = app.enrollment_key().await;
    let month = later.format("%m").to_string();
    let answer = app
        .client
        .post(app.url("/api/v1/enrollments"))
        .bearer_auth(key)
        .json(&json!({"first_name": "Vera", "phone": unique_phone(), "birthday": format!("1990-{month}-15"), "consent": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 201, "{}", answer.text().await.unwrap());
    assert_eq!(
        Audience::birthdays_this_month(loy::domain::TimeZone::UTC, later)
            .count(&app.store, "default", later)
            .await
            .unwrap(),
        1
    );
}

async fn the_api_refuses_what_it_cannot_send(kind: StoreKind) {
    let app = crate::helpers::spawn_app(kind).await;
    let admin = app.api_key(Scope::Admin).await;
    let pos = app.api_key(Scope::Pos).await;
    let ok = json!({"text": text("Hi", "Привет"), "audience": {"kind": "all"}});
    assert_eq!(app.pos_post("/api/v1/messages", &pos, &ok).await.status, 403);
    let no_key = app.pos(reqwest::Method::POST, "/api/v1/messages", Some(&admin), None, Some(&ok)).await;
    assert_eq!(no_key.status, 400);
    for (body, field) in [
        (json!({"text": text("", ""), "audience": {"kind": "all"}}), "text"),
        (json!({"text": {"en": "x".repeat(201)}, "audience": {"kind": "all"}}), "text"),
        (json!({"text": text("Hi", "Привет"), "link": "http://example.com", "audience": {"kind": "all"}}), "link"),
        (json!({"text": text("Hi", "Привет"), "audience": {"kind": "tier", "tier": "diamond"}}), "audience"),
        (json!({"text": text("Hi", "Привет"), "audience": {"kind": "inactive", "days": 0}}), "audience"),
        (json!({"text": text("Hi", "Привет"), "audience": {"kind": "everyone"}}), "audience"),
        (json!({"text": text("Hi", "Привет"), "audience": {"kind": "segment", "segment": "vip"}}), "audience"),
        (json!({"text": text("Hi", "Привет"), "audience": {"kind": "birthday_on", "month": 1, "day": 2}}), "audience"),
    ] {
        let answer = app.pos_post("/api/v1/messages", &admin, &body).await;
        assert_eq!(answer.status, 422, "{body}: {answer:?}");
        assert_eq!(answer.body["error"]["field"], field, "{answer:?}");
    }
    // The same key and body answer the same message; an unknown id is a 404.
    let idem = random_suffix();
    let first = app.pos(reqwest::Method::POST, "/api/v1/messages", Some(&admin), Some(&idem), Some(&ok)).await;
    let second = app.pos(reqwest::Method::POST, "/api/v1/messages", Some(&admin), Some(&idem), Some(&ok)).await;
    assert_eq!(first.status, 201);
    assert_eq!(first.body["id"], second.body["id"]);
    assert_eq!(app.store.messages(None, 10).await.unwrap().len(), 1);
    assert_eq!(app.pos_get("/api/v1/messages/msg_nothing", &admin).await.status, 404);
}
