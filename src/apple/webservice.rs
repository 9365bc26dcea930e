//! Apple's PassKit web service (SPEC §4.3), under `{webServiceURL}/v1`: devices register for a
//! pass's updates, ask which passes changed, download them, and send their logs.

use actix_web::http::{StatusCode, header};
use actix_web::{HttpMessage, HttpRequest, HttpResponse, web};
use serde::{Deserialize, Serialize};

use super::auth::{ApplePassAuth, PassKitError, pass_type};
use super::{pkpass_response, signed_pass, tag};
use crate::domain::{DeviceLibraryId, PushToken, Registration};
use crate::http::errors::ApiError;
use crate::http::json::{JSON_LIMIT, parse_json};
use crate::state::AppState;

/// The routes, mounted under `/passkit` (the pass's `webServiceURL`).
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/v1/devices/{device}/registrations/{pass_type}/{serial}")
            .route(web::post().to(register))
            .route(web::delete().to(unregister))
            .default_service(web::to(method_not_allowed)),
    )
    .service(
        web::resource("/v1/devices/{device}/registrations/{pass_type}")
            .route(web::get().to(updated_serials))
            .default_service(web::to(method_not_allowed)),
    )
    .service(
        web::resource("/v1/passes/{pass_type}/{serial}")
            .route(web::get().to(latest_pass))
            .route(web::head().to(latest_pass))
            .default_service(web::to(method_not_allowed)),
    )
    .service(web::resource("/v1/log").route(web::post().to(log)).default_service(web::to(method_not_allowed)));
}

