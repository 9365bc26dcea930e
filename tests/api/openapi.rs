//! The OpenAPI document matches the application: every documented operation is routed, and
//! real responses validate against the documented schemas.

use loy::domain::Scope;
use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{Answer, StoreKind, spawn_app};

/// A small JSON-schema check for the subset the document uses: `$ref`, `type` (also as a list),
/// `properties`, `required`, `additionalProperties: false`, `items`, `enum`, `const`.
pub fn validate(doc: &Value, schema: &Value, value: &Value, path: &str) -> Vec<String> {
    if let Some(reference) = schema.get("$ref").and_then(Value::as_str) {
        let name = reference.trim_start_matches("#/components/schemas/");
        return validate(doc, &doc["components"]["schemas"][name], value, path);
    }
    let mut errors = Vec::new();
    let types: Vec<&str> = match &schema["type"] {
        Value::String(t) => vec![t.as_str()],
        Value::Array(ts) => ts.iter().filter_map(Value::as_str).collect(),
        _ => vec![],
    };
    let type_of = |v: &Value| match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    };
    let actual = type_of(value);
    if !types.is_empty() && !types.iter().any(|t| *t == actual || (*t == "number" && actual == "integer")) {
        errors.push(format!("{path}: expected {types:?}, got {actual}"));
        return errors;
    }
    if let Some(allowed) = schema.get("enum").and_then(Value::as_array) {
        if !allowed.contains(value) {
            errors.push(format!("{path}: {value} is not one of {allowed:?}"));
        }
    }
    if let Some(constant) = schema.get("const") {
        if constant != value {
            errors.push(format!("{path}: {value} is not {constant}"));
        }
    }
    if let Value::Object(map) = value {
        let properties = schema.get("properties").and_then(Value::as_object);
        for required in schema.get("required").and_then(Value::as_array).into_iter().flatten() {
            if !map.contains_key(required.as_str().unwrap()) {
                errors.push(format!("{path}: missing required {required}"));
            }
        }
        for (key, item) in map {
            match properties.and_then(|p| p.get(key)) {
                Some(property) => errors.extend(validate(doc, property, item, &format!("{path}.{key}"))),
                None if schema.get("additionalProperties") == Some(&Value::Bool(false)) => {
                    errors.push(format!("{path}: {key} is not documented"))
                }
                None => {}
            }
        }
    }
    if let (Value::Array(items), Some(item_schema)) = (value, schema.get("items")) {
        for (i, item) in items.iter().enumerate() {
            errors.extend(validate(doc, item_schema, item, &format!("{path}[{i}]")));
        }
    }
    errors
}

