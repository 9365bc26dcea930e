//! Program rules through the POS API: tiers, cashback, redemption limits, reversals, expiry,
//! referrals, blocked cards.

use chrono::Duration;
use loy::domain::{EntryKind, Scope};
use serde_json::json;

use crate::helpers::{StoreKind, TestApp, TestEnv, spawn_app, spawn_app_in, unique_phone};
use crate::on_both_stores;

on_both_stores!(
    cashback_follows_the_tier_and_tiers_switch_at_their_thresholds_and_back_after_a_reverse,
    redemption_enforces_the_minimum_the_balance_and_the_maximum_share,
    reversing_a_redeem_refunds_the_points_and_a_second_reversal_is_refused,
    reversing_an_earn_whose_points_were_spent_stops_at_zero_and_says_so,
    points_expire_oldest_first_when_the_program_sets_an_expiry,
    an_invited_customers_first_purchase_pays_the_referral_bonus_to_both_once,
    a_purchase_below_the_minimum_does_not_pay_the_referral_bonus,
    refunding_the_qualifying_purchase_takes_both_referral_bonuses_back_as_far_as_unspent,
    the_welcome_bonus_can_wait_for_the_first_purchase,
    a_blocked_card_refuses_earn_and_redeem_until_unblocked,
);

async fn cashback_follows_the_tier_and_tiers_switch_at_their_thresholds_and_back_after_a_reverse(kind: StoreKind) {
    let app = spawn_app(kind).await;
    let pos = app.api_key(Scope::Pos).await;
    let number = app.new_card().await;
    let earn =
        |amount: i64| app.pos_post(format!("/api/v1/cards/{number}/earn"), &pos, json!({"purchase_amount": amount}));

    // Bronze, 5 %: 9 980.00 ₽ → 499 points, one short of Silver.
    let first = earn(998_000).await;
    assert_eq!((first.body["points"].as_i64(), first.body["tier"].as_str()), (Some(499), Some("bronze")));
    // 20.00 ₽ → 1 point: lifetime 500, Silver from now on.
    let second = earn(2_000).await;
    assert_eq!((second.body["points"].as_i64(), second.body["tier"].as_str()), (Some(1), Some("silver")));
    // Silver, 10 %: 1 000.00 ₽ → 100 points.
    let third = earn(100_000).await;
    assert_eq!((third.body["points"].as_i64(), third.body["tier"].as_str()), (Some(100), Some("silver")));
    let card = app.card(&number).await;
    assert_eq!((card.lifetime_earned, card.tier.as_str(), card.balance), (600, "silver", 700));

    // Gold at 1 500, Platinum at 3 000 (15 % and 20 %).
    let to_gold = earn(900_000).await;
    assert_eq!((to_gold.body["points"].as_i64(), to_gold.body["tier"].as_str()), (Some(900), Some("gold")));
    let gold_rate = earn(100_000).await;
    assert_eq!(gold_rate.body["points"], 150);
    let to_platinum = earn(900_000).await;
    assert_eq!(to_platinum.body["tier"], "platinum");
    assert_eq!(earn(100_000).await.body["points"], 200);

    // Refunding the big purchase takes the customer back below Platinum.
    let reversed = app
        .pos_post(
            &format!("/api/v1/transactions/{}/reverse", to_platinum.body["transaction_id"].as_str().unwrap()),
            &pos,
            &json!({}),
        )
        .await;
    assert_eq!(reversed.status, 200, "{reversed:?}");
    assert_eq!(reversed.body["tier"], "gold");
    let card = app.card(&number).await;
    assert_eq!(card.tier, "gold");
    let tiers: Vec<String> = app.entries(&number).await.iter().map(|e| e.tier_after.clone()).collect();
    assert!(tiers.windows(2).any(|w| w[0] == "platinum" && w[1] == "gold"), "the tier change is recorded: {tiers:?}");
    app.assert_ledger_consistent().await;
}

