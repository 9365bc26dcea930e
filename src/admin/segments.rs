//! `/admin/segments` (managers and owners): a program's customers per RFM segment as of the last
//! computation, with what each segment means and when it was computed; "Compute now" (recorded
//! in the audit log) asks for a computation, which this node starts at once; and the cards of
//! one segment, paged by serial, each linking to the customer's page.

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use serde::{Deserialize, Serialize};

use super::AdminError;
use super::audit::{self, actions};
use super::session::{CsrfForm, Manager, StaffSession};
use crate::domain::Program;
use crate::http::{get_only, post_only};
use crate::segments::rfm::Segment;
use crate::state::AppState;
use crate::store::CardLookup;
use crate::store::segments::all_counts;

/// Cards per page of a segment.
const PAGE: usize = 25;

/// `t` on the clocks of the program's zone, with the zone's abbreviation (`MSK`, `+10`).
fn when(zone: crate::domain::TimeZone, t: chrono::DateTime<chrono::Utc>) -> String {
    zone.format(t, "%Y-%m-%d %H:%M %Z")
}

#[derive(Debug, Default, Deserialize)]
pub struct ProgramQuery {
    #[serde(default)]
    program: String,
    #[serde(default)]
    done: String,
    #[serde(default)]
    after: String,
}

#[derive(Serialize)]
struct ProgramChoice {
    id: String,
    name: String,
    selected: bool,
}

#[derive(Serialize)]
struct CountRow {
    segment: &'static str,
    cards: u64,
    /// Whole percent of the scored cards.
    percent: u64,
}

#[derive(Serialize)]
struct OverviewPage {
    program_id: String,
    programs: Vec<ProgramChoice>,
    computed_at: Option<String>,
    took_ms: i64,
    cards: u64,
    computing: bool,
    requested: bool,
    rows: Vec<CountRow>,
    every_hours: u32,
    window_days: u32,
    done: bool,
}

/// The program a page is about: `?program=` when it names one, else the default program.
async fn chosen_program(state: &AppState, id: &str) -> Result<(Program, Vec<Program>), AdminError> {
    Ok((super::chosen_program(state, id).await?, state.store.programs().await?))
}

/// `GET /admin/segments[?program=ID]`.
pub async fn overview(
    state: web::Data<AppState>,
    session: StaffSession<Manager>,
    req: HttpRequest,
    query: web::Query<ProgramQuery>,
) -> Result<HttpResponse, AdminError> {
    let (program, programs) = chosen_program(&state, &query.program).await?;
    let run = state.store.segment_run(&program.id).await?;
    let now = state.clock.now();
    let counts = all_counts(&state.store.segment_counts(&program.id).await?);
    let total: u64 = counts.iter().map(|(_, n)| n).sum();
    let page = OverviewPage {
        program_id: program.id.clone(),
        programs: programs
            .iter()
            .map(|p| ProgramChoice { id: p.id.clone(), name: p.name.clone(), selected: p.id == program.id })
            .collect(),
        computed_at: run.as_ref().and_then(|r| r.computed_at).map(|t| when(program.time_zone, t)),
        took_ms: run.as_ref().map_or(0, |r| r.took_ms),
        cards: run.as_ref().map_or(0, |r| r.cards),
        computing: run.as_ref().is_some_and(|r| r.computing(now)),
        requested: run.as_ref().is_some_and(|r| r.requested()),
        rows: counts
            .iter()
            .map(|(segment, n)| CountRow {
                segment: segment.as_str(),
                cards: *n,
                percent: (n * 100).checked_div(total).unwrap_or(0),
            })
            .collect(),
        every_hours: state.settings.segments.every_hours,
        window_days: state.settings.segments.window_days,
        done: query.done == "requested",
    };
    Ok(session.page(&req, "segments.html", page))
}

#[derive(Debug, Deserialize)]
pub struct ComputeForm {
    #[serde(default)]
    program: String,
}

