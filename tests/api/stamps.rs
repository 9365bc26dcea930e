//! Stamp cards through the POS API, on both stores: a round of stamps issues exactly one
//! reward in the same write, concurrent stamps never skip or double one, a refund takes its
//! stamps (and a reward they completed, while it waits) back, a redeemed reward stays redeemed,
//! the daily limit, idempotent replays, rewards expiry, and `loy check ledger` on stamp cards.

use chrono::{Duration, Utc};
use loy::domain::{Currency, EntryKind, Program, ProgramRules, Scope, StampRules};
use serde_json::{Value, json};

use crate::helpers::{StoreKind, TestApp, TestEnv, random_suffix, spawn_app_in, unique_phone};
use crate::on_both_stores;

on_both_stores!(
    ten_stamps_issue_exactly_one_reward_and_start_a_new_round,
    fifty_concurrent_stamps_on_a_ten_stamp_card_make_exactly_five_rewards,
    a_refund_takes_back_its_stamps_and_the_reward_they_completed_while_it_waits,
    a_redeemed_reward_stays_redeemed_when_its_purchase_is_refunded,
    the_daily_limit_counts_the_last_24_hours_and_refunds_free_it,
    stamps_by_amount_and_a_retried_request_applies_once,
    unredeemed_rewards_expire_oldest_first,
    points_and_stamps_requests_are_refused_on_the_other_mechanic,
    a_failure_at_any_step_of_a_round_completing_stamp_then_a_retry_applies_it_once,
);

/// An app that reads programs from the store on every use.
pub async fn app(kind: StoreKind) -> TestApp {
    let mut env = TestEnv::new(&kind);
    env.set("LOY_PROGRAM_CACHE_MS", "0");
    spawn_app_in(env).await
}

/// A stamps program "cafe": 10 stamps earn a free coffee, with `change` applied to its rules.
pub async fn cafe(app: &TestApp, change: impl FnOnce(&mut StampRules)) -> Program {
    let mut cafe = Program::new("cafe", "Coffee Corner", Currency::parse("RUB").unwrap(), Utc::now());
    let mut stamps = StampRules {
        stamps_per_reward: 10,
        reward: loy::domain::LocalizedText::new("Кофе в подарок", "Free coffee"),
        ..StampRules::default()
    };
    change(&mut stamps);
    cafe.rules = ProgramRules::stamps(stamps);
    cafe.rules.validate().unwrap();
    app.store.insert_program(&cafe).await.unwrap();
    cafe
}

/// Enrolls a customer into `program` through the API; the card number.
pub async fn enroll(app: &TestApp, key: &str, program: &str) -> String {
    let body =
        json!({"first_name": "Olga", "phone": unique_phone(), "consent": true, "program": program, "locale": "en"});
    let answer = app.pos_post("/api/v1/enrollments", key, body).await;
    assert_eq!(answer.status, 201, "{answer:?}");
    answer.body["card"]["card_number"].as_str().unwrap().to_owned()
}

pub async fn stamp(app: &TestApp, key: &str, number: &str, body: Value) -> crate::helpers::Answer {
    app.pos_post(format!("/api/v1/cards/{number}/stamps"), key, body).await
}

async fn ledger_sound(app: &TestApp, program: &Program) {
    let report = loy::ledger::check::check_all(app.store.as_ref(), program, Utc::now()).await.unwrap();
    assert!(report.mismatches.is_empty(), "ledger check: {:?}", report.mismatches);
}

