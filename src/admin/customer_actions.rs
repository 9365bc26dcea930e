//! What managers do to one customer's card from its page (`/admin/customers/{serial}`): adjust
//! the balance with a reason (previewed before it applies), block and unblock, and resend or
//! show the card link. Every action is recorded in the audit log with the values before and
//! after.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::audit;
use super::customers::{AdjustValues, back_to, card_of, not_found, render_detail};
use super::page::FieldErrors;
use super::session::{CsrfForm, Manager, StaffSession};
use super::{AdminError, ledger_failed};
use crate::customers::till::{self, TillOperation, TillOutcome};
use crate::domain::{Card, CardStatus};
use crate::ledger::rules::MAX_POINTS;
use crate::state::AppState;
use crate::store::CardLookup;

#[derive(Debug, Deserialize)]
pub struct AdjustForm {
    #[serde(default)]
    points: String,
    #[serde(default)]
    reason: String,
    #[serde(default)]
    form_id: String,
    /// Set by the confirmation page: apply. Absent: show the resulting balance first.
    #[serde(default)]
    confirm: String,
}

#[derive(Serialize)]
struct AdjustConfirmPage {
    serial: String,
    name: String,
    points: i64,
    points_text: String,
    reason: String,
    before: i64,
    after: i64,
    form_id: String,
}

/// `POST /admin/customers/{serial}/adjust`: first the preview of the resulting balance, then
/// (with `confirm`) the adjustment, under the form's idempotency key.
pub async fn adjust(
    state: web::Data<AppState>,
    session: StaffSession<Manager>,
    req: HttpRequest,
    serial: web::Path<String>,
    form: CsrfForm<AdjustForm>,
) -> Result<HttpResponse, AdminError> {
    let Some(card) = card_of(&state, &serial).await? else { return Ok(not_found(&req, &session)) };
    let mut errors = FieldErrors::default();
    if card.is_deleted() {
        errors.add("points", "card_deleted");
    }
    let points =
        form.points.trim().replace(['+', ' '], "").parse::<i64>().ok().filter(|p| *p != 0 && p.abs() <= MAX_POINTS);
    if points.is_none() {
        errors.add("points", "points_invalid");
    }
    let reason = form.reason.trim().to_owned();
    if reason.is_empty() || reason.chars().count() > 500 || reason.chars().any(char::is_control) {
        errors.add("reason", "reason_required");
    }
    if let Some(p) = points {
        if card.balance + p < 0 {
            errors.add("points", "insufficient_points");
        }
    }
    let values = AdjustValues { points: form.points.clone(), reason: form.reason.clone() };
    let (Some(points), true) = (points, errors.is_empty()) else {
        return render_detail(
            &state,
            &session,
            &req,
            &card,
            None,
            "",
            StatusCode::UNPROCESSABLE_ENTITY,
            values,
            errors,
        )
        .await;
    };
    let Some(key) = till::form_key(&session.staff.id, &form.form_id) else {
        return Ok(super::bad_form(&req, &session.viewer()));
    };
    if form.confirm != "yes" {
        let page = AdjustConfirmPage {
            serial: card.serial.to_string(),
            name: card.display_name(),
            points,
            points_text: format!("{points:+}"),
            reason,
            before: card.balance,
            after: card.balance + points,
            form_id: form.form_id.clone(),
        };
        return Ok(session.page(&req, "customer_adjust.html", page));
    }
    let outcome =
        till::write(&state, &session.staff.id, key, &card, TillOperation::Adjust { points, reason: reason.clone() })
            .await
            .map_err(ledger_failed)?;
    match outcome {
        TillOutcome::Done(done) => {
            if !done.replayed {
                audit::record(
                    &state,
                    &session,
                    "adjust",
                    Some(card.serial.as_str()),
                    json!({
                        "card_number": card.card_number.as_str(),
                        "transaction_id": done.transaction_id,
                        "points": points,
                        "reason": reason,
                        "balance_before": card.balance,
                        "balance_after": done.balance,
                    }),
                )
                .await;
            }
            Ok(back_to(card.serial.as_str(), "adjusted"))
        }
        TillOutcome::Refused { code, .. } => {
            let mut errors = FieldErrors::default();
            let key = match code.as_str() {
                "insufficient_points" | "form_used" | "in_progress" => code.as_str(),
                _ => "points_invalid",
            };
            errors.add("points", key);
            let values = AdjustValues { points: form.points.clone(), reason: form.reason.clone() };
            render_detail(&state, &session, &req, &card, None, "", StatusCode::UNPROCESSABLE_ENTITY, values, errors)
                .await
        }
    }
}

