//! `/admin/mail` (owners and managers): mails that failed for good, with a button that puts one
//! back in the outbox (audited). Addresses are shown masked.

use actix_web::http::{StatusCode, header};
use actix_web::{HttpRequest, HttpResponse, web};
use serde::Serialize;

use super::AdminError;
use super::audit::{self, actions};
use super::session::{CsrfForm, Manager, NoFields, StaffSession};
use crate::state::AppState;
use crate::store::MailState;

/// How many failed mails the page lists (newest first).
const SHOWN: usize = 200;

#[derive(Serialize)]
struct Row {
    id: String,
    kind: String,
    serial: String,
    recipient: String,
    attempts: u32,
    last_error: String,
    failed_at: String,
}

#[derive(Serialize)]
struct MailPage {
    mail_on: bool,
    failed: Vec<Row>,
}

/// `GET /admin/mail`.
pub async fn list(
    state: web::Data<AppState>,
    session: StaffSession<Manager>,
    req: HttpRequest,
) -> Result<HttpResponse, AdminError> {
    let failed = state
        .store
        .mails_in_state(MailState::Failed, SHOWN)
        .await?
        .into_iter()
        .map(|m| Row {
            recipient: crate::mail::mask(&m.recipient),
            serial: m.serial.to_string(),
            last_error: m.last_error.unwrap_or_default(),
            failed_at: m.updated_at.format("%Y-%m-%d %H:%M").to_string(),
            attempts: m.attempts,
            kind: m.kind,
            id: m.id,
        })
        .collect();
    Ok(session.page_with(&req, StatusCode::OK, "mail.html", MailPage { mail_on: state.mail.is_some(), failed }))
}

/// `POST /admin/mail/{id}/retry`: the mail is due again at once, its attempts counted afresh.
pub async fn retry(
    state: web::Data<AppState>,
    session: StaffSession<Manager>,
    id: web::Path<String>,
    _form: CsrfForm<NoFields>,
) -> Result<HttpResponse, AdminError> {
    if state.store.retry_mail(&id, state.clock.now()).await? {
        audit::record(&state, &session, actions::MAIL_RETRIED, Some(&id), serde_json::Value::Null).await;
        if let Some(mail) = &state.mail {
            mail.wake.notify_one();
        }
    }
    Ok(HttpResponse::SeeOther().insert_header((header::LOCATION, "/admin/mail")).finish())
}
