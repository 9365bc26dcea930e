//! `/admin/login` (e-mail and password, then the second factor when enrolled) and
//! `/admin/logout`.
//!
//! Failed logins are counted in the store per account and per client address over a window, so
//! every node sees them: after 5 failures for an account or 20 from an address within 15
//! minutes, login answers 429 with `Retry-After` until the oldest failure leaves the window.

use actix_web::http::{StatusCode, header};
use actix_web::{HttpRequest, HttpResponse, web};
use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::audit::{self, Actor, actions};
use super::page::{self, Notice};
use super::session::{self, AnyStaff, CsrfForm, NoFields, StaffSession};
use super::{AdminError, client_address, password, totp};
use crate::domain::StaffAccount;
use crate::domain::staff::normalize_email;
use crate::state::AppState;
use crate::store::StoreError;

/// Failures are counted over this window.
pub const WINDOW_MINUTES: i64 = 15;
/// Failures for one account within the window before login is refused.
pub const ACCOUNT_LIMIT: usize = 5;
/// Failures from one client address within the window before login is refused.
pub const ADDRESS_LIMIT: usize = 20;

fn account_key(email: &str) -> String {
    format!("account:{email}")
}

fn address_key(address: &str) -> String {
    format!("address:{address}")
}

/// Seconds until login may be tried again, when one of the limits is reached.
async fn throttled(
    state: &AppState,
    email: &str,
    address: &str,
    now: DateTime<Utc>,
) -> Result<Option<i64>, StoreError> {
    let since = now - Duration::minutes(WINDOW_MINUTES);
    let mut wait = None;
    for (key, limit) in [(account_key(email), ACCOUNT_LIMIT), (address_key(address), ADDRESS_LIMIT)] {
        let failures = state.store.login_failures(&key, since).await?;
        if failures.len() >= limit {
            // Allowed again when enough of the failures have left the window.
            let freeing = failures[failures.len() - limit];
            let seconds = (freeing + Duration::minutes(WINDOW_MINUTES) - now).num_seconds().max(1);
            wait = Some(wait.map_or(seconds, |w: i64| w.max(seconds)));
        }
    }
    Ok(wait)
}

async fn note_failure(
    state: &AppState,
    email: &str,
    address: &str,
    staff: Option<&StaffAccount>,
    reason: &str,
) -> Result<(), StoreError> {
    let now = state.clock.now();
    let forget_before = now - Duration::minutes(WINDOW_MINUTES);
    state.store.record_login_failure(&account_key(email), now, forget_before).await?;
    state.store.record_login_failure(&address_key(address), now, forget_before).await?;
    tracing::warn!(staff_id = staff.map(|s| s.id.as_str()), address, reason, "a console login failed");
    let actor = Actor { staff_id: staff.map(|s| s.id.clone()), email: email.to_owned(), address: address.to_owned() };
    audit::record(state, &actor, actions::LOGIN_FAILED, None, json!({ "reason": reason })).await;
    Ok(())
}

fn too_many(req: &HttpRequest, seconds: i64) -> HttpResponse {
    let mut response = page::notice(
        req,
        None,
        StatusCode::TOO_MANY_REQUESTS,
        Notice { title: "throttled_title", text: "throttled_text", link: Some("/admin/login") },
    );
    if let Ok(value) = header::HeaderValue::from_str(&seconds.to_string()) {
        response.headers_mut().insert(header::RETRY_AFTER, value);
    }
    response
}

/// Only console addresses are followed after login.
fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(n)
            if n.starts_with("/admin")
                && !n.starts_with("//")
                && !n.contains('\\')
                && !n.starts_with("/admin/login") =>
        {
            n.to_owned()
        }
        _ => "/admin".to_owned(),
    }
}

#[derive(Debug, Default, Deserialize)]
pub struct NextQuery {
    next: Option<String>,
}

#[derive(Serialize, Default)]
struct LoginPage {
    email: String,
    next: String,
    error: Option<&'static str>,
    no_staff_yet: bool,
}

