//! The JSON enrollment API tells a new phone (201) from a registered one (202), so only an
//! integration holding an API key may call it; a stranger gets 401 and learns nothing.

use serde_json::{Value, json};

use crate::helpers::{StoreKind, spawn_app, unique_phone};

async fn a_stranger_cannot_ask_the_api_whether_a_phone_is_registered(kind: StoreKind) {
    let app = spawn_app(kind).await;
    let phone = unique_phone();
    app.enroll("Anna", &phone).await;
    let body = json!({"first_name": "Eve", "phone": phone, "consent": true});
    for auth in [None, Some("Bearer loy_nosuchkey_0123456789abcdef"), Some("Basic YTpi")] {
        let mut request = app.client.post(app.url("/api/v1/enrollments")).json(&body);
        if let Some(value) = auth {
            request = request.header("authorization", value);
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), 401, "{auth:?}");
        let error: Value = response.json().await.unwrap();
        assert_eq!(error["error"]["code"], "unauthorized", "{auth:?}");
    }
    // With a key of either scope the integration gets its answer.
    let admin = app.api_key(loy::domain::Scope::Admin).await;
    let known = app.client.post(app.url("/api/v1/enrollments")).bearer_auth(&admin).json(&body).send().await.unwrap();
    assert_eq!(known.status(), 202);
    // An anonymous request for a new phone creates nothing either.
    let new_phone = unique_phone();
    let fresh = json!({"first_name": "Eve", "phone": new_phone, "consent": true});
    let anonymous = app.client.post(app.url("/api/v1/enrollments")).json(&fresh).send().await.unwrap();
    assert_eq!(anonymous.status(), 401);
    assert_eq!(app.post_enrollment(&fresh).await.status(), 201, "201, not 202: the refused request made no card");
}

crate::on_both_stores!(a_stranger_cannot_ask_the_api_whether_a_phone_is_registered);
