//! The cashier screen `/admin/cashier`: finding a card by each thing a customer shows, earn,
//! redeem and refund with amounts typed in ordinary currency, replayed forms applied once,
//! refusals in words, and the audit log.

use loy::domain::Role;

use crate::admin_helpers::{Page, Staff, audit_of};
use crate::helpers::{StoreKind, TestApp, spawn_app, unique_phone};
use crate::on_both_stores;

on_both_stores!(
    every_role_opens_the_cashier_screen_and_anonymous_visitors_cannot,
    a_card_is_found_by_number_phone_wallet_code_and_card_page_address,
    an_unknown_card_is_answered_in_words_next_to_the_field,
    earning_450_50_credits_the_cashback_of_45050_kopecks_and_is_audited,
    a_replayed_earn_form_is_applied_once,
    redeeming_with_a_decimal_purchase_spends_what_the_purchase_allows,
    refunding_the_last_purchase_takes_its_points_back_once,
    a_blocked_card_is_refused_in_words_and_nothing_changes,
    a_redeem_below_the_minimum_is_refused_in_words,
    a_malformed_amount_is_refused_next_to_the_field_and_nothing_changes,
    a_cashier_form_without_its_csrf_token_changes_nothing,
);

/// The value of the hidden or text input `name` on a page.
pub fn input_value(body: &str, name: &str) -> Option<String> {
    let at = body.find(&format!(r#"name="{name}""#))?;
    let tag_start = body[..at].rfind('<')?;
    let tag_end = at + body[at..].find('>')?;
    let tag = &body[tag_start..tag_end];
    let v = tag.find(r#"value=""#)? + r#"value=""#.len();
    Some(unescape(&tag[v..v + tag[v..].find('"')?]))
}

/// The text of the element carrying `data-testid="ID"`.
pub fn test_id(body: &str, id: &str) -> Option<String> {
    let at = body.find(&format!(r#"data-testid="{id}""#))?;
    let rest = &body[at..];
    let start = rest.find('>')? + 1;
    let end = rest[start..].find('<')? + start;
    Some(unescape(rest[start..end].trim()))
}

/// Text as HTML-escaped by the templates, read back.
pub fn unescape(s: &str) -> String {
    s.replace("&#x2f;", "/")
        .replace("&quot;", "\"")
        .replace("&#x27;", "'")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

/// Opens the cashier screen on a card and returns the page (its form carries a fresh key).
async fn open_card(staff: &Staff<'_>, what: &str) -> Page {
    let mut page = staff.get(&format!("/admin/cashier?card={}", urlencoding(what))).await;
    if page.status == 303 {
        // Anything but the plain card number is answered with the card number's page.
        let location = page.location.clone().unwrap();
        assert!(location.starts_with("/admin/cashier?card="), "{location}");
        assert!(!location.contains("%2Fc%2F") && !location.contains("/c/"), "no card page key in the address");
        page = staff.get(&location).await;
    }
    assert_eq!(page.status, 200, "{}", page.body);
    page
}

pub fn urlencoding(s: &str) -> String {
    s.bytes().map(|b| if b.is_ascii_alphanumeric() { (b as char).to_string() } else { format!("%{b:02X}") }).collect()
}

/// Sends the till form of `page` with `op` and `amount`.
async fn till(staff: &Staff<'_>, page: &Page, op: &str, amount: &str, points: &str) -> Page {
    let serial = input_value(&page.body, "serial").expect("a card is shown");
    let form_id = input_value(&page.body, "form_id").expect("the form has its key");
    staff
        .post(
            "/admin/cashier",
            &[("serial", &serial), ("form_id", &form_id), ("op", op), ("amount", amount), ("points", points)],
        )
        .await
}

async fn card_number(app: &TestApp) -> String {
    app.new_card().await
}

fn cashback(app_points_of: i64) -> i64 {
    let program = loy::domain::Program::new(
        "default",
        "Coffee",
        loy::domain::Currency::parse("RUB").unwrap(),
        chrono::Utc::now(),
    );
    let tier = program.rules.tier_for(0);
    loy::ledger::rules::cashback_points(app_points_of, tier.cashback_bp, &program.currency)
}

async fn every_role_opens_the_cashier_screen_and_anonymous_visitors_cannot(kind: StoreKind) {
    let app = spawn_app(kind).await;
    for role in [Role::Cashier, Role::Manager, Role::Owner] {
        let staff = app.signed_in(role).await;
        let page = staff.get("/admin/cashier").await;
        assert_eq!(page.status, 200, "{role:?}");
        assert!(page.body.contains(r#"id="f-card""#));
        assert!(page.body.contains("scanner.js") && page.body.contains("jsQR.js"), "the scanner scripts");
    }
    let anonymous = app.admin_get_anonymous("/admin/cashier").await;
    assert_eq!(anonymous.status, 303);
    let post = app.post_form("/admin/cashier", &[("serial", "x"), ("form_id", "y"), ("op", "earn")]).await;
    assert_eq!(post.status(), 403);
}

async fn a_card_is_found_by_number_phone_wallet_code_and_card_page_address(kind: StoreKind) {
    let app = spawn_app(kind).await;
    let phone = unique_phone();
    let enrolled = app.enroll("Anna", &phone).await;
    let number = enrolled["card"]["card_number"].as_str().unwrap().to_owned();
    let card = app.card(&number).await;
    let staff = app.signed_in(Role::Cashier).await;
    let grouped = card.card_number.grouped();
    let national = format!("8 ({}) {}-{}-{}", &phone[2..5], &phone[5..8], &phone[8..10], &phone[10..]);
    let page_url = app.state.card_url(&card);

    for what in
        [number.as_str(), grouped.as_str(), phone.as_str(), national.as_str(), card.barcode.as_str(), page_url.as_str()]
    {
        let page = open_card(&staff, what).await;
        assert_eq!(input_value(&page.body, "serial").as_deref(), Some(card.serial.as_str()), "{what}");
        assert_eq!(test_id(&page.body, "holder").as_deref(), Some("Anna"), "{what}");
        assert_eq!(test_id(&page.body, "balance").as_deref(), Some("100"), "{what}");
    }
}

async fn an_unknown_card_is_answered_in_words_next_to_the_field(kind: StoreKind) {
    let app = spawn_app(kind).await;
    let staff = app.signed_in(Role::Cashier).await;
    let page = staff.get("/admin/cashier?card=0000000000000000&lang=en").await;
    assert_eq!(page.status, 404);
    assert!(page.body.contains(r#"id="e-card""#), "{}", page.body);
    assert!(page.body.contains("No card has this number, phone or code."));
    assert!(input_value(&page.body, "serial").is_none(), "no till form without a card");
}

async fn earning_450_50_credits_the_cashback_of_45050_kopecks_and_is_audited(kind: StoreKind) {
    let app = spawn_app(kind).await;
    let number = card_number(&app).await;
    let staff = app.signed_in(Role::Cashier).await;
    let page = open_card(&staff, &number).await;

    let answer = till(&staff, &page, "earn", "450,50", "").await;

    assert_eq!(answer.status, 200, "{}", answer.body);
    let expected = cashback(45050);
    assert!(expected > 0);
    assert_eq!(test_id(&answer.body, "result-points"), Some(expected.to_string()));
    assert_eq!(test_id(&answer.body, "result-balance"), Some((100 + expected).to_string()));
    assert_eq!(app.balance(&number).await, 100 + expected);
    let entries = app.entries(&number).await;
    let earn = entries.last().unwrap();
    assert_eq!(earn.purchase_amount, Some(45050), "450,50 is 45050 kopecks exactly");
    assert_eq!(earn.actor.as_deref(), Some(format!("staff:{}", staff.id).as_str()));
    let audit = audit_of(&app, Some(&staff.id), "earn").await;
    assert_eq!(audit.len(), 1);
    let card = app.card(&number).await;
    assert_eq!(audit[0].target.as_deref(), Some(card.serial.as_str()));
    assert_eq!(audit[0].details["purchase_amount"], 45050);
    assert_eq!(audit[0].details["balance_before"], 100);
    assert_eq!(audit[0].details["balance_after"], 100 + expected);

    // The same with a decimal point, on a fresh form.
    let again = till(&staff, &answer, "earn", "450.50", "").await;
    assert_eq!(again.status, 200, "{}", again.body);
    assert_eq!(app.balance(&number).await, 100 + 2 * expected);
    app.assert_ledger_consistent().await;
}

async fn a_replayed_earn_form_is_applied_once(kind: StoreKind) {
    let app = spawn_app(kind).await;
    let number = card_number(&app).await;
    let staff = app.signed_in(Role::Cashier).await;
    let page = open_card(&staff, &number).await;

    let first = till(&staff, &page, "earn", "1 000", "").await;
    let double_tap = till(&staff, &page, "earn", "1 000", "").await;
    let concurrent = futures_util::future::join_all((0..4).map(|_| till(&staff, &page, "earn", "1 000", ""))).await;

    assert_eq!(first.status, 200, "{}", first.body);
    assert_eq!(double_tap.status, 200, "{}", double_tap.body);
    assert!(
        double_tap.body.contains("already sent") || double_tap.body.contains("уже отправлялась"),
        "says it was a replay"
    );
    for page in &concurrent {
        // A replay (200), or "still being applied" (422) while the first one holds the key.
        assert!(page.status == 200 || page.status == 422, "{}", page.status);
    }
    let edited = till(&staff, &page, "earn", "2 000", "").await;
    assert_eq!(edited.status, 422, "the same form with another amount: {}", edited.body);
    assert!(edited.body.contains(r#"id="e-op""#));
    assert_ne!(input_value(&edited.body, "form_id"), input_value(&page.body, "form_id"), "a fresh form");
    let expected = cashback(100_000);
    assert_eq!(app.balance(&number).await, 100 + expected, "applied once");
    assert_eq!(app.entries(&number).await.len(), 2, "welcome and one earn");
    assert_eq!(audit_of(&app, Some(&staff.id), "earn").await.len(), 1, "audited once");
    app.assert_ledger_consistent().await;
}

async fn redeeming_with_a_decimal_purchase_spends_what_the_purchase_allows(kind: StoreKind) {
    let app = spawn_app(kind).await;
    let admin = app.api_key(loy::domain::Scope::Admin).await;
    let number = app.card_with_balance(&admin, 1_000).await;
    let staff = app.signed_in(Role::Manager).await;
    let page = staff.get(&format!("/admin/cashier?card={number}&amount=450%2C50")).await;
    let program = app.store.program("default").await.unwrap().unwrap();
    let allowed = loy::ledger::rules::share_limit(&program.rules, &program.currency, Some(45050)).unwrap().min(1_000);
    assert!(
        test_id(&page.body, "redeemable").unwrap().starts_with(&allowed.to_string()),
        "{:?}",
        test_id(&page.body, "redeemable")
    );

    let answer = till(&staff, &page, "redeem", "450,50", "").await;

    assert_eq!(answer.status, 200, "{}", answer.body);
    assert_eq!(test_id(&answer.body, "result-points"), Some((-allowed).to_string()));
    assert_eq!(app.balance(&number).await, 1_000 - allowed);
    let redeem = app.entries(&number).await.pop().unwrap();
    assert_eq!(redeem.purchase_amount, Some(45050));

    let typed = till(&staff, &answer, "redeem", "", "150").await;
    assert_eq!(typed.status, 200, "{}", typed.body);
    assert_eq!(app.balance(&number).await, 1_000 - allowed - 150);
    assert_eq!(audit_of(&app, Some(&staff.id), "redeem").await.len(), 2);
    app.assert_ledger_consistent().await;
}

async fn refunding_the_last_purchase_takes_its_points_back_once(kind: StoreKind) {
    let app = spawn_app(kind).await;
    let number = card_number(&app).await;
    let staff = app.signed_in(Role::Cashier).await;
    let page = open_card(&staff, &number).await;
    let earned = till(&staff, &page, "earn", "2000", "").await;
    assert_eq!(earned.status, 200);
    let expected = cashback(200_000);

    let refund = till(&staff, &earned, "refund", "", "").await;
    let replay = till(&staff, &earned, "refund", "", "").await;

    assert_eq!(refund.status, 200, "{}", refund.body);
    assert_eq!(test_id(&refund.body, "result-points"), Some((-expected).to_string()));
    assert_eq!(replay.status, 200, "{}", replay.body);
    assert_eq!(app.balance(&number).await, 100);
    let second = till(&staff, &refund, "refund", "", "").await;
    assert_eq!(second.status, 422, "a new form cannot refund the same purchase twice");
    assert!(second.body.contains(r#"id="e-op""#), "{}", second.body);
    assert_eq!(app.balance(&number).await, 100);
    assert_eq!(audit_of(&app, Some(&staff.id), "refund").await.len(), 1);
    app.assert_ledger_consistent().await;
}

async fn a_blocked_card_is_refused_in_words_and_nothing_changes(kind: StoreKind) {
    let app = spawn_app(kind).await;
    let admin = app.api_key(loy::domain::Scope::Admin).await;
    let number = card_number(&app).await;
    let blocked = app.pos_post(&format!("/api/v1/cards/{number}/block"), &admin, serde_json::json!({})).await;
    assert_eq!(blocked.status, 200, "{blocked:?}");
    let staff = app.signed_in(Role::Cashier).await;
    let page = staff.get(&format!("/admin/cashier?card={number}&lang=en")).await;
    assert!(page.body.contains("This card is blocked"));

    let answer = till(&staff, &page, "earn", "100", "").await;

    assert_eq!(answer.status, 422, "{}", answer.body);
    assert!(answer.body.contains(r#"id="e-card""#) && answer.body.contains("This card is blocked"), "{}", answer.body);
    assert_eq!(app.balance(&number).await, 100);
    assert!(audit_of(&app, Some(&staff.id), "earn").await.is_empty());
}

async fn a_redeem_below_the_minimum_is_refused_in_words(kind: StoreKind) {
    let app = spawn_app(kind).await;
    let number = card_number(&app).await;
    let staff = app.signed_in(Role::Cashier).await;
    let page = staff.get(&format!("/admin/cashier?card={number}&lang=en")).await;

    let blank = till(&staff, &page, "redeem", "", "").await;
    assert_eq!(blank.status, 422, "no purchase and no points: nothing is spent");
    assert!(blank.body.contains("Type the purchase amount or the points to redeem."), "{}", blank.body);

    let answer = till(&staff, &page, "redeem", "", "10").await;

    assert_eq!(answer.status, 422, "{}", answer.body);
    assert!(answer.body.contains(r#"id="e-points""#), "{}", answer.body);
    assert!(answer.body.contains("Below the minimum"), "{}", answer.body);
    let more = till(&staff, &answer, "redeem", "", "5000").await;
    assert_eq!(more.status, 422);
    assert!(more.body.contains("does not hold enough points"), "{}", more.body);
    assert_eq!(app.balance(&number).await, 100);
}

async fn a_malformed_amount_is_refused_next_to_the_field_and_nothing_changes(kind: StoreKind) {
    let app = spawn_app(kind).await;
    let number = card_number(&app).await;
    let staff = app.signed_in(Role::Cashier).await;
    let page = staff.get(&format!("/admin/cashier?card={number}&lang=en")).await;

    for amount in ["", "4,505", "12 руб", "1.234,56", "-5"] {
        let answer = till(&staff, &page, "earn", amount, "").await;
        assert_eq!(answer.status, 422, "{amount}");
        assert!(answer.body.contains(r#"id="e-amount""#), "{amount}");
        assert_eq!(
            input_value(&answer.body, "form_id"),
            input_value(&page.body, "form_id"),
            "nothing was sent: the form keeps its key"
        );
    }
    assert_eq!(app.balance(&number).await, 100);
    assert_eq!(app.entries(&number).await.len(), 1);
}

async fn a_cashier_form_without_its_csrf_token_changes_nothing(kind: StoreKind) {
    let app = spawn_app(kind).await;
    let number = card_number(&app).await;
    let staff = app.signed_in(Role::Cashier).await;
    let page = open_card(&staff, &number).await;
    let serial = input_value(&page.body, "serial").unwrap();
    let form_id = input_value(&page.body, "form_id").unwrap();

    let answer = staff
        .post_raw("/admin/cashier", &[("serial", &serial), ("form_id", &form_id), ("op", "earn"), ("amount", "100")])
        .await;

    assert_eq!(answer.status, 403);
    assert_eq!(app.balance(&number).await, 100);
}