async fn method_not_allowed() -> Result<HttpResponse, PassKitError> {
    Err(ApiError::new(StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed", "This method is not allowed here.").into())
}

/// Anything else under `/passkit`.
pub async fn not_found() -> Result<HttpResponse, PassKitError> {
    Err(ApiError::not_found("No such PassKit endpoint.").into())
}

fn device(raw: &str) -> Result<DeviceLibraryId, PassKitError> {
    DeviceLibraryId::parse(raw)
        .map_err(|e| PassKitError::BadPath { field: "deviceLibraryIdentifier", reason: e.to_string() })
}

/// A JSON body. Wallet sends `application/json`; a missing content type is tolerated because
/// some Android pass apps leave it out.
async fn json_body<T: serde::de::DeserializeOwned>(
    req: &HttpRequest,
    mut payload: web::Payload,
) -> Result<T, PassKitError> {
    if req.headers().contains_key(header::CONTENT_TYPE) {
        crate::http::json::require_content_type(req, crate::http::json::is_json)?;
    }
    let bytes = crate::http::json::read_request_body(req, &mut payload, JSON_LIMIT).await?;
    Ok(parse_json(&bytes)?)
}

#[derive(Deserialize)]
struct RegisterBody {
    #[serde(rename = "pushToken")]
    push_token: String,
}

/// `POST /v1/devices/{device}/registrations/{pass_type}/{serial}`: 201 when new, 200 when the
/// device was registered already (its push token is updated).
#[tracing::instrument(name = "passkit.register", skip_all)]
async fn register(
    state: web::Data<AppState>,
    auth: ApplePassAuth,
    path: web::Path<(String, String, String)>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, PassKitError> {
    let device = device(&path.0)?;
    let body: RegisterBody = json_body(&req, payload).await?;
    let push_token = PushToken::parse(&body.push_token)
        .map_err(|e| ApiError::unprocessable("invalid_field", format!("`pushToken`: {e}."), "pushToken"))?;
    let now = state.clock.now();
    let card = auth.card;
    let registration = Registration {
        device_library_id: device,
        pass_type_id: state.apple.pass_type_id().clone(),
        serial: card.serial.clone(),
        push_token,
        // Wallet downloads the current pass right after registering.
        pushed_version: card.version,
        created_at: now,
        updated_at: now,
    };
    let status = match state.store.register_device(&registration).await? {
        crate::domain::RegisterOutcome::Created => StatusCode::CREATED,
        crate::domain::RegisterOutcome::Updated => StatusCode::OK,
    };
    tracing::info!(status = status.as_u16(), "device registered for a pass");
    Ok(HttpResponse::build(status).finish())
}

/// `DELETE /v1/devices/{device}/registrations/{pass_type}/{serial}`: 200 whether or not the
/// device was registered.
#[tracing::instrument(name = "passkit.unregister", skip_all)]
async fn unregister(
    state: web::Data<AppState>,
    auth: ApplePassAuth,
    path: web::Path<(String, String, String)>,
) -> Result<HttpResponse, PassKitError> {
    let device = device(&path.0)?;
    let removed = state.store.unregister_device(&device, state.apple.pass_type_id(), &auth.card.serial).await?;
    tracing::info!(removed, "device unregistered from a pass");
    Ok(HttpResponse::Ok().finish())
}

#[derive(Deserialize)]
struct UpdatedQuery {
    #[serde(rename = "passesUpdatedSince")]
    since: Option<String>,
}

/// The answer to "which of my passes changed?".
#[derive(Debug, Serialize)]
pub struct SerialNumbers {
    #[serde(rename = "serialNumbers")]
    pub serial_numbers: Vec<String>,
    #[serde(rename = "lastUpdated")]
    pub last_updated: String,
}

/// `GET /v1/devices/{device}/registrations/{pass_type}?passesUpdatedSince={tag}`: the device's
/// passes updated since the tag (all without one), 204 when none.
#[tracing::instrument(name = "passkit.updated_serials", skip_all)]
async fn updated_serials(
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
    query: web::Query<UpdatedQuery>,
) -> Result<HttpResponse, PassKitError> {
    let device = device(&path.0)?;
    let pass_type = pass_type(&state, &path.1)?;
    let mut cards = state.store.device_cards(&device, &pass_type).await?;
    cards.sort_by(|a, b| a.serial.cmp(&b.serial));
    let updated = tag::updated_since(&cards, query.since.as_deref());
    if updated.is_empty() {
        return Ok(HttpResponse::NoContent().finish());
    }
    let answer = SerialNumbers {
        serial_numbers: updated.iter().map(|c| c.serial.to_string()).collect(),
        last_updated: tag::encode(&cards),
    };
    Ok(HttpResponse::Ok().insert_header((header::CACHE_CONTROL, "no-store")).json(answer))
}

/// `GET` (and `HEAD`) `/v1/passes/{pass_type}/{serial}`: the current pass, or 304 when it has
/// not changed since `If-Modified-Since` (compared in whole seconds, as Wallet sends them).
#[tracing::instrument(name = "passkit.latest_pass", skip_all)]
async fn latest_pass(
    state: web::Data<AppState>,
    auth: ApplePassAuth,
    req: HttpRequest,
) -> Result<HttpResponse, PassKitError> {
    let card = auth.card;
    let modified = card.modified_at.timestamp();
    let since = req.get_header::<header::IfModifiedSince>().map(|h| std::time::SystemTime::from(h.0));
    let since = since.and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok()).map(|d| d.as_secs() as i64);
    if since.is_some_and(|s| s >= modified) {
        return Ok(super::not_modified(card.modified_at));
    }
    let pass = signed_pass(&state, card).await?;
    Ok(pkpass_response(&pass, None))
}

#[derive(Deserialize)]
struct LogBody {
    logs: Vec<String>,
}

/// How many messages of one request reach the log, and how long each may be.
const MAX_LOGGED: usize = 100;
const MAX_MESSAGE_CHARS: usize = 2000;

/// `POST /v1/log`: devices report problems with the web service here; the messages go to the
/// server log (long token-like runs removed, since a message may quote one).
#[tracing::instrument(name = "passkit.log", skip_all)]
async fn log(req: HttpRequest, payload: web::Payload) -> Result<HttpResponse, PassKitError> {
    let body: LogBody = json_body(&req, payload).await?;
    for message in body.logs.iter().take(MAX_LOGGED) {
        tracing::info!(target: "loy::passkit::device_log", message = %redact(message), "device log");
    }
    if body.logs.len() > MAX_LOGGED {
        tracing::info!(target: "loy::passkit::device_log", dropped = body.logs.len() - MAX_LOGGED, "device log truncated");
    }
    Ok(HttpResponse::Ok().finish())
}

/// A device's log line fit for our log: control characters become spaces, runs of 32 or more
/// letters and digits (push tokens, authentication tokens, device ids) become `[redacted]`, and
/// it is cut at [`MAX_MESSAGE_CHARS`].
pub fn redact(message: &str) -> String {
    let mut out = String::with_capacity(message.len().min(MAX_MESSAGE_CHARS));
    let mut run = String::new();
    let flush = |run: &mut String, out: &mut String| {
        out.push_str(if run.len() >= 32 { "[redacted]" } else { run });
        run.clear();
    };
    for c in message.chars().take(MAX_MESSAGE_CHARS) {
        if c.is_ascii_alphanumeric() {
            run.push(c);
        } else {
            flush(&mut run, &mut out);
            out.push(if c.is_control() { ' ' } else { c });
        }
    }
    flush(&mut run, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_logs_lose_tokens_and_control_characters() {
        let token = "a".repeat(64);
        let logged = redact(&format!("Register failed for token {token}\nretrying"));
        assert_eq!(logged, "Register failed for token [redacted] retrying");
        assert_eq!(redact("short abc123 stays"), "short abc123 stays");
        assert_eq!(redact(&"x ".repeat(5000)).chars().count(), MAX_MESSAGE_CHARS);
    }
}