async fn redemption_enforces_the_minimum_the_balance_and_the_maximum_share(kind: StoreKind) {
    let app = spawn_app(kind).await;
    let admin = app.api_key(Scope::Admin).await;
    let number = app.card_with_balance(&admin, 500).await;
    let redeem = |body: serde_json::Value| app.pos_post(format!("/api/v1/cards/{number}/redeem"), &admin, body);

    let below = redeem(json!({"points": 99})).await;
    assert_eq!((below.status, below.body["error"]["code"].as_str()), (422, Some("below_minimum_redemption")));
    let too_many = redeem(json!({"points": 501})).await;
    assert_eq!((too_many.status, too_many.body["error"]["code"].as_str()), (422, Some("insufficient_points")));
    // 50 % of a 300.00 ₽ purchase is 150 points.
    let over_share = redeem(json!({"points": 151, "purchase_amount": 30_000})).await;
    assert_eq!((over_share.status, over_share.body["error"]["code"].as_str()), (422, Some("exceeds_max_share")));
    assert_eq!(over_share.body["error"]["field"], "points");
    assert_eq!(app.balance(&number).await, 500, "refusals change nothing");
    assert_eq!(app.entries(&number).await.len(), 2);

    let ok = redeem(json!({"points": 150, "purchase_amount": 30_000, "order_id": "R-1"})).await;
    assert_eq!(ok.status, 200, "{ok:?}");
    assert_eq!((ok.body["points"].as_i64(), ok.body["balance"].as_i64()), (Some(-150), Some(350)));
    assert_eq!(ok.body["type"], "redeem");
    let lookup = app.pos_get(&format!("/api/v1/cards/{number}"), &admin).await;
    assert_eq!(lookup.body["redeem"], json!({"available_points": 350, "min_redemption": 100, "max_share_percent": 50}));
}

async fn reversing_a_redeem_refunds_the_points_and_a_second_reversal_is_refused(kind: StoreKind) {
    let app = spawn_app(kind).await;
    let admin = app.api_key(Scope::Admin).await;
    let number = app.card_with_balance(&admin, 400).await;
    let redeemed = app.pos_post(&format!("/api/v1/cards/{number}/redeem"), &admin, &json!({"points": 300})).await;
    let tx = redeemed.body["transaction_id"].as_str().unwrap().to_owned();

    let reversed =
        app.pos_post(&format!("/api/v1/transactions/{tx}/reverse"), &admin, &json!({"reason": "refund"})).await;

    assert_eq!(reversed.status, 200, "{reversed:?}");
    assert_eq!((reversed.body["points"].as_i64(), reversed.body["balance"].as_i64()), (Some(300), Some(400)));
    assert_eq!(reversed.body["reversed_transaction_id"], tx.as_str());
    assert!(reversed.body.get("points_not_reversed").is_none());
    let twice = app.pos_post(&format!("/api/v1/transactions/{tx}/reverse"), &admin, &json!({})).await;
    assert_eq!((twice.status, twice.body["error"]["code"].as_str()), (409, Some("already_reversed")));
    let reverse_a_reverse = app
        .pos_post(
            &format!("/api/v1/transactions/{}/reverse", reversed.body["transaction_id"].as_str().unwrap()),
            &admin,
            &json!({}),
        )
        .await;
    assert_eq!(
        (reverse_a_reverse.status, reverse_a_reverse.body["error"]["code"].as_str()),
        (422, Some("not_reversible"))
    );
    let unknown = app.pos_post("/api/v1/transactions/tx_nosuchthing/reverse", &admin, &json!({})).await;
    assert_eq!((unknown.status, unknown.body["error"]["code"].as_str()), (404, Some("transaction_not_found")));
    assert_eq!(app.balance(&number).await, 400);
    app.assert_ledger_consistent().await;
}

