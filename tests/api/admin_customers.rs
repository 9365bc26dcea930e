//! The customers screens `/admin/customers`: search by each key, the sorted list, the detail,
//! and the actions — adjust with a reason, block/unblock, the card link, delete and export —
//! with every cell of the role table and the audit log.

use loy::domain::{CardStatus, Phone, Role, SerialNumber};
use loy::store::CardLookup;

use crate::admin_cashier::{input_value, test_id, unescape, urlencoding};
use crate::admin_helpers::{Staff, audit_of};
use crate::apple_support::{Pkpass, apple_auth, latest_pass, new_pass};
use crate::helpers::{StoreKind, TestApp, spawn_app, unique_phone};
use crate::on_both_stores;

on_both_stores!(
    cashiers_cannot_list_search_or_open_customers,
    managers_cannot_delete_or_export_and_nothing_changes,
    cashiers_cannot_adjust_block_or_show_links_and_nothing_changes,
    customers_are_found_by_phone_name_email_and_card_number,
    the_list_sorts_by_balance_and_pages_without_repeats,
    an_adjustment_shows_the_resulting_balance_before_it_applies_once,
    an_adjustment_needs_a_reason_and_cannot_go_below_zero,
    blocking_and_unblocking_are_audited_and_stop_the_till,
    the_card_link_is_shown_with_its_qr_code,
    deleting_a_customer_removes_personal_data_keeps_the_ledger_and_voids_the_pass,
    exporting_a_customer_gives_one_json_of_everything_stored_about_them,
    every_customer_and_till_action_refuses_a_missing_or_wrong_csrf_token,
);

async fn serial_of(app: &TestApp, number: &str) -> String {
    app.card(number).await.serial.to_string()
}

async fn cashiers_cannot_list_search_or_open_customers(kind: StoreKind) {
    let app = spawn_app(kind).await;
    let number = app.new_card().await;
    let serial = serial_of(&app, &number).await;
    let cashier = app.signed_in(Role::Cashier).await;

    for path in [
        "/admin/customers".to_owned(),
        format!("/admin/customers?q={number}"),
        format!("/admin/customers/{serial}"),
        format!("/admin/customers/{serial}/export"),
    ] {
        assert_eq!(cashier.get(&path).await.status, 403, "{path}");
    }
    for role in [Role::Manager, Role::Owner] {
        let staff = app.signed_in(role).await;
        assert_eq!(staff.get("/admin/customers").await.status, 200, "{role:?}");
        assert_eq!(staff.get(&format!("/admin/customers/{serial}")).await.status, 200, "{role:?}");
    }
    assert!(audit_of(&app, Some(&cashier.id), "customer_exported").await.is_empty());
}

async fn managers_cannot_delete_or_export_and_nothing_changes(kind: StoreKind) {
    let app = spawn_app(kind).await;
    let number = app.new_card().await;
    let before = app.card(&number).await;
    let serial = before.serial.to_string();
    for role in [Role::Cashier, Role::Manager] {
        let staff = app.signed_in(role).await;
        let delete = staff.post(&format!("/admin/customers/{serial}/delete"), &[("confirm", "yes")]).await;
        assert_eq!(delete.status, 403, "{role:?}");
        let export = staff.get(&format!("/admin/customers/{serial}/export")).await;
        assert_eq!(export.status, 403, "{role:?}");
        assert!(!export.body.contains(&number), "no data leaks in the refusal");
    }
    assert_eq!(app.card(&number).await, before, "nothing changed");
    assert!(audit_of(&app, None, "customer_deleted").await.is_empty());
    assert!(audit_of(&app, None, "customer_exported").await.is_empty());
}

async fn cashiers_cannot_adjust_block_or_show_links_and_nothing_changes(kind: StoreKind) {
    let app = spawn_app(kind).await;
    let number = app.new_card().await;
    let before = app.card(&number).await;
    let serial = before.serial.to_string();
    let cashier = app.signed_in(Role::Cashier).await;

    let adjust = cashier
        .post(
            &format!("/admin/customers/{serial}/adjust"),
            &[("points", "50"), ("reason", "x"), ("form_id", "abc"), ("confirm", "yes")],
        )
        .await;
    assert_eq!(adjust.status, 403);
    for action in ["block", "unblock", "link"] {
        let page = cashier.post(&format!("/admin/customers/{serial}/{action}"), &[]).await;
        assert_eq!(page.status, 403, "{action}");
        assert!(!page.body.contains(before.card_key.expose()), "{action}: no card link");
    }
    assert_eq!(app.card(&number).await, before, "nothing changed");
    for action in ["adjust", "block", "unblock", "card_link_shown"] {
        assert!(audit_of(&app, None, action).await.is_empty(), "{action}");
    }
}