fn assert_documented(doc: &Value, path: &str, method: &str, answer: &Answer) {
    let status = answer.status.to_string();
    let response = &doc["paths"][path][method]["responses"][&status];
    assert!(response.is_object(), "{method} {path} answered {status}, which is not documented");
    let schema = &response["content"]["application/json"]["schema"];
    let errors = validate(doc, schema, &answer.body, "body");
    assert!(errors.is_empty(), "{method} {path} {status}: {errors:?}\n{}", answer.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_openapi_document_describes_the_real_api() {
    let app = spawn_app(StoreKind::Embedded).await;
    let doc: Value = app.get("/api/openapi.json").await.json().await.unwrap();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    let card_schema = json!({"$ref": "#/components/schemas/Card"});
    assert!(
        !validate(&doc, &card_schema, &json!({"balance": "12", "extra": 1}), "body").is_empty(),
        "the check can fail"
    );
    let pos = app.api_key(Scope::Pos).await;
    let admin = app.api_key(Scope::Admin).await;

    // Every documented operation exists (the router would answer 404/405 with its own codes).
    for (path, operations) in doc["paths"].as_object().unwrap() {
        for method in operations.as_object().unwrap().keys() {
            let concrete = path.replace("{id}", "NOSUCHTHING");
            let answer =
                app.pos(method.to_uppercase().parse().unwrap(), &concrete, Some(&admin), Some("probe"), None).await;
            let routed = answer.status != 405 && answer.body["error"]["message"] != "No such API endpoint.";
            assert!(routed, "{method} {path} is documented but not routed: {answer:?}");
        }
    }

    let enrolled = app
        .pos(
            Method::POST,
            "/api/v1/enrollments",
            Some(&pos),
            None,
            Some(&json!({"first_name": "Anna", "phone": "+79120001234", "consent": true})),
        )
        .await;
    assert_documented(&doc, "/api/v1/enrollments", "post", &enrolled);
    let again = app
        .pos(
            Method::POST,
            "/api/v1/enrollments",
            Some(&pos),
            None,
            Some(&json!({"first_name": "Anna", "phone": "+79120001234", "consent": true})),
        )
        .await;
    assert_documented(&doc, "/api/v1/enrollments", "post", &again);
    let invalid =
        app.pos(Method::POST, "/api/v1/enrollments", Some(&pos), None, Some(&json!({"first_name": "Anna"}))).await;
    assert_documented(&doc, "/api/v1/enrollments", "post", &invalid);

    let number = enrolled.body["card"]["card_number"].as_str().unwrap().to_owned();
    assert_documented(&doc, "/api/v1/cards/{id}", "get", &app.pos_get(&format!("/api/v1/cards/{number}"), &pos).await);
    assert_documented(&doc, "/api/v1/cards", "get", &app.pos_get("/api/v1/cards?phone=%2B79120001234", &pos).await);
    assert_documented(&doc, "/api/v1/cards/{id}", "get", &app.pos_get("/api/v1/cards/NOPE", &pos).await);
    let earned = app
        .pos_post(format!("/api/v1/cards/{number}/earn"), &pos, json!({"purchase_amount": 500_000, "order_id": "A1"}))
        .await;
    assert_documented(&doc, "/api/v1/cards/{id}/earn", "post", &earned);
    let redeemed = app
        .pos_post(format!("/api/v1/cards/{number}/redeem"), &pos, json!({"points": 200, "purchase_amount": 100_000}))
        .await;
    assert_documented(&doc, "/api/v1/cards/{id}/redeem", "post", &redeemed);
    let refused = app.pos_post(format!("/api/v1/cards/{number}/redeem"), &pos, json!({"points": 5})).await;
    assert_documented(&doc, "/api/v1/cards/{id}/redeem", "post", &refused);
    let adjusted = app
        .pos_post(format!("/api/v1/cards/{number}/adjust"), &admin, json!({"points": 7, "reason": "goodwill"}))
        .await;
    assert_documented(&doc, "/api/v1/cards/{id}/adjust", "post", &adjusted);
    let forbidden =
        app.pos_post(format!("/api/v1/cards/{number}/adjust"), &pos, json!({"points": 7, "reason": "x"})).await;
    assert_documented(&doc, "/api/v1/cards/{id}/adjust", "post", &forbidden);
    let reversed = app
        .pos_post(
            format!("/api/v1/transactions/{}/reverse", earned.body["transaction_id"].as_str().unwrap()),
            &pos,
            json!({"reason": "refund"}),
        )
        .await;
    assert_documented(&doc, "/api/v1/transactions/{id}/reverse", "post", &reversed);
    let page = app.pos_get(&format!("/api/v1/cards/{number}/transactions?limit=2"), &pos).await;
    assert_documented(&doc, "/api/v1/cards/{id}/transactions", "get", &page);
    assert_documented(
        &doc,
        "/api/v1/cards/{id}/block",
        "post",
        &app.pos_post(format!("/api/v1/cards/{number}/block"), &admin, json!({})).await,
    );
    let blocked = app.pos_post(format!("/api/v1/cards/{number}/earn"), &pos, json!({"purchase_amount": 100})).await;
    assert_documented(&doc, "/api/v1/cards/{id}/earn", "post", &blocked);
    assert_documented(
        &doc,
        "/api/v1/cards/{id}/unblock",
        "post",
        &app.pos_post(format!("/api/v1/cards/{number}/unblock"), &admin, json!({})).await,
    );
    let unauthenticated = app.pos(Method::GET, &format!("/api/v1/cards/{number}"), None, None, None).await;
    assert_documented(&doc, "/api/v1/cards/{id}", "get", &unauthenticated);
    assert_documented(&doc, "/healthz", "get", &app.pos(Method::GET, "/healthz", None, None, None).await);
    assert_documented(
        &doc,
        "/readyz",
        "get",
        &app.pos(Method::GET, "/readyz", Some(crate::helpers::METRICS_TOKEN), None, None).await,
    );
}
