//! The program dashboard on the console's home (managers and owners): for a chosen program and
//! period, the charts of registrations, points (or stamps) issued and redeemed, purchases and
//! revenue per day, active cards and the tier distribution — read from the aggregates
//! [`crate::stats`] keeps, never from the ledger itself.
//!
//! Every chart is one [`Chart`]: the page draws it with uPlot from its table (so the numbers on
//! screen, in the table and in the CSV are the same), and `/admin/dashboard.csv` downloads it.
//! Adding a chart is adding a function that returns one.

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

use super::AdminError;
use super::session::{Manager, StaffSession};
use crate::domain::amount::format_amount;
use crate::domain::{Locale, Program};
use crate::http::pages::Catalog;
use crate::state::AppState;
use crate::store::{LedgerTotals, StatsSnapshot};

/// The periods offered as links, in days ending today.
pub const PRESETS: [i64; 4] = [7, 30, 90, 365];

/// The longest period shown (a little over three years of days).
pub const MAX_DAYS: i64 = 1_100;

/// What the page and the CSV are asked for: `program`, and `days` ending today or `from`..=`to`.
#[derive(Debug, Default, Deserialize)]
pub struct DashboardQuery {
    #[serde(default)]
    pub program: String,
    #[serde(default)]
    pub days: Option<String>,
    #[serde(default)]
    pub from: Option<String>,
    #[serde(default)]
    pub to: Option<String>,
    #[serde(default)]
    pub chart: Option<String>,
    /// Set on the way back from "update now", to say it was done.
    #[serde(default)]
    pub updated: Option<String>,
}

/// The days shown, both ends included.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Period {
    pub from: NaiveDate,
    pub to: NaiveDate,
}

impl Period {
    /// The period a query names, ending `today` by default: `None` when a date cannot be read,
    /// the ends are the wrong way round, or the period is longer than [`MAX_DAYS`].
    pub fn of(query: &DashboardQuery, today: NaiveDate) -> Option<Self> {
        let day = |v: &Option<String>| -> Result<Option<NaiveDate>, ()> {
            match v.as_deref().map(str::trim).filter(|v| !v.is_empty()) {
                None => Ok(None),
                Some(v) => NaiveDate::parse_from_str(v, "%Y-%m-%d").map(Some).map_err(|_| ()),
            }
        };
        let (from, to) = (day(&query.from).ok()?, day(&query.to).ok()?);
        let days = match query.days.as_deref().map(str::trim).filter(|v| !v.is_empty()) {
            None => 30,
            Some(v) => v.parse::<i64>().ok().filter(|d| (1..=MAX_DAYS).contains(d))?,
        };
        let to = to.unwrap_or(today);
        let from = from.unwrap_or(to - chrono::Duration::days(days - 1));
        let length = (to - from).num_days() + 1;
        (1..=MAX_DAYS).contains(&length).then_some(Self { from, to })
    }

    pub fn days(&self) -> impl Iterator<Item = NaiveDate> + '_ {
        self.from.iter_days().take_while(|d| *d <= self.to)
    }

    /// The preset this period is, if it is one (for marking the link as current).
    fn preset(&self, today: NaiveDate) -> Option<i64> {
        let length = (self.to - self.from).num_days() + 1;
        (self.to == today && PRESETS.contains(&length)).then_some(length)
    }
}

/// One figure of a row: as a machine reads it (`value`, for the chart and the CSV) and as a
/// person does (`text`).
#[derive(Debug, Clone, Serialize)]
pub struct Cell {
    pub value: String,
    pub text: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct ChartRow {
    /// The day (`YYYY-MM-DD`) or the category's name.
    pub label: String,
    /// Where the row sits on the x axis: seconds since the epoch for days, the index otherwise.
    pub x: i64,
    pub cells: Vec<Cell>,
}

/// A chart and its numbers.
#[derive(Debug, Clone, Serialize)]
pub struct Chart {
    /// Its name in the CSV link and the page (`registrations`, …).
    pub id: &'static str,
    pub title: String,
    /// `days` (lines over the period) or `bars` (categories).
    pub kind: &'static str,
    /// The heading of the first column (day or category), then one per series.
    pub label: String,
    pub series: Vec<String>,
    pub rows: Vec<ChartRow>,
}

/// The charts of a program for a period, in page order.
pub struct Figures<'a> {
    pub program: &'a Program,
    pub period: Period,
    /// The stored days of the period (missing ones count as nothing happened).
    pub days: Vec<(NaiveDate, LedgerTotals)>,
    pub snapshot: Option<StatsSnapshot>,
    /// Passes installed and removed per day, wallet and change.
    pub wallets: Vec<crate::store::wallet_events::DayCount>,
    /// Cards per RFM segment as of the last computation (empty before the first).
    pub segments: Vec<(crate::segments::rfm::Segment, u64)>,
    /// Messages written per day of the period, and the cards they reached.
    pub messages: std::collections::HashMap<NaiveDate, (i64, i64)>,
    pub locale: Locale,
}

