//! The first owner: while there is no staff account, each start of the server prints a one-time
//! setup link (valid one hour, stored only as a hash); opening it lets someone choose the first
//! owner's e-mail and password. It stops working once used, or once any account exists.

use actix_web::http::{StatusCode, header};
use actix_web::{HttpRequest, HttpResponse, web};
use chrono::Duration;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::audit::{self, Actor, actions};
use super::page::{self, FieldErrors, Notice};
use super::{AdminError, client_address, password, session};
use crate::domain::staff::{random_secret, sha256_hex};
use crate::domain::{Email, Role, StaffAccount};
use crate::state::AppState;
use crate::store::{StaffStore, StoreError, StoreResult};

/// How long a setup link works.
pub const VALID_FOR_MINUTES: i64 = 60;

/// When there is no staff account, stores a new setup token and returns the link to print.
pub async fn link_if_no_staff(
    store: &dyn StaffStore,
    public_url: &str,
    now: chrono::DateTime<chrono::Utc>,
) -> StoreResult<Option<String>> {
    if !store.staff_list().await?.is_empty() {
        return Ok(None);
    }
    let token = random_secret();
    store.insert_setup_token(&sha256_hex(&token), now + Duration::minutes(VALID_FOR_MINUTES)).await?;
    Ok(Some(format!("{public_url}/admin/setup/{token}")))
}

async fn usable(state: &AppState, token: &str) -> Result<bool, StoreError> {
    Ok(state.store.staff_list().await?.is_empty()
        && state.store.setup_token_valid(&sha256_hex(token), state.clock.now()).await?)
}

fn gone(req: &HttpRequest) -> HttpResponse {
    page::notice(
        req,
        None,
        StatusCode::NOT_FOUND,
        Notice { title: "setup_gone_title", text: "setup_gone_text", link: Some("/admin/login") },
    )
}

#[derive(Serialize, Default)]
struct SetupPage {
    email: String,
    errors: FieldErrors,
}

/// `GET /admin/setup/{token}`.
pub async fn show(
    state: web::Data<AppState>,
    req: HttpRequest,
    token: web::Path<String>,
) -> Result<HttpResponse, AdminError> {
    if !usable(&state, &token).await? {
        return Ok(gone(&req));
    }
    Ok(page::render(&req, None, StatusCode::OK, "setup.html", SetupPage::default()))
}

#[derive(Deserialize)]
pub struct SetupForm {
    #[serde(default)]
    email: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    password_again: String,
}

/// `POST /admin/setup/{token}`: creates the first owner and signs them in. The token is the
/// credential here (there is no session yet), and it works once.
pub async fn submit(
    state: web::Data<AppState>,
    req: HttpRequest,
    token: web::Path<String>,
    form: web::Form<SetupForm>,
) -> Result<HttpResponse, AdminError> {
    if !usable(&state, &token).await? {
        return Ok(gone(&req));
    }
    let mut errors = FieldErrors::default();
    let email = Email::parse(&form.email);
    if email.is_err() {
        errors.add("email", "email_invalid");
    }
    if let Err(key) = password::check(&form.password) {
        errors.add("password", key);
    } else if form.password != form.password_again {
        errors.add("password_again", "password_mismatch");
    }
    let Ok(email) = email.map_err(|_| ()).and_then(|e| if errors.is_empty() { Ok(e) } else { Err(()) }) else {
        let ctx = SetupPage { email: form.email.clone(), errors };
        return Ok(page::render(&req, None, StatusCode::UNPROCESSABLE_ENTITY, "setup.html", ctx));
    };
    if !state.store.take_setup_token(&sha256_hex(&token), state.clock.now()).await? {
        return Ok(gone(&req));
    }
    let hash = password::hash(form.password.clone()).await?;
    let owner = StaffAccount::new(email.as_str(), Role::Owner, hash, state.clock.now());
    state.store.insert_staff(&owner).await?;
    let address = client_address(&req);
    let actor = Actor { staff_id: Some(owner.id.clone()), email: owner.email.clone(), address };
    audit::record(
        &state,
        &actor,
        actions::STAFF_ADDED,
        Some(&owner.id),
        json!({ "role": "owner", "via": "setup_link" }),
    )
    .await;
    let (_, cookie) = session::start(&state, &owner, false).await?;
    state.store.record_staff_login(&owner.id, state.clock.now()).await?;
    audit::record(&state, &actor, actions::LOGIN, None, json!({ "via": "setup_link" })).await;
    Ok(HttpResponse::SeeOther().cookie(cookie).insert_header((header::LOCATION, "/admin")).finish())
}