async fn search(staff: &Staff<'_>, q: &str) -> String {
    let page = staff.get(&format!("/admin/customers?q={}", urlencoding(q))).await;
    assert_eq!(page.status, 200, "{q}: {}", page.body);
    page.body
}

async fn customers_are_found_by_phone_name_email_and_card_number(kind: StoreKind) {
    let app = spawn_app(kind).await;
    let phone = unique_phone();
    let response = app
        .post_enrollment(&serde_json::json!({
            "first_name": "Светлана", "last_name": "Кузнецова", "phone": phone, "email": "sveta@example.com", "consent": true
        }))
        .await;
    assert_eq!(response.status(), 201);
    let body: serde_json::Value = response.json().await.unwrap();
    let number = body["card"]["card_number"].as_str().unwrap().to_owned();
    let serial = serial_of(&app, &number).await;
    let other = app.new_card().await;
    let other_serial = serial_of(&app, &other).await;
    let manager = app.signed_in(Role::Manager).await;
    let national = format!("8 ({}) {}-{}-{}", &phone[2..5], &phone[5..8], &phone[8..10], &phone[10..]);
    let grouped = app.card(&number).await.card_number.grouped();

    for q in [
        phone.as_str(),
        national.as_str(),
        "светл",
        "КУЗНЕЦ",
        "Кузнецова Св",
        "sveta@example.com",
        number.as_str(),
        grouped.as_str(),
    ] {
        let body = search(&manager, q).await;
        assert!(body.contains(&format!("/admin/customers/{serial}")), "{q} finds the customer");
        assert!(!body.contains(&format!("/admin/customers/{other_serial}")), "{q} finds only them");
    }
    let none = search(&manager, "nobody-here").await;
    assert!(!none.contains(&format!("/admin/customers/{serial}")));
}

async fn the_list_sorts_by_balance_and_pages_without_repeats(kind: StoreKind) {
    let app = spawn_app(kind).await;
    let admin = app.api_key(loy::domain::Scope::Admin).await;
    let mut serials = Vec::new();
    for i in 0..27 {
        let number = app.card_with_balance(&admin, 100 + i * 10).await;
        serials.push(serial_of(&app, &number).await);
    }
    let owner = app.signed_in(Role::Owner).await;

    let first = owner.get("/admin/customers?sort=balance&order=desc").await;
    assert_eq!(first.status, 200);
    let richest = serials.last().unwrap();
    let poorest = serials.first().unwrap();
    let at = |body: &str, serial: &str| body.find(&format!("/admin/customers/{serial}\""));
    assert!(at(&first.body, richest).is_some(), "the highest balance is on the first page");
    assert!(at(&first.body, poorest).is_none(), "25 a page: the lowest is on the next");
    let next = first
        .body
        .split("href=\"")
        .filter_map(|s| s.split('"').next())
        .find(|h| h.contains("after="))
        .expect("a next page link");
    let second = owner.get(&unescape(next)).await;
    assert_eq!(second.status, 200);
    assert!(at(&second.body, poorest).is_some());
    assert!(at(&second.body, richest).is_none(), "no repeats");
    let ascending = owner.get("/admin/customers?sort=balance&order=asc").await;
    assert!(at(&ascending.body, poorest).unwrap() < at(&ascending.body, &serials[1]).unwrap());
    for sort in ["registered", "activity"] {
        assert_eq!(owner.get(&format!("/admin/customers?sort={sort}")).await.status, 200);
    }
}

async fn adjust_form(staff: &Staff<'_>, serial: &str) -> String {
    let page = staff.get(&format!("/admin/customers/{serial}")).await;
    assert_eq!(page.status, 200);
    input_value(&page.body, "form_id").expect("the adjust form has its key")
}