async fn ten_stamps_issue_exactly_one_reward_and_start_a_new_round(kind: StoreKind) {
    let app = app(kind).await;
    let program = cafe(&app, |_| {}).await;
    let pos = app.api_key(Scope::Pos).await;
    let number = enroll(&app, &pos, "cafe").await;
    let card = app.pos_get(&format!("/api/v1/cards/{number}"), &pos).await;
    assert_eq!(card.body["mechanic"], "stamps");
    assert_eq!(
        card.body["stamps"],
        json!({"stamps": 0, "stamps_per_reward": 10, "stamps_to_next_reward": 10, "rewards_waiting": 0, "reward": "Free coffee"})
    );
    for i in 1..=9 {
        let answer = stamp(&app, &pos, &number, json!({})).await;
        assert_eq!(answer.status, 200, "{answer:?}");
        assert_eq!((answer.body["type"].clone(), answer.body["points"].clone()), (json!("stamp"), json!(1)));
        assert_eq!((answer.body["balance"].clone(), answer.body["rewards"].clone()), (json!(i), json!(0)));
        assert!(answer.body.get("rewards_issued").is_none());
    }
    let tenth = stamp(&app, &pos, &number, json!({"order_id": "A-10"})).await;
    assert_eq!(tenth.status, 200, "{tenth:?}");
    assert_eq!(tenth.body["balance"], 0, "the round is full: a new one starts");
    assert_eq!(tenth.body["rewards"], 1);
    assert_eq!(tenth.body["rewards_issued"], 1);
    // Two stamps at once over a full round: one more reward, one stamp left.
    let card = app.card(&number).await;
    let answer = stamp(&app, &pos, &number, json!({"stamps": 11})).await;
    assert_eq!((answer.body["balance"].clone(), answer.body["rewards"].clone()), (json!(1), json!(2)));
    assert_eq!(answer.body["rewards_issued"], 1);
    let after = app.card(&number).await;
    assert_eq!(after.version, card.version + 2, "the stamps and the reward are one write of two entries");
    let entries = app.entries(&number).await;
    let kinds: Vec<EntryKind> = entries.iter().map(|e| e.kind).collect();
    assert_eq!(kinds.iter().filter(|k| **k == EntryKind::RewardIssued).count(), 2);
    assert_eq!(entries.iter().map(|e| e.rewards).sum::<i64>(), after.rewards);
    let lookup = app.pos_get(&format!("/api/v1/cards/{number}"), &pos).await;
    assert_eq!(lookup.body["stamps"]["stamps_to_next_reward"], 9);
    assert_eq!(lookup.body["stamps"]["rewards_waiting"], 2);
    let redeemed = app.pos_post(format!("/api/v1/cards/{number}/rewards/redeem"), &pos, json!({})).await;
    assert_eq!(redeemed.status, 200, "{redeemed:?}");
    assert_eq!(
        (redeemed.body["type"].clone(), redeemed.body["rewards_redeemed"].clone()),
        (json!("reward_redeemed"), json!(1))
    );
    assert_eq!(redeemed.body["rewards"], 1);
    let page = app.pos_get(&format!("/api/v1/cards/{number}/transactions?limit=1"), &pos).await;
    assert_eq!(page.body["transactions"][0]["rewards"], -1);
    assert_eq!(page.body["transactions"][0]["rewards_after"], 1);
    let too_many = app.pos_post(format!("/api/v1/cards/{number}/rewards/redeem"), &pos, json!({"count": 2})).await;
    assert_eq!((too_many.status, too_many.body["error"]["code"].clone()), (422, json!("no_reward")));
    ledger_sound(&app, &program).await;
}

async fn fifty_concurrent_stamps_on_a_ten_stamp_card_make_exactly_five_rewards(kind: StoreKind) {
    let app = app(kind).await;
    let program = cafe(&app, |_| {}).await;
    let pos = app.api_key(Scope::Pos).await;
    let number = enroll(&app, &pos, "cafe").await;
    let requests = (0..50).map(|i| {
        let (app, pos, number) = (&app, &pos, &number);
        async move {
            let key = format!("stamp-{i}-{}", random_suffix());
            let path = format!("/api/v1/cards/{number}/stamps");
            app.pos(reqwest::Method::POST, &path, Some(pos), Some(&key), Some(&json!({}))).await
        }
    });
    let answers = futures_util::future::join_all(requests).await;
    assert!(answers.iter().all(|a| a.status == 200), "{:?}", answers.iter().find(|a| a.status != 200));
    let issued: i64 = answers.iter().filter_map(|a| a.body["rewards_issued"].as_i64()).sum();
    assert_eq!(issued, 5, "every tenth stamp issued a reward, no more, no less");
    let card = app.card(&number).await;
    assert_eq!((card.balance, card.rewards, card.lifetime_earned), (0, 5, 50));
    let entries = app.entries(&number).await;
    assert_eq!(entries.iter().filter(|e| e.kind == EntryKind::Stamp).count(), 50);
    assert_eq!(entries.iter().filter(|e| e.kind == EntryKind::RewardIssued).count(), 5);
    ledger_sound(&app, &program).await;
}

async fn a_refund_takes_back_its_stamps_and_the_reward_they_completed_while_it_waits(kind: StoreKind) {
    let app = app(kind).await;
    let program = cafe(&app, |_| {}).await;
    let pos = app.api_key(Scope::Pos).await;
    let number = enroll(&app, &pos, "cafe").await;
    stamp(&app, &pos, &number, json!({"stamps": 8})).await;
    let completing = stamp(&app, &pos, &number, json!({"stamps": 3})).await;
    assert_eq!((completing.body["balance"].clone(), completing.body["rewards"].clone()), (json!(1), json!(1)));
    let id = completing.body["transaction_id"].as_str().unwrap();
    let refund = app.pos_post(format!("/api/v1/transactions/{id}/reverse"), &pos, json!({"reason": "returned"})).await;
    assert_eq!(refund.status, 200, "{refund:?}");
    assert_eq!(refund.body["type"], "reverse");
    assert_eq!(refund.body["rewards_taken_back"], 1, "the reward the purchase completed was still waiting");
    assert_eq!((refund.body["balance"].clone(), refund.body["rewards"].clone()), (json!(8), json!(0)));
    let again = app.pos_post(format!("/api/v1/transactions/{id}/reverse"), &pos, json!({})).await;
    assert_eq!((again.status, again.body["error"]["code"].clone()), (409, json!("already_reversed")));
    let card = app.card(&number).await;
    assert_eq!((card.balance, card.rewards, card.lifetime_earned), (8, 0, 8));
    ledger_sound(&app, &program).await;
}

