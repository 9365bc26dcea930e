//! `Authorization: Bearer <API key>`: an extractor, so a handler that takes it cannot run
//! unauthenticated (STYLE §6).

use actix_web::dev::Payload;
use actix_web::http::{StatusCode, header};
use actix_web::{FromRequest, HttpRequest, web};
use futures_util::future::LocalBoxFuture;

use crate::domain::{ApiKey, PresentedKey, Scope};
use crate::http::errors::ApiError;
use crate::state::AppState;

/// The API key that authenticated the request.
#[derive(Debug, Clone)]
pub struct ApiKeyAuth {
    pub key: ApiKey,
}

impl ApiKeyAuth {
    /// 403 unless the key's scope covers `required`.
    pub fn require(&self, required: Scope) -> Result<(), ApiError> {
        if self.key.scope.allows(required) {
            Ok(())
        } else {
            Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "insufficient_scope",
                format!("This endpoint needs an API key with the {required} scope."),
            ))
        }
    }
}

fn unauthorized() -> ApiError {
    ApiError::unauthorized("A valid API key is required: Authorization: Bearer <key>.")
}

impl FromRequest for ApiKeyAuth {
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let state = req.app_data::<web::Data<AppState>>().cloned();
        let presented = req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .and_then(|(_, token)| PresentedKey::parse(token.trim()));
        Box::pin(async move {
            let state = state.ok_or_else(|| ApiError::internal(&std::io::Error::other("application state missing")))?;
            let presented = presented.ok_or_else(unauthorized)?;
            let key = state.store.api_key(&presented.id).await?.ok_or_else(unauthorized)?;
            if !key.is_active() || !key.verifies(&presented) {
                return Err(unauthorized());
            }
            // The key's last use, for the console's key list: written at most once a minute.
            let now = state.clock.now();
            if key.last_used_at.is_none_or(|at| now - at >= chrono::Duration::minutes(1)) {
                state.store.touch_api_key(&key.id, now).await?;
            }
            tracing::Span::current().record("api_key", key.id.as_str());
            Ok(ApiKeyAuth { key })
        })
    }
}
