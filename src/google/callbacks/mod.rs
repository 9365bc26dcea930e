//! Google Wallet's save and delete callbacks: the POST Google sends to a class's
//! `callbackOptions.url` when a customer saves or deletes a pass.
//!
//! The body is signed with the `ECv2SigningOnly` protocol of Tink's `PaymentMethodTokenRecipient`
//! (sender id `GooglePayPasses`, recipient id = our issuer id), as Google's "use callbacks for
//! saves and deletions" guide prescribes: a Google root key (published at
//! [`GOOGLE_ROOT_KEYS_URL`]) signs a short-lived intermediate key, which signs the message.
//! [`verify`] checks a body against root keys; [`RootKeys`] fetches and keeps those keys.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use chrono::{DateTime, Utc};
use ring::signature::{ECDSA_P256_SHA256_ASN1, UnparsedPublicKey};
use serde::Deserialize;

use crate::clock::Clock;

pub mod receive;

/// Where Google publishes the root signing keys of its callbacks.
pub const GOOGLE_ROOT_KEYS_URL: &str = "https://pay.google.com/gp/m/issuer/keys";
/// The sender id Google signs pass callbacks with (a constant of the protocol).
const SENDER_ID: &str = "GooglePayPasses";
const PROTOCOL: &str = "ECv2SigningOnly";
/// Root keys are fetched again at least this often, even when they expire later.
const ROOT_KEYS_MAX_AGE: chrono::Duration = chrono::Duration::hours(24);
/// After a failed fetch, callers get the failure (or the keys kept) without a new request.
const RETRY_AFTER_FAILURE: chrono::Duration = chrono::Duration::minutes(1);

/// A verified callback: a customer saved or deleted the pass `object_id` of class `class_id`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Callback {
    pub class_id: String,
    pub object_id: String,
    pub event: CallbackEvent,
    /// Google may deliver a callback more than once; the nonce identifies the event.
    pub nonce: String,
    /// When the signed message expires (`expTimeMillis`).
    pub expires_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallbackEvent {
    Save,
    Delete,
}

/// Why a callback body was refused, or why no root keys are at hand to check it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CallbackError {
    #[error("the callback body is not a signed Google Wallet message: {0}")]
    Malformed(String),
    #[error("the callback is signed with protocol {0:?}; only ECv2SigningOnly is accepted")]
    WrongProtocol(String),
    #[error("no signature of the callback's intermediate signing key verifies with a Google root key")]
    UntrustedIntermediateKey,
    #[error("the callback's intermediate signing key expired at {0}")]
    IntermediateKeyExpired(DateTime<Utc>),
    #[error("the callback's message signature does not verify for this issuer")]
    BadMessageSignature,
    #[error("the callback's message expired at {0}")]
    MessageExpired(DateTime<Utc>),
    #[error("no Google root signing keys are available: {0}")]
    NoRootKeys(String),
}

/// One of Google's root signing keys: a P-256 public key and when it stops being trusted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RootKey {
    /// The uncompressed point, as ring's `UnparsedPublicKey` takes it.
    point: Vec<u8>,
    expires_at: DateTime<Utc>,
}

impl RootKey {
    /// A key from its `keyValue`: a base64 DER SubjectPublicKeyInfo.
    pub fn from_spki_base64(key_value: &str, expires_at: DateTime<Utc>) -> Result<Self, String> {
        Ok(Self { point: p256_point(key_value)?, expires_at })
    }
}

/// The request body, field for field; like Tink, nothing else is allowed at these two levels.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Envelope {
    protocol_version: String,
    signature: String,
    intermediate_signing_key: IntermediateKey,
    signed_message: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct IntermediateKey {
    signed_key: String,
    signatures: Vec<String>,
}

/// `signedKey`, a JSON string; further fields are allowed (Tink keeps room to extend it).
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SignedKey {
    key_value: String,
    key_expiration: serde_json::Value,
}

/// `signedMessage`, a JSON string. Google also sends a `count`, which loy does not need.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Message {
    class_id: String,
    object_id: String,
    event_type: String,
    exp_time_millis: serde_json::Value,
    nonce: String,
}

/// Milliseconds since the epoch. Google writes `keyExpiration` as a string and `expTimeMillis`
/// as a number; either form is read for both.
fn millis(value: &serde_json::Value, field: &str) -> Result<DateTime<Utc>, CallbackError> {
    value
        .as_i64()
        .or_else(|| value.as_str()?.parse().ok())
        .and_then(DateTime::from_timestamp_millis)
        .ok_or_else(|| CallbackError::Malformed(format!("{field} is not a time in milliseconds")))
}

