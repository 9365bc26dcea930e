//! `/admin/staff` (owners), the role table of the console's own rows, and CSRF on every
//! state-changing route of these screens.

use loy::domain::Role;

use crate::admin_helpers::{PASSWORD, audit_of, text_of_id};
use crate::helpers::{StoreKind, spawn_app};
use crate::on_both_stores;

on_both_stores!(
    an_owner_adds_a_cashier_whose_generated_password_is_shown_once_and_works,
    an_owner_adds_staff_with_a_chosen_password_and_duplicates_are_refused,
    an_owner_changes_roles_and_resets_passwords,
    the_last_active_owner_can_be_neither_disabled_nor_demoted,
    only_owners_manage_staff_keys_and_sources,
    managers_read_the_audit_log_and_cashiers_do_not,
    every_state_changing_route_refuses_a_missing_or_wrong_csrf_token,
    htmx_requests_carry_the_token_in_a_header,
);

async fn an_owner_adds_a_cashier_whose_generated_password_is_shown_once_and_works(kind: StoreKind) {
    let app = spawn_app(kind).await;
    let owner = app.signed_in(Role::Owner).await;

    let page =
        owner.post("/admin/staff", &[("email", "Till@Shop.Example"), ("role", "cashier"), ("password", "")]).await;

    assert_eq!(page.status, 200, "{}", page.body);
    let password = text_of_id(&page.body, "new-password").expect("the password is shown");
    assert!(password.len() >= 16);
    let cashier = app.store.staff_by_email("till@shop.example").await.unwrap().unwrap();
    assert_eq!(cashier.role, Role::Cashier);
    assert!(!cashier.password_hash.contains(&password));
    let list = owner.get("/admin/staff").await;
    assert!(list.body.contains("till@shop.example") && !list.body.contains(&password), "shown once only");
    let signed_in = app.sign_in("till@shop.example", &password).await;
    assert!(signed_in.get("/admin").await.body.contains("/admin/cashier"), "a cashier's home leads to the till");
    let added = owner.audit("staff_added").await;
    assert_eq!(added[0].target.as_deref(), Some(cashier.id.as_str()));
    assert_eq!(added[0].details["role"], "cashier");
    assert!(!added[0].details.to_string().contains(&password));
}

async fn an_owner_adds_staff_with_a_chosen_password_and_duplicates_are_refused(kind: StoreKind) {
    let app = spawn_app(kind).await;
    let owner = app.signed_in(Role::Owner).await;

    let page =
        owner.post("/admin/staff", &[("email", "m@shop.example"), ("role", "manager"), ("password", PASSWORD)]).await;
    assert_eq!(page.status, 200);
    assert!(text_of_id(&page.body, "new-password").is_none(), "a chosen password is not shown");
    assert_eq!(app.admin_login("m@shop.example", PASSWORD).await.status, 303);

    let twice = owner.post("/admin/staff", &[("email", "M@SHOP.example"), ("role", "cashier"), ("password", "")]).await;
    assert_eq!(twice.status, 409);
    assert!(twice.body.contains("A staff account with this e-mail exists."));
    let invalid =
        owner.post("/admin/staff", &[("email", "not an email"), ("role", "king"), ("password", "short")]).await;
    assert_eq!(invalid.status, 422);
    for message in ["Enter an e-mail address", "Choose a role.", "Use at least 10 characters."] {
        assert!(invalid.body.contains(message), "{message}");
    }
    assert_eq!(app.store.staff_list().await.unwrap().len(), 2);
}

async fn an_owner_changes_roles_and_resets_passwords(kind: StoreKind) {
    let app = spawn_app(kind).await;
    let owner = app.signed_in(Role::Owner).await;
    let cashier = app.signed_in(Role::Cashier).await;

    let page = owner.post(&format!("/admin/staff/{}/role", cashier.id), &[("role", "manager")]).await;
    assert_eq!(page.status, 303);
    assert_eq!(cashier.get("/admin/audit").await.status, 200, "the new role applies to the running session");
    let changed = owner.audit("staff_role_changed").await;
    assert_eq!(changed[0].details["before"]["role"], "cashier");
    assert_eq!(changed[0].details["after"]["role"], "manager");

    let reset = owner.post(&format!("/admin/staff/{}/password", cashier.id), &[]).await;
    assert_eq!(reset.status, 200);
    let password = text_of_id(&reset.body, "new-password").unwrap();
    assert_eq!(cashier.get("/admin").await.status, 303, "the old sessions ended");
    assert_eq!(app.admin_login(&cashier.email, PASSWORD).await.status, 401, "the old password is gone");
    assert_eq!(app.admin_login(&cashier.email, &password).await.status, 303);
    assert_eq!(owner.audit("password_reset").await.len(), 1);

    let disabled = owner.post(&format!("/admin/staff/{}/disable", cashier.id), &[]).await;
    assert_eq!(disabled.status, 303);
    let enabled = owner.post(&format!("/admin/staff/{}/enable", cashier.id), &[]).await;
    assert_eq!(enabled.status, 303);
    assert_eq!(app.admin_login(&cashier.email, &password).await.status, 303);
    assert_eq!(owner.audit("staff_disabled").await.len(), 1);
    assert_eq!(owner.audit("staff_enabled").await.len(), 1);
}

