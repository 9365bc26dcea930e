//! Several programs on one install, as customers and tills see them: every program has its own
//! form at `/p/{slug}` (the default one also at `/`), its own phones, rules, card page and pass;
//! an archived program takes no new members; an API key may be limited to one program; tier
//! names follow the customer's language.

use chrono::Utc;
use loy::domain::{Currency, Program, Scope, TierRule};
use loy::store::CardLookup;
use serde_json::json;

use crate::admin_cashier::input_value;
use crate::apple_support::Pkpass;
use crate::helpers::{StoreKind, TestApp, TestEnv, spawn_app_in, unique_phone};
use crate::on_both_stores;

on_both_stores!(
    two_programs_keep_separate_phones_rules_pages_and_passes,
    an_archived_program_takes_no_new_members_and_an_unknown_one_is_not_found,
    a_key_limited_to_one_program_sees_only_that_program,
    tier_names_follow_the_customers_language,
    the_cashier_searches_the_chosen_programs_phones_and_earns_by_the_cards_rules,
);

/// An app that reads programs from the store on every use (the tests change them directly).
async fn app(kind: StoreKind) -> TestApp {
    let mut env = TestEnv::new(&kind);
    env.set("LOY_PROGRAM_CACHE_MS", "0");
    spawn_app_in(env).await
}

/// A second program, "bakery": 20 welcome points, one tier with 10 % cashback, a red card.
async fn bakery(app: &TestApp) -> Program {
    let mut bakery = Program::new("bakery", "Bread & Butter", Currency::parse("RUB").unwrap(), Utc::now());
    bakery.rules.welcome_bonus = 20;
    bakery.rules.tiers = vec![TierRule {
        id: "member".into(),
        name_en: "Member".into(),
        name_ru: "Участник".into(),
        threshold: 0,
        cashback_bp: 1000,
    }];
    bakery.design.background_color = "rgb(200, 16, 46)".into();
    bakery.design.terms_url = "https://bakery.example/terms".into();
    bakery.locale = Some(loy::domain::Locale::En);
    app.store.insert_program(&bakery).await.unwrap();
    bakery
}

async fn register(app: &TestApp, path: &str, phone: &str) -> String {
    let response =
        app.post_form(path, &[("first_name", "Olga"), ("phone", phone), ("consent", "yes"), ("lang", "en")]).await;
    assert_eq!(response.status(), 303, "registering at {path}");
    response.headers()["location"].to_str().unwrap().split('?').next().unwrap().to_owned()
}