async fn a_redeemed_reward_stays_redeemed_when_its_purchase_is_refunded(kind: StoreKind) {
    let app = app(kind).await;
    let program = cafe(&app, |_| {}).await;
    let pos = app.api_key(Scope::Pos).await;
    let number = enroll(&app, &pos, "cafe").await;
    stamp(&app, &pos, &number, json!({"stamps": 9})).await;
    let tenth = stamp(&app, &pos, &number, json!({})).await;
    assert_eq!(tenth.body["rewards"], 1);
    let redeemed = app.pos_post(format!("/api/v1/cards/{number}/rewards/redeem"), &pos, json!({})).await;
    assert_eq!(redeemed.body["rewards"], 0);
    stamp(&app, &pos, &number, json!({"stamps": 2})).await;
    let id = tenth.body["transaction_id"].as_str().unwrap();
    let refund = app.pos_post(format!("/api/v1/transactions/{id}/reverse"), &pos, json!({})).await;
    assert_eq!(refund.status, 200, "{refund:?}");
    assert!(refund.body.get("rewards_taken_back").is_none(), "{refund:?}");
    assert_eq!((refund.body["balance"].clone(), refund.body["rewards"].clone()), (json!(1), json!(0)));
    // Undoing the redemption itself gives the reward back.
    let rid = redeemed.body["transaction_id"].as_str().unwrap();
    let undone = app.pos_post(format!("/api/v1/transactions/{rid}/reverse"), &pos, json!({})).await;
    assert_eq!((undone.status, undone.body["rewards"].clone()), (200, json!(1)));
    ledger_sound(&app, &program).await;
}

async fn the_daily_limit_counts_the_last_24_hours_and_refunds_free_it(kind: StoreKind) {
    let app = app(kind).await;
    let program = cafe(&app, |s| s.daily_limit = Some(2)).await;
    let pos = app.api_key(Scope::Pos).await;
    let number = enroll(&app, &pos, "cafe").await;
    assert_eq!(stamp(&app, &pos, &number, json!({})).await.status, 200);
    let second = stamp(&app, &pos, &number, json!({})).await;
    assert_eq!(second.status, 200);
    let third = stamp(&app, &pos, &number, json!({})).await;
    assert_eq!((third.status, third.body["error"]["code"].clone()), (422, json!("daily_stamp_limit")));
    assert_eq!(third.body["error"]["field"], "stamps");
    let id = second.body["transaction_id"].as_str().unwrap();
    assert_eq!(app.pos_post(format!("/api/v1/transactions/{id}/reverse"), &pos, json!({})).await.status, 200);
    assert_eq!(stamp(&app, &pos, &number, json!({})).await.status, 200, "a refunded purchase's stamp is not counted");
    assert_eq!(stamp(&app, &pos, &number, json!({})).await.status, 422);
    app.clock.advance(Duration::hours(24) + Duration::seconds(1));
    assert_eq!(stamp(&app, &pos, &number, json!({"stamps": 2})).await.status, 200, "a new 24 hours");
    assert_eq!(app.card(&number).await.balance, 4);
    ledger_sound(&app, &program).await;
}

async fn stamps_by_amount_and_a_retried_request_applies_once(kind: StoreKind) {
    let app = app(kind).await;
    let program = cafe(&app, |s| s.amount_per_stamp = Some(30_000)).await;
    let pos = app.api_key(Scope::Pos).await;
    let number = enroll(&app, &pos, "cafe").await;
    let path = format!("/api/v1/cards/{number}/stamps");
    let body = json!({"purchase_amount": 95_000});
    let first = app.pos(reqwest::Method::POST, &path, Some(&pos), Some("till-7"), Some(&body)).await;
    assert_eq!((first.status, first.body["points"].clone()), (200, json!(3)), "950 ₽ at one stamp per 300 ₽");
    let retry = app.pos(reqwest::Method::POST, &path, Some(&pos), Some("till-7"), Some(&body)).await;
    assert_eq!(retry, first, "the retry replays the first answer");
    assert_eq!(app.card(&number).await.balance, 3);
    let small = stamp(&app, &pos, &number, json!({"purchase_amount": 29_999})).await;
    assert_eq!((small.status, small.body["error"]["code"].clone()), (422, json!("below_stamp_amount")));
    let bad = stamp(&app, &pos, &number, json!({"stamps": 0})).await;
    assert_eq!((bad.status, bad.body["error"]["field"].clone()), (422, json!("stamps")));
    ledger_sound(&app, &program).await;
}

