//! `loy pass lint` accepts good passes and names what is wrong with broken ones. Broken variants
//! are re-signed with the openssl command line, so each has exactly the flaw it is about.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use loy::apple::dev_certs::{DevCa, SignerSpec};
use sha1::{Digest, Sha1};

use crate::apple_support::{PASS_TYPE, Pkpass, TEAM, lint, new_pass, shared_ca, shared_dev_dir};
use crate::helpers::{StoreKind, TestEnv, spawn_app_in};

/// A pass from a server with an https address (so a clean pass has no warning either).
async fn good_pass() -> Pkpass {
    let mut env = TestEnv::new(&StoreKind::Embedded);
    env.set("LOY_PUBLIC_URL", "https://loyalty.example.com");
    let app = spawn_app_in(env).await;
    new_pass(&app).await
}

/// Recomputes the manifest and signs it with `openssl smime -sign` (signer, key, intermediate
/// from `certs`), adding `extra` arguments.
fn resign(files: &mut BTreeMap<String, Vec<u8>>, certs: &Path, extra: &[&str]) {
    let manifest: BTreeMap<&String, String> = files
        .iter()
        .filter(|(n, _)| *n != "manifest.json" && *n != "signature")
        .map(|(n, b)| (n, hex::encode(Sha1::digest(b))))
        .collect();
    let manifest = serde_json::to_vec(&manifest).unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("manifest.json"), &manifest).unwrap();
    let status = Command::new("openssl")
        .current_dir(dir.path())
        .args(["smime", "-sign", "-binary", "-in", "manifest.json", "-outform", "DER", "-out", "signature"])
        .arg("-signer")
        .arg(certs.join("pass.pem"))
        .arg("-inkey")
        .arg(certs.join("pass-key.pem"))
        .arg("-certfile")
        .arg(certs.join("wwdr.pem"))
        .args(extra)
        .status()
        .unwrap();
    assert!(status.success(), "openssl smime -sign");
    files.insert("manifest.json".into(), manifest);
    files.insert("signature".into(), std::fs::read(dir.path().join("signature")).unwrap());
}

fn set_token(files: &mut BTreeMap<String, Vec<u8>>, token: &str) {
    let mut pass: serde_json::Value = serde_json::from_slice(&files["pass.json"]).unwrap();
    pass["authenticationToken"] = token.into();
    files.insert("pass.json".into(), serde_json::to_vec(&pass).unwrap());
}

fn assert_rejected(bytes: &[u8], expected: &str) {
    let (code, out) = lint(bytes, None);
    assert_eq!(code, 1, "{expected}: {out}");
    assert!(out.contains(expected), "expected {expected:?} in:\n{out}");
    assert!(out.contains("is not a valid pass"), "{out}");
}

#[tokio::test]
async fn a_good_pass_is_valid_with_the_default_or_a_given_ca() {
    let pass = good_pass().await;
    let (code, out) = lint(&pass.bytes, None);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("checked against the development CA"), "{out}");
    assert!(out.contains("is a valid pass (0 warnings)."), "{out}");
    let (code, out) = lint(&pass.bytes, Some(&shared_ca()));
    assert_eq!(code, 0, "{out}");

    // A pass re-signed by the openssl command line is just as valid: lint judges the format,
    // not who made it.
    let mut files = pass.files.clone();
    resign(&mut files, shared_dev_dir(), &[]);
    assert_eq!(lint(&Pkpass::zip(&files), None).0, 0);
}

#[tokio::test]
async fn a_file_changed_after_signing_is_rejected() {
    let pass = good_pass().await;
    let mut files = pass.files.clone();
    let mut json = pass.pass_json();
    json["storeCard"]["primaryFields"][0]["value"] = 999_999.into();
    files.insert("pass.json".into(), serde_json::to_vec(&json).unwrap());
    assert_rejected(&Pkpass::zip(&files), "pass.json does not match its SHA-1 in manifest.json");
}