async fn reversing_an_earn_whose_points_were_spent_stops_at_zero_and_says_so(kind: StoreKind) {
    let app = spawn_app(kind).await;
    let pos = app.api_key(Scope::Pos).await;
    let number = app.new_card().await;
    // 100 welcome + 200 earned (4 000.00 ₽ at 5 %), then 250 spent: 50 left.
    let earned =
        app.pos_post(&format!("/api/v1/cards/{number}/earn"), &pos, &json!({"purchase_amount": 400_000})).await;
    assert_eq!(earned.body["points"], 200);
    app.pos_post(&format!("/api/v1/cards/{number}/redeem"), &pos, &json!({"points": 250})).await;

    let reversed = app
        .pos_post(
            &format!("/api/v1/transactions/{}/reverse", earned.body["transaction_id"].as_str().unwrap()),
            &pos,
            &json!({}),
        )
        .await;

    assert_eq!(reversed.status, 200, "{reversed:?}");
    assert_eq!(reversed.body["points"], -50);
    assert_eq!(reversed.body["balance"], 0);
    assert_eq!(reversed.body["points_not_reversed"], 150, "it says what could not be taken back");
    assert_eq!(app.card(&number).await.lifetime_earned, 0, "the refunded purchase no longer counts toward the tier");
    app.assert_ledger_consistent().await;
}

async fn points_expire_oldest_first_when_the_program_sets_an_expiry(kind: StoreKind) {
    let app = spawn_app(kind).await;
    let pos = app.api_key(Scope::Pos).await;
    let number = app.new_card().await; // 100 welcome points, day 0
    let mut program = app.store.program("default").await.unwrap().unwrap();
    let earn =
        |amount: i64| app.pos_post(format!("/api/v1/cards/{number}/earn"), &pos, json!({"purchase_amount": amount}));

    app.clock.advance(Duration::days(20));
    earn(400_000).await; // +200 on day 20
    app.clock.advance(Duration::days(5));
    app.pos_post(&format!("/api/v1/cards/{number}/redeem"), &pos, &json!({"points": 150})).await; // day 25: 150 left

    // Expiry off: nothing happens whatever the date.
    app.clock.advance(Duration::days(400));
    assert_eq!(loy::ledger::expiry::run(app.store.as_ref(), &program, app.clock_now(), None).await.unwrap(), 0);

    // 30-day expiry, as of day 35: the welcome 100 (day 0) are old, but the 150 spent on day 25
    // consumed them first, so nothing expires; as of day 51 the day-20 points are old too.
    program.rules.expiry_days = Some(30);
    let day = |n: i64| app.clock_now() - Duration::days(425) + Duration::days(n);
    assert_eq!(loy::ledger::expiry::run(app.store.as_ref(), &program, day(35), None).await.unwrap(), 0);
    assert_eq!(app.balance(&number).await, 150);
    assert_eq!(loy::ledger::expiry::run(app.store.as_ref(), &program, day(51), None).await.unwrap(), 150);
    assert_eq!(app.balance(&number).await, 0);
    let last = app.entries(&number).await.pop().unwrap();
    assert_eq!((last.kind, last.points), (EntryKind::Expire, -150));
    assert_eq!(
        loy::ledger::expiry::run(app.store.as_ref(), &program, day(60), None).await.unwrap(),
        0,
        "runs again find nothing"
    );
    app.assert_ledger_consistent().await;
}

