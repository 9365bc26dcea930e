//! The Apple certificate checks: what `loy certs check` reports and what stops start-up.
//! Certificates are made here: a throwaway CA shaped like Apple's, signers that are expired or
//! for the wrong pass type or team, and PKCS#12 files made by the openssl command line.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use loy::apple::dev_certs::{DevCa, SignerSpec};
use loy::startup::{Application, connect_store};
use loy::store::Faults;

use crate::apple_support::{Pkpass, download, enroll_card, run_loy};
use crate::helpers::{StoreKind, TestEnv, spawn_app_in};

const PASS_TYPE: &str = "pass.com.example.loyalty";
const TEAM: &str = "A1B2C3D4E5";
const DAY: i64 = 86_400;

/// A CA, a signer made by it, and the files an operator would configure.
struct Fixture {
    dir: tempfile::TempDir,
    ca: DevCa,
}

impl Fixture {
    fn new() -> Self {
        Self { dir: tempfile::tempdir().unwrap(), ca: DevCa::generate().unwrap() }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Writes a signer (`cert.pem`, `key.pem`), the WWDR and the root; returns nothing, the
    /// names are fixed.
    fn write(&self, spec: &SignerSpec) {
        let (cert, key) = self.ca.issue_signer(spec).unwrap();
        std::fs::write(self.path("cert.pem"), cert.to_pem().unwrap()).unwrap();
        std::fs::write(self.path("key.pem"), key.private_key_to_pem_pkcs8().unwrap()).unwrap();
        std::fs::write(self.path("wwdr.cer"), self.ca.wwdr.to_der().unwrap()).unwrap();
        std::fs::write(self.path("root.pem"), self.ca.root.to_pem().unwrap()).unwrap();
    }

    /// The settings of a PEM certificate and key.
    fn pem_env(&self) -> Vec<(String, String)> {
        vec![
            ("LOY_APPLE_CERTIFICATE".into(), self.path("cert.pem").display().to_string()),
            ("LOY_APPLE_KEY".into(), self.path("key.pem").display().to_string()),
            ("LOY_APPLE_WWDR".into(), self.path("wwdr.cer").display().to_string()),
            ("LOY_APPLE_PASS_TYPE_ID".into(), PASS_TYPE.into()),
            ("LOY_APPLE_TEAM_ID".into(), TEAM.into()),
        ]
    }

    /// `openssl pkcs12 -export` of the signer, with `extra` arguments (e.g. `-legacy`).
    fn pkcs12(&self, name: &str, password: &str, extra: &[&str]) -> PathBuf {
        let out = self.path(name);
        let status = Command::new("openssl")
            .args(["pkcs12", "-export", "-in"])
            .arg(self.path("cert.pem"))
            .arg("-inkey")
            .arg(self.path("key.pem"))
            .arg("-out")
            .arg(&out)
            .arg("-passout")
            .arg(format!("pass:{password}"))
            .args(extra)
            .status()
            .unwrap();
        assert!(status.success(), "openssl pkcs12 -export");
        out
    }

    fn check(&self, env: &[(String, String)]) -> (i32, String) {
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        run_loy(&["certs", "check"], &env, self.dir.path())
    }
}

fn valid() -> SignerSpec {
    SignerSpec::valid_now(PASS_TYPE, TEAM)
}

fn with(env: &[(String, String)], key: &str, value: Option<&str>) -> Vec<(String, String)> {
    let mut env: Vec<(String, String)> = env.iter().filter(|(k, _)| k != key).cloned().collect();
    if let Some(value) = value {
        env.push((key.into(), value.into()));
    }
    env
}

/// What start-up says when it refuses these settings.
async fn start_up_error(env: &[(String, String)]) -> String {
    let mut test_env = TestEnv::new(&StoreKind::Embedded);
    for (k, v) in env {
        test_env.set(k, v);
    }
    let settings = test_env.settings();
    let store = connect_store(&settings, Arc::new(Faults::default())).await.unwrap();
    let error = Application::build_with(settings, store, Arc::new(loy::clock::SystemClock))
        .await
        .err()
        .expect("start-up refuses the certificate");
    format!("{error:#}")
}

#[tokio::test]
async fn a_good_certificate_passes_every_check() {
    let f = Fixture::new();
    f.write(&valid());
    let (code, out) = f.check(&f.pem_env());
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("pass type identifier pass.com.example.loyalty matches the certificate's UID"), "{out}");
    assert!(out.contains("team identifier A1B2C3D4E5 matches the certificate's OU"), "{out}");
    assert!(out.contains("the certificate was issued by loy Development WWDR Intermediate"), "{out}");
    assert!(out.contains("All checks passed."), "{out}");
}

