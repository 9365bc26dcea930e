//! The second factor: TOTP enrolment, login with a code, recovery codes, and LOY_REQUIRE_2FA.

use loy::domain::Role;
use totp_rs::{Algorithm, Secret, TOTP};

use crate::admin_helpers::{PASSWORD, Staff, audit_of, session_cookie, text_of_id};
use crate::helpers::{StoreKind, TestApp, TestEnv, spawn_app, spawn_app_in};
use crate::on_both_stores;

on_both_stores!(
    enrolling_totp_makes_login_ask_for_a_code_computed_from_the_secret,
    a_recovery_code_works_once,
    a_wrong_code_is_refused_and_counts_as_a_failure,
    required_second_factor_comes_before_anything_else,
    an_owner_turns_off_a_lost_second_factor,
    the_code_step_expires_after_ten_minutes,
);

/// The code an authenticator app shows for `secret` at the app's time.
fn code(app: &TestApp, secret: &str) -> String {
    let bytes = Secret::Encoded(secret.to_owned()).to_bytes().unwrap();
    let totp = TOTP::new(Algorithm::SHA1, 6, 1, 30, bytes).unwrap();
    totp.generate(u64::try_from(app.clock_now().timestamp()).unwrap())
}

/// Enrols the second factor from the account page; returns the secret and the recovery codes.
async fn enrol(staff: &Staff<'_>) -> (String, Vec<String>) {
    let page = staff.get("/admin/account").await;
    assert_eq!(page.status, 200);
    let secret = text_of_id(&page.body, "totp-secret").expect("the secret is shown");
    assert!(page.body.contains("data:image/svg+xml;base64,"), "with a QR code");
    let wrong = staff.post("/admin/account/totp", &[("secret", &secret), ("code", "000000")]).await;
    assert_eq!(wrong.status, 422, "a wrong code does not enrol");
    let done = staff.post("/admin/account/totp", &[("secret", &secret), ("code", &code(staff.app, &secret))]).await;
    assert_eq!(done.status, 200, "{}", done.body);
    let list = &done.body[done.body.find(r#"id="recovery-codes""#).unwrap()..];
    let codes: Vec<String> =
        list.split("<li>").skip(1).map(|item| item[..item.find("</li>").unwrap()].to_owned()).collect();
    assert_eq!(codes.len(), 10);
    (secret, codes)
}

/// Password step then code step; returns the final response.
async fn login_with_code(app: &TestApp, email: &str, typed: &str) -> crate::admin_helpers::Page {
    let first = app.admin_login(email, PASSWORD).await;
    assert_eq!(first.status, 303, "{}", first.body);
    assert!(first.location.as_deref().unwrap().starts_with("/admin/login/code"));
    let (pending, _) = session_cookie(&first.headers).unwrap();
    let client = &app.client;
    let form = client
        .get(app.url("/admin/login/code"))
        .header("Cookie", format!("loy_admin={pending}"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let form = crate::admin_helpers::unescape(&form);
    let csrf = {
        let at = form.find(r#"name="csrf" value=""#).unwrap() + r#"name="csrf" value=""#.len();
        form[at..at + form[at..].find('"').unwrap()].to_owned()
    };
    // The password alone opens nothing.
    let home = client.get(app.url("/admin")).header("Cookie", format!("loy_admin={pending}")).send().await.unwrap();
    assert_eq!(home.status(), 303);
    let response = client
        .post(app.url("/admin/login/code"))
        .header("Cookie", format!("loy_admin={pending}"))
        .form(&[("code", typed), ("csrf", &csrf), ("next", "/admin")])
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let location = headers.get("location").and_then(|v| v.to_str().ok()).map(str::to_owned);
    let body = crate::admin_helpers::unescape(&response.text().await.unwrap());
    crate::admin_helpers::Page { status, location, body, headers }
}

async fn enrolling_totp_makes_login_ask_for_a_code_computed_from_the_secret(kind: StoreKind) {
    let app = spawn_app(kind).await;
    let staff = app.signed_in(Role::Manager).await;
    let (secret, _) = enrol(&staff).await;
    assert_eq!(staff.audit("totp_enabled").await.len(), 1);

    let page = login_with_code(&app, &staff.email, &code(&app, &secret)).await;

    assert_eq!(page.status, 303, "{}", page.body);
    assert_eq!(page.location.as_deref(), Some("/admin"));
    let (cookie, _) = session_cookie(&page.headers).expect("a full session");
    let signed_in = app.staff_with_cookie(&staff.email, cookie).await;
    assert_eq!(signed_in.get("/admin").await.status, 200);
    let login = audit_of(&app, Some(&staff.id), "login").await;
    assert_eq!(login[0].details["second_factor"], true);

    let off = signed_in.post("/admin/account/totp/disable", &[("code", &code(&app, &secret))]).await;
    assert_eq!(off.status, 303);
    assert!(!app.store.staff_by_id(&staff.id).await.unwrap().unwrap().totp_enabled());
    assert_eq!(staff.audit("totp_disabled").await.len(), 1);
}

async fn a_recovery_code_works_once(kind: StoreKind) {
    let app = spawn_app(kind).await;
    let staff = app.signed_in(Role::Owner).await;
    let (_, codes) = enrol(&staff).await;

    let first = login_with_code(&app, &staff.email, &codes[0].to_uppercase()).await;
    assert_eq!(first.status, 303, "{}", first.body);
    assert_eq!(app.store.staff_by_id(&staff.id).await.unwrap().unwrap().recovery_codes.len(), 9);

    let again = login_with_code(&app, &staff.email, &codes[0]).await;
    assert_eq!(again.status, 401, "a recovery code works once");
    assert!(session_cookie(&again.headers).is_none());
    assert_eq!(staff.audit("recovery_code_used").await.len(), 1);
}

async fn a_wrong_code_is_refused_and_counts_as_a_failure(kind: StoreKind) {
    let app = spawn_app(kind).await;
    let staff = app.signed_in(Role::Cashier).await;
    enrol(&staff).await;

    let page = login_with_code(&app, &staff.email, "123456").await;

    assert_eq!(page.status, 401);
    let failures = audit_of(&app, Some(&staff.id), "login_failed").await;
    assert_eq!(failures[0].details["reason"], "wrong_code");
}

async fn required_second_factor_comes_before_anything_else(kind: StoreKind) {
    let mut env = TestEnv::new(&kind);
    env.set("LOY_REQUIRE_2FA", "owner");
    let app = spawn_app_in(env).await;
    let manager = app.signed_in(Role::Manager).await;
    assert_eq!(manager.get("/admin/audit").await.status, 200, "managers are not concerned");
    let owner = app.signed_in(Role::Owner).await;

    let page = owner.get("/admin/staff").await;
    assert_eq!(page.status, 303);
    assert_eq!(page.location.as_deref(), Some("/admin/account"));
    let refused = owner.post("/admin/keys", &[("name", "Till"), ("scope", "pos")]).await;
    assert_eq!(refused.status, 403);
    assert!(app.store.api_keys().await.unwrap().is_empty(), "nothing changed");
    let account = owner.get("/admin/account").await;
    assert!(account.body.contains("required for your role"), "{}", account.body);

    enrol(&owner).await;

    assert_eq!(owner.get("/admin/staff").await.status, 200);
}

async fn an_owner_turns_off_a_lost_second_factor(kind: StoreKind) {
    let app = spawn_app(kind).await;
    let owner = app.signed_in(Role::Owner).await;
    let manager = app.signed_in(Role::Manager).await;
    enrol(&manager).await;
    assert!(app.admin_login(&manager.email, PASSWORD).await.location.unwrap().starts_with("/admin/login/code"));
    let refused = manager.post(&format!("/admin/staff/{}/totp/reset", manager.id), &[]).await;
    assert_eq!(refused.status, 403, "not the manager's own to drop this way");

    let page = owner.post(&format!("/admin/staff/{}/totp/reset", manager.id), &[]).await;

    assert_eq!(page.status, 303);
    assert_eq!(app.admin_login(&manager.email, PASSWORD).await.location.as_deref(), Some("/admin"));
    let audit = owner.audit("totp_disabled").await;
    assert_eq!(audit[0].target.as_deref(), Some(manager.id.as_str()));
    assert_eq!(audit[0].details["by_owner"], true);
}

async fn the_code_step_expires_after_ten_minutes(kind: StoreKind) {
    let app = spawn_app(kind).await;
    let staff = app.signed_in(Role::Cashier).await;
    let (secret, _) = enrol(&staff).await;
    let first = app.admin_login(&staff.email, PASSWORD).await;
    let (pending, _) = session_cookie(&first.headers).unwrap();

    app.clock.advance(chrono::Duration::minutes(11));

    let page = app
        .client
        .get(app.url("/admin/login/code"))
        .header("Cookie", format!("loy_admin={pending}"))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 303, "back to the password");
    assert_eq!(page.headers()["location"], "/admin/login");
    let late = app
        .client
        .post(app.url("/admin/login/code"))
        .header("Cookie", format!("loy_admin={pending}"))
        .form(&[("code", code(&app, &secret).as_str())])
        .send()
        .await
        .unwrap();
    assert!(session_cookie(late.headers()).is_none(), "no session from a stale first step");
}
