//! Imports from the console (owners): a CSV file is uploaded to `/admin/data`, checked in the
//! background (the dry run), shown with its report, imported in the background on the owner's
//! word with a progress bar, and its new customers can be sent their card link. Each step is
//! recorded in the audit log. The work itself is in `crate::import::jobs`.

use actix_web::http::{StatusCode, header};
use actix_web::{HttpRequest, HttpResponse, web};
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};

use super::AdminError;
use super::audit::{self, actions};
use super::data;
use super::session::{CsrfForm, NoFields, Owner, StaffSession};
use crate::import::LineError;
use crate::import::jobs::{self, MAX_FILE_BYTES};
use crate::import::links::{self, LinksSent};
use crate::state::AppState;
use crate::store::{ImportJob, ImportState};

/// Bad lines shown on the page; the rest are in the downloadable report.
const SHOWN_ERRORS: usize = 100;

/// Room for the form's other fields and the multipart framing around the file.
const FRAMING_BYTES: u64 = 64 * 1024;

/// Why an upload was refused (a key of the catalog's `data` table).
#[derive(Debug, Clone, Copy)]
pub(super) enum UploadProblem {
    NoFile,
    Empty,
    TooLarge,
    NotMultipart,
}

impl UploadProblem {
    fn key(self) -> &'static str {
        match self {
            Self::NoFile => "upload_no_file",
            Self::Empty => "upload_empty",
            Self::TooLarge => "upload_too_large",
            Self::NotMultipart => "upload_not_multipart",
        }
    }

    pub(super) fn status(self) -> StatusCode {
        match self {
            Self::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            _ => StatusCode::UNPROCESSABLE_ENTITY,
        }
    }
}

/// An uploaded file.
pub(super) struct Upload {
    pub(super) file_name: String,
    pub(super) bytes: Vec<u8>,
}

/// Reads the multipart body (fields `csrf` and `file`), refusing a file over `max_bytes` as
/// soon as it passes it. The CSRF field (which the form sends before the file) is returned
/// whatever the outcome.
pub(super) async fn read_upload(
    req: &HttpRequest,
    payload: web::Payload,
    max_bytes: usize,
) -> (Option<String>, Result<Upload, UploadProblem>) {
    let content_type = req.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    let Ok(boundary) = multer::parse_boundary(content_type) else { return (None, Err(UploadProblem::NotMultipart)) };
    let limits = multer::SizeLimit::new()
        .whole_stream(max_bytes as u64 + FRAMING_BYTES)
        .for_field("file", max_bytes as u64)
        .for_field("csrf", 1024);
    let constraints = multer::Constraints::new().allowed_fields(vec!["csrf", "file"]).size_limit(limits);
    // The parser wants a stream it could move across threads, which a request's payload is
    // not: the payload is fed to it through a small channel, both driven by this one task.
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<web::Bytes, std::io::Error>>(8);
    let feed = async move {
        let mut payload = payload;
        while let Some(chunk) = payload.next().await {
            let chunk = chunk.map_err(|e| std::io::Error::other(e.to_string()));
            let failed = chunk.is_err();
            if tx.send(chunk).await.is_err() || failed {
                break;
            }
        }
    };
    let stream = futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|chunk| (chunk, rx)) });
    let mut csrf = None;
    let parse = async {
        let mut multipart = multer::Multipart::with_constraints(stream, boundary, constraints);
        let too_large = |e: multer::Error| match e {
            multer::Error::FieldSizeExceeded { .. } | multer::Error::StreamSizeExceeded { .. } => {
                UploadProblem::TooLarge
            }
            _ => UploadProblem::NotMultipart,
        };
        let mut upload = Upload { file_name: String::new(), bytes: Vec::new() };
        while let Some(field) = multipart.next_field().await.map_err(too_large)? {
            match field.name() {
                Some("csrf") => csrf = Some(field.text().await.map_err(too_large)?),
                Some("file") => {
                    upload.file_name = field.file_name().unwrap_or("").chars().take(200).collect();
                    upload.bytes = field.bytes().await.map_err(too_large)?.to_vec();
                }
                _ => {}
            }
        }
        Ok::<_, UploadProblem>(upload)
    };
    let ((), upload) = futures_util::future::join(feed, parse).await;
    let upload = upload.and_then(|upload| {
        if upload.file_name.is_empty() {
            Err(UploadProblem::NoFile)
        } else if upload.bytes.iter().all(u8::is_ascii_whitespace) {
            Err(UploadProblem::Empty)
        } else {
            Ok(upload)
        }
    });
    (csrf, upload)
}

