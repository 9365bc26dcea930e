//! CSV import and export of customers: checked lines, idempotent and resumable imports,
//! opening balances as `import` ledger entries, and exports that import back.

use std::collections::HashMap;
use std::process::Command;

use loy::domain::{CardNumber, EntryKind, EntrySource, Phone, PhoneRegion};
use loy::import::{ImportActor, ImportOptions, ImportReport, import_customers};
use loy::store::CardLookup;
use loy::store::faults::points;

use loy::domain::Role;

use crate::helpers::{StoreKind, TestApp, TestEnv, spawn_app, spawn_app_in};
use crate::on_both_stores;

on_both_stores!(
    a_dry_run_reports_every_bad_line_with_its_reason_and_writes_nothing,
    an_import_creates_cards_with_import_entries_and_running_it_again_changes_nothing,
    a_windows_1251_file_with_semicolons_and_russian_headers_imports,
    an_import_interrupted_by_a_store_failure_finishes_on_a_rerun_without_doubles,
    a_truncated_prefix_then_the_whole_file_imports_each_customer_once,
    an_existing_card_gains_missing_details_and_keeps_its_balance,
    an_export_imports_back_into_a_fresh_store_with_equal_balances,
    transactions_are_exported_for_a_period_through_the_command_line,
    owners_download_exports_from_the_console_and_each_download_is_audited,
);

async fn run(app: &TestApp, bytes: &[u8], dry_run: bool) -> ImportReport {
    try_run(app, bytes, dry_run).await.expect("the import runs")
}

async fn try_run(app: &TestApp, bytes: &[u8], dry_run: bool) -> Result<ImportReport, loy::import::ImportError> {
    let program = app.store.program("default").await.unwrap().unwrap();
    let actor = ImportActor { source: EntrySource::System, id: None };
    let options = ImportOptions { region: PhoneRegion::RU, dry_run, actor, now: chrono::Utc::now(), job: None };
    import_customers(app.store.as_ref(), &program, bytes, &options, &|_, _| {}).await
}

fn phone(i: usize) -> String {
    format!("+7912{i:07}")
}

/// A file of `n` good customers: phone, name, balance `i * 10`.
fn good_file(n: usize) -> String {
    let mut csv = String::from("name,last_name,phone,email,balance\n");
    for i in 0..n {
        csv.push_str(&format!("Anna,Smith{i},{},a{i}@example.com,{}\n", phone(i), i * 10));
    }
    csv
}

async fn balance_of(app: &TestApp, phone: &str) -> Option<i64> {
    let phone = Phone::parse(phone, PhoneRegion::RU).unwrap();
    let card = app.store.find_card(CardLookup::Phone { program_id: "default", phone: &phone }).await.unwrap();
    card.map(|c| c.balance)
}

