//! Stamp cards in the staff console, on both stores: creating a stamps program, its rules editor
//! (problems next to their fields, nothing saved until all are fixed), the cashier screen's
//! stamp, reward and refund, and the designer's stamp picture and strip preview.

use loy::domain::Role;
use serde_json::json;

use crate::admin_cashier::{input_value, test_id};
use crate::admin_helpers::{Page, Staff};
use crate::helpers::StoreKind;
use crate::on_both_stores;
use crate::stamps::{app, cafe, enroll};

on_both_stores!(
    an_owner_creates_a_stamps_program_and_corrects_its_stamp_rules,
    the_cashier_stamps_gives_the_reward_and_refunds_each_form_once,
    the_designer_offers_the_stamp_picture_and_draws_the_strip_as_typed,
);

async fn an_owner_creates_a_stamps_program_and_corrects_its_stamp_rules(kind: StoreKind) {
    let app = app(kind).await;
    let owner = app.signed_in(Role::Owner).await;
    let fields = |per: &'static str| {
        vec![
            ("slug", "coffee"),
            ("name", "Coffee"),
            ("currency", "RUB"),
            ("mechanic", "stamps"),
            ("stamps_per_reward", per),
            ("reward", "Free coffee"),
        ]
    };
    let refused = owner.post("/admin/programs", &fields("40")).await;
    assert_eq!(refused.status, 422);
    assert!(
        refused.body.contains(r#"id="e-stamps_per_reward""#) && refused.body.contains("from 2 to 30"),
        "{}",
        refused.body
    );
    assert!(app.store.program("coffee").await.unwrap().is_none());
    let created = owner.post("/admin/programs", &fields("12")).await;
    assert_eq!(created.status, 303, "{}", created.body);
    let stored = app.store.program("coffee").await.unwrap().unwrap();
    let stamps = stored.rules.stamp_rules().expect("a stamps program");
    assert_eq!((stamps.stamps_per_reward, stamps.reward.ru.as_str()), (12, "Free coffee"));
    assert_eq!(stored.design.labels.balance.en, "Stamps");

    let rules = owner.get("/admin/programs/coffee/rules").await;
    assert!(rules.body.contains(r#"id="stamp-rules""#) && !rules.body.contains(r#"id="tier-0""#));
    assert_eq!(input_value(&rules.body, "stamps_per_reward").as_deref(), Some("12"));
    let version = input_value(&rules.body, "version").unwrap();
    let form = |per: &str, ru: &str, amount: &str, limit: &str| {
        vec![
            ("version".to_owned(), version.clone()),
            ("stamps_per_reward".to_owned(), per.to_owned()),
            ("stamps_per_purchase".to_owned(), "1".to_owned()),
            ("amount_per_stamp".to_owned(), amount.to_owned()),
            ("reward_ru".to_owned(), ru.to_owned()),
            ("reward_en".to_owned(), "Free coffee".to_owned()),
            ("reward_expiry_days".to_owned(), String::new()),
            ("welcome_stamps".to_owned(), "1".to_owned()),
            ("daily_limit".to_owned(), limit.to_owned()),
        ]
    };
    let bad = post(&owner, form("1", "", "1,2,3", "x")).await;
    assert_eq!(bad.status, 422);
    for (field, words) in [
        ("stamps_per_reward", "from 2 to 30"),
        ("reward_ru", "in both languages"),
        ("amount_per_stamp", "such as 100"),
        ("daily_limit", "whole number"),
    ] {
        let at = bad.body.find(&format!(r#"id="e-{field}""#)).unwrap_or_else(|| panic!("no error for {field}"));
        assert!(bad.body[at..at + 200].contains(words), "{field}: {}", &bad.body[at..at + 200]);
    }
    assert_eq!(app.store.program("coffee").await.unwrap().unwrap().rules, stored.rules, "nothing saved");
    let card = enroll(&app, &app.api_key(loy::domain::Scope::Pos).await, "coffee").await;
    let before = app.card(&card).await.version;
    let saved = post(&owner, form("8", "Кофе в подарок", "300", "3")).await;
    assert_eq!(saved.status, 303, "{}", saved.body);
    let after = app.store.program("coffee").await.unwrap().unwrap();
    let s = after.rules.stamp_rules().unwrap();
    assert_eq!(
        (s.stamps_per_reward, s.amount_per_stamp, s.daily_limit, s.welcome_stamps),
        (8, Some(30_000), Some(3), 1)
    );
    assert_eq!(s.reward.ru, "Кофе в подарок");
    assert!(app.card(&card).await.version > before, "the round's size is on the pass: the cards follow");
    let audit = owner.audit("program.rules_changed").await;
    assert_eq!(audit[0].details["after"]["stamps"]["stamps_per_reward"], 8);
}

async fn post(owner: &Staff<'_>, form: Vec<(String, String)>) -> Page {
    let fields: Vec<(&str, &str)> = form.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    owner.post("/admin/programs/coffee/rules", &fields).await
}

/// Sends the till's form on the card shown in `page` with `op`.
async fn till(staff: &Staff<'_>, page: &Page, op: &str) -> Page {
    let serial = input_value(&page.body, "serial").unwrap();
    let form_id = input_value(&page.body, "form_id").unwrap();
    staff.post("/admin/cashier", &[("serial", &serial), ("form_id", &form_id), ("op", op)]).await
}

async fn the_cashier_stamps_gives_the_reward_and_refunds_each_form_once(kind: StoreKind) {
    let app = app(kind).await;
    cafe(&app, |_| {}).await;
    let number = enroll(&app, &app.api_key(loy::domain::Scope::Pos).await, "cafe").await;
    let cashier = app.signed_in(Role::Cashier).await;
    // The card number finds the card from the default program's till, which switches to its program.
    let found = cashier.get(&format!("/admin/cashier?card={number}")).await;
    assert_eq!(found.location.as_deref(), Some(format!("/admin/cashier?card={number}&program=cafe").as_str()));
    let mut page = cashier.get(found.location.as_deref().unwrap()).await;
    assert_eq!(test_id(&page.body, "stamps").as_deref(), Some("0 of 10"));
    assert!(page.body.contains(r#"id="op-redeem-reward" disabled"#), "no reward to give yet");
    for i in 1..=10 {
        let done = till(&cashier, &page, "stamp").await;
        assert_eq!(done.status, 200, "{}", done.body);
        page = done;
        assert_eq!(test_id(&page.body, "stamps"), Some(format!("{} of 10", i % 10)));
    }
    assert_eq!(test_id(&page.body, "reward-issued").as_deref(), Some("Reward earned! Rewards waiting:"));
    assert_eq!(test_id(&page.body, "rewards").as_deref(), Some("1"));
    let given = till(&cashier, &page, "redeem_reward").await;
    assert_eq!(test_id(&given.body, "reward-given").as_deref(), Some("Reward given. Rewards waiting:"));
    assert_eq!(test_id(&given.body, "rewards").as_deref(), Some("0"));
    let again = till(&cashier, &given, "redeem_reward").await;
    assert_eq!(again.status, 422);
    assert!(again.body.contains("This card has no reward waiting."), "{}", again.body);
    // A replayed form is applied once.
    let replay = till(&cashier, &page, "redeem_reward").await;
    assert_eq!(replay.status, 200);
    assert_eq!(app.card(&number).await.rewards, 0);
    let stamped = till(&cashier, &again, "stamp").await;
    let refunded = till(&cashier, &stamped, "refund").await;
    assert_eq!(refunded.status, 200, "{}", refunded.body);
    assert_eq!(test_id(&refunded.body, "stamps").as_deref(), Some("0 of 10"));
    let card = app.card(&number).await;
    assert_eq!((card.balance, card.rewards, card.lifetime_earned), (0, 0, 10));
    let owner = app.signed_in(Role::Owner).await;
    let customer = owner.get(&format!("/admin/customers/{}", card.serial)).await;
    assert_eq!(customer.status, 200);
    assert_eq!(
        (test_id(&customer.body, "balance"), test_id(&customer.body, "rewards")),
        (Some("0".into()), Some("0".into()))
    );
    assert!(customer.body.contains("reward_redeemed") && customer.body.contains("reward_issued"), "the history");
    let audit = cashier.audit("stamp").await;
    assert_eq!(audit.len(), 11);
    assert_eq!(cashier.audit("redeem_reward").await[0].details["rewards_after"], json!(0));
}

async fn the_designer_offers_the_stamp_picture_and_draws_the_strip_as_typed(kind: StoreKind) {
    let app = app(kind).await;
    cafe(&app, |_| {}).await;
    let owner = app.signed_in(Role::Owner).await;
    let page = owner.get("/admin/programs/cafe/design").await;
    assert_eq!(page.status, 200);
    assert!(page.body.contains(r#"<select id="f-stamp_icon" name="stamp_icon""#));
    assert!(page.body.contains(r#"id="slot-stamp""#) && !page.body.contains(r#"id="slot-strip""#));
    let strip = &page.body[page.body.find("/design/stamps.png?").expect("the preview draws the strip")..];
    let strip = crate::admin_cashier::unescape(&strip[..strip.find('"').unwrap()]);
    let png = owner.get(&format!("/admin/programs/cafe{strip}")).await;
    assert_eq!(png.status, 200);
    let saved = owner
        .post(
            "/admin/programs/cafe/design",
            &[
                ("version", &input_value(&page.body, "version").unwrap()),
                ("action", "save"),
                ("stamp_icon", "scissors"),
                ("background_color", "#1c2b4a"),
                ("foreground_color", "#ffffff"),
                ("label_color", "#f4c462"),
            ],
        )
        .await;
    assert!(saved.status == 303 || saved.status == 200, "{}", saved.status);
    assert_eq!(
        app.store.program("cafe").await.unwrap().unwrap().draft.unwrap().stamp_icon,
        loy::domain::StampIcon::Scissors
    );
    let manager = app.signed_in(Role::Manager).await;
    let response = app
        .client
        .get(app.url("/admin/programs/cafe/design/stamps.png?icon=car&filled=3&bg=rgb(0,0,0)"))
        .header("cookie", manager.cookie_header())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let bytes = response.bytes().await.unwrap();
    assert_eq!(loy::apple::template::png_size(&bytes), Some((750, 288)));
    let points = owner.get("/admin/programs/default/design/stamps.png?filled=1").await;
    assert_eq!(points.status, 404, "a points program has no strip to draw");
    let cashier = app.signed_in(Role::Cashier).await;
    assert_eq!(cashier.get("/admin/programs/cafe/design/stamps.png").await.status, 403);
}
