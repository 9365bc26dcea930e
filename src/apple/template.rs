//! The card design: a `pass.json` template with `{{placeholders}}`, images and `.lproj` strings.
//!
//! The template is plain JSON, so placeholders can only ever produce JSON values: a string that
//! is exactly `"{{balance}}"` becomes the typed value (a number for the balance), and
//! placeholders inside longer strings are replaced by text. A field whose value comes out empty
//! (no contacts, no last transaction yet) is left out. loy sets the identity keys
//! (`serialNumber`, `authenticationToken`, …) itself.
//!
//! A template is checked completely when it is loaded — files, placeholders, strings, images,
//! and a pass rendered from a sample card checked against Wallet's rules — so a broken design
//! stops start-up with a clear message instead of producing passes Wallet refuses.

use std::path::Path;

use include_dir::{Dir, include_dir};
use serde_json::Value;

use super::bundle::sha1_hex;
use super::rules::{self, FIELD_GROUPS, Mode, STYLES, Severity};
use super::strings;

/// The built-in design, embedded in the binary.
static DEFAULT: Dir<'static> = include_dir!("$CARGO_MANIFEST_DIR/templates/default");

/// Names a template may use, with what they hold.
pub const PLACEHOLDERS: &[&str] = &[
    "program_name",
    "logo_text",
    "balance_label",
    "tier_label",
    "member_label",
    "card_number_label",
    "terms_url",
    "member_name",
    "tier",
    "balance",
    "card_number",
    "barcode",
    "serial_number",
    "background_color",
    "foreground_color",
    "label_color",
    "terms",
    "how_to_earn",
    "contacts",
    "last_transaction",
    "last_transaction_label",
    "last_transaction_date",
    "referral_code",
    "referral_link",
];

/// Keys loy sets for every card; a template that sets them is refused so nobody wonders why
/// their value is ignored.
const RESERVED: &[&str] =
    &["passTypeIdentifier", "teamIdentifier", "serialNumber", "authenticationToken", "webServiceURL"];

/// The largest template loy accepts (Wallet handles passes of a few MB badly on old phones).
const MAX_TEMPLATE_BYTES: usize = 8 * 1024 * 1024;

const PNG_SIGNATURE: &[u8] = b"\x89PNG\r\n\x1a\n";

/// A file copied into every pass as it is, with its SHA-1 computed once.
#[derive(Debug, Clone)]
pub struct StaticFile {
    pub name: String,
    pub bytes: Vec<u8>,
    pub sha1: String,
    /// Images are already compressed: they are stored, everything else is deflated.
    pub stored: bool,
}

/// A loaded, checked card design.
#[derive(Debug)]
pub struct Template {
    /// Where it came from, for messages: "built-in" or the directory.
    pub source: String,
    pass: Value,
    /// Sorted by name, so every pass lists them in the same order.
    pub files: Vec<StaticFile>,
}

/// A template cannot be used; the message says which file and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("card template {origin}: {message}")]
pub struct TemplateError {
    pub origin: String,
    pub message: String,
}

/// The values a card fills into the template (see [`PLACEHOLDERS`]).
pub type Values = std::collections::HashMap<&'static str, Value>;

impl Template {
    /// The built-in design from `templates/default`.
    pub fn builtin() -> Result<Self, TemplateError> {
        let mut files = Vec::new();
        collect_embedded(&DEFAULT, &mut files);
        Self::from_files("built-in".to_owned(), files)
    }

