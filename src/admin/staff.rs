//! `/admin/staff` (owners): add staff accounts, disable and enable them, change roles and reset
//! passwords. A new or reset password is shown once. The last active owner can be neither
//! disabled nor demoted, so the business can never lock itself out.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::audit::{self, actions};
use super::page::FieldErrors;
use super::session::{CsrfForm, NoFields, Owner, StaffSession};
use super::{AdminError, password};
use crate::domain::{Email, Role, StaffAccount};
use crate::state::AppState;
use crate::store::{StoreError, UniqueKey};

#[derive(Serialize)]
struct Row {
    id: String,
    email: String,
    role: Role,
    disabled: bool,
    totp: bool,
    created_at: String,
    last_login_at: String,
    is_me: bool,
}

#[derive(Serialize, Default)]
struct AddValues {
    email: String,
    role: String,
}

#[derive(Serialize)]
struct StaffPage {
    rows: Vec<Row>,
    roles: [Role; 3],
    values: AddValues,
    errors: FieldErrors,
    /// A refusal to show above the table (catalog key of `[errors]`).
    problem: Option<&'static str>,
}

async fn render(
    state: &AppState,
    session: &StaffSession<Owner>,
    req: &HttpRequest,
    status: StatusCode,
    values: AddValues,
    errors: FieldErrors,
    problem: Option<&'static str>,
) -> Result<HttpResponse, AdminError> {
    let rows = state
        .store
        .staff_list()
        .await?
        .into_iter()
        .map(|s| Row {
            is_me: s.id == session.staff.id,
            totp: s.totp_enabled(),
            created_at: s.created_at.format("%Y-%m-%d").to_string(),
            last_login_at: s.last_login_at.map(|t| t.format("%Y-%m-%d %H:%M").to_string()).unwrap_or_default(),
            id: s.id,
            email: s.email,
            role: s.role,
            disabled: s.disabled,
        })
        .collect();
    Ok(session.page_with(req, status, "staff.html", StaffPage { rows, roles: Role::ALL, values, errors, problem }))
}

/// `GET /admin/staff`.
pub async fn list(
    state: web::Data<AppState>,
    session: StaffSession<Owner>,
    req: HttpRequest,
) -> Result<HttpResponse, AdminError> {
    render(&state, &session, &req, StatusCode::OK, AddValues::default(), FieldErrors::default(), None).await
}

#[derive(Serialize)]
struct Secret<'a> {
    email: &'a str,
    password: &'a str,
    reset: bool,
}

#[derive(Deserialize)]
pub struct AddForm {
    #[serde(default)]
    email: String,
    #[serde(default)]
    role: String,
    /// Blank: generate one and show it once.
    #[serde(default)]
    password: String,
}

/// `POST /admin/staff`: a new account.
pub async fn add(
    state: web::Data<AppState>,
    session: StaffSession<Owner>,
    req: HttpRequest,
    form: CsrfForm<AddForm>,
) -> Result<HttpResponse, AdminError> {
    let CsrfForm(form) = form;
    let mut errors = FieldErrors::default();
    let email = Email::parse(&form.email).map_err(|_| errors.add("email", "email_invalid")).ok();
    let role = Role::parse(&form.role);
    if role.is_none() {
        errors.add("role", "role_invalid");
    }
    let chosen = !form.password.is_empty();
    if chosen {
        if let Err(key) = password::check(&form.password) {
            errors.add("password", key);
        }
    }
    let values = AddValues { email: form.email.clone(), role: form.role.clone() };
    let (Some(email), Some(role), true) = (email, role, errors.is_empty()) else {
        return render(&state, &session, &req, StatusCode::UNPROCESSABLE_ENTITY, values, errors, None).await;
    };
    let plain = if chosen { form.password.clone() } else { password::generate() };
    let account = StaffAccount::new(email.as_str(), role, password::hash(plain.clone()).await?, state.clock.now());
    match state.store.insert_staff(&account).await {
        Ok(()) => {}
        Err(StoreError::Duplicate(UniqueKey::Other)) => {
            errors.add("email", "email_taken");
            return render(&state, &session, &req, StatusCode::CONFLICT, values, errors, None).await;
        }
        Err(e) => return Err(e.into()),
    }
    audit::record(
        &state,
        &session,
        actions::STAFF_ADDED,
        Some(&account.id),
        json!({ "email": account.email, "role": role, "password": if chosen { "set" } else { "generated" } }),
    )
    .await;
    let shown = if chosen { "" } else { plain.as_str() };
    Ok(session.page(&req, "staff_secret.html", Secret { email: &account.email, password: shown, reset: false }))
}

/// Whether changing `target` would leave no active owner.
async fn last_active_owner(state: &AppState, target: &StaffAccount) -> Result<bool, StoreError> {
    if target.role != Role::Owner || target.disabled {
        return Ok(false);
    }
    let owners = state.store.staff_list().await?.into_iter().filter(|s| s.role == Role::Owner && !s.disabled).count();
    Ok(owners <= 1)
}

async fn target(state: &AppState, id: &str) -> Result<Option<StaffAccount>, StoreError> {
    state.store.staff_by_id(id).await
}

fn not_found(req: &HttpRequest, session: &StaffSession<Owner>) -> HttpResponse {
    super::page::notice(
        req,
        Some(&session.viewer()),
        StatusCode::NOT_FOUND,
        super::page::Notice { title: "not_found_title", text: "staff_not_found_text", link: Some("/admin/staff") },
    )
}

