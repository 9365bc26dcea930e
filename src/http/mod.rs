//! What every endpoint shares: errors, bodies, request ids, pages, health and metrics. The
//! route table is in `crate::routes`.

pub mod assets;
pub mod client;
pub mod errors;
pub mod health;
pub mod json;
pub mod media;
pub mod pages;
pub mod request_id;
pub mod security;

use actix_web::http::StatusCode;
use actix_web::{HttpMessage, HttpRequest, HttpResponse, web};

use crate::state::AppState;
use errors::ApiError;

/// The OpenAPI 3 description of the public API, kept in `docs/openapi.json` and tested against
/// the real responses (`tests/api/openapi.rs`).
pub const OPENAPI: &str = include_str!("../../docs/openapi.json");

/// Prometheus metrics; the queue depth is read at scrape time. Only for whoever may see the
/// server's internals ([`Internals`]).
pub async fn metrics(state: web::Data<AppState>, req: HttpRequest) -> HttpResponse {
    match Internals::of(&state, &req) {
        Internals::Shown => render_metrics(&state.metrics, state.queue.as_ref(), state.google_queue.as_deref()).await,
        Internals::NeedToken => {
            let mut response =
                ApiError::unauthorized("The metrics need `Authorization: Bearer <LOY_METRICS_TOKEN>`.").response();
            response.headers_mut().insert(
                actix_web::http::header::WWW_AUTHENTICATE,
                actix_web::http::header::HeaderValue::from_static("Bearer"),
            );
            response
        }
        Internals::Hidden => ApiError::not_found("No such resource.").response(),
    }
}

/// Whether the request brings `Authorization: Bearer <token>` (compared in constant time).
pub fn bearer_matches(req: &HttpRequest, token: &secrecy::SecretString) -> bool {
    use secrecy::ExposeSecret;
    use subtle::ConstantTimeEq;
    req.headers()
        .get(actix_web::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .is_some_and(|(_, presented)| bool::from(presented.trim().as_bytes().ct_eq(token.expose_secret().as_bytes())))
}

/// Marks the requests of the separate metrics listener (`LOY_METRICS_BIND`).
#[derive(Debug, Clone, Copy)]
pub struct MetricsListener;

/// Whether a request may see `/metrics` and the detail of `/readyz`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Internals {
    Shown,
    /// A token is configured and the request did not bring it.
    NeedToken,
    /// No token is configured: only the metrics listener serves them (if there is one).
    Hidden,
}

impl Internals {
    /// On the metrics listener: shown. With `LOY_METRICS_TOKEN`: shown to a request that brings
    /// it. Otherwise hidden: closed unless an operator opens them.
    pub fn of(state: &AppState, req: &HttpRequest) -> Self {
        if req.app_data::<MetricsListener>().is_some() {
            return Self::Shown;
        }
        let security = &state.settings.security;
        if let Some(token) = &security.metrics_token {
            return if bearer_matches(req, token) { Self::Shown } else { Self::NeedToken };
        }
        Self::Hidden
    }
}

/// The metrics in Prometheus's text format, with the depth of the push queue (and of the
/// Google lane's, when Google is configured) read now.
pub async fn render_metrics(
    metrics: &crate::metrics::Metrics,
    queue: &dyn crate::push::queue::PushQueue,
    google_lane: Option<&dyn crate::push::queue::PushQueue>,
) -> HttpResponse {
    let gauges = [(Some(queue), &metrics.queue_depth), (google_lane, &metrics.google_lane_depth)];
    for (queue, gauge) in gauges {
        let Some(queue) = queue else { continue };
        if let Ok(depth) = queue.depth().await {
            gauge.with_label_values(&["waiting"]).set(i64::try_from(depth.waiting).unwrap_or(i64::MAX));
            gauge.with_label_values(&["leased"]).set(i64::try_from(depth.leased).unwrap_or(i64::MAX));
        }
    }
    HttpResponse::Ok().content_type("text/plain; version=0.0.4").body(metrics.render())
}

/// The methods of a resource that serves only `GET` (and so `HEAD`, see [`head_as_get`]).
pub const GET_ONLY: &str = "GET, HEAD";

/// A resource that serves `GET` (and `HEAD`) only; any other method is 405 with `Allow`.
pub fn get_only(path: &str, route: actix_web::Route) -> actix_web::Resource {
    web::resource(path).route(route).default_service(not_allowed(GET_ONLY))
}

/// A resource that takes `POST` only (a form's action); any other method is 405 with `Allow`.
pub fn post_only(path: &str, route: actix_web::Route) -> actix_web::Resource {
    web::resource(path).route(route).default_service(not_allowed("POST"))
}

/// The default service of a resource: 405 with `Allow: {allow}`, in the API's error format
/// under `/api/` and `/passkit/`, as plain text elsewhere.
pub fn not_allowed(allow: &'static str) -> actix_web::Route {
    web::to(move |req: HttpRequest| async move { method_not_allowed_response(&req, allow) })
}

pub fn method_not_allowed_response(req: &HttpRequest, allow: &'static str) -> HttpResponse {
    let path = req.path();
    let mut response = if path.starts_with("/api/") || path.starts_with("/passkit/") {
        ApiError::new(StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed", format!("This address takes {allow}."))
            .response()
    } else {
        HttpResponse::MethodNotAllowed().content_type("text/plain; charset=utf-8").body("Method not allowed")
    };
    response.headers_mut().insert(ALLOW, actix_web::http::header::HeaderValue::from_static(allow));
    response
}

const ALLOW: actix_web::http::header::HeaderName = actix_web::http::header::ALLOW;

/// `HEAD` is `GET` without the body (RFC 9110 §9.3.2), everywhere: the request is routed as a
/// `GET`, and the HTTP layer, which remembers the request was a `HEAD`, sends the headers only.
pub async fn head_as_get(
    mut req: actix_web::dev::ServiceRequest,
    next: actix_web::middleware::Next<impl actix_web::body::MessageBody>,
) -> Result<actix_web::dev::ServiceResponse<impl actix_web::body::MessageBody>, actix_web::Error> {
    if req.method() == actix_web::http::Method::HEAD {
        req.head_mut().method = actix_web::http::Method::GET;
        req.extensions_mut().insert(WasHead);
    }
    next.call(req).await
}

/// Marks a request that arrived as `HEAD` (for the metrics' method label).
#[derive(Debug, Clone, Copy)]
pub struct WasHead;
