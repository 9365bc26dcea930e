//! The security headers of every response, in one place: whatever a handler builds (a page, an
//! error page, a staff console page, JSON, a file), this middleware adds what is missing.
//!
//! - every response: `X-Content-Type-Options: nosniff`, `Referrer-Policy: no-referrer` (card
//!   links carry the card's key, which must not leak to other sites through `Referer`), and
//!   `Strict-Transport-Security` when `LOY_PUBLIC_URL` is https;
//! - HTML responses (decided by the content type): the Content Security Policy [`CSP`] and
//!   `X-Frame-Options: DENY` (for browsers that predate `frame-ancestors`).
//!
//! A handler that sets one of these headers itself keeps its own value.

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{self, HeaderMap, HeaderName, HeaderValue};
use actix_web::middleware::Next;

use crate::state::AppState;

/// Scripts and styles from this server only; no plugins, no framing, forms post here only.
/// Inline `style` attributes are allowed (the card page colours itself with the program's
/// colours) but `<style>` elements and inline scripts are not.
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; style-src-attr 'unsafe-inline'; \
img-src 'self' data:; font-src 'self'; connect-src 'self'; manifest-src 'self'; form-action 'self'; \
base-uri 'none'; frame-ancestors 'none'";

/// One year, the value HSTS preload lists expect.
const HSTS: &str = "max-age=31536000";

pub async fn middleware(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let https = req
        .app_data::<actix_web::web::Data<AppState>>()
        .is_some_and(|state| state.settings.public_url.starts_with("https://"));
    let mut res = next.call(req).await?;
    add_headers(res.headers_mut(), https);
    Ok(res)
}

/// Adds the missing security headers to a response's headers.
pub fn add_headers(headers: &mut HeaderMap, https: bool) {
    let mut default = |name: HeaderName, value: &'static str| {
        if !headers.contains_key(&name) {
            headers.insert(name, HeaderValue::from_static(value));
        }
    };
    default(header::X_CONTENT_TYPE_OPTIONS, "nosniff");
    default(header::REFERRER_POLICY, "no-referrer");
    if https {
        default(header::STRICT_TRANSPORT_SECURITY, HSTS);
    }
    let html = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim_start().to_ascii_lowercase().starts_with("text/html"));
    if html {
        let mut default = |name: HeaderName, value: &'static str| {
            if !headers.contains_key(&name) {
                headers.insert(name, HeaderValue::from_static(value));
            }
        };
        default(header::CONTENT_SECURITY_POLICY, CSP);
        default(header::X_FRAME_OPTIONS, "DENY");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(content_type: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_str(content_type).unwrap());
        headers
    }

    #[test]
    fn html_gets_the_policy_and_everything_gets_nosniff() {
        let mut html = headers("text/html; charset=utf-8");
        add_headers(&mut html, false);
        assert_eq!(html.get(header::CONTENT_SECURITY_POLICY).unwrap(), CSP);
        assert_eq!(html.get(header::X_FRAME_OPTIONS).unwrap(), "DENY");
        assert_eq!(html.get(header::REFERRER_POLICY).unwrap(), "no-referrer");
        assert!(html.get(header::STRICT_TRANSPORT_SECURITY).is_none(), "no HSTS over http");
        let mut json = headers("application/json");
        add_headers(&mut json, true);
        assert!(json.get(header::CONTENT_SECURITY_POLICY).is_none());
        assert_eq!(json.get(header::X_CONTENT_TYPE_OPTIONS).unwrap(), "nosniff");
        assert_eq!(json.get(header::STRICT_TRANSPORT_SECURITY).unwrap(), HSTS);
    }

    #[test]
    fn a_handler_keeps_its_own_value() {
        let mut html = headers("TEXT/HTML");
        html.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static("default-src 'self'"));
        add_headers(&mut html, false);
        assert_eq!(html.get(header::CONTENT_SECURITY_POLICY).unwrap(), "default-src 'self'");
        assert_eq!(html.get(header::X_FRAME_OPTIONS).unwrap(), "DENY");
    }

    #[test]
    fn the_policy_forbids_inline_scripts_and_framing() {
        assert!(CSP.contains("script-src 'self';"));
        assert!(!CSP.contains("script-src 'self' 'unsafe-inline'"));
        assert!(CSP.contains("frame-ancestors 'none'"));
        assert!(CSP.contains("default-src 'none'"));
    }
}
