//! How the first owner gets in: the one-time setup link, and `loy staff add` on the server.

use std::io::Write;
use std::process::{Command, Stdio};

use loy::domain::Role;

use crate::admin_helpers::{PASSWORD, audit_of, session_cookie};
use crate::helpers::{StoreKind, TestApp, spawn_app, spawn_app_in};
use crate::on_both_stores;

on_both_stores!(
    the_setup_link_creates_the_first_owner_once,
    no_setup_link_is_made_once_a_staff_account_exists,
    loy_staff_add_reads_the_password_from_stdin_and_lists_accounts,
    loy_staff_add_on_a_terminal_prints_a_generated_password_once,
);

async fn the_setup_link_creates_the_first_owner_once(kind: StoreKind) {
    let app = spawn_app(kind).await;
    let link = app.setup_link.clone().expect("a setup link is printed when there is no staff account");
    let path = link.strip_prefix(crate::helpers::PUBLIC_URL).unwrap().to_owned();
    assert_eq!(app.admin_get_anonymous(&path).await.status, 200);
    let fields = [("email", "Owner@Shop.Example"), ("password", PASSWORD), ("password_again", PASSWORD)];
    let mismatch = app
        .client
        .post(app.url(&path))
        .form(&[("email", "owner@shop.example"), ("password", PASSWORD), ("password_again", "other password")])
        .send()
        .await
        .unwrap();
    assert_eq!(mismatch.status(), 422, "errors keep the link usable");

    let created = app.client.post(app.url(&path)).form(&fields).send().await.unwrap();

    assert_eq!(created.status(), 303);
    assert!(session_cookie(created.headers()).is_some(), "the new owner is signed in");
    let owner = app.store.staff_by_email("owner@shop.example").await.unwrap().expect("the owner exists");
    assert_eq!(owner.role, Role::Owner);
    assert_eq!(audit_of(&app, Some(&owner.id), "staff_added").await.len(), 1);
    let again = app
        .client
        .post(app.url(&path))
        .form(&[("email", "second@shop.example"), ("password", PASSWORD), ("password_again", PASSWORD)])
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 404, "the link works once");
    assert_eq!(app.admin_get_anonymous(&path).await.status, 404);
    assert_eq!(app.store.staff_list().await.unwrap().len(), 1);
    assert_eq!(app.admin_login("owner@shop.example", PASSWORD).await.status, 303);
}

async fn no_setup_link_is_made_once_a_staff_account_exists(kind: StoreKind) {
    let app = spawn_app(kind).await;
    let first = app.setup_link.clone().unwrap();
    app.staff_account(Role::Owner).await;
    let path = first.strip_prefix(crate::helpers::PUBLIC_URL).unwrap().to_owned();
    assert_eq!(app.admin_get_anonymous(&path).await.status, 404, "an account exists: the link is dead");

    let env = app.stop().await;
    let restarted = spawn_app_in(env).await;

    assert!(restarted.setup_link.is_none());
}

/// Runs `loy ARGS` with the test app's settings and `stdin`; returns (exit code, stdout, stderr).
fn loy(app: &TestApp, args: &[&str], stdin: Option<&str>) -> (i32, String, String) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_loy"));
    for (name, _) in std::env::vars().filter(|(name, _)| name.starts_with("LOY_")) {
        command.env_remove(name);
    }
    command.envs(&app.env.vars).args(args).stdout(Stdio::piped()).stderr(Stdio::piped()).stdin(Stdio::piped());
    let mut child = command.spawn().expect("the loy binary runs");
    let mut input = child.stdin.take().unwrap();
    if let Some(text) = stdin {
        input.write_all(text.as_bytes()).unwrap();
    }
    drop(input);
    let output = child.wait_with_output().unwrap();
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

async fn loy_staff_add_reads_the_password_from_stdin_and_lists_accounts(kind: StoreKind) {
    let app = spawn_app(kind).await;

    let (code, stdout, stderr) =
        loy(&app, &["staff", "add", "boss@shop.example", "--role", "owner"], Some(&format!("{PASSWORD}\n")));

    assert_eq!(code, 0, "{stderr}");
    assert!(!stdout.contains(PASSWORD), "a password from stdin is not echoed");
    assert_eq!(app.admin_login("boss@shop.example", PASSWORD).await.status, 303, "the running server accepts it");

    let (code, _, stderr) =
        loy(&app, &["staff", "add", "BOSS@shop.example", "--role", "owner"], Some("another password\n"));
    assert_eq!(code, 1, "the e-mail is taken whatever its case: {stderr}");
    let (code, _, _) = loy(&app, &["staff", "add", "short@shop.example", "--role", "cashier"], Some("short\n"));
    assert_eq!(code, 2, "a short password is refused");
    let (code, _, _) = loy(&app, &["staff", "add", "x@shop.example", "--role", "root"], Some(""));
    assert_ne!(code, 0, "unknown roles are refused");

    // With --password-stdin and an empty line the tool refuses rather than guessing.
    let (code, _, _) =
        loy(&app, &["staff", "add", "empty@shop.example", "--role", "manager", "--password-stdin"], Some("\n"));
    assert_eq!(code, 2);

    let (code, listing, _) = loy(&app, &["staff", "list"], None);
    assert_eq!(code, 0);
    assert!(listing.contains("boss@shop.example") && listing.contains("owner"), "{listing}");
    assert!(!listing.contains("$argon2"), "hashes are never listed");
    let added = app.store.staff_by_email("boss@shop.example").await.unwrap().unwrap();
    let audit = audit_of(&app, None, "staff_added").await;
    assert!(audit.iter().any(|e| e.target.as_deref() == Some(added.id.as_str()) && e.address == "cli"));
}

/// On a terminal (util-linux `script` gives the command one) the password is generated and
/// printed once, alone on the last line.
async fn loy_staff_add_on_a_terminal_prints_a_generated_password_once(kind: StoreKind) {
    let app = spawn_app(kind).await;
    let loy = env!("CARGO_BIN_EXE_loy");
    let mut command = Command::new("script");
    for (name, _) in std::env::vars().filter(|(name, _)| name.starts_with("LOY_")) {
        command.env_remove(name);
    }
    command.envs(&app.env.vars).args([
        "-qec",
        &format!("{loy} staff add gen@shop.example --role cashier"),
        "/dev/null",
    ]);
    let Ok(output) = command.stdin(Stdio::null()).output() else {
        panic!("util-linux `script` is needed to give `loy staff add` a terminal");
    };
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();

    assert!(output.status.success(), "{stdout}");
    // The line after the notice (a terminal merges standard error in, so whatever a library
    // prints while the process exits may follow it).
    let password = stdout
        .lines()
        .map(str::trim)
        .skip_while(|l| !l.contains("shown only this once"))
        .nth(1)
        .unwrap_or_default()
        .to_owned();
    assert!(stdout.contains("shown only this once"), "{stdout}");
    assert_eq!(password.len(), 16, "{stdout}");
    assert_eq!(app.admin_login("gen@shop.example", &password).await.status, 303);
}