async fn two_programs_keep_separate_phones_rules_pages_and_passes(kind: StoreKind) {
    let app = app(kind).await;
    bakery(&app).await;
    let phone = unique_phone();

    let form = app.get("/p/bakery?lang=en").await;
    assert_eq!(form.status(), 200);
    let html = form.text().await.unwrap().replace("&#x2f;", "/");
    assert!(html.contains("Bread &amp; Butter"), "the form carries the program's name");
    assert!(html.contains(r#"action="/p/bakery?lang=en""#), "and posts to its own address");
    assert!(html.contains(r#"href="https://bakery.example/terms""#), "the consent links the program's terms");
    assert!(html.contains("--brand-bg: rgb(200, 16, 46)"), "in the program's colours");
    assert!(!app.get("/?lang=en").await.text().await.unwrap().contains("bakery.example"));
    // Without a language from the browser: the program's own; the default program has none of
    // its own and follows LOY_DEFAULT_LOCALE.
    let bare = app.get("/p/bakery").await.text().await.unwrap();
    assert!(bare.contains(r#"<html lang="en">"#), "the bakery's language");
    let server_default = app.state.settings.default_locale.code();
    assert!(app.get("/").await.text().await.unwrap().contains(&format!(r#"<html lang="{server_default}">"#)));

    // One phone, one card in each program.
    let default_page = register(&app, "/?lang=en", &phone).await;
    let bakery_page = register(&app, "/p/bakery?lang=en", &phone).await;
    assert_ne!(default_page, bakery_page);
    let again = app.post_form("/p/bakery", &[("first_name", "Olga"), ("phone", &phone), ("consent", "yes")]).await;
    assert_eq!(again.status(), 200, "a second registration in the same program finds the card");

    let parsed = loy::domain::Phone::parse(&phone, loy::domain::PhoneRegion::RU).unwrap();
    let card = |program: &'static str| {
        let store = app.store.clone();
        let parsed = parsed.clone();
        async move { store.find_card(CardLookup::Phone { program_id: program, phone: &parsed }).await.unwrap().unwrap() }
    };
    let (ours, theirs) = (card("default").await, card("bakery").await);
    assert_eq!((ours.balance, theirs.balance), (100, 20), "each program's welcome bonus");
    assert_eq!(theirs.tier, "member");

    // The card page and the pass carry the bakery's brand.
    let page = app.get(&format!("{bakery_page}?lang=en")).await.text().await.unwrap().replace("&#x2f;", "/");
    assert!(page.contains("Bread &amp; Butter") && page.contains("Member"));
    assert!(page.contains(&format!("/p/bakery?ref={}", theirs.referral_code.as_str())), "invitations are per program");
    let pass = Pkpass::parse(app.get(&format!("{bakery_page}/card.pkpass")).await.bytes().await.unwrap().to_vec());
    let json = pass.pass_json();
    assert_eq!(json["organizationName"], "Bread & Butter");
    assert_eq!(json["backgroundColor"], "rgb(200, 16, 46)");

    // Each card earns by its own program's rules: 10 % of 500.00 in the bakery, 5 % by default.
    let pos = app.api_key(Scope::Pos).await;
    let earn = |number: String| {
        let (app, pos) = (&app, &pos);
        async move {
            app.pos_post(format!("/api/v1/cards/{number}/earn"), pos, json!({"purchase_amount": 50_000})).await.body["points"]
                .as_i64()
                .unwrap()
        }
    };
    assert_eq!(earn(theirs.card_number.as_str().to_owned()).await, 50);
    assert_eq!(earn(ours.card_number.as_str().to_owned()).await, 25);

    // The API finds each by phone in the program asked for, and enrolls into a named program.
    let found = app.pos_get(&format!("/api/v1/cards?phone={}&program=bakery", &phone[1..]), &pos).await;
    assert_eq!(found.body["card_number"], theirs.card_number.as_str());
    let found = app.pos_get(&format!("/api/v1/cards?phone={}", &phone[1..]), &pos).await;
    assert_eq!(found.body["card_number"], ours.card_number.as_str());
    let other = unique_phone();
    let enrolled =
        app.post_enrollment(&json!({"first_name": "Ivan", "phone": other, "consent": true, "program": "bakery"})).await;
    assert_eq!(enrolled.status(), 201);
    let body: serde_json::Value = enrolled.json().await.unwrap();
    assert_eq!(body["card"]["balance"], 20);
    let unknown = app
        .post_enrollment(&json!({"first_name": "Ivan", "phone": unique_phone(), "consent": true, "program": "nope"}))
        .await;
    assert_eq!(unknown.status(), 422);
    assert_eq!(unknown.json::<serde_json::Value>().await.unwrap()["error"]["code"], "unknown_program");
    app.assert_ledger_consistent().await;
}

async fn an_archived_program_takes_no_new_members_and_an_unknown_one_is_not_found(kind: StoreKind) {
    let app = app(kind).await;
    let mut program = bakery(&app).await;
    let page = register(&app, "/p/bakery", &unique_phone()).await;

    let mut archived = program.clone();
    archived.archived_at = Some(Utc::now());
    archived.version += 1;
    assert!(app.store.update_program(&archived, program.version).await.unwrap());
    program = archived;

    let form = app.get("/p/bakery?lang=en").await;
    assert_eq!(form.status(), 410);
    assert!(form.text().await.unwrap().contains("Registration is closed"));
    let post =
        app.post_form("/p/bakery", &[("first_name", "Ann"), ("phone", &unique_phone()), ("consent", "yes")]).await;
    assert_eq!(post.status(), 410);
    let api = app
        .post_enrollment(&json!({"first_name": "Ivan", "phone": unique_phone(), "consent": true, "program": "bakery"}))
        .await;
    assert_eq!(api.status(), 422);
    assert_eq!(api.json::<serde_json::Value>().await.unwrap()["error"]["code"], "program_archived");
    assert_eq!(app.get(&page).await.status(), 200, "cards issued before keep working");
    assert_eq!(app.get(&format!("{page}/card.pkpass")).await.status(), 200);

    for path in ["/p/nope", "/p/NOT..valid", "/p/nope/recover"] {
        assert_eq!(app.get(path).await.status(), 404, "{path}");
    }
    assert_eq!(app.get("/p/default?lang=en").await.status(), 200, "the default program is also at /p/default");
    assert!(program.is_archived());
}

async fn a_key_limited_to_one_program_sees_only_that_program(kind: StoreKind) {
    let app = app(kind).await;
    bakery(&app).await;
    let (mut limited, plaintext) = loy::domain::ApiKey::generate("Bakery till", Scope::Pos, Utc::now());
    limited.program_id = Some("bakery".into());
    app.store.insert_api_key(&limited).await.unwrap();
    let default_card = app.new_card().await;

    let enrolled = app
        .pos_post(
            "/api/v1/enrollments",
            &plaintext,
            json!({"first_name": "Ivan", "phone": unique_phone(), "consent": true}),
        )
        .await;
    assert_eq!(enrolled.status, 201, "without `program` a limited key enrolls into its own: {enrolled:?}");
    let bakery_card = enrolled.body["card"]["card_number"].as_str().unwrap().to_owned();
    assert_eq!(enrolled.body["card"]["balance"], 20);

    let refused = app
        .pos_post(
            "/api/v1/enrollments",
            &plaintext,
            json!({"first_name": "Ivan", "phone": unique_phone(), "consent": true, "program": "default"}),
        )
        .await;
    assert_eq!((refused.status, refused.body["error"]["code"].as_str()), (403, Some("program_not_allowed")));

    let lookup = app.pos_get(&format!("/api/v1/cards/{default_card}"), &plaintext).await;
    assert_eq!(lookup.status, 404, "another program's card does not exist for this key");
    let earn = app
        .pos_post(format!("/api/v1/cards/{default_card}/earn"), &plaintext, json!({"purchase_amount": 10_000}))
        .await;
    assert_eq!(earn.status, 404);
    assert_eq!(app.balance(&default_card).await, 100, "nothing was written");

    let earn =
        app.pos_post(format!("/api/v1/cards/{bakery_card}/earn"), &plaintext, json!({"purchase_amount": 10_000})).await;
    assert_eq!(earn.status, 200, "{earn:?}");
    let transaction = earn.body["transaction_id"].as_str().unwrap().to_owned();

    // A reversal is checked by the transaction's card.
    let admin = app.api_key(Scope::Admin).await;
    let other =
        app.pos_post(format!("/api/v1/cards/{default_card}/earn"), &admin, json!({"purchase_amount": 10_000})).await;
    let foreign = other.body["transaction_id"].as_str().unwrap();
    let reverse = app.pos_post(format!("/api/v1/transactions/{foreign}/reverse"), &plaintext, json!({})).await;
    assert_eq!(reverse.status, 404, "{reverse:?}");
    let reverse = app.pos_post(format!("/api/v1/transactions/{transaction}/reverse"), &plaintext, json!({})).await;
    assert_eq!(reverse.status, 200, "{reverse:?}");
    app.assert_ledger_consistent().await;
}

async fn tier_names_follow_the_customers_language(kind: StoreKind) {
    let app = app(kind).await;
    let pos = app.api_key(Scope::Pos).await;
    let mut numbers = Vec::new();
    for locale in ["en", "ru"] {
        let body = json!({"first_name": "Ann", "phone": unique_phone(), "consent": true, "locale": locale});
        let response = app.post_enrollment(&body).await;
        assert_eq!(response.status(), 201);
        numbers.push(
            response.json::<serde_json::Value>().await.unwrap()["card"]["card_number"].as_str().unwrap().to_owned(),
        );
    }
    let name = |answer: crate::helpers::Answer| answer.body["tier"]["name"].as_str().unwrap().to_owned();
    assert_eq!(name(app.pos_get(&format!("/api/v1/cards/{}", numbers[0]), &pos).await), "Bronze");
    assert_eq!(name(app.pos_get(&format!("/api/v1/cards/{}", numbers[1]), &pos).await), "Бронза");
}

async fn the_cashier_searches_the_chosen_programs_phones_and_earns_by_the_cards_rules(kind: StoreKind) {
    let app = app(kind).await;
    bakery(&app).await;
    let phone = unique_phone();
    register(&app, "/?lang=en", &phone).await;
    register(&app, "/p/bakery?lang=en", &phone).await;
    let staff = app.signed_in(loy::domain::Role::Cashier).await;

    let screen = staff.get("/admin/cashier?lang=en").await;
    assert!(screen.body.contains(r#"<option value="bakery""#), "both programs are offered");
    let digits = &phone[1..];
    let page = staff.get(&format!("/admin/cashier?card={digits}&program=bakery&lang=en")).await;
    let location = page.location.clone().expect("found: redirected to the card number");
    assert!(location.contains("&program=bakery"), "{location}");
    let page = staff.get(&location).await;
    assert!(page.body.contains("Member"), "the bakery card with its tier");
    let serial = input_value(&page.body, "serial").unwrap();
    let form_id = input_value(&page.body, "form_id").unwrap();
    let done = staff
        .post("/admin/cashier", &[("serial", &serial), ("form_id", &form_id), ("op", "earn"), ("amount", "500")])
        .await;
    assert_eq!(done.status, 200);
    let card = app
        .store
        .find_card(CardLookup::Serial(&loy::domain::SerialNumber::parse(&serial).unwrap()))
        .await
        .unwrap()
        .unwrap();
    assert_eq!((card.program_id.as_str(), card.balance), ("bakery", 20 + 50), "10 % of 500.00 by the bakery's rules");

    let default = staff.get(&format!("/admin/cashier?card={digits}&lang=en")).await;
    let default = staff.get(&default.location.clone().unwrap()).await;
    assert!(default.body.contains("Bronze"), "without a program: the default program's card");
}
