//! Automatic messages: written once a day per program and kind, sent like any message; the
//! birthday bonus credited once a year; the win-back and expiry notes reach the cards of their
//! day; the console's settings page.

use std::time::Duration;

use chrono::Datelike;
use loy::domain::{LocalizedText, Role};
use loy::messages::automatic::{AutoMessages, Birthday, Timed, message_id};
use loy::messages::{Message, MessageState, MessageText};
use loy::store::CardLookup;
use serde_json::json;

use crate::helpers::{StoreKind, TestApp, spawn_app, unique_phone};
use crate::on_both_stores;

on_both_stores!(
    a_birthday_greeting_goes_out_once_a_day_with_its_bonus_once_a_year,
    win_back_and_expiry_notes_reach_the_cards_of_their_day,
    automatic_messages_go_out_at_the_programs_hour_on_its_day,
    the_console_switches_automatic_messages_on_with_problems_next_to_their_fields,
);

fn text(en: &str, ru: &str) -> MessageText {
    MessageText { body: LocalizedText::new(ru, en), ..MessageText::default() }
}

async fn configure(app: &TestApp, change: impl FnOnce(&mut loy::domain::Program)) {
    let mut program = app.store.program("default").await.unwrap().unwrap();
    let version = program.version;
    change(&mut program);
    program.version += 1;
    assert!(app.state.save_program(&program, version).await.unwrap());
}

