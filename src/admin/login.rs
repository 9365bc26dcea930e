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
/// How long the second step of a login waits for its code.
pub const CODE_STEP_MINUTES: i64 = 10;
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

/// The cookie that carries the login form's own CSRF token: there is no session yet to bind one
/// to, so the form's hidden field must repeat this SameSite=Strict cookie (a form posted from
/// another site arrives without it).
pub const LOGIN_COOKIE: &str = "loy_admin_login";

fn login_cookie(state: &AppState, token: &str) -> actix_web::cookie::Cookie<'static> {
    let mut cookie = actix_web::cookie::Cookie::new(LOGIN_COOKIE, token.to_owned());
    cookie.set_http_only(true);
    cookie.set_same_site(actix_web::cookie::SameSite::Strict);
    cookie.set_path("/admin");
    cookie.set_secure(state.settings.https());
    cookie.set_max_age(actix_web::cookie::time::Duration::hours(12));
    cookie
}

/// The login form's token: the one its cookie already holds, or a new one.
fn login_token(req: &HttpRequest) -> String {
    req.cookie(LOGIN_COOKIE)
        .map(|c| c.value().to_owned())
        .filter(|v| v.len() == 64 && v.bytes().all(|b| b.is_ascii_hexdigit()))
        .unwrap_or_else(crate::domain::staff::random_secret)
}

fn login_page(state: &AppState, req: &HttpRequest, status: StatusCode, mut ctx: LoginPage) -> HttpResponse {
    let token = login_token(req);
    ctx.form_csrf = token.clone();
    let mut response = page::render(req, None, status, "login.html", ctx);
    let _ = response.add_cookie(&login_cookie(state, &token));
    response
}

#[derive(Serialize, Default)]
struct LoginPage {
    form_csrf: String,
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
    Ok(login_page(&state, &req, StatusCode::OK, ctx))
}

#[derive(Deserialize)]
pub struct LoginForm {
    #[serde(default)]
    email: String,
    #[serde(default)]
    password: String,
    next: Option<String>,
    #[serde(default)]
    csrf: String,
}

/// `POST /admin/login`: checks the password (never logged), then asks for the second factor or
/// opens the session.
pub async fn submit(
    state: web::Data<AppState>,
    req: HttpRequest,
    form: web::Form<LoginForm>,
) -> Result<HttpResponse, AdminError> {
    let form = form.into_inner();
    let cookie = req.cookie(LOGIN_COOKIE).map(|c| c.value().to_owned()).unwrap_or_default();
    if cookie.is_empty() || !bool::from(subtle::ConstantTimeEq::ct_eq(cookie.as_bytes(), form.csrf.as_bytes())) {
        tracing::warn!("a console login came without the login form's token");
        let notice = Notice { title: "forbidden_title", text: "csrf_text", link: Some("/admin/login") };
        return Ok(page::notice(&req, None, StatusCode::FORBIDDEN, notice));
    }
    let address = client_address(&req);
    let email = normalize_email(&form.email);
    let next = safe_next(form.next.as_deref());
    if let Some(wait) = throttled(&state, &email, &address, state.clock.now()).await? {
        tracing::warn!(address, "console login refused: too many failures");
        return Ok(too_many(&req, wait));
    }
    let staff = state.store.staff_by_email(&email).await?;
    let password_ok = password::verify(form.password, staff.as_ref().map(|s| s.password_hash.clone())).await;
    let failure = match &staff {
        None => Some("unknown_account"),
        Some(_) if !password_ok => Some("wrong_password"),
        Some(s) if s.disabled => Some("disabled"),
        Some(_) => None,
    };
    if let Some(reason) = failure {
        note_failure(&state, &email, &address, staff.as_ref(), reason).await?;
        let ctx = LoginPage { email, next, error: Some("login_failed"), ..Default::default() };
        return Ok(login_page(&state, &req, StatusCode::UNAUTHORIZED, ctx));
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
    finish(&state, staff, &address, &next, None).await
}

/// Opens a full session for `staff` (ending the pending one, if any) and goes to `next`.
async fn finish(
    state: &AppState,
    staff: StaffAccount,
    address: &str,
    next: &str,
    pending: Option<&str>,
) -> Result<HttpResponse, AdminError> {
    if let Some(pending) = pending {
        state.store.delete_staff_session(pending).await?;
    }
    state.store.clear_login_failures(&account_key(&staff.email)).await?;
    let (_, cookie) = session::start(state, &staff, false).await?;
    state.store.record_staff_login(&staff.id, state.clock.now()).await?;
    let actor = Actor { staff_id: Some(staff.id.clone()), email: staff.email.clone(), address: address.to_owned() };
    audit::record(state, &actor, actions::LOGIN, None, json!({ "second_factor": staff.totp_enabled() })).await;
    Ok(HttpResponse::SeeOther().cookie(cookie).insert_header((header::LOCATION, next.to_owned())).finish())
}

#[derive(Serialize)]
struct CodePage {
    /// The pending session's token (the layout's `csrf` is for signed-in pages).
    form_csrf: String,
    next: String,
    error: Option<&'static str>,
}

/// The session waiting for its second factor, with its account.
async fn pending(state: &AppState, req: &HttpRequest) -> Result<Option<(String, String, StaffAccount)>, StoreError> {
    let now = state.clock.now();
    let Some(session) = session::current_session(state, req, now).await? else { return Ok(None) };
    if !session.mfa_pending {
        return Ok(None);
    }
    if now - session.created_at > Duration::minutes(CODE_STEP_MINUTES) {
        state.store.delete_staff_session(&session.id_hash).await?;
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
    let ctx = CodePage { form_csrf: csrf, next: safe_next(query.next.as_deref()), error: None };
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
    let Some((pending_hash, csrf, staff)) = pending(&state, &req).await? else {
        return Ok(HttpResponse::SeeOther().insert_header((header::LOCATION, "/admin/login")).finish());
    };
    if let Some(wait) = throttled(&state, &staff.email, &address, state.clock.now()).await? {
        return Ok(too_many(&req, wait));
    }
    let secret = staff.totp_secret.clone().unwrap_or_default();
    let unix_time = u64::try_from(state.clock.now().timestamp()).unwrap_or(0);
    if totp::verify(&secret, &form.code, unix_time) {
        return finish(&state, staff, &address, &next, Some(&pending_hash)).await;
    }
    let typed = totp::recovery_hash(&form.code);
    if staff.recovery_codes.contains(&typed) && state.store.use_recovery_code(&staff.id, &typed).await? {
        let actor = Actor { staff_id: Some(staff.id.clone()), email: staff.email.clone(), address: address.clone() };
        let left = staff.recovery_codes.len() - 1;
        audit::record(&state, &actor, actions::RECOVERY_CODE_USED, Some(&staff.id), json!({ "codes_left": left }))
            .await;
        return finish(&state, staff, &address, &next, Some(&pending_hash)).await;
    }
    let email = staff.email.clone();
    note_failure(&state, &email, &address, Some(&staff), "wrong_code").await?;
    let ctx = CodePage { form_csrf: csrf, next, error: Some("code_wrong") };
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
