//! E-mail end to end: registration and recovery queue mails that a real SMTP server over a
//! socket (`smtp_sink`) receives; SMTP outages, refusals and limits; no promises while SMTP is
//! off.

use std::time::Duration;

use loy::clock::Clock;
use loy::mail::outbox::{Outcome, deliver_due, try_send_one};
use loy::store::MailState;
use mail_parser::MessageParser;
use serde_json::json;

use crate::admin_helpers::audit_of;
use crate::helpers::{PUBLIC_URL, StoreKind, TestApp, TestEnv, spawn_app, spawn_app_in, unique_phone};
use crate::on_both_stores;
use crate::smtp_sink::{Received, SmtpSink};

on_both_stores!(
    a_new_customer_with_an_email_receives_a_welcome_mail_with_the_card_link,
    registration_succeeds_while_smtp_is_down_and_the_mail_goes_out_when_it_returns,
    a_permanent_refusal_marks_the_mail_failed_without_the_address_in_its_error,
    a_known_phone_with_an_email_gets_the_link_and_the_page_shows_the_masked_address,
    a_known_phone_without_an_email_is_told_to_ask_staff,
    recovery_answers_identically_for_known_and_unknown_contacts_and_mails_the_known_ones,
    recovery_is_rate_limited_per_client_address,
    pages_promise_no_mail_when_smtp_is_off,
    a_failed_mail_shows_in_the_console_and_can_be_sent_again,
    the_consoles_card_link_action_mails_the_link,
    the_background_sender_delivers_a_queued_mail_by_itself,
    a_programs_mail_carries_its_name_logo_and_colours,
);

const FROM: &str = "loyalty@shop.test";

async fn app_with_sink(kind: StoreKind, sink: &SmtpSink, extra: &[(&str, &str)]) -> TestApp {
    let mut env = TestEnv::new(&kind);
    env.set("LOY_SMTP_URL", &sink.url()).set("LOY_MAIL_FROM", FROM).set("LOY_MAIL_RETRY_SECS", "60");
    env.set("LOY_SMTP_TIMEOUT_SECS", "5");
    for (k, v) in extra {
        env.set(k, v);
    }
    spawn_app_in(env).await
}

/// The plain-text and HTML parts of a received mail, decoded.
fn parts(mail: &Received) -> (String, String, String) {
    let message = MessageParser::default().parse(mail.data.as_bytes()).expect("the mail parses as MIME");
    let subject = message.subject().expect("a subject").to_owned();
    let text = message.body_text(0).expect("a plain-text part").into_owned();
    // The HTML part escapes `/` in attributes (`&#x2f;`), which browsers read back as `/`.
    let html = crate::admin_helpers::unescape(&message.body_html(0).expect("an HTML part"));
    assert_eq!(message.text_body_count(), 1, "one plain-text part");
    assert_eq!(message.html_body_count(), 1, "one HTML part");
    (subject, text, html)
}

async fn register_by_form(app: &TestApp, phone: &str, email: &str) -> reqwest::Response {
    app.post_form(
        "/",
        &[("first_name", "Anna"), ("phone", phone), ("email", email), ("consent", "yes"), ("lang", "en")],
    )
    .await
}

async fn a_new_customer_with_an_email_receives_a_welcome_mail_with_the_card_link(kind: StoreKind) {
    let sink = SmtpSink::start().await;
    let app = app_with_sink(kind, &sink, &[]).await;
    let email = format!("anna.{}@mail.test", crate::helpers::random_suffix());

    let response = register_by_form(&app, &unique_phone(), &email).await;
    assert_eq!(response.status(), 303);
    let card_path = response.headers()["location"].to_str().unwrap().split('?').next().unwrap().to_owned();
    assert_eq!(try_send_one(&app.state).await.unwrap(), Outcome::Sent);

    let received = sink.wait_for(1).await;
    assert_eq!(received[0].to, [email.as_str()]);
    assert_eq!(received[0].from, FROM);
    let (subject, text, html) = parts(&received[0]);
    assert!(subject.contains("Loyalty Card"), "{subject}");
    let card_url = format!("{PUBLIC_URL}{card_path}");
    assert!(text.contains(&card_url), "the text part links the card: {text}");
    assert!(html.contains(&format!("href=\"{card_url}\"")), "the HTML part links the card");
    assert!(html.contains(&format!("href=\"{card_url}/card.pkpass\"")), "the Apple Wallet button");
    assert!(html.contains("Add to Apple Wallet"));
    assert!(html.contains("rgb(28, 43, 74)"), "the program's colour");
    // The link opens the card.
    assert_eq!(app.get(&card_path).await.status(), 200);
    assert_eq!(try_send_one(&app.state).await.unwrap(), Outcome::Idle, "sent once");
}

