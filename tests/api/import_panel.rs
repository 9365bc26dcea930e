//! Imports from the console: upload, dry run, import in the background with its progress,
//! resumption after a failure or a stopped node, and the card link sent once to each imported
//! customer (through the SMTP sink over a real socket).

use std::time::Duration;

use loy::domain::{Phone, PhoneRegion, Role};
use loy::import::jobs::{self, MAX_FILE_BYTES};
use loy::mail::outbox::deliver_due;
use loy::store::CardLookup;
use loy::store::ImportState;
use loy::store::faults::points;
use reqwest::header::{CONTENT_TYPE, COOKIE};

use crate::admin_helpers::{Page, Staff, text_of_id};
use crate::helpers::{StoreKind, TestApp, TestEnv, spawn_app, spawn_app_in};
use crate::on_both_stores;
use crate::smtp_sink::SmtpSink;

on_both_stores!(
    an_owner_uploads_checks_and_imports_a_file_and_sees_the_customers,
    the_same_file_imported_twice_changes_nothing_the_second_time,
    uploads_without_a_token_a_file_or_within_the_size_limit_are_refused,
    an_import_stopped_by_a_store_failure_halfway_resumes_to_completion,
    a_job_left_by_a_stopped_node_is_finished_when_its_lease_ends,
    card_links_go_once_to_each_customer_the_import_created_with_an_email,
    sending_card_links_is_refused_clearly_when_smtp_is_off,
);

fn phone(i: usize) -> String {
    format!("+7913{i:07}")
}

/// `n` good customers (every other one with an e-mail) and two bad lines at the end.
fn file(n: usize) -> String {
    let mut csv = String::from("Имя;Фамилия;Телефон;Почта;Баланс\n");
    for i in 0..n {
        let email = if i % 2 == 0 { format!("c{i}@shop.test") } else { String::new() };
        csv.push_str(&format!("Анна;Панелева{i};{};{email};{}\n", phone(i), i * 5));
    }
    csv.push_str("Без;Телефона;;;10\n");
    csv.push_str(&format!("Минус;Баланс;{};;-3\n", phone(n + 1)));
    csv
}