/// `GET /admin/login`.
pub async fn show(
    state: web::Data<AppState>,
    req: HttpRequest,
    query: web::Query<NextQuery>,
) -> Result<HttpResponse, AdminError> {
    let no_staff_yet = state.store.staff_list().await?.is_empty();
    let ctx = LoginPage { next: safe_next(query.next.as_deref()), no_staff_yet, ..Default::default() };
    Ok(page::render(&req, None, StatusCode::OK, "login.html", ctx))
}

#[derive(Deserialize)]
pub struct LoginForm {
    #[serde(default)]
    email: String,
    #[serde(default)]
    password: String,
    next: Option<String>,
}

/// `POST /admin/login`: checks the password (never logged), then asks for the second factor or
/// opens the session.
pub async fn submit(
    state: web::Data<AppState>,
    req: HttpRequest,
    form: web::Form<LoginForm>,
) -> Result<HttpResponse, AdminError> {
    let form = form.into_inner();
    let address = client_address(&req);
    let email = normalize_email(&form.email);
    let next = safe_next(form.next.as_deref());
    if let Some(wait) = throttled(&state, &email, &address, state.clock.now()).await? {
        tracing::warn!(address, "console login refused: too many failures");
        return Ok(too_many(&req, wait));
    }
    let staff = state.store.staff_by_email(&email).await?;
    let hash = staff.as_ref().map_or_else(|| password::decoy_hash().to_owned(), |s| s.password_hash.clone());
    let password_ok = password::verify(form.password, hash).await;
    let failure = match &staff {
        None => Some("unknown_account"),
        Some(_) if !password_ok => Some("wrong_password"),
        Some(s) if s.disabled => Some("disabled"),
        Some(_) => None,
    };
    if let Some(reason) = failure {
        note_failure(&state, &email, &address, staff.as_ref(), reason).await?;
        let ctx = LoginPage { email, next, error: Some("login_failed"), no_staff_yet: false };
        return Ok(page::render(&req, None, StatusCode::UNAUTHORIZED, "login.html", ctx));
    }
    let staff = staff.expect("a failure is returned above when there is no account");
    if staff.totp_enabled() {
        let (_, cookie) = session::start(&state, &staff, true).await?;
        let query: String = url::form_urlencoded::Serializer::new(String::new()).append_pair("next", &next).finish();
        return Ok(HttpResponse::SeeOther()
            .cookie(cookie)
            .insert_header((header::LOCATION, format!("/admin/login/code?{query}")))
            .finish());
    }
    finish(&state, &req, staff, &address, &next, None).await
}

/// Opens a full session for `staff` (ending the pending one, if any) and goes to `next`.
async fn finish(
    state: &AppState,
    req: &HttpRequest,
    mut staff: StaffAccount,
    address: &str,
    next: &str,
    pending: Option<&str>,
) -> Result<HttpResponse, AdminError> {
    if let Some(pending) = pending {
        state.store.delete_staff_session(pending).await?;
    }
    state.store.clear_login_failures(&account_key(&staff.email)).await?;
    let (_, cookie) = session::start(state, &staff, false).await?;
    staff.last_login_at = Some(state.clock.now());
    state.store.update_staff(&staff).await?;
    let actor = Actor { staff_id: Some(staff.id.clone()), email: staff.email.clone(), address: address.to_owned() };
    audit::record(state, &actor, actions::LOGIN, None, json!({ "second_factor": staff.totp_enabled() })).await;
    let _ = req;
    Ok(HttpResponse::SeeOther().cookie(cookie).insert_header((header::LOCATION, next.to_owned())).finish())
}

#[derive(Serialize)]
struct CodePage {
    csrf: String,
    next: String,
    error: Option<&'static str>,
}

/// The session waiting for its second factor, with its account.
async fn pending(state: &AppState, req: &HttpRequest) -> Result<Option<(String, String, StaffAccount)>, StoreError> {
    let Some(session) = session::current_session(state, req, state.clock.now()).await? else { return Ok(None) };
    if !session.mfa_pending {
        return Ok(None);
    }
    let staff = state.store.staff_by_id(&session.staff_id).await?.filter(|s| !s.disabled && s.totp_enabled());
    Ok(staff.map(|s| (session.id_hash, session.csrf, s)))
}

