//! `/admin/programs` (SPEC §4.8): the install's loyalty programs. Owners create programs, edit
//! their name, currency and language, and archive them (registration closes, cards keep working);
//! managers see the same pages read-only. The rules editor is in [`super::programs_rules`]; the
//! card designer lives at `/admin/programs/{slug}/design`.
//!
//! Every save is conditional on the version the form was drawn from, so two owners editing at
//! once never silently undo each other's change. [`create`] and [`set_archived`] are shared with
//! `loy program`.

use actix_web::http::{StatusCode, header};
use actix_web::{HttpRequest, HttpResponse, web};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::AdminError;
use super::audit::{self, Acting, actions};
use super::page::{Choice, FieldErrors, Notice};
use super::session::{CsrfForm, Manager, NoFields, Owner, RoleRequirement, StaffSession};
use crate::domain::{
    Currency, DEFAULT_PROGRAM_ID, Locale, LocalizedText, Mechanic, Program, ProgramRules, Role, StampRules, TimeZone,
};
use crate::http::{not_allowed, post_only};
use crate::state::AppState;
use crate::store::{Store, StoreError};

/// The console's program routes, inside the `/admin` scope.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/programs")
            .route(web::get().to(list))
            .route(web::post().to(add))
            .default_service(not_allowed("GET, HEAD, POST")),
    )
    .service(
        web::resource("/programs/{slug}")
            .route(web::get().to(show))
            .route(web::post().to(edit))
            .default_service(not_allowed("GET, HEAD, POST")),
    )
    .service(post_only("/programs/{slug}/archive", web::post().to(archive)))
    .service(post_only("/programs/{slug}/unarchive", web::post().to(unarchive)))
    .service(
        web::resource("/programs/{slug}/rules")
            .route(web::get().to(super::programs_rules::show))
            .route(web::post().to(super::programs_rules::save))
            .default_service(not_allowed("GET, HEAD, POST")),
    );
}

/// A 303 to `to` (after a form was handled).
pub fn see_other(to: String) -> HttpResponse {
    HttpResponse::SeeOther().insert_header((header::LOCATION, to)).finish()
}

/// Whether the page was reached after a save (`?saved=1`), to say so.
pub fn just_saved(req: &HttpRequest) -> bool {
    req.query_string().split('&').any(|p| p == "saved=1")
}

/// The address of a program's registration form: `/` for the default program.
pub fn registration_path(id: &str) -> String {
    if id == DEFAULT_PROGRAM_ID { "/".to_owned() } else { format!("/p/{id}") }
}

/// Why a new program was refused, by field.
#[derive(Debug)]
pub enum CreateError {
    /// (field, catalog key of `[prog.errors]`).
    Invalid(Vec<(&'static str, &'static str)>),
    /// A program with this id exists.
    Taken,
    Store(StoreError),
}

impl From<StoreError> for CreateError {
    fn from(e: StoreError) -> Self {
        Self::Store(e)
    }
}

/// The fields of a new program as typed.
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
pub struct NewProgram {
    #[serde(default)]
    pub slug: String,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub currency: String,
    #[serde(default)]
    pub locale: String,
    /// `points` (also when empty) or `stamps`.
    #[serde(default)]
    pub mechanic: String,
    /// Stamps programs: the stamps of a reward (empty: 10) and what the reward is, the same text
    /// in both languages until the rules editor sets each (empty: the default).
    #[serde(default)]
    pub stamps_per_reward: String,
    #[serde(default)]
    pub reward: String,
}

/// The longest program name.
pub const MAX_NAME: usize = 100;