async fn an_invited_customers_first_purchase_pays_the_referral_bonus_to_both_once(kind: StoreKind) {
    let app = spawn_app(kind).await;
    let pos = app.api_key(Scope::Pos).await;
    let inviter_number = app.new_card().await;
    let inviter = app.card(&inviter_number).await;
    let invited = app
        .post_enrollment(&json!({"first_name": "Boris", "phone": unique_phone(), "consent": true, "referral_code": inviter.referral_code.as_str()}))
        .await
        .json::<serde_json::Value>()
        .await
        .unwrap();
    let invited_number = invited["card"]["card_number"].as_str().unwrap().to_owned();
    assert_eq!(app.balance(&invited_number).await, 100, "no bonus before the first purchase");

    let first =
        app.pos_post(&format!("/api/v1/cards/{invited_number}/earn"), &pos, &json!({"purchase_amount": 100_000})).await;
    let second =
        app.pos_post(&format!("/api/v1/cards/{invited_number}/earn"), &pos, &json!({"purchase_amount": 100_000})).await;

    assert_eq!(first.body["referral_bonus"], 100);
    assert_eq!(first.body["balance"], 100 + 50 + 100);
    assert!(second.body.get("referral_bonus").is_none(), "only the first purchase pays it");
    assert_eq!(app.balance(&invited_number).await, 100 + 50 + 100 + 50);
    assert_eq!(app.balance(&inviter_number).await, 100 + 100, "the inviter got the bonus once");
    let inviter_entries = app.entries(&inviter_number).await;
    assert_eq!(inviter_entries.iter().filter(|e| e.kind == EntryKind::Referral).count(), 1);
    app.assert_ledger_consistent().await;
}

async fn a_blocked_card_refuses_earn_and_redeem_until_unblocked(kind: StoreKind) {
    let app = spawn_app(kind).await;
    let admin = app.api_key(Scope::Admin).await;
    let number = app.card_with_balance(&admin, 300).await;

    let blocked = app.pos_post(&format!("/api/v1/cards/{number}/block"), &admin, &json!({})).await;
    assert_eq!((blocked.status, blocked.body["status"].as_str()), (200, Some("blocked")));
    let earn = app.pos_post(&format!("/api/v1/cards/{number}/earn"), &admin, &json!({"purchase_amount": 1000})).await;
    let redeem = app.pos_post(&format!("/api/v1/cards/{number}/redeem"), &admin, &json!({"points": 100})).await;
    assert_eq!((earn.status, earn.body["error"]["code"].as_str()), (409, Some("card_blocked")));
    assert_eq!((redeem.status, redeem.body["error"]["code"].as_str()), (409, Some("card_blocked")));
    assert_eq!(app.pos_get(&format!("/api/v1/cards/{number}"), &admin).await.body["redeem"]["available_points"], 0);
    assert_eq!(app.balance(&number).await, 300);

    app.pos_post(&format!("/api/v1/cards/{number}/unblock"), &admin, &json!({})).await;
    let after = app.pos_post(&format!("/api/v1/cards/{number}/redeem"), &admin, &json!({"points": 100})).await;
    assert_eq!(after.status, 200);
}

/// An inviting card and a card invited by it: (inviter's number, invited's number).
async fn invited_pair(app: &TestApp) -> (String, String) {
    let inviter_number = app.new_card().await;
    let inviter = app.card(&inviter_number).await;
    let invited = app
        .post_enrollment(&json!({"first_name": "Boris", "phone": unique_phone(), "consent": true, "referral_code": inviter.referral_code.as_str()}))
        .await
        .json::<serde_json::Value>()
        .await
        .unwrap();
    (inviter_number, invited["card"]["card_number"].as_str().unwrap().to_owned())
}

async fn a_purchase_below_the_minimum_does_not_pay_the_referral_bonus(kind: StoreKind) {
    let app = spawn_app(kind).await;
    let pos = app.api_key(Scope::Pos).await;
    let (inviter, invited) = invited_pair(&app).await;
    let earn =
        |amount: i64| app.pos_post(format!("/api/v1/cards/{invited}/earn"), &pos, json!({"purchase_amount": amount}));

    // One kopeck, then just under the 100.00 minimum: no bonus for anyone.
    let tiny = earn(1).await;
    let under = earn(9_999).await;
    assert!(tiny.body.get("referral_bonus").is_none() && under.body.get("referral_bonus").is_none());
    assert_eq!(app.balance(&inviter).await, 100);
    // The first purchase of at least 100.00 qualifies.
    let qualifying = earn(10_000).await;
    assert_eq!(qualifying.body["referral_bonus"], 100, "{qualifying:?}");
    assert_eq!(app.balance(&inviter).await, 200);
    app.assert_ledger_consistent().await;
}