/// Runs `loy ARGS` with the test app's settings; returns (exit code, stdout, stderr).
fn loy(vars: &HashMap<String, String>, args: &[&str]) -> (i32, String, String) {
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

async fn a_dry_run_reports_every_bad_line_with_its_reason_and_writes_nothing(kind: StoreKind) {
    let app = spawn_app(kind).await;
    let taken = app.new_card().await;
    let good_number = CardNumber::generate();
    let long = "x".repeat(300);
    let long_name = "A".repeat(101);
    // (line content, expected reason fragment); `None` = a good line.
    let lines: Vec<(String, Option<&str>)> = vec![
        (format!("Anna,Good,{},,,{},100,,,", phone(1), good_number.as_str()), None),
        (format!("Boris,,{},,,,,silver,,", phone(2)), None),
        ("Bad,Phone,12,,,,,,,".into(), Some("the phone number")),
        ("No,Phone,,,,,,,,".into(), Some("the phone number is missing")),
        ("Words,Phone,call me,,,,,,,".into(), Some("the phone number")),
        (format!("Bad,Mail,{},not-an-email,,,,,,", phone(3)), Some("the e-mail address is not valid")),
        (format!("Long,Mail,{},{long}@example.com,,,,,,", phone(4)), Some("longer than 256")),
        (format!("Bad,Date,{},,31.02.1990,,,,,", phone(5)), Some("is not a date")),
        (format!("Future,Birth,{},,2999-01-01,,,,,", phone(6)), Some("is not possible")),
        (format!("Neg,Balance,{},,,,-5,,,", phone(7)), Some("the balance is negative")),
        (format!("Frac,Balance,{},,,,12.5,,,", phone(8)), Some("not a whole number")),
        (format!("Huge,Balance,{},,,,99999999999,,,", phone(9)), Some("implausibly large")),
        (format!("Dup,Phone,{},,,,,,,", phone(1)), Some("the phone number repeats line 2")),
        (format!("Bad,Tier,{},,,,,unobtainium,,", phone(10)), Some("the tier \"unobtainium\" does not exist")),
        (format!(",Noname,{},,,,,,,", phone(11)), Some("the name is missing")),
        (format!("An\u{7}na,Ctrl,{},,,,,,,", phone(12)), Some("the name")),
        (format!("{long_name},Long,{},,,,,,,", phone(13)), Some("longer than 100")),
        (format!("<script>,Markup,{},,,,,,,", phone(14)), Some("not allowed")),
        (format!("Anna,\u{202e}Bidi,{},,,,,,,", phone(15)), Some("the last name")),
        (format!("Short,Card,{},,,1234,,,,", phone(16)), Some("the card number")),
        (format!("Letter,Card,{},,,ABCD12345678,,,,", phone(17)), Some("the card number")),
        (format!("Dup,Card,{},,,{},,,,", phone(18), good_number.as_str()), Some("the card number repeats line 2")),
        (format!("Taken,Card,{},,,{taken},,,,", phone(19)), Some("the card number belongs to another card")),
        (format!("Future,Reg,{},,,,,,2999-01-01,", phone(20)), Some("the registration date is in the future")),
        (format!("Bad,Reg,{},,,,,,yesterday,", phone(21)), Some("the registration date \"yesterday\" is not a date")),
        (format!("Odd,Status,{},,,,,,,frozen", phone(22)), Some("neither active nor blocked")),
        (format!("Gone,Status,{},,,,,,,deleted", phone(23)), Some("was deleted")),
    ];
    let mut csv = String::from("name,last_name,phone,email,birthday,card_number,balance,tier,registered_at,status\n");
    for (line, _) in &lines {
        csv.push_str(line);
        csv.push('\n');
    }

    let report = run(&app, csv.as_bytes(), true).await;

    let expected: Vec<(u64, &str)> =
        lines.iter().enumerate().filter_map(|(i, (_, why))| why.map(|w| (i as u64 + 2, w))).collect();
    assert!(expected.len() >= 20, "at least 20 kinds of bad lines");
    assert_eq!(report.errors.len(), expected.len(), "{:#?}", report.errors);
    for ((line, why), got) in expected.iter().zip(&report.errors) {
        assert_eq!(got.line, *line, "{got:?}");
        assert!(got.reason.contains(why), "line {line}: {:?} should say {why:?}", got.reason);
    }
    assert_eq!((report.created, report.updated, report.skipped), (2, 0, 0));
    assert_eq!(report.lines, lines.len() as u64);
    assert_eq!(balance_of(&app, &phone(1)).await, None, "a dry run writes nothing");

    let report = run(&app, csv.as_bytes(), false).await;
    assert_eq!(report.created, 2);
    assert_eq!(report.errors.len(), expected.len());
    assert_eq!(balance_of(&app, &phone(1)).await, Some(100));
    let number = app.store.find_card(CardLookup::Number(&good_number)).await.unwrap().expect("the file's card number");
    assert_eq!(number.holder.unwrap().last_name.unwrap().as_str(), "Good");
    let boris = app
        .store
        .find_card(CardLookup::Phone {
            program_id: "default",
            phone: &Phone::parse(&phone(2), PhoneRegion::RU).unwrap(),
        })
        .await
        .unwrap()
        .unwrap();
    assert_eq!(boris.tier, "silver", "a tier given by name starts the card at its threshold");
    app.assert_ledger_consistent().await;
}

async fn an_import_creates_cards_with_import_entries_and_running_it_again_changes_nothing(kind: StoreKind) {
    let app = spawn_app(kind).await;
    let file = good_file(50);

    let first = run(&app, file.as_bytes(), false).await;
    let second = run(&app, file.as_bytes(), false).await;

    assert_eq!((first.created, first.updated, first.skipped), (50, 0, 0));
    assert!(first.errors.is_empty(), "{:?}", first.errors);
    assert_eq!((second.created, second.updated, second.skipped), (0, 0, 50));
    assert_eq!(app.store.count_cards().await.unwrap(), 50);
    let phone = Phone::parse(&phone(7), PhoneRegion::RU).unwrap();
    let card = app.store.find_card(CardLookup::Phone { program_id: "default", phone: &phone }).await.unwrap().unwrap();
    assert_eq!(card.balance, 70);
    assert_eq!(card.version, 1, "the re-run did not touch the card");
    let entries = app.store.card_entries(&card.serial, None, 10).await.unwrap();
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0].kind, EntryKind::Import);
    assert_eq!(entries[0].points, 70);
    assert_eq!(entries[0].id, loy::import::import_entry_id("default", phone.as_str()));
    app.assert_ledger_consistent().await;
}