/// Checks the name, currency and language of a program (an empty language follows
/// `LOY_DEFAULT_LOCALE`); errors are (field, catalog key).
fn parse_settings(
    name: &str,
    currency: &str,
    locale: &str,
    errors: &mut Vec<(&'static str, &'static str)>,
) -> Option<(String, Currency, Option<Locale>)> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > MAX_NAME {
        errors.push(("name", "name_invalid"));
    }
    let currency = Currency::parse(currency).map_err(|_| errors.push(("currency", "currency_invalid"))).ok();
    let locale = match locale.trim() {
        "" => Some(None),
        code => Locale::parse(code).map(Some),
    };
    if locale.is_none() {
        errors.push(("locale", "locale_invalid"));
    }
    match (currency, locale, errors.is_empty()) {
        (Some(currency), Some(locale), true) => Some((name.to_owned(), currency, locale)),
        _ => None,
    }
}

/// Creates a program with the default rules and design; `who` is recorded in the audit log.
pub async fn create(
    store: &dyn Store,
    clock: &dyn crate::clock::Clock,
    who: &impl Acting,
    fields: &NewProgram,
) -> Result<Program, CreateError> {
    let mut errors = Vec::new();
    let slug = fields.slug.trim();
    if Program::check_slug(slug).is_err() {
        errors.push(("slug", "slug_invalid"));
    }
    let parsed = parse_settings(&fields.name, &fields.currency, &fields.locale, &mut errors);
    let rules = parse_mechanic(fields, &mut errors);
    let (Some((name, currency, locale)), Some(rules)) = (parsed, rules) else {
        return Err(CreateError::Invalid(errors));
    };
    if !errors.is_empty() {
        return Err(CreateError::Invalid(errors));
    }
    let mut program = Program::new(slug, &name, currency, clock.now());
    program.locale = locale;
    if rules.mechanic == Mechanic::Stamps {
        // The front field shows stamps, not points.
        program.design.labels.balance = LocalizedText::new("Штампы", "Stamps");
    }
    program.rules = rules;
    match store.insert_program(&program).await {
        Ok(()) => {}
        Err(StoreError::Duplicate(_)) => return Err(CreateError::Taken),
        Err(e) => return Err(e.into()),
    }
    let details = json!({ "after": settings_json(&program) });
    audit::record_in(store, clock, who, actions::PROGRAM_CREATED, Some(&program.id), details).await;
    Ok(program)
}

/// The rules a new program starts with: the default points rules, or stamp rules from the
/// creation fields; errors are (field, catalog key).
fn parse_mechanic(fields: &NewProgram, errors: &mut Vec<(&'static str, &'static str)>) -> Option<ProgramRules> {
    match Mechanic::parse(fields.mechanic.trim()).or(fields.mechanic.trim().is_empty().then_some(Mechanic::Points)) {
        Some(Mechanic::Points) => Some(ProgramRules::default()),
        Some(Mechanic::Stamps) => {
            let mut stamps = StampRules::default();
            match fields.stamps_per_reward.trim() {
                "" => {}
                n => match n.parse() {
                    Ok(n) => stamps.stamps_per_reward = n,
                    Err(_) => errors.push(("stamps_per_reward", "stamps_per_reward_range")),
                },
            }
            if !fields.reward.trim().is_empty() {
                stamps.reward = LocalizedText::from(fields.reward.trim());
            }
            let rules = ProgramRules::stamps(stamps);
            let before = errors.len();
            for problem in rules.field_errors() {
                let field = if problem.field == "reward" { "reward" } else { "stamps_per_reward" };
                errors.push((field, problem.problem.code()));
            }
            (errors.len() == before).then_some(rules)
        }
        None => {
            errors.push(("mechanic", "mechanic_invalid"));
            None
        }
    }
}

/// What a program's settings look like in the audit log.
fn settings_json(p: &Program) -> serde_json::Value {
    json!({
        "name": p.name, "currency": p.currency.code, "locale": p.locale.map(Locale::code), "time_zone": p.time_zone,
        "archived": p.is_archived(), "mechanic": p.rules.mechanic.as_str(),
    })
}

/// What archiving or unarchiving came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArchiveOutcome {
    Changed,
    /// It already was in that state.
    Unchanged,
    /// The default program cannot be archived.
    Default,
    /// Someone saved the program in between.
    Conflict,
}