fn dash(t: &Catalog, key: &str) -> String {
    t.in_section("dash", key)
}

fn number(n: i64) -> Cell {
    Cell { value: n.to_string(), text: n.to_string() }
}

impl Figures<'_> {
    fn day_chart(
        &self,
        t: &Catalog,
        id: &'static str,
        series: &[&str],
        cells: impl Fn(&LedgerTotals) -> Vec<Cell>,
    ) -> Chart {
        let by_day: std::collections::HashMap<NaiveDate, &LedgerTotals> =
            self.days.iter().map(|(d, t)| (*d, t)).collect();
        let zero = LedgerTotals::default();
        let rows = self
            .period
            .days()
            .map(|day| ChartRow {
                label: day.format("%Y-%m-%d").to_string(),
                x: self.program.time_zone.start_of(day).timestamp(),
                cells: cells(by_day.get(&day).copied().unwrap_or(&zero)),
            })
            .collect();
        Chart {
            id,
            title: dash(t, &format!("chart_{id}")),
            kind: "days",
            label: dash(t, "day"),
            series: series.iter().map(|k| dash(t, k)).collect(),
            rows,
        }
    }

    /// A chart of counts per day from `by_day` (days without a row count nothing).
    fn counts_chart(
        &self,
        t: &Catalog,
        id: &'static str,
        series: &[&str],
        by_day: &std::collections::HashMap<NaiveDate, Vec<i64>>,
    ) -> Chart {
        let zero = vec![0; series.len()];
        let rows = self
            .period
            .days()
            .map(|day| ChartRow {
                label: day.format("%Y-%m-%d").to_string(),
                x: self.program.time_zone.start_of(day).timestamp(),
                cells: by_day.get(&day).unwrap_or(&zero).iter().map(|n| number(*n)).collect(),
            })
            .collect();
        Chart {
            id,
            title: dash(t, &format!("chart_{id}")),
            kind: "days",
            label: dash(t, "day"),
            series: series.iter().map(|k| dash(t, k)).collect(),
            rows,
        }
    }

    /// Installs and removals per day: Apple's, then Google's.
    fn wallets_chart(&self, t: &Catalog) -> Chart {
        use crate::store::wallet_events::{Wallet, WalletChange};
        let mut by_day: std::collections::HashMap<NaiveDate, Vec<i64>> = std::collections::HashMap::new();
        for (day, wallet, change, n) in &self.wallets {
            let column = match (wallet, change) {
                (Wallet::Apple, WalletChange::Installed) => 0,
                (Wallet::Apple, WalletChange::Removed) => 1,
                (Wallet::Google, WalletChange::Installed) => 2,
                (Wallet::Google, WalletChange::Removed) => 3,
            };
            by_day.entry(*day).or_insert_with(|| vec![0; 4])[column] += i64::try_from(*n).unwrap_or(i64::MAX);
        }
        self.counts_chart(
            t,
            "wallets",
            &["apple_installed", "apple_removed", "google_installed", "google_removed"],
            &by_day,
        )
    }

    fn bar_chart(&self, t: &Catalog, id: &'static str, label: &str, rows: Vec<(String, u64)>) -> Chart {
        Chart {
            id,
            title: dash(t, &format!("chart_{id}")),
            kind: "bars",
            label: dash(t, label),
            series: vec![dash(t, "cards")],
            rows: rows
                .into_iter()
                .enumerate()
                .map(|(i, (label, n))| ChartRow {
                    label,
                    x: i64::try_from(i).unwrap_or(0),
                    cells: vec![number(i64::try_from(n).unwrap_or(i64::MAX))],
                })
                .collect(),
        }
    }

    /// Every chart, in the order the page shows them.
    pub fn charts(&self, t: &Catalog) -> Vec<Chart> {
        let stamps = self.program.rules.stamp_rules().is_some();
        let digits = self.program.currency.minor_digits;
        let mut charts = vec![self.day_chart(t, "registrations", &["new_cards"], |d| {
            vec![number(i64::try_from(d.registrations).unwrap_or(i64::MAX))]
        })];
        charts.push(if stamps {
            self.day_chart(t, "stamps", &["stamps_issued", "rewards_issued", "rewards_redeemed"], |d| {
                vec![number(d.issued), number(d.rewards_issued), number(d.rewards_redeemed)]
            })
        } else {
            self.day_chart(t, "points", &["points_issued", "points_redeemed"], |d| {
                vec![number(d.issued), number(d.redeemed)]
            })
        });
        charts.push(self.day_chart(t, "purchases", &["purchases"], |d| {
            vec![number(i64::try_from(d.purchases).unwrap_or(i64::MAX))]
        }));
        charts.push(self.day_chart(t, "revenue", &["revenue"], |d| {
            let amount = format_amount(d.revenue, digits);
            vec![Cell { value: amount.clone(), text: format!("{amount} {}", self.program.currency.code) }]
        }));
        let snapshot = self.snapshot.as_ref();
        let active = vec![
            (dash(t, "active_30"), snapshot.map_or(0, |s| s.active_30)),
            (dash(t, "active_90"), snapshot.map_or(0, |s| s.active_90)),
        ];
        charts.push(self.bar_chart(t, "active", "window", active));
        let tiers = self
            .program
            .rules
            .tiers
            .iter()
            .map(|tier| {
                let n = snapshot.and_then(|s| s.tiers.iter().find(|(id, _)| *id == tier.id)).map_or(0, |(_, n)| *n);
                let name = if self.locale == Locale::Ru { &tier.name_ru } else { &tier.name_en };
                (name.clone(), n)
            })
            .collect();
        charts.push(self.bar_chart(t, "tiers", "tier", tiers));
        charts.push(self.wallets_chart(t));
        let segments = crate::segments::rfm::Segment::ALL
            .iter()
            .map(|s| {
                let n = self.segments.iter().find(|(c, _)| c == s).map_or(0, |(_, n)| *n);
                (dash(t, &format!("segment_{}", s.as_str())), n)
            })
            .collect();
        charts.push(self.bar_chart(t, "segments", "segment", segments));
        let messages = self.messages.iter().map(|(day, (m, c))| (*day, vec![*m, *c])).collect();
        charts.push(self.counts_chart(t, "messages", &["messages_sent", "message_cards"], &messages));
        charts
    }
}

