//! A request id for every request: taken from a sane incoming `X-Request-Id` or made up, put on
//! the tracing span (so every log line of the request carries it) and echoed in the response.

use std::time::Instant;

use actix_web::HttpMessage;
use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::middleware::Next;
use tracing::Instrument;

pub const HEADER: HeaderName = HeaderName::from_static("x-request-id");

fn acceptable(id: &str) -> bool {
    (8..=64).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// The `method` label of the HTTP metrics: a client may send any token as its method, and each
/// new one would be a new time series kept forever, so unknown methods are `other`.
pub fn method_label(method: &actix_web::http::Method) -> &'static str {
    use actix_web::http::Method;
    match *method {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

pub async fn middleware(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let id = req
        .headers()
        .get(&HEADER)
        .and_then(|v| v.to_str().ok())
        .filter(|v| acceptable(v))
        .map(str::to_owned)
        .unwrap_or_else(|| {
            let mut bytes = [0u8; 8];
            crate::domain::tokens::fill_random(&mut bytes);
            hex::encode(bytes)
        });
    // The raw path can hold secrets (the card page key), so only the route pattern is logged.
    let span = tracing::info_span!("request", request_id = %id, method = method_label(req.method()));
    let started = Instant::now();
    let mut res = next.call(req).instrument(span.clone()).await?;
    let route = res.request().match_pattern().unwrap_or_else(|| "(unmatched)".to_owned());
    let status = res.status().as_u16();
    let elapsed_ms = started.elapsed().as_secs_f64() * 1000.0;
    span.in_scope(|| tracing::info!(route, status, elapsed_ms, "request finished"));
    if let Some(state) = res.request().app_data::<actix_web::web::Data<crate::state::AppState>>() {
        let method = if res.request().extensions().contains::<crate::http::WasHead>() {
            "HEAD"
        } else {
            method_label(res.request().method())
        };
        state.metrics.http_requests.with_label_values(&[route.as_str(), method, &status.to_string()]).inc();
        state.metrics.http_duration.with_label_values(&[route.as_str()]).observe(elapsed_ms / 1000.0);
    }
    if let Ok(value) = HeaderValue::from_str(&id) {
        res.headers_mut().insert(HEADER, value);
    }
    Ok(res)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_methods_share_one_label() {
        use actix_web::http::Method;
        assert_eq!(method_label(&Method::GET), "GET");
        assert_eq!(method_label(&Method::DELETE), "DELETE");
        assert_eq!(method_label(&Method::from_bytes(b"XYZZY").unwrap()), "other");
        assert_eq!(method_label(&Method::TRACE), "other");
        assert_eq!(method_label(&Method::CONNECT), "other");
    }
}
