//! The dashboard on the console's home, on both stores: a program's history written through the
//! ledger on known days shows up per day in every chart's table (what a page without JavaScript
//! shows) and in its CSV; active cards and tiers come from the snapshot; the refresh button brings
//! today up to date; cashiers keep their home and cannot download; a period that cannot be read
//! is refused.

use chrono::{DateTime, Duration, NaiveDate, Utc};
use loy::domain::amount::format_amount;
use loy::domain::{Card, EntrySource, LedgerEntry, Program, Role, SerialNumber};
use loy::ledger::{Actor, Command, WriteContext};
use loy::store::Store;

use crate::admin_helpers::Staff;
use crate::helpers::{StoreKind, TestApp, spawn_app};
use crate::on_both_stores;
use crate::store_conformance::customer;

on_both_stores!(
    the_dashboard_shows_each_days_registrations_points_purchases_and_revenue_in_tables,
    each_chart_downloads_as_csv_with_the_same_numbers,
    active_cards_and_tiers_come_from_the_present_counts,
    updating_now_brings_todays_figures_up_to_date,
    a_cashier_keeps_the_cashier_home_and_cannot_download_figures,
    a_period_that_cannot_be_read_is_refused,
    a_stamps_program_chosen_on_the_page_shows_stamps_and_rewards,
    installs_segments_and_messages_have_their_charts,
    a_programs_days_begin_at_midnight_in_its_time_zone,
);

async fn enroll(store: &dyn Store, program: &Program, phone: &str, when: DateTime<Utc>) -> Card {
    let (card, welcome) = Card::enroll(program, customer(phone), None, when);
    store.insert_card(&card, &welcome).await.unwrap();
    card
}

/// Writes `command` as of `when` through the ledger; answers the points it moved.
async fn write(
    store: &dyn Store,
    program: &Program,
    serial: &SerialNumber,
    command: Command,
    when: DateTime<Utc>,
) -> i64 {
    let ctx = WriteContext {
        entry_id: LedgerEntry::new_id(),
        actor: Actor { source: EntrySource::Pos, id: None },
        idempotency: None,
        now: when,
        notify: None,
    };
    loy::ledger::apply(store, program, serial, &command, &ctx, None).await.unwrap().0.points
}

fn earn(amount: i64) -> Command {
    Command::Earn { purchase_amount: amount, order_id: None, description: None }
}

/// What was written, to compare the page with.
struct Seeded {
    program: Program,
    /// Three days ago: two cards joined, one bought for 1 000.00.
    day_a: NaiveDate,
    earned_a: i64,
    /// Yesterday: a card joined, one bought for 500.00, one paid 100 points of a 400.00 purchase.
    day_b: NaiveDate,
    earned_b: i64,
}

/// Three cards in the last days and one that joined 40 days ago, then the figures computed.
async fn seeded(app: &TestApp) -> Seeded {
    let store = app.store.as_ref();
    let program = store.program("default").await.unwrap().unwrap();
    let now = app.clock_now();
    let today = now.date_naive();
    let noon =
        |days_ago: i64| loy::domain::TimeZone::UTC.start_of(today - Duration::days(days_ago)) + Duration::hours(12);
    enroll(store, &program, "+79990000040", noon(40)).await;
    let anna = enroll(store, &program, "+79990000001", noon(3)).await;
    let boris = enroll(store, &program, "+79990000002", noon(3)).await;
    let earned_a = write(store, &program, &anna.serial, earn(100_000), noon(3) + Duration::hours(1)).await;
    enroll(store, &program, "+79990000003", noon(1)).await;
    let earned_b = write(store, &program, &anna.serial, earn(50_000), noon(1) + Duration::hours(1)).await;
    let redeem = Command::Redeem { points: 100, purchase_amount: Some(40_000), order_id: None, description: None };
    assert_eq!(write(store, &program, &boris.serial, redeem, noon(1) + Duration::hours(2)).await, -100);
    loy::stats::try_execute_task(store, now, usize::MAX).await.unwrap();
    Seeded { program, day_a: today - Duration::days(3), earned_a, day_b: today - Duration::days(1), earned_b }
}