/// One maintenance round (which writes the day's automatic messages), then the fan-out of
/// `id` until it is sent.
async fn round(app: &TestApp, id: &str) -> Option<Message> {
    loy::maintenance::run_once(&app.store, app.clock.as_ref(), &app.state.changes).await;
    app.store.message(id).await.unwrap()?;
    for _ in 0..1500 {
        loy::messages::fanout::run_due(&app.state).await.unwrap();
        let message = app.store.message(id).await.unwrap().unwrap();
        if message.state == MessageState::Sent {
            return Some(message);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("{id} never went out");
}

async fn enroll(app: &TestApp, birthday: Option<String>) -> loy::domain::Card {
    let key = app.enrollment_key().await;
    let mut body = json!({"first_name": "Vera", "phone": unique_phone(), "consent": true});
    if let Some(birthday) = birthday {
        body["birthday"] = json!(birthday);
    }
    let answer = app.client.post(app.url("/api/v1/enrollments")).bearer_auth(key).json(&body).send().await.unwrap();
    assert_eq!(answer.status(), 201);
    let body: serde_json::Value = answer.json().await.unwrap();
    app.card(body["card"]["card_number"].as_str().unwrap()).await
}

async fn a_birthday_greeting_goes_out_once_a_day_with_its_bonus_once_a_year(kind: StoreKind) {
    let app = spawn_app(kind).await;
    configure(&app, |p| {
        p.auto_messages = AutoMessages {
            birthday: Some(Birthday { text: text("Happy birthday!", "С днём рождения!"), bonus: 50 }),
            // From midnight (UTC), whatever time of day the test runs.
            hour: 0,
            ..AutoMessages::default()
        }
    })
    .await;
    let today = app.clock_now().date_naive();
    let celebrating = enroll(&app, Some(format!("1990-{:02}-{:02}", today.month(), today.day().min(28)))).await;
    let other = enroll(&app, Some("1990-01-01".into())).await;
    let other = if today.month() == 1 && today.day() == 1 { None } else { Some(other) };
    // Stay clear of February 29th when the test runs on it.
    if today.day() > 28 {
        return;
    }
    let id = message_id("default", "birthday", today);
    let message = round(&app, &id).await.expect("today's greeting is written");
    assert_eq!(message.fan_out.reached, 1);
    let card = app.store.find_card(CardLookup::Serial(&celebrating.serial)).await.unwrap().unwrap();
    assert_eq!(card.balance, celebrating.balance + 50);
    assert_eq!(card.news.as_ref().unwrap().body, "Happy birthday!");
    if let Some(other) = other {
        let other = app.store.find_card(CardLookup::Serial(&other.serial)).await.unwrap().unwrap();
        assert!(other.news.is_none());
    }
    // A second round the same day writes nothing new, and a fan-out run again credits nothing.
    loy::maintenance::run_once(&app.store, app.clock.as_ref(), &app.state.changes).await;
    assert_eq!(app.store.messages(None, 10).await.unwrap().len(), 1);
    let mut again = app.store.message(&id).await.unwrap().unwrap();
    again.state = MessageState::Sending;
    again.cursor = None;
    assert!(app.store.save_message(&again).await.unwrap());
    app.clock.advance(chrono::Duration::minutes(2));
    round(&app, &id).await;
    let card = app.store.find_card(CardLookup::Serial(&celebrating.serial)).await.unwrap().unwrap();
    assert_eq!(card.balance, celebrating.balance + 50, "the bonus is credited once");
    // A year later: the greeting and the bonus again.
    app.clock.advance(chrono::Duration::days(365));
    let next_day = app.clock_now().date_naive();
    if next_day.month() == today.month() && next_day.day() == today.day() {
        round(&app, &message_id("default", "birthday", next_day)).await.expect("next year's greeting");
        let card = app.store.find_card(CardLookup::Serial(&celebrating.serial)).await.unwrap().unwrap();
        assert_eq!(card.balance, celebrating.balance + 100);
        let entries = app.entries(card.card_number.as_str()).await;
        assert_eq!(entries.iter().filter(|e| e.id.starts_with("bday")).count(), 2);
    }
    app.assert_ledger_consistent().await;
}

async fn win_back_and_expiry_notes_reach_the_cards_of_their_day(kind: StoreKind) {
    let app = spawn_app(kind).await;
    configure(&app, |p| {
        p.rules.expiry_days = Some(90);
        p.auto_messages = AutoMessages {
            win_back: Some(Timed { text: text("We miss you", "Мы скучаем"), days: 30 }),
            expiry_note: Some(Timed {
                text: text("Points expire in a week", "Баллы сгорят через неделю"), days: 7
            }),
            hour: 0,
            ..AutoMessages::default()
        }
    })
    .await;
    let card = enroll(&app, None).await;
    // 30 days later the card (registered, welcome bonus, nothing since) is owed the win-back note.
    app.clock.advance(chrono::Duration::days(30));
    let day = app.clock_now().date_naive();
    let win_back = round(&app, &message_id("default", "win_back", day)).await.unwrap();
    assert_eq!(win_back.fan_out.reached, 1);
    // Nothing expires in 7 days yet (the welcome points expire on day 90).
    let note = round(&app, &message_id("default", "expiry_note", day)).await.unwrap();
    assert_eq!(note.fan_out.reached, 0);
    // On day 83 the welcome points expire in 7 days: the note goes out.
    app.clock.advance(chrono::Duration::days(53));
    let day = app.clock_now().date_naive();
    let note = round(&app, &message_id("default", "expiry_note", day)).await.unwrap();
    assert_eq!(note.fan_out.reached, 1, "{note:?}");
    let now = app.store.find_card(CardLookup::Serial(&card.serial)).await.unwrap().unwrap();
    assert_eq!(now.news.as_ref().unwrap().body, "Points expire in a week");
}

/// Moves the test clock to `at` (RFC 3339).
fn set_clock(app: &TestApp, at: &str) {
    let at = chrono::DateTime::parse_from_rfc3339(at).unwrap().with_timezone(&chrono::Utc);
    app.clock.advance(at - app.clock_now());
}

/// In Vladivostok (UTC+10) 15 March begins at 14:00 UTC on the 14th: the greeting waits for
/// 09:00 there, and then greets the customers born on the 15th, not the 14th; the win-back note
/// counts the days there too.
async fn automatic_messages_go_out_at_the_programs_hour_on_its_day(kind: StoreKind) {
    let app = spawn_app(kind).await;
    configure(&app, |p| {
        p.auto_messages = AutoMessages {
            birthday: Some(Birthday { text: text("Happy birthday!", "С днём рождения!"), bonus: 50 }),
            win_back: Some(Timed { text: text("We miss you", "Мы скучаем"), days: 1 }),
            hour: 9,
            ..AutoMessages::default()
        };
        p.time_zone = loy::domain::TimeZone::parse("Asia/Vladivostok").unwrap();
    })
    .await;
    let on_15th = enroll(&app, Some("1990-03-15".into())).await;
    let on_14th = enroll(&app, Some("1990-03-14".into())).await;
    // Registered at 06:00 on 14 March in Vladivostok, still the 13th in UTC.
    set_clock(&app, "2027-03-13T20:00:00Z");
    let lapsed = enroll(&app, None).await;
    let day = chrono::NaiveDate::from_ymd_opt(2027, 3, 15).unwrap();
    let (greeting, win_back) = (message_id("default", "birthday", day), message_id("default", "win_back", day));
    // 08:59 on the 15th there: not yet.
    set_clock(&app, "2027-03-14T22:59:00Z");
    loy::maintenance::run_once(&app.store, app.clock.as_ref(), &app.state.changes).await;
    assert!(app.store.messages(None, 10).await.unwrap().is_empty(), "nothing before 09:00 in Vladivostok");
    // 09:01 there, 23:01 on the 14th in UTC.
    set_clock(&app, "2027-03-14T23:01:00Z");
    let message = round(&app, &greeting).await.expect("the greeting of the 15th is written");
    assert_eq!(message.fan_out.reached, 1);
    let greeted = app.store.find_card(CardLookup::Serial(&on_15th.serial)).await.unwrap().unwrap();
    assert_eq!(greeted.news.as_ref().unwrap().body, "Happy birthday!");
    assert_eq!(greeted.balance, on_15th.balance + 50);
    let entries = app.entries(greeted.card_number.as_str()).await;
    assert!(entries.iter().any(|e| e.id == format!("bday2027_{}", greeted.serial)), "the bonus of 2027");
    let other = app.store.find_card(CardLookup::Serial(&on_14th.serial)).await.unwrap().unwrap();
    assert!(other.news.is_none(), "born on the 14th: greeted yesterday, not today");
    // One day after the 14th there: only the card registered that day.
    let note = round(&app, &win_back).await.expect("the win-back note of the 15th is written");
    assert_eq!(note.fan_out.reached, 1);
    let noted = app.store.find_card(CardLookup::Serial(&lapsed.serial)).await.unwrap().unwrap();
    assert_eq!(noted.news.as_ref().unwrap().body, "We miss you");
    assert_eq!(
        serde_json::to_value(&note.audience).unwrap(),
        json!({"kind": "last_activity_on", "date": "2027-03-14", "time_zone": "Asia/Vladivostok"})
    );
    app.assert_ledger_consistent().await;
}

async fn the_console_switches_automatic_messages_on_with_problems_next_to_their_fields(kind: StoreKind) {
    let app = spawn_app(kind).await;
    let manager = app.signed_in(Role::Manager).await;
    let page = manager.get("/admin/messages/automatic").await;
    assert_eq!(page.status, 200);
    let version = app.store.program("default").await.unwrap().unwrap().version.to_string();
    let bad = manager
        .post(
            "/admin/messages/automatic",
            &[("program", "default"), ("version", &version), ("win_back_on", "on"), ("win_back_days", "0")],
        )
        .await;
    assert_eq!(bad.status, 422);
    assert!(bad.body.contains(r#"id="e-win_back_days""#) && bad.body.contains(r#"id="e-win_back_text""#));
    let bad = manager
        .post("/admin/messages/automatic", &[("program", "default"), ("version", &version), ("hour", "24")])
        .await;
    assert_eq!(bad.status, 422);
    assert!(bad.body.contains(r#"id="e-hour""#));
    assert!(page.body.contains(r#"<option value="10" selected>10:00</option>"#), "10:00 by default");
    assert!(page.body.contains("In the program's time zone, UTC,"));
    let saved = manager
        .post(
            "/admin/messages/automatic",
            &[
                ("program", "default"),
                ("version", &version),
                ("hour", "9"),
                ("birthday_on", "on"),
                ("birthday_text_en", "Happy birthday!"),
                ("birthday_text_ru", "С днём рождения!"),
                ("birthday_bonus", "100"),
            ],
        )
        .await;
    assert_eq!(saved.status, 303, "{}", saved.body);
    let program = app.store.program("default").await.unwrap().unwrap();
    let birthday = program.auto_messages.birthday.unwrap();
    assert_eq!((birthday.bonus, birthday.text.body.en.as_str()), (100, "Happy birthday!"));
    assert!(program.auto_messages.win_back.is_none());
    assert_eq!(program.auto_messages.hour, 9);
    let page = manager.get("/admin/messages/automatic").await;
    assert!(page.body.contains(r#"<option value="9" selected>09:00</option>"#));
    assert_eq!(manager.audit("message.automatic_changed").await.len(), 1);
    // A form drawn from the older version is refused.
    let stale = manager
        .post(
            "/admin/messages/automatic",
            &[("program", "default"), ("version", &version), ("hour", "10"), ("birthday_on", "")],
        )
        .await;
    assert_eq!(stale.status, 409);
    let cashier = app.signed_in(Role::Cashier).await;
    assert_eq!(cashier.get("/admin/messages/automatic").await.status, 403);
}