/// `POST /admin/segments/compute`: records the request (any node's runner honours it) and
/// starts the computation on this node.
pub async fn compute_now(
    state: web::Data<AppState>,
    session: StaffSession<Manager>,
    form: CsrfForm<ComputeForm>,
) -> Result<HttpResponse, AdminError> {
    let (program, _) = chosen_program(&state, &form.program).await?;
    state.store.request_segments(&program.id, state.clock.now()).await?;
    audit::record(&state, &session, actions::SEGMENTS_REQUESTED, Some(&program.id), serde_json::json!({})).await;
    crate::segments::runner::start(state.clone());
    Ok(HttpResponse::SeeOther()
        .insert_header((header::LOCATION, format!("/admin/segments?program={}&done=requested", program.id)))
        .finish())
}

#[derive(Serialize)]
struct MemberRow {
    serial: String,
    name: String,
    card_number: String,
    balance: i64,
    last_activity: String,
    scores: String,
}

#[derive(Serialize)]
struct MembersPage {
    program_id: String,
    program_name: String,
    segment: &'static str,
    count: u64,
    rows: Vec<MemberRow>,
    next: Option<String>,
    first: Option<String>,
}

/// `GET /admin/segments/{segment}[?program=ID&after=SERIAL]`: one page of a segment's cards.
pub async fn members(
    state: web::Data<AppState>,
    session: StaffSession<Manager>,
    req: HttpRequest,
    segment: web::Path<String>,
    query: web::Query<ProgramQuery>,
) -> Result<HttpResponse, AdminError> {
    let Some(segment) = Segment::parse(&segment) else {
        return Ok(super::page::notice(
            &req,
            Some(&session.viewer()),
            actix_web::http::StatusCode::NOT_FOUND,
            super::page::Notice {
                title: "not_found_title",
                text: "segment_not_found_text",
                link: Some("/admin/segments"),
            },
        ));
    };
    let (program, _) = chosen_program(&state, &query.program).await?;
    let after = (!query.after.is_empty()).then_some(query.after.as_str());
    let mut serials = state.store.segment_members(&program.id, segment, after, PAGE + 1).await?;
    let more = serials.len() > PAGE;
    serials.truncate(PAGE);
    let mut rows = Vec::with_capacity(serials.len());
    for serial in &serials {
        let Some(card) = state.store.find_card(CardLookup::Serial(serial)).await? else { continue };
        let scores =
            state.store.card_segment(serial).await?.map(|s| format!("{}-{}-{}", s.scores.r, s.scores.f, s.scores.m));
        rows.push(MemberRow {
            serial: serial.to_string(),
            name: card.holder.as_ref().map(|h| h.full_name()).unwrap_or_default(),
            card_number: card.card_number.grouped(),
            balance: card.balance,
            last_activity: when(program.time_zone, card.last_entry.as_ref().map_or(card.created_at, |e| e.at)),
            scores: scores.unwrap_or_default(),
        });
    }
    let link = |after: Option<&str>| {
        let mut link = format!("/admin/segments/{}?program={}", segment.as_str(), program.id);
        if let Some(after) = after {
            link.push_str("&after=");
            link.push_str(after);
        }
        link
    };
    let count =
        state.store.segment_counts(&program.id).await?.iter().find(|(s, _)| *s == segment).map_or(0, |(_, n)| *n);
    let page = MembersPage {
        program_id: program.id.clone(),
        program_name: program.name.clone(),
        segment: segment.as_str(),
        count,
        next: if more { serials.last().map(|s| link(Some(s.as_str()))) } else { None },
        first: after.is_some().then(|| link(None)),
        rows,
    };
    Ok(session.page(&req, "segment_members.html", page))
}

/// The segments screens' routes, inside `/admin`.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(get_only("/segments", web::get().to(overview)))
        .service(post_only("/segments/compute", web::post().to(compute_now)))
        .service(get_only("/segments/{segment}", web::get().to(members)));
}
