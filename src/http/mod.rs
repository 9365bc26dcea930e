//! What every endpoint shares: errors, bodies, request ids, pages, health and metrics. The
//! route table is in `crate::routes`.

pub mod assets;
pub mod errors;
pub mod health;
pub mod json;
pub mod pages;
pub mod request_id;

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};

use crate::state::AppState;
use errors::ApiError;

/// The OpenAPI 3 description of the public API, kept in `docs/openapi.json` and tested against
/// the real responses (`tests/api/openapi.rs`).
pub const OPENAPI: &str = include_str!("../../docs/openapi.json");

/// Prometheus metrics; the queue depth is read at scrape time.
pub async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    render_metrics(&state.metrics, state.queue.as_ref()).await
}

/// The metrics in Prometheus's text format, with the queue depth read now.
pub async fn render_metrics(
    metrics: &crate::metrics::Metrics,
    queue: &dyn crate::push::queue::PushQueue,
) -> HttpResponse {
    if let Ok(depth) = queue.depth().await {
        metrics.queue_depth.with_label_values(&["waiting"]).set(i64::try_from(depth.waiting).unwrap_or(i64::MAX));
        metrics.queue_depth.with_label_values(&["leased"]).set(i64::try_from(depth.leased).unwrap_or(i64::MAX));
    }
    HttpResponse::Ok().content_type("text/plain; version=0.0.4").body(metrics.render())
}

pub async fn method_not_allowed() -> Result<HttpResponse, ApiError> {
    Err(ApiError::new(StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed", "This method is not allowed here."))
}