/// The machine values of a chart's row (`day` or category label) in the page's table.
fn row(body: &str, chart: &str, label: &str) -> Vec<String> {
    let at = body.find(&format!(r#"id="chart-{chart}""#)).unwrap_or_else(|| panic!("no chart {chart}"));
    let figure = &body[at..at + body[at..].find("</figure>").unwrap()];
    let start = figure.find(&format!(r#"<th scope="row">{label}</th>"#)).unwrap_or_else(|| panic!("no row {label}"));
    let line = &figure[start..start + figure[start..].find("</tr>").unwrap()];
    line.split(r#"data-v=""#).skip(1).map(|s| s[..s.find('"').unwrap()].to_owned()).collect()
}

fn day(d: NaiveDate) -> String {
    d.format("%Y-%m-%d").to_string()
}

async fn the_dashboard_shows_each_days_registrations_points_purchases_and_revenue_in_tables(kind: StoreKind) {
    let app = spawn_app(kind).await;
    let s = seeded(&app).await;
    let manager: Staff<'_> = app.signed_in(Role::Manager).await;

    let page = manager.get("/admin?days=7&lang=en").await;
    assert_eq!(page.status, 200, "{}", page.body);
    let welcome = s.program.rules.welcome_bonus;
    let money = |minor: i64| format_amount(minor, s.program.currency.minor_digits);
    assert_eq!(row(&page.body, "registrations", &day(s.day_a)), ["2"]);
    assert_eq!(row(&page.body, "registrations", &day(s.day_b)), ["1"]);
    assert_eq!(row(&page.body, "points", &day(s.day_a)), [(2 * welcome + s.earned_a).to_string(), "0".into()]);
    assert_eq!(row(&page.body, "points", &day(s.day_b)), [(welcome + s.earned_b).to_string(), "100".into()]);
    assert_eq!(row(&page.body, "purchases", &day(s.day_a)), ["1"]);
    assert_eq!(row(&page.body, "purchases", &day(s.day_b)), ["2"]);
    assert_eq!(row(&page.body, "revenue", &day(s.day_a)), [money(100_000)]);
    assert_eq!(row(&page.body, "revenue", &day(s.day_b)), [money(90_000)]);
    assert_eq!(row(&page.body, "registrations", &day(s.day_a + Duration::days(1))), ["0"], "a quiet day is shown as 0");
    // Seven days ending today; the card of 40 days ago is outside.
    assert_eq!(page.body.matches(r#"<figure class="panel chart" id="chart-registrations""#).count(), 1);
    let registrations = &page.body[page.body.find(r#"id="chart-registrations""#).unwrap()..];
    let registrations = &registrations[..registrations.find("</figure>").unwrap()];
    assert_eq!(registrations.matches(r#"<th scope="row">"#).count(), 7);
    // Without JavaScript the tables are open; the charts are drawn from them by the vendored uPlot.
    assert!(page.body.contains(r#"<details class="numbers" open>"#));
    assert!(page.body.contains("/admin/static/uPlot.iife.min.js?v="));
    assert!(!page.body.contains("cdn"), "nothing is loaded from elsewhere");
    let script = app.get("/admin/static/uPlot.iife.min.js").await;
    assert_eq!(script.status(), 200);
    assert!(script.text().await.unwrap().contains("uPlot"));

    // A period asked for by dates.
    let page = manager.get(&format!("/admin?from={}&to={}&lang=en", day(s.day_a), day(s.day_a))).await;
    assert_eq!(row(&page.body, "registrations", &day(s.day_a)), ["2"]);
    assert!(!page.body.contains(&format!(r#"<th scope="row">{}</th>"#, day(s.day_b))));
}

async fn each_chart_downloads_as_csv_with_the_same_numbers(kind: StoreKind) {
    let app = spawn_app(kind).await;
    let s = seeded(&app).await;
    let owner = app.signed_in(Role::Owner).await;
    let (a, b) = (day(s.day_a), day(s.day_b));
    let csv = |chart: &str| format!("/admin/dashboard.csv?chart={chart}&program=default&from={a}&to={b}&lang=en");

    let purchases = owner.get(&csv("purchases")).await;
    assert_eq!(purchases.status, 200);
    assert_eq!(purchases.headers["content-type"], "text/csv; charset=utf-8");
    assert!(purchases.headers["content-disposition"].to_str().unwrap().contains("default-purchases-"));
    let middle = day(s.day_a + Duration::days(1));
    assert_eq!(purchases.body, format!("Day,Purchases\n{a},1\n{middle},0\n{b},2\n"));
    let revenue = owner.get(&csv("revenue")).await;
    let money = |minor: i64| format_amount(minor, s.program.currency.minor_digits);
    assert_eq!(
        revenue.body,
        format!("Day,Revenue\n{a},{}\n{middle},{}\n{b},{}\n", money(100_000), money(0), money(90_000))
    );
    let points = owner.get(&csv("points")).await;
    let welcome = s.program.rules.welcome_bonus;
    assert!(points.body.starts_with("Day,Points issued,Points redeemed\n"), "{}", points.body);
    assert!(points.body.ends_with(&format!("{b},{},100\n", welcome + s.earned_b)), "{}", points.body);

    let unknown = owner.get("/admin/dashboard.csv?chart=nothing&lang=en").await;
    assert_eq!(unknown.status, 404);
}

async fn active_cards_and_tiers_come_from_the_present_counts(kind: StoreKind) {
    let app = spawn_app(kind).await;
    let s = seeded(&app).await;
    let manager = app.signed_in(Role::Manager).await;
    let page = manager.get("/admin?lang=en").await;
    assert_eq!(row(&page.body, "active", "30 days"), ["3"], "the card of 40 days ago is not active in 30 days");
    assert_eq!(row(&page.body, "active", "90 days"), ["4"]);
    let cards = app.store.cards_after(None, usize::MAX).await.unwrap();
    for tier in &s.program.rules.tiers {
        let n = cards.iter().filter(|c| c.tier == tier.id).count();
        assert_eq!(row(&page.body, "tiers", &tier.name_en), [n.to_string()], "{}", tier.id);
    }
    let csv = manager.get("/admin/dashboard.csv?chart=active&lang=en").await;
    assert_eq!(csv.body, "Ledger entry within,Cards\n30 days,3\n90 days,4\n");
}

async fn updating_now_brings_todays_figures_up_to_date(kind: StoreKind) {
    let app = spawn_app(kind).await;
    let s = seeded(&app).await;
    let today = day(app.clock_now().date_naive());
    let manager = app.signed_in(Role::Manager).await;
    assert_eq!(row(&manager.get("/admin?lang=en").await.body, "registrations", &today), ["0"]);

    enroll(app.store.as_ref(), &s.program, "+79990000009", app.clock_now()).await;
    assert_eq!(row(&manager.get("/admin?lang=en").await.body, "registrations", &today), ["0"], "not counted yet");
    let done = manager.post("/admin/dashboard/refresh", &[("program", "default"), ("from", ""), ("to", "")]).await;
    assert_eq!(done.status, 303, "{}", done.body);
    let back = done.location.unwrap();
    assert!(back.starts_with("/admin?program=default&from="), "{back}");
    let page = manager.get(&format!("{back}&lang=en")).await;
    assert!(page.body.contains("The figures are up to date."));
    assert_eq!(row(&page.body, "registrations", &today), ["1"]);
    assert_eq!(row(&page.body, "active", "30 days"), ["4"]);
    let forged = manager.post_raw("/admin/dashboard/refresh", &[("program", "default")]).await;
    assert_eq!(forged.status, 403, "the form needs the session's CSRF token");
}

async fn a_cashier_keeps_the_cashier_home_and_cannot_download_figures(kind: StoreKind) {
    let app = spawn_app(kind).await;
    seeded(&app).await;
    let cashier = app.signed_in(Role::Cashier).await;
    let home = cashier.get("/admin?lang=en").await;
    assert_eq!(home.status, 200);
    assert!(home.body.contains(r#"href="/admin/cashier""#));
    assert!(!home.body.contains("chart-registrations"), "a cashier sees no figures");
    let csv = cashier.get("/admin/dashboard.csv?chart=revenue").await;
    assert_eq!(csv.status, 403);
    assert!(!csv.body.contains("Revenue,"));
    let refresh = cashier.post("/admin/dashboard/refresh", &[("program", "default")]).await;
    assert_eq!(refresh.status, 403);
    let anonymous = app.admin_get_anonymous("/admin/dashboard.csv?chart=revenue").await;
    assert_eq!(anonymous.status, 303, "{}", anonymous.body);
    let owner = app.signed_in(Role::Owner).await;
    assert!(owner.get("/admin?lang=en").await.body.contains("chart-registrations"));
}

async fn a_period_that_cannot_be_read_is_refused(kind: StoreKind) {
    let app = spawn_app(kind).await;
    let manager = app.signed_in(Role::Manager).await;
    for query in ["days=0", "days=many", "from=2026-03-05&to=2026-03-01", "from=yesterday", "from=2001-01-01"] {
        let page = manager.get(&format!("/admin?{query}")).await;
        assert_eq!(page.status, 400, "{query}");
        let csv = manager.get(&format!("/admin/dashboard.csv?chart=revenue&{query}")).await;
        assert_eq!(csv.status, 400, "{query}");
    }
}

async fn a_stamps_program_chosen_on_the_page_shows_stamps_and_rewards(kind: StoreKind) {
    let app = crate::stamps::app(kind).await;
    let cafe = crate::stamps::cafe(&app, |s| s.stamps_per_reward = 3).await;
    let store = app.store.as_ref();
    let yesterday = app.clock_now().date_naive() - Duration::days(1);
    let at = loy::domain::TimeZone::UTC.start_of(yesterday) + Duration::hours(9);
    let card = enroll(store, &cafe, "+79990000077", at).await;
    let stamp = Command::Stamp { stamps: Some(4), purchase_amount: Some(35_000), order_id: None, description: None };
    write(store, &cafe, &card.serial, stamp, at + Duration::hours(1)).await;
    let reward = Command::RedeemReward { count: 1, order_id: None, description: None };
    write(store, &cafe, &card.serial, reward, at + Duration::hours(2)).await;
    loy::stats::try_execute_task(store, app.clock_now(), usize::MAX).await.unwrap();
    let manager = app.signed_in(Role::Manager).await;

    let page = manager.get("/admin?program=cafe&days=7&lang=en").await;
    assert_eq!(page.status, 200);
    assert!(page.body.contains(r#"<option value="cafe" selected>Coffee Corner</option>"#), "the program choice");
    assert!(!page.body.contains(r#"id="chart-points""#));
    let welcome = i64::from(cafe.rules.stamp_rules().unwrap().welcome_stamps);
    // Stamps issued, rewards issued (one round of three completed), rewards redeemed.
    assert_eq!(row(&page.body, "stamps", &day(yesterday)), [(welcome + 4).to_string(), "1".into(), "1".into()]);
    assert_eq!(row(&page.body, "purchases", &day(yesterday)), ["1"]);
    assert_eq!(row(&page.body, "registrations", &day(yesterday)), ["1"]);
    let default = manager.get("/admin?days=7&lang=en").await;
    assert_eq!(
        row(&default.body, "registrations", &day(yesterday)),
        ["0"],
        "the default program's figures are its own"
    );
}

async fn installs_segments_and_messages_have_their_charts(kind: StoreKind) {
    use loy::store::wallet_events::{Wallet, WalletChange, WalletEvent, WalletSource};
    let app = spawn_app(kind).await;
    let s = seeded(&app).await;
    let store = app.store.as_ref();
    let card = store.cards_after(None, 1).await.unwrap().remove(0);
    let at = |d: NaiveDate| loy::domain::TimeZone::UTC.start_of(d) + Duration::hours(9);
    for (id, wallet, change, when) in [
        ("a1", Wallet::Apple, WalletChange::Installed, at(s.day_a)),
        ("a2", Wallet::Apple, WalletChange::Installed, at(s.day_a)),
        ("g1", Wallet::Google, WalletChange::Installed, at(s.day_b)),
        ("a3", Wallet::Apple, WalletChange::Removed, at(s.day_b)),
    ] {
        let event = WalletEvent {
            id: id.into(),
            serial: card.serial.clone(),
            program_id: "default".into(),
            wallet,
            change,
            at: when,
            source: WalletSource::PassKit,
        };
        assert!(store.record_wallet_event(&event).await.unwrap());
    }
    // Those days were final already (events carry the time they are recorded, so none lands in
    // a past day outside a test): they are computed again to count them.
    for d in [s.day_a, s.day_b] {
        loy::stats::compute_day(store, "default", loy::domain::TimeZone::UTC, d, app.clock_now()).await.unwrap();
    }
    loy::segments::runner::run_due(&app.state).await.unwrap();
    let text = loy::messages::MessageText { body: "Hello".into(), ..Default::default() };
    let message = loy::messages::compose::compose(
        &app.state,
        &s.program,
        text,
        loy::messages::Audience::All,
        None,
        "staff:test".into(),
    )
    .await
    .unwrap();
    for _ in 0..500 {
        loy::messages::fanout::run_due(&app.state).await.unwrap();
        if store.message(&message.id).await.unwrap().unwrap().state == loy::messages::MessageState::Sent {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let manager = app.signed_in(Role::Manager).await;
    let page = manager.get("/admin?days=7&lang=en").await;
    assert_eq!(row(&page.body, "wallets", &day(s.day_a)), ["2", "0", "0", "0"]);
    assert_eq!(row(&page.body, "wallets", &day(s.day_b)), ["0", "1", "1", "0"]);
    let segments = store.segment_counts("default").await.unwrap();
    let total: u64 = segments.iter().map(|(_, n)| n).sum();
    assert_eq!(total, 4, "every card is in a segment");
    for (segment, n) in segments {
        let label = match segment.as_str() {
            "cant_lose" => "Can't lose".to_owned(),
            other => {
                let mut name = other.replace('_', " ");
                name[..1].make_ascii_uppercase();
                name
            }
        };
        assert_eq!(row(&page.body, "segments", &label), [n.to_string()], "{label}");
    }
    let today = app.clock_now().date_naive();
    assert_eq!(row(&page.body, "messages", &day(today)), ["1", "4"]);
}

/// In Vladivostok (UTC+10) a day begins at 14:00 UTC the day before: what happens at 00:30 there
/// counts on that day, not on the UTC date; changing the zone computes the days again.
async fn a_programs_days_begin_at_midnight_in_its_time_zone(kind: StoreKind) {
    use loy::domain::TimeZone;
    use loy::store::wallet_events::{Wallet, WalletChange, WalletEvent, WalletSource};
    let app = spawn_app(kind).await;
    let store = app.store.as_ref();
    let vladivostok = TimeZone::parse("Asia/Vladivostok").unwrap();
    let mut program = store.program("default").await.unwrap().unwrap();
    let version = program.version;
    program.time_zone = vladivostok;
    program.version += 1;
    assert!(app.state.save_program(&program, version).await.unwrap());
    let local_day = vladivostok.date_of(app.clock_now()) - Duration::days(2);
    let at = vladivostok.start_of(local_day) + Duration::minutes(30);
    let utc_day = TimeZone::UTC.date_of(at);
    assert_eq!(utc_day, local_day - Duration::days(1), "00:30 in Vladivostok is the day before in UTC");
    let card = enroll(store, &program, "+79990000055", at).await;
    let event = WalletEvent {
        id: "a1".into(),
        serial: card.serial.clone(),
        program_id: "default".into(),
        wallet: Wallet::Apple,
        change: WalletChange::Installed,
        at,
        source: WalletSource::PassKit,
    };
    assert!(store.record_wallet_event(&event).await.unwrap());
    loy::stats::try_execute_task(store, app.clock_now(), usize::MAX).await.unwrap();
    let manager = app.signed_in(Role::Manager).await;

    let page = manager.get("/admin?days=7&lang=en").await;
    assert_eq!(page.status, 200);
    assert_eq!(row(&page.body, "registrations", &day(local_day)), ["1"]);
    assert_eq!(row(&page.body, "registrations", &day(utc_day)), ["0"]);
    assert_eq!(row(&page.body, "wallets", &day(local_day)), ["1", "0", "0", "0"]);
    // The chart's time axis: each day's midnight there, drawn in that zone.
    let x = vladivostok.start_of(local_day).timestamp();
    assert!(page.body.contains(&format!(r#"<tr data-x="{x}"><th scope="row">{}</th>"#, day(local_day))));
    assert!(page.body.contains(r#"data-time-zone="Asia/Vladivostok""#));
    assert!(page.body.contains("(Asia/Vladivostok)"), "the figures' time, told there");
    // The last 7 days end today there, which may already be tomorrow in UTC.
    let today = vladivostok.date_of(app.clock_now());
    assert!(page.body.contains(&format!(r#"name="to" type="date" value="{}""#, day(today))));

    // Back to UTC: every day is computed again, the registration on its UTC date.
    let mut program = store.program("default").await.unwrap().unwrap();
    let version = program.version;
    program.time_zone = TimeZone::UTC;
    program.version += 1;
    assert!(app.state.save_program(&program, version).await.unwrap());
    loy::stats::try_execute_task(store, app.clock_now(), usize::MAX).await.unwrap();
    let page = manager.get("/admin?days=7&lang=en").await;
    assert_eq!(row(&page.body, "registrations", &day(utc_day)), ["1"]);
    assert_eq!(row(&page.body, "registrations", &day(local_day)), ["0"]);
    assert_eq!(row(&page.body, "wallets", &day(utc_day)), ["1", "0", "0", "0"]);
}