    /// A design from a directory (`LOY_APPLE_TEMPLATE`).
    pub fn from_dir(dir: &Path) -> Result<Self, TemplateError> {
        let source = dir.display().to_string();
        let fail = |message: String| TemplateError { origin: source.clone(), message };
        let mut files = Vec::new();
        let entries = std::fs::read_dir(dir).map_err(|e| fail(format!("cannot read the directory ({e})")))?;
        for entry in entries {
            let entry = entry.map_err(|e| fail(format!("cannot read the directory ({e})")))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            let path = entry.path();
            if path.is_dir() {
                if !name.ends_with(".lproj") {
                    return Err(fail(format!("{name}/: only `xx.lproj` folders may be in a template")));
                }
                for inner in std::fs::read_dir(&path).map_err(|e| fail(format!("cannot read {name}/ ({e})")))? {
                    let inner = inner.map_err(|e| fail(format!("cannot read {name}/ ({e})")))?;
                    let inner_name = format!("{name}/{}", inner.file_name().to_string_lossy());
                    if inner.path().is_dir() {
                        return Err(fail(format!("{inner_name}/: folders inside .lproj are not allowed")));
                    }
                    let bytes =
                        std::fs::read(inner.path()).map_err(|e| fail(format!("cannot read {inner_name} ({e})")))?;
                    files.push((inner_name, bytes));
                }
            } else if !name.starts_with('.') {
                let bytes = std::fs::read(&path).map_err(|e| fail(format!("cannot read {name} ({e})")))?;
                files.push((name, bytes));
            }
        }
        Self::from_files(source, files)
    }

    /// Checks and assembles a template from its files (`name` relative, `/` separated).
    pub fn from_files(source: String, mut files: Vec<(String, Vec<u8>)>) -> Result<Self, TemplateError> {
        let fail = |message: String| TemplateError { origin: source.clone(), message };
        files.sort_by(|a, b| a.0.cmp(&b.0));
        let total: usize = files.iter().map(|(_, b)| b.len()).sum();
        if total > MAX_TEMPLATE_BYTES {
            return Err(fail(format!(
                "the files take {} KB; keep a card under {} KB",
                total / 1024,
                MAX_TEMPLATE_BYTES / 1024
            )));
        }
        let mut pass = None;
        let mut statics = Vec::new();
        for (name, bytes) in files {
            check_file_name(&name).map_err(&fail)?;
            if name == "pass.json" {
                let text = std::str::from_utf8(&bytes).map_err(|_| fail("pass.json is not UTF-8 text".to_owned()))?;
                let value: Value =
                    serde_json::from_str(text).map_err(|e| fail(format!("pass.json is not valid JSON: {e}")))?;
                pass = Some(value);
                continue;
            }
            if name.ends_with(".png") {
                png_size(&bytes).ok_or_else(|| fail(format!("{name} is not a PNG image")))?;
            }
            if name.ends_with(".strings") {
                let text = std::str::from_utf8(&bytes).map_err(|_| fail(format!("{name} is not UTF-8 text")))?;
                strings::parse(text).map_err(|e| fail(format!("{name}: {e}")))?;
            }
            let stored = name.ends_with(".png");
            statics.push(StaticFile { sha1: sha1_hex(&bytes), name, bytes, stored });
        }
        let pass = pass.ok_or_else(|| fail("pass.json is missing".to_owned()))?;
        if !statics.iter().any(|f| f.name == "icon.png") {
            return Err(fail("icon.png is missing (Wallet refuses a pass without an icon)".to_owned()));
        }
        let object = pass.as_object().ok_or_else(|| fail("pass.json is not a JSON object".to_owned()))?;
        if let Some(key) = RESERVED.iter().find(|k| object.contains_key(**k)) {
            return Err(fail(format!("pass.json sets `{key}`, which loy sets for every card: remove it")));
        }
        check_placeholders(&pass, "").map_err(&fail)?;
        let template = Template { source: source.clone(), pass, files: statics };
        template.check_sample().map_err(fail)?;
        Ok(template)
    }

    /// Renders `pass.json` for `values` (without the identity keys).
    pub fn render(&self, values: &Values) -> Value {
        let mut pass = substitute(&self.pass, values);
        drop_empty_fields(&mut pass);
        pass
    }