async fn refunding_the_qualifying_purchase_takes_both_referral_bonuses_back_as_far_as_unspent(kind: StoreKind) {
    let app = spawn_app(kind).await;
    let pos = app.api_key(Scope::Pos).await;
    let (inviter, invited) = invited_pair(&app).await;
    let purchase =
        app.pos_post(format!("/api/v1/cards/{invited}/earn"), &pos, json!({"purchase_amount": 100_000})).await;
    assert_eq!(purchase.body["referral_bonus"], 100);
    assert_eq!(app.balance(&invited).await, 250);
    // The inviter spends all but 30 of their 200 points before the refund.
    let spent = app.pos_post(format!("/api/v1/cards/{inviter}/redeem"), &pos, json!({"points": 170})).await;
    assert_eq!(spent.status, 200, "{spent:?}");

    let tx = purchase.body["transaction_id"].as_str().unwrap();
    let refund = app.pos_post(format!("/api/v1/transactions/{tx}/reverse"), &pos, json!({})).await;

    assert_eq!(refund.status, 200, "{refund:?}");
    assert_eq!(refund.body["points"], -50, "the purchase's own points");
    assert_eq!(refund.body["referral_bonus_reversed"], 100, "the invited card's bonus, unspent, all of it");
    assert_eq!(refund.body["balance"], 100);
    assert_eq!(app.balance(&invited).await, 100);
    assert_eq!(app.balance(&inviter).await, 0, "the inviter's bonus as far as unspent: 30 of 100");
    let inviter_entries = app.entries(&inviter).await;
    let taken_back = inviter_entries.iter().find(|e| e.kind == EntryKind::Reverse).expect("the bonus taken back");
    assert_eq!(taken_back.points, -30);
    assert!(inviter_entries.iter().all(|e| e.balance_after >= 0));
    // A later purchase does not pay the referral again; a second refund is refused.
    let later = app.pos_post(format!("/api/v1/cards/{invited}/earn"), &pos, json!({"purchase_amount": 100_000})).await;
    assert!(later.body.get("referral_bonus").is_none());
    let again = app.pos_post(format!("/api/v1/transactions/{tx}/reverse"), &pos, json!({})).await;
    assert_eq!(again.status, 409);
    app.assert_ledger_consistent().await;
    assert_eq!(app.balance(&inviter).await, 0, "the ledger check owed nothing more");
}

async fn the_welcome_bonus_can_wait_for_the_first_purchase(kind: StoreKind) {
    let mut env = TestEnv::new(&kind);
    env.set("LOY_WELCOME_BONUS_AT", "first_purchase");
    let app = spawn_app_in(env).await;
    let pos = app.api_key(Scope::Pos).await;
    let enrolled = app.enroll("Anna", &unique_phone()).await;
    let number = enrolled["card"]["card_number"].as_str().unwrap().to_owned();
    assert_eq!(enrolled["card"]["balance"], 0, "registering alone collects nothing");
    assert_eq!(app.balance(&number).await, 0);

    let first = app.pos_post(format!("/api/v1/cards/{number}/earn"), &pos, json!({"purchase_amount": 100_000})).await;
    let second = app.pos_post(format!("/api/v1/cards/{number}/earn"), &pos, json!({"purchase_amount": 100_000})).await;

    assert_eq!(first.body["welcome_bonus"], 100, "{first:?}");
    assert_eq!(first.body["balance"], 150);
    assert!(second.body.get("welcome_bonus").is_none(), "once");
    assert_eq!(app.balance(&number).await, 200);
    app.assert_ledger_consistent().await;
}
