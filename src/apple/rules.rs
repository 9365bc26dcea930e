//! What Wallet requires of `pass.json`, checked in one place for the template loader, the pass
//! builder and `loy pass lint`: Wallet itself only says "cannot add pass", so every rule here
//! names the key and what is wrong with it.

use std::collections::HashSet;
use std::net::IpAddr;

use serde_json::Value;

use crate::domain::PassTypeId;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    /// Wallet refuses the pass.
    Error,
    /// Wallet accepts the pass, but something will not work everywhere (for example updates from
    /// a plain-http development server).
    Warning,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub severity: Severity,
    pub message: String,
}

impl Problem {
    pub fn error(message: impl Into<String>) -> Self {
        Self { severity: Severity::Error, message: message.into() }
    }

    pub fn warning(message: impl Into<String>) -> Self {
        Self { severity: Severity::Warning, message: message.into() }
    }
}

/// How strictly the web service address is judged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// As Wallet on a phone: updates need https (a loopback host is only a warning).
    Wallet,
    /// While building: the address comes from `LOY_PUBLIC_URL`, which production already forces
    /// to https, and a development server on a LAN address must still get passes.
    Build,
}

pub const STYLES: &[&str] = &["boardingPass", "coupon", "eventTicket", "generic", "storeCard"];
pub const FIELD_GROUPS: &[&str] =
    &["headerFields", "primaryFields", "secondaryFields", "auxiliaryFields", "backFields"];
const BARCODE_FORMATS: &[&str] =
    &["PKBarcodeFormatQR", "PKBarcodeFormatPDF417", "PKBarcodeFormatAztec", "PKBarcodeFormatCode128"];
const COLOURS: &[&str] = &["backgroundColor", "foregroundColor", "labelColor"];

/// Every problem of a `pass.json` document.
pub fn check_pass_json(pass: &Value, mode: Mode) -> Vec<Problem> {
    let mut problems = Vec::new();
    let Some(object) = pass.as_object() else {
        return vec![Problem::error("pass.json is not a JSON object")];
    };
    if pass.get("formatVersion") != Some(&Value::from(1)) {
        problems.push(Problem::error("pass.json: `formatVersion` must be the number 1"));
    }
    for key in ["passTypeIdentifier", "teamIdentifier", "serialNumber", "organizationName", "description"] {
        match object.get(key) {
            Some(Value::String(s)) if !s.trim().is_empty() => {}
            Some(_) => problems.push(Problem::error(format!("pass.json: `{key}` must be a non-empty string"))),
            None => problems.push(Problem::error(format!("pass.json: `{key}` is missing"))),
        }
    }
    if let Some(Value::String(id)) = object.get("passTypeIdentifier") {
        if PassTypeId::parse(id).is_err() || !id.starts_with("pass.") {
            problems.push(Problem::error(format!(
                "pass.json: `passTypeIdentifier` `{id}` is not like pass.com.example.loyalty"
            )));
        }
    }
    check_style(object, &mut problems);
    for key in COLOURS {
        if let Some(value) = object.get(*key) {
            if !value.as_str().is_some_and(is_rgb) {
                problems.push(Problem::error(format!(
                    "pass.json: `{key}` must be a colour like \"rgb(28, 43, 74)\", not {value}"
                )));
            }
        }
    }
    check_barcodes(object, &mut problems);
    check_web_service(object, mode, &mut problems);
    problems
}

