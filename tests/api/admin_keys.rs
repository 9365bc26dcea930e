//! `/admin/keys`: API keys and webhook sources made in the panel are the ones the POS API
//! accepts, and revoking them there stops them at once.

use loy::domain::Role;
use loy::pos::webhook::sign;
use serde_json::json;

use crate::admin_helpers::text_of_id;
use crate::helpers::{StoreKind, TestApp, random_suffix, spawn_app};
use crate::on_both_stores;

on_both_stores!(
    a_key_created_in_the_panel_works_on_the_pos_api_shows_its_last_use_and_stops_when_revoked,
    a_webhook_source_created_in_the_panel_signs_webhooks_until_revoked,
    bad_key_forms_show_errors_next_to_the_fields,
    a_key_limited_to_a_program_in_the_panel_or_the_cli_sees_only_that_programs_cards,
);

async fn post_webhook(app: &TestApp, source: &str, secret: &str, body: &str) -> u16 {
    let now = app.clock_now().timestamp();
    app.client
        .post(app.url("/api/v1/webhooks/pos"))
        .header("content-type", "application/json")
        .header("x-loy-source", source)
        .header("x-loy-signature", sign(secret, now, body.as_bytes()))
        .body(body.to_owned())
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

async fn a_key_created_in_the_panel_works_on_the_pos_api_shows_its_last_use_and_stops_when_revoked(kind: StoreKind) {
    let app = spawn_app(kind).await;
    let owner = app.signed_in(Role::Owner).await;
    let number = app.new_card().await;

    let page = owner.post("/admin/keys", &[("name", "Till 1"), ("scope", "pos")]).await;

    assert_eq!(page.status, 200, "{}", page.body);
    let key = text_of_id(&page.body, "new-secret").expect("the key is shown once");
    assert!(key.starts_with("loy_"));
    let id = key.split('_').nth(1).unwrap().to_owned();
    let list = owner.get("/admin/keys").await;
    assert!(list.body.contains("Till 1") && !list.body.contains(&key), "listed without its secret");
    assert_eq!(app.pos_get(&format!("/api/v1/cards/{number}"), &key).await.status, 200);
    let stored = app.store.api_key(&id).await.unwrap().unwrap();
    assert!(stored.last_used_at.is_some(), "the use is recorded");
    let list = owner.get("/admin/keys").await;
    let row = &list.body[list.body.find(&format!(r#"id="key-{id}""#)).unwrap()..];
    let row = &row[..row.find("</tr>").unwrap()];
    assert!(row.contains(&stored.last_used_at.unwrap().format("%Y-%m-%d %H:%M").to_string()), "{row}");
    assert_eq!(owner.audit("key_created").await[0].target.as_deref(), Some(id.as_str()));

    let revoked = owner.post(&format!("/admin/keys/{id}/revoke"), &[]).await;

    assert_eq!(revoked.status, 303);
    assert_eq!(app.pos_get(&format!("/api/v1/cards/{number}"), &key).await.status, 401);
    assert_eq!(owner.audit("key_revoked").await.len(), 1);
    let (code, listing) = {
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_loy"))
            .env_clear()
            .envs(&app.env.vars)
            .args(["api-key", "list"])
            .output()
            .unwrap();
        (output.status.code(), String::from_utf8_lossy(&output.stdout).into_owned())
    };
    assert_eq!(code, Some(0));
    assert!(listing.contains(&id) && listing.contains("revoked"), "the same record as the CLI: {listing}");
}

async fn a_webhook_source_created_in_the_panel_signs_webhooks_until_revoked(kind: StoreKind) {
    let app = spawn_app(kind).await;
    let owner = app.signed_in(Role::Owner).await;
    let number = app.new_card().await;

    let page = owner.post("/admin/webhook-sources", &[("name", "Till system")]).await;

    assert_eq!(page.status, 200);
    let secret = text_of_id(&page.body, "new-secret").unwrap();
    let source = app.store.webhook_sources().await.unwrap().remove(0);
    assert_eq!(source.secret, secret);
    let body = json!({"event_id": format!("evt-{}", random_suffix()), "type": "earn", "card": number, "purchase_amount": 200_000})
        .to_string();
    assert_eq!(post_webhook(&app, &source.id, &secret, &body).await, 200);

    assert_eq!(owner.post(&format!("/admin/webhook-sources/{}/revoke", source.id), &[]).await.status, 303);

    let other = json!({"event_id": "evt-after", "type": "earn", "card": number, "purchase_amount": 1000}).to_string();
    assert_eq!(post_webhook(&app, &source.id, &secret, &other).await, 401);
    assert_eq!(owner.audit("webhook_source_created").await.len(), 1);
    assert_eq!(owner.audit("webhook_source_revoked").await.len(), 1);
}

async fn bad_key_forms_show_errors_next_to_the_fields(kind: StoreKind) {
    let app = spawn_app(kind).await;
    let owner = app.signed_in(Role::Owner).await;

    let page = owner.post("/admin/keys", &[("name", " "), ("scope", "root")]).await;

    assert_eq!(page.status, 422);
    assert!(page.body.contains(r#"id="e-key_name""#) && page.body.contains(r#"id="e-scope""#), "{}", page.body);
    assert!(app.store.api_keys().await.unwrap().is_empty());
}

async fn a_key_limited_to_a_program_in_the_panel_or_the_cli_sees_only_that_programs_cards(kind: StoreKind) {
    let app = spawn_app(kind).await;
    let bakery =
        loy::domain::Program::new("bakery", "Bakery", loy::domain::Currency::parse("RUB").unwrap(), chrono::Utc::now());
    app.store.insert_program(&bakery).await.unwrap();
    let owner = app.signed_in(Role::Owner).await;
    let number = app.new_card().await;

    let form = owner.get("/admin/keys?lang=en").await;
    assert!(form.body.contains(r#"<option value="bakery">Bakery</option>"#), "programs are offered");
    let refused = owner.post("/admin/keys", &[("name", "Till 2"), ("scope", "pos"), ("program", "nope")]).await;
    assert_eq!(refused.status, 422);
    let page = owner.post("/admin/keys", &[("name", "Till 2"), ("scope", "pos"), ("program", "bakery")]).await;
    assert_eq!(page.status, 200, "{}", page.body);
    let key = text_of_id(&page.body, "new-secret").unwrap();
    let id = key.split('_').nth(1).unwrap().to_owned();
    assert_eq!(app.store.api_key(&id).await.unwrap().unwrap().program_id.as_deref(), Some("bakery"));
    assert_eq!(app.pos_get(&format!("/api/v1/cards/{number}"), &key).await.status, 404, "a default card");

    let cli = |args: &[&str]| {
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_loy"))
            .env_clear()
            .envs(&app.env.vars)
            .args(args)
            .output()
            .unwrap();
        (output.status.code(), String::from_utf8_lossy(&output.stdout).into_owned())
    };
    let (code, out) = cli(&["api-key", "create", "--name", "Bakery till", "--program", "bakery"]);
    assert_eq!(code, Some(0), "{out}");
    let secret = out.lines().last().unwrap().trim().to_owned();
    assert_eq!(app.pos_get(&format!("/api/v1/cards/{number}"), &secret).await.status, 404);
    let (code, _) = cli(&["api-key", "create", "--name", "Typo", "--program", "bakrey"]);
    assert_eq!(code, Some(1), "an unknown program is refused");
    let (_, listing) = cli(&["api-key", "list"]);
    assert!(listing.lines().any(|l| l.contains("Bakery till") && l.contains("bakery")), "{listing}");
}