#[tokio::test]
async fn an_expired_or_not_yet_valid_certificate_is_reported_and_stops_start_up() {
    let f = Fixture::new();
    let now = chrono::Utc::now().timestamp();
    f.write(&SignerSpec { not_before: now - 400 * DAY, not_after: now - DAY, ..valid() });
    let (code, out) = f.check(&f.pem_env());
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("FAIL  the Pass Type ID certificate expired on"), "{out}");
    assert!(out.contains("1 problem: loy serve refuses to start until it is fixed."), "{out}");
    let error = start_up_error(&f.pem_env()).await;
    assert!(error.contains("the Pass Type ID certificate expired on"), "{error}");
    assert!(error.contains("create a new Pass Type ID certificate"), "{error}");

    f.write(&SignerSpec { not_before: now + 10 * DAY, not_after: now + 400 * DAY, ..valid() });
    let (code, out) = f.check(&f.pem_env());
    assert_eq!(code, 1);
    assert!(out.contains("the Pass Type ID certificate is not valid until"), "{out}");
}

#[tokio::test]
async fn a_certificate_for_another_pass_type_or_team_is_reported() {
    let f = Fixture::new();
    f.write(&valid());
    let other_type = with(&f.pem_env(), "LOY_APPLE_PASS_TYPE_ID", Some("pass.com.example.other"));
    let (code, out) = f.check(&other_type);
    assert_eq!(code, 1);
    assert!(
        out.contains(
            "LOY_APPLE_PASS_TYPE_ID is pass.com.example.other but the certificate is for pass.com.example.loyalty (its subject UID)"
        ),
        "{out}"
    );
    assert!(start_up_error(&other_type).await.contains("(its subject UID)"));

    let other_team = with(&f.pem_env(), "LOY_APPLE_TEAM_ID", Some("Z9Y8X7W6V5"));
    let (code, out) = f.check(&other_team);
    assert_eq!(code, 1);
    assert!(
        out.contains("LOY_APPLE_TEAM_ID is Z9Y8X7W6V5 but the certificate belongs to team A1B2C3D4E5 (its subject OU)"),
        "{out}"
    );

    let unset = with(&f.pem_env(), "LOY_APPLE_TEAM_ID", None);
    let (_, out) = f.check(&unset);
    assert!(
        out.contains("LOY_APPLE_TEAM_ID is not set; set it to the team identifier of the certificate (A1B2C3D4E5)"),
        "{out}"
    );
}

#[tokio::test]
async fn a_missing_or_foreign_wwdr_is_reported() {
    let f = Fixture::new();
    f.write(&valid());
    let missing = with(&f.pem_env(), "LOY_APPLE_WWDR", None);
    let (code, out) = f.check(&missing);
    assert_eq!(code, 1);
    assert!(out.contains("LOY_APPLE_WWDR is not set; download Apple's WWDR G4 intermediate"), "{out}");
    assert!(start_up_error(&missing).await.contains("LOY_APPLE_WWDR is not set"));

    let stranger = DevCa::generate().unwrap();
    std::fs::write(f.path("other-wwdr.pem"), stranger.wwdr.to_pem().unwrap()).unwrap();
    let foreign = with(&f.pem_env(), "LOY_APPLE_WWDR", Some(&f.path("other-wwdr.pem").display().to_string()));
    let (code, out) = f.check(&foreign);
    assert_eq!(code, 1);
    assert!(out.contains("is not the issuer of the certificate"), "{out}");

    // The root in the WWDR's place did not issue the signer either.
    let root = with(&f.pem_env(), "LOY_APPLE_WWDR", Some(&f.path("root.pem").display().to_string()));
    assert!(f.check(&root).1.contains("is not the issuer of the certificate"));
}