/// `POST /admin/data/import` (multipart: `csrf`, `file`): stores the file as a new job and
/// starts its dry run.
pub async fn upload(
    state: web::Data<AppState>,
    session: StaffSession<Owner>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, actix_web::Error> {
    let header_token = req.headers().get(super::session::CSRF_HEADER).and_then(|v| v.to_str().ok()).map(str::to_owned);
    let (field_token, upload) = read_upload(&req, payload, MAX_FILE_BYTES).await;
    let presented = header_token.or(field_token);
    if !presented.is_some_and(|p| session.csrf_matches(&p)) {
        tracing::warn!(path = req.path(), "a console upload came without its session's CSRF token");
        return Err(super::session::forbidden(&req, Some(&session.viewer()), "csrf_text"));
    }
    let upload = match upload {
        Ok(upload) => upload,
        Err(problem) => {
            let page = data::page(&state, Some(problem.key())).await?;
            return Ok(session.page_with(&req, problem.status(), "data.html", page));
        }
    };
    let now = state.clock.now();
    let program = state.program().await.map_err(|e| AdminError::Internal(e.to_string()))?;
    let job = jobs::new_job(&program.id, &session.staff.id, &upload.file_name, upload.bytes.len() as u64, now);
    state.store.insert_import_job(&job, &upload.bytes).await.map_err(AdminError::from)?;
    let details = serde_json::json!({ "file_bytes": job.file_bytes });
    audit::record(&state, &session, actions::IMPORT_UPLOADED, Some(&job.id), details).await;
    jobs::start(state.clone(), job.id.clone());
    Ok(see_other(&format!("/admin/data/imports/{}", job.id)))
}

fn see_other(location: &str) -> HttpResponse {
    HttpResponse::SeeOther().insert_header((header::LOCATION, location.to_owned())).finish()
}

/// What the job page and its progress fragment show.
#[derive(Serialize)]
struct JobPage {
    job: ImportJob,
    state: &'static str,
    running: bool,
    percent: u64,
    errors: Vec<LineError>,
    /// Bad lines counted beyond those shown.
    more_errors: u64,
    /// Bad lines counted beyond those kept in the report.
    unkept_errors: u64,
    mail_on: bool,
    sent: Option<LinksSent>,
    links_error: Option<&'static str>,
}

fn job_page(state: &AppState, job: ImportJob, sent: Option<LinksSent>, links_error: Option<&'static str>) -> JobPage {
    let running = job.state.runnable();
    let percent = if running && job.total == 0 { 0 } else { job.percent() };
    let bad = job.imported.or(job.checked).map_or(0, |c| c.bad);
    let errors: Vec<LineError> = job.errors.iter().take(SHOWN_ERRORS).cloned().collect();
    JobPage {
        state: job.state.as_str(),
        running,
        percent,
        more_errors: bad.saturating_sub(errors.len() as u64),
        unkept_errors: bad.saturating_sub(job.errors.len() as u64),
        errors,
        mail_on: state.mail.is_some(),
        sent,
        links_error,
        job,
    }
}

async fn job_of(state: &AppState, id: &str) -> Result<Option<ImportJob>, AdminError> {
    Ok(state.store.import_job(id).await?)
}

fn not_found(req: &HttpRequest, session: &StaffSession<Owner>) -> HttpResponse {
    super::page::notice(
        req,
        Some(&session.viewer()),
        StatusCode::NOT_FOUND,
        super::page::Notice { title: "not_found_title", text: "import_not_found_text", link: Some("/admin/data") },
    )
}

#[derive(Debug, Deserialize)]
pub struct SentQuery {
    queued: Option<u64>,
    already: Option<u64>,
    without_email: Option<u64>,
}

/// `GET /admin/data/imports/{id}`: the job's state, progress and report.
pub async fn show(
    state: web::Data<AppState>,
    session: StaffSession<Owner>,
    req: HttpRequest,
    id: web::Path<String>,
    query: web::Query<SentQuery>,
) -> Result<HttpResponse, AdminError> {
    let Some(job) = job_of(&state, &id).await? else { return Ok(not_found(&req, &session)) };
    let sent = query.queued.map(|queued| LinksSent {
        queued,
        already: query.already.unwrap_or(0),
        without_email: query.without_email.unwrap_or(0),
    });
    Ok(session.page(&req, "import.html", job_page(&state, job, sent, None)))
}

/// `GET /admin/data/imports/{id}/progress`: the progress bar alone, which htmx polls while the
/// job runs; once it has finished, htmx is told to reload the whole page (the report).
pub async fn progress(
    state: web::Data<AppState>,
    session: StaffSession<Owner>,
    req: HttpRequest,
    id: web::Path<String>,
) -> Result<HttpResponse, AdminError> {
    let Some(job) = job_of(&state, &id).await? else { return Ok(not_found(&req, &session)) };
    let page = job_page(&state, job, None, None);
    let finished = !page.running;
    let mut response = session.page(&req, "import_progress.html", page);
    if finished && req.headers().contains_key("HX-Request") {
        response
            .headers_mut()
            .insert(header::HeaderName::from_static("hx-refresh"), header::HeaderValue::from_static("true"));
    }
    Ok(response)
}

/// `POST /admin/data/imports/{id}/import`: the owner read the report; the import starts.
pub async fn confirm(
    state: web::Data<AppState>,
    session: StaffSession<Owner>,
    req: HttpRequest,
    id: web::Path<String>,
    _form: CsrfForm<NoFields>,
) -> Result<HttpResponse, AdminError> {
    let Some(job) = job_of(&state, &id).await? else { return Ok(not_found(&req, &session)) };
    if jobs::confirm(&state, &job.id).await? {
        let details = serde_json::json!({ "would_create": job.checked.map_or(0, |c| c.created) });
        audit::record(&state, &session, actions::IMPORT_STARTED, Some(&job.id), details).await;
        jobs::start(state.clone(), job.id.clone());
    }
    Ok(see_other(&format!("/admin/data/imports/{}", job.id)))
}

/// `GET /admin/data/imports/{id}/errors.csv`: the bad lines of the report, line and reason.
pub async fn errors(
    state: web::Data<AppState>,
    session: StaffSession<Owner>,
    req: HttpRequest,
    id: web::Path<String>,
) -> Result<HttpResponse, AdminError> {
    let Some(job) = job_of(&state, &id).await? else { return Ok(not_found(&req, &session)) };
    let mut out = csv::Writer::from_writer(b"\xEF\xBB\xBF".to_vec());
    let write = |out: &mut csv::Writer<Vec<u8>>, record: &[&str]| {
        out.write_record(record).map_err(|e| AdminError::Internal(e.to_string()))
    };
    write(&mut out, &["line", "reason"])?;
    for e in &job.errors {
        write(&mut out, &[&e.line.to_string(), &e.reason])?;
    }
    let body = out.into_inner().map_err(|e| AdminError::Internal(e.to_string()))?;
    Ok(HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, "text/csv; charset=utf-8"))
        .insert_header((header::CONTENT_DISPOSITION, format!("attachment; filename=\"{}-errors.csv\"", job.id)))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .body(body))
}

