//! `/admin/webhooks` (owners): the endpoints loy sends its events to — the same records as
//! `loy webhook-endpoint` — with each endpoint's delivery log and a replay of failed
//! deliveries. A new endpoint's secret is shown once. Every change is audited.

use actix_web::http::{StatusCode, header};
use actix_web::{HttpRequest, HttpResponse, web};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::AdminError;
use super::audit::{self, actions};
use super::page::FieldErrors;
use super::session::{CsrfForm, NoFields, Owner, StaffSession};
use crate::state::AppState;
use crate::store::DeliveryState;
use crate::webhooks::endpoints::{self, EndpointError};
use crate::webhooks::events;

/// How many deliveries the log shows (newest first).
const SHOWN: usize = 200;

fn when(t: chrono::DateTime<chrono::Utc>) -> String {
    t.format("%Y-%m-%d %H:%M:%S").to_string()
}

#[derive(Serialize)]
struct EndpointRow {
    id: String,
    url: String,
    events: String,
    created_at: String,
}

#[derive(Serialize)]
struct EventChoice {
    name: &'static str,
    field: String,
    checked: bool,
}

#[derive(Serialize)]
struct ListPage {
    endpoints: Vec<EndpointRow>,
    url: String,
    choices: Vec<EventChoice>,
    errors: FieldErrors,
    allow_private: bool,
}

/// The form field of an event type (`card.created` → `ev_card_created`).
fn field_of(kind: &str) -> String {
    format!("ev_{}", kind.replace('.', "_"))
}

async fn render_list(
    state: &AppState,
    session: &StaffSession<Owner>,
    req: &HttpRequest,
    status: StatusCode,
    url: String,
    chosen: &[String],
    errors: FieldErrors,
) -> Result<HttpResponse, AdminError> {
    let endpoints = state
        .store
        .webhook_endpoints()
        .await?
        .into_iter()
        .map(|e| EndpointRow {
            events: endpoints::events_label(&e),
            created_at: when(e.created_at),
            id: e.id,
            url: e.url,
        })
        .collect();
    let choices = events::ALL
        .iter()
        .map(|name| EventChoice { name, field: field_of(name), checked: chosen.iter().any(|c| c == name) })
        .collect();
    let page = ListPage { endpoints, url, choices, errors, allow_private: state.settings.webhooks.allow_private };
    Ok(session.page_with(req, status, "webhooks.html", page))
}

/// `GET /admin/webhooks`.
pub async fn list(
    state: web::Data<AppState>,
    session: StaffSession<Owner>,
    req: HttpRequest,
) -> Result<HttpResponse, AdminError> {
    render_list(&state, &session, &req, StatusCode::OK, String::new(), &[], FieldErrors::default()).await
}

/// The add form: the URL and one checkbox per event type (none ticked = every type).
#[derive(Deserialize)]
pub struct AddForm {
    #[serde(default)]
    url: String,
    #[serde(flatten)]
    ticked: std::collections::HashMap<String, String>,
}

#[derive(Serialize)]
struct SecretPage<'a> {
    id: &'a str,
    url: &'a str,
    events: &'a str,
    secret: &'a str,
}

/// `POST /admin/webhooks`: a new endpoint; its secret is shown once.
pub async fn add(
    state: web::Data<AppState>,
    session: StaffSession<Owner>,
    req: HttpRequest,
    form: CsrfForm<AddForm>,
) -> Result<HttpResponse, AdminError> {
    let chosen: Vec<String> =
        events::ALL.iter().filter(|k| form.ticked.contains_key(&field_of(k))).map(|k| (*k).to_owned()).collect();
    let result =
        endpoints::add(state.store.as_ref(), &state.settings.webhooks, &form.url, &chosen.join(","), state.clock.now())
            .await;
    let endpoint = match result {
        Ok(endpoint) => endpoint,
        Err(EndpointError::Store(e)) => return Err(e.into()),
        Err(e) => {
            let code = match e {
                EndpointError::Url(crate::webhooks::ssrf::UrlRefused::Private(_)) => "webhook_url_private",
                EndpointError::Url(crate::webhooks::ssrf::UrlRefused::Unresolvable) => "webhook_url_unresolvable",
                _ => "webhook_url_invalid",
            };
            let mut errors = FieldErrors::default();
            errors.add("url", code);
            let status = StatusCode::UNPROCESSABLE_ENTITY;
            return render_list(&state, &session, &req, status, form.url.clone(), &chosen, errors).await;
        }
    };
    let label = endpoints::events_label(&endpoint);
    audit::record(
        &state,
        &session,
        actions::WEBHOOK_ENDPOINT_ADDED,
        Some(&endpoint.id),
        json!({ "url": endpoint.url, "events": label }),
    )
    .await;
    let page = SecretPage { id: &endpoint.id, url: &endpoint.url, events: &label, secret: &endpoint.secret };
    Ok(session.page(&req, "webhook_secret.html", page))
}