/// Reads the aggregates of `program` for `period`. The snapshot is computed on the spot only
/// when the background task has not made one yet (a server that just started).
pub async fn figures<'a>(
    state: &AppState,
    program: &'a Program,
    period: Period,
    locale: Locale,
) -> Result<Figures<'a>, AdminError> {
    let days = state.store.day_stats(&program.id, period.from, period.to).await?;
    let snapshot = match state.store.stats_snapshot(&program.id).await? {
        Some(s) => Some(s),
        None => Some(crate::stats::compute_snapshot(state.store.as_ref(), program, state.clock.now()).await?),
    };
    let segments = state.store.segment_counts(&program.id).await?;
    let mut messages = std::collections::HashMap::new();
    // The latest messages are few (people write them); the period's are counted from them.
    for m in state.store.messages(Some(&program.id), 1000).await? {
        let day = program.time_zone.date_of(m.send_at);
        if day >= period.from && day <= period.to && m.state != crate::messages::MessageState::Cancelled {
            let entry: &mut (i64, i64) = messages.entry(day).or_default();
            entry.0 += 1;
            entry.1 += i64::try_from(m.fan_out.reached).unwrap_or(i64::MAX);
        }
    }
    Ok(Figures {
        program,
        period,
        wallets: days.iter().flat_map(|d| d.wallets.day_counts(d.day)).collect(),
        days: days.into_iter().map(|d| (d.day, d.totals)).collect(),
        snapshot,
        segments,
        messages,
        locale,
    })
}

#[derive(Serialize)]
pub struct PresetLink {
    pub days: i64,
    pub href: String,
    pub current: bool,
}

#[derive(Serialize)]
pub struct ProgramChoice {
    pub id: String,
    pub name: String,
}

