//! Console sessions: the `loy_admin` cookie, the role-typed [`StaffSession`] extractor and the
//! [`CsrfForm`] extractor every state-changing console route takes.
//!
//! The cookie holds 256 random bits; the store keeps only their SHA-256, with the account, the
//! CSRF token and the times that decide idle and absolute expiry. Every request re-reads the
//! session and the account, so a disabled account is locked out at once on every node.

use std::marker::PhantomData;

use actix_web::cookie::{Cookie, SameSite};
use actix_web::dev::Payload;
use actix_web::error::InternalError;
use actix_web::http::{Method, StatusCode, header};
use actix_web::{FromRequest, HttpRequest, HttpResponse, web};
use chrono::{DateTime, Utc};
use futures_util::future::LocalBoxFuture;
use serde::de::DeserializeOwned;
use subtle::ConstantTimeEq;

use super::page::{self, Notice, Viewer};
use crate::domain::staff::{random_secret, sha256_hex};
use crate::domain::{Role, StaffAccount, StaffSessionRecord};
use crate::state::AppState;
use crate::store::StoreError;

/// The session cookie's name.
pub const COOKIE: &str = "loy_admin";

/// The CSRF header htmx requests carry (`admin/static/admin.js` sets it from the page's meta tag).
pub const CSRF_HEADER: &str = "X-CSRF-Token";

/// A session's `last_seen_at` is written at most this often, to spare the store.
const TOUCH_EVERY_SECS: i64 = 60;

/// The least role a handler needs, as a type: `StaffSession<Owner>` cannot be extracted for a
/// manager.
pub trait RoleRequirement {
    const LEAST: Role;
}

/// Any signed-in staff member (the cashier's rights).
pub struct Cashier;
/// Any signed-in staff member.
pub type AnyStaff = Cashier;
/// Managers and owners.
pub struct Manager;
/// Owners only.
pub struct Owner;

impl RoleRequirement for Cashier {
    const LEAST: Role = Role::Cashier;
}
impl RoleRequirement for Manager {
    const LEAST: Role = Role::Manager;
}
impl RoleRequirement for Owner {
    const LEAST: Role = Role::Owner;
}

/// A signed-in staff member whose role is at least `R`'s. Taking one makes a handler
/// unreachable without a valid session: unauthenticated GETs are sent to the login page,
/// other requests get a 403, and a role below `R` gets a 403 page.
pub struct StaffSession<R: RoleRequirement = AnyStaff> {
    pub staff: StaffAccount,
    /// The session's CSRF token.
    pub csrf: String,
    /// The client address of this request (see [`super::client_address`]).
    pub address: String,
    id_hash: String,
    _role: PhantomData<R>,
}

impl<R: RoleRequirement> StaffSession<R> {
    /// What the layout needs: e-mail, role, CSRF token.
    pub fn viewer(&self) -> Viewer {
        Viewer { email: self.staff.email.clone(), role: self.staff.role, csrf: self.csrf.clone() }
    }

    /// Renders a console page for this staff member with status 200.
    pub fn page(&self, req: &HttpRequest, template: &str, ctx: impl serde::Serialize) -> HttpResponse {
        page::render(req, Some(&self.viewer()), StatusCode::OK, template, ctx)
    }

    /// Renders a console page with another status (a form with errors: 422).
    pub fn page_with(
        &self,
        req: &HttpRequest,
        status: StatusCode,
        template: &str,
        ctx: impl serde::Serialize,
    ) -> HttpResponse {
        page::render(req, Some(&self.viewer()), status, template, ctx)
    }

    /// The hash that identifies the session in the store.
    pub fn id_hash(&self) -> &str {
        &self.id_hash
    }
}

fn deny(response: HttpResponse) -> actix_web::Error {
    InternalError::from_response("staff session", response).into()
}

pub(super) fn forbidden(req: &HttpRequest, viewer: Option<&Viewer>, text: &str) -> actix_web::Error {
    deny(page::notice(
        req,
        viewer,
        StatusCode::FORBIDDEN,
        Notice { title: "forbidden_title", text, link: Some("/admin") },
    ))
}