/// Archives (`archived`) or unarchives `program` as of `now` and records it.
pub async fn set_archived(
    store: &dyn Store,
    clock: &dyn crate::clock::Clock,
    who: &impl Acting,
    program: &Program,
    archived: bool,
) -> Result<ArchiveOutcome, StoreError> {
    if archived && program.id == DEFAULT_PROGRAM_ID {
        return Ok(ArchiveOutcome::Default);
    }
    if program.is_archived() == archived {
        return Ok(ArchiveOutcome::Unchanged);
    }
    let now = clock.now();
    let next = next_version(program, now, |p| p.archived_at = archived.then_some(now));
    if !store.update_program(&next, program.version).await? {
        return Ok(ArchiveOutcome::Conflict);
    }
    let action = if archived { actions::PROGRAM_ARCHIVED } else { actions::PROGRAM_UNARCHIVED };
    let details = json!({ "before": { "archived": !archived }, "after": { "archived": archived } });
    audit::record_in(store, clock, who, action, Some(&program.id), details).await;
    Ok(ArchiveOutcome::Changed)
}

/// `program` changed by `change`, with the next version and modification time.
pub fn next_version(program: &Program, now: DateTime<Utc>, change: impl FnOnce(&mut Program)) -> Program {
    let mut next = program.clone();
    change(&mut next);
    next.version = program.version + 1;
    next.updated_at = now;
    next
}

#[derive(Serialize)]
struct Row {
    id: String,
    name: String,
    currency: String,
    cards: u64,
    archived: bool,
    registration: String,
}

#[derive(Serialize)]
struct ListPage {
    rows: Vec<Row>,
    can_edit: bool,
    values: NewProgram,
    errors: FieldErrors,
}

async fn render_list<R: RoleRequirement>(
    state: &AppState,
    session: &StaffSession<R>,
    req: &HttpRequest,
    status: StatusCode,
    values: NewProgram,
    errors: FieldErrors,
) -> Result<HttpResponse, AdminError> {
    let mut rows = Vec::new();
    for p in state.store.programs().await? {
        let cards = state.store.program_push_progress(&p.id).await?.cards;
        rows.push(Row {
            registration: registration_path(&p.id),
            archived: p.is_archived(),
            currency: p.currency.code,
            name: p.name,
            cards,
            id: p.id,
        });
    }
    let can_edit = session.staff.role >= Role::Owner;
    Ok(session.page_with(req, status, "programs.html", ListPage { rows, can_edit, values, errors }))
}

/// `GET /admin/programs`: every program, and (owners) the form for a new one.
pub async fn list(
    state: web::Data<AppState>,
    session: StaffSession<Manager>,
    req: HttpRequest,
) -> Result<HttpResponse, AdminError> {
    let values = NewProgram {
        currency: "RUB".into(),
        locale: state.settings.default_locale.code().into(),
        ..Default::default()
    };
    render_list(&state, &session, &req, StatusCode::OK, values, FieldErrors::default()).await
}

/// `POST /admin/programs`: a new program (owners).
pub async fn add(
    state: web::Data<AppState>,
    session: StaffSession<Owner>,
    req: HttpRequest,
    form: CsrfForm<NewProgram>,
) -> Result<HttpResponse, AdminError> {
    let CsrfForm(fields) = form;
    let (status, errors) = match create(state.store.as_ref(), state.clock.as_ref(), &session, &fields).await {
        Ok(program) => {
            let to = format!("/admin/programs/{}", program.id);
            return Ok(see_other(to));
        }
        Err(CreateError::Invalid(found)) => (StatusCode::UNPROCESSABLE_ENTITY, found),
        Err(CreateError::Taken) => (StatusCode::CONFLICT, vec![("slug", "slug_taken")]),
        Err(CreateError::Store(e)) => return Err(e.into()),
    };
    let mut shown = FieldErrors::default();
    for (field, key) in errors {
        shown.add(field, key);
    }
    render_list(&state, &session, &req, status, fields, shown).await
}

#[derive(Serialize, Default)]
struct EditValues {
    name: String,
    currency: String,
    locale: String,
    time_zone: String,
    version: i64,
}