fn back_to_list() -> HttpResponse {
    HttpResponse::SeeOther().insert_header((actix_web::http::header::LOCATION, "/admin/staff")).finish()
}

/// `POST /admin/staff/{id}/disable`: the account's sessions end at once.
pub async fn disable(
    state: web::Data<AppState>,
    session: StaffSession<Owner>,
    req: HttpRequest,
    id: web::Path<String>,
    _form: CsrfForm<NoFields>,
) -> Result<HttpResponse, AdminError> {
    let Some(mut account) = target(&state, &id).await? else { return Ok(not_found(&req, &session)) };
    if last_active_owner(&state, &account).await? {
        let problem = Some("last_owner");
        return render(
            &state,
            &session,
            &req,
            StatusCode::CONFLICT,
            AddValues::default(),
            FieldErrors::default(),
            problem,
        )
        .await;
    }
    if !account.disabled {
        account.disabled = true;
        state.store.update_staff(&account).await?;
        let ended = state.store.delete_staff_sessions_of(&account.id).await?;
        audit::record(
            &state,
            &session,
            actions::STAFF_DISABLED,
            Some(&account.id),
            json!({ "email": account.email, "before": { "disabled": false }, "after": { "disabled": true }, "sessions_ended": ended }),
        )
        .await;
    }
    Ok(back_to_list())
}

/// `POST /admin/staff/{id}/enable`.
pub async fn enable(
    state: web::Data<AppState>,
    session: StaffSession<Owner>,
    req: HttpRequest,
    id: web::Path<String>,
    _form: CsrfForm<NoFields>,
) -> Result<HttpResponse, AdminError> {
    let Some(mut account) = target(&state, &id).await? else { return Ok(not_found(&req, &session)) };
    if account.disabled {
        account.disabled = false;
        state.store.update_staff(&account).await?;
        audit::record(
            &state,
            &session,
            actions::STAFF_ENABLED,
            Some(&account.id),
            json!({ "email": account.email, "before": { "disabled": true }, "after": { "disabled": false } }),
        )
        .await;
    }
    Ok(back_to_list())
}

#[derive(Deserialize)]
pub struct RoleForm {
    #[serde(default)]
    role: String,
}

/// `POST /admin/staff/{id}/role`.
pub async fn change_role(
    state: web::Data<AppState>,
    session: StaffSession<Owner>,
    req: HttpRequest,
    id: web::Path<String>,
    form: CsrfForm<RoleForm>,
) -> Result<HttpResponse, AdminError> {
    let Some(mut account) = target(&state, &id).await? else { return Ok(not_found(&req, &session)) };
    let Some(role) = Role::parse(&form.role) else {
        let mut errors = FieldErrors::default();
        errors.add("role", "role_invalid");
        return render(&state, &session, &req, StatusCode::UNPROCESSABLE_ENTITY, AddValues::default(), errors, None)
            .await;
    };
    if role == account.role {
        return Ok(back_to_list());
    }
    if role != Role::Owner && last_active_owner(&state, &account).await? {
        let problem = Some("last_owner");
        return render(
            &state,
            &session,
            &req,
            StatusCode::CONFLICT,
            AddValues::default(),
            FieldErrors::default(),
            problem,
        )
        .await;
    }
    let before = account.role;
    account.role = role;
    state.store.update_staff(&account).await?;
    audit::record(
        &state,
        &session,
        actions::STAFF_ROLE_CHANGED,
        Some(&account.id),
        json!({ "email": account.email, "before": { "role": before }, "after": { "role": role } }),
    )
    .await;
    Ok(back_to_list())
}

/// `POST /admin/staff/{id}/password`: a new generated password, shown once; the account's
/// sessions end.
pub async fn reset_password(
    state: web::Data<AppState>,
    session: StaffSession<Owner>,
    req: HttpRequest,
    id: web::Path<String>,
    _form: CsrfForm<NoFields>,
) -> Result<HttpResponse, AdminError> {
    let Some(mut account) = target(&state, &id).await? else { return Ok(not_found(&req, &session)) };
    let plain = password::generate();
    account.password_hash = password::hash(plain.clone()).await?;
    state.store.update_staff(&account).await?;
    if account.id != session.staff.id {
        state.store.delete_staff_sessions_of(&account.id).await?;
    }
    audit::record(&state, &session, actions::PASSWORD_RESET, Some(&account.id), json!({ "email": account.email }))
        .await;
    Ok(session.page(&req, "staff_secret.html", Secret { email: &account.email, password: &plain, reset: true }))
}

/// `POST /admin/staff/{id}/totp/reset`: turns off someone's second factor (a lost phone and
/// lost recovery codes); they may enrol again after their next login.
pub async fn reset_totp(
    state: web::Data<AppState>,
    session: StaffSession<Owner>,
    req: HttpRequest,
    id: web::Path<String>,
    _form: CsrfForm<NoFields>,
) -> Result<HttpResponse, AdminError> {
    let Some(mut account) = target(&state, &id).await? else { return Ok(not_found(&req, &session)) };
    if account.totp_enabled() {
        account.totp_secret = None;
        account.recovery_codes.clear();
        state.store.update_staff(&account).await?;
        audit::record(
            &state,
            &session,
            actions::TOTP_DISABLED,
            Some(&account.id),
            json!({ "email": account.email, "by_owner": true }),
        )
        .await;
    }
    Ok(back_to_list())
}