fn check_style(object: &serde_json::Map<String, Value>, problems: &mut Vec<Problem>) {
    let styles: Vec<&str> = STYLES.iter().copied().filter(|s| object.contains_key(*s)).collect();
    let style = match styles.as_slice() {
        [one] => *one,
        [] => {
            problems.push(Problem::error(format!("pass.json has no pass style: add one of {}", STYLES.join(", "))));
            return;
        }
        several => {
            problems
                .push(Problem::error(format!("pass.json has several pass styles ({}); keep one", several.join(", "))));
            return;
        }
    };
    let Some(fields) = object[style].as_object() else {
        problems.push(Problem::error(format!("pass.json: `{style}` must be an object")));
        return;
    };
    if style == "boardingPass" && !fields.contains_key("transitType") {
        problems.push(Problem::error("pass.json: a boardingPass needs `transitType`"));
    }
    let mut keys = HashSet::new();
    for group in FIELD_GROUPS {
        let Some(list) = fields.get(*group) else { continue };
        let Some(list) = list.as_array() else {
            problems.push(Problem::error(format!("pass.json: `{style}.{group}` must be an array")));
            continue;
        };
        for (i, field) in list.iter().enumerate() {
            let at = format!("{style}.{group}[{i}]");
            let key = field.get("key").and_then(Value::as_str).filter(|k| !k.is_empty());
            match key {
                None => problems.push(Problem::error(format!("pass.json: `{at}` needs a `key` string"))),
                Some(key) if !keys.insert(key.to_owned()) => {
                    problems.push(Problem::error(format!("pass.json: the field key `{key}` is used twice")))
                }
                Some(_) => {}
            }
            match field.get("value") {
                Some(Value::String(_) | Value::Number(_)) => {}
                _ => problems.push(Problem::error(format!("pass.json: `{at}` needs a `value` (text or number)"))),
            }
        }
    }
}

fn check_barcodes(object: &serde_json::Map<String, Value>, problems: &mut Vec<Problem>) {
    let check_one = |at: &str, barcode: &Value, problems: &mut Vec<Problem>| {
        let format = barcode.get("format").and_then(Value::as_str);
        if !format.is_some_and(|f| BARCODE_FORMATS.contains(&f)) {
            problems.push(Problem::error(format!(
                "pass.json: `{at}.format` must be one of {}",
                BARCODE_FORMATS.join(", ")
            )));
        }
        if barcode.get("message").and_then(Value::as_str).is_none() {
            problems.push(Problem::error(format!("pass.json: `{at}.message` must be a string")));
        }
        if barcode.get("messageEncoding").and_then(Value::as_str).is_none_or(str::is_empty) {
            problems.push(Problem::error(format!("pass.json: `{at}.messageEncoding` is missing (use \"iso-8859-1\")")));
        }
    };
    match object.get("barcodes") {
        None => {}
        Some(Value::Array(list)) => {
            for (i, barcode) in list.iter().enumerate() {
                check_one(&format!("barcodes[{i}]"), barcode, problems);
            }
        }
        Some(_) => problems.push(Problem::error("pass.json: `barcodes` must be an array")),
    }
    if let Some(barcode) = object.get("barcode") {
        check_one("barcode", barcode, problems);
    }
}

fn check_web_service(object: &serde_json::Map<String, Value>, mode: Mode, problems: &mut Vec<Problem>) {
    let token = object.get("authenticationToken");
    let url = object.get("webServiceURL");
    match (token, url) {
        (None, None) => return,
        (Some(_), None) => {
            problems.push(Problem::error("pass.json: `authenticationToken` is set but `webServiceURL` is not"))
        }
        (None, Some(_)) => {
            problems.push(Problem::error("pass.json: `webServiceURL` is set but `authenticationToken` is not"))
        }
        (Some(_), Some(_)) => {}
    }
    if let Some(token) = token {
        if token.as_str().is_none_or(|t| t.chars().count() < 16) {
            problems
                .push(Problem::error("pass.json: `authenticationToken` must be a string of at least 16 characters"));
        }
    }
    let Some(url) = url else { return };
    let parsed = url.as_str().and_then(|u| url::Url::parse(u).ok()).filter(|u| u.host_str().is_some());
    let Some(parsed) = parsed else {
        problems.push(Problem::error(format!("pass.json: `webServiceURL` {url} is not an absolute URL")));
        return;
    };
    match (parsed.scheme(), mode) {
        ("https", _) => {}
        ("http", Mode::Build) => {}
        ("http", Mode::Wallet) if is_loopback(&parsed) => problems.push(Problem::warning(format!(
            "pass.json: `webServiceURL` {parsed} is plain http on a loopback host: fine for development, but Wallet \
             on a phone only talks to https"
        ))),
        _ => problems.push(Problem::error(format!("pass.json: `webServiceURL` {parsed} must use https"))),
    }
}