/// `POST /admin/data/imports/{id}/links`: queues the card link to each customer the import
/// created who has an address and was not sent one for it yet.
pub async fn send_links(
    state: web::Data<AppState>,
    session: StaffSession<Owner>,
    req: HttpRequest,
    id: web::Path<String>,
    _form: CsrfForm<NoFields>,
) -> Result<HttpResponse, AdminError> {
    let Some(mut job) = job_of(&state, &id).await? else { return Ok(not_found(&req, &session)) };
    let refuse = |job, why| {
        let page = job_page(&state, job, None, Some(why));
        Ok(session.page_with(&req, StatusCode::CONFLICT, "import.html", page))
    };
    let Some(mail) = state.mail.as_deref() else { return refuse(job, "links_mail_off") };
    if job.state != ImportState::Done {
        return refuse(job, "links_not_done");
    }
    let sent = links::send_links(state.store.as_ref(), mail, &job, state.clock.now()).await?;
    if sent.queued > 0 {
        job.links_queued += sent.queued;
        job.updated_at = state.clock.now();
        if !state.store.save_import_job(&job).await? {
            tracing::warn!(job = %job.id, "the count of queued links was not saved: the job changed meanwhile");
        }
    }
    let details = serde_json::json!({ "queued": sent.queued, "already": sent.already });
    audit::record(&state, &session, actions::IMPORT_LINKS_SENT, Some(&job.id), details).await;
    Ok(see_other(&format!(
        "/admin/data/imports/{}?queued={}&already={}&without_email={}",
        job.id, sent.queued, sent.already, sent.without_email
    )))
}

/// The latest imports, for the data page.
pub async fn recent(state: &AppState) -> Result<Vec<ImportJob>, AdminError> {
    Ok(state.store.import_jobs(20).await?)
}