async fn the_last_active_owner_can_be_neither_disabled_nor_demoted(kind: StoreKind) {
    let app = spawn_app(kind).await;
    let owner = app.signed_in(Role::Owner).await;

    let disable = owner.post(&format!("/admin/staff/{}/disable", owner.id), &[]).await;
    assert_eq!(disable.status, 409);
    assert!(disable.body.contains("last active owner"));
    let demote = owner.post(&format!("/admin/staff/{}/role", owner.id), &[("role", "manager")]).await;
    assert_eq!(demote.status, 409);
    let me = app.store.staff_by_id(&owner.id).await.unwrap().unwrap();
    assert!(!me.disabled && me.role == Role::Owner, "nothing changed");

    let second = app.staff_account(Role::Owner).await;
    let demoted = owner.post(&format!("/admin/staff/{}/role", second.id), &[("role", "cashier")]).await;
    assert_eq!(demoted.status, 303, "with two owners one may be demoted");
    assert_eq!(owner.post(&format!("/admin/staff/{}/disable", owner.id), &[]).await.status, 409, "but not the last");
}

/// The console's own rows of the role table: staff accounts, API keys and webhook sources are
/// the owner's; a refusal is a 403 that changes nothing.
async fn only_owners_manage_staff_keys_and_sources(kind: StoreKind) {
    let app = spawn_app(kind).await;
    let owner = app.signed_in(Role::Owner).await;
    let (key, _) = loy::domain::ApiKey::generate("Till", loy::domain::Scope::Pos, app.clock_now());
    app.store.insert_api_key(&key).await.unwrap();
    let source = loy::domain::WebhookSource::generate("POS", app.clock_now());
    app.store.insert_webhook_source(&source).await.unwrap();
    let before_staff = app.store.staff_list().await.unwrap().len();
    for role in [Role::Manager, Role::Cashier] {
        let staff = app.signed_in(role).await;
        for path in ["/admin/staff", "/admin/keys"] {
            assert_eq!(staff.get(path).await.status, 403, "{role} GET {path}");
        }
        let posts: Vec<(String, Vec<(&str, &str)>)> = vec![
            ("/admin/staff".into(), vec![("email", "new@shop.example"), ("role", "owner"), ("password", "")]),
            (format!("/admin/staff/{}/disable", owner.id), vec![]),
            (format!("/admin/staff/{}/role", staff.id), vec![("role", "owner")]),
            (format!("/admin/staff/{}/password", owner.id), vec![]),
            (format!("/admin/staff/{}/totp/reset", owner.id), vec![]),
            ("/admin/keys".into(), vec![("name", "Mine"), ("scope", "admin")]),
            (format!("/admin/keys/{}/revoke", key.id), vec![]),
            ("/admin/webhook-sources".into(), vec![("name", "Mine")]),
            (format!("/admin/webhook-sources/{}/revoke", source.id), vec![]),
        ];
        for (path, fields) in &posts {
            let page = staff.post(path, fields).await;
            assert_eq!(page.status, 403, "{role} POST {path}");
            assert!(page.body.contains("Your role does not allow this."), "{role} POST {path}");
        }
    }
    assert_eq!(app.store.api_keys().await.unwrap().len(), 1);
    assert!(app.store.api_keys().await.unwrap()[0].is_active());
    assert!(app.store.webhook_sources().await.unwrap()[0].revoked_at.is_none());
    assert_eq!(app.store.webhook_sources().await.unwrap().len(), 1);
    let staff_now = app.store.staff_list().await.unwrap();
    assert_eq!(staff_now.len(), before_staff + 2, "only the two test accounts were added");
    assert!(staff_now.iter().filter(|s| s.role == Role::Owner).count() == 1, "no one became an owner");
    assert!(!app.store.staff_by_id(&owner.id).await.unwrap().unwrap().disabled);
    for path in ["/admin/staff", "/admin/keys", "/admin/audit"] {
        assert_eq!(owner.get(path).await.status, 200, "owner GET {path}");
    }
}

