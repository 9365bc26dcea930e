//! Customer segments on both stores: RFM scores of a hand-computed example through the real
//! ledger (purchases at known dates, the clock moved), computed in pages smaller than the number
//! of cards; the console's counts, "Compute now", drill-down paging, the customer-list filter
//! and the customer page; roles; and `loy segments compute`.

use std::collections::HashMap;

use chrono::Duration;
use loy::domain::{Role, SerialNumber};
use loy::segments::compute::{self, ComputeError, Lease, Options};
use loy::segments::rfm::{Scores, Segment};
use loy::store::segments::CardSegment;
use serde_json::json;

use crate::admin_helpers::audit_of;
use crate::cli::loy;
use crate::helpers::{StoreKind, TestApp, spawn_app};
use crate::on_both_stores;

on_both_stores!(
    scores_and_segments_match_the_hand_computed_example_in_pages_smaller_than_the_program,
    a_second_node_cannot_compute_while_the_lease_is_held,
    the_schedule_computes_each_program_once_per_interval,
    the_console_shows_counts_and_compute_now_computes_and_is_audited,
    cashiers_cannot_see_or_compute_segments,
    the_drill_down_and_the_customer_list_filter_page_through_a_segment,
    the_customer_page_shows_the_cards_segment_and_scores,
    the_command_line_computes_segments_and_refuses_an_unknown_program,
);

/// Moves the app's clock to `days` before the present (from wherever it is now).
fn at_days_ago(app: &TestApp, now: &mut i64, days: i64) {
    app.clock.advance(Duration::days(*now - days));
    *now = days;
}

/// A purchase of `amount` minor units on `number`; returns its transaction id.
async fn buy(app: &TestApp, key: &str, number: &str, amount: i64) -> String {
    let answer = app.pos_post(format!("/api/v1/cards/{number}/earn"), key, json!({ "purchase_amount": amount })).await;
    assert_eq!(answer.status, 200, "{answer:?}");
    answer.body["transaction_id"].as_str().unwrap().to_owned()
}

/// The example: seven cards registered 400 days ago, with purchases (days ago, amount):
///
/// | card | purchases | last | in the 365-day window |
/// |---|---|---|---|
/// | A | 300 ×1000, 100 ×1000, 10 ×1000, 2 ×2000 | 2 | 4 for 5000 |
/// | B | 200 ×500, 20 ×500, 5 ×500 | 5 | 3 for 1500 |
/// | C | 380 ×9000, 50 ×3000 | 50 | 1 for 3000 |
/// | D | 250 ×700, 240 ×700 | 240 | 2 for 1400 |
/// | E | 390 ×5000 | 390 | none |
/// | F | none | (registered 400) | none |
/// | G | 150 ×800, 3 ×9999 refunded | 150 | 1 for 800 |
///
/// By hand (score = 1 + rank × 5 / n, rank = values below, among cards with a value):
/// recency of the 7 (F, E, D, G, C, B, A from oldest) is 1, 1, 2, 3, 3, 4, 5; frequency among
/// the 5 buyers (C 1, G 1, D 2, B 3, A 4) is 1, 1, 3, 4, 5; monetary (G 800, D 1400, B 1500,
/// C 3000, A 5000) is 1, 2, 3, 4, 5; E and F score 1 on both.
async fn seed_example(app: &TestApp) -> HashMap<&'static str, String> {
    let key = app.api_key(loy::domain::Scope::Admin).await;
    let mut now = 0;
    at_days_ago(app, &mut now, 400);
    let mut cards = HashMap::new();
    for name in ["A", "B", "C", "D", "E", "F", "G"] {
        cards.insert(name, app.new_card().await);
    }
    let purchases: &[(i64, &str, i64)] = &[
        (390, "E", 5000),
        (380, "C", 9000),
        (300, "A", 1000),
        (250, "D", 700),
        (240, "D", 700),
        (200, "B", 500),
        (150, "G", 800),
        (100, "A", 1000),
        (50, "C", 3000),
        (20, "B", 500),
        (10, "A", 1000),
        (5, "B", 500),
        (3, "G", 9999),
        (2, "A", 2000),
    ];
    for &(days, card, amount) in purchases {
        at_days_ago(app, &mut now, days);
        let tx = buy(app, &key, &cards[card], amount).await;
        if (days, card) == (3, "G") {
            let refund =
                app.pos_post(format!("/api/v1/transactions/{tx}/reverse"), &key, json!({ "reason": "returned" })).await;
            assert_eq!(refund.status, 200, "{refund:?}");
        }
    }
    at_days_ago(app, &mut now, 0);
    cards
}

