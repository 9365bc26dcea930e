//! `/admin/programs` and the rules editor: owners create, edit, archive programs and change
//! their rules; managers read; cashiers are refused; every problem is shown next to its field.

use loy::domain::{Role, Scope};
use serde_json::json;

use crate::admin_helpers::{Page, Staff, text_of_id};
use crate::helpers::{StoreKind, spawn_app};
use crate::on_both_stores;

on_both_stores!(
    an_owner_creates_edits_archives_and_unarchives_a_program,
    a_taken_or_invalid_program_id_is_refused_next_to_the_field,
    managers_read_programs_and_rules_but_cannot_change_them,
    cashiers_get_the_consoles_403_for_programs,
    every_rules_problem_is_shown_next_to_its_field_and_nothing_is_saved,
    a_valid_rules_change_is_saved_audited_and_applies_from_the_next_earn,
    a_save_drawn_from_an_older_version_is_refused_as_a_conflict,
    tier_rows_are_added_and_removed_without_saving,
    every_program_form_refuses_a_missing_or_wrong_csrf_token,
);

/// The rules form as the editor draws it for the default rules, at `version`.
fn default_rules_form(version: i64) -> Vec<(String, String)> {
    let mut form = Vec::new();
    let tiers = [
        ("bronze", "Бронза", "Bronze", "0", "5"),
        ("silver", "Серебро", "Silver", "500", "10"),
        ("gold", "Золото", "Gold", "1500", "15"),
        ("platinum", "Платина", "Platinum", "3000", "20"),
    ];
    for (i, (id, ru, en, threshold, cashback)) in tiers.iter().enumerate() {
        for (field, value) in
            [("id", id), ("name_ru", ru), ("name_en", en), ("threshold", threshold), ("cashback", cashback)]
        {
            form.push((format!("tier_{i}_{field}"), (*value).to_owned()));
        }
    }
    for (field, value) in [
        ("welcome_bonus", "100"),
        ("welcome_at", "registration"),
        ("min_redemption", "100"),
        ("max_redeem_percent", "50"),
        ("expiry_days", ""),
        ("referral_bonus", "100"),
        ("referral_min_purchase", "100.00"),
    ] {
        form.push((field.to_owned(), value.to_owned()));
    }
    form.push(("version".to_owned(), version.to_string()));
    form
}

fn set(form: &mut [(String, String)], field: &str, value: &str) {
    let slot = form.iter_mut().find(|(k, _)| k == field).unwrap_or_else(|| panic!("no field {field}"));
    slot.1 = value.to_owned();
}

async fn post_rules(staff: &Staff<'_>, slug: &str, form: &[(String, String)]) -> Page {
    let fields: Vec<(&str, &str)> = form.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    staff.post(&format!("/admin/programs/{slug}/rules"), &fields).await
}

async fn version_of(staff: &Staff<'_>, slug: &str) -> i64 {
    staff.app.store.program(slug).await.unwrap().expect("the program exists").version
}

