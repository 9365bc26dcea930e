use loy::domain::Phone;
use loy::store::CardLookup;

use crate::helpers::{StoreKind, spawn_app, unique_phone};
use crate::on_both_stores;

on_both_stores!(
    the_form_is_served_in_the_requested_language,
    a_valid_form_post_redirects_to_the_new_card_page,
    an_invalid_form_is_shown_again_with_errors_and_the_typed_values,
    the_form_with_a_known_phone_says_the_link_was_sent,
);

async fn the_form_is_served_in_the_requested_language(kind: StoreKind) {
    let app = spawn_app(kind).await;

    let english = app.client.get(app.url("/")).header("accept-language", "en-GB,en;q=0.9").send().await.unwrap();
    assert_eq!(english.status(), 200);
    assert!(english.headers()["content-type"].to_str().unwrap().starts_with("text/html"));
    let html = english.text().await.unwrap();
    assert!(html.contains(r#"<html lang="en">"#));
    assert!(html.contains("Get your loyalty card"));
    for field in ["first_name", "last_name", "phone", "email", "birthday", "consent", "referral_code"] {
        assert!(html.contains(&format!(r#"<label for="{field}""#)), "{field} has a label");
        assert!(html.contains(&format!(r#"name="{field}""#)), "{field} is in the form");
    }
    assert!(html.contains(r#"method="post""#), "the form posts without JavaScript");

    let russian = app.get("/?lang=ru").await.text().await.unwrap();
    assert!(russian.contains(r#"<html lang="ru">"#));
    assert!(russian.contains("Получите карту лояльности"));

    let by_header =
        app.client.get(app.url("/")).header("accept-language", "ru-RU").send().await.unwrap().text().await.unwrap();
    assert!(by_header.contains(r#"<html lang="ru">"#));
}

async fn a_valid_form_post_redirects_to_the_new_card_page(kind: StoreKind) {
    let app = spawn_app(kind).await;
    let phone = unique_phone();

    let response = app
        .post_form(
            "/?lang=en",
            &[("first_name", "Olga"), ("last_name", "Petrova"), ("phone", &phone), ("consent", "yes"), ("lang", "en")],
        )
        .await;

    assert_eq!(response.status(), 303);
    let location = response.headers()["location"].to_str().unwrap().to_owned();
    assert!(location.starts_with("/c/"), "{location}");
    let page = app.get(&location).await;
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    assert!(html.contains("Olga P."));
    assert!(html.contains("<svg"), "the page carries a QR code");
    let card = app
        .store
        .find_card(CardLookup::Phone {
            program_id: "default",
            phone: &Phone::parse(&phone, loy::domain::PhoneRegion::RU).unwrap(),
        })
        .await
        .unwrap()
        .unwrap();
    assert!(location.contains(card.card_key.expose()));
    assert!(html.contains(&card.card_number.grouped()));
}

async fn an_invalid_form_is_shown_again_with_errors_and_the_typed_values(kind: StoreKind) {
    let app = spawn_app(kind).await;

    let response = app
        .post_form(
            "/",
            &[("first_name", "Olga"), ("phone", "12345"), ("email", "olga@"), ("birthday", ""), ("lang", "en")],
        )
        .await;

    assert_eq!(response.status(), 422);
    let html = response.text().await.unwrap();
    assert!(html.contains(r#"value="Olga""#), "typed first name kept");
    assert!(html.contains(r#"value="12345""#), "typed phone kept");
    assert!(html.contains(r#"value="olga@""#), "typed e-mail kept");
    assert!(html.contains(r#"id="phone-error""#) && html.contains("too few or too many digits"));
    assert!(html.contains(r#"id="email-error""#));
    assert!(html.contains(r#"id="consent-error""#));
    assert!(!html.contains(r#"id="first_name-error""#), "a valid field has no error");
    assert!(html.contains(r#"aria-describedby="phone-error phone-hint""#), "errors are tied to their fields");
    assert!(html.contains(r#"role="alert""#));

    let escaped =
        app.post_form("/", &[("first_name", "<script>x</script>"), ("lang", "en")]).await.text().await.unwrap();
    assert!(!escaped.contains("<script>x"), "typed values are escaped");
}

async fn the_form_with_a_known_phone_says_the_link_was_sent(kind: StoreKind) {
    let app = spawn_app(kind).await;
    let phone = unique_phone();
    let first = app.enroll("Olga", &phone).await;

    let response =
        app.post_form("/", &[("first_name", "Eve"), ("phone", &phone), ("consent", "yes"), ("lang", "en")]).await;

    assert_eq!(response.status(), 200);
    let html = response.text().await.unwrap();
    assert!(html.contains("already registered"));
    assert!(!html.contains(first["card"]["card_number"].as_str().unwrap()));
    assert!(!html.contains("/c/"), "no link to the card is shown");
}