    /// Renders a made-up card and checks the result against Wallet's rules.
    fn check_sample(&self) -> Result<(), String> {
        let mut pass = self.render(&sample_values());
        if let Some(object) = pass.as_object_mut() {
            for (key, value) in [
                ("formatVersion", Value::from(1)),
                ("passTypeIdentifier", Value::from("pass.com.example.loyalty")),
                ("teamIdentifier", Value::from("A1B2C3D4E5")),
                ("serialNumber", Value::from("sample")),
                ("authenticationToken", Value::from("0123456789abcdef0123456789abcdef")),
                ("webServiceURL", Value::from("https://loyalty.example.com/passkit")),
            ] {
                object.insert(key.to_owned(), value);
            }
        }
        let problems: Vec<String> = rules::check_pass_json(&pass, Mode::Build)
            .into_iter()
            .filter(|p| p.severity == Severity::Error)
            .map(|p| p.message)
            .collect();
        if problems.is_empty() {
            Ok(())
        } else {
            Err(format!("a card rendered from it is invalid: {}", problems.join("; ")))
        }
    }
}

fn collect_embedded(dir: &Dir<'static>, out: &mut Vec<(String, Vec<u8>)>) {
    for file in dir.files() {
        out.push((file.path().to_string_lossy().replace('\\', "/"), file.contents().to_vec()));
    }
    for sub in dir.dirs() {
        collect_embedded(sub, out);
    }
}

fn check_file_name(name: &str) -> Result<(), String> {
    let ok_part = |p: &str| {
        !p.is_empty() && !p.starts_with('.') && p.chars().all(|c| c.is_ascii_alphanumeric() || "@._-".contains(c))
    };
    let parts: Vec<&str> = name.split('/').collect();
    let shaped = match parts.as_slice() {
        [file] => ok_part(file),
        [folder, file] => folder.ends_with(".lproj") && ok_part(folder) && ok_part(file),
        _ => false,
    };
    if !shaped {
        return Err(format!(
            "`{name}`: file names use letters, digits, '@', '.', '_', '-', at most inside one xx.lproj folder"
        ));
    }
    if name == "manifest.json" || name == "signature" {
        return Err(format!("{name} is made by loy for every pass: remove it from the template"));
    }
    Ok(())
}

/// The width and height of a PNG image, read from its header.
pub fn png_size(bytes: &[u8]) -> Option<(u32, u32)> {
    if bytes.len() < 24 || !bytes.starts_with(PNG_SIGNATURE) || &bytes[12..16] != b"IHDR" {
        return None;
    }
    let word = |at: usize| u32::from_be_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]]);
    Some((word(16), word(20)))
}

/// Every `{{name}}` in a string: `(start, end, name)` with `end` past the closing braces.
fn placeholders(s: &str) -> Vec<(usize, usize, &str)> {
    let mut found = Vec::new();
    let mut from = 0;
    while let Some(open) = s[from..].find("{{").map(|i| from + i) {
        let Some(close) = s[open + 2..].find("}}").map(|i| open + 2 + i) else { break };
        found.push((open, close + 2, s[open + 2..close].trim()));
        from = close + 2;
    }
    found
}

fn check_placeholders(value: &Value, at: &str) -> Result<(), String> {
    match value {
        Value::String(s) => {
            for (_, _, name) in placeholders(s) {
                if !PLACEHOLDERS.contains(&name) {
                    let place = if at.is_empty() { "pass.json".to_owned() } else { format!("pass.json `{at}`") };
                    return Err(format!(
                        "{place}: unknown placeholder {{{{{name}}}}} (known: {})",
                        PLACEHOLDERS.join(", ")
                    ));
                }
            }
            Ok(())
        }
        Value::Array(items) => {
            items.iter().enumerate().try_for_each(|(i, item)| check_placeholders(item, &format!("{at}[{i}]")))
        }
        Value::Object(map) => map
            .iter()
            .try_for_each(|(k, v)| check_placeholders(v, &if at.is_empty() { k.clone() } else { format!("{at}.{k}") })),
        _ => Ok(()),
    }
}