fn is_loopback(url: &url::Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(d)) => d == "localhost" || d.ends_with(".localhost"),
        Some(url::Host::Ipv4(ip)) => IpAddr::V4(ip).is_loopback(),
        Some(url::Host::Ipv6(ip)) => IpAddr::V6(ip).is_loopback(),
        None => false,
    }
}

/// `rgb(r, g, b)` with each part 0–255: the only colour syntax Wallet reads.
pub fn is_rgb(s: &str) -> bool {
    let Some(inner) = s.trim().strip_prefix("rgb(").and_then(|r| r.strip_suffix(')')) else { return false };
    let parts: Vec<&str> = inner.split(',').map(str::trim).collect();
    parts.len() == 3 && parts.iter().all(|p| !p.is_empty() && p.len() <= 3 && p.parse::<u8>().is_ok())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn good() -> Value {
        json!({
            "formatVersion": 1,
            "passTypeIdentifier": "pass.com.example.loyalty",
            "teamIdentifier": "A1B2C3D4E5",
            "serialNumber": "abc",
            "organizationName": "Coffee",
            "description": "Coffee card",
            "authenticationToken": "0123456789abcdef0123",
            "webServiceURL": "https://loyalty.example.com/passkit",
            "backgroundColor": "rgb(28, 43, 74)",
            "storeCard": {"primaryFields": [{"key": "balance", "label": "Balance", "value": 100}]},
            "barcodes": [{"format": "PKBarcodeFormatQR", "message": "X", "messageEncoding": "iso-8859-1"}]
        })
    }

    fn messages(pass: &Value, mode: Mode) -> Vec<String> {
        check_pass_json(pass, mode).into_iter().map(|p| p.message).collect()
    }

    #[test]
    fn a_complete_pass_has_no_problems() {
        assert_eq!(check_pass_json(&good(), Mode::Wallet), []);
    }

    #[test]
    fn each_broken_rule_is_named() {
        let cases: &[(&str, Value, &str)] = &[
            ("formatVersion", json!(2), "`formatVersion` must be the number 1"),
            ("backgroundColor", json!("#ff0000"), "`backgroundColor` must be a colour"),
            ("authenticationToken", json!("short"), "at least 16 characters"),
            ("webServiceURL", json!("http://example.com/passkit"), "must use https"),
            ("barcodes", json!([{"format": "QR", "message": "x", "messageEncoding": "utf-8"}]), "barcodes[0].format"),
            ("barcodes", json!([{"format": "PKBarcodeFormatQR", "message": "x"}]), "messageEncoding` is missing"),
            ("coupon", json!({}), "several pass styles"),
        ];
        for (key, value, expected) in cases {
            let mut pass = good();
            pass[*key] = value.clone();
            let found = messages(&pass, Mode::Wallet);
            assert!(found.iter().any(|m| m.contains(expected)), "{key}: {found:?}");
        }
        let mut pass = good();
        pass.as_object_mut().unwrap().remove("serialNumber");
        assert_eq!(messages(&pass, Mode::Wallet), ["pass.json: `serialNumber` is missing"]);
    }

    #[test]
    fn plain_http_is_a_warning_on_loopback_and_allowed_while_building() {
        let mut pass = good();
        pass["webServiceURL"] = json!("http://127.0.0.1:8080/passkit");
        let problems = check_pass_json(&pass, Mode::Wallet);
        assert_eq!(problems.len(), 1);
        assert_eq!(problems[0].severity, Severity::Warning);
        pass["webServiceURL"] = json!("http://localhost:8080/passkit");
        assert_eq!(check_pass_json(&pass, Mode::Wallet)[0].severity, Severity::Warning);
        pass["webServiceURL"] = json!("http://192.168.1.5:8080/passkit");
        assert_eq!(check_pass_json(&pass, Mode::Wallet)[0].severity, Severity::Error);
        assert_eq!(check_pass_json(&pass, Mode::Build), []);
    }

    #[test]
    fn colours_are_rgb_triples() {
        assert!(is_rgb("rgb(0, 0, 0)"));
        assert!(is_rgb("rgb(255,255,255)"));
        assert!(!is_rgb("rgb(256, 0, 0)"));
        assert!(!is_rgb("rgb(1, 2)"));
        assert!(!is_rgb("rgba(1, 2, 3, 4)"));
    }
}
