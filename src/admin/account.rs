//! `/admin/account`: one's own second factor. Enrolment shows a new TOTP secret and its QR code,
//! and takes effect once a code from the app confirms it; ten one-time recovery codes are then
//! shown once. Turning it off needs a current code.

use actix_web::http::{StatusCode, header};
use actix_web::{HttpRequest, HttpResponse, web};
use base64::Engine;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::audit::{self, actions};
use super::session::{AnyStaff, CsrfForm, StaffSession};
use super::{AdminError, totp};
use crate::state::AppState;

/// The issuer name authenticator apps show next to the code.
const ISSUER: &str = "loy";

#[derive(Serialize)]
struct AccountPage {
    email: String,
    role: String,
    enrolled: bool,
    required: bool,
    codes_left: usize,
    /// Enrolment: the secret to type, and its QR code as an image address.
    secret: String,
    qr: String,
    error: Option<&'static str>,
}

fn qr_image(text: &str) -> String {
    crate::card_page::qr_svg(text)
        .map(|svg| format!("data:image/svg+xml;base64,{}", base64::engine::general_purpose::STANDARD.encode(svg)))
        .unwrap_or_default()
}

fn account_page(
    state: &AppState,
    session: &StaffSession<AnyStaff>,
    secret: Option<String>,
    error: Option<&'static str>,
) -> AccountPage {
    let staff = &session.staff;
    let enrolled = staff.totp_enabled();
    let secret = if enrolled { String::new() } else { secret.unwrap_or_else(totp::new_secret) };
    let qr = if enrolled { String::new() } else { qr_image(&totp::otpauth_url(&secret, &staff.email, ISSUER)) };
    AccountPage {
        email: staff.email.clone(),
        role: staff.role.to_string(),
        enrolled,
        required: state.settings.admin.require_2fa.applies_to(staff.role),
        codes_left: staff.recovery_codes.len(),
        secret,
        qr,
        error,
    }
}

/// `GET /admin/account`.
pub async fn show(state: web::Data<AppState>, session: StaffSession<AnyStaff>, req: HttpRequest) -> HttpResponse {
    session.page(&req, "account.html", account_page(&state, &session, None, None))
}

#[derive(Deserialize)]
pub struct EnableForm {
    #[serde(default)]
    secret: String,
    #[serde(default)]
    code: String,
}

#[derive(Serialize)]
struct CodesPage {
    codes: Vec<String>,
}

fn unix_now(state: &AppState) -> u64 {
    u64::try_from(state.clock.now().timestamp()).unwrap_or(0)
}

/// `POST /admin/account/totp`: confirms enrolment with a code from the app.
pub async fn enable_totp(
    state: web::Data<AppState>,
    session: StaffSession<AnyStaff>,
    req: HttpRequest,
    form: CsrfForm<EnableForm>,
) -> Result<HttpResponse, AdminError> {
    if session.staff.totp_enabled() {
        return Ok(HttpResponse::SeeOther().insert_header((header::LOCATION, "/admin/account")).finish());
    }
    let secret = form.secret.trim().to_owned();
    let valid_secret = secret.len() >= 26 && secret.chars().all(|c| c.is_ascii_uppercase() || ('2'..='7').contains(&c));
    if !valid_secret || !totp::verify(&secret, &form.code, unix_now(&state)) {
        let ctx = account_page(&state, &session, valid_secret.then_some(secret), Some("code_wrong"));
        return Ok(session.page_with(&req, StatusCode::UNPROCESSABLE_ENTITY, "account.html", ctx));
    }
    let (codes, hashes) = totp::recovery_codes();
    // Fresh, so an owner's change made since this request began is not undone.
    let Some(mut staff) = state.store.staff_by_id(&session.staff.id).await? else {
        return Ok(HttpResponse::SeeOther().insert_header((header::LOCATION, "/admin/login")).finish());
    };
    staff.totp_secret = Some(secret);
    staff.recovery_codes = hashes;
    state.store.update_staff(&staff).await?;
    audit::record(&state, &session, actions::TOTP_ENABLED, Some(&staff.id), json!({ "recovery_codes": codes.len() }))
        .await;
    Ok(session.page(&req, "account_codes.html", CodesPage { codes }))
}

#[derive(Deserialize)]
pub struct DisableForm {
    #[serde(default)]
    code: String,
}

/// `POST /admin/account/totp/disable`: needs a current code.
pub async fn disable_totp(
    state: web::Data<AppState>,
    session: StaffSession<AnyStaff>,
    req: HttpRequest,
    form: CsrfForm<DisableForm>,
) -> Result<HttpResponse, AdminError> {
    let Some(secret) = session.staff.totp_secret.clone() else {
        return Ok(HttpResponse::SeeOther().insert_header((header::LOCATION, "/admin/account")).finish());
    };
    if !totp::verify(&secret, &form.code, unix_now(&state)) {
        let ctx = account_page(&state, &session, None, Some("code_wrong"));
        return Ok(session.page_with(&req, StatusCode::UNPROCESSABLE_ENTITY, "account.html", ctx));
    }
    let Some(mut staff) = state.store.staff_by_id(&session.staff.id).await? else {
        return Ok(HttpResponse::SeeOther().insert_header((header::LOCATION, "/admin/login")).finish());
    };
    staff.totp_secret = None;
    staff.recovery_codes.clear();
    state.store.update_staff(&staff).await?;
    audit::record(&state, &session, actions::TOTP_DISABLED, Some(&staff.id), serde_json::Value::Null).await;
    Ok(HttpResponse::SeeOther().insert_header((header::LOCATION, "/admin/account")).finish())
}