#[tokio::test]
async fn missing_unreadable_and_mismatched_files_are_reported() {
    let f = Fixture::new();
    f.write(&valid());
    let absent = f.path("absent.p12").display().to_string();
    let (code, out) = f.check(&with(&f.pem_env(), "LOY_APPLE_CERTIFICATE", Some(&absent)));
    assert_eq!(code, 1);
    assert!(out.contains(&format!("LOY_APPLE_CERTIFICATE: {absent} does not exist")), "{out}");

    std::fs::write(f.path("notes.txt"), "not a certificate").unwrap();
    let text = f.path("notes.txt").display().to_string();
    let (_, out) = f.check(&with(&f.pem_env(), "LOY_APPLE_CERTIFICATE", Some(&text)));
    assert!(out.contains("is not a PEM certificate or a PKCS#12 (.p12) file"), "{out}");

    let folder = f.dir.path().display().to_string();
    let (_, out) = f.check(&with(&f.pem_env(), "LOY_APPLE_CERTIFICATE", Some(&folder)));
    assert!(out.contains("cannot be read"), "{out}");

    let other_key = DevCa::generate().unwrap().issue_signer(&valid()).unwrap().1;
    std::fs::write(f.path("other-key.pem"), other_key.private_key_to_pem_pkcs8().unwrap()).unwrap();
    let (_, out) = f.check(&with(&f.pem_env(), "LOY_APPLE_KEY", Some(&f.path("other-key.pem").display().to_string())));
    assert!(out.contains("LOY_APPLE_KEY: the private key does not belong to the certificate"), "{out}");

    let (_, out) = f.check(&with(&f.pem_env(), "LOY_APPLE_KEY", None));
    assert!(out.contains("holds no private key"), "{out}");
}

#[tokio::test]
async fn a_wrong_pkcs12_password_is_reported() {
    let f = Fixture::new();
    f.write(&valid());
    let p12 = f.pkcs12("modern.p12", "right", &[]).display().to_string();
    let env = with(&with(&f.pem_env(), "LOY_APPLE_KEY", None), "LOY_APPLE_CERTIFICATE", Some(&p12));
    let (code, out) = f.check(&with(&env, "LOY_APPLE_CERTIFICATE_PASSWORD", Some("right")));
    assert_eq!(code, 0, "{out}");
    let (code, out) = f.check(&with(&env, "LOY_APPLE_CERTIFICATE_PASSWORD", Some("wrong")));
    assert_eq!(code, 1);
    assert!(out.contains(&format!("LOY_APPLE_CERTIFICATE_PASSWORD is wrong for {p12}")), "{out}");
    assert!(!out.contains("right"), "the password is never printed: {out}");
}

fn assert_is_rc2_40(p12: &Path) {
    let info = Command::new("openssl")
        .args(["pkcs12", "-info", "-noout", "-legacy", "-passin", "pass:secret", "-in"])
        .arg(p12)
        .output()
        .unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&info.stdout), String::from_utf8_lossy(&info.stderr));
    assert!(text.contains("pbeWithSHA1And40BitRC2-CBC"), "the fixture really is RC2-40 encrypted: {text}");
}

