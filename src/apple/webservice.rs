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
use crate::http::{GET_ONLY, not_allowed};
use crate::state::AppState;
use crate::store::WalletChange::{Installed, Removed};
use crate::wallet_changes;

/// The routes, mounted under `/passkit` (the pass's `webServiceURL`).
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/v1/devices/{device}/registrations/{pass_type}/{serial}")
            .route(web::post().to(register))
            .route(web::delete().to(unregister))
            .default_service(not_allowed("POST, DELETE")),
    )
    .service(
        web::resource("/v1/devices/{device}/registrations/{pass_type}")
            .route(web::get().to(updated_serials))
            .default_service(not_allowed(GET_ONLY)),
    )
    .service(
        web::resource("/v1/passes/{pass_type}/{serial}")
            .route(web::get().to(latest_pass))
            .default_service(not_allowed(GET_ONLY)),
    )
    .service(web::resource("/v1/log").route(web::post().to(log)).default_service(not_allowed("POST")));
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
/// device was registered already (the push token of this registration is updated), 403 when
/// the pass has `LOY_MAX_DEVICES_PER_PASS` devices already.
#[tracing::instrument(name = "passkit.register", skip_all)]
async fn register(
    state: web::Data<AppState>,
    auth: ApplePassAuth,
    path: web::Path<(String, String, String)>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, PassKitError> {
    let device = device(&path.0)?;
    state.rate_limit(crate::rate_limit::PASSKIT_REGISTER, device.as_str()).await?;
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
    let max = state.settings.security.max_devices_per_pass;
    let status = match state.store.register_device(&registration, max).await? {
        crate::domain::RegisterOutcome::Created => StatusCode::CREATED,
        crate::domain::RegisterOutcome::Updated => StatusCode::OK,
        // Apple's protocol names no answer for this; 403 says "refused, do not retry" (a 429
        // would invite Wallet to try again, which cannot help until a device unregisters).
        crate::domain::RegisterOutcome::Full => {
            tracing::debug!(max, "device registration refused: the pass has the most devices allowed");
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "too_many_devices",
                format!("This pass is registered on {max} devices already, the most allowed."),
            )
            .into());
        }
    };
    // A device registering again (200) keeps its registration: not a new install.
    if status == StatusCode::CREATED {
        let event = wallet_changes::apple_event(&card, &registration.device_library_id, now, Installed, now);
        wallet_changes::record_apple(&state, &card, &event).await;
    }
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
    state.rate_limit(crate::rate_limit::PASSKIT_REGISTER, device.as_str()).await?;
    // The registration's creation time names the removal, so a repeated DELETE racing this one
    // cannot record a second removal of the same install.
    let registered_at = state
        .store
        .card_registrations(&auth.card.serial)
        .await?
        .into_iter()
        .find(|r| r.device_library_id == device)
        .map(|r| r.created_at);
    let removed = state.store.unregister_device(&device, state.apple.pass_type_id(), &auth.card.serial).await?;
    if let (true, Some(registered_at)) = (removed, registered_at) {
        let now = state.clock.now();
        let event = wallet_changes::apple_event(&auth.card, &device, registered_at, Removed, now);
        wallet_changes::record_apple(&state, &auth.card, &event).await;
    }
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

/// How many messages of one request reach the log, and how many bytes of each (a request is
/// at most [`JSON_LIMIT`], 64 KiB; a bigger one is answered 413).
const MAX_LOGGED: usize = 100;
const MAX_MESSAGE_BYTES: usize = 1024;

/// `POST /v1/log`: devices report problems with the web service here. Unauthenticated, so it is
/// rate-limited per client address, and each message goes to the server log as one quoted field
/// (`device_message`), cut to 1 KiB, with control and invisible characters escaped and long
/// token-like runs removed (a message may quote one): its text cannot forge log lines or fields.
#[tracing::instrument(name = "passkit.log", skip_all)]
async fn log(
    state: web::Data<AppState>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, PassKitError> {
    state.rate_limit(crate::rate_limit::PASSKIT_LOG, &state.client_addr(&req).to_string()).await?;
    let body: LogBody = json_body(&req, payload).await?;
    for message in body.logs.iter().take(MAX_LOGGED) {
        tracing::info!(target: "loy::passkit::device_log", device_message = ?redact(message), "device log");
    }
    if body.logs.len() > MAX_LOGGED {
        tracing::info!(target: "loy::passkit::device_log", dropped = body.logs.len() - MAX_LOGGED, "device log truncated");
    }
    Ok(HttpResponse::Ok().finish())
}

/// A device's log line fit for our log: cut at [`MAX_MESSAGE_BYTES`] (on a character boundary,
/// marked with `…`), runs of 32 or more letters and digits (push tokens, authentication tokens,
/// device ids) replaced by `[redacted]`, and control and format characters (newlines, escape
/// sequences, bidirectional overrides, zero-width ones) written as `\u{…}` escapes.
pub fn redact(message: &str) -> String {
    let mut cut = message.len().min(MAX_MESSAGE_BYTES);
    while !message.is_char_boundary(cut) {
        cut -= 1;
    }
    let mut out = String::with_capacity(cut + 16);
    let mut run = String::new();
    let flush = |run: &mut String, out: &mut String| {
        out.push_str(if run.len() >= 32 { "[redacted]" } else { run });
        run.clear();
    };
    for c in message[..cut].chars() {
        if c.is_ascii_alphanumeric() {
            run.push(c);
        } else {
            flush(&mut run, &mut out);
            if c.is_control() || is_invisible(c) {
                out.extend(c.escape_unicode());
            } else {
                out.push(c);
            }
        }
    }
    flush(&mut run, &mut out);
    if cut < message.len() {
        out.push('…');
    }
    out
}

/// Format characters that change how text around them is shown without being seen themselves.
fn is_invisible(c: char) -> bool {
    matches!(c,
        '\u{00AD}' | '\u{061C}' | '\u{180E}' | '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}' |
        '\u{2060}'..='\u{206F}' | '\u{FEFF}' | '\u{FFF9}'..='\u{FFFB}' | '\u{E0000}'..='\u{E007F}')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_logs_lose_tokens_and_control_characters() {
        let token = "a".repeat(64);
        let logged = redact(&format!("Register failed for token {token}\nretrying"));
        assert_eq!(logged, "Register failed for token [redacted]\\u{a}retrying");
        assert_eq!(redact("short abc123 stays"), "short abc123 stays");
        assert_eq!(redact("a\u{202e}b\u{200b}c\u{1b}[31m"), "a\\u{202e}b\\u{200b}c\\u{1b}[31m");
        let long = redact(&"я ".repeat(5000));
        assert!(long.len() <= MAX_MESSAGE_BYTES + '…'.len_utf8() && long.ends_with('…'), "{}", long.len());
    }
}