/// `GET /admin/login/code`: the second step of a login with TOTP.
pub async fn show_code(
    state: web::Data<AppState>,
    req: HttpRequest,
    query: web::Query<NextQuery>,
) -> Result<HttpResponse, AdminError> {
    let Some((_, csrf, _)) = pending(&state, &req).await? else {
        return Ok(HttpResponse::SeeOther().insert_header((header::LOCATION, "/admin/login")).finish());
    };
    let ctx = CodePage { csrf, next: safe_next(query.next.as_deref()), error: None };
    Ok(page::render(&req, None, StatusCode::OK, "login_code.html", ctx))
}

#[derive(Deserialize)]
pub struct CodeForm {
    #[serde(default)]
    code: String,
    next: Option<String>,
}

/// `POST /admin/login/code`: a TOTP code, or one of the recovery codes (used up).
pub async fn submit_code(
    state: web::Data<AppState>,
    req: HttpRequest,
    form: CsrfForm<CodeForm>,
) -> Result<HttpResponse, AdminError> {
    let CsrfForm(form) = form;
    let address = client_address(&req);
    let next = safe_next(form.next.as_deref());
    let Some((pending_hash, csrf, mut staff)) = pending(&state, &req).await? else {
        return Ok(HttpResponse::SeeOther().insert_header((header::LOCATION, "/admin/login")).finish());
    };
    if let Some(wait) = throttled(&state, &staff.email, &address, state.clock.now()).await? {
        return Ok(too_many(&req, wait));
    }
    let secret = staff.totp_secret.clone().unwrap_or_default();
    let unix_time = u64::try_from(state.clock.now().timestamp()).unwrap_or(0);
    if totp::verify(&secret, &form.code, unix_time) {
        return finish(&state, &req, staff, &address, &next, Some(&pending_hash)).await;
    }
    let typed = totp::recovery_hash(&form.code);
    if let Some(i) = staff.recovery_codes.iter().position(|h| *h == typed) {
        staff.recovery_codes.remove(i);
        state.store.update_staff(&staff).await?;
        let actor = Actor { staff_id: Some(staff.id.clone()), email: staff.email.clone(), address: address.clone() };
        let left = staff.recovery_codes.len();
        audit::record(&state, &actor, actions::RECOVERY_CODE_USED, Some(&staff.id), json!({ "codes_left": left }))
            .await;
        return finish(&state, &req, staff, &address, &next, Some(&pending_hash)).await;
    }
    let email = staff.email.clone();
    note_failure(&state, &email, &address, Some(&staff), "wrong_code").await?;
    let ctx = CodePage { csrf, next, error: Some("code_wrong") };
    Ok(page::render(&req, None, StatusCode::UNAUTHORIZED, "login_code.html", ctx))
}

/// `POST /admin/logout`: ends this session.
pub async fn logout(
    state: web::Data<AppState>,
    session: StaffSession<AnyStaff>,
    _form: CsrfForm<NoFields>,
) -> Result<HttpResponse, AdminError> {
    state.store.delete_staff_session(session.id_hash()).await?;
    audit::record(&state, &session, actions::LOGOUT, None, serde_json::Value::Null).await;
    Ok(HttpResponse::SeeOther()
        .cookie(session::removal_cookie(&state))
        .insert_header((header::LOCATION, "/admin/login"))
        .finish())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_console_addresses_are_followed_after_login() {
        assert_eq!(safe_next(Some("/admin/staff")), "/admin/staff");
        assert_eq!(safe_next(Some("//evil.example/admin")), "/admin");
        assert_eq!(safe_next(Some("https://evil.example")), "/admin");
        assert_eq!(safe_next(Some("/admin/login")), "/admin");
        assert_eq!(safe_next(None), "/admin");
    }
}