#[tokio::test]
async fn a_legacy_rc2_encrypted_pkcs12_opens_and_signs_passes() {
    let f = Fixture::new();
    f.write(&valid());
    let p12 = f.pkcs12("keychain.p12", "secret", &["-legacy"]);
    assert_is_rc2_40(&p12);
    let env = with(
        &with(&with(&f.pem_env(), "LOY_APPLE_KEY", None), "LOY_APPLE_CERTIFICATE", Some(&p12.display().to_string())),
        "LOY_APPLE_CERTIFICATE_PASSWORD",
        Some("secret"),
    );
    let (code, out) = f.check(&env);
    assert_eq!(code, 0, "{out}");

    let mut test_env = TestEnv::new(&StoreKind::Embedded);
    for (k, v) in &env {
        test_env.set(k, v);
    }
    let app = spawn_app_in(test_env).await;
    let (card_path, _) = enroll_card(&app, "Anna").await;
    let pass = Pkpass::parse(download(&app, &card_path).await.bytes().await.unwrap().to_vec());
    assert_eq!(pass.pass_json()["passTypeIdentifier"], PASS_TYPE);
    assert_eq!(pass.pass_json()["teamIdentifier"], TEAM);
    pass.assert_openssl_verifies(&f.path("root.pem"));
    assert!(!pass.openssl_verify(&crate::apple_support::shared_ca()).status.success(), "not the development CA");
}

#[tokio::test]
async fn serve_generates_development_certificates_when_none_are_configured() {
    let dev = tempfile::tempdir().unwrap();
    let dir = dev.path().join("dev");
    let mut env = TestEnv::new(&StoreKind::Embedded);
    env.set("LOY_APPLE_DEV_DIR", &dir.display().to_string());
    let app = spawn_app_in(env).await;
    for file in ["ca.pem", "wwdr.pem", "pass.pem", "pass-key.pem"] {
        assert!(dir.join(file).exists(), "{file} was generated");
    }
    let (card_path, _) = enroll_card(&app, "Anna").await;
    let pass = Pkpass::parse(download(&app, &card_path).await.bytes().await.unwrap().to_vec());
    pass.assert_openssl_verifies(&dir.join("ca.pem"));
    assert!(!pass.openssl_verify(&crate::apple_support::shared_ca()).status.success());
}

#[tokio::test]
async fn loy_certs_dev_generates_once_and_certs_check_reports_the_result() {
    let work = tempfile::tempdir().unwrap();
    let env = [("LOY_APPLE_DEV_DIR", "certs")];
    let (code, out) = run_loy(&["certs", "check"], &env, work.path());
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("not generated yet"), "{out}");

    let (code, out) = run_loy(&["certs", "dev"], &env, work.path());
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("were generated"), "{out}");
    let ca = std::fs::read(work.path().join("certs/ca.pem")).unwrap();
    let (_, out) = run_loy(&["certs", "dev"], &env, work.path());
    assert!(out.contains("are already there and usable"), "{out}");
    assert_eq!(std::fs::read(work.path().join("certs/ca.pem")).unwrap(), ca, "the CA is kept");

    let (code, out) = run_loy(&["certs", "check"], &env, work.path());
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("No Apple certificate is configured"), "{out}");
    assert!(out.contains("not on real iPhones"), "{out}");
    assert!(out.contains("All checks passed."), "{out}");

    let (code, out) = run_loy(&["certs", "check"], &[("LOY_APPLE_TEAM_ID", "abc")], work.path());
    assert_eq!(code, 2);
    assert!(out.contains("LOY_APPLE_TEAM_ID: `abc` is not an Apple team identifier"), "{out}");
}

#[tokio::test]
async fn readiness_reports_the_signing_certificate_and_fails_once_it_has_expired() {
    let app = crate::helpers::spawn_app(StoreKind::Embedded).await;
    let body: serde_json::Value = app.get_internal("/readyz").await.json().await.unwrap();
    assert_eq!(body["checks"]["apple_certificate"], serde_json::json!({"status": "up", "backend": "development"}));

    app.clock.advance(chrono::Duration::days(3 * 365));
    let response = app.get_internal("/readyz").await;
    assert_eq!(response.status(), 503);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["checks"]["apple_certificate"]["status"], "down");
    let detail = body["checks"]["apple_certificate"]["detail"].as_str().unwrap();
    assert!(detail.starts_with("the Pass Type ID certificate expired on"), "{detail}");
}
