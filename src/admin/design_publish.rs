//! Publishing from the designer (owners): the design is checked as `loy pass lint` checks a
//! pass and refused with its errors, else published (`crate::programs::publish`); the program's
//! cards are then queued for push and the Google class rewritten in the background, while the
//! page polls the fan-out's progress. Earlier versions can be restored the same way.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use serde::Serialize;

use super::AdminError;
use super::audit::{self, actions};
use super::design::{self, DesignForm, Extras, back_to, load, not_found, render};
use super::session::{CsrfForm, Manager, NoFields, Owner, StaffSession};
use crate::domain::{Program, ProgramDesign};
use crate::programs::check::DesignReport;
use crate::programs::publish::{self, PublishError, Published};
use crate::state::AppState;

/// Where the push of a program's cards stands, as the page shows it.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ProgramProgress {
    pub cards: u64,
    pub queued: u64,
    pub pushed: u64,
    pub failed: u64,
}

/// The progress panel: counts, and whether it should keep polling.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ProgressView {
    pub program_id: String,
    pub counts: ProgramProgress,
    pub running: bool,
}

pub async fn progress_view(state: &AppState, program: &Program) -> Result<ProgressView, AdminError> {
    let p = state.store.program_push_progress(&program.id).await?;
    let counts = ProgramProgress {
        cards: p.cards,
        queued: p.pending,
        pushed: p.cards.saturating_sub(p.pending).saturating_sub(p.failed),
        failed: p.failed,
    };
    let running = p.pending > 0 || program.fanned_out_revision < program.design.revision;
    Ok(ProgressView { program_id: program.id.clone(), counts, running })
}

/// `GET /admin/programs/{slug}/design/progress`: the progress fragment (htmx polls it).
pub async fn progress(
    state: web::Data<AppState>,
    session: StaffSession<Manager>,
    req: HttpRequest,
    slug: web::Path<String>,
) -> Result<HttpResponse, AdminError> {
    let Some(program) = load(&state, &slug).await? else { return Ok(not_found(&req, &session.viewer())) };
    let progress = progress_view(&state, &program).await?;
    Ok(session.page(&req, "design_progress.html", serde_json::json!({ "progress": progress })))
}

/// Records a publish or restore: the live revision before and after, and the cards moved.
async fn published(
    state: &AppState,
    session: &StaffSession<Owner>,
    action: &str,
    before: i64,
    done: &Published,
) -> HttpResponse {
    state.programs.invalidate(&done.program.id).await;
    crate::programs::push_program_change(state, &done.program);
    let details = serde_json::json!({ "before": before, "after": done.program.design.revision, "cards": done.cards });
    audit::record(state, session, action, Some(&done.program.id), details).await;
    back_to(&done.program.id, if action == actions::DESIGN_RESTORED { "restored" } else { "published" })
}

/// "Publish": refused with the check's errors (nothing changes), else published.
pub async fn publish(
    state: &AppState,
    session: &StaffSession<Owner>,
    req: &HttpRequest,
    program: Program,
    form: DesignForm,
    design: ProgramDesign,
    report: DesignReport,
) -> Result<HttpResponse, AdminError> {
    if !report.is_publishable() {
        let extras = Extras { report, problem: Some("publish_refused"), ..Extras::default() };
        return render(state, session, req, StatusCode::UNPROCESSABLE_ENTITY, &program, form, extras).await;
    }
    if form.version != program.version {
        let extras = Extras { report, problem: Some("conflict"), ..Extras::default() };
        return render(state, session, req, StatusCode::CONFLICT, &program, form, extras).await;
    }
    let before = program.design.revision;
    match publish::publish(&state.store, &program, design, &session.staff.email, state.clock.now()).await {
        Ok(done) => Ok(published(state, session, actions::DESIGN_PUBLISHED, before, &done).await),
        Err(PublishError::Conflict) => {
            let extras = Extras { report, problem: Some("conflict"), ..Extras::default() };
            render(state, session, req, StatusCode::CONFLICT, &program, form, extras).await
        }
        Err(PublishError::Store(e)) => Err(e.into()),
    }
}

/// `POST /admin/programs/{slug}/design/history/{revision}/restore` (owners): makes an earlier
/// version live again as a new revision.
pub async fn restore(
    state: web::Data<AppState>,
    session: StaffSession<Owner>,
    req: HttpRequest,
    path: web::Path<(String, i64)>,
    _form: CsrfForm<NoFields>,
) -> Result<HttpResponse, AdminError> {
    let (slug, revision) = path.into_inner();
    let Some(program) = load(&state, &slug).await? else { return Ok(not_found(&req, &session.viewer())) };
    let before = program.design.revision;
    let form = DesignForm::of(design::working_design(&program), program.version);
    match publish::restore(&state.store, &program, revision, &session.staff.email, state.clock.now()).await {
        Ok(Some(done)) => Ok(published(&state, &session, actions::DESIGN_RESTORED, before, &done).await),
        Ok(None) => Ok(not_found(&req, &session.viewer())),
        Err(PublishError::Conflict) => {
            let extras = Extras { problem: Some("conflict"), ..Extras::default() };
            render(&state, &session, &req, StatusCode::CONFLICT, &program, form, extras).await
        }
        Err(PublishError::Store(e)) => Err(e.into()),
    }
}