async fn a_windows_1251_file_with_semicolons_and_russian_headers_imports(kind: StoreKind) {
    let app = spawn_app(kind).await;
    let text = "Имя;Фамилия;Телефон;Почта;Дата рождения;Баланс;Уровень\n\
                Анна;Иванова;8 912 000-00-01;anna@mail.ru;31.05.1990;1 500;Серебро\n\
                Пётр;;+7 912 000 00 02;;;0;\n";
    let (bytes, _, unmappable) = encoding_rs::WINDOWS_1251.encode(text);
    assert!(!unmappable);

    let report = run(&app, &bytes, false).await;

    assert!(report.errors.is_empty(), "{:?}", report.errors);
    let shape = report.shape.unwrap();
    assert_eq!((shape.encoding, shape.delimiter), ("windows-1251", ';'));
    assert_eq!(report.created, 2);
    let phone = Phone::parse("+79120000001", PhoneRegion::RU).unwrap();
    let card = app.store.find_card(CardLookup::Phone { program_id: "default", phone: &phone }).await.unwrap().unwrap();
    let holder = card.holder.unwrap();
    assert_eq!(holder.first_name.as_str(), "Анна");
    assert_eq!(holder.last_name.unwrap().as_str(), "Иванова");
    assert_eq!(holder.birthday, chrono::NaiveDate::from_ymd_opt(1990, 5, 31));
    assert_eq!(card.balance, 1500);
    assert_eq!(card.tier, "silver");
    assert_eq!(balance_of(&app, "+79120000002").await, Some(0));
}

async fn an_import_interrupted_by_a_store_failure_finishes_on_a_rerun_without_doubles(kind: StoreKind) {
    let file = good_file(200);
    let app = spawn_app(kind).await;
    // The 150th line written fails as if the store went away mid-import (a checkpoint, so it
    // stops the import on MongoDB too, where a failure while settling an entry is only logged).
    app.faults.stop_at(points::IMPORT_LINE, 150);
    let crashed = try_run(&app, file.as_bytes(), false).await;
    assert!(crashed.is_err(), "the injected failure stops the import");
    app.faults.disarm();
    let halfway = app.store.count_cards().await.unwrap();
    assert!(halfway > 0 && halfway < 200, "the crash came halfway: {halfway} cards");
    let resumed = run(&app, file.as_bytes(), false).await;
    assert_eq!(resumed.created + resumed.skipped, 200);
    assert!(resumed.skipped >= halfway, "what the first run wrote is kept: {resumed:?}");
    assert_eq!(app.store.count_cards().await.unwrap(), 200);
    for i in [0, 99, 199] {
        assert_eq!(balance_of(&app, &phone(i)).await, Some(i as i64 * 10));
    }
    app.assert_ledger_consistent().await;
}

async fn a_truncated_prefix_then_the_whole_file_imports_each_customer_once(kind: StoreKind) {
    let app = spawn_app(kind).await;
    let file = good_file(120);
    // The first half of the file, as a copy interrupted halfway leaves it.
    let half = file[..file.len() / 2].rfind('\n').unwrap() + 1;
    let cut = &file.as_bytes()[..half];

    let partial = run(&app, cut, false).await;
    let whole = run(&app, file.as_bytes(), false).await;

    assert!(partial.created > 0);
    assert_eq!(partial.created + whole.created, 120, "{partial:?} {whole:?}");
    assert_eq!(whole.skipped, partial.created);
    assert_eq!(app.store.count_cards().await.unwrap(), 120);
    app.assert_ledger_consistent().await;
}

async fn an_existing_card_gains_missing_details_and_keeps_its_balance(kind: StoreKind) {
    let app = spawn_app(kind).await;
    let number = app.new_card().await;
    let card = app.store.find_card(CardLookup::Number(&CardNumber::parse(&number).unwrap())).await.unwrap().unwrap();
    let holder = card.holder.clone().unwrap();
    assert!(holder.email.is_none());
    let file = format!("name,phone,email,balance\nSomeone,{},found@example.com,9999\n", holder.phone.as_str());

    let dry = run(&app, file.as_bytes(), true).await;
    let real = run(&app, file.as_bytes(), false).await;
    let again = run(&app, file.as_bytes(), false).await;

    assert_eq!((dry.created, dry.updated, dry.skipped), (0, 1, 0));
    assert_eq!((real.created, real.updated, real.skipped), (0, 1, 0));
    assert_eq!((again.created, again.updated, again.skipped), (0, 0, 1));
    let after = app.store.find_card(CardLookup::Serial(&card.serial)).await.unwrap().unwrap();
    assert_eq!(after.balance, card.balance, "an import never changes an existing balance");
    let after_holder = after.holder.unwrap();
    assert_eq!(after_holder.email.unwrap().as_str(), "found@example.com");
    assert_eq!(after_holder.first_name, holder.first_name, "what the card has is kept");
    app.assert_ledger_consistent().await;
}