async fn an_owner_creates_edits_archives_and_unarchives_a_program(kind: StoreKind) {
    let app = spawn_app(kind).await;
    let owner = app.signed_in(Role::Owner).await;

    let created = owner
        .post("/admin/programs", &[("slug", "bakery"), ("name", "Bakery"), ("currency", "eur"), ("locale", "en")])
        .await;

    assert_eq!(created.status, 303, "{}", created.body);
    assert_eq!(created.location.as_deref(), Some("/admin/programs/bakery"));
    let stored = app.store.program("bakery").await.unwrap().unwrap();
    assert_eq!(
        (stored.name.as_str(), stored.currency.code.as_str(), stored.locale.map(|l| l.code()).unwrap_or_default()),
        ("Bakery", "EUR", "en")
    );
    assert_eq!(stored.rules, loy::domain::ProgramRules::default());
    let list = owner.get("/admin/programs").await;
    assert_eq!(list.status, 200);
    let row = &list.body[list.body.find(r#"id="program-bakery""#).expect("the new program is listed")..];
    let row = &row[..row.find("</tr>").unwrap()];
    for part in
        ["Bakery", "EUR", "active", "/admin/programs/bakery/rules", "/admin/programs/bakery/design", "/p/bakery"]
    {
        assert!(row.contains(part), "{part} in {row}");
    }
    let default_row = &list.body[list.body.find(r#"id="program-default""#).unwrap()..];
    assert!(
        default_row[..default_row.find("</tr>").unwrap()].contains(r#"href="/""#),
        "the default program's form is /"
    );
    assert!(list.body.contains(r#"href="/admin/programs""#), "the navigation leads to programs");
    let audit = owner.audit("program.created").await;
    assert_eq!(audit[0].target.as_deref(), Some("bakery"));
    assert_eq!(audit[0].details["after"]["currency"], "EUR");

    let enrolled = app
        .post_enrollment(&json!({"first_name": "Ann", "phone": crate::helpers::unique_phone(), "consent": true,
            "program": "bakery"}))
        .await;
    assert_eq!(enrolled.status(), 201);
    let number =
        enrolled.json::<serde_json::Value>().await.unwrap()["card"]["card_number"].as_str().unwrap().to_owned();
    let card_version = app.card(&number).await.version;
    let version = stored.version.to_string();
    let edited = owner
        .post(
            "/admin/programs/bakery",
            &[("name", "Bakery & Co"), ("currency", "RUB"), ("locale", "ru"), ("version", &version)],
        )
        .await;
    assert_eq!(edited.status, 303, "{}", edited.body);
    let stored = app.store.program("bakery").await.unwrap().unwrap();
    assert_eq!(
        (stored.name.as_str(), stored.currency.code.as_str(), stored.locale.map(|l| l.code()).unwrap_or_default()),
        ("Bakery & Co", "RUB", "ru")
    );
    assert_eq!(stored.version, version.parse::<i64>().unwrap() + 1);
    assert!(app.card(&number).await.version > card_version, "the new name reaches the passes: every card moves");
    assert!(stored.time_zone.is_utc(), "a form without a time zone leaves it as it was");
    let audit = owner.audit("program.updated").await;
    assert_eq!(audit[0].details["before"]["name"], "Bakery");
    assert_eq!(audit[0].details["after"]["name"], "Bakery & Co");
    assert_eq!(audit[0].details["before"]["currency"], "EUR");
    assert!(owner.get("/admin/programs/bakery?saved=1").await.body.contains("Saved."));
    // The time zone: one of the IANA database's, offered in a list.
    let page = owner.get("/admin/programs/bakery").await;
    assert!(page.body.contains(r#"<option value="UTC" selected>UTC</option>"#), "UTC until chosen");
    assert!(page.body.contains(r#"<option value="America/New_York">America/New York</option>"#));
    let version = stored.version.to_string();
    for (zone, status) in [("Europe/Atlantis", 422), ("America/New_York", 303)] {
        let fields = [("name", "Bakery & Co"), ("currency", "RUB"), ("locale", "ru"), ("time_zone", zone)];
        let answer = owner.post("/admin/programs/bakery", &[&fields[..], &[("version", &version)]].concat()).await;
        assert_eq!(answer.status, status, "{zone}");
        assert_eq!(answer.body.contains(r#"id="e-time_zone""#), status == 422);
    }
    let stored = app.store.program("bakery").await.unwrap().unwrap();
    assert_eq!(stored.time_zone.name(), "America/New_York");
    assert_eq!(owner.audit("program.updated").await[0].details["after"]["time_zone"], "America/New_York");

    let archived = owner.post("/admin/programs/bakery/archive", &[]).await;
    assert_eq!(archived.status, 303);
    assert!(app.store.program("bakery").await.unwrap().unwrap().archived_at.is_some());
    let list = owner.get("/admin/programs").await;
    let row = &list.body[list.body.find(r#"id="program-bakery""#).unwrap()..];
    assert!(row[..row.find("</tr>").unwrap()].contains("archived"));
    let audit = owner.audit("program.archived").await;
    assert_eq!(
        (audit[0].details["before"]["archived"].as_bool(), audit[0].details["after"]["archived"].as_bool()),
        (Some(false), Some(true))
    );

    assert_eq!(owner.post("/admin/programs/bakery/unarchive", &[]).await.status, 303);
    assert!(app.store.program("bakery").await.unwrap().unwrap().archived_at.is_none());
    assert_eq!(owner.audit("program.unarchived").await.len(), 1);

    let refused = owner.post("/admin/programs/default/archive", &[]).await;
    assert_eq!(refused.status, 409);
    assert_eq!(
        text_of_id(&refused.body, "program-problem").as_deref(),
        Some("The default program cannot be archived.")
    );
    assert!(app.store.program("default").await.unwrap().unwrap().archived_at.is_none());
    assert_eq!(owner.get("/admin/programs/nothing-here").await.status, 404);
}

async fn a_taken_or_invalid_program_id_is_refused_next_to_the_field(kind: StoreKind) {
    let app = spawn_app(kind).await;
    let owner = app.signed_in(Role::Owner).await;
    let before = app.store.programs().await.unwrap().len();

    let taken = owner
        .post("/admin/programs", &[("slug", "default"), ("name", "Other"), ("currency", "RUB"), ("locale", "ru")])
        .await;

    assert_eq!(taken.status, 409);
    assert_eq!(text_of_id(&taken.body, "e-slug").as_deref(), Some("A program with this id exists. Choose another id."));
    assert!(taken.body.contains(r#"value="Other""#), "the form keeps what was typed");
    let invalid = owner
        .post("/admin/programs", &[("slug", "Bad Slug"), ("name", " "), ("currency", "RUBLES"), ("locale", "de")])
        .await;
    assert_eq!(invalid.status, 422);
    for (field, message) in [
        ("e-slug", "Use 1–40 lowercase letters, digits and dashes, starting with a letter or digit."),
        ("e-name", "Enter a name of up to 100 characters."),
        ("e-currency", "Enter a three-letter currency code such as RUB, EUR or USD."),
        ("e-locale", "Choose Russian or English."),
    ] {
        assert_eq!(text_of_id(&invalid.body, field).as_deref(), Some(message), "{field}");
    }
    assert_eq!(app.store.programs().await.unwrap().len(), before, "nothing was created");
    assert!(owner.audit("program.created").await.is_empty());
}

async fn managers_read_programs_and_rules_but_cannot_change_them(kind: StoreKind) {
    let app = spawn_app(kind).await;
    let manager = app.signed_in(Role::Manager).await;
    let version = version_of(&manager, "default").await;

    let list = manager.get("/admin/programs").await;
    assert_eq!(list.status, 200);
    assert!(list.body.contains(r#"id="program-default""#));
    assert!(!list.body.contains(r#"action="/admin/programs""#), "no creation form for managers");
    let settings = manager.get("/admin/programs/default").await;
    assert_eq!(settings.status, 200);
    assert!(settings.body.contains("Only owners can change this.") && !settings.body.contains(r#"name="version""#));
    let rules = manager.get("/admin/programs/default/rules").await;
    assert_eq!(rules.status, 200);
    assert!(rules.body.contains(r#"id="tiers""#) && rules.body.contains("Бронза"));
    assert!(!rules.body.contains(r#"name="tier_0_id""#), "managers get no form");

    let created =
        manager.post("/admin/programs", &[("slug", "x"), ("name", "X"), ("currency", "RUB"), ("locale", "ru")]).await;
    let edited = manager
        .post(
            "/admin/programs/default",
            &[("name", "X"), ("currency", "RUB"), ("locale", "ru"), ("version", &version.to_string())],
        )
        .await;
    let archived = manager.post("/admin/programs/default/archive", &[]).await;
    let mut form = default_rules_form(version);
    set(&mut form, "tier_0_cashback", "50");
    let ruled = post_rules(&manager, "default", &form).await;
    for page in [&created, &edited, &archived, &ruled] {
        assert_eq!(page.status, 403, "{}", page.body);
    }
    assert!(app.store.program("x").await.unwrap().is_none());
    let stored = app.store.program("default").await.unwrap().unwrap();
    assert_eq!((stored.version, stored.rules.tiers[0].cashback_bp), (version, 500));
}

async fn cashiers_get_the_consoles_403_for_programs(kind: StoreKind) {
    let app = spawn_app(kind).await;
    let cashier = app.signed_in(Role::Cashier).await;

    for path in ["/admin/programs", "/admin/programs/default", "/admin/programs/default/rules"] {
        assert_eq!(cashier.get(path).await.status, 403, "{path}");
    }
    assert_eq!(cashier.post("/admin/programs/default/archive", &[]).await.status, 403);
    assert!(!cashier.get("/admin").await.body.contains(r#"href="/admin/programs""#), "not in a cashier's navigation");
}

async fn every_rules_problem_is_shown_next_to_its_field_and_nothing_is_saved(kind: StoreKind) {
    let app = spawn_app(kind).await;
    let owner = app.signed_in(Role::Owner).await;
    let before = app.store.program("default").await.unwrap().unwrap();
    let cases: &[(&str, &str, &str)] = &[
        ("tier_0_threshold", "10", "The first tier starts at 0 points."),
        ("tier_2_threshold", "400", "Make this threshold higher than the previous tier's."),
        ("tier_1_threshold", "many", "Enter a whole number."),
        ("tier_1_cashback", "100.5", "Cashback cannot exceed 100 %."),
        ("tier_1_cashback", "-1", "Enter a percentage from 0 to 100, with up to two decimals (7.5)."),
        ("tier_1_cashback", "7.125", "Enter a percentage from 0 to 100, with up to two decimals (7.5)."),
        ("tier_3_id", "silver", "Another tier has this id."),
        ("tier_3_id", "Platinum!", "Use 1–40 lowercase letters, digits and dashes."),
        ("tier_2_name_en", " ", "Enter a name."),
        ("tier_2_name_ru", "", "Enter a name."),
        ("welcome_bonus", "-5", "Enter 0 or more."),
        ("welcome_bonus", "1.5", "Enter a whole number."),
        ("min_redemption", "-1", "Enter 0 or more."),
        ("referral_bonus", "-1", "Enter 0 or more."),
        ("referral_min_purchase", "abc", "Enter an amount such as 100 or 100.50."),
        ("max_redeem_percent", "101", "Enter a percentage from 0 to 100."),
        ("max_redeem_percent", "-1", "Enter a whole percentage from 0 to 100."),
        ("expiry_days", "0", "Enter at least 1 day, or leave it empty for never."),
        ("expiry_days", "soon", "Enter a whole number of days, or leave it empty."),
        ("welcome_at", "never", "Choose when the welcome bonus is credited."),
    ];

    for (field, typed, message) in cases {
        let mut form = default_rules_form(before.version);
        set(&mut form, field, typed);
        let page = post_rules(&owner, "default", &form).await;
        assert_eq!(page.status, 422, "{field}={typed}");
        let error_id = format!("e-{field}");
        assert_eq!(text_of_id(&page.body, &error_id).as_deref(), Some(*message), "{field}={typed}");
        let input = &page.body[page.body.find(&format!(r#"id="f-{field}""#)).unwrap()..];
        assert!(input[..input.find('>').unwrap()].contains(&format!(r#"aria-describedby="{error_id}""#)), "{field}");
        assert!(page.body.contains("Nothing was saved"), "{field}={typed}");
        if !typed.trim().is_empty() && *field != "welcome_at" {
            assert!(page.body.contains(&format!(r#"value="{typed}""#)), "{typed} is kept");
        }
    }
    let mut no_tiers = default_rules_form(before.version);
    no_tiers.retain(|(k, _)| !k.starts_with("tier_"));
    let page = post_rules(&owner, "default", &no_tiers).await;
    assert_eq!(text_of_id(&page.body, "e-tiers").as_deref(), Some("A program needs at least one tier."));

    assert_eq!(app.store.program("default").await.unwrap().unwrap(), before, "nothing was saved");
    assert!(owner.audit("program.rules_changed").await.is_empty());
}

async fn a_valid_rules_change_is_saved_audited_and_applies_from_the_next_earn(kind: StoreKind) {
    let app = spawn_app(kind).await;
    let owner = app.signed_in(Role::Owner).await;
    let pos = app.api_key(Scope::Pos).await;
    let number = app.new_card().await;
    let earn =
        |amount: i64| app.pos_post(format!("/api/v1/cards/{number}/earn"), &pos, json!({"purchase_amount": amount}));
    // Bronze, 5 %: 1 000.00 ₽ → 50 points.
    let first = earn(100_000).await;
    assert_eq!(first.body["points"], 50, "{first:?}");

    let version = version_of(&owner, "default").await;
    let card_version = app.card(&number).await.version;
    let mut form = default_rules_form(version);
    set(&mut form, "tier_0_cashback", "7,5");
    set(&mut form, "tier_0_name_en", "Starter");
    set(&mut form, "expiry_days", "365");
    set(&mut form, "referral_min_purchase", "250.50");
    let saved = post_rules(&owner, "default", &form).await;

    assert_eq!(saved.status, 303, "{}", saved.body);
    assert_eq!(saved.location.as_deref(), Some("/admin/programs/default/rules?saved=1"));
    let stored = app.store.program("default").await.unwrap().unwrap();
    assert_eq!((stored.rules.tiers[0].cashback_bp, stored.rules.tiers[0].name_en.as_str()), (750, "Starter"));
    assert_eq!((stored.rules.expiry_days, stored.rules.referral_min_purchase), (Some(365), 25_050));
    assert_eq!(stored.version, version + 1);
    let card = app.card(&number).await;
    assert!(card.version > card_version, "a renamed tier reaches the passes: every card moves");
    assert!(card.push_pending_since.is_some(), "and is owed a push");
    let audit = owner.audit("program.rules_changed").await;
    assert_eq!(audit.len(), 1);
    assert_eq!(audit[0].target.as_deref(), Some("default"));
    assert_eq!(audit[0].details["before"]["tiers"][0]["cashback_bp"], 500);
    assert_eq!(audit[0].details["after"]["tiers"][0]["cashback_bp"], 750);
    assert_eq!(audit[0].details["before"]["expiry_days"], serde_json::Value::Null);
    assert_eq!(audit[0].details["after"]["expiry_days"], 365);
    let page = owner.get("/admin/programs/default/rules?saved=1").await;
    assert!(page.body.contains(r#"value="7.5""#) && page.body.contains(r#"id="rules-saved""#));

    // 7.5 % from the next purchase on; the earlier one keeps its 50 points.
    let second = earn(100_000).await;
    assert_eq!(second.body["points"], 75, "{second:?}");
    let points: Vec<i64> = app.entries(&number).await.iter().map(|e| e.points).collect();
    assert!(points.contains(&50) && points.contains(&75), "{points:?}");
    assert_eq!(app.balance(&number).await, 100 + 50 + 75);

    let unchanged = post_rules(&owner, "default", &default_rules_form(version + 1)).await;
    assert_eq!(unchanged.status, 303);
    assert_eq!(owner.audit("program.rules_changed").await.len(), 2, "going back is a change too");
    let again = post_rules(&owner, "default", &default_rules_form(version + 2)).await;
    assert_eq!(again.status, 303);
    assert_eq!(owner.audit("program.rules_changed").await.len(), 2, "saving the same rules records nothing");
}

async fn a_save_drawn_from_an_older_version_is_refused_as_a_conflict(kind: StoreKind) {
    let app = spawn_app(kind).await;
    let owner = app.signed_in(Role::Owner).await;
    let other = app.signed_in(Role::Owner).await;
    let version = version_of(&owner, "default").await;
    let mut first = default_rules_form(version);
    set(&mut first, "welcome_bonus", "200");
    assert_eq!(post_rules(&other, "default", &first).await.status, 303);

    let mut stale = default_rules_form(version);
    set(&mut stale, "min_redemption", "10");
    let page = post_rules(&owner, "default", &stale).await;

    assert_eq!(page.status, 409);
    assert!(text_of_id(&page.body, "rules-problem").unwrap().starts_with("Someone else changed this program"));
    assert!(page.body.contains(r#"name="welcome_bonus" type="text" value="200""#), "the form shows the saved values");
    let stored = app.store.program("default").await.unwrap().unwrap();
    assert_eq!((stored.rules.welcome_bonus, stored.rules.min_redemption), (200, 100));

    let settings = owner
        .post(
            "/admin/programs/default",
            &[("name", "Renamed"), ("currency", "RUB"), ("locale", "ru"), ("version", &version.to_string())],
        )
        .await;
    assert_eq!(settings.status, 409);
    assert!(text_of_id(&settings.body, "program-problem").unwrap().starts_with("Someone else changed this program"));
    assert_ne!(app.store.program("default").await.unwrap().unwrap().name, "Renamed");
}

async fn tier_rows_are_added_and_removed_without_saving(kind: StoreKind) {
    let app = spawn_app(kind).await;
    let owner = app.signed_in(Role::Owner).await;
    let before = app.store.program("default").await.unwrap().unwrap();
    let page = owner.get("/admin/programs/default/rules").await;
    assert!(page.body.contains(r#"name="tier_3_id""#) && !page.body.contains(r#"name="tier_4_id""#));

    let mut form = default_rules_form(before.version);
    form.push(("add_row".into(), "1".into()));
    let added = post_rules(&owner, "default", &form).await;
    assert_eq!(added.status, 200);
    assert!(added.body.contains(r#"name="tier_4_id""#), "an empty fifth row");

    let mut form = default_rules_form(before.version);
    form.push(("remove_row".into(), "1".into()));
    let removed = post_rules(&owner, "default", &form).await;
    assert_eq!(removed.status, 200);
    assert!(!removed.body.contains("Серебро") && removed.body.contains("Золото"));
    assert_eq!(app.store.program("default").await.unwrap().unwrap(), before, "neither button saves");

    // The redrawn form, saved: three tiers and an empty row that is ignored.
    let mut three = default_rules_form(before.version);
    three.retain(|(k, _)| !k.starts_with("tier_1_"));
    for (k, _) in three.iter_mut() {
        for i in 2..4 {
            if let Some(rest) = k.strip_prefix(&format!("tier_{i}_")) {
                *k = format!("tier_{}_{rest}", i - 1);
                break;
            }
        }
    }
    three.push(("tier_3_id".into(), String::new()));
    let saved = post_rules(&owner, "default", &three).await;
    assert_eq!(saved.status, 303, "{}", saved.body);
    let ids: Vec<String> =
        app.store.program("default").await.unwrap().unwrap().rules.tiers.into_iter().map(|t| t.id).collect();
    assert_eq!(ids, ["bronze", "gold", "platinum"]);
}

async fn every_program_form_refuses_a_missing_or_wrong_csrf_token(kind: StoreKind) {
    let app = spawn_app(kind).await;
    let owner = app.signed_in(Role::Owner).await;
    let created = owner
        .post("/admin/programs", &[("slug", "shop"), ("name", "Shop"), ("currency", "RUB"), ("locale", "ru")])
        .await;
    assert_eq!(created.status, 303);
    let before = app.store.program("shop").await.unwrap().unwrap();
    let version = before.version.to_string();
    let rules = default_rules_form(before.version);
    let rules: Vec<(&str, &str)> = rules.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let forms: Vec<(&str, Vec<(&str, &str)>)> = vec![
        ("/admin/programs", vec![("slug", "other"), ("name", "Other"), ("currency", "RUB"), ("locale", "ru")]),
        ("/admin/programs/shop", vec![("name", "X"), ("currency", "EUR"), ("locale", "en"), ("version", &version)]),
        ("/admin/programs/shop/archive", vec![]),
        ("/admin/programs/shop/rules", rules),
    ];

    for (path, fields) in &forms {
        assert_eq!(owner.post_raw(path, fields).await.status, 403, "{path} without a token");
        let mut wrong = fields.clone();
        wrong.push(("csrf", "not-the-token"));
        assert_eq!(owner.post_raw(path, &wrong).await.status, 403, "{path} with a wrong token");
    }
    assert!(app.store.program("other").await.unwrap().is_none());
    assert_eq!(app.store.program("shop").await.unwrap().unwrap(), before, "nothing changed");
}
