//! The console's sign-in: passwords, cookies, throttling, expiry, logout.

use loy::domain::Role;

use crate::admin_helpers::{PASSWORD, audit_of, session_cookie};
use crate::helpers::{StoreKind, TestEnv, spawn_app, spawn_app_in};
use crate::on_both_stores;

on_both_stores!(
    the_right_password_opens_a_session_with_a_strict_http_only_cookie,
    the_cookie_is_secure_when_the_public_address_is_https,
    a_wrong_password_is_refused_and_audited_without_the_password,
    five_failures_lock_an_account_with_429_and_retry_after,
    twenty_failures_from_one_address_lock_that_address,
    anonymous_requests_are_sent_to_login_or_refused,
    logout_ends_the_session_and_needs_the_csrf_token,
    an_idle_session_expires,
    a_session_expires_after_its_absolute_lifetime_even_when_used,
    disabling_an_account_ends_its_sessions_at_once,
    console_pages_carry_a_strict_content_security_policy,
    a_login_form_posted_without_its_token_is_refused,
);

async fn the_right_password_opens_a_session_with_a_strict_http_only_cookie(kind: StoreKind) {
    let app = spawn_app(kind).await;
    let owner = app.staff_account(Role::Owner).await;

    let page = app.admin_login(&owner.email.to_uppercase(), PASSWORD).await;

    assert_eq!(page.status, 303, "{}", page.body);
    assert_eq!(page.location.as_deref(), Some("/admin"));
    let (value, line) = session_cookie(&page.headers).expect("a session cookie");
    assert!(value.len() >= 32, "at least 128 random bits: {value}");
    let lower = line.to_ascii_lowercase();
    assert!(lower.contains("httponly"), "{line}");
    assert!(lower.contains("samesite=strict"), "{line}");
    assert!(lower.contains("path=/admin"), "{line}");
    assert!(!lower.contains("secure"), "no Secure on an http public address: {line}");
    let staff = app.staff_with_cookie(&owner.email, value.clone()).await;
    assert_eq!(staff.get("/admin").await.status, 200);
    assert!(app.store.staff_session(&value).await.unwrap().is_none(), "the store keeps only a hash of the session id");
    let logins = audit_of(&app, Some(&owner.id), "login").await;
    assert_eq!(logins.len(), 1);
    assert_eq!(logins[0].staff_email, owner.email);
    assert_eq!(logins[0].address, "127.0.0.1");
}

async fn the_cookie_is_secure_when_the_public_address_is_https(kind: StoreKind) {
    let mut env = TestEnv::new(&kind);
    env.set("LOY_PUBLIC_URL", "https://loy.test");
    let app = spawn_app_in(env).await;
    let owner = app.staff_account(Role::Owner).await;

    let page = app.admin_login(&owner.email, PASSWORD).await;

    let (_, line) = session_cookie(&page.headers).expect("a session cookie");
    assert!(line.to_ascii_lowercase().contains("secure"), "{line}");
}

async fn a_wrong_password_is_refused_and_audited_without_the_password(kind: StoreKind) {
    let app = spawn_app(kind).await;
    let owner = app.staff_account(Role::Owner).await;

    let page = app.admin_login(&owner.email, "wrong password 123").await;

    assert_eq!(page.status, 401);
    assert!(session_cookie(&page.headers).is_none());
    assert!(page.body.contains("The e-mail or password is wrong."), "{}", page.body);
    let failures = audit_of(&app, Some(&owner.id), "login_failed").await;
    assert_eq!(failures.len(), 1);
    assert_eq!(failures[0].details["reason"], "wrong_password");
    assert!(!failures[0].details.to_string().contains("wrong password 123"));
    let unknown = app.admin_login("nobody@shop.example", PASSWORD).await;
    assert_eq!(unknown.status, 401, "an unknown account answers alike");
    let failures = audit_of(&app, None, "login_failed").await;
    assert!(failures.iter().any(|f| f.staff_email == "nobody@shop.example" && f.staff_id.is_none()));
}

async fn five_failures_lock_an_account_with_429_and_retry_after(kind: StoreKind) {
    let app = spawn_app(kind).await;
    let owner = app.staff_account(Role::Owner).await;
    for _ in 0..5 {
        assert_eq!(app.admin_login(&owner.email, "wrong password 123").await.status, 401);
    }

    let locked = app.admin_login(&owner.email, PASSWORD).await;

    assert_eq!(locked.status, 429, "even the right password waits");
    assert!(session_cookie(&locked.headers).is_none());
    let retry: i64 = locked.headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=900).contains(&retry), "{retry}");
    assert!(locked.body.contains("Too many attempts"), "{}", locked.body);
    app.clock.advance(chrono::Duration::minutes(16));
    assert_eq!(app.admin_login(&owner.email, PASSWORD).await.status, 303, "the window passes");
}

async fn twenty_failures_from_one_address_lock_that_address(kind: StoreKind) {
    let app = spawn_app(kind).await;
    let owner = app.staff_account(Role::Owner).await;
    for i in 0..20 {
        let page = app.admin_login(&format!("guess{i}@shop.example"), "wrong password 123").await;
        assert_eq!(page.status, 401);
    }

    let locked = app.admin_login(&owner.email, PASSWORD).await;

    assert_eq!(locked.status, 429);
    assert!(locked.headers.contains_key("retry-after"));
}