#[tokio::test]
async fn files_missing_from_the_manifest_or_the_bundle_are_rejected() {
    let pass = good_pass().await;
    let mut extra = pass.files.clone();
    extra.insert("thumbnail.png".into(), pass.file("icon.png").to_vec());
    assert_rejected(&Pkpass::zip(&extra), "thumbnail.png is not listed in manifest.json");

    let mut missing = pass.files.clone();
    missing.remove("strip@2x.png");
    assert_rejected(&Pkpass::zip(&missing), "manifest.json lists strip@2x.png, which is not in the bundle");
}

#[tokio::test]
async fn a_bad_signature_is_rejected() {
    let pass = good_pass().await;
    // Signed by a CA nobody trusts.
    let stranger = tempfile::tempdir().unwrap();
    let ca = DevCa::generate().unwrap();
    let (cert, key) = ca.issue_signer(&SignerSpec::valid_now(PASS_TYPE, TEAM)).unwrap();
    std::fs::write(stranger.path().join("pass.pem"), cert.to_pem().unwrap()).unwrap();
    std::fs::write(stranger.path().join("pass-key.pem"), key.private_key_to_pem_pkcs8().unwrap()).unwrap();
    std::fs::write(stranger.path().join("wwdr.pem"), ca.wwdr.to_pem().unwrap()).unwrap();
    let mut files = pass.files.clone();
    resign(&mut files, stranger.path(), &[]);
    assert_rejected(&Pkpass::zip(&files), "the signature does not verify over manifest.json against the CA");

    // A manifest changed after signing.
    let mut files = pass.files.clone();
    let mut manifest = files["manifest.json"].clone();
    manifest.insert(1, b' ');
    files.insert("manifest.json".into(), manifest);
    assert_rejected(&Pkpass::zip(&files), "the signature does not verify");

    // Garbage in place of the signature, and no signature at all.
    let mut files = pass.files.clone();
    files.insert("signature".into(), b"not a signature".to_vec());
    assert_rejected(&Pkpass::zip(&files), "signature is not a DER PKCS#7 structure");
    files.remove("signature");
    assert_rejected(&Pkpass::zip(&files), "signature is missing");

    // The right certificates but no signed attributes: Wallet needs the signing time.
    let mut files = pass.files.clone();
    resign(&mut files, shared_dev_dir(), &["-noattr"]);
    assert_rejected(&Pkpass::zip(&files), "the signature has no signing time");

    // A good pass checked against another CA.
    let other_ca = stranger.path().join("root.pem");
    std::fs::write(&other_ca, ca.root.to_pem().unwrap()).unwrap();
    let (code, out) = lint(&pass.bytes, Some(&other_ca));
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("the signature does not verify"), "{out}");
}

#[tokio::test]
async fn a_pass_without_an_icon_is_rejected() {
    let pass = good_pass().await;
    let mut files = pass.files.clone();
    files.remove("icon.png");
    resign(&mut files, shared_dev_dir(), &[]);
    let (code, out) = lint(&Pkpass::zip(&files), None);
    assert_eq!(code, 1);
    assert!(out.contains("error: icon.png is missing"), "{out}");
    assert_eq!(out.matches("error:").count(), 1, "the only problem: {out}");
}

#[tokio::test]
async fn a_short_authentication_token_is_rejected() {
    let pass = good_pass().await;
    let mut files = pass.files.clone();
    set_token(&mut files, "tooshort");
    resign(&mut files, shared_dev_dir(), &[]);
    assert_rejected(&Pkpass::zip(&files), "`authenticationToken` must be a string of at least 16 characters");
}

#[tokio::test]
async fn plain_http_off_loopback_and_non_zips_are_rejected() {
    let mut env = TestEnv::new(&StoreKind::Embedded);
    env.set("LOY_PUBLIC_URL", "http://loyalty.example.com");
    let app = spawn_app_in(env).await;
    let pass = new_pass(&app).await;
    assert_rejected(&pass.bytes, "`webServiceURL` http://loyalty.example.com/passkit must use https");

    assert_rejected(b"this is not a zip", "not a zip archive");
    let (code, out) = crate::apple_support::run_loy(&["pass", "lint", "/nonexistent.pkpass"], &[], Path::new("/"));
    assert_eq!(code, 2, "{out}");
}