/// The dashboard as the home page shows it.
#[derive(Serialize)]
pub struct DashboardPage {
    pub program: String,
    pub program_name: String,
    /// The program's time zone (IANA name): its days, and the charts' time axis.
    pub time_zone: &'static str,
    pub programs: Vec<ProgramChoice>,
    pub from: String,
    pub to: String,
    pub presets: Vec<PresetLink>,
    pub charts: Vec<Chart>,
    /// The query part naming the program and period, for the CSV links.
    pub query: String,
    /// When the present's counts were computed (UTC, to the minute).
    pub computed_at: Option<String>,
    pub refreshed: bool,
    /// Cards of the program (deleted ones excepted, as of the snapshot) and active staff accounts.
    pub cards: u64,
    pub staff_active: usize,
}

fn query_string(program: &str, period: Period) -> String {
    serde_urlencoded::to_string([
        ("program", program.to_owned()),
        ("from", period.from.to_string()),
        ("to", period.to.to_string()),
    ])
    .unwrap_or_default()
}

/// Builds the page for `program` and `period`.
pub async fn page(
    state: &AppState,
    program: &Program,
    period: Period,
    locale: Locale,
    refreshed: bool,
) -> Result<DashboardPage, AdminError> {
    let today = program.time_zone.date_of(state.clock.now());
    let figures = figures(state, program, period, locale).await?;
    let t = super::page::pages().catalog(locale);
    let programs: Vec<ProgramChoice> = state
        .store
        .programs()
        .await?
        .into_iter()
        .filter(|p| !p.is_archived() || p.id == program.id)
        .map(|p| ProgramChoice { id: p.id, name: p.name })
        .collect();
    let presets = PRESETS
        .iter()
        .map(|&days| PresetLink {
            days,
            href: format!(
                "/admin?{}",
                serde_urlencoded::to_string([("program", program.id.clone()), ("days", days.to_string())])
                    .unwrap_or_default()
            ),
            current: period.preset(today) == Some(days),
        })
        .collect();
    let zone = program.time_zone;
    let computed_at =
        figures.snapshot.as_ref().map(|s| format!("{} ({zone})", zone.format(s.computed_at, "%Y-%m-%d %H:%M")));
    let cards = figures.snapshot.as_ref().map_or(0, |s| s.tiers.iter().map(|(_, n)| n).sum());
    let staff_active = state.store.staff_list().await?.iter().filter(|s| !s.disabled).count();
    Ok(DashboardPage {
        program: program.id.clone(),
        program_name: program.name.clone(),
        time_zone: zone.name(),
        programs: if programs.len() > 1 { programs } else { Vec::new() },
        from: period.from.to_string(),
        to: period.to.to_string(),
        presets,
        charts: figures.charts(t),
        query: query_string(&program.id, period),
        computed_at,
        refreshed,
        cards,
        staff_active,
    })
}

/// `GET /admin/dashboard.csv?chart=…&program=…&from=…&to=…`: one chart's numbers.
pub async fn csv(
    state: web::Data<AppState>,
    session: StaffSession<Manager>,
    query: web::Query<DashboardQuery>,
    req: HttpRequest,
) -> Result<HttpResponse, AdminError> {
    let program = super::chosen_program(&state, &query.program).await?;
    let today = program.time_zone.date_of(state.clock.now());
    let Some(period) = Period::of(&query, today) else { return Ok(super::bad_form(&req, &session.viewer())) };
    let locale = super::page::locale(&req);
    let figures = figures(&state, &program, period, locale).await?;
    let wanted = query.chart.as_deref().unwrap_or_default();
    let Some(chart) = figures.charts(super::page::pages().catalog(locale)).into_iter().find(|c| c.id == wanted) else {
        return Ok(super::page::notice(
            &req,
            Some(&session.viewer()),
            actix_web::http::StatusCode::NOT_FOUND,
            super::page::Notice { title: "not_found_title", text: "chart_not_found_text", link: Some("/admin") },
        ));
    };
    let body = chart_csv(&chart).map_err(|e| AdminError::Internal(format!("writing the CSV failed: {e}")))?;
    let name = format!("{}-{}-{}-{}.csv", program.id, chart.id, period.from, period.to);
    Ok(HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, "text/csv; charset=utf-8"))
        .insert_header((header::CONTENT_DISPOSITION, format!("attachment; filename=\"{name}\"")))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .body(body))
}