/// A `multipart/form-data` body with the given fields, as a browser sends the upload form.
pub fn multipart(csrf: Option<&str>, file: Option<(&str, &[u8])>) -> (String, Vec<u8>) {
    let boundary = "----loytestboundary7MA4YWxkTrZu0gW";
    let mut body = Vec::new();
    if let Some(csrf) = csrf {
        body.extend_from_slice(
            format!("--{boundary}\r\nContent-Disposition: form-data; name=\"csrf\"\r\n\r\n{csrf}\r\n").as_bytes(),
        );
    }
    if let Some((name, bytes)) = file {
        body.extend_from_slice(
            format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{name}\"\r\nContent-Type: text/csv\r\n\r\n"
            )
            .as_bytes(),
        );
        body.extend_from_slice(bytes);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

async fn upload_raw(staff: &Staff<'_>, csrf: Option<&str>, file: Option<(&str, &[u8])>) -> Page {
    upload_to(staff, "/admin/data/import", csrf, file).await
}

/// A multipart upload of `file` to `path`, as a browser sends an upload form.
pub async fn upload_to(staff: &Staff<'_>, path: &str, csrf: Option<&str>, file: Option<(&str, &[u8])>) -> Page {
    let (content_type, body) = multipart(csrf, file);
    let response = staff
        .app
        .client
        .post(staff.app.url(path))
        .header(COOKIE, staff.cookie_header())
        .header(CONTENT_TYPE, content_type)
        .body(body)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let location = headers.get("location").and_then(|v| v.to_str().ok()).map(str::to_owned);
    let body = crate::admin_helpers::unescape(&response.text().await.unwrap());
    Page { status, location, body, headers }
}

/// Uploads `bytes` and returns the job's page path.
async fn upload(staff: &Staff<'_>, bytes: &[u8]) -> String {
    let page = upload_raw(staff, Some(&staff.csrf.clone()), Some(("customers.csv", bytes))).await;
    assert_eq!(page.status, 303, "{}", page.body);
    page.location.expect("the job's page")
}

/// The state the progress fragment shows.
fn state_of(body: &str) -> String {
    let at = body.find("data-state=\"").expect("the progress section") + 12;
    body[at..].split('"').next().unwrap().to_owned()
}

/// Polls the progress fragment (as htmx does) until the job reaches `want`.
async fn wait_for_state(staff: &Staff<'_>, job_path: &str, want: &str) -> Page {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let page = staff.get(&format!("{job_path}/progress")).await;
        assert_eq!(page.status, 200, "{}", page.body);
        let state = state_of(&page.body);
        if state == want {
            return page;
        }
        assert!(state != "failed", "the job failed: {}", page.body);
        assert!(tokio::time::Instant::now() < deadline, "still {state}, not {want}: {}", page.body);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn job_id(job_path: &str) -> &str {
    job_path.rsplit('/').next().unwrap()
}

async fn balance_of(app: &TestApp, phone: &str) -> Option<i64> {
    let phone = Phone::parse(phone, PhoneRegion::RU).unwrap();
    let card = app.store.find_card(CardLookup::Phone { program_id: "default", phone: &phone }).await.unwrap();
    card.map(|c| c.balance)
}

/// Uploads, waits for the check, starts the import and waits until it is done.
async fn import_through_the_console(staff: &Staff<'_>, bytes: &[u8]) -> String {
    let job = upload(staff, bytes).await;
    wait_for_state(staff, &job, "checked").await;
    let started = staff.post(&format!("{job}/import"), &[]).await;
    assert_eq!(started.status, 303, "{}", started.body);
    wait_for_state(staff, &job, "done").await;
    job
}

async fn an_owner_uploads_checks_and_imports_a_file_and_sees_the_customers(kind: StoreKind) {
    let app = spawn_app(kind).await;
    let owner = app.signed_in(Role::Owner).await;
    let text = file(40);
    let (bytes, _, _) = encoding_rs::WINDOWS_1251.encode(&text);

    let data = owner.get("/admin/data").await;
    assert!(data.body.contains("enctype=\"multipart/form-data\""), "{}", data.body);
    let job = upload(&owner, &bytes).await;
    let checked = wait_for_state(&owner, &job, "checked").await;
    let page = owner.get(&job).await;

    assert!(checked.body.contains("100 %"), "{}", checked.body);
    assert_eq!(text_of_id(&page.body, "count-created").as_deref(), Some("40"), "{}", page.body);
    assert_eq!(text_of_id(&page.body, "count-bad").as_deref(), Some("2"));
    assert!(page.body.contains("windows-1251"), "the file's encoding is shown");
    assert!(page.body.contains("<td>42</td><td>the phone number is missing</td>"), "{}", page.body);
    assert!(page.body.contains("<td>43</td><td>the balance is negative</td>"), "{}", page.body);
    assert_eq!(app.store.count_cards().await.unwrap(), 0, "the dry run wrote nothing");
    let report = owner.get(&format!("{job}/errors.csv")).await;
    assert_eq!(report.headers["content-type"], "text/csv; charset=utf-8");
    assert_eq!(
        report.body.trim_start_matches('\u{feff}').lines().collect::<Vec<_>>()[1],
        "42,the phone number is missing"
    );

    let started = owner.post(&format!("{job}/import"), &[]).await;
    assert_eq!(started.location.as_deref(), Some(job.as_str()));
    let done = wait_for_state(&owner, &job, "done").await;
    assert!(done.body.contains("value=\"100\""), "the bar is full: {}", done.body);
    let page = owner.get(&job).await;
    assert_eq!(text_of_id(&page.body, "count-created").as_deref(), Some("40"), "{}", page.body);

    assert_eq!(app.store.count_cards().await.unwrap(), 40);
    assert_eq!(balance_of(&app, &phone(7)).await, Some(35));
    let found = owner.get("/admin/customers?q=%D0%9F%D0%B0%D0%BD%D0%B5%D0%BB%D0%B5%D0%B2%D0%B07").await;
    assert!(found.body.contains("Панелева7"), "the imported customer is found in the console: {}", found.body);
    assert_eq!(owner.audit("data.import_uploaded").await.len(), 1);
    assert_eq!(owner.audit("data.import_started").await.len(), 1);
    let stored = app.store.import_job(job_id(&job)).await.unwrap().unwrap();
    assert_eq!(stored.state, ImportState::Done);
    assert!(app.store.import_file(job_id(&job)).await.unwrap().is_none(), "the file is deleted once imported");
    let list = owner.get("/admin/data").await;
    assert!(list.body.contains(&format!("href=\"{job}\"")), "the data page lists the import");
    app.assert_ledger_consistent().await;
}

async fn the_same_file_imported_twice_changes_nothing_the_second_time(kind: StoreKind) {
    let app = spawn_app(kind).await;
    let owner = app.signed_in(Role::Owner).await;
    let bytes = file(30).into_bytes();
    import_through_the_console(&owner, &bytes).await;
    let third = Phone::parse(&phone(3), PhoneRegion::RU).unwrap();
    let before =
        app.store.find_card(CardLookup::Phone { program_id: "default", phone: &third }).await.unwrap().unwrap();

    let again = upload(&owner, &bytes).await;
    wait_for_state(&owner, &again, "checked").await;
    let checked = owner.get(&again).await;
    owner.post(&format!("{again}/import"), &[]).await;
    wait_for_state(&owner, &again, "done").await;
    let page = owner.get(&again).await;

    assert_eq!(text_of_id(&checked.body, "count-created").as_deref(), Some("0"));
    assert_eq!(text_of_id(&checked.body, "count-skipped").as_deref(), Some("30"));
    assert_eq!(text_of_id(&page.body, "count-created").as_deref(), Some("0"));
    assert_eq!(text_of_id(&page.body, "count-skipped").as_deref(), Some("30"));
    assert_eq!(app.store.count_cards().await.unwrap(), 30);
    let after = app.store.find_card(CardLookup::Serial(&before.serial)).await.unwrap().unwrap();
    assert_eq!(after, before, "the second run did not touch the card");
    app.assert_ledger_consistent().await;
}

async fn uploads_without_a_token_a_file_or_within_the_size_limit_are_refused(kind: StoreKind) {
    let app = spawn_app(kind).await;
    let owner = app.signed_in(Role::Owner).await;
    let manager = app.signed_in(Role::Manager).await;
    let good = file(2).into_bytes();

    let no_token = upload_raw(&owner, None, Some(("a.csv", &good))).await;
    let wrong_token = upload_raw(&owner, Some("forged"), Some(("a.csv", &good))).await;
    let by_manager = upload_raw(&manager, Some(&manager.csrf.clone()), Some(("a.csv", &good))).await;
    let no_file = upload_raw(&owner, Some(&owner.csrf.clone()), None).await;
    let empty = upload_raw(&owner, Some(&owner.csrf.clone()), Some(("a.csv", b"  \n"))).await;
    let huge = vec![b'x'; MAX_FILE_BYTES + 1];
    let too_large = upload_raw(&owner, Some(&owner.csrf.clone()), Some(("big.csv", &huge))).await;
    let not_a_job = owner.get("/admin/data/imports/imp_nosuchjob").await;

    assert_eq!(no_token.status, 403);
    assert_eq!(wrong_token.status, 403);
    assert_eq!(by_manager.status, 403);
    assert_eq!(no_file.status, 422);
    assert_eq!(text_of_id(&no_file.body, "upload-error").as_deref(), Some("Choose a file to upload."));
    assert_eq!(empty.status, 422);
    assert_eq!(too_large.status, 413);
    assert!(too_large.body.contains("at most 50 MB"), "{}", too_large.body);
    assert_eq!(not_a_job.status, 404);
    assert!(app.store.import_jobs(10).await.unwrap().is_empty(), "nothing was stored");
    assert!(owner.audit("data.import_uploaded").await.is_empty());
}

async fn an_import_stopped_by_a_store_failure_halfway_resumes_to_completion(kind: StoreKind) {
    let app = spawn_app(kind).await;
    let owner = app.signed_in(Role::Owner).await;
    let job = upload(&owner, file(300).as_bytes()).await;
    wait_for_state(&owner, &job, "checked").await;

    // The 250th line written fails as if the store went away: the attempt stops there (after
    // the lines of the first concurrent batch of 128 were written).
    app.faults.stop_at(points::IMPORT_LINE, 250);
    owner.post(&format!("{job}/import"), &[]).await;
    wait_for_state(&owner, &job, "done").await;

    let stored = app.store.import_job(job_id(&job)).await.unwrap().unwrap();
    assert_eq!(stored.attempts, 3, "the check, the stopped attempt and the one that finished");
    let imported = stored.imported.unwrap();
    assert!(imported.skipped > 0 && imported.skipped < 300, "the first attempt wrote part of the file: {imported:?}");
    assert_eq!(imported.created + imported.skipped, 300, "{imported:?}");
    assert_eq!(app.store.count_cards().await.unwrap(), 300);
    for i in [0, 149, 299] {
        assert_eq!(balance_of(&app, &phone(i)).await, Some(i as i64 * 5));
    }
    app.assert_ledger_consistent().await;
}

async fn a_job_left_by_a_stopped_node_is_finished_when_its_lease_ends(kind: StoreKind) {
    let app = spawn_app(kind).await;
    let bytes = file(60).into_bytes();
    let now = chrono::Utc::now();
    // A node took the job, imported the first 25 lines, and stopped: its lease has run out.
    let mut job = jobs::new_job("default", "staff_gone", "customers.csv", bytes.len() as u64, now);
    job.state = ImportState::Importing;
    job.attempts = 2;
    job.lease_until = now - chrono::Duration::seconds(1);
    app.store.insert_import_job(&job, &bytes).await.unwrap();
    let program = app.store.program("default").await.unwrap().unwrap();
    let half: String = file(60).lines().take(26).map(|l| format!("{l}\n")).collect();
    let options = loy::import::ImportOptions {
        region: PhoneRegion::RU,
        dry_run: false,
        actor: loy::import::ImportActor { source: loy::domain::EntrySource::Admin, id: None },
        now,
        job: Some(job.id.clone()),
    };
    loy::import::import_customers(app.store.as_ref(), &program, half.as_bytes(), &options, &|_, _| {}).await.unwrap();
    assert_eq!(app.store.count_cards().await.unwrap(), 25);

    let ran = jobs::run_due(&app.state).await.unwrap();

    assert_eq!(ran, 1);
    let finished = app.store.import_job(&job.id).await.unwrap().unwrap();
    assert_eq!(finished.state, ImportState::Done);
    assert_eq!(finished.imported.map(|c| (c.created, c.skipped)), Some((35, 25)));
    assert_eq!(app.store.count_cards().await.unwrap(), 60);
    assert!(app.store.import_file(&job.id).await.unwrap().is_none());
    assert_eq!(jobs::run_due(&app.state).await.unwrap(), 0, "nothing is left to run");
    app.assert_ledger_consistent().await;
}

async fn card_links_go_once_to_each_customer_the_import_created_with_an_email(kind: StoreKind) {
    let sink = SmtpSink::start().await;
    let mut env = TestEnv::new(&kind);
    env.set("LOY_SMTP_URL", &sink.url()).set("LOY_MAIL_FROM", "loyalty@shop.test");
    let app = spawn_app_in(env).await;
    let owner = app.signed_in(Role::Owner).await;
    // A customer already enrolled who is in the file too: completed, not created, not mailed.
    let number = app.new_card().await;
    let existing = app.card(&number).await;
    let mut csv = file(6);
    csv.push_str(&format!("Уже;Есть;{};known@shop.test;0\n", existing.holder.as_ref().unwrap().phone.as_str()));
    let job = import_through_the_console(&owner, csv.as_bytes()).await;
    deliver_due(&app.state).await.unwrap();
    let welcome_mails = sink.received().len();

    let first = owner.post(&format!("{job}/links"), &[]).await;
    let second = owner.post(&format!("{job}/links"), &[]).await;
    let first_page = owner.get(first.location.as_deref().unwrap()).await;
    let second_page = owner.get(second.location.as_deref().unwrap()).await;
    deliver_due(&app.state).await.unwrap();
    let received = sink.wait_for(welcome_mails + 3).await;

    assert_eq!(first.status, 303);
    assert!(
        first_page.body.contains("3 mails queued; 0 customers had been sent theirs already; 3 have no e-mail"),
        "{}",
        first_page.body
    );
    assert!(
        second_page.body.contains("0 mails queued; 3 customers had been sent theirs already"),
        "{}",
        second_page.body
    );
    assert_eq!(text_of_id(&second_page.body, "links-total").as_deref(), Some("3"));
    let mut to: Vec<String> = received[welcome_mails..].iter().flat_map(|m| m.to.clone()).collect();
    to.sort();
    assert_eq!(to, ["c0@shop.test", "c2@shop.test", "c4@shop.test"]);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(sink.received().len(), welcome_mails + 3, "pressing twice sent nothing twice");
    let second_phone = Phone::parse(&phone(2), PhoneRegion::RU).unwrap();
    let card =
        app.store.find_card(CardLookup::Phone { program_id: "default", phone: &second_phone }).await.unwrap().unwrap();
    let mail = &received[welcome_mails..].iter().find(|m| m.to == ["c2@shop.test"]).unwrap().data;
    let message = mail_parser::MessageParser::default().parse(mail.as_bytes()).expect("the mail parses as MIME");
    let text = message.body_text(0).expect("a plain-text part");
    assert!(text.contains(&format!("/c/{}", card.card_key.expose())), "the mail links the customer's own card: {text}");
    assert_eq!(owner.audit("data.import_links_sent").await.len(), 2);
}

async fn sending_card_links_is_refused_clearly_when_smtp_is_off(kind: StoreKind) {
    let app = spawn_app(kind).await;
    let owner = app.signed_in(Role::Owner).await;
    let job = import_through_the_console(&owner, file(4).as_bytes()).await;

    let page = owner.get(&job).await;
    let refused = owner.post(&format!("{job}/links"), &[]).await;

    assert!(text_of_id(&page.body, "links-off").unwrap().contains("E-mail is off"), "{}", page.body);
    assert!(!page.body.contains("id=\"send-links\""), "no button that cannot work");
    assert_eq!(refused.status, 409);
    assert!(text_of_id(&refused.body, "links-error").unwrap().contains("LOY_SMTP_URL is not set"));
    assert!(app.store.mails_in_state(loy::store::MailState::Pending, 10).await.unwrap().is_empty());
}