fn options(batch: usize) -> Options {
    Options { window_days: 365, batch }
}

async fn serial(app: &TestApp, number: &str) -> SerialNumber {
    app.card(number).await.serial
}

async fn scores_and_segments_match_the_hand_computed_example_in_pages_smaller_than_the_program(kind: StoreKind) {
    let app = spawn_app(kind).await;
    let cards = seed_example(&app).await;
    let program = app.store.program("default").await.unwrap().unwrap();

    let done = compute::compute(
        app.store.as_ref(),
        app.clock.as_ref(),
        &program,
        &Lease::new(Duration::minutes(2)),
        options(2),
    )
    .await
    .unwrap();

    assert_eq!(done.cards, 7);
    assert_eq!(done.pages, 4, "7 cards read 2 at a time");
    let expected: [(&str, (u8, u8, u8), Segment); 7] = [
        ("A", (5, 5, 5), Segment::Champions),
        ("B", (4, 4, 3), Segment::Champions),
        ("C", (3, 1, 4), Segment::Potential),
        ("D", (2, 3, 2), Segment::AtRisk),
        ("E", (1, 1, 1), Segment::Lost),
        ("F", (1, 1, 1), Segment::Lost),
        ("G", (3, 1, 1), Segment::Potential),
    ];
    for (name, (r, f, m), segment) in expected {
        let stored = app.store.card_segment(&serial(&app, &cards[name]).await).await.unwrap().expect("scored");
        assert_eq!((stored.scores, stored.segment), (Scores { r, f, m }, segment), "card {name}");
        assert_eq!(stored.computed_at, done.computed_at);
    }
    let counts = app.store.segment_counts("default").await.unwrap();
    assert_eq!(counts, done.counts);
    let count = |s: Segment| counts.iter().find(|(c, _)| *c == s).unwrap().1;
    assert_eq!(
        (count(Segment::Champions), count(Segment::Potential), count(Segment::AtRisk), count(Segment::Lost)),
        (2, 2, 1, 2)
    );
    assert_eq!(counts.len(), 8, "every segment is listed, empty ones with 0");
    assert_eq!(count(Segment::Loyal) + count(Segment::New) + count(Segment::CantLose) + count(Segment::Hibernating), 0);

    // A later purchase moves a card at the next computation; the earlier rows are gone.
    let key = app.api_key(loy::domain::Scope::Admin).await;
    for _ in 0..4 {
        buy(&app, &key, &cards["D"], 100).await;
    }
    let again = compute::compute(
        app.store.as_ref(),
        app.clock.as_ref(),
        &program,
        &Lease::new(Duration::minutes(2)),
        options(3),
    )
    .await
    .unwrap();
    assert!(again.computed_at > done.computed_at);
    let d = app.store.card_segment(&serial(&app, &cards["D"]).await).await.unwrap().unwrap();
    assert_eq!((d.scores.r, d.scores.f), (5, 5), "D bought most recently and now 6 times");
    assert_eq!(d.segment, Segment::Champions);
    let members = app.store.segment_members("default", Segment::AtRisk, None, 10).await.unwrap();
    assert!(members.is_empty(), "no card is left in the segment D left: {members:?}");
}

async fn a_second_node_cannot_compute_while_the_lease_is_held(kind: StoreKind) {
    let app = spawn_app(kind).await;
    app.new_card().await;
    let program = app.store.program("default").await.unwrap().unwrap();
    let now = app.clock_now();
    assert!(app.store.take_segment_lease("default", "node-a", now, now + Duration::minutes(2)).await.unwrap());

    let busy = compute::compute(
        app.store.as_ref(),
        app.clock.as_ref(),
        &program,
        &Lease::new(Duration::minutes(2)),
        options(10),
    )
    .await;

    assert!(matches!(busy, Err(ComputeError::Busy)), "{busy:?}");
    assert!(app.store.segment_counts("default").await.unwrap().is_empty(), "nothing was computed");
    app.clock.advance(Duration::minutes(3));
    let after_expiry = compute::compute(
        app.store.as_ref(),
        app.clock.as_ref(),
        &program,
        &Lease::new(Duration::minutes(2)),
        options(10),
    )
    .await;
    assert_eq!(after_expiry.unwrap().cards, 1, "an expired lease is taken over");
    let run = app.store.segment_run("default").await.unwrap().unwrap();
    assert!(!run.computing(app.clock_now()), "the lease is given up when done");
}