/// Checks a callback body as Tink's `PaymentMethodTokenRecipient` does for `ECv2SigningOnly`,
/// and also refuses an expired message (`expTimeMillis`). `roots` are Google's root keys;
/// those expired at `now` are not used.
pub fn verify(body: &[u8], issuer_id: &str, roots: &[RootKey], now: DateTime<Utc>) -> Result<Callback, CallbackError> {
    let envelope: Envelope = parse(body, "the body")?;
    if envelope.protocol_version != PROTOCOL {
        return Err(CallbackError::WrongProtocol(envelope.protocol_version));
    }
    let key = &envelope.intermediate_signing_key;
    let key_signatures =
        key.signatures.iter().map(|s| decode(s, "a signature of the signed key")).collect::<Result<Vec<_>, _>>()?;
    let roots: Vec<&[u8]> = roots.iter().filter(|r| r.expires_at > now).map(|r| r.point.as_slice()).collect();
    if roots.is_empty() {
        return Err(CallbackError::NoRootKeys("every root key has expired".to_owned()));
    }
    if !verifies_any(&roots, &key_signatures, &length_prefixed(&[SENDER_ID, PROTOCOL, &key.signed_key])) {
        return Err(CallbackError::UntrustedIntermediateKey);
    }

    let signed_key: SignedKey = parse(key.signed_key.as_bytes(), "signedKey")?;
    let key_expires = millis(&signed_key.key_expiration, "keyExpiration")?;
    if key_expires <= now {
        return Err(CallbackError::IntermediateKeyExpired(key_expires));
    }
    let intermediate = p256_point(&signed_key.key_value).map_err(CallbackError::Malformed)?;
    let signature = decode(&envelope.signature, "signature")?;
    let signed = length_prefixed(&[SENDER_ID, issuer_id, PROTOCOL, &envelope.signed_message]);
    if !verifies_any(&[&intermediate], &[signature], &signed) {
        return Err(CallbackError::BadMessageSignature);
    }

    let message: Message = parse(envelope.signed_message.as_bytes(), "signedMessage")?;
    let expires_at = millis(&message.exp_time_millis, "expTimeMillis")?;
    if expires_at <= now {
        return Err(CallbackError::MessageExpired(expires_at));
    }
    let event = match message.event_type.as_str() {
        "save" => CallbackEvent::Save,
        "del" => CallbackEvent::Delete,
        other => return Err(CallbackError::Malformed(format!("unknown eventType {other:?}"))),
    };
    Ok(Callback { class_id: message.class_id, object_id: message.object_id, event, nonce: message.nonce, expires_at })
}

fn parse<'a, T: Deserialize<'a>>(json: &'a [u8], what: &str) -> Result<T, CallbackError> {
    serde_json::from_slice(json).map_err(|e| CallbackError::Malformed(format!("{what}: {e}")))
}

fn decode(text: &str, what: &str) -> Result<Vec<u8>, CallbackError> {
    BASE64.decode(text).map_err(|_| CallbackError::Malformed(format!("{what} is not base64")))
}

/// What Tink signs: each part as its 4-byte little-endian length, then its UTF-8 bytes.
fn length_prefixed(parts: &[&str]) -> Vec<u8> {
    let mut out = Vec::new();
    for part in parts {
        out.extend_from_slice(&(part.len() as u32).to_le_bytes());
        out.extend_from_slice(part.as_bytes());
    }
    out
}

/// Whether any of `signatures` (ECDSA P-256 SHA-256, DER) verifies with any of `keys`.
fn verifies_any(keys: &[&[u8]], signatures: &[Vec<u8>], signed: &[u8]) -> bool {
    keys.iter().any(|key| {
        let key = UnparsedPublicKey::new(&ECDSA_P256_SHA256_ASN1, key);
        signatures.iter().any(|signature| key.verify(signed, signature).is_ok())
    })
}

/// The uncompressed point of a base64 DER SubjectPublicKeyInfo holding a P-256 key. openssl
/// (already linked for pass signing) reads the DER, so no ASN.1 is parsed by hand here.
fn p256_point(key_value: &str) -> Result<Vec<u8>, String> {
    use openssl::{bn::BigNumContext, ec::PointConversionForm, nid::Nid, pkey::PKey};
    let der = BASE64.decode(key_value).map_err(|_| "keyValue is not base64".to_owned())?;
    let key = PKey::public_key_from_der(&der)
        .and_then(|key| key.ec_key())
        .map_err(|_| "keyValue is not an EC SubjectPublicKeyInfo".to_owned())?;
    if key.group().curve_name() != Some(Nid::X9_62_PRIME256V1) {
        return Err("keyValue is not a P-256 key".to_owned());
    }
    BigNumContext::new()
        .and_then(|mut ctx| key.public_key().to_bytes(key.group(), PointConversionForm::UNCOMPRESSED, &mut ctx))
        .map_err(|e| format!("keyValue cannot be read: {e}"))
}