fn text_of(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

fn substitute(value: &Value, values: &Values) -> Value {
    match value {
        Value::String(s) => {
            let found = placeholders(s);
            if found.is_empty() {
                return value.clone();
            }
            if let [(0, end, name)] = found.as_slice() {
                if *end == s.len() {
                    return values.get(name).cloned().unwrap_or(Value::from(""));
                }
            }
            let mut out = String::with_capacity(s.len() + 32);
            let mut last = 0;
            for (start, end, name) in found {
                out.push_str(&s[last..start]);
                out.push_str(&values.get(name).map(text_of).unwrap_or_default());
                last = end;
            }
            out.push_str(&s[last..]);
            Value::String(out)
        }
        Value::Array(items) => Value::Array(items.iter().map(|v| substitute(v, values)).collect()),
        Value::Object(map) => Value::Object(map.iter().map(|(k, v)| (k.clone(), substitute(v, values))).collect()),
        other => other.clone(),
    }
}

/// Leaves out fields whose value came out empty, so the back of the card has no blank rows.
fn drop_empty_fields(pass: &mut Value) {
    for style in STYLES {
        let Some(groups) = pass.get_mut(*style).and_then(Value::as_object_mut) else { continue };
        for group in FIELD_GROUPS {
            if let Some(Value::Array(fields)) = groups.get_mut(*group) {
                fields.retain(|f| !matches!(f.get("value"), Some(Value::String(s)) if s.is_empty()));
            }
        }
    }
}

/// Values of an imaginary card, to check a template with.
fn sample_values() -> Values {
    let mut v = Values::new();
    for (name, value) in [
        ("program_name", Value::from("Sample Coffee")),
        ("logo_text", Value::from("Sample Coffee")),
        ("balance_label", Value::from("BALANCE")),
        ("tier_label", Value::from("TIER")),
        ("member_label", Value::from("MEMBER")),
        ("card_number_label", Value::from("CARD_NUMBER")),
        ("terms_url", Value::from("https://loyalty.example.com/terms")),
        ("member_name", Value::from("Anna I.")),
        ("tier", Value::from("Silver")),
        ("balance", Value::from(1250)),
        ("card_number", Value::from("4000 1234 5678 9010")),
        ("barcode", Value::from("ABCDEFGHJKLMNPQRSTUV")),
        ("serial_number", Value::from("sample")),
        ("background_color", Value::from("rgb(28, 43, 74)")),
        ("foreground_color", Value::from("rgb(255, 255, 255)")),
        ("label_color", Value::from("rgb(244, 196, 98)")),
        ("terms", Value::from("TERMS_TEXT")),
        ("how_to_earn", Value::from("HOW_TO_EARN_TEXT")),
        ("contacts", Value::from("")),
        ("last_transaction", Value::from("+100")),
        ("last_transaction_label", Value::from("TX_EARN")),
        ("last_transaction_date", Value::from("2025-06-01T12:00:00Z")),
        ("referral_code", Value::from("K7QW2MXD")),
        ("referral_link", Value::from("https://loyalty.example.com/?ref=K7QW2MXD")),
    ] {
        v.insert(name, value);
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    type Files = Vec<(String, Vec<u8>)>;

    /// The built-in files with `name` replaced by (or added as) `bytes`; `None` removes it.
    fn changed(name: &str, bytes: Option<&[u8]>) -> Files {
        let mut files: Files = builtin_files().into_iter().filter(|(n, _)| n != name).collect();
        if let Some(bytes) = bytes {
            files.push((name.to_owned(), bytes.to_vec()));
        }
        files
    }

    fn builtin_files() -> Files {
        let mut files = Vec::new();
        collect_embedded(&DEFAULT, &mut files);
        files
    }

    fn with_pass_json(text: &str) -> Files {
        changed("pass.json", Some(text.as_bytes()))
    }

    #[test]
    fn the_builtin_design_loads_with_images_at_three_scales_and_two_languages() {
        let t = Template::builtin().unwrap();
        let names: Vec<&str> = t.files.iter().map(|f| f.name.as_str()).collect();
        for expected in [
            "icon.png",
            "icon@2x.png",
            "icon@3x.png",
            "logo@3x.png",
            "strip@2x.png",
            "en.lproj/pass.strings",
            "ru.lproj/pass.strings",
        ] {
            assert!(names.contains(&expected), "{expected} in {names:?}");
        }
        let icon = t.files.iter().find(|f| f.name == "icon@2x.png").unwrap();
        assert_eq!(png_size(&icon.bytes), Some((58, 58)));
        let strip = t.files.iter().find(|f| f.name == "strip@3x.png").unwrap();
        assert_eq!(png_size(&strip.bytes), Some((1125, 369)));
        assert!(icon.stored && !t.files.iter().find(|f| f.name.ends_with(".strings")).unwrap().stored);
    }

    #[test]
    fn placeholders_become_typed_values_and_empty_fields_disappear() {
        let t = Template::builtin().unwrap();
        let mut values = sample_values();
        values.insert("contacts", Value::from(""));
        let pass = t.render(&values);
        assert_eq!(pass["storeCard"]["primaryFields"][0]["value"], Value::from(1250));
        assert_eq!(pass["barcodes"][0]["message"], "ABCDEFGHJKLMNPQRSTUV");
        assert_eq!(pass["barcodes"][0]["altText"], "4000 1234 5678 9010");
        let back: Vec<&str> =
            pass["storeCard"]["backFields"].as_array().unwrap().iter().map(|f| f["key"].as_str().unwrap()).collect();
        assert!(!back.contains(&"contacts"), "{back:?}");
        assert!(back.contains(&"terms"));
    }

    #[test]
    fn text_around_placeholders_is_kept_and_quotes_cannot_break_out() {
        let mut values = Values::new();
        values.insert("member_name", Value::from("Anna \"},{\"x"));
        values.insert("balance", Value::from(5));
        let rendered = substitute(&Value::from("Hi {{ member_name }}, you have {{balance}} points"), &values);
        assert_eq!(rendered, Value::from("Hi Anna \"},{\"x, you have 5 points"));
    }

    #[test]
    fn broken_templates_are_refused_with_a_clear_message() {
        let cases: Vec<(Files, &str)> = vec![
            (with_pass_json("{ not json"), "pass.json is not valid JSON"),
            (with_pass_json(r#"{"storeCard": {}, "serialNumber": "x"}"#), "pass.json sets `serialNumber`"),
            (
                with_pass_json(r#"{"storeCard": {"primaryFields": [{"key": "b", "value": "{{points}}"}]}}"#),
                "unknown placeholder {{points}}",
            ),
            (with_pass_json(r#"{"description": "d", "organizationName": "o"}"#), "no pass style"),
            (
                with_pass_json(
                    r#"{"description": "d", "organizationName": "o", "backgroundColor": "red", "storeCard": {}}"#,
                ),
                "`backgroundColor` must be a colour",
            ),
            (changed("icon.png", None), "icon.png is missing"),
            (changed("pass.json", None), "pass.json is missing"),
            (changed("logo@2x.png", Some(b"GIF89a")), "logo@2x.png is not a PNG image"),
            (changed("de.lproj/pass.strings", Some(b"\"A\" = ")), "de.lproj/pass.strings: line 1"),
            (changed("signature", Some(&[1])), "signature is made by loy"),
            (changed("../x.png", Some(&[1])), "file names use"),
        ];
        for (files, expected) in cases {
            let err = Template::from_files("test".into(), files).unwrap_err();
            assert!(err.to_string().contains(expected), "expected {expected:?} in {err}");
            assert!(err.to_string().starts_with("card template test: "));
        }
    }

    #[test]
    fn a_template_directory_loads_like_the_builtin_one() {
        let dir = tempfile::tempdir().unwrap();
        for (name, bytes) in builtin_files() {
            let path = dir.path().join(&name);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, bytes).unwrap();
        }
        let t = Template::from_dir(dir.path()).unwrap();
        assert_eq!(t.files.len(), Template::builtin().unwrap().files.len());
        std::fs::create_dir(dir.path().join("images")).unwrap();
        let err = Template::from_dir(dir.path()).unwrap_err();
        assert!(err.message.contains("images/: only `xx.lproj` folders"), "{err}");
    }
}
