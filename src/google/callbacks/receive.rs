//! `POST /google/callbacks`: where Google posts a signed message when a customer saves a pass
//! of one of our classes to Google Wallet or deletes it (the class's `callbackOptions.url`).
//!
//! Answers, and why:
//! - 400 when the body is not a message signed by Google for this issuer (any failure of
//!   [`super::verify`]); the store is not touched. The root keys are fetched only when none are
//!   kept ([`super::RootKeys`]), so a flood of forged callbacks costs Google nothing.
//! - 503 when no root keys can be had or the store fails: Google delivers the callback again.
//! - 200 otherwise, including a replay (a nonce already recorded: nothing is recorded again)
//!   and an object that names no card of ours (a card deleted since, or another installation
//!   sharing the issuer): the message is Google's and authentic, and answering an error would
//!   only make Google deliver it again, which cannot help.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};

use super::{CallbackError, CallbackEvent};
use crate::http::errors::ApiError;
use crate::state::AppState;
use crate::store::{CardLookup, Wallet, WalletChange, WalletEvent, WalletSource};

/// The most a callback body may be (Google's are about 2 KiB).
pub const MAX_BODY: usize = 16 * 1024;

#[tracing::instrument(name = "google.callback", skip_all)]
pub async fn callback(state: web::Data<AppState>, body: web::Bytes) -> Result<HttpResponse, ApiError> {
    let Some(google) = &state.google else {
        return Err(ApiError::not_found("Google Wallet is not configured."));
    };
    if body.len() > MAX_BODY {
        return Err(ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "body_too_large", "The body is too large."));
    }
    let callback = match google.verify_callback(&body).await {
        Ok(callback) => callback,
        Err(e @ CallbackError::NoRootKeys(_)) => {
            tracing::error!(error = %e, "a Google Wallet callback cannot be checked");
            return Err(ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "root_keys_unavailable",
                "The callback cannot be checked at the moment; try again later.",
            ));
        }
        Err(e) => {
            tracing::warn!(error = %e, "a Google Wallet callback was refused");
            return Err(ApiError::bad_request("invalid_callback", "The body is not a valid signed callback."));
        }
    };
    let card = match google.serial_of_object(&callback.object_id) {
        Some(serial) => state.store.find_card(CardLookup::Serial(&serial)).await?,
        None => None,
    };
    let Some(card) = card else {
        tracing::warn!(object = %callback.object_id, "a Google Wallet callback names no card of ours; ignored");
        return Ok(HttpResponse::Ok().finish());
    };
    let change = match callback.event {
        CallbackEvent::Save => WalletChange::Installed,
        CallbackEvent::Delete => WalletChange::Removed,
    };
    let event = WalletEvent {
        id: format!("google:{}", callback.nonce),
        serial: card.serial.clone(),
        program_id: card.program_id.clone(),
        wallet: Wallet::Google,
        change,
        at: state.clock.now(),
        source: WalletSource::Callback,
    };
    let recorded = crate::wallet_changes::record(&state, &card, &event).await?;
    tracing::info!(serial = %card.serial, change = change.as_str(), recorded, "Google Wallet callback");
    Ok(HttpResponse::Ok().finish())
}