async fn managers_read_the_audit_log_and_cashiers_do_not(kind: StoreKind) {
    let app = spawn_app(kind).await;
    let manager = app.signed_in(Role::Manager).await;
    let cashier = app.signed_in(Role::Cashier).await;

    let page = manager.get("/admin/audit").await;
    assert_eq!(page.status, 200);
    assert!(page.body.contains(&cashier.email), "the cashier's login is listed");
    assert!(!page.body.contains("<form method=\"post\" action=\"/admin/audit"), "read only");
    assert_eq!(cashier.get("/admin/audit").await.status, 403);
    let nav = cashier.get("/admin").await.body;
    assert!(!nav.contains(r#"href="/admin/audit""#) && !nav.contains(r#"href="/admin/staff""#), "the menu hides them");
    let manager_nav = manager.get("/admin").await.body;
    assert!(manager_nav.contains(r#"href="/admin/audit""#) && !manager_nav.contains(r#"href="/admin/keys""#));
}

async fn every_state_changing_route_refuses_a_missing_or_wrong_csrf_token(kind: StoreKind) {
    let app = spawn_app(kind).await;
    let owner = app.signed_in(Role::Owner).await;
    let other = app.signed_in(Role::Cashier).await;
    let (key, _) = loy::domain::ApiKey::generate("Till", loy::domain::Scope::Pos, app.clock_now());
    app.store.insert_api_key(&key).await.unwrap();
    let source = loy::domain::WebhookSource::generate("POS", app.clock_now());
    app.store.insert_webhook_source(&source).await.unwrap();
    let audit_before = app.store.audit_entries(&Default::default(), 1000).await.unwrap().len();
    let routes: Vec<(String, Vec<(&str, &str)>)> = vec![
        ("/admin/staff".into(), vec![("email", "new@shop.example"), ("role", "owner"), ("password", "")]),
        (format!("/admin/staff/{}/disable", other.id), vec![]),
        (format!("/admin/staff/{}/enable", other.id), vec![]),
        (format!("/admin/staff/{}/role", other.id), vec![("role", "owner")]),
        (format!("/admin/staff/{}/password", other.id), vec![]),
        (format!("/admin/staff/{}/totp/reset", other.id), vec![]),
        ("/admin/keys".into(), vec![("name", "Mine"), ("scope", "admin")]),
        (format!("/admin/keys/{}/revoke", key.id), vec![]),
        ("/admin/webhook-sources".into(), vec![("name", "Mine")]),
        (format!("/admin/webhook-sources/{}/revoke", source.id), vec![]),
        ("/admin/account/totp".into(), vec![("secret", "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"), ("code", "123456")]),
        ("/admin/account/totp/disable".into(), vec![("code", "123456")]),
        ("/admin/logout".into(), vec![]),
    ];
    // Another session's token is as wrong as none.
    for (path, fields) in &routes {
        let missing = owner.post_raw(path, fields).await;
        assert_eq!(missing.status, 403, "no token: {path}");
        let mut wrong = fields.clone();
        wrong.push(("csrf", &other.csrf));
        assert_eq!(owner.post_raw(path, &wrong).await.status, 403, "another session's token: {path}");
    }
    assert_eq!(app.store.staff_list().await.unwrap().len(), 2);
    let cashier = app.store.staff_by_id(&other.id).await.unwrap().unwrap();
    assert!(!cashier.disabled && cashier.role == Role::Cashier);
    assert!(app.store.api_keys().await.unwrap().iter().all(|k| k.is_active()));
    assert_eq!(app.store.api_keys().await.unwrap().len(), 1);
    assert!(app.store.webhook_sources().await.unwrap().iter().all(|s| s.revoked_at.is_none()));
    assert_eq!(owner.get("/admin").await.status, 200, "the session was not logged out");
    assert_eq!(app.store.audit_entries(&Default::default(), 1000).await.unwrap().len(), audit_before);
    assert!(audit_of(&app, None, "logout").await.is_empty());
}

async fn htmx_requests_carry_the_token_in_a_header(kind: StoreKind) {
    let app = spawn_app(kind).await;
    let owner = app.signed_in(Role::Owner).await;

    let page = owner.post_htmx("/admin/webhook-sources", &[("name", "Till system")]).await;

    assert_eq!(page.status, 200, "{}", page.body);
    assert_eq!(app.store.webhook_sources().await.unwrap().len(), 1);
}