#[derive(Serialize)]
struct ProgramPage {
    id: String,
    archived: bool,
    archived_at: String,
    is_default: bool,
    registration: String,
    can_edit: bool,
    /// The time zones to choose from.
    zones: Vec<Choice>,
    values: EditValues,
    errors: FieldErrors,
    /// A sentence to show above the form (catalog key of `[prog]`).
    problem: Option<&'static str>,
    saved: bool,
}

fn values_of(p: &Program) -> EditValues {
    EditValues {
        name: p.name.clone(),
        currency: p.currency.code.clone(),
        locale: p.locale.map(Locale::code).unwrap_or_default().into(),
        time_zone: p.time_zone.name().into(),
        version: p.version,
    }
}

fn program_page<R: RoleRequirement>(
    session: &StaffSession<R>,
    req: &HttpRequest,
    status: StatusCode,
    program: &Program,
    values: EditValues,
    errors: FieldErrors,
    problem: Option<&'static str>,
) -> HttpResponse {
    let choice = |name: &str| Choice { value: name.to_owned(), label: name.replace('_', " ") };
    let mut zones: Vec<Choice> = TimeZone::offered().map(choice).collect();
    // The stored zone is offered even when it is an alias the list leaves out.
    if !zones.iter().any(|z| z.value == program.time_zone.name()) {
        zones.push(choice(program.time_zone.name()));
    }
    let page = ProgramPage {
        id: program.id.clone(),
        zones,
        archived: program.is_archived(),
        archived_at: program.archived_at.map(|t| t.format("%Y-%m-%d %H:%M UTC").to_string()).unwrap_or_default(),
        is_default: program.id == DEFAULT_PROGRAM_ID,
        registration: registration_path(&program.id),
        can_edit: session.staff.role >= Role::Owner,
        values,
        errors,
        problem,
        saved: just_saved(req),
    };
    session.page_with(req, status, "program.html", page)
}

/// The program `slug`, or the console's 404 page.
pub async fn find<R: RoleRequirement>(
    state: &AppState,
    req: &HttpRequest,
    session: &StaffSession<R>,
    slug: &str,
) -> Result<Result<Program, HttpResponse>, AdminError> {
    if Program::check_slug(slug).is_ok() {
        if let Some(program) = state.store.program(slug).await? {
            return Ok(Ok(program));
        }
    }
    Ok(Err(super::page::notice(
        req,
        Some(&session.viewer()),
        StatusCode::NOT_FOUND,
        Notice { title: "not_found_title", text: "program_not_found_text", link: Some("/admin/programs") },
    )))
}

/// `GET /admin/programs/{slug}`: a program's settings (read-only for managers).
pub async fn show(
    state: web::Data<AppState>,
    session: StaffSession<Manager>,
    req: HttpRequest,
    slug: web::Path<String>,
) -> Result<HttpResponse, AdminError> {
    let program = match find(&state, &req, &session, &slug).await? {
        Ok(p) => p,
        Err(page) => return Ok(page),
    };
    Ok(program_page(&session, &req, StatusCode::OK, &program, values_of(&program), FieldErrors::default(), None))
}

#[derive(Deserialize)]
pub struct EditForm {
    #[serde(default)]
    name: String,
    #[serde(default)]
    currency: String,
    #[serde(default)]
    locale: String,
    /// Absent: the zone stays as it is.
    time_zone: Option<String>,
    #[serde(default)]
    version: i64,
}

