//! `/admin/keys` (owners): API keys and POS webhook sources — the same records as
//! `loy api-key` and `loy webhook-source`. A new secret is shown once; revoking works at once.

use actix_web::http::{StatusCode, header};
use actix_web::{HttpRequest, HttpResponse, web};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::AdminError;
use super::audit::{self, actions};
use super::page::{Choice, FieldErrors};
use super::session::{CsrfForm, NoFields, Owner, StaffSession};
use crate::domain::{ApiKey, Scope, WebhookSource};
use crate::state::AppState;

#[derive(Serialize)]
struct KeyRow {
    id: String,
    name: String,
    scope: String,
    active: bool,
    created_at: String,
    last_used_at: String,
    /// The one program the key works with; empty for every program.
    program: String,
}

#[derive(Serialize)]
struct SourceRow {
    id: String,
    name: String,
    active: bool,
    created_at: String,
}

#[derive(Serialize, Default)]
struct Values {
    key_name: String,
    scope: String,
    program: String,
    source_name: String,
}

#[derive(Serialize)]
struct KeysPage {
    keys: Vec<KeyRow>,
    sources: Vec<SourceRow>,
    values: Values,
    errors: FieldErrors,
    /// The choices of the key form's program field (the template puts "every program" first).
    programs: Vec<Choice>,
}

fn when(t: chrono::DateTime<chrono::Utc>) -> String {
    t.format("%Y-%m-%d %H:%M").to_string()
}

async fn render(
    state: &AppState,
    session: &StaffSession<Owner>,
    req: &HttpRequest,
    status: StatusCode,
    values: Values,
    errors: FieldErrors,
) -> Result<HttpResponse, AdminError> {
    let keys = state
        .store
        .api_keys()
        .await?
        .into_iter()
        .map(|k| KeyRow {
            active: k.is_active(),
            scope: k.scope.to_string(),
            created_at: when(k.created_at),
            last_used_at: k.last_used_at.map(when).unwrap_or_default(),
            program: k.program_id.unwrap_or_default(),
            id: k.id,
            name: k.name,
        })
        .collect();
    let sources = state
        .store
        .webhook_sources()
        .await?
        .into_iter()
        .map(|s| SourceRow { active: s.revoked_at.is_none(), created_at: when(s.created_at), id: s.id, name: s.name })
        .collect();
    let programs = state.store.programs().await?.into_iter().map(|p| Choice { label: p.name, value: p.id }).collect();
    Ok(session.page_with(req, status, "keys.html", KeysPage { keys, sources, values, errors, programs }))
}

/// `GET /admin/keys`.
pub async fn list(
    state: web::Data<AppState>,
    session: StaffSession<Owner>,
    req: HttpRequest,
) -> Result<HttpResponse, AdminError> {
    render(&state, &session, &req, StatusCode::OK, Values::default(), FieldErrors::default()).await
}

fn name_of(raw: &str) -> Option<String> {
    let name = raw.trim();
    (!name.is_empty() && name.chars().count() <= 100).then(|| name.to_owned())
}

#[derive(Serialize)]
struct SecretPage<'a> {
    kind: &'a str,
    id: &'a str,
    name: &'a str,
    secret: &'a str,
}

#[derive(Deserialize)]
pub struct KeyForm {
    #[serde(default)]
    name: String,
    #[serde(default)]
    scope: String,
    /// A program's id; empty for every program.
    #[serde(default)]
    program: String,
}

/// `POST /admin/keys`: a new API key, shown once.
pub async fn create_key(
    state: web::Data<AppState>,
    session: StaffSession<Owner>,
    req: HttpRequest,
    form: CsrfForm<KeyForm>,
) -> Result<HttpResponse, AdminError> {
    let mut errors = FieldErrors::default();
    let name = name_of(&form.name);
    if name.is_none() {
        errors.add("key_name", "name_invalid");
    }
    let scope = Scope::parse(&form.scope);
    if scope.is_none() {
        errors.add("scope", "scope_invalid");
    }
    let program = form.program.trim().to_owned();
    if !program.is_empty() && state.store.program(&program).await?.is_none() {
        errors.add("program", "program_invalid");
    }
    let (Some(name), Some(scope), true) = (name, scope, errors.is_empty()) else {
        let values = Values {
            key_name: form.name.clone(),
            scope: form.scope.clone(),
            program: form.program.clone(),
            ..Values::default()
        };
        return render(&state, &session, &req, StatusCode::UNPROCESSABLE_ENTITY, values, errors).await;
    };
    let (mut key, plaintext) = ApiKey::generate(&name, scope, state.clock.now());
    key.program_id = (!program.is_empty()).then_some(program);
    state.store.insert_api_key(&key).await?;
    let details = json!({ "name": key.name, "scope": scope, "program": key.program_id });
    audit::record(&state, &session, actions::KEY_CREATED, Some(&key.id), details).await;
    Ok(session.page(
        &req,
        "key_secret.html",
        SecretPage { kind: "api_key", id: &key.id, name: &key.name, secret: &plaintext },
    ))
}

fn back() -> HttpResponse {
    HttpResponse::SeeOther().insert_header((header::LOCATION, "/admin/keys")).finish()
}

/// `POST /admin/keys/{id}/revoke`.
pub async fn revoke_key(
    state: web::Data<AppState>,
    session: StaffSession<Owner>,
    id: web::Path<String>,
    _form: CsrfForm<NoFields>,
) -> Result<HttpResponse, AdminError> {
    if state.store.revoke_api_key(&id, state.clock.now()).await? {
        audit::record(&state, &session, actions::KEY_REVOKED, Some(&id), serde_json::Value::Null).await;
    }
    Ok(back())
}

#[derive(Deserialize)]
pub struct SourceForm {
    #[serde(default)]
    name: String,
}

/// `POST /admin/webhook-sources`: a new webhook source; its signing secret is shown once.
pub async fn create_source(
    state: web::Data<AppState>,
    session: StaffSession<Owner>,
    req: HttpRequest,
    form: CsrfForm<SourceForm>,
) -> Result<HttpResponse, AdminError> {
    let Some(name) = name_of(&form.name) else {
        let mut errors = FieldErrors::default();
        errors.add("source_name", "name_invalid");
        let values = Values { source_name: form.name.clone(), ..Values::default() };
        return render(&state, &session, &req, StatusCode::UNPROCESSABLE_ENTITY, values, errors).await;
    };
    let source = WebhookSource::generate(&name, state.clock.now());
    state.store.insert_webhook_source(&source).await?;
    audit::record(&state, &session, actions::WEBHOOK_SOURCE_CREATED, Some(&source.id), json!({ "name": source.name }))
        .await;
    let ctx = SecretPage { kind: "webhook_source", id: &source.id, name: &source.name, secret: &source.secret };
    Ok(session.page(&req, "key_secret.html", ctx))
}

/// `POST /admin/webhook-sources/{id}/revoke`.
pub async fn revoke_source(
    state: web::Data<AppState>,
    session: StaffSession<Owner>,
    id: web::Path<String>,
    _form: CsrfForm<NoFields>,
) -> Result<HttpResponse, AdminError> {
    if state.store.revoke_webhook_source(&id, state.clock.now()).await? {
        audit::record(&state, &session, actions::WEBHOOK_SOURCE_REVOKED, Some(&id), serde_json::Value::Null).await;
    }
    Ok(back())
}