fn redirect(to: &str) -> HttpResponse {
    HttpResponse::SeeOther().insert_header((header::LOCATION, to.to_owned())).finish()
}

/// `POST /admin/webhooks/{id}/remove`: the endpoint and its delivery log.
pub async fn remove(
    state: web::Data<AppState>,
    session: StaffSession<Owner>,
    id: web::Path<String>,
    _form: CsrfForm<NoFields>,
) -> Result<HttpResponse, AdminError> {
    if let Some(endpoint) = state.store.webhook_endpoint(&id).await? {
        if state.store.remove_webhook_endpoint(&id).await? {
            audit::record(
                &state,
                &session,
                actions::WEBHOOK_ENDPOINT_REMOVED,
                Some(&id),
                json!({ "url": endpoint.url }),
            )
            .await;
        }
    }
    Ok(redirect("/admin/webhooks"))
}

#[derive(Serialize)]
struct DeliveryRow {
    id: String,
    kind: String,
    serial: String,
    state: &'static str,
    attempts: u32,
    event_at: String,
    updated_at: String,
    answer: String,
}

#[derive(Serialize)]
struct LogPage {
    endpoint: EndpointRow,
    deliveries: Vec<DeliveryRow>,
    failed_only: bool,
}

#[derive(Deserialize)]
pub struct LogQuery {
    #[serde(default)]
    failed: Option<String>,
}

/// `GET /admin/webhooks/{id}`: the endpoint's deliveries, newest first (`?failed=1`: only
/// those that failed for good).
pub async fn deliveries(
    state: web::Data<AppState>,
    session: StaffSession<Owner>,
    req: HttpRequest,
    id: web::Path<String>,
    query: web::Query<LogQuery>,
) -> Result<HttpResponse, AdminError> {
    let Some(endpoint) = state.store.webhook_endpoint(&id).await? else {
        let notice = super::page::Notice {
            title: "webhook_not_found_title",
            text: "webhook_not_found_text",
            link: Some("/admin/webhooks"),
        };
        return Ok(super::page::notice(&req, Some(&session.viewer()), StatusCode::NOT_FOUND, notice));
    };
    let failed_only = query.failed.is_some();
    let deliveries = state
        .store
        .endpoint_deliveries(&endpoint.id, failed_only.then_some(DeliveryState::Failed), SHOWN)
        .await?
        .into_iter()
        .map(|d| DeliveryRow {
            answer: d.last_error.clone().or(d.last_status.map(|s| s.to_string())).unwrap_or_default(),
            state: d.state.as_str(),
            event_at: when(d.created_at),
            updated_at: when(d.updated_at),
            serial: d.serial.to_string(),
            attempts: d.attempts,
            kind: d.kind,
            id: d.id,
        })
        .collect();
    let endpoint = EndpointRow {
        events: endpoints::events_label(&endpoint),
        created_at: when(endpoint.created_at),
        id: endpoint.id,
        url: endpoint.url,
    };
    Ok(session.page(&req, "webhook_deliveries.html", LogPage { endpoint, deliveries, failed_only }))
}

/// `POST /admin/webhooks/{id}/deliveries/{delivery}/replay`: a failed delivery goes again.
pub async fn replay(
    state: web::Data<AppState>,
    session: StaffSession<Owner>,
    path: web::Path<(String, String)>,
    _form: CsrfForm<NoFields>,
) -> Result<HttpResponse, AdminError> {
    let (endpoint, delivery) = path.into_inner();
    let belongs = state.store.webhook_delivery(&delivery).await?.is_some_and(|d| d.endpoint_id == endpoint);
    if belongs
        && endpoints::replay(state.store.as_ref(), &state.settings.webhooks, &delivery, state.clock.now()).await?
    {
        audit::record(&state, &session, actions::WEBHOOK_REPLAYED, Some(&delivery), json!({ "endpoint": endpoint }))
            .await;
        state.webhooks.wake.notify_one();
    }
    Ok(redirect(&format!("/admin/webhooks/{endpoint}")))
}

/// `POST /admin/webhooks/{id}/replay-failed`: every failed delivery of the endpoint goes again.
pub async fn replay_failed(
    state: web::Data<AppState>,
    session: StaffSession<Owner>,
    id: web::Path<String>,
    _form: CsrfForm<NoFields>,
) -> Result<HttpResponse, AdminError> {
    let n =
        endpoints::replay_all_failed(state.store.as_ref(), &state.settings.webhooks, &id, state.clock.now()).await?;
    if n > 0 {
        audit::record(&state, &session, actions::WEBHOOK_REPLAYED, Some(&id), json!({ "deliveries": n })).await;
        state.webhooks.wake.notify_one();
    }
    Ok(redirect(&format!("/admin/webhooks/{id}")))
}
