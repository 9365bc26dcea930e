//! How receivers know a delivery came from loy: `Loy-Signature: t=<unix seconds>,v1=<hex>`,
//! where the hex is HMAC-SHA256 with the endpoint's secret over `"{t}.{body}"` (the scheme
//! Stripe uses; `docs/webhooks.md` shows how to check it).

use hmac::{Hmac, Mac};
use sha2::Sha256;

pub const SIGNATURE_HEADER: &str = "Loy-Signature";
pub const EVENT_ID_HEADER: &str = "Loy-Event-Id";
pub const EVENT_TYPE_HEADER: &str = "Loy-Event-Type";

/// The hex HMAC-SHA256 of `"{timestamp}.{body}"` under `secret`.
pub fn sign(secret: &str, timestamp: i64, body: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes keys of any length");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body.as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

/// The `Loy-Signature` header value.
pub fn header(secret: &str, timestamp: i64, body: &str) -> String {
    format!("t={timestamp},v1={}", sign(secret, timestamp, body))
}

/// Checks a `Loy-Signature` value the way a receiver should (constant-time comparison); the
/// timestamp's age is left to the caller.
pub fn verify(secret: &str, header: &str, body: &str) -> Option<i64> {
    let mut t = None;
    let mut v1 = None;
    for part in header.split(',') {
        match part.split_once('=') {
            Some(("t", value)) => t = value.parse::<i64>().ok(),
            Some(("v1", value)) => v1 = hex::decode(value).ok(),
            _ => {}
        }
    }
    let (t, v1) = (t?, v1?);
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).ok()?;
    mac.update(format!("{t}.{body}").as_bytes());
    mac.verify_slice(&v1).ok()?;
    Some(t)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signature_verifies_only_with_its_secret_and_body() {
        let h = header("whsec_abc", 1_700_000_000, r#"{"id":"ev_1"}"#);
        assert_eq!(verify("whsec_abc", &h, r#"{"id":"ev_1"}"#), Some(1_700_000_000));
        assert_eq!(verify("whsec_other", &h, r#"{"id":"ev_1"}"#), None);
        assert_eq!(verify("whsec_abc", &h, r#"{"id":"ev_2"}"#), None);
    }
}