async fn the_schedule_computes_each_program_once_per_interval(kind: StoreKind) {
    let app = spawn_app(kind).await;
    app.new_card().await;
    let runs = || loy::segments::runner::run_due(&app.state);

    assert_eq!(runs().await.unwrap(), 1, "never computed: due");
    assert_eq!(runs().await.unwrap(), 0, "computed just now: not due");
    let first = app.store.segment_run("default").await.unwrap().unwrap().computed_at.unwrap();
    app.clock.advance(Duration::hours(23));
    assert_eq!(runs().await.unwrap(), 0, "LOY_SEGMENTS_EVERY_HOURS is 24 by default");
    app.clock.advance(Duration::hours(1));
    assert_eq!(runs().await.unwrap(), 1);
    let second = app.store.segment_run("default").await.unwrap().unwrap().computed_at.unwrap();
    assert!(second >= first + Duration::hours(24));
    // A manager asks a little later (a request in the very millisecond the computation started
    // counts as served by it).
    app.clock.advance(Duration::seconds(1));
    app.store.request_segments("default", app.clock_now()).await.unwrap();
    assert_eq!(runs().await.unwrap(), 1, "asked for: due at once");
}

async fn wait_until_computed(app: &TestApp) -> loy::store::segments::SegmentRun {
    for _ in 0..200 {
        if let Some(run) = app.store.segment_run("default").await.unwrap() {
            if run.computed_at.is_some() && !run.requested() {
                return run;
            }
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("the segments were not computed");
}

async fn the_console_shows_counts_and_compute_now_computes_and_is_audited(kind: StoreKind) {
    let app = spawn_app(kind).await;
    let _cards = seed_example(&app).await;
    let manager = app.signed_in(Role::Manager).await;
    let before = manager.get("/admin/segments").await;
    assert_eq!(before.status, 200);
    assert!(before.body.contains(r#"data-testid="count-champions">0<"#), "nothing computed yet");

    let asked = manager.post("/admin/segments/compute", &[("program", "default")]).await;

    assert_eq!(asked.status, 303, "{}", asked.body);
    let run = wait_until_computed(&app).await;
    assert_eq!(run.cards, 7);
    let page = manager.get("/admin/segments?program=default").await;
    for (segment, n) in [("champions", 2), ("potential", 2), ("at_risk", 1), ("lost", 2), ("loyal", 0)] {
        assert!(page.body.contains(&format!(r#"data-testid="count-{segment}">{n}<"#)), "{segment}: {}", page.body);
    }
    assert!(page.body.contains("Bought recently and buy often"), "each segment is explained");
    let audit = manager.audit("segments.compute_requested").await;
    assert_eq!(audit.len(), 1);
    assert_eq!(audit[0].target.as_deref(), Some("default"));
}

async fn cashiers_cannot_see_or_compute_segments(kind: StoreKind) {
    let app = spawn_app(kind).await;
    app.new_card().await;
    let cashier = app.signed_in(Role::Cashier).await;

    for path in ["/admin/segments", "/admin/segments/champions", "/admin/customers?segment=champions"] {
        assert_eq!(cashier.get(path).await.status, 403, "{path}");
    }
    assert_eq!(cashier.post("/admin/segments/compute", &[("program", "default")]).await.status, 403);
    assert_eq!(app.store.segment_run("default").await.unwrap(), None, "nothing was asked for");
    assert!(audit_of(&app, Some(&cashier.id), "segments.compute_requested").await.is_empty());
    let owner = app.signed_in(Role::Owner).await;
    assert_eq!(owner.get("/admin/segments").await.status, 200);
    assert_eq!(owner.get("/admin/segments/nonsense").await.status, 404);
    let manager = app.signed_in(Role::Manager).await;
    let nav = manager.get("/admin").await;
    assert!(nav.body.contains(r#"href="/admin/segments""#), "managers see the section in the navigation");
    let forged = manager.post_raw("/admin/segments/compute", &[("program", "default"), ("csrf", "wrong")]).await;
    assert_eq!(forged.status, 403);
    assert_eq!(app.store.segment_run("default").await.unwrap(), None, "a forged form asks for nothing");
}

/// Stores `rows` as one finished computation of the default program.
async fn store_computation(app: &TestApp, serials: &[SerialNumber], segment: Segment) {
    let at = app.clock_now();
    let rows: Vec<CardSegment> = serials
        .iter()
        .map(|s| CardSegment {
            serial: s.clone(),
            program_id: "default".into(),
            scores: Scores { r: 5, f: 5, m: 5 },
            segment,
            computed_at: at,
        })
        .collect();
    app.store.save_card_segments(&rows).await.unwrap();
    app.store
        .finish_segment_run(&loy::store::segments::FinishedRun {
            program_id: "default".into(),
            computed_at: at,
            took_ms: 1,
            cards: rows.len() as u64,
            counts: vec![(segment, rows.len() as u64)],
        })
        .await
        .unwrap();
}

/// The customer links of a page, in order.
fn customer_links(body: &str) -> Vec<String> {
    body.match_indices(r#"<a href="/admin/customers/"#)
        .map(|(at, m)| {
            let rest = &body[at + m.len()..];
            rest[..rest.find('"').unwrap()].to_owned()
        })
        .collect()
}

fn next_link(body: &str) -> Option<String> {
    let at = body.find(r#"rel="next""#)?;
    let start = body[..at].rfind("href=\"")? + 6;
    Some(crate::admin_helpers::unescape(&body[start..start + body[start..].find('"')?]))
}

async fn the_drill_down_and_the_customer_list_filter_page_through_a_segment(kind: StoreKind) {
    let app = spawn_app(kind).await;
    let mut champions = Vec::new();
    for _ in 0..27 {
        champions.push(serial(&app, &app.new_card().await).await);
    }
    let outsider = serial(&app, &app.new_card().await).await;
    champions.sort_by(|a, b| a.as_str().cmp(b.as_str()));
    store_computation(&app, &champions, Segment::Champions).await;
    let manager = app.signed_in(Role::Manager).await;

    for start in ["/admin/segments/champions?program=default", "/admin/customers?segment=champions"] {
        let first = manager.get(start).await;
        assert_eq!(first.status, 200, "{start}");
        let mut seen = customer_links(&first.body);
        assert_eq!(seen.len(), 25, "{start}: one page");
        let next = next_link(&first.body).expect("a next page");
        let second = manager.get(&next).await;
        assert_eq!(second.status, 200);
        seen.extend(customer_links(&second.body));
        assert!(next_link(&second.body).is_none(), "{start}: two pages in all");
        let expected: Vec<String> = champions.iter().map(|s| s.to_string()).collect();
        assert_eq!(seen, expected, "{start}: every member once, in serial order");
        assert!(!seen.contains(&outsider.to_string()));
    }
    let lost = manager.get("/admin/customers?segment=lost").await;
    assert!(customer_links(&lost.body).is_empty(), "an empty segment lists nobody");
    let all = manager.get("/admin/customers").await;
    assert!(customer_links(&all.body).contains(&outsider.to_string()), "without a filter everyone is listed");
}

async fn the_customer_page_shows_the_cards_segment_and_scores(kind: StoreKind) {
    let app = spawn_app(kind).await;
    let cards = seed_example(&app).await;
    let program = app.store.program("default").await.unwrap().unwrap();
    let manager = app.signed_in(Role::Manager).await;
    let d = serial(&app, &cards["D"]).await;
    let unscored = manager.get(&format!("/admin/customers/{d}")).await;
    assert!(unscored.body.contains("not computed yet"));

    compute::compute(
        app.store.as_ref(),
        app.clock.as_ref(),
        &program,
        &Lease::new(Duration::minutes(2)),
        options(1000),
    )
    .await
    .unwrap();

    let page = manager.get(&format!("/admin/customers/{d}")).await;
    assert_eq!(crate::admin_helpers::text_of_id(&page.body, "scores").as_deref(), Some("2 / 3 / 2"));
    assert!(page.body.contains(r#"href="/admin/segments/at_risk?program=default">At risk</a>"#), "{}", page.body);
}

async fn the_command_line_computes_segments_and_refuses_an_unknown_program(kind: StoreKind) {
    let app = spawn_app(kind).await;
    let cards = seed_example(&app).await;

    let (code, stdout, stderr) = loy(&app, &["segments", "compute", "--program", "default"]);

    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("default: 7 cards"), "{stdout}");
    assert!(stdout.lines().any(|l| l.split_whitespace().eq(["champions", "2"])), "{stdout}");
    let a = app.store.card_segment(&serial(&app, &cards["A"]).await).await.unwrap().unwrap();
    assert_eq!(a.segment, Segment::Champions);
    let (code, _, stderr) = loy(&app, &["segments", "compute", "--program", "nosuch"]);
    assert_eq!(code, 1);
    assert!(stderr.contains("no program `nosuch`"), "{stderr}");
}
