//! Request bodies: the JSON extractor every API handler uses, with the checks SPEC §5 asks for:
//! the right content type (415), a bounded size (413), well-formed JSON (400), and fields of the
//! right shape (422 naming the field).

use actix_web::dev::Payload;
use actix_web::http::{StatusCode, header};
use actix_web::web::{Bytes, BytesMut};
use actix_web::{FromRequest, HttpRequest};
use futures_util::StreamExt;
use futures_util::future::LocalBoxFuture;
use serde::de::DeserializeOwned;

use super::errors::ApiError;

/// The largest JSON body accepted.
pub const JSON_LIMIT: usize = 64 * 1024;

/// A JSON body parsed into `T`.
#[derive(Debug)]
pub struct JsonBody<T>(pub T);

impl<T: DeserializeOwned + 'static> FromRequest for JsonBody<T> {
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let checked = require_content_type(req, is_json);
        let mut payload = payload.take();
        let declared = declared_length(req);
        Box::pin(async move {
            checked?;
            let bytes = read_body(&mut payload, declared, JSON_LIMIT).await?;
            parse_json(&bytes).map(JsonBody)
        })
    }
}

/// The raw JSON body, checked for type and size but not parsed: for handlers that must hash
/// the exact bytes (idempotency, webhook signatures) before parsing.
#[derive(Debug)]
pub struct RawJson(pub Bytes);

impl FromRequest for RawJson {
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let checked = require_content_type(req, is_json);
        let mut payload = payload.take();
        let declared = declared_length(req);
        Box::pin(async move {
            checked?;
            read_body(&mut payload, declared, JSON_LIMIT).await.map(RawJson)
        })
    }
}

/// Whether a content type essence is JSON (`application/json` or `application/…+json`).
pub fn is_json(mime: &str) -> bool {
    mime == "application/json" || (mime.starts_with("application/") && mime.ends_with("+json"))
}

/// Fails with 415 unless the `Content-Type` essence satisfies `accept`.
pub fn require_content_type(req: &HttpRequest, accept: fn(&str) -> bool) -> Result<(), ApiError> {
    let essence = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.split(';').next().unwrap_or("").trim().to_ascii_lowercase())
        .unwrap_or_default();
    if accept(&essence) {
        Ok(())
    } else {
        Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "Send the body as application/json.",
        ))
    }
}

fn declared_length(req: &HttpRequest) -> Option<usize> {
    req.headers().get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse().ok())
}

pub fn too_large(limit: usize) -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "payload_too_large",
        format!("The request body is larger than {} KiB.", limit / 1024),
    )
}

/// Reads a request's whole body: at most `limit` bytes, refused early when its declared length
/// is already larger.
pub async fn read_request_body<S>(req: &HttpRequest, payload: &mut S, limit: usize) -> Result<Bytes, ApiError>
where
    S: futures_util::Stream<Item = Result<Bytes, actix_web::error::PayloadError>> + Unpin,
{
    read_body(payload, declared_length(req), limit).await
}

/// Reads the whole body, refusing (413) as soon as it exceeds `limit`, without buffering more.
pub async fn read_body<S>(payload: &mut S, declared: Option<usize>, limit: usize) -> Result<Bytes, ApiError>
where
    S: futures_util::Stream<Item = Result<Bytes, actix_web::error::PayloadError>> + Unpin,
{
    if declared.is_some_and(|n| n > limit) {
        return Err(too_large(limit));
    }
    let mut body = BytesMut::with_capacity(declared.unwrap_or(1024).min(limit));
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|_| ApiError::bad_request("bad_body", "The request body could not be read."))?;
        if body.len() + chunk.len() > limit {
            return Err(too_large(limit));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body.freeze())
}

/// Parses a JSON object into `T`: syntax errors are 400, values of the wrong shape 422 with the field.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::bad_request("invalid_json", "The request body is empty; send a JSON object."));
    }
    // Every body of this API is an object; serde would otherwise accept `[…]` for a struct.
    if bytes.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return Err(ApiError::bad_request("invalid_json", "The body must be a JSON object."));
    }
    // Parsed to a value first (serde_json refuses nesting deeper than 128 levels here, as a 400),
    // so whole-number floats can be read as the integers they are before typing.
    let mut value: serde_json::Value = serde_json::from_slice(bytes)
        .map_err(|e| ApiError::bad_request("invalid_json", format!("The body is not valid JSON: {e}.")))?;
    integral_floats_to_integers(&mut value);
    let parsed = serde_path_to_error::deserialize(value);
    parsed.map_err(|err| {
        let inner = err.inner();
        match inner.classify() {
            serde_json::error::Category::Data => {
                let message = inner.to_string();
                let path = err.path().to_string();
                // The path already ends with an unknown field's name, but not a missing one's.
                let field = match quoted_name(&message, "missing field `") {
                    Some(name) if path == "." => name,
                    Some(name) => format!("{path}.{name}"),
                    None => path,
                };
                let mut readable = message.split(" at line ").next().unwrap_or(&message).to_owned();
                if readable.starts_with("invalid type: floating point") {
                    readable = format!(
                        "expected a whole number within range (239 or 239.0, not 239.5), got {}",
                        readable.trim_start_matches("invalid type: ").split(',').next().unwrap_or_default()
                    );
                }
                if field == "." {
                    ApiError::bad_request("invalid_json", format!("The body has the wrong shape: {readable}."))
                } else {
                    ApiError::unprocessable("invalid_field", format!("`{field}`: {readable}."), field)
                }
            }
            _ => ApiError::bad_request("invalid_json", format!("The body is not valid JSON: {inner}.")),
        }
    })
}