async fn an_export_imports_back_into_a_fresh_store_with_equal_balances(kind: StoreKind) {
    let app = spawn_app(kind.clone()).await;
    run(&app, good_file(30).as_bytes(), false).await;
    let enrolled = app.new_card().await;
    let export = app.env.dir.path().join("customers.csv");

    let (code, _, stderr) = loy(&app.env.vars, &["export", "customers", "--output", export.to_str().unwrap()]);
    assert_eq!(code, 0, "{stderr}");
    let bytes = std::fs::read(&export).unwrap();
    assert!(bytes.starts_with(b"\xEF\xBB\xBF"), "UTF-8 with a byte-order mark");
    assert_eq!(String::from_utf8_lossy(&bytes).lines().count(), 32, "a header and 31 customers");

    let fresh = spawn_app_in(TestEnv::new(&kind)).await;
    let (code, stdout, stderr) = loy(&fresh.env.vars, &["import", "customers", export.to_str().unwrap(), "--dry-run"]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(stdout.contains("31 cards would be created"), "{stdout}");
    assert_eq!(fresh.store.count_cards().await.unwrap(), 0);
    let (code, stdout, stderr) = loy(&fresh.env.vars, &["import", "customers", export.to_str().unwrap()]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(stdout.contains("31 cards were created"), "{stdout}");
    assert!(stderr.contains("31/31"), "a progress line on the terminal: {stderr}");

    for i in 0..30 {
        assert_eq!(balance_of(&fresh, &phone(i)).await, balance_of(&app, &phone(i)).await);
    }
    let number = CardNumber::parse(&enrolled).unwrap();
    let old = app.store.find_card(CardLookup::Number(&number)).await.unwrap().unwrap();
    let new = fresh.store.find_card(CardLookup::Number(&number)).await.unwrap().expect("the card number moved over");
    assert_eq!((new.balance, &new.tier, new.lifetime_earned), (old.balance, &old.tier, old.lifetime_earned));
    let (code, stdout, _) = loy(&fresh.env.vars, &["check", "ledger"]);
    assert_eq!(code, 0, "{stdout}");
    fresh.assert_ledger_consistent().await;
}

async fn transactions_are_exported_for_a_period_through_the_command_line(kind: StoreKind) {
    let app = spawn_app(kind).await;
    run(&app, good_file(3).as_bytes(), false).await;
    let today = chrono::Utc::now().date_naive();
    let tomorrow = (today + chrono::Duration::days(1)).to_string();
    let today = today.to_string();

    let (code, now, stderr) = loy(&app.env.vars, &["export", "transactions", "--from", &today, "--to", &today]);
    let (_, later, _) = loy(&app.env.vars, &["export", "transactions", "--from", &tomorrow]);

    assert_eq!(code, 0, "{stderr}");
    let rows: Vec<&str> = now.trim_start_matches('\u{feff}').lines().collect();
    assert!(rows[0].starts_with("id,created_at,card_number"), "{}", rows[0]);
    assert_eq!(rows.len(), 4, "{now}");
    assert!(rows[1..].iter().all(|r| r.contains(",import,")), "{now}");
    assert_eq!(later.trim_start_matches('\u{feff}').lines().count(), 1, "only the header: {later}");
}

async fn owners_download_exports_from_the_console_and_each_download_is_audited(kind: StoreKind) {
    let app = spawn_app(kind).await;
    run(&app, good_file(3).as_bytes(), false).await;
    let owner = app.signed_in(Role::Owner).await;
    let manager = app.signed_in(Role::Manager).await;

    let page = owner.get("/admin/data").await;
    let customers = owner.get("/admin/data/customers.csv").await;
    let transactions = owner.get("/admin/data/transactions.csv?from=2000-01-01&to=").await;
    let bad_date = owner.get("/admin/data/transactions.csv?from=yesterday").await;
    let refused = manager.get("/admin/data/customers.csv").await;

    assert_eq!(page.status, 200);
    assert!(page.body.contains("/admin/data/customers.csv"), "{}", page.body);
    assert_eq!(customers.status, 200);
    assert_eq!(customers.headers["content-type"], "text/csv; charset=utf-8");
    let body = customers.body.trim_start_matches('\u{feff}');
    assert!(customers.body.starts_with('\u{feff}'), "UTF-8 with a byte-order mark");
    assert_eq!(body.lines().count(), 4, "{body}");
    assert!(body.contains(&phone(2)));
    assert_eq!(transactions.status, 200);
    assert_eq!(transactions.body.lines().count(), 4, "{}", transactions.body);
    assert_eq!(bad_date.status, 400);
    assert_eq!(refused.status, 403);
    assert_eq!(owner.audit("data.export_customers").await.len(), 1);
    assert_eq!(owner.audit("data.export_transactions").await.len(), 1);
    assert!(manager.audit("data.export_customers").await.is_empty());
}