/// `POST /admin/programs/{slug}`: saves name, currency, language and time zone if nobody saved
/// in between.
pub async fn edit(
    state: web::Data<AppState>,
    session: StaffSession<Owner>,
    req: HttpRequest,
    slug: web::Path<String>,
    form: CsrfForm<EditForm>,
) -> Result<HttpResponse, AdminError> {
    let program = match find(&state, &req, &session, &slug).await? {
        Ok(p) => p,
        Err(page) => return Ok(page),
    };
    let CsrfForm(form) = form;
    let mut found = Vec::new();
    let typed = EditValues {
        name: form.name.clone(),
        currency: form.currency.clone(),
        locale: form.locale.clone(),
        time_zone: form.time_zone.clone().unwrap_or_else(|| program.time_zone.name().to_owned()),
        version: form.version,
    };
    let time_zone = match &form.time_zone {
        None => Some(program.time_zone),
        Some(name) => TimeZone::parse(name).map_err(|_| found.push(("time_zone", "time_zone_invalid"))).ok(),
    };
    let parsed = parse_settings(&form.name, &form.currency, &form.locale, &mut found);
    let (Some((name, currency, locale)), Some(time_zone)) = (parsed, time_zone) else {
        let mut errors = FieldErrors::default();
        for (field, key) in found {
            errors.add(field, key);
        }
        return Ok(program_page(&session, &req, StatusCode::UNPROCESSABLE_ENTITY, &program, typed, errors, None));
    };
    if form.version != program.version {
        return Ok(conflict(&session, &req, &program));
    }
    let next = next_version(&program, state.clock.now(), |p| {
        p.name = name;
        p.currency = currency;
        p.locale = locale;
        p.time_zone = time_zone;
    });
    if !state.save_program(&next, program.version).await? {
        let current = state.store.program(&program.id).await?.unwrap_or(program);
        return Ok(conflict(&session, &req, &current));
    }
    let details = json!({ "before": settings_json(&program), "after": settings_json(&next) });
    audit::record(&state, &session, actions::PROGRAM_UPDATED, Some(&program.id), details).await;
    if next.name != program.name {
        // The name is on every pass and the Google class: the cards follow it.
        crate::programs::refresh_cards(&state, &next).await?;
    }
    let to = format!("/admin/programs/{}?saved=1", program.id);
    Ok(see_other(to))
}

/// The 409 page for a save drawn from an older version: the form shows the stored values.
fn conflict<R: RoleRequirement>(session: &StaffSession<R>, req: &HttpRequest, current: &Program) -> HttpResponse {
    let values = values_of(current);
    program_page(session, req, StatusCode::CONFLICT, current, values, FieldErrors::default(), Some("conflict"))
}

async fn archive_or_unarchive(
    state: &AppState,
    session: &StaffSession<Owner>,
    req: &HttpRequest,
    slug: &str,
    archived: bool,
) -> Result<HttpResponse, AdminError> {
    let program = match find(state, req, session, slug).await? {
        Ok(p) => p,
        Err(page) => return Ok(page),
    };
    let outcome = set_archived(state.store.as_ref(), state.clock.as_ref(), session, &program, archived).await?;
    state.programs.invalidate(&program.id).await;
    let problem = match outcome {
        ArchiveOutcome::Changed | ArchiveOutcome::Unchanged => {
            let to = format!("/admin/programs/{}", program.id);
            return Ok(see_other(to));
        }
        ArchiveOutcome::Default => "default_not_archivable",
        ArchiveOutcome::Conflict => "conflict",
    };
    let current = state.store.program(&program.id).await?.unwrap_or(program);
    let values = values_of(&current);
    Ok(program_page(session, req, StatusCode::CONFLICT, &current, values, FieldErrors::default(), Some(problem)))
}

/// `POST /admin/programs/{slug}/archive`: registration closes; existing cards keep working.
pub async fn archive(
    state: web::Data<AppState>,
    session: StaffSession<Owner>,
    req: HttpRequest,
    slug: web::Path<String>,
    _form: CsrfForm<NoFields>,
) -> Result<HttpResponse, AdminError> {
    archive_or_unarchive(&state, &session, &req, &slug, true).await
}

/// `POST /admin/programs/{slug}/unarchive`: registration opens again.
pub async fn unarchive(
    state: web::Data<AppState>,
    session: StaffSession<Owner>,
    req: HttpRequest,
    slug: web::Path<String>,
    _form: CsrfForm<NoFields>,
) -> Result<HttpResponse, AdminError> {
    archive_or_unarchive(&state, &session, &req, &slug, false).await
}
