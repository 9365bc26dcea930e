//! The Wallet REST API: loyalty classes and objects (insert, get, patch, addMessage).
//!
//! A small client over reqwest: base URL and timeout from the settings (tests point it at a
//! local fake), a bearer token from [`TokenSource`], and every call through the shared
//! [`RateLimiter`]. Failures come back as [`GoogleError`], classified for retrying.

use std::sync::Mutex;
use std::time::Duration;

use reqwest::{Method, StatusCode};
use secrecy::ExposeSecret;
use serde::Serialize;

use super::auth::TokenSource;
use super::config::GoogleSettings;
use super::error::GoogleError;
use super::objects::{AddMessageRequest, LoyaltyClass, LoyaltyObject, ObjectUpdate};
use super::rate_limit::RateLimiter;

/// What an insert found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Inserted {
    Created,
    /// `409`: a resource with this id exists already (nothing was changed).
    AlreadyExists,
}

/// What a patch found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Patched {
    Updated,
    /// `404`: there is no resource with this id.
    NotFound,
}

pub struct WalletClient {
    http: reqwest::Client,
    base_url: String,
    tokens: TokenSource,
    limiter: RateLimiter,
    timeout: Duration,
    last_failure: Mutex<Option<String>>,
}

/// An answer the caller interprets itself: a success, 404 or 409.
struct Answer {
    status: StatusCode,
    body: Vec<u8>,
}

impl WalletClient {
    pub fn new(settings: &GoogleSettings, tokens: TokenSource) -> Result<Self, reqwest::Error> {
        let http = reqwest::Client::builder()
            .timeout(settings.timeout)
            .connect_timeout(settings.timeout.min(Duration::from_secs(5)))
            .user_agent(concat!("loy/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Self {
            http,
            base_url: settings.api_base_url.clone(),
            tokens,
            limiter: RateLimiter::new(settings.requests_per_second),
            timeout: settings.timeout,
            last_failure: Mutex::new(None),
        })
    }

    pub async fn insert_class(&self, class: &LoyaltyClass) -> Result<Inserted, GoogleError> {
        inserted(self.call(Method::POST, "loyaltyClass", Some(class)).await?)
    }

    pub async fn patch_class(&self, id: &str, class: &LoyaltyClass) -> Result<Patched, GoogleError> {
        patched(self.call(Method::PATCH, &format!("loyaltyClass/{id}"), Some(class)).await?)
    }

    /// The class as Google has it, or `None` when there is none.
    pub async fn get_class(&self, id: &str) -> Result<Option<serde_json::Value>, GoogleError> {
        fetched(self.call::<()>(Method::GET, &format!("loyaltyClass/{id}"), None).await?)
    }

    pub async fn insert_object(&self, object: &LoyaltyObject) -> Result<Inserted, GoogleError> {
        inserted(self.call(Method::POST, "loyaltyObject", Some(object)).await?)
    }

    /// Patches with the full object body (after an insert found it existing).
    pub async fn patch_object(&self, id: &str, object: &LoyaltyObject) -> Result<Patched, GoogleError> {
        patched(self.call(Method::PATCH, &format!("loyaltyObject/{id}"), Some(object)).await?)
    }

    /// Patches the fields a card change touches.
    pub async fn update_object(&self, id: &str, update: &ObjectUpdate) -> Result<Patched, GoogleError> {
        patched(self.call(Method::PATCH, &format!("loyaltyObject/{id}"), Some(update)).await?)
    }

    pub async fn get_object(&self, id: &str) -> Result<Option<serde_json::Value>, GoogleError> {
        fetched(self.call::<()>(Method::GET, &format!("loyaltyObject/{id}"), None).await?)
    }

    /// Adds a message to one object (shown on the pass; announced when its type says so).
    pub async fn add_object_message(&self, id: &str, message: &AddMessageRequest) -> Result<Patched, GoogleError> {
        patched(self.call(Method::POST, &format!("loyaltyObject/{id}/addMessage"), Some(message)).await?)
    }

    /// Adds a message to a class: every object of the class shows it.
    pub async fn add_class_message(&self, id: &str, message: &AddMessageRequest) -> Result<Patched, GoogleError> {
        patched(self.call(Method::POST, &format!("loyaltyClass/{id}/addMessage"), Some(message)).await?)
    }

    /// How long a call made now would wait for its turn under the rate limit.
    pub fn backlog(&self) -> Duration {
        self.limiter.backlog()
    }

    /// Calls a second this client makes at most.
    pub fn requests_per_second(&self) -> u32 {
        self.limiter.per_second()
    }