async fn unredeemed_rewards_expire_oldest_first(kind: StoreKind) {
    let app = app(kind).await;
    let program = cafe(&app, |s| s.reward_expiry_days = Some(30)).await;
    let pos = app.api_key(Scope::Pos).await;
    let number = enroll(&app, &pos, "cafe").await;
    stamp(&app, &pos, &number, json!({"stamps": 20})).await;
    assert_eq!(app.card(&number).await.rewards, 2);
    app.clock.advance(Duration::days(20));
    stamp(&app, &pos, &number, json!({"stamps": 10})).await;
    app.pos_post(format!("/api/v1/cards/{number}/rewards/redeem"), &pos, json!({})).await;
    // 31 days after the first two: one of them was redeemed, the other expires; the third stays.
    let now = Utc::now() + Duration::days(31);
    let expired = loy::ledger::expiry::run(app.store.as_ref(), &program, now, None).await.unwrap();
    assert_eq!(expired, 1);
    let card = app.card(&number).await;
    assert_eq!(card.rewards, 1);
    let last = app.entries(&number).await.pop().unwrap();
    assert_eq!((last.kind, last.rewards, last.points), (EntryKind::Expire, -1, 0));
    assert_eq!(loy::ledger::expiry::run(app.store.as_ref(), &program, now, None).await.unwrap(), 0, "once");
    ledger_sound(&app, &program).await;
}

async fn points_and_stamps_requests_are_refused_on_the_other_mechanic(kind: StoreKind) {
    let app = app(kind).await;
    cafe(&app, |_| {}).await;
    let pos = app.api_key(Scope::Pos).await;
    let stamps_card = enroll(&app, &pos, "cafe").await;
    let earn = app.pos_post(format!("/api/v1/cards/{stamps_card}/earn"), &pos, json!({"purchase_amount": 1000})).await;
    assert_eq!((earn.status, earn.body["error"]["code"].clone()), (422, json!("wrong_mechanic")));
    let points_card = app.new_card().await;
    let answer = stamp(&app, &pos, &points_card, json!({})).await;
    assert_eq!((answer.status, answer.body["error"]["code"].clone()), (422, json!("wrong_mechanic")));
    let lookup = app.pos_get(&format!("/api/v1/cards/{points_card}"), &pos).await;
    assert_eq!(lookup.body["mechanic"], "points");
    assert!(lookup.body.get("stamps").is_none());
}

async fn a_failure_at_any_step_of_a_round_completing_stamp_then_a_retry_applies_it_once(kind: StoreKind) {
    let app = app(kind).await;
    let program = cafe(&app, |_| {}).await;
    let pos = app.api_key(Scope::Pos).await;
    let number = enroll(&app, &pos, "cafe").await;
    let path = format!("/api/v1/cards/{number}/stamps");
    // Count the store calls of one clean stamp that completes a round.
    stamp(&app, &pos, &number, json!({"stamps": 9})).await;
    app.faults.start_counting();
    assert_eq!(stamp(&app, &pos, &number, json!({})).await.body["rewards_issued"], 1);
    let steps = app.faults.calls();
    assert!(steps >= 4, "a stamp takes several store calls ({steps})");
    for n in 1..=steps {
        stamp(&app, &pos, &number, json!({"stamps": 9})).await;
        let key = format!("crash-{n}-{}", random_suffix());
        app.faults.fail_on_call(n);
        let first = app.pos(reqwest::Method::POST, &path, Some(&pos), Some(&key), Some(&json!({}))).await;
        app.faults.disarm();
        assert!(first.status == 200 || first.status == 503 || first.status == 401, "step {n}: {first:?}");
        let retry = app.pos(reqwest::Method::POST, &path, Some(&pos), Some(&key), Some(&json!({}))).await;
        assert_eq!(retry.status, 200, "step {n}: {retry:?}");
        if first.status == 200 {
            assert_eq!(retry, first, "step {n}: the retry got the first answer");
        }
        assert_eq!(retry.body["rewards_issued"], 1, "step {n}");
        let entries = app.entries(&number).await;
        let applied = entries.iter().filter(|e| e.idempotency_key.as_deref() == Some(&key)).count();
        assert_eq!(applied, 1, "step {n}: applied exactly once");
        let card = app.card(&number).await;
        assert_eq!((card.balance, card.rewards), (0, 1 + n as i64), "step {n}: one reward more, none doubled");
    }
    ledger_sound(&app, &program).await;
}