/// Where an unauthenticated request goes: GETs to the login page (and back after it), anything
/// else is refused without effect.
fn not_signed_in(req: &HttpRequest) -> actix_web::Error {
    if req.method() == Method::GET || req.method() == Method::HEAD {
        let target = match req.uri().path_and_query() {
            Some(pq) => pq.as_str().to_owned(),
            None => req.path().to_owned(),
        };
        let next: String = url::form_urlencoded::byte_serialize(target.as_bytes()).collect();
        deny(HttpResponse::SeeOther().insert_header((header::LOCATION, format!("/admin/login?next={next}"))).finish())
    } else {
        forbidden(req, None, "session_required_text")
    }
}

fn store_failed(e: &StoreError) -> actix_web::Error {
    tracing::error!(error = %crate::telemetry::error_chain(e), "reading a console session failed");
    deny(page::error_response(StatusCode::INTERNAL_SERVER_ERROR))
}

/// The session the request's cookie names, if it is still valid at `now`: idle and absolute
/// expiry are checked, and an expired session is removed.
pub async fn current_session(
    state: &AppState,
    req: &HttpRequest,
    now: DateTime<Utc>,
) -> Result<Option<StaffSessionRecord>, StoreError> {
    let Some(cookie) = req.cookie(COOKIE) else { return Ok(None) };
    let id_hash = sha256_hex(cookie.value());
    let Some(session) = state.store.staff_session(&id_hash).await? else { return Ok(None) };
    let admin = &state.settings.admin;
    let idle = chrono::Duration::from_std(admin.session_idle).unwrap_or(chrono::Duration::MAX);
    let max = chrono::Duration::from_std(admin.session_max).unwrap_or(chrono::Duration::MAX);
    if now - session.last_seen_at > idle || now - session.created_at > max {
        state.store.delete_staff_session(&id_hash).await?;
        return Ok(None);
    }
    Ok(Some(session))
}

impl<R: RoleRequirement + 'static> FromRequest for StaffSession<R> {
    type Error = actix_web::Error;
    type Future = LocalBoxFuture<'static, Result<Self, actix_web::Error>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let req = req.clone();
        Box::pin(async move {
            let Some(state) = req.app_data::<web::Data<AppState>>().cloned() else {
                return Err(deny(page::error_response(StatusCode::INTERNAL_SERVER_ERROR)));
            };
            let now = state.clock.now();
            let session = current_session(&state, &req, now).await.map_err(|e| store_failed(&e))?;
            let Some(session) = session.filter(|s| !s.mfa_pending) else {
                return Err(not_signed_in(&req));
            };
            let staff = state.store.staff_by_id(&session.staff_id).await.map_err(|e| store_failed(&e))?;
            let Some(staff) = staff.filter(|s| !s.disabled) else {
                // A disabled (or removed) account's sessions end at once.
                state.store.delete_staff_sessions_of(&session.staff_id).await.map_err(|e| store_failed(&e))?;
                return Err(not_signed_in(&req));
            };
            if now - session.last_seen_at > chrono::Duration::seconds(TOUCH_EVERY_SECS) {
                state.store.touch_staff_session(&session.id_hash, now).await.map_err(|e| store_failed(&e))?;
            }
            let found = StaffSession {
                address: super::client_address(&req),
                csrf: session.csrf.clone(),
                id_hash: session.id_hash.clone(),
                staff,
                _role: PhantomData,
            };
            let enrolment_owed = state.settings.admin.require_2fa.applies_to(found.staff.role)
                && !found.staff.totp_enabled()
                && !req.path().starts_with("/admin/account")
                && req.path() != "/admin/logout";
            if enrolment_owed {
                return Err(if req.method() == Method::GET {
                    deny(HttpResponse::SeeOther().insert_header((header::LOCATION, "/admin/account")).finish())
                } else {
                    forbidden(&req, Some(&found.viewer()), "enrolment_required_text")
                });
            }
            if found.staff.role < R::LEAST {
                return Err(forbidden(&req, Some(&found.viewer()), "forbidden_text"));
            }
            Ok(found)
        })
    }
}