/// The usable keys of Google's key list: like Tink, keys of other protocols, keys without an
/// expiration and expired keys are skipped, and a list with none left is an error.
fn parse_key_list(body: &[u8], now: DateTime<Utc>) -> Result<Vec<RootKey>, String> {
    let list: serde_json::Value = serde_json::from_slice(body).map_err(|e| format!("the key list is not JSON: {e}"))?;
    let listed = list["keys"].as_array().ok_or("the key list has no \"keys\" array")?;
    let mut keys = Vec::new();
    for key in listed.iter().filter(|key| key["protocolVersion"] == PROTOCOL) {
        let Some(expiration) = key.get("keyExpiration") else { continue };
        let expires_at = millis(expiration, "keyExpiration").map_err(|e| e.to_string())?;
        if expires_at > now {
            keys.push(RootKey::from_spki_base64(key["keyValue"].as_str().unwrap_or_default(), expires_at)?);
        }
    }
    if keys.is_empty() {
        return Err("the key list has no unexpired ECv2SigningOnly key".to_owned());
    }
    Ok(keys)
}

/// Google's root keys, fetched from a configurable URL and kept until the earliest of them
/// expires (at most 24 hours). Callers arriving during a fetch wait for it instead of starting
/// their own, and a failed fetch is tried again at most once a minute, so a burst of callbacks
/// never turns into a burst of requests to Google.
pub struct RootKeys {
    http: reqwest::Client,
    url: String,
    clock: Arc<dyn Clock>,
    /// Held across a fetch: that is what makes concurrent callers share it.
    state: tokio::sync::Mutex<Kept>,
}

#[derive(Default)]
struct Kept {
    keys: Option<Arc<Vec<RootKey>>>,
    fresh_until: Option<DateTime<Utc>>,
    /// When the last fetch failed, and why.
    failure: Option<(DateTime<Utc>, String)>,
}

impl Kept {
    /// The kept keys while any of them is still valid (served when a refresh failed).
    fn usable(&self, now: DateTime<Utc>) -> Option<Arc<Vec<RootKey>>> {
        self.keys.clone().filter(|keys| keys.iter().any(|k| k.expires_at > now))
    }
}

impl RootKeys {
    pub fn new(url: impl Into<String>, timeout: Duration, clock: Arc<dyn Clock>) -> Result<Self, reqwest::Error> {
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(5)))
            .user_agent(concat!("loy/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Self { http, url: url.into(), clock, state: tokio::sync::Mutex::new(Kept::default()) })
    }

    /// The current root keys, fetched when none are fresh and the last failure is over a minute old.
    pub async fn get(&self) -> Result<Arc<Vec<RootKey>>, CallbackError> {
        let mut kept = self.state.lock().await;
        let now = self.clock.now();
        if let (Some(keys), Some(until)) = (&kept.keys, kept.fresh_until) {
            if now < until {
                return Ok(Arc::clone(keys));
            }
        }
        if let Some((at, reason)) = &kept.failure {
            if now < *at + RETRY_AFTER_FAILURE {
                return kept.usable(now).ok_or_else(|| CallbackError::NoRootKeys(reason.clone()));
            }
        }
        match self.fetch(now).await {
            Ok(keys) => {
                let earliest = keys.iter().map(|k| k.expires_at).min().unwrap_or(now);
                let keys = Arc::new(keys);
                *kept = Kept {
                    keys: Some(Arc::clone(&keys)),
                    fresh_until: Some(earliest.min(now + ROOT_KEYS_MAX_AGE)),
                    failure: None,
                };
                Ok(keys)
            }
            Err(reason) => {
                tracing::warn!(url = %self.url, error = %reason, "Google Wallet root keys could not be fetched");
                kept.failure = Some((now, reason.clone()));
                kept.usable(now).ok_or(CallbackError::NoRootKeys(reason))
            }
        }
    }

    /// [`verify`] with the current root keys.
    pub async fn verify(&self, body: &[u8], issuer_id: &str) -> Result<Callback, CallbackError> {
        let roots = self.get().await?;
        verify(body, issuer_id, &roots, self.clock.now())
    }

    async fn fetch(&self, now: DateTime<Utc>) -> Result<Vec<RootKey>, String> {
        let response = self.http.get(&self.url).send().await.map_err(|e| format!("cannot reach {}: {e}", self.url))?;
        if !response.status().is_success() {
            return Err(format!("{} answered HTTP {}", self.url, response.status().as_u16()));
        }
        let body = response.bytes().await.map_err(|e| format!("cannot read the answer of {}: {e}", self.url))?;
        parse_key_list(&body, now)
    }
}

#[cfg(test)]
mod tests;