async fn registration_succeeds_while_smtp_is_down_and_the_mail_goes_out_when_it_returns(kind: StoreKind) {
    let mut sink = SmtpSink::start().await;
    let app = app_with_sink(kind, &sink, &[]).await;
    sink.stop().await;

    let response = app
        .post_enrollment(
            &json!({"first_name": "Ivan", "phone": unique_phone(), "email": "ivan@mail.test", "consent": true}),
        )
        .await;
    assert_eq!(response.status(), 201, "registration does not wait for SMTP");
    assert_eq!(try_send_one(&app.state).await.unwrap(), Outcome::WillRetry);
    let pending = app.store.mails_in_state(MailState::Pending, 10).await.unwrap();
    assert_eq!(pending.len(), 1);
    assert_eq!(pending[0].attempts, 1);
    assert_eq!(try_send_one(&app.state).await.unwrap(), Outcome::Idle, "not due again before the backoff");

    sink.restart().await;
    app.clock.advance(chrono::Duration::seconds(61));
    assert_eq!(deliver_due(&app.state).await.unwrap(), 1);

    let received = sink.wait_for(1).await;
    assert_eq!(received[0].to, ["ivan@mail.test"]);
    assert!(app.store.mails_in_state(MailState::Pending, 10).await.unwrap().is_empty());
    assert_eq!(app.store.mails_in_state(MailState::Sent, 10).await.unwrap().len(), 1);
}

async fn a_permanent_refusal_marks_the_mail_failed_without_the_address_in_its_error(kind: StoreKind) {
    let sink = SmtpSink::start().await;
    sink.refuse_with(Some("550 5.1.1 <gone@mail.test>: no such user"));
    let app = app_with_sink(kind, &sink, &[]).await;

    register_by_form(&app, &unique_phone(), "gone@mail.test").await;
    assert_eq!(try_send_one(&app.state).await.unwrap(), Outcome::Failed);

    let failed = app.store.mails_in_state(MailState::Failed, 10).await.unwrap();
    assert_eq!(failed.len(), 1);
    let error = failed[0].last_error.clone().unwrap();
    assert!(error.contains("550"), "{error}");
    assert!(!error.contains("gone@"), "the error does not repeat the address: {error}");
    assert!(sink.received().is_empty());

    // Retried (as the console's button does), it goes out once the server accepts it.
    sink.refuse_with(None);
    assert!(app.store.retry_mail(&failed[0].id, app.clock.now()).await.unwrap());
    assert_eq!(try_send_one(&app.state).await.unwrap(), Outcome::Sent);
    sink.wait_for(1).await;
}

async fn a_known_phone_with_an_email_gets_the_link_and_the_page_shows_the_masked_address(kind: StoreKind) {
    let sink = SmtpSink::start().await;
    let app = app_with_sink(kind, &sink, &[]).await;
    let phone = unique_phone();
    let first = register_by_form(&app, &phone, "anna@mail.test").await;
    let card_path = first.headers()["location"].to_str().unwrap().split('?').next().unwrap().to_owned();

    let again =
        app.post_form("/", &[("first_name", "Eve"), ("phone", &phone), ("consent", "yes"), ("lang", "en")]).await;
    assert_eq!(again.status(), 200);
    let html = again.text().await.unwrap();
    assert!(html.contains("a***@mail.test"), "the masked address is shown: {html}");
    assert!(!html.contains("anna@mail.test"));
    assert!(!html.contains("/c/"), "no link to the card is shown");

    let api = app.post_enrollment(&json!({"first_name": "Eve", "phone": phone, "consent": true})).await;
    assert_eq!(api.status(), 202);
    let body: serde_json::Value = api.json().await.unwrap();
    assert_eq!(body["sent_to"], "email");
    assert!(!body.to_string().contains("mail.test"), "the API does not reveal the address");

    deliver_due(&app.state).await.unwrap();
    let received = sink.wait_for(3).await;
    let links: Vec<_> = received.iter().map(parts).filter(|(s, _, _)| s.contains("link")).collect();
    assert_eq!(links.len(), 2, "two link mails beside the welcome");
    assert!(links[0].1.contains(&format!("{PUBLIC_URL}{card_path}")));
}