async fn an_adjustment_shows_the_resulting_balance_before_it_applies_once(kind: StoreKind) {
    let app = spawn_app(kind).await;
    let number = app.new_card().await;
    let serial = serial_of(&app, &number).await;
    let manager = app.signed_in(Role::Manager).await;
    let form_id = adjust_form(&manager, &serial).await;
    let path = format!("/admin/customers/{serial}/adjust?lang=en");

    let preview = manager.post(&path, &[("points", "+250"), ("reason", "Lost receipt"), ("form_id", &form_id)]).await;

    assert_eq!(preview.status, 200, "{}", preview.body);
    assert_eq!(test_id(&preview.body, "preview").as_deref(), Some("The balance goes from 100 to 350."));
    assert_eq!(app.balance(&number).await, 100, "nothing applies before the confirmation");

    let confirm = [("points", "250"), ("reason", "Lost receipt"), ("form_id", form_id.as_str()), ("confirm", "yes")];
    let applied = manager.post(&path, &confirm).await;
    let replayed = manager.post(&path, &confirm).await;

    assert_eq!(applied.status, 303, "{}", applied.body);
    assert_eq!(replayed.status, 303);
    assert_eq!(app.balance(&number).await, 350, "applied once");
    let entry = app.entries(&number).await.pop().unwrap();
    assert_eq!(entry.kind, loy::domain::EntryKind::Adjust);
    assert_eq!(entry.description.as_deref(), Some("Lost receipt"));
    let audit = audit_of(&app, Some(&manager.id), "adjust").await;
    assert_eq!(audit.len(), 1);
    assert_eq!(audit[0].target.as_deref(), Some(serial.as_str()));
    assert_eq!(audit[0].details["reason"], "Lost receipt");
    assert_eq!(audit[0].details["balance_before"], 100);
    assert_eq!(audit[0].details["balance_after"], 350);
    let detail = manager.get(applied.location.as_deref().unwrap()).await;
    assert_eq!(test_id(&detail.body, "balance").as_deref(), Some("350"));
    app.assert_ledger_consistent().await;
}