/// The largest magnitude below which every whole `f64` is exact (2^53).
const EXACT_F64: f64 = 9_007_199_254_740_992.0;

/// Rewrites every whole-number float (`239.0`, `-0`, `2.39e2`) as an integer, because some POS
/// systems write every number as a float. Fractions and floats too large to be exact stay floats,
/// and are refused where an integer is expected.
fn integral_floats_to_integers(value: &mut serde_json::Value) {
    match value {
        serde_json::Value::Number(n) if n.is_f64() => {
            if let Some(f) = n.as_f64().filter(|f| f.fract() == 0.0 && f.abs() <= EXACT_F64) {
                // Exact by the bound above; `as` cannot truncate here.
                *n = serde_json::Number::from(f as i64);
            }
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(integral_floats_to_integers),
        serde_json::Value::Object(map) => map.values_mut().for_each(integral_floats_to_integers),
        _ => {}
    }
}

/// The name in ``prefix`name` …`` at the start of a serde message.
fn quoted_name(message: &str, prefix: &str) -> Option<String> {
    let rest = message.strip_prefix(prefix)?;
    Some(rest.split('`').next()?.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Sample {
        name: String,
        count: Option<u32>,
    }

    #[test]
    fn malformed_json_is_a_400_and_wrong_shapes_name_the_field() {
        assert_eq!(parse_json::<Sample>(b"{").unwrap_err().status, StatusCode::BAD_REQUEST);
        assert_eq!(parse_json::<Sample>(b"").unwrap_err().status, StatusCode::BAD_REQUEST);
        assert_eq!(parse_json::<Sample>(b"[1]").unwrap_err().status, StatusCode::BAD_REQUEST);
        assert_eq!(parse_json::<Sample>(br#"{"name":"a"} x"#).unwrap_err().status, StatusCode::BAD_REQUEST);

        let wrong_type = parse_json::<Sample>(br#"{"name":"a","count":"x"}"#).unwrap_err();
        assert_eq!((wrong_type.status, wrong_type.field.as_deref()), (StatusCode::UNPROCESSABLE_ENTITY, Some("count")));
        let unknown = parse_json::<Sample>(br#"{"name":"a","extra":1}"#).unwrap_err();
        assert_eq!(unknown.field.as_deref(), Some("extra"));
        let missing = parse_json::<Sample>(br#"{}"#).unwrap_err();
        assert_eq!(missing.field.as_deref(), Some("name"));
        let negative = parse_json::<Sample>(br#"{"name":"a","count":-1}"#).unwrap_err();
        assert_eq!(negative.field.as_deref(), Some("count"));
    }

    #[test]
    fn whole_floats_are_integers_and_fractions_are_refused_clearly() {
        assert_eq!(parse_json::<Sample>(br#"{"name":"a","count":239.0}"#).unwrap().count, Some(239));
        assert_eq!(parse_json::<Sample>(br#"{"name":"a","count":2.39e2}"#).unwrap().count, Some(239));
        assert_eq!(parse_json::<Sample>(br#"{"name":"a","count":-0}"#).unwrap().count, Some(0));
        for fraction in [&br#"{"name":"a","count":239.5}"#[..], br#"{"name":"a","count":1e300}"#] {
            let refused = parse_json::<Sample>(fraction).unwrap_err();
            assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY);
            assert_eq!(refused.field.as_deref(), Some("count"));
            assert!(refused.message.contains("whole number"), "{}", refused.message);
        }
    }

    #[test]
    fn deep_nesting_is_a_400_not_a_crash() {
        let deep = format!("{{\"name\":{}{}}}", "[".repeat(10_000), "]".repeat(10_000));
        assert_eq!(parse_json::<Sample>(deep.as_bytes()).unwrap_err().status, StatusCode::BAD_REQUEST);
    }
}