async fn a_known_phone_without_an_email_is_told_to_ask_staff(kind: StoreKind) {
    let sink = SmtpSink::start().await;
    let app = app_with_sink(kind, &sink, &[]).await;
    let phone = unique_phone();
    app.enroll("Olga", &phone).await;

    let html = app
        .post_form("/", &[("first_name", "Eve"), ("phone", &phone), ("consent", "yes"), ("lang", "en")])
        .await
        .text()
        .await
        .unwrap();
    assert!(html.contains("Ask staff"), "{html}");
    assert!(!html.contains("We have sent"));
    let body: serde_json::Value =
        app.post_enrollment(&json!({"first_name": "Eve", "phone": phone, "consent": true})).await.json().await.unwrap();
    assert_eq!(body["sent_to"], "none");
    assert_eq!(deliver_due(&app.state).await.unwrap(), 0, "nothing was queued");
}

async fn recover(app: &TestApp, contact: &str) -> (u16, String) {
    let response = app.post_form("/recover", &[("contact", contact), ("lang", "en")]).await;
    (response.status().as_u16(), response.text().await.unwrap())
}

async fn recovery_answers_identically_for_known_and_unknown_contacts_and_mails_the_known_ones(kind: StoreKind) {
    let sink = SmtpSink::start().await;
    let app = app_with_sink(kind, &sink, &[]).await;
    let phone = unique_phone();
    let email = format!("lost.{}@mail.test", crate::helpers::random_suffix());
    let card = app
        .post_enrollment(&json!({"first_name": "Lev", "phone": phone, "email": email, "consent": true}))
        .await
        .json::<serde_json::Value>()
        .await
        .unwrap();
    deliver_due(&app.state).await.unwrap();
    sink.wait_for(1).await;

    let form = app.get("/recover?lang=en").await.text().await.unwrap();
    assert!(form.contains(r#"name="contact""#));
    let known_phone = recover(&app, &phone).await;
    let unknown_phone = recover(&app, &unique_phone()).await;
    let known_email = recover(&app, &email).await;
    let unknown_email = recover(&app, "nobody@mail.test").await;
    let nonsense = recover(&app, "???").await;
    assert_eq!(known_phone.0, 200);
    for other in [&unknown_phone, &known_email, &unknown_email, &nonsense] {
        assert_eq!(other, &known_phone, "the same status and page for every contact");
    }

    // The lookups run after the answer; both known contacts get the link.
    let mut received = Vec::new();
    for _ in 0..100 {
        deliver_due(&app.state).await.unwrap();
        received = sink.received();
        if received.len() >= 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(received.len(), 3, "the welcome and two link mails");
    let card_url = card["card"]["card_url"].as_str().unwrap();
    for mail in &received[1..] {
        assert_eq!(mail.to, [email.as_str()]);
        assert!(parts(mail).1.contains(card_url));
    }
}

async fn recovery_is_rate_limited_per_client_address(kind: StoreKind) {
    let sink = SmtpSink::start().await;
    let app = app_with_sink(kind, &sink, &[("LOY_RATE_LIMIT_RECOVER", "2/h")]).await;

    assert_eq!(recover(&app, &unique_phone()).await.0, 200);
    assert_eq!(recover(&app, "someone@mail.test").await.0, 200);
    let response = app.post_form("/recover", &[("contact", &unique_phone()), ("lang", "en")]).await;
    assert_eq!(response.status(), 429);
    assert!(response.headers().contains_key("retry-after"));
}

async fn pages_promise_no_mail_when_smtp_is_off(kind: StoreKind) {
    let app = spawn_app(kind).await;
    let phone = unique_phone();

    let form = app.get("/?lang=en").await.text().await.unwrap();
    assert!(!form.contains("We send the link"), "the form promises no mail");
    let form_ru = app.get("/?lang=ru").await.text().await.unwrap();
    assert!(!form_ru.contains("Пришлём"), "nor in Russian");

    let created = register_by_form(&app, &phone, "anna@mail.test").await;
    assert_eq!(created.status(), 303);
    let again = app
        .post_form("/", &[("first_name", "Eve"), ("phone", &phone), ("consent", "yes"), ("lang", "en")])
        .await
        .text()
        .await
        .unwrap();
    assert!(again.contains("Ask staff"), "{again}");
    assert!(!again.contains("a***@"), "no mail is claimed");
    let body: serde_json::Value =
        app.post_enrollment(&json!({"first_name": "Eve", "phone": phone, "consent": true})).await.json().await.unwrap();
    assert_eq!(body["sent_to"], "none");

    let recover_page = app.get("/recover?lang=en").await.text().await.unwrap();
    assert!(!recover_page.contains(r#"name="contact""#), "no form that would promise a mail");
    assert!(recover_page.contains("Ask staff"));
    let answer = recover(&app, &phone).await;
    assert_eq!(answer.0, 200);
    assert!(!answer.1.contains("Check your e-mail"));
    assert!(app.store.mails_in_state(MailState::Pending, 10).await.unwrap().is_empty(), "nothing is queued");
}

async fn a_failed_mail_shows_in_the_console_and_can_be_sent_again(kind: StoreKind) {
    let sink = SmtpSink::start().await;
    sink.refuse_with(Some("554 5.7.1 rejected"));
    let app = app_with_sink(kind, &sink, &[]).await;
    register_by_form(&app, &unique_phone(), "bounced@mail.test").await;
    assert_eq!(try_send_one(&app.state).await.unwrap(), Outcome::Failed);
    let id = app.store.mails_in_state(MailState::Failed, 1).await.unwrap()[0].id.clone();

    let cashier = app.signed_in(loy::domain::Role::Cashier).await;
    assert_eq!(cashier.get("/admin/mail").await.status, 403, "cashiers do not see it");
    let manager = app.signed_in(loy::domain::Role::Manager).await;
    let page = manager.get("/admin/mail").await;
    assert_eq!(page.status, 200);
    assert!(page.body.contains(&format!("id=\"mail-{id}\"")), "the failed mail is listed");
    assert!(page.body.contains("b***@mail.test"), "with its address masked");
    assert!(!page.body.contains("bounced@"));
    assert!(page.body.contains("554"));

    sink.refuse_with(None);
    let retried = manager.post(&format!("/admin/mail/{id}/retry"), &[]).await;
    assert_eq!(retried.status, 303);
    assert_eq!(audit_of(&app, Some(&manager.id), "mail_retried").await.len(), 1);
    assert_eq!(try_send_one(&app.state).await.unwrap(), Outcome::Sent);
    assert_eq!(sink.wait_for(1).await[0].to, ["bounced@mail.test"]);
    assert!(!manager.get("/admin/mail").await.body.contains(&format!("mail-{id}")), "no longer failed");
}

async fn the_consoles_card_link_action_mails_the_link(kind: StoreKind) {
    let sink = SmtpSink::start().await;
    let app = app_with_sink(kind, &sink, &[]).await;
    let body: serde_json::Value = app
        .post_enrollment(
            &json!({"first_name": "Ira", "phone": unique_phone(), "email": "ira@mail.test", "consent": true}),
        )
        .await
        .json()
        .await
        .unwrap();
    deliver_due(&app.state).await.unwrap();
    sink.wait_for(1).await;
    let serial = body["card"]["serial_number"].as_str().unwrap();

    let manager = app.signed_in(loy::domain::Role::Manager).await;
    let page = manager.post(&format!("/admin/customers/{serial}/link"), &[]).await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(page.body.contains("i***@mail.test"), "the page says where the link went");
    assert_eq!(audit_of(&app, Some(&manager.id), "card_link_mailed").await.len(), 1);

    deliver_due(&app.state).await.unwrap();
    let received = sink.wait_for(2).await;
    let (subject, text, _) = parts(&received[1]);
    assert!(subject.contains("link"), "{subject}");
    assert!(text.contains(body["card"]["card_url"].as_str().unwrap()));
}

async fn the_background_sender_delivers_a_queued_mail_by_itself(kind: StoreKind) {
    let sink = SmtpSink::start().await;
    let app = app_with_sink(kind, &sink, &[]).await;
    // As `loy serve` runs it; a long poll shows that queueing wakes it.
    let sender = tokio::spawn(loy::mail::outbox::run_forever(app.state.clone(), Duration::from_secs(3600)));
    tokio::time::sleep(Duration::from_millis(100)).await;

    let response = register_by_form(&app, &unique_phone(), "woken@mail.test").await;
    assert_eq!(response.status(), 303);

    let received = sink.wait_for(1).await;
    assert_eq!(received[0].to, ["woken@mail.test"]);
    // The sender records the outcome right after the server accepted the mail.
    let mut sent = 0;
    for _ in 0..100 {
        sent = app.store.mails_in_state(MailState::Sent, 10).await.unwrap().len();
        if sent == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    sender.abort();
    assert_eq!(sent, 1);
}

/// `loy serve` sends mails by itself, and its log, at debug level for loy, holds neither the
/// address nor anything of the mail's content.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn loy_serve_sends_mails_and_logs_no_address_or_content() {
    let sink = SmtpSink::start().await;
    let mut env = TestEnv::new(&StoreKind::Embedded);
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let address = format!("private.person.{}@mail.test", crate::helpers::random_suffix());
    env.set("LOY_BIND", &format!("127.0.0.1:{port}"))
        .set("LOY_SMTP_URL", &sink.url())
        .set("LOY_MAIL_FROM", FROM)
        .set("LOY_LOG", "info,loy=debug")
        .set("LOY_LOG_FORMAT", "text");
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_loy"));
    for (name, _) in std::env::vars().filter(|(name, _)| name.starts_with("LOY_")) {
        command.env_remove(name);
    }
    let child = command
        .envs(&env.vars)
        .arg("serve")
        .stderr(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("loy serve starts");
    let client = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let base = format!("http://127.0.0.1:{port}");
    let mut up = false;
    for _ in 0..400 {
        if client.get(format!("{base}/healthz")).send().await.is_ok() {
            up = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(up, "loy serve answers");
    let phone = unique_phone();
    let form = [("first_name", "Vera"), ("phone", phone.as_str()), ("email", address.as_str()), ("consent", "yes")];
    let registered = client.post(format!("{base}/")).form(&form).send().await.unwrap();
    assert_eq!(registered.status(), 303);
    let card_path = registered.headers()["location"].to_str().unwrap().split('?').next().unwrap().to_owned();
    let recovered = client.post(format!("{base}/recover")).form(&[("contact", address.as_str())]).send().await.unwrap();
    assert_eq!(recovered.status(), 200);

    let received = sink.wait_for(2).await;
    assert!(received.iter().all(|m| m.to == [address.as_str()]));

    let killed = std::process::Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    assert!(killed.success());
    let output = tokio::task::spawn_blocking(move || child.wait_with_output()).await.unwrap().unwrap();
    let log = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    assert!(log.contains("mail sent"), "the sender logs its work: {log}");
    let card_key = card_path.trim_start_matches("/c/");
    for secret in [address.as_str(), "private.person", card_key, "Vera", "Welcome to the programme"] {
        assert!(!log.contains(secret), "the log holds {secret:?}: {log}");
    }
}

async fn a_programs_mail_carries_its_name_logo_and_colours(kind: StoreKind) {
    let sink = SmtpSink::start().await;
    let app = app_with_sink(kind, &sink, &[("LOY_PROGRAM_CACHE_MS", "0")]).await;
    let mut bakery = loy::domain::Program::new(
        "bakery",
        "Bread & Butter",
        loy::domain::Currency::parse("RUB").unwrap(),
        chrono::Utc::now(),
    );
    bakery.design.background_color = "rgb(200, 16, 46)".into();
    let png = {
        let image = image::RgbaImage::from_pixel(300, 100, image::Rgba([200, 16, 46, 255]));
        let mut out = std::io::Cursor::new(Vec::new());
        image.write_to(&mut out, image::ImageFormat::Png).unwrap();
        out.into_inner()
    };
    let logo = loy::programs::images::store_upload(&app.store, loy::domain::ImageSlot::Logo, png).await.unwrap();
    let logo_id = logo["logo@2x.png"].clone();
    bakery.design.images.insert(loy::domain::ImageSlot::Logo, logo);
    app.store.insert_program(&bakery).await.unwrap();
    let email = format!("olga.{}@mail.test", crate::helpers::random_suffix());

    let response = app
        .post_form(
            "/p/bakery",
            &[
                ("first_name", "Olga"),
                ("phone", &unique_phone()),
                ("email", &email),
                ("consent", "yes"),
                ("lang", "en"),
            ],
        )
        .await;
    assert_eq!(response.status(), 303);
    assert_eq!(try_send_one(&app.state).await.unwrap(), Outcome::Sent);
    let received = sink.wait_for(1).await;
    let (subject, _, html) = parts(&received[0]);
    assert!(subject.contains("Bread & Butter"), "{subject}");
    assert!(html.contains("background:rgb(200, 16, 46)"), "the program's colour");
    let logo_url = format!("{PUBLIC_URL}/media/{logo_id}.png");
    assert!(html.contains(&logo_url), "the program's logo: {html}");
}
