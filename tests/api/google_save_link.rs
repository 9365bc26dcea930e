//! The card page's "Add to Google Wallet" button and the save link behind it.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};

use crate::google_fake::{
    CLIENT_EMAIL, FakeGoogle, ISSUER_ID, TestKey, class_id, object_id, openssl_stdin, spawn_app_with_google,
};
use crate::helpers::{StoreKind, TestEnv, path_of, spawn_app_in, unique_phone};
use crate::on_both_stores;

on_both_stores!(
    the_save_link_verifies_with_the_public_key_and_not_with_another,
    the_button_creates_the_object_when_google_was_unreachable_at_enrollment,
    unknown_card_keys_get_no_save_link,
    the_button_leads_to_a_skinny_save_link_signed_with_the_service_account_key,
    with_google_off_there_is_no_button_and_google_hears_nothing,
);

const SAVE_PREFIX: &str = "https://pay.google.com/gp/v/save/";

async fn the_button_leads_to_a_skinny_save_link_signed_with_the_service_account_key(kind: StoreKind) {
    let (app, fake) = spawn_app_with_google(kind).await;
    let body = app.enroll("Anna", &unique_phone()).await;
    let page = path_of(body["card"]["card_url"].as_str().unwrap()).to_owned();
    let serial = body["card"]["serial_number"].as_str().unwrap();

    let html = app.get(&format!("{page}?lang=en")).await.text().await.unwrap().replace("&#x2f;", "/");
    assert!(html.contains(&format!(r#"data-testid="add-to-google-wallet" href="{page}/google""#)), "{html}");
    assert!(html.contains("Add to Google Wallet"));
    let response = app.get(&format!("{page}/google")).await;

    assert_eq!(response.status(), 303);
    assert_eq!(response.headers()["cache-control"], "no-store");
    let location = response.headers()["location"].to_str().unwrap().to_owned();
    let jwt = location.strip_prefix(SAVE_PREFIX).unwrap_or_else(|| panic!("{location}"));
    assert!(location.len() < 1800, "a skinny link: {} characters", location.len());
    let parts: Vec<&str> = jwt.split('.').collect();
    assert_eq!(parts.len(), 3);
    let header: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[0]).unwrap()).unwrap();
    assert_eq!(header["alg"], "RS256");
    assert_verifies_with_openssl(&parts, &TestKey::shared().public_pem);
    let claims: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
    let iat = claims["iat"].as_i64().expect("iat is a number");
    assert!((iat - chrono::Utc::now().timestamp()).abs() < 60, "issued now");
    assert_eq!(
        claims,
        json!({
            "iss": CLIENT_EMAIL,
            "aud": "google",
            "typ": "savetowallet",
            "iat": iat,
            "origins": ["http://loy.test"],
            "payload": {"loyaltyObjects": [{"id": object_id(serial), "classId": class_id()}]},
        }),
        "exactly the claims Google wants, and only the ids"
    );
    assert!(fake.object(&object_id(serial)).is_some(), "the object the link names exists");
    fake.assert_clean();
}

/// Verifies an RS256 JWT with the `openssl` command line: an independent check of the signature.
fn assert_verifies_with_openssl(parts: &[&str], public_pem: &str) {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("public.pem");
    let signature = dir.path().join("signature.bin");
    std::fs::write(&key, public_pem).unwrap();
    std::fs::write(&signature, URL_SAFE_NO_PAD.decode(parts[2]).unwrap()).unwrap();
    let signed = format!("{}.{}", parts[0], parts[1]);
    let out = openssl_stdin(
        &["dgst", "-sha256", "-verify", key.to_str().unwrap(), "-signature", signature.to_str().unwrap()],
        signed.as_bytes(),
    );
    assert_eq!(String::from_utf8_lossy(&out).trim(), "Verified OK");
}

async fn the_save_link_verifies_with_the_public_key_and_not_with_another(kind: StoreKind) {
    let (app, fake) = spawn_app_with_google(kind).await;
    let number = app.new_card().await;
    let card = app.card(&number).await;
    fake.wait_for_object(&object_id(card.serial.as_str())).await;

    let link = app.state.google.clone().unwrap().save_link(&card).unwrap();

    let jwt = link.strip_prefix(SAVE_PREFIX).unwrap();
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS256);
    validation.set_audience(&["google"]);
    validation.set_issuer(&[CLIENT_EMAIL]);
    validation.set_required_spec_claims(&["iss", "aud"]);
    validation.validate_exp = false;
    let key = jsonwebtoken::DecodingKey::from_rsa_pem(TestKey::shared().public_pem.as_bytes()).unwrap();
    let claims = jsonwebtoken::decode::<loy::google::save_link::SaveClaims>(jwt, &key, &validation).unwrap().claims;
    assert_eq!(claims.payload.loyalty_objects.len(), 1);
    assert_eq!(claims.payload.loyalty_objects[0].id, format!("{ISSUER_ID}.{}", card.serial));
    let other = TestKey::generate();
    let other = jsonwebtoken::DecodingKey::from_rsa_pem(other.public_pem.as_bytes()).unwrap();
    assert!(jsonwebtoken::decode::<Value>(jwt, &other, &validation).is_err());
}

