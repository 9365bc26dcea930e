//! Who may touch a pass: `ApplePassAuth` accepts a request only with the pass's own
//! authentication token, so a handler that takes it cannot run unauthenticated (STYLE §6).
//!
//! Wallet sends `Authorization: ApplePass <token>`; Android pass apps that speak Apple's protocol
//! (WalletPasses, Pass2U) send `AndroidPass <token>`. Both are accepted. The token is compared in
//! constant time, and an unknown serial answers exactly like a wrong token (401).

use actix_web::dev::Payload;
use actix_web::http::{StatusCode, header};
use actix_web::{FromRequest, HttpRequest, HttpResponse, ResponseError, web};
use futures_util::future::LocalBoxFuture;

use crate::domain::{Card, PassTypeId, SerialNumber};
use crate::http::errors::ApiError;
use crate::state::AppState;
use crate::store::{CardLookup, StoreError};

/// Why a PassKit request is refused. Each maps to the status Apple's protocol expects.
#[derive(Debug, thiserror::Error)]
pub enum PassKitError {
    /// A path segment that cannot be an identifier of its kind (400).
    #[error("`{field}` is malformed: {reason}")]
    BadPath { field: &'static str, reason: String },
    /// A pass type this server does not issue (404).
    #[error("this server issues no passes of this pass type")]
    UnknownPassType,
    /// Missing, malformed or wrong token, or no such pass (401).
    #[error("missing or wrong pass authentication")]
    Unauthorized,
    /// Anything else, already in the API's error format (bodies, storage, signing).
    #[error("{0}")]
    Api(ApiError),
}

impl From<ApiError> for PassKitError {
    fn from(e: ApiError) -> Self {
        Self::Api(e)
    }
}

impl From<StoreError> for PassKitError {
    fn from(e: StoreError) -> Self {
        Self::Api(e.into())
    }
}

impl PassKitError {
    fn api_error(&self) -> ApiError {
        match self {
            Self::BadPath { field, .. } => ApiError::bad_request("invalid_path", format!("{self}.")).with_field(*field),
            Self::UnknownPassType => ApiError::new(
                StatusCode::NOT_FOUND,
                "unknown_pass_type",
                "This server issues no passes of this pass type.",
            )
            .with_field("passTypeIdentifier"),
            Self::Unauthorized => ApiError::unauthorized("Missing or wrong pass authentication."),
            Self::Api(e) => e.clone(),
        }
    }
}

impl ResponseError for PassKitError {
    fn status_code(&self) -> StatusCode {
        self.api_error().status
    }

    fn error_response(&self) -> HttpResponse {
        let error = self.api_error();
        let mut response = error.response();
        if error.status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(header::WWW_AUTHENTICATE, header::HeaderValue::from_static("ApplePass"));
        }
        response
    }
}

/// Parses the pass type segment and checks that this server issues it.
pub fn pass_type(state: &AppState, raw: &str) -> Result<PassTypeId, PassKitError> {
    let id = PassTypeId::parse(raw)
        .map_err(|e| PassKitError::BadPath { field: "passTypeIdentifier", reason: e.to_string() })?;
    if &id != state.apple.pass_type_id() {
        return Err(PassKitError::UnknownPassType);
    }
    Ok(id)
}

/// The token of an `ApplePass <token>` or `AndroidPass <token>` header.
fn presented_token(value: &[u8]) -> Option<&str> {
    let value = std::str::from_utf8(value).ok()?.trim();
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim();
    let known = scheme.eq_ignore_ascii_case("ApplePass") || scheme.eq_ignore_ascii_case("AndroidPass");
    (known && !token.is_empty()).then_some(token)
}

/// A request carrying the right token for the pass named in its path (`{pass_type}`, `{serial}`).
pub struct ApplePassAuth {
    pub card: Card,
}

impl FromRequest for ApplePassAuth {
    type Error = PassKitError;
    type Future = LocalBoxFuture<'static, Result<Self, PassKitError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let state = req.app_data::<web::Data<AppState>>().cloned();
        let pass_type_raw = req.match_info().get("pass_type").unwrap_or_default().to_owned();
        let serial_raw = req.match_info().get("serial").unwrap_or_default().to_owned();
        let header = req.headers().get(header::AUTHORIZATION).map(|v| v.as_bytes().to_vec());
        Box::pin(async move {
            let state = state.ok_or_else(|| {
                PassKitError::Api(ApiError::internal(&std::io::Error::other("AppState is not registered")))
            })?;
            pass_type(&state, &pass_type_raw)?;
            let serial = SerialNumber::parse(&serial_raw)
                .map_err(|e| PassKitError::BadPath { field: "serialNumber", reason: e.to_string() })?;
            let token = header.as_deref().and_then(presented_token).ok_or(PassKitError::Unauthorized)?;
            let card = state.store.find_card(CardLookup::Serial(&serial)).await?.ok_or(PassKitError::Unauthorized)?;
            if !card.auth_token.matches(token) {
                return Err(PassKitError::Unauthorized);
            }
            Ok(Self { card })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_schemes_are_accepted_and_anything_else_is_not() {
        assert_eq!(presented_token(b"ApplePass abcdef0123456789"), Some("abcdef0123456789"));
        assert_eq!(presented_token(b"AndroidPass abcdef0123456789"), Some("abcdef0123456789"));
        assert_eq!(presented_token(b"applepass  tok "), Some("tok"));
        assert_eq!(presented_token(b"Bearer abcdef0123456789"), None);
        assert_eq!(presented_token(b"ApplePass"), None);
        assert_eq!(presented_token(b"ApplePass "), None);
        assert_eq!(presented_token(b"\xff\xfe"), None);
    }
}