/// Moves a card to `status` (block/unblock), retried against concurrent writers; the card
/// before and after, or `None` when it is deleted.
async fn set_status(state: &AppState, card: Card, status: CardStatus) -> Result<Option<(Card, Card)>, AdminError> {
    let mut card = card;
    loop {
        if card.is_deleted() {
            return Ok(None);
        }
        if card.status == status {
            return Ok(Some((card.clone(), card)));
        }
        let mut next = card.bumped(state.clock.now());
        next.status = status;
        if state
            .store
            .update_card_emitting(
                &next,
                card.version,
                &crate::webhooks::events::status_change(&card, &next, next.updated_at),
            )
            .await?
        {
            state.changes.card_changed(&card.serial);
            return Ok(Some((card, next)));
        }
        match state.store.find_card(CardLookup::Serial(&card.serial)).await? {
            Some(again) => card = again,
            None => return Ok(None),
        }
    }
}

async fn change_status(
    state: &AppState,
    session: &StaffSession<Manager>,
    req: &HttpRequest,
    serial: &str,
    status: CardStatus,
) -> Result<HttpResponse, AdminError> {
    let Some(card) = card_of(state, serial).await? else { return Ok(not_found(req, session)) };
    let Some((before, after)) = set_status(state, card.clone(), status).await? else {
        let mut errors = FieldErrors::default();
        errors.add("status", "card_deleted");
        return render_detail(
            state,
            session,
            req,
            &card,
            None,
            "",
            StatusCode::CONFLICT,
            AdjustValues::default(),
            errors,
        )
        .await;
    };
    let action = if status == CardStatus::Blocked { "block" } else { "unblock" };
    if before.version != after.version {
        audit::record(
            state,
            session,
            action,
            Some(card.serial.as_str()),
            json!({ "card_number": card.card_number.as_str(), "status_before": before.status.as_str(), "status_after": after.status.as_str() }),
        )
        .await;
    }
    Ok(back_to(card.serial.as_str(), if status == CardStatus::Blocked { "blocked" } else { "unblocked" }))
}

/// `POST /admin/customers/{serial}/block`.
pub async fn block(
    state: web::Data<AppState>,
    session: StaffSession<Manager>,
    req: HttpRequest,
    serial: web::Path<String>,
    _form: CsrfForm<super::session::NoFields>,
) -> Result<HttpResponse, AdminError> {
    change_status(&state, &session, &req, &serial, CardStatus::Blocked).await
}

/// `POST /admin/customers/{serial}/unblock`.
pub async fn unblock(
    state: web::Data<AppState>,
    session: StaffSession<Manager>,
    req: HttpRequest,
    serial: web::Path<String>,
    _form: CsrfForm<super::session::NoFields>,
) -> Result<HttpResponse, AdminError> {
    change_status(&state, &session, &req, &serial, CardStatus::Active).await
}

#[derive(Serialize)]
struct LinkPage {
    serial: String,
    name: String,
    url: String,
    qr: String,
    /// The masked address the link was mailed to, when it was.
    mailed_to: Option<String>,
    /// Whether e-mail is on (else the page says why nothing was sent).
    mail_on: bool,
}

/// `POST /admin/customers/{serial}/link`: "resend the card link". The link is mailed when
/// e-mail is on and the card has an address; the link and its QR code are shown to staff either
/// way, to hand over.
pub async fn link(
    state: web::Data<AppState>,
    session: StaffSession<Manager>,
    req: HttpRequest,
    serial: web::Path<String>,
    _form: CsrfForm<super::session::NoFields>,
) -> Result<HttpResponse, AdminError> {
    let Some(card) = card_of(&state, &serial).await?.filter(|c| !c.is_deleted()) else {
        return Ok(not_found(&req, &session));
    };
    let url = state.card_url(&card);
    let qr = crate::card_page::qr_svg(&url)
        .map(|svg| {
            use base64::Engine;
            format!("data:image/svg+xml;base64,{}", base64::engine::general_purpose::STANDARD.encode(svg))
        })
        .unwrap_or_default();
    audit::record(
        &state,
        &session,
        "card_link_shown",
        Some(card.serial.as_str()),
        json!({ "card_number": card.card_number.as_str() }),
    )
    .await;
    let mailed_to = match crate::mail::queue(
        state.store.as_ref(),
        state.mail.as_deref(),
        crate::mail::MailKind::CardLink,
        &card,
        state.clock.now(),
    )
    .await?
    {
        Some(email) => {
            audit::record(&state, &session, audit::actions::CARD_LINK_MAILED, Some(card.serial.as_str()), json!({}))
                .await;
            Some(crate::mail::mask(email.as_str()))
        }
        None => None,
    };
    let page = LinkPage {
        serial: card.serial.to_string(),
        name: card.display_name(),
        url,
        qr,
        mailed_to,
        mail_on: state.mail.is_some(),
    };
    Ok(session.page(&req, "customer_link.html", page))
}
