//! A customer's personal data (owners): deleting it — the card and its ledger stay under the
//! card's serial, the pass is voided and the Google object expired — and exporting everything
//! stored about the customer as one JSON file. Both are recorded in the audit log.

use actix_web::http::{StatusCode, header};
use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;
use serde_json::json;

use super::AdminError;
use super::audit;
use super::customers::{AdjustValues, back_to, card_of, not_found, render_detail};
use super::page::FieldErrors;
use super::session::{CsrfForm, Owner, StaffSession};
use crate::state::AppState;

#[derive(Debug, Deserialize)]
pub struct DeleteForm {
    #[serde(default)]
    confirm: String,
}

/// `POST /admin/customers/{serial}/delete` (owners): removes the customer's personal data,
/// keeps the ledger under the card's serial, voids the pass and expires the Google object.
pub async fn delete(
    state: web::Data<AppState>,
    session: StaffSession<Owner>,
    req: HttpRequest,
    serial: web::Path<String>,
    form: CsrfForm<DeleteForm>,
) -> Result<HttpResponse, AdminError> {
    let Some(card) = card_of(&state, &serial).await? else { return Ok(not_found(&req, &session)) };
    if form.confirm != "yes" {
        let mut errors = FieldErrors::default();
        errors.add("confirm", "confirm_required");
        return render_detail(
            &state,
            &session,
            &req,
            &card,
            None,
            "",
            StatusCode::UNPROCESSABLE_ENTITY,
            AdjustValues::default(),
            errors,
        )
        .await;
    }
    let deleted = crate::customers::delete_customer(state.store.as_ref(), &card.serial, state.clock.now()).await?;
    if let Some((before, after)) = deleted {
        if before.version != after.version {
            state.changes.card_changed(&card.serial);
            // Nothing personal goes to the log either: the card and its amounts only.
            audit::record(
                &state,
                &session,
                "customer_deleted",
                Some(card.serial.as_str()),
                json!({
                    "card_number": card.card_number.as_str(),
                    "status_before": before.status.as_str(),
                    "status_after": after.status.as_str(),
                    "balance": after.balance,
                }),
            )
            .await;
        }
    }
    Ok(back_to(card.serial.as_str(), "deleted"))
}

/// `GET /admin/customers/{serial}/export` (owners): everything stored about the customer as
/// one JSON file.
pub async fn export(
    state: web::Data<AppState>,
    session: StaffSession<Owner>,
    req: HttpRequest,
    serial: web::Path<String>,
) -> Result<HttpResponse, AdminError> {
    let Some(card) = card_of(&state, &serial).await? else { return Ok(not_found(&req, &session)) };
    let mut export = crate::customers::export::export(state.store.as_ref(), &card, state.clock.now()).await?;
    export.audit = audit_about(&state, card.serial.as_str()).await?;
    audit::record(
        &state,
        &session,
        "customer_exported",
        Some(card.serial.as_str()),
        json!({ "card_number": card.card_number.as_str() }),
    )
    .await;
    let body = serde_json::to_string_pretty(&export).map_err(|e| AdminError::Internal(e.to_string()))?;
    let mut response = HttpResponse::Ok();
    super::page::secure_headers(&mut response);
    Ok(response
        .content_type("application/json")
        .insert_header((header::CONTENT_DISPOSITION, format!("attachment; filename=\"customer-{}.json\"", card.serial)))
        .body(body))
}

/// The audit entries about a card, oldest first (the actions of these screens name the card's
/// serial as their target).
async fn audit_about(state: &AppState, serial: &str) -> Result<Vec<crate::customers::export::AuditData>, AdminError> {
    let mut found = Vec::new();
    for action in [
        "earn",
        "redeem",
        "refund",
        "adjust",
        "stamp",
        "redeem_reward",
        "block",
        "unblock",
        "card_link_shown",
        "customer_deleted",
        "customer_exported",
    ] {
        let mut filter = crate::domain::AuditFilter { action: Some(action.to_owned()), ..Default::default() };
        loop {
            let page = state.store.audit_entries(&filter, 500).await?;
            let Some(last) = page.last() else { break };
            filter.before = Some((last.at, last.id.clone()));
            let done = page.len() < 500;
            found.extend(page.into_iter().filter(|e| e.target.as_deref() == Some(serial)));
            if done {
                break;
            }
        }
    }
    found.sort_by(|a, b| (a.at, &a.id).cmp(&(b.at, &b.id)));
    Ok(found.into_iter().map(crate::customers::export::AuditData::from).collect())
}
