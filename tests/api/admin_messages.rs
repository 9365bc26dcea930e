//! `/admin/messages`: managers and owners write, preview, send, watch and cancel messages;
//! cashiers are refused; every problem is shown next to its field.

use loy::domain::Role;
use loy::messages::MessageState;

use crate::admin_helpers::text_of_id;
use crate::helpers::{StoreKind, spawn_app};
use crate::on_both_stores;

on_both_stores!(
    a_manager_previews_sends_and_watches_a_message_to_a_tier,
    problems_are_shown_next_to_their_fields_and_nothing_is_sent,
    a_scheduled_message_is_cancelled_from_its_page,
    a_time_to_send_is_read_and_shown_on_the_programs_clock,
    cashiers_get_the_consoles_403_for_messages,
);

async fn a_manager_previews_sends_and_watches_a_message_to_a_tier(kind: StoreKind) {
    let app = spawn_app(kind).await;
    for _ in 0..3 {
        app.new_card().await;
    }
    let tier = app.store.program("default").await.unwrap().unwrap().rules.tiers[0].id.clone();
    let manager = app.signed_in(Role::Manager).await;
    let page = manager.get("/admin/messages").await;
    assert_eq!(page.status, 200);
    assert!(page.body.contains(r#"href="/admin/messages" aria-current="page""#), "the section is in the navigation");
    let ru = manager.get("/admin/messages?lang=ru").await;
    assert!(ru.body.contains(r#"<option value="champions">Чемпионы (0)</option>"#), "segments by their names");

    let form = [
        ("program", "default"),
        ("title_en", "Double points"),
        ("text_en", "Double points this weekend"),
        ("title_ru", "Двойные баллы"),
        ("text_ru", "Двойные баллы в эти выходные"),
        ("audience", "tier"),
        ("tier", tier.as_str()),
    ];
    let mut preview = form.to_vec();
    preview.push(("action", "preview"));
    let page = manager.post("/admin/messages", &preview).await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert_eq!(text_of_id(&page.body, "audience-size").as_deref(), Some("3"));
    assert!(page.body.contains("Двойные баллы в эти выходные") && page.body.contains("Double points this weekend"));
    assert!(app.store.messages(None, 10).await.unwrap().is_empty(), "a preview sends nothing");

    let mut send = form.to_vec();
    send.push(("action", "send"));
    let page = manager.post("/admin/messages", &send).await;
    assert_eq!(page.status, 303, "{}", page.body);
    let location = page.location.unwrap();
    let id = location.strip_prefix("/admin/messages/").unwrap().to_owned();
    let message = app.store.message(&id).await.unwrap().unwrap();
    assert_eq!(message.audience_size, 3);
    assert_eq!(message.author, format!("staff:{}", manager.id));
    assert_eq!(manager.audit("message.sent").await.len(), 1);
    // The fan-out runs in the background; the page polls its progress until it is done.
    for _ in 0..200 {
        if app.store.message(&id).await.unwrap().unwrap().state == MessageState::Sent {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    let page = manager.get(&location).await;
    assert_eq!(page.status, 200);
    assert!(page.body.contains("Double points this weekend"));
    let progress = manager.get(&format!("{location}/progress")).await;
    assert_eq!(progress.status, 200);
    assert!(progress.body.contains(r#"id="message-progress" data-state="sent""#), "{}", progress.body);
    // Without devices or Google, nothing is owed to a wallet: the message is done.
    assert_eq!(text_of_id(&progress.body, "message-percent").as_deref(), Some("100 %"));
    let list = manager.get("/admin/messages").await;
    assert!(list.body.contains(&format!(r#"id="message-{id}""#)));
}

async fn problems_are_shown_next_to_their_fields_and_nothing_is_sent(kind: StoreKind) {
    let app = spawn_app(kind).await;
    let owner = app.signed_in(Role::Owner).await;
    for (fields, field, text) in [
        (vec![("text_en", ""), ("audience", "all")], "text", "Write the text in at least one language."),
        (vec![("text_en", "Hi"), ("audience", "inactive"), ("days", "x")], "days", "Enter a number of days"),
        (
            vec![("text_en", "Hi"), ("audience", "customer"), ("card", "0000 0000 0000")],
            "card",
            "No card of this program",
        ),
        (vec![("text_en", "Hi"), ("link", "ftp://x"), ("audience", "all")], "link", "Enter an https:// address."),
        (vec![("text_en", "Hi"), ("audience", "all"), ("send_at", "tomorrow")], "send_at", "Enter a date and time"),
    ] {
        let mut form = fields.clone();
        form.push(("action", "send"));
        let page = owner.post("/admin/messages", &form).await;
        assert_eq!(page.status, 422, "{fields:?}");
        assert!(page.body.contains(&format!(r#"id="e-{field}""#)), "{field}: {}", page.body);
        assert!(page.body.contains(text), "{text}");
    }
    assert!(app.store.messages(None, 10).await.unwrap().is_empty());
}

async fn a_scheduled_message_is_cancelled_from_its_page(kind: StoreKind) {
    let app = spawn_app(kind).await;
    app.new_card().await;
    let owner = app.signed_in(Role::Owner).await;
    let at = (app.clock_now() + chrono::Duration::days(1)).format("%Y-%m-%dT%H:%M").to_string();
    let form = [("text_en", "See you tomorrow"), ("audience", "all"), ("send_at", at.as_str()), ("action", "send")];
    let page = owner.post("/admin/messages", &form).await;
    assert_eq!(page.status, 303);
    let location = page.location.unwrap();
    let page = owner.get(&location).await;
    assert!(page.body.contains(r#"data-state="scheduled""#));
    let page = owner.post(&format!("{location}/cancel"), &[]).await;
    assert_eq!(page.status, 303);
    let id = location.rsplit('/').next().unwrap();
    assert_eq!(app.store.message(id).await.unwrap().unwrap().state, MessageState::Cancelled);
    assert_eq!(owner.audit("message.cancelled").await.len(), 1);
    assert_eq!(owner.get("/admin/messages/msg_none").await.status, 404);
    app.clock.advance(chrono::Duration::days(2));
    loy::messages::fanout::run_due(&app.state).await.unwrap();
    assert_eq!(app.store.send_counts(id).await.unwrap().cards, 0, "a cancelled message never goes out");
}

/// In a Moscow program (UTC+3) "18:00" is 15:00 UTC, and the message's page says 18:00 again.
async fn a_time_to_send_is_read_and_shown_on_the_programs_clock(kind: StoreKind) {
    let app = spawn_app(kind).await;
    app.new_card().await;
    let mut program = app.store.program("default").await.unwrap().unwrap();
    let version = program.version;
    program.time_zone = loy::domain::TimeZone::parse("Europe/Moscow").unwrap();
    program.version += 1;
    assert!(app.state.save_program(&program, version).await.unwrap());
    let owner = app.signed_in(Role::Owner).await;
    assert!(owner.get("/admin/messages?lang=en").await.body.contains("Send at (Europe/Moscow)"));
    let day = (app.clock_now() + chrono::Duration::days(2)).date_naive();
    let at = format!("{day}T18:00");
    let form = [("text_en", "Tonight"), ("audience", "all"), ("send_at", at.as_str()), ("action", "send")];
    let page = owner.post("/admin/messages", &form).await;
    assert_eq!(page.status, 303, "{}", page.body);
    let location = page.location.unwrap();
    let id = location.rsplit('/').next().unwrap();
    let stored = app.store.message(id).await.unwrap().unwrap();
    assert_eq!(stored.send_at, day.and_hms_opt(15, 0, 0).unwrap().and_utc());
    let page = owner.get(&format!("{location}?lang=en")).await;
    assert!(page.body.contains(&format!("<dt>Send at (Europe/Moscow)</dt><dd>{day} 18:00</dd>")), "{}", page.body);
}

async fn cashiers_get_the_consoles_403_for_messages(kind: StoreKind) {
    let app = spawn_app(kind).await;
    let cashier = app.signed_in(Role::Cashier).await;
    assert_eq!(cashier.get("/admin/messages").await.status, 403);
    let page = cashier.post("/admin/messages", &[("text_en", "Hi"), ("audience", "all"), ("action", "send")]).await;
    assert_eq!(page.status, 403);
    assert!(app.store.messages(None, 10).await.unwrap().is_empty());
    assert!(!cashier.get("/admin").await.body.contains(r#"href="/admin/messages""#));
}