/// A chart as CSV: the first column's heading and the series' names, then a row per day or
/// category with the machine-readable values (amounts in major units with a decimal point).
pub fn chart_csv(chart: &Chart) -> Result<Vec<u8>, csv::Error> {
    let mut out = csv::Writer::from_writer(Vec::new());
    let mut header = vec![chart.label.as_str()];
    header.extend(chart.series.iter().map(String::as_str));
    out.write_record(&header)?;
    for row in &chart.rows {
        let mut record = vec![row.label.as_str()];
        record.extend(row.cells.iter().map(|c| c.value.as_str()));
        out.write_record(&record)?;
    }
    out.into_inner().map_err(|e| csv::Error::from(e.into_error()))
}

#[derive(Debug, Deserialize)]
pub struct RefreshForm {
    #[serde(default)]
    program: String,
    #[serde(default)]
    from: Option<String>,
    #[serde(default)]
    to: Option<String>,
}

/// `POST /admin/dashboard/refresh`: brings the chosen program's figures up to date now (today,
/// the days not final yet, the present's counts), then goes back to the dashboard (303, so a
/// reload does not post again).
pub async fn refresh(
    state: web::Data<AppState>,
    session: StaffSession<Manager>,
    form: super::session::CsrfForm<RefreshForm>,
    req: HttpRequest,
) -> Result<HttpResponse, AdminError> {
    let form = form.0;
    let program = super::chosen_program(&state, &form.program).await?;
    let now: DateTime<Utc> = state.clock.now();
    let query = DashboardQuery { program: program.id.clone(), from: form.from, to: form.to, ..Default::default() };
    let Some(period) = Period::of(&query, program.time_zone.date_of(now)) else {
        return Ok(super::bad_form(&req, &session.viewer()));
    };
    crate::stats::refresh_program(state.store.as_ref(), &program, now, crate::stats::DAYS_PER_ROUND).await?;
    let back = format!("/admin?{}&updated=1", query_string(&program.id, period));
    Ok(HttpResponse::SeeOther().insert_header((header::LOCATION, back)).finish())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(days: Option<&str>, from: Option<&str>, to: Option<&str>) -> DashboardQuery {
        DashboardQuery {
            days: days.map(str::to_owned),
            from: from.map(str::to_owned),
            to: to.map(str::to_owned),
            ..Default::default()
        }
    }

    #[test]
    fn a_period_is_the_last_days_or_the_dates_asked_for() {
        let today = NaiveDate::from_ymd_opt(2026, 3, 10).unwrap();
        let last_week = Period::of(&query(Some("7"), None, None), today).unwrap();
        assert_eq!((last_week.from, last_week.to), (NaiveDate::from_ymd_opt(2026, 3, 4).unwrap(), today));
        assert_eq!(last_week.days().count(), 7);
        assert_eq!(last_week.preset(today), Some(7));
        let default = Period::of(&query(None, None, None), today).unwrap();
        assert_eq!(default.days().count(), 30);
        let asked = Period::of(&query(None, Some("2026-02-01"), Some("2026-02-03")), today).unwrap();
        assert_eq!(asked.days().count(), 3);
        assert_eq!(asked.preset(today), None);
    }

    #[test]
    fn a_period_the_wrong_way_round_unreadable_or_too_long_is_refused() {
        let today = NaiveDate::from_ymd_opt(2026, 3, 10).unwrap();
        assert_eq!(Period::of(&query(None, Some("2026-03-05"), Some("2026-03-01")), today), None);
        assert_eq!(Period::of(&query(None, Some("yesterday"), None), today), None);
        assert_eq!(Period::of(&query(Some("0"), None, None), today), None);
        assert_eq!(Period::of(&query(None, Some("2010-01-01"), None), today), None);
    }

    #[test]
    fn a_chart_becomes_csv_with_its_machine_values() {
        let chart = Chart {
            id: "revenue",
            title: "Revenue".into(),
            kind: "days",
            label: "Day".into(),
            series: vec!["Revenue".into()],
            rows: vec![ChartRow {
                label: "2026-03-01".into(),
                x: 0,
                cells: vec![Cell { value: "12.50".into(), text: "12.50 EUR".into() }],
            }],
        };
        assert_eq!(String::from_utf8(chart_csv(&chart).unwrap()).unwrap(), "Day,Revenue\n2026-03-01,12.50\n");
    }
}