async fn anonymous_requests_are_sent_to_login_or_refused(kind: StoreKind) {
    let app = spawn_app(kind).await;

    let page = app.admin_get_anonymous("/admin/staff?x=1").await;
    assert_eq!(page.status, 303);
    assert_eq!(page.location.as_deref(), Some("/admin/login?next=%2Fadmin%2Fstaff%3Fx%3D1"));

    let login = app.admin_get_anonymous("/admin/login").await;
    assert_eq!(login.status, 200);
    assert!(login.body.contains(r#"name="password""#));

    let post = app.client.post(app.url("/admin/staff")).form(&[("email", "x@shop.example"), ("role", "owner")]);
    assert_eq!(post.send().await.unwrap().status(), 403);
    assert!(app.store.staff_list().await.unwrap().is_empty(), "nothing changed");
}

async fn logout_ends_the_session_and_needs_the_csrf_token(kind: StoreKind) {
    let app = spawn_app(kind).await;
    let staff = app.signed_in(Role::Cashier).await;

    assert_eq!(staff.post_raw("/admin/logout", &[]).await.status, 403, "no token");
    assert_eq!(staff.get("/admin").await.status, 200, "still signed in");

    let out = staff.post("/admin/logout", &[]).await;
    assert_eq!(out.status, 303);
    assert_eq!(staff.get("/admin").await.status, 303, "the session is gone");
    assert_eq!(staff.audit("logout").await.len(), 1);
}

async fn an_idle_session_expires(kind: StoreKind) {
    let app = spawn_app(kind).await;
    let staff = app.signed_in(Role::Manager).await;
    app.clock.advance(chrono::Duration::hours(11));
    assert_eq!(staff.get("/admin").await.status, 200, "within the idle limit");

    app.clock.advance(chrono::Duration::hours(12) + chrono::Duration::minutes(1));

    let page = staff.get("/admin").await;
    assert_eq!(page.status, 303);
    assert!(page.location.unwrap().starts_with("/admin/login"));
}

async fn a_session_expires_after_its_absolute_lifetime_even_when_used(kind: StoreKind) {
    let mut env = TestEnv::new(&kind);
    env.set("LOY_ADMIN_SESSION_IDLE", "1h").set("LOY_ADMIN_SESSION_MAX", "3h");
    let app = spawn_app_in(env).await;
    let staff = app.signed_in(Role::Owner).await;
    for _ in 0..3 {
        app.clock.advance(chrono::Duration::minutes(50));
        assert_eq!(staff.get("/admin").await.status, 200);
    }

    app.clock.advance(chrono::Duration::minutes(40));

    assert_eq!(staff.get("/admin").await.status, 303, "3 h 10 min after login");
}

async fn disabling_an_account_ends_its_sessions_at_once(kind: StoreKind) {
    let app = spawn_app(kind).await;
    let owner = app.signed_in(Role::Owner).await;
    let cashier = app.signed_in(Role::Cashier).await;
    assert_eq!(cashier.get("/admin").await.status, 200);

    let page = owner.post(&format!("/admin/staff/{}/disable", cashier.id), &[]).await;

    assert_eq!(page.status, 303, "{}", page.body);
    assert_eq!(cashier.get("/admin").await.status, 303, "the cashier's session ended");
    assert_eq!(cashier.post("/admin/logout", &[]).await.status, 403);
    assert_eq!(app.admin_login(&cashier.email, PASSWORD).await.status, 401, "and they cannot log in");
}

async fn console_pages_carry_a_strict_content_security_policy(kind: StoreKind) {
    let app = spawn_app(kind).await;
    let owner = app.signed_in(Role::Owner).await;
    for path in ["/admin", "/admin/staff", "/admin/keys", "/admin/audit", "/admin/account"] {
        let page = owner.get(path).await;
        assert_eq!(page.status, 200, "{path}");
        let csp = page.headers["content-security-policy"].to_str().unwrap();
        assert!(csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"), "{path}: {csp}");
        assert!(
            !page.body.contains("<script>") && !page.body.contains(" style=\""),
            "{path}: no inline script or style"
        );
        assert!(!page.body.contains("onclick="), "{path}");
    }
    let anonymous = app.admin_get_anonymous("/admin/login").await;
    assert!(anonymous.headers["content-security-policy"].to_str().unwrap().contains("default-src 'none'"));
    let htmx = app.admin_get_anonymous("/admin/static/htmx.min.js").await;
    assert_eq!(htmx.status, 200);
    assert!(htmx.body.starts_with("/*! htmx"));
    assert!(htmx.headers["cache-control"].to_str().unwrap().contains("max-age"));
}

async fn a_login_form_posted_without_its_token_is_refused(kind: StoreKind) {
    let app = spawn_app(kind).await;
    let owner = app.staff_account(Role::Owner).await;
    let (cookie, token) = app.admin_login_form().await;
    let fields = [("email", owner.email.as_str()), ("password", PASSWORD)];

    let without_cookie = app.client.post(app.url("/admin/login")).form(&[fields[0], fields[1], ("csrf", &token)]);
    let without_field =
        app.client.post(app.url("/admin/login")).header("Cookie", format!("loy_admin_login={cookie}")).form(&fields);

    for request in [without_cookie, without_field] {
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), 403);
        assert!(session_cookie(response.headers()).is_none());
    }
    assert!(audit_of(&app, Some(&owner.id), "login").await.is_empty());
    assert_eq!(app.admin_login(&owner.email, PASSWORD).await.status, 303, "with both it works");
}
