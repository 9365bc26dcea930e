//! Checks request bodies against the Wallet API's discovery document, as Google would.
//!
//! `tests/fixtures/walletobjects.v1.discovery.json` is Google's discovery document for the API
//! (from `https://walletobjects.googleapis.com/$discovery/rest?version=v1`). Every field of a
//! body must be a property of its schema, with the right JSON type, an allowed enum value and,
//! recursively, a valid value for `$ref`s, arrays and maps. Deprecated fields count as mistakes
//! too: loy should not rely on them. On insert, the fields the document marks "Required." must
//! be there.

use std::sync::OnceLock;

use serde_json::{Map, Value};

fn schemas() -> &'static Map<String, Value> {
    static SCHEMAS: OnceLock<Map<String, Value>> = OnceLock::new();
    SCHEMAS.get_or_init(|| {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/walletobjects.v1.discovery.json");
        let text = std::fs::read_to_string(path).expect("the discovery document is in tests/fixtures");
        let doc: Value = serde_json::from_str(&text).expect("the discovery document is JSON");
        doc["schemas"].as_object().expect("the document has schemas").clone()
    })
}

/// Every mistake in `body` as a request of schema `name` (empty when it is valid). With
/// `insert`, the fields marked "Required." at the top level must be present.
pub fn validate(name: &str, body: &Value, insert: bool) -> Vec<String> {
    let mut errors = Vec::new();
    let schema = &schemas()[name];
    check_schema(schema, body, name, &mut errors);
    if insert {
        if let (Some(properties), Some(object)) = (schema["properties"].as_object(), body.as_object()) {
            for (field, spec) in properties {
                let required = spec["description"].as_str().is_some_and(|d| d.starts_with("Required."));
                if required && !object.contains_key(field) {
                    errors.push(format!("{name}.{field} is required"));
                }
            }
        }
    }
    errors
}

fn check_schema(schema: &Value, value: &Value, path: &str, errors: &mut Vec<String>) {
    let Some(object) = value.as_object() else {
        errors.push(format!("{path} must be an object, not {value}"));
        return;
    };
    let properties = schema["properties"].as_object();
    for (field, field_value) in object {
        let here = format!("{path}.{field}");
        match properties.and_then(|p| p.get(field)) {
            None => errors.push(format!("{here} is not a field of {}", schema["id"].as_str().unwrap_or("this object"))),
            Some(spec) if spec["deprecated"] == Value::Bool(true) => errors.push(format!("{here} is deprecated")),
            Some(spec) => check_value(spec, field_value, &here, errors),
        }
    }
}

fn check_value(spec: &Value, value: &Value, path: &str, errors: &mut Vec<String>) {
    if let Some(reference) = spec["$ref"].as_str() {
        let schema = schemas().get(reference).unwrap_or_else(|| panic!("unknown schema {reference}"));
        return check_schema(schema, value, path, errors);
    }
    let kind = spec["type"].as_str().unwrap_or("");
    let format = spec["format"].as_str();
    let ok = match kind {
        "string" => match (value.as_str(), format) {
            (None, _) => false,
            (Some(s), Some("int64")) => s.parse::<i64>().is_ok(),
            (Some(s), Some("uint64")) => s.parse::<u64>().is_ok(),
            (Some(_), _) => true,
        },
        "integer" => match format {
            Some("int32") => value.as_i64().is_some_and(|n| i32::try_from(n).is_ok()),
            Some("uint32") => value.as_u64().is_some_and(|n| u32::try_from(n).is_ok()),
            _ => value.is_i64() || value.is_u64(),
        },
        "number" => value.is_number(),
        "boolean" => value.is_boolean(),
        "array" => match value.as_array() {
            None => false,
            Some(items) => {
                for (i, item) in items.iter().enumerate() {
                    check_value(&spec["items"], item, &format!("{path}[{i}]"), errors);
                }
                true
            }
        },
        "object" if spec.get("additionalProperties").is_some() => match value.as_object() {
            None => false,
            Some(map) => {
                for (key, item) in map {
                    check_value(&spec["additionalProperties"], item, &format!("{path}.{key}"), errors);
                }
                true
            }
        },
        "object" => {
            check_schema(spec, value, path, errors);
            true
        }
        other => panic!("the validator does not know the type `{other}` at {path}"),
    };
    if !ok {
        errors.push(format!(
            "{path} must be a {kind}{}, not {value}",
            format.map(|f| format!(" ({f})")).unwrap_or_default()
        ));
        return;
    }
    if let Some(allowed) = spec["enum"].as_array() {
        if !allowed.contains(value) {
            errors.push(format!("{path} is {value}, not one of the allowed values"));
        }
    }
}

#[test]
fn the_validator_catches_unknown_fields_wrong_types_bad_enums_and_missing_required_fields() {
    let body = serde_json::json!({
        "id": "1.x",
        "classId": "1.c",
        "state": "SHINY",
        "loyaltyPoints": {"balance": {"int": "100"}, "colour": "red"},
        "barcode": {"type": "QR_CODE", "value": 5},
        "kind": "walletobjects#loyaltyObject",
        "textModulesData": [{"header": "h", "body": ["not a string"]}],
    });
    let errors = validate("LoyaltyObject", &body, true);
    let expected = [
        "LoyaltyObject.state is \"SHINY\"",
        "LoyaltyObject.loyaltyPoints.balance.int must be a integer (int32)",
        "LoyaltyObject.loyaltyPoints.colour is not a field of LoyaltyPoints",
        "LoyaltyObject.barcode.value must be a string",
        "LoyaltyObject.kind is deprecated",
        "LoyaltyObject.textModulesData[0].body must be a string",
    ];
    for e in expected {
        assert!(errors.iter().any(|got| got.starts_with(e)), "missing {e:?} in {errors:#?}");
    }
    assert_eq!(errors.len(), expected.len(), "{errors:#?}");
    let missing = validate("LoyaltyClass", &serde_json::json!({"id": "1.c"}), true);
    assert!(missing.contains(&"LoyaltyClass.programLogo is required".to_owned()), "{missing:?}");
    assert!(validate("LoyaltyClass", &serde_json::json!({"id": "1.c"}), false).is_empty());
}