/// A new session for `staff`: stored (hashed), and the cookie that carries it.
pub async fn start(
    state: &AppState,
    staff: &StaffAccount,
    mfa_pending: bool,
) -> Result<(StaffSessionRecord, Cookie<'static>), StoreError> {
    let id = random_secret();
    let now = state.clock.now();
    let record = StaffSessionRecord {
        id_hash: sha256_hex(&id),
        staff_id: staff.id.clone(),
        csrf: random_secret(),
        mfa_pending,
        created_at: now,
        last_seen_at: now,
    };
    state.store.insert_staff_session(&record).await?;
    // Expired sessions are removed when presented; those never presented again go here, so an
    // account's sessions do not pile up.
    let admin = &state.settings.admin;
    let idle = chrono::Duration::from_std(admin.session_idle).unwrap_or(chrono::Duration::MAX);
    let max = chrono::Duration::from_std(admin.session_max).unwrap_or(chrono::Duration::MAX);
    state.store.delete_stale_staff_sessions(&staff.id, now - idle, now - max).await?;
    Ok((record, session_cookie(state, id)))
}

/// The session cookie: HttpOnly, SameSite=Strict, Path=/admin, Secure behind an https
/// `LOY_PUBLIC_URL`; it lives no longer than the absolute session lifetime.
pub fn session_cookie(state: &AppState, value: String) -> Cookie<'static> {
    let mut cookie = Cookie::new(COOKIE, value);
    cookie.set_http_only(true);
    cookie.set_same_site(SameSite::Strict);
    cookie.set_path("/admin");
    cookie.set_secure(state.settings.https());
    let max = i64::try_from(state.settings.admin.session_max.as_secs()).unwrap_or(i64::MAX);
    cookie.set_max_age(actix_web::cookie::time::Duration::seconds(max));
    cookie
}

/// A cookie that removes the session cookie from the browser.
pub fn removal_cookie(state: &AppState) -> Cookie<'static> {
    let mut cookie = session_cookie(state, String::new());
    cookie.make_removal();
    cookie
}

impl<R: RoleRequirement> StaffSession<R> {
    /// Whether `presented` is this session's CSRF token (for forms [`CsrfForm`] cannot read,
    /// such as file uploads).
    pub fn csrf_matches(&self, presented: &str) -> bool {
        bool::from(self.csrf.as_bytes().ct_eq(presented.as_bytes()))
    }
}

/// A form body of type `T` whose CSRF token (the `csrf` field, or the `X-CSRF-Token` header for
/// htmx) matches the request's session. A missing or wrong token is a 403 before the handler
/// runs, so nothing changes. Take it (after the [`StaffSession`]) in every handler that
/// changes state; `CsrfForm<NoFields>` for buttons without fields.
pub struct CsrfForm<T>(pub T);

impl<T> std::ops::Deref for CsrfForm<T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.0
    }
}

/// A form without fields besides its CSRF token (a "revoke" or "log out" button).
#[derive(Debug, serde::Deserialize)]
pub struct NoFields {}

#[derive(serde::Deserialize)]
struct CsrfField {
    csrf: Option<String>,
}

impl<T: DeserializeOwned + 'static> FromRequest for CsrfForm<T> {
    type Error = actix_web::Error;
    type Future = LocalBoxFuture<'static, Result<Self, actix_web::Error>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let body = web::Bytes::from_request(req, payload);
        let req = req.clone();
        Box::pin(async move {
            let Some(state) = req.app_data::<web::Data<AppState>>().cloned() else {
                return Err(deny(page::error_response(StatusCode::INTERNAL_SERVER_ERROR)));
            };
            let body = body.await?;
            let presented = match req.headers().get(CSRF_HEADER).and_then(|v| v.to_str().ok()) {
                Some(header) => Some(header.to_owned()),
                None => serde_urlencoded::from_bytes::<CsrfField>(&body).ok().and_then(|f| f.csrf),
            };
            let session = current_session(&state, &req, state.clock.now()).await.map_err(|e| store_failed(&e))?;
            let matches = match (&session, &presented) {
                (Some(session), Some(presented)) => bool::from(session.csrf.as_bytes().ct_eq(presented.as_bytes())),
                _ => false,
            };
            if !matches {
                tracing::warn!(path = req.path(), "a console form came without its session's CSRF token");
                return Err(forbidden(&req, None, "csrf_text"));
            }
            match serde_urlencoded::from_bytes::<T>(&body) {
                Ok(value) => Ok(CsrfForm(value)),
                Err(e) => {
                    tracing::info!(error = %e, path = req.path(), "a console form could not be read");
                    Err(deny(page::notice(
                        &req,
                        None,
                        StatusCode::BAD_REQUEST,
                        Notice { title: "bad_form_title", text: "bad_form_text", link: Some("/admin") },
                    )))
                }
            }
        })
    }
}