async fn an_adjustment_needs_a_reason_and_cannot_go_below_zero(kind: StoreKind) {
    let app = spawn_app(kind).await;
    let number = app.new_card().await;
    let serial = serial_of(&app, &number).await;
    let owner = app.signed_in(Role::Owner).await;
    let form_id = adjust_form(&owner, &serial).await;
    let path = format!("/admin/customers/{serial}/adjust");

    let no_reason =
        owner.post(&path, &[("points", "50"), ("reason", " "), ("form_id", &form_id), ("confirm", "yes")]).await;
    let below_zero =
        owner.post(&path, &[("points", "-101"), ("reason", "x"), ("form_id", &form_id), ("confirm", "yes")]).await;
    let zero = owner.post(&path, &[("points", "0"), ("reason", "x"), ("form_id", &form_id)]).await;

    for page in [&no_reason, &below_zero, &zero] {
        assert_eq!(page.status, 422, "{}", page.body);
    }
    assert!(no_reason.body.contains(r#"id="e-reason""#));
    assert!(below_zero.body.contains(r#"id="e-points""#));
    assert_eq!(app.balance(&number).await, 100);
    assert!(audit_of(&app, None, "adjust").await.is_empty());
}

async fn blocking_and_unblocking_are_audited_and_stop_the_till(kind: StoreKind) {
    let app = spawn_app(kind).await;
    let number = app.new_card().await;
    let serial = serial_of(&app, &number).await;
    let manager = app.signed_in(Role::Manager).await;
    let before = app.card(&number).await;

    let blocked = manager.post(&format!("/admin/customers/{serial}/block"), &[]).await;

    assert_eq!(blocked.status, 303);
    let card = app.card(&number).await;
    assert_eq!(card.status, CardStatus::Blocked);
    assert_eq!(card.version, before.version + 1, "the pass shows it: a push is owed");
    let cashier = app.signed_in(Role::Cashier).await;
    let page = cashier.get(&format!("/admin/cashier?card={number}")).await;
    let refused = cashier
        .post(
            "/admin/cashier",
            &[
                ("serial", &serial),
                ("form_id", &input_value(&page.body, "form_id").unwrap()),
                ("op", "earn"),
                ("amount", "100"),
            ],
        )
        .await;
    assert_eq!(refused.status, 422);
    assert_eq!(app.balance(&number).await, 100);

    let unblocked = manager.post(&format!("/admin/customers/{serial}/unblock"), &[]).await;
    assert_eq!(unblocked.status, 303);
    assert_eq!(app.card(&number).await.status, CardStatus::Active);
    let block_audit = audit_of(&app, Some(&manager.id), "block").await;
    assert_eq!(block_audit.len(), 1);
    assert_eq!(block_audit[0].details["status_before"], "active");
    assert_eq!(block_audit[0].details["status_after"], "blocked");
    assert_eq!(audit_of(&app, Some(&manager.id), "unblock").await.len(), 1);
}

async fn the_card_link_is_shown_with_its_qr_code(kind: StoreKind) {
    let app = spawn_app(kind).await;
    let number = app.new_card().await;
    let card = app.card(&number).await;
    let manager = app.signed_in(Role::Manager).await;

    let page = manager.post(&format!("/admin/customers/{}/link", card.serial), &[]).await;

    assert_eq!(page.status, 200, "{}", page.body);
    assert_eq!(test_id(&page.body, "card-link"), Some(app.state.card_url(&card)));
    assert!(unescape(&page.body).contains("data:image/svg+xml;base64,"), "its QR code");
    assert_eq!(audit_of(&app, Some(&manager.id), "card_link_shown").await.len(), 1);
}

async fn deleting_a_customer_removes_personal_data_keeps_the_ledger_and_voids_the_pass(kind: StoreKind) {
    let app = spawn_app(kind).await;
    let pass = new_pass(&app).await;
    let serial = SerialNumber::parse(&pass.serial()).unwrap();
    let card = app.store.find_card(CardLookup::Serial(&serial)).await.unwrap().unwrap();
    let number = card.card_number.as_str().to_owned();
    let phone = card.holder.as_ref().unwrap().phone.clone();
    let cashier = app.signed_in(Role::Cashier).await;
    let till = cashier.get(&format!("/admin/cashier?card={number}")).await;
    let earned = cashier
        .post(
            "/admin/cashier",
            &[
                ("serial", serial.as_str()),
                ("form_id", &input_value(&till.body, "form_id").unwrap()),
                ("op", "earn"),
                ("amount", "999,99"),
            ],
        )
        .await;
    assert_eq!(earned.status, 200);
    let ledger_before = app.entries(&number).await;
    let balance_before = app.balance(&number).await;
    let owner = app.signed_in(Role::Owner).await;

    let unconfirmed = owner.post(&format!("/admin/customers/{serial}/delete"), &[]).await;
    assert_eq!(unconfirmed.status, 422);
    assert!(app.card(&number).await.holder.is_some(), "not without the confirmation");
    let deleted = owner.post(&format!("/admin/customers/{serial}/delete"), &[("confirm", "yes")]).await;

    assert_eq!(deleted.status, 303, "{}", deleted.body);
    let stored = app.card(&number).await;
    assert!(stored.holder.is_none(), "name, phone, e-mail and birthday are gone");
    assert_eq!(stored.status, CardStatus::Deleted);
    assert!(app.store.find_card(CardLookup::Phone { program_id: "default", phone: &phone }).await.unwrap().is_none());
    assert!(app.store.cards_by_name_prefix("default", "anna", 10).await.unwrap().iter().all(|c| c.serial != serial));
    assert_eq!(stored.balance, balance_before, "the amounts stay");
    assert_eq!(app.entries(&number).await, ledger_before, "the ledger stays");
    app.assert_ledger_consistent().await;
    // The pass is voided in Wallet and the card page is gone.
    let latest = latest_pass(&app, serial.as_str(), Some(&apple_auth(&pass.token())), None).await;
    assert_eq!(latest.status(), 200);
    let voided = Pkpass::parse(latest.bytes().await.unwrap().to_vec());
    assert_eq!(voided.pass_json()["voided"], true);
    assert_eq!(app.get(&format!("/c/{}", card.card_key.expose())).await.status(), 404);
    // The phone is free again, the till no longer finds the card, and the page says so.
    let again = app.enroll("Anna", phone.as_str()).await;
    assert_ne!(again["card"]["serial_number"].as_str(), Some(serial.as_str()));
    let find = cashier.get(&format!("/admin/cashier?card={number}")).await;
    assert_eq!(find.status, 404);
    let detail = owner.get(deleted.location.as_deref().unwrap()).await;
    assert_eq!(test_id(&detail.body, "status").as_deref().map(|s| s == "Deleted" || s == "Удалён"), Some(true));
    assert!(!detail.body.contains(phone.as_str()));
    let audit = audit_of(&app, Some(&owner.id), "customer_deleted").await;
    assert_eq!(audit.len(), 1);
    assert_eq!(audit[0].target.as_deref(), Some(serial.as_str()));
    assert!(!audit[0].details.to_string().contains(phone.as_str()), "no personal data in the log");
    let _ = Phone::parse(phone.as_str(), loy::domain::phone::PhoneRegion::RU).unwrap();
}

async fn exporting_a_customer_gives_one_json_of_everything_stored_about_them(kind: StoreKind) {
    let app = spawn_app(kind).await;
    let number = app.new_card().await;
    let card = app.card(&number).await;
    let manager = app.signed_in(Role::Manager).await;
    let form_id = adjust_form(&manager, card.serial.as_str()).await;
    let confirm = [("points", "5"), ("reason", "Welcome back"), ("form_id", form_id.as_str()), ("confirm", "yes")];
    assert_eq!(manager.post(&format!("/admin/customers/{}/adjust", card.serial), &confirm).await.status, 303);
    let owner = app.signed_in(Role::Owner).await;

    let export = owner.get(&format!("/admin/customers/{}/export", card.serial)).await;

    assert_eq!(export.status, 200, "{}", export.body);
    assert!(export.headers["content-type"].to_str().unwrap().starts_with("application/json"));
    assert!(export.headers["content-disposition"].to_str().unwrap().starts_with("attachment"));
    let json: serde_json::Value = serde_json::from_str(&export.body).unwrap();
    let holder = card.holder.as_ref().unwrap();
    assert_eq!(json["customer"]["first_name"], "Anna");
    assert_eq!(json["customer"]["phone"], holder.phone.as_str());
    assert_eq!(json["card"]["card_number"], number);
    assert_eq!(json["card"]["balance"], 105);
    let ledger = json["ledger"].as_array().unwrap();
    assert_eq!(ledger.len(), 2);
    assert_eq!(ledger[1]["type"], "adjust");
    assert_eq!(json["apple_devices"].as_array().unwrap().len(), 0);
    assert_eq!(json["google_wallet"]["synced_version"], 0);
    let audit = json["audit"].as_array().unwrap();
    assert!(audit.iter().any(|e| e["action"] == "adjust"), "{audit:?}");
    assert!(!export.body.contains(card.auth_token.expose()), "no device secrets");
    assert_eq!(audit_of(&app, Some(&owner.id), "customer_exported").await.len(), 1);
}

async fn every_customer_and_till_action_refuses_a_missing_or_wrong_csrf_token(kind: StoreKind) {
    let app = spawn_app(kind).await;
    let number = app.new_card().await;
    let before = app.card(&number).await;
    let serial = before.serial.to_string();
    let owner = app.signed_in(Role::Owner).await;
    let other = app.signed_in(Role::Manager).await;
    let form_id = adjust_form(&owner, &serial).await;
    let audit_before = app.store.audit_entries(&Default::default(), 1000).await.unwrap().len();
    let routes: Vec<(String, Vec<(&str, &str)>)> = vec![
        (
            "/admin/cashier".into(),
            vec![("serial", serial.as_str()), ("form_id", form_id.as_str()), ("op", "earn"), ("amount", "100")],
        ),
        (
            format!("/admin/customers/{serial}/adjust"),
            vec![("points", "50"), ("reason", "x"), ("form_id", form_id.as_str()), ("confirm", "yes")],
        ),
        (format!("/admin/customers/{serial}/block"), vec![]),
        (format!("/admin/customers/{serial}/unblock"), vec![]),
        (format!("/admin/customers/{serial}/link"), vec![]),
        (format!("/admin/customers/{serial}/delete"), vec![("confirm", "yes")]),
    ];
    for (path, fields) in &routes {
        let missing = owner.post_raw(path, fields).await;
        assert_eq!(missing.status, 403, "no token: {path}");
        let mut wrong = fields.clone();
        wrong.push(("csrf", &other.csrf));
        assert_eq!(owner.post_raw(path, &wrong).await.status, 403, "another session's token: {path}");
    }
    assert_eq!(app.card(&number).await, before, "nothing changed");
    assert_eq!(app.entries(&number).await.len(), 1);
    assert_eq!(app.store.audit_entries(&Default::default(), 1000).await.unwrap().len(), audit_before);
}