async fn the_button_creates_the_object_when_google_was_unreachable_at_enrollment(kind: StoreKind) {
    let (app, fake) = spawn_app_with_google(kind).await;
    fake.fail_next("POST", "loyalty", 503, "Backend unavailable", 1000);
    let body = app.enroll("Anna", &unique_phone()).await;
    let page = path_of(body["card"]["card_url"].as_str().unwrap()).to_owned();
    let id = object_id(body["card"]["serial_number"].as_str().unwrap());

    let still_down = app.get(&format!("{page}/google?lang=en")).await;
    assert_eq!(still_down.status(), 503);
    let html = still_down.text().await.unwrap().replace("&#x2f;", "/");
    assert!(html.contains("Google Wallet cannot be reached"), "{html}");
    assert!(html.contains(&format!("href=\"{page}?lang=en\"")), "a way back to the card: {html}");
    assert!(fake.object(&id).is_none());

    fake.heal();
    let response = app.get(&format!("{page}/google")).await;

    assert_eq!(response.status(), 303);
    assert!(response.headers()["location"].to_str().unwrap().starts_with(SAVE_PREFIX));
    assert_eq!(fake.object(&id).unwrap()["state"], "ACTIVE");
    fake.assert_clean();
}

async fn unknown_card_keys_get_no_save_link(kind: StoreKind) {
    let (app, fake) = spawn_app_with_google(kind).await;
    for path in ["/c/abcdefghijkmnpqrstuvwxyz23/google", "/c/x/google"] {
        let response = app.get(&format!("{path}?lang=en")).await;
        assert_eq!(response.status(), 404, "{path}");
    }
    assert!(fake.requests().iter().all(|r| r.path.starts_with("loyaltyClass")), "no object for an unknown card");
}

async fn with_google_off_there_is_no_button_and_google_hears_nothing(kind: StoreKind) {
    let fake = FakeGoogle::start(CLIENT_EMAIL, &TestKey::shared().public_pem, ISSUER_ID);
    let mut env = TestEnv::new(&kind);
    // Only the address is given: without an issuer and a key, Google Wallet stays off.
    env.set("LOY_GOOGLE_API_BASE_URL", &fake.api_base_url());
    let app = spawn_app_in(env).await;
    let body = app.enroll("Anna", &unique_phone()).await;
    let page = path_of(body["card"]["card_url"].as_str().unwrap()).to_owned();

    let html = app.get(&format!("{page}?lang=en")).await.text().await.unwrap();
    let save = app.get(&format!("{page}/google?lang=en")).await;
    let ready: Value = app.get_internal("/readyz").await.json().await.unwrap();

    assert!(!html.contains("add-to-google-wallet") && !html.contains("/google"), "no button: {html}");
    assert_eq!(save.status(), 404);
    assert_eq!(ready["checks"]["google"], json!({"status": "off"}));
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    assert_eq!(fake.calls(), 0, "no calls to Google");
}