    /// Why the most recent call failed, or `None` when it succeeded (for `/readyz`).
    pub fn last_failure(&self) -> Option<String> {
        self.last_failure.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    async fn call<B: Serialize>(&self, method: Method, path: &str, body: Option<&B>) -> Result<Answer, GoogleError> {
        let result = self.send(method.clone(), path, body).await;
        let failure = match &result {
            Err(e) => {
                tracing::warn!(%method, path, error = %e, "Google Wallet call failed");
                Some(e.to_string())
            }
            Ok(answer) => {
                tracing::debug!(%method, path, status = answer.status.as_u16(), "Google Wallet call");
                None
            }
        };
        *self.last_failure.lock().unwrap_or_else(|p| p.into_inner()) = failure;
        result
    }

    async fn send<B: Serialize>(&self, method: Method, path: &str, body: Option<&B>) -> Result<Answer, GoogleError> {
        let token = self.tokens.token().await?;
        self.limiter.acquire().await;
        let mut request =
            self.http.request(method, format!("{}/{path}", self.base_url)).bearer_auth(token.expose_secret());
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request.send().await.map_err(|e| self.transport_error(&e))?;
        let status = response.status();
        let retry_after = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        let body = response.bytes().await.map_err(|e| self.transport_error(&e))?.to_vec();
        if status.is_success() || status == StatusCode::NOT_FOUND || status == StatusCode::CONFLICT {
            return Ok(Answer { status, body });
        }
        Err(GoogleError::from_status(status.as_u16(), error_message(status, &body), retry_after))
    }

    fn transport_error(&self, e: &reqwest::Error) -> GoogleError {
        if e.is_timeout() {
            GoogleError::no_answer(format!("no answer within {} s", self.timeout.as_secs()))
        } else if e.is_connect() {
            GoogleError::no_answer("cannot connect to the Google Wallet API")
        } else {
            GoogleError::no_answer(format!("the call failed: {}", crate::telemetry::error_chain(e)))
        }
    }
}

fn inserted(answer: Answer) -> Result<Inserted, GoogleError> {
    match answer.status {
        StatusCode::CONFLICT => Ok(Inserted::AlreadyExists),
        StatusCode::NOT_FOUND => Err(GoogleError::from_status(404, error_message(answer.status, &answer.body), None)),
        _ => Ok(Inserted::Created),
    }
}

fn patched(answer: Answer) -> Result<Patched, GoogleError> {
    match answer.status {
        StatusCode::NOT_FOUND => Ok(Patched::NotFound),
        StatusCode::CONFLICT => Err(GoogleError::from_status(409, error_message(answer.status, &answer.body), None)),
        _ => Ok(Patched::Updated),
    }
}

fn fetched(answer: Answer) -> Result<Option<serde_json::Value>, GoogleError> {
    match answer.status {
        StatusCode::NOT_FOUND => Ok(None),
        StatusCode::CONFLICT => Err(GoogleError::from_status(409, error_message(answer.status, &answer.body), None)),
        _ => serde_json::from_slice(&answer.body)
            .map(Some)
            .map_err(|e| GoogleError::no_answer(format!("Google sent a resource that is not JSON: {e}"))),
    }
}

/// Google's explanation from an error body (`{"error": {"code", "message", "status"}}`), or the
/// start of whatever else came back.
fn error_message(status: StatusCode, body: &[u8]) -> String {
    #[derive(serde::Deserialize)]
    struct Envelope {
        error: Detail,
    }
    #[derive(serde::Deserialize)]
    struct Detail {
        message: String,
    }
    if let Ok(envelope) = serde_json::from_slice::<Envelope>(body) {
        return envelope.error.message;
    }
    let text = String::from_utf8_lossy(body);
    let text: String = text.split_whitespace().collect::<Vec<_>>().join(" ").chars().take(200).collect();
    if text.is_empty() { status.canonical_reason().unwrap_or("no explanation").to_owned() } else { text }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_api_message_is_taken_from_googles_error_body() {
        let body = br#"{"error": {"code": 400, "message": "Invalid barcode type.", "status": "INVALID_ARGUMENT"}}"#;
        assert_eq!(error_message(StatusCode::BAD_REQUEST, body), "Invalid barcode type.");
        assert_eq!(
            error_message(StatusCode::BAD_GATEWAY, b"<html>\n  Bad   gateway</html>"),
            "<html> Bad gateway</html>"
        );
        assert_eq!(error_message(StatusCode::SERVICE_UNAVAILABLE, b""), "Service Unavailable");
    }
}
