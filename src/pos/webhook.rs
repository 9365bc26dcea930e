//! `POST /api/v1/webhooks/pos`: POS systems that push purchases instead of calling the API.
//!
//! Each request names its source (`X-Loy-Source`) and is signed with the source's secret:
//! `X-Loy-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>">`. A timestamp more
//! than five minutes off is refused, so a captured request cannot be replayed later; within
//! those minutes a replay is answered from the idempotency record of its `event_id` and applies
//! nothing.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use serde::Deserialize;
use sha2::Sha256;

use super::writes::{Target, amount, execute, points, text};
use crate::domain::EntrySource;
use crate::http::errors::ApiError;
use crate::http::json::{RawJson, parse_json};
use crate::ledger::idempotency::request_hash;
use crate::ledger::{Actor, Command};
use crate::state::AppState;
use crate::store::IdempotencyKey;

/// How far a signature's timestamp may be from the server's clock.
pub const TOLERANCE_SECONDS: i64 = 300;

/// One purchase event from a POS.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PosEvent {
    /// Unique per event at the source; a repeated id is a retry.
    pub event_id: String,
    /// `earn`, `redeem` or `reverse`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Barcode value or card number (earn, redeem).
    pub card: Option<String>,
    pub purchase_amount: Option<i64>,
    pub points: Option<i64>,
    pub order_id: Option<String>,
    pub description: Option<String>,
    /// The transaction to reverse.
    pub transaction_id: Option<String>,
    pub reason: Option<String>,
}

fn unauthorized(message: &str) -> ApiError {
    ApiError::new(StatusCode::UNAUTHORIZED, "invalid_signature", message)
}

/// The signature header value for `body` at time `t` (what a POS computes).
pub fn sign(secret: &str, t: i64, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes keys of any length");
    mac.update(t.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("t={t},v1={}", hex::encode(mac.finalize().into_bytes()))
}

/// Checks `header` against `body` signed with `secret`, at time `now`.
pub fn verify(secret: &str, header: &str, body: &[u8], now: DateTime<Utc>) -> Result<(), ApiError> {
    let mut timestamp = None;
    let mut signatures = Vec::new();
    for part in header.split(',') {
        match part.trim().split_once('=') {
            Some(("t", t)) => timestamp = t.parse::<i64>().ok(),
            Some(("v1", v)) => signatures.extend(hex::decode(v).ok()),
            _ => {}
        }
    }
    let t = timestamp.ok_or_else(|| unauthorized("X-Loy-Signature must be t=<unix seconds>,v1=<hex HMAC>."))?;
    // `abs_diff`: a timestamp like i64::MIN must be refused, not overflow the subtraction.
    if now.timestamp().abs_diff(t) > TOLERANCE_SECONDS.unsigned_abs() {
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "stale_signature",
            "The signature's timestamp is more than 5 minutes from the server's clock.",
        ));
    }
    let valid = signatures.iter().any(|signature| {
        let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes keys of any length");
        mac.update(t.to_string().as_bytes());
        mac.update(b".");
        mac.update(body);
        mac.verify_slice(signature).is_ok()
    });
    if valid { Ok(()) } else { Err(unauthorized("The signature does not match the body.")) }
}

fn required<T>(value: Option<T>, field: &str) -> Result<T, ApiError> {
    value.ok_or_else(|| ApiError::unprocessable("required", format!("{field} is required for this type."), field))
}

impl PosEvent {
    fn command(self) -> Result<(Target, Command), ApiError> {
        match self.kind.as_str() {
            "earn" => Ok((
                Target::Card(required(self.card, "card")?),
                Command::Earn {
                    purchase_amount: amount(required(self.purchase_amount, "purchase_amount")?, "purchase_amount")?,
                    order_id: text(self.order_id, "order_id", 128)?,
                    description: text(self.description, "description", 500)?,
                },
            )),
            "redeem" => Ok((
                Target::Card(required(self.card, "card")?),
                Command::Redeem {
                    points: points(required(self.points, "points")?)?,
                    purchase_amount: self.purchase_amount.map(|a| amount(a, "purchase_amount")).transpose()?,
                    order_id: text(self.order_id, "order_id", 128)?,
                    description: text(self.description, "description", 500)?,
                },
            )),
            "reverse" => {
                let transaction_id = required(self.transaction_id, "transaction_id")?;
                Ok((
                    Target::TransactionOf(transaction_id.clone()),
                    Command::Reverse { transaction_id, reason: text(self.reason, "reason", 500)? },
                ))
            }
            _ => Err(ApiError::unprocessable("invalid_type", "type must be earn, redeem or reverse.", "type")),
        }
    }
}

pub async fn receive(state: web::Data<AppState>, req: HttpRequest, body: RawJson) -> Result<HttpResponse, ApiError> {
    let header = |name: &str| req.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_owned);
    let source_id = header("x-loy-source").ok_or_else(|| unauthorized("X-Loy-Source names the webhook source."))?;
    let signature = header("x-loy-signature").ok_or_else(|| unauthorized("X-Loy-Signature is required."))?;
    let source = state
        .store
        .webhook_source(&source_id)
        .await?
        .filter(|s| s.revoked_at.is_none())
        .ok_or_else(|| unauthorized("Unknown or revoked webhook source."))?;
    verify(&source.secret, &signature, &body.0, state.clock.now())?;
    let event: PosEvent = parse_json(&body.0)?;
    let event_id = event.event_id.trim().to_owned();
    if event_id.is_empty() || event_id.len() > 255 || !event_id.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(ApiError::unprocessable(
            "invalid_event_id",
            "event_id must be 1 to 255 printable ASCII characters.",
            "event_id",
        ));
    }
    let (target, command) = event.command()?;
    let key = IdempotencyKey { scope: source.id.clone(), key: event_id };
    let hash = request_hash("POST", req.path(), &body.0);
    let actor = Actor { source: EntrySource::Webhook, id: Some(source.id) };
    execute(&state, key, hash, actor, target, command).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signature_verifies_only_for_its_body_secret_and_time() {
        let now = Utc::now();
        let body = br#"{"event_id":"e1"}"#;
        let header = sign("whsec_test", now.timestamp(), body);
        assert!(verify("whsec_test", &header, body, now).is_ok());
        assert_eq!(verify("whsec_other", &header, body, now).unwrap_err().code, "invalid_signature");
        assert_eq!(verify("whsec_test", &header, br#"{"event_id":"e2"}"#, now).unwrap_err().code, "invalid_signature");
        let later = now + chrono::Duration::seconds(TOLERANCE_SECONDS + 1);
        assert_eq!(verify("whsec_test", &header, body, later).unwrap_err().code, "stale_signature");
        assert_eq!(verify("whsec_test", "garbage", body, now).unwrap_err().code, "invalid_signature");
    }

    #[test]
    fn extreme_timestamps_are_stale_not_a_panic() {
        let now = Utc::now();
        let body = b"{}";
        for t in [i64::MIN, i64::MIN + 1, i64::MAX, -1, 0] {
            let error = verify("whsec_test", &sign("whsec_test", t, body), body, now).unwrap_err();
            assert_eq!((error.status.as_u16(), error.code), (401, "stale_signature"), "t={t}");
        }
    }
}
